//! Query counts for the charts (the overview's queries and blocks over time, the devices'
//! sparklines, the device page's queries over time), from the query log through
//! [`TriageStore::query_timeline`](dnsight_triage::TriageStore::query_timeline).
//!
//! Counting 10 million rows takes seconds, so pages never wait for it: the counts are kept in
//! memory per hour over the last [`HOURS`] hours of the log's own clock (its newest row's
//! event time), for all devices and for each device the engine knows, and refreshed in the
//! background at most every [`REFRESH`] — each refresh re-reads only the last two hours (rows
//! arrive in time order), and every [`FULL`] it re-reads the whole window (late rows, retention).
//! The refresh has its own connection to the triage file when the dashboard knows the state
//! directory, so it never holds the API's connection; a page that finds no counts yet says so.

use dnsight_triage::{QueryFilter, TimelineBucket, TriageStore};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One bucket: an hour.
pub(crate) const STEP_US: i64 = 3_600_000_000;
/// The window: 14 days.
pub(crate) const HOURS: i64 = 14 * 24;
/// Counts older than this are refreshed (in the background) when a page asks for them.
pub(crate) const REFRESH: Duration = Duration::from_secs(5);
/// The whole window is re-read this often.
pub(crate) const FULL: Duration = Duration::from_secs(3600);

/// Hourly counts from `from_us` on (contiguous buckets, oldest first).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Series {
    pub from_us: i64,
    pub buckets: Vec<TimelineBucket>,
}

impl Series {
    fn end_us(&self) -> i64 {
        self.from_us + self.buckets.len() as i64 * STEP_US
    }

    /// The queries per `hours`-hour bucket over the last `n` such buckets.
    pub fn queries_per(&self, hours: usize, n: usize) -> Vec<f64> {
        let hours = hours.max(1);
        let mut out = vec![0.0; n];
        for (k, b) in self.buckets.iter().rev().take(hours * n).enumerate() {
            let slot = n - 1 - k / hours;
            out[slot] += b.queries as f64;
        }
        out
    }
}

/// What the refresh keeps.
#[derive(Default)]
struct Counts {
    all: Option<Series>,
    devices: HashMap<String, Series>,
    refreshed: Option<Instant>,
    full: Option<Instant>,
}

pub(crate) struct Activity {
    dir: Option<PathBuf>,
    counts: Mutex<Counts>,
    running: AtomicBool,
    /// The refresh's own connection (taken while it works).
    conn: Mutex<Option<dnsight_triage::SqliteStore>>,
}

impl Activity {
    pub(crate) fn new(dir: Option<PathBuf>) -> Activity {
        Activity {
            dir,
            counts: Mutex::new(Counts::default()),
            running: AtomicBool::new(false),
            conn: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// All devices' counts (None until the first refresh finished, or an empty log).
    pub(crate) fn all(&self) -> Option<Series> {
        self.lock().all.clone()
    }

    /// One device's counts, by address.
    pub(crate) fn device(&self, ip: &str) -> Option<Series> {
        self.lock().devices.get(ip).cloned()
    }

    /// Whether a refresh has finished at least once.
    pub(crate) fn ready(&self) -> bool {
        self.lock().refreshed.is_some()
    }

    /// Each device's queries per `hours` hours over the last `n` such buckets.
    pub(crate) fn sparks(&self, ips: &[&str], hours: usize, n: usize) -> Vec<Option<Vec<f64>>> {
        let g = self.lock();
        ips.iter()
            .map(|ip| g.devices.get(*ip).map(|s| s.queries_per(hours, n)))
            .collect()
    }

    /// Starts a refresh in the background when the counts are older than [`REFRESH`] and none
    /// is running.
    pub(crate) fn kick(self: &Arc<Self>, api: &dnsight_api::AppState) {
        let stale = self.lock().refreshed.is_none_or(|t| t.elapsed() >= REFRESH);
        if !stale || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        let api = api.clone();
        tokio::spawn(async move {
            me.refresh(&api).await;
            me.running.store(false, Ordering::Release);
        });
    }

    async fn refresh(self: &Arc<Self>, api: &dnsight_api::AppState) {
        let devices: Vec<String> = match api.pipe(|h| h.devices()).await {
            Ok(d) => d.into_iter().map(|d| d.ip).collect(),
            Err(_) => Vec::new(),
        };
        let me = self.clone();
        let done = match &self.dir {
            Some(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    let mut slot = me.conn.lock().unwrap_or_else(|e| e.into_inner());
                    if slot.is_none() {
                        *slot = dnsight_triage::SqliteStore::open(&dir).ok();
                    }
                    match slot.as_ref() {
                        Some(s) => me.count(s, &devices),
                        None => Err("the triage file did not open".into()),
                    }
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
            }
            None => api
                .read(move |s| Ok(me.count(s, &devices)))
                .await
                .unwrap_or_else(|e| Err(e.msg)),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "dashboard: counting the query log failed");
        }
        self.lock().refreshed = Some(Instant::now());
    }

    /// Counts the window ending at the log's newest row, reusing what the last refresh
    /// counted; all devices first (published at once: the overview's chart), then each device.
    fn count(&self, s: &dyn TriageStore, devices: &[String]) -> Result<(), String> {
        let Some((lo, hi)) = window(s)? else {
            let mut g = self.lock();
            g.all = None;
            g.devices.clear();
            return Ok(());
        };
        let (prev_all, mut prev_dev, full) = {
            let g = self.lock();
            let full = g.full.is_none_or(|t| t.elapsed() >= FULL);
            (g.all.clone(), g.devices.clone(), full)
        };
        let all = update(s, None, prev_all.filter(|_| !full), lo, hi)?;
        self.lock().all = Some(all);
        let mut out = HashMap::with_capacity(devices.len());
        let mut failed = None;
        for d in devices {
            let p = prev_dev.remove(d);
            match update(s, Some(d), p.clone().filter(|_| !full), lo, hi) {
                Ok(x) => {
                    out.insert(d.clone(), x);
                }
                Err(e) => {
                    if let Some(p) = p {
                        out.insert(d.clone(), p);
                    }
                    failed = Some(e);
                }
            }
        }
        let mut g = self.lock();
        g.devices = out;
        if full && failed.is_none() {
            g.full = Some(Instant::now());
        }
        failed.map_or(Ok(()), Err)
    }
}

/// The charts' window, `[lo, hi)` in microseconds: the [`HOURS`] hours up to the end of the
/// hour of the log's newest row (None: the log is empty).
pub(crate) fn window(s: &dyn TriageStore) -> Result<Option<(i64, i64)>, String> {
    let newest = s
        .search_queries(&QueryFilter {
            limit: Some(1),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?
        .rows
        .first()
        .map(|r| r.ts_us);
    Ok(newest.map(|n| {
        let hi = (n.div_euclid(STEP_US) + 1) * STEP_US;
        (hi - HOURS * STEP_US, hi)
    }))
}

/// `[lo, hi)` hourly: the buckets `prev` holds before its last two re-read, the rest counted.
pub(crate) fn update(
    s: &dyn TriageStore,
    device: Option<&str>,
    prev: Option<Series>,
    lo: i64,
    hi: i64,
) -> Result<Series, String> {
    let reuse =
        prev.filter(|p| p.from_us <= lo && p.from_us.rem_euclid(STEP_US) == lo.rem_euclid(STEP_US));
    let from = match &reuse {
        Some(p) => (p.end_us() - 2 * STEP_US).clamp(lo, hi),
        None => lo,
    };
    let fresh = if from < hi {
        s.query_timeline(device, from, hi, STEP_US)
            .map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let mut buckets = Vec::with_capacity(((hi - lo) / STEP_US) as usize);
    let mut t = lo;
    while t < from {
        let b = reuse
            .as_ref()
            .and_then(|p| p.buckets.get(((t - p.from_us) / STEP_US) as usize))
            .copied()
            .unwrap_or(TimelineBucket {
                start_us: t,
                ..Default::default()
            });
        buckets.push(b);
        t += STEP_US;
    }
    buckets.extend(fresh);
    Ok(Series {
        from_us: lo,
        buckets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_per_sums_the_newest_buckets() {
        let s = Series {
            from_us: 0,
            buckets: (0..10)
                .map(|i| TimelineBucket {
                    start_us: i * STEP_US,
                    queries: i as u64,
                    ..Default::default()
                })
                .collect(),
        };
        // the last 3 pairs of hours: (4+5), (6+7), (8+9)
        assert_eq!(s.queries_per(2, 3), vec![9.0, 13.0, 17.0]);
        // more asked than held: zeros first
        assert_eq!(s.queries_per(5, 3), vec![0.0, 10.0, 35.0]);
    }
}
