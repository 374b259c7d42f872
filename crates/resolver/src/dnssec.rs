//! DNSSEC: the AD bit, and optional validation in dnsight itself.
//!
//! Pass-through (the default, [`DnssecMode::Pass`]): a client's DO and CD bits are forwarded,
//! answers to DO clients keep their RRSIGs (the cache key carries DO and CD, so they are cached
//! apart), and the AD bit of an answer survives only when it came from an upstream marked
//! trusted ([`crate::UpstreamSpec::trusted`]); it is cleared otherwise. AD reaches a client
//! only when it asked with DO or AD (RFC 6840 §5.7), so upstream queries always carry AD.
//!
//! Validation ([`DnssecMode::Validate`]): names at or under a trust anchor (by default the
//! root's keys; or the DNSKEY records of a trust-anchor file) are validated by dnsight itself
//! with hickory's validator (`hickory-proto`, ring crypto): the answer is fetched with DO, and
//! the DNSKEY/DS records the chain needs are fetched through the same upstreams (cached in a
//! small cache of their own). Secure answers get AD; bogus ones become SERVFAIL, counted
//! (`dnssec_bogus`) and recorded as an event with the rule `dnssec:bogus`. Names outside every
//! anchor are indeterminate and passed on as insecure (RFC 4035 §4.3). A client's CD skips
//! validation. Clients without DO get the answer without the DNSSEC records dnsight asked for.

use crate::cache::{CacheConfig, PacketCache};
use crate::server::Core;
use crate::wire;
use futures_util::StreamExt;
use hickory_proto::dnssec::rdata::{DNSKEY, RRSIG};
use hickory_proto::dnssec::{DnssecDnsHandle, Proof, TrustAnchors, Verifier};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::xfer::{DnsHandle, DnsRequest, DnsRequestOptions, DnsResponse};
use hickory_proto::{ProtoError, ProtoErrorKind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// What dnsight does about DNSSEC (`[resolver] dnssec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnssecMode {
    /// Forward DO/CD, keep RRSIGs, believe AD only from trusted upstreams.
    #[default]
    Pass,
    /// Validate names under the trust anchors; bogus answers become SERVFAIL.
    Validate,
}

/// The outcome of validating one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every record proven by a chain from a trust anchor: AD.
    Secure,
    /// Provably unsigned, or not under any anchor: passed on without AD.
    Insecure,
    /// Signatures missing or wrong where they must be: SERVFAIL.
    Bogus,
    /// Not a NOERROR/NXDOMAIN answer (SERVFAIL, REFUSED, ...): passed on as it is.
    Unchecked,
}

/// The event rule of an answer that failed validation.
pub const BOGUS_RULE: &str = "dnssec:bogus";

/// The trust anchors and the validator's own cache of DNSKEY/DS answers.
pub struct Validator {
    anchors: Arc<TrustAnchors>,
    /// Lowercased wire owner names of the anchors (the root is `[0]`).
    zones: Vec<Vec<u8>>,
    cache: Arc<PacketCache>,
    core: Weak<Core>,
    /// The anchors plus every key of an anchored zone's DNSKEY set signed by an anchored key,
    /// and until when that holds (see [`Validator::zone_keys`]).
    expanded: Mutex<(Arc<TrustAnchors>, Instant)>,
}

/// Reads a trust-anchor file: DNSKEY records in zone-file form, one a line (what `ldns-keygen`
/// and `dnssec-keygen` write as `K*.key`; `;` comments). Returns the anchors and their owner
/// names. Every other line is an error that names it.
pub fn read_anchors(text: &str) -> Result<(TrustAnchors, Vec<Vec<u8>>), String> {
    // each line is checked and normalised here first: hickory's parser is not meant for
    // arbitrary text (fields before the type are upper-cased, as it expects)
    let mut clean = String::new();
    let mut zones = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('$') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(t) = f.iter().position(|t| t.eq_ignore_ascii_case("DNSKEY")) else {
            return Err(format!(
                "trust anchor line {}: not a DNSKEY record (DS anchors are not supported: give the zone's DNSKEY)",
                n + 1
            ));
        };
        let ok_prefix = (1..=3).contains(&t)
            && f[1..t]
                .iter()
                .all(|x| x.eq_ignore_ascii_case("IN") || x.bytes().all(|b| b.is_ascii_digit()));
        if !ok_prefix
            || f.len() < t + 5
            || f[t + 1..t + 4].iter().any(|x| x.parse::<u16>().is_err())
        {
            return Err(format!(
                "trust anchor line {}: expected NAME [TTL] [IN] DNSKEY FLAGS PROTOCOL ALGORITHM KEY",
                n + 1
            ));
        }
        let owner = f[0].to_ascii_lowercase();
        let mut w = Vec::new();
        if owner == "." {
            w.push(0);
        } else if !owner.ends_with('.') || !crate::policy::text_to_wire(&owner, &mut w) {
            return Err(format!(
                "trust anchor line {}: bad owner name {:?} (a fully qualified name ending in a dot)",
                n + 1,
                f[0]
            ));
        }
        if !zones.contains(&w) {
            zones.push(w);
        }
        clean.push_str(&owner);
        for x in &f[1..=t] {
            clean.push(' ');
            clean.push_str(&x.to_ascii_uppercase());
        }
        for x in &f[t + 1..] {
            clean.push(' ');
            clean.push_str(x);
        }
        clean.push('\n');
    }
    if zones.is_empty() {
        return Err("trust anchor: no DNSKEY records".into());
    }
    let anchors: TrustAnchors = clean
        .parse()
        .map_err(|e| format!("trust anchor: {e} (expected DNSKEY records in zone-file form)"))?;
    Ok((anchors, zones))
}

impl Validator {
    /// `anchors`: the parsed trust-anchor file, or None for the root's keys.
    pub fn new(
        anchors: Option<(TrustAnchors, Vec<Vec<u8>>)>,
        core: Weak<Core>,
        cache: &CacheConfig,
    ) -> Validator {
        let (anchors, zones) = anchors.unwrap_or_else(|| (TrustAnchors::default(), vec![vec![0]]));
        let anchors = Arc::new(anchors);
        Validator {
            expanded: Mutex::new((anchors.clone(), Instant::now())),
            anchors,
            zones,
            cache: Arc::new(PacketCache::new(CacheConfig {
                max_entries: 4096,
                ..cache.clone()
            })),
            core,
        }
    }

    /// Whether a lowercased wire name is at or under a trust anchor.
    pub fn covers(&self, name: &[u8]) -> bool {
        self.zones.iter().any(|z| {
            name.len() >= z.len() && name.ends_with(z) && label_boundary(name, name.len() - z.len())
        })
    }

    /// Validates `response` (the upstream's answer to the question in `key`, asked with DO).
    pub async fn validate(&self, key: &[u8], response: &[u8]) -> Verdict {
        let rcode = response
            .get(3)
            .map(|b| b & 0xf)
            .unwrap_or(wire::RCODE_SERVFAIL);
        if rcode != wire::RCODE_NOERROR && rcode != wire::RCODE_NXDOMAIN {
            return Verdict::Unchecked;
        }
        let Ok(msg) = Message::from_vec(response) else {
            return Verdict::Bogus;
        };
        let Some(query) = msg.queries().first().cloned() else {
            return Verdict::Bogus;
        };
        let view = wire::key_view(key);
        let anchors = self.current_anchors(view).await;
        let lookup = Lookup {
            core: self.core.clone(),
            cache: self.cache.clone(),
            view,
            primed: Some(Arc::new((key.to_vec(), response.to_vec()))),
        };
        let handle = DnssecDnsHandle::with_trust_anchor(lookup, anchors);
        let mut m = Message::new();
        m.add_query(Query::query(query.name().clone(), query.query_type()));
        m.set_recursion_desired(true);
        let res = handle
            .send(DnsRequest::new(m, DnsRequestOptions::default()))
            .next()
            .await;
        judge(res)
    }
}

impl Validator {
    /// The configured anchors plus the keys they vouch for, refreshed when the DNSKEY sets'
    /// TTL runs out (30 s after a failure to fetch one).
    async fn current_anchors(&self, view: u8) -> Arc<TrustAnchors> {
        {
            let g = self.expanded.lock().unwrap_or_else(|e| e.into_inner());
            if Instant::now() < g.1 {
                return g.0.clone();
            }
        }
        let mut all = (*self.anchors).clone();
        let mut ttl = 3600u32;
        for z in self.zones.iter().filter(|z| z.as_slice() != [0]) {
            match self.zone_keys(z, view).await {
                Some((keys, t)) => {
                    for k in &keys {
                        all.insert(k.public_key());
                    }
                    ttl = ttl.min(t);
                }
                None => ttl = ttl.min(30),
            }
        }
        let all = Arc::new(all);
        *self.expanded.lock().unwrap_or_else(|e| e.into_inner()) = (
            all.clone(),
            Instant::now() + Duration::from_secs(ttl.max(30) as u64),
        );
        all
    }

    /// An anchored zone's DNSKEY set, when one of its RRSIGs (in its validity window) verifies
    /// with an anchored key: then every zone key in it is trusted (a trust anchor is usually
    /// the key-signing key; the answers are signed by the zone-signing key it signs). hickory
    /// would otherwise ask the parent for a DS the island of trust does not have.
    async fn zone_keys(&self, zone: &[u8], view: u8) -> Option<(Vec<DNSKEY>, u32)> {
        let mut q = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(zone);
        q.extend_from_slice(&[0, 48, 0, 1]);
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        let lookup = Lookup {
            core: self.core.clone(),
            cache: self.cache.clone(),
            view,
            primed: None,
        };
        let resp = lookup.lookup(q).await.ok()?;
        let name = resp.queries().first()?.name().clone();
        let keys: Vec<&Record> = resp
            .answers()
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY && r.name() == &name)
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        for sig in resp
            .answers()
            .iter()
            .filter_map(|r| r.try_borrow::<RRSIG>())
        {
            let s = sig.data();
            let within = (now.wrapping_sub(s.sig_inception().get()) as i32) >= 0
                && (s.sig_expiration().get().wrapping_sub(now) as i32) >= 0;
            if s.type_covered() != RecordType::DNSKEY || sig.name() != &name || !within {
                continue;
            }
            for k in &keys {
                let Some(k) = k.try_borrow::<DNSKEY>() else {
                    continue;
                };
                let d = k.data();
                if d.zone_key()
                    && !d.revoke()
                    && d.algorithm() == s.algorithm()
                    && d.calculate_key_tag().ok() == Some(s.key_tag())
                    && self.anchors.contains(d.public_key())
                    && d.verify_rrsig(&name, DNSClass::IN, s, keys.iter().copied())
                        .is_ok()
                {
                    let ttl = keys.iter().map(|r| r.ttl()).min().unwrap_or(30);
                    let all = keys
                        .iter()
                        .filter_map(|r| r.try_borrow::<DNSKEY>())
                        .map(|r| r.data().clone())
                        .filter(|d| d.zone_key() && !d.revoke())
                        .collect();
                    return Some((all, ttl));
                }
            }
        }
        tracing::warn!(zone = %name, "DNSSEC: the trust anchor's zone has no DNSKEY set signed by an anchored key");
        None
    }
}

fn label_boundary(name: &[u8], at: usize) -> bool {
    let mut i = 0;
    while i < name.len() {
        if i == at {
            return true;
        }
        i += 1 + name[i] as usize;
    }
    i == at
}

fn judge(res: Option<Result<DnsResponse, ProtoError>>) -> Verdict {
    match res {
        Some(Ok(resp)) => {
            let mut any = false;
            let mut secure = true;
            for r in resp
                .answers()
                .iter()
                .chain(resp.name_servers())
                .filter(|r| r.record_type() != RecordType::RRSIG)
            {
                any = true;
                match r.proof() {
                    Proof::Secure => {}
                    Proof::Bogus => return Verdict::Bogus,
                    _ => secure = false,
                }
            }
            if any && secure {
                Verdict::Secure
            } else {
                Verdict::Insecure
            }
        }
        Some(Err(e)) => match e.kind() {
            ProtoErrorKind::Nsec { proof, .. } if proof.is_insecure() => Verdict::Insecure,
            _ => {
                tracing::debug!(error = %e, "DNSSEC validation failed");
                Verdict::Bogus
            }
        },
        None => Verdict::Bogus,
    }
}

/// Sets or clears the AD bit of a response.
pub fn set_ad(resp: &mut [u8], on: bool) {
    if let Some(b) = resp.get_mut(3) {
        if on {
            *b |= 0x20;
        } else {
            *b &= !0x20;
        }
    }
}

/// The response without the DNSSEC records a client that did not set DO must not get
/// (RRSIG, NSEC, NSEC3, unless asked for by type; RFC 4035 §3.2.1), DO cleared, and no OPT
/// record at all for a client that sent none (`edns` false). None if it does not decode.
pub fn strip_dnssec(resp: &[u8], qtype: u16, edns: bool) -> Option<Vec<u8>> {
    let mut m = Message::from_vec(resp).ok()?;
    let keep = |r: &hickory_proto::rr::Record| {
        let t = r.record_type();
        !matches!(t, RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3)
            || u16::from(t) == qtype
    };
    let an: Vec<_> = m.take_answers().into_iter().filter(keep).collect();
    let ns: Vec<_> = m.take_name_servers().into_iter().filter(keep).collect();
    let ar: Vec<_> = m.take_additionals().into_iter().filter(keep).collect();
    m.insert_answers(an);
    m.insert_name_servers(ns);
    m.insert_additionals(ar);
    if !edns {
        *m.extensions_mut() = None;
    } else if let Some(e) = m.extensions_mut() {
        e.set_dnssec_ok(false);
    }
    m.to_vec().ok()
}

/// The validator's way upstream: the resolver's own router (same zones, groups, failover),
/// with a cache of its own; the answer being validated is handed in ("primed") so it is not
/// asked twice.
#[derive(Clone)]
struct Lookup {
    core: Weak<Core>,
    cache: Arc<PacketCache>,
    view: u8,
    primed: Option<Arc<(Vec<u8>, Vec<u8>)>>,
}

type Responses = Pin<Box<dyn futures_util::Stream<Item = Result<DnsResponse, ProtoError>> + Send>>;

impl DnsHandle for Lookup {
    type Response = Responses;

    fn send<R: Into<DnsRequest> + Unpin + Send + 'static>(&self, request: R) -> Responses {
        let request: DnsRequest = request.into();
        let me = self.clone();
        let bytes = request.to_vec();
        Box::pin(futures_util::stream::once(async move {
            me.lookup(bytes?).await
        }))
    }
}

impl Lookup {
    async fn lookup(&self, bytes: Vec<u8>) -> Result<DnsResponse, ProtoError> {
        let mut key = Vec::new();
        let q = wire::parse_query(&bytes, &mut key)
            .map_err(|e| ProtoError::from(format!("validator query: {e}")))?;
        wire::set_key_view(&mut key, self.view);
        if let Some(p) = &self.primed {
            // same name, type and class (the flags byte may differ)
            let n = key.len() - 1;
            if p.0.len() == key.len() && p.0[..n] == key[..n] {
                return DnsResponse::from_buffer(p.1.clone());
            }
        }
        let mut out = Vec::new();
        if self.cache.get(&key, &bytes, &q, &mut out).is_some() {
            return DnsResponse::from_buffer(out);
        }
        let core = self
            .core
            .upgrade()
            .ok_or_else(|| ProtoError::from("resolver stopped"))?;
        let name = bytes
            .get(wire::HEADER_LEN..q.qname_end)
            .ok_or_else(|| ProtoError::from("validator query: bad name"))?;
        let a = core
            .upstreams
            .query(&q, &key, name)
            .await
            .map_err(|e| ProtoError::from(e.to_string()))?;
        if let Some(info) = wire::inspect_response(&a.response) {
            self.cache.insert(&key, &a.response, &info);
        }
        DnsResponse::from_buffer(a.response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_cover_their_zones_only() {
        let text = "; a key\ndnssec.example. 3600 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n";
        let (a, zones) = read_anchors(text).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(zones, vec![b"\x06dnssec\x07example\x00".to_vec()]);
        let v = Validator {
            anchors: Arc::new(a),
            zones,
            cache: Arc::new(PacketCache::new(CacheConfig::default())),
            core: Weak::new(),
            expanded: Mutex::new((Arc::new(TrustAnchors::empty()), Instant::now())),
        };
        assert!(v.covers(b"\x06dnssec\x07example\x00"));
        assert!(v.covers(b"\x03www\x06dnssec\x07example\x00"));
        assert!(!v.covers(b"\x07xdnssec\x07example\x00"));
        assert!(!v.covers(b"\x07example\x00"));
        for bad in [
            "nothing here\n",
            "x. IN DNSKEY 257 3 13 !!!\n",
            "x. in here DNSKEY 257 3 13 AAAA\n",
            "x. IN DS 1234 13 2 abcd\n",
            "x IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
            "",
        ] {
            assert!(read_anchors(bad).is_err(), "{bad}");
        }
        // lower-case class and no TTL, as key files have it
        let (a, _) = read_anchors("Dnssec.Example. in dnskey 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== ;{id = 1}\n").unwrap();
        assert_eq!(a.len(), 1);
    }

    proptest::proptest! {
        /// Upstream answers are hostile bytes: stripping never panics.
        #[test]
        fn stripping_hostile_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = strip_dnssec(&bytes, 1, true);
            let _ = strip_dnssec(&bytes, 46, false);
        }
    }

    #[test]
    fn ad_bit_and_stripping() {
        let mut r = vec![0u8; 12];
        set_ad(&mut r, true);
        assert_eq!(r[3], 0x20);
        set_ad(&mut r, false);
        assert_eq!(r[3], 0);
        assert!(strip_dnssec(&[1, 2, 3], 1, true).is_none());
    }
}
