//! `[store]`: where the triage store lives (alerts, actions, audit, acknowledgements, blocks,
//! tokens, users, the notification outbox). Default: the embedded SQLite file
//! `STATE/triage.sqlite`.
//!
//! ```toml
//! [store]
//! url = "postgres://dnsight:secret@127.0.0.1:5432/dnsight"   # PostgreSQL instead
//! ```
//!
//! The query log stays in `STATE/triage.sqlite` either way. `serve` and `analyze` record the
//! URL in `STATE/store.url` (mode 0600), so every command given that `--state DIR` (`token`,
//! `user`, `notify outbox`, the API and dashboard) opens the same store.

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use std::path::Path;

pub const SECTIONS: &[&str] = &["store"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    url: Option<String>,
}

/// The PostgreSQL URL of `[store]`, or None for the embedded SQLite store.
pub fn load(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(p) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config file {}", p.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", p.display()))?;
    let raw: Raw = match table.get("store").cloned() {
        Some(v) => v
            .try_into()
            .map_err(|e| anyhow!("{}: [store]: {e}", p.display()))?,
        None => Raw::default(),
    };
    match raw.url {
        None => Ok(None),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            if u.parse::<dnsight_pgstore::Config>().is_err() {
                bail!(
                    "{}: [store] url: {} is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DB)",
                    p.display(),
                    dnsight_pgstore::describe(&u)
                );
            }
            Ok(Some(u))
        }
        Some(_) => bail!(
            "{}: [store] url: use postgres://USER:PASSWORD@HOST:PORT/DB (leave [store] out for the embedded SQLite file)",
            p.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_file as file;
    use super::*;

    #[test]
    fn default_url_and_errors() {
        assert_eq!(load(None).unwrap(), None);
        let (_d, p) = file("[api]\n");
        assert_eq!(load(Some(&p)).unwrap(), None);
        let (_d, p) = file("[store]\nurl = \"postgres://u:pw@127.0.0.1:5432/db\"\n");
        assert_eq!(
            load(Some(&p)).unwrap().as_deref(),
            Some("postgres://u:pw@127.0.0.1:5432/db")
        );
        for (text, want) in [
            ("[store]\nurl = \"mysql://x\"\n", "use postgres://"),
            ("[store]\nuri = \"postgres://x\"\n", "unknown field"),
            (
                "[store]\nurl = \"postgres://u:pw@h:notaport/db\"\n",
                "not a PostgreSQL URL",
            ),
        ] {
            let (_d, p) = file(text);
            let e = format!("{:#}", load(Some(&p)).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("pw@"), "the password is not shown: {e}");
        }
    }
}
