//! `dnsight correlator --config FILE --state DIR`: the organisation-wide half of a
//! scaled-out deployment (`[bus] correlator = true`).
//!
//! One correlator is active, elected by a lease (`dnsight_bus::lease::Election`, key
//! `leader.correlator` of the bucket GROUP-leases); any number of others wait as standbys.
//! The active one reads the workers' epochs from the topic GROUP-findings (each a
//! `dnsight_engine::msg::EpochOut`: org-wide changes, findings, idle sweeps), folds them into
//! its engine's alert book and org facts exactly as the settle of one process does
//! (`Engine::correlate`), writes the alerts to the triage store (`[store]`, PostgreSQL) and
//! publishes each update (`OrgUpdate`: prevalence, the organisation's first sightings,
//! country/ASN counts, memberships, roll-ups) to the topic GROUP-org, which every worker
//! applies. Every `--checkpoint-secs` (and when it stops) it first writes the alerts, then
//! saves its state with the findings position it covers (object `correlator` of
//! GROUP-checkpoints) and an org snapshot with the update position it covers (object
//! `org-snapshot`), which a starting worker applies before the updates after it. A standby
//! that wins the election resumes from the checkpoint and reads the findings after it again:
//! the book is a function of the findings stream, so it ends in the same state.

use anyhow::bail;
use dnsight_bus::consume::Position;
use dnsight_bus::topic::{Topic, MAX_PAYLOAD};
use dnsight_engine::msg::{EpochOut, OrgUpdate};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The correlator's checkpoint and the workers' org snapshot in GROUP-checkpoints.
pub const STATE_OBJECT: &str = "correlator";
pub const SNAPSHOT_OBJECT: &str = "org-snapshot";

#[derive(clap::Args)]
pub struct Args {
    /// Detection settings, `[bus]` (required) and `[store]`; `--state DIR` is required.
    #[command(flatten)]
    pub engine: crate::config::engine::EngineFlags,
    /// The workers' group (its buckets and topics are named after it).
    #[arg(long, default_value = "dnsight")]
    pub group: String,
    /// This correlator's name in the election (default: host name and process id).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Seconds between checkpoints (the findings read again after a failover).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_secs: u64,
    /// Milliseconds between heartbeats (lease renewals).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..))]
    pub heartbeat_ms: u64,
    /// Milliseconds after which a silent leader is replaced (at least twice the heartbeat).
    #[arg(long, default_value_t = 10_000)]
    pub lease_ttl_ms: u64,
}

/// The topics between workers and correlator: (findings, org updates).
pub fn topics(
    rt: &tokio::runtime::Runtime,
    js: &dnsight_bus::JetStream,
    group: &str,
) -> anyhow::Result<(Topic, Topic)> {
    // kept a day: a correlator or worker down longer starts from the latest checkpoint
    let day = Duration::from_secs(86_400);
    let f = rt
        .block_on(Topic::open(
            js,
            &format!("{group}-findings"),
            &format!("{group}.findings"),
            day,
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    let o = rt
        .block_on(Topic::open(
            js,
            &format!("{group}-org"),
            &format!("{group}.org"),
            day,
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok((f, o))
}

/// Publishes a message, cut in halves until each fits (`split` folds to the same result).
/// Retries until NATS takes it or `stop` is set: what a worker found is never dropped.
pub fn publish_epoch(
    rt: &tokio::runtime::Runtime,
    topic: &Topic,
    out: EpochOut,
    stop: &AtomicBool,
) -> bool {
    let b = match serde_json::to_vec(&out) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "an epoch did not encode: not sent");
            return true;
        }
    };
    if b.len() > MAX_PAYLOAD {
        return match out.split() {
            Some((a, c)) => publish_epoch(rt, topic, a, stop) && publish_epoch(rt, topic, c, stop),
            None => {
                tracing::error!(
                    bytes = b.len(),
                    "one finding is larger than a bus message: not sent"
                );
                true
            }
        };
    }
    publish_bytes(rt, topic, b, stop)
}

fn publish_bytes(
    rt: &tokio::runtime::Runtime,
    topic: &Topic,
    b: Vec<u8>,
    stop: &AtomicBool,
) -> bool {
    loop {
        match rt.block_on(topic.publish(b.clone())) {
            Ok(_) => return true,
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                tracing::warn!(error = %e, "publishing to the correlator's topic failed; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// An org update as topic messages: cut by destinations (absolute values: any cut applies
/// the same).
pub fn encode_update(u: &OrgUpdate) -> Vec<Vec<u8>> {
    let b = serde_json::to_vec(u).unwrap_or_default();
    if b.len() <= MAX_PAYLOAD {
        return vec![b];
    }
    let mut a = u.clone();
    let mut c = OrgUpdate {
        devices: u.devices,
        ..OrgUpdate::default()
    };
    fn half<T>(v: &mut Vec<T>) -> Vec<T> {
        let n = v.len() / 2;
        v.split_off(n)
    }
    c.dests = half(&mut a.dests);
    c.groups = half(&mut a.groups);
    c.countries = half(&mut a.countries);
    c.asns = half(&mut a.asns);
    c.members = half(&mut a.members);
    c.rolled = half(&mut a.rolled);
    if c.dests.is_empty() && c.groups.is_empty() && c.members.is_empty() && c.rolled.is_empty() {
        return vec![b]; // cannot be cut further (and is refused by the topic)
    }
    let mut v = encode_update(&a);
    v.extend(encode_update(&c));
    v
}

fn is_empty(u: &OrgUpdate) -> bool {
    u.dests.is_empty()
        && u.groups.is_empty()
        && u.countries.is_empty()
        && u.asns.is_empty()
        && u.members.is_empty()
        && u.rolled.is_empty()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(j) = super::worker::join(
        "correlator",
        &args.engine,
        &args.group,
        args.name.as_deref(),
        args.heartbeat_ms,
        args.lease_ttl_ms,
    )?
    else {
        return Ok(());
    };
    let g = j.group_config(args.heartbeat_ms, args.lease_ttl_ms);
    let super::worker::Joined {
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
    } = j;
    let (findings, org) = topics(rt, js, group_name)?;
    let election =
        dnsight_bus::lease::Election::start(&g, "correlator").map_err(|e| anyhow::anyhow!(e))?;
    // the store is open (its schema made) before the correlator says it is ready
    drop(crate::wiring::open_store(state_dir, store_url.as_deref())?);
    tracing::info!(url = %bus.url, group = %group_name, member = %member, "dnsight correlator: standing for election (a standby until elected)");
    let every = Duration::from_secs(args.checkpoint_secs);
    let mut folded = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if !election.is_leader() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        // elected: resume from the checkpoint
        let (pos, rec) = match rt.block_on(ckpt.load_named(STATE_OBJECT)) {
            Ok(Some((pos, rec))) => (pos, Some(rec)),
            Ok(None) => (Position::default(), None),
            Err(e) => {
                tracing::error!(error = %e, "loading the correlator's checkpoint failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        let mut engine = dnsight_engine::Engine::new(engine_cfg.clone());
        let mut alerts = 0;
        if let Some(rec) = rec {
            match engine.import_correlator(&rec) {
                Ok(n) => alerts = n,
                Err(e) => {
                    // never make up a state: a damaged checkpoint needs a person
                    bail!(
                        "the correlator's checkpoint (object {STATE_OBJECT} of {group_name}-checkpoints) does not decode: {e}. Fix: restore it, or delete it (`nats object del {group_name}-checkpoints {STATE_OBJECT}`) to rebuild the alerts from the findings still in {group_name}-findings"
                    );
                }
            }
        }
        let store = crate::wiring::open_store(state_dir, store_url.as_deref())?;
        let mut pipeline = crate::wiring::build_pipeline(
            engine,
            Some(store),
            dnsight_pipeline::Outputs {
                alert_lines: match &args.engine.alerts_out {
                    Some(p) => Some(crate::wiring::open_alerts_out(p)?),
                    None => None,
                },
                log_alerts: true,
                ..Default::default()
            },
            dnsight_pipeline::PipelineConfig {
                persistent: false,
                tick: Duration::from_millis(250),
                // actions taken through any API close what they cover in this book too
                store_sync: Some(dnsight_pipeline::STORE_SYNC_DEFAULT),
                ..Default::default()
            },
        )?;
        let mut reader = findings.read_from(rt.handle(), pos.next_seq);
        let mut next = pos.next_seq;
        tracing::info!(member = %member, from = next, alerts, "dnsight correlator: active (reading the workers' findings)");
        let checkpoint = |pipeline: &mut dnsight_pipeline::Pipeline, next: u64| {
            // the alerts of what the checkpoint covers are in the store before it
            pipeline.tick();
            let (state, snap) = pipeline.export_correlator();
            let org_last = match rt.block_on(org.last_seq()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "reading the org topic failed: checkpoint not saved");
                    return;
                }
            };
            let snap = serde_json::to_vec(&snap).unwrap_or_default();
            let r1 = rt.block_on(ckpt.save_named(
                STATE_OBJECT,
                Position {
                    next_seq: next,
                    skip: 0,
                },
                &state,
            ));
            let r2 = rt.block_on(ckpt.save_named(
                SNAPSHOT_OBJECT,
                Position {
                    next_seq: org_last + 1,
                    skip: 0,
                },
                &snap,
            ));
            match (r1, r2) {
                (Ok(()), Ok(())) => tracing::info!(
                    bytes = state.len(),
                    snapshot_bytes = snap.len(),
                    next,
                    "correlator checkpoint saved"
                ),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "saving the correlator's checkpoint failed")
                }
            }
        };
        let (mut last_tick, mut last_ckpt) = (Instant::now(), Instant::now());
        let mut bad = 0u64;
        let mut lost = false;
        let mut reported = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if !election.is_leader() {
                // another is active now: what this one holds is stale; it writes nothing more
                tracing::warn!(member = %member, "dnsight correlator: leadership lost; standing by");
                lost = true;
                break;
            }
            let mut n = 0;
            while let Some((seq, payload)) = reader.next_within(if n == 0 {
                Duration::from_millis(50)
            } else {
                Duration::ZERO
            }) {
                next = seq + 1;
                n += 1;
                let out: EpochOut = match serde_json::from_slice(&payload) {
                    Ok(o) => o,
                    Err(e) => {
                        bad += 1;
                        tracing::warn!(seq, error = %e, "a findings message did not decode: skipped");
                        continue;
                    }
                };
                folded += out.findings.len() as u64;
                let u = pipeline.correlate(out);
                if !is_empty(&u) {
                    for b in encode_update(&u) {
                        if !publish_bytes(rt, &org, b, stop) {
                            break;
                        }
                    }
                }
                if n >= 256 {
                    break;
                }
            }
            if last_tick.elapsed() >= Duration::from_millis(250) {
                last_tick = Instant::now();
                pipeline.tick();
                if next != reported {
                    // for benchmarks (`RUST_LOG=info,dnsight_worker_progress=debug`)
                    reported = next;
                    tracing::debug!(target: "dnsight_worker_progress", next, findings = folded, "folded");
                }
            }
            if last_ckpt.elapsed() >= every {
                last_ckpt = Instant::now();
                checkpoint(&mut pipeline, next);
            }
        }
        if !lost {
            checkpoint(&mut pipeline, next);
            pipeline.finish();
        }
        tracing::info!(
            findings = folded,
            bad_messages = bad,
            next,
            "dnsight correlator: stopped being active"
        );
    }
    election.resign();
    tracing::info!("dnsight correlator: stopped");
    Ok(())
}
