//! The detector registry: one file per detector, each a small struct implementing
//! [`Detector`], listed once in [`registry`].
//!
//! A detector sees every enriched event together with read-only baselines (taken *before*
//! this event updates them) and writes [`Finding`]s into a caller-owned buffer. It may keep its
//! own bounded state (windows, timestamps), evicted by event time in [`Detector::tick`].

use crate::alert::{AlertBook, Finding, Kind};
use crate::baseline::{Baselines, Device};
use crate::config::EngineConfig;
use crate::enrich::Enriched;

pub mod beaconing;
pub mod dga;
pub mod new_destination;
pub mod new_device;
pub mod new_geo;
pub mod policy;
pub mod reconnaissance;
pub mod threat_intel;
pub mod traffic_change;
pub mod tunneling;

#[cfg(test)]
pub(crate) mod testkit;

/// Read-only context for one event.
pub struct Ctx<'a> {
    pub cfg: &'a EngineConfig,
    pub base: &'a Baselines,
    pub dev: &'a Device,
    pub book: &'a AlertBook,
}

impl Ctx<'_> {
    /// A light finding when a rolled-up alert for this destination exists (another device
    /// raised it): the score counts, no text is built.
    pub fn join(
        &self,
        kind: Kind,
        ev: &Enriched<'_>,
        destination: &str,
        score: f64,
    ) -> Option<Finding> {
        self.book
            .exists(kind, ev.dev, destination)
            .then(|| Finding::join(kind, ev.dev, destination, score))
    }
    /// A cheap repeat finding when this (kind, device, destination) alert is already open.
    pub fn repeat(&self, kind: Kind, ev: &Enriched<'_>, destination: &str) -> Option<Finding> {
        self.book
            .is_open(kind, ev.dev, destination)
            .then(|| Finding::repeat(kind, ev.dev, destination))
    }
}

/// One detector.
pub trait Detector: Send {
    /// The registry name (used by `disabled = [...]` in the config).
    fn name(&self) -> &'static str;
    fn observe(&mut self, ev: &Enriched<'_>, ctx: &Ctx<'_>, out: &mut Vec<Finding>);
    /// Event-time housekeeping, called when event time passes a minute boundary.
    fn tick(&mut self, _now: u32) {}
    /// Entries of per-detector state (for stats).
    fn state_len(&self) -> usize {
        0
    }
}

/// Every detector, in the order they run. Disabled ones are left out.
pub fn registry(cfg: &EngineConfig) -> Vec<Box<dyn Detector>> {
    let all: Vec<Box<dyn Detector>> = vec![
        Box::new(new_device::NewDevice),
        Box::new(new_destination::NewDestination),
        Box::new(new_geo::NewGeo),
        Box::new(traffic_change::TrafficChange::default()),
        Box::new(beaconing::Beaconing::new(&cfg.tuning)),
        Box::new(dga::Dga::new(&cfg.tuning)),
        Box::new(tunneling::Tunneling::new(&cfg.tuning)),
        Box::new(threat_intel::ThreatIntel),
        Box::new(policy::Policy::new(cfg)),
        Box::new(reconnaissance::Reconnaissance::new(&cfg.tuning)),
    ];
    all.into_iter()
        .filter(|d| !cfg.is_disabled(d.name()))
        .collect()
}

/// Hash of a name for detector state keys and counting bitmaps. Seeded but fixed, so that
/// replaying the same events gives the same alerts (determinism beats per-process random
/// keys here: colliding names could only merge two tracks, never slow a map down, because
/// the maps are keyed by these 64-bit values and rehash them).
pub(crate) fn name_hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6a09_e667_f3bc_c908).hash_one(s)
}
