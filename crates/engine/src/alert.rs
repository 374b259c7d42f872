//! Findings (what a detector saw, on one event) and alerts (what a person triages).
//!
//! Findings are deduplicated into alerts: one open alert per (kind, destination) for the
//! destination-bearing kinds, so many devices with the same anomaly roll up into one alert that
//! lists them (`devices`); per-device kinds (traffic change, reconnaissance, new device and the
//! device stage of DGA) are keyed by (kind, device, destination). Repeats update `count` and
//! `last_seen`. Several kinds on one (device, destination) raise each other's score (see
//! [`combine`]: a noisy-OR of independent signals, the novelty kinds counted as one, weak pairs
//! kept below medium), so a new, periodic, DGA-looking destination in a new country ends up
//! critical even when each signal alone is medium. Novelty and beaconing alerts that roll up
//! over many devices are damped by their spread (a rollout, see `effective`), and the widest
//! spread on a (device, destination) damps all of its damped kinds.

use compact_str::CompactString;
use dnsight_model::Ts;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Device id: index into the engine's device table (interned client address).
pub type DevId = u32;

/// Alert kinds (the simulator's scorer matches on these exact snake_case names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    NewDestination,
    NewCountry,
    NewAsn,
    TrafficChange,
    Beaconing,
    Dga,
    Tunneling,
    ThreatIntel,
    Policy,
    Reconnaissance,
    NewDevice,
}

impl Kind {
    /// The kind named `s` (snake_case, as in the alert JSON).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
    pub const ALL: [Kind; 11] = [
        Kind::NewDestination,
        Kind::NewCountry,
        Kind::NewAsn,
        Kind::TrafficChange,
        Kind::Beaconing,
        Kind::Dga,
        Kind::Tunneling,
        Kind::ThreatIntel,
        Kind::Policy,
        Kind::Reconnaissance,
        Kind::NewDevice,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NewDestination => "new_destination",
            Kind::NewCountry => "new_country",
            Kind::NewAsn => "new_asn",
            Kind::TrafficChange => "traffic_change",
            Kind::Beaconing => "beaconing",
            Kind::Dga => "dga",
            Kind::Tunneling => "tunneling",
            Kind::ThreatIntel => "threat_intel",
            Kind::Policy => "policy",
            Kind::Reconnaissance => "reconnaissance",
            Kind::NewDevice => "new_device",
        }
    }
    /// Kinds that stay per device even with a destination.
    fn per_device(self) -> bool {
        matches!(
            self,
            Kind::TrafficChange | Kind::Reconnaissance | Kind::NewDevice
        )
    }
    /// Kinds that only say "new": they do not stop a destination from being learned.
    pub fn is_novelty(self) -> bool {
        matches!(
            self,
            Kind::NewDestination
                | Kind::NewCountry
                | Kind::NewAsn
                | Kind::NewDevice
                | Kind::TrafficChange
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
    /// Score bands: critical ≥ 85, high ≥ 65, medium ≥ 40, low ≥ 20, else info.
    pub fn from_score(s: u8) -> Severity {
        match s {
            85.. => Severity::Critical,
            65.. => Severity::High,
            40.. => Severity::Medium,
            20.. => Severity::Low,
            _ => Severity::Info,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Acknowledged,
    Flagged,
    Blocked,
    Resolved,
    /// Closed once, open again (by a person, or because it fired again after its acknowledgement
    /// expired). Counts as open everywhere.
    Reopened,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Open,
        Status::Acknowledged,
        Status::Flagged,
        Status::Blocked,
        Status::Resolved,
        Status::Reopened,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Flagged => "flagged",
            Status::Blocked => "blocked",
            Status::Resolved => "resolved",
            Status::Reopened => "reopened",
        }
    }
    /// Open, flagged and reopened alerts are live: the detectors keep folding findings into them.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Open | Status::Flagged | Status::Reopened)
    }
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// One detector observation on one event.
#[derive(Clone, Debug)]
pub struct Finding {
    pub kind: Kind,
    pub dev: DevId,
    /// Registered domain, internal name, IP or empty.
    pub destination: CompactString,
    /// The detector's own score, 0..100.
    pub score: f64,
    /// One sentence a person understands (names already escaped by the model).
    pub summary: String,
    /// Structured evidence (a JSON object).
    pub evidence: serde_json::Value,
    /// A sample query, `qname TYPE RCODE`.
    pub sample: Option<CompactString>,
    /// A repeat of an open alert: only count and last-seen are updated (cheap; built by
    /// [`Finding::repeat`] when `AlertBook::is_open` says the alert exists).
    pub repeat: bool,
}

impl Finding {
    /// A light finding that joins an existing (rolled-up) alert: its score counts, the alert
    /// keeps its summary and evidence.
    pub fn join(kind: Kind, dev: DevId, destination: &str, score: f64) -> Finding {
        Finding {
            kind,
            dev,
            destination: destination.into(),
            score,
            summary: String::new(),
            evidence: serde_json::Value::Null,
            sample: None,
            repeat: false,
        }
    }
    /// A cheap repeat of an already open alert.
    pub fn repeat(kind: Kind, dev: DevId, destination: &str) -> Finding {
        Finding {
            kind,
            dev,
            destination: destination.into(),
            score: 0.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
            sample: None,
            repeat: true,
        }
    }
}

/// The alert JSON contract (PRODUCT.md "Alert JSON"), plus `devices` and `device_count`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    pub id: String,
    pub kind: Kind,
    pub severity: Severity,
    pub score: u8,
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub destination: String,
    pub first_seen: Ts,
    pub last_seen: Ts,
    pub count: u64,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub status: Status,
    /// Every device that raised it (first 100), for rolled-up alerts.
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub device_count: u32,
    /// The alert's own (uncombined) score.
    #[serde(default)]
    pub own_score: f64,
}

/// Who raised a finding, for filling alerts.
pub struct DeviceRef<'a> {
    pub id: DevId,
    pub ip: std::net::IpAddr,
    pub name: Option<&'a str>,
    pub group: Option<&'a str>,
}

const MAX_SAMPLES: usize = 5;
const MAX_DEVICES_LISTED: usize = 100;
/// Device slot of rolled-up alert keys.
const ROLLED: DevId = DevId::MAX;

type Key = (Kind, DevId, CompactString);

/// Deduplicates findings into alerts and keeps track of what changed. Keys hold
/// attacker-influenced names: a per-process randomly seeded hasher (foldhash's quality
/// variant, as for the destination index in `baseline.rs`; SipHash cost ~4 % of the hot path).
#[derive(Default)]
pub struct AlertBook {
    alerts: Vec<Alert>,
    /// (alert index, device id) membership: rolled-up alerts can carry thousands of devices.
    members: std::collections::HashSet<(u32, DevId), foldhash::fast::FixedState>,
    /// (kind, device or ROLLED, destination) -> alert index, for open alerts.
    index: HashMap<Key, u32, foldhash::quality::RandomState>,
    /// (device, destination) -> alerts on that pair (score combination).
    pairs: HashMap<
        (DevId, CompactString),
        smallvec::SmallVec<[u32; 2]>,
        foldhash::quality::RandomState,
    >,
    updated: Vec<u32>,
    updated_flag: Vec<bool>,
    /// Per alert (same index): sample queries and related kinds, kept typed and folded into
    /// the JSON evidence only when an alert is handed out ([`AlertBook::materialize`]) —
    /// editing a JSON object per finding was the most expensive part of `apply`.
    extras: Vec<Extra>,
    /// Alerts changed since the last successful save (same marking as `updated`, drained by
    /// the store instead of the sinks), so a save writes only what changed.
    unsaved: Vec<u32>,
    unsaved_flag: Vec<bool>,
}

#[derive(Clone, Default)]
struct Extra {
    samples: smallvec::SmallVec<[CompactString; 2]>,
    /// Bit set of the open kinds on the same (device, destination), when more than one.
    related: u16,
}

impl AlertBook {
    pub fn new() -> AlertBook {
        AlertBook::default()
    }
    pub fn len(&self) -> usize {
        self.alerts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }
    /// Every alert as handed out (evidence complete), in creation order.
    pub fn all(&self) -> impl Iterator<Item = Alert> + '_ {
        (0..self.alerts.len()).map(|i| self.materialize(i))
    }
    /// Alerts per severity, without building them.
    pub fn count_by_severity(&self) -> [u64; 5] {
        let mut n = [0u64; 5];
        for a in &self.alerts {
            n[a.severity as usize] += 1;
        }
        n
    }
    /// Alert `i` with its sample queries and related kinds folded into the evidence.
    fn materialize(&self, i: usize) -> Alert {
        let mut a = self.alerts[i].clone();
        let x = &self.extras[i];
        if let Some(o) = a.evidence.as_object_mut() {
            if !x.samples.is_empty() {
                o.insert(
                    "sample_queries".into(),
                    serde_json::Value::Array(
                        x.samples
                            .iter()
                            .map(|s| serde_json::Value::String(s.to_string()))
                            .collect(),
                    ),
                );
            }
            if x.related.count_ones() > 1 {
                let mut kinds: Vec<&str> = Kind::ALL
                    .iter()
                    .filter(|k| x.related & (1 << **k as u16) != 0)
                    .map(|k| k.as_str())
                    .collect();
                kinds.sort_unstable();
                o.insert("related_kinds".into(), serde_json::json!(kinds));
            }
        }
        a
    }
    fn key(kind: Kind, dev: DevId, destination: &str) -> Key {
        if destination.is_empty() || kind.per_device() {
            (kind, dev, destination.into())
        } else {
            (kind, ROLLED, destination.into())
        }
    }
    /// Is an alert of this kind open for this device and destination? Detectors use it to send
    /// cheap [`Finding::repeat`]s instead of building summaries and evidence again.
    pub fn is_open(&self, kind: Kind, dev: DevId, destination: &str) -> bool {
        match self.index.get(&Self::key(kind, dev, destination)) {
            Some(&i) => self.members.contains(&(i, dev)),
            None => false,
        }
    }
    /// Is an alert of this kind open for this destination (for any device when it rolls up)?
    pub fn exists(&self, kind: Kind, dev: DevId, destination: &str) -> bool {
        self.index.contains_key(&Self::key(kind, dev, destination))
    }
    fn touch(&mut self, i: u32) {
        let iu = i as usize;
        if self.updated_flag.len() <= iu {
            self.updated_flag.resize(iu + 1, false);
        }
        if !self.updated_flag[iu] {
            self.updated_flag[iu] = true;
            self.updated.push(i);
        }
        if self.unsaved_flag.len() <= iu {
            self.unsaved_flag.resize(iu + 1, false);
        }
        if !self.unsaved_flag[iu] {
            self.unsaved_flag[iu] = true;
            self.unsaved.push(i);
        }
    }
    /// Alerts changed since the last [`mark_saved`](Self::mark_saved), as handed out.
    pub fn unsaved(&self) -> impl Iterator<Item = Alert> + '_ {
        self.unsaved.iter().map(|&i| self.materialize(i as usize))
    }
    /// Call after the unsaved alerts were committed.
    pub fn mark_saved(&mut self) {
        for i in self.unsaved.drain(..) {
            self.unsaved_flag[i as usize] = false;
        }
    }
    /// Restores an alert loaded from the store; `dev_of` maps a device address to its id.
    pub fn restore(&mut self, a: Alert, dev_of: impl Fn(&str) -> Option<DevId>) {
        let i = self.alerts.len() as u32;
        let ids: Vec<DevId> = a.devices.iter().filter_map(|d| dev_of(d)).collect();
        if a.status.is_open() {
            if let Some(&first) = ids.first() {
                self.index
                    .insert(Self::key(a.kind, first, &a.destination), i);
                if !a.destination.is_empty() {
                    for &d in &ids {
                        self.pairs
                            .entry((d, a.destination.as_str().into()))
                            .or_default()
                            .push(i);
                    }
                }
            }
        }
        let mut a = a;
        let mut x = Extra::default();
        if let Some(o) = a.evidence.as_object_mut() {
            if let Some(serde_json::Value::Array(v)) = o.remove("sample_queries") {
                x.samples = v
                    .iter()
                    .filter_map(|s| s.as_str())
                    .take(MAX_SAMPLES)
                    .map(CompactString::from)
                    .collect();
            }
            if let Some(serde_json::Value::Array(v)) = o.remove("related_kinds") {
                for k in v
                    .into_iter()
                    .filter_map(|k| serde_json::from_value::<Kind>(k).ok())
                {
                    x.related |= 1 << k as u16;
                }
            }
        }
        self.alerts.push(a);
        self.extras.push(x);
        for d in ids {
            self.members.insert((i, d));
        }
    }
    /// Folds one finding in. Returns the alert index (None for a repeat without an alert).
    pub fn apply(&mut self, f: &Finding, who: &DeviceRef<'_>, ts: Ts) -> Option<u32> {
        let key = Self::key(f.kind, who.id, &f.destination);
        let (idx, rescore) = match self.index.get(&key) {
            Some(&i) => {
                let iu = i as usize;
                let a = &mut self.alerts[iu];
                a.count += 1;
                if ts > a.last_seen {
                    a.last_seen = ts;
                }
                let mut rescore = false;
                if !f.repeat && f.score > a.own_score && !f.summary.is_empty() {
                    a.own_score = f.score;
                    if f.evidence.is_object() {
                        a.evidence = f.evidence.clone();
                    }
                    a.summary = f.summary.clone();
                    rescore = true;
                }
                if !f.repeat && f.score > a.own_score && f.summary.is_empty() {
                    a.own_score = f.score; // a light join: the score counts, the text stays
                    rescore = true;
                }
                if let Some(s) = &f.sample {
                    push_sample(&mut self.extras[iu], s);
                }
                if self.members.insert((i, who.id)) {
                    a.device_count += 1;
                    if a.devices.len() < MAX_DEVICES_LISTED {
                        a.devices.push(who.ip.to_string());
                    }
                    if a.group.as_deref() != who.group {
                        a.group = None;
                    }
                    if !f.destination.is_empty() {
                        self.pairs
                            .entry((who.id, f.destination.clone()))
                            .or_default()
                            .push(i);
                    }
                    rescore = true;
                }
                (i, rescore)
            }
            None if f.repeat => return None,
            None => {
                let i = self.alerts.len() as u32;
                let mut evidence = f.evidence.clone();
                if !evidence.is_object() {
                    evidence = serde_json::json!({ "detail": evidence });
                }
                let mut extra = Extra::default();
                if let Some(s) = &f.sample {
                    push_sample(&mut extra, s);
                }
                self.extras.push(extra);
                let ip = who.ip.to_string();
                let scope = if key.1 == ROLLED {
                    f.destination.to_string()
                } else {
                    format!("{ip}|{}", f.destination)
                };
                let id = alert_id(f.kind, &scope, ts);
                self.alerts.push(Alert {
                    id,
                    kind: f.kind,
                    severity: Severity::Info,
                    score: 0,
                    device: ip.clone(),
                    device_name: who.name.map(str::to_string),
                    group: who.group.map(str::to_string),
                    destination: f.destination.to_string(),
                    first_seen: ts,
                    last_seen: ts,
                    count: 1,
                    summary: f.summary.clone(),
                    evidence,
                    status: Status::Open,
                    devices: vec![ip],
                    device_count: 1,
                    own_score: f.score,
                });
                self.members.insert((i, who.id));
                self.index.insert(key, i);
                if !f.destination.is_empty() {
                    self.pairs
                        .entry((who.id, f.destination.clone()))
                        .or_default()
                        .push(i);
                }
                (i, true)
            }
        };
        if rescore {
            self.rescore(idx, who.id, &f.destination);
        } else {
            self.touch(idx);
        }
        Some(idx)
    }
    /// Recomputes the score of `idx` and of every alert on the same (device, destination).
    fn rescore(&mut self, idx: u32, dev: DevId, destination: &CompactString) {
        let mut group: smallvec::SmallVec<[u32; 4]> = smallvec::smallvec![idx];
        if !destination.is_empty() {
            if let Some(v) = self.pairs.get(&(dev, destination.clone())) {
                for &i in v {
                    if !group.contains(&i) {
                        group.push(i);
                    }
                }
            }
        }
        let is_open = |a: &Alert| a.status.is_open();
        let open: smallvec::SmallVec<[u32; 4]> = group
            .iter()
            .copied()
            .filter(|&i| is_open(&self.alerts[i as usize]))
            .collect();
        let kinds: u16 = open
            .iter()
            .fold(0, |m, &i| m | 1 << self.alerts[i as usize].kind as u16);
        // one spread for the pair: the widest roll-up among the damped kinds, so a fleet-wide
        // novelty also damps the periodic polling of the same destination (an agent rollout)
        let spread = open
            .iter()
            .map(|&i| &self.alerts[i as usize])
            .filter(|a| damped(a.kind))
            .map(|a| a.device_count)
            .max()
            .unwrap_or(1);
        let signals: smallvec::SmallVec<[(Kind, f64); 4]> = open
            .iter()
            .map(|&i| {
                let a = &self.alerts[i as usize];
                (a.kind, effective(a, spread))
            })
            .collect();
        let combined = combine(&signals);
        for &i in &group {
            let a = &mut self.alerts[i as usize];
            let own = effective(a, spread);
            let base = if open.contains(&i) {
                combined.max(own)
            } else {
                own
            };
            let s = base.round().clamp(0.0, 100.0) as u8;
            if s != a.score || i == idx {
                a.score = s;
                a.severity = Severity::from_score(a.score);
                if kinds.count_ones() > 1 {
                    self.extras[i as usize].related = kinds;
                }
                self.touch(i);
            }
        }
    }
    /// Alerts changed since the last call.
    pub fn drain_updates(&mut self, out: &mut Vec<Alert>) {
        let updated = std::mem::take(&mut self.updated);
        for &i in &updated {
            self.updated_flag[i as usize] = false;
            out.push(self.materialize(i as usize));
        }
        self.updated = updated;
        self.updated.clear();
    }
    /// All alerts, most severe first (score, then last seen, then id for determinism).
    pub fn sorted(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.all().collect();
        sort_alerts(&mut v);
        v
    }
}

/// Kinds damped by their spread: the same new (or periodic) destination on many devices at
/// once is a rollout more often than an intrusion. Intel, DGA, tunneling and policy are not
/// damped: spread makes them worse, not better.
fn damped(k: Kind) -> bool {
    matches!(
        k,
        Kind::NewDestination | Kind::NewCountry | Kind::NewAsn | Kind::Beaconing
    )
}

/// The own score of an alert, damped by its spread (`own / (1 + 0.25·(devices − 1))`, with
/// `devices` at least `spread`, the widest roll-up on the same device and destination).
fn effective(a: &Alert, spread: u32) -> f64 {
    if damped(a.kind) {
        let n = a.device_count.max(spread).max(1);
        a.own_score / (1.0 + 0.25 * f64::from(n - 1))
    } else {
        a.own_score
    }
}

/// Combined score (0..100) of the open signals on one (device, destination), each `(kind,
/// effective score)`:
/// - independent kinds combine as a noisy-OR, `1 − Π(1 − sᵢ/100)`: a new, periodic,
///   DGA-looking destination in a new country is critical even when each signal is medium;
/// - the novelty kinds (new destination, new country, new ASN) say one thing — "new to this
///   device" — so the strongest counts in full and the others at a quarter;
/// - weak signals alone do not make a medium: when every signal is below 40 and fewer than
///   three kinds agree, the combination stays below 40 (a never-seen name that the lexical
///   model finds slightly random is, by construction, also a new destination).
pub fn combine(signals: &[(Kind, f64)]) -> f64 {
    let is_novelty = |k: Kind| matches!(k, Kind::NewDestination | Kind::NewCountry | Kind::NewAsn);
    let mut keep = 1.0;
    let mut novelty: smallvec::SmallVec<[f64; 3]> = smallvec::SmallVec::new();
    let mut strongest: f64 = 0.0;
    let mut kinds = 0u16;
    for &(k, s) in signals {
        let p = (s / 100.0).clamp(0.0, 1.0);
        strongest = strongest.max(s);
        kinds |= 1 << k as u16;
        if is_novelty(k) {
            novelty.push(p);
        } else {
            keep *= 1.0 - p;
        }
    }
    novelty.sort_by(|a, b| b.total_cmp(a));
    for (n, p) in novelty.iter().enumerate() {
        keep *= 1.0 - if n == 0 { *p } else { 0.25 * p };
    }
    let combined = 100.0 * (1.0 - keep);
    if strongest < 40.0 && kinds.count_ones() < 3 {
        combined.min(39.0)
    } else {
        combined
    }
}

/// Most severe first: score, severity, count, then id.
pub fn sort_alerts(v: &mut [Alert]) {
    v.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.count.cmp(&a.count))
            .then(a.id.cmp(&b.id))
    });
}

fn push_sample(x: &mut Extra, s: &str) {
    if x.samples.len() < MAX_SAMPLES && !x.samples.iter().any(|q| q == s) {
        x.samples.push(s.into());
    }
}

/// Stable id: FNV-1a of kind, scope and first-seen second, 16 hex digits.
fn alert_id(kind: Kind, scope: &str, ts: Ts) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in kind
        .as_str()
        .bytes()
        .chain([0u8])
        .chain(scope.bytes())
        .chain([0u8])
        .chain(ts.secs().to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    fn f(kind: Kind, dest: &str, score: f64) -> Finding {
        Finding {
            kind,
            dev: 0,
            destination: dest.into(),
            score,
            summary: format!("{kind} {dest}"),
            evidence: serde_json::json!({}),
            sample: Some(format!("x.{dest} A NOERROR").into()),
            repeat: false,
        }
    }
    fn who(ip: &str) -> DeviceRef<'static> {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        let id = match ip {
            std::net::IpAddr::V4(a) => u32::from(a) & 0xff,
            std::net::IpAddr::V6(_) => 0,
        };
        DeviceRef {
            id,
            ip,
            name: None,
            group: Some("ws"),
        }
    }
    #[test]
    fn combination_rules() {
        use Kind::*;
        // independent signals add up: two mediums make a high
        assert_eq!(combine(&[(Beaconing, 50.0), (Dga, 45.0)]).round(), 73.0);
        // novelty kinds are one signal: a new destination in a new country stays low
        assert_eq!(
            combine(&[(NewDestination, 24.0), (NewCountry, 23.0)]).round(),
            28.0
        );
        // two weak signals stay below medium...
        assert_eq!(combine(&[(Dga, 30.0), (NewDestination, 15.0)]), 39.0);
        // ...three agreeing kinds do not
        assert!(combine(&[(Dga, 35.0), (NewDestination, 35.0), (Beaconing, 35.0)]) > 65.0);
        // new, periodic, DGA-looking, new country: critical
        assert!(
            combine(&[
                (NewDestination, 40.0),
                (Beaconing, 60.0),
                (Dga, 45.0),
                (NewCountry, 40.0)
            ]) >= 85.0
        );
        assert_eq!(combine(&[]), 0.0);
    }

    #[test]
    fn dedup_rollup_and_combination() {
        let mut b = AlertBook::new();
        let t = Ts::from_secs(1_764_000_000);
        b.apply(
            &f(Kind::NewDestination, "evil.example", 50.0),
            &who("10.0.0.5"),
            t,
        );
        b.apply(
            &f(Kind::NewDestination, "evil.example", 40.0),
            &who("10.0.0.5"),
            t.add_secs(5),
        );
        b.apply(
            &f(Kind::NewDestination, "evil.example", 40.0),
            &who("10.0.0.6"),
            t.add_secs(9),
        );
        assert_eq!(b.len(), 1, "dedup and rollup into one alert");
        let a = &b.all().next().unwrap();
        // the same novelty on two devices: damped by its spread (50 / 1.25)
        assert_eq!((a.count, a.device_count, a.score), (3, 2, 40));
        assert_eq!(a.devices, vec!["10.0.0.5", "10.0.0.6"]);
        assert_eq!(a.severity, Severity::Medium);
        // more signals on the same (device, destination): critical
        b.apply(
            &f(Kind::Beaconing, "evil.example", 60.0),
            &who("10.0.0.5"),
            t.add_secs(60),
        );
        b.apply(
            &f(Kind::Dga, "evil.example", 60.0),
            &who("10.0.0.5"),
            t.add_secs(60),
        );
        let all = b.sorted();
        assert!(
            all.iter().all(|a| a.severity == Severity::Critical),
            "{all:#?}"
        );
        let mut up = Vec::new();
        b.drain_updates(&mut up);
        assert_eq!(up.len(), 3);
        b.drain_updates(&mut up);
        assert_eq!(up.len(), 3, "nothing new after a drain");
        // per-device kinds are not rolled up
        b.apply(&f(Kind::TrafficChange, "", 30.0), &who("10.0.0.5"), t);
        b.apply(&f(Kind::TrafficChange, "", 30.0), &who("10.0.0.6"), t);
        assert_eq!(b.len(), 5);
        // cheap repeats: only for open alerts, and they only count
        assert!(b.is_open(Kind::NewDestination, 5, "evil.example"));
        assert!(
            !b.is_open(Kind::NewDestination, 7, "evil.example"),
            "device 7 is not on it"
        );
        assert!(!b.is_open(Kind::Tunneling, 5, "evil.example"));
        let before = b.all().next().unwrap();
        b.apply(
            &Finding::repeat(Kind::NewDestination, 5, "evil.example"),
            &who("10.0.0.5"),
            t.add_secs(99),
        )
        .unwrap();
        let after = &b.all().next().unwrap();
        assert_eq!(
            (after.count, after.score, &after.summary),
            (before.count + 1, before.score, &before.summary)
        );
        assert_eq!(after.last_seen, t.add_secs(99));
        assert!(b
            .apply(
                &Finding::repeat(Kind::Policy, 5, "x.example"),
                &who("10.0.0.5"),
                t
            )
            .is_none());
        let j = serde_json::to_value(b.all().next().unwrap()).unwrap();
        for k in [
            "id",
            "kind",
            "severity",
            "score",
            "device",
            "group",
            "destination",
            "first_seen",
            "last_seen",
            "count",
            "summary",
            "evidence",
            "status",
        ] {
            assert!(j.get(k).is_some(), "missing {k} in {j}");
        }
        assert_eq!(j["kind"], "new_destination");
        assert_eq!(j["status"], "open");
        assert_eq!(j["first_seen"], "2025-11-24T16:00:00.000000Z");
    }
}
