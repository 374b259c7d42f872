//! Story tests of the alert lifecycle: acknowledgements, status changes, reopening, the idle
//! and size bounds of the book, and the state holding only live alerts.

use crate::alert::Kind;
use crate::baseline::flag;
use crate::detectors::testkit::{cfg, parse};
use crate::engine::{Ack, Engine};
use crate::views::Scope;
use crate::{Alert, Severity, Status};
use std::net::IpAddr;

/// Day 1 (learning): three devices resolve www.example.com. Day 2: two of them resolve
/// evil.example (one rolled-up new_destination alert).
const STORY: &str = "
    +0 x2 10.0.0.5 www.example.com A NOERROR 93.184.216.34
    +1m x2 10.0.0.6 www.example.com A NOERROR 93.184.216.34
    +1m x2 10.0.0.7 www.example.com A NOERROR 93.184.216.34
    @2026-11-03T09:00:00Z
    +0 10.0.0.5 evil.example A NOERROR 198.51.100.7
    +1m 10.0.0.6 evil.example A NOERROR 198.51.100.7
";

fn feed(e: &mut Engine, fixture: &str) {
    for ev in parse(fixture) {
        e.observe(&ev);
    }
}

fn story() -> Engine {
    let mut e = Engine::new(cfg());
    feed(&mut e, STORY);
    e
}

fn drained(e: &mut Engine) -> Vec<Alert> {
    let mut v = Vec::new();
    e.drain_updates(&mut v);
    v
}

fn only(e: &Engine, kind: Kind) -> Alert {
    let v: Vec<Alert> = e.alerts().into_iter().filter(|a| a.kind == kind).collect();
    assert_eq!(v.len(), 1, "{v:#?}");
    v.into_iter().next().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ack(kind: Kind, dest: &str, scope: Scope) -> Ack {
    Ack {
        kind,
        destination: dest.into(),
        scope,
        until: None,
        detail: serde_json::Value::Null,
    }
}

fn entry_flags(e: &Engine, dev: &str, dest: &str) -> Option<u8> {
    let b = e.baselines();
    let d = &b.devices[*b.dev_index.get(&ip(dev))? as usize];
    d.dests.get(&b.dest_id(dest)?).map(|x| x.flags)
}

#[test]
fn a_device_joining_an_open_rollup_is_reported() {
    let mut e = Engine::new(cfg());
    feed(
        &mut e,
        &STORY.replace("+1m 10.0.0.6 evil.example", "+1m 10.0.0.5 evil.example"),
    );
    let first = drained(&mut e);
    let a = first
        .iter()
        .find(|a| a.kind == Kind::NewDestination)
        .unwrap();
    assert_eq!(a.device_count, 1);
    feed(
        &mut e,
        "@2026-11-03T10:00:00Z\n+0 10.0.0.7 evil.example A NOERROR 198.51.100.7",
    );
    let up = drained(&mut e);
    let b = up
        .iter()
        .find(|x| x.id == a.id)
        .expect("the roll-up is reported");
    assert_eq!((b.device_count, b.devices.len()), (2, 2), "{b:#?}");
    assert_eq!(b.devices, vec!["10.0.0.5", "10.0.0.7"]);
    assert_eq!(
        e.alerts().len(),
        1,
        "one alert per (kind, destination) while live"
    );
    e.corr.book.check();
}

#[test]
fn acknowledging_a_partly_covered_rollup_closes_it_and_quiets_only_the_covered_device() {
    let mut e = story();
    let a = only(&e, Kind::NewDestination);
    assert_eq!(a.device_count, 2);
    drained(&mut e);
    let closed = e.acknowledge(&ack(
        Kind::NewDestination,
        "evil.example",
        Scope::Device(ip("10.0.0.5")),
    ));
    assert_eq!(closed, vec![a.id.clone()]);
    assert!(e.alert(&a.id).is_none(), "a closed alert leaves the engine");
    let up = drained(&mut e);
    assert_eq!(up.len(), 1);
    assert_eq!(
        (up[0].id.as_str(), up[0].status),
        (a.id.as_str(), Status::Acknowledged)
    );
    // baseline join: acknowledged for the covered device, not for the other
    let f = entry_flags(&e, "10.0.0.5", "evil.example").unwrap();
    assert!(f & flag::ACKED != 0 && f & flag::SUSPECT == 0);
    assert_eq!(
        entry_flags(&e, "10.0.0.6", "evil.example").unwrap() & flag::ACKED,
        0
    );
    // re-applied at a restart: nothing more happens
    assert!(e
        .acknowledge(&ack(
            Kind::NewDestination,
            "evil.example",
            Scope::Device(ip("10.0.0.5"))
        ))
        .is_empty());
    assert_eq!(e.ack_count(), 1);
    // the covered device again: quiet; the uncovered one: a new alert of its own
    feed(
        &mut e,
        "@2026-11-03T12:00:00Z
         +0 10.0.0.5 evil.example A NOERROR 198.51.100.7
         +1m 10.0.0.6 evil.example A NOERROR 198.51.100.7",
    );
    let b = only(&e, Kind::NewDestination);
    assert_ne!(b.id, a.id);
    assert_eq!(b.devices, vec!["10.0.0.6"]);
    e.corr.book.check();
}

#[test]
fn an_org_wide_ack_covers_future_devices_and_expires() {
    let mut e = story();
    let until = crate::detectors::testkit::START + 3 * 86_400;
    let closed = e.acknowledge(&Ack {
        until: Some(until),
        ..ack(Kind::NewDestination, "evil.example", Scope::All)
    });
    assert_eq!(closed.len(), 1);
    // every device that exists joins; 10.0.0.7 never resolved it and gets an entry
    assert!(entry_flags(&e, "10.0.0.7", "evil.example").unwrap() & flag::ACKED != 0);
    // a device seen for the first time after the ack, past its learning day: suppressed
    feed(
        &mut e,
        "@2026-11-03T13:00:00Z
         +0 10.0.0.9 www.example.com A NOERROR 93.184.216.34
         @2026-11-04T14:00:00Z
         +0 10.0.0.9 evil.example A NOERROR 198.51.100.7",
    );
    assert!(e.alerts().iter().all(|a| a.kind != Kind::NewDestination));
    assert_eq!(e.stats().suppressed, 1);
    // once expired (event time past `until`), the suppression is gone but the flags stay
    e.expire_acks(until);
    assert_eq!(e.ack_count(), 0);
    assert!(entry_flags(&e, "10.0.0.7", "evil.example").unwrap() & flag::ACKED != 0);
    feed(
        &mut e,
        "@2026-11-05T14:00:00Z
         +0 10.0.0.9 evil.example A NOERROR 198.51.100.7",
    );
    assert_eq!(only(&e, Kind::NewDestination).devices, vec!["10.0.0.9"]);
}

#[test]
fn a_group_ack_covers_the_group_only_and_geo_acks_join_countries_and_asns() {
    let mut c = cfg();
    c.inventory
        .add_host(ip("10.0.0.5"), Some("ws5"), Some("lab"));
    c.inventory
        .add_host(ip("10.0.0.6"), Some("ws6"), Some("office"));
    let mut e = Engine::new(c);
    feed(&mut e, STORY);
    let closed = e.acknowledge(&ack(
        Kind::Beaconing,
        "evil.example",
        Scope::Group("lab".into()),
    ));
    assert!(closed.is_empty(), "no beaconing alert to close");
    assert!(entry_flags(&e, "10.0.0.5", "evil.example").unwrap() & flag::ACKED != 0);
    assert_eq!(
        entry_flags(&e, "10.0.0.6", "evil.example").unwrap() & flag::ACKED,
        0
    );
    e.acknowledge(&Ack {
        detail: serde_json::json!({"country": "RU"}),
        ..ack(
            Kind::NewCountry,
            "evil.example",
            Scope::Group("office".into()),
        )
    });
    e.acknowledge(&Ack {
        detail: serde_json::json!({"asn": 64500}),
        ..ack(Kind::NewAsn, "evil.example", Scope::All)
    });
    let b = e.baselines();
    let dev = |s: &str| &b.devices[b.dev_index[&ip(s)] as usize];
    assert!(dev("10.0.0.6").countries.contains(b"RU"));
    assert!(!dev("10.0.0.5").countries.contains(b"RU"));
    assert!(["10.0.0.5", "10.0.0.6", "10.0.0.7"]
        .iter()
        .all(|d| dev(d).asns.contains(&64500)));
    assert_eq!(e.ack_count(), 3);
}

#[test]
fn flagged_stays_high_blocked_keeps_folding_closed_leaves_and_reopens() {
    let mut e = story();
    let a = only(&e, Kind::NewDestination);
    assert!(
        a.score < 65,
        "the story's alert is not high by itself: {}",
        a.score
    );
    drained(&mut e);
    let f = e.set_status(&a.id, Status::Flagged).unwrap();
    assert_eq!(
        (f.status, f.severity, f.score),
        (Status::Flagged, Severity::High, 65)
    );
    assert_eq!(drained(&mut e).len(), 1, "the change is reported");
    // a new device joins: rescoring keeps the floor
    feed(
        &mut e,
        "@2026-11-03T10:00:00Z\n+0 10.0.0.7 evil.example A NOERROR 198.51.100.7",
    );
    let f = e.alert(&a.id).unwrap();
    assert_eq!((f.device_count, f.score), (3, 65));
    // blocked: stays live, the blocked queries still count into it
    e.set_status(&a.id, Status::Blocked).unwrap();
    feed(
        &mut e,
        "@2026-11-03T11:00:00Z\n+0 10.0.0.7 evil.example A NOERROR 198.51.100.7",
    );
    let b = e.alert(&a.id).unwrap();
    assert_eq!((b.status, b.count), (Status::Blocked, f.count + 1));
    assert!(b.score < 65, "the floor is for flagged alerts only");
    assert_eq!(e.alerts().len(), 1);
    // resolved: the final copy, then gone
    drained(&mut e);
    let r = e.set_status(&a.id, Status::Resolved).unwrap();
    assert_eq!(r.status, Status::Resolved);
    assert!(e.alert(&a.id).is_none() && e.alerts().is_empty());
    assert!(e.set_status(&a.id, Status::Flagged).is_none());
    let up = drained(&mut e);
    assert_eq!((up.len(), up[0].status), (1, Status::Resolved));
    // reopened from the triage store's copy: live again, with its devices
    e.reopen(r);
    let o = e.alert(&a.id).unwrap();
    assert_eq!((o.status, o.device_count), (Status::Reopened, 3));
    assert_eq!(drained(&mut e)[0].status, Status::Reopened);
    feed(
        &mut e,
        "@2026-11-03T12:00:00Z\n+0 10.0.0.6 evil.example A NOERROR 198.51.100.7",
    );
    assert_eq!(
        e.alert(&a.id).unwrap().count,
        o.count + 1,
        "findings fold into it"
    );
    e.corr.book.check();
}

#[test]
fn idle_alerts_leave_once_as_expired() {
    let mut e = story();
    let a = only(&e, Kind::NewDestination);
    drained(&mut e);
    // six days later: still live
    feed(
        &mut e,
        "@2026-11-09T08:00:00Z\n+0 10.0.0.7 www.example.com A NOERROR 93.184.216.34",
    );
    assert!(e.alert(&a.id).is_some());
    // eight days without a finding: it leaves, reported once as resolved/expired
    feed(
        &mut e,
        "@2026-11-11T10:00:00Z\n+0 10.0.0.7 www.example.com A NOERROR 93.184.216.34",
    );
    assert!(e.alert(&a.id).is_none());
    let up = drained(&mut e);
    let x = up
        .iter()
        .find(|x| x.id == a.id)
        .expect("reported once more");
    assert_eq!(
        (x.status, x.evidence["closed"].as_str()),
        (Status::Resolved, Some("expired"))
    );
    feed(
        &mut e,
        "@2026-11-12T10:00:00Z\n+0 10.0.0.7 www.example.com A NOERROR 93.184.216.34",
    );
    assert!(drained(&mut e).iter().all(|x| x.id != a.id), "only once");
}

/// ~90 days of churn: every day each of 40 devices resolves 3 destinations it never saw; the
/// person acknowledges a quarter of the alerts, the rest are left alone.
fn churn(max_open: usize) -> (usize, usize, usize) {
    let mut c = cfg();
    c.max_open_alerts = max_open;
    let mut e = Engine::new(c);
    let mut fx = String::new();
    for d in 0..40 {
        fx.push_str(&format!(
            "+1s 10.0.1.{d} www.example.com A NOERROR 93.184.216.34\n"
        ));
    }
    feed(&mut e, &fx);
    let (mut most, mut expired, mut acked) = (0, 0, 0);
    let mut up = Vec::new();
    for day in 1..=90 {
        let mut fx = format!(
            "@{}\n",
            dnsight_model::Ts::from_secs(crate::detectors::testkit::START + day * 86_400 + 3_600)
                .to_rfc3339()
        );
        for d in 0..40 {
            for k in 0..3 {
                fx.push_str(&format!(
                    "+7s 10.0.1.{d} n{day}x{d}x{k}.example A NOERROR 198.51.100.{k}\n"
                ));
            }
        }
        feed(&mut e, &fx);
        for a in e.alerts() {
            if a.kind == Kind::NewDestination && a.destination.ends_with("x0.example") {
                assert!(e.set_status(&a.id, Status::Acknowledged).is_some());
                acked += 1;
            }
        }
        most = most.max(e.corr.book.len());
        assert!(
            e.corr.book.len() <= max_open,
            "day {day}: {} live",
            e.corr.book.len()
        );
        up.clear();
        e.drain_updates(&mut up);
        expired += up
            .iter()
            .filter(|a| a.evidence["closed"] == "expired")
            .inspect(|a| assert_eq!(a.status, Status::Resolved))
            .count();
        e.corr.book.check();
    }
    (most, expired, acked)
}

#[test]
fn ninety_days_of_churn_stay_within_the_bound() {
    // the idle bound: 80 unacknowledged alerts a day, 7 days idle -> at most ~8 days' worth
    let (most, expired, acked) = churn(50_000);
    assert_eq!(acked, 90 * 40);
    assert!(most <= 8 * 80 + 40, "{most}");
    assert!(expired >= 80 * 80, "the idle ones left: {expired}");
    // the size bound: below what idling alone would hold
    let (most, expired, _) = churn(300);
    assert!(most <= 300, "{most}");
    assert!(expired > 80 * 80, "{expired}");
}

#[test]
fn the_state_holds_only_live_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::open(cfg(), dir.path()).unwrap();
    feed(&mut e, STORY);
    feed(
        &mut e,
        "@2026-11-03T09:05:00Z\n+0 10.0.0.7 other.example A NOERROR 198.51.100.9",
    );
    let kept = e
        .alerts()
        .into_iter()
        .find(|a| a.destination == "other.example")
        .unwrap();
    e.save().unwrap();
    let gone = e.acknowledge(&ack(Kind::NewDestination, "evil.example", Scope::All));
    assert_eq!(gone.len(), 1);
    e.save().unwrap();
    drop(e);
    let e = Engine::open(cfg(), dir.path()).unwrap();
    let ids: Vec<String> = e.alerts().into_iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![kept.id]);
    // the acknowledged flag persisted with the baseline; the suppression did not
    assert!(entry_flags(&e, "10.0.0.6", "evil.example").unwrap() & flag::ACKED != 0);
    assert_eq!(e.ack_count(), 0);
}
