//! The correlator: the organisation-wide half of the engine, one per organisation.
//!
//! It owns what no shard can decide alone: destination prevalence and first sighting across
//! devices, group baselines, countries and ASNs per device count, the device count, and the
//! alert book (dedup, roll-up of one alert over many devices, spread damping, combined
//! scores). At each epoch boundary it merges the shards' [`OrgDelta`]s (commutative), folds
//! their findings into the book in stream order (the event sequence), and answers with one
//! [`OrgUpdate`] for every shard.

use crate::alert::{AlertBook, DevId, DeviceRef, Finding};
use crate::baseline::FastMap;
use crate::config::EngineConfig;
use crate::msg::{DestFacts, FindingMsg, Membership, OrgDelta, OrgUpdate};
use compact_str::CompactString;
use dnsight_model::Ts;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// One destination, org-wide.
#[derive(Clone, Debug)]
pub(crate) struct OrgDestState {
    pub name: CompactString,
    pub first: u32,
    /// As loaded from the state (the shards keep their own latest sighting).
    pub last: u32,
    pub devices: u32,
    pub internal: bool,
}

/// The org facts of a correlator's checkpoint ([`crate::Engine::export_correlator`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Facts {
    /// (name, first, last, devices, internal), in order of first sighting.
    pub dests: Vec<(CompactString, u32, u32, u32, bool)>,
    pub groups: Vec<(CompactString, CompactString, u32)>,
    pub countries: Vec<([u8; 2], u32)>,
    pub asns: Vec<(u32, u32)>,
    pub devices: u32,
    /// Devices the book knows, in id order.
    pub devs: Vec<IpAddr>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Saved {
    pub version: u32,
    pub org_first: u32,
    pub last_event: Option<Ts>,
    pub last_expire: u32,
    pub facts: Facts,
    pub alerts: Vec<crate::Alert>,
}

/// A device the book knows (by address; the shards hold its baseline).
pub(crate) struct DevMeta {
    pub ip: IpAddr,
    pub name: Option<CompactString>,
    pub group: Option<CompactString>,
}

#[derive(Default)]
pub(crate) struct Correlator {
    pub book: AlertBook,
    pub devs: Vec<DevMeta>,
    dev_index: FastMap<IpAddr, DevId>,
    pub dests: Vec<OrgDestState>,
    pub dest_index: HashMap<CompactString, u32, foldhash::quality::RandomState>,
    /// Destinations already written to the state (append-only, in order of first sighting).
    pub saved_dests: usize,
    pub groups: HashMap<CompactString, HashMap<CompactString, u32>>,
    pub countries: FastMap<[u8; 2], u32>,
    pub asns: FastMap<u32, u32>,
    pub devices: u32,
    changed_dests: BTreeSet<u32>,
    changed_groups: BTreeSet<(CompactString, CompactString)>,
    changed_countries: BTreeSet<[u8; 2]>,
    changed_asns: BTreeSet<u32>,
}

impl Correlator {
    pub fn new(book: AlertBook) -> Correlator {
        Correlator {
            book,
            ..Correlator::default()
        }
    }

    /// The book's id for a device, registered on first use (name and group from the
    /// inventory, as the shards have them).
    pub fn dev(&mut self, cfg: &EngineConfig, ip: IpAddr) -> DevId {
        let ip = crate::net::canonical(ip);
        if let Some(&d) = self.dev_index.get(&ip) {
            return d;
        }
        let info = cfg.inventory.lookup(ip);
        let id = self.devs.len() as DevId;
        self.devs.push(DevMeta {
            ip,
            name: info.name,
            group: info.group,
        });
        self.dev_index.insert(ip, id);
        id
    }

    pub fn dev_id(&self, ip: IpAddr) -> Option<DevId> {
        self.dev_index.get(&crate::net::canonical(ip)).copied()
    }

    fn dest(&mut self, name: &str, first: u32, internal: bool) -> u32 {
        if let Some(&i) = self.dest_index.get(name) {
            return i;
        }
        let i = self.dests.len() as u32;
        self.dests.push(OrgDestState {
            name: name.into(),
            first,
            last: first,
            devices: 0,
            internal,
        });
        self.dest_index.insert(name.into(), i);
        self.changed_dests.insert(i);
        i
    }

    /// A destination as loaded from the state.
    pub fn load_dest(&mut self, name: &str, first: u32, last: u32, internal: bool) {
        let i = self.dest(name, first, internal);
        self.dests[i as usize].last = last;
    }

    /// A device entry as loaded from the state.
    pub fn load_entry(&mut self, name: &str, first: u32, group: Option<&CompactString>) {
        let i = self.dest(name, first, false);
        self.dests[i as usize].devices += 1;
        if let Some(g) = group {
            *self
                .groups
                .entry(g.clone())
                .or_default()
                .entry(name.into())
                .or_default() += 1;
        }
    }

    /// Merges the shards' deltas of one epoch (commutative: the order of shards is irrelevant).
    pub fn merge(&mut self, deltas: &mut [OrgDelta]) {
        for d in deltas.iter_mut() {
            self.devices += d.devices;
            for (name, first, internal) in d.firsts.drain(..) {
                let i = self.dest(&name, first, internal);
                let od = &mut self.dests[i as usize];
                if first < od.first {
                    od.first = first;
                    self.changed_dests.insert(i);
                }
            }
            d.devices = 0;
        }
        for d in deltas.iter_mut() {
            for (name, group) in d.entries.drain(..) {
                let i = self.dest(&name, u32::MAX, false);
                self.dests[i as usize].devices += 1;
                self.changed_dests.insert(i);
                if let Some(g) = group {
                    *self
                        .groups
                        .entry(g.clone())
                        .or_default()
                        .entry(name.clone())
                        .or_default() += 1;
                    self.changed_groups.insert((g, name));
                }
            }
            for c in d.countries.drain(..) {
                *self.countries.entry(c).or_default() += 1;
                self.changed_countries.insert(c);
            }
            for a in d.asns.drain(..) {
                *self.asns.entry(a).or_default() += 1;
                self.changed_asns.insert(a);
            }
        }
    }

    /// Folds the epoch's findings into the book in stream order; `expires` are the hourly
    /// idle sweeps (sequence of the first event after the boundary, its time).
    pub fn apply(
        &mut self,
        cfg: &EngineConfig,
        found: &mut Vec<FindingMsg>,
        expires: &[(u64, Ts)],
    ) {
        // each event's findings come from one shard, in order: a stable sort keeps them so
        found.sort_by_key(|f| f.seq);
        let mut x = 0;
        for m in found.drain(..) {
            while x < expires.len() && expires[x].0 <= m.seq {
                self.book.expire_idle(expires[x].1);
                x += 1;
            }
            let cid = self.dev(cfg, m.device);
            let f = Finding {
                kind: m.kind,
                dev: cid,
                destination: m.destination,
                score: m.score,
                summary: m.summary,
                evidence: m.evidence,
                sample: m.sample,
                repeat: m.repeat,
            };
            let d = &self.devs[cid as usize];
            let who = DeviceRef {
                id: cid,
                ip: d.ip,
                name: d.name.as_deref(),
                group: d.group.as_deref(),
            };
            self.book.apply(&f, &who, m.ts);
        }
        for &(_, ts) in &expires[x..] {
            self.book.expire_idle(ts);
        }
    }

    /// Marks every org fact changed (the next update carries all of them: after a load).
    pub fn touch_all(&mut self) {
        self.changed_dests = (0..self.dests.len() as u32).collect();
        self.changed_groups = self
            .groups
            .iter()
            .flat_map(|(g, m)| m.keys().map(move |d| (g.clone(), d.clone())))
            .collect();
        self.changed_countries = self.countries.keys().copied().collect();
        self.changed_asns = self.asns.keys().copied().collect();
    }

    pub fn save_facts(&self) -> Facts {
        let mut groups: Vec<_> = self
            .groups
            .iter()
            .flat_map(|(g, m)| m.iter().map(move |(d, n)| (g.clone(), d.clone(), *n)))
            .collect();
        groups.sort();
        let mut countries: Vec<_> = self.countries.iter().map(|(c, n)| (*c, *n)).collect();
        countries.sort();
        let mut asns: Vec<_> = self.asns.iter().map(|(a, n)| (*a, *n)).collect();
        asns.sort();
        Facts {
            dests: self
                .dests
                .iter()
                .map(|d| (d.name.clone(), d.first, d.last, d.devices, d.internal))
                .collect(),
            groups,
            countries,
            asns,
            devices: self.devices,
            devs: self.devs.iter().map(|d| d.ip).collect(),
        }
    }

    /// Loads [`save_facts`](Self::save_facts)'s record into an empty correlator (device names
    /// and groups come from the inventory, as at their first sighting).
    pub fn load_facts(&mut self, cfg: &EngineConfig, f: Facts) {
        for (name, first, last, devices, internal) in f.dests {
            let i = self.dest(&name, first, internal);
            let d = &mut self.dests[i as usize];
            d.first = d.first.min(first);
            d.last = last;
            d.devices = devices;
        }
        for (g, d, n) in f.groups {
            self.groups.entry(g).or_default().insert(d, n);
        }
        self.countries.extend(f.countries);
        self.asns.extend(f.asns);
        self.devices = f.devices;
        for ip in f.devs {
            self.dev(cfg, ip);
        }
        self.saved_dests = 0;
    }

    /// Everything as one update (org facts, every live membership and roll-up): what a worker
    /// that starts needs before the updates that follow. Changes nothing.
    pub fn snapshot(&self) -> OrgUpdate {
        let mut u = OrgUpdate {
            devices: self.devices,
            ..OrgUpdate::default()
        };
        u.dests = self
            .dests
            .iter()
            .map(|d| DestFacts {
                name: d.name.clone(),
                first: d.first,
                devices: d.devices,
                internal: d.internal,
            })
            .collect();
        let f = self.save_facts();
        u.groups = f.groups;
        u.countries = f.countries;
        u.asns = f.asns;
        for (kind, dev, destination) in self.book.live_keys() {
            match dev {
                None => u.rolled.push((kind, destination, true)),
                Some(d) => u.members.push(Membership {
                    device: self.devs[d as usize].ip,
                    kind,
                    destination,
                    open: true,
                }),
            }
        }
        u
    }

    /// What changed since the last update, for every shard.
    pub fn update(&mut self) -> OrgUpdate {
        let mut u = OrgUpdate {
            devices: self.devices,
            ..OrgUpdate::default()
        };
        for i in std::mem::take(&mut self.changed_dests) {
            let d = &self.dests[i as usize];
            u.dests.push(DestFacts {
                name: d.name.clone(),
                first: d.first,
                devices: d.devices,
                internal: d.internal,
            });
        }
        for (g, d) in std::mem::take(&mut self.changed_groups) {
            let n = self
                .groups
                .get(&g)
                .and_then(|m| m.get(&d))
                .copied()
                .unwrap_or(0);
            u.groups.push((g, d, n));
        }
        for c in std::mem::take(&mut self.changed_countries) {
            u.countries
                .push((c, self.countries.get(&c).copied().unwrap_or(0)));
        }
        for a in std::mem::take(&mut self.changed_asns) {
            u.asns.push((a, self.asns.get(&a).copied().unwrap_or(0)));
        }
        for (kind, dev, destination, live) in self.book.drain_touched() {
            match dev {
                None => u.rolled.push((kind, destination, live)),
                Some(d) => u.members.push(Membership {
                    device: self.devs[d as usize].ip,
                    kind,
                    destination,
                    open: live,
                }),
            }
        }
        u
    }
}
