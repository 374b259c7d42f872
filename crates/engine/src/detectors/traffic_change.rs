//! Traffic change (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct TrafficChange;

impl TrafficChange {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        TrafficChange
    }
}

impl Detector for TrafficChange {
    fn name(&self) -> &'static str {
        "traffic_change"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
