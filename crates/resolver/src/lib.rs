//! dnsight-resolver: the protective forwarding resolver behind `dnsight serve`.
//!
//! Clients query it over UDP and TCP; it applies the client ACL and rate limit, the block/allow
//! policy (lists, RPZ, groups), answers from a packet cache, and forwards misses to upstream
//! resolvers (UDP/TCP, failover, health probes). Every query becomes a [`DnsEvent`] with the
//! resolver's [`dnsight_model::Verdict`], delivered to an [`EventSink`] on a separate thread
//! through a bounded queue: resolution never waits for analysis (overflow is counted).
//!
//! The crate knows nothing about config files or the engine: the binary builds a
//! [`ResolverConfig`] and passes a sink. Module map: [`wire`] (tiny parser/writer), [`cache`],
//! [`policy`], [`acl`], [`upstream`], [`server`] (the per-query path), [`dnssec`], [`events`],
//! [`stats`].
//!
//! [`DnsEvent`]: dnsight_model::DnsEvent

pub mod acl;
pub mod cache;
pub mod dnssec;
pub mod events;
pub mod local;
pub mod overrides;
pub mod policy;
pub mod route;
pub mod server;
pub mod stats;
pub mod tls;
mod udp;
pub mod upstream;
pub mod wire;

pub use acl::Cidr;
pub use cache::CacheConfig;
pub use dnssec::DnssecMode;
pub use events::{EventSink, JsonlSink, NullSink, Tee};
pub use local::LocalSpec;
pub use overrides::{Override, OverrideHit, OverrideScope, Overrides};
pub use policy::{BlockAnswer, GroupSpec, ListRole, ListSpec, PolicySpec};
pub use route::ForwardSpec;
pub use stats::StatsSnapshot;
pub use upstream::{Strategy, UpstreamProto, UpstreamSpec, UpstreamStats};

use arc_swap::ArcSwap;
use dnsight_model::Transport;
use server::{Core, Outcome, Peer, QueryRules, Scratch};
use stats::Stats;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A built, validated resolver configuration (the binary maps its TOML and flags onto this).
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// UDP+TCP listeners.
    pub listen: Vec<SocketAddr>,
    pub upstreams: Vec<UpstreamSpec>,
    /// Conditional-forwarding zones, tried before `upstreams` (longest zone wins).
    pub forwards: Vec<ForwardSpec>,
    /// How each set of upstreams is asked (in order, or all at once).
    pub upstream_strategy: upstream::Strategy,
    pub upstream_timeout: Duration,
    /// How often upstreams marked down are probed.
    pub health_interval: Duration,
    pub cache: CacheConfig,
    pub policy: PolicySpec,
    /// How often list files are checked for changes (0 = never; SIGHUP still reloads).
    pub list_poll_interval: Duration,
    pub rules: QueryRules,
    /// Per-client queries per second (0 = off), burst, and exempt clients.
    pub rate_limit_qps: u32,
    pub rate_limit_burst: u32,
    pub rate_limit_exempt: Vec<Cidr>,
    /// UDP worker threads per listener (0 = one per CPU).
    pub udp_workers: usize,
    pub tcp_idle_timeout: Duration,
    pub max_tcp_connections: usize,
    pub event_queue: usize,
    /// Datagrams per recvmmsg/sendmmsg call (1 = plain recv_from/send_to).
    pub udp_batch: usize,
    /// DNS-over-TLS listeners (need `tls`).
    pub dot_listen: Vec<SocketAddr>,
    /// DNS-over-HTTPS listeners (need `tls`), serving `doh_path`.
    pub doh_listen: Vec<SocketAddr>,
    pub doh_path: String,
    /// Certificate chain and private key (PEM) for DoT/DoH listeners.
    pub tls: Option<TlsFiles>,
    /// Extra CA (PEM) trusted for DoT/DoH upstreams.
    pub upstream_ca: Option<std::path::PathBuf>,
    /// DNSSEC pass-through (AD from trusted upstreams only) or validation ([`dnssec`]).
    pub dnssec: DnssecMode,
    /// DNSKEY records (zone-file form) to validate from instead of the root's keys.
    pub dnssec_trust_anchor: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            listen: vec!["127.0.0.1:5353".parse().expect("static addr")],
            upstreams: Vec::new(),
            forwards: Vec::new(),
            upstream_strategy: upstream::Strategy::InOrder,
            upstream_timeout: Duration::from_millis(1500),
            health_interval: Duration::from_secs(5),
            cache: CacheConfig::default(),
            policy: PolicySpec::default(),
            list_poll_interval: Duration::from_secs(30),
            rules: QueryRules::default(),
            rate_limit_qps: 1000,
            rate_limit_burst: 2000,
            rate_limit_exempt: vec![
                "127.0.0.0/8".parse().expect("static"),
                "::1/128".parse().expect("static"),
            ],
            udp_workers: 0,
            tcp_idle_timeout: Duration::from_secs(10),
            max_tcp_connections: 512,
            event_queue: 65_536,
            udp_batch: 32,
            dot_listen: Vec::new(),
            doh_listen: Vec::new(),
            doh_path: "/dns-query".into(),
            tls: None,
            upstream_ca: None,
            dnssec: DnssecMode::Pass,
            dnssec_trust_anchor: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Policy(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("upstreams: {0}")]
    Upstream(String),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error("DNSSEC: {0}")]
    Dnssec(String),
}

/// A running resolver. Dropping it without [`Resolver::shutdown`] leaves threads running
/// until process exit.
pub struct Resolver {
    core: Arc<Core>,
    rt: Option<tokio::runtime::Runtime>,
    workers: Vec<JoinHandle<()>>,
    consumer: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    dot_addrs: Vec<SocketAddr>,
    doh_addrs: Vec<SocketAddr>,
    spec: Mutex<(PolicySpec, Vec<Option<std::time::SystemTime>>)>,
}

fn rule_names(p: &policy::Policy) -> Vec<Arc<str>> {
    p.lists
        .iter()
        .map(|l| {
            Arc::from(match l.role {
                ListRole::Allow => format!("allowlist:{}", l.name),
                ListRole::Block if !l.rpz.is_empty() => format!("rpz:{}", l.name),
                ListRole::Block => format!("blocklist:{}", l.name),
            })
        })
        .collect()
}

fn reuseport_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(Duration::from_millis(250)))?;
    Ok(s.into())
}

impl Resolver {
    /// Loads the policy, binds every listener and starts serving.
    pub fn start(cfg: ResolverConfig, sink: Box<dyn EventSink>) -> Result<Resolver, Error> {
        let stats = Arc::new(Stats::default());
        let t0 = Instant::now();
        let policy = cfg.policy.build().map_err(Error::Policy)?;
        tracing::info!(
            lists = policy.lists.len(),
            rules = policy.total_rules(),
            memory_bytes = policy.memory(),
            local_names = policy.local.len(),
            ms = t0.elapsed().as_millis() as u64,
            "policy loaded"
        );
        let mtimes = cfg.policy.mtimes();
        let (events, rx) = events::EventQueue::new(cfg.event_queue, stats.clone());
        let names = rule_names(&policy);
        let (prefetch_tx, mut prefetch_rx) = tokio::sync::mpsc::channel::<server::Prefetch>(1024);
        let upstreams = route::Router::new(
            cfg.upstreams.clone(),
            &cfg.forwards,
            &cfg.policy.view_upstreams(),
            cfg.upstream_timeout,
            stats.clone(),
            cfg.upstream_ca.as_deref(),
            cfg.upstream_strategy,
        )
        .map_err(Error::Upstream)?;
        let anchors = match &cfg.dnssec_trust_anchor {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::Dnssec(format!("{}: {e}", p.display())))?;
                Some(
                    dnssec::read_anchors(&text)
                        .map_err(|e| Error::Dnssec(format!("{}: {e}", p.display())))?,
                )
            }
            None => None,
        };
        let validating = cfg.dnssec == DnssecMode::Validate;
        let core = Arc::new_cyclic(|weak| Core {
            rules: cfg.rules.clone(),
            cache: cache::PacketCache::new(cfg.cache.clone()),
            policy: ArcSwap::from_pointee(policy),
            overrides: ArcSwap::from_pointee(Overrides::empty()),
            upstreams,
            dnssec: cfg.dnssec,
            validator: validating
                .then(|| dnssec::Validator::new(anchors, weak.clone(), &cfg.cache)),
            rate: acl::RateLimiter::new(
                cfg.rate_limit_qps,
                cfg.rate_limit_burst,
                cfg.rate_limit_exempt.clone(),
                100_000,
            ),
            stats: stats.clone(),
            events,
            rule_names: ArcSwap::from_pointee(names),
            local_rule: Arc::from("local"),
            prefetch: prefetch_tx,
        });
        let consumer_stats = stats.clone();
        let consumer = std::thread::Builder::new()
            .name("dnsight-events".into())
            .spawn(move || events::consume(rx, sink, consumer_stats))
            .map_err(Error::Runtime)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dnsight-rt")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let stop = Arc::new(AtomicBool::new(false));
        let nworkers = if cfg.udp_workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            cfg.udp_workers
        };
        let mut workers = Vec::new();
        let mut udp_addrs = Vec::new();
        let mut tcp_addrs = Vec::new();
        let mut dot_addrs = Vec::new();
        let mut doh_addrs = Vec::new();
        for &want in &cfg.listen {
            let (addr, socks, listener) = bind_pair(want, nworkers, &rt)?;
            udp_addrs.push(addr);
            for (i, sock) in socks.into_iter().enumerate() {
                let (core, stop, handle) = (core.clone(), stop.clone(), rt.handle().clone());
                let batch = cfg.udp_batch;
                let h = std::thread::Builder::new()
                    .name(format!("dnsight-udp{i}"))
                    .spawn(move || {
                        if batch > 1 {
                            udp::worker(core, Arc::new(sock), addr, stop, handle, batch)
                        } else {
                            udp_worker(core, Arc::new(sock), addr, stop, handle)
                        }
                    })
                    .map_err(Error::Runtime)?;
                workers.push(h);
            }
            tcp_addrs.push(addr);
            let limit = Arc::new(tokio::sync::Semaphore::new(cfg.max_tcp_connections.max(1)));
            rt.spawn(tcp_accept(
                core.clone(),
                listener,
                limit,
                cfg.tcp_idle_timeout,
            ));
        }
        // encrypted listeners
        if !cfg.dot_listen.is_empty() || !cfg.doh_listen.is_empty() {
            let files = cfg
                .tls
                .as_ref()
                .ok_or_else(|| Error::Tls("DoT/DoH listeners need a certificate and key".into()))?;
            let limit = Arc::new(tokio::sync::Semaphore::new(cfg.max_tcp_connections.max(1)));
            for &want in &cfg.dot_listen {
                let tls =
                    tls::server_config(&files.cert, &files.key, &[b"dot"]).map_err(Error::Tls)?;
                let l = rt
                    .block_on(tokio::net::TcpListener::bind(want))
                    .map_err(|e| Error::Listen {
                        addr: want,
                        source: e,
                    })?;
                dot_addrs.push(l.local_addr().map_err(|e| Error::Listen {
                    addr: want,
                    source: e,
                })?);
                rt.spawn(tls::dot_accept(
                    core.clone(),
                    l,
                    tls,
                    limit.clone(),
                    cfg.tcp_idle_timeout,
                ));
            }
            for &want in &cfg.doh_listen {
                let tls = tls::server_config(&files.cert, &files.key, &[b"h2", b"http/1.1"])
                    .map_err(Error::Tls)?;
                let l = rt
                    .block_on(tokio::net::TcpListener::bind(want))
                    .map_err(|e| Error::Listen {
                        addr: want,
                        source: e,
                    })?;
                doh_addrs.push(l.local_addr().map_err(|e| Error::Listen {
                    addr: want,
                    source: e,
                })?);
                rt.spawn(tls::doh_accept(
                    core.clone(),
                    l,
                    tls,
                    limit.clone(),
                    cfg.tcp_idle_timeout,
                    Arc::from(cfg.doh_path.as_str()),
                ));
            }
        }
        // cache prefetches, each refreshed concurrently
        {
            let core = core.clone();
            rt.spawn(async move {
                while let Some(p) = prefetch_rx.recv().await {
                    let core = core.clone();
                    tokio::spawn(async move { core.refresh(p).await });
                }
            });
        }
        // health probes
        {
            let core = core.clone();
            let every = cfg.health_interval.max(Duration::from_millis(50));
            rt.spawn(async move {
                let mut t = tokio::time::interval(every);
                loop {
                    t.tick().await;
                    core.upstreams.probe_down().await;
                }
            });
        }
        let r = Resolver {
            core,
            rt: Some(rt),
            workers,
            consumer: Some(consumer),
            stop,
            udp_addrs,
            tcp_addrs,
            dot_addrs,
            doh_addrs,
            spec: Mutex::new((cfg.policy.clone(), mtimes)),
        };
        Ok(r)
    }

    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }
    pub fn dot_addrs(&self) -> &[SocketAddr] {
        &self.dot_addrs
    }
    pub fn doh_addrs(&self) -> &[SocketAddr] {
        &self.doh_addrs
    }
    /// A handle for passive sources to feed events to the same sink.
    pub fn injector(&self) -> events::Injector {
        self.core.events.injector()
    }
    pub fn stats(&self) -> StatsSnapshot {
        self.core.stats.snapshot()
    }
    /// (upstream, healthy) pairs.
    pub fn upstream_health(&self) -> Vec<(SocketAddr, bool)> {
        self.core.upstreams.health()
    }
    /// Counters of every upstream (asked, answered, failed, chosen, smoothed latency).
    pub fn upstream_stats(&self) -> Vec<UpstreamStats> {
        self.core.upstreams.upstream_stats()
    }
    pub fn cache_entries(&self) -> usize {
        self.core.cache.len()
    }
    /// The lists in force: (name, path, role, rules, lines skipped, the file's modification
    /// time when it was loaded).
    pub fn lists(
        &self,
    ) -> Vec<(
        String,
        std::path::PathBuf,
        ListRole,
        usize,
        u64,
        Option<std::time::SystemTime>,
    )> {
        let (p, spec) = (
            self.core.policy.load(),
            self.spec.lock().unwrap_or_else(|e| e.into_inner()),
        );
        p.lists
            .iter()
            .map(|l| {
                let m = spec
                    .0
                    .lists
                    .iter()
                    .position(|s| s.path == l.path)
                    .and_then(|i| spec.1.get(i).copied().flatten());
                (
                    l.name.clone(),
                    l.path.clone(),
                    l.role,
                    l.rules(),
                    l.rejected_lines,
                    m,
                )
            })
            .collect()
    }
    /// Rules and bytes of the current policy.
    pub fn policy_size(&self) -> (usize, usize) {
        let p = self.core.policy.load();
        (p.total_rules(), p.memory())
    }

    /// Replaces every dynamic override with `rules` (compiled once, swapped in atomically):
    /// the next query is decided by them. `&[]` removes them all. Rules whose name is not a
    /// domain name are skipped with a warning.
    pub fn set_overrides(&self, rules: &[Override]) {
        self.set_compiled_overrides(Overrides::build(rules));
    }

    /// Swaps in an already compiled set (see [`Overrides::build`]).
    pub fn set_compiled_overrides(&self, o: Overrides) {
        if !o.rejected().is_empty() {
            tracing::warn!(ids = ?o.rejected(), "overrides with an invalid name were skipped");
        }
        tracing::info!(rules = o.len(), "overrides set");
        self.core.overrides.store(Arc::new(o));
    }

    /// Number of dynamic overrides in force.
    pub fn overrides_len(&self) -> usize {
        self.core.overrides.load().len()
    }

    /// Rebuilds the policy from the list files and swaps it in; on error the old one stays.
    pub fn reload(&self) -> Result<(), String> {
        let mut spec = self.spec.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked(&mut spec)
    }

    fn reload_locked(
        &self,
        spec: &mut (PolicySpec, Vec<Option<std::time::SystemTime>>),
    ) -> Result<(), String> {
        let t0 = Instant::now();
        let mtimes = spec.0.mtimes();
        match spec.0.build() {
            Ok(p) => {
                tracing::info!(
                    rules = p.total_rules(),
                    memory_bytes = p.memory(),
                    ms = t0.elapsed().as_millis() as u64,
                    "policy reloaded"
                );
                let names = rule_names(&p);
                // names first: a query seeing the new policy must find its list's name
                self.core.rule_names.store(Arc::new(names));
                self.core.policy.store(Arc::new(p));
                spec.1 = mtimes;
                self.core.stats.list_reloads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.core
                    .stats
                    .list_reload_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "policy reload failed; keeping the previous lists");
                Err(e)
            }
        }
    }

    /// Reloads when any list file's modification time changed since the last load.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let mut spec = self.spec.lock().unwrap_or_else(|e| e.into_inner());
        if spec.0.mtimes() == spec.1 {
            return Ok(false);
        }
        self.reload_locked(&mut spec).map(|_| true)
    }

    /// Blocks until SIGTERM or SIGINT; reloads lists on SIGHUP and when files change
    /// (every `poll`; zero disables polling). Logs a stats line every `stats_every` (zero: never).
    pub fn run_until_signal(&self, poll: Duration, stats_every: Duration) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = self.rt.as_ref().expect("running");
        rt.block_on(async {
            let mut hup = signal(SignalKind::hangup())?;
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            let far = Duration::from_secs(86_400 * 365);
            let mut poll_t = tokio::time::interval(if poll.is_zero() { far } else { poll });
            let mut stats_t = tokio::time::interval(if stats_every.is_zero() { far } else { stats_every });
            poll_t.tick().await;
            stats_t.tick().await;
            loop {
                tokio::select! {
                    _ = hup.recv() => { tracing::info!("SIGHUP: reloading lists"); let _ = self.reload(); }
                    _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                    _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                    _ = poll_t.tick() => { let _ = self.reload_if_changed(); }
                    _ = stats_t.tick() => {
                        tracing::info!(stats = %self.stats(), "resolver stats");
                        for u in self.upstream_stats() {
                            tracing::info!(upstream = %u.addr, proto = u.proto, healthy = u.healthy, asked = u.asked, answered = u.answered, failed = u.failed, chosen = u.chosen, latency_us = u.latency_us, "upstream stats");
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Stops listening, finishes in-flight work briefly, drains the event queue into the sink,
    /// and returns the final counters.
    pub fn shutdown(mut self) -> StatsSnapshot {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        let stats = self.core.stats.clone();
        // the last producer handle goes with the core; then the consumer drains and exits
        let consumer = self.consumer.take();
        drop(self);
        if let Some(c) = consumer {
            let _ = c.join();
        }
        stats.snapshot()
    }
}

/// Binds `nworkers` SO_REUSEPORT UDP sockets and a TCP listener on the same address. With port
/// 0 the kernel picks the UDP port, which may be taken for TCP: then another port is tried.
fn bind_pair(
    want: SocketAddr,
    nworkers: usize,
    rt: &tokio::runtime::Runtime,
) -> Result<(SocketAddr, Vec<UdpSocket>, tokio::net::TcpListener), Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = |e| Error::Listen {
            addr: want,
            source: e,
        };
        let first = reuseport_udp(want).map_err(err)?;
        let addr = first.local_addr().map_err(err)?;
        let mut socks = vec![first];
        for _ in 1..nworkers.max(1) {
            socks.push(reuseport_udp(addr).map_err(|e| Error::Listen { addr, source: e })?);
        }
        match rt.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => return Ok((addr, socks, l)),
            Err(e)
                if want.port() == 0
                    && attempt < 20
                    && e.kind() == std::io::ErrorKind::AddrInUse =>
            {
                continue
            }
            Err(e) => return Err(Error::Listen { addr, source: e }),
        }
    }
}

fn udp_worker(
    core: Arc<Core>,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    rt: tokio::runtime::Handle,
) {
    let mut buf = vec![0u8; 65535];
    let mut s = Scratch::default();
    while !stop.load(Ordering::Relaxed) {
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp recv");
                continue;
            }
        };
        let peer = Peer {
            client: src,
            server: local,
            transport: Transport::Udp,
        };
        let now = Instant::now();
        match core.handle(&buf[..n], &peer, &mut s, now) {
            Outcome::Reply => {
                let _ = sock.send_to(&s.out, src);
            }
            Outcome::Drop => {}
            Outcome::Miss(q) => {
                let query = buf[..n].to_vec();
                let key = s.key.clone();
                let (core, sock) = (core.clone(), sock.clone());
                rt.spawn(async move {
                    let out = core.resolve(&query, &q, &key, &peer, now).await;
                    let _ = sock.send_to(&out, src);
                });
            }
        }
    }
}

async fn tcp_accept(
    core: Arc<Core>,
    listener: tokio::net::TcpListener,
    limit: Arc<tokio::sync::Semaphore>,
    idle: Duration,
) {
    loop {
        let (stream, src) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // e.g. EMFILE: back off a little instead of spinning
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            core.stats.tcp_rejected.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        core.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let local = stream.local_addr().unwrap_or(src);
        let core = core.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            serve_stream(
                core,
                stream,
                Peer {
                    client: src,
                    server: local,
                    transport: Transport::Tcp,
                },
                idle,
            )
            .await;
        });
    }
}

/// Serves length-prefixed DNS messages on a byte stream (TCP, and TLS for DoT) until the peer
/// closes, sends garbage, or stays idle (or half-open) longer than `idle`.
pub async fn serve_stream<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    core: Arc<Core>,
    mut stream: S,
    peer: Peer,
    idle: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = Scratch::default();
    let mut buf = vec![0u8; 65535];
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                core.stats.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let n = u16::from_be_bytes(len) as usize;
        match tokio::time::timeout(idle, stream.read_exact(&mut buf[..n])).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                core.stats.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let now = Instant::now();
        let out = match core.handle(&buf[..n], &peer, &mut s, now) {
            Outcome::Reply => std::mem::take(&mut s.out),
            Outcome::Drop => {
                if n < wire::HEADER_LEN {
                    return; // garbage on a stream: close it
                }
                continue;
            }
            Outcome::Miss(q) => {
                let key = s.key.clone();
                core.resolve(&buf[..n], &q, &key, &peer, now).await
            }
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        match tokio::time::timeout(idle, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        s.out = out;
    }
}
