//! `POST /api/v1/events`: event intake for log shippers (Vector, Fluent Bit, Logstash) that
//! forward DNS logs dnsight cannot fetch itself (cloud logs from S3 or CloudWatch), so dnsight
//! holds no cloud credentials.
//!
//! The body (at most [`crate::MAX_BODY`] bytes; gzip is unwrapped by its magic bytes, whatever
//! `Content-Encoding` says) is any input format the readers know — dnsight JSON lines, Zeek, or a
//! DNS query log — sniffed like a file. Events go to the pipeline's queue without waiting: when
//! it is full the request ends with 429 (and `Retry-After`), saying how many events were taken,
//! so the resolver never stalls behind an intake. Bad lines are counted and skipped; at most
//! [`MAX_RECORDS`] records are read from one body (a decompression bomb ends there with 413).

use crate::auth::Analyst;
use crate::error::{ApiResult, AppError};
use crate::handlers::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Records read from one request body at most.
pub const MAX_RECORDS: u64 = 1_000_000;

/// Where accepted events go (the running pipeline's queue).
#[derive(Clone)]
pub struct Intake(pub dnsight_pipeline::Producer);

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intake")
    }
}

#[derive(Serialize, ToSchema)]
pub struct IntakeReport {
    /// The format the body was read as (`jsonl`, `route53-resolver`, `dnsmasq`, ...).
    pub format: String,
    /// Lines (or records) read.
    pub records: u64,
    /// Events handed to the pipeline.
    pub events: u64,
    pub rejected_total: u64,
    /// Rejected input by reason (`log.bad_line`, `jsonl.bad_json`, ...).
    pub rejected: BTreeMap<String, u64>,
}

enum Outcome {
    Done(IntakeReport),
    Full(IntakeReport),
    TooMany(IntakeReport),
}

/// How long one body may wait for room in the pipeline's queue: none for the plain intake
/// (shippers retry what was not taken), a while for Firehose, which re-sends the whole request
/// on any failure (so events taken before a 429 would arrive twice).
#[derive(Clone, Copy)]
enum Wait {
    Never,
    Upto(std::time::Duration),
}

/// Longest a Firehose delivery waits for the queue before its 429.
pub const FIREHOSE_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Reads one body into the pipeline, counted on the ingestion-health meter `source` (`intake`
/// or `firehose`): events taken, events refused by a full queue (dropped), records rejected.
fn ingest(body: Bytes, intake: &Intake, wait: Wait, source: &str) -> Result<Outcome, String> {
    let meter = intake.0.meter(source, source);
    let out = ingest_counted(body, intake, wait, &meter);
    if let Err(e) = &out {
        // a body that is no known format at all is one rejected record
        meter.rejected(1);
        tracing::debug!(source, error = %e, "intake body refused");
    }
    out
}

fn ingest_counted(
    body: Bytes,
    intake: &Intake,
    wait: Wait,
    meter: &dnsight_pipeline::SourceMeter,
) -> Result<Outcome, String> {
    let opts = dnsight_ingest::IngestOptions::default();
    let (format, mut r) = dnsight_ingest::open_reader_detect(
        Box::new(std::io::Cursor::new(body)),
        "request body",
        &opts,
    )
    .map_err(|e| e.to_string())?;
    let mut counted_rejects = 0u64;
    let mut count_rejects = |r: &dyn dnsight_ingest::EventReader| {
        let now = r.stats().rejected_total();
        meter.rejected(now.saturating_sub(counted_rejects));
        counted_rejects = now;
    };
    let mut events = 0u64;
    let report = |r: &dyn dnsight_ingest::EventReader, events| {
        let st = r.stats();
        IntakeReport {
            format: format.name().to_string(),
            records: st.records,
            events,
            rejected_total: st.rejected_total(),
            rejected: st.rejected.clone(),
        }
    };
    loop {
        let mut batch = Vec::with_capacity(1024);
        let more = r.next_batch(&mut batch).map_err(|e| e.to_string())?;
        count_rejects(&*r);
        let n = batch.len() as u64;
        if n > 0 {
            let sent = match wait {
                Wait::Never => intake.0.try_send(batch),
                Wait::Upto(d) => intake.0.send_timeout(batch, d),
            };
            if sent.is_err() {
                meter.dropped(n);
                return Ok(Outcome::Full(report(&*r, events)));
            }
            meter.events(n);
            events += n;
        }
        if r.stats().records > MAX_RECORDS {
            return Ok(Outcome::TooMany(report(&*r, events)));
        }
        if !more {
            return Ok(Outcome::Done(report(&*r, events)));
        }
    }
}

/// Takes DNS events or logs (any input format; JSON lines of dnsight's event schema, Zeek, or a
/// query log such as Route 53 Resolver JSON). 429 when the pipeline's queue is full.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest",
    request_body(content = String, content_type = "application/x-ndjson",
        description = "Lines of any supported format; gzip accepted"),
    responses(
        (status = 200, body = IntakeReport),
        (status = 400, description = "Not a format dnsight reads"),
        (status = 413, description = "Body over 8 MiB, or over a million records"),
        (status = 429, description = "Queue full: retry later; the message says how many events were taken"),
        (status = 503, description = "No pipeline to feed (serve without analysis)")),
    security(("bearer" = [])))]
pub(crate) async fn post_events(
    State(st): State<AppState>,
    Analyst(_t): Analyst,
    body: Body,
) -> ApiResult<Json<IntakeReport>> {
    let intake = intake_of(&st)?;
    let body = read_body(body).await?;
    let out = tokio::task::spawn_blocking(move || ingest(body, &intake, Wait::Never, "intake"))
        .await
        .map_err(|e| AppError::internal("the event intake", &e))?;
    answer(out).map(Json)
}

fn intake_of(st: &AppState) -> ApiResult<Intake> {
    st.inner.cfg.intake.clone().ok_or_else(|| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "event intake is off: it needs the analysis running (serve with --state)",
        )
    })
}

/// The body, up to [`crate::MAX_INTAKE_BODY`] (the route's own limit, above the API's).
async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, crate::MAX_INTAKE_BODY)
        .await
        .map_err(|_| {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than {} bytes (or broke off); send smaller batches",
                    crate::MAX_INTAKE_BODY
                ),
            )
        })
}

fn answer(out: Result<Outcome, String>) -> ApiResult<IntakeReport> {
    match out {
        Ok(Outcome::Done(r)) => Ok(r),
        Ok(Outcome::Full(r)) => {
            let mut e = AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the event queue is full: {} events of this body were taken ({} records read); retry the rest later",
                    r.events, r.records
                ),
            );
            e.retry_after = Some(1);
            Err(e)
        }
        Ok(Outcome::TooMany(r)) => Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "more than {MAX_RECORDS} records in one body: {} events taken; send smaller batches",
                r.events
            ),
        )),
        Err(e) => Err(AppError::bad_request(e)),
    }
}

// ---------------------------------------------------------------- Amazon Data Firehose

/// Firehose's reply: the request's id and a time, plus `errorMessage` on failure (anything
/// else is a failed delivery to Firehose, which retries).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseReply {
    pub request_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// Amazon Data Firehose's HTTP endpoint delivery (a Route 53 Resolver query log, CloudWatch
/// subscription data, or any other log dnsight reads, in Firehose's `records` with base64
/// `data`). Authenticated by the stream's access key, which is an analyst token, sent as
/// `X-Amz-Firehose-Access-Key`; answered in Firehose's format. A full queue is waited for up to
/// 20 s, since Firehose retries a failed request whole.
#[utoipa::path(post, path = "/api/v1/events/firehose", tag = "ingest",
    request_body(content = String, content_type = "application/json",
        description = "Firehose's delivery request: {requestId, timestamp, records: [{data}]}; gzip accepted"),
    responses(
        (status = 200, body = FirehoseReply),
        (status = 400, body = FirehoseReply, description = "Not a format dnsight reads"),
        (status = 401, body = FirehoseReply, description = "Missing or unknown access key"),
        (status = 413, body = FirehoseReply, description = "Body over 8 MiB, or over a million records"),
        (status = 429, body = FirehoseReply, description = "Queue still full after 20 s"),
        (status = 503, body = FirehoseReply, description = "No pipeline to feed")),
    security(("firehose_access_key" = [])))]
pub(crate) async fn post_firehose(
    State(st): State<AppState>,
    parts: axum::http::request::Parts,
    body: Body,
) -> (StatusCode, Json<FirehoseReply>) {
    let header_id = parts
        .headers
        .get("x-amz-firehose-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(128).collect::<String>());
    let result = async {
        crate::auth::require(&st, &parts, dnsight_triage::Role::Analyst).await?;
        let intake = intake_of(&st)?;
        let body = read_body(body).await?;
        // the id Firehose expects back: its header, else the body's own `requestId`
        let body_id = if header_id.is_none() {
            request_id_of(&body)
        } else {
            None
        };
        let out = tokio::task::spawn_blocking(move || {
            ingest(body, &intake, Wait::Upto(FIREHOSE_QUEUE_WAIT), "firehose")
        })
        .await
        .map_err(|e| AppError::internal("the event intake", &e))?;
        let report = answer(out)?;
        Ok::<_, AppError>((report, body_id))
    }
    .await;
    let timestamp = jiff::Timestamp::now().as_millisecond();
    match result {
        Ok((report, body_id)) => {
            tracing::debug!(
                events = report.events,
                records = report.records,
                "Firehose delivery"
            );
            (
                StatusCode::OK,
                Json(FirehoseReply {
                    request_id: header_id.or(body_id).unwrap_or_default(),
                    timestamp,
                    error_message: None,
                }),
            )
        }
        Err(e) => (
            e.status,
            Json(FirehoseReply {
                request_id: header_id.unwrap_or_default(),
                timestamp,
                error_message: Some(e.msg),
            }),
        ),
    }
}

/// `requestId` of a Firehose request body (plain JSON; not for gzip'd bodies, which carry the
/// id in the header anyway).
fn request_id_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "requestId")]
        request_id: Option<String>,
    }
    let h: Head = serde_json::from_slice(body).ok()?;
    h.request_id.map(|v| v.chars().take(128).collect())
}
