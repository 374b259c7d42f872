//! Where a cache miss is forwarded: conditional-forwarding zones, then the default upstreams.
//!
//! A forward zone is a domain and everything under it (`corp.example`), or a reverse zone
//! written as an address block (`10.20.0.0/16` is `20.10.in-addr.arpa`; a block that does not
//! end on an octet — a nibble for IPv6 — is the set of reverse zones covering it). Each forward
//! entry has its own [`Upstreams`] (same failover and health probes as the defaults). The zone
//! with the longest match wins; the default upstreams are set 0.
//!
//! When a zone's upstreams all fail, the question goes to the default upstreams, unless the
//! zone is `internal_only`: then it gets SERVFAIL (or a stale answer) and its names never leave
//! for the default upstreams (no leak of internal names to the internet); a zone inside an
//! internal-only zone is internal-only too. Prefetches take the
//! same route. Answers are cached (a name always takes the same zone route, so the key needs no
//! zone) and recorded as events like any other.
//!
//! Client groups may have upstreams of their own (guest Wi-Fi to a filtering resolver): such a
//! group's view (carried in the cache key, so its answers are cached apart) picks its set
//! instead of set 0 for names outside the forward zones.

use crate::stats::Stats;
use crate::upstream::{Answered, Strategy, UpstreamError, UpstreamSpec, UpstreamStats, Upstreams};
use crate::wire::{self, Question};
use dnsight_model::Cidr;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// One `[[resolver.forward]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSpec {
    /// Domain names (`corp.example`) or address blocks for reverse zones (`10.20.0.0/16`,
    /// `fd00:20::/32`); see [`zone_names`].
    pub zones: Vec<String>,
    pub upstreams: Vec<UpstreamSpec>,
    /// Never ask the default upstreams for these zones' names, even when their own fail.
    pub internal_only: bool,
}

/// The lowercased wire names a zone entry stands for: one for a domain name, one or more
/// reverse zones for an address block (a bare address is its own `/32` or `/128`).
pub fn zone_names(s: &str) -> Result<Vec<Vec<u8>>, String> {
    let s = s.trim();
    let looks_like_block = s.contains('/') || s.contains(':') || s.parse::<IpAddr>().is_ok();
    if looks_like_block {
        let c = Cidr::parse(s)?;
        let mut out = Vec::new();
        for z in reverse_zones(&c) {
            let mut w = Vec::new();
            if !crate::policy::text_to_wire(&z, &mut w) {
                return Err(format!("{s:?}: internal error building {z:?}"));
            }
            out.push(w);
        }
        return Ok(out);
    }
    let t = s.trim_end_matches('.');
    if t.is_empty() {
        return Err(format!(
            "{s:?}: the root is not a forward zone (the default upstreams serve it)"
        ));
    }
    if t.split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "{s:?} looks like part of an address: write a reverse zone as a block, e.g. \"10.20.0.0/16\""
        ));
    }
    let mut w = Vec::new();
    if !crate::policy::text_to_wire(t, &mut w) {
        return Err(format!(
            "{s:?} is not a domain name or an address block (e.g. \"corp.example\" or \"10.20.0.0/16\")"
        ));
    }
    Ok(vec![w])
}

/// The reverse zones (presentation form, no trailing dot) that together cover `c`:
/// `10.20.0.0/16` → `20.10.in-addr.arpa`; `10.16.0.0/12` → the 16 zones `16.10` … `31.10`;
/// IPv6 on nibbles (`fd00::/8` → `d.f.ip6.arpa`). At most 128 zones (IPv4) or 8 (IPv6).
pub fn reverse_zones(c: &Cidr) -> Vec<String> {
    let (step, width, suffix) = match c.addr() {
        IpAddr::V4(_) => (8u32, 32u32, "in-addr.arpa"),
        IpAddr::V6(_) => (4, 128, "ip6.arpa"),
    };
    let p = c.prefix_len() as u32;
    let b = p.div_ceil(step) * step;
    let base: u128 = match c.addr() {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    };
    let mut out = Vec::new();
    for i in 0..(1u128 << (b - p)) {
        let a = if b == 0 { 0 } else { base | (i << (width - b)) };
        let mut labels: Vec<String> = (0..b / step)
            .map(|k| {
                let shift = width - step * (k + 1);
                let v = (a >> shift) & ((1 << step) - 1);
                if step == 8 {
                    v.to_string()
                } else {
                    format!("{v:x}")
                }
            })
            .collect();
        labels.reverse();
        labels.push(suffix.to_string());
        out.push(labels.join("."));
    }
    out
}

/// Which upstream set a zone uses.
#[derive(Debug, Clone, Copy)]
struct Route {
    set: usize,
    internal_only: bool,
}

/// The upstream sets and the zones that pick them (see the module docs).
pub struct Router {
    /// Set 0: the default upstreams; then one per forward entry.
    sets: Vec<Upstreams>,
    /// Upstream view (a client group with upstreams of its own, [`wire::key_view`]) → set;
    /// view 0 is set 0.
    views: Vec<usize>,
    /// Lowercased wire zone name → route (a few entries; keys come from the config).
    zones: HashMap<Box<[u8]>, Route, foldhash::fast::RandomState>,
    stats: Arc<Stats>,
}

impl Router {
    /// `groups`: the upstreams of the groups that have their own, view 1 first.
    pub fn new(
        defaults: Vec<UpstreamSpec>,
        forwards: &[ForwardSpec],
        groups: &[Vec<UpstreamSpec>],
        timeout: Duration,
        stats: Arc<Stats>,
        ca_file: Option<&std::path::Path>,
        strategy: Strategy,
    ) -> Result<Router, String> {
        let mut sets = vec![Upstreams::new(
            defaults,
            timeout,
            stats.clone(),
            ca_file,
            strategy,
        )?];
        let mut zones = HashMap::default();
        for f in forwards {
            if f.upstreams.is_empty() {
                return Err(format!("forward zones {:?} have no upstreams", f.zones));
            }
            let set = sets.len();
            sets.push(Upstreams::new(
                f.upstreams.clone(),
                timeout,
                stats.clone(),
                ca_file,
                strategy,
            )?);
            for z in &f.zones {
                for w in zone_names(z)? {
                    let r = Route {
                        set,
                        internal_only: f.internal_only,
                    };
                    if zones.insert(w.into_boxed_slice(), r).is_some() {
                        return Err(format!("forward zone {z:?} is given twice"));
                    }
                }
            }
        }
        let mut views = vec![0];
        for g in groups {
            if g.is_empty() {
                return Err("a group's upstreams are empty".into());
            }
            views.push(sets.len());
            sets.push(Upstreams::new(
                g.clone(),
                timeout,
                stats.clone(),
                ca_file,
                strategy,
            )?);
        }
        // a zone inside an internal-only zone is internal-only too: its names are the outer
        // zone's names (`branch.corp.example` under `corp.example`)
        let inner: Vec<Box<[u8]>> = zones
            .keys()
            .filter(|z| {
                let mut i = 1 + z[0] as usize;
                while i < z.len() && z[i] != 0 {
                    if zones.get(&z[i..]).is_some_and(|r: &Route| r.internal_only) {
                        return true;
                    }
                    i += 1 + z[i] as usize;
                }
                false
            })
            .cloned()
            .collect();
        for z in inner {
            if let Some(r) = zones.get_mut(&z) {
                r.internal_only = true;
            }
        }
        Ok(Router {
            sets,
            views,
            zones,
            stats,
        })
    }

    /// The route of the longest forward zone containing the lowercased wire name.
    fn route(&self, wire: &[u8]) -> Option<Route> {
        if self.zones.is_empty() {
            return None;
        }
        let mut i = 0;
        for _ in 0..128 {
            let len = *wire.get(i)? as usize;
            if len == 0 {
                return None;
            }
            if let Some(r) = self.zones.get(&wire[i..]) {
                return Some(*r);
            }
            i += 1 + len;
        }
        None
    }

    /// Resolves a question on its route (see the module docs).
    pub async fn query(
        &self,
        q: &Question,
        key: &[u8],
        name: &[u8],
    ) -> Result<Answered, UpstreamError> {
        if let Some(r) = self.route(wire::key_name(key)) {
            self.stats.zone_forwards.fetch_add(1, Ordering::Relaxed);
            match self.sets[r.set].query(q, key, name).await {
                Ok(a) => return Ok(a),
                Err(e) if r.internal_only => return Err(e),
                Err(_) => {
                    self.stats.zone_fallbacks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let set = self
            .views
            .get(wire::key_view(key) as usize)
            .copied()
            .unwrap_or(0);
        self.sets[set].query(q, key, name).await
    }

    /// (upstream, healthy) over every set, defaults first.
    pub fn health(&self) -> Vec<(SocketAddr, bool)> {
        self.sets.iter().flat_map(|s| s.health()).collect()
    }

    /// Counters of every upstream, defaults first, then forward zones', then groups'.
    pub fn upstream_stats(&self) -> Vec<UpstreamStats> {
        self.sets.iter().flat_map(|s| s.upstream_stats()).collect()
    }

    /// Probes the upstreams marked down in every set.
    pub async fn probe_down(&self) {
        for s in &self.sets {
            s.probe_down().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(s: &str) -> Vec<String> {
        reverse_zones(&s.parse().unwrap())
    }

    #[test]
    fn address_blocks_become_reverse_zones() {
        assert_eq!(zones("10.20.0.0/16"), vec!["20.10.in-addr.arpa"]);
        assert_eq!(zones("10.0.0.0/8"), vec!["10.in-addr.arpa"]);
        assert_eq!(zones("192.168.7.0/24"), vec!["7.168.192.in-addr.arpa"]);
        assert_eq!(zones("192.168.7.9"), vec!["9.7.168.192.in-addr.arpa"]);
        assert_eq!(zones("0.0.0.0/0"), vec!["in-addr.arpa"]);
        let z = zones("10.16.0.0/12");
        assert_eq!(z.len(), 16);
        assert_eq!(z[0], "16.10.in-addr.arpa");
        assert_eq!(z[15], "31.10.in-addr.arpa");
        assert_eq!(
            zones("172.16.4.0/23"),
            vec!["4.16.172.in-addr.arpa", "5.16.172.in-addr.arpa"]
        );
        assert_eq!(zones("fd00::/8"), vec!["d.f.ip6.arpa"]);
        assert_eq!(zones("2001:db8::/32"), vec!["8.b.d.0.1.0.0.2.ip6.arpa"]);
        assert_eq!(zones("fd00::/7"), vec!["c.f.ip6.arpa", "d.f.ip6.arpa"]);
        assert_eq!(zones("::/0"), vec!["ip6.arpa"]);
    }

    #[test]
    fn zone_entries_are_names_or_blocks() {
        let w = |s: &str| zone_names(s).unwrap();
        assert_eq!(
            w("Corp.Example."),
            vec![b"\x04corp\x07example\x00".to_vec()]
        );
        assert_eq!(
            w("10.20.0.0/16")[0],
            b"\x0220\x0210\x07in-addr\x04arpa\x00".to_vec()
        );
        for bad in [".", "", "10.20", "10.0.0.0/33", "bad name", "fd00::/200"] {
            assert!(zone_names(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_longest_zone_wins() {
        let up = |p| vec![UpstreamSpec::udp(SocketAddr::from(([127, 0, 0, 1], p)))];
        let f = |zones: &[&str], p, internal_only| ForwardSpec {
            zones: zones.iter().map(|s| s.to_string()).collect(),
            upstreams: up(p),
            internal_only,
        };
        let r = Router::new(
            up(1),
            &[
                f(&["corp.example", "10.20.0.0/16"], 2, true),
                f(&["lab.corp.example"], 3, false),
                f(&["partner.example"], 4, false),
            ],
            &[],
            Duration::from_secs(1),
            Arc::new(Stats::default()),
            None,
            Strategy::InOrder,
        )
        .unwrap();
        let set = |n: &str| {
            let mut w = Vec::new();
            crate::policy::text_to_wire(n, &mut w);
            r.route(&w).map(|r| (r.set, r.internal_only))
        };
        assert_eq!(set("corp.example"), Some((1, true)));
        assert_eq!(set("_ldap._tcp.dc._msdcs.corp.example"), Some((1, true)));
        // inside an internal-only zone: internal-only too
        assert_eq!(set("lab.corp.example"), Some((2, true)));
        assert_eq!(set("x.lab.corp.example"), Some((2, true)));
        assert_eq!(set("partner.example"), Some((3, false)));
        assert_eq!(set("10.0.20.10.in-addr.arpa"), Some((1, true)));
        assert_eq!(set("10.0.21.10.in-addr.arpa"), None);
        assert_eq!(set("notcorp.example"), None);
        assert_eq!(set("example"), None);
        assert_eq!(r.health().len(), 4);
        // the same zone twice is an error
        assert!(Router::new(
            up(1),
            &[
                f(&["corp.example"], 2, true),
                f(&["CORP.example."], 3, true)
            ],
            &[],
            Duration::from_secs(1),
            Arc::new(Stats::default()),
            None,
            Strategy::InOrder,
        )
        .is_err());
    }
}
