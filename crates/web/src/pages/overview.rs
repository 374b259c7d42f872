//! Overview: alerts over time, by severity and kind, top devices and destinations, destinations
//! new this week, ingestion health.

use super::{dest_link, device_link, kind_title, sev};
use crate::fmt::{bytes, enc, n, ts};
use crate::layout::shell;
use crate::session::User;
use crate::svg;
use crate::table::{col, Table};
use crate::Web;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use dnsight_engine::{Kind, Severity};
use dnsight_triage::{AlertFilter, Sort, StoredAlert};
use maud::{html, Markup};

const HOURS: i64 = crate::activity::HOURS;

/// Queries, blocks, NXDOMAIN answers (the query log) and alerts first seen, per hour from
/// `from` (Unix seconds).
fn activity_chart(
    act: &Option<crate::activity::Series>,
    from: i64,
    per_hour: &[(i64, u64)],
) -> Markup {
    let hours = HOURS as usize;
    let mut alerts = vec![0.0; hours];
    for (t, c) in per_hour {
        if let Some(slot) = usize::try_from((t - from).div_euclid(3600))
            .ok()
            .and_then(|i| alerts.get_mut(i))
        {
            *slot += *c as f64;
        }
    }
    let pick = |f: fn(&dnsight_triage::TimelineBucket) -> u64| -> Vec<f64> {
        act.as_ref()
            .map(|a| a.buckets.iter().map(|b| f(b) as f64).collect())
            .unwrap_or_default()
    };
    let (q, b, nx) = (
        pick(|b| b.queries),
        pick(|b| b.blocked),
        pick(|b| b.nxdomain),
    );
    let mut rows = Vec::new();
    if act.is_some() {
        rows.push(svg::Row {
            label: "queries",
            values: &q,
            class: "s1",
        });
        rows.push(svg::Row {
            label: "blocked",
            values: &b,
            class: "s2",
        });
        rows.push(svg::Row {
            label: "NXDOMAIN",
            values: &nx,
            class: "s3",
        });
    }
    rows.push(svg::Row {
        label: "new alerts",
        values: &alerts,
        class: "s4",
    });
    html! {
        figure {
            (svg::series("Queries, blocks, NXDOMAIN answers and new alerts per hour", from, 3600, &rows))
            figcaption {
                "Per hour, each row on its own scale. "
                @if act.is_none() { "Query counts: the query log is empty, or still being counted ([querylog] in the config turns it on)." }
                @else { "Queries from the query log, counted in the background every few seconds." }
            }
        }
    }
}

/// Ingestion health per source: whether it runs, events and events/s, drops, rejects, the
/// last event.
fn sources_table(list: &[dnsight_pipeline::SourceStatus], now: i64) -> Markup {
    use dnsight_pipeline::SourceStatus as S;
    Table::new(vec![
        col("Source", "name", |s: &S| html! { (s.name) }),
        col("State", "nowrap", |s: &S| html! {
            @if s.up { span.chip.up { "up" } }
            @else { span.chip.down { "down" } }
            @if let Some(e) = &s.error { " " span.error { (e) } }
        }),
        col("Events", "num", |s: &S| html! { (n(s.events)) }),
        col("Events/s", "num", |s: &S| html! { (format!("{:.0}", s.events_per_sec)) }),
        col("Dropped", "num", |s: &S| html! {
            @if s.dropped > 0 { span.error { (n(s.dropped)) } } @else { "0" }
        }),
        col("Rejected", "num", |s: &S| html! { (n(s.rejected)) }),
        col("Last event", "nowrap", move |s: &S| html! {
            @match s.last_event_unix {
                Some(t) => { (crate::fmt::dur(now.saturating_sub(t).max(0) as f64)) " ago" }
                None => span.dim { "none yet" },
            }
        }),
    ])
    .class("sources")
    .empty("No source is counted in this process (the resolver, [[source]] entries and the event intake appear here).")
    .render(list)
}

pub(crate) async fn page(State(web): State<Web>, user: User) -> Response {
    let stats = match web.api.pipe(|h| h.stats()).await {
        Ok(s) => s,
        Err(e) => return crate::error_response(e),
    };
    // event time: the query log's newest row (or else the newest alert's last sighting) is
    // "now" for the charts (replays and demos run on their own clock)
    web.inner.activity.kick(&web.api);
    let act = web.inner.activity.all();
    let act_from = act.as_ref().map(|a| a.from_us.div_euclid(1_000_000));
    let loaded = web
        .api
        .read(move |s| {
            let now = match act_from {
                Some(f) => f + HOURS * 3600,
                None => s
                    .list_alerts(&AlertFilter {
                        sort: Sort::LastSeen,
                        limit: Some(1),
                        ..Default::default()
                    })?
                    .0
                    .first()
                    .map(|a| a.alert.last_seen.secs())
                    .unwrap_or_else(dnsight_pipeline::now_secs),
            };
            let from = act_from.unwrap_or_else(|| (now / 3600 + 1) * 3600 - HOURS * 3600);
            let o = s.alert_overview(from, 10)?;
            let fresh = s
                .list_alerts(&AlertFilter {
                    kind: vec![Kind::NewDestination],
                    since: Some(now - 7 * 86_400),
                    sort: Sort::FirstSeen,
                    limit: Some(12),
                    ..Default::default()
                })?
                .0;
            Ok((from, o, fresh))
        })
        .await;
    let (from, o, fresh) = match loaded {
        Ok(x) => x,
        Err(e) => return crate::error_response(e),
    };
    let rate = {
        let mut g = web.inner.rate.lock().unwrap_or_else(|e| e.into_inner());
        let t = std::time::Instant::now();
        let r = g.and_then(|(t0, n0)| {
            let dt = t.duration_since(t0).as_secs_f64();
            (dt >= 0.5).then(|| (stats.events_in.saturating_sub(n0)) as f64 / dt)
        });
        if g.is_none_or(|(t0, _)| t.duration_since(t0).as_secs_f64() >= 0.5) {
            *g = Some((t, stats.events_in));
        }
        r
    };
    let open_total: u64 = o.by_severity.iter().map(|x| x.1).sum();
    let by_sev: Vec<(String, f64)> = Severity::ALL
        .iter()
        .rev()
        .map(|s| {
            let v = o
                .by_severity
                .iter()
                .find(|x| x.0 == s.as_str())
                .map(|x| x.1)
                .unwrap_or(0);
            (s.as_str().to_string(), v as f64)
        })
        .collect();
    let by_kind: Vec<(String, f64)> = o
        .by_kind
        .iter()
        .map(|(k, v)| {
            (
                Kind::parse(k).map(kind_title).unwrap_or(k).to_string(),
                *v as f64,
            )
        })
        .collect();
    let e = &stats.engine;
    let body = html! {
        h1 { "Overview" }
        div.cards {
            a.card href="/ui/alerts" { span.big #open-total { (n(open_total)) } span { "open alerts" } }
            div.card { span.big { (n(stats.events_in)) } span { "events analysed" } }
            div.card { span.big { @if let Some(r) = rate { (format!("{r:.0}")) } @else { "—" } } span { "events/s now" } }
            div.card { span.big { (n(e.devices as u64)) } span { "devices" } }
            div.card { span.big { (n(stats.store.blocks_active)) } span { "active blocks" } }
        }
        div.grid {
            section.wide {
                h2 { "Queries, blocks and alerts over 14 days" }
                (activity_chart(&act, from, &o.per_hour))
            }
            section {
                h2 { "Open alerts by severity" }
                (svg::hbars("Open alerts by severity", &by_sev, None))
            }
            section {
                h2 { "Open alerts by kind" }
                @if by_kind.is_empty() { p.dim { "None." } } @else { (svg::hbars("Open alerts by kind", &by_kind, None)) }
            }
            section {
                h2 { "Top devices (open alerts)" }
                (crate::table::counts("Device", &o.top_devices, "device", |d| device_link(d, None)))
            }
            section {
                h2 { "Top destinations (open alerts)" }
                (crate::table::counts("Destination", &o.top_destinations, "destination", dest_link))
            }
            section {
                h2 { "New destinations this week" }
                (Table::new(vec![
                    col("", "", |a: &StoredAlert| sev(a.alert.severity)),
                    col("", "name", |a: &StoredAlert| html! { a href=(format!("/ui/alerts/{}", enc(&a.alert.id))) { (a.alert.destination) } }),
                    col("", "", |a: &StoredAlert| device_link(&a.alert.device, a.alert.device_name.as_deref())),
                    col("", "nowrap", |a: &StoredAlert| html! { (ts(a.alert.first_seen)) }),
                ]).headless().render(&fresh))
            }
            section.wide #sources {
                h2 { "Sources" }
                (sources_table(&stats.sources, dnsight_pipeline::now_secs()))
            }
            section {
                h2 { "Ingestion health" }
                table.kv { tbody {
                    tr { th { "Events in" } td { (n(stats.events_in)) " in " (n(stats.batches_in)) " batches" } }
                    tr { th { "Engine" } td { (n(e.events)) " events, " (n(e.devices as u64)) " devices, " (n(e.destinations as u64)) " destinations" } }
                    tr { th { "Alert changes stored" } td { (n(stats.alerts_written)) } }
                    tr { th { "State saves" } td { (n(stats.saves)) @if stats.save_errors > 0 { span.error { " · " (stats.save_errors) " failed" } } } }
                    tr { th { "Triage store" } td { (bytes(stats.store.file_bytes)) } }
                    tr { th { "Notifications" } td { (stats.store.outbox.pending) " pending, " (stats.store.outbox.failed) " failed" } }
                    @for f in &stats.feeds {
                        tr { th { (f.kind) " " (f.name) } td {
                            (n(f.entries)) " entries"
                            @if let Some(a) = f.age_secs { ", " (crate::fmt::dur(a as f64)) " old" }
                            @if f.stale { span.error { " · stale" } }
                            @if let Some(er) = &f.last_error { span.error { " · " (er) } }
                        } }
                    }
                } }
            }
        }
    };
    shell("Overview", &user, "overview", body).into_response()
}
