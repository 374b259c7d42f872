//! Devices, and one device with its baseline.

use super::{dest_link, device_link, kind_title};
use crate::fmt::{enc, n, secs};
use crate::layout::{self, shell};
use crate::session::User;
use crate::svg;
use crate::table::{col, scope_label, Table};
use crate::Web;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use dnsight_triage::{AckRule, AlertFilter, Sort};
use maud::html;
use serde::Deserialize;

const PAGE: usize = 100;
use crate::activity::{HOURS, STEP_US};

#[derive(Deserialize, Default)]
pub(crate) struct DevQuery {
    q: Option<String>,
    group: Option<String>,
    page: Option<usize>,
}

pub(crate) async fn list(
    State(web): State<Web>,
    user: User,
    Query(q): Query<DevQuery>,
) -> Response {
    let mut devs = match web.api.pipe(|h| h.devices()).await {
        Ok(d) => d,
        Err(e) => return crate::error_response(e),
    };
    let needle =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_lowercase);
    let group = q.group.as_deref().map(str::trim).filter(|s| !s.is_empty());
    devs.retain(|d| {
        needle.as_ref().is_none_or(|nd| {
            d.ip.contains(nd.as_str())
                || d.name
                    .as_deref()
                    .is_some_and(|x| x.to_ascii_lowercase().contains(nd.as_str()))
        }) && group.is_none_or(|g| d.group.as_deref() == Some(g))
    });
    devs.sort_by(|a, b| {
        b.open_alerts
            .cmp(&a.open_alerts)
            .then(b.events.cmp(&a.events))
            .then(a.ip.cmp(&b.ip))
    });
    let total = devs.len();
    let page = q.page.unwrap_or(0);
    let shown: Vec<_> = devs.iter().skip(page * PAGE).take(PAGE).collect();
    // queries per 6 hours over the last 7 days of the query log, per device
    web.inner.activity.kick(&web.api);
    let ips: Vec<&str> = shown.iter().map(|d| d.ip.as_str()).collect();
    let sparks = web.inner.activity.sparks(&ips, 6, 28);
    let counted = web.inner.activity.ready();
    let qs = format!(
        "q={}&group={}",
        enc(q.q.as_deref().unwrap_or("")),
        enc(q.group.as_deref().unwrap_or(""))
    );
    let body = html! {
        h1 { "Devices " span.dim { (n(total as u64)) } }
        form.filters method="get" action="/ui/devices" {
            label { "Address or name " input name="q" value=[q.q.as_deref()] size="16"; }
            label { "Group " input name="group" value=[q.group.as_deref()] size="10"; }
            button type="submit" { "Filter" }
        }
        div.scroll {
        table.devices {
            thead { tr { th { "Device" } th { "Group" } th { "Queries, 7 days" } th.num { "Events" } th.num { "Destinations" } th { "Last seen" } th.num { "Open alerts" } } }
            tbody {
                @for (d, spark) in shown.iter().zip(&sparks) {
                    tr {
                        td { (device_link(&d.ip, d.name.as_deref())) @if d.learning { " " span.chip { "learning" } } }
                        td { (d.group.as_deref().unwrap_or("—")) }
                        td { @match spark {
                            Some(v) => (svg::sparkline(&format!("{} queries in the last 7 days of the query log, per 6 hours", n(v.iter().sum::<f64>() as u64)), v)),
                            None => span.dim { @if counted { "—" } @else { "counting…" } },
                        } }
                        td.num { (n(d.events)) }
                        td.num { (n(d.destinations)) }
                        td.nowrap { (secs(d.last_seen)) }
                        td.num { @if d.open_alerts > 0 { a href=(format!("/ui/alerts?device={}", enc(&d.ip))) { (d.open_alerts) } } @else { "0" } }
                    }
                }
            }
        }
        }
        nav.pager {
            @if page > 0 { a href=(format!("/ui/devices?{qs}&page={}", page - 1)) { "← previous" } }
            span.dim { "page " (page + 1) " of " (total.div_ceil(PAGE).max(1)) }
            @if (page + 1) * PAGE < total { a href=(format!("/ui/devices?{qs}&page={}", page + 1)) { "next →" } }
        }
    };
    shell("Devices", &user, "devices", body).into_response()
}

pub(crate) async fn page(State(web): State<Web>, user: User, Path(ip): Path<String>) -> Response {
    let Ok(addr) = ip.trim().parse::<std::net::IpAddr>() else {
        return crate::bad(format!("{ip:?} is not an IP address"));
    };
    let view = match web.api.pipe(move |h| h.device(addr)).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return layout::not_found(&format!("The engine does not know a device {addr}."))
        }
        Err(e) => return crate::error_response(e),
    };
    let group = view.summary.group.clone();
    let ipstr = addr.to_string();
    web.inner.activity.kick(&web.api);
    let cached = web.inner.activity.device(&ipstr);
    let window = web
        .inner
        .activity
        .all()
        .map(|a| (a.from_us, a.from_us + HOURS * STEP_US));
    let now = crate::session::now();
    let ip2 = ipstr.clone();
    let ip3 = ipstr.clone();
    let (alerts, acks, timeline, recent) = match web
        .api
        .read(move |s| {
            // the counts the background keeps, or this one device's counted now
            let timeline = match cached {
                Some(c) => Some(c),
                None => window
                    .or_else(|| crate::activity::window(s).ok().flatten())
                    .and_then(|(lo, hi)| crate::activity::update(s, Some(&ip2), None, lo, hi).ok()),
            };
            let alerts = s
                .list_alerts(&AlertFilter {
                    device: Some(ipstr),
                    sort: Sort::LastSeen,
                    limit: Some(20),
                    ..Default::default()
                })?
                .0;
            let acks: Vec<_> = s
                .active_acks(now)?
                .into_iter()
                .filter(|a| a.scope.covers(addr, group.as_deref()))
                .collect();
            // its newest queries (the log may be off or pseudonymised: then none)
            let recent: Vec<super::queries::QueryRow> = s
                .search_queries(&dnsight_triage::QueryFilter {
                    device: Some(ip3),
                    limit: Some(10),
                    ..Default::default()
                })
                .map(|p| p.rows.into_iter().map(Into::into).collect())
                .unwrap_or_default();
            Ok((alerts, acks, timeline, recent))
        })
        .await
    {
        Ok(x) => x,
        Err(e) => return crate::error_response(e),
    };
    let d = &view.summary;
    let week_ago = d.last_seen - 7 * 86_400;
    let fresh: Vec<_> = view
        .destinations
        .iter()
        .filter(|x| x.first_seen >= week_ago)
        .collect();
    let body = html! {
        p.crumbs { a href="/ui/devices" { "Devices" } " › " (d.ip) }
        h1 { @if let Some(nm) = &d.name { (nm) " " } span.dim { (d.ip) } }
        dl.facts {
            dt { "Group" } dd { (d.group.as_deref().unwrap_or("—")) }
            dt { "Seen" } dd { (secs(d.first_seen)) " → " (secs(d.last_seen)) " · " (n(d.events)) " events" }
            dt { "Baseline" } dd { @if d.learning { "learning" } @else { "learned" } " · " (n(d.destinations)) " destinations" }
            dt { "Countries" } dd { @for c in &view.countries { span.chip { (c) } " " } @if view.countries.is_empty() { "—" } }
            dt { "Open alerts" } dd { a href=(format!("/ui/alerts?device={}", enc(&d.ip))) { (d.open_alerts) } }
            dt { "Queries" } dd { a href=(format!("/ui/queries?device={}", enc(&d.ip))) { "recent queries in the query log" } }
        }
        section {
            h2 { "Queries over 14 days" }
            @match &timeline {
                Some(t) => {
                    @let q: Vec<f64> = t.buckets.iter().map(|b| b.queries as f64).collect();
                    @let b: Vec<f64> = t.buckets.iter().map(|b| b.blocked as f64).collect();
                    @let nx: Vec<f64> = t.buckets.iter().map(|b| b.nxdomain as f64).collect();
                    figure { (svg::series("The device's queries, blocks and NXDOMAIN answers per hour", t.from_us.div_euclid(1_000_000), 3600, &[
                            svg::Row { label: "queries", values: &q, class: "s1" },
                            svg::Row { label: "blocked", values: &b, class: "s2" },
                            svg::Row { label: "NXDOMAIN", values: &nx, class: "s3" },
                        ]))
                        figcaption { "Per hour from the query log, each row on its own scale." } }
                }
                None => p.dim { "No queries in the query log (it is off, or empty)." }
            }
        }
        section {
            h2 { "Hour of week" }
            figure { (svg::heatmap("Mean queries per hour of the week", &view.hour_of_week, None))
                figcaption { "Mean queries per hour, Monday first, site time." } }
        }
        section {
            h2 { "New this week" }
            @if fresh.is_empty() { p.dim { "Nothing new in the last 7 days of its traffic." } }
            @else { ul.cols { @for x in &fresh { li { (dest_link(&x.name)) " " span.dim { (secs(x.first_seen)) " · " (x.state) } } } } }
        }
        section {
            h2 { "Acknowledgements in force" }
            (Table::new(vec![
                col("Kind", "", |a: &AckRule| html! { (kind_title(a.kind)) }),
                col("Destination", "name", |a: &AckRule| dest_link(&a.destination)),
                col("Scope", "", |a: &AckRule| html! { (scope_label(&a.scope)) }),
                col("Until", "nowrap", |a: &AckRule| html! { (a.until.map(secs).unwrap_or_else(|| "for good".into())) }),
                col("By", "", |a: &AckRule| html! { (a.created_by) }),
                col("Note", "", |a: &AckRule| html! { (a.note.as_deref().unwrap_or("")) }),
            ]).render(&acks))
        }
        section {
            h2 { "Recent queries" }
            (super::queries::table(&recent, "None in the query log."))
            p { a href=(format!("/ui/queries?device={}", enc(&d.ip))) { "All its queries in the query log →" } }
        }
        section {
            h2 { "Recent alerts" }
            (crate::table::alerts(&alerts, "None."))
        }
        section #baseline {
            h2 { "Baseline (" (n(view.destinations.len() as u64)) " destinations)" }
            div.scroll {
            table.baseline {
                thead { tr { th { "Destination" } th { "State" } th { "First seen" } th { "Last seen" } th.num { "Count" } th.num { "Days" } } }
                tbody { @for x in view.destinations.iter().take(1000) {
                    tr data-dest=(x.name) { td.name { (dest_link(&x.name)) } td { (x.state) } td.nowrap { (secs(x.first_seen)) } td.nowrap { (secs(x.last_seen)) } td.num { (n(x.count)) } td.num { (x.days) } }
                } }
            }
            }
            @if view.destinations.len() > 1000 { p.dim { "The 1,000 most queried are shown." } }
        }
    };
    shell(
        &format!("Device {}", view.summary.ip),
        &user,
        "devices",
        body,
    )
    .into_response()
}
