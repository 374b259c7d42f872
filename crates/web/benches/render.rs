//! Server render time of every dashboard page with 1,000 devices in the engine and 100,000
//! alerts in the triage store. Prints, per page, the median and 95th percentile of the
//! server's own render time (`Server-Timing: render;dur=`, from the request reaching the
//! dashboard to the finished page) and of the whole HTTP round trip on loopback.
//!
//! The query log holds `QUERIES` rows over the last 7 days (event time), spread over the
//! devices, 5% NXDOMAIN and 1% blocked: the overview's and the device pages' charts read it.
//!
//! `cargo bench -p dnsight-web --bench render` (add `-- DEVICES ALERTS ROUNDS QUERIES` to change
//! the sizes; defaults 1000 100000 30 10000000). Writing 10 million query-log rows takes
//! minutes: with `DNSIGHT_BENCH_DIR=DIR` the store is built there once and reused by later runs
//! of the same sizes (delete the directory to rebuild it).

use dnsight_engine::{Alert, Engine, EngineConfig, Kind, Severity, Status};
use dnsight_model::{DnsEvent, Ts};
use dnsight_pipeline::{Outputs, Pipeline, PipelineConfig};
use dnsight_triage::{Role, SqliteStore, TriageStore};
use std::time::{Duration, Instant};

fn event(ts: i64, client: &str, qname: &str) -> DnsEvent {
    serde_json::from_value(
        // answered with an address: only resolved names join a device's baseline
        serde_json::json!({"ts": ts, "client": client, "qname": qname, "rcode": "NOERROR",
            "answers": [{"name": qname, "type": "A", "ttl": 300, "data": "192.0.2.7"}]}),
    )
    .expect("event")
}

fn device(i: usize) -> String {
    format!("10.{}.{}.{}", i / 62_500 % 250, i / 250 % 250, i % 250 + 1)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let devices = args.first().copied().unwrap_or(1000);
    let alerts = args.get(1).copied().unwrap_or(100_000);
    let rounds = args.get(2).copied().unwrap_or(30);
    let queries = args.get(3).copied().unwrap_or(10_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let (path, reuse) = match std::env::var_os("DNSIGHT_BENCH_DIR") {
        Some(d) => (std::path::PathBuf::from(d), true),
        None => (tmp.path().to_path_buf(), false),
    };
    let marker = path.join("bench-sizes");
    let sizes = format!("{devices} {alerts} {queries}");
    let built = reuse && std::fs::read_to_string(&marker).ok().as_deref() == Some(sizes.as_str());
    let now = match std::fs::read_to_string(path.join("bench-now")) {
        Ok(t) if built => t.trim().parse().unwrap(),
        _ => dnsight_pipeline::now_secs(),
    };
    if !built {
        build_store(&path, devices, alerts, queries, now);
        std::fs::write(path.join("bench-now"), now.to_string()).unwrap();
        std::fs::write(&marker, &sizes).unwrap();
    } else {
        println!("store: reused {} ({sizes})", path.display());
    }
    run(&path, devices, rounds, now);
}

fn build_store(path: &std::path::Path, devices: usize, alerts: usize, queries: usize, now: i64) {
    let _ = std::fs::remove_dir_all(path);
    // the store: 100k alerts over the devices, kinds and severities mixed
    let t0 = Instant::now();
    let mut st = SqliteStore::open(path).unwrap();
    let kinds = Kind::ALL;
    let mut batch = Vec::with_capacity(1000);
    for i in 0..alerts {
        let k = kinds[i % kinds.len()];
        let sev = Severity::ALL[(i / 7) % 5];
        let dev = device(i % devices);
        let first = now - 30 * 86_400 + (i as i64 * 26);
        batch.push(Alert {
            id: format!("{i:016x}"),
            kind: k,
            severity: sev,
            score: 20 + (i % 80) as u8,
            device: dev.clone(),
            device_name: Some(format!("host-{}", i % devices)),
            group: Some(format!("g{}", i % 12)),
            destination: format!("d{}.example{}.com", i % 5000, i % 7),
            first_seen: Ts::from_secs(first),
            last_seen: Ts::from_secs(first + 3600),
            count: 1 + (i % 50) as u64,
            summary: format!("{dev} resolved d{}.example{}.com, which is new for it.", i % 5000, i % 7),
            evidence: serde_json::json!({"qname": format!("www.d{}.example.com", i % 5000), "device_destinations": 120,
                "org_devices_using": i % 9, "interval_histogram": {"<10s": 0, "<30s": 1, "<1m": 3, "<5m": 40, "<15m": 2, "<1h": 0, "<6h": 0, ">=6h": 0},
                "interval_median_s": 120.0, "sample_queries": [format!("www.d{}.example.com A NOERROR", i % 5000)]}),
            status: Status::Open,
            devices: vec![dev],
            device_count: 1,
            own_score: 40.0,
        });
        if batch.len() == 1000 {
            st.upsert_alerts(&batch, now).unwrap();
            batch.clear();
        }
    }
    st.upsert_alerts(&batch, now).unwrap();
    let hash = dnsight_web::hash_password("bench-password").unwrap();
    st.upsert_user("bench", Role::Admin, &hash, false, "bench", now)
        .unwrap();
    drop(st);
    println!(
        "store: {alerts} alerts over {devices} devices in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // the query log: the last 7 days, every device in turn
    let t0 = Instant::now();
    let cfg = dnsight_triage::QueryLogConfig {
        retention_days: None,
        max_bytes: None,
        ..Default::default()
    };
    let (log, writer) = dnsight_triage::QueryLog::spawn(path, &cfg).unwrap();
    let span_us = 7 * 86_400 * 1_000_000_i64;
    let start_us = now * 1_000_000 - span_us;
    let addrs: Vec<std::net::IpAddr> = (0..devices).map(|d| device(d).parse().unwrap()).collect();
    for i in 0..queries {
        let name: String = format!("www.site{}.example{}.com", i % 3000, i % 7)
            .chars()
            .rev()
            .collect();
        let mut row = dnsight_triage::querylog::LogRow {
            ts_us: start_us + (i as i64) * (span_us / queries.max(1) as i64),
            client: addrs[i % devices],
            rname: name,
            qtype: 1,
            rcode: Some(if i % 20 == 0 { 3 } else { 0 }),
            answers: None,
            action: None,
            blocked: (i % 100 == 0).then(|| "bench".to_string()),
            upstream_us: None,
            source: dnsight_model::Source::Resolver,
            transport: dnsight_model::Transport::Udp,
        };
        loop {
            match log.try_log_row(row) {
                Ok(()) => break,
                Err(r) => {
                    row = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    let ws = writer.close();
    println!(
        "query log: {} rows written in {:.1}s",
        ws.written,
        t0.elapsed().as_secs_f64()
    );
}

fn run(path: &std::path::Path, devices: usize, rounds: usize, now: i64) {
    let path = path.to_path_buf();

    // the engine: every device with 20 destinations
    let p = Pipeline::new(
        Engine::new(EngineConfig::default()),
        Some(Box::new(SqliteStore::open(&path).unwrap())),
        Outputs::default(),
        PipelineConfig::default(),
    )
    .unwrap();
    let run = dnsight_pipeline::spawn(p).unwrap();
    let prod = run.producer();
    let mut evs = Vec::new();
    for d in 0..devices {
        for j in 0..20 {
            evs.push(event(
                now - 3 * 86_400 + (j * 3600) as i64,
                &device(d),
                &format!("www.site{}.example{}.com", (d + j) % 3000, j % 7),
            ));
        }
        if evs.len() >= 10_000 {
            prod.send(std::mem::take(&mut evs));
        }
    }
    prod.send(evs);
    let h = run.handle();
    let want = (devices * 20) as u64;
    let end = Instant::now() + Duration::from_secs(300);
    while h.stats().unwrap().events_in < want && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let es = h.stats().unwrap().engine;
    println!(
        "engine: {} devices, {} destinations",
        es.devices, es.destinations
    );

    let api = dnsight_api::start_mounted(
        dnsight_api::ApiConfig::new("127.0.0.1:0".parse().unwrap()),
        run.handle(),
        path.clone(),
        Some(dnsight_web::mount(Some(path.clone()))),
    )
    .unwrap();
    let base = api.url();
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    // sign in
    let login = agent.get(&format!("{base}/ui/login")).call().unwrap();
    let nonce_cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body = login.into_string().unwrap();
    let nonce = body
        .split("name=\"nonce\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = match agent
        .post(&format!("{base}/ui/login"))
        .set("Cookie", &nonce_cookie)
        .send_form(&[
            ("nonce", &nonce),
            ("user", "bench"),
            ("password", "bench-password"),
        ]) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let cookie = r
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("dnsight_session="))
        .expect("signed in")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // a destination the engine knows (some device's baseline)
    let dest = (0..devices)
        .find_map(|d| {
            h.device(device(d).parse().unwrap())
                .ok()
                .flatten()
                .and_then(|v| v.destinations.first().map(|x| x.name.clone()))
        })
        .expect("a destination in some device's baseline (the bench's events must resolve)");
    // the charts' counts are made in the background: wait for the first full count (the
    // overview's chart, then every device's sparkline), as a server that has run a minute has
    let t0 = Instant::now();
    let page = |p: &str| {
        agent
            .get(&format!("{base}{p}"))
            .set("Cookie", &cookie)
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default()
    };
    while !page("/ui/").contains("queries: ") && t0.elapsed() < Duration::from_secs(900) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = t0.elapsed().as_secs_f64();
    while page("/ui/devices").contains("counting…") && t0.elapsed() < Duration::from_secs(1800) {
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "charts: the query log counted for all devices in {all:.1}s, per device in {:.1}s (background, once)",
        t0.elapsed().as_secs_f64()
    );
    let pages = [
        ("overview", "/ui/".to_string()),
        ("alerts inbox (100k open)", "/ui/alerts".into()),
        (
            "alerts, one device",
            format!("/ui/alerts?device={}", device(7)),
        ),
        (
            "alerts, kind + severity",
            "/ui/alerts?kind=beaconing&severity=high&sort=last_seen".into(),
        ),
        ("alerts, page 100", "/ui/alerts?page=100".into()),
        ("alert page", format!("/ui/alerts/{:016x}", 4 + 12 * 3)),
        ("devices", "/ui/devices".into()),
        ("device page", format!("/ui/devices/{}", device(7))),
        ("destinations", "/ui/destinations".into()),
        ("destination page", format!("/ui/destinations/{dest}")),
        ("policy", "/ui/policy".into()),
        ("settings", "/ui/settings".into()),
        ("query log (form)", "/ui/queries".into()),
    ];
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>10}",
        "page", "render p50", "render p95", "round trip p50", "bytes"
    );
    for (name, p) in &pages {
        let mut render = Vec::new();
        let mut wall = Vec::new();
        let mut size = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let r = match agent
                .get(&format!("{base}{p}"))
                .set("Cookie", &cookie)
                .call()
            {
                Ok(r) => r,
                Err(e) => {
                    println!("{name:<28} not measured: {e}");
                    break;
                }
            };
            let st = r.header("server-timing").unwrap_or("").to_string();
            let body = r.into_string().unwrap();
            wall.push(t.elapsed().as_secs_f64() * 1000.0);
            size = body.len();
            render.push(
                st.strip_prefix("render;dur=")
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN),
            );
        }
        if render.is_empty() {
            continue;
        }
        let q = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() as f64 - 1.0) * q).round() as usize]
        };
        println!(
            "{:<28} {:>9.1} ms {:>9.1} ms {:>11.1} ms {:>10}",
            name,
            q(&mut render, 0.5),
            q(&mut render, 0.95),
            q(&mut wall, 0.5),
            size
        );
    }
    api.shutdown();
    run.stop();
}
