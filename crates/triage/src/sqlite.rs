//! The SQLite backend of [`TriageStore`]: one file, `state_dir/triage.sqlite`.
//!
//! **Schema** (version in `PRAGMA user_version`, currently 6; [`SqliteStore::open`] creates or
//! migrates it inside one `IMMEDIATE` transaction, and refuses a file from a newer dnsight):
//!
//! - `alerts`: one row per alert id with the filterable columns (kind, severity and its rank,
//!   score, status, reason, device, grp, destination, first_seen/last_seen in event-time
//!   microseconds, count, device_count), the summary, the full alert JSON (`body`), the latest
//!   note and `updated_at` (wall seconds). Indexes on status, last_seen, device, destination,
//!   kind.
//! - `alert_devices (alert_id, device)`: the roll-up members, for the device filter.
//! - `audit`: append-only (the store never updates or deletes a line).
//! - `acks`, `blocks` (with the `allow` flag), `tokens` (SHA-256 of the secret only), `meta`
//!   (the RPZ serial).
//! - version 2: the notification outbox; version 3: the query log's `queries` table
//!   ([`crate::querylog`], written by its own batching writer connection); version 4: the
//!   query log's interned clients, time-bucketed indexes and timeline roll-ups.
//! - version 5: `alert_counts (dim, val, n)`, open alerts per severity, kind, device and
//!   destination and every alert per kind, severity and status, kept by triggers on `alerts`
//!   (the dashboard's counts and [`TriageStore::stats`] without GROUP BYs).
//! - version 6: the query log's `count` column (identical transactions of a client within one
//!   second stored as one row; older rows count 1).
//!
//! The SQL is deliberately plain (TEXT/INTEGER/BIGINT columns, `LIMIT/OFFSET`, `substr`,
//! `length`, `INSERT ... ON CONFLICT`), so a PostgreSQL backend can reuse it; the one SQLite
//! idiom is `INTEGER PRIMARY KEY` for the generated ids (PostgreSQL: `BIGSERIAL`).
//! Every value goes in as a bound parameter, never as SQL text.
//!
//! **Durability**: WAL with `synchronous=FULL`. An action is confirmed to the caller only after
//! its transaction committed; with FULL the WAL is fsynced on every commit, so a confirmed
//! action survives `kill -9` *and* a power loss. (WAL with `NORMAL` already survives a killed
//! process, since the commit is in the OS page cache, but may lose the last commits on power
//! loss.) The cost is one fsync per transaction, and every method is one transaction (the
//! pipeline upserts a whole batch of alerts in one), so that is a few fsyncs a second at most.
//!
//! **Concurrency**: WAL lets readers run beside the one writer, and a busy handler (polling every millisecond for ~5 s) makes
//! a second process (`dnsight token create` while `serve` runs) wait for the write lock instead
//! of failing. Writes take the lock up front (`BEGIN IMMEDIATE`), so a read-then-write
//! transaction never fails half way on a lock upgrade. Reads run in a (deferred) transaction
//! too, so a list and its total come from one snapshot.

use crate::{
    AckRule, Act, ActOutcome, AlertFilter, AuditEntry, BlockRule, Change, NewBlock, NotifyEvent,
    OutboxItem, OutboxState, OutboxStats, Reason, Result, Role, Router, Scope, Secs, SessionInfo,
    Sort, StoreStats, StoredAlert, TokenInfo, TriageError, TriageStore, UserInfo, TRIAGE_FILE,
};
use dnsight_engine::{Alert, Kind, Severity, Status};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const SCHEMA_VERSION: i64 = 6;

mod users;
pub(crate) const fn users_schema_v3() -> &'static str {
    users::SCHEMA_V3
}
pub use users::{check_user_name, clip, random_hex, MAX_USER_NAME, SEEN_EVERY, SESSION_PREFIX};
/// Longest note (bytes) on an action, a block or an acknowledgement.
pub const MAX_NOTE: usize = 4096;
/// Longest token name (bytes).
pub const MAX_TOKEN_NAME: usize = 256;
/// Most ids in one filter.
pub const MAX_FILTER_IDS: usize = 10_000;
/// Prefix of every token secret.
pub const TOKEN_PREFIX: &str = "dnsight_";
/// `last_used` is written at most this often per token (seconds).
pub const LAST_USED_EVERY: Secs = 60;

pub const SCHEMA_V1: &str = "
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    sev_rank INTEGER NOT NULL,
    score INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    device TEXT NOT NULL,
    grp TEXT,
    destination TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    count BIGINT NOT NULL,
    device_count INTEGER NOT NULL,
    summary TEXT NOT NULL,
    body TEXT NOT NULL,
    note TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX alerts_status ON alerts (status);
CREATE INDEX alerts_last_seen ON alerts (last_seen);
CREATE INDEX alerts_device ON alerts (device);
CREATE INDEX alerts_destination ON alerts (destination);
CREATE INDEX alerts_kind ON alerts (kind);
CREATE TABLE alert_devices (
    alert_id TEXT NOT NULL,
    device TEXT NOT NULL,
    PRIMARY KEY (alert_id, device)
);
CREATE INDEX alert_devices_device ON alert_devices (device);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    alert_id TEXT,
    scope TEXT,
    until_ts BIGINT,
    note TEXT,
    status_before TEXT,
    status_after TEXT,
    reason TEXT,
    target TEXT
);
CREATE INDEX audit_alert ON audit (alert_id);
CREATE TABLE acks (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    destination TEXT NOT NULL,
    scope TEXT NOT NULL,
    until_ts BIGINT,
    detail TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    alert_id TEXT,
    note TEXT
);
CREATE TABLE blocks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    subdomains INTEGER NOT NULL,
    scope TEXT NOT NULL,
    allow INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    note TEXT,
    alert_id TEXT
);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used BIGINT
);
CREATE INDEX tokens_name ON tokens (name);
CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v BIGINT NOT NULL
);
INSERT INTO meta (k, v) VALUES ('rpz_serial', 1);
";

/// Version 2: the notification outbox.
pub const SCHEMA_V2: &str = "
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    event TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    body TEXT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at BIGINT NOT NULL,
    last_error TEXT,
    sent_at BIGINT,
    digest BIGINT
);
CREATE INDEX outbox_due ON outbox (state, target, next_at);
CREATE INDEX outbox_sent ON outbox (target, sent_at);
CREATE TABLE notify_digests (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    items INTEGER NOT NULL
);
CREATE INDEX notify_digests_target ON notify_digests (target, sent_at);
";

/// The SQLite triage store. See the module doc for schema, durability and concurrency.
pub struct SqliteStore {
    router: Option<std::sync::Arc<dyn Router>>,
    conn: Connection,
    path: PathBuf,
}

impl From<rusqlite::Error> for TriageError {
    fn from(e: rusqlite::Error) -> TriageError {
        TriageError::Db(e.to_string())
    }
}

fn db(msg: impl Into<String>) -> TriageError {
    TriageError::Db(msg.into())
}

fn invalid(msg: impl Into<String>) -> TriageError {
    TriageError::Invalid(msg.into())
}

impl SqliteStore {
    /// Opens (or creates) `state_dir/triage.sqlite`, creating the directory when missing.
    pub fn open(state_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| db(format!("creating {}: {e}", state_dir.display())))?;
        let path = state_dir.join(TRIAGE_FILE);
        let mut conn =
            Connection::open(&path).map_err(|e| db(format!("opening {}: {e}", path.display())))?;
        // polls the lock every millisecond for up to ~5 s, and tells this process's query-log
        // writer to step aside (see `querylog::store_busy`)
        conn.busy_handler(Some(crate::querylog::store_busy))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(db(format!(
                "{} could not switch to WAL ({mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        // reads through a memory map (no system call per page: the dashboard's filters touch
        // thousands of alert rows); address space only, the pages are the OS cache's
        conn.query_row("PRAGMA mmap_size = 1073741824", [], |_| Ok(()))
            .optional()?;
        migrate(&mut conn)?;
        refresh_statistics(&conn)?;
        Ok(SqliteStore {
            conn,
            path,
            router: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Creates `state_dir/triage.sqlite` at an older schema version (`1..=6`), as an older dnsight
/// left it: for the tests of the migrations.
#[doc(hidden)]
pub fn create_at_version(state_dir: &Path, version: i64) -> Result<()> {
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(invalid(format!("no schema version {version}")));
    }
    std::fs::create_dir_all(state_dir)
        .map_err(|e| db(format!("creating {}: {e}", state_dir.display())))?;
    let mut conn = Connection::open(state_dir.join(TRIAGE_FILE))?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    migrate_to(&mut conn, version)
}

fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if v >= target && v <= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // another process may have migrated while we waited for the lock
    let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if v > SCHEMA_VERSION {
        return Err(db(format!(
            "schema version {v} is newer than this dnsight understands ({SCHEMA_VERSION}); upgrade dnsight"
        )));
    }
    let step = |n: i64| v < n && n <= target;
    if step(1) {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if step(2) {
        tx.execute_batch(SCHEMA_V2)?;
    }
    if step(3) {
        tx.execute_batch(users::SCHEMA_V3)?;
        tx.execute_batch(crate::querylog::SCHEMA_V3)?;
    }
    // (v3 holds both the dashboard's users and sessions and the query log)
    if step(4) {
        tx.execute_batch(crate::querylog::SCHEMA_V4)?;
    }
    if step(5) {
        tx.execute_batch(users::SCHEMA_ALERT_COUNTS)?;
    }
    if step(6) {
        tx.execute_batch(crate::querylog::SCHEMA_V6)?;
    }
    tx.pragma_update(None, "user_version", target.max(v))?;
    tx.commit()?;
    Ok(())
}

/// The query planner's statistics of the alert tables (`ANALYZE`), when there are none or the
/// alerts are more than twice or under half as many as when they were taken: without them
/// SQLite guesses that `status IN (...)` is selective and sorts every open alert for the inbox
/// (hundreds of ms at 100,000 open) instead of walking the sort's index. A connection reads the
/// statistics when it opens, so a long-running server uses those of its start.
fn refresh_statistics(conn: &Connection) -> Result<()> {
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0))?;
    let has_stat1: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'sqlite_stat1'",
        [],
        |r| r.get(0),
    )?;
    let then: Option<i64> = if has_stat1 {
        conn.query_row(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = 'alerts' AND idx = 'alerts_status'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|s| s.split(' ').next().and_then(|n| n.parse().ok()))
    } else {
        None
    };
    let stale = match then {
        None => rows > 0,
        Some(t) => rows > t.saturating_mul(2) || rows.saturating_mul(2) < t,
    };
    if stale {
        // an optimisation only: a store busy past the timeout opens without fresh statistics
        let _ = conn.execute_batch("ANALYZE alerts; ANALYZE alert_devices;");
    }
    Ok(())
}

// ---------------------------------------------------------------- validation

pub fn check_note(note: Option<&str>) -> Result<()> {
    match note {
        Some(n) if n.len() > MAX_NOTE => Err(invalid(format!(
            "the note is {} bytes; at most {MAX_NOTE} are allowed",
            n.len()
        ))),
        _ => Ok(()),
    }
}

pub fn check_scope(s: &Scope) -> Result<()> {
    match s {
        Scope::Group(g) if g.is_empty() => Err(invalid("a group scope needs a group name")),
        _ => Ok(()),
    }
}

pub fn check_future(what: &str, t: Option<Secs>, now: Secs) -> Result<()> {
    match t {
        Some(t) if t <= now => Err(invalid(format!("{what} {t} is not in the future"))),
        _ => Ok(()),
    }
}

/// Validates and normalizes a block or allow name into the canonical presentation form every
/// other part of dnsight uses ([`dnsight_model::Name`]): lowercased, one trailing dot stripped,
/// RFC 1035 escapes decoded and re-encoded (`\(`, `\"`, `\;`, `\\`, `\DDD` for bytes outside
/// printable ASCII), at most 255 bytes on the wire, labels of 1..=63 bytes. So the destination of
/// any alert, copied as shown, can be blocked, and the RPZ file stays valid zone syntax whatever
/// bytes the name holds (names are attacker-controlled: they come from queries). The text given
/// must itself be printable ASCII without spaces (a space or a control byte is written `\032`
/// or `\DDD`); a `*` label is refused (say `subdomains` instead).
pub fn normalize_name(name: &str) -> Result<String> {
    let shown: String = name.escape_debug().take(80).collect();
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if let Some(body) = n.strip_suffix('.') {
        // a second trailing dot is an empty label unless it is an escaped dot (`a\.`)
        if body.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 0 {
            return Err(invalid(format!("the name \"{shown}\" has an empty label")));
        }
    }
    if let Some(c) = n.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(invalid(format!(
            "the name \"{shown}\" contains {c:?}; use printable ASCII without spaces (write other bytes as \\DDD)"
        )));
    }
    let parsed = dnsight_model::Name::parse(n).map_err(|e| match e {
        dnsight_model::NameError::NameTooLong => invalid(format!(
            "the name \"{shown}\" is longer than a DNS name's 255 bytes"
        )),
        dnsight_model::NameError::LabelTooLong => invalid(format!(
            "the name \"{shown}\" has a label of more than 63 bytes"
        )),
        dnsight_model::NameError::EmptyLabel => {
            invalid(format!("the name \"{shown}\" has an empty label"))
        }
        other => invalid(format!("the name \"{shown}\": {other}")),
    })?;
    if parsed.is_root() {
        return Err(invalid("the name is empty"));
    }
    if parsed.labels().any(|l| l == "*") {
        return Err(invalid(format!(
            "the name \"{shown}\" has a `*` label; block the parent with subdomains instead"
        )));
    }
    Ok(parsed.as_str().to_string())
}

// ---------------------------------------------------------------- conversions

pub fn sev_rank(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

pub fn is_closed(s: Status) -> bool {
    matches!(s, Status::Acknowledged | Status::Resolved | Status::Blocked)
}

fn parse_status(s: &str) -> rusqlite::Result<Status> {
    Status::parse(s).ok_or_else(|| bad_col(format!("unknown status {s:?}")))
}

fn parse_opt_status(s: Option<String>) -> rusqlite::Result<Option<Status>> {
    s.map(|s| parse_status(&s)).transpose()
}

fn parse_reason(s: Option<String>) -> rusqlite::Result<Option<Reason>> {
    s.map(|s| Reason::parse(&s).ok_or_else(|| bad_col(format!("unknown reason {s:?}"))))
        .transpose()
}

fn parse_scope(s: &str) -> rusqlite::Result<Scope> {
    Scope::parse_label(s).ok_or_else(|| bad_col(format!("unknown scope {s:?}")))
}

fn parse_kind(s: &str) -> rusqlite::Result<Kind> {
    Kind::parse(s).ok_or_else(|| bad_col(format!("unknown kind {s:?}")))
}

fn parse_role(s: &str) -> rusqlite::Result<Role> {
    Role::parse(s).ok_or_else(|| bad_col(format!("unknown role {s:?}")))
}

fn bad_col(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, msg.into())
}

pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of a token secret. The secret is 32 random bytes, so a fast hash is right: there is
/// nothing to brute-force that a slow password hash would protect.
pub fn token_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

const ALERT_COLS: &str = "body, status, reason, note, updated_at";

fn row_alert(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAlert> {
    let body: String = r.get(0)?;
    let mut alert: Alert =
        serde_json::from_str(&body).map_err(|e| bad_col(format!("alert JSON: {e}")))?;
    alert.status = parse_status(&r.get::<_, String>(1)?)?;
    Ok(StoredAlert {
        alert,
        reason: parse_reason(r.get(2)?)?,
        note: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

const AUDIT_COLS: &str = "id, ts, actor, action, alert_id, scope, until_ts, note, status_before, \
                          status_after, reason, target";

fn row_audit(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        ts: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        alert_id: r.get(4)?,
        scope: r.get(5)?,
        until: r.get(6)?,
        note: r.get(7)?,
        status_before: parse_opt_status(r.get(8)?)?,
        status_after: parse_opt_status(r.get(9)?)?,
        reason: parse_reason(r.get(10)?)?,
        target: r.get(11)?,
    })
}

const ACK_COLS: &str =
    "id, kind, destination, scope, until_ts, detail, created_by, created_at, alert_id, note";

fn row_ack(r: &rusqlite::Row<'_>) -> rusqlite::Result<AckRule> {
    let detail: String = r.get(5)?;
    Ok(AckRule {
        id: r.get(0)?,
        kind: parse_kind(&r.get::<_, String>(1)?)?,
        destination: r.get(2)?,
        scope: parse_scope(&r.get::<_, String>(3)?)?,
        until: r.get(4)?,
        detail: serde_json::from_str(&detail).map_err(|e| bad_col(format!("ack detail: {e}")))?,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        alert_id: r.get(8)?,
        note: r.get(9)?,
    })
}

const BLOCK_COLS: &str =
    "id, name, subdomains, scope, allow, created_by, created_at, expires_at, note, alert_id";

fn row_block(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRule> {
    Ok(BlockRule {
        id: r.get(0)?,
        name: r.get(1)?,
        subdomains: r.get::<_, i64>(2)? != 0,
        scope: parse_scope(&r.get::<_, String>(3)?)?,
        allow: r.get::<_, i64>(4)? != 0,
        created_by: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        note: r.get(8)?,
        alert_id: r.get(9)?,
    })
}

const TOKEN_COLS: &str = "id, name, role, created_at, expires_at, revoked_at, last_used";

fn row_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        role: parse_role(&r.get::<_, String>(2)?)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
        last_used: r.get(6)?,
    })
}

/// One audit line to write.
#[derive(Default)]
struct Line<'a> {
    actor: &'a str,
    action: &'a str,
    alert_id: Option<&'a str>,
    scope: Option<String>,
    until: Option<Secs>,
    note: Option<&'a str>,
    before: Option<Status>,
    after: Option<Status>,
    reason: Option<Reason>,
    target: Option<&'a str>,
}

fn audit_line(c: &Connection, now: Secs, l: &Line<'_>) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO audit (ts, actor, action, alert_id, scope, until_ts, note, status_before, \
         status_after, reason, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        now,
        l.actor,
        l.action,
        l.alert_id,
        l.scope,
        l.until,
        l.note,
        l.before.map(Status::as_str),
        l.after.map(Status::as_str),
        l.reason.map(Reason::as_str),
        l.target,
    ])?;
    Ok(())
}

fn bump_serial(c: &Connection) -> Result<u32> {
    let cur = read_serial(c)?;
    let next = if cur == u32::MAX { 1 } else { cur + 1 };
    c.execute(
        "UPDATE meta SET v = ? WHERE k = 'rpz_serial'",
        params![i64::from(next)],
    )?;
    Ok(next)
}

fn read_serial(c: &Connection) -> Result<u32> {
    let v: Option<i64> = c
        .query_row("SELECT v FROM meta WHERE k = 'rpz_serial'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let v = v.ok_or_else(|| db("the rpz serial is missing"))?;
    u32::try_from(v).map_err(|_| db(format!("the rpz serial {v} is out of range")))
}

fn insert_block(c: &Connection, b: &NewBlock, name: &str, actor: &str, now: Secs) -> Result<i64> {
    c.execute(
        "INSERT INTO blocks (name, subdomains, scope, allow, created_by, created_at, expires_at, \
         note, alert_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            name,
            i64::from(b.subdomains),
            b.scope.label(),
            i64::from(b.allow),
            actor,
            now,
            b.expires_at,
            b.note,
            b.alert_id,
        ],
    )?;
    Ok(c.last_insert_rowid())
}

fn get_block(c: &Connection, id: i64) -> Result<Option<BlockRule>> {
    Ok(c.query_row(
        &format!("SELECT {BLOCK_COLS} FROM blocks WHERE id = ?"),
        [id],
        row_block,
    )
    .optional()?)
}

fn get_token(c: &Connection, id: i64) -> Result<Option<TokenInfo>> {
    Ok(c.query_row(
        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?"),
        [id],
        row_token,
    )
    .optional()?)
}

/// The evidence fields an acknowledgement keeps (country / ASN / policy rule / name).
pub fn ack_detail(evidence: &serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(o) = evidence.as_object() {
        for k in ["country", "asn", "rule", "name"] {
            if let Some(v) = o.get(k) {
                if !v.is_null() {
                    m.insert(k.to_string(), v.clone());
                }
            }
        }
    }
    serde_json::Value::Object(m)
}

// ---------------------------------------------------------------- filters

/// WHERE clause and its parameters for a filter.
fn where_clause(f: &AlertFilter) -> Result<(String, Vec<Value>)> {
    let mut w: Vec<String> = Vec::new();
    let mut p: Vec<Value> = Vec::new();
    fn list(w: &mut Vec<String>, p: &mut Vec<Value>, col: &str, vals: Vec<String>) {
        let marks = vec!["?"; vals.len()].join(", ");
        w.push(format!("{col} IN ({marks})"));
        p.extend(vals.into_iter().map(Value::Text));
    }
    if !f.ids.is_empty() {
        if f.ids.len() > MAX_FILTER_IDS {
            return Err(invalid(format!(
                "{} ids in one filter; at most {MAX_FILTER_IDS}",
                f.ids.len()
            )));
        }
        let mut ids = f.ids.clone();
        ids.sort();
        ids.dedup();
        list(&mut w, &mut p, "id", ids);
    }
    if !f.status.is_empty() {
        let v = f.status.iter().map(|s| s.as_str().to_string()).collect();
        list(&mut w, &mut p, "status", v);
    }
    if !f.kind.is_empty() {
        let v = f.kind.iter().map(|k| k.as_str().to_string()).collect();
        list(&mut w, &mut p, "kind", v);
    }
    if let Some(s) = f.min_severity {
        w.push("sev_rank >= ?".into());
        p.push(Value::Integer(sev_rank(s)));
    }
    if let Some(d) = &f.device {
        // the engine writes addresses in their canonical form
        let d = d
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|_| d.clone());
        // a union, not an OR: both halves use their index
        w.push(
            "id IN (SELECT id FROM alerts WHERE device = ? \
             UNION SELECT alert_id FROM alert_devices WHERE device = ?)"
                .into(),
        );
        p.push(Value::Text(d.clone()));
        p.push(Value::Text(d));
    }
    if let Some(g) = &f.group {
        w.push("grp = ?".into());
        p.push(Value::Text(g.clone()));
    }
    if let Some(d) = &f.destination {
        let d = d.to_ascii_lowercase();
        let d = d.strip_suffix('.').unwrap_or(&d).to_string();
        if let Some(suffix) = d.strip_prefix("*.") {
            // the suffix itself, or anything ending in ".suffix" (portable substr/length, exact
            // and case-sensitive, unlike LIKE in SQLite)
            let dotted = format!(".{suffix}");
            let n = dotted.chars().count() as i64;
            w.push(
                "(destination = ? OR (length(destination) > ? AND \
                 substr(destination, length(destination) - ? + 1) = ?))"
                    .into(),
            );
            p.push(Value::Text(suffix.to_string()));
            p.push(Value::Integer(n));
            p.push(Value::Integer(n));
            p.push(Value::Text(dotted));
        } else {
            w.push("destination = ?".into());
            p.push(Value::Text(d));
        }
    }
    if let Some(s) = f.since {
        w.push("last_seen >= ?".into());
        p.push(Value::Integer(s.saturating_mul(1_000_000)));
    }
    if let Some(u) = f.until {
        w.push("first_seen < ?".into());
        p.push(Value::Integer(u.saturating_mul(1_000_000)));
    }
    let clause = if w.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", w.join(" AND "))
    };
    Ok((clause, p))
}

pub fn order_by(s: Sort) -> &'static str {
    match s {
        Sort::Severity => " ORDER BY score DESC, last_seen DESC, id ASC",
        Sort::LastSeen => " ORDER BY last_seen DESC, id ASC",
        Sort::FirstSeen => " ORDER BY first_seen DESC, id ASC",
        Sort::Count => " ORDER BY count DESC, id ASC",
    }
}

// ---------------------------------------------------------------- outbox

const OUTBOX_COLS: &str = "id, target, event, body, actor, note, created_at, state, attempts, \
     next_at, last_error, sent_at, digest";

fn row_outbox(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxItem> {
    let ev: String = r.get(2)?;
    let body: String = r.get(3)?;
    let st: String = r.get(7)?;
    Ok(OutboxItem {
        id: r.get(0)?,
        target: r.get(1)?,
        event: NotifyEvent::parse(&ev).ok_or_else(|| bad_col(format!("unknown event {ev:?}")))?,
        alert: serde_json::from_str(&body).map_err(|e| bad_col(format!("outbox body: {e}")))?,
        actor: r.get(4)?,
        note: r.get(5)?,
        created_at: r.get(6)?,
        state: OutboxState::parse(&st).ok_or_else(|| bad_col(format!("unknown state {st:?}")))?,
        attempts: r.get::<_, i64>(8)?.clamp(0, i64::from(u32::MAX)) as u32,
        next_at: r.get(9)?,
        last_error: r.get(10)?,
        sent_at: r.get(11)?,
        digest: r.get(12)?,
    })
}

/// Queues one outbox row per target the router names for this event (inside the caller's
/// transaction).
fn queue(
    c: &Connection,
    router: Option<&dyn Router>,
    alert: &Alert,
    event: NotifyEvent,
    actor: &str,
    note: Option<&str>,
    now: Secs,
) -> Result<()> {
    let Some(router) = router else {
        return Ok(());
    };
    let targets = router.route(alert, event);
    if targets.is_empty() {
        return Ok(());
    }
    let body = serde_json::to_string(alert).map_err(|e| db(e.to_string()))?;
    let mut ins = c.prepare_cached(
        "INSERT INTO outbox (target, event, alert_id, body, actor, note, created_at, state, \
         attempts, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
    )?;
    for t in targets {
        ins.execute(params![
            t,
            event.as_str(),
            alert.id,
            body,
            actor,
            note,
            now,
            now
        ])?;
    }
    Ok(())
}

pub fn id_list(ids: &[i64]) -> String {
    let mut s = String::from("(");
    for (i, _) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s.push(')');
    s
}

/// What an engine upsert does to a stored alert: `old` is the stored (status, severity rank,
/// device count), None for a new alert. Returns (the status to store, what changed, whether the
/// stored reason stays, the closed status it reopened from). Shared by every backend.
pub fn upsert_decision(
    old: Option<(Status, i64, i64)>,
    a: &Alert,
) -> (Status, Change, bool, Option<Status>) {
    let rank = sev_rank(a.severity);
    match old {
        None => {
            let st = if a.status == Status::Flagged {
                Status::Flagged
            } else {
                Status::Open
            };
            (st, Change::New, false, None)
        }
        Some((st, old_rank, old_devs)) => {
            if is_closed(st) && a.status.is_open() {
                let after = if a.status == Status::Flagged {
                    Status::Flagged
                } else {
                    Status::Reopened
                };
                (after, Change::Reopened, false, Some(st))
            } else {
                let st = if a.status == Status::Flagged && st.is_open() {
                    Status::Flagged
                } else {
                    st
                };
                let change = if rank > old_rank {
                    Change::Escalated
                } else if i64::from(a.device_count) > old_devs {
                    Change::Grew
                } else {
                    Change::Updated
                };
                (st, change, true, None)
            }
        }
    }
}

/// The notification an upsert's change is worth (`old_devs`: the stored device count, 0 when
/// new). A roll-up growing to 2, 4, 8, ... devices is news, each member not.
pub fn change_event(change: Change, old_devs: i64, a: &Alert) -> Option<NotifyEvent> {
    match change {
        Change::New => Some(NotifyEvent::New),
        Change::Escalated => Some(NotifyEvent::Escalated),
        Change::Reopened => Some(NotifyEvent::Reopened),
        Change::Grew => {
            let old_devs = old_devs.max(1) as u64;
            let new_devs = u64::from(a.device_count);
            (new_devs.ilog2() > old_devs.ilog2()).then_some(NotifyEvent::Grew)
        }
        Change::Updated => None,
    }
}

/// A bound parameter of a generated WHERE clause ([`filter_sql`]).
#[derive(Clone, Debug, PartialEq)]
pub enum SqlParam {
    Int(i64),
    Text(String),
}

/// The WHERE clause (with `?` placeholders, in order) and its parameters for an alert filter,
/// in portable SQL: every backend filters alike.
pub fn filter_sql(f: &AlertFilter) -> Result<(String, Vec<SqlParam>)> {
    let (w, p) = where_clause(f)?;
    let p = p
        .into_iter()
        .map(|v| match v {
            Value::Integer(i) => Ok(SqlParam::Int(i)),
            Value::Text(t) => Ok(SqlParam::Text(t)),
            other => Err(db(format!("unexpected filter parameter {other:?}"))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((w, p))
}

// ---------------------------------------------------------------- the store

impl TriageStore for SqliteStore {
    fn upsert_alerts(&mut self, alerts: &[Alert], now: Secs) -> Result<Vec<Change>> {
        let router = self.router.clone();
        let tx = self.write_tx()?;
        let mut out = Vec::with_capacity(alerts.len());
        {
            let mut sel = tx.prepare_cached(
                "SELECT status, sev_rank, device_count, reason FROM alerts WHERE id = ?",
            )?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO alerts (id, kind, severity, sev_rank, score, status, reason, device, \
                 grp, destination, first_seen, last_seen, count, device_count, summary, body, \
                 note, updated_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
                 NULL, ?)",
            )?;
            let mut upd = tx.prepare_cached(
                "UPDATE alerts SET kind = ?, severity = ?, sev_rank = ?, score = ?, status = ?, \
                 reason = ?, device = ?, grp = ?, destination = ?, first_seen = ?, last_seen = ?, \
                 count = ?, device_count = ?, summary = ?, body = ?, updated_at = ? WHERE id = ?",
            )?;
            let mut member = tx.prepare_cached(
                "INSERT INTO alert_devices (alert_id, device) VALUES (?, ?) \
                 ON CONFLICT (alert_id, device) DO NOTHING",
            )?;
            for a in alerts {
                let old: Option<(String, i64, i64, Option<String>)> = sel
                    .query_row([&a.id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()?;
                let rank = sev_rank(a.severity);
                let (status, change, keep_reason, reopened_from) = {
                    let o = match &old {
                        Some((st, r, d, _)) => Some((parse_status(st)?, *r, *d)),
                        None => None,
                    };
                    upsert_decision(o, a)
                };
                let mut copy = a.clone();
                copy.status = status;
                if !copy.own_score.is_finite() {
                    copy.own_score = 0.0;
                }
                let body = serde_json::to_string(&copy)
                    .map_err(|e| db(format!("alert {} to JSON: {e}", a.id)))?;
                let first = a.first_seen.micros();
                let last = a.last_seen.micros();
                let count = to_i64(a.count);
                let devs = i64::from(a.device_count);
                let devices_changed = match &old {
                    None => true,
                    Some((_, _, old_devs, _)) => *old_devs != devs,
                };
                if old.is_none() {
                    ins.execute(params![
                        a.id,
                        a.kind.as_str(),
                        a.severity.as_str(),
                        rank,
                        i64::from(a.score),
                        status.as_str(),
                        a.device,
                        a.group,
                        a.destination,
                        first,
                        last,
                        count,
                        devs,
                        a.summary,
                        body,
                        now,
                    ])?;
                } else {
                    // the reason stays unless the alert reopened
                    let reason = if keep_reason {
                        old.as_ref().and_then(|o| o.3.clone())
                    } else {
                        None
                    };
                    upd.execute(params![
                        a.kind.as_str(),
                        a.severity.as_str(),
                        rank,
                        i64::from(a.score),
                        status.as_str(),
                        reason,
                        a.device,
                        a.group,
                        a.destination,
                        first,
                        last,
                        count,
                        devs,
                        a.summary,
                        body,
                        now,
                        a.id,
                    ])?;
                }
                if devices_changed {
                    for d in &a.devices {
                        member.execute(params![a.id, d])?;
                    }
                }
                let event = change_event(change, old.as_ref().map_or(0, |o| o.2), a);
                if let Some(ev) = event {
                    queue(&tx, router.as_deref(), &copy, ev, "system", None, now)?;
                }
                if let Some(before) = reopened_from {
                    audit_line(
                        &tx,
                        now,
                        &Line {
                            actor: "system",
                            action: "reopen",
                            alert_id: Some(&a.id),
                            note: Some("fired again"),
                            before: Some(before),
                            after: Some(status),
                            ..Line::default()
                        },
                    )?;
                }
                out.push(change);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn get_alert(&self, id: &str) -> Result<Option<StoredAlert>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?"))?
            .query_row([id], row_alert)
            .optional()?)
    }

    fn list_alerts(&self, f: &AlertFilter) -> Result<(Vec<StoredAlert>, u64)> {
        let (w, p) = where_clause(f)?;
        let tx = self.conn.unchecked_transaction()?;
        let total: i64 = tx.query_row(
            &format!("SELECT COUNT(*) FROM alerts{w}"),
            params_from_iter(p.iter()),
            |r| r.get(0),
        )?;
        let limit = f.limit.map(i64::from).unwrap_or(i64::MAX);
        let mut all = p;
        all.push(Value::Integer(limit));
        all.push(Value::Integer(to_i64(f.offset)));
        // the page's ids first (sorted and skipped without carrying the bodies), then the rows
        let rows = tx
            .prepare(&format!(
                "SELECT {ALERT_COLS} FROM alerts WHERE id IN \
                 (SELECT id FROM alerts{w}{o} LIMIT ? OFFSET ?){o}",
                o = order_by(f.sort)
            ))?
            .query_map(params_from_iter(all.iter()), row_alert)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.finish()?;
        Ok((rows, total.max(0) as u64))
    }

    fn alert_ids(&self, f: &AlertFilter) -> Result<Vec<String>> {
        let (w, p) = where_clause(f)?;
        let ids = self
            .conn
            .prepare(&format!("SELECT id FROM alerts{w}{}", order_by(f.sort)))?
            .query_map(params_from_iter(p.iter()), |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }

    fn act(
        &mut self,
        alert_id: &str,
        act: &Act,
        actor: &str,
        note: Option<&str>,
        now: Secs,
    ) -> Result<ActOutcome> {
        check_note(note)?;
        let router = self.router.clone();
        let tx = self.write_tx()?;
        let cur = tx
            .prepare_cached(&format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?"))?
            .query_row([alert_id], row_alert)
            .optional()?
            .ok_or_else(|| {
                TriageError::NotFound(format!("no alert with id \"{}\"", alert_id.escape_debug()))
            })?;
        let before = cur.alert.status;
        let mut reason = cur.reason;
        let mut ack = None;
        let mut block = None;
        let mut ended_acks = Vec::new();
        let mut line = Line {
            actor,
            alert_id: Some(alert_id),
            note,
            before: Some(before),
            ..Line::default()
        };
        let after = match act {
            Act::Ack { scope, until } => {
                check_scope(scope)?;
                check_future("the acknowledgement's end", *until, now)?;
                let detail = ack_detail(&cur.alert.evidence);
                tx.execute(
                    "INSERT INTO acks (kind, destination, scope, until_ts, detail, created_by, \
                     created_at, alert_id, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        cur.alert.kind.as_str(),
                        cur.alert.destination,
                        scope.label(),
                        until,
                        detail.to_string(),
                        actor,
                        now,
                        alert_id,
                        note,
                    ],
                )?;
                ack = Some(AckRule {
                    id: tx.last_insert_rowid(),
                    kind: cur.alert.kind,
                    destination: cur.alert.destination.clone(),
                    scope: scope.clone(),
                    until: *until,
                    detail,
                    created_by: actor.to_string(),
                    created_at: now,
                    alert_id: Some(alert_id.to_string()),
                    note: note.map(str::to_string),
                });
                line.action = "ack";
                line.scope = Some(scope.label());
                line.until = *until;
                Status::Acknowledged
            }
            Act::Flag => {
                line.action = "flag";
                Status::Flagged
            }
            Act::Block {
                scope,
                name,
                subdomains,
                expires_at,
            } => {
                check_scope(scope)?;
                check_future("the block's expiry", *expires_at, now)?;
                let name = normalize_name(name)?;
                let nb = NewBlock {
                    name: name.clone(),
                    subdomains: *subdomains,
                    scope: scope.clone(),
                    allow: false,
                    expires_at: *expires_at,
                    note: note.map(str::to_string),
                    alert_id: Some(alert_id.to_string()),
                };
                let id = insert_block(&tx, &nb, &name, actor, now)?;
                bump_serial(&tx)?;
                block = get_block(&tx, id)?;
                line.action = "block";
                line.scope = Some(scope.label());
                line.until = *expires_at;
                Status::Blocked
            }
            Act::Resolve { reason: r } => {
                reason = Some(*r);
                line.action = "resolve";
                line.reason = Some(*r);
                Status::Resolved
            }
            Act::Reopen => {
                reason = None;
                line.action = "reopen";
                if before == Status::Acknowledged {
                    // not normal after all: the acks that covered it end with the reopen (else a
                    // restart would re-apply them and close the alert again)
                    let a = &cur.alert;
                    let covering: Vec<AckRule> = tx
                        .prepare_cached(&format!(
                            "SELECT {ACK_COLS} FROM acks WHERE kind = ? AND destination = ? \
                             AND (until_ts IS NULL OR until_ts > ?) ORDER BY id"
                        ))?
                        .query_map(params![a.kind.as_str(), a.destination, now], row_ack)?
                        .collect::<rusqlite::Result<Vec<_>>>()?
                        .into_iter()
                        .filter(|k| {
                            let ip = a.device.parse::<std::net::IpAddr>().ok();
                            a.devices
                                .iter()
                                .filter_map(|d| d.parse().ok())
                                .chain(ip)
                                .any(|ip| k.scope.covers(ip, a.group.as_deref()))
                        })
                        .collect();
                    for k in &covering {
                        tx.execute("DELETE FROM acks WHERE id = ?", [k.id])?;
                    }
                    ended_acks = covering;
                }
                Status::Reopened
            }
            Act::Note => {
                if note.is_none_or(|n| n.is_empty()) {
                    return Err(invalid("a note action needs a note"));
                }
                line.action = "note";
                before
            }
        };
        line.after = Some(after);
        let target = block.as_ref().map(|b| b.name.clone());
        line.target = target.as_deref();
        // the status lives in its column and in the JSON copy
        let mut copy = cur.alert.clone();
        copy.status = after;
        let body = serde_json::to_string(&copy).map_err(|e| db(e.to_string()))?;
        tx.execute(
            "UPDATE alerts SET status = ?, reason = ?, body = ?, note = COALESCE(?, note), \
             updated_at = ? WHERE id = ?",
            params![
                after.as_str(),
                reason.map(Reason::as_str),
                body,
                note,
                now,
                alert_id
            ],
        )?;
        audit_line(&tx, now, &line)?;
        if let Some(ev) = NotifyEvent::of_status(before, after) {
            queue(&tx, router.as_deref(), &copy, ev, actor, note, now)?;
        }
        tx.commit()?;
        Ok(ActOutcome {
            alert_id: alert_id.to_string(),
            before,
            after,
            ack,
            block,
            ended_acks,
        })
    }

    fn history(&self, alert_id: &str) -> Result<Vec<AuditEntry>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLS} FROM audit WHERE alert_id = ? ORDER BY id ASC"
            ))?
            .query_map([alert_id], row_audit)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLS} FROM audit ORDER BY id DESC LIMIT ?"
            ))?
            .query_map([i64::from(limit)], row_audit)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn audit_after(&self, after_id: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLS} FROM audit WHERE id > ? ORDER BY id ASC LIMIT ?"
            ))?
            .query_map([after_id, i64::from(limit)], row_audit)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn active_acks(&self, now: Secs) -> Result<Vec<AckRule>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {ACK_COLS} FROM acks WHERE until_ts IS NULL OR until_ts > ? ORDER BY id"
            ))?
            .query_map([now], row_ack)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn add_block(&mut self, b: &NewBlock, actor: &str, now: Secs) -> Result<BlockRule> {
        let name = normalize_name(&b.name)?;
        check_scope(&b.scope)?;
        check_note(b.note.as_deref())?;
        check_future("the expiry", b.expires_at, now)?;
        let tx = self.write_tx()?;
        let id = insert_block(&tx, b, &name, actor, now)?;
        bump_serial(&tx)?;
        audit_line(
            &tx,
            now,
            &Line {
                actor,
                action: if b.allow { "allow" } else { "block" },
                alert_id: b.alert_id.as_deref(),
                scope: Some(b.scope.label()),
                until: b.expires_at,
                note: b.note.as_deref(),
                target: Some(&name),
                ..Line::default()
            },
        )?;
        let rule = get_block(&tx, id)?.ok_or_else(|| db("the new block vanished"))?;
        tx.commit()?;
        Ok(rule)
    }

    fn remove_block(&mut self, id: i64, actor: &str, now: Secs) -> Result<BlockRule> {
        let tx = self.write_tx()?;
        let rule = get_block(&tx, id)?
            .ok_or_else(|| TriageError::NotFound(format!("no block or allow with id {id}")))?;
        tx.execute("DELETE FROM blocks WHERE id = ?", [id])?;
        bump_serial(&tx)?;
        audit_line(
            &tx,
            now,
            &Line {
                actor,
                action: "unblock",
                alert_id: rule.alert_id.as_deref(),
                scope: Some(rule.scope.label()),
                until: rule.expires_at,
                target: Some(&rule.name),
                ..Line::default()
            },
        )?;
        tx.commit()?;
        Ok(rule)
    }

    fn active_blocks(&self, now: Secs) -> Result<Vec<BlockRule>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {BLOCK_COLS} FROM blocks WHERE expires_at IS NULL OR expires_at > ? \
                 ORDER BY id"
            ))?
            .query_map([now], row_block)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn expire(&mut self, now: Secs) -> Result<usize> {
        let tx = self.write_tx()?;
        let blocks = tx
            .prepare(&format!(
                "SELECT {BLOCK_COLS} FROM blocks WHERE expires_at IS NOT NULL AND expires_at <= ? \
                 ORDER BY id"
            ))?
            .query_map([now], row_block)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let acks = tx
            .prepare(&format!(
                "SELECT {ACK_COLS} FROM acks WHERE until_ts IS NOT NULL AND until_ts <= ? \
                 ORDER BY id"
            ))?
            .query_map([now], row_ack)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if blocks.is_empty() && acks.is_empty() {
            // nothing to write: do not take an fsync for nothing
            tx.finish()?;
            return Ok(0);
        }
        for b in &blocks {
            tx.execute("DELETE FROM blocks WHERE id = ?", [b.id])?;
            audit_line(
                &tx,
                now,
                &Line {
                    actor: "system",
                    action: "expire",
                    alert_id: b.alert_id.as_deref(),
                    scope: Some(b.scope.label()),
                    until: b.expires_at,
                    note: Some(if b.allow { "allow" } else { "block" }),
                    target: Some(&b.name),
                    ..Line::default()
                },
            )?;
        }
        for a in &acks {
            tx.execute("DELETE FROM acks WHERE id = ?", [a.id])?;
            audit_line(
                &tx,
                now,
                &Line {
                    actor: "system",
                    action: "expire",
                    alert_id: a.alert_id.as_deref(),
                    scope: Some(a.scope.label()),
                    until: a.until,
                    note: Some("acknowledgement"),
                    target: Some(&a.destination),
                    ..Line::default()
                },
            )?;
        }
        if !blocks.is_empty() {
            bump_serial(&tx)?;
        }
        tx.commit()?;
        Ok(blocks.len())
    }

    fn rpz_serial(&self) -> Result<u32> {
        read_serial(&self.conn)
    }

    fn create_token(
        &mut self,
        name: &str,
        role: Role,
        expires_at: Option<Secs>,
        actor: &str,
        now: Secs,
    ) -> Result<(TokenInfo, String)> {
        if name.trim().is_empty() {
            return Err(invalid("a token needs a name"));
        }
        if name.len() > MAX_TOKEN_NAME {
            return Err(invalid(format!(
                "the token name is {} bytes; at most {MAX_TOKEN_NAME} are allowed",
                name.len()
            )));
        }
        check_future("the token's expiry", expires_at, now)?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| db(format!("no randomness: {e}")))?;
        let tx = self.write_tx()?;
        let taken: Option<i64> = tx
            .query_row(
                "SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if taken.is_some() {
            return Err(invalid(format!(
                "a token named \"{}\" exists; revoke it first or pick another name",
                name.escape_debug()
            )));
        }
        tx.execute(
            "INSERT INTO tokens (name, role, hash, created_at, expires_at) VALUES (?, ?, '', ?, ?)",
            params![name, role.as_str(), now, expires_at],
        )?;
        let id = tx.last_insert_rowid();
        let secret = format!("{TOKEN_PREFIX}{id}_{}", hex(&raw));
        tx.execute(
            "UPDATE tokens SET hash = ? WHERE id = ?",
            params![token_hash(&secret), id],
        )?;
        audit_line(
            &tx,
            now,
            &Line {
                actor,
                action: "token_create",
                scope: Some(role.as_str().to_string()),
                until: expires_at,
                target: Some(name),
                ..Line::default()
            },
        )?;
        let info = get_token(&tx, id)?.ok_or_else(|| db("the new token vanished"))?;
        tx.commit()?;
        Ok((info, secret))
    }

    fn verify_token(&self, secret: &str, now: Secs) -> Result<Option<TokenInfo>> {
        use subtle::ConstantTimeEq;
        let Some(rest) = secret.strip_prefix(TOKEN_PREFIX) else {
            return Ok(None);
        };
        let Some((id, body)) = rest.split_once('_') else {
            return Ok(None);
        };
        if body.len() != 64 || id.is_empty() || id.len() > 19 {
            return Ok(None);
        }
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        let row: Option<(String, TokenInfo)> = self
            .conn
            .prepare_cached(&format!(
                "SELECT hash, {TOKEN_COLS} FROM tokens WHERE id = ?"
            ))?
            .query_row([id], |r| {
                let hash: String = r.get(0)?;
                let info = TokenInfo {
                    id: r.get(1)?,
                    name: r.get(2)?,
                    role: parse_role(&r.get::<_, String>(3)?)?,
                    created_at: r.get(4)?,
                    expires_at: r.get(5)?,
                    revoked_at: r.get(6)?,
                    last_used: r.get(7)?,
                };
                Ok((hash, info))
            })
            .optional()?;
        let Some((hash, mut info)) = row else {
            return Ok(None);
        };
        let given = token_hash(secret);
        if !bool::from(given.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        if info.revoked_at.is_some() || info.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        if info.last_used.is_none_or(|t| now - t >= LAST_USED_EVERY) {
            // best effort: a busy database must not turn a good token away
            if self
                .conn
                .prepare_cached("UPDATE tokens SET last_used = ? WHERE id = ?")?
                .execute(params![now, id])
                .is_ok()
            {
                info.last_used = Some(now);
            }
        }
        Ok(Some(info))
    }

    fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY id"))?
            .query_map([], row_token)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn revoke_token(&mut self, name_or_id: &str, actor: &str, now: Secs) -> Result<TokenInfo> {
        let tx = self.write_tx()?;
        let mut id: Option<i64> = tx
            .query_row(
                "SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL",
                [name_or_id],
                |r| r.get(0),
            )
            .optional()?;
        if id.is_none() {
            if let Ok(n) = name_or_id.parse::<i64>() {
                id = tx
                    .query_row(
                        "SELECT id FROM tokens WHERE id = ? AND revoked_at IS NULL",
                        [n],
                        |r| r.get(0),
                    )
                    .optional()?;
            }
        }
        let id = id.ok_or_else(|| {
            TriageError::NotFound(format!(
                "no active token named or numbered \"{}\"",
                name_or_id.escape_debug()
            ))
        })?;
        tx.execute(
            "UPDATE tokens SET revoked_at = ? WHERE id = ?",
            params![now, id],
        )?;
        let info = get_token(&tx, id)?.ok_or_else(|| db("the token vanished"))?;
        audit_line(
            &tx,
            now,
            &Line {
                actor,
                action: "token_revoke",
                scope: Some(info.role.as_str().to_string()),
                target: Some(&info.name),
                ..Line::default()
            },
        )?;
        tx.commit()?;
        Ok(info)
    }

    fn set_router(&mut self, router: Option<std::sync::Arc<dyn Router>>) {
        self.router = router;
    }

    fn outbox_due(&self, target: &str, now: Secs, limit: u32) -> Result<Vec<OutboxItem>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' AND target = ? \
                 AND next_at <= ? ORDER BY id LIMIT ?"
            ))?
            .query_map(params![target, now, i64::from(limit)], row_outbox)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn outbox_sent(&mut self, ids: &[i64], now: Secs) -> Result<()> {
        let tx = self.write_tx()?;
        for chunk in ids.chunks(500) {
            let mut p: Vec<Value> = vec![Value::Integer(now)];
            p.extend(chunk.iter().map(|&i| Value::Integer(i)));
            tx.execute(
                &format!(
                    "UPDATE outbox SET state = 'sent', sent_at = ?, last_error = NULL \
                     WHERE id IN {}",
                    id_list(chunk)
                ),
                params_from_iter(p.iter()),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn outbox_digest_sent(&mut self, target: &str, ids: &[i64], now: Secs) -> Result<i64> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO notify_digests (target, sent_at, items) VALUES (?, ?, ?)",
            params![target, now, ids.len() as i64],
        )?;
        let d = tx.last_insert_rowid();
        for chunk in ids.chunks(500) {
            let mut p: Vec<Value> = vec![Value::Integer(now), Value::Integer(d)];
            p.extend(chunk.iter().map(|&i| Value::Integer(i)));
            tx.execute(
                &format!(
                    "UPDATE outbox SET state = 'sent', sent_at = ?, digest = ?, last_error = NULL \
                     WHERE id IN {}",
                    id_list(chunk)
                ),
                params_from_iter(p.iter()),
            )?;
        }
        tx.commit()?;
        Ok(d)
    }

    fn outbox_retry(
        &mut self,
        ids: &[i64],
        error: &str,
        next_at: Secs,
        max_attempts: u32,
    ) -> Result<u64> {
        let error: String = error.chars().take(1000).collect();
        let tx = self.write_tx()?;
        let mut failed = 0;
        for chunk in ids.chunks(500) {
            let mut p: Vec<Value> = vec![Value::Text(error.clone()), Value::Integer(next_at)];
            p.extend(chunk.iter().map(|&i| Value::Integer(i)));
            tx.execute(
                &format!(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ? \
                     WHERE state = 'pending' AND id IN {}",
                    id_list(chunk)
                ),
                params_from_iter(p.iter()),
            )?;
            let mut p: Vec<Value> = vec![Value::Integer(i64::from(max_attempts))];
            p.extend(chunk.iter().map(|&i| Value::Integer(i)));
            failed += tx.execute(
                &format!(
                    "UPDATE outbox SET state = 'failed' WHERE state = 'pending' \
                     AND attempts >= ? AND id IN {}",
                    id_list(chunk)
                ),
                params_from_iter(p.iter()),
            )? as u64;
        }
        tx.commit()?;
        Ok(failed)
    }

    fn outbox_sent_since(&self, target: &str, since: Secs) -> Result<(u64, u64)> {
        let single: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE target = ? AND sent_at >= ? AND digest IS NULL",
            params![target, since],
            |r| r.get(0),
        )?;
        let digests: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM notify_digests WHERE target = ? AND sent_at >= ?",
            params![target, since],
            |r| r.get(0),
        )?;
        Ok((single.max(0) as u64, digests.max(0) as u64))
    }

    fn outbox_last_digest(&self, target: &str) -> Result<Option<Secs>> {
        Ok(self.conn.query_row(
            "SELECT MAX(sent_at) FROM notify_digests WHERE target = ?",
            [target],
            |r| r.get(0),
        )?)
    }

    fn outbox_list(&self, state: Option<OutboxState>, limit: u32) -> Result<Vec<OutboxItem>> {
        let mut q = format!("SELECT {OUTBOX_COLS} FROM outbox");
        let mut p: Vec<Value> = Vec::new();
        if let Some(st) = state {
            q.push_str(" WHERE state = ?");
            p.push(Value::Text(st.as_str().into()));
        }
        q.push_str(" ORDER BY id DESC LIMIT ?");
        p.push(Value::Integer(i64::from(limit)));
        Ok(self
            .conn
            .prepare(&q)?
            .query_map(params_from_iter(p.iter()), row_outbox)?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn stats(&self, now: Secs) -> Result<StoreStats> {
        let tx = self.conn.unchecked_transaction()?;
        let mut st = StoreStats::default();
        for s in Status::ALL {
            st.alerts_by_status.insert(s.as_str().to_string(), 0);
        }
        // from the counts the triggers keep (schema step 5), not a GROUP BY over every alert
        for (kind, severity, status, count) in users::counts_by_kind_severity_status(&tx)? {
            *st.alerts_by_status.entry(status.clone()).or_insert(0) += count;
            st.alerts_by.push(crate::AlertCount {
                kind,
                severity,
                status,
                count,
            });
        }
        let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<u64> {
            let n: i64 = tx.query_row(sql, p, |r| r.get(0))?;
            Ok(n.max(0) as u64)
        };
        st.acks_active = count(
            "SELECT COUNT(*) FROM acks WHERE until_ts IS NULL OR until_ts > ?",
            &[&now],
        )?;
        st.blocks_active = count(
            "SELECT COUNT(*) FROM blocks WHERE allow = 0 AND (expires_at IS NULL OR expires_at > ?)",
            &[&now],
        )?;
        st.allows_active = count(
            "SELECT COUNT(*) FROM blocks WHERE allow = 1 AND (expires_at IS NULL OR expires_at > ?)",
            &[&now],
        )?;
        st.audit_entries = count("SELECT COUNT(*) FROM audit", &[])?;
        st.outbox = OutboxStats {
            pending: count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'", &[])?,
            sent: count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'", &[])?,
            failed: count("SELECT COUNT(*) FROM outbox WHERE state = 'failed'", &[])?,
            digests: count("SELECT COUNT(*) FROM notify_digests", &[])?,
        };
        st.tokens_active = count(
            "SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL AND \
             (expires_at IS NULL OR expires_at > ?)",
            &[&now],
        )?;
        tx.finish()?;
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        st.file_bytes = size(&self.path) + size(Path::new(&wal));
        Ok(st)
    }
    // ---- dashboard users and sessions (see `users`)

    fn upsert_user(
        &mut self,
        name: &str,
        role: Role,
        password_hash: &str,
        replace: bool,
        actor: &str,
        now: Secs,
    ) -> Result<UserInfo> {
        let tx = self.write_tx()?;
        let u = users::upsert_user(&tx, name, role, password_hash, replace, actor, now)?;
        tx.commit()?;
        Ok(u)
    }

    fn user_password(&self, name: &str) -> Result<Option<(UserInfo, String)>> {
        users::user_password(&self.conn, name)
    }

    fn list_users(&self) -> Result<Vec<UserInfo>> {
        users::list_users(&self.conn)
    }

    fn remove_user(&mut self, name: &str, actor: &str, now: Secs) -> Result<UserInfo> {
        let tx = self.write_tx()?;
        let u = users::remove_user(&tx, name, actor, now)?;
        tx.commit()?;
        Ok(u)
    }

    fn create_session(
        &mut self,
        user_id: i64,
        ttl: Secs,
        client: Option<&str>,
        agent: Option<&str>,
        now: Secs,
    ) -> Result<(SessionInfo, String)> {
        let tx = self.write_tx()?;
        let r = users::create_session(&tx, user_id, ttl, client, agent, now)?;
        tx.commit()?;
        Ok(r)
    }

    fn verify_session(&self, secret: &str, ttl: Secs, now: Secs) -> Result<Option<SessionInfo>> {
        users::verify_session(&self.conn, secret, ttl, now)
    }

    fn list_sessions(&self, now: Secs) -> Result<Vec<SessionInfo>> {
        users::list_sessions(&self.conn, now)
    }

    fn revoke_session(&mut self, id: i64, actor: &str, now: Secs) -> Result<SessionInfo> {
        let tx = self.write_tx()?;
        let s = users::revoke_session(&tx, id, actor, now)?;
        tx.commit()?;
        Ok(s)
    }

    fn alerts_changed(&self) -> Result<(u64, Secs)> {
        users::alerts_changed(&self.conn)
    }

    fn alert_overview(&self, since: Secs, top: u32) -> Result<crate::AlertOverview> {
        users::alert_overview(&self.conn, since, top)
    }

    fn search_queries(&self, f: &crate::QueryFilter) -> Result<crate::QueryPage> {
        let tx = self.conn.unchecked_transaction()?;
        let page = crate::querylog::search(&tx, self.path.parent(), f)?;
        drop(tx);
        Ok(page)
    }

    fn querylog_disk(&self) -> Result<crate::QueryLogDisk> {
        crate::querylog::disk(&self.conn, &self.path)
    }

    fn query_timeline(
        &self,
        device: Option<&str>,
        since_us: i64,
        until_us: i64,
        step_us: i64,
    ) -> Result<Vec<crate::TimelineBucket>> {
        let tx = self.conn.unchecked_transaction()?;
        let t = crate::querylog::timeline(
            &tx,
            self.path.parent(),
            device,
            since_us,
            until_us,
            step_us,
        )?;
        drop(tx);
        Ok(t)
    }
}
