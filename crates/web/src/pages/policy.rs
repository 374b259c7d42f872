//! Policy: blocks and allows (add, remove, expiry), the resolver's list files, the threat-intel
//! and GeoIP files with their freshness, the detection rules and exemptions in force (read-only:
//! they come from the config), and the RPZ link.

use crate::fmt::{dur, n};
use crate::layout::shell;
use crate::session::{check_form, now, FormData, User};
use crate::table::{col, post_button, Table};
use crate::Web;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dnsight_pipeline::{ExemptionView, FeedStatus, PolicyRuleView};
use dnsight_triage::{BlockRule, NewBlock, Role, Scope};
use maud::html;

pub(crate) async fn page(State(web): State<Web>, user: User) -> Response {
    let now = now();
    let blocks = match web.api.read(move |s| s.active_blocks(now)).await {
        Ok(b) => b,
        Err(e) => return crate::error_response(e),
    };
    let (feeds, rules) = web
        .api
        .pipe(|h| Ok((h.stats()?.feeds, h.rules()?)))
        .await
        .unwrap_or_default();
    let (lists, feeds): (Vec<FeedStatus>, Vec<FeedStatus>) = feeds
        .into_iter()
        .partition(|f| f.kind == "blocklist" || f.kind == "allowlist");
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
        section #lists {
            h2 { "Block and allow lists" }
            p.dim { "The resolver's list files ([[resolver.blocking.list]], --blocklist): rules in force, lines skipped, how old the copy is. They reload when the file changes." }
            (files_table(&lists, "No list file configured."))
        }
        section #feeds {
            h2 { "Threat-intel feeds and GeoIP databases" }
            (files_table(&feeds, "None configured."))
        }
        section #rules {
            h2 { "Detection rules" }
            p.dim { "[[policy]] in the config: a device of the group that looks up a denied name (or, with an allow-only list, anything else) raises a policy alert." }
            (Table::new(vec![
                col("Applies to", "", |r: &PolicyRuleView| html! { (r.group.as_deref().unwrap_or("every device")) }),
                col("Denied", "name", |r: &PolicyRuleView| html! { (r.deny.join(", ")) }),
                col("Only allowed", "name", |r: &PolicyRuleView| html! {
                    (r.allow_only.join(", "))
                    @if !r.allow_only.is_empty() && r.allow_internal { span.dim { " (and internal names)" } }
                }),
                col("Except", "name", |r: &PolicyRuleView| html! { (r.except.join(", ")) }),
                col("Why", "", |r: &PolicyRuleView| html! { (r.reason) }),
            ]).empty("No [[policy]] rule.").render(&rules.policy))
        }
        section #exemptions {
            h2 { "Exemptions" }
            p.dim { "[[detection.exempt]] in the config: findings these cover never become alerts (counted as exempted). For machines whose job looks like an attack: a package mirror, a scanner." }
            (Table::new(vec![
                col("Devices and groups", "name", |e: &ExemptionView| html! { (e.who.join(", ")) }),
                col("Kinds", "", |e: &ExemptionView| html! { @if e.kinds.is_empty() { "all" } @else { (e.kinds.join(", ")) } }),
                col("Destinations", "name", |e: &ExemptionView| html! { @if e.destinations.is_empty() { "any" } @else { (e.destinations.join(", ")) } }),
                col("Why", "", |e: &ExemptionView| html! { (e.reason) }),
            ]).empty("No exemption.").render(&rules.exempt))
        }
    };
    shell("Policy", &user, "policy", body).into_response()
}

/// Files kept fresh (lists, feeds, databases): entries, skipped lines, age, source, error.
fn files_table(files: &[FeedStatus], empty: &'static str) -> maud::Markup {
    Table::new(vec![
        col("Kind", "", |f: &FeedStatus| html! { (f.kind) }),
        col("Name", "", |f: &FeedStatus| html! { (f.name) }),
        col("Entries", "num", |f: &FeedStatus| html! { (n(f.entries)) }),
        col("Skipped", "num", |f: &FeedStatus| html! { (n(f.rejected)) }),
        col("Age", "nowrap", |f: &FeedStatus| html! { @if let Some(a) = f.age_secs { (dur(a as f64)) " old" } @else { "—" } @if f.stale { span.error { " stale" } } }),
        col("From", "name", |f: &FeedStatus| html! { (f.url.as_deref().unwrap_or(&f.path)) }),
        col("Error", "", |f: &FeedStatus| html! { @if let Some(e) = &f.last_error { span.error { (e) } } }),
    ])
    .empty(empty)
    .render(files)
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
