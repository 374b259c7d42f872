//! The query path: listeners, the per-query decision, cache hits and upstream misses.
//!
//! UDP: one `SO_REUSEPORT` socket per worker thread (plain blocking `recv_from`/`send_to`, so
//! the kernel spreads clients over workers and a cache hit costs two syscalls and a copy).
//! Misses are handed to the tokio runtime, which asks upstream and answers through a clone of
//! the same socket. TCP (and TLS): tokio tasks with idle/half-open timeouts and a connection cap.
//!
//! [`Core::handle`] is shared by every transport: ACL → rate limit → parse → opcode/class/ANY
//! rules → policy → cache. It never waits for anything; each query ends as exactly one
//! [`QueryRecord`] pushed (without blocking) to the event queue.

use crate::acl::{self, Cidr, RateLimiter};
use crate::cache::PacketCache;
use crate::dnssec::{self, DnssecMode, Validator, Verdict};
use crate::events::{EventQueue, QueryRecord};
use crate::overrides::{OverrideHit, Overrides};
use crate::policy::{BlockAnswer, Decision, Policy};
use crate::route::Router;
use crate::stats::Stats;
use crate::wire::{self, Question, WireError};
use arc_swap::ArcSwap;
use dnsight_model::{Transport, VerdictAction};
use smallvec::SmallVec;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Limits and switches consulted per query.
#[derive(Debug, Clone)]
pub struct QueryRules {
    pub acl: Vec<Cidr>,
    /// Answer ANY with one HINFO record (RFC 8482) instead of forwarding.
    pub minimal_any: bool,
    /// Largest query accepted (bytes).
    pub max_query_size: usize,
    /// Copy response bytes into events so answers are decoded (costs a copy per query).
    pub event_answers: bool,
}

impl Default for QueryRules {
    fn default() -> Self {
        QueryRules {
            acl: acl::default_acl(),
            minimal_any: true,
            max_query_size: 4096,
            event_answers: true,
        }
    }
}

/// Everything shared by the workers.
pub struct Core {
    pub rules: QueryRules,
    pub cache: PacketCache,
    pub policy: ArcSwap<Policy>,
    /// Dynamic block/allow overrides, consulted before the lists ([`crate::overrides`]).
    pub overrides: ArcSwap<Overrides>,
    /// Forward zones and the default upstreams ([`crate::route`]).
    pub upstreams: Router,
    pub rate: RateLimiter,
    pub stats: Arc<Stats>,
    pub events: EventQueue,
    /// `blocklist:NAME` per list index of the current policy.
    pub rule_names: ArcSwap<Vec<Arc<str>>>,
    /// The verdict rule of answers from local records (`local`).
    pub local_rule: Arc<str>,
    /// Background cache refreshes, asked for by cache hits (`CacheConfig::prefetch` decides).
    /// Bounded: when full, a prefetch is skipped (the entry then expires and misses once, as
    /// without prefetch).
    pub prefetch: tokio::sync::mpsc::Sender<Prefetch>,
    /// DNSSEC pass-through or validation ([`crate::dnssec`]).
    pub dnssec: DnssecMode,
    /// The validator (with `DnssecMode::Validate`).
    pub validator: Option<Validator>,
}

/// An upstream answer after the DNSSEC rules ([`Core::ask`]).
enum Asked {
    /// What to cache and answer.
    Answer(Vec<u8>),
    /// Failed validation: SERVFAIL.
    Bogus,
    /// No upstream answered.
    Failed,
}

/// A cache entry to refresh upstream.
pub struct Prefetch {
    pub q: Question,
    pub key: Vec<u8>,
    /// The client's spelling of the name (wire form).
    pub name: Vec<u8>,
}

/// Per-worker reusable buffers (no allocation on the hit path).
#[derive(Default)]
pub struct Scratch {
    pub key: Vec<u8>,
    pub out: Vec<u8>,
}

/// What to do after [`Core::handle`].
pub enum Outcome {
    /// Send `scratch.out`.
    Reply,
    /// Nothing to send.
    Drop,
    /// Ask upstream; the question and key are in the scratch key buffer.
    Miss(Question),
}

/// Who asked, and over what.
#[derive(Clone, Copy)]
pub struct Peer {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        peer: &Peer,
        q: Option<&Question>,
        key: &[u8],
        query_len: usize,
        action: VerdictAction,
        rule: Option<Arc<str>>,
        response: &[u8],
        rtt_us: Option<u32>,
    ) {
        let (id, opcode, qtype, qclass) = match q {
            Some(q) => (q.id, q.opcode, q.qtype, q.qclass),
            None => (0, 0, 0, 0),
        };
        let resp: SmallVec<[u8; 128]> =
            if self.rules.event_answers || response.len() <= wire::HEADER_LEN + 4 {
                SmallVec::from_slice(response)
            } else {
                // header only: rcode and flags survive, answers are not decoded
                SmallVec::from_slice(&response[..response.len().min(wire::HEADER_LEN)])
            };
        self.events.push(QueryRecord {
            // event time is when the query arrived
            ts_us: now_us() - rtt_us.unwrap_or(0) as i64,
            client: peer.client,
            server: peer.server,
            transport: peer.transport,
            id,
            opcode,
            qtype,
            qclass,
            qname: SmallVec::from_slice(if q.is_some() {
                wire::key_name(key)
            } else {
                &[]
            }),
            query_size: query_len as u32,
            action,
            rule,
            response: resp,
            rtt_us,
        });
    }

    fn rule_name(&self, list: usize) -> Option<Arc<str>> {
        self.rule_names.load().get(list).cloned()
    }

    /// Decides a query. On `Reply` the answer is in `s.out`; UDP callers must not send more
    /// than the returned question's size (this function already truncates for UDP).
    pub fn handle(&self, query: &[u8], peer: &Peer, s: &mut Scratch, now: Instant) -> Outcome {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let udp = peer.transport == Transport::Udp;
        let ip = peer.client.ip();
        if !acl::allowed(&self.rules.acl, ip) {
            self.stats.refused_acl.fetch_add(1, Ordering::Relaxed);
            // REFUSED (same size as the header: no amplification)
            if wire::build_header_error(&mut s.out, query, wire::RCODE_REFUSED)
                && query[2] & 0x80 == 0
            {
                self.record(
                    peer,
                    None,
                    &[],
                    query.len(),
                    VerdictAction::Refused,
                    None,
                    &s.out,
                    None,
                );
                return Outcome::Reply;
            }
            return Outcome::Drop;
        }
        if !self.rate.check(ip, now) {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            self.record(
                peer,
                None,
                &[],
                query.len(),
                VerdictAction::RateLimited,
                None,
                &[],
                None,
            );
            return Outcome::Drop;
        }
        if query.len() > self.rules.max_query_size {
            self.stats.garbage.fetch_add(1, Ordering::Relaxed);
            self.stats.garbage_question.fetch_add(1, Ordering::Relaxed);
            return Outcome::Drop;
        }
        let q = match wire::parse_query(query, &mut s.key) {
            Ok(q) => q,
            Err(e) => {
                self.stats.garbage.fetch_add(1, Ordering::Relaxed);
                match e {
                    WireError::TooShort => {
                        self.stats.garbage_short.fetch_add(1, Ordering::Relaxed);
                        return Outcome::Drop;
                    }
                    WireError::NotQuery => {
                        // never answer responses: that is how reflection loops start
                        self.stats.garbage_response.fetch_add(1, Ordering::Relaxed);
                        return Outcome::Drop;
                    }
                    _ => {
                        self.stats.garbage_question.fetch_add(1, Ordering::Relaxed);
                        wire::build_header_error(&mut s.out, query, wire::RCODE_FORMERR);
                        return Outcome::Reply;
                    }
                }
            }
        };
        let mut key = std::mem::take(&mut s.key);
        let out = self.decide(query, &q, &mut key, peer, s, now);
        s.key = key;
        if let Outcome::Reply = out {
            if udp && s.out.len() > q.max_udp() {
                self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                wire::truncate_for_udp(&mut s.out, q.question_end, q.edns);
            }
        }
        out
    }

    /// Answers a query dnsight will not serve (NOTIMP, REFUSED) with an empty response and
    /// records it as refused.
    fn refuse(
        &self,
        rcode: u8,
        query: &[u8],
        q: &Question,
        key: &[u8],
        peer: &Peer,
        s: &mut Scratch,
    ) -> Outcome {
        wire::build_empty(&mut s.out, query, q, rcode);
        self.record(
            peer,
            Some(q),
            key,
            query.len(),
            VerdictAction::Refused,
            None,
            &s.out,
            None,
        );
        Outcome::Reply
    }

    fn decide(
        &self,
        query: &[u8],
        q: &Question,
        key: &mut [u8],
        peer: &Peer,
        s: &mut Scratch,
        _now: Instant,
    ) -> Outcome {
        if q.opcode != 0 {
            self.stats.notimp.fetch_add(1, Ordering::Relaxed);
            return self.refuse(wire::RCODE_NOTIMP, query, q, key, peer, s);
        }
        if q.qclass != 1 || q.qtype == wire::TYPE_AXFR || q.qtype == wire::TYPE_IXFR {
            self.stats.refused_other.fetch_add(1, Ordering::Relaxed);
            return self.refuse(wire::RCODE_REFUSED, query, q, key, peer, s);
        }
        let policy = self.policy.load();
        if policy.views > 0 {
            // the group's own upstreams: its answers are cached apart
            wire::set_key_view(key, policy.group_of(peer.client.ip()).view);
        }
        let key: &[u8] = key;
        // overrides first: an allow skips the lists, a block answers here (before the cache)
        let mut allow_rule = None;
        let ov = self.overrides.load();
        if !ov.is_empty() {
            let ip = peer.client.ip();
            let g = policy.group_of(ip);
            let group = ov.has_groups().then_some(g.name.as_str());
            match ov.decide(ip, group, wire::key_name(key)) {
                Some(OverrideHit::Allow(r)) => allow_rule = Some(r.clone()),
                Some(OverrideHit::Block(r)) => {
                    self.stats.blocked.fetch_add(1, Ordering::Relaxed);
                    block_answer(&mut s.out, query, q, &g.answer, policy.block_ttl);
                    self.record(
                        peer,
                        Some(q),
                        key,
                        query.len(),
                        VerdictAction::Blocked,
                        Some(r.clone()),
                        &s.out,
                        None,
                    );
                    return Outcome::Reply;
                }
                None => {}
            }
        }
        drop(ov);
        // local records: the operator's own names, answered here and never forwarded
        if !policy.local.is_empty()
            && policy
                .local
                .answer(wire::key_name(key), query, q, &mut s.out)
        {
            self.stats.local_answers.fetch_add(1, Ordering::Relaxed);
            self.record(
                peer,
                Some(q),
                key,
                query.len(),
                VerdictAction::Local,
                Some(self.local_rule.clone()),
                &s.out,
                None,
            );
            return Outcome::Reply;
        }
        let decision = if allow_rule.is_some() {
            Decision::Pass
        } else {
            policy.decide(peer.client.ip(), wire::key_name(key))
        };
        match decision {
            Decision::Pass | Decision::Allowed { .. } => {}
            Decision::Block { list, answer } => {
                self.stats.blocked.fetch_add(1, Ordering::Relaxed);
                block_answer(&mut s.out, query, q, answer, policy.block_ttl);
                self.record(
                    peer,
                    Some(q),
                    key,
                    query.len(),
                    VerdictAction::Blocked,
                    self.rule_name(list),
                    &s.out,
                    None,
                );
                return Outcome::Reply;
            }
            Decision::Local { list, records } => {
                self.stats.blocked.fetch_add(1, Ordering::Relaxed);
                let rr: SmallVec<[(u16, &[u8]); 4]> = records
                    .iter()
                    .filter(|(t, _)| *t == q.qtype || *t == wire::TYPE_CNAME)
                    .map(|(t, d)| (*t, d.as_slice()))
                    .collect();
                wire::build_answers(&mut s.out, query, q, policy.block_ttl, &rr);
                self.record(
                    peer,
                    Some(q),
                    key,
                    query.len(),
                    VerdictAction::Blocked,
                    self.rule_name(list),
                    &s.out,
                    None,
                );
                return Outcome::Reply;
            }
            Decision::Drop { list } => {
                self.stats.blocked.fetch_add(1, Ordering::Relaxed);
                self.record(
                    peer,
                    Some(q),
                    key,
                    query.len(),
                    VerdictAction::Blocked,
                    self.rule_name(list),
                    &[],
                    None,
                );
                return Outcome::Drop;
            }
        }
        drop(policy);
        if q.qtype == wire::TYPE_ANY && self.rules.minimal_any {
            self.stats.any_minimal.fetch_add(1, Ordering::Relaxed);
            wire::build_any_hinfo(&mut s.out, query, q);
            self.record(
                peer,
                Some(q),
                key,
                query.len(),
                VerdictAction::Cached,
                allow_rule,
                &s.out,
                None,
            );
            return Outcome::Reply;
        }
        if let Some(hit) = self.cache.get(key, query, q, &mut s.out) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            if hit.prefetch {
                let name = query.get(wire::HEADER_LEN..q.qname_end).unwrap_or_default();
                let p = Prefetch {
                    q: *q,
                    key: key.to_vec(),
                    name: name.to_vec(),
                };
                if self.prefetch.try_send(p).is_ok() {
                    self.stats.prefetches.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.record(
                peer,
                Some(q),
                key,
                query.len(),
                VerdictAction::Cached,
                allow_rule,
                &s.out,
                None,
            );
            return Outcome::Reply;
        }
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        Outcome::Miss(*q)
    }

    /// The override allow that let a query through (for the event of a miss resolved later).
    fn allow_rule(&self, peer: &Peer, key: &[u8]) -> Option<Arc<str>> {
        let ov = self.overrides.load();
        if ov.is_empty() {
            return None;
        }
        let ip = peer.client.ip();
        let policy = self.policy.load();
        let group = ov.has_groups().then(|| policy.group_of(ip).name.as_str());
        match ov.decide(ip, group, wire::key_name(key)) {
            Some(OverrideHit::Allow(r)) => Some(r.clone()),
            _ => None,
        }
    }

    /// Refreshes a cache entry upstream (a prefetch: no client waits, nothing is recorded).
    pub async fn refresh(&self, p: Prefetch) {
        if let Asked::Answer(resp) = self.ask(&p.q, &p.key, &p.name).await {
            if let Some(info) = wire::inspect_response(&resp) {
                self.cache.insert(&p.key, &resp, &info);
            }
        }
    }

    /// Whether dnsight validates this question itself (validation on, no CD, under an anchor).
    fn validating(&self, q: &Question, key: &[u8]) -> bool {
        self.dnssec == DnssecMode::Validate
            && !q.cd()
            && self
                .validator
                .as_ref()
                .is_some_and(|v| v.covers(wire::key_name(key)))
    }

    /// Asks upstream (with DO when dnsight validates) and applies the DNSSEC rules: AD kept
    /// only from trusted upstreams, or set by dnsight's own validation; bogus answers refused;
    /// DNSSEC records dnsight asked for removed for clients that did not.
    async fn ask(&self, q: &Question, key: &[u8], name: &[u8]) -> Asked {
        let validating = self.validating(q, key);
        let mut uq = *q;
        if validating {
            uq.edns = Some(wire::Edns {
                udp_size: wire::EDNS_UDP_SIZE,
                dnssec_ok: true,
            });
        }
        let Ok(a) = self.upstreams.query(&uq, key, name).await else {
            return Asked::Failed;
        };
        let mut resp = a.response;
        let Some(v) = self.validator.as_ref().filter(|_| validating) else {
            if !a.trusted {
                dnssec::set_ad(&mut resp, false);
            }
            return Asked::Answer(resp);
        };
        match v.validate(key, &resp).await {
            Verdict::Bogus => {
                self.stats.dnssec_bogus.fetch_add(1, Ordering::Relaxed);
                return Asked::Bogus;
            }
            Verdict::Secure => {
                self.stats.dnssec_secure.fetch_add(1, Ordering::Relaxed);
                dnssec::set_ad(&mut resp, true);
            }
            Verdict::Insecure => {
                self.stats.dnssec_insecure.fetch_add(1, Ordering::Relaxed);
                dnssec::set_ad(&mut resp, false);
            }
            Verdict::Unchecked => dnssec::set_ad(&mut resp, false),
        }
        if !q.edns.is_some_and(|e| e.dnssec_ok) {
            match dnssec::strip_dnssec(&resp, q.qtype, q.edns.is_some()) {
                Some(s) => resp = s,
                None => return Asked::Bogus,
            }
        }
        Asked::Answer(resp)
    }

    /// No upstream answered: an expired cached answer inside its stale window (RFC 8767),
    /// else SERVFAIL.
    fn stale_or_servfail(
        &self,
        out: &mut Vec<u8>,
        query: &[u8],
        q: &Question,
        key: &[u8],
    ) -> VerdictAction {
        if self.cache.get_stale(key, query, q, out).is_some() {
            self.stats.stale_answers.fetch_add(1, Ordering::Relaxed);
            return VerdictAction::Cached;
        }
        self.stats.servfail.fetch_add(1, Ordering::Relaxed);
        wire::build_empty(out, query, q, wire::RCODE_SERVFAIL);
        VerdictAction::Failed
    }

    /// Resolves a miss upstream and writes the client's answer (a stale cached answer, else
    /// SERVFAIL, when every upstream failed). Caches what can be cached.
    pub async fn resolve(
        &self,
        query: &[u8],
        q: &Question,
        key: &[u8],
        peer: &Peer,
        started: Instant,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let action;
        let mut bogus = false;
        // the client's own spelling of the name (validated by parse_query: uncompressed, in bounds)
        let name = query
            .get(wire::HEADER_LEN..q.qname_end)
            .unwrap_or(wire::key_name(key));
        match self.ask(q, key, name).await {
            Asked::Answer(resp) => {
                let info = wire::inspect_response(&resp);
                match info {
                    Some(info) => {
                        self.cache.insert(key, &resp, &info);
                        wire::patch_cached(&mut out, &resp, &info.ttl_offsets, 0, query, q);
                        action = VerdictAction::Forwarded;
                    }
                    None => {
                        self.stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
                        action = self.stale_or_servfail(&mut out, query, q, key);
                    }
                }
            }
            Asked::Bogus => {
                // failed validation: SERVFAIL, never a stale or unvalidated answer
                bogus = true;
                self.stats.servfail.fetch_add(1, Ordering::Relaxed);
                wire::build_empty(&mut out, query, q, wire::RCODE_SERVFAIL);
                action = VerdictAction::Failed;
            }
            Asked::Failed => action = self.stale_or_servfail(&mut out, query, q, key),
        }
        if peer.transport == Transport::Udp && out.len() > q.max_udp() {
            self.stats.truncated.fetch_add(1, Ordering::Relaxed);
            wire::truncate_for_udp(&mut out, q.question_end, q.edns);
        }
        let rtt = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        let rule = if bogus {
            Some(Arc::from(dnssec::BOGUS_RULE))
        } else {
            self.allow_rule(peer, key)
        };
        self.record(
            peer,
            Some(q),
            key,
            query.len(),
            action,
            rule,
            &out,
            Some(rtt),
        );
        out
    }
}

fn block_answer(out: &mut Vec<u8>, query: &[u8], q: &Question, answer: &BlockAnswer, ttl: u32) {
    match answer {
        BlockAnswer::NxDomain => wire::build_empty(out, query, q, wire::RCODE_NXDOMAIN),
        BlockAnswer::NoData => wire::build_empty(out, query, q, wire::RCODE_NOERROR),
        BlockAnswer::Refused => wire::build_empty(out, query, q, wire::RCODE_REFUSED),
        BlockAnswer::Null => match q.qtype {
            wire::TYPE_A => wire::build_answers(out, query, q, ttl, &[(wire::TYPE_A, &[0; 4])]),
            wire::TYPE_AAAA => {
                wire::build_answers(out, query, q, ttl, &[(wire::TYPE_AAAA, &[0; 16])])
            }
            _ => wire::build_empty(out, query, q, wire::RCODE_NOERROR),
        },
        BlockAnswer::Sinkhole { v4, v6 } => match (q.qtype, v4, v6) {
            (wire::TYPE_A, Some(a), _) => {
                wire::build_answers(out, query, q, ttl, &[(wire::TYPE_A, &a.octets())])
            }
            (wire::TYPE_AAAA, _, Some(a)) => {
                wire::build_answers(out, query, q, ttl, &[(wire::TYPE_AAAA, &a.octets())])
            }
            _ => wire::build_empty(out, query, q, wire::RCODE_NOERROR),
        },
    }
}
