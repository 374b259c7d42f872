//! Encrypted transports: DNS over TLS (RFC 7858) and DNS over HTTPS (RFC 8484), as listeners
//! with a configured certificate and as upstreams. rustls with the ring provider.
//!
//! DoT is the TCP stream protocol inside TLS, so it reuses [`crate::serve_stream`]. DoH is a
//! deliberately small HTTP/1.1 implementation (GET `?dns=` base64url and POST
//! `application/dns-message`, keep-alive, bounded header and body sizes): DNS needs nothing more
//! and the attack surface stays small. Upstream DoT/DoH connections are kept in a small pool so
//! a miss does not pay a TLS handshake.

use crate::server::{Core, Outcome, Peer, Scratch};
use crate::wire;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{client::TlsStream, TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a server config from PEM files; `alpn` e.g. `[b"dot"]` or `[b"http/1.1"]`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate {}: no PEM certificate found",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("private key {}: {e}", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate/key: {e}"))?;
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Client config trusting the web PKI roots plus an optional extra CA file.
pub fn client_config(
    extra_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(p) = extra_ca {
        for c in
            CertificateDer::pem_file_iter(p).map_err(|e| format!("CA file {}: {e}", p.display()))?
        {
            let c = c.map_err(|e| format!("CA file {}: {e}", p.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("CA file {}: {e}", p.display()))?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Accepts DoT connections.
pub async fn dot_accept(
    core: Arc<Core>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limit: Arc<tokio::sync::Semaphore>,
    idle: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((stream, src)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            core.stats.tcp_rejected.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        core.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let (core, acceptor) = (core.clone(), acceptor.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let local = stream.local_addr().unwrap_or(src);
            let _ = stream.set_nodelay(true);
            let Ok(Ok(tls)) = tokio::time::timeout(idle, acceptor.accept(stream)).await else {
                core.stats.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
                return;
            };
            crate::serve_stream(
                core,
                tls,
                Peer {
                    client: src,
                    server: local,
                    transport: dnsight_model::Transport::Dot,
                },
                idle,
            )
            .await;
        });
    }
}

/// Accepts DoH connections.
pub async fn doh_accept(
    core: Arc<Core>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limit: Arc<tokio::sync::Semaphore>,
    idle: Duration,
    path: Arc<str>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((stream, src)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            core.stats.tcp_rejected.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        core.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let (core, acceptor, path) = (core.clone(), acceptor.clone(), path.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let local = stream.local_addr().unwrap_or(src);
            let _ = stream.set_nodelay(true);
            let Ok(Ok(tls)) = tokio::time::timeout(idle, acceptor.accept(stream)).await else {
                core.stats.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
                return;
            };
            serve_http(
                core,
                tls,
                Peer {
                    client: src,
                    server: local,
                    transport: dnsight_model::Transport::Doh,
                },
                idle,
                &path,
            )
            .await;
        });
    }
}

const MAX_HEAD: usize = 8192;

/// Decodes base64url without padding (RFC 8484 `dns=`); None on any invalid character.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s.trim_end_matches('=').as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

pub fn base64url_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(b.len() * 4 / 3 + 2);
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for i in 0..=ch.len() {
            s.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    s
}

/// A parsed HTTP/1.1 request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub content_length: Option<usize>,
    pub content_type: Option<String>,
    pub close: bool,
}

/// Parses a request head (up to and including the blank line).
pub fn parse_head(h: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(h).ok()?;
    let mut lines = text.split("\r\n");
    let mut rl = lines.next()?.split(' ');
    let (method, target, version) = (rl.next()?, rl.next()?, rl.next()?);
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut head = Head {
        method: method.to_string(),
        target: target.to_string(),
        content_length: None,
        content_type: None,
        close: version == "HTTP/1.0",
    };
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => head.content_length = Some(v.parse().ok()?),
            "content-type" => head.content_type = Some(v.to_ascii_lowercase()),
            "connection" => head.close = v.eq_ignore_ascii_case("close"),
            "transfer-encoding" => return None, // chunked bodies are not supported
            _ => {}
        }
    }
    Some(head)
}

async fn respond<S: tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    status: &str,
    body: &[u8],
    ttl: Option<u32>,
) -> std::io::Result<()> {
    let mut r = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    if !body.is_empty() {
        r.push_str("content-type: application/dns-message\r\n");
    }
    if let Some(t) = ttl {
        r.push_str(&format!("cache-control: max-age={t}\r\n"));
    }
    r.push_str("\r\n");
    let mut out = r.into_bytes();
    out.extend_from_slice(body);
    s.write_all(&out).await
}

/// Serves DoH requests on one connection.
pub async fn serve_http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    core: Arc<Core>,
    mut s: S,
    peer: Peer,
    idle: Duration,
    path: &str,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut scratch = Scratch::default();
    let mut chunk = vec![0u8; 16384];
    loop {
        // read the head
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                let _ = respond(&mut s, "431 Request Header Fields Too Large", &[], None).await;
                return;
            }
            match tokio::time::timeout(idle, s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    core.stats.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        };
        let Some(head) = parse_head(&buf[..end]) else {
            core.stats.garbage.fetch_add(1, Ordering::Relaxed);
            let _ = respond(&mut s, "400 Bad Request", &[], None).await;
            return;
        };
        buf.drain(..end);
        let (tpath, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
        let msg: Result<Vec<u8>, &str> = if tpath != path {
            Err("404 Not Found")
        } else if head.method == "GET" {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix("dns="))
                .and_then(base64url_decode)
                .ok_or("400 Bad Request")
        } else if head.method == "POST" {
            match (head.content_length, head.content_type.as_deref()) {
                (Some(n), _) if n > 65535 => Err("413 Content Too Large"),
                (Some(n), Some("application/dns-message")) => {
                    while buf.len() < n {
                        match tokio::time::timeout(idle, s.read(&mut chunk)).await {
                            Ok(Ok(0)) | Ok(Err(_)) => return,
                            Ok(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
                            Err(_) => {
                                core.stats.tcp_timeouts.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                    Ok(buf.drain(..n).collect())
                }
                (None, _) => Err("411 Length Required"),
                _ => Err("415 Unsupported Media Type"),
            }
        } else {
            Err("405 Method Not Allowed")
        };
        let result = match msg {
            Err(status) => respond(&mut s, status, &[], None).await,
            Ok(m) => {
                let now = Instant::now();
                match core.handle(&m, &peer, &mut scratch, now) {
                    Outcome::Reply => {
                        let ttl = wire::inspect_response(&scratch.out).and_then(|i| i.ttl);
                        respond(&mut s, "200 OK", &scratch.out, ttl).await
                    }
                    Outcome::Drop => respond(&mut s, "400 Bad Request", &[], None).await,
                    Outcome::Miss(q) => {
                        let key = scratch.key.clone();
                        let out = core.resolve(&m, &q, &key, &peer, now).await;
                        let ttl = wire::inspect_response(&out).and_then(|i| i.ttl);
                        respond(&mut s, "200 OK", &out, ttl).await
                    }
                }
            }
        };
        if result.is_err() || head.close {
            return;
        }
    }
}

/// A pool of idle TLS connections to one upstream.
pub struct TlsPool {
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    idle: Mutex<Vec<TlsStream<TcpStream>>>,
}

impl TlsPool {
    pub fn new(
        addr: SocketAddr,
        name: &str,
        cfg: Arc<rustls::ClientConfig>,
    ) -> Result<TlsPool, String> {
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("TLS name {name:?}: {e}"))?;
        Ok(TlsPool {
            addr,
            name,
            connector: TlsConnector::from(cfg),
            idle: Mutex::new(Vec::new()),
        })
    }
    async fn connect(&self) -> Option<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await.ok()?;
        let _ = tcp.set_nodelay(true);
        self.connector.connect(self.name.clone(), tcp).await.ok()
    }
    fn take(&self) -> Option<TlsStream<TcpStream>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }
    fn put(&self, s: TlsStream<TcpStream>) {
        let mut v = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < 8 {
            v.push(s);
        }
    }

    /// DoT exchange: a pooled connection first, a fresh one if that fails.
    pub async fn dot_exchange(&self, msg: &[u8]) -> Option<Vec<u8>> {
        if let Some(mut s) = self.take() {
            if let Some(r) = dot_once(&mut s, msg).await {
                self.put(s);
                return Some(r);
            }
        }
        let mut s = self.connect().await?;
        let r = dot_once(&mut s, msg).await?;
        self.put(s);
        Some(r)
    }

    /// DoH exchange (HTTP/1.1 POST to `path`).
    pub async fn doh_exchange(&self, host: &str, path: &str, msg: &[u8]) -> Option<Vec<u8>> {
        if let Some(mut s) = self.take() {
            if let Some(r) = doh_once(&mut s, host, path, msg).await {
                self.put(s);
                return Some(r);
            }
        }
        let mut s = self.connect().await?;
        let r = doh_once(&mut s, host, path, msg).await?;
        self.put(s);
        Some(r)
    }
}

async fn dot_once(s: &mut TlsStream<TcpStream>, msg: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out).await.ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

async fn doh_once(
    s: &mut TlsStream<TcpStream>,
    host: &str,
    path: &str,
    msg: &[u8],
) -> Option<Vec<u8>> {
    let mut req = format!("POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/dns-message\r\naccept: application/dns-message\r\ncontent-length: {}\r\n\r\n", msg.len()).into_bytes();
    req.extend_from_slice(msg);
    s.write_all(&req).await.ok()?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status = head.split(' ').nth(1)?;
    if status != "200" {
        return None;
    }
    let len: usize = head
        .split("\r\n")
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse().ok())
        })
        .flatten()?;
    if len > 65535 {
        return None;
    }
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_roundtrip() {
        for n in 0..40u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(91)).collect();
            assert_eq!(base64url_decode(&base64url_encode(&v)).unwrap(), v);
        }
        assert_eq!(
            base64url_decode("AAEAAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB")
                .unwrap()
                .len(),
            33
        );
        assert!(base64url_decode("a b").is_none());
    }

    #[test]
    fn heads() {
        let h = parse_head(b"POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: application/dns-message\r\nContent-Length: 33\r\n\r\n").unwrap();
        assert_eq!(
            (h.method.as_str(), h.content_length, h.close),
            ("POST", Some(33), false)
        );
        assert!(parse_head(b"GET / HTTP/2\r\n\r\n").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nbroken\r\n\r\n").is_none());
        assert!(parse_head(&[0xff, 0xfe, b'\r', b'\n']).is_none());
    }
}
