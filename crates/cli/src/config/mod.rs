//! The TOML config file: raw serde structs (deny_unknown_fields) per section, validated into
//! built objects. Only this crate knows the file format.
//!
//! Sections: `[resolver]`/`[upstream]`/`[policy]`... in `resolver.rs`; detection, inventory,
//! intel, baselines in `engine.rs`.
pub mod api;
pub mod engine;
pub mod resolver;
