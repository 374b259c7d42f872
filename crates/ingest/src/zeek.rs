//! zeek source (stub, to be written)
use crate::{EventReader, IngestError, IngestOptions};
use std::io::BufRead;

pub fn tsv_reader(input: Box<dyn BufRead + Send>, name: &str, opts: &IngestOptions) -> Result<Box<dyn EventReader>, IngestError> {
    let _ = (input, opts);
    Err(IngestError::Other(format!("{name}: zeek reader not implemented yet")))
}

pub fn json_reader(input: Box<dyn BufRead + Send>, name: &str, opts: &IngestOptions) -> Result<Box<dyn EventReader>, IngestError> {
    let _ = (input, opts);
    Err(IngestError::Other(format!("{name}: zeek reader not implemented yet")))
}
