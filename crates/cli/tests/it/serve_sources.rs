//! `dnsight serve` as a passive analyser: `listen = []` and a followed JSON-lines file. Events
//! appended to the file while dnsight runs reach the engine, raise an alert in `--alerts-out`,
//! and SIGINT stops it cleanly.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path, needle: &str, deadline: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Starts `dnsight serve --config CFG --alerts-out ALERTS` with its log in `log` and waits
/// until its passive source runs.
fn serve_passive(cfg: &Path, alerts: &Path, log: &Path) -> Guard {
    let child = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["serve", "--config"])
        .arg(cfg)
        .arg("--alerts-out")
        .arg(alerts)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let guard = Guard(child);
    assert!(
        wait_for(log, "passive source started", Duration::from_secs(30)),
        "serve did not start its source: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    guard
}

#[test]
fn passive_serve_follows_a_growing_jsonl_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[resolver]\nlisten = []\n\n[[source]]\nkind = \"jsonl\"\npath = \"ev.jsonl\"\n",
    )
    .unwrap();
    let events = dir.path().join("ev.jsonl");
    std::fs::write(&events, "").unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let mut guard = serve_passive(&cfg, &alerts, &dir.path().join("serve.log"));
    // appended after start: the follower must pick them up (hostile name included)
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&events)
        .unwrap();
    for i in 1..=3 {
        writeln!(
            f,
            r#"{{"ts":"2026-11-29T02:00:0{i}Z","client":"10.9.9.9","qname":"use-application-dns.net","rcode":"NOERROR"}}"#
        )
        .unwrap();
    }
    writeln!(f, r#"{{"ts":"2026-11-29T02:00:05Z","client":"10.9.9.9","qname":"x<script>\u0000.example","rcode":"NOERROR"}}"#).unwrap();
    writeln!(f, "not json").unwrap();
    f.flush().unwrap();
    assert!(
        wait_for(&alerts, "use-application-dns.net", Duration::from_secs(30)),
        "no alert from the followed file: {}",
        std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
    );
    let a = std::fs::read_to_string(&alerts).unwrap();
    let first: serde_json::Value = serde_json::from_str(a.lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "policy");
    assert_eq!(first["device"], "10.9.9.9");
    // clean stop on SIGINT
    let pid = guard.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "serve did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exited with {status}");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains("jsonl.bad_json"),
        "the bad line is counted: {log}"
    );
}

#[test]
fn passive_only_without_sources_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[resolver]\nlisten = []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to do"));
}

/// A block list kept fresh from a URL: `serve` downloads it at start (from a real HTTP server on
/// 127.0.0.1) and blocks what it lists; checked with a real `dig`.
#[test]
fn blocklist_from_a_url_is_downloaded_and_enforced() {
    if Command::new("dig").arg("-v").output().is_err() {
        println!("blocklist_from_a_url: skipped: dig is not installed");
        return;
    }
    use std::io::{BufRead, BufReader};
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ads.txt", http.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in http.incoming().take(4) {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let body = "||ads.example^\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dns_port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[resolver]\nlisten = [\"127.0.0.1:{dns_port}\"]\nupstreams = [\"127.0.0.1:9\"]\n\n[[resolver.blocking.list]]\npath = \"cache/ads.txt\"\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    let log_path = dir.path().join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["serve", "--no-analysis", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let _guard = Guard(child);
    assert!(
        wait_for(&log_path, "resolver ready", Duration::from_secs(30)),
        "serve did not start: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cache/ads.txt")).unwrap(),
        "||ads.example^\n"
    );
    let out = Command::new("dig")
        .args([
            "+tries=2",
            "+time=3",
            "-p",
            &dns_port.to_string(),
            "@127.0.0.1",
            "www.ads.example",
            "A",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("status: NXDOMAIN"),
        "blocked name must get NXDOMAIN: {text}"
    );
}

#[test]
fn intel_feeds_reload_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[resolver]\nlisten = []\n\n[[source]]\nkind = \"jsonl\"\npath = \"ev.jsonl\"\n\n[[intel]]\nname = \"c2-feed\"\nfile = \"feed.txt\"\n",
    )
    .unwrap();
    let feed = dir.path().join("feed.txt");
    std::fs::write(&feed, "other.example\n").unwrap();
    let events = dir.path().join("ev.jsonl");
    std::fs::write(&events, "").unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let log_path = dir.path().join("serve.log");
    let _guard = serve_passive(&cfg, &alerts, &log_path);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let append = |lines: &[String]| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&events)
            .unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        f.flush().unwrap();
    };
    let ev = |t: u32, client: &str, q: &str| {
        format!(
            r#"{{"ts":"2026-11-29T02:00:{t:02}Z","client":"{client}","qname":"{q}","rcode":"NOERROR"}}"#
        )
    };
    // before the feed lists it: the name passes; the canary marks the batch as processed
    append(&[
        ev(1, "10.9.9.1", "beacon.late.example"),
        ev(2, "10.9.9.1", "use-application-dns.net"),
    ]);
    assert!(
        wait_for(&alerts, "use-application-dns.net", Duration::from_secs(30)),
        "{}",
        log()
    );
    assert!(!std::fs::read_to_string(&alerts)
        .unwrap()
        .contains("threat_intel"));
    // the feed file changes: serve reloads it without a restart
    std::fs::write(&feed, "other.example\nlate.example\n").unwrap();
    assert!(
        wait_for(&log_path, "intel feeds reloaded", Duration::from_secs(30)),
        "{}",
        log()
    );
    append(&[ev(3, "10.9.9.1", "beacon.late.example")]);
    assert!(
        wait_for(&alerts, "threat_intel", Duration::from_secs(30)),
        "no intel alert after the reload: {}",
        log()
    );
    let a = std::fs::read_to_string(&alerts).unwrap();
    let hit: serde_json::Value = a
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["kind"] == "threat_intel")
        .unwrap();
    assert_eq!(hit["destination"], "late.example");
    assert_eq!(hit["evidence"]["feed"], "c2-feed");
    // a broken reload (the file is gone) keeps the previous feeds
    std::fs::remove_file(&feed).unwrap();
    assert!(
        wait_for(&log_path, "previous feeds stay", Duration::from_secs(30)),
        "{}",
        log()
    );
    append(&[ev(4, "10.9.9.2", "x.late.example")]);
    let t0 = Instant::now();
    while !std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .any(|l| l.contains("threat_intel") && l.contains("10.9.9.2"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the previous feeds no longer match: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `serve` with a followed Pi-hole log (`kind = "log"`) and a syslog receiver fed by `logger`
/// (`kind = "syslog"`): a device behind each asks a policy name and each gets its alert.
#[test]
fn passive_serve_reads_a_followed_query_log_and_syslog() {
    let Some(logger) = ["/usr/bin/logger", "/bin/logger"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipping: needs logger (util-linux)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[resolver]\nlisten = []\n\n[[source]]\nkind = \"log\"\npath = \"pihole.log\"\nformat = \"dnsmasq\"\n\n[[source]]\nkind = \"syslog\"\nlisten = \"udp:127.0.0.1:{port}\"\nallow = [\"127.0.0.0/8\"]\n"),
    )
    .unwrap();
    let pihole = dir.path().join("pihole.log");
    std::fs::write(&pihole, "").unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let log = dir.path().join("serve.log");
    let _guard = serve_passive(&cfg, &alerts, &log);
    assert!(wait_for(&log, "syslog udp:", Duration::from_secs(30)));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&pihole)
        .unwrap();
    writeln!(
        f,
        "Dec  3 02:00:01 dnsmasq[676]: query[A] use-application-dns.net from 192.168.7.23"
    )
    .unwrap();
    writeln!(
        f,
        "Dec  3 02:00:01 dnsmasq[676]: reply use-application-dns.net is NXDOMAIN"
    )
    .unwrap();
    f.flush().unwrap();
    let st = Command::new(logger)
        .args(["--server", "127.0.0.1", "--port", &port.to_string(), "--udp", "--rfc5424", "-t", "named"])
        .arg("client @0x7f1 10.30.0.7#5353 (use-application-dns.net): query: use-application-dns.net IN A + (10.30.0.1)")
        .status()
        .unwrap();
    assert!(st.success());
    for dev in ["192.168.7.23", "10.30.0.7"] {
        assert!(
            wait_for(&alerts, dev, Duration::from_secs(30)),
            "no alert for {dev}: {}\n{}",
            std::fs::read_to_string(&alerts).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

/// `serve` with a syslog receiver over TLS (`listen = "tls:..."`, RFC 5425; certificate made by
/// `openssl req`), fed by `openssl s_client` with octet-counted frames, and a followed Windows
/// DNS analytic-event export (Event XML): a device behind each asks a policy name and each gets
/// its alert.
#[test]
fn passive_serve_takes_syslog_over_tls_and_windows_event_xml() {
    let Some(openssl) = ["/usr/bin/openssl", "/bin/openssl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipping: needs openssl (Debian package openssl)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let st = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = d.join("c.toml");
    std::fs::write(
        &cfg,
        format!("[resolver]\nlisten = []\n\n[[source]]\nkind = \"log\"\npath = \"dns-analytic.xml\"\nformat = \"windows-events\"\n\n[[source]]\nkind = \"syslog\"\nlisten = \"tls:127.0.0.1:{port}\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"),
    )
    .unwrap();
    let xml = d.join("dns-analytic.xml");
    std::fs::write(&xml, "").unwrap();
    let alerts = d.join("alerts.jsonl");
    let log = d.join("serve.log");
    let _guard = serve_passive(&cfg, &alerts, &log);
    assert!(wait_for(&log, "syslog tls:", Duration::from_secs(30)));
    let mut f = std::fs::OpenOptions::new().append(true).open(&xml).unwrap();
    let now = dnsight_model::Ts(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64,
    );
    for (id, peer, extra) in [
        (256, "Source", ""),
        (
            257,
            "Destination",
            "<Data Name='RCODE'>0</Data><Data Name='AA'>0</Data>",
        ),
    ] {
        write!(
            f,
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-DNSServer' Guid='{{EB79061A-A566-4698-9119-3ED2807060E7}}'/><EventID>{id}</EventID><TimeCreated SystemTime='{now}'/><Computer>DC1</Computer></System><EventData><Data Name='TCP'>0</Data><Data Name='InterfaceIP'>10.40.0.1</Data><Data Name='{peer}'>10.40.0.9</Data><Data Name='QNAME'>use-application-dns.net.</Data><Data Name='QTYPE'>1</Data><Data Name='XID'>77</Data><Data Name='Port'>50123</Data>{extra}</EventData></Event>"
        )
        .unwrap();
    }
    f.flush().unwrap();
    let mut client = Command::new(openssl)
        .args([
            "s_client",
            "-quiet",
            "-no_ign_eof",
            "-verify_return_error",
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
        ])
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(d.join("cert.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let m = format!("<30>1 {now} dns2 named 811 - - client @0x7f1 10.30.0.8#5353 (use-application-dns.net): query: use-application-dns.net IN A + (10.30.0.1)");
    {
        let stdin = client.stdin.as_mut().unwrap();
        write!(stdin, "{} {m}", m.len()).unwrap();
        stdin.flush().unwrap();
    }
    for dev in ["10.40.0.9", "10.30.0.8"] {
        let ok = wait_for(&alerts, dev, Duration::from_secs(30));
        if !ok {
            let _ = client.kill();
        }
        assert!(
            ok,
            "no alert for {dev}: {}\n{}",
            std::fs::read_to_string(&alerts).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    drop(client.stdin.take());
    let _ = client.kill();
    let _ = client.wait();
}
