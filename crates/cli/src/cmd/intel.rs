//! `dnsight intel check|stats|update` and `dnsight geoip update`: the enrichment sources of a
//! config, straight from their files (no running `serve` needed; while one runs, an update
//! writes the same copies atomically and `serve` reloads them within seconds).

use crate::config::engine::{EngineFlags, EnrichFiles};
use crate::fetch::{self, Check, Outcome};
use anyhow::bail;
use clap::{Args as ClapArgs, Subcommand};
use dnsight_engine::intel::{find_in_feed, Query};
use std::io::Write;
use std::path::PathBuf;

/// A freely redistributable country database in MaxMind format (CC BY 4.0 data).
pub const DEFAULT_GEOIP_URL: &str =
    "https://cdn.jsdelivr.net/npm/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb";

/// The downloaded copy of [`DEFAULT_GEOIP_URL`] (without `--state`), if there is one.
pub fn downloaded_geoip() -> Option<PathBuf> {
    let p = crate::config::engine::downloads_dir(None)
        .join("geoip")
        .join("geo-whois-asn-country.mmdb");
    p.exists().then_some(p)
}

/// Which config, and where its downloads are kept.
#[derive(ClapArgs, Debug, Clone)]
pub struct Source {
    /// TOML config file with `[[intel]]` and `[geoip]` sections.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The state directory of `dnsight serve` (downloads live in it; default
    /// ~/.cache/dnsight).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Threat-intel feed file (repeatable), in addition to the config's.
    #[arg(long, value_name = "F")]
    pub intel: Vec<PathBuf>,
}

impl Source {
    fn files(&self) -> anyhow::Result<EnrichFiles> {
        crate::config::engine::files(&EngineFlags {
            config: self.config.clone(),
            state: self.state.clone(),
            intel: self.intel.clone(),
            ..Default::default()
        })
    }
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: IntelCmd,
}

#[derive(Subcommand, Debug)]
pub enum IntelCmd {
    /// Which feed (and which line) lists each name or address.
    Check {
        #[command(flatten)]
        src: Source,
        /// Names or addresses to look up.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Every feed and GeoIP database: entries, age, last download error, stale or not.
    Stats {
        #[command(flatten)]
        src: Source,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Download the feeds that have a `url` now (conditional requests: unchanged feeds cost
    /// a 304).
    Update {
        #[command(flatten)]
        src: Source,
    },
}

#[derive(ClapArgs, Debug)]
pub struct GeoipArgs {
    #[command(subcommand)]
    pub cmd: GeoipCmd,
}

#[derive(Subcommand, Debug)]
pub enum GeoipCmd {
    /// Download the `[geoip] urls` databases now.
    Update {
        #[command(flatten)]
        src: Source,
    },
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.cmd {
        IntelCmd::Check { src, names } => check(&src, &names),
        IntelCmd::Stats { src, json } => stats(&src, json),
        IntelCmd::Update { src } => update(&src, "intel"),
    }
}

pub fn run_geoip(a: GeoipArgs) -> anyhow::Result<()> {
    match a.cmd {
        GeoipCmd::Update { src } => update(&src, "geoip"),
    }
}

fn check(src: &Source, names: &[String]) -> anyhow::Result<()> {
    let files = src.files()?;
    if files.intel.is_empty() {
        bail!("no threat-intel feeds configured: add [[intel]] entries to the config (--config FILE) or pass --intel FILE");
    }
    let mut texts = Vec::new();
    for x in &files.intel.feeds {
        texts.push(match std::fs::read(&x.path) {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(_) => None,
        });
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    for n in names {
        let Some(q) = Query::parse(n) else {
            writeln!(out, "{}: not a DNS name or an address", escape(n))?;
            continue;
        };
        let mut hits = 0;
        for (x, text) in files.intel.feeds.iter().zip(&texts) {
            let Some(text) = text else { continue };
            for (line, indicator) in find_in_feed(text, &x.spec, &q, 5) {
                hits += 1;
                let cat = x
                    .spec
                    .category
                    .as_ref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}: listed by feed {:?}{cat} as {indicator} ({}:{line})",
                    escape(n),
                    x.name,
                    x.path.display()
                )?;
            }
        }
        if hits == 0 {
            writeln!(out, "{}: not listed", escape(n))?;
        }
    }
    let missing: Vec<_> = files
        .intel
        .feeds
        .iter()
        .zip(&texts)
        .filter(|(_, t)| t.is_none())
        .map(|(x, _)| x.name.as_str())
        .collect();
    if !missing.is_empty() {
        writeln!(
            out,
            "note: feeds without a local copy were not checked: {} (`dnsight intel update` downloads them)",
            missing.join(", ")
        )?;
    }
    Ok(())
}

/// Names typed by a person, printed back: control bytes escaped.
fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn age(secs: Option<u64>) -> String {
    match secs {
        None => "never".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

fn stats(src: &Source, json: bool) -> anyhow::Result<()> {
    let files = src.files()?;
    let loaded = files.intel.load()?;
    let st = crate::wiring::feed_status(&files, &loaded);
    let out = std::io::stdout();
    let mut out = out.lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &st)?;
        writeln!(out)?;
        return Ok(());
    }
    if st.is_empty() {
        writeln!(
            out,
            "no threat-intel feeds and no GeoIP databases configured"
        )?;
    }
    writeln!(
        out,
        "{:<6} {:<24} {:>9} {:>8} {:>6}  {:<6} source",
        "kind", "name", "entries", "rejected", "age", "state"
    )?;
    for s in &st {
        let state = if s.last_error.is_some() {
            "error"
        } else if s.stale {
            "STALE"
        } else {
            "ok"
        };
        writeln!(
            out,
            "{:<6} {:<24} {:>9} {:>8} {:>6}  {:<6} {}",
            s.kind,
            s.name,
            s.entries,
            s.rejected,
            age(s.age_secs),
            state,
            s.url.as_deref().unwrap_or(&s.path)
        )?;
        if let Some(e) = &s.last_error {
            writeln!(out, "       last error: {e}")?;
        }
    }
    if files.geo.is_empty() {
        writeln!(out, "GeoIP: none configured: new_country and new_asn are off (see the README, \"GeoIP\": one [geoip] urls line and `dnsight geoip update`)")?;
    } else if !files.geo.missing().is_empty() {
        writeln!(
            out,
            "GeoIP: not downloaded yet: `dnsight geoip update` fetches it"
        )?;
    }
    Ok(())
}

fn update(src: &Source, kind: &str) -> anyhow::Result<()> {
    let files = src.files()?;
    let fetches: Vec<_> = files
        .fetches
        .iter()
        .filter(|f| match f.check {
            Check::Mmdb => kind == "geoip",
            _ => kind == "intel",
        })
        .collect();
    if fetches.is_empty() {
        match kind {
            "geoip" => bail!("no GeoIP database to download: add to the config\n  [geoip]\n  urls = [\"{DEFAULT_GEOIP_URL}\"]\nand pass it with --config FILE"),
            _ => bail!("no threat-intel feed has a url: add url = \"https://...\" to an [[intel]] entry (--config FILE)"),
        }
    }
    let mut failed = 0;
    for f in fetches {
        match fetch::fetch(f) {
            Ok(Outcome::Updated { bytes, entries }) => {
                if kind == "geoip" {
                    println!(
                        "{}: downloaded {bytes} bytes to {}",
                        f.name,
                        f.path.display()
                    );
                } else {
                    println!(
                        "{}: downloaded {bytes} bytes, {entries} entries, to {}",
                        f.name,
                        f.path.display()
                    );
                }
            }
            Ok(Outcome::NotModified) => {
                println!("{}: not modified (the local copy is current)", f.name)
            }
            Err(e) => {
                failed += 1;
                println!("{}: failed: {e:#}", f.name);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} download(s) failed; the previous copies stay");
    }
    Ok(())
}
