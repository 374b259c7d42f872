//! `dnsight notify`: try the notification targets of a config file, and see the outbox.

use anyhow::{bail, Context};
use dnsight_triage::OutboxState;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Send a sample notification to a target (or every target) of the config, right away.
    Test {
        /// The target's `name`; all targets when omitted.
        target: Option<String>,
        #[arg(long)]
        config: PathBuf,
    },
    /// The configured targets.
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Recent notifications in the outbox of a state directory (newest first).
    Outbox {
        #[arg(long)]
        state: PathBuf,
        /// pending, sent or failed (default: all).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.cmd {
        Cmd::Test { target, config } => {
            let targets = crate::config::notify::load(Some(&config))?;
            if targets.is_empty() {
                bail!("{}: no [[notify]] targets", config.display());
            }
            let chosen: Vec<_> = match &target {
                Some(n) => {
                    let t: Vec<_> = targets.iter().filter(|t| &t.name == n).collect();
                    if t.is_empty() {
                        bail!(
                            "no target named {n:?}; the config has: {}",
                            targets
                                .iter()
                                .map(|t| t.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                    t
                }
                None => targets.iter().collect(),
            };
            let mut failed = 0;
            for t in chosen {
                match dnsight_notify::send_test(t) {
                    Ok(()) => println!("{}  {}  sent to {}", t.name, t.type_name(), t.describe()),
                    Err(e) => {
                        failed += 1;
                        println!("{}  {}  FAILED: {e}", t.name, t.type_name());
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} target(s) failed");
            }
            Ok(())
        }
        Cmd::List { config } => {
            for t in crate::config::notify::load(Some(&config))? {
                println!(
                    "{}  {}  {}  min_severity {}  events {}  digest after {} in {} min",
                    t.name,
                    t.type_name(),
                    t.describe(),
                    t.route.min_severity.as_str(),
                    t.route
                        .events
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    t.digest.after,
                    t.digest.window.as_secs() / 60
                );
            }
            Ok(())
        }
        Cmd::Outbox {
            state,
            status,
            limit,
            json,
        } => {
            if !state.is_dir() {
                bail!(
                    "{} is not a directory: pass the --state DIR that `dnsight serve` uses",
                    state.display()
                );
            }
            let st = match status.as_deref() {
                None | Some("all") => None,
                Some(s) => Some(OutboxState::parse(s).with_context(|| {
                    format!("--status {s:?}: use pending, sent, failed or all")
                })?),
            };
            let store = crate::wiring::open_state_store(&state)?;
            let rows = store.outbox_list(st, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!("ID      TARGET        STATE    TRIES  EVENT         ALERT             ERROR");
            for r in rows {
                println!(
                    "{:<7} {:<13} {:<8} {:<6} {:<13} {:<17} {}",
                    r.id,
                    r.target,
                    r.state.as_str(),
                    r.attempts,
                    r.event.as_str(),
                    r.alert.id,
                    dnsight_notify::format::clean(r.last_error.as_deref().unwrap_or(""), 80)
                );
            }
            Ok(())
        }
    }
}
