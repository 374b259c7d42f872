//! The query log page: search by device, name or suffix, type, rcode, blocked, time; keyset
//! pages. The same search as `GET /api/v1/queries` (its parameters and their parsing), read
//! through the API's store connection.

use crate::layout::shell;
use crate::session::User;
use crate::table::{col, Table};
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
    /// The keyset cursor of the next page.
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
    /// Identical transactions the row stands for (within one second).
    pub count: u64,
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

/// Rows of the query log as a table.
pub(crate) fn table(rows: &[QueryRow], empty: &str) -> Markup {
    Table::new(vec![
        col("Time", "nowrap", |r: &QueryRow| html! { (r.time) }),
        col("Count", "num", |r: &QueryRow| html! { (r.count) }),
        col("Device", "", |r: &QueryRow| {
            super::device_link(&r.device, None)
        }),
        col("Name", "name", |r: &QueryRow| html! { (r.name) }),
        col("Type", "", |r: &QueryRow| html! { (r.qtype) }),
        col("Rcode", "", |r: &QueryRow| html! { (r.rcode) }),
        col(
            "Blocked",
            "",
            |r: &QueryRow| html! { @if r.blocked { "blocked" } },
        ),
        col("Answers", "name", |r: &QueryRow| html! { (r.answers) }),
    ])
    .class("queries")
    .empty(empty)
    .render(rows)
}

impl From<dnsight_triage::QueryRow> for QueryRow {
    fn from(r: dnsight_triage::QueryRow) -> QueryRow {
        QueryRow {
            time: r.time,
            device: r.client,
            name: r.name,
            qtype: r.qtype,
            rcode: r.rcode.unwrap_or_else(|| "-".into()),
            blocked: r.blocked.is_some(),
            answers: r.answers.join(", "),
            count: r.count,
        }
    }
}

/// The rows as a table, with the link to the next page.
pub fn rows(q: &QuerySearch, rows: &[QueryRow], next: Option<&str>) -> Markup {
    html! {
        (table(rows, "No queries match."))
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

impl QuerySearch {
    /// The API's search parameters: `*.example.com` in the name field is a suffix search.
    fn api_query(&self) -> dnsight_api::QueriesQuery {
        let name = v(&self.name).map(str::trim);
        let (name, suffix) = match name {
            Some(n) if n.starts_with("*.") => (None, Some(n[2..].to_string())),
            Some(n) => (Some(n.to_string()), None),
            None => (None, None),
        };
        dnsight_api::QueriesQuery {
            device: v(&self.device).map(|s| s.trim().to_string()),
            name,
            suffix,
            qtype: v(&self.qtype).map(str::to_string),
            rcode: v(&self.rcode).map(str::to_string),
            blocked: v(&self.blocked).map(str::to_string),
            since: v(&self.since).map(str::to_string),
            until: v(&self.until).map(str::to_string),
            cursor: v(&self.cursor).map(str::to_string),
            limit: Some("100".into()),
            format: None,
        }
    }
}

pub(crate) async fn page(
    State(web): State<Web>,
    user: User,
    Query(q): Query<QuerySearch>,
) -> Response {
    let f = match q.api_query().to_filter(crate::session::now()) {
        Ok(f) => f,
        Err(e) => return crate::bad(e),
    };
    let page = match web.api.read(move |s| s.search_queries(&f)).await {
        Ok(p) => p,
        Err(e) => return crate::error_response(e),
    };
    let found: Vec<QueryRow> = page.rows.into_iter().map(QueryRow::from).collect();
    let body = html! {
        h1 { "Query log" }
        (form(&q))
        @if found.is_empty() {
            p.empty { "No queries match." }
        } @else {
            (rows(&q, &found, page.next.as_deref()))
        }
    };
    shell("Query log", &user, "queries", body).into_response()
}
