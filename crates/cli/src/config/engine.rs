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
}

/// `[[intel]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntelRaw {
    pub name: Option<String>,
    pub file: PathBuf,
    /// auto, plain, hosts, adblock, rpz, ip.
    pub format: Option<String>,
    /// RFC 3339: entries stop matching after this time.
    pub expires: Option<String>,
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
        s.intel = v.try_into().map_err(|e| anyhow!("{}: [[intel]]: {e} (each entry needs `file = \"...\"`, optional name, format, expires)", file.display()))?;
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
pub fn validate(s: EngineSections, file: &Path, base_dir: &Path) -> anyhow::Result<EngineConfig> {
    validate_with_intel(s, file, base_dir).map(|(cfg, _)| cfg)
}

/// [`validate`], also returning the intel feed files it loaded (for reloading them later).
fn validate_with_intel(
    s: EngineSections,
    file: &Path,
    base_dir: &Path,
) -> anyhow::Result<(EngineConfig, IntelFiles)> {
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
    if !s.geoip.databases.is_empty() {
        let paths: Vec<PathBuf> = s.geoip.databases.iter().map(|p| rel(base_dir, p)).collect();
        let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        cfg.geoip = Some(Arc::new(
            Geo::open(&refs).map_err(|e| anyhow!("{f}: geoip.databases: {e}"))?,
        ));
    }
    // intel
    let intel = IntelFiles::from_sections(&s.intel, base_dir, &f.to_string())?;
    cfg.intel = Arc::new(intel.load()?);
    Ok((cfg, intel))
}

/// The threat-intel feed files of a configuration, so a running `serve` can reload them when
/// they change on disk (the engine takes the new set with `Engine::set_intel`).
#[derive(Debug, Default)]
pub struct IntelFiles {
    feeds: Vec<IntelFile>,
    /// (modified time, length) of each file when last checked.
    stamps: Vec<Option<(std::time::SystemTime, u64)>>,
}

#[derive(Debug)]
struct IntelFile {
    name: String,
    path: PathBuf,
    format: IntelFormat,
    expires: Option<Ts>,
}

fn stamp(p: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl IntelFiles {
    /// Validates `[[intel]]` entries (formats, expiry times); paths are relative to `base_dir`.
    fn from_sections(raw: &[IntelRaw], base_dir: &Path, f: &str) -> anyhow::Result<IntelFiles> {
        let mut feeds = Vec::new();
        for (i, it) in raw.iter().enumerate() {
            let path = rel(base_dir, &it.file);
            let format = match &it.format {
                Some(x) => IntelFormat::parse(x).ok_or_else(|| {
                    anyhow!(
                        "{f}: intel[{i}].format = {x:?}: use auto, plain, hosts, adblock, rpz or ip"
                    )
                })?,
                None => IntelFormat::Auto,
            };
            let expires = match &it.expires {
                Some(e) => Some(
                    Ts::parse(e)
                        .ok_or_else(|| anyhow!("{f}: intel[{i}].expires = {e:?}: use RFC 3339"))?,
                ),
                None => None,
            };
            let name = it.name.clone().unwrap_or_else(|| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("feed{i}"))
            });
            feeds.push(IntelFile {
                name,
                path,
                format,
                expires,
            });
        }
        let stamps = feeds.iter().map(|x| stamp(&x.path)).collect();
        Ok(IntelFiles { feeds, stamps })
    }
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }
    /// Reads and parses every feed file. A missing or unreadable file is an error (a running
    /// engine keeps its previous set then).
    pub fn load(&self) -> anyhow::Result<IntelSet> {
        let mut set = IntelSet::new();
        for (i, x) in self.feeds.iter().enumerate() {
            set.add_feed(
                &x.name,
                &read(&x.path, &format!("intel feed (intel[{i}].file)"))?,
                x.format,
                x.expires,
            );
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
    build_with_intel(flags).map(|(cfg, state, _)| (cfg, state))
}

/// [`build`], also returning the intel feed files it loaded (their change stamps taken before
/// reading them), so a running `serve` can reload them when they change.
pub fn build_with_intel(
    flags: &EngineFlags,
) -> anyhow::Result<(EngineConfig, Option<PathBuf>, IntelFiles)> {
    let (s, file, base_dir) = sections(flags)?;
    let (mut cfg, intel) = validate_with_intel(s, &file, &base_dir)?;
    cfg.replay = flags.replay;
    Ok((cfg, flags.state.clone(), intel))
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
    }
    for p in &flags.intel {
        s.intel.push(IntelRaw {
            name: None,
            file: cwd.join(p),
            format: None,
            expires: None,
        });
    }
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
