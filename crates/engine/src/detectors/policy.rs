//! Policy (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct Policy;

impl Policy {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::EngineConfig) -> Self {
        Policy
    }
}

impl Detector for Policy {
    fn name(&self) -> &'static str {
        "policy"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
