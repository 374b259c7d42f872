//! Publish throughput into JetStream on loopback: a real `nats-server -js` (temporary
//! directory, free port), the sensor's [`Publisher`] with its defaults (64 partitions,
//! batches of 1000, one batch in flight), N synthetic events from D devices. Prints events/s
//! until the last batch is acknowledged, and bytes per event on the wire.
//!
//! `cargo run --release -p dnsight-bus --example publish_bench -- [EVENTS] [DEVICES]`

use dnsight_bus::testing::TestNats;
use dnsight_bus::{BusConfig, Publisher};
use std::time::{Duration, Instant};

fn main() {
    let mut a = std::env::args().skip(1);
    let n: u64 = a.next().and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let devices: u64 = a.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let nats = TestNats::start().expect("nats-server is needed (apt-get install nats-server)");
    let dir = tempfile::tempdir().unwrap();
    let cfg = BusConfig::new(&nats.url(), dir.path().join("spool"));
    let events = dnsight_bus::testing::synthetic_events(0..n.min(1_000_000), devices);
    let mut p = Publisher::start(cfg).unwrap();
    let st = p.stats();
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(events.len() as u64) as usize;
        for c in events[..k].chunks(4096) {
            p.publish(c);
        }
        sent += k as u64;
    }
    p.flush();
    let t_made = t0.elapsed();
    while st.snapshot().published_events < n {
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "{:?}",
            st.snapshot()
        );
    }
    let t = t0.elapsed();
    let s = p.close(Duration::from_secs(5));
    let bytes = dnsight_bus::codec::encode(&events[..1000]).len() as f64 / 1000.0;
    println!(
        "publish_bench: {n} events from {devices} devices in {:.2} s = {:.0} events/s into JetStream \
         ({} batches, {:.1} bytes/event encoded, {:.2} s to encode and hand over; spooled {}, dropped {})",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64(),
        s.published_batches,
        bytes,
        t_made.as_secs_f64(),
        s.spooled_events,
        s.dropped_events
    );
}
