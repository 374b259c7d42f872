//! dnsight-triage: what people decided about alerts, and what the system must remember because
//! of it. The alert lifecycle (status, closing reason, notes), the append-only audit log of every
//! action, acknowledgements (what became normal, for which scope, until when), blocks and allows
//! (what the resolver must refuse or let through), API tokens, and the RPZ serial.
//!
//! One SQLite file (`triage.sqlite` in the state directory, WAL) behind the small [`TriageStore`]
//! interface, written in portable SQL so a PostgreSQL backend can implement the same trait.
//! Baselines stay in the engine's redb file. Per-event data lives only in the query log
//! ([`querylog`]: its own table in the same file, its own batching writer).
//!
//! Times here are wall-clock Unix seconds passed in by the caller (the store never reads the
//! clock either, so tests are exact); alert times are the engine's event times (`Ts`).

pub use dnsight_engine::Scope;
use dnsight_engine::{Alert, Kind, Severity, Status};
use serde::{Deserialize, Serialize};

pub mod outbox;
pub mod querylog;
pub mod rpz;
mod sqlite;
pub use outbox::{NotifyEvent, OutboxItem, OutboxState, OutboxStats, Router};
pub use querylog::{
    QueryFilter, QueryLog, QueryLogConfig, QueryLogDisk, QueryPage, QueryRow, TimelineBucket,
};
#[doc(hidden)]
pub use sqlite::create_at_version;
pub use sqlite::{check_user_name, normalize_name, SqliteStore, MAX_USER_NAME};

/// What every [`TriageStore`] backend shares with the SQLite one, so they validate, filter,
/// hash and decide alike (the PostgreSQL backend, crate `dnsight-pgstore`, is built on these).
pub mod backend {
    pub use crate::sqlite::{
        ack_detail, change_event, check_future, check_note, check_scope, clip, filter_sql, hex,
        id_list, is_closed, order_by, random_hex, sev_rank, to_i64, token_hash, upsert_decision,
        SqlParam, LAST_USED_EVERY, MAX_FILTER_IDS, MAX_NOTE, MAX_TOKEN_NAME, SEEN_EVERY,
        SESSION_PREFIX, TOKEN_PREFIX,
    };
    /// The triage schema's migration steps 1, 2 and 3 in SQLite's spelling, without the query
    /// log (which stays in the SQLite file). Another backend translates the types (generated
    /// ids, integers) and applies the same steps.
    pub const SCHEMA_STEPS: [&str; 3] = [
        crate::sqlite::SCHEMA_V1,
        crate::sqlite::SCHEMA_V2,
        crate::sqlite::users_schema_v3(),
    ];
}

/// File name of the triage database inside the state directory.
pub const TRIAGE_FILE: &str = "triage.sqlite";

/// Unix seconds (wall clock).
pub type Secs = i64;

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The caller asked for something that does not exist or is not allowed (→ HTTP 4xx).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// The database failed (→ HTTP 500 without details, logged).
    #[error("triage store: {0}")]
    Db(String),
}

pub type Result<T> = std::result::Result<T, TriageError>;

/// Who may do what. Viewer reads; analyst acts on alerts and blocks; admin manages tokens too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Analyst,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Analyst, Role::Admin]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// Why an alert was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    TruePositive,
    BenignPositive,
    FalsePositive,
    Duplicate,
    /// Closed by the system: the alert was quiet past the engine's idle window.
    Expired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TruePositive => "true_positive",
            Reason::BenignPositive => "benign_positive",
            Reason::FalsePositive => "false_positive",
            Reason::Duplicate => "duplicate",
            Reason::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Reason> {
        [
            Reason::TruePositive,
            Reason::BenignPositive,
            Reason::FalsePositive,
            Reason::Duplicate,
            Reason::Expired,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// An alert as the triage store holds it: the engine's alert (its `status` field is the
/// store's status) plus what people added.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredAlert {
    #[serde(flatten)]
    pub alert: Alert,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Latest note, if any (all notes are in the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Wall time of the last change (by the engine or a person).
    pub updated_at: Secs,
}

/// What an alert upsert from the engine did (for notifications and the output throttle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    New,
    /// Severity went up.
    Escalated,
    /// More devices joined the roll-up.
    Grew,
    /// Count or last-seen only.
    Updated,
    /// The alert was closed (acknowledged/resolved) and fired again: reopened.
    Reopened,
}

/// One line of the append-only audit log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub ts: Secs,
    /// Token name or user name; `system` for the engine's own changes.
    pub actor: String,
    /// `ack`, `flag`, `block`, `unblock`, `resolve`, `note`, `reopen`, `expire`, `token_create`, ...
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_before: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_after: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// What the line is about when it is not an alert (or besides it): the block or allow
    /// name, the token name, the acknowledged destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// "This is normal for this scope": findings of `kind` on `destination` for devices in `scope`
/// are suppressed until `until` (None: for good), and the destination (or the country/ASN,
/// policy exception, beacon) joins the scope's baseline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AckRule {
    pub id: i64,
    pub kind: Kind,
    /// The alert's destination (registered domain, name or address); for `new_country` and
    /// `new_asn` the evidence's country code / ASN is in `detail`.
    pub destination: String,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Secs>,
    /// Kind-specific detail copied from the alert's evidence (e.g. `{"country":"RU"}`).
    #[serde(default)]
    pub detail: serde_json::Value,
    pub created_by: String,
    pub created_at: Secs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A block (the resolver answers by the block policy) or an allow (an exception that beats
/// every list).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlockRule {
    pub id: i64,
    /// Lowercased presentation-format name, no trailing dot.
    pub name: String,
    /// True: the name and everything under it; false: the exact name only.
    pub subdomains: bool,
    pub scope: Scope,
    /// An allow exception instead of a block.
    pub allow: bool,
    pub created_by: String,
    pub created_at: Secs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
}

/// A new block or allow (the store assigns id and created_at).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewBlock {
    pub name: String,
    pub subdomains: bool,
    pub scope: Scope,
    pub allow: bool,
    pub expires_at: Option<Secs>,
    pub note: Option<String>,
    pub alert_id: Option<String>,
}

/// An API token as listed (the secret is never stored, only its hash).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: Secs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Secs>,
}

/// A dashboard user as listed (the password hash stays in the store).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: Secs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<Secs>,
}

/// A signed-in browser session (the secret is the cookie; only its hash is stored).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SessionInfo {
    pub id: i64,
    pub user_id: i64,
    pub user: String,
    pub role: Role,
    /// The CSRF token every form of this session carries.
    #[serde(skip_serializing)]
    pub csrf: String,
    pub created_at: Secs,
    pub last_seen: Secs,
    pub expires_at: Secs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// Open alerts by severity, kind, device and destination (most first), and alerts first seen
/// per day and per hour (bucket start in Unix seconds, UTC).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AlertOverview {
    pub by_severity: Vec<(String, u64)>,
    pub by_kind: Vec<(String, u64)>,
    pub top_devices: Vec<(String, u64)>,
    pub top_destinations: Vec<(String, u64)>,
    pub per_day: Vec<(Secs, u64)>,
    #[serde(default)]
    pub per_hour: Vec<(Secs, u64)>,
}

/// Sort orders for alert lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Most severe first (score, then last seen).
    #[default]
    Severity,
    /// Most recently seen first.
    LastSeen,
    /// Newest first (first seen).
    FirstSeen,
    /// Most events first.
    Count,
}

/// Which alerts a list, count or bulk action covers. Empty vectors mean "any".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertFilter {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub status: Vec<Status>,
    #[serde(default)]
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub kind: Vec<Kind>,
    /// Device address: matches the alert's device or any device of its roll-up.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// Exact destination, or `*.suffix` for a destination under a suffix.
    #[serde(default)]
    pub destination: Option<String>,
    /// Last seen at or after (event time, Unix seconds).
    #[serde(default)]
    pub since: Option<Secs>,
    /// First seen before (event time, Unix seconds).
    #[serde(default)]
    pub until: Option<Secs>,
    #[serde(default)]
    pub sort: Sort,
    /// Page size (None: all).
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: u64,
}

/// A lifecycle action on one alert, applied by [`TriageStore::act`] in one transaction with its
/// audit line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Act {
    /// Status → acknowledged, and an [`AckRule`] for the alert's kind/destination and `scope`.
    Ack { scope: Scope, until: Option<Secs> },
    /// Status → flagged (the caller raises severity to at least high via the engine).
    Flag,
    /// Status → blocked, and a [`BlockRule`] on the alert's destination (`subdomains`) or
    /// its sample name.
    Block {
        scope: Scope,
        name: String,
        subdomains: bool,
        expires_at: Option<Secs>,
    },
    /// Status → resolved with a reason.
    Resolve { reason: Reason },
    /// Status → reopened.
    Reopen,
    /// A note only; the status stays.
    Note,
}

/// What [`TriageStore::act`] did to one alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActOutcome {
    pub alert_id: String,
    pub before: Status,
    pub after: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<AckRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockRule>,
    /// Acknowledgements this action ended (reopening an acknowledged alert ends the acks that
    /// covered it: the engine must lift their suppression).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended_acks: Vec<AckRule>,
}

/// Store counters for stats.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StoreStats {
    pub alerts_by_status: std::collections::BTreeMap<String, u64>,
    pub acks_active: u64,
    pub blocks_active: u64,
    pub allows_active: u64,
    pub audit_entries: u64,
    pub tokens_active: u64,
    pub file_bytes: u64,
    #[serde(default)]
    pub outbox: OutboxStats,
    /// Alerts by kind, severity and status (for metrics).
    #[serde(default)]
    pub alerts_by: Vec<AlertCount>,
}

/// How many stored alerts have one kind, severity and status.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AlertCount {
    pub kind: String,
    pub severity: String,
    pub status: String,
    pub count: u64,
}

/// The triage store. One writer (the pipeline) and any number of readers (the API, other
/// processes such as `dnsight token create`) may have the same file open.
pub trait TriageStore: Send {
    // ---- alerts (written by the pipeline from the engine's updates)
    /// Inserts or updates alerts from the engine, in one transaction. The engine's copy
    /// provides everything but the status: a new alert is stored `open` (or `flagged` when the
    /// engine says so); an existing one keeps its stored status, except that a closed
    /// (acknowledged/resolved/blocked) alert that the engine reports open again becomes
    /// `reopened` (audited as `system`). Returns what changed per alert, same order.
    fn upsert_alerts(&mut self, alerts: &[Alert], now: Secs) -> Result<Vec<Change>>;
    fn get_alert(&self, id: &str) -> Result<Option<StoredAlert>>;
    /// Alerts matching the filter, sorted and paged, and how many match in all.
    fn list_alerts(&self, f: &AlertFilter) -> Result<(Vec<StoredAlert>, u64)>;
    /// Ids of every alert matching the filter (no paging): bulk actions and their preview.
    fn alert_ids(&self, f: &AlertFilter) -> Result<Vec<String>>;

    // ---- actions
    /// Applies one action to one alert with its audit line (and ack/block rule) in one
    /// transaction; `NotFound` for an unknown id.
    fn act(
        &mut self,
        alert_id: &str,
        act: &Act,
        actor: &str,
        note: Option<&str>,
        now: Secs,
    ) -> Result<ActOutcome>;
    /// Audit lines of one alert, oldest first.
    fn history(&self, alert_id: &str) -> Result<Vec<AuditEntry>>;
    /// The latest audit lines over everything, newest first.
    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>>;
    /// Audit lines with an id above `after_id`, oldest first, at most `limit`: what changed
    /// since a high-water mark (every action, block, unblock, expiry and system reopen writes
    /// one). Ids rise in commit order (writers are serialized), so a reader that remembers the
    /// last id it saw misses nothing; an empty answer means nothing changed. Used by the
    /// pipeline's periodic resync with the store other processes write too.
    fn audit_after(&self, after_id: i64, limit: u32) -> Result<Vec<AuditEntry>>;

    // ---- acknowledgements
    /// Active at `now` (no expiry or expiry later than now).
    fn active_acks(&self, now: Secs) -> Result<Vec<AckRule>>;

    // ---- blocks and allows
    /// Adds a block or allow (audited); bumps the RPZ serial.
    fn add_block(&mut self, b: &NewBlock, actor: &str, now: Secs) -> Result<BlockRule>;
    /// Removes one (audited as `unblock`); bumps the serial. `NotFound` for an unknown id.
    fn remove_block(&mut self, id: i64, actor: &str, now: Secs) -> Result<BlockRule>;
    /// Active at `now`.
    fn active_blocks(&self, now: Secs) -> Result<Vec<BlockRule>>;
    /// Deletes expired blocks and acks (audited as `system` `expire`), bumping the serial when
    /// a block went; returns how many blocks expired.
    fn expire(&mut self, now: Secs) -> Result<usize>;
    /// The RPZ SOA serial: rises with every change to the blocks and allows.
    fn rpz_serial(&self) -> Result<u32>;

    // ---- tokens
    /// Creates a token; returns its info and the secret (shown once, never stored).
    fn create_token(
        &mut self,
        name: &str,
        role: Role,
        expires_at: Option<Secs>,
        actor: &str,
        now: Secs,
    ) -> Result<(TokenInfo, String)>;
    /// The token whose secret this is, when it is neither revoked nor expired (constant-time
    /// comparison of hashes); records last use.
    fn verify_token(&self, secret: &str, now: Secs) -> Result<Option<TokenInfo>>;
    fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Revokes by name or numeric id; `NotFound` when there is none.
    fn revoke_token(&mut self, name_or_id: &str, actor: &str, now: Secs) -> Result<TokenInfo>;

    fn stats(&self, now: Secs) -> Result<StoreStats>;

    // ---- notification outbox (see [`outbox`])
    /// Routes notifications: from now on every alert change this store writes queues one
    /// outbox row per target the router names, in the change's own transaction.
    fn set_router(&mut self, router: Option<std::sync::Arc<dyn Router>>);
    /// Pending rows of `target` due at `now` (`next_at <= now`), oldest first.
    fn outbox_due(&self, target: &str, now: Secs, limit: u32) -> Result<Vec<OutboxItem>>;
    /// Marks rows delivered one by one.
    fn outbox_sent(&mut self, ids: &[i64], now: Secs) -> Result<()>;
    /// Marks rows delivered in one digest message; returns the digest's id.
    fn outbox_digest_sent(&mut self, target: &str, ids: &[i64], now: Secs) -> Result<i64>;
    /// Records a failed try: the rows are tried again at `next_at`, or become failed once
    /// they have been tried `max_attempts` times. Returns how many became failed.
    fn outbox_retry(
        &mut self,
        ids: &[i64],
        error: &str,
        next_at: Secs,
        max_attempts: u32,
    ) -> Result<u64>;
    /// Messages sent to `target` at or after `since`: (single notifications, digests).
    fn outbox_sent_since(&self, target: &str, since: Secs) -> Result<(u64, u64)>;
    /// When the last digest went to `target`.
    fn outbox_last_digest(&self, target: &str) -> Result<Option<Secs>>;
    /// The latest rows (newest first), of one state or all.
    fn outbox_list(&self, state: Option<OutboxState>, limit: u32) -> Result<Vec<OutboxItem>>;
    // ---- dashboard users and sessions
    /// Creates a user with an argon2 PHC `password_hash`; with `replace` an existing user gets
    /// the new role and password (and loses its sessions). Audited.
    fn upsert_user(
        &mut self,
        name: &str,
        role: Role,
        password_hash: &str,
        replace: bool,
        actor: &str,
        now: Secs,
    ) -> Result<UserInfo>;
    /// The user and its password hash, for signing in.
    fn user_password(&self, name: &str) -> Result<Option<(UserInfo, String)>>;
    fn list_users(&self) -> Result<Vec<UserInfo>>;
    /// Removes a user and its sessions (audited); `NotFound` when there is none.
    fn remove_user(&mut self, name: &str, actor: &str, now: Secs) -> Result<UserInfo>;
    /// Starts a session of `ttl` seconds (sliding); returns it and its secret (the cookie).
    fn create_session(
        &mut self,
        user_id: i64,
        ttl: Secs,
        client: Option<&str>,
        agent: Option<&str>,
        now: Secs,
    ) -> Result<(SessionInfo, String)>;
    /// The live session whose secret this is; extends it by `ttl` from now (written at most
    /// once a minute).
    fn verify_session(&self, secret: &str, ttl: Secs, now: Secs) -> Result<Option<SessionInfo>>;
    /// Live sessions, most recently used first.
    fn list_sessions(&self, now: Secs) -> Result<Vec<SessionInfo>>;
    /// Ends a session (audited); `NotFound` when there is none.
    fn revoke_session(&mut self, id: i64, actor: &str, now: Secs) -> Result<SessionInfo>;
    /// (open alerts, latest `updated_at`): cheap, for "did anything change" polling.
    fn alerts_changed(&self) -> Result<(u64, Secs)>;
    /// Counts for the dashboard's overview (see [`AlertOverview`]); `since` in event-time
    /// seconds, `top` rows per top list.
    fn alert_overview(&self, since: Secs, top: u32) -> Result<AlertOverview>;

    // ---- query log (written by [`querylog::QueryLog`]'s own connection)
    /// One page of the query log, newest first (see [`QueryFilter`]).
    fn search_queries(&self, f: &QueryFilter) -> Result<QueryPage>;
    /// The query log's size and disk use.
    fn querylog_disk(&self) -> Result<QueryLogDisk>;
    /// Queries, blocks and NXDOMAINs per bucket of `step_us` in `[since_us, until_us)`, oldest
    /// first, for all devices or one (see [`querylog::timeline`]).
    fn query_timeline(
        &self,
        device: Option<&str>,
        since_us: i64,
        until_us: i64,
        step_us: i64,
    ) -> Result<Vec<TimelineBucket>>;
}
