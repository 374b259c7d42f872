//! New destination (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct NewDestination;

impl NewDestination {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        NewDestination
    }
}

impl Detector for NewDestination {
    fn name(&self) -> &'static str {
        "new_destination"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
