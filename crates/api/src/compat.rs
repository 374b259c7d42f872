//! Calls into parts of dnsight-triage that are still being written (swapped for the real ones
//! when they land).

use dnsight_triage::{BlockRule, TriageError, TriageStore};
use std::path::Path;

pub fn open_store(_state_dir: &Path) -> Result<Box<dyn TriageStore>, TriageError> {
    Err(TriageError::Db(
        "the SQLite triage store is not built yet".into(),
    ))
}

pub fn render_rpz(zone: &str, serial: u32, rules: &[BlockRule]) -> String {
    use std::fmt::Write;
    let z = zone.trim_end_matches('.');
    let mut o = format!(
        "$TTL 60\n@ IN SOA localhost. hostmaster.{z}. {serial} 3600 600 86400 60\n@ IN NS localhost.\n"
    );
    for r in rules {
        let target = if r.allow { "rpz-passthru." } else { "." };
        let _ = writeln!(o, "{} CNAME {target}", r.name);
        if r.subdomains {
            let _ = writeln!(o, "*.{} CNAME {target}", r.name);
        }
    }
    o
}
