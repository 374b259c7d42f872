//! DNS-over-TCP stream reassembly (RFC 1035 §4.2.2: each message has a 2-byte length prefix).
//!
//! Each direction of a connection is a stream: segments are placed by sequence number, so
//! several messages in one segment, one message spread over several segments, retransmitted
//! and overlapping segments, and segments that arrive out of order all come out as whole
//! messages, in order. A hole that is never filled (capture loss) is skipped: when too much
//! data waits behind it, at a FIN, or at the end of input, the stream jumps to the next data it
//! has and assumes a message starts there (counted as `tcp.gap`). Memory is bounded: at most
//! [`MAX_FLOWS`] streams (oldest evicted, `tcp.flow_evicted`), idle streams expire after
//! [`IDLE_SECS`] of event time, and each stream buffers at most one message plus
//! [`MAX_OOO_BYTES`] of out-of-order data.

use crate::IngestStats;
use dnsight_model::Ts;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

pub const MAX_FLOWS: usize = 16_384;
pub const IDLE_SECS: i64 = 120;
pub const MAX_OOO_BYTES: usize = 256 * 1024;
pub const MAX_OOO_SEGMENTS: usize = 64;
/// Bytes buffered across all streams; beyond it the least recently active streams are
/// dropped (`tcp.memory_evicted`).
pub const MAX_TOTAL_BYTES: usize = 64 << 20;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

/// One direction of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

#[derive(Default)]
struct Stream {
    /// Next expected sequence number.
    next: u32,
    /// Bytes received in order that do not yet form a whole message.
    buf: Vec<u8>,
    /// Segments ahead of `next`: (sequence number, data).
    ooo: Vec<(u32, Vec<u8>)>,
    ooo_bytes: usize,
    fin: bool,
    last: Ts,
    seq: u64,
}

/// Called with each whole DNS message (without its length prefix).
pub type Emit<'a> = dyn FnMut(&mut IngestStats, &FlowKey, Ts, &[u8]) + 'a;

/// The reassembler for all TCP streams of a capture.
pub struct TcpReassembler {
    flows: HashMap<FlowKey, Stream, foldhash::fast::RandomState>,
    order: VecDeque<(FlowKey, u64)>,
    seq: u64,
    now: Ts,
    max_flows: usize,
    /// Bytes buffered by all streams (buffer capacity + queued segments).
    bytes: usize,
}

fn usage(s: &Stream) -> usize {
    s.buf.capacity() + s.ooo_bytes
}

impl Default for TcpReassembler {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpReassembler {
    pub fn new() -> TcpReassembler {
        TcpReassembler {
            flows: HashMap::default(),
            bytes: 0,
            order: VecDeque::new(),
            seq: 0,
            now: Ts(i64::MIN),
            max_flows: MAX_FLOWS,
        }
    }

    /// Changes the cap on concurrent streams (at least 1).
    pub fn with_max_flows(mut self, n: usize) -> Self {
        self.max_flows = n.max(1);
        self
    }

    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Bytes buffered by all streams.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Removes a stream other than the one being fed, keeping the byte count right.
    fn remove_other(&mut self, k: &FlowKey) -> Option<Stream> {
        let s = self.flows.remove(k)?;
        self.bytes = self.bytes.saturating_sub(usage(&s));
        Some(s)
    }

    /// Feeds one segment. `flags` is the TCP flags byte.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        ts: Ts,
        key: FlowKey,
        seq: u32,
        flags: u8,
        payload: &[u8],
        stats: &mut IngestStats,
        emit: &mut Emit<'_>,
    ) {
        // the current packet's time, not the newest ever seen: one corrupt timestamp far in
        // the future must not expire everything that follows it
        self.now = ts;
        self.expire(stats, emit);
        let before = self.flows.get(&key).map(usage).unwrap_or(0);
        self.segment_inner(ts, key, seq, flags, payload, stats, emit);
        let after = self.flows.get(&key).map(usage).unwrap_or(0);
        self.bytes = (self.bytes + after).saturating_sub(before);
        while self.bytes > MAX_TOTAL_BYTES {
            let Some((k, sq)) = self.order.pop_front() else {
                break;
            };
            if self.flows.get(&k).is_some_and(|s| s.seq == sq) {
                if let Some(mut s) = self.remove_other(&k) {
                    stats.reject("tcp.memory_evicted");
                    Self::finish(&k, &mut s, ts, stats, emit);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn segment_inner(
        &mut self,
        ts: Ts,
        key: FlowKey,
        seq: u32,
        flags: u8,
        payload: &[u8],
        stats: &mut IngestStats,
        emit: &mut Emit<'_>,
    ) {
        if flags & RST != 0 {
            if let Some(mut s) = self.flows.remove(&key) {
                let fresh = payload_at(&s, seq, payload);
                Self::accept(&key, &mut s, fresh, ts, stats, emit);
                Self::finish(&key, &mut s, ts, stats, emit);
            }
            return;
        }
        if !self.flows.contains_key(&key) {
            if payload.is_empty() && flags & SYN == 0 {
                return; // a bare ACK or FIN of a stream we never saw data for
            }
            while self.flows.len() >= self.max_flows {
                let Some((k, sq)) = self.order.pop_front() else {
                    break;
                };
                if self.flows.get(&k).is_some_and(|s| s.seq == sq) {
                    if let Some(mut s) = self.remove_other(&k) {
                        stats.reject("tcp.flow_evicted");
                        Self::finish(&k, &mut s, ts, stats, emit);
                    }
                }
            }
            self.seq += 1;
            let next = if flags & SYN != 0 {
                seq.wrapping_add(1)
            } else {
                seq
            };
            self.flows.insert(
                key,
                Stream {
                    next,
                    seq: self.seq,
                    last: ts,
                    ..Stream::default()
                },
            );
            self.order.push_back((key, self.seq));
            if flags & SYN != 0 {
                return;
            }
        } else if flags & SYN != 0 {
            // a SYN retransmission (or a new connection reusing the tuple)
            let s = self.flows.get_mut(&key).expect("checked");
            if s.buf.is_empty() && s.ooo.is_empty() {
                s.next = seq.wrapping_add(1);
            }
            return;
        }
        // refresh the stream's position in the idle order
        self.seq += 1;
        let sq = self.seq;
        let Some(s) = self.flows.get_mut(&key) else {
            return;
        };
        s.seq = sq;
        s.last = ts;
        self.order.push_back((key, sq));
        if self.order.len() > 2 * self.flows.len() + 1024 {
            let flows = &self.flows;
            self.order
                .retain(|(k, sq)| flows.get(k).is_some_and(|s| s.seq == *sq));
        }
        let Some(s) = self.flows.get_mut(&key) else {
            return;
        };
        if !payload.is_empty() {
            let rel = seq.wrapping_sub(s.next) as i32;
            if rel > 0 {
                if s.ooo.len() >= MAX_OOO_SEGMENTS || s.ooo_bytes + payload.len() > MAX_OOO_BYTES {
                    // too much waits behind a hole: give up on it
                    s.ooo.push((seq, payload.to_vec()));
                    s.ooo_bytes += payload.len();
                    Self::skip_gap(&key, s, ts, stats, emit);
                } else {
                    s.ooo.push((seq, payload.to_vec()));
                    s.ooo_bytes += payload.len();
                }
            } else {
                let fresh = payload_at(s, seq, payload);
                if fresh.is_empty() {
                    stats.reject("tcp.retransmission");
                } else {
                    Self::accept(&key, s, fresh, ts, stats, emit);
                }
            }
        }
        if flags & FIN != 0 {
            s.fin = true;
        }
        if s.fin && s.ooo.is_empty() {
            if let Some(mut s) = self.flows.remove(&key) {
                Self::finish(&key, &mut s, ts, stats, emit);
            }
        }
    }

    /// Appends in-order bytes, emits whole messages, then pulls in queued segments that became
    /// contiguous.
    fn accept(
        key: &FlowKey,
        s: &mut Stream,
        data: &[u8],
        ts: Ts,
        stats: &mut IngestStats,
        emit: &mut Emit<'_>,
    ) {
        if data.is_empty() {
            return;
        }
        s.next = s.next.wrapping_add(data.len() as u32);
        s.buf.extend_from_slice(data);
        Self::drain_messages(key, s, ts, stats, emit);
        // pull in queued segments that start at or before `next`
        while let Some(i) = s
            .ooo
            .iter()
            .position(|(sq, _)| (sq.wrapping_sub(s.next) as i32) <= 0)
        {
            let (sq, seg) = s.ooo.swap_remove(i);
            s.ooo_bytes -= seg.len();
            let skip = s.next.wrapping_sub(sq) as usize;
            if skip < seg.len() {
                s.next = s.next.wrapping_add((seg.len() - skip) as u32);
                s.buf.extend_from_slice(&seg[skip..]);
                Self::drain_messages(key, s, ts, stats, emit);
            } else {
                stats.reject("tcp.retransmission");
            }
        }
    }

    fn drain_messages(
        key: &FlowKey,
        s: &mut Stream,
        ts: Ts,
        stats: &mut IngestStats,
        emit: &mut Emit<'_>,
    ) {
        let mut at = 0;
        while s.buf.len() - at >= 2 {
            let len = u16::from_be_bytes([s.buf[at], s.buf[at + 1]]) as usize;
            if len == 0 {
                stats.reject("tcp.zero_length");
                at += 2;
                continue;
            }
            if s.buf.len() - at < 2 + len {
                break;
            }
            emit(stats, key, ts, &s.buf[at + 2..at + 2 + len]);
            at += 2 + len;
        }
        if at > 0 {
            s.buf.drain(..at);
        }
    }

    /// Skips the hole before the earliest queued segment: what was buffered is lost.
    fn skip_gap(
        key: &FlowKey,
        s: &mut Stream,
        ts: Ts,
        stats: &mut IngestStats,
        emit: &mut Emit<'_>,
    ) {
        let Some(first) = s.ooo.iter().map(|(sq, _)| sq.wrapping_sub(s.next)).min() else {
            return;
        };
        stats.reject("tcp.gap");
        if !s.buf.is_empty() {
            stats.reject("tcp.incomplete_message");
            s.buf.clear();
        }
        s.next = s.next.wrapping_add(first);
        if let Some(i) = s.ooo.iter().position(|(sq, _)| *sq == s.next) {
            let (_, seg) = s.ooo.swap_remove(i);
            s.ooo_bytes -= seg.len();
            Self::accept(key, s, &seg, ts, stats, emit);
        }
    }

    /// The stream ended: skip remaining holes and count an unfinished message.
    fn finish(key: &FlowKey, s: &mut Stream, ts: Ts, stats: &mut IngestStats, emit: &mut Emit<'_>) {
        let mut guard = 0;
        while !s.ooo.is_empty() && guard <= MAX_OOO_SEGMENTS {
            Self::skip_gap(key, s, ts, stats, emit);
            guard += 1;
        }
        if !s.buf.is_empty() {
            stats.reject("tcp.incomplete_message");
            s.buf.clear();
        }
    }

    fn expire(&mut self, stats: &mut IngestStats, emit: &mut Emit<'_>) {
        let limit = self.now.0.saturating_sub(IDLE_SECS * Ts::MICROS_PER_SEC);
        while let Some(&(k, sq)) = self.order.front() {
            match self.flows.get(&k) {
                Some(s) if s.seq == sq => {
                    if s.last.0 > limit {
                        break;
                    }
                    self.order.pop_front();
                    if let Some(mut s) = self.remove_other(&k) {
                        let last = s.last;
                        Self::finish(&k, &mut s, last, stats, emit);
                    }
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    /// End of input: finishes every stream.
    pub fn flush(&mut self, stats: &mut IngestStats, emit: &mut Emit<'_>) {
        let mut keys: Vec<(FlowKey, u64)> = self.flows.iter().map(|(k, s)| (*k, s.seq)).collect();
        keys.sort_by_key(|&(_, sq)| sq);
        for (k, _) in keys {
            if let Some(mut s) = self.flows.remove(&k) {
                let last = s.last;
                Self::finish(&k, &mut s, last, stats, emit);
            }
        }
        self.order.clear();
        self.bytes = 0;
    }
}

/// The part of `payload` (starting at `seq`) at or after the stream's next expected byte.
fn payload_at<'a>(s: &Stream, seq: u32, payload: &'a [u8]) -> &'a [u8] {
    let behind = s.next.wrapping_sub(seq) as i32;
    if behind <= 0 {
        if behind < 0 {
            return &[]; // ahead of the stream: only called for in-order data
        }
        return payload;
    }
    let behind = behind as usize;
    if behind >= payload.len() {
        &[]
    } else {
        &payload[behind..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FlowKey {
        FlowKey {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            src_port: 4000,
            dst_port: 53,
        }
    }

    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend_from_slice(&(m.len() as u16).to_be_bytes());
            v.extend_from_slice(m);
        }
        v
    }

    fn run(segs: &[(u32, u8, &[u8])]) -> (Vec<Vec<u8>>, IngestStats) {
        let mut r = TcpReassembler::new();
        let mut st = IngestStats::default();
        let mut got = Vec::new();
        for &(seq, flags, data) in segs {
            r.segment(
                Ts(0),
                key(),
                seq,
                flags,
                data,
                &mut st,
                &mut |_: &mut IngestStats, _: &FlowKey, _: Ts, m: &[u8]| got.push(m.to_vec()),
            );
        }
        r.flush(&mut st, &mut |_: &mut IngestStats,
                               _: &FlowKey,
                               _: Ts,
                               m: &[u8]| {
            got.push(m.to_vec())
        });
        (got, st)
    }

    #[test]
    fn splits_joins_reorders_and_dedups() {
        let stream = framed(&[b"first-message", b"second", b"third!"]);
        // SYN at 99, data from 100; message 1 split over two segments, 2+3 in one, delivered
        // out of order with a retransmission
        let (a, b) = stream.split_at(5);
        let (b, c) = b.split_at(10);
        let (got, st) = run(&[
            (99, SYN, b""),
            (100, 0, a),
            (115, 0, c),
            (105, 0, b),
            (105, 0, b),
            (100, FIN, a),
        ]);
        assert_eq!(
            got,
            vec![
                b"first-message".to_vec(),
                b"second".to_vec(),
                b"third!".to_vec()
            ]
        );
        assert_eq!(st.rejected["tcp.retransmission"], 2);
    }

    #[test]
    fn gap_is_skipped_and_counted() {
        let s1 = framed(&[b"lost-message"]);
        let s2 = framed(&[b"after-gap"]);
        // the first segment is never captured
        let (got, st) = run(&[(1000, 0, b"\x00\x05ab"), (2000, 0, &s2)]);
        assert_eq!(got, vec![b"after-gap".to_vec()]);
        assert_eq!(st.rejected["tcp.gap"], 1);
        assert_eq!(st.rejected["tcp.incomplete_message"], 1);
        let _ = s1;
    }

    #[test]
    fn sequence_wraps() {
        let stream = framed(&[b"wrapping"]);
        let (a, b) = stream.split_at(4);
        let (got, _) = run(&[(u32::MAX - 1, 0, a), ((u32::MAX - 1).wrapping_add(4), 0, b)]);
        assert_eq!(got, vec![b"wrapping".to_vec()]);
    }

    #[test]
    fn total_memory_is_capped() {
        let mut r = TcpReassembler::new();
        let mut st = IngestStats::default();
        let chunk = vec![0x41u8; 60_000];
        for p in 0..2000u16 {
            let k = FlowKey {
                src_port: 1000 + p,
                ..key()
            };
            // a length prefix announcing 65535 bytes, then part of them: buffered, never whole
            let mut seg = vec![0xff, 0xff];
            seg.extend_from_slice(&chunk);
            r.segment(
                Ts(0),
                k,
                1,
                0,
                &seg,
                &mut st,
                &mut |_: &mut IngestStats, _: &FlowKey, _: Ts, _: &[u8]| {},
            );
            assert!(r.buffered_bytes() <= MAX_TOTAL_BYTES);
        }
        assert!(st.rejected["tcp.memory_evicted"] > 0);
        let total: usize = r.flows.values().map(usage).sum();
        assert_eq!(total, r.buffered_bytes());
    }

    #[test]
    fn flows_are_capped() {
        let mut r = TcpReassembler::new().with_max_flows(4);
        let mut st = IngestStats::default();
        for p in 0..20u16 {
            let k = FlowKey {
                src_port: 1000 + p,
                ..key()
            };
            r.segment(
                Ts(0),
                k,
                1,
                0,
                b"\x00\x10partial",
                &mut st,
                &mut |_: &mut IngestStats, _: &FlowKey, _: Ts, _: &[u8]| {},
            );
            assert!(r.flows() <= 4);
        }
        assert_eq!(st.rejected["tcp.flow_evicted"], 16);
    }
}
