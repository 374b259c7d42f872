//! The query log page: search by device, name or suffix, type, rcode, blocked, time; keyset
//! pages. The form and the table ([`rows`]) are here; the rows come from the query-log store
//! once it is part of the build (see `page`): until then the page says so.

use crate::layout::shell;
use crate::session::User;
use crate::Web;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

/// The search form's fields (the names of `GET /api/v1/queries`'s parameters).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct QuerySearch {
    pub device: Option<String>,
    /// A name, or `*.suffix` for everything under it.
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub qtype: Option<String>,
    pub rcode: Option<String>,
    pub blocked: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// The keyset cursor of the next page (read by the query-log search once it is wired).
    #[allow(dead_code)]
    pub cursor: Option<String>,
}

/// One row of the query log as the page shows it (every field is text from the log; the
/// template escapes it).
#[derive(Clone, Debug, Default)]
pub struct QueryRow {
    pub time: String,
    pub device: String,
    pub name: String,
    pub qtype: String,
    pub rcode: String,
    pub blocked: bool,
    pub answers: String,
}

fn v(o: &Option<String>) -> Option<&str> {
    o.as_deref().filter(|s| !s.trim().is_empty())
}

fn form(q: &QuerySearch) -> Markup {
    html! {
        form.filters method="get" action="/ui/queries" {
            label { "Device " input name="device" value=[v(&q.device)] size="14"; }
            label { "Name " input name="name" value=[v(&q.name)] placeholder="host.example.com or *.example.com" size="22"; }
            label { "Type " input name="type" value=[v(&q.qtype)] placeholder="A" size="5"; }
            label { "Rcode " input name="rcode" value=[v(&q.rcode)] placeholder="NXDOMAIN" size="9"; }
            label { "Blocked "
                select name="blocked" {
                    option value="" { "any" }
                    option value="true" selected[v(&q.blocked) == Some("true")] { "yes" }
                    option value="false" selected[v(&q.blocked) == Some("false")] { "no" }
                }
            }
            label { "Since " input name="since" value=[v(&q.since)] placeholder="1h" size="8"; }
            label { "Until " input name="until" value=[v(&q.until)] size="8"; }
            button type="submit" { "Search" }
        }
    }
}

/// The rows as a table, with the link to the next page.
pub fn rows(q: &QuerySearch, rows: &[QueryRow], next: Option<&str>) -> Markup {
    html! {
        div.scroll {
        table.queries {
            thead { tr { th { "Time" } th { "Device" } th { "Name" } th { "Type" } th { "Rcode" } th { "Blocked" } th { "Answers" } } }
            tbody { @for r in rows {
                tr { td.nowrap { (r.time) } td { (super::device_link(&r.device, None)) } td.name { (r.name) }
                     td { (r.qtype) } td { (r.rcode) } td { @if r.blocked { "blocked" } } td.name { (r.answers) } }
            } }
        }
        }
        @if let Some(c) = next {
            nav.pager { a rel="next" href=(format!("/ui/queries?{}&cursor={}", qs(q), crate::fmt::enc(c))) { "older →" } }
        }
    }
}

fn qs(q: &QuerySearch) -> String {
    [
        ("device", &q.device),
        ("name", &q.name),
        ("type", &q.qtype),
        ("rcode", &q.rcode),
        ("blocked", &q.blocked),
        ("since", &q.since),
        ("until", &q.until),
    ]
    .iter()
    .filter_map(|(k, x)| v(x).map(|x| format!("{k}={}", crate::fmt::enc(x))))
    .collect::<Vec<_>>()
    .join("&")
}

pub(crate) async fn page(
    State(_web): State<Web>,
    user: User,
    Query(q): Query<QuerySearch>,
) -> Response {
    // To wire the query log: search the store with `q` (its fields are the names of
    // `GET /api/v1/queries`'s parameters, `cursor` the keyset cursor) through
    // `_web.api.read(...)`, map each row to a `QueryRow` and render
    // `rows(&q, &found, next.as_deref())` in place of the notice.
    let found: Option<(Vec<QueryRow>, Option<String>)> = None;
    let body = html! {
        h1 { "Query log" }
        (form(&q))
        @match &found {
            Some((r, next)) => (rows(&q, r, next.as_deref())),
            None => p.notice { "The query log is not part of this build yet: alerts, devices and destinations are." },
        }
    };
    shell("Query log", &user, "queries", body).into_response()
}
