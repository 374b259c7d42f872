//! Per-group upstreams: two client addresses on the loopback (127.0.0.1 and 127.0.0.2, real
//! source addresses given to `dig -b`) in different groups get different upstreams — a real
//! nsd for the office, a real Unbound standing in for a filtering resolver for the guests —
//! with answers cached apart; forward zones still go to their servers for everyone.

use crate::*;
use dnsight_resolver::{ForwardSpec, GroupSpec, UpstreamSpec};

#[test]
fn groups_pick_their_upstreams_and_are_cached_apart() {
    if !which("dig") {
        eprintln!("SKIP: dig not installed");
        return;
    }
    let Some(office) = start_nsd(None) else {
        return;
    };
    // the "filtering resolver": answers www with a block page, logs what guests ask
    let Some(filter) = start_unbound(&[&format!("www.{ZONE}. A 192.0.2.250")]) else {
        eprintln!("SKIP: unbound not installed");
        return;
    };
    let Some(dc) = start_nsd_zones(
        None,
        &[(
            "corp.example",
            "$ORIGIN corp.example.\n$TTL 300\n@ SOA ns admin 1 3600 600 86400 60\n@ NS ns\nns A 10.20.0.10\ndc1 A 10.20.0.10\n".into(),
        )],
        "dc1.corp.example",
    ) else {
        return;
    };
    let mut cfg = base_config(&[office.addr]);
    cfg.policy.groups = vec![GroupSpec {
        name: "guests".into(),
        clients: vec!["127.0.0.2/32".parse().unwrap()],
        lists: None,
        answer: None,
        upstreams: Some(vec![UpstreamSpec::udp(filter.addr)]),
    }];
    cfg.forwards = vec![ForwardSpec {
        zones: vec!["corp.example".into()],
        upstreams: vec![UpstreamSpec::udp(dc.addr)],
        internal_only: true,
    }];
    let (r, events) = start(cfg);
    let a = r.udp_addrs()[0];
    let www = format!("www.{ZONE}");
    let from = |src: &str, name: &str| dig(a, &["-b", src, name]);

    assert_eq!(from("127.0.0.1", &www), ["192.0.2.1"]);
    assert_eq!(from("127.0.0.2", &www), ["192.0.2.250"]);
    // each from its own cache view
    assert_eq!(from("127.0.0.1", &www), ["192.0.2.1"]);
    assert_eq!(from("127.0.0.2", &www), ["192.0.2.250"]);
    let s = r.stats();
    assert_eq!((s.cache_misses, s.cache_hits), (2, 2), "{s}");
    // forward zones win over a group's upstreams
    assert_eq!(from("127.0.0.2", "dc1.corp.example"), ["10.20.0.10"]);
    let log = filter.query_log();
    assert!(log.contains(&format!("www.{ZONE}.")), "{log}");
    assert!(!log.contains("corp.example"), "{log}");

    let evs = events.wait(5);
    let guests: Vec<_> = evs
        .iter()
        .filter(|e| e.client.to_string() == "127.0.0.2")
        .collect();
    assert_eq!(guests.len(), 3);
    assert_eq!(
        guests[0].answers[0].addr().unwrap().to_string(),
        "192.0.2.250"
    );
    r.shutdown();
}
