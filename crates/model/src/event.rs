//! The normalized DNS transaction event and its JSON-lines schema.

use crate::{name::Name, rr, time::Ts};
use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::{IpAddr, Ipv4Addr};

/// Transport the DNS message travelled over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    /// DNS over TLS.
    Dot,
    /// DNS over HTTPS.
    Doh,
    /// DNS over QUIC.
    Doq,
    Unknown,
}

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Pcap,
    Live,
    Dnstap,
    Zeek,
    Jsonl,
    Resolver,
    Sim,
    /// A third-party query log (BIND, Unbound, dnsmasq, Route 53, Windows DNS, ...).
    Log,
}

impl Transport {
    /// Every value, in declaration order: `v as usize` is its position here. Stored as that position by the query log: append new values, never reorder.
    pub const ALL: [Transport; 6] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Dot,
        Transport::Doh,
        Transport::Doq,
        Transport::Unknown,
    ];

    /// The name used in JSON (serde), metrics labels and the query log.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Dot => "dot",
            Transport::Doh => "doh",
            Transport::Doq => "doq",
            Transport::Unknown => "unknown",
        }
    }
}

impl Source {
    /// Every value, in declaration order: `v as usize` is its position here. Stored as that position by the query log: append new values, never reorder.
    pub const ALL: [Source; 8] = [
        Source::Pcap,
        Source::Live,
        Source::Dnstap,
        Source::Zeek,
        Source::Jsonl,
        Source::Resolver,
        Source::Sim,
        Source::Log,
    ];

    /// The name used in JSON (serde), metrics labels and the query log.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pcap => "pcap",
            Source::Live => "live",
            Source::Dnstap => "dnstap",
            Source::Zeek => "zeek",
            Source::Jsonl => "jsonl",
            Source::Resolver => "resolver",
            Source::Sim => "sim",
            Source::Log => "log",
        }
    }
}

/// DNS header flags (the 16-bit header word without opcode and rcode), taken from the
/// response when there is one, else from the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    const NAMES: [(u16, &'static str); 7] = [
        (Self::QR, "qr"),
        (Self::AA, "aa"),
        (Self::TC, "tc"),
        (Self::RD, "rd"),
        (Self::RA, "ra"),
        (Self::AD, "ad"),
        (Self::CD, "cd"),
    ];
    /// Keeps only the flag bits of a raw header word.
    pub fn from_header(word: u16) -> Flags {
        Flags(word & (Self::QR | Self::AA | Self::TC | Self::RD | Self::RA | Self::AD | Self::CD))
    }
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for (bit, name) in Self::NAMES {
            if self.has(bit) {
                seq.serialize_element(name)?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<CompactString>::deserialize(d)?;
        let mut v = 0;
        for n in names {
            match Self::NAMES.iter().find(|(_, s)| n.eq_ignore_ascii_case(s)) {
                Some((bit, _)) => v |= bit,
                None => return Err(serde::de::Error::custom(format!("unknown flag {n:?}"))),
            }
        }
        Ok(Flags(v))
    }
}

/// Record data of an answer, in the form the engine needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RData {
    /// A or AAAA.
    Addr(IpAddr),
    /// CNAME, DNAME, NS, PTR: the target name.
    Name(Name),
    /// Anything else, in escaped presentation text (printable ASCII only).
    Text(CompactString),
}

/// One resource record from the answer section.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Answer {
    pub name: Name,
    pub rtype: u16,
    pub ttl: u32,
    pub data: RData,
}

impl Answer {
    pub fn addr(&self) -> Option<IpAddr> {
        match self.data {
            RData::Addr(a) => Some(a),
            _ => None,
        }
    }
    pub fn target(&self) -> Option<&Name> {
        match &self.data {
            RData::Name(n) => Some(n),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct AnswerRepr<'a> {
    name: Name,
    #[serde(rename = "type")]
    rtype: std::borrow::Cow<'a, str>,
    ttl: u32,
    data: std::borrow::Cow<'a, str>,
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let data: std::borrow::Cow<str> = match &self.data {
            RData::Addr(a) => a.to_string().into(),
            RData::Name(n) => n.as_str().into(),
            RData::Text(t) => t.as_str().into(),
        };
        AnswerRepr {
            name: self.name.clone(),
            rtype: rr::rtype_to_str(self.rtype),
            ttl: self.ttl,
            data,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = AnswerRepr::deserialize(d)?;
        let rtype = rr::rtype_from_str(&r.rtype).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown record type {:?}", r.rtype))
        })?;
        let data = match rtype {
            1 | 28 => RData::Addr(
                r.data
                    .parse()
                    .map_err(|_| serde::de::Error::custom(format!("bad address {:?}", r.data)))?,
            ),
            2 | 5 | 12 | 39 => RData::Name(Name::parse_lenient(&r.data)),
            _ => RData::Text(escape_text(&r.data)),
        };
        Ok(Answer {
            name: r.name,
            rtype,
            ttl: r.ttl,
            data,
        })
    }
}

/// Escapes any text into printable ASCII (bytes outside `!`..`~` other than space become `\DDD`).
pub fn escape_text(s: &str) -> CompactString {
    let mut out = CompactString::default();
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) {
            out.push(b as char);
        } else {
            out.push('\\');
            out.push((b'0' + b / 100) as char);
            out.push((b'0' + (b / 10) % 10) as char);
            out.push((b'0' + b % 10) as char);
        }
    }
    out
}

/// What the resolver did with a query (only set on events from `dnsight serve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictAction {
    Forwarded,
    Cached,
    Blocked,
    Refused,
    RateLimited,
    Failed,
    /// Answered from the resolver's own local records (never forwarded).
    Local,
}

impl VerdictAction {
    /// Every value, in declaration order: `v as usize` is its position here. Stored as that position by the query log: append new values, never reorder.
    pub const ALL: [VerdictAction; 7] = [
        VerdictAction::Forwarded,
        VerdictAction::Cached,
        VerdictAction::Blocked,
        VerdictAction::Refused,
        VerdictAction::RateLimited,
        VerdictAction::Failed,
        VerdictAction::Local,
    ];

    /// The name used in JSON (serde), metrics labels and the query log.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictAction::Forwarded => "forwarded",
            VerdictAction::Cached => "cached",
            VerdictAction::Blocked => "blocked",
            VerdictAction::Refused => "refused",
            VerdictAction::RateLimited => "rate_limited",
            VerdictAction::Failed => "failed",
            VerdictAction::Local => "local",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Verdict {
    pub action: VerdictAction,
    /// The list or rule that decided, e.g. `blocklist:ads.txt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<CompactString>,
}

/// One DNS transaction: a query and its response, paired. Either side may be missing: a query
/// unanswered within the pairing timeout has `rcode == None`; a response seen without its
/// query has `query_size == None`.
///
/// Serialised as one JSON object per line (dnsight's event schema, see README):
/// `{"ts":"2026-11-29T02:27:29.123456Z","client":"10.0.0.5","client_port":51000,
///   "server":"10.0.0.1","server_port":53,"transport":"udp","id":4660,"qname":"example.com",
///   "qtype":"A","qclass":"IN","opcode":0,"rcode":"NOERROR","flags":["qr","rd","ra"],
///   "answers":[{"name":"example.com","type":"A","ttl":300,"data":"93.184.216.34"}],
///   "query_size":29,"response_size":45,"rtt_us":1200,"source":"pcap"}`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsEvent {
    /// Time of the query (or of the response when the query was not seen).
    pub ts: Ts,
    pub client: IpAddr,
    #[serde(default)]
    pub client_port: u16,
    #[serde(default = "unspecified")]
    pub server: IpAddr,
    #[serde(default)]
    pub server_port: u16,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default)]
    pub id: u16,
    pub qname: Name,
    #[serde(with = "rtype_serde", default = "default_qtype")]
    pub qtype: u16,
    #[serde(with = "class_serde", default = "default_class")]
    pub qclass: u16,
    #[serde(default)]
    pub opcode: u8,
    /// Response code; None when no response was seen.
    #[serde(with = "rcode_serde", default)]
    pub rcode: Option<u16>,
    #[serde(default)]
    pub flags: Flags,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<Answer>,
    /// Size of the query message in bytes, None when the query was not seen.
    #[serde(default)]
    pub query_size: Option<u32>,
    /// Size of the response message in bytes, None when no response was seen.
    #[serde(default)]
    pub response_size: Option<u32>,
    /// Response time in microseconds when both sides were seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u32>,
    #[serde(default)]
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

fn unspecified() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}
fn default_qtype() -> u16 {
    1
}
fn default_class() -> u16 {
    1
}

impl DnsEvent {
    /// A minimal event (query and NOERROR response), convenient for tests and simulators.
    pub fn new(ts: Ts, client: IpAddr, qname: Name, qtype: u16) -> DnsEvent {
        DnsEvent {
            ts,
            client,
            client_port: 0,
            server: unspecified(),
            server_port: 53,
            transport: Transport::Udp,
            id: 0,
            qname,
            qtype,
            qclass: 1,
            opcode: 0,
            rcode: Some(rr::RCODE_NOERROR),
            flags: Flags(Flags::QR | Flags::RD | Flags::RA),
            answers: Vec::new(),
            query_size: None,
            response_size: None,
            rtt_us: None,
            source: Source::Sim,
            verdict: None,
        }
    }
    pub fn has_response(&self) -> bool {
        self.rcode.is_some()
    }
    pub fn has_query(&self) -> bool {
        self.query_size.is_some()
    }
    pub fn is_nxdomain(&self) -> bool {
        self.rcode == Some(rr::RCODE_NXDOMAIN)
    }
    /// Serialises to one JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("DnsEvent serialises")
    }
}

mod rtype_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &u16, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::rr::rtype_to_str(*t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        let v = super::StrOrNum::deserialize(d)?;
        match v {
            super::StrOrNum::Num(n) => u16::try_from(n).map_err(serde::de::Error::custom),
            super::StrOrNum::Str(s) => crate::rr::rtype_from_str(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown qtype {s:?}"))),
        }
    }
}

mod class_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    const CLASSES: &[(u16, &str)] = &[(1, "IN"), (3, "CH"), (4, "HS"), (254, "NONE"), (255, "ANY")];
    pub fn serialize<S: Serializer>(c: &u16, s: S) -> Result<S::Ok, S::Error> {
        match CLASSES.iter().find(|(n, _)| n == c) {
            Some((_, m)) => s.serialize_str(m),
            None => s.serialize_str(&format!("CLASS{c}")),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        match super::StrOrNum::deserialize(d)? {
            super::StrOrNum::Num(n) => u16::try_from(n).map_err(serde::de::Error::custom),
            super::StrOrNum::Str(s) => {
                if let Some((n, _)) = CLASSES.iter().find(|(_, m)| m.eq_ignore_ascii_case(&s)) {
                    return Ok(*n);
                }
                let digits = s.strip_prefix("CLASS").unwrap_or(&s);
                digits
                    .parse()
                    .map_err(|_| serde::de::Error::custom(format!("unknown class {s:?}")))
            }
        }
    }
}

mod rcode_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(r: &Option<u16>, s: S) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => s.serialize_str(&crate::rr::rcode_to_str(*r)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        match Option::<super::StrOrNum>::deserialize(d)? {
            None => Ok(None),
            Some(super::StrOrNum::Num(n)) => {
                u16::try_from(n).map(Some).map_err(serde::de::Error::custom)
            }
            Some(super::StrOrNum::Str(s)) => crate::rr::rcode_from_str(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown rcode {s:?}"))),
        }
    }
}

enum StrOrNum {
    Num(u64),
    Str(CompactString),
}

impl<'de> Deserialize<'de> for StrOrNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Hand-written: an untagged enum would buffer every value first.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StrOrNum;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mnemonic or a number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StrOrNum, E> {
                Ok(StrOrNum::Num(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StrOrNum, E> {
                u64::try_from(v)
                    .map(StrOrNum::Num)
                    .map_err(|_| E::custom("negative number"))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<StrOrNum, E> {
                Ok(StrOrNum::Str(CompactString::from(s)))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_names_and_all_is_in_declaration_order() {
        fn check<T: Serialize + Copy>(all: &[T], name: fn(T) -> &'static str, pos: fn(T) -> usize) {
            for (i, v) in all.iter().enumerate() {
                assert_eq!(serde_json::to_value(v).unwrap(), name(*v));
                assert_eq!(pos(*v), i);
            }
        }
        check(&Source::ALL, Source::as_str, |v| v as usize);
        check(&Transport::ALL, Transport::as_str, |v| v as usize);
        check(&VerdictAction::ALL, VerdictAction::as_str, |v| v as usize);
    }

    fn sample() -> DnsEvent {
        let mut e = DnsEvent::new(
            Ts(1_764_383_249_123_456),
            "10.0.0.5".parse().unwrap(),
            Name::parse("Example.com").unwrap(),
            1,
        );
        e.answers.push(Answer {
            name: e.qname.clone(),
            rtype: 5,
            ttl: 60,
            data: RData::Name(Name::parse("cdn.example.net").unwrap()),
        });
        e.answers.push(Answer {
            name: Name::parse("cdn.example.net").unwrap(),
            rtype: 1,
            ttl: 20,
            data: RData::Addr("93.184.216.34".parse().unwrap()),
        });
        e.answers.push(Answer {
            name: e.qname.clone(),
            rtype: 16,
            ttl: 20,
            data: RData::Text(escape_text("\"v=spf1\" \n")),
        });
        e.query_size = Some(29);
        e.response_size = Some(80);
        e.source = Source::Pcap;
        e
    }

    #[test]
    fn json_roundtrip() {
        let e = sample();
        let line = e.to_json_line();
        assert!(line.contains(r#""qtype":"A""#), "{line}");
        assert!(line.contains(r#""rcode":"NOERROR""#), "{line}");
        assert!(line.contains(r#""flags":["qr","rd","ra"]"#), "{line}");
        assert!(!line.contains('\n'));
        let back: DnsEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn minimal_json_accepted() {
        let e: DnsEvent =
            serde_json::from_str(r#"{"ts":1764383249,"client":"::1","qname":"A.B"}"#).unwrap();
        assert_eq!(e.qname.as_str(), "a.b");
        assert_eq!(e.qtype, 1);
        assert_eq!(e.rcode, None);
        assert!(serde_json::from_str::<DnsEvent>(r#"{"ts":1,"client":"x","qname":"a"}"#).is_err());
        let e: DnsEvent =
            serde_json::from_str(r#"{"ts":"2026-11-29T00:00:00Z","client":"10.0.0.1","qname":"a","qtype":28,"rcode":null}"#)
                .unwrap();
        assert_eq!((e.qtype, e.rcode, e.ts.secs()), (28, None, 1_795_910_400));
        let e: DnsEvent =
            serde_json::from_str(r#"{"ts":5,"client":"10.0.0.1","qname":"a","rcode":3}"#).unwrap();
        assert!(e.is_nxdomain());
        assert!(serde_json::from_str::<DnsEvent>(
            r#"{"ts":1e300,"client":"10.0.0.1","qname":"a"}"#
        )
        .is_err());
    }
}
