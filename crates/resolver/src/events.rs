//! From query to [`DnsEvent`], off the hot path.
//!
//! Workers push one compact [`QueryRecord`] per query into a bounded lock-free queue
//! (crossbeam) with `try_send`: when the queue is full the record is dropped and counted, so the
//! resolver never waits for analysis. The consumer polls rather than parks (see [`consume`]) so a
//! send never costs the worker a wake-up syscall. One consumer thread decodes the records fully (answers
//! included) into [`DnsEvent`]s and hands them to an [`EventSink`] (the engine, a JSON-lines
//! file, ...), flushing the sink whenever the queue runs empty.

use crate::stats::Stats;
use crate::wire;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use dnsight_model::{DnsEvent, Flags, Source, Transport, Ts, Verdict, VerdictAction};
use smallvec::SmallVec;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a worker records about one query (no decoding done yet).
#[derive(Debug, Clone)]
pub struct QueryRecord {
    pub ts_us: i64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
    pub id: u16,
    pub opcode: u8,
    pub qtype: u16,
    pub qclass: u16,
    /// Lowercased wire name (empty when the question did not parse).
    pub qname: SmallVec<[u8; 64]>,
    pub query_size: u32,
    pub action: VerdictAction,
    /// The list that decided (for blocks and allows).
    pub rule: Option<Arc<str>>,
    /// The response sent (empty when none was sent).
    pub response: SmallVec<[u8; 128]>,
    pub rtt_us: Option<u32>,
}

/// Receives the resolver's events on the consumer thread.
pub trait EventSink: Send {
    fn event(&mut self, ev: &DnsEvent);
    /// Called when the queue runs empty.
    fn flush(&mut self) {}
    /// Called once at shutdown, after the last event (default: flush).
    fn close(&mut self) {
        self.flush();
    }
}

/// Discards events.
pub struct NullSink;
impl EventSink for NullSink {
    fn event(&mut self, _ev: &DnsEvent) {}
}

/// Writes one JSON line per event.
pub struct JsonlSink<W: std::io::Write + Send>(pub W);
impl<W: std::io::Write + Send> EventSink for JsonlSink<W> {
    fn event(&mut self, ev: &DnsEvent) {
        let _ = serde_json::to_writer(&mut self.0, ev);
        let _ = self.0.write_all(b"\n");
    }
    fn flush(&mut self) {
        let _ = self.0.flush();
    }
}

/// Fans every event out to several sinks.
pub struct Tee(pub Vec<Box<dyn EventSink>>);
impl EventSink for Tee {
    fn event(&mut self, ev: &DnsEvent) {
        for s in &mut self.0 {
            s.event(ev);
        }
    }
    fn flush(&mut self) {
        for s in &mut self.0 {
            s.flush();
        }
    }
    fn close(&mut self) {
        for s in &mut self.0 {
            s.close();
        }
    }
}

/// The producer side held by workers.
#[derive(Clone)]
pub struct EventQueue {
    tx: Sender<Item>,
    stats: Arc<Stats>,
}

impl EventQueue {
    pub fn new(capacity: usize, stats: Arc<Stats>) -> (EventQueue, Receiver<Item>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        (EventQueue { tx, stats }, rx)
    }
    /// Never blocks: a full queue drops the record and counts it.
    pub fn push(&self, r: QueryRecord) {
        match self.tx.try_send(Item::Record(r)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What travels through the queue: the resolver's own compact records, or whole events from
/// passive sources running in the same process (dnstap, ...).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // records are the hot path: no box per query
pub enum Item {
    Record(QueryRecord),
    Events(Vec<DnsEvent>),
}

/// Lets passive sources feed events into the same consumer (and so the same engine).
#[derive(Clone)]
pub struct Injector {
    tx: Sender<Item>,
}

impl EventQueue {
    pub fn injector(&self) -> Injector {
        Injector {
            tx: self.tx.clone(),
        }
    }
}

impl Injector {
    /// Blocks while the queue is full (backpressure for passive sources, whose senders drop on
    /// their side); returns false once the resolver has shut down.
    pub fn send(&self, batch: Vec<DnsEvent>) -> bool {
        batch.is_empty() || self.tx.send(Item::Events(batch)).is_ok()
    }
}

/// Decodes a record into an event.
pub fn to_event(r: &QueryRecord) -> DnsEvent {
    let qname = wire::key_to_name(&{
        let mut k = r.qname.to_vec();
        k.extend_from_slice(&[0, 0, 0, 0, 0]);
        k
    });
    let mut ev = DnsEvent::new(Ts(r.ts_us), r.client.ip(), qname, r.qtype);
    ev.client_port = r.client.port();
    ev.server = r.server.ip();
    ev.server_port = r.server.port();
    ev.transport = r.transport;
    ev.id = r.id;
    ev.qclass = r.qclass;
    ev.opcode = r.opcode;
    ev.source = Source::Resolver;
    ev.query_size = Some(r.query_size);
    ev.rtt_us = r.rtt_us;
    if r.response.len() >= wire::HEADER_LEN {
        let flags = u16::from_be_bytes([r.response[2], r.response[3]]);
        ev.rcode = Some(flags & 0xf);
        ev.flags = Flags::from_header(flags);
        ev.response_size = Some(r.response.len() as u32);
        wire::decode_answers(&r.response, &mut ev.answers);
    } else {
        ev.rcode = None;
        ev.flags = Flags(Flags::RD);
        ev.response_size = None;
    }
    ev.verdict = Some(Verdict {
        action: r.action,
        rule: r.rule.as_deref().map(Into::into),
    });
    ev
}

/// Runs the consumer until every producer is gone.
pub fn consume(rx: Receiver<Item>, mut sink: Box<dyn EventSink>, stats: Arc<Stats>) {
    // The consumer never parks on the channel: a parked receiver makes every producer's send
    // a futex wake-up (a syscall and a context switch per query). It polls instead, sleeping
    // 1 ms when the queue is empty, backing off to 20 ms while idle; events wait at most that.
    let mut idle_ms = 1u64;
    loop {
        let r = match rx.try_recv() {
            Ok(r) => {
                idle_ms = 1;
                r
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {
                sink.flush();
                std::thread::sleep(std::time::Duration::from_millis(idle_ms));
                idle_ms = (idle_ms * 2).min(20);
                continue;
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => break,
        };
        match r {
            Item::Record(r) => {
                let ev = to_event(&r);
                sink.event(&ev);
                stats.events_out.fetch_add(1, Ordering::Relaxed);
            }
            Item::Events(evs) => {
                for ev in &evs {
                    sink.event(ev);
                }
                stats
                    .source_events
                    .fetch_add(evs.len() as u64, Ordering::Relaxed);
            }
        }
    }
    sink.close();
}
