//! Threat intel (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct ThreatIntel;

impl ThreatIntel {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        ThreatIntel
    }
}

impl Detector for ThreatIntel {
    fn name(&self) -> &'static str {
        "threat_intel"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
