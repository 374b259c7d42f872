//! The query log through the API (filters, keyset pages, CSV with hostile names, links from
//! devices and destinations, stats) and `/metrics` checked by Prometheus's own `promtool`.

use super::*;
use dnsight_model::{Name, Ts, Verdict, VerdictAction};
use dnsight_triage::{QueryLog, QueryLogConfig};

/// Writes the rows through the real batching writer, then starts the API fixture with the
/// writer's handle and event metrics attached.
fn fixture_with_log(evs: &[DnsEvent]) -> (Fx, QueryLog) {
    let fx = fixture();
    let (log, w) = QueryLog::spawn(&fx.dir, &QueryLogConfig::default()).unwrap();
    let metrics = dnsight_api::EventMetrics::default();
    for e in evs {
        log.log(e);
        metrics.observe(e);
    }
    let stats = w.close();
    assert_eq!(stats.written, evs.len() as u64);
    // a second API on the same store, with the live values
    let mut c = ApiConfig::new("127.0.0.1:0".parse().unwrap());
    c.live = dnsight_api::Live {
        querylog: Some(log.clone()),
        resolver: Some(std::sync::Arc::new(|| {
            vec![
                ("queries", "Queries received.", 7),
                ("cache_hits", "Answered from the packet cache.", 3),
                ("cache_misses", "Forwarded upstream.", 4),
            ]
        })),
        events: Some(metrics),
    };
    // the resolver's ingestion-health meter, as `serve` counts it
    let m = fx
        .run
        .as_ref()
        .unwrap()
        .producer()
        .meter("resolver", "resolver");
    m.events(evs.len() as u64);
    m.dropped(2);
    let mut fx = fx;
    let api2 = dnsight_api::start(c, fx.run.as_ref().unwrap().handle(), fx.dir.clone()).unwrap();
    fx.url = api2.url();
    if let Some(old) = fx.api.replace(api2) {
        old.shutdown();
    }
    (fx, log)
}

fn qev(sec: i64, client: &str, name: &str, qtype: u16) -> DnsEvent {
    let mut e = DnsEvent::new(
        Ts::from_secs(sec),
        client.parse().unwrap(),
        Name::parse_lenient(name),
        qtype,
    );
    e.source = dnsight_model::Source::Resolver;
    e.verdict = Some(Verdict {
        action: VerdictAction::Forwarded,
        rule: None,
    });
    e.rtt_us = Some(2500);
    e
}

fn events() -> Vec<DnsEvent> {
    let t = now() - 3600;
    let mut v = Vec::new();
    for i in 0..120 {
        let client = if i % 3 == 0 { "10.0.0.5" } else { "10.0.0.6" };
        let mut e = qev(
            t + i,
            client,
            &format!("h{i}.corp.example"),
            if i % 2 == 0 { 1 } else { 28 },
        );
        if i % 10 == 0 {
            e.rcode = Some(3);
        }
        v.push(e);
    }
    // attacker-chosen names: CSV and formula injection, quotes, markup
    for (i, n) in [
        "=cmd|' /C calc'!A0.evil.example",
        "a,b\"c.evil.example",
        HOSTILE,
    ]
    .iter()
    .enumerate()
    {
        let mut e = qev(t + 200 + i as i64, "10.0.0.7", n, 16);
        e.verdict = Some(Verdict {
            action: VerdictAction::Blocked,
            rule: Some("blocklist:bad.txt".into()),
        });
        e.rtt_us = None;
        v.push(e);
    }
    v
}

fn get_accept(fx: &Fx, path: &str, token: &str, accept: &str) -> (u16, String, String) {
    let r = agent()
        .get(&format!("{}{path}", fx.url))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Accept", accept)
        .call();
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let ct = resp.header("content-type").unwrap_or("").to_string();
    (resp.status(), ct, resp.into_string().unwrap())
}

#[test]
fn queries_filter_page_and_export_csv_safely() {
    let (fx, _log) = fixture_with_log(&events());
    json_err(&call(&fx, "GET", "/api/v1/queries", None, None), 401);

    // every row once, across keyset pages
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/queries?limit=25&cursor={}", urlenc(c)),
            None => "/api/v1/queries?limit=25".to_string(),
        };
        let v = json_ok(&get(&fx, &path, &fx.viewer));
        for r in v["rows"].as_array().unwrap() {
            seen.push(r["id"].as_i64().unwrap());
        }
        match v["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 123);
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), 123);

    let v = json_ok(&get(
        &fx,
        "/api/v1/queries?device=10.0.0.5&since=2h&limit=1000",
        &fx.viewer,
    ));
    assert_eq!(v["rows"].as_array().unwrap().len(), 40);
    let v = json_ok(&get(
        &fx,
        "/api/v1/queries?suffix=corp.example&type=AAAA&rcode=NOERROR",
        &fx.viewer,
    ));
    assert_eq!(v["rows"].as_array().unwrap().len(), 60);
    let v = json_ok(&get(
        &fx,
        "/api/v1/queries?name=h10.corp.example",
        &fx.viewer,
    ));
    assert_eq!(v["rows"][0]["rcode"], "NXDOMAIN");
    assert_eq!(v["rows"][0]["upstream_us"], 2500);
    // one transaction per row here (each name once a second): count 1
    assert_eq!(v["rows"][0]["count"], 1);
    let v = json_ok(&get(&fx, "/api/v1/queries?blocked=true", &fx.viewer));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r["blocked"] == "blocklist:bad.txt" && r["client"] == "10.0.0.7"));
    // the hostile name comes back as stored (escaped presentation form), inside JSON strings
    assert!(rows
        .iter()
        .any(|r| r["name"].as_str().unwrap().contains("<script>")));

    for bad in [
        "type=NOPE",
        "rcode=x",
        "blocked=maybe",
        "limit=0",
        "limit=10001",
        "cursor=zz",
        "device=nope",
        "since=yesterday",
        "format=xml",
        "bogus=1",
    ] {
        json_err(
            &get(&fx, &format!("/api/v1/queries?{bad}"), &fx.viewer),
            400,
        );
    }

    // CSV: by format= and by Accept
    let (st, ct, body) = get_accept(
        &fx,
        "/api/v1/queries?blocked=true&format=csv",
        &fx.viewer,
        "*/*",
    );
    assert_eq!(st, 200, "{body}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let (st2, ct2, body2) = get_accept(&fx, "/api/v1/queries?blocked=true", &fx.viewer, "text/csv");
    assert_eq!((st2, ct2.starts_with("text/csv")), (200, true));
    assert_eq!(body, body2);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "time,client,name,type,rcode,answers,action,blocked,upstream_us,source,transport,count"
    );
    assert_eq!(lines.len(), 4, "{body}");
    // the formula name is quoted and defused, the comma/quote name quoted and doubled
    // (names are stored lowercased, with spaces as \032)
    assert!(
        body.contains("\"'=cmd|'\\032/c\\032calc'!a0.evil.example\""),
        "{body}"
    );
    assert!(body.contains("\"a,b\\\"\"c.evil.example\""), "{body}");
    for l in &lines[1..] {
        assert!(!l.starts_with('=') && !l.contains(",="), "{l}");
    }
}

#[test]
fn devices_and_destinations_link_to_their_queries_and_stats_show_the_log() {
    let (fx, _log) = fixture_with_log(&events());
    story(&fx);
    let one = json_ok(&get(&fx, "/api/v1/devices/10.0.0.5", &fx.viewer));
    assert_eq!(one["queries"], "/api/v1/queries?device=10.0.0.5");
    let dest = get(&fx, "/api/v1/destinations/evil.example", &fx.viewer);
    if dest.0 == 200 {
        assert_eq!(
            json_ok(&dest)["queries"],
            "/api/v1/queries?suffix=evil.example"
        );
    }
    let s = json_ok(&get(&fx, "/api/v1/stats", &fx.viewer));
    assert_eq!(s["querylog"]["rows"], 123, "{s}");
    assert!(s["querylog"]["file_bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["querylog"]["writer"]["written"], 123);
    assert_eq!(s["querylog"]["writer"]["dropped"], 0);
    let src = &s["sources"][0];
    assert_eq!(
        (&src["name"], &src["events"], &src["dropped"], &src["up"]),
        (
            &serde_json::json!("resolver"),
            &serde_json::json!(123),
            &serde_json::json!(2),
            &serde_json::json!(true)
        ),
        "{s}"
    );
}

#[test]
fn metrics_pass_promtool_and_cover_every_family() {
    let (fx, _log) = fixture_with_log(&events());
    story(&fx);
    let m = call(&fx, "GET", "/metrics", Some(&fx.viewer), None);
    assert_eq!(m.0, 200);
    let text = m.1;
    for series in [
        "dnsight_pipeline_events_total 5",
        "dnsight_notifications{state=\"failed\"} 0",
        "dnsight_resolver_cache_hits_total 3",
        "dnsight_resolver_cache_misses_total 4",
        "dnsight_queries_total{source=\"resolver\",transport=\"udp\",rcode=\"NXDOMAIN\"} 12",
        "dnsight_queries_blocked_total 3",
        "dnsight_upstream_latency_seconds_count 120",
        "dnsight_querylog_rows_written_total 123",
        "dnsight_querylog_stored_rows_total 123",
        "dnsight_querylog_rows_dropped_total 0",
        "dnsight_querylog_queue_depth 0",
        "dnsight_querylog_commit_seconds_count",
        "dnsight_engine_events_total 5",
        "dnsight_engine_findings_total{kind=\"policy\"}",
        "dnsight_engine_detector_seconds_total{detector=\"policy\"}",
        "dnsight_querylog_yields_total 0",
        "dnsight_alerts_by_kind{kind=\"policy\",severity=",
        "dnsight_alerts{status=\"open\"}",
        "dnsight_source_events_total{source=\"resolver\",kind=\"resolver\"} 123",
        "dnsight_source_dropped_total{source=\"resolver\",kind=\"resolver\"} 2",
        "dnsight_source_rejected_total{source=\"resolver\",kind=\"resolver\"} 0",
        "dnsight_source_up{source=\"resolver\",kind=\"resolver\"} 1",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(promtool) = promtool else {
        eprintln!("SKIPPED promtool check: promtool not installed (Debian package `prometheus`; scripts/test.sh installs it)");
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{said}\n---\n{text}"
    );
    // promtool's lint findings (names, units, help) fail the check too: none are expected
    assert!(said.trim().is_empty(), "promtool: {said}");
}
