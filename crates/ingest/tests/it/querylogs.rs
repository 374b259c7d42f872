//! Corpus check of the query-log readers: every sample under `../shared/data/logs/` (real
//! vendor fixtures, see its README) is sniffed as the expected format and read; every reject
//! must be one the table below explains. Skips with a message when the folder is missing.

use dnsight_ingest::querylog::LogFormat;
use dnsight_ingest::{open_path_detect, Format, IngestOptions};
use std::path::{Path, PathBuf};

fn logs_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/logs");
    d.is_dir().then_some(d)
}

/// (folder, expected format, rejects explained: (reason, count, why)).
type Expect = (
    &'static str,
    Option<LogFormat>,
    &'static [(&'static str, u64, &'static str)],
);

const EXPECT: &[Expect] = &[
    ("route53_resolver", Some(LogFormat::Route53Resolver), &[]),
    ("route53_public", Some(LogFormat::Route53Public), &[]),
    (
        "gcp_cloud_dns",
        Some(LogFormat::GcpDns),
        &[(
            "log.no_client",
            1,
            "a record of a non-VM source network: no sourceIP",
        )],
    ),
    ("azure_firewall_dns", Some(LogFormat::AzureFirewall), &[]),
    // the analytic (ETW) events are one pretty-printed JSON document, not one record a line
    ("windows_dns_etw", None, &[]),
    ("infoblox", Some(LogFormat::Bind), &[]),
    (
        "bind",
        Some(LogFormat::Bind),
        &[(
            "log.bad_time",
            2,
            "two lines written without print-time and no syslog header: no time at all",
        )],
    ),
    ("efficientip", Some(LogFormat::Bind), &[]),
    ("unbound", Some(LogFormat::Unbound), &[]),
    // the sample holds reply and gravity lines only, no query line: no client, so no event
    (
        "pihole",
        Some(LogFormat::Dnsmasq),
        &[(
            "log.reply_without_query",
            23,
            "reply lines whose query line is not in the sample",
        )],
    ),
    ("coredns", Some(LogFormat::CoreDns), &[]),
    ("cisco_umbrella_dns", Some(LogFormat::Umbrella), &[]),
    ("cloudflare_dns", Some(LogFormat::Cloudflare), &[]),
    ("suricata_eve_dns", Some(LogFormat::SuricataEve), &[]),
];

const FIRSTS: &[&str] = &[
    "route53_resolver 172.31.86.159 does-not-exist.abc.com A NXDOMAIN",
    "route53_public 55.36.5.7 example.com A NOERROR",
    "gcp_cloud_dns 10.154.0.3 elastic.co A NOERROR",
    "azure_firewall_dns 1.128.0.0 ntp.ubuntu.com A NOERROR",
    "azure_firewall_dns 10.0.2.4 wpad.example.com A NXDOMAIN",
    "infoblox 192.168.0.1 a1.foo.com A NOERROR",
    "bind 192.168.1.1 example.com ANY REFUSED",
    "bind 104.219.136.31 example.com ANY REFUSED",
    "efficientip 10.63.240.253 wpad.erasmusmc.nl A NXDOMAIN",
    "unbound 192.168.1.1 api.opensubtitles.org A -",
    "coredns 172.17.0.4 httpbin.org.cluster.local A NXDOMAIN",
    "coredns 172.17.0.1 host.example.com A NOERROR",
    "cisco_umbrella_dns 192.168.1.1 www.elastic.co A NOERROR",
    "cloudflare_dns 175.16.199.0 example.com TYPE65535 NOERROR",
    "suricata_eve_dns 10.0.2.15 google.com AAAA NOERROR",
];

#[test]
fn every_vendor_sample_reads_with_only_explained_rejects() {
    let Some(dir) = logs_dir() else {
        eprintln!("skipping: ../shared/data/logs not present");
        return;
    };
    let mut report = Vec::new();
    let mut firsts = Vec::new();
    for (folder, want, explained) in EXPECT {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(folder))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        let mut rejected = std::collections::BTreeMap::<String, u64>::new();
        let mut events = 0;
        for f in &files {
            let r = open_path_detect(f, &IngestOptions::default());
            let Some(want) = want else {
                assert!(!matches!(r, Ok((Format::Log(_), _))), "{}", f.display());
                continue;
            };
            let (fmt, mut r) = r.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(fmt, Format::Log(*want), "{}", f.display());
            let mut out = Vec::new();
            while r.next_batch(&mut out).unwrap() {}
            events += out.len();
            if let Some(e) = out.first() {
                let line = format!(
                    "{folder} {} {} {} {}",
                    e.client,
                    e.qname,
                    dnsight_model::rtype_to_str(e.qtype),
                    e.rcode.map_or("-".into(), dnsight_model::rcode_to_str)
                );
                firsts.push(line);
            }
            for (k, v) in &r.stats().rejected {
                *rejected.entry(k.clone()).or_default() += v;
            }
        }
        let expl: std::collections::BTreeMap<String, u64> = explained
            .iter()
            .map(|(k, n, _)| (k.to_string(), *n))
            .collect();
        assert_eq!(rejected, expl, "{folder}: rejects not explained");
        assert!(
            want.is_none() || events > 0 || *folder == "pihole",
            "{folder}: no events"
        );
        report.push(format!("{folder}: {events} events, rejects {rejected:?}"));
    }
    eprintln!("{}", report.join("\n"));
    // field-level expectations: the first event of each sample file (client, name, type, rcode)
    assert_eq!(firsts, FIRSTS);
}

/// A child killed and reaped when dropped.
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it holds `n` lines containing `needle` (at most 20 s).
fn wait_lines(f: &Path, needle: &str, n: usize) -> String {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let s = std::fs::read_to_string(f).unwrap_or_default();
        if s.matches(needle).count() >= n || std::time::Instant::now() > end {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn read_log(
    p: &Path,
) -> (
    Format,
    Vec<dnsight_model::DnsEvent>,
    dnsight_ingest::IngestStats,
) {
    let (f, mut r) = open_path_detect(p, &IngestOptions::default()).unwrap();
    let mut out = Vec::new();
    while r.next_batch(&mut out).unwrap() {}
    (f, out, r.stats().clone())
}

/// The real programs: Unbound (log-queries + log-replies, answering from local-data) and dnsmasq
/// (log-queries=extra, forwarding to that Unbound, with one blocked name) on loopback, queried
/// with `dig`; both logs are read back and checked against what was asked.
#[test]
fn real_unbound_and_dnsmasq_logs_read_back() {
    let (Some(unbound), Some(dnsmasq), Some(dig)) = (tool("unbound"), tool("dnsmasq"), tool("dig"))
    else {
        eprintln!("skipping: needs unbound, dnsmasq and dig (Debian packages unbound, dnsmasq, bind9-dnsutils)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (up, dm) = (free_udp_port(), free_udp_port());
    let ub_log = d.join("unbound.log");
    let conf = format!(
        "server:\n  interface: 127.0.0.1@{up}\n  port: {up}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"{log}\"\n  log-queries: yes\n  log-replies: yes\n  verbosity: 0\n  do-not-query-localhost: no\n  local-zone: \"corp.test.\" static\n  local-data: \"www.corp.test. 300 IN A 192.0.2.1\"\n  local-data: \"mail.corp.test. 300 IN A 192.0.2.2\"\n  access-control: 127.0.0.0/8 allow\n  remote-control:\n    control-enable: no\n",
        dir = d.display(),
        log = ub_log.display()
    );
    std::fs::write(d.join("unbound.conf"), conf).unwrap();
    let _ub = Kill(
        std::process::Command::new(&unbound)
            .args(["-d", "-c"])
            .arg(d.join("unbound.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_lines(&ub_log, "start of service", 1);
    let dm_log = d.join("dnsmasq.log");
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let _dm = Kill(
        std::process::Command::new(&dnsmasq)
            .args([
                "-k",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--no-resolv",
                "--no-hosts",
                "--cache-size=100",
                "--log-queries=extra",
            ])
            .arg(format!("--port={dm}"))
            .arg(format!("--server=127.0.0.1#{up}"))
            .arg("--address=/blocked.test/0.0.0.0")
            .arg(format!("--log-facility={}", dm_log.display()))
            .arg(format!("--pid-file={}", d.join("dnsmasq.pid").display()))
            .arg(format!("--user={user}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_lines(&dm_log, "started", 1);
    let ask = |port: u16, name: &str, ty: &str| {
        let o = std::process::Command::new(&dig)
            .args([
                "+short",
                "+tries=3",
                "+time=2",
                "-p",
                &port.to_string(),
                "@127.0.0.1",
                name,
                ty,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(ask(dm, "www.corp.test", "A"), "192.0.2.1");
    assert_eq!(ask(dm, "nope.corp.test", "A"), "");
    assert_eq!(ask(dm, "blocked.test", "A"), "0.0.0.0");
    assert_eq!(ask(dm, "www.corp.test", "A"), "192.0.2.1"); // from dnsmasq's cache
    assert_eq!(ask(up, "mail.corp.test", "A"), "192.0.2.2"); // straight to Unbound
    wait_lines(&dm_log, "query[", 4);
    wait_lines(&ub_log, " IN NOERROR ", 2);

    let (f, evs, st) = read_log(&dm_log);
    assert_eq!(f, Format::Log(LogFormat::Dnsmasq));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    let got: Vec<String> = evs
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {:?}",
                e.client,
                e.qname,
                e.rcode.map_or("-".into(), dnsight_model::rcode_to_str),
                e.answers
                    .iter()
                    .filter_map(|a| a.addr())
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "127.0.0.1 www.corp.test NOERROR [\"192.0.2.1\"]",
            "127.0.0.1 nope.corp.test NXDOMAIN []",
            "127.0.0.1 blocked.test NOERROR [\"0.0.0.0\"]",
            "127.0.0.1 www.corp.test NOERROR [\"192.0.2.1\"]",
        ]
    );
    assert!(evs.iter().all(|e| e.client_port != 0));

    let (f, evs, st) = read_log(&ub_log);
    assert_eq!(f, Format::Log(LogFormat::Unbound));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    // dnsmasq forwarded two names (the third was blocked, the fourth cached); one came direct
    let got: Vec<String> = evs
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e.qname,
                e.rcode.map_or("-".into(), dnsight_model::rcode_to_str)
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "www.corp.test NOERROR",
            "nope.corp.test NXDOMAIN",
            "mail.corp.test NOERROR"
        ]
    );
    assert!(evs
        .iter()
        .all(|e| e.has_query() && e.response_size.unwrap_or(0) > 0));
}

fn dig(dig: &Path, port: u16, name: &str, ty: &str) -> String {
    let o = std::process::Command::new(dig)
        .args([
            "+short",
            "+tries=3",
            "+time=2",
            "-p",
            &port.to_string(),
            "@127.0.0.1",
            name,
            ty,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The real programs: BIND's `named` (authoritative for a test zone, `querylog yes` into a file
/// channel with BIND's own time stamps) and the PowerDNS Recursor (`quiet=no`,
/// `log-common-errors`, forwarding that zone to the `named`) on loopback, queried with `dig`;
/// both logs are read back and checked against what was asked.
#[test]
fn real_bind_and_powerdns_recursor_logs_read_back() {
    let (Some(named), Some(pdns), Some(dig_bin)) =
        (tool("named"), tool("pdns_recursor"), tool("dig"))
    else {
        eprintln!("skipping: needs named, pdns_recursor and dig (Debian packages bind9, pdns-recursor, bind9-dnsutils)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (bp, pp) = (free_udp_port(), free_udp_port());
    std::fs::write(
        d.join("corp.test.zone"),
        "$TTL 300\n@ IN SOA ns.corp.test. admin.corp.test. 1 3600 600 86400 300\n@ IN NS ns.corp.test.\nns IN A 127.0.0.1\nwww IN A 192.0.2.1\nmail IN A 192.0.2.2\n@ IN MX 10 mail.corp.test.\n",
    )
    .unwrap();
    let qlog = d.join("query.log");
    let conf = format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  listen-on port {bp} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n  allow-query {{ any; }};\n  querylog yes;\n  dnssec-validation no;\n}};\ncontrols {{ }};\nlogging {{\n  channel q {{ file \"{q}\"; print-time yes; print-category yes; print-severity yes; severity info; }};\n  category queries {{ q; }};\n  channel s {{ file \"{d}/named.run\"; print-time yes; severity info; }};\n  category default {{ s; }};\n}};\nzone \"corp.test\" {{ type primary; file \"{d}/corp.test.zone\"; }};\n",
        d = d.display(),
        q = qlog.display()
    );
    std::fs::write(d.join("named.conf"), conf).unwrap();
    let _named = Kill(
        std::process::Command::new(&named)
            .args(["-f", "-c"])
            .arg(d.join("named.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_lines(&d.join("named.run"), "running", 1);
    let plog = d.join("pdns.log");
    let _pdns = Kill(
        std::process::Command::new(&pdns)
            .arg(format!("--config-dir={}", d.display()))
            .arg(format!("--socket-dir={}", d.display()))
            .args([
                "--local-address=127.0.0.1",
                "--daemon=no",
                "--disable-syslog",
                "--log-timestamp=yes",
                "--quiet=no",
                "--log-common-errors=yes",
                "--loglevel=6",
                "--dnssec=off",
                "--allow-from=127.0.0.0/8",
                "--setuid=",
                "--setgid=",
            ])
            .arg(format!("--local-port={pp}"))
            .arg(format!("--forward-zones=corp.test=127.0.0.1:{bp}"))
            .stdout(std::fs::File::create(&plog).unwrap())
            .stderr(std::fs::File::options().append(true).open(&plog).unwrap())
            .spawn()
            .unwrap(),
    );
    // the recursor answers once it is up
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while dig(&dig_bin, pp, "www.corp.test", "A") != "192.0.2.1" {
        assert!(
            std::time::Instant::now() < end,
            "pdns_recursor did not answer: {}",
            std::fs::read_to_string(&plog).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(dig(&dig_bin, bp, "mail.corp.test", "A"), "192.0.2.2"); // straight to named
    assert_eq!(dig(&dig_bin, bp, "corp.test", "MX"), "10 mail.corp.test.");
    assert_eq!(dig(&dig_bin, bp, "nope.corp.test", "AAAA"), "");
    assert_eq!(dig(&dig_bin, pp, "mail.corp.test", "A"), "192.0.2.2"); // via the recursor
    wait_lines(&qlog, "query:", 5);
    wait_lines(&plog, "mail.corp.test", 1);

    let (f, evs, st) = read_log(&qlog);
    assert_eq!(f, Format::Log(LogFormat::Bind));
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    let got: Vec<String> = evs
        .iter()
        .map(|e| format!("{} {} {}", e.client, e.qname, e.qtype))
        .collect();
    // the recursor's first www query and its later mail query, dig's three
    assert!(
        got.contains(&"127.0.0.1 mail.corp.test 1".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"127.0.0.1 corp.test 15".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"127.0.0.1 nope.corp.test 28".to_string()),
        "{got:?}"
    );
    assert!(got.iter().any(|g| g.contains("www.corp.test")), "{got:?}");
    assert!(evs
        .iter()
        .all(|e| e.client_port != 0 && e.server.to_string() == "127.0.0.1"));
    // BIND's querylog has no rcode: that is what the format lacks
    assert!(evs.iter().all(|e| e.rcode.is_none()));

    let (f, evs, st) = read_log(&plog);
    assert_eq!(f, Format::Log(LogFormat::PowerDns));
    let got: Vec<String> = evs
        .iter()
        .map(|e| format!("{} {} {}", e.client, e.qname, e.qtype))
        .collect();
    assert!(
        got.contains(&"127.0.0.1 www.corp.test 1".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"127.0.0.1 mail.corp.test 1".to_string()),
        "{got:?}"
    );
    assert!(evs.iter().all(|e| e.client_port != 0));
    // structured logging pairs each Question with its Answer line: the rcode is there
    let www: Vec<_> = evs
        .iter()
        .filter(|e| e.qname.as_str() == "www.corp.test")
        .collect();
    assert!(www.iter().any(|e| e.rcode == Some(0)), "{www:?}");
    assert!(evs
        .iter()
        .filter(|e| e.has_response())
        .all(|e| e.rtt_us.is_some()));
    // what is not a query (banner, housekeeping) is skipped, not rejected
    assert_eq!(st.rejected_total(), 0, "{st:?}");
}
