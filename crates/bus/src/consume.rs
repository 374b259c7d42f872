//! The consumer side: a worker reads the partitions it owns from the stream, each from the
//! position of its checkpoint, and hands the events to its engine merged in time order.
//!
//! **Positions, not acknowledgements.** A partition's progress is a [`Position`]: the stream
//! sequence of the next message to read and how many events of that message are already in
//! the state. It is saved *with* the partition's engine state, in one object of the
//! checkpoint bucket ([`Checkpoints`]), so the two can never disagree: a worker that claims the
//! partition (after a `kill -9`, on another machine) loads the state and reads the stream from
//! exactly there — nothing counted twice, nothing lost, whatever was or was not acknowledged.
//! The readers are ordered consumers (ephemeral, no acks, `DeliverPolicy::ByStartSequence`),
//! one per partition, filtered to its subject.
//!
//! **Merged in time order.** A single process reading a file sees the organisation's events in
//! time order; a worker reading 32 partitions would otherwise see each partition's backlog
//! one after the other (hours apart during a replay), and the engine's minute ticks, which
//! sweep idle detector windows, would run ahead for the partitions read later. [`Reader`]
//! therefore merges: it hands out the earliest buffered event of its partitions, and does not
//! hand out anything while a partition that has more messages in the stream (the server's
//! pending count) has none buffered — so during a replay the engine sees the same order as one
//! process reading the events (ties broken by partition), and live it sees arrival order.
//! A partition blocked longer than [`Reader::max_block`] (a reader in trouble) stops holding
//! the others back.
//!
//! **Why JetStream for checkpoints.** Every worker already reaches NATS, wherever it runs; the
//! object store chunks a state of any size (a key-value value is bounded by the server's
//! `max_payload`, 1 MiB by default) and replaces an object atomically (the new chunks first,
//! then the metadata that names them), so a reader sees the previous checkpoint or the new one,
//! never a mix. A local directory would be lost with its machine; PostgreSQL is optional for a
//! worker (`[store]` may be SQLite).

use crate::codec;
use dnsight_model::DnsEvent;
use futures_util::StreamExt;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a partition's reading resumes: the stream sequence of the next message, and how many
/// events at the start of that message the state holds already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub next_seq: u64,
    pub skip: u32,
}

impl Default for Position {
    fn default() -> Position {
        Position {
            next_seq: 1,
            skip: 0,
        }
    }
}

/// Counters of a reader.
#[derive(Debug, Default)]
pub struct ConsumeStats {
    pub batches: AtomicU64,
    pub events: AtomicU64,
    /// Batches that did not decode (skipped, counted).
    pub bad_batches: AtomicU64,
    /// Times a blocked partition stopped holding the others back.
    pub unblocked: AtomicU64,
}

/// Connects (retrying until NATS answers).
pub async fn connect(url: &str) -> Result<async_nats::jetstream::Context, String> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))?;
    Ok(async_nats::jetstream::new(client))
}

/// Checkpoint header: magic, version.
const MAGIC: &[u8; 4] = b"DNSK";
const VERSION: u8 = 1;

/// Partition checkpoints in a JetStream object store bucket: object `p-N` holds the position
/// and the engine's record of partition N (see the module doc).
pub struct Checkpoints {
    store: async_nats::jetstream::object_store::ObjectStore,
}

impl Checkpoints {
    /// Opens the bucket, creating it when missing (file storage).
    pub async fn open(
        js: &async_nats::jetstream::Context,
        bucket: &str,
    ) -> Result<Checkpoints, String> {
        let store = match js.get_object_store(bucket).await {
            Ok(s) => s,
            Err(_) => js
                .create_object_store(async_nats::jetstream::object_store::Config {
                    bucket: bucket.to_string(),
                    storage: async_nats::jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("creating the checkpoint bucket {bucket}: {e}"))?,
        };
        Ok(Checkpoints { store })
    }

    fn name(p: u32) -> String {
        format!("p-{p}")
    }

    /// The checkpoint of partition `p` (None: never saved, start at the stream's beginning).
    pub async fn load(&self, p: u32) -> Result<Option<(Position, Vec<u8>)>, String> {
        self.load_named(&Self::name(p)).await
    }

    /// Saves partition `p`'s state with its position (replacing the previous checkpoint).
    pub async fn save(&self, p: u32, pos: Position, state: &[u8]) -> Result<(), String> {
        self.save_named(&Self::name(p), pos, state).await
    }

    /// A checkpoint kept under another name than a partition's (the correlator's state, the
    /// org snapshot for workers): the same format, a position and a state.
    pub async fn load_named(&self, name: &str) -> Result<Option<(Position, Vec<u8>)>, String> {
        let p = name;
        use tokio::io::AsyncReadExt;
        let mut obj = match self.store.get(name).await {
            Ok(o) => o,
            Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(format!("reading the checkpoint {p}: {e}")),
        };
        let mut b = Vec::new();
        obj.read_to_end(&mut b)
            .await
            .map_err(|e| format!("reading the checkpoint {p}: {e}"))?;
        decode_checkpoint(&b)
            .map(|(pos, state)| Some((pos, state.to_vec())))
            .ok_or_else(|| format!("the checkpoint {p} is damaged"))
    }

    pub async fn save_named(&self, name: &str, pos: Position, state: &[u8]) -> Result<(), String> {
        let p = name;
        let b = encode_checkpoint(pos, state);
        self.store
            .put(name, &mut &b[..])
            .await
            .map(|_| ())
            .map_err(|e| format!("saving the checkpoint {p}: {e}"))
    }
}

pub fn encode_checkpoint(pos: Position, state: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(17 + state.len());
    b.extend_from_slice(MAGIC);
    b.push(VERSION);
    b.extend_from_slice(&pos.next_seq.to_le_bytes());
    b.extend_from_slice(&pos.skip.to_le_bytes());
    b.extend_from_slice(state);
    b
}

pub fn decode_checkpoint(b: &[u8]) -> Option<(Position, &[u8])> {
    if b.len() < 17 || &b[..4] != MAGIC || b[4] != VERSION {
        return None;
    }
    let next_seq = u64::from_le_bytes(b[5..13].try_into().ok()?);
    let skip = u32::from_le_bytes(b[13..17].try_into().ok()?);
    Some((Position { next_seq, skip }, &b[17..]))
}

enum Item {
    /// Messages the server had for this reader when it started.
    Pending(u64),
    Msg {
        seq: u64,
        pending: u64,
        /// The payload did not decode (no events; counted as a bad batch).
        bad: bool,
        events: Vec<DnsEvent>,
    },
}

struct Part {
    rx: tokio::sync::mpsc::Receiver<Item>,
    /// Messages read, not yet handed out whole: (stream sequence, events of it dropped before
    /// `events` because the state had them, events).
    queue: VecDeque<(u64, u32, Vec<DnsEvent>)>,
    /// Events of the front message handed out already.
    pos: usize,
    /// Where the next unread message starts (`pos` of the front message when there is one).
    next: Position,
    /// Messages the server still has for this reader (None: not known yet).
    pending: Option<u64>,
    /// Events to drop from the first message, when it is the one the position names.
    skip_first: Option<Position>,
    blocked_since: Option<Instant>,
    /// Counted as unblocked (once per blocking).
    gave_up: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Part {
    /// Drops exhausted messages at the front and sets the position.
    fn settle(&mut self) {
        while let Some((seq, off, evs)) = self.queue.front() {
            if self.pos < evs.len() {
                self.next = Position {
                    next_seq: *seq,
                    skip: *off + self.pos as u32,
                };
                return;
            }
            let seq = *seq;
            self.queue.pop_front();
            self.pos = 0;
            self.next = Position {
                next_seq: seq + 1,
                skip: 0,
            };
        }
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads partitions from their positions and merges their events in time order (see the
/// module doc). Synchronous for its caller; the readers run on `handle`'s runtime.
pub struct Reader {
    handle: tokio::runtime::Handle,
    js: async_nats::jetstream::Context,
    stream: String,
    subject_prefix: String,
    parts: BTreeMap<u32, Part>,
    stats: Arc<ConsumeStats>,
    /// How long a partition with pending messages but none buffered may hold the others back.
    pub max_block: Duration,
}

impl Reader {
    pub fn new(
        handle: tokio::runtime::Handle,
        js: async_nats::jetstream::Context,
        stream: &str,
        subject_prefix: &str,
        stats: Arc<ConsumeStats>,
    ) -> Reader {
        Reader {
            handle,
            js,
            stream: stream.to_string(),
            subject_prefix: subject_prefix.to_string(),
            parts: BTreeMap::new(),
            stats,
            max_block: Duration::from_secs(2),
        }
    }

    /// Starts reading partition `p` at `pos` (a partition read already is restarted there).
    pub fn add(&mut self, p: u32, pos: Position) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (js, stream, subject) = (
            self.js.clone(),
            self.stream.clone(),
            format!("{}.{p}", self.subject_prefix),
        );
        let task = self
            .handle
            .spawn(read_partition(js, stream, subject, pos.next_seq, tx));
        self.parts.insert(
            p,
            Part {
                rx,
                queue: VecDeque::new(),
                pos: 0,
                next: pos,
                pending: None,
                skip_first: (pos.skip > 0).then_some(pos),
                blocked_since: None,
                gave_up: false,
                task,
            },
        );
    }

    /// Stops reading `p`; returns where it stopped (what the engine has of it).
    pub fn remove(&mut self, p: u32) -> Option<Position> {
        self.parts.remove(&p).map(|x| x.next)
    }

    /// Where partition `p` stands: the engine holds everything before this position.
    pub fn position(&self, p: u32) -> Option<Position> {
        self.parts.get(&p).map(|x| x.next)
    }

    pub fn partitions(&self) -> Vec<u32> {
        self.parts.keys().copied().collect()
    }

    fn fill(&mut self) {
        for (p, part) in self.parts.iter_mut() {
            while let Ok(item) = part.rx.try_recv() {
                match item {
                    Item::Pending(n) => part.pending = Some(n),
                    Item::Msg {
                        seq,
                        pending,
                        bad,
                        mut events,
                    } => {
                        part.pending = Some(pending);
                        if seq < part.next.next_seq {
                            continue; // before the position (a reader restarted)
                        }
                        if bad {
                            self.stats.bad_batches.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut offset = 0u32;
                        if let Some(s) = part.skip_first.take() {
                            if s.next_seq == seq {
                                let k = (s.skip as usize).min(events.len());
                                events.drain(..k);
                                offset = k as u32;
                            } else {
                                tracing::warn!(partition = p, position = s.next_seq, first = seq, "the checkpoint's message is no longer in the stream: reading from the next one");
                            }
                        }
                        self.stats.batches.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .events
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        part.queue.push_back((seq, offset, events));
                    }
                }
            }
            part.settle();
        }
    }

    /// Up to `max` events of the partitions, merged in time order; waits up to `wait` when
    /// there is nothing to hand out. After it returns, [`Reader::position`] covers exactly
    /// the events handed out so far.
    pub fn next_batch(&mut self, max: usize, wait: Duration) -> Vec<DnsEvent> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            self.fill();
            let now = Instant::now();
            let mut blocked = false;
            for part in self.parts.values_mut() {
                let waits = part.queue.is_empty() && part.pending != Some(0);
                if !waits {
                    part.blocked_since = None;
                    continue;
                }
                let since = *part.blocked_since.get_or_insert(now);
                if now.duration_since(since) < self.max_block {
                    blocked = true;
                    part.gave_up = false;
                } else if !part.gave_up {
                    part.gave_up = true;
                    self.stats.unblocked.fetch_add(1, Ordering::Relaxed);
                }
            }
            if blocked {
                if !out.is_empty() || now >= deadline {
                    return out;
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            // the earliest event at the front of a partition
            let mut best: Option<(dnsight_model::Ts, u32)> = None;
            for (p, part) in &self.parts {
                if let Some((_, _, evs)) = part.queue.front() {
                    if let Some(e) = evs.get(part.pos) {
                        if best.is_none_or(|(t, _)| e.ts < t) {
                            best = Some((e.ts, *p));
                        }
                    }
                }
            }
            let Some((_, p)) = best else {
                if !out.is_empty() || now >= deadline {
                    return out;
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let Some(part) = self.parts.get_mut(&p) else {
                return out;
            };
            if let Some((_, _, evs)) = part.queue.front() {
                out.push(evs[part.pos].clone());
                part.pos += 1;
            }
            part.settle();
            if out.len() >= max {
                return out;
            }
        }
    }
}

/// One partition's reader task: an ordered consumer from `start`, decoded batches to `tx`.
async fn read_partition(
    js: async_nats::jetstream::Context,
    stream: String,
    subject: String,
    start: u64,
    tx: tokio::sync::mpsc::Sender<Item>,
) {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    let mut next = start.max(1);
    loop {
        let s = match js.get_stream(&stream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(stream = %stream, error = %e, "waiting for the JetStream stream");
                // nothing there yet: nothing pending, do not hold the other partitions back
                let _ = tx.try_send(Item::Pending(0));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let c = match s
            .create_consumer(OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: if next <= 1 {
                    DeliverPolicy::All
                } else {
                    DeliverPolicy::ByStartSequence {
                        start_sequence: next,
                    }
                },
                ..Default::default()
            })
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(subject = %subject, error = %e, "creating a stream reader failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if tx
            .send(Item::Pending(c.cached_info().num_pending))
            .await
            .is_err()
        {
            return;
        }
        let mut msgs = match c.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(subject = %subject, error = %e, "reading the stream failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(m) = msgs.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(subject = %subject, error = %e, "reading the stream failed");
                    break;
                }
            };
            let Ok(info) = m.info() else { continue };
            let (seq, pending) = (info.stream_sequence, info.pending);
            let (bad, events) = match codec::decode(&m.payload) {
                Ok(e) => (false, e),
                Err(e) => {
                    tracing::warn!(subject = %subject, seq, error = %e, "a bus batch did not decode: skipped");
                    (true, Vec::new())
                }
            };
            next = seq + 1;
            if tx
                .send(Item::Msg {
                    seq,
                    pending,
                    bad,
                    events,
                })
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `0-15,32,40-47` → partitions (each below `n`).
pub fn parse_partitions(s: &str, n: u32) -> Result<Vec<u32>, String> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u32 = a
            .parse()
            .map_err(|_| format!("{part:?} is not a partition or range"))?;
        let b: u32 = b
            .parse()
            .map_err(|_| format!("{part:?} is not a partition or range"))?;
        if a > b || b >= n {
            return Err(format!(
                "{part:?}: partitions are 0 to {} ([bus] partitions = {n})",
                n - 1
            ));
        }
        v.extend(a..=b);
    }
    v.sort_unstable();
    v.dedup();
    if v.is_empty() {
        return Err("no partition given".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_lists() {
        assert_eq!(
            parse_partitions("0-3,7, 2", 8).unwrap(),
            vec![0, 1, 2, 3, 7]
        );
        assert!(parse_partitions("8", 8).unwrap_err().contains("0 to 7"));
        assert!(parse_partitions("3-1", 8).is_err());
        assert!(parse_partitions("x", 8).is_err());
        assert!(parse_partitions("", 8).is_err());
    }

    #[test]
    fn checkpoint_records() {
        let pos = Position {
            next_seq: 12345,
            skip: 7,
        };
        let b = encode_checkpoint(pos, b"state");
        assert_eq!(decode_checkpoint(&b), Some((pos, &b"state"[..])));
        for n in 0..17 {
            assert_eq!(decode_checkpoint(&b[..n]), None);
        }
        let mut bad = b.clone();
        bad[0] = b'X';
        assert_eq!(decode_checkpoint(&bad), None);
    }
}
