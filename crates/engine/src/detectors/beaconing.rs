//! **beaconing**: a device looks up the same name (or names under the same registered domain)
//! at regular intervals — the heartbeat of command-and-control implants.
//!
//! How (RITA's timestamp score, adapted to DNS, per device and per name): keep the last 64
//! distinct query times of each (device, qname) and (device, registered domain) pair. Once a
//! pair has `beacon_min_events` (default 8) timestamps, score the inter-arrival times every 4
//! new ones (every 25 % more for long-lived pairs):
//! - regularity = mean of `1 − |Bowley skew|` (skew taken as 0 when the IQR is under 2 s) and
//!   `(median − MAD) / median` — jitter of a few percent barely lowers it;
//! - DNS caching quantises intervals to multiples of max(period, TTL) and hides some beats: the
//!   share of intervals within ±15 % of a whole multiple of the median also counts as
//!   regularity (`0.9 ×`), so missed beats do not break the pattern;
//! - coverage = active hours / hours spanned (spans under 2 h count as 1), and volume =
//!   min(1, n/32). `score = 0.6·regularity + 0.2·coverage + 0.2·volume`, reported at
//!   `beacon_threshold` (default 0.8). Median intervals under 2 s are retries, not beacons.
//!
//! Alert score: 40..80 from the beacon score, then novelty and prevalence decide (benign
//! periodic traffic — NTP, telemetry, IoT keep-alives — is periodic too): a destination new to
//! the device `+10`, never seen by the organisation `+10`; already in the device's learned
//! baseline `−20`; used by half the devices `−25` (or by 5+ devices and 20 % `−15`); internal
//! names `−20`; a pair that never got an answer and gets NXDOMAIN (a retry loop
//! of a misconfigured device, or an implant whose server is gone) at most 15 (info: recorded;
//! the misconfiguration detector speaks for it). Evidence: interval median/MAD/skew, an interval histogram, the TTL.
//!
//! Only destinations outside the device's learned baseline are tracked (new ones, promoted
//! benign novelty, suspect ones): periodic traffic to what a device already did while learning
//! would score info at most (−20, usually also prevalent), and skipping it keeps the per-event
//! cost and memory low. So a beacon that was already running during the learning period is
//! learned as normal — learning on a compromised network is the known limit of baselines; the
//! intel, DGA and tunneling detectors do not depend on it.
//!
//! Known false positives: update checks, NTP, mail polling, monitoring agents, IoT heartbeats.
//! They are usually old and common in the organisation, which is exactly what damps them.

use super::Persist;
use super::{Ctx, Detector};
use crate::alert::{Finding, Kind};
use crate::codec::{Put, Rd};
use crate::config::Tuning;
use crate::enrich::Enriched;
use serde_json::json;
use smallvec::SmallVec;
use std::collections::HashMap;

const MAX_TIMES: usize = 64;
const MAX_TRACKS: usize = 500_000;
const IDLE: u32 = 86_400;

#[derive(Default)]
struct Track {
    times: SmallVec<[u32; 6]>,
    /// Distinct timestamps ever added, and the count at which to score next.
    total: u32,
    next_eval: u32,
    /// Some beat got an answer (written where a count of reports used to be: a state from
    /// before reads as "maybe", set again by the next answered beat).
    answered: bool,
    min_ttl: u32,
    last: u32,
}

pub struct Beaconing {
    tracks: HashMap<(u32, u64), Track, foldhash::fast::FixedState>,
    min_events: usize,
    threshold: f64,
    last_sweep: u32,
}

impl Persist for Track {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.times.len() as u32);
        for &t in &self.times {
            out.put_u32(t);
        }
        out.put_u32(self.total);
        out.put_u32(self.next_eval);
        out.put_u16(u16::from(self.answered));
        out.put_u32(self.min_ttl);
        out.put_u32(self.last);
    }
    fn get(r: &mut Rd<'_>) -> Option<Track> {
        let n = r.count(4)?;
        if n > MAX_TIMES {
            return None;
        }
        let mut times = SmallVec::new();
        for _ in 0..n {
            times.push(r.u32()?);
        }
        Some(Track {
            times,
            total: r.u32()?,
            next_eval: r.u32()?,
            answered: r.u16()? & 1 == 1,
            min_ttl: r.u32()?,
            last: r.u32()?,
        })
    }
}

impl Beaconing {
    pub fn new(t: &Tuning) -> Beaconing {
        Beaconing {
            tracks: HashMap::default(),
            min_events: t.beacon_min_events.max(4) as usize,
            threshold: t.beacon_threshold,
            last_sweep: 0,
        }
    }
}

/// Interval statistics of a sorted timestamp list.
#[derive(Debug, Clone, PartialEq)]
pub struct BeaconScore {
    pub score: f64,
    pub regularity: f64,
    pub coverage: f64,
    pub median: f64,
    pub mad: f64,
    pub skew: f64,
    pub multiples: f64,
    pub histogram: [u32; 8],
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Histogram buckets of intervals: <10s, <30s, <1m, <5m, <15m, <1h, <6h, ≥6h.
pub const HIST_EDGES: [f64; 7] = [10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0];

/// Scores a list of distinct, ascending timestamps (seconds).
pub fn score_times(times: &[u32]) -> Option<BeaconScore> {
    if times.len() < 4 {
        return None;
    }
    let mut d: Vec<f64> = times
        .windows(2)
        .map(|w| f64::from(w[1].saturating_sub(w[0])))
        .collect();
    let mut histogram = [0u32; 8];
    for &x in &d {
        let b = HIST_EDGES.iter().position(|&e| x < e).unwrap_or(7);
        histogram[b] += 1;
    }
    d.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let median = quantile(&d, 0.5);
    if median <= 0.0 {
        return None;
    }
    let (q1, q3) = (quantile(&d, 0.25), quantile(&d, 0.75));
    let skew = if q3 - q1 < 2.0 {
        0.0
    } else {
        (q3 + q1 - 2.0 * median) / (q3 - q1)
    };
    let mut dev: Vec<f64> = d.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mad = quantile(&dev, 0.5);
    let madm = ((median - mad) / median).clamp(0.0, 1.0);
    let base = (1.0 - skew.abs()).clamp(0.0, 1.0) * 0.5 + madm * 0.5;
    let multiples = d
        .iter()
        .filter(|&&x| {
            let r = x / median;
            r >= 0.85 && (r - r.round()).abs() <= 0.15 * r.round().max(1.0).sqrt()
        })
        .count() as f64
        / d.len() as f64;
    let regularity = base.max(0.9 * multiples);
    let span = f64::from(times[times.len() - 1] - times[0]);
    let coverage = if span < 7200.0 {
        1.0
    } else {
        let mut hours: Vec<u32> = times.iter().map(|t| t / 3600).collect();
        hours.dedup();
        (hours.len() as f64 / (span / 3600.0).ceil().max(1.0)).min(1.0)
    };
    let volume = (times.len() as f64 / 32.0).min(1.0);
    Some(BeaconScore {
        score: 0.6 * regularity + 0.2 * coverage + 0.2 * volume,
        regularity,
        coverage,
        median,
        mad,
        skew,
        multiples,
        histogram,
    })
}

impl Detector for Beaconing {
    fn name(&self) -> &'static str {
        "beaconing"
    }
    fn state_len(&self) -> usize {
        self.tracks.len()
    }
    super::persist_windows!(tracks);
    fn tick(&mut self, now: u32) {
        if now.saturating_sub(self.last_sweep) >= 6 * 3600 {
            self.last_sweep = now;
            self.tracks.retain(|_, t| now.saturating_sub(t.last) < IDLE);
        }
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        // (P7) an internal name that does not exist (search-list expansions such as
        // `api.vendor.com.corp.example`, Kubernetes ndots) is answered by the organisation's
        // own DNS: it reaches no one outside, so its timing is not a channel
        if ev.reverse_addr.is_some() || (ev.internal && ev.nx) {
            return;
        }
        // destinations the device learned are not tracked (see the module docs)
        if ev
            .entry
            .is_some_and(|e| e.flags & crate::baseline::flag::LEARNED != 0)
        {
            return;
        }
        let qname = ev.ev.qname.as_str();
        let ttl = ev.ev.answers.iter().map(|a| a.ttl).min().unwrap_or(0);
        let mut keys: SmallVec<[(u64, bool); 2]> = SmallVec::new();
        keys.push((ev.hashes.qname, false));
        if !ev.sub.is_empty() {
            keys.push((ev.hashes.dest ^ 0x5bd1_e995, true));
        }
        let mut pushed = false;
        for (h, by_domain) in keys {
            let full = self.tracks.len() >= MAX_TRACKS;
            let t = match self.tracks.get_mut(&(ev.dev, h)) {
                Some(t) => t,
                None if full => return,
                None => self.tracks.entry((ev.dev, h)).or_default(),
            };
            t.last = t.last.max(ev.now);
            if ev.resolved() {
                t.answered = true;
            }
            if ttl > 0 && (t.min_ttl == 0 || ttl < t.min_ttl) {
                t.min_ttl = ttl;
            }
            // kept in time order: an event that arrives out of order (merged logs, several
            // writers) takes its place; the same second twice is not a new beat
            let Err(mut pos) = t.times.binary_search(&ev.now) else {
                continue;
            };
            if t.times.len() >= MAX_TIMES {
                t.times.drain(..MAX_TIMES / 4);
                if pos < MAX_TIMES / 4 {
                    continue; // older than every beat still kept
                }
                pos -= MAX_TIMES / 4;
            }
            t.times.insert(pos, ev.now);
            t.total = t.total.saturating_add(1);
            if t.times.len() < self.min_events || t.total < t.next_eval {
                continue;
            }
            // score at min_events, then every 4 new beats, spacing out (+25 %) for long-lived
            // pairs so that a chatty pair costs O(log n) evaluations
            t.next_eval = t.total + (t.total / 4).max(4);
            let Some(s) = score_times(&t.times) else {
                continue;
            };
            if pushed || ev.learning || s.score < self.threshold || s.median < 2.0 {
                continue;
            }
            let n = t.times.len();
            let min_ttl = t.min_ttl;
            let entry = ev.entry.as_ref();
            let od = ctx.base.org(ev.dest_id);
            let mut score = 40.0
                + 40.0
                    * ((s.score - self.threshold) / (1.0 - self.threshold).max(1e-6))
                        .clamp(0.0, 1.0);
            if entry.is_none_or(|e| !e.is_known()) {
                score += 10.0;
            }
            if od.is_none_or(|o| o.devices == 0) {
                score += 10.0;
            }
            if entry.is_some_and(|e| e.flags & crate::baseline::flag::LEARNED != 0) {
                score -= 20.0;
            }
            let prevalence = ev.dest_id.map_or(0.0, |id| ctx.base.prevalence(id));
            let devices = od.map_or(0, |o| o.devices);
            if prevalence >= 0.5 && devices >= 2 {
                score -= 25.0;
            } else if devices >= 5 && prevalence >= 0.2 {
                score -= 15.0;
            }
            if ev.internal {
                score -= 20.0;
            }
            let never_answered = !t.answered && ev.nx;
            if never_answered {
                // a name that never exists carries nothing back: a retry loop (see
                // misconfiguration) or an implant whose server is gone, not a live channel
                score = score.min(15.0);
            }
            let what = if by_domain {
                format!("names under {}", ev.dest)
            } else {
                qname.to_string()
            };
            out.push(Finding {
                kind: Kind::Beaconing,
                dev: ev.dev,
                destination: ev.dest.into(),
                score: score.clamp(5.0, 85.0),
                summary: format!("{} looks up {what} every {} with regular timing ({} lookups, beacon score {:.2}).", ev.ev.client, human(s.median), n, s.score),
                evidence: json!({
                    "qname": qname,
                    "scope": if by_domain { "registered_domain" } else { "qname" },
                    "lookups": n,
                    "interval_median_s": s.median,
                    "interval_mad_s": s.mad,
                    "bowley_skew": (s.skew * 1000.0).round() / 1000.0,
                    "regularity": (s.regularity * 1000.0).round() / 1000.0,
                    "multiples_of_median": (s.multiples * 1000.0).round() / 1000.0,
                    "hour_coverage": (s.coverage * 1000.0).round() / 1000.0,
                    "beacon_score": (s.score * 1000.0).round() / 1000.0,
                    "interval_histogram": {
                        "<10s": s.histogram[0], "<30s": s.histogram[1], "<1m": s.histogram[2], "<5m": s.histogram[3],
                        "<15m": s.histogram[4], "<1h": s.histogram[5], "<6h": s.histogram[6], ">=6h": s.histogram[7]
                    },
                    "min_ttl": min_ttl,
                    "org_devices_using": devices,
                    "never_answered": never_answered,
                    // the kept lookup times (Unix seconds, at most MAX_TIMES): the dashboard's
                    // timeline draws the real arrivals
                    "arrivals": t.times.as_slice(),
                }),
                sample: Some(ev.sample()),
                repeat: false,
            });
            pushed = true; // one finding per event is enough; keep updating the other track
        }
    }
}

fn human(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0}s")
    } else if secs < 7200.0 {
        format!("{:.1}min", secs / 60.0)
    } else {
        format!("{:.1}h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn scoring_regular_jittered_and_random_series() {
        let regular: Vec<u32> = (0..20).map(|i| 1000 + i * 300).collect();
        assert!(score_times(&regular).unwrap().score > 0.9);
        assert_eq!(score_times(&regular).unwrap().regularity, 1.0);
        // TTL quantisation with missed beats: intervals 300, 600, 300, 900...
        let gaps = [300, 600, 300, 300, 900, 300, 300, 600, 300, 300];
        let mut t = 1000;
        let quantised: Vec<u32> = std::iter::once(t)
            .chain(gaps.iter().map(|g| {
                t += g;
                t
            }))
            .collect();
        assert!(
            score_times(&quantised).unwrap().score >= 0.8,
            "{:?}",
            score_times(&quantised)
        );
        // human browsing: irregular
        let random = [
            1000, 1003, 1500, 1520, 4000, 4100, 9000, 9005, 9060, 15000, 15200,
        ];
        assert!(
            score_times(&random).unwrap().score < 0.7,
            "{:?}",
            score_times(&random)
        );
    }

    #[test]
    fn an_implant_checking_in_every_five_minutes_is_found_but_a_human_is_not() {
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1d 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            # the implant: every 300 s with ±15 s jitter, a new domain
            +300s~15s x16 10.0.0.5 cdn.update-check.example A NOERROR ttl:60 203.0.113.50
            # a person: bursts with long pauses
            +3s 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            +40s 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            +15m 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            +2s 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            +1h 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            +7m 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            +90s 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            +3h 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            +20s 10.0.0.6 news.example.org A NOERROR 93.184.216.35
            ",
        );
        assert_alerts(
            &e,
            Some("beaconing"),
            "beaconing high 10.0.0.5 update-check.example x3",
        );
        let a = e
            .alerts()
            .into_iter()
            .find(|a| a.kind.as_str() == "beaconing")
            .unwrap();
        let h = &a.evidence["interval_histogram"];
        assert_eq!(
            h["<5m"].as_u64().unwrap() + h["<15m"].as_u64().unwrap(),
            15,
            "{}",
            a.evidence
        );
        assert!(a.summary.contains("every 5.0min"), "{}", a.summary);
        // the real arrival times, ascending, one per counted lookup
        let at: Vec<u64> = a.evidence["arrivals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(at.len() as u64, a.evidence["lookups"].as_u64().unwrap());
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(at.len() <= MAX_TIMES);
    }

    #[test]
    fn learned_destinations_are_not_tracked_prevalent_ones_are_damped() {
        let learn = "
            +0 10.0.0.5 time.vendor.example A NOERROR 198.51.100.123
            +0 10.0.0.5 ntp.common.example A NOERROR 198.51.100.124
            +0 10.0.0.6 ntp.common.example A NOERROR 198.51.100.124
            +0 10.0.0.7 ntp.common.example A NOERROR 198.51.100.124
            +0 10.0.0.8 www.example.com A NOERROR 93.184.216.34
            +0 10.0.0.9 www.example.com A NOERROR 93.184.216.34
            +0 10.0.0.10 www.example.com A NOERROR 93.184.216.34
        ";
        // learned by this device: not tracked, whether few or many devices use it
        let e = run(cfg(), &format!("{learn}\n+1d 10.0.0.6 www.example.com A NOERROR 93.184.216.34\n+600s x12 10.0.0.5 time.vendor.example A NOERROR 198.51.100.123\n"));
        assert_alerts(&e, Some("beaconing"), "");
        let e = run(cfg(), &format!("{learn}\n+1d 10.0.0.6 www.example.com A NOERROR 93.184.216.34\n+600s x12 10.0.0.5 ntp.common.example A NOERROR 198.51.100.124\n"));
        assert_alerts(&e, Some("beaconing"), "");
        // the same periodic pattern to a destination the device did not learn, but which most of
        // the organisation uses: tracked, damped by prevalence
        let e = run(cfg(), &format!("{learn}\n+1d 10.0.0.6 www.example.com A NOERROR 93.184.216.34\n+600s x12 10.0.0.8 ntp.common.example A NOERROR 198.51.100.124\n"));
        assert_alerts(
            &e,
            Some("beaconing"),
            "beaconing medium 10.0.0.8 common.example x2",
        );
    }
}
