//! One error type for every handler: a status and a message that says what was wrong and what
//! to do, as `{"error": "..."}`. Internal failures are logged and answered with a generic text.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dnsight_pipeline::PipelineError;
use dnsight_triage::TriageError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong and what to do about it.
    pub error: String,
}

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub msg: String,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
    pub www_authenticate: bool,
}

impl AppError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> AppError {
        AppError {
            status,
            msg: msg.into(),
            retry_after: None,
            www_authenticate: false,
        }
    }
    pub fn bad_request(msg: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, msg)
    }
    pub fn not_found(msg: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, msg)
    }
    /// A failure that is not the client's: logged with its detail, answered generically.
    pub fn internal(what: &str, detail: &dyn std::fmt::Display) -> AppError {
        tracing::error!(error = %detail, "API: {what} failed");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} failed on the server; the server log has the details"),
        )
    }
}

impl From<TriageError> for AppError {
    fn from(e: TriageError) -> AppError {
        match e {
            TriageError::NotFound(m) => AppError::not_found(m),
            TriageError::Invalid(m) => AppError::bad_request(m),
            TriageError::Db(_) => AppError::internal("the triage store", &e),
        }
    }
}

impl From<PipelineError> for AppError {
    fn from(e: PipelineError) -> AppError {
        match e {
            PipelineError::Triage(t) => t.into(),
            PipelineError::Invalid(m) => AppError::bad_request(m),
            PipelineError::Stopped => AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the analysis pipeline is not running (dnsight is shutting down); try again once it is back",
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(ErrorBody { error: self.msg })).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.www_authenticate {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dnsight\""),
            );
        }
        r
    }
}

pub type ApiResult<T> = Result<T, AppError>;
