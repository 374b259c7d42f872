//! `dnsight analyze --state DIR` run more than once: the same input is not counted twice, a later
//! file adds, `--replay` re-feeds on purpose; and the site time zone setting (IANA names).

use dnsight_model::{DnsEvent, Name, Ts};
use std::path::{Path, PathBuf};
use std::process::Command;

struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> TmpDir {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("state-replay-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TmpDir(p)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A JSON-lines file of `n` events a minute apart from `start`, three devices.
fn jsonl(dir: &Path, file: &str, start: &str, n: i64) -> PathBuf {
    jsonl_of(dir, file, start, n, "10.0.0")
}

/// The same with the devices `{net}.1` to `{net}.3`.
fn jsonl_of(dir: &Path, file: &str, start: &str, n: i64, net: &str) -> PathBuf {
    let t0 = Ts::parse(start).unwrap();
    let mut text = String::new();
    for i in 0..n {
        let ip = format!("{net}.{}", 1 + i % 3).parse().unwrap();
        let name = Name::parse(&format!("host{}.example.com", i % 5)).unwrap();
        text.push_str(&DnsEvent::new(t0.add_secs(i * 60), ip, name, 1).to_json_line());
        text.push('\n');
    }
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

struct Run {
    events: u64,
    already: u64,
    stderr: String,
    text: String,
}

fn analyze(state: &Path, input: &Path, extra: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["analyze", "--no-progress", "--report", "json", "--state"])
        .arg(state)
        .args(extra)
        .arg(input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stderr}\n{text}");
    let j: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let e = &j["engine"];
    Run {
        events: e["events"].as_u64().unwrap(),
        already: e["skipped"]["already_in_state"].as_u64().unwrap_or(0),
        stderr,
        text,
    }
}

#[test]
fn analyzing_the_same_file_twice_into_state_counts_it_once() {
    let tmp = TmpDir::new("twice");
    let state = tmp.0.join("state");
    let monday = jsonl(&tmp.0, "monday.jsonl", "2026-11-23T08:00:00Z", 60);
    let tuesday = jsonl(&tmp.0, "tuesday.jsonl", "2026-11-24T08:00:00Z", 30);

    let r = analyze(&state, &monday, &[]);
    assert_eq!((r.events, r.already), (60, 0), "{}", r.text);
    assert!(!r.stderr.contains("already_in_state"), "{}", r.stderr);

    // the same file again: nothing is added, and the run says so
    let r = analyze(&state, &monday, &[]);
    assert_eq!((r.events, r.already), (0, 60), "{}", r.text);
    assert!(
        r.stderr.contains("60 events") && r.stderr.contains("nothing was added"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("already holds events up to 2026-11-23T08:59:00")
            && r.stderr.contains("--replay"),
        "{}",
        r.stderr
    );
    // baselines did not move: three devices, same destinations
    let j: serde_json::Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(j["engine"]["devices"].as_u64(), Some(3));

    // a later file adds
    let r = analyze(&state, &tuesday, &[]);
    assert_eq!((r.events, r.already), (30, 0), "{}", r.text);

    // yesterday's file after today's: skipped unless asked for
    let r = analyze(&state, &monday, &[]);
    assert_eq!((r.events, r.already), (0, 60));
    let r = analyze(&state, &monday, &["--replay"]);
    assert_eq!((r.events, r.already), (60, 0), "{}", r.stderr);
    // the mark stays at Tuesday's end
    let r = analyze(&state, &tuesday, &[]);
    assert_eq!((r.events, r.already), (0, 30), "{}", r.stderr);
    assert!(r.stderr.contains("2026-11-24T08:29:00"), "{}", r.stderr);
}

#[test]
fn two_sensors_of_the_same_period_can_be_analysed_in_separate_runs() {
    // the mark is per device: sensor B's devices are new to the state even though sensor A's
    // file (same hours) went in first; a device's own events are still never counted twice
    let tmp = TmpDir::new("sensors");
    let state = tmp.0.join("state");
    let a = jsonl_of(&tmp.0, "a.jsonl", "2026-11-23T08:00:00Z", 60, "10.0.0");
    let b = jsonl_of(&tmp.0, "b.jsonl", "2026-11-23T08:00:00Z", 60, "10.0.1");
    let r = analyze(&state, &a, &[]);
    assert_eq!((r.events, r.already), (60, 0), "{}", r.text);
    let r = analyze(&state, &b, &[]);
    assert_eq!((r.events, r.already), (60, 0), "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(j["engine"]["devices"].as_u64(), Some(6));
    for f in [&a, &b] {
        let r = analyze(&state, f, &[]);
        assert_eq!((r.events, r.already), (0, 60), "{}", r.stderr);
    }
    // a later file of one sensor adds only what is new for its devices
    let a2 = jsonl_of(&tmp.0, "a2.jsonl", "2026-11-23T08:30:00Z", 60, "10.0.0");
    let r = analyze(&state, &a2, &[]);
    assert_eq!((r.events, r.already), (30, 30), "{}", r.stderr);
}

#[test]
fn state_text_report_shows_the_skip_and_replay_needs_state() {
    let tmp = TmpDir::new("text");
    let state = tmp.0.join("state");
    let f = jsonl(&tmp.0, "a.jsonl", "2026-11-23T08:00:00Z", 10);
    analyze(&state, &f, &[]);
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["analyze", "--no-progress", "--state"])
        .arg(&state)
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(text.contains("already_in_state=10"), "{text}");
    // --replay without --state is a usage error, not a silent no-op
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["analyze", "--no-progress", "--replay"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--state"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn state_with_a_named_time_zone_and_a_bad_one() {
    let tmp = TmpDir::new("tz");
    let f = jsonl(&tmp.0, "a.jsonl", "2026-03-29T00:30:00Z", 90);
    let good = tmp.0.join("berlin.toml");
    std::fs::write(&good, "[detection]\ntimezone = \"Europe/Berlin\"\n").unwrap();
    let r = analyze(
        &tmp.0.join("state"),
        &f,
        &["--config", good.to_str().unwrap()],
    );
    assert_eq!(r.events, 90);
    let bad = tmp.0.join("mars.toml");
    std::fs::write(&bad, "[detection]\ntimezone = \"Mars/Olympus\"\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["analyze", "--no-progress", "--config"])
        .arg(&bad)
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("detection.timezone")
            && err.contains("Mars/Olympus")
            && err.contains("Europe/Berlin"),
        "{err}"
    );
}
