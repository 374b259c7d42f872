//! pcap source (stub, to be written)
use crate::{EventReader, IngestError, IngestOptions};
use std::io::BufRead;

pub fn reader(input: Box<dyn BufRead + Send>, name: &str, opts: &IngestOptions) -> Result<Box<dyn EventReader>, IngestError> {
    let _ = (input, opts);
    Err(IngestError::Other(format!("{name}: pcap reader not implemented yet")))
}
