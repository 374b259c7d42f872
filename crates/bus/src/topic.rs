//! A topic: one JetStream stream with one subject, for the messages between a deployment's
//! workers and its correlator (each worker's epochs to the correlator, the correlator's
//! org-wide updates back to every worker). Payloads are opaque bytes here; each message is
//! published with its ack awaited, so the stream holds them in the order they were sent, and
//! read from any stream sequence with an ordered consumer (a reader restarts where it
//! stopped when NATS goes away).

use futures_util::StreamExt;
use std::time::Duration;

/// The largest payload a topic message carries (NATS's default limit is 1 MiB): a producer
/// cuts what is larger (see the users).
pub const MAX_PAYLOAD: usize = 900 * 1024;

#[derive(Clone)]
pub struct Topic {
    js: async_nats::jetstream::Context,
    stream: String,
    subject: String,
}

impl Topic {
    /// Opens the stream `stream` (subject `subject`), creating it when missing (file storage,
    /// messages kept for `max_age`).
    pub async fn open(
        js: &async_nats::jetstream::Context,
        stream: &str,
        subject: &str,
        max_age: Duration,
    ) -> Result<Topic, String> {
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.to_string(),
            subjects: vec![subject.to_string()],
            storage: async_nats::jetstream::stream::StorageType::File,
            max_age,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("opening the stream {stream}: {e}"))?;
        Ok(Topic {
            js: js.clone(),
            stream: stream.to_string(),
            subject: subject.to_string(),
        })
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Publishes one message and waits for the stream to store it; returns its sequence.
    pub async fn publish(&self, payload: Vec<u8>) -> Result<u64, String> {
        if payload.len() > MAX_PAYLOAD {
            return Err(format!(
                "a {} message of {} bytes is over the limit of {MAX_PAYLOAD}",
                self.stream,
                payload.len()
            ));
        }
        let ack = self
            .js
            .publish(self.subject.clone(), payload.into())
            .await
            .map_err(|e| format!("publishing to {}: {e}", self.stream))?;
        let ack = tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .map_err(|_| format!("publishing to {}: no ack within 10 s", self.stream))?
            .map_err(|e| format!("publishing to {}: {e}", self.stream))?;
        Ok(ack.sequence)
    }

    /// The sequence of the stream's last message (0 when it has none).
    pub async fn last_seq(&self) -> Result<u64, String> {
        let mut s = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| format!("reading the stream {}: {e}", self.stream))?;
        let info = s
            .info()
            .await
            .map_err(|e| format!("reading the stream {}: {e}", self.stream))?;
        Ok(info.state.last_sequence)
    }

    /// Reads the topic from stream sequence `from` (1: its start) on `handle`'s runtime.
    pub fn read_from(&self, handle: &tokio::runtime::Handle, from: u64) -> TopicReader {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = handle.spawn(read(self.js.clone(), self.stream.clone(), from.max(1), tx));
        TopicReader { rx, task }
    }
}

/// Messages of a topic in stream order: (stream sequence, payload).
pub struct TopicReader {
    rx: tokio::sync::mpsc::Receiver<(u64, bytes::Bytes)>,
    task: tokio::task::JoinHandle<()>,
}

impl TopicReader {
    /// The next message if one is there.
    pub fn try_next(&mut self) -> Option<(u64, bytes::Bytes)> {
        self.rx.try_recv().ok()
    }

    /// The next message, waiting up to `wait` for it.
    pub fn next_within(&mut self, wait: Duration) -> Option<(u64, bytes::Bytes)> {
        let end = std::time::Instant::now() + wait;
        loop {
            if let Some(m) = self.try_next() {
                return Some(m);
            }
            if std::time::Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TopicReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read(
    js: async_nats::jetstream::Context,
    stream: String,
    mut next: u64,
    tx: tokio::sync::mpsc::Sender<(u64, bytes::Bytes)>,
) {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    loop {
        let s = match js.get_stream(&stream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(stream = %stream, error = %e, "opening a topic failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let c = match s
            .create_consumer(OrderedConfig {
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
                tracing::warn!(stream = %stream, error = %e, "creating a topic reader failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut msgs = match c.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(stream = %stream, error = %e, "reading a topic failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(m) = msgs.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(stream = %stream, error = %e, "reading a topic failed");
                    break;
                }
            };
            let Ok(info) = m.info() else { continue };
            let seq = info.stream_sequence;
            if seq < next {
                continue;
            }
            next = seq + 1;
            if tx.send((seq, m.payload.clone())).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
