//! The packet cache: responses stored as bytes, keyed on the normalized question.
//!
//! This is dnsdist's design: a hit copies the stored response and patches id, question case
//! and TTLs (by age) — no decode, no encode, no allocation (the key and output buffers belong to
//! the worker). The map is split in shards, each behind its own short mutex, so workers rarely
//! meet. Keys are attacker-chosen, so the hasher is std's keyed SipHash.
//!
//! TTLs: positive answers live for the minimum answer TTL, negative answers (NXDOMAIN, NODATA)
//! for min(SOA TTL, SOA MINIMUM) (RFC 2308), both clamped to `[min_ttl, max_ttl]`; SERVFAIL and
//! answers without a usable TTL are not cached. Memory is bounded by a maximum number of entries
//! (each at most 64 KiB, usually ~100 bytes): when a shard is full, entries past their stale
//! window are swept, then expired ones, and otherwise an arbitrary entry is evicted.
//!
//! Prefetch (as Unbound's `prefetch`): the first hit on an entry in the last 10% of its TTL
//! (entries of at least [`PREFETCH_MIN_TTL`] seconds) is answered from the cache as usual and
//! flagged ([`Hit::prefetch`]) so that the server refreshes it upstream in the background:
//! popular names stay cached instead of missing once per TTL.
//!
//! Serve-stale (RFC 8767): an expired entry is kept for `serve_stale` seconds more. It is never
//! a normal hit; only when every upstream failed does the server answer from it
//! ([`PacketCache::get_stale`]), with TTLs of [`STALE_TTL`], instead of SERVFAIL.

use crate::wire::{self, ResponseInfo};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub max_entries: usize,
    pub min_ttl: u32,
    pub max_ttl: u32,
    /// Upper bound for negative answers (RFC 2308 suggests at most a few hours).
    pub max_negative_ttl: u32,
    /// Seconds past expiry an answer may still be served when no upstream answers (RFC 8767;
    /// 0 = off).
    pub serve_stale: u32,
    /// Refresh popular entries in the last 10% of their TTL.
    pub prefetch: bool,
}

/// Entries with a shorter cache TTL are never prefetched.
pub const PREFETCH_MIN_TTL: u32 = 10;

/// TTL of a stale answer (RFC 8767 recommends 30 seconds).
pub const STALE_TTL: u32 = 30;

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 200_000,
            min_ttl: 0,
            max_ttl: 86_400,
            max_negative_ttl: 3600,
            serve_stale: 86_400,
            prefetch: true,
        }
    }
}

struct Entry {
    resp: Box<[u8]>,
    ttl_offsets: SmallVec<[u16; 8]>,
    /// Seconds since the cache's epoch when stored, and when it expires.
    stored: u32,
    expires: u32,
    rcode: u8,
    /// A prefetch was asked for (once per stored answer).
    prefetched: bool,
}

struct Shard {
    map: HashMap<Box<[u8]>, Entry, RandomState>,
}

pub struct PacketCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    per_shard: usize,
    cfg: CacheConfig,
    epoch: Instant,
}

/// What a hit produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub rcode: u8,
    /// The entry is in the last 10% of its TTL: refresh it in the background.
    pub prefetch: bool,
}

const SHARDS: usize = 64;

impl PacketCache {
    pub fn new(cfg: CacheConfig) -> PacketCache {
        let per_shard = cfg.max_entries.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::with_hasher(RandomState::new()),
                })
            })
            .collect();
        PacketCache {
            shards,
            hasher: RandomState::new(),
            per_shard,
            cfg,
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(key);
        &self.shards[(h as usize) % SHARDS]
    }

    /// Answers from the cache into `out` if a live entry exists.
    pub fn get(
        &self,
        key: &[u8],
        query: &[u8],
        q: &wire::Question,
        out: &mut Vec<u8>,
    ) -> Option<Hit> {
        self.lookup(key, query, q, out, false)
    }

    /// Answers from an expired entry still inside its stale window (the caller's upstreams all
    /// failed), with every TTL set to [`STALE_TTL`].
    pub fn get_stale(
        &self,
        key: &[u8],
        query: &[u8],
        q: &wire::Question,
        out: &mut Vec<u8>,
    ) -> Option<Hit> {
        self.lookup(key, query, q, out, true)
    }

    fn lookup(
        &self,
        key: &[u8],
        query: &[u8],
        q: &wire::Question,
        out: &mut Vec<u8>,
        stale: bool,
    ) -> Option<Hit> {
        let now = self.now();
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let e = shard.map.get_mut(key)?;
        if stale {
            if now >= e.expires.saturating_add(self.cfg.serve_stale) {
                return None;
            }
            wire::patch_cached(out, &e.resp, &e.ttl_offsets, 0, query, q);
            wire::set_ttls(out, &e.ttl_offsets, STALE_TTL);
            return Some(Hit {
                rcode: e.rcode,
                prefetch: false,
            });
        }
        if now >= e.expires {
            return None;
        }
        wire::patch_cached(out, &e.resp, &e.ttl_offsets, now - e.stored, query, q);
        let ttl = e.expires - e.stored;
        let prefetch = self.cfg.prefetch
            && !e.prefetched
            && ttl >= PREFETCH_MIN_TTL
            && (e.expires - now) * 10 <= ttl;
        e.prefetched |= prefetch;
        Some(Hit {
            rcode: e.rcode,
            prefetch,
        })
    }

    /// Stores a response; returns false when it is not cacheable.
    pub fn insert(&self, key: &[u8], resp: &[u8], info: &ResponseInfo) -> bool {
        if info.truncated || resp.len() > u16::MAX as usize {
            return false;
        }
        let Some(ttl) = info.ttl else { return false };
        let negative = info.rcode == wire::RCODE_NXDOMAIN || info.ancount == 0;
        let max = if negative {
            self.cfg.max_negative_ttl.min(self.cfg.max_ttl)
        } else {
            self.cfg.max_ttl
        };
        let ttl = ttl.clamp(self.cfg.min_ttl.min(max), max);
        if ttl == 0 {
            return false;
        }
        let now = self.now();
        let entry = Entry {
            resp: resp.into(),
            ttl_offsets: info.ttl_offsets.clone(),
            stored: now,
            expires: now.saturating_add(ttl),
            rcode: info.rcode,
            prefetched: false,
        };
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.map.len() >= self.per_shard && !shard.map.contains_key(key) {
            let stale = self.cfg.serve_stale;
            shard
                .map
                .retain(|_, e| e.expires.saturating_add(stale) > now);
            if shard.map.len() >= self.per_shard && stale > 0 {
                shard.map.retain(|_, e| e.expires > now);
            }
            if shard.map.len() >= self.per_shard {
                if let Some(k) = shard.map.keys().next().cloned() {
                    shard.map.remove(&k);
                }
            }
        }
        shard.map.insert(key.into(), entry);
        true
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.lock().unwrap_or_else(|e| e.into_inner()).map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::*;

    fn q(name: &str) -> Vec<u8> {
        let mut b = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            b.push(l.len() as u8);
            b.extend_from_slice(l.as_bytes());
        }
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        b
    }

    fn cfg(serve_stale: u32, prefetch: bool) -> CacheConfig {
        CacheConfig {
            max_entries: 64,
            min_ttl: 0,
            max_ttl: 100,
            max_negative_ttl: 10,
            serve_stale,
            prefetch,
        }
    }

    /// A query for `a.example`, its cache key, and an answer with the given TTL.
    struct Fixture {
        query: Vec<u8>,
        key: Vec<u8>,
        q: Question,
        resp: Vec<u8>,
        info: ResponseInfo,
    }

    fn fixture(ttl: u32) -> Fixture {
        let mut key = Vec::new();
        let query = q("a.example");
        let q = parse_query(&query, &mut key).unwrap();
        let mut resp = Vec::new();
        build_answers(&mut resp, &query, &q, ttl, &[(TYPE_A, &[1, 2, 3, 4])]);
        let info = inspect_response(&resp).unwrap();
        Fixture {
            query,
            key,
            q,
            resp,
            info,
        }
    }

    /// Moves the cache's clock `secs` forward.
    fn age(c: &mut PacketCache, secs: u64) {
        c.epoch = c
            .epoch
            .checked_sub(std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn hit_patches_and_bounds_hold() {
        let c = PacketCache::new(cfg(0, false));
        let f = fixture(1000);
        let (mut key, mut resp) = (f.key.clone(), f.resp.clone());
        assert!(c.insert(&key, &resp, &f.info));
        let mut out = Vec::new();
        let hit = c.get(&key, &f.query, &f.q, &mut out).unwrap();
        assert_eq!(hit.rcode, 0);
        assert_eq!(out, f.resp);
        // SERVFAIL is not cached
        build_empty(&mut resp, &f.query, &f.q, RCODE_SERVFAIL);
        assert!(!c.insert(&key, &resp, &inspect_response(&resp).unwrap()));
        // bounded
        for i in 0..1000 {
            let b = q(&format!("n{i}.example"));
            let qq = parse_query(&b, &mut key).unwrap();
            build_answers(&mut resp, &b, &qq, 60, &[(TYPE_A, &[1, 2, 3, 4])]);
            c.insert(&key, &resp, &inspect_response(&resp).unwrap());
        }
        assert!(c.len() <= 64, "{}", c.len());
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn expired_answers_are_served_stale_only_when_asked_and_only_within_the_window() {
        let f = fixture(60);
        let ttl_of = |out: &[u8]| {
            let o = f.info.ttl_offsets[0] as usize;
            u32::from_be_bytes(out[o..o + 4].try_into().unwrap())
        };
        let mut c = PacketCache::new(cfg(3600, false));
        assert!(c.insert(&f.key, &f.resp, &f.info));
        let mut out = Vec::new();
        assert!(c.get(&f.key, &f.query, &f.q, &mut out).is_some());
        age(&mut c, 61);
        assert!(
            c.get(&f.key, &f.query, &f.q, &mut out).is_none(),
            "expired: no hit"
        );
        let hit = c.get_stale(&f.key, &f.query, &f.q, &mut out).unwrap();
        assert_eq!(hit.rcode, 0);
        assert_eq!(ttl_of(&out), STALE_TTL);
        assert_eq!(
            out[out.len() - 4..],
            f.resp[f.resp.len() - 4..],
            "same address"
        );
        // past the stale window: gone
        age(&mut c, 3600);
        assert!(c.get_stale(&f.key, &f.query, &f.q, &mut out).is_none());
        // serve-stale off: an expired entry is never served
        let mut c = PacketCache::new(cfg(0, false));
        assert!(c.insert(&f.key, &f.resp, &f.info));
        age(&mut c, 61);
        assert!(c.get_stale(&f.key, &f.query, &f.q, &mut out).is_none());
    }

    #[test]
    fn a_hit_in_the_last_tenth_of_the_ttl_asks_for_one_prefetch() {
        let f = fixture(1000);
        let mut c = PacketCache::new(cfg(0, true));
        assert!(c.insert(&f.key, &f.resp, &f.info));
        let mut out = Vec::new();
        let mut hit = |c: &mut PacketCache, secs: u64| {
            age(c, secs);
            c.get(&f.key, &f.query, &f.q, &mut out).map(|h| h.prefetch)
        };
        assert_eq!(hit(&mut c, 0), Some(false));
        assert_eq!(hit(&mut c, 89), Some(false), "11 s of 100 left");
        assert_eq!(hit(&mut c, 1), Some(true), "10 s left: refresh");
        assert_eq!(hit(&mut c, 0), Some(false), "asked once");
        // a refreshed answer starts over
        assert!(c.insert(&f.key, &f.resp, &f.info));
        assert_eq!(hit(&mut c, 90), Some(true));
    }
}
