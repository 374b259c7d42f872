//! `dnsight token create|list|revoke --state DIR`: API tokens, straight in the triage store
//! (works while `serve` runs: SQLite WAL, one more connection).

use anyhow::{anyhow, bail};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use dnsight_triage::{Role, TriageStore};
use std::path::PathBuf;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: TokenCmd,
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token; the secret is printed once, alone on the last line.
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Who or what uses it (recorded as the actor of its actions).
        #[arg(long)]
        name: String,
        /// When it stops working: a time (2027-01-01, RFC 3339, Unix seconds) or a duration (90d).
        #[arg(long)]
        expires: Option<String>,
        /// The state directory of `dnsight serve`.
        #[arg(long)]
        state: PathBuf,
    },
    /// Every token (never the secrets).
    List {
        #[arg(long)]
        state: PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by name or id.
    Revoke {
        name_or_id: String,
        #[arg(long)]
        state: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RoleArg {
    Viewer,
    Analyst,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Analyst => Role::Analyst,
            RoleArg::Admin => Role::Admin,
        }
    }
}

fn open(state: &std::path::Path) -> anyhow::Result<Box<dyn TriageStore>> {
    if !state.is_dir() {
        bail!(
            "{} is not a directory: pass the --state DIR that `dnsight serve` uses",
            state.display()
        );
    }
    crate::wiring::open_state_store(state)
}

fn when(t: Option<i64>) -> String {
    t.map(|t| dnsight_model::Ts::from_secs(t).to_rfc3339())
        .unwrap_or_else(|| "-".into())
}

/// The local user, for the audit line of a token made on the command line.
fn local_actor() -> String {
    let u = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{}", super::client::clean(&u))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let now = dnsight_pipeline::now_secs();
    match a.cmd {
        TokenCmd::Create {
            role,
            name,
            expires,
            state,
        } => {
            dnsight_api::check_token_name(&name).map_err(|e| anyhow!("--name: {e}"))?;
            let expires_at = match &expires {
                None => None,
                Some(e) => Some(
                    dnsight_api::parse_time(e)
                        .or_else(|_| dnsight_api::parse_duration(e).map(|d| now + d))
                        .map_err(|_| {
                            anyhow!("--expires {e:?}: give a time (2027-01-01, RFC 3339, Unix seconds) or a duration (90d)")
                        })?,
                ),
            };
            if expires_at.is_some_and(|e| e <= now) {
                bail!("--expires is in the past: give a later time");
            }
            let mut st = open(&state)?;
            let (info, secret) =
                st.create_token(&name, role.into(), expires_at, &local_actor(), now)?;
            eprintln!(
                "token {} {:?} role {} expires {} (shown once: keep it, e.g. export DNSIGHT_TOKEN=...)",
                info.id,
                super::client::clean(&info.name),
                info.role.as_str(),
                when(info.expires_at)
            );
            println!("{secret}");
        }
        TokenCmd::List { state, json } => {
            let st = open(&state)?;
            let list = st.list_tokens()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!(
                "{:<5} {:<24} {:<8} {:<22} {:<22} {:<22} STATUS",
                "ID", "NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED"
            );
            for t in list {
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<5} {:<24} {:<8} {:<22} {:<22} {:<22} {status}",
                    t.id,
                    super::client::clean(&t.name),
                    t.role.as_str(),
                    when(Some(t.created_at)),
                    when(t.expires_at),
                    when(t.last_used),
                );
            }
        }
        TokenCmd::Revoke { name_or_id, state } => {
            let mut st = open(&state)?;
            let t = st
                .revoke_token(&name_or_id, &local_actor(), now)
                .map_err(|e| match e {
                    dnsight_triage::TriageError::NotFound(_) => anyhow!(
                        "no token {name_or_id:?}; see `dnsight token list --state {}`",
                        state.display()
                    ),
                    e => anyhow!(e),
                })?;
            println!(
                "revoked token {} {:?} ({})",
                t.id,
                super::client::clean(&t.name),
                t.role.as_str()
            );
        }
    }
    Ok(())
}
