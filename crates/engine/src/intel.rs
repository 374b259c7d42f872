//! Threat-intel feeds: attacker-infrastructure domains and addresses, each from a named feed.
//!
//! Formats are read by the parser the resolver's lists use too ([`dnsight_model::listfmt`]), so
//! a feed and a block list made of the same file cover the same names: plain domain and hosts
//! lines (`0.0.0.0 evil.example`) are the name and every name below it, `*.evil.example` only
//! the names below it, adblock `||evil.example^` the name and every name below, RPZ zones
//! (`evil.example CNAME .` exact, `*.evil.example` below, `32.4.3.2.1.rpz-ip` an address block),
//! and IP/CIDR lists. Exceptions (`@@||…^`, RPZ passthru) are not indicators. CSV feeds (one
//! chosen column, by 1-based number or header name; abuse.ch exports with their header in a
//! `#` comment line work) and JSON-lines feeds (one chosen field, dotted for nested objects) are
//! read here: each value is one indicator, read by the same line parser (`ip:port` values are
//! the address; URLs are rejected, because the host of a malware URL is often a shared site).
//! Each feed may carry a category and a severity that its alerts take. The engine
//! matches the qname, every CNAME target in the answer chain and every answer address. An [`IntelSet`] is immutable once built and shared behind an
//! `Arc`, so the binary can rebuild it from the files and swap it in (`Engine::set_intel`)
//! without a restart. Unparseable lines are counted per feed and skipped.

use crate::alert::Severity;
use crate::net::{Cidr, CidrSet};
use crate::suffix::{next_parent, SuffixMap};
use compact_str::CompactString;
use dnsight_model::listfmt::{self, Target};
use dnsight_model::Ts;
use std::net::IpAddr;

/// Feed file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Auto,
    Plain,
    Hosts,
    Adblock,
    Rpz,
    Ip,
    /// Comma-separated values, one column holding the indicator ([`FeedSpec::column`]).
    Csv,
    /// One JSON object a line, one field holding the indicator ([`FeedSpec::field`]).
    Jsonl,
}

impl Format {
    /// The shared parser's format (plain, hosts and adblock lines are read per line alike).
    fn listfmt(self) -> listfmt::Format {
        match self {
            Format::Auto => listfmt::Format::Auto,
            Format::Plain | Format::Hosts | Format::Adblock | Format::Csv | Format::Jsonl => {
                listfmt::Format::Lines
            }
            Format::Rpz => listfmt::Format::Rpz,
            Format::Ip => listfmt::Format::Ip,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Plain => "plain",
            Format::Hosts => "hosts",
            Format::Adblock => "adblock",
            Format::Rpz => "rpz",
            Format::Ip => "ip",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "plain" | "domains" => Format::Plain,
            "hosts" => Format::Hosts,
            "adblock" => Format::Adblock,
            "rpz" => Format::Rpz,
            "ip" | "ips" | "cidr" => Format::Ip,
            "csv" => Format::Csv,
            "jsonl" | "json-lines" | "ndjson" => Format::Jsonl,
            _ => return None,
        })
    }
}

/// The column of a CSV feed that holds the indicator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// 1-based column number.
    Index(usize),
    /// A header name (the first data line, or the last `#` comment line before the data).
    Name(String),
}

/// JSON fields tried, in order, when a JSON-lines feed names none.
pub const DEFAULT_FIELDS: &[&str] = &["ioc_value", "indicator", "ioc", "domain", "host", "ip"];

/// How to read one feed and what its alerts say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedSpec {
    pub format: Format,
    /// CSV: the indicator column (required for CSV).
    pub column: Option<Column>,
    /// JSON lines: the indicator field, dotted for nested objects (default: [`DEFAULT_FIELDS`]).
    pub field: Option<String>,
    /// Entries after this event time no longer match.
    pub expires: Option<Ts>,
    /// What the feed lists (e.g. `c2`, `phishing`), shown in alerts.
    pub category: Option<CompactString>,
    /// The severity its alerts take (default: by what matched and whether it resolved).
    pub severity: Option<Severity>,
}

/// Counts of reading one feed's text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseCounts {
    pub entries: u64,
    pub rejected: u64,
    /// The format actually read (`auto` resolved).
    pub format: &'static str,
    /// Why nothing could be read, when that is known (e.g. a CSV column not in the header).
    pub note: Option<String>,
}

/// Reads a feed's text with `spec`, calling `f` with every entry (its `line` is the line of
/// the file). Hostile text is counted as rejected, never a panic.
pub fn parse_feed(
    text: &str,
    spec: &FeedSpec,
    mut f: impl FnMut(listfmt::Entry<'_>),
) -> ParseCounts {
    let format = match spec.format {
        Format::Auto if first_data_line(text).is_some_and(|l| l.starts_with('{')) => Format::Jsonl,
        f => f,
    };
    let mut out = ParseCounts {
        format: format.as_str(),
        ..ParseCounts::default()
    };
    let mut value = |v: &str, line: u32, out: &mut ParseCounts| {
        let Some(v) = indicator_value(v) else {
            out.rejected += 1;
            return;
        };
        let c = listfmt::parse(v, listfmt::Format::Lines, |mut e| {
            e.line = line;
            f(e)
        });
        out.entries += c.entries;
        out.rejected += c.rejected;
    };
    match format {
        Format::Csv => {
            let Some(col) = &spec.column else {
                out.note =
                    Some("a CSV feed needs `column` (a number from 1 or a header name)".into());
                out.rejected = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
                return out;
            };
            let mut idx = match col {
                Column::Index(i) => Some(i.saturating_sub(1)),
                Column::Name(_) => None,
            };
            let mut last_comment: Option<&str> = None;
            for (i, raw) in text.lines().enumerate() {
                let line = raw.trim();
                if line.is_empty() {
                    continue;
                }
                if let Some(c) = line.strip_prefix('#') {
                    last_comment = Some(c);
                    continue;
                }
                let fields = csv_fields(line);
                if let (None, Column::Name(name)) = (idx, col) {
                    let find =
                        |fs: &[String]| fs.iter().position(|x| x.trim().eq_ignore_ascii_case(name));
                    if let Some(p) = find(&fields) {
                        idx = Some(p); // this line is the header
                        continue;
                    }
                    match last_comment
                        .map(|c| csv_fields(c.trim()))
                        .and_then(|h| find(&h))
                    {
                        Some(p) => idx = Some(p),
                        None => {
                            out.note = Some(format!("CSV column {name:?} is not in the header"));
                            out.rejected = text
                                .lines()
                                .skip(i)
                                .filter(|l| {
                                    !l.trim().is_empty() && !l.trim_start().starts_with('#')
                                })
                                .count() as u64;
                            return out;
                        }
                    }
                }
                let at = idx.expect("set above");
                match fields.get(at) {
                    Some(v) => value(v, i as u32 + 1, &mut out),
                    None => out.rejected += 1,
                }
            }
        }
        Format::Jsonl => {
            for (i, raw) in text.lines().enumerate() {
                let line = raw.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let n = i as u32 + 1;
                let Ok(serde_json::Value::Object(obj)) =
                    serde_json::from_str::<serde_json::Value>(line)
                else {
                    out.rejected += 1;
                    continue;
                };
                let get = |path: &str| {
                    let mut parts = path.split('.');
                    let mut v = obj.get(parts.next()?)?;
                    for p in parts {
                        v = v.get(p)?;
                    }
                    Some(v)
                };
                let v = match &spec.field {
                    Some(fl) => get(fl),
                    None => DEFAULT_FIELDS.iter().find_map(|fl| get(fl)),
                };
                match v {
                    Some(serde_json::Value::String(s)) => value(s, n, &mut out),
                    Some(serde_json::Value::Array(a)) if !a.is_empty() => {
                        for x in a.iter().take(64) {
                            match x.as_str() {
                                Some(s) => value(s, n, &mut out),
                                None => out.rejected += 1,
                            }
                        }
                    }
                    _ => out.rejected += 1,
                }
            }
        }
        _ => {
            let c = listfmt::parse(text, format.listfmt(), f);
            out.entries = c.entries;
            out.rejected = c.rejected;
            if format == Format::Auto {
                out.format = match c.format {
                    listfmt::Format::Rpz => "rpz",
                    _ => "lines",
                };
            }
        }
    }
    out
}

/// The first line that is not empty or a comment.
fn first_data_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| {
        !l.is_empty() && !l.starts_with('#') && !l.starts_with('!') && !l.starts_with(';')
    })
}

/// One CSV/JSON value as an indicator: trimmed, `ip:port` and `[v6]:port` as the address,
/// `name:port` as the name; URLs and values with spaces are not indicators.
fn indicator_value(v: &str) -> Option<&str> {
    let v = v.trim();
    if v.is_empty() || v.contains("://") || v.contains(char::is_whitespace) {
        return None;
    }
    if let Some(r) = v.strip_prefix('[') {
        return r.split_once(']').map(|(a, _)| a);
    }
    match v.rsplit_once(':') {
        Some((h, p))
            if !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(h)
        }
        _ => Some(v),
    }
}

/// Splits one CSV line (RFC 4180 quotes, `""` inside quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// What `intel check` asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// A lowercased domain name.
    Name(String),
    Addr(IpAddr),
}

impl Query {
    pub fn parse(s: &str) -> Option<Query> {
        if let Ok(ip) = s.trim().parse::<IpAddr>() {
            return Some(Query::Addr(ip));
        }
        let n = dnsight_model::Name::parse(s.trim()).ok()?;
        Some(Query::Name(n.as_str().to_ascii_lowercase()))
    }
}

/// Every entry of one feed's text that covers `q` (at most `limit`): (line, indicator). The
/// same reading as the engine's matcher, by a scan: for `dnsight intel check`, not the hot path.
pub fn find_in_feed(text: &str, spec: &FeedSpec, q: &Query, limit: usize) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    parse_feed(text, spec, |e| {
        if e.exception || out.len() >= limit {
            return;
        }
        match (&e.target, q) {
            (Target::Net(c), Query::Addr(ip)) if c.contains(*ip) => {
                out.push((e.line, c.to_string()))
            }
            (Target::Name(n), Query::Name(q)) => {
                let n = n.to_ascii_lowercase();
                let below = q.len() > n.len() + 1
                    && q.ends_with(n.as_str())
                    && q.as_bytes()[q.len() - n.len() - 1] == b'.';
                if e.wildcard && below {
                    out.push((e.line, format!("*.{n}")));
                } else if !e.wildcard && (*q == n || e.subdomains && below) {
                    out.push((e.line, n));
                }
            }
            _ => {}
        }
    });
    out
}

/// Metadata of one loaded feed.
#[derive(Clone, Debug)]
pub struct Feed {
    pub name: CompactString,
    /// Entries after this event time no longer match.
    pub expires: Option<Ts>,
    pub domains: usize,
    pub networks: usize,
    pub rejected: usize,
    pub category: Option<CompactString>,
    pub severity: Option<Severity>,
    /// The format read (`auto` resolved).
    pub format: &'static str,
    /// Why nothing could be read, when known.
    pub note: Option<String>,
}

/// What matched, for evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntelHit {
    pub feed: CompactString,
    /// The listed indicator (domain or network).
    pub indicator: CompactString,
    /// `qname`, `cname` or `answer`.
    pub matched_on: &'static str,
    /// The observed value that matched (name or address).
    pub observed: CompactString,
    /// The feed's category and severity, if configured.
    pub category: Option<CompactString>,
    pub severity: Option<Severity>,
}

/// All feeds, merged for lookup.
#[derive(Clone, Debug, Default)]
pub struct IntelSet {
    feeds: Vec<Feed>,
    /// Keys come from the (trusted) feeds; lookups alone cannot degrade the table, so a fast
    /// hasher is fine here.
    /// The name and every name below it (adblock `||name^`).
    domains: SuffixMap<u16>,
    /// The name alone (plain, hosts, RPZ owners).
    exact: foldhash::HashMap<CompactString, u16>,
    /// Only names below (`*.name`): probed from the parent of the observed name.
    below: SuffixMap<u16>,
    nets: CidrSet<u16>,
}

/// Which kind of rule matched.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Subtree,
    Below,
}

impl IntelSet {
    pub fn new() -> IntelSet {
        IntelSet::default()
    }
    pub fn feeds(&self) -> &[Feed] {
        &self.feeds
    }
    pub fn is_empty(&self) -> bool {
        self.no_names() && self.nets.is_empty()
    }
    fn no_names(&self) -> bool {
        self.domains.is_empty() && self.exact.is_empty() && self.below.is_empty()
    }
    /// Parses one feed's text and adds it. Returns the feed's metadata.
    pub fn add_feed(
        &mut self,
        name: &str,
        text: &str,
        format: Format,
        expires: Option<Ts>,
    ) -> &Feed {
        let spec = FeedSpec {
            format,
            expires,
            ..FeedSpec::default()
        };
        self.add_feed_with(name, text, &spec)
    }
    /// Parses one feed's text as `spec` says and adds it. Returns the feed's metadata.
    pub fn add_feed_with(&mut self, name: &str, text: &str, spec: &FeedSpec) -> &Feed {
        let idx = self.feeds.len().min(u16::MAX as usize) as u16;
        let mut feed = Feed {
            name: name.into(),
            expires: spec.expires,
            domains: 0,
            networks: 0,
            rejected: 0,
            category: spec.category.clone(),
            severity: spec.severity,
            format: "",
            note: None,
        };
        let counts = parse_feed(text, spec, |e| {
            if e.exception {
                return; // exceptions (@@, RPZ passthru) are not indicators
            }
            match e.target {
                Target::Net(c) => {
                    self.nets.insert(c, idx);
                    feed.networks += 1;
                }
                Target::Name(n) => {
                    let n = CompactString::from(n.as_ref()).to_ascii_lowercase();
                    if e.wildcard {
                        self.below.insert_first(n, idx);
                    } else if e.subdomains {
                        self.domains.insert_first(n, idx);
                    } else {
                        self.exact.entry(n).or_insert(idx);
                    }
                    feed.domains += 1;
                }
            }
        });
        feed.rejected = counts.rejected as usize;
        feed.format = counts.format;
        feed.note = counts.note;
        self.feeds.push(feed);
        self.feeds.last().expect("just pushed")
    }
    fn live(&self, idx: u16, now: Ts) -> Option<&Feed> {
        let f = self.feeds.get(idx as usize)?;
        match f.expires {
            Some(e) if now > e => None,
            _ => Some(f),
        }
    }
    /// The listed domain covering `name` (the name itself, or a parent listed with its
    /// subdomains), if any.
    pub fn match_name<'s>(&'s self, name: &'s str, now: Ts) -> Option<(&'s Feed, &'s str)> {
        self.find_name(name, now).map(|(f, d, _)| (f, d))
    }
    fn find_name<'s>(&'s self, name: &'s str, now: Ts) -> Option<(&'s Feed, &'s str, Kind)> {
        let live = |i: &u16| self.live(*i, now).is_some();
        if let Some(f) = self.exact.get(name).and_then(|&i| self.live(i, now)) {
            return Some((f, name, Kind::Exact));
        }
        if let Some((d, &i)) = self.domains.find_where(name, live) {
            return Some((self.live(i, now)?, d, Kind::Subtree));
        }
        if self.below.is_empty() {
            return None;
        }
        let (d, &i) = self.below.find_where(next_parent(name)?, live)?;
        Some((self.live(i, now)?, d, Kind::Below))
    }
    pub fn match_addr(&self, ip: IpAddr, now: Ts) -> Option<(&Feed, Cidr)> {
        let (i, c) = self.nets.get(ip)?;
        self.live(*i, now).map(|f| (f, c))
    }
    /// Some listed domain covers `name`, whether or not its feed has expired: a cheap,
    /// time-independent prefilter for [`match_name`](Self::match_name) that callers may cache
    /// per name.
    pub fn listed(&self, name: &str) -> bool {
        self.exact.contains_key(name)
            || self.domains.find(name).is_some()
            || next_parent(name).is_some_and(|p| self.below.find(p).is_some())
    }
    /// Checks qname, CNAME targets and answer addresses of an event, first hit wins.
    pub fn match_event(&self, ev: &dnsight_model::DnsEvent) -> Option<IntelHit> {
        self.match_event_with(ev, |_| true)
    }
    /// [`match_event`](Self::match_event), probing a name only when `maybe_listed(name)` (a
    /// cached [`listed`](Self::listed)) says some feed lists it.
    pub fn match_event_with<'s>(
        &'s self,
        ev: &'s dnsight_model::DnsEvent,
        mut maybe_listed: impl FnMut(&str) -> bool,
    ) -> Option<IntelHit> {
        if self.is_empty() {
            return None;
        }
        let mut name_hit = |n: &'s str| {
            if self.no_names() || !maybe_listed(n) {
                return None;
            }
            self.find_name(n, ev.ts)
        };
        let indicator = |d: &str, k: Kind| -> CompactString {
            match k {
                Kind::Below => compact_str::format_compact!("*.{d}"),
                _ => d.into(),
            }
        };
        if let Some((f, d, k)) = name_hit(ev.qname.as_str()) {
            return Some(IntelHit {
                feed: f.name.clone(),
                indicator: indicator(d, k),
                matched_on: "qname",
                observed: ev.qname.as_str().into(),
                category: f.category.clone(),
                severity: f.severity,
            });
        }
        for a in &ev.answers {
            if let Some(t) = a.target() {
                if let Some((f, d, k)) = name_hit(t.as_str()) {
                    return Some(IntelHit {
                        feed: f.name.clone(),
                        indicator: indicator(d, k),
                        matched_on: "cname",
                        observed: t.as_str().into(),
                        category: f.category.clone(),
                        severity: f.severity,
                    });
                }
            }
            if let Some(ip) = a.addr() {
                if let Some((f, c)) = self.match_addr(ip, ev.ts) {
                    return Some(IntelHit {
                        feed: f.name.clone(),
                        indicator: c.to_string().into(),
                        matched_on: "answer",
                        observed: ip.to_string().into(),
                        category: f.category.clone(),
                        severity: f.severity,
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnsight_model::Name;
    fn ts() -> Ts {
        Ts::from_secs(1_764_000_000)
    }
    #[test]
    fn formats() {
        let mut s = IntelSet::new();
        assert_eq!(
            s.add_feed(
                "plain",
                "# c\nevil.example\nBAD..name\n",
                Format::Auto,
                None
            )
            .domains,
            1
        );
        assert_eq!(
            s.add_feed(
                "hosts",
                "0.0.0.0 ads.example tracker.example # x\n127.0.0.1 localhost\n",
                Format::Auto,
                None
            )
            .domains,
            2
        );
        let f = s.add_feed(
            "adb",
            "[Adblock Plus]\n! c\n||c2.example^\n@@||good.example^\n||x.example^$third-party\n",
            Format::Auto,
            None,
        );
        assert_eq!((f.domains, f.rejected), (2, 0));
        let rpz = "$TTL 60\n@ SOA ns. admin. 1 1 1 1 1\n  NS ns.\n$ORIGIN rpz.local.\nbad.example CNAME .\n*.bad2.example CNAME .\n32.4.3.2.1.rpz-ip CNAME .\n";
        let f = s.add_feed("rpz", rpz, Format::Auto, None);
        assert_eq!((f.domains, f.networks), (2, 1), "{f:?}");
        let f = s.add_feed(
            "ips",
            "198.51.100.0/24\n2001:db8::1\nnot-an-ip\n",
            Format::Ip,
            None,
        );
        assert_eq!((f.networks, f.rejected), (2, 1));
        // plain and hosts lines are the name and below (as in the resolver: listfmt)
        assert_eq!(
            s.match_name("a.b.evil.example", ts()).unwrap().1,
            "evil.example"
        );
        assert_eq!(
            s.match_name("x.ads.example", ts()).unwrap().1,
            "ads.example"
        );
        // RPZ owners are exact
        assert!(s.match_name("x.bad.example", ts()).is_none());
        // adblock: the name and below; wildcards: below only
        assert_eq!(s.match_name("a.c2.example", ts()).unwrap().1, "c2.example");
        assert!(
            s.match_name("good.example", ts()).is_none(),
            "exceptions are not indicators"
        );
        assert!(s.match_name("bad2.example", ts()).is_none());
        assert!(s.listed("x.bad2.example") && !s.listed("bad2.example"));
        assert!(s.match_name("notevil.example", ts()).is_none());
        assert_eq!(s.match_name("x.bad2.example", ts()).unwrap().0.name, "rpz");
        assert_eq!(
            s.match_addr("1.2.3.4".parse().unwrap(), ts())
                .unwrap()
                .0
                .name,
            "rpz"
        );
        assert_eq!(
            s.match_addr("198.51.100.7".parse().unwrap(), ts())
                .unwrap()
                .0
                .name,
            "ips"
        );
        assert!(s
            .match_addr("198.51.101.7".parse().unwrap(), ts())
            .is_none());
    }
    #[test]
    fn expiry_and_event_matching() {
        let mut s = IntelSet::new();
        s.add_feed(
            "old",
            "gone.example\n",
            Format::Plain,
            Some(Ts::from_secs(1_000)),
        );
        s.add_feed("cdn", "evilcdn.example\n", Format::Plain, None);
        assert!(s.match_name("gone.example", ts()).is_none());
        let mut ev = dnsight_model::DnsEvent::new(
            ts(),
            "10.0.0.5".parse().unwrap(),
            Name::parse("www.innocent.example").unwrap(),
            1,
        );
        ev.answers.push(dnsight_model::Answer {
            name: ev.qname.clone(),
            rtype: 5,
            ttl: 60,
            data: dnsight_model::RData::Name(Name::parse("edge.evilcdn.example").unwrap()),
        });
        let hit = s.match_event(&ev).unwrap();
        assert_eq!(
            (hit.matched_on, hit.indicator.as_str()),
            ("cname", "evilcdn.example")
        );
    }

    #[test]
    fn maltrail_trails_as_they_are() {
        let trail = "# Copyright (c) 2014-2026 Maltrail developers\n# See the file 'LICENSE'\n\n# Reference: https://example.org/report\n\nevil-c2.example\n198.51.100.23\nhttp://203.0.113.5/bad/x.php\n";
        let mut s = IntelSet::new();
        let f = s.add_feed("maltrail", trail, Format::Auto, None).clone();
        assert_eq!((f.domains, f.networks, f.rejected), (1, 1, 1), "{f:?}");
        assert!(s.match_name("a.evil-c2.example", ts()).is_some());
    }

    #[test]
    fn csv_and_jsonl_feeds() {
        // abuse.ch-style CSV: the header in the last comment line, quoted fields, ip:port
        let csv = "# ThreatFox IOCs\n# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\"\n\"2026-11-01 10:00:00\",\"1\",\"c2.example\",\"domain\"\n\"2026-11-01 10:00:00\",\"2\",\"198.51.100.9:443\",\"ip:port\"\n\"2026-11-01 10:00:00\",\"3\",\"http://shared.example/x.exe\",\"url\"\n";
        let spec = FeedSpec {
            format: Format::Csv,
            column: Some(Column::Name("ioc_value".into())),
            ..Default::default()
        };
        let mut s = IntelSet::new();
        let f = s.add_feed_with("tf", csv, &spec).clone();
        assert_eq!((f.domains, f.networks, f.rejected), (1, 1, 1), "{f:?}");
        assert!(s
            .match_addr("198.51.100.9".parse().unwrap(), ts())
            .is_some());
        let by_index = FeedSpec {
            column: Some(Column::Index(3)),
            ..spec.clone()
        };
        let hits = find_in_feed(csv, &by_index, &Query::parse("x.c2.example").unwrap(), 5);
        assert_eq!(hits, vec![(3, "c2.example".to_string())]);
        let missing = FeedSpec {
            column: Some(Column::Name("nope".into())),
            ..spec
        };
        let f = IntelSet::new().add_feed_with("x", csv, &missing).clone();
        assert_eq!(f.domains, 0);
        assert!(f.note.unwrap().contains("nope"));
        // JSON lines, sniffed, default field, a nested field chosen
        let jl = "{\"ioc_value\":\"evil.example\",\"tags\":[\"x\"]}\nnot json\n{\"other\":1}\n";
        let mut s = IntelSet::new();
        let f = s.add_feed_with("j", jl, &FeedSpec::default()).clone();
        assert_eq!((f.format, f.domains, f.rejected), ("jsonl", 1, 2));
        let nested = FeedSpec {
            format: Format::Jsonl,
            field: Some("ioc.host".into()),
            ..Default::default()
        };
        let f = IntelSet::new()
            .add_feed_with("n", "{\"ioc\":{\"host\":\"deep.example\"}}\n", &nested)
            .clone();
        assert_eq!(f.domains, 1);
        // check: line numbers, wildcard vs exact vs subtree, addresses
        let text = "# c\nexact.example CNAME .\n";
        assert!(find_in_feed(
            text,
            &FeedSpec::default(),
            &Query::parse("a.exact.example").unwrap(),
            5
        )
        .is_empty());
        let text = "a.example\n*.w.example\n10.1.0.0/16\n";
        let q = |x: &str| find_in_feed(text, &FeedSpec::default(), &Query::parse(x).unwrap(), 5);
        assert_eq!(q("x.A.example"), vec![(1, "a.example".to_string())]);
        assert!(q("w.example").is_empty());
        assert_eq!(q("z.w.example"), vec![(2, "*.w.example".to_string())]);
        assert_eq!(q("10.1.2.3"), vec![(3, "10.1.0.0/16".to_string())]);
    }

    proptest::proptest! {
        #[test]
        fn any_feed_text_parses_without_panic(text in "(?s).{0,400}", fmt in 0usize..9) {
            let f = [Format::Auto, Format::Plain, Format::Hosts, Format::Adblock, Format::Rpz, Format::Ip, Format::Csv, Format::Jsonl, Format::Csv][fmt];
            let spec = FeedSpec {
                format: f,
                column: (fmt != 8).then_some(Column::Index(2)).or(Some(Column::Name("ioc".into()))),
                ..Default::default()
            };
            let mut s = IntelSet::new();
            let feed = s.add_feed_with("x", &text, &spec).clone();
            proptest::prop_assert!(feed.domains + feed.networks + feed.rejected <= text.lines().count() * 8 + 8);
            let _ = s.match_name("a.b.example", ts());
        }
    }
}
