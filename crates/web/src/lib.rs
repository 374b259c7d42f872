//! dnsight-web: the dashboard, served by the API server on its own listener under `/ui`.
//!
//! Server-rendered HTML (maud: every value is escaped by the template engine; there is no raw
//! HTML anywhere, and DNS names — attacker bytes — are just values). Pages read and act through
//! the API's [`AppState`]: the same read connection of the triage store and the same pipeline
//! [`Handle`](dnsight_pipeline::Handle), and actions are the API's own ([`dnsight_api::to_action`]
//! on an [`dnsight_api::ActionBody`] built from the form), so the dashboard cannot drift from
//! the API. Evidence pictures are SVG written on the server (`svg`), deterministic.
//!
//! Sign-in is with local users (`dnsight user add`, argon2id hashes) and a session cookie
//! (HttpOnly, SameSite=Strict, Secure and `__Host-` under TLS); every form carries the
//! session's CSRF token and every POST must come from the dashboard's own origin
//! (`Origin` / `Sec-Fetch-Site`). Failed sign-ins are rate-limited per address.
//!
//! One small hand-written script (`assets/app.js`, served as a file: the Content-Security-Policy
//! allows no inline script) adds keyboard triage and live updates (server-sent events); every
//! page works without it.
//!
//! Absences: no inline script or style, no HTML built by string concatenation, no action that
//! bypasses the pipeline, no page that needs JavaScript to read.

// The checks return the page to answer with (an axum `Response`) as their error, as handlers do.
#![allow(clippy::result_large_err)]

use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
pub use dnsight_api::AppState;
use std::sync::Arc;

mod activity;
mod assets;
mod fmt;
mod layout;
mod pages;
mod password;
mod session;
pub mod svg;
mod table;

pub use password::{hash_password, random_password, verify_password};
pub use session::SESSION_TTL;

/// What the dashboard's handlers share: the API's state and the dashboard's own.
#[derive(Clone)]
pub struct Web {
    pub(crate) api: AppState,
    pub(crate) inner: Arc<WebInner>,
}

pub(crate) struct WebInner {
    /// Failed sign-ins per address (separate from the API's token limiter).
    pub(crate) limiter: dnsight_api::Limiter,
    /// The last (time, events) sample, for the overview's events/s.
    pub(crate) rate: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
    /// The charts' query counts, refreshed in the background.
    pub(crate) activity: Arc<activity::Activity>,
    /// The notification targets of the config (Settings lists them; admins send a test).
    pub(crate) targets: Vec<dnsight_notify::Target>,
    /// The last test sent to each target from Settings: (target, when, outcome).
    pub(crate) tests: std::sync::Mutex<Vec<TestSent>>,
}

/// A test notification sent from Settings: (target, Unix seconds, outcome).
pub(crate) type TestSent = (String, i64, Result<(), String>);

/// The dashboard as a [`dnsight_api::Mount`] for [`dnsight_api::start_mounted`]; `state_dir`
/// (the one the API's store is in) gives the charts' background counting its own connection
/// to the triage file (None: it shares the API's).
pub fn mount(state_dir: Option<std::path::PathBuf>) -> dnsight_api::Mount {
    mount_with(state_dir, Vec::new())
}

/// [`mount`], with the notification targets (`[[notify]]`) Settings shows.
pub fn mount_with(
    state_dir: Option<std::path::PathBuf>,
    targets: Vec<dnsight_notify::Target>,
) -> dnsight_api::Mount {
    Box::new(move |api| routes_with(api, state_dir, targets))
}

/// The dashboard's routes over the API's state: `/` redirects to `/ui/`.
pub fn routes(api: AppState, state_dir: Option<std::path::PathBuf>) -> Router {
    routes_with(api, state_dir, Vec::new())
}

fn routes_with(
    api: AppState,
    state_dir: Option<std::path::PathBuf>,
    targets: Vec<dnsight_notify::Target>,
) -> Router {
    let web = Web {
        api,
        inner: Arc::new(WebInner {
            limiter: dnsight_api::Limiter::default(),
            rate: std::sync::Mutex::new(None),
            activity: Arc::new(activity::Activity::new(state_dir)),
            targets,
            tests: std::sync::Mutex::new(Vec::new()),
        }),
    };
    let ui = Router::new()
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/alerts", get(pages::alerts::inbox))
        .route("/alerts/bulk", post(pages::alerts::bulk))
        .route("/alerts/{id}", get(pages::alert::page))
        .route("/alerts/{id}/action", post(pages::alert::action))
        .route("/devices", get(pages::devices::list))
        .route("/devices/{ip}", get(pages::devices::page))
        .route("/destinations", get(pages::destinations::list))
        .route("/destinations/{name}", get(pages::destinations::page))
        .route("/queries", get(pages::queries::page))
        .route("/policy", get(pages::policy::page))
        .route("/policy/blocks", post(pages::policy::add_block))
        .route(
            "/policy/blocks/{id}/remove",
            post(pages::policy::remove_block),
        )
        .route("/settings", get(pages::settings::page))
        .route(
            "/settings/sessions/{id}/revoke",
            post(pages::settings::revoke_session),
        )
        .route("/settings/users", post(pages::settings::add_user))
        .route(
            "/settings/users/{name}/remove",
            post(pages::settings::remove_user),
        )
        .route("/settings/tokens", post(pages::settings::create_token))
        .route(
            "/settings/notify/{name}/test",
            post(pages::settings::test_target),
        )
        .route(
            "/settings/tokens/{id}/revoke",
            post(pages::settings::revoke_token),
        )
        .route("/events", get(pages::live::events))
        .route("/assets/{file}", get(assets::serve))
        .fallback(|| async { layout::not_found("There is no such page.") });
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview::page))
        .nest("/ui", ui)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(web)
}

/// The Content-Security-Policy of every page: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// CSP, no framing, no sniffing, referrers only to itself (`no-referrer` would make browsers
/// send `Origin: null` on its own forms), no caching of pages; the render time as
/// `Server-Timing` (read by the benchmark).
async fn security_headers(req: Request<axum::body::Body>, next: Next) -> Response {
    let t0 = std::time::Instant::now();
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "render;dur={:.2}",
        t0.elapsed().as_secs_f64() * 1000.0
    )) {
        h.insert("server-timing", v);
    }
    r
}

/// An error page (or JSON for the script's requests) from the API's error type.
pub(crate) fn error_response(e: dnsight_api::AppError) -> Response {
    layout::error_page(e.status, &e.msg)
}

/// After a form's change: back to `to` (post/redirect/get), or the error page.
pub(crate) fn redirect_or_error<T>(r: Result<T, dnsight_api::AppError>, to: &str) -> Response {
    match r {
        Ok(_) => axum::response::Redirect::to(to).into_response(),
        Err(e) => error_response(e),
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> Response {
    layout::error_page(StatusCode::BAD_REQUEST, &msg.into())
}

impl IntoResponse for layout::Page {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.0.into_string(),
        )
            .into_response()
    }
}
