//! `dnsight sensor --config FILE [FILE...]`: a sensor of a scaled-out deployment. Reads the
//! configured passive sources (`[[source]]`: dnstap, followed logs, syslog, capture) — or the
//! files given, once — and publishes every event to NATS JetStream (`[bus]`), with no engine
//! and no state. Runs until SIGTERM/SIGINT (or the end of the files), then sends what is
//! buffered and waits briefly for NATS to have it; what NATS has not taken stays in the spool
//! and goes out at the next start.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The config file: its `[bus]` section (required) and `[[source]]` entries.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Publish these files (pcap, dnstap, Zeek, JSON lines, query logs) once, then stop,
    /// instead of running the configured sources.
    pub files: Vec<PathBuf>,
    /// How long to wait at the end for NATS to acknowledge what is buffered (seconds).
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    super::serve::init_logging();
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("cannot read config file {}", a.config.display()))?;
    crate::config::resolver::check_top_level(&text, &a.config, crate::config::ALL_SECTIONS)?;
    let Some(cfg) = crate::config::bus::load(Some(&a.config), None)? else {
        bail!(
            "{}: dnsight sensor needs a [bus] section (url = \"nats://HOST:4222\", spool_dir = ...)",
            a.config.display()
        );
    };
    let (bus, ticker) = crate::wiring::SharedBus::start(cfg)?;
    let t0 = Instant::now();
    if !a.files.is_empty() {
        let opts = dnsight_ingest::IngestOptions::default();
        let mut batch = Vec::with_capacity(4096);
        for f in &a.files {
            let mut r = dnsight_ingest::open_path(f, &opts)
                .with_context(|| format!("opening {}", f.display()))?;
            loop {
                batch.clear();
                let more = r
                    .next_batch(&mut batch)
                    .with_context(|| format!("reading {}", f.display()))?;
                bus.publish(&batch);
                if !more {
                    break;
                }
            }
            tracing::info!(file = %f.display(), stats = ?r.stats(), "file published");
        }
    } else {
        let settings = crate::config::resolver::load(
            Some(&a.config),
            &crate::config::resolver::ServeOverrides::default(),
        )?;
        if settings.sources.is_empty() {
            bail!(
                "{}: no [[source]] to read (or give files to publish once)",
                a.config.display()
            );
        }
        let b = bus.clone();
        let feed: super::serve::Feed = std::sync::Arc::new(move |batch| {
            b.publish(&batch);
            true
        });
        let sources = super::serve::start_sources(&settings.sources, &feed, None)?;
        wait_for_signal(&bus)?;
        for (stop, t) in sources {
            stop();
            let _ = t.join();
        }
    }
    let s = bus.close(ticker, Duration::from_secs(a.drain_secs));
    let secs = t0.elapsed().as_secs_f64();
    tracing::info!(stats = ?s, "bus publisher closed");
    eprintln!(
        "dnsight sensor: {} events published in {:.2} s ({:.0}/s), {} spooled and {} replayed, {} dropped, {} bytes left in the spool",
        s.published_events,
        secs,
        s.published_events as f64 / secs.max(1e-9),
        s.spooled_events,
        s.replayed_events,
        s.dropped_events,
        s.spool_bytes
    );
    Ok(())
}

/// Until SIGTERM or SIGINT, logging the bus counters every minute.
fn wait_for_signal(bus: &crate::wiring::SharedBus) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.tick().await;
        tracing::info!("dnsight sensor: running (SIGTERM or SIGINT stops it)");
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = every.tick() => tracing::info!(stats = ?bus.stats(), "bus stats"),
            }
        }
        Ok::<(), std::io::Error>(())
    })?;
    Ok(())
}
