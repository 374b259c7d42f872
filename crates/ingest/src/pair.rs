//! Pairs DNS queries with their responses into one [`DnsEvent`] per transaction.
//!
//! Used by every packet-like source (pcap files, live capture, dnstap). Messages are matched on
//! the transport 5-tuple (client address and port, server address and port, transport) plus
//! the DNS id, and the question name must agree (a response with no question matches on the
//! rest). Time is *event time*: a query still unanswered `pair_timeout_secs` after it was sent
//! — measured against the time of the message being processed — is emitted without a response; a response
//! whose query was never seen (or already timed out) is emitted on its own; [`Pairer::flush`]
//! emits whatever is pending at the end of input.
//!
//! Memory is bounded: at most `max_pending` queries wait for an answer; beyond that the oldest
//! is emitted unanswered and counted as `pair.evicted`. The table uses a randomly seeded hasher
//! because clients choose ports, ids and names.
//!
//! Counters kept in [`IngestStats`]: `messages`, `queries`, `responses` (per DNS message whose
//! header decoded, so they compare with packet analysers), `events`, and rejects by reason
//! (`dns.*` from the wire decoder, `pair.duplicate_query`, `pair.evicted`).

use crate::{IngestOptions, IngestStats};
use dnsight_model::wire::{Decoder, Header, Message};
use dnsight_model::{DnsEvent, Flags, Source, Transport, Ts};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Default cap on queries waiting for a response.
pub const DEFAULT_MAX_PENDING: usize = 200_000;

/// Where and when one DNS message was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    pub ts: Ts,
    /// Sender of this message (the client for a query, the server for a response).
    pub src: IpAddr,
    pub src_port: u16,
    /// Receiver of this message.
    pub dst: IpAddr,
    pub dst_port: u16,
    pub transport: Transport,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    client: IpAddr,
    server: IpAddr,
    client_port: u16,
    server_port: u16,
    transport: Transport,
    id: u16,
}

struct Pending {
    event: DnsEvent,
    seq: u64,
}

/// The query/response pairer. Feed it messages in (roughly) time order with [`Pairer::push`]
/// or [`Pairer::push_message`]; it appends finished events to a caller-owned `Vec`.
pub struct Pairer {
    source: Source,
    timeout_us: i64,
    max_pending: usize,
    table: HashMap<Key, Pending, foldhash::fast::RandomState>,
    /// Insertion order of pending queries: (query time, key, sequence number). Entries whose
    /// query was answered stay until they expire or the deque is compacted.
    order: VecDeque<(Ts, Key, u64)>,
    seq: u64,
    now: Ts,
    decoder: Decoder,
}

impl Pairer {
    pub fn new(source: Source, opts: &IngestOptions) -> Pairer {
        Pairer {
            source,
            timeout_us: i64::from(opts.pair_timeout_secs) * Ts::MICROS_PER_SEC,
            max_pending: DEFAULT_MAX_PENDING,
            table: HashMap::default(),
            order: VecDeque::new(),
            seq: 0,
            now: Ts(i64::MIN),
            decoder: Decoder::new(),
        }
    }

    /// Changes the cap on pending queries (at least 1).
    pub fn with_max_pending(mut self, max_pending: usize) -> Pairer {
        self.max_pending = max_pending.max(1);
        self
    }

    /// Number of queries waiting for a response.
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    /// Decodes one DNS message (raw bytes, without the TCP length prefix) and pairs it.
    /// Undecodable messages are counted in `stats.rejected` by reason and skipped.
    pub fn push(
        &mut self,
        pkt: &PacketInfo,
        dns: &[u8],
        stats: &mut IngestStats,
        out: &mut Vec<DnsEvent>,
    ) {
        let header = match Header::decode(dns) {
            Ok(h) => h,
            Err(e) => {
                stats.reject(e.reason());
                return;
            }
        };
        stats.messages += 1;
        if header.is_response() {
            stats.responses += 1;
        } else {
            stats.queries += 1;
        }
        self.advance(pkt.ts, stats, out);
        // a response to a pending query: let the decoder compare the question name with the
        // query's instead of building it again
        let expected = if header.is_response() {
            self.table
                .get(&response_key(pkt, header.id))
                .map(|p| &p.event.qname)
        } else {
            None
        };
        match self.decoder.decode_expecting(dns, expected) {
            Ok((msg, qname_matched)) => {
                if let Some(e) = msg.partial {
                    stats.reject(e.reason());
                }
                if msg.is_response() {
                    self.response(pkt, msg, qname_matched, stats, out)
                } else {
                    self.query(pkt, msg, stats, out)
                }
            }
            Err(e) => stats.reject(e.reason()),
        }
    }

    /// Pairs an already decoded message (counts it in `messages`/`queries`/`responses`).
    pub fn push_message(
        &mut self,
        pkt: &PacketInfo,
        msg: Message,
        stats: &mut IngestStats,
        out: &mut Vec<DnsEvent>,
    ) {
        stats.messages += 1;
        if msg.is_response() {
            stats.responses += 1;
        } else {
            stats.queries += 1;
        }
        if let Some(e) = msg.partial {
            stats.reject(e.reason());
        }
        self.pair(pkt, msg, stats, out);
    }

    fn pair(
        &mut self,
        pkt: &PacketInfo,
        msg: Message,
        stats: &mut IngestStats,
        out: &mut Vec<DnsEvent>,
    ) {
        self.advance(pkt.ts, stats, out);
        if msg.is_response() {
            self.response(pkt, msg, false, stats, out)
        } else {
            self.query(pkt, msg, stats, out)
        }
    }

    fn query(
        &mut self,
        pkt: &PacketInfo,
        msg: Message,
        stats: &mut IngestStats,
        out: &mut Vec<DnsEvent>,
    ) {
        let key = Key {
            client: pkt.src,
            server: pkt.dst,
            client_port: pkt.src_port,
            server_port: pkt.dst_port,
            transport: pkt.transport,
            id: msg.id(),
        };
        if let Some(p) = self.table.get(&key) {
            if p.event.qname == msg.qname && p.event.qtype == msg.qtype {
                // a retransmission: the first copy stays (its time gives the true rtt)
                stats.reject("pair.duplicate_query");
                return;
            }
            // same id reused for another question: the earlier one went unanswered
            if let Some(old) = self.table.remove(&key) {
                emit(old.event, stats, out);
            }
        }
        while self.table.len() >= self.max_pending {
            match self.order.pop_front() {
                Some((_, k, seq)) => {
                    if self.table.get(&k).is_some_and(|p| p.seq == seq) {
                        if let Some(old) = self.table.remove(&k) {
                            stats.reject("pair.evicted");
                            emit(old.event, stats, out);
                        }
                    }
                }
                None => break,
            }
        }
        let event = DnsEvent {
            ts: pkt.ts,
            client: pkt.src,
            client_port: pkt.src_port,
            server: pkt.dst,
            server_port: pkt.dst_port,
            transport: pkt.transport,
            id: msg.id(),
            qname: msg.qname,
            qtype: msg.qtype,
            qclass: msg.qclass,
            opcode: msg.header.opcode,
            rcode: None,
            flags: msg.header.flags,
            answers: Vec::new(),
            query_size: Some(msg.size),
            response_size: None,
            rtt_us: None,
            source: self.source,
            verdict: None,
        };
        self.seq += 1;
        self.table.insert(
            key,
            Pending {
                event,
                seq: self.seq,
            },
        );
        self.order.push_back((pkt.ts, key, self.seq));
        if self.order.len() > 2 * self.table.len() + 4096 {
            let table = &self.table;
            self.order
                .retain(|(_, k, seq)| table.get(k).is_some_and(|p| p.seq == *seq));
        }
    }

    /// `qname_matched`: the decoder found the question name equal to the pending query's and
    /// left `msg.qname` unset (see `Decoder::decode_expecting`).
    fn response(
        &mut self,
        pkt: &PacketInfo,
        mut msg: Message,
        qname_matched: bool,
        stats: &mut IngestStats,
        out: &mut Vec<DnsEvent>,
    ) {
        let key = response_key(pkt, msg.id());
        let matches = match self.table.get(&key) {
            Some(p) => {
                msg.header.qdcount == 0
                    || ((qname_matched || p.event.qname == msg.qname) && p.event.qtype == msg.qtype)
            }
            None => false,
        };
        if !matches && qname_matched {
            if let Some(p) = self.table.get(&key) {
                msg.qname = p.event.qname.clone();
            }
        }
        if matches {
            if let Some(p) = self.table.remove(&key) {
                let mut e = p.event;
                let rtt = pkt.ts.0.saturating_sub(e.ts.0).clamp(0, u32::MAX as i64);
                e.rtt_us = Some(rtt as u32);
                fill_response(&mut e, msg);
                emit(e, stats, out);
            }
            return;
        }
        let mut e = DnsEvent {
            ts: pkt.ts,
            client: pkt.dst,
            client_port: pkt.dst_port,
            server: pkt.src,
            server_port: pkt.src_port,
            transport: pkt.transport,
            id: msg.id(),
            qname: msg.qname.clone(),
            qtype: msg.qtype,
            qclass: msg.qclass,
            opcode: msg.header.opcode,
            rcode: None,
            flags: Flags(0),
            answers: Vec::new(),
            query_size: None,
            response_size: None,
            rtt_us: None,
            source: self.source,
            verdict: None,
        };
        fill_response(&mut e, msg);
        emit(e, stats, out);
    }

    /// Moves event time forward to `now` and emits the queries that timed out. Called by
    /// `push`; call it directly when time passes without messages (e.g. a live capture idle).
    pub fn advance(&mut self, now: Ts, stats: &mut IngestStats, out: &mut Vec<DnsEvent>) {
        // the current packet's time, not the newest ever seen: one corrupt timestamp far in
        // the future must not expire everything that follows it
        self.now = now;
        while let Some(&(ts, key, seq)) = self.order.front() {
            if ts.0.saturating_add(self.timeout_us) > self.now.0 {
                break;
            }
            self.order.pop_front();
            if self.table.get(&key).is_some_and(|p| p.seq == seq) {
                if let Some(p) = self.table.remove(&key) {
                    emit(p.event, stats, out);
                }
            }
        }
    }

    /// End of input: emits every pending query as unanswered (in query order).
    pub fn flush(&mut self, stats: &mut IngestStats, out: &mut Vec<DnsEvent>) {
        while let Some((_, key, seq)) = self.order.pop_front() {
            if self.table.get(&key).is_some_and(|p| p.seq == seq) {
                if let Some(p) = self.table.remove(&key) {
                    emit(p.event, stats, out);
                }
            }
        }
        // entries can only be missing from `order` if it was never pushed; be thorough anyway
        for (_, p) in self.table.drain() {
            emit(p.event, stats, out);
        }
    }
}

/// The table key of the query a response answers.
fn response_key(pkt: &PacketInfo, id: u16) -> Key {
    Key {
        client: pkt.dst,
        server: pkt.src,
        client_port: pkt.dst_port,
        server_port: pkt.src_port,
        transport: pkt.transport,
        id,
    }
}

fn fill_response(e: &mut DnsEvent, msg: Message) {
    e.rcode = Some(msg.rcode);
    e.flags = msg.header.flags;
    e.response_size = Some(msg.size);
    e.answers = msg.answers;
}

fn emit(e: DnsEvent, stats: &mut IngestStats, out: &mut Vec<DnsEvent>) {
    stats.events += 1;
    out.push(e);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnsight_model::wire::{encode_query, encode_response, Question};
    use dnsight_model::{Answer, Name, RData};

    fn info(ts_ms: i64, src: &str, sport: u16, dst: &str, dport: u16) -> PacketInfo {
        PacketInfo {
            ts: Ts(ts_ms * 1000),
            src: src.parse().unwrap(),
            src_port: sport,
            dst: dst.parse().unwrap(),
            dst_port: dport,
            transport: Transport::Udp,
        }
    }

    fn q(id: u16, name: &str) -> Vec<u8> {
        let mut b = Vec::new();
        encode_query(
            &mut b,
            id,
            Flags(Flags::RD),
            &Question::new(Name::parse(name).unwrap(), 1),
        )
        .unwrap();
        b
    }

    fn r(id: u16, name: &str, rcode: u16) -> Vec<u8> {
        let n = Name::parse(name).unwrap();
        let ans = [Answer {
            name: n.clone(),
            rtype: 1,
            ttl: 30,
            data: RData::Addr("192.0.2.7".parse().unwrap()),
        }];
        let mut b = Vec::new();
        encode_response(
            &mut b,
            id,
            Flags(Flags::RD | Flags::RA),
            rcode,
            &Question::new(n, 1),
            &ans,
        )
        .unwrap();
        b
    }

    fn pairer() -> Pairer {
        Pairer::new(Source::Pcap, &IngestOptions::default())
    }

    #[test]
    fn pairs_query_and_response() {
        let (mut p, mut st, mut out) = (pairer(), IngestStats::default(), Vec::new());
        p.push(
            &info(0, "10.0.0.5", 5000, "10.0.0.1", 53),
            &q(7, "a.example"),
            &mut st,
            &mut out,
        );
        assert!(out.is_empty());
        p.push(
            &info(3, "10.0.0.1", 53, "10.0.0.5", 5000),
            &r(7, "A.Example", 3),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(e.client.to_string(), "10.0.0.5");
        assert_eq!(e.server_port, 53);
        assert_eq!(e.rcode, Some(3));
        assert_eq!(e.rtt_us, Some(3000));
        assert_eq!(e.answers.len(), 1);
        assert!(e.has_query() && e.has_response());
        assert_eq!(
            (st.queries, st.responses, st.events, st.messages),
            (1, 1, 1, 2)
        );
        p.flush(&mut st, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn timeout_unmatched_and_flush() {
        let (mut p, mut st, mut out) = (pairer(), IngestStats::default(), Vec::new());
        p.push(
            &info(0, "10.0.0.5", 5000, "10.0.0.1", 53),
            &q(1, "a.example"),
            &mut st,
            &mut out,
        );
        p.push(
            &info(1000, "10.0.0.5", 5001, "10.0.0.1", 53),
            &q(2, "b.example"),
            &mut st,
            &mut out,
        );
        // a response to a different id: unmatched, emitted alone
        p.push(
            &info(2000, "10.0.0.1", 53, "10.0.0.5", 5000),
            &r(9, "a.example", 0),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(!out[0].has_query() && out[0].has_response());
        assert_eq!(out[0].client.to_string(), "10.0.0.5");
        // a response with the right tuple but another name does not pair either
        p.push(
            &info(2100, "10.0.0.1", 53, "10.0.0.5", 5000),
            &r(1, "other.example", 0),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        // 5 s after the first query it times out (event time), the second is still pending
        p.advance(Ts(5_000_000), &mut st, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].qname.as_str(), "a.example");
        assert!(!out[2].has_response());
        assert_eq!(p.pending(), 1);
        p.flush(&mut st, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[3].qname.as_str(), "b.example");
        assert_eq!(st.events, 4);
    }

    #[test]
    fn retransmission_keeps_first_and_bad_input_is_counted() {
        let (mut p, mut st, mut out) = (pairer(), IngestStats::default(), Vec::new());
        p.push(
            &info(0, "10.0.0.5", 5000, "10.0.0.1", 53),
            &q(1, "a.example"),
            &mut st,
            &mut out,
        );
        p.push(
            &info(900, "10.0.0.5", 5000, "10.0.0.1", 53),
            &q(1, "a.example"),
            &mut st,
            &mut out,
        );
        p.push(
            &info(1000, "10.0.0.1", 53, "10.0.0.5", 5000),
            &r(1, "a.example", 0),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rtt_us, Some(1_000_000));
        assert_eq!(st.rejected["pair.duplicate_query"], 1);
        p.push(
            &info(1000, "10.0.0.1", 53, "10.0.0.5", 5000),
            &[1, 2, 3],
            &mut st,
            &mut out,
        );
        let mut looped = r(1, "a.example", 0);
        looped.truncate(12);
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        p.push(
            &info(1000, "10.0.0.1", 53, "10.0.0.5", 5000),
            &looped,
            &mut st,
            &mut out,
        );
        assert_eq!(st.rejected["dns.short_header"], 1);
        assert_eq!(st.rejected["dns.compression_loop"], 1);
        assert_eq!(out.len(), 1);
        // the looped message's header was valid, so it counts as a response seen
        assert_eq!((st.queries, st.responses), (2, 2));
    }

    #[test]
    fn one_corrupt_future_timestamp_does_not_break_later_pairing() {
        let (mut p, mut st, mut out) = (pairer(), IngestStats::default(), Vec::new());
        p.push(
            &info(0, "10.0.0.5", 5000, "10.0.0.1", 53),
            &q(1, "a.example"),
            &mut st,
            &mut out,
        );
        // a packet stamped years ahead: the pending query times out, but only that one
        p.push(
            &info(100_000_000_000, "10.0.0.6", 5000, "10.0.0.1", 53),
            &q(2, "b.example"),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        p.push(
            &info(10, "10.0.0.7", 5000, "10.0.0.1", 53),
            &q(3, "c.example"),
            &mut st,
            &mut out,
        );
        p.push(
            &info(12, "10.0.0.1", 53, "10.0.0.7", 5000),
            &r(3, "c.example", 0),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(out[1].has_query() && out[1].has_response());
    }

    #[test]
    fn same_name_other_type_does_not_pair_but_keeps_its_name() {
        let (mut p, mut st, mut out) = (pairer(), IngestStats::default(), Vec::new());
        let mut aaaa = Vec::new();
        encode_query(
            &mut aaaa,
            1,
            Flags(Flags::RD),
            &Question::new(Name::parse("Long-Name.Example.Com").unwrap(), 28),
        )
        .unwrap();
        p.push(
            &info(0, "10.0.0.5", 5000, "10.0.0.1", 53),
            &aaaa,
            &mut st,
            &mut out,
        );
        p.push(
            &info(1, "10.0.0.1", 53, "10.0.0.5", 5000),
            &r(1, "long-name.example.com", 0),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(!out[0].has_query());
        assert_eq!(out[0].qname.as_str(), "long-name.example.com");
        assert_eq!(out[0].qtype, 1);
        assert_eq!(out[0].answers[0].name.as_str(), "long-name.example.com");
    }

    #[test]
    fn table_is_capped() {
        let mut p = pairer().with_max_pending(10);
        let (mut st, mut out) = (IngestStats::default(), Vec::new());
        for i in 0..100u16 {
            p.push(
                &info(i as i64, "10.0.0.5", 1000 + i, "10.0.0.1", 53),
                &q(i, "a.example"),
                &mut st,
                &mut out,
            );
            assert!(p.pending() <= 10);
        }
        assert_eq!(st.rejected["pair.evicted"], 90);
        assert_eq!(out.len(), 90);
        p.flush(&mut st, &mut out);
        assert_eq!(out.len(), 100);
        assert!(p.order.is_empty());
    }

    #[test]
    fn order_deque_stays_bounded_when_everything_is_answered() {
        let (mut p, mut st, mut out) = (pairer(), IngestStats::default(), Vec::new());
        for i in 0..20_000u32 {
            let id = i as u16;
            let port = 1024 + (i % 60000) as u16;
            // all at the same event time: nothing expires, so only compaction bounds the deque
            p.push(
                &info(0, "10.0.0.5", port, "10.0.0.1", 53),
                &q(id, "a.example"),
                &mut st,
                &mut out,
            );
            p.push(
                &info(0, "10.0.0.1", 53, "10.0.0.5", port),
                &r(id, "a.example", 0),
                &mut st,
                &mut out,
            );
        }
        assert_eq!(out.len(), 20_000);
        assert!(p.order.len() <= 4097, "{}", p.order.len());
    }
}
