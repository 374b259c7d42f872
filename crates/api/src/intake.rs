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
use axum::body::Bytes;
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

fn ingest(body: Bytes, intake: &Intake) -> Result<Outcome, String> {
    let opts = dnsight_ingest::IngestOptions::default();
    let (format, mut r) = dnsight_ingest::open_reader_detect(
        Box::new(std::io::Cursor::new(body)),
        "request body",
        &opts,
    )
    .map_err(|e| e.to_string())?;
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
        let n = batch.len() as u64;
        if n > 0 {
            if intake.0.try_send(batch).is_err() {
                return Ok(Outcome::Full(report(&*r, events)));
            }
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
        (status = 413, description = "Body over 1 MiB, or over a million records"),
        (status = 429, description = "Queue full: retry later; the message says how many events were taken"),
        (status = 503, description = "No pipeline to feed (serve without analysis)")),
    security(("bearer" = [])))]
pub(crate) async fn post_events(
    State(st): State<AppState>,
    Analyst(_t): Analyst,
    body: Bytes,
) -> ApiResult<Json<IntakeReport>> {
    let Some(intake) = st.inner.cfg.intake.clone() else {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "event intake is off: it needs the analysis running (serve with --state)",
        ));
    };
    let out = tokio::task::spawn_blocking(move || ingest(body, &intake))
        .await
        .map_err(|e| AppError::internal("the event intake", &e))?;
    match out {
        Ok(Outcome::Done(r)) => Ok(Json(r)),
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
