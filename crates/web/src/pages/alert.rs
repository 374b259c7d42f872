//! One alert: the summary, why it fired in plain words, the evidence as pictures, sample
//! queries, related alerts, the history, and the actions with scope, expiry and note.

use super::{
    action_body, dest_link, device_link, done, kind_title, reason_select, scope_select, sev, status,
};
use crate::fmt::{dur, enc, n, secs, ts};
use crate::layout::{self, shell};
use crate::session::{check_form, FormData, User};
use crate::svg::{self, Mark};
use crate::Web;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dnsight_engine::views::DeviceView;
use dnsight_engine::{Kind, Status};
use dnsight_model::Ts;
use dnsight_pipeline::{ActionRequest, Target};
use dnsight_triage::{AlertFilter, AuditEntry, Role, StoredAlert};
use maud::{html, Markup};
use serde_json::Value;

struct Loaded {
    alert: StoredAlert,
    history: Vec<AuditEntry>,
    related: Vec<StoredAlert>,
}

pub(crate) async fn page(State(web): State<Web>, user: User, Path(id): Path<String>) -> Response {
    let id2 = id.clone();
    let loaded = web
        .api
        .read(move |s| {
            let Some(alert) = s.get_alert(&id2)? else {
                return Ok(None);
            };
            let history = s.history(&id2)?;
            let mut related = Vec::new();
            let mut seen = std::collections::HashSet::new();
            seen.insert(id2.clone());
            let by_dev = AlertFilter {
                device: Some(alert.alert.device.clone()),
                limit: Some(10),
                ..Default::default()
            };
            let by_dest = AlertFilter {
                destination: (!alert.alert.destination.is_empty())
                    .then(|| alert.alert.destination.clone()),
                limit: Some(10),
                ..Default::default()
            };
            for f in [by_dev, by_dest] {
                if f.device.is_none() && f.destination.is_none() {
                    continue;
                }
                for a in s.list_alerts(&f)?.0 {
                    if seen.insert(a.alert.id.clone()) {
                        related.push(a);
                    }
                }
            }
            Ok(Some(Loaded {
                alert,
                history,
                related,
            }))
        })
        .await;
    let l = match loaded {
        Ok(Some(l)) => l,
        Ok(None) => return layout::not_found(&format!("There is no alert with id {id:?}.")),
        Err(e) => return crate::error_response(e),
    };
    // the device's baseline, for the hour-of-week picture (the engine may not hold it)
    let device = match l.alert.alert.device.parse::<std::net::IpAddr>() {
        Ok(ip)
            if matches!(
                l.alert.alert.kind,
                Kind::TrafficChange | Kind::NewDestination | Kind::NewCountry | Kind::NewAsn
            ) =>
        {
            web.api.pipe(move |h| h.device(ip)).await.ok().flatten()
        }
        _ => None,
    };
    let a = &l.alert.alert;
    let info = a.kind.info();
    let body = html! {
        p.crumbs { a href="/ui/alerts" { "Alerts" } " › " (kind_title(a.kind)) }
        h1 { (sev(a.severity)) " " (kind_title(a.kind)) " " (status(a.status)) }
        p.summary { (a.summary) }
        dl.facts {
            dt { "Device" } dd { (device_link(&a.device, a.device_name.as_deref()))
                @if let Some(g) = &a.group { " · group " (g) }
                @if a.device_count > 1 { " · " (a.device_count) " devices" } }
            dt { "Destination" } dd.name { (dest_link(&a.destination)) }
            dt { "Seen" } dd { (ts(a.first_seen)) " → " (ts(a.last_seen)) " · " (n(a.count)) @if a.count == 1 { " time" } @else { " times" } }
            dt { "Score" } dd { (a.score) " / 100" }
            @if let Some(r) = l.alert.reason { dt { "Closed as" } dd { (r.as_str().replace('_', " ")) } }
            @if let Some(note) = &l.alert.note { dt { "Note" } dd { (note) } }
            dt { "Id" } dd { code { (a.id) } }
        }
        section.why {
            h2 { "Why it fired" }
            p { (info.description) }
            (why(&l.alert))
        }
        section.evidence {
            h2 { "Evidence" }
            (pictures(&l.alert, device.as_ref()))
            (evidence_table(&a.evidence))
        }
        @if user.can_act() { (actions(&user, &l.alert)) }
        @else { p.dim { "Your role (viewer) can read but not act on alerts." } }
        @if a.devices.len() > 1 {
            section { h2 { "Devices (" (a.device_count) ")" }
                ul.cols { @for d in &a.devices { li { (device_link(d, None)) } } } }
        }
        section {
            h2 { "Related alerts" }
            (crate::table::alerts(&l.related, "None on this device or destination."))
        }
        section {
            h2 { "History" }
            @if l.history.is_empty() { p.dim { "No action yet." } }
            @else {
                ol.history {
                    @for h in &l.history {
                        li {
                            span.nowrap { (secs(h.ts)) } " " strong { (h.actor) } " " (h.action)
                            @if let (Some(b), Some(af)) = (h.status_before, h.status_after) { " (" (b.as_str()) " → " (af.as_str()) ")" }
                            @if let Some(s) = &h.scope { " · " (s) }
                            @if let Some(u) = h.until { " · until " (secs(u)) }
                            @if let Some(r) = h.reason { " · " (r.as_str()) }
                            @if let Some(nt) = &h.note { " — " q { (nt) } }
                        }
                    }
                }
            }
        }
    };
    shell(
        &format!("{} alert", kind_title(a.kind)),
        &user,
        "alerts",
        body,
    )
    .into_response()
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn text<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// Plain words: the score's parts and the baseline it broke.
fn why(sa: &StoredAlert) -> Markup {
    let a = &sa.alert;
    let e = &a.evidence;
    let own = a.own_score;
    let related: Vec<&str> = e
        .get("related_kinds")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let baseline: Option<String> = match a.kind {
        Kind::NewDestination => Some(format!(
            "The device had {} destinations in its baseline and this was not one of them{}.",
            num(e, "device_destinations").map(|v| n(v as u64)).unwrap_or_else(|| "?".into()),
            match num(e, "org_devices_using") {
                Some(0.0) | None => "; no other device of the organisation uses it".to_string(),
                Some(v) => format!("; {} other devices of the organisation use it", v as u64),
            }
        )),
        Kind::NewCountry => Some(format!(
            "The device had reached {} countries before; {} is new to it.",
            e.get("device_countries").and_then(Value::as_array).map(|v| v.len()).unwrap_or(0),
            text(e, "country").unwrap_or("this country")
        )),
        Kind::TrafficChange => Some(format!(
            "Its {} this hour was {} where its hour-of-week profile expects {} ± {} (z = {}).",
            text(e, "metric").unwrap_or("volume"),
            num(e, "value").map(|v| format!("{v}")).unwrap_or_default(),
            num(e, "expected").map(|v| format!("{v}")).unwrap_or_default(),
            num(e, "sd").map(|v| format!("{v}")).unwrap_or_default(),
            num(e, "z").map(|v| format!("{v}")).unwrap_or_default(),
        )),
        Kind::Beaconing => Some(format!(
            "{} lookups at a median interval of {} (spread {}), regularity {}: a schedule, not a person.",
            num(e, "lookups").map(|v| v as u64).unwrap_or(0),
            num(e, "interval_median_s").map(dur).unwrap_or_default(),
            num(e, "interval_mad_s").map(dur).unwrap_or_default(),
            num(e, "regularity").map(|v| format!("{v:.2}")).unwrap_or_default(),
        )),
        Kind::Dga => num(e, "probability").map(|p| format!(
            "The name model gives p = {p:.3} that the name is machine-generated (threshold {}).",
            num(e, "threshold").unwrap_or(0.0)
        )),
        Kind::ThreatIntel => Some("A threat-intelligence feed lists the name or a parent.".into()),
        _ => None,
    };
    html! {
        @if let Some(b) = baseline { p { (b) } }
        ul {
            li { "This signal alone scored " (format!("{:.0}", own)) "; combined with the other signals on the same device and destination the alert scores " (a.score) " (" (a.severity.as_str()) ")." }
            @if !related.is_empty() {
                li { "Other kinds on the same device and destination: " (related.join(", ")) "." }
            }
            li { "Acknowledging it: " (a.kind.info().ack_effect) }
        }
    }
}

fn ts_of(v: &Value, k: &str) -> Option<i64> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(Ts::parse)
        .map(Ts::secs)
}

/// The kind's pictures.
fn pictures(sa: &StoredAlert, device: Option<&DeviceView>) -> Markup {
    let a = &sa.alert;
    let e = &a.evidence;
    let first = a.first_seen.secs();
    let last = a.last_seen.secs();
    html! {
        @match a.kind {
            Kind::Beaconing => {
                @if let Some(hist) = e.get("interval_histogram").and_then(Value::as_object) {
                    @let order = ["<10s", "<30s", "<1m", "<5m", "<15m", "<1h", "<6h", ">=6h"];
                    @let vals: Vec<f64> = order.iter().map(|k| hist.get(*k).and_then(Value::as_f64).unwrap_or(0.0)).collect();
                    @let labels: Vec<String> = order.iter().map(|s| s.to_string()).collect();
                    @let peak = vals.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).map(|x| x.0);
                    figure { (svg::bars("Time between lookups", &labels, &vals, peak)) figcaption { "Time between lookups: a beacon piles up in one bin." } }
                }
                @let arrivals: Vec<i64> = e.get("arrivals").and_then(Value::as_array)
                    .map(|v| v.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
                @if arrivals.len() >= 2 {
                    @let (lo, hi) = (arrivals[0], arrivals[arrivals.len() - 1]);
                    @let marks: Vec<Mark> = arrivals.iter().map(|t| Mark { at: *t, label: String::new(), class: "m4" }).collect();
                    figure {
                        (svg::timeline("Lookups over time", lo, hi.max(lo + 60), &marks, None, None))
                        figcaption { "The last " (arrivals.len()) " lookups the detector kept, one dot each (" (secs(lo)) " to " (secs(hi)) "): a beacon's dots are evenly spaced." }
                    }
                } @else {
                    figure {
                        (svg::timeline("Lookups over time", first, last.max(first + 60),
                            &[Mark { at: first, label: "first".into(), class: "m1" }, Mark { at: last, label: "last".into(), class: "m2" }],
                            Some((first, last)), num(e, "interval_median_s")))
                        figcaption { "From the first to the last lookup, with a tick at every median interval (" (num(e, "interval_median_s").map(dur).unwrap_or_default()) "): the check-in schedule. (This alert's evidence holds no arrival times: it was raised by an older dnsight.)" }
                    }
                }
            }
            Kind::TrafficChange => {
                @if let Some(d) = device {
                    @let mark = e.get("hour_of_week").and_then(Value::as_u64).map(|v| v as usize);
                    figure { (svg::heatmap("The device's hour-of-week profile", &d.hour_of_week, mark))
                        figcaption { "Mean queries per hour over the week (site time); the outlined hour is the anomaly." } }
                }
                @if let (Some(v), Some(x)) = (num(e, "value"), num(e, "expected")) {
                    figure { (svg::hbars("This hour against the profile", &[("expected".into(), x), ("this hour".into(), v)], Some(1))) }
                }
            }
            Kind::NewDestination | Kind::NewCountry | Kind::NewAsn => {
                @let mut marks = vec![Mark { at: first, label: "this alert".into(), class: "m1" }];
                @let _ = ts_of(e, "device_first_seen").map(|t| marks.push(Mark { at: t, label: "device first seen".into(), class: "m2" }));
                @let _ = ts_of(e, "org_first_seen").map(|t| marks.push(Mark { at: t, label: "organisation first saw it".into(), class: "m3" }));
                @let lo = marks.iter().map(|m| m.at).min().unwrap_or(first);
                @let hi = marks.iter().map(|m| m.at).max().unwrap_or(last).max(last);
                figure { (svg::timeline("First sightings", lo, hi.max(lo + 3600), &marks, None, None))
                    figcaption { "When the device appeared, when the organisation first used the destination, and this alert." } }
                @if let Some(c) = e.get("device_countries").and_then(Value::as_array) {
                    p { "Countries the device reached before: "
                        @for x in c { span.chip { (x.as_str().unwrap_or("?")) } " " }
                        @if let Some(nc) = text(e, "country") { "new: " span.chip.hl { (nc) } } }
                }
                @if let Some(d) = device {
                    figure { (svg::heatmap("The device's hour-of-week profile", &d.hour_of_week, None))
                        figcaption { "The device's usual week." } }
                }
            }
            Kind::Dga => {
                @if let Some(p) = num(e, "probability") {
                    figure { (svg::gauge("Generated-name probability", p, num(e, "threshold").unwrap_or(0.5), 1.0)) }
                }
                @let names: Vec<(String, f64)> = ["resolved_names", "examples"].iter()
                    .filter_map(|k| e.get(*k).and_then(Value::as_array))
                    .flatten()
                    .filter_map(|v| v.as_str().map(|s| (s.to_string(), 1.0)).or_else(|| {
                        Some((v.get("name")?.as_str()?.to_string(), v.get("p").or(v.get("probability")).and_then(Value::as_f64).unwrap_or(1.0)))
                    }))
                    .take(20).collect();
                @if !names.is_empty() {
                    figure { (svg::hbars("Names", &names, None)) figcaption { "Names of the episode." } }
                }
            }
            Kind::Tunneling => {
                @let items: Vec<(String, f64)> = [("unique_subdomains_hour", "unique subdomains this hour"), ("unique_subdomains_day", "unique subdomains today"),
                    ("mean_subdomain_length", "mean subdomain length"), ("longest_label", "longest label"), ("subdomain_entropy", "entropy (bits/char)")]
                    .iter().filter_map(|(k, l)| num(e, k).map(|v| (l.to_string(), v))).collect();
                @if !items.is_empty() { figure { (svg::hbars("Tunnel measures", &items, None)) } }
                @if let Some(s) = num(e, "tunnel_score") { figure { (svg::gauge("Tunnel score", s, 0.5, 1.0)) } }
            }
            _ => {}
        }
        @if let Some(samples) = e.get("sample_queries").and_then(Value::as_array) {
            h3 { "Sample queries" }
            ul.samples { @for s in samples { li { code { (s.as_str().unwrap_or("")) } } } }
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn evidence_table(e: &Value) -> Markup {
    html! {
        @if let Some(o) = e.as_object() {
            details {
                summary { "All evidence fields" }
                table.kv { tbody {
                    @for (k, v) in o {
                        @if k != "sample_queries" { tr { th { (k) } td.name { (value_text(v)) } } }
                    }
                } }
            }
        }
    }
}

fn actions(user: &User, sa: &StoredAlert) -> Markup {
    let a = &sa.alert;
    let url = format!("/ui/alerts/{}/action", enc(&a.id));
    let csrf = &user.0.csrf;
    html! {
        section.actions #actions {
            h2 { "Act" }
            form.act method="post" action=(url) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="ack";
                h3 { "Acknowledge — it is normal" }
                (scope_select("scope"))
                label { "Until " input name="until" placeholder="7d, 2027-01-01 (empty: for good)" size="16"; }
                label { "Note " input name="note" size="24"; }
                button type="submit" #do-ack { "Acknowledge" }
            }
            form.act method="post" action=(url) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="block";
                h3 { "Block — the resolver answers NXDOMAIN" }
                label { "Scope "
                    select name="scope" {
                        option value="all" selected { "everyone" }
                        option value="group" { "its group" }
                        option value="device" { "this device" }
                    }
                }
                label { "What "
                    select name="target" {
                        option value="domain" selected { "the destination and everything under it" }
                        option value="exact" { "the exact name of the sample query" }
                    }
                }
                label { "For " input name="for" placeholder="1h, 7d (empty: until unblocked)" size="14"; }
                label { "Note " input name="note" size="24"; }
                button type="submit" #do-block { "Block" }
            }
            form.act method="post" action=(url) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="resolve";
                h3 { "Resolve" }
                (reason_select())
                label { "Note " input name="note" size="24"; }
                button type="submit" #do-resolve { "Resolve" }
            }
            div.row {
                form.act method="post" action=(url) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="action" value="flag";
                    label { "Note " input name="note" size="16"; }
                    button type="submit" #do-flag { "Flag (escalate)" }
                }
                form.act method="post" action=(url) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="action" value="note";
                    label { "Note " input name="note" size="24" required; }
                    button type="submit" #do-note { "Add note" }
                }
                @if a.status == Status::Blocked {
                    form.act method="post" action=(url) {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="action" value="unblock";
                        button type="submit" #do-unblock { "Unblock" }
                    }
                }
                @if !a.status.is_open() {
                    form.act method="post" action=(url) {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="action" value="reopen";
                        button type="submit" #do-reopen { "Reopen" }
                    }
                }
            }
        }
    }
}

fn wants_json(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// One action from a form (redirects back to the alert) or from the script (JSON).
pub(crate) async fn action(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    let json = wants_json(&headers);
    let fail = |status: StatusCode, msg: String| -> Response {
        if json {
            (
                status,
                axum::Json(serde_json::json!({ "ok": false, "error": msg })),
            )
                .into_response()
        } else {
            layout::error_page(status, &msg)
        }
    };
    if let Err(r) = check_form(&headers, &web, &user, &form) {
        return if json {
            fail(
                r.status(),
                "refused: reload the page (security token or origin)".into(),
            )
        } else {
            r
        };
    }
    if let Err(r) = user.require(Role::Analyst) {
        return if json {
            fail(
                r.status(),
                format!("your role ({}) cannot act on alerts", user.0.role.as_str()),
            )
        } else {
            r
        };
    }
    let body = action_body(&form);
    let action = match dnsight_api::to_action(&body) {
        Ok(a) => a,
        Err(e) => return fail(e.status, e.msg),
    };
    let req = ActionRequest {
        target: Target::Ids(vec![id.clone()]),
        action,
        note: body.note.clone(),
        actor: user.actor(),
        dry_run: false,
    };
    let res = match web.api.pipe(move |h| h.act(req)).await {
        Ok(r) => r,
        Err(e) => return fail(e.status, e.msg),
    };
    if res.matched == 0 {
        return fail(StatusCode::NOT_FOUND, format!("no alert with id {id:?}"));
    }
    if res.outcomes.is_empty() {
        let msg = res
            .errors
            .first()
            .map(|e| e.error.clone())
            .unwrap_or_else(|| "nothing changed".into());
        return fail(StatusCode::BAD_REQUEST, msg);
    }
    let o = &res.outcomes[0];
    if json {
        return axum::Json(serde_json::json!({
            "ok": true,
            "id": o.alert_id,
            "before": o.before.as_str(),
            "after": o.after.as_str(),
            "message": format!("{} ({} → {})", done(&body.action), o.before.as_str(), o.after.as_str()),
        }))
        .into_response();
    }
    Redirect::to(&format!("/ui/alerts/{}", enc(&id))).into_response()
}
