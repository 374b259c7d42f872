//! dnstap source: Frame Streams files and live sockets (unix and TCP) → paired [`DnsEvent`]s.
//!
//! dnstap is how DNS servers (Unbound, BIND, Knot, PowerDNS, CoreDNS, dnsdist) export what they
//! see: each Frame Streams data frame is a protobuf `Dnstap` message (schema in
//! `proto/dnstap.proto`, compiled at build time with protox + prost) wrapping one `Message`: its
//! type (AUTH/RESOLVER/CLIENT/FORWARDER/STUB/TOOL/UPDATE × QUERY/RESPONSE), socket family and
//! protocol, the initiator (`query_address`/`query_port`) and responder
//! (`response_address`/`response_port`), times, and the wire-format DNS message.
//!
//! Mapping: the initiator is the event's client and the responder its server, for every type
//! (for CLIENT_* the client is the stub that asked the server; for RESOLVER_*/FORWARDER_* it is
//! the server itself asking upstream). A query message is timed by `query_time`, a response by
//! `response_time` (each falling back to the other). The DNS bytes are decoded with
//! [`dnsight_model::wire`] and paired with [`crate::pair::Pairer`] — one pairer per type family,
//! so a CLIENT_QUERY never pairs with a RESOLVER_RESPONSE that happens to share the 5-tuple and
//! id. A message carrying both a query and a response (some servers send both in `*_RESPONSE`)
//! becomes one paired event directly. Which families become events is configurable
//! ([`DnstapOptions::families`]; default all: configure what the server logs).
//!
//! Rejected input, by reason: `fstrm.*` (framing, see [`framestream::FrameError::reason`],
//! `fstrm.frame_too_large`), `dnstap.bad_protobuf`, `dnstap.no_message` (not a MESSAGE),
//! `dnstap.bad_message_type`, `dnstap.no_dns_message`, `dnstap.bad_time`, `dnstap.no_time`,
//! `dnstap.filtered` (family not wanted), and the wire decoder's `dns.*` reasons.
//!
//! Sources: [`file_reader`] for files (`dnstap -w`, `unbound` with `dnstap-socket-path` pointing
//! at `fstrm_capture`, BIND's `dnstap-output file`); [`listen_unix`] and [`listen_tcp`] for live
//! streams (see [`listen`]). Memory is bounded by the frame cap and the pairer's pending cap.

pub mod framestream;
pub mod listen;
pub mod proto;

pub use listen::{listen_tcp, listen_unix, DnstapListener, ListenOptions, ShutdownHandle};

use crate::pair::{PacketInfo, Pairer};
use crate::{EventReader, IngestError, IngestOptions, IngestStats};
use dnsight_model::{DnsEvent, Source, Transport, Ts};
use framestream::{
    Frame, FrameReader, CONTROL_START, CONTROL_STOP, DEFAULT_MAX_FRAME, DNSTAP_CONTENT_TYPE,
};
use prost::Message as _;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Events handed out per `next_batch` (a soft target).
const BATCH: usize = 1024;

/// The seven dnstap message families, in the order of their type numbers.
pub const FAMILIES: [&str; 7] = [
    "auth",
    "resolver",
    "client",
    "forwarder",
    "stub",
    "tool",
    "update",
];

/// Options of the dnstap sources.
#[derive(Clone, Debug)]
pub struct DnstapOptions {
    pub ingest: IngestOptions,
    /// Bit `i` set: events of family [`FAMILIES`]`[i]` are emitted. Default: all.
    pub families: u8,
    /// Data frames longer than this are skipped (`fstrm.frame_too_large`).
    pub max_frame: usize,
}

impl Default for DnstapOptions {
    fn default() -> Self {
        DnstapOptions {
            ingest: IngestOptions::default(),
            families: 0x7f,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl DnstapOptions {
    pub fn from_ingest(ingest: &IngestOptions) -> Self {
        DnstapOptions {
            ingest: ingest.clone(),
            ..Default::default()
        }
    }

    /// Keeps only the named families (`client`, `resolver`, ...); unknown names are an error.
    pub fn only_families(mut self, names: &[&str]) -> Result<Self, String> {
        self.families = 0;
        for n in names {
            let i = FAMILIES
                .iter()
                .position(|f| f.eq_ignore_ascii_case(n))
                .ok_or_else(|| {
                    format!("unknown dnstap message family {n:?} (expected one of {FAMILIES:?})")
                })?;
            self.families |= 1 << i;
        }
        Ok(self)
    }
}

/// BIND's two-letter code for a message type (`CQ` = CLIENT_QUERY, `RR` = RESOLVER_RESPONSE...),
/// `??` for an unknown type.
pub fn type_code(t: i32) -> &'static str {
    const CODES: [&str; 14] = [
        "AQ", "AR", "RQ", "RR", "CQ", "CR", "FQ", "FR", "SQ", "SR", "TQ", "TR", "UQ", "UR",
    ];
    usize::try_from(t)
        .ok()
        .and_then(|t| t.checked_sub(1))
        .and_then(|i| CODES.get(i))
        .copied()
        .unwrap_or("??")
}

/// Decodes one data frame into the protobuf `Dnstap` message.
pub fn decode_frame(frame: &[u8]) -> Result<proto::Dnstap, &'static str> {
    proto::Dnstap::decode(frame).map_err(|_| "dnstap.bad_protobuf")
}

/// Encodes a `Dnstap` wrapper around `msg` (for writers and tests).
pub fn encode_message(msg: proto::Message) -> Vec<u8> {
    proto::Dnstap {
        identity: None,
        version: None,
        extra: None,
        r#type: proto::dnstap::Type::Message as i32,
        message: Some(msg),
    }
    .encode_to_vec()
}

/// An address field: 4 bytes IPv4, 16 bytes IPv6, anything else `None`.
pub fn addr_of(b: Option<&[u8]>) -> Option<IpAddr> {
    match b? {
        b if b.len() == 4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        b if b.len() == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// A dnstap time (seconds + nanoseconds) as event time; `Err` when out of range.
pub fn time_of(sec: Option<u64>, nsec: Option<u32>) -> Result<Option<Ts>, &'static str> {
    let Some(sec) = sec else { return Ok(None) };
    let nsec = nsec.unwrap_or(0);
    if nsec >= 1_000_000_000 || sec > (i64::MAX / 1_000_000) as u64 - 1 {
        return Err("dnstap.bad_time");
    }
    Ok(Some(Ts(sec as i64 * 1_000_000 + (nsec / 1000) as i64)))
}

fn transport_of(p: Option<i32>) -> Transport {
    use proto::SocketProtocol as P;
    match p.and_then(|p| P::try_from(p).ok()) {
        Some(P::Udp | P::DnsCryptUdp) => Transport::Udp,
        Some(P::Tcp | P::DnsCryptTcp) => Transport::Tcp,
        Some(P::Dot) => Transport::Dot,
        Some(P::Doh) => Transport::Doh,
        Some(P::Doq) => Transport::Doq,
        None if p.is_none() => Transport::Udp,
        None => Transport::Unknown,
    }
}

/// Turns dnstap data frames into events: protobuf decode, DNS decode, pairing per family.
pub struct DnstapDecoder {
    pairers: Vec<Pairer>,
    families: u8,
    latest: Option<Ts>,
}

impl DnstapDecoder {
    pub fn new(opts: &DnstapOptions) -> Self {
        DnstapDecoder {
            pairers: (0..7)
                .map(|_| Pairer::new(Source::Dnstap, &opts.ingest))
                .collect(),
            families: opts.families,
            latest: None,
        }
    }

    /// Decodes one data frame; events that complete are appended to `out`, rejects counted.
    pub fn push_frame(&mut self, frame: &[u8], stats: &mut IngestStats, out: &mut Vec<DnsEvent>) {
        if let Err(reason) = self.try_push(frame, stats, out) {
            stats.reject(reason);
        }
    }

    fn try_push(
        &mut self,
        frame: &[u8],
        stats: &mut IngestStats,
        out: &mut Vec<DnsEvent>,
    ) -> Result<(), &'static str> {
        let d = decode_frame(frame)?;
        if d.r#type != proto::dnstap::Type::Message as i32 {
            return Err("dnstap.no_message");
        }
        let m = d.message.ok_or("dnstap.no_message")?;
        let t = m.r#type;
        if !(1..=14).contains(&t) {
            return Err("dnstap.bad_message_type");
        }
        let family = ((t - 1) / 2) as usize;
        if self.families & (1 << family) == 0 {
            return Err("dnstap.filtered");
        }
        let qt = time_of(m.query_time_sec, m.query_time_nsec)?;
        let rt = time_of(m.response_time_sec, m.response_time_nsec)?;
        self.latest = self.latest.max(qt.max(rt));
        let qaddr = addr_of(m.query_address.as_deref());
        let raddr = addr_of(m.response_address.as_deref());
        let v6 = m.socket_family == Some(proto::SocketFamily::Inet6 as i32);
        let unspec = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let (client, server) = (qaddr.unwrap_or(unspec), raddr.unwrap_or(unspec));
        let qport = m.query_port.unwrap_or(0).min(65535) as u16;
        let rport = m.response_port.unwrap_or(0).min(65535) as u16;
        let transport = transport_of(m.socket_protocol);
        let query_msg = m.query_message.as_deref().filter(|b| !b.is_empty());
        let resp_msg = m.response_message.as_deref().filter(|b| !b.is_empty());
        // Usually a query-type message carries the query and a response-type message the
        // response. Some servers put both in one message: then the response goes through the
        // pairer (it pairs with a query logged separately, if any) and, when it stays unpaired,
        // the event is completed from the carried query (time, size, rtt) instead of being
        // counted twice.
        let pairer = &mut self.pairers[family];
        match (query_msg, resp_msg) {
            (None, None) => return Err("dnstap.no_dns_message"),
            (Some(q), None) => {
                let ts = qt.or(rt).ok_or("dnstap.no_time")?;
                let pkt = PacketInfo {
                    ts,
                    src: client,
                    src_port: qport,
                    dst: server,
                    dst_port: rport,
                    transport,
                };
                pairer.push(&pkt, q, stats, out);
            }
            (q, Some(r)) => {
                let ts = rt.or(qt).ok_or("dnstap.no_time")?;
                let pkt = PacketInfo {
                    ts,
                    src: server,
                    src_port: rport,
                    dst: client,
                    dst_port: qport,
                    transport,
                };
                let before = out.len();
                pairer.push(&pkt, r, stats, out);
                let grew = out.len() > before;
                if let (Some(q), Some(e)) = (q, out.last_mut().filter(|_| grew)) {
                    let same_id = q.len() >= 2
                        && r.len() >= 2
                        && q[..2] == r[..2]
                        && e.id == u16::from_be_bytes([r[0], r[1]]);
                    if same_id && e.query_size.is_none() && e.has_response() {
                        e.query_size = Some(q.len() as u32);
                        if let Some(qt) = qt {
                            e.rtt_us =
                                Some(ts.0.saturating_sub(qt.0).clamp(0, u32::MAX as i64) as u32);
                            e.ts = qt;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves event time forward (emits queries that timed out), e.g. when a live stream is idle.
    pub fn advance(&mut self, now: Ts, stats: &mut IngestStats, out: &mut Vec<DnsEvent>) {
        for p in &mut self.pairers {
            p.advance(now, stats, out);
        }
    }

    /// End of input: emits every pending query as unanswered.
    pub fn flush(&mut self, stats: &mut IngestStats, out: &mut Vec<DnsEvent>) {
        for p in &mut self.pairers {
            p.flush(stats, out);
        }
    }

    /// The newest message time seen so far.
    pub fn latest(&self) -> Option<Ts> {
        self.latest
    }

    /// Queries waiting for their response.
    pub fn pending(&self) -> usize {
        self.pairers.iter().map(Pairer::pending).sum()
    }
}

/// Reader for Frame Streams files of dnstap messages. Concatenated streams (START ... STOP
/// START ... STOP) are read one after the other; a stream with another content type is skipped
/// (`fstrm.content_type_mismatch`, its data frames counted as `fstrm.skipped_frame`).
pub struct DnstapFileReader {
    frames: FrameReader<Box<dyn BufRead + Send>>,
    decoder: DnstapDecoder,
    stats: IngestStats,
    /// Inside a stream whose content type is not dnstap.
    skipping: bool,
    done: bool,
}

impl DnstapFileReader {
    pub fn new(input: Box<dyn BufRead + Send>, opts: &DnstapOptions) -> Self {
        DnstapFileReader {
            frames: FrameReader::new(input, opts.max_frame),
            decoder: DnstapDecoder::new(opts),
            stats: IngestStats::default(),
            skipping: false,
            done: false,
        }
    }
}

impl EventReader for DnstapFileReader {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        if self.done {
            return Ok(false);
        }
        let start = out.len();
        while out.len() - start < BATCH {
            let frame = match self.frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.stats.records += 1;
                    self.stats.reject(e.reason());
                    self.done = true;
                    break;
                }
            };
            self.stats.records += 1;
            match frame {
                Frame::Data(d) if self.skipping => {
                    let _ = d;
                    self.stats.reject("fstrm.skipped_frame");
                }
                Frame::Data(d) => self.decoder.push_frame(d, &mut self.stats, out),
                Frame::TooLarge(_) => self.stats.reject("fstrm.frame_too_large"),
                Frame::Control(c) if c.kind == CONTROL_START => {
                    self.skipping = !c.allows(DNSTAP_CONTENT_TYPE);
                    if self.skipping {
                        self.stats.reject("fstrm.content_type_mismatch");
                    }
                }
                Frame::Control(c) if c.kind == CONTROL_STOP => self.skipping = false,
                Frame::Control(_) => self.stats.reject("fstrm.unexpected_control"),
            }
        }
        if self.done {
            self.decoder.flush(&mut self.stats, out);
        }
        Ok(out.len() > start || !self.done)
    }

    fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

/// Opens a dnstap Frame Streams file reader (see the module docs).
pub fn file_reader(
    input: Box<dyn BufRead + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    let _ = name;
    Ok(Box::new(DnstapFileReader::new(
        input,
        &DnstapOptions::from_ingest(opts),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnsight_model::wire::{encode_query, encode_response, Question};
    use dnsight_model::{Answer, Flags, Name, RData};

    #[test]
    fn type_codes() {
        assert_eq!(type_code(1), "AQ");
        assert_eq!(type_code(6), "CR");
        assert_eq!(type_code(14), "UR");
        assert_eq!(type_code(0), "??");
        assert_eq!(type_code(15), "??");
        assert_eq!(type_code(-3), "??");
    }

    #[test]
    fn times() {
        assert_eq!(
            time_of(Some(10), Some(999_999_999)),
            Ok(Some(Ts(10_999_999)))
        );
        assert_eq!(time_of(None, Some(5)), Ok(None));
        assert_eq!(
            time_of(Some(1), Some(1_000_000_000)),
            Err("dnstap.bad_time")
        );
        assert_eq!(time_of(Some(u64::MAX), None), Err("dnstap.bad_time"));
    }

    pub(crate) fn sample_msg(t: proto::message::Type, q: bool, r: bool) -> proto::Message {
        let name = Name::parse("www.example.com").unwrap();
        let (mut query, mut resp) = (Vec::new(), Vec::new());
        encode_query(
            &mut query,
            0x1234,
            Flags(Flags::RD),
            &Question::new(name.clone(), 1),
        )
        .unwrap();
        let answers = [Answer {
            name: name.clone(),
            rtype: 1,
            ttl: 60,
            data: RData::Addr("192.0.2.7".parse().unwrap()),
        }];
        encode_response(
            &mut resp,
            0x1234,
            Flags(Flags::QR | Flags::RD | Flags::RA),
            0,
            &Question::new(name, 1),
            &answers,
        )
        .unwrap();
        proto::Message {
            r#type: t as i32,
            socket_family: Some(proto::SocketFamily::Inet as i32),
            socket_protocol: Some(proto::SocketProtocol::Udp as i32),
            query_address: Some(vec![10, 0, 0, 5]),
            response_address: Some(vec![10, 0, 0, 1]),
            query_port: Some(40000),
            response_port: Some(53),
            query_time_sec: Some(1_700_000_000),
            query_time_nsec: Some(1_000),
            query_message: q.then_some(query),
            response_time_sec: r.then_some(1_700_000_000),
            response_time_nsec: r.then_some(501_000),
            response_message: r.then_some(resp),
            ..Default::default()
        }
    }

    #[test]
    fn query_and_response_pair_per_family() {
        use proto::message::Type as T;
        let opts = DnstapOptions::default();
        let mut d = DnstapDecoder::new(&opts);
        let (mut st, mut out) = (IngestStats::default(), Vec::new());
        d.push_frame(
            &encode_message(sample_msg(T::ClientQuery, true, false)),
            &mut st,
            &mut out,
        );
        // same 5-tuple and id but another family: must not pair with the client query
        d.push_frame(
            &encode_message(sample_msg(T::ResolverResponse, false, true)),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rtt_us, None);
        d.push_frame(
            &encode_message(sample_msg(T::ClientResponse, false, true)),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        let e = &out[1];
        assert_eq!(e.client.to_string(), "10.0.0.5");
        assert_eq!(e.server.to_string(), "10.0.0.1");
        assert_eq!((e.client_port, e.server_port, e.id), (40000, 53, 0x1234));
        assert_eq!(e.qname.as_str(), "www.example.com");
        assert_eq!(e.rtt_us, Some(500));
        assert_eq!(e.ts, Ts(1_700_000_000_000_001));
        assert_eq!(e.answers[0].addr(), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(e.source, Source::Dnstap);
        // one message with both query and response: one paired event at once
        d.push_frame(
            &encode_message(sample_msg(T::AuthResponse, true, true)),
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert!(out[2].has_query() && out[2].has_response());
        assert_eq!(d.pending(), 0);
        assert_eq!(st.rejected_total(), 0, "{st:?}");
    }

    #[test]
    fn bad_messages_are_counted() {
        use proto::message::Type as T;
        let mut d =
            DnstapDecoder::new(&DnstapOptions::default().only_families(&["client"]).unwrap());
        let (mut st, mut out) = (IngestStats::default(), Vec::new());
        d.push_frame(b"\xff\xff\xff", &mut st, &mut out);
        let mut m = sample_msg(T::ClientQuery, true, false);
        m.r#type = 99;
        d.push_frame(&encode_message(m), &mut st, &mut out);
        d.push_frame(
            &encode_message(sample_msg(T::ClientQuery, false, false)),
            &mut st,
            &mut out,
        );
        d.push_frame(
            &encode_message(sample_msg(T::AuthQuery, true, false)),
            &mut st,
            &mut out,
        );
        let mut m = sample_msg(T::ClientQuery, true, false);
        m.query_time_nsec = Some(2_000_000_000);
        d.push_frame(&encode_message(m), &mut st, &mut out);
        let mut m = sample_msg(T::ClientQuery, true, false);
        m.query_message = Some(vec![1, 2, 3]);
        d.push_frame(&encode_message(m), &mut st, &mut out);
        let wrapper = proto::Dnstap {
            r#type: 2,
            ..Default::default()
        }
        .encode_to_vec();
        d.push_frame(&wrapper, &mut st, &mut out);
        d.flush(&mut st, &mut out);
        assert!(out.is_empty());
        for r in [
            "dnstap.bad_protobuf",
            "dnstap.bad_message_type",
            "dnstap.no_dns_message",
            "dnstap.filtered",
            "dnstap.bad_time",
            "dns.short_header",
            "dnstap.no_message",
        ] {
            assert_eq!(st.rejected.get(r), Some(&1), "{r}: {st:?}");
        }
        assert!(DnstapOptions::default().only_families(&["bogus"]).is_err());
    }
}
