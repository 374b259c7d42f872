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
             device, destination, first_seen, last_seen, updated_at); PRAGMA user_version = 1; \
             INSERT INTO alerts VALUES ('a', 'dga', 'high', 3, 50, 'open', '10.0.0.1', 'x.example', 0, 0, 0), \
             ('b', 'dga', 'low', 1, 20, 'resolved', '10.0.0.2', 'y.example', 0, 0, 0);",
        )
        .unwrap();
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    assert!(s.outbox_list(None, 1).unwrap().is_empty());
    // step 5 counts the alerts the file already held
    assert_eq!(s.alerts_changed().unwrap().0, 1);
    let o = s.alert_overview(0, 10).unwrap();
    assert_eq!(o.top_destinations, vec![("x.example".to_string(), 1)]);
}

#[test]
fn planner_statistics_follow_the_alerts() {
    let (d, mut s) = store();
    let batch: Vec<Alert> = (0..50)
        .map(|i| {
            alert(
                &format!("s{i}"),
                Kind::Dga,
                Severity::High,
                "10.0.0.1",
                "x.example",
                NOW,
            )
        })
        .collect();
    s.upsert_alerts(&batch, NOW).unwrap();
    drop(s);
    // the next open analyses the alert tables (none had statistics)
    drop(SqliteStore::open(d.path()).unwrap());
    let c = rusqlite::Connection::open(d.path().join(TRIAGE_FILE)).unwrap();
    let stat: String = c
        .query_row(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'alerts_status'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stat.starts_with("50 "), "{stat}");
    // the counts the triggers kept survive the reopen
    let o = SqliteStore::open(d.path())
        .unwrap()
        .alert_overview(NOW - 86_400, 10)
        .unwrap();
    assert_eq!(o.top_devices, vec![("10.0.0.1".to_string(), 50)]);
}
