//! `dnsight worker --config FILE --state DIR [--partitions 0-63]`: reads its partitions of the
//! event stream from NATS JetStream (`[bus]`) into an engine and the triage store (`[store]`:
//! PostgreSQL for a deployment of several processes). Minimal: the partitions are given on the
//! command line (no leases or rebalancing yet), one durable consumer per partition; see
//! `dnsight_bus::consume` for what a crash may lose.

use anyhow::{bail, Context};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Detection settings, `[bus]` (required) and `[store]`; `--state DIR` is required.
    #[command(flatten)]
    pub engine: crate::config::engine::EngineFlags,
    /// The partitions this worker owns, e.g. `0-31` or `0-15,48-63` (default: all).
    #[arg(long, value_name = "LIST")]
    pub partitions: Option<String>,
    /// Names this worker's durable consumers (`NAME-P`); workers sharing a name share progress.
    #[arg(long, default_value = "dnsight-worker")]
    pub durable: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::serve::init_logging();
    let Some(cfg_path) = args.engine.config.clone() else {
        bail!("dnsight worker needs --config FILE with a [bus] section");
    };
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("cannot read config file {}", cfg_path.display()))?;
    crate::config::resolver::check_top_level(&text, &cfg_path, crate::config::ALL_SECTIONS)?;
    let Some(state_dir) = args.engine.state.clone() else {
        bail!("dnsight worker needs --state DIR (baselines, and the triage store unless [store] names one)");
    };
    let Some(bus) = crate::config::bus::load(Some(&cfg_path), Some(&state_dir))? else {
        bail!(
            "{}: dnsight worker needs a [bus] section",
            cfg_path.display()
        );
    };
    let partitions = match &args.partitions {
        Some(s) => dnsight_bus::consume::parse_partitions(s, bus.partitions)
            .map_err(|e| anyhow::anyhow!("--partitions {s}: {e}"))?,
        None => (0..bus.partitions).collect(),
    };
    let (engine_cfg, state) = crate::config::engine::build(&args.engine)?;
    let engine = crate::wiring::open_engine(engine_cfg, state.as_deref())?;
    let store = crate::wiring::open_store(
        &state_dir,
        crate::config::store::load(Some(&cfg_path))?.as_deref(),
    )?;
    let out = dnsight_pipeline::Outputs {
        alert_lines: match &args.engine.alerts_out {
            Some(p) => Some(crate::wiring::open_alerts_out(p)?),
            None => None,
        },
        log_alerts: true,
        on_alert: None,
        on_blocks: None,
        rpz_file: None,
        intel: None,
    };
    let p = crate::wiring::build_pipeline(
        engine,
        Some(store),
        out,
        dnsight_pipeline::PipelineConfig {
            persistent: true,
            tick: std::time::Duration::from_millis(250),
            ..Default::default()
        },
    )?;
    let running = dnsight_pipeline::spawn(p).context("starting the analysis pipeline")?;
    let producer = running.producer();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("dnsight-signals".into())
            .spawn(move || {
                let _ = wait_signal();
                stop.store(true, Ordering::Relaxed);
            })?;
    }
    tracing::info!(
        url = %bus.url,
        stream = %bus.stream,
        partitions = partitions.len(),
        "dnsight worker: reading its partitions from JetStream"
    );
    let stats = Arc::new(dnsight_bus::consume::ConsumeStats::default());
    let cc = dnsight_bus::consume::ConsumerConfig {
        url: bus.url.clone(),
        stream: bus.stream.clone(),
        subject_prefix: bus.subject_prefix.clone(),
        partitions,
        durable: args.durable.clone(),
    };
    let r = dnsight_bus::consume::consume(&cc, stop, stats.clone(), |_, evs| producer.send(evs));
    drop(producer);
    let mut p = running.stop();
    tracing::info!(
        batches = stats.batches.load(Ordering::Relaxed),
        events = stats.events.load(Ordering::Relaxed),
        bad_batches = stats.bad_batches.load(Ordering::Relaxed),
        engine = ?p.stats().engine,
        "dnsight worker: stopped"
    );
    r.map_err(|e| anyhow::anyhow!("reading from JetStream: {e}"))
}

fn wait_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        Ok(())
    })
}
