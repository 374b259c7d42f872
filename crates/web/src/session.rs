//! Sign-in, sessions, cookies, CSRF and the same-origin check.

use crate::layout::{self, Page};
use crate::Web;
use axum::extract::{ConnectInfo, Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dnsight_triage::{Role, SessionInfo};
use maud::html;
use serde::Deserialize;
use std::net::SocketAddr;

/// Sessions last a week after their last use.
pub const SESSION_TTL: i64 = 7 * 86_400;
const LOGIN_COOKIE: &str = "dnsight_login";

pub(crate) fn now() -> i64 {
    dnsight_pipeline::now_secs()
}

fn cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-dnsight_session"
    } else {
        "dnsight_session"
    }
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn set_cookie(name: &str, value: &str, max_age: i64, path: &str, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("x=; Max-Age=0"))
}

/// The signed-in user of this request. Without a valid session, the page answers with a
/// redirect to the sign-in page (and the path to come back to).
pub(crate) struct User(pub SessionInfo);

impl User {
    pub fn can_act(&self) -> bool {
        self.0.role >= Role::Analyst
    }
    pub fn is_admin(&self) -> bool {
        self.0.role >= Role::Admin
    }
    /// The actor recorded in the audit log: `user:NAME` (tokens are recorded by name).
    pub fn actor(&self) -> String {
        format!("user:{}", self.0.user)
    }
    /// 403 unless the role is at least `need`.
    pub fn require(&self, need: Role) -> Result<(), Response> {
        if self.0.role >= need {
            return Ok(());
        }
        tracing::info!(user = %self.0.user, role = self.0.role.as_str(), "dashboard action refused: role too low");
        Err(layout::error_page(
            StatusCode::FORBIDDEN,
            &format!(
                "Your role is {}; this needs {} or higher. Ask an admin (dnsight user add NAME --role {} replaces a user's role).",
                self.0.role.as_str(),
                need.as_str(),
                need.as_str()
            ),
        ))
    }
}

impl FromRequestParts<Web> for User {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, st: &Web) -> Result<User, Response> {
        let name = cookie_name(st.api.tls());
        let secret = cookie(&parts.headers, name)
            .filter(|s| s.len() <= 128)
            .map(str::to_string);
        if let Some(secret) = secret {
            let now = now();
            match st
                .api
                .read(move |s| s.verify_session(&secret, SESSION_TTL, now))
                .await
            {
                Ok(Some(s)) => return Ok(User(s)),
                Ok(None) => {}
                Err(e) => return Err(crate::error_response(e)),
            }
        }
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map(|o| o.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let next = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/ui/".into());
        let q = serde_urlencoded_pair("next", &next);
        Err(Redirect::to(&format!("/ui/login?{q}")).into_response())
    }
}

fn serde_urlencoded_pair(k: &str, v: &str) -> String {
    let mut out = format!("{k}=");
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A form as name/value pairs (repeated names allowed: the inbox's checkboxes).
pub(crate) struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The same-origin check of a POST: `Sec-Fetch-Site` (when sent) must be `same-origin` (or
/// `none`: typed by the user), and `Origin` (when sent) must be this server's origin.
pub(crate) fn same_origin(headers: &HeaderMap, tls: bool) -> Result<(), Response> {
    let refuse = |why: &str| {
        tracing::warn!(
            reason = why,
            "dashboard POST refused: not from the dashboard's origin"
        );
        Err(layout::error_page(
            StatusCode::FORBIDDEN,
            "This request did not come from the dashboard's own pages (cross-origin requests are refused). Reload the page and try again.",
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return refuse("sec-fetch-site");
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let scheme = if tls { "https" } else { "http" };
        if origin.to_str().ok() != Some(&format!("{scheme}://{host}")) {
            return refuse("origin");
        }
    }
    Ok(())
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The checks of every state-changing form: same origin and the session's CSRF token.
pub(crate) fn check_form(
    headers: &HeaderMap,
    web: &Web,
    user: &User,
    form: &FormData,
) -> Result<(), Response> {
    same_origin(headers, web.api.tls())?;
    match form.get("csrf") {
        Some(t) if ct_eq(t, &user.0.csrf) => Ok(()),
        _ => {
            tracing::warn!(user = %user.0.user, "dashboard POST refused: missing or wrong CSRF token");
            Err(layout::error_page(
                StatusCode::FORBIDDEN,
                "The form's security token is missing or out of date (a form from another session?). Reload the page and try again.",
            ))
        }
    }
}

/// A path to return to after signing in: only the dashboard's own pages.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/ui/".into(),
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

fn random_hex() -> String {
    let mut raw = [0u8; 16];
    let _ = getrandom::fill(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn login_form(web: &Web, next: &str, error: Option<&str>, no_users: bool) -> Response {
    let nonce = random_hex();
    let page = Page(layout::bare(
        "Sign in",
        html! {
            main.login {
                h1 { "dnsight" }
                @if no_users {
                    p.notice role="status" {
                        "No user exists yet. Create one on the server: "
                        code { "dnsight user add NAME --role admin --state DIR" }
                        " (it prints a password), then sign in here."
                    }
                }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form method="post" action="/ui/login" {
                    input type="hidden" name="nonce" value=(nonce);
                    input type="hidden" name="next" value=(next);
                    label { "User" input name="user" autocomplete="username" required autofocus; }
                    label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
            }
        },
    ));
    let mut r = page.into_response();
    if error.is_some() {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
    }
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &nonce, 3600, "/ui/login", web.api.tls()),
    );
    r
}

pub(crate) async fn login_page(State(web): State<Web>, Query(q): Query<LoginQuery>) -> Response {
    let no_users = web
        .api
        .read(|s| s.list_users())
        .await
        .map(|u| u.is_empty())
        .unwrap_or(false);
    login_form(&web, &safe_next(q.next.as_deref()), None, no_users)
}

pub(crate) async fn login(
    State(web): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = same_origin(&headers, web.api.tls()) {
        return r;
    }
    let next = safe_next(form.get("next"));
    let ip = dnsight_engine::net::canonical(peer.ip());
    if let Some(wait) = web.inner.limiter.locked(ip) {
        tracing::warn!(client = %ip, "dashboard sign-in refused: too many failed attempts");
        let mut r = layout::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed sign-ins from this address; wait {wait} s."),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let nonce_ok = match (cookie(&headers, LOGIN_COOKIE), form.get("nonce")) {
        (Some(c), Some(f)) => ct_eq(c, f),
        _ => false,
    };
    if !nonce_ok {
        return login_form(
            &web,
            &next,
            Some("The sign-in form expired; please try again."),
            false,
        );
    }
    let user = form.get("user").unwrap_or("").trim().to_string();
    let password = form.get("password").unwrap_or("").to_string();
    let name = user.clone();
    let found = match web.api.read(move |s| s.user_password(&name)).await {
        Ok(f) => f,
        Err(e) => return crate::error_response(e),
    };
    let ok = tokio::task::spawn_blocking(move || match &found {
        Some((u, hash)) => crate::verify_password(&password, hash).then(|| u.clone()),
        None => {
            let _ = crate::verify_password(&password, crate::password::dummy_hash());
            None
        }
    })
    .await
    .ok()
    .flatten();
    let Some(u) = ok else {
        let n = web.inner.limiter.fail(ip);
        tracing::warn!(client = %ip, failures = n, "dashboard sign-in failed");
        return login_form(&web, &next, Some("Wrong user name or password."), false);
    };
    let client = ip.to_string();
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let now = now();
    let uid = u.id;
    let created = web
        .api
        .read(move |s| s.create_session(uid, SESSION_TTL, Some(&client), agent.as_deref(), now))
        .await;
    let (_, secret) = match created {
        Ok(x) => x,
        Err(e) => return crate::error_response(e),
    };
    tracing::info!(user = %u.name, client = %ip, "dashboard sign-in");
    let tls = web.api.tls();
    let mut r = Redirect::to(&next).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(cookie_name(tls), &secret, SESSION_TTL, "/", tls),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", 0, "/ui/login", tls),
    );
    r
}

pub(crate) async fn logout(
    State(web): State<Web>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData(form);
    if let Err(r) = check_form(&headers, &web, &user, &form) {
        return r;
    }
    let (id, actor) = (user.0.id, user.actor());
    let now = now();
    if let Err(e) = web
        .api
        .read(move |s| s.revoke_session(id, &actor, now))
        .await
    {
        return crate::error_response(e);
    }
    let tls = web.api.tls();
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(cookie_name(tls), "", 0, "/", tls),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths() {
        assert_eq!(safe_next(Some("/ui/alerts?x=1")), "/ui/alerts?x=1");
        for bad in [
            "//evil.example/ui/",
            "https://evil.example/",
            "/api/v1/x",
            "/ui\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn cookies_and_origin() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; dnsight_session=dss_x ;b=2"),
        );
        assert_eq!(cookie(&h, "dnsight_session"), Some("dss_x"));
        assert_eq!(cookie(&h, "c"), None);
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8053"));
        assert!(same_origin(&h, false).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8053"),
        );
        assert!(same_origin(&h, false).is_ok());
        assert!(same_origin(&h, true).is_err());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(same_origin(&h, false).is_err());
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin(&h, false).is_err());
        let v = set_cookie("n", "v", 60, "/", true);
        let v = v.to_str().unwrap();
        assert!(
            v.contains("HttpOnly") && v.contains("SameSite=Strict") && v.contains("Secure"),
            "{v}"
        );
    }
}
