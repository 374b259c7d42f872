//! Files kept fresh from URLs — block lists, threat-intel feeds and GeoIP databases, one
//! mechanism for all three. Each is downloaded (http/https, size-capped) with a conditional
//! request (ETag / Last-Modified from the previous download), checked (an HTML error page, a
//! truncated body, or a text of which fewer than half the lines parse is refused; a database
//! must open), and only then written over its local copy atomically (temp file + rename in the
//! same directory). Whoever reads the copy (the resolver's list polling, the pipeline's intel
//! and GeoIP reload) notices the new file by its change stamp, so a download never interrupts
//! resolution and a failed or broken one keeps the previous copy.
//!
//! Next to each copy, `<file>.fetch.json` records the validators and what happened last (when
//! the server last confirmed the copy, the last error, entries): `dnsight intel stats`, the
//! API's stats and the refresher's schedule across restarts read it.

use anyhow::{bail, Context};
use dnsight_engine::intel::FeedSpec;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest file accepted (a 2-million-domain list is ~40 MB; a city database ~130 MB).
pub const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// After a failed attempt, the next one comes at most this much later.
const RETRY: Duration = Duration::from_secs(300);

/// What a download must look like to replace the local copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A block or allow list (the shared list parser).
    List,
    /// A threat-intel feed, read as its spec says.
    Intel(FeedSpec),
    /// A MaxMind-format database.
    Mmdb,
}

/// A file kept fresh from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub name: String,
    pub url: String,
    /// The local copy (the status file sits next to it).
    pub path: PathBuf,
    pub every: Duration,
    pub check: Check,
    /// The copy is flagged as stale when the server last confirmed it longer ago than this.
    pub max_age: Duration,
}

impl Fetch {
    /// A fetch whose copy is stale after three missed refreshes (at least a day).
    pub fn new(name: &str, url: &str, path: PathBuf, every: Duration, check: Check) -> Fetch {
        Fetch {
            name: name.into(),
            url: url.into(),
            path,
            every,
            check,
            max_age: (every * 3).max(Duration::from_secs(86_400)),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self.check {
            Check::List => "list",
            Check::Intel(_) => "intel",
            Check::Mmdb => "geoip",
        }
    }
}

/// What the status file next to a copy records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The URL these validators belong to (a changed URL starts over).
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Unix seconds of the last attempt.
    pub checked: Option<u64>,
    /// When the server last confirmed the copy (a new copy accepted, or 304 Not Modified).
    pub current: Option<u64>,
    /// When a new copy was last written.
    pub updated: Option<u64>,
    pub bytes: u64,
    /// Indicators, rules or (for a database) 0.
    pub entries: u64,
    /// The last attempt's error (cleared by a success).
    pub error: Option<String>,
}

impl Status {
    /// Seconds since the server last confirmed the copy.
    pub fn age(&self, now: u64) -> Option<u64> {
        self.current.map(|c| now.saturating_sub(c))
    }
}

/// The status file of a local copy: `<file>.fetch.json`.
pub fn status_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".fetch.json");
    PathBuf::from(s)
}

pub fn read_status(path: &Path) -> Option<Status> {
    let b = std::fs::read(status_path(path)).ok()?;
    serde_json::from_slice(&b).ok()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.download",
        file.as_deref().unwrap_or("x"),
        std::process::id()
    ));
    let w = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = w() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

fn write_status(path: &Path, st: &Status) {
    if let Ok(b) = serde_json::to_vec_pretty(st) {
        if let Err(e) = write_atomic(&status_path(path), &b) {
            tracing::warn!(error = %format!("{e:#}"), "cannot record the download status");
        }
    }
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new copy was written.
    Updated { bytes: u64, entries: u64 },
    /// The server says the copy is current (304).
    NotModified,
}

/// Looks like an HTML page (a captive portal, an error page served with 200).
fn looks_like_html(body: &[u8]) -> bool {
    let head = &body[..body.len().min(1024)];
    let text = String::from_utf8_lossy(head)
        .trim_start()
        .to_ascii_lowercase();
    text.starts_with("<!doctype html") || text.starts_with("<html") || text.contains("<body")
}

/// Checks a downloaded body; returns its entry count.
pub fn validate(check: &Check, body: &[u8]) -> Result<u64, String> {
    if body.is_empty() {
        return Err("the download is empty".into());
    }
    let text_counts = |entries: u64, rejected: u64, note: Option<String>| {
        if entries == 0 {
            return Err(match note {
                Some(n) => format!("nothing usable in the download: {n}"),
                None => format!("nothing usable in the download ({rejected} lines not understood)"),
            });
        }
        if rejected > entries {
            return Err(format!(
                "fewer than half of the lines parse ({entries} entries, {rejected} lines not understood): not replacing the previous copy"
            ));
        }
        Ok(entries)
    };
    match check {
        Check::Mmdb => dnsight_engine::Geo::from_bytes(vec![body.to_vec()]).map(|_| 0),
        _ if looks_like_html(body) => {
            Err("the server sent an HTML page, not a list (an error or login page?)".into())
        }
        Check::List => {
            let text = String::from_utf8_lossy(body);
            let c =
                dnsight_model::listfmt::parse(&text, dnsight_model::listfmt::Format::Auto, |_| {});
            text_counts(c.entries, c.rejected, None)
        }
        Check::Intel(spec) => {
            let text = String::from_utf8_lossy(body);
            let c = dnsight_engine::intel::parse_feed(&text, spec, |_| {});
            text_counts(c.entries, c.rejected, c.note)
        }
    }
}

/// One conditional download of `f`: a new copy replaces the old one only when it passes
/// [`validate`]. The status file records the outcome either way.
pub fn fetch(f: &Fetch) -> anyhow::Result<Outcome> {
    let mut st = read_status(&f.path)
        .filter(|s| s.url == f.url)
        .unwrap_or_else(|| Status {
            url: f.url.clone(),
            ..Status::default()
        });
    let now = now_unix();
    st.checked = Some(now);
    let r = attempt(f, &st);
    match &r {
        Ok((out, etag, lm)) => {
            st.current = Some(now);
            st.error = None;
            if let Outcome::Updated { bytes, entries } = out {
                st.updated = Some(now);
                st.bytes = *bytes;
                st.entries = *entries;
                st.etag = etag.clone();
                st.last_modified = lm.clone();
            }
        }
        Err(e) => st.error = Some(format!("{e:#}")),
    }
    write_status(&f.path, &st);
    r.map(|(o, _, _)| o)
}

type Attempt = (Outcome, Option<String>, Option<String>);

fn attempt(f: &Fetch, st: &Status) -> anyhow::Result<Attempt> {
    let url = &f.url;
    let mut req = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .get(url);
    if f.path.exists() {
        if let Some(e) = &st.etag {
            req = req.set("If-None-Match", e);
        }
        if let Some(m) = &st.last_modified {
            req = req.set("If-Modified-Since", m);
        }
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            bail!("{url}: the server answered {code} {}", r.status_text())
        }
        Err(e) => return Err(e).with_context(|| format!("downloading {url}")),
    };
    if resp.status() == 304 {
        return Ok((Outcome::NotModified, None, None));
    }
    if resp.status() != 200 {
        bail!(
            "{url}: the server answered {} {}",
            resp.status(),
            resp.status_text()
        );
    }
    let etag = resp.header("ETag").map(str::to_owned);
    let lm = resp.header("Last-Modified").map(str::to_owned);
    let expected: Option<u64> = resp
        .header("Content-Length")
        .and_then(|v| v.trim().parse().ok());
    if expected.is_some_and(|n| n > MAX_BYTES) {
        bail!("{url}: larger than {MAX_BYTES} bytes; refused");
    }
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_BYTES + 1)
        .read_to_end(&mut body)
        .with_context(|| format!("{url}: the download broke off (the previous copy stays)"))?;
    if body.len() as u64 > MAX_BYTES {
        bail!("{url}: larger than {MAX_BYTES} bytes; refused");
    }
    if let Some(n) = expected.filter(|&n| n != body.len() as u64) {
        bail!(
            "{url}: the download broke off after {} of {n} bytes (the previous copy stays)",
            body.len()
        );
    }
    let entries = validate(&f.check, &body)
        .map_err(|e| anyhow::anyhow!("{url}: {e}; the previous copy stays"))?;
    write_atomic(&f.path, &body)?;
    Ok((
        Outcome::Updated {
            bytes: body.len() as u64,
            entries,
        },
        etag,
        lm,
    ))
}

/// Logs one attempt's outcome.
fn log(f: &Fetch, r: &anyhow::Result<Outcome>, first: bool) {
    let kind = f.kind();
    match r {
        Ok(Outcome::Updated { bytes, entries }) => {
            tracing::info!(kind, name = %f.name, url = %f.url, bytes, entries, "downloaded from its url")
        }
        Ok(Outcome::NotModified) => {
            tracing::debug!(kind, name = %f.name, "not modified at its url")
        }
        Err(e) if first => {
            tracing::error!(kind, name = %f.name, error = %format!("{e:#}"), "download failed; retrying later")
        }
        Err(e) => {
            tracing::warn!(kind, name = %f.name, error = %format!("{e:#}"), "refresh failed; keeping the previous copy")
        }
    }
}

/// Makes sure every fetched file has a local copy before it is loaded: downloads the missing
/// ones. A list whose first download fails starts empty (and says so) rather than not at all;
/// a feed or database that is not there yet is loaded when a later refresh brings it.
pub fn prepare(fetches: &[Fetch]) {
    for f in fetches {
        if f.path.exists() {
            continue;
        }
        let r = fetch(f);
        log(f, &r, true);
        if r.is_err() && f.check == Check::List {
            let _ = std::fs::write(&f.path, b"");
        }
    }
}

/// When `f` is next due: a refresh after the previous one (as recorded, across restarts), at
/// most `RETRY` after a failure, now when it is overdue.
fn next_due(f: &Fetch, now: Instant) -> Instant {
    let Some(st) = read_status(&f.path).filter(|s| s.url == f.url) else {
        return if f.path.exists() { now + f.every } else { now };
    };
    let every = if st.error.is_some() {
        f.every.min(RETRY)
    } else {
        f.every
    };
    let since = Duration::from_secs(
        st.checked
            .map_or(u64::MAX, |c| now_unix().saturating_sub(c)),
    );
    now + every.saturating_sub(since)
}

/// Refreshes every file on its own schedule until `stop` is set; warns once when a copy
/// becomes older than its `max_age`.
pub fn spawn_refresher(
    fetches: Vec<Fetch>,
) -> Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    if fetches.is_empty() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::Builder::new()
        .name("dnsight-fetch".into())
        .spawn(move || {
            let mut due: Vec<Instant> = fetches.iter().map(|f| next_due(f, Instant::now())).collect();
            let mut stale = vec![false; fetches.len()];
            while !flag.load(Ordering::Relaxed) {
                for (i, f) in fetches.iter().enumerate() {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    if Instant::now() < due[i] {
                        continue;
                    }
                    let r = fetch(f);
                    log(f, &r, false);
                    due[i] = Instant::now() + if r.is_ok() { f.every } else { f.every.min(RETRY) };
                    let old = read_status(&f.path)
                        .and_then(|s| s.age(now_unix()))
                        .is_none_or(|a| a > f.max_age.as_secs());
                    if old && !stale[i] {
                        tracing::warn!(kind = f.kind(), name = %f.name, max_age_secs = f.max_age.as_secs(), "the local copy is older than its max age: its url has not answered for too long");
                    }
                    stale[i] = old;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .ok()?;
    Some((stop, t))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    /// What the test server answers: status line, extra headers, body, and whether to cut the
    /// body short of its Content-Length.
    #[derive(Clone)]
    pub struct Reply {
        pub status: &'static str,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
        pub truncate: bool,
    }

    impl Reply {
        pub fn ok(body: &[u8]) -> Reply {
            Reply {
                status: "200 OK",
                headers: Vec::new(),
                body: body.to_vec(),
                truncate: false,
            }
        }
    }

    /// An HTTP server on 127.0.0.1: answers each request with the current reply (an ETag
    /// reply answers a matching If-None-Match with 304) and records the request headers.
    pub struct Server {
        pub url: String,
        pub reply: Arc<Mutex<Reply>>,
        pub requests: Arc<Mutex<Vec<String>>>,
    }

    pub fn server(reply: Reply) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/feed", l.local_addr().unwrap());
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (rep, reqs) = (reply.clone(), requests.clone());
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
                reqs.lock().unwrap().push(head.clone());
                let rp = rep.lock().unwrap().clone();
                let etag = rp
                    .headers
                    .iter()
                    .find(|(k, _)| k == "ETag")
                    .map(|(_, v)| v.clone());
                let inm = head.lines().find_map(|l| {
                    l.strip_prefix("If-None-Match: ")
                        .map(str::trim)
                        .map(str::to_owned)
                });
                if etag.is_some() && etag == inm {
                    let _ = write!(s, "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let mut h = String::new();
                for (k, v) in &rp.headers {
                    h.push_str(&format!("{k}: {v}\r\n"));
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 {}\r\nContent-Length: {}\r\n{h}Connection: close\r\n\r\n",
                    rp.status,
                    rp.body.len()
                );
                let n = if rp.truncate {
                    rp.body.len() / 2
                } else {
                    rp.body.len()
                };
                let _ = s.write_all(&rp.body[..n]);
            }
        });
        Server {
            url,
            reply,
            requests,
        }
    }

    fn intel_fetch(url: &str, path: PathBuf) -> Fetch {
        Fetch::new(
            "feed",
            url,
            path,
            Duration::from_secs(60),
            Check::Intel(FeedSpec::default()),
        )
    }

    #[test]
    fn first_download_then_304_then_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feeds/c2.txt");
        let mut r = Reply::ok(b"c2.example\nbad.example\n");
        r.headers.push(("ETag".into(), "\"v1\"".into()));
        let srv = server(r);
        let f = intel_fetch(&srv.url, path.clone());
        assert_eq!(
            fetch(&f).unwrap(),
            Outcome::Updated {
                bytes: 23,
                entries: 2
            }
        );
        let st = read_status(&path).unwrap();
        assert_eq!(
            (st.etag.as_deref(), st.entries, st.error.as_deref()),
            (Some("\"v1\""), 2, None)
        );
        // the second request is conditional and gets 304: the copy stays, it is confirmed
        assert_eq!(fetch(&f).unwrap(), Outcome::NotModified);
        assert!(srv.requests.lock().unwrap()[1].contains("If-None-Match: \"v1\""));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "c2.example\nbad.example\n"
        );
        // a changed feed replaces the copy
        {
            let mut r = srv.reply.lock().unwrap();
            r.body = b"new.example\n".to_vec();
            r.headers = vec![("ETag".into(), "\"v2\"".into())];
        }
        assert_eq!(
            fetch(&f).unwrap(),
            Outcome::Updated {
                bytes: 12,
                entries: 1
            }
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new.example\n");
        assert_eq!(read_status(&path).unwrap().etag.as_deref(), Some("\"v2\""));
    }

    #[test]
    fn broken_downloads_keep_the_previous_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c2.txt");
        let good = b"c2.example\nbad.example\nworse.example\n";
        let srv = server(Reply::ok(good));
        let f = intel_fetch(&srv.url, path.clone());
        fetch(&f).unwrap();
        let bad = [
            (
                Reply {
                    truncate: true,
                    ..Reply::ok(b"a.example\nb.example\nc.example\nd.example\n")
                },
                "broke off",
            ),
            (
                Reply::ok(b"<!DOCTYPE html><html><body>Service unavailable</body></html>"),
                "HTML",
            ),
            (
                Reply {
                    status: "503 Service Unavailable",
                    ..Reply::ok(b"busy")
                },
                "503",
            ),
            (
                Reply::ok(b"{\"x\": 1}\nnot a feed at all\nstill not\n"),
                "nothing usable",
            ),
            (
                Reply::ok(b"one.example\nthis is junk\nmore junk here\n"),
                "fewer than half",
            ),
            (Reply::ok(b""), "empty"),
        ];
        for (reply, why) in bad {
            *srv.reply.lock().unwrap() = reply;
            let e = format!("{:#}", fetch(&f).unwrap_err());
            assert!(e.contains(why), "{why}: {e}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                good,
                "{why}: previous copy kept"
            );
            let st = read_status(&path).unwrap();
            assert!(st.error.as_deref().unwrap().contains(why), "{st:?}");
            assert_eq!(st.entries, 3);
        }
        // a server that is down
        let down = intel_fetch("http://127.0.0.1:9/feed", path.clone());
        assert!(fetch(&down).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), good);
        // no temp files left behind
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".download"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_database_must_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("country.mmdb");
        let db = crate::fetch::tests::mmdb(&[("8.8.8.0/24", "US")]);
        let srv = server(Reply::ok(&db));
        let f = Fetch::new(
            "geo",
            &srv.url,
            path.clone(),
            Duration::from_secs(60),
            Check::Mmdb,
        );
        assert!(matches!(fetch(&f).unwrap(), Outcome::Updated { .. }));
        // a database cut short does not open: the previous one stays
        let mut cut = db.clone();
        cut.truncate(db.len() - 20);
        *srv.reply.lock().unwrap() = Reply::ok(&cut);
        let e = format!("{:#}", fetch(&f).unwrap_err());
        assert!(e.contains("mmdb"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), db);
    }

    #[test]
    fn lists_start_empty_when_the_first_download_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        let f = Fetch::new(
            "x",
            "http://127.0.0.1:9/none",
            path.clone(),
            Duration::from_secs(60),
            Check::List,
        );
        prepare(std::slice::from_ref(&f));
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert!(read_status(&path).unwrap().error.is_some());
        // the failure is retried soon, not a day later
        let now = Instant::now();
        assert!(next_due(&f, now) <= now + RETRY);
    }

    #[test]
    fn the_refresher_applies_a_changed_feed_on_its_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c2.txt");
        let mut r = Reply::ok(b"one.example\n");
        r.headers.push(("ETag".into(), "\"1\"".into()));
        let srv = server(r);
        let mut f = intel_fetch(&srv.url, path.clone());
        f.every = Duration::from_millis(100);
        prepare(std::slice::from_ref(&f));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one.example\n");
        let (stop, t) = spawn_refresher(vec![f]).unwrap();
        {
            let mut r = srv.reply.lock().unwrap();
            r.body = b"two.example\n".to_vec();
            r.headers = vec![("ETag".into(), "\"2\"".into())];
        }
        let t0 = Instant::now();
        while std::fs::read_to_string(&path).unwrap() != "two.example\n" {
            assert!(t0.elapsed() < Duration::from_secs(30), "not refreshed");
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }

    /// A small country (and ASN) database written with mmdb-writer.
    pub fn mmdb(nets: &[(&str, &str)]) -> Vec<u8> {
        use mmdb_writer::{Value, Writer};
        let mut w = Writer::new("dnsight-test-country-asn");
        for (i, (net, cc)) in nets.iter().enumerate() {
            w.insert_value(
                net.parse::<ipnet::IpNet>().unwrap(),
                Value::map([
                    ("country_code", Value::from(*cc)),
                    ("autonomous_system_number", Value::from(64_500 + i as u32)),
                ]),
            )
            .unwrap();
        }
        w.to_bytes().unwrap()
    }
}
