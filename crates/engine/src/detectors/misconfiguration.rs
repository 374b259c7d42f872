//! **misconfiguration**: a device stuck re-asking the same few names that do not exist — stale
//! service discovery (`_ldap._tcp` of a retired domain), a broken search list, a removed server
//! still configured, a sensor retrying a dead cloud endpoint. Worth fixing, not an attack: one
//! alert per device, low (medium when it goes on for hours), never DGA, tunneling or a traffic
//! change.
//!
//! Rule: in a device's running hour (site time zone), at least 60 NXDOMAIN answers for names
//! that already got one that hour (`HourAcc::nx_repeat`, kept by the engine for every device),
//! making up at least 80 % of its NXDOMAINs, from at most 16 distinct names. Fires once an hour
//! (the alert's count grows); the score grows with the number of hours it was seen (30, +2 an
//! hour, at most 45). The names that repeat are its evidence.
//!
//! The other detectors leave such repeats alone: traffic_change leaves them out of volume and
//! NXDOMAIN share, the DGA device stage counts distinct never-seen domains, tunneling counts
//! unique subdomains.

use super::{Ctx, Detector, Persist};
use crate::alert::{DevId, Finding, Kind};
use crate::codec::{Put, Rd};
use crate::enrich::Enriched;
use compact_str::CompactString;
use serde_json::json;
use std::collections::HashMap;

const MIN_REPEATS: u32 = 60;
const MAX_NAMES: usize = 16;

#[derive(Default)]
struct Track {
    hour: u32,
    /// Distinct NXDOMAIN names this hour (up to MAX_NAMES + 1) and their counts.
    names: Vec<(CompactString, u32)>,
    fired_hour: u32,
    hours: u32,
    last: u32,
}

impl Persist for Track {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.hour);
        out.put_u32(self.names.len() as u32);
        for (n, c) in &self.names {
            out.put_str(n);
            out.put_u32(*c);
        }
        out.put_u32(self.fired_hour);
        out.put_u32(self.hours);
        out.put_u32(self.last);
    }
    fn get(r: &mut Rd<'_>) -> Option<Track> {
        let hour = r.u32()?;
        let n = r.count(8)?;
        if n > MAX_NAMES + 1 {
            return None;
        }
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push((CompactString::from(r.str()?), r.u32()?));
        }
        Some(Track {
            hour,
            names,
            fired_hour: r.u32()?,
            hours: r.u32()?,
            last: r.u32()?,
        })
    }
}

#[derive(Default)]
pub struct Misconfiguration {
    devs: HashMap<DevId, Track, foldhash::fast::FixedState>,
    last_sweep: u32,
}

impl Detector for Misconfiguration {
    fn name(&self) -> &'static str {
        "misconfiguration"
    }
    fn state_len(&self) -> usize {
        self.devs.len()
    }
    super::persist_windows!(devs);
    fn tick(&mut self, now: u32) {
        if now.saturating_sub(self.last_sweep) >= 3600 {
            self.last_sweep = now;
            // a track remembers its hours for a day after its last NXDOMAIN
            self.devs.retain(|_, t| now.saturating_sub(t.last) < 86_400);
        }
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if !ev.nx {
            return;
        }
        let t = self.devs.entry(ev.dev).or_default();
        t.last = t.last.max(ev.now);
        if ev.hour > t.hour {
            t.hour = ev.hour;
            t.names.clear();
        }
        let q = ev.ev.qname.as_str();
        if let Some((_, c)) = t.names.iter_mut().find(|(n, _)| n == q) {
            *c += 1;
        } else if t.names.len() <= MAX_NAMES {
            t.names.push((q.into(), 1));
        }
        let cur = &ctx.dev.cur;
        if cur.hour != ev.hour
            || t.fired_hour == ev.hour
            || t.names.len() > MAX_NAMES
            || cur.nx_repeat < MIN_REPEATS
            || f64::from(cur.nx_repeat) < 0.8 * f64::from(cur.nx)
        {
            if t.fired_hour == ev.hour {
                if let Some(r) = ctx.repeat(Kind::Misconfiguration, ev, "") {
                    out.push(r);
                }
            }
            return;
        }
        t.fired_hour = ev.hour;
        t.hours += 1;
        let score = (30.0 + 2.0 * f64::from(t.hours - 1)).min(45.0);
        let mut names = t.names.clone();
        names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<_> = names
            .iter()
            .take(5)
            .map(|(n, c)| json!({ "name": n.as_str(), "nxdomain_this_hour": c }))
            .collect();
        out.push(Finding {
            kind: Kind::Misconfiguration,
            dev: ev.dev,
            destination: "".into(),
            score,
            summary: format!(
                "{} keeps asking for {} name{} that do not exist ({} NXDOMAIN answers this hour, {} of them repeats; e.g. {}): a misconfiguration (stale service discovery, a broken search list or a removed server still configured), not an attack.",
                ev.ev.client,
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                cur.nx,
                cur.nx_repeat,
                names[0].0
            ),
            evidence: json!({
                "nxdomain_this_hour": cur.nx,
                "repeats_this_hour": cur.nx_repeat,
                "distinct_names": names.len(),
                "names": top,
                "hours_seen": t.hours,
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
    fn a_device_re_asking_the_same_missing_names_is_one_low_misconfiguration() {
        // a server (tight profile) whose old file server and domain were retired: it asks for
        // them every few seconds, for hours, after learning
        let mut c = cfg();
        c.inventory
            .add_host("10.0.1.20".parse().unwrap(), Some("app1"), Some("servers"));
        let mut fx = String::new();
        for _ in 0..48 {
            fx.push_str("+30m x5 10.0.1.20 api.partner.example A NOERROR 198.51.100.5\n");
        }
        for _ in 0..600 {
            fx.push_str("+5s 10.0.1.20 fs-old.branch.example A NXDOMAIN\n");
            fx.push_str("+1s 10.0.1.20 _ldap._tcp.dc._msdcs.oldcorp.example SRV NXDOMAIN\n");
        }
        let e = run(c, &fx);
        let got = lines(&e, None);
        assert!(
            got.starts_with("misconfiguration low 10.0.1.20 - x")
                || got.starts_with("misconfiguration medium 10.0.1.20 - x"),
            "{got}"
        );
        for k in ["dga", "tunneling", "traffic_change"] {
            assert!(!got.contains(k), "{got}");
        }
        // the periodic retries are recorded as info beacons at most: the inbox holds one alert
        assert!(
            !got.contains("beaconing low") && !got.contains("beaconing medium"),
            "{got}"
        );
        assert_eq!(e.alerts().len(), 1, "{got}");
        let a = &e.alerts()[0];
        assert_eq!(a.evidence["distinct_names"], 2, "{}", a.evidence);
    }

    #[test]
    fn many_different_missing_names_are_not_a_misconfiguration() {
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1d 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +2s x200 10.0.0.5 {r}x{r}.com A NXDOMAIN
            ",
        );
        assert_alerts(&e, Some("misconfiguration"), "");
    }
}
