//! Block lists kept fresh from URLs: each is downloaded (http/https, size-capped) into its local
//! file atomically (temp file + rename); the resolver's file polling then reloads it like any
//! other list, so a download never interrupts resolution and a failed one keeps the old copy.

use crate::config::resolver::ListFetch;
use anyhow::Context;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest list accepted (a 2-million-domain list is ~40 MB).
pub const MAX_LIST_BYTES: u64 = 512 * 1024 * 1024;

/// Downloads `url` into `path` atomically. Returns the number of bytes written.
pub fn download(url: &str, path: &Path) -> anyhow::Result<u64> {
    let resp = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .get(url)
        .call()
        .with_context(|| format!("downloading {url}"))?;
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_LIST_BYTES + 1)
        .read_to_end(&mut body)
        .with_context(|| format!("reading {url}"))?;
    if body.len() as u64 > MAX_LIST_BYTES {
        anyhow::bail!("{url}: list larger than {MAX_LIST_BYTES} bytes; refused");
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("download");
    std::fs::write(&tmp, &body).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(body.len() as u64)
}

/// Makes sure every fetched list has a local copy before the resolver loads them: downloads the
/// missing ones; if that fails, starts with an empty list (and says so) rather than not at all.
pub fn prepare(fetches: &[ListFetch]) {
    for f in fetches {
        if f.path.exists() {
            continue;
        }
        match download(&f.url, &f.path) {
            Ok(n) => tracing::info!(list = %f.name, url = %f.url, bytes = n, "list downloaded"),
            Err(e) => {
                tracing::error!(list = %f.name, error = %format!("{e:#}"), "list download failed; starting with an empty list until the next refresh");
                let _ = std::fs::write(&f.path, b"");
            }
        }
    }
}

/// Refreshes every list on its own schedule until `stop` is set.
pub fn spawn_refresher(
    fetches: Vec<ListFetch>,
) -> Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    if fetches.is_empty() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::Builder::new()
        .name("dnsight-lists".into())
        .spawn(move || {
            let mut due: Vec<Instant> = fetches.iter().map(|f| Instant::now() + f.every).collect();
            while !flag.load(Ordering::Relaxed) {
                for (f, when) in fetches.iter().zip(due.iter_mut()) {
                    if Instant::now() < *when {
                        continue;
                    }
                    *when = Instant::now() + f.every;
                    match download(&f.url, &f.path) {
                        Ok(n) => tracing::info!(list = %f.name, bytes = n, "list refreshed from its url"),
                        Err(e) => tracing::warn!(list = %f.name, error = %format!("{e:#}"), "list refresh failed; keeping the previous copy"),
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
        .ok()?;
    Some((stop, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP server on 127.0.0.1 answering every request with `body` (or 404).
    fn serve(body: &'static [u8], status: &'static str, requests: usize) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for _ in 0..requests {
                let Ok((mut s, _)) = l.accept() else { return };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(body);
            }
        });
        format!("http://{addr}/list.txt")
    }

    #[test]
    fn downloads_atomically_and_keeps_the_old_copy_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists/ads.txt");
        let url = serve(b"ads.example\n||tracker.example^\n", "200 OK", 1);
        assert_eq!(download(&url, &path).unwrap(), 31);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "ads.example\n||tracker.example^\n"
        );
        let bad = serve(b"nope", "404 Not Found", 1);
        assert!(download(&bad, &path).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "ads.example\n||tracker.example^\n",
            "old copy kept"
        );
    }

    #[test]
    fn prepare_starts_empty_when_the_first_download_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        let f = ListFetch {
            name: "x".into(),
            url: "http://127.0.0.1:9/none".into(),
            path: path.clone(),
            every: Duration::from_secs(60),
        };
        prepare(&[f]);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
