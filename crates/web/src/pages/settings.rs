//! Settings: users, API tokens, sessions, notifications.

use crate::fmt::secs;
use crate::layout::shell;
use crate::session::{check_form, now, FormData, User};
use crate::table::{col, post_button};
use crate::Web;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dnsight_triage::Role;
use maud::{html, Markup};

fn role_select() -> Markup {
    html! {
        select name="role" {
            option value="viewer" { "viewer (reads)" }
            option value="analyst" selected { "analyst (acts on alerts and blocks)" }
            option value="admin" { "admin (users and tokens too)" }
        }
    }
}

async fn render(web: &Web, user: &User, shown_secret: Option<(String, String)>) -> Response {
    let admin = user.is_admin();
    let now = now();
    let loaded = web
        .api
        .read(move |s| {
            let users = if admin { s.list_users()? } else { Vec::new() };
            let tokens = if admin { s.list_tokens()? } else { Vec::new() };
            let sessions = s.list_sessions(now)?;
            let outbox = s.outbox_list(None, 200)?;
            Ok((users, tokens, sessions, outbox))
        })
        .await;
    let (users, tokens, sessions, outbox) = match loaded {
        Ok(x) => x,
        Err(e) => return crate::error_response(e),
    };
    let sessions: Vec<_> = sessions
        .into_iter()
        .filter(|s| admin || s.user_id == user.0.user_id)
        .collect();
    let csrf = &user.0.csrf;
    let tests = web
        .inner
        .tests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let targets: Vec<TargetRow> = web
        .inner
        .targets
        .iter()
        .map(|t| {
            let mine = || outbox.iter().filter(|o| o.target == t.name);
            TargetRow {
                name: t.name.clone(),
                kind: t.type_name(),
                to: t.describe(),
                min_severity: t.route.min_severity.as_str(),
                events: t
                    .route
                    .events
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                last: mine().next().map(|o| {
                    (
                        o.state.as_str(),
                        o.sent_at.unwrap_or(o.created_at),
                        o.last_error.clone(),
                    )
                }),
                pending: mine()
                    .filter(|o| o.state == dnsight_triage::OutboxState::Pending)
                    .count(),
                failed: mine()
                    .filter(|o| o.state == dnsight_triage::OutboxState::Failed)
                    .count(),
                test: tests
                    .iter()
                    .find(|x| x.0 == t.name)
                    .map(|x| (x.1, x.2.clone())),
            }
        })
        .collect();
    let body = html! {
        h1 { "Settings" }
        @if let Some((what, secret)) = &shown_secret {
            p.notice #secret role="status" { (what) " (shown once): " code { (secret) } }
        }
        section #sessions {
            h2 { @if admin { "Sessions" } @else { "Your sessions" } }
            div.scroll {
            table {
                thead { tr { th { "User" } th { "From" } th { "Browser" } th { "Started" } th { "Last used" } th {} } }
                tbody { @for s in &sessions {
                    tr {
                        td { (s.user) @if s.id == user.0.id { " " span.chip { "this one" } } }
                        td { (s.client.as_deref().unwrap_or("—")) }
                        td.name { (s.agent.as_deref().unwrap_or("—")) }
                        td.nowrap { (secs(s.created_at)) }
                        td.nowrap { (secs(s.last_seen)) }
                        td { (post_button(&format!("/ui/settings/sessions/{}/revoke", s.id), csrf, "revoke")) }
                    }
                } }
            }
            }
        }
        @if admin {
            section #users {
                h2 { "Users" }
                div.scroll {
                table {
                    thead { tr { th { "Name" } th { "Role" } th { "Created" } th { "Last sign-in" } th {} } }
                    tbody { @for u in &users {
                        tr { td { (u.name) } td { (u.role.as_str()) } td.nowrap { (secs(u.created_at)) }
                             td.nowrap { (u.last_login.map(secs).unwrap_or_else(|| "never".into())) }
                             td { @if u.id != user.0.user_id {
                                (post_button(&format!("/ui/settings/users/{}/remove", crate::fmt::enc(&u.name)), csrf, "remove")) } } }
                    } }
                }
                }
                form.act method="post" action="/ui/settings/users" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Name " input name="name" required size="14" pattern="[A-Za-z0-9._@-]{1,64}"; }
                    label { "Role " (role_select()) }
                    button type="submit" { "Add user (a password is generated)" }
                }
            }
            section #tokens {
                h2 { "API tokens" }
                div.scroll {
                table {
                    thead { tr { th { "Name" } th { "Role" } th { "Created" } th { "Expires" } th { "Last used" } th { "" } } }
                    tbody { @for t in &tokens {
                        tr { td { (t.name) } td { (t.role.as_str()) } td.nowrap { (secs(t.created_at)) }
                             td.nowrap { (t.expires_at.map(secs).unwrap_or_else(|| "never".into())) }
                             td.nowrap { (t.last_used.map(secs).unwrap_or_else(|| "never".into())) }
                             td { @if t.revoked_at.is_some() { "revoked" } @else {
                                (post_button(&format!("/ui/settings/tokens/{}/revoke", t.id), csrf, "revoke")) } } }
                    } }
                }
                }
                form.act method="post" action="/ui/settings/tokens" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Name " input name="name" required size="14"; }
                    label { "Role " (role_select()) }
                    label { "Expires " input name="expires" placeholder="90d (empty: never)" size="10"; }
                    button type="submit" { "Create token" }
                }
            }
        }
        section #targets {
            h2 { "Notification targets" }
            p.dim { "Configured in the config file ([[notify]]). Where each delivers (secret paths and tokens not shown), what it gets, and its latest delivery." }
            (crate::table::Table::new(vec![
                col("Name", "", |t: &TargetRow| html! { (t.name) }),
                col("Type", "", |t: &TargetRow| html! { (t.kind) }),
                col("Delivers to", "name", |t: &TargetRow| html! { (t.to) }),
                col("Gets", "", |t: &TargetRow| html! { (t.min_severity) "+ · " (t.events) }),
                col("Latest delivery", "", |t: &TargetRow| html! {
                    @match &t.last {
                        Some((state, at, err)) => {
                            span class=(format!("chip {}", if *state == "failed" { "down" } else if *state == "sent" { "up" } else { "" })) { (state) }
                            " " span.nowrap { (secs(*at)) }
                            @if let Some(e) = err { " " span.error { (e) } }
                        }
                        None => span.dim { "none yet" },
                    }
                    @if t.pending > 0 || t.failed > 0 { br; span.dim { (t.pending) " pending, " (t.failed) " failed (of the latest 200)" } }
                }),
                col("Test", "", |t: &TargetRow| html! {
                    @if let Some((at, r)) = &t.test {
                        @match r {
                            Ok(()) => { span.chip.up { "test sent" } " " span.nowrap { (secs(*at)) } }
                            Err(e) => { span.chip.down { "test failed" } " " span.nowrap { (secs(*at)) } " " span.error { (e) } }
                        }
                    }
                    @if admin {
                        (post_button(&format!("/ui/settings/notify/{}/test", crate::fmt::enc(&t.name)), csrf, "send a test"))
                    }
                }),
            ]).class("targets").empty("No [[notify]] target is configured.").render(&targets))
        }
        section #notifications {
            h2 { "Notifications" }
            p.dim { "The latest deliveries:" }
            @if outbox.is_empty() { p.dim { "Nothing sent yet." } }
            div.scroll { table { tbody { @for o in outbox.iter().take(20) {
                tr { td { (o.target) } td { (o.event.as_str()) } td { a href=(format!("/ui/alerts/{}", crate::fmt::enc(&o.alert.id))) { (o.alert.summary) } } td { (o.state.as_str()) }
                     td.nowrap { (secs(o.created_at)) } td { (o.last_error.as_deref().unwrap_or("")) } }
            } } } }
        }
    };
    shell("Settings", user, "settings", body).into_response()
}

pub(crate) async fn page(State(web): State<Web>, user: User) -> Response {
    render(&web, &user, None).await
}

/// One notification target as Settings shows it.
struct TargetRow {
    name: String,
    kind: &'static str,
    to: String,
    min_severity: &'static str,
    events: String,
    /// The newest outbox row's (state, time, error).
    last: Option<(&'static str, i64, Option<String>)>,
    pending: usize,
    failed: usize,
    /// The last test sent from here.
    test: Option<(i64, Result<(), String>)>,
}

/// Sends a sample notification to one target now (admins; not through the outbox), and
/// shows the outcome on Settings. The error is the transport's, which never holds a hook's
/// secret path or token (`dnsight_notify::send`).
pub(crate) async fn test_target(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = guarded(&web, &user, &headers, &form, Role::Admin).await {
        return r;
    }
    let Some(t) = web.inner.targets.iter().find(|t| t.name == name).cloned() else {
        return crate::layout::not_found("There is no notification target of that name.");
    };
    let outcome = match tokio::task::spawn_blocking(move || dnsight_notify::send_test(&t)).await {
        Ok(r) => r.map_err(|e| dnsight_notify::format::clean(&e, 300)),
        Err(e) => Err(format!("the test did not run: {e}")),
    };
    tracing::info!(target = %name, by = %user.actor(), ok = outcome.is_ok(), "test notification from the dashboard");
    {
        let mut g = web.inner.tests.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|x| x.0 != name);
        g.push((name, now(), outcome));
    }
    axum::response::Redirect::to("/ui/settings#targets").into_response()
}

async fn guarded(
    web: &Web,
    user: &User,
    headers: &HeaderMap,
    form: &FormData,
    need: Role,
) -> Result<(), Response> {
    check_form(headers, web, user, form)?;
    user.require(need)
}

pub(crate) async fn revoke_session(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = guarded(&web, &user, &headers, &form, Role::Viewer).await {
        return r;
    }
    // anyone may end their own sessions; admins anyone's
    if !user.is_admin() {
        let mine = web
            .api
            .read(move |s| s.list_sessions(now()))
            .await
            .map(|v| v.iter().any(|s| s.id == id && s.user_id == user.0.user_id))
            .unwrap_or(false);
        if !mine {
            return crate::bad("that is not one of your sessions");
        }
    }
    let actor = user.actor();
    let r = web
        .api
        .read(move |s| s.revoke_session(id, &actor, now()))
        .await;
    crate::redirect_or_error(r, "/ui/settings")
}

pub(crate) async fn add_user(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = guarded(&web, &user, &headers, &form, Role::Admin).await {
        return r;
    }
    let name = form.get("name").unwrap_or("").trim().to_string();
    let Some(role) = form.get("role").and_then(Role::parse) else {
        return crate::bad("role: viewer, analyst or admin");
    };
    let password = crate::random_password();
    let p2 = password.clone();
    let hash = match tokio::task::spawn_blocking(move || crate::hash_password(&p2)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            return crate::error_response(dnsight_api::AppError::internal(
                "hashing the password",
                &e,
            ))
        }
        Err(e) => {
            return crate::error_response(dnsight_api::AppError::internal(
                "hashing the password",
                &e,
            ))
        }
    };
    let actor = user.actor();
    let n2 = name.clone();
    match web
        .api
        .read(move |s| s.upsert_user(&n2, role, &hash, false, &actor, now()))
        .await
    {
        Ok(_) => render(&web, &user, Some((format!("Password of {name}"), password))).await,
        Err(e) => crate::error_response(e),
    }
}

pub(crate) async fn remove_user(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = guarded(&web, &user, &headers, &form, Role::Admin).await {
        return r;
    }
    let actor = user.actor();
    let r = web
        .api
        .read(move |s| s.remove_user(&name, &actor, now()))
        .await;
    crate::redirect_or_error(r, "/ui/settings")
}

pub(crate) async fn create_token(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = guarded(&web, &user, &headers, &form, Role::Admin).await {
        return r;
    }
    let name = form.get("name").unwrap_or("").trim().to_string();
    if let Err(e) = dnsight_api::check_token_name(&name) {
        return crate::bad(e);
    }
    let Some(role) = form.get("role").and_then(Role::parse) else {
        return crate::bad("role: viewer, analyst or admin");
    };
    let now = now();
    let expires = match form.get("expires") {
        None => None,
        Some(e) => match dnsight_api::parse_time(e)
            .or_else(|_| dnsight_api::parse_duration(e).map(|d| now + d))
        {
            Ok(t) => Some(t),
            Err(e) => return crate::bad(format!("expires: {e}")),
        },
    };
    let actor = user.actor();
    let n2 = name.clone();
    match web
        .api
        .read(move |s| s.create_token(&n2, role, expires, &actor, now))
        .await
    {
        Ok((_, secret)) => render(&web, &user, Some((format!("Token {name}"), secret))).await,
        Err(e) => crate::error_response(e),
    }
}

pub(crate) async fn revoke_token(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = guarded(&web, &user, &headers, &form, Role::Admin).await {
        return r;
    }
    let actor = user.actor();
    let r = web
        .api
        .read(move |s| s.revoke_token(&id.to_string(), &actor, now()))
        .await;
    crate::redirect_or_error(r, "/ui/settings")
}
