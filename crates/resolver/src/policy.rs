//! Block/allow policy: domain lists, RPZ zones, client groups, and the compact set they load into.
//!
//! Lists are files in any of the common formats, read by the shared parser
//! ([`dnsight_model::listfmt`], which the engine's intel feeds use too, so a list and a feed made
//! of the same file cover the same names): hosts (`0.0.0.0 ads.example`) and plain
//! (`ads.example`) lines are the name and everything below it (see the listfmt module docs for
//! why, and how that differs from AdGuard Home and Pi-hole); wildcards
//! (`*.ads.example`) only the names below; adblock (`||ads.example^`) the name and everything
//! below, with `@@||ok.ads.example^` exceptions; RPZ zone files (`CNAME .` = NXDOMAIN,
//! `CNAME *.` = NODATA, `CNAME rpz-passthru.` = allow, `CNAME rpz-drop.` = drop, any A/AAAA/CNAME
//! data = local data answered instead). Address lines and RPZ IP triggers are counted as
//! rejected (the resolver's policy matches query names).
//!
//! Why a custom set: a 2-million-domain list must load in seconds with little memory. Each entry
//! is one `u64`: a keyed 64-bit hash of the lowercased wire name with its low two bits replaced
//! by the match kind (exact / subtree / wildcard). The entries are sorted, and a bucket index on
//! the top hash bits makes a lookup two cache misses. That is ~10 bytes per domain (no strings
//! kept; rule names are per list). A false match needs a 62-bit collision under a per-load
//! random key: about 2M/2^62 per lookup, and an attacker cannot aim for one without the key.
//!
//! A [`Policy`] is immutable; reloads build a new one and swap it in (arc-swap), so queries in
//! flight keep the old one and none is dropped.

use crate::acl::Cidr;
use crate::wire;
use dnsight_model::listfmt;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const KIND_EXACT: u64 = 0;
const KIND_SUBTREE: u64 = 1;
const KIND_WILDCARD: u64 = 2;

/// A compact set of domain rules (see the module docs).
pub struct DomainSet {
    seed: u64,
    /// Sorted `(hash & !3) | kind`.
    entries: Vec<u64>,
    /// Per-entry tag (RPZ action index); empty when all tags are 0.
    tags: Vec<u32>,
    /// `index[b]..index[b+1]` is the range of entries whose top `bits` hash bits equal b.
    index: Vec<u32>,
    bits: u32,
}

/// Collects rules, then [`DomainSetBuilder::build`] sorts them once.
pub struct DomainSetBuilder {
    seed: u64,
    items: Vec<(u64, u32)>,
}

impl DomainSetBuilder {
    pub fn new() -> Self {
        DomainSetBuilder {
            seed: rand::random(),
            items: Vec::new(),
        }
    }
    fn hash(seed: u64, wire: &[u8]) -> u64 {
        foldhash::fast::FixedState::with_seed(seed).hash_one(wire) & !3
    }
    fn push(&mut self, wire: &[u8], kind: u64, tag: u32) {
        self.items.push((Self::hash(self.seed, wire) | kind, tag));
    }
    /// Adds a lowercased wire name: the name alone, or (`subdomains`) the name and every name
    /// below it. `tag` comes back from [`DomainSet::lookup`]; among duplicates the lowest wins.
    pub fn insert(&mut self, wire: &[u8], subdomains: bool, tag: u32) {
        self.push(
            wire,
            if subdomains { KIND_SUBTREE } else { KIND_EXACT },
            tag,
        );
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn build(mut self) -> DomainSet {
        self.items.sort_unstable();
        self.items.dedup_by_key(|e| e.0);
        let n = self.items.len();
        let bits = (usize::BITS - n.leading_zeros())
            .saturating_sub(1)
            .clamp(1, 24);
        let mut index = vec![0u32; (1usize << bits) + 1];
        for (i, (h, _)) in self.items.iter().enumerate().rev() {
            index[(h >> (64 - bits)) as usize] = i as u32;
        }
        // buckets with no entry start where the next bucket starts
        index[1usize << bits] = n as u32;
        let mut next = n as u32;
        let mut seen = vec![false; 1usize << bits];
        for (h, _) in &self.items {
            seen[(h >> (64 - bits)) as usize] = true;
        }
        for b in (0..(1usize << bits)).rev() {
            if seen[b] {
                next = index[b];
            } else {
                index[b] = next;
            }
        }
        let mut tags: Vec<u32> = Vec::new();
        if self.items.iter().any(|e| e.1 != 0) {
            tags.reserve_exact(n);
            tags.extend(self.items.iter().map(|e| e.1));
        }
        // exact-size buffers (an in-place collect would keep the wider allocation)
        let mut entries = Vec::with_capacity(n);
        entries.extend(self.items.iter().map(|e| e.0));
        drop(self.items);
        DomainSet {
            seed: self.seed,
            entries,
            tags,
            index,
            bits,
        }
    }
}

impl Default for DomainSetBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DomainSet {
    pub fn empty() -> DomainSet {
        DomainSetBuilder::new().build()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Bytes of memory held.
    pub fn memory(&self) -> usize {
        self.entries.capacity() * 8 + self.tags.capacity() * 4 + self.index.capacity() * 4
    }
    /// The tag of an entry with hash `h` (low bits clear) whose kind is in `kinds` (bit mask
    /// of kinds). All kinds of one name sit next to each other, so one bucket scan serves all.
    fn find(&self, h: u64, kinds: u8) -> Option<u32> {
        let b = (h >> (64 - self.bits)) as usize;
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        let slice = &self.entries[lo..hi];
        let start = slice.partition_point(|&e| e < h);
        for (k, &e) in slice[start..].iter().enumerate() {
            if e & !3 != h {
                break;
            }
            if kinds & (1 << (e & 3)) != 0 {
                return Some(self.tags.get(lo + start + k).copied().unwrap_or(0));
            }
        }
        None
    }
    /// Looks a lowercased wire name up: the full name against exact and subtree rules, every
    /// proper parent (not the root) against subtree and wildcard rules. Returns the tag of the
    /// most specific match.
    pub fn lookup(&self, wire: &[u8]) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let mut i = 0;
        let mut kinds = (1 << KIND_EXACT) | (1 << KIND_SUBTREE);
        for _ in 0..128 {
            let len = *wire.get(i)? as usize;
            if len == 0 {
                return None;
            }
            let h = DomainSetBuilder::hash(self.seed, &wire[i..]);
            if let Some(t) = self.find(h, kinds) {
                return Some(t);
            }
            kinds = (1 << KIND_WILDCARD) | (1 << KIND_SUBTREE);
            i += 1 + len;
        }
        None
    }
}

/// Lowercased wire form of presentation text (RFC 1035 escapes decoded; `*`-labels allowed by
/// caller).
/// Returns false for text that is not a plausible domain name.
pub fn text_to_wire(text: &str, out: &mut Vec<u8>) -> bool {
    out.clear();
    if text.contains('\\') {
        // presentation escapes (`\(`, `\032`): the canonical form alerts and blocks carry
        let Ok(name) = dnsight_model::Name::parse(text) else {
            return false;
        };
        if name.is_root() {
            return false;
        }
        for l in name.wire_labels() {
            if l.is_empty() || l.len() > 63 {
                out.clear();
                return false;
            }
            out.push(l.len() as u8);
            out.extend(l.iter().map(|b| b.to_ascii_lowercase()));
        }
        out.push(0);
        return true;
    }
    let t = text.trim_end_matches('.');
    if t.is_empty() || t.len() > 253 {
        return false;
    }
    for label in t.split('.') {
        let l = label.as_bytes();
        if l.is_empty() || l.len() > 63 || l.iter().any(|&b| b <= b' ' || b == b'\\' || b >= 0x7f) {
            out.clear();
            return false;
        }
        out.push(l.len() as u8);
        out.extend(l.iter().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    true
}

/// How a blocked query is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockAnswer {
    NxDomain,
    NoData,
    /// 0.0.0.0 for A, :: for AAAA, NODATA for other types.
    Null,
    /// Configured addresses for A/AAAA, NODATA for other types.
    Sinkhole {
        v4: Option<std::net::Ipv4Addr>,
        v6: Option<std::net::Ipv6Addr>,
    },
    Refused,
}

/// What a list's entries mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListRole {
    Block,
    Allow,
}

/// RPZ actions (tags in an RPZ list's set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpzAction {
    NxDomain,
    NoData,
    Passthru,
    Drop,
    /// Records answered instead: (type, rdata).
    Local(Vec<(u16, Vec<u8>)>),
}

/// One loaded list.
pub struct List {
    /// Shown in verdicts: `blocklist:NAME`.
    pub name: String,
    pub path: PathBuf,
    pub role: ListRole,
    pub block: DomainSet,
    /// Exceptions (`@@` rules, allow lists).
    pub allow: DomainSet,
    /// RPZ actions by tag; empty for plain lists.
    pub rpz: Vec<RpzAction>,
    pub rejected_lines: u64,
}

/// Counts from loading one list.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    pub rules: usize,
    pub rejected: u64,
}

/// Where to load a list from and how it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSpec {
    pub name: String,
    pub path: PathBuf,
    pub role: ListRole,
}

impl List {
    /// Loads a list file (format detected: RPZ when it looks like a zone file, else per line).
    pub fn load(spec: &ListSpec) -> std::io::Result<List> {
        let text = std::fs::read(&spec.path)?;
        let text = String::from_utf8_lossy(&text);
        Ok(Self::parse(spec, &text))
    }

    /// Parses a list with the shared parser ([`dnsight_model::listfmt`]: one meaning per line
    /// syntax for the resolver and the engine). RPZ when the file is `.rpz`/`.zone` or looks like
    /// a zone file. Address lines and RPZ IP triggers are not QNAME rules: counted as rejected.
    pub fn parse(spec: &ListSpec, text: &str) -> List {
        let by_ext = spec
            .path
            .extension()
            .is_some_and(|e| e == "rpz" || e == "zone");
        let format = if by_ext {
            listfmt::Format::Rpz
        } else {
            listfmt::Format::Auto
        };
        let mut block = DomainSetBuilder::new();
        let mut allow = DomainSetBuilder::new();
        let mut actions: Vec<RpzAction> = Vec::new();
        let mut local: HashMap<(bool, String), usize> = HashMap::new();
        let mut rejected = 0u64;
        let mut wire = Vec::with_capacity(256);
        let allow_role = spec.role == ListRole::Allow;
        let counts = listfmt::parse(text, format, |e| {
            let listfmt::Target::Name(name) = &e.target else {
                rejected += 1;
                return;
            };
            if !text_to_wire(name, &mut wire) {
                rejected += 1;
                return;
            }
            let kind = match (e.wildcard, e.subdomains) {
                (true, _) => KIND_WILDCARD,
                (false, true) => KIND_SUBTREE,
                (false, false) => KIND_EXACT,
            };
            let Some(action) = &e.rpz else {
                if e.exception || allow_role {
                    allow.push(&wire, kind, 0);
                } else {
                    block.push(&wire, kind, 0);
                }
                return;
            };
            if actions.is_empty() {
                actions = vec![
                    RpzAction::NxDomain,
                    RpzAction::NoData,
                    RpzAction::Passthru,
                    RpzAction::Drop,
                ];
            }
            let tag = match action {
                listfmt::RpzAction::NxDomain => 0,
                listfmt::RpzAction::NoData => 1,
                listfmt::RpzAction::Passthru => 2,
                listfmt::RpzAction::Drop => 3,
                listfmt::RpzAction::Local { rtype, data } => {
                    let rec: Option<(u16, Vec<u8>)> = match *rtype {
                        wire::TYPE_A => data
                            .parse::<std::net::Ipv4Addr>()
                            .ok()
                            .map(|a| (wire::TYPE_A, a.octets().to_vec())),
                        wire::TYPE_AAAA => data
                            .parse::<std::net::Ipv6Addr>()
                            .ok()
                            .map(|a| (wire::TYPE_AAAA, a.octets().to_vec())),
                        _ => {
                            let mut w = Vec::new();
                            text_to_wire(data, &mut w).then_some((wire::TYPE_CNAME, w))
                        }
                    };
                    let Some(rec) = rec else {
                        rejected += 1;
                        return;
                    };
                    let idx = *local
                        .entry((e.wildcard, name.to_string()))
                        .or_insert_with(|| {
                            actions.push(RpzAction::Local(Vec::new()));
                            actions.len() - 1
                        });
                    if let RpzAction::Local(v) = &mut actions[idx] {
                        v.push(rec);
                    }
                    idx as u32
                }
            };
            block.push(&wire, kind, tag);
        });
        if counts.format == listfmt::Format::Rpz && actions.is_empty() {
            // an RPZ zone with no usable trigger is still an RPZ list (tags are actions)
            actions = vec![
                RpzAction::NxDomain,
                RpzAction::NoData,
                RpzAction::Passthru,
                RpzAction::Drop,
            ];
        }
        List {
            name: spec.name.clone(),
            path: spec.path.clone(),
            role: spec.role,
            block: block.build(),
            allow: allow.build(),
            rpz: actions,
            rejected_lines: counts.rejected + rejected,
        }
    }

    pub fn rules(&self) -> usize {
        self.block.len() + self.allow.len()
    }
}

/// A client group: who belongs and which lists apply.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub clients: Vec<Cidr>,
    /// Indices into [`Policy::lists`].
    pub lists: Vec<usize>,
    pub answer: BlockAnswer,
    /// The group's upstream view: 0 = `[resolver] upstreams`, 1.. = its own upstreams
    /// ([`crate::route::Router`] set; also part of the cache key, see [`crate::wire::VIEW_SHIFT`]).
    pub view: u8,
}

/// Most groups that may have upstreams of their own (the view is 4 bits of the cache key).
pub const MAX_VIEWS: usize = 15;

/// The decision for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    Pass,
    /// Allowed explicitly by a list (still resolved normally).
    Allowed {
        list: usize,
    },
    Block {
        list: usize,
        answer: &'a BlockAnswer,
    },
    Local {
        list: usize,
        records: &'a [(u16, Vec<u8>)],
    },
    Drop {
        list: usize,
    },
}

/// Everything the resolver consults per query; immutable, swapped whole on reload.
pub struct Policy {
    pub lists: Vec<List>,
    /// The client groups; the last one is the default group (everyone no other block matches).
    /// Read-only once built: [`Policy::group_of`] uses an index made from them in
    /// [`Policy::new`].
    pub groups: Vec<Group>,
    pub block_ttl: u32,
    /// Groups with upstreams of their own (0: every group uses the default upstreams, and the
    /// query path skips the group lookup).
    pub views: u8,
    /// Names the resolver answers itself ([`crate::local`]), before the lists.
    pub local: crate::local::LocalRecords,
    clients: ClientIndex,
}

/// Which group a client address belongs to: over every group's client blocks, the longest
/// matching prefix wins (a single address, `/32` or `/128`, beats any wider block); among
/// equal blocks in two groups, the earlier group. Single addresses are hashed (an inventory
/// may name thousands of devices); the wider blocks are few and scanned longest first.
#[derive(Debug, Clone, Default)]
struct ClientIndex {
    /// Canonical address (IPv4-mapped IPv6 as IPv4) → group index.
    hosts: HashMap<IpAddr, usize, foldhash::fast::RandomState>,
    /// Wider blocks, longest prefix first (ties in group order), with their group index.
    nets: Vec<(Cidr, usize)>,
}

impl ClientIndex {
    fn new(groups: &[Group]) -> ClientIndex {
        let mut ix = ClientIndex::default();
        for (gi, g) in groups.iter().enumerate() {
            for c in &g.clients {
                let full = if c.addr().is_ipv4() { 32 } else { 128 };
                if c.prefix_len() == full {
                    ix.hosts
                        .entry(dnsight_model::canonical(c.addr()))
                        .or_insert(gi);
                } else {
                    ix.nets.push((*c, gi));
                }
            }
        }
        // stable: blocks of one length stay in group order
        ix.nets
            .sort_by_key(|(c, _)| std::cmp::Reverse(c.prefix_len()));
        ix
    }
    fn find(&self, client: IpAddr) -> Option<usize> {
        let ip = dnsight_model::canonical(client);
        if !self.hosts.is_empty() {
            if let Some(&g) = self.hosts.get(&ip) {
                return Some(g);
            }
        }
        self.nets
            .iter()
            .find(|(c, _)| c.contains_canonical(ip))
            .map(|&(_, g)| g)
    }
}

impl Policy {
    /// A policy over loaded lists and groups (the last group is the default group; an empty
    /// `groups` gets a default group that uses every list and answers NXDOMAIN).
    pub fn new(lists: Vec<List>, mut groups: Vec<Group>, block_ttl: u32) -> Policy {
        if groups.is_empty() {
            groups.push(Group {
                name: "default".into(),
                clients: Vec::new(),
                lists: (0..lists.len()).collect(),
                answer: BlockAnswer::NxDomain,
                view: 0,
            });
        }
        let clients = ClientIndex::new(&groups);
        let views = groups.iter().map(|g| g.view).max().unwrap_or(0);
        Policy {
            lists,
            groups,
            block_ttl,
            views,
            local: Default::default(),
            clients,
        }
    }

    pub fn empty() -> Policy {
        Policy::new(Vec::new(), Vec::new(), 60)
    }

    /// The client's group: the group with the longest client block containing the address
    /// (see [`ClientIndex`]), else the default group (the last one).
    pub fn group_of(&self, client: IpAddr) -> &Group {
        let n = self.groups.len();
        let i = self.clients.find(client).unwrap_or(n - 1);
        &self.groups[i]
    }

    /// Decides a query for `client` asking for the lowercased wire name `wire`.
    pub fn decide(&self, client: IpAddr, wire: &[u8]) -> Decision<'_> {
        if self.lists.is_empty() {
            return Decision::Pass;
        }
        let g = self.group_of(client);
        for &li in &g.lists {
            let l = &self.lists[li];
            if l.allow.lookup(wire).is_some() {
                return Decision::Allowed { list: li };
            }
            if !l.rpz.is_empty() {
                if let Some(2) = l.block.lookup(wire) {
                    return Decision::Allowed { list: li };
                }
            }
        }
        for &li in &g.lists {
            let l = &self.lists[li];
            if l.role == ListRole::Allow {
                continue;
            }
            let Some(tag) = l.block.lookup(wire) else {
                continue;
            };
            if l.rpz.is_empty() {
                return Decision::Block {
                    list: li,
                    answer: &g.answer,
                };
            }
            return match &l.rpz[tag as usize] {
                RpzAction::NxDomain => Decision::Block {
                    list: li,
                    answer: &BlockAnswer::NxDomain,
                },
                RpzAction::NoData => Decision::Block {
                    list: li,
                    answer: &BlockAnswer::NoData,
                },
                RpzAction::Passthru => Decision::Allowed { list: li },
                RpzAction::Drop => Decision::Drop { list: li },
                RpzAction::Local(r) => Decision::Local {
                    list: li,
                    records: r,
                },
            };
        }
        Decision::Pass
    }

    pub fn total_rules(&self) -> usize {
        self.lists.iter().map(|l| l.rules()).sum()
    }
    pub fn memory(&self) -> usize {
        self.lists
            .iter()
            .map(|l| l.block.memory() + l.allow.memory())
            .sum()
    }
}

/// What to build a [`Policy`] from (kept by the resolver for reloads).
#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub lists: Vec<ListSpec>,
    /// Groups by name with their list names; when empty, one default group uses all lists.
    /// A client belongs to the group with the longest client block containing its address
    /// ([`Policy::group_of`]); the group named `default` (given or implied) takes everyone else.
    pub groups: Vec<GroupSpec>,
    pub default_answer: BlockAnswer,
    pub block_ttl: u32,
    /// Local records (config lines and hosts-style files, reloaded with the lists).
    pub local: crate::local::LocalSpec,
}

#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub name: String,
    pub clients: Vec<Cidr>,
    /// List names; `None` means all lists.
    pub lists: Option<Vec<String>>,
    pub answer: Option<BlockAnswer>,
    /// Upstreams of the group's own, instead of the default upstreams (forward zones still
    /// go to their servers); `None`: the default upstreams. Not for the `default` group.
    pub upstreams: Option<Vec<crate::upstream::UpstreamSpec>>,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            lists: Vec::new(),
            groups: Vec::new(),
            default_answer: BlockAnswer::NxDomain,
            block_ttl: 60,
            local: crate::local::LocalSpec::new(),
        }
    }
}

impl PolicySpec {
    /// Loads every list and builds the policy. A list that cannot be read is an error (the
    /// caller keeps the previous policy on reload).
    pub fn build(&self) -> Result<Policy, String> {
        let mut lists = Vec::with_capacity(self.lists.len());
        for s in &self.lists {
            lists.push(
                List::load(s)
                    .map_err(|e| format!("list {:?} ({}): {e}", s.name, s.path.display()))?,
            );
        }
        let all: Vec<usize> = (0..lists.len()).collect();
        let resolve = |names: &Option<Vec<String>>| -> Result<Vec<usize>, String> {
            match names {
                None => Ok(all.clone()),
                Some(ns) => ns
                    .iter()
                    .map(|n| {
                        lists
                            .iter()
                            .position(|l| &l.name == n)
                            .ok_or_else(|| format!("group refers to unknown list {n:?}"))
                    })
                    .collect(),
            }
        };
        let mut groups = Vec::new();
        let mut default = Group {
            name: "default".into(),
            clients: Vec::new(),
            lists: all.clone(),
            answer: self.default_answer.clone(),
            view: 0,
        };
        let mut view = 0u8;
        for g in &self.groups {
            let v = match &g.upstreams {
                Some(_) if g.name == "default" => {
                    return Err("the default group cannot have upstreams of its own: they are [resolver] upstreams".into())
                }
                Some(_) => {
                    view += 1;
                    if view as usize > MAX_VIEWS {
                        return Err(format!("more than {MAX_VIEWS} groups have upstreams of their own"));
                    }
                    view
                }
                None => 0,
            };
            let built = Group {
                view: v,
                name: g.name.clone(),
                clients: g.clients.clone(),
                lists: resolve(&g.lists)?,
                answer: g
                    .answer
                    .clone()
                    .unwrap_or_else(|| self.default_answer.clone()),
            };
            if g.name == "default" {
                default = built;
            } else {
                groups.push(built);
            }
        }
        groups.push(default);
        let local = crate::local::LocalRecords::build(&self.local)?;
        if local.rejected > 0 {
            tracing::warn!(
                rejected = local.rejected,
                first = ?local.first_rejected,
                "local records: lines that are not `NAME [TTL] TYPE DATA` (A, AAAA, CNAME, TXT, PTR) or `ADDRESS NAME...` were skipped"
            );
        }
        let mut p = Policy::new(lists, groups, self.block_ttl);
        p.local = local;
        Ok(p)
    }

    /// The upstreams of the groups that have their own, in view order (view 1 first).
    pub fn view_upstreams(&self) -> Vec<Vec<crate::upstream::UpstreamSpec>> {
        self.groups
            .iter()
            .filter_map(|g| g.upstreams.clone())
            .collect()
    }

    /// Modification times of every list and local-records file (for change polling).
    pub fn mtimes(&self) -> Vec<Option<std::time::SystemTime>> {
        self.lists
            .iter()
            .map(|l| &l.path)
            .chain(&self.local.files)
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }
}

/// A list's display name from its path (file name).
pub fn list_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        assert!(text_to_wire(s, &mut v), "{s}");
        v
    }
    #[test]
    fn escaped_names_decode_to_their_wire_bytes() {
        // the canonical form alerts and blocks carry (dnsight_model::Name)
        assert_eq!(w("a\\(1\\).Ex"), b"\x04a(1)\x02ex\x00".to_vec());
        assert_eq!(
            w("sp\\032ace.example"),
            b"\x06sp ace\x07example\x00".to_vec()
        );
        assert_eq!(w("dot\\.in.label"), b"\x06dot.in\x05label\x00".to_vec());
        assert_eq!(
            w("raw(paren).example"),
            b"\x0araw(paren)\x07example\x00".to_vec()
        );
        let mut v = Vec::new();
        for bad in ["bad\\", "bad\\25", "a..b\\("] {
            assert!(!text_to_wire(bad, &mut v), "{bad}");
        }
    }

    fn spec(name: &str) -> ListSpec {
        ListSpec {
            name: name.into(),
            path: PathBuf::from(name),
            role: ListRole::Block,
        }
    }

    #[test]
    fn formats_and_semantics() {
        let text = "# comment\n! adblock comment\n0.0.0.0 exact.example other.example\nplain.example\n*.wild.example\n||ad.example^\n||ad2.example^$third-party\n@@||ok.ad.example^\nnot a domain line\nbad\\name.example\n";
        let l = List::parse(&spec("t.txt"), text);
        assert_eq!(l.rejected_lines, 2);
        let p = Policy::new(
            vec![l],
            vec![Group {
                name: "default".into(),
                clients: vec![],
                lists: vec![0],
                answer: BlockAnswer::NxDomain,
                view: 0,
            }],
            60,
        );
        let c: IpAddr = "10.0.0.1".parse().unwrap();
        let blocked = |n: &str| matches!(p.decide(c, &w(n)), Decision::Block { .. });
        assert!(blocked("exact.example"));
        assert!(blocked("other.example"));
        // hosts lines cover subdomains too (listfmt::HOSTS_SUBDOMAINS)
        assert!(blocked("sub.exact.example"));
        assert!(blocked("plain.example"));
        assert!(blocked("a.b.plain.example"));
        assert!(!blocked("wild.example"));
        assert!(blocked("x.wild.example"));
        assert!(blocked("ad.example"));
        assert!(blocked("x.ad2.example"));
        assert!(!blocked("ok.ad.example"));
        assert!(!blocked("x.ok.ad.example"));
        assert!(!blocked("example"));
        assert!(!blocked("notplain.example"));
        assert!(matches!(
            p.decide(c, &w("ok.ad.example")),
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn rpz_actions() {
        let zone = "$TTL 60\n$ORIGIN rpz.local.\n@ SOA ns.rpz.local. admin.rpz.local. (\n 1 3600 600\n 86400 60 )\n  NS ns.rpz.local.\nnx.example CNAME .\n*.nx.example CNAME .\nnodata.example CNAME *.\nok.nx.example CNAME rpz-passthru.\ndrop.example CNAME rpz-drop.\nlocal.example A 10.1.2.3\nlocal.example AAAA ::1\nabs.example.rpz.local. CNAME .\n";
        let l = List::parse(
            &ListSpec {
                name: "z.rpz".into(),
                path: "z.rpz".into(),
                role: ListRole::Block,
            },
            zone,
        );
        assert_eq!(l.rejected_lines, 0);
        let p = Policy::new(
            vec![l],
            vec![Group {
                name: "default".into(),
                clients: vec![],
                lists: vec![0],
                answer: BlockAnswer::Null,
                view: 0,
            }],
            60,
        );
        let c: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(matches!(
            p.decide(c, &w("nx.example")),
            Decision::Block {
                answer: BlockAnswer::NxDomain,
                ..
            }
        ));
        assert!(matches!(
            p.decide(c, &w("a.nx.example")),
            Decision::Block {
                answer: BlockAnswer::NxDomain,
                ..
            }
        ));
        assert!(matches!(
            p.decide(c, &w("ok.nx.example")),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            p.decide(c, &w("nodata.example")),
            Decision::Block {
                answer: BlockAnswer::NoData,
                ..
            }
        ));
        assert!(matches!(
            p.decide(c, &w("drop.example")),
            Decision::Drop { .. }
        ));
        assert!(matches!(
            p.decide(c, &w("abs.example")),
            Decision::Block { .. }
        ));
        match p.decide(c, &w("local.example")) {
            Decision::Local { records, .. } => assert_eq!(records.len(), 2),
            d => panic!("{d:?}"),
        }
        assert_eq!(p.decide(c, &w("other.example")), Decision::Pass);
    }

    #[test]
    fn groups_choose_lists() {
        let a = List::parse(&spec("a"), "a.example\n");
        let b = List::parse(&spec("b"), "b.example\n");
        let kids = Group {
            name: "kids".into(),
            clients: vec!["10.9.0.0/16".parse().unwrap()],
            lists: vec![0, 1],
            answer: BlockAnswer::Refused,
            view: 0,
        };
        let def = Group {
            name: "default".into(),
            clients: vec![],
            lists: vec![0],
            answer: BlockAnswer::NxDomain,
            view: 0,
        };
        let p = Policy::new(vec![a, b], vec![kids, def], 60);
        let kid: IpAddr = "10.9.1.1".parse().unwrap();
        let adult: IpAddr = "10.8.1.1".parse().unwrap();
        assert!(matches!(
            p.decide(kid, &w("b.example")),
            Decision::Block {
                answer: BlockAnswer::Refused,
                ..
            }
        ));
        assert_eq!(p.decide(adult, &w("b.example")), Decision::Pass);
        assert!(matches!(
            p.decide(adult, &w("a.example")),
            Decision::Block {
                answer: BlockAnswer::NxDomain,
                ..
            }
        ));
    }

    #[test]
    fn the_longest_client_block_decides_the_group() {
        let g = |name: &str, clients: &[&str]| Group {
            name: name.into(),
            clients: clients.iter().map(|c| c.parse().unwrap()).collect(),
            lists: vec![],
            answer: BlockAnswer::NxDomain,
            view: 0,
        };
        // the wide group first: config order does not matter, the longest prefix does
        let p = Policy::new(
            vec![],
            vec![
                g("office", &["10.0.0.0/8", "fd00::/8"]),
                g("servers", &["10.0.1.0/24", "fd00:1::/32"]),
                g("db", &["10.0.1.10", "10.0.1.11/32"]),
                g("lab", &["10.0.1.0/24"]),
                g("default", &["10.0.1.128/25"]),
            ],
            60,
        );
        let of = |ip: &str| p.group_of(ip.parse().unwrap()).name.clone();
        assert_eq!(of("10.9.9.9"), "office");
        assert_eq!(of("10.0.1.5"), "servers"); // equal blocks: the earlier group
        assert_eq!(of("10.0.1.10"), "db");
        assert_eq!(of("::ffff:10.0.1.11"), "db"); // IPv4-mapped is IPv4
        assert_eq!(of("10.0.1.200"), "default"); // the default group's own block counts too
        assert_eq!(of("fd00:1::5"), "servers");
        assert_eq!(of("fd00:2::5"), "office");
        assert_eq!(of("192.168.1.1"), "default");
        assert_eq!(
            Policy::empty().group_of("10.0.0.1".parse().unwrap()).name,
            "default"
        );
    }

    #[test]
    fn big_set_has_no_false_negatives() {
        let mut b = DomainSetBuilder::new();
        let mut wire = Vec::new();
        for i in 0..50_000 {
            text_to_wire(&format!("d{i}.example"), &mut wire);
            b.push(&wire, KIND_SUBTREE, 0);
        }
        let s = b.build();
        for i in 0..50_000 {
            text_to_wire(&format!("x.d{i}.example"), &mut wire);
            assert!(s.lookup(&wire).is_some(), "{i}");
            text_to_wire(&format!("e{i}.example"), &mut wire);
            assert!(s.lookup(&wire).is_none(), "{i}");
        }
        assert!(s.memory() < 50_000 * 16, "{}", s.memory());
    }
}
