//! The resolver's counters: queries, cache hits, blocks, drops, failures, garbage by reason.
//!
//! Plain relaxed atomics, read as a [`StatsSnapshot`] for the shutdown stats line, periodic
//! log lines and (by the binary) a metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Live counters (relaxed atomics).
        #[derive(Debug, Default)]
        pub struct Stats { $(#[doc = $doc] pub $name: AtomicU64,)* }
        /// A point-in-time copy of [`Stats`].
        #[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
        pub struct StatsSnapshot { $(#[doc = $doc] pub $name: u64,)* }
        impl Stats {
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
        impl StatsSnapshot {
            /// Every counter as (name, help, value), for a metrics exposition.
            pub fn fields(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $doc, self.$name),)*]
            }
        }
        impl std::fmt::Display for StatsSnapshot {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut first = true;
                $(
                    if !first { f.write_str(" ")?; }
                    first = false;
                    write!(f, "{}={}", stringify!($name), self.$name)?;
                )*
                let _ = first;
                Ok(())
            }
        }
    };
}

counters! {
    queries: "Queries received (parsed or not).",
    cache_hits: "Answered from the packet cache.",
    cache_misses: "Forwarded upstream.",
    blocked: "Answered by policy (block, local data, drop).",
    local_answers: "Answered from local records.",
    refused_acl: "Clients outside the ACL.",
    rate_limited: "Dropped by the per-client rate limit.",
    garbage: "Malformed messages dropped or answered FORMERR.",
    garbage_short: "Shorter than a header.",
    garbage_response: "Responses sent to the listener (QR set).",
    garbage_question: "Bad question or sections.",
    notimp: "Non-QUERY opcodes answered NOTIMP.",
    refused_other: "Zone transfers and non-IN classes refused.",
    any_minimal: "ANY answered minimally (RFC 8482).",
    truncated: "UDP answers truncated to the client's size.",
    upstream_queries: "Queries sent upstream (incl. retries).",
    upstream_failures: "Upstream exchanges that failed (timeout, error, mismatch).",
    upstream_tcp_retries: "TC answers retried over TCP.",
    upstream_races: "Misses asked of every healthy upstream at once (strategy fastest).",
    upstream_mismatched: "Upstream datagrams that did not match the query.",
    zone_forwards: "Misses sent to a conditional-forwarding zone's upstreams.",
    zone_fallbacks: "Zone upstreams all failed: asked the default upstreams (zones not internal_only).",
    servfail: "SERVFAIL answers sent (no upstream answered, nothing stale cached).",
    prefetches: "Cache entries refreshed in the background before they expired (prefetch).",
    stale_answers: "Expired cached answers served because no upstream answered (RFC 8767).",
    tcp_connections: "TCP/TLS connections accepted.",
    tcp_rejected: "TCP connections refused (too many).",
    tcp_timeouts: "TCP connections closed for idleness or half-open.",
    events_out: "Events delivered to the sink.",
    events_dropped: "Events dropped because the queue was full.",
    source_events: "Events from passive sources (dnstap, ...) delivered to the sink.",
    list_reloads: "Successful policy reloads.",
    list_reload_errors: "Failed policy reloads (old policy kept).",
    doh_http2: "DoH requests over HTTP/2.",
    doh_http1: "DoH requests over HTTP/1.x.",
    dnssec_secure: "Answers validated by dnsight as secure (AD set).",
    dnssec_insecure: "Answers dnsight asked to validate that are provably unsigned (no AD).",
    dnssec_bogus: "Answers that failed DNSSEC validation (answered SERVFAIL).",
}
