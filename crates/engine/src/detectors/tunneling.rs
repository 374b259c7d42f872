//! Tunneling (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct Tunneling;

impl Tunneling {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        Tunneling
    }
}

impl Detector for Tunneling {
    fn name(&self) -> &'static str {
        "tunneling"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
