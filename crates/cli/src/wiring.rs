//! Wiring shared by `serve`, `demo` and `analyze`: the engine, the triage store and the outputs
//! built into one [`Pipeline`], and the glue between the pipeline and the resolver.

use anyhow::Context;
use dnsight_engine::Engine;
use dnsight_pipeline::{IntelSource, Outputs, Pipeline, PipelineConfig, Producer};
use dnsight_triage::{BlockRule, SqliteStore, TriageStore};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

/// Intel feed files and GeoIP databases as the pipeline's reload source.
pub struct IntelFilesSource {
    files: crate::config::engine::EnrichFiles,
    /// The feeds last loaded (their entry counts, for `status`).
    loaded: Arc<dnsight_engine::IntelSet>,
    /// The resolver's block and allow lists, shown with the feeds.
    lists: Option<ListsStatus>,
}

impl IntelFilesSource {
    pub fn new(
        files: crate::config::engine::EnrichFiles,
        loaded: Arc<dnsight_engine::IntelSet>,
    ) -> Self {
        IntelFilesSource {
            files,
            loaded,
            lists: None,
        }
    }
    /// Shows the resolver's lists in `status` too.
    pub fn with_lists(mut self, l: ListsStatus) -> Self {
        self.lists = Some(l);
        self
    }
}

/// The resolver's block and allow lists with their freshness, as `stats` feeds (kind
/// `blocklist` or `allowlist`): rules loaded, lines skipped, the age of the copy in force, the
/// download state of lists kept from a URL. The resolver starts after the pipeline: it is
/// attached when it is up.
#[derive(Clone)]
pub struct ListsStatus {
    resolver: Arc<Mutex<Option<Weak<dnsight_resolver::Resolver>>>>,
    fetches: Arc<Vec<crate::fetch::Fetch>>,
}

impl ListsStatus {
    pub fn new(fetches: Vec<crate::fetch::Fetch>) -> Self {
        ListsStatus {
            resolver: Arc::default(),
            fetches: Arc::new(fetches),
        }
    }
    pub fn attach(&self, r: &Arc<dnsight_resolver::Resolver>) {
        *self.resolver.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::downgrade(r));
    }
    pub fn status(&self) -> Vec<dnsight_pipeline::FeedStatus> {
        let r = self
            .resolver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(Weak::upgrade);
        let Some(r) = r else { return Vec::new() };
        let now = now_unix();
        let reload_errors = r.stats().list_reload_errors;
        r.lists()
            .into_iter()
            .map(|(name, path, role, rules, rejected, mtime)| {
                let f = self.fetches.iter().find(|f| f.path == path);
                let st = f.and_then(|_| crate::fetch::read_status(&path));
                let loaded_age = mtime.map(|m| {
                    std::time::SystemTime::now()
                        .duration_since(m)
                        .map_or(0, |d| d.as_secs())
                });
                let age = match (f, &st) {
                    (Some(_), Some(s)) => s.age(now).or(loaded_age),
                    _ => loaded_age,
                };
                let mut last_error = st.and_then(|s| s.error);
                // the file on disk is not the one loaded: its reload failed (the log says why)
                let now_mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                if last_error.is_none() && reload_errors > 0 && now_mtime != mtime {
                    last_error = Some(
                        "the file changed but did not load; the previous copy is in force (see the log)"
                            .into(),
                    );
                }
                dnsight_pipeline::FeedStatus {
                    kind: match role {
                        dnsight_resolver::ListRole::Block => "blocklist",
                        dnsight_resolver::ListRole::Allow => "allowlist",
                    }
                    .into(),
                    name,
                    url: f.map(|f| f.url.clone()),
                    path: path.display().to_string(),
                    entries: rules as u64,
                    rejected,
                    age_secs: age,
                    last_error,
                    stale: f.is_some_and(|f| age.is_none_or(|a| a > f.max_age.as_secs())),
                    category: None,
                    severity: None,
                }
            })
            .collect()
    }
}

impl IntelSource for IntelFilesSource {
    fn changed(&mut self) -> bool {
        !self.files.intel.is_empty() && self.files.intel.changed()
    }
    fn load(&mut self) -> Result<Arc<dnsight_engine::IntelSet>, String> {
        let set = Arc::new(self.files.intel.load().map_err(|e| format!("{e:#}"))?);
        self.loaded = set.clone();
        Ok(set)
    }
    fn geo(&mut self) -> Option<Result<Arc<dnsight_engine::Geo>, String>> {
        if self.files.geo.is_empty() || !self.files.geo.changed() {
            return None;
        }
        self.files.geo.load().map(|g| g.map(Arc::new)).transpose()
    }
    fn status(&mut self) -> Vec<dnsight_pipeline::FeedStatus> {
        let mut v = self.lists.as_ref().map(|l| l.status()).unwrap_or_default();
        v.extend(feed_status(&self.files, &self.loaded));
        v
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every feed and database of `files` with its freshness: entries from `loaded`, download
/// state from the status files next to the copies.
pub fn feed_status(
    files: &crate::config::engine::EnrichFiles,
    loaded: &dnsight_engine::IntelSet,
) -> Vec<dnsight_pipeline::FeedStatus> {
    use crate::fetch::read_status;
    let now = now_unix();
    let mtime_age = |p: &Path| {
        let m = std::fs::metadata(p).ok()?.modified().ok()?;
        Some(
            std::time::SystemTime::now()
                .duration_since(m)
                .map_or(0, |d| d.as_secs()),
        )
    };
    let mut out = Vec::new();
    let fetches = files.intel.fetches();
    for (i, x) in files.intel.feeds.iter().enumerate() {
        let f = fetches.iter().find(|f| f.path == x.path);
        let st = f.and_then(|_| read_status(&x.path));
        let age = match f {
            Some(_) => st.as_ref().and_then(|s| s.age(now)),
            None => mtime_age(&x.path),
        };
        let max_age = f.map(|f| f.max_age).or(x.max_age);
        let lf = loaded.feeds().get(i).filter(|l| l.name == x.name.as_str());
        out.push(dnsight_pipeline::FeedStatus {
            kind: "intel".into(),
            name: x.name.clone(),
            url: x.url.clone(),
            path: x.path.display().to_string(),
            entries: lf.map_or(0, |l| (l.domains + l.networks) as u64),
            rejected: lf.map_or(0, |l| l.rejected as u64),
            age_secs: age,
            last_error: st.and_then(|s| s.error),
            stale: max_age.is_some_and(|m| age.is_none_or(|a| a > m.as_secs())),
            category: x.spec.category.as_ref().map(|c| c.to_string()),
            severity: x.spec.severity.map(|s| s.as_str().to_string()),
        });
    }
    for p in &files.geo.files {
        out.push(dnsight_pipeline::FeedStatus {
            kind: "geoip".into(),
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: p.display().to_string(),
            age_secs: mtime_age(p),
            ..Default::default()
        });
    }
    for f in &files.geo.fetches {
        let st = read_status(&f.path);
        let age = st.as_ref().and_then(|s| s.age(now));
        out.push(dnsight_pipeline::FeedStatus {
            kind: "geoip".into(),
            name: f.name.clone(),
            url: Some(f.url.clone()),
            path: f.path.display().to_string(),
            age_secs: age,
            last_error: st.and_then(|s| s.error),
            stale: age.is_none_or(|a| a > f.max_age.as_secs()),
            ..Default::default()
        });
    }
    out
}

/// Opens the engine (persistent when `state` is given) and the triage store in `triage_dir`.
pub fn open_engine(
    cfg: dnsight_engine::EngineConfig,
    state: Option<&Path>,
) -> anyhow::Result<Engine> {
    Ok(match state {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating state directory {}", dir.display()))?;
            Engine::open(cfg, dir).with_context(|| format!("opening state in {}", dir.display()))?
        }
        None => Engine::new(cfg),
    })
}

/// File in the state directory naming the PostgreSQL triage store (`[store] url`), written by
/// `serve` and `analyze` so every command given the same `--state` opens the same store.
pub const STORE_POINTER: &str = "store.url";

/// Records where the triage store of `dir` lives: a PostgreSQL URL (mode 0600: it may hold a
/// password), or None for the embedded SQLite file (the pointer is removed).
pub fn set_store_pointer(dir: &Path, url: Option<&str>) -> anyhow::Result<()> {
    let p = dir.join(STORE_POINTER);
    match url {
        Some(u) => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let tmp = dir.join(format!("{STORE_POINTER}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("writing {}", tmp.display()))?;
            f.write_all(u.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
        }
        None => match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        },
    }
    Ok(())
}

/// The PostgreSQL URL recorded in `dir`, if any.
pub fn store_pointer(dir: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(dir.join(STORE_POINTER)) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.join(STORE_POINTER).display())),
    }
}

/// Opens the triage store of the state directory `dir`: the PostgreSQL store its pointer names
/// (the query log answered from the local file), else the embedded SQLite file.
pub fn open_state_store(dir: &Path) -> anyhow::Result<Box<dyn TriageStore>> {
    let local = || {
        SqliteStore::open(dir).with_context(|| {
            format!(
                "opening the triage store {}",
                dir.join(dnsight_triage::TRIAGE_FILE).display()
            )
        })
    };
    Ok(match store_pointer(dir)? {
        Some(url) => {
            let pg = dnsight_pgstore::PgStore::open(&url).with_context(|| {
                format!(
                    "opening the PostgreSQL triage store {} (named in {})",
                    dnsight_pgstore::describe(&url),
                    dir.join(STORE_POINTER).display()
                )
            })?;
            Box::new(pg.with_querylog(local()?))
        }
        None => Box::new(local()?),
    })
}

/// Opens the triage store for `serve`/`analyze`: `url` is `[store] url` (None: the embedded
/// SQLite file in `dir`), recorded for the other commands.
pub fn open_store(dir: &Path, url: Option<&str>) -> anyhow::Result<Box<dyn TriageStore>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))?;
    set_store_pointer(dir, url)?;
    let s = open_state_store(dir)?;
    if let Some(u) = url {
        tracing::info!(store = %dnsight_pgstore::describe(u), "triage store on PostgreSQL ([store] in the config)");
    }
    Ok(s)
}

/// Opens `--alerts-out` (`-` = stdout), appending.
pub fn open_alerts_out(p: &Path) -> anyhow::Result<Box<dyn std::io::Write + Send>> {
    if p.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdout()));
    }
    Ok(Box::new(std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("opening --alerts-out {}", p.display()))?,
    )))
}

pub fn build_pipeline(
    engine: Engine,
    store: Option<Box<dyn TriageStore>>,
    out: Outputs,
    cfg: PipelineConfig,
) -> anyhow::Result<Pipeline> {
    Pipeline::new(engine, store, out, cfg)
        .context("bringing the engine up to date with the triage store")
}

/// The resolver's overrides fed from the pipeline's blocks. The pipeline is built before the
/// resolver (the resolver's events go to it), so the first rules wait here until
/// [`OverrideSlot::attach`].
#[derive(Clone, Default)]
pub struct OverrideSlot(Arc<Mutex<SlotInner>>);

#[derive(Default)]
struct SlotInner {
    resolver: Option<Weak<dnsight_resolver::Resolver>>,
    pending: Option<Vec<dnsight_resolver::Override>>,
}

pub fn to_override(b: &BlockRule) -> dnsight_resolver::Override {
    dnsight_resolver::Override {
        id: b.id,
        name: b.name.clone(),
        subdomains: b.subdomains,
        allow: b.allow,
        scope: match &b.scope {
            dnsight_engine::Scope::All => dnsight_resolver::OverrideScope::All,
            dnsight_engine::Scope::Group(g) => dnsight_resolver::OverrideScope::Group(g.clone()),
            dnsight_engine::Scope::Device(ip) => dnsight_resolver::OverrideScope::Device(*ip),
        },
    }
}

impl OverrideSlot {
    /// The pipeline's `on_blocks` output.
    pub fn sink(&self) -> dnsight_pipeline::OnBlocks {
        let me = self.clone();
        Box::new(move |rules: &[BlockRule]| {
            let rules: Vec<_> = rules.iter().map(to_override).collect();
            let mut g = me.0.lock().unwrap_or_else(|e| e.into_inner());
            match g.resolver.as_ref().and_then(Weak::upgrade) {
                Some(r) => {
                    r.set_overrides(&rules);
                    tracing::info!(rules = rules.len(), "resolver blocks and allows updated");
                }
                None => g.pending = Some(rules),
            }
        })
    }
    /// The resolver is up: the rules so far apply from now on.
    pub fn attach(&self, r: &Arc<dnsight_resolver::Resolver>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = g.pending.take() {
            r.set_overrides(&p);
        }
        g.resolver = Some(Arc::downgrade(r));
    }
}

/// Events per batch a [`BatchSink`] hands on.
const SINK_BATCH: usize = 512;

/// The resolver's events, batched ([`SINK_BATCH`] at a time, and on every flush) and handed to
/// `deliver`: the pipeline's queue ([`BatchSink::producer`]: blocking when it is behind; the
/// resolver's own bounded queue then drops and counts, its answer path never waits) or the bus
/// ([`BatchSink::bus`]: its lock taken once per batch).
pub struct BatchSink<F: FnMut(Vec<dnsight_model::DnsEvent>) + Send> {
    deliver: F,
    batch: Vec<dnsight_model::DnsEvent>,
}

impl BatchSink<Box<dyn FnMut(Vec<dnsight_model::DnsEvent>) + Send>> {
    /// Into the pipeline.
    pub fn producer(producer: Producer) -> Self {
        BatchSink::new(Box::new(move |b| {
            let _ = producer.send(b);
        }))
    }
    /// Onto the bus.
    pub fn bus(bus: SharedBus) -> Self {
        BatchSink::new(Box::new(move |b: Vec<dnsight_model::DnsEvent>| {
            bus.publish(&b)
        }))
    }
}

impl<F: FnMut(Vec<dnsight_model::DnsEvent>) + Send> BatchSink<F> {
    pub fn new(deliver: F) -> Self {
        BatchSink {
            deliver,
            batch: Vec::with_capacity(SINK_BATCH),
        }
    }
    fn send(&mut self) {
        if !self.batch.is_empty() {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(SINK_BATCH));
            (self.deliver)(b);
        }
    }
}

impl<F: FnMut(Vec<dnsight_model::DnsEvent>) + Send> dnsight_resolver::EventSink for BatchSink<F> {
    fn event(&mut self, ev: &dnsight_model::DnsEvent) {
        self.batch.push(ev.clone());
        if self.batch.len() >= SINK_BATCH {
            self.send();
        }
    }
    fn flush(&mut self) {
        self.send();
    }
    fn close(&mut self) {
        self.send();
    }
}

/// The resolver's event sink into the query log (never blocks: a full log queue drops and
/// counts). Identical transactions of a client within a second are counted here, on the
/// event thread, and queued as one row ([`dnsight_triage::querylog::SinkCoalescer`]).
pub struct QueryLogSink(pub dnsight_triage::querylog::SinkCoalescer);

impl dnsight_resolver::EventSink for QueryLogSink {
    fn event(&mut self, ev: &dnsight_model::DnsEvent) {
        self.0.event(ev);
    }
    fn flush(&mut self) {
        self.0.flush();
    }
    fn close(&mut self) {
        self.0.close();
    }
}

/// Counts every event for `/metrics` (by source, transport, rcode; upstream latency) on the
/// resolver's event thread.
pub struct MetricsSink(pub dnsight_api::EventMetrics);

impl dnsight_resolver::EventSink for MetricsSink {
    fn event(&mut self, ev: &dnsight_model::DnsEvent) {
        self.0.observe(ev);
    }
}

/// Counts the resolver's events on its ingestion-health meter (in 256s and at every flush:
/// one atomic add per few hundred events on the event thread).
pub struct SourceSink {
    pub meter: dnsight_pipeline::SourceMeter,
    pending: u64,
}

impl SourceSink {
    pub fn new(meter: dnsight_pipeline::SourceMeter) -> Self {
        SourceSink { meter, pending: 0 }
    }
}

impl dnsight_resolver::EventSink for SourceSink {
    fn event(&mut self, _: &dnsight_model::DnsEvent) {
        self.pending += 1;
        if self.pending >= 256 {
            self.flush();
        }
    }
    fn flush(&mut self) {
        self.meter.events(std::mem::take(&mut self.pending));
    }
    fn close(&mut self) {
        self.flush();
        self.meter.down(None);
    }
}

/// The resolver's own counts on its meter: events its bounded queue dropped, malformed
/// messages (`None` once the resolver is gone).
pub fn probe_resolver(meter: &dnsight_pipeline::SourceMeter, r: &Arc<dnsight_resolver::Resolver>) {
    let weak = Arc::downgrade(r);
    meter.set_probe(Box::new(move || {
        weak.upgrade().map(|r| {
            let s = r.stats();
            (s.events_dropped, s.garbage)
        })
    }));
}

/// Creates (truncates) `--alerts-out` for an offline run (`-` = stdout).
pub fn open_alerts_out_truncate(p: &Path) -> anyhow::Result<Box<dyn std::io::Write + Send>> {
    if p.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdout()));
    }
    Ok(Box::new(std::io::BufWriter::new(
        std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
    )))
}

/// A bus publisher shared by the resolver's event sink and the passive sources, with a ticker
/// that sends partial batches when they waited `[bus] max_delay_ms`.
#[derive(Clone)]
pub struct SharedBus {
    p: Arc<Mutex<Option<dnsight_bus::Publisher>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    stats: Arc<dnsight_bus::BusStats>,
}

impl SharedBus {
    pub fn start(
        cfg: dnsight_bus::BusConfig,
    ) -> anyhow::Result<(SharedBus, std::thread::JoinHandle<()>)> {
        let tick = (cfg.max_delay / 2).max(std::time::Duration::from_millis(5));
        tracing::info!(url = %cfg.url, stream = %cfg.stream, partitions = cfg.partitions, spool = %cfg.spool_dir.display(), "publishing events to NATS JetStream ([bus] in the config)");
        let p = dnsight_bus::Publisher::start(cfg).context("starting the bus publisher")?;
        let b = SharedBus {
            stats: p.stats(),
            p: Arc::new(Mutex::new(Some(p))),
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let me = b.clone();
        let t = std::thread::Builder::new()
            .name("dnsight-bus-tick".into())
            .spawn(move || {
                while !me.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    let mut g = me.p.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(p) = g.as_mut() {
                        p.flush_due(std::time::Instant::now());
                    }
                }
            })?;
        Ok((b, t))
    }

    pub fn publish(&self, events: &[dnsight_model::DnsEvent]) {
        let mut g = self.p.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = g.as_mut() {
            p.publish(events);
        }
    }

    pub fn stats(&self) -> dnsight_bus::BusSnapshot {
        self.stats.snapshot()
    }

    /// Sends what is buffered and waits up to `wait` for NATS to have it (the rest stays in
    /// the spool for the next start).
    pub fn close(
        &self,
        ticker: std::thread::JoinHandle<()>,
        wait: std::time::Duration,
    ) -> dnsight_bus::BusSnapshot {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = ticker.join();
        let p = self.p.lock().unwrap_or_else(|e| e.into_inner()).take();
        match p {
            Some(p) => p.close(wait),
            None => self.stats(),
        }
    }
}
