//! Wiring shared by `serve`, `demo` and `analyze`: the engine, the triage store and the outputs
//! built into one [`Pipeline`], and the glue between the pipeline and the resolver.

use anyhow::Context;
use dnsight_engine::Engine;
use dnsight_pipeline::{IntelSource, Outputs, Pipeline, PipelineConfig, Producer};
use dnsight_triage::{BlockRule, SqliteStore, TriageStore};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

/// Intel feed files as the pipeline's reload source.
pub struct IntelFilesSource(pub crate::config::engine::IntelFiles);

impl IntelSource for IntelFilesSource {
    fn changed(&mut self) -> bool {
        !self.0.is_empty() && self.0.changed()
    }
    fn load(&mut self) -> Result<Arc<dnsight_engine::IntelSet>, String> {
        self.0.load().map(Arc::new).map_err(|e| format!("{e:#}"))
    }
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

pub fn open_store(dir: &Path) -> anyhow::Result<Box<dyn TriageStore>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))?;
    let s = SqliteStore::open(dir).with_context(|| {
        format!(
            "opening the triage store {}",
            dir.join(dnsight_triage::TRIAGE_FILE).display()
        )
    })?;
    Ok(Box::new(s))
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

/// The resolver's event sink: batches events into the pipeline (blocking when it is behind:
/// the resolver's own bounded queue then drops and counts, its answer path never waits).
pub struct ProducerSink {
    producer: Producer,
    batch: Vec<dnsight_model::DnsEvent>,
}

impl ProducerSink {
    pub fn new(producer: Producer) -> ProducerSink {
        ProducerSink {
            producer,
            batch: Vec::with_capacity(512),
        }
    }
    fn send(&mut self) {
        if !self.batch.is_empty() {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(512));
            let _ = self.producer.send(b);
        }
    }
}

impl dnsight_resolver::EventSink for ProducerSink {
    fn event(&mut self, ev: &dnsight_model::DnsEvent) {
        self.batch.push(ev.clone());
        if self.batch.len() >= 512 {
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

/// Creates (truncates) `--alerts-out` for an offline run (`-` = stdout).
pub fn open_alerts_out_truncate(p: &Path) -> anyhow::Result<Box<dyn std::io::Write + Send>> {
    if p.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdout()));
    }
    Ok(Box::new(std::io::BufWriter::new(
        std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
    )))
}
