//! Integration tests of the `dnsight` binary (one test binary for the crate).
mod client;
mod dashboard;
mod demo;
mod enrich_urls;
mod eval;
mod pgstore;
mod querylogs;
mod realtools;
mod score_names;
mod sensor;
mod serve_sources;
mod simulate;
mod state_replay;
mod train_dga;
mod triage;
mod workers;
