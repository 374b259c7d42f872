//! The alerts inbox: filters, sort, pages of 50, bulk actions with a count before acting, and
//! the rows the script's keyboard triage works on.

use super::{action_body, dest_link, device_link, done, kind_title, reason_select, sev, status};
use crate::fmt::{enc, n, ts};
use crate::layout::shell;
use crate::session::{check_form, now, FormData, User};
use crate::table::{col, Col, RowData, Table};
use crate::Web;
use axum::extract::{Form, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dnsight_api::AlertQuery;
use dnsight_engine::{Kind, Severity};
use dnsight_pipeline::{ActionRequest, Target};
use dnsight_triage::{Role, StoredAlert};
use maud::{html, Markup};
use serde::Deserialize;

pub(crate) const PAGE: u32 = 50;
/// The inbox's default: what still needs a person.
pub(crate) const TODO: &str = "open,flagged,reopened";

/// The inbox's query string: the API's alert filter plus the page.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Inbox {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub kind: Option<String>,
    pub device: Option<String>,
    pub group: Option<String>,
    pub destination: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub sort: Option<String>,
    pub page: Option<u64>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Inbox {
    /// The API's query for this filter (status defaults to the to-do statuses).
    pub fn api_query(&self) -> AlertQuery {
        AlertQuery {
            status: Some(nonempty(&self.status).unwrap_or_else(|| TODO.into())),
            severity: nonempty(&self.severity),
            kind: nonempty(&self.kind),
            device: nonempty(&self.device),
            group: nonempty(&self.group),
            destination: nonempty(&self.destination),
            since: nonempty(&self.since),
            until: nonempty(&self.until),
            sort: nonempty(&self.sort),
            limit: Some(PAGE.to_string()),
            offset: Some((self.page.unwrap_or(0) * u64::from(PAGE)).to_string()),
        }
    }
    /// The filter as a query string (without the page).
    pub fn qs(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("severity", &self.severity),
            ("kind", &self.kind),
            ("device", &self.device),
            ("group", &self.group),
            ("destination", &self.destination),
            ("since", &self.since),
            ("until", &self.until),
            ("sort", &self.sort),
        ] {
            if let Some(v) = nonempty(v) {
                parts.push(format!("{k}={}", enc(&v)));
            }
        }
        parts.join("&")
    }
    fn from_form(f: &FormData) -> Inbox {
        let g = |k: &str| f.get(k).map(str::to_string);
        Inbox {
            status: g("f_status"),
            severity: g("f_severity"),
            kind: g("f_kind"),
            device: g("f_device"),
            group: g("f_group"),
            destination: g("f_destination"),
            since: g("f_since"),
            until: g("f_until"),
            sort: None,
            page: None,
        }
    }
    fn hidden(&self) -> Markup {
        html! {
            @for (k, v) in [("f_status", &self.status), ("f_severity", &self.severity), ("f_kind", &self.kind),
                            ("f_device", &self.device), ("f_group", &self.group), ("f_destination", &self.destination),
                            ("f_since", &self.since), ("f_until", &self.until)] {
                @if let Some(v) = nonempty(v) { input type="hidden" name=(k) value=(v); }
            }
        }
    }
}

fn selected(cur: &Option<String>, v: &str) -> bool {
    nonempty(cur).as_deref() == Some(v)
}

fn filters(q: &Inbox) -> Markup {
    let statuses: Vec<(&str, &str)> = vec![
        (TODO, "to do (open, flagged, reopened)"),
        ("all", "any status"),
        ("open", "open"),
        ("flagged", "flagged"),
        ("reopened", "reopened"),
        ("acknowledged", "acknowledged"),
        ("blocked", "blocked"),
        ("resolved", "resolved"),
    ];
    html! {
        form.filters method="get" action="/ui/alerts" {
            label { "Status "
                select name="status" {
                    @for (v, l) in &statuses {
                        option value=(v) selected[selected(&q.status, v) || (nonempty(&q.status).is_none() && *v == TODO)] { (l) }
                    }
                }
            }
            label { "Severity ≥ "
                select name="severity" {
                    option value="" { "any" }
                    @for s in Severity::ALL {
                        option value=(s.as_str()) selected[selected(&q.severity, s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "Kind "
                select name="kind" {
                    option value="" { "any" }
                    @for k in Kind::ALL {
                        option value=(k.as_str()) selected[selected(&q.kind, k.as_str())] { (kind_title(k)) }
                    }
                }
            }
            label { "Device " input name="device" value=[nonempty(&q.device)] placeholder="10.0.0.5" size="14"; }
            label { "Group " input name="group" value=[nonempty(&q.group)] size="10"; }
            label { "Destination " input name="destination" value=[nonempty(&q.destination)] placeholder="example.com or *.example.com" size="18"; }
            label { "Seen since " input name="since" value=[nonempty(&q.since)] placeholder="24h, 2026-12-01" size="10"; }
            label { "First seen before " input name="until" value=[nonempty(&q.until)] placeholder="2026-12-01" size="10"; }
            label { "Sort "
                select name="sort" {
                    @for (v, l) in [("severity", "severity"), ("last_seen", "last seen"), ("first_seen", "newest"), ("count", "count")] {
                        option value=(v) selected[selected(&q.sort, v)] { (l) }
                    }
                }
            }
            button type="submit" { "Filter" }
            a href="/ui/alerts" { "Reset" }
        }
    }
}

/// The bulk action controls (analysts and admins).
fn bulk_controls(total: u64) -> Markup {
    html! {
        fieldset.bulk {
            legend { "Bulk action" }
            label { "Action "
                select name="action" {
                    option value="ack" { "acknowledge" }
                    option value="flag" { "flag" }
                    option value="block" { "block" }
                    option value="resolve" { "resolve" }
                    option value="reopen" { "reopen" }
                    option value="note" { "note" }
                }
            }
            (super::scope_select("scope"))
            (reason_select())
            label { "Note " input name="note" size="20"; }
            label.all { input type="checkbox" name="all" value="1"; " all " (n(total)) " matching the filter" }
            button type="submit" { "Review…" }
        }
    }
}

/// The inbox's rows (the script's keyboard triage reads `data-id`, `data-status`, `td.status`).
fn inbox_table(alerts: &[StoredAlert], act: bool) -> Markup {
    let mut cols: Vec<Col<'_, StoredAlert>> = Vec::new();
    if act {
        cols.push(col("", "", |a: &StoredAlert| {
            html! { input type="checkbox" name="id" value=(a.alert.id) aria-label="select"; }
        }));
    }
    cols.extend([
        col("Severity", "", |a: &StoredAlert| sev(a.alert.severity)),
        col(
            "Kind",
            "",
            |a: &StoredAlert| html! { (kind_title(a.alert.kind)) },
        ),
        col("Device", "", |a: &StoredAlert| {
            let al = &a.alert;
            html! { (device_link(&al.device, al.device_name.as_deref()))
            @if al.device_count > 1 { " " span.dim { "+" (al.device_count - 1) } } }
        }),
        col("Destination", "name", |a: &StoredAlert| {
            dest_link(&a.alert.destination)
        }),
        col("Summary", "wide", |a: &StoredAlert| {
            html! { a.open href=(format!("/ui/alerts/{}", enc(&a.alert.id))) { (a.alert.summary) } }
        }),
        col(
            "Last seen",
            "nowrap",
            |a: &StoredAlert| html! { (ts(a.alert.last_seen)) },
        ),
        col(
            "Count",
            "num",
            |a: &StoredAlert| html! { (n(a.alert.count)) },
        ),
        col("Status", "status", |a: &StoredAlert| status(a.alert.status)),
    ]);
    Table::new(cols)
        .class("alerts")
        .row_data(|a: &StoredAlert| RowData {
            id: Some(a.alert.id.clone()),
            status: Some(a.alert.status.as_str()),
            dest: None,
        })
        .render(alerts)
}

pub(crate) async fn inbox(State(web): State<Web>, user: User, Query(q): Query<Inbox>) -> Response {
    let aq = q.api_query();
    let f = match aq.to_filter(now()) {
        Ok(f) => f,
        Err(e) => return crate::bad(e),
    };
    let (alerts, total) = match web.api.read(move |s| s.list_alerts(&f)).await {
        Ok(x) => x,
        Err(e) => return crate::error_response(e),
    };
    let page = q.page.unwrap_or(0);
    let qs = q.qs();
    let pages = total.div_ceil(u64::from(PAGE));
    let act = user.can_act();
    let body = html! {
        h1 { "Alerts " span.dim { (n(total)) } }
        (filters(&q))
        @if act {
            p.keys.dim { "Keys: " kbd{"j"} "/" kbd{"k"} " move, " kbd{"Enter"} " open, " kbd{"a"} " acknowledge for the device, "
                kbd{"f"} " flag, " kbd{"b"} " block, " kbd{"r"} " resolve (reason below), " kbd{"n"} " note, " kbd{"u"} " undo the last, " kbd{"x"} " select." }
        }
        form #inbox method="post" action="/ui/alerts/bulk" {
            input type="hidden" name="csrf" value=(user.0.csrf);
            (q.hidden())
            @if act { (bulk_controls(total)) }
            @if alerts.is_empty() {
                p.empty { "No alerts match. " a href="/ui/alerts?status=all" { "Show every status" } }
            } @else {
                (inbox_table(&alerts, act))
            }
        }
        nav.pager aria-label="Pages" {
            @if page > 0 { a rel="prev" href=(format!("/ui/alerts?{qs}&page={}", page - 1)) { "← newer page" } }
            span.dim { "page " (page + 1) " of " (pages.max(1)) }
            @if page + 1 < pages { a rel="next" href=(format!("/ui/alerts?{qs}&page={}", page + 1)) { "next page →" } }
        }
    };
    shell("Alerts", &user, "alerts", body).into_response()
}

/// Bulk: without `confirm`, a dry run and the count to confirm; with it, the action.
pub(crate) async fn bulk(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = check_form(&headers, &web, &user, &form) {
        return r;
    }
    if let Err(r) = user.require(Role::Analyst) {
        return r;
    }
    let filter = Inbox::from_form(&form);
    let ids = form.all("id");
    let target = if form.get("all").is_some() {
        let mut f = match filter.api_query().to_filter(now()) {
            Ok(f) => f,
            Err(e) => return crate::bad(e),
        };
        f.limit = None;
        f.offset = 0;
        Target::Filter(f)
    } else if ids.is_empty() {
        return crate::bad(
            "Select alerts first (the boxes on the left), or tick \"all matching the filter\".",
        );
    } else {
        Target::Ids(ids.clone())
    };
    let body = action_body(&form);
    let action = match dnsight_api::to_action(&body) {
        Ok(a) => a,
        Err(e) => return crate::error_response(e),
    };
    let confirm = form.get("confirm").is_some();
    let req = ActionRequest {
        target,
        action,
        note: body.note.clone(),
        actor: user.actor(),
        dry_run: !confirm,
    };
    let res = match web.api.pipe(move |h| h.act(req)).await {
        Ok(r) => r,
        Err(e) => return crate::error_response(e),
    };
    let back = format!("/ui/alerts?{}", filter.qs());
    let verb = body.action.clone();
    let page = if !confirm {
        html! {
            h1 { "Confirm" }
            p.confirm { "This will " strong { (verb) } " " strong #matched { (n(res.matched)) } " alert" @if res.matched != 1 { "s" } "." }
            form method="post" action="/ui/alerts/bulk" {
                @for (k, v) in &form.0 {
                    @if k != "confirm" { input type="hidden" name=(k) value=(v); }
                }
                input type="hidden" name="confirm" value="1";
                button type="submit" disabled[res.matched == 0] { "Yes, " (verb) " " (n(res.matched)) }
                " " a href=(back) { "Cancel" }
            }
        }
    } else {
        html! {
            h1 { "Done" }
            p #result { (n(res.outcomes.len() as u64)) " of " (n(res.matched)) " alerts " (done(&verb)) "." }
            @if !res.errors.is_empty() {
                p { (res.errors.len()) " could not be changed:" }
                ul { @for e in res.errors.iter().take(50) { li { code { (e.alert_id) } ": " (e.error) } } }
            }
            p { a href=(back) { "Back to the inbox" } }
        }
    };
    shell("Bulk action", &user, "alerts", page).into_response()
}
