//! **new_device**: a client address never seen before starts querying.
//!
//! Why: an unknown machine on the network (a rogue device, an attacker's laptop, a VM nobody
//! registered) is worth a look, and its first queries say what it is. Devices that appear while
//! the organisation itself is still learning (the first `learn_days`, or before
//! `learn_until`) are part of the baseline, not alerts. A device named in the inventory but not
//! seen before scores low (expected), an unknown one medium; in a tight group (servers,
//! databases) higher.
//!
//! Known false positives: DHCP churn (a laptop getting a new address each day looks new unless
//! leases or an inventory name it; the alert then says the name), new VPN pools, guest Wi-Fi.
//! Mitigation: feed DHCP leases, or put guest ranges in a group and disable the detector there.

use super::{Ctx, Detector};
use crate::alert::{Finding, Kind};
use crate::enrich::Enriched;
use serde_json::json;

#[derive(Default)]
pub struct NewDevice;

/// Is the organisation (not one device) still in its initial learning period?
pub fn org_learning(ctx: &Ctx<'_>, now: u32) -> bool {
    match ctx.cfg.learn_until {
        Some(u) => i64::from(now) < u.secs(),
        None => {
            now < ctx
                .base
                .org_first
                .saturating_add(ctx.cfg.learn_days.saturating_mul(86_400))
        }
    }
}

impl Detector for NewDevice {
    fn name(&self) -> &'static str {
        "new_device"
    }
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
        if !ev.device_new || org_learning(ctx, ev.now) {
            return;
        }
        let named = ctx.dev.name.is_some();
        let mut score: f64 = if named { 20.0 } else { 45.0 };
        if ev.tight {
            score += 15.0;
        }
        let who = match &ctx.dev.name {
            Some(n) => format!("{} ({n}, in the inventory)", ctx.dev.ip),
            None => format!("{} (not in the inventory)", ctx.dev.ip),
        };
        out.push(Finding {
            kind: Kind::NewDevice,
            dev: ev.dev,
            destination: "".into(),
            score,
            summary: format!(
                "New device {who} appeared; its first query was {}.",
                ev.ev.qname.as_str()
            ),
            evidence: json!({
                "first_query": ev.ev.qname.as_str(),
                "in_inventory": named,
                "group": ev.group.as_deref(),
                "known_devices": ctx.base.org_devices,
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
    fn a_stranger_after_the_learning_day_is_reported_once() {
        let mut cfg = cfg();
        cfg.inventory
            .add_host("10.0.0.7".parse().unwrap(), Some("printer"), Some("office"));
        let e = run(
            cfg,
            "
            +0 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +2h 10.0.0.6 www.example.com A NOERROR 93.184.216.34   # still learning: no alert
            +1d 10.0.0.5 www.example.com A NOERROR 93.184.216.34
            +1m 10.0.0.99 evil.example A NOERROR 198.51.100.1      # unknown: medium
            +1m 10.0.0.99 evil.example A NOERROR 198.51.100.1      # same device: no second alert
            +1m 10.0.0.7 www.example.com A NOERROR 93.184.216.34   # in the inventory: low
            ",
        );
        assert_alerts(
            &e,
            Some("new_device"),
            "new_device medium 10.0.0.99 - x1
             new_device low 10.0.0.7 - x1",
        );
        let a = e
            .alerts()
            .into_iter()
            .find(|a| a.device == "10.0.0.7")
            .unwrap();
        assert_eq!(a.device_name.as_deref(), Some("printer"));
        assert!(a.summary.contains("in the inventory"), "{}", a.summary);
    }
}
