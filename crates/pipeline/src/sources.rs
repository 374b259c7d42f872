//! Ingestion health per source: one [`SourceMeter`] for each way events come in (the resolver,
//! each passive source, the API's intakes, the demo's simulator), counted where the events
//! enter and read by `stats` (the dashboard's overview, `GET /api/v1/stats`, `/metrics`).
//!
//! A meter is a few relaxed atomics: counting a batch is two adds and a store. Events per
//! second are measured when the registry is read, over at least a second since the previous
//! measurement (so readers arriving together see the same figure).

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Counts kept elsewhere and read when the registry is (e.g. the resolver's own drop counter):
/// (dropped, rejected) totals.
pub type Probe = Box<dyn Fn() -> Option<(u64, u64)> + Send + Sync>;

struct Meter {
    name: String,
    kind: String,
    events: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    /// Unix seconds of the last batch with events (0: none yet).
    last_event: AtomicI64,
    up: AtomicBool,
    error: Mutex<Option<String>>,
    probe: Mutex<Option<Probe>>,
    /// (when, events then, the rate measured then)
    rate: Mutex<(Instant, u64, f64)>,
}

/// One source's counters (cheap to clone; every clone counts into the same meter).
#[derive(Clone)]
pub struct SourceMeter(Arc<Meter>);

impl std::fmt::Debug for SourceMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceMeter({:?})", self.0.name)
    }
}

impl SourceMeter {
    /// `n` events entered (the last-event time moves only when `n > 0`).
    pub fn events(&self, n: u64) {
        if n > 0 {
            self.0.events.fetch_add(n, Ordering::Relaxed);
            self.0
                .last_event
                .store(crate::now_secs(), Ordering::Relaxed);
        }
    }
    /// `n` events were lost on the way in (a full queue).
    pub fn dropped(&self, n: u64) {
        self.0.dropped.fetch_add(n, Ordering::Relaxed);
    }
    /// `n` records were not understood and skipped.
    pub fn rejected(&self, n: u64) {
        self.0.rejected.fetch_add(n, Ordering::Relaxed);
    }
    /// The reader's own running total of rejected records (never goes back).
    pub fn rejected_total(&self, total: u64) {
        self.0.rejected.fetch_max(total, Ordering::Relaxed);
    }
    /// Running (listening, following, reading).
    pub fn up(&self) {
        self.0.up.store(true, Ordering::Relaxed);
        *self.0.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    pub fn is_up(&self) -> bool {
        self.0.up.load(Ordering::Relaxed)
    }
    /// Stopped; with the reason when it failed.
    pub fn down(&self, error: Option<String>) {
        self.0.up.store(false, Ordering::Relaxed);
        *self.0.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
    /// Dropped and rejected counts kept by the source itself, added to the meter's own when
    /// the registry is read (`None` from the probe: the source is gone).
    pub fn set_probe(&self, p: Probe) {
        *self.0.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }
}

/// One source as `stats` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Unique: `resolver`, `dnstap unix:/run/dnstap.sock`, `syslog udp:0.0.0.0:514`, `intake`, ...
    pub name: String,
    /// `resolver`, `dnstap`, `syslog`, `zeek`, `jsonl`, `querylog`, `capture`, `intake`,
    /// `firehose`, `simulator`, `bus`.
    pub kind: String,
    pub up: bool,
    pub events: u64,
    /// Over the last second or more before this reading.
    pub events_per_sec: f64,
    /// Lost on the way in (a full queue).
    pub dropped: u64,
    /// Input not understood and skipped.
    pub rejected: u64,
    /// Unix seconds of the last event.
    pub last_event_unix: Option<i64>,
    /// Why it stopped, when it failed.
    pub error: Option<String>,
}

/// The registry of every source of one process (cheap to clone).
#[derive(Clone, Default)]
pub struct Sources(Arc<Mutex<Vec<SourceMeter>>>);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list().iter().map(|m| &m.0.name))
            .finish()
    }
}

impl Sources {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<SourceMeter>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The meter of source `name` (created up, or the existing one: a name is one source).
    pub fn register(&self, name: &str, kind: &str) -> SourceMeter {
        let mut l = self.list();
        if let Some(m) = l.iter().find(|m| m.0.name == name) {
            return m.clone();
        }
        let m = SourceMeter(Arc::new(Meter {
            name: name.to_string(),
            kind: kind.to_string(),
            events: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_event: AtomicI64::new(0),
            up: AtomicBool::new(true),
            error: Mutex::new(None),
            probe: Mutex::new(None),
            rate: Mutex::new((Instant::now(), 0, 0.0)),
        }));
        l.push(m.clone());
        m
    }

    /// Every source, in the order they were registered.
    pub fn snapshot(&self) -> Vec<SourceStatus> {
        let now = Instant::now();
        self.list()
            .iter()
            .map(|SourceMeter(m)| {
                let events = m.events.load(Ordering::Relaxed);
                let rate = {
                    let mut r = m.rate.lock().unwrap_or_else(|e| e.into_inner());
                    let dt = now.duration_since(r.0).as_secs_f64();
                    if dt >= 1.0 {
                        *r = (now, events, events.saturating_sub(r.1) as f64 / dt);
                    }
                    r.2
                };
                let (mut dropped, mut rejected) = (
                    m.dropped.load(Ordering::Relaxed),
                    m.rejected.load(Ordering::Relaxed),
                );
                let mut up = m.up.load(Ordering::Relaxed);
                if let Some(p) = m.probe.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    match p() {
                        Some((d, r)) => {
                            dropped += d;
                            rejected += r;
                        }
                        None => up = false,
                    }
                }
                let last = m.last_event.load(Ordering::Relaxed);
                SourceStatus {
                    name: m.name.clone(),
                    kind: m.kind.clone(),
                    up,
                    events,
                    events_per_sec: rate,
                    dropped,
                    rejected,
                    last_event_unix: (last > 0).then_some(last),
                    error: m.error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_source_and_one_meter_per_name() {
        let s = Sources::default();
        let a = s.register("dnstap unix:/x", "dnstap");
        let b = s.register("intake", "intake");
        a.events(10);
        a.rejected_total(3);
        a.rejected_total(2); // a running total never goes back
        s.register("dnstap unix:/x", "dnstap").events(5);
        b.dropped(7);
        b.set_probe(Box::new(|| Some((1, 2))));
        a.down(Some("socket closed".into()));
        let v = s.snapshot();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].events, v[0].rejected, v[0].up),
            (15, 3, false),
            "{v:?}"
        );
        assert_eq!(v[0].error.as_deref(), Some("socket closed"));
        assert!(v[0].last_event_unix.is_some());
        assert_eq!((v[1].dropped, v[1].rejected, v[1].up), (8, 2, true));
        assert_eq!(v[1].last_event_unix, None);
        b.set_probe(Box::new(|| None));
        assert!(!s.snapshot()[1].up, "a probe that finds its source gone");
    }

    #[test]
    fn rate_over_at_least_a_second() {
        let s = Sources::default();
        let m = s.register("r", "resolver");
        {
            let mut g = m.0.rate.lock().unwrap();
            g.0 -= std::time::Duration::from_secs(2);
        }
        m.events(100);
        let r = s.snapshot()[0].events_per_sec;
        assert!((45.0..=50.0).contains(&r), "{r}");
        // read again at once: the same figure
        assert_eq!(s.snapshot()[0].events_per_sec, r);
    }
}
