//! The worker's reading side against a real `nats-server -js`: partitions read from their
//! positions come out merged in time order; a reader stopped anywhere (mid-message too) and
//! started again from its positions hands out every later event exactly once; checkpoints
//! round-trip through the object store.

use dnsight_bus::consume::{Checkpoints, ConsumeStats, Position, Reader};
use dnsight_bus::testing::TestNats;
use dnsight_bus::{BusConfig, Publisher};
use dnsight_model::{partition, DnsEvent, Name, Ts};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BASE: i64 = 1_800_000_000_000_000;

fn ev(i: u64) -> DnsEvent {
    let c = i % 50;
    DnsEvent::new(
        Ts::from_micros(BASE + i as i64 * 1000),
        std::net::IpAddr::from([10, 2, 0, c as u8]),
        Name::parse(&format!("n{}.example", i % 13)).unwrap(),
        1,
    )
}

fn publish(url: &str, dir: &std::path::Path, n: u64) {
    let mut c = BusConfig::new(url, dir.join("spool"));
    c.partitions = 8;
    c.batch_events = 37;
    c.sensor = "t".into();
    let mut p = Publisher::start(c).unwrap();
    let evs: Vec<DnsEvent> = (0..n).map(ev).collect();
    p.publish(&evs);
    p.flush();
    let st = p.stats();
    let end = Instant::now() + Duration::from_secs(30);
    while st.snapshot().published_events < n {
        assert!(Instant::now() < end, "{:?}", st.snapshot());
        std::thread::sleep(Duration::from_millis(20));
    }
    p.close(Duration::from_secs(5));
}

fn read_all(r: &mut Reader, want: usize) -> Vec<DnsEvent> {
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while out.len() < want {
        assert!(Instant::now() < end, "read {} of {want}", out.len());
        out.extend(r.next_batch(100, Duration::from_millis(50)));
    }
    out
}

#[test]
fn merged_in_time_order_and_resumed_exactly_once() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 3000u64;
    publish(&nats.url(), dir.path(), n);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let js = rt
        .block_on(dnsight_bus::consume::connect(&nats.url()))
        .unwrap();
    let stats = Arc::new(ConsumeStats::default());
    let mk = || {
        Reader::new(
            rt.handle().clone(),
            js.clone(),
            "DNSIGHT_EVENTS",
            "dnsight.events",
            stats.clone(),
        )
    };
    // a reader of partitions 0-3 from the start: their events, in time order
    let mine: Vec<u32> = (0..4).collect();
    let expect: Vec<i64> = (0..n)
        .map(ev)
        .filter(|e| mine.contains(&partition(e.client, 8)))
        .map(|e| e.ts.micros())
        .collect();
    let mut r = mk();
    for &p in &mine {
        r.add(p, Position::default());
    }
    // stop somewhere in the middle (batches of 100 do not line up with messages of 37)
    let first = read_all(&mut r, expect.len() / 2);
    let positions: Vec<(u32, Position)> =
        mine.iter().map(|&p| (p, r.position(p).unwrap())).collect();
    assert!(
        positions.iter().any(|(_, x)| x.skip > 0),
        "stopped mid-message somewhere: {positions:?}"
    );
    drop(r);
    // the positions through the object store, then a new reader from them
    let ck = rt
        .block_on(Checkpoints::open(&js, "test-checkpoints"))
        .unwrap();
    for (p, pos) in &positions {
        rt.block_on(ck.save(*p, *pos, format!("state {p}").as_bytes()))
            .unwrap();
    }
    let mut r = mk();
    for &p in &mine {
        let (pos, state) = rt.block_on(ck.load(p)).unwrap().unwrap();
        assert_eq!(state, format!("state {p}").as_bytes());
        r.add(p, pos);
    }
    assert!(rt.block_on(ck.load(7)).unwrap().is_none());
    let rest = read_all(&mut r, expect.len() - first.len());
    // and nothing more: half a second of asking gives nothing
    let quiet = Instant::now() + Duration::from_millis(500);
    while Instant::now() < quiet {
        let more = r.next_batch(100, Duration::from_millis(50));
        assert!(more.is_empty(), "nothing more, got {} events", more.len());
    }
    let got: Vec<i64> = first.iter().chain(&rest).map(|e| e.ts.micros()).collect();
    assert_eq!(got, expect, "every event once, in time order");
    // the readers count what they received (the first one may have read ahead of what it
    // handed out, so at least every event)
    use std::sync::atomic::Ordering::Relaxed;
    assert!(stats.events.load(Relaxed) >= expect.len() as u64);
    assert!(stats.batches.load(Relaxed) > 0);
    assert_eq!(stats.bad_batches.load(Relaxed), 0);
}
