//! The publisher against a real `nats-server -js` (started by the test in a temporary
//! directory on a free loopback port): events arrive per partition in order; NATS stopped and
//! started again while publishing → the spooled batches are replayed in order, none lost, none
//! twice.

use dnsight_bus::testing::{read_stream, TestNats};
use dnsight_bus::{BusConfig, Publisher};
use dnsight_model::{partition, DnsEvent, Name, Ts};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const BASE: i64 = 1_800_000_000_000_000;

/// Event `i`: client `i % clients`, its time the unique `BASE + i`.
fn ev(i: u64, clients: u64) -> DnsEvent {
    let c = i % clients;
    let ip = IpAddr::from([10, 1, (c >> 8) as u8, c as u8]);
    DnsEvent::new(
        Ts::from_micros(BASE + i as i64),
        ip,
        Name::parse(&format!("n{}.example", i % 97)).unwrap(),
        1,
    )
}

/// Checks subjects, per-client order and that each of `n` events is there exactly once.
fn check(msgs: &[(String, Vec<DnsEvent>)], n: u64, parts: u32) {
    let mut seen = HashSet::new();
    let mut last: BTreeMap<IpAddr, i64> = BTreeMap::new();
    for (subject, evs) in msgs {
        for e in evs {
            let p = partition(e.client, parts);
            assert_eq!(subject, &format!("dnsight.events.{p}"), "partition subject");
            let t = e.ts.micros();
            assert!(seen.insert(t), "event {} twice", t - BASE);
            if let Some(prev) = last.insert(e.client, t) {
                assert!(
                    prev < t,
                    "{} out of order: {} after {}",
                    e.client,
                    t - BASE,
                    prev - BASE
                );
            }
        }
    }
    assert_eq!(seen.len() as u64, n, "every event arrived");
}

fn cfg(url: &str, dir: &std::path::Path) -> BusConfig {
    let mut c = BusConfig::new(url, dir.join("spool"));
    c.batch_events = 200;
    c.ack_timeout = Duration::from_millis(800);
    c.sensor = "test".into();
    c
}

fn wait_published(p: &Publisher, n: u64) {
    let st = p.stats();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let s = st.snapshot();
        if s.published_events >= n && s.spool_bytes == 0 {
            return;
        }
        assert!(Instant::now() < end, "not everything was published: {s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn per_partition_in_order() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::start(cfg(&nats.url(), dir.path())).unwrap();
    let n = 30_000u64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(512) {
        let evs: Vec<DnsEvent> = chunk.iter().map(|&i| ev(i, 700)).collect();
        p.publish(&evs);
    }
    p.flush();
    wait_published(&p, n);
    let s = p.close(Duration::from_secs(5));
    assert_eq!((s.dropped_events, s.spooled_events), (0, 0), "{s:?}");
    let msgs = read_stream(&nats.url(), "DNSIGHT_EVENTS");
    check(&msgs, n, 64);
    let subjects: HashSet<&String> = msgs.iter().map(|(s, _)| s).collect();
    assert!(
        subjects.len() > 50,
        "700 clients spread over most of 64 partitions"
    );
}

#[test]
fn nats_restarted_while_publishing_spools_and_replays_in_order() {
    let Some(mut nats) = TestNats::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::start(cfg(&nats.url(), dir.path())).unwrap();
    let st = p.stats();
    let n = 60_000u64;
    let mut i = 0u64;
    let step = |p: &mut Publisher, i: &mut u64, k: u64| {
        let evs: Vec<DnsEvent> = (*i..(*i + k).min(n)).map(|j| ev(j, 300)).collect();
        *i = (*i + k).min(n);
        p.publish(&evs);
    };
    // a third live
    while i < n / 3 {
        step(&mut p, &mut i, 300);
    }
    p.flush();
    // NATS goes away while events keep coming
    nats.stop();
    let t0 = Instant::now();
    while i < 2 * n / 3 {
        step(&mut p, &mut i, 300);
        std::thread::sleep(Duration::from_millis(2));
    }
    p.flush();
    // wait until the spool holds something (at least the batches made while it was down)
    while st.snapshot().spooled_events == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "nothing was spooled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nats.resume();
    // the rest while the spool replays
    while i < n {
        step(&mut p, &mut i, 300);
    }
    p.flush();
    wait_published(&p, n);
    let s = p.close(Duration::from_secs(10));
    eprintln!("{s:?}");
    assert_eq!(s.dropped_events, 0, "{s:?}");
    assert!(
        s.spooled_events > 0 && s.replayed_events == s.spooled_events,
        "{s:?}"
    );
    let msgs = read_stream(&nats.url(), "DNSIGHT_EVENTS");
    check(&msgs, n, 64);
}

#[test]
fn a_full_spool_counts_the_rest_dropped_and_a_restart_replays_what_is_left() {
    // no server at all: a port nothing listens on
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("nats://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(&url, dir.path());
    c.spool_max_bytes = 64 << 10;
    let mut p = Publisher::start(c.clone()).unwrap();
    let n = 20_000u64;
    let evs: Vec<DnsEvent> = (0..n).map(|i| ev(i, 50)).collect();
    p.publish(&evs);
    p.flush();
    let st = p.stats();
    let end = Instant::now() + Duration::from_secs(20);
    while {
        let s = st.snapshot();
        s.spooled_events + s.dropped_events < n
    } {
        assert!(Instant::now() < end, "{:?}", st.snapshot());
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = p.close(Duration::from_secs(1));
    assert!(s.dropped_events > 0 && s.spooled_events > 0, "{s:?}");
    assert!(s.spool_bytes <= 64 << 10, "{s:?}");
    assert_eq!(s.published_events, 0);

    // a later sensor run with NATS up replays the spool it finds
    let Some(nats) = TestNats::start() else {
        return;
    };
    let mut c2 = c.clone();
    c2.url = nats.url();
    let p = Publisher::start(c2).unwrap();
    wait_published(&p, s.spooled_events);
    let s2 = p.close(Duration::from_secs(5));
    assert_eq!(s2.replayed_events, s.spooled_events, "{s2:?}");
    let msgs = read_stream(&nats.url(), "DNSIGHT_EVENTS");
    let got: u64 = msgs.iter().map(|(_, e)| e.len() as u64).sum();
    assert_eq!(got, s.spooled_events);
}
