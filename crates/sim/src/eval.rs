//! Scoring alerts against simulator labels (`dnsight eval`).
//!
//! Alerts are read as generic JSON following the alert contract in PRODUCT.md (`kind`,
//! `severity`, `device`, `group`, `destination`, `first_seen`, `last_seen`...), so the scorer does
//! not depend on the engine's types. Matching rules:
//!
//! - **Device**: the alert's `device` is one of the scenario's devices, or the alert has no device
//!   and its `group` is the scenario's group (a roll-up), or the scenario names no devices.
//! - **Time**: the alert's `[first_seen, last_seen]` overlaps the scenario window extended by
//!   [`SLACK_SECS`] after its end (detectors work on windows).
//! - **What**: the alert's destination equals a labeled destination or is a parent or child name
//!   of one (e.g. the registered domain of a DGA name); or, for kinds that describe the device's
//!   behaviour rather than one destination (traffic_change, reconnaissance, new_device, dga,
//!   tunneling), the kind is one the scenario expects.
//!
//! An attack is detected when at least one alert matches it. Alerts matching no attack are
//! alerts on confounders (if they match one) or false alerts; false alerts are normalised per
//! device-day of the detection period (after learning). Alerts first seen during learning are
//! reported separately.

use crate::scenarios::{Labels, ScenarioLabel};
use dnsight_model::Ts;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub const SLACK_SECS: i64 = 3600;
pub const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical"];
const KIND_ONLY: &[&str] = &[
    "traffic_change",
    "reconnaissance",
    "new_device",
    "dga",
    "tunneling",
    "misconfiguration",
];

/// The fields of an alert the scorer uses.
#[derive(Clone, Debug, Default)]
pub struct AlertView {
    pub kind: String,
    pub severity: String,
    pub device: String,
    /// Every device of a roll-up alert (the optional `devices` array), plus `device`.
    pub devices: Vec<String>,
    pub group: String,
    pub destination: String,
    pub first_seen: Ts,
    pub last_seen: Ts,
}

impl AlertView {
    /// None when the alert lacks a kind or a parsable first_seen.
    pub fn from_json(v: &Value) -> Option<AlertView> {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let kind = s("kind");
        let first = Ts::parse(&s("first_seen"))?;
        if kind.is_empty() {
            return None;
        }
        let last = Ts::parse(&s("last_seen")).unwrap_or(first).max(first);
        let mut sev = s("severity").to_ascii_lowercase();
        if !SEVERITIES.contains(&sev.as_str()) {
            sev = "info".into();
        }
        let mut devices: Vec<String> = v
            .get("devices")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !s("device").is_empty() {
            devices.push(s("device"));
        }
        Some(AlertView {
            kind,
            devices,
            severity: sev,
            device: s("device"),
            group: s("group"),
            destination: s("destination").trim_end_matches('.').to_ascii_lowercase(),
            first_seen: first,
            last_seen: last,
        })
    }
}

fn dest_match(a: &str, dests: &[String]) -> bool {
    if a.is_empty() {
        return false;
    }
    dests.iter().any(|d| {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        if d == a {
            return true;
        }
        // child or parent names; parents must have at least two labels (never a bare TLD)
        (a.len() > d.len()
            && a.ends_with(&d)
            && a.as_bytes()[a.len() - d.len() - 1] == b'.'
            && d.contains('.'))
            || (d.len() > a.len()
                && d.ends_with(a)
                && d.as_bytes()[d.len() - a.len() - 1] == b'.'
                && a.contains('.'))
    })
}

fn device_match(a: &AlertView, s: &ScenarioLabel) -> bool {
    s.devices.is_empty()
        || s.devices.iter().any(|d| a.devices.contains(d))
        || (a.device.is_empty() && !s.group.is_empty() && a.group == s.group)
}

fn time_match(a: &AlertView, s: &ScenarioLabel) -> bool {
    a.first_seen.0 <= s.end.0 + SLACK_SECS * 1_000_000 && a.last_seen.0 >= s.start.0
}

/// Does the alert count for this scenario?
pub fn matches(a: &AlertView, s: &ScenarioLabel) -> bool {
    if !device_match(a, s) || !time_match(a, s) {
        return false;
    }
    if s.benign {
        return s.destinations.is_empty() || dest_match(&a.destination, &s.destinations);
    }
    dest_match(&a.destination, &s.destinations)
        || (KIND_ONLY.contains(&a.kind.as_str()) && s.expected_kinds.iter().any(|k| k == &a.kind))
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub id: String,
    pub kind: String,
    pub benign: bool,
    pub device_names: Vec<String>,
    pub detected: bool,
    /// Detected by an alert of the scenario's primary kind (the first expected kind, e.g.
    /// `beaconing` for a beacon), not only by a side effect such as `new_destination`.
    pub primary_detected: bool,
    pub primary_time_to_detect_secs: Option<i64>,
    pub alerts: u64,
    /// Seconds from the scenario start to the first matching alert (0 if it was already open).
    pub time_to_detect_secs: Option<i64>,
    pub matched_kinds: BTreeSet<String>,
    pub max_severity: Option<String>,
    pub description: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub attacks: usize,
    pub detected: usize,
    pub recall: f64,
    pub alerts_total: u64,
    pub alerts_unparsable: u64,
    pub alerts_on_attacks: u64,
    pub device_days: f64,
    pub false_alerts_by_severity: BTreeMap<String, u64>,
    pub false_alerts_by_kind: BTreeMap<String, u64>,
    pub false_alerts_per_device_day: BTreeMap<String, f64>,
    /// Medium, high and critical false alerts per device-day (the target is <= 0.005).
    pub false_medium_plus_per_device_day: f64,
    pub confounder_alerts_by_severity: BTreeMap<String, u64>,
    pub learning_alerts_by_severity: BTreeMap<String, u64>,
    pub scenarios: Vec<ScenarioResult>,
}

fn sev_rank(s: &str) -> usize {
    SEVERITIES.iter().position(|x| *x == s).unwrap_or(0)
}

/// Scores `alerts` (parsed JSON values) against `labels`.
pub fn score(labels: &Labels, alerts: &[Value]) -> EvalReport {
    let mut views = Vec::new();
    let mut bad = 0;
    for v in alerts {
        match AlertView::from_json(v) {
            Some(a) => views.push(a),
            None => bad += 1,
        }
    }
    let zero = || {
        SEVERITIES
            .iter()
            .map(|s| (s.to_string(), 0u64))
            .collect::<BTreeMap<_, _>>()
    };
    let mut results: Vec<ScenarioResult> = labels
        .scenarios
        .iter()
        .map(|s| ScenarioResult {
            id: s.id.clone(),
            kind: s.kind.clone(),
            benign: s.benign,
            device_names: s.device_names.iter().take(3).cloned().collect(),
            detected: false,
            primary_detected: false,
            primary_time_to_detect_secs: None,
            alerts: 0,
            time_to_detect_secs: None,
            matched_kinds: BTreeSet::new(),
            max_severity: None,
            description: s.description.clone(),
        })
        .collect();
    let mut false_sev = zero();
    let mut conf_sev = zero();
    let mut learn_sev = zero();
    let mut false_kind = BTreeMap::new();
    let mut on_attacks = 0;
    for a in &views {
        let mut attack = false;
        let mut confounder = false;
        for (s, r) in labels.scenarios.iter().zip(results.iter_mut()) {
            if !matches(a, s) {
                continue;
            }
            if s.benign {
                confounder = true
            } else {
                attack = true
            }
            r.alerts += 1;
            r.matched_kinds.insert(a.kind.clone());
            if r.max_severity
                .as_deref()
                .is_none_or(|m| sev_rank(m) < sev_rank(&a.severity))
            {
                r.max_severity = Some(a.severity.clone());
            }
            if !s.benign {
                r.detected = true;
                let ttd = (a.first_seen.0 - s.start.0).max(0) / 1_000_000;
                r.time_to_detect_secs = Some(r.time_to_detect_secs.map_or(ttd, |t| t.min(ttd)));
                if s.expected_kinds.first() == Some(&a.kind) {
                    r.primary_detected = true;
                    r.primary_time_to_detect_secs =
                        Some(r.primary_time_to_detect_secs.map_or(ttd, |t| t.min(ttd)));
                }
            }
        }
        // (P1) a behaviour alert (no destination: traffic change, reconnaissance, new device,
        // the device stage of DGA) raised on an attacked device during the attack is a side
        // effect of that attack, not a false alert (it does not count as a detection either,
        // unless its kind is one the scenario expects)
        let side_effect = !attack
            && a.destination.is_empty()
            && KIND_ONLY.contains(&a.kind.as_str())
            && labels.scenarios.iter().any(|s| {
                !s.benign && !s.devices.is_empty() && device_match(a, s) && time_match(a, s)
            });
        if attack || side_effect {
            on_attacks += 1;
        } else if confounder {
            *conf_sev.entry(a.severity.clone()).or_default() += 1;
        } else if a.first_seen < labels.learn_until {
            *learn_sev.entry(a.severity.clone()).or_default() += 1;
        } else {
            *false_sev.entry(a.severity.clone()).or_default() += 1;
            *false_kind.entry(a.kind.clone()).or_default() += 1;
        }
    }
    let device_days =
        labels.devices as f64 * (labels.days.saturating_sub(labels.learn_days)).max(1) as f64;
    let per_dd = false_sev
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / device_days))
        .collect();
    let medium_plus: u64 = false_sev
        .iter()
        .filter(|(k, _)| sev_rank(k) >= 2)
        .map(|(_, v)| v)
        .sum();
    let attacks = results.iter().filter(|r| !r.benign).count();
    let detected = results.iter().filter(|r| !r.benign && r.detected).count();
    EvalReport {
        attacks,
        detected,
        recall: if attacks == 0 {
            0.0
        } else {
            detected as f64 / attacks as f64
        },
        alerts_total: alerts.len() as u64,
        alerts_unparsable: bad,
        alerts_on_attacks: on_attacks,
        device_days,
        false_alerts_by_severity: false_sev,
        false_alerts_by_kind: false_kind,
        false_alerts_per_device_day: per_dd,
        false_medium_plus_per_device_day: medium_plus as f64 / device_days,
        confounder_alerts_by_severity: conf_sev,
        learning_alerts_by_severity: learn_sev,
        scenarios: results,
    }
}

/// Reads alerts from JSON lines (blank lines skipped) or a JSON array. Lines that are not JSON
/// objects are returned as `Value::Null` so they count as unparsable.
pub fn parse_alerts(text: &str) -> Vec<Value> {
    let t = text.trim_start();
    if t.starts_with('[') {
        if let Ok(Value::Array(v)) = serde_json::from_str(t) {
            return v;
        }
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect()
}

fn fmt_secs(s: i64) -> String {
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// A human-readable report (markdown tables).
pub fn render(r: &EvalReport) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "recall: {}/{} attack scenarios detected ({:.0}%)\nalerts: {} total, {} on attacks, {} unparsable\n",
        r.detected,
        r.attacks,
        r.recall * 100.0,
        r.alerts_total,
        r.alerts_on_attacks,
        r.alerts_unparsable
    ));
    o.push_str(&format!(
        "false alerts per device-day ({:.0} device-days after learning):",
        r.device_days
    ));
    for s in SEVERITIES {
        o.push_str(&format!(
            " {s} {:.4}",
            r.false_alerts_per_device_day
                .get(*s)
                .copied()
                .unwrap_or(0.0)
        ));
    }
    o.push_str(&format!(
        "\nmedium-or-higher false alerts per device-day: {:.4} (target <= 0.005)\n",
        r.false_medium_plus_per_device_day
    ));
    let line = |m: &BTreeMap<String, u64>| {
        SEVERITIES
            .iter()
            .map(|s| format!("{s} {}", m.get(*s).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    o.push_str(&format!(
        "false alerts by severity: {}\n",
        line(&r.false_alerts_by_severity)
    ));
    if !r.false_alerts_by_kind.is_empty() {
        o.push_str(&format!(
            "false alerts by kind: {}\n",
            r.false_alerts_by_kind
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    o.push_str(&format!(
        "alerts on benign confounders: {}\n",
        line(&r.confounder_alerts_by_severity)
    ));
    o.push_str(&format!(
        "alerts first seen during learning: {}\n\n",
        line(&r.learning_alerts_by_severity)
    ));
    o.push_str("| scenario | kind | device | detected | time to detect | own detector | alerts | matched kinds | max severity |\n|---|---|---|---|---|---|---|---|---|\n");
    for s in &r.scenarios {
        o.push_str(&format!(
            "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.id,
            s.kind,
            if s.benign { " (benign)" } else { "" },
            if s.device_names.is_empty() {
                "any".to_string()
            } else {
                s.device_names.join(" ")
            },
            if s.benign {
                "-".to_string()
            } else if s.detected {
                "yes".into()
            } else {
                "**no**".into()
            },
            s.time_to_detect_secs
                .map(fmt_secs)
                .unwrap_or_else(|| "-".into()),
            if s.benign {
                "-"
            } else if s.primary_detected {
                "yes"
            } else {
                "no"
            },
            s.alerts,
            s.matched_kinds
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            s.max_severity.clone().unwrap_or_else(|| "-".into())
        ));
    }
    o
}

/// One scored run, for [`render_summary`].
pub struct Run<'a> {
    pub labels: &'a Labels,
    pub report: &'a EvalReport,
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// Markdown tables over several runs: per run, per scenario kind, misses, confounders and false
/// alerts by kind.
pub fn render_summary(runs: &[Run]) -> String {
    let mut o = String::new();
    o.push_str("| run | devices x days (learning) | recall | false alerts / device-day (info, low, medium, high, critical) | medium+ / device-day | confounder alerts high+critical |\n|---|---|---|---|---|---|\n");
    for r in runs {
        let p = r.report;
        let per: Vec<String> = SEVERITIES
            .iter()
            .map(|s| {
                format!(
                    "{:.3}",
                    p.false_alerts_per_device_day
                        .get(*s)
                        .copied()
                        .unwrap_or(0.0)
                )
            })
            .collect();
        let ch = p
            .confounder_alerts_by_severity
            .get("high")
            .copied()
            .unwrap_or(0)
            + p.confounder_alerts_by_severity
                .get("critical")
                .copied()
                .unwrap_or(0);
        o.push_str(&format!(
            "| seed {} | {} x {} ({}) | {}/{} | {} | {:.3} | {} |\n",
            r.labels.seed,
            r.labels.devices,
            r.labels.days,
            r.labels.learn_days,
            p.detected,
            p.attacks,
            per.join(", "),
            p.false_medium_plus_per_device_day,
            ch
        ));
    }
    // per scenario kind
    #[allow(clippy::type_complexity)]
    let mut kinds: BTreeMap<
        String,
        (u32, u32, Vec<i64>, BTreeSet<String>, u32, Vec<i64>, String),
    > = BTreeMap::new();
    let mut misses = Vec::new();
    let mut side = Vec::new();
    let mut conf: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut fk: BTreeMap<String, u64> = BTreeMap::new();
    let mut dd = 0.0;
    for r in runs {
        dd += r.report.device_days;
        for (k, v) in &r.report.false_alerts_by_kind {
            *fk.entry(k.clone()).or_default() += v;
        }
        for (s, l) in r.report.scenarios.iter().zip(&r.labels.scenarios) {
            if s.benign {
                let c = conf.entry(s.kind.clone()).or_default();
                if let Some(m) = &s.max_severity {
                    *c.entry(m.clone()).or_default() += 1;
                }
                *c.entry("alerts".into()).or_default() += s.alerts;
                continue;
            }
            let e = kinds.entry(s.kind.clone()).or_default();
            e.1 += 1;
            e.6 = l.expected_kinds.first().cloned().unwrap_or_default();
            if s.primary_detected {
                e.4 += 1;
                e.5.extend(s.primary_time_to_detect_secs);
            } else if s.detected {
                side.push(format!(
                    "- seed {} ({} devices): `{}` on {} — {} (matched only by: {})",
                    r.labels.seed,
                    r.labels.devices,
                    s.id,
                    l.device_names.join(" "),
                    l.description,
                    s.matched_kinds
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if s.detected {
                e.0 += 1;
                e.2.extend(s.time_to_detect_secs);
                e.3.extend(s.matched_kinds.iter().cloned());
            } else {
                misses.push(format!(
                    "- seed {} ({} devices): `{}` on {} — {}",
                    r.labels.seed,
                    r.labels.devices,
                    s.id,
                    l.device_names.join(" "),
                    l.description
                ));
            }
        }
    }
    o.push_str("\n| scenario kind | detected (any matching alert) | median / slowest time to detect | by its own detector | median time (own detector) | alert kinds that matched |\n|---|---|---|---|---|---|\n");
    for (k, (det, n, ttd, mk, pdet, pttd, pk)) in kinds.iter_mut() {
        let slow = ttd.iter().max().copied();
        o.push_str(&format!(
            "| {k} | {det}/{n} | {} / {} | {pdet}/{n} (`{pk}`) | {} | {} |\n",
            median(ttd).map(fmt_secs).unwrap_or_else(|| "-".into()),
            slow.map(fmt_secs).unwrap_or_else(|| "-".into()),
            median(pttd).map(fmt_secs).unwrap_or_else(|| "-".into()),
            mk.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    o.push_str("\n**Missed scenarios**\n\n");
    if misses.is_empty() {
        o.push_str("none\n");
    } else {
        for m in misses {
            o.push_str(&m);
            o.push('\n');
        }
    }
    o.push_str("\n**Detected, but not by the scenario's own detector**\n\n");
    if side.is_empty() {
        o.push_str("none\n");
    } else {
        for m in side {
            o.push_str(&m);
            o.push('\n');
        }
    }
    o.push_str("\n| benign confounder | runs with alerts at max severity (info, low, medium, high, critical) | matching alerts |\n|---|---|---|\n");
    for (k, c) in &conf {
        let sev: Vec<String> = SEVERITIES
            .iter()
            .map(|s| c.get(*s).copied().unwrap_or(0).to_string())
            .collect();
        o.push_str(&format!(
            "| {k} | {} | {} |\n",
            sev.join(", "),
            c.get("alerts").copied().unwrap_or(0)
        ));
    }
    o.push_str(&format!("\n| false alerts by kind (all runs, {dd:.0} device-days) | count | per device-day |\n|---|---|---|\n"));
    for (k, v) in &fk {
        o.push_str(&format!("| {k} | {v} | {:.3} |\n", *v as f64 / dd.max(1.0)));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels() -> Labels {
        let t = |s: &str| Ts::parse(s).unwrap();
        Labels {
            seed: 1,
            devices: 10,
            days: 3,
            learn_days: 1,
            start: t("2026-11-02T00:00:00Z"),
            learn_until: t("2026-11-03T00:00:00Z"),
            end: t("2026-11-05T00:00:00Z"),
            geoip: false,
            scenarios: vec![
                ScenarioLabel {
                    id: "beaconing-1".into(),
                    kind: "beaconing".into(),
                    benign: false,
                    devices: vec!["10.1.0.5".into()],
                    device_names: vec!["ws-0005".into()],
                    group: "workstations".into(),
                    start: t("2026-11-03T10:00:00Z"),
                    end: t("2026-11-03T16:00:00Z"),
                    destinations: vec!["api.cdn-bluesky.net".into(), "cdn-bluesky.net".into()],
                    expected_kinds: vec!["beaconing".into()],
                    description: String::new(),
                },
                ScenarioLabel {
                    id: "ptr_sweep-1".into(),
                    kind: "ptr_sweep".into(),
                    benign: false,
                    devices: vec!["10.1.0.6".into()],
                    device_names: vec![],
                    group: "workstations".into(),
                    start: t("2026-11-04T10:00:00Z"),
                    end: t("2026-11-04T10:30:00Z"),
                    destinations: vec!["2.10.in-addr.arpa".into()],
                    expected_kinds: vec!["reconnaissance".into()],
                    description: String::new(),
                },
                ScenarioLabel {
                    id: "saas_rollout-1".into(),
                    kind: "saas_rollout".into(),
                    benign: true,
                    devices: vec!["10.1.0.7".into(), "10.1.0.8".into()],
                    device_names: vec![],
                    group: "workstations".into(),
                    start: t("2026-11-03T09:00:00Z"),
                    end: t("2026-11-05T00:00:00Z"),
                    destinations: vec!["loopwork.com".into()],
                    expected_kinds: vec![],
                    description: String::new(),
                },
            ],
        }
    }

    fn alert(
        kind: &str,
        sev: &str,
        dev: &str,
        group: &str,
        dest: &str,
        first: &str,
        last: &str,
    ) -> Value {
        json!({"id": "x", "kind": kind, "severity": sev, "score": 50, "device": dev, "group": group,
               "destination": dest, "first_seen": first, "last_seen": last, "count": 1, "summary": "",
               "evidence": {}, "status": "open"})
    }

    #[test]
    fn what_counts_as_detected() {
        let l = labels();
        // wrong device: not a detection (and a false alert)
        let r = score(
            &l,
            &[alert(
                "beaconing",
                "high",
                "10.1.0.9",
                "workstations",
                "cdn-bluesky.net",
                "2026-11-03T11:00:00Z",
                "2026-11-03T12:00:00Z",
            )],
        );
        assert_eq!(r.detected, 0);
        assert_eq!(r.false_alerts_by_severity["high"], 1);
        // right device, registered domain of the labeled name, inside the window: detected
        let r = score(
            &l,
            &[alert(
                "new_destination",
                "low",
                "10.1.0.5",
                "workstations",
                "cdn-bluesky.net",
                "2026-11-03T10:05:00Z",
                "2026-11-03T10:05:00Z",
            )],
        );
        assert_eq!(r.detected, 1);
        assert_eq!(r.scenarios[0].time_to_detect_secs, Some(300));
        assert!(r.scenarios[0].matched_kinds.contains("new_destination"));
        // right device and destination but two days later: not a detection
        let r = score(
            &l,
            &[alert(
                "beaconing",
                "high",
                "10.1.0.5",
                "",
                "api.cdn-bluesky.net",
                "2026-11-04T23:00:00Z",
                "2026-11-04T23:30:00Z",
            )],
        );
        assert_eq!(r.detected, 0);
        // behaviour kind without a matching destination counts when the scenario expects it
        let r = score(
            &l,
            &[alert(
                "reconnaissance",
                "medium",
                "10.1.0.6",
                "workstations",
                "",
                "2026-11-04T10:02:00Z",
                "2026-11-04T10:20:00Z",
            )],
        );
        assert_eq!(r.detected, 1);
        assert_eq!(r.scenarios[1].time_to_detect_secs, Some(120));
        // ... but a destination kind with an unrelated destination does not
        let r = score(
            &l,
            &[alert(
                "beaconing",
                "medium",
                "10.1.0.5",
                "workstations",
                "time.windows.com",
                "2026-11-03T11:00:00Z",
                "2026-11-03T12:00:00Z",
            )],
        );
        assert_eq!(r.detected, 0);
        assert!((r.false_medium_plus_per_device_day - 1.0 / 20.0).abs() < 1e-9);
        // a group roll-up (no device) counts by group
        let r = score(
            &l,
            &[alert(
                "beaconing",
                "high",
                "",
                "workstations",
                "api.cdn-bluesky.net",
                "2026-11-03T11:00:00Z",
                "2026-11-03T12:00:00Z",
            )],
        );
        assert_eq!(r.detected, 1);
        assert!((r.recall - 0.5).abs() < 1e-9);
    }

    #[test]
    fn confounders_and_learning_are_separate() {
        let l = labels();
        let alerts = vec![
            alert(
                "new_destination",
                "medium",
                "10.1.0.7",
                "workstations",
                "app.loopwork.com",
                "2026-11-03T09:30:00Z",
                "2026-11-03T09:30:00Z",
            ),
            alert(
                "new_destination",
                "low",
                "10.1.0.3",
                "workstations",
                "example.org",
                "2026-11-02T09:30:00Z",
                "2026-11-02T09:30:00Z",
            ),
            json!({"kind": "dga"}),
            Value::Null,
        ];
        let r = score(&l, &alerts);
        assert_eq!(r.confounder_alerts_by_severity["medium"], 1);
        assert_eq!(r.learning_alerts_by_severity["low"], 1);
        assert_eq!(r.false_alerts_by_severity.values().sum::<u64>(), 0);
        assert_eq!(r.alerts_unparsable, 2);
        assert_eq!(r.scenarios[2].alerts, 1);
        let text = render(&r);
        assert!(
            text.contains("| saas_rollout-1 | saas_rollout (benign)"),
            "{text}"
        );
    }

    #[test]
    fn parses_lines_and_arrays() {
        assert_eq!(parse_alerts("{\"a\":1}\n\nnot json\n").len(), 2);
        assert_eq!(parse_alerts("[{\"a\":1},{\"b\":2}]").len(), 2);
    }
}
