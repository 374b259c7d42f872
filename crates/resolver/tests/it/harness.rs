//! Test harness: an nsd upstream, a resolver with a collecting sink, and a tiny DNS client.

use dnsight_model::DnsEvent;
use dnsight_resolver::{wire, EventSink, Resolver, ResolverConfig, UpstreamSpec};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ZONE: &str = "test.example";

pub fn which(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

pub struct Nsd {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        // nsd forks a server child; its pidfile names the main process
        let pid = std::fs::read_to_string(self._dir.path().join("nsd.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn zone_text() -> String {
    let mut z = format!(
        "$ORIGIN {ZONE}.\n$TTL 300\n@ SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\nwww A 192.0.2.1\nwww AAAA 2001:db8::1\nads A 192.0.2.66\nx.ads A 192.0.2.67\nshort 2 A 192.0.2.5\n"
    );
    for i in 0..60 {
        z.push_str(&format!("big A 198.51.100.{i}\n"));
    }
    z
}

/// Starts nsd serving [`ZONE`] on `port` (or a free port); None (with a message) if nsd is missing.
pub fn start_nsd(port: Option<u16>) -> Option<Nsd> {
    start_nsd_zones(port, &[(ZONE, zone_text())], &format!("www.{ZONE}"))
}

/// Starts nsd serving `zones` (origin, zone file text) on `port` (or a free port); ready once
/// `probe` (an A query) answers NOERROR. None (with a message) if nsd is missing.
pub fn start_nsd_zones(port: Option<u16>, zones: &[(&str, String)], probe: &str) -> Option<Nsd> {
    if !which("nsd") {
        eprintln!("SKIP: nsd not installed; upstream tests skipped");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = port.unwrap_or_else(free_port);
    let mut zone_conf = String::new();
    for (i, (origin, text)) in zones.iter().enumerate() {
        std::fs::write(d.join(format!("zone{i}")), text).unwrap();
        zone_conf.push_str(&format!(
            "zone:\n name: \"{origin}\"\n zonefile: \"zone{i}\"\n"
        ));
    }
    let conf = format!(
        "server:\n ip-address: 127.0.0.1@{port}\n port: {port}\n server-count: 1\n do-ip6: no\n username: \"\"\n chroot: \"\"\n zonesdir: \"{d}\"\n database: \"\"\n zonelistfile: \"{d}/zone.list\"\n xfrdfile: \"{d}/xfrd.state\"\n xfrdir: \"{d}\"\n pidfile: \"{d}/nsd.pid\"\n logfile: \"{d}/nsd.log\"\n verbosity: 0\n rrl-ratelimit: 0\nremote-control:\n control-enable: no\n{zone_conf}",
        d = d.display()
    );
    std::fs::write(d.join("nsd.conf"), conf).unwrap();
    let child = Command::new("nsd")
        .arg("-d")
        .arg("-c")
        .arg(d.join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let nsd = Nsd {
        child,
        addr,
        _dir: dir,
    };
    // readiness: poll with real queries until it answers (bounded)
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(r) = udp_query(addr, probe, 1, false, Duration::from_millis(200)) {
            if rcode(&r) == 0 {
                return Some(nsd);
            }
        }
    }
    panic!("nsd did not answer on {addr}");
}

/// A real Unbound on a free loopback port answering only its `local-data` lines (everything
/// else NXDOMAIN: it never recurses off the machine), logging every query it gets to a file.
pub struct Unbound {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unbound {
    /// Its query log so far (`log-queries: yes`, one line per query received).
    pub fn query_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("unbound.log")).unwrap_or_default()
    }
}

/// Starts Unbound with `local_data` records (`"www.internet.example. A 198.51.100.7"`); None
/// (with a message) if unbound is missing. Ready once the first record's name answers.
pub fn start_unbound(local_data: &[&str]) -> Option<Unbound> {
    let bin = ["unbound", "/usr/sbin/unbound"]
        .into_iter()
        .find(|b| which(b))?;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let mut data = String::new();
    for l in local_data {
        data.push_str(&format!(" local-data: \"{l}\"\n"));
    }
    let conf = format!(
        "server:\n interface: 127.0.0.1@{port}\n port: {port}\n do-ip6: no\n username: \"\"\n chroot: \"\"\n directory: \"{d}\"\n pidfile: \"{d}/unbound.pid\"\n use-syslog: no\n logfile: \"{d}/unbound.log\"\n log-queries: yes\n verbosity: 0\n num-threads: 1\n module-config: \"iterator\"\n access-control: 127.0.0.0/8 allow\n local-zone: \".\" static\n{data}remote-control:\n control-enable: no\n",
        d = d.display()
    );
    std::fs::write(d.join("unbound.conf"), conf).unwrap();
    let child = Command::new(bin)
        .arg("-d")
        .arg("-c")
        .arg(d.join("unbound.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let u = Unbound { child, addr, dir };
    let probe = local_data
        .first()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or(".");
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(r) = udp_query(addr, probe, 1, false, Duration::from_millis(200)) {
            if rcode(&r) == 0 {
                return Some(u);
            }
        }
    }
    panic!("unbound did not answer on {addr}");
}

/// Collects events in memory.
#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<DnsEvent>>>);
impl EventSink for Collect {
    fn event(&mut self, ev: &DnsEvent) {
        self.0.lock().unwrap().push(ev.clone());
    }
}
impl Collect {
    /// Waits (bounded) until at least `n` events arrived; returns them.
    pub fn wait(&self, n: usize) -> Vec<DnsEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.0.lock().unwrap().clone();
            if v.len() >= n || Instant::now() > deadline {
                return v;
            }
            std::thread::yield_now();
        }
    }
}

pub fn base_config(upstreams: &[SocketAddr]) -> ResolverConfig {
    ResolverConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        upstreams: upstreams
            .iter()
            .map(|&addr| UpstreamSpec::udp(addr))
            .collect(),
        upstream_timeout: Duration::from_millis(700),
        health_interval: Duration::from_millis(100),
        udp_workers: 2,
        ..Default::default()
    }
}

pub fn start(cfg: ResolverConfig) -> (Resolver, Collect) {
    let c = Collect::default();
    let r = Resolver::start(cfg, Box::new(c.clone())).expect("resolver starts");
    (r, c)
}

pub fn build_query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns as u8]);
    for l in name.split('.').filter(|l| !l.is_empty()) {
        b.push(l.len() as u8);
        b.extend_from_slice(l.as_bytes());
    }
    b.push(0);
    b.extend_from_slice(&qtype.to_be_bytes());
    b.extend_from_slice(&[0, 1]);
    if edns {
        b.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    }
    b
}

pub fn udp_query(
    addr: SocketAddr,
    name: &str,
    qtype: u16,
    edns: bool,
    timeout: Duration,
) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let id: u16 = rand::random();
    s.send_to(&build_query(id, name, qtype, edns), addr).ok()?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    assert_eq!(
        u16::from_be_bytes([buf[0], buf[1]]),
        id,
        "response id must match the query"
    );
    Some(buf)
}

pub fn tcp_query(addr: SocketAddr, name: &str, qtype: u16) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let q = build_query(7, name, qtype, false);
    let mut m = (q.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(&q);
    s.write_all(&m).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    buf
}

pub fn rcode(resp: &[u8]) -> u8 {
    resp[3] & 0xf
}

pub fn answers(resp: &[u8]) -> Vec<dnsight_model::Answer> {
    let mut v = Vec::new();
    wire::decode_answers(resp, &mut v);
    v
}

pub fn addrs(resp: &[u8]) -> Vec<String> {
    answers(resp)
        .iter()
        .filter_map(|a| a.addr())
        .map(|a| a.to_string())
        .collect()
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Waits (bounded) for a condition driven by the resolver's background tasks.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `dig @addr ARGS +short +time=3 +tries=1`: its output lines, trimmed (the status line with
/// `+short` is absent, so an error answer is empty). Panics when dig cannot run.
pub fn dig(addr: SocketAddr, args: &[&str]) -> Vec<String> {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args([
            "-p",
            &addr.port().to_string(),
            "+short",
            "+time=3",
            "+tries=1",
        ])
        .args(args)
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `dig` without `+short`: the `status:` of the answer (`NOERROR`, `SERVFAIL`, ...).
pub fn dig_status(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=3", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_string()
}
