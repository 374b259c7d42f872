//! The dnstap protobuf types, generated at build time from `proto/dnstap.proto` (see `build.rs`).
#![allow(clippy::all, missing_docs)]
include!(concat!(env!("OUT_DIR"), "/dnstap.rs"));
