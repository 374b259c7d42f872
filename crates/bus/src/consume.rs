//! The consumer side, minimal: a worker reads the partitions it owns from the stream, in each
//! partition's order, and hands the events to its engine.
//!
//! One durable pull consumer per partition (`DURABLE-P`, filter `PREFIX.P`, explicit acks), so a
//! restarted worker resumes after the last batch it acknowledged. A batch is acknowledged after
//! `deliver` accepted it (the engine has it queued, not yet saved): a worker killed between the
//! two sees the batches it had not acknowledged again (redelivered after `ack_wait`); batches
//! acknowledged but not yet in the engine's saved state are lost to it. Partition leases,
//! rebalancing
//! and checkpoints of the stream sequence with the engine's state are not built yet: the
//! partitions of a worker are given on its command line.

use crate::codec;
use dnsight_model::DnsEvent;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a worker reads.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub url: String,
    pub stream: String,
    pub subject_prefix: String,
    /// The partitions this worker owns.
    pub partitions: Vec<u32>,
    /// Consumers are named `DURABLE-P`.
    pub durable: String,
}

/// Counters of a consumer.
#[derive(Debug, Default)]
pub struct ConsumeStats {
    pub batches: AtomicU64,
    pub events: AtomicU64,
    /// Batches that did not decode (acknowledged and skipped, counted).
    pub bad_batches: AtomicU64,
}

/// Reads until `stop` is set (or `deliver` returns false), calling `deliver` with each batch's
/// partition and events, in each partition's stream order.
pub fn consume(
    cfg: &ConsumerConfig,
    stop: Arc<AtomicBool>,
    stats: Arc<ConsumeStats>,
    mut deliver: impl FnMut(u32, Vec<DnsEvent>) -> bool,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(cfg.url.as_str())
            .await
            .map_err(|e| format!("connecting to {}: {e}", cfg.url))?;
        let js = async_nats::jetstream::new(client);
        // the stream may not exist yet (no sensor has published): wait for it
        let stream = loop {
            match js.get_stream(&cfg.stream).await {
                Ok(s) => break s,
                Err(e) => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    tracing::info!(stream = %cfg.stream, error = %e, "waiting for the JetStream stream");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let mut consumers = Vec::new();
        for &p in &cfg.partitions {
            let name = format!("{}-{p}", cfg.durable);
            let c = stream
                .get_or_create_consumer(
                    &name,
                    async_nats::jetstream::consumer::pull::Config {
                        durable_name: Some(name.clone()),
                        filter_subject: format!("{}.{p}", cfg.subject_prefix),
                        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: Duration::from_secs(30),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("the consumer {name}: {e}"))?;
            consumers.push((p, c));
        }
        while !stop.load(Ordering::Relaxed) {
            let mut idle = true;
            for (p, c) in &consumers {
                let mut msgs = match c
                    .fetch()
                    .max_messages(64)
                    .expires(Duration::from_millis(50))
                    .messages()
                    .await
                {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "fetching from JetStream failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                while let Some(m) = msgs.next().await {
                    let Ok(m) = m else { break };
                    idle = false;
                    match codec::decode(&m.payload) {
                        Ok(evs) => {
                            stats.batches.fetch_add(1, Ordering::Relaxed);
                            stats.events.fetch_add(evs.len() as u64, Ordering::Relaxed);
                            if !deliver(*p, evs) {
                                return Ok(());
                            }
                        }
                        Err(e) => {
                            stats.bad_batches.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(partition = p, subject = %m.subject, error = %e, "a bus batch did not decode: skipped");
                        }
                    }
                    if let Err(e) = m.ack().await {
                        tracing::warn!(partition = p, error = %e, "acknowledging a batch failed (it will be redelivered)");
                    }
                }
            }
            if idle {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    })
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
    use super::parse_partitions;

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
}
