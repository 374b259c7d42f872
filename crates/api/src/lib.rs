//! dnsight-api: the HTTP API over the pipeline and the triage store.
//!
//! JSON under `/api/v1` (alerts and their actions, devices, destinations, blocks, stats, kinds,
//! audit, tokens, intel reload), the RPZ zone at `/rpz`, Prometheus text at `/metrics`, and the
//! OpenAPI 3.1 document generated from the handlers at `/api/openapi.json`.
//!
//! The server runs on its own two-thread tokio runtime on its own thread, so the caller (the
//! binary) stays synchronous. Reads go to the API's own read connection of the triage store
//! (SQLite WAL: concurrent with the pipeline's writer); every change goes through the
//! pipeline's [`Handle`](dnsight_pipeline::Handle), which answers after the store committed.
//!
//! Absences: the API never writes alerts or blocks to the store itself (the pipeline is the one
//! writer of those; the API writes only token bookkeeping), never logs a token, and never
//! answers a client mistake with a 500.

use dnsight_engine::Cidr;
use dnsight_pipeline::Handle;
use dnsight_triage::TriageStore;
use std::net::SocketAddr;
use std::path::PathBuf;

mod auth;
mod error;
mod extract;
mod handlers;
mod intake;
mod metrics;
mod params;
mod queries;
mod server;

pub use auth::Limiter;
pub use error::{ApiResult, AppError};
pub use handlers::{canonical_name, check_token_name, to_action, ActionBody, AppState};
pub use intake::{Intake, IntakeReport};
pub use metrics::{Counters, EventMetrics, Live};
pub use params::{parse_duration, parse_time, AlertQuery, FilterBody, TimeArg};
pub use queries::QueriesQuery;

/// Routes served beside the API on the same listener (the dashboard), built from the API's
/// state: they read and act through the same store connection and pipeline handle.
pub type Mount = Box<dyn FnOnce(AppState) -> axum::Router + Send>;

/// Where and how the API listens.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Address to bind (port 0: any free port, see [`ApiServer::addr`]).
    pub listen: SocketAddr,
    /// HTTPS with this certificate chain and private key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Clients that may fetch `/rpz` without a token (loopback always may).
    pub rpz_clients: Vec<Cidr>,
    /// `/metrics` without a token.
    pub metrics_public: bool,
    /// Origin of the RPZ zone, e.g. `rpz.dnsight.`.
    pub rpz_zone: String,
    /// `POST /api/v1/events` feeds this queue (None: the route answers 503).
    pub intake: Option<Intake>,
    /// Live values for `/metrics` and stats (resolver counters, query-log writer).
    pub live: Live,
}

impl ApiConfig {
    /// Plain HTTP on `listen`, no RPZ clients, private metrics, zone `rpz.dnsight.`.
    pub fn new(listen: SocketAddr) -> ApiConfig {
        ApiConfig {
            listen,
            tls: None,
            rpz_clients: Vec::new(),
            metrics_public: false,
            rpz_zone: DEFAULT_RPZ_ZONE.to_string(),
            intake: None,
            live: Live::default(),
        }
    }
}

/// The default RPZ origin.
pub const DEFAULT_RPZ_ZONE: &str = "rpz.dnsight.";

/// Largest request body accepted (413 above).
pub const MAX_BODY: usize = 1 << 20;
/// Largest body of the event intake routes (`/api/v1/events...`): log shippers batch, and
/// Firehose's records are base64 (a third larger than the logs they carry).
pub const MAX_INTAKE_BODY: usize = 8 << 20;

/// The body limit of a request path.
pub(crate) fn body_limit(path: &str) -> usize {
    if path == "/api/v1/events" || path.starts_with("/api/v1/events/") {
        MAX_INTAKE_BODY
    } else {
        MAX_BODY
    }
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {source} (is another dnsight or another server using it? pass another address)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("opening the triage store: {0}")]
    Store(#[from] dnsight_triage::TriageError),
    #[error("starting the API thread: {0}")]
    Runtime(std::io::Error),
}

/// The running API server. Dropping it stops it too.
pub struct ApiServer {
    addr: SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// The bound address (the real port when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
    /// Stops accepting, gives requests in flight a moment, and waits for the thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }
    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Opens the API's own connection to the triage store in `state_dir` and starts serving.
pub fn start(cfg: ApiConfig, handle: Handle, state_dir: PathBuf) -> Result<ApiServer, ApiError> {
    start_mounted(cfg, handle, state_dir, None)
}

/// [`start`] with more routes on the same listener (see [`Mount`]).
pub fn start_mounted(
    cfg: ApiConfig,
    handle: Handle,
    state_dir: PathBuf,
    mount: Option<Mount>,
) -> Result<ApiServer, ApiError> {
    let store = dnsight_triage::SqliteStore::open(&state_dir)?;
    start_with_store_mounted(cfg, handle, Box::new(store), mount)
}

/// [`start`] with a store the caller opened (another backend, or tests).
pub fn start_with_store(
    cfg: ApiConfig,
    handle: Handle,
    store: Box<dyn TriageStore>,
) -> Result<ApiServer, ApiError> {
    start_with_store_mounted(cfg, handle, store, None)
}

/// [`start_with_store`] with more routes on the same listener (see [`Mount`]).
pub fn start_with_store_mounted(
    cfg: ApiConfig,
    handle: Handle,
    store: Box<dyn TriageStore>,
    mount: Option<Mount>,
) -> Result<ApiServer, ApiError> {
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(server::tls_config(cert, key).map_err(ApiError::Tls)?),
        None => None,
    };
    let listener = std::net::TcpListener::bind(cfg.listen).map_err(|source| ApiError::Bind {
        addr: cfg.listen,
        source,
    })?;
    listener.set_nonblocking(true).map_err(ApiError::Runtime)?;
    let addr = listener.local_addr().map_err(ApiError::Runtime)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("dnsight-api")
        .enable_all()
        .build()
        .map_err(ApiError::Runtime)?;
    let has_tls = tls.is_some();
    let state = handlers::AppState::new(cfg, handle, store);
    let (app, _doc) = handlers::router(state.clone());
    let app = match mount {
        Some(m) => m(state).merge(app),
        None => app,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("dnsight-api".into())
        .spawn(move || {
            rt.block_on(server::serve(listener, tls, app, stop_rx));
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        })
        .map_err(ApiError::Runtime)?;
    Ok(ApiServer {
        addr,
        tls: has_tls,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// The OpenAPI document the server serves at `/api/openapi.json` (for docs and tests).
pub fn openapi_json() -> String {
    handlers::openapi().to_pretty_json().unwrap_or_default()
}
