//! The notification outbox: what must be told to whom, queued in the same transaction as the
//! alert change that caused it, so a crash between the change and its delivery loses nothing.
//! The store asks a [`Router`] (the configured targets) which targets want each event; the
//! notifier (crate `dnsight-notify`) delivers the rows and records the outcome.

use crate::Secs;
use dnsight_engine::{Alert, Status};
use serde::{Deserialize, Serialize};

/// What happened to an alert, as notification routing sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A new alert.
    New,
    /// Its severity went up.
    Escalated,
    /// Its roll-up reached 2, 4, 8, ... devices.
    Grew,
    /// Closed and firing again, or reopened by a person.
    Reopened,
    Acknowledged,
    Flagged,
    Blocked,
    Resolved,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 8] = [
        NotifyEvent::New,
        NotifyEvent::Escalated,
        NotifyEvent::Grew,
        NotifyEvent::Reopened,
        NotifyEvent::Acknowledged,
        NotifyEvent::Flagged,
        NotifyEvent::Blocked,
        NotifyEvent::Resolved,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::New => "new",
            NotifyEvent::Escalated => "escalated",
            NotifyEvent::Grew => "grew",
            NotifyEvent::Reopened => "reopened",
            NotifyEvent::Acknowledged => "acknowledged",
            NotifyEvent::Flagged => "flagged",
            NotifyEvent::Blocked => "blocked",
            NotifyEvent::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s))
    }
    /// The event of a person's action that moved an alert to `after` (None: no event, e.g. a
    /// note).
    pub fn of_status(before: Status, after: Status) -> Option<NotifyEvent> {
        if before == after && after != Status::Blocked {
            return None;
        }
        Some(match after {
            Status::Acknowledged => NotifyEvent::Acknowledged,
            Status::Flagged => NotifyEvent::Flagged,
            Status::Blocked => NotifyEvent::Blocked,
            Status::Resolved => NotifyEvent::Resolved,
            Status::Reopened => NotifyEvent::Reopened,
            Status::Open => return None,
        })
    }
}

/// Which targets want an event (the configured notification routes).
pub trait Router: Send + Sync {
    /// Names of the targets that want `event` for `alert` (its status already the new one).
    fn route(&self, alert: &Alert, event: NotifyEvent) -> Vec<String>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Not delivered yet (maybe after failed tries, see `attempts`).
    Pending,
    /// Delivered, alone or in a digest.
    Sent,
    /// Every try failed: kept for people to see.
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<OutboxState> {
        [OutboxState::Pending, OutboxState::Sent, OutboxState::Failed]
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s))
    }
}

/// One notification: an event of an alert for one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: i64,
    pub target: String,
    pub event: NotifyEvent,
    /// The alert as it was when the event happened.
    pub alert: Alert,
    /// Who acted (token or user name; `system` for the engine's changes).
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at: Secs,
    pub state: OutboxState,
    pub attempts: u32,
    /// Not tried again before this time.
    pub next_at: Secs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Secs>,
    /// The digest message that carried it, when it went in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<i64>,
}

/// Outbox counters for stats.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OutboxStats {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
    pub digests: u64,
}
