//! Forwarding to upstream resolvers over UDP and TCP, with health and failover.
//!
//! Each exchange uses a fresh socket (a random source port chosen by the kernel) and a random
//! id; a response is accepted only if it comes from the upstream (connected socket), carries our
//! id, has QR set and repeats our question. Truncated answers are retried over TCP.
//!
//! Health: an upstream that fails is marked down and tried only after the healthy ones; a
//! background probe (`. NS`) marks it up again when it answers. So a dead upstream costs one
//! timeout, not one per query, and recovery needs no restart.

use crate::stats::Stats;
use crate::wire::{self, Question};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProto {
    /// UDP with TCP fallback on truncation.
    Udp,
    /// TCP only.
    Tcp,
    /// DNS over TLS (RFC 7858).
    Dot,
    /// DNS over HTTPS (RFC 8484) POST, over HTTP/2 when the server speaks it, else HTTP/1.1.
    Doh,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub addr: SocketAddr,
    pub proto: UpstreamProto,
    /// Name the TLS certificate must carry (DoT/DoH); default: the address.
    pub tls_name: Option<String>,
    /// DoH path (default `/dns-query`).
    pub path: Option<String>,
    /// Its AD bit is believed (it validates, and the path to it is trusted): see
    /// [`crate::dnssec`]. Otherwise AD is cleared from its answers.
    pub trusted: bool,
}

impl UpstreamSpec {
    pub fn udp(addr: SocketAddr) -> UpstreamSpec {
        UpstreamSpec {
            addr,
            proto: UpstreamProto::Udp,
            tls_name: None,
            path: None,
            trusted: false,
        }
    }
    fn tls_name(&self) -> String {
        self.tls_name
            .clone()
            .unwrap_or_else(|| self.addr.ip().to_string())
    }
}

struct Upstream {
    spec: UpstreamSpec,
    pool: Option<crate::tls::TlsPool>,
    down: AtomicBool,
    failures: AtomicU32,
    /// Exchanges asked of it (probes excluded), answered, failed.
    asked: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    /// Answers the client got from it (with `fastest`: the races it won).
    chosen: AtomicU64,
    /// Smoothed answer latency in µs (EWMA, 1/8 per sample; 0 = no answer yet).
    latency_us: AtomicU64,
}

/// How a set of upstreams is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// One at a time, healthy ones first, in the configured order (failover).
    #[default]
    InOrder,
    /// Every healthy upstream at once; the first valid answer wins (the others are cancelled).
    /// Costs one exchange per healthy upstream per miss.
    Fastest,
}

/// One upstream's counters ([`crate::Resolver::upstream_stats`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamStats {
    pub addr: SocketAddr,
    pub proto: &'static str,
    pub healthy: bool,
    pub asked: u64,
    pub answered: u64,
    pub failed: u64,
    /// Answers that went to the client (with `fastest`: races won).
    pub chosen: u64,
    /// Smoothed latency of its answers (µs; 0 = none yet).
    pub latency_us: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream answered")]
    AllFailed,
    #[error("no upstreams configured")]
    None,
}

pub struct Upstreams {
    list: Vec<Upstream>,
    timeout: Duration,
    stats: Arc<Stats>,
    strategy: Strategy,
}

/// One answered exchange.
pub struct Answered {
    pub response: Vec<u8>,
    pub upstream: usize,
    /// The upstream is marked trusted (its AD bit is believed).
    pub trusted: bool,
}

impl Upstreams {
    /// `ca_file`: an extra CA (PEM) trusted for DoT/DoH upstreams besides the web PKI roots.
    pub fn new(
        specs: Vec<UpstreamSpec>,
        timeout: Duration,
        stats: Arc<Stats>,
        ca_file: Option<&std::path::Path>,
        strategy: Strategy,
    ) -> Result<Upstreams, String> {
        let mut list = Vec::new();
        let mut dot_cfg = None;
        let mut doh_cfg = None;
        for spec in specs {
            let pool = match spec.proto {
                UpstreamProto::Dot | UpstreamProto::Doh => {
                    let (slot, alpn): (&mut Option<_>, &[&[u8]]) =
                        if spec.proto == UpstreamProto::Dot {
                            (&mut dot_cfg, &[b"dot"])
                        } else {
                            (&mut doh_cfg, &[b"h2", b"http/1.1"])
                        };
                    if slot.is_none() {
                        *slot = Some(crate::tls::client_config(ca_file, alpn)?);
                    }
                    let cfg = slot.clone().expect("set above");
                    Some(crate::tls::TlsPool::new(spec.addr, &spec.tls_name(), cfg)?)
                }
                _ => None,
            };
            list.push(Upstream {
                spec,
                pool,
                down: AtomicBool::new(false),
                failures: AtomicU32::new(0),
                asked: AtomicU64::new(0),
                answered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                chosen: AtomicU64::new(0),
                latency_us: AtomicU64::new(0),
            });
        }
        Ok(Upstreams {
            list,
            timeout,
            stats,
            strategy,
        })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// (address, healthy) per upstream.
    pub fn health(&self) -> Vec<(SocketAddr, bool)> {
        self.list
            .iter()
            .map(|u| (u.spec.addr, !u.down.load(Ordering::Relaxed)))
            .collect()
    }

    /// Counters per upstream.
    pub fn upstream_stats(&self) -> Vec<UpstreamStats> {
        self.list
            .iter()
            .map(|u| UpstreamStats {
                addr: u.spec.addr,
                proto: match u.spec.proto {
                    UpstreamProto::Udp => "udp",
                    UpstreamProto::Tcp => "tcp",
                    UpstreamProto::Dot => "tls",
                    UpstreamProto::Doh => "https",
                },
                healthy: !u.down.load(Ordering::Relaxed),
                asked: u.asked.load(Ordering::Relaxed),
                answered: u.answered.load(Ordering::Relaxed),
                failed: u.failed.load(Ordering::Relaxed),
                chosen: u.chosen.load(Ordering::Relaxed),
                latency_us: u.latency_us.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// One exchange with upstream `i`, timed; updates its counters and health.
    async fn attempt(&self, i: usize, q: &Question, key: &[u8], name: &[u8]) -> Option<Vec<u8>> {
        let u = &self.list[i];
        let id: u16 = rand::random();
        let mut msg = Vec::with_capacity(64);
        wire::build_upstream_query(&mut msg, id, q, name);
        u.asked.fetch_add(1, Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        match self.exchange(u, &msg, id, q, key).await {
            Some(resp) => {
                let us = t0.elapsed().as_micros().min(u64::MAX as u128) as u64;
                let old = u.latency_us.load(Ordering::Relaxed);
                let new = if old == 0 { us } else { old - old / 8 + us / 8 };
                u.latency_us.store(new.max(1), Ordering::Relaxed);
                u.answered.fetch_add(1, Ordering::Relaxed);
                u.failures.store(0, Ordering::Relaxed);
                u.down.store(false, Ordering::Relaxed);
                Some(resp)
            }
            None => {
                self.stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
                u.failed.fetch_add(1, Ordering::Relaxed);
                u.failures.fetch_add(1, Ordering::Relaxed);
                if !u.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(upstream = %u.spec.addr, "upstream failed; marked down until a health probe succeeds");
                }
                None
            }
        }
    }

    fn chose(&self, i: usize, response: Vec<u8>) -> Answered {
        self.list[i].chosen.fetch_add(1, Ordering::Relaxed);
        Answered {
            response,
            upstream: i,
            trusted: self.list[i].spec.trusted,
        }
    }

    /// Resolves a question upstream by the set's [`Strategy`]: in order, healthy upstreams
    /// first; or every healthy upstream at once (first answer wins), then the others in order.
    /// `name` is the question name as the client wrote it (sent upstream unchanged).
    pub async fn query(
        &self,
        q: &Question,
        key: &[u8],
        name: &[u8],
    ) -> Result<Answered, UpstreamError> {
        if self.list.is_empty() {
            return Err(UpstreamError::None);
        }
        let healthy: smallvec::SmallVec<[usize; 8]> = (0..self.list.len())
            .filter(|&i| !self.list[i].down.load(Ordering::Relaxed))
            .collect();
        let down: smallvec::SmallVec<[usize; 8]> = (0..self.list.len())
            .filter(|&i| self.list[i].down.load(Ordering::Relaxed))
            .collect();
        let mut order: smallvec::SmallVec<[usize; 8]> = smallvec::SmallVec::new();
        if self.strategy == Strategy::Fastest && healthy.len() > 1 {
            self.stats.upstream_races.fetch_add(1, Ordering::Relaxed);
            let mut racers: Vec<_> = healthy
                .iter()
                .map(|&i| Box::pin(async move { (i, self.attempt(i, q, key, name).await) }))
                .collect();
            // the first valid answer wins; dropping the rest cancels them
            let won = std::future::poll_fn(|cx| {
                let mut k = 0;
                while k < racers.len() {
                    match racers[k].as_mut().poll(cx) {
                        std::task::Poll::Ready((i, Some(r))) => {
                            return std::task::Poll::Ready(Some((i, r)))
                        }
                        std::task::Poll::Ready((_, None)) => {
                            drop(racers.swap_remove(k));
                        }
                        std::task::Poll::Pending => k += 1,
                    }
                }
                if racers.is_empty() {
                    std::task::Poll::Ready(None)
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            if let Some((i, r)) = won {
                return Ok(self.chose(i, r));
            }
        } else {
            order.extend(healthy);
        }
        order.extend(down);
        for i in order {
            if let Some(r) = self.attempt(i, q, key, name).await {
                return Ok(self.chose(i, r));
            }
        }
        Err(UpstreamError::AllFailed)
    }

    async fn exchange(
        &self,
        u: &Upstream,
        msg: &[u8],
        id: u16,
        q: &Question,
        key: &[u8],
    ) -> Option<Vec<u8>> {
        self.stats.upstream_queries.fetch_add(1, Ordering::Relaxed);
        let spec = &u.spec;
        match (spec.proto, &u.pool) {
            (UpstreamProto::Tcp, _) => {
                return tokio::time::timeout(self.timeout, tcp_exchange(spec.addr, msg, id, q, key))
                    .await
                    .ok()
                    .flatten()
            }
            (UpstreamProto::Dot, Some(pool)) => {
                let r = tokio::time::timeout(self.timeout, pool.dot_exchange(msg))
                    .await
                    .ok()
                    .flatten()?;
                return wire::response_matches(&r, id, key, q.qtype, q.qclass).then_some(r);
            }
            (UpstreamProto::Doh, Some(pool)) => {
                let path = spec.path.as_deref().unwrap_or("/dns-query");
                let r = tokio::time::timeout(
                    self.timeout,
                    pool.doh_exchange(&spec.tls_name(), path, msg),
                )
                .await
                .ok()
                .flatten()?;
                return wire::response_matches(&r, id, key, q.qtype, q.qclass).then_some(r);
            }
            _ => {}
        }
        let resp =
            tokio::time::timeout(self.timeout, self.udp_exchange(spec.addr, msg, id, q, key))
                .await
                .ok()
                .flatten()?;
        if resp.len() >= 3 && resp[2] & 0x02 != 0 {
            self.stats
                .upstream_tcp_retries
                .fetch_add(1, Ordering::Relaxed);
            return tokio::time::timeout(self.timeout, tcp_exchange(spec.addr, msg, id, q, key))
                .await
                .ok()
                .flatten();
        }
        Some(resp)
    }

    async fn udp_exchange(
        &self,
        addr: SocketAddr,
        msg: &[u8],
        id: u16,
        q: &Question,
        key: &[u8],
    ) -> Option<Vec<u8>> {
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let sock = UdpSocket::bind(bind).await.ok()?;
        sock.connect(addr).await.ok()?;
        sock.send(msg).await.ok()?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock.recv(&mut buf).await.ok()?;
            if wire::response_matches(&buf[..n], id, key, q.qtype, q.qclass) {
                buf.truncate(n);
                return Some(buf);
            }
            self.stats
                .upstream_mismatched
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Probes the upstreams marked down (`. NS`); marks those that answer as up again.
    pub async fn probe_down(&self) {
        let mut key = Vec::new();
        let probe = [0u8, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        let Ok(q) = wire::parse_query(&probe, &mut key) else {
            return;
        };
        let mut msg = Vec::new();
        for u in &self.list {
            if !u.down.load(Ordering::Relaxed) {
                continue;
            }
            let id: u16 = rand::random();
            wire::build_upstream_query(&mut msg, id, &q, wire::key_name(&key));
            if self.exchange(u, &msg, id, &q, &key).await.is_some() {
                u.failures.store(0, Ordering::Relaxed);
                u.down.store(false, Ordering::Relaxed);
                tracing::info!(upstream = %u.spec.addr, "upstream answers again; marked up");
            }
        }
    }
}

async fn tcp_exchange(
    addr: SocketAddr,
    msg: &[u8],
    id: u16,
    q: &Question,
    key: &[u8],
) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.set_nodelay(true);
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out).await.ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.ok()?;
    wire::response_matches(&buf, id, key, q.qtype, q.qclass).then_some(buf)
}
