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
        let mut child = bin()
            .args(["worker", "--config"])
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
    // one uninterrupted run
    let (db_one, db_workers) = (pg.fresh_db(), pg.fresh_db());
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
