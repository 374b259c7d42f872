//! The routes. Each handler carries its OpenAPI description (`utoipa::path`); the router is
//! built from the same list, so the document cannot miss a route.

use crate::auth::{self, Admin, Analyst, Limiter, Viewer};
use crate::error::{ApiResult, AppError, ErrorBody};
use crate::extract::{JsonBody, P, Q};
use crate::params::{AlertQuery, FilterBody, TimeArg};
use crate::ApiConfig;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dnsight_engine::Scope;
use dnsight_pipeline::{
    Action, ActionRequest, ActionResult, BlockTarget, Handle, PipelineError, PipelineStats,
    ScopeSel, Target,
};
use dnsight_triage::{
    AuditEntry, BlockRule, NewBlock, Reason, Role, Secs, StoredAlert, TokenInfo, TriageStore,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, OnceLock};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type TResult<T> = dnsight_triage::Result<T>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    handle: Handle,
    store: Mutex<Box<dyn TriageStore>>,
    pub(crate) cfg: ApiConfig,
    pub(crate) limiter: Limiter,
    pub(crate) openapi: OnceLock<String>,
}

impl AppState {
    pub fn new(cfg: ApiConfig, handle: Handle, store: Box<dyn TriageStore>) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                handle,
                store: Mutex::new(store),
                cfg,
                limiter: Limiter::default(),
                openapi: OnceLock::new(),
            }),
        }
    }

    /// Served over TLS (cookies get `Secure`).
    pub fn tls(&self) -> bool {
        self.inner.cfg.tls.is_some()
    }

    /// Runs `f` on the API's store connection, off the async threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn TriageStore) -> TResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let st = self.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut g = st.inner.store.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut **g)
        })
        .await
        .map_err(|e| AppError::internal("a store request", &e))?;
        r.map_err(AppError::from)
    }

    /// Runs `f` with the pipeline's handle (it blocks until the actor answers).
    pub async fn pipe<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Handle) -> Result<T, PipelineError> + Send + 'static,
    ) -> ApiResult<T> {
        let st = self.clone();
        let r = tokio::task::spawn_blocking(move || f(&st.inner.handle))
            .await
            .map_err(|e| AppError::internal("a pipeline request", &e))?;
        r.map_err(AppError::from)
    }
}

pub(crate) fn now() -> Secs {
    dnsight_pipeline::now_secs()
}

// ---------------------------------------------------------------- the document

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: `dnsight token create --role viewer|analyst|admin --name NAME --state DIR`. \
                         Viewer reads; analyst acts on alerts and blocks; admin manages tokens and intel.",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "firehose_access_key",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "X-Amz-Firehose-Access-Key",
                    "An analyst token, set as the Firehose stream's HTTP endpoint access key.",
                ),
            )),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dnsight API",
        description = "Alerts and their triage, devices, destinations, blocks, tokens. Errors are `{\"error\": \"...\"}`. Times are Unix seconds unless noted.",
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "alerts"), (name = "devices"), (name = "blocks"), (name = "admin"), (name = "meta"), (name = "ingest"), (name = "queries")
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi_doc))
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(alert_action))
        .routes(routes!(bulk_action))
        .routes(routes!(list_devices))
        .routes(routes!(get_device))
        .routes(routes!(get_destination))
        .routes(routes!(list_blocks, add_block))
        .routes(routes!(remove_block))
        .routes(routes!(stats))
        .routes(routes!(kinds))
        .routes(routes!(audit))
        .routes(routes!(notifications))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(reload_intel))
        .routes(routes!(rpz))
        .routes(routes!(metrics))
        .routes(routes!(crate::intake::post_events))
        .routes(routes!(crate::intake::post_firehose))
        .routes(routes!(crate::queries::list_queries))
}

/// The OpenAPI document (3.1).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (r, doc) = api_router().split_for_parts();
    let _ = state
        .inner
        .openapi
        .set(doc.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    let r = r
        .fallback(|| async {
            AppError::not_found("no such route; the routes are listed in /api/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method; see /api/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(crate::MAX_BODY))
        .layer(axum::middleware::map_request(refuse_declared_oversize))
        .layer(axum::middleware::map_response(common_headers))
        .with_state(state);
    (r, doc)
}

/// A body whose `Content-Length` already says it is over its route's limit ([`crate::MAX_BODY`],
/// [`crate::MAX_INTAKE_BODY`] for the event intake) is refused before
/// a byte of it is read: the client gets its 413 at once instead of after uploading the lot.
/// (Bodies without a length, or that lie about it, still stop at the limit while being read.)
async fn refuse_declared_oversize(r: Request) -> Result<Request, AppError> {
    let declared = r
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = crate::body_limit(r.uri().path());
    match declared {
        Some(n) if n > limit as u64 => Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {n} bytes, larger than the {limit} bytes a request to this route may carry; send smaller batches (bulk actions take a filter instead of ids)"
            ),
        )),
        _ => Ok(r),
    }
}

async fn common_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
async fn openapi_doc(State(st): State<AppState>) -> Response {
    let body = st
        .inner
        .openapi
        .get()
        .cloned()
        .unwrap_or_else(|| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

// ---------------------------------------------------------------- health

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the API answers.
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness (no token).
#[utoipa::path(get, path = "/api/v1/health", tag = "meta",
    responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

// ---------------------------------------------------------------- alerts

#[derive(Serialize, ToSchema)]
pub struct AlertList {
    /// Alerts matching the filter in all (not only this page).
    pub total: u64,
    /// This page, in the requested order.
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<StoredAlert>,
}

/// Lists alerts.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_alerts(
    _t: Viewer,
    State(st): State<AppState>,
    Q(q): Q<AlertQuery>,
) -> ApiResult<Json<AlertList>> {
    let f = q.to_filter(now()).map_err(AppError::bad_request)?;
    let (alerts, total) = st.read(move |s| s.list_alerts(&f)).await?;
    Ok(Json(AlertList { total, alerts }))
}

#[derive(Serialize)]
struct AlertDetail {
    #[serde(flatten)]
    alert: StoredAlert,
    /// Every audit line of the alert, oldest first.
    history: Vec<AuditEntry>,
}

/// One alert with its evidence and its history (audit lines, oldest first).
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = String, Path, description = "Alert id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The alert (fields as in the list) plus `history`", body = Object),
        (status = 404, body = ErrorBody)))]
async fn get_alert(
    _t: Viewer,
    State(st): State<AppState>,
    P(id): P<String>,
) -> ApiResult<Response> {
    let id2 = id.clone();
    let found = st
        .read(move |s| {
            let Some(a) = s.get_alert(&id2)? else {
                return Ok(None);
            };
            Ok(Some((a, s.history(&id2)?)))
        })
        .await?;
    match found {
        Some((alert, history)) => Ok(Json(AlertDetail { alert, history }).into_response()),
        None => Err(no_alert(&id)),
    }
}

fn no_alert(id: &str) -> AppError {
    AppError::not_found(format!(
        "no alert with id {id:?}; list them with GET /api/v1/alerts"
    ))
}

/// An action on alerts. For one alert (`POST /api/v1/alerts/{id}/actions`) give the action and
/// its fields; for many (`POST /api/v1/alerts/actions`) add `ids` or `filter`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// ack, flag, block, unblock, resolve, note, reopen.
    pub action: String,
    /// ack and block: device, group or all (relative to each alert).
    pub scope: Option<String>,
    /// ack: until when (Unix seconds, RFC 3339, or a duration from now such as `7d`); none:
    /// for good.
    #[schema(value_type = Option<Object>)]
    pub until: Option<TimeArg>,
    /// block: `domain` (the destination and everything under it, default) or `exact` (the
    /// sample query's name).
    pub target: Option<String>,
    /// block: for how long (`1h` or seconds); none: until unblocked.
    #[serde(rename = "for", alias = "duration")]
    #[schema(value_type = Option<Object>)]
    pub duration: Option<TimeArg>,
    /// resolve: true_positive, benign_positive, false_positive or duplicate.
    pub reason: Option<String>,
    /// Free text kept in the history (required for `note`).
    pub note: Option<String>,
    /// Bulk: these alert ids.
    pub ids: Option<Vec<String>>,
    /// Bulk: every alert matching this filter (no cap).
    pub filter: Option<FilterBody>,
    /// Only count the alerts it would act on (`matched`).
    #[serde(default)]
    pub dry_run: bool,
}

fn scope_sel(b: &ActionBody) -> ApiResult<ScopeSel> {
    match b.scope.as_deref() {
        Some("device") => Ok(ScopeSel::Device),
        Some("group") => Ok(ScopeSel::Group),
        Some("all") => Ok(ScopeSel::All),
        Some(s) => Err(AppError::bad_request(format!(
            "scope: unknown value {s:?}; one of device, group, all"
        ))),
        None => Err(AppError::bad_request(format!(
            "{} needs a scope: \"device\", \"group\" or \"all\"",
            b.action
        ))),
    }
}

/// The pipeline action an [`ActionBody`] asks for (shared with the dashboard's forms).
pub fn to_action(b: &ActionBody) -> ApiResult<Action> {
    let only = |allowed: &[&str]| -> ApiResult<()> {
        let given = [
            ("scope", b.scope.is_some()),
            ("until", b.until.is_some()),
            ("target", b.target.is_some()),
            ("for", b.duration.is_some()),
            ("reason", b.reason.is_some()),
        ];
        for (name, set) in given {
            if set && !allowed.contains(&name) {
                return Err(AppError::bad_request(format!(
                    "{name} does not apply to {}; leave it out",
                    b.action
                )));
            }
        }
        Ok(())
    };
    let now = now();
    Ok(match b.action.as_str() {
        "ack" | "acknowledge" => {
            only(&["scope", "until"])?;
            let until = b
                .until
                .as_ref()
                .map(|u| u.until(now))
                .transpose()
                .map_err(|e| AppError::bad_request(format!("until: {e}")))?;
            Action::Ack {
                scope: scope_sel(b)?,
                until,
            }
        }
        "flag" => {
            only(&[])?;
            Action::Flag
        }
        "block" => {
            only(&["scope", "target", "for"])?;
            let target = match b.target.as_deref() {
                None | Some("domain") => BlockTarget::Domain,
                Some("exact") => BlockTarget::Exact,
                Some(t) => {
                    return Err(AppError::bad_request(format!(
                        "target: unknown value {t:?}; domain or exact"
                    )))
                }
            };
            let duration = b
                .duration
                .as_ref()
                .map(TimeArg::duration)
                .transpose()
                .map_err(|e| AppError::bad_request(format!("for: {e}")))?;
            Action::Block {
                scope: scope_sel(b)?,
                target,
                duration,
            }
        }
        "unblock" => {
            only(&[])?;
            Action::Unblock
        }
        "resolve" => {
            only(&["reason"])?;
            let reason = match b.reason.as_deref() {
                None => {
                    return Err(AppError::bad_request(
                        "resolve needs a reason: true_positive, benign_positive, false_positive or duplicate",
                    ))
                }
                Some(r) => Reason::parse(r).filter(|r| *r != Reason::Expired).ok_or_else(|| {
                    AppError::bad_request(format!(
                        "reason: unknown value {r:?}; one of true_positive, benign_positive, false_positive, duplicate"
                    ))
                })?,
            };
            Action::Resolve { reason }
        }
        "note" => {
            only(&[])?;
            if b.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
                return Err(AppError::bad_request("note needs text in \"note\""));
            }
            Action::Note
        }
        "reopen" => {
            only(&[])?;
            Action::Reopen
        }
        other => {
            return Err(AppError::bad_request(format!(
                "action: unknown value {other:?}; one of ack, flag, block, unblock, resolve, note, reopen"
            )))
        }
    })
}

/// Acts on one alert; answers after the change is committed.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/actions", tag = "alerts",
    params(("id" = String, Path, description = "Alert id")),
    request_body = ActionBody,
    security(("bearer" = [])),
    responses((status = 200, description = "What was done (ActionResult: matched, outcomes, errors)", body = Object),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn alert_action(
    Analyst(t): Analyst,
    State(st): State<AppState>,
    P(id): P<String>,
    JsonBody(b): JsonBody<ActionBody>,
) -> ApiResult<Json<ActionResult>> {
    if b.ids.is_some() || b.filter.is_some() {
        return Err(AppError::bad_request(
            "ids and filter belong to the bulk route POST /api/v1/alerts/actions; this one acts on the alert in the path",
        ));
    }
    let action = to_action(&b)?;
    let id2 = id.clone();
    if st.read(move |s| s.get_alert(&id2)).await?.is_none() {
        return Err(no_alert(&id));
    }
    let req = ActionRequest {
        target: Target::Ids(vec![id.clone()]),
        action,
        note: b.note,
        actor: t.name,
        dry_run: b.dry_run,
    };
    let res = st.pipe(move |h| h.act(req)).await?;
    if res.outcomes.is_empty() && !b.dry_run {
        if let Some(e) = res.errors.first() {
            return Err(AppError::bad_request(e.error.clone()));
        }
    }
    Ok(Json(res))
}

/// Acts on many alerts: `ids`, or every alert matching `filter` (no cap). With `dry_run` only
/// the count (`matched`) is returned.
#[utoipa::path(post, path = "/api/v1/alerts/actions", tag = "alerts",
    request_body = ActionBody,
    security(("bearer" = [])),
    responses((status = 200, description = "ActionResult: matched, outcomes, errors (per alert)", body = Object),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn bulk_action(
    Analyst(t): Analyst,
    State(st): State<AppState>,
    JsonBody(b): JsonBody<ActionBody>,
) -> ApiResult<Json<ActionResult>> {
    let target = match (&b.ids, &b.filter) {
        (Some(ids), None) => {
            if ids.is_empty() {
                return Err(AppError::bad_request("ids is empty: give at least one alert id"));
            }
            Target::Ids(ids.clone())
        }
        (None, Some(f)) => Target::Filter(f.to_filter(now()).map_err(|e| {
            AppError::bad_request(format!("filter: {e}"))
        })?),
        _ => {
            return Err(AppError::bad_request(
                "give either \"ids\": [...] or \"filter\": {...} (e.g. {\"kind\":[\"new_destination\"],\"device\":\"10.0.0.5\"})",
            ))
        }
    };
    let action = to_action(&b)?;
    let req = ActionRequest {
        target,
        action,
        note: b.note,
        actor: t.name,
        dry_run: b.dry_run,
    };
    Ok(Json(st.pipe(move |h| h.act(req)).await?))
}

// ---------------------------------------------------------------- devices, destinations

/// Every device the engine knows.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices",
    security(("bearer" = [])),
    responses((status = 200, description = "DeviceSummary list", body = Vec<Object>)))]
async fn list_devices(_t: Viewer, State(st): State<AppState>) -> ApiResult<Response> {
    Ok(Json(st.pipe(|h| h.devices()).await?).into_response())
}

/// One device with its baseline.
#[utoipa::path(get, path = "/api/v1/devices/{ip}", tag = "devices",
    params(("ip" = String, Path, description = "Device address")),
    security(("bearer" = [])),
    responses((status = 200, description = "DeviceView, with `queries`: the link to its query log", body = Object),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_device(
    _t: Viewer,
    State(st): State<AppState>,
    P(ip): P<String>,
) -> ApiResult<Response> {
    let addr: std::net::IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| AppError::bad_request(format!("{ip:?} is not an IP address")))?;
    match st.pipe(move |h| h.device(addr)).await? {
        Some(v) => Ok(Json(with_link(v, "device", &addr.to_string())).into_response()),
        None => Err(AppError::not_found(format!(
            "no device {addr} in the engine; list them with GET /api/v1/devices"
        ))),
    }
}

/// Who talks to a destination, since when.
#[utoipa::path(get, path = "/api/v1/destinations/{name}", tag = "devices",
    params(("name" = String, Path, description = "Destination (registered domain, name or address)")),
    security(("bearer" = [])),
    responses((status = 200, description = "DestinationView, with `queries`: the link to the query log of the name and its subdomains", body = Object),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_destination(
    _t: Viewer,
    State(st): State<AppState>,
    P(name): P<String>,
) -> ApiResult<Response> {
    let n = canonical_name(&name)?;
    let n2 = n.clone();
    match st.pipe(move |h| h.destination(&n2)).await? {
        Some(v) => Ok(Json(with_link(v, "suffix", &n)).into_response()),
        None => Err(AppError::not_found(format!(
            "no device has talked to {n:?}"
        ))),
    }
}

/// The view as JSON with a `queries` link: the query log filtered to this device or name.
fn with_link(v: impl Serialize, key: &str, value: &str) -> serde_json::Value {
    let mut j = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(m) = &mut j {
        m.insert(
            "queries".into(),
            format!(
                "/api/v1/queries?{key}={}",
                crate::queries::url_encode(value)
            )
            .into(),
        );
    }
    j
}

/// A destination as typed (a name or an address) in the engine's canonical form.
pub fn canonical_name(s: &str) -> ApiResult<String> {
    if let Ok(ip) = s.trim().parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    let n = dnsight_model::Name::parse(s.trim())
        .map_err(|e| AppError::bad_request(format!("{s:?} is not a domain name: {e}")))?;
    if n.is_root() {
        return Err(AppError::bad_request("give a domain name, not the root"));
    }
    Ok(n.as_str().to_string())
}

// ---------------------------------------------------------------- blocks

/// A new block or allow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockBody {
    /// The domain name.
    pub name: String,
    /// The name and everything under it (default true); false: the exact name.
    #[serde(default = "yes")]
    pub subdomains: bool,
    /// `{"scope":"all"}` (default), `{"scope":"group","value":"G"}` or
    /// `{"scope":"device","value":"IP"}`.
    #[schema(value_type = Option<Object>)]
    pub scope: Option<Scope>,
    /// An allow exception instead of a block.
    #[serde(default)]
    pub allow: bool,
    /// How long (`1h` or seconds); none: until removed.
    #[serde(rename = "for")]
    #[schema(value_type = Option<Object>)]
    pub duration: Option<TimeArg>,
    pub note: Option<String>,
}

fn yes() -> bool {
    true
}

/// Active blocks and allows.
#[utoipa::path(get, path = "/api/v1/blocks", tag = "blocks",
    security(("bearer" = [])),
    responses((status = 200, description = "BlockRule list", body = Vec<Object>)))]
async fn list_blocks(_t: Viewer, State(st): State<AppState>) -> ApiResult<Json<Vec<BlockRule>>> {
    let now = now();
    Ok(Json(st.read(move |s| s.active_blocks(now)).await?))
}

/// Adds a block or allow; the resolver applies it from the next query.
#[utoipa::path(post, path = "/api/v1/blocks", tag = "blocks",
    request_body = BlockBody,
    security(("bearer" = [])),
    responses((status = 201, description = "The BlockRule", body = Object),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn add_block(
    Analyst(t): Analyst,
    State(st): State<AppState>,
    JsonBody(b): JsonBody<BlockBody>,
) -> ApiResult<Response> {
    let name = canonical_name(&b.name)?;
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(AppError::bad_request(
            "blocks are by domain name; an address cannot be blocked in DNS",
        ));
    }
    let scope = b.scope.unwrap_or(Scope::All);
    if let Scope::Group(g) = &scope {
        if g.trim().is_empty() {
            return Err(AppError::bad_request(
                "scope group needs a group name in \"value\"",
            ));
        }
    }
    if b.note.as_ref().is_some_and(|n| n.len() > 4096) {
        return Err(AppError::bad_request("the note is longer than 4096 bytes"));
    }
    let expires_at = b
        .duration
        .as_ref()
        .map(|d| d.duration().map(|d| now() + d))
        .transpose()
        .map_err(|e| AppError::bad_request(format!("for: {e}")))?;
    let nb = NewBlock {
        name,
        subdomains: b.subdomains,
        scope,
        allow: b.allow,
        expires_at,
        note: b.note,
        alert_id: None,
    };
    let actor = t.name;
    let r = st.pipe(move |h| h.add_block(nb, &actor)).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

/// Removes a block or allow.
#[utoipa::path(delete, path = "/api/v1/blocks/{id}", tag = "blocks",
    params(("id" = i64, Path, description = "Block id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The removed BlockRule", body = Object),
        (status = 404, body = ErrorBody)))]
async fn remove_block(
    Analyst(t): Analyst,
    State(st): State<AppState>,
    P(id): P<String>,
) -> ApiResult<Json<BlockRule>> {
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| AppError::bad_request(format!("{id:?} is not a block id (a number)")))?;
    let actor = t.name;
    match st.pipe(move |h| h.remove_block(id, &actor)).await {
        Err(e) if e.status == StatusCode::NOT_FOUND || e.status == StatusCode::BAD_REQUEST => {
            Err(AppError::not_found(format!(
                "no active block with id {id}; list them with GET /api/v1/blocks"
            )))
        }
        r => r.map(Json),
    }
}

// ---------------------------------------------------------------- meta

/// Pipeline, engine and store counters.
#[utoipa::path(get, path = "/api/v1/stats", tag = "meta",
    security(("bearer" = [])),
    responses((status = 200, description = "PipelineStats (with the engine's and the store's) and `querylog` (rows, disk use, writer queue and drops)", body = Object)))]
async fn stats(_t: Viewer, State(st): State<AppState>) -> ApiResult<Json<StatsBody>> {
    let pipeline = st.pipe(|h| h.stats()).await?;
    let disk = st.read(|s| s.querylog_disk()).await?;
    let writer = st.inner.cfg.live.querylog.as_ref().map(|q| q.stats());
    Ok(Json(StatsBody {
        pipeline,
        querylog: QueryLogStats { disk, writer },
    }))
}

#[derive(Serialize)]
struct StatsBody {
    #[serde(flatten)]
    pipeline: PipelineStats,
    querylog: QueryLogStats,
}

/// The query log's disk use and, while `serve` writes it, its writer's counters.
#[derive(Serialize)]
struct QueryLogStats {
    #[serde(flatten)]
    disk: dnsight_triage::QueryLogDisk,
    #[serde(skip_serializing_if = "Option::is_none")]
    writer: Option<dnsight_triage::querylog::WriterStats>,
}

/// The alert kinds and what they mean: the detector that raises each, a title, what it
/// means, what acknowledging adds to the baseline, the usual severity range.
#[utoipa::path(get, path = "/api/v1/kinds", tag = "meta",
    security(("bearer" = [])),
    responses((status = 200, description = "KindInfo list", body = Vec<Object>)))]
async fn kinds(_t: Viewer) -> Response {
    Json(dnsight_engine::views::kinds()).into_response()
}

/// A `limit` query value: 1..=1000, default 100.
fn limit_1000(v: Option<String>) -> Result<u32, AppError> {
    match v {
        None => Ok(100),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| AppError::bad_request(format!("limit: {v:?} must be 1..=1000"))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Lines, newest first, 1..=1000 (default 100).
    limit: Option<String>,
}

/// The latest audit lines (who did what, when), newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "meta", params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "AuditEntry list", body = Vec<Object>), (status = 400, body = ErrorBody)))]
async fn audit(
    _t: Viewer,
    State(st): State<AppState>,
    Q(q): Q<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = limit_1000(q.limit)?;
    Ok(Json(st.read(move |s| s.audit(limit)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct NotificationsQuery {
    /// pending, sent or failed (default: all).
    state: Option<String>,
    /// Rows, newest first, 1..=1000 (default 100).
    limit: Option<String>,
}

/// The notification outbox, newest first: what was told to which target, what waits, and what
/// failed after its last try (with the error).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "meta", params(NotificationsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "OutboxItem list", body = Vec<Object>), (status = 400, body = ErrorBody)))]
async fn notifications(
    _t: Viewer,
    State(st): State<AppState>,
    Q(q): Q<NotificationsQuery>,
) -> ApiResult<Json<Vec<dnsight_triage::OutboxItem>>> {
    let limit = limit_1000(q.limit)?;
    let state = match q.state.as_deref() {
        None | Some("all") => None,
        Some(v) => Some(dnsight_triage::OutboxState::parse(v).ok_or_else(|| {
            AppError::bad_request(format!("state: {v:?}: use pending, sent, failed or all"))
        })?),
    };
    Ok(Json(st.read(move |s| s.outbox_list(state, limit)).await?))
}

// ---------------------------------------------------------------- admin

/// Every token (never the secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "TokenInfo list", body = Vec<Object>), (status = 403, body = ErrorBody)))]
async fn list_tokens(_t: Admin, State(st): State<AppState>) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(st.read(|s| s.list_tokens()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Who or what uses it (recorded as the actor of its actions).
    pub name: String,
    /// viewer, analyst or admin.
    pub role: String,
    /// When it stops working (Unix seconds, RFC 3339, or a duration from now such as `90d`).
    #[schema(value_type = Option<Object>)]
    pub expires: Option<TimeArg>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[schema(value_type = Object)]
    pub token: TokenInfo,
    /// The secret: shown this once, never stored.
    pub secret: String,
}

/// Validates a token name: 1..=64 characters, no control characters or whitespace at the ends.
pub fn check_token_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.chars().count() > 64 {
        return Err("a token name must be 1 to 64 characters".into());
    }
    if n.chars().any(char::is_control) || n.trim() != n {
        return Err(
            "a token name must not hold control characters or start/end with spaces".into(),
        );
    }
    if n.parse::<i64>().is_ok() {
        return Err("a token name must not be a number (numbers are token ids)".into());
    }
    Ok(())
}

/// Creates a token; the secret is in the answer only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin",
    request_body = NewToken,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_token(
    Admin(t): Admin,
    State(st): State<AppState>,
    JsonBody(b): JsonBody<NewToken>,
) -> ApiResult<Response> {
    check_token_name(&b.name).map_err(AppError::bad_request)?;
    let role = Role::parse(&b.role).ok_or_else(|| {
        AppError::bad_request(format!(
            "role: unknown value {:?}; viewer, analyst or admin",
            b.role
        ))
    })?;
    let now = now();
    let expires = b
        .expires
        .as_ref()
        .map(|e| e.until(now))
        .transpose()
        .map_err(|e| AppError::bad_request(format!("expires: {e}")))?;
    if expires.is_some_and(|e| e <= now) {
        return Err(AppError::bad_request(
            "expires is in the past: give a later time",
        ));
    }
    let actor = t.name;
    let (token, secret) = st
        .read(move |s| s.create_token(&b.name, role, expires, &actor, now))
        .await?;
    tracing::info!(name = %token.name, role = token.role.as_str(), "API token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })).into_response())
}

/// Revokes a token by id or name.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "admin",
    params(("id" = String, Path, description = "Token id or name")),
    security(("bearer" = [])),
    responses((status = 200, description = "The revoked TokenInfo", body = Object), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    Admin(t): Admin,
    State(st): State<AppState>,
    P(id): P<String>,
) -> ApiResult<Json<TokenInfo>> {
    let actor = t.name;
    let now = now();
    let id2 = id.clone();
    match st.read(move |s| s.revoke_token(&id2, &actor, now)).await {
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(AppError::not_found(format!(
            "no token {id:?}; list them with GET /api/v1/tokens"
        ))),
        r => r.map(Json),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

/// Reloads the threat-intel feeds now.
#[utoipa::path(post, path = "/api/v1/intel/reload", tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Message), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn reload_intel(_t: Admin, State(st): State<AppState>) -> ApiResult<Json<Message>> {
    let message = st.pipe(|h| h.reload_intel()).await?;
    Ok(Json(Message { message }))
}

// ---------------------------------------------------------------- RPZ, metrics

fn rpz_open(st: &AppState, ip: std::net::IpAddr) -> bool {
    let ip = dnsight_engine::net::canonical(ip);
    ip.is_loopback() || st.inner.cfg.rpz_clients.iter().any(|c| c.contains(ip))
}

/// The blocks and allows of scope `all` as an RPZ zone (for BIND, Knot, PowerDNS, Unbound).
/// Open to loopback and the configured RPZ clients; others need a token.
#[utoipa::path(get, path = "/rpz", tag = "blocks",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The zone in master-file format", content_type = "text/dns", body = String),
        (status = 401, body = ErrorBody)))]
async fn rpz(State(st): State<AppState>, req: Request) -> ApiResult<Response> {
    let (parts, _) = req.into_parts();
    if !rpz_open(&st, auth::client_ip(&parts)) {
        auth::require(&st, &parts, Role::Viewer).await?;
    }
    let now = now();
    let (serial, blocks) = st
        .read(move |s| Ok((s.rpz_serial()?, s.active_blocks(now)?)))
        .await?;
    let zone = st.inner.cfg.rpz_zone.clone();
    let text = render_rpz(&zone, serial, &blocks);
    Ok(([(header::CONTENT_TYPE, "text/dns; charset=utf-8")], text).into_response())
}

fn render_rpz(zone: &str, serial: u32, blocks: &[BlockRule]) -> String {
    let all: Vec<BlockRule> = blocks
        .iter()
        .filter(|b| b.scope == Scope::All)
        .cloned()
        .collect();
    dnsight_triage::rpz::render(zone, serial, &all)
}

/// Counters in the Prometheus text format (open when `metrics_public`, else a token).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, body = ErrorBody)))]
async fn metrics(State(st): State<AppState>, req: Request) -> ApiResult<Response> {
    let (parts, _) = req.into_parts();
    if !st.inner.cfg.metrics_public {
        auth::require(&st, &parts, Role::Viewer).await?;
    }
    let s = st.pipe(|h| h.stats()).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&s, &st.inner.cfg.live),
    )
        .into_response())
}
