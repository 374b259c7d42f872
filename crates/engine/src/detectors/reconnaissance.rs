//! Reconnaissance (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct Reconnaissance;

impl Reconnaissance {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        Reconnaissance
    }
}

impl Detector for Reconnaissance {
    fn name(&self) -> &'static str {
        "reconnaissance"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
