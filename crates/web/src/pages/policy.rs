//! Policy: blocks and allows (add, remove, expiry), the threat-intel and GeoIP files with their
//! freshness, and the RPZ link.

use crate::fmt::{dur, n};
use crate::layout::shell;
use crate::session::{check_form, now, FormData, User};
use crate::table::{col, post_button, Table};
use crate::Web;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dnsight_pipeline::FeedStatus;
use dnsight_triage::{BlockRule, NewBlock, Role, Scope};
use maud::html;

pub(crate) async fn page(State(web): State<Web>, user: User) -> Response {
    let now = now();
    let blocks = match web.api.read(move |s| s.active_blocks(now)).await {
        Ok(b) => b,
        Err(e) => return crate::error_response(e),
    };
    let feeds = web
        .api
        .pipe(|h| h.stats())
        .await
        .map(|s| s.feeds)
        .unwrap_or_default();
    let act = user.can_act();
    let csrf = user.0.csrf.clone();
    let mut extra = vec![
        col("By", "", |b: &BlockRule| html! { (b.created_by) }),
        col(
            "Note",
            "",
            |b: &BlockRule| html! { (b.note.as_deref().unwrap_or("")) },
        ),
    ];
    if act {
        extra.push(col("", "", move |b: &BlockRule| {
            post_button(
                &format!("/ui/policy/blocks/{}/remove", b.id),
                &csrf,
                "remove",
            )
        }));
    }
    let body = html! {
        h1 { "Policy" }
        section {
            h2 { "Blocks and allows (" (blocks.len()) ")" }
            p.dim { "The resolver applies them from the next query; blocks of everyone are also served as an RPZ zone at " a href="/rpz" { "/rpz" } "." }
            (crate::table::blocks(&blocks, extra))
            @if act {
                form.act method="post" action="/ui/policy/blocks" {
                    input type="hidden" name="csrf" value=(user.0.csrf);
                    h3 { "Add" }
                    label { "Name " input name="name" required placeholder="ads.example.com" size="24"; }
                    label { select name="kind" { option value="block" { "block" } option value="allow" { "allow (exception)" } } }
                    label { input type="checkbox" name="subdomains" value="1" checked; " and everything under it" }
                    label { "Scope " select name="scope" { option value="all" { "everyone" } option value="group" { "group" } option value="device" { "device" } } }
                    label { "Group or device " input name="value" size="14"; }
                    label { "For " input name="for" placeholder="1h, 7d (empty: until removed)" size="14"; }
                    label { "Note " input name="note" size="20"; }
                    button type="submit" { "Add" }
                }
            }
        }
        section {
            h2 { "Threat-intel feeds and GeoIP databases" }
            (Table::new(vec![
                col("Kind", "", |f: &FeedStatus| html! { (f.kind) }),
                col("Name", "", |f: &FeedStatus| html! { (f.name) }),
                col("Entries", "num", |f: &FeedStatus| html! { (n(f.entries)) }),
                col("Age", "nowrap", |f: &FeedStatus| html! { @if let Some(a) = f.age_secs { (dur(a as f64)) " old" } @else { "—" } @if f.stale { span.error { " stale" } } }),
                col("From", "name", |f: &FeedStatus| html! { (f.url.as_deref().unwrap_or(&f.path)) }),
                col("Error", "", |f: &FeedStatus| html! { @if let Some(e) = &f.last_error { span.error { (e) } } }),
            ]).empty("None configured.").render(&feeds))
        }
    };
    shell("Policy", &user, "policy", body).into_response()
}

pub(crate) async fn add_block(
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
    let name = match form.get("name").map(dnsight_triage::normalize_name) {
        Some(Ok(n)) => n,
        Some(Err(e)) => return crate::bad(e.to_string()),
        None => return crate::bad("give a name to block or allow"),
    };
    let value = form.get("value").map(str::trim).unwrap_or("");
    let scope = match form.get("scope").unwrap_or("all") {
        "all" => Scope::All,
        "group" if !value.is_empty() => Scope::Group(value.to_string()),
        "device" => match value.parse() {
            Ok(ip) => Scope::Device(ip),
            Err(_) => return crate::bad(format!("{value:?} is not a device address")),
        },
        _ => return crate::bad("a group scope needs the group's name"),
    };
    let expires_at = match form.get("for") {
        None => None,
        Some(d) => match dnsight_api::parse_duration(d) {
            Ok(s) => Some(now() + s),
            Err(e) => return crate::bad(format!("for: {e}")),
        },
    };
    let nb = NewBlock {
        name,
        subdomains: form.get("subdomains").is_some(),
        scope,
        allow: form.get("kind") == Some("allow"),
        expires_at,
        note: form.get("note").map(str::to_string),
        alert_id: None,
    };
    let actor = user.actor();
    crate::redirect_or_error(
        web.api.pipe(move |h| h.add_block(nb, &actor)).await,
        "/ui/policy",
    )
}

pub(crate) async fn remove_block(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = check_form(&headers, &web, &user, &form) {
        return r;
    }
    if let Err(r) = user.require(Role::Analyst) {
        return r;
    }
    let actor = user.actor();
    crate::redirect_or_error(
        web.api.pipe(move |h| h.remove_block(id, &actor)).await,
        "/ui/policy",
    )
}
