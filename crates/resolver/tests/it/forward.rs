//! Conditional forwarding in a lab: an "internal" nsd (the domain controllers: `corp.example`
//! and the reverse zone of 10.20.0.0/16), a "branch" nsd (`branch.corp.example`), and a real
//! Unbound as the default ("internet") upstream, whose query log shows what leaked to it.

use crate::*;
use dnsight_model::VerdictAction;
use dnsight_resolver::{ForwardSpec, UpstreamSpec};

fn corp_zone() -> String {
    "$ORIGIN corp.example.\n$TTL 300\n@ SOA ns admin 1 3600 600 86400 60\n@ NS ns\nns A 10.20.0.10\ndc1 A 10.20.0.10\n_ldap._tcp.dc._msdcs SRV 0 100 389 dc1\n".into()
}
fn reverse_zone() -> String {
    "$ORIGIN 20.10.in-addr.arpa.\n$TTL 300\n@ SOA ns.corp.example. admin.corp.example. 1 3600 600 86400 60\n@ NS ns.corp.example.\n10.0 PTR dc1.corp.example.\n".into()
}
fn branch_zone() -> String {
    "$ORIGIN branch.corp.example.\n$TTL 300\n@ SOA ns admin 1 3600 600 86400 60\n@ NS ns\nns A 10.30.0.1\nwww A 10.30.0.5\n".into()
}

fn fwd(zones: &[&str], up: std::net::SocketAddr, internal_only: bool) -> ForwardSpec {
    ForwardSpec {
        zones: zones.iter().map(|z| z.to_string()).collect(),
        upstreams: vec![UpstreamSpec::udp(up)],
        internal_only,
    }
}

#[test]
fn internal_zones_go_to_their_servers_and_never_leak() {
    if !which("dig") {
        eprintln!("SKIP: dig not installed");
        return;
    }
    let Some(internet) = start_unbound(&["www.internet.example. A 198.51.100.7"]) else {
        eprintln!("SKIP: unbound not installed");
        return;
    };
    let Some(dc) = start_nsd_zones(
        None,
        &[
            ("corp.example", corp_zone()),
            ("20.10.in-addr.arpa", reverse_zone()),
        ],
        "dc1.corp.example",
    ) else {
        return;
    };
    let Some(branch) = start_nsd_zones(
        None,
        &[("branch.corp.example", branch_zone())],
        "www.branch.corp.example",
    ) else {
        return;
    };
    // nothing listens here: a partner's server that is down
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cfg = base_config(&[internet.addr]);
    cfg.forwards = vec![
        fwd(&["corp.example", "10.20.0.0/16"], dc.addr, true),
        fwd(&["branch.corp.example"], branch.addr, false),
        fwd(&["partner.example"], dead, false),
    ];
    let (r, events) = start(cfg);
    let a = r.udp_addrs()[0];

    // SRV and PTR from the domain controllers, the branch zone from its own server (longest
    // match), everything else from the default upstream
    assert_eq!(
        dig(a, &["_ldap._tcp.dc._msdcs.corp.example", "SRV"]),
        vec!["0 100 389 dc1.corp.example."]
    );
    assert_eq!(dig(a, &["-x", "10.20.0.10"]), vec!["dc1.corp.example."]);
    assert_eq!(dig(a, &["www.branch.corp.example"]), vec!["10.30.0.5"]);
    assert_eq!(dig(a, &["www.internet.example"]), vec!["198.51.100.7"]);
    // cached like the rest
    assert_eq!(
        dig(a, &["_ldap._tcp.dc._msdcs.corp.example", "SRV"]),
        vec!["0 100 389 dc1.corp.example."]
    );
    let s = r.stats();
    assert_eq!((s.cache_hits, s.zone_forwards), (1, 3), "{s}");

    // and seen by the engine like the rest
    let evs = events.wait(5);
    let by_name = |n: &str| {
        evs.iter()
            .filter(|e| e.qname.as_str() == n)
            .map(|e| e.verdict.as_ref().unwrap().action)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_name("_ldap._tcp.dc._msdcs.corp.example"),
        vec![VerdictAction::Forwarded, VerdictAction::Cached]
    );
    assert_eq!(
        by_name("10.0.20.10.in-addr.arpa"),
        vec![VerdictAction::Forwarded]
    );
    let ptr = evs
        .iter()
        .find(|e| e.qname.as_str() == "10.0.20.10.in-addr.arpa")
        .unwrap();
    assert_eq!(ptr.answers.len(), 1, "{ptr:?}");

    // a zone whose server is down and which is not internal-only falls back to the defaults
    assert_eq!(dig_status(a, &["www.partner.example"]), "NXDOMAIN");
    assert_eq!(r.stats().zone_fallbacks, 1);

    // the domain controllers and the branch go down: internal names get SERVFAIL, never the
    // internet (the branch zone is inside the internal-only corp.example)
    drop(dc);
    drop(branch);
    assert_eq!(dig_status(a, &["new.corp.example"]), "SERVFAIL");
    assert_eq!(dig_status(a, &["-x", "10.20.9.9"]), "SERVFAIL");
    assert_eq!(dig_status(a, &["new.branch.corp.example"]), "SERVFAIL");
    assert_eq!(r.stats().zone_fallbacks, 1);

    // the internet's own query log: the external names, the fallback, no internal name
    let log = internet.query_log();
    assert!(log.contains("www.internet.example."), "{log}");
    assert!(log.contains("www.partner.example."), "{log}");
    assert!(
        !log.contains("corp.example"),
        "an internal name leaked:\n{log}"
    );
    assert!(
        !log.contains("in-addr.arpa"),
        "a reverse name leaked:\n{log}"
    );
    r.shutdown();
}
