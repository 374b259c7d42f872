//! The engine: enrich → detect → update baselines → dedup findings into alerts.
//!
//! Synchronous and deterministic: no clock (event time only), no I/O on the hot path. The only
//! I/O is `open`/`save` of the persisted state (redb, see `store.rs`).

use crate::alert::{AlertBook, BookLimits, DevId, Kind};
use crate::baseline::{Baselines, Device};
use crate::codec::Put;
use crate::config::EngineConfig;
use crate::correlator::Correlator;
use crate::detectors;
use crate::intel::IntelSet;
use crate::msg::{partition, PARTITIONS};
use crate::shard::{Shard, Suppression};
use crate::store::Store;
use crate::views::Scope;
use crate::{Alert, EngineError, Severity, Status};
use compact_str::CompactString;
use dnsight_model::DnsEvent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Earliest and latest accepted event times (2000-01-01, 2100-01-01).
const MIN_TS: i64 = 946_684_800;
const MAX_TS: i64 = 4_102_444_800;

/// Where event times relative to 1970-01-01 (a capture's own clock, e.g. Slips' Zeek logs) are
/// placed: 2000-01-03T00:00:00Z, a Monday, so hour-of-week profiles start on a week boundary.
const RELATIVE_BASE: i64 = 946_857_600;

/// Format version of the detectors' persisted windows: 2 = a count of parts (one per shard),
/// each a length and the detector's own record (1: one record, the whole rest).
const WINDOWS_VERSION: u8 = 2;

/// Counters for reports and metrics.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct EngineStats {
    pub events: u64,
    /// Events skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    pub devices: u64,
    pub devices_learning: u64,
    pub destinations: u64,
    /// (device, destination) baseline entries.
    pub baseline_entries: u64,
    pub findings: BTreeMap<String, u64>,
    /// Findings dropped because an acknowledgement covers them.
    #[serde(default)]
    pub suppressed: u64,
    /// Findings dropped because a `[[detection.exempt]]` entry covers them.
    #[serde(default)]
    pub exempted: u64,
    /// Live alerts held below `min_alert_severity` (recorded, not handed out).
    #[serde(default)]
    pub alerts_recorded_only: u64,
    /// Live alerts.
    pub alerts: u64,
    pub alerts_by_severity: BTreeMap<String, u64>,
    pub first_event: Option<dnsight_model::Ts>,
    pub last_event: Option<dnsight_model::Ts>,
    pub geoip_lookups: u64,
    pub intel_feeds: u64,
    pub detectors: Vec<String>,
    /// One-time notices, e.g. a detector that is off and why.
    pub notices: Vec<String>,
    /// Estimated time spent in each detector's `observe`, seconds (every
    /// [`DETECTOR_TIME_EVERY`]th event is timed and counts for that many).
    #[serde(default)]
    pub detector_seconds: BTreeMap<String, f64>,
}

/// One event in this many has its detectors timed (two clock reads per detector), the
/// measured time counting for all of them: a cheap estimate of the time per detector.
pub const DETECTOR_TIME_EVERY: u64 = 64;

/// A person's acknowledgement of a finding kind on a destination (the triage store's rule):
/// see [`Engine::acknowledge`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub kind: Kind,
    /// The alert's destination (registered domain, internal name; empty for per-device kinds
    /// without one).
    pub destination: String,
    pub scope: Scope,
    /// Unix seconds, compared with event time: the suppression ends then (None: never).
    pub until: Option<i64>,
    /// Kind-specific detail: `{"country":"RU"}` for new_country, `{"asn":64500}` for new_asn
    /// (the keys the new_geo detector puts in its evidence).
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// Events of one epoch at most: a batch is cut into epochs of this many events (the lag of
/// the org-wide facts a detector reads, in events).
pub const EPOCH_EVENTS: usize = 16384;

/// Epochs smaller than this run their shards one after the other on the caller's thread
/// (starting threads would cost more than it saves); the result is the same either way.
const PARALLEL_MIN: usize = 512;

/// The detection engine: a dispatcher, `workers` shards (the per-device half, see
/// [`crate::shard`]) and one correlator (the organisation-wide half, see
/// [`crate::correlator`]).
///
/// **Epochs.** Events are taken in epochs: each call of [`observe_batch`](Self::observe_batch)
/// (cut into [`EPOCH_EVENTS`]) or of [`observe`](Self::observe) is one. Within an epoch every
/// shard runs its devices' events (in parallel when there are several), reading the
/// organisation-wide facts as they were at the start of the epoch; at its end the correlator
/// merges what changed, folds the findings into the alert book in stream order and hands every
/// shard the same update. So what a detector sees of other devices lags by at most one epoch,
/// and never depends on how devices are spread over workers: 1 worker or N give the same
/// alerts on the same batches. What a device did itself is seen at once.
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) shards: Vec<Shard>,
    pub(crate) corr: Correlator,
    store: Option<Store>,
    /// Sequence number of the next event (position in the stream since start).
    seq: u64,
    skipped: BTreeMap<&'static str, u64>,
    /// Event time (s) of the last idle-alert sweep.
    last_expire: u32,
    first_event: Option<dnsight_model::Ts>,
    pub(crate) last_event: Option<dnsight_model::Ts>,
    last_tick: u32,
    org_first: u32,
    notices: Vec<String>,
    /// Set when the input's times are relative (before 2000, nothing absolute seen first):
    /// such times are shifted by [`RELATIVE_BASE`].
    relative: bool,
    /// Epoch scratch: per shard, the indices of its events; the minute ticks and hourly
    /// sweeps of the epoch.
    idx: Vec<Vec<u32>>,
    ticks: Vec<(u32, u32)>,
    expires: Vec<(u64, dnsight_model::Ts)>,
    /// Wall time spent dispatching, running the shards and settling (measurement only: no
    /// decision reads it).
    phases: PhaseTimes,
    /// Run the shards one after the other whatever the epoch's size (benchmarks).
    sequential: bool,
    /// The correlator's update of the last epoch, not yet taken by the shards: each takes it
    /// at the start of its next run (in parallel), or all at once before a command.
    pending: Option<crate::msg::OrgUpdate>,
    /// Per shard, its run time in the current epoch.
    shard_times: Vec<std::time::Duration>,
    /// The correlator runs elsewhere (a distributed worker): epochs end in `outbound` instead
    /// of the local correlator, and org facts come back through
    /// [`apply_org_update`](Self::apply_org_update).
    remote: bool,
    outbound: Vec<crate::msg::EpochOut>,
}

/// Where an engine's wall time went, for benchmarks: the serial dispatch (placing times,
/// hashing addresses to partitions), the shards' run (parallel with several workers) and the
/// serial settle (correlator merge, alert book, updates to the shards).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    pub epochs: u64,
    pub dispatch: std::time::Duration,
    pub shards: std::time::Duration,
    pub settle: std::time::Duration,
    /// Each shard's own run time, summed over shards and epochs (the work).
    pub shard_sum: std::time::Duration,
    /// The slowest shard of each epoch, summed over epochs (the critical path when every
    /// shard has a core of its own).
    pub shard_max: std::time::Duration,
    /// Events dispatched, and the busiest shard's events of each epoch summed over epochs
    /// (the same figures by event count: deterministic, whatever the machine's load).
    pub events: u64,
    pub events_max: u64,
}

impl PhaseTimes {
    /// The speed-up the partitioning allows with a core per worker: all the work over the
    /// serial part plus the slowest shard of each epoch (measure with
    /// [`Engine::set_sequential`] on a busy machine, where shards run one after the other).
    pub fn projected_speedup(&self) -> f64 {
        let serial = self.dispatch + self.settle;
        (serial + self.shard_sum).as_secs_f64() / (serial + self.shard_max).as_secs_f64().max(1e-9)
    }
}

/// Is the device in its learning period at `now`?
pub(crate) fn is_learning(cfg: &EngineConfig, d: &Device, now: u32) -> bool {
    let own_end = d
        .first_seen
        .saturating_add(cfg.learn_days.saturating_mul(86_400));
    match cfg.learn_until {
        Some(u) => {
            let u = u.secs().clamp(0, u32::MAX as i64) as u32;
            now < u || (d.first_seen >= u && now < own_end)
        }
        None => now < own_end,
    }
}

impl Engine {
    /// An in-memory engine with `cfg.workers` shards.
    pub fn new(cfg: EngineConfig) -> Engine {
        let mut notices = Vec::new();
        if cfg.geoip.is_none() && !cfg.is_disabled("new_geo") {
            notices.push("GeoIP: no database: the new_country and new_asn detectors are off. Fix: add `[geoip] urls = [...]` to the config (README, \"GeoIP\") and run `dnsight geoip update --config FILE`, or pass --geoip FILE.".to_string());
        }
        if let Some(g) = &cfg.geoip {
            if !g.has_asn() {
                notices.push("GeoIP: the database has no ASN data: new_asn is off (add a GeoLite2-ASN database).".to_string());
            }
        }
        let limits = BookLimits {
            idle_secs: cfg.alert_idle_secs,
            max_live: cfg.max_open_alerts,
            min_severity: cfg.min_alert_severity,
        };
        let n = cfg.workers.clamp(1, PARTITIONS as usize);
        Engine {
            shards: (0..n).map(|_| Shard::new(&cfg)).collect(),
            corr: Correlator::new(AlertBook::with_limits(limits)),
            cfg,
            store: None,
            seq: 0,
            skipped: BTreeMap::new(),
            last_expire: 0,
            first_event: None,
            last_event: None,
            last_tick: 0,
            org_first: 0,
            notices,
            relative: false,
            idx: vec![Vec::new(); n],
            ticks: Vec::new(),
            expires: Vec::new(),
            phases: PhaseTimes::default(),
            sequential: false,
            pending: None,
            shard_times: vec![std::time::Duration::ZERO; n],
            remote: false,
            outbound: Vec::new(),
        }
    }

    /// An engine whose baselines and alerts persist under `state_dir` (created if missing).
    /// A state saved with any number of workers loads with any other.
    pub fn open(cfg: EngineConfig, state_dir: &Path) -> Result<Engine, EngineError> {
        let mut e = Engine::new(cfg);
        let store = Store::open(state_dir)?;
        e.org_first = store.load(&mut e.shards, &mut e.corr, &e.cfg)?;
        for s in &mut e.shards {
            s.base.org_first = e.org_first;
        }
        e.load_windows(&store)?;
        e.corr.touch_all();
        e.publish();
        let bad = store.corrupt_records.get();
        if bad > 0 {
            e.notices.push(format!(
                "state: {bad} device records in {} could not be decoded and were skipped",
                state_dir.display()
            ));
        }
        if let Some(m) = store.seen_until().filter(|_| !e.cfg.replay) {
            e.notices.push(format!("state: already holds events up to {}; a device's events at or before its own latest event in the state are skipped as already_in_state (replay them with --replay)", m.to_rfc3339()));
        }
        e.store = Some(store);
        Ok(e)
    }

    /// Worker shards.
    pub fn workers(&self) -> usize {
        self.shards.len()
    }

    /// Replaces the threat-intel feeds (reload without restart).
    pub fn set_intel(&mut self, intel: Arc<IntelSet>) {
        self.cfg.intel = intel.clone();
        for s in &mut self.shards {
            s.set_intel(intel.clone());
        }
    }

    /// Replaces the GeoIP databases (a refreshed download, without restart). Lookups cached
    /// from the old databases are dropped with the old cache.
    pub fn set_geo(&mut self, geo: Arc<crate::Geo>) {
        self.cfg.geoip = Some(geo.clone());
        for s in &mut self.shards {
            s.set_geo(geo.clone());
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// One-time notices (e.g. "GeoIP off"): print them once at start.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub(crate) fn is_learning(&self, d: &Device, now: u32) -> bool {
        is_learning(&self.cfg, d, now)
    }

    /// Feeds one event: an epoch of its own (tests, tools). Hot path: no I/O, no clock.
    pub fn observe(&mut self, ev: &DnsEvent) {
        self.epoch(std::slice::from_ref(ev));
    }

    /// Feeds a batch of events, in epochs of at most [`EPOCH_EVENTS`].
    pub fn observe_batch(&mut self, evs: &[DnsEvent]) {
        for c in evs.chunks(EPOCH_EVENTS) {
            self.epoch(c);
        }
    }

    /// Places event times: a time relative to 1970-01-01 (a log written with times relative to
    /// the start of its capture), before any absolute time, switches the engine to relative
    /// input, said once in the notices; such times are placed from [`RELATIVE_BASE`].
    fn place(&mut self, evs: &[DnsEvent]) -> Option<Vec<DnsEvent>> {
        if !evs.iter().any(|e| (0..MIN_TS).contains(&e.ts.secs())) {
            return None;
        }
        let mut first = self.first_event.is_some();
        let mut out = evs.to_vec();
        for e in &mut out {
            let secs = e.ts.secs();
            if (0..MIN_TS).contains(&secs) && (self.relative || !first) {
                if !self.relative {
                    self.relative = true;
                    self.notices.push(format!(
                        "time: the input's timestamps are relative (seconds from 1970-01-01, e.g. from the start of a capture): they are placed from {} on, so alert times are that moment plus the file's own times",
                        dnsight_model::Ts(RELATIVE_BASE * 1_000_000).to_rfc3339()
                    ));
                }
                e.ts = dnsight_model::Ts(e.ts.0.saturating_add(RELATIVE_BASE * 1_000_000));
            }
            if (MIN_TS..MAX_TS).contains(&e.ts.secs()) && !e.qname.is_root() {
                first = true;
            }
        }
        Some(out)
    }

    /// One epoch: dispatch to the shards, run them, settle with the correlator.
    fn epoch(&mut self, evs: &[DnsEvent]) {
        let t0 = std::time::Instant::now();
        let placed = self.place(evs);
        let evs = placed.as_deref().unwrap_or(evs);
        let n = self.shards.len();
        for v in &mut self.idx {
            v.clear();
        }
        self.ticks.clear();
        self.expires.clear();
        // near the device limit, new devices are counted here, in stream order
        let near_limit =
            (self.corr.devices as usize).saturating_add(evs.len()) >= self.cfg.max_devices;
        let mut new_here: HashSet<IpAddr, foldhash::quality::RandomState> = HashSet::default();
        for (i, ev) in evs.iter().enumerate() {
            let secs = ev.ts.secs();
            if !(MIN_TS..MAX_TS).contains(&secs) {
                *self.skipped.entry("timestamp_out_of_range").or_default() += 1;
                continue;
            }
            if ev.qname.is_root() {
                *self.skipped.entry("root_name").or_default() += 1;
                continue;
            }
            let client = crate::net::canonical(ev.client);
            let w = (partition(client) as usize) % n;
            if near_limit
                && !self.shards[w].base.dev_index.contains_key(&client)
                && !new_here.contains(&client)
            {
                if self.corr.devices as usize + new_here.len() >= self.cfg.max_devices {
                    *self.skipped.entry("device_limit").or_default() += 1;
                    continue;
                }
                new_here.insert(client);
            }
            let now = secs as u32;
            if self.first_event.is_none_or(|t| ev.ts < t) {
                self.first_event = Some(ev.ts);
            }
            if self.last_event.is_none_or(|t| ev.ts > t) {
                self.last_event = Some(ev.ts);
            }
            if self.org_first == 0 {
                self.org_first = now;
            }
            if now / 60 > self.last_tick / 60 {
                self.last_tick = now;
                self.ticks.push((i as u32, now));
                if now / 3600 > self.last_expire / 3600 {
                    self.last_expire = now;
                    self.expires.push((self.seq + i as u64, ev.ts));
                }
            }
            self.idx[w].push(i as u32);
        }
        let seq0 = self.seq;
        self.seq += evs.len() as u64;
        let t1 = std::time::Instant::now();
        let org_first = self.org_first;
        let pending = self.pending.take();
        let pending = pending.as_ref();
        let (idx, ticks) = (&self.idx, &self.ticks[..]);
        let times = &mut self.shard_times;
        if n == 1 || evs.len() < PARALLEL_MIN || self.sequential {
            for ((s, idx), t) in self.shards.iter_mut().zip(idx).zip(times.iter_mut()) {
                let t0 = std::time::Instant::now();
                if let Some(u) = pending {
                    s.apply_update(u);
                }
                s.base.org_first = org_first;
                s.run(evs, idx, ticks, seq0);
                *t = t0.elapsed();
            }
        } else {
            // every shard is a task; the caller's thread and N-1 helpers claim them in turn, so
            // a helper the OS schedules late never holds the epoch up: the caller then runs
            // that shard itself (shards of one epoch are independent: the result is the same)
            let cells: Vec<std::sync::Mutex<(&mut Shard, &mut std::time::Duration)>> = self
                .shards
                .iter_mut()
                .zip(times.iter_mut())
                .map(std::sync::Mutex::new)
                .collect();
            let next = std::sync::atomic::AtomicUsize::new(0);
            let work = || loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(cell) = cells.get(k) else {
                    break;
                };
                let mut c = cell.lock().unwrap_or_else(|p| p.into_inner());
                let t0 = std::time::Instant::now();
                if let Some(u) = pending {
                    c.0.apply_update(u);
                }
                c.0.base.org_first = org_first;
                c.0.run(evs, &idx[k], ticks, seq0);
                *c.1 = t0.elapsed();
            };
            std::thread::scope(|sc| {
                for _ in 1..n {
                    // a thread the OS refuses is no failure: the caller's `work()` below
                    // claims every shard no helper took
                    let _ = std::thread::Builder::new()
                        .name("dnsight-shard".into())
                        .spawn_scoped(sc, work);
                }
                work();
            });
        }
        let t2 = std::time::Instant::now();
        self.settle();
        let p = &mut self.phases;
        p.epochs += 1;
        p.events += self.idx.iter().map(|v| v.len() as u64).sum::<u64>();
        p.events_max += self.idx.iter().map(|v| v.len() as u64).max().unwrap_or(0);
        p.shard_sum += self.shard_times.iter().sum::<std::time::Duration>();
        p.shard_max += self.shard_times.iter().max().copied().unwrap_or_default();
        p.dispatch += t1 - t0;
        p.shards += t2 - t1;
        p.settle += t2.elapsed();
    }

    /// Runs the shards one after the other on the caller's thread (benchmarks: each shard's
    /// own time without contention, for [`PhaseTimes::projected_speedup`]). The alerts are the
    /// same.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }

    /// Where the wall time of `observe` went so far (benchmarks).
    pub fn phase_times(&self) -> PhaseTimes {
        self.phases
    }

    /// End of an epoch: the correlator takes the shards' deltas and findings, and every
    /// shard takes the correlator's update.
    fn settle(&mut self) {
        if self.remote {
            self.settle_remote(true);
            return;
        }
        let mut deltas: Vec<crate::msg::OrgDelta> = self
            .shards
            .iter_mut()
            .map(|s| std::mem::take(&mut s.out))
            .collect();
        self.corr.merge(&mut deltas);
        let mut found: Vec<crate::msg::FindingMsg> = Vec::new();
        for s in &mut self.shards {
            found.append(&mut s.found);
        }
        let expires = std::mem::take(&mut self.expires);
        self.corr.apply(&self.cfg, &mut found, &expires);
        self.expires = expires;
        // hand the emptied buffers back (their capacity is reused)
        for (s, mut d) in self.shards.iter_mut().zip(deltas) {
            d.devices = 0;
            s.out = d;
        }
        // the shards take it at the start of their next run, in parallel
        debug_assert!(self.pending.is_none());
        self.pending = Some(self.corr.update());
    }

    /// The end of an epoch (or a command's baseline changes) when the correlator runs
    /// elsewhere: the shards' deltas (and, with `findings`, their findings and the epoch's idle
    /// sweeps) become one [`EpochOut`](crate::msg::EpochOut) for it.
    fn settle_remote(&mut self, findings: bool) {
        let mut out = crate::msg::EpochOut::default();
        for s in &mut self.shards {
            let d = &mut s.out;
            let n = std::mem::take(&mut d.devices);
            // the device limit counts this worker's own devices
            self.corr.devices += n;
            out.delta.devices += n;
            out.delta.firsts.append(&mut d.firsts);
            out.delta.entries.append(&mut d.entries);
            out.delta.countries.append(&mut d.countries);
            out.delta.asns.append(&mut d.asns);
            if findings {
                out.findings.append(&mut s.found);
            }
        }
        if findings {
            // each event's findings come from one shard, in order: a stable sort keeps them so
            out.findings.sort_by_key(|f| f.seq);
            out.expires = std::mem::take(&mut self.expires);
        }
        if !out.is_empty() {
            self.outbound.push(out);
        }
    }

    /// Sends this engine's epochs to a correlator elsewhere instead of its own (a distributed
    /// worker): what its shards find and change org-wide is taken with
    /// [`take_outbound`](Self::take_outbound), and the correlator's answers are applied with
    /// [`apply_org_update`](Self::apply_org_update). Its own alert book stays empty.
    pub fn set_remote_correlator(&mut self, on: bool) {
        self.sync();
        self.remote = on;
    }

    pub fn is_remote_correlator(&self) -> bool {
        self.remote
    }

    /// The epochs ended since the last call, for the correlator (remote mode), in order.
    pub fn take_outbound(&mut self) -> Vec<crate::msg::EpochOut> {
        std::mem::take(&mut self.outbound)
    }

    /// An update (or a snapshot) from the correlator elsewhere: every shard takes it now.
    /// Updates carry absolute values, so a snapshot followed by the updates after it gives
    /// the correlator's facts.
    pub fn apply_org_update(&mut self, u: &crate::msg::OrgUpdate) {
        self.sync();
        for s in &mut self.shards {
            s.apply_update(u);
        }
    }

    /// The correlator's half of an epoch that a worker elsewhere ran (see
    /// [`set_remote_correlator`](Self::set_remote_correlator)): merges its delta, folds its
    /// findings into this engine's alert book in their order with the idle sweeps, and returns
    /// the update for every worker. The alerts then flow out of this engine as from one that
    /// saw the events (`drain_updates`, `alerts`, actions).
    pub fn correlate(&mut self, mut out: crate::msg::EpochOut) -> crate::msg::OrgUpdate {
        self.sync();
        let latest = out
            .findings
            .iter()
            .map(|f| f.ts)
            .chain(out.expires.iter().map(|e| e.1))
            .max();
        if let Some(t) = latest {
            if self.last_event.is_none_or(|l| t > l) {
                self.last_event = Some(t);
            }
            if self.first_event.is_none() {
                self.first_event = Some(t);
            }
        }
        self.corr.merge(std::slice::from_mut(&mut out.delta));
        self.corr.apply(&self.cfg, &mut out.findings, &out.expires);
        self.corr.update()
    }

    /// The correlator's whole view as one update (org facts, every live membership and
    /// roll-up), for a worker that starts: applied before the updates that follow it, it gives
    /// the worker the correlator's facts. Changes nothing.
    pub fn org_snapshot(&self) -> crate::msg::OrgUpdate {
        self.corr.snapshot()
    }

    /// The correlator's state (org facts and the alert book) as one versioned record, for a
    /// distributed correlator's checkpoint; [`import_correlator`](Self::import_correlator)
    /// continues from it in another process.
    pub fn export_correlator(&self) -> Vec<u8> {
        let st = crate::correlator::Saved {
            version: 1,
            org_first: self.org_first,
            last_event: self.last_event,
            last_expire: self.last_expire,
            facts: self.corr.save_facts(),
            alerts: self.corr.book.sorted(),
        };
        serde_json::to_vec(&st).unwrap_or_default()
    }

    /// Restores [`export_correlator`](Self::export_correlator)'s record into an engine that
    /// holds nothing yet. A record that does not decode is an error; nothing is applied then.
    pub fn import_correlator(&mut self, b: &[u8]) -> Result<usize, EngineError> {
        let st: crate::correlator::Saved = serde_json::from_slice(b)
            .map_err(|e| EngineError::Store(format!("correlator record: {e}")))?;
        if st.version != 1 {
            return Err(EngineError::Store(format!(
                "correlator record: unknown version {}",
                st.version
            )));
        }
        self.sync();
        self.org_first = st.org_first;
        self.last_event = st.last_event;
        self.first_event = st.last_event;
        self.last_expire = st.last_expire;
        self.corr.load_facts(&self.cfg, st.facts);
        let n = st.alerts.len();
        let mut alerts = st.alerts;
        alerts.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.id.cmp(&b.id)));
        for a in alerts {
            let ids: HashMap<String, DevId> = a
                .devices
                .iter()
                .filter_map(|s| {
                    let ip = s.parse::<IpAddr>().ok()?;
                    Some((s.clone(), self.corr.dev(&self.cfg, ip)))
                })
                .collect();
            self.corr.book.restore(a, |ip| ids.get(ip).copied());
        }
        // what it restored is no news: the store has it
        let mut v = Vec::new();
        self.corr.book.drain_updates(&mut v);
        let _ = self.corr.update();
        Ok(n)
    }

    /// Every shard takes the pending update (before a command reads or changes the shards).
    fn sync(&mut self) {
        if let Some(u) = self.pending.take() {
            for s in &mut self.shards {
                s.apply_update(&u);
            }
        }
    }

    /// Hands the correlator's update to every shard at once.
    fn publish(&mut self) {
        self.sync();
        let u = self.corr.update();
        for s in &mut self.shards {
            s.apply_update(&u);
        }
    }

    /// Event time (s) of the latest event.
    fn now_u32(&self) -> u32 {
        self.last_event
            .map_or(0, |t| t.secs().clamp(0, u32::MAX as i64) as u32)
    }

    /// The live alert with this id (open, flagged, blocked, reopened); None once it left.
    pub fn alert(&self, id: &str) -> Option<Alert> {
        self.corr.book.get(id)
    }

    /// Sets a live alert's status. Flagged: score at least 65 (high) while flagged, also
    /// through rescoring; flagged, blocked, open and reopened alerts stay live (findings from
    /// blocked queries keep folding into them). Acknowledged and resolved: the alert leaves the
    /// engine (deleted from the state at the next save). Returns the alert as it is now (the
    /// final copy for a closed one); the change is reported by the next `drain_updates` too.
    /// None when no live alert has this id.
    pub fn set_status(&mut self, id: &str, status: Status) -> Option<Alert> {
        let r = if status.is_live() {
            self.corr.book.set_live_status(id, status)
        } else {
            self.corr.book.close(id, status, None)
        };
        self.publish();
        r
    }

    /// Puts a closed alert (the triage store's copy) back as live with status Reopened; its
    /// devices are linked by address. A live alert with the same id is replaced.
    /// Acknowledgements are not lifted (see [`remove_ack`](Self::remove_ack)).
    pub fn reopen(&mut self, a: Alert) {
        for ip in &a.devices {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                self.corr.dev(&self.cfg, ip);
            }
        }
        let corr = &mut self.corr;
        let index: HashMap<IpAddr, DevId> = corr
            .devs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.ip, i as DevId))
            .collect();
        corr.book.reopen(a, |ip| {
            ip.parse::<IpAddr>()
                .ok()
                .and_then(|ip| index.get(&crate::net::canonical(ip)).copied())
        });
        self.publish();
    }

    /// Applies an acknowledgement, at once and idempotently (the triage store re-applies every
    /// active one at start):
    /// - findings of `kind` on `destination` from devices the scope covers (future devices
    ///   too for all/group scopes) are dropped before the alert book until `until` (event
    ///   time);
    /// - baseline join: for destination-bearing kinds the destination becomes *acknowledged*
    ///   (`flag::ACKED`, no longer suspect) in every covered device's baseline, created where
    ///   missing; new_country / new_asn also add `detail.country` / `detail.asn` to the covered
    ///   devices' countries / ASNs;
    /// - live alerts of that kind and destination that any covered device is on close as
    ///   acknowledged and leave (a roll-up only partly covered closes too; its uncovered devices
    ///   are not suppressed and open a new alert if they do it again).
    ///
    /// Returns the ids of the alerts it closed.
    pub fn acknowledge(&mut self, ack: &Ack) -> Vec<String> {
        self.sync();
        let scope = match &ack.scope {
            Scope::Device(ip) => Scope::Device(crate::net::canonical(*ip)),
            s => s.clone(),
        };
        let now = self.now_u32();
        let country = (ack.kind == Kind::NewCountry)
            .then(|| {
                ack.detail
                    .get("country")
                    .and_then(|c| c.as_str())
                    .and_then(|c| <[u8; 2]>::try_from(c.to_ascii_uppercase().as_bytes()).ok())
            })
            .flatten();
        let asn = (ack.kind == Kind::NewAsn)
            .then(|| {
                ack.detail
                    .get("asn")
                    .and_then(|a| a.as_u64())
                    .and_then(|a| u32::try_from(a).ok())
            })
            .flatten();
        for s in &mut self.shards {
            // (a) suppression, replacing an equal one (idempotent)
            let v = s
                .acks
                .entry(CompactString::from(ack.destination.as_str()))
                .or_default();
            match v
                .iter_mut()
                .find(|x| x.kind == ack.kind && x.scope == scope)
            {
                Some(x) => x.until = ack.until,
                None => v.push(Suppression {
                    kind: ack.kind,
                    scope: scope.clone(),
                    until: ack.until,
                }),
            }
            // (b) baseline join
            if !ack.destination.is_empty() && !ack.kind.per_device() {
                s.join_destination(&ack.destination, &scope, now);
            }
            if country.is_some() || asn.is_some() {
                s.join_geo(&scope, country, asn);
            }
        }
        // (c) live alerts it covers close
        let mut closed = Vec::new();
        let book = &mut self.corr.book;
        for (id, devs) in book.matching(ack.kind, &ack.destination) {
            let hit = if devs.is_empty() {
                scope == Scope::All
            } else {
                devs.iter().any(|&d| {
                    let d = &self.corr.devs[d as usize];
                    scope.covers(d.ip, d.group.as_deref())
                })
            };
            if hit && book.close(&id, Status::Acknowledged, None).is_some() {
                closed.push(id);
            }
        }
        if self.remote {
            // the baseline joins count org-wide at the correlator, whose update brings them
            // back (this engine's own book is empty: nothing to tell the shards)
            self.settle_remote(false);
            return closed;
        }
        let mut deltas: Vec<_> = self
            .shards
            .iter_mut()
            .map(|s| std::mem::take(&mut s.out))
            .collect();
        self.corr.merge(&mut deltas);
        self.publish();
        closed
    }

    /// Drops the suppressions whose `until` is at or before `now` (Unix seconds). The baseline
    /// flags they set stay: what was acknowledged was normal.
    pub fn expire_acks(&mut self, now: i64) {
        for s in &mut self.shards {
            s.acks.retain(|_, v| {
                v.retain(|s| s.until.is_none_or(|u| u > now));
                !v.is_empty()
            });
        }
    }

    /// Lifts one suppression (an acknowledgement deleted in the triage store). The baseline
    /// flags stay. Returns whether one was held.
    pub fn remove_ack(&mut self, kind: Kind, destination: &str, scope: &Scope) -> bool {
        let scope = match scope {
            Scope::Device(ip) => Scope::Device(crate::net::canonical(*ip)),
            s => s.clone(),
        };
        let mut removed = false;
        for s in &mut self.shards {
            let Some(v) = s.acks.get_mut(destination) else {
                continue;
            };
            let n = v.len();
            v.retain(|s| !(s.kind == kind && s.scope == scope));
            removed = v.len() != n;
            if v.is_empty() {
                s.acks.remove(destination);
            }
        }
        removed
    }

    /// Suppressions held (acknowledgements not yet expired).
    pub fn ack_count(&self) -> usize {
        self.shards[0].acks.values().map(Vec::len).sum()
    }

    /// Alerts new or changed since the last call.
    pub fn drain_updates(&mut self, out: &mut Vec<Alert>) {
        self.corr.book.drain_updates(out);
    }

    /// The live alerts handed out (at or above `min_alert_severity`), most severe first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.corr.book.sorted_shown()
    }

    /// Every live alert, including those recorded below `min_alert_severity` (info-level
    /// novelty: kept, scored and saved, not handed out), most severe first.
    pub fn all_alerts(&self) -> Vec<Alert> {
        self.corr.book.sorted()
    }

    /// Persists baselines, alerts and detector windows atomically (one redb transaction).
    /// No-op in memory.
    pub fn save(&mut self) -> Result<(), EngineError> {
        self.sync();
        let Some(s) = &self.store else {
            return Ok(());
        };
        // one record per detector: a part per shard (devices by address, so any number of
        // shards can load it)
        let mut windows: Vec<(&'static str, Vec<u8>)> = Vec::new();
        let per_shard: Vec<Vec<(&'static str, Vec<u8>)>> =
            self.shards.iter().map(|s| s.windows()).collect();
        if let Some(first) = per_shard.first() {
            for (k, (name, _)) in first.iter().enumerate() {
                let mut out = vec![WINDOWS_VERSION];
                out.put_u32(per_shard.len() as u32);
                for p in &per_shard {
                    out.put_u32(p[k].1.len() as u32);
                    out.extend_from_slice(&p[k].1);
                }
                windows.push((name, out));
            }
        }
        s.save(
            self.org_first,
            &mut self.shards,
            &mut self.corr,
            self.last_event,
            &windows,
        )
    }

    /// Restores the detectors' windows saved in the state into every shard (each keeps its
    /// own devices' entries); a detector whose record does not decode starts empty, with a
    /// notice.
    fn load_windows(&mut self, store: &Store) -> Result<(), EngineError> {
        for (name, b) in store.load_windows()? {
            let mut r = crate::codec::Rd::new(&b);
            let parts: Option<Vec<&[u8]>> = match r.u8() {
                Some(1) => Some(vec![&b[1..]]),
                Some(WINDOWS_VERSION) => (|| {
                    let n = r.count(4)?;
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        let l = r.u32()? as usize;
                        v.push(r.take(l)?);
                    }
                    r.is_empty().then_some(v)
                })(),
                _ => None,
            };
            let mut ok = parts.is_some();
            for s in &mut self.shards {
                // windows of a detector that is now disabled are ignored
                let Some(det) = s.detectors.iter_mut().find(|d| d.name() == name) else {
                    ok = true;
                    break;
                };
                let index = &s.base.dev_index;
                let id = |ip: std::net::IpAddr| index.get(&crate::net::canonical(ip)).copied();
                for p in parts.iter().flatten() {
                    let mut r = crate::codec::Rd::new(p);
                    if det.load_state(&id, &mut r).is_none() || !r.is_empty() {
                        ok = false;
                    }
                }
            }
            if !ok {
                self.notices.push(format!(
                    "state: the {name} detector's saved windows could not be decoded; it starts empty"
                ));
                for s in &mut self.shards {
                    if let (Some(det), Some(fresh)) = (
                        s.detectors.iter_mut().find(|d| d.name() == name),
                        detectors::registry(&self.cfg)
                            .into_iter()
                            .find(|d| d.name() == name),
                    ) {
                        *det = fresh;
                    }
                }
            }
        }
        Ok(())
    }

    pub fn stats(&self) -> EngineStats {
        let mut by_sev = BTreeMap::new();
        let sevs = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ];
        let book = &self.corr.book;
        for (sev, n) in sevs.iter().zip(book.count_by_severity()) {
            if n > 0 {
                by_sev.insert(sev.as_str().to_string(), n);
            }
        }
        let last = self.now_u32();
        let mut skipped: BTreeMap<String, u64> = self
            .skipped
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut findings = [0u64; Kind::ALL.len()];
        let (mut events, mut devices, mut learning, mut entries) = (0, 0, 0, 0);
        let (mut suppressed, mut exempted, mut geo) = (0, 0, 0);
        for s in &self.shards {
            for (k, v) in &s.skipped {
                *skipped.entry(k.to_string()).or_default() += v;
            }
            for (a, b) in findings.iter_mut().zip(s.findings_by_kind) {
                *a += b;
            }
            events += s.events;
            devices += s.base.devices.len() as u64;
            learning += s
                .base
                .devices
                .iter()
                .filter(|d| self.is_learning(d, last))
                .count() as u64;
            entries += s.base.entries;
            suppressed += s.suppressed;
            exempted += s.exempted;
            geo += s.geoip_lookups();
        }
        EngineStats {
            events,
            skipped,
            devices,
            devices_learning: learning,
            destinations: self.corr.dests.len() as u64,
            baseline_entries: entries,
            findings: Kind::ALL
                .iter()
                .zip(findings)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.as_str().to_string(), n))
                .collect(),
            suppressed,
            exempted,
            alerts_recorded_only: book.recorded_only() as u64,
            alerts: book.len() as u64,
            alerts_by_severity: by_sev,
            first_event: self.first_event,
            last_event: self.last_event,
            geoip_lookups: geo,
            intel_feeds: self.cfg.intel.feeds().len() as u64,
            detectors: self.shards[0]
                .detectors
                .iter()
                .map(|d| d.name().to_string())
                .collect(),
            notices: self.notices.clone(),
            detector_seconds: self.shards[0]
                .detectors
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let ns: u64 = self
                        .shards
                        .iter()
                        .map(|s| s.detector_ns.get(i).copied().unwrap_or(0))
                        .sum();
                    (d.name().to_string(), ns as f64 / 1e9)
                })
                .collect(),
        }
    }

    /// Read access for tests and tools: the shards' baselines (each holds its own devices and
    /// the same replica of the org-wide facts).
    pub fn shard_baselines(&self) -> impl Iterator<Item = &Baselines> + '_ {
        self.shards.iter().map(|s| &s.base)
    }

    /// One partition's checkpoint: its devices' baseline records (the state file's encoding)
    /// and the stream sequence they cover (every event before it). For a worker in another
    /// process; inside one process the state file is the checkpoint.
    pub fn checkpoint(&mut self, part: u32) -> crate::msg::Checkpoint {
        self.sync();
        let shard = &self.shards[part as usize % self.shards.len()];
        let mut devices = Vec::new();
        for d in &shard.base.devices {
            if partition(d.ip) == part {
                let mut b = Vec::new();
                crate::store::encode_device(d, &shard.base, &mut b);
                devices.push((d.ip, b));
            }
        }
        crate::msg::Checkpoint {
            partition: part,
            seq: self.seq,
            devices,
        }
    }

    /// The first shard's baselines (every device with one worker; tests and tools).
    pub fn baselines(&self) -> &Baselines {
        &self.shards[0].base
    }

    /// The baseline of one device.
    pub fn device_baseline(&self, ip: IpAddr) -> Option<&Device> {
        let w = partition(ip) as usize % self.shards.len();
        self.shards[w].device_of(ip)
    }
}

/// Format version of [`Engine::export_partitions`]' records.
const PART_VERSION: u8 = 1;

/// What [`Engine::import_partition`] restored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub devices: u64,
    /// Devices the engine held already (kept as they were: import into an engine without them).
    pub present: u64,
    /// Device records that did not decode (skipped, counted).
    pub corrupt: u64,
    pub alerts: u64,
}

impl Engine {
    /// The state of some partitions of `parts` (bus partitions: [`dnsight_model::partition`] of
    /// the client address modulo `parts`), one self-contained versioned record each, for a
    /// distributed worker's checkpoint: the partition's devices (baselines, the state file's
    /// device encoding), every detector's windows of those devices, and the live alerts all of
    /// whose devices are in the partition. [`import_partition`](Self::import_partition) in any
    /// engine (any number of shards) continues from exactly this state; org-wide facts are not
    /// in it (they follow from the devices' baselines, as at [`Engine::open`]).
    pub fn export_partitions(&self, parts: u32, which: &[u32]) -> Vec<(u32, Vec<u8>)> {
        let parts = parts.max(1);
        let part_of = |ip: IpAddr| dnsight_model::partition(ip, parts);
        let want: HashSet<u32> = which.iter().copied().collect();
        // per partition: devices, their count, windows, their count, alerts, their count
        type Acc = (Vec<u8>, u32, Vec<u8>, u32, Vec<u8>, u32);
        let mut out: HashMap<u32, Acc> = which.iter().map(|&p| (p, Default::default())).collect();
        // devices
        for s in &self.shards {
            for d in &s.base.devices {
                let p = part_of(d.ip);
                if let Some(o) = out.get_mut(&p) {
                    o.0.put_ip(d.ip);
                    let mut b = Vec::new();
                    crate::store::encode_device(d, &s.base, &mut b);
                    o.0.put_u32(b.len() as u32);
                    o.0.extend_from_slice(&b);
                    o.1 += 1;
                }
            }
        }
        // detector windows: each shard's record, read back through a fresh detector that keeps
        // only the partition's devices (the detectors' own codec, no second format)
        for s in &self.shards {
            let devices = &s.base.devices;
            let ip = |d: DevId| devices[d as usize].ip;
            for det in &s.detectors {
                let mut all = Vec::new();
                det.save_state(&ip, &mut all);
                for &p in &want {
                    let Some(mut fresh) = detectors::registry(&self.cfg)
                        .into_iter()
                        .find(|d| d.name() == det.name())
                    else {
                        continue;
                    };
                    let index = &s.base.dev_index;
                    let id = |a: IpAddr| {
                        let a = crate::net::canonical(a);
                        (part_of(a) == p).then(|| index.get(&a).copied()).flatten()
                    };
                    if fresh
                        .load_state(&id, &mut crate::codec::Rd::new(&all))
                        .is_none()
                    {
                        continue;
                    }
                    let mut mine = Vec::new();
                    fresh.save_state(&ip, &mut mine);
                    if let Some(o) = out.get_mut(&p) {
                        o.2.put_str(det.name());
                        o.2.put_u32(mine.len() as u32);
                        o.2.extend_from_slice(&mine);
                        o.3 += 1;
                    }
                }
            }
        }
        // alerts of the partition's devices alone (none when the correlator runs elsewhere:
        // it holds them)
        let book = if self.remote {
            Vec::new()
        } else {
            self.corr.book.sorted()
        };
        for a in book {
            let ps: HashSet<u32> = a
                .devices
                .iter()
                .filter_map(|d| d.parse::<IpAddr>().ok())
                .map(part_of)
                .collect();
            if ps.len() != 1 {
                continue;
            }
            let p = *ps.iter().next().unwrap_or(&u32::MAX);
            if let Some(o) = out.get_mut(&p) {
                if let Ok(j) = serde_json::to_string(&a) {
                    o.4.put_str(&j);
                    o.5 += 1;
                }
            }
        }
        let mut v: Vec<(u32, Vec<u8>)> = out
            .into_iter()
            .map(|(p, (devs, nd, wins, nw, alerts, na))| {
                let mut b = vec![PART_VERSION];
                b.put_u32(parts);
                b.put_u32(p);
                b.put_u32(self.org_first);
                b.put_u32(nd);
                b.extend_from_slice(&devs);
                b.put_u32(nw);
                b.extend_from_slice(&wins);
                b.put_u32(na);
                b.extend_from_slice(&alerts);
                (p, b)
            })
            .collect();
        v.sort_by_key(|(p, _)| *p);
        v
    }

    /// Restores one record of [`export_partitions`](Self::export_partitions) into this engine
    /// (meant for one that does not hold the partition's devices: a device already present is
    /// kept and counted). The events after the record's point are then fed in their order.
    /// A record that does not decode is an error; nothing of it is applied then.
    pub fn import_partition(&mut self, b: &[u8]) -> Result<ImportStats, EngineError> {
        let bad = |w: &str| EngineError::Store(format!("partition record: {w}"));
        let mut r = crate::codec::Rd::new(b);
        if r.u8() != Some(PART_VERSION) {
            return Err(bad("unknown version"));
        }
        let (Some(_parts), Some(_part), Some(org_first), Some(nd)) =
            (r.u32(), r.u32(), r.u32(), r.count(20))
        else {
            return Err(bad("short header"));
        };
        let mut devs: Vec<(IpAddr, &[u8])> = Vec::with_capacity(nd);
        for _ in 0..nd {
            let (Some(ip), Some(l)) = (r.ip(), r.u32()) else {
                return Err(bad("short device"));
            };
            devs.push((ip, r.take(l as usize).ok_or_else(|| bad("short device"))?));
        }
        let mut wins: Vec<(&str, &[u8])> = Vec::new();
        for _ in 0..r.count(8).ok_or_else(|| bad("short windows"))? {
            let (Some(name), Some(l)) = (r.str(), r.u32()) else {
                return Err(bad("short windows"));
            };
            wins.push((
                name,
                r.take(l as usize).ok_or_else(|| bad("short windows"))?,
            ));
        }
        let mut alerts: Vec<Alert> = Vec::new();
        for _ in 0..r.count(4).ok_or_else(|| bad("short alerts"))? {
            let j = r.str().ok_or_else(|| bad("short alerts"))?;
            if let Ok(a) = serde_json::from_str::<Alert>(j) {
                alerts.push(a);
            }
        }
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        self.sync();
        let mut st = ImportStats::default();
        if org_first != 0 && (self.org_first == 0 || org_first < self.org_first) {
            self.org_first = org_first;
        }
        let n = self.shards.len();
        let mut mine: HashSet<IpAddr> = HashSet::new();
        for (ip, rec) in devs {
            let ip = crate::net::canonical(ip);
            let sh = &mut self.shards[partition(ip) as usize % n];
            if sh.base.dev_index.contains_key(&ip) {
                st.present += 1;
                continue;
            }
            let base = &mut sh.base;
            let mut d = Device::new(ip, 0);
            d.identify(&self.cfg);
            if crate::store::decode_device(rec, &mut d, base).is_none() {
                st.corrupt += 1;
                continue;
            }
            // the stream sequence is the replay guard of a checkpoint: every event after it
            // counts, even one with the same time as the device's latest
            d.skip_until = 0;
            d.dirty = true;
            let id = base.devices.len() as DevId;
            base.entries += d.dests.len() as u64;
            for (&did, e) in d.dests.iter() {
                self.corr
                    .load_entry(&base.dests[did as usize].name, e.first, d.group.as_ref());
                let od = &mut base.dests[did as usize];
                od.last = od.last.max(e.last);
            }
            for c in &d.countries {
                *self.corr.countries.entry(*c).or_default() += 1;
            }
            for a in &d.asns {
                *self.corr.asns.entry(*a).or_default() += 1;
            }
            self.corr.devices += 1;
            self.corr.dev(&self.cfg, ip);
            base.dev_index.insert(ip, id);
            base.devices.push(d);
            mine.insert(ip);
            st.devices += 1;
        }
        for (name, w) in wins {
            for s in &mut self.shards {
                let Some(det) = s.detectors.iter_mut().find(|d| d.name() == name) else {
                    continue;
                };
                let index = &s.base.dev_index;
                let id = |ip: IpAddr| {
                    let ip = crate::net::canonical(ip);
                    mine.contains(&ip)
                        .then(|| index.get(&ip).copied())
                        .flatten()
                };
                if det.load_state(&id, &mut crate::codec::Rd::new(w)).is_none() {
                    self.notices.push(format!(
                        "partition record: the {name} detector's windows did not decode; its devices start empty"
                    ));
                }
            }
        }
        alerts.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.id.cmp(&b.id)));
        for a in alerts {
            if self.corr.book.get(&a.id).is_some() {
                continue;
            }
            let corr = &mut self.corr;
            let ids: HashMap<String, DevId> = a
                .devices
                .iter()
                .filter_map(|s| Some((s.clone(), corr.dev_id(s.parse::<IpAddr>().ok()?)?)))
                .collect();
            corr.book.restore(a, |ip| ids.get(ip).copied());
            st.alerts += 1;
        }
        self.corr.touch_all();
        self.publish();
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{cfg, lines, parse};
    use redb::ReadableTable;

    /// A beacon, an NXDOMAIN burst, a tunnel and a PTR sweep, each straddling 02:37:30 on day 2
    /// so that neither half alone reaches its detector's threshold; day 1 is learning.
    fn story() -> (Vec<DnsEvent>, dnsight_model::Ts) {
        let mut evs = Vec::new();
        for (i, f) in [
            "@2026-11-02T00:00:00Z\n+1h x3 10.0.0.5 www.example.com A NOERROR 93.184.216.34",
            "@2026-11-02T00:10:00Z\n+1h x3 10.0.0.6 www.example.com A NOERROR 93.184.216.34",
            "@2026-11-02T00:20:00Z\n+1h x3 10.0.0.7 www.example.com A NOERROR 93.184.216.34",
            "@2026-11-02T00:30:00Z\n+1h x3 10.0.0.8 www.example.com A NOERROR 93.184.216.34",
            "@2026-11-03T02:00:00Z\n+300s~15s x14 10.0.0.5 c2.example A NOERROR ttl:60 198.51.100.7",
            "@2026-11-03T02:35:00Z\n+15s x20 10.0.0.6 {r}x{r}.com A NXDOMAIN",
            "@2026-11-03T02:35:00Z\n+2s x150 10.0.0.7 {r}{r}.t.example TXT NOERROR txt:ok",
            "@2026-11-03T02:37:10Z\n+1s x40 10.0.0.8 {i}.1.0.10.in-addr.arpa PTR NXDOMAIN",
        ]
        .iter()
        .enumerate()
        {
            // distinct random names per pattern: parse's generator restarts for each fixture
            let f = f.replace("{r}", &format!("{{r}}{}", ["", "", "", "", "", "a", "b", ""][i]));
            evs.extend(parse(&f));
        }
        evs.sort_by_key(|e| e.ts);
        let split = dnsight_model::Ts::parse("2026-11-03T02:37:30Z").unwrap();
        (evs, split)
    }

    /// A state directory holding the story's events up to `split`.
    /// Kind, severity and count of each alert, without times and ids.
    fn shape(e: &Engine) -> Vec<String> {
        let mut v: Vec<String> = lines(e, None).lines().map(str::to_string).collect();
        v.sort();
        v
    }

    #[test]
    fn an_exempted_mirror_raises_nothing_others_still_do() {
        // a package mirror pulls many unique names from upstream after learning; so does
        // another server: only the mirror is exempt (tunneling and traffic jumps on its job)
        let mut c = cfg();
        c.exempt.push(crate::config::Exemption {
            devices: vec![crate::net::Cidr::parse("10.0.0.80").unwrap()],
            kinds: vec![Kind::Tunneling, Kind::NewDestination, Kind::TrafficChange],
            ..Default::default()
        });
        let fx = "
            +0 10.0.0.80 www.example.com A NOERROR 93.184.216.34
            +0 10.0.0.81 www.example.com A NOERROR 93.184.216.34
            +1d 10.0.0.80 www.example.com A NOERROR 93.184.216.34
            +1s x150 10.0.0.80 {r}{r}{r}.pkgs.mirror-up.example TXT NOERROR txt:ok
            +1s x150 10.0.0.81 {r}{r}{r}.pkgs.mirror-up.example TXT NOERROR txt:ok
        ";
        let e = crate::detectors::testkit::run(c, fx);
        let got = lines(&e, None);
        assert!(!got.contains("10.0.0.80"), "{got}");
        assert!(
            got.contains("tunneling") && got.contains("10.0.0.81"),
            "{got}"
        );
        assert!(e.stats().exempted > 0);
    }

    #[test]
    fn relative_timestamps_give_the_same_findings_as_absolute_ones() {
        // a log written with times from 1970-01-01 (a capture's own clock): the same story
        // shifted back to the epoch must raise the same alerts, and say what it did
        let (evs, _) = story();
        let t0 = evs[0].ts.0;
        let mut abs = Engine::new(cfg());
        let mut rel = Engine::new(cfg());
        for ev in &evs {
            abs.observe(ev);
            let mut r = ev.clone();
            r.ts = dnsight_model::Ts(ev.ts.0 - t0 + 29_557_741);
            rel.observe(&r);
        }
        assert!(!shape(&abs).is_empty());
        assert_eq!(shape(&rel), shape(&abs));
        assert!(
            rel.notices().iter().any(|n| n.contains("relative")),
            "{:?}",
            rel.notices()
        );
        assert!(!abs.notices().iter().any(|n| n.contains("relative")));
        assert_eq!(rel.stats().skipped.get("timestamp_out_of_range"), None);
    }

    #[test]
    fn out_of_order_events_give_the_same_findings() {
        // merged logs and multi-threaded writers put events out of order by seconds: each event
        // is delivered up to 20 s away from its place; its own time is kept
        let (evs, _) = story();
        let mut abs = Engine::new(cfg());
        evs.iter().for_each(|e| abs.observe(e));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut keyed: Vec<(i64, &DnsEvent)> = evs
            .iter()
            .map(|e| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (e.ts.0 + (x % 20_000_000) as i64, e)
            })
            .collect();
        keyed.sort_by_key(|k| k.0);
        let moved = keyed.windows(2).filter(|w| w[1].1.ts < w[0].1.ts).count();
        assert!(moved > 50, "the shuffle must reorder events ({moved})");
        let mut ooo = Engine::new(cfg());
        keyed.iter().for_each(|(_, e)| ooo.observe(e));
        assert!(!shape(&abs).is_empty());
        assert_eq!(ooo.stats().events, abs.stats().events);
        // the same alerts (kind, severity, device, destination); how many updates an alert
        // took may differ slightly, as a threshold is crossed at another event of the burst
        let split = |v: Vec<String>| -> (Vec<String>, Vec<f64>) {
            v.iter()
                .map(|l| {
                    let (head, n) = l.rsplit_once(" x").unwrap();
                    (head.to_string(), n.parse::<f64>().unwrap())
                })
                .unzip()
        };
        let (want, want_n) = split(shape(&abs));
        let (got, got_n) = split(shape(&ooo));
        assert_eq!(got, want);
        for ((w, g), a) in want_n.iter().zip(&got_n).zip(&want) {
            assert!(
                (w - g).abs() <= (0.1 * w).max(1.0),
                "{a}: {g} updates vs {w}"
            );
        }
    }

    #[test]
    fn a_clock_jump_and_its_correction_give_the_same_findings() {
        // a sensor's clock jumps ahead by 6 hours for ten minutes of the learning period, then NTP
        // corrects it: the misplaced events are ordinary ones, and the attacks that follow the
        // correction are found as with a clean clock
        let (evs, _) = story();
        let mut c0 = cfg();
        c0.min_alert_severity = crate::alert::Severity::Info;
        let mut clean = Engine::new(c0.clone());
        evs.iter().for_each(|e| clean.observe(e));
        let mut jumped = Engine::new(c0);
        let from = dnsight_model::Ts::parse("2026-11-02T01:00:00Z").unwrap();
        let to = dnsight_model::Ts::parse("2026-11-02T01:10:00Z").unwrap();
        let mut n = 0;
        for e in &evs {
            let mut e = e.clone();
            if e.ts >= from && e.ts < to {
                e.ts = dnsight_model::Ts(e.ts.0 + 6 * 3_600_000_000);
                n += 1;
            }
            jumped.observe(&e);
        }
        assert!(n > 0, "the jump must move events");
        assert!(!shape(&clean).is_empty());
        assert_eq!(shape(&jumped), shape(&clean));
    }

    fn first_half_into_state(evs: &[DnsEvent], split: dnsight_model::Ts) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Engine::open(cfg(), dir.path()).unwrap();
        evs.iter()
            .filter(|e| e.ts <= split)
            .for_each(|e| a.observe(e));
        a.save().unwrap();
        dir
    }

    #[test]
    fn detector_windows_survive_a_restart() {
        let (evs, split) = story();
        let kinds = [
            "beaconing high 10.0.0.5",
            "dga high 10.0.0.6",
            "tunneling critical 10.0.0.7",
            "reconnaissance medium 10.0.0.8",
        ];
        // one run
        let mut one = Engine::new(cfg());
        evs.iter().for_each(|e| one.observe(e));
        let expected = lines(&one, None);
        for k in kinds {
            assert!(
                expected.lines().any(|l| l.starts_with(k)),
                "the story must raise {k}:\n{expected}"
            );
        }
        // neither half alone reaches those thresholds (else this test could not fail)
        for half in [
            evs.iter().filter(|e| e.ts <= split).collect::<Vec<_>>(),
            evs.iter().filter(|e| e.ts > split).collect(),
        ] {
            let mut e = Engine::new(cfg());
            half.into_iter().for_each(|ev| e.observe(ev));
            let got = lines(&e, None);
            for k in kinds {
                assert!(!got.lines().any(|l| l.starts_with(k)), "{k}:\n{got}");
            }
        }
        // two runs on one state: the same alerts as one run
        let dir = first_half_into_state(&evs, split);
        let mut b = Engine::open(cfg(), dir.path()).unwrap();
        assert!(
            !b.notices().iter().any(|n| n.contains("windows")),
            "{:?}",
            b.notices()
        );
        evs.iter()
            .filter(|e| e.ts > split)
            .for_each(|e| b.observe(e));
        assert_eq!(lines(&b, None), expected);
    }

    #[test]
    fn partitions_move_between_engines_without_changing_alerts() {
        // the first half in one engine; its partitions exported, imported into others (any
        // worker count, all or some partitions each), the second half there: the same alerts
        let (evs, split) = story();
        let mut one = Engine::new(cfg());
        evs.iter().for_each(|e| one.observe(e));
        let expected = lines(&one, None);
        let mut a = Engine::new(cfg());
        evs.iter()
            .filter(|e| e.ts <= split)
            .for_each(|e| a.observe(e));
        let parts = 8;
        let recs = a.export_partitions(parts, &(0..parts).collect::<Vec<_>>());
        assert_eq!(recs.len(), parts as usize);
        let second: Vec<&DnsEvent> = evs.iter().filter(|e| e.ts > split).collect();
        // all partitions into an engine with 3 workers
        let mut b = Engine::new(EngineConfig {
            workers: 3,
            ..cfg()
        });
        let mut devices = 0;
        for (_, r) in &recs {
            devices += b.import_partition(r).unwrap().devices;
        }
        assert_eq!(devices, 4);
        second.iter().for_each(|e| b.observe(e));
        assert_eq!(lines(&b, None), expected);
        // even and odd partitions in two engines, each fed its own devices' events
        let mut got: Vec<String> = Vec::new();
        for half in 0..2u32 {
            let mut e = Engine::new(cfg());
            for (p, r) in recs.iter().filter(|(p, _)| p % 2 == half) {
                let st = e.import_partition(r).unwrap();
                assert_eq!(st.corrupt, 0, "partition {p}");
            }
            second
                .iter()
                .filter(|ev| dnsight_model::partition(ev.client, parts) % 2 == half)
                .for_each(|ev| e.observe(ev));
            got.extend(lines(&e, None).lines().map(str::to_string));
        }
        got.sort();
        let mut want: Vec<String> = expected.lines().map(str::to_string).collect();
        want.sort();
        assert_eq!(got, want);
        // a damaged record is an error, never a panic, and applies nothing
        let r = &recs.iter().max_by_key(|(_, r)| r.len()).unwrap().1;
        for n in 0..r.len() {
            let mut e = Engine::new(cfg());
            if e.import_partition(&r[..n]).is_ok() {
                panic!("a record cut at {n} of {} bytes was accepted", r.len());
            }
            assert_eq!(e.stats().devices, 0);
        }
        let mut flipped = r.clone();
        for i in (0..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
            let _ = Engine::new(cfg()).import_partition(&flipped);
        }
    }

    #[test]
    fn workers_with_a_correlator_elsewhere_give_the_alerts_of_one_engine() {
        // two engines in remote mode, each fed its own partitions' events of every batch, and
        // a third that correlates their epochs (failing over to a fourth half way, from its
        // record): the alerts of one engine that saw every batch
        let (evs, _) = story();
        let parts = 8;
        let mut one = Engine::new(cfg());
        for b in evs.chunks(150) {
            one.observe_batch(b);
        }
        let expected = lines(&one, None);
        let mut workers: Vec<Engine> = (0..2)
            .map(|_| {
                let mut e = Engine::new(cfg());
                e.set_remote_correlator(true);
                e
            })
            .collect();
        let mut corr = Engine::new(cfg());
        let n = evs.chunks(150).count();
        for (k, b) in evs.chunks(150).enumerate() {
            let mut updates = Vec::new();
            for (w, e) in workers.iter_mut().enumerate() {
                let mine: Vec<DnsEvent> = b
                    .iter()
                    .filter(|ev| dnsight_model::partition(ev.client, parts) % 2 == w as u32)
                    .cloned()
                    .collect();
                e.observe_batch(&mine);
                for out in e.take_outbound() {
                    // cut in pieces as a bus message limit would: the same result
                    match out.clone().split() {
                        Some((a, b)) => {
                            updates.push(corr.correlate(a));
                            updates.push(corr.correlate(b));
                        }
                        None => updates.push(corr.correlate(out)),
                    }
                }
            }
            for e in &mut workers {
                assert!(
                    e.alerts().is_empty(),
                    "a remote worker's own book stays empty"
                );
                for u in &updates {
                    e.apply_org_update(u);
                }
            }
            if k == n / 2 {
                let rec = corr.export_correlator();
                let mut standby = Engine::new(cfg());
                standby.import_correlator(&rec).unwrap();
                assert_eq!(lines(&standby, None), lines(&corr, None));
                assert_eq!(
                    format!("{:?}", standby.org_snapshot()),
                    format!("{:?}", corr.org_snapshot())
                );
                corr = standby;
                // a damaged record is an error, never a panic
                assert!(Engine::new(cfg())
                    .import_correlator(&rec[..rec.len() / 2])
                    .is_err());
            }
        }
        assert_eq!(lines(&corr, None), expected);
        // a worker that starts from the snapshot knows what the others know
        let snap = corr.org_snapshot();
        assert!(snap.devices == 4 && !snap.dests.is_empty() && !snap.members.is_empty());
    }

    #[test]
    fn damaged_window_records_never_panic() {
        // every byte of every detector's real record flipped, every truncation, random bytes
        let (evs, split) = story();
        let mut e = Engine::new(cfg());
        evs.iter()
            .filter(|x| x.ts <= split)
            .for_each(|x| e.observe(x));
        let sh = &e.shards[0];
        let devices = &sh.base.devices;
        let ip = |d: DevId| devices[d as usize].ip;
        let id = |a: std::net::IpAddr| sh.base.dev_index.get(&crate::net::canonical(a)).copied();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for det in &sh.detectors {
            let mut blob = Vec::new();
            det.save_state(&ip, &mut blob);
            let mut variants: Vec<Vec<u8>> = (0..blob.len()).map(|n| blob[..n].to_vec()).collect();
            for i in 0..blob.len() {
                let mut b = blob.clone();
                b[i] ^= 0xff;
                variants.push(b);
            }
            for n in 0..200 {
                variants.push(
                    (0..n)
                        .map(|_| {
                            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                            (rng >> 56) as u8
                        })
                        .collect(),
                );
            }
            for v in variants {
                let mut fresh = detectors::registry(&cfg())
                    .into_iter()
                    .find(|d| d.name() == det.name())
                    .unwrap();
                let _ = fresh.load_state(&id, &mut crate::codec::Rd::new(&v));
            }
        }
    }

    #[test]
    fn corrupt_windows_start_the_detector_empty() {
        let (evs, split) = story();
        let dir = first_half_into_state(&evs, split);
        // truncate the beaconing record and append junk to the DGA one
        {
            let db = redb::Database::open(dir.path().join(crate::STATE_FILE)).unwrap();
            let t: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("windows");
            let tx = db.begin_write().unwrap();
            {
                let mut w = tx.open_table(t).unwrap();
                let b = w.get("beaconing").unwrap().unwrap().value().to_vec();
                assert!(b.len() > 20);
                w.insert("beaconing", &b[..b.len() / 2]).unwrap();
                let mut d = w.get("dga").unwrap().unwrap().value().to_vec();
                d.extend_from_slice(b"junk");
                w.insert("dga", &d[..]).unwrap();
            }
            tx.commit().unwrap();
        }
        let mut b = Engine::open(cfg(), dir.path()).unwrap();
        let n = b.notices().join("\n");
        assert!(n.contains("beaconing detector's saved windows"), "{n}");
        assert!(n.contains("dga detector's saved windows"), "{n}");
        evs.iter()
            .filter(|e| e.ts > split)
            .for_each(|e| b.observe(e));
        let got = lines(&b, None);
        // the damaged detectors restarted empty: their half-patterns are below threshold
        assert!(!got.contains("beaconing high 10.0.0.5"), "{got}");
        assert!(!got.contains("dga high 10.0.0.6"), "{got}");
        // the intact ones resumed
        assert!(got.contains("tunneling critical 10.0.0.7"), "{got}");
    }
}
