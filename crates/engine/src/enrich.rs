//! Enrichment: everything the detectors want to know about one event, computed once.
//!
//! Device identity (interned id, inventory name and group), event time in the site time zone
//! (day, hour, hour of week), the destination (registered domain via the public suffix list
//! including its private section, or the full name for internal names, or the reverse zone for
//! PTR lookups), internal vs external (configured suffixes and ranges), GeoIP of answer
//! addresses, and threat-intel matches. Borrowing from the event: no allocation on the common
//! path.

use crate::alert::DevId;
use crate::baseline::DestId;
use crate::config::EngineConfig;
use crate::detectors::name_hash;
use crate::geo::GeoInfo;
use crate::intel::IntelHit;
use crate::net;
use crate::suffix::SuffixMap;
use compact_str::CompactString;
use dnsight_model::{DnsEvent, RCODE_NOERROR};
use std::collections::HashMap;
use std::net::IpAddr;

/// Up to this many answer addresses are geolocated per event.
pub const MAX_GEO: usize = 4;

/// One event plus everything derived from it.
#[derive(Debug)]
pub struct Enriched<'a> {
    pub ev: &'a DnsEvent,
    pub dev: DevId,
    /// First event ever of this client address.
    pub device_new: bool,
    /// The device is in its learning period.
    pub learning: bool,
    /// Event time, seconds since the epoch.
    pub now: u32,
    /// Local day number and absolute local hour number.
    pub day: u16,
    pub hour: u32,
    /// Registered domain, internal host name, or `in-addr.arpa`/`ip6.arpa`.
    pub dest: &'a str,
    /// The part of the qname left of `dest` (empty when qname == dest).
    pub sub: &'a str,
    /// Org-wide id of `dest` when it was seen before.
    pub dest_id: Option<DestId>,
    /// The device's baseline entry for `dest` before this event (copied).
    pub entry: Option<crate::baseline::DestEntry>,
    /// The name is internal (configured suffix, single label, or reverse of an internal range).
    pub internal: bool,
    /// For PTR-style names, the address asked about.
    pub reverse_addr: Option<IpAddr>,
    /// The DNS-over-HTTPS resolver name the qname is (or is under).
    pub doh: Option<&'a str>,
    /// Stable hashes of the qname, `dest` and `sub`.
    pub hashes: NameHashes,
    /// NOERROR response.
    pub noerror: bool,
    /// NXDOMAIN response.
    pub nx: bool,
    /// Some answer address is in an internal range.
    pub internal_answer: bool,
    pub geo: [Option<(IpAddr, GeoInfo)>; MAX_GEO],
    pub intel: Option<IntelHit>,
    /// The device's group, if any.
    pub group: Option<compact_str::CompactString>,
    /// The device's group is held tight (servers, databases).
    pub tight: bool,
}

impl Enriched<'_> {
    /// `qname TYPE RCODE`, for sample queries in evidence.
    pub fn sample(&self) -> compact_str::CompactString {
        let rc = match self.ev.rcode {
            Some(r) => dnsight_model::rcode_to_str(r),
            None => "NORESPONSE".into(),
        };
        compact_str::format_compact!(
            "{} {} {}",
            self.ev.qname.as_str(),
            dnsight_model::rtype_to_str(self.ev.qtype),
            rc
        )
    }
    pub fn resolved(&self) -> bool {
        self.noerror && !self.ev.answers.is_empty()
    }
}

/// Names kept by [`NameCache`] before it starts afresh (about 100 bytes each).
pub const NAME_CACHE_CAP: usize = 1 << 16;

/// What enrichment derives from a name alone, given the configuration and the intel feeds.
/// Offsets index the name itself, so a cached value serves every event with that name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NameFacts {
    /// The destination is `name[dest_start..]`.
    pub dest_start: u16,
    /// The subdomain part is `name[..sub_len]` (empty when the name is its destination).
    pub sub_len: u16,
    pub internal: bool,
    pub reverse_addr: Option<IpAddr>,
    /// Some intel feed lists the name or a parent (live or expired feed: the time-aware match
    /// runs only when this is set).
    pub intel_listed: bool,
    /// The name is, or is under, a DNS-over-HTTPS resolver name starting at this offset.
    pub doh_start: Option<u16>,
    /// `detectors::name_hash` of the name, of its destination and of its subdomain part (the
    /// detectors' state keys, computed once per name).
    pub hashes: NameHashes,
}

/// Stable hashes of a name's parts (see [`crate::detectors::name_hash`]).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct NameHashes {
    pub qname: u64,
    pub dest: u64,
    pub sub: u64,
}

impl NameFacts {
    /// Computes the facts of `name` (no cache).
    pub fn of(cfg: &EngineConfig, doh: &SuffixMap<()>, name: &str) -> NameFacts {
        let (sub, dest, internal, reverse_addr) = destination(cfg, name);
        // `dest` is a suffix of `name` (an escaped presentation name: ASCII, at most 4 * 255
        // bytes, so any offset up to its length is a valid slice boundary and fits u16)
        let off = |s: &str| {
            (s.as_ptr() as usize)
                .saturating_sub(name.as_ptr() as usize)
                .min(name.len())
                .min(u16::MAX as usize) as u16
        };
        NameFacts {
            dest_start: off(dest),
            sub_len: sub.len().min(name.len()).min(u16::MAX as usize) as u16,
            internal,
            reverse_addr,
            intel_listed: cfg.intel.listed(name),
            doh_start: doh.find(name).map(|(d, _)| off(d)),
            hashes: NameHashes {
                qname: name_hash(name),
                dest: name_hash(dest),
                sub: name_hash(sub),
            },
        }
    }
}

/// Per-name cache of [`NameFacts`]: real traffic repeats names, and the public-suffix split,
/// intel and DoH suffix probes cost more than one hash lookup. Bounded: when it holds
/// [`NAME_CACHE_CAP`] names it is emptied and refills from current traffic (names are
/// attacker-controlled, so the hasher is randomly seeded). Must be [`clear`](Self::clear)ed
/// when the intel feeds change.
pub struct NameCache {
    map: HashMap<CompactString, NameFacts, foldhash::fast::RandomState>,
    /// DNS-over-HTTPS resolver names (built-in and configured), matched with subdomains.
    doh: SuffixMap<()>,
}

impl NameCache {
    pub fn new(cfg: &EngineConfig) -> NameCache {
        let mut doh = SuffixMap::new();
        for d in crate::detectors::policy::DOH_NAMES {
            doh.insert_first(*d, ());
        }
        for d in &cfg.doh_names {
            doh.insert_first(d.clone(), ());
        }
        NameCache {
            map: HashMap::default(),
            doh,
        }
    }
    pub fn clear(&mut self) {
        self.map.clear();
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn facts(&mut self, cfg: &EngineConfig, name: &str) -> NameFacts {
        if let Some(f) = self.map.get(name) {
            return *f;
        }
        let f = NameFacts::of(cfg, &self.doh, name);
        if self.map.len() >= NAME_CACHE_CAP {
            self.map.clear();
        }
        self.map.insert(name.into(), f);
        f
    }
}

/// Splits a qname into (subdomain part, destination, internal, reverse address).
pub fn destination<'a>(
    cfg: &EngineConfig,
    qname: &'a str,
) -> (&'a str, &'a str, bool, Option<IpAddr>) {
    if net::is_reverse_name(qname) {
        let zone = if qname.ends_with("ip6.arpa") {
            "ip6.arpa"
        } else {
            "in-addr.arpa"
        };
        let addr = net::reverse_name_addr(qname);
        let internal = addr.is_some_and(|a| is_internal_addr(cfg, a));
        let start = qname.len() - zone.len();
        let sub = qname[..start].trim_end_matches('.');
        return (sub, &qname[start..], internal, addr);
    }
    for s in &cfg.internal_suffixes {
        if is_under(qname, s) {
            return ("", qname, true, None);
        }
    }
    if !qname.contains('.') {
        return ("", qname, true, None); // single label: a LAN host name
    }
    let reg = psl::domain_str(qname).unwrap_or(qname);
    // psl returns a suffix of the input; find it by length
    let start = qname.len() - reg.len();
    let sub = qname[..start].trim_end_matches('.');
    (sub, &qname[start..], false, None)
}

/// `name` equals `suffix` or ends with `.suffix`.
pub fn is_under(name: &str, suffix: &str) -> bool {
    name == suffix
        || (name.len() > suffix.len()
            && name.ends_with(suffix)
            && name.as_bytes()[name.len() - suffix.len() - 1] == b'.')
}

pub fn is_internal_addr(cfg: &EngineConfig, ip: IpAddr) -> bool {
    let ip = net::canonical(ip); // once, not once per range
    cfg.internal_ranges.iter().any(|c| c.contains_canonical(ip))
}

pub fn is_noerror(ev: &DnsEvent) -> bool {
    ev.rcode == Some(RCODE_NOERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn destinations() {
        let mut cfg = EngineConfig::default();
        cfg.internal_suffixes.push("corp.example".into());
        assert_eq!(
            destination(&cfg, "www.example.co.uk"),
            ("www", "example.co.uk", false, None)
        );
        assert_eq!(
            destination(&cfg, "a.b.github.io"),
            ("a", "b.github.io", false, None),
            "private PSL section"
        );
        assert_eq!(
            destination(&cfg, "db1.corp.example"),
            ("", "db1.corp.example", true, None)
        );
        assert_eq!(destination(&cfg, "printer"), ("", "printer", true, None));
        assert_eq!(
            destination(&cfg, "example.com"),
            ("", "example.com", false, None)
        );
        let (sub, d, int, a) = destination(&cfg, "5.0.0.10.in-addr.arpa");
        assert_eq!(
            (sub, d, int, a),
            (
                "5.0.0.10",
                "in-addr.arpa",
                true,
                Some("10.0.0.5".parse().unwrap())
            )
        );
        assert!(!destination(&cfg, "8.8.8.8.in-addr.arpa").2);
        // hostile bytes stay escaped and never panic
        let n = dnsight_model::Name::from_labels([&b"\x00<x>"[..], b"evil", b"com"]);
        let (sub, d, _, _) = destination(&cfg, n.as_str());
        assert_eq!(d, "evil.com");
        assert_eq!(sub, "\\000<x>");
    }

    #[test]
    fn cached_facts_equal_computed_facts() {
        let mut cfg = EngineConfig::default();
        cfg.internal_suffixes.push("corp.example".into());
        cfg.doh_names.push("doh.corp-resolver.example".into());
        let mut set = crate::intel::IntelSet::new();
        set.add_feed("f", "bad.example\n", crate::intel::Format::Auto, None);
        cfg.intel = std::sync::Arc::new(set);
        let mut cache = NameCache::new(&cfg);
        let hostile = dnsight_model::Name::from_labels([&b"\x00<x>.y"[..], b"bad", b"example"]);
        let names = [
            "www.example.co.uk",
            "a.b.github.io",
            "db1.corp.example",
            "printer",
            "5.0.0.10.in-addr.arpa",
            "x.y.bad.example",
            "dns.google",
            "a.doh.corp-resolver.example",
            hostile.as_str(),
        ];
        for round in 0..2 {
            for n in names {
                let f = cache.facts(&cfg, n);
                assert_eq!(f, NameFacts::of(&cfg, &cache.doh, n), "{n} round {round}");
                let (sub, dest, internal, rev) = destination(&cfg, n);
                assert_eq!(&n[f.dest_start as usize..], dest);
                assert_eq!(&n[..f.sub_len as usize], sub);
                assert_eq!((f.internal, f.reverse_addr), (internal, rev));
                let h = f.hashes;
                assert_eq!(
                    (h.qname, h.dest, h.sub),
                    (name_hash(n), name_hash(dest), name_hash(sub))
                );
            }
        }
        assert_eq!(cache.len(), names.len());
        assert!(cache.facts(&cfg, "x.y.bad.example").intel_listed);
        assert!(cache.facts(&cfg, hostile.as_str()).intel_listed);
        assert!(!cache.facts(&cfg, "www.example.co.uk").intel_listed);
        assert_eq!(cache.facts(&cfg, "dns.google").doh_start, Some(0));
        assert_eq!(
            cache.facts(&cfg, "a.doh.corp-resolver.example").doh_start,
            Some(2)
        );
        assert_eq!(cache.facts(&cfg, "www.example.co.uk").doh_start, None);
    }

    #[test]
    fn name_cache_stays_bounded() {
        let cfg = EngineConfig::default();
        let mut cache = NameCache::new(&cfg);
        for i in 0..NAME_CACHE_CAP + 10 {
            cache.facts(&cfg, &format!("n{i}.example.com"));
            assert!(cache.len() <= NAME_CACHE_CAP);
        }
        let f = cache.facts(&cfg, "n0.example.com");
        assert_eq!(f.sub_len, 2);
    }
}
