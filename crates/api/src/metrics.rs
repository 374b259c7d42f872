//! `/metrics`: every counter in the Prometheus text format (0.0.4), encoded by the
//! prometheus-client crate.
//!
//! Values come from three places: the pipeline's stats (pipeline, engine, triage store; pulled
//! from the actor at each scrape), live values the binary hands over in [`Live`] (the
//! resolver's counters, the query-log writer), and [`EventMetrics`], counted by the binary on
//! the resolver's event thread (off the answer path): transactions by source, transport and
//! rcode, and the upstream latency histogram. A fresh registry is built at each scrape from
//! those values, so nothing here sits on a hot path.

use dnsight_model::{DnsEvent, Source, Transport, VerdictAction};
use dnsight_pipeline::PipelineStats;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A counter list: (name without prefix and `_total`, help, value).
pub type Counters = Vec<(&'static str, &'static str, u64)>;

/// What the API shows besides the pipeline's stats, set by the binary.
#[derive(Clone, Default)]
pub struct Live {
    /// The query-log writer (its queue, drops, commit latency).
    pub querylog: Option<dnsight_triage::QueryLog>,
    /// The resolver's counters (each exported as `dnsight_resolver_NAME_total`).
    pub resolver: Option<Arc<dyn Fn() -> Counters + Send + Sync>>,
    /// Transactions counted on the resolver's event thread.
    pub events: Option<EventMetrics>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("querylog", &self.querylog.is_some())
            .field("resolver", &self.resolver.is_some())
            .field("events", &self.events.is_some())
            .finish()
    }
}

/// The rcodes with a series of their own; others are `other`, no response is `none`.
const RCODES: [(u16, &str); 6] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
];
const N_RCODE: usize = RCODES.len() + 2;
const N_CELLS: usize = Source::ALL.len() * Transport::ALL.len() * N_RCODE;
/// Upper bounds (seconds) of the upstream latency histogram.
pub const UPSTREAM_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
];

struct EventCells {
    by_cell: Vec<AtomicU64>,
    blocked: AtomicU64,
    upstream: [AtomicU64; UPSTREAM_BUCKETS.len() + 1],
    upstream_sum_us: AtomicU64,
    upstream_count: AtomicU64,
}

/// Transactions by source, transport and rcode, blocked ones, and the upstream latency of
/// forwarded queries. Plain relaxed atomics in fixed cells: counting is a few adds per event.
#[derive(Clone)]
pub struct EventMetrics(Arc<EventCells>);

impl Default for EventMetrics {
    fn default() -> Self {
        EventMetrics(Arc::new(EventCells {
            by_cell: (0..N_CELLS).map(|_| AtomicU64::new(0)).collect(),
            blocked: AtomicU64::new(0),
            upstream: Default::default(),
            upstream_sum_us: AtomicU64::new(0),
            upstream_count: AtomicU64::new(0),
        }))
    }
}

impl EventMetrics {
    pub fn observe(&self, ev: &DnsEvent) {
        let (s, t) = (ev.source as usize, ev.transport as usize);
        let r = match ev.rcode {
            None => N_RCODE - 1,
            Some(c) => RCODES
                .iter()
                .position(|(x, _)| *x == c)
                .unwrap_or(RCODES.len()),
        };
        let c = &self.0;
        c.by_cell[(s * Transport::ALL.len() + t) * N_RCODE + r].fetch_add(1, Ordering::Relaxed);
        let action = ev.verdict.as_ref().map(|v| v.action);
        if action == Some(VerdictAction::Blocked) {
            c.blocked.fetch_add(1, Ordering::Relaxed);
        }
        if action == Some(VerdictAction::Forwarded) {
            if let Some(us) = ev.rtt_us {
                let secs = f64::from(us) / 1e6;
                let i = UPSTREAM_BUCKETS
                    .iter()
                    .position(|&b| secs <= b)
                    .unwrap_or(UPSTREAM_BUCKETS.len());
                c.upstream[i].fetch_add(1, Ordering::Relaxed);
                c.upstream_sum_us
                    .fetch_add(u64::from(us), Ordering::Relaxed);
                c.upstream_count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A histogram from counts kept elsewhere (non-cumulative bucket counts, the last slot over
/// the last bound).
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl ConstHistogram {
    fn new(bounds: &[f64], counts: &[u64], sum: f64) -> ConstHistogram {
        ConstHistogram {
            sum,
            count: counts.iter().sum(),
            buckets: bounds.iter().copied().zip(counts.iter().copied()).collect(),
        }
    }
}

impl TypedMetric for ConstHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }
    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

type Labels = Vec<(&'static str, String)>;

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}
fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

/// One series: (name without the `dnsight_` prefix and the counters' `_total`, help, value).
type Series<'a> = (&'a str, &'a str, u64);

/// The registry being filled: every metric goes in through one of these four calls.
struct Out(Registry);

impl Out {
    fn counters(&mut self, list: &[Series<'_>]) {
        for &(name, help, v) in list {
            self.0.register(name, help, counter(v));
        }
    }

    fn gauges(&mut self, list: &[Series<'_>]) {
        for &(name, help, v) in list {
            self.0.register(name, help, gauge(v));
        }
    }

    /// A family of series by label values (`keys` names the labels, each row gives their
    /// values and the value `set` puts in the series).
    fn family<M, V>(
        &mut self,
        name: &str,
        help: &str,
        keys: &[&'static str],
        rows: impl IntoIterator<Item = (Vec<String>, V)>,
        set: fn(&M, V),
    ) where
        M: EncodeMetric + TypedMetric + Default + Clone + Send + Sync + std::fmt::Debug + 'static,
    {
        let f = Family::<Labels, M>::default();
        for (vals, v) in rows {
            let labels: Labels = keys.iter().copied().zip(vals).collect();
            set(&f.get_or_create(&labels), v);
        }
        self.0.register(name, help, f);
    }

    fn histogram(&mut self, name: &str, help: &str, h: ConstHistogram) {
        self.0.register(name, help, h);
    }
}

fn inc(c: &Counter, v: u64) {
    c.inc_by(v);
}
fn inc_f(c: &Counter<f64, AtomicU64>, v: f64) {
    c.inc_by(v);
}
fn set(g: &Gauge, v: u64) {
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
}

/// The exposition text of everything dnsight counts.
pub fn render(s: &PipelineStats, live: &Live) -> String {
    let mut o = Out(Registry::with_prefix("dnsight"));
    let e = &s.engine;
    let st = &s.store;
    let ob = &st.outbox;
    // ---- the pipeline (names kept from the hand-written exposition) and the engine
    o.counters(&[
        ("pipeline_events", "DNS events analysed.", s.events_in),
        ("pipeline_batches", "Event batches received.", s.batches_in),
        (
            "pipeline_commands",
            "Commands served (actions, blocks).",
            s.commands,
        ),
        (
            "pipeline_alerts_written",
            "Alert changes written to the store.",
            s.alerts_written,
        ),
        ("pipeline_saves", "Engine state saves.", s.saves),
        (
            "pipeline_save_errors",
            "Failed engine state saves.",
            s.save_errors,
        ),
        ("engine_events", "Events the engine analysed.", e.events),
        (
            "engine_findings_suppressed",
            "Findings dropped because an acknowledgement covers them.",
            e.suppressed,
        ),
        (
            "engine_findings_exempted",
            "Findings dropped by a [[detection.exempt]] entry.",
            e.exempted,
        ),
        (
            "notification_digests",
            "Digest messages sent (floods folded into one message).",
            ob.digests,
        ),
    ]);
    o.gauges(&[
        ("engine_devices", "Devices the engine knows.", e.devices),
        (
            "engine_devices_learning",
            "Devices still learning their baseline.",
            e.devices_learning,
        ),
        (
            "engine_destinations",
            "Destinations in the baselines.",
            e.destinations,
        ),
        (
            "engine_baseline_entries",
            "(device, destination) baseline entries.",
            e.baseline_entries,
        ),
        ("blocks_active", "Active blocks.", st.blocks_active),
        ("allows_active", "Active allows.", st.allows_active),
        ("acks_active", "Active acknowledgements.", st.acks_active),
        ("tokens_active", "Usable API tokens.", st.tokens_active),
        (
            "store_file_bytes",
            "Size of the triage store's file and its WAL (the query log included).",
            st.file_bytes,
        ),
    ]);
    let one = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, n)| (vec![k.clone()], *n))
            .collect::<Vec<_>>()
    };
    o.family(
        "engine_events_skipped",
        "Events the engine skipped, by reason.",
        &["reason"],
        one(&e.skipped),
        inc,
    );
    o.family(
        "engine_findings",
        "Detector findings, by alert kind (one detector per kind).",
        &["kind"],
        one(&e.findings),
        inc,
    );
    o.family(
        "engine_detector_seconds",
        "Time spent in each detector, estimated from every 64th event.",
        &["detector"],
        e.detector_seconds
            .iter()
            .map(|(k, v)| (vec![k.clone()], *v)),
        inc_f,
    );
    o.family(
        "engine_live_alerts",
        "Live alerts in the engine's book, by severity.",
        &["severity"],
        one(&e.alerts_by_severity),
        set,
    );

    // ---- ingestion health per source
    let per_source = |f: fn(&dnsight_pipeline::SourceStatus) -> u64| {
        s.sources
            .iter()
            .map(move |x| (vec![x.name.clone(), x.kind.clone()], f(x)))
            .collect::<Vec<_>>()
    };
    o.family(
        "source_events",
        "Events that entered from each source (resolver, passive sources, intakes).",
        &["source", "kind"],
        per_source(|x| x.events),
        inc,
    );
    o.family(
        "source_dropped",
        "Events of each source lost on the way in (a full queue).",
        &["source", "kind"],
        per_source(|x| x.dropped),
        inc,
    );
    o.family(
        "source_rejected",
        "Input of each source not understood and skipped.",
        &["source", "kind"],
        per_source(|x| x.rejected),
        inc,
    );
    o.family(
        "source_up",
        "1 while the source runs (listening, following, reading), 0 once it stopped or failed.",
        &["source", "kind"],
        per_source(|x| u64::from(x.up)),
        set,
    );

    // ---- the triage store
    o.family(
        "alerts",
        "Alerts in the store by status.",
        &["status"],
        one(&st.alerts_by_status),
        set,
    );
    o.family(
        "alerts_by_kind",
        "Alerts in the store by kind, severity and status.",
        &["kind", "severity", "status"],
        st.alerts_by.iter().map(|a| {
            (
                vec![a.kind.clone(), a.severity.clone(), a.status.clone()],
                a.count,
            )
        }),
        set,
    );
    o.family(
        "notifications",
        "Notifications in the outbox by state (failed: every try failed).",
        &["state"],
        [
            ("pending", ob.pending),
            ("sent", ob.sent),
            ("failed", ob.failed),
        ]
        .map(|(k, n)| (vec![k.to_string()], n)),
        set,
    );

    // ---- the resolver
    if let Some(f) = &live.resolver {
        let sub = o.0.sub_registry_with_prefix("resolver");
        for (name, help, v) in f() {
            sub.register(name, help, counter(v));
        }
    }
    if let Some(ev) = &live.events {
        let cells = &ev.0;
        let mut rows = Vec::new();
        for (si, sname) in Source::ALL.map(Source::as_str).iter().enumerate() {
            for (ti, tname) in Transport::ALL.map(Transport::as_str).iter().enumerate() {
                for ri in 0..N_RCODE {
                    let n = cells.by_cell[(si * Transport::ALL.len() + ti) * N_RCODE + ri]
                        .load(Ordering::Relaxed);
                    if n == 0 {
                        continue;
                    }
                    let rname = match ri {
                        i if i < RCODES.len() => RCODES[i].1,
                        i if i == RCODES.len() => "other",
                        _ => "none",
                    };
                    rows.push((
                        vec![sname.to_string(), tname.to_string(), rname.to_string()],
                        n,
                    ));
                }
            }
        }
        o.family(
            "queries",
            "DNS transactions seen, by source, transport and response code (none: no response).",
            &["source", "transport", "rcode"],
            rows,
            inc,
        );
        o.counters(&[(
            "queries_blocked",
            "Queries the resolver answered by policy (block lists, blocks).",
            cells.blocked.load(Ordering::Relaxed),
        )]);
        let counts: Vec<u64> = cells
            .upstream
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let sum = cells.upstream_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        o.histogram(
            "upstream_latency_seconds",
            "Time from forwarding a cache miss to its upstream answer.",
            ConstHistogram::new(&UPSTREAM_BUCKETS, &counts, sum),
        );
    }

    // ---- the query log
    if let Some(q) = &live.querylog {
        let w = q.stats();
        o.counters(&[
            (
                "querylog_rows_written",
                "Transactions written to the query log (a coalesced row counts each transaction it stands for).",
                w.written,
            ),
            (
                "querylog_stored_rows",
                "Rows stored by the query log (identical transactions of a client within a second are one row).",
                w.rows_written,
            ),
            (
                "querylog_rows_dropped",
                "Rows that did not fit in the query log's queue (or whose batch failed).",
                w.dropped,
            ),
            (
                "querylog_rows_deleted",
                "Rows deleted by the retention.",
                w.deleted,
            ),
            (
                "querylog_write_errors",
                "Query-log transactions that failed to commit.",
                w.write_errors,
            ),
            (
                "querylog_yields",
                "Query-log transactions ended early to let a waiting triage action commit.",
                w.yields,
            ),
        ]);
        o.gauges(&[
            (
                "querylog_queue_depth",
                "Rows waiting for the query-log writer.",
                w.queue_depth,
            ),
            (
                "querylog_queue_capacity",
                "Rows the query-log queue holds.",
                w.queue_capacity,
            ),
        ]);
        let bounds: Vec<f64> = dnsight_triage::querylog::COMMIT_BUCKETS_US
            .iter()
            .map(|&b| b as f64 / 1e6)
            .collect();
        o.histogram(
            "querylog_commit_seconds",
            "Time one query-log write transaction held the store's write lock (insert and commit).",
            ConstHistogram::new(&bounds, &w.commit_buckets, w.commit_us_total as f64 / 1e6),
        );
    }
    let mut out = String::new();
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &o.0);
    out
}
