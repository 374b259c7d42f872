//! Notifications delivered to real receivers on loopback: an HTTP receiver that checks the
//! signature and fails the first tries, an HTTPS one with a private CA, syslog over UDP, TCP and
//! TLS, an SMTP server with STARTTLS (Debian's aiosmtpd), and a flood that turns into digests.
//! The triage store is a real SQLite file; alerts go in as the pipeline writes them.

use dnsight_engine::{Alert, Kind, Severity, Status};
use dnsight_notify::config::{validate, TargetRaw};
use dnsight_notify::{Notifier, Routes, Target};
use dnsight_triage::{OutboxState, SqliteStore, TriageStore};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
/// A name as hostile as DNS allows once escaped, plus what a summary may carry.
const HOSTILE_DEST: &str = "x\"]\\\\<!channel>@here`*_.evil.example";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn alert(id: &str, sev: Severity, dest: &str) -> Alert {
    let t = dnsight_model::Ts::from_secs(now());
    Alert {
        id: id.into(),
        kind: Kind::ThreatIntel,
        severity: sev,
        score: 80,
        device: "10.0.0.5".into(),
        device_name: None,
        group: Some("servers".into()),
        destination: dest.into(),
        first_seen: t,
        last_seen: t,
        count: 1,
        summary: format!("10.0.0.5 resolved {dest}\nInjected: line\r\n<b>bold</b>"),
        evidence: serde_json::json!({"feed": "f"}),
        status: Status::Open,
        devices: vec!["10.0.0.5".into()],
        device_count: 1,
        own_score: 80.0,
    }
}

fn targets(dir: &Path, toml_text: &str) -> Vec<Target> {
    #[derive(serde::Deserialize)]
    struct F {
        notify: Vec<TargetRaw>,
    }
    let f: F = toml::from_str(toml_text).unwrap();
    validate(&f.notify, dir, &|k| {
        (k == "HOOK_SECRET").then(|| "s3cret".into())
    })
    .unwrap()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------ receivers

#[derive(Clone, Debug)]
struct Req {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP/1.1 receiver answering 503 to the first `fail` requests, then 200.
struct Http {
    addr: std::net::SocketAddr,
    got: Arc<Mutex<Vec<Req>>>,
    tries: Arc<Mutex<u32>>,
}

fn read_request(s: &mut dyn Read) -> Option<Req> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    if line.is_empty() {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let n: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some(Req { headers, body })
}

fn start_http(fail: u32, tls: Option<Arc<rustls::ServerConfig>>) -> Http {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let tries = Arc::new(Mutex::new(0u32));
    let (g, t) = (got.clone(), tries.clone());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut stream: Box<dyn ReadWrite> = match &tls {
                Some(cfg) => {
                    let c = rustls::ServerConnection::new(cfg.clone()).unwrap();
                    Box::new(rustls::StreamOwned::new(c, s))
                }
                None => Box::new(s),
            };
            let Some(req) = read_request(&mut stream) else {
                continue;
            };
            let n = {
                let mut t = t.lock().unwrap();
                *t += 1;
                *t
            };
            let status = if n <= fail {
                "503 Service Unavailable"
            } else {
                g.lock().unwrap().push(req);
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.flush();
        }
    });
    Http { addr, got, tries }
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Syslog receivers: UDP datagrams, and octet-counted frames over TCP or TLS.
fn start_syslog_udp() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut b = vec![0u8; 65536];
        while let Ok((n, _)) = s.recv_from(&mut b) {
            g.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&b[..n]).into_owned());
        }
    });
    (addr, got)
}

fn read_frames(s: &mut dyn Read, g: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(s);
    loop {
        let mut len = Vec::new();
        if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
            return;
        }
        let Ok(n) = String::from_utf8_lossy(&len).trim().parse::<usize>() else {
            g.lock().unwrap().push(format!("BAD FRAME {len:?}"));
            return;
        };
        let mut m = vec![0; n];
        if r.read_exact(&mut m).is_err() {
            return;
        }
        g.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&m).into_owned());
    }
}

fn start_syslog_stream(
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let g = g.clone();
            let tls = tls.clone();
            std::thread::spawn(move || match tls {
                Some(cfg) => {
                    let c = rustls::ServerConnection::new(cfg).unwrap();
                    let mut st = rustls::StreamOwned::new(c, s);
                    read_frames(&mut st, &g);
                }
                None => {
                    let mut s = s;
                    read_frames(&mut s, &g)
                }
            });
        }
    });
    (addr, got)
}

/// A certificate for 127.0.0.1 (PEM written to `dir/ca.pem`) and a server config for it.
fn tls_server(dir: &Path) -> Arc<rustls::ServerConfig> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.join("ca.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let cert = rustls_pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls_pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap(),
    )
}

/// Debian's aiosmtpd with STARTTLS required; each message appended to `dir/mail.txt`.
struct Smtp {
    child: std::process::Child,
    port: u16,
}
impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp(dir: &Path) -> Option<Smtp> {
    let py = "/usr/bin/python3";
    let ok = std::process::Command::new(py)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED: Debian's python3-aiosmtpd is not installed (scripts/test.sh installs it)"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = dir.join("smtpd.py");
    std::fs::write(
        &script,
        r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
cert, key, port, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
class H:
    async def handle_DATA(self, server, session, envelope):
        with open(out, 'ab') as f:
            f.write(b'---MSG tls=%d rcpt=%s---\n' % (1 if session.ssl else 0, ','.join(envelope.rcpt_tos).encode()))
            f.write(envelope.content + b'\n')
        return '250 OK'
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(H(), hostname='127.0.0.1', port=port, tls_context=ctx, require_starttls=True)
c.start()
print('ready', flush=True)
while True:
    time.sleep(1)
"#,
    )
    .unwrap();
    let mut child = std::process::Command::new(py)
        .arg(&script)
        .arg(dir.join("ca.pem"))
        .arg(dir.join("key.pem"))
        .arg(port.to_string())
        .arg(dir.join("mail.txt"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
    Some(Smtp { child, port })
}

// ------------------------------------------------------------------ the tests

fn hmac_hex(secret: &str, ts: &str, body: &[u8]) -> String {
    dnsight_notify::send::signature(secret, ts.parse().unwrap(), body)
}

#[test]
fn every_target_gets_the_alert_once_escaped_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_server(dir.path());
    let hook = start_http(2, None); // fails twice, then accepts
    let https = start_http(0, Some(tls.clone()));
    let (udp, udp_got) = start_syslog_udp();
    let (tcp, tcp_got) = start_syslog_stream(None);
    let (stls, stls_got) = start_syslog_stream(Some(tls));
    let smtp = start_smtp(dir.path());
    let mut conf = format!(
        r#"
[[notify]]
name = "hook"
type = "webhook"
url = "http://{hook}/in"
secret_env = "HOOK_SECRET"
link = "https://dnsight.example:8053"

[[notify]]
name = "secure-hook"
type = "slack"
url = "https://127.0.0.1:{hp}/services/T/B/x"
ca_file = "ca.pem"

[[notify]]
name = "udp"
type = "syslog"
address = "{udp}"

[[notify]]
name = "tcp"
type = "syslog"
address = "{tcp}"
transport = "tcp"

[[notify]]
name = "tls"
type = "syslog"
address = "{stls}"
transport = "tls"
ca_file = "ca.pem"

[[notify]]
name = "lines"
type = "file"
path = "events.jsonl"
min_severity = "info"
"#,
        hook = hook.addr,
        hp = https.addr.port(),
    );
    if let Some(s) = &smtp {
        conf.push_str(&format!(
            "\n[[notify]]\nname = \"mail\"\ntype = \"email\"\nsmtp = \"127.0.0.1:{}\"\ntls = \"starttls\"\nca_file = \"ca.pem\"\nfrom = \"dnsight@example.com\"\nto = [\"soc@example.com\"]\n",
            s.port
        ));
    }
    let ts = targets(dir.path(), &conf);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.set_router(Some(Arc::new(Routes::new(&ts))));
    let n = Notifier::spawn(&ts, dir.path()).unwrap();

    let t0 = Instant::now();
    store
        .upsert_alerts(&[alert("a1", Severity::High, HOSTILE_DEST)], now())
        .unwrap();
    // below every target's medium threshold but the file's: only the file gets it
    store
        .upsert_alerts(&[alert("low1", Severity::Low, "quiet.example")], now())
        .unwrap();

    // the webhook: delivered after two 503s, signed over timestamp and body
    let r = wait_for("the webhook", || hook.got.lock().unwrap().first().cloned());
    eprintln!(
        "webhook delivered {:?} after the alert (two 503s first)",
        t0.elapsed()
    );
    assert_eq!(*hook.tries.lock().unwrap(), 3);
    let ts_h = &r.headers["x-dnsight-timestamp"];
    assert_eq!(
        r.headers["x-dnsight-signature"],
        hmac_hex("s3cret", ts_h, &r.body),
        "signature"
    );
    assert_ne!(
        r.headers["x-dnsight-signature"],
        hmac_hex(
            "s3cret",
            &(ts_h.parse::<i64>().unwrap() + 1).to_string(),
            &r.body
        ),
        "the timestamp is part of what is signed"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["event"], "new");
    assert_eq!(
        v["alert"]["destination"], HOSTILE_DEST,
        "JSON carries the name as JSON"
    );
    assert_eq!(v["link"], "https://dnsight.example:8053/ui/alerts/a1");
    assert!(r.headers.contains_key("x-dnsight-delivery"));

    // chat over HTTPS with a private CA: markup neutralised inside a code span
    let c = wait_for("the chat hook", || {
        https.got.lock().unwrap().first().cloned()
    });
    let v: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("*HIGH* threat_intel new"), "{text}");
    assert!(
        !text.contains("<!channel>") && text.contains("&lt;!channel&gt;"),
        "{text}"
    );
    assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");

    // syslog: one RFC 5424 message each, SD-PARAM escaped, no newline
    for (what, got) in [("udp", &udp_got), ("tcp", &tcp_got), ("tls", &stls_got)] {
        let m = wait_for(what, || got.lock().unwrap().first().cloned());
        assert!(m.starts_with("<131>1 "), "{what}: PRI local0.err: {m}");
        assert!(
            m.contains(r#"destination="x\"\]\\\\<!channel>@here`*_.evil.example""#),
            "{what}: SD-PARAM escaping: {m}"
        );
        assert!(m.contains(r#"[dnsight@32473 event="new" id="a1""#), "{m}");
        assert!(!m.contains('\n') && !m.contains('\r'), "{what}: {m:?}");
        assert!(m.contains("\\u{a}Injected"), "{m}");
    }

    // the JSON-lines file: both alerts, one line each
    let lines = wait_for("the file", || {
        let t = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap_or_default();
        (t.lines().count() >= 2).then_some(t)
    });
    let ids: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["alert"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, vec!["a1", "low1"]);

    // e-mail over STARTTLS, headers not injectable
    if smtp.is_some() {
        let mail = wait_for("the e-mail", || {
            let t = std::fs::read_to_string(dir.path().join("mail.txt")).unwrap_or_default();
            t.contains("---MSG").then_some(t)
        });
        assert!(
            mail.contains("---MSG tls=1 rcpt=soc@example.com---"),
            "{mail}"
        );
        let head = mail.split("\r\n\r\n").next().unwrap_or(&mail);
        // header lines as the reader sees them: folded lines joined (RFC 5322 folding)
        let head = head.replace("\r\n ", " ").replace("\n ", " ");
        let head = head.as_str();
        let subject_lines: Vec<&str> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("subject:"))
            .collect();
        assert_eq!(subject_lines.len(), 1, "{head}");
        assert!(
            subject_lines[0]
                .starts_with("Subject: [dnsight] high threat_intel (new): 10.0.0.5 -> x"),
            "{head}"
        );
        assert!(!head.to_ascii_lowercase().contains("\ninjected:"), "{head}");
        assert!(
            mail.contains("Summary:") && mail.contains("Destination:"),
            "{mail}"
        );
        // the newline from the summary is shown escaped, not a header or body break
        assert!(mail.contains("\\u{a}Inj"), "{mail}");
    }

    // delivered once each: nothing pending, nothing failed, nothing sent twice
    std::thread::sleep(Duration::from_millis(600));
    let st = store.stats(now()).unwrap().outbox;
    assert_eq!((st.pending, st.failed), (0, 0), "{st:?}");
    assert_eq!(hook.got.lock().unwrap().len(), 1);
    assert_eq!(udp_got.lock().unwrap().len(), 1);
    assert_eq!(tcp_got.lock().unwrap().len(), 1);
    n.stop();
}

#[test]
fn a_flood_becomes_digests_and_criticals_still_go_out_alone() {
    let dir = tempfile::tempdir().unwrap();
    let hook = start_http(0, None);
    let ts = targets(
        dir.path(),
        &format!(
            "[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://{}/in\"\nmin_severity = \"info\"\ndigest_after = 5\ndigest_minutes = 10\ndigest_every_secs = 2\n",
            hook.addr
        ),
    );
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.set_router(Some(Arc::new(Routes::new(&ts))));
    let flood: Vec<Alert> = (0..1000)
        .map(|i| {
            alert(
                &format!("f{i:04}"),
                Severity::Medium,
                &format!("n{i}.flood.example"),
            )
        })
        .collect();
    for chunk in flood.chunks(100) {
        store.upsert_alerts(chunk, now()).unwrap();
    }
    let n = Notifier::spawn(&ts, dir.path()).unwrap();
    // a critical one in the middle of the flood is not held back
    std::thread::sleep(Duration::from_millis(500));
    store
        .upsert_alerts(&[alert("crit", Severity::Critical, "c2.example")], now())
        .unwrap();
    let bodies = wait_for("the flood to drain", || {
        let st = store.stats(now()).unwrap().outbox;
        (st.pending == 0).then(|| hook.got.lock().unwrap().clone())
    });
    n.stop();
    let vals: Vec<serde_json::Value> = bodies
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let singles: Vec<&serde_json::Value> = vals.iter().filter(|v| v["event"] == "new").collect();
    let digests: Vec<&serde_json::Value> = vals.iter().filter(|v| v["event"] == "digest").collect();
    eprintln!(
        "1,001 alerts → {} messages: {} single, {} digest(s) of {:?}",
        vals.len(),
        singles.len(),
        digests.len(),
        digests
            .iter()
            .map(|d| d["count"].clone())
            .collect::<Vec<_>>()
    );
    // 5 within the rate, the critical one on its own, the rest in digests of at most 1,000
    assert_eq!(singles.len(), 6);
    assert!(singles.iter().any(|v| v["alert"]["id"] == "crit"));
    assert!(
        !digests.is_empty() && digests.len() <= 2,
        "{}",
        digests.len()
    );
    let in_digests: u64 = digests.iter().map(|d| d["count"].as_u64().unwrap()).sum();
    assert_eq!(in_digests, 995);
    assert!(
        digests[0]["alerts"].as_array().unwrap().len() <= dnsight_notify::format::DIGEST_LISTED
    );
    // every row is accounted for
    let st = store.stats(now()).unwrap().outbox;
    assert_eq!((st.sent, st.failed), (1001, 0));
}

#[test]
fn a_dead_target_fails_for_good_after_its_tries_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    // nothing listens on this port
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = start_http(u32::MAX, None); // answers 503 forever
    let bad = start_http(0, None);
    let ts = targets(
        dir.path(),
        &format!(
            "[[notify]]\nname = \"down\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/\"\nmax_attempts = 2\ntimeout_secs = 2\n\n[[notify]]\nname = \"busy\"\ntype = \"webhook\"\nurl = \"http://{}/\"\nmax_attempts = 2\n\n[[notify]]\nname = \"fine\"\ntype = \"webhook\"\nurl = \"http://{}/nope\"\n",
            gone.addr, bad.addr
        ),
    );
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.set_router(Some(Arc::new(Routes::new(&ts))));
    store
        .upsert_alerts(&[alert("x", Severity::High, "x.example")], now())
        .unwrap();
    let n = Notifier::spawn(&ts, dir.path()).unwrap();
    let _ = bad; // accepts: the third target delivers
    let failed = wait_for("two targets to give up", || {
        let f = store.outbox_list(Some(OutboxState::Failed), 10).unwrap();
        (f.len() == 2).then_some(f)
    });
    n.stop();
    let mut names: Vec<&str> = failed.iter().map(|f| f.target.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["busy", "down"]);
    for f in &failed {
        assert_eq!(f.attempts, 2, "{f:?}");
        assert!(f.last_error.is_some());
    }
    assert!(failed
        .iter()
        .any(|f| f.last_error.as_deref() == Some("HTTP 503")));
}
