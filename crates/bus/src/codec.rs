//! The compact, versioned binary encoding of a batch of [`DnsEvent`]s (one bus message).
//!
//! ```text
//! batch   = "DNSB" version:u8 (= 1) count:varint event*count
//! event   = ts:zigzag-varint (delta from the previous event's µs; the first from 0)
//!           client:addr client_port:varint server:addr server_port:varint
//!           transport:u8 source:u8 opcode:u8 id:u16le
//!           qname:name qtype:varint qclass:varint rcode:opt flags:u16le
//!           query_size:opt response_size:opt rtt_us:opt
//!           answers:varint answer* verdict
//! addr    = 4 a:4 | 6 a:16
//! name    = 0 len:varint bytes  (new: appended to the batch's name table)
//!         | i:varint            (i > 0: entry i-1 of the table)
//! opt     = 0 (none) | v+1:varint
//! answer  = name rtype:varint ttl:varint (0 addr | 1 name | 2 len:varint bytes)
//! verdict = 0 | action+1:u8 (0 | 1 len:varint bytes)
//! ```
//!
//! Integers are LEB128 varints. Names repeat within a batch (one device's queries, CDN
//! answers), so each is written once and referenced after. Decoding never panics and never
//! allocates more than the input can hold: a short, malformed or oversized batch is a
//! [`DecodeError`]. Names are taken as they were written when they are printable ASCII in
//! canonical form, else re-canonicalised ([`Name::parse_lenient`]); a name with any other byte
//! is an error. Strings longer than [`MAX_STR`] bytes are cut there.

use compact_str::CompactString;
use dnsight_model::{
    Answer, DnsEvent, Flags, Name, RData, Source, Transport, Ts, Verdict, VerdictAction,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const MAGIC: &[u8; 4] = b"DNSB";
pub const VERSION: u8 = 1;
/// Most events one batch may hold.
pub const MAX_EVENTS: usize = 1 << 20;
/// Most answers one event may hold.
pub const MAX_ANSWERS: usize = 4096;
/// Longest string (name, text record, rule).
pub const MAX_STR: usize = 65_535;
/// Most distinct names one batch's table holds (later ones are written inline every time).
const MAX_TABLE: usize = 1 << 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a dnsight event batch (bad magic)")]
    Magic,
    #[error("event batch version {0} is not supported (this dnsight reads version {VERSION})")]
    Version(u8),
    #[error("event batch truncated or malformed at byte {0}: {1}")]
    Malformed(usize, &'static str),
}

// ---------------------------------------------------------------- encoding

fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_addr(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len().min(MAX_STR);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    let b = &s.as_bytes()[..n];
    put_var(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, v: Option<u64>) {
    put_var(out, v.map_or(0, |v| v + 1));
}

fn transport_code(t: Transport) -> u8 {
    Transport::ALL.iter().position(|x| *x == t).unwrap_or(5) as u8
}

fn source_code(s: Source) -> u8 {
    Source::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

/// Encodes events into one batch.
#[derive(Default)]
pub struct Encoder {
    names: std::collections::HashMap<CompactString, u32>,
}

impl Encoder {
    fn name(&mut self, out: &mut Vec<u8>, n: &Name) {
        if let Some(&i) = self.names.get(n.as_str()) {
            put_var(out, u64::from(i) + 1);
            return;
        }
        out.push(0);
        put_str(out, n.as_str());
        if self.names.len() < MAX_TABLE && n.as_str().len() <= MAX_STR {
            let i = self.names.len() as u32;
            self.names.insert(CompactString::from(n.as_str()), i);
        }
    }

    /// The batch of `events`, appended to `out`.
    pub fn encode(&mut self, events: &[DnsEvent], out: &mut Vec<u8>) {
        self.names.clear();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        let events = &events[..events.len().min(MAX_EVENTS)];
        put_var(out, events.len() as u64);
        let mut prev = 0i64;
        for e in events {
            let t = e.ts.micros();
            let d = t.wrapping_sub(prev);
            prev = t;
            put_var(out, ((d << 1) ^ (d >> 63)) as u64);
            put_addr(out, e.client);
            put_var(out, u64::from(e.client_port));
            put_addr(out, e.server);
            put_var(out, u64::from(e.server_port));
            out.push(transport_code(e.transport));
            out.push(source_code(e.source));
            out.push(e.opcode);
            out.extend_from_slice(&e.id.to_le_bytes());
            self.name(out, &e.qname);
            put_var(out, u64::from(e.qtype));
            put_var(out, u64::from(e.qclass));
            put_opt(out, e.rcode.map(u64::from));
            out.extend_from_slice(&e.flags.0.to_le_bytes());
            put_opt(out, e.query_size.map(u64::from));
            put_opt(out, e.response_size.map(u64::from));
            put_opt(out, e.rtt_us.map(u64::from));
            let answers = &e.answers[..e.answers.len().min(MAX_ANSWERS)];
            put_var(out, answers.len() as u64);
            for a in answers {
                self.name(out, &a.name);
                put_var(out, u64::from(a.rtype));
                put_var(out, u64::from(a.ttl));
                match &a.data {
                    RData::Addr(ip) => {
                        out.push(0);
                        put_addr(out, *ip);
                    }
                    RData::Name(n) => {
                        out.push(1);
                        self.name(out, n);
                    }
                    RData::Text(t) => {
                        out.push(2);
                        put_str(out, t);
                    }
                }
            }
            match &e.verdict {
                None => out.push(0),
                Some(v) => {
                    let a = VerdictAction::ALL
                        .iter()
                        .position(|x| *x == v.action)
                        .unwrap_or(0);
                    out.push(a as u8 + 1);
                    match &v.rule {
                        None => out.push(0),
                        Some(r) => {
                            out.push(1);
                            put_str(out, r);
                        }
                    }
                }
            }
        }
    }
}

/// One batch of `events` (see the module doc).
pub fn encode(events: &[DnsEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + events.len() * 48);
    Encoder::default().encode(events, &mut out);
    out
}

// ---------------------------------------------------------------- decoding

struct Rd<'a> {
    b: &'a [u8],
    at: usize,
    names: Vec<Name>,
}

type R<T> = Result<T, DecodeError>;

impl<'a> Rd<'a> {
    fn bad(&self, what: &'static str) -> DecodeError {
        DecodeError::Malformed(self.at, what)
    }
    fn take(&mut self, n: usize, what: &'static str) -> R<&'a [u8]> {
        if self.b.len() - self.at < n {
            return Err(self.bad(what));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> R<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> R<u16> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn var(&mut self, what: &'static str) -> R<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            if i == 9 && b > 1 {
                return Err(self.bad("varint overflow"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("varint overflow"))
    }
    fn small<T: TryFrom<u64>>(&mut self, what: &'static str) -> R<T> {
        let v = self.var(what)?;
        T::try_from(v).map_err(|_| self.bad(what))
    }
    fn opt<T: TryFrom<u64>>(&mut self, what: &'static str) -> R<Option<T>> {
        match self.var(what)? {
            0 => Ok(None),
            v => T::try_from(v - 1).map(Some).map_err(|_| self.bad(what)),
        }
    }
    fn addr(&mut self) -> R<IpAddr> {
        match self.u8("address")? {
            4 => {
                let s = self.take(4, "IPv4 address")?;
                Ok(IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3])))
            }
            6 => {
                let s = self.take(16, "IPv6 address")?;
                let mut a = [0u8; 16];
                a.copy_from_slice(s);
                Ok(IpAddr::V6(Ipv6Addr::from(a)))
            }
            _ => Err(self.bad("address family")),
        }
    }
    fn text(&mut self, what: &'static str) -> R<&'a str> {
        let n: usize = self.small(what)?;
        if n > MAX_STR {
            return Err(self.bad("string too long"));
        }
        let s = self.take(n, what)?;
        std::str::from_utf8(s).map_err(|_| self.bad("a string that is not UTF-8"))
    }
    /// A name's text: always printable ASCII (names are kept escaped).
    fn ascii(&mut self, what: &'static str) -> R<&'a str> {
        let t = self.text(what)?;
        if !t.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(self.bad("a name that is not printable ASCII"));
        }
        Ok(t)
    }
    fn name(&mut self) -> R<Name> {
        match self.var("name")? {
            0 => {
                let t = self.ascii("name")?;
                let n = if t.is_empty() {
                    return Err(self.bad("empty name"));
                } else if t.bytes().any(|b| b.is_ascii_uppercase()) {
                    Name::parse_lenient(t)
                } else {
                    Name::from_canonical(t)
                };
                if self.names.len() < MAX_TABLE {
                    self.names.push(n.clone());
                }
                Ok(n)
            }
            i => {
                let i = usize::try_from(i - 1).map_err(|_| self.bad("name reference"))?;
                self.names
                    .get(i)
                    .cloned()
                    .ok_or_else(|| self.bad("name reference"))
            }
        }
    }
}

/// The events of one batch; any defect is an error (nothing is half-decoded).
pub fn decode(b: &[u8]) -> R<Vec<DnsEvent>> {
    if b.len() < 5 || &b[..4] != MAGIC {
        return Err(DecodeError::Magic);
    }
    if b[4] != VERSION {
        return Err(DecodeError::Version(b[4]));
    }
    let mut r = Rd {
        b,
        at: 5,
        names: Vec::new(),
    };
    let n: usize = r.small("event count")?;
    if n > MAX_EVENTS {
        return Err(r.bad("too many events"));
    }
    // every event takes at least 20 bytes: no allocation beyond what the input can hold
    let mut out = Vec::with_capacity(n.min((b.len() - r.at) / 20 + 1));
    let mut prev = 0i64;
    for _ in 0..n {
        let z = r.var("time")?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let ts = prev.wrapping_add(d);
        prev = ts;
        let client = r.addr()?;
        let client_port = r.small("client port")?;
        let server = r.addr()?;
        let server_port = r.small("server port")?;
        let transport = *Transport::ALL
            .get(usize::from(r.u8("transport")?))
            .ok_or_else(|| r.bad("transport"))?;
        let source = *Source::ALL
            .get(usize::from(r.u8("source")?))
            .ok_or_else(|| r.bad("source"))?;
        let opcode = r.u8("opcode")?;
        let id = r.u16("id")?;
        let qname = r.name()?;
        let qtype = r.small("qtype")?;
        let qclass = r.small("qclass")?;
        let rcode = r.opt("rcode")?;
        let flags = Flags(r.u16("flags")?);
        let query_size = r.opt("query size")?;
        let response_size = r.opt("response size")?;
        let rtt_us = r.opt("rtt")?;
        let na: usize = r.small("answer count")?;
        if na > MAX_ANSWERS {
            return Err(r.bad("too many answers"));
        }
        let mut answers = Vec::with_capacity(na.min((b.len() - r.at) / 4 + 1));
        for _ in 0..na {
            let name = r.name()?;
            let rtype = r.small("rtype")?;
            let ttl = r.small("ttl")?;
            let data = match r.u8("rdata kind")? {
                0 => RData::Addr(r.addr()?),
                1 => RData::Name(r.name()?),
                2 => RData::Text(CompactString::from(r.text("text")?)),
                _ => return Err(r.bad("rdata kind")),
            };
            answers.push(Answer {
                name,
                rtype,
                ttl,
                data,
            });
        }
        let verdict = match r.u8("verdict")? {
            0 => None,
            a => {
                let action = *VerdictAction::ALL
                    .get(usize::from(a - 1))
                    .ok_or_else(|| r.bad("verdict action"))?;
                let rule = match r.u8("verdict rule")? {
                    0 => None,
                    1 => Some(CompactString::from(r.text("rule")?)),
                    _ => return Err(r.bad("verdict rule")),
                };
                Some(Verdict { action, rule })
            }
        };
        out.push(DnsEvent {
            ts: Ts::from_micros(ts),
            client,
            client_port,
            server,
            server_port,
            transport,
            id,
            qname,
            qtype,
            qclass,
            opcode,
            rcode,
            flags,
            answers,
            query_size,
            response_size,
            rtt_us,
            source,
            verdict,
        });
    }
    if r.at != b.len() {
        return Err(r.bad("trailing bytes"));
    }
    Ok(out)
}
