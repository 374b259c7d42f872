//! `dnsight sensor` against a real `nats-server -js` (started by the test): a JSON-lines file
//! of events is published to JetStream, each event on its partition's subject, in order; and
//! `dnsight serve` with `[bus]` publishes the resolver's own events.

use crate::triage::{bin, dig, free_port, start_nsd, which, Proc};
use dnsight_bus::testing::{read_stream, TestNats};
use std::time::{Duration, Instant};

#[test]
fn sensor_publishes_a_file_per_partition_in_order() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lines = String::new();
    let n = 5000;
    for i in 0..n {
        let c = i % 250;
        lines.push_str(&format!(
            "{{\"ts\":\"2026-11-29T02:{:02}:{:02}.{:06}Z\",\"client\":\"10.9.{}.{}\",\"qname\":\"q{}.example.com\",\"qtype\":\"A\",\"rcode\":\"NOERROR\",\"source\":\"jsonl\"}}\n",
            i / 60000 % 60, i / 1000 % 60, (i % 1000) * 1000, c / 256, c % 256, i
        ));
    }
    std::fs::write(d.join("events.jsonl"), lines).unwrap();
    std::fs::write(
        d.join("sensor.toml"),
        format!(
            "[bus]\nurl = \"{}\"\nspool_dir = \"{}\"\npartitions = 16\nbatch_events = 100\nsensor = \"t1\"\n",
            nats.url(),
            d.join("spool").display()
        ),
    )
    .unwrap();
    let o = bin()
        .args(["sensor", "--config"])
        .arg(d.join("sensor.toml"))
        .arg(d.join("events.jsonl"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "sensor: {err}");
    assert!(err.contains(&format!("{n} events published")), "{err}");
    let msgs = read_stream(&nats.url(), "DNSIGHT_EVENTS");
    let mut total = 0;
    let mut last = std::collections::HashMap::new();
    for (subject, evs) in &msgs {
        for e in evs {
            total += 1;
            assert_eq!(
                subject,
                &format!("dnsight.events.{}", dnsight_model::partition(e.client, 16))
            );
            if let Some(prev) = last.insert(e.client, e.ts) {
                assert!(prev < e.ts, "in order per device");
            }
        }
    }
    assert_eq!(total, n);
    // an unusable config is a clear error
    std::fs::write(d.join("bad.toml"), "[bus]\nurl = \"http://x\"\n").unwrap();
    let o = bin()
        .args(["sensor", "--config"])
        .arg(d.join("bad.toml"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nats://"));
}

#[test]
fn serve_with_bus_publishes_the_resolvers_events() {
    if !which("nsd") || !which("dig") {
        eprintln!("SKIP: nsd or dig not installed (scripts/test.sh installs them)");
        return;
    }
    let Some(nats) = TestNats::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nsd = start_nsd(d);
    std::fs::write(
        d.join("serve.toml"),
        format!("[bus]\nurl = \"{}\"\nmax_delay_ms = 20\n", nats.url()),
    )
    .unwrap();
    let port = free_port();
    let mut p = Proc::spawn(
        "dnsight serve",
        bin()
            .args([
                "serve",
                "--no-analysis",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--upstream")
            .arg(nsd.addr.to_string())
            .arg("--config")
            .arg(d.join("serve.toml"))
            .arg("--state")
            .arg(d.join("state"))
            .env("RUST_LOG", "info"),
    );
    p.wait_line("resolver ready");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..5 {
        assert_eq!(dig(addr, "www.usual.example", None).1, "NOERROR");
    }
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let got: usize = std::panic::catch_unwind(|| read_stream(&nats.url(), "DNSIGHT_EVENTS"))
            .map(|m| {
                m.iter()
                    .flat_map(|(_, e)| e)
                    .filter(|e| e.qname.as_str() == "www.usual.example")
                    .count()
            })
            .unwrap_or(0);
        if got >= 5 {
            break;
        }
        assert!(
            Instant::now() < end,
            "the resolver's events did not reach JetStream ({got})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sensor_to_worker_to_postgres() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let Some(pg) = dnsight_pgstore::testing::TestPg::shared() else {
        return;
    };
    let url = pg.fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("intel.txt"), "c2.bad.example\n").unwrap();
    let mut lines = String::new();
    for i in 0..200 {
        let q = if i == 150 {
            "c2.bad.example".to_string()
        } else {
            format!("w{}.usual.example", i % 9)
        };
        lines.push_str(&format!(
            "{{\"ts\":\"2026-11-29T03:00:{:02}.{:06}Z\",\"client\":\"10.7.0.{}\",\"qname\":\"{q}\",\"qtype\":\"A\",\"rcode\":\"NOERROR\",\"source\":\"jsonl\"}}\n",
            i / 10, (i % 10) * 1000, i % 20
        ));
    }
    std::fs::write(d.join("events.jsonl"), lines).unwrap();
    std::fs::write(
        d.join("c.toml"),
        format!(
            "[bus]\nurl = \"{}\"\nspool_dir = \"{}\"\npartitions = 8\n\n[store]\nurl = \"{url}\"\n",
            nats.url(),
            d.join("spool").display()
        ),
    )
    .unwrap();
    let o = bin()
        .args(["sensor", "--config"])
        .arg(d.join("c.toml"))
        .arg(d.join("events.jsonl"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut w = Proc::spawn(
        "dnsight worker",
        bin()
            .args(["worker", "--config"])
            .arg(d.join("c.toml"))
            .arg("--state")
            .arg(d.join("state"))
            .arg("--intel")
            .arg(d.join("intel.txt"))
            .args(["--learn-days", "0", "--partitions", "0-7"])
            .env("RUST_LOG", "info"),
    );
    w.wait_line("reading its partitions");
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM alerts WHERE kind = 'threat_intel' AND destination LIKE '%bad.example'",
                &[],
            )
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < end,
            "no threat_intel alert in PostgreSQL from the worker"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
