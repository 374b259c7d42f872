//! `[bus]`: publish every event to NATS JetStream (a sensor of a scaled-out deployment).
//! Read by `serve` (the resolver's events and the passive sources') and `dnsight sensor`.
//!
//! ```toml
//! [bus]
//! url = "nats://127.0.0.1:4222"   # NATS server(s); required
//! partitions = 64                 # subject dnsight.events.P, P = partition of the client address
//! batch_events = 1000             # a partition's batch goes out at this many events...
//! max_delay_ms = 100              # ...or when its oldest event waited this long
//! spool_dir = "/var/lib/dnsight/bus-spool"   # default STATE/bus-spool (with --state)
//! spool_max_mb = 1024             # spooled bytes while NATS is unreachable; more is dropped (counted)
//! ack_timeout_ms = 2000           # no ack within this → spool
//! stream = "DNSIGHT_EVENTS"       # created when missing (subjects PREFIX.>)
//! subject_prefix = "dnsight.events"
//! sensor = "site-a"               # names this sensor in message ids (default: $HOSTNAME)
//! correlator = true               # workers send findings to `dnsight correlator` (default false:
//!                                 # each worker writes its own alerts, org facts per worker)
//! ```

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SECTIONS: &[&str] = &["bus"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    url: Option<String>,
    partitions: Option<u32>,
    batch_events: Option<usize>,
    max_delay_ms: Option<u64>,
    spool_dir: Option<PathBuf>,
    spool_max_mb: Option<u64>,
    ack_timeout_ms: Option<u64>,
    stream: Option<String>,
    subject_prefix: Option<String>,
    sensor: Option<String>,
    correlator: Option<bool>,
}

/// Validated `[bus]` (None without the section); `state` gives the default spool directory.
pub fn load(
    file: Option<&Path>,
    state: Option<&Path>,
) -> anyhow::Result<Option<dnsight_bus::BusConfig>> {
    let Some(p) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config file {}", p.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", p.display()))?;
    let Some(v) = table.get("bus").cloned() else {
        return Ok(None);
    };
    let raw: Raw = v
        .try_into()
        .map_err(|e| anyhow!("{}: [bus]: {e}", p.display()))?;
    let f = p.display();
    let url = raw
        .url
        .ok_or_else(|| anyhow!("{f}: [bus] needs url = \"nats://HOST:4222\""))?;
    if !url
        .split(',')
        .all(|u| u.trim().starts_with("nats://") || u.trim().starts_with("tls://"))
    {
        bail!("{f}: [bus] url = {url:?}: use nats://HOST:PORT (comma-separated for several)");
    }
    let spool = match (raw.spool_dir, state) {
        (Some(d), _) => d,
        (None, Some(s)) => s.join("bus-spool"),
        (None, None) => bail!(
            "{f}: [bus] needs spool_dir (where batches wait while NATS is unreachable), or --state DIR"
        ),
    };
    let mut c = dnsight_bus::BusConfig::new(&url, spool);
    if let Some(n) = raw.partitions {
        if !(1..=65_536).contains(&n) {
            bail!("{f}: [bus] partitions = {n}: use 1 to 65536");
        }
        c.partitions = n;
    }
    if let Some(n) = raw.batch_events {
        if !(1..=100_000).contains(&n) {
            bail!("{f}: [bus] batch_events = {n}: use 1 to 100000");
        }
        c.batch_events = n;
    }
    if let Some(ms) = raw.max_delay_ms {
        if !(1..=60_000).contains(&ms) {
            bail!("{f}: [bus] max_delay_ms = {ms}: use 1 to 60000");
        }
        c.max_delay = Duration::from_millis(ms);
    }
    if let Some(mb) = raw.spool_max_mb {
        if mb == 0 {
            bail!("{f}: [bus] spool_max_mb = 0: use at least 1");
        }
        c.spool_max_bytes = mb.saturating_mul(1 << 20);
    }
    if let Some(ms) = raw.ack_timeout_ms {
        if !(10..=600_000).contains(&ms) {
            bail!("{f}: [bus] ack_timeout_ms = {ms}: use 10 to 600000");
        }
        c.ack_timeout = Duration::from_millis(ms);
    }
    let token = |what: &str, s: &str, dots: bool| -> anyhow::Result<()> {
        if s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dots && b == b'.'))
        {
            bail!("{f}: [bus] {what} = {s:?}: use letters, digits, - and _");
        }
        Ok(())
    };
    if let Some(s) = raw.stream {
        token("stream", &s, false)?;
        c.stream = s;
    }
    if let Some(s) = raw.subject_prefix {
        token("subject_prefix", &s, true)?;
        c.subject_prefix = s;
    }
    if let Some(s) = raw.sensor {
        token("sensor", &s, false)?;
        c.sensor = s;
    }
    c.correlator = raw.correlator.unwrap_or(false);
    Ok(Some(c))
}

#[cfg(test)]
mod tests {
    use super::super::test_file as file;
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let (_d, p) = file("[bus]\nurl = \"nats://127.0.0.1:4222\"\n");
        let c = load(Some(&p), Some(Path::new("/st"))).unwrap().unwrap();
        assert_eq!(c.partitions, 64);
        assert_eq!(c.spool_dir, Path::new("/st/bus-spool"));
        assert_eq!(c.subject(7), "dnsight.events.7");
        let (_d, p) = file("[api]\n");
        assert!(load(Some(&p), None).unwrap().is_none());
        for (text, want) in [
            ("[bus]\n", "needs url"),
            ("[bus]\nurl = \"http://x\"\n", "nats://"),
            ("[bus]\nurl = \"nats://x:1\"\n", "spool_dir"),
            (
                "[bus]\nurl = \"nats://x:1\"\nspool_dir = \"s\"\npartitions = 0\n",
                "1 to 65536",
            ),
            (
                "[bus]\nurl = \"nats://x:1\"\nspool_dir = \"s\"\nsensor = \"a b\"\n",
                "letters",
            ),
            (
                "[bus]\nurl = \"nats://x:1\"\nspool_dir = \"s\"\nparts = 3\n",
                "unknown field",
            ),
        ] {
            let (_d, p) = file(text);
            let e = format!("{:#}", load(Some(&p), None).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
