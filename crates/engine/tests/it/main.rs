//! Engine integration tests: persistence in a real redb file, determinism, hostile input and
//! the alert JSON contract, through the public API only.

use dnsight_engine::{render_text_report, Engine, EngineConfig};
use dnsight_model::{Answer, DnsEvent, Name, RData, Ts};
use std::net::IpAddr;

const MON: i64 = 1_793_577_600; // 2026-11-02T00:00:00Z

mod partitions;

fn ev(t: i64, client: &str, q: &str, ip: Option<&str>) -> DnsEvent {
    let mut e = DnsEvent::new(
        Ts::from_secs(t),
        client.parse().unwrap(),
        Name::parse(q).unwrap(),
        1,
    );
    if let Some(ip) = ip {
        e.answers.push(Answer {
            name: e.qname.clone(),
            rtype: 1,
            ttl: 300,
            data: RData::Addr(ip.parse().unwrap()),
        });
    }
    e
}

fn week_of_normal(start: i64) -> Vec<DnsEvent> {
    let mut v = Vec::new();
    for day in 0..7 {
        for h in 8..18 {
            let t = start + day * 86_400 + h * 3600;
            v.push(ev(
                t,
                "10.0.1.20",
                "api.partner.example",
                Some("198.51.100.5"),
            ));
            v.push(ev(
                t + 60,
                "10.0.1.20",
                "mirror.corp.internal",
                Some("10.0.5.5"),
            ));
            v.push(ev(
                t + 120,
                "10.0.0.5",
                "www.example.com",
                Some("93.184.216.34"),
            ));
        }
    }
    v
}

#[test]
fn learn_last_week_detect_this_week_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EngineConfig::default(); // 7 learning days
    {
        let mut e = Engine::open(cfg.clone(), dir.path()).unwrap();
        for x in week_of_normal(MON) {
            e.observe(&x);
        }
        assert!(
            e.alerts().is_empty(),
            "learning week raises nothing: {:#?}",
            e.alerts()
        );
        e.save().unwrap();
    }
    assert!(dir.path().join(dnsight_engine::STATE_FILE).exists());
    // this week, a new process: the baseline comes from disk
    let mut e = Engine::open(cfg.clone(), dir.path()).unwrap();
    assert_eq!(e.stats().devices, 2);
    assert!(e.stats().baseline_entries >= 3);
    let t = MON + 8 * 86_400 + 10 * 3600;
    e.observe(&ev(
        t,
        "10.0.1.20",
        "api.partner.example",
        Some("198.51.100.5"),
    )); // known
    e.observe(&ev(
        t + 1,
        "10.0.1.20",
        "c2.never-seen.example",
        Some("203.0.113.66"),
    )); // new
    let a = e.alerts();
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].kind.as_str(), "new_destination");
    assert_eq!(a[0].destination, "never-seen.example");
    e.save().unwrap();
    drop(e);
    // alerts persist too, and a repeat updates the same alert instead of opening a new one
    let mut e = Engine::open(cfg, dir.path()).unwrap();
    assert_eq!(e.alerts().len(), 1);
    e.observe(&ev(
        t + 60,
        "10.0.1.20",
        "c2.never-seen.example",
        Some("203.0.113.66"),
    ));
    let a = e.alerts();
    assert_eq!((a.len(), a[0].count), (1, 2), "{a:#?}");
}

#[test]
fn same_events_same_alerts() {
    let mut evs = week_of_normal(MON);
    for i in 0..40 {
        evs.push(ev(
            MON + 8 * 86_400 + i * 300,
            "10.0.0.5",
            "beacon.c2.example",
            Some("203.0.113.9"),
        ));
        let mut nx = ev(
            MON + 8 * 86_400 + 5000 + i,
            "10.0.0.9",
            &format!("q{}x{}z.com", i * 7919, i * 104_729),
            None,
        );
        nx.rcode = Some(3);
        evs.push(nx);
    }
    let run = || {
        let mut e = Engine::new(EngineConfig::default());
        let mut updates = Vec::new();
        for x in &evs {
            e.observe(x);
        }
        e.drain_updates(&mut updates);
        (serde_json::to_string(&e.alerts()).unwrap(), updates.len())
    };
    let (a, n) = run();
    let (b, m) = run();
    assert_eq!(a, b);
    assert_eq!(n, m);
    assert!(n > 0);
}

#[test]
fn hostile_input_is_counted_not_fatal() {
    let mut e = Engine::new(EngineConfig {
        max_devices: 3,
        ..EngineConfig::default()
    });
    // names with every byte value, including NUL, quotes, angle brackets, newlines
    let mut labels: Vec<Vec<u8>> = Vec::new();
    for b in 0..=255u8 {
        labels.push(vec![b, b'<', b'"', b'\n', b]);
    }
    for (i, l) in labels.iter().enumerate() {
        let n = Name::from_labels([l.as_slice(), b"evil", b"com"]);
        let mut x = DnsEvent::new(
            Ts::from_secs(MON + i as i64),
            "10.0.0.5".parse().unwrap(),
            n,
            16,
        );
        x.rcode = Some(3);
        e.observe(&x);
    }
    // out-of-range timestamps and the root name are skipped and counted
    e.observe(&ev(-5, "10.0.0.5", "a.example", None));
    e.observe(&ev(99_999_999_999, "10.0.0.5", "a.example", None));
    e.observe(&DnsEvent::new(
        Ts::from_secs(MON),
        "10.0.0.5".parse().unwrap(),
        Name::root(),
        2,
    ));
    // spoofed sources beyond the device cap
    for i in 0..10 {
        e.observe(&ev(MON + 1000, &format!("192.0.2.{i}"), "x.example", None));
    }
    let s = e.stats();
    assert_eq!(s.skipped.get("timestamp_out_of_range"), Some(&2));
    assert_eq!(s.skipped.get("root_name"), Some(&1));
    assert_eq!(s.skipped.get("device_limit"), Some(&8));
    assert_eq!(s.devices, 3);
    // the report and JSON never carry raw control characters
    let report = render_text_report(&e.alerts(), &s);
    assert!(!report.contains('\0'));
    for a in e.alerts() {
        let j = serde_json::to_string(&a).unwrap();
        assert!(!j.contains('\n') && !j.contains('\0'));
    }
}

#[test]
fn alert_json_contract_and_report() {
    let mut cfg = EngineConfig {
        learn_days: 1,
        ..EngineConfig::default()
    };
    cfg.inventory.add_host(
        "10.0.1.20".parse::<IpAddr>().unwrap(),
        Some("web1"),
        Some("servers"),
    );
    let mut e = Engine::new(cfg);
    e.observe(&ev(
        MON,
        "10.0.1.20",
        "api.partner.example",
        Some("198.51.100.5"),
    ));
    e.observe(&ev(
        MON + 2 * 86_400,
        "10.0.1.20",
        "stage.new-dest.example",
        Some("203.0.113.5"),
    ));
    let alerts = e.alerts();
    assert_eq!(alerts.len(), 1);
    let j: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&alerts[0]).unwrap()).unwrap();
    for k in [
        "id",
        "kind",
        "severity",
        "score",
        "device",
        "device_name",
        "group",
        "destination",
        "first_seen",
        "last_seen",
        "count",
        "summary",
        "evidence",
        "status",
    ] {
        assert!(j.get(k).is_some(), "missing {k}: {j}");
    }
    assert_eq!(j["device"], "10.0.1.20");
    assert_eq!(j["device_name"], "web1");
    assert_eq!(j["group"], "servers");
    assert_eq!(j["first_seen"], "2026-11-04T00:00:00.000000Z");
    assert!(j["evidence"]["sample_queries"][0]
        .as_str()
        .unwrap()
        .contains("stage.new-dest.example"));
    let r = render_text_report(&alerts, &e.stats());
    assert!(
        r.contains("new_destination") && r.contains("web1, servers") && r.contains("note: GeoIP"),
        "{r}"
    );
}
