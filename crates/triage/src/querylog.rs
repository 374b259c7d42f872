//! The query log: every DNS transaction the system saw (the resolver's own and the passive
//! sources'), kept in the triage store's SQLite file and searchable in milliseconds.
//!
//! **Writing** ([`QueryLog`]): callers hand events to [`QueryLog::log`], which turns each into
//! a compact [`LogRow`] and `try_send`s it into a bounded channel; it never blocks, and a row
//! that does not fit is counted as dropped. One writer thread, with its own connection
//! (`synchronous=NORMAL`: a power loss may lose the last second of the log, never corrupt it),
//! gathers rows (up to [`BATCH_ROWS`] or [`BATCH_WAIT`] after the first) and writes them in
//! transactions that hold SQLite's write lock for at most about [`TX_BUDGET`] each: when the
//! budget is spent it commits and starts another, and when a triage action of this process is
//! waiting for the lock (the store's busy handler raises a flag) it commits at once and lets the
//! action in. It also applies the retention (by days, relative to the newest row's event time,
//! and by size) once a minute, deleting in bounded chunks (whole rows, each with its count).
//!
//! **Coalescing** (on by default, `coalesce`): as it drains the queue the writer merges the
//! identical transactions of one client within one second (same name, type, rcode, answers,
//! action, blocked-by, source and transport) into one row with a `count`, the first
//! transaction's time and the highest upstream latency (see [`Coalescer`]). Every reader
//! honours it: a search row carries its `count`, the roll-ups and timelines add counts, the
//! writer's `written`/`dropped`/`deleted` counters count transactions (`rows_written` rows).
//! A device repeating a name many times a second (a retry loop, a busy app, a benchmark) then
//! costs the writer one row per second instead of one per query. A row is written once a later
//! second's row was gathered, or after [`COALESCE_WAIT`] (so within ~1.3 s of its time).
//!
//! **Privacy**: with `pseudonymise`, client addresses are stored as `anon-` + the first 16 hex
//! digits of HMAC-SHA256(key, address). The 32-byte key is created once in
//! `state_dir/querylog.key` (mode 0600); a device filter given as an address is hashed with the
//! same key, so "what did 10.0.0.5 ask" still works for whoever runs dnsight, while a copy of
//! the database alone does not name anyone. Deleting the key makes stored pseudonyms unlinkable
//! to addresses (new rows get new ones).
//!
//! **Schema** (migration steps 3, 4 and 6): `query_clients (id, client)` interns the stored client
//! (address or pseudonym) once; `queries (id, ts, cid, rname, qtype, rcode, answers, action,
//! blocked, upstream_us, source, transport, count)`, `ts` the event time in microseconds, `rname` the
//! name with its characters reversed (`moc.elpmaxe.www`), so a suffix is a range of names; the
//! search then checks the label boundary in Rust (an escaped dot `\.` inside a label is not a
//! boundary). The two search indexes are **time-bucket major**: `(ts >> 32, cid, ts)` and
//! `(ts >> 32, rname, ts)`, buckets of 2^32 µs (~72 minutes). A batch of new rows therefore
//! lands in the newest bucket's small part of each index (a few MiB, always in the page cache)
//! instead of at one random place per client and per name across the whole index, which is
//! what kept the write rate falling as the log grew; a search walks the buckets newest first,
//! one index seek each, and stops when its page is full. `(ts)` and a partial
//! `(ts) WHERE blocked IS NOT NULL` serve time-only and blocked searches. Pages are in
//! `(ts, id)` order, newest first, with a keyset cursor: the next page starts strictly after the
//! last row of the previous one, whatever was inserted since.
//!
//! **Timelines** ([`timeline`]) read two roll-ups the writer keeps in the same transactions as
//! the rows: `query_minutes` (all devices, per minute) and `query_hours` (per device and hour);
//! the retention subtracts what it deletes, so they always equal the sum of the rows' counts. A timeline
//! whose start and step are whole minutes (all devices) or whole hours (one device) is summed
//! from them; any other is counted from the rows (correct, slower on a long range).

use crate::{Result, TriageError};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use dnsight_model::{DnsEvent, RData, Source, Transport, VerdictAction};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Migration step 3 of the triage schema: the query log's first table and indexes (kept as
/// they were, so step 4 migrates any file that has them).
pub(crate) const SCHEMA_V3: &str = "
CREATE TABLE queries (
    id INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    client TEXT NOT NULL,
    rname TEXT NOT NULL,
    qtype INTEGER NOT NULL,
    rcode INTEGER,
    answers TEXT,
    action INTEGER,
    blocked TEXT,
    upstream_us INTEGER,
    source INTEGER NOT NULL,
    transport INTEGER NOT NULL
);
CREATE INDEX queries_ts ON queries (ts);
CREATE INDEX queries_client ON queries (client, ts);
CREATE INDEX queries_rname ON queries (rname, ts);
CREATE INDEX queries_blocked ON queries (ts) WHERE blocked IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BIGINT NOT NULL);
INSERT INTO meta (k, v) VALUES ('querylog_pseudonymise', 0) ON CONFLICT (k) DO NOTHING;
";

/// Migration step 4: interned clients, time-bucket-major indexes and the timeline roll-ups.
/// Rewrites the v3 table once (rows keep their ids); on a file of millions of rows this takes
/// a while, once, inside the migration's transaction.
pub(crate) const SCHEMA_V4: &str = "
CREATE TABLE query_clients (id INTEGER PRIMARY KEY, client TEXT NOT NULL UNIQUE);
INSERT INTO query_clients (client) SELECT DISTINCT client FROM queries ORDER BY client;
DROP INDEX queries_client;
DROP INDEX queries_rname;
DROP INDEX queries_ts;
DROP INDEX queries_blocked;
ALTER TABLE queries RENAME TO queries_v3;
CREATE TABLE queries (
    id INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    cid INTEGER NOT NULL,
    rname TEXT NOT NULL,
    qtype INTEGER NOT NULL,
    rcode INTEGER,
    answers TEXT,
    action INTEGER,
    blocked TEXT,
    upstream_us INTEGER,
    source INTEGER NOT NULL,
    transport INTEGER NOT NULL
);
INSERT INTO queries (id, ts, cid, rname, qtype, rcode, answers, action, blocked, upstream_us, source, transport)
    SELECT q.id, q.ts, c.id, q.rname, q.qtype, q.rcode, q.answers, q.action, q.blocked, q.upstream_us, q.source, q.transport
    FROM queries_v3 AS q JOIN query_clients AS c ON c.client = q.client ORDER BY q.id;
DROP TABLE queries_v3;
CREATE INDEX queries_ts ON queries (ts);
CREATE INDEX queries_client ON queries ((ts >> 32), cid, ts);
CREATE INDEX queries_rname ON queries ((ts >> 32), rname, ts);
CREATE INDEX queries_blocked ON queries (ts) WHERE blocked IS NOT NULL;
CREATE TABLE query_minutes (
    minute BIGINT PRIMARY KEY,
    queries BIGINT NOT NULL,
    blocked BIGINT NOT NULL,
    nxdomain BIGINT NOT NULL
);
INSERT INTO query_minutes (minute, queries, blocked, nxdomain)
    SELECT (ts - ((ts % 60000000) + 60000000) % 60000000) / 60000000 AS m,
           COUNT(*), COUNT(blocked), COALESCE(SUM(rcode = 3), 0)
    FROM queries GROUP BY m;
CREATE TABLE query_hours (
    hour BIGINT NOT NULL,
    cid INTEGER NOT NULL,
    queries BIGINT NOT NULL,
    blocked BIGINT NOT NULL,
    nxdomain BIGINT NOT NULL,
    PRIMARY KEY (hour, cid)
) WITHOUT ROWID;
INSERT INTO query_hours (hour, cid, queries, blocked, nxdomain)
    SELECT (ts - ((ts % 3600000000) + 3600000000) % 3600000000) / 3600000000 AS h, cid,
           COUNT(*), COUNT(blocked), COALESCE(SUM(rcode = 3), 0)
    FROM queries GROUP BY h, cid;
";

/// Migration step 6: the `count` column, identical transactions of one client within one
/// second stored as one row ([`QueryLogConfig::coalesce`]). Rows of older files were one
/// transaction each: `DEFAULT 1` (SQLite adds a column with a constant default without
/// rewriting the table, so this is instant on millions of rows). The roll-ups already
/// counted transactions.
pub(crate) const SCHEMA_V6: &str = "
ALTER TABLE queries ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
";

/// Bits of `ts` (µs) below the search indexes' time bucket: 2^32 µs, ~72 minutes.
const BUCKET_SHIFT: u32 = 32;
const US_PER_MINUTE: i64 = 60_000_000;
const US_PER_HOUR: i64 = 3_600_000_000;

/// File of the pseudonymisation key inside the state directory.
pub const KEY_FILE: &str = "querylog.key";
/// Most rows the writer gathers before writing them.
pub const BATCH_ROWS: usize = 50_000;
/// Longest a row waits in the writer before its batch is written (a coalesced row also waits
/// for its second to end, [`COALESCE_WAIT`] at most).
pub const BATCH_WAIT: Duration = Duration::from_millis(250);
/// How often the writer looks for more rows while it gathers a batch.
const GATHER_POLL: Duration = Duration::from_millis(10);
/// About the longest one write transaction of the log holds SQLite's write lock: inserting
/// stops when this is spent, and the roll-ups and the commit follow.
pub const TX_BUDGET: Duration = Duration::from_millis(40);
/// Most rows one page may hold.
pub const MAX_PAGE: u32 = 10_000;
/// Retention deletes at most this many rows per transaction.
const DELETE_CHUNK: i64 = 5_000;
const MAINTAIN_EVERY: Duration = Duration::from_secs(60);
const US_PER_DAY: i64 = 86_400 * 1_000_000;

/// Raised by the triage store's busy handler when one of this process's connections waits for
/// the write lock; the query-log writer then commits early and steps aside.
pub(crate) static LOCK_WANTED: AtomicBool = AtomicBool::new(false);

/// The busy handler of the triage store's connections: polls every millisecond (SQLite's own
/// `busy_timeout` backs off to 100 ms sleeps and would rarely catch the gap between two of the
/// log's transactions) for up to about 5 s, and tells the query-log writer someone is waiting.
#[doc(hidden)]
pub fn store_busy(tries: i32) -> bool {
    if tries >= 5_000 {
        return false;
    }
    LOCK_WANTED.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1));
    true
}

/// How the query log is kept (the `[querylog]` section).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryLogConfig {
    /// Rows older than this many days before the newest row are deleted (None: kept).
    pub retention_days: Option<u32>,
    /// The triage file's used pages are kept under this many bytes by deleting the oldest rows
    /// (None: no limit).
    pub max_bytes: Option<u64>,
    /// Store client addresses as keyed hashes.
    pub pseudonymise: bool,
    /// Rows the channel to the writer holds; more are dropped (counted).
    pub queue: usize,
    /// Store identical transactions of one client within one second as one row with a
    /// `count` (see [`Coalescer`]); false stores every transaction as its own row.
    #[serde(default = "yes")]
    pub coalesce: bool,
}

fn yes() -> bool {
    true
}

impl Default for QueryLogConfig {
    fn default() -> Self {
        QueryLogConfig {
            retention_days: Some(30),
            max_bytes: Some(4 << 30),
            pseudonymise: false,
            queue: 200_000,
            coalesce: true,
        }
    }
}

/// One transaction as the writer gets it (converted on the caller's thread).
#[derive(Clone, Debug)]
pub struct LogRow {
    pub ts_us: i64,
    pub client: IpAddr,
    /// Reversed presentation name.
    pub rname: String,
    pub qtype: u16,
    pub rcode: Option<u16>,
    /// `TYPE data` per answer, tab-separated (tabs never occur in escaped data).
    pub answers: Option<String>,
    pub action: Option<VerdictAction>,
    /// The rule that blocked it (`blocked` when none is named).
    pub blocked: Option<String>,
    pub upstream_us: Option<u32>,
    pub source: Source,
    pub transport: Transport,
}

impl LogRow {
    pub fn from_event(ev: &DnsEvent) -> LogRow {
        let answers = if ev.answers.is_empty() {
            None
        } else {
            let mut s = String::with_capacity(ev.answers.len() * 24);
            for (i, a) in ev.answers.iter().enumerate() {
                if i > 0 {
                    s.push('\t');
                }
                s.push_str(&dnsight_model::rtype_to_str(a.rtype));
                s.push(' ');
                match &a.data {
                    RData::Addr(ip) => {
                        use std::fmt::Write;
                        let _ = write!(s, "{ip}");
                    }
                    RData::Name(n) => s.push_str(n.as_str()),
                    RData::Text(t) => s.push_str(t),
                }
            }
            Some(s)
        };
        let action = ev.verdict.as_ref().map(|v| v.action);
        let blocked = match &ev.verdict {
            Some(v) if v.action == VerdictAction::Blocked => Some(
                v.rule
                    .as_deref()
                    .map(str::to_string)
                    .unwrap_or_else(|| "blocked".into()),
            ),
            _ => None,
        };
        let upstream_us = upstream_of(ev);
        LogRow {
            ts_us: ev.ts.micros(),
            client: ev.client,
            rname: reverse(ev.qname.as_str()),
            qtype: ev.qtype,
            rcode: ev.rcode,
            answers,
            action,
            blocked,
            upstream_us,
            source: ev.source,
            transport: ev.transport,
        }
    }
}

/// The upstream latency a row keeps: only forwarded queries (and passive ones) spent time
/// upstream.
fn upstream_of(ev: &DnsEvent) -> Option<u32> {
    match ev.verdict.as_ref().map(|v| v.action) {
        Some(VerdictAction::Forwarded) | None => ev.rtt_us,
        _ => None,
    }
}

/// Characters reversed (names are printable ASCII, so bytes and characters agree).
fn reverse(s: &str) -> String {
    s.chars().rev().collect()
}

// ---------------------------------------------------------------- codes

// Sources, transports and actions are stored as their position in the model's `ALL` tables
// (append-only there, so stored codes keep their meaning).
fn label<T: Copy>(all: &[T], c: i64, name: fn(T) -> &'static str) -> &'static str {
    usize::try_from(c)
        .ok()
        .and_then(|i| all.get(i))
        .map_or("unknown", |v| name(*v))
}

// ---------------------------------------------------------------- pseudonyms

/// The keyed hash of client addresses.
#[derive(Clone)]
pub struct Pseudonymiser {
    key: [u8; 32],
}

impl Pseudonymiser {
    /// Reads `state_dir/querylog.key`, creating it (32 random bytes, hex, mode 0600) when
    /// missing.
    pub fn load_or_create(state_dir: &Path) -> Result<Pseudonymiser> {
        if let Some(p) = Self::load(state_dir)? {
            return Ok(p);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| db(format!("no randomness: {e}")))?;
        let path = state_dir.join(KEY_FILE);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        match o.open(&path) {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, format!("{hex}\n").as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| db(format!("writing {}: {e}", path.display())))?;
                Ok(Pseudonymiser { key })
            }
            // another process created it first: use theirs
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load(state_dir)?.ok_or_else(|| db(format!("{} vanished", path.display())))
            }
            Err(e) => Err(db(format!("creating {}: {e}", path.display()))),
        }
    }

    /// The key, when the file exists.
    pub fn load(state_dir: &Path) -> Result<Option<Pseudonymiser>> {
        let path = state_dir.join(KEY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(db(format!("reading {}: {e}", path.display()))),
        };
        let t = text.trim();
        let mut key = [0u8; 32];
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(db(format!(
                "{} is not a 64-digit hex key; restore it, or delete it to start new pseudonyms",
                path.display()
            )));
        }
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        Ok(Some(Pseudonymiser { key }))
    }

    /// `anon-` and 16 hex digits of HMAC-SHA256(key, the address's bytes).
    pub fn pseudonym(&self, ip: IpAddr) -> String {
        use hmac::{Mac, SimpleHmac};
        let ip = canonical(ip);
        let mut m = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        match ip {
            IpAddr::V4(a) => m.update(&a.octets()),
            IpAddr::V6(a) => m.update(&a.octets()),
        }
        let out = m.finalize().into_bytes();
        let mut s = String::with_capacity(21);
        s.push_str("anon-");
        for b in &out[..8] {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn db(msg: impl Into<String>) -> TriageError {
    TriageError::Db(msg.into())
}
fn invalid(msg: impl Into<String>) -> TriageError {
    TriageError::Invalid(msg.into())
}

// ---------------------------------------------------------------- the writer

/// Live counters of the writer (shared with whoever shows stats).
#[derive(Debug, Default)]
pub struct WriterCounters {
    pub queued: AtomicU64,
    /// Transactions written (a row of `count` n counts n).
    pub written: AtomicU64,
    /// Rows written (fewer than the transactions when identical ones were coalesced).
    pub rows: AtomicU64,
    pub dropped: AtomicU64,
    pub deleted: AtomicU64,
    pub batches: AtomicU64,
    pub write_errors: AtomicU64,
    /// Transactions ended early because an action of this process waited for the lock.
    pub yields: AtomicU64,
    /// Sum of commit times (µs) and the latest one.
    pub commit_us_total: AtomicU64,
    pub last_commit_us: AtomicU64,
    /// Commit latency histogram: counts of commits at or under each bound of
    /// [`COMMIT_BUCKETS_US`] (not cumulative; the last slot is over the last bound).
    pub commit_buckets: [AtomicU64; COMMIT_BUCKETS_US.len() + 1],
}

/// Upper bounds (µs) of the commit latency histogram.
pub const COMMIT_BUCKETS_US: [u64; 8] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// What the writer has done, for stats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriterStats {
    /// Transactions handed to the log (queued).
    pub queued: u64,
    /// Transactions written (the sum of the written rows' `count`s).
    pub written: u64,
    /// Rows written: `written` / `rows_written` is how many transactions one row stands for.
    #[serde(default)]
    pub rows_written: u64,
    /// Transactions that did not fit in the writer's queue (the log stays behind the
    /// traffic), or were lost with a failed transaction.
    pub dropped: u64,
    /// Transactions deleted by the retention (the sum of the deleted rows' `count`s).
    pub deleted: u64,
    pub batches: u64,
    pub write_errors: u64,
    /// Transactions ended early for a waiting triage action.
    #[serde(default)]
    pub yields: u64,
    /// Rows waiting for the writer now.
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub last_commit_us: u64,
    pub commit_us_total: u64,
    /// Commits per latency bucket (bounds in [`COMMIT_BUCKETS_US`], then over).
    pub commit_buckets: Vec<u64>,
    pub pseudonymise: bool,
}

/// The writer's handle: cheap to clone, `log` never blocks.
#[derive(Clone)]
pub struct QueryLog {
    tx: Sender<Pending>,
    counters: Arc<WriterCounters>,
    pseudonymise: bool,
    coalesce: bool,
}

/// The writer thread; [`QueryLogWriter::close`] drains what is queued and stops it.
pub struct QueryLogWriter {
    log: Option<QueryLog>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl QueryLog {
    /// Opens the state directory's triage file (migrating it like the store does), and starts
    /// the writer thread.
    pub fn spawn(state_dir: &Path, cfg: &QueryLogConfig) -> Result<(QueryLog, QueryLogWriter)> {
        let pseud = if cfg.pseudonymise {
            Some(Pseudonymiser::load_or_create(state_dir)?)
        } else {
            None
        };
        // the store creates or migrates the schema
        drop(crate::SqliteStore::open(state_dir)?);
        let path = state_dir.join(crate::TRIAGE_FILE);
        let conn = open_conn(&path)?;
        conn.execute(
            "UPDATE meta SET v = ? WHERE k = 'querylog_pseudonymise'",
            [cfg.pseudonymise as i64],
        )?;
        let (tx, rx) = crossbeam_channel::bounded(cfg.queue.max(1));
        let counters = Arc::new(WriterCounters::default());
        let log = QueryLog {
            tx,
            counters: counters.clone(),
            pseudonymise: cfg.pseudonymise,
            coalesce: cfg.coalesce,
        };
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut w = Writer {
            stop: stop.clone(),
            conn,
            rx,
            counters,
            pseud,
            cids: HashMap::new(),
            cfg: cfg.clone(),
            wal: {
                let mut w = path.clone().into_os_string();
                w.push("-wal");
                PathBuf::from(w)
            },
        };
        let thread = std::thread::Builder::new()
            .name("dnsight-querylog".into())
            .spawn(move || w.run())
            .map_err(|e| db(format!("starting the query-log writer: {e}")))?;
        Ok((
            log.clone(),
            QueryLogWriter {
                log: Some(log),
                stop,
                thread: Some(thread),
            },
        ))
    }

    /// Queues one transaction; never blocks (a full queue drops it, counted).
    pub fn log(&self, ev: &DnsEvent) {
        self.log_row(LogRow::from_event(ev));
    }

    /// Queues one transaction, waiting while the queue is full (offline runs: `analyze`
    /// would rather wait for the disk than lose rows).
    pub fn log_blocking(&self, ev: &DnsEvent) {
        let p = Pending {
            row: LogRow::from_event(ev),
            count: 1,
        };
        if self.tx.send(p).is_ok() {
            self.counters.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues a row, or gives it back when the queue is full (not counted as dropped: the
    /// caller decides; benchmarks wait for room).
    pub fn try_log_row(&self, row: LogRow) -> std::result::Result<(), LogRow> {
        match self.tx.try_send(Pending { row, count: 1 }) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(p)) | Err(TrySendError::Disconnected(p)) => Err(p.row),
        }
    }

    pub fn log_row(&self, row: LogRow) {
        self.send(Pending { row, count: 1 });
    }

    /// Queues a row of `count` transactions; never blocks (a full queue drops them, counted).
    fn send(&self, p: Pending) {
        let n = p.count;
        match self.tx.try_send(p) {
            Ok(()) => {
                self.counters.queued.fetch_add(n, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// A coalescing front for one producer thread (the resolver's event thread): see
    /// [`SinkCoalescer`]. With `coalesce = false` it queues every transaction as it comes.
    pub fn coalescing(&self) -> SinkCoalescer {
        SinkCoalescer {
            log: self.clone(),
            on: self.coalesce,
            slots: Vec::new(),
            index: HashMap::new(),
            keys: std::hash::RandomState::new(),
            newest: i64::MIN,
            last_check: Instant::now(),
        }
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            queued: c.queued.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            rows_written: c.rows.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            deleted: c.deleted.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            yields: c.yields.load(Ordering::Relaxed),
            queue_depth: self.tx.len() as u64,
            queue_capacity: self.tx.capacity().unwrap_or(0) as u64,
            last_commit_us: c.last_commit_us.load(Ordering::Relaxed),
            commit_us_total: c.commit_us_total.load(Ordering::Relaxed),
            commit_buckets: c
                .commit_buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            pseudonymise: self.pseudonymise,
        }
    }
}

impl QueryLogWriter {
    /// Writes every row queued so far, then stops the thread (rows that clones of
    /// [`QueryLog`] send later are counted as dropped).
    pub fn close(mut self) -> WriterStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.log.take().map(|l| l.stats()).unwrap_or_default()
    }
}

impl Drop for QueryLogWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).map_err(|e| db(format!("opening {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // 128 MiB of page cache: the newest buckets of the indexes stay in memory
    conn.pragma_update(None, "cache_size", -131072)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // checkpoint every 64 MiB of WAL, not every 4 MiB: the same hot index pages would
    // otherwise be copied into the file after every few commits
    conn.pragma_update(None, "wal_autocheckpoint", 16384)?;
    Ok(conn)
}

/// Rows per multi-row INSERT statement (x [`INSERT_COLS`] parameters, under SQLite's limit).
const INSERT_ROWS: usize = 64;
const INSERT_COLS: usize = 12;

fn insert_sql(rows: usize) -> String {
    let mut s = String::from(
        "INSERT INTO queries (ts, cid, rname, qtype, rcode, answers, action, blocked, upstream_us, source, transport, count) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            s.push(',');
        }
        s.push_str("(?,?,?,?,?,?,?,?,?,?,?,?)");
    }
    s
}

/// Binds one row's columns at parameters `base + 1 ..= base + INSERT_COLS`.
fn bind_row(
    st: &mut rusqlite::CachedStatement<'_>,
    base: usize,
    p: &Pending,
    cid: i64,
) -> rusqlite::Result<()> {
    let r = &p.row;
    st.raw_bind_parameter(base + 1, r.ts_us)?;
    st.raw_bind_parameter(base + 2, cid)?;
    st.raw_bind_parameter(base + 3, r.rname.as_str())?;
    st.raw_bind_parameter(base + 4, r.qtype)?;
    st.raw_bind_parameter(base + 5, r.rcode)?;
    st.raw_bind_parameter(base + 6, r.answers.as_deref())?;
    st.raw_bind_parameter(base + 7, r.action.map(|a| a as i64))?;
    st.raw_bind_parameter(base + 8, r.blocked.as_deref())?;
    st.raw_bind_parameter(base + 9, r.upstream_us)?;
    st.raw_bind_parameter(base + 10, r.source as i64)?;
    st.raw_bind_parameter(base + 11, r.transport as i64)?;
    st.raw_bind_parameter(base + 12, p.count as i64)?;
    Ok(())
}

/// Queries, blocks and NXDOMAINs of a roll-up cell.
type Counts = [i64; 3];

/// Adds `n` transactions (negative: subtracts them).
fn add_counts(c: &mut Counts, blocked: bool, rcode: Option<u16>, n: i64) {
    c[0] += n;
    c[1] += n * i64::from(blocked);
    c[2] += n * i64::from(rcode == Some(3));
}

/// Roll-up deltas of some rows: per minute (all devices) and per (hour, client).
#[derive(Default)]
struct Rollup {
    minutes: HashMap<i64, Counts>,
    hours: HashMap<(i64, i64), Counts>,
}

impl Rollup {
    /// Adds a row of `n` transactions (negative: subtracts it).
    fn add(&mut self, ts: i64, cid: i64, blocked: bool, rcode: Option<u16>, n: i64) {
        let m = ts.div_euclid(US_PER_MINUTE);
        let h = ts.div_euclid(US_PER_HOUR);
        add_counts(self.minutes.entry(m).or_default(), blocked, rcode, n);
        add_counts(self.hours.entry((h, cid)).or_default(), blocked, rcode, n);
    }

    /// Adds the deltas to the roll-up tables (cells that fall to zero are removed).
    fn apply(&self, tx: &Connection) -> rusqlite::Result<()> {
        let mut m = tx.prepare_cached(
            "INSERT INTO query_minutes (minute, queries, blocked, nxdomain) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (minute) DO UPDATE SET queries = queries + ?2, blocked = blocked + ?3, \
             nxdomain = nxdomain + ?4",
        )?;
        for (k, c) in &self.minutes {
            m.execute(params![k, c[0], c[1], c[2]])?;
        }
        let mut h = tx.prepare_cached(
            "INSERT INTO query_hours (hour, cid, queries, blocked, nxdomain) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (hour, cid) DO UPDATE SET queries = queries + ?3, blocked = blocked + ?4, \
             nxdomain = nxdomain + ?5",
        )?;
        // in key order: the cells of one batch are neighbours in the table
        let mut hours: Vec<_> = self.hours.iter().collect();
        hours.sort_unstable_by_key(|(k, _)| **k);
        for ((hour, cid), c) in hours {
            h.execute(params![hour, cid, c[0], c[1], c[2]])?;
        }
        // cells the retention emptied (only those it touched: the tables are not scanned)
        let mut m0 =
            tx.prepare_cached("DELETE FROM query_minutes WHERE minute = ? AND queries <= 0")?;
        for (k, _) in self.minutes.iter().filter(|(_, c)| c[0] < 0) {
            m0.execute([k])?;
        }
        let mut h0 = tx.prepare_cached(
            "DELETE FROM query_hours WHERE hour = ? AND cid = ? AND queries <= 0",
        )?;
        for ((hour, cid), _) in self.hours.iter().filter(|(_, c)| c[0] < 0) {
            h0.execute([hour, cid])?;
        }
        Ok(())
    }
}

/// A row the writer is about to store: the first of `count` identical transactions.
#[derive(Debug)]
struct Pending {
    row: LogRow,
    count: u64,
}

const US_PER_SECOND: i64 = 1_000_000;
/// Longest (wall clock) a coalesced row waits in the writer for more of its kind when no
/// newer second arrives; with traffic, a second's rows are written as soon as a row of a
/// later second is gathered.
pub const COALESCE_WAIT: Duration = Duration::from_secs(1);

/// A row as a coalescing key: equal when the event times fall in the same second (of the
/// Unix epoch) and the client, name, type, rcode, answers, action, blocked-by, source and
/// transport are the same; the time within the second and the upstream latency are not
/// compared.
struct Key(LogRow);

impl Key {
    fn second(&self) -> i64 {
        self.0.ts_us.div_euclid(US_PER_SECOND)
    }
}

impl PartialEq for Key {
    fn eq(&self, o: &Key) -> bool {
        let (a, b) = (&self.0, &o.0);
        self.second() == o.second()
            && a.client == b.client
            && a.qtype == b.qtype
            && a.rcode == b.rcode
            && a.action == b.action
            && a.source == b.source
            && a.transport == b.transport
            && a.rname == b.rname
            && a.answers == b.answers
            && a.blocked == b.blocked
    }
}
impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let r = &self.0;
        self.second().hash(h);
        r.client.hash(h);
        r.rname.hash(h);
        r.qtype.hash(h);
        r.rcode.hash(h);
        r.answers.hash(h);
        r.action.hash(h);
        r.blocked.hash(h);
        r.source.hash(h);
        r.transport.hash(h);
    }
}

/// What a coalesced row has gathered: the earliest event time, the transactions, the
/// highest upstream latency among them, and when (wall clock) the writer first saw one.
struct Group {
    ts_us: i64,
    count: u64,
    upstream_us: Option<u32>,
    born: Instant,
}

/// The writer's coalescing of identical transactions (on by default,
/// [`QueryLogConfig::coalesce`]): the transactions of one client within one second (event
/// time) that agree on every stored field but the time and the upstream latency become one
/// row with their `count`, the earliest time and the **highest** upstream latency (the worst
/// wait is what an incident asks about; a mean would hide it). This runs in the writer thread
/// as it drains the queue, before SQLite: a hash-map lookup per transaction instead of a
/// row with four index entries. A second's rows are written once a row of a later second is
/// gathered, or after [`COALESCE_WAIT`]; a transaction that arrives after its second's row
/// was written (late, out of order) starts another row of the same second, so one second
/// holds *usually* one row per kind, never a wrong count.
struct Coalescer {
    on: bool,
    open: HashMap<Key, Group>,
    /// The newest second (event time) gathered.
    newest: i64,
    /// Rows ready to be written, in the order they closed.
    ready: Vec<Pending>,
}

impl Coalescer {
    fn new(on: bool) -> Coalescer {
        Coalescer {
            on,
            open: HashMap::new(),
            newest: i64::MIN,
            ready: Vec::new(),
        }
    }

    /// Rows held (open and ready).
    fn rows(&self) -> usize {
        self.open.len() + self.ready.len()
    }

    fn add(&mut self, p: Pending) {
        if !self.on {
            self.ready.push(p);
            return;
        }
        let Pending { row: r, count } = p;
        let (ts, up) = (r.ts_us, r.upstream_us);
        self.newest = self.newest.max(ts.div_euclid(US_PER_SECOND));
        match self.open.entry(Key(r)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let g = e.get_mut();
                g.count += count;
                g.ts_us = g.ts_us.min(ts);
                g.upstream_us = g.upstream_us.max(up);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Group {
                    ts_us: ts,
                    count,
                    upstream_us: up,
                    born: Instant::now(),
                });
            }
        }
    }

    /// Moves to `ready` the rows whose second is over (a later second was gathered) or that
    /// waited [`COALESCE_WAIT`], or every row with `all`; the moved rows in time order.
    fn close(&mut self, all: bool) {
        if self.open.is_empty() {
            return;
        }
        let newest = self.newest;
        let now = Instant::now();
        let from = self.ready.len();
        self.ready.extend(
            self.open
                .extract_if(|k, g| {
                    all || k.second() < newest || now.duration_since(g.born) >= COALESCE_WAIT
                })
                .map(|(Key(mut row), g)| {
                    row.ts_us = g.ts_us;
                    row.upstream_us = g.upstream_us;
                    Pending {
                        row,
                        count: g.count,
                    }
                }),
        );
        self.ready[from..].sort_unstable_by_key(|p| p.row.ts_us);
    }
}

/// Most groups a [`SinkCoalescer`] holds before it queues them all.
const SINK_GROUPS: usize = 4096;
/// How often a [`SinkCoalescer`]'s `flush` looks for groups that waited long enough.
const SINK_CHECK: Duration = Duration::from_millis(100);

/// The coalescing of [`Coalescer`] done earlier, on the producer's own thread, for the
/// resolver's event thread: identical events of one second (the same client, name, type,
/// rcode, answers by type and data (not TTL), verdict, source and transport) are counted
/// against the first one kept, and become one row (built once) queued with its count. An
/// event that repeats a group costs a keyed hash and a comparison: no row is built, nothing
/// is queued, the writer does nothing for it. Groups are queued when an event of a later
/// second arrives, when `flush` (the event thread calls it when its queue runs empty) finds
/// them [`COALESCE_WAIT`] old, when more than [`SINK_GROUPS`] are held, and at `close`. The
/// writer's own coalescing still merges what arrives from several producers.
pub struct SinkCoalescer {
    log: QueryLog,
    on: bool,
    slots: Vec<Slot>,
    /// Keyed hash of a group's fields → its slot (a collision of two different groups queues
    /// the older one first, so counts are never merged wrongly).
    index: HashMap<u64, usize>,
    keys: std::hash::RandomState,
    /// The newest second (event time) seen.
    newest: i64,
    last_check: Instant,
}

struct Slot {
    ev: DnsEvent,
    ts_us: i64,
    count: u64,
    upstream_us: Option<u32>,
    born: Instant,
}

fn same_group(a: &DnsEvent, b: &DnsEvent) -> bool {
    a.ts.micros().div_euclid(US_PER_SECOND) == b.ts.micros().div_euclid(US_PER_SECOND)
        && a.client == b.client
        && a.qtype == b.qtype
        && a.rcode == b.rcode
        && a.source == b.source
        && a.transport == b.transport
        && a.verdict == b.verdict
        && a.qname == b.qname
        && a.answers.len() == b.answers.len()
        && a.answers
            .iter()
            .zip(&b.answers)
            .all(|(x, y)| x.rtype == y.rtype && x.data == y.data)
}

impl SinkCoalescer {
    fn hash(&self, ev: &DnsEvent) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.keys.build_hasher();
        ev.ts.micros().div_euclid(US_PER_SECOND).hash(&mut h);
        ev.client.hash(&mut h);
        ev.qname.hash(&mut h);
        ev.qtype.hash(&mut h);
        ev.rcode.hash(&mut h);
        for a in &ev.answers {
            a.rtype.hash(&mut h);
            a.data.hash(&mut h);
        }
        ev.verdict.hash(&mut h);
        ev.source.hash(&mut h);
        ev.transport.hash(&mut h);
        h.finish()
    }

    /// Counts one transaction (queues it at once when coalescing is off).
    pub fn event(&mut self, ev: &DnsEvent) {
        if !self.on {
            self.log.log(ev);
            return;
        }
        let sec = ev.ts.micros().div_euclid(US_PER_SECOND);
        if sec > self.newest {
            // every group held is of an older second: done
            self.newest = sec;
            self.queue_all();
        }
        let h = self.hash(ev);
        if let Some(&i) = self.index.get(&h) {
            let s = &mut self.slots[i];
            if same_group(&s.ev, ev) {
                s.count += 1;
                s.ts_us = s.ts_us.min(ev.ts.micros());
                s.upstream_us = s.upstream_us.max(upstream_of(ev));
                return;
            }
            // a different group with the same hash: queue the held one, keep the new
            let old = std::mem::replace(s, Self::slot(ev));
            self.queue(old);
            return;
        }
        if self.slots.len() >= SINK_GROUPS {
            self.queue_all();
        }
        self.index.insert(h, self.slots.len());
        self.slots.push(Self::slot(ev));
    }

    fn slot(ev: &DnsEvent) -> Slot {
        Slot {
            ev: ev.clone(),
            ts_us: ev.ts.micros(),
            count: 1,
            upstream_us: upstream_of(ev),
            born: Instant::now(),
        }
    }

    fn queue(&self, s: Slot) {
        let mut row = LogRow::from_event(&s.ev);
        row.ts_us = s.ts_us;
        row.upstream_us = s.upstream_us;
        self.log.send(Pending {
            row,
            count: s.count,
        });
    }

    fn queue_all(&mut self) {
        self.index.clear();
        let slots = std::mem::take(&mut self.slots);
        for s in slots {
            self.queue(s);
        }
    }

    /// Queues the groups of seconds before the newest, and those [`COALESCE_WAIT`] old;
    /// cheap when called often (it looks at most every [`SINK_CHECK`]).
    pub fn flush(&mut self) {
        if self.slots.is_empty() || self.last_check.elapsed() < SINK_CHECK {
            return;
        }
        self.last_check = Instant::now();
        let newest = self.newest;
        let due = |s: &Slot| {
            s.ts_us.div_euclid(US_PER_SECOND) < newest || s.born.elapsed() >= COALESCE_WAIT
        };
        if !self.slots.iter().any(due) {
            return;
        }
        let (go, keep): (Vec<Slot>, Vec<Slot>) = std::mem::take(&mut self.slots)
            .into_iter()
            .partition(|s| due(s));
        self.index.clear();
        for s in keep {
            let h = self.hash(&s.ev);
            self.index.insert(h, self.slots.len());
            self.slots.push(s);
        }
        for s in go {
            self.queue(s);
        }
    }

    /// Queues every group held (at shutdown).
    pub fn close(&mut self) {
        self.queue_all();
    }
}

impl Drop for SinkCoalescer {
    fn drop(&mut self) {
        self.queue_all();
    }
}

struct Writer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    conn: Connection,
    rx: Receiver<Pending>,
    counters: Arc<WriterCounters>,
    pseud: Option<Pseudonymiser>,
    /// Client address → its id in `query_clients` (bounded: cleared when large, and after a
    /// failed transaction, which may have rolled back new ids).
    cids: HashMap<IpAddr, i64>,
    cfg: QueryLogConfig,
    /// The WAL file, flushed to disk by a helper thread while the log writes.
    wal: PathBuf,
}

/// How often the WAL is flushed while the log writes.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

impl Writer {
    /// Writes until stopped. Beside it a helper thread `fdatasync`s the WAL every
    /// [`FLUSH_EVERY`] while rows are written: the log's own commits never wait for the disk
    /// (`synchronous=NORMAL`), but a triage action commits with `synchronous=FULL`, and its
    /// fsync would otherwise have to write everything the log put into the WAL since the last
    /// checkpoint (tens of MiB under a backlog) before the action is confirmed.
    fn run(&mut self) {
        let done = AtomicBool::new(false);
        let (wal, counters) = (self.wal.clone(), self.counters.clone());
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut seen = 0;
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(FLUSH_EVERY);
                    let b = counters.batches.load(Ordering::Relaxed);
                    if b != seen {
                        seen = b;
                        if let Ok(f) = std::fs::File::open(&wal) {
                            let _ = f.sync_data();
                        }
                    }
                }
            });
            self.write_until_stopped();
            done.store(true, Ordering::Relaxed);
        });
    }

    fn write_until_stopped(&mut self) {
        let mut co = Coalescer::new(self.cfg.coalesce);
        let mut last_maint = Instant::now();
        let mut disconnected = false;
        self.maintain();
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            if (stopping && self.rx.is_empty()) || disconnected {
                co.close(true);
                self.write(&co.ready);
                co.ready.clear();
                break;
            }
            // wait for a first row, then gather until BATCH_WAIT passed (or the writer holds
            // BATCH_ROWS rows to write); rows that wait for their second to end stay in `co`
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => {
                    co.add(r);
                    // gather by polling, never by waiting on the channel: a receiver blocked
                    // in `recv` is woken by every send (a futex wake and a context switch per
                    // row, on the resolver's core when both share one); sleeping between
                    // drains costs one wake per poll instead
                    let deadline = Instant::now() + BATCH_WAIT;
                    'gather: while co.rows() < BATCH_ROWS {
                        loop {
                            match self.rx.try_recv() {
                                Ok(r) => {
                                    co.add(r);
                                    if co.rows() >= BATCH_ROWS {
                                        break 'gather;
                                    }
                                }
                                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                                    disconnected = true;
                                    break 'gather;
                                }
                                Err(crossbeam_channel::TryRecvError::Empty) => break,
                            }
                        }
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() || self.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(left.min(GATHER_POLL));
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => disconnected = true,
            }
            co.close(disconnected || self.stop.load(Ordering::Relaxed) || co.rows() >= BATCH_ROWS);
            if !co.ready.is_empty() {
                self.write(&co.ready);
                co.ready.clear();
            }
            if last_maint.elapsed() >= MAINTAIN_EVERY {
                last_maint = Instant::now();
                self.maintain();
            }
        }
        self.maintain();
    }

    /// Writes rows in transactions of about [`TX_BUDGET`] each (fewer when an action waits).
    fn write(&mut self, rows: &[Pending]) {
        let mut done = 0;
        while done < rows.len() {
            let t0 = Instant::now();
            let r = write_tx(
                &self.conn,
                &mut self.cids,
                self.pseud.as_ref(),
                &rows[done..],
                t0,
            );
            let c = &self.counters;
            match r {
                Ok((n, yielded)) => {
                    let tx: u64 = rows[done..done + n].iter().map(|p| p.count).sum();
                    done += n;
                    c.written.fetch_add(tx, Ordering::Relaxed);
                    c.rows.fetch_add(n as u64, Ordering::Relaxed);
                    c.batches.fetch_add(1, Ordering::Relaxed);
                    let us = t0.elapsed().as_micros() as u64;
                    c.last_commit_us.store(us, Ordering::Relaxed);
                    c.commit_us_total.fetch_add(us, Ordering::Relaxed);
                    let i = COMMIT_BUCKETS_US
                        .iter()
                        .position(|&b| us <= b)
                        .unwrap_or(COMMIT_BUCKETS_US.len());
                    c.commit_buckets[i].fetch_add(1, Ordering::Relaxed);
                    if done < rows.len() {
                        // more to write: leave a gap for whoever waits for the lock (this
                        // process's store is told by LOCK_WANTED and polls every ms; other
                        // processes poll with their own busy handlers)
                        if yielded {
                            c.yields.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(if yielded { 3 } else { 1 }));
                    }
                }
                Err(e) => {
                    // the transaction rolled back (the disk is full, the file is broken): the
                    // rest of the batch is lost, counted, and new client ids with it
                    let n: u64 = rows[done..].iter().map(|p| p.count).sum();
                    done = rows.len();
                    self.cids.clear();
                    c.write_errors.fetch_add(1, Ordering::Relaxed);
                    c.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing_warn(&format!("query log: {n} transactions were lost: {e}"));
                }
            }
        }
    }

    /// Retention: by days (relative to the newest row), then by size.
    fn maintain(&mut self) {
        if let Err(e) = self.retain() {
            tracing_warn(&format!("query log retention: {e}"));
        }
    }

    /// Deletes up to `n` of the oldest rows (older than `cutoff` when given), subtracting their
    /// `count`s from the roll-ups in the same transaction. Returns how many rows went.
    fn delete_oldest(&mut self, cutoff: Option<i64>, n: i64) -> rusqlite::Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut roll = Rollup::default();
        let (mut d, mut tx_deleted) = (0, 0u64);
        {
            let mut st = tx.prepare_cached(
                "DELETE FROM queries WHERE id IN (SELECT id FROM queries INDEXED BY queries_ts \
                 WHERE ts < ?1 ORDER BY ts LIMIT ?2) \
                 RETURNING ts, cid, blocked IS NOT NULL, rcode, count",
            )?;
            let mut q = st.query(params![cutoff.unwrap_or(i64::MAX), n])?;
            while let Some(r) = q.next()? {
                let rcode: Option<i64> = r.get(3)?;
                let count: i64 = r.get(4)?;
                roll.add(
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    rcode.map(|c| c.clamp(0, 65535) as u16),
                    -count,
                );
                d += 1;
                tx_deleted += count.max(0) as u64;
            }
        }
        roll.apply(&tx)?;
        tx.commit()?;
        self.counters
            .deleted
            .fetch_add(tx_deleted, Ordering::Relaxed);
        Ok(d)
    }

    fn retain(&mut self) -> rusqlite::Result<()> {
        if let Some(days) = self.cfg.retention_days {
            let newest: Option<i64> =
                self.conn
                    .query_row("SELECT MAX(ts) FROM queries", [], |r| r.get(0))?;
            if let Some(newest) = newest {
                let cutoff = newest.saturating_sub(i64::from(days) * US_PER_DAY);
                while self.delete_oldest(Some(cutoff), DELETE_CHUNK)? as i64 >= DELETE_CHUNK {}
            }
        }
        if let Some(max) = self.cfg.max_bytes {
            let mut left = 0u64;
            for _ in 0..10_000 {
                if left == 0 {
                    let used = used_bytes(&self.conn)?;
                    if used <= max {
                        break;
                    }
                    let rows = approx_rows(&self.conn)?;
                    if rows == 0 {
                        break;
                    }
                    // delete the oldest share that brings the file to 90 % of its limit
                    let excess = used - max * 9 / 10;
                    left =
                        ((rows as u128 * excess as u128 / used.max(1) as u128) as u64).max(1_000);
                }
                let n = left.min(DELETE_CHUNK as u64);
                let d = self.delete_oldest(None, n as i64)? as u64;
                if d == 0 {
                    break;
                }
                left = left.saturating_sub(d);
            }
        }
        Ok(())
    }
}

/// The id of a client, interning it (inside the caller's transaction) when new.
fn cid(
    tx: &Connection,
    cids: &mut HashMap<IpAddr, i64>,
    pseud: Option<&Pseudonymiser>,
    ip: IpAddr,
) -> rusqlite::Result<i64> {
    if let Some(&c) = cids.get(&ip) {
        return Ok(c);
    }
    if cids.len() > 100_000 {
        cids.clear();
    }
    let stored = match pseud {
        Some(p) => p.pseudonym(ip),
        None => ip.to_string(),
    };
    tx.prepare_cached(
        "INSERT INTO query_clients (client) VALUES (?) ON CONFLICT (client) DO NOTHING",
    )?
    .execute([&stored])?;
    let c: i64 = tx
        .prepare_cached("SELECT id FROM query_clients WHERE client = ?")?
        .query_row([&stored], |r| r.get(0))?;
    cids.insert(ip, c);
    Ok(c)
}

/// One transaction with the first rows of `rows`, until [`TX_BUDGET`] since `t0` is spent or
/// an action of this process waits for the lock. Returns the rows written and whether it
/// stepped aside for an action.
fn write_tx(
    conn: &Connection,
    cids: &mut HashMap<IpAddr, i64>,
    pseud: Option<&Pseudonymiser>,
    rows: &[Pending],
    t0: Instant,
) -> rusqlite::Result<(usize, bool)> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    LOCK_WANTED.store(false, Ordering::Relaxed);
    let mut roll = Rollup::default();
    let mut yielded = false;
    let mut i = 0;
    let mut ids = [0i64; INSERT_ROWS];
    while i < rows.len() {
        let k = (rows.len() - i).min(INSERT_ROWS);
        let chunk = &rows[i..i + k];
        for (j, p) in chunk.iter().enumerate() {
            let r = &p.row;
            ids[j] = cid(&tx, cids, pseud, r.client)?;
            roll.add(
                r.ts_us,
                ids[j],
                r.blocked.is_some(),
                r.rcode,
                p.count as i64,
            );
        }
        if k == INSERT_ROWS {
            // one statement of INSERT_ROWS rows, prepared once and reused
            let mut st = tx.prepare_cached(&insert_sql(INSERT_ROWS))?;
            for (j, r) in chunk.iter().enumerate() {
                bind_row(&mut st, j * INSERT_COLS, r, ids[j])?;
            }
            st.raw_execute()?;
        } else {
            let mut st = tx.prepare_cached(&insert_sql(1))?;
            for (j, r) in chunk.iter().enumerate() {
                bind_row(&mut st, 0, r, ids[j])?;
                st.raw_execute()?;
            }
        }
        i += k;
        if LOCK_WANTED.load(Ordering::Relaxed) {
            yielded = true;
            break;
        }
        if t0.elapsed() >= TX_BUDGET {
            break;
        }
    }
    roll.apply(&tx)?;
    tx.commit()?;
    Ok((i, yielded))
}

fn tracing_warn(msg: &str) {
    // the triage crate has no logging dependency: stderr, like a tracing line would go
    eprintln!("dnsight: {msg}");
}

/// Bytes of the file's pages in use (its size minus the free list).
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// Rows in the log, from the id range (exact while nothing but the oldest rows was deleted,
/// which is all the retention does; never a full count of millions of rows).
fn approx_rows(conn: &Connection) -> rusqlite::Result<u64> {
    let (lo, hi): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT MIN(id), MAX(id) FROM queries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(match (lo, hi) {
        (Some(lo), Some(hi)) => (hi - lo + 1).max(0) as u64,
        _ => 0,
    })
}

// ---------------------------------------------------------------- search

/// Which rows a search returns. Empty fields mean "any".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryFilter {
    /// Client address (hashed with the key when the log is pseudonymised) or a stored
    /// pseudonym (`anon-...`).
    #[serde(default)]
    pub device: Option<String>,
    /// Exact name.
    #[serde(default)]
    pub name: Option<String>,
    /// The name or anything under it.
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub qtype: Option<u16>,
    #[serde(default)]
    pub rcode: Option<u16>,
    /// Only blocked (true) or only not blocked (false).
    #[serde(default)]
    pub blocked: Option<bool>,
    /// Event time at or after (Unix microseconds).
    #[serde(default)]
    pub since_us: Option<i64>,
    /// Event time before (Unix microseconds).
    #[serde(default)]
    pub until_us: Option<i64>,
    /// Continue after this cursor (from the previous page's `next`).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (default 100, at most [`MAX_PAGE`]).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One logged transaction as searches return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryRow {
    pub id: i64,
    /// Event time, Unix microseconds.
    pub ts_us: i64,
    /// RFC 3339.
    pub time: String,
    /// Client address, or its pseudonym.
    pub client: String,
    /// Escaped presentation name (printable ASCII).
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    /// None when no response was seen.
    pub rcode: Option<String>,
    /// `TYPE data` per answer.
    pub answers: Vec<String>,
    /// What the resolver did (None for passive sources).
    pub action: Option<String>,
    /// The rule that blocked it.
    pub blocked: Option<String>,
    /// The highest upstream latency of the row's transactions.
    pub upstream_us: Option<u32>,
    pub source: String,
    pub transport: String,
    /// Identical transactions this row stands for (same client, name, type, rcode, answers,
    /// action, blocked-by, source and transport within one second; `time` is the first's).
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

/// One page of a search, newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryPage {
    pub rows: Vec<QueryRow>,
    /// Cursor of the next page (None: this was the last).
    pub next: Option<String>,
}

/// Disk use and size of the log (any reader can compute it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryLogDisk {
    /// Rows stored (from the id range; see the module doc).
    pub rows: u64,
    /// Transactions those rows stand for (the sum of their `count`s, from the per-minute
    /// roll-up).
    #[serde(default)]
    pub queries: u64,
    pub oldest_us: Option<i64>,
    pub newest_us: Option<i64>,
    /// The triage file's size (the query log is most of it) and its WAL's.
    pub file_bytes: u64,
    pub wal_bytes: u64,
    /// Pages in use (the file keeps freed pages for reuse).
    pub used_bytes: u64,
    pub pseudonymise: bool,
}

fn parse_cursor(c: &str) -> Result<(i64, i64)> {
    let bad = || {
        invalid(format!(
            "{:?} is not a cursor from a previous page",
            c.escape_debug().take(60).collect::<String>()
        ))
    };
    let (a, b) = c.split_once('.').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// True when `name` is `suffix` or ends in `.suffix` at a label boundary (an escaped `\.` is
/// inside a label).
fn under(name: &str, suffix: &str) -> bool {
    if name == suffix {
        return true;
    }
    let Some(head) = name.strip_suffix(suffix) else {
        return false;
    };
    let Some(head) = head.strip_suffix('.') else {
        return false;
    };
    head.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 0
}

fn canonical_name(s: &str) -> Result<String> {
    let s = s.trim();
    let n = dnsight_model::Name::parse(s.strip_suffix('.').unwrap_or(s)).map_err(|e| {
        invalid(format!(
            "{:?} is not a domain name: {e}",
            s.escape_debug().take(80).collect::<String>()
        ))
    })?;
    Ok(n.as_str().to_string())
}

/// The key a device filter is stored under: the canonical address, its pseudonym when the log
/// is pseudonymised (hashed with the state directory's key), or a pseudonym given as is.
fn stored_client(conn: &Connection, state_dir: Option<&Path>, d: &str) -> Result<String> {
    match d.parse::<IpAddr>() {
        Ok(ip) => {
            let pseud: i64 = conn
                .query_row(
                    "SELECT v FROM meta WHERE k = 'querylog_pseudonymise'",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            Ok(match (pseud != 0, state_dir) {
                (true, Some(dir)) => match Pseudonymiser::load(dir)? {
                    Some(p) => p.pseudonym(ip),
                    None => canonical(ip).to_string(),
                },
                _ => canonical(ip).to_string(),
            })
        }
        Err(_) if d.starts_with("anon-") && d.len() <= 40 => Ok(d.to_string()),
        Err(_) => Err(invalid(format!(
            "{:?} is not an IP address (or a pseudonym anon-...)",
            d.escape_debug().take(60).collect::<String>()
        ))),
    }
}

/// The interned id of a device filter (None: no row has that client).
fn device_id(conn: &Connection, state_dir: Option<&Path>, d: &str) -> Result<Option<i64>> {
    let stored = stored_client(conn, state_dir, d)?;
    Ok(conn
        .prepare_cached("SELECT id FROM query_clients WHERE client = ?")?
        .query_row([stored], |r| r.get(0))
        .optional()?)
}

/// The search indexes' time bucket of an event time.
fn bucket(ts: i64) -> i64 {
    ts >> BUCKET_SHIFT
}

/// The oldest and newest event times in the log.
fn extent(conn: &Connection) -> Result<Option<(i64, i64)>> {
    let lo: Option<i64> = conn.query_row("SELECT MIN(ts) FROM queries", [], |r| r.get(0))?;
    let hi: Option<i64> = conn.query_row("SELECT MAX(ts) FROM queries", [], |r| r.get(0))?;
    Ok(lo.zip(hi))
}

/// Most buckets one timeline may hold.
pub const MAX_BUCKETS: i64 = 10_000;

/// Queries, blocks and NXDOMAIN answers in one time bucket (for charts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineBucket {
    /// Start of the bucket, Unix microseconds (event time).
    pub start_us: i64,
    pub queries: u64,
    pub blocked: u64,
    pub nxdomain: u64,
}

fn add_to(out: &mut [TimelineBucket], since_us: i64, step_us: i64, t: i64, c: Counts) {
    if t < since_us {
        return;
    }
    if let Some(slot) = usize::try_from((t - since_us) / step_us)
        .ok()
        .and_then(|b| out.get_mut(b))
    {
        slot.queries += c[0].max(0) as u64;
        slot.blocked += c[1].max(0) as u64;
        slot.nxdomain += c[2].max(0) as u64;
    }
}

/// Counts the rows of `[from, to)` into the buckets (all devices, or one by its id).
fn timeline_rows(
    conn: &Connection,
    cid: Option<i64>,
    from: i64,
    to: i64,
    since_us: i64,
    step_us: i64,
    out: &mut [TimelineBucket],
) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    let mut run = |sql: &str, args: Vec<Value>| -> Result<()> {
        let mut st = conn.prepare_cached(sql)?;
        let mut rows = st.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            add_to(
                out,
                since_us,
                step_us,
                since_us + r.get::<_, i64>(0)? * step_us,
                [r.get(1)?, r.get(2)?, r.get(3)?],
            );
        }
        Ok(())
    };
    let head = "SELECT (ts - ?1) / ?2 AS b, SUM(count), \
        COALESCE(SUM(CASE WHEN blocked IS NOT NULL THEN count END), 0), \
        COALESCE(SUM(CASE WHEN rcode = 3 THEN count END), 0) FROM queries";
    match cid {
        None => run(
            &format!("{head} INDEXED BY queries_ts WHERE ts >= ?3 AND ts < ?4 GROUP BY b"),
            vec![
                Value::Integer(since_us),
                Value::Integer(step_us),
                Value::Integer(from),
                Value::Integer(to),
            ],
        ),
        Some(cid) => {
            let sql = format!(
                "{head} INDEXED BY queries_client WHERE (ts >> {BUCKET_SHIFT}) = ?5 AND cid = ?6 \
                 AND ts >= ?3 AND ts < ?4 GROUP BY b"
            );
            for b in bucket(from)..=bucket(to - 1) {
                run(
                    &sql,
                    vec![
                        Value::Integer(since_us),
                        Value::Integer(step_us),
                        Value::Integer(from),
                        Value::Integer(to),
                        Value::Integer(b),
                        Value::Integer(cid),
                    ],
                )?;
            }
            Ok(())
        }
    }
}

/// Counts per bucket of `step_us` from `since_us` (inclusive) to `until_us` (exclusive),
/// oldest first, every bucket present (zeros where nothing was logged); optionally for one
/// device (an address or a stored pseudonym, as in [`QueryFilter::device`]). Whole minutes
/// (all devices) or whole hours (one device) inside one bucket come from the roll-ups, the
/// rest from the rows: a `since` and `step` of whole minutes (hours) are answered from the
/// roll-ups alone but for the partial minute (hour) at the end.
pub fn timeline(
    conn: &Connection,
    state_dir: Option<&Path>,
    device: Option<&str>,
    since_us: i64,
    until_us: i64,
    step_us: i64,
) -> Result<Vec<TimelineBucket>> {
    if step_us <= 0 || until_us <= since_us {
        return Err(invalid("a timeline needs step > 0 and until > since"));
    }
    let n = (until_us - since_us + step_us - 1) / step_us;
    if n > MAX_BUCKETS {
        return Err(invalid(format!(
            "a timeline holds at most {MAX_BUCKETS} buckets ({n} asked)"
        )));
    }
    let mut out: Vec<TimelineBucket> = (0..n)
        .map(|i| TimelineBucket {
            start_us: since_us + i * step_us,
            ..TimelineBucket::default()
        })
        .collect();
    let cid = match device.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => match device_id(conn, state_dir, d)? {
            Some(c) => Some(c),
            None => return Ok(out),
        },
        None => None,
    };
    let cell = if cid.is_some() {
        US_PER_HOUR
    } else {
        US_PER_MINUTE
    };
    // the cells wholly inside [since, until); each that lies in one bucket comes from the
    // roll-up, the rest of the range (the partial cells at both ends, and the cells a bucket
    // boundary cuts when `since` or `step` is not whole cells) from the rows
    let c_lo = since_us.div_euclid(cell) + i64::from(since_us.rem_euclid(cell) != 0);
    let c_hi = until_us.div_euclid(cell);
    let bucket_of = |t: i64| (t - since_us) / step_us;
    let whole = |c: i64| bucket_of(c * cell) == bucket_of(c * cell + cell - 1);
    let mut raw: Vec<(i64, i64)> = Vec::new();
    let mut push_raw = |from: i64, to: i64| match raw.last_mut() {
        Some(last) if last.1 == from => last.1 = to,
        _ if to > from => raw.push((from, to)),
        _ => {}
    };
    if c_lo >= c_hi {
        push_raw(since_us, until_us);
    } else {
        push_raw(since_us, c_lo * cell);
        for c in c_lo..c_hi {
            if !whole(c) {
                push_raw(c * cell, c * cell + cell);
            }
        }
        push_raw(c_hi * cell, until_us);
        let mut add = |c: i64, v: Counts| {
            if whole(c) {
                add_to(&mut out, since_us, step_us, c * cell, v);
            }
        };
        match cid {
            None => {
                let mut st = conn.prepare_cached(
                    "SELECT minute, queries, blocked, nxdomain FROM query_minutes \
                     WHERE minute >= ? AND minute < ?",
                )?;
                let mut rows = st.query(params![c_lo, c_hi])?;
                while let Some(r) = rows.next()? {
                    add(r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?]);
                }
            }
            Some(cid) => {
                let mut st = conn.prepare_cached(
                    "SELECT queries, blocked, nxdomain FROM query_hours WHERE hour = ? AND cid = ?",
                )?;
                for h in (c_lo..c_hi).filter(|&h| whole(h)) {
                    if let Some(v) = st
                        .query_row(params![h, cid], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))
                        .optional()?
                    {
                        add(h, v);
                    }
                }
            }
        }
    }
    for (from, to) in raw {
        timeline_rows(conn, cid, from, to, since_us, step_us, &mut out)?;
    }
    Ok(out)
}

/// Which index a search walks.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// `(bucket, cid, ts)` or `(bucket, rname, ts)`, bucket by bucket, newest first.
    Bucketed(&'static str),
    /// `(ts)` or the blocked rows' `(ts)`, newest first.
    Time(&'static str),
}

const SELECT_ROW: &str = "SELECT q.id, q.ts, c.client, q.rname, q.qtype, q.rcode, q.answers, \
     q.action, q.blocked, q.upstream_us, q.source, q.transport, q.count FROM queries AS q";

/// Runs a search on any connection to the triage file (the API's, the dashboard's, a CLI's).
pub fn search(conn: &Connection, state_dir: Option<&Path>, f: &QueryFilter) -> Result<QueryPage> {
    let limit = f.limit.unwrap_or(100).clamp(1, MAX_PAGE) as usize;
    let mut wh: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut access = None;
    if let Some(n) = &f.name {
        wh.push("q.rname = ?".into());
        args.push(Value::Text(reverse(&canonical_name(n)?)));
        access = Some(Access::Bucketed("queries_rname"));
    }
    if let Some(d) = f.device.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        let Some(cid) = device_id(conn, state_dir, d)? else {
            return Ok(QueryPage::default());
        };
        wh.push("q.cid = ?".into());
        args.push(Value::Integer(cid));
        access = access.or(Some(Access::Bucketed("queries_client")));
    }
    let suffix = match &f.suffix {
        Some(s) => {
            let s = canonical_name(s.trim_start_matches("*."))?;
            if !s.is_empty() {
                let r = reverse(&s);
                // the name itself and names starting (reversed) with "moc.elpmaxe.": one range
                // of the index, [r, r + "/"), which also holds a few names that are not under
                // the suffix ("moc.elpmaxe-x"), dropped below with the escaped dots
                wh.push("q.rname >= ? AND q.rname < ?".into());
                args.push(Value::Text(r.clone()));
                args.push(Value::Text(format!("{r}/")));
                access = access.or(Some(Access::Bucketed("queries_rname")));
                Some(s)
            } else {
                None
            }
        }
        None => None,
    };
    if let Some(t) = f.qtype {
        wh.push("q.qtype = ?".into());
        args.push(Value::Integer(t.into()));
    }
    if let Some(r) = f.rcode {
        wh.push("q.rcode = ?".into());
        args.push(Value::Integer(r.into()));
    }
    match f.blocked {
        Some(true) => {
            wh.push("q.blocked IS NOT NULL".into());
            access = access.or(Some(Access::Time("queries_blocked")));
        }
        Some(false) => wh.push("q.blocked IS NULL".into()),
        None => {}
    }
    if let Some(s) = f.since_us {
        wh.push("q.ts >= ?".into());
        args.push(Value::Integer(s));
    }
    if let Some(u) = f.until_us {
        wh.push("q.ts < ?".into());
        args.push(Value::Integer(u));
    }
    let access = access.unwrap_or(Access::Time("queries_ts"));
    let mut cursor = match &f.cursor {
        Some(c) if !c.is_empty() => Some(parse_cursor(c)?),
        _ => None,
    };
    // the buckets to walk (one pass over the whole range for the time indexes)
    let buckets: Vec<Option<i64>> = match access {
        Access::Time(_) => vec![None],
        Access::Bucketed(_) => {
            let Some((oldest, newest)) = extent(conn)? else {
                return Ok(QueryPage::default());
            };
            let mut hi = newest;
            if let Some(u) = f.until_us {
                hi = hi.min(u.saturating_sub(1));
            }
            if let Some((ts, _)) = cursor {
                hi = hi.min(ts);
            }
            let lo = f.since_us.map_or(oldest, |s| s.max(oldest));
            if hi < lo {
                return Ok(QueryPage::default());
            }
            (bucket(lo)..=bucket(hi)).rev().map(Some).collect()
        }
    };
    let index = match access {
        Access::Time(i) | Access::Bucketed(i) => i,
    };
    let mut rows = Vec::with_capacity(limit.min(1024));
    let mut more = false;
    'buckets: for b in buckets {
        // a suffix filter's range may include false matches (escaped dots): fetch until full
        loop {
            let mut w = wh.clone();
            let mut a = args.clone();
            if let Some(b) = b {
                w.push(format!("(q.ts >> {BUCKET_SHIFT}) = ?"));
                a.push(Value::Integer(b));
            }
            if let Some((ts, id)) = cursor {
                w.push("q.ts <= ? AND (q.ts < ? OR q.id < ?)".into());
                a.extend([Value::Integer(ts), Value::Integer(ts), Value::Integer(id)]);
            }
            let sql = format!(
                "{SELECT_ROW} INDEXED BY {index} LEFT JOIN query_clients AS c ON c.id = q.cid \
                 {} ORDER BY q.ts DESC, q.id DESC LIMIT ?",
                if w.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", w.join(" AND "))
                }
            );
            let want = limit + 1 - rows.len();
            a.push(Value::Integer(want as i64));
            let mut st = conn.prepare_cached(&sql)?;
            let mut q = st.query(params_from_iter(a))?;
            let mut got = 0;
            while let Some(r) = q.next()? {
                got += 1;
                let id: i64 = r.get(0)?;
                let ts: i64 = r.get(1)?;
                cursor = Some((ts, id));
                let rname: String = r.get(3)?;
                let name = reverse(&rname);
                if let Some(s) = &suffix {
                    if !under(&name, s) {
                        continue;
                    }
                }
                if rows.len() == limit {
                    more = true;
                    break 'buckets;
                }
                let qtype: i64 = r.get(4)?;
                let rcode: Option<i64> = r.get(5)?;
                let answers: Option<String> = r.get(6)?;
                let action: Option<i64> = r.get(7)?;
                rows.push(QueryRow {
                    id,
                    ts_us: ts,
                    time: dnsight_model::Ts(ts).to_rfc3339(),
                    client: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    name,
                    qtype: dnsight_model::rtype_to_str(qtype.clamp(0, 65535) as u16).into_owned(),
                    rcode: rcode.map(|c| {
                        dnsight_model::rcode_to_str(c.clamp(0, 65535) as u16).into_owned()
                    }),
                    answers: answers
                        .map(|s| s.split('\t').map(str::to_string).collect())
                        .unwrap_or_default(),
                    action: action
                        .map(|c| label(&VerdictAction::ALL, c, VerdictAction::as_str).to_string()),
                    blocked: r.get(8)?,
                    upstream_us: r
                        .get::<_, Option<i64>>(9)?
                        .map(|v| v.clamp(0, u32::MAX as i64) as u32),
                    source: label(&Source::ALL, r.get(10)?, Source::as_str).to_string(),
                    transport: label(&Transport::ALL, r.get(11)?, Transport::as_str).to_string(),
                    count: r.get::<_, i64>(12)?.max(1) as u64,
                });
            }
            if got < want {
                break;
            }
        }
    }
    let next = if more {
        rows.last().map(|r| format!("{}.{}", r.ts_us, r.id))
    } else {
        None
    };
    Ok(QueryPage { rows, next })
}

/// Disk use and extent of the log.
pub fn disk(conn: &Connection, path: &Path) -> Result<QueryLogDisk> {
    let (oldest, newest): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT MIN(ts), MAX(ts) FROM queries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let pseud: i64 = conn
        .query_row(
            "SELECT v FROM meta WHERE k = 'querylog_pseudonymise'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let mut wal = PathBuf::from(path);
    wal.as_mut_os_string().push("-wal");
    let queries: i64 = conn.query_row(
        "SELECT COALESCE(SUM(queries), 0) FROM query_minutes",
        [],
        |r| r.get(0),
    )?;
    Ok(QueryLogDisk {
        rows: approx_rows(conn)?,
        queries: queries.max(0) as u64,
        oldest_us: oldest,
        newest_us: newest,
        file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        wal_bytes: std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        used_bytes: used_bytes(conn)?,
        pseudonymise: pseud != 0,
    })
}

/// Escapes one CSV field (RFC 4180 quoting; a leading `=`, `+`, `-`, `@`, tab or CR gets a
/// `'` so a spreadsheet never runs a name as a formula).
pub fn csv_field(s: &str) -> String {
    let guard = matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    let needs_quotes = guard || s.contains([',', '"', '\n', '\r']);
    let mut out = String::with_capacity(s.len() + 3);
    if needs_quotes {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if needs_quotes {
        out.push('"');
    }
    out
}

/// The CSV header line of [`csv_row`].
pub const CSV_HEADER: &str =
    "time,client,name,type,rcode,answers,action,blocked,upstream_us,source,transport,count\n";

/// One row as a CSV line (with its newline).
pub fn csv_row(r: &QueryRow) -> String {
    let fields = [
        r.time.clone(),
        r.client.clone(),
        r.name.clone(),
        r.qtype.clone(),
        r.rcode.clone().unwrap_or_default(),
        r.answers.join(" | "),
        r.action.clone().unwrap_or_default(),
        r.blocked.clone().unwrap_or_default(),
        r.upstream_us.map(|v| v.to_string()).unwrap_or_default(),
        r.source.clone(),
        r.transport.clone(),
        r.count.to_string(),
    ];
    let mut s = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_boundary_respects_escaped_dots() {
        assert!(under("www.example.com", "example.com"));
        assert!(under("example.com", "example.com"));
        assert!(!under("badexample.com", "example.com"));
        assert!(!under("x\\.example.com", "example.com"));
        assert!(under("x\\\\.example.com", "example.com"));
    }

    #[test]
    fn csv_fields_are_quoted_and_formula_safe() {
        assert_eq!(csv_field("a.example"), "a.example");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "\"'=cmd|' /C calc'!A0\"");
        assert_eq!(csv_field("-1"), "\"'-1\"");
    }

    #[test]
    fn cursors_are_checked() {
        assert_eq!(parse_cursor("12.34").unwrap(), (12, 34));
        assert!(parse_cursor("12").is_err());
        assert!(parse_cursor("a.b").is_err());
    }
}
