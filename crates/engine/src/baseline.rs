//! Baselines: what each device, each group and the whole organisation normally resolves.
//!
//! Per device: destinations (registered domains and internal host names, interned to `u32`
//! ids) with first/last seen, count, days seen and today's count; countries and ASNs reached;
//! an hour-of-week profile of query volume, distinct destinations and NXDOMAIN share. Per
//! group: which destinations any member uses. Org-wide: every destination with its first
//! sighting and prevalence (how many devices use it).
//!
//! **Learning and poisoning rule.** A device learns for `learn_days` of its own activity
//! (event time since its first event; or until `learn_until`). Everything seen while learning
//! is known. After learning, a new destination enters the device baseline as *novel*: it stays
//! novel (and keeps updating its new_destination alert) until it has been seen on at least
//! 2 distinct days and at least 24 hours after its first sighting, and only if no detector other
//! than the novelty detectors (new destination/country/ASN, traffic change) raised an alert on
//! it. A destination marked *suspect* (beaconing, DGA, tunneling, intel, policy) never becomes
//! known by repetition; only an acknowledgement does. NXDOMAIN and unanswered names never
//! enter baselines (they do not resolve; the DGA and reconnaissance detectors look at them).
//!
//! Memory: a (device, destination) entry is a `u32` key and a 24-byte [`DestEntry`] in a
//! foldhash table (ids are ours, not attacker-chosen); measured by `examples/bench_engine.rs`.

use crate::alert::DevId;
use crate::geo::Country;
use compact_str::CompactString;
use std::collections::HashMap;
use std::net::IpAddr;

pub type DestId = u32;
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Flags of a destination entry.
pub mod flag {
    /// Seen while the device was learning.
    pub const LEARNED: u8 = 1;
    /// Promoted from novel to known (benign novelty seen enough).
    pub const KNOWN: u8 = 2;
    /// A non-novelty detector raised an alert on it: never promoted by repetition.
    pub const SUSPECT: u8 = 4;
    /// Acknowledged by a person.
    pub const ACKED: u8 = 8;
}

/// One (device, destination) baseline entry. Times are event-time seconds since the epoch,
/// days are local day numbers since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestEntry {
    pub first: u32,
    pub last: u32,
    pub count: u32,
    /// Queries on `last_day`.
    pub today: u32,
    pub days: u16,
    pub last_day: u16,
    pub flags: u8,
}

impl DestEntry {
    /// Known = part of the normal baseline (learned, promoted or acknowledged).
    pub fn is_known(&self) -> bool {
        self.flags & (flag::LEARNED | flag::KNOWN | flag::ACKED) != 0
    }
}

/// Running mean/variance (exponentially weighted after `n` reaches 8).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    pub n: u16,
    pub mean: f32,
    pub var: f32,
}

impl Stat {
    /// Exponentially weighted (last ~8 samples dominate): per hour-of-week slot.
    pub fn push(&mut self, x: f32) {
        self.push_with(x, 8);
    }
    /// Cumulative mean and variance (all-hours summary: nights and weekends must not wash
    /// out the working hours).
    pub fn push_cumulative(&mut self, x: f32) {
        self.push_with(x, u16::MAX);
    }
    fn push_with(&mut self, x: f32, cap: u16) {
        self.n = self.n.saturating_add(1);
        let w = 1.0 / f32::from(self.n.min(cap));
        let d = x - self.mean;
        self.mean += w * d;
        self.var = (1.0 - w) * (self.var + w * d * d);
    }
    pub fn sd(&self) -> f32 {
        self.var.max(0.0).sqrt()
    }
}

/// Per hour-of-week slot: query volume, distinct destinations, NXDOMAIN share.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Slot {
    pub volume: Stat,
    pub distinct: Stat,
    pub nx_share: Stat,
}

/// The hour being accumulated for a device.
#[derive(Clone, Debug, Default)]
pub struct HourAcc {
    /// Absolute local hour number (hours since the epoch in the site time zone).
    pub hour: u32,
    pub volume: u32,
    pub nx: u32,
    /// Linear-counting bitmap of destination ids (1024 bits).
    pub bits: [u64; 16],
    /// Bit set per metric once a traffic_change finding fired this hour.
    pub fired: u8,
    /// NXDOMAIN names asked this hour (1024-bit set of qname hashes; not persisted: after a
    /// restart the running hour counts its names afresh).
    pub nx_bits: [u64; 16],
    /// NXDOMAIN answers this hour for a name that already got one this hour: a device
    /// re-asking what does not exist (misconfiguration), not new traffic.
    pub nx_repeat: u32,
}

impl HourAcc {
    pub fn add_dest(&mut self, id: u32) {
        let h = (id.wrapping_mul(0x9E37_79B1) >> 22) as usize; // 10 bits
        self.bits[h >> 6] |= 1 << (h & 63);
    }
    /// Queries this hour without the NXDOMAIN repeats.
    pub fn volume_new(&self) -> u32 {
        self.volume.saturating_sub(self.nx_repeat)
    }
    /// NXDOMAIN answers this hour without the repeats.
    pub fn nx_new(&self) -> u32 {
        self.nx.saturating_sub(self.nx_repeat)
    }
    /// Counts an NXDOMAIN for the name with hash `h`; true when it is a repeat this hour.
    pub fn add_nx(&mut self, h: u64) -> bool {
        let b = (h >> 40) as usize & 1023;
        let repeat = self.nx_bits[b >> 6] & (1 << (b & 63)) != 0;
        self.nx_bits[b >> 6] |= 1 << (b & 63);
        if repeat {
            self.nx_repeat += 1;
        }
        repeat
    }
    /// Linear-counting estimate of distinct destinations this hour.
    pub fn distinct(&self) -> f32 {
        let set: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        let zeros = 1024 - set;
        if zeros == 0 {
            return 1024.0 * 7.0;
        }
        -1024.0 * (zeros as f32 / 1024.0).ln()
    }
}

/// Hour-of-week profile (168 slots) plus an all-hours summary used until slots have samples.
/// Boxed and touched once an hour; the running hour ([`HourAcc`]) lives inline in [`Device`].
#[derive(Clone, Debug)]
pub struct Profile {
    pub slots: Box<[Slot; 168]>,
    pub all: Slot,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            slots: Box::new([Slot::default(); 168]),
            all: Slot::default(),
        }
    }
}

impl Profile {
    /// Closes hour `c` into its slot and fills the empty hours up to `next` (at most a week)
    /// with zeros.
    pub fn close(&mut self, c: &HourAcc, next: u32) {
        // repeats of a name that does not exist are not traffic (see `HourAcc::nx_repeat`)
        let (vol, nx) = (c.volume_new(), c.nx_new());
        let share = if vol > 0 { nx as f32 / vol as f32 } else { 0.0 };
        let d = c.distinct();
        let v = vol as f32;
        let s = &mut self.slots[how_of(c.hour)];
        s.volume.push(v);
        s.distinct.push(d);
        s.nx_share.push(share);
        self.all.volume.push_cumulative(v);
        self.all.distinct.push_cumulative(d);
        self.all.nx_share.push_cumulative(share);
        let gap = next.saturating_sub(c.hour + 1).min(168);
        for k in 1..=gap {
            let s = &mut self.slots[how_of(c.hour + k)];
            s.volume.push(0.0);
            s.distinct.push(0.0);
            s.nx_share.push(0.0);
            self.all.volume.push_cumulative(0.0);
            self.all.distinct.push_cumulative(0.0);
            self.all.nx_share.push_cumulative(0.0);
        }
    }
}

/// Hour of week (0 = Monday 00:00 local) of an absolute local hour number (1970-01-01 was a
/// Thursday).
pub fn how_of(hour: u32) -> usize {
    ((hour + 72) % 168) as usize
}

/// One device's baseline.
#[derive(Clone, Debug)]
pub struct Device {
    pub ip: IpAddr,
    pub name: Option<CompactString>,
    pub group: Option<CompactString>,
    pub first_seen: u32,
    pub last_seen: u32,
    pub events: u64,
    pub active_days: u16,
    pub last_day: u16,
    pub dests: FastMap<DestId, DestEntry>,
    pub countries: Vec<Country>,
    pub asns: Vec<u32>,
    /// The hour being accumulated (inline: touched on every event).
    pub cur: HourAcc,
    pub profile: Option<Box<Profile>>,
    /// Destinations first seen after learning (novelty rate = stability).
    pub novel_dests: u32,
    /// Changed since the last save.
    pub dirty: bool,
    /// The device's group is held tight (`EngineConfig::is_tight_group`, decided when the
    /// group is assigned).
    pub tight: bool,
    /// Replay mark: the latest event time (µs) of this device fed into the state.
    pub mark: i64,
    /// The mark as loaded from the state: this device's events at or before it are already
    /// in the state (`already_in_state`). 0 for a device new to the state.
    pub skip_until: i64,
}

impl Device {
    pub fn new(ip: IpAddr, now: u32) -> Device {
        Device {
            ip,
            name: None,
            group: None,
            first_seen: now,
            last_seen: now,
            events: 0,
            active_days: 0,
            last_day: 0,
            dests: FastMap::default(),
            countries: Vec::new(),
            asns: Vec::new(),
            cur: HourAcc::default(),
            profile: None,
            novel_dests: 0,
            dirty: true,
            tight: false,
            mark: 0,
            skip_until: 0,
        }
    }
    /// Name, group and tightness from the inventory and the configuration.
    pub fn identify(&mut self, cfg: &crate::config::EngineConfig) {
        let info = cfg.inventory.lookup(self.ip);
        self.tight = info.group.as_deref().is_some_and(|g| cfg.is_tight_group(g));
        self.name = info.name;
        self.group = info.group;
    }
    /// Moves the running hour to `hour`, closing the previous one into the profile.
    pub fn roll_to(&mut self, hour: u32) {
        if self.cur.hour == 0 {
            self.cur.hour = hour;
            return;
        }
        if hour <= self.cur.hour {
            return;
        }
        self.profile
            .get_or_insert_with(Box::default)
            .close(&self.cur, hour);
        self.cur = HourAcc {
            hour,
            ..Default::default()
        };
    }
    /// Stability 0..1: 1 for a device that almost never resolves anything new (a server),
    /// 0 for one that finds 40 or more new destinations a day (a busy workstation):
    /// `1 − ln(1+r)/ln(41)` with r = destinations per active day (or 3× the post-learning
    /// novelty rate, whichever is higher).
    pub fn stability(&self) -> f64 {
        let days = f64::from(self.active_days.max(1));
        let rate = (self.dests.len() as f64) / days; // destinations per active day over its life
        let novel_rate = f64::from(self.novel_dests) / days;
        let r = rate.max(novel_rate * 3.0);
        (1.0 - (1.0 + r).ln() / (1.0 + 40f64).ln()).clamp(0.0, 1.0)
    }
}

/// One destination as a shard knows it: the organisation-wide facts as of the last epoch
/// boundary (`first`, `devices`, `internal`, `org`: copied from the correlator, the same in
/// every shard), and what only this shard saw (`last`).
#[derive(Clone, Debug, Default)]
pub struct OrgDest {
    pub name: CompactString,
    /// Org-wide first sighting (event-time seconds) as of the last epoch boundary.
    pub first: u32,
    /// Latest sighting by this shard's devices (not org-wide: the save takes the maximum).
    pub last: u32,
    /// Devices of the organisation with this destination in their baseline, as of the last
    /// epoch boundary.
    pub devices: u32,
    pub internal: bool,
    /// The organisation knew it at the last epoch boundary (else it is only interned here,
    /// for this shard's devices, and detectors see it as never seen in the organisation).
    pub org: bool,
    /// The earliest first sighting this shard told the correlator of (or learned from it):
    /// an earlier one is sent again.
    pub(crate) sent_first: u32,
}

/// All baselines.
#[derive(Default)]
pub struct Baselines {
    pub devices: Vec<Device>,
    pub dev_index: FastMap<IpAddr, DevId>,
    pub dests: Vec<OrgDest>,
    /// Destination names are attacker-influenced: a keyed map (foldhash with a random
    /// per-process seed: much faster than SipHash on short names; ids are assigned in order
    /// of first sighting, so results do not depend on the seed).
    pub dest_index: HashMap<CompactString, DestId, foldhash::quality::RandomState>,
    /// Group name -> destinations any member has in its baseline (value: devices), org-wide
    /// as of the last epoch boundary.
    pub groups: HashMap<CompactString, FastMap<DestId, u32>>,
    /// First event of the organisation (event time seconds), 0 = none yet.
    pub org_first: u32,
    /// Devices of the organisation per country / ASN, as of the last epoch boundary.
    pub countries: FastMap<Country, u32>,
    pub asns: FastMap<u32, u32>,
    /// Devices of the organisation, as of the last epoch boundary (the prevalence's
    /// denominator).
    pub org_devices: u32,
    /// This shard's (device, destination) entries.
    pub entries: u64,
    /// Destinations not stored because a cap was reached.
    pub dropped_dests: u64,
}

impl Baselines {
    pub fn dest_id(&self, name: &str) -> Option<DestId> {
        self.dest_index.get(name).copied()
    }
    pub fn intern_dest(&mut self, name: &str, now: u32, internal: bool) -> DestId {
        if let Some(&i) = self.dest_index.get(name) {
            return i;
        }
        let i = self.dests.len() as DestId;
        self.dests.push(OrgDest {
            name: name.into(),
            first: now,
            last: now,
            devices: 0,
            internal,
            org: false,
            sent_first: u32::MAX,
        });
        self.dest_index.insert(name.into(), i);
        i
    }
    /// The organisation's facts about a destination (None: the organisation did not know it
    /// at the last epoch boundary).
    pub fn org(&self, id: Option<DestId>) -> Option<&OrgDest> {
        id.and_then(|id| self.dests.get(id as usize))
            .filter(|d| d.org)
    }
    /// Fraction of the organisation's devices that have this destination in their baseline.
    pub fn prevalence(&self, id: DestId) -> f64 {
        let n = self.org_devices.max(1) as f64;
        self.org(Some(id)).map_or(0.0, |d| f64::from(d.devices) / n)
    }
    pub fn group_knows(&self, group: &str, id: DestId) -> bool {
        self.groups.get(group).is_some_and(|g| g.contains_key(&id))
    }
}
