//! **dga**: algorithmically generated domain names, in two stages.
//!
//! 1. *Per name* (lexical): a resolved name whose registered domain the organisation has never
//!    had in any baseline and whose lexical DGA probability (`crate::dga`, the trained model;
//!    a small built-in heuristic if the embedded model cannot be decoded) is above the
//!    threshold (the stricter of `dga_name_threshold` and the model's 0.1 %-FP threshold).
//!    Alone this is low to medium (`20 + 30·(p − t)/(1 − t)`, `+20` right after an NXDOMAIN
//!    burst of the same device); it combines with novelty, beaconing and new-country signals
//!    on the same destination.
//! 2. *Per device* (behavioural, like Sentinel's per-client NXDOMAIN rule): in a sliding
//!    10–20 minute window, the number of distinct never-seen registered domains that do not
//!    exist (NXDOMAIN). At `dga_nx_burst` (default 12) names — and above three times the
//!    device's own normal for such a window — it fires if their mean lexical probability is
//!    ≥ 0.5 (random-looking families); at twice the burst it fires regardless of how the
//!    names look, which catches dictionary families (suppobox, matsnu: word pairs that no
//!    character model flags).
//!
//! **One incident per episode.** A device's DGA findings are one alert (destination empty):
//! once a device has a second generated-looking name resolve within 20 minutes, or its burst
//! alert is open, further per-name findings fold into that device alert instead of opening one
//! alert per name; the alert's evidence lists the names (`resolved_names`, up to 20, and
//! `resolved_name_count`) next to the burst's NXDOMAIN examples. The first name of an episode
//! keeps its own per-destination alert, so it can combine with novelty and beaconing there.
//!
//! Known false positives: typo bursts and broken search-domain configurations (many NXDOMAINs
//! but the names are internal or known — excluded), antivirus/reputation lookups encoding
//! hashes in labels (they resolve and are common across devices), spam filters' DNSBL queries
//! (reverse names; excluded). Only quiet windows (below the burst size) teach the device's
//! own normal, so a slow burst cannot raise its own bar.

use super::{Ctx, Detector, Persist};
use crate::alert::{DevId, Finding, Kind};
use crate::codec::{Put, Rd};
use crate::config::Tuning;
use crate::enrich::Enriched;
use compact_str::CompactString;
use dnsight_model::Name;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

const WINDOW: u32 = 600;

fn model() -> Option<&'static crate::dga::Model> {
    static M: OnceLock<Option<crate::dga::Model>> = OnceLock::new();
    M.get_or_init(|| crate::dga::Model::decode(crate::dga::MODEL_BYTES).ok())
        .as_ref()
}

/// Lexical probability (0..1) that a name is generated.
pub fn name_score(n: &Name) -> f64 {
    match model() {
        Some(m) => m.score(n),
        None => heuristic(n),
    }
}

/// Fallback when no model is available: entropy, length, vowels and digits of the
/// registered-domain label.
fn heuristic(n: &Name) -> f64 {
    let s = n.as_str();
    let reg = psl::domain_str(s).unwrap_or(s);
    let label = reg.split('.').next().unwrap_or("");
    let b = label.as_bytes();
    if b.len() < 6 {
        return 0.05;
    }
    let mut counts = [0u32; 256];
    for &c in b {
        counts[c as usize] += 1;
    }
    let len = b.len() as f64;
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum();
    let vowels = b.iter().filter(|c| b"aeiou".contains(c)).count() as f64 / len;
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count() as f64 / len;
    let x = 1.6 * (h - 3.2) + 0.15 * (len - 10.0) - 6.0 * (vowels - 0.3) + 3.0 * digits;
    1.0 / (1.0 + (-x).exp())
}

fn threshold(t: &Tuning) -> f64 {
    let m = model().map_or(0.0, |m| f64::from(m.threshold_0_1pct));
    t.dga_name_threshold.max(m).min(0.999)
}

#[derive(Default)]
struct Win {
    bucket: u32,
    cur: HashSet<u64, foldhash::fast::FixedState>,
    cur_prob: f64,
    prev_n: u32,
    prev_prob: f64,
    fired_bucket: u32,
    normal: f64,
    samples: Vec<CompactString>,
    last: u32,
}

impl Persist for Win {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.bucket);
        super::put_hashes(&self.cur, out);
        out.put_f64(self.cur_prob);
        out.put_u32(self.prev_n);
        out.put_f64(self.prev_prob);
        out.put_u32(self.fired_bucket);
        out.put_f64(self.normal);
        out.put_u32(self.samples.len() as u32);
        for s in &self.samples {
            out.put_str(s);
        }
        out.put_u32(self.last);
    }
    fn get(r: &mut Rd<'_>) -> Option<Win> {
        let bucket = r.u32()?;
        let cur = super::get_hashes(r)?;
        let (cur_prob, prev_n, prev_prob) = (r.f64()?, r.u32()?, r.f64()?);
        let (fired_bucket, normal) = (r.u32()?, r.f64()?);
        let mut samples = Vec::new();
        let n = r.count(4)?;
        if n > 5 {
            return None; // never written: a damaged record
        }
        for _ in 0..n {
            samples.push(r.str()?.into());
        }
        Some(Win {
            bucket,
            cur,
            cur_prob,
            prev_n,
            prev_prob,
            fired_bucket,
            normal,
            samples,
            last: r.u32()?,
        })
    }
}

/// A device's current DGA episode: the generated-looking names that resolved.
#[derive(Default)]
struct Episode {
    names: Vec<CompactString>,
    hits: u32,
    /// The highest score handed out for the device alert in this episode.
    score: f64,
    last: u32,
}

const EPISODE_NAMES: usize = 20;

impl Persist for Episode {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.names.len() as u32);
        for s in &self.names {
            out.put_str(s);
        }
        out.put_u32(self.hits);
        out.put_f64(self.score);
        out.put_u32(self.last);
    }
    fn get(r: &mut Rd<'_>) -> Option<Episode> {
        let n = r.count(4)?;
        if n > EPISODE_NAMES {
            return None;
        }
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push(r.str()?.into());
        }
        Some(Episode {
            names,
            hits: r.u32()?,
            score: r.f64()?,
            last: r.u32()?,
        })
    }
}

pub struct Dga {
    devs: HashMap<DevId, Win, foldhash::fast::FixedState>,
    episodes: HashMap<DevId, Episode, foldhash::fast::FixedState>,
    burst: u32,
    name_threshold: f64,
    last_sweep: u32,
}

impl Dga {
    pub fn new(t: &Tuning) -> Dga {
        Dga {
            devs: HashMap::default(),
            episodes: HashMap::default(),
            burst: t.dga_nx_burst.max(2),
            name_threshold: threshold(t),
            last_sweep: 0,
        }
    }
}

impl Detector for Dga {
    fn name(&self) -> &'static str {
        "dga"
    }
    fn state_len(&self) -> usize {
        self.devs.len()
    }
    fn save_state(&self, ip: &dyn Fn(DevId) -> std::net::IpAddr, out: &mut Vec<u8>) {
        super::save_map(&self.devs, ip, out);
        super::save_map(&self.episodes, ip, out);
    }
    fn load_state(
        &mut self,
        id: &dyn Fn(std::net::IpAddr) -> Option<DevId>,
        r: &mut Rd<'_>,
    ) -> Option<()> {
        super::load_map(&mut self.devs, id, r)?;
        // states written before episodes were kept end here
        if !r.is_empty() {
            super::load_map(&mut self.episodes, id, r)?;
        }
        Some(())
    }
    fn tick(&mut self, now: u32) {
        if now.saturating_sub(self.last_sweep) >= 3600 {
            self.last_sweep = now;
            self.devs
                .retain(|_, w| now.saturating_sub(w.last) < 2 * WINDOW);
            self.episodes
                .retain(|_, e| now.saturating_sub(e.last) < 2 * WINDOW);
        }
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if ev.internal
            || ev.reverse_addr.is_some()
            || ev.dest == "in-addr.arpa"
            || ev.dest == "ip6.arpa"
        {
            return;
        }
        let org_known = ctx.base.org(ev.dest_id).is_some_and(|o| o.devices > 0);
        if org_known {
            return;
        }
        if ev.nx {
            self.device_stage(ev, ctx, out);
        } else if ev.resolved() {
            let p = name_score(&ev.ev.qname);
            if p < self.name_threshold {
                return;
            }
            let recent_burst = self
                .devs
                .get(&ev.dev)
                .is_some_and(|w| w.fired_bucket + 1 >= ev.now / WINDOW && w.fired_bucket > 0);
            // One name's looks alone are low: at the model's 0.1% false-positive threshold an
            // organisation resolving thousands of never-seen names a day still meets a few
            // random-looking benign ones. It rises with corroboration: a burst of NXDOMAINs
            // just before, more such names (the episode below), or other signals on the same
            // destination (a new country, intel) combined in the alert book.
            let mut score = 20.0
                + 19.0
                    * ((p - self.name_threshold) / (1.0 - self.name_threshold).max(1e-6))
                        .clamp(0.0, 1.0);
            if recent_burst {
                score += 20.0;
            }
            let ep = self.episodes.entry(ev.dev).or_default();
            if ev.now.saturating_sub(ep.last) >= 2 * WINDOW {
                *ep = Episode::default();
            }
            ep.last = ep.last.max(ev.now);
            ep.hits += 1;
            let name = ev.ev.qname.as_str();
            if ep.names.len() < EPISODE_NAMES && !ep.names.iter().any(|n| n == name) {
                ep.names.push(name.into());
            }
            let fold = recent_burst || ep.hits >= 2 || ctx.book.is_open(Kind::Dga, ev.dev, "");
            if fold {
                // one incident: the device alert, each further resolving name adds a point
                let score = score.max(ep.score + 1.0).min(90.0);
                ep.score = ep.score.max(score);
                let (hits, names) = (ep.hits, ep.names.clone());
                out.push(Finding {
                    kind: Kind::Dga,
                    dev: ev.dev,
                    destination: "".into(),
                    score,
                    summary: format!("{} resolved {hits} never-seen names that look algorithmically generated within minutes (latest {name}, p={p:.3}): one domain-generation episode.", ev.ev.client),
                    evidence: json!({
                        "stage": "names",
                        "resolved_name_count": hits,
                        "resolved_names": names,
                        "probability": (p * 1000.0).round() / 1000.0,
                        "threshold": (self.name_threshold * 1000.0).round() / 1000.0,
                        "model": if model().is_some() { "embedded" } else { "heuristic" },
                        "after_nxdomain_burst": recent_burst,
                    }),
                    sample: Some(ev.sample()),
                    repeat: false,
                });
                return;
            }
            out.push(Finding {
                kind: Kind::Dga,
                dev: ev.dev,
                destination: ev.dest.into(),
                score,
                summary: format!("{} resolved {}, a never-seen name that looks algorithmically generated (p={p:.3}).", ev.ev.client, ev.ev.qname.as_str()),
                evidence: json!({
                    "stage": "name",
                    "qname": ev.ev.qname.as_str(),
                    "probability": (p * 1000.0).round() / 1000.0,
                    "threshold": (self.name_threshold * 1000.0).round() / 1000.0,
                    "model": if model().is_some() { "embedded" } else { "heuristic" },
                    "after_nxdomain_burst": recent_burst,
                }),
                sample: Some(ev.sample()),
                repeat: false,
            });
        }
    }
}

impl Dga {
    fn device_stage(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        let w = self.devs.entry(ev.dev).or_default();
        // a late event (out of order) counts in the newest window, never resets it
        let bucket = (ev.now / WINDOW).max(w.bucket);
        w.last = w.last.max(ev.now);
        if bucket != w.bucket {
            let fired = w.fired_bucket == w.bucket && w.bucket != 0;
            let (n, p) = if bucket == w.bucket + 1 {
                (w.cur.len() as u32, w.cur_prob)
            } else {
                (0, 0.0)
            };
            // only quiet windows teach the device's normal: a window that reached the burst
            // size (fired or not, e.g. the first half of a slow burst) must not raise the bar
            if !fired && w.bucket != 0 && (w.cur.len() as u32) < self.burst {
                w.normal = 0.8 * w.normal + 0.2 * f64::from(w.cur.len() as u32);
            }
            w.prev_n = n;
            w.prev_prob = p;
            w.cur.clear();
            w.cur_prob = 0.0;
            w.samples.clear();
            w.bucket = bucket;
        }
        let h = ev.hashes.dest;
        if w.cur.len() >= 4096 || !w.cur.insert(h) {
            return;
        }
        let p = name_score(&ev.ev.qname);
        w.cur_prob += p;
        if w.samples.len() < 5 {
            w.samples.push(ev.ev.qname.as_str().into());
        }
        let n = w.cur.len() as u32 + w.prev_n;
        let mean = (w.cur_prob + w.prev_prob) / f64::from(n.max(1));
        let need = f64::from(self.burst).max(3.0 * w.normal + f64::from(self.burst));
        if f64::from(n) < need {
            return;
        }
        let dictionary = mean < 0.5;
        if dictionary && f64::from(n) < 2.0 * need {
            return;
        }
        w.fired_bucket = bucket;
        let over = f64::from(n) - need;
        // a full finding (re-scored) every 8 names over the threshold, cheap repeats between
        if !(over as u32).is_multiple_of(8) {
            if let Some(r) = ctx.repeat(Kind::Dga, ev, "") {
                out.push(r);
                return;
            }
        }
        let score = if dictionary {
            45.0 + over.min(25.0)
        } else {
            55.0 + over.min(25.0) + 10.0 * mean
        };
        let ep = self.episodes.entry(ev.dev).or_default();
        if ev.now.saturating_sub(ep.last) >= 2 * WINDOW {
            *ep = Episode::default();
        }
        ep.last = ep.last.max(ev.now);
        // the device alert's score only grows within an episode (its evidence stays current)
        let score = score.min(90.0).max((ep.score + 0.5).min(90.0));
        ep.score = ep.score.max(score);
        let style = if dictionary {
            "dictionary-style (word-like names)"
        } else {
            "random-looking"
        };
        out.push(Finding {
            kind: Kind::Dga,
            dev: ev.dev,
            destination: "".into(),
            score,
            summary: format!("{} looked up {n} never-seen domains that do not exist within minutes, {style}: typical of a domain-generation algorithm.", ev.ev.client),
            evidence: json!({
                "stage": "device",
                "nxdomain_domains_in_window": n,
                "window_s": 2 * WINDOW,
                "mean_probability": (mean * 1000.0).round() / 1000.0,
                "device_normal_per_window": (w.normal * 10.0).round() / 10.0,
                "threshold": need,
                "style": if dictionary { "dictionary" } else { "random" },
                "examples": w.samples,
                "resolved_name_count": ep.hits,
                "resolved_names": ep.names,
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
    fn a_burst_of_random_nxdomains_fires_the_device_stage_typos_do_not() {
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1d 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            # a handful of typos: nothing
            +10s x4 10.0.0.6 wwww{i}.exmaple.com A NXDOMAIN
            # the infected host: random names under .com/.net, none exist
            +2s x30 10.0.0.5 {r}x{r}.com A NXDOMAIN
            ",
        );
        let got = lines(&e, Some("dga"));
        assert!(
            got.starts_with("dga high 10.0.0.5 - x")
                || got.starts_with("dga critical 10.0.0.5 - x"),
            "{got}"
        );
        assert_eq!(got.lines().count(), 1, "{got}");
        let a = e
            .alerts()
            .into_iter()
            .find(|a| a.kind.as_str() == "dga")
            .unwrap();
        assert_eq!(a.evidence["style"], "random");
        assert!(
            a.count >= 10,
            "every further name updates the alert: {}",
            a.count
        );
    }

    #[test]
    fn dictionary_families_are_caught_by_volume_alone() {
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1d 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +3s x30 10.0.0.5 followstation{i}.net A NXDOMAIN
            ",
        );
        let got = lines(&e, Some("dga"));
        assert!(
            got.starts_with("dga ") && got.contains(" 10.0.0.5 - x"),
            "{got}"
        );
    }

    #[test]
    fn a_resolving_random_name_new_to_the_org_scores_per_name() {
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1d 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1m 10.0.0.5 xkqzvbwpthrj.com A NOERROR 203.0.113.77
            +1m 10.0.0.5 wikipedia.org A NOERROR 198.51.100.1
            ",
        );
        let got = lines(&e, Some("dga"));
        assert!(
            got.contains("dga ") && got.contains("xkqzvbwpthrj.com"),
            "{got}"
        );
        assert!(!got.contains("wikipedia"), "{got}");
    }

    #[test]
    fn a_slow_dictionary_burst_is_not_hidden_by_its_own_first_window() {
        // suppobox-like word pairs, one every 24 s for 20 minutes, starting mid-window
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1d 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +7m 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +24s x48 10.0.0.5 morning{i}circle.net A NXDOMAIN
            ",
        );
        // {i} grows with the event index; the names stay word-like
        let got = lines(&e, Some("dga"));
        assert!(
            got.starts_with("dga ") && got.contains(" 10.0.0.5 - x"),
            "{got}"
        );
    }

    #[test]
    fn a_burst_with_many_resolving_names_is_one_incident() {
        // a family whose names partly resolve (sinkholes, parked): one device, 60 random
        // names in 10 minutes, every third one resolving
        let mut fx = String::from(
            "+0 10.0.0.5 www.example.com A NOERROR 93.184.216.34\n+1d 10.0.0.5 www.example.com A NOERROR 93.184.216.34\n",
        );
        for _ in 0..20 {
            fx.push_str("+3s 10.0.0.5 {r}q{r}.com A NXDOMAIN\n");
            fx.push_str("+3s 10.0.0.5 {r}x{r}.net A NXDOMAIN\n");
            fx.push_str("+3s 10.0.0.5 {r}z{r}.com A NOERROR 203.0.113.9\n");
        }
        let e = run(cfg(), &fx);
        let got = lines(&e, Some("dga"));
        assert!(
            got.lines().count() <= 2,
            "one episode, not one alert per name:\n{got}"
        );
        let a = e
            .alerts()
            .into_iter()
            .find(|a| a.kind.as_str() == "dga" && a.destination.is_empty())
            .expect("the device alert");
        assert!(a.severity >= crate::alert::Severity::High, "{got}");
        let n = a.evidence["resolved_name_count"].as_u64().unwrap();
        assert!(
            n >= 12,
            "the resolving names are its evidence: {}",
            a.evidence
        );
        assert!(a.evidence["resolved_names"].as_array().unwrap().len() >= 10);
        // nor one new_destination per resolving name (20 of them): a handful in the inbox
        // (the device alert, the first name's own alerts, the hour's traffic change, the names
        // resolved before the device alert opened)
        let inbox = e.alerts();
        assert!(inbox.len() <= 6, "{}", lines(&e, None));
    }
}
