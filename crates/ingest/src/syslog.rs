//! A syslog receiver for query logs: resolvers and appliances that can only syslog their query
//! log (BIND, Unbound, dnsmasq/Pi-hole, PowerDNS, Infoblox, EfficientIP, ...) send it here.
//!
//! UDP (one message a datagram) and TCP (RFC 6587: octet counting or one message a line), RFC
//! 5424 and RFC 3164 headers. Every message goes through the query-log registry
//! ([`crate::querylog`]): the format of a stream — one sender and program name (`named`,
//! `dnsmasq`, ...) — is found by trial parsing its first query line and kept, and each stream has
//! its own parsing state, so a query and its reply line pair up even when several resolvers
//! send to the same port.
//!
//! Only senders in the allow-list are read (default: loopback only): a UDP datagram from another
//! address is dropped and counted (`syslog.sender_not_allowed`), a TCP connection is closed. The
//! receiving threads hand messages to the reader through a bounded queue; when it is full, UDP
//! messages are dropped and counted (`syslog.queue_full`) and TCP senders wait (back-pressure).
//! Other rejects: `syslog.too_long` (a message over [`MAX_MESSAGE`] bytes), `syslog.bad_frame`
//! (an octet count that is not a number), `syslog.unknown_format` (a stream whose lines are no
//! known query log), `syslog.too_many_streams`, and the query-log reasons (`log.*`).
//!
//! **TLS** (RFC 5425, [`listen_tls`]): the TCP receiver with each connection wrapped in rustls
//! (the server's certificate and key from PEM files; no client certificates: senders are told
//! apart by the allow-list), octet-counted or line framing as over plain TCP. A handshake that
//! fails is counted (`syslog.tls_handshake`) and the connection closed.

use crate::querylog::{self, LogFormat, Parser};
use crate::{EventReader, IngestError, IngestOptions, IngestStats};
use dnsight_model::{Cidr, DnsEvent};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Longest message accepted (bytes).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Messages waiting between the receiving threads and the reader.
const QUEUE: usize = 16 * 1024;
/// Streams (sender × program) with their own parsing state.
const MAX_STREAMS: usize = 4096;
/// Concurrent TCP connections.
const MAX_CONNECTIONS: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct SyslogOptions {
    /// Senders allowed to send (empty: loopback only).
    pub allow: Vec<Cidr>,
    pub ingest: IngestOptions,
}

fn allowed(allow: &[Cidr], ip: IpAddr) -> bool {
    let ip = dnsight_model::canonical(ip);
    if allow.is_empty() {
        return ip.is_loopback();
    }
    allow.iter().any(|c| c.contains(ip))
}

#[derive(Default)]
struct Counters {
    not_allowed: AtomicU64,
    queue_full: AtomicU64,
    too_long: AtomicU64,
    bad_frame: AtomicU64,
    tls_handshake: AtomicU64,
}

/// Stops a [`SyslogReceiver`] from another thread.
#[derive(Clone, Debug, Default)]
pub struct SyslogHandle(Arc<AtomicBool>);

impl SyslogHandle {
    pub fn shutdown(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn is_down(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

type Item = (IpAddr, Vec<u8>);

/// The receiving end: an [`EventReader`] over the messages the listener threads receive.
pub struct SyslogReceiver {
    rx: Receiver<Item>,
    counters: Arc<Counters>,
    stop: SyslogHandle,
    stats: IngestStats,
    /// Per stream (sender, program): its parser, or `None` when its format is still unknown.
    streams: HashMap<(IpAddr, String), Parser, foldhash::fast::RandomState>,
    ingest: IngestOptions,
    local: SocketAddr,
}

impl SyslogReceiver {
    pub fn shutdown_handle(&self) -> SyslogHandle {
        self.stop.clone()
    }
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn message(&mut self, from: IpAddr, raw: &[u8], out: &mut Vec<DnsEvent>) {
        let text = String::from_utf8_lossy(raw);
        for line in text.split('\n') {
            let line = line.trim_matches(|c: char| c == '\r' || c == '\0' || c.is_whitespace());
            if line.is_empty() {
                continue;
            }
            self.stats.records += 1;
            let app = querylog::syslog_app(line).unwrap_or("-").to_string();
            let key = (from, app);
            if !self.streams.contains_key(&key) {
                let Some(f) = querylog::sniff(line.as_bytes()) else {
                    self.stats.reject("syslog.unknown_format");
                    continue;
                };
                if self.streams.len() >= MAX_STREAMS {
                    self.stats.reject("syslog.too_many_streams");
                    continue;
                }
                self.streams
                    .insert(key.clone(), Parser::new(f, &self.ingest));
            }
            let Some(p) = self.streams.get_mut(&key) else {
                continue;
            };
            let before = out.len();
            if let Err(r) = p.line(line.as_bytes(), out) {
                self.stats.reject(r);
            }
            p.take_rejects(&mut self.stats);
            for e in &out[before..] {
                self.stats.count_logged_event(e);
            }
        }
    }

    fn take_counters(&mut self) {
        let c = &self.counters;
        for (n, reason) in [
            (&c.not_allowed, "syslog.sender_not_allowed"),
            (&c.queue_full, "syslog.queue_full"),
            (&c.too_long, "syslog.too_long"),
            (&c.bad_frame, "syslog.bad_frame"),
            (&c.tls_handshake, "syslog.tls_handshake"),
        ] {
            let v = n.swap(0, Ordering::Relaxed);
            if v > 0 {
                *self.stats.rejected.entry(reason.to_string()).or_default() += v;
            }
        }
    }
}

impl EventReader for SyslogReceiver {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        let before = out.len();
        let first = match self.rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.take_counters();
                for p in self.streams.values_mut() {
                    p.flush(false, out);
                }
                for e in &out[before..] {
                    self.stats.count_logged_event(e);
                }
                return Ok(false);
            }
        };
        if let Some((from, m)) = first {
            self.message(from, &m, out);
            let mut n = 1;
            while n < 1024 {
                match self.rx.try_recv() {
                    Ok((from, m)) => self.message(from, &m, out),
                    Err(_) => break,
                }
                n += 1;
            }
        }
        // the stream is idle or between batches: answered queries go out now
        let mid = out.len();
        for p in self.streams.values_mut() {
            p.flush(true, out);
        }
        for e in &out[mid..] {
            self.stats.count_logged_event(e);
        }
        self.take_counters();
        Ok(true)
    }

    fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

fn receiver(
    rx: Receiver<Item>,
    counters: Arc<Counters>,
    stop: SyslogHandle,
    opts: &SyslogOptions,
    local: SocketAddr,
) -> SyslogReceiver {
    SyslogReceiver {
        rx,
        counters,
        stop,
        stats: IngestStats::default(),
        streams: HashMap::default(),
        ingest: opts.ingest.clone(),
        local,
    }
}

fn io_err(addr: &str, e: std::io::Error) -> IngestError {
    IngestError::Io {
        path: format!("syslog {addr}"),
        source: e,
    }
}

/// Listens for syslog over UDP on `addr`.
pub fn listen_udp(addr: &str, opts: &SyslogOptions) -> Result<SyslogReceiver, IngestError> {
    let sock = UdpSocket::bind(addr).map_err(|e| io_err(addr, e))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| io_err(addr, e))?;
    let local = sock.local_addr().map_err(|e| io_err(addr, e))?;
    let (tx, rx) = sync_channel::<Item>(QUEUE);
    let counters = Arc::new(Counters::default());
    let stop = SyslogHandle::default();
    let (c, s, allow) = (counters.clone(), stop.clone(), opts.allow.clone());
    std::thread::Builder::new()
        .name("dnsight-syslog-udp".into())
        .spawn(move || {
            let mut buf = vec![0u8; MAX_MESSAGE + 1];
            while !s.is_down() {
                let (n, from) = match sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(_) => continue, // timeout: check the stop flag
                };
                if !allowed(&allow, from.ip()) {
                    c.not_allowed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if n > MAX_MESSAGE {
                    c.too_long.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                match tx.try_send((from.ip(), buf[..n].to_vec())) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        c.queue_full.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        })
        .map_err(|e| io_err(addr, e))?;
    Ok(receiver(rx, counters, stop, opts, local))
}

/// The TLS server configuration of [`listen_tls`] from a PEM certificate chain and key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, IngestError> {
    let e = |m: String| IngestError::Other(m);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|x| e(format!("certificate file {}: {x}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|x| e(format!("certificate file {}: {x}", cert.display())))?;
    if certs.is_empty() {
        return Err(e(format!(
            "certificate file {} holds no PEM certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|x| {
        e(format!(
            "key file {}: {x} (a PEM private key)",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| e(x.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|x| e(format!("certificate and key do not fit together: {x}")))?;
    Ok(Arc::new(cfg))
}

/// Listens for syslog over TCP on `addr` (RFC 6587 framing, both methods).
pub fn listen_tcp(addr: &str, opts: &SyslogOptions) -> Result<SyslogReceiver, IngestError> {
    listen_stream(addr, opts, None)
}

/// Listens for syslog over TLS on `addr` (RFC 5425; see the module docs).
pub fn listen_tls(
    addr: &str,
    opts: &SyslogOptions,
    tls: Arc<rustls::ServerConfig>,
) -> Result<SyslogReceiver, IngestError> {
    listen_stream(addr, opts, Some(tls))
}

fn listen_stream(
    addr: &str,
    opts: &SyslogOptions,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<SyslogReceiver, IngestError> {
    let l = TcpListener::bind(addr).map_err(|e| io_err(addr, e))?;
    l.set_nonblocking(true).map_err(|e| io_err(addr, e))?;
    let local = l.local_addr().map_err(|e| io_err(addr, e))?;
    let (tx, rx) = sync_channel::<Item>(QUEUE);
    let counters = Arc::new(Counters::default());
    let stop = SyslogHandle::default();
    let (c, s, allow) = (counters.clone(), stop.clone(), opts.allow.clone());
    let live = Arc::new(AtomicU64::new(0));
    std::thread::Builder::new()
        .name("dnsight-syslog-tcp".into())
        .spawn(move || {
            while !s.is_down() {
                let (conn, from) = match l.accept() {
                    Ok(x) => x,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                if !allowed(&allow, from.ip()) {
                    c.not_allowed.fetch_add(1, Ordering::Relaxed);
                    continue; // dropped: the connection closes
                }
                if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS as u64 {
                    continue;
                }
                live.fetch_add(1, Ordering::Relaxed);
                let (tx, c, s, live) = (tx.clone(), c.clone(), s.clone(), live.clone());
                let tls = tls.clone();
                let _ = std::thread::Builder::new()
                    .name("dnsight-syslog-conn".into())
                    .spawn(move || {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                        match tls {
                            None => read_tcp(conn, from.ip(), &tx, &c, &s),
                            Some(cfg) => {
                                if let Some(t) = handshake(conn, cfg, &s) {
                                    read_tcp(t, from.ip(), &tx, &c, &s);
                                } else {
                                    c.tls_handshake.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        live.fetch_sub(1, Ordering::Relaxed);
                    });
            }
        })
        .map_err(|e| io_err(addr, e))?;
    Ok(receiver(rx, counters, stop, opts, local))
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// Completes the TLS handshake (at most 10 s, or until shutdown).
fn handshake(mut conn: TcpStream, cfg: Arc<rustls::ServerConfig>, s: &SyslogHandle) -> Option<Tls> {
    let mut tls = rustls::ServerConnection::new(cfg).ok()?;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while tls.is_handshaking() {
        match tls.complete_io(&mut conn) {
            Ok((0, 0)) if tls.is_handshaking() => return None, // closed
            Ok(_) => {}
            Err(e) if timed_out(&e) => {
                if s.is_down() || std::time::Instant::now() > end {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    Some(rustls::StreamOwned::new(tls, conn))
}

/// Reads one connection's frames: `LEN SP MSG` (octet counting) or `MSG LF`.
fn read_tcp<S: Read>(conn: S, from: IpAddr, tx: &SyncSender<Item>, c: &Counters, s: &SyslogHandle) {
    let mut r = BufReader::with_capacity(64 * 1024, conn);
    let mut frame = Vec::new();
    loop {
        if s.is_down() {
            return;
        }
        let head = match r.fill_buf() {
            Ok([]) => return,
            Ok(b) => b,
            Err(e) if timed_out(&e) => continue,
            Err(_) => return,
        };
        frame.clear();
        // octet counting when the frame starts with `DIGITS SP` (a line may start with a
        // digit too: an ISO timestamp without a priority)
        let digits = head.iter().take_while(|b| b.is_ascii_digit()).count();
        let counted = digits > 0 && digits <= 9 && head.get(digits).is_none_or(|&b| b == b' ');
        if counted {
            // octet counting: digits, a space, then that many bytes
            let mut len = Vec::new();
            if read_until_limited(&mut r, b' ', &mut len, 10, s).is_none() {
                c.bad_frame.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let n: usize = match std::str::from_utf8(&len[..len.len() - 1])
                .ok()
                .and_then(|t| t.parse().ok())
            {
                Some(n) => n,
                None => {
                    c.bad_frame.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            if n > MAX_MESSAGE {
                c.too_long.fetch_add(1, Ordering::Relaxed);
                return;
            }
            frame.resize(n, 0);
            if read_exact_retry(&mut r, &mut frame, s).is_none() {
                return;
            }
        } else {
            match read_until_limited(&mut r, b'\n', &mut frame, MAX_MESSAGE, s) {
                Some(()) => {}
                None => {
                    if frame.len() > MAX_MESSAGE {
                        c.too_long.fetch_add(1, Ordering::Relaxed);
                    } else if !frame.is_empty() {
                        // the connection closed after a last line without its newline
                        let _ = tx.send((from, std::mem::take(&mut frame)));
                    }
                    return;
                }
            }
        }
        // back-pressure: a TCP sender waits while the queue is full
        if tx.send((from, std::mem::take(&mut frame))).is_err() {
            return;
        }
    }
}

/// Reads up to and including `delim`, at most `limit` bytes; `None` at end of input, on an
/// error, or over the limit.
fn read_until_limited<S: Read>(
    r: &mut BufReader<S>,
    delim: u8,
    out: &mut Vec<u8>,
    limit: usize,
    s: &SyslogHandle,
) -> Option<()> {
    loop {
        let avail = match r.fill_buf() {
            Ok([]) => return None,
            Ok(b) => b,
            Err(e) if timed_out(&e) => {
                if s.is_down() {
                    return None;
                }
                continue;
            }
            Err(_) => return None,
        };
        let (take, done) = match memchr::memchr(delim, avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        out.extend_from_slice(&avail[..take]);
        r.consume(take);
        if out.len() > limit + 1 {
            return None;
        }
        if done {
            return Some(());
        }
    }
}

fn read_exact_retry<S: Read>(r: &mut BufReader<S>, buf: &mut [u8], s: &SyslogHandle) -> Option<()> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(e) if timed_out(&e) => {
                if s.is_down() {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    Some(())
}

/// The format a stream was found to be, for reports.
pub fn stream_format(r: &SyslogReceiver, from: IpAddr, app: &str) -> Option<LogFormat> {
    r.streams.get(&(from, app.to_string())).map(|p| p.format)
}

/// A read timeout (the socket's periodic wake-up to check for shutdown), not a failure.
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
