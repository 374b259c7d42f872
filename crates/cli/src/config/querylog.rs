//! `[querylog]`: the searchable log of every DNS transaction (on by default with `--state`).
//!
//! ```toml
//! [querylog]
//! enabled = true            # default with --state (serve and analyze); false turns it off
//! retention_days = 30       # rows older than this before the newest row are deleted (0: keep)
//! max_size_mb = 4096        # the triage file's used pages stay under this (0: no limit)
//! pseudonymise = false      # store clients as keyed hashes (key: STATE/querylog.key)
//! queue = 200000            # rows waiting for the writer; more are dropped and counted
//! coalesce = true           # identical transactions of a client within one second: one row
//!                           # with a count (false: a row per transaction)
//! ```

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use std::path::Path;

pub const SECTIONS: &[&str] = &["querylog"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    enabled: Option<bool>,
    retention_days: Option<u32>,
    max_size_mb: Option<u64>,
    pseudonymise: Option<bool>,
    queue: Option<usize>,
    coalesce: Option<bool>,
}

/// Validated `[querylog]`: None when it is off.
pub fn load(file: Option<&Path>) -> anyhow::Result<Option<dnsight_triage::QueryLogConfig>> {
    let (raw, f) = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{}: not valid TOML", p.display()))?;
            let raw: Raw = match table.get("querylog").cloned() {
                Some(v) => v
                    .try_into()
                    .map_err(|e| anyhow!("{}: [querylog]: {e}", p.display()))?,
                None => Raw::default(),
            };
            (raw, p.display().to_string())
        }
        None => (Raw::default(), "<flags>".to_string()),
    };
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let mut c = dnsight_triage::QueryLogConfig::default();
    if let Some(d) = raw.retention_days {
        if d > 36_500 {
            bail!("{f}: [querylog] retention_days = {d} is more than 100 years; use 0 to keep every row");
        }
        c.retention_days = (d > 0).then_some(d);
    }
    if let Some(m) = raw.max_size_mb {
        if m > 0 && m < 16 {
            bail!("{f}: [querylog] max_size_mb = {m} is too small to hold the triage store; use at least 16, or 0 for no limit");
        }
        c.max_bytes = (m > 0).then(|| m.saturating_mul(1 << 20));
    }
    c.pseudonymise = raw.pseudonymise.unwrap_or(false);
    c.coalesce = raw.coalesce.unwrap_or(true);
    if let Some(q) = raw.queue {
        if !(1_000..=10_000_000).contains(&q) {
            bail!("{f}: [querylog] queue = {q}: use 1000 to 10000000 rows");
        }
        c.queue = q;
    }
    Ok(Some(c))
}

#[cfg(test)]
mod tests {
    use super::super::test_file as file;
    use super::*;

    #[test]
    fn serve_example_and_defaults() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/serve.toml");
        let c = load(Some(&p)).unwrap().unwrap();
        assert_eq!(c.retention_days, Some(30));
        assert_eq!(c.max_bytes, Some(4096 << 20));
        assert!(!c.pseudonymise);
        assert!(c.coalesce);
        assert_eq!(
            load(None).unwrap(),
            Some(dnsight_triage::QueryLogConfig::default())
        );
    }

    #[test]
    fn off_zero_limits_and_errors() {
        let (_d, p) = file("[querylog]\nenabled = false\n");
        assert_eq!(load(Some(&p)).unwrap(), None);
        let (_d, p) =
            file("[querylog]\nretention_days = 0\nmax_size_mb = 0\npseudonymise = true\ncoalesce = false\n");
        let c = load(Some(&p)).unwrap().unwrap();
        assert_eq!(
            (c.retention_days, c.max_bytes, c.pseudonymise, c.coalesce),
            (None, None, true, false)
        );
        for (bad, says) in [
            ("[querylog]\nmax_size_mb = 3\n", "at least 16"),
            ("[querylog]\nqueue = 5\n", "1000 to"),
            ("[querylog]\nretention = 3\n", "unknown field"),
            ("[querylog]\nretention_days = 99999\n", "100 years"),
        ] {
            let (_d, p) = file(bad);
            let e = format!("{:#}", load(Some(&p)).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
