//! `dnsight sensor` against a real `nats-server -js` (started by the test): a JSON-lines file
//! of events is published to JetStream, each event on its partition's subject, in order; and
//! `dnsight serve` with `[bus]` publishes the resolver's own events; a sensor following a file
//! while nats-server is stopped and started spools to disk and replays in order, nothing lost.

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
    wait_stream_where(&nats.url(), 5, "the resolver's events", |e| {
        e.qname.as_str() == "www.usual.example"
    });
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

/// Events `from..to` as JSON lines: event `i` is client `i % 120`, its time unique.
fn lines(from: u64, to: u64) -> String {
    let mut s = String::new();
    for i in from..to {
        let c = i % 120;
        s.push_str(&format!(
            "{{\"ts\":\"2026-11-29T04:00:{:02}.{:06}Z\",\"client\":\"10.8.0.{c}\",\"qname\":\"r{}.example.com\",\"qtype\":\"A\",\"rcode\":\"NOERROR\",\"source\":\"jsonl\"}}\n",
            i / 1000,
            (i % 1000) * 1000,
            i % 31
        ));
    }
    s
}

/// The events in the stream so far (0 while it does not exist yet).
fn stream_events(url: &str) -> Vec<(String, Vec<dnsight_model::DnsEvent>)> {
    std::panic::catch_unwind(|| read_stream(url, "DNSIGHT_EVENTS")).unwrap_or_default()
}

fn wait_stream(url: &str, n: usize, what: &str) {
    wait_stream_where(url, n, what, |_| true)
}

/// Waits (up to 60 s) until JetStream holds at least `n` events that `keep` accepts.
fn wait_stream_where(
    url: &str,
    n: usize,
    what: &str,
    keep: impl Fn(&dnsight_model::DnsEvent) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let got: usize = stream_events(url)
            .iter()
            .flat_map(|(_, e)| e)
            .filter(|e| keep(e))
            .count();
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < end,
            "{what}: {got} of {n} events in JetStream"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sensor_spools_to_disk_while_nats_restarts_and_replays_in_order() {
    let Some(mut nats) = TestNats::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let events = d.join("ev.jsonl");
    std::fs::write(&events, "").unwrap();
    let spool = d.join("spool");
    std::fs::write(
        d.join("sensor.toml"),
        format!(
            "[bus]\nurl = \"{}\"\nspool_dir = \"{}\"\npartitions = 16\nbatch_events = 50\nmax_delay_ms = 20\nack_timeout_ms = 500\nsensor = \"t2\"\n\n[[source]]\nkind = \"jsonl\"\npath = \"{}\"\n",
            nats.url(),
            spool.display(),
            events.display()
        ),
    )
    .unwrap();
    let mut s = Proc::spawn(
        "dnsight sensor",
        bin()
            .args(["sensor", "--config"])
            .arg(d.join("sensor.toml"))
            .env("RUST_LOG", "info"),
    );
    s.wait_line("passive source started");
    let append = |from: u64, to: u64| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&events)
            .unwrap();
        f.write_all(lines(from, to).as_bytes()).unwrap();
        f.flush().unwrap();
    };
    let n = 6000u64;
    // a third with NATS up
    append(0, n / 3);
    wait_stream(&nats.url(), (n / 3) as usize, "live");
    // NATS goes away; the next third goes to the spool file on disk
    nats.stop();
    append(n / 3, 2 * n / 3);
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let len = std::fs::metadata(spool.join("spool.dat"))
            .map(|m| m.len())
            .unwrap_or(0);
        if len > 0 {
            break;
        }
        assert!(
            Instant::now() < end,
            "nothing reached the spool file while NATS was down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // NATS is back: the spool replays while the last third arrives
    nats.resume();
    append(2 * n / 3, n);
    wait_stream(&nats.url(), n as usize, "after the restart");
    let (status, out) = s.term(Duration::from_secs(60));
    assert!(status.success(), "sensor: {}", out.join("\n"));
    let last = out
        .iter()
        .rev()
        .find(|l| l.starts_with("dnsight sensor:"))
        .unwrap_or_else(|| panic!("no summary line:\n{}", out.join("\n")));
    let num = |after: &str| -> u64 {
        let w: Vec<&str> = last.split_whitespace().collect();
        let i = w
            .iter()
            .position(|x| *x == after)
            .unwrap_or_else(|| panic!("{after:?} in {last}"));
        w[i - 1].parse().unwrap()
    };
    eprintln!("{last}");
    let (spooled, replayed) = (num("spooled"), num("replayed,"));
    assert!(spooled > 0 && replayed == spooled, "{last}");
    assert!(
        last.contains(" 0 dropped, 0 bytes left in the spool"),
        "{last}"
    );
    // every event exactly once, on its partition's subject, each client's in order
    let msgs = stream_events(&nats.url());
    let mut seen = std::collections::HashSet::new();
    let mut prev = std::collections::HashMap::new();
    for (subject, evs) in &msgs {
        for e in evs {
            assert_eq!(
                subject,
                &format!("dnsight.events.{}", dnsight_model::partition(e.client, 16))
            );
            assert!(seen.insert(e.ts), "{e:?} twice");
            if let Some(p) = prev.insert(e.client, e.ts) {
                assert!(p < e.ts, "{} out of order", e.client);
            }
        }
    }
    assert_eq!(seen.len() as u64, n, "every event once");
}
