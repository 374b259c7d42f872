//! dnstap source (stub, to be written)
pub mod proto;
use crate::{EventReader, IngestError, IngestOptions};
use std::io::BufRead;

pub fn file_reader(
    input: Box<dyn BufRead + Send>,
    name: &str,
    opts: &IngestOptions,
) -> Result<Box<dyn EventReader>, IngestError> {
    let _ = (input, opts);
    Err(IngestError::Other(format!(
        "{name}: dnstap reader not implemented yet"
    )))
}
