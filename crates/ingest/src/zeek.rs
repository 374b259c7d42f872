//! Zeek `dns.log` source, TSV and JSON, one [`DnsEvent`] per log line.
//!
//! Zeek has already paired each query with its reply, so a line maps to one event:
//! `ts` → `ts`; `id.orig_h`/`id.orig_p` → client; `id.resp_h`/`id.resp_p` → server; `proto`
//! (udp/tcp) → transport; `trans_id` → id; `query` (Zeek's `\xNN` escapes decoded to raw bytes,
//! then split into labels on `.`, so the event's [`Name`] escapes them again canonically) →
//! qname; `qclass`, `qtype`, `opcode` (newer Zeek) as numbers; `rcode` (or `rcode_name` when only
//! that is set); `AA`/`TC`/`RD`/`RA` and the `Z` bits (Z bit0 = CD, bit1 = AD); `answers` with the
//! parallel `TTLs`; `rtt` → `rtt_us`. `uid`, `rejected` and the `*_name` mnemonics are ignored.
//!
//! Zeek logs no message sizes. To keep [`DnsEvent::has_query`] / [`DnsEvent::has_response`]
//! meaningful, `query_size` is `Some(0)` when Zeek saw the query (its `qtype` is set) and
//! `response_size` is `Some(0)` when it saw a reply (an `rcode`, or answers). A reply with answers
//! but no `rcode` gets NOERROR.
//!
//! Answers are strings in Zeek: an address becomes an A/AAAA answer; a single name becomes a
//! CNAME (PTR/NS/DNAME when that was the question type), its owner being the previous CNAME target
//! or the qname; anything else (`TXT 33 text...`, `RRSIG 1 upenn.edu`, dynamic-update notes) is
//! kept as escaped text, typed by its leading mnemonic when it has one, else type 0.
//!
//! TSV: the header directives `#separator` (with `\xNN` escapes), `#set_separator`,
//! `#empty_field`, `#unset_field`, `#fields` (column order is taken from it; unknown columns are
//! ignored) are honoured, `#types`, `#path`, `#open`, `#close` and comments are skipped, and a
//! new header block (several logs concatenated) resets the state. JSON: one object per line with
//! the same keys; `ts` is seconds as a number, ISO 8601 text, or integer milliseconds (values
//! above 1e11 are read as milliseconds, Zeek's `JSON::TS_MILLIS`). Small timestamps (Slips logs
//! with times relative to the start of a capture) are taken as they are.
//!
//! Rejected lines are counted by reason and skipped: `zeek.bad_ts` (including the
//! `XXXXXXXXXX.XXXXXX` placeholders of Zeek's test baselines: an event at a made-up time would
//! poison time-based baselines, so such lines are not guessed at), `zeek.bad_addr`,
//! `zeek.no_query` (Zeek logs replies without a question with `query` unset),
//! `zeek.no_header` (data before `#fields`), `zeek.bad_field_count`, `zeek.bad_json`,
//! `zeek.line_too_long` (over [`crate::jsonl::MAX_LINE`]), `zeek.read_error` (reading stops).

use crate::jsonl::{CappedLines, MAX_LINE};
use crate::{EventReader, IngestError, IngestOptions, IngestStats};
use dnsight_model::{
    escape_text, rtype_from_str, Answer, DnsEvent, Flags, Name, RData, Source, Transport, Ts,
};
use std::borrow::Cow;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};

/// Reject reasons of both Zeek readers for a failed read and an over-long line.
const REASONS: (&str, &str) = ("zeek.read_error", "zeek.line_too_long");
/// Answers kept per line (the rest are dropped; a line is already capped in size).
const MAX_ANSWERS: usize = 256;

/// What one Zeek line says, independent of TSV or JSON.
#[derive(Default)]
struct Rec<'a> {
    ts: Option<Ts>,
    client: Option<IpAddr>,
    client_port: u16,
    server: Option<IpAddr>,
    server_port: u16,
    transport: Transport,
    id: u16,
    rtt: Option<f64>,
    query: Option<Cow<'a, [u8]>>,
    qclass: Option<u16>,
    qtype: Option<u16>,
    rcode: Option<u16>,
    rcode_name: Option<Cow<'a, [u8]>>,
    aa: bool,
    tc: bool,
    rd: bool,
    ra: bool,
    z: u8,
    opcode: u8,
    answers: AnswerSrc<'a>,
}

/// Where a line's answers come from: TSV keeps the raw fields and splits them lazily (no
/// allocation per line), JSON has them as arrays.
#[derive(Default)]
enum AnswerSrc<'a> {
    #[default]
    None,
    Tsv {
        answers: &'a [u8],
        ttls: &'a [u8],
        sep: &'a [u8],
    },
    Json {
        answers: Vec<Cow<'a, [u8]>>,
        ttls: Vec<Option<f64>>,
    },
}

impl AnswerSrc<'_> {
    /// Calls `f(answer, ttl seconds)` for each answer (at most [`MAX_ANSWERS`]).
    fn for_each(&self, mut f: impl FnMut(&[u8], Option<f64>)) {
        match self {
            AnswerSrc::None => {}
            AnswerSrc::Tsv { answers, ttls, sep } => {
                let mut t = Fields::new(ttls, sep);
                for a in Fields::new(answers, sep).take(MAX_ANSWERS) {
                    let ttl = t.next().and_then(parse_epoch).map(|us| us.0 as f64 / 1e6);
                    f(&unescape(a), ttl);
                }
            }
            AnswerSrc::Json { answers, ttls } => {
                for (i, a) in answers.iter().take(MAX_ANSWERS).enumerate() {
                    f(a, ttls.get(i).copied().flatten());
                }
            }
        }
    }
}

/// Splits on a separator of one or more bytes without allocating.
struct Fields<'a> {
    rest: Option<&'a [u8]>,
    sep: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(s: &'a [u8], sep: &'a [u8]) -> Self {
        Fields { rest: Some(s), sep }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let r = self.rest?;
        let found = match self.sep.len() {
            0 => None,
            // fields are short: a plain scan beats memchr's setup cost
            1 => r.iter().position(|&b| b == self.sep[0]),
            _ => memchr::memmem::find(r, self.sep),
        };
        match found {
            Some(i) => {
                self.rest = Some(&r[i + self.sep.len()..]);
                Some(&r[..i])
            }
            None => {
                self.rest = None;
                Some(r)
            }
        }
    }
}

/// Decodes Zeek's escapes: `\xNN` → the byte, `\\` → `\`; anything else literally.
fn unescape(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            if s.get(i + 1) == Some(&b'x') {
                if let (Some(h), Some(l)) = (
                    s.get(i + 2).and_then(|c| hexval(*c)),
                    s.get(i + 3).and_then(|c| hexval(*c)),
                ) {
                    out.push(h * 16 + l);
                    i += 4;
                    continue;
                }
            } else if s.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A name from raw bytes as Zeek prints them: labels separated by `.`, empty labels dropped.
fn name_from_bytes(raw: &[u8]) -> Name {
    // fast path: bytes that are already canonical once ASCII-lowercased (the common case)
    let plain = |b: u8| {
        (0x21..=0x7e).contains(&b) && !matches!(b, b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$')
    };
    let mut prev = b'.';
    let mut ok = !raw.is_empty() && raw.len() <= 255;
    for &b in raw {
        ok &= plain(b) && !(b == b'.' && prev == b'.');
        prev = b;
    }
    if ok && prev != b'.' {
        let mut buf = [0u8; 255];
        let buf = &mut buf[..raw.len()];
        buf.copy_from_slice(raw);
        buf.make_ascii_lowercase();
        if let Ok(s) = std::str::from_utf8(buf) {
            return Name::from_canonical(s);
        }
    }
    Name::from_labels(raw.split(|&b| b == b'.').filter(|l| !l.is_empty()))
}

/// Seconds since the epoch with up to 6 decimals, parsed exactly (no float rounding); other
/// forms (exponents, more digits) through f64.
fn parse_epoch(s: &[u8]) -> Option<Ts> {
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match memchr::memchr(b'.', body) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    let simple = !int.is_empty()
        && int.len() <= 12
        && frac.len() <= 6
        && int.iter().chain(frac).all(u8::is_ascii_digit);
    if simple {
        let mut secs: i64 = 0;
        for &d in int {
            secs = secs * 10 + (d - b'0') as i64;
        }
        let mut us: i64 = 0;
        for i in 0..6 {
            us = us * 10 + frac.get(i).map_or(0, |d| (d - b'0') as i64);
        }
        let v = secs * 1_000_000 + us;
        return Some(Ts(if neg { -v } else { v }));
    }
    let v: f64 = std::str::from_utf8(s).ok()?.trim().parse().ok()?;
    (v.is_finite() && v.abs() < 1e13).then(|| Ts::from_secs_f64(v))
}

/// A decimal count that fits in `T` (Zeek writes plain digits).
fn parse_count<T: TryFrom<u64>>(s: &[u8]) -> Option<T> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    T::try_from(v).ok()
}

fn parse_bool(s: &[u8]) -> bool {
    matches!(s, b"T" | b"t" | b"true" | b"1")
}

/// Dotted-quad IPv4 without going through `str` (the common case in logs).
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut parts = s.split(|&b| b == b'.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p[0] == b'0') {
            return None;
        }
        *o = parse_count::<u8>(p)?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(out))
}

fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    if s.len() <= 15 && !s.is_empty() && s[0].is_ascii_digit() && !s.contains(&b':') {
        return parse_ipv4(s).map(IpAddr::V4);
    }
    let s = std::str::from_utf8(s).ok()?;
    // Zeek never logs zone ids, but tolerate `fe80::1%eth0`
    let s = s.split('%').next().unwrap_or(s);
    s.parse().ok()
}

/// Turns Zeek's answer strings into answers (see the module docs).
fn build_answers(qname: &Name, qtype: Option<u16>, rec: &Rec) -> Vec<Answer> {
    let mut owner = qname.clone();
    let mut out = Vec::new();
    rec.answers.for_each(|a, ttl| {
        let ttl = ttl.map_or(0, |t| t.clamp(0.0, u32::MAX as f64) as u32);
        if a.is_empty() {
            return;
        }
        if let Some(ip) = parse_ip(a) {
            let rtype = if ip.is_ipv4() { 1 } else { 28 };
            out.push(Answer {
                name: owner.clone(),
                rtype,
                ttl,
                data: RData::Addr(ip),
            });
        } else if !a.iter().any(|b| b.is_ascii_whitespace()) {
            let target = name_from_bytes(a);
            match qtype {
                // MX/SRV: Zeek logs only the target name
                Some(t @ (15 | 33)) => out.push(Answer {
                    name: owner.clone(),
                    rtype: t,
                    ttl,
                    data: RData::Text(escape_text(target.as_str())),
                }),
                Some(t @ (2 | 12 | 39)) => out.push(Answer {
                    name: owner.clone(),
                    rtype: t,
                    ttl,
                    data: RData::Name(target),
                }),
                _ => {
                    let next = target.clone();
                    out.push(Answer {
                        name: std::mem::replace(&mut owner, next),
                        rtype: 5,
                        ttl,
                        data: RData::Name(target),
                    });
                }
            }
        } else {
            let text = String::from_utf8_lossy(a);
            let first = text.split(' ').next().unwrap_or("");
            let rtype = if first.starts_with(|c: char| c.is_ascii_alphabetic()) {
                rtype_from_str(first).unwrap_or(0)
            } else {
                0
            };
            out.push(Answer {
                name: owner.clone(),
                rtype,
                ttl,
                data: RData::Text(escape_text(&text)),
            });
        }
    });
    out
}

/// Builds the event from a decoded line; `Err` is the reject reason.
fn build_event(rec: &Rec) -> Result<DnsEvent, &'static str> {
    let ts = rec.ts.ok_or("zeek.bad_ts")?;
    let client = rec.client.ok_or("zeek.bad_addr")?;
    let qraw = rec.query.as_ref().ok_or("zeek.no_query")?;
    let qname = name_from_bytes(&unescape(qraw));
    let answers = build_answers(&qname, rec.qtype, rec);
    let mut rcode = rec.rcode.or_else(|| {
        let n = rec.rcode_name.as_ref()?;
        dnsight_model::rcode_from_str(std::str::from_utf8(n).ok()?)
    });
    if rcode.is_none() && !answers.is_empty() {
        rcode = Some(dnsight_model::RCODE_NOERROR);
    }
    let mut flags = 0u16;
    for (set, bit) in [
        (rec.aa, Flags::AA),
        (rec.tc, Flags::TC),
        (rec.rd, Flags::RD),
        (rec.ra, Flags::RA),
        (rec.z & 1 != 0, Flags::CD),
        (rec.z & 2 != 0, Flags::AD),
    ] {
        if set {
            flags |= bit;
        }
    }
    if rcode.is_some() {
        flags |= Flags::QR;
    }
    let rtt_us = rec
        .rtt
        .filter(|r| r.is_finite() && *r >= 0.0)
        .map(|r| (r * 1e6).round().min(u32::MAX as f64) as u32);
    Ok(DnsEvent {
        ts,
        client,
        client_port: rec.client_port,
        server: rec.server.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        server_port: rec.server_port,
        transport: rec.transport,
        id: rec.id,
        qname,
        qtype: rec.qtype.unwrap_or(0),
        qclass: rec.qclass.unwrap_or(1),
        opcode: rec.opcode,
        rcode,
        flags: Flags(flags),
        answers,
        query_size: rec.qtype.map(|_| 0),
        response_size: rcode.map(|_| 0),
        rtt_us: if rcode.is_some() { rtt_us } else { None },
        source: Source::Zeek,
        verdict: None,
    })
}

fn transport(s: &[u8]) -> Transport {
    match s {
        b"udp" => Transport::Udp,
        b"tcp" => Transport::Tcp,
        _ => Transport::Unknown,
    }
}

/// Accounts for one decoded line.
fn emit(stats: &mut IngestStats, rec: &Rec, out: &mut Vec<DnsEvent>) -> bool {
    match build_event(rec) {
        Ok(ev) => {
            stats.count_logged_event(&ev);
            out.push(ev);
            true
        }
        Err(reason) => {
            stats.reject(reason);
            false
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TSV

#[derive(Clone, Copy, PartialEq, Eq)]
enum Col {
    Ts,
    OrigH,
    OrigP,
    RespH,
    RespP,
    Proto,
    TransId,
    Rtt,
    Query,
    Qclass,
    Qtype,
    Rcode,
    RcodeName,
    Aa,
    Tc,
    Rd,
    Ra,
    Z,
    Answers,
    Ttls,
    Opcode,
    Other,
}

fn col_of(name: &[u8]) -> Col {
    match name {
        b"ts" => Col::Ts,
        b"id.orig_h" => Col::OrigH,
        b"id.orig_p" => Col::OrigP,
        b"id.resp_h" => Col::RespH,
        b"id.resp_p" => Col::RespP,
        b"proto" => Col::Proto,
        b"trans_id" => Col::TransId,
        b"rtt" => Col::Rtt,
        b"query" => Col::Query,
        b"qclass" => Col::Qclass,
        b"qtype" => Col::Qtype,
        b"rcode" => Col::Rcode,
        b"rcode_name" => Col::RcodeName,
        b"AA" => Col::Aa,
        b"TC" => Col::Tc,
        b"RD" => Col::Rd,
        b"RA" => Col::Ra,
        b"Z" => Col::Z,
        b"answers" => Col::Answers,
        b"TTLs" => Col::Ttls,
        b"opcode" => Col::Opcode,
        _ => Col::Other,
    }
}

/// Header state of the current log inside a TSV stream.
struct TsvHeader {
    sep: Vec<u8>,
    set_sep: Vec<u8>,
    empty: Vec<u8>,
    unset: Vec<u8>,
    cols: Option<Vec<Col>>,
}

impl Default for TsvHeader {
    fn default() -> Self {
        TsvHeader {
            sep: b"\t".to_vec(),
            set_sep: b",".to_vec(),
            empty: b"(empty)".to_vec(),
            unset: b"-".to_vec(),
            cols: None,
        }
    }
}

impl TsvHeader {
    /// Applies a `#` line. A `#separator` line starts a new log (resets the other directives).
    fn directive(&mut self, line: &[u8]) {
        if let Some(v) = line.strip_prefix(b"#separator") {
            *self = TsvHeader::default();
            let v = v
                .strip_prefix(b" ")
                .or_else(|| v.strip_prefix(b"\t"))
                .unwrap_or(v);
            let sep = unescape(v).into_owned();
            if !sep.is_empty() {
                self.sep = sep;
            }
            return;
        }
        let sep = self.sep.clone();
        let mut parts = Fields::new(line, &sep);
        let key = parts.next().unwrap_or(b"");
        let value = || line.get(key.len() + sep.len()..).unwrap_or(b"");
        match key {
            b"#set_separator" => self.set_sep = unescape(value()).into_owned(),
            b"#empty_field" => self.empty = unescape(value()).into_owned(),
            b"#unset_field" => self.unset = unescape(value()).into_owned(),
            b"#fields" => self.cols = Some(parts.map(col_of).collect()),
            _ => {} // #path, #open, #close, #types, comments
        }
    }

    fn parse_line<'a>(&'a self, line: &'a [u8]) -> Result<Rec<'a>, &'static str> {
        let cols = self.cols.as_ref().ok_or("zeek.no_header")?;
        let mut rec = Rec::default();
        let mut n = 0;
        let mut answers_raw: Option<&[u8]> = None;
        let mut ttls_raw: Option<&[u8]> = None;
        for field in Fields::new(line, &self.sep) {
            let col = *cols.get(n).ok_or("zeek.bad_field_count")?;
            n += 1;
            if col == Col::Other || field == self.unset.as_slice() {
                if col == Col::Ts {
                    return Err("zeek.bad_ts");
                }
                continue;
            }
            let empty = field == self.empty.as_slice();
            match col {
                Col::Ts => rec.ts = Some(parse_epoch(field).ok_or("zeek.bad_ts")?),
                Col::OrigH => rec.client = Some(parse_ip(field).ok_or("zeek.bad_addr")?),
                Col::OrigP => rec.client_port = parse_count(field).unwrap_or(0),
                Col::RespH => rec.server = parse_ip(field),
                Col::RespP => rec.server_port = parse_count(field).unwrap_or(0),
                Col::Proto => rec.transport = transport(field),
                Col::TransId => rec.id = parse_count(field).unwrap_or(0),
                Col::Rtt => rec.rtt = parse_epoch(field).map(|us| us.0 as f64 / 1e6),
                Col::Query => rec.query = Some(Cow::Borrowed(if empty { b"" } else { field })),
                Col::Qclass => rec.qclass = parse_count(field),
                Col::Qtype => rec.qtype = parse_count(field),
                Col::Rcode => rec.rcode = parse_count(field),
                Col::RcodeName => rec.rcode_name = Some(Cow::Borrowed(field)),
                Col::Aa => rec.aa = parse_bool(field),
                Col::Tc => rec.tc = parse_bool(field),
                Col::Rd => rec.rd = parse_bool(field),
                Col::Ra => rec.ra = parse_bool(field),
                Col::Z => rec.z = parse_count(field).unwrap_or(0),
                Col::Opcode => rec.opcode = parse_count(field).unwrap_or(0),
                Col::Answers if !empty => answers_raw = Some(field),
                Col::Ttls if !empty => ttls_raw = Some(field),
                _ => {}
            }
        }
        if n != cols.len() {
            return Err("zeek.bad_field_count");
        }
        if let Some(answers) = answers_raw {
            rec.answers = AnswerSrc::Tsv {
                answers,
                ttls: ttls_raw.unwrap_or(b""),
                sep: &self.set_sep,
            };
        }
        Ok(rec)
    }
}

/// Reader for Zeek dns.log in Zeek's TSV ("ASCII") format.
pub struct ZeekTsvReader {
    lines: CappedLines,
    header: TsvHeader,
    stats: IngestStats,
    done: bool,
}

impl ZeekTsvReader {
    pub fn new(input: Box<dyn BufRead + Send>) -> Self {
        ZeekTsvReader {
            lines: CappedLines::new(input, MAX_LINE),
            header: TsvHeader::default(),
            stats: IngestStats::default(),
            done: false,
        }
    }
}

impl EventReader for ZeekTsvReader {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        let header = &mut self.header;
        Ok(self
            .lines
            .pump(&mut self.done, &mut self.stats, REASONS, |line, stats| {
                if line.is_empty() {
                    return 0;
                }
                if line[0] == b'#' {
                    header.directive(line);
                    return 0;
                }
                match header.parse_line(line) {
                    Ok(rec) => emit(stats, &rec, out) as usize,
                    Err(reason) => {
                        stats.reject(reason);
                        0
                    }
                }
            }))
    }

    fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// A JSON scalar Zeek may write for a number, a time or a flag. Deserialised by hand: serde's
/// untagged enums buffer every value first and made this reader several times slower.
enum JNum<'a> {
    Num(f64),
    Text(Cow<'a, str>),
    Bool(bool),
    Null,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for JNum<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = JNum<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, string, boolean or null")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(JNum::Num(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(JNum::Num(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(JNum::Num(v as f64))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(JNum::Bool(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JNum::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JNum::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(JNum::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(JNum::Null)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl JNum<'_> {
    fn as_f64(&self) -> Option<f64> {
        match self {
            JNum::Num(v) => Some(*v),
            JNum::Text(t) => t.trim().parse().ok(),
            JNum::Bool(b) => Some(*b as u8 as f64),
            JNum::Null => None,
        }
    }
    fn as_u16(&self) -> Option<u16> {
        self.as_f64()
            .filter(|v| (0.0..=65535.0).contains(v))
            .map(|v| v as u16)
    }
    fn as_bool(&self) -> bool {
        match self {
            JNum::Bool(b) => *b,
            JNum::Num(v) => *v != 0.0,
            JNum::Text(t) => parse_bool(t.as_bytes()),
            JNum::Null => false,
        }
    }
}

#[derive(serde::Deserialize)]
struct JRec<'a> {
    #[serde(borrow)]
    ts: Option<JNum<'a>>,
    #[serde(rename = "id.orig_h", borrow)]
    orig_h: Option<Cow<'a, str>>,
    #[serde(rename = "id.orig_p", borrow)]
    orig_p: Option<JNum<'a>>,
    #[serde(rename = "id.resp_h", borrow)]
    resp_h: Option<Cow<'a, str>>,
    #[serde(rename = "id.resp_p", borrow)]
    resp_p: Option<JNum<'a>>,
    #[serde(borrow)]
    proto: Option<Cow<'a, str>>,
    #[serde(borrow)]
    trans_id: Option<JNum<'a>>,
    #[serde(borrow)]
    rtt: Option<JNum<'a>>,
    #[serde(borrow)]
    query: Option<Cow<'a, str>>,
    #[serde(borrow)]
    qclass: Option<JNum<'a>>,
    #[serde(borrow)]
    qtype: Option<JNum<'a>>,
    #[serde(borrow)]
    rcode: Option<JNum<'a>>,
    #[serde(borrow)]
    rcode_name: Option<Cow<'a, str>>,
    #[serde(rename = "AA", borrow)]
    aa: Option<JNum<'a>>,
    #[serde(rename = "TC", borrow)]
    tc: Option<JNum<'a>>,
    #[serde(rename = "RD", borrow)]
    rd: Option<JNum<'a>>,
    #[serde(rename = "RA", borrow)]
    ra: Option<JNum<'a>>,
    #[serde(rename = "Z", borrow)]
    z: Option<JNum<'a>>,
    #[serde(borrow)]
    opcode: Option<JNum<'a>>,
    #[serde(borrow, default)]
    answers: Option<Vec<Cow<'a, str>>>,
    #[serde(rename = "TTLs", borrow, default)]
    ttls: Option<Vec<JNum<'a>>>,
}

fn json_ts(t: &JNum) -> Option<Ts> {
    match t {
        JNum::Num(v) if v.is_finite() && v.abs() > 1e11 && v.abs() < 1e16 => {
            Some(Ts((v * 1000.0).round() as i64))
        }
        JNum::Num(v) if v.is_finite() && v.abs() <= 1e11 => Some(Ts::from_secs_f64(*v)),
        JNum::Text(s) => Ts::parse(s).or_else(|| parse_epoch(s.as_bytes())),
        _ => None,
    }
}

fn parse_json_line(line: &[u8]) -> Result<Rec<'_>, &'static str> {
    let j: JRec = serde_json::from_slice(line).map_err(|_| "zeek.bad_json")?;
    let mut rec = Rec {
        ts: Some(j.ts.as_ref().and_then(json_ts).ok_or("zeek.bad_ts")?),
        ..Rec::default()
    };
    rec.client = Some(
        j.orig_h
            .as_deref()
            .and_then(|h| parse_ip(h.as_bytes()))
            .ok_or("zeek.bad_addr")?,
    );
    rec.client_port = j.orig_p.as_ref().and_then(JNum::as_u16).unwrap_or(0);
    rec.server = j.resp_h.as_deref().and_then(|h| parse_ip(h.as_bytes()));
    rec.server_port = j.resp_p.as_ref().and_then(JNum::as_u16).unwrap_or(0);
    rec.transport = j
        .proto
        .as_deref()
        .map_or(Transport::Unknown, |p| transport(p.as_bytes()));
    rec.id = j.trans_id.as_ref().and_then(JNum::as_u16).unwrap_or(0);
    rec.rtt = j.rtt.as_ref().and_then(JNum::as_f64);
    rec.query = j.query.map(|q| match q {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    });
    rec.qclass = j.qclass.as_ref().and_then(JNum::as_u16);
    rec.qtype = j.qtype.as_ref().and_then(JNum::as_u16);
    rec.rcode = j.rcode.as_ref().and_then(JNum::as_u16);
    rec.rcode_name = j
        .rcode_name
        .map(|q| Cow::Owned(q.into_owned().into_bytes()));
    rec.aa = j.aa.as_ref().is_some_and(JNum::as_bool);
    rec.tc = j.tc.as_ref().is_some_and(JNum::as_bool);
    rec.rd = j.rd.as_ref().is_some_and(JNum::as_bool);
    rec.ra = j.ra.as_ref().is_some_and(JNum::as_bool);
    rec.z = j.z.as_ref().and_then(JNum::as_u16).unwrap_or(0) as u8;
    rec.opcode = j.opcode.as_ref().and_then(JNum::as_u16).unwrap_or(0) as u8;
    rec.answers = AnswerSrc::Json {
        answers: j
            .answers
            .unwrap_or_default()
            .into_iter()
            .take(MAX_ANSWERS)
            .map(|a| Cow::Owned(unescape(a.as_bytes()).into_owned()))
            .collect(),
        ttls: j
            .ttls
            .unwrap_or_default()
            .iter()
            .take(MAX_ANSWERS)
            .map(JNum::as_f64)
            .collect(),
    };
    Ok(rec)
}

/// Reader for Zeek dns.log written with `LogAscii::use_json=T` (one JSON object per line).
pub struct ZeekJsonReader {
    lines: CappedLines,
    stats: IngestStats,
    done: bool,
}

impl ZeekJsonReader {
    pub fn new(input: Box<dyn BufRead + Send>) -> Self {
        ZeekJsonReader {
            lines: CappedLines::new(input, MAX_LINE),
            stats: IngestStats::default(),
            done: false,
        }
    }
}

impl EventReader for ZeekJsonReader {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        Ok(self
            .lines
            .pump(&mut self.done, &mut self.stats, REASONS, |line, stats| {
                if line.iter().all(u8::is_ascii_whitespace) {
                    return 0;
                }
                match parse_json_line(line) {
                    Ok(rec) => emit(stats, &rec, out) as usize,
                    Err(reason) => {
                        stats.reject(reason);
                        0
                    }
                }
            }))
    }

    fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

/// Opens a Zeek TSV dns.log reader (see the module docs).
pub fn tsv_reader(
    input: Box<dyn BufRead + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    let _ = (name, opts);
    Ok(Box::new(ZeekTsvReader::new(input)))
}

/// Opens a Zeek JSON dns.log reader (see the module docs).
pub fn json_reader(
    input: Box<dyn BufRead + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    let _ = (name, opts);
    Ok(Box::new(ZeekJsonReader::new(input)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(r: &mut dyn EventReader) -> Vec<DnsEvent> {
        let mut out = Vec::new();
        while r.next_batch(&mut out).unwrap() {}
        out
    }

    fn tsv(text: &str) -> (Vec<DnsEvent>, IngestStats) {
        let mut r = ZeekTsvReader::new(Box::new(std::io::Cursor::new(text.as_bytes().to_vec())));
        let evs = read(&mut r);
        (evs, r.stats().clone())
    }

    const HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\topcode\topcode_name\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\tinterval\tstring\tcount\tstring\tcount\tstring\tcount\tstring\tbool\tbool\tbool\tbool\tcount\tvector[string]\tvector[interval]\tbool\tcount\tstring\n";

    #[test]
    fn tsv_fields_map_to_event() {
        let text = format!(
            "{HEADER}1300475168.783842\tCx\t141.142.220.118\t40526\t141.142.2.2\t53\tudp\t26096\t0.000392\tUpload.Wikimedia.org\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\tupload.pmtpa.wikimedia.org,208.80.152.3\t124.000000,2156.000000\tF\t0\tquery\n#close\t2011-03-18-19-06-13\n"
        );
        let (evs, st) = tsv(&text);
        assert_eq!(st.rejected_total(), 0, "{st:?}");
        assert_eq!(evs.len(), 1);
        let e = &evs[0];
        assert_eq!(e.ts, Ts(1_300_475_168_783_842));
        assert_eq!(e.client.to_string(), "141.142.220.118");
        assert_eq!((e.client_port, e.server_port, e.id), (40526, 53, 26096));
        assert_eq!(e.server.to_string(), "141.142.2.2");
        assert_eq!(e.qname.as_str(), "upload.wikimedia.org");
        assert_eq!(
            (e.qtype, e.qclass, e.rcode, e.rtt_us),
            (1, 1, Some(0), Some(392))
        );
        assert_eq!(e.flags, Flags(Flags::QR | Flags::RD | Flags::RA));
        assert_eq!(e.answers.len(), 2);
        assert_eq!(e.answers[0].rtype, 5);
        assert_eq!(e.answers[0].name.as_str(), "upload.wikimedia.org");
        assert_eq!(e.answers[0].ttl, 124);
        assert_eq!(e.answers[1].name.as_str(), "upload.pmtpa.wikimedia.org");
        assert_eq!(e.answers[1].addr(), Some("208.80.152.3".parse().unwrap()));
        assert_eq!(e.answers[1].ttl, 2156);
        assert!(e.has_query() && e.has_response());
    }

    #[test]
    fn tsv_odd_corners() {
        // custom separators, \xNN in names, unset rcode, masked ts, wrong column count, data
        // before a header, a second concatenated log with fewer columns and no opcode
        let text = concat!(
            "1.0\tstray data before any header\n",
            "#separator |\n#set_separator|;\n#empty_field|EMPTY\n#unset_field|NONE\n#fields|ts|id.orig_h|query|qtype|rcode|answers|TTLs\n",
            "10.5|10.0.0.1|ev\\x00il\\x0a.\\x5cx.Example|16|NONE|EMPTY|EMPTY\n",
            "XXXXXXXXXX.XXXXXX|10.0.0.1|a.b|1|0|NONE|NONE\n",
            "11|10.0.0.1|a.b|1\n",
            "12|not-an-ip|a.b|1|0|NONE|NONE\n",
            "13|10.0.0.2|NONE|NONE|0|1.2.3.4|60\n",
            "14|10.0.0.2|txt.example|16|0|TXT 5 hello;ns.example|1;2\n",
            "#separator \\x09\n#fields\tts\tid.orig_h\tquery\n",
            "15\t::1\tlast.example.\n",
        );
        let (evs, st) = tsv(text);
        let names: Vec<&str> = evs.iter().map(|e| e.qname.as_str()).collect();
        assert_eq!(
            names,
            [
                "ev\\000il\\010.\\\\x.example",
                "txt.example",
                "last.example"
            ]
        );
        assert_eq!(evs[0].ts, Ts(10_500_000));
        assert_eq!(evs[0].rcode, None);
        assert!(evs[0].answers.is_empty());
        assert_eq!(evs[1].answers[0].rtype, 16);
        assert_eq!(evs[1].answers[0].data, RData::Text("TXT 5 hello".into()));
        assert_eq!(evs[1].answers[1].rtype, 5);
        assert_eq!(evs[1].answers[1].ttl, 2);
        assert_eq!(evs[2].client.to_string(), "::1");
        assert!(!evs[2].has_query() && !evs[2].has_response());
        let r = &st.rejected;
        assert_eq!(r.get("zeek.no_header"), Some(&1));
        assert_eq!(r.get("zeek.bad_ts"), Some(&1));
        assert_eq!(r.get("zeek.bad_field_count"), Some(&1));
        assert_eq!(r.get("zeek.bad_addr"), Some(&1));
        assert_eq!(r.get("zeek.no_query"), Some(&1));
        assert_eq!(st.events, 3);
    }

    #[test]
    fn json_lines() {
        let text = concat!(
            r#"{"ts":29.557741,"uid":"C","id.orig_h":"10.0.2.15","id.orig_p":54330,"id.resp_h":"147.32.80.9","id.resp_p":53,"proto":"udp","trans_id":31185,"query":"isatap.felk.cvut.cz","qclass":1,"qtype":1,"rcode":3,"rcode_name":"NXDOMAIN","AA":false,"TC":false,"RD":true,"RA":false,"Z":0,"rejected":false}"#,
            "\n",
            r#"{"ts":"2021-03-19T16:07:56.123456Z","id.orig_h":"fe80::1","query":"x\\x2fy.local","answers":["2001:db8::1"],"TTLs":[120.0],"rtt":0.5,"rcode_name":"NOERROR"}"#,
            "\n",
            r#"{"ts":1616169476123,"id.orig_h":"10.0.0.1","query":"ms.example","qtype":28}"#,
            "\n",
            r#"{"ts":"XXXXXXXXXX.XXXXXX","id.orig_h":"10.0.0.1","query":"a"}"#,
            "\n",
            "{\"ts\":1,\n",
            "\n",
        );
        let mut r = ZeekJsonReader::new(Box::new(std::io::Cursor::new(text.as_bytes().to_vec())));
        let evs = read(&mut r);
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].ts, Ts(29_557_741));
        assert_eq!(evs[0].rcode, Some(3));
        assert_eq!(evs[0].flags, Flags(Flags::QR | Flags::RD));
        assert_eq!(evs[1].ts, Ts(1_616_170_076_123_456));
        assert_eq!(evs[1].qname.as_str(), "x/y.local");
        assert_eq!(evs[1].rcode, Some(0));
        assert_eq!(evs[1].rtt_us, Some(500_000));
        assert_eq!(evs[1].answers[0].rtype, 28);
        assert_eq!(evs[2].ts, Ts(1_616_169_476_123_000));
        assert_eq!(evs[2].rcode, None);
        assert_eq!(r.stats().rejected.get("zeek.bad_ts"), Some(&1));
        assert_eq!(r.stats().rejected.get("zeek.bad_json"), Some(&1));
    }

    proptest::proptest! {
        #[test]
        fn fast_name_path_matches_label_path(raw in proptest::collection::vec(proptest::prop_oneof![0x20u8..0x80, proptest::strategy::Just(b'.'), 0u8..=255], 0..80)) {
            let slow = Name::from_labels(raw.split(|&b| b == b'.').filter(|l| !l.is_empty()));
            proptest::prop_assert_eq!(name_from_bytes(&raw), slow);
        }
    }

    #[test]
    fn ipv4_fast_path_agrees_with_std() {
        for t in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            "1.2.3.",
            "a.b.c.d",
            "12345",
        ] {
            assert_eq!(parse_ip(t.as_bytes()), t.parse::<IpAddr>().ok(), "{t}");
        }
    }

    #[test]
    fn fuzz_regressions() {
        // a TXT-like answer with multi-byte text right after the mnemonic used to panic in
        // rtype_from_str (fuzz artifact crash-d4a2ae88)
        let text = format!("{HEADER}1.0\tC\t10.0.0.1\t1\t10.0.0.2\t53\tudp\t1\t-\ta.example\t1\tC\t16\tTXT\t0\tNOERROR\tF\tF\tT\tT\t0\tTXT\u{e9}\u{e9} rs=1\t1.0\tF\t0\tquery\n");
        let (evs, st) = tsv(&text);
        assert_eq!((evs.len(), st.rejected_total()), (1, 0));
        assert_eq!(evs[0].answers[0].rtype, 0);
    }

    #[test]
    fn epoch_parsing_is_exact() {
        assert_eq!(
            parse_epoch(b"1610645203.325590"),
            Some(Ts(1_610_645_203_325_590))
        );
        assert_eq!(
            parse_epoch(b"1610645203.3"),
            Some(Ts(1_610_645_203_300_000))
        );
        assert_eq!(parse_epoch(b"-1.5"), Some(Ts(-1_500_000)));
        assert_eq!(parse_epoch(b"1e3"), Some(Ts(1_000_000_000)));
        assert_eq!(parse_epoch(b"XXXXXXXXXX.XXXXXX"), None);
        assert_eq!(parse_epoch(b"nan"), None);
        assert_eq!(parse_epoch(b""), None);
    }
}
