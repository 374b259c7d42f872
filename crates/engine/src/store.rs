//! Persisted state: baselines and alerts in one redb file under the state directory.
//!
//! Tables are keyed so the state could be partitioned by device across machines: `devices`
//! (16-byte client address → compact binary record with the device's destinations by name),
//! `dests` (org-wide destination name → first seen, internal), `alerts` (id → alert JSON, live
//! alerts only: closed and expired ones are deleted at the save after they leave),
//! `windows` (detector name → its windows: beacon timestamps, NXDOMAIN and recon bursts, tunnel
//! counters, each device named by address) and `meta`. `save` writes everything changed (and
//! every detector's windows) in one write transaction: redb commits are atomic and durable, so
//! a crash or `kill -9` mid-save leaves the previous committed state (the loss bound is "events
//! since the last save"). Records are versioned; a device record that fails to decode is
//! counted and skipped, a detector's windows that fail to decode are dropped with a notice
//! (that detector starts empty), never a panic.
//!
//! Replay safety: each device record carries the device's event-time high-water mark, the
//! latest event time (microseconds) of that device ever fed into this state; `meta.seen_until`
//! is the latest over all devices (for messages, and the mark of version-2 device records
//! written before per-device marks). Marks are written in the same transaction as the baselines
//! they describe, so the marks and the counts can never disagree after a crash. The engine skips
//! a device's events at or before its mark on a later run (`already_in_state`), which makes
//! `dnsight analyze --state DIR f.pcap` idempotent while other sensors' devices for the same
//! period still count (a mark per device also partitions with the devices); see `Engine::open`
//! and README "Run offline".

use crate::alert::Alert;
use crate::baseline::{Baselines, DestEntry, Device, Profile, Slot, Stat};
use crate::codec::{ip_key, key_ip, Put, Rd};
use crate::config::EngineConfig;
use crate::correlator::Correlator;
use crate::shard::Shard;
use crate::EngineError;
use dnsight_model::Ts;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::net::IpAddr;
use std::path::Path;

const DEVICES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("devices");
const DESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("dests");
const ALERTS: TableDefinition<&str, &str> = TableDefinition::new("alerts");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Detector name → its windows (see `Detector::save_state`).
const WINDOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("windows");
/// Device record version: 3 adds the device's replay mark (a version-2 record takes the
/// state-wide mark); 4 adds the current hour's NXDOMAIN repeat set and count (without them a
/// restored device counted a misconfigured host's repeats as new traffic until the hour ended).
const VERSION: u8 = 4;

/// File name of the state database inside the state directory.
pub const STATE_FILE: &str = "engine.redb";

pub struct Store {
    db: Database,
    /// Records skipped at load because they did not decode.
    pub corrupt_records: std::cell::Cell<u64>,
    /// Event-time high-water mark: the latest event time in the state (loaded, then advanced by
    /// each save).
    seen_until: std::cell::Cell<Option<Ts>>,
}

/// `meta` key of the event-time high-water mark (i64 microseconds, little endian).
const SEEN_UNTIL: &str = "seen_until";

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> EngineError {
    move |e| EngineError::Store(format!("{what}: {e}"))
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, EngineError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            EngineError::Store(format!(
                "cannot create state directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(STATE_FILE);
        let db = Database::create(&path).map_err(|e| {
            EngineError::Store(format!("cannot open state {}: {e}", path.display()))
        })?;
        let tx = db.begin_write().map_err(err("begin"))?;
        {
            tx.open_table(DEVICES).map_err(err("devices table"))?;
            tx.open_table(DESTS).map_err(err("dests table"))?;
            tx.open_table(ALERTS).map_err(err("alerts table"))?;
            tx.open_table(META).map_err(err("meta table"))?;
            tx.open_table(WINDOWS).map_err(err("windows table"))?;
        }
        tx.commit().map_err(err("commit"))?;
        Ok(Store {
            db,
            corrupt_records: std::cell::Cell::new(0),
            seen_until: std::cell::Cell::new(None),
        })
    }

    /// Loads everything into empty shards and correlator: each device goes to the shard of
    /// its partition (`partition % shards`), so a state saved with any number of shards loads
    /// with any other. Returns the organisation's first event time.
    pub(crate) fn load(
        &self,
        shards: &mut [Shard],
        corr: &mut Correlator,
        cfg: &EngineConfig,
    ) -> Result<u32, EngineError> {
        let mut org_first = 0;
        let rx = self.db.begin_read().map_err(err("begin read"))?;
        let meta = rx.open_table(META).map_err(err("meta"))?;
        if let Some(v) = meta.get("org_first").map_err(err("meta get"))? {
            let b = v.value();
            if b.len() == 4 {
                org_first = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        if let Some(v) = meta.get(SEEN_UNTIL).map_err(err("meta get"))? {
            if let Ok(b) = <[u8; 8]>::try_from(v.value()) {
                self.seen_until
                    .set(Some(Ts::from_micros(i64::from_le_bytes(b))));
            }
        }
        let dests = rx.open_table(DESTS).map_err(err("dests"))?;
        for r in dests.iter().map_err(err("dests iter"))? {
            let (k, v) = r.map_err(err("dests read"))?;
            let mut r = Rd::new(v.value());
            let (Some(first), Some(last), Some(internal)) = (r.u32(), r.u32(), r.u8()) else {
                continue; // a short record: skipped, as before
            };
            corr.load_dest(k.value(), first, last, internal != 0);
        }
        let devices = rx.open_table(DEVICES).map_err(err("devices"))?;
        let n = shards.len();
        for r in devices.iter().map_err(err("devices iter"))? {
            let (k, v) = r.map_err(err("devices read"))?;
            let Some(ip) = key_ip(k.value()) else {
                continue;
            };
            let ip = crate::net::canonical(ip);
            let sh = &mut shards[crate::msg::partition(ip) as usize % n];
            let base = &mut sh.base;
            let mut d = Device::new(ip, 0);
            d.identify(cfg);
            // a record from before per-device marks takes the state-wide mark
            d.mark = self.seen_until.get().map_or(0, |m| m.micros());
            if decode_device(v.value(), &mut d, base).is_none() {
                self.corrupt_records.set(self.corrupt_records.get() + 1);
                continue;
            }
            d.skip_until = d.mark;
            d.dirty = false;
            let id = base.devices.len() as u32;
            base.entries += d.dests.len() as u64;
            for (&did, e) in d.dests.iter() {
                corr.load_entry(&base.dests[did as usize].name, e.first, d.group.as_ref());
                let od = &mut base.dests[did as usize];
                od.last = od.last.max(e.last);
            }
            for c in &d.countries {
                *corr.countries.entry(*c).or_default() += 1;
            }
            for a in &d.asns {
                *corr.asns.entry(*a).or_default() += 1;
            }
            corr.devices += 1;
            corr.dev(cfg, ip);
            base.dev_index.insert(ip, id);
            base.devices.push(d);
        }
        corr.saved_dests = corr.dests.len();
        let alerts = rx.open_table(ALERTS).map_err(err("alerts"))?;
        let mut v: Vec<Alert> = Vec::new();
        for r in alerts.iter().map_err(err("alerts iter"))? {
            let (_, j) = r.map_err(err("alerts read"))?;
            if let Ok(a) = serde_json::from_str::<Alert>(j.value()) {
                v.push(a);
            }
        }
        v.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.id.cmp(&b.id)));
        for a in v {
            let ids: std::collections::HashMap<&str, u32> = a
                .devices
                .iter()
                .filter_map(|s| {
                    let id = s.parse::<IpAddr>().ok().and_then(|ip| corr.dev_id(ip))?;
                    Some((s.as_str(), id))
                })
                .collect::<std::collections::HashMap<_, _>>();
            let ids: std::collections::HashMap<String, u32> =
                ids.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            corr.book.restore(a, |ip| ids.get(ip).copied());
        }
        Ok(org_first)
    }

    /// Every detector's saved windows, by detector name (a detector missing here never saved
    /// any, e.g. in a state from before windows were persisted).
    pub fn load_windows(&self) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
        let rx = self.db.begin_read().map_err(err("begin read"))?;
        let t = match rx.open_table(WINDOWS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err("windows")(e)),
        };
        let mut out = Vec::new();
        for r in t.iter().map_err(err("windows iter"))? {
            let (k, v) = r.map_err(err("windows read"))?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The latest event time already in the state (None for a new state): the high-water mark.
    pub fn seen_until(&self) -> Option<Ts> {
        self.seen_until.get()
    }

    /// Writes changed devices (of every shard), new destinations, changed alerts and the
    /// high-water mark (the later of the stored mark and `last_event`, the latest event fed
    /// since open) in one transaction.
    pub(crate) fn save(
        &self,
        org_first: u32,
        shards: &mut [Shard],
        corr: &mut Correlator,
        last_event: Option<Ts>,
        windows: &[(&str, Vec<u8>)],
    ) -> Result<(), EngineError> {
        let mark = self.seen_until.get().max(last_event);
        let tx = self.db.begin_write().map_err(err("begin write"))?;
        {
            let mut meta = tx.open_table(META).map_err(err("meta"))?;
            meta.insert("org_first", &org_first.to_le_bytes()[..])
                .map_err(err("meta put"))?;
            if let Some(m) = mark {
                meta.insert(SEEN_UNTIL, &m.micros().to_le_bytes()[..])
                    .map_err(err("meta put"))?;
            }
            let mut dt = tx.open_table(DESTS).map_err(err("dests"))?;
            let mut buf = Vec::with_capacity(9);
            for od in &corr.dests[corr.saved_dests.min(corr.dests.len())..] {
                // the latest sighting: the shards' own
                let last = shards
                    .iter()
                    .filter_map(|s| {
                        s.base
                            .dest_id(&od.name)
                            .map(|i| s.base.dests[i as usize].last)
                    })
                    .fold(od.last.max(od.first.min(u32::MAX - 1)), u32::max);
                buf.clear();
                buf.put_u32(od.first);
                buf.put_u32(last);
                buf.put_u8(u8::from(od.internal));
                dt.insert(od.name.as_str(), &buf[..])
                    .map_err(err("dests put"))?;
            }
            let mut devt = tx.open_table(DEVICES).map_err(err("devices"))?;
            let mut buf = Vec::new();
            for s in shards.iter() {
                let base = &s.base;
                for d in base.devices.iter().filter(|d| d.dirty) {
                    buf.clear();
                    encode_device(d, base, &mut buf);
                    devt.insert(&ip_key(d.ip)[..], &buf[..])
                        .map_err(err("devices put"))?;
                }
            }
            let mut wt = tx.open_table(WINDOWS).map_err(err("windows"))?;
            for (name, b) in windows {
                wt.insert(*name, &b[..]).map_err(err("windows put"))?;
            }
            let book = &corr.book;
            let mut at = tx.open_table(ALERTS).map_err(err("alerts"))?;
            // only live alerts are kept: the closed ones go first (an id can leave and come
            // back as reopened before a save; it is then written again below)
            for id in book.deleted() {
                at.remove(id.as_str()).map_err(err("alerts delete"))?;
            }
            for a in book.unsaved() {
                let j = serde_json::to_string(&a).map_err(err("alert json"))?;
                at.insert(a.id.as_str(), j.as_str())
                    .map_err(err("alerts put"))?;
            }
        }
        tx.commit().map_err(err("commit"))?;
        corr.book.mark_saved();
        self.seen_until.set(mark);
        corr.saved_dests = corr.dests.len();
        for s in shards.iter_mut() {
            for d in &mut s.base.devices {
                d.dirty = false;
            }
        }
        Ok(())
    }
}

fn put_stat(out: &mut Vec<u8>, s: &Stat) {
    out.put_u16(s.n);
    out.put_f32(s.mean);
    out.put_f32(s.var);
}

pub(crate) fn encode_device(d: &Device, base: &Baselines, out: &mut Vec<u8>) {
    out.put_u8(VERSION);
    out.put_u32(d.first_seen);
    out.put_u32(d.last_seen);
    out.put_u64(d.events);
    out.put_u16(d.active_days);
    out.put_u16(d.last_day);
    out.put_u32(d.novel_dests);
    out.put_u8(d.countries.len().min(255) as u8);
    for c in d.countries.iter().take(255) {
        out.extend_from_slice(c);
    }
    out.put_u16(d.asns.len().min(65535) as u16);
    for &a in d.asns.iter().take(65535) {
        out.put_u32(a);
    }
    match &d.profile {
        None => out.put_u8(0),
        Some(p) => {
            out.put_u8(1);
            for s in p.slots.iter().chain(std::iter::once(&p.all)) {
                put_stat(out, &s.volume);
                put_stat(out, &s.distinct);
                put_stat(out, &s.nx_share);
            }
        }
    }
    out.put_u32(d.cur.hour);
    out.put_u32(d.cur.volume);
    out.put_u32(d.cur.nx);
    for w in d.cur.bits {
        out.put_u64(w);
    }
    out.put_u8(d.cur.fired);
    out.put_u32(d.dests.len() as u32);
    let mut ids: Vec<(&u32, &DestEntry)> = d.dests.iter().collect();
    ids.sort_unstable_by_key(|(k, _)| **k);
    for (&id, e) in ids {
        let name = base.dests[id as usize].name.as_bytes();
        let n = name.len().min(u16::MAX as usize);
        out.put_u16(n as u16);
        out.extend_from_slice(&name[..n]);
        for v in [e.first, e.last, e.count, e.today] {
            out.put_u32(v);
        }
        out.put_u16(e.days);
        out.put_u16(e.last_day);
        out.put_u8(e.flags);
    }
    out.put_u64(d.mark as u64);
    out.put_u32(d.cur.nx_repeat);
    for w in d.cur.nx_bits {
        out.put_u64(w);
    }
}

impl Rd<'_> {
    fn stat(&mut self) -> Option<Stat> {
        Some(Stat {
            n: self.u16()?,
            mean: self.f32()?,
            var: self.f32()?,
        })
    }
}

pub(crate) fn decode_device(b: &[u8], d: &mut Device, base: &mut Baselines) -> Option<()> {
    let mut r = Rd::new(b);
    let version = r.u8()?;
    if !(2..=VERSION).contains(&version) {
        return None;
    }
    d.first_seen = r.u32()?;
    d.last_seen = r.u32()?;
    d.events = r.u64()?;
    d.active_days = r.u16()?;
    d.last_day = r.u16()?;
    d.novel_dests = r.u32()?;
    for _ in 0..r.u8()? {
        let c = r.take(2)?;
        d.countries.push([c[0], c[1]]);
    }
    for _ in 0..r.u16()? {
        d.asns.push(r.u32()?);
    }
    if r.u8()? == 1 {
        let mut p = Profile::default();
        for i in 0..169 {
            let s = Slot {
                volume: r.stat()?,
                distinct: r.stat()?,
                nx_share: r.stat()?,
            };
            if i < 168 {
                p.slots[i] = s;
            } else {
                p.all = s;
            }
        }
        d.profile = Some(Box::new(p));
    }
    d.cur.hour = r.u32()?;
    d.cur.volume = r.u32()?;
    d.cur.nx = r.u32()?;
    for w in d.cur.bits.iter_mut() {
        *w = r.u64()?;
    }
    d.cur.fired = r.u8()?;
    let n = r.u32()?;
    for _ in 0..n {
        let l = r.u16()? as usize;
        let name = std::str::from_utf8(r.take(l)?).ok()?;
        let e = DestEntry {
            first: r.u32()?,
            last: r.u32()?,
            count: r.u32()?,
            today: r.u32()?,
            days: r.u16()?,
            last_day: r.u16()?,
            flags: r.u8()?,
        };
        let id = base.intern_dest(name, e.first, false);
        d.dests.insert(id, e);
    }
    if version >= 3 {
        d.mark = r.u64()? as i64;
    }
    if version >= 4 {
        d.cur.nx_repeat = r.u32()?;
        for w in d.cur.nx_bits.iter_mut() {
            *w = r.u64()?;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn truncated_records_do_not_panic() {
        let mut base = Baselines::default();
        let mut d = Device::new("10.0.0.1".parse().unwrap(), 5);
        d.countries.push(*b"US");
        d.profile = Some(Box::default());
        let id = base.intern_dest("example.com", 5, false);
        d.dests.insert(
            id,
            DestEntry {
                first: 5,
                last: 6,
                count: 2,
                today: 2,
                days: 1,
                last_day: 0,
                flags: 1,
            },
        );
        let mut buf = Vec::new();
        encode_device(&d, &base, &mut buf);
        let mut back = Device::new(d.ip, 0);
        assert!(decode_device(&buf, &mut back, &mut base).is_some());
        assert_eq!(back.dests.get(&id), d.dests.get(&id));
        assert_eq!(back.countries, d.countries);
        for cut in 0..buf.len() {
            let mut x = Device::new(d.ip, 0);
            assert!(decode_device(&buf[..cut], &mut x, &mut base).is_none());
        }
        // the replay mark round-trips; a version-2 record (no mark) keeps the mark it was given
        d.mark = 1_793_577_600_123_456;
        buf.clear();
        encode_device(&d, &base, &mut buf);
        let mut back = Device::new(d.ip, 0);
        assert!(decode_device(&buf, &mut back, &mut base).is_some());
        assert_eq!(back.mark, d.mark);
        // the current hour's NXDOMAIN repeats round-trip (version 4); a version-3 record has none
        d.cur.add_nx(0xdead_beef_0000_0000);
        assert!(d.cur.add_nx(0xdead_beef_0000_0000));
        buf.clear();
        encode_device(&d, &base, &mut buf);
        let mut back = Device::new(d.ip, 0);
        assert!(decode_device(&buf, &mut back, &mut base).is_some());
        assert_eq!(
            (back.cur.nx_repeat, back.cur.nx_bits),
            (d.cur.nx_repeat, d.cur.nx_bits)
        );
        assert!(back.cur.add_nx(0xdead_beef_0000_0000), "still a repeat");
        let nx = 4 + 8 * 16;
        let mut v3 = buf[..buf.len() - nx].to_vec();
        v3[0] = 3;
        let mut back = Device::new(d.ip, 0);
        assert!(decode_device(&v3, &mut back, &mut base).is_some());
        assert_eq!((back.mark, back.cur.nx_repeat), (d.mark, 0));
        let mut v2 = buf[..buf.len() - nx - 8].to_vec();
        v2[0] = 2;
        let mut back = Device::new(d.ip, 0);
        back.mark = 42;
        assert!(decode_device(&v2, &mut back, &mut base).is_some());
        assert_eq!((back.mark, back.dests.len()), (42, 1));
        v2[0] = VERSION + 1;
        assert!(decode_device(&v2, &mut Device::new(d.ip, 0), &mut base).is_none());
    }

    fn events(from: &str, n: i64) -> Vec<dnsight_model::DnsEvent> {
        let t0 = dnsight_model::Ts::parse(from).unwrap();
        let name = dnsight_model::Name::parse("www.example.com").unwrap();
        (0..n)
            .map(|i| {
                dnsight_model::DnsEvent::new(
                    t0.add_secs(i * 60),
                    "10.0.0.7".parse().unwrap(),
                    name.clone(),
                    1,
                )
            })
            .collect()
    }

    /// One `dnsight analyze --state DIR` run: open, feed, save; returns (events counted,
    /// skipped as already_in_state, the device's event count in the state, notices).
    fn run(dir: &Path, evs: &[dnsight_model::DnsEvent], replay: bool) -> (u64, u64, u64, String) {
        let cfg = EngineConfig {
            replay,
            ..EngineConfig::default()
        };
        let mut e = crate::Engine::open(cfg, dir).unwrap();
        for ev in evs {
            e.observe(ev);
        }
        e.save().unwrap();
        let st = e.stats();
        (
            st.events,
            st.skipped.get("already_in_state").copied().unwrap_or(0),
            e.baselines().devices.first().map_or(0, |d| d.events),
            st.notices.join("\n"),
        )
    }

    #[test]
    fn saves_write_changed_alerts_and_keep_the_others() {
        use crate::alert::{DeviceRef, Finding, Kind};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut shards = vec![Shard::new(&EngineConfig::default())];
        let mut corr = Correlator::default();
        let who = DeviceRef {
            id: 0,
            ip: "10.0.0.5".parse().unwrap(),
            name: None,
            group: None,
        };
        let t = dnsight_model::Ts::from_secs(1_795_000_000);
        let f = |dest: &str| Finding {
            kind: Kind::Policy,
            dev: 0,
            destination: dest.into(),
            score: 50.0,
            summary: format!("policy {dest}"),
            evidence: serde_json::json!({}),
            sample: None,
            repeat: false,
        };
        corr.book.apply(&f("a.example"), &who, t);
        corr.book.apply(&f("b.example"), &who, t);
        store.save(0, &mut shards, &mut corr, Some(t), &[]).unwrap();
        assert_eq!(corr.book.unsaved().count(), 0, "everything written");
        // only a.example repeats: only it is written again
        corr.book.apply(
            &Finding::repeat(Kind::Policy, 0, "a.example"),
            &who,
            t.add_secs(60),
        );
        assert_eq!(corr.book.unsaved().count(), 1);
        store
            .save(0, &mut shards, &mut corr, Some(t.add_secs(60)), &[])
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let mut corr2 = Correlator::default();
        store
            .load(&mut shards, &mut corr2, &EngineConfig::default())
            .unwrap();
        let mut got: Vec<(String, u64)> = corr2
            .book
            .all()
            .map(|a| (a.destination.clone(), a.count))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![("a.example".to_string(), 2), ("b.example".to_string(), 1)]
        );
    }

    #[test]
    fn replaying_the_same_input_into_saved_state_does_not_count_it_twice() {
        let dir = tempfile::tempdir().unwrap();
        let monday = events("2026-11-23T08:00:00Z", 10);
        let (n, skipped, total, notes) = run(dir.path(), &monday, false);
        assert_eq!((n, skipped, total), (10, 0, 10));
        assert!(!notes.contains("already holds"), "{notes}");
        // the same file again: nothing is added, and the run says so
        let (n, skipped, total, notes) = run(dir.path(), &monday, false);
        assert_eq!((n, skipped, total), (0, 10, 10));
        assert!(
            notes.contains("already holds events up to 2026-11-23T08:09:00")
                && notes.contains("--replay"),
            "{notes}"
        );
        // a later file adds; an event exactly at the mark is the same instant: skipped
        let mut tuesday = events("2026-11-24T08:00:00Z", 5);
        tuesday.push(monday[9].clone());
        let (n, skipped, total, _) = run(dir.path(), &tuesday, false);
        assert_eq!((n, skipped, total), (5, 1, 15));
        // an earlier (out-of-order) file is skipped entirely without --replay ...
        let sunday = events("2026-11-22T08:00:00Z", 3);
        let (n, skipped, total, _) = run(dir.path(), &sunday, false);
        assert_eq!((n, skipped, total), (0, 3, 15));
        // ... and counted with it; the mark never moves backwards
        let (n, skipped, total, notes) = run(dir.path(), &sunday, true);
        assert_eq!((n, skipped, total), (3, 0, 18));
        assert!(!notes.contains("already holds"), "{notes}");
        let (n, skipped, total, notes) = run(dir.path(), &tuesday, false);
        assert_eq!((n, skipped, total), (0, 6, 18));
        assert!(notes.contains("2026-11-24T08:04:00"), "{notes}");
    }

    #[test]
    fn the_mark_is_written_with_the_baselines_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.seen_until(), None);
        let mut shards = vec![Shard::new(&EngineConfig::default())];
        let mut corr = Correlator::default();
        let t = dnsight_model::Ts::from_micros(1_795_000_000_123_456);
        store.save(0, &mut shards, &mut corr, Some(t), &[]).unwrap();
        // a save without new events keeps the mark
        store.save(0, &mut shards, &mut corr, None, &[]).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        store
            .load(
                &mut shards,
                &mut Correlator::default(),
                &EngineConfig::default(),
            )
            .unwrap();
        assert_eq!(store.seen_until(), Some(t));
    }
}
