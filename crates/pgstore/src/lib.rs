//! dnsight-pgstore: the triage store on PostgreSQL.
//!
//! [`PgStore`] implements the same [`TriageStore`] trait as the embedded [`SqliteStore`], with
//! the same schema: the SQLite migration steps ([`dnsight_triage::backend::SCHEMA_STEPS`]) are
//! applied with two type translations (generated ids `INTEGER PRIMARY KEY` → `BIGSERIAL PRIMARY
//! KEY`, every other integer → `BIGINT`), and the queries are the SQLite backend's portable SQL
//! with `$n` placeholders. Validation, filters, hashing and the upsert decision are the shared
//! ones of [`dnsight_triage::backend`], so both backends behave alike (the same behaviour tests
//! run on both).
//!
//! **Schema version** is kept in `meta` (`k = 'schema_version'`); [`PgStore::open`] creates or
//! migrates the schema in one transaction under an advisory lock (DDL is transactional in
//! PostgreSQL), so two processes starting together migrate once, and refuses a database from a
//! newer dnsight.
//!
//! **Writes** take one transaction-scoped advisory lock ([`WRITE_LOCK`]) first: every writer of
//! one database is serialized, as SQLite's `BEGIN IMMEDIATE` does, so a read-then-write
//! transaction (the "name taken" check of a token, the RPZ serial, an action on an alert) never
//! interleaves with another. Reads that return a list with its total run in one `REPEATABLE
//! READ` snapshot. Durability is PostgreSQL's (`synchronous_commit` on by default): an action is
//! answered only after its commit.
//!
//! **The query log** (`search_queries`, `querylog_disk`, `query_timeline`) is a per-event table
//! and stays in the local SQLite file (`state_dir/triage.sqlite`, written by
//! [`dnsight_triage::QueryLog`]). A store opened with [`PgStore::with_querylog`] answers those
//! from that file; without one it answers them with [`TriageError::Invalid`] naming the reason.
//!
//! PostgreSQL `text` cannot hold NUL (U+0000): a value containing one (a note, a token name)
//! is refused with a clear error and nothing of that call is written. Names from DNS never
//! contain one (they are kept escaped, printable ASCII).
//!
//! The connection is plain TCP or a unix socket (no TLS: no C library is needed; run it on
//! loopback or a trusted network). A connection lost (PostgreSQL restarted) is re-opened at the
//! next call.

use dnsight_engine::{Alert, Kind, Status};
use dnsight_triage::backend::{self as be, SqlParam};
use dnsight_triage::{
    AckRule, Act, ActOutcome, AlertCount, AlertFilter, AlertOverview, AuditEntry, BlockRule,
    Change, NewBlock, NotifyEvent, OutboxItem, OutboxState, OutboxStats, QueryFilter, QueryLogDisk,
    QueryPage, Reason, Result, Role, Router, Scope, Secs, SessionInfo, SqliteStore, StoreStats,
    StoredAlert, TimelineBucket, TokenInfo, TriageError, TriageStore, UserInfo,
};
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls, Row, Statement};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub mod testing;

/// A parsed PostgreSQL connection string (URL or key=value form).
pub use postgres::Config;

/// The schema version this build writes (the SQLite backend's steps 1–3, without the query log).
pub const SCHEMA_VERSION: i64 = 3;
/// Key of the advisory lock every write transaction holds (`dnsight` in ASCII).
pub const WRITE_LOCK: i64 = 0x0064_6e73_6967_6874;
const MIGRATE_LOCK: i64 = WRITE_LOCK + 1;

fn db(msg: impl Into<String>) -> TriageError {
    TriageError::Db(msg.into())
}

fn invalid(msg: impl Into<String>) -> TriageError {
    TriageError::Invalid(msg.into())
}

fn pg_err(e: postgres::Error) -> TriageError {
    use std::error::Error;
    // the server's message when there is one (not just "db error"), or the cause of a
    // client-side failure (a parameter that could not be written)
    match (e.as_db_error(), e.source()) {
        (Some(d), _) => db(format!("postgresql: {}", d.message())),
        (None, Some(c)) => db(format!("postgresql: {e}: {c}")),
        (None, None) => db(format!("postgresql: {e}")),
    }
}

trait OrDb<T> {
    fn or_db(self) -> Result<T>;
}

impl<T> OrDb<T> for std::result::Result<T, postgres::Error> {
    fn or_db(self) -> Result<T> {
        self.map_err(pg_err)
    }
}

/// One bound value. Its integer is written as whatever integer type the server inferred for
/// the placeholder (so `length(x) > $1` and `bigint_col = $1` both take an `i64`).
#[derive(Clone, Debug)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Val {
        Val::Int(i64::from(v))
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Int(i64::from(v))
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::Text(v.clone())
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}
impl From<SqlParam> for Val {
    fn from(v: SqlParam) -> Val {
        match v {
            SqlParam::Int(i) => Val::Int(i),
            SqlParam::Text(t) => Val::Text(t),
        }
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer for a {ty} parameter").into()),
            },
            Val::Text(s) if s.contains('\0') => {
                Err("PostgreSQL text cannot hold a NUL character (U+0000)".into())
            }
            Val::Text(s) => s.as_str().to_sql(ty, out),
        }
    }
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL | Type::TEXT | Type::VARCHAR
        ) || <&str as ToSql>::accepts(ty)
    }
    to_sql_checked!();
}

macro_rules! vals {
    ($($v:expr),* $(,)?) => { [$(Val::from($v)),*] };
}

/// `?` placeholders (the SQLite backend's spelling) → `$1`, `$2`, ...
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// One open transaction and the connection's statement cache.
struct Tx<'a> {
    tx: postgres::Transaction<'a>,
    cache: &'a mut HashMap<String, Statement>,
}

impl Tx<'_> {
    fn stmt(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(&numbered(sql)).or_db()?;
        if self.cache.len() > 512 {
            self.cache.clear();
        }
        self.cache.insert(sql.to_string(), s.clone());
        Ok(s)
    }
    fn q(&mut self, sql: &str, p: &[Val]) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = p.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.tx.query(&s, &refs).or_db()
    }
    fn one(&mut self, sql: &str, p: &[Val]) -> Result<Option<Row>> {
        Ok(self.q(sql, p)?.into_iter().next())
    }
    fn exec(&mut self, sql: &str, p: &[Val]) -> Result<u64> {
        let s = self.stmt(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = p.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.tx.execute(&s, &refs).or_db()
    }
    fn count(&mut self, sql: &str, p: &[Val]) -> Result<u64> {
        let r = self
            .one(sql, p)?
            .ok_or_else(|| db("a count returned no row"))?;
        Ok(get::<i64>(&r, 0)?.max(0) as u64)
    }
}

fn get<'a, T: postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    r.try_get(i).or_db()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// A consistent snapshot, read only.
    Read,
    /// A read that may write a little on the side (last use of a token or session).
    ReadWrite,
    /// Serialized with every other writer.
    Write,
}

struct Conn {
    client: Client,
    cache: HashMap<String, Statement>,
}

/// The PostgreSQL triage store. See the crate doc.
pub struct PgStore {
    config: postgres::Config,
    conn: Mutex<Option<Conn>>,
    router: Option<Arc<dyn Router>>,
    querylog: Option<SqliteStore>,
    shown: String,
}

/// Where a URL points, without its password (for messages).
pub fn describe(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(c) => {
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(s) => s.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres://{}{}:{port}/{}",
                c.get_user().map(|u| format!("{u}@")).unwrap_or_default(),
                hosts.join(","),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "an unparsable PostgreSQL URL".to_string(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db` or the key=value form) and
    /// creates or migrates the schema.
    pub fn open(url: &str) -> Result<PgStore> {
        let shown = describe(url);
        let config: postgres::Config = url
            .parse()
            .map_err(|e| invalid(format!("the PostgreSQL URL {shown}: {e}")))?;
        let s = PgStore {
            config,
            conn: Mutex::new(None),
            router: None,
            querylog: None,
            shown,
        };
        s.migrate()?;
        Ok(s)
    }

    /// Answers the query-log calls from this local SQLite store (the one its
    /// [`dnsight_triage::QueryLog`] writes).
    pub fn with_querylog(mut self, local: SqliteStore) -> PgStore {
        self.querylog = Some(local);
        self
    }

    /// The server this store talks to (without password).
    pub fn describe(&self) -> &str {
        &self.shown
    }

    fn connect(&self) -> Result<Conn> {
        let client = self.config.connect(NoTls).map_err(|e| {
            db(format!(
                "connecting to {}: {}",
                self.shown,
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string())
            ))
        })?;
        Ok(Conn {
            client,
            cache: HashMap::new(),
        })
    }

    fn run<T>(&self, mode: Mode, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref().is_none_or(|c| c.client.is_closed()) {
            *g = Some(self.connect()?);
        }
        let c = g.as_mut().expect("connected above");
        let tx = match mode {
            Mode::Read => c
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start(),
            Mode::ReadWrite | Mode::Write => c.client.transaction(),
        };
        // a lost connection is seen as closed at the next call and re-opened there
        let tx = tx.or_db()?;
        let mut t = Tx {
            tx,
            cache: &mut c.cache,
        };
        if mode == Mode::Write {
            t.tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .or_db()?;
        }
        let out = f(&mut t)?;
        t.tx.commit().or_db()?;
        Ok(out)
    }

    fn migrate(&self) -> Result<()> {
        self.run(Mode::ReadWrite, |t| {
            t.tx
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
                .or_db()?;
            t.tx
                .batch_execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BIGINT NOT NULL)")
                .or_db()?;
            let v: i64 = match t.one("SELECT v FROM meta WHERE k = 'schema_version'", &[])? {
                Some(r) => get(&r, 0)?,
                None => 0,
            };
            if v > SCHEMA_VERSION {
                return Err(db(format!(
                    "schema version {v} is newer than this dnsight understands ({SCHEMA_VERSION}); upgrade dnsight"
                )));
            }
            for (i, step) in be::SCHEMA_STEPS.iter().enumerate() {
                let n = i as i64 + 1;
                if v < n {
                    let sql = translate(step);
                    t.tx.batch_execute(&sql).or_db().map_err(|e| {
                        db(format!("migrating the PostgreSQL schema to version {n}: {e}"))
                    })?;
                }
            }
            t.exec(
                "INSERT INTO meta (k, v) VALUES ('schema_version', ?) \
                 ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                &vals![SCHEMA_VERSION],
            )?;
            Ok(())
        })
    }

    fn no_querylog(&self) -> TriageError {
        invalid(
            "the query log is kept in the local SQLite file; this PostgreSQL store was opened without it",
        )
    }
}

/// One SQLite migration step in PostgreSQL's spelling.
pub fn translate(step: &str) -> String {
    step.replace("CREATE TABLE meta (", "CREATE TABLE IF NOT EXISTS meta (")
        .replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace(
            "INSERT INTO meta (k, v) VALUES ('rpz_serial', 1);",
            "INSERT INTO meta (k, v) VALUES ('rpz_serial', 1) ON CONFLICT (k) DO NOTHING;",
        )
}

// ---------------------------------------------------------------- rows

fn parse_status(s: &str) -> Result<Status> {
    Status::parse(s).ok_or_else(|| db(format!("unknown status {s:?}")))
}
fn parse_opt_status(s: Option<String>) -> Result<Option<Status>> {
    s.map(|s| parse_status(&s)).transpose()
}
fn parse_reason(s: Option<String>) -> Result<Option<Reason>> {
    s.map(|s| Reason::parse(&s).ok_or_else(|| db(format!("unknown reason {s:?}"))))
        .transpose()
}
fn parse_scope(s: &str) -> Result<Scope> {
    Scope::parse_label(s).ok_or_else(|| db(format!("unknown scope {s:?}")))
}
fn parse_kind(s: &str) -> Result<Kind> {
    Kind::parse(s).ok_or_else(|| db(format!("unknown kind {s:?}")))
}
fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| db(format!("unknown role {s:?}")))
}

const ALERT_COLS: &str = "body, status, reason, note, updated_at";

fn row_alert(r: &Row) -> Result<StoredAlert> {
    let body: String = get(r, 0)?;
    let mut alert: Alert =
        serde_json::from_str(&body).map_err(|e| db(format!("alert JSON: {e}")))?;
    alert.status = parse_status(&get::<String>(r, 1)?)?;
    Ok(StoredAlert {
        alert,
        reason: parse_reason(get(r, 2)?)?,
        note: get(r, 3)?,
        updated_at: get(r, 4)?,
    })
}

const AUDIT_COLS: &str = "id, ts, actor, action, alert_id, scope, until_ts, note, status_before, \
                          status_after, reason, target";

fn row_audit(r: &Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: get(r, 0)?,
        ts: get(r, 1)?,
        actor: get(r, 2)?,
        action: get(r, 3)?,
        alert_id: get(r, 4)?,
        scope: get(r, 5)?,
        until: get(r, 6)?,
        note: get(r, 7)?,
        status_before: parse_opt_status(get(r, 8)?)?,
        status_after: parse_opt_status(get(r, 9)?)?,
        reason: parse_reason(get(r, 10)?)?,
        target: get(r, 11)?,
    })
}

const ACK_COLS: &str =
    "id, kind, destination, scope, until_ts, detail, created_by, created_at, alert_id, note";

fn row_ack(r: &Row) -> Result<AckRule> {
    let detail: String = get(r, 5)?;
    Ok(AckRule {
        id: get(r, 0)?,
        kind: parse_kind(&get::<String>(r, 1)?)?,
        destination: get(r, 2)?,
        scope: parse_scope(&get::<String>(r, 3)?)?,
        until: get(r, 4)?,
        detail: serde_json::from_str(&detail).map_err(|e| db(format!("ack detail: {e}")))?,
        created_by: get(r, 6)?,
        created_at: get(r, 7)?,
        alert_id: get(r, 8)?,
        note: get(r, 9)?,
    })
}

const BLOCK_COLS: &str =
    "id, name, subdomains, scope, allow, created_by, created_at, expires_at, note, alert_id";

fn row_block(r: &Row) -> Result<BlockRule> {
    Ok(BlockRule {
        id: get(r, 0)?,
        name: get(r, 1)?,
        subdomains: get::<i64>(r, 2)? != 0,
        scope: parse_scope(&get::<String>(r, 3)?)?,
        allow: get::<i64>(r, 4)? != 0,
        created_by: get(r, 5)?,
        created_at: get(r, 6)?,
        expires_at: get(r, 7)?,
        note: get(r, 8)?,
        alert_id: get(r, 9)?,
    })
}

const TOKEN_COLS: &str = "id, name, role, created_at, expires_at, revoked_at, last_used";

fn row_token_at(r: &Row, o: usize) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: get(r, o)?,
        name: get(r, o + 1)?,
        role: parse_role(&get::<String>(r, o + 2)?)?,
        created_at: get(r, o + 3)?,
        expires_at: get(r, o + 4)?,
        revoked_at: get(r, o + 5)?,
        last_used: get(r, o + 6)?,
    })
}

fn row_token(r: &Row) -> Result<TokenInfo> {
    row_token_at(r, 0)
}

const OUTBOX_COLS: &str = "id, target, event, body, actor, note, created_at, state, attempts, \
     next_at, last_error, sent_at, digest";

fn row_outbox(r: &Row) -> Result<OutboxItem> {
    let ev: String = get(r, 2)?;
    let body: String = get(r, 3)?;
    let st: String = get(r, 7)?;
    Ok(OutboxItem {
        id: get(r, 0)?,
        target: get(r, 1)?,
        event: NotifyEvent::parse(&ev).ok_or_else(|| db(format!("unknown event {ev:?}")))?,
        alert: serde_json::from_str(&body).map_err(|e| db(format!("outbox body: {e}")))?,
        actor: get(r, 4)?,
        note: get(r, 5)?,
        created_at: get(r, 6)?,
        state: OutboxState::parse(&st).ok_or_else(|| db(format!("unknown state {st:?}")))?,
        attempts: get::<i64>(r, 8)?.clamp(0, i64::from(u32::MAX)) as u32,
        next_at: get(r, 9)?,
        last_error: get(r, 10)?,
        sent_at: get(r, 11)?,
        digest: get(r, 12)?,
    })
}

const USER_COLS: &str = "id, name, role, created_at, last_login";

fn row_user(r: &Row) -> Result<UserInfo> {
    Ok(UserInfo {
        id: get(r, 0)?,
        name: get(r, 1)?,
        role: parse_role(&get::<String>(r, 2)?)?,
        created_at: get(r, 3)?,
        last_login: get(r, 4)?,
    })
}

const SESSION_COLS: &str = "s.id, s.user_id, u.name, u.role, s.csrf, s.created_at, s.last_seen, \
                            s.expires_at, s.client, s.agent";

fn row_session(r: &Row) -> Result<SessionInfo> {
    Ok(SessionInfo {
        id: get(r, 0)?,
        user_id: get(r, 1)?,
        user: get(r, 2)?,
        role: parse_role(&get::<String>(r, 3)?)?,
        csrf: get(r, 4)?,
        created_at: get(r, 5)?,
        last_seen: get(r, 6)?,
        expires_at: get(r, 7)?,
        client: get(r, 8)?,
        agent: get(r, 9)?,
    })
}

fn rows<T>(v: Vec<Row>, f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    v.iter().map(f).collect()
}

// ---------------------------------------------------------------- shared writes

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

fn audit_line(t: &mut Tx<'_>, now: Secs, l: &Line<'_>) -> Result<()> {
    t.exec(
        "INSERT INTO audit (ts, actor, action, alert_id, scope, until_ts, note, status_before, \
         status_after, reason, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &vals![
            now,
            l.actor,
            l.action,
            l.alert_id,
            l.scope.clone(),
            l.until,
            l.note,
            l.before.map(Status::as_str),
            l.after.map(Status::as_str),
            l.reason.map(Reason::as_str),
            l.target,
        ],
    )?;
    Ok(())
}

fn bump_serial(t: &mut Tx<'_>) -> Result<u32> {
    let r = t
        .one(
            "UPDATE meta SET v = CASE WHEN v >= 4294967295 THEN 1 ELSE v + 1 END \
             WHERE k = 'rpz_serial' RETURNING v",
            &[],
        )?
        .ok_or_else(|| db("the rpz serial is missing"))?;
    let v: i64 = get(&r, 0)?;
    u32::try_from(v).map_err(|_| db(format!("the rpz serial {v} is out of range")))
}

fn read_serial(t: &mut Tx<'_>) -> Result<u32> {
    let r = t
        .one("SELECT v FROM meta WHERE k = 'rpz_serial'", &[])?
        .ok_or_else(|| db("the rpz serial is missing"))?;
    let v: i64 = get(&r, 0)?;
    u32::try_from(v).map_err(|_| db(format!("the rpz serial {v} is out of range")))
}

fn insert_block(t: &mut Tx<'_>, b: &NewBlock, name: &str, actor: &str, now: Secs) -> Result<i64> {
    let r = t
        .one(
            "INSERT INTO blocks (name, subdomains, scope, allow, created_by, created_at, \
             expires_at, note, alert_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &vals![
                name,
                b.subdomains,
                b.scope.label(),
                b.allow,
                actor,
                now,
                b.expires_at,
                b.note.clone(),
                b.alert_id.clone(),
            ],
        )?
        .ok_or_else(|| db("INSERT ... RETURNING gave no row"))?;
    get(&r, 0)
}

fn get_block(t: &mut Tx<'_>, id: i64) -> Result<Option<BlockRule>> {
    t.one(
        &format!("SELECT {BLOCK_COLS} FROM blocks WHERE id = ?"),
        &vals![id],
    )?
    .map(|r| row_block(&r))
    .transpose()
}

fn get_token(t: &mut Tx<'_>, id: i64) -> Result<Option<TokenInfo>> {
    t.one(
        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?"),
        &vals![id],
    )?
    .map(|r| row_token(&r))
    .transpose()
}

/// Queues one outbox row per target the router names for this event (inside the caller's
/// transaction).
fn queue(
    t: &mut Tx<'_>,
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
    for target in targets {
        t.exec(
            "INSERT INTO outbox (target, event, alert_id, body, actor, note, created_at, state, \
             attempts, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
            &vals![
                target,
                event.as_str(),
                &alert.id,
                &body,
                actor,
                note,
                now,
                now
            ],
        )?;
    }
    Ok(())
}

fn filter(f: &AlertFilter) -> Result<(String, Vec<Val>)> {
    let (w, p) = be::filter_sql(f)?;
    Ok((w, p.into_iter().map(Val::from).collect()))
}

fn ids_params(first: &[Val], ids: &[i64]) -> Vec<Val> {
    let mut p = first.to_vec();
    p.extend(ids.iter().map(|&i| Val::Int(i)));
    p
}

// ---------------------------------------------------------------- the store

impl TriageStore for PgStore {
    fn upsert_alerts(&mut self, alerts: &[Alert], now: Secs) -> Result<Vec<Change>> {
        let router = self.router.clone();
        self.run(Mode::Write, |t| {
            let mut out = Vec::with_capacity(alerts.len());
            for a in alerts {
                let old: Option<(String, i64, i64, Option<String>)> = match t.one(
                    "SELECT status, sev_rank, device_count, reason FROM alerts WHERE id = ?",
                    &vals![&a.id],
                )? {
                    Some(r) => Some((get(&r, 0)?, get(&r, 1)?, get(&r, 2)?, get(&r, 3)?)),
                    None => None,
                };
                let o = match &old {
                    Some((st, r, d, _)) => Some((parse_status(st)?, *r, *d)),
                    None => None,
                };
                let (status, change, keep_reason, reopened_from) = be::upsert_decision(o, a);
                let rank = be::sev_rank(a.severity);
                let mut copy = a.clone();
                copy.status = status;
                if !copy.own_score.is_finite() {
                    copy.own_score = 0.0;
                }
                let body = serde_json::to_string(&copy)
                    .map_err(|e| db(format!("alert {} to JSON: {e}", a.id)))?;
                let first = a.first_seen.micros();
                let last = a.last_seen.micros();
                let count = be::to_i64(a.count);
                let devs = i64::from(a.device_count);
                let devices_changed = old.as_ref().is_none_or(|o| o.2 != devs);
                if old.is_none() {
                    t.exec(
                        "INSERT INTO alerts (id, kind, severity, sev_rank, score, status, reason, \
                         device, grp, destination, first_seen, last_seen, count, device_count, \
                         summary, body, note, updated_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, \
                         ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                        &vals![
                            &a.id,
                            a.kind.as_str(),
                            a.severity.as_str(),
                            rank,
                            i64::from(a.score),
                            status.as_str(),
                            &a.device,
                            a.group.clone(),
                            &a.destination,
                            first,
                            last,
                            count,
                            devs,
                            &a.summary,
                            &body,
                            now,
                        ],
                    )?;
                } else {
                    let reason = if keep_reason {
                        old.as_ref().and_then(|o| o.3.clone())
                    } else {
                        None
                    };
                    t.exec(
                        "UPDATE alerts SET kind = ?, severity = ?, sev_rank = ?, score = ?, \
                         status = ?, reason = ?, device = ?, grp = ?, destination = ?, \
                         first_seen = ?, last_seen = ?, count = ?, device_count = ?, summary = ?, \
                         body = ?, updated_at = ? WHERE id = ?",
                        &vals![
                            a.kind.as_str(),
                            a.severity.as_str(),
                            rank,
                            i64::from(a.score),
                            status.as_str(),
                            reason,
                            &a.device,
                            a.group.clone(),
                            &a.destination,
                            first,
                            last,
                            count,
                            devs,
                            &a.summary,
                            &body,
                            now,
                            &a.id,
                        ],
                    )?;
                }
                if devices_changed {
                    for d in &a.devices {
                        t.exec(
                            "INSERT INTO alert_devices (alert_id, device) VALUES (?, ?) \
                             ON CONFLICT (alert_id, device) DO NOTHING",
                            &vals![&a.id, d],
                        )?;
                    }
                }
                let event = be::change_event(change, old.as_ref().map_or(0, |o| o.2), a);
                if let Some(ev) = event {
                    queue(t, router.as_deref(), &copy, ev, "system", None, now)?;
                }
                if let Some(before) = reopened_from {
                    audit_line(
                        t,
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
            Ok(out)
        })
    }

    fn get_alert(&self, id: &str) -> Result<Option<StoredAlert>> {
        self.run(Mode::Read, |t| {
            t.one(
                &format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?"),
                &vals![id],
            )?
            .map(|r| row_alert(&r))
            .transpose()
        })
    }

    fn list_alerts(&self, f: &AlertFilter) -> Result<(Vec<StoredAlert>, u64)> {
        let (w, p) = filter(f)?;
        self.run(Mode::Read, |t| {
            let total = t.count(&format!("SELECT COUNT(*) FROM alerts{w}"), &p)?;
            let mut all = p.clone();
            all.push(f.limit.map_or(Val::Null, |l| Val::Int(i64::from(l))));
            all.push(Val::Int(be::to_i64(f.offset)));
            let list = rows(
                t.q(
                    &format!(
                        "SELECT {ALERT_COLS} FROM alerts{w}{} LIMIT ? OFFSET ?",
                        be::order_by(f.sort)
                    ),
                    &all,
                )?,
                row_alert,
            )?;
            Ok((list, total))
        })
    }

    fn alert_ids(&self, f: &AlertFilter) -> Result<Vec<String>> {
        let (w, p) = filter(f)?;
        self.run(Mode::Read, |t| {
            rows(
                t.q(
                    &format!("SELECT id FROM alerts{w}{}", be::order_by(f.sort)),
                    &p,
                )?,
                |r| get(r, 0),
            )
        })
    }

    fn act(
        &mut self,
        alert_id: &str,
        act: &Act,
        actor: &str,
        note: Option<&str>,
        now: Secs,
    ) -> Result<ActOutcome> {
        be::check_note(note)?;
        let router = self.router.clone();
        self.run(Mode::Write, |t| {
            let cur = t
                .one(
                    &format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?"),
                    &vals![alert_id],
                )?
                .map(|r| row_alert(&r))
                .transpose()?
                .ok_or_else(|| {
                    TriageError::NotFound(format!(
                        "no alert with id \"{}\"",
                        alert_id.escape_debug()
                    ))
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
                    be::check_scope(scope)?;
                    be::check_future("the acknowledgement's end", *until, now)?;
                    let detail = be::ack_detail(&cur.alert.evidence);
                    let r = t
                        .one(
                            "INSERT INTO acks (kind, destination, scope, until_ts, detail, \
                             created_by, created_at, alert_id, note) VALUES (?, ?, ?, ?, ?, ?, \
                             ?, ?, ?) RETURNING id",
                            &vals![
                                cur.alert.kind.as_str(),
                                &cur.alert.destination,
                                scope.label(),
                                *until,
                                detail.to_string(),
                                actor,
                                now,
                                alert_id,
                                note,
                            ],
                        )?
                        .ok_or_else(|| db("INSERT ... RETURNING gave no row"))?;
                    ack = Some(AckRule {
                        id: get(&r, 0)?,
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
                    be::check_scope(scope)?;
                    be::check_future("the block's expiry", *expires_at, now)?;
                    let name = dnsight_triage::normalize_name(name)?;
                    let nb = NewBlock {
                        name: name.clone(),
                        subdomains: *subdomains,
                        scope: scope.clone(),
                        allow: false,
                        expires_at: *expires_at,
                        note: note.map(str::to_string),
                        alert_id: Some(alert_id.to_string()),
                    };
                    let id = insert_block(t, &nb, &name, actor, now)?;
                    bump_serial(t)?;
                    block = get_block(t, id)?;
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
                        let a = &cur.alert;
                        let covering: Vec<AckRule> = rows(
                            t.q(
                                &format!(
                                    "SELECT {ACK_COLS} FROM acks WHERE kind = ? AND \
                                     destination = ? AND (until_ts IS NULL OR until_ts > ?) \
                                     ORDER BY id"
                                ),
                                &vals![a.kind.as_str(), &a.destination, now],
                            )?,
                            row_ack,
                        )?
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
                            t.exec("DELETE FROM acks WHERE id = ?", &vals![k.id])?;
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
            let target = block.as_ref().map(|b: &BlockRule| b.name.clone());
            line.target = target.as_deref();
            let mut copy = cur.alert.clone();
            copy.status = after;
            let body = serde_json::to_string(&copy).map_err(|e| db(e.to_string()))?;
            t.exec(
                "UPDATE alerts SET status = ?, reason = ?, body = ?, note = COALESCE(?, note), \
                 updated_at = ? WHERE id = ?",
                &vals![
                    after.as_str(),
                    reason.map(Reason::as_str),
                    body,
                    note,
                    now,
                    alert_id
                ],
            )?;
            audit_line(t, now, &line)?;
            if let Some(ev) = NotifyEvent::of_status(before, after) {
                queue(t, router.as_deref(), &copy, ev, actor, note, now)?;
            }
            Ok(ActOutcome {
                alert_id: alert_id.to_string(),
                before,
                after,
                ack,
                block,
                ended_acks,
            })
        })
    }

    fn history(&self, alert_id: &str) -> Result<Vec<AuditEntry>> {
        self.run(Mode::Read, |t| {
            rows(
                t.q(
                    &format!("SELECT {AUDIT_COLS} FROM audit WHERE alert_id = ? ORDER BY id ASC"),
                    &vals![alert_id],
                )?,
                row_audit,
            )
        })
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        self.run(Mode::Read, |t| {
            rows(
                t.q(
                    &format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id DESC LIMIT ?"),
                    &vals![limit],
                )?,
                row_audit,
            )
        })
    }

    fn audit_after(&self, after_id: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        // every writer holds the write lock from before its first insert to its commit, so
        // ids are handed out in commit order: none below a seen id can become visible later
        self.run(Mode::Read, |t| {
            rows(
                t.q(
                    &format!("SELECT {AUDIT_COLS} FROM audit WHERE id > ? ORDER BY id ASC LIMIT ?"),
                    &vals![after_id, limit],
                )?,
                row_audit,
            )
        })
    }

    fn active_acks(&self, now: Secs) -> Result<Vec<AckRule>> {
        self.run(Mode::Read, |t| {
            rows(
                t.q(
                    &format!(
                        "SELECT {ACK_COLS} FROM acks WHERE until_ts IS NULL OR until_ts > ? \
                         ORDER BY id"
                    ),
                    &vals![now],
                )?,
                row_ack,
            )
        })
    }

    fn add_block(&mut self, b: &NewBlock, actor: &str, now: Secs) -> Result<BlockRule> {
        let name = dnsight_triage::normalize_name(&b.name)?;
        be::check_scope(&b.scope)?;
        be::check_note(b.note.as_deref())?;
        be::check_future("the expiry", b.expires_at, now)?;
        self.run(Mode::Write, |t| {
            let id = insert_block(t, b, &name, actor, now)?;
            bump_serial(t)?;
            audit_line(
                t,
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
            get_block(t, id)?.ok_or_else(|| db("the new block vanished"))
        })
    }

    fn remove_block(&mut self, id: i64, actor: &str, now: Secs) -> Result<BlockRule> {
        self.run(Mode::Write, |t| {
            let rule = get_block(t, id)?
                .ok_or_else(|| TriageError::NotFound(format!("no block or allow with id {id}")))?;
            t.exec("DELETE FROM blocks WHERE id = ?", &vals![id])?;
            bump_serial(t)?;
            audit_line(
                t,
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
            Ok(rule)
        })
    }

    fn active_blocks(&self, now: Secs) -> Result<Vec<BlockRule>> {
        self.run(Mode::Read, |t| {
            rows(
                t.q(
                    &format!(
                        "SELECT {BLOCK_COLS} FROM blocks WHERE expires_at IS NULL OR \
                         expires_at > ? ORDER BY id"
                    ),
                    &vals![now],
                )?,
                row_block,
            )
        })
    }

    fn expire(&mut self, now: Secs) -> Result<usize> {
        // a read first: nothing to expire (the usual case) takes no write lock
        let due = self.run(Mode::Read, |t| {
            t.count(
                "SELECT (SELECT COUNT(*) FROM blocks WHERE expires_at IS NOT NULL AND \
                 expires_at <= ?) + (SELECT COUNT(*) FROM acks WHERE until_ts IS NOT NULL AND \
                 until_ts <= ?)",
                &vals![now, now],
            )
        })?;
        if due == 0 {
            return Ok(0);
        }
        self.run(Mode::Write, |t| {
            let blocks = rows(
                t.q(
                    &format!(
                        "SELECT {BLOCK_COLS} FROM blocks WHERE expires_at IS NOT NULL AND \
                         expires_at <= ? ORDER BY id"
                    ),
                    &vals![now],
                )?,
                row_block,
            )?;
            let acks = rows(
                t.q(
                    &format!(
                        "SELECT {ACK_COLS} FROM acks WHERE until_ts IS NOT NULL AND \
                         until_ts <= ? ORDER BY id"
                    ),
                    &vals![now],
                )?,
                row_ack,
            )?;
            for b in &blocks {
                t.exec("DELETE FROM blocks WHERE id = ?", &vals![b.id])?;
                audit_line(
                    t,
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
                t.exec("DELETE FROM acks WHERE id = ?", &vals![a.id])?;
                audit_line(
                    t,
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
                bump_serial(t)?;
            }
            Ok(blocks.len())
        })
    }

    fn rpz_serial(&self) -> Result<u32> {
        self.run(Mode::Read, read_serial)
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
        if name.len() > be::MAX_TOKEN_NAME {
            return Err(invalid(format!(
                "the token name is {} bytes; at most {} are allowed",
                name.len(),
                be::MAX_TOKEN_NAME
            )));
        }
        be::check_future("the token's expiry", expires_at, now)?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| db(format!("no randomness: {e}")))?;
        self.run(Mode::Write, |t| {
            if t.one(
                "SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL",
                &vals![name],
            )?
            .is_some()
            {
                return Err(invalid(format!(
                    "a token named \"{}\" exists; revoke it first or pick another name",
                    name.escape_debug()
                )));
            }
            let r = t
                .one(
                    "INSERT INTO tokens (name, role, hash, created_at, expires_at) \
                     VALUES (?, ?, '', ?, ?) RETURNING id",
                    &vals![name, role.as_str(), now, expires_at],
                )?
                .ok_or_else(|| db("INSERT ... RETURNING gave no row"))?;
            let id: i64 = get(&r, 0)?;
            let secret = format!("{}{id}_{}", be::TOKEN_PREFIX, be::hex(&raw));
            t.exec(
                "UPDATE tokens SET hash = ? WHERE id = ?",
                &vals![be::token_hash(&secret), id],
            )?;
            audit_line(
                t,
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
            let info = get_token(t, id)?.ok_or_else(|| db("the new token vanished"))?;
            Ok((info, secret))
        })
    }

    fn verify_token(&self, secret: &str, now: Secs) -> Result<Option<TokenInfo>> {
        use subtle::ConstantTimeEq;
        let Some(rest) = secret.strip_prefix(be::TOKEN_PREFIX) else {
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
        let row = self.run(Mode::Read, |t| {
            match t.one(
                &format!("SELECT hash, {TOKEN_COLS} FROM tokens WHERE id = ?"),
                &vals![id],
            )? {
                Some(r) => Ok(Some((get::<String>(&r, 0)?, row_token_at(&r, 1)?))),
                None => Ok(None),
            }
        })?;
        let Some((hash, mut info)) = row else {
            return Ok(None);
        };
        let given = be::token_hash(secret);
        if !bool::from(given.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        if info.revoked_at.is_some() || info.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        if info
            .last_used
            .is_none_or(|t| now - t >= be::LAST_USED_EVERY)
        {
            // best effort: a busy database must not turn a good token away
            if self
                .run(Mode::ReadWrite, |t| {
                    t.exec(
                        "UPDATE tokens SET last_used = ? WHERE id = ?",
                        &vals![now, id],
                    )
                })
                .is_ok()
            {
                info.last_used = Some(now);
            }
        }
        Ok(Some(info))
    }

    fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.run(Mode::Read, |t| {
            rows(
                t.q(&format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY id"), &[])?,
                row_token,
            )
        })
    }

    fn revoke_token(&mut self, name_or_id: &str, actor: &str, now: Secs) -> Result<TokenInfo> {
        self.run(Mode::Write, |t| {
            let mut id: Option<i64> = t
                .one(
                    "SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL",
                    &vals![name_or_id],
                )?
                .map(|r| get(&r, 0))
                .transpose()?;
            if id.is_none() {
                if let Ok(n) = name_or_id.parse::<i64>() {
                    id = t
                        .one(
                            "SELECT id FROM tokens WHERE id = ? AND revoked_at IS NULL",
                            &vals![n],
                        )?
                        .map(|r| get(&r, 0))
                        .transpose()?;
                }
            }
            let id = id.ok_or_else(|| {
                TriageError::NotFound(format!(
                    "no active token named or numbered \"{}\"",
                    name_or_id.escape_debug()
                ))
            })?;
            t.exec(
                "UPDATE tokens SET revoked_at = ? WHERE id = ?",
                &vals![now, id],
            )?;
            let info = get_token(t, id)?.ok_or_else(|| db("the token vanished"))?;
            audit_line(
                t,
                now,
                &Line {
                    actor,
                    action: "token_revoke",
                    scope: Some(info.role.as_str().to_string()),
                    target: Some(&info.name),
                    ..Line::default()
                },
            )?;
            Ok(info)
        })
    }

    fn stats(&self, now: Secs) -> Result<StoreStats> {
        self.run(Mode::Read, |t| {
            let mut st = StoreStats::default();
            for s in Status::ALL {
                st.alerts_by_status.insert(s.as_str().to_string(), 0);
            }
            for r in t.q("SELECT status, COUNT(*) FROM alerts GROUP BY status", &[])? {
                let n: i64 = get(&r, 1)?;
                st.alerts_by_status.insert(get(&r, 0)?, n.max(0) as u64);
            }
            for r in t.q(
                "SELECT kind, severity, status, COUNT(*) FROM alerts GROUP BY kind, severity, status ORDER BY kind, severity, status",
                &[],
            )? {
                st.alerts_by.push(AlertCount {
                    kind: get(&r, 0)?,
                    severity: get(&r, 1)?,
                    status: get(&r, 2)?,
                    count: get::<i64>(&r, 3)?.max(0) as u64,
                });
            }
            st.acks_active = t.count(
                "SELECT COUNT(*) FROM acks WHERE until_ts IS NULL OR until_ts > ?",
                &vals![now],
            )?;
            st.blocks_active = t.count(
                "SELECT COUNT(*) FROM blocks WHERE allow = 0 AND (expires_at IS NULL OR expires_at > ?)",
                &vals![now],
            )?;
            st.allows_active = t.count(
                "SELECT COUNT(*) FROM blocks WHERE allow = 1 AND (expires_at IS NULL OR expires_at > ?)",
                &vals![now],
            )?;
            st.audit_entries = t.count("SELECT COUNT(*) FROM audit", &[])?;
            st.outbox = OutboxStats {
                pending: t.count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'", &[])?,
                sent: t.count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'", &[])?,
                failed: t.count("SELECT COUNT(*) FROM outbox WHERE state = 'failed'", &[])?,
                digests: t.count("SELECT COUNT(*) FROM notify_digests", &[])?,
            };
            st.tokens_active = t.count(
                "SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL AND \
                 (expires_at IS NULL OR expires_at > ?)",
                &vals![now],
            )?;
            st.file_bytes = t.count("SELECT pg_database_size(current_database())", &[])?;
            Ok(st)
        })
    }

    fn set_router(&mut self, router: Option<Arc<dyn Router>>) {
        self.router = router;
    }

    fn outbox_due(&self, target: &str, now: Secs, limit: u32) -> Result<Vec<OutboxItem>> {
        self.run(Mode::Read, |t| {
            rows(
                t.q(
                    &format!(
                        "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' AND target = ? \
                         AND next_at <= ? ORDER BY id LIMIT ?"
                    ),
                    &vals![target, now, limit],
                )?,
                row_outbox,
            )
        })
    }

    fn outbox_sent(&mut self, ids: &[i64], now: Secs) -> Result<()> {
        self.run(Mode::Write, |t| {
            for chunk in ids.chunks(500) {
                t.exec(
                    &format!(
                        "UPDATE outbox SET state = 'sent', sent_at = ?, last_error = NULL \
                         WHERE id IN {}",
                        be::id_list(chunk)
                    ),
                    &ids_params(&vals![now], chunk),
                )?;
            }
            Ok(())
        })
    }

    fn outbox_digest_sent(&mut self, target: &str, ids: &[i64], now: Secs) -> Result<i64> {
        self.run(Mode::Write, |t| {
            let r = t
                .one(
                    "INSERT INTO notify_digests (target, sent_at, items) VALUES (?, ?, ?) \
                     RETURNING id",
                    &vals![target, now, ids.len() as i64],
                )?
                .ok_or_else(|| db("INSERT ... RETURNING gave no row"))?;
            let d: i64 = get(&r, 0)?;
            for chunk in ids.chunks(500) {
                t.exec(
                    &format!(
                        "UPDATE outbox SET state = 'sent', sent_at = ?, digest = ?, \
                         last_error = NULL WHERE id IN {}",
                        be::id_list(chunk)
                    ),
                    &ids_params(&vals![now, d], chunk),
                )?;
            }
            Ok(d)
        })
    }

    fn outbox_retry(
        &mut self,
        ids: &[i64],
        error: &str,
        next_at: Secs,
        max_attempts: u32,
    ) -> Result<u64> {
        let error: String = error.chars().take(1000).collect();
        self.run(Mode::Write, |t| {
            let mut failed = 0;
            for chunk in ids.chunks(500) {
                t.exec(
                    &format!(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ? \
                         WHERE state = 'pending' AND id IN {}",
                        be::id_list(chunk)
                    ),
                    &ids_params(&vals![error.clone(), next_at], chunk),
                )?;
                failed += t.exec(
                    &format!(
                        "UPDATE outbox SET state = 'failed' WHERE state = 'pending' \
                         AND attempts >= ? AND id IN {}",
                        be::id_list(chunk)
                    ),
                    &ids_params(&vals![max_attempts], chunk),
                )?;
            }
            Ok(failed)
        })
    }

    fn outbox_sent_since(&self, target: &str, since: Secs) -> Result<(u64, u64)> {
        self.run(Mode::Read, |t| {
            let single = t.count(
                "SELECT COUNT(*) FROM outbox WHERE target = ? AND sent_at >= ? AND digest IS NULL",
                &vals![target, since],
            )?;
            let digests = t.count(
                "SELECT COUNT(*) FROM notify_digests WHERE target = ? AND sent_at >= ?",
                &vals![target, since],
            )?;
            Ok((single, digests))
        })
    }

    fn outbox_last_digest(&self, target: &str) -> Result<Option<Secs>> {
        self.run(Mode::Read, |t| {
            let r = t
                .one(
                    "SELECT MAX(sent_at) FROM notify_digests WHERE target = ?",
                    &vals![target],
                )?
                .ok_or_else(|| db("MAX gave no row"))?;
            get(&r, 0)
        })
    }

    fn outbox_list(&self, state: Option<OutboxState>, limit: u32) -> Result<Vec<OutboxItem>> {
        let mut q = format!("SELECT {OUTBOX_COLS} FROM outbox");
        let mut p: Vec<Val> = Vec::new();
        if let Some(st) = state {
            q.push_str(" WHERE state = ?");
            p.push(st.as_str().into());
        }
        q.push_str(" ORDER BY id DESC LIMIT ?");
        p.push(limit.into());
        self.run(Mode::Read, |t| rows(t.q(&q, &p)?, row_outbox))
    }

    // ---- dashboard users and sessions

    fn upsert_user(
        &mut self,
        name: &str,
        role: Role,
        password_hash: &str,
        replace: bool,
        actor: &str,
        now: Secs,
    ) -> Result<UserInfo> {
        dnsight_triage::check_user_name(name)?;
        if !password_hash.starts_with('$') {
            return Err(invalid("the password hash must be a PHC string"));
        }
        self.run(Mode::Write, |t| {
            let existing: Option<i64> = t
                .one("SELECT id FROM users WHERE name = ?", &vals![name])?
                .map(|r| get(&r, 0))
                .transpose()?;
            let action = match existing {
                Some(_) if !replace => {
                    return Err(invalid(format!(
                        "a user named \"{name}\" exists; remove it first (`dnsight user rm {name}`) or pick another name"
                    )))
                }
                Some(id) => {
                    t.exec(
                        "UPDATE users SET role = ?, password = ? WHERE id = ?",
                        &vals![role.as_str(), password_hash, id],
                    )?;
                    t.exec("DELETE FROM sessions WHERE user_id = ?", &vals![id])?;
                    "user_update"
                }
                None => {
                    t.exec(
                        "INSERT INTO users (name, role, password, created_at) VALUES (?, ?, ?, ?)",
                        &vals![name, role.as_str(), password_hash, now],
                    )?;
                    "user_add"
                }
            };
            audit_line(
                t,
                now,
                &Line {
                    actor,
                    action,
                    scope: Some(role.as_str().to_string()),
                    target: Some(name),
                    ..Line::default()
                },
            )?;
            let r = t
                .one(
                    &format!("SELECT {USER_COLS} FROM users WHERE name = ?"),
                    &vals![name],
                )?
                .ok_or_else(|| db("the user vanished"))?;
            row_user(&r)
        })
    }

    fn user_password(&self, name: &str) -> Result<Option<(UserInfo, String)>> {
        self.run(Mode::Read, |t| {
            match t.one(
                &format!("SELECT {USER_COLS}, password FROM users WHERE name = ?"),
                &vals![name],
            )? {
                Some(r) => Ok(Some((row_user(&r)?, get(&r, 5)?))),
                None => Ok(None),
            }
        })
    }

    fn list_users(&self) -> Result<Vec<UserInfo>> {
        self.run(Mode::Read, |t| {
            rows(
                t.q(&format!("SELECT {USER_COLS} FROM users ORDER BY name"), &[])?,
                row_user,
            )
        })
    }

    fn remove_user(&mut self, name: &str, actor: &str, now: Secs) -> Result<UserInfo> {
        self.run(Mode::Write, |t| {
            let u = t
                .one(
                    &format!("SELECT {USER_COLS} FROM users WHERE name = ?"),
                    &vals![name],
                )?
                .map(|r| row_user(&r))
                .transpose()?
                .ok_or_else(|| TriageError::NotFound(format!("no user \"{name}\"")))?;
            t.exec("DELETE FROM sessions WHERE user_id = ?", &vals![u.id])?;
            t.exec("DELETE FROM users WHERE id = ?", &vals![u.id])?;
            audit_line(
                t,
                now,
                &Line {
                    actor,
                    action: "user_remove",
                    target: Some(name),
                    ..Line::default()
                },
            )?;
            Ok(u)
        })
    }

    fn create_session(
        &mut self,
        user_id: i64,
        ttl: Secs,
        client: Option<&str>,
        agent: Option<&str>,
        now: Secs,
    ) -> Result<(SessionInfo, String)> {
        if ttl <= 0 {
            return Err(invalid("a session needs a positive lifetime"));
        }
        let secret = format!("{}{}", be::SESSION_PREFIX, be::random_hex()?);
        let csrf = be::random_hex()?;
        self.run(Mode::Write, |t| {
            let r = t.one(
                "INSERT INTO sessions (user_id, hash, csrf, created_at, last_seen, expires_at, \
                 client, agent) SELECT id, ?, ?, ?, ?, ?, ?, ? FROM users WHERE id = ? \
                 RETURNING id",
                &vals![
                    be::token_hash(&secret),
                    &csrf,
                    now,
                    now,
                    now.saturating_add(ttl),
                    be::clip(client, 64),
                    be::clip(agent, 200),
                    user_id
                ],
            )?;
            let Some(r) = r else {
                return Err(TriageError::NotFound(format!("no user {user_id}")));
            };
            let id: i64 = get(&r, 0)?;
            t.exec(
                "UPDATE users SET last_login = ? WHERE id = ?",
                &vals![now, user_id],
            )?;
            let s = t
                .one(
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions s JOIN users u ON u.id = s.user_id \
                         WHERE s.id = ?"
                    ),
                    &vals![id],
                )?
                .ok_or_else(|| db("the new session vanished"))?;
            Ok((row_session(&s)?, secret.clone()))
        })
    }

    fn verify_session(&self, secret: &str, ttl: Secs, now: Secs) -> Result<Option<SessionInfo>> {
        let Some(body) = secret.strip_prefix(be::SESSION_PREFIX) else {
            return Ok(None);
        };
        if body.len() != 64 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let s = self.run(Mode::Read, |t| {
            t.one(
                &format!(
                    "SELECT {SESSION_COLS} FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.hash = ? AND s.expires_at > ?"
                ),
                &vals![be::token_hash(secret), now],
            )?
            .map(|r| row_session(&r))
            .transpose()
        })?;
        let Some(mut s) = s else {
            return Ok(None);
        };
        if now - s.last_seen >= be::SEEN_EVERY {
            s.last_seen = now;
            s.expires_at = s.expires_at.max(now.saturating_add(ttl));
            // best effort: a busy writer must not sign the user out
            let _ = self.run(Mode::ReadWrite, |t| {
                t.exec(
                    "UPDATE sessions SET last_seen = ?, expires_at = ? WHERE id = ?",
                    &vals![s.last_seen, s.expires_at, s.id],
                )
            });
        }
        Ok(Some(s))
    }

    fn list_sessions(&self, now: Secs) -> Result<Vec<SessionInfo>> {
        self.run(Mode::Read, |t| {
            rows(
                t.q(
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions s JOIN users u ON u.id = s.user_id \
                         WHERE s.expires_at > ? ORDER BY s.last_seen DESC"
                    ),
                    &vals![now],
                )?,
                row_session,
            )
        })
    }

    fn revoke_session(&mut self, id: i64, actor: &str, now: Secs) -> Result<SessionInfo> {
        self.run(Mode::Write, |t| {
            let s = t
                .one(
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions s JOIN users u ON u.id = s.user_id \
                         WHERE s.id = ?"
                    ),
                    &vals![id],
                )?
                .map(|r| row_session(&r))
                .transpose()?
                .ok_or_else(|| TriageError::NotFound(format!("no session {id}")))?;
            t.exec("DELETE FROM sessions WHERE id = ?", &vals![id])?;
            t.exec("DELETE FROM sessions WHERE expires_at <= ?", &vals![now])?;
            let target = format!("{} session {id}", s.user);
            audit_line(
                t,
                now,
                &Line {
                    actor,
                    action: "session_revoke",
                    target: Some(&target),
                    ..Line::default()
                },
            )?;
            Ok(s)
        })
    }

    fn alerts_changed(&self) -> Result<(u64, Secs)> {
        self.run(Mode::Read, |t| {
            let open = t.count(
                "SELECT COUNT(*) FROM alerts WHERE status IN ('open', 'flagged', 'reopened')",
                &[],
            )?;
            let r = t
                .one("SELECT MAX(updated_at) FROM alerts", &[])?
                .ok_or_else(|| db("MAX gave no row"))?;
            let at: Option<i64> = get(&r, 0)?;
            Ok((open, at.unwrap_or(0)))
        })
    }

    fn alert_overview(&self, since: Secs, top: u32) -> Result<AlertOverview> {
        let open = "status IN ('open', 'flagged', 'reopened')";
        self.run(Mode::Read, |t| {
            let pairs = |t: &mut Tx<'_>, sql: &str, p: &[Val]| -> Result<Vec<(String, u64)>> {
                rows(t.q(sql, p)?, |r| {
                    Ok((get(r, 0)?, get::<i64>(r, 1)?.max(0) as u64))
                })
            };
            let mut o = AlertOverview {
                by_severity: pairs(
                    t,
                    &format!("SELECT severity, COUNT(*) FROM alerts WHERE {open} GROUP BY severity ORDER BY MAX(sev_rank) DESC"),
                    &[],
                )?,
                by_kind: pairs(
                    t,
                    &format!("SELECT kind, COUNT(*) FROM alerts WHERE {open} GROUP BY kind ORDER BY 2 DESC"),
                    &[],
                )?,
                top_devices: pairs(
                    t,
                    &format!("SELECT device, COUNT(*) FROM alerts WHERE {open} GROUP BY device ORDER BY 2 DESC, 1 LIMIT ?"),
                    &vals![top],
                )?,
                top_destinations: pairs(
                    t,
                    &format!("SELECT destination, COUNT(*) FROM alerts WHERE {open} AND destination <> '' GROUP BY destination ORDER BY 2 DESC, 1 LIMIT ?"),
                    &vals![top],
                )?,
                per_day: Vec::new(),
                per_hour: Vec::new(),
            };
            o.per_hour = rows(
                t.q(
                    "SELECT first_seen / 3600000000, COUNT(*) FROM alerts WHERE first_seen >= ? \
                     GROUP BY 1 ORDER BY 1",
                    &vals![since.saturating_mul(1_000_000)],
                )?,
                |r| Ok((get::<i64>(r, 0)? * 3600, get::<i64>(r, 1)?.max(0) as u64)),
            )?;
            for (h, c) in &o.per_hour {
                let d = h.div_euclid(86_400) * 86_400;
                match o.per_day.last_mut() {
                    Some((day, n)) if *day == d => *n += c,
                    _ => o.per_day.push((d, *c)),
                }
            }
            Ok(o)
        })
    }

    // ---- the query log: in the local SQLite file (see the crate doc)

    fn search_queries(&self, f: &QueryFilter) -> Result<QueryPage> {
        match &self.querylog {
            Some(l) => l.search_queries(f),
            None => Err(self.no_querylog()),
        }
    }

    fn querylog_disk(&self) -> Result<QueryLogDisk> {
        match &self.querylog {
            Some(l) => l.querylog_disk(),
            None => Err(self.no_querylog()),
        }
    }

    fn query_timeline(
        &self,
        device: Option<&str>,
        since_us: i64,
        until_us: i64,
        step_us: i64,
    ) -> Result<Vec<TimelineBucket>> {
        match &self.querylog {
            Some(l) => l.query_timeline(device, since_us, until_us, step_us),
            None => Err(self.no_querylog()),
        }
    }
}
