//! Lexical scoring of DNS names: how likely a name is algorithmically generated (DGA), and how
//! much its subdomain part looks like an encoded payload (tunneling).
//!
//! Why: malware that finds its command-and-control through a domain-generation algorithm
//! resolves many random-looking names, and DNS tunnels pack encoded bytes into long, dense
//! subdomains. Both show in the characters of a single name, so a per-name score works from the
//! first event, with no baseline. It is only the first stage: the engine's DGA detector adds a
//! per-device stage (bursts of never-seen NXDOMAIN names) that also carries the dictionary
//! families this lexical model cannot see, and the tunneling detector aggregates per registered
//! domain, which damps the "disposable" but benign random-looking names of CDNs and telemetry.
//!
//! What is scored:
//! - [`score`] looks at the registered-domain label: the label just left of the public suffix
//!   (`psl`, private section included, so `x1y2.duckdns.org` scores `x1y2`). Scoring that label
//!   rather than the whole name avoids most benign CDN/telemetry host labels.
//! - [`tunnel_score`] looks at all labels left of the registered domain.
//!
//! The model ([`Model`]) is small and embedded (`crates/engine/models/dga.bin`, retrained by
//! `dnsight train-dga`): character trigram language models for benign and DGA labels (their
//! log-likelihood ratio and the benign log-likelihood are features), per-family generative
//! models (label length, suffix and bigram chain of each DGA family of the training data; the
//! best family's likelihood ratio against benign and that of the mixture of all families are
//! features), a handful of classic features
//! (length, entropy, digit ratio, consonant runs, suffix rarity...), combined by a few dozen
//! gradient-boosted oblivious trees; a logistic regression over subdomain features gives the
//! tunnel score. `score` costs well under a microsecond (see `docs/evaluation-names.md`). Scoring allocates nothing and reads no clock; names are attacker-controlled
//! bytes, so every input (escapes, non-ASCII, huge labels) is handled without panicking.

mod features;
mod model;
pub mod train;

pub use features::{
    split, sym, LabelStats, NameFeatures, Split, TunnelFeatures, ALPHA, BOUNDARY, KP, NF, NTF,
};
pub use model::{Model, ModelError, Tree};

use dnsight_model::Name;
use std::sync::OnceLock;

/// The trained model file, embedded at compile time.
pub static MODEL_BYTES: &[u8] = include_bytes!("../../models/dga.bin");

/// The embedded model, decoded once.
pub fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        Model::decode(MODEL_BYTES).expect("embedded DGA model is valid (checked by a unit test)")
    })
}

/// Probability (0..1) that `name` is algorithmically generated, from its registered-domain label.
/// Names that are only a public suffix (or the root) score 0.
pub fn score(name: &Name) -> f64 {
    model().score(name)
}

/// The features [`score`] uses, for explanations and `dnsight score-names --json`.
pub fn features(name: &Name) -> NameFeatures {
    model().features(name)
}

/// 0..1: how much the labels left of the registered domain look like an encoded payload.
/// Names without a subdomain part score 0.
pub fn tunnel_score(name: &Name) -> f64 {
    model().tunnel_score(name)
}

/// The subdomain features [`tunnel_score`] uses.
pub fn tunnel_features(name: &Name) -> TunnelFeatures {
    model().tunnel_features(name)
}

/// A [`score`] threshold that gave at most 0.1% false positives on held-out benign registered
/// domains when the model was trained (see `docs/evaluation-names.md`).
pub fn threshold_low_fp() -> f64 {
    model().threshold_0_1pct as f64
}

/// A [`score`] threshold that gave at most 1% false positives on held-out benign domains.
pub fn threshold_1pct() -> f64 {
    model().threshold_1pct as f64
}

#[cfg(test)]
mod tests;
