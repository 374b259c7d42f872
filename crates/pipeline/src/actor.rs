//! The actor (to be written).
pub struct Handle;
pub struct Pipeline;
pub struct PipelineConfig;
pub struct Outputs;
pub struct Producer;
pub fn spawn() {}
