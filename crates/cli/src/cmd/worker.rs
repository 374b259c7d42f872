//! `dnsight worker --config FILE --state DIR`: an analysis worker of a scaled-out deployment.
//!
//! It joins the group of workers (`--group`, a JetStream key-value bucket of leases, see
//! `dnsight_bus::lease`), owns its fair share of the partitions and follows the group as
//! workers come and go. For each partition it owns it loads the checkpoint (the partition's
//! engine state with the stream position it covers, `dnsight_bus::consume::Checkpoints`), reads
//! the stream from that position, runs the per-device detectors and writes the alerts to the
//! triage store (`[store]`: PostgreSQL for a deployment). Every `--checkpoint-secs`, when it
//! gives a partition up and when it stops, it first writes the alerts, then saves each
//! partition's checkpoint. A worker killed at any point loses nothing: its successor resumes
//! from the last checkpoint and reads the events after it again (the alerts they raise are
//! the same ones, with the same ids: the store updates them).
//!
//! When the set of partitions changes, the worker rebuilds its engine from the checkpoints
//! (the ones it just saved for the partitions it keeps): the engine then holds exactly the
//! devices of its partitions. With `[bus] correlator = true` it writes no alerts: each epoch's
//! org-wide changes and findings go to `dnsight correlator` (topic GROUP-findings, published
//! before any checkpoint that covers them) and the correlator's updates (topic GROUP-org, after
//! its last org snapshot) come back into the shards. Without it, org-wide facts (destination
//! prevalence, the organisation's first sighting, roll-ups over devices) are those of the
//! worker's own devices, see README "Scale out".
//! `--partitions LIST` fixes the partitions instead (no leases: one worker per list, by hand).

use anyhow::{bail, Context};
use dnsight_bus::consume::{Checkpoints, ConsumeStats, Position, Reader};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Detection settings, `[bus]` (required) and `[store]`; `--state DIR` is required.
    #[command(flatten)]
    pub engine: crate::config::engine::EngineFlags,
    /// Own these partitions instead of joining the group's leases, e.g. `0-31`.
    #[arg(long, value_name = "LIST")]
    pub partitions: Option<String>,
    /// The group: its leases are in the key-value bucket GROUP-leases, its checkpoints in the
    /// object store GROUP-checkpoints.
    #[arg(long, default_value = "dnsight")]
    pub group: String,
    /// This worker's name in the group, unique (default: host name and process id).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Seconds between checkpoints (the events read again after a crash).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_secs: u64,
    /// Milliseconds between heartbeats (lease renewals).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..))]
    pub heartbeat_ms: u64,
    /// Milliseconds after which a silent worker's partitions go to the others (at least
    /// twice the heartbeat).
    #[arg(long, default_value_t = 10_000)]
    pub lease_ttl_ms: u64,
}

/// `[0,1,2,5]` → `0-2,5`.
fn ranges(v: &BTreeSet<u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = v.iter().copied().peekable();
    while let Some(a) = it.next() {
        let mut b = a;
        while it.peek() == Some(&(b + 1)) {
            b = it.next().unwrap_or(b);
        }
        out.push(if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "worker".into())
}

/// What a process of a scaled-out deployment (`worker`, `correlator`) starts from: its config
/// (with `[bus]`), the signal flag, the NATS runtime and connection, and the group's
/// checkpoint bucket.
pub struct Joined {
    pub state_dir: std::path::PathBuf,
    pub bus: dnsight_bus::BusConfig,
    pub engine_cfg: dnsight_engine::EngineConfig,
    pub store_url: Option<String>,
    pub group_name: String,
    pub member: String,
    pub stop: Arc<AtomicBool>,
    pub rt: tokio::runtime::Runtime,
    pub js: dnsight_bus::JetStream,
    pub ckpt: Checkpoints,
}

impl Joined {
    /// The lease settings of this member in the group's bucket.
    pub fn group_config(&self, heartbeat_ms: u64, ttl_ms: u64) -> dnsight_bus::lease::GroupConfig {
        let mut g =
            dnsight_bus::lease::GroupConfig::new(&self.bus.url, self.bus.partitions, &self.member);
        g.bucket = format!("{}-leases", self.group_name);
        g.heartbeat = Duration::from_millis(heartbeat_ms);
        g.ttl = Duration::from_millis(ttl_ms);
        g
    }
}

/// Reads the config of `dnsight CMD`, checks the lease timing, starts the signal thread,
/// connects to NATS and opens the checkpoint bucket (None: stopped by a signal before).
pub fn join(
    cmd: &str,
    engine: &crate::config::engine::EngineFlags,
    group: &str,
    name: Option<&str>,
    heartbeat_ms: u64,
    lease_ttl_ms: u64,
) -> anyhow::Result<Option<Joined>> {
    super::serve::init_logging();
    let Some(cfg_path) = engine.config.clone() else {
        bail!("dnsight {cmd} needs --config FILE with a [bus] section");
    };
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("cannot read config file {}", cfg_path.display()))?;
    crate::config::resolver::check_top_level(&text, &cfg_path, crate::config::ALL_SECTIONS)?;
    let Some(state_dir) = engine.state.clone() else {
        bail!("dnsight {cmd} needs --state DIR (the triage store unless [store] names one)");
    };
    let Some(bus) = crate::config::bus::load(Some(&cfg_path), Some(&state_dir))? else {
        bail!(
            "{}: dnsight {cmd} needs a [bus] section",
            cfg_path.display()
        );
    };
    if lease_ttl_ms < 2 * heartbeat_ms {
        bail!("--lease-ttl-ms {lease_ttl_ms} must be at least twice --heartbeat-ms {heartbeat_ms}");
    }
    let group_name = dnsight_bus::lease::member_name(group);
    let (engine_cfg, _) = crate::config::engine::build(engine)?;
    let store_url = crate::config::store::load(Some(&cfg_path))?;
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("dnsight-nats")
        .enable_all()
        .build()?;
    let js = rt
        .block_on(dnsight_bus::consume::connect(&bus.url))
        .map_err(|e| anyhow::anyhow!(e))?;
    let ckpt_bucket = format!("{group_name}-checkpoints");
    let ckpt = loop {
        match rt.block_on(Checkpoints::open(&js, &ckpt_bucket)) {
            Ok(c) => break c,
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                tracing::warn!(error = %e, "the checkpoint bucket is not ready yet");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let member = name
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
    Ok(Some(Joined {
        state_dir,
        bus,
        engine_cfg,
        store_url,
        group_name,
        member,
        stop,
        rt,
        js,
        ckpt,
    }))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(j) = join(
        "worker",
        &args.engine,
        &args.group,
        args.name.as_deref(),
        args.heartbeat_ms,
        args.lease_ttl_ms,
    )?
    else {
        return Ok(());
    };
    let Joined {
        ref state_dir,
        ref bus,
        ref engine_cfg,
        ref store_url,
        ref group_name,
        ref member,
        ref stop,
        ref rt,
        ref js,
        ref ckpt,
        ..
    } = j;
    let fixed: Option<BTreeSet<u32>> = match &args.partitions {
        Some(s) => Some(
            dnsight_bus::consume::parse_partitions(s, bus.partitions)
                .map_err(|e| anyhow::anyhow!("--partitions {s}: {e}"))?
                .into_iter()
                .collect(),
        ),
        None => None,
    };
    let group = match &fixed {
        Some(_) => None,
        None => {
            let g = j.group_config(args.heartbeat_ms, args.lease_ttl_ms);
            Some(dnsight_bus::lease::Group::join(g).map_err(|e| anyhow::anyhow!(e))?)
        }
    };

    // with a correlator: the topics to it and back
    let links = if bus.correlator {
        let (f, o) = super::correlator::topics(rt, js, group_name)?;
        Some((f, o))
    } else {
        None
    };
    let remote = links.is_some();
    let new_engine = || {
        let mut e = dnsight_engine::Engine::new(engine_cfg.clone());
        e.set_remote_correlator(remote);
        e
    };
    let make_pipeline =
        |engine: dnsight_engine::Engine| -> anyhow::Result<dnsight_pipeline::Pipeline> {
            let store = crate::wiring::open_store(state_dir, store_url.as_deref())?;
            let out = dnsight_pipeline::Outputs {
                alert_lines: match &args.engine.alerts_out {
                    Some(p) => Some(crate::wiring::open_alerts_out(p)?),
                    None => None,
                },
                log_alerts: true,
                ..Default::default()
            };
            crate::wiring::build_pipeline(
                engine,
                Some(store),
                out,
                dnsight_pipeline::PipelineConfig {
                    persistent: false,
                    tick: Duration::from_millis(250),
                    // actions are taken through the API of another process (`serve`): they
                    // reach this engine within 2 s
                    store_sync: Some(dnsight_pipeline::STORE_SYNC_DEFAULT),
                    ..Default::default()
                },
            )
        };
    let stats = Arc::new(ConsumeStats::default());
    let new_reader = || {
        Reader::new(
            rt.handle().clone(),
            js.clone(),
            &bus.stream,
            &bus.subject_prefix,
            stats.clone(),
        )
    };
    let mut w = Worker {
        rt,
        ckpt,
        partitions: bus.partitions,
        pipeline: make_pipeline(new_engine())?,
        reader: new_reader(),
        running: BTreeSet::new(),
        saved: 0,
        links: links.as_ref(),
        org_reader: None,
        stop,
    };
    // the store is open (its schema made) when the worker says it reads
    tracing::info!(
        url = %bus.url,
        stream = %bus.stream,
        group = %group_name,
        member = %group.as_ref().map_or(member.as_str(), |g| g.member()),
        partitions = bus.partitions,
        fixed = ?args.partitions,
        "dnsight worker: joining (reading its partitions from JetStream)"
    );
    let owned_now = |g: &Option<dnsight_bus::lease::Group>| -> (BTreeSet<u32>, BTreeSet<u32>) {
        match (g, &fixed) {
            (Some(g), _) => (
                g.owned().into_iter().collect(),
                g.releasing().into_iter().collect(),
            ),
            (None, Some(f)) => (f.clone(), BTreeSet::new()),
            (None, None) => (BTreeSet::new(), BTreeSet::new()),
        }
    };
    let every = Duration::from_secs(args.checkpoint_secs);
    let (mut last_tick, mut last_ckpt) = (Instant::now(), Instant::now());
    // the events read so far, every 250 ms while they grow, for benchmarks
    // (`RUST_LOG=info,dnsight_worker_progress=debug`, see bench/scale-bench.sh)
    let (mut reported, mut read) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let (owned, releasing) = owned_now(&group);
        let want: BTreeSet<u32> = owned.difference(&releasing).copied().collect();
        if want != w.running {
            // save what this worker runs and still owns, give up what it releases, rebuild
            let keep: Vec<u32> = w.running.intersection(&owned).copied().collect();
            let recs = w.checkpoint(&keep, &group);
            if let Some(g) = &group {
                for p in &releasing {
                    if !w.running.contains(p) || recs.contains_key(p) {
                        g.released(*p);
                    }
                }
            }
            w.pipeline.finish();
            let mut engine = new_engine();
            let mut reader = new_reader();
            let mut devices = 0;
            for &p in &want {
                let loaded = match recs.get(&p) {
                    Some((pos, r)) => Some((*pos, r.clone())),
                    None => match rt.block_on(ckpt.load(p)) {
                        Ok(c) => c,
                        Err(e) => {
                            // a worker must not make up a state: retry at the next round
                            tracing::error!(partition = p, error = %e, "loading a checkpoint failed");
                            continue;
                        }
                    },
                };
                let pos = match loaded {
                    None => Position::default(),
                    Some((pos, rec)) => match engine.import_partition(&rec) {
                        Ok(st) => {
                            devices += st.devices;
                            pos
                        }
                        Err(e) => {
                            tracing::error!(partition = p, error = %e, "a checkpoint does not decode: the partition is read from the stream's start");
                            Position::default()
                        }
                    },
                };
                reader.add(p, pos);
            }
            let started: BTreeSet<u32> = reader.partitions().into_iter().collect();
            w.reader = reader;
            if let Some((_, org)) = &links {
                // the correlator's facts: its snapshot, then every update after it
                let from = match rt.block_on(ckpt.load_named(super::correlator::SNAPSHOT_OBJECT)) {
                    Ok(Some((pos, b))) => {
                        match serde_json::from_slice::<dnsight_engine::msg::OrgUpdate>(&b) {
                            Ok(u) => {
                                engine.apply_org_update(&u);
                                pos.next_seq
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "the org snapshot does not decode: reading every update");
                                1
                            }
                        }
                    }
                    Ok(None) => 1,
                    Err(e) => {
                        tracing::error!(error = %e, "loading the org snapshot failed: reading every update");
                        1
                    }
                };
                w.org_reader = Some(org.read_from(rt.handle(), from));
            }
            w.pipeline = make_pipeline(engine)?;
            w.running = started;
            tracing::info!(
                partitions = %ranges(&w.running),
                count = w.running.len(),
                devices,
                members = ?group.as_ref().map(|g| g.members()),
                "dnsight worker: partitions"
            );
            last_ckpt = Instant::now();
        }
        let batch = w.reader.next_batch(16_384, Duration::from_millis(50));
        if !batch.is_empty() {
            read += batch.len() as u64;
            w.pipeline.observe(&batch);
        }
        w.exchange();
        if last_tick.elapsed() >= Duration::from_millis(250) {
            last_tick = Instant::now();
            w.pipeline.tick();
            w.exchange();
            if read != reported {
                reported = read;
                tracing::debug!(target: "dnsight_worker_progress", events = read, "read");
            }
        }
        if last_ckpt.elapsed() >= every {
            last_ckpt = Instant::now();
            let (owned, _) = owned_now(&group);
            let keep: Vec<u32> = w.running.intersection(&owned).copied().collect();
            w.checkpoint(&keep, &group);
        }
    }
    let (owned, _) = owned_now(&group);
    let keep: Vec<u32> = w.running.intersection(&owned).copied().collect();
    w.checkpoint(&keep, &group);
    w.pipeline.finish();
    w.exchange();
    if let Some(g) = group {
        g.leave();
    }
    let engine = w.pipeline.stats().engine;
    tracing::info!(
        batches = stats.batches.load(Ordering::Relaxed),
        events = engine.events,
        checkpoints = w.saved,
        bad_batches = stats.bad_batches.load(Ordering::Relaxed),
        engine = ?engine,
        "dnsight worker: stopped"
    );
    Ok(())
}

struct Worker<'a> {
    rt: &'a tokio::runtime::Runtime,
    ckpt: &'a Checkpoints,
    partitions: u32,
    pipeline: dnsight_pipeline::Pipeline,
    reader: Reader,
    running: BTreeSet<u32>,
    saved: u64,
    /// With a correlator: the findings topic and the org topic.
    links: Option<&'a (dnsight_bus::topic::Topic, dnsight_bus::topic::Topic)>,
    org_reader: Option<dnsight_bus::topic::TopicReader>,
    stop: &'a AtomicBool,
}

impl Worker<'_> {
    /// With a correlator: sends the epochs ended since the last call (before anything that
    /// covers them is checkpointed) and applies the org updates that came.
    fn exchange(&mut self) {
        let Some((findings, _)) = self.links else {
            return;
        };
        for out in self.pipeline.take_outbound() {
            super::correlator::publish_epoch(self.rt, findings, out, self.stop);
        }
        if let Some(r) = self.org_reader.as_mut() {
            while let Some((seq, b)) = r.try_next() {
                match serde_json::from_slice::<dnsight_engine::msg::OrgUpdate>(&b) {
                    Ok(u) => self.pipeline.apply_org_update(&u),
                    Err(e) => {
                        tracing::warn!(seq, error = %e, "an org update did not decode: skipped")
                    }
                }
            }
        }
    }

    /// Writes the alerts, then saves the checkpoints of `parts` (those whose lease is still
    /// this worker's at the moment of saving); returns what it saved.
    fn checkpoint(
        &mut self,
        parts: &[u32],
        group: &Option<dnsight_bus::lease::Group>,
    ) -> BTreeMap<u32, (Position, Vec<u8>)> {
        let mut out = BTreeMap::new();
        if parts.is_empty() {
            return out;
        }
        // the alerts of the events a checkpoint covers are in the store (or, with a
        // correlator, their findings in its topic) before it
        self.pipeline.tick();
        self.exchange();
        let t0 = Instant::now();
        let recs = self
            .pipeline
            .engine()
            .export_partitions(self.partitions, parts);
        let mut bytes = 0;
        for (p, rec) in recs {
            let Some(pos) = self.reader.position(p) else {
                continue;
            };
            if let Some(g) = group {
                if !g.owned().contains(&p) {
                    tracing::warn!(partition = p, "lease gone before its checkpoint: not saved");
                    continue;
                }
            }
            match self.rt.block_on(self.ckpt.save(p, pos, &rec)) {
                Ok(()) => {
                    bytes += rec.len();
                    self.saved += 1;
                    out.insert(p, (pos, rec));
                }
                Err(e) => tracing::error!(partition = p, error = %e, "saving a checkpoint failed"),
            }
        }
        tracing::info!(
            partitions = out.len(),
            bytes,
            ms = t0.elapsed().as_millis() as u64,
            "checkpoints saved"
        );
        out
    }
}

pub fn wait_signal() -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn partition_ranges() {
        let s = |v: &[u32]| super::ranges(&v.iter().copied().collect());
        assert_eq!(s(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(s(&[]), "none");
        assert_eq!(s(&[3]), "3");
    }
}
