//! The actor: one thread, one engine, one triage-store writer.
//!
//! ```text
//!  resolver ─┐  Producer::send(batch)        ┌──────────── Pipeline (one thread) ───────────┐
//!  sources  ─┼──► events (bounded) ─────────►│ engine.observe → drain_updates → store upsert │
//!  files    ─┘                               │   → throttle → alert lines / log / hook       │
//!  API, CLI ──► Handle::act(..) ─► commands ►│ store.act (commit) → engine (ack/flag/...)    │
//!               (reply after commit)         │   → blocks → resolver overrides, RPZ file     │
//!  wall-clock ticks (1 s) ──────────────────►│ expiry, save every 60 s, intel reload         │
//!  other processes' commits (shared store) ─►│ resync: their acks/statuses → engine, blocks  │
//!                                            └──────────────────────────────────────────────┘
//! ```
//!
//! Commands are served before the next event batch, and ticks run on wall time between
//! batches, so neither waits for the event queue to run empty. With a store other processes
//! write too ([`PipelineConfig::store_sync`]), a tick first reads the audit lines they added
//! and applies them (see `Pipeline::sync_from_store`). Event batches are bounded: a
//! producer that outruns the engine blocks (passive sources) or drops and counts on its side
//! (the resolver, whose answer path never waits).

use crate::{
    Action, ActionError, ActionRequest, ActionResult, BlockTarget, PipelineError, PipelineStats,
    ScopeSel, Target,
};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use dnsight_engine::views::{DestinationView, DeviceSummary, DeviceView};
use dnsight_engine::{Alert, Engine, IntelSet, Scope, Severity, Status};
use dnsight_model::DnsEvent;
use dnsight_triage::{Act, ActOutcome, BlockRule, Change, NewBlock, Reason, Secs, TriageStore};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Wall clock, Unix seconds (the pipeline may read the clock; the engine never does).
pub fn now_secs() -> Secs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Timing and limits.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// How often alert updates are written and expiry runs.
    pub tick: Duration,
    /// How often the engine state is saved (when persistent).
    pub save_every: Duration,
    /// After a person's action, the state is saved at the first tick at least this long after
    /// the previous save (so what they acted on — the devices and destinations learned up to
    /// then — survives a crash with their decision, without a save per click).
    pub save_after_action: Duration,
    /// How often intel feed files are checked for changes.
    pub intel_check: Duration,
    /// Capacity of the event channel, in batches.
    pub queue_batches: usize,
    /// Alerts below this severity are stored but not written as lines or logged.
    pub min_output_severity: Severity,
    /// Keep every alert handed out (for offline reports: `analyze`, `demo`).
    pub collect: bool,
    /// Whether the engine has a state directory to save into.
    pub persistent: bool,
    /// How often to look for what other processes committed to a shared triage store
    /// (acknowledgements, statuses, blocks), at a tick: None never (the store has one writer,
    /// this pipeline). One cheap query (the audit log above the last id seen) when nothing
    /// changed; on a change, what it names is applied to the engine and the blocks go out
    /// again. See [`Pipeline`]'s resync.
    pub store_sync: Option<Duration>,
}

/// The resync interval the binary uses when several processes write one triage store.
pub const STORE_SYNC_DEFAULT: Duration = Duration::from_secs(2);

/// Audit lines read per resync round (a longer backlog is read at the following ticks).
const SYNC_BATCH: u32 = 1000;

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            tick: Duration::from_secs(1),
            save_every: Duration::from_secs(60),
            save_after_action: Duration::from_secs(5),
            intel_check: Duration::from_secs(5),
            queue_batches: 256,
            min_output_severity: Severity::Info,
            collect: false,
            persistent: false,
            store_sync: None,
        }
    }
}

/// Reloads threat-intel feeds (and GeoIP databases) when their files change (implemented by
/// the binary, which knows the config format).
pub trait IntelSource: Send {
    fn changed(&mut self) -> bool;
    fn load(&mut self) -> Result<Arc<IntelSet>, String>;
    /// GeoIP databases that changed on disk since the last call: the new set to use
    /// (`None`: unchanged, or none configured).
    fn geo(&mut self) -> Option<Result<Arc<dnsight_engine::Geo>, String>> {
        None
    }
    /// Every feed and database with its freshness, for `stats`.
    fn status(&mut self) -> Vec<crate::FeedStatus> {
        Vec::new()
    }
}

/// A callback for each alert line's alert and what changed.
pub type OnAlert = Box<dyn FnMut(&Alert, Change) + Send>;
/// A callback with the active blocks and allows.
pub type OnBlocks = Box<dyn FnMut(&[BlockRule]) + Send>;

/// Where the pipeline's results go, besides the triage store.
#[derive(Default)]
pub struct Outputs {
    /// Alert JSON lines (`--alerts-out`): a line when an alert is new, escalates, grows, is
    /// rescored or its count doubles; the final state of every changed alert at shutdown.
    pub alert_lines: Option<Box<dyn Write + Send>>,
    /// A `tracing` warning per alert line.
    pub log_alerts: bool,
    /// Called with every alert line's alert (after the store committed it), e.g. the demo's
    /// printer or a notifier.
    pub on_alert: Option<OnAlert>,
    /// Called with the active blocks and allows whenever they change (and once at start): the
    /// resolver's overrides.
    pub on_blocks: Option<OnBlocks>,
    /// Write the RPZ zone (scope `all` blocks and allows) to this file on every change.
    pub rpz_file: Option<(PathBuf, String)>,
    pub intel: Option<Box<dyn IntelSource>>,
}

/// The output throttle (one place for `serve`, `demo` and `analyze`): what was last written per
/// alert id. Bounded by the live alerts: entries go when an alert closes.
#[derive(Default)]
struct Throttle {
    written: HashMap<String, (Severity, u8, u64, u32)>,
}

impl Throttle {
    fn worth(&mut self, a: &Alert, final_state: bool) -> bool {
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
        if !a.status.is_open() && a.status != Status::Blocked {
            self.written.remove(&a.id);
        } else if worth {
            self.written.insert(a.id.clone(), now);
        }
        worth
    }
}

/// The pipeline state: engine, store, outputs. Driven by the actor thread ([`spawn`]) or
/// directly by a caller that owns the loop (offline `analyze`).
pub struct Pipeline {
    engine: Engine,
    store: Option<Box<dyn TriageStore>>,
    out: Outputs,
    cfg: PipelineConfig,
    throttle: Throttle,
    stats: PipelineStats,
    updates: Vec<Alert>,
    collected: HashMap<String, Alert>,
    last_save: Instant,
    acted_since_save: bool,
    last_intel: Instant,
    last_blocks: Option<Vec<BlockRule>>,
    clock: fn() -> Secs,
    sources: crate::Sources,
    /// The store's acknowledgements applied to the engine, by id: what a resync compares with
    /// (new ones are applied, those gone from the store are lifted).
    acks_applied: HashMap<i64, AckKey>,
    /// The highest audit id the last sync took in (None: the store's audit log was unreadable
    /// or empty at start).
    sync_mark: Option<i64>,
    last_sync: Instant,
    /// The last round read a full batch: read on at the next tick.
    sync_backlog: bool,
}

/// What identifies an acknowledgement to the engine.
type AckKey = (dnsight_engine::Kind, String, Scope);

impl Pipeline {
    /// Builds the pipeline and brings the engine up to date with the store: every active
    /// acknowledgement is applied again (idempotent: this is how a confirmed action that came
    /// after the engine's last save reaches the baselines after a crash), live alerts the store
    /// has closed meanwhile are closed, and the active blocks go to `on_blocks`.
    pub fn new(
        engine: Engine,
        store: Option<Box<dyn TriageStore>>,
        out: Outputs,
        cfg: PipelineConfig,
    ) -> Result<Pipeline, PipelineError> {
        let mut p = Pipeline {
            engine,
            store,
            out,
            cfg,
            throttle: Throttle::default(),
            stats: PipelineStats::default(),
            updates: Vec::new(),
            collected: HashMap::new(),
            last_save: Instant::now(),
            acted_since_save: false,
            last_intel: Instant::now(),
            last_blocks: None,
            clock: now_secs,
            sources: crate::Sources::default(),
            acks_applied: HashMap::new(),
            sync_mark: None,
            last_sync: Instant::now(),
            sync_backlog: false,
        };
        p.sync_from_store(None)?;
        Ok(p)
    }

    /// Uses another clock (tests).
    pub fn with_clock(mut self, clock: fn() -> Secs) -> Pipeline {
        self.clock = clock;
        self
    }

    /// Brings the engine up to date with the store: at build (`changed` None: every live
    /// alert is compared) and at each resync that found audit lines (`changed`: the alerts
    /// they name). Acknowledgements new to this pipeline are applied (alerts of this engine
    /// they close that the store still has open are acknowledged there too, as an action of
    /// this pipeline would), those the store no longer has are lifted, live alerts the store
    /// has closed, flagged or blocked take that status, and the blocks go out when they
    /// changed.
    ///
    /// The engine's reports of these changes are not written back (the store has them): they
    /// are dropped, with any copy of the same alerts still waiting for the next flush (it
    /// predates the store's word, and writing an open copy would reopen an alert another
    /// process closed). Other pending updates stay for the next flush; at build every pending
    /// update goes, as before.
    fn sync_from_store(&mut self, changed: Option<&HashSet<String>>) -> Result<(), PipelineError> {
        let now = (self.clock)();
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        let initial = changed.is_none();
        if initial {
            // the mark first: what commits while this runs is read again by the first resync
            self.sync_mark = store.audit(1)?.first().map(|e| e.id);
            store.expire(now)?;
        }
        self.engine.drain_updates(&mut self.updates);
        let acks = store.active_acks(now)?;
        let mut applied: HashMap<i64, AckKey> = HashMap::with_capacity(acks.len());
        for a in &acks {
            if !self.acks_applied.contains_key(&a.id) {
                let closed = self.engine.acknowledge(&engine_ack(a));
                for other in closed
                    .into_iter()
                    .filter(|c| a.alert_id.as_deref() != Some(c.as_str()))
                {
                    if store
                        .get_alert(&other)?
                        .is_some_and(|s| s.alert.status.is_open())
                    {
                        let note = match &a.alert_id {
                            Some(id) => format!("covered by the acknowledgement of {id}"),
                            None => "covered by an acknowledgement".to_string(),
                        };
                        // best effort: the engine has closed it either way, and one alert the
                        // store refuses must not hold up the rest of the sync
                        if let Err(e) = store.act(
                            &other,
                            &Act::Ack {
                                scope: a.scope.clone(),
                                until: a.until,
                            },
                            &a.created_by,
                            Some(&note),
                            now,
                        ) {
                            tracing::warn!(error = %e, alert = %other, "acknowledging an alert covered by an acknowledgement failed");
                        }
                    }
                }
            }
            applied.insert(a.id, (a.kind, a.destination.clone(), a.scope.clone()));
        }
        let still: HashSet<&AckKey> = applied.values().collect();
        for (id, k) in &self.acks_applied {
            if !applied.contains_key(id) && !still.contains(k) {
                // ended in the store (a reopen, an expiry): its suppression ends here too
                self.engine.remove_ack(k.0, &k.1, &k.2);
            }
        }
        self.acks_applied = applied;
        let live: Vec<Alert> = match changed {
            None => self.engine.alerts(),
            Some(ids) => ids.iter().filter_map(|id| self.engine.alert(id)).collect(),
        };
        for a in live {
            if let Some(s) = store.get_alert(&a.id)? {
                let st = s.alert.status;
                if st != a.status && (!st.is_open() || st == Status::Flagged) {
                    self.engine.set_status(&a.id, st);
                }
            }
        }
        // what the engine reports from here on is judged against the store
        let mut caused = Vec::new();
        self.engine.drain_updates(&mut caused);
        if initial {
            self.updates.clear();
        } else if !caused.is_empty() {
            let ids: HashSet<&str> = caused.iter().map(|a| a.id.as_str()).collect();
            self.updates.retain(|u| !ids.contains(u.id.as_str()));
        }
        for a in caused
            .iter()
            .filter(|a| !a.status.is_open() && a.status != Status::Blocked)
        {
            // closed here on the store's word: no final line will pass the throttle
            self.throttle.written.remove(&a.id);
        }
        self.push_blocks()?;
        Ok(())
    }

    /// The periodic resync ([`PipelineConfig::store_sync`]): audit lines above the mark, and
    /// when there are some, [`sync_from_store`](Self::sync_from_store) for the alerts they
    /// name. Returns whether anything was applied.
    fn resync(&mut self) -> Result<bool, PipelineError> {
        self.last_sync = Instant::now();
        let Some(store) = self.store.as_ref() else {
            return Ok(false);
        };
        let lines = store.audit_after(self.sync_mark.unwrap_or(0), SYNC_BATCH)?;
        self.sync_backlog = lines.len() >= SYNC_BATCH as usize;
        let Some(last) = lines.last().map(|e| e.id) else {
            return Ok(false);
        };
        let changed: HashSet<String> = lines.into_iter().filter_map(|e| e.alert_id).collect();
        self.sync_from_store(Some(&changed))?;
        // only once applied: a failed round is read again at the next one
        self.sync_mark = Some(last);
        self.stats.store_syncs += 1;
        Ok(true)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The ingestion-health registry its producers count into (part of `stats`).
    pub fn sources(&self) -> crate::Sources {
        self.sources.clone()
    }

    /// Feeds a batch of events.
    pub fn observe(&mut self, batch: &[DnsEvent]) {
        // one epoch per batch (cut at the engine's epoch size): the engine's shards run it on
        // their threads and settle with the correlator before the next command or batch
        self.engine.observe_batch(batch);
        self.stats.events_in += batch.len() as u64;
        self.stats.batches_in += 1;
    }

    /// The correlator's half of a remote worker's epoch (`dnsight correlator`): its findings
    /// go into this pipeline's alert book (and from there to the store at the next tick, as
    /// for events observed here); returns the update for the workers.
    pub fn correlate(
        &mut self,
        out: dnsight_engine::msg::EpochOut,
    ) -> dnsight_engine::msg::OrgUpdate {
        self.stats.batches_in += 1;
        self.engine.correlate(out)
    }

    /// A remote worker's epochs for the correlator, in order (see
    /// `Engine::set_remote_correlator`).
    pub fn take_outbound(&mut self) -> Vec<dnsight_engine::msg::EpochOut> {
        self.engine.take_outbound()
    }

    /// The correlator's update (or snapshot) for a remote worker's shards.
    pub fn apply_org_update(&mut self, u: &dnsight_engine::msg::OrgUpdate) {
        self.engine.apply_org_update(u);
    }

    /// The correlator's state and its org snapshot (`dnsight correlator`'s checkpoint).
    pub fn export_correlator(&mut self) -> (Vec<u8>, dnsight_engine::msg::OrgUpdate) {
        (self.engine.export_correlator(), self.engine.org_snapshot())
    }

    /// Periodic work: alert updates to the store and outputs, expiry, save, intel reload.
    /// Call on wall time (every [`PipelineConfig::tick`]); the actor does.
    pub fn tick(&mut self) {
        self.stats.ticks += 1;
        let now = (self.clock)();
        // before the flush: an alert another process closed is closed here first, so this
        // engine's open copy of it does not reopen it in the store
        if self
            .cfg
            .store_sync
            .is_some_and(|d| self.sync_backlog || self.last_sync.elapsed() >= d)
        {
            if let Err(e) = self.resync() {
                tracing::error!(error = %e, "reading what other processes changed in the triage store failed; tried again at the next interval");
            }
        }
        if let Err(e) = self.flush_alerts(false) {
            tracing::error!(error = %e, "writing alerts to the triage store failed; they are written again at the next tick");
        }
        self.engine.expire_acks(now);
        if let Some(store) = self.store.as_mut() {
            match store.expire(now) {
                Ok(n) if n > 0 => {
                    if let Err(e) = self.push_blocks() {
                        tracing::error!(error = %e, "reading blocks failed");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "expiring blocks failed"),
            }
        }
        let since = self.last_save.elapsed();
        if self.cfg.persistent
            && (since >= self.cfg.save_every
                || (self.acted_since_save && since >= self.cfg.save_after_action))
        {
            self.save();
        }
        if self.last_intel.elapsed() >= self.cfg.intel_check {
            self.last_intel = Instant::now();
            self.reload_intel(false);
            self.reload_geo();
        }
    }

    /// Final flush (every changed alert's last state), save.
    pub fn finish(&mut self) {
        if let Err(e) = self.flush_alerts(true) {
            tracing::error!(error = %e, "writing alerts to the triage store failed at shutdown");
        }
        if self.cfg.persistent {
            self.save();
        }
        if let Some(w) = self.out.alert_lines.as_mut() {
            let _ = w.flush();
        }
    }

    /// Every alert handed out so far, latest copy (with `collect`), most severe first.
    pub fn collected(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.collected.values().cloned().collect();
        dnsight_engine::alert::sort_alerts(&mut v);
        v
    }

    pub fn stats(&mut self) -> PipelineStats {
        let mut s = self.stats.clone();
        s.engine = self.engine.stats();
        if let Some(src) = self.out.intel.as_mut() {
            s.feeds = src.status();
        }
        s.sources = self.sources.snapshot();
        if let Some(st) = self.store.as_ref() {
            if let Ok(x) = st.stats((self.clock)()) {
                s.store = x;
            }
        }
        s
    }

    fn save(&mut self) {
        self.last_save = Instant::now();
        self.acted_since_save = false;
        match self.engine.save() {
            Ok(()) => {
                self.stats.saves += 1;
                self.stats.last_save_unix = Some((self.clock)());
            }
            Err(e) => {
                self.stats.save_errors += 1;
                tracing::error!(error = %e, "saving engine state failed");
            }
        }
    }

    /// Takes GeoIP databases that changed on disk (a refreshed download).
    fn reload_geo(&mut self) {
        let Some(src) = self.out.intel.as_mut() else {
            return;
        };
        match src.geo() {
            Some(Ok(g)) => {
                self.engine.set_geo(g);
                tracing::info!("GeoIP databases reloaded");
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "reloading GeoIP databases failed; the previous ones stay")
            }
            None => {}
        }
    }

    /// Reloads the intel feeds (when changed, or always with `force`).
    fn reload_intel(&mut self, force: bool) -> Option<Result<String, String>> {
        let src = self.out.intel.as_mut()?;
        if !force && !src.changed() {
            return None;
        }
        Some(match src.load() {
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
                self.engine.set_intel(set);
                tracing::info!(feeds = ?feeds, "intel feeds reloaded");
                Ok(feeds.join(", "))
            }
            Err(e) => {
                tracing::error!(error = %e, "reloading intel feeds failed; the previous feeds stay until the file is fixed (it is re-read when it changes again)");
                Err(e)
            }
        })
    }

    /// Engine updates → store (committed) → outputs.
    fn flush_alerts(&mut self, final_state: bool) -> Result<(), PipelineError> {
        self.engine.drain_updates(&mut self.updates);
        if final_state {
            // the final count and last_seen of every live alert changed since its last line
            let pending: HashSet<String> = self.updates.iter().map(|u| u.id.clone()).collect();
            for a in self.engine.alerts() {
                if !pending.contains(&a.id) {
                    self.updates.push(a);
                }
            }
        }
        if self.updates.is_empty() {
            return Ok(());
        }
        let now = (self.clock)();
        let mut updates = std::mem::take(&mut self.updates);
        latest_only(&mut updates);
        let mut changes = vec![Change::Updated; updates.len()];
        if let Some(store) = self.store.as_mut() {
            if let Err(e) = write_updates(store.as_mut(), &updates, &mut changes, now) {
                // kept (the latest copy of each) and written again at the next flush; nothing
                // is handed out before the store has it
                self.updates = updates;
                return Err(e);
            }
            self.stats.alerts_written += updates.len() as u64;
        } else {
            for (i, a) in updates.iter().enumerate() {
                if !self.throttle.written.contains_key(&a.id) {
                    changes[i] = Change::New;
                }
            }
        }
        for (a, change) in updates.into_iter().zip(changes) {
            if self.cfg.collect {
                self.collected.insert(a.id.clone(), a.clone());
            }
            if is_expired(&a) {
                self.throttle.written.remove(&a.id);
                continue;
            }
            if a.severity < self.cfg.min_output_severity {
                continue;
            }
            if !self.throttle.worth(&a, final_state) {
                continue;
            }
            self.stats.alert_lines_out += 1;
            if self.out.log_alerts {
                tracing::warn!(kind = %a.kind, severity = a.severity.as_str(), device = %a.device, destination = %a.destination, count = a.count, id = %a.id, "alert: {}", a.summary);
            }
            if let Some(w) = self.out.alert_lines.as_mut() {
                let _ = serde_json::to_writer(&mut *w, &a);
                let _ = w.write_all(b"\n");
            }
            if let Some(f) = self.out.on_alert.as_mut() {
                f(&a, change);
            }
        }
        if let Some(w) = self.out.alert_lines.as_mut() {
            let _ = w.flush();
        }
        Ok(())
    }

    /// Sends the active blocks to the resolver and the RPZ file when they changed.
    fn push_blocks(&mut self) -> Result<(), PipelineError> {
        let Some(store) = self.store.as_ref() else {
            return Ok(());
        };
        let now = (self.clock)();
        let blocks = store.active_blocks(now)?;
        if self.last_blocks.as_ref() == Some(&blocks) {
            return Ok(());
        }
        if let Some(f) = self.out.on_blocks.as_mut() {
            f(&blocks);
        }
        if let Some((path, zone)) = &self.out.rpz_file {
            let text = dnsight_triage::rpz::render(zone, store.rpz_serial()?, &blocks);
            if let Err(e) = write_atomic(path, text.as_bytes()) {
                tracing::error!(error = %e, path = %path.display(), "writing the RPZ file failed");
            }
        }
        self.last_blocks = Some(blocks);
        Ok(())
    }

    fn store_mut(&mut self) -> Result<&mut Box<dyn TriageStore>, PipelineError> {
        self.store.as_mut().ok_or_else(no_store)
    }

    /// Applies an action to every alert its target covers. Each alert's change is committed to
    /// the store before the engine (and the resolver) see it.
    pub fn act(&mut self, req: &ActionRequest) -> Result<ActionResult, PipelineError> {
        self.stats.commands += 1;
        // alerts changed by the engine since the last tick go to the store first, so an action
        // on an alert raised a moment ago finds it
        self.flush_alerts(false)?;
        let ids = match &req.target {
            Target::Ids(ids) => ids.clone(),
            Target::Filter(f) => {
                let mut f = f.clone();
                f.limit = None;
                f.offset = 0;
                self.store_mut()?.alert_ids(&f)?
            }
        };
        let mut res = ActionResult {
            matched: ids.len() as u64,
            ..Default::default()
        };
        if req.dry_run {
            return Ok(res);
        }
        if let Some(n) = &req.note {
            if n.len() > 4096 {
                return Err(PipelineError::Invalid(
                    "the note is longer than 4096 bytes".into(),
                ));
            }
        }
        let mut blocks_changed = false;
        for id in ids {
            match self.act_one(&id, req, &mut blocks_changed) {
                Ok(mut v) => res.outcomes.append(&mut v),
                Err(PipelineError::Invalid(e))
                | Err(PipelineError::Triage(dnsight_triage::TriageError::NotFound(e)))
                | Err(PipelineError::Triage(dnsight_triage::TriageError::Invalid(e))) => {
                    res.errors.push(ActionError {
                        alert_id: id.clone(),
                        error: e,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        if blocks_changed {
            self.push_blocks()?;
        }
        self.acted_since_save |= !res.outcomes.is_empty();
        // the engine's own report of what these actions changed is already in the store
        self.flush_alerts(false)?;
        Ok(res)
    }

    fn act_one(
        &mut self,
        id: &str,
        req: &ActionRequest,
        blocks_changed: &mut bool,
    ) -> Result<Vec<ActOutcome>, PipelineError> {
        let now = (self.clock)();
        let actor = if req.actor.is_empty() {
            "unknown"
        } else {
            req.actor.as_str()
        };
        let note = req.note.as_deref();
        let store = self.store.as_mut().ok_or_else(no_store)?;
        let stored = store
            .get_alert(id)?
            .ok_or_else(|| PipelineError::Invalid(format!("no alert with id {id:?}")))?;
        let alert = &stored.alert;
        let mut out = Vec::new();
        match &req.action {
            Action::Ack { scope, until } => {
                if let Some(u) = until {
                    if *u <= now {
                        return Err(PipelineError::Invalid(
                            "--until is in the past: give a later time".into(),
                        ));
                    }
                }
                let scopes = resolve_scopes(alert, *scope)?;
                for sc in scopes {
                    let o = store.act(
                        id,
                        &Act::Ack {
                            scope: sc,
                            until: *until,
                        },
                        actor,
                        note,
                        now,
                    )?;
                    if let Some(rule) = &o.ack {
                        let closed = self.engine.acknowledge(&engine_ack(rule));
                        for other in closed.into_iter().filter(|c| c != id) {
                            if let Some(s) = store.get_alert(&other)? {
                                if s.alert.status.is_open() {
                                    out.push(store.act(
                                        &other,
                                        &Act::Ack {
                                            scope: rule.scope.clone(),
                                            until: *until,
                                        },
                                        actor,
                                        Some(&format!("covered by the acknowledgement of {id}")),
                                        now,
                                    )?);
                                }
                            }
                        }
                    }
                    out.push(o);
                }
                self.engine.set_status(id, Status::Acknowledged);
            }
            Action::Flag => {
                let o = store.act(id, &Act::Flag, actor, note, now)?;
                if self.engine.alert(id).is_none() {
                    self.engine.reopen(stored.alert.clone());
                }
                self.engine.set_status(id, Status::Flagged);
                out.push(o);
            }
            Action::Block {
                scope,
                target,
                duration,
            } => {
                let scopes = resolve_scopes(alert, *scope)?;
                let name = match target {
                    BlockTarget::Domain => alert.destination.clone(),
                    BlockTarget::Exact => sample_name(alert).unwrap_or(alert.destination.clone()),
                };
                if name.is_empty() || name.parse::<IpAddr>().is_ok() {
                    return Err(PipelineError::Invalid(format!(
                        "alert {id} has no domain name to block (destination {:?})",
                        alert.destination
                    )));
                }
                if let Some(d) = duration {
                    if *d <= 0 {
                        return Err(PipelineError::Invalid("--for must be positive".into()));
                    }
                }
                for sc in scopes {
                    out.push(store.act(
                        id,
                        &Act::Block {
                            scope: sc,
                            name: name.clone(),
                            subdomains: *target == BlockTarget::Domain,
                            expires_at: duration.map(|d| now + d),
                        },
                        actor,
                        note,
                        now,
                    )?);
                }
                *blocks_changed = true;
                if self.engine.alert(id).is_some() {
                    self.engine.set_status(id, Status::Blocked);
                }
            }
            Action::Unblock => {
                let mine: Vec<i64> = store
                    .active_blocks(now)?
                    .into_iter()
                    .filter(|b| b.alert_id.as_deref() == Some(id) && !b.allow)
                    .map(|b| b.id)
                    .collect();
                if mine.is_empty() {
                    return Err(PipelineError::Invalid(format!(
                        "alert {id} has no active block"
                    )));
                }
                for b in mine {
                    store.remove_block(b, actor, now)?;
                }
                *blocks_changed = true;
                let o = store.act(id, &Act::Reopen, actor, note, now)?;
                for k in &o.ended_acks {
                    // not normal after all: its suppression ends (the baseline keeps what it
                    // learned)
                    self.engine.remove_ack(k.kind, &k.destination, &k.scope);
                }
                if self.engine.alert(id).is_some() {
                    self.engine.set_status(id, Status::Reopened);
                } else {
                    self.engine.reopen(stored.alert.clone());
                }
                out.push(o);
            }
            Action::Resolve { reason } => {
                let o = store.act(id, &Act::Resolve { reason: *reason }, actor, note, now)?;
                self.engine.set_status(id, Status::Resolved);
                out.push(o);
            }
            Action::Note => {
                if note.is_none_or(|n| n.trim().is_empty()) {
                    return Err(PipelineError::Invalid("a note needs text (--note)".into()));
                }
                out.push(store.act(id, &Act::Note, actor, note, now)?);
            }
            Action::Reopen => {
                let o = store.act(id, &Act::Reopen, actor, note, now)?;
                for k in &o.ended_acks {
                    // not normal after all: its suppression ends (the baseline keeps what it
                    // learned)
                    self.engine.remove_ack(k.kind, &k.destination, &k.scope);
                }
                if self.engine.alert(id).is_some() {
                    self.engine.set_status(id, Status::Reopened);
                } else {
                    self.engine.reopen(stored.alert.clone());
                }
                out.push(o);
            }
        }
        Ok(out)
    }

    pub fn add_block(&mut self, b: &NewBlock, actor: &str) -> Result<BlockRule, PipelineError> {
        self.stats.commands += 1;
        let now = (self.clock)();
        let r = self.store_mut()?.add_block(b, actor, now)?;
        self.push_blocks()?;
        Ok(r)
    }

    pub fn remove_block(&mut self, id: i64, actor: &str) -> Result<BlockRule, PipelineError> {
        self.stats.commands += 1;
        let now = (self.clock)();
        let r = self.store_mut()?.remove_block(id, actor, now)?;
        self.push_blocks()?;
        Ok(r)
    }

    fn command(&mut self, c: Cmd) -> bool {
        match c {
            Cmd::Act(req, tx) => {
                let _ = tx.send(self.act(&req));
            }
            Cmd::AddBlock(b, actor, tx) => {
                let _ = tx.send(self.add_block(&b, &actor));
            }
            Cmd::RemoveBlock(id, actor, tx) => {
                let _ = tx.send(self.remove_block(id, &actor));
            }
            Cmd::ReloadIntel(tx) => {
                self.stats.commands += 1;
                let r = match self.reload_intel(true) {
                    None => Err(PipelineError::Invalid(
                        "no intel feeds are configured".into(),
                    )),
                    Some(Ok(s)) => Ok(s),
                    Some(Err(e)) => Err(PipelineError::Invalid(e)),
                };
                let _ = tx.send(r);
            }
            Cmd::Devices(tx) => {
                let _ = tx.send(self.engine.devices());
            }
            Cmd::Device(ip, tx) => {
                let _ = tx.send(self.engine.device(ip));
            }
            Cmd::Destination(name, tx) => {
                let _ = tx.send(self.engine.destination(&name));
            }
            Cmd::Stats(tx) => {
                let _ = tx.send(self.stats());
            }
            Cmd::Geo(tx) => {
                let _ = tx.send(self.engine.config().geoip.clone());
            }
            Cmd::Rules(tx) => {
                let _ = tx.send(crate::RulesView::of(self.engine.config()));
            }
            Cmd::Stop => return false,
        }
        true
    }
}

/// Engine updates → store: every update in one upsert, the engine's own closings (idle, the
/// bound of live alerts) included, so an alert raised and let go of between two ticks is kept
/// and the stored copy is the final one (`evidence.closed = "expired"`); then those closings
/// are resolved as expired in the store (audited as `system`).
fn write_updates(
    store: &mut dyn TriageStore,
    updates: &[Alert],
    changes: &mut [Change],
    now: Secs,
) -> Result<(), PipelineError> {
    let got = store.upsert_alerts(updates, now)?;
    for (c, g) in changes.iter_mut().zip(got) {
        *c = g;
    }
    for a in updates.iter().filter(|a| is_expired(a)) {
        if store
            .get_alert(&a.id)?
            .is_some_and(|s| s.alert.status.is_open())
        {
            store.act(
                &a.id,
                &Act::Resolve {
                    reason: Reason::Expired,
                },
                "system",
                Some("quiet past the idle window"),
                now,
            )?;
        }
    }
    Ok(())
}

/// Keeps the latest copy of each alert, in order (an alert can be reported twice: it left and
/// came back with the same id, or an earlier write of it failed).
fn latest_only(v: &mut Vec<Alert>) {
    let mut seen = HashSet::with_capacity(v.len());
    let keep: Vec<bool> = v.iter().rev().map(|a| seen.insert(a.id.clone())).collect();
    let mut k = keep.into_iter().rev();
    v.retain(|_| k.next().unwrap_or(true));
}

fn no_store() -> PipelineError {
    PipelineError::Invalid("actions need a state directory (run with --state DIR)".to_string())
}

fn is_expired(a: &Alert) -> bool {
    a.status == Status::Resolved
        && a.evidence.get("closed").and_then(|v| v.as_str()) == Some("expired")
}

/// The scopes an action on `alert` covers.
fn resolve_scopes(alert: &Alert, sel: ScopeSel) -> Result<Vec<Scope>, PipelineError> {
    Ok(match sel {
        ScopeSel::All => vec![Scope::All],
        ScopeSel::Group => match &alert.group {
            Some(g) => vec![Scope::Group(g.clone())],
            None => {
                return Err(PipelineError::Invalid(format!(
                    "alert {} has no single group (its devices are in none or several): use --scope device or --scope all",
                    alert.id
                )))
            }
        },
        ScopeSel::Device => {
            let mut v: Vec<Scope> = Vec::new();
            let devs = if alert.devices.is_empty() {
                std::slice::from_ref(&alert.device)
            } else {
                &alert.devices[..]
            };
            for d in devs {
                if let Ok(ip) = d.parse::<IpAddr>() {
                    let s = Scope::Device(ip);
                    if !v.contains(&s) {
                        v.push(s);
                    }
                }
            }
            if v.is_empty() {
                return Err(PipelineError::Invalid(format!(
                    "alert {} names no device address",
                    alert.id
                )));
            }
            v
        }
    })
}

/// The first sample query's name (`qname TYPE RCODE`).
fn sample_name(a: &Alert) -> Option<String> {
    let s = a
        .evidence
        .get("sample_queries")?
        .as_array()?
        .first()?
        .as_str()?;
    let n = s.split_whitespace().next()?;
    (!n.is_empty()).then(|| n.trim_end_matches('.').to_string())
}

fn engine_ack(r: &dnsight_triage::AckRule) -> dnsight_engine::engine::Ack {
    dnsight_engine::engine::Ack {
        kind: r.kind,
        destination: r.destination.clone(),
        scope: r.scope.clone(),
        until: r.until,
        detail: r.detail.clone(),
    }
}

fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

type Reply<T> = Sender<Result<T, PipelineError>>;

enum Cmd {
    Act(ActionRequest, Reply<ActionResult>),
    AddBlock(NewBlock, String, Reply<BlockRule>),
    RemoveBlock(i64, String, Reply<BlockRule>),
    ReloadIntel(Reply<String>),
    Devices(Sender<Vec<DeviceSummary>>),
    Device(IpAddr, Sender<Option<DeviceView>>),
    Destination(String, Sender<Option<DestinationView>>),
    Stats(Sender<PipelineStats>),
    Rules(Sender<crate::RulesView>),
    Geo(Sender<Option<Arc<dnsight_engine::Geo>>>),
    Stop,
}

/// Talks to the running pipeline (API, CLI, notifier). Every call waits for the actor's
/// answer; an action's answer comes after its store commit.
#[derive(Clone)]
pub struct Handle {
    tx: Sender<Cmd>,
}

impl Handle {
    fn call<T>(&self, make: impl FnOnce(Sender<T>) -> Cmd) -> Result<T, PipelineError> {
        let (tx, rx) = bounded(1);
        self.tx.send(make(tx)).map_err(|_| PipelineError::Stopped)?;
        rx.recv().map_err(|_| PipelineError::Stopped)
    }
    pub fn act(&self, req: ActionRequest) -> Result<ActionResult, PipelineError> {
        self.call(|tx| Cmd::Act(req, tx))?
    }
    pub fn add_block(&self, b: NewBlock, actor: &str) -> Result<BlockRule, PipelineError> {
        self.call(|tx| Cmd::AddBlock(b, actor.to_string(), tx))?
    }
    pub fn remove_block(&self, id: i64, actor: &str) -> Result<BlockRule, PipelineError> {
        self.call(|tx| Cmd::RemoveBlock(id, actor.to_string(), tx))?
    }
    pub fn reload_intel(&self) -> Result<String, PipelineError> {
        self.call(Cmd::ReloadIntel)?
    }
    pub fn devices(&self) -> Result<Vec<DeviceSummary>, PipelineError> {
        self.call(Cmd::Devices)
    }
    pub fn device(&self, ip: IpAddr) -> Result<Option<DeviceView>, PipelineError> {
        self.call(|tx| Cmd::Device(ip, tx))
    }
    pub fn destination(&self, name: &str) -> Result<Option<DestinationView>, PipelineError> {
        self.call(|tx| Cmd::Destination(name.to_string(), tx))
    }
    pub fn stats(&self) -> Result<PipelineStats, PipelineError> {
        self.call(Cmd::Stats)
    }
    /// The GeoIP databases the engine uses now (None: none configured), for lookups off the
    /// actor thread (the dashboard's countries of a destination's answers).
    pub fn geo(&self) -> Result<Option<Arc<dnsight_engine::Geo>>, PipelineError> {
        self.call(Cmd::Geo)
    }
    /// The detection rules and exemptions in force.
    pub fn rules(&self) -> Result<crate::RulesView, PipelineError> {
        self.call(Cmd::Rules)
    }
}

/// Feeds event batches to the running pipeline (cheap to clone: one per source).
#[derive(Clone)]
pub struct Producer {
    tx: Sender<Vec<DnsEvent>>,
    sources: crate::Sources,
}

impl Producer {
    /// The meter of a source feeding this pipeline (see [`crate::Sources::register`]).
    pub fn meter(&self, name: &str, kind: &str) -> crate::SourceMeter {
        self.sources.register(name, kind)
    }
    /// The ingestion-health registry of this pipeline.
    pub fn sources(&self) -> crate::Sources {
        self.sources.clone()
    }
    /// Blocks while the queue is full (backpressure); false once the pipeline has stopped.
    pub fn send(&self, batch: Vec<DnsEvent>) -> bool {
        batch.is_empty() || self.tx.send(batch).is_ok()
    }
    /// Never blocks: false when the queue is full or the pipeline stopped (the batch is
    /// returned to the caller to count as dropped).
    pub fn try_send(&self, batch: Vec<DnsEvent>) -> Result<(), Vec<DnsEvent>> {
        self.tx.try_send(batch).map_err(|e| e.into_inner())
    }
    /// Waits at most `wait` for room in the queue; the batch comes back when there was none
    /// (or the pipeline stopped).
    pub fn send_timeout(
        &self,
        batch: Vec<DnsEvent>,
        wait: std::time::Duration,
    ) -> Result<(), Vec<DnsEvent>> {
        self.tx
            .send_timeout(batch, wait)
            .map_err(|e| e.into_inner())
    }
}

/// The running actor.
pub struct Running {
    handle: Handle,
    producer: Producer,
    thread: std::thread::JoinHandle<Pipeline>,
}

impl Running {
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
    pub fn producer(&self) -> Producer {
        self.producer.clone()
    }
    /// Stops after the events already queued (stop the producers first), writes the final
    /// alert states, saves, and hands the pipeline back (for reports).
    pub fn stop(self) -> Pipeline {
        let Running {
            handle,
            producer,
            thread,
        } = self;
        drop(producer);
        let _ = handle.tx.send(Cmd::Stop);
        match thread.join() {
            Ok(p) => p,
            Err(e) => std::panic::resume_unwind(e),
        }
    }
}

/// Starts the actor thread.
pub fn spawn(mut p: Pipeline) -> std::io::Result<Running> {
    let (cmd_tx, cmd_rx) = unbounded::<Cmd>();
    let (ev_tx, ev_rx) = bounded::<Vec<DnsEvent>>(p.cfg.queue_batches.max(1));
    let sources = p.sources();
    let thread = std::thread::Builder::new()
        .name("dnsight-pipeline".into())
        .spawn(move || {
            run(&mut p, &cmd_rx, &ev_rx);
            p.finish();
            p
        })?;
    Ok(Running {
        handle: Handle { tx: cmd_tx },
        producer: Producer { tx: ev_tx, sources },
        thread,
    })
}

fn run(p: &mut Pipeline, cmds: &Receiver<Cmd>, events: &Receiver<Vec<DnsEvent>>) {
    let tick = p.cfg.tick.max(Duration::from_millis(10));
    let mut next_tick = Instant::now() + tick;
    let mut stopping = false;
    let mut events_open = true;
    loop {
        // commands first: an action never waits behind the event backlog
        while let Ok(c) = cmds.try_recv() {
            if !p.command(c) {
                stopping = true;
            }
        }
        if Instant::now() >= next_tick {
            p.tick();
            next_tick = Instant::now() + tick;
        }
        if stopping {
            // what is already queued is analysed before the final flush
            while let Ok(b) = events.try_recv() {
                p.observe(&b);
            }
            return;
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        if events_open {
            crossbeam_channel::select! {
                recv(cmds) -> c => match c {
                    Ok(c) => if !p.command(c) { stopping = true },
                    Err(_) => stopping = true,
                },
                recv(events) -> b => match b {
                    Ok(b) => p.observe(&b),
                    // every producer is gone: keep serving commands and ticks until Stop
                    Err(_) => events_open = false,
                },
                default(wait) => {}
            }
        } else {
            match cmds.recv_timeout(wait) {
                Ok(c) => {
                    if !p.command(c) {
                        stopping = true
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stopping = true,
            }
        }
    }
}
