//! A shard: the per-device half of the engine, one per worker.
//!
//! A shard owns the devices of its partitions (hash of the client address modulo
//! [`crate::msg::PARTITIONS`]): their baselines, the detectors' windows, the enrichment
//! caches. It runs enrichment, the detectors and the baseline update of its devices' events
//! and sends out what the organisation must know — [`Finding`](crate::msg::FindingMsg)s for
//! the alert book, [`OrgDelta`]s for the org-wide facts. What it reads of the organisation
//! (destination prevalence and first sighting, group baselines, countries, device count, the
//! roll-ups the book holds) is a replica refreshed at each epoch boundary from the correlator
//! ([`OrgUpdate`]), identical in every shard: so what a detector sees never depends on which
//! other devices share its shard, and one shard or many give the same alerts.

use crate::alert::{DevId, Finding, Kind};
use crate::baseline::{flag, Baselines, DestEntry, Device};
use crate::config::EngineConfig;
use crate::detectors::{self, Ctx, Detector};
use crate::enrich::{self, Enriched, MAX_GEO};
use crate::geo::GeoCache;
use crate::msg::{FindingMsg, OrgDelta, OrgUpdate};
use crate::views::Scope;
use compact_str::CompactString;
use dnsight_model::DnsEvent;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

/// What a shard knows of the alert book: which of its devices are on a live alert of a kind
/// and destination (exact for its own findings, refreshed at epoch boundaries for what the
/// correlator decided: closures, reopenings), and which rolled-up alerts existed at the last
/// epoch boundary. Detectors ask it through [`Ctx`].
#[derive(Default)]
pub struct OpenView {
    open: HashSet<(Kind, DevId, CompactString), foldhash::quality::RandomState>,
    rolled: HashSet<(Kind, CompactString), foldhash::quality::RandomState>,
}

impl OpenView {
    /// Is this device on a live alert of this kind and destination?
    pub fn is_open(&self, kind: Kind, dev: DevId, destination: &str) -> bool {
        !self.open.is_empty()
            && self
                .open
                .contains(&(kind, dev, CompactString::from(destination)))
    }
    /// Is there a live alert of this kind for this destination (any device when it rolls up)?
    pub fn exists(&self, kind: Kind, dev: DevId, destination: &str) -> bool {
        if destination.is_empty() || kind.per_device() {
            return self.is_open(kind, dev, destination);
        }
        (!self.rolled.is_empty()
            && self
                .rolled
                .contains(&(kind, CompactString::from(destination))))
            || self.is_open(kind, dev, destination)
    }
}

/// One suppression: findings of `kind` on the destination (the map key) from devices the scope
/// covers are dropped before the alert book until `until`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Suppression {
    pub kind: Kind,
    pub scope: Scope,
    pub until: Option<i64>,
}

/// Destination -> suppressions (acknowledgements), replicated in every shard.
pub(crate) type Acks = HashMap<CompactString, Vec<Suppression>, foldhash::quality::RandomState>;

/// The per-device engine of some partitions.
pub struct Shard {
    pub(crate) cfg: EngineConfig,
    pub(crate) base: Baselines,
    pub(crate) detectors: Vec<Box<dyn Detector>>,
    /// Estimated nanoseconds in each detector's `observe` (same order as `detectors`).
    pub(crate) detector_ns: Vec<u64>,
    pub(crate) open: OpenView,
    pub(crate) acks: Acks,
    geo: Option<GeoCache>,
    names: enrich::NameCache,
    findings: Vec<Finding>,
    /// What goes to the correlator at the end of the epoch.
    pub(crate) out: OrgDelta,
    pub(crate) found: Vec<FindingMsg>,
    pub(crate) events: u64,
    pub(crate) skipped: BTreeMap<&'static str, u64>,
    pub(crate) findings_by_kind: [u64; Kind::ALL.len()],
    pub(crate) suppressed: u64,
    pub(crate) exempted: u64,
}

impl Shard {
    pub fn new(cfg: &EngineConfig) -> Shard {
        Shard {
            detectors: detectors::registry(cfg),
            detector_ns: Vec::new(),
            names: enrich::NameCache::new(cfg),
            geo: cfg.geoip.clone().map(GeoCache::new),
            cfg: cfg.clone(),
            base: Baselines::default(),
            open: OpenView::default(),
            acks: Acks::default(),
            findings: Vec::new(),
            out: OrgDelta::default(),
            found: Vec::new(),
            events: 0,
            skipped: BTreeMap::new(),
            findings_by_kind: [0; Kind::ALL.len()],
            suppressed: 0,
            exempted: 0,
        }
    }

    pub(crate) fn set_intel(&mut self, intel: std::sync::Arc<crate::IntelSet>) {
        self.cfg.intel = intel;
        self.names.clear(); // cached intel prefilter results are stale
    }

    pub(crate) fn set_geo(&mut self, geo: std::sync::Arc<crate::Geo>) {
        self.cfg.geoip = Some(geo.clone());
        let mut c = GeoCache::new(geo);
        if let Some(old) = &self.geo {
            (c.lookups, c.cache_hits, c.errors) = (old.lookups, old.cache_hits, old.errors);
        }
        self.geo = Some(c);
    }

    pub(crate) fn geoip_lookups(&self) -> u64 {
        self.geo.as_ref().map_or(0, |g| g.lookups)
    }

    fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    pub(crate) fn tick(&mut self, now: u32) {
        for d in &mut self.detectors {
            d.tick(now);
        }
    }

    /// Runs this shard's events of one epoch: `idx` indexes `evs`, `ticks` are (position in
    /// `evs`, event time) of the minute boundaries the stream crossed, applied before the
    /// first of this shard's events at or after their position.
    pub(crate) fn run(&mut self, evs: &[DnsEvent], idx: &[u32], ticks: &[(u32, u32)], seq0: u64) {
        let mut t = 0;
        for &i in idx {
            while t < ticks.len() && ticks[t].0 <= i {
                self.tick(ticks[t].1);
                t += 1;
            }
            self.observe(&evs[i as usize], seq0 + u64::from(i));
        }
        for &(_, now) in &ticks[t..] {
            self.tick(now);
        }
    }

    /// One event (its time already checked and placed by the engine). Hot path: no I/O.
    fn observe(&mut self, ev: &DnsEvent, seq: u64) {
        let secs = ev.ts.secs();
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
        let local = self.cfg.tz.local_secs(i64::from(now));
        let day = (local.div_euclid(86_400)).clamp(0, u16::MAX as i64) as u16;
        let hour = (local.div_euclid(3_600)).clamp(0, u32::MAX as i64) as u32;

        // device (the engine already applied the device limit)
        let (dev, device_new) = match known {
            Some(d) => (d, false),
            None => {
                let id = self.base.devices.len() as DevId;
                let mut d = Device::new(client, now);
                d.identify(&self.cfg);
                self.base.devices.push(d);
                self.base.dev_index.insert(client, id);
                self.out.devices += 1;
                (id, true)
            }
        };
        let learning = crate::engine::is_learning(&self.cfg, &self.base.devices[dev as usize], now);

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
                // the destination's stable hash, not its id: ids are per shard
                d.cur.add_dest(facts.hashes.dest as u32);
            }
        }

        // detectors
        self.findings.clear();
        {
            let ctx = Ctx {
                cfg: &self.cfg,
                base: &self.base,
                dev: &self.base.devices[dev as usize],
                book: &self.open,
            };
            // the 1st, the 65th, ... event of this shard (`events` counts this one already)
            if self.events % crate::engine::DETECTOR_TIME_EVERY == 1 {
                self.detector_ns.resize(self.detectors.len(), 0);
                for (det, ns) in self.detectors.iter_mut().zip(&mut self.detector_ns) {
                    let t = std::time::Instant::now();
                    det.observe(&en, &ctx, &mut self.findings);
                    *ns += t.elapsed().as_nanos() as u64 * crate::engine::DETECTOR_TIME_EVERY;
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
                od.last = od.last.max(now);
                if now < od.sent_first {
                    // the organisation's first sighting may be this one
                    od.sent_first = now;
                    self.out.firsts.push((od.name.clone(), now, internal));
                }
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
                        if !learning {
                            d.novel_dests += 1;
                        }
                        self.out.entries.push((od.name.clone(), d.group.clone()));
                    }
                }
            }
            for (_, gi) in en.geo.iter().flatten() {
                if let Some(c) = gi.country {
                    if !d.countries.contains(&c) && d.countries.len() < 64 {
                        d.countries.push(c);
                        self.out.countries.push(c);
                    }
                }
                if let Some(a) = gi.asn {
                    if !d.asns.contains(&a) && d.asns.len() < 256 {
                        d.asns.push(a);
                        self.out.asns.push(a);
                    }
                }
            }
        }

        // findings: suppressed and exempted ones stop here, the others go to the book
        if !self.findings.is_empty() {
            let findings = std::mem::take(&mut self.findings);
            for f in findings.iter() {
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
                let ip = d.ip;
                // the book makes the device a member of the alert of this key (a repeat is
                // only made when it is one already)
                if !f.repeat {
                    self.open
                        .open
                        .insert((f.kind, f.dev, f.destination.clone()));
                }
                if !f.repeat && !f.kind.is_novelty() && !f.destination.is_empty() {
                    if let Some(id) = self.base.dest_id(&f.destination) {
                        if let Some(e) = self.base.devices[f.dev as usize].dests.get_mut(&id) {
                            e.flags |= flag::SUSPECT;
                            e.flags &= !flag::KNOWN;
                        }
                    }
                }
                self.found.push(FindingMsg::new(seq, ev.ts, ip, f));
            }
            self.findings = findings;
        }
    }

    /// Is this finding covered by an acknowledgement (at event time `now`)?
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

    /// Takes the correlator's view of the organisation at an epoch boundary.
    pub(crate) fn apply_update(&mut self, u: &OrgUpdate) {
        let base = &mut self.base;
        for d in &u.dests {
            let id = base.intern_dest(&d.name, d.first, d.internal);
            let od = &mut base.dests[id as usize];
            od.first = d.first;
            od.devices = d.devices;
            od.internal = d.internal;
            od.org = true;
            od.sent_first = od.sent_first.min(d.first);
        }
        for (g, name, n) in &u.groups {
            let id = base.intern_dest(name, 0, false);
            let m = base.groups.entry(g.clone()).or_default();
            if *n == 0 {
                m.remove(&id);
            } else {
                m.insert(id, *n);
            }
        }
        for &(c, n) in &u.countries {
            base.countries.insert(c, n);
        }
        for &(a, n) in &u.asns {
            base.asns.insert(a, n);
        }
        base.org_devices = u.devices;
        for m in &u.members {
            let Some(&dev) = base.dev_index.get(&m.device) else {
                continue;
            };
            let k = (m.kind, dev, m.destination.clone());
            if m.open {
                self.open.open.insert(k);
            } else {
                self.open.open.remove(&k);
            }
        }
        for (kind, dest, live) in &u.rolled {
            if *live {
                self.open.rolled.insert((*kind, dest.clone()));
            } else {
                self.open.rolled.remove(&(*kind, dest.clone()));
            }
        }
    }

    /// Marks `destination` acknowledged in the baselines of the devices `covered` (entries
    /// created where missing, within `max_dests_per_device`); new entries go to the correlator.
    pub(crate) fn join_destination(&mut self, destination: &str, scope: &Scope, now: u32) {
        let internal = self.names.facts(&self.cfg, destination).internal;
        let covered: Vec<DevId> = self.covered(scope);
        if covered.is_empty() {
            return;
        }
        let id = self.base.intern_dest(destination, now, internal);
        let base = &mut self.base;
        if now < base.dests[id as usize].sent_first {
            base.dests[id as usize].sent_first = now;
            self.out
                .firsts
                .push((base.dests[id as usize].name.clone(), now, internal));
        }
        for d in covered {
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
                    self.out
                        .entries
                        .push((base.dests[id as usize].name.clone(), dev.group.clone()));
                }
            }
        }
    }

    /// This shard's devices a scope covers.
    pub(crate) fn covered(&self, scope: &Scope) -> Vec<DevId> {
        (0..self.base.devices.len() as DevId)
            .filter(|&d| {
                let d = &self.base.devices[d as usize];
                scope.covers(d.ip, d.group.as_deref())
            })
            .collect()
    }

    /// Adds an acknowledged country or ASN to the covered devices.
    pub(crate) fn join_geo(&mut self, scope: &Scope, country: Option<[u8; 2]>, asn: Option<u32>) {
        for d in self.covered(scope) {
            let dev = &mut self.base.devices[d as usize];
            if let Some(c) = country {
                if !dev.countries.contains(&c) && dev.countries.len() < 64 {
                    dev.countries.push(c);
                    dev.dirty = true;
                    self.out.countries.push(c);
                }
            }
            if let Some(a) = asn {
                if !dev.asns.contains(&a) && dev.asns.len() < 256 {
                    dev.asns.push(a);
                    dev.dirty = true;
                    self.out.asns.push(a);
                }
            }
        }
    }

    /// The detectors' windows of this shard, one record per detector (devices by address).
    pub(crate) fn windows(&self) -> Vec<(&'static str, Vec<u8>)> {
        let devices = &self.base.devices;
        let ip = |d: DevId| devices[d as usize].ip;
        self.detectors
            .iter()
            .map(|d| {
                let mut out = Vec::new();
                d.save_state(&ip, &mut out);
                (d.name(), out)
            })
            .collect()
    }

    pub(crate) fn device_of(&self, ip: IpAddr) -> Option<&Device> {
        let id = *self.base.dev_index.get(&crate::net::canonical(ip))?;
        self.base.devices.get(id as usize)
    }
}

fn net_reverse(dest: &str) -> bool {
    dest == "in-addr.arpa" || dest == "ip6.arpa"
}
