//! Delivery over each transport. Every call is bounded by the target's timeout; a failure says
//! whether trying again can help (a 4xx other than 408/429 from a webhook cannot).

use crate::config::{Dest, SmtpTls, SyslogTransport, Target};
use crate::format::{self, Batch};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;

#[derive(Debug)]
pub struct SendError {
    pub msg: String,
    /// Trying again cannot help.
    pub permanent: bool,
}

impl SendError {
    fn retry(msg: impl Into<String>) -> SendError {
        SendError {
            msg: msg.into(),
            permanent: false,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

/// The signature a webhook receiver checks: `sha256=` and the hex HMAC-SHA256, keyed with the
/// target's secret, of `TIMESTAMP.BODY` (TIMESTAMP as sent in `X-Dnsight-Timestamp`).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    let tag = m.finalize().into_bytes();
    let mut s = String::from("sha256=");
    for b in tag {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, SendError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        use rustls_pki_types::pem::PemObject;
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| SendError::retry(format!("ca_file: {e}")))?;
            roots
                .add(c)
                .map_err(|e| SendError::retry(format!("ca_file: {e}")))?;
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SendError::retry(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| jiff::Timestamp::now().to_string())
}

/// A target's delivery state (kept connections).
pub struct Sender {
    target: Target,
    tls: Option<Arc<rustls::ClientConfig>>,
    agent: Option<ureq::Agent>,
    stream: Option<Box<dyn Write + Send>>,
    hostname: String,
}

impl Sender {
    pub fn new(target: Target) -> Sender {
        Sender {
            target,
            tls: None,
            agent: None,
            stream: None,
            hostname: hostname(),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn tls(&mut self) -> Result<Arc<rustls::ClientConfig>, SendError> {
        if self.tls.is_none() {
            self.tls = Some(tls_config(self.target.ca_pem.as_deref())?);
        }
        Ok(self.tls.clone().expect("set above"))
    }

    fn agent(&mut self) -> Result<ureq::Agent, SendError> {
        if self.agent.is_none() {
            let tls = self.tls()?;
            self.agent = Some(
                ureq::AgentBuilder::new()
                    .timeout(self.target.timeout)
                    .tls_config(tls)
                    .redirects(0)
                    .user_agent(concat!("dnsight/", env!("CARGO_PKG_VERSION")))
                    .build(),
            );
        }
        Ok(self.agent.clone().expect("set above"))
    }

    /// Delivers one notification or one digest.
    pub fn send(&mut self, b: Batch<'_>) -> Result<(), SendError> {
        let now = jiff::Timestamp::now().as_second();
        match self.target.dest.clone() {
            Dest::Webhook { url, secret } => {
                let body = serde_json::to_vec(&format::json_body(&self.target, b, now))
                    .map_err(|e| SendError::retry(e.to_string()))?;
                let event = match b {
                    Batch::One(i) => i.event.as_str(),
                    Batch::Digest(_) => "digest",
                };
                let mut req = self
                    .agent()?
                    .post(&url)
                    .set("Content-Type", "application/json")
                    .set("X-Dnsight-Event", event)
                    .set("X-Dnsight-Timestamp", &now.to_string());
                if let Batch::One(i) = b {
                    req = req.set("X-Dnsight-Delivery", &i.id.to_string());
                }
                if let Some(s) = &secret {
                    req = req.set("X-Dnsight-Signature", &signature(s, now, &body));
                }
                http_result(req.send_bytes(&body), &url)
            }
            Dest::Chat { url, dialect } => {
                let body = serde_json::to_vec(&format::chat_body(&self.target, dialect, b))
                    .map_err(|e| SendError::retry(e.to_string()))?;
                let req = self
                    .agent()?
                    .post(&url)
                    .set("Content-Type", "application/json");
                http_result(req.send_bytes(&body), &url)
            }
            Dest::Syslog {
                address,
                transport,
                server_name,
                facility,
                app_name,
            } => {
                let msg =
                    format::syslog_message(facility, &app_name, &self.hostname, b, &now_rfc3339());
                self.syslog(&address, transport, &server_name, msg.as_bytes())
            }
            Dest::Email {
                host,
                port,
                tls,
                credentials,
                from,
                to,
            } => self.email(&host, port, tls, credentials, &from, &to, b),
            Dest::File { path } => {
                let mut lines = Vec::new();
                match b {
                    Batch::One(_) | Batch::Digest(_) => {
                        serde_json::to_writer(&mut lines, &format::json_body(&self.target, b, now))
                            .map_err(|e| SendError::retry(e.to_string()))?;
                        lines.push(b'\n');
                    }
                }
                let r = if path.as_os_str() == "-" {
                    let mut o = std::io::stdout().lock();
                    o.write_all(&lines).and_then(|_| o.flush())
                } else {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .and_then(|mut f| f.write_all(&lines))
                };
                r.map_err(|e| SendError::retry(format!("{}: {e}", path.display())))
            }
        }
    }

    fn syslog(
        &mut self,
        address: &str,
        transport: SyslogTransport,
        server_name: &str,
        msg: &[u8],
    ) -> Result<(), SendError> {
        let addr = address
            .to_socket_addrs()
            .map_err(|e| SendError::retry(format!("{address}: {e}")))?
            .next()
            .ok_or_else(|| SendError::retry(format!("{address}: no address")))?;
        if transport == SyslogTransport::Udp {
            let bind = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = UdpSocket::bind(bind).map_err(|e| SendError::retry(e.to_string()))?;
            // one datagram; receivers commonly take 64 KiB, the RFC asks for at least 480 bytes
            let m = &msg[..msg.len().min(60_000)];
            s.send_to(m, addr)
                .map_err(|e| SendError::retry(format!("{address}: {e}")))?;
            return Ok(());
        }
        // octet counting (RFC 6587 / RFC 5425): "LEN SP MSG"
        let mut framed = format!("{} ", msg.len()).into_bytes();
        framed.extend_from_slice(msg);
        for attempt in 0..2 {
            if self.stream.is_none() {
                let tcp = TcpStream::connect_timeout(&addr, self.target.timeout)
                    .map_err(|e| SendError::retry(format!("{address}: {e}")))?;
                let _ = tcp.set_write_timeout(Some(self.target.timeout));
                let _ = tcp.set_read_timeout(Some(self.target.timeout));
                let _ = tcp.set_nodelay(true);
                self.stream = Some(if transport == SyslogTransport::Tls {
                    let name = rustls_pki_types::ServerName::try_from(server_name.to_string())
                        .map_err(|e| {
                            SendError::retry(format!("server_name {server_name:?}: {e}"))
                        })?;
                    let conn = rustls::ClientConnection::new(self.tls()?, name)
                        .map_err(|e| SendError::retry(e.to_string()))?;
                    let mut s = rustls::StreamOwned::new(conn, tcp);
                    // finish the handshake now, so a certificate problem is reported as such
                    while s.conn.is_handshaking() {
                        s.conn
                            .complete_io(&mut s.sock)
                            .map_err(|e| SendError::retry(format!("{address}: TLS: {e}")))?;
                    }
                    Box::new(s)
                } else {
                    Box::new(tcp)
                });
            }
            let w = self.stream.as_mut().expect("connected above");
            match w.write_all(&framed).and_then(|_| w.flush()) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.stream = None;
                    if attempt == 1 {
                        return Err(SendError::retry(format!("{address}: {e}")));
                    }
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn email(
        &mut self,
        host: &str,
        port: u16,
        tls: SmtpTls,
        credentials: Option<(String, String)>,
        from: &str,
        to: &[String],
        b: Batch<'_>,
    ) -> Result<(), SendError> {
        use lettre::message::header::ContentType;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        use lettre::{Message, SmtpTransport, Transport};
        let (subject, body) = format::email(&self.target, b);
        let perm = |m: String| SendError {
            msg: m,
            permanent: true,
        };
        let mut m = Message::builder()
            .from(from.parse().map_err(|e| perm(format!("from: {e}")))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for t in to {
            m = m.to(t.parse().map_err(|e| perm(format!("to {t}: {e}")))?);
        }
        let msg = m.body(body).map_err(|e| perm(e.to_string()))?;
        let params = || -> Result<TlsParameters, SendError> {
            let mut p = TlsParameters::builder(host.to_string());
            if let Some(pem) = &self.target.ca_pem {
                let c = Certificate::from_pem(pem)
                    .map_err(|e| SendError::retry(format!("ca_file: {e}")))?;
                p = p.add_root_certificate(c);
            }
            p.build_rustls()
                .map_err(|e| SendError::retry(format!("TLS: {e}")))
        };
        let mut tb = SmtpTransport::builder_dangerous(host)
            .port(port)
            .timeout(Some(self.target.timeout));
        tb = match tls {
            SmtpTls::StartTls => tb.tls(Tls::Required(params()?)),
            SmtpTls::Wrapper => tb.tls(Tls::Wrapper(params()?)),
            SmtpTls::None => tb.tls(Tls::None),
        };
        if let Some((u, p)) = credentials {
            tb = tb.credentials(lettre::transport::smtp::authentication::Credentials::new(
                u, p,
            ));
        }
        let tr = tb.build();
        match tr.send(&msg) {
            Ok(_) => Ok(()),
            Err(e) => Err(SendError {
                permanent: e.is_permanent(),
                msg: format!("SMTP {host}:{port}: {e}"),
            }),
        }
    }
}

/// The outcome of a webhook or chat POST. The message never holds the URL's path, query or
/// user info (hook paths are secrets: Slack, Teams): the error is said with the host only, and
/// the full URL is scrubbed from the transport's own text (which ureq starts with the URL).
fn http_result(r: Result<ureq::Response, ureq::Error>, url: &str) -> Result<(), SendError> {
    match r {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, _)) => Err(SendError {
            msg: format!("HTTP {code}"),
            permanent: (400..500).contains(&code) && code != 408 && code != 429,
        }),
        Err(ureq::Error::Transport(t)) => {
            let mut msg = format!("{}: {}", crate::config::redact_url(url), t.kind());
            if let Some(m) = t.message() {
                msg.push_str(": ");
                msg.push_str(&scrub(m, url));
            }
            if let Some(src) = std::error::Error::source(&t) {
                msg.push_str(": ");
                msg.push_str(&scrub(&src.to_string(), url));
            }
            Err(SendError::retry(msg))
        }
    }
}

/// `text` without `url` or its path (in case a lower layer repeated them).
fn scrub(text: &str, url: &str) -> String {
    let mut t = text.replace(url, "…");
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    if let Some((_, path)) = rest.split_once('/') {
        if path.len() > 1 {
            t = t.replace(path, "…");
        }
    }
    t
}

/// Where `Dest` resolves a syslog target (for tests and `check-config`).
pub fn resolve(address: &str) -> Result<std::net::SocketAddr, String> {
    address
        .to_socket_addrs()
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address}: no address"))
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn transport_errors_never_say_the_hook_path_or_query() {
        // nothing listens on port 1: a transport error, whose ureq text starts with the URL
        let url = "http://user:pw@127.0.0.1:1/services/T0001/B0002/SeCrEtHoOkPaTh?token=qwerty";
        let agent = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(2))
            .build();
        let e = http_result(agent.post(url).send_bytes(b"{}"), url).unwrap_err();
        for secret in ["SeCrEtHoOkPaTh", "qwerty", "T0001", "pw@"] {
            assert!(!e.msg.contains(secret), "{secret} in {:?}", e.msg);
        }
        assert!(e.msg.starts_with("http://127.0.0.1:1/…"), "{}", e.msg);
        assert!(!e.permanent);
    }
}
