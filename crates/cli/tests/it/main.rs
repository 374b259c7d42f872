//! Integration tests of the `dnsight` binary (one test binary for the crate).
mod demo;
mod eval;
mod simulate;
mod score_names;
