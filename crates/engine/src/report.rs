//! The readable text report: a header with counters and notices, then alerts most severe
//! first, one block each (summary, device, destination, counts, the key evidence).
//! Names are already escaped printable ASCII (see `dnsight_model::Name`).

use crate::alert::{sort_alerts, Alert};
use crate::engine::EngineStats;
use std::fmt::Write;

/// Renders alerts (any order in; most severe first out) and stats as text.
pub fn render_text_report(alerts: &[Alert], stats: &EngineStats) -> String {
    let mut s = String::new();
    let mut v = alerts.to_vec();
    sort_alerts(&mut v);
    let _ = writeln!(s, "dnsight report");
    let span = match (stats.first_event, stats.last_event) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => "no events".into(),
    };
    let _ = writeln!(
        s,
        "  events: {}   devices: {} ({} learning)   destinations: {}   baseline entries: {}",
        stats.events,
        stats.devices,
        stats.devices_learning,
        stats.destinations,
        stats.baseline_entries
    );
    let _ = writeln!(s, "  time span: {span}");
    if !stats.skipped.is_empty() {
        let sk: Vec<String> = stats
            .skipped
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "  skipped events: {}", sk.join(" "));
    }
    for n in &stats.notices {
        let _ = writeln!(s, "  note: {n}");
    }
    let sev: Vec<String> = ["critical", "high", "medium", "low", "info"]
        .iter()
        .filter_map(|k| stats.alerts_by_severity.get(*k).map(|n| format!("{k}={n}")))
        .collect();
    let _ = writeln!(
        s,
        "  alerts: {} {}",
        v.len(),
        if sev.is_empty() {
            String::new()
        } else {
            format!("({})", sev.join(" "))
        }
    );
    let _ = writeln!(s);
    for a in &v {
        let who = match (&a.device_name, &a.group) {
            (Some(n), Some(g)) => format!("{} ({n}, {g})", a.device),
            (Some(n), None) => format!("{} ({n})", a.device),
            (None, Some(g)) => format!("{} ({g})", a.device),
            (None, None) => a.device.clone(),
        };
        let _ = writeln!(
            s,
            "[{:<8}] {:>3}  {}  {}",
            a.severity.as_str().to_uppercase(),
            a.score,
            a.kind.as_str(),
            a.summary
        );
        let more = if a.device_count > 1 {
            format!(" and {} more device(s)", a.device_count - 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "    device: {who}{more}   destination: {}",
            if a.destination.is_empty() {
                "-"
            } else {
                &a.destination
            }
        );
        let _ = writeln!(
            s,
            "    seen {}x  {} .. {}   id {}",
            a.count, a.first_seen, a.last_seen, a.id
        );
        if let Some(o) = a.evidence.as_object() {
            let mut line = String::new();
            for (k, val) in o {
                let t = match val {
                    serde_json::Value::String(x) => x.clone(),
                    other => other.to_string(),
                };
                let t: String = t.chars().take(160).collect();
                let _ = write!(line, "{k}={t}  ");
                if line.len() > 400 {
                    break;
                }
            }
            let _ = writeln!(s, "    evidence: {}", line.trim_end());
        }
    }
    s
}
