//! **reconnaissance**: a device maps the internal network through DNS — bursts of PTR
//! lookups over internal ranges (reverse sweeps, `nmap -sL`, BloodHound-style discovery) or of
//! internal host names nobody in the organisation ever resolved (brute-forcing east-west
//! names).
//!
//! Rule: per device, distinct items in a sliding 10–20 minute window (two tumbling 10-minute
//! buckets): `recon_ptr_burst` (32) distinct internal addresses looked up by PTR, or
//! `recon_internal_burst` (40) distinct internal names the organisation has never had in a
//! baseline (the latter only after the device's learning period, when "never seen" means
//! something). PTR sweeps need no baseline. Every further item in the window updates the alert.
//!
//! **Routine.** A burst the device did on at least two of its learning days within an hour of
//! the same local time (a scanner's nightly sweep, an inventory job) is its schedule: the same
//! burst at that time later is normal. The same burst from a device
//! that never did it, or at another time, scores as usual. Only learning teaches the schedule.
//! After learning a burst on the schedule raises nothing (it is the baseline); during learning,
//! from its second day on, it is info.
//!
//! Known false positives: monitoring and inventory systems (they sweep on a schedule: learned
//! when they sweep during learning, else acknowledge them), mail and log servers resolving many
//! client addresses, IPAM tools.

use super::{Ctx, Detector, Persist};
use crate::alert::{DevId, Finding, Kind};
use crate::codec::{Put, Rd};
use crate::config::Tuning;
use crate::enrich::Enriched;
use serde_json::json;
use std::collections::{HashMap, HashSet};

const WINDOW: u32 = 600;

#[derive(Default)]
struct Win {
    bucket: u32,
    ptr: HashSet<u64, foldhash::fast::FixedState>,
    ptr_prev: u32,
    names: HashSet<u64, foldhash::fast::FixedState>,
    names_prev: u32,
    lo: Option<std::net::IpAddr>,
    hi: Option<std::net::IpAddr>,
    last: u32,
}

impl Persist for Win {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.bucket);
        super::put_hashes(&self.ptr, out);
        out.put_u32(self.ptr_prev);
        super::put_hashes(&self.names, out);
        out.put_u32(self.names_prev);
        for a in [self.lo, self.hi] {
            match a {
                Some(ip) => {
                    out.put_u8(1);
                    out.put_ip(ip);
                }
                None => out.put_u8(0),
            }
        }
        out.put_u32(self.last);
    }
    fn get(r: &mut Rd<'_>) -> Option<Win> {
        let addr = |r: &mut Rd<'_>| -> Option<Option<std::net::IpAddr>> {
            match r.u8()? {
                0 => Some(None),
                1 => Some(Some(r.ip()?)),
                _ => None,
            }
        };
        Some(Win {
            bucket: r.u32()?,
            ptr: super::get_hashes(r)?,
            ptr_prev: r.u32()?,
            names: super::get_hashes(r)?,
            names_prev: r.u32()?,
            lo: addr(r)?,
            hi: addr(r)?,
            last: r.u32()?,
        })
    }
}

pub struct Reconnaissance {
    devs: HashMap<DevId, Win, foldhash::fast::FixedState>,
    /// Learned schedules: (device, 0 = PTR sweeps, 1 = internal names).
    routine: HashMap<(DevId, u64), super::Routine, foldhash::fast::FixedState>,
    ptr_burst: u32,
    name_burst: u32,
    last_sweep: u32,
}

impl Reconnaissance {
    pub fn new(t: &Tuning) -> Reconnaissance {
        Reconnaissance {
            devs: HashMap::default(),
            routine: HashMap::default(),
            ptr_burst: t.recon_ptr_burst.max(2),
            name_burst: t.recon_internal_burst.max(2),
            last_sweep: 0,
        }
    }
}

impl Detector for Reconnaissance {
    fn name(&self) -> &'static str {
        "reconnaissance"
    }
    fn state_len(&self) -> usize {
        self.devs.len()
    }
    fn save_state(&self, ip: &dyn Fn(DevId) -> std::net::IpAddr, out: &mut Vec<u8>) {
        super::save_map(&self.devs, ip, out);
        super::save_map(&self.routine, ip, out);
    }
    fn load_state(
        &mut self,
        id: &dyn Fn(std::net::IpAddr) -> Option<DevId>,
        r: &mut Rd<'_>,
    ) -> Option<()> {
        super::load_map(&mut self.devs, id, r)?;
        // states written before schedules were learned end here
        if !r.is_empty() {
            super::load_map(&mut self.routine, id, r)?;
        }
        Some(())
    }
    fn tick(&mut self, now: u32) {
        if now.saturating_sub(self.last_sweep) >= 3600 {
            self.last_sweep = now;
            self.devs
                .retain(|_, w| now.saturating_sub(w.last) < 2 * WINDOW);
        }
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if !ev.internal {
            return;
        }
        let ptr = ev.ev.qtype == 12 && ev.reverse_addr.is_some();
        let new_name = !ptr
            && ev.reverse_addr.is_none()
            && !ev.learning
            && ctx.base.org(ev.dest_id).is_none_or(|o| o.devices == 0);
        if !ptr && !new_name {
            return;
        }
        let w = self.devs.entry(ev.dev).or_default();
        // a late event (out of order) counts in the newest window, never resets it
        let bucket = (ev.now / WINDOW).max(w.bucket);
        w.last = w.last.max(ev.now);
        if w.bucket != bucket {
            let adjacent = bucket == w.bucket + 1;
            w.ptr_prev = if adjacent { w.ptr.len() as u32 } else { 0 };
            w.names_prev = if adjacent { w.names.len() as u32 } else { 0 };
            w.ptr.clear();
            w.names.clear();
            w.bucket = bucket;
            if !adjacent {
                w.lo = None;
                w.hi = None;
            }
        }
        let h = ev.hashes.qname;
        let (n, thr, what) = if ptr {
            if w.ptr.len() >= 8192 || !w.ptr.insert(h) {
                return;
            }
            let a = ev.reverse_addr;
            if w.lo.is_none() || a < w.lo {
                w.lo = a;
            }
            if w.hi.is_none() || a > w.hi {
                w.hi = a;
            }
            (w.ptr.len() as u32 + w.ptr_prev, self.ptr_burst, "ptr_sweep")
        } else {
            if w.names.len() >= 8192 || !w.names.insert(h) {
                return;
            }
            (
                w.names.len() as u32 + w.names_prev,
                self.name_burst,
                "internal_names",
            )
        };
        if n < thr {
            return;
        }
        let rkey = (ev.dev, u64::from(!ptr));
        if ev.learning {
            self.routine.entry(rkey).or_default().learn(ev.hour, ev.day);
        }
        let routine_days = self.routine.get(&rkey).map_or(0, |r| r.days_near(ev.hour));
        let routine = routine_days >= super::Routine::DAYS;
        if routine && !ev.learning {
            // its learned schedule is its baseline: no finding (and no repeat that would keep
            // an alert from its learning days alive)
            return;
        }
        // a full finding (re-scored) every 8 items over the threshold, cheap repeats between
        if !(n - thr).is_multiple_of(8) {
            if let Some(r) = ctx.repeat(Kind::Reconnaissance, ev, "") {
                out.push(r);
                return;
            }
        }
        let mut score = 50.0 + f64::from(n - thr).min(30.0);
        if ev.tight {
            score += 10.0;
        }
        if routine {
            score = 15.0; // during learning, from its second night on: info
        }
        let mut summary = if ptr {
            format!(
                "{} looked up {n} internal addresses by PTR within minutes ({} .. {}): a reverse-DNS sweep of the network.",
                ev.ev.client,
                w.lo.map(|a| a.to_string()).unwrap_or_default(),
                w.hi.map(|a| a.to_string()).unwrap_or_default()
            )
        } else {
            format!("{} tried {n} internal host names that no device ever resolved, within minutes: east-west name discovery.", ev.ev.client)
        };
        if routine {
            summary.push_str(&format!(
                " It did the same on {routine_days} of its learning days at this time: its schedule."
            ));
        }
        out.push(Finding {
            kind: Kind::Reconnaissance,
            dev: ev.dev,
            destination: "".into(),
            score,
            summary,
            evidence: json!({
                "pattern": what,
                "distinct_in_window": n,
                "threshold": thr,
                "window_s": 2 * WINDOW,
                "lowest_address": if ptr { w.lo.map(|a| a.to_string()) } else { None },
                "highest_address": if ptr { w.hi.map(|a| a.to_string()) } else { None },
                "routine": routine,
                "learning_days_at_this_hour": routine_days,
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
    fn a_ptr_sweep_over_an_internal_subnet() {
        let e = run(
            cfg(),
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            # mail server style: a few PTRs of external clients: nothing
            +1s x5 10.0.0.6 {i}.113.0.203.in-addr.arpa PTR NOERROR ptr:mail.example.net
            # the sweep: 10.0.3.1 .. 10.0.3.60
            +200ms x60 10.0.0.5 {i}.3.0.10.in-addr.arpa PTR NXDOMAIN
            ",
        );
        let got = lines(&e, Some("reconnaissance"));
        assert!(
            got.starts_with("reconnaissance high 10.0.0.5 - x29"),
            "{got}"
        );
        let a = &e.alerts()[0];
        assert!(a.summary.contains("reverse-DNS sweep"), "{}", a.summary);
    }

    #[test]
    fn guessing_internal_names_after_learning() {
        let mut c = cfg();
        c.internal_suffixes.push("corp.example".into());
        let e = run(
            c,
            "
            +0 10.0.0.5 fileserver.corp.example A NOERROR 10.0.5.5
            +0 10.0.0.7 fileserver.corp.example A NOERROR 10.0.5.5
            +1d 10.0.0.5 fileserver.corp.example A NOERROR 10.0.5.5     # known: fine
            +1s x45 10.0.0.5 {r}.corp.example A NXDOMAIN                # brute force
            +1s x10 10.0.0.7 {r}.corp.example A NXDOMAIN                # a few typos: fine
            ",
        );
        let got = lines(&e, Some("reconnaissance"));
        assert_eq!(got, "reconnaissance medium 10.0.0.5 - x6\n");
    }

    #[test]
    fn a_nightly_sweep_seen_during_learning_is_routine_a_new_one_is_not() {
        // learning lasts 3 days here; the scanner sweeps every night at 02:00 from the start,
        // another workstation sweeps once at 02:00 after learning
        let mut c = cfg();
        c.learn_days = 3;
        let mut fx = String::from("@2026-11-02T00:00:00Z\n+0 10.0.0.9 www.example.com A NOERROR 93.184.216.34\n+0 10.0.0.5 www.example.com A NOERROR 93.184.216.34\n");
        let sweep = |fx: &mut String, at: &str, dev: &str| {
            fx.push_str(&format!("@{at}\n"));
            for h in 1..=60 {
                fx.push_str(&format!(
                    "+300ms {dev} {h}.3.0.10.in-addr.arpa PTR NXDOMAIN\n"
                ));
            }
        };
        for day in 2..=6 {
            sweep(&mut fx, &format!("2026-11-0{day}T02:00:00Z"), "10.0.0.5");
        }
        sweep(&mut fx, "2026-11-06T02:30:00Z", "10.0.0.9");
        let e = run(c, &fx);
        let got = lines(&e, Some("reconnaissance"));
        // the scanner's sweeps after learning are info; the newcomer is high
        assert!(got.contains("reconnaissance high 10.0.0.9 -"), "{got}");
        let scanner: Vec<_> = e
            .all_alerts()
            .into_iter()
            .filter(|a| a.kind.as_str() == "reconnaissance" && a.device == "10.0.0.5")
            .collect();
        assert!(!scanner.is_empty());
        for a in &scanner {
            // nothing after learning keeps the learning-time alert going
            assert!(
                a.last_seen.secs() < super::super::testkit::START + 3 * 86_400,
                "{a:?}"
            );
        }
        // not in the inbox
        assert!(!e.alerts().iter().any(|a| a.device == "10.0.0.5"
            && a.last_seen.secs() > super::super::testkit::START + 3 * 86_400));
    }
}
