//! **threat_intel**: the qname, any CNAME in the answer chain, or any answer address is on a
//! threat-intel feed (attacker infrastructure).
//!
//! Why: a listed indicator is the strongest single signal there is, and it needs no baseline,
//! so this fires from the first event, learning or not. Matching the CNAME chain catches a
//! benign-looking name that points into listed infrastructure; matching answer addresses
//! catches fresh domains on known-bad hosting. The evidence names the feed, the indicator and
//! what matched. A resolved answer (the device got an address) scores higher than a blocked or
//! failed lookup.
//!
//! Known false positives: stale or over-broad feeds (shared hosting IPs, parked domains,
//! sinkholes). Feeds carry an expiry; answer-address matches score a little lower than names.

use super::{Ctx, Detector};
use crate::alert::{Finding, Kind};
use crate::enrich::Enriched;
use serde_json::json;

#[derive(Default)]
pub struct ThreatIntel;

impl Detector for ThreatIntel {
    fn name(&self) -> &'static str {
        "threat_intel"
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        let Some(hit) = &ev.intel else { return };
        if let Some(r) = ctx.repeat(Kind::ThreatIntel, ev, ev.dest) {
            out.push(r);
            return;
        }
        let mut score: f64 = if hit.matched_on == "answer" {
            70.0
        } else {
            75.0
        };
        if ev.resolved() {
            score += 10.0;
        }
        // a feed's configured severity decides (a resolved answer still adds a little)
        if let Some(sev) = hit.severity {
            score = severity_score(sev) + if ev.resolved() { 4.0 } else { 0.0 };
        }
        let blocked = ev
            .ev
            .verdict
            .as_ref()
            .is_some_and(|v| v.action == dnsight_model::VerdictAction::Blocked);
        let how = match hit.matched_on {
            "qname" if blocked => format!("asked for {} (blocked)", ev.ev.qname.as_str()),
            "qname" if !ev.resolved() => format!(
                "asked for {} (answer: {})",
                ev.ev.qname.as_str(),
                ev.ev
                    .rcode
                    .map(dnsight_model::rcode_to_str)
                    .unwrap_or_else(|| "none".into())
            ),
            "qname" => format!("resolved {}", ev.ev.qname.as_str()),
            "cname" => format!(
                "resolved {} whose CNAME chain leads to {}",
                ev.ev.qname.as_str(),
                hit.observed
            ),
            _ => format!("resolved {} to {}", ev.ev.qname.as_str(), hit.observed),
        };
        out.push(Finding {
            kind: Kind::ThreatIntel,
            dev: ev.dev,
            destination: ev.dest.into(),
            score,
            summary: match &hit.category {
                Some(c) => format!(
                    "{} {how}, listed as {} ({c}) on threat feed {}.",
                    ev.ev.client, hit.indicator, hit.feed
                ),
                None => format!(
                    "{} {how}, listed as {} on threat feed {}.",
                    ev.ev.client, hit.indicator, hit.feed
                ),
            },
            evidence: json!({
                "feed": hit.feed.as_str(),
                "indicator": hit.indicator.as_str(),
                "matched_on": hit.matched_on,
                "observed": hit.observed.as_str(),
                "resolved": ev.resolved(),
                "blocked": blocked,
            })
            .tap_category(hit.category.as_deref()),
            sample: Some(ev.sample()),
            repeat: false,
        });
    }
}

/// Adds the feed's category to the evidence when it has one.
trait TapCategory {
    fn tap_category(self, c: Option<&str>) -> Self;
}
impl TapCategory for serde_json::Value {
    fn tap_category(mut self, c: Option<&str>) -> Self {
        if let (Some(c), Some(o)) = (c, self.as_object_mut()) {
            o.insert("category".into(), c.into());
        }
        self
    }
}

/// The score a feed's configured severity gives (inside its band, see `Severity::from_score`;
/// a resolved answer adds 4, staying in the band).
fn severity_score(s: crate::alert::Severity) -> f64 {
    use crate::alert::Severity::*;
    match s {
        Critical => 90.0,
        High => 70.0,
        Medium => 45.0,
        Low => 25.0,
        Info => 10.0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::intel::{Format, IntelSet};

    #[test]
    fn qname_cname_and_answer_matches_from_the_first_event() {
        let mut cfg = cfg();
        let mut s = IntelSet::new();
        s.add_feed(
            "c2-feed",
            "||c2.example^\nevilcdn.example\n",
            Format::Auto,
            None,
        );
        s.add_feed("bad-ips", "198.51.100.0/24\n", Format::Ip, None);
        cfg.intel = std::sync::Arc::new(s);
        let e = run(
            cfg,
            "
            +0 10.0.0.5 beacon.c2.example A NOERROR 203.0.113.9       # qname under a listed domain
            +5s 10.0.0.5 beacon.c2.example A NOERROR 203.0.113.9      # repeat: same alert
            +5s 10.0.0.6 www.innocent.example A NOERROR cname:x.evilcdn.example 203.0.113.10
            +5s 10.0.0.7 fresh.example A NOERROR 198.51.100.77        # answer on an IP list
            +5s 10.0.0.7 c2.example A NXDOMAIN                        # not resolved: lower score
            +5s 10.0.0.8 www.example.com A NOERROR 93.184.216.34      # clean
            ",
        );
        assert_alerts(
            &e,
            Some("threat_intel"),
            "threat_intel critical 10.0.0.5+1 c2.example x3
             threat_intel critical 10.0.0.6 innocent.example x1
             threat_intel high 10.0.0.7 fresh.example x1",
        );
        let a = e
            .alerts()
            .into_iter()
            .find(|a| a.destination == "innocent.example")
            .unwrap();
        assert_eq!(a.evidence["matched_on"], "cname");
        assert_eq!(a.evidence["feed"], "c2-feed");
    }

    #[test]
    fn a_listed_name_that_did_not_resolve_is_not_said_to_have_resolved() {
        let mut cfg = cfg();
        let mut s = IntelSet::new();
        s.add_feed("c2-feed", "c2.example\n", Format::Auto, None);
        cfg.intel = std::sync::Arc::new(s);
        let e = run(cfg, "+0 10.0.0.7 c2.example A NXDOMAIN");
        let a = &e.alerts()[0];
        assert_eq!(
            a.summary, "10.0.0.7 asked for c2.example (answer: NXDOMAIN), listed as c2.example on threat feed c2-feed.",
        );
        assert_eq!(a.evidence["resolved"], false);
        assert_eq!(a.evidence["blocked"], false);
    }

    #[test]
    fn reloaded_feeds_apply_to_names_seen_before() {
        // the engine caches per-name facts (including "no feed lists this name"): a reload
        // must drop them, or a name seen before the reload would never match
        let mut e = crate::engine::Engine::new(cfg());
        let evs = parse(
            "
            +0 10.0.0.5 www.late.example A NOERROR 203.0.113.9
            +5s 10.0.0.5 www.late.example A NOERROR 203.0.113.9
            ",
        );
        e.observe(&evs[0]);
        assert!(e.alerts().is_empty());
        let mut s = IntelSet::new();
        s.add_feed("fresh", "late.example\n", Format::Auto, None);
        e.set_intel(std::sync::Arc::new(s));
        e.observe(&evs[1]);
        assert_alerts(
            &e,
            Some("threat_intel"),
            "threat_intel critical 10.0.0.5 late.example x1",
        );
    }

    #[test]
    fn a_feed_category_and_severity_shape_its_alerts() {
        let mut cfg = cfg();
        let mut s = IntelSet::new();
        let spec = crate::intel::FeedSpec {
            category: Some("phishing".into()),
            severity: Some(crate::alert::Severity::Medium),
            ..Default::default()
        };
        s.add_feed_with("phish", "login-bank.example\n", &spec);
        cfg.intel = std::sync::Arc::new(s);
        let e = run(cfg, "+0 10.0.0.7 login-bank.example A NOERROR 203.0.113.9");
        let a = &e.alerts()[0];
        assert_eq!(a.severity, crate::alert::Severity::Medium);
        assert_eq!(a.evidence["category"], "phishing");
        assert!(
            a.summary.contains("(phishing) on threat feed phish"),
            "{}",
            a.summary
        );
    }
}
