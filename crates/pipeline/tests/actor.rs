//! The pipeline for real: a real engine, a real SQLite triage store in a temp dir, the actor
//! thread, its Handle and Producer, and the outputs (alert lines, on_alert, on_blocks, RPZ).
//!
//! Every alert here comes from the policy detector (`*.example` is denied for everyone), which
//! fires from the first event: deterministic, no learning period needed. Policy alerts roll up
//! per destination (registered domain: `a.evil.example` → `evil.example`).

use dnsight_engine::{Engine, EngineConfig, Kind, PolicyRule, Severity, Status};
use dnsight_model::{DnsEvent, Name, Ts};
use dnsight_pipeline::{
    Action, ActionRequest, BlockTarget, Handle, Outputs, Pipeline, PipelineConfig, Running,
    ScopeSel, Target,
};
use dnsight_triage::{
    AlertFilter, BlockRule, Change, Reason, Scope, SqliteStore, StoredAlert, TriageStore,
};
use serde_json::Value;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const A: &str = "10.0.0.5";
const B: &str = "10.0.0.6";
const C: &str = "10.0.0.7";

fn now() -> i64 {
    dnsight_pipeline::now_secs()
}

/// Three engine workers: every action must reach the shards that hold its devices (the
/// results are those of one worker, see the engine's partition tests).
fn engine_cfg() -> EngineConfig {
    EngineConfig {
        policy: vec![PolicyRule {
            group: None,
            deny: vec!["example".into()],
            reason: "test names only".into(),
            ..Default::default()
        }],
        workers: 3,
        ..EngineConfig::default()
    }
}

fn ev(ts: i64, client: &str, qname: &str) -> DnsEvent {
    DnsEvent::new(
        Ts::from_secs(ts),
        client.parse().unwrap(),
        Name::parse(qname).unwrap(),
        1,
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A `Vec<u8>` the test keeps a handle on (the alert-lines writer).
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn lines(&self) -> Vec<Value> {
        let b = self.0.lock().unwrap();
        std::str::from_utf8(&b)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an alert line is JSON"))
            .collect()
    }
}

type Seen = Arc<Mutex<Vec<(String, Change, u64, u32, Severity)>>>;

fn store(dir: &Path) -> Box<dyn TriageStore> {
    Box::new(SqliteStore::open(dir).expect("open triage store"))
}

/// A second connection to the same file, as the API has: it sees only what was committed.
fn reader(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir).expect("open triage store (reader)")
}

fn all(filter: AlertFilter, rd: &SqliteStore) -> Vec<StoredAlert> {
    rd.list_alerts(&filter).unwrap().0
}

fn on_dest(rd: &SqliteStore, dest: &str) -> Vec<StoredAlert> {
    all(
        AlertFilter {
            destination: Some(dest.into()),
            ..Default::default()
        },
        rd,
    )
}

fn req(ids: &[&str], action: Action, note: Option<&str>) -> ActionRequest {
    ActionRequest {
        target: Target::Ids(ids.iter().map(|s| s.to_string()).collect()),
        action,
        note: note.map(str::to_string),
        actor: "tester".into(),
        dry_run: false,
    }
}

/// A dry run: answered after the pipeline wrote the engine's pending updates to the store.
fn flush(h: &Handle) {
    let mut r = req(&[], Action::Note, None);
    r.target = Target::Filter(AlertFilter::default());
    r.dry_run = true;
    h.act(r).expect("dry run");
}

/// Sends events and waits until the pipeline has analysed them and the store holds the result.
fn feed(run: &Running, events: Vec<DnsEvent>) {
    let h = run.handle();
    let target = h.stats().unwrap().events_in + events.len() as u64;
    assert!(run.producer().send(events));
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.stats().unwrap().events_in < target {
        assert!(
            Instant::now() < deadline,
            "the pipeline did not take the events"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    flush(&h);
}

fn fast() -> PipelineConfig {
    PipelineConfig {
        tick: Duration::from_millis(20),
        ..PipelineConfig::default()
    }
}

fn ok(r: Result<dnsight_pipeline::ActionResult, dnsight_pipeline::PipelineError>) -> Vec<Status> {
    let r = r.expect("action");
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert!(!r.outcomes.is_empty());
    r.outcomes.iter().map(|o| o.after).collect()
}

fn rpz_serial(text: &str) -> u32 {
    let soa = text
        .lines()
        .find(|l| l.starts_with("@ IN SOA"))
        .expect("SOA line");
    soa.split_whitespace().nth(5).unwrap().parse().unwrap()
}

// ------------------------------------------------------------------------------------------
// 1. ticks on time under sustained load, commands answered promptly

#[test]
fn ticks_and_commands_keep_up_under_sustained_load() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(engine_cfg(), dir.path()).unwrap();
    let p = Pipeline::new(
        engine,
        Some(store(dir.path())),
        Outputs::default(),
        PipelineConfig {
            tick: Duration::from_millis(50),
            save_every: Duration::from_millis(200),
            persistent: true,
            queue_batches: 8,
            ..PipelineConfig::default()
        },
    )
    .unwrap();
    let run = dnsight_pipeline::spawn(p).unwrap();
    let h = run.handle();
    let rd = reader(dir.path());

    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (tx, stop) = (run.producer(), stop.clone());
        std::thread::spawn(move || {
            let base = (now() - 3600) * 1_000_000;
            let (mut seq, mut batches, mut blocked) = (0u64, 0u64, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let mut b = Vec::with_capacity(512);
                for i in 0..512u64 {
                    let q = if i == 0 {
                        // one new policy alert per batch: store writes all along
                        format!("www.p{batches}.example")
                    } else {
                        format!("host{}.corp{}.com", seq % 997, seq % 13)
                    };
                    let mut e = ev(0, &format!("10.1.0.{}", seq % 50), &q);
                    e.ts = Ts::from_micros(base + (seq * 50) as i64);
                    b.push(e);
                    seq += 1;
                }
                batches += 1;
                let t = Instant::now();
                if !tx.send(b) {
                    break;
                }
                blocked += t.elapsed();
            }
            (seq, batches, blocked)
        })
    };

    let t0 = Instant::now();
    let first = h.stats().unwrap();
    let mut worst = Duration::ZERO;
    let mut worst_act = Duration::ZERO;
    let (mut n_cmds, mut n_acts) = (0u32, 0u32);
    let mut mid = None;
    let mut target: Option<String> = None;
    while t0.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        let s = h.stats().unwrap();
        worst = worst.max(t.elapsed());
        n_cmds += 1;
        if mid.is_none() && t0.elapsed() > Duration::from_millis(1500) {
            mid = Some((
                s.clone(),
                rd.list_alerts(&AlertFilter::default()).unwrap().1,
            ));
        }
        if target.is_none() {
            target = all(AlertFilter::default(), &rd)
                .first()
                .map(|a| a.alert.id.clone());
        }
        if let Some(id) = &target {
            let t = Instant::now();
            let st = ok(h.act(req(&[id], Action::Note, Some(&format!("note {n_acts}")))));
            let d = t.elapsed();
            worst = worst.max(d);
            worst_act = worst_act.max(d);
            n_acts += 1;
            assert_eq!(st, vec![Status::Open]);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let during = h.stats().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (sent, batches, blocked) = producer.join().unwrap();
    let last = run.stop();
    let (mid, stored_mid) = mid.expect("sampled during the load");
    let elapsed = t0.elapsed().as_secs_f64();
    eprintln!(
        "load: {sent} events in {batches} batches over {elapsed:.1} s (producer blocked on a \
         full queue {blocked:?}); {n_cmds} stats and \
         {n_acts} note actions during it; worst command latency {worst:?} (worst action \
         {worst_act:?}); ticks {} -> {}, saves {} -> {}, store alerts at 1.5 s: {stored_mid}",
        first.ticks, during.ticks, first.saves, during.saves
    );

    // the producer really kept the pipeline busy: the queue was full (no throughput figure is
    // asserted: the machine is shared; the figure is printed above)
    assert!(during.events_in > 0);
    assert!(
        blocked > Duration::from_millis(200),
        "the producer was never held back by a full queue ({blocked:?})"
    );
    // commands were answered while it ran (generous bound: a shared, noisy machine)
    assert!(n_acts >= 3, "only {n_acts} actions in 2 s");
    assert!(worst < Duration::from_secs(2), "worst latency {worst:?}");
    // time-driven work ran during the load, not after it
    assert!(
        during.ticks >= first.ticks + 5,
        "ticks {} -> {}",
        first.ticks,
        during.ticks
    );
    assert!(
        during.saves >= first.saves + 2,
        "saves {} -> {}",
        first.saves,
        during.saves
    );
    assert_eq!(during.save_errors, 0);
    assert!(during.last_save_unix.is_some());
    assert!(
        mid.alerts_written > 0 && stored_mid > 0,
        "no alerts stored during the load"
    );
    assert!(mid.ticks > first.ticks);
    // everything sent was analysed by the end, and every policy alert reached the store
    let mut last = last;
    assert_eq!(last.stats().events_in, sent);
    assert_eq!(last.stats().batches_in, batches);
    drop(last);
    let n = rd
        .list_alerts(&AlertFilter {
            kind: vec![Kind::Policy],
            ..Default::default()
        })
        .unwrap()
        .1;
    assert_eq!(n, batches, "one policy alert per batch");
    assert_eq!(
        rd.history(target.as_deref().unwrap())
            .unwrap()
            .iter()
            .filter(|e| e.action == "note")
            .count(),
        n_acts as usize
    );
}

// ------------------------------------------------------------------------------------------
// 2. the one output throttle

/// Outputs that keep the JSON lines in `buf` and every `on_alert` call in `seen`.
fn recording(buf: &Buf, seen: &Seen) -> Outputs {
    let s2 = seen.clone();
    Outputs {
        alert_lines: Some(Box::new(buf.clone())),
        on_alert: Some(Box::new(move |a, c| {
            s2.lock()
                .unwrap()
                .push((a.id.clone(), c, a.count, a.device_count, a.severity))
        })),
        ..Outputs::default()
    }
}

fn throttled(min: Severity) -> (tempfile::TempDir, Pipeline, Buf, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let (buf, seen) = (Buf::default(), Seen::default());
    let out = recording(&buf, &seen);
    let p = Pipeline::new(
        Engine::new(engine_cfg()),
        Some(store(dir.path())),
        out,
        PipelineConfig {
            min_output_severity: min,
            ..PipelineConfig::default()
        },
    )
    .unwrap();
    (dir, p, buf, seen)
}

#[test]
fn throttle_new_repeats_doubling_growth_escalation_and_final_state() {
    let (dir, mut p, buf, seen) = throttled(Severity::Info);
    let t = now() - 3600;
    let n_lines = |buf: &Buf| buf.lines().len();

    // new: one line, however many events went into it before the tick
    p.observe(&[
        ev(t, A, "a.evil.example"),
        ev(t + 1, A, "b.evil.example"),
        ev(t + 2, A, "a.evil.example"),
        ev(t + 2, C, "www.other.example"),
    ]);
    p.tick();
    let l = buf.lines();
    assert_eq!(l.len(), 2, "{l:?}");
    let evil = l
        .iter()
        .find(|a| a["destination"] == "evil.example")
        .unwrap();
    let id = evil["id"].as_str().unwrap().to_string();
    assert_eq!(evil["count"], 3);
    assert_eq!(evil["device_count"], 1);
    assert_eq!(evil["severity"], "medium");
    assert_eq!(evil["status"], "open");
    assert!(seen.lock().unwrap().iter().all(|s| s.1 == Change::New));

    // repeats of the same event: quiet until the count doubles (3 → 6)
    p.observe(&[
        ev(t + 3, A, "a.evil.example"),
        ev(t + 4, A, "a.evil.example"),
    ]);
    p.tick();
    p.tick();
    assert_eq!(
        n_lines(&buf),
        2,
        "a repeat below twice the count wrote a line"
    );
    p.observe(&[ev(t + 5, A, "a.evil.example")]);
    p.tick();
    let l = buf.lines();
    assert_eq!(l.len(), 3);
    assert_eq!(
        (l[2]["id"].as_str(), l[2]["count"].as_u64()),
        (Some(&*id), Some(6))
    );
    assert_eq!(seen.lock().unwrap()[2].1, Change::Updated);

    // grows: a second device joins the roll-up
    p.observe(&[ev(t + 6, B, "c.evil.example")]);
    p.tick();
    let l = buf.lines();
    assert_eq!(l.len(), 4);
    assert_eq!(l[3]["id"].as_str(), Some(&*id));
    assert_eq!(l[3]["device_count"], 2);
    assert_eq!(l[3]["count"], 7);
    assert_eq!(seen.lock().unwrap()[3].1, Change::Grew);
    p.tick();
    assert_eq!(n_lines(&buf), 4, "an idle tick wrote a line");

    // escalates: a flag raises severity to at least high
    let r = p.act(&req(&[&id], Action::Flag, None)).unwrap();
    assert_eq!(r.outcomes[0].after, Status::Flagged);
    let l = buf.lines();
    assert_eq!(l.len(), 5, "{l:?}");
    assert_eq!(l[4]["id"].as_str(), Some(&*id));
    assert_eq!(l[4]["status"], "flagged");
    let sev: Severity = serde_json::from_value(l[4]["severity"].clone()).unwrap();
    assert!(sev >= Severity::High, "{sev:?}");
    assert!(l[4]["score"].as_u64().unwrap() >= 65);
    assert_eq!(seen.lock().unwrap()[4].1, Change::Escalated);

    // one more event: below doubling, no line now ...
    p.observe(&[ev(t + 7, A, "a.evil.example")]);
    p.tick();
    assert_eq!(n_lines(&buf), 5);
    // ... but the final state of every changed alert at shutdown (and only of changed ones)
    p.finish();
    let l = buf.lines();
    assert_eq!(l.len(), 6, "{l:?}");
    assert_eq!(l[5]["id"].as_str(), Some(&*id));
    assert_eq!(l[5]["count"], 8);
    assert_eq!(l[5]["status"], "flagged");

    // on_alert saw exactly the lines, in order; the counter agrees
    let s = seen.lock().unwrap().clone();
    let ids: Vec<&str> = l.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(s.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ids);
    assert_eq!(
        s.iter().map(|x| x.2).collect::<Vec<_>>(),
        l.iter()
            .map(|a| a["count"].as_u64().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(p.stats().alert_lines_out, 6);
    // the store has the final state too, the status a person gave it included
    let st = reader(dir.path()).get_alert(&id).unwrap().unwrap();
    assert_eq!((st.alert.count, st.alert.status), (8, Status::Flagged));
}

#[test]
fn throttle_below_min_severity_is_stored_not_written() {
    let (dir, mut p, buf, seen) = throttled(Severity::High);
    let t = now() - 3600;
    p.observe(&[ev(t, A, "a.evil.example"), ev(t, B, "x.bad.example")]);
    p.tick();
    p.observe(&[ev(t + 1, C, "a.evil.example")]);
    p.tick();
    assert!(buf.lines().is_empty(), "medium alerts were written");
    let rd = reader(dir.path());
    let evil = on_dest(&rd, "evil.example");
    assert_eq!(evil.len(), 1);
    assert_eq!(evil[0].alert.device_count, 2);
    assert_eq!(on_dest(&rd, "bad.example").len(), 1);
    // flagged: high, written
    p.act(&req(&[&evil[0].alert.id], Action::Flag, None))
        .unwrap();
    let l = buf.lines();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["id"].as_str(), Some(evil[0].alert.id.as_str()));
    // first line of this alert: the store had it already, so not "new" but escalated
    assert_eq!(seen.lock().unwrap()[0].1, Change::Escalated);
    p.finish();
    assert_eq!(buf.lines().len(), 1);
}

// ------------------------------------------------------------------------------------------
// 3. actions through the Handle, each confirmed after its commit

#[test]
fn actions_through_the_handle_are_committed_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let rpz = dir.path().join("dnsight.rpz");
    let blocks: Arc<Mutex<Vec<Vec<BlockRule>>>> = Arc::default();
    let b2 = blocks.clone();
    let out = Outputs {
        on_blocks: Some(Box::new(move |r: &[BlockRule]| {
            b2.lock().unwrap().push(r.to_vec())
        })),
        rpz_file: Some((rpz.clone(), "rpz.test".into())),
        ..Outputs::default()
    };
    let p = Pipeline::new(
        Engine::new(engine_cfg()),
        Some(store(dir.path())),
        out,
        fast(),
    )
    .unwrap();
    // once at start, with nothing active
    assert_eq!(*blocks.lock().unwrap(), vec![Vec::<BlockRule>::new()]);
    let serial0 = rpz_serial(&std::fs::read_to_string(&rpz).unwrap());
    let run = dnsight_pipeline::spawn(p).unwrap();
    let h = run.handle();
    let rd = reader(dir.path());
    let t = now() - 3600;
    let open_on = |dev: &str| h.device(ip(dev)).unwrap().unwrap().open_alerts;

    feed(&run, vec![ev(t, A, "a.evil.example")]);
    let got = on_dest(&rd, "evil.example");
    assert_eq!(got.len(), 1);
    let id_a = got[0].alert.id.clone();
    assert_eq!(open_on(A), vec![id_a.clone()]);

    // ack, scope device: closed as acknowledged in the store (seen by another connection the
    // moment the answer comes) and in the engine
    let r = ok(h.act(req(
        &[&id_a],
        Action::Ack {
            scope: ScopeSel::Device,
            until: None,
        },
        Some("the lab box"),
    )));
    assert_eq!(r, vec![Status::Acknowledged]);
    let s = rd.get_alert(&id_a).unwrap().unwrap();
    assert_eq!(s.alert.status, Status::Acknowledged);
    assert_eq!(s.note.as_deref(), Some("the lab box"));
    let acks = rd.active_acks(now()).unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].scope, Scope::Device(ip(A)));
    assert_eq!(acks[0].destination, "evil.example");
    assert!(open_on(A).is_empty());
    assert_eq!(h.stats().unwrap().engine.alerts, 0);

    // the same device doing the same again stays quiet
    let sup = h.stats().unwrap().engine.suppressed;
    feed(
        &run,
        vec![
            ev(t + 10, A, "a.evil.example"),
            ev(t + 11, A, "www.evil.example"),
        ],
    );
    assert_eq!(h.stats().unwrap().engine.suppressed, sup + 2);
    assert_eq!(on_dest(&rd, "evil.example").len(), 1);
    assert!(open_on(A).is_empty());

    // another device: the ack's scope does not cover it, its own alert opens
    feed(&run, vec![ev(t + 20, B, "a.evil.example")]);
    let got = on_dest(&rd, "evil.example");
    assert_eq!(got.len(), 2);
    let b = got.iter().find(|a| a.alert.id != id_a).unwrap();
    let id_b = b.alert.id.clone();
    assert_eq!(b.alert.status, Status::Open);
    assert_eq!((b.alert.device.as_str(), b.alert.device_count), (B, 1));
    assert_eq!(
        rd.get_alert(&id_a).unwrap().unwrap().alert.status,
        Status::Acknowledged
    );
    assert_eq!(open_on(B), vec![id_b.clone()]);

    // flag: severity at least high, status flagged, stays live
    assert_eq!(
        ok(h.act(req(&[&id_b], Action::Flag, None))),
        vec![Status::Flagged]
    );
    let s = rd.get_alert(&id_b).unwrap().unwrap();
    assert_eq!(s.alert.status, Status::Flagged);
    assert!(s.alert.severity >= Severity::High, "{:?}", s.alert.severity);
    assert!(s.alert.score >= 65);
    assert_eq!(open_on(B), vec![id_b.clone()]);

    // block (scope all, the destination and below): the resolver's rules and the RPZ file
    let calls = blocks.lock().unwrap().len();
    let r = ok(h.act(req(
        &[&id_b],
        Action::Block {
            scope: ScopeSel::All,
            target: BlockTarget::Domain,
            duration: None,
        },
        None,
    )));
    assert_eq!(r, vec![Status::Blocked]);
    {
        let bl = blocks.lock().unwrap();
        assert_eq!(bl.len(), calls + 1, "on_blocks not called once");
        let last = bl.last().unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].name, "evil.example");
        assert!(last[0].subdomains && !last[0].allow);
        assert_eq!(last[0].scope, Scope::All);
        assert_eq!(last[0].alert_id.as_deref(), Some(id_b.as_str()));
    }
    let zone = std::fs::read_to_string(&rpz).unwrap();
    let serial1 = rpz_serial(&zone);
    assert!(serial1 > serial0, "serial {serial0} -> {serial1}");
    assert!(
        zone.lines().any(|l| l.starts_with("evil.example ")),
        "{zone}"
    );
    assert!(
        zone.lines().any(|l| l.starts_with("*.evil.example ")),
        "{zone}"
    );
    assert_eq!(
        rd.get_alert(&id_b).unwrap().unwrap().alert.status,
        Status::Blocked
    );
    assert_eq!(rd.active_blocks(now()).unwrap().len(), 1);
    // blocked alerts stay live in the engine (the blocked queries still arrive)
    assert_eq!(open_on(B), vec![id_b.clone()]);

    // unblock: the rules go, the serial rises again, the alert reopens
    assert_eq!(
        ok(h.act(req(&[&id_b], Action::Unblock, None))),
        vec![Status::Reopened]
    );
    assert!(blocks.lock().unwrap().last().unwrap().is_empty());
    let zone = std::fs::read_to_string(&rpz).unwrap();
    let serial2 = rpz_serial(&zone);
    assert!(serial2 > serial1, "serial {serial1} -> {serial2}");
    assert!(!zone.contains("evil.example"), "{zone}");
    assert_eq!(
        rd.get_alert(&id_b).unwrap().unwrap().alert.status,
        Status::Reopened
    );
    assert!(rd.active_blocks(now()).unwrap().is_empty());
    // unblock again: an error for that alert, not a failure of the request
    let r = h.act(req(&[&id_b], Action::Unblock, None)).unwrap();
    assert_eq!(r.errors.len(), 1, "{r:?}");

    // resolve with a reason: closed in the store and gone from the engine
    let r = ok(h.act(req(
        &[&id_b],
        Action::Resolve {
            reason: Reason::FalsePositive,
        },
        Some("test traffic"),
    )));
    assert_eq!(r, vec![Status::Resolved]);
    let s = rd.get_alert(&id_b).unwrap().unwrap();
    assert_eq!(s.alert.status, Status::Resolved);
    assert_eq!(s.reason, Some(Reason::FalsePositive));
    assert_eq!(s.note.as_deref(), Some("test traffic"));
    assert!(open_on(B).is_empty());
    assert_eq!(h.stats().unwrap().engine.alerts, 0);

    // note: the status stays; a note without text is that alert's error
    assert_eq!(
        ok(h.act(req(&[&id_b], Action::Note, Some("checked with the owner")))),
        vec![Status::Resolved]
    );
    let s = rd.get_alert(&id_b).unwrap().unwrap();
    assert_eq!(s.alert.status, Status::Resolved);
    assert_eq!(s.note.as_deref(), Some("checked with the owner"));
    let r = h.act(req(&[&id_b], Action::Note, Some("  "))).unwrap();
    assert!(r.outcomes.is_empty() && r.errors.len() == 1, "{r:?}");
    // an unknown id, too
    let r = h.act(req(&["nope"], Action::Reopen, None)).unwrap();
    assert!(r.outcomes.is_empty() && r.errors.len() == 1, "{r:?}");

    // reopen: live again in the engine, reopened in the store
    assert_eq!(
        ok(h.act(req(&[&id_b], Action::Reopen, None))),
        vec![Status::Reopened]
    );
    assert_eq!(
        rd.get_alert(&id_b).unwrap().unwrap().alert.status,
        Status::Reopened
    );
    assert_eq!(open_on(B), vec![id_b.clone()]);
    // and findings fold into it again
    feed(&run, vec![ev(t + 30, B, "a.evil.example")]);
    let s = rd.get_alert(&id_b).unwrap().unwrap();
    assert_eq!((s.alert.status, s.alert.count), (Status::Reopened, 2));
    assert_eq!(on_dest(&rd, "evil.example").len(), 2);

    // the audit trail, in order, by the actor who did it
    let hist: Vec<(String, String)> = rd
        .history(&id_b)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect();
    let want = ["flag", "block", "unblock", "resolve", "note", "reopen"];
    let mut it = hist.iter().filter(|(_, who)| who == "tester");
    for w in want {
        assert!(it.any(|(a, _)| a == w), "{w} missing in order: {hist:?}");
    }
    let stats = h.stats().unwrap();
    assert_eq!(stats.store.acks_active, 1);
    assert_eq!(stats.store.blocks_active, 0);
    run.stop();
}

#[test]
fn ack_scope_device_on_a_rollup_covers_each_of_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    let run = dnsight_pipeline::spawn(
        Pipeline::new(
            Engine::new(engine_cfg()),
            Some(store(dir.path())),
            Outputs::default(),
            fast(),
        )
        .unwrap(),
    )
    .unwrap();
    let h = run.handle();
    let rd = reader(dir.path());
    let t = now() - 3600;
    feed(
        &run,
        vec![ev(t, A, "a.evil.example"), ev(t + 1, B, "b.evil.example")],
    );
    let got = on_dest(&rd, "evil.example");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].alert.device_count, 2);
    let id = got[0].alert.id.clone();
    let r = h
        .act(req(
            &[&id],
            Action::Ack {
                scope: ScopeSel::Device,
                until: Some(now() + 86_400),
            },
            None,
        ))
        .unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    let mut scopes: Vec<Scope> = r
        .outcomes
        .iter()
        .filter_map(|o| o.ack.as_ref().map(|a| a.scope.clone()))
        .collect();
    scopes.sort_by_key(|s| s.label());
    assert_eq!(scopes, vec![Scope::Device(ip(A)), Scope::Device(ip(B))]);
    assert_eq!(
        rd.get_alert(&id).unwrap().unwrap().alert.status,
        Status::Acknowledged
    );
    // both quiet, a third device is not
    feed(
        &run,
        vec![
            ev(t + 10, A, "a.evil.example"),
            ev(t + 11, B, "a.evil.example"),
            ev(t + 12, C, "a.evil.example"),
        ],
    );
    let got = on_dest(&rd, "evil.example");
    assert_eq!(got.len(), 2);
    let new = got.iter().find(|a| a.alert.id != id).unwrap();
    assert_eq!((new.alert.device.as_str(), new.alert.device_count), (C, 1));
    run.stop();
}

// ------------------------------------------------------------------------------------------
// 4. restart over the same state directory

fn persistent(dir: &Path, save: bool) -> Pipeline {
    // as `serve` does: the engine's state and the triage store in the same directory
    let engine = Engine::open(engine_cfg(), dir).expect("open engine state");
    Pipeline::new(
        engine,
        Some(store(dir)),
        Outputs::default(),
        PipelineConfig {
            persistent: save,
            ..fast()
        },
    )
    .expect("pipeline")
}

#[test]
fn restart_reapplies_acks_and_keeps_closed_alerts_closed() {
    let dir = tempfile::tempdir().unwrap();
    let rd = reader(dir.path());
    let t = now() - 7200;

    // run 1: three alerts, saved at a clean stop
    let run = dnsight_pipeline::spawn(persistent(dir.path(), true)).unwrap();
    feed(
        &run,
        vec![
            ev(t, A, "x.evil.example"),
            ev(t + 1, B, "y.bad.example"),
            ev(t + 2, C, "z.other.example"),
        ],
    );
    let p = run.stop();
    assert_eq!(p.engine().alerts().len(), 3);
    drop(p);
    let id = |d: &str| on_dest(&rd, d)[0].alert.id.clone();
    let (ia, ib, ic) = (id("evil.example"), id("bad.example"), id("other.example"));

    // run 2: actions confirmed (committed to the store), then the process dies before the
    // engine saves again (persistent: false stands for kill -9 after the commit)
    let run = dnsight_pipeline::spawn(persistent(dir.path(), false)).unwrap();
    let h = run.handle();
    assert_eq!(
        h.stats().unwrap().engine.alerts,
        3,
        "alerts restored from the state"
    );
    ok(h.act(req(
        &[&ia],
        Action::Ack {
            scope: ScopeSel::Device,
            until: None,
        },
        None,
    )));
    ok(h.act(req(
        &[&ib],
        Action::Resolve {
            reason: Reason::TruePositive,
        },
        None,
    )));
    assert_eq!(h.stats().unwrap().engine.alerts, 1);
    drop(run.stop());

    // run 3: the state still holds all three alerts live and no ack; the store knows better
    let p = persistent(dir.path(), true);
    let live: Vec<String> = p.engine().alerts().into_iter().map(|a| a.id).collect();
    assert_eq!(
        live,
        vec![ic.clone()],
        "the store's decisions were not applied at start"
    );
    assert_eq!(p.engine().ack_count(), 1);
    let run = dnsight_pipeline::spawn(p).unwrap();
    let h = run.handle();
    let sup = h.stats().unwrap().engine.suppressed;
    feed(
        &run,
        vec![
            ev(t + 100, A, "x.evil.example"),
            ev(t + 101, C, "z.other.example"),
        ],
    );
    let s = h.stats().unwrap();
    assert_eq!(
        s.engine.suppressed,
        sup + 1,
        "the acked device was not quiet"
    );
    assert_eq!(s.engine.alerts, 1);
    assert_eq!(on_dest(&rd, "evil.example").len(), 1);
    let st = |i: &str| rd.get_alert(i).unwrap().unwrap();
    assert_eq!(st(&ia).alert.status, Status::Acknowledged);
    assert_eq!(st(&ib).alert.status, Status::Resolved);
    assert_eq!(st(&ib).reason, Some(Reason::TruePositive));
    assert_eq!(
        (st(&ic).alert.status, st(&ic).alert.count),
        (Status::Open, 2)
    );
    // nothing reopened behind anyone's back
    assert!(rd
        .history(&ia)
        .unwrap()
        .iter()
        .chain(rd.history(&ib).unwrap().iter())
        .all(|e| e.actor != "system"));
    drop(run.stop());

    // run 4, after a clean stop: the same
    let p = persistent(dir.path(), true);
    let live: Vec<String> = p.engine().alerts().into_iter().map(|a| a.id).collect();
    assert_eq!(live, vec![ic]);
    let run = dnsight_pipeline::spawn(p).unwrap();
    feed(&run, vec![ev(t + 200, A, "x.evil.example")]);
    assert_eq!(run.handle().stats().unwrap().engine.alerts, 1);
    assert_eq!(on_dest(&rd, "evil.example").len(), 1);

    // reopening the acknowledged alert ends its ack: the device is heard again, and a restart
    // does not re-apply the ack and close the alert behind the person's back
    let h = run.handle();
    ok(h.act(req(&[&ia], Action::Reopen, None)));
    assert_eq!(h.stats().unwrap().engine.alerts, 2);
    let before = st(&ia).alert.count;
    feed(&run, vec![ev(t + 300, A, "x.evil.example")]);
    let reopened = st(&ia);
    assert_eq!(reopened.alert.status, Status::Reopened);
    assert_eq!(
        reopened.alert.count,
        before + 1,
        "the reopened alert is not counting"
    );
    drop(run.stop());
    let p = persistent(dir.path(), true);
    assert_eq!(p.engine().ack_count(), 0);
    let mut live: Vec<String> = p.engine().alerts().into_iter().map(|a| a.id).collect();
    live.sort();
    let mut want = vec![ia.clone(), ic_again(&rd)];
    want.sort();
    assert_eq!(live, want);
    assert_eq!(st(&ia).alert.status, Status::Reopened);
}

#[test]
fn an_action_saves_the_state_soon_so_a_crash_keeps_what_was_learned() {
    // without this, kill -9 after an ack loses up to `save_every` of learning: the device
    // that was acknowledged comes back as a new device
    let dir = tempfile::tempdir().unwrap();
    let rd = reader(dir.path());
    let t = now() - 600;
    let engine = Engine::open(engine_cfg(), dir.path()).unwrap();
    let p = Pipeline::new(
        engine,
        Some(store(dir.path())),
        Outputs::default(),
        PipelineConfig {
            persistent: true,
            save_every: Duration::from_secs(3600),
            save_after_action: Duration::from_millis(0),
            ..fast()
        },
    )
    .unwrap();
    let run = dnsight_pipeline::spawn(p).unwrap();
    let h = run.handle();
    feed(&run, vec![ev(t, A, "x.evil.example")]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.stats().unwrap().saves, 0, "saved without an action");
    let id = on_dest(&rd, "evil.example")[0].alert.id.clone();
    ok(h.act(req(
        &[&id],
        Action::Ack {
            scope: ScopeSel::Device,
            until: None,
        },
        None,
    )));
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.stats().unwrap().saves == 0 {
        assert!(Instant::now() < deadline, "no save after the action");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.stats().unwrap().saves, 1, "saved again without an action");
    // the state file as kill -9 would leave it now: a restart from it knows the device
    let crashed = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap();
        if f.file_name().to_string_lossy().starts_with("engine") {
            std::fs::copy(f.path(), crashed.path().join(f.file_name())).unwrap();
        }
    }
    let again = Engine::open(engine_cfg(), crashed.path()).unwrap();
    assert_eq!(again.stats().devices, 1);
    drop(run.stop());
}

fn ic_again(rd: &SqliteStore) -> String {
    on_dest(rd, "other.example")[0].alert.id.clone()
}

// ------------------------------------------------------------------------------------------
// 5. bounded memory over months, history kept

#[test]
fn live_alerts_stay_bounded_and_expired_ones_stay_in_the_store() {
    const MAX: usize = 200;
    const IDLE: i64 = 3600;
    let dir = tempfile::tempdir().unwrap();
    let cfg = EngineConfig {
        max_open_alerts: MAX,
        alert_idle_secs: IDLE,
        ..engine_cfg()
    };
    let lines = Buf::default();
    let mut p = Pipeline::new(
        Engine::new(cfg),
        Some(store(dir.path())),
        Outputs {
            alert_lines: Some(Box::new(lines.clone())),
            ..Outputs::default()
        },
        PipelineConfig::default(),
    )
    .unwrap();
    let devs = ["10.2.0.1", "10.2.0.2", "10.2.0.3", "10.2.0.4"];
    let t0 = now() - 100 * 86_400;
    let mut n = 0usize; // distinct destinations = distinct policy alerts
    let mut peak = 0u64;
    let mut step = |p: &mut Pipeline, e: DnsEvent| {
        p.observe(std::slice::from_ref(&e));
        let live = p.engine().stats().alerts;
        peak = peak.max(live);
        assert!(live <= MAX as u64, "{live} live alerts, bound {MAX}");
    };
    // 90 days: a trickle of one new destination an hour, and every third day a burst of 300
    // within five minutes (more than the bound, all between two ticks)
    for day in 0..90i64 {
        for hour in 0..24i64 {
            let ts = t0 + day * 86_400 + hour * 3600;
            step(&mut p, ev(ts, devs[n % 4], &format!("t{n}.example")));
            n += 1;
            if hour == 12 && day % 3 == 0 {
                for i in 0..300 {
                    step(&mut p, ev(ts + i, devs[n % 4], &format!("b{n}.example")));
                    n += 1;
                }
            }
            if hour % 6 == 0 {
                p.tick();
            }
        }
    }
    p.tick();
    let live = p.engine().alerts();
    assert!(live.len() <= MAX);
    p.finish();

    let rd = reader(dir.path());
    let (stored, total) = rd
        .list_alerts(&AlertFilter {
            kind: vec![Kind::Policy],
            ..Default::default()
        })
        .unwrap();
    eprintln!(
        "bounded: {n} policy alerts over 90 days, peak {peak} live (bound {MAX}), {} live at \
         the end, {total} in the store, {} alert lines",
        live.len(),
        lines.lines().len()
    );
    // history not lost: every alert the engine raised is in the store
    assert_eq!(total as usize, n, "alerts missing from the store");
    let live_ids: std::collections::HashSet<&str> = live.iter().map(|a| a.id.as_str()).collect();
    let mut expired = 0;
    for s in &stored {
        if live_ids.contains(s.alert.id.as_str()) {
            assert!(s.alert.status.is_open(), "{:?}", s.alert.status);
            continue;
        }
        assert_eq!(s.alert.status, Status::Resolved, "{}", s.alert.id);
        assert_eq!(s.reason, Some(Reason::Expired), "{}", s.alert.id);
        assert_eq!(
            s.alert.evidence.get("closed").and_then(Value::as_str),
            Some("expired"),
            "{}: {}",
            s.alert.id,
            s.alert.evidence
        );
        expired += 1;
    }
    assert_eq!(expired + live.len(), n);
    // the closing is audited as the system's
    let one = stored
        .iter()
        .find(|s| s.alert.status == Status::Resolved)
        .unwrap();
    let h = rd.history(&one.alert.id).unwrap();
    assert!(
        h.iter().any(|e| e.action == "resolve"
            && e.actor == "system"
            && e.reason == Some(Reason::Expired)),
        "{h:?}"
    );
    let st = p.stats();
    assert!(st.engine.alerts <= MAX as u64);
    // (other kinds, e.g. new_destination once learning ended, expire the same way)
    let resolved = st.store.alerts_by_status.get("resolved").copied();
    assert!(resolved.unwrap_or(0) as usize >= expired);
}

// ------------------------------------------------------------------------------------------
// a store that fails: nothing is lost, the updates are written at the next tick

/// The real store, whose alert writes fail while `fail` is set (a full disk, a locked file).
struct Flaky {
    inner: SqliteStore,
    fail: Arc<AtomicBool>,
}

type TResult<T> = dnsight_triage::Result<T>;

impl TriageStore for Flaky {
    fn upsert_alerts(
        &mut self,
        alerts: &[dnsight_engine::Alert],
        now: i64,
    ) -> TResult<Vec<Change>> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(dnsight_triage::TriageError::Db(
                "injected: disk full".into(),
            ));
        }
        self.inner.upsert_alerts(alerts, now)
    }
    fn get_alert(&self, id: &str) -> TResult<Option<StoredAlert>> {
        self.inner.get_alert(id)
    }
    fn list_alerts(&self, f: &AlertFilter) -> TResult<(Vec<StoredAlert>, u64)> {
        self.inner.list_alerts(f)
    }
    fn alert_ids(&self, f: &AlertFilter) -> TResult<Vec<String>> {
        self.inner.alert_ids(f)
    }
    fn act(
        &mut self,
        alert_id: &str,
        act: &dnsight_triage::Act,
        actor: &str,
        note: Option<&str>,
        now: i64,
    ) -> TResult<dnsight_triage::ActOutcome> {
        self.inner.act(alert_id, act, actor, note, now)
    }
    fn history(&self, alert_id: &str) -> TResult<Vec<dnsight_triage::AuditEntry>> {
        self.inner.history(alert_id)
    }
    fn audit(&self, limit: u32) -> TResult<Vec<dnsight_triage::AuditEntry>> {
        self.inner.audit(limit)
    }
    fn audit_after(&self, after_id: i64, limit: u32) -> TResult<Vec<dnsight_triage::AuditEntry>> {
        self.inner.audit_after(after_id, limit)
    }
    fn active_acks(&self, now: i64) -> TResult<Vec<dnsight_triage::AckRule>> {
        self.inner.active_acks(now)
    }
    fn add_block(
        &mut self,
        b: &dnsight_triage::NewBlock,
        actor: &str,
        now: i64,
    ) -> TResult<BlockRule> {
        self.inner.add_block(b, actor, now)
    }
    fn remove_block(&mut self, id: i64, actor: &str, now: i64) -> TResult<BlockRule> {
        self.inner.remove_block(id, actor, now)
    }
    fn active_blocks(&self, now: i64) -> TResult<Vec<BlockRule>> {
        self.inner.active_blocks(now)
    }
    fn expire(&mut self, now: i64) -> TResult<usize> {
        self.inner.expire(now)
    }
    fn rpz_serial(&self) -> TResult<u32> {
        self.inner.rpz_serial()
    }
    fn create_token(
        &mut self,
        name: &str,
        role: dnsight_triage::Role,
        expires_at: Option<i64>,
        actor: &str,
        now: i64,
    ) -> TResult<(dnsight_triage::TokenInfo, String)> {
        self.inner.create_token(name, role, expires_at, actor, now)
    }
    fn verify_token(&self, secret: &str, now: i64) -> TResult<Option<dnsight_triage::TokenInfo>> {
        self.inner.verify_token(secret, now)
    }
    fn list_tokens(&self) -> TResult<Vec<dnsight_triage::TokenInfo>> {
        self.inner.list_tokens()
    }
    fn revoke_token(
        &mut self,
        name_or_id: &str,
        actor: &str,
        now: i64,
    ) -> TResult<dnsight_triage::TokenInfo> {
        self.inner.revoke_token(name_or_id, actor, now)
    }
    fn set_router(&mut self, r: Option<Arc<dyn dnsight_triage::Router>>) {
        self.inner.set_router(r)
    }
    fn outbox_due(
        &self,
        t: &str,
        now: i64,
        limit: u32,
    ) -> TResult<Vec<dnsight_triage::OutboxItem>> {
        self.inner.outbox_due(t, now, limit)
    }
    fn outbox_sent(&mut self, ids: &[i64], now: i64) -> TResult<()> {
        self.inner.outbox_sent(ids, now)
    }
    fn outbox_digest_sent(&mut self, t: &str, ids: &[i64], now: i64) -> TResult<i64> {
        self.inner.outbox_digest_sent(t, ids, now)
    }
    fn outbox_retry(&mut self, ids: &[i64], e: &str, next: i64, max: u32) -> TResult<u64> {
        self.inner.outbox_retry(ids, e, next, max)
    }
    fn outbox_sent_since(&self, t: &str, since: i64) -> TResult<(u64, u64)> {
        self.inner.outbox_sent_since(t, since)
    }
    fn outbox_last_digest(&self, t: &str) -> TResult<Option<i64>> {
        self.inner.outbox_last_digest(t)
    }
    fn outbox_list(
        &self,
        st: Option<dnsight_triage::OutboxState>,
        limit: u32,
    ) -> TResult<Vec<dnsight_triage::OutboxItem>> {
        self.inner.outbox_list(st, limit)
    }
    fn stats(&self, now: i64) -> TResult<dnsight_triage::StoreStats> {
        self.inner.stats(now)
    }
    fn upsert_user(
        &mut self,
        name: &str,
        role: dnsight_triage::Role,
        hash: &str,
        replace: bool,
        actor: &str,
        now: i64,
    ) -> TResult<dnsight_triage::UserInfo> {
        self.inner
            .upsert_user(name, role, hash, replace, actor, now)
    }
    fn user_password(&self, name: &str) -> TResult<Option<(dnsight_triage::UserInfo, String)>> {
        self.inner.user_password(name)
    }
    fn list_users(&self) -> TResult<Vec<dnsight_triage::UserInfo>> {
        self.inner.list_users()
    }
    fn remove_user(
        &mut self,
        name: &str,
        actor: &str,
        now: i64,
    ) -> TResult<dnsight_triage::UserInfo> {
        self.inner.remove_user(name, actor, now)
    }
    fn create_session(
        &mut self,
        user: i64,
        ttl: i64,
        client: Option<&str>,
        agent: Option<&str>,
        now: i64,
    ) -> TResult<(dnsight_triage::SessionInfo, String)> {
        self.inner.create_session(user, ttl, client, agent, now)
    }
    fn verify_session(
        &self,
        secret: &str,
        ttl: i64,
        now: i64,
    ) -> TResult<Option<dnsight_triage::SessionInfo>> {
        self.inner.verify_session(secret, ttl, now)
    }
    fn list_sessions(&self, now: i64) -> TResult<Vec<dnsight_triage::SessionInfo>> {
        self.inner.list_sessions(now)
    }
    fn revoke_session(
        &mut self,
        id: i64,
        actor: &str,
        now: i64,
    ) -> TResult<dnsight_triage::SessionInfo> {
        self.inner.revoke_session(id, actor, now)
    }
    fn alerts_changed(&self) -> TResult<(u64, i64)> {
        self.inner.alerts_changed()
    }
    fn alert_overview(&self, since: i64, top: u32) -> TResult<dnsight_triage::AlertOverview> {
        self.inner.alert_overview(since, top)
    }
    fn search_queries(
        &self,
        f: &dnsight_triage::QueryFilter,
    ) -> TResult<dnsight_triage::QueryPage> {
        self.inner.search_queries(f)
    }
    fn querylog_disk(&self) -> TResult<dnsight_triage::QueryLogDisk> {
        self.inner.querylog_disk()
    }
    fn query_timeline(
        &self,
        device: Option<&str>,
        since_us: i64,
        until_us: i64,
        step_us: i64,
    ) -> TResult<Vec<dnsight_triage::TimelineBucket>> {
        self.inner
            .query_timeline(device, since_us, until_us, step_us)
    }
}

#[test]
fn a_failed_store_write_is_retried_at_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let (buf, seen) = (Buf::default(), Seen::default());
    let mut p = Pipeline::new(
        Engine::new(engine_cfg()),
        Some(Box::new(Flaky {
            inner: SqliteStore::open(dir.path()).unwrap(),
            fail: fail.clone(),
        })),
        recording(&buf, &seen),
        PipelineConfig::default(),
    )
    .unwrap();
    let rd = reader(dir.path());
    let t = now() - 3600;
    fail.store(true, Ordering::Relaxed);
    p.observe(&[ev(t, A, "a.evil.example"), ev(t + 1, B, "x.bad.example")]);
    p.tick();
    p.observe(&[ev(t + 2, A, "a.evil.example")]);
    p.tick();
    // nothing is handed out before the store has it
    assert!(buf.lines().is_empty());
    assert_eq!(rd.list_alerts(&AlertFilter::default()).unwrap().1, 0);
    // an action meanwhile fails as a whole (its first step writes the pending updates)
    assert!(p.act(&req(&["x"], Action::Reopen, None)).is_err());
    fail.store(false, Ordering::Relaxed);
    p.tick();
    let evil = on_dest(&rd, "evil.example");
    assert_eq!(
        evil.len(),
        1,
        "the alert raised while the store failed was lost"
    );
    assert_eq!(evil[0].alert.count, 2);
    assert_eq!(on_dest(&rd, "bad.example").len(), 1);
    let l = buf.lines();
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(seen.lock().unwrap().iter().all(|s| s.1 == Change::New));
    p.tick();
    assert_eq!(buf.lines().len(), 2);
    assert_eq!(p.stats().alerts_written, 2);
}

/// An enrichment source: a GeoIP database that "changes on disk" once (here: fails to open),
/// and feed freshness the pipeline hands out with its stats.
struct FakeSource {
    geo_calls: Arc<Mutex<u32>>,
}

impl dnsight_pipeline::IntelSource for FakeSource {
    fn changed(&mut self) -> bool {
        false
    }
    fn load(&mut self) -> Result<Arc<dnsight_engine::IntelSet>, String> {
        Ok(Arc::new(dnsight_engine::IntelSet::new()))
    }
    fn geo(&mut self) -> Option<Result<Arc<dnsight_engine::Geo>, String>> {
        let mut n = self.geo_calls.lock().unwrap();
        *n += 1;
        (*n == 1).then(|| Err("not a valid mmdb database".to_string()))
    }
    fn status(&mut self) -> Vec<dnsight_pipeline::FeedStatus> {
        vec![dnsight_pipeline::FeedStatus {
            kind: "intel".into(),
            name: "c2".into(),
            entries: 2,
            age_secs: Some(30),
            last_error: Some("the download broke off".into()),
            ..Default::default()
        }]
    }
}

#[test]
fn enrichment_sources_are_checked_on_ticks_and_their_freshness_is_in_stats() {
    let dir = tempfile::tempdir().unwrap();
    let geo_calls = Arc::new(Mutex::new(0));
    let out = Outputs {
        intel: Some(Box::new(FakeSource {
            geo_calls: geo_calls.clone(),
        })),
        ..Outputs::default()
    };
    let cfg = PipelineConfig {
        intel_check: Duration::from_millis(20),
        ..fast()
    };
    let p = Pipeline::new(Engine::new(engine_cfg()), Some(store(dir.path())), out, cfg).unwrap();
    let run = dnsight_pipeline::spawn(p).unwrap();
    let h = run.handle();
    let deadline = Instant::now() + Duration::from_secs(20);
    // a database that fails to open keeps the engine as it was, and the ticks go on
    while *geo_calls.lock().unwrap() < 3 {
        assert!(Instant::now() < deadline, "the GeoIP source was not polled");
        std::thread::sleep(Duration::from_millis(10));
    }
    feed(&run, vec![ev(now(), A, "a.evil.example")]);
    let st = h.stats().unwrap();
    assert_eq!(st.feeds.len(), 1);
    assert_eq!(
        (
            st.feeds[0].name.as_str(),
            st.feeds[0].entries,
            st.feeds[0].age_secs
        ),
        ("c2", 2, Some(30))
    );
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["feeds"][0]["last_error"], "the download broke off");
    run.stop();
}

// ------------------------------------------------------------------------------------------
// several processes over one store: the periodic resync

/// Outputs that keep the blocks every `on_blocks` call handed out (latest last).
fn blocks_seen(buf: &Buf, seen: &Seen, blocks: &Arc<Mutex<Vec<Vec<BlockRule>>>>) -> Outputs {
    let b2 = blocks.clone();
    Outputs {
        on_blocks: Some(Box::new(move |b: &[BlockRule]| {
            b2.lock().unwrap().push(b.to_vec())
        })),
        ..recording(buf, seen)
    }
}

fn last_blocks(b: &Arc<Mutex<Vec<Vec<BlockRule>>>>) -> Vec<String> {
    b.lock()
        .unwrap()
        .last()
        .map(|v| v.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default()
}

/// Two pipelines over one store file, as `serve` and a `dnsight worker` over one PostgreSQL
/// database: B analyses the events, people act through A. What A commits reaches B's engine
/// and resolver at B's next resync, pending updates of B are not lost on the way, and a
/// resync with nothing new does nothing.
#[test]
fn actions_committed_by_another_pipeline_reach_this_one_at_its_resync() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Pipeline::new(
        Engine::new(engine_cfg()),
        Some(store(dir.path())),
        Outputs::default(),
        PipelineConfig::default(),
    )
    .unwrap();
    let (buf, seen) = (Buf::default(), Seen::default());
    let blocks = Arc::new(Mutex::new(Vec::new()));
    let mut b = Pipeline::new(
        Engine::new(engine_cfg()),
        Some(store(dir.path())),
        blocks_seen(&buf, &seen, &blocks),
        PipelineConfig {
            // every tick resyncs
            store_sync: Some(Duration::ZERO),
            ..PipelineConfig::default()
        },
    )
    .unwrap();
    let rd = reader(dir.path());
    assert!(last_blocks(&blocks).is_empty());
    let t = now() - 3600;
    b.observe(&[ev(t, A, "a.evil.example"), ev(t + 1, A, "x.bad.example")]);
    b.tick();
    let evil = on_dest(&rd, "evil.example")[0].alert.id.clone();
    let bad = on_dest(&rd, "bad.example")[0].alert.id.clone();
    assert!(b.engine().alert(&evil).is_some());

    // acknowledged through A (whose engine never saw the alert) while B has more of it and a
    // new alert pending
    ok(a.act(&req(
        &[&evil],
        Action::Ack {
            scope: ScopeSel::Device,
            until: None,
        },
        None,
    )));
    b.observe(&[
        ev(t + 2, A, "a.evil.example"),
        ev(t + 3, A, "y.other.example"),
    ]);
    let syncs = b.stats().store_syncs;
    b.tick();
    assert!(b.stats().store_syncs > syncs);
    assert!(
        b.engine().alert(&evil).is_none(),
        "B still holds the alert A acknowledged"
    );
    assert_eq!(
        rd.get_alert(&evil).unwrap().unwrap().alert.status,
        Status::Acknowledged,
        "B's copy reopened the alert A acknowledged"
    );
    let other = on_dest(&rd, "other.example");
    assert_eq!(other.len(), 1, "B's pending alert was lost in the resync");
    // B keeps seeing it: suppressed, no new alert, nothing reopened
    let lines = buf.lines().len();
    b.observe(&[ev(t + 4, A, "b.evil.example")]);
    b.tick();
    b.tick();
    let ev_alerts = on_dest(&rd, "evil.example");
    assert_eq!(ev_alerts.len(), 1, "{ev_alerts:?}");
    assert_eq!(ev_alerts[0].alert.status, Status::Acknowledged);
    assert_eq!(buf.lines().len(), lines, "{:?}", buf.lines());

    // nothing new in the store: a resync finds nothing to apply
    let syncs = b.stats().store_syncs;
    b.tick();
    b.tick();
    assert_eq!(b.stats().store_syncs, syncs);

    // flagged through A: B's live alert is flagged (severity at least high)
    ok(a.act(&req(&[&bad], Action::Flag, None)));
    b.tick();
    let got = b
        .engine()
        .alert(&bad)
        .expect("B still holds the flagged alert");
    assert_eq!(got.status, Status::Flagged);
    assert!(got.severity >= Severity::High);
    assert_eq!(
        rd.get_alert(&bad).unwrap().unwrap().alert.status,
        Status::Flagged
    );

    // a block and its removal through A reach B's resolver
    let r = a
        .add_block(
            &dnsight_triage::NewBlock {
                name: "c2.example".into(),
                subdomains: true,
                scope: Scope::All,
                allow: false,
                expires_at: None,
                note: None,
                alert_id: None,
            },
            "tester",
        )
        .unwrap();
    assert!(last_blocks(&blocks).is_empty());
    b.tick();
    assert_eq!(last_blocks(&blocks), vec!["c2.example".to_string()]);
    a.remove_block(r.id, "tester").unwrap();
    b.tick();
    assert!(last_blocks(&blocks).is_empty());

    // reopened through A: the acknowledgement ends, and B raises the alert again
    ok(a.act(&req(&[&evil], Action::Reopen, None)));
    b.tick();
    b.observe(&[ev(t + 5, A, "c.evil.example")]);
    b.tick();
    assert!(
        b.engine()
            .alerts()
            .iter()
            .any(|x| x.destination == "evil.example" && x.status.is_open()),
        "B still suppresses what A reopened: {:?}",
        b.engine().alerts()
    );
    assert!(on_dest(&rd, "evil.example")
        .iter()
        .any(|s| s.alert.status.is_open() && s.alert.last_seen >= Ts::from_secs(t + 5)));
}
