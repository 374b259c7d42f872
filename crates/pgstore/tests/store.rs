//! The PostgreSQL triage store against a real PostgreSQL (started by the test in a temporary
//! directory on loopback, see `dnsight_pgstore::testing`): the same behaviour tests as the
//! SQLite backend (crates/triage/tests/common/store_cases.rs), plus what is PostgreSQL's own.

use dnsight_engine::{Alert, Kind, Severity, Status};
use dnsight_model::Ts;
use dnsight_pgstore::testing::TestPg;
use dnsight_pgstore::PgStore;
use dnsight_triage::{
    Act, AlertFilter, Change, NewBlock, Reason, Role, Scope, Sort, TriageError, TriageStore,
};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

/// The database's URL.
struct Guard(String);
type Store = PgStore;

/// PostgreSQL text cannot hold NUL (see `nul_is_a_clear_error`); everything else is kept.
const EVIL: &str = "q'uo\"te; DROP TABLE alerts;--\n\r\t ünï©ødé 🦀 \\ %_ $1 ? $$";

fn pg() -> &'static TestPg {
    TestPg::shared().expect("PostgreSQL")
}

/// Skips the test (loudly, once per test) when PostgreSQL is absent and not required.
macro_rules! backend_present {
    () => {
        if TestPg::shared().is_none() {
            return;
        }
    };
}

fn store() -> (Guard, Store) {
    let url = pg().fresh_db();
    let s = PgStore::open(&url).unwrap();
    (Guard(url), s)
}

fn reopen(g: &Guard) -> Store {
    PgStore::open(&g.0).unwrap()
}

fn stored_bytes(_g: &Guard) -> Vec<u8> {
    // every file of the server: data, WAL, logs
    fn walk(p: &std::path::Path, out: &mut Vec<u8>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if let Ok(b) = std::fs::read(&p) {
                    out.extend(b);
                }
            }
        }
    }
    let mut v = Vec::new();
    walk(pg().dir(), &mut v);
    v
}

include!("../../triage/tests/common/store_cases.rs");

#[test]
fn nul_is_a_clear_error() {
    backend_present!();
    let (_g, mut s) = store();
    let a = alert(
        "n",
        Kind::Policy,
        Severity::High,
        "10.0.0.1",
        "x.example",
        1000,
    );
    s.upsert_alerts(&[a], NOW).unwrap();
    let e = s
        .act("n", &Act::Flag, "ana", Some("a\0b"), NOW)
        .unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    // nothing was written, and the store goes on
    assert_eq!(
        s.get_alert("n").unwrap().unwrap().alert.status,
        Status::Open
    );
    s.act("n", &Act::Flag, "ana", Some("fine"), NOW).unwrap();
}

#[test]
fn schema_is_versioned_and_two_opens_migrate_once() {
    backend_present!();
    let url = pg().fresh_db();
    let h: Vec<_> = (0..4)
        .map(|_| {
            let u = url.clone();
            std::thread::spawn(move || PgStore::open(&u).map(|_| ()))
        })
        .collect();
    for t in h {
        t.join().unwrap().unwrap();
    }
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let v: i64 = c
        .query_one("SELECT v FROM meta WHERE k = 'schema_version'", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, dnsight_pgstore::SCHEMA_VERSION);
    c.execute("UPDATE meta SET v = 99 WHERE k = 'schema_version'", &[])
        .unwrap();
    let e = PgStore::open(&url)
        .err()
        .expect("a newer schema is refused");
    assert!(e.to_string().contains("newer"), "{e}");
}

#[test]
fn the_query_log_is_answered_from_the_local_file_or_refused() {
    backend_present!();
    let (_g, s) = store();
    let e = s.querylog_disk().unwrap_err();
    assert!(matches!(e, TriageError::Invalid(_)), "{e:?}");
    let dir = tempfile::tempdir().unwrap();
    let local = dnsight_triage::SqliteStore::open(dir.path()).unwrap();
    let s = s.with_querylog(local);
    assert_eq!(s.querylog_disk().unwrap().rows, 0);
}
