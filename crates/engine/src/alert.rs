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
//!
//! **Lifecycle and bound.** The book holds only *live* alerts (open, flagged, blocked,
//! reopened; [`Status::is_live`]), in slots reused through a free list. An alert leaves when a
//! person closes it (acknowledged, resolved: `Engine::set_status`, `Engine::acknowledge`) or by
//! itself: an open or reopened alert without a new finding for `alert_idle_secs` of event time
//! (default 7 days), or the least recently seen ones when the book holds `max_open_alerts`
//! (default 50 000; 1/64 of the bound leaves at once, so the scan is amortised). One that leaves
//! by itself is handed out once more by [`AlertBook::drain_updates`] as `resolved` with
//! `evidence.closed = "expired"`, then it is gone; the state's `alerts` table deletes it at the
//! next save. Flagged and blocked alerts do not idle out (a person decided about them), only
//! the size bound removes them. Memory per live alert: the [`Alert`] (~250 B of fixed fields
//! and strings, the evidence object ~200–600 B, up to 100 listed device addresses ~40 B each
//! on a roll-up), its extras (samples ≤ 5 names), one `index` key, one `ids` entry, and per
//! member device a `members` entry, a device id and a `pairs` entry (~60 B). A typical
//! single-device alert is ~1–1.5 KB, so the default bound is ~50–75 MB in the worst case
//! (roll-ups listing 100 devices up to ~6 KB each, i.e. ~300 MB if every alert were a wide
//! roll-up); `max_open_alerts × per-alert size` is the figure to budget.

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
    Misconfiguration,
}

impl Kind {
    /// The kind named `s` (snake_case, as in the alert JSON).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
    pub const ALL: [Kind; 12] = [
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
        Kind::Misconfiguration,
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
            Kind::Misconfiguration => "misconfiguration",
        }
    }
    /// Kinds that stay per device even with a destination.
    pub fn per_device(self) -> bool {
        matches!(
            self,
            Kind::TrafficChange | Kind::Reconnaissance | Kind::NewDevice | Kind::Misconfiguration
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
    /// Open, flagged and reopened alerts count as open (to do) everywhere.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Open | Status::Flagged | Status::Reopened)
    }
    /// Live alerts are held by the engine: findings keep folding into them. Open, flagged,
    /// reopened and blocked (the blocked queries still arrive); acknowledged and resolved
    /// alerts have left the engine.
    pub fn is_live(self) -> bool {
        self.is_open() || self == Status::Blocked
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
/// Score floor of a flagged alert (high).
pub const FLAGGED_FLOOR: u8 = 65;

type Key = (Kind, DevId, CompactString);

/// Slot of a live alert in the book. Slots are reused (a free list) once an alert leaves, so a
/// slot is only meaningful while its alert is live; the alert id is the stable name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertSlot(pub u32);

/// How the book is bounded (from `EngineConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookLimits {
    /// Open and reopened alerts without a new finding for this long (event time) leave by
    /// themselves.
    pub idle_secs: i64,
    /// At most this many live alerts; beyond it the least recently seen leave.
    pub max_live: usize,
    /// Alerts below this severity are recorded (held, scored, saved with the state, counted
    /// in the stats) but not handed out by [`AlertBook::drain_updates`] and
    /// [`AlertBook::shown`]: info-level novelty is not an inbox item. One that rises to this
    /// severity is handed out from then on, and its closing too.
    pub min_severity: Severity,
}

impl Default for BookLimits {
    fn default() -> Self {
        BookLimits {
            idle_secs: 7 * 86_400,
            max_live: 50_000,
            min_severity: Severity::Low,
        }
    }
}

/// One live alert: the alert as handed out, its typed extras and the ids of its devices
/// (needed to unlink `members` and `pairs` when it leaves).
struct Live {
    a: Alert,
    x: Extra,
    devs: Vec<DevId>,
    /// It owns its key in `index` (a reopened alert whose key a newer alert holds does not).
    keyed: bool,
    /// It was handed out at least once (reached the minimum severity, or was restored).
    shown: bool,
}

/// Deduplicates findings into live alerts and keeps track of what changed. Keys hold
/// attacker-influenced names: a per-process randomly seeded hasher (foldhash's quality
/// variant, as for the destination index in `baseline.rs`; SipHash cost ~4 % of the hot path).
///
/// Only live alerts are held (see the module doc for the bound); an alert that leaves is
/// reported once more by [`drain_updates`](Self::drain_updates) with its final status and is
/// deleted from the state at the next save.
#[derive(Default)]
pub struct AlertBook {
    slots: Vec<Option<Live>>,
    free: Vec<u32>,
    live: usize,
    limits: BookLimits,
    /// (alert slot, device id) membership: rolled-up alerts can carry thousands of devices.
    members: std::collections::HashSet<(u32, DevId), foldhash::fast::FixedState>,
    /// (kind, device or ROLLED, destination) -> alert slot, for live alerts.
    index: HashMap<Key, u32, foldhash::quality::RandomState>,
    /// Alert id -> slot.
    ids: HashMap<CompactString, u32, foldhash::quality::RandomState>,
    /// (device, destination) -> live alerts on that pair (score combination).
    pairs: HashMap<
        (DevId, CompactString),
        smallvec::SmallVec<[u32; 2]>,
        foldhash::quality::RandomState,
    >,
    /// Slots changed since the last drain (a slot freed meanwhile is skipped; a slot reused
    /// meanwhile holds a new alert, which is reported as it should be).
    updated: Vec<u32>,
    updated_flag: Vec<bool>,
    /// Final copies of the alerts that left since the last drain.
    closed: Vec<Alert>,
    /// Slots changed since the last successful save (same marking as `updated`, drained by
    /// the store instead of the sinks), so a save writes only what changed.
    unsaved: Vec<u32>,
    unsaved_flag: Vec<bool>,
    /// Ids of alerts that left since the last save (deleted from the state's `alerts` table).
    deleted: Vec<String>,
    /// (kind, device or ROLLED, destination) whose membership or roll-up changed other than
    /// by a finding of that device (an alert left, was restored or reopened, a roll-up
    /// appeared): the correlator tells the shards at the next epoch boundary.
    touched: Vec<Key>,
}

/// Per alert: sample queries and related kinds, kept typed and folded into the JSON evidence
/// only when an alert is handed out ([`AlertBook::materialize`]) — editing a JSON object per
/// finding was the most expensive part of `apply`.
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
    pub fn with_limits(limits: BookLimits) -> AlertBook {
        AlertBook {
            limits,
            ..AlertBook::default()
        }
    }
    pub fn limits(&self) -> BookLimits {
        self.limits
    }
    /// Live alerts.
    pub fn len(&self) -> usize {
        self.live
    }
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    fn at(&self, i: u32) -> &Live {
        self.slots[i as usize].as_ref().expect("live slot")
    }
    fn at_mut(&mut self, i: u32) -> &mut Live {
        self.slots[i as usize].as_mut().expect("live slot")
    }
    fn live_slots(&self) -> impl Iterator<Item = (u32, &Live)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|l| (i as u32, l)))
    }
    /// Every live alert as handed out (evidence complete), in slot order.
    pub fn all(&self) -> impl Iterator<Item = Alert> + '_ {
        self.live_slots().map(|(_, l)| materialize(l))
    }
    /// The live alerts that are handed out (at or above the minimum severity, or shown once).
    pub fn shown(&self) -> impl Iterator<Item = Alert> + '_ {
        let min = self.limits.min_severity;
        self.live_slots()
            .filter(move |(_, l)| l.shown || l.a.severity >= min)
            .map(|(_, l)| materialize(l))
    }
    /// Live alerts held below the minimum severity and never handed out (recorded only).
    pub fn recorded_only(&self) -> usize {
        let min = self.limits.min_severity;
        self.live_slots()
            .filter(|(_, l)| !l.shown && l.a.severity < min)
            .count()
    }
    /// The live alert with this id.
    pub fn get(&self, id: &str) -> Option<Alert> {
        self.ids.get(id).map(|&i| materialize(self.at(i)))
    }
    pub fn slot_of(&self, id: &str) -> Option<AlertSlot> {
        self.ids.get(id).map(|&i| AlertSlot(i))
    }
    /// Ids of the live alerts that `dev` is on (scans the book: request path).
    pub fn ids_for_device(&self, dev: DevId) -> Vec<String> {
        self.live_slots()
            .filter(|(i, _)| self.members.contains(&(*i, dev)))
            .map(|(_, l)| l.a.id.clone())
            .collect()
    }
    /// Every live alert's device ids (request path).
    pub fn members_by_alert(&self) -> impl Iterator<Item = (&str, &[DevId])> + '_ {
        self.live_slots()
            .map(|(_, l)| (l.a.id.as_str(), &l.devs[..]))
    }
    /// Ids of the live alerts on this destination.
    pub fn ids_for_destination(&self, destination: &str) -> Vec<String> {
        self.live_slots()
            .filter(|(_, l)| l.a.destination == destination)
            .map(|(_, l)| l.a.id.clone())
            .collect()
    }
    /// Live alerts of `kind` on `destination` with their device ids (as far as known: the
    /// first 100 of a restored roll-up).
    pub fn matching(&self, kind: Kind, destination: &str) -> Vec<(String, Vec<DevId>)> {
        self.live_slots()
            .filter(|(_, l)| l.a.kind == kind && l.a.destination == destination)
            .map(|(_, l)| (l.a.id.clone(), l.devs.clone()))
            .collect()
    }
    /// Live alerts per severity, without building them.
    pub fn count_by_severity(&self) -> [u64; 5] {
        let mut n = [0u64; 5];
        for (_, l) in self.live_slots() {
            n[l.a.severity as usize] += 1;
        }
        n
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
    /// Is a rolled-up alert of this kind live for this destination?
    pub fn rolled_exists(&self, kind: Kind, destination: &str) -> bool {
        self.index.contains_key(&(kind, ROLLED, destination.into()))
    }
    /// The (kind, device, destination) memberships and (kind, destination) roll-ups that
    /// changed other than by that device's own finding since the last call: for each, the
    /// device (None for a roll-up) and whether it is live now.
    pub fn drain_touched(&mut self) -> Vec<(Kind, Option<DevId>, CompactString, bool)> {
        let mut t = std::mem::take(&mut self.touched);
        t.sort_unstable();
        t.dedup();
        t.into_iter()
            .map(|(kind, dev, dest)| {
                if dev == ROLLED {
                    let live = self.rolled_exists(kind, &dest);
                    (kind, None, dest, live)
                } else {
                    let live = self.is_open(kind, dev, &dest);
                    (kind, Some(dev), dest, live)
                }
            })
            .collect()
    }
    /// Every live (kind, device, destination) membership and (kind, None, destination)
    /// roll-up, as [`drain_touched`](Self::drain_touched) reports them (a worker's snapshot).
    pub fn live_keys(&self) -> Vec<(Kind, Option<DevId>, CompactString)> {
        let mut by_slot: HashMap<u32, Vec<DevId>> = HashMap::new();
        for &(i, d) in &self.members {
            by_slot.entry(i).or_default().push(d);
        }
        let mut out = Vec::new();
        for ((kind, dev, dest), i) in &self.index {
            if *dev == ROLLED {
                out.push((*kind, None, dest.clone()));
                for &d in by_slot.get(i).map(Vec::as_slice).unwrap_or(&[]) {
                    out.push((*kind, Some(d), dest.clone()));
                }
            } else if self.members.contains(&(*i, *dev)) {
                out.push((*kind, Some(*dev), dest.clone()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
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
    /// Live alerts changed since the last [`mark_saved`](Self::mark_saved), as handed out.
    pub fn unsaved(&self) -> impl Iterator<Item = Alert> + '_ {
        self.unsaved
            .iter()
            .filter_map(|&i| self.slots[i as usize].as_ref().map(materialize))
    }
    /// Ids of the alerts that left since the last save (write these deletions before the
    /// [`unsaved`](Self::unsaved) ones: an id can leave and come back as reopened).
    pub fn deleted(&self) -> &[String] {
        &self.deleted
    }
    /// Call after the unsaved alerts were committed.
    pub fn mark_saved(&mut self) {
        for i in self.unsaved.drain(..) {
            self.unsaved_flag[i as usize] = false;
        }
        self.deleted.clear();
    }
    fn alloc(&mut self, l: Live) -> u32 {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(l);
                i
            }
            None => {
                self.slots.push(Some(l));
                (self.slots.len() - 1) as u32
            }
        }
    }
    fn link_pair(&mut self, i: u32, dev: DevId, destination: &str) {
        if !destination.is_empty() {
            let v = self.pairs.entry((dev, destination.into())).or_default();
            if !v.contains(&i) {
                v.push(i);
            }
        }
    }
    /// Puts a whole alert in as live (restored from the state, or reopened). `ids` are the
    /// devices of `a.devices` that the baselines know. A live alert with the same id is
    /// replaced by it.
    fn insert(&mut self, a: Alert, ids: Vec<DevId>, shown: bool) -> u32 {
        if let Some(&old) = self.ids.get(a.id.as_str()) {
            self.unlink(old);
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
            o.remove("closed");
            o.remove("expired_by");
        }
        let key = ids
            .first()
            .map(|&first| Self::key(a.kind, first, &a.destination));
        let keyed = key.as_ref().is_some_and(|k| !self.index.contains_key(k));
        let (dest, id) = (a.destination.clone(), a.id.clone());
        let i = self.alloc(Live {
            a,
            x,
            devs: ids.clone(),
            keyed,
            shown,
        });
        if let (true, Some(k)) = (keyed, key) {
            if k.1 == ROLLED {
                self.touched.push(k.clone());
            }
            self.index.insert(k, i);
        }
        self.ids.insert(id.into(), i);
        let kind = self.at(i).a.kind;
        for d in ids {
            self.members.insert((i, d));
            self.link_pair(i, d, &dest);
            self.touched.push((kind, d, dest.as_str().into()));
        }
        i
    }
    /// Restores an alert loaded from the store; `dev_of` maps a device address to its id.
    /// A closed alert (a state from before the book held only live alerts) is not restored and
    /// is deleted from the state at the next save.
    pub fn restore(&mut self, a: Alert, dev_of: impl Fn(&str) -> Option<DevId>) {
        if !a.status.is_live() {
            self.deleted.push(a.id);
            return;
        }
        let ids: Vec<DevId> = a.devices.iter().filter_map(|d| dev_of(d)).collect();
        // an alert recorded below the minimum severity stays recorded only
        let shown = a.severity >= self.limits.min_severity;
        self.insert(a, ids, shown);
    }
    /// Puts a closed alert back as live with status Reopened (reported by the next drain).
    pub fn reopen(&mut self, mut a: Alert, dev_of: impl Fn(&str) -> Option<DevId>) -> AlertSlot {
        a.status = Status::Reopened;
        let ids: Vec<DevId> = a.devices.iter().filter_map(|d| dev_of(d)).collect();
        let (dev, dest) = (ids.first().copied(), a.destination.clone());
        let i = self.insert(a, ids, true);
        match dev {
            Some(d) => self.rescore(i, d, &dest.as_str().into()),
            None => self.touch(i),
        }
        AlertSlot(i)
    }
    /// Removes slot `i` from every index and frees it; returns what it held.
    fn unlink(&mut self, i: u32) -> Live {
        let l = self.slots[i as usize].take().expect("live slot");
        self.live -= 1;
        self.free.push(i);
        if l.keyed {
            if let Some(&first) = l.devs.first() {
                let k = Self::key(l.a.kind, first, &l.a.destination);
                if self.index.get(&k) == Some(&i) {
                    self.index.remove(&k);
                    if k.1 == ROLLED {
                        self.touched.push(k);
                    }
                }
            }
        }
        for &d in &l.devs {
            self.touched
                .push((l.a.kind, d, l.a.destination.as_str().into()));
        }
        if self.ids.get(l.a.id.as_str()) == Some(&i) {
            self.ids.remove(l.a.id.as_str());
        }
        for &d in &l.devs {
            self.members.remove(&(i, d));
            if !l.a.destination.is_empty() {
                let k = (d, CompactString::from(l.a.destination.as_str()));
                if let Some(v) = self.pairs.get_mut(&k) {
                    v.retain(|x| *x != i);
                    if v.is_empty() {
                        self.pairs.remove(&k);
                    }
                }
            }
        }
        l
    }
    /// Closes a live alert: it leaves the book with `status` (acknowledged, resolved), is
    /// reported once more by the next drain and deleted from the state at the next save.
    /// `closed` is written as `evidence.closed` (e.g. "expired"). Returns the final copy.
    pub fn close(&mut self, id: &str, status: Status, closed: Option<&str>) -> Option<Alert> {
        let i = *self.ids.get(id)?;
        Some(self.leave(i, status, closed))
    }
    fn leave(&mut self, i: u32, status: Status, closed: Option<&str>) -> Alert {
        let l = self.unlink(i);
        let mut a = materialize(&l);
        a.status = status;
        if let (Some(c), Some(o)) = (closed, a.evidence.as_object_mut()) {
            o.insert("closed".into(), c.into());
        }
        // the signals left on the same (device, destination) pairs lose this one
        if !a.destination.is_empty() {
            let dest = CompactString::from(a.destination.as_str());
            for &d in &l.devs {
                if let Some(&j) = self.pairs.get(&(d, dest.clone())).and_then(|v| v.first()) {
                    self.rescore(j, d, &dest);
                }
            }
        }
        self.deleted.push(a.id.clone());
        if l.shown || l.a.severity >= self.limits.min_severity {
            self.closed.push(a.clone());
        }
        a
    }
    /// Sets the status of a live alert that stays live (open, flagged, blocked, reopened);
    /// a flagged alert keeps at least [`FLAGGED_FLOOR`]. Reported by the next drain.
    pub fn set_live_status(&mut self, id: &str, status: Status) -> Option<Alert> {
        debug_assert!(status.is_live());
        let i = *self.ids.get(id)?;
        let l = self.at_mut(i);
        l.a.status = status;
        let (dev, dest) = (
            l.devs.first().copied(),
            CompactString::from(l.a.destination.as_str()),
        );
        match dev {
            Some(d) => self.rescore(i, d, &dest),
            None => {
                let a = &mut self.at_mut(i).a;
                if a.status == Status::Flagged {
                    a.score = a.score.max(FLAGGED_FLOOR);
                    a.severity = Severity::from_score(a.score);
                }
                self.touch(i);
            }
        }
        Some(materialize(self.at(i)))
    }
    /// Open and reopened alerts whose last finding is older than `idle_secs` before `now`
    /// leave as resolved (`evidence.closed = "expired"`). Flagged and blocked alerts stay (a
    /// person decided about them; only the size bound removes them). Returns how many left.
    pub fn expire_idle(&mut self, now: Ts) -> usize {
        let before = now.add_secs(-self.limits.idle_secs);
        let idle: Vec<u32> = self
            .live_slots()
            .filter(|(_, l)| {
                matches!(l.a.status, Status::Open | Status::Reopened) && l.a.last_seen < before
            })
            .map(|(i, _)| i)
            .collect();
        for &i in &idle {
            self.leave(i, Status::Resolved, Some("expired"));
        }
        idle.len()
    }
    /// Makes room for one more alert: when the book is full, the least recently seen
    /// 1/64 of the bound (at least one) leave as expired.
    fn make_room(&mut self) {
        if self.live < self.limits.max_live.max(1) {
            return;
        }
        let mut by_age: Vec<(Ts, u32)> =
            self.live_slots().map(|(i, l)| (l.a.last_seen, i)).collect();
        let n = (self.limits.max_live / 64).max(1).min(by_age.len());
        if n < by_age.len() {
            by_age.select_nth_unstable(n);
        }
        by_age.truncate(n);
        by_age.sort_unstable(); // deterministic order of the reports
        for (_, i) in by_age {
            self.leave(i, Status::Resolved, Some("expired"));
        }
    }
    /// Folds one finding in. Returns the alert's slot (None for a repeat without an alert).
    pub fn apply(&mut self, f: &Finding, who: &DeviceRef<'_>, ts: Ts) -> Option<AlertSlot> {
        let key = Self::key(f.kind, who.id, &f.destination);
        let (idx, rescore) = match self.index.get(&key) {
            Some(&i) => {
                let is_member = self.members.insert((i, who.id));
                let l = self.at_mut(i);
                let a = &mut l.a;
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
                    push_sample(&mut l.x, s);
                }
                if is_member {
                    a.device_count += 1;
                    if a.devices.len() < MAX_DEVICES_LISTED {
                        a.devices.push(who.ip.to_string());
                    }
                    if a.group.as_deref() != who.group {
                        a.group = None;
                    }
                    l.devs.push(who.id);
                    self.link_pair(i, who.id, &f.destination);
                    rescore = true;
                }
                (i, rescore)
            }
            None if f.repeat => return None,
            None => {
                self.make_room();
                let mut evidence = f.evidence.clone();
                if !evidence.is_object() {
                    evidence = serde_json::json!({ "detail": evidence });
                }
                let mut extra = Extra::default();
                if let Some(s) = &f.sample {
                    push_sample(&mut extra, s);
                }
                let ip = who.ip.to_string();
                let scope = if key.1 == ROLLED {
                    f.destination.to_string()
                } else {
                    format!("{ip}|{}", f.destination)
                };
                let id = alert_id(f.kind, &scope, ts);
                if let Some(&old) = self.ids.get(id.as_str()) {
                    // the same id live under another key (a reopened copy): this one wins
                    self.unlink(old);
                }
                let i = self.alloc(Live {
                    a: Alert {
                        id: id.clone(),
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
                    },
                    x: extra,
                    devs: vec![who.id],
                    keyed: true,
                    shown: false,
                });
                self.members.insert((i, who.id));
                if key.1 == ROLLED {
                    self.touched.push(key.clone());
                }
                self.index.insert(key, i);
                self.ids.insert(id.into(), i);
                self.link_pair(i, who.id, &f.destination);
                (i, true)
            }
        };
        if rescore {
            self.rescore(idx, who.id, &f.destination);
        } else {
            self.touch(idx);
        }
        Some(AlertSlot(idx))
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
        let kinds: u16 = group
            .iter()
            .fold(0, |m, &i| m | 1 << self.at(i).a.kind as u16);
        // one spread for the pair: the widest roll-up among the damped kinds, so a fleet-wide
        // novelty also damps the periodic polling of the same destination (an agent rollout)
        let spread = group
            .iter()
            .map(|&i| &self.at(i).a)
            .filter(|a| damped(a.kind))
            .map(|a| a.device_count)
            .max()
            .unwrap_or(1);
        let signals: smallvec::SmallVec<[(Kind, f64); 4]> = group
            .iter()
            .map(|&i| {
                let a = &self.at(i).a;
                (a.kind, effective(a, spread))
            })
            .collect();
        let combined = combine(&signals);
        for &i in &group {
            let l = self.at_mut(i);
            let a = &mut l.a;
            let own = effective(a, spread);
            let mut s = combined.max(own).round().clamp(0.0, 100.0) as u8;
            if a.status == Status::Flagged {
                s = s.max(FLAGGED_FLOOR);
            }
            if s != a.score || i == idx {
                a.score = s;
                a.severity = Severity::from_score(a.score);
                if kinds.count_ones() > 1 {
                    l.x.related = kinds;
                }
                self.touch(i);
            }
        }
    }
    /// Alerts changed since the last call: the alerts that left (with their final status)
    /// first, then the live ones.
    pub fn drain_updates(&mut self, out: &mut Vec<Alert>) {
        out.append(&mut self.closed);
        let updated = std::mem::take(&mut self.updated);
        let min = self.limits.min_severity;
        for &i in &updated {
            self.updated_flag[i as usize] = false;
            if let Some(l) = self.slots[i as usize].as_mut() {
                if l.shown || l.a.severity >= min {
                    l.shown = true;
                    out.push(materialize(l));
                }
            }
        }
        self.updated = updated;
        self.updated.clear();
    }
    /// All live alerts, most severe first (score, then last seen, then id for determinism).
    pub fn sorted(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.all().collect();
        sort_alerts(&mut v);
        v
    }
    /// The live alerts handed out ([`shown`](Self::shown)), most severe first.
    pub fn sorted_shown(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.shown().collect();
        sort_alerts(&mut v);
        v
    }
    /// Checks that every index agrees with the live slots (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let live: Vec<u32> = self.live_slots().map(|(i, _)| i).collect();
        assert_eq!(live.len(), self.live);
        assert_eq!(self.live + self.free.len(), self.slots.len());
        assert_eq!(self.ids.len(), self.live);
        for (k, &i) in &self.index {
            let l = self.at(i);
            assert!(l.keyed && l.a.kind == k.0 && l.a.destination == k.2.as_str());
        }
        for &(i, d) in &self.members {
            assert!(self.at(i).devs.contains(&d));
        }
        for ((d, dest), v) in &self.pairs {
            for &i in v {
                let l = self.at(i);
                assert!(l.devs.contains(d) && l.a.destination == dest.as_str());
            }
        }
        let m: usize = self.live_slots().map(|(_, l)| l.devs.len()).sum();
        assert_eq!(m, self.members.len());
    }
}

/// Alert `l` with its sample queries and related kinds folded into the evidence.
fn materialize(l: &Live) -> Alert {
    let mut a = l.a.clone();
    let x = &l.x;
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
