//! IPv4 and IPv6 fragment reassembly with capped memory and event-time timeouts.
//!
//! Large DNS responses (DNSSEC, big TXT sets) are fragmented at the IP layer, and attackers use
//! fragments to hide payloads, so captures must be reassembled — but a stream of fragments that
//! never completes must not grow memory. Each datagram in progress keeps a buffer of at most
//! 65535 bytes and a bitmap of the 8-byte blocks received; at most [`MAX_DATAGRAMS`] are in
//! progress and at most [`MAX_BYTES`] buffered (the oldest is dropped beyond that, counted as
//! `ip.frag_evicted`), and a datagram not completed within [`TIMEOUT_SECS`] of event time is
//! dropped (`ip.frag_timeout`). Overlapping fragments overwrite (last one wins), like most stacks.

use crate::IngestStats;
use dnsight_model::Ts;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

pub const MAX_DATAGRAMS: usize = 1024;
pub const MAX_BYTES: usize = 16 << 20;
pub const TIMEOUT_SECS: i64 = 30;
const MAX_LEN: usize = 65535;

/// Identifies one datagram being reassembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub proto: u8,
}

struct Partial {
    buf: Vec<u8>,
    /// One bit per 8-byte block received.
    have: Vec<u64>,
    /// Payload length, known once the last fragment arrived.
    total: Option<usize>,
    seq: u64,
}

impl Partial {
    fn complete(&self) -> bool {
        let Some(total) = self.total else {
            return false;
        };
        let blocks = total.div_ceil(8);
        (0..blocks).all(|b| self.have[b / 64] & (1 << (b % 64)) != 0)
    }
}

/// The reassembler. Keyed by (source, destination, id, protocol).
pub struct Defrag {
    table: HashMap<FragKey, Partial, foldhash::fast::RandomState>,
    order: VecDeque<(Ts, FragKey, u64)>,
    bytes: usize,
    seq: u64,
    now: Ts,
}

impl Default for Defrag {
    fn default() -> Self {
        Self::new()
    }
}

impl Defrag {
    pub fn new() -> Defrag {
        Defrag {
            table: HashMap::default(),
            order: VecDeque::new(),
            bytes: 0,
            seq: 0,
            now: Ts(i64::MIN),
        }
    }

    /// Datagrams in progress.
    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    fn drop_entry(
        &mut self,
        key: &FragKey,
        seq: u64,
        stats: &mut IngestStats,
        reason: &str,
    ) -> bool {
        if self.table.get(key).is_some_and(|p| p.seq == seq) {
            if let Some(p) = self.table.remove(key) {
                self.bytes -= p.buf.capacity();
                stats.reject(reason);
                return true;
            }
        }
        false
    }

    /// Adds one fragment (`offset` in bytes into the transport payload, `more` = MF flag).
    /// Returns the whole payload when this fragment completes a datagram.
    pub fn add(
        &mut self,
        ts: Ts,
        key: FragKey,
        offset: usize,
        more: bool,
        data: &[u8],
        stats: &mut IngestStats,
    ) -> Option<Vec<u8>> {
        // the current packet's time, not the newest ever seen: one corrupt timestamp far in
        // the future must not expire everything that follows it
        self.now = ts;
        // expire old datagrams
        while let Some(&(t, k, seq)) = self.order.front() {
            if t.0.saturating_add(TIMEOUT_SECS * Ts::MICROS_PER_SEC) > self.now.0 {
                break;
            }
            self.order.pop_front();
            self.drop_entry(&k, seq, stats, "ip.frag_timeout");
        }
        let end = offset + data.len();
        if end > MAX_LEN {
            stats.reject("ip.frag_too_long");
            return None;
        }
        if more && data.len() & 7 != 0 {
            stats.reject("ip.frag_bad_length");
            return None;
        }
        if !self.table.contains_key(&key) {
            while self.table.len() >= MAX_DATAGRAMS || self.bytes + end > MAX_BYTES {
                let Some((_, k, seq)) = self.order.pop_front() else {
                    break;
                };
                self.drop_entry(&k, seq, stats, "ip.frag_evicted");
            }
            self.seq += 1;
            self.table.insert(
                key,
                Partial {
                    buf: Vec::new(),
                    have: vec![0; MAX_LEN.div_ceil(8 * 64)],
                    total: None,
                    seq: self.seq,
                },
            );
            self.order.push_back((ts, key, self.seq));
            if self.order.len() > 2 * self.table.len() + 1024 {
                let table = &self.table;
                self.order
                    .retain(|(_, k, seq)| table.get(k).is_some_and(|p| p.seq == *seq));
            }
        }
        let p = self.table.get_mut(&key)?;
        if !more {
            if p.total.is_some_and(|t| t != end) {
                stats.reject("ip.frag_inconsistent");
            }
            p.total = Some(end);
        }
        if p.buf.len() < end {
            let before = p.buf.capacity();
            p.buf.resize(end, 0);
            self.bytes += p.buf.capacity() - before;
        }
        p.buf[offset..end].copy_from_slice(data);
        for b in offset / 8..end.div_ceil(8) {
            p.have[b / 64] |= 1 << (b % 64);
        }
        if p.complete() {
            let mut p = self.table.remove(&key)?;
            self.bytes -= p.buf.capacity();
            let total = p.total.unwrap_or(p.buf.len());
            p.buf.truncate(total);
            return Some(p.buf);
        }
        None
    }

    /// End of input: counts datagrams that never completed.
    pub fn flush(&mut self, stats: &mut IngestStats) {
        for _ in self.table.drain() {
            stats.reject("ip.frag_incomplete");
        }
        self.order.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            id,
            proto: 17,
        }
    }

    #[test]
    fn reassembles_out_of_order_and_times_out() {
        let (mut d, mut st) = (Defrag::new(), IngestStats::default());
        let data: Vec<u8> = (0..100u8).collect();
        assert!(d
            .add(Ts(0), key(1), 48, true, &data[48..96], &mut st)
            .is_none());
        assert!(d
            .add(Ts(0), key(1), 96, false, &data[96..], &mut st)
            .is_none());
        let whole = d.add(Ts(0), key(1), 0, true, &data[..48], &mut st).unwrap();
        assert_eq!(whole, data);
        assert_eq!(d.in_progress(), 0);
        // a datagram missing its middle is dropped after the timeout
        assert!(d.add(Ts(0), key(2), 0, true, &data[..8], &mut st).is_none());
        assert!(d
            .add(Ts::from_secs(31), key(3), 0, true, &data[..8], &mut st)
            .is_none());
        assert_eq!(st.rejected["ip.frag_timeout"], 1);
        d.flush(&mut st);
        assert_eq!(st.rejected["ip.frag_incomplete"], 1);
    }

    #[test]
    fn memory_is_capped() {
        let (mut d, mut st) = (Defrag::new(), IngestStats::default());
        for i in 0..(MAX_DATAGRAMS as u32 + 100) {
            d.add(Ts(0), key(i), 65000, true, &[0; 8], &mut st);
            assert!(d.in_progress() <= MAX_DATAGRAMS);
            assert!(d.bytes <= MAX_BYTES);
        }
        assert!(st.rejected["ip.frag_evicted"] >= 100);
        assert_eq!(d.add(Ts(0), key(1), 65530, false, &[0; 10], &mut st), None);
        assert_eq!(st.rejected["ip.frag_too_long"], 1);
    }
}
