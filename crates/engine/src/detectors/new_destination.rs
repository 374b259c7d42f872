//! **new_destination**: a device resolves a registered domain (eTLD+1) or an internal host name
//! that is not in its baseline.
//!
//! Why: most compromises make a device talk somewhere it never did (a C2 domain, a staging
//! server, a new internal host during lateral movement). On servers and databases, which talk
//! to a handful of places, novelty alone is a strong signal; on a busy workstation it is noise.
//!
//! Score (0..70 alone; other signals on the same destination add up in the alert):
//! `10 + 30·stability` (stability: 1 for a device that rarely finds anything new, 0 for one
//! with 40+ new destinations a day), plus org age — never seen by the organisation
//! `+20·(0.1+0.9·stability)`, first seen ≤ 7 days ago `+8`, ≥ 30 days ago `−15` — plus
//! prevalence (RITA's modifiers, with 10+ devices: ≤ 2 % of devices `+10·stability`, ≥ 50 %
//! `−15`), group scope (another device of its group already uses it `−15`), adoption (3+
//! devices already use it `−10`), `+15` in a tight group (servers, databases) and `+5` for an
//! internal name (east-west). A busy workstation's new destination is therefore info; a
//! server's never-seen destination is high. Rolled-up alerts are damped by their spread (see
//! `alert.rs`). Repeats of a destination that is still novel
//! update the same alert; it becomes normal after the promotion rule in `baseline.rs`.
//!
//! A random-looking name (DGA probability ≥ 0.5) resolved while the device's DGA alert is open
//! raises nothing here: it belongs to that episode.
//!
//! Known false positives: software updates and new SaaS rollouts (many devices at once: they
//! roll up into one alert and the prevalence damps it), CDN hostname churn (only registered
//! domains count, not host names), devices just past learning that had a quiet week.

use super::{Ctx, Detector};
use crate::alert::{Finding, Kind};
use crate::enrich::Enriched;
use dnsight_model::Ts;
use serde_json::json;

#[derive(Default)]
pub struct NewDestination;

impl Detector for NewDestination {
    fn name(&self) -> &'static str {
        "new_destination"
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if ev.learning
            || !ev.noerror
            || !(ev.resolved() || ev.internal)
            || ev.reverse_addr.is_some()
            || ev.dest == "in-addr.arpa"
            || ev.dest == "ip6.arpa"
        {
            return;
        }
        let entry = ev.entry.as_ref();
        if entry.is_some_and(|e| e.is_known()) {
            return;
        }
        if entry.is_some() {
            if let Some(r) = ctx.repeat(Kind::NewDestination, ev, ev.dest) {
                out.push(r);
                return;
            }
        }
        let od = ctx.base.org(ev.dest_id);
        let s = ctx.dev.stability();
        let mut score = 10.0 + 30.0 * s;
        let mut age_days = None;
        match od {
            None => score += 20.0 * (0.1 + 0.9 * s),
            Some(o) => {
                let age = f64::from(ev.now.saturating_sub(o.first)) / 86_400.0;
                age_days = Some(age);
                if age <= 7.0 {
                    score += 8.0;
                } else if age >= 30.0 {
                    score -= 15.0;
                }
            }
        }
        let devices = od.map_or(0, |o| o.devices);
        let prevalence = ev.dest_id.map_or(0.0, |id| ctx.base.prevalence(id));
        if ctx.base.org_devices >= 10 {
            if prevalence <= 0.02 {
                score += 10.0 * s;
            } else if prevalence >= 0.5 {
                score -= 15.0;
            }
        } else if prevalence >= 0.5 && devices >= 2 {
            score -= 10.0;
        }
        let group_knows = match (&ev.group, ev.dest_id) {
            (Some(g), Some(id)) => ctx.base.group_knows(g, id),
            _ => false,
        };
        if group_knows {
            score -= 15.0;
        }
        if devices >= 3 {
            score -= 10.0; // several devices already adopted it: a rollout more than an intrusion
        }
        if ev.tight {
            score += 15.0;
        }
        if ev.internal {
            score += 5.0;
        }
        let score = score.clamp(5.0, 70.0);
        // one incident per episode: a random-looking name (DGA probability ≥ 0.5) resolved
        // while the device's DGA alert is open belongs to that episode, not a new destination
        if ctx.book.is_open(Kind::Dga, ev.dev, "") && super::dga::name_score(&ev.ev.qname) >= 0.5 {
            return;
        }
        if let Some(j) = ctx.join(Kind::NewDestination, ev, ev.dest, score) {
            out.push(j);
            return;
        }
        let who = match &ctx.dev.name {
            Some(n) => format!("{} ({n})", ev.ev.client),
            None => ev.ev.client.to_string(),
        };
        let org = match od {
            None => "never seen in the organisation before".to_string(),
            Some(_) if devices == 0 => {
                "seen in the organisation before but in no device's baseline".to_string()
            }
            Some(_) => format!("{devices} other device(s) use it"),
        };
        let what = if ev.internal {
            "internal host"
        } else {
            "destination"
        };
        out.push(Finding {
            kind: Kind::NewDestination,
            dev: ev.dev,
            destination: ev.dest.into(),
            score,
            summary: format!(
                "{who} resolved new {what} {} for the first time ({org}).",
                ev.dest
            ),
            evidence: json!({
                "qname": ev.ev.qname.as_str(),
                "device_destinations": ctx.dev.dests.len(),
                "device_stability": (s * 100.0).round() / 100.0,
                "device_first_seen": Ts::from_secs(i64::from(ctx.dev.first_seen)),
                "org_devices_using": devices,
                "prevalence": (prevalence * 1000.0).round() / 1000.0,
                "org_first_seen": od.map(|o| Ts::from_secs(i64::from(o.first))),
                "org_age_days": age_days.map(|a| (a * 10.0).round() / 10.0),
                "group_knows": group_knows,
                "internal": ev.internal,
                "tight_group": ev.tight,
            }),
            sample: Some(ev.sample()),
            repeat: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    const LEARN: &str = "
        # day 1: learning. The server talks to two places, the workstation to many.
        +0 10.0.1.20 mirror.corp.example A NOERROR 10.0.5.5
        +1m x5 10.0.1.20 api.stripe.com A NOERROR 54.187.174.169
        +1m 10.0.0.5 www.example.com A NOERROR 93.184.216.34
        +1m 10.0.0.5 news.example.org A NOERROR 93.184.216.35
        +1m 10.0.0.5 api.stripe.com A NOERROR 54.187.174.169
        +1m 10.0.0.5 shop.example.net A NOERROR 93.184.216.36
        +1m x40 10.0.0.5 site{i}.example A NOERROR 93.184.216.40   # a busy browser
        +1d 10.0.1.20 mirror.corp.example A NOERROR 10.0.5.5
    ";

    fn cfg_story() -> crate::config::EngineConfig {
        let mut c = cfg();
        c.internal_suffixes.push("corp.example".into());
        c.inventory
            .add_host("10.0.1.20".parse().unwrap(), Some("web1"), Some("servers"));
        c
    }

    #[test]
    fn a_server_reaching_somewhere_new_is_high_a_workstation_much_lower() {
        let e = run(
            cfg_story(),
            &format!(
                "{LEARN}
                +1m 10.0.1.20 api.stripe.com A NOERROR 54.187.174.169     # known: nothing
                +1m 10.0.1.20 x.c2-server.example A NOERROR 203.0.113.5  # never seen by anyone
                +1m 10.0.1.20 y.c2-server.example A NOERROR 203.0.113.5  # same alert, count 2
                +1m 10.0.0.5 news.example.org A NOERROR 93.184.216.35     # known: nothing
                +1m 10.0.0.5 api.stripe.com A NOERROR 54.187.174.169      # known
                +1m 10.0.0.5 new-saas.example A NOERROR 198.51.100.20     # new for the workstation
                +1m 10.0.0.5 foo.example A NXDOMAIN             # does not resolve: not a destination
                "
            ),
        );
        assert_alerts(
            &e,
            Some("new_destination"),
            "new_destination high 10.0.1.20 c2-server.example x2
             new_destination info 10.0.0.5 new-saas.example x1",
        );
    }

    #[test]
    fn benign_novelty_is_learned_after_two_days_but_suspect_destinations_never() {
        let mut c = cfg_story();
        let mut s = crate::intel::IntelSet::new();
        s.add_feed("feed", "evil.example\n", crate::intel::Format::Plain, None);
        c.intel = std::sync::Arc::new(s);
        let e = run(
            c,
            &format!(
                "{LEARN}
                +1h 10.0.1.20 updates.vendor.example A NOERROR 198.51.100.1   # new
                +1h 10.0.1.20 evil.example A NOERROR 198.51.100.2             # new and on a feed
                +1d 10.0.1.20 updates.vendor.example A NOERROR 198.51.100.1   # day 2: promoted now
                +0 10.0.1.20 evil.example A NOERROR 198.51.100.2               # day 2: suspect stays
                +1h 10.0.1.20 updates.vendor.example A NOERROR 198.51.100.1   # known: no update
                +0 10.0.1.20 evil.example A NOERROR 198.51.100.2               # still updates its alert
                "
            ),
        );
        // the intel hit on the same (device, destination) lifts the novelty alert to critical
        assert_alerts(
            &e,
            Some("new_destination"),
            "new_destination critical 10.0.1.20 evil.example x3
             new_destination high 10.0.1.20 vendor.example x2",
        );
    }

    #[test]
    fn a_group_peer_already_using_it_lowers_the_score_and_many_devices_roll_up() {
        let mut c = cfg();
        for i in 1..=4 {
            c.inventory
                .add_host(format!("10.0.2.{i}").parse().unwrap(), None, Some("ws"));
        }
        let e = run(
            c,
            "
            +0 10.0.2.1 www.example.com A NOERROR 93.184.216.34
            +0 10.0.2.2 www.example.com A NOERROR 93.184.216.34
            +0 10.0.2.3 www.example.com A NOERROR 93.184.216.34
            +0 10.0.2.4 www.example.com A NOERROR 93.184.216.34
            +1d 10.0.2.1 teams.newsaas.example A NOERROR 198.51.100.9
            +1m 10.0.2.2 teams.newsaas.example A NOERROR 198.51.100.9
            +1m 10.0.2.3 teams.newsaas.example A NOERROR 198.51.100.9
            ",
        );
        assert_alerts(
            &e,
            Some("new_destination"),
            "new_destination low 10.0.2.1+2 newsaas.example x3",
        );
        let a = &e.alerts()[0];
        assert_eq!(a.devices, vec!["10.0.2.1", "10.0.2.2", "10.0.2.3"]);
        assert_eq!(a.group.as_deref(), Some("ws"));
    }
}
