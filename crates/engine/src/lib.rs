//! dnsight-engine: enrichment, per-device baselines, detectors and alerts.
//!
//! The engine is a deterministic function of the event stream: it never reads the clock and
//! does no network I/O; time comes from the events.

pub mod dga;
