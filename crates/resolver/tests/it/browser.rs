//! A real browser on dnsight's DoH listener: headless Chromium (Debian's `chromium`) in DoH-only
//! ("secure") mode with dnsight's template, loading a page by a name only dnsight knows (a local
//! record pointing at a tiny HTTP server on the loopback). The page loads, and dnsight's own
//! events and stats show how the lookups came: DoH, over HTTP/2. Chromium takes its DoH settings
//! from a managed policy (`DnsOverHttpsMode = "secure"`, `DnsOverHttpsTemplates`), written to
//! `/etc/chromium/policies/managed/` for the run and removed after; the generated certificate
//! is trusted by its key (`--ignore-certificate-errors-spki-list`).

use crate::*;
use dnsight_model::Transport;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PAGE: &str = "dnsight-doh-lab-page";

/// The base64 SHA-256 of the certificate's public key (`--ignore-certificate-errors-spki-list`).
fn spki_hash(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut s = dnsight_resolver::tls::base64url_encode(d.as_ref())
        .replace('-', "+")
        .replace('_', "/");
    while s.len() & 3 != 0 {
        s.push('=');
    }
    s
}

/// Serves one fixed page to every HTTP request on a loopback port (until the test ends).
fn web_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let body = format!("<html><body><p>{PAGE}</p></body></html>");
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

const POLICY_DIR: &str = "/etc/chromium/policies/managed";

/// Chromium's managed policy file for the test, removed when dropped.
struct Policy(std::path::PathBuf);

impl Policy {
    fn install(template: &str) -> Option<Policy> {
        std::fs::create_dir_all(POLICY_DIR).ok()?;
        let p = std::path::Path::new(POLICY_DIR)
            .join(format!("dnsight-test-doh-{}.json", std::process::id()));
        let json = serde_json::json!({
            "DnsOverHttpsMode": "secure",
            "DnsOverHttpsTemplates": template,
        });
        std::fs::write(&p, json.to_string()).ok()?;
        Some(Policy(p))
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| which(b))
}

#[test]
fn headless_chromium_resolves_over_dohs_http2() {
    let Some(browser) = chromium() else {
        eprintln!("SKIP: chromium not installed; browser DoH test skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let spki = spki_hash(&rcgen::PublicKeyData::subject_public_key_info(
        &ck.signing_key,
    ));
    let files = dnsight_resolver::TlsFiles {
        cert: write(dir.path(), "cert.pem", &ck.cert.pem()),
        key: write(dir.path(), "key.pem", &ck.signing_key.serialize_pem()),
    };
    let mut cfg = base_config(&[]);
    cfg.doh_listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.tls = Some(files);
    cfg.policy.local.records = vec!["web.lab.example A 127.0.0.1".into()];
    let (r, events) = start(cfg);
    let doh = r.doh_addrs()[0];
    let web = web_server();

    // DoH only ("secure": no fallback to the system resolver) with dnsight's template, set the
    // way an administrator does: a managed policy (Chromium has no command-line switch for it)
    let template = format!("https://127.0.0.1:{}/dns-query", doh.port());
    let Some(_policy) = Policy::install(&template) else {
        eprintln!("SKIP: cannot write {POLICY_DIR} (not root?); browser DoH test skipped");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
        .arg("--dump-dom")
        .arg(format!("http://web.lab.example:{web}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // bounded: a browser that hangs is killed, and the test then fails on its output
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        dom.contains(PAGE),
        "the page did not load by its DoH-resolved name\nstats: {}\nstdout: {dom}\nstderr: {err}",
        r.stats()
    );
    // dnsight's own record of it: the lab name asked over DoH, answered from the local record,
    // and every DoH request over HTTP/2
    let evs = events.wait(1);
    let lab: Vec<_> = evs
        .iter()
        .filter(|e| e.qname.as_str() == "web.lab.example")
        .collect();
    assert!(!lab.is_empty(), "{evs:#?}");
    assert!(
        lab.iter().all(|e| e.transport == Transport::Doh),
        "{lab:#?}"
    );
    assert!(
        evs.iter().all(|e| e.transport == Transport::Doh),
        "every lookup came over DoH: {evs:#?}"
    );
    let s = r.stats();
    assert!(s.doh_http2 >= 1, "{s}");
    assert_eq!(s.doh_http1, 0, "{s}");
    eprintln!(
        "chromium: {} lookups over DoH ({} HTTP/2 requests, {} HTTP/1.x)",
        evs.len(),
        s.doh_http2,
        s.doh_http1
    );
    r.shutdown();
}
