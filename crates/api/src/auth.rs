//! Bearer tokens: checked against the triage store, roles, and a per-address limit on failed
//! attempts. Failures are logged with the client address and the reason, never the token.

use crate::error::AppError;
use crate::handlers::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use dnsight_triage::{Role, TokenInfo};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts allowed per address per window before 429.
pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most (memory bound under a spray from many addresses).
const MAX_TRACKED: usize = 65_536;
/// Longer secrets are refused without hashing.
const MAX_TOKEN_LEN: usize = 256;

/// Failed attempts per client address in fixed one-minute windows.
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limiter {
    /// Seconds to wait when the address is locked out.
    pub fn locked(&self, ip: IpAddr) -> Option<u64> {
        let m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let &(start, n) = m.get(&ip)?;
        let age = start.elapsed();
        (n >= MAX_FAILURES && age < WINDOW).then(|| (WINDOW - age).as_secs().max(1))
    }
    /// Records a failure; returns the failures in the current window.
    pub fn fail(&self, ip: IpAddr) -> u32 {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_TRACKED {
            m.retain(|_, (start, _)| start.elapsed() < WINDOW);
            if m.len() >= MAX_TRACKED {
                m.clear();
            }
        }
        let e = m.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= WINDOW {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
        e.1
    }
}

pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// The header Amazon Data Firehose puts its endpoint access key in (taken as a token on
/// [`FIREHOSE_PATH`] only: other routes want `Authorization`).
pub const FIREHOSE_ACCESS_KEY: &str = "x-amz-firehose-access-key";
/// The Firehose delivery route.
pub const FIREHOSE_PATH: &str = "/api/v1/events/firehose";

fn create_hint(role: Role) -> String {
    format!(
        "create one with `dnsight token create --role {} --name NAME --state DIR`",
        role.as_str()
    )
}

/// The token of this request, when it has one and it is valid; `None` without an
/// Authorization header.
pub async fn check(
    state: &AppState,
    parts: &Parts,
    need: Role,
) -> Result<Option<TokenInfo>, AppError> {
    let ip = client_ip(parts);
    let path = parts.uri.path().to_string();
    if let Some(wait) = state.inner.limiter.locked(ip) {
        tracing::warn!(client = %ip, path = %path, "API request refused: too many failed token attempts");
        let mut e = AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed token attempts from this address; wait {wait} s and check the token"),
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    // Amazon Data Firehose's HTTP endpoint delivery sends its configured access key in a header
    // of its own (it cannot send `Authorization`): on its route, that key is a dnsight token too
    let secret = if let Some(h) = parts.headers.get(header::AUTHORIZATION) {
        h.to_str().ok().and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    } else if let Some(h) = parts
        .headers
        .get(FIREHOSE_ACCESS_KEY)
        .filter(|_| path == FIREHOSE_PATH)
    {
        h.to_str().ok().map(str::trim)
    } else {
        return Ok(None);
    };
    let secret = secret
        .filter(|s| !s.is_empty() && s.len() <= MAX_TOKEN_LEN)
        .map(str::to_string);
    let reason = match secret {
        None => "malformed Authorization (or X-Amz-Firehose-Access-Key) header",
        Some(secret) => {
            let now = dnsight_pipeline::now_secs();
            match state.read(move |s| s.verify_token(&secret, now)).await? {
                Some(t) => return Ok(Some(t)),
                None => "unknown, expired or revoked token",
            }
        }
    };
    let n = state.inner.limiter.fail(ip);
    tracing::warn!(client = %ip, path = %path, reason, failures = n, "API authentication failed");
    let mut e = AppError::new(
        StatusCode::UNAUTHORIZED,
        format!(
            "{reason}: send `Authorization: Bearer TOKEN` with a valid token ({})",
            create_hint(need)
        ),
    );
    e.www_authenticate = true;
    Err(e)
}

/// The token, which must exist and have at least `need`.
pub async fn require(state: &AppState, parts: &Parts, need: Role) -> Result<TokenInfo, AppError> {
    let Some(t) = check(state, parts, need).await? else {
        let mut e = AppError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "this route needs a token: send `Authorization: Bearer TOKEN` ({})",
                create_hint(need)
            ),
        );
        e.www_authenticate = true;
        return Err(e);
    };
    if t.role < need {
        tracing::info!(client = %client_ip(parts), path = %parts.uri.path(), token = %t.name, role = t.role.as_str(), "API request refused: role too low");
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} has role {}, this needs {} or higher; ask an admin for such a token ({})",
                t.name,
                t.role.as_str(),
                need.as_str(),
                create_hint(need)
            ),
        ));
    }
    Ok(t)
}

macro_rules! role_extractor {
    ($name:ident, $role:expr, $doc:literal) => {
        #[doc = $doc]
        #[allow(dead_code)]
        pub struct $name(pub TokenInfo);

        impl FromRequestParts<AppState> for $name {
            type Rejection = AppError;
            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, AppError> {
                require(state, parts, $role).await.map($name)
            }
        }
    };
}

role_extractor!(
    Viewer,
    Role::Viewer,
    "A token with at least the viewer role."
);
role_extractor!(
    Analyst,
    Role::Analyst,
    "A token with at least the analyst role."
);
role_extractor!(Admin, Role::Admin, "An admin token.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_locks_after_max_failures() {
        let l = Limiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 1..MAX_FAILURES {
            assert_eq!(l.fail(ip), i);
            assert_eq!(l.locked(ip), None);
        }
        l.fail(ip);
        assert!(l.locked(ip).is_some_and(|s| (1..=60).contains(&s)));
        assert_eq!(l.locked(other), None);
    }
}
