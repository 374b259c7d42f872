//! **tunneling**: data carried inside DNS names (iodine, dns2tcp, DNSExfiltrator, C2 over
//! TXT) — fast tunnels and slow exfiltration.
//!
//! Per (device, registered domain), in constant memory: unique subdomains per hour
//! (linear-counting bitmap), and per day the *information* sent — for each new unique
//! subdomain, its length weighted by its character entropy (≈ bytes of encoded payload; the
//! idea of ibHH's information-content heavy hitters) — plus the share of TXT/NULL/CNAME/
//! PRIVATE-type queries and the longest label.
//! - fast: ≥ `tunnel_unique_per_hour` (default 100) unique subdomains in an hour with a mean
//!   payload ≥ 10 bytes per unique subdomain (Zeek's anomalous-dns uses > 8 unique per hour; RITA ≥ 100 per
//!   domain overall);
//! - slow: ≥ `tunnel_bytes_per_day` (default 8 KiB) of payload-weighted bytes in a day and
//!   ≥ 30 unique subdomains — catches exfiltration at well under 1 B/s. The fast rule also
//!   needs ≥ 10 payload bytes per unique subdomain (numbered CDN hosts carry almost none).
//!
//! Score: fast 60, slow 50, `+15` when TXT/NULL/CNAME/private types dominate, `+10` when the
//! lexical tunnel score of a sample name is high, `−25` when many devices of the
//! organisation do the same with that domain (shared services).
//!
//! **Benign encoders are learned**: a (device, registered domain) the device used during its
//! learning period, with no suspicious finding on it since, raises nothing when at least three
//! devices of the organisation use it (antivirus and EDR reputation lookups with hash labels,
//! DNSBL/URIBL on mail servers, telemetry), and info otherwise. A new destination, or one the
//! device never used while learning, scores as below.
//!
//! Known false positives: antivirus and reputation services that encode hashes in names
//! (McAfee GTI, Sophos, ESET), DNSBL/anti-spam lookups on mail servers, some CDNs and
//! telemetry with per-request hostnames. They are prevalent across devices (damped) and can
//! be acknowledged per registered domain.

use super::{Ctx, Detector, Persist};
use crate::alert::{Finding, Kind};
use crate::codec::{Put, Rd};
use crate::config::Tuning;
use crate::enrich::Enriched;
use serde_json::json;
use std::collections::HashMap;

const MAX_TRACKS: usize = 200_000;

struct Track {
    hour: u32,
    hour_bits: [u64; 16], // 1024 bits
    hour_unique: u32,
    hour_len_sum: u32,
    hour_bytes: f64,
    day: u16,
    day_bits: Box<[u64; 64]>, // 4096 bits
    day_unique: u32,
    day_bytes: f64,
    queries: u32,
    odd_types: u32,
    max_label: u16,
    fired_hour: u32,
    fired_day: u16,
    last: u32,
}

impl Track {
    fn new() -> Track {
        Track {
            hour: 0,
            hour_bits: [0; 16],
            hour_unique: 0,
            hour_len_sum: 0,
            hour_bytes: 0.0,
            day: 0,
            day_bits: Box::new([0; 64]),
            day_unique: 0,
            day_bytes: 0.0,
            queries: 0,
            odd_types: 0,
            max_label: 0,
            fired_hour: u32::MAX,
            fired_day: u16::MAX,
            last: 0,
        }
    }
}

/// Bitmaps are mostly empty: written as (word index, word) pairs of the non-zero words.
fn put_bits(bits: &[u64], out: &mut Vec<u8>) {
    out.put_u16(bits.iter().filter(|&&w| w != 0).count() as u16);
    for (i, &w) in bits.iter().enumerate().filter(|(_, &w)| w != 0) {
        out.put_u8(i as u8);
        out.put_u64(w);
    }
}

fn get_bits(r: &mut Rd<'_>, bits: &mut [u64]) -> Option<()> {
    for _ in 0..r.u16()? {
        let i = r.u8()? as usize;
        *bits.get_mut(i)? = r.u64()?;
    }
    Some(())
}

impl Persist for Track {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.hour);
        put_bits(&self.hour_bits, out);
        out.put_u32(self.hour_unique);
        out.put_u32(self.hour_len_sum);
        out.put_f64(self.hour_bytes);
        out.put_u16(self.day);
        put_bits(&self.day_bits[..], out);
        out.put_u32(self.day_unique);
        out.put_f64(self.day_bytes);
        out.put_u32(self.queries);
        out.put_u32(self.odd_types);
        out.put_u16(self.max_label);
        out.put_u32(self.fired_hour);
        out.put_u16(self.fired_day);
        out.put_u32(self.last);
    }
    fn get(r: &mut Rd<'_>) -> Option<Track> {
        let mut t = Track::new();
        t.hour = r.u32()?;
        get_bits(r, &mut t.hour_bits)?;
        t.hour_unique = r.u32()?;
        t.hour_len_sum = r.u32()?;
        t.hour_bytes = r.f64()?;
        t.day = r.u16()?;
        get_bits(r, &mut t.day_bits[..])?;
        t.day_unique = r.u32()?;
        t.day_bytes = r.f64()?;
        t.queries = r.u32()?;
        t.odd_types = r.u32()?;
        t.max_label = r.u16()?;
        t.fired_hour = r.u32()?;
        t.fired_day = r.u16()?;
        t.last = r.u32()?;
        Some(t)
    }
}

/// Cold-start evidence of one (device, registered domain) today: see [`cold_signal`].
#[derive(Default)]
struct Cold {
    day: u16,
    points: u32,
    /// Hashes of the distinct names that carried a signal (at most 64 counted).
    names: Vec<u64>,
    /// Bit set of [`ColdClass`]es seen.
    classes: u8,
    /// Distinct query types seen (at most 8).
    qtypes: Vec<u16>,
    /// Distinct numbered chunks pulled by TXT.
    chunks: Vec<u32>,
    fired: bool,
    examples: Vec<compact_str::CompactString>,
    last: u32,
}

impl Persist for Cold {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u16(self.day);
        out.put_u32(self.points);
        out.put_u32(self.names.len() as u32);
        for h in &self.names {
            out.put_u64(*h);
        }
        out.put_u8(self.classes);
        out.put_u32(self.qtypes.len() as u32);
        for t in &self.qtypes {
            out.put_u16(*t);
        }
        out.put_u32(self.chunks.len() as u32);
        for c in &self.chunks {
            out.put_u32(*c);
        }
        out.put_u8(u8::from(self.fired));
        out.put_u32(self.examples.len() as u32);
        for e in &self.examples {
            out.put_str(e);
        }
        out.put_u32(self.last);
    }
    fn get(r: &mut Rd<'_>) -> Option<Cold> {
        let mut c = Cold {
            day: r.u16()?,
            points: r.u32()?,
            ..Cold::default()
        };
        let n = r.count(8)?;
        if n > COLD_NAMES {
            return None;
        }
        for _ in 0..n {
            c.names.push(r.u64()?);
        }
        c.classes = r.u8()?;
        let n = r.count(2)?;
        if n > 8 {
            return None;
        }
        for _ in 0..n {
            c.qtypes.push(r.u16()?);
        }
        let n = r.count(4)?;
        if n > COLD_NAMES {
            return None;
        }
        for _ in 0..n {
            c.chunks.push(r.u32()?);
        }
        c.fired = r.u8()? == 1;
        let n = r.count(4)?;
        if n > 3 {
            return None;
        }
        for _ in 0..n {
            c.examples.push(r.str()?.into());
        }
        c.last = r.u32()?;
        Some(c)
    }
}

const COLD_NAMES: usize = 64;
const MAX_COLD: usize = 50_000;
/// Points and distinct names at which the cold-start stage fires.
const COLD_POINTS: u32 = 8;
const COLD_MIN_NAMES: usize = 3;

/// Classes of cold-start evidence (bits of `Cold::classes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColdClass {
    /// NULL or a private-use query type with a subdomain.
    OddType = 0,
    /// An encoded label (hex, base32, base64) under TXT, MX, CNAME, SRV or another data type.
    EncodedData = 1,
    /// Numbered chunk labels pulled by TXT (a stager).
    Chunks = 2,
    /// A data-bearing label answered from a private or CGNAT range (an A-record tunnel).
    PrivateAnswer = 3,
    /// One client rotating four or more record types over one new domain.
    TypeRotation = 4,
}

const CLASS_NAMES: [&str; 5] = [
    "null_or_private_type",
    "encoded_label_in_data_query",
    "numbered_txt_chunks",
    "data_label_answered_from_private_range",
    "record_type_rotation",
];

/// How a label looks encoded: "hex", "base32", "base64" or "encoded" (long and random).
pub fn encoding(label: &str) -> Option<&'static str> {
    let b = label.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_lowercase()).count();
    if b.len() >= 8 && digits > 0 && letters > 0 && b.iter().all(|c| c.is_ascii_hexdigit()) {
        return Some("hex");
    }
    let h = entropy(b);
    if b.len() >= 10 && h >= 3.0 && b.iter().any(|c| matches!(c, b'=' | b'+' | b'/' | b'\\')) {
        return Some("base64");
    }
    if b.len() >= 10
        && digits > 0
        && h >= 3.0
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(c))
    {
        return Some("base32");
    }
    if b.len() >= 16 && digits >= 2 && h >= 3.5 {
        return Some("encoded");
    }
    None
}

/// A short label that can carry data (an A-record tunnel's base32-like chunks): 6+ characters
/// of letters and digits with at least one digit and no vowel-rich word shape.
fn short_data_label(label: &str) -> bool {
    let b = label.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    b.len() >= 6
        && digits > 0
        && digits < b.len()
        && b.iter().all(|c| c.is_ascii_alphanumeric())
        && entropy(b) >= 2.5
}

fn private_or_cgnat(ip: std::net::IpAddr) -> bool {
    match crate::net::canonical(ip) {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        std::net::IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The cold-start evidence one query carries: (class, points).
fn cold_signal(ev: &Enriched<'_>) -> Option<(ColdClass, u32)> {
    let qt = ev.ev.qtype;
    if qt == 10 || qt == 65399 || (65280..=65534).contains(&qt) {
        return Some((ColdClass::OddType, 3));
    }
    // the common case first, without looking at the labels: an address query answered from
    // a public address (or a PTR, HTTPS, SVCB query) carries no cold-start signal
    if matches!(qt, 1 | 28) {
        if !ev.internal_answer
            || !ev
                .ev
                .answers
                .iter()
                .any(|a| a.addr().is_some_and(private_or_cgnat))
        {
            return None;
        }
        let data = ev
            .sub
            .split('.')
            .any(|l| short_data_label(l) || encoding(l).is_some());
        return data.then_some((ColdClass::PrivateAnswer, 2));
    }
    if matches!(qt, 64 | 65 | 12) {
        return None;
    }
    if ev.sub.split('.').any(|l| encoding(l).is_some()) {
        return Some((ColdClass::EncodedData, 2));
    }
    let first = ev.sub.split('.').next().unwrap_or("");
    if qt == 16
        && !first.is_empty()
        && first.len() <= 5
        && first.bytes().all(|c| c.is_ascii_digit())
    {
        return Some((ColdClass::Chunks, 1));
    }
    None
}

pub struct Tunneling {
    tracks: HashMap<(u32, u64), Track, foldhash::fast::FixedState>,
    cold: HashMap<(u32, u64), Cold, foldhash::fast::FixedState>,
    per_hour: u32,
    per_day: f64,
    last_sweep: u32,
}

impl Tunneling {
    pub fn new(t: &Tuning) -> Tunneling {
        Tunneling {
            tracks: HashMap::default(),
            cold: HashMap::default(),
            per_hour: t.tunnel_unique_per_hour.max(2),
            per_day: f64::from(t.tunnel_bytes_per_day.max(64)),
            last_sweep: 0,
        }
    }
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &[u8]) -> f64 {
    entropy_of(s.iter().copied())
}

/// Shannon entropy, bits per byte, of the bytes `it` yields (no allocation).
fn entropy_of(it: impl Iterator<Item = u8>) -> f64 {
    let mut c = [0u32; 256];
    let mut n = 0u32;
    for b in it {
        c[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    c.iter()
        .filter(|&&x| x > 0)
        .map(|&x| {
            let p = f64::from(x) / n;
            -p * p.log2()
        })
        .sum()
}

/// Bytes a subdomain could carry: its length without dots, scaled by how close its entropy is
/// to that of base32 (5 bits per character).
pub fn payload_bytes(sub: &str) -> f64 {
    let bytes = || sub.bytes().filter(|&c| c != b'.');
    let h = entropy_of(bytes());
    bytes().count() as f64 * (h / 5.0).min(1.0) * 5.0 / 8.0
}

fn tunnel_score(n: &dnsight_model::Name) -> Option<f64> {
    static M: std::sync::OnceLock<Option<crate::dga::Model>> = std::sync::OnceLock::new();
    M.get_or_init(|| crate::dga::Model::decode(crate::dga::MODEL_BYTES).ok())
        .as_ref()
        .map(|m| m.tunnel_score(n))
}

impl Detector for Tunneling {
    fn name(&self) -> &'static str {
        "tunneling"
    }
    fn state_len(&self) -> usize {
        self.tracks.len()
    }
    fn save_state(&self, ip: &dyn Fn(crate::alert::DevId) -> std::net::IpAddr, out: &mut Vec<u8>) {
        super::save_map(&self.tracks, ip, out);
        super::save_map(&self.cold, ip, out);
    }
    fn load_state(
        &mut self,
        id: &dyn Fn(std::net::IpAddr) -> Option<crate::alert::DevId>,
        r: &mut Rd<'_>,
    ) -> Option<()> {
        super::load_map(&mut self.tracks, id, r)?;
        // states written before the cold-start stage end here
        if !r.is_empty() {
            super::load_map(&mut self.cold, id, r)?;
        }
        Some(())
    }
    fn tick(&mut self, now: u32) {
        if now.saturating_sub(self.last_sweep) >= 3600 {
            self.last_sweep = now;
            self.tracks
                .retain(|_, t| now.saturating_sub(t.last) < 2 * 86_400);
            self.cold
                .retain(|_, t| now.saturating_sub(t.last) < 2 * 86_400);
        }
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if ev.sub.is_empty()
            || ev.reverse_addr.is_some()
            || ev.dest == "in-addr.arpa"
            || ev.dest == "ip6.arpa"
            || ev.internal
        {
            return;
        }
        let before = out.len();
        self.cold_start(ev, ctx, out);
        let cold_pushed = out.len() > before;
        let odd = matches!(ev.ev.qtype, 10 | 16 | 5 | 65399) || ev.ev.qtype >= 65280;
        if ev.sub.len() < 8 && !odd {
            return;
        }
        let key = (ev.dev, ev.hashes.dest);
        let full = self.tracks.len() >= MAX_TRACKS;
        let t = match self.tracks.get_mut(&key) {
            Some(t) => t,
            None if full => return,
            None => self.tracks.entry(key).or_insert_with(Track::new),
        };
        t.last = t.last.max(ev.now);
        // a late event (out of order) counts in the newest hour and day, never resets them
        let (hour, day) = (ev.hour.max(t.hour), ev.day.max(t.day));
        if t.hour != hour {
            t.hour = hour;
            t.hour_bits = [0; 16];
            t.hour_unique = 0;
            t.hour_len_sum = 0;
            t.hour_bytes = 0.0;
        }
        if t.day != day {
            t.day = day;
            *t.day_bits = [0; 64];
            t.day_unique = 0;
            t.day_bytes = 0.0;
            t.queries = 0;
            t.odd_types = 0;
        }
        t.queries += 1;
        if odd {
            t.odd_types += 1;
        }
        let max_label = ev.sub.split('.').map(str::len).max().unwrap_or(0);
        t.max_label = t.max_label.max(max_label.min(u16::MAX as usize) as u16);
        let h = ev.hashes.sub;
        // computed only for a subdomain not yet counted this hour or day
        let mut payload = None;
        let mut payload = || *payload.get_or_insert_with(|| payload_bytes(ev.sub));
        let hb = (h & 1023) as usize;
        if t.hour_bits[hb >> 6] & (1 << (hb & 63)) == 0 {
            t.hour_bits[hb >> 6] |= 1 << (hb & 63);
            t.hour_unique += 1;
            t.hour_len_sum += ev.sub.len() as u32;
            t.hour_bytes += payload();
        }
        let db = ((h >> 10) & 4095) as usize;
        if t.day_bits[db >> 6] & (1 << (db & 63)) == 0 {
            t.day_bits[db >> 6] |= 1 << (db & 63);
            t.day_unique += 1;
            t.day_bytes += payload();
        }
        let mean_len = f64::from(t.hour_len_sum) / f64::from(t.hour_unique.max(1));
        let mean_payload = t.hour_bytes / f64::from(t.hour_unique.max(1));
        let fast = t.hour_unique >= self.per_hour && mean_payload >= 10.0;
        let slow = t.day_bytes >= self.per_day && t.day_unique >= 30;
        if !fast && !slow {
            return;
        }
        // one new finding per hour (fast) / day (slow); repeats update the alert cheaply
        let first = (fast && t.fired_hour != hour) || (slow && t.fired_day != day);
        if fast {
            t.fired_hour = hour;
        }
        if slow {
            t.fired_day = day;
        }
        if !first {
            if cold_pushed {
                return; // the cold-start stage already counted this query
            }
            if let Some(r) = ctx.repeat(Kind::Tunneling, ev, ev.dest) {
                out.push(r);
                return;
            }
        }
        let odd_share = f64::from(t.odd_types) / f64::from(t.queries.max(1));
        let mut score: f64 = if fast { 60.0 } else { 50.0 };
        if odd_share >= 0.5 {
            score += 15.0;
        }
        let ts = if first {
            tunnel_score(&ev.ev.qname)
        } else {
            None
        };
        if ts.is_some_and(|s| s >= 0.8) {
            score += 10.0;
        }
        let od = ctx.base.org(ev.dest_id);
        let devices = od.map_or(0, |o| o.devices);
        let prevalent = devices >= 5 && ev.dest_id.is_some_and(|id| ctx.base.prevalence(id) >= 0.2);
        if prevalent {
            score -= 25.0;
        }
        // a benign encoder: the device used this destination while learning (antivirus
        // reputation, DNSBL, telemetry) and nothing suspicious was raised on it since
        let learned = ev.entry.is_some_and(|e| {
            e.flags & crate::baseline::flag::LEARNED != 0
                && e.flags & crate::baseline::flag::SUSPECT == 0
        });
        if learned {
            if prevalent || devices >= 3 {
                return; // learned here and used across the organisation: its normal
            }
            score = score.min(15.0); // learned by this device only: recorded (info)
        }
        let mode = if fast { "fast" } else { "slow" };
        out.push(Finding {
            kind: Kind::Tunneling,
            dev: ev.dev,
            destination: ev.dest.into(),
            score,
            summary: format!(
                "{} sent about {:.0} bytes of encoded data in {} unique subdomains of {} today ({} unique this hour): DNS tunneling or exfiltration ({mode}).",
                ev.ev.client, t.day_bytes, t.day_unique, ev.dest, t.hour_unique
            ),
            evidence: json!({
                "mode": mode,
                "unique_subdomains_hour": t.hour_unique,
                "unique_subdomains_day": t.day_unique,
                "payload_bytes_day": t.day_bytes.round(),
                "mean_subdomain_length": (mean_len * 10.0).round() / 10.0,
                "mean_payload_bytes": (mean_payload * 10.0).round() / 10.0,
                "longest_label": t.max_label,
                "txt_null_cname_share": (odd_share * 1000.0).round() / 1000.0,
                "subdomain_entropy": (entropy(ev.sub.as_bytes()) * 100.0).round() / 100.0,
                "tunnel_score": ts.map(|s| (s * 1000.0).round() / 1000.0),
                "org_devices_using": devices,
            }),
            sample: Some(ev.sample()),
            repeat: false,
        });
    }
}

impl Tunneling {
    /// **Cold start**: encodings and transports no benign client uses, from the first dozen
    /// queries of a (device, registered domain) that is new to the device and to (nearly) the
    /// whole organisation, with no baseline or feed needed. Points per distinct name: NULL or
    /// a private-use type with a subdomain 3; an encoded label (hex, base32, base64) under
    /// TXT/MX/CNAME/SRV/... 2; a data-bearing label answered from a private or CGNAT range
    /// (an A-record tunnel) 2; a numbered chunk pulled by TXT 1; once, four or more record
    /// types rotated over the domain 3. Fires at 8 points over at least 3 distinct names:
    /// 70, +10 with two kinds of evidence, +5 for NULL/private types. Names with a `_` label
    /// (DKIM, DMARC, SRV service names) carry no signal.
    fn cold_start(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if ev.sub.starts_with('_') || ev.sub.contains("._") {
            return;
        }
        let key = (ev.dev, ev.hashes.dest);
        let signal = cold_signal(ev);
        let tracked = self.cold.contains_key(&key);
        let rare_type = !matches!(ev.ev.qtype, 1 | 28 | 64 | 65 | 12);
        if signal.is_none() && !tracked && !rare_type {
            return;
        }
        // new to the device (not a habit older than a day: a fresh state learns the tunnel's
        // own first queries) and used by at most one other device
        if ev
            .entry
            .is_some_and(|e| e.is_known() && ev.now.saturating_sub(e.first) >= 86_400)
        {
            return;
        }
        let devices = ctx.base.org(ev.dest_id).map_or(0, |o| o.devices);
        if devices > 2 {
            return;
        }
        if !tracked && self.cold.len() >= MAX_COLD {
            return;
        }
        let c = self.cold.entry(key).or_default();
        c.last = c.last.max(ev.now);
        if ev.day > c.day {
            let fired = c.fired && c.day + 1 >= ev.day;
            *c = Cold {
                day: ev.day,
                fired,
                last: ev.now,
                ..Cold::default()
            };
        }
        if !c.qtypes.contains(&ev.ev.qtype) && c.qtypes.len() < 8 {
            c.qtypes.push(ev.ev.qtype);
            if c.qtypes.len() == 4
                && ev
                    .sub
                    .split('.')
                    .any(|l| encoding(l).is_some() || short_data_label(l))
            {
                c.classes |= 1 << ColdClass::TypeRotation as u8;
                c.points += 3;
            }
        }
        let Some((class, pts)) = signal else {
            return self.cold_repeat(ev, ctx, out, key);
        };
        let h = ev.hashes.qname;
        if c.names.contains(&h) || c.names.len() >= COLD_NAMES {
            return self.cold_repeat(ev, ctx, out, key);
        }
        c.names.push(h);
        if class == ColdClass::Chunks {
            let n: u32 = ev.sub.split('.').next().unwrap_or("").parse().unwrap_or(0);
            if !c.chunks.contains(&n) {
                c.chunks.push(n);
            }
            if c.chunks.len() < 3 {
                return;
            }
        }
        c.classes |= 1 << class as u8;
        c.points += pts;
        if c.examples.len() < 3 {
            c.examples.push(ev.sample());
        }
        if c.fired {
            return self.cold_repeat(ev, ctx, out, key);
        }
        if c.points < COLD_POINTS || c.names.len() < COLD_MIN_NAMES {
            return;
        }
        c.fired = true;
        let kinds = c.classes.count_ones();
        let mut score = 70.0;
        if kinds >= 2 {
            score += 10.0;
        }
        if c.classes & (1 << ColdClass::OddType as u8) != 0 {
            score += 5.0;
        }
        let classes: Vec<&str> = (0..5)
            .filter(|i| c.classes & (1 << i) != 0)
            .map(|i| CLASS_NAMES[i as usize])
            .collect();
        let qtypes: Vec<String> = c
            .qtypes
            .iter()
            .map(|&t| dnsight_model::rtype_to_str(t).to_string())
            .collect();
        out.push(Finding {
            kind: Kind::Tunneling,
            dev: ev.dev,
            destination: ev.dest.into(),
            score,
            summary: format!(
                "{} sent {} queries to {}, a domain new to it, in ways no ordinary client does ({}): a DNS tunnel or C2 channel from its first queries.",
                ev.ev.client,
                c.names.len(),
                ev.dest,
                classes.join(", ").replace('_', " ")
            ),
            evidence: json!({
                "mode": "cold_start",
                "signals": classes,
                "points": c.points,
                "distinct_names": c.names.len(),
                "query_types": qtypes,
                "numbered_chunks": c.chunks.len(),
                "examples": c.examples,
                "org_devices_using": devices,
            }),
            sample: Some(ev.sample()),
            repeat: false,
        });
    }

    fn cold_repeat(
        &self,
        ev: &Enriched<'_>,
        ctx: &Ctx<'_>,
        out: &mut Vec<Finding>,
        key: (u32, u64),
    ) {
        if self.cold.get(&key).is_some_and(|c| c.fired) {
            if let Some(r) = ctx.repeat(Kind::Tunneling, ev, ev.dest) {
                out.push(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn an_iodine_like_fast_tunnel_is_found() {
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1s x150 10.0.0.5 {r}{r}{r}.{r}{r}.t.tun.example NULL NOERROR
            ",
        );
        let got = lines(&e, Some("tunneling"));
        assert!(
            got.starts_with("tunneling critical 10.0.0.5 tun.example")
                || got.starts_with("tunneling high 10.0.0.5 tun.example"),
            "{got}"
        );
        let a = &e
            .alerts()
            .into_iter()
            .find(|a| a.kind.as_str() == "tunneling")
            .unwrap();
        assert_eq!(a.evidence["mode"], "fast");
        assert!(a.evidence["txt_null_cname_share"].as_f64().unwrap() > 0.9);
    }

    #[test]
    fn slow_exfiltration_over_a_day_is_found() {
        // one 48-character chunk every 3 minutes for 20 hours: ~0.15 B/s of payload
        let e = run(
            cfg(),
            "
            +0 10.0.0.7 www.example.com A NOERROR 93.184.216.34
            +180s x400 10.0.0.7 {r}{r}{r}{r}.data.exfil.example A NXDOMAIN
            ",
        );
        let got = lines(&e, Some("tunneling"));
        assert!(
            got.contains("10.0.0.7 exfil.example"),
            "{got}\n{}",
            lines(&e, None)
        );
        let a = &e
            .alerts()
            .into_iter()
            .find(|a| a.kind.as_str() == "tunneling")
            .unwrap();
        assert_eq!(a.evidence["mode"], "slow");
    }

    #[test]
    fn ordinary_cdn_hostnames_are_not_tunnels() {
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +20s x200 10.0.0.5 img{i}.static.cdn.example A NOERROR 198.51.100.1
            +20s x200 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            ",
        );
        assert_alerts(&e, Some("tunneling"), "");
    }

    #[test]
    fn a_learned_reputation_service_is_a_benign_encoder_a_new_zone_is_not() {
        // four workstations look up hash labels under the AV zone while learning (day 1);
        // on day 2 one of them runs a full scan: hundreds of hash lookups an hour. Another
        // device does the same shape to a zone nobody used: a tunnel.
        let mut fx = String::new();
        for d in 5..9 {
            fx.push_str(&format!(
                "@2026-11-02T0{d}:00:00Z\n+5m x6 10.0.0.{d} {{r}}{{r}}{{r}}.avqs.example A NOERROR 127.0.0.1\n"
            ));
        }
        fx.push_str("@2026-11-03T10:00:00Z\n+0 10.0.0.9 www.example.com A NOERROR 93.184.216.34\n");
        fx.push_str(
            "@2026-11-04T10:00:00Z\n+7s x400 10.0.0.5 {r}{r}{r}.avqs.example A NOERROR 127.0.0.2\n",
        );
        fx.push_str("@2026-11-04T12:00:00Z\n+7s x400 10.0.0.9 {r}{r}{r}.sync-cdn.example A NOERROR 127.0.0.2\n");
        let e = run(cfg(), &fx);
        let got = lines(&e, Some("tunneling"));
        assert!(!got.contains("avqs.example"), "{got}");
        assert!(got.contains("10.0.0.9 sync-cdn.example"), "{got}");
    }

    /// Runs `lines` (one fixture line each) through a fresh engine: a cold start, no feed.
    fn cold(lines_: &[String]) -> crate::engine::Engine {
        run(cfg(), &lines_.join("\n"))
    }

    fn hex(i: u64) -> String {
        format!(
            "{:016x}",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995
        )
    }

    #[test]
    fn cold_start_tunnels_and_c2_from_a_dozen_queries() {
        let cases: Vec<(&str, Vec<String>)> = vec![
            // dnscat2: hex session labels under TXT, MX and CNAME
            ("dnscat.example", (0..12).map(|i| format!("+2s 10.0.0.5 {}{}.dnscat.example {} NOERROR txt:ok", hex(i), &hex(i + 99)[..6], ["TXT", "MX", "CNAME"][i as usize % 3])).collect()),
            // iodine / sods: NULL queries with an encoded label
            ("tun.example", (0..12).map(|i| format!("+1s 10.0.0.5 paaa{}.t.tun.example NULL NOERROR", &hex(i)[..10])).collect()),
            // a stager pulling numbered TXT chunks
            ("stage.example", (1..=12).map(|i| format!("+1s 10.0.0.5 {i}.cdn.stage.example TXT NOERROR txt:QUJDREVGRw==")).collect()),
            // an A-record tunnel: short base32-like labels answered from CGNAT
            ("arec.example", (0..12).map(|i| format!("+3s 10.0.0.5 {}.arec.example A NOERROR 100.64.{}.{}", &hex(i)[..7].replace('0', "k"), i, i + 1)).collect()),
            // C2 rotating record types over a lookalike domain with base64 in labels
            ("rnicrosoft-update.example", (0..12).map(|i| format!("+2s 10.0.0.5 agvsbg8gd29y{}=.rnicrosoft-update.example {} NOERROR 198.51.100.{}", &hex(i)[..4], ["A", "AAAA", "TXT", "MX", "CNAME", "SRV"][i as usize % 6], i + 1)).collect()),
        ];
        for (dest, lines_) in cases {
            let e = cold(&lines_);
            let got = lines(&e, Some("tunneling"));
            assert!(
                got.starts_with(&format!("tunneling high 10.0.0.5 {dest}"))
                    || got.starts_with(&format!("tunneling critical 10.0.0.5 {dest}")),
                "{dest}: {got}\n{}",
                lines(&e, None)
            );
            let a = e
                .alerts()
                .into_iter()
                .find(|a| a.kind.as_str() == "tunneling")
                .unwrap();
            assert_eq!(a.evidence["mode"], "cold_start", "{dest}");
        }
    }

    #[test]
    fn cold_start_leaves_ordinary_clients_alone() {
        let mut l = Vec::new();
        for i in 0..40u64 {
            // CDN hostnames with hex labels answered from public addresses, HTTPS records
            l.push(format!(
                "+2s 10.0.0.5 e{}.a.akamaiedge.example A NOERROR 23.0.0.{}",
                &hex(i)[..8],
                i + 1
            ));
            l.push(format!(
                "+0 10.0.0.5 e{}.a.akamaiedge.example HTTPS NOERROR",
                &hex(i)[..8]
            ));
            // mail: DKIM selectors (base32-like) and DMARC, SPF on the bare domain
            l.push(format!(
                "+1s 10.0.0.6 {}._domainkey.shop{i}.example TXT NOERROR txt:v=DKIM1",
                &hex(i)[..12]
            ));
            l.push(format!(
                "+0 10.0.0.6 _dmarc.shop{i}.example TXT NOERROR txt:v=DMARC1"
            ));
            l.push(format!(
                "+0 10.0.0.6 shop{i}.example TXT NOERROR txt:v=spf1"
            ));
            // a home NAS's per-device names in a private range, words not data
            l.push(format!(
                "+0 10.0.0.7 nas{i}.myhome.example A NOERROR 192.168.1.{}",
                i + 1
            ));
        }
        let e = cold(&l);
        assert_alerts(&e, Some("tunneling"), "");
    }
}
