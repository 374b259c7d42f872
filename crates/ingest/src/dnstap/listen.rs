//! Live dnstap: a Frame Streams receiver on a unix socket or TCP, as an [`EventReader`].
//!
//! Design (usable from a plain blocking thread and from the tokio-based resolver alike, without
//! tying ingest to an async runtime): [`listen_unix`] / [`listen_tcp`] bind the socket and start
//! std threads — one acceptor, one per connection (at most [`ListenOptions::max_connections`]).
//! A connection thread does the bidirectional handshake (READY → ACCEPT → START … STOP →
//! FINISH; a sender that starts with START directly is accepted too), reads data frames (capped
//! at [`super::DnstapOptions::max_frame`]) and sends them in batches over a *bounded* channel.
//! The returned [`DnstapListener`] is the consumer: its [`EventReader::next_batch`] decodes the
//! frames and pairs queries with responses in the caller's thread with a single
//! [`super::DnstapDecoder`], so a query and its response pair even when a server spreads them
//! over several connections. From async code, drive it from `spawn_blocking` or a dedicated
//! thread and forward the batches.
//!
//! Backpressure: when the consumer falls behind, the channel fills, connection threads stop
//! reading, and the DNS server's own dnstap queue drops messages (as fstrm senders are designed
//! to) — the DNS server never waits for dnsight.
//!
//! Time: `next_batch` blocks until frames arrive or [`ListenOptions::idle_flush`] passes; when the
//! stream is idle, event time is advanced by the wall time elapsed since the last frame so that
//! unanswered queries are emitted after the pairing timeout instead of waiting for more traffic.
//! It returns `Ok(false)` only after [`ShutdownHandle::shutdown`] (or dropping the listener)
//! once every connection has ended; pending queries are flushed then.
//!
//! Counted rejects, besides the decoder's: `fstrm.too_many_connections`, handshake failures
//! (`fstrm.bad_handshake`, `fstrm.content_type_mismatch`, `fstrm.io_error` for a sender that
//! stalls in the handshake longer than [`ListenOptions::handshake_timeout`]),
//! `fstrm.frame_too_large`, `fstrm.truncated` (a connection that died inside a frame),
//! `fstrm.unexpected_control`. `records` counts data frames; `connections` are reported by
//! [`DnstapListener::connections`].

use super::framestream::{
    accept_handshake, Control, Frame, FrameReader, CONTROL_FINISH, CONTROL_STOP,
    DNSTAP_CONTENT_TYPE,
};
use super::{DnstapDecoder, DnstapOptions};
use crate::{EventReader, IngestError, IngestStats};
use dnsight_model::{DnsEvent, Ts};
use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames per channel message.
const FRAMES_PER_SEND: usize = 256;

/// Options of the live listeners.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    pub dnstap: DnstapOptions,
    /// Concurrent sender connections; more are closed at once.
    pub max_connections: usize,
    /// A sender must complete READY/START within this time.
    pub handshake_timeout: Duration,
    /// Capacity of the frame channel, in batches of up to 256 frames.
    pub queue_batches: usize,
    /// How long `next_batch` waits for frames before advancing time and returning.
    pub idle_flush: Duration,
    /// Permissions of the unix socket file (e.g. `0o660` so a DNS server running as another user
    /// in the same group can connect). `None` keeps the process umask.
    pub unix_mode: Option<u32>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            dnstap: DnstapOptions::default(),
            max_connections: 64,
            handshake_timeout: Duration::from_secs(10),
            queue_batches: 64,
            idle_flush: Duration::from_millis(500),
            unix_mode: None,
        }
    }
}

trait Conn: Read + Write + Send + Sized + 'static {
    fn clone_conn(&self) -> io::Result<Self>;
    fn close(&self);
    fn read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Conn for UnixStream {
    fn clone_conn(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
}

impl Conn for TcpStream {
    fn clone_conn(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
}

#[derive(Clone, Debug)]
enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

struct Shared {
    stop: AtomicBool,
    /// Framing-level figures (records and `fstrm.*` rejects) from the connection threads.
    frame_stats: Mutex<IngestStats>,
    /// Open connections, closable from [`ShutdownHandle::shutdown`].
    conns: Mutex<HashMap<u64, Box<dyn Fn() + Send>>>,
    active: AtomicUsize,
    accepted: AtomicU64,
    endpoint: Endpoint,
    /// The channel's original sender; connection threads get clones. Shutdown drops it, so the
    /// channel disconnects once the open connections end, whatever the acceptor is doing.
    tx: Mutex<Option<SyncSender<Vec<Vec<u8>>>>>,
}

/// Stops a listener from any thread (cloneable).
#[derive(Clone)]
pub struct ShutdownHandle(Arc<Shared>);

impl ShutdownHandle {
    /// Stops accepting, closes every connection; the listener's `next_batch` then drains what
    /// was received, flushes pending queries and returns `Ok(false)`. Idempotent.
    pub fn shutdown(&self) {
        let s = &self.0;
        if s.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        drop(s.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        // wake the acceptor blocked in accept()
        match &s.endpoint {
            Endpoint::Unix(p) => {
                let _ = UnixStream::connect(p);
                let _ = std::fs::remove_file(p);
            }
            Endpoint::Tcp(a) => {
                let mut a = *a;
                if a.ip().is_unspecified() {
                    a.set_ip(if a.is_ipv4() {
                        [127, 0, 0, 1].into()
                    } else {
                        std::net::Ipv6Addr::LOCALHOST.into()
                    });
                }
                let _ = TcpStream::connect_timeout(&a, Duration::from_secs(1));
            }
        }
        for close in s.conns.lock().unwrap_or_else(|e| e.into_inner()).values() {
            close();
        }
    }
}

/// A live dnstap receiver (see the module docs). Dropping it shuts it down.
pub struct DnstapListener {
    rx: Receiver<Vec<Vec<u8>>>,
    decoder: DnstapDecoder,
    shared: Arc<Shared>,
    decode_stats: IngestStats,
    stats: IngestStats,
    idle_flush: Duration,
    last_rx: Instant,
    done: bool,
}

impl DnstapListener {
    /// The bound TCP address (useful with port 0), `None` for unix sockets.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.shared.endpoint {
            Endpoint::Tcp(a) => Some(a),
            Endpoint::Unix(_) => None,
        }
    }

    /// The socket path, `None` for TCP.
    pub fn path(&self) -> Option<&Path> {
        match &self.shared.endpoint {
            Endpoint::Unix(p) => Some(p),
            Endpoint::Tcp(_) => None,
        }
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shared.clone())
    }

    /// Connections accepted so far, and currently open.
    pub fn connections(&self) -> (u64, usize) {
        (
            self.shared.accepted.load(Ordering::Relaxed),
            self.shared.active.load(Ordering::Relaxed),
        )
    }

    fn refresh_stats(&mut self) {
        let mut s = self
            .shared
            .frame_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.merge(&self.decode_stats);
        self.stats = s;
    }
}

impl EventReader for DnstapListener {
    fn next_batch(&mut self, out: &mut Vec<DnsEvent>) -> Result<bool, IngestError> {
        if self.done {
            return Ok(false);
        }
        let start = out.len();
        match self.rx.recv_timeout(self.idle_flush) {
            Ok(frames) => {
                self.last_rx = Instant::now();
                let mut frames = Some(frames);
                while let Some(batch) = frames.take() {
                    for f in &batch {
                        self.decoder.push_frame(f, &mut self.decode_stats, out);
                    }
                    if out.len() - start < super::BATCH {
                        match self.rx.try_recv() {
                            Ok(b) => frames = Some(b),
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(latest) = self.decoder.latest() {
                    let idle = self.last_rx.elapsed().as_micros().min(i64::MAX as u128) as i64;
                    self.decoder.advance(
                        Ts(latest.0.saturating_add(idle)),
                        &mut self.decode_stats,
                        out,
                    );
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.decoder.flush(&mut self.decode_stats, out);
                self.done = true;
            }
        }
        self.refresh_stats();
        Ok(!self.done || out.len() > start)
    }

    fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

impl Drop for DnstapListener {
    fn drop(&mut self) {
        self.shutdown_handle().shutdown();
    }
}

/// Listens on a unix socket at `path` (a stale socket file there is replaced; any other file is
/// an error). The socket file is removed when the listener shuts down.
pub fn listen_unix(
    path: impl AsRef<Path>,
    opts: &ListenOptions,
) -> Result<DnstapListener, IngestError> {
    let path = path.as_ref().to_path_buf();
    let name = path.display().to_string();
    let io_err = |e| IngestError::Io {
        path: name.clone(),
        source: e,
    };
    if let Ok(md) = std::fs::symlink_metadata(&path) {
        use std::os::unix::fs::FileTypeExt;
        if !md.file_type().is_socket() {
            return Err(IngestError::Other(format!(
                "{name}: exists and is not a socket"
            )));
        }
        std::fs::remove_file(&path).map_err(io_err)?;
    }
    let listener = UnixListener::bind(&path).map_err(io_err)?;
    if let Some(mode) = opts.unix_mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    }
    start(Endpoint::Unix(path), opts, move || {
        listener.accept().map(|(s, _)| s)
    })
}

/// Listens on TCP (`127.0.0.1:0` picks a free port; see [`DnstapListener::local_addr`]).
pub fn listen_tcp(
    addr: impl ToSocketAddrs,
    opts: &ListenOptions,
) -> Result<DnstapListener, IngestError> {
    let listener = TcpListener::bind(addr).map_err(|e| IngestError::Io {
        path: "dnstap tcp listener".into(),
        source: e,
    })?;
    let local = listener.local_addr().map_err(|e| IngestError::Io {
        path: "dnstap tcp listener".into(),
        source: e,
    })?;
    start(Endpoint::Tcp(local), opts, move || {
        listener.accept().map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        })
    })
}

fn start<S: Conn>(
    endpoint: Endpoint,
    opts: &ListenOptions,
    mut accept: impl FnMut() -> io::Result<S> + Send + 'static,
) -> Result<DnstapListener, IngestError> {
    let (tx, rx) = sync_channel(opts.queue_batches.max(1));
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        frame_stats: Mutex::new(IngestStats::default()),
        conns: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
        accepted: AtomicU64::new(0),
        endpoint,
        tx: Mutex::new(Some(tx)),
    });
    let sh = shared.clone();
    let o = opts.clone();
    std::thread::Builder::new()
        .name("dnstap-accept".into())
        .spawn(move || {
            let mut next_id = 0u64;
            let mut failures = 0u32;
            while !sh.stop.load(Ordering::SeqCst) {
                let stream = match accept() {
                    Ok(s) => s,
                    Err(_) => {
                        // e.g. EMFILE: back off a little instead of spinning
                        failures = failures.saturating_add(1);
                        std::thread::sleep(Duration::from_millis(
                            10 * u64::from(failures.min(100)),
                        ));
                        continue;
                    }
                };
                failures = 0;
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                if sh.active.load(Ordering::SeqCst) >= o.max_connections {
                    sh.frame_stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .reject("fstrm.too_many_connections");
                    stream.close();
                    continue;
                }
                let Some(tx2) = sh.tx.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
                    stream.close();
                    break;
                };
                let Ok(closer) = stream.clone_conn() else {
                    continue;
                };
                next_id += 1;
                let id = next_id;
                sh.conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, Box::new(move || closer.close()));
                sh.active.fetch_add(1, Ordering::SeqCst);
                sh.accepted.fetch_add(1, Ordering::Relaxed);
                // a shutdown racing with this accept: make sure the new connection is closed too
                if sh.stop.load(Ordering::SeqCst) {
                    stream.close();
                }
                let (sh2, o2) = (sh.clone(), o.clone());
                let spawned = std::thread::Builder::new()
                    .name("dnstap-conn".into())
                    .spawn(move || {
                        serve_conn(stream, &sh2, &tx2, &o2);
                        sh2.conns
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&id);
                        sh2.active.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    sh.conns
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    sh.active.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
        .map_err(|e| IngestError::Other(format!("cannot start dnstap listener thread: {e}")))?;
    Ok(DnstapListener {
        rx,
        decoder: DnstapDecoder::new(&opts.dnstap),
        shared,
        decode_stats: IngestStats::default(),
        stats: IngestStats::default(),
        idle_flush: opts.idle_flush,
        last_rx: Instant::now(),
        done: false,
    })
}

/// One sender connection: handshake, then frames to the channel until STOP or close.
fn serve_conn<S: Conn>(
    stream: S,
    shared: &Shared,
    tx: &SyncSender<Vec<Vec<u8>>>,
    opts: &ListenOptions,
) {
    let mut local = IngestStats::default();
    let flush_stats = |local: &mut IngestStats| {
        shared
            .frame_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(local);
        *local = IngestStats::default();
    };
    let read_half = match stream.clone_conn() {
        Ok(r) => r,
        Err(_) => return,
    };
    let mut writer = stream;
    let mut reader = FrameReader::new(
        BufReader::with_capacity(64 * 1024, read_half),
        opts.dnstap.max_frame,
    );
    let _ = writer.read_timeout(Some(opts.handshake_timeout));
    let bidirectional = match accept_handshake(&mut reader, &mut writer, DNSTAP_CONTENT_TYPE) {
        Ok(b) => b,
        Err(e) => {
            if !shared.stop.load(Ordering::SeqCst) {
                local.reject(e.reason());
            }
            flush_stats(&mut local);
            writer.close();
            return;
        }
    };
    let _ = writer.read_timeout(None);
    let mut batch: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut stop = false;
        match reader.next_frame() {
            Ok(Some(Frame::Data(d))) => {
                local.records += 1;
                batch.push(d.to_vec());
            }
            Ok(Some(Frame::TooLarge(_))) => {
                local.records += 1;
                local.reject("fstrm.frame_too_large");
            }
            Ok(Some(Frame::Control(c))) if c.kind == CONTROL_STOP => stop = true,
            Ok(Some(Frame::Control(_))) => local.reject("fstrm.unexpected_control"),
            Ok(None) => break,
            Err(e) => {
                if !shared.stop.load(Ordering::SeqCst) {
                    local.reject(e.reason());
                }
                break;
            }
        }
        if !batch.is_empty() && (stop || batch.len() >= FRAMES_PER_SEND || reader.buffer_empty()) {
            flush_stats(&mut local);
            if tx.send(std::mem::take(&mut batch)).is_err() {
                break;
            }
        }
        if stop {
            if bidirectional {
                let _ = writer.write_all(&Control::new(CONTROL_FINISH, None).encode());
                let _ = writer.flush();
            }
            break;
        }
    }
    flush_stats(&mut local);
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    writer.close();
}
