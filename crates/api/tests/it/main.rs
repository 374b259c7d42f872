//! The API for real: a server on 127.0.0.1:0 over a running pipeline (engine + SQLite triage
//! store in a temp dir), spoken to with a real HTTP client.

use dnsight_api::{ApiConfig, ApiServer};
use dnsight_engine::{Engine, EngineConfig, PolicyRule};
use dnsight_model::DnsEvent;
use dnsight_pipeline::{Outputs, Pipeline, PipelineConfig, Running};
use dnsight_triage::{Role, SqliteStore, TriageStore};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

mod intake_full;
mod querylog;
mod tls;

/// Destinations the fixture's devices resolve; every one is forbidden by policy, so each
/// (device, destination) raises a policy alert from the first event.
const HOSTILE: &str = "<script>alert(1)<\\/script>-\"q\".example";

struct Fx {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    run: Option<Running>,
    api: Option<ApiServer>,
    url: String,
    admin: String,
    analyst: String,
    viewer: String,
}

impl Drop for Fx {
    fn drop(&mut self) {
        if let Some(a) = self.api.take() {
            a.shutdown();
        }
        if let Some(r) = self.run.take() {
            r.stop();
        }
    }
}

fn now() -> i64 {
    dnsight_pipeline::now_secs()
}

fn engine_cfg() -> EngineConfig {
    EngineConfig {
        policy: vec![PolicyRule {
            group: None,
            deny: vec!["example".into()],
            allow_only: Vec::new(),
            allow_internal: true,
            reason: "test names only".into(),
            ..Default::default()
        }],
        ..EngineConfig::default()
    }
}

fn event(ts: i64, client: &str, qname: &str) -> DnsEvent {
    serde_json::from_value(json!({"ts": ts, "client": client, "qname": qname, "rcode": "NOERROR"}))
        .expect("event")
}

fn fixture_with(cfg: impl FnOnce(&mut ApiConfig)) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut tokens = SqliteStore::open(&path).expect("open store");
    let mut mk = |name: &str, role| {
        tokens
            .create_token(name, role, None, "test", now())
            .unwrap()
            .1
    };
    let admin = mk("root-admin", Role::Admin);
    let analyst = mk("ana \"the analyst\" <b>", Role::Analyst);
    let viewer = mk("vic-viewer", Role::Viewer);
    drop(tokens);
    let store = SqliteStore::open(&path).expect("open store");
    let p = Pipeline::new(
        Engine::new(engine_cfg()),
        Some(Box::new(store)),
        Outputs::default(),
        PipelineConfig {
            tick: Duration::from_millis(20),
            ..PipelineConfig::default()
        },
    )
    .expect("pipeline");
    let run = dnsight_pipeline::spawn(p).expect("spawn");
    let mut c = ApiConfig::new("127.0.0.1:0".parse().unwrap());
    c.intake = Some(dnsight_api::Intake(run.producer()));
    cfg(&mut c);
    let api = dnsight_api::start(c, run.handle(), path.clone()).expect("api");
    let url = api.url();
    Fx {
        _dir: dir,
        dir: path,
        run: Some(run),
        api: Some(api),
        url,
        admin,
        analyst,
        viewer,
    }
}

fn fixture() -> Fx {
    fixture_with(|_| {})
}

/// Feeds events and waits until the pipeline has analysed them and the store holds the alerts
/// (bounded wait on the pipeline's own counters, then a dry run, which flushes).
fn feed(fx: &Fx, events: Vec<DnsEvent>) {
    let h = fx.run.as_ref().unwrap().handle();
    let before = h.stats().unwrap().events_in;
    let n = events.len() as u64;
    assert!(fx.run.as_ref().unwrap().producer().send(events));
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.stats().unwrap().events_in < before + n {
        assert!(
            Instant::now() < deadline,
            "pipeline did not take the events"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = post(
        fx,
        "/api/v1/alerts/actions",
        &fx.analyst,
        json!({"action":"flag","filter":{},"dry_run":true}),
    );
    assert_eq!(r.0, 200, "{}", r.1);
}

/// The standard story: three devices, policy alerts on three destinations.
fn story(fx: &Fx) {
    let t = now() - 600;
    feed(
        fx,
        vec![
            event(t, "10.0.0.5", "a.evil.example"),
            event(t + 1, "10.0.0.5", "b.evil.example"),
            event(t + 2, "10.0.0.6", "c.bad.example"),
            event(t + 3, "10.0.0.5", "x.other.example"),
            event(t + 4, "10.0.0.7", &format!("www.{HOSTILE}")),
        ],
    );
}

// ---------------------------------------------------------------- a small HTTP client

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build()
}

/// (status, body, content-type, nosniff)
type Resp = (u16, String, String, bool);

fn call(fx: &Fx, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Resp {
    let mut req = agent().request(method, &format!("{}{path}", fx.url));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let r = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let ct = resp.header("content-type").unwrap_or("").to_string();
    let nosniff = resp.header("x-content-type-options") == Some("nosniff");
    (status, resp.into_string().unwrap(), ct, nosniff)
}

fn get(fx: &Fx, path: &str, token: &str) -> Resp {
    call(fx, "GET", path, Some(token), None)
}

fn post(fx: &Fx, path: &str, token: &str, body: Value) -> Resp {
    call(fx, "POST", path, Some(token), Some(&body.to_string()))
}

fn json_ok(r: &Resp) -> Value {
    assert!(r.0 < 300, "status {}: {}", r.0, r.1);
    assert!(r.2.starts_with("application/json"), "content-type {}", r.2);
    assert!(r.3, "nosniff missing");
    serde_json::from_str(&r.1).unwrap()
}

/// A 4xx with a JSON error that says something.
fn json_err(r: &Resp, status: u16) -> String {
    assert_eq!(r.0, status, "{}", r.1);
    assert!(
        r.2.starts_with("application/json"),
        "content-type {}: {}",
        r.2,
        r.1
    );
    let v: Value = serde_json::from_str(&r.1).expect("JSON error body");
    let e = v["error"].as_str().expect("error field").to_string();
    assert!(e.len() > 10, "{e}");
    e
}

fn alerts(fx: &Fx, query: &str) -> (u64, Vec<Value>) {
    let v = json_ok(&get(fx, &format!("/api/v1/alerts{query}"), &fx.viewer));
    (
        v["total"].as_u64().unwrap(),
        v["alerts"].as_array().unwrap().clone(),
    )
}

fn alert_on(fx: &Fx, device: &str, dest: &str) -> Value {
    let (_, all) = alerts(fx, "?limit=1000");
    all.into_iter()
        .find(|a| a["device"] == device && a["destination"] == dest)
        .unwrap_or_else(|| panic!("no alert on {device} {dest}"))
}

// ---------------------------------------------------------------- auth

#[test]
fn health_is_open_everything_else_needs_a_token() {
    let fx = fixture();
    let h = json_ok(&call(&fx, "GET", "/api/v1/health", None, None));
    assert_eq!(h["status"], "ok");
    assert!(h["version"].is_string());
    for (m, p) in [
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/alerts/x"),
        ("POST", "/api/v1/alerts/x/actions"),
        ("POST", "/api/v1/alerts/actions"),
        ("GET", "/api/v1/devices"),
        ("GET", "/api/v1/devices/10.0.0.5"),
        ("GET", "/api/v1/destinations/evil.example"),
        ("GET", "/api/v1/blocks"),
        ("POST", "/api/v1/blocks"),
        ("DELETE", "/api/v1/blocks/1"),
        ("GET", "/api/v1/stats"),
        ("GET", "/api/v1/kinds"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/notifications"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/1"),
        ("POST", "/api/v1/intel/reload"),
        ("GET", "/metrics"),
    ] {
        let body = (m == "POST").then_some("{}");
        let e = json_err(&call(&fx, m, p, None, body), 401);
        assert!(e.contains("dnsight token create"), "{m} {p}: {e}");
    }
}

#[test]
fn wrong_role_is_403_and_analyst_can_act() {
    let fx = fixture();
    story(&fx);
    // viewer reads but does not act
    assert_eq!(get(&fx, "/api/v1/alerts", &fx.viewer).0, 200);
    let e = json_err(
        &post(
            &fx,
            "/api/v1/alerts/actions",
            &fx.viewer,
            json!({"action":"flag","filter":{},"dry_run":true}),
        ),
        403,
    );
    assert!(e.contains("viewer") && e.contains("analyst"), "{e}");
    json_err(
        &post(
            &fx,
            "/api/v1/blocks",
            &fx.viewer,
            json!({"name":"evil.example"}),
        ),
        403,
    );
    // analyst acts but does not manage tokens or intel
    json_err(&get(&fx, "/api/v1/tokens", &fx.analyst), 403);
    json_err(
        &post(
            &fx,
            "/api/v1/tokens",
            &fx.analyst,
            json!({"name":"x","role":"admin"}),
        ),
        403,
    );
    json_err(
        &post(&fx, "/api/v1/intel/reload", &fx.analyst, json!({})),
        403,
    );
    // the actor recorded is the token's name
    let a = alert_on(&fx, "10.0.0.6", "bad.example");
    let id = a["id"].as_str().unwrap();
    json_ok(&post(
        &fx,
        &format!("/api/v1/alerts/{id}/actions"),
        &fx.analyst,
        json!({"action":"flag","note":"look"}),
    ));
    let d = json_ok(&get(&fx, &format!("/api/v1/alerts/{id}"), &fx.viewer));
    let last = d["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "ana \"the analyst\" <b>");
    assert_eq!(last["action"], "flag");
}

#[test]
fn bad_tokens_are_401_and_then_rate_limited_429() {
    let fx = fixture();
    for i in 0..10 {
        let r = call(
            &fx,
            "GET",
            "/api/v1/alerts",
            Some(&format!("nope-{i}")),
            None,
        );
        json_err(&r, 401);
    }
    // even a good token is refused while the address is locked out
    let r = get(&fx, "/api/v1/alerts", &fx.viewer);
    let e = json_err(&r, 429);
    assert!(e.contains("wait"), "{e}");
    // a malformed header counts too, and health stays open
    assert_eq!(call(&fx, "GET", "/api/v1/health", None, None).0, 200);
}

#[test]
fn revoked_and_expired_tokens_are_401() {
    let fx = fixture();
    let t = json_ok(&post(
        &fx,
        "/api/v1/tokens",
        &fx.admin,
        json!({"name":"short","role":"viewer","expires":"1h"}),
    ));
    let secret = t["secret"].as_str().unwrap().to_string();
    assert_eq!(t["token"]["role"], "viewer");
    assert!(t["token"]["expires_at"].as_i64().unwrap() > now());
    assert_eq!(get(&fx, "/api/v1/alerts", &secret).0, 200);
    let list = json_ok(&get(&fx, "/api/v1/tokens", &fx.admin));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"short") && names.contains(&"root-admin"),
        "{names:?}"
    );
    assert!(
        !list.to_string().contains(&secret),
        "a secret in the token list"
    );
    let r = json_ok(&call(
        &fx,
        "DELETE",
        "/api/v1/tokens/short",
        Some(&fx.admin),
        None,
    ));
    assert!(r["revoked_at"].is_i64());
    json_err(&get(&fx, "/api/v1/alerts", &secret), 401);
    json_err(
        &call(
            &fx,
            "DELETE",
            "/api/v1/tokens/nobody",
            Some(&fx.admin),
            None,
        ),
        404,
    );
    json_err(
        &post(
            &fx,
            "/api/v1/tokens",
            &fx.admin,
            json!({"name":"x","role":"boss"}),
        ),
        400,
    );
    json_err(
        &post(
            &fx,
            "/api/v1/tokens",
            &fx.admin,
            json!({"name":"x\u{1b}[31m","role":"viewer"}),
        ),
        400,
    );
    json_err(
        &post(
            &fx,
            "/api/v1/tokens",
            &fx.admin,
            json!({"name":"old","role":"viewer","expires":"2001-01-01"}),
        ),
        400,
    );
}

// ---------------------------------------------------------------- alerts

#[test]
fn alerts_list_filters_sorts_pages_and_shows_history() {
    let fx = fixture();
    story(&fx);
    let (total, all) = alerts(&fx, "");
    assert_eq!(total, 4, "{all:?}");
    assert_eq!(all.len(), 4);
    assert!(all
        .iter()
        .all(|a| a["kind"] == "policy" && a["status"] == "open"));
    assert_eq!(alerts(&fx, "?device=10.0.0.5").0, 2);
    assert_eq!(alerts(&fx, "?destination=evil.example").0, 1);
    assert_eq!(alerts(&fx, "?destination=*.example").0, 4);
    assert_eq!(alerts(&fx, "?kind=dga,new_destination").0, 0);
    assert_eq!(alerts(&fx, "?kind=policy&status=open,reopened").0, 4);
    assert_eq!(alerts(&fx, "?status=resolved").0, 0);
    assert_eq!(alerts(&fx, "?severity=info").0, 4);
    assert_eq!(alerts(&fx, "?since=1h&until=2099-01-01").0, 4);
    let since = now() + 3600;
    assert_eq!(alerts(&fx, &format!("?since={since}")).0, 0);
    let (t, page) = alerts(&fx, "?sort=first_seen&limit=1&offset=1");
    assert_eq!((t, page.len()), (4, 1));
    let (_, by_count) = alerts(&fx, "?sort=count");
    assert_eq!(by_count[0]["device"], "10.0.0.5");
    assert_eq!(by_count[0]["destination"], "evil.example");
    for q in [
        "?limit=0",
        "?limit=1001",
        "?status=bogus",
        "?kind=bogus",
        "?severity=x",
        "?sort=x",
        "?since=soon",
        "?device=host",
        "?offset=-1",
        "?colour=red",
    ] {
        json_err(&get(&fx, &format!("/api/v1/alerts{q}"), &fx.viewer), 400);
    }
    let id = by_count[0]["id"].as_str().unwrap();
    let d = json_ok(&get(&fx, &format!("/api/v1/alerts/{id}"), &fx.viewer));
    assert_eq!(d["id"], id);
    assert!(d["evidence"].is_object(), "{d}");
    assert!(d["history"].is_array());
}

#[test]
fn every_single_action_through_the_api() {
    let fx = fixture();
    story(&fx);
    let id = |dev: &str, dest: &str| alert_on(&fx, dev, dest)["id"].as_str().unwrap().to_string();
    let act = |id: &str, body: Value| {
        json_ok(&post(
            &fx,
            &format!("/api/v1/alerts/{id}/actions"),
            &fx.analyst,
            body,
        ))
    };
    let a = id("10.0.0.5", "evil.example");
    let r = act(
        &a,
        json!({"action":"ack","scope":"device","until":"7d","note":"backup job"}),
    );
    assert_eq!(r["matched"], 1);
    assert_eq!(r["outcomes"][0]["after"], "acknowledged");
    assert_eq!(
        alert_on(&fx, "10.0.0.5", "evil.example")["status"],
        "acknowledged"
    );
    let r = act(&a, json!({"action":"reopen"}));
    assert_eq!(r["outcomes"][0]["after"], "reopened");
    let r = act(&a, json!({"action":"note","note":"still looking"}));
    assert_eq!(r["outcomes"][0]["after"], "reopened");
    let r = act(&a, json!({"action":"resolve","reason":"false_positive"}));
    assert_eq!(r["outcomes"][0]["after"], "resolved");
    let s = alert_on(&fx, "10.0.0.5", "evil.example");
    assert_eq!(s["reason"], "false_positive");
    let b = id("10.0.0.6", "bad.example");
    let r = act(&b, json!({"action":"block","scope":"device","for":"1h"}));
    assert_eq!(r["outcomes"][0]["after"], "blocked");
    let blocks = json_ok(&get(&fx, "/api/v1/blocks", &fx.viewer));
    let blk = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["alert_id"] == b.as_str())
        .expect("block of the alert")
        .clone();
    assert_eq!(blk["name"], "bad.example");
    assert_eq!(blk["scope"], json!({"scope":"device","value":"10.0.0.6"}));
    assert!(blk["expires_at"].as_i64().unwrap() > now());
    let r = act(&b, json!({"action":"unblock"}));
    assert_eq!(r["outcomes"][0]["after"], "reopened");
    let c = id("10.0.0.5", "other.example");
    let r = act(&c, json!({"action":"flag"}));
    assert_eq!(r["outcomes"][0]["after"], "flagged");
    // history has every step, with the token's name
    let d = json_ok(&get(&fx, &format!("/api/v1/alerts/{a}"), &fx.viewer));
    let steps: Vec<&str> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    for s in ["ack", "reopen", "note", "resolve"] {
        assert!(steps.contains(&s), "{steps:?}");
    }
    // the audit log has them too, newest first
    let au = json_ok(&get(&fx, "/api/v1/audit?limit=3", &fx.viewer));
    assert_eq!(au.as_array().unwrap().len(), 3);
    json_err(&get(&fx, "/api/v1/audit?limit=0", &fx.viewer), 400);
    // the notification outbox (no targets here: empty), and its parameters checked
    let nb = json_ok(&get(&fx, "/api/v1/notifications?state=failed", &fx.viewer));
    assert_eq!(nb.as_array().map(Vec::len), Some(0));
    json_err(
        &get(&fx, "/api/v1/notifications?state=lost", &fx.viewer),
        400,
    );
    // wrong fields for the action, missing ones, unknown values
    for body in [
        json!({"action":"ack"}),
        json!({"action":"ack","scope":"planet"}),
        json!({"action":"resolve"}),
        json!({"action":"resolve","reason":"expired"}),
        json!({"action":"flag","scope":"device"}),
        json!({"action":"note"}),
        json!({"action":"dance"}),
        json!({"action":"block","scope":"device","for":"soon"}),
        json!({"action":"ack","scope":"device","until":"2001-01-01"}),
        json!({"action":"flag","ids":["x"]}),
        json!({"action":"unblock"}),
    ] {
        let r = post(
            &fx,
            &format!("/api/v1/alerts/{c}/actions"),
            &fx.analyst,
            body.clone(),
        );
        let e = json_err(&r, 400);
        assert!(!e.is_empty(), "{body}");
    }
}

#[test]
fn bulk_by_filter_dry_run_count_equals_real_count() {
    let fx = fixture();
    story(&fx);
    let filter = json!({"device":"10.0.0.5","kind":["policy"]});
    let dry = json_ok(&post(
        &fx,
        "/api/v1/alerts/actions",
        &fx.analyst,
        json!({"action":"ack","scope":"device","filter":filter,"dry_run":true}),
    ));
    assert_eq!(dry["matched"], 2);
    assert_eq!(dry["outcomes"].as_array().unwrap().len(), 0);
    assert_eq!(
        alerts(&fx, "?status=acknowledged").0,
        0,
        "a dry run changed something"
    );
    let real = json_ok(&post(
        &fx,
        "/api/v1/alerts/actions",
        &fx.analyst,
        json!({"action":"ack","scope":"device","filter":filter,"note":"lab host"}),
    ));
    assert_eq!(real["matched"], dry["matched"]);
    assert_eq!(real["errors"].as_array().unwrap().len(), 0, "{real}");
    assert_eq!(alerts(&fx, "?status=acknowledged").0, 2);
    // by ids
    let rest: Vec<String> = alerts(&fx, "?status=open")
        .1
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rest.len(), 2);
    let r = json_ok(&post(
        &fx,
        "/api/v1/alerts/actions",
        &fx.analyst,
        json!({"action":"resolve","reason":"duplicate","ids":rest}),
    ));
    assert_eq!(r["matched"], 2);
    assert_eq!(alerts(&fx, "?status=resolved").0, 2);
    // unknown ids are reported per alert, not as a failure of the whole request
    let r = json_ok(&post(
        &fx,
        "/api/v1/alerts/actions",
        &fx.analyst,
        json!({"action":"flag","ids":["no-such-alert"]}),
    ));
    assert_eq!(r["errors"][0]["alert_id"], "no-such-alert");
    for body in [
        json!({"action":"flag"}),
        json!({"action":"flag","ids":[]}),
        json!({"action":"flag","ids":["a"],"filter":{}}),
        json!({"action":"flag","filter":{"device":"not-an-ip"}}),
    ] {
        json_err(&post(&fx, "/api/v1/alerts/actions", &fx.analyst, body), 400);
    }
    // an unknown field or value is the same 422 as on every route
    for body in [
        json!({"action":"flag","filter":{"kinds":["dga"]}}),
        json!({"action":"flag","filter":{"kind":["nope"]}}),
    ] {
        json_err(&post(&fx, "/api/v1/alerts/actions", &fx.analyst, body), 422);
    }
}

#[test]
fn client_mistakes_are_4xx_with_a_json_error() {
    let fx = fixture();
    story(&fx);
    let a = alert_on(&fx, "10.0.0.5", "evil.example")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/alerts/{a}/actions");
    // malformed JSON, wrong types, unknown fields, no content type
    json_err(
        &call(&fx, "POST", &path, Some(&fx.analyst), Some("{\"action\":")),
        400,
    );
    json_err(
        &call(&fx, "POST", &path, Some(&fx.analyst), Some("[1,2]")),
        422,
    );
    json_err(
        &call(
            &fx,
            "POST",
            &path,
            Some(&fx.analyst),
            Some("{\"action\":\"flag\",\"colour\":1}"),
        ),
        422,
    );
    let r = agent()
        .post(&format!("{}{path}", fx.url))
        .set("Authorization", &format!("Bearer {}", fx.analyst))
        .send_string("{\"action\":\"flag\"}");
    let r = match r {
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        other => panic!("{other:?}"),
    };
    assert_eq!(r.0, 415);
    assert!(r.1.contains("Content-Type"), "{}", r.1);
    // unknown ids and routes
    json_err(&get(&fx, "/api/v1/alerts/no-such-alert", &fx.viewer), 404);
    json_err(
        &post(
            &fx,
            "/api/v1/alerts/no-such-alert/actions",
            &fx.analyst,
            json!({"action":"flag"}),
        ),
        404,
    );
    json_err(&get(&fx, "/api/v1/devices/10.9.9.9", &fx.viewer), 404);
    json_err(&get(&fx, "/api/v1/devices/not-an-ip", &fx.viewer), 400);
    json_err(
        &call(
            &fx,
            "DELETE",
            "/api/v1/blocks/999999",
            Some(&fx.analyst),
            None,
        ),
        404,
    );
    json_err(
        &call(&fx, "DELETE", "/api/v1/blocks/abc", Some(&fx.analyst), None),
        400,
    );
    json_err(&get(&fx, "/api/v1/nothing-here", &fx.viewer), 404);
    json_err(
        &call(&fx, "PUT", "/api/v1/alerts", Some(&fx.viewer), Some("{}")),
        405,
    );
    // a body over 1 MiB
    let big = format!(
        "{{\"action\":\"note\",\"note\":\"{}\"}}",
        "x".repeat(dnsight_api::MAX_BODY)
    );
    let (status, body) = raw_post(&fx, &path, &fx.analyst, big.as_bytes());
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        v["error"].as_str().unwrap().contains("larger than"),
        "{body}"
    );
    // the server is still fine
    assert_eq!(get(&fx, "/api/v1/alerts", &fx.viewer).0, 200);
}

/// POST over a raw socket (the whole body is written before the answer is read).
fn raw_post(fx: &Fx, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let addr = fx.api.as_ref().unwrap().addr();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut w = s.try_clone().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&body);
    });
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    writer.join().unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn hostile_names_round_trip_escaped() {
    let fx = fixture();
    story(&fx);
    let (_, all) = alerts(&fx, "?device=10.0.0.7");
    assert_eq!(all.len(), 1);
    let dest = all[0]["destination"].as_str().unwrap().to_string();
    // the engine's presentation form: the quote is backslash-escaped, nothing is lost or added
    assert_eq!(dest, dnsight_model::Name::parse(HOSTILE).unwrap().as_str());
    assert!(dest.contains("<script>"));
    // the same alert found by its destination, and its raw JSON escapes quotes and backslashes
    let r = get(
        &fx,
        &format!("/api/v1/alerts?destination={}", urlenc(&dest)),
        &fx.viewer,
    );
    let v = json_ok(&r);
    assert_eq!(v["total"], 1);
    assert!(r.1.contains("\\\\\\\"q\\\\\\\""), "{}", r.1);
    // blocks with the same name come back the same
    let b = json_ok(&post(
        &fx,
        "/api/v1/blocks",
        &fx.analyst,
        json!({"name": HOSTILE, "note": "<i>n</i>\u{7}"}),
    ));
    assert_eq!(b["name"], dest.as_str());
    assert_eq!(b["note"], "<i>n</i>\u{7}");
    let rpz = call(&fx, "GET", "/rpz", None, None);
    assert_eq!(rpz.0, 200);
    assert!(rpz.3);
    assert!(!rpz.1.contains('\u{7}'));
}

fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~*".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------- blocks, RPZ

#[test]
fn blocks_add_list_remove_and_rpz() {
    let fx = fixture();
    let b = json_ok(&post(
        &fx,
        "/api/v1/blocks",
        &fx.analyst,
        json!({"name":"Bad.Example.","scope":{"scope":"all"},"for":"1h","note":"phishing"}),
    ));
    assert_eq!(b["name"], "bad.example");
    assert_eq!(b["subdomains"], true);
    assert_eq!(b["allow"], false);
    assert_eq!(b["created_by"], "ana \"the analyst\" <b>");
    let allow = json_ok(&post(
        &fx,
        "/api/v1/blocks",
        &fx.analyst,
        json!({"name":"ok.bad.example","allow":true,"subdomains":false}),
    ));
    let grp = json_ok(&post(
        &fx,
        "/api/v1/blocks",
        &fx.analyst,
        json!({"name":"games.example","scope":{"scope":"group","value":"kids"},"for":3600}),
    ));
    let dev = json_ok(&post(
        &fx,
        "/api/v1/blocks",
        &fx.analyst,
        json!({"name":"x.example","scope":{"scope":"device","value":"10.0.0.5"}}),
    ));
    assert_eq!(grp["scope"], json!({"scope":"group","value":"kids"}));
    assert_eq!(dev["scope"], json!({"scope":"device","value":"10.0.0.5"}));
    let list = json_ok(&get(&fx, "/api/v1/blocks", &fx.viewer));
    assert_eq!(list.as_array().unwrap().len(), 4);
    // RPZ: loopback needs no token; scope-all rules only
    let z = call(&fx, "GET", "/rpz", None, None);
    assert_eq!(z.0, 200, "{}", z.1);
    assert!(z.2.starts_with("text/"), "{}", z.2);
    assert!(z.1.contains("SOA"), "{}", z.1);
    assert!(z.1.contains("bad.example"), "{}", z.1);
    assert!(!z.1.contains("games.example"), "{}", z.1);
    let serial1 = soa_serial(&z.1);
    let r = json_ok(&call(
        &fx,
        "DELETE",
        &format!("/api/v1/blocks/{}", b["id"]),
        Some(&fx.analyst),
        None,
    ));
    assert_eq!(r["id"], b["id"]);
    json_err(
        &call(
            &fx,
            "DELETE",
            &format!("/api/v1/blocks/{}", b["id"]),
            Some(&fx.analyst),
            None,
        ),
        404,
    );
    let z2 = call(&fx, "GET", "/rpz", None, None).1;
    assert!(soa_serial(&z2) > serial1, "{z2}");
    assert!(!z2.lines().any(|l| l.starts_with("bad.example")), "{z2}");
    assert_eq!(
        json_ok(&get(&fx, "/api/v1/blocks", &fx.viewer))
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let _ = allow;
    for body in [
        json!({"name":""}),
        json!({"name":"10.0.0.1"}),
        json!({"name":"a..b"}),
        json!({"name":"x.example","for":"0"}),
        json!({"name":"x.example","scope":{"scope":"device","value":"nope"}}),
        json!({"name":"x.example","scope":{"scope":"group","value":""}}),
        json!({"name":"x.example","ttl":5}),
    ] {
        let r = post(&fx, "/api/v1/blocks", &fx.analyst, body.clone());
        assert!(r.0 == 400 || r.0 == 422, "{body}: {} {}", r.0, r.1);
        json_err(&r, r.0);
    }
}

fn soa_serial(zone: &str) -> u64 {
    let l = zone.lines().find(|l| l.contains("SOA")).expect("SOA line");
    let toks: Vec<&str> = l.split_whitespace().collect();
    let i = toks.iter().position(|t| *t == "SOA").unwrap();
    toks[i + 3]
        .trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .expect("serial")
}

#[test]
fn rpz_needs_a_token_from_other_addresses() {
    // the server listens on every address; a non-loopback address of this machine is "another
    // client" (skipped where the machine has none)
    let Some(local) = non_loopback_addr() else {
        eprintln!("no non-loopback address here: only the loopback half runs");
        return;
    };
    let fx = fixture_with(|c| c.listen = "0.0.0.0:0".parse().unwrap());
    let port = fx.api.as_ref().unwrap().addr().port();
    let url = format!("http://{local}:{port}/rpz");
    let r = agent().get(&url).call();
    match r {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401: {other:?}"),
    }
    let ok = agent()
        .get(&url)
        .set("Authorization", &format!("Bearer {}", fx.viewer))
        .call()
        .unwrap();
    assert_eq!(ok.status(), 200);
    // and the same address listed in rpz_clients needs none
    let fx2 = fixture_with(|c| {
        c.listen = "0.0.0.0:0".parse().unwrap();
        c.rpz_clients = vec![dnsight_engine::Cidr::new(local, 32)];
    });
    let port = fx2.api.as_ref().unwrap().addr().port();
    let r = agent()
        .get(&format!("http://{local}:{port}/rpz"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn non_loopback_addr() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

// ---------------------------------------------------------------- devices, meta

#[test]
fn devices_destinations_stats_kinds_metrics() {
    let fx = fixture();
    story(&fx);
    let d = json_ok(&get(&fx, "/api/v1/devices", &fx.viewer));
    let ips: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["ip"].as_str().unwrap())
        .collect();
    for ip in ["10.0.0.5", "10.0.0.6", "10.0.0.7"] {
        assert!(ips.contains(&ip), "{ips:?}");
    }
    let one = json_ok(&get(&fx, "/api/v1/devices/10.0.0.5", &fx.viewer));
    assert_eq!(one["ip"], "10.0.0.5");
    assert!(one["destinations"].is_array());
    let dest = get(&fx, "/api/v1/destinations/evil.example", &fx.viewer);
    if dest.0 == 200 {
        assert_eq!(json_ok(&dest)["name"], "evil.example");
    } else {
        json_err(&dest, 404);
    }
    json_err(&get(&fx, "/api/v1/destinations/a..b", &fx.viewer), 400);
    let s = json_ok(&get(&fx, "/api/v1/stats", &fx.viewer));
    assert_eq!(s["events_in"], 5);
    assert!(s["store"]["alerts_by_status"].is_object(), "{s}");
    let k = json_ok(&get(&fx, "/api/v1/kinds", &fx.viewer));
    let kinds: Vec<&str> = k
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"new_destination") && kinds.contains(&"policy"),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), dnsight_engine::Kind::ALL.len());
    for k in k.as_array().unwrap() {
        assert!(k["detector"].as_str().is_some_and(|d| !d.is_empty()), "{k}");
        assert!(
            k["description"].as_str().is_some_and(|d| d.len() > 20),
            "{k}"
        );
        assert!(
            k["ack_effect"].as_str().is_some_and(|d| !d.is_empty()),
            "{k}"
        );
    }
    let m = call(&fx, "GET", "/metrics", Some(&fx.viewer), None);
    assert_eq!(m.0, 200);
    assert!(m.1.contains("dnsight_pipeline_events_total 5"), "{}", m.1);
    assert!(
        m.1.contains("dnsight_notifications{state=\"failed\"} 0"),
        "{}",
        m.1
    );
    // intel reload with no feeds configured: a clear answer, not a 500
    let r = post(&fx, "/api/v1/intel/reload", &fx.admin, json!({}));
    assert!(r.0 == 200 || r.0 == 400, "{} {}", r.0, r.1);
}

#[test]
fn metrics_public_needs_no_token() {
    let fx = fixture_with(|c| c.metrics_public = true);
    let m = call(&fx, "GET", "/metrics", None, None);
    assert_eq!(m.0, 200, "{}", m.1);
    assert!(m.2.starts_with("text/plain"));
}

// ---------------------------------------------------------------- OpenAPI

/// Every route the server answers, with a path that reaches its handler.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/health"),
    ("get", "/api/openapi.json"),
    ("get", "/api/v1/alerts"),
    ("get", "/api/v1/alerts/{id}"),
    ("post", "/api/v1/alerts/{id}/actions"),
    ("post", "/api/v1/alerts/actions"),
    ("get", "/api/v1/devices"),
    ("get", "/api/v1/devices/{ip}"),
    ("get", "/api/v1/destinations/{name}"),
    ("get", "/api/v1/blocks"),
    ("post", "/api/v1/blocks"),
    ("delete", "/api/v1/blocks/{id}"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/kinds"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/notifications"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("post", "/api/v1/intel/reload"),
    ("post", "/api/v1/events"),
    ("post", "/api/v1/events/firehose"),
    ("get", "/rpz"),
    ("get", "/metrics"),
    ("get", "/api/v1/queries"),
];

#[test]
fn openapi_lists_every_route() {
    let fx = fixture();
    let doc = json_ok(&call(&fx, "GET", "/api/openapi.json", None, None));
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (p, item) in paths {
        for m in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&m.as_str()) {
                documented.push((m.clone(), p.clone()));
            }
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(documented, served);
    // and every documented route is served: it answers with something other than the
    // no-such-route fallback
    for (m, p) in &documented {
        let path = p
            .replace("{id}", "999999")
            .replace("{ip}", "10.0.0.5")
            .replace("{name}", "a.example");
        let body = (m == "post").then_some("{}");
        let r = call(&fx, &m.to_uppercase(), &path, Some(&fx.admin), body);
        assert!(
            !(r.0 == 404 && r.1.contains("no such route")) && r.0 != 405,
            "{m} {p}: {} {}",
            r.0,
            r.1
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // the library's copy is the same document
    let lib: Value = serde_json::from_str(&dnsight_api::openapi_json()).unwrap();
    assert_eq!(lib["paths"].as_object().unwrap().len(), paths.len());
    let _ = &fx.dir;
}

#[test]
fn server_shuts_down_and_frees_the_port() {
    let mut fx = fixture();
    let addr = fx.api.as_ref().unwrap().addr();
    fx.api.take().unwrap().shutdown();
    assert!(
        std::net::TcpListener::bind(addr).is_ok(),
        "port still taken after shutdown"
    );
    // a store that does not exist is a clean error
    let h = fx.run.as_ref().unwrap().handle();
    let under_a_file = fx.dir.join(dnsight_triage::TRIAGE_FILE).join("x");
    let r = dnsight_api::start(
        ApiConfig::new("127.0.0.1:0".parse().unwrap()),
        h.clone(),
        under_a_file,
    );
    assert!(r.is_err());
    // a taken port says so
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let r = dnsight_api::start(
        ApiConfig::new(busy.local_addr().unwrap()),
        h,
        fx.dir.clone(),
    );
    let e = r.err().expect("bind error").to_string();
    assert!(e.contains("cannot listen"), "{e}");
}

#[test]
fn store_reads_see_the_pipelines_commits() {
    // the API's own read connection sees what the pipeline committed, without a restart
    let fx = fixture();
    assert_eq!(alerts(&fx, "").0, 0);
    story(&fx);
    assert_eq!(alerts(&fx, "").0, 4);
    let other = SqliteStore::open(&fx.dir).unwrap();
    let n = other.list_alerts(&Default::default()).unwrap().1;
    assert_eq!(n, 4);
}

// ---------------------------------------------------------------- event intake

fn post_bytes(fx: &Fx, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut req = agent().post(&format!("{}/api/v1/events", fx.url));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req
        .set("Content-Type", "application/x-ndjson")
        .send_bytes(body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST /api/v1/events: {e}"),
    }
}

/// POSTs headers that declare a body of `len` bytes, sends the first KiB of it and returns the
/// status line's code: what a server that refuses from the headers alone answers.
fn post_declared_length(fx: &Fx, token: &str, len: usize) -> u16 {
    let addr = fx.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&[b'{'; 1024]);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[test]
fn event_intake_takes_query_logs_plain_and_gzip_and_refuses_hostile_bodies() {
    let fx = fixture();
    let t = jiff::Timestamp::from_second(now() - 60).unwrap();
    let body = format!(
        "{{\"query_timestamp\":\"{t}\",\"query_name\":\"a.evil.example.\",\"query_type\":\"A\",\"rcode\":\"NOERROR\",\"answers\":[],\"srcaddr\":\"10.0.0.44\",\"srcport\":\"4000\",\"transport\":\"UDP\"}}\nnot a record\n"
    );
    assert_eq!(post_bytes(&fx, None, body.as_bytes()).0, 401);
    let (st, text) = post_bytes(&fx, Some(&fx.viewer), body.as_bytes());
    assert_eq!(st, 403, "{text}");
    let (st, text) = post_bytes(&fx, Some(&fx.analyst), body.as_bytes());
    assert_eq!(st, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], "route53-resolver");
    assert_eq!(
        (v["records"].as_u64(), v["events"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(v["rejected"]["log.bad_json"], 1, "{v}");
    // gzip: unwrapped by its magic bytes
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    let (st, text) = post_bytes(&fx, Some(&fx.analyst), &gz.finish().unwrap());
    assert_eq!(st, 200, "{text}");
    // the events reached the pipeline: the policy rule on evil.example alerts for the device
    let h = fx.run.as_ref().unwrap().handle();
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.stats().unwrap().events_in < 2 {
        assert!(
            Instant::now() < deadline,
            "the pipeline did not take the events"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // hostile bodies: invalid UTF-8 and control bytes are no format (400), an oversized body is 413
    let (st, text) = post_bytes(
        &fx,
        Some(&fx.analyst),
        b"\xff\xfe\x00\x01garbage\n\xc3\x28\n",
    );
    assert_eq!(st, 400, "{text}");
    // (over a raw socket: the server answers 413 from the Content-Length and closes without
    // reading the body, so a client that insists on writing all 9 MiB first sees a broken pipe)
    assert_eq!(post_declared_length(&fx, &fx.analyst, 9 << 20), 413);
    // an empty body is no format either
    assert_eq!(post_bytes(&fx, Some(&fx.analyst), b"").0, 400);
    // a million lines in a small gzip body: read up to the cap, then 413 (no stall, no crash)
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(body.as_bytes()).unwrap();
    for _ in 0..1_100_000 {
        gz.write_all(b"x\n").unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let (st, text) = post_bytes(&fx, Some(&fx.analyst), &bomb);
    assert_eq!(st, 413, "{text}");
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn post_firehose(fx: &Fx, key: Option<&str>, request_id: &str, body: &[u8]) -> (u16, Value) {
    let mut req = agent()
        .post(&format!("{}/api/v1/events/firehose", fx.url))
        .set("X-Amz-Firehose-Request-Id", request_id)
        .set("X-Amz-Firehose-Protocol-Version", "1.0")
        .set("Content-Type", "application/json");
    if let Some(k) = key {
        req = req.set("X-Amz-Firehose-Access-Key", k);
    }
    let (st, text) = match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST /api/v1/events/firehose: {e}"),
    };
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (st, v)
}

#[test]
fn firehose_deliveries_are_taken_with_the_access_key_and_answered_in_its_format() {
    let fx = fixture();
    let t = jiff::Timestamp::from_second(now() - 60).unwrap();
    // a Route 53 Resolver query log record, as Firehose carries it: base64 in `records[].data`
    let line = format!(
        "{{\"query_timestamp\":\"{t}\",\"query_name\":\"fh.evil.example.\",\"query_type\":\"A\",\"rcode\":\"NOERROR\",\"answers\":[],\"srcaddr\":\"10.0.0.45\",\"srcport\":\"4000\",\"transport\":\"UDP\"}}\n"
    );
    let body = format!(
        "{{\"requestId\":\"ed4acda5-034f-9f42-bba1-f29aea6d7d8f\",\"timestamp\":1578090901599,\"records\":[{{\"data\":\"{}\"}},{{\"data\":\"{}\"}}]}}",
        b64(line.as_bytes()),
        b64(line.replace("10.0.0.45", "10.0.0.46").as_bytes())
    );
    let id = "ed4acda5-034f-9f42-bba1-f29aea6d7d8f";
    // no key, a viewer's key: refused, still in Firehose's format (it retries)
    let (st, v) = post_firehose(&fx, None, id, body.as_bytes());
    assert_eq!(st, 401, "{v}");
    assert_eq!(v["requestId"], id);
    assert!(v["errorMessage"].as_str().unwrap().contains("token"), "{v}");
    assert!(v["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    let (st, v) = post_firehose(&fx, Some(&fx.viewer), id, body.as_bytes());
    assert_eq!(st, 403, "{v}");
    // the access-key header is a token on the Firehose route only
    let r = agent()
        .get(&format!("{}/api/v1/alerts", fx.url))
        .set("X-Amz-Firehose-Access-Key", &fx.analyst)
        .call();
    assert!(matches!(r, Err(ureq::Error::Status(401, _))), "{r:?}");
    let h = fx.run.as_ref().unwrap().handle();
    let before = h.stats().unwrap().events_in;
    let (st, v) = post_firehose(&fx, Some(&fx.analyst), id, body.as_bytes());
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["requestId"], id);
    assert!(v.get("errorMessage").is_none(), "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.stats().unwrap().events_in < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the pipeline did not take the Firehose records"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // gzip'd as Firehose sends it with content encoding on
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    let (st, v) = post_firehose(&fx, Some(&fx.analyst), "second", &gz.finish().unwrap());
    assert_eq!((st, v["requestId"].as_str()), (200, Some("second")), "{v}");
    // a body that is no format: 400 with the reason, in Firehose's format
    let (st, v) = post_firehose(&fx, Some(&fx.analyst), "third", b"\xff\xfe garbage");
    assert_eq!(st, 400, "{v}");
    assert!(v["errorMessage"].as_str().is_some(), "{v}");
    // a body larger than the API's 1 MiB but within the intake's limit is taken
    let big_line = line.repeat(20_000);
    let big = format!(
        "{{\"requestId\":\"big\",\"timestamp\":1,\"records\":[{{\"data\":\"{}\"}}]}}",
        b64(big_line.as_bytes())
    );
    assert!(big.len() > 1 << 20 && big.len() < 8 << 20);
    let (st, v) = post_firehose(&fx, Some(&fx.analyst), "big", big.as_bytes());
    assert_eq!(st, 200, "{v}");
}
