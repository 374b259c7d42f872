//! Write latency of the triage store, PostgreSQL against SQLite, on this machine: a real
//! PostgreSQL (`initdb` in a temporary directory, loopback, fsync on: its durable default) and
//! the SQLite file (WAL, synchronous=FULL). Per operation, p50 / p99 / max over R runs:
//! an engine upsert of 1 alert and of 100 alerts (one transaction each), an acknowledgement
//! (`act`), and a read of one alert.
//!
//! `cargo run --release -p dnsight-pgstore --example write_bench -- [RUNS]`

use dnsight_engine::{Alert, Kind, Severity, Status};
use dnsight_model::Ts;
use dnsight_pgstore::testing::TestPg;
use dnsight_pgstore::PgStore;
use dnsight_triage::{Act, Scope, SqliteStore, TriageStore};
use std::time::{Duration, Instant};

fn alert(i: u64) -> Alert {
    Alert {
        id: format!("a{i}"),
        kind: Kind::NewDestination,
        severity: Severity::Medium,
        score: 50,
        device: format!("10.0.{}.{}", (i >> 8) % 256, i % 256),
        device_name: None,
        group: Some("office".into()),
        destination: format!("d{i}.example.com"),
        first_seen: Ts::from_secs(1_800_000_000),
        last_seen: Ts::from_secs(1_800_000_100),
        count: 3,
        summary: format!("new destination d{i}.example.com"),
        evidence: serde_json::json!({"name": format!("www.d{i}.example.com"), "first": true}),
        status: Status::Open,
        devices: vec![format!("10.0.{}.{}", (i >> 8) % 256, i % 256)],
        device_count: 1,
        own_score: 0.5,
    }
}

fn pct(v: &mut [Duration]) -> String {
    v.sort();
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    )
}

fn bench(name: &str, s: &mut dyn TriageStore, runs: u64) {
    let now = 1_800_000_000;
    let mut one = Vec::new();
    let mut hundred = Vec::new();
    let mut ack = Vec::new();
    let mut read = Vec::new();
    for r in 0..runs {
        let t = Instant::now();
        s.upsert_alerts(&[alert(r)], now).unwrap();
        one.push(t.elapsed());
        let batch: Vec<Alert> = (0..100).map(|k| alert(1_000_000 + r * 100 + k)).collect();
        let t = Instant::now();
        s.upsert_alerts(&batch, now).unwrap();
        hundred.push(t.elapsed());
        let t = Instant::now();
        s.act(
            &format!("a{r}"),
            &Act::Ack {
                scope: Scope::All,
                until: None,
            },
            "bench",
            Some("ok"),
            now,
        )
        .unwrap();
        ack.push(t.elapsed());
        let t = Instant::now();
        s.get_alert(&format!("a{r}")).unwrap().unwrap();
        read.push(t.elapsed());
    }
    println!("write_bench {name:<10} upsert 1 alert    {}", pct(&mut one));
    println!(
        "write_bench {name:<10} upsert 100 alerts {}",
        pct(&mut hundred)
    );
    println!("write_bench {name:<10} ack (act)         {}", pct(&mut ack));
    println!(
        "write_bench {name:<10} get_alert         {}",
        pct(&mut read)
    );
}

fn main() {
    let runs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let pg = TestPg::start(true).expect("PostgreSQL is needed (apt-get install postgresql)");
    let mut p = PgStore::open(&pg.fresh_db()).unwrap();
    bench("postgresql", &mut p, runs);
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(dir.path()).unwrap();
    bench("sqlite", &mut s, runs);
}
