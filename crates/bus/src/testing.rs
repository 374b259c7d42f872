//! A real NATS server with JetStream for tests and benchmarks: `nats-server -js` with its
//! store in a fresh temporary directory, on a free loopback port; it can be stopped and
//! started again on the same port and store (to test the spool). Killed on drop.
//!
//! When `nats-server` is missing, [`TestNats::start`] returns `None` after a loud message,
//! unless `DNSIGHT_REQUIRE_NATS` is set (`scripts/test.sh` sets it): then it panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestNats {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/bin".into());
    dirs.into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

impl TestNats {
    pub fn start() -> Option<TestNats> {
        let Some(bin) = find_bin() else {
            if std::env::var_os("DNSIGHT_REQUIRE_NATS").is_some() {
                panic!("DNSIGHT_REQUIRE_NATS is set but nats-server is not installed: apt-get install nats-server");
            }
            eprintln!(
                "\n*** SKIPPED: nats-server is not installed; the NATS tests did not run. \
                 Install the Debian package `nats-server` (scripts/test.sh does) or set \
                 DNSIGHT_REQUIRE_NATS=1 to make this a failure. ***\n"
            );
            return None;
        };
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dnsight-nats-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the NATS directory");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let mut n = TestNats {
            bin,
            dir,
            port,
            child: None,
        };
        n.resume();
        Some(n)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts the server (again) on the same port and store; waits until it accepts.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "nats-server is running already");
        let child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.join("js"))
            .arg("-l")
            .arg(self.dir.join("nats.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < end,
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM: a clean shutdown, its store kept) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let end = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every message of `stream` in stream order: (subject, its events). For tests.
pub fn read_stream(url: &str, stream: &str) -> Vec<(String, Vec<dnsight_model::DnsEvent>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let c = async_nats::connect(url).await.expect("connecting to NATS");
        let js = async_nats::jetstream::new(c);
        let mut s = js.get_stream(stream).await.expect("the stream");
        let last = s.info().await.expect("stream info").state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = s.get_raw_message(seq).await.expect("a message");
            out.push((
                m.subject.to_string(),
                crate::codec::decode(&m.payload).expect("a valid batch"),
            ));
        }
        out
    })
}

/// The stream sequence of each partition's last message (`partitions` subjects `PREFIX.P`;
/// 0: none), and the positions of the checkpoints in `bucket` (None: none saved). For tests:
/// the checkpoints cover the stream when every position is past its partition's last message.
pub fn stream_coverage(
    url: &str,
    stream: &str,
    prefix: &str,
    bucket: &str,
    partitions: u32,
) -> (Vec<u64>, Vec<Option<crate::consume::Position>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let c = async_nats::connect(url).await.expect("connecting to NATS");
        let js = async_nats::jetstream::new(c);
        let mut s = js.get_stream(stream).await.expect("the stream");
        let last = s.info().await.expect("stream info").state.last_sequence;
        let mut lasts = vec![0u64; partitions as usize];
        for seq in 1..=last {
            let m = s.get_raw_message(seq).await.expect("a message");
            if let Some(p) = m
                .subject
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|p| p.parse::<usize>().ok())
            {
                if p < lasts.len() {
                    lasts[p] = seq;
                }
            }
        }
        let mut pos = Vec::new();
        match crate::consume::Checkpoints::open(&js, bucket).await {
            Ok(ck) => {
                for p in 0..partitions {
                    pos.push(ck.load(p).await.ok().flatten().map(|(x, _)| x));
                }
            }
            Err(_) => pos.resize(partitions as usize, None),
        }
        (lasts, pos)
    })
}

/// Has the checkpoint `name` of `bucket` read past the last message of `stream` (the
/// correlator's checkpoint covers every finding published)? Returns (last sequence, the
/// checkpoint's next sequence).
pub fn topic_coverage(url: &str, stream: &str, bucket: &str, name: &str) -> (u64, Option<u64>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let c = async_nats::connect(url).await.expect("connecting to NATS");
        let js = async_nats::jetstream::new(c);
        let last = match js.get_stream(stream).await {
            Ok(mut s) => s.info().await.expect("stream info").state.last_sequence,
            Err(_) => 0,
        };
        let pos = match crate::consume::Checkpoints::open(&js, bucket).await {
            Ok(ck) => ck
                .load_named(name)
                .await
                .ok()
                .flatten()
                .map(|(x, _)| x.next_seq),
            Err(_) => None,
        };
        (last, pos)
    })
}

/// Do the checkpoints cover every message of the stream ([`stream_coverage`])?
pub fn covered(lasts: &[u64], pos: &[Option<crate::consume::Position>]) -> bool {
    lasts
        .iter()
        .zip(pos)
        .all(|(&l, p)| l == 0 || p.is_some_and(|p| p.next_seq > l))
}

/// Synthetic events number `range` (event `i` at 10·i µs after 2027-01-15) from `devices`
/// devices (10.x.y.z, interleaved), over 5000 names, each with one A answer, sizes and an
/// RTT: the benchmarks' traffic (`publish_bench`, `scale_bench`).
pub fn synthetic_events(range: std::ops::Range<u64>, devices: u64) -> Vec<dnsight_model::DnsEvent> {
    use dnsight_model::{Answer, DnsEvent, Name, RData, Ts};
    use std::net::IpAddr;
    let names: Vec<Name> = (0..5000)
        .map(|i| Name::parse(&format!("host{}.site{}.example.com", i % 50, i)).unwrap())
        .collect();
    range
        .map(|i| {
            let d = (i * 7919) % devices;
            let mut e = DnsEvent::new(
                Ts::from_micros(1_800_000_000_000_000 + i as i64 * 10),
                IpAddr::from([10, (d >> 16) as u8, (d >> 8) as u8, d as u8]),
                names[(i % 5000) as usize].clone(),
                1,
            );
            e.answers.push(Answer {
                name: e.qname.clone(),
                rtype: 1,
                ttl: 300,
                data: RData::Addr(IpAddr::from([192, 0, 2, (i % 250) as u8])),
            });
            e.rcode = Some(0);
            e.query_size = Some(40);
            e.response_size = Some(56);
            e.rtt_us = Some(900);
            e
        })
        .collect()
}
