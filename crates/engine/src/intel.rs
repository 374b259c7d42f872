//! Threat-intel feeds: attacker-infrastructure domains and addresses, each from a named feed.
//!
//! Formats are read by the parser the resolver's lists use too ([`dnsight_model::listfmt`]), so
//! a feed and a block list made of the same file cover the same names: plain domain and hosts
//! lines (`0.0.0.0 evil.example`) are the name and every name below it, `*.evil.example` only
//! the names below it, adblock `||evil.example^` the name and every name below, RPZ zones
//! (`evil.example CNAME .` exact, `*.evil.example` below, `32.4.3.2.1.rpz-ip` an address block),
//! and IP/CIDR lists. Exceptions (`@@||…^`, RPZ passthru) are not indicators. The engine
//! matches the qname, every CNAME target in the answer chain and every answer address. An [`IntelSet`] is immutable once built and shared behind an
//! `Arc`, so the binary can rebuild it from the files and swap it in (`Engine::set_intel`)
//! without a restart. Unparseable lines are counted per feed and skipped.

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
}

impl Format {
    /// The shared parser's format (plain, hosts and adblock lines are read per line alike).
    fn listfmt(self) -> listfmt::Format {
        match self {
            Format::Auto => listfmt::Format::Auto,
            Format::Plain | Format::Hosts | Format::Adblock => listfmt::Format::Lines,
            Format::Rpz => listfmt::Format::Rpz,
            Format::Ip => listfmt::Format::Ip,
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
        let idx = self.feeds.len().min(u16::MAX as usize) as u16;
        let mut feed = Feed {
            name: name.into(),
            expires,
            domains: 0,
            networks: 0,
            rejected: 0,
        };
        let counts = listfmt::parse(text, format.listfmt(), |e| {
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
