//! Workers with leases and checkpoints, end to end with a real `nats-server -js` and a real
//! PostgreSQL (both started by the tests): a simulated organisation's events published by
//! `dnsight sensor`, two workers, one `kill -9`ed mid-stream and replaced, and the per-device
//! alerts in PostgreSQL are those of one uninterrupted `dnsight analyze` on the same events.

use crate::triage::bin;
use dnsight_bus::testing::{covered, stream_coverage, TestNats};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A worker process: its output lines to a channel (and kept), SIGKILLed on drop.
struct W {
    name: String,
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl W {
    fn start(name: &str, cfg: &Path, dir: &Path) -> W {
        W::spawn("worker", name, cfg, dir)
    }
    fn spawn(cmd: &str, name: &str, cfg: &Path, dir: &Path) -> W {
        let mut child = bin()
            .args([cmd, "--config"])
            .arg(cfg)
            .arg("--state")
            .arg(dir.join(name))
            .args(["--name", name, "--checkpoint-secs", "1"])
            .args(["--heartbeat-ms", "200", "--lease-ttl-ms", "1500"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dnsight worker");
        let (tx, rx) = mpsc::channel();
        for r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
        }
        W {
            name: name.into(),
            child,
            rx,
            seen: Vec::new(),
        }
    }
    fn drain(&mut self) {
        while let Ok(l) = self.rx.try_recv() {
            self.seen.push(l);
        }
    }
    fn count(&mut self, needle: &str) -> usize {
        self.drain();
        self.seen.iter().filter(|l| l.contains(needle)).count()
    }
    fn wait_count(&mut self, needle: &str, n: usize, within: Duration) {
        let end = Instant::now() + within;
        while self.count(needle) < n {
            assert!(
                Instant::now() < end,
                "{} did not print {needle:?} {n} times:\n{}",
                self.name,
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn term(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < end, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.drain();
        std::mem::take(&mut self.seen)
    }
}

impl Drop for W {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (kind, device, destination) -> severity of the alerts in a PostgreSQL database.
fn alerts(url: &str) -> BTreeMap<(String, String, String), String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query(
        "SELECT kind, device, destination, severity FROM alerts",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
    .collect()
}

/// (kind, the alert's devices, destination) -> severity: an alert over several devices by the
/// set of them (which of them it names first follows the order the correlator received the
/// workers' findings in).
fn alerts_by_devices(url: &str) -> BTreeMap<(String, String, String), String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query(
        "SELECT a.kind, COALESCE(string_agg(d.device, ',' ORDER BY d.device), a.device), \
         a.destination, a.severity FROM alerts a LEFT JOIN alert_devices d ON d.alert_id = a.id \
         GROUP BY a.id, a.kind, a.device, a.destination, a.severity",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
    .collect()
}

/// Kinds whose detectors read one device's events alone (and the config): a worker decides
/// them exactly as one process does.
const EXACT: &[&str] = &[
    "traffic_change",
    "misconfiguration",
    "threat_intel",
    "policy",
];
/// Per-device detectors damped by org-wide facts (how many devices use the destination): a
/// worker, which knows only its own devices until the correlator exists, finds every alert one
/// process finds and may raise one that one process suppresses for a destination many devices
/// of other workers use.
const DAMPED: &[&str] = &["beaconing", "dga", "tunneling", "reconnaissance"];

#[test]
fn a_worker_killed_mid_stream_is_replaced_and_nothing_is_lost_or_counted_twice() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let Some(pg) = dnsight_pgstore::testing::TestPg::shared() else {
        return;
    };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sim, base_cfg, db_one) = simulated_org(d, pg);
    let db_workers = pg.fresh_db();
    // the deployment: sensor -> NATS -> workers -> PostgreSQL
    std::fs::write(
        sim.join("w.toml"),
        format!(
            "{base_cfg}\n[bus]\nurl = \"{}\"\nspool_dir = \"{}\"\nbatch_events = 500\nsensor = \"t\"\n\n[store]\nurl = \"{db_workers}\"\n",
            nats.url(),
            d.join("spool").display()
        ),
    )
    .unwrap();
    // the events in two parts: the second is published after the kill
    let text = std::fs::read_to_string(sim.join("events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() * 3 / 5;
    std::fs::write(d.join("a.jsonl"), lines[..cut].join("\n") + "\n").unwrap();
    std::fs::write(d.join("b.jsonl"), lines[cut..].join("\n") + "\n").unwrap();
    let publish = |f: &str| {
        let o = bin()
            .args(["sensor", "--config"])
            .arg(sim.join("w.toml"))
            .arg(d.join(f))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    publish("a.jsonl");
    let cfg = sim.join("w.toml");
    let mut w1 = W::start("w1", &cfg, d);
    let mut w2 = W::start("w2", &cfg, d);
    w1.wait_count("count=32", 1, Duration::from_secs(30));
    w2.wait_count("count=32", 1, Duration::from_secs(30));
    // w1 has saved a checkpoint of its 32 partitions and goes on reading: kill -9
    let n = w1.count("checkpoints saved");
    w1.wait_count("checkpoints saved", n + 1, Duration::from_secs(30));
    drop(w1);
    let killed = Instant::now();
    publish("b.jsonl");
    // w2 takes all 64 once w1's leases expired, then gives 32 to the replacement
    w2.wait_count("count=64", 1, Duration::from_secs(30));
    eprintln!(
        "w2 took over w1's partitions {:?} after the kill",
        killed.elapsed()
    );
    let mut w3 = W::start("w3", &cfg, d);
    w3.wait_count("count=32", 1, Duration::from_secs(30));
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (lasts, pos) = stream_coverage(
            &nats.url(),
            "DNSIGHT_EVENTS",
            "dnsight.events",
            "dnsight-checkpoints",
            64,
        );
        if covered(&lasts, &pos) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the checkpoints do not cover the stream: {lasts:?} {pos:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out2 = w2.term();
    let out3 = w3.term();
    assert!(
        out3.iter().any(|l| l.contains("count=32")),
        "w3 got its share:\n{}",
        out3.join("\n")
    );
    let one = alerts(&db_one);
    let got = alerts(&db_workers);
    // (kind, device, destination); severities are compared below but may differ: an alert's
    // score counts how many devices of the organisation use the destination
    let keys = |m: &BTreeMap<(String, String, String), String>, kinds: &[&str]| -> Vec<String> {
        m.keys()
            .filter(|(k, _, _)| kinds.contains(&k.as_str()))
            .map(|(k, dev, dest)| format!("{k} {dev} {dest}"))
            .collect()
    };
    let (want, have) = (keys(&one, EXACT), keys(&got, EXACT));
    assert!(
        want.len() >= 10,
        "the simulation raises such alerts: {want:?}"
    );
    let (want_d, have_d) = (keys(&one, DAMPED), keys(&got, DAMPED));
    assert!(
        want_d.len() >= 10,
        "the simulation raises such alerts: {want_d:?}"
    );
    let missing: Vec<&String> = want
        .iter()
        .chain(&want_d)
        .filter(|x| !have.contains(x) && !have_d.contains(x))
        .collect();
    let extra: Vec<&String> = have.iter().filter(|x| !want.contains(x)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "alerts differ from one run:\nmissing {missing:#?}\nextra {extra:#?}\nw2:\n{}",
        out2.join("\n")
    );
    let damped_extra: Vec<&String> = have_d.iter().filter(|x| !want_d.contains(x)).collect();
    eprintln!("alerts one run damps by prevalence, raised by a worker: {damped_extra:?}");
    let sev: Vec<String> = one
        .iter()
        .filter(|((k, _, _), _)| EXACT.contains(&k.as_str()) || DAMPED.contains(&k.as_str()))
        .filter_map(|(key, s)| {
            let w = &got[key];
            (w != s).then(|| format!("{key:?}: {s} in one run, {w} by the workers"))
        })
        .collect();
    eprintln!("severities that differ (org-wide scoring): {sev:#?}");
    eprintln!(
        "{} + {} per-device alerts found; all kinds: {} in one run, {} by the workers; {:?} in all",
        want.len(),
        want_d.len(),
        one.len(),
        got.len(),
        t0.elapsed()
    );
}

/// The simulated organisation of these tests and its alerts from one `dnsight analyze` into a
/// fresh PostgreSQL database: (directory of the simulation, its config text, that database).
fn simulated_org(
    d: &Path,
    pg: &dnsight_pgstore::testing::TestPg,
) -> (std::path::PathBuf, String, String) {
    let sim = d.join("sim");
    let o = bin()
        .args([
            "simulate",
            "--devices",
            "20",
            "--days",
            "3",
            "--learn-days",
            "1",
        ])
        .args(["--seed", "3", "--format", "jsonl", "--out"])
        .arg(&sim)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let base_cfg = std::fs::read_to_string(sim.join("dnsight.toml")).unwrap();
    let db_one = pg.fresh_db();
    std::fs::write(
        sim.join("one.toml"),
        format!("{base_cfg}\n[store]\nurl = \"{db_one}\"\n"),
    )
    .unwrap();
    let o = bin()
        .args(["analyze", "--config"])
        .arg(sim.join("one.toml"))
        .arg("--state")
        .arg(d.join("one"))
        .arg(sim.join("events.jsonl"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (sim, base_cfg, db_one)
}

/// Kinds whose score reads org-wide facts (prevalence, the organisation's first sighting),
/// directly or by a related alert on the same destination.
const ORG_SCORED: &[&str] = &[
    "new_destination",
    "beaconing",
    "dga",
    "tunneling",
    "reconnaissance",
    "new_country",
    "new_asn",
];

#[test]
fn three_workers_and_a_correlator_that_fails_over_give_the_alerts_of_one_process() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let Some(pg) = dnsight_pgstore::testing::TestPg::shared() else {
        return;
    };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sim, base_cfg, db_one) = simulated_org(d, pg);
    let db_dist = pg.fresh_db();
    let cfg = sim.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "{base_cfg}\n[bus]\nurl = \"{}\"\nspool_dir = \"{}\"\nbatch_events = 500\nsensor = \"t\"\ncorrelator = true\n\n[store]\nurl = \"{db_dist}\"\n",
            nats.url(),
            d.join("spool").display()
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(sim.join("events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() / 2;
    std::fs::write(d.join("a.jsonl"), lines[..cut].join("\n") + "\n").unwrap();
    std::fs::write(d.join("b.jsonl"), lines[cut..].join("\n") + "\n").unwrap();
    let publish = |f: &str| {
        let o = bin()
            .args(["sensor", "--config"])
            .arg(&cfg)
            .arg(d.join(f))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // the active correlator and its standby, then three workers
    let mut c1 = W::spawn("correlator", "c1", &cfg, d);
    c1.wait_count("correlator: active", 1, Duration::from_secs(30));
    let mut c2 = W::spawn("correlator", "c2", &cfg, d);
    c2.wait_count("standing for election", 1, Duration::from_secs(30));
    let mut ws: Vec<W> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| W::start(n, &cfg, d))
        .collect();
    for w in &mut ws {
        w.wait_count("count=2", 1, Duration::from_secs(30));
    }
    publish("a.jsonl");
    // c1 has checkpointed some of the findings: kill -9, then the second half
    let n = c1.count("correlator checkpoint saved");
    c1.wait_count(
        "correlator checkpoint saved",
        n + 2,
        Duration::from_secs(30),
    );
    drop(c1);
    let killed = Instant::now();
    publish("b.jsonl");
    c2.wait_count("correlator: active", 1, Duration::from_secs(30));
    eprintln!(
        "the standby took over {:?} after the kill",
        killed.elapsed()
    );
    // the workers have read every event (their checkpoints cover the stream) and sent what
    // they found; the correlator has folded every message
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let (lasts, pos) = stream_coverage(
            &nats.url(),
            "DNSIGHT_EVENTS",
            "dnsight.events",
            "dnsight-checkpoints",
            64,
        );
        if covered(&lasts, &pos) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the checkpoints do not cover the stream: {lasts:?} {pos:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let outs: Vec<Vec<String>> = ws.into_iter().map(W::term).collect();
    loop {
        let (last, next) = dnsight_bus::testing::topic_coverage(
            &nats.url(),
            "dnsight-findings",
            "dnsight-checkpoints",
            "correlator",
        );
        if next.is_some_and(|n| n > last) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the correlator's checkpoint does not cover the findings: {last} {next:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out_c2 = c2.term();
    let one = alerts_by_devices(&db_one);
    let got = alerts_by_devices(&db_dist);
    let missing: Vec<String> = one
        .iter()
        .filter(|(k, _)| !got.contains_key(*k))
        .map(|(k, s)| format!("{k:?} {s}"))
        .collect();
    let extra: Vec<String> = got
        .iter()
        .filter(|(k, _)| !one.contains_key(*k))
        .map(|(k, s)| format!("{k:?} {s}"))
        .collect();
    // severities: equal, except that an org fact (another worker's device already uses the
    // destination) may reach a worker one round trip later than one process's next epoch, so
    // an alert whose score that fact damps may be scored as new to the organisation: more
    // severe, never less (README "Scale out", the bound)
    let rank = |s: &str| {
        ["info", "low", "medium", "high", "critical"]
            .iter()
            .position(|x| *x == s)
    };
    let mut later_facts = Vec::new();
    let sev: Vec<String> = one
        .iter()
        .filter_map(|(k, s)| {
            let g = got.get(k).filter(|g| *g != s)?;
            let d = format!("{k:?}: {s} in one run, {g} distributed");
            if ORG_SCORED.contains(&k.0.as_str()) && rank(g) > rank(s) {
                later_facts.push(d);
                return None;
            }
            Some(d)
        })
        .collect();
    eprintln!("scored before another worker's org fact arrived: {later_facts:#?}");
    assert!(
        later_facts.len() * 10 <= one.len(),
        "too many alerts scored before org facts arrived: {later_facts:#?}"
    );
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, _, _) in one.keys() {
        *kinds.entry(k.as_str()).or_default() += 1;
    }
    eprintln!(
        "{} alerts in one run ({kinds:?}), {} distributed; {:?} in all",
        one.len(),
        got.len(),
        t0.elapsed()
    );
    assert!(
        one.len() >= 30 && kinds.len() >= 6,
        "the simulation raises alerts of many kinds: {kinds:?}"
    );
    assert!(
        missing.is_empty() && extra.is_empty() && sev.is_empty(),
        "alerts differ from one run:\nmissing {missing:#?}\nextra {extra:#?}\nseverity {sev:#?}\nc2:\n{}\nw1:\n{}",
        out_c2.join("\n"),
        outs[0].join("\n")
    );
}
