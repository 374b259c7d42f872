//! Beaconing (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct Beaconing;

impl Beaconing {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        Beaconing
    }
}

impl Detector for Beaconing {
    fn name(&self) -> &'static str {
        "beaconing"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
