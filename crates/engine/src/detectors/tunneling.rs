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

pub struct Tunneling {
    tracks: HashMap<(u32, u64), Track, foldhash::fast::FixedState>,
    per_hour: u32,
    per_day: f64,
    last_sweep: u32,
}

impl Tunneling {
    pub fn new(t: &Tuning) -> Tunneling {
        Tunneling {
            tracks: HashMap::default(),
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
    super::persist_windows!(tracks);
    fn tick(&mut self, now: u32) {
        if now.saturating_sub(self.last_sweep) >= 3600 {
            self.last_sweep = now;
            self.tracks
                .retain(|_, t| now.saturating_sub(t.last) < 2 * 86_400);
        }
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        let odd = matches!(ev.ev.qtype, 10 | 16 | 5 | 65399) || ev.ev.qtype >= 65280;
        if ev.sub.is_empty() || (ev.sub.len() < 8 && !odd) {
            return;
        }
        if ev.reverse_addr.is_some()
            || ev.dest == "in-addr.arpa"
            || ev.dest == "ip6.arpa"
            || ev.internal
        {
            return;
        }
        let key = (ev.dev, ev.hashes.dest);
        let full = self.tracks.len() >= MAX_TRACKS;
        let t = match self.tracks.get_mut(&key) {
            Some(t) => t,
            None if full => return,
            None => self.tracks.entry(key).or_insert_with(Track::new),
        };
        t.last = ev.now;
        if t.hour != ev.hour {
            t.hour = ev.hour;
            t.hour_bits = [0; 16];
            t.hour_unique = 0;
            t.hour_len_sum = 0;
            t.hour_bytes = 0.0;
        }
        if t.day != ev.day {
            t.day = ev.day;
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
        let first = (fast && t.fired_hour != ev.hour) || (slow && t.fired_day != ev.day);
        if fast {
            t.fired_hour = ev.hour;
        }
        if slow {
            t.fired_day = ev.day;
        }
        if !first {
            if let Some(r) = ctx.repeat(Kind::Tunneling, ev, ev.dest) {
                out.push(r);
                return;
            }
        }
        let odd_share = f64::from(t.odd_types) / f64::from(t.queries.max(1));
        let mut score = if fast { 60.0 } else { 50.0 };
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
        let od = ev.dest_id.and_then(|id| ctx.base.dests.get(id as usize));
        let devices = od.map_or(0, |o| o.devices);
        if devices >= 5 && ev.dest_id.is_some_and(|id| ctx.base.prevalence(id) >= 0.2) {
            score -= 25.0;
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
}
