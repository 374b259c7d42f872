//! DGA (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct Dga;

impl Dga {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        Dga
    }
}

impl Detector for Dga {
    fn name(&self) -> &'static str {
        "dga"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
