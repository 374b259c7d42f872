//! `dnsight demo`: learns from simulated history, then shows explained alerts from the live day.

use std::process::Command;

#[test]
fn demo_learns_then_shows_explained_alerts() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("demo-{}", std::process::id()));
    // --speed 0: no pacing, so the test does not depend on how fast this machine is
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args([
            "demo",
            "--devices",
            "14",
            "--history-days",
            "2",
            "--speed",
            "0",
            "--seed",
            "2",
            "--listen",
            "off",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("baselines learned"), "{text}");
    assert!(text.contains("live day finished"), "{text}");
    // the threat-intel hit is exact, so it is always among the alerts shown, with its summary
    let intel = text
        .lines()
        .position(|l| l.contains(" threat_intel "))
        .unwrap_or_else(|| panic!("no threat_intel alert:\n{text}"));
    assert!(
        text.lines()
            .nth(intel + 1)
            .is_some_and(|l| l.starts_with("    ") && l.len() > 20),
        "{text}"
    );
    assert!(text.contains("what the simulator injected"));
    // the dashboard's user and URL (unless another process holds the API port)
    assert!(
        text.contains("dashboard: http://127.0.0.1:8053/ui/  user demo, password ")
            || text.contains("API: not started"),
        "{text}"
    );
    assert!(dir.join("dnsight.toml").exists() && dir.join("labels.json").exists());
}

#[test]
fn demo_rejects_bad_flags() {
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["demo", "--history-days", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--history-days"));
}
