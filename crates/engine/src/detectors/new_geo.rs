//! New country/ASN (placeholder).

use super::{Ctx, Detector};
use crate::alert::Finding;
use crate::enrich::Enriched;

#[derive(Default)]
pub struct NewGeo;

impl NewGeo {
    #[allow(dead_code)]
    pub fn new(_t: &crate::config::Tuning) -> Self {
        NewGeo
    }
}

impl Detector for NewGeo {
    fn name(&self) -> &'static str {
        "new_geo"
    }
    fn observe(&mut self, _ev: &Enriched<'_>, _ctx: &Ctx<'_>, _out: &mut Vec<Finding>) {}
}
