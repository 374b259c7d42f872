//! The triage loop as an operator drives it, end to end, with real parts: `dnsight serve` (a
//! real process) in front of a real nsd, `dig` as the client, `dnsight token create` and
//! `dnsight alerts ...` against the served API, a real Unbound that loads dnsight's RPZ zone
//! from its URL, and `kill -9` of `serve` between an action and reading it back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn which(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .any(|d| d.join(tool).is_file())
    })
}

pub(crate) fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A child killed (SIGKILL) and reaped on drop; its stderr+stdout lines go to a channel.
pub(crate) struct Proc {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    pub(crate) fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (tx, rx) = mpsc::channel();
        for r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
        }
        Proc {
            name,
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }
    pub(crate) fn wait_line(&mut self, needle: &str) -> String {
        let end = Instant::now() + WAIT;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "{} did not print {needle:?}; output:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }
    /// SIGTERM, then waits (up to `within`) for the exit; its status and every line printed.
    pub(crate) fn term(&mut self, within: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let end = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < end,
                "{} did not stop on SIGTERM; output:\n{}",
                self.name,
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // the reading threads end at the pipes' end
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(l);
        }
        (status, self.seen.clone())
    }
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// nsd serving `example.` with a few names in distinct registered domains.
pub(crate) struct Nsd {
    _p: Proc,
    pub(crate) addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(self.dir.join("nsd.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

pub(crate) fn start_nsd(dir: &Path) -> Nsd {
    let port = free_port();
    let d = dir.join("nsd");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("zone"),
        "$ORIGIN example.\n$TTL 300\n@ SOA ns.example. admin.example. 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\nc2.bad A 192.0.2.66\nwww.fresh A 192.0.2.10\napi.fresh A 192.0.2.11\ncdn.fresh A 192.0.2.12\nwww.usual A 192.0.2.20\nwww.marker A 192.0.2.30\n",
    )
    .unwrap();
    std::fs::write(
        d.join("nsd.conf"),
        format!(
            "server:\n ip-address: 127.0.0.1@{port}\n port: {port}\n server-count: 1\n do-ip6: no\n username: \"\"\n chroot: \"\"\n zonesdir: \"{d}\"\n database: \"\"\n zonelistfile: \"{d}/zone.list\"\n xfrdfile: \"{d}/xfrd.state\"\n xfrdir: \"{d}\"\n pidfile: \"{d}/nsd.pid\"\n logfile: \"{d}/nsd.log\"\n verbosity: 0\nremote-control:\n control-enable: no\nzone:\n name: \"example\"\n zonefile: \"zone\"\n",
            d = d.display()
        ),
    )
    .unwrap();
    let p = Proc::spawn(
        "nsd",
        Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(d.join("nsd.conf")),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let nsd = Nsd {
        _p: p,
        addr,
        dir: d,
    };
    let end = Instant::now() + WAIT;
    while dig(addr, "www.usual.example", None).1 != "NOERROR" {
        assert!(Instant::now() < end, "nsd did not answer on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
    nsd
}

/// `dig` once: (answer lines, status).
pub(crate) fn dig(server: SocketAddr, name: &str, from: Option<&str>) -> (String, String) {
    let mut c = Command::new("dig");
    c.arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["+tries=1", "+time=2", "+noall", "+answer", "+comments"]);
    if let Some(b) = from {
        c.args(["-b", b]);
    }
    let o = c.arg(name).arg("A").output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO-ANSWER")
        .to_string();
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    (answers, status)
}

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dnsight"))
}

pub(crate) struct Serve {
    pub(crate) p: Proc,
    pub(crate) dns: SocketAddr,
    pub(crate) api: String,
}

fn start_serve(dir: &Path, upstream: SocketAddr, dns_port: u16, api_port: u16) -> Serve {
    let mut p = Proc::spawn(
        "dnsight serve",
        bin()
            .args(["serve", "--listen", &format!("127.0.0.1:{dns_port}")])
            .arg("--upstream")
            .arg(upstream.to_string())
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--intel")
            .arg(dir.join("intel.txt"))
            .args(["--learn-days", "0"])
            // two engine workers: acknowledgements and blocks must reach both
            .args(["--workers", "2"])
            .args(["--api", &format!("127.0.0.1:{api_port}")])
            .env("RUST_LOG", "info"),
    );
    p.wait_line("API on");
    Serve {
        p,
        dns: format!("127.0.0.1:{dns_port}").parse().unwrap(),
        api: format!("http://127.0.0.1:{api_port}"),
    }
}

/// `dnsight ARGS` against the API; (exit ok, stdout, stderr).
pub(crate) fn cli(s: &Serve, token: &str, args: &[&str]) -> (bool, String, String) {
    let o = bin()
        .args(args)
        .env("DNSIGHT_SERVER", &s.api)
        .env("DNSIGHT_TOKEN", token)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub(crate) fn alerts(s: &Serve, token: &str) -> Vec<serde_json::Value> {
    let (ok, out, err) = cli(s, token, &["alerts", "list", "--json", "--status", "all"]);
    assert!(ok, "alerts list failed: {err}");
    serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap_or_else(|e| panic!("alerts list --json is not a JSON array ({e}): {out}"))
}

/// Polls the API until an alert matches.
pub(crate) fn wait_alert(
    s: &Serve,
    token: &str,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = Instant::now() + WAIT;
    loop {
        let v = alerts(s, token);
        if let Some(a) = v.iter().find(|a| f(a)) {
            return a.clone();
        }
        assert!(
            Instant::now() < end,
            "no {what} alert within {WAIT:?}: {v:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn http_get(url_base: &str, path: &str) -> (u16, String) {
    let addr = url_base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut b = Vec::new();
    s.read_to_end(&mut b).unwrap();
    let t = String::from_utf8_lossy(&b).into_owned();
    let code = t
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = t.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

pub(crate) fn token(dir: &Path, role: &str, name: &str) -> String {
    let o = bin()
        .args(["token", "create", "--role", role, "--name", name, "--state"])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string()
}

pub(crate) fn id(a: &serde_json::Value) -> String {
    a["id"].as_str().unwrap().to_string()
}

#[test]
fn block_ack_and_rpz_loop_with_real_tools() {
    let gone: Vec<_> = ["nsd", "dig", "unbound", "unbound-control"]
        .into_iter()
        .filter(|t| !which(t))
        .collect();
    if !gone.is_empty() {
        eprintln!("SKIP: tools not installed: {gone:?} (scripts/test.sh installs them)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("intel.txt"), "# test feed\nc2.bad.example\n").unwrap();
    let nsd = start_nsd(d);
    let (dns_port, api_port) = (free_port(), free_port());
    let mut s = start_serve(d, nsd.addr, dns_port, api_port);
    // a token made by another process while serve runs
    let t = token(d, "analyst", "e2e");
    assert!(t.len() > 20, "token create's last line is the token: {t:?}");

    // 401 without a token: the CLI says what to do
    let (ok, _, err) = cli(&s, "", &["alerts", "list"]);
    assert!(!ok && err.contains("token"), "{err}");

    // a listed name through the resolver → a threat_intel alert
    assert_eq!(dig(s.dns, "c2.bad.example", None).1, "NOERROR");
    let intel = wait_alert(&s, &t, "threat_intel", |a| {
        a["kind"] == "threat_intel"
            && a["destination"]
                .as_str()
                .unwrap_or("")
                .contains("bad.example")
    });
    // block it for everyone: the next query is NXDOMAIN, a sibling domain still resolves
    let (ok, out, err) = cli(&s, &t, &["alerts", "block", &id(&intel), "--scope", "all"]);
    assert!(ok, "alerts block: {out}{err}");
    assert_eq!(dig(s.dns, "c2.bad.example", None).1, "NXDOMAIN");
    assert_eq!(dig(s.dns, "www.usual.example", None).1, "NOERROR");
    let shown = alerts(&s, &t);
    let a = shown.iter().find(|a| a["id"] == intel["id"]).unwrap();
    assert_eq!(a["status"], "blocked", "{a}");
    // another device asking for the blocked name is news (a second infected host): it joins
    // the blocked alert, which stays blocked
    assert_eq!(
        dig(s.dns, "c2.bad.example", Some("127.0.0.9")).1,
        "NXDOMAIN"
    );
    let grown = wait_alert(&s, &t, "the blocked alert with the second device", |a| {
        a["id"] == intel["id"]
            && a["devices"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d == "127.0.0.9"))
    });
    assert_eq!(grown["status"], "blocked", "{grown}");

    // the RPZ zone has it (open to loopback)
    let (code, zone) = http_get(&s.api, "/rpz");
    assert_eq!(code, 200, "{zone}");
    assert!(zone.contains("bad.example"), "{zone}");

    // a real Unbound, beside dnsight, blocks from dnsight's RPZ
    let ub_dir = d.join("unbound");
    std::fs::create_dir_all(&ub_dir).unwrap();
    let ub_port = free_port();
    let sock = ub_dir.join("ctl.sock");
    let conf = ub_dir.join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n interface: 127.0.0.1@{ub_port}\n port: {ub_port}\n do-ip6: no\n username: \"\"\n chroot: \"\"\n directory: \"{dir}\"\n pidfile: \"{dir}/unbound.pid\"\n use-syslog: no\n logfile: \"\"\n verbosity: 1\n module-config: \"respip iterator\"\n do-not-query-localhost: no\n domain-insecure: \"example\"\n access-control: 127.0.0.0/8 allow\nremote-control:\n control-enable: yes\n control-interface: {sock}\n control-use-cert: no\nforward-zone:\n name: \"example\"\n forward-addr: {up_ip}@{up_port}\nrpz:\n name: \"rpz.dnsight.\"\n url: \"{api}/rpz\"\n zonefile: \"{dir}/rpz.zone\"\n rpz-log: yes\n",
            dir = ub_dir.display(),
            sock = sock.display(),
            up_ip = nsd.addr.ip(),
            up_port = nsd.addr.port(),
            api = s.api
        ),
    )
    .unwrap();
    let mut ub = Proc::spawn(
        "unbound",
        Command::new("unbound").arg("-d").arg("-c").arg(&conf),
    );
    let ub_addr: SocketAddr = format!("127.0.0.1:{ub_port}").parse().unwrap();
    let end = Instant::now() + WAIT;
    loop {
        let st = dig(ub_addr, "c2.bad.example", None).1;
        if st == "NXDOMAIN" {
            break;
        }
        assert!(
            Instant::now() < end,
            "unbound did not block c2.bad.example from dnsight's RPZ (status {st}); unbound output:\n{}",
            {
                while let Ok(l) = ub.lines.try_recv() {
                    ub.seen.push(l);
                }
                ub.seen.join("\n")
            }
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dig(ub_addr, "www.usual.example", None).1, "NOERROR");

    // unblock: dnsight answers again at once; Unbound after a zone refresh
    let (ok, out, err) = cli(&s, &t, &["alerts", "unblock", &id(&intel)]);
    assert!(ok, "alerts unblock: {out}{err}");
    assert_eq!(dig(s.dns, "c2.bad.example", None).1, "NOERROR");
    let (_, zone) = http_get(&s.api, "/rpz");
    assert!(
        !zone.contains("c2.bad") && !zone.contains("bad.example. CNAME"),
        "{zone}"
    );
    let end = Instant::now() + WAIT;
    loop {
        let _ = Command::new("unbound-control")
            .arg("-c")
            .arg(&conf)
            .args(["auth_zone_transfer", "rpz.dnsight."])
            .output();
        if dig(ub_addr, "c2.bad.example", None).1 == "NOERROR" {
            break;
        }
        assert!(
            Instant::now() < end,
            "unbound still blocks after unblock and refresh"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(ub);

    // a new destination for one device; acknowledged for that device
    assert_eq!(
        dig(s.dns, "www.fresh.example", Some("127.0.0.1")).1,
        "NOERROR"
    );
    let fresh = wait_alert(&s, &t, "new_destination", |a| {
        a["kind"] == "new_destination" && a["destination"] == "fresh.example"
    });
    let (ok, out, err) = cli(
        &s,
        &t,
        &[
            "alerts",
            "ack",
            &id(&fresh),
            "--scope",
            "device",
            "--note",
            "our CDN",
        ],
    );
    assert!(ok, "alerts ack: {out}{err}");
    // confirmed → kill -9 at once: the action and the baseline must survive
    s.p.kill9();
    let s = start_serve(d, nsd.addr, dns_port, api_port);
    let (ok, out, err) = cli(&s, &t, &["alerts", "show", &id(&fresh), "--json"]);
    assert!(ok, "alerts show: {err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    let alert = if shown.get("alert").is_some() {
        &shown["alert"]
    } else {
        &shown
    };
    assert_eq!(alert["status"], "acknowledged", "{shown:#}");
    assert!(out.contains("our CDN"), "the note is in the history: {out}");
    // the device stays quiet about fresh.example (another name under it, after the restart)
    assert_eq!(
        dig(s.dns, "api.fresh.example", Some("127.0.0.1")).1,
        "NOERROR"
    );
    // and the pipeline has processed that query when a later marker alert shows up
    assert_eq!(
        dig(s.dns, "www.marker.example", Some("127.0.0.1")).1,
        "NOERROR"
    );
    wait_alert(&s, &t, "marker new_destination", |a| {
        a["kind"] == "new_destination" && a["destination"] == "marker.example"
    });
    let again: Vec<_> = alerts(&s, &t)
        .into_iter()
        .filter(|a| a["destination"] == "fresh.example" && a["status"] != "acknowledged")
        .collect();
    assert!(
        again.is_empty(),
        "the acknowledged destination alerted again: {again:#?}"
    );
}

/// A webhook receiver on `port`: every request body, with when it arrived.
fn receiver(port: u16) -> std::sync::Arc<std::sync::Mutex<Vec<(Instant, serde_json::Value)>>> {
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s);
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    break;
                }
                let h = h.trim_end().to_ascii_lowercase();
                if let Some(v) = h.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if h.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            if let Ok(v) = serde_json::from_slice(&body) {
                g.lock().unwrap().push((Instant::now(), v));
            }
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    got
}

#[test]
fn notifications_reach_a_webhook_at_once_and_survive_kill_9() {
    if !which("nsd") || !which("dig") {
        eprintln!("SKIP: nsd or dig not installed (scripts/test.sh installs them)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("intel.txt"), "c2.bad.example\n").unwrap();
    let nsd = start_nsd(d);
    let (up_port, down_port) = (free_port(), free_port());
    let up = receiver(up_port);
    std::fs::write(
        d.join("dnsight.toml"),
        format!(
            "[[notify]]\nname = \"soc\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{up_port}/hook\"\nsecret = \"k\"\n\n[[notify]]\nname = \"later\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{down_port}/hook\"\n"
        ),
    )
    .unwrap();
    let check = bin()
        .arg("check-config")
        .arg(d.join("dnsight.toml"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && out.contains("notify \"soc\""),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let serve = |dns_port: u16| {
        let mut p = Proc::spawn(
            "dnsight serve",
            bin()
                .args(["serve", "--listen", &format!("127.0.0.1:{dns_port}")])
                .arg("--upstream")
                .arg(nsd.addr.to_string())
                .arg("--state")
                .arg(d.join("state"))
                .arg("--config")
                .arg(d.join("dnsight.toml"))
                .arg("--intel")
                .arg(d.join("intel.txt"))
                .args(["--learn-days", "0", "--api", "off"])
                .env("RUST_LOG", "info"),
        );
        p.wait_line("resolver ready");
        p
    };
    let dns_port = free_port();
    let mut s = serve(dns_port);
    let dns: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let asked = Instant::now();
    assert_eq!(dig(dns, "c2.bad.example", None).1, "NOERROR");
    let end = Instant::now() + WAIT;
    let (at, first) = loop {
        if let Some((t, v)) = up
            .lock()
            .unwrap()
            .iter()
            .find(|(_, v)| v["alert"]["kind"] == "threat_intel")
            .cloned()
        {
            break (t, v);
        }
        assert!(Instant::now() < end, "the webhook got nothing");
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "query → webhook: {} ms",
        at.duration_since(asked).as_millis()
    );
    assert_eq!(first["event"], "new");
    // the other target is down: its notifications wait in the outbox; the process dies
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    let o = bin()
        .args([
            "notify", "outbox", "--status", "pending", "--json", "--state",
        ])
        .arg(d.join("state"))
        .output()
        .unwrap();
    let pending: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert!(
        pending
            .iter()
            .any(|p| p["target"] == "later" && p["alert"]["kind"] == "threat_intel"),
        "nothing pending for the down target: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // the target comes up, dnsight restarts: what was pending is delivered
    let later = receiver(down_port);
    let _s = serve(dns_port);
    let end = Instant::now() + WAIT;
    while !later
        .lock()
        .unwrap()
        .iter()
        .any(|(_, v)| v["alert"]["kind"] == "threat_intel" && v["event"] == "new")
    {
        assert!(
            Instant::now() < end,
            "the pending notification was lost across kill -9"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // and the first target did not get it twice
    let n = up
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, v)| v["alert"]["kind"] == "threat_intel" && v["event"] == "new")
        .count();
    assert_eq!(n, 1);
}

#[test]
fn notify_test_sends_a_sample_and_says_which_target_failed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dead = free_port();
    std::fs::write(
        d.join("n.toml"),
        format!("[[notify]]\nname = \"lines\"\ntype = \"file\"\npath = \"out.jsonl\"\n\n[[notify]]\nname = \"dead\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{dead}/x\"\ntimeout_secs = 2\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = bin()
            .args(args)
            .arg("--config")
            .arg(d.join("n.toml"))
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, out) = run(&["notify", "test", "lines"]);
    assert!(ok, "{out}");
    let line = std::fs::read_to_string(d.join("out.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["alert"]["destination"], "test.dnsight.invalid");
    let (ok, out) = run(&["notify", "test"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("lines  file  sent") && out.contains("dead  webhook  FAILED"),
        "{out}"
    );
    let (ok, out) = run(&["notify", "test", "nope"]);
    assert!(!ok && out.contains("lines, dead"), "{out}");
    let (ok, out) = run(&["notify", "list"]);
    assert!(
        ok && out.contains("dead  webhook  http://127.0.0.1:"),
        "{out}"
    );
}

/// `dnsight queries` until `f` holds for the JSON page (the writer commits within ¼ s).
fn wait_queries(
    s: &Serve,
    token: &str,
    args: &[&str],
    f: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let end = Instant::now() + WAIT;
    loop {
        let mut a = vec!["queries", "--json"];
        a.extend_from_slice(args);
        let (ok, out, err) = cli(s, token, &a);
        assert!(ok, "dnsight queries {args:?}: {err}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let rows = v["rows"].as_array().cloned().unwrap_or_default();
        if f(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < end,
            "queries {args:?} never matched: {rows:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn query_log_and_metrics_of_a_real_serve() {
    let gone: Vec<_> = ["nsd", "dig"].into_iter().filter(|t| !which(t)).collect();
    if !gone.is_empty() {
        eprintln!("SKIP: tools not installed: {gone:?} (scripts/test.sh installs them)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("intel.txt"), "# test feed\nc2.bad.example\n").unwrap();
    let nsd = start_nsd(d);
    let (dns_port, api_port) = (free_port(), free_port());
    let s = start_serve(d, nsd.addr, dns_port, api_port);
    let t = token(d, "analyst", "qlog");
    let (ok, out, err) = cli(
        &s,
        &t,
        &["blocks", "add", "www.marker.example", "--scope", "all"],
    );
    assert!(ok, "blocks add: {out}{err}");
    // forwarded, then cached; NXDOMAIN; blocked (the block reaches the resolver at once)
    let end = Instant::now() + WAIT;
    while dig(s.dns, "www.marker.example", None).1 != "NXDOMAIN" {
        assert!(Instant::now() < end, "the block never applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(dig(s.dns, "www.fresh.example", None).1, "NOERROR");
    assert_eq!(dig(s.dns, "www.fresh.example", None).1, "NOERROR");
    assert_eq!(dig(s.dns, "nothing.fresh.example", None).1, "NXDOMAIN");

    let rows = wait_queries(
        &s,
        &t,
        &["--device", "127.0.0.1", "--suffix", "fresh.example"],
        |r| r.len() >= 3,
    );
    let fresh: Vec<_> = rows
        .iter()
        .filter(|r| r["name"] == "www.fresh.example")
        .collect();
    assert_eq!(fresh.len(), 2, "{rows:#?}");
    // newest first: the cached answer, then the forwarded one with its upstream latency
    assert_eq!(fresh[0]["action"], "cached");
    assert_eq!(fresh[1]["action"], "forwarded");
    assert!(
        fresh[1]["upstream_us"].as_u64().is_some(),
        "{:#?}",
        fresh[1]
    );
    assert_eq!(fresh[1]["answers"][0], "A 192.0.2.10");
    assert!(rows
        .iter()
        .any(|r| r["name"] == "nothing.fresh.example" && r["rcode"] == "NXDOMAIN"));
    let blocked = wait_queries(&s, &t, &["--blocked"], |r| !r.is_empty());
    assert!(
        blocked
            .iter()
            .all(|r| r["name"] == "www.marker.example" && r["action"] == "blocked"),
        "{blocked:#?}"
    );

    // the table, and the store read directly while serve writes it
    let (ok, out, err) = cli(&s, &t, &["queries", "--name", "www.fresh.example"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("TIME") && out.contains("www.fresh.example") && out.contains("cached"),
        "{out}"
    );
    let o = bin()
        .args([
            "queries", "--json", "--type", "A", "--rcode", "NXDOMAIN", "--state",
        ])
        .arg(d.join("state"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "nothing.fresh.example"));

    // /metrics of the running resolver: its counters, the event families, the query log
    let (code, m) = {
        let addr = s.api.trim_start_matches("http://");
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        write!(c, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n").unwrap();
        let mut b = Vec::new();
        c.read_to_end(&mut b).unwrap();
        let text = String::from_utf8_lossy(&b).into_owned();
        let code: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (
            code,
            text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
        )
    };
    assert_eq!(code, 200, "{m}");
    for series in [
        "dnsight_resolver_cache_hits_total ",
        "dnsight_resolver_queries_total ",
        "dnsight_queries_total{source=\"resolver\",transport=\"udp\",rcode=\"NXDOMAIN\"}",
        "dnsight_queries_blocked_total ",
        "dnsight_upstream_latency_seconds_bucket{le=",
        "dnsight_querylog_rows_written_total ",
        "dnsight_querylog_commit_seconds_count ",
    ] {
        assert!(m.contains(series), "{series} missing:\n{m}");
    }
    if which("promtool") {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() && said.trim().is_empty(),
            "promtool: {said}\n{m}"
        );
    } else {
        eprintln!("SKIP promtool check: promtool not installed (Debian package prometheus; scripts/test.sh installs it)");
    }
    drop(s);
}
