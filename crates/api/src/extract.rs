//! Extractors whose rejections are JSON errors with a hint (axum's own answer in plain text).

use crate::error::AppError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body (unknown fields are refused by the body types themselves).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> AppError {
    let status = e.status();
    let msg = match &e {
        JsonRejection::MissingJsonContentType(_) => {
            "the body must be JSON: send `Content-Type: application/json`".to_string()
        }
        JsonRejection::JsonSyntaxError(_) => {
            format!("the body is not valid JSON: {}", e.body_text())
        }
        JsonRejection::JsonDataError(_) => format!(
            "the JSON does not fit this route: {} (see /api/openapi.json)",
            e.body_text()
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the body is larger than {} bytes; split the request (bulk actions take a filter instead of ids)",
            crate::MAX_BODY
        ),
        _ => format!("could not read the body: {}", e.body_text()),
    };
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    AppError::new(status, msg)
}

/// Query parameters.
pub struct Q<T>(pub T);

impl<S, T> FromRequestParts<S> for Q<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> AppError {
    AppError::bad_request(format!(
        "bad query parameters: {} (see /api/openapi.json for this route's parameters)",
        e.body_text()
    ))
}

/// One path segment.
pub struct P<T>(pub T);

impl<S, T> FromRequestParts<S> for P<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(P(v)),
            Err(e) => Err(path_rejection(e)),
        }
    }
}

fn path_rejection(e: PathRejection) -> AppError {
    AppError::bad_request(format!("bad path: {}", e.body_text()))
}
