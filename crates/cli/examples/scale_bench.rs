//! End to end, the distributed shape on one machine: a real `nats-server -js` and a real
//! PostgreSQL (`fsync = on`), both in temporary directories on loopback; W `dnsight worker`
//! processes (the release binary) in one group with leases, `[store]` on PostgreSQL; this
//! process as the sensor (the bus's `Publisher`, its defaults: 64 partitions, batches of
//! 1000). Once the workers share the 64 partitions, it publishes N synthetic events from D
//! devices (made beforehand) and waits until the workers have read them all (their progress
//! lines, every 250 ms). It prints the events/s end to end and the CPU seconds of each
//! process (from /proc/PID/stat) over that interval, then the latency from publishing one
//! threat-intel event to its alert being in PostgreSQL (L samples, one at a time, idle
//! workers).
//!
//! `cargo build --release -p dnsight && cargo run --release -p dnsight --example scale_bench
//! -- [EVENTS] [DEVICES] [WORKERS] [SAMPLES]`; `DNSIGHT_BIN` names the binary (default
//! `target/release/dnsight`). See bench/scale-bench.sh.

use dnsight_bus::testing::{synthetic_events, TestNats};
use dnsight_bus::{BusConfig, Publisher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The latest figures a worker printed: partitions owned, events read.
#[derive(Default, Clone)]
struct Seen {
    count: Option<u64>,
    events: u64,
    lines: Vec<String>,
}

struct W {
    child: Child,
    seen: Arc<Mutex<Seen>>,
}

fn field(line: &str, key: &str) -> Option<u64> {
    let i = line.find(key)? + key.len();
    let digits: String = line[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

impl W {
    fn start(bin: &Path, cfg: &Path, dir: &Path, intel: &Path, name: &str) -> W {
        W::spawn(bin, "worker", cfg, dir, intel, name)
    }
    fn spawn(bin: &Path, cmd: &str, cfg: &Path, dir: &Path, intel: &Path, name: &str) -> W {
        let mut child = Command::new(bin)
            .args([cmd, "--config"])
            .arg(cfg)
            .arg("--state")
            .arg(dir.join(name))
            .arg("--intel")
            .arg(intel)
            .args(["--learn-days", "0", "--group", "bench", "--name", name])
            .env("RUST_LOG", "info,dnsight_worker_progress=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dnsight worker (build it: cargo build --release -p dnsight)");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let err = child.stderr.take().unwrap();
        let s = seen.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = s.lock().unwrap();
                if l.contains("dnsight worker: partitions") {
                    s.count = field(&l, "count=");
                }
                if l.contains(" read events=") {
                    if let Some(e) = field(&l, "events=") {
                        s.events = e;
                    }
                }
                // the correlator's progress: the next findings message
                if l.contains(" folded next=") {
                    if let Some(e) = field(&l, "next=") {
                        s.events = e;
                    }
                }
                // the last lines only (a worker logs every alert: 100,000 here)
                if s.lines.len() >= 200 {
                    s.lines.remove(0);
                }
                s.lines.push(l);
            }
        });
        W { child, seen }
    }
    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
    /// (partitions, events read) without the lines.
    fn figures(&self) -> (Option<u64>, u64) {
        let s = self.seen.lock().unwrap();
        (s.count, s.events)
    }
}

impl Drop for W {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (ppid, utime+stime, cutime+cstime) in ticks.
fn stat(pid: u32) -> Option<(u32, u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // fields after the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
    let n = |i: usize| f.get(i - 3).and_then(|x| x.parse::<u64>().ok());
    Some((n(4)? as u32, n(14)? + n(15)?, n(16)? + n(17)?))
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// CPU ticks of a process tree's root and its live children (and the children it reaped).
fn tree_ticks(root: u32) -> u64 {
    let Some((_, own, reaped)) = stat(root) else {
        return 0;
    };
    own + reaped
        + pids()
            .into_iter()
            .filter_map(stat)
            .filter(|(ppid, _, _)| *ppid == root)
            .map(|(_, t, _)| t)
            .sum::<u64>()
}

/// Busy and total ticks of the whole machine (/proc/stat).
fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn find_postmaster(dir: &Path) -> Option<u32> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "postmaster.pid") {
                return std::fs::read_to_string(&p)
                    .ok()?
                    .lines()
                    .next()?
                    .parse()
                    .ok();
            }
            if p.is_dir() && stack.len() < 64 {
                stack.push(p);
            }
        }
    }
    None
}

struct Cpu {
    nats: u64,
    pg: u64,
    workers: Vec<u64>,
    me: u64,
    machine: (u64, u64),
}

fn cpu(nats: u32, pg: u32, workers: &[W]) -> Cpu {
    Cpu {
        nats: tree_ticks(nats),
        pg: tree_ticks(pg),
        workers: workers
            .iter()
            .map(|w| stat(w.child.id()).map_or(0, |s| s.1))
            .collect(),
        me: stat(std::process::id()).map_or(0, |s| s.1),
        machine: machine_ticks(),
    }
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let mut a = std::env::args().skip(1);
    let n: u64 = a.next().and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let devices: u64 = a.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let nw: usize = a.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let samples: usize = a.next().and_then(|s| s.parse().ok()).unwrap_or(50);
    let bin = std::env::var_os("DNSIGHT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/dnsight")
        });
    let tck = clk_tck();
    // SCALE_CORRELATOR=1: the workers send their findings to a `dnsight correlator`, which
    // writes the alerts; the run ends when it has folded every message
    let with_corr = std::env::var_os("SCALE_CORRELATOR").is_some_and(|v| v == "1");
    let nats = TestNats::start().expect("nats-server is needed (apt-get install nats-server)");
    let pg = dnsight_pgstore::testing::TestPg::start(true)
        .expect("PostgreSQL is needed (apt-get install postgresql)");
    let db = pg.fresh_db();
    let nats_pid = pids()
        .into_iter()
        .find(|p| {
            let c = cmdline(*p);
            c.contains("nats-server") && c.contains(&nats.dir().display().to_string())
        })
        .expect("the nats-server process");
    let pg_pid = find_postmaster(pg.dir()).expect("the postmaster");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let intel = d.join("intel.txt");
    // one destination per latency sample: alerts of one destination roll up over devices
    let intel_names: String = (0..samples.max(1))
        .map(|i| format!("c2-{i}.bad-{i}.example\n"))
        .collect();
    std::fs::write(&intel, intel_names).unwrap();
    let cfg = d.join("w.toml");
    std::fs::write(
        &cfg,
        format!(
            "[bus]\nurl = \"{}\"\nspool_dir = \"{}\"\ncorrelator = {with_corr}\n\n[store]\nurl = \"{db}\"\n",
            nats.url(),
            d.join("wspool").display()
        ),
    )
    .unwrap();
    let t_gen = Instant::now();
    let events = synthetic_events(0..n, devices);
    eprintln!(
        "scale_bench: {n} events from {devices} devices made in {:.1} s",
        t_gen.elapsed().as_secs_f64()
    );
    let mut bcfg = BusConfig::new(&nats.url(), d.join("spool"));
    bcfg.sensor = "bench".into();
    let mut p = Publisher::start(bcfg).unwrap();
    let st = p.stats();
    // the workers: wait until they share the 64 partitions (the stream exists once the
    // publisher connected)
    let corr = with_corr.then(|| W::spawn(&bin, "correlator", &cfg, d, &intel, "c1"));
    let workers: Vec<W> = (0..nw)
        .map(|i| W::start(&bin, &cfg, d, &intel, &format!("w{}", i + 1)))
        .collect();
    let end = Instant::now() + Duration::from_secs(120);
    let mut settled: Option<Instant> = None;
    loop {
        let counts: Vec<Option<u64>> = workers.iter().map(|w| w.figures().0).collect();
        let fair = counts
            .iter()
            .all(|c| c.is_some_and(|c| c >= 64 / nw as u64))
            && counts.iter().map(|c| c.unwrap_or(0)).sum::<u64>() == 64;
        match (fair, settled) {
            (true, None) => settled = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() > Duration::from_secs(3) => break,
            (false, _) => settled = None,
            _ => {}
        }
        assert!(
            Instant::now() < end,
            "the workers did not share the partitions: {counts:?}\n{}",
            workers
                .iter()
                .flat_map(|w| w.seen().lines)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let c0 = cpu(nats_pid, pg_pid, &workers);
    let corr_t0 = corr
        .as_ref()
        .map_or(0, |c| stat(c.child.id()).map_or(0, |s| s.1));
    let load0 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let t0 = Instant::now();
    for c in events.chunks(4096) {
        p.publish(c);
    }
    p.flush();
    let mut t_pub = None;
    let t_read = loop {
        let now = Instant::now();
        if t_pub.is_none() && st.snapshot().published_events >= n {
            t_pub = Some(now - t0);
        }
        let read: u64 = workers.iter().map(|w| w.figures().1).sum();
        if read >= n {
            let Some(c) = &corr else {
                break now - t0;
            };
            // every findings message folded
            let (last, _) = dnsight_bus::testing::topic_coverage(
                &nats.url(),
                "bench-findings",
                "bench-checkpoints",
                "correlator",
            );
            if c.figures().1 > last {
                break now - t0;
            }
        }
        assert!(
            now - t0 < Duration::from_secs(540),
            "read {read} of {n} events; {:?}",
            st.snapshot()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let c1 = cpu(nats_pid, pg_pid, &workers);
    let corr_s = corr.as_ref().map(|c| {
        let t = stat(c.child.id()).map_or(0, |s| s.1);
        (t.saturating_sub(corr_t0)) as f64 / tck
    });
    let load1 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let t_pub = t_pub.unwrap_or(t_read);
    let secs = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / tck;
    let wall = t_read.as_secs_f64();
    let nats_s = secs(c0.nats, c1.nats);
    let pg_s = secs(c0.pg, c1.pg);
    let w_s: Vec<f64> = c0
        .workers
        .iter()
        .zip(&c1.workers)
        .map(|(a, b)| secs(*a, *b))
        .collect();
    let me_s = secs(c0.me, c1.me);
    let ours = nats_s + pg_s + w_s.iter().sum::<f64>() + me_s + corr_s.unwrap_or(0.0);
    if let Some(c) = corr_s {
        println!(
            "  with a correlator: its CPU {c:.2} s ({:.0}% of ours)",
            100.0 * c / ours
        );
    }
    let busy = secs(c0.machine.0, c1.machine.0);
    let total = secs(c0.machine.1, c1.machine.1);
    println!(
        "scale_bench: {nw} worker(s), {n} events from {devices} devices: published (acked) in \
         {:.2} s, read by the workers in {wall:.2} s = {:.0} events/s end to end",
        t_pub.as_secs_f64(),
        n as f64 / wall
    );
    println!(
        "  CPU s over those {wall:.2} s: nats-server {nats_s:.2}, postgres {pg_s:.2}, workers \
         {w_s:.2?} (sum {:.2}), sensor (this process) {me_s:.2}; ours {ours:.2} of the machine's \
         busy {busy:.2} (capacity {total:.2} = {:.0} cores x wall)",
        w_s.iter().sum::<f64>(),
        total / wall
    );
    println!(
        "  shares of our CPU: nats-server {:.0}%, postgres {:.0}%, workers {:.0}%, sensor {:.0}%",
        100.0 * nats_s / ours,
        100.0 * pg_s / ours,
        100.0 * w_s.iter().sum::<f64>() / ours,
        100.0 * me_s / ours
    );
    println!(
        "  loadavg before: {}  loadavg after: {}",
        load0.trim(),
        load1.trim()
    );
    // the alerts of the run (written every 250 ms)
    std::thread::sleep(Duration::from_millis(600));
    let mut pc = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    let alerts: i64 = pc
        .query_one("SELECT COUNT(*) FROM alerts", &[])
        .unwrap()
        .get(0);
    println!("  alerts in PostgreSQL after the run: {alerts}");
    // latency: one intel event at a time, after the run (idle workers), until its alert is in
    // PostgreSQL
    let mut lat = Vec::new();
    let base = 1_800_000_000_000_000 + n as i64 * 10 + 1_000_000;
    for i in 0..samples {
        let dev = std::net::IpAddr::from([10, 250, (i / 256) as u8, (i % 256) as u8]);
        let e = dnsight_model::DnsEvent::new(
            dnsight_model::Ts::from_micros(base + i as i64 * 1_000_000),
            dev,
            dnsight_model::Name::parse(&format!("c2-{i}.bad-{i}.example")).unwrap(),
            1,
        );
        let ts = Instant::now();
        p.publish(&[e]);
        p.flush();
        let (devs, dest) = (dev.to_string(), format!("%bad-{i}.example"));
        let done = loop {
            let k: i64 = pc
                .query_one(
                    "SELECT COUNT(*) FROM alerts WHERE kind = 'threat_intel' \
                     AND destination LIKE $1",
                    &[&dest],
                )
                .unwrap()
                .get(0);
            if k > 0 {
                break Some(ts.elapsed());
            }
            if ts.elapsed() > Duration::from_secs(30) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match done {
            Some(t) => lat.push(t.as_secs_f64() * 1000.0),
            None => {
                println!("  latency sample {i}: no alert for {devs} within 30 s");
                break;
            }
        }
    }
    if !lat.is_empty() {
        let k = lat.len();
        println!(
            "  publish -> alert in PostgreSQL, {k} samples one at a time (idle workers): p50 \
             {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            pct(&mut lat, 1.0)
        );
    }
    if let Some(c) = &corr {
        for l in c
            .seen()
            .lines
            .iter()
            .filter(|l| l.contains("checkpoint saved"))
        {
            println!("  c1: {l}");
        }
    }
    let s = p.close(Duration::from_secs(5));
    for w in &workers {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(w.child.id().to_string())
            .status();
    }
    let end = Instant::now() + Duration::from_secs(60);
    for (i, w) in workers.into_iter().enumerate() {
        let mut w = w;
        while w.child.try_wait().ok().flatten().is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen = w.seen();
        if let Some(l) = seen.lines.iter().rev().find(|l| l.contains("stopped")) {
            println!("  w{}: {l}", i + 1);
        }
    }
    println!(
        "  publisher: {} batches, spooled {}, dropped {}",
        s.published_batches, s.spooled_events, s.dropped_events
    );
}
