//! `dnsight eval` on a tiny hand-made labels/alerts pair: what counts as detected and what not.

use std::path::Path;
use std::process::Command;

const LABELS: &str = r#"{"seed":1,"devices":10,"days":3,"learn_days":1,
 "start":"2026-11-02T00:00:00Z","learn_until":"2026-11-03T00:00:00Z","end":"2026-11-05T00:00:00Z",
 "scenarios":[
  {"id":"beaconing-1","kind":"beaconing","benign":false,"devices":["10.1.0.5"],"device_names":["ws-0005"],
   "group":"workstations","start":"2026-11-03T10:00:00Z","end":"2026-11-03T16:00:00Z",
   "destinations":["api.cdn-bluesky.net","cdn-bluesky.net"],"expected_kinds":["beaconing"]},
  {"id":"dga-1","kind":"dga","benign":false,"devices":["10.1.0.6"],"device_names":["ws-0006"],
   "group":"workstations","start":"2026-11-04T10:00:00Z","end":"2026-11-04T10:20:00Z",
   "destinations":["qwhvbsjd.com","zzkqpwme.net"],"expected_kinds":["dga"]},
  {"id":"org_update-1","kind":"org_update","benign":true,"devices":["10.2.0.10","10.2.0.11"],
   "group":"servers","start":"2026-11-03T10:00:00Z","end":"2026-11-05T00:00:00Z",
   "destinations":["updates.fleetagent.io","fleetagent.io"]}
 ]}"#;

fn alert(kind: &str, sev: &str, dev: &str, dest: &str, first: &str) -> String {
    format!(
        r#"{{"id":"a","kind":"{kind}","severity":"{sev}","score":60,"device":"{dev}","device_name":"","group":"","destination":"{dest}","first_seen":"{first}","last_seen":"{first}","count":1,"summary":"s","evidence":{{}},"status":"open"}}"#
    )
}

fn run(dir: &Path, alerts: &[String], json: bool) -> (bool, String) {
    std::fs::write(dir.join("labels.json"), LABELS).unwrap();
    std::fs::write(dir.join("alerts.jsonl"), alerts.join("\n")).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_dnsight"));
    c.args(["eval", "--labels"])
        .arg(dir.join("labels.json"))
        .arg("--alerts")
        .arg(dir.join("alerts.jsonl"));
    if json {
        c.arg("--json");
    }
    let o = c.output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn scores_detections_false_alerts_and_confounders() {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("eval-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let alerts = vec![
        // detects beaconing-1 after 10 minutes (registered domain of the labeled name)
        alert(
            "beaconing",
            "high",
            "10.1.0.5",
            "cdn-bluesky.net",
            "2026-11-03T10:10:00Z",
        ),
        // right destination, wrong device: a false alert
        alert(
            "beaconing",
            "medium",
            "10.1.0.9",
            "api.cdn-bluesky.net",
            "2026-11-03T10:10:00Z",
        ),
        // the DGA device alerts too late (a day after the window): dga-1 stays undetected
        alert(
            "dga",
            "high",
            "10.1.0.6",
            "qwhvbsjd.com",
            "2026-11-05T10:00:00Z",
        ),
        // a benign confounder alert
        alert(
            "new_destination",
            "critical",
            "10.2.0.10",
            "fleetagent.io",
            "2026-11-03T11:00:00Z",
        ),
    ];
    let (ok, out) = run(&d, &alerts, true);
    assert!(ok, "{out}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["attacks"], 2);
    assert_eq!(r["detected"], 1);
    assert_eq!(r["scenarios"][0]["detected"], true);
    assert_eq!(r["scenarios"][0]["time_to_detect_secs"], 600);
    assert_eq!(r["scenarios"][1]["detected"], false);
    assert_eq!(r["false_alerts_by_severity"]["medium"], 1);
    assert_eq!(r["false_alerts_by_severity"]["high"], 1);
    assert_eq!(r["confounder_alerts_by_severity"]["critical"], 1);
    // 20 device-days after learning; 2 medium+ false alerts
    assert_eq!(r["false_medium_plus_per_device_day"], 0.1);
    let (ok, text) = run(&d, &alerts, false);
    assert!(ok);
    assert!(text.contains("recall: 1/2"), "{text}");
    assert!(
        text.contains("| dga-1 | dga | ws-0006 | **no** |"),
        "{text}"
    );
}

#[test]
fn unreadable_inputs_are_errors() {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("eval-bad-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("labels.json"), "not json").unwrap();
    std::fs::write(d.join("alerts.jsonl"), "").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["eval", "--labels"])
        .arg(d.join("labels.json"))
        .arg("--alerts")
        .arg(d.join("alerts.jsonl"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("labels.json"));
}
