//! A tiny DNS wire parser and writer for the resolver's hot path.
//!
//! The hot path only needs the question: it is parsed once, the name lowercased into a cache
//! key, and everything else about the message is left as bytes. Answers from the cache are
//! produced by copying stored responses and patching the id, the question's case and the TTLs
//! (the offsets of the TTL fields are found once, when a response is stored). Synthesised
//! answers (blocks, refusals, errors) are written directly from the parsed question.
//!
//! Full decoding into [`dnsight_model::DnsEvent`] answers happens off the hot path, in the
//! event consumer ([`decode_answers`]). Every function here takes attacker-controlled bytes:
//! they bound every loop and never index past the buffer.

use dnsight_model::{Answer, Name};
use smallvec::SmallVec;

pub const HEADER_LEN: usize = 12;
pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_HINFO: u16 = 13;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_DNAME: u16 = 39;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_ANY: u16 = 255;
pub const TYPE_AXFR: u16 = 252;
pub const TYPE_IXFR: u16 = 251;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

/// The UDP payload size dnsight advertises (the DNS flag day 2020 value).
pub const EDNS_UDP_SIZE: u16 = 1232;

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than a DNS header")]
    TooShort,
    #[error("not a query (QR bit set)")]
    NotQuery,
    #[error("question count is not 1")]
    QdCount,
    #[error("malformed question name")]
    BadName,
    #[error("truncated question")]
    Truncated,
    #[error("unexpected records in a query")]
    ExtraRecords,
    #[error("malformed EDNS record")]
    BadEdns,
}

/// EDNS(0) facts from a query's OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub dnssec_ok: bool,
}

/// The parsed question of a query; the name itself stays in the buffer (`[12, qname_end)`)
/// and, lowercased, in the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// The header's flags word (with opcode and rcode bits).
    pub flags: u16,
    pub opcode: u8,
    pub qtype: u16,
    pub qclass: u16,
    /// End of the question name (start is always 12).
    pub qname_end: usize,
    /// End of the question section.
    pub question_end: usize,
    pub edns: Option<Edns>,
}

impl Question {
    pub fn rd(&self) -> bool {
        self.flags & 0x0100 != 0
    }
    pub fn cd(&self) -> bool {
        self.flags & 0x0010 != 0
    }
    /// Largest response the client accepts over UDP.
    pub fn max_udp(&self) -> usize {
        match self.edns {
            Some(e) => (e.udp_size.max(512) as usize).min(4096),
            None => 512,
        }
    }
}

pub fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}
pub fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Parses the header and question of a query. The lowercased wire name followed by qtype,
/// qclass and one byte of flags (RD, CD, EDNS present, DO) is written into `key` (cleared
/// first): equal keys mean interchangeable responses.
///
/// Only the header's id is trusted when this fails (if the buffer has 12 bytes).
pub fn parse_query(buf: &[u8], key: &mut Vec<u8>) -> Result<Question, WireError> {
    key.clear();
    if buf.len() < HEADER_LEN {
        return Err(WireError::TooShort);
    }
    let id = u16::from_be_bytes([buf[0], buf[1]]);
    let flags = u16::from_be_bytes([buf[2], buf[3]]);
    if flags & 0x8000 != 0 {
        return Err(WireError::NotQuery);
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    let qd = u16::from_be_bytes([buf[4], buf[5]]);
    let an = u16::from_be_bytes([buf[6], buf[7]]);
    let ns = u16::from_be_bytes([buf[8], buf[9]]);
    let ar = u16::from_be_bytes([buf[10], buf[11]]);
    if qd != 1 {
        return Err(WireError::QdCount);
    }
    // uncompressed name, lowercased into the key
    let mut i = HEADER_LEN;
    loop {
        let len = *buf.get(i).ok_or(WireError::Truncated)? as usize;
        if len == 0 {
            key.push(0);
            i += 1;
            break;
        }
        if len > 63 {
            return Err(WireError::BadName);
        }
        let label = buf.get(i + 1..i + 1 + len).ok_or(WireError::Truncated)?;
        if key.len() + len + 2 > 255 {
            return Err(WireError::BadName);
        }
        key.push(len as u8);
        key.extend(label.iter().map(|b| b.to_ascii_lowercase()));
        i += 1 + len;
    }
    let qname_end = i;
    let qtype = u16_at(buf, i).ok_or(WireError::Truncated)?;
    let qclass = u16_at(buf, i + 2).ok_or(WireError::Truncated)?;
    let question_end = i + 4;
    if an != 0 || ns != 0 || ar > 1 {
        return Err(WireError::ExtraRecords);
    }
    let mut edns = None;
    if ar == 1 {
        // must be an OPT record with the root name
        let b = buf.get(question_end..).ok_or(WireError::BadEdns)?;
        if b.len() < 11 || b[0] != 0 || u16_at(b, 1) != Some(TYPE_OPT) {
            return Err(WireError::BadEdns);
        }
        let udp_size = u16_at(b, 3).ok_or(WireError::BadEdns)?;
        let ttl = u32_at(b, 5).ok_or(WireError::BadEdns)?;
        let rdlen = u16_at(b, 9).ok_or(WireError::BadEdns)? as usize;
        if b.len() < 11 + rdlen {
            return Err(WireError::BadEdns);
        }
        edns = Some(Edns {
            udp_size,
            dnssec_ok: ttl & 0x8000 != 0,
        });
    }
    key.extend_from_slice(&qtype.to_be_bytes());
    key.extend_from_slice(&qclass.to_be_bytes());
    let mut kf = 0u8;
    if flags & 0x0100 != 0 {
        kf |= 1;
    }
    if flags & 0x0010 != 0 {
        kf |= 2;
    }
    if let Some(e) = edns {
        kf |= 4;
        if e.dnssec_ok {
            kf |= 8;
        }
    }
    key.push(kf);
    Ok(Question {
        id,
        flags,
        opcode,
        qtype,
        qclass,
        qname_end,
        question_end,
        edns,
    })
}

/// The key's last byte holds the question's flags in its low nibble and, from this bit up, the
/// client group's upstream view ([`crate::policy::Group::view`]): groups with upstreams of
/// their own get answers cached apart.
pub const VIEW_SHIFT: u8 = 4;

/// The upstream view recorded in a key (0 = the default upstreams).
pub fn key_view(key: &[u8]) -> u8 {
    key.last().map(|b| b >> VIEW_SHIFT).unwrap_or(0)
}

/// Records the upstream view (0..=15) in a key produced by [`parse_query`].
pub fn set_key_view(key: &mut [u8], view: u8) {
    if let Some(b) = key.last_mut() {
        *b = (*b & 0x0f) | (view << VIEW_SHIFT);
    }
}

/// The wire name part of a key produced by [`parse_query`].
pub fn key_name(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(5)]
}

/// Writes the query dnsight sends upstream: a fresh id, RD (and CD) from the client, AD, the
/// question name exactly as the client spelled it (`name`, uncompressed wire form: letter case
/// carries data for DNS 0x20 and for tunnels like dns2tcp, so it is never changed), and an OPT
/// record without options when the client used EDNS (client cookies and other options are not
/// forwarded, so a cached answer is valid for anyone).
pub fn build_upstream_query(out: &mut Vec<u8>, id: u16, q: &Question, name: &[u8]) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    // AD is always asked for: the answer is cached for clients that want it (RFC 6840 §5.7)
    out.extend_from_slice(&((q.flags & 0x0110) | 0x0020).to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, if q.edns.is_some() { 1 } else { 0 }]);
    out.extend_from_slice(name);
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    if let Some(e) = q.edns {
        push_opt(out, e.dnssec_ok);
    }
}

fn push_opt(out: &mut Vec<u8>, dnssec_ok: bool) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
    out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
}

/// Skips a (possibly compressed) name starting at `i`; returns the offset after it.
pub fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *b.get(i)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(i + 1),
            0x00 => i += 1 + len as usize,
            0xc0 => {
                b.get(i + 1)?;
                return Some(i + 2);
            }
            _ => return None,
        }
    }
    None
}

/// Facts about a response found when it is stored in the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseInfo {
    pub rcode: u8,
    /// Offsets of every TTL field (answer, authority, additional; not OPT).
    pub ttl_offsets: SmallVec<[u16; 8]>,
    /// Cache lifetime: minimum TTL of the answer records, or for negative answers
    /// (NXDOMAIN/NODATA) min(SOA TTL, SOA MINIMUM) per RFC 2308; None if not cacheable.
    pub ttl: Option<u32>,
    pub truncated: bool,
    pub ancount: u16,
}

/// Walks a response's records (bounded, no allocation beyond the offset list).
pub fn inspect_response(b: &[u8]) -> Option<ResponseInfo> {
    if b.len() < HEADER_LEN || b.len() > u16::MAX as usize {
        return None;
    }
    let flags = u16_at(b, 2)?;
    let rcode = (flags & 0xf) as u8;
    let qd = u16_at(b, 4)?;
    let an = u16_at(b, 6)?;
    let ns = u16_at(b, 8)?;
    let ar = u16_at(b, 10)?;
    let mut i = HEADER_LEN;
    for _ in 0..qd {
        i = skip_name(b, i)? + 4;
    }
    let mut info = ResponseInfo {
        rcode,
        truncated: flags & 0x0200 != 0,
        ancount: an,
        ..Default::default()
    };
    let mut min_an: Option<u32> = None;
    let mut neg: Option<u32> = None;
    for sec in 0..3 {
        let n = [an, ns, ar][sec];
        for _ in 0..n {
            i = skip_name(b, i)?;
            let rtype = u16_at(b, i)?;
            let ttl = u32_at(b, i + 4)?;
            let rdlen = u16_at(b, i + 8)? as usize;
            let rd = i + 10;
            b.get(rd..rd + rdlen)?;
            if rtype != TYPE_OPT {
                info.ttl_offsets.push((i + 4) as u16);
            }
            if sec == 0 {
                min_an = Some(min_an.map_or(ttl, |m| m.min(ttl)));
            } else if sec == 1 && rtype == TYPE_SOA && rdlen >= 22 {
                let minimum = u32_at(b, rd + rdlen - 4)?;
                neg = Some(ttl.min(minimum));
            }
            i = rd + rdlen;
        }
    }
    info.ttl = match (rcode, an) {
        (RCODE_NOERROR, 1..) => min_an,
        (RCODE_NOERROR, 0) | (RCODE_NXDOMAIN, _) => neg,
        _ => None,
    };
    Some(info)
}

/// Checks that `resp` answers `sent` (our upstream query): same id, QR set, same question.
pub fn response_matches(resp: &[u8], id: u16, key: &[u8], qtype: u16, qclass: u16) -> bool {
    if resp.len() < HEADER_LEN || u16_at(resp, 0) != Some(id) || resp[2] & 0x80 == 0 {
        return false;
    }
    if u16_at(resp, 4) != Some(1) {
        // some servers send an empty question with FORMERR/REFUSED; we do not trust those
        return false;
    }
    let name = key_name(key);
    let Some(got) = resp.get(HEADER_LEN..HEADER_LEN + name.len()) else {
        return false;
    };
    if !got
        .iter()
        .zip(name)
        .all(|(a, b)| a.to_ascii_lowercase() == *b)
    {
        return false;
    }
    let i = HEADER_LEN + name.len();
    u16_at(resp, i) == Some(qtype) && u16_at(resp, i + 2) == Some(qclass)
}

/// Writes a response header + the client's question (original case) into `out`.
fn start_response(out: &mut Vec<u8>, query: &[u8], q: &Question, rcode: u8, an: u16, aa: bool) {
    out.clear();
    out.extend_from_slice(&q.id.to_be_bytes());
    let mut flags: u16 = 0x8000 | (q.flags & 0x7900) | 0x0080 | (q.flags & 0x0010) | rcode as u16;
    if aa {
        flags |= 0x0400;
    }
    out.extend_from_slice(&flags.to_be_bytes());
    let ar = if q.edns.is_some() { 1u16 } else { 0 };
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&an.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ar.to_be_bytes());
    out.extend_from_slice(&query[HEADER_LEN..q.question_end]);
}

/// A response with no answers and the given rcode (NXDOMAIN, NODATA = NOERROR, REFUSED, ...).
pub fn build_empty(out: &mut Vec<u8>, query: &[u8], q: &Question, rcode: u8) {
    start_response(out, query, q, rcode, 0, false);
    if let Some(e) = q.edns {
        push_opt(out, e.dnssec_ok);
    }
}

/// A response with answer records for the question name (pointer to offset 12).
pub fn build_answers(
    out: &mut Vec<u8>,
    query: &[u8],
    q: &Question,
    ttl: u32,
    rdatas: &[(u16, &[u8])],
) {
    start_response(out, query, q, RCODE_NOERROR, rdatas.len() as u16, false);
    for (rtype, rdata) in rdatas {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    if let Some(e) = q.edns {
        push_opt(out, e.dnssec_ok);
    }
}

/// One answer record for [`build_records`]: owner (`None` = the question name, written as a
/// pointer to it; else an uncompressed wire name), type, TTL, rdata.
pub type Record<'a> = (Option<&'a [u8]>, u16, u32, &'a [u8]);

/// A NOERROR response with the given answer records; `aa` sets the authoritative flag (for
/// data the resolver holds itself).
pub fn build_records(out: &mut Vec<u8>, query: &[u8], q: &Question, aa: bool, recs: &[Record]) {
    start_response(out, query, q, RCODE_NOERROR, recs.len() as u16, aa);
    for (owner, rtype, ttl, rdata) in recs {
        match owner {
            Some(n) => out.extend_from_slice(n),
            None => out.extend_from_slice(&[0xc0, 0x0c]),
        }
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    if let Some(e) = q.edns {
        push_opt(out, e.dnssec_ok);
    }
}

/// The RFC 8482 answer to ANY: one synthesised HINFO record.
pub fn build_any_hinfo(out: &mut Vec<u8>, query: &[u8], q: &Question) {
    let rdata = b"\x07RFC8482\x00";
    build_answers(out, query, q, 3600, &[(TYPE_HINFO, rdata)]);
}

/// A minimal error response for a message whose question could not be parsed: the header with
/// QR and the rcode, no sections. Returns false when there is not even a header.
pub fn build_header_error(out: &mut Vec<u8>, query: &[u8], rcode: u8) -> bool {
    out.clear();
    if query.len() < HEADER_LEN {
        return false;
    }
    out.extend_from_slice(&query[..2]);
    let flags = u16::from_be_bytes([query[2], query[3]]);
    let flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    true
}

/// Copies a cached response into `out`, patching the id, the question (client's case) and the
/// TTLs (minus `age` seconds). No decoding.
pub fn patch_cached(
    out: &mut Vec<u8>,
    stored: &[u8],
    ttl_offsets: &[u16],
    age: u32,
    query: &[u8],
    q: &Question,
) {
    out.clear();
    out.extend_from_slice(stored);
    out[0..2].copy_from_slice(&q.id.to_be_bytes());
    // RD from the client, as a real resolver would echo it
    out[2] = (out[2] & !0x01) | ((q.flags >> 8) as u8 & 0x01);
    // we are a recursive service, not the authority: RA on, AA off
    out[2] &= !0x04;
    out[3] |= 0x80;
    // AD only for clients that asked with DO or AD (RFC 6840 §5.7)
    if q.flags & 0x0020 == 0 && !q.edns.is_some_and(|e| e.dnssec_ok) {
        out[3] &= !0x20;
    }
    let qn = &query[HEADER_LEN..q.qname_end];
    if out.len() >= HEADER_LEN + qn.len() {
        out[HEADER_LEN..HEADER_LEN + qn.len()].copy_from_slice(qn);
    }
    if age > 0 {
        for &o in ttl_offsets {
            let o = o as usize;
            if let Some(t) = u32_at(out, o) {
                out[o..o + 4].copy_from_slice(&t.saturating_sub(age).to_be_bytes());
            }
        }
    }
}

/// Sets every TTL of a (patched) response to `ttl` (stale answers, RFC 8767).
pub fn set_ttls(out: &mut [u8], ttl_offsets: &[u16], ttl: u32) {
    for &o in ttl_offsets {
        let o = o as usize;
        if let Some(s) = out.get_mut(o..o + 4) {
            s.copy_from_slice(&ttl.to_be_bytes());
        }
    }
}

/// Turns an oversized UDP response into a truncated one (TC, header + question only).
pub fn truncate_for_udp(out: &mut Vec<u8>, question_end: usize, edns: Option<Edns>) {
    if out.len() < HEADER_LEN || question_end > out.len() {
        return;
    }
    out.truncate(question_end);
    out[2] |= 0x02;
    out[6..10].copy_from_slice(&[0, 0, 0, 0]);
    if let Some(e) = edns {
        out[10..12].copy_from_slice(&[0, 1]);
        push_opt(out, e.dnssec_ok);
    } else {
        out[10..12].copy_from_slice(&[0, 0]);
    }
}

/// The question name of a key as a [`Name`].
pub fn key_to_name(key: &[u8]) -> Name {
    let name = key_name(key);
    let mut labels: SmallVec<[&[u8]; 8]> = SmallVec::new();
    let mut i = 0;
    while i < name.len() {
        let len = name[i] as usize;
        if len == 0 || i + 1 + len > name.len() {
            break;
        }
        labels.push(&name[i + 1..i + 1 + len]);
        i += 1 + len;
    }
    Name::from_labels(labels)
}

/// Decodes the answer section of a response for an event (off the hot path). Malformed
/// records end the decoding; what was decoded before is kept.
pub fn decode_answers(b: &[u8], out: &mut Vec<Answer>) {
    // Off the hot path: the project's one full decoder (dnsight_model::wire), so answers from
    // the resolver read exactly like answers from captures and dnstap.
    out.clear();
    if let Ok(m) = dnsight_model::wire::decode(b) {
        *out = m.answers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams from clients and upstreams are hostile bytes: every parser and every builder
    /// that takes them must return, never panic (a fuzz-style property over arbitrary input,
    /// with a valid query mutated in place as the second source of near-valid input).
    fn exercise(bytes: &[u8]) {
        let mut key = Vec::new();
        let parsed = parse_query(bytes, &mut key);
        let info = inspect_response(bytes);
        let mut answers = Vec::new();
        decode_answers(bytes, &mut answers);
        let mut out = Vec::new();
        let _ = build_header_error(&mut out, bytes, 2);
        if let Ok(q) = parsed {
            let _ = response_matches(bytes, q.id, &key, q.qtype, q.qclass);
            build_upstream_query(&mut out, 7, &q, &bytes[HEADER_LEN..q.qname_end]);
            build_empty(&mut out, bytes, &q, 3);
            build_any_hinfo(&mut out, bytes, &q);
            truncate_for_udp(&mut out, q.question_end, q.edns);
            let _ = key_to_name(&key);
            if let Some(info) = &info {
                patch_cached(&mut out, bytes, &info.ttl_offsets, 30, bytes, &q);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            exercise(&bytes);
        }

        #[test]
        fn mutated_queries_never_panic(edits in proptest::collection::vec((0usize..64, proptest::num::u8::ANY), 0..8), cut in 0usize..80) {
            let mut b = query("www.Example.com", 1, true);
            for (i, v) in edits {
                if let Some(x) = b.get_mut(i) {
                    *x = v;
                }
            }
            b.truncate(cut.max(1));
            exercise(&b);
        }
    }

    pub(crate) fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut b = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns as u8];
        for l in name.split('.').filter(|l| !l.is_empty()) {
            b.push(l.len() as u8);
            b.extend_from_slice(l.as_bytes());
        }
        b.push(0);
        b.extend_from_slice(&qtype.to_be_bytes());
        b.extend_from_slice(&[0, 1]);
        if edns {
            b.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0]);
        }
        b
    }

    #[test]
    fn parses_and_normalises() {
        let mut key = Vec::new();
        let b = query("WwW.Example.COM", 28, true);
        let q = parse_query(&b, &mut key).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.qtype, 28);
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 4096,
                dnssec_ok: true
            })
        );
        assert_eq!(key_name(&key), b"\x03www\x07example\x03com\x00");
        assert_eq!(key_to_name(&key).as_str(), "www.example.com");
        assert_eq!(*key.last().unwrap(), 1 | 4 | 8);
        let mut key2 = Vec::new();
        parse_query(&query("www.example.com", 28, true), &mut key2).unwrap();
        assert_eq!(key, key2);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let mut key = Vec::new();
        assert_eq!(parse_query(&[1, 2, 3], &mut key), Err(WireError::TooShort));
        let mut b = query("a.b", 1, false);
        b[2] |= 0x80;
        assert_eq!(parse_query(&b, &mut key), Err(WireError::NotQuery));
        let mut b = query("a.b", 1, false);
        b[12] = 0xc0; // compression pointer in a query
        assert_eq!(parse_query(&b, &mut key), Err(WireError::BadName));
        let b = query("a.b", 1, false);
        assert_eq!(
            parse_query(&b[..b.len() - 1], &mut key),
            Err(WireError::Truncated)
        );
        // every prefix and every single-byte corruption of a valid query: no panic
        let b = query("www.example.com", 1, true);
        for n in 0..b.len() {
            let _ = parse_query(&b[..n], &mut key);
            let _ = inspect_response(&b[..n]);
            let mut out = Vec::new();
            decode_answers(&b[..n], &mut Vec::new());
            build_header_error(&mut out, &b[..n], RCODE_FORMERR);
        }
        for n in 0..b.len() {
            for v in [0u8, 0x3f, 0x40, 0xc0, 0xff] {
                let mut c = b.clone();
                c[n] = v;
                let _ = parse_query(&c, &mut key);
                let _ = inspect_response(&c);
                decode_answers(&c, &mut Vec::new());
            }
        }
    }

    #[test]
    fn builds_answers_and_patches_ttls() {
        let mut key = Vec::new();
        let b = query("Ads.Example.com", TYPE_A, false);
        let q = parse_query(&b, &mut key).unwrap();
        let mut out = Vec::new();
        build_answers(&mut out, &b, &q, 300, &[(TYPE_A, &[0, 0, 0, 0])]);
        let info = inspect_response(&out).unwrap();
        assert_eq!(info.ttl, Some(300));
        assert_eq!(info.ttl_offsets.len(), 1);
        let mut ans = Vec::new();
        decode_answers(&out, &mut ans);
        assert_eq!(ans.len(), 1);
        assert_eq!(ans[0].name.as_str(), "ads.example.com");
        assert_eq!(ans[0].addr(), Some("0.0.0.0".parse().unwrap()));
        // a second client asks in other case: the copy carries its id, case and aged TTL
        let mut b2 = query("ADS.example.COM", TYPE_A, false);
        b2[0] = 0xab;
        let q2 = parse_query(&b2, &mut Vec::new()).unwrap();
        let mut hit = Vec::new();
        patch_cached(&mut hit, &out, &info.ttl_offsets, 100, &b2, &q2);
        assert_eq!(&hit[..2], &[0xab, 0x34]);
        assert_eq!(&hit[12..q2.qname_end], &b2[12..q2.qname_end]);
        decode_answers(&hit, &mut ans);
        assert_eq!(ans[0].ttl, 200);
        assert!(response_matches(&hit, 0xab34, &key, TYPE_A, 1));
        assert!(!response_matches(&hit, 0xab35, &key, TYPE_A, 1));
        assert!(!response_matches(&hit, 0xab34, &key, TYPE_AAAA, 1));
    }

    #[test]
    fn negative_ttl_from_soa() {
        let b = query("nx.example", TYPE_A, false);
        let q = parse_query(&b, &mut Vec::new()).unwrap();
        let mut out = Vec::new();
        build_empty(&mut out, &b, &q, RCODE_NXDOMAIN);
        // append an SOA in authority: ttl 600, minimum 60
        out[9] = 1;
        out.extend_from_slice(&[0xc0, 0x0c, 0, 6, 0, 1, 0, 0, 2, 0x58, 0, 22]);
        out.extend_from_slice(&[
            0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 60,
        ]);
        let info = inspect_response(&out).unwrap();
        assert_eq!(info.rcode, RCODE_NXDOMAIN);
        assert_eq!(info.ttl, Some(60));
        // without SOA: not cacheable
        build_empty(&mut out, &b, &q, RCODE_NXDOMAIN);
        assert_eq!(inspect_response(&out).unwrap().ttl, None);
    }

    #[test]
    fn truncation_keeps_question() {
        let b = query("big.example", TYPE_A, true);
        let q = parse_query(&b, &mut Vec::new()).unwrap();
        let mut out = Vec::new();
        let addrs: Vec<(u16, &[u8])> = (0..200).map(|_| (TYPE_A, &[1u8, 2, 3, 4][..])).collect();
        build_answers(&mut out, &b, &q, 60, &addrs);
        truncate_for_udp(&mut out, q.question_end, q.edns);
        let info = inspect_response(&out).unwrap();
        assert!(info.truncated);
        assert_eq!(info.ancount, 0);
        assert!(out.len() < 100);
    }
}
