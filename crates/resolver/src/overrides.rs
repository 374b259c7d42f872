//! Dynamic overrides: per-destination block and allow rules set at run time (from an alert's
//! "block" / "allow" action), applied from the next query without a restart or a list reload.
//!
//! Order per query: an override **allow** (device, then group, then all) → an override **block**
//! (same order) → the lists as configured. An allow is an exception that beats every list
//! (and every override block); a block is answered with the client's group's block answer
//! ([`crate::BlockAnswer`], NXDOMAIN by default). The event's verdict rule is `block:<id>` or
//! `allow:<id>` so the engine and the query log can say which override decided.
//!
//! The compiled set ([`Overrides`]) is immutable and swapped whole ([`crate::Resolver::set_overrides`]),
//! like the policy. Names use the same hashed [`DomainSet`] as the lists (exact name, or the name
//! and its subdomains), one pair of sets (allow, block) per scope bucket: everyone, each group
//! name, each device address. With no overrides the query path pays one atomic load and an
//! emptiness check. The decision is taken before the cache is consulted, so a cached name is
//! blocked from the very next query.

use crate::policy::{text_to_wire, DomainSet, DomainSetBuilder};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Who an override applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OverrideScope {
    /// Every client.
    All,
    /// Clients of the resolver group of this name ([`crate::policy::Policy::group_of`]).
    Group(String),
    /// One client address (IPv4-mapped IPv6 clients match their IPv4 address).
    Device(IpAddr),
}

/// One override rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Stable identifier (shown as `block:<id>` / `allow:<id>` in verdicts).
    pub id: i64,
    /// Lowercased presentation name (`ads.example`; `\DDD` escapes accepted; a trailing dot is
    /// optional).
    pub name: String,
    /// True: the name and every name below it; false: the name alone.
    pub subdomains: bool,
    pub scope: OverrideScope,
    /// True: an exception that beats every list; false: a block.
    pub allow: bool,
}

/// What an override decided for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideHit<'a> {
    /// Resolve normally whatever the lists say; rule name `allow:<id>`.
    Allow(&'a Arc<str>),
    /// Answer with the group's block answer; rule name `block:<id>`.
    Block(&'a Arc<str>),
}

/// The allow and block sets of one scope bucket.
struct Bucket {
    allow: DomainSet,
    block: DomainSet,
}

#[derive(Default)]
struct BucketBuilder {
    allow: Option<DomainSetBuilder>,
    block: Option<DomainSetBuilder>,
}

impl BucketBuilder {
    fn build(self) -> Bucket {
        Bucket {
            allow: self
                .allow
                .map(|b| b.build())
                .unwrap_or_else(DomainSet::empty),
            block: self
                .block
                .map(|b| b.build())
                .unwrap_or_else(DomainSet::empty),
        }
    }
}

/// A compiled, immutable set of overrides (see the module docs).
pub struct Overrides {
    all: Option<Bucket>,
    groups: HashMap<String, Bucket>,
    devices: HashMap<IpAddr, Bucket>,
    /// Rule names by tag (`block:<id>` / `allow:<id>`).
    names: Vec<Arc<str>>,
    /// Ids of rules whose name is not a valid domain name (skipped).
    rejected: Vec<i64>,
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Overrides {
    /// No overrides.
    pub fn empty() -> Overrides {
        Overrides {
            all: None,
            groups: HashMap::new(),
            devices: HashMap::new(),
            names: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// Compiles rules. Rules whose name is not a domain name are skipped (see
    /// [`Overrides::rejected`]); the same name twice in one bucket keeps the lower tag (the
    /// earlier rule).
    pub fn build(rules: &[Override]) -> Overrides {
        let mut all = BucketBuilder::default();
        let mut groups: HashMap<String, BucketBuilder> = HashMap::new();
        let mut devices: HashMap<IpAddr, BucketBuilder> = HashMap::new();
        let mut names = Vec::with_capacity(rules.len());
        let mut rejected = Vec::new();
        let mut wire = Vec::with_capacity(256);
        for r in rules {
            if !text_to_wire(r.name.trim(), &mut wire) {
                rejected.push(r.id);
                continue;
            }
            let tag = names.len() as u32;
            names.push(Arc::from(format!(
                "{}:{}",
                if r.allow { "allow" } else { "block" },
                r.id
            )));
            let b = match &r.scope {
                OverrideScope::All => &mut all,
                OverrideScope::Group(g) => groups.entry(g.clone()).or_default(),
                OverrideScope::Device(ip) => devices.entry(canonical_ip(*ip)).or_default(),
            };
            let set = if r.allow { &mut b.allow } else { &mut b.block };
            set.get_or_insert_with(DomainSetBuilder::new)
                .insert(&wire, r.subdomains, tag);
        }
        let any_all = all.allow.is_some() || all.block.is_some();
        Overrides {
            all: any_all.then(|| all.build()),
            groups: groups.into_iter().map(|(k, v)| (k, v.build())).collect(),
            devices: devices.into_iter().map(|(k, v)| (k, v.build())).collect(),
            names,
            rejected,
        }
    }

    /// True when no rule was compiled (the query path then skips everything).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of compiled rules.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Ids of rules skipped because their name is not a domain name.
    pub fn rejected(&self) -> &[i64] {
        &self.rejected
    }

    /// True when some rule is scoped to a group (the caller then needs the client's group).
    pub fn has_groups(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Decides a query from `client` (in resolver group `group`, when known) for the
    /// lowercased wire name `wire`: allow before block, device before group before all.
    pub fn decide(
        &self,
        client: IpAddr,
        group: Option<&str>,
        wire: &[u8],
    ) -> Option<OverrideHit<'_>> {
        if self.is_empty() {
            return None;
        }
        let dev = if self.devices.is_empty() {
            None
        } else {
            self.devices.get(&canonical_ip(client))
        };
        let grp = match group {
            Some(g) if !self.groups.is_empty() => self.groups.get(g),
            _ => None,
        };
        let buckets = [dev, grp, self.all.as_ref()];
        for b in buckets.iter().flatten() {
            if let Some(t) = b.allow.lookup(wire) {
                return Some(OverrideHit::Allow(&self.names[t as usize]));
            }
        }
        for b in buckets.iter().flatten() {
            if let Some(t) = b.block.lookup(wire) {
                return Some(OverrideHit::Block(&self.names[t as usize]));
            }
        }
        None
    }

    /// Bytes held by the sets (approximate).
    pub fn memory(&self) -> usize {
        let b = |b: &Bucket| b.allow.memory() + b.block.memory();
        self.all.as_ref().map(b).unwrap_or(0)
            + self.groups.values().map(b).sum::<usize>()
            + self.devices.values().map(b).sum::<usize>()
    }
}

impl Default for Overrides {
    fn default() -> Self {
        Self::empty()
    }
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("rules", &self.names.len())
            .field("groups", &self.groups.len())
            .field("devices", &self.devices.len())
            .field("rejected", &self.rejected)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        assert!(text_to_wire(s, &mut v), "{s}");
        v
    }
    fn rule(id: i64, name: &str, subdomains: bool, scope: OverrideScope, allow: bool) -> Override {
        Override {
            id,
            name: name.into(),
            subdomains,
            scope,
            allow,
        }
    }
    fn hit(o: &Overrides, ip: &str, group: Option<&str>, name: &str) -> Option<String> {
        o.decide(ip.parse().unwrap(), group, &w(name))
            .map(|h| match h {
                OverrideHit::Allow(r) | OverrideHit::Block(r) => r.to_string(),
            })
    }

    #[test]
    fn order_and_scopes() {
        let dev: IpAddr = "10.0.0.5".parse().unwrap();
        let o = Overrides::build(&[
            rule(1, "bad.example", true, OverrideScope::All, false),
            rule(2, "exact.example", false, OverrideScope::All, false),
            rule(3, "ok.bad.example", false, OverrideScope::All, true),
            rule(
                4,
                "kid.example",
                true,
                OverrideScope::Group("kids".into()),
                false,
            ),
            rule(5, "bad.example", true, OverrideScope::Device(dev), true),
            rule(6, "Not A Name", false, OverrideScope::All, false),
            rule(7, "esc\\046aped.example", false, OverrideScope::All, false),
        ]);
        assert_eq!(o.len(), 6);
        assert_eq!(o.rejected(), &[6]);
        let other = "10.0.0.9";
        assert_eq!(
            hit(&o, other, None, "bad.example").as_deref(),
            Some("block:1")
        );
        assert_eq!(
            hit(&o, other, None, "a.b.bad.example").as_deref(),
            Some("block:1")
        );
        assert_eq!(
            hit(&o, other, None, "ok.bad.example").as_deref(),
            Some("allow:3")
        );
        // the allow is exact: below it the block applies
        assert_eq!(
            hit(&o, other, None, "x.ok.bad.example").as_deref(),
            Some("block:1")
        );
        assert_eq!(
            hit(&o, other, None, "exact.example").as_deref(),
            Some("block:2")
        );
        assert_eq!(hit(&o, other, None, "a.exact.example"), None);
        assert_eq!(hit(&o, other, None, "kid.example"), None);
        assert_eq!(
            hit(&o, other, Some("kids"), "x.kid.example").as_deref(),
            Some("block:4")
        );
        // the device's allow beats the everyone block
        assert_eq!(
            hit(&o, "10.0.0.5", None, "x.bad.example").as_deref(),
            Some("allow:5")
        );
        assert_eq!(
            hit(&o, "::ffff:10.0.0.5", None, "bad.example").as_deref(),
            Some("allow:5")
        );
        assert_eq!(hit(&o, other, None, "esc.aped.example"), None);
        let mut v = Vec::new();
        assert!(text_to_wire("esc\\046aped.example", &mut v));
        assert_eq!(
            o.decide(other.parse().unwrap(), None, &v),
            Some(OverrideHit::Block(&Arc::from("block:7")))
        );
        assert!(Overrides::build(&[]).is_empty());
        assert_eq!(
            Overrides::empty().decide(dev, None, &w("bad.example")),
            None
        );
    }
}
