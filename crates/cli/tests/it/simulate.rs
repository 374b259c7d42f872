//! `dnsight simulate`: files written, deterministic for a seed, every format readable by the
//! ingest readers, and the whole loop simulate -> analyze -> eval runs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dnsight"))
}

fn tmp(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn simulate(out: &Path, format: &str, seed: u64) {
    let o = bin()
        .args([
            "simulate",
            "--devices",
            "14",
            "--days",
            "2",
            "--learn-days",
            "1",
            "--seed",
            &seed.to_string(),
            "--format",
            format,
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let so = String::from_utf8_lossy(&o.stdout);
    assert!(so.contains("attack scenarios"), "{so}");
}

fn read_all(p: &Path) -> (Vec<dnsight_model::DnsEvent>, dnsight_ingest::IngestStats) {
    let mut r = dnsight_ingest::open_path(p, &dnsight_ingest::IngestOptions::default()).unwrap();
    let mut v = Vec::new();
    while r.next_batch(&mut v).unwrap() {}
    (v, r.stats().clone())
}

#[test]
fn writes_operator_files_and_is_deterministic() {
    let a = tmp("det-a");
    let b = tmp("det-b");
    simulate(&a, "jsonl", 11);
    simulate(&b, "jsonl", 11);
    for f in [
        "events.jsonl",
        "labels.json",
        "inventory.csv",
        "intel.txt",
        "dnsight.toml",
    ] {
        let x = std::fs::read(a.join(f)).unwrap();
        assert!(!x.is_empty(), "{f} empty");
        assert!(
            x == std::fs::read(b.join(f)).unwrap(),
            "{f} differs for the same seed"
        );
    }
    let c = tmp("det-c");
    simulate(&c, "jsonl", 12);
    assert!(
        std::fs::read(a.join("events.jsonl")).unwrap()
            != std::fs::read(c.join("events.jsonl")).unwrap()
    );
    // the config it writes is accepted by the engine's config loader
    let o = bin()
        .arg("check-config")
        .arg(a.join("dnsight.toml"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "check-config: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn every_format_reads_back_through_ingest() {
    let j = tmp("fmt-jsonl");
    simulate(&j, "jsonl", 5);
    let (ev, st) = read_all(&j.join("events.jsonl"));
    let lines = std::fs::read_to_string(j.join("events.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(ev.len(), lines);
    assert_eq!(st.rejected_total(), 0, "{:?}", st.rejected);
    let z = tmp("fmt-zeek");
    simulate(&z, "zeek", 5);
    let (zev, zst) = read_all(&z.join("dns.log"));
    assert_eq!(zst.rejected_total(), 0, "{:?}", zst.rejected);
    assert_eq!(zev.len(), ev.len());
    for (a, b) in ev.iter().zip(&zev).take(5000) {
        assert_eq!(
            (a.ts, a.client, &a.qname, a.qtype, a.rcode),
            (b.ts, b.client, &b.qname, b.qtype, b.rcode)
        );
    }
    let p = tmp("fmt-pcap");
    simulate(&p, "pcap", 5);
    let (pev, pst) = read_all(&p.join("dns.pcap"));
    assert_eq!(pst.rejected_total(), 0, "{:?}", pst.rejected);
    assert_eq!(pev.len(), ev.len());
    let names = |v: &[dnsight_model::DnsEvent]| {
        v.iter()
            .map(|e| e.qname.as_str().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(names(&pev), names(&ev));
}

#[test]
fn simulate_analyze_eval_loop() {
    let d = tmp("loop");
    simulate(&d, "jsonl", 3);
    let o = bin()
        .args(["analyze", "--no-progress", "--config"])
        .arg(d.join("dnsight.toml"))
        .arg("--alerts-out")
        .arg(d.join("alerts.jsonl"))
        .arg(d.join("events.jsonl"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "analyze: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = bin()
        .args(["eval", "--json", "--labels"])
        .arg(d.join("labels.json"))
        .arg("--alerts")
        .arg(d.join("alerts.jsonl"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "eval: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["attacks"], 24);
    // threat-intel matches are exact: whatever else changes in the engine, these are found
    for s in r["scenarios"].as_array().unwrap() {
        if s["kind"].as_str().unwrap().starts_with("intel_") {
            assert_eq!(s["detected"], true, "{s}");
        }
    }
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let d = tmp("bad");
    let o = bin()
        .args([
            "simulate",
            "--devices",
            "20",
            "--days",
            "3",
            "--learn-days",
            "5",
            "--out",
        ])
        .arg(&d)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--learn-days"));
    let o = bin()
        .args(["simulate", "--format", "csv", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn analyze_gives_the_same_alerts_with_one_two_and_three_workers() {
    let d = tmp("workers");
    let o = bin()
        .args([
            "simulate",
            "--devices",
            "30",
            "--days",
            "9",
            "--learn-days",
            "7",
            "--seed",
            "4",
            "--format",
            "jsonl",
            "--out",
        ])
        .arg(&d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = |workers: &str| -> Vec<serde_json::Value> {
        let out = d.join(format!("alerts-{workers}.jsonl"));
        let o = bin()
            .arg("analyze")
            .arg("--config")
            .arg(d.join("dnsight.toml"))
            .arg(d.join("events.jsonl"))
            .args(["--workers", workers, "--alerts-out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // the final state of every alert (the last line of each id)
        let mut last = std::collections::BTreeMap::new();
        for l in std::fs::read_to_string(&out).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            last.insert(v["id"].as_str().unwrap().to_string(), v);
        }
        last.into_values().collect()
    };
    let one = run("1");
    assert!(one.len() > 5, "{} alerts", one.len());
    assert!(one.iter().any(|a| a["device_count"].as_u64() > Some(1)));
    for w in ["2", "3"] {
        let got = run(w);
        assert_eq!(got.len(), one.len(), "{w} workers");
        for (a, b) in one.iter().zip(&got) {
            assert_eq!(a, b, "{w} workers");
        }
    }
    // out of range: a clear error
    let o = bin()
        .arg("analyze")
        .arg(d.join("events.jsonl"))
        .args(["--workers", "65"])
        .output()
        .unwrap();
    assert!(!o.status.success());
}
