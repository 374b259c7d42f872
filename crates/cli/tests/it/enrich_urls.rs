//! Enrichment from URLs, end to end: a local HTTP server (127.0.0.1, started here) serves a
//! GeoIP database (written with mmdb-writer) and two threat feeds (a plain list and an
//! abuse.ch-style CSV). A fresh `dnsight serve` downloads them at start into its state
//! directory: new_country and threat_intel work from the first events; a feed changed at its
//! URL applies without a restart; a broken download keeps the previous copy; `intel check`,
//! `intel stats` and `geoip update` report on the same files.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool, log: &Path) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < deadline,
            "{what}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

type Files = Arc<Mutex<std::collections::HashMap<String, (Vec<u8>, bool)>>>;

/// Serves `files` (path → (body, cut short)) with an ETag per content; 304 when it matches.
fn http_server(files: Files) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 2 {
                head.push_str(&line);
                line.clear();
            }
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let Some((body, cut)) = files.lock().unwrap().get(&path).cloned() else {
                let _ = write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                continue;
            };
            let etag = format!(
                "\"{}-{}\"",
                body.len(),
                body.iter().map(|&b| b as u64).sum::<u64>()
            );
            if head.contains(&format!("If-None-Match: {etag}")) {
                let _ = write!(s, "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n");
                continue;
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let n = if cut { body.len() / 2 } else { body.len() };
            let _ = s.write_all(&body[..n]);
        }
    });
    base
}

fn mmdb(nets: &[(&str, &str)]) -> Vec<u8> {
    use mmdb_writer::{Value, Writer};
    let mut w = Writer::new("dnsight-test-country");
    for (net, cc) in nets {
        w.insert_value(
            net.parse::<ipnet::IpNet>().unwrap(),
            Value::map([("country_code", Value::from(*cc))]),
        )
        .unwrap();
    }
    w.to_bytes().unwrap()
}

fn dnsight(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn geoip_and_feeds_from_urls_are_downloaded_refreshed_and_reported() {
    let files: Files = Default::default();
    {
        let mut f = files.lock().unwrap();
        f.insert(
            "/country.mmdb".into(),
            (mmdb(&[("8.8.8.0/24", "US"), ("5.5.5.0/24", "KP")]), false),
        );
        f.insert(
            "/c2.txt".into(),
            (b"# c2 feed\nc2.example\nother.example\n".to_vec(), false),
        );
        f.insert(
            "/threatfox.csv".into(),
            (
                b"# \"first_seen_utc\",\"ioc_value\",\"ioc_type\"\n\"2026-11-28\",\"phish.example\",\"domain\"\n\"2026-11-28\",\"198.51.100.9:443\",\"ip:port\"\n".to_vec(),
                false,
            ),
        );
    }
    let base = http_server(files.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[resolver]
listen = []

[[source]]
kind = "jsonl"
path = "ev.jsonl"

[detection]
learn_days = 0

[geoip]
urls = ["{base}/country.mmdb"]

[[intel]]
name = "c2"
url = "{base}/c2.txt"
category = "c2"

[[intel]]
name = "threatfox"
url = "{base}/threatfox.csv"
format = "csv"
column = "ioc_value"
severity = "medium"
"#
        ),
    )
    .unwrap();
    let events = dir.path().join("ev.jsonl");
    std::fs::write(&events, "").unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let log = dir.path().join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_dnsight"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--state")
        .arg(&state)
        .args(["--api", "off", "--alerts-out"])
        .arg(&alerts)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _guard = Guard(child);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(
        "serve did not start its source",
        Duration::from_secs(60),
        || read_log().contains("passive source started"),
        &log,
    );
    // first download, at start, into the state directory; no "no database" notice
    assert!(state.join("geoip/country.mmdb").exists());
    assert_eq!(
        std::fs::read_to_string(state.join("intel/c2.txt")).unwrap(),
        "# c2 feed\nc2.example\nother.example\n"
    );
    assert!(!read_log().contains("GeoIP: no database"), "{}", read_log());
    let append = |lines: &[String]| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&events)
            .unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
    };
    let ev = |t: u32, client: &str, q: &str, ip: &str| {
        format!(
            r#"{{"ts":"2026-11-29T02:00:{t:02}Z","client":"{client}","qname":"{q}","rcode":"NOERROR","answers":[{{"name":"{q}","type":"A","ttl":60,"data":"{ip}"}}]}}"#
        )
    };
    let alert_lines = || std::fs::read_to_string(&alerts).unwrap_or_default();
    append(&[
        ev(1, "10.9.9.1", "www.example.com", "8.8.8.8"),
        ev(2, "10.9.9.1", "beacon.c2.example", "8.8.8.9"),
        ev(3, "10.9.9.2", "phish.example", "8.8.8.10"),
        ev(4, "10.9.9.3", "late.example", "8.8.8.11"),
    ]);
    wait_until(
        "no alerts from the downloaded feeds and database",
        Duration::from_secs(30),
        || {
            let a = alert_lines();
            a.contains("new_country") && a.contains("c2.example") && a.contains("phish.example")
        },
        &log,
    );
    let parsed: Vec<serde_json::Value> = alert_lines()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let c2 = parsed
        .iter()
        .find(|v| v["kind"] == "threat_intel" && v["destination"] == "c2.example")
        .unwrap();
    assert_eq!(c2["evidence"]["category"], "c2");
    let tf = parsed
        .iter()
        .find(|v| v["kind"] == "threat_intel" && v["destination"] == "phish.example")
        .unwrap();
    // the feed's severity sets the finding's own score (medium band; related findings on the
    // same destination may raise the combined alert)
    assert_eq!(tf["evidence"]["feed"], "threatfox");
    assert_eq!(tf["own_score"], 49.0);
    assert!(!alert_lines()
        .lines()
        .any(|l| l.contains("threat_intel") && l.contains("late.example")));

    let c = cfg.to_str().unwrap();
    let s = state.to_str().unwrap();
    // an unchanged feed: the update is a 304
    let (ok, out) = dnsight(&["intel", "update", "--config", c, "--state", s]);
    assert!(ok && out.contains("c2: not modified"), "{out}");
    assert!(
        !read_log().contains("intel feeds reloaded"),
        "{}",
        read_log()
    );
    // the feed changes at its URL: downloaded and applied without a restart
    files.lock().unwrap().insert(
        "/c2.txt".into(),
        (b"c2.example\nlate.example\n".to_vec(), false),
    );
    let (ok, out) = dnsight(&["intel", "update", "--config", c, "--state", s]);
    assert!(ok && out.contains("c2: downloaded"), "{out}");
    wait_until(
        "the changed feed was not reloaded",
        Duration::from_secs(30),
        || read_log().contains("intel feeds reloaded"),
        &log,
    );
    append(&[ev(5, "10.9.9.3", "x.late.example", "8.8.8.12")]);
    wait_until(
        "a name listed after the start did not alert",
        Duration::from_secs(30),
        || {
            alert_lines()
                .lines()
                .any(|l| l.contains("threat_intel") && l.contains("late.example"))
        },
        &log,
    );
    // a broken download (cut short) keeps the previous copy, and says so
    files.lock().unwrap().insert(
        "/c2.txt".into(),
        (
            b"c2.example\nsomething.example\nelse.example\n".to_vec(),
            true,
        ),
    );
    let (ok, out) = dnsight(&["intel", "update", "--config", c, "--state", s]);
    assert!(!ok && out.contains("broke off"), "{out}");
    assert_eq!(
        std::fs::read_to_string(state.join("intel/c2.txt")).unwrap(),
        "c2.example\nlate.example\n"
    );
    // stats: entries, age, the last error
    let (ok, out) = dnsight(&["intel", "stats", "--config", c, "--state", s, "--json"]);
    assert!(ok, "{out}");
    let st: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let c2 = st.iter().find(|x| x["name"] == "c2").unwrap();
    assert_eq!(c2["entries"], 2);
    assert!(c2["last_error"].as_str().unwrap().contains("broke off"));
    assert_eq!(c2["stale"], false);
    assert!(st
        .iter()
        .any(|x| x["kind"] == "geoip" && x["last_error"].is_null()));
    // check: which feed and which line
    let (ok, out) = dnsight(&[
        "intel",
        "check",
        "--config",
        c,
        "--state",
        s,
        "a.late.example",
        "198.51.100.9",
        "clean.example",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("a.late.example: listed by feed \"c2\" [c2] as late.example")
            && out.contains("c2.txt:2"),
        "{out}"
    );
    assert!(
        out.contains("198.51.100.9: listed by feed \"threatfox\" as 198.51.100.9/32")
            && out.contains("threatfox.txt:3"),
        "{out}"
    );
    assert!(out.contains("clean.example: not listed"), "{out}");
    // a new database at its URL: `geoip update` fetches it, serve takes it without a restart
    files.lock().unwrap().insert(
        "/country.mmdb".into(),
        (mmdb(&[("8.8.8.0/24", "US"), ("9.9.9.0/24", "CH")]), false),
    );
    let reloads = |what: &str| read_log().matches(what).count();
    let before = reloads("GeoIP databases reloaded");
    let (ok, out) = dnsight(&["geoip", "update", "--config", c, "--state", s]);
    assert!(ok && out.contains("country.mmdb: downloaded"), "{out}");
    wait_until(
        "the new database was not reloaded",
        Duration::from_secs(30),
        || reloads("GeoIP databases reloaded") > before,
        &log,
    );
    append(&[ev(6, "10.9.9.1", "quad9.example", "9.9.9.9")]);
    wait_until(
        "a country only the new database knows did not alert",
        Duration::from_secs(30),
        || {
            alert_lines()
                .lines()
                .any(|l| l.contains("new_country") && l.contains("CH"))
        },
        &alerts,
    );
}

#[test]
fn without_any_database_the_notice_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[[intel]]\nname = \"x\"\nfile = \"x.txt\"\n").unwrap();
    std::fs::write(dir.path().join("x.txt"), "x.example\n").unwrap();
    let (ok, out) = dnsight(&["geoip", "update", "--config", cfg.to_str().unwrap()]);
    assert!(
        !ok && out.contains("[geoip]") && out.contains("urls = ["),
        "{out}"
    );
    let (ok, out) = dnsight(&["intel", "stats", "--config", cfg.to_str().unwrap()]);
    assert!(ok && out.contains("GeoIP: none configured"), "{out}");
    let (ok, out) = dnsight(&[
        "intel",
        "check",
        "--config",
        cfg.to_str().unwrap(),
        "a.x.example",
    ]);
    assert!(ok && out.contains("listed by feed \"x\""), "{out}");
}
