//! `dnsight serve`: the protective resolver, with every query turned into an event for the
//! analysis; and `dnsight check-config FILE`.
//!
//! Settings come from `--config` (see examples/serve.toml) with the common ones also as flags
//! for a quick start. The process runs until SIGTERM/SIGINT (graceful: listeners stop, queued
//! events are drained into the sinks, state is saved, a stats line is logged); SIGHUP and
//! changed list files reload the block/allow lists without dropping a query.

use crate::config::resolver::{self as rcfg, ServeOverrides};
use anyhow::Context;
use dnsight_resolver::{EventSink, JsonlSink, Resolver, Tee};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Detection settings (`--config` is shared: its resolver sections are read here too,
    /// see examples/serve.toml; `--state DIR` persists baselines and alerts).
    #[command(flatten)]
    pub engine: crate::config::engine::EngineFlags,
    /// Do not run the detection engine (resolver and event log only).
    #[arg(long)]
    pub no_analysis: bool,
    /// UDP+TCP listen address (repeatable). Default 127.0.0.1:5353; port 53 needs
    /// CAP_NET_BIND_SERVICE.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<String>,
    /// Upstream resolver, `ADDR[:PORT]` or `tcp://ADDR[:PORT]` (repeatable; tried in order).
    #[arg(long, value_name = "ADDR:PORT")]
    pub upstream: Vec<String>,
    /// Block list file: hosts, plain domains, wildcards, adblock or RPZ (repeatable).
    #[arg(long, value_name = "FILE")]
    pub blocklist: Vec<PathBuf>,
    /// Address of the HTTP API (default 127.0.0.1:8053 when --state is given; `off` turns it
    /// off). See [api] in the config for TLS and the RPZ zone.
    #[arg(long, value_name = "ADDR:PORT")]
    pub api: Option<String>,
    /// Old name of --api.
    #[arg(long, value_name = "ADDR:PORT", hide = true)]
    pub ui: Option<String>,
    /// Write every query as a JSON-lines event to this file (`-` = stdout).
    #[arg(long, value_name = "FILE")]
    pub events_out: Option<PathBuf>,
}

pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn open_events_out(p: &Path) -> anyhow::Result<Box<dyn EventSink>> {
    if p.as_os_str() == "-" {
        return Ok(Box::new(JsonlSink(std::io::BufWriter::new(
            std::io::stdout(),
        ))));
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .with_context(|| format!("opening --events-out {}", p.display()))?;
    Ok(Box::new(JsonlSink(std::io::BufWriter::with_capacity(
        1 << 16,
        f,
    ))))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    init_logging();
    let o = ServeOverrides {
        listen: args.listen.clone(),
        upstreams: args.upstream.clone(),
        blocklists: args.blocklist.clone(),
        inventory: args.engine.inventory.clone(),
    };
    let settings = rcfg::load(args.engine.config.as_deref(), &o)?;
    if settings.resolver.listen.is_empty() && settings.sources.is_empty() {
        anyhow::bail!("nothing to do: `listen = []` and no [[source]] configured; add a [[source]] (dnstap, zeek, jsonl or capture) or remove `listen = []` to serve DNS on 127.0.0.1:5353");
    }
    if settings.resolver.upstreams.is_empty() && !settings.resolver.listen.is_empty() {
        anyhow::bail!("no upstream resolver: pass --upstream ADDR:PORT (e.g. --upstream 9.9.9.9) or set upstreams = [...] in [resolver]");
    }
    if let Some(dir) = &args.engine.state {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --state directory {}", dir.display()))?;
    }
    let api_flag = args.api.as_deref().or(args.ui.as_deref());
    let api = crate::config::api::load(
        args.engine.config.as_deref(),
        api_flag,
        args.engine.state.is_some() && !args.no_analysis,
    )?;
    if api.listen.is_some() && (args.engine.state.is_none() || args.no_analysis) {
        anyhow::bail!("the API needs the analysis and a state directory (tokens, alerts and blocks live there): add --state DIR, or turn the API off with --api off");
    }

    let targets = crate::config::notify::load(args.engine.config.as_deref())?;
    if !targets.is_empty() && (args.engine.state.is_none() || args.no_analysis) {
        anyhow::bail!("[[notify]] needs the analysis and a state directory (the notification outbox lives in its triage store): add --state DIR");
    }
    let mut notifier = None;
    let store_url = crate::config::store::load(args.engine.config.as_deref())?;

    // the query log: every transaction, searchable (`dnsight queries`, GET /api/v1/queries)
    let qlog = match (
        &args.engine.state,
        crate::config::querylog::load(args.engine.config.as_deref())?,
    ) {
        (Some(dir), Some(c)) => {
            let (log, writer) = dnsight_triage::QueryLog::spawn(dir, &c)
                .map_err(|e| anyhow::anyhow!("opening the query log: {e}"))?;
            tracing::info!(
                retention_days = ?c.retention_days,
                max_size_mb = ?c.max_bytes.map(|b| b >> 20),
                pseudonymise = c.pseudonymise,
                "query log on ([querylog] in the config)"
            );
            Some((log, writer))
        }
        _ => None,
    };

    // the pipeline: the engine as one actor, fed by the resolver and the passive sources
    let slot = crate::wiring::OverrideSlot::default();
    let lists = crate::wiring::ListsStatus::new(settings.fetches.clone());
    let mut enrich_fetches = Vec::new();
    let running = if args.no_analysis {
        None
    } else {
        // feeds and databases from URLs: the missing copies are downloaded before loading
        let (cfg, state, files) = crate::config::engine::build_with_files(&args.engine, true)?;
        enrich_fetches = files.fetches.clone();
        for f in files.geo.missing() {
            tracing::warn!(url = %f.url, "GeoIP database not downloaded yet (new_country and new_asn start when it arrives; `dnsight geoip update` fetches it now)");
        }
        let loaded = cfg.intel.clone();
        let engine = crate::wiring::open_engine(cfg, state.as_deref())?;
        for n in engine.notices() {
            tracing::info!("{n}");
        }
        let mut store = match &state {
            Some(d) => Some(crate::wiring::open_store(d, store_url.as_deref())?),
            None => None,
        };
        if let (Some(st), Some(dir)) = (store.as_mut(), &state) {
            if !targets.is_empty() {
                st.set_router(Some(std::sync::Arc::new(dnsight_notify::Routes::new(
                    &targets,
                ))));
                notifier = Some(
                    dnsight_notify::Notifier::spawn_with(&targets, || {
                        crate::wiring::open_state_store(dir).map_err(|e| format!("{e:#}"))
                    })
                    .map_err(|e| anyhow::anyhow!("starting notifications: {e}"))?,
                );
                for t in &targets {
                    tracing::info!(target = %t.name, kind = t.type_name(), to = %t.describe(), "notification target ready");
                }
            }
        }
        let out = dnsight_pipeline::Outputs {
            alert_lines: match &args.engine.alerts_out {
                Some(p) => Some(crate::wiring::open_alerts_out(p)?),
                None => None,
            },
            log_alerts: true,
            on_alert: None,
            on_blocks: Some(slot.sink()),
            rpz_file: api.rpz_file.clone().map(|p| (p, api.rpz_zone.clone())),
            intel: Some(Box::new(
                crate::wiring::IntelFilesSource::new(files, loaded).with_lists(lists.clone()),
            )),
        };
        let p = crate::wiring::build_pipeline(
            engine,
            store,
            out,
            dnsight_pipeline::PipelineConfig {
                persistent: state.is_some(),
                // alerts reach the store (and so the API and notifications) within ~¼ s
                tick: std::time::Duration::from_millis(250),
                // a PostgreSQL store is shared with other processes (a second resolver,
                // workers): what they commit reaches this engine and resolver within 2 s
                store_sync: store_url
                    .is_some()
                    .then_some(dnsight_pipeline::STORE_SYNC_DEFAULT),
                ..Default::default()
            },
        )?;
        Some(dnsight_pipeline::spawn(p).context("starting the analysis pipeline")?)
    };

    // [bus]: every event (the resolver's and the passive sources') to NATS JetStream too
    let bus = match crate::config::bus::load(
        args.engine.config.as_deref(),
        args.engine.state.as_deref(),
    )? {
        Some(c) => Some(crate::wiring::SharedBus::start(c)?),
        None => None,
    };
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if let Some((b, _)) = &bus {
        sinks.push(Box::new(crate::wiring::BatchSink::bus(b.clone())));
    }
    if let Some(p) = &args.events_out {
        sinks.push(open_events_out(p)?);
    }
    // ingestion health per source (the overview, stats, /metrics)
    let meters = running.as_ref().map(|r| r.producer().sources());
    let resolver_meter = meters
        .as_ref()
        .filter(|_| !settings.resolver.listen.is_empty())
        .map(|m| m.register("resolver", "resolver"));
    if let Some(m) = &resolver_meter {
        sinks.push(Box::new(crate::wiring::SourceSink::new(m.clone())));
    }
    if let Some(r) = &running {
        sinks.push(Box::new(crate::wiring::BatchSink::producer(r.producer())));
    }
    if let Some((q, _)) = &qlog {
        sinks.push(Box::new(crate::wiring::QueryLogSink(q.coalescing())));
    }
    let event_metrics = dnsight_api::EventMetrics::default();
    sinks.push(Box::new(crate::wiring::MetricsSink(event_metrics.clone())));
    let sink: Box<dyn EventSink> = Box::new(Tee(sinks));
    let t0 = Instant::now();
    let poll = settings.resolver.list_poll_interval;
    crate::fetch::prepare(&settings.fetches);
    let r = std::sync::Arc::new(
        Resolver::start(settings.resolver.clone(), sink).context("starting the resolver")?,
    );
    slot.attach(&r);
    lists.attach(&r);
    if let Some(m) = &resolver_meter {
        crate::wiring::probe_resolver(m, &r);
    }
    let (rules, mem) = r.policy_size();
    tracing::info!(
        udp = ?r.udp_addrs(),
        tcp = ?r.tcp_addrs(),
        upstreams = ?settings.resolver.upstreams.iter().map(|u| u.addr).collect::<Vec<_>>(),
        forward_zones = settings.resolver.forwards.iter().map(|f| f.zones.len()).sum::<usize>(),
        list_rules = rules,
        list_bytes = mem,
        startup_ms = t0.elapsed().as_millis() as u64,
        "dnsight serve: resolver ready"
    );
    let api_server = match (&api.listen, &running, &args.engine.state) {
        (Some(listen), Some(run), Some(state)) => {
            let s = dnsight_api::start_with_store_mounted(
                dnsight_api::ApiConfig {
                    listen: *listen,
                    tls: api.tls.clone(),
                    rpz_clients: api.rpz_clients.clone(),
                    metrics_public: api.metrics_public,
                    rpz_zone: api.rpz_zone.clone(),
                    intake: Some(dnsight_api::Intake(run.producer())),
                    live: {
                        let weak = std::sync::Arc::downgrade(&r);
                        dnsight_api::Live {
                            querylog: qlog.as_ref().map(|(q, _)| q.clone()),
                            resolver: Some(std::sync::Arc::new(move || {
                                weak.upgrade()
                                    .map(|r| r.stats().fields())
                                    .unwrap_or_default()
                            })),
                            events: Some(event_metrics.clone()),
                        }
                    },
                },
                run.handle(),
                crate::wiring::open_state_store(state)?,
                Some(dnsight_web::mount_with(
                    Some(state.to_path_buf()),
                    targets.clone(),
                )),
            )
            .with_context(|| format!("starting the API on {listen}"))?;
            let scheme = if api.tls.is_some() { "https" } else { "http" };
            tracing::info!(
                "dnsight serve: API on {scheme}://{} (a token: dnsight token create --role analyst --name NAME --state {})",
                s.addr(),
                state.display()
            );
            super::user::announce_dashboard(&s.url(), state);
            Some(s)
        }
        _ => {
            if args.engine.state.is_none() && !args.no_analysis {
                tracing::info!("the API and alert actions are off: they need --state DIR (tokens, alerts and blocks live there)");
            }
            None
        }
    };
    let feed: Feed = match &running {
        Some(run) => {
            // passive sources go straight to the pipeline: log them on the way
            let p = run.producer();
            let q = qlog.as_ref().map(|(q, _)| q.clone());
            let m = event_metrics.clone();
            std::sync::Arc::new(move |b| {
                for e in &b {
                    m.observe(e);
                    if let Some(q) = &q {
                        q.log(e);
                    }
                }
                p.send(b)
            })
        }
        None => {
            let inj = r.injector();
            std::sync::Arc::new(move |b| inj.send(b))
        }
    };
    let feed: Feed = match &bus {
        Some((b, _)) => {
            let b = b.clone();
            std::sync::Arc::new(move |batch| {
                b.publish(&batch);
                feed(batch)
            })
        }
        None => feed,
    };
    let sources = start_sources(&settings.sources, &feed, meters.as_ref())?;
    // one refresher for block lists, intel feeds and GeoIP databases
    let mut fetches = settings.fetches.clone();
    fetches.extend(enrich_fetches);
    let refresher = crate::fetch::spawn_refresher(fetches);
    r.run_until_signal(poll, settings.stats_interval)
        .context("waiting for signals")?;
    if let Some((stop, t)) = refresher {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = t.join();
    }
    if let Some(s) = api_server {
        s.shutdown();
    }
    // passive sources first: they hold handles to the event queue
    for (stop, t) in sources {
        stop();
        let _ = t.join();
    }
    drop(feed);
    let r = match std::sync::Arc::try_unwrap(r) {
        Ok(r) => r,
        Err(_) => anyhow::bail!("internal: the resolver is still referenced at shutdown"),
    };
    for u in r.upstream_stats() {
        tracing::info!(upstream = %u.addr, proto = u.proto, healthy = u.healthy, asked = u.asked, answered = u.answered, failed = u.failed, chosen = u.chosen, latency_us = u.latency_us, "upstream stats");
    }
    let stats = r.shutdown();
    if let Some((b, ticker)) = bus {
        let s = b.close(ticker, std::time::Duration::from_secs(10));
        tracing::info!(stats = ?s, "bus publisher closed");
    }
    if let Some((_, w)) = qlog {
        let s = w.close();
        tracing::info!(
            written = s.written,
            rows = s.rows_written,
            dropped = s.dropped,
            deleted = s.deleted,
            "query log closed"
        );
    }
    // the resolver has handed its last events to the pipeline: final alerts, save
    if let Some(run) = running {
        let mut p = run.stop();
        tracing::info!(stats = ?p.stats().engine, "engine stopped");
    }
    // after the pipeline's final writes: what they queued is delivered now or at the next start
    if let Some(n) = notifier {
        std::thread::sleep(dnsight_notify::POLL);
        n.stop();
    }
    tracing::info!(stats = %stats, "dnsight serve: stopped");
    eprintln!("dnsight serve: {stats}");
    Ok(())
}

/// Where passive sources send their batches (the pipeline, or the resolver's event log when
/// the analysis is off); false once it has stopped.
pub(crate) type Feed = std::sync::Arc<dyn Fn(Vec<dnsight_model::DnsEvent>) -> bool + Send + Sync>;

/// A running passive source: how to stop it, and its thread.
pub(crate) type SourceHandle = (Box<dyn Fn() + Send>, std::thread::JoinHandle<()>);

/// A passive source just opened: its reader, how to stop it, its name and kind.
type Started = (
    Box<dyn dnsight_ingest::EventReader>,
    Box<dyn Fn() + Send>,
    String,
    String,
);

/// Starts the configured passive sources; their events join the resolver's own on the way to
/// the engine. Every source is an `EventReader` pulled on its own thread; the thread ends when
/// the reader ends or the stop flag is set (readers return at least every second or so).
pub(crate) fn start_sources(
    cfg: &[rcfg::SourceConfig],
    feed: &Feed,
    meters: Option<&dnsight_pipeline::Sources>,
) -> anyhow::Result<Vec<SourceHandle>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut out: Vec<SourceHandle> = Vec::new();
    for s in cfg {
        let opts = dnsight_ingest::dnstap::ListenOptions::default();
        let stopped = Arc::new(AtomicBool::new(false));
        let (reader, stop, label, kind): Started = match s {
            rcfg::SourceConfig::DnstapUnix(p) => {
                // a stale socket file from a previous run would make bind fail
                if std::fs::symlink_metadata(p)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(p);
                }
                let l = dnsight_ingest::dnstap::listen_unix(p, &opts)
                    .with_context(|| format!("dnstap source on {}", p.display()))?;
                let h = l.shutdown_handle();
                (
                    Box::new(l),
                    Box::new(move || h.shutdown()),
                    format!("dnstap unix:{}", p.display()),
                    "dnstap".into(),
                )
            }
            rcfg::SourceConfig::DnstapTcp(a) => {
                let l = dnsight_ingest::dnstap::listen_tcp(a, &opts)
                    .with_context(|| format!("dnstap source on {a}"))?;
                let h = l.shutdown_handle();
                (
                    Box::new(l),
                    Box::new(move || h.shutdown()),
                    format!("dnstap tcp:{a}"),
                    "dnstap".into(),
                )
            }
            rcfg::SourceConfig::Tail {
                kind,
                path,
                format,
                log_tz,
            } => {
                let mut io = dnsight_ingest::IngestOptions {
                    format: *format,
                    ..Default::default()
                };
                if let Some(tz) = log_tz {
                    io.log_tz = rcfg::parse_log_tz(tz)?;
                }
                let (reader, h) = dnsight_ingest::follow::follow_path_deferred(
                    path,
                    &dnsight_ingest::follow::FollowOptions::default(),
                    &io,
                )
                .with_context(|| format!("following {kind} file {}", path.display()))?;
                (
                    reader,
                    Box::new(move || h.stop()),
                    format!("{kind} {}", path.display()),
                    kind.to_string(),
                )
            }
            rcfg::SourceConfig::Syslog {
                tcp,
                addr,
                allow,
                log_tz,
                tls,
            } => {
                let mut so = dnsight_ingest::syslog::SyslogOptions {
                    allow: allow.clone(),
                    ..Default::default()
                };
                if let Some(tz) = log_tz {
                    so.ingest.log_tz = rcfg::parse_log_tz(tz)?;
                }
                let a = addr.to_string();
                let l = match tls {
                    Some((cert, key)) => dnsight_ingest::syslog::tls_config(cert, key)
                        .and_then(|c| dnsight_ingest::syslog::listen_tls(&a, &so, c)),
                    None if *tcp => dnsight_ingest::syslog::listen_tcp(&a, &so),
                    None => dnsight_ingest::syslog::listen_udp(&a, &so),
                }
                .with_context(|| format!("syslog source on {a}"))?;
                let h = l.shutdown_handle();
                let proto = match (tls.is_some(), *tcp) {
                    (true, _) => "tls",
                    (false, true) => "tcp",
                    (false, false) => "udp",
                };
                (
                    Box::new(l),
                    Box::new(move || h.shutdown()),
                    format!("syslog {proto}:{a}"),
                    "syslog".into(),
                )
            }
            rcfg::SourceConfig::Capture {
                interface,
                dns_ports,
            } => {
                let mut io = dnsight_ingest::IngestOptions::default();
                for p in dns_ports {
                    if !io.dns_ports.contains(p) {
                        io.dns_ports.push(*p);
                    }
                }
                let reader =
                    dnsight_ingest::live::live_reader(interface, &io).with_context(|| {
                        format!("live capture on {interface} (needs root or CAP_NET_RAW)")
                    })?;
                (
                    reader,
                    Box::new(|| {}),
                    format!("capture {interface}"),
                    "capture".into(),
                )
            }
        };
        tracing::info!(source = %label, "passive source started");
        let meter = meters.map(|m| m.register(&label, &kind));
        if let Some(m) = &meter {
            m.up();
        }
        let flag = stopped.clone();
        let send = feed.clone();
        let mut reader = reader;
        let t = std::thread::Builder::new()
            .name("dnsight-source".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(1024);
                while !flag.load(Ordering::Relaxed) {
                    batch.clear();
                    match reader.next_batch(&mut batch) {
                        Ok(more) => {
                            if let Some(m) = &meter {
                                m.events(batch.len() as u64);
                                m.rejected_total(reader.stats().rejected_total());
                            }
                            if !send(std::mem::take(&mut batch)) || !more {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(source = %label, error = %e, "passive source failed");
                            if let Some(m) = &meter {
                                m.down(Some(e.to_string()));
                            }
                            break;
                        }
                    }
                }
                if let Some(m) = meter.filter(|_| !flag.load(Ordering::Relaxed)) {
                    // the reader ended by itself (not by the stop flag); a failure keeps its error
                    if m.is_up() {
                        m.down(Some("ended".into()));
                    }
                }
                tracing::info!(source = %label, stats = ?reader.stats(), "passive source stopped");
            })?;
        out.push((
            Box::new(move || {
                stopped.store(true, Ordering::Relaxed);
                stop();
            }),
            t,
        ));
    }
    Ok(out)
}

#[derive(clap::Args)]
pub struct CheckConfigArgs {
    pub file: std::path::PathBuf,
}

/// Validates every section of a config file, loads the lists it names, and prints a summary.
pub fn check_config(args: CheckConfigArgs) -> anyhow::Result<()> {
    let p = &args.file;
    let b = std::fs::read(p).with_context(|| format!("cannot read config file {}", p.display()))?;
    let text = String::from_utf8_lossy(&b);
    rcfg::check_top_level(&text, p, crate::config::ALL_SECTIONS)?;
    crate::config::api::load(Some(p), None, false)?;
    let targets = crate::config::notify::load(Some(p))?;
    crate::config::querylog::load(Some(p))?;
    let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
    let s = rcfg::validate(
        rcfg::parse_sections(&text, p)?,
        p,
        &base,
        &ServeOverrides::default(),
    )?;
    let mut s = s;
    // lists fetched from a URL whose local copy does not exist yet are downloaded at start
    for f in &s.fetches {
        if !f.path.exists() {
            println!(
                "  list {:?}: no local copy yet; `serve` downloads it from {} at start",
                f.name, f.url
            );
            s.resolver.policy.lists.retain(|l| l.path != f.path);
        }
    }
    let t0 = Instant::now();
    let policy = s
        .resolver
        .policy
        .build()
        .map_err(|e| anyhow::anyhow!("{}: [[resolver.blocking.list]]: {e}", p.display()))?;
    let load_ms = t0.elapsed().as_millis();
    let eng = crate::config::engine::parse_sections(&text, p)?;
    let files = crate::config::engine::enrich_files(&eng, p, &base)?;
    for f in files.fetches.iter().filter(|f| !f.path.exists()) {
        println!(
            "  {} {:?}: no local copy yet ({}); `serve` downloads it from {} at start (now: `dnsight {} update --config {}`)",
            f.kind(),
            f.name,
            f.path.display(),
            f.url,
            f.kind(),
            p.display()
        );
    }
    crate::config::engine::validate(eng, p, &base)?;
    println!("{}: ok", p.display());
    println!(
        "  resolver: listen {:?}, {} upstream(s), {} list(s) with {} rules ({} KiB, loaded in {load_ms} ms), {} group(s), {} source(s)",
        s.resolver.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        s.resolver.upstreams.len(),
        policy.lists.len(),
        policy.total_rules(),
        policy.memory() / 1024,
        policy.groups.len(),
        s.sources.len()
    );
    for t in &targets {
        println!(
            "  notify {:?}: {} to {} (min_severity {}; `dnsight notify test {} --config {}` sends a sample)",
            t.name,
            t.type_name(),
            t.describe(),
            t.route.min_severity.as_str(),
            t.name,
            p.display()
        );
    }
    for l in &policy.lists {
        if l.rejected_lines > 0 {
            println!(
                "  warning: list {:?} ({}): {} line(s) not understood and skipped",
                l.name,
                l.path.display(),
                l.rejected_lines
            );
        }
    }
    Ok(())
}
