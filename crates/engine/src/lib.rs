//! dnsight-engine: enrichment, per-device baselines, detectors and alerts.
//!
//! The engine is a deterministic function of the event stream: it never reads the clock and
//! does no network I/O; time comes from the events. The only file I/O is opening and saving
//! the persisted state (`Engine::open`, `Engine::save`) and the loaders the binary calls to
//! build an [`EngineConfig`] (GeoIP databases, feeds, inventory text).
//!
//! ```text
//! DnsEvent ─► enrich (device, destination, internal?, GeoIP, intel)
//!          ─► detectors (read-only baselines) ─► findings ─► AlertBook (dedup, rollup, score)
//!          ─► baselines update (learning rule, no poisoning)
//! ```

pub mod alert;
pub mod baseline;
pub mod codec;
pub mod config;
mod correlator;
pub mod detectors;
pub mod dga;
pub mod engine;
pub mod enrich;
pub mod geo;
pub mod intel;
pub mod inventory;
#[cfg(test)]
mod lifecycle;
pub mod msg;
pub mod net;
mod report;
pub mod shard;
mod store;
pub mod suffix;
pub mod tz;
pub mod views;

pub use alert::{Alert, Kind, Severity, Status};
pub use config::{EngineConfig, PolicyRule, Tuning};
pub use engine::{Engine, EngineStats, ImportStats, PhaseTimes};
pub use geo::Geo;
pub use intel::{Format as IntelFormat, IntelSet};
pub use inventory::Inventory;
pub use net::Cidr;
pub use report::render_text_report;
pub use store::STATE_FILE;
pub use tz::{SiteTz, TzError};
pub use views::Scope;

/// Errors of the engine's few fallible operations (state store).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("state store: {0}")]
    Store(String),
}
