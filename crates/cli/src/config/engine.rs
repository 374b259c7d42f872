//! Config sections for the detection engine: `[detection]` (with `[detection.tuning]` and
//! `[[detection.policy]]`), `[inventory]`, `[geoip]` and `[[intel]]`, plus the command-line
//! flags that override them (`EngineFlags`).
//!
//! Two phases: raw serde structs (`deny_unknown_fields`, so a typo is an error naming the key)
//! → a validated `dnsight_engine::EngineConfig` of built objects (inventory loaded, GeoIP
//! opened, feeds parsed). Errors name the file, the key and the fix. Relative paths in the file
//! are relative to the config file's directory; paths from flags are relative to the working
//! directory.

use anyhow::{anyhow, bail, Context};
use dnsight_engine::intel::{Column as IntelColumn, FeedSpec};
use dnsight_engine::{
    Cidr, EngineConfig, Geo, IntelFormat, IntelSet, Inventory, PolicyRule, Tuning,
};
use dnsight_model::Ts;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Top-level sections this module owns.
pub const SECTIONS: &[&str] = &["detection", "inventory", "geoip", "intel"];

/// `[detection]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionRaw {
    /// Days of a device's own activity before its baseline detectors alert (default 7).
    pub learn_days: Option<u32>,
    /// RFC 3339 end of the learning period for every device.
    pub learn_until: Option<String>,
    /// Site time zone for hour-of-week profiles: an IANA name like `Europe/Berlin` (daylight
    /// saving followed; the tz database is embedded), `UTC`, or a fixed offset like `+01:00`.
    pub timezone: Option<String>,
    /// Extra internal DNS suffixes (added to local, lan, home.arpa, internal, corp).
    #[serde(default)]
    pub internal_suffixes: Vec<String>,
    /// Extra internal address ranges (added to RFC 1918, CGNAT, ULA, link-local).
    #[serde(default)]
    pub internal_ranges: Vec<String>,
    /// Groups held to tight profiles (default servers, db).
    pub tight_groups: Option<Vec<String>>,
    /// Detectors to switch off, by name.
    #[serde(default)]
    pub disabled: Vec<String>,
    /// Alert on DNS-over-HTTPS resolver names (resolver bypass). Default true.
    pub doh_bypass: Option<bool>,
    #[serde(default)]
    pub doh_names: Vec<String>,
    pub max_devices: Option<usize>,
    pub max_destinations_per_device: Option<usize>,
    /// Engine worker threads (1..=64, default 1): devices are spread over them by partition
    /// (hash of the address); the alerts are the same for any number.
    pub workers: Option<usize>,
    /// An open alert without a new finding for this many days (event time) leaves the engine
    /// as resolved/expired (default 7).
    pub alert_idle_days: Option<f64>,
    /// Live alerts held by the engine at most (default 50000); beyond it the least recently
    /// seen leave as expired.
    pub max_open_alerts: Option<usize>,
    /// Alerts below this severity are recorded, not handed out (info, low, medium, high,
    /// critical; default low).
    pub min_alert_severity: Option<String>,
    #[serde(default)]
    pub tuning: TuningRaw,
    #[serde(default)]
    pub policy: Vec<PolicyRaw>,
    #[serde(default)]
    pub exempt: Vec<ExemptRaw>,
}

/// `[[detection.exempt]]`: devices whose job looks like an attack (a package mirror, a
/// scanner): findings of `kinds` on `destinations` from them are dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptRaw {
    /// Addresses or CIDR ranges.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Inventory groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Alert kinds (default: every kind but threat_intel and policy).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Registered domains or names (a name covers names below it); default any.
    #[serde(default)]
    pub destinations: Vec<String>,
    pub reason: Option<String>,
}

/// `[detection.tuning]`: every key optional, defaults documented in the detector files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuningRaw {
    pub beacon_min_events: Option<u32>,
    pub beacon_threshold: Option<f64>,
    pub dga_name_threshold: Option<f64>,
    pub dga_nx_burst: Option<u32>,
    pub tunnel_unique_per_hour: Option<u32>,
    pub tunnel_bytes_per_day: Option<u32>,
    pub recon_ptr_burst: Option<u32>,
    pub recon_internal_burst: Option<u32>,
    pub traffic_z: Option<f64>,
    pub traffic_z_tight: Option<f64>,
}

/// `[[detection.policy]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRaw {
    /// Group the rule applies to; omit for every device.
    pub group: Option<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub allow_only: Vec<String>,
    pub allow_internal: Option<bool>,
    pub reason: Option<String>,
    /// Devices (addresses or CIDR ranges) the rule does not apply to.
    #[serde(default)]
    pub except_devices: Vec<String>,
    /// Inventory groups the rule does not apply to.
    #[serde(default)]
    pub except_groups: Vec<String>,
}

/// `[inventory]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryRaw {
    /// CSV file `ip,name,group`.
    pub file: Option<PathBuf>,
    /// DHCP lease files (dnsmasq or ISC dhcpd).
    #[serde(default)]
    pub dhcp_leases: Vec<PathBuf>,
    /// Group name -> CIDR ranges.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[geoip]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipRaw {
    /// MaxMind-format databases: a country (or city) database and optionally an ASN database.
    #[serde(default)]
    pub databases: Vec<PathBuf>,
    /// Databases downloaded from these `http(s)://` addresses into the state directory
    /// (`geoip/`), refreshed every `refresh_secs`; `dnsight geoip update` fetches them now.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Seconds between refreshes of `urls` (default 86400; at least 60).
    pub refresh_secs: Option<u64>,
}

/// `[[intel]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntelRaw {
    pub name: Option<String>,
    /// The feed file. With `url`, the local copy (default: `intel/NAME.txt` in the state
    /// directory).
    pub file: Option<PathBuf>,
    /// `http(s)://` address the feed is downloaded from, every `refresh_secs`.
    pub url: Option<String>,
    /// Seconds between downloads of `url` (default 3600; at least 60).
    pub refresh_secs: Option<u64>,
    /// The feed is flagged stale when its URL has not confirmed it for this long (default
    /// three refreshes, at least a day).
    pub max_age_secs: Option<u64>,
    /// auto, plain, hosts, adblock, rpz, ip, csv, jsonl.
    pub format: Option<String>,
    /// CSV: the indicator column, a number from 1 or a header name.
    pub column: Option<ColumnRaw>,
    /// JSON lines: the indicator field (dotted for nested objects).
    pub field: Option<String>,
    /// What the feed lists (c2, phishing, malware, ...), shown in its alerts.
    pub category: Option<String>,
    /// Severity of its alerts: info, low, medium, high, critical (default: by what matched).
    pub severity: Option<String>,
    /// RFC 3339: entries stop matching after this time.
    pub expires: Option<String>,
}

/// `column = 3` or `column = "ioc_value"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ColumnRaw {
    Number(i64),
    Name(String),
}

/// The engine's sections of the config file.
#[derive(Debug, Default)]
pub struct EngineSections {
    pub detection: DetectionRaw,
    pub inventory: InventoryRaw,
    pub geoip: GeoipRaw,
    pub intel: Vec<IntelRaw>,
    /// `[[resolver.blocking.group]]` (the resolver's section): their `clients` are inventory
    /// groups too (one group table, see [`super::GroupTable`]).
    pub blocking_groups: Vec<super::resolver::GroupRaw>,
    /// Where feeds and databases from URLs are kept (`--state`; default [`downloads_dir`]).
    pub downloads: Option<PathBuf>,
}

/// Where downloads go without `--state`: `$XDG_CACHE_HOME/dnsight`, else
/// `$HOME/.cache/dnsight`, else `.dnsight-cache` in the working directory.
pub fn downloads_dir(state: Option<&Path>) -> PathBuf {
    if let Some(s) = state {
        return s.to_path_buf();
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(x) = env("XDG_CACHE_HOME") {
        return x.join("dnsight");
    }
    match env("HOME") {
        Some(h) => h.join(".cache").join("dnsight"),
        None => PathBuf::from(".dnsight-cache"),
    }
}

/// A name made safe as a file name.
fn file_safe(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match t.trim_start_matches('.') {
        "" => "feed".into(),
        x => x.into(),
    }
}

fn check_url(url: &str, what: &str) -> anyhow::Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("{what}: url = {url:?}: use an http:// or https:// address");
    }
    Ok(())
}

fn refresh(v: Option<u64>, dflt: u64, what: &str) -> anyhow::Result<std::time::Duration> {
    let every = v.unwrap_or(dflt);
    if every < 60 {
        bail!("{what}: refresh_secs = {every}: use at least 60");
    }
    Ok(std::time::Duration::from_secs(every))
}

/// Detection flags of `dnsight analyze` (and `serve`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct EngineFlags {
    /// TOML config file (see examples/detection.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for persisted baselines and alerts (learn from last week, detect on this week).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// MaxMind-format GeoIP database (country and/or ASN). Repeatable.
    #[arg(long, value_name = "MMDB")]
    pub geoip: Vec<PathBuf>,
    /// Device inventory CSV: ip,name,group.
    #[arg(long, value_name = "CSV")]
    pub inventory: Option<PathBuf>,
    /// Threat-intel feed file (plain, hosts, adblock, RPZ or IP list; sniffed). Repeatable.
    #[arg(long, value_name = "F")]
    pub intel: Vec<PathBuf>,
    /// Learning period per device, in days of its own activity (default 7).
    #[arg(long, value_name = "N", conflicts_with = "learn_until")]
    pub learn_days: Option<u32>,
    /// Learn until this time (RFC 3339) for every device, detect after it.
    #[arg(long, value_name = "RFC3339")]
    pub learn_until: Option<String>,
    /// Write alerts as JSON lines to this file (`-` = stdout).
    #[arg(long, value_name = "FILE")]
    pub alerts_out: Option<PathBuf>,
    /// With --state: feed events even if the state already holds their time. By default events
    /// at or before the latest event time in the state are skipped (`already_in_state`), so
    /// analysing the same file twice does not count it twice.
    #[arg(long, requires = "state")]
    pub replay: bool,
    /// Engine worker threads (1 to 64; default `[detection] workers`, else 1). The alerts do
    /// not depend on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=64))]
    pub workers: Option<u8>,
}

/// Picks the engine's sections out of a parsed config file (other sections are left to their
/// owners) and deserialises each strictly.
pub fn parse_sections(text: &str, file: &Path) -> anyhow::Result<EngineSections> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("{}: not valid TOML", file.display()))?;
    let mut s = EngineSections::default();
    let sec = |k: &str| table.get(k).cloned();
    if let Some(v) = sec("detection") {
        s.detection = v
            .try_into()
            .map_err(|e| anyhow!("{}: [detection]: {e}", file.display()))?;
    }
    if let Some(v) = sec("inventory") {
        s.inventory = v
            .try_into()
            .map_err(|e| anyhow!("{}: [inventory]: {e}", file.display()))?;
    }
    if let Some(v) = sec("geoip") {
        s.geoip = v
            .try_into()
            .map_err(|e| anyhow!("{}: [geoip]: {e}", file.display()))?;
    }
    if let Some(v) = sec("intel") {
        s.intel = v.try_into().map_err(|e| anyhow!("{}: [[intel]]: {e} (each entry needs `file = \"...\"` or `url = \"https://...\"`; optional name, refresh_secs, max_age_secs, format, column, field, category, severity, expires)", file.display()))?;
    }
    s.blocking_groups = super::resolver::blocking_groups(&table, file)?;
    Ok(s)
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    let b =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

fn rel(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Validates the raw sections (file paths relative to `base_dir`) into an [`EngineConfig`].
/// Feeds and databases from URLs are used when their local copy is there (nothing is
/// downloaded here).
pub fn validate(s: EngineSections, file: &Path, base_dir: &Path) -> anyhow::Result<EngineConfig> {
    validate_with_files(s, file, base_dir, false).map(|(cfg, _)| cfg)
}

/// The intel feeds and GeoIP databases of a configuration, and the downloads that keep the
/// URL ones fresh.
#[derive(Debug, Default)]
pub struct EnrichFiles {
    pub intel: IntelFiles,
    pub geo: GeoFiles,
    pub fetches: Vec<crate::fetch::Fetch>,
}

/// The engine's sections of a configuration as files, without loading anything.
pub fn enrich_files(
    s: &EngineSections,
    file: &Path,
    base_dir: &Path,
) -> anyhow::Result<EnrichFiles> {
    let f = file.display().to_string();
    let dl = downloads_dir(s.downloads.as_deref());
    let intel = IntelFiles::from_sections(&s.intel, base_dir, &dl, &f)?;
    let geo = GeoFiles::from_section(&s.geoip, base_dir, &dl, &f)?;
    let mut fetches = intel.fetches();
    fetches.extend(geo.fetches.iter().cloned());
    Ok(EnrichFiles {
        intel,
        geo,
        fetches,
    })
}

/// [`validate`], also returning the feed and database files (for reloading them later);
/// with `fetch_missing`, downloads the URL copies that are not there yet first (`serve`).
fn validate_with_files(
    s: EngineSections,
    file: &Path,
    base_dir: &Path,
    fetch_missing: bool,
) -> anyhow::Result<(EngineConfig, EnrichFiles)> {
    let mut files = enrich_files(&s, file, base_dir)?;
    if fetch_missing {
        crate::fetch::prepare(&files.fetches);
        // the change stamps start from the copies as loaded now
        files.intel.changed();
        files.geo.changed();
    }
    let f = file.display();
    let mut cfg = EngineConfig::default();
    let d = s.detection;
    if let Some(n) = d.learn_days {
        if n > 3650 {
            bail!(
                "{f}: detection.learn_days = {n} is out of range; use 0..=3650 (days, default 7)"
            );
        }
        cfg.learn_days = n;
    }
    if let Some(u) = &d.learn_until {
        cfg.learn_until = Some(Ts::parse(u).ok_or_else(|| anyhow!("{f}: detection.learn_until = {u:?} is not a time; use RFC 3339 like \"2026-11-22T00:00:00Z\""))?);
    }
    if let Some(tz) = &d.timezone {
        cfg.tz = dnsight_engine::SiteTz::parse(tz)
            .map_err(|e| anyhow!("{f}: detection.timezone: {e}"))?;
    }
    for sfx in &d.internal_suffixes {
        let n = dnsight_model::Name::parse(sfx).map_err(|e| {
            anyhow!("{f}: detection.internal_suffixes: {sfx:?} is not a DNS name ({e})")
        })?;
        cfg.internal_suffixes.push(n.as_str().into());
    }
    for r in &d.internal_ranges {
        cfg.internal_ranges
            .push(Cidr::parse(r).map_err(|e| anyhow!("{f}: detection.internal_ranges: {e}"))?);
    }
    if let Some(t) = d.tight_groups {
        cfg.tight_groups = t.into_iter().map(Into::into).collect();
    }
    let detectors = dnsight_engine::config::detector_names();
    for x in &d.disabled {
        if !detectors.contains(&x.as_str()) {
            bail!(
                "{f}: detection.disabled: unknown detector {x:?}; known: {}",
                detectors.join(", ")
            );
        }
        cfg.disabled.push(x.as_str().into());
    }
    if let Some(b) = d.doh_bypass {
        cfg.doh_bypass = b;
    }
    for n in &d.doh_names {
        let n = dnsight_model::Name::parse(n)
            .map_err(|e| anyhow!("{f}: detection.doh_names: {n:?} is not a DNS name ({e})"))?;
        cfg.doh_names.push(n.as_str().into());
    }
    if let Some(m) = d.max_devices {
        cfg.max_devices = m.max(1);
    }
    if let Some(w) = d.workers {
        if !(1..=64).contains(&w) {
            bail!("{f}: detection.workers: {w} is out of range (1 to 64)");
        }
        cfg.workers = w;
    }
    if let Some(m) = d.max_destinations_per_device {
        cfg.max_dests_per_device = m.max(1);
    }
    if let Some(days) = d.alert_idle_days {
        if !(days > 0.0 && days <= 3650.0) {
            bail!("{f}: detection.alert_idle_days = {days} is out of range; use a number of days in (0, 3650] (default 7)");
        }
        cfg.alert_idle_secs = (days * 86_400.0).round() as i64;
    }
    if let Some(m) = d.max_open_alerts {
        if m == 0 {
            bail!("{f}: detection.max_open_alerts = 0: the engine must hold at least one live alert; use e.g. 50000 (the default)");
        }
        cfg.max_open_alerts = m;
    }
    if let Some(m) = &d.min_alert_severity {
        cfg.min_alert_severity = dnsight_engine::Severity::parse(m).ok_or_else(|| {
            anyhow::anyhow!("{f}: detection.min_alert_severity = {m:?} is not a severity; use one of info, low, medium, high, critical (default low; info hands out every alert)")
        })?;
    }
    cfg.tuning = tuning(d.tuning, &f.to_string())?;
    for (i, p) in d.policy.into_iter().enumerate() {
        if p.deny.is_empty() && p.allow_only.is_empty() {
            bail!(
                "{f}: detection.policy[{i}]: a rule needs `deny = [...]` or `allow_only = [...]`"
            );
        }
        let names =
            |v: Vec<String>, key: &str| -> anyhow::Result<Vec<compact_str::CompactString>> {
                v.iter()
                    .map(|n| {
                        dnsight_model::Name::parse(n.trim_start_matches("*."))
                            .map(|n| n.as_str().into())
                            .map_err(|e| {
                                anyhow!(
                                "{f}: detection.policy[{i}].{key}: {n:?} is not a DNS name ({e})"
                            )
                            })
                    })
                    .collect()
            };
        let except_devices = p
            .except_devices
            .iter()
            .map(|c| {
                Cidr::parse(c).map_err(|e| {
                    anyhow!("{f}: detection.policy[{i}].except_devices: {e} (an address like \"10.0.0.5\" or a range like \"10.1.0.0/24\")")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut except_groups = Vec::new();
        for g in &p.except_groups {
            if g.trim().is_empty() {
                bail!("{f}: detection.policy[{i}].except_groups: an empty group name; use the inventory group names, e.g. [\"mirrors\"]");
            }
            except_groups.push(g.trim().into());
        }
        cfg.policy.push(PolicyRule {
            group: p.group.map(Into::into),
            deny: names(p.deny, "deny")?,
            allow_only: names(p.allow_only, "allow_only")?,
            allow_internal: p.allow_internal.unwrap_or(true),
            reason: p
                .reason
                .unwrap_or_else(|| "configured policy".into())
                .into(),
            except_devices,
            except_groups,
        });
    }
    for (i, x) in d.exempt.into_iter().enumerate() {
        let at = format!("{f}: detection.exempt[{i}]");
        if x.devices.is_empty() && x.groups.is_empty() {
            bail!("{at}: an exemption needs `devices = [...]` (addresses or ranges) or `groups = [...]`: it never applies to everyone");
        }
        let devices = x
            .devices
            .iter()
            .map(|c| {
                Cidr::parse(c).map_err(|e| {
                    anyhow!("{at}.devices: {e} (an address like \"10.0.0.5\" or a range like \"10.1.0.0/24\")")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut kinds = Vec::new();
        for k in &x.kinds {
            kinds.push(dnsight_engine::Kind::parse(k).ok_or_else(|| {
                let all: Vec<&str> = dnsight_engine::Kind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                anyhow!(
                    "{at}.kinds: {k:?} is not an alert kind; use some of {}",
                    all.join(", ")
                )
            })?);
        }
        if kinds.is_empty() {
            // a mirror's job can look like novelty, beaconing, tunneling or a traffic change;
            // feeds and configured rules stay in force unless named
            kinds = dnsight_engine::Kind::ALL
                .into_iter()
                .filter(|k| {
                    !matches!(
                        k,
                        dnsight_engine::Kind::ThreatIntel | dnsight_engine::Kind::Policy
                    )
                })
                .collect();
        }
        let mut destinations = Vec::new();
        for n in &x.destinations {
            let name = dnsight_model::Name::parse(n.trim_start_matches("*."))
                .map_err(|e| anyhow!("{at}.destinations: {n:?} is not a DNS name ({e})"))?;
            destinations.push(name.as_str().into());
        }
        let mut groups = Vec::new();
        for g in &x.groups {
            if g.trim().is_empty() {
                bail!("{at}.groups: an empty group name; use the inventory group names, e.g. [\"mirrors\"]");
            }
            groups.push(g.trim().into());
        }
        cfg.exempt.push(dnsight_engine::config::Exemption {
            devices,
            groups,
            kinds,
            destinations,
            reason: x.reason.unwrap_or_default().into(),
        });
    }
    // inventory: the CSV's hosts, the leases' names, and every group block of the one group
    // table (inventory groups and the resolver's blocking groups)
    let mut inv = Inventory::new();
    let csv = super::InventoryCsv::read(&s.inventory, base_dir)?;
    let groups = super::GroupTable::build(
        &s.inventory,
        csv.as_ref(),
        &s.blocking_groups,
        &f.to_string(),
    )?;
    if let Some(csv) = &csv {
        inv.load_csv(&csv.text);
    }
    for p in &s.inventory.dhcp_leases {
        let p = rel(base_dir, p);
        inv.load_dhcp_leases(&read(&p, "DHCP leases (inventory.dhcp_leases)")?);
    }
    for b in groups.blocks.iter().filter(|b| !b.from_csv) {
        inv.add_group(b.cidr, &b.group);
    }
    cfg.inventory = inv;
    // geoip
    cfg.geoip = files
        .geo
        .load()
        .map_err(|e| anyhow!("{f}: [geoip]: {e}"))?
        .map(Arc::new);
    // intel
    cfg.intel = Arc::new(files.intel.load()?);
    Ok((cfg, files))
}

/// The GeoIP databases of a configuration: local files and downloaded copies.
#[derive(Debug, Default)]
pub struct GeoFiles {
    /// `databases`: must exist.
    pub files: Vec<PathBuf>,
    /// `urls`: used once downloaded.
    pub fetches: Vec<crate::fetch::Fetch>,
    stamps: Vec<Option<(std::time::SystemTime, u64)>>,
}

impl GeoFiles {
    fn from_section(g: &GeoipRaw, base_dir: &Path, dl: &Path, f: &str) -> anyhow::Result<GeoFiles> {
        let files: Vec<PathBuf> = g.databases.iter().map(|p| rel(base_dir, p)).collect();
        let every = refresh(g.refresh_secs, 86_400, &format!("{f}: [geoip]"))?;
        let mut fetches: Vec<crate::fetch::Fetch> = Vec::new();
        for url in &g.urls {
            check_url(url, &format!("{f}: [geoip] urls"))?;
            let last = url
                .split(['?', '#'])
                .next()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("");
            let mut name = file_safe(last);
            if !name.ends_with(".mmdb") {
                name.push_str(".mmdb");
            }
            let path = dl.join("geoip").join(&name);
            if fetches.iter().any(|x| x.path == path) {
                bail!("{f}: [geoip] urls: two urls end in the same file name {name:?}; each database needs its own name");
            }
            fetches.push(crate::fetch::Fetch::new(
                &name,
                url,
                path,
                every,
                crate::fetch::Check::Mmdb,
            ));
        }
        if g.refresh_secs.is_some() && g.urls.is_empty() {
            bail!("{f}: [geoip] refresh_secs needs urls; add urls = [\"https://...\"] or remove refresh_secs");
        }
        let mut me = GeoFiles {
            files,
            fetches,
            stamps: Vec::new(),
        };
        me.stamps = me.all().iter().map(|p| stamp(p)).collect();
        Ok(me)
    }
    fn all(&self) -> Vec<PathBuf> {
        let mut v = self.files.clone();
        v.extend(self.fetches.iter().map(|x| x.path.clone()));
        v
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.fetches.is_empty()
    }
    /// The downloaded copies not there yet.
    pub fn missing(&self) -> Vec<&crate::fetch::Fetch> {
        self.fetches.iter().filter(|x| !x.path.exists()).collect()
    }
    /// Opens every database there is (`databases` must exist; downloads not there yet are
    /// left out). `None` when there is none.
    pub fn load(&self) -> Result<Option<Geo>, String> {
        let mut paths: Vec<&Path> = self.files.iter().map(|p| p.as_path()).collect();
        paths.extend(
            self.fetches
                .iter()
                .map(|x| x.path.as_path())
                .filter(|p| p.exists()),
        );
        if paths.is_empty() {
            return Ok(None);
        }
        Geo::open(&paths).map(Some)
    }
    /// Some database file changed (or appeared) since the last call.
    pub fn changed(&mut self) -> bool {
        let now: Vec<_> = self.all().iter().map(|p| stamp(p)).collect();
        let changed = now != self.stamps;
        self.stamps = now;
        changed
    }
}

/// The threat-intel feed files of a configuration, so a running `serve` can reload them when
/// they change on disk (the engine takes the new set with `Engine::set_intel`).
#[derive(Debug, Default)]
pub struct IntelFiles {
    pub feeds: Vec<IntelFile>,
    /// (modified time, length) of each file when last checked.
    stamps: Vec<Option<(std::time::SystemTime, u64)>>,
}

#[derive(Debug)]
pub struct IntelFile {
    pub name: String,
    pub path: PathBuf,
    pub spec: FeedSpec,
    /// Downloaded from here (into `path`).
    pub url: Option<String>,
    pub every: std::time::Duration,
    pub max_age: Option<std::time::Duration>,
}

fn stamp(p: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl IntelFiles {
    /// Validates `[[intel]]` entries (formats, expiry times); paths are relative to
    /// `base_dir`, downloads without a `file` go to `dl/intel/`.
    fn from_sections(
        raw: &[IntelRaw],
        base_dir: &Path,
        dl: &Path,
        f: &str,
    ) -> anyhow::Result<IntelFiles> {
        let mut feeds: Vec<IntelFile> = Vec::new();
        for (i, it) in raw.iter().enumerate() {
            let what = format!("{f}: intel[{i}]");
            let format = match &it.format {
                Some(x) => IntelFormat::parse(x).ok_or_else(|| {
                    anyhow!("{what}.format = {x:?}: use auto, plain, hosts, adblock, rpz, ip, csv or jsonl")
                })?,
                None => IntelFormat::Auto,
            };
            let expires = match &it.expires {
                Some(e) => Some(
                    Ts::parse(e).ok_or_else(|| anyhow!("{what}.expires = {e:?}: use RFC 3339"))?,
                ),
                None => None,
            };
            let column = match &it.column {
                None => None,
                Some(ColumnRaw::Number(n)) if *n >= 1 => Some(IntelColumn::Index(*n as usize)),
                Some(ColumnRaw::Number(n)) => bail!("{what}.column = {n}: columns count from 1"),
                Some(ColumnRaw::Name(n)) if n.trim().is_empty() => {
                    bail!("{what}.column: an empty name; use a header name like \"ioc_value\" or a number from 1")
                }
                Some(ColumnRaw::Name(n)) => Some(match n.trim().parse::<usize>() {
                    Ok(k) if k >= 1 => IntelColumn::Index(k),
                    _ => IntelColumn::Name(n.trim().into()),
                }),
            };
            if format == IntelFormat::Csv && column.is_none() {
                bail!("{what}: format = \"csv\" needs column = N (from 1) or column = \"header name\"");
            }
            if column.is_some() && format != IntelFormat::Csv {
                bail!("{what}: column is for format = \"csv\"");
            }
            if it.field.is_some() && !matches!(format, IntelFormat::Jsonl | IntelFormat::Auto) {
                bail!("{what}: field is for format = \"jsonl\"");
            }
            let severity = match &it.severity {
                Some(x) => Some(dnsight_engine::Severity::parse(x).ok_or_else(|| {
                    anyhow!("{what}.severity = {x:?}: use info, low, medium, high or critical")
                })?),
                None => None,
            };
            if let Some(u) = &it.url {
                check_url(u, &what)?;
            } else if it.refresh_secs.is_some() {
                bail!("{what}: refresh_secs needs a url; add url = \"https://...\" or remove refresh_secs");
            }
            let every = refresh(it.refresh_secs, 3600, &what)?;
            let name = match (&it.name, &it.file, &it.url) {
                (Some(n), _, _) => n.clone(),
                (None, Some(p), _) => p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("feed{i}")),
                (None, None, Some(_)) => bail!("{what}: a feed from a url needs a name (name = \"...\"): it names the feed in alerts and its download"),
                (None, None, None) => bail!("{what}: needs file = \"...\" or url = \"https://...\""),
            };
            let path = match &it.file {
                Some(p) => rel(base_dir, p),
                None => dl.join("intel").join(format!("{}.txt", file_safe(&name))),
            };
            if it.url.is_some() {
                if let Some(o) = feeds.iter().find(|x| x.path == path) {
                    bail!("{what}: feed {name:?} would download to the same file as {:?}; give it another name or a file", o.name);
                }
            }
            feeds.push(IntelFile {
                name,
                path,
                spec: FeedSpec {
                    format,
                    column,
                    field: it.field.clone(),
                    expires,
                    category: it.category.as_deref().map(|c| c.trim().into()),
                    severity,
                },
                url: it.url.clone(),
                every,
                max_age: it.max_age_secs.map(std::time::Duration::from_secs),
            });
        }
        let stamps = feeds.iter().map(|x| stamp(&x.path)).collect();
        Ok(IntelFiles { feeds, stamps })
    }
    /// The downloads that keep the URL feeds fresh.
    pub fn fetches(&self) -> Vec<crate::fetch::Fetch> {
        self.feeds
            .iter()
            .filter_map(|x| {
                let url = x.url.as_ref()?;
                let mut f = crate::fetch::Fetch::new(
                    &x.name,
                    url,
                    x.path.clone(),
                    x.every,
                    crate::fetch::Check::Intel(x.spec.clone()),
                );
                if let Some(m) = x.max_age {
                    f.max_age = m;
                }
                Some(f)
            })
            .collect()
    }
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }
    /// Reads and parses every feed file. A missing or unreadable file is an error (a running
    /// engine keeps its previous set then), except a URL feed not downloaded yet: empty until
    /// its download comes.
    pub fn load(&self) -> anyhow::Result<IntelSet> {
        let mut set = IntelSet::new();
        for (i, x) in self.feeds.iter().enumerate() {
            let text = if x.url.is_some() && !x.path.exists() {
                String::new()
            } else {
                read(&x.path, &format!("intel feed (intel[{i}].file)"))?
            };
            set.add_feed_with(&x.name, &text, &x.spec);
        }
        Ok(set)
    }
    /// Some feed file's modification time or length changed since the last call (or since
    /// these files were first read).
    pub fn changed(&mut self) -> bool {
        let now: Vec<_> = self.feeds.iter().map(|x| stamp(&x.path)).collect();
        let changed = now != self.stamps;
        self.stamps = now;
        changed
    }
}

fn tuning(t: TuningRaw, f: &str) -> anyhow::Result<Tuning> {
    let mut out = Tuning::default();
    let prob = |v: Option<f64>, key: &str, dflt: f64| -> anyhow::Result<f64> {
        match v {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(x),
            Some(x) => bail!("{f}: detection.tuning.{key} = {x}: must be between 0 and 1"),
            None => Ok(dflt),
        }
    };
    out.beacon_threshold = prob(t.beacon_threshold, "beacon_threshold", out.beacon_threshold)?;
    out.dga_name_threshold = prob(
        t.dga_name_threshold,
        "dga_name_threshold",
        out.dga_name_threshold,
    )?;
    let pos = |v: Option<u32>, key: &str, dflt: u32| -> anyhow::Result<u32> {
        match v {
            Some(0) => bail!("{f}: detection.tuning.{key} = 0: must be at least 1"),
            Some(x) => Ok(x),
            None => Ok(dflt),
        }
    };
    out.beacon_min_events = pos(
        t.beacon_min_events,
        "beacon_min_events",
        out.beacon_min_events,
    )?
    .max(4);
    out.dga_nx_burst = pos(t.dga_nx_burst, "dga_nx_burst", out.dga_nx_burst)?;
    out.tunnel_unique_per_hour = pos(
        t.tunnel_unique_per_hour,
        "tunnel_unique_per_hour",
        out.tunnel_unique_per_hour,
    )?;
    out.tunnel_bytes_per_day = pos(
        t.tunnel_bytes_per_day,
        "tunnel_bytes_per_day",
        out.tunnel_bytes_per_day,
    )?;
    out.recon_ptr_burst = pos(t.recon_ptr_burst, "recon_ptr_burst", out.recon_ptr_burst)?;
    out.recon_internal_burst = pos(
        t.recon_internal_burst,
        "recon_internal_burst",
        out.recon_internal_burst,
    )?;
    for (v, key, slot) in [
        (t.traffic_z, "traffic_z", &mut out.traffic_z),
        (
            t.traffic_z_tight,
            "traffic_z_tight",
            &mut out.traffic_z_tight,
        ),
    ] {
        if let Some(x) = v {
            if !(1.0..=100.0).contains(&x) {
                bail!("{f}: detection.tuning.{key} = {x}: use a z-score between 1 and 100");
            }
            *slot = x;
        }
    }
    Ok(out)
}

/// Reads `--config` (if any), merges the flags over it and builds the engine config.
/// Returns the config and the state directory (`--state`).
pub fn build(flags: &EngineFlags) -> anyhow::Result<(EngineConfig, Option<PathBuf>)> {
    build_with_files(flags, false).map(|(cfg, state, _)| (cfg, state))
}

/// [`build`], also returning the feed and database files it loaded (their change stamps
/// taken before reading them), so a running `serve` can reload them when they change; with
/// `fetch_missing`, URL copies not there yet are downloaded first.
pub fn build_with_files(
    flags: &EngineFlags,
    fetch_missing: bool,
) -> anyhow::Result<(EngineConfig, Option<PathBuf>, EnrichFiles)> {
    let (s, file, base_dir) = sections(flags)?;
    let (mut cfg, files) = validate_with_files(s, &file, &base_dir, fetch_missing)?;
    cfg.replay = flags.replay;
    if let Some(w) = flags.workers {
        cfg.workers = usize::from(w);
    }
    Ok((cfg, flags.state.clone(), files))
}

/// The feed and database files of the config the flags name (nothing loaded or fetched).
pub fn files(flags: &EngineFlags) -> anyhow::Result<EnrichFiles> {
    let (s, file, base_dir) = sections(flags)?;
    enrich_files(&s, &file, &base_dir)
}

/// The config file's engine sections with the flags applied over them; the file's path and
/// the directory its relative paths start from.
fn sections(flags: &EngineFlags) -> anyhow::Result<(EngineSections, PathBuf, PathBuf)> {
    let (sections, file, base_dir) = match &flags.config {
        Some(p) => {
            let text = read(p, "config file")?;
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            (parse_sections(&text, p)?, p.clone(), base)
        }
        None => (
            EngineSections::default(),
            PathBuf::from("<flags>"),
            PathBuf::from("."),
        ),
    };
    let mut s = sections;
    // flags over file; flag paths are relative to the working directory
    let cwd = std::env::current_dir().unwrap_or_default();
    if let Some(n) = flags.learn_days {
        s.detection.learn_days = Some(n);
        s.detection.learn_until = None;
    }
    if let Some(u) = &flags.learn_until {
        Ts::parse(u).ok_or_else(|| {
            anyhow!("--learn-until {u:?} is not a time; use RFC 3339 like 2026-11-22T00:00:00Z")
        })?;
        s.detection.learn_until = Some(u.clone());
    }
    if let Some(p) = &flags.inventory {
        s.inventory.file = Some(cwd.join(p));
    }
    if !flags.geoip.is_empty() {
        s.geoip.databases = flags.geoip.iter().map(|p| cwd.join(p)).collect();
        s.geoip.urls.clear();
        s.geoip.refresh_secs = None;
    }
    for p in &flags.intel {
        s.intel.push(IntelRaw {
            file: Some(cwd.join(p)),
            ..IntelRaw::default()
        });
    }
    s.downloads = flags.state.clone();
    Ok((s, file, base_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    #[test]
    fn every_example_config_parses() {
        let mut n = 0;
        for e in std::fs::read_dir(examples_dir()).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                let s =
                    parse_sections(&text, &p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                validate(s, &p, p.parent().unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 1, "no example configs found");
    }

    #[test]
    fn detection_example_builds_everything() {
        let flags = EngineFlags {
            config: Some(examples_dir().join("detection.toml")),
            ..Default::default()
        };
        let (cfg, state) = build(&flags).unwrap();
        assert!(state.is_none());
        assert_eq!(cfg.learn_days, 7);
        assert_eq!(cfg.tz.name(), "+01:00");
        assert!(cfg.tz.is_fixed());
        assert!(
            cfg.inventory
                .lookup("10.0.1.10".parse().unwrap())
                .group
                .as_deref()
                == Some("db")
        );
        assert!(!cfg.intel.is_empty());
        assert!(cfg
            .policy
            .iter()
            .any(|p| p.group.as_deref() == Some("servers")
                && p.deny.iter().any(|d| d == "deb.debian.org")
                && p.excepts("10.0.1.5".parse().unwrap(), Some("servers"))));
        assert_eq!(
            (cfg.alert_idle_secs, cfg.max_open_alerts),
            (7 * 86_400, 50_000)
        );
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let f = Path::new("x.toml");
        let e = parse_sections("[detection]\nlearn_dayz = 3\n", f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("learn_dayz") && e.contains("[detection]"), "{e}");
        let s = parse_sections("[detection]\ntimezone = \"Mars/Olympus\"\n", f).unwrap();
        let e = validate(s, f, Path::new(".")).unwrap_err().to_string();
        assert!(
            e.contains("detection.timezone")
                && e.contains("Mars/Olympus")
                && e.contains("Europe/Berlin")
                && e.contains("+01:00"),
            "{e}"
        );
        for (good, name) in [
            ("Europe/Berlin", "Europe/Berlin"),
            ("america/new_york", "America/New_York"),
            ("UTC", "UTC"),
            ("-05:30", "-05:30"),
        ] {
            let s = parse_sections(&format!("[detection]\ntimezone = \"{good}\"\n"), f).unwrap();
            let cfg = validate(s, f, Path::new(".")).unwrap();
            assert_eq!(cfg.tz.name(), name);
        }
        let s = parse_sections("[detection]\ntimezone = \"+25:00\"\n", f).unwrap();
        let e = validate(s, f, Path::new(".")).unwrap_err().to_string();
        assert!(
            e.contains("detection.timezone") && e.contains("+25:00"),
            "{e}"
        );
        let s = parse_sections("[detection]\ndisabled = [\"beaconnig\"]\n", f).unwrap();
        let e = validate(s, f, Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("beaconing"), "{e}");
        let s = parse_sections(
            "[[detection.policy]]\ndeny = [\"x.example\"]\nexcept_devices = [\"10.0.0.0/33\"]\n",
            f,
        )
        .unwrap();
        let e = validate(s, f, Path::new(".")).unwrap_err().to_string();
        assert!(
            e.contains("detection.policy[0].except_devices") && e.contains("10.0.0.0/33"),
            "{e}"
        );
        let s = parse_sections(
            "[[detection.policy]]\ndeny = [\"x.example\"]\nexcept_device = [\"10.0.0.5\"]\n",
            f,
        );
        assert!(s.unwrap_err().to_string().contains("except_device"));
        let s = parse_sections(
            "[detection]\nalert_idle_days = 2.5\nmax_open_alerts = 1000\n[[detection.policy]]\ndeny = [\"x.example\"]\nexcept_devices = [\"10.0.0.5\", \"10.1.0.0/24\"]\nexcept_groups = [\"mirrors\"]\n",
            f,
        )
        .unwrap();
        let cfg = validate(s, f, Path::new(".")).unwrap();
        assert_eq!((cfg.alert_idle_secs, cfg.max_open_alerts), (216_000, 1000));
        assert!(cfg.policy[0].excepts("10.1.0.9".parse().unwrap(), None));
        assert!(cfg.policy[0].excepts("10.2.0.9".parse().unwrap(), Some("mirrors")));
        assert!(!cfg.policy[0].excepts("10.2.0.9".parse().unwrap(), Some("ws")));
        let s = parse_sections("[detection]\nmax_open_alerts = 0\n", f).unwrap();
        let e = validate(s, f, Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("max_open_alerts"), "{e}");
        let s = parse_sections("[[detection.policy]]\ngroup = \"db\"\n", f).unwrap();
        assert!(validate(s, f, Path::new("."))
            .unwrap_err()
            .to_string()
            .contains("allow_only"));
        let s =
            parse_sections("[inventory]\ngroups = { servers = [\"10.0.0.0/40\"] }\n", f).unwrap();
        assert!(validate(s, f, Path::new("."))
            .unwrap_err()
            .to_string()
            .contains("inventory.groups.servers"));
        // other sections are not ours: left alone
        assert!(parse_sections("[resolver]\nlisten = \"x\"\n", f).is_ok());
    }

    #[test]
    fn intel_and_geoip_from_urls() {
        let f = Path::new("x.toml");
        let err = |text: &str| {
            let s = parse_sections(text, f).unwrap();
            format!("{:#}", validate(s, f, Path::new(".")).unwrap_err())
        };
        for (text, want) in [
            ("[[intel]]\nname = \"a\"\nurl = \"ftp://x/feed\"\n", "http://"),
            ("[[intel]]\nurl = \"https://x/feed\"\n", "needs a name"),
            ("[[intel]]\nname = \"a\"\nurl = \"https://x/f\"\nrefresh_secs = 5\n", "at least 60"),
            ("[[intel]]\nfile = \"f.txt\"\nrefresh_secs = 600\n", "needs a url"),
            ("[[intel]]\nname = \"a\"\nurl = \"https://x/f\"\nformat = \"csv\"\n", "column"),
            ("[[intel]]\nname = \"a\"\nurl = \"https://x/f\"\ncolumn = 0\nformat = \"csv\"\n", "from 1"),
            ("[[intel]]\nname = \"a\"\nurl = \"https://x/f\"\nseverity = \"urgent\"\n", "info, low, medium, high or critical"),
            ("[[intel]]\nname = \"a\"\nurl = \"https://x/f\"\n[[intel]]\nname = \"a\"\nurl = \"https://y/f\"\n", "same file"),
            ("[geoip]\nrefresh_secs = 600\n", "needs urls"),
            ("[geoip]\nurls = [\"https://a/x.mmdb\", \"https://b/x.mmdb\"]\n", "same file name"),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
        // URL copies not downloaded yet: the config is valid, the feed empty, no database
        let dir = tempfile::tempdir().unwrap();
        let text = "[geoip]\nurls = [\"https://a/country.mmdb?v=1\"]\n[[intel]]\nname = \"abuse ch/tf\"\nurl = \"https://x/f.csv\"\nformat = \"csv\"\ncolumn = \"ioc_value\"\ncategory = \"c2\"\nseverity = \"High\"\n";
        let mut s = parse_sections(text, f).unwrap();
        s.downloads = Some(dir.path().to_path_buf());
        let files = enrich_files(&s, f, Path::new(".")).unwrap();
        let paths: Vec<_> = files
            .fetches
            .iter()
            .map(|x| x.path.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("intel/abuse_ch_tf.txt"),
                PathBuf::from("geoip/country.mmdb")
            ]
        );
        assert_eq!(files.fetches[0].every, std::time::Duration::from_secs(3600));
        let cfg = validate(s, f, Path::new(".")).unwrap();
        assert!(cfg.geoip.is_none());
        let feed = &cfg.intel.feeds()[0];
        assert_eq!(
            (feed.domains, feed.category.as_deref(), feed.severity),
            (0, Some("c2"), Some(dnsight_engine::Severity::High))
        );
    }

    #[test]
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("dnsight-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let feed = dir.join("feed.txt");
        std::fs::write(&feed, "||bad.example^\n").unwrap();
        let cfgp = dir.join("c.toml");
        std::fs::write(&cfgp, "[detection]\nlearn_days = 3\n").unwrap();
        let flags = EngineFlags {
            config: Some(cfgp),
            learn_until: Some("2026-11-22T00:00:00Z".into()),
            intel: vec![feed],
            state: Some(dir.clone()),
            ..Default::default()
        };
        let (cfg, state) = build(&flags).unwrap();
        assert_eq!(cfg.learn_days, 3);
        assert_eq!(cfg.learn_until, Ts::parse("2026-11-22T00:00:00Z"));
        assert_eq!(cfg.intel.feeds().len(), 1);
        assert_eq!(state.as_deref(), Some(dir.as_path()));
        let bad = EngineFlags {
            learn_until: Some("yesterday".into()),
            ..Default::default()
        };
        assert!(build(&bad).unwrap_err().to_string().contains("RFC 3339"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn exemptions_and_the_minimum_severity() {
        let f = Path::new("t.toml");
        let s = parse_sections(
            "[detection]\nmin_alert_severity = \"medium\"\n[[detection.exempt]]\ndevices = [\"10.0.0.80\", \"10.9.0.0/24\"]\nkinds = [\"tunneling\"]\ndestinations = [\"*.debian.org\"]\nreason = \"mirror\"\n[[detection.exempt]]\ngroups = [\"mirrors\"]\n",
            f,
        )
        .unwrap();
        let cfg = validate(s, f, Path::new(".")).unwrap();
        assert_eq!(cfg.min_alert_severity, dnsight_engine::Severity::Medium);
        assert_eq!(cfg.exempt.len(), 2);
        let (x, ip) = (&cfg.exempt[0], "10.9.0.7".parse().unwrap());
        use dnsight_engine::Kind;
        assert!(x.covers(Kind::Tunneling, "debian.org", ip, None));
        assert!(x.covers(Kind::Tunneling, "deb.debian.org", ip, None));
        assert!(!x.covers(Kind::Tunneling, "notdebian.org", ip, None));
        assert!(!x.covers(Kind::Beaconing, "debian.org", ip, None));
        // no kinds: all but threat_intel and policy; no destinations: any
        let y = &cfg.exempt[1];
        let other = "10.1.1.1".parse().unwrap();
        assert!(y.covers(Kind::TrafficChange, "", other, Some("mirrors")));
        assert!(!y.covers(Kind::ThreatIntel, "evil.example", other, Some("mirrors")));
        assert!(!y.covers(Kind::TrafficChange, "", other, Some("servers")));
        for (bad, want) in [
            (
                "[detection]\nmin_alert_severity = \"loud\"\n",
                "min_alert_severity",
            ),
            (
                "[[detection.exempt]]\nkinds = [\"tunneling\"]\n",
                "detection.exempt[0]",
            ),
            (
                "[[detection.exempt]]\ndevices = [\"10.0.0.5\"]\nkinds = [\"tunnel\"]\n",
                "tunneling",
            ),
            (
                "[[detection.exempt]]\ndevices = [\"10.0.0.500\"]\n",
                "exempt[0].devices",
            ),
        ] {
            let s = parse_sections(bad, f).unwrap();
            let e = validate(s, f, Path::new(".")).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
