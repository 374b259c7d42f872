//! Destinations: search, the destinations of open alerts, and one destination — who talks to
//! it and since when, intel matches, blocks, open alerts.

use super::{dest_link, device_link};
use crate::fmt::{enc, n, secs};
use crate::layout::{self, shell};
use crate::session::User;
use crate::table::col;
use crate::Web;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub(crate) struct DestQuery {
    q: Option<String>,
}

pub(crate) async fn list(
    State(web): State<Web>,
    user: User,
    Query(q): Query<DestQuery>,
) -> Response {
    if let Some(name) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        return Redirect::to(&format!("/ui/destinations/{}", enc(name))).into_response();
    }
    // the counts only: no alert is first seen after the end of time (no per-hour rows)
    let o = match web.api.read(|s| s.alert_overview(i64::MAX, 100)).await {
        Ok(o) => o,
        Err(e) => return crate::error_response(e),
    };
    let body = html! {
        h1 { "Destinations" }
        form.filters method="get" action="/ui/destinations" {
            label { "Name or address " input name="q" size="30" placeholder="example.com" required; }
            button type="submit" { "Look up" }
        }
        h2 { "Destinations of open alerts" }
        (crate::table::counts("Destination", &o.top_destinations, "destination", dest_link))
    };
    shell("Destinations", &user, "destinations", body).into_response()
}

pub(crate) async fn page(State(web): State<Web>, user: User, Path(name): Path<String>) -> Response {
    let n0 = match dnsight_api::canonical_name(&name) {
        Ok(n) => n,
        Err(e) => return crate::error_response(e),
    };
    let n1 = n0.clone();
    let view = match web.api.pipe(move |h| h.destination(&n1)).await {
        Ok(v) => v,
        Err(e) => return crate::error_response(e),
    };
    let now = crate::session::now();
    let blocks = match web.api.read(move |s| s.active_blocks(now)).await {
        Ok(b) => b,
        Err(e) => return crate::error_response(e),
    };
    let covering: Vec<_> = blocks
        .into_iter()
        .filter(|b| b.name == n0 || (b.subdomains && n0.ends_with(&format!(".{}", b.name))))
        .collect();
    let Some(v) = view else {
        if covering.is_empty() {
            return layout::not_found(&format!(
                "No device has talked to {n0:?}, and no block covers it."
            ));
        }
        return shell(
            "Destination",
            &user,
            "destinations",
            html! {
                h1.name { (n0) }
                p { "No device has this destination in its baseline." }
                (blocks_table(&covering))
            },
        )
        .into_response();
    };
    let body = html! {
        p.crumbs { a href="/ui/destinations" { "Destinations" } " › " (v.name) }
        h1.name { (v.name) }
        dl.facts {
            dt { "First seen" } dd { (v.first_seen.map(secs).unwrap_or_else(|| "—".into())) " (organisation)" }
            dt { "Last seen" } dd { (v.last_seen.map(secs).unwrap_or_else(|| "—".into())) }
            dt { "Internal" } dd { @if v.internal { "yes" } @else { "no" } }
            dt { "Devices" } dd { (v.devices.len()) }
            dt { "Open alerts" } dd { a href=(format!("/ui/alerts?destination={}", enc(&v.name))) { (v.open_alerts.len()) } }
            dt { "Queries" } dd { a href=(format!("/ui/queries?name={}", enc(&v.name))) { "in the query log" } }
        }
        section {
            h2 { "Threat intelligence" }
            @if v.intel.is_empty() { p.dim { "No feed lists it." } }
            ul { @for m in &v.intel { li { strong { (m.feed) } " lists " code { (m.entry) } } } }
        }
        section { h2 { "Blocks and allows" } (blocks_table(&covering)) }
        section {
            h2 { "Who talks to it" }
            div.scroll {
            table {
                thead { tr { th { "Device" } th { "Group" } th { "Since" } th { "Last" } th.num { "Count" } th { "State" } } }
                tbody { @for d in &v.devices {
                    tr { td { (device_link(&d.ip, d.name.as_deref())) } td { (d.group.as_deref().unwrap_or("—")) }
                         td.nowrap { (secs(d.first_seen)) } td.nowrap { (secs(d.last_seen)) } td.num { (n(d.count)) } td { (d.state) } }
                } }
            }
            }
        }
    };
    shell("Destination", &user, "destinations", body).into_response()
}

fn blocks_table(b: &[dnsight_triage::BlockRule]) -> maud::Markup {
    crate::table::blocks(
        b,
        vec![col("", "", |_: &dnsight_triage::BlockRule| {
            html! { a href="/ui/policy" { "policy" } }
        })],
    )
}
