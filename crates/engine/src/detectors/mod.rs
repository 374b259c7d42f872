//! The detector registry: one file per detector, each a small struct implementing
//! [`Detector`], listed once in [`registry`].
//!
//! A detector sees every enriched event together with read-only baselines (taken *before*
//! this event updates them) and writes [`Finding`]s into a caller-owned buffer. It may keep its
//! own bounded state (windows, timestamps), evicted by event time in [`Detector::tick`].

use crate::alert::{DevId, Finding, Kind};
use crate::baseline::{Baselines, Device};
use crate::codec::{Put, Rd};
use crate::config::EngineConfig;
use crate::enrich::Enriched;
use std::collections::HashMap;
use std::net::IpAddr;

pub mod beaconing;
pub mod dga;
pub mod misconfiguration;
pub mod new_destination;
pub mod new_device;
pub mod new_geo;
pub mod policy;
pub mod reconnaissance;
pub mod threat_intel;
pub mod traffic_change;
pub mod tunneling;

#[cfg(test)]
pub(crate) mod testkit;

/// Read-only context for one event.
pub struct Ctx<'a> {
    pub cfg: &'a EngineConfig,
    pub base: &'a Baselines,
    pub dev: &'a Device,
    /// What the alert book holds for this device (and the roll-ups at the epoch's start).
    pub book: &'a crate::shard::OpenView,
}

impl Ctx<'_> {
    /// A light finding when a rolled-up alert for this destination exists (another device
    /// raised it): the score counts, no text is built.
    pub fn join(
        &self,
        kind: Kind,
        ev: &Enriched<'_>,
        destination: &str,
        score: f64,
    ) -> Option<Finding> {
        self.book
            .exists(kind, ev.dev, destination)
            .then(|| Finding::join(kind, ev.dev, destination, score))
    }
    /// A cheap repeat finding when this (kind, device, destination) alert is already open.
    pub fn repeat(&self, kind: Kind, ev: &Enriched<'_>, destination: &str) -> Option<Finding> {
        self.book
            .is_open(kind, ev.dev, destination)
            .then(|| Finding::repeat(kind, ev.dev, destination))
    }
}

/// One detector.
pub trait Detector: Send {
    /// The registry name (used by `disabled = [...]` in the config).
    fn name(&self) -> &'static str;
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>);
    /// Event-time housekeeping, called when event time passes a minute boundary.
    fn tick(&mut self, _now: u32) {}
    /// Entries of per-detector state (for stats).
    fn state_len(&self) -> usize {
        0
    }
    /// Writes the detector's windows for the persisted state (written with the baselines at
    /// every save). Devices are written by address: `DevId`s are per process. Default: none.
    fn save_state(&self, _ip: &dyn Fn(DevId) -> IpAddr, _out: &mut Vec<u8>) {}
    /// Restores what [`save_state`](Self::save_state) wrote; `id` maps an address to this
    /// process's device (None: a device the baselines do not hold, its records are dropped).
    /// None when the input is malformed: the engine then starts this detector empty.
    fn load_state(&mut self, _id: &dyn Fn(IpAddr) -> Option<DevId>, _r: &mut Rd<'_>) -> Option<()> {
        Some(())
    }
}

/// `save_state`/`load_state` of a detector whose windows are one per-device map field.
macro_rules! persist_windows {
    ($field:ident) => {
        fn save_state(
            &self,
            ip: &dyn Fn(crate::alert::DevId) -> std::net::IpAddr,
            out: &mut Vec<u8>,
        ) {
            super::save_map(&self.$field, ip, out);
        }
        fn load_state(
            &mut self,
            id: &dyn Fn(std::net::IpAddr) -> Option<crate::alert::DevId>,
            r: &mut crate::codec::Rd<'_>,
        ) -> Option<()> {
            super::load_map(&mut self.$field, id, r)
        }
    };
}
pub(crate) use persist_windows;

/// A value of a detector's persisted windows.
pub(crate) trait Persist: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Rd<'_>) -> Option<Self>;
}

/// A key of a detector's per-device map: the device (written as its address) and maybe more.
pub(crate) trait DevKey: Copy + Eq + std::hash::Hash {
    fn put(self, ip: &dyn Fn(DevId) -> IpAddr, out: &mut Vec<u8>);
    /// The key, or Some(None) when its device is unknown.
    fn get(r: &mut Rd<'_>, id: &dyn Fn(IpAddr) -> Option<DevId>) -> Option<Option<Self>>;
}

impl DevKey for DevId {
    fn put(self, ip: &dyn Fn(DevId) -> IpAddr, out: &mut Vec<u8>) {
        out.put_ip(ip(self));
    }
    fn get(r: &mut Rd<'_>, id: &dyn Fn(IpAddr) -> Option<DevId>) -> Option<Option<Self>> {
        Some(id(r.ip()?))
    }
}

/// (device, name hash): `name_hash` is seeded but fixed, so it is stable across processes.
impl DevKey for (DevId, u64) {
    fn put(self, ip: &dyn Fn(DevId) -> IpAddr, out: &mut Vec<u8>) {
        out.put_ip(ip(self.0));
        out.put_u64(self.1);
    }
    fn get(r: &mut Rd<'_>, id: &dyn Fn(IpAddr) -> Option<DevId>) -> Option<Option<Self>> {
        let d = id(r.ip()?);
        let h = r.u64()?;
        Some(d.map(|d| (d, h)))
    }
}

/// Writes a per-device map: a count, then key and value of each entry.
pub(crate) fn save_map<K: DevKey, V: Persist, S>(
    m: &HashMap<K, V, S>,
    ip: &dyn Fn(DevId) -> IpAddr,
    out: &mut Vec<u8>,
) {
    out.put_u32(m.len().min(u32::MAX as usize) as u32);
    for (k, v) in m.iter().take(u32::MAX as usize) {
        k.put(ip, out);
        v.put(out);
    }
}

/// Reads what [`save_map`] wrote into `m` (entries of unknown devices are dropped).
pub(crate) fn load_map<K: DevKey, V: Persist, S: std::hash::BuildHasher>(
    m: &mut HashMap<K, V, S>,
    id: &dyn Fn(IpAddr) -> Option<DevId>,
    r: &mut Rd<'_>,
) -> Option<()> {
    for _ in 0..r.count(16)? {
        let k = K::get(r, id)?;
        let v = V::get(r)?;
        if let Some(k) = k {
            m.insert(k, v);
        }
    }
    Some(())
}

/// A device's learned schedule of one kind of burst: per local hour of the day, on how many
/// distinct *learning* days it did such a burst. A burst on its learned schedule (a scanner's
/// nightly sweep, a nightly batch job) is routine; after learning, bursts never teach it, so
/// an attacker cannot make a new habit normal by repeating it (acknowledge instead).
#[derive(Clone, Default, PartialEq, Debug)]
pub(crate) struct Routine {
    last_day: [u16; 24],
    days: [u8; 24],
}

impl Routine {
    /// Learning days with a burst for it to count as routine (within an hour of the time).
    pub const DAYS: u8 = 2;
    /// Records a burst at local hour index `hour` (hours since the epoch), local day `day`.
    pub fn learn(&mut self, hour: u32, day: u16) {
        let h = (hour % 24) as usize;
        if self.days[h] == 0 || self.last_day[h] != day {
            self.last_day[h] = day;
            self.days[h] = self.days[h].saturating_add(1);
        }
    }
    /// Learning days with a burst within an hour of local hour index `hour`.
    pub fn days_near(&self, hour: u32) -> u8 {
        let h = hour % 24;
        [(h + 23) % 24, h, (h + 1) % 24]
            .iter()
            .map(|&i| self.days[i as usize])
            .max()
            .unwrap_or(0)
    }
}

impl Persist for Routine {
    fn put(&self, out: &mut Vec<u8>) {
        for h in 0..24 {
            out.put_u16(self.last_day[h]);
            out.put_u8(self.days[h]);
        }
    }
    fn get(r: &mut Rd<'_>) -> Option<Routine> {
        let mut t = Routine::default();
        for h in 0..24 {
            t.last_day[h] = r.u16()?;
            t.days[h] = r.u8()?;
        }
        Some(t)
    }
}

/// A set of name hashes (a count, then each hash).
pub(crate) fn put_hashes<S>(set: &std::collections::HashSet<u64, S>, out: &mut Vec<u8>) {
    out.put_u32(set.len().min(u32::MAX as usize) as u32);
    for h in set.iter().take(u32::MAX as usize) {
        out.put_u64(*h);
    }
}

pub(crate) fn get_hashes<S: std::hash::BuildHasher + Default>(
    r: &mut Rd<'_>,
) -> Option<std::collections::HashSet<u64, S>> {
    let n = r.count(8)?;
    let mut set = std::collections::HashSet::with_capacity_and_hasher(n, S::default());
    for _ in 0..n {
        set.insert(r.u64()?);
    }
    Some(set)
}

/// Every detector, in the order they run. Disabled ones are left out.
pub fn registry(cfg: &EngineConfig) -> Vec<Box<dyn Detector>> {
    let all: Vec<Box<dyn Detector>> = vec![
        Box::new(new_device::NewDevice),
        Box::new(new_destination::NewDestination),
        Box::new(new_geo::NewGeo),
        Box::new(traffic_change::TrafficChange::default()),
        Box::new(beaconing::Beaconing::new(&cfg.tuning)),
        Box::new(dga::Dga::new(&cfg.tuning)),
        Box::new(tunneling::Tunneling::new(&cfg.tuning)),
        Box::new(threat_intel::ThreatIntel),
        Box::new(policy::Policy::new(cfg)),
        Box::new(reconnaissance::Reconnaissance::new(&cfg.tuning)),
        Box::new(misconfiguration::Misconfiguration::default()),
    ];
    all.into_iter()
        .filter(|d| !cfg.is_disabled(d.name()))
        .collect()
}

/// Hash of a name for detector state keys and counting bitmaps. Seeded but fixed, so that
/// replaying the same events gives the same alerts (determinism beats per-process random
/// keys here: colliding names could only merge two tracks, never slow a map down, because
/// the maps are keyed by these 64-bit values and rehash them).
pub(crate) fn name_hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6a09_e667_f3bc_c908).hash_one(s)
}
