//! The messages between the parts of the partitioned engine, as plain serialisable types.
//!
//! Inside one process ([`crate::Engine`] with `workers = N`) they are handed over as values;
//! a distributed worker would send the same types over a bus:
//!
//! ```text
//!  events ─► EventBatch (per partition, with sequence numbers and the stream's minute ticks)
//!            ─► shard: per-device baselines + detectors
//!                 ─► FindingMsg (to the alert book)  ┐
//!                 ─► OrgDelta (org-wide counts)      ├─► correlator: org facts + alert book
//!            ◄── OrgUpdate (org facts, memberships) ◄┘   at every epoch boundary
//!  Checkpoint: per partition, its devices' state and the last sequence it covers
//! ```
//!
//! Partition = hash of the (canonical) client address modulo [`PARTITIONS`]; partitions map
//! onto workers as `partition % workers`. The hash has a fixed seed: a device's partition is
//! the same in every process and every release.

use crate::alert::{Finding, Kind};
use compact_str::CompactString;
use dnsight_model::{DnsEvent, Ts};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Partitions of the device address space (the bus's default too).
pub const PARTITIONS: u32 = dnsight_model::DEFAULT_PARTITIONS;

/// The partition of a client address: [`dnsight_model::partition`], the one function the bus's
/// subjects and the engine's workers share (an IPv4-mapped IPv6 address is its IPv4 address).
pub fn partition(ip: IpAddr) -> u32 {
    dnsight_model::partition(ip, PARTITIONS)
}

/// Events of one partition, in stream order: each with its sequence number in the stream, and
/// the minute boundaries the stream crossed (sequence of the first event after each, event
/// time) so that per-device windows are swept at the same points whatever the partitioning.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EventBatch {
    pub partition: u32,
    pub events: Vec<(u64, DnsEvent)>,
    pub ticks: Vec<(u64, u32)>,
}

/// A finding for the alert book: what the detector said, for which device, at which event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FindingMsg {
    /// Sequence number of the event in the stream: the correlator folds findings in this order.
    pub seq: u64,
    pub ts: Ts,
    pub device: IpAddr,
    pub kind: Kind,
    pub destination: CompactString,
    pub score: f64,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub sample: Option<CompactString>,
    pub repeat: bool,
}

impl FindingMsg {
    pub(crate) fn new(seq: u64, ts: Ts, device: IpAddr, f: &Finding) -> FindingMsg {
        FindingMsg {
            seq,
            ts,
            device,
            kind: f.kind,
            destination: f.destination.clone(),
            score: f.score,
            summary: f.summary.clone(),
            evidence: f.evidence.clone(),
            sample: f.sample.clone(),
            repeat: f.repeat,
        }
    }
}

/// What a shard's events changed in the organisation-wide facts during one epoch. Every part
/// is commutative (minimum, counts), so the correlator may merge the shards' deltas in any
/// order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OrgDelta {
    /// New devices.
    pub devices: u32,
    /// (destination, a first sighting earlier than the shard knew, internal).
    pub firsts: Vec<(CompactString, u32, bool)>,
    /// New (device, destination) baseline entries: (destination, the device's group).
    pub entries: Vec<(CompactString, Option<CompactString>)>,
    /// A device reached this country / ASN for the first time.
    pub countries: Vec<[u8; 2]>,
    pub asns: Vec<u32>,
}

impl OrgDelta {
    pub fn is_empty(&self) -> bool {
        self.devices == 0
            && self.firsts.is_empty()
            && self.entries.is_empty()
            && self.countries.is_empty()
            && self.asns.is_empty()
    }
}

/// The organisation's facts about one destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DestFacts {
    pub name: CompactString,
    pub first: u32,
    pub devices: u32,
    pub internal: bool,
}

/// Whether a device is on the live alert of (kind, destination), as the book has it now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub device: IpAddr,
    pub kind: Kind,
    pub destination: CompactString,
    pub open: bool,
}

/// The correlator's answer at an epoch boundary, the same for every shard: the org facts that
/// changed (absolute values), and the book's decisions the shards could not foresee (alerts
/// that left, reopened alerts, roll-ups that appeared or left).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OrgUpdate {
    pub dests: Vec<DestFacts>,
    /// (group, destination, devices of the group with it).
    pub groups: Vec<(CompactString, CompactString, u32)>,
    pub countries: Vec<([u8; 2], u32)>,
    pub asns: Vec<(u32, u32)>,
    /// Devices of the organisation.
    pub devices: u32,
    pub members: Vec<Membership>,
    /// (kind, destination, live): rolled-up alerts.
    pub rolled: Vec<(Kind, CompactString, bool)>,
}

/// What a worker's shards produced in one epoch when the correlator runs elsewhere
/// ([`crate::Engine::set_remote_correlator`]): the merged org-wide delta, the findings in
/// stream order and the hourly idle sweeps (sequence of the first event after the boundary,
/// its time). The correlator's [`crate::Engine::correlate`] folds it exactly as the settle of
/// one process does; a large epoch may be cut into several (see [`EpochOut::split`]), folded
/// one after the other with the same result.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EpochOut {
    pub delta: OrgDelta,
    pub findings: Vec<FindingMsg>,
    pub expires: Vec<(u64, Ts)>,
}

impl EpochOut {
    pub fn is_empty(&self) -> bool {
        self.delta.is_empty() && self.findings.is_empty() && self.expires.is_empty()
    }

    /// Cuts this epoch in two halves that fold, one after the other, as the whole does: the
    /// delta's parts are split (merging is commutative), the findings at their middle, and an
    /// idle sweep goes with the first half when it comes at or before the first half's last
    /// finding. None when there is nothing left to cut.
    pub fn split(mut self) -> Option<(EpochOut, EpochOut)> {
        fn half<T>(v: &mut Vec<T>) -> Vec<T> {
            let n = v.len() / 2;
            v.split_off(n)
        }
        let pieces = self.delta.firsts.len()
            + self.delta.entries.len()
            + self.delta.countries.len()
            + self.delta.asns.len()
            + self.findings.len()
            + self.expires.len();
        if pieces < 2 {
            return None;
        }
        let mut b = EpochOut::default();
        b.delta.firsts = half(&mut self.delta.firsts);
        b.delta.entries = half(&mut self.delta.entries);
        b.delta.countries = half(&mut self.delta.countries);
        b.delta.asns = half(&mut self.delta.asns);
        if self.findings.len() >= 2 {
            b.findings = half(&mut self.findings);
            let last = self.findings.last().map_or(0, |f| f.seq);
            let k = self.expires.partition_point(|e| e.0 <= last);
            b.expires = self.expires.split_off(k);
        } else if self.findings.is_empty() {
            b.expires = half(&mut self.expires);
        } else {
            // one finding: the sweeps after it travel with the second half
            let last = self.findings[0].seq;
            let k = self.expires.partition_point(|e| e.0 <= last);
            b.expires = self.expires.split_off(k);
        }
        Some((self, b))
    }
}

/// One partition's state for a distributed worker's checkpoint: its devices' baseline records
/// (the state file's device encoding) and the last stream sequence they cover. Detector
/// windows travel per shard in the state file (`windows` table, one part per shard).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub partition: u32,
    pub seq: u64,
    pub devices: Vec<(IpAddr, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // fixed across processes: a state or a stream subject names partitions
        let a: IpAddr = "10.0.0.5".parse().unwrap();
        let m: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(partition(a), partition(m));
        let mut n = [0u32; PARTITIONS as usize];
        for i in 0..6400u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            n[partition(ip) as usize] += 1;
        }
        assert!(n.iter().all(|&c| (50..=150).contains(&c)), "{n:?}");
    }
}
