//! The embedded static files: one stylesheet and one script, served with a content hash in
//! their URL so they can be cached for good.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
];

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The URL of an embedded file, e.g. `/ui/assets/app.js?v=1f2e...`.
pub(crate) fn url(name: &str) -> String {
    let v = FILES
        .iter()
        .find(|f| f.0 == name)
        .map(|f| fnv(f.2))
        .unwrap_or(0);
    format!("/ui/assets/{name}?v={v:016x}")
}

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|f| f.0 == file) {
        Some((_, ct, body)) => (
            [
                (header::CONTENT_TYPE, *ct),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
