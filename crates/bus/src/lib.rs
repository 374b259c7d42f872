//! dnsight-bus: sensors publish their events to NATS JetStream.
//!
//! Events are grouped by partition ([`dnsight_model::partition`] of the client address, `P`
//! partitions, default 64), encoded in batches ([`codec`]: compact, versioned) and published
//! to the subject `PREFIX.P` (default `dnsight.events.P`) of one stream (default
//! `DNSIGHT_EVENTS`, subjects `PREFIX.>`, created when missing), each message with a
//! `Nats-Msg-Id` unique per sensor run and batch so JetStream drops a message sent twice within
//! its duplicate window.
//!
//! [`Publisher`] is synchronous for its callers (a resolver's event thread, a passive source);
//! one background thread owns the NATS connection. A batch is published and its ack awaited
//! before the next (one in flight, so a stream partition's messages are stored in the order
//! they were made). When NATS is unreachable, or an ack does not come within `ack_timeout`,
//! the batch and every later one go to the bounded on-disk [`spool`] instead; the spool is
//! replayed from its head, in order, as soon as a publish succeeds again, and new batches queue
//! behind it until it is empty. What does not fit in the spool is counted as dropped
//! ([`BusStats::dropped_events`]).
//!
//! The workers' side: [`lease`] (a group of workers sharing the partitions with leases in a
//! key-value bucket, and a leader [`lease::Election`]) and [`consume`] (each partition read from
//! the position of its checkpoint, saved with the partition's engine state in an object store;
//! events merged in time order), and [`topic`] (the streams between the workers and the
//! correlator).

pub mod codec;
pub mod consume;
pub mod lease;
pub mod spool;
pub mod testing;
pub mod topic;

/// A JetStream context (what [`consume::connect`] returns).
pub use async_nats::jetstream::Context as JetStream;

use dnsight_model::DnsEvent;
use spool::{Msg, Spool};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a sensor publishes (the `[bus]` section).
#[derive(Clone, Debug, PartialEq)]
pub struct BusConfig {
    /// NATS server URL(s), e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    pub stream: String,
    /// Subjects are `PREFIX.P`.
    pub subject_prefix: String,
    pub partitions: u32,
    /// A partition's batch is published when it holds this many events...
    pub batch_events: usize,
    /// ...or when its oldest event waited this long.
    pub max_delay: Duration,
    /// Directory of the spool file.
    pub spool_dir: PathBuf,
    /// Most bytes the spool holds; more is dropped (counted).
    pub spool_max_bytes: u64,
    pub ack_timeout: Duration,
    /// JetStream's duplicate window of the stream (when this publisher creates it).
    pub duplicate_window: Duration,
    /// Names this sensor in message ids (with the start time, so a restart never reuses one).
    pub sensor: String,
    /// The workers send their findings and org-wide changes to `dnsight correlator` (which
    /// writes the alerts) instead of writing alerts themselves.
    pub correlator: bool,
}

impl BusConfig {
    pub fn new(url: &str, spool_dir: PathBuf) -> BusConfig {
        BusConfig {
            url: url.to_string(),
            stream: "DNSIGHT_EVENTS".into(),
            subject_prefix: "dnsight.events".into(),
            partitions: dnsight_model::DEFAULT_PARTITIONS,
            batch_events: 1000,
            max_delay: Duration::from_millis(100),
            spool_dir,
            spool_max_bytes: 1 << 30,
            ack_timeout: Duration::from_secs(2),
            duplicate_window: Duration::from_secs(600),
            sensor: std::env::var("HOSTNAME").unwrap_or_else(|_| "sensor".into()),
            correlator: false,
        }
    }
    /// The subject of partition `p`.
    pub fn subject(&self, p: u32) -> String {
        format!("{}.{p}", self.subject_prefix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus spool in {0}: {1}")]
    Spool(PathBuf, std::io::Error),
    #[error("starting the bus thread: {0}")]
    Thread(std::io::Error),
    #[error("the bus: {0}")]
    Config(String),
}

/// Counters of a publisher (shared with its thread).
#[derive(Debug, Default)]
pub struct BusStats {
    pub published_events: AtomicU64,
    pub published_batches: AtomicU64,
    /// Batches JetStream said it already had (a replay after a lost ack).
    pub duplicate_batches: AtomicU64,
    pub spooled_events: AtomicU64,
    pub replayed_events: AtomicU64,
    pub dropped_events: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub connected: AtomicBool,
}

/// A copy of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BusSnapshot {
    pub published_events: u64,
    pub published_batches: u64,
    pub duplicate_batches: u64,
    pub spooled_events: u64,
    pub replayed_events: u64,
    pub dropped_events: u64,
    pub spool_bytes: u64,
    pub connected: bool,
}

impl BusStats {
    pub fn snapshot(&self) -> BusSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BusSnapshot {
            published_events: g(&self.published_events),
            published_batches: g(&self.published_batches),
            duplicate_batches: g(&self.duplicate_batches),
            spooled_events: g(&self.spooled_events),
            replayed_events: g(&self.replayed_events),
            dropped_events: g(&self.dropped_events),
            spool_bytes: g(&self.spool_bytes),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}

/// Publishes events (see the crate doc).
pub struct Publisher {
    cfg: BusConfig,
    tx: Option<tokio::sync::mpsc::Sender<Msg>>,
    bufs: Vec<(Vec<DnsEvent>, Option<Instant>)>,
    run: String,
    seq: u64,
    enc: codec::Encoder,
    stats: Arc<BusStats>,
    thread: Option<std::thread::JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

impl Publisher {
    /// Opens the spool and starts the publishing thread. NATS need not be reachable: batches
    /// are spooled until it is.
    pub fn start(cfg: BusConfig) -> Result<Publisher, BusError> {
        if cfg.partitions == 0 || cfg.partitions > 65_536 {
            return Err(BusError::Config(format!(
                "partitions = {}: use 1 to 65536",
                cfg.partitions
            )));
        }
        let spool = Spool::open(&cfg.spool_dir, cfg.spool_max_bytes)
            .map_err(|e| BusError::Spool(cfg.spool_dir.clone(), e))?;
        let stats = Arc::new(BusStats::default());
        stats
            .spool_bytes
            .store(spool.pending_bytes(), Ordering::Relaxed);
        let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(256);
        let done = Arc::new(AtomicBool::new(false));
        let (c2, s2, d2) = (cfg.clone(), stats.clone(), done.clone());
        let thread = std::thread::Builder::new()
            .name("dnsight-bus".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "the bus thread could not start its runtime");
                        return;
                    }
                };
                rt.block_on(pump(c2, spool, rx, s2));
                d2.store(true, Ordering::Relaxed);
            })
            .map_err(BusError::Thread)?;
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let run = format!(
            "{}-{}{:09}",
            cfg.sensor
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(64)
                .collect::<String>(),
            start.as_secs(),
            start.subsec_nanos()
        );
        Ok(Publisher {
            bufs: (0..cfg.partitions).map(|_| (Vec::new(), None)).collect(),
            cfg,
            tx: Some(tx),
            run,
            seq: 0,
            enc: codec::Encoder::default(),
            stats,
            thread: Some(thread),
            done,
        })
    }

    pub fn stats(&self) -> Arc<BusStats> {
        self.stats.clone()
    }

    /// Adds events; full batches go out (blocking while the bus thread is behind).
    pub fn publish(&mut self, events: &[DnsEvent]) {
        let now = Instant::now();
        for e in events {
            let p = dnsight_model::partition(e.client, self.cfg.partitions) as usize;
            let (buf, first) = &mut self.bufs[p];
            if buf.is_empty() {
                *first = Some(now);
            }
            buf.push(e.clone());
            if buf.len() >= self.cfg.batch_events {
                self.send(p);
            }
        }
        self.flush_due(now);
    }

    /// Sends the batches whose oldest event waited `max_delay` (call it now and then when
    /// idle; [`Publisher::publish`] does it too).
    pub fn flush_due(&mut self, now: Instant) {
        for p in 0..self.bufs.len() {
            if self.bufs[p]
                .1
                .is_some_and(|t| now.duration_since(t) >= self.cfg.max_delay)
            {
                self.send(p);
            }
        }
    }

    /// Sends every partial batch.
    pub fn flush(&mut self) {
        for p in 0..self.bufs.len() {
            self.send(p);
        }
    }

    fn send(&mut self, p: usize) {
        let (buf, first) = &mut self.bufs[p];
        *first = None;
        if buf.is_empty() {
            return;
        }
        let events = std::mem::take(buf);
        let mut payload = Vec::with_capacity(events.len() * 40);
        self.enc.encode(&events, &mut payload);
        self.seq += 1;
        let m = Msg {
            partition: p as u32,
            id: format!("{}-{}", self.run, self.seq),
            events: events.len() as u32,
            payload: payload.into(),
        };
        if let Some(tx) = &self.tx {
            if tx.blocking_send(m).is_err() {
                self.stats
                    .dropped_events
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// Flushes, then waits up to `wait` for the spool to be replayed and everything acked;
    /// returns the final counters (what is still spooled stays on disk for the next start).
    pub fn close(mut self, wait: Duration) -> BusSnapshot {
        self.flush();
        self.tx = None;
        let end = Instant::now() + wait;
        while !self.done.load(Ordering::Relaxed) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.done.load(Ordering::Relaxed) {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        self.stats.snapshot()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.flush();
        self.tx = None;
    }
}

/// The bus thread: live publishing, spooling, replay.
async fn pump(
    cfg: BusConfig,
    mut spool: Spool,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
    stats: Arc<BusStats>,
) {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(1000)))
        .connect(cfg.url.as_str())
        .await;
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(url = %cfg.url, error = %e, "the bus cannot use this NATS URL; every batch is spooled");
            // spool everything until the end
            while let Some(m) = rx.recv().await {
                to_spool(&mut spool, &m, &stats);
            }
            return;
        }
    };
    // give the first connection a moment before spooling what arrives
    let end = Instant::now() + Duration::from_secs(2);
    while client.connection_state() != async_nats::connection::State::Connected
        && Instant::now() < end
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut js = async_nats::jetstream::new(client.clone());
    js.set_timeout(cfg.ack_timeout);
    let mut stream_ok = false;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    // after a failed replay, the next try waits a little (new batches spool meanwhile)
    let mut retry_at = Instant::now();
    loop {
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        stats.connected.store(connected, Ordering::Relaxed);
        if connected && !stream_ok {
            stream_ok = ensure_stream(&js, &cfg).await;
        }
        let live = connected && stream_ok;
        if live && !spool.is_empty() && Instant::now() >= retry_at {
            // replay a slice of the spool, then look at new batches again
            for _ in 0..256 {
                let m = match spool.peek() {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "the bus spool is unreadable; emptying it (its events are counted dropped)");
                        drop_spool(&mut spool, &stats);
                        break;
                    }
                };
                match publish(&js, &cfg, &m).await {
                    Ok(dup) => {
                        if dup {
                            stats.duplicate_batches.fetch_add(1, Ordering::Relaxed);
                        }
                        stats.published_batches.fetch_add(1, Ordering::Relaxed);
                        stats
                            .published_events
                            .fetch_add(u64::from(m.events), Ordering::Relaxed);
                        stats
                            .replayed_events
                            .fetch_add(u64::from(m.events), Ordering::Relaxed);
                        if let Err(e) = spool.pop() {
                            tracing::error!(error = %e, "writing the bus spool position failed");
                        }
                        stats
                            .spool_bytes
                            .store(spool.pending_bytes(), Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "replaying the bus spool paused (NATS not answering)");
                        retry_at = Instant::now() + Duration::from_millis(500);
                        break;
                    }
                }
            }
            if spool.is_empty() {
                tracing::info!("the bus spool is replayed: publishing live again");
            }
        }
        if closing {
            // the sender is gone: replay what the spool holds while NATS answers (the caller
            // bounds how long it waits); what is left stays on disk for the next start
            if spool.is_empty() || !live {
                return;
            }
            tick.tick().await;
            continue;
        }
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    if live && spool.is_empty() {
                        match publish(&js, &cfg, &m).await {
                            Ok(dup) => {
                                if dup {
                                    stats.duplicate_batches.fetch_add(1, Ordering::Relaxed);
                                }
                                stats.published_batches.fetch_add(1, Ordering::Relaxed);
                                stats.published_events.fetch_add(u64::from(m.events), Ordering::Relaxed);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "publishing to NATS failed: spooling to disk until it answers");
                                to_spool(&mut spool, &m, &stats);
                            }
                        }
                    } else {
                        to_spool(&mut spool, &m, &stats);
                    }
                }
                None => closing = true,
            },
            _ = tick.tick() => {}
        }
    }
}

async fn ensure_stream(js: &async_nats::jetstream::Context, cfg: &BusConfig) -> bool {
    let sc = async_nats::jetstream::stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![format!("{}.>", cfg.subject_prefix)],
        storage: async_nats::jetstream::stream::StorageType::File,
        duplicate_window: cfg.duplicate_window,
        ..Default::default()
    };
    match js.get_or_create_stream(sc).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(stream = %cfg.stream, error = %e, "the JetStream stream is not ready yet");
            false
        }
    }
}

/// Publishes one message and waits for its ack; Ok(true) when JetStream had it already.
async fn publish(
    js: &async_nats::jetstream::Context,
    cfg: &BusConfig,
    m: &Msg,
) -> Result<bool, String> {
    let p = async_nats::jetstream::message::PublishMessage::build()
        .payload(m.payload.clone())
        .message_id(m.id.as_str());
    let fut = js
        .send_publish(cfg.subject(m.partition), p)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(cfg.ack_timeout, fut).await {
        Ok(Ok(ack)) => Ok(ack.duplicate),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no ack within {:?}", cfg.ack_timeout)),
    }
}

fn to_spool(spool: &mut Spool, m: &Msg, stats: &BusStats) {
    match spool.push(m) {
        Ok(true) => {
            stats
                .spooled_events
                .fetch_add(u64::from(m.events), Ordering::Relaxed);
        }
        Ok(false) => {
            stats
                .dropped_events
                .fetch_add(u64::from(m.events), Ordering::Relaxed);
        }
        Err(e) => {
            tracing::error!(error = %e, "writing the bus spool failed: the batch is dropped");
            stats
                .dropped_events
                .fetch_add(u64::from(m.events), Ordering::Relaxed);
        }
    }
    stats
        .spool_bytes
        .store(spool.pending_bytes(), Ordering::Relaxed);
}

fn drop_spool(spool: &mut Spool, stats: &BusStats) {
    loop {
        match spool.peek() {
            Ok(Some(m)) => {
                stats
                    .dropped_events
                    .fetch_add(u64::from(m.events), Ordering::Relaxed);
                if spool.pop().is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}
