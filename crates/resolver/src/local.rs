//! Local records: names the resolver answers itself (AdGuard Home's "DNS rewrites", Pi-hole's
//! "local DNS records"), from the config and from hosts-style files.
//!
//! One line syntax for both places: a record `NAME [TTL] TYPE DATA` with TYPE one of A, AAAA,
//! CNAME, TXT (one or more `"quoted strings"`, or bare words) and PTR; or a hosts line
//! `ADDRESS NAME [NAME...]` (A or AAAA records for each name). `*.NAME` is a wildcard: every
//! name below NAME that has no records of its own (the longest wildcard wins); NAME itself is
//! not covered. `#` starts a comment. A line that cannot be used is counted (`rejected`) and
//! skipped; a file that cannot be read is an error (a reload then keeps the previous records).
//!
//! Answers: the records of the asked type; else a CNAME (followed through the local records,
//! up to 8 steps, the chain's records in the answer); else NOERROR with no records (NODATA) — a
//! local name is never forwarded. PTR records are generated for every A/AAAA of a non-wildcard
//! name (the first name given for an address wins) unless the reverse name has records of its
//! own. Answers are authoritative (AA) and carry the record's TTL (default [`LocalSpec::ttl`]).
//!
//! The set is part of the [`crate::policy::Policy`]: built with it, swapped with it on reload
//! (SIGHUP, file changes).

use crate::policy::text_to_wire;
use crate::wire::{self, Question};
use dnsight_model::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Where local records come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSpec {
    /// Record or hosts lines from the config.
    pub records: Vec<String>,
    /// Hosts-style files (the same line syntax), reloaded when they change.
    pub files: Vec<PathBuf>,
    /// TTL of records that give none (default 300).
    pub ttl: u32,
    /// Generate PTR records for A/AAAA (default true).
    pub ptr: bool,
}

impl LocalSpec {
    pub fn new() -> LocalSpec {
        LocalSpec {
            ttl: 300,
            ptr: true,
            ..Default::default()
        }
    }
}

/// One record: type, TTL, rdata (names in rdata uncompressed, lowercased).
type Rec = (u16, u32, Vec<u8>);

/// The records of one owner name.
#[derive(Debug, Default)]
struct Owner {
    recs: Vec<Rec>,
}

/// Built local records (see the module docs).
#[derive(Debug, Default)]
pub struct LocalRecords {
    /// Lowercased wire owner name → records.
    exact: HashMap<Box<[u8]>, Owner, foldhash::fast::RandomState>,
    /// `*.NAME`: NAME's lowercased wire form → records.
    wild: HashMap<Box<[u8]>, Owner, foldhash::fast::RandomState>,
    /// Lines that could not be used.
    pub rejected: u64,
    /// The first few rejected lines, as `source:line` (for messages).
    pub first_rejected: Vec<String>,
    /// (owner, address) of A/AAAA records in input order, for the generated PTR records.
    addrs: Vec<(Vec<u8>, IpAddr)>,
}

/// Parses one line; `Err(())` when it is not a usable record (blank/comment lines: Ok(empty)).
fn parse_line(line: &str, default_ttl: u32) -> Result<Vec<(String, Rec)>, ()> {
    let line = match line.find('#') {
        // a '#' inside a quoted TXT string is data
        Some(i) if !line[..i].contains('"') => &line[..i],
        _ => line,
    };
    let mut toks = line.split_whitespace();
    let Some(first) = toks.next() else {
        return Ok(Vec::new());
    };
    if let Ok(ip) = first.parse::<IpAddr>() {
        let (t, data) = match ip {
            IpAddr::V4(a) => (wire::TYPE_A, a.octets().to_vec()),
            IpAddr::V6(a) => (wire::TYPE_AAAA, a.octets().to_vec()),
        };
        let names: Vec<(String, Rec)> = toks
            .map(|n| (n.to_string(), (t, default_ttl, data.clone())))
            .collect();
        return if names.is_empty() { Err(()) } else { Ok(names) };
    }
    let name = first.to_string();
    let mut next = toks.next().ok_or(())?;
    let mut ttl = default_ttl;
    if let Ok(n) = next.parse::<u32>() {
        ttl = n;
        next = toks.next().ok_or(())?;
    }
    let rtype = dnsight_model::rtype_from_str(&next.to_ascii_uppercase()).ok_or(())?;
    // the data: the rest of the line after the type token (a subslice of `line`)
    let at = next.as_ptr() as usize - line.as_ptr() as usize + next.len();
    let rest = line.get(at..).unwrap_or_default().trim();
    let data = match rtype {
        wire::TYPE_A => rest
            .parse::<std::net::Ipv4Addr>()
            .map_err(|_| ())?
            .octets()
            .to_vec(),
        wire::TYPE_AAAA => rest
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| ())?
            .octets()
            .to_vec(),
        wire::TYPE_CNAME | wire::TYPE_PTR => {
            let mut w = Vec::new();
            if rest.split_whitespace().count() != 1 || !text_to_wire(rest, &mut w) {
                return Err(());
            }
            w
        }
        wire::TYPE_TXT => txt_rdata(rest)?,
        _ => return Err(()),
    };
    Ok(vec![(name, (rtype, ttl, data))])
}

/// TXT rdata from `"quoted strings"` (`\"` and `\\` escaped) or bare words; strings longer
/// than 255 bytes are split.
fn txt_rdata(s: &str) -> Result<Vec<u8>, ()> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut cur = Vec::new();
        if b[i] == b'"' {
            i += 1;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        cur.push(b[i + 1]);
                        i += 2;
                    }
                    b'"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        cur.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err(());
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                cur.push(b[i]);
                i += 1;
            }
        }
        parts.push(cur);
    }
    if parts.is_empty() {
        return Err(());
    }
    let mut out = Vec::new();
    for p in parts {
        if p.is_empty() {
            out.push(0);
        }
        for chunk in p.chunks(255) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
    }
    if out.len() > 65535 {
        return Err(());
    }
    Ok(out)
}

/// Checks one config line: an error that says the syntax when it is not a usable record.
pub fn check_line(line: &str) -> Result<(), String> {
    let mut l = LocalRecords::default();
    if l.add_line(line, 300) {
        Ok(())
    } else {
        Err(format!("{line:?} is not a local record: use `NAME [TTL] TYPE DATA` with TYPE A, AAAA, CNAME, TXT or PTR (e.g. \"nas.office.example A 10.0.0.5\", \"*.dev.office.example A 10.0.0.9\") or a hosts line `ADDRESS NAME...`"))
    }
}

impl LocalRecords {
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wild.is_empty()
    }
    /// Owner names held (wildcards included).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wild.len()
    }

    /// Reads the config lines and the files. An unreadable file is an error; bad lines are
    /// counted in `rejected`.
    pub fn build(spec: &LocalSpec) -> Result<LocalRecords, String> {
        let mut texts: Vec<(String, String)> = vec![("config".into(), spec.records.join("\n"))];
        for f in &spec.files {
            let b =
                std::fs::read(f).map_err(|e| format!("local records file {}: {e}", f.display()))?;
            texts.push((
                f.display().to_string(),
                String::from_utf8_lossy(&b).into_owned(),
            ));
        }
        let mut l = LocalRecords::default();
        for (src, text) in &texts {
            for (n, line) in text.lines().enumerate() {
                if !l.add_line(line, spec.ttl) {
                    l.rejected += 1;
                    if l.first_rejected.len() < 5 {
                        l.first_rejected.push(format!("{src}:{}", n + 1));
                    }
                }
            }
        }
        if spec.ptr {
            l.generate_ptr(spec.ttl);
        }
        l.addrs = Vec::new();
        Ok(l)
    }

    /// Adds one line; false when it is not usable.
    fn add_line(&mut self, line: &str, ttl: u32) -> bool {
        let Ok(recs) = parse_line(line, ttl) else {
            return false;
        };
        let mut w = Vec::new();
        for (name, rec) in recs {
            let (wild, n) = match name.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, name.as_str()),
            };
            if !text_to_wire(n, &mut w) {
                return false;
            }
            if !wild {
                match (rec.0, rec.2.len()) {
                    (wire::TYPE_A, 4) => {
                        let a: [u8; 4] = rec.2[..].try_into().expect("4 bytes");
                        self.addrs.push((w.clone(), IpAddr::from(a)));
                    }
                    (wire::TYPE_AAAA, 16) => {
                        let a: [u8; 16] = rec.2[..].try_into().expect("16 bytes");
                        self.addrs.push((w.clone(), IpAddr::from(a)));
                    }
                    _ => {}
                }
            }
            let map = if wild {
                &mut self.wild
            } else {
                &mut self.exact
            };
            let o = map.entry(w.clone().into_boxed_slice()).or_default();
            if !o.recs.contains(&rec) {
                o.recs.push(rec);
            }
        }
        true
    }

    /// PTR records for every A/AAAA address (the first name given for it wins), except for
    /// reverse names that have a PTR of their own.
    fn generate_ptr(&mut self, ttl: u32) {
        let addrs = std::mem::take(&mut self.addrs);
        let mut done: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        let mut w = Vec::new();
        for (name, ip) in addrs {
            let rev = crate::route::reverse_zones(&Cidr::host(ip));
            if rev.len() != 1 || !text_to_wire(&rev[0], &mut w) || done.contains(&w) {
                continue;
            }
            done.insert(w.clone());
            let o = self.exact.entry(w.clone().into_boxed_slice()).or_default();
            if !o.recs.iter().any(|r| r.0 == wire::TYPE_PTR) {
                o.recs.push((wire::TYPE_PTR, ttl, name));
            }
        }
    }

    /// The records of a lowercased wire name: its own, else the longest wildcard above it.
    fn owner(&self, name: &[u8]) -> Option<&Owner> {
        if let Some(o) = self.exact.get(name) {
            return Some(o);
        }
        if self.wild.is_empty() {
            return None;
        }
        let mut i = 0;
        for _ in 0..128 {
            let len = *name.get(i)? as usize;
            if len == 0 {
                return None;
            }
            i += 1 + len;
            if let Some(o) = self.wild.get(name.get(i..)?) {
                return Some(o);
            }
        }
        None
    }

    /// Answers a question for a local name into `out` (true), or false when the name is not
    /// local (then the query goes on to the lists, the cache and upstream).
    pub fn answer(&self, name: &[u8], query: &[u8], q: &Question, out: &mut Vec<u8>) -> bool {
        let Some(first) = self.owner(name) else {
            return false;
        };
        let mut recs: Vec<wire::Record> = Vec::new();
        let mut owner: Option<&[u8]> = None;
        let mut seen: smallvec::SmallVec<[&[u8]; 8]> = smallvec::smallvec![name];
        let mut o = first;
        for _ in 0..8 {
            let want: Vec<&Rec> = o
                .recs
                .iter()
                .filter(|r| r.0 == q.qtype || q.qtype == wire::TYPE_ANY)
                .collect();
            if !want.is_empty() {
                recs.extend(want.iter().map(|r| (owner, r.0, r.1, &r.2[..])));
                break;
            }
            let Some(c) = o.recs.iter().find(|r| r.0 == wire::TYPE_CNAME) else {
                break;
            };
            recs.push((owner, c.0, c.1, &c.2[..]));
            match self.owner(&c.2) {
                Some(next) if !seen.contains(&&c.2[..]) => {
                    seen.push(&c.2[..]);
                    owner = Some(&c.2[..]);
                    o = next;
                }
                _ => break,
            }
        }
        wire::build_records(out, query, q, true, &recs);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(lines: &[&str]) -> LocalRecords {
        let mut s = LocalSpec::new();
        s.records = lines.iter().map(|l| l.to_string()).collect();
        LocalRecords::build(&s).unwrap()
    }

    fn ask(l: &LocalRecords, name: &str, qtype: u16) -> Option<Vec<dnsight_model::Answer>> {
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for lab in name.split('.') {
            q.push(lab.len() as u8);
            q.extend_from_slice(lab.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        let mut key = Vec::new();
        let pq = wire::parse_query(&q, &mut key).unwrap();
        let mut out = Vec::new();
        if !l.answer(wire::key_name(&key), &q, &pq, &mut out) {
            return None;
        }
        assert_eq!(out[2] & 0x04, 0x04, "AA");
        let mut a = Vec::new();
        wire::decode_answers(&out, &mut a);
        Some(a)
    }

    fn data(a: &[dnsight_model::Answer]) -> Vec<String> {
        a.iter()
            .map(|x| match &x.data {
                dnsight_model::RData::Addr(a) => a.to_string(),
                dnsight_model::RData::Name(n) => n.as_str().to_string(),
                dnsight_model::RData::Text(t) => t.to_string(),
            })
            .collect()
    }

    #[test]
    fn records_wildcards_cnames_and_generated_ptr() {
        let l = build(&[
            "# office names",
            "nas.office.example A 10.0.0.5",
            "nas.office.example 60 AAAA fd00::5",
            "10.0.0.6 printer.office.example printer2.office.example",
            "*.dev.office.example A 10.0.0.9",
            "wiki.office.example CNAME nas.office.example",
            "ext.office.example CNAME www.example.net.",
            "office.example TXT \"v=spf1 -all\" \"two # words\"",
            "5.0.0.10.in-addr.arpa PTR storage.office.example",
            "bad line",
            "x.example A 999.1.1.1",
            "x.example MX 10 mail.example",
        ]);
        assert_eq!(l.rejected, 3, "{:?}", l.first_rejected);
        assert_eq!(
            data(&ask(&l, "NAS.office.example", 1).unwrap()),
            ["10.0.0.5"]
        );
        let v6 = ask(&l, "nas.office.example", 28).unwrap();
        assert_eq!((data(&v6), v6[0].ttl), (vec!["fd00::5".to_string()], 60));
        assert_eq!(
            data(&ask(&l, "printer2.office.example", 1).unwrap()),
            ["10.0.0.6"]
        );
        // a local name without the type: NODATA, not forwarded
        assert_eq!(ask(&l, "printer.office.example", 28).unwrap().len(), 0);
        assert_eq!(
            data(&ask(&l, "a.b.dev.office.example", 1).unwrap()),
            ["10.0.0.9"]
        );
        assert!(ask(&l, "dev.office.example", 1).is_none());
        assert!(ask(&l, "other.office.example", 1).is_none());
        // CNAME followed locally; a target elsewhere is the CNAME alone
        let w = ask(&l, "wiki.office.example", 1).unwrap();
        assert_eq!(data(&w), ["nas.office.example", "10.0.0.5"]);
        assert_eq!(w[1].name.as_str(), "nas.office.example");
        assert_eq!(
            data(&ask(&l, "ext.office.example", 1).unwrap()),
            ["www.example.net"]
        );
        let txt = ask(&l, "office.example", 16).unwrap();
        assert_eq!(txt.len(), 1);
        // generated PTR, and a PTR given explicitly wins
        assert_eq!(
            data(&ask(&l, "6.0.0.10.in-addr.arpa", 12).unwrap()),
            ["printer.office.example"]
        );
        assert_eq!(
            data(&ask(&l, "5.0.0.10.in-addr.arpa", 12).unwrap()),
            ["storage.office.example"]
        );
        let rev6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(data(&ask(&l, rev6, 12).unwrap()), ["nas.office.example"]);
    }

    #[test]
    fn cname_loops_end() {
        let l = build(&["a.example CNAME b.example", "b.example CNAME a.example"]);
        assert_eq!(ask(&l, "a.example", 1).unwrap().len(), 2);
    }

    #[test]
    fn txt_strings() {
        assert_eq!(txt_rdata("\"a b\" c").unwrap(), b"\x03a b\x01c".to_vec());
        assert_eq!(txt_rdata("\"q\\\"x\"").unwrap(), b"\x03q\"x".to_vec());
        assert!(txt_rdata("\"open").is_err());
        let long = "x".repeat(300);
        assert_eq!(txt_rdata(&long).unwrap().len(), 302);
    }
}
