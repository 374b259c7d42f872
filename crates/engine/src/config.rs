//! The validated engine configuration: built objects, no file format.
//!
//! The binary reads TOML (and flags) and builds an [`EngineConfig`]; the engine never sees the
//! config file. Every field has a default that works out of the box, so `EngineConfig::default()`
//! is a useful engine (no inventory, no GeoIP, no intel, RFC 1918 and ULA ranges internal).

use crate::geo::Geo;
use crate::intel::IntelSet;
use crate::inventory::Inventory;
use crate::net::Cidr;
use crate::tz::SiteTz;
use compact_str::CompactString;
use dnsight_model::Ts;
use std::sync::Arc;

/// One policy rule for a group (or everyone when `group` is None).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    /// Group this rule applies to; None = every device.
    pub group: Option<CompactString>,
    /// Forbidden destinations (a name matches itself and names below it).
    pub deny: Vec<CompactString>,
    /// When non-empty, the group may resolve only these (and names below them); internal names
    /// are always allowed unless `allow_internal` is false.
    pub allow_only: Vec<CompactString>,
    pub allow_internal: bool,
    /// Shown in the alert: why the rule exists.
    pub reason: CompactString,
    /// Devices (addresses or ranges) the rule does not apply to.
    pub except_devices: Vec<Cidr>,
    /// Inventory groups the rule does not apply to.
    pub except_groups: Vec<CompactString>,
}

impl Default for PolicyRule {
    fn default() -> Self {
        PolicyRule {
            group: None,
            deny: Vec::new(),
            allow_only: Vec::new(),
            allow_internal: true,
            reason: "configured policy".into(),
            except_devices: Vec::new(),
            except_groups: Vec::new(),
        }
    }
}

impl PolicyRule {
    /// Is a device with this address and group exempt from the rule?
    pub fn excepts(&self, ip: std::net::IpAddr, group: Option<&str>) -> bool {
        self.except_devices.iter().any(|c| c.contains(ip))
            || group.is_some_and(|g| self.except_groups.iter().any(|e| e == g))
    }
}

/// A standing exemption from the config (`[[detection.exempt]]`): findings of `kinds` (all
/// kinds when empty) on `destinations` (a name matches itself and names below it; any
/// destination when empty) from the listed devices or groups are dropped before they become
/// alerts, and counted (`exempted` in the stats). For machines whose job looks like an
/// attack: a package mirror syncing, a vulnerability scanner, a mail server's DNSBL lookups.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Exemption {
    pub devices: Vec<Cidr>,
    pub groups: Vec<CompactString>,
    pub kinds: Vec<crate::alert::Kind>,
    pub destinations: Vec<CompactString>,
    /// Why (for the config reader; not shown in alerts).
    pub reason: CompactString,
}

impl Exemption {
    /// Does it cover a finding of `kind` on `destination` from a device with `ip` and `group`?
    pub fn covers(
        &self,
        kind: crate::alert::Kind,
        destination: &str,
        ip: std::net::IpAddr,
        group: Option<&str>,
    ) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.devices.iter().any(|c| c.contains(ip))
                || group.is_some_and(|g| self.groups.iter().any(|e| e == g)))
            && (self.destinations.is_empty()
                || self.destinations.iter().any(|d| {
                    destination == d.as_str()
                        || destination
                            .strip_suffix(d.as_str())
                            .is_some_and(|p| p.ends_with('.'))
                }))
    }
}

/// Per-detector tuning. Defaults are documented in each detector file.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuning {
    /// Beaconing: minimum distinct timestamps before a (device, name) pair is scored.
    pub beacon_min_events: u32,
    /// Beaconing: score (0..1) at or above which a pair is reported.
    pub beacon_threshold: f64,
    /// DGA: per-name lexical probability above which a resolved, org-new name is reported.
    pub dga_name_threshold: f64,
    /// DGA per-device stage: distinct never-seen NXDOMAIN registered domains in 10 minutes.
    pub dga_nx_burst: u32,
    /// Tunneling: unique subdomains per (device, registered domain) in one hour (fast path).
    pub tunnel_unique_per_hour: u32,
    /// Tunneling: encoded payload bytes per (device, registered domain) per day (slow path).
    pub tunnel_bytes_per_day: u32,
    /// Reconnaissance: distinct PTR lookups of internal addresses in 10 minutes.
    pub recon_ptr_burst: u32,
    /// Reconnaissance: distinct never-seen internal names in 10 minutes.
    pub recon_internal_burst: u32,
    /// Traffic change: robust z-score for ordinary devices and for tight groups.
    pub traffic_z: f64,
    pub traffic_z_tight: f64,
    /// Devices in more groups than rollup: roll up an alert once this many devices share it.
    pub rollup_devices: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            beacon_min_events: 8,
            beacon_threshold: 0.8,
            dga_name_threshold: 0.9,
            dga_nx_burst: 12,
            tunnel_unique_per_hour: 100,
            tunnel_bytes_per_day: 8192,
            recon_ptr_burst: 32,
            recon_internal_burst: 40,
            traffic_z: 6.0,
            traffic_z_tight: 3.5,
            rollup_devices: 2,
        }
    }
}

/// Everything the engine needs, already parsed and validated.
#[derive(Clone)]
pub struct EngineConfig {
    pub inventory: Inventory,
    /// Names under these suffixes are internal (east-west).
    pub internal_suffixes: Vec<CompactString>,
    /// Addresses in these ranges are internal.
    pub internal_ranges: Vec<Cidr>,
    /// Groups held to tight traffic profiles and scored higher on novelty (servers, databases).
    pub tight_groups: Vec<CompactString>,
    /// GeoIP databases; None switches the new_country / new_asn detectors off.
    pub geoip: Option<Arc<Geo>>,
    pub intel: Arc<IntelSet>,
    pub policy: Vec<PolicyRule>,
    /// Standing exemptions (`[[detection.exempt]]`).
    pub exempt: Vec<Exemption>,
    /// Flag DNS-over-HTTPS resolver names and the Firefox canary (resolver bypass).
    pub doh_bypass: bool,
    /// Extra DoH resolver names on top of the built-in list.
    pub doh_names: Vec<CompactString>,
    /// Per-device learning period (of the device's own activity, event time).
    pub learn_days: u32,
    /// Global end of learning: before it every device learns; after it devices seen for the
    /// first time learn for `learn_days`.
    pub learn_until: Option<Ts>,
    /// Site time zone for hour-of-week profiles and day boundaries: UTC, a fixed offset or an
    /// IANA zone with daylight saving (see `tz.rs`).
    pub tz: SiteTz,
    /// Feed events again even when the persisted state already holds their time (see
    /// `Engine::open`: by default events at or before the state's high-water mark are skipped
    /// as `already_in_state`).
    pub replay: bool,
    /// Detector names switched off.
    pub disabled: Vec<CompactString>,
    /// Upper bound of tracked devices (hostile traffic with spoofed sources); events beyond it
    /// are counted and skipped.
    pub max_devices: usize,
    /// Worker shards (threads) the devices' partitions are spread over (1..=64). The alerts do
    /// not depend on it (see `Engine`).
    pub workers: usize,
    /// Upper bound of destinations kept per device baseline.
    pub max_dests_per_device: usize,
    /// An open or reopened alert without a new finding for this long (event time, seconds)
    /// leaves the engine as resolved (`evidence.closed = "expired"`). Default 7 days.
    pub alert_idle_secs: i64,
    /// Upper bound of live alerts held by the engine; beyond it the least recently seen leave
    /// (as expired). Default 50 000 (see `alert.rs` for the memory per alert).
    pub max_open_alerts: usize,
    /// Alerts below this severity are recorded, not handed out (default low: info-level
    /// novelty is not an inbox item).
    pub min_alert_severity: crate::alert::Severity,
    pub tuning: Tuning,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("inventory_hosts", &self.inventory.len())
            .field("internal_suffixes", &self.internal_suffixes)
            .field("internal_ranges", &self.internal_ranges)
            .field("tight_groups", &self.tight_groups)
            .field("geoip", &self.geoip.is_some())
            .field("intel_feeds", &self.intel.feeds().len())
            .field("policy", &self.policy)
            .field("learn_days", &self.learn_days)
            .field("learn_until", &self.learn_until)
            .field("tz", &self.tz.name())
            .field("replay", &self.replay)
            .field("disabled", &self.disabled)
            .field("alert_idle_secs", &self.alert_idle_secs)
            .field("max_open_alerts", &self.max_open_alerts)
            .field("min_alert_severity", &self.min_alert_severity)
            .finish()
    }
}

/// RFC 1918, CGNAT, loopback, link-local, ULA.
pub fn default_internal_ranges() -> Vec<Cidr> {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    ]
    .iter()
    .filter_map(|s| Cidr::parse(s).ok())
    .collect()
}

/// Suffixes that are internal everywhere (RFC 6762, RFC 8375, home.arpa, common LAN suffixes).
pub fn default_internal_suffixes() -> Vec<CompactString> {
    [
        "local",
        "lan",
        "home.arpa",
        "internal",
        "corp",
        "localdomain",
    ]
    .iter()
    .map(|s| CompactString::from(*s))
    .collect()
}

/// Names of the detectors, for `disabled` validation: read from the kind table
/// ([`crate::views::kinds`]).
pub fn detector_names() -> Vec<&'static str> {
    crate::views::detector_names()
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            inventory: Inventory::new(),
            internal_suffixes: default_internal_suffixes(),
            internal_ranges: default_internal_ranges(),
            tight_groups: vec![
                "servers".into(),
                "db".into(),
                "database".into(),
                "databases".into(),
            ],
            geoip: None,
            intel: Arc::new(IntelSet::new()),
            policy: Vec::new(),
            doh_bypass: true,
            doh_names: Vec::new(),
            learn_days: 7,
            learn_until: None,
            tz: SiteTz::utc(),
            replay: false,
            disabled: Vec::new(),
            max_devices: 1_000_000,
            workers: 1,
            max_dests_per_device: 20_000,
            alert_idle_secs: 7 * 86_400,
            max_open_alerts: 50_000,
            min_alert_severity: crate::alert::Severity::Low,
            exempt: Vec::new(),
            tuning: Tuning::default(),
        }
    }
}

impl EngineConfig {
    pub fn is_tight_group(&self, g: &str) -> bool {
        self.tight_groups.iter().any(|t| t.eq_ignore_ascii_case(g))
    }
    pub fn is_disabled(&self, detector: &str) -> bool {
        self.disabled.iter().any(|d| d == detector)
    }
}
