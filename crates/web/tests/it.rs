//! The dashboard for real: the API server with the dashboard mounted, over a running pipeline
//! (engine + SQLite triage store in a temp dir), spoken to over HTTP with cookies handled by
//! hand (the browser tests in the binary's suite drive Chromium).

use dnsight_api::ApiServer;
use dnsight_engine::{Engine, EngineConfig, PolicyRule};
use dnsight_model::DnsEvent;
use dnsight_pipeline::{Outputs, Pipeline, PipelineConfig, Running};
use dnsight_triage::{Role, SqliteStore, TriageStore};
use serde_json::json;
use std::time::{Duration, Instant};

const HOSTILE: &str = "<script>alert(1)<\\/script>.example";
const IMG: &str = "\"><img\\032src=x\\032onerror=alert(1)>.example";

struct Fx {
    _dir: tempfile::TempDir,
    run: Option<Running>,
    api: Option<ApiServer>,
    url: String,
    host: String,
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

fn event(ts: i64, client: &str, qname: &str) -> DnsEvent {
    serde_json::from_value(json!({"ts": ts, "client": client, "qname": qname, "rcode": "NOERROR"}))
        .expect("event")
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut st = SqliteStore::open(&path).unwrap();
    for (name, role, pw) in [
        ("ana", Role::Analyst, "analyst-password"),
        ("vic", Role::Viewer, "viewer-password"),
    ] {
        let h = dnsight_web::hash_password(pw).unwrap();
        st.upsert_user(name, role, &h, false, "test", now())
            .unwrap();
    }
    drop(st);
    let cfg = EngineConfig {
        policy: vec![PolicyRule {
            group: None,
            deny: vec!["example".into()],
            allow_only: Vec::new(),
            allow_internal: true,
            reason: "test names only".into(),
            ..Default::default()
        }],
        exempt: vec![dnsight_engine::config::Exemption {
            groups: vec!["mirrors".into()],
            destinations: vec!["debian.org".into()],
            reason: "package mirror syncs".into(),
            ..Default::default()
        }],
        ..EngineConfig::default()
    };
    let p = Pipeline::new(
        Engine::new(cfg),
        Some(Box::new(SqliteStore::open(&path).unwrap())),
        Outputs::default(),
        PipelineConfig {
            tick: Duration::from_millis(20),
            ..PipelineConfig::default()
        },
    )
    .unwrap();
    let run = dnsight_pipeline::spawn(p).unwrap();
    let c = dnsight_api::ApiConfig::new("127.0.0.1:0".parse().unwrap());
    let api = dnsight_api::start_mounted(
        c,
        run.handle(),
        path.clone(),
        Some(dnsight_web::mount(Some(path.clone()))),
    )
    .unwrap();
    let url = api.url();
    let host = api.addr().to_string();
    let fx = Fx {
        _dir: dir,
        run: Some(run),
        api: Some(api),
        url,
        host,
    };
    let t = now() - 600;
    let h = fx.run.as_ref().unwrap().handle();
    let evs = vec![
        event(t, "10.0.0.5", "a.evil.example"),
        event(t + 1, "10.0.0.6", "c.bad.example"),
        event(t + 2, "10.0.0.7", &format!("www.{HOSTILE}")),
        event(t + 3, "10.0.0.8", &format!("x.{IMG}")),
    ];
    // counted as `serve` counts a passive source
    let m = fx
        .run
        .as_ref()
        .unwrap()
        .producer()
        .meter("jsonl /var/log/dns.jsonl", "jsonl");
    m.events(evs.len() as u64);
    m.rejected_total(2);
    assert!(fx.run.as_ref().unwrap().producer().send(evs));
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        // a dry run flushes the engine's alerts to the store
        let r = h
            .act(dnsight_pipeline::ActionRequest {
                target: dnsight_pipeline::Target::Filter(Default::default()),
                action: dnsight_pipeline::Action::Flag,
                note: None,
                actor: "test".into(),
                dry_run: true,
            })
            .unwrap();
        if r.matched >= 4 {
            break;
        }
        assert!(Instant::now() < end, "the alerts did not reach the store");
        std::thread::sleep(Duration::from_millis(20));
    }
    fx
}

struct Resp {
    status: u16,
    body: String,
    location: String,
    headers: Vec<(String, String)>,
}

impl Resp {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .redirects(0)
        .build()
}

fn done(r: Result<ureq::Response, ureq::Error>) -> Resp {
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let headers = r
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            r.all(&n)
                .into_iter()
                .map(|v| (n.clone(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    Resp {
        status: r.status(),
        location: r.header("location").unwrap_or("").to_string(),
        headers,
        body: r.into_string().unwrap_or_default(),
    }
}

fn get(fx: &Fx, path: &str, cookie: &str) -> Resp {
    done(
        agent()
            .get(&format!("{}{path}", fx.url))
            .set("Cookie", cookie)
            .call(),
    )
}

fn post(fx: &Fx, path: &str, cookie: &str, origin: Option<&str>, form: &[(&str, &str)]) -> Resp {
    let mut r = agent()
        .post(&format!("{}{path}", fx.url))
        .set("Cookie", cookie);
    if let Some(o) = origin {
        r = r.set("Origin", o);
    }
    done(r.send_form(form))
}

fn cookies(r: &Resp) -> String {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn attr(body: &str, name: &str) -> String {
    let pat = format!("name=\"{name}\" value=\"");
    let i = body
        .find(&pat)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + pat.len();
    body[i..].split('"').next().unwrap().to_string()
}

fn meta_csrf(body: &str) -> String {
    let pat = "name=\"csrf\" content=\"";
    let i = body.find(pat).expect("csrf meta") + pat.len();
    body[i..].split('"').next().unwrap().to_string()
}

/// Signs in; returns the session cookie.
fn sign_in(fx: &Fx, user: &str, pw: &str) -> String {
    let page = get(fx, "/ui/login", "");
    assert_eq!(page.status, 200);
    let c = cookies(&page);
    let nonce = attr(&page.body, "nonce");
    let origin = fx.url.clone();
    let r = post(
        fx,
        "/ui/login",
        &c,
        Some(&origin),
        &[
            ("nonce", &nonce),
            ("user", user),
            ("password", pw),
            ("next", "/ui/alerts"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location, "/ui/alerts");
    let set = r.header("set-cookie").unwrap_or("");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{:?}",
        r.headers
    );
    cookies(&r)
        .split("; ")
        .find(|c| c.starts_with("dnsight_session="))
        .unwrap()
        .to_string()
}

fn first_alert_id(body: &str) -> String {
    let i = body.find("data-id=\"").expect("a row") + 9;
    body[i..].split('"').next().unwrap().to_string()
}

#[test]
fn sign_in_pages_and_escaping() {
    let fx = fixture();
    // not signed in: to the sign-in page, and back after it
    let r = get(&fx, "/ui/alerts?kind=policy", "");
    assert_eq!(r.status, 303);
    assert!(
        r.location
            .starts_with("/ui/login?next=/ui/alerts%3Fkind%3Dpolicy"),
        "{}",
        r.location
    );
    assert_eq!(get(&fx, "/", "").location, "/ui/");
    let c = sign_in(&fx, "ana", "analyst-password");
    for p in [
        "/ui/",
        "/ui/alerts",
        "/ui/alerts?status=all&sort=count",
        "/ui/devices",
        "/ui/devices/10.0.0.7",
        "/ui/destinations",
        "/ui/queries",
        "/ui/policy",
        "/ui/settings",
    ] {
        let r = get(&fx, p, &c);
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{p}: {csp}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{p}");
        assert!(r
            .header("server-timing")
            .is_some_and(|v| v.starts_with("render;dur=")));
        // no raw markup from DNS names anywhere, no inline script
        assert!(!r.body.contains("<script>alert"), "{p}");
        assert!(!r.body.contains("<img src"), "{p}");
        assert_eq!(
            r.body.matches("<script").count(),
            1,
            "{p}: only the script file"
        );
    }
    // the overview's ingestion health per source; the policy page's rules and exemptions
    let o = get(&fx, "/ui/", &c).body;
    let src = &o[o.find("id=\"sources\"").expect("a sources section")..];
    assert!(
        src.contains("jsonl /var/log/dns.jsonl") && src.contains(">up<"),
        "{src}"
    );
    let pol = get(&fx, "/ui/policy", &c).body;
    for want in [
        "test names only",
        "package mirror syncs",
        "group mirrors",
        "debian.org",
        "No list file configured.",
    ] {
        assert!(pol.contains(want), "{want} missing: {pol}");
    }
    // the query log page searches the log the resolver writes (here written directly)
    {
        let (log, w) =
            dnsight_triage::QueryLog::spawn(fx._dir.path(), &Default::default()).unwrap();
        log.log_blocking(&event(now() - 30, "10.0.0.7", &format!("www.{HOSTILE}")));
        log.log_blocking(&event(now() - 20, "10.0.0.9", "plain.example.org"));
        // answers of a destination the engine knows (its alert), one of them hostile text
        let answered: DnsEvent = serde_json::from_value(json!({
            "ts": now() - 10, "client": "10.0.0.5", "qname": "a.evil.example", "rcode": "NOERROR",
            "answers": [
                {"name": "a.evil.example", "type": "A", "ttl": 60, "data": "192.0.2.77"},
                {"name": "a.evil.example", "type": "TXT", "ttl": 60, "data": "<b>x</b>"}
            ]
        }))
        .expect("event");
        log.log_blocking(&answered);
        drop(log);
        assert_eq!(w.close().written, 3);
    }
    let d = get(&fx, "/ui/destinations/evil.example", &c);
    assert_eq!(d.status, 200, "{}", d.body);
    assert!(
        d.body.contains("Answers") && d.body.contains("A 192.0.2.77"),
        "{}",
        d.body
    );
    assert!(!d.body.contains("<b>x</b>"), "{}", d.body);
    let q = get(&fx, "/ui/queries?device=10.0.0.7&since=1h", &c);
    assert_eq!(q.status, 200, "{}", q.body);
    assert!(q.body.contains("&lt;script&gt;"), "{}", q.body);
    assert!(!q.body.contains("<script>alert") && !q.body.contains("plain.example.org"));
    let q = get(&fx, "/ui/queries?name=*.example.org", &c).body;
    assert!(
        q.contains("plain.example.org") && !q.contains("&lt;script&gt;"),
        "{q}"
    );
    assert_eq!(get(&fx, "/ui/queries?type=NOPE", &c).status, 400);
    let inbox = get(&fx, "/ui/alerts", &c).body;
    // shown as text: escaped for HTML over the name's own presentation escapes
    assert!(
        inbox.contains("&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
        "{inbox}"
    );
    assert!(inbox.contains("&quot;&gt;&lt;img\\032src=x"), "{inbox}");
    // the hostile alert's own page, and the JS and CSS
    let hostile = inbox
        .split("<tr data-id=\"")
        .skip(1)
        .find(|r| r.contains("&lt;script&gt;"))
        .map(|r| r.split('"').next().unwrap().to_string())
        .expect("hostile row");
    let page = get(&fx, &format!("/ui/alerts/{hostile}"), &c);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("&lt;script&gt;") && !page.body.contains("<script>alert"));
    let js = get(&fx, "/ui/assets/app.js", &c);
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(get(&fx, "/ui/nope", &c).status, 404);
    assert_eq!(get(&fx, "/ui/alerts/nope", &c).status, 404);
    // the API is still there on the same listener
    assert_eq!(get(&fx, "/api/v1/health", "").status, 200);
}

#[test]
fn actions_need_csrf_same_origin_and_a_role() {
    let fx = fixture();
    let c = sign_in(&fx, "ana", "analyst-password");
    let inbox = get(&fx, "/ui/alerts", &c).body;
    let csrf = meta_csrf(&inbox);
    let id = first_alert_id(&inbox);
    let path = format!("/ui/alerts/{id}/action");
    let origin = fx.url.clone();
    // no token, a wrong token, another origin: refused, nothing changes
    for (tok, o) in [
        ("", Some(origin.as_str())),
        ("x", Some(origin.as_str())),
        (csrf.as_str(), Some("http://evil.example")),
    ] {
        let r = post(&fx, &path, &c, o, &[("csrf", tok), ("action", "flag")]);
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let page = get(&fx, &format!("/ui/alerts/{id}"), &c).body;
    assert!(!page.contains("st flagged"), "unchanged");
    // the right token from the same origin: acknowledged for the device, gone from the inbox
    let r = post(
        &fx,
        &path,
        &c,
        Some(&origin),
        &[
            ("csrf", &csrf),
            ("action", "ack"),
            ("scope", "device"),
            ("until", "7d"),
            ("note", "known <b>tool</b>"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = get(&fx, &format!("/ui/alerts/{id}"), &c).body;
    assert!(page.contains("st acknowledged"), "{page}");
    assert!(page.contains("known &lt;b&gt;tool&lt;/b&gt;") && page.contains("user:ana"));
    assert!(!get(&fx, "/ui/alerts", &c)
        .body
        .contains(&format!("data-id=\"{id}\"")));
    // the script's JSON answer
    let r = done(
        agent()
            .post(&format!("{}{path}", fx.url))
            .set("Cookie", &c)
            .set("Accept", "application/json")
            .send_form(&[("csrf", &csrf), ("action", "reopen")]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["after"].as_str()),
        (Some(true), Some("reopened"))
    );

    // a viewer reads but cannot act
    let vc = sign_in(&fx, "vic", "viewer-password");
    let vpage = get(&fx, &format!("/ui/alerts/{id}"), &vc);
    assert_eq!(vpage.status, 200);
    assert!(
        !vpage.body.contains("do-ack"),
        "no action forms for a viewer"
    );
    let vcsrf = meta_csrf(&vpage.body);
    let r = post(
        &fx,
        &path,
        &vc,
        Some(&origin),
        &[("csrf", &vcsrf), ("action", "flag")],
    );
    assert_eq!(r.status, 403);
    assert!(!get(&fx, &format!("/ui/alerts/{id}"), &c)
        .body
        .contains("st flagged"));
    // the viewer's session is not the analyst's token
    let r = post(
        &fx,
        &path,
        &vc,
        Some(&origin),
        &[("csrf", &csrf), ("action", "flag")],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn bulk_shows_the_count_before_acting() {
    let fx = fixture();
    let c = sign_in(&fx, "ana", "analyst-password");
    let csrf = meta_csrf(&get(&fx, "/ui/alerts", &c).body);
    let origin = fx.url.clone();
    let form = [
        ("csrf", csrf.as_str()),
        ("action", "resolve"),
        ("reason", "false_positive"),
        ("all", "1"),
        ("f_status", "open,flagged,reopened"),
    ];
    let r = post(&fx, "/ui/alerts/bulk", &c, Some(&origin), &form);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<strong id=\"matched\">4</strong>"),
        "{}",
        r.body
    );
    // nothing happened yet
    assert_eq!(
        get(&fx, "/ui/alerts", &c)
            .body
            .matches("<tr data-id=")
            .count(),
        4
    );
    let mut confirmed: Vec<(&str, &str)> = form.to_vec();
    confirmed.push(("confirm", "1"));
    let r = post(&fx, "/ui/alerts/bulk", &c, Some(&origin), &confirmed);
    assert!(r.body.contains("4 of 4 alerts resolved"), "{}", r.body);
    assert_eq!(
        get(&fx, "/ui/alerts", &c)
            .body
            .matches("<tr data-id=")
            .count(),
        0
    );
}

#[test]
fn sign_in_failures_are_limited_and_sessions_revocable() {
    let fx = fixture();
    let page = get(&fx, "/ui/login", "");
    assert!(!page.body.contains("No user exists"));
    let c = cookies(&page);
    let nonce = attr(&page.body, "nonce");
    let mut last = 0;
    for _ in 0..11 {
        let r = post(
            &fx,
            "/ui/login",
            &c,
            None,
            &[
                ("nonce", &nonce),
                ("user", "ana"),
                ("password", "wrong-password"),
            ],
        );
        last = r.status;
        if r.status == 429 {
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert_eq!(last, 429, "locked out after repeated failures");
    // a cross-site sign-in form is refused outright
    let r = post(
        &fx,
        "/ui/login",
        &c,
        Some("http://evil.example"),
        &[
            ("nonce", &nonce),
            ("user", "ana"),
            ("password", "analyst-password"),
        ],
    );
    assert_eq!(r.status, 403);
    let _ = &fx.host;
}

#[test]
fn sessions_list_and_revoke_and_live_events() {
    let fx = fixture();
    let a = sign_in(&fx, "ana", "analyst-password");
    let b = sign_in(&fx, "ana", "analyst-password");
    let settings = get(&fx, "/ui/settings", &a).body;
    assert_eq!(settings.matches("/revoke\"").count(), 2, "{settings}");
    let csrf = meta_csrf(&settings);
    // revoke one of them (whichever is listed first)
    let j = settings.find("/ui/settings/sessions/").unwrap();
    let path: String = settings[j..].split('"').next().unwrap().to_string();
    let r = post(&fx, &path, &a, Some(&fx.url.clone()), &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.body);
    let still = [get(&fx, "/ui/", &a).status, get(&fx, "/ui/", &b).status];
    assert!(
        still.contains(&200) && still.contains(&303),
        "one session ended: {still:?}"
    );
    // live updates: the first event says how many are open
    let live = if still[0] == 200 { &a } else { &b };
    let r = agent()
        .get(&format!("{}/ui/events", fx.url))
        .set("Cookie", live)
        .call()
        .unwrap();
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let mut rd = std::io::BufReader::new(r.into_reader());
    let mut got = String::new();
    while !got.contains("data:") {
        use std::io::BufRead;
        let mut l = String::new();
        assert!(rd.read_line(&mut l).unwrap() > 0, "stream ended: {got}");
        got.push_str(&l);
    }
    assert!(
        got.contains("event: alerts") && got.contains("\"open\":4"),
        "{got}"
    );
}

#[test]
fn charts_count_the_query_log() {
    let fx = fixture();
    // the query log: 30 lookups of 10.0.0.5 over the last half hour, 3 NXDOMAIN, 2 blocked
    let cfg = dnsight_triage::QueryLogConfig::default();
    let (log, writer) = dnsight_triage::QueryLog::spawn(fx._dir.path(), &cfg).unwrap();
    let t = now() - 1800;
    for i in 0..30 {
        let mut row = dnsight_triage::querylog::LogRow::from_event(&event(
            t + i * 60,
            "10.0.0.5",
            "www.usual.example",
        ));
        if i % 10 == 0 {
            row.rcode = Some(3);
        }
        if i % 15 == 0 {
            row.blocked = Some("test".into());
        }
        log.log_row(row);
    }
    assert_eq!(writer.close().written, 30);
    let cookie = sign_in(&fx, "ana", "analyst-password");
    // counted in the background: the first pages may say so, then the chart holds the counts
    let end = Instant::now() + Duration::from_secs(20);
    let overview = loop {
        let r = get(&fx, "/ui/", &cookie);
        assert_eq!(r.status, 200);
        if r.body.contains("queries: 30 in all") {
            break r.body;
        }
        assert!(
            Instant::now() < end,
            "no query counts on the overview: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(overview.contains("blocked: 2 in all"), "{overview}");
    assert!(overview.contains("NXDOMAIN: 3 in all"), "{overview}");
    assert!(overview.contains("new alerts: 4 in all"), "{overview}");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&fx, "/ui/devices", &cookie);
        if r.body.contains("30 queries in the last 7 days") {
            break;
        }
        assert!(Instant::now() < end, "no sparkline: {}", r.body);
        std::thread::sleep(Duration::from_millis(200));
    }
    let d = get(&fx, "/ui/devices/10.0.0.5", &cookie).body;
    assert!(
        d.contains("queries: 30 in all") && d.contains("blocked: 2 in all"),
        "{d}"
    );
    // a device without queries: an empty chart, not an error
    let d = get(&fx, "/ui/devices/10.0.0.6", &cookie);
    assert_eq!(d.status, 200);
}
