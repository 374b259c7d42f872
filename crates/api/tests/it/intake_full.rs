//! The event intake's back-pressure: while the pipeline's queue is full, `POST /api/v1/events`
//! answers 429 with `Retry-After`, says how many events of the body were taken, and never waits
//! for the queue (so a shipper backs off and the resolver never stalls behind it).

use super::*;
use std::sync::mpsc;

#[test]
fn event_intake_answers_429_while_the_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let analyst = SqliteStore::open(&path)
        .unwrap()
        .create_token("ana", Role::Analyst, None, "test", now())
        .unwrap()
        .1;
    let store = SqliteStore::open(&path).unwrap();
    // the pipeline's first alert output blocks until the test releases it: meanwhile the actor
    // takes nothing from its queue, of one batch, so the queue is full for certain
    let (blocked_tx, blocked_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let mut first = true;
    let outputs = Outputs {
        on_alert: Some(Box::new(move |_, _| {
            if std::mem::take(&mut first) {
                let _ = blocked_tx.send(());
                let _ = release_rx.recv_timeout(Duration::from_secs(60));
            }
        })),
        ..Outputs::default()
    };
    let p = Pipeline::new(
        Engine::new(engine_cfg()),
        Some(Box::new(store)),
        outputs,
        PipelineConfig {
            tick: Duration::from_millis(20),
            queue_batches: 1,
            ..PipelineConfig::default()
        },
    )
    .expect("pipeline");
    let run = dnsight_pipeline::spawn(p).expect("spawn");
    let mut c = ApiConfig::new("127.0.0.1:0".parse().unwrap());
    c.intake = Some(dnsight_api::Intake(run.producer()));
    let api = dnsight_api::start(c, run.handle(), path.clone()).expect("api");
    let url = api.url();
    let producer = run.producer();
    let fx = Fx {
        _dir: dir,
        dir: path,
        run: Some(run),
        api: Some(api),
        url,
        admin: String::new(),
        analyst,
        viewer: String::new(),
    };
    assert!(producer.send(vec![event(now() - 60, "10.0.0.1", "first.evil.example")]));
    blocked_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the pipeline did not output its first alert");

    // 3000 Route 53 records: the reader hands out batches of at most 1024 events; the first
    // fills the queue's one slot, the second finds it full
    let t = jiff::Timestamp::from_second(now() - 30).unwrap();
    let body: String = (0..3000)
        .map(|i| format!("{{\"query_timestamp\":\"{t}\",\"query_name\":\"n{i}.evil.example.\",\"query_type\":\"A\",\"rcode\":\"NOERROR\",\"answers\":[],\"srcaddr\":\"10.0.0.44\",\"srcport\":\"4000\",\"transport\":\"UDP\"}}\n"))
        .collect();
    let resp = agent()
        .post(&format!("{}/api/v1/events", fx.url))
        .set("Authorization", &format!("Bearer {}", fx.analyst))
        .set("Content-Type", "application/x-ndjson")
        .send_string(&body);
    let (status, retry, text) = match resp {
        Err(ureq::Error::Status(c, r)) => (
            c,
            r.header("Retry-After").map(str::to_string),
            r.into_string().unwrap(),
        ),
        Ok(r) => (r.status(), None, r.into_string().unwrap()),
        Err(e) => panic!("POST /api/v1/events: {e}"),
    };
    assert_eq!(status, 429, "{text}");
    assert_eq!(retry.as_deref(), Some("1"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    let msg = v.to_string();
    assert!(msg.contains("queue is full"), "{msg}");
    // what was taken is said: the first batch went in, the rest is the shipper's to resend
    let taken: u64 = msg
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {msg}"));
    assert!(taken > 0 && taken < 3000, "{msg}");
    // while the queue stays full, a small body is refused at once too
    let one = body.lines().next().unwrap().to_string() + "\n";
    assert_eq!(post_bytes(&fx, Some(&fx.analyst), one.as_bytes()).0, 429);

    // released, the pipeline drains its queue; a shipper that retries gets through
    release_tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, text) = post_bytes(&fx, Some(&fx.analyst), one.as_bytes());
        if st == 200 {
            break;
        }
        assert_eq!(st, 429, "{text}");
        assert!(Instant::now() < deadline, "the queue never drained");
        std::thread::sleep(Duration::from_millis(100));
    }
    let h = fx.run.as_ref().unwrap().handle();
    let want = 1 + taken + 1;
    while h.stats().unwrap().events_in < want {
        assert!(
            Instant::now() < deadline,
            "the pipeline did not take the events"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // the intake's ingestion health: what was taken, what a full queue refused
    let src = h.stats().unwrap().sources;
    let i = src
        .iter()
        .find(|s| s.name == "intake")
        .unwrap_or_else(|| panic!("{src:?}"));
    assert_eq!(i.events, taken + 1, "{i:?}");
    // the refused batch and the refused one-line body (what the reader had not read yet is
    // not counted: the shipper still holds it)
    assert!(i.dropped > 1, "{i:?}");
    assert!(i.up && i.last_event_unix.is_some(), "{i:?}");
}
