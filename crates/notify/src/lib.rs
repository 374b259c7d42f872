//! dnsight-notify: tells people about alerts in the format their tools take — signed webhooks,
//! Slack/Mattermost/Teams incoming webhooks, RFC 5424 syslog over UDP, TCP or TLS, e-mail over
//! SMTP, and JSON lines — and never floods them.
//!
//! Notifications are not sent from the pipeline. The triage store queues them in its outbox, in
//! the same transaction as the alert change (the store asks [`Routes`] which targets want each
//! event), and one delivery thread per target reads its rows from the same SQLite file and
//! records each outcome. So a crash or `kill -9` between a change and its delivery loses
//! nothing: the rows are still pending at the next start. Delivery is at least once (a crash
//! after sending and before recording sends again); webhooks carry the row id in
//! `X-Dnsight-Delivery` for receivers that want to drop repeats.
//!
//! **Flood control** per target: at most `digest_after` single messages in `digest_minutes`;
//! past that, what is pending goes out as one digest message at most every
//! `digest_every_secs`. A critical alert is always sent on its own, at once.
//!
//! **Retries**: a failed delivery is tried again after 1, 2, 4, ... seconds (up to 10 minutes,
//! with ±25% jitter), up to `max_attempts` tries; then the row is kept as failed (the API lists
//! it). A failure that cannot heal (HTTP 4xx other than 408/429, an SMTP permanent error) fails
//! at once. While a target fails, its thread backs off as a whole instead of hammering it.

pub mod config;
pub mod format;
pub mod send;

pub use config::{Target, TargetRaw};
use dnsight_engine::{Alert, Severity};
use dnsight_triage::{NotifyEvent, OutboxItem, Router, SqliteStore, TriageStore};
use format::Batch;
use rand::Rng;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often each delivery thread looks at the outbox.
pub const POLL: Duration = Duration::from_millis(200);
/// Most rows one digest carries (the rest go in the next).
pub const DIGEST_MAX: usize = 1000;

/// The configured routes: which targets want which events.
pub struct Routes {
    routes: Vec<(String, config::Route)>,
}

impl Routes {
    pub fn new(targets: &[Target]) -> Routes {
        Routes {
            routes: targets
                .iter()
                .map(|t| (t.name.clone(), t.route.clone()))
                .collect(),
        }
    }
}

impl Router for Routes {
    fn route(&self, alert: &Alert, event: NotifyEvent) -> Vec<String> {
        self.routes
            .iter()
            .filter(|(_, r)| r.wants(alert, event))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Seconds before try number `attempt + 1` (1, 2, 4, ... up to 600, ±25%).
pub fn backoff(attempt: u32) -> i64 {
    let base = 1i64 << attempt.min(10);
    let base = base.min(600) as f64;
    let j = rand::rng().random_range(0.75..1.25);
    ((base * j).round() as i64).max(1)
}

/// One target's delivery loop.
struct Worker {
    sender: send::Sender,
    store: Box<dyn TriageStore>,
    failures: u32,
    resume_at: Option<Instant>,
}

impl Worker {
    /// One look at the outbox; returns after the first failure (the target backs off).
    fn pass(&mut self) -> dnsight_triage::Result<()> {
        if self.resume_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let t = self.sender.target().clone();
        let now = now_secs();
        let due = self.store.outbox_due(&t.name, now, 2 * DIGEST_MAX as u32)?;
        if due.is_empty() {
            return Ok(());
        }
        let since = now - t.digest.window.as_secs() as i64;
        let (single, _) = self.store.outbox_sent_since(&t.name, since)?;
        let mut budget = u64::from(t.digest.after).saturating_sub(single);
        let mut held = Vec::new();
        for item in due {
            let critical = item.alert.severity == Severity::Critical;
            if !critical && budget == 0 {
                held.push(item);
                continue;
            }
            budget = budget.saturating_sub(1);
            match self.sender.send(Batch::One(&item)) {
                Ok(()) => {
                    self.store.outbox_sent(&[item.id], now_secs())?;
                    self.ok();
                }
                Err(e) => {
                    self.failed(&t, std::slice::from_ref(&item), &e)?;
                    return Ok(());
                }
            }
        }
        if held.is_empty() {
            return Ok(());
        }
        let last = self.store.outbox_last_digest(&t.name)?;
        if last.is_some_and(|l| now - l < t.digest.every.as_secs() as i64) {
            return Ok(());
        }
        held.truncate(DIGEST_MAX);
        match self.sender.send(Batch::Digest(&held)) {
            Ok(()) => {
                let ids: Vec<i64> = held.iter().map(|i| i.id).collect();
                self.store.outbox_digest_sent(&t.name, &ids, now_secs())?;
                tracing::info!(target = %t.name, alerts = ids.len(), "notification digest sent");
                self.ok();
            }
            Err(e) => self.failed(&t, &held, &e)?,
        }
        Ok(())
    }

    fn ok(&mut self) {
        if self.failures > 0 {
            tracing::info!(target = %self.sender.target().name, "notification target reachable again");
        }
        self.failures = 0;
        self.resume_at = None;
    }

    fn failed(
        &mut self,
        t: &Target,
        items: &[OutboxItem],
        e: &send::SendError,
    ) -> dnsight_triage::Result<()> {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let attempts = items.iter().map(|i| i.attempts).max().unwrap_or(0);
        let max = if e.permanent { 0 } else { t.max_attempts };
        let gone = self
            .store
            .outbox_retry(&ids, &e.msg, now_secs() + backoff(attempts), max)?;
        self.failures += 1;
        let pause = Duration::from_secs(backoff(self.failures.saturating_sub(1)) as u64);
        self.resume_at = Some(Instant::now() + pause);
        if gone > 0 {
            tracing::error!(target = %t.name, error = %e, failed = gone, "notifications failed for good (kept as failed: GET /api/v1/notifications?state=failed)");
        } else {
            tracing::warn!(target = %t.name, error = %e, retry_in_s = pause.as_secs(), "notification delivery failed; trying again");
        }
        Ok(())
    }
}

/// The running delivery threads.
pub struct Notifier {
    stop: Vec<mpsc::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Notifier {
    /// One delivery thread per target, each with its own connection to the state directory's
    /// triage store.
    pub fn spawn(targets: &[Target], state_dir: &Path) -> Result<Notifier, String> {
        Notifier::spawn_with(targets, || {
            SqliteStore::open(state_dir)
                .map(|s| Box::new(s) as Box<dyn TriageStore>)
                .map_err(|e| e.to_string())
        })
    }

    /// [`Notifier::spawn`] with the connections `open` makes (another store backend).
    pub fn spawn_with(
        targets: &[Target],
        open: impl Fn() -> Result<Box<dyn TriageStore>, String>,
    ) -> Result<Notifier, String> {
        let mut n = Notifier {
            stop: Vec::new(),
            threads: Vec::new(),
        };
        for t in targets {
            let store = open()?;
            let (tx, rx) = mpsc::channel::<()>();
            let mut w = Worker {
                sender: send::Sender::new(t.clone()),
                store,
                failures: 0,
                resume_at: None,
            };
            let th = std::thread::Builder::new()
                .name(format!("dnsight-notify-{}", t.name))
                .spawn(move || loop {
                    if let Err(e) = w.pass() {
                        tracing::error!(target = %w.sender.target().name, error = %e, "reading the notification outbox failed");
                    }
                    match rx.recv_timeout(POLL) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                })
                .map_err(|e| e.to_string())?;
            n.stop.push(tx);
            n.threads.push(th);
        }
        Ok(n)
    }

    /// Stops after the current delivery (pending rows stay in the outbox).
    pub fn stop(self) {
        drop(self.stop);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A sample alert for `dnsight notify test`, with a name that exercises each format's escaping.
pub fn sample_alert() -> Alert {
    let now = dnsight_model_ts_now();
    Alert {
        id: "0000000000000000".into(),
        kind: dnsight_engine::Kind::ThreatIntel,
        severity: Severity::High,
        score: 80,
        device: "192.0.2.10".into(),
        device_name: Some("test-device".into()),
        group: None,
        destination: "test.dnsight.invalid".into(),
        first_seen: now,
        last_seen: now,
        count: 1,
        summary:
            "This is a test notification from dnsight (`dnsight notify test`): no action needed."
                .into(),
        evidence: serde_json::json!({"test": true}),
        status: dnsight_engine::Status::Open,
        devices: vec!["192.0.2.10".into()],
        device_count: 1,
        own_score: 80.0,
    }
}

fn dnsight_model_ts_now() -> dnsight_model::Ts {
    dnsight_model::Ts::from_micros(jiff::Timestamp::now().as_microsecond())
}

/// Sends a sample notification to `t` right away (not through the outbox).
pub fn send_test(t: &Target) -> Result<(), String> {
    let item = OutboxItem {
        id: 0,
        target: t.name.clone(),
        event: NotifyEvent::New,
        alert: sample_alert(),
        actor: "dnsight notify test".into(),
        note: None,
        created_at: now_secs(),
        state: dnsight_triage::OutboxState::Pending,
        attempts: 0,
        next_at: now_secs(),
        last_error: None,
        sent_at: None,
        digest: None,
    };
    send::Sender::new(t.clone())
        .send(Batch::One(&item))
        .map_err(|e| e.msg)
}
