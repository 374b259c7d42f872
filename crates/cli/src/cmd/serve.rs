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
    /// TOML config file (see examples/serve.toml). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Directory for persisted state (baselines, alerts).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
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
    let settings = rcfg::load(args.config.as_deref(), &o)?;
    if settings.resolver.upstreams.is_empty() {
        anyhow::bail!("no upstream resolver: pass --upstream ADDR:PORT (e.g. --upstream 9.9.9.9) or set upstreams = [...] in [resolver]");
    }
    if let Some(dir) = &args.state {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --state directory {}", dir.display()))?;
    }
    if let Some(ui) = &args.ui {
        tracing::warn!(ui = %ui, "the web UI is not part of this build yet; --ui is ignored");
    }
    if !settings.sources.is_empty() {
        tracing::warn!(
            n = settings.sources.len(),
            "[[source]] entries are validated but not started by this build yet"
        );
    }
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if let Some(p) = &args.events_out {
        sinks.push(open_events_out(p)?);
    }
    let sink: Box<dyn EventSink> = Box::new(Tee(sinks));
    let t0 = Instant::now();
    let poll = settings.resolver.list_poll_interval;
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
    r.run_until_signal(poll, settings.stats_interval)
        .context("waiting for signals")?;
    let stats = r.shutdown();
    tracing::info!(stats = %stats, "dnsight serve: stopped");
    eprintln!("dnsight serve: {stats}");
    Ok(())
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
