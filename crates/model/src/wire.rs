//! DNS wire format: a fast, defensive decoder for whole messages and a small encoder.
//!
//! Every packet-like source (pcap, live capture, dnstap) hands raw DNS bytes to [`Decoder`]. The
//! bytes are attacker-controlled, so the decoder is bounded everywhere: names follow at most
//! [`MAX_POINTER_HOPS`] compression pointers (loops and forward pointers cannot spin), names are
//! capped at 255 wire bytes, every length is checked against the buffer, and nothing panics.
//! Failures are a [`WireError`] whose [`WireError::reason`] is a stable string used by the reject
//! counters (`dns.truncated`, `dns.compression_loop`, ...).
//!
//! Decoding is lenient in the way packet analysers are: once the header and the question are
//! decoded the message is usable, so a malformed answer, authority or additional section keeps
//! the records decoded before it and records the problem in [`Message::partial`].
//!
//! Speed: the qname and other names are escaped straight from the message bytes into a reused
//! scratch buffer; the only allocations are the [`Name`]s longer than the inline size and the
//! answer vector of the event itself.
//!
//! The encoder ([`encode_query`], [`encode_response`]) writes names uncompressed, except answer
//! owner names equal to the question name, which point back to it (as servers do); it is used by
//! the simulator's pcap output and by tests (encode → decode round trips).

use crate::event::{Answer, Flags, RData};
use crate::name::Name;
use compact_str::CompactString;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest chain of compression pointers followed for one name. A legal name has at most 127
/// labels, so a legal chain is never longer.
pub const MAX_POINTER_HOPS: usize = 128;
/// Size of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// At most this many answer records are kept per message (the rest are skipped).
pub const MAX_ANSWERS: usize = 64;

/// Why a message (or part of it) could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// Shorter than the 12-byte header.
    #[error("message shorter than the DNS header")]
    ShortHeader,
    /// A section, name or record runs past the end of the message.
    #[error("message truncated")]
    Truncated,
    /// A compression pointer chain is longer than [`MAX_POINTER_HOPS`] (a loop).
    #[error("compression pointer loop")]
    CompressionLoop,
    /// A compression pointer points outside the message.
    #[error("compression pointer outside the message")]
    BadPointer,
    /// A label type other than a normal label or a pointer (0x40, 0x80 prefixes).
    #[error("unsupported label type")]
    BadLabel,
    /// A name longer than 255 bytes in wire form.
    #[error("name longer than 255 bytes")]
    NameTooLong,
    /// Record data inconsistent with its type (e.g. an A record that is not 4 bytes).
    #[error("record data does not match its type")]
    BadRdata,
    /// The encoder cannot represent this input (label > 63 bytes, unparsable record text...).
    #[error("cannot encode")]
    Unencodable,
}

impl WireError {
    /// Stable reason string for reject counters.
    pub fn reason(self) -> &'static str {
        match self {
            WireError::ShortHeader => "dns.short_header",
            WireError::Truncated => "dns.truncated",
            WireError::CompressionLoop => "dns.compression_loop",
            WireError::BadPointer => "dns.bad_pointer",
            WireError::BadLabel => "dns.bad_label",
            WireError::NameTooLong => "dns.name_too_long",
            WireError::BadRdata => "dns.bad_rdata",
            WireError::Unencodable => "dns.unencodable",
        }
    }
}

/// The fixed 12-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub id: u16,
    /// The flag bits of the second header word (QR, AA, TC, RD, RA, AD, CD).
    pub flags: Flags,
    pub opcode: u8,
    /// The 4-bit header rcode (see [`Message::rcode`] for the EDNS-extended one).
    pub rcode: u8,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    /// Decodes just the header (cheap; used to count messages whose body is broken).
    pub fn decode(msg: &[u8]) -> Result<Header, WireError> {
        if msg.len() < HEADER_LEN {
            return Err(WireError::ShortHeader);
        }
        let w = u16::from_be_bytes([msg[2], msg[3]]);
        Ok(Header {
            id: u16::from_be_bytes([msg[0], msg[1]]),
            flags: Flags::from_header(w),
            opcode: ((w >> 11) & 0xf) as u8,
            rcode: (w & 0xf) as u8,
            qdcount: be16(msg, 4),
            ancount: be16(msg, 6),
            nscount: be16(msg, 8),
            arcount: be16(msg, 10),
        })
    }
    pub fn is_response(&self) -> bool {
        self.flags.has(Flags::QR)
    }
}

/// The EDNS(0) OPT pseudo-record, when present.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// Upper 8 bits of the extended rcode.
    pub ext_rcode: u8,
    /// Number of EDNS options in the record.
    pub options: u16,
}

/// A decoded DNS message: the first question and the answer section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    /// First question's name (the root when the message has no question).
    pub qname: Name,
    /// First question's type and class (0 when there is no question).
    pub qtype: u16,
    pub qclass: u16,
    /// Response code including the EDNS extension (header rcode | ext_rcode << 4).
    pub rcode: u16,
    /// Answer-section records (at most [`MAX_ANSWERS`]).
    pub answers: Vec<Answer>,
    pub edns: Option<Edns>,
    /// Length of the message in bytes.
    pub size: u32,
    /// Set when a section after the question was malformed; what came before is kept.
    pub partial: Option<WireError>,
}

impl Message {
    pub fn is_response(&self) -> bool {
        self.header.is_response()
    }
    pub fn id(&self) -> u16 {
        self.header.id
    }
}

/// Reusable decoder: holds scratch buffers so decoding allocates only what the result keeps.
#[derive(Debug, Default)]
pub struct Decoder {
    labels: Vec<(u16, u8)>,
    /// Label positions of the first question's name (answers usually point back to it).
    qlabels: Vec<(u16, u8)>,
    scratch: Vec<u8>,
}

/// Bytes that appear in a name's presentation form unchanged (after ASCII lowercasing).
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

/// Decodes one message with a temporary [`Decoder`] (convenience; reuse a `Decoder` in loops).
pub fn decode(msg: &[u8]) -> Result<Message, WireError> {
    Decoder::new().decode(msg)
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn get16(b: &[u8], at: usize) -> Result<u16, WireError> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(WireError::Truncated),
    }
}

fn get32(b: &[u8], at: usize) -> Result<u32, WireError> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(WireError::Truncated),
    }
}

/// Skips a (possibly compressed) name without following pointers; returns the offset after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, WireError> {
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(WireError::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok(pos + 1);
                }
                total += len as usize + 1;
                if total > 255 {
                    return Err(WireError::NameTooLong);
                }
                pos += 1 + len as usize;
            }
            0xc0 => {
                if pos + 2 > msg.len() {
                    return Err(WireError::Truncated);
                }
                return Ok(pos + 2);
            }
            _ => return Err(WireError::BadLabel),
        }
    }
}

/// Appends one raw label, lowercased and escaped exactly as [`Name`] does, to `out`.
fn push_label_bytes(out: &mut Vec<u8>, label: &[u8]) {
    for &b in label {
        let b = b.to_ascii_lowercase();
        if !(0x21..=0x7e).contains(&b) {
            out.extend_from_slice(&[b'\\', b'0' + b / 100, b'0' + (b / 10) % 10, b'0' + b % 10]);
        } else if matches!(b, b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$') {
            out.extend_from_slice(&[b'\\', b]);
        } else {
            out.push(b);
        }
    }
}

/// Appends a character-string's bytes in quoted presentation form (`"..."`).
fn push_quoted(out: &mut String, s: &[u8]) {
    out.push('"');
    for &b in s {
        if !(0x20..=0x7e).contains(&b) {
            let _ = write!(out, "\\{b:03}");
        } else if b == b'"' || b == b'\\' {
            out.push('\\');
            out.push(b as char);
        } else {
            out.push(b as char);
        }
    }
    out.push('"');
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            labels: Vec::with_capacity(32),
            qlabels: Vec::with_capacity(32),
            scratch: Vec::with_capacity(256),
        }
    }

    /// Reads the name at `pos`, following pointers (bounded). Returns the name's labels in
    /// `self.labels` and the offset just after the name at its original position.
    fn read_labels(&mut self, msg: &[u8], mut pos: usize) -> Result<usize, WireError> {
        self.labels.clear();
        let mut end = None;
        let mut hops = 0usize;
        let mut total = 1usize;
        loop {
            let len = *msg.get(pos).ok_or(WireError::Truncated)?;
            match len & 0xc0 {
                0x00 => {
                    if len == 0 {
                        return Ok(end.unwrap_or(pos + 1));
                    }
                    let start = pos + 1;
                    let stop = start + len as usize;
                    if stop > msg.len() {
                        return Err(WireError::Truncated);
                    }
                    total += len as usize + 1;
                    if total > 255 {
                        return Err(WireError::NameTooLong);
                    }
                    // offsets fit in u16 because messages are at most 65535 bytes long
                    // (longer inputs are rejected by `decode`).
                    self.labels.push((start as u16, len));
                    pos = stop;
                }
                0xc0 => {
                    let b2 = *msg.get(pos + 1).ok_or(WireError::Truncated)?;
                    if end.is_none() {
                        end = Some(pos + 2);
                    }
                    hops += 1;
                    if hops > MAX_POINTER_HOPS {
                        return Err(WireError::CompressionLoop);
                    }
                    let target = (((len & 0x3f) as usize) << 8) | b2 as usize;
                    if target >= msg.len() {
                        return Err(WireError::BadPointer);
                    }
                    pos = target;
                }
                _ => return Err(WireError::BadLabel),
            }
        }
    }

    /// Builds a [`Name`] from the labels last read.
    /// Writes the presentation text of the labels last read into `self.scratch`.
    fn labels_to_scratch(&mut self, msg: &[u8]) {
        self.scratch.clear();
        if self.labels.is_empty() {
            self.scratch.push(b'.');
            return;
        }
        for (i, &(start, len)) in self.labels.iter().enumerate() {
            if i > 0 {
                self.scratch.push(b'.');
            }
            let s = start as usize;
            let label = &msg[s..s + len as usize];
            if label.iter().all(|&b| PLAIN[b as usize]) {
                self.scratch
                    .extend(label.iter().map(|b| b.to_ascii_lowercase()));
            } else {
                push_label_bytes(&mut self.scratch, label);
            }
        }
    }

    fn scratch_name(&self) -> Name {
        // only printable ASCII was written, so this never fails
        Name::from_canonical(std::str::from_utf8(&self.scratch).unwrap_or("."))
    }

    /// Builds a [`Name`] from the labels last read.
    fn labels_to_name(&mut self, msg: &[u8]) -> Name {
        if self.labels.is_empty() {
            return Name::root();
        }
        self.labels_to_scratch(msg);
        self.scratch_name()
    }

    /// Reads a name at `pos`; returns it and the offset after it.
    pub fn read_name(&mut self, msg: &[u8], pos: usize) -> Result<(Name, usize), WireError> {
        let next = self.read_labels(msg, pos)?;
        Ok((self.labels_to_name(msg), next))
    }

    /// Decodes a whole message. Errors only when the header or the first question cannot be
    /// decoded; later problems are reported in [`Message::partial`].
    pub fn decode(&mut self, msg: &[u8]) -> Result<Message, WireError> {
        self.decode_expecting(msg, None).map(|(m, _)| m)
    }

    /// Like [`Decoder::decode`], for a caller that already holds the name the first question
    /// probably has (a response to a known query): when the question's name equals `expected`
    /// it is not built again — [`Message::qname`] is left as the root and the flag returned is
    /// true. Saves an allocation per paired response.
    pub fn decode_expecting(
        &mut self,
        msg: &[u8],
        expected: Option<&Name>,
    ) -> Result<(Message, bool), WireError> {
        let header = Header::decode(msg)?;
        // DNS messages never exceed 65535 bytes; anything longer is cut (offsets stay < 2^16).
        let msg = &msg[..msg.len().min(u16::MAX as usize)];
        let mut out = Message {
            header,
            qname: Name::root(),
            qtype: 0,
            qclass: 0,
            rcode: header.rcode as u16,
            answers: Vec::new(),
            edns: None,
            size: msg.len() as u32,
            partial: None,
        };
        let mut pos = HEADER_LEN;
        self.qlabels.clear();
        let mut matched = false;
        if header.qdcount > 0 {
            let next = self.read_labels(msg, pos)?;
            self.qlabels.extend_from_slice(&self.labels);
            self.labels_to_scratch(msg);
            match expected {
                Some(e) if e.as_str().as_bytes() == self.scratch.as_slice() => matched = true,
                _ => out.qname = self.scratch_name(),
            }
            out.qtype = get16(msg, next)?;
            out.qclass = get16(msg, next + 2)?;
            pos = next + 4;
        }
        let qname = if matched { expected } else { None };
        if let Err(e) = self.decode_rest(msg, pos, &mut out, qname) {
            out.partial = Some(e);
        }
        if let Some(e) = out.edns {
            out.rcode |= (e.ext_rcode as u16) << 4;
        }
        Ok((out, matched))
    }

    fn decode_rest(
        &mut self,
        msg: &[u8],
        mut pos: usize,
        out: &mut Message,
        qname: Option<&Name>,
    ) -> Result<(), WireError> {
        let h = out.header;
        for _ in 1..h.qdcount {
            pos = skip_name(msg, pos)? + 4;
            if pos > msg.len() {
                return Err(WireError::Truncated);
            }
        }
        for i in 0..h.ancount {
            let next = self.read_labels(msg, pos)?;
            let name = if !self.qlabels.is_empty() && self.labels == self.qlabels {
                qname.unwrap_or(&out.qname).clone()
            } else {
                self.labels_to_name(msg)
            };
            let rtype = get16(msg, next)?;
            let ttl = get32(msg, next + 4)?;
            let rdlen = get16(msg, next + 8)? as usize;
            let rd = next + 10;
            if rd + rdlen > msg.len() {
                return Err(WireError::Truncated);
            }
            if (i as usize) < MAX_ANSWERS {
                let data = self.rdata(msg, rtype, rd, rdlen)?;
                out.answers.push(Answer {
                    name,
                    rtype,
                    ttl,
                    data,
                });
            }
            pos = rd + rdlen;
        }
        for _ in 0..h.nscount {
            pos = skip_name(msg, pos)?;
            let rdlen = get16(msg, pos + 8)? as usize;
            pos += 10 + rdlen;
            if pos > msg.len() {
                return Err(WireError::Truncated);
            }
        }
        for _ in 0..h.arcount {
            pos = skip_name(msg, pos)?;
            let rtype = get16(msg, pos)?;
            let ttl = get32(msg, pos + 4)?;
            let udp_size = get16(msg, pos + 2)?;
            let rdlen = get16(msg, pos + 8)? as usize;
            let rd = pos + 10;
            pos = rd + rdlen;
            if pos > msg.len() {
                return Err(WireError::Truncated);
            }
            if rtype == 41 && out.edns.is_none() {
                let mut options = 0u16;
                let mut o = rd;
                while o + 4 <= pos {
                    let olen = be16(msg, o + 2) as usize;
                    o += 4 + olen;
                    options = options.saturating_add(1);
                }
                out.edns = Some(Edns {
                    udp_size,
                    ext_rcode: (ttl >> 24) as u8,
                    version: (ttl >> 16) as u8,
                    dnssec_ok: ttl & 0x8000 != 0,
                    options,
                });
            }
        }
        Ok(())
    }

    fn rdata(
        &mut self,
        msg: &[u8],
        rtype: u16,
        rd: usize,
        rdlen: usize,
    ) -> Result<RData, WireError> {
        let data = &msg[rd..rd + rdlen];
        let end = rd + rdlen;
        match rtype {
            1 => {
                let a: [u8; 4] = data.try_into().map_err(|_| WireError::BadRdata)?;
                Ok(RData::Addr(IpAddr::V4(Ipv4Addr::from(a))))
            }
            28 => {
                let a: [u8; 16] = data.try_into().map_err(|_| WireError::BadRdata)?;
                Ok(RData::Addr(IpAddr::V6(Ipv6Addr::from(a))))
            }
            2 | 5 | 12 | 39 => {
                let next = self.read_labels(msg, rd)?;
                if next != end {
                    return Err(WireError::BadRdata);
                }
                Ok(RData::Name(self.labels_to_name(msg)))
            }
            15 => {
                // MX: preference, exchange
                let pref = get16(data, 0).map_err(|_| WireError::BadRdata)?;
                let next = self.read_labels(msg, rd + 2)?;
                if next != end {
                    return Err(WireError::BadRdata);
                }
                let name = self.labels_to_name(msg);
                Ok(RData::Text(text(format_args!("{pref} {name}"))))
            }
            33 => {
                // SRV: priority weight port target
                if rdlen < 7 {
                    return Err(WireError::BadRdata);
                }
                let (p, w, port) = (be16(data, 0), be16(data, 2), be16(data, 4));
                let next = self.read_labels(msg, rd + 6)?;
                if next != end {
                    return Err(WireError::BadRdata);
                }
                let name = self.labels_to_name(msg);
                Ok(RData::Text(text(format_args!("{p} {w} {port} {name}"))))
            }
            6 => {
                // SOA: mname rname serial refresh retry expire minimum
                let next = self.read_labels(msg, rd)?;
                let mname = self.labels_to_name(msg);
                let next = self.read_labels(msg, next)?;
                let rname = self.labels_to_name(msg);
                if next + 20 != end {
                    return Err(WireError::BadRdata);
                }
                let n: Vec<u32> = (0..5)
                    .map(|i| {
                        u32::from_be_bytes(
                            msg[next + 4 * i..next + 4 * i + 4]
                                .try_into()
                                .unwrap_or([0; 4]),
                        )
                    })
                    .collect();
                Ok(RData::Text(text(format_args!(
                    "{mname} {rname} {} {} {} {} {}",
                    n[0], n[1], n[2], n[3], n[4]
                ))))
            }
            16 | 99 | 13 => {
                // TXT, SPF, HINFO: one or more character-strings
                let mut s = String::with_capacity(rdlen + 8);
                let mut o = 0;
                while o < data.len() {
                    let l = data[o] as usize;
                    let chunk = data.get(o + 1..o + 1 + l).ok_or(WireError::BadRdata)?;
                    if o > 0 {
                        s.push(' ');
                    }
                    push_quoted(&mut s, chunk);
                    o += 1 + l;
                }
                Ok(RData::Text(CompactString::from(s)))
            }
            _ => Ok(RData::Text(generic_rdata(data))),
        }
    }
}

fn text(args: std::fmt::Arguments<'_>) -> CompactString {
    let mut s = CompactString::default();
    let _ = s.write_fmt(args);
    s
}

/// RFC 3597 generic presentation: `\# len hex`.
fn generic_rdata(data: &[u8]) -> CompactString {
    let mut s = CompactString::default();
    let _ = write!(s, "\\# {}", data.len());
    if !data.is_empty() {
        s.push(' ');
        for b in data {
            let _ = write!(s, "{b:02x}");
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Encoder

/// A question for the encoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
}

impl Question {
    pub fn new(name: Name, qtype: u16) -> Question {
        Question {
            name,
            qtype,
            qclass: 1,
        }
    }
}

/// Writes `name` in uncompressed wire form.
pub fn encode_name(out: &mut Vec<u8>, name: &Name) -> Result<(), WireError> {
    let start = out.len();
    for l in name.wire_labels() {
        if l.is_empty() || l.len() > 63 {
            return Err(WireError::Unencodable);
        }
        out.push(l.len() as u8);
        out.extend_from_slice(&l);
    }
    out.push(0);
    if out.len() - start > 255 {
        return Err(WireError::NameTooLong);
    }
    Ok(())
}

fn header(out: &mut Vec<u8>, id: u16, word: u16, qd: u16, an: u16, ar: u16) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&word.to_be_bytes());
    for c in [qd, an, 0, ar] {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

/// Appends a query (QR clear, opcode 0) for `q` to `out`. `flags` bits other than QR are kept.
pub fn encode_query(
    out: &mut Vec<u8>,
    id: u16,
    flags: Flags,
    q: &Question,
) -> Result<(), WireError> {
    let start = out.len();
    header(out, id, flags.0 & !Flags::QR, 1, 0, 0);
    let r = encode_name(out, &q.name);
    if r.is_err() {
        out.truncate(start);
        return r;
    }
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    Ok(())
}

/// Appends a response (QR set) to `q` with `answers` to `out`. An rcode above 15 adds an OPT
/// record carrying the extended bits. Record text is parsed back for MX, SRV, TXT/SPF/HINFO and
/// the generic `\# len hex` form; other text is [`WireError::Unencodable`].
pub fn encode_response(
    out: &mut Vec<u8>,
    id: u16,
    flags: Flags,
    rcode: u16,
    q: &Question,
    answers: &[Answer],
) -> Result<(), WireError> {
    let start = out.len();
    let r = encode_response_inner(out, id, flags, rcode, q, answers);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn encode_response_inner(
    out: &mut Vec<u8>,
    id: u16,
    flags: Flags,
    rcode: u16,
    q: &Question,
    answers: &[Answer],
) -> Result<(), WireError> {
    if answers.len() > u16::MAX as usize || rcode > 0xfff {
        return Err(WireError::Unencodable);
    }
    let word = (flags.0 | Flags::QR) & !0x780f | (rcode & 0xf);
    header(
        out,
        id,
        word,
        1,
        answers.len() as u16,
        u16::from(rcode > 15),
    );
    encode_name(out, &q.name)?;
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    // the question name sits at offset 12 of the message: answers for it point there
    for a in answers {
        if a.name == q.name {
            out.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        } else {
            encode_name(out, &a.name)?;
        }
        out.extend_from_slice(&a.rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&a.ttl.to_be_bytes());
        let len_at = out.len();
        out.extend_from_slice(&[0, 0]);
        match (&a.data, a.rtype) {
            (RData::Addr(IpAddr::V4(v4)), 1) => out.extend_from_slice(&v4.octets()),
            (RData::Addr(IpAddr::V6(v6)), 28) => out.extend_from_slice(&v6.octets()),
            (RData::Name(n), 2 | 5 | 12 | 39) => encode_name(out, n)?,
            (RData::Text(t), _) => encode_text_rdata(out, a.rtype, t)?,
            _ => return Err(WireError::Unencodable),
        }
        let rdlen = out.len() - len_at - 2;
        if rdlen > u16::MAX as usize {
            return Err(WireError::Unencodable);
        }
        out[len_at..len_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
    }
    if rcode > 15 {
        out.push(0);
        out.extend_from_slice(&41u16.to_be_bytes());
        out.extend_from_slice(&1232u16.to_be_bytes());
        out.extend_from_slice(&(((rcode >> 4) as u32) << 24).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
    }
    Ok(())
}

fn encode_text_rdata(out: &mut Vec<u8>, rtype: u16, t: &str) -> Result<(), WireError> {
    if let Some(rest) = t.strip_prefix("\\# ") {
        let mut it = rest.splitn(2, ' ');
        let len: usize = it
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or(WireError::Unencodable)?;
        let hex: String = it
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if hex.len() != 2 * len {
            return Err(WireError::Unencodable);
        }
        for i in 0..len {
            out.push(
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| WireError::Unencodable)?,
            );
        }
        return Ok(());
    }
    let parse_name =
        |s: &str| Name::parse(s.trim_end_matches('.')).map_err(|_| WireError::Unencodable);
    match rtype {
        15 => {
            let (p, n) = t.split_once(' ').ok_or(WireError::Unencodable)?;
            out.extend_from_slice(
                &p.parse::<u16>()
                    .map_err(|_| WireError::Unencodable)?
                    .to_be_bytes(),
            );
            encode_name(out, &parse_name(n)?)
        }
        33 => {
            let f: Vec<&str> = t.splitn(4, ' ').collect();
            if f.len() != 4 {
                return Err(WireError::Unencodable);
            }
            for v in &f[..3] {
                out.extend_from_slice(
                    &v.parse::<u16>()
                        .map_err(|_| WireError::Unencodable)?
                        .to_be_bytes(),
                );
            }
            encode_name(out, &parse_name(f[3])?)
        }
        16 | 99 | 13 => encode_char_strings(out, t),
        _ => Err(WireError::Unencodable),
    }
}

/// Parses `"a" "b\034c"` (the decoder's output form) into character-strings.
fn encode_char_strings(out: &mut Vec<u8>, t: &str) -> Result<(), WireError> {
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        if b[i] != b'"' {
            return Err(WireError::Unencodable);
        }
        i += 1;
        let len_at = out.len();
        out.push(0);
        loop {
            let c = *b.get(i).ok_or(WireError::Unencodable)?;
            i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let n = *b.get(i).ok_or(WireError::Unencodable)?;
                    if n.is_ascii_digit() {
                        let d = b.get(i..i + 3).ok_or(WireError::Unencodable)?;
                        let s = std::str::from_utf8(d).map_err(|_| WireError::Unencodable)?;
                        out.push(s.parse::<u8>().map_err(|_| WireError::Unencodable)?);
                        i += 3;
                    } else {
                        out.push(n);
                        i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        let l = out.len() - len_at - 1;
        if l > 255 {
            return Err(WireError::Unencodable);
        }
        out[len_at] = l as u8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn decodes_query_and_response() {
        let q = Question::new(name("WWW.Example.com"), 1);
        let mut b = Vec::new();
        encode_query(&mut b, 0x1234, Flags(Flags::RD), &q).unwrap();
        let m = decode(&b).unwrap();
        assert_eq!(m.id(), 0x1234);
        assert!(!m.is_response());
        assert_eq!(m.qname.as_str(), "www.example.com");
        assert_eq!((m.qtype, m.qclass), (1, 1));
        assert_eq!(m.size as usize, b.len());
        assert_eq!(m.partial, None);

        let answers = vec![
            Answer {
                name: q.name.clone(),
                rtype: 5,
                ttl: 60,
                data: RData::Name(name("cdn.example.net")),
            },
            Answer {
                name: name("cdn.example.net"),
                rtype: 1,
                ttl: 20,
                data: RData::Addr("192.0.2.1".parse().unwrap()),
            },
            Answer {
                name: name("cdn.example.net"),
                rtype: 15,
                ttl: 20,
                data: RData::Text("10 mx.example".into()),
            },
            Answer {
                name: name("cdn.example.net"),
                rtype: 16,
                ttl: 20,
                data: RData::Text(r#""v=spf1 -all" "a\"b\\c\010""#.into()),
            },
            Answer {
                name: name("cdn.example.net"),
                rtype: 65,
                ttl: 20,
                data: RData::Text("\\# 3 010203".into()),
            },
        ];
        b.clear();
        encode_response(&mut b, 7, Flags(Flags::RD | Flags::RA), 3, &q, &answers).unwrap();
        let m = decode(&b).unwrap();
        assert!(m.is_response());
        assert_eq!(m.rcode, 3);
        assert_eq!(m.answers, answers);
        assert_eq!(m.header.flags, Flags(Flags::QR | Flags::RD | Flags::RA));
    }

    #[test]
    fn decode_expecting_skips_building_a_known_name() {
        let q = Question::new(name("a-rather-long-name.example.com"), 1);
        let ans = [Answer {
            name: q.name.clone(),
            rtype: 1,
            ttl: 5,
            data: RData::Addr("192.0.2.9".parse().unwrap()),
        }];
        let mut b = Vec::new();
        encode_response(&mut b, 3, Flags(0), 0, &q, &ans).unwrap();
        let mut d = Decoder::new();
        let (m, matched) = d.decode_expecting(&b, Some(&q.name)).unwrap();
        assert!(matched);
        assert!(m.qname.is_root());
        assert_eq!(m.answers, ans);
        let (m, matched) = d
            .decode_expecting(&b, Some(&name("other.example")))
            .unwrap();
        assert!(!matched);
        assert_eq!(m.qname, q.name);
    }

    #[test]
    fn extended_rcode_via_opt() {
        let q = Question::new(name("a.example"), 1);
        let mut b = Vec::new();
        encode_response(&mut b, 1, Flags(0), 23, &q, &[]).unwrap();
        let m = decode(&b).unwrap();
        assert_eq!(m.rcode, 23);
        let e = m.edns.unwrap();
        assert_eq!((e.udp_size, e.ext_rcode, e.options), (1232, 1, 0));
    }

    fn hdr(qd: u16, an: u16) -> Vec<u8> {
        let mut b = vec![0xab, 0xcd, 0x81, 0x80];
        for c in [qd, an, 0, 0] {
            b.extend_from_slice(&c.to_be_bytes());
        }
        b
    }

    #[test]
    fn compression_pointers() {
        // question "foo.example", answer name = pointer to question, CNAME target "www" + ptr
        let mut b = hdr(1, 1);
        b.extend_from_slice(b"\x03foo\x07example\x00\x00\x01\x00\x01");
        b.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 10, 0, 6]);
        b.extend_from_slice(&[3, b'w', b'w', b'w', 0xc0, 16]);
        let m = decode(&b).unwrap();
        assert_eq!(m.partial, None);
        assert_eq!(m.answers[0].name.as_str(), "foo.example");
        assert_eq!(m.answers[0].target().unwrap().as_str(), "www.example");
    }

    #[test]
    fn loops_and_bad_pointers_are_errors() {
        // qname is a pointer to itself
        let mut b = hdr(1, 0);
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(decode(&b), Err(WireError::CompressionLoop));
        assert_eq!(WireError::CompressionLoop.reason(), "dns.compression_loop");
        // two pointers pointing at each other
        let mut b = hdr(1, 0);
        b.extend_from_slice(&[1, b'a', 0xc0, 16, 0xc0, 14]);
        assert_eq!(decode(&b), Err(WireError::CompressionLoop));
        // pointer beyond the end
        let mut b = hdr(1, 0);
        b.extend_from_slice(&[0xc1, 0xff, 0, 1, 0, 1]);
        assert_eq!(decode(&b), Err(WireError::BadPointer));
        // label type 0x40
        let mut b = hdr(1, 0);
        b.extend_from_slice(&[0x41, 0, 0, 1, 0, 1]);
        assert_eq!(decode(&b), Err(WireError::BadLabel));
        // forward pointer is followed (bounded)
        let mut b = hdr(1, 0);
        b.extend_from_slice(&[0xc0, 18, 0, 1, 0, 1, 1, b'x', 0]);
        assert_eq!(decode(&b).unwrap().qname.as_str(), "x");
        assert_eq!(decode(&[0; 11]), Err(WireError::ShortHeader));
        let mut b = hdr(1, 0);
        b.extend_from_slice(&[3, b'a']);
        assert_eq!(decode(&b), Err(WireError::Truncated));
    }

    #[test]
    fn long_names_are_rejected() {
        let mut b = hdr(1, 0);
        for _ in 0..5 {
            b.push(63);
            b.extend_from_slice(&[b'a'; 63]);
        }
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(decode(&b), Err(WireError::NameTooLong));
    }

    #[test]
    fn broken_answer_section_is_partial() {
        let mut b = hdr(1, 2);
        b.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 1, 2, 3, 4]);
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 10, 0, 3, 1, 2, 3]);
        let m = decode(&b).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.partial, Some(WireError::BadRdata));
        b.truncate(b.len() - 5);
        assert_eq!(decode(&b).unwrap().partial, Some(WireError::Truncated));
    }

    #[test]
    fn hostile_bytes_are_escaped() {
        let mut b = hdr(1, 0);
        b.extend_from_slice(b"\x06<A\"\n.>\x03Com\x00\x00\x10\x00\x01");
        let m = decode(&b).unwrap();
        assert_eq!(m.qname.as_str(), "<a\\\"\\010\\.>.com");
        assert_eq!(m.qname, Name::from_labels([&b"<A\"\n.>"[..], b"Com"]));
    }

    fn arb_label() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(b'a'..=b'z', 1..20),
            proptest::collection::vec(any::<u8>(), 1..63)
        ]
    }

    fn arb_name() -> impl Strategy<Value = Name> {
        proptest::collection::vec(arb_label(), 0..4)
            .prop_map(|ls| Name::from_labels(ls.iter().map(|l| l.as_slice())))
    }

    fn arb_answer() -> impl Strategy<Value = Answer> {
        let data = prop_oneof![
            any::<[u8; 4]>().prop_map(|a| (1u16, RData::Addr(IpAddr::V4(a.into())))),
            any::<[u8; 16]>().prop_map(|a| (28u16, RData::Addr(IpAddr::V6(a.into())))),
            arb_name().prop_map(|n| (5u16, RData::Name(n))),
            (any::<u16>(), arb_name())
                .prop_map(|(p, n)| (15u16, RData::Text(text(format_args!("{p} {n}"))))),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..3)
                .prop_map(|ss| {
                    let mut s = String::new();
                    for (i, c) in ss.iter().enumerate() {
                        if i > 0 {
                            s.push(' ');
                        }
                        push_quoted(&mut s, c);
                    }
                    (16u16, RData::Text(s.into()))
                }),
            proptest::collection::vec(any::<u8>(), 0..30)
                .prop_map(|d| (999u16, RData::Text(generic_rdata(&d)))),
        ];
        (arb_name(), any::<u32>(), data).prop_map(|(name, ttl, (rtype, data))| Answer {
            name,
            rtype,
            ttl,
            data,
        })
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(qn in arb_name(), qtype in any::<u16>(), id in any::<u16>(), rcode in 0u16..4096,
                                   answers in proptest::collection::vec(arb_answer(), 0..6)) {
            let q = Question::new(qn.clone(), qtype);
            let mut b = Vec::new();
            if encode_query(&mut b, id, Flags(Flags::RD), &q).is_ok() {
                let m = decode(&b).unwrap();
                prop_assert_eq!(&m.qname, &qn);
                prop_assert_eq!(m.qtype, qtype);
                prop_assert!(!m.is_response());
            }
            b.clear();
            if encode_response(&mut b, id, Flags(Flags::RD | Flags::RA), rcode, &q, &answers).is_ok() {
                let m = decode(&b).unwrap();
                prop_assert_eq!(m.partial, None);
                prop_assert_eq!(m.id(), id);
                prop_assert_eq!(m.rcode, rcode);
                prop_assert_eq!(&m.qname, &qn);
                prop_assert_eq!(&m.answers, &answers);
            }
        }

        #[test]
        fn any_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut d = Decoder::new();
            if let Ok(m) = d.decode(&b) {
                prop_assert!(m.qname.as_str().bytes().all(|c| (0x21..=0x7e).contains(&c)));
            }
        }

        #[test]
        fn escaping_matches_name(labels in proptest::collection::vec(arb_label(), 1..4)) {
            let n = Name::from_labels(labels.iter().map(|l| l.as_slice()));
            let mut b = hdr(1, 0);
            b.truncate(12);
            if encode_name(&mut b, &n).is_ok() {
                b.extend_from_slice(&[0, 1, 0, 1]);
                prop_assert_eq!(decode(&b).unwrap().qname, n);
            }
        }
    }
}
