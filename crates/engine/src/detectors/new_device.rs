//! New device (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct NewDevice;

impl NewDevice {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        NewDevice
    }
}

impl Detector for NewDevice {
    fn name(&self) -> &'static str {
        "new_device"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
