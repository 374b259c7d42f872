//! `GET /api/v1/queries`: the query log, filtered and paged (JSON, or CSV for export).

use crate::auth::Viewer;
use crate::error::{ApiResult, AppError, ErrorBody};
use crate::extract::Q;
use crate::handlers::{now, AppState};
use crate::params::{parse_since, parse_time};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dnsight_triage::querylog::{csv_row, CSV_HEADER, MAX_PAGE};
use dnsight_triage::{QueryFilter, QueryPage};
use serde::Deserialize;
use utoipa::IntoParams;

/// Query-log search parameters (all optional).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueriesQuery {
    /// Client address (or its pseudonym `anon-...` when addresses are pseudonymised).
    pub device: Option<String>,
    /// Exact query name.
    pub name: Option<String>,
    /// The name and everything under it (`example.com` matches `www.example.com`).
    pub suffix: Option<String>,
    /// Record type (`A`, `AAAA`, `TXT`, ... or a number).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub qtype: Option<String>,
    /// Response code (`NXDOMAIN`, `SERVFAIL`, ... or a number).
    pub rcode: Option<String>,
    /// `true`: only queries the resolver blocked; `false`: only the others.
    pub blocked: Option<String>,
    /// At or after: Unix seconds, RFC 3339, a date, or a duration ago (`1h`).
    pub since: Option<String>,
    /// Before: Unix seconds, RFC 3339 or a date.
    pub until: Option<String>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=10000 (default 100).
    pub limit: Option<String>,
    /// `json` (default) or `csv` (also chosen by `Accept: text/csv`).
    pub format: Option<String>,
}

impl QueriesQuery {
    pub fn to_filter(&self, now: i64) -> Result<QueryFilter, String> {
        let mut f = QueryFilter {
            device: self.device.clone(),
            name: self.name.clone(),
            suffix: self.suffix.clone(),
            cursor: self.cursor.clone(),
            ..Default::default()
        };
        if let Some(t) = &self.qtype {
            let t = t.trim();
            f.qtype = Some(
                dnsight_model::rtype_from_str(&t.to_ascii_uppercase())
                    .or_else(|| t.parse().ok())
                    .ok_or_else(|| {
                        format!("type: {t:?} is not a record type (A, AAAA, TXT, ... or a number)")
                    })?,
            );
        }
        if let Some(r) = &self.rcode {
            let r = r.trim();
            f.rcode = Some(
                dnsight_model::rcode_from_str(&r.to_ascii_uppercase())
                    .or_else(|| r.parse().ok())
                    .ok_or_else(|| format!("rcode: {r:?} is not a response code (NOERROR, NXDOMAIN, SERVFAIL, ... or a number)"))?,
            );
        }
        if let Some(b) = &self.blocked {
            f.blocked = Some(match b.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => return Err(format!("blocked: {other:?}: use true or false")),
            });
        }
        if let Some(v) = &self.since {
            f.since_us = Some(
                parse_since(v, now)
                    .map_err(|e| format!("since: {e}"))?
                    .saturating_mul(1_000_000),
            );
        }
        if let Some(v) = &self.until {
            f.until_us = Some(
                parse_time(v)
                    .map_err(|e| format!("until: {e}"))?
                    .saturating_mul(1_000_000),
            );
        }
        if let Some(v) = &self.limit {
            f.limit = Some(
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        format!("limit: {v:?} must be 1..={MAX_PAGE}; page with the cursor")
                    })?,
            );
        }
        Ok(f)
    }
}

fn wants_csv(q: &QueriesQuery, headers: &HeaderMap) -> Result<bool, AppError> {
    match q.format.as_deref().map(str::trim) {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(AppError::bad_request(format!(
            "format: {:?}: use json or csv",
            other.escape_debug().take(40).collect::<String>()
        ))),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"))),
    }
}

/// Percent-encodes a query-string value (names are printable ASCII; anything but unreserved
/// characters is encoded).
pub fn url_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// The query log, newest first: every transaction the resolver answered and the passive
/// sources saw (time, client, name, type, rcode, answers, what blocked it, upstream latency,
/// source). Keyset pages: pass `next` as `cursor` for the next page. `format=csv` (or
/// `Accept: text/csv`) gives the page as CSV (RFC 4180 quoting; fields that a spreadsheet
/// would run as a formula start with `'`), with the next cursor in `X-Next-Cursor`.
#[utoipa::path(get, path = "/api/v1/queries", tag = "queries", params(QueriesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{rows: [{id, ts_us, time, client, name, type, rcode, answers, action, blocked, upstream_us, source, transport, count}], next}`, or CSV (a row stands for `count` identical transactions of its client within one second)", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_queries(
    _t: Viewer,
    State(st): State<AppState>,
    headers: HeaderMap,
    Q(q): Q<QueriesQuery>,
) -> ApiResult<Response> {
    let csv = wants_csv(&q, &headers)?;
    let f = q.to_filter(now()).map_err(AppError::bad_request)?;
    let page: QueryPage = st.read(move |s| s.search_queries(&f)).await?;
    if !csv {
        return Ok(Json(page).into_response());
    }
    let mut body = String::with_capacity(CSV_HEADER.len() + page.rows.len() * 96);
    body.push_str(CSV_HEADER);
    for r in &page.rows {
        body.push_str(&csv_row(r));
    }
    let mut resp = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"dnsight-queries.csv\""),
    );
    if let Some(n) = page
        .next
        .as_deref()
        .and_then(|n| HeaderValue::from_str(n).ok())
    {
        resp.headers_mut().insert("x-next-cursor", n);
    }
    Ok(resp)
}
