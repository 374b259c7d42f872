//! `dnsight user add|list|rm --state DIR`: dashboard users, straight in the triage store (works
//! while `serve` runs). Passwords are hashed with argon2id; `add` generates one and prints it
//! once unless `--password-stdin` gives it.

use anyhow::{anyhow, bail, Context};
use clap::{Args as ClapArgs, Subcommand};
use dnsight_triage::TriageStore;
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: UserCmd,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user (or, with --replace, give an existing one a new role and password). The
    /// password is generated and printed once, alone on the last line.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: super::token::RoleArg,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Replace an existing user's role and password (ends its sessions).
        #[arg(long)]
        replace: bool,
        /// The state directory of `dnsight serve`.
        #[arg(long)]
        state: PathBuf,
    },
    /// Every user.
    List {
        #[arg(long)]
        state: PathBuf,
    },
    /// Remove a user (its sessions end).
    Rm {
        name: String,
        #[arg(long)]
        state: PathBuf,
    },
}

fn open(state: &Path) -> anyhow::Result<Box<dyn TriageStore>> {
    if !state.is_dir() {
        bail!(
            "{} is not a directory: pass the --state DIR that `dnsight serve` uses",
            state.display()
        );
    }
    crate::wiring::open_state_store(state)
}

fn local_actor() -> String {
    let u = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{}", super::client::clean(&u))
}

/// Creates (or replaces) a user with a fresh random password; returns the password.
pub fn add_generated(
    st: &mut dyn TriageStore,
    name: &str,
    role: dnsight_triage::Role,
    replace: bool,
    actor: &str,
) -> anyhow::Result<String> {
    let password = dnsight_web::random_password();
    let hash = dnsight_web::hash_password(&password).map_err(|e| anyhow!(e))?;
    st.upsert_user(
        name,
        role,
        &hash,
        replace,
        actor,
        dnsight_pipeline::now_secs(),
    )?;
    Ok(password)
}

/// What `serve` prints about the dashboard: its URL, and how to create the first user.
pub fn announce_dashboard(url: &str, state: &Path) {
    let users = crate::wiring::open_state_store(state)
        .ok()
        .and_then(|s| s.list_users().ok())
        .map(|u| u.len())
        .unwrap_or(0);
    if users == 0 {
        tracing::warn!(
            "dnsight serve: dashboard on {url}/ui/ — no user yet: create one with `dnsight user add NAME --role admin --state {}` (it prints the password)",
            state.display()
        );
    } else {
        tracing::info!("dnsight serve: dashboard on {url}/ui/ ({users} users)");
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.cmd {
        UserCmd::Add {
            name,
            role,
            password_stdin,
            replace,
            state,
        } => {
            dnsight_triage::check_user_name(&name).map_err(|e| anyhow!("NAME: {e}"))?;
            let mut st = open(&state)?;
            if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("reading the password from stdin")?;
                let pw = line.trim_end_matches(['\r', '\n']);
                let hash = dnsight_web::hash_password(pw).map_err(|e| anyhow!(e))?;
                let u = st.upsert_user(
                    &name,
                    role.into(),
                    &hash,
                    replace,
                    &local_actor(),
                    dnsight_pipeline::now_secs(),
                )?;
                eprintln!("user {} ({}) saved", u.name, u.role.as_str());
            } else {
                let pw = add_generated(&mut *st, &name, role.into(), replace, &local_actor())?;
                eprintln!(
                    "user {name} ({}) saved; sign in at the dashboard (http://API/ui/) with this password (shown once):",
                    dnsight_triage::Role::from(role).as_str()
                );
                println!("{pw}");
            }
        }
        UserCmd::List { state } => {
            let st = open(&state)?;
            println!(
                "{:<24} {:<8} {:<22} LAST SIGN-IN",
                "NAME", "ROLE", "CREATED"
            );
            let when = |t: Option<i64>| {
                t.map(|t| dnsight_model::Ts::from_secs(t).to_rfc3339())
                    .unwrap_or_else(|| "never".into())
            };
            for u in st.list_users()? {
                println!(
                    "{:<24} {:<8} {:<22} {}",
                    u.name,
                    u.role.as_str(),
                    when(Some(u.created_at)),
                    when(u.last_login)
                );
            }
        }
        UserCmd::Rm { name, state } => {
            let mut st = open(&state)?;
            let u = st
                .remove_user(&name, &local_actor(), dnsight_pipeline::now_secs())
                .map_err(|e| match e {
                    dnsight_triage::TriageError::NotFound(_) => anyhow!(
                        "no user {name:?}; see `dnsight user list --state {}`",
                        state.display()
                    ),
                    e => anyhow!(e),
                })?;
            println!("removed user {} ({})", u.name, u.role.as_str());
        }
    }
    Ok(())
}
