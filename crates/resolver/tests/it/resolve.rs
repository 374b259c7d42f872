//! Forwarding, caching, TC fallback, policy and failover against a real nsd.

use crate::*;
use dnsight_model::VerdictAction;
use dnsight_resolver::{BlockAnswer, ListRole, ListSpec};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(3);

#[test]
fn forwards_caches_and_reports_events() {
    let Some(nsd) = start_nsd(None) else { return };
    let (r, events) = start(base_config(&[nsd.addr]));
    let a = r.udp_addrs()[0];
    let www = format!("www.{ZONE}");

    let first = udp_query(a, &www, 1, false, T).expect("answer");
    assert_eq!(rcode(&first), 0);
    assert_eq!(addrs(&first), vec!["192.0.2.1"]);
    // the client's own case comes back, from the cache
    let second = udp_query(a, &www.to_uppercase(), 1, false, T).expect("answer");
    assert_eq!(addrs(&second), vec!["192.0.2.1"]);
    assert_eq!(&second[12..12 + 4], b"\x03WWW");
    let s = r.stats();
    assert_eq!((s.cache_misses, s.cache_hits), (1, 1), "{s}");
    // AAAA is a different cache entry
    assert_eq!(
        addrs(&udp_query(a, &www, 28, true, T).unwrap()),
        vec!["2001:db8::1"]
    );
    // NXDOMAIN is cached negatively (SOA minimum 60)
    let nx = format!("nope.{ZONE}");
    assert_eq!(rcode(&udp_query(a, &nx, 1, false, T).unwrap()), 3);
    assert_eq!(rcode(&udp_query(a, &nx, 1, false, T).unwrap()), 3);
    assert_eq!(r.stats().cache_hits, 2);
    // TCP listener, same cache
    let t = tcp_query(r.tcp_addrs()[0], &www, 1);
    assert_eq!(addrs(&t), vec!["192.0.2.1"]);

    let evs = events.wait(6);
    assert_eq!(evs.len(), 6);
    assert_eq!(
        evs[0].verdict.as_ref().unwrap().action,
        VerdictAction::Forwarded
    );
    assert_eq!(evs[0].qname.as_str(), www);
    assert_eq!(evs[0].answers.len(), 1);
    assert!(evs[0].rtt_us.is_some());
    assert_eq!(
        evs[1].verdict.as_ref().unwrap().action,
        VerdictAction::Cached
    );
    assert_eq!(evs[1].qname.as_str(), www, "event names are lowercased");
    assert_eq!(evs[5].transport, dnsight_model::Transport::Tcp);
    assert!(evs
        .iter()
        .all(|e| e.source == dnsight_model::Source::Resolver));
    let fin = r.shutdown();
    assert_eq!(fin.events_dropped, 0);
    assert_eq!(fin.events_out, 6);
}

#[test]
fn truncated_upstream_answer_is_retried_over_tcp() {
    let Some(nsd) = start_nsd(None) else { return };
    let (r, _ev) = start(base_config(&[nsd.addr]));
    let big = format!("big.{ZONE}");
    // no EDNS: nsd truncates at 512 bytes, we retry over TCP and then must truncate for the client
    let u = udp_query(r.udp_addrs()[0], &big, 1, false, T).unwrap();
    assert_ne!(u[2] & 0x02, 0, "TC expected for a 512-byte client");
    assert!(u.len() <= 512);
    assert!(r.stats().upstream_tcp_retries >= 1);
    // the client retries over TCP and gets all 60 records (from the cache)
    let t = tcp_query(r.tcp_addrs()[0], &big, 1);
    assert_eq!(addrs(&t).len(), 60);
    // a client with a 4096-byte EDNS buffer gets them over UDP
    let e = udp_query(r.udp_addrs()[0], &big, 1, true, T).unwrap();
    assert_eq!(addrs(&e).len(), 60);
    r.shutdown();
}

#[test]
fn dig_talks_to_it() {
    let Some(nsd) = start_nsd(None) else { return };
    if !which("dig") {
        eprintln!("SKIP: dig not installed");
        return;
    }
    let (r, _ev) = start(base_config(&[nsd.addr]));
    let a = r.udp_addrs()[0];
    for extra in [&["+notcp"][..], &["+tcp"][..], &["+dnssec", "+cookie"][..]] {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &a.port().to_string(),
                &format!("www.{ZONE}"),
                "A",
                "+short",
                "+time=3",
                "+tries=1",
            ])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            "192.0.2.1",
            "dig {extra:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    r.shutdown();
}

#[test]
fn block_lists_rpz_and_reload() {
    let Some(nsd) = start_nsd(None) else { return };
    let dir = tempfile::tempdir().unwrap();
    let hosts = write(
        dir.path(),
        "ads.txt",
        &format!("0.0.0.0 ads.{ZONE}\n||tracker.{ZONE}^\n@@||ok.tracker.{ZONE}^\n"),
    );
    let rpz = write(
        dir.path(),
        "policy.rpz",
        &format!("$ORIGIN rpz.local.\n@ SOA ns admin 1 3600 600 86400 60\nnx.{ZONE} CNAME .\nlocal.{ZONE} A 10.9.9.9\nwww.{ZONE} CNAME rpz-passthru.\n"),
    );
    let mut cfg = base_config(&[nsd.addr]);
    cfg.policy.lists = vec![
        ListSpec {
            name: "ads.txt".into(),
            path: hosts.clone(),
            role: ListRole::Block,
        },
        ListSpec {
            name: "policy.rpz".into(),
            path: rpz,
            role: ListRole::Block,
        },
    ];
    cfg.policy.default_answer = BlockAnswer::Null;
    let (r, events) = start(cfg);
    let a = r.udp_addrs()[0];
    // hosts entry: the name and its subdomains blocked with 0.0.0.0 (listfmt::HOSTS_SUBDOMAINS)
    assert_eq!(
        addrs(&udp_query(a, &format!("ads.{ZONE}"), 1, false, T).unwrap()),
        vec!["0.0.0.0"]
    );
    assert_eq!(
        addrs(&udp_query(a, &format!("ads.{ZONE}"), 28, false, T).unwrap()),
        vec!["::"]
    );
    assert_eq!(
        addrs(&udp_query(a, &format!("x.ads.{ZONE}"), 1, false, T).unwrap()),
        vec!["0.0.0.0"]
    );
    // adblock subtree with an exception
    assert_eq!(
        addrs(&udp_query(a, &format!("a.tracker.{ZONE}"), 1, false, T).unwrap()),
        vec!["0.0.0.0"]
    );
    assert_eq!(
        rcode(&udp_query(a, &format!("ok.tracker.{ZONE}"), 1, false, T).unwrap()),
        3,
        "allowed: forwarded, nsd says NXDOMAIN"
    );
    // RPZ
    assert_eq!(
        rcode(&udp_query(a, &format!("nx.{ZONE}"), 1, false, T).unwrap()),
        3
    );
    assert_eq!(
        addrs(&udp_query(a, &format!("local.{ZONE}"), 1, false, T).unwrap()),
        vec!["10.9.9.9"]
    );
    assert_eq!(
        addrs(&udp_query(a, &format!("www.{ZONE}"), 1, false, T).unwrap()),
        vec!["192.0.2.1"]
    );
    let evs = events.wait(8);
    let blocked: Vec<_> = evs
        .iter()
        .filter(|e| e.verdict.as_ref().unwrap().action == VerdictAction::Blocked)
        .collect();
    assert_eq!(blocked.len(), 6);
    assert_eq!(
        blocked[0].verdict.as_ref().unwrap().rule.as_deref(),
        Some("blocklist:ads.txt")
    );
    assert_eq!(
        blocked[4].verdict.as_ref().unwrap().rule.as_deref(),
        Some("rpz:policy.rpz")
    );

    // reload: the list changes; an explicit reload (what SIGHUP does) swaps it in
    std::fs::write(&hosts, format!("www.{ZONE}\n")).unwrap();
    r.reload().unwrap();
    assert_eq!(
        addrs(&udp_query(a, &format!("ads.{ZONE}"), 1, false, T).unwrap()),
        vec!["192.0.2.66"]
    );
    // RPZ passthru for www beats the new block list
    assert_eq!(
        addrs(&udp_query(a, &format!("www.{ZONE}"), 1, false, T).unwrap()),
        vec!["192.0.2.1"]
    );
    // mtime polling picks up changes; a broken reload keeps the old policy
    std::fs::write(&hosts, format!("*.ads.{ZONE}\n")).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&hosts)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(r.reload_if_changed(), Ok(true));
    assert_eq!(r.reload_if_changed(), Ok(false));
    assert_eq!(
        addrs(&udp_query(a, &format!("x.ads.{ZONE}"), 1, false, T).unwrap()),
        vec!["0.0.0.0"]
    );
    std::fs::remove_file(&hosts).unwrap();
    assert!(r.reload().is_err());
    assert_eq!(
        addrs(&udp_query(a, &format!("x.ads.{ZONE}"), 1, false, T).unwrap()),
        vec!["0.0.0.0"]
    );
    let s = r.shutdown();
    assert_eq!((s.list_reloads, s.list_reload_errors), (2, 1));
}

/// A query for a name no test asks for before its upstreams are gone (`short.ZONE`), with room
/// for the resolver's upstream timeouts.
fn uncached_query(a: std::net::SocketAddr) -> Vec<u8> {
    udp_query(
        a,
        &format!("short.{ZONE}"),
        1,
        false,
        Duration::from_secs(5),
    )
    .unwrap()
}

#[test]
fn upstream_failover_and_recovery() {
    let Some(nsd) = start_nsd(None) else { return };
    let dead_port = free_port();
    let dead: std::net::SocketAddr = format!("127.0.0.1:{dead_port}").parse().unwrap();
    let (r, _ev) = start(base_config(&[dead, nsd.addr]));
    let a = r.udp_addrs()[0];
    // the first upstream is dead: the answer comes from the second
    assert_eq!(
        addrs(&udp_query(a, &format!("www.{ZONE}"), 1, false, T).unwrap()),
        vec!["192.0.2.1"]
    );
    assert_eq!(r.upstream_health(), vec![(dead, false), (nsd.addr, true)]);
    assert!(r.stats().upstream_failures >= 1);
    // the dead one comes back: the health probe marks it up
    let revived = start_nsd(Some(dead_port)).unwrap();
    eventually("revived upstream marked up", || r.upstream_health()[0].1);
    let first = nsd.addr;
    drop(nsd);
    // nsd's server process may outlive the main one for a moment
    eventually("old upstream silent", || {
        udp_query(
            first,
            &format!("www.{ZONE}"),
            1,
            false,
            Duration::from_millis(100),
        )
        .is_none()
    });
    // now only the revived one works
    assert_eq!(
        addrs(&udp_query(a, &format!("x.ads.{ZONE}"), 1, false, T).unwrap()),
        vec!["192.0.2.67"]
    );
    drop(revived);
    eventually("revived upstream silent", || {
        udp_query(
            dead,
            &format!("www.{ZONE}"),
            1,
            false,
            Duration::from_millis(100),
        )
        .is_none()
    });
    // nobody answers: SERVFAIL, not silence
    assert_eq!(rcode(&uncached_query(a)), 2);
    assert!(r.shutdown().servfail >= 1);
}

#[test]
fn expired_answers_are_served_stale_when_every_upstream_fails() {
    let Some(nsd) = start_nsd(None) else { return };
    let mut cfg = base_config(&[nsd.addr]);
    cfg.cache.max_ttl = 1; // cached answers expire after a second
    let (r, _ev) = start(cfg);
    let a = r.udp_addrs()[0];
    let name = format!("www.{ZONE}");
    assert_eq!(
        addrs(&udp_query(a, &name, 1, false, T).unwrap()),
        vec!["192.0.2.1"]
    );
    let up = nsd.addr;
    drop(nsd);
    eventually("upstream silent", || {
        udp_query(up, &name, 1, false, Duration::from_millis(100)).is_none()
    });
    // the upstream is gone and the entry expires: the expired answer (TTL 30), never SERVFAIL
    eventually("a stale answer", || {
        let resp = udp_query(a, &name, 1, false, Duration::from_secs(5)).unwrap();
        assert_eq!(rcode(&resp), 0, "SERVFAIL although a stale answer exists");
        assert_eq!(addrs(&resp), vec!["192.0.2.1"]);
        answers(&resp)[0].ttl == 30
    });
    // a name never answered before has nothing stale: SERVFAIL
    assert_eq!(rcode(&uncached_query(a)), 2);
    let s = r.shutdown();
    assert!(s.stale_answers >= 1 && s.servfail >= 1, "{s:?}");
}

#[test]
fn popular_answers_are_refreshed_before_they_expire() {
    let Some(nsd) = start_nsd(None) else { return };
    let mut cfg = base_config(&[nsd.addr]);
    cfg.cache.max_ttl = 10; // the zone says 300: cached for 10 s, prefetched in its last second
    let (r, _ev) = start(cfg);
    let a = r.udp_addrs()[0];
    let name = format!("www.{ZONE}");
    let t0 = std::time::Instant::now();
    // a client asking every 50 ms for 13 s: one miss, then hits only — the entry is refreshed
    // in the background before it expires
    while t0.elapsed() < Duration::from_secs(13) {
        assert_eq!(
            addrs(&udp_query(a, &name, 1, false, T).unwrap()),
            vec!["192.0.2.1"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = r.shutdown();
    assert!(s.prefetches >= 1, "{s:?}");
    assert_eq!(s.cache_misses, 1, "{s:?}");
    drop(nsd);
}
