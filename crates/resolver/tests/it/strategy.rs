//! Upstream strategy: `fastest` asks every healthy upstream at once and takes the first answer;
//! an upstream that never answers (a bound socket nobody reads) costs nothing then, whereas in
//! order it is waited for and marked down. Per-upstream counters and latency come out.

use crate::*;
use dnsight_resolver::Strategy;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

#[test]
fn fastest_races_every_healthy_upstream_and_counts_per_upstream() {
    let Some(nsd) = start_nsd(None) else { return };
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let hole_addr = hole.local_addr().unwrap();

    let mut cfg = base_config(&[hole_addr, nsd.addr]);
    cfg.upstream_strategy = Strategy::Fastest;
    cfg.health_interval = Duration::from_secs(3600);
    let (r, _ev) = start(cfg);
    let a = r.udp_addrs()[0];
    for i in 0..3 {
        let resp = udp_query(a, &format!("n{i}.{ZONE}"), 1, false, T).expect("answer");
        assert_eq!(rcode(&resp), 3);
    }
    let st = r.upstream_stats();
    assert_eq!(st.len(), 2);
    let (h, n) = (&st[0], &st[1]);
    assert_eq!((h.addr, n.addr), (hole_addr, nsd.addr));
    assert_eq!(
        (h.asked, h.answered, h.failed, h.chosen),
        (3, 0, 0, 0),
        "{h:?}"
    );
    assert!(h.healthy, "a lost race is not a failure");
    assert_eq!((n.asked, n.answered, n.chosen), (3, 3, 3), "{n:?}");
    assert!(n.latency_us > 0);
    assert_eq!(r.stats().upstream_races, 3);
    r.shutdown();

    // in order: the silent first upstream is waited for once, then marked down and skipped
    let (r, _ev) = start(base_config(&[hole_addr, nsd.addr]));
    let a = r.udp_addrs()[0];
    for i in 0..3 {
        let resp = udp_query(a, &format!("n{i}.{ZONE}"), 1, false, T).expect("answer");
        assert_eq!(rcode(&resp), 3);
    }
    let st = r.upstream_stats();
    assert_eq!((st[0].asked, st[0].failed), (1, 1), "{:?}", st[0]);
    assert_eq!(st[1].chosen, 3);
    assert_eq!(r.stats().upstream_races, 0);
    r.shutdown();
    drop(hole);
}
