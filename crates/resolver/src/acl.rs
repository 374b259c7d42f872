//! Who may query, and how fast: client ACL (CIDR list) and per-client rate limiting.
//!
//! dnsight is not an open resolver: by default only loopback and private ranges are served
//! (others get REFUSED... or, for UDP, nothing, to avoid reflection). The rate limiter is a
//! token bucket per client address in sharded maps with a keyed hasher (addresses can be
//! spoofed, so they are attacker-chosen) and a bounded number of tracked clients.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// The model's address block (one `Cidr` type across dnsight).
pub use dnsight_model::Cidr;

/// Loopback, RFC 1918, CGNAT, link-local, and IPv6 unique-local/link-local.
pub fn default_acl() -> Vec<Cidr> {
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    ]
    .iter()
    .map(|s| s.parse().expect("static CIDR"))
    .collect()
}

pub fn allowed(acl: &[Cidr], ip: IpAddr) -> bool {
    acl.iter().any(|c| c.contains(ip))
}

/// Tokens left and last refill, per client.
type Buckets = HashMap<IpAddr, (f64, Instant), RandomState>;

/// Per-client token buckets.
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    exempt: Vec<Cidr>,
    shards: Box<[Mutex<Buckets>]>,
    hasher: RandomState,
    max_per_shard: usize,
}

const SHARDS: usize = 32;

impl RateLimiter {
    /// `qps` 0 disables limiting.
    pub fn new(qps: u32, burst: u32, exempt: Vec<Cidr>, max_clients: usize) -> RateLimiter {
        RateLimiter {
            qps: qps as f64,
            burst: burst.max(qps).max(1) as f64,
            exempt,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(RandomState::new())))
                .collect(),
            hasher: RandomState::new(),
            max_per_shard: max_clients.div_ceil(SHARDS).max(16),
        }
    }

    pub fn enabled(&self) -> bool {
        self.qps > 0.0
    }

    /// True when the query may proceed (and a token was taken).
    pub fn check(&self, ip: IpAddr, now: Instant) -> bool {
        if !self.enabled() || allowed(&self.exempt, ip) {
            return true;
        }
        let shard = &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS];
        let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.max_per_shard && !m.contains_key(&ip) {
            // forget clients whose bucket has refilled; if none, forget everyone (fail open)
            let full = self.burst;
            let qps = self.qps;
            m.retain(|_, (t, at)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() * qps < full
            });
            if m.len() >= self.max_per_shard {
                m.clear();
            }
        }
        let (tokens, at) = m.entry(ip).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * self.qps;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let acl = default_acl();
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "::1",
            "fd00::5",
            "::ffff:10.0.0.1",
        ] {
            assert!(allowed(&acl, ok.parse().unwrap()), "{ok}");
        }
        for no in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!allowed(&acl, no.parse().unwrap()), "{no}");
        }
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn buckets_refill_with_time() {
        let rl = RateLimiter::new(10, 20, vec!["127.0.0.1".parse().unwrap()], 1000);
        let t0 = Instant::now();
        let c: IpAddr = "10.0.0.9".parse().unwrap();
        let passed = (0..100).filter(|_| rl.check(c, t0)).count();
        assert_eq!(passed, 20);
        assert!(rl.check(c, t0 + std::time::Duration::from_millis(200)));
        assert!((0..100).all(|_| rl.check("127.0.0.1".parse().unwrap(), t0)));
        // many distinct clients stay bounded
        for i in 0..100_000u32 {
            rl.check(IpAddr::V4(i.into()), t0);
        }
        let tracked: usize = rl.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(tracked <= 1000 + SHARDS * 16, "{tracked}");
    }
}
