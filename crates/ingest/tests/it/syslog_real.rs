//! The syslog receiver with real senders: syslog over TLS (RFC 5425) from `openssl s_client`,
//! and Debian's rsyslog, started here with its own configuration, reading a BIND query log with
//! imfile and forwarding it over plain TCP (octet-counted, RFC 5424) and over TLS (the ossl
//! network stream driver, checking the receiver's certificate by name).

use dnsight_ingest::syslog::{listen_tcp, listen_tls, tls_config, SyslogOptions, SyslogReceiver};
use dnsight_ingest::EventReader;
use dnsight_model::DnsEvent;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// A child killed and reaped when dropped.
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pull(r: &mut SyslogReceiver, n: usize) -> Vec<DnsEvent> {
    let end = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < end {
        assert!(r.next_batch(&mut out).unwrap());
    }
    out
}

/// A self-signed certificate for `localhost` and its key, as PEM files in `dir`.
fn cert(dir: &Path) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, ck.cert.pem()).unwrap();
    std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
    (c, k)
}

fn stop(mut r: SyslogReceiver) -> dnsight_ingest::IngestStats {
    r.shutdown_handle().shutdown();
    let mut out = Vec::new();
    while r.next_batch(&mut out).unwrap() {}
    r.stats().clone()
}

#[test]
fn syslog_over_tls_from_openssl_s_client() {
    let Some(openssl) = tool("openssl") else {
        eprintln!("skipping: needs openssl (Debian package openssl)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert(dir.path());
    let mut rx = listen_tls(
        "127.0.0.1:0",
        &SyslogOptions::default(),
        tls_config(&c, &k).unwrap(),
    )
    .unwrap();
    let port = rx.local_addr().port();
    let mut client = Kill(
        Command::new(&openssl)
            .args(["s_client", "-quiet", "-no_ign_eof", "-verify_return_error"])
            .arg("-connect")
            .arg(format!("127.0.0.1:{port}"))
            .args(["-servername", "localhost", "-verify_hostname", "localhost"])
            .arg("-CAfile")
            .arg(&c)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // RFC 5425 framing: octet counting; then a line-framed message on the same stream
    let m1 = "<30>1 2026-12-03T12:00:00.000Z dns1 named 811 - - client @0x7f1 10.0.0.6#5353 (tls.example): query: tls.example IN AAAA + (10.0.0.1)";
    let m2 = "<30>Dec  3 12:00:01 dns1 named[811]: client @0x7f1 10.0.0.7#5354 (line.example): query: line.example IN A + (10.0.0.1)\n";
    {
        let stdin = client.0.stdin.as_mut().unwrap();
        write!(stdin, "{} {m1}", m1.len()).unwrap();
        stdin.write_all(m2.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let evs = pull(&mut rx, 2);
    drop(client.0.stdin.take());
    let mut names: Vec<String> = evs
        .iter()
        .map(|e| format!("{} {}", e.client, e.qname))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["10.0.0.6 tls.example", "10.0.0.7 line.example"],
        "{:?}",
        rx.stats()
    );
    // a sender that talks plain text to the TLS port: counted, the receiver goes on
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .write_all(b"<30>Dec  3 12:00:02 named[1]: client 10.0.0.8#1 (x.example): query: x.example IN A +\n")
        .unwrap();
    drop(plain);
    let end = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while !rx.stats().rejected.contains_key("syslog.tls_handshake") && Instant::now() < end {
        rx.next_batch(&mut out).unwrap();
    }
    assert!(out.is_empty());
    let st = stop(rx);
    assert_eq!(st.rejected.get("syslog.tls_handshake"), Some(&1), "{st:?}");
}

/// Debian's rsyslog, run in the foreground with a configuration of its own: imfile follows a
/// BIND query log and two actions forward every line to dnsight, one over TCP (octet-counted,
/// RFC 5424) and one over TLS with the ossl driver (the receiver's certificate checked against
/// the name `localhost`).
#[test]
fn rsyslog_forwards_a_query_log_over_tcp_and_tls() {
    let Some(rsyslogd) = tool("rsyslogd") else {
        eprintln!("skipping: needs rsyslogd (Debian packages rsyslog and rsyslog-openssl)");
        return;
    };
    let modules = [
        "/usr/lib/x86_64-linux-gnu/rsyslog",
        "/usr/lib/aarch64-linux-gnu/rsyslog",
        "/usr/lib/rsyslog",
    ]
    .into_iter()
    .find(|d| Path::new(d).join("imfile.so").exists());
    let Some(modules) = modules else {
        eprintln!("skipping: rsyslog's modules (imfile) not found");
        return;
    };
    let tls_ok = Path::new(modules).join("lmnsd_ossl.so").exists();
    if !tls_ok {
        eprintln!("note: rsyslog-openssl is missing: only the TCP half of this test runs");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (c, k) = cert(d);
    let mut tcp = listen_tcp("127.0.0.1:0", &SyslogOptions::default()).unwrap();
    let mut tls = listen_tls(
        "127.0.0.1:0",
        &SyslogOptions::default(),
        tls_config(&c, &k).unwrap(),
    )
    .unwrap();
    let log = d.join("named-queries.log");
    std::fs::write(&log, "").unwrap();
    let tls_action = if tls_ok {
        format!(
            "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\" StreamDriver=\"ossl\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\" action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")",
            tls.local_addr().port()
        )
    } else {
        String::new()
    };
    let conf = format!(
        "global(workDirectory=\"{d}\" DefaultNetstreamDriverCAFile=\"{ca}\")\n\
         module(load=\"imfile\" mode=\"polling\" PollingInterval=\"1\")\n\
         input(type=\"imfile\" File=\"{log}\" Tag=\"named:\" Facility=\"local0\" Severity=\"info\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{tport}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\" action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")\n\
         {tls_action}\n",
        d = d.display(),
        ca = c.display(),
        log = log.display(),
        tport = tcp.local_addr().port(),
    );
    std::fs::write(d.join("rsyslog.conf"), conf).unwrap();
    let _rs = Kill(
        Command::new(&rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .arg("-M")
            .arg(modules)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // BIND's querylog lines, appended while rsyslog follows the file
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for (i, (client, name, ty)) in [
        ("10.0.0.21", "www.corp.example", "A"),
        ("10.0.0.22", "mail.corp.example", "MX"),
        ("10.0.0.23", "nx.corp.example", "AAAA"),
    ]
    .iter()
    .enumerate()
    {
        writeln!(
            f,
            "03-Dec-2026 12:00:0{i}.000 queries: info: client @0x7f3a2c00e1d8 {client}#5{i}000 ({name}): query: {name} IN {ty} +E(0) (127.0.0.1)"
        )
        .unwrap();
    }
    f.flush().unwrap();
    let check = |evs: &[DnsEvent], st: &dnsight_ingest::IngestStats| {
        let mut got: Vec<String> = evs
            .iter()
            .map(|e| format!("{} {} {}", e.client, e.qname, e.qtype))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "10.0.0.21 www.corp.example 1",
                "10.0.0.22 mail.corp.example 15",
                "10.0.0.23 nx.corp.example 28"
            ],
            "{st:?}"
        );
        assert!(evs.iter().all(|e| e.ts
            == dnsight_model::Ts::parse(&format!(
                "2026-12-03T12:00:0{}Z",
                (e.client_port - 50_000) / 1000
            ))
            .unwrap()));
    };
    let evs = pull(&mut tcp, 3);
    check(&evs, tcp.stats());
    assert_eq!(tcp.stats().rejected_total(), 0, "{:?}", tcp.stats());
    if tls_ok {
        let evs = pull(&mut tls, 3);
        check(&evs, tls.stats());
        assert_eq!(tls.stats().rejected_total(), 0, "{:?}", tls.stats());
    }
    stop(tcp);
    stop(tls);
}
