//! The engine: enrich → detect → update baselines → dedup findings into alerts.
//!
//! Synchronous and deterministic: no clock (event time only), no I/O on the hot path. The only
//! I/O is `open`/`save` of the persisted state (redb, see `store.rs`).

use crate::alert::{AlertBook, BookLimits, DevId, DeviceRef, Finding, Kind};
use crate::baseline::{flag, Baselines, DestEntry, Device};
use crate::config::EngineConfig;
use crate::detectors::{self, Ctx, Detector};
use crate::enrich::{self, Enriched, MAX_GEO};
use crate::geo::GeoCache;
use crate::intel::IntelSet;
use crate::store::Store;
use crate::views::Scope;
use crate::{Alert, EngineError, Severity, Status};
use compact_str::CompactString;
use dnsight_model::DnsEvent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Earliest and latest accepted event times (2000-01-01, 2100-01-01).
const MIN_TS: i64 = 946_684_800;
const MAX_TS: i64 = 4_102_444_800;

/// Where event times relative to 1970-01-01 (a capture's own clock, e.g. Slips' Zeek logs) are
/// placed: 2000-01-03T00:00:00Z, a Monday, so hour-of-week profiles start on a week boundary.
const RELATIVE_BASE: i64 = 946_857_600;

/// Format version of the detectors' persisted windows.
const WINDOWS_VERSION: u8 = 1;

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

/// One suppression: findings of `kind` on the destination (the map key) from devices the scope
/// covers are dropped before the alert book until `until`.
#[derive(Clone, Debug, PartialEq)]
struct Suppression {
    kind: Kind,
    scope: Scope,
    until: Option<i64>,
}

/// The detection engine.
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) base: Baselines,
    detectors: Vec<Box<dyn Detector>>,
    /// Estimated nanoseconds in each detector's `observe` (same order as `detectors`).
    detector_ns: Vec<u64>,
    pub(crate) book: AlertBook,
    /// Destination -> suppressions (acknowledgements); not persisted (the triage store is
    /// their source of truth and re-applies them at start).
    acks: HashMap<CompactString, Vec<Suppression>, foldhash::quality::RandomState>,
    suppressed: u64,
    exempted: u64,
    /// Event time (s) of the last idle-alert sweep.
    last_expire: u32,
    geo: Option<GeoCache>,
    /// Per-name enrichment facts (destination split, intel prefilter, DoH).
    names: enrich::NameCache,
    store: Option<Store>,
    findings: Vec<Finding>,
    events: u64,
    skipped: BTreeMap<&'static str, u64>,
    findings_by_kind: [u64; Kind::ALL.len()],
    first_event: Option<dnsight_model::Ts>,
    pub(crate) last_event: Option<dnsight_model::Ts>,
    last_tick: u32,
    notices: Vec<String>,
    /// Set when the input's times are relative (before 2000, nothing absolute seen first):
    /// such times are shifted by [`RELATIVE_BASE`].
    relative: bool,
}

impl Engine {
    /// An in-memory engine.
    pub fn new(cfg: EngineConfig) -> Engine {
        let mut notices = Vec::new();
        if cfg.geoip.is_none() && !cfg.is_disabled("new_geo") {
            notices.push("GeoIP: no database: the new_country and new_asn detectors are off. Fix: add `[geoip] urls = [...]` to the config (README, \"GeoIP\") and run `dnsight geoip update --config FILE`, or pass --geoip FILE.".to_string());
        }
        let geo = cfg.geoip.clone().map(GeoCache::new);
        if let Some(g) = &geo {
            if !g.db().has_asn() {
                notices.push("GeoIP: the database has no ASN data: new_asn is off (add a GeoLite2-ASN database).".to_string());
            }
        }
        let limits = BookLimits {
            idle_secs: cfg.alert_idle_secs,
            max_live: cfg.max_open_alerts,
            min_severity: cfg.min_alert_severity,
        };
        Engine {
            detectors: detectors::registry(&cfg),
            detector_ns: Vec::new(),
            names: enrich::NameCache::new(&cfg),
            cfg,
            base: Baselines::default(),
            book: AlertBook::with_limits(limits),
            acks: HashMap::default(),
            suppressed: 0,
            exempted: 0,
            last_expire: 0,
            geo,
            store: None,
            findings: Vec::new(),
            events: 0,
            skipped: BTreeMap::new(),
            findings_by_kind: [0; Kind::ALL.len()],
            first_event: None,
            last_event: None,
            last_tick: 0,
            notices,
            relative: false,
        }
    }

    /// An engine whose baselines and alerts persist under `state_dir` (created if missing).
    pub fn open(cfg: EngineConfig, state_dir: &Path) -> Result<Engine, EngineError> {
        let mut e = Engine::new(cfg);
        let store = Store::open(state_dir)?;
        store.load(&mut e.base, &mut e.book, &e.cfg)?;
        e.load_windows(&store)?;
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

    /// Replaces the threat-intel feeds (reload without restart).
    pub fn set_intel(&mut self, intel: Arc<IntelSet>) {
        self.cfg.intel = intel;
        self.names.clear(); // cached intel prefilter results are stale
    }

    /// Replaces the GeoIP databases (a refreshed download, without restart). Lookups cached
    /// from the old databases are dropped with the old cache.
    pub fn set_geo(&mut self, geo: Arc<crate::Geo>) {
        self.cfg.geoip = Some(geo.clone());
        let mut c = GeoCache::new(geo);
        if let Some(old) = &self.geo {
            (c.lookups, c.cache_hits, c.errors) = (old.lookups, old.cache_hits, old.errors);
        }
        self.geo = Some(c);
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// One-time notices (e.g. "GeoIP off"): print them once at start.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    pub(crate) fn is_learning(&self, d: &Device, now: u32) -> bool {
        let own_end = d
            .first_seen
            .saturating_add(self.cfg.learn_days.saturating_mul(86_400));
        match self.cfg.learn_until {
            Some(u) => {
                let u = u.secs().clamp(0, u32::MAX as i64) as u32;
                now < u || (d.first_seen >= u && now < own_end)
            }
            None => now < own_end,
        }
    }

    /// Feeds one event. Hot path: no I/O, no clock.
    pub fn observe(&mut self, ev: &DnsEvent) {
        let secs = ev.ts.secs();
        if (0..MIN_TS).contains(&secs) && (self.relative || self.first_event.is_none()) {
            return self.observe_relative(ev);
        }
        if !(MIN_TS..MAX_TS).contains(&secs) {
            return self.skip("timestamp_out_of_range");
        }
        if ev.qname.is_root() {
            return self.skip("root_name");
        }
        let client = crate::net::canonical(ev.client);
        let known = self.base.dev_index.get(&client).copied();
        if let Some(d) = known {
            // replay safety, per device: its events up to its latest one in the state are there
            if !self.cfg.replay && ev.ts.micros() <= self.base.devices[d as usize].skip_until {
                return self.skip("already_in_state");
            }
        }
        let now = secs as u32;
        self.events += 1;
        if self.first_event.is_none_or(|t| ev.ts < t) {
            self.first_event = Some(ev.ts);
        }
        if self.last_event.is_none_or(|t| ev.ts > t) {
            self.last_event = Some(ev.ts);
        }
        if self.base.org_first == 0 {
            self.base.org_first = now;
        }
        let local = self.cfg.tz.local_secs(i64::from(now));
        let day = (local.div_euclid(86_400)).clamp(0, u16::MAX as i64) as u16;
        let hour = (local.div_euclid(3_600)).clamp(0, u32::MAX as i64) as u32;

        // device
        let (dev, device_new) = match known {
            Some(d) => (d, false),
            None => {
                if self.base.devices.len() >= self.cfg.max_devices {
                    return self.skip("device_limit");
                }
                let id = self.base.devices.len() as DevId;
                let mut d = Device::new(client, now);
                d.identify(&self.cfg);
                self.base.devices.push(d);
                self.base.dev_index.insert(client, id);
                (id, true)
            }
        };
        if now / 60 > self.last_tick / 60 {
            self.last_tick = now;
            for d in &mut self.detectors {
                d.tick(now);
            }
            if now / 3600 > self.last_expire / 3600 {
                self.last_expire = now;
                self.book.expire_idle(ev.ts);
            }
        }
        let learning = self.is_learning(&self.base.devices[dev as usize], now);

        // enrichment
        let qname = ev.qname.as_str();
        let facts = self.names.facts(&self.cfg, qname);
        let dest = &qname[facts.dest_start as usize..];
        let sub = &qname[..facts.sub_len as usize];
        let (internal, reverse_addr) = (facts.internal, facts.reverse_addr);
        let mut geo = [None; MAX_GEO];
        let mut internal_answer = false;
        let mut ng = 0;
        for a in &ev.answers {
            if let Some(ip) = a.addr() {
                if enrich::is_internal_addr(&self.cfg, ip) {
                    internal_answer = true;
                } else if let Some(g) = self.geo.as_mut() {
                    if ng < MAX_GEO {
                        geo[ng] = Some((ip, g.lookup(ip)));
                        ng += 1;
                    }
                }
            }
        }
        let intel = {
            let (cfg, names) = (&self.cfg, &mut self.names);
            cfg.intel.match_event_with(ev, |n| {
                if n == qname {
                    facts.intel_listed
                } else {
                    names.facts(cfg, n).intel_listed
                }
            })
        };
        let noerror = enrich::is_noerror(ev);
        let d = &self.base.devices[dev as usize];
        let dest_id = self.base.dest_id(dest);
        let group = d.group.clone();
        let tight = d.tight;
        let en = Enriched {
            ev,
            dev,
            device_new,
            learning,
            now,
            day,
            hour,
            dest,
            sub,
            dest_id,
            entry: dest_id.and_then(|id| d.dests.get(&id).copied()),
            internal,
            reverse_addr,
            doh: facts.doh_start.map(|s| &qname[s as usize..]),
            hashes: facts.hashes,
            noerror,
            nx: ev.is_nxdomain(),
            internal_answer,
            geo,
            intel,
            group,
            tight,
        };

        // profile accumulation (before detectors: traffic_change reads the current hour)
        {
            let d = &mut self.base.devices[dev as usize];
            d.roll_to(hour);
            if d.cur.hour == hour {
                d.cur.volume += 1;
                if en.nx {
                    d.cur.nx += 1;
                    d.cur.add_nx(facts.hashes.qname);
                }
                d.cur
                    .add_dest(en.dest_id.unwrap_or(facts.hashes.dest as u32));
            }
        }

        // detectors
        self.findings.clear();
        {
            let ctx = Ctx {
                cfg: &self.cfg,
                base: &self.base,
                dev: &self.base.devices[dev as usize],
                book: &self.book,
            };
            // the 1st, the 65th, ... event (`events` counts this one already)
            if self.events % DETECTOR_TIME_EVERY == 1 {
                self.detector_ns.resize(self.detectors.len(), 0);
                for (det, ns) in self.detectors.iter_mut().zip(&mut self.detector_ns) {
                    let t = std::time::Instant::now();
                    det.observe(&en, &ctx, &mut self.findings);
                    *ns += t.elapsed().as_nanos() as u64 * DETECTOR_TIME_EVERY;
                }
            } else {
                for det in &mut self.detectors {
                    det.observe(&en, &ctx, &mut self.findings);
                }
            }
        }

        // baseline update
        let enters_baseline =
            noerror && (en.resolved() || internal) && reverse_addr.is_none() && !net_reverse(dest);
        let dest_id = if enters_baseline {
            // reuse the id found during enrichment: one hash probe per event, not two
            Some(match en.dest_id {
                Some(id) => id,
                None => self.base.intern_dest(dest, now, internal),
            })
        } else {
            None
        };
        {
            let base = &mut self.base;
            let d = &mut base.devices[dev as usize];
            d.events += 1;
            // first and last as min and max: an event out of order, or from a clock that jumped
            // ahead and was corrected, must not move a device's first sighting later (its
            // learning period would then swallow what follows)
            d.first_seen = d.first_seen.min(now);
            d.last_seen = d.last_seen.max(now);
            d.mark = d.mark.max(ev.ts.micros());
            d.dirty = true;
            if day > d.last_day {
                d.last_day = day;
                d.active_days = d.active_days.saturating_add(1);
            }
            if let Some(id) = dest_id {
                let od = &mut base.dests[id as usize];
                od.first = od.first.min(now);
                od.last = od.last.max(now);
                let full = d.dests.len() >= self.cfg.max_dests_per_device;
                match d.dests.get_mut(&id) {
                    Some(e) => {
                        e.count = e.count.saturating_add(1);
                        e.first = e.first.min(now);
                        e.last = e.last.max(now);
                        if day > e.last_day {
                            e.last_day = day;
                            e.days = e.days.saturating_add(1);
                            e.today = 0;
                        }
                        e.today = e.today.saturating_add(1);
                        if learning {
                            e.flags |= flag::LEARNED;
                        } else if !e.is_known()
                            && e.flags & flag::SUSPECT == 0
                            && e.days >= 2
                            && now.saturating_sub(e.first) >= 86_400
                        {
                            e.flags |= flag::KNOWN;
                        }
                    }
                    None if full => base.dropped_dests += 1,
                    None => {
                        d.dests.insert(
                            id,
                            DestEntry {
                                first: now,
                                last: now,
                                count: 1,
                                today: 1,
                                days: 1,
                                last_day: day,
                                flags: if learning { flag::LEARNED } else { 0 },
                            },
                        );
                        base.entries += 1;
                        od.devices += 1;
                        if !learning {
                            d.novel_dests += 1;
                        }
                        if let Some(g) = &d.group {
                            *base
                                .groups
                                .entry(g.clone())
                                .or_default()
                                .entry(id)
                                .or_default() += 1;
                        }
                    }
                }
            }
            for (_, gi) in en.geo.iter().flatten() {
                if let Some(c) = gi.country {
                    if !d.countries.contains(&c) && d.countries.len() < 64 {
                        d.countries.push(c);
                        *base.countries.entry(c).or_default() += 1;
                    }
                }
                if let Some(a) = gi.asn {
                    if !d.asns.contains(&a) && d.asns.len() < 256 {
                        d.asns.push(a);
                        *base.asns.entry(a).or_default() += 1;
                    }
                }
            }
        }

        // alerts
        if !self.findings.is_empty() {
            let findings = std::mem::take(&mut self.findings);
            for f in &findings {
                self.findings_by_kind[f.kind as usize] += 1;
                if !self.acks.is_empty() && self.is_suppressed(f, secs) {
                    self.suppressed += 1;
                    continue;
                }
                let d = &self.base.devices[f.dev as usize];
                if !self.cfg.exempt.is_empty()
                    && self
                        .cfg
                        .exempt
                        .iter()
                        .any(|x| x.covers(f.kind, &f.destination, d.ip, d.group.as_deref()))
                {
                    self.exempted += 1;
                    continue;
                }
                let who = DeviceRef {
                    id: f.dev,
                    ip: d.ip,
                    name: d.name.as_deref(),
                    group: d.group.as_deref(),
                };
                self.book.apply(f, &who, ev.ts);
                if !f.repeat && !f.kind.is_novelty() && !f.destination.is_empty() {
                    if let Some(id) = self.base.dest_id(&f.destination) {
                        if let Some(e) = self.base.devices[f.dev as usize].dests.get_mut(&id) {
                            e.flags |= flag::SUSPECT;
                            e.flags &= !flag::KNOWN;
                        }
                    }
                }
            }
            self.findings = findings;
        }
    }

    /// An event whose time counts from 1970-01-01 (a log written with times relative to the
    /// start of its capture): the first one, before any absolute time, switches the engine to
    /// relative input, said once in the notices; its times are placed from [`RELATIVE_BASE`].
    #[cold]
    fn observe_relative(&mut self, ev: &DnsEvent) {
        if !self.relative {
            self.relative = true;
            self.notices.push(format!(
                "time: the input's timestamps are relative (seconds from 1970-01-01, e.g. from the start of a capture): they are placed from {} on, so alert times are that moment plus the file's own times",
                dnsight_model::Ts(RELATIVE_BASE * 1_000_000).to_rfc3339()
            ));
        }
        let mut e = ev.clone();
        e.ts = dnsight_model::Ts(ev.ts.0.saturating_add(RELATIVE_BASE * 1_000_000));
        self.observe(&e)
    }

    /// Is this finding covered by an acknowledgement (at event time `now`)? Only called when a
    /// finding exists and some acknowledgement is held: one hash probe on the destination.
    fn is_suppressed(&self, f: &Finding, now: i64) -> bool {
        let Some(v) = self.acks.get(f.destination.as_str()) else {
            return false;
        };
        let d = &self.base.devices[f.dev as usize];
        v.iter().any(|s| {
            s.kind == f.kind
                && s.until.is_none_or(|u| now < u)
                && s.scope.covers(d.ip, d.group.as_deref())
        })
    }

    /// The live alert with this id (open, flagged, blocked, reopened); None once it left.
    pub fn alert(&self, id: &str) -> Option<Alert> {
        self.book.get(id)
    }

    /// Sets a live alert's status. Flagged: score at least 65 (high) while flagged, also
    /// through rescoring; flagged, blocked, open and reopened alerts stay live (findings from
    /// blocked queries keep folding into them). Acknowledged and resolved: the alert leaves the
    /// engine (deleted from the state at the next save). Returns the alert as it is now (the
    /// final copy for a closed one); the change is reported by the next `drain_updates` too.
    /// None when no live alert has this id.
    pub fn set_status(&mut self, id: &str, status: Status) -> Option<Alert> {
        if status.is_live() {
            self.book.set_live_status(id, status)
        } else {
            self.book.close(id, status, None)
        }
    }

    /// Puts a closed alert (the triage store's copy) back as live with status Reopened; its
    /// devices are resolved by address (devices the baselines do not know are listed but not
    /// linked). A live alert with the same id is replaced. Acknowledgements are not lifted
    /// (see [`remove_ack`](Self::remove_ack)).
    pub fn reopen(&mut self, a: Alert) {
        let index = &self.base.dev_index;
        self.book.reopen(a, |ip| {
            ip.parse::<std::net::IpAddr>()
                .ok()
                .and_then(|ip| index.get(&crate::net::canonical(ip)).copied())
        });
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
        let scope = match &ack.scope {
            Scope::Device(ip) => Scope::Device(crate::net::canonical(*ip)),
            s => s.clone(),
        };
        // (a) suppression, replacing an equal one (idempotent)
        let v = self
            .acks
            .entry(CompactString::from(ack.destination.as_str()))
            .or_default();
        match v
            .iter_mut()
            .find(|s| s.kind == ack.kind && s.scope == scope)
        {
            Some(s) => s.until = ack.until,
            None => v.push(Suppression {
                kind: ack.kind,
                scope: scope.clone(),
                until: ack.until,
            }),
        }
        // (b) baseline join
        let covered: Vec<DevId> = (0..self.base.devices.len() as DevId)
            .filter(|&d| {
                let d = &self.base.devices[d as usize];
                scope.covers(d.ip, d.group.as_deref())
            })
            .collect();
        if !ack.destination.is_empty() && !ack.kind.per_device() {
            self.join_destination(&ack.destination, &covered);
        }
        match ack.kind {
            Kind::NewCountry => {
                if let Some(c) = ack
                    .detail
                    .get("country")
                    .and_then(|c| c.as_str())
                    .and_then(|c| <[u8; 2]>::try_from(c.to_ascii_uppercase().as_bytes()).ok())
                {
                    for &d in &covered {
                        let dev = &mut self.base.devices[d as usize];
                        if !dev.countries.contains(&c) && dev.countries.len() < 64 {
                            dev.countries.push(c);
                            dev.dirty = true;
                            *self.base.countries.entry(c).or_default() += 1;
                        }
                    }
                }
            }
            Kind::NewAsn => {
                if let Some(a) = ack
                    .detail
                    .get("asn")
                    .and_then(|a| a.as_u64())
                    .and_then(|a| u32::try_from(a).ok())
                {
                    for &d in &covered {
                        let dev = &mut self.base.devices[d as usize];
                        if !dev.asns.contains(&a) && dev.asns.len() < 256 {
                            dev.asns.push(a);
                            dev.dirty = true;
                            *self.base.asns.entry(a).or_default() += 1;
                        }
                    }
                }
            }
            _ => {}
        }
        // (c) live alerts it covers close
        let mut closed = Vec::new();
        for (id, devs) in self.book.matching(ack.kind, &ack.destination) {
            let hit = if devs.is_empty() {
                scope == Scope::All
            } else {
                devs.iter().any(|&d| {
                    let d = &self.base.devices[d as usize];
                    scope.covers(d.ip, d.group.as_deref())
                })
            };
            if hit && self.book.close(&id, Status::Acknowledged, None).is_some() {
                closed.push(id);
            }
        }
        closed
    }

    /// Marks `destination` acknowledged in the baselines of `devs` (entries created where
    /// missing, within `max_dests_per_device`).
    fn join_destination(&mut self, destination: &str, devs: &[DevId]) {
        if devs.is_empty() {
            return;
        }
        let now = self
            .last_event
            .map_or(0, |t| t.secs().clamp(0, u32::MAX as i64) as u32);
        let internal = self.names.facts(&self.cfg, destination).internal;
        let id = self.base.intern_dest(destination, now, internal);
        let base = &mut self.base;
        for &d in devs {
            let dev = &mut base.devices[d as usize];
            let full = dev.dests.len() >= self.cfg.max_dests_per_device;
            match dev.dests.get_mut(&id) {
                Some(e) => {
                    if e.flags & flag::ACKED == 0 || e.flags & flag::SUSPECT != 0 {
                        e.flags = (e.flags | flag::ACKED) & !flag::SUSPECT;
                        dev.dirty = true;
                    }
                }
                None if full => base.dropped_dests += 1,
                None => {
                    dev.dests.insert(
                        id,
                        DestEntry {
                            first: now,
                            last: now,
                            flags: flag::ACKED,
                            ..DestEntry::default()
                        },
                    );
                    dev.dirty = true;
                    base.entries += 1;
                    base.dests[id as usize].devices += 1;
                    if let Some(g) = &dev.group {
                        *base
                            .groups
                            .entry(g.clone())
                            .or_default()
                            .entry(id)
                            .or_default() += 1;
                    }
                }
            }
        }
    }

    /// Drops the suppressions whose `until` is at or before `now` (Unix seconds). The baseline
    /// flags they set stay: what was acknowledged was normal.
    pub fn expire_acks(&mut self, now: i64) {
        self.acks.retain(|_, v| {
            v.retain(|s| s.until.is_none_or(|u| u > now));
            !v.is_empty()
        });
    }

    /// Lifts one suppression (an acknowledgement deleted in the triage store). The baseline
    /// flags stay. Returns whether one was held.
    pub fn remove_ack(&mut self, kind: Kind, destination: &str, scope: &Scope) -> bool {
        let scope = match scope {
            Scope::Device(ip) => Scope::Device(crate::net::canonical(*ip)),
            s => s.clone(),
        };
        let Some(v) = self.acks.get_mut(destination) else {
            return false;
        };
        let n = v.len();
        v.retain(|s| !(s.kind == kind && s.scope == scope));
        let removed = v.len() != n;
        if v.is_empty() {
            self.acks.remove(destination);
        }
        removed
    }

    /// Suppressions held (acknowledgements not yet expired).
    pub fn ack_count(&self) -> usize {
        self.acks.values().map(Vec::len).sum()
    }

    /// Alerts new or changed since the last call.
    pub fn drain_updates(&mut self, out: &mut Vec<Alert>) {
        self.book.drain_updates(out);
    }

    /// The live alerts handed out (at or above `min_alert_severity`), most severe first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.book.sorted_shown()
    }

    /// Every live alert, including those recorded below `min_alert_severity` (info-level
    /// novelty: kept, scored and saved, not handed out), most severe first.
    pub fn all_alerts(&self) -> Vec<Alert> {
        self.book.sorted()
    }

    /// Persists baselines, alerts and detector windows atomically (one redb transaction).
    /// No-op in memory.
    pub fn save(&mut self) -> Result<(), EngineError> {
        let Some(s) = &self.store else {
            return Ok(());
        };
        let devices = &self.base.devices;
        let ip = |d: DevId| devices[d as usize].ip;
        let windows: Vec<(&'static str, Vec<u8>)> = self
            .detectors
            .iter()
            .map(|d| {
                let mut out = vec![WINDOWS_VERSION];
                d.save_state(&ip, &mut out);
                (d.name(), out)
            })
            .collect();
        s.save(&mut self.base, &mut self.book, self.last_event, &windows)
    }

    /// Restores the detectors' windows saved in the state; a detector whose record does not
    /// decode starts empty, with a notice.
    fn load_windows(&mut self, store: &Store) -> Result<(), EngineError> {
        let index = &self.base.dev_index;
        let id = |ip: std::net::IpAddr| index.get(&crate::net::canonical(ip)).copied();
        for (name, b) in store.load_windows()? {
            // windows of a detector that is now disabled are ignored
            let Some(det) = self.detectors.iter_mut().find(|d| d.name() == name) else {
                continue;
            };
            let mut r = crate::codec::Rd::new(&b);
            let ok = r.u8() == Some(WINDOWS_VERSION) && det.load_state(&id, &mut r).is_some();
            if !ok || !r.is_empty() {
                self.notices.push(format!(
                    "state: the {name} detector's saved windows could not be decoded; it starts empty"
                ));
                if let Some(fresh) = detectors::registry(&self.cfg)
                    .into_iter()
                    .find(|d| d.name() == name)
                {
                    *det = fresh;
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
        for (sev, n) in sevs.iter().zip(self.book.count_by_severity()) {
            if n > 0 {
                by_sev.insert(sev.as_str().to_string(), n);
            }
        }
        let last = self
            .last_event
            .map_or(0, |t| t.secs().clamp(0, u32::MAX as i64) as u32);
        EngineStats {
            events: self.events,
            skipped: self
                .skipped
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            devices: self.base.devices.len() as u64,
            devices_learning: self
                .base
                .devices
                .iter()
                .filter(|d| self.is_learning(d, last))
                .count() as u64,
            destinations: self.base.dests.len() as u64,
            baseline_entries: self.base.entries,
            findings: Kind::ALL
                .iter()
                .zip(self.findings_by_kind)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.as_str().to_string(), n))
                .collect(),
            suppressed: self.suppressed,
            exempted: self.exempted,
            alerts_recorded_only: self.book.recorded_only() as u64,
            alerts: self.book.len() as u64,
            alerts_by_severity: by_sev,
            first_event: self.first_event,
            last_event: self.last_event,
            geoip_lookups: self.geo.as_ref().map_or(0, |g| g.lookups),
            intel_feeds: self.cfg.intel.feeds().len() as u64,
            detectors: self
                .detectors
                .iter()
                .map(|d| d.name().to_string())
                .collect(),
            notices: self.notices.clone(),
            detector_seconds: self
                .detectors
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let ns = self.detector_ns.get(i).copied().unwrap_or(0);
                    (d.name().to_string(), ns as f64 / 1e9)
                })
                .collect(),
        }
    }

    /// Read access for tests and tools.
    pub fn baselines(&self) -> &Baselines {
        &self.base
    }
}

fn net_reverse(dest: &str) -> bool {
    dest == "in-addr.arpa" || dest == "ip6.arpa"
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
    fn damaged_window_records_never_panic() {
        // every byte of every detector's real record flipped, every truncation, random bytes
        let (evs, split) = story();
        let mut e = Engine::new(cfg());
        evs.iter()
            .filter(|x| x.ts <= split)
            .for_each(|x| e.observe(x));
        let devices = &e.base.devices;
        let ip = |d: DevId| devices[d as usize].ip;
        let id = |a: std::net::IpAddr| e.base.dev_index.get(&crate::net::canonical(a)).copied();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for det in &e.detectors {
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
