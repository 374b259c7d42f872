//! Threat-intel feeds: attacker-infrastructure domains and addresses, each from a named feed.
//!
//! Formats (sniffed per file with `Format::Auto`, or forced): plain domain lists, hosts files
//! (`0.0.0.0 evil.example`), adblock (`||evil.example^`), RPZ zones (`evil.example.rpz. CNAME .`,
//! `*.evil.example`, `32.4.3.2.1.rpz-ip`), and IP/CIDR lists. A listed domain matches itself and
//! every name below it. The engine matches the qname, every CNAME target in the answer chain
//! and every answer address. An [`IntelSet`] is immutable once built and shared behind an
//! `Arc`, so the binary can rebuild it from the files and swap it in (`Engine::set_intel`)
//! without a restart. Unparseable lines are counted per feed and skipped.

use crate::net::{Cidr, CidrSet};
use crate::suffix::SuffixMap;
use compact_str::CompactString;
use dnsight_model::{Name, Ts};
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
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "plain" | "domains" => Format::Plain,
            "hosts" => Format::Hosts,
            "adblock" => Format::Adblock,
            "rpz" => Format::Rpz,
            "ip" | "ips" | "cidr" => Format::Ip,
            _ => return None,
        })
    }
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
}

/// All feeds, merged for lookup.
#[derive(Clone, Debug, Default)]
pub struct IntelSet {
    feeds: Vec<Feed>,
    /// Keys come from the (trusted) feeds; lookups alone cannot degrade the table, so a fast
    /// hasher is fine here.
    domains: SuffixMap<u16>,
    nets: CidrSet<u16>,
}

impl IntelSet {
    pub fn new() -> IntelSet {
        IntelSet::default()
    }
    pub fn feeds(&self) -> &[Feed] {
        &self.feeds
    }
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.nets.is_empty()
    }
    /// Parses one feed's text and adds it. Returns the feed's metadata.
    pub fn add_feed(
        &mut self,
        name: &str,
        text: &str,
        format: Format,
        expires: Option<Ts>,
    ) -> &Feed {
        let idx = self.feeds.len().min(u16::MAX as usize) as u16;
        let mut feed = Feed {
            name: name.into(),
            expires,
            domains: 0,
            networks: 0,
            rejected: 0,
        };
        let format = if format == Format::Auto {
            sniff(text)
        } else {
            format
        };
        let mut origin: Option<String> = None;
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty()
                || line.starts_with('#')
                || line.starts_with('!')
                || line.starts_with(';')
                || line.starts_with('[')
            {
                continue;
            }
            let entry = match format {
                Format::Plain | Format::Auto => {
                    let t = line.split_whitespace().next().unwrap_or("");
                    match t.strip_prefix("||") {
                        Some(r) => Entry::domain(r.split(['^', '$', '/']).next().unwrap_or("")),
                        None => Entry::domain(t),
                    }
                }
                Format::Hosts => {
                    let mut f = line.split_whitespace();
                    let first = f.next().unwrap_or("");
                    if first.parse::<IpAddr>().is_ok() {
                        let names: Vec<Entry> = f
                            .take_while(|t| !t.starts_with('#'))
                            .map(Entry::domain)
                            .collect();
                        for e in names {
                            self.insert(e, idx, &mut feed);
                        }
                        continue;
                    }
                    Entry::domain(first)
                }
                Format::Adblock => {
                    if line.starts_with("@@") {
                        continue; // exception rules: not indicators
                    }
                    match line.strip_prefix("||") {
                        Some(r) => Entry::domain(r.split(['^', '$', '/']).next().unwrap_or("")),
                        None => Entry::domain(line), // plain domains mixed into adblock lists
                    }
                }
                Format::Ip => match Cidr::parse(line.split_whitespace().next().unwrap_or("")) {
                    Ok(c) => Entry::Net(c),
                    Err(_) => Entry::Bad,
                },
                Format::Rpz => {
                    if let Some(o) = line.strip_prefix("$ORIGIN") {
                        origin = Some(o.trim().trim_end_matches('.').to_ascii_lowercase());
                        continue;
                    }
                    if line.starts_with('$') {
                        continue;
                    }
                    let mut f = line.split_whitespace();
                    let owner = f.next().unwrap_or("");
                    let rest: Vec<&str> = f.collect();
                    if rest
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case("SOA") || t.eq_ignore_ascii_case("NS"))
                        || owner == "@"
                        || raw.starts_with([' ', '\t'])
                    {
                        continue;
                    }
                    rpz_entry(owner, origin.as_deref())
                }
            };
            self.insert(entry, idx, &mut feed);
        }
        self.feeds.push(feed);
        self.feeds.last().expect("just pushed")
    }
    fn insert(&mut self, e: Entry, idx: u16, feed: &mut Feed) {
        match e {
            Entry::Domain(d) => {
                self.domains.insert_first(d, idx);
                feed.domains += 1;
            }
            Entry::Net(c) => {
                self.nets.insert(c, idx);
                feed.networks += 1;
            }
            Entry::Bad => feed.rejected += 1,
        }
    }
    fn live(&self, idx: u16, now: Ts) -> Option<&Feed> {
        let f = self.feeds.get(idx as usize)?;
        match f.expires {
            Some(e) if now > e => None,
            _ => Some(f),
        }
    }
    /// The listed domain covering `name` (itself or a parent), if any.
    pub fn match_name<'s>(&'s self, name: &'s str, now: Ts) -> Option<(&'s Feed, &'s str)> {
        let (d, &i) = self
            .domains
            .find_where(name, |&i| self.live(i, now).is_some())?;
        Some((self.live(i, now)?, d))
    }
    pub fn match_addr(&self, ip: IpAddr, now: Ts) -> Option<(&Feed, Cidr)> {
        let (i, c) = self.nets.get(ip)?;
        self.live(*i, now).map(|f| (f, c))
    }
    /// Some listed domain covers `name`, whether or not its feed has expired: a cheap,
    /// time-independent prefilter for [`match_name`](Self::match_name) that callers may cache
    /// per name.
    pub fn listed(&self, name: &str) -> bool {
        self.domains.find(name).is_some()
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
            if self.domains.is_empty() || !maybe_listed(n) {
                return None;
            }
            self.match_name(n, ev.ts)
        };
        if let Some((f, d)) = name_hit(ev.qname.as_str()) {
            return Some(IntelHit {
                feed: f.name.clone(),
                indicator: d.into(),
                matched_on: "qname",
                observed: ev.qname.as_str().into(),
            });
        }
        for a in &ev.answers {
            if let Some(t) = a.target() {
                if let Some((f, d)) = name_hit(t.as_str()) {
                    return Some(IntelHit {
                        feed: f.name.clone(),
                        indicator: d.into(),
                        matched_on: "cname",
                        observed: t.as_str().into(),
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
                    });
                }
            }
        }
        None
    }
}

/// The name without its first label (escape-aware), None at a single label.
enum Entry {
    Domain(CompactString),
    Net(Cidr),
    Bad,
}

impl Entry {
    fn domain(s: &str) -> Entry {
        let s = s.trim().trim_start_matches("*.").trim_end_matches('.');
        if s.is_empty() || s.contains(['/', ':', '*', ' ', '|', '^', '$', '\\', '"']) {
            return Entry::Bad;
        }
        if let Ok(c) = Cidr::parse(s) {
            return Entry::Net(c);
        }
        match Name::parse(s) {
            Ok(n) if !n.is_root() && n.as_str().contains('.') => Entry::Domain(n.as_str().into()),
            Ok(n) if !n.is_root() => Entry::Domain(n.as_str().into()), // a TLD: allowed but rare
            _ => Entry::Bad,
        }
    }
}

fn rpz_entry(owner: &str, origin: Option<&str>) -> Entry {
    let o = owner.trim_end_matches('.').to_ascii_lowercase();
    let rel = match origin {
        Some(_) if !owner.ends_with('.') => o.clone(),
        Some(org) => o
            .strip_suffix(org)
            .map(|r| r.trim_end_matches('.').to_string())
            .unwrap_or(o.clone()),
        None => o.clone(),
    };
    if let Some(ipt) = rel.strip_suffix(".rpz-ip") {
        // prefix-length.reversed.address: 32.4.3.2.1 -> 1.2.3.4/32
        let mut parts: Vec<&str> = ipt.split('.').collect();
        if parts.len() == 5 {
            let len = parts.remove(0);
            parts.reverse();
            return Cidr::parse(&format!("{}/{}", parts.join("."), len))
                .map(Entry::Net)
                .unwrap_or(Entry::Bad);
        }
        return Entry::Bad;
    }
    if rel.contains(".rpz-") {
        return Entry::Bad; // rpz-nsdname/rpz-client-ip etc: not indicators for us
    }
    Entry::domain(&rel)
}

fn sniff(text: &str) -> Format {
    let mut lines = text.lines().map(str::trim).filter(|l| {
        !l.is_empty()
            && !l.starts_with('#')
            && !l.starts_with('!')
            && !l.starts_with(';')
            && !l.starts_with('[')
    });
    let Some(first) = lines.next() else {
        return Format::Plain;
    };
    if text.contains("$ORIGIN")
        || text.contains(" SOA ")
        || text.contains("\tSOA\t")
        || text.contains("CNAME .")
        || text.contains("CNAME\t.")
    {
        return Format::Rpz;
    }
    if first.starts_with("||") {
        return Format::Adblock;
    }
    let mut f = first.split_whitespace();
    let a = f.next().unwrap_or("");
    if a.parse::<IpAddr>().is_ok() && f.next().is_some() {
        return Format::Hosts;
    }
    if Cidr::parse(a).is_ok() {
        return Format::Ip;
    }
    Format::Plain
}

#[cfg(test)]
mod tests {
    use super::*;
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
            3
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
        assert_eq!(
            s.match_name("a.b.evil.example", ts()).unwrap().1,
            "evil.example"
        );
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

    proptest::proptest! {
        #[test]
        fn any_feed_text_parses_without_panic(text in "(?s).{0,400}", fmt in 0usize..6) {
            let f = [Format::Auto, Format::Plain, Format::Hosts, Format::Adblock, Format::Rpz, Format::Ip][fmt];
            let mut s = IntelSet::new();
            let feed = s.add_feed("x", &text, f, None).clone();
            proptest::prop_assert!(feed.domains + feed.networks + feed.rejected <= text.lines().count() * 8 + 8);
            let _ = s.match_name("a.b.example", ts());
        }
    }
}
