//! The SQLite triage store against real files in temporary directories. The behaviour tests
//! (`common/store_cases.rs`) are shared with the PostgreSQL backend (crates/pgstore).

use dnsight_engine::{Alert, Kind, Severity, Status};
use dnsight_model::Ts;
use dnsight_triage::{
    Act, AlertFilter, Change, NewBlock, Reason, Role, Scope, Sort, SqliteStore, TriageError,
    TriageStore, TRIAGE_FILE,
};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

type Guard = tempfile::TempDir;
type Store = SqliteStore;

/// SQLite keeps any string, NUL included.
const EVIL: &str = "q'uo\"te; DROP TABLE alerts;--\n\r\t\0 ünï©ødé 🦀 \\ %_";

fn store() -> (Guard, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    (dir, s)
}

fn reopen(g: &Guard) -> Store {
    SqliteStore::open(g.path()).unwrap()
}

fn stored_bytes(g: &Guard) -> Vec<u8> {
    let mut v = std::fs::read(g.path().join(TRIAGE_FILE)).unwrap();
    v.extend(std::fs::read(g.path().join(format!("{TRIAGE_FILE}-wal"))).unwrap_or_default());
    v
}

macro_rules! backend_present {
    () => {};
}

include!("common/store_cases.rs");

#[test]
fn a_version_1_file_gains_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join(TRIAGE_FILE)).unwrap();
        // the columns later versions index (v3)
        c.execute_batch(
            "CREATE TABLE alerts (id TEXT PRIMARY KEY, kind, severity, sev_rank, score, status, \
             device, destination, first_seen, last_seen, updated_at); PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    assert!(s.outbox_list(None, 1).unwrap().is_empty());
}
