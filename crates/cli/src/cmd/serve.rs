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
use std::io::Write;
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
    /// Address for the web UI and API.
    #[arg(long, value_name = "ADDR:PORT")]
    pub ui: Option<String>,
    /// Write every query as a JSON-lines event to this file (`-` = stdout).
    #[arg(long, value_name = "FILE")]
    pub events_out: Option<PathBuf>,
}

fn init_logging() {
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
    if let Some(ui) = &args.ui {
        tracing::warn!(ui = %ui, "the web UI is not part of this build yet; --ui is ignored");
    }
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if let Some(p) = &args.events_out {
        sinks.push(open_events_out(p)?);
    }
    if !args.no_analysis {
        sinks.push(Box::new(EngineSink::open(&args.engine)?));
    }
    let sink: Box<dyn EventSink> = Box::new(Tee(sinks));
    let t0 = Instant::now();
    let poll = settings.resolver.list_poll_interval;
    crate::fetch::prepare(&settings.fetches);
    let r = Resolver::start(settings.resolver.clone(), sink).context("starting the resolver")?;
    let (rules, mem) = r.policy_size();
    tracing::info!(
        udp = ?r.udp_addrs(),
        tcp = ?r.tcp_addrs(),
        upstreams = ?settings.resolver.upstreams.iter().map(|u| u.addr).collect::<Vec<_>>(),
        list_rules = rules,
        list_bytes = mem,
        startup_ms = t0.elapsed().as_millis() as u64,
        "dnsight serve: resolver ready"
    );
    let sources = start_sources(&settings.sources, &r)?;
    let refresher = crate::fetch::spawn_refresher(settings.fetches.clone());
    r.run_until_signal(poll, settings.stats_interval)
        .context("waiting for signals")?;
    if let Some((stop, t)) = refresher {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = t.join();
    }
    // passive sources first: they hold handles to the event queue
    for (stop, t) in sources {
        stop();
        let _ = t.join();
    }
    let stats = r.shutdown();
    tracing::info!(stats = %stats, "dnsight serve: stopped");
    eprintln!("dnsight serve: {stats}");
    Ok(())
}

/// A running passive source: how to stop it, and its thread.
type SourceHandle = (Box<dyn Fn() + Send>, std::thread::JoinHandle<()>);

/// Starts the configured passive sources; their events join the resolver's own on the way to
/// the engine. Every source is an `EventReader` pulled on its own thread; the thread ends when
/// the reader ends or the stop flag is set (readers return at least every second or so).
fn start_sources(cfg: &[rcfg::SourceConfig], r: &Resolver) -> anyhow::Result<Vec<SourceHandle>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut out: Vec<SourceHandle> = Vec::new();
    for s in cfg {
        let opts = dnsight_ingest::dnstap::ListenOptions::default();
        let stopped = Arc::new(AtomicBool::new(false));
        let (reader, stop, label): (
            Box<dyn dnsight_ingest::EventReader>,
            Box<dyn Fn() + Send>,
            String,
        ) = match s {
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
                )
            }
            rcfg::SourceConfig::Tail { kind, path } => {
                let (reader, h) = dnsight_ingest::follow::follow_path_deferred(
                    path,
                    &dnsight_ingest::follow::FollowOptions::default(),
                    &dnsight_ingest::IngestOptions::default(),
                )
                .with_context(|| format!("following {kind} file {}", path.display()))?;
                (
                    reader,
                    Box::new(move || h.stop()),
                    format!("{kind} {}", path.display()),
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
                (reader, Box::new(|| {}), format!("capture {interface}"))
            }
        };
        tracing::info!(source = %label, "passive source started");
        let flag = stopped.clone();
        let inj = r.injector();
        let mut reader = reader;
        let t = std::thread::Builder::new()
            .name("dnsight-source".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(1024);
                while !flag.load(Ordering::Relaxed) {
                    batch.clear();
                    match reader.next_batch(&mut batch) {
                        Ok(more) => {
                            if !inj.send(std::mem::take(&mut batch)) || !more {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(source = %label, error = %e, "passive source failed");
                            break;
                        }
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

/// Feeds the detection engine on the resolver's event thread: observes every event, writes
/// new or changed alerts (JSON lines to `--alerts-out`, a log line each), saves state every
/// minute of wall time and at shutdown.
struct EngineSink {
    engine: dnsight_engine::Engine,
    alerts: Vec<dnsight_engine::Alert>,
    /// What was last written per alert id: (severity, score, count, devices). An update is
    /// written when the alert is new, its severity, score or device count changes, or its count
    /// has doubled; the final state of every changed alert is written at shutdown. Consumers
    /// key on `id`: the last line for an id is its current state.
    written: std::collections::HashMap<String, (dnsight_engine::Severity, u8, u64, u32)>,
    out: Option<Box<dyn std::io::Write + Send>>,
    last_save: Instant,
    persistent: bool,
    /// Intel feed files, checked for changes every [`INTEL_CHECK`] and reloaded when changed.
    intel: crate::config::engine::IntelFiles,
    last_intel_check: Instant,
}

/// How often `serve` checks the intel feed files for changes.
const INTEL_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

impl EngineSink {
    fn open(flags: &crate::config::engine::EngineFlags) -> anyhow::Result<EngineSink> {
        let (cfg, state, intel) = crate::config::engine::build_with_intel(flags)?;
        let engine = match &state {
            Some(dir) => dnsight_engine::Engine::open(cfg, dir)
                .with_context(|| format!("opening state in {}", dir.display()))?,
            None => dnsight_engine::Engine::new(cfg),
        };
        for n in engine.notices() {
            tracing::info!("{n}");
        }
        let out: Option<Box<dyn std::io::Write + Send>> = match &flags.alerts_out {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
            Some(p) => Some(Box::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening --alerts-out {}", p.display()))?,
            ))),
        };
        Ok(EngineSink {
            written: Default::default(),
            engine,
            alerts: Vec::new(),
            out,
            last_save: Instant::now(),
            persistent: state.is_some(),
            intel,
            last_intel_check: Instant::now(),
        })
    }

    fn emit(&mut self) {
        self.engine.drain_updates(&mut self.alerts);
        self.write_alerts(false);
    }

    fn write_alerts(&mut self, final_state: bool) {
        for a in self.alerts.drain(..) {
            let now = (a.severity, a.score, a.count, a.device_count);
            let worth = match self.written.get(&a.id) {
                None => true,
                Some(&(sev, score, count, devs)) => {
                    sev != a.severity
                        || score != a.score
                        || devs != a.device_count
                        || a.count >= count.saturating_mul(2)
                        || (final_state && a.count != count)
                }
            };
            if !worth {
                continue;
            }
            self.written.insert(a.id.clone(), now);
            tracing::warn!(kind = ?a.kind, severity = ?a.severity, device = %a.device, destination = %a.destination, count = a.count, "alert: {}", a.summary);
            if let Some(w) = &mut self.out {
                let _ = serde_json::to_writer(&mut *w, &a);
                let _ = w.write_all(b"\n");
            }
        }
        if let Some(w) = &mut self.out {
            let _ = w.flush();
        }
    }

    /// Reloads the intel feeds when a file changed; on an error the previous feeds stay.
    fn reload_intel(&mut self) {
        if !self.intel.changed() {
            return;
        }
        match self.intel.load() {
            Ok(set) => {
                let feeds: Vec<String> = set
                    .feeds()
                    .iter()
                    .map(|f| {
                        format!(
                            "{} ({} domains, {} networks)",
                            f.name, f.domains, f.networks
                        )
                    })
                    .collect();
                self.engine.set_intel(std::sync::Arc::new(set));
                tracing::info!(feeds = ?feeds, "intel feeds reloaded");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reloading intel feeds failed; the previous feeds stay until the file is fixed (it is re-read when it changes again)")
            }
        }
    }

    fn save(&mut self) {
        if self.persistent {
            if let Err(e) = self.engine.save() {
                tracing::error!(error = %e, "saving engine state failed");
            }
        }
        self.last_save = Instant::now();
    }
}

impl EventSink for EngineSink {
    fn event(&mut self, ev: &dnsight_model::DnsEvent) {
        self.engine.observe(ev);
    }
    fn flush(&mut self) {
        self.emit();
        if self.last_save.elapsed() >= std::time::Duration::from_secs(60) {
            self.save();
        }
        if !self.intel.is_empty() && self.last_intel_check.elapsed() >= INTEL_CHECK {
            self.last_intel_check = Instant::now();
            self.reload_intel();
        }
    }
    fn close(&mut self) {
        self.emit();
        // the final count and last_seen of every alert that changed since it was last written
        self.alerts = self.engine.alerts();
        self.write_alerts(true);
        self.save();
        tracing::info!(stats = ?self.engine.stats(), "engine stopped");
    }
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
    rcfg::check_top_level(&text, p, &[rcfg::SECTIONS, crate::config::engine::SECTIONS])?;
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
