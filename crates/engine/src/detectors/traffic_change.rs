//! **traffic_change**: a device's query volume, number of distinct destinations or NXDOMAIN
//! share leaves its learned hour-of-week profile, or a stable (device, destination) pair's
//! daily rate jumps.
//!
//! Why: a compromised host starts scanning, spamming, mining or exfiltrating; a server that
//! always made 40 queries an hour suddenly makes 4,000. Profiles follow the site's time zone
//! (`timezone`), so Monday 09:00 is compared with earlier Mondays 09:00; until a slot has two
//! samples, the device's all-hours profile stands in (more lenient: it includes day and
//! night).
//!
//! Rule: value > mean + z·sd, with sd floored (volume: max(5, 25 % of the mean); distinct:
//! max(3, 25 %); NXDOMAIN share: 0.05) and z = `traffic_z` (6) or `traffic_z_tight` (3.5) for
//! tight groups (servers, databases), plus absolute minimums (volume 50 / tight 20; distinct
//! 25 / 10; NXDOMAIN share needs 20 NXDOMAINs). Fires at most once per metric per hour, while
//! the hour is still running (no waiting for it to close), and again each time the value
//! doubles within the hour (so the alert's score follows the size of the change). Needs 24 profiled hours and the
//! device out of learning. Pair rate: a destination known for ≥ 3 days whose count today
//! reaches max(10×, +200) (tight: max(5×, +100)) of its average daily count.
//!
//! Repeats of a name that already got NXDOMAIN this hour are left out of volume and NXDOMAIN
//! share, in the profile and in the current hour: a device stuck re-asking what does not exist
//! is a `misconfiguration`, not a traffic change.
//!
//! Known false positives: patch days, backups, new software, holidays followed by catch-up.
//! Score is moderate; tight groups score higher.

use super::{Ctx, Detector, Persist};
use crate::alert::{DevId, Finding, Kind};
use crate::baseline::{how_of, Stat};
use crate::codec::{Put, Rd};
use crate::enrich::Enriched;
use serde_json::json;
use std::collections::HashMap;

#[derive(Default)]
pub struct TrafficChange {
    /// Per device: the hour and, per metric, the value at which it fires next (0 = not yet).
    fired: HashMap<DevId, (u32, [f64; 3]), foldhash::fast::FixedState>,
}

/// A device's (hour, next firing value per metric).
impl Persist for (u32, [f64; 3]) {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.0);
        for v in self.1 {
            out.put_f64(v);
        }
    }
    fn get(r: &mut Rd<'_>) -> Option<Self> {
        Some((r.u32()?, [r.f64()?, r.f64()?, r.f64()?]))
    }
}

/// (name, bit, value, (expected mean, sd), sd floor, absolute minimum)
type Metric = (&'static str, u8, f64, (f64, f64), f64, f64);

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Expected mean and spread: the hour-of-week slot once it has two samples; with one, the
/// larger of the slot and the all-hours mean and the all-hours spread; else all hours.
fn pick(slot: &Stat, all: &Stat) -> (f64, f64) {
    if slot.n >= 2 {
        (f64::from(slot.mean), f64::from(slot.sd()))
    } else if slot.n == 1 {
        (f64::from(slot.mean.max(all.mean)), f64::from(all.sd()))
    } else {
        (f64::from(all.mean), f64::from(all.sd()))
    }
}

impl Detector for TrafficChange {
    fn name(&self) -> &'static str {
        "traffic_change"
    }
    fn state_len(&self) -> usize {
        self.fired.len()
    }
    super::persist_windows!(fired);
    fn tick(&mut self, now: u32) {
        if now % 3600 < 60 {
            let h = now / 3600;
            self.fired.retain(|_, (hour, _)| *hour + 2 >= h);
        }
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if ev.learning {
            return;
        }
        self.pair_rate(ev, out);
        let Some(p) = &ctx.dev.profile else { return };
        if p.all.volume.n < 24 || ctx.dev.cur.hour != ev.hour {
            return;
        }
        let how = how_of(ev.hour);
        let slot = &p.slots[how];
        let z = if ev.tight {
            ctx.cfg.tuning.traffic_z_tight
        } else {
            ctx.cfg.tuning.traffic_z
        };
        let cur = &ctx.dev.cur;
        // repeats of names that do not exist are a misconfiguration (its own detector), not
        // a change of traffic
        let (volume, nx) = (cur.volume_new(), cur.nx_new());
        // cheap exits: nothing can fire below the smallest absolute minimum
        if volume < if ev.tight { 10 } else { 25 } {
            return;
        }
        let distinct = f64::from(cur.distinct());
        let share = if volume > 0 {
            f64::from(nx) / f64::from(volume)
        } else {
            0.0
        };
        let metrics: [Metric; 3] = [
            (
                "query volume",
                1,
                f64::from(volume),
                pick(&slot.volume, &p.all.volume),
                5.0,
                if ev.tight { 20.0 } else { 50.0 },
            ),
            (
                "distinct destinations",
                2,
                distinct,
                pick(&slot.distinct, &p.all.distinct),
                3.0,
                if ev.tight { 10.0 } else { 25.0 },
            ),
            (
                "NXDOMAIN share",
                4,
                share,
                pick(&slot.nx_share, &p.all.nx_share),
                0.05,
                if nx >= 20 { 0.2 } else { f64::INFINITY },
            ),
        ];
        for (i, (name, bit, value, (mean, sd), floor, min_abs)) in metrics.into_iter().enumerate() {
            if value < min_abs {
                continue;
            }
            let sd = sd.max(floor).max(if bit == 4 { 0.0 } else { 0.25 * mean });
            let thr = mean + z * sd;
            if value <= thr {
                continue;
            }
            let entry = self.fired.entry(ev.dev).or_insert((ev.hour, [0.0; 3]));
            if entry.0 != ev.hour {
                *entry = (ev.hour, [0.0; 3]);
            }
            if value < entry.1[i] {
                continue;
            }
            // fire on crossing, then again each time the value doubles (the score grows)
            entry.1[i] = if bit == 4 { f64::INFINITY } else { 2.0 * value };
            let zv = (value - mean) / sd;
            let mut score = 25.0 + (5.0 * (zv - z)).clamp(0.0, 35.0);
            if ev.tight {
                score += 15.0;
            }
            let when = format!("{} {:02}:00", DAYS[how / 24], how % 24);
            let fmt = |v: f64| {
                if bit == 4 {
                    format!("{:.0}%", v * 100.0)
                } else {
                    format!("{v:.0}")
                }
            };
            out.push(Finding {
                kind: Kind::TrafficChange,
                dev: ev.dev,
                destination: "".into(),
                score,
                summary: format!(
                    "{} {name} in the hour of {when} is {} where its profile for that hour of the week is about {} ± {}.",
                    ev.ev.client,
                    fmt(value),
                    fmt(mean),
                    fmt(sd)
                ),
                evidence: json!({
                    "metric": name,
                    "value": (value * 1000.0).round() / 1000.0,
                    "expected": (mean * 1000.0).round() / 1000.0,
                    "sd": (sd * 1000.0).round() / 1000.0,
                    "z": (zv * 10.0).round() / 10.0,
                    "z_threshold": z,
                    "hour_of_week": when,
                    "profile": if slot.volume.n >= 2 { "hour_of_week" } else { "all_hours" },
                    "tight_group": ev.tight,
                }),
                sample: Some(ev.sample()),
                repeat: false,
            });
        }
    }
}

impl TrafficChange {
    fn pair_rate(&mut self, ev: &Enriched<'_>, out: &mut Vec<Finding>) {
        let Some(e) = ev.entry else { return };
        if !e.is_known() || e.days < 3 {
            return;
        }
        let avg = f64::from(e.count) / f64::from(e.days);
        let today = if e.last_day == ev.day { e.today + 1 } else { 1 };
        let thr = if ev.tight {
            (5.0 * avg).max(avg + 100.0)
        } else {
            (10.0 * avg).max(avg + 200.0)
        };
        if f64::from(today) != thr.ceil() {
            return; // fires once, when today's count crosses the threshold
        }
        let mut score = 30.0;
        if ev.tight {
            score += 15.0;
        }
        out.push(Finding {
            kind: Kind::TrafficChange,
            dev: ev.dev,
            destination: ev.dest.into(),
            score,
            summary: format!("{} queried {} {today} times today; over {} days it averaged {avg:.0} a day.", ev.ev.client, ev.dest, e.days),
            evidence: json!({ "metric": "pair daily rate", "today": today, "average_per_day": (avg * 10.0).round() / 10.0, "days_seen": e.days, "first_seen": dnsight_model::Ts::from_secs(i64::from(e.first)) }),
            sample: Some(ev.sample()),
            repeat: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    /// Three days of a quiet server: ~10 queries an hour to 2 destinations.
    fn quiet_days() -> String {
        let mut s = String::new();
        for _ in 0..72 {
            s.push_str("+6m x10 10.0.1.20 api.partner.example A NOERROR 198.51.100.5\n");
        }
        s
    }

    #[test]
    fn a_quiet_server_suddenly_making_thousands_of_queries() {
        let mut c = cfg();
        c.inventory
            .add_host("10.0.1.20".parse().unwrap(), Some("web1"), Some("servers"));
        let e = run(
            c,
            &format!(
                "{}
                # day 4, 10:00: a burst of 300 queries to 120 different names within minutes
                +1s x300 10.0.1.20 host{{i}}.scan-target.example A NOERROR 203.0.113.1
                ",
                quiet_days()
            ),
        );
        let got = lines(&e, Some("traffic_change"));
        // fired when the hour crossed the threshold and again at each doubling
        assert!(
            got.starts_with("traffic_change high 10.0.1.20 - x"),
            "{got}"
        );
        assert_eq!(got.lines().count(), 1, "{got}");
        let a: Vec<_> = e
            .alerts()
            .into_iter()
            .filter(|a| a.kind.as_str() == "traffic_change")
            .collect();
        assert!(
            a[0].evidence["metric"] == "query volume",
            "{:?}",
            a[0].evidence
        );
        assert!(a[0].summary.contains("profile for"), "{}", a[0].summary);
    }

    #[test]
    fn ordinary_hours_and_a_learning_device_stay_quiet() {
        let e = run(
            cfg(),
            &format!(
                "{}\n+6m x10 10.0.1.20 api.partner.example A NOERROR 198.51.100.5\n",
                quiet_days()
            ),
        );
        assert_alerts(&e, Some("traffic_change"), "");
    }

    #[test]
    fn a_stable_pair_jumping_tenfold() {
        let e = run(
            cfg(),
            "
            +0 x20 10.0.0.5 telemetry.vendor.example A NOERROR 198.51.100.9
            +1d x20 10.0.0.5 telemetry.vendor.example A NOERROR 198.51.100.9
            +1d x20 10.0.0.5 telemetry.vendor.example A NOERROR 198.51.100.9
            +1d x20 10.0.0.5 telemetry.vendor.example A NOERROR 198.51.100.9
            +1s x400 10.0.0.5 telemetry.vendor.example A NOERROR 198.51.100.9
            ",
        );
        let got = lines(&e, Some("traffic_change"));
        assert!(got.contains("10.0.0.5 vendor.example x1"), "{got}");
    }
}
