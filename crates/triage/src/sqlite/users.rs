//! Dashboard users and their sign-in sessions (schema version 3).
//!
//! A user has a name, a role and an argon2 password hash (a PHC string made by the caller:
//! this crate never sees a password). A session is a random secret handed to the browser as a
//! cookie; only its SHA-256 is stored, with the CSRF token of the session's forms, the client
//! address and user agent it started from, and a sliding expiry. Revoking a session or removing
//! its user ends it at the next request.

use super::{audit_line, db, hex, invalid, token_hash, Line};
use crate::{AlertOverview, Result, Role, Secs, SessionInfo, UserInfo};
use rusqlite::{params, Connection, OptionalExtension};

/// Version 3: dashboard users and sessions; indexes for "what changed since", the default sort
/// (most severe first) and the overview's counts (covering: no table reads).
pub const SCHEMA_V3: &str = "
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_login BIGINT
);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    client TEXT,
    agent TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX alerts_updated ON alerts (updated_at);
CREATE INDEX alerts_first_seen ON alerts (first_seen);
CREATE INDEX alerts_score ON alerts (score DESC, last_seen DESC, id);
CREATE INDEX alerts_status_severity ON alerts (status, severity, sev_rank);
CREATE INDEX alerts_status_kind ON alerts (status, kind);
CREATE INDEX alerts_status_device ON alerts (status, device);
CREATE INDEX alerts_status_destination ON alerts (status, destination);
";

/// Step 5 (the dashboard's alert counts): `alert_counts (dim, val, n)`, kept by triggers on
/// `alerts`: open alerts per `severity`, `kind`, `device` and `destination`, and every alert
/// per `all` = "kind severity status" — so the overview's and the destinations page's counts,
/// the open total and the store's statistics are a few index reads instead of GROUP BYs over
/// 100,000 alerts. Filled from the alerts an older file holds. Rows whose count falls to 0
/// stay (read as absent).
pub(super) const SCHEMA_ALERT_COUNTS: &str = "
CREATE TABLE alert_counts (
    dim TEXT NOT NULL,
    val TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (dim, val)
);
CREATE INDEX alert_counts_top ON alert_counts (dim, n DESC, val);
INSERT INTO alert_counts (dim, val, n)
    SELECT 'severity', severity, COUNT(*) FROM alerts WHERE status IN ('open', 'flagged', 'reopened') GROUP BY severity;
INSERT INTO alert_counts (dim, val, n)
    SELECT 'kind', kind, COUNT(*) FROM alerts WHERE status IN ('open', 'flagged', 'reopened') GROUP BY kind;
INSERT INTO alert_counts (dim, val, n)
    SELECT 'device', device, COUNT(*) FROM alerts WHERE status IN ('open', 'flagged', 'reopened') GROUP BY device;
INSERT INTO alert_counts (dim, val, n)
    SELECT 'destination', destination, COUNT(*) FROM alerts WHERE status IN ('open', 'flagged', 'reopened') GROUP BY destination;
INSERT INTO alert_counts (dim, val, n)
    SELECT 'all', kind || ' ' || severity || ' ' || status, COUNT(*) FROM alerts GROUP BY kind, severity, status;
CREATE TRIGGER alert_counts_all_insert AFTER INSERT ON alerts
BEGIN
    INSERT INTO alert_counts (dim, val, n) VALUES ('all', new.kind || ' ' || new.severity || ' ' || new.status, 1)
    ON CONFLICT (dim, val) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER alert_counts_all_update AFTER UPDATE OF kind, severity, status ON alerts
WHEN old.kind IS NOT new.kind OR old.severity IS NOT new.severity OR old.status IS NOT new.status
BEGIN
    UPDATE alert_counts SET n = n - 1 WHERE dim = 'all' AND val = old.kind || ' ' || old.severity || ' ' || old.status;
    INSERT INTO alert_counts (dim, val, n) VALUES ('all', new.kind || ' ' || new.severity || ' ' || new.status, 1)
    ON CONFLICT (dim, val) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER alert_counts_all_delete AFTER DELETE ON alerts
BEGIN
    UPDATE alert_counts SET n = n - 1 WHERE dim = 'all' AND val = old.kind || ' ' || old.severity || ' ' || old.status;
END;
CREATE TRIGGER alert_counts_insert AFTER INSERT ON alerts
WHEN new.status IN ('open', 'flagged', 'reopened')
BEGIN
    INSERT INTO alert_counts (dim, val, n) VALUES
        ('severity', new.severity, 1), ('kind', new.kind, 1),
        ('device', new.device, 1), ('destination', new.destination, 1)
    ON CONFLICT (dim, val) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER alert_counts_leave AFTER UPDATE OF status, severity, kind, device, destination ON alerts
WHEN old.status IN ('open', 'flagged', 'reopened') AND (new.status NOT IN ('open', 'flagged', 'reopened')
    OR old.severity IS NOT new.severity OR old.kind IS NOT new.kind
    OR old.device IS NOT new.device OR old.destination IS NOT new.destination)
BEGIN
    UPDATE alert_counts SET n = n - 1 WHERE (dim = 'severity' AND val = old.severity)
        OR (dim = 'kind' AND val = old.kind) OR (dim = 'device' AND val = old.device)
        OR (dim = 'destination' AND val = old.destination);
END;
CREATE TRIGGER alert_counts_enter AFTER UPDATE OF status, severity, kind, device, destination ON alerts
WHEN new.status IN ('open', 'flagged', 'reopened') AND (old.status NOT IN ('open', 'flagged', 'reopened')
    OR old.severity IS NOT new.severity OR old.kind IS NOT new.kind
    OR old.device IS NOT new.device OR old.destination IS NOT new.destination)
BEGIN
    INSERT INTO alert_counts (dim, val, n) VALUES
        ('severity', new.severity, 1), ('kind', new.kind, 1),
        ('device', new.device, 1), ('destination', new.destination, 1)
    ON CONFLICT (dim, val) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER alert_counts_delete AFTER DELETE ON alerts
WHEN old.status IN ('open', 'flagged', 'reopened')
BEGIN
    UPDATE alert_counts SET n = n - 1 WHERE (dim = 'severity' AND val = old.severity)
        OR (dim = 'kind' AND val = old.kind) OR (dim = 'device' AND val = old.device)
        OR (dim = 'destination' AND val = old.destination);
END;
";

/// Longest user name (bytes).
pub const MAX_USER_NAME: usize = 64;
/// Prefix of every session secret.
pub const SESSION_PREFIX: &str = "dss_";
/// `last_seen` (and the sliding expiry) is written at most this often per session.
pub const SEEN_EVERY: Secs = 60;

const USER_COLS: &str = "id, name, role, created_at, last_login";

fn row_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserInfo> {
    Ok(UserInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        role: super::parse_role(&r.get::<_, String>(2)?)?,
        created_at: r.get(3)?,
        last_login: r.get(4)?,
    })
}

const SESSION_COLS: &str = "s.id, s.user_id, u.name, u.role, s.csrf, s.created_at, s.last_seen, \
                            s.expires_at, s.client, s.agent";

fn row_session(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: r.get(0)?,
        user_id: r.get(1)?,
        user: r.get(2)?,
        role: super::parse_role(&r.get::<_, String>(3)?)?,
        csrf: r.get(4)?,
        created_at: r.get(5)?,
        last_seen: r.get(6)?,
        expires_at: r.get(7)?,
        client: r.get(8)?,
        agent: r.get(9)?,
    })
}

/// A user name: 1..=64 bytes of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_user_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Err(invalid(format!(
            "a user name must be 1 to {MAX_USER_NAME} bytes"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
    {
        return Err(invalid(
            "a user name may hold only letters, digits and . _ - @",
        ));
    }
    Ok(())
}

pub fn random_hex() -> Result<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| db(format!("no randomness: {e}")))?;
    Ok(hex(&raw))
}

pub(super) fn upsert_user(
    c: &rusqlite::Transaction<'_>,
    name: &str,
    role: Role,
    password_hash: &str,
    replace: bool,
    actor: &str,
    now: Secs,
) -> Result<UserInfo> {
    check_user_name(name)?;
    if !password_hash.starts_with('$') {
        return Err(invalid("the password hash must be a PHC string"));
    }
    let existing: Option<i64> = c
        .query_row("SELECT id FROM users WHERE name = ?", [name], |r| r.get(0))
        .optional()?;
    let action = match existing {
        Some(_) if !replace => {
            return Err(invalid(format!(
                "a user named \"{name}\" exists; remove it first (`dnsight user rm {name}`) or pick another name"
            )))
        }
        Some(id) => {
            c.execute(
                "UPDATE users SET role = ?, password = ? WHERE id = ?",
                params![role.as_str(), password_hash, id],
            )?;
            // a new password ends the old sessions
            c.execute("DELETE FROM sessions WHERE user_id = ?", [id])?;
            "user_update"
        }
        None => {
            c.execute(
                "INSERT INTO users (name, role, password, created_at) VALUES (?, ?, ?, ?)",
                params![name, role.as_str(), password_hash, now],
            )?;
            "user_add"
        }
    };
    audit_line(
        c,
        now,
        &Line {
            actor,
            action,
            scope: Some(role.as_str().to_string()),
            target: Some(name),
            ..Line::default()
        },
    )?;
    c.query_row(
        &format!("SELECT {USER_COLS} FROM users WHERE name = ?"),
        [name],
        row_user,
    )
    .map_err(Into::into)
}

pub(super) fn user_password(c: &Connection, name: &str) -> Result<Option<(UserInfo, String)>> {
    Ok(c.query_row(
        &format!("SELECT {USER_COLS}, password FROM users WHERE name = ?"),
        [name],
        |r| Ok((row_user(r)?, r.get::<_, String>(5)?)),
    )
    .optional()?)
}

pub(super) fn list_users(c: &Connection) -> Result<Vec<UserInfo>> {
    let mut q = c.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY name"))?;
    let v = q
        .query_map([], row_user)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

pub(super) fn remove_user(
    c: &rusqlite::Transaction<'_>,
    name: &str,
    actor: &str,
    now: Secs,
) -> Result<UserInfo> {
    let u = c
        .query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE name = ?"),
            [name],
            row_user,
        )
        .optional()?
        .ok_or_else(|| crate::TriageError::NotFound(format!("no user \"{name}\"")))?;
    c.execute("DELETE FROM sessions WHERE user_id = ?", [u.id])?;
    c.execute("DELETE FROM users WHERE id = ?", [u.id])?;
    audit_line(
        c,
        now,
        &Line {
            actor,
            action: "user_remove",
            target: Some(name),
            ..Line::default()
        },
    )?;
    Ok(u)
}

pub fn clip(s: Option<&str>, n: usize) -> Option<String> {
    s.map(|s| {
        s.chars()
            .filter(|c| !c.is_control())
            .take(n)
            .collect::<String>()
    })
}

pub(super) fn create_session(
    c: &rusqlite::Transaction<'_>,
    user_id: i64,
    ttl: Secs,
    client: Option<&str>,
    agent: Option<&str>,
    now: Secs,
) -> Result<(SessionInfo, String)> {
    if ttl <= 0 {
        return Err(invalid("a session needs a positive lifetime"));
    }
    let secret = format!("{SESSION_PREFIX}{}", random_hex()?);
    let csrf = random_hex()?;
    let n = c.execute(
        "INSERT INTO sessions (user_id, hash, csrf, created_at, last_seen, expires_at, client, agent) \
         SELECT id, ?, ?, ?, ?, ?, ?, ? FROM users WHERE id = ?",
        params![
            token_hash(&secret),
            csrf,
            now,
            now,
            now.saturating_add(ttl),
            clip(client, 64),
            clip(agent, 200),
            user_id
        ],
    )?;
    if n == 0 {
        return Err(crate::TriageError::NotFound(format!("no user {user_id}")));
    }
    let id = c.last_insert_rowid();
    c.execute(
        "UPDATE users SET last_login = ? WHERE id = ?",
        params![now, user_id],
    )?;
    let s = c.query_row(
        &format!(
            "SELECT {SESSION_COLS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"
        ),
        [id],
        row_session,
    )?;
    Ok((s, secret))
}

pub(super) fn verify_session(
    c: &Connection,
    secret: &str,
    ttl: Secs,
    now: Secs,
) -> Result<Option<SessionInfo>> {
    let Some(body) = secret.strip_prefix(SESSION_PREFIX) else {
        return Ok(None);
    };
    if body.len() != 64 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let s = c
        .query_row(
            &format!(
                "SELECT {SESSION_COLS} FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.hash = ? AND s.expires_at > ?"
            ),
            params![token_hash(secret), now],
            row_session,
        )
        .optional()?;
    let Some(mut s) = s else {
        return Ok(None);
    };
    if now - s.last_seen >= SEEN_EVERY {
        s.last_seen = now;
        s.expires_at = s.expires_at.max(now.saturating_add(ttl));
        // best effort: a busy writer must not sign the user out
        let _ = c.execute(
            "UPDATE sessions SET last_seen = ?, expires_at = ? WHERE id = ?",
            params![s.last_seen, s.expires_at, s.id],
        );
    }
    Ok(Some(s))
}

pub(super) fn list_sessions(c: &Connection, now: Secs) -> Result<Vec<SessionInfo>> {
    let mut q = c.prepare(&format!(
        "SELECT {SESSION_COLS} FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.expires_at > ? ORDER BY s.last_seen DESC"
    ))?;
    let v = q
        .query_map([now], row_session)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

pub(super) fn revoke_session(
    c: &rusqlite::Transaction<'_>,
    id: i64,
    actor: &str,
    now: Secs,
) -> Result<SessionInfo> {
    let s = c
        .query_row(
            &format!("SELECT {SESSION_COLS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"),
            [id],
            row_session,
        )
        .optional()?
        .ok_or_else(|| crate::TriageError::NotFound(format!("no session {id}")))?;
    c.execute("DELETE FROM sessions WHERE id = ?", [id])?;
    // expired sessions go with any revocation
    c.execute("DELETE FROM sessions WHERE expires_at <= ?", [now])?;
    let target = format!("{} session {id}", s.user);
    audit_line(
        c,
        now,
        &Line {
            actor,
            action: "session_revoke",
            target: Some(&target),
            ..Line::default()
        },
    )?;
    Ok(s)
}

pub(super) fn alerts_changed(c: &Connection) -> Result<(u64, Secs)> {
    let open: i64 = c.query_row(
        "SELECT COALESCE(SUM(n), 0) FROM alert_counts WHERE dim = 'severity'",
        [],
        |r| r.get(0),
    )?;
    let at: Option<Secs> = c.query_row("SELECT MAX(updated_at) FROM alerts", [], |r| r.get(0))?;
    Ok((open.max(0) as u64, at.unwrap_or(0)))
}

/// Counts for the dashboard's overview: open alerts by severity, kind, device and destination
/// (from `alert_counts`), and alerts first seen per day and per hour since `since` (event
/// time, Unix seconds).
pub(super) fn alert_overview(c: &Connection, since: Secs, top: u32) -> Result<AlertOverview> {
    let tx = c.unchecked_transaction()?;
    let counts = |dim: &str, limit: u32| -> Result<Vec<(String, u64)>> {
        let mut q = tx.prepare_cached(
            "SELECT val, n FROM alert_counts WHERE dim = ? AND n > 0 AND val <> '' \
             ORDER BY n DESC, val LIMIT ?",
        )?;
        let v = q
            .query_map(params![dim, limit], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    };
    let mut by_severity = counts("severity", u32::MAX)?;
    by_severity.sort_by_key(|(s, _)| {
        std::cmp::Reverse(
            dnsight_engine::Severity::parse(s)
                .map(super::sev_rank)
                .unwrap_or(0),
        )
    });
    let mut o = AlertOverview {
        by_severity,
        by_kind: counts("kind", u32::MAX)?,
        top_devices: counts("device", top)?,
        top_destinations: counts("destination", top)?,
        per_day: Vec::new(),
        per_hour: Vec::new(),
    };
    // per hour from the first_seen index; per day summed from it
    let mut q = tx.prepare_cached(
        "SELECT first_seen / 3600000000, COUNT(*) FROM alerts WHERE first_seen >= ? GROUP BY 1 ORDER BY 1",
    )?;
    o.per_hour = q
        .query_map([since.saturating_mul(1_000_000)], |r| {
            Ok((
                r.get::<_, i64>(0)? * 3600,
                r.get::<_, i64>(1)?.max(0) as u64,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    drop(q);
    for (h, c) in &o.per_hour {
        let d = h.div_euclid(86_400) * 86_400;
        match o.per_day.last_mut() {
            Some((day, n)) if *day == d => *n += c,
            _ => o.per_day.push((d, *c)),
        }
    }
    tx.finish()?;
    Ok(o)
}

/// Every alert by (kind, severity, status), from `alert_counts`.
pub(super) fn counts_by_kind_severity_status(
    c: &Connection,
) -> Result<Vec<(String, String, String, u64)>> {
    let mut q = c.prepare_cached(
        "SELECT val, n FROM alert_counts WHERE dim = 'all' AND n > 0 ORDER BY val",
    )?;
    let rows = q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out: Vec<_> = rows
        .into_iter()
        .filter_map(|(v, n)| {
            let mut it = v.splitn(3, ' ');
            Some((
                it.next()?.to_string(),
                it.next()?.to_string(),
                it.next()?.to_string(),
                n.max(0) as u64,
            ))
        })
        .collect();
    out.sort();
    Ok(out)
}
