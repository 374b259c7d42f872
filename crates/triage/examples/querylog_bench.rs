//! Query-log benchmark: writes N rows through the real batching writer into a fresh state
//! directory, then times the first page of indexed searches. Prints figures; asserts nothing.
//!
//!   cargo run --release -p dnsight-triage --example querylog_bench -- [ROWS] [DIR] [now]
//!
//! ROWS defaults to 10,000,000; DIR to a new temp directory (removed at the end unless given);
//! the rows' 7 days end on 2025-12-08, or now with `now`. ROWS = 0 writes nothing and searches
//! what DIR holds.
//! Traffic shape: 2,000 clients, 7 days, names from 5,000 registered domains with a Zipf-like
//! popularity (a few very common, a long tail) under a handful of subdomains each, 3 % blocked,
//! 4 % NXDOMAIN, A/AAAA/HTTPS/TXT.
//!
//! While the writer is backlogged, another connection to the same file (like the API's store)
//! adds a block every 200 ms; the time each of those actions takes to commit is printed, as is
//! the longest transaction of the writer (its hold on the write lock). After the searches, the
//! timelines the dashboard draws are timed.

use dnsight_model::{Source, Transport, VerdictAction};
use dnsight_triage::querylog::LogRow;
use dnsight_triage::{
    NewBlock, QueryFilter, QueryLog, QueryLogConfig, Scope, SqliteStore, TriageStore,
};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Roughly Zipf over 0..n: small values much more often.
    fn zipf(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) - 1.0) as u64 % n
    }
}

/// Start of the rows' 7 days unless `now` is given: 2025-12-01.
const T0_FIXED_US: i64 = 1_764_547_200_000_000;
const SPAN_US: i64 = 7 * 86_400 * 1_000_000;

fn domain(i: u64) -> String {
    format!(
        "d{i}.example{}",
        ["", ".com", ".net", ".org"][(i % 4) as usize]
    )
}

fn row(r: &mut Rng, i: u64, n: u64, t0: i64) -> LogRow {
    let client = IpAddr::V4(Ipv4Addr::new(
        10,
        0,
        (r.below(2000) / 250) as u8,
        (r.below(250) + 1) as u8,
    ));
    let d = r.zipf(5000);
    let sub = ["www", "api", "cdn", "mail", "static", "img"][r.below(6) as usize];
    let name = if r.below(10) == 0 {
        format!("x{:x}.{sub}.{}", r.next() & 0xffff_ffff, domain(d))
    } else {
        format!("{sub}.{}", domain(d))
    };
    let blocked = r.below(100) < 3;
    let nx = !blocked && r.below(100) < 4;
    let qtype = [1u16, 1, 1, 28, 28, 65, 16][r.below(7) as usize];
    LogRow {
        ts_us: t0 + (i as i128 * SPAN_US as i128 / n as i128) as i64,
        client,
        rname: name.chars().rev().collect(),
        qtype,
        rcode: Some(if nx { 3 } else { 0 }),
        answers: (!blocked && !nx && qtype == 1)
            .then(|| format!("A 93.184.{}.{}", r.below(256), r.below(256))),
        action: Some(if blocked {
            VerdictAction::Blocked
        } else if r.below(10) < 7 {
            VerdictAction::Cached
        } else {
            VerdictAction::Forwarded
        }),
        blocked: blocked.then(|| "blocklist:ads.txt".to_string()),
        upstream_us: Some(800 + r.below(20_000) as u32),
        source: Source::Resolver,
        transport: Transport::Udp,
    }
}

/// User + system CPU seconds from a `/proc/.../stat` line (fields 14 and 15, in clock ticks of
/// 1/100 s on Linux).
fn cpu_of(stat: &str) -> f64 {
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // after the ")": field 3 is index 0, so utime (14) and stime (15) are 11 and 12
    (t(11) + t(12)) / 100.0
}
fn thread_cpu_s() -> f64 {
    cpu_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default())
}
fn process_cpu_s() -> f64 {
    cpu_of(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

fn time<T>(f: impl Fn() -> T) -> (f64, T) {
    // the median of 7 runs, after one warm-up
    let _ = f();
    let mut v = Vec::new();
    let mut last = None;
    for _ in 0..7 {
        let t = Instant::now();
        let x = f();
        v.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(x);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    (v[3], last.unwrap())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|s| s.replace('_', "").parse().expect("ROWS"))
        .unwrap_or(10_000_000);
    let (_tmp, dir) = match args.next() {
        Some(d) => (None, std::path::PathBuf::from(d)),
        None => {
            let t = tempfile::tempdir().expect("tempdir");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    // `now` as the third argument: the 7 days end now (so `dnsight queries --since 1h` on the
    // state finds the last hour's rows)
    let t0 = match args.next().as_deref() {
        Some("now") => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as i64;
            now - SPAN_US
        }
        _ => T0_FIXED_US,
    };
    let cfg = QueryLogConfig {
        retention_days: None,
        max_bytes: None,
        ..Default::default()
    };
    let (log, w) = QueryLog::spawn(&dir, &cfg).expect("query log");
    // a triage action every 200 ms on the store's own connection, timed
    let writing = Arc::new(AtomicBool::new(true));
    let actions = {
        let dir = dir.clone();
        let writing = writing.clone();
        std::thread::spawn(move || {
            let mut store = SqliteStore::open(&dir).expect("store");
            // a bare write on a connection like the store's (synchronous=FULL, its busy
            // handler): the wait for the lock and the commit (its fsync), apart
            let mut raw =
                rusqlite::Connection::open(dir.join(dnsight_triage::TRIAGE_FILE)).unwrap();
            raw.pragma_update(None, "synchronous", "FULL").unwrap();
            raw.busy_handler(Some(dnsight_triage::querylog::store_busy))
                .unwrap();
            let mut lat = Vec::new();
            let (mut wait, mut commit) = (Vec::new(), Vec::new());
            let mut i = 0u64;
            while writing.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let t = Instant::now();
                raw.execute_batch("BEGIN IMMEDIATE").unwrap();
                let t1 = Instant::now();
                raw.execute("INSERT INTO meta (k, v) VALUES ('bench', 1) ON CONFLICT (k) DO UPDATE SET v = v + 1", []).unwrap();
                let t2 = Instant::now();
                raw.execute_batch("COMMIT").unwrap();
                wait.push((t1 - t).as_secs_f64() * 1e3);
                commit.push(t2.elapsed().as_secs_f64() * 1e3);
                std::thread::sleep(Duration::from_millis(100));
                let b = NewBlock {
                    name: format!("bench{i}.example"),
                    subdomains: true,
                    scope: Scope::All,
                    allow: false,
                    expires_at: None,
                    note: None,
                    alert_id: None,
                };
                let t = Instant::now();
                store.add_block(&b, "bench", 1_800_000_000).expect("action");
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                i += 1;
            }
            (lat, wait, commit)
        })
    };
    // the producer runs on its own thread, like the resolver's event thread
    let t = Instant::now();
    let prod = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut r = Rng(0x9e37_79b9_7f4a_7c15);
            let mut spins = 0u64;
            for i in 0..n {
                let mut x = row(&mut r, i, n, t0);
                // wait for room instead of dropping: the figure is the writer's sustained rate
                while let Err(back) = log.try_log_row(x) {
                    x = back;
                    spins += 1;
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
                if i > 0 && i % 1_000_000 == 0 {
                    eprintln!(
                        "  {i} rows queued, {:.0} rows/s so far",
                        i as f64 / t.elapsed().as_secs_f64()
                    );
                }
            }
            (spins, thread_cpu_s())
        })
    };
    let (spins, prod_cpu) = prod.join().unwrap();
    drop(log);
    let st = w.close();
    let secs = t.elapsed().as_secs_f64();
    writing.store(false, Ordering::Relaxed);
    let (mut lat, mut wait, mut commit) = actions.join().unwrap();
    for v in [&mut lat, &mut wait, &mut commit] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    let pct = |v: &[f64], p: f64| {
        v.get(((v.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let total_cpu = process_cpu_s();
    let mut store = SqliteStore::open(&dir).expect("store");
    let disk = store.querylog_disk().unwrap();
    println!("query log benchmark: {n} rows in {}", dir.display());
    println!(
        "write: {} rows in {secs:.1} s = {:.0} rows/s ({} batches, mean commit {:.1} ms; producer waited {spins} times for room)",
        st.written,
        st.written as f64 / secs,
        st.batches,
        st.commit_us_total as f64 / st.batches.max(1) as f64 / 1e3,
    );
    let over = |ms: u64| {
        let i = dnsight_triage::querylog::COMMIT_BUCKETS_US
            .iter()
            .position(|&b| b >= ms * 1000)
            .unwrap_or(0);
        st.commit_buckets[i + 1..].iter().sum::<u64>()
    };
    println!(
        "writer transactions: {} over 50 ms, {} over 100 ms, {} over 250 ms; {} ended early for an action",
        over(50),
        over(100),
        over(250),
        st.yields
    );
    println!(
        "actions during the write (add_block every 200 ms, own connection): {} actions, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    println!(
        "  a bare write beside them: waiting for the lock p50 {:.1} ms, p99 {:.1} ms, max {:.1}; its commit (fsync) p50 {:.1} ms, p99 {:.1} ms, max {:.1}",
        pct(&wait, 0.5),
        pct(&wait, 0.99),
        wait.last().copied().unwrap_or(0.0),
        pct(&commit, 0.5),
        pct(&commit, 0.99),
        commit.last().copied().unwrap_or(0.0)
    );
    println!(
        "cpu: process {total_cpu:.1} s, producer thread {prod_cpu:.1} s, so the writer (and the actions) {:.1} s = {:.2} µs/row = {:.0} rows per CPU-second",
        total_cpu - prod_cpu,
        (total_cpu - prod_cpu) * 1e6 / st.written.max(1) as f64,
        st.written as f64 / (total_cpu - prod_cpu).max(1e-9)
    );
    println!(
        "disk: {:.0} MiB file + {:.0} MiB WAL, {:.0} bytes/row",
        disk.file_bytes as f64 / 1048576.0,
        disk.wal_bytes as f64 / 1048576.0,
        disk.used_bytes as f64 / disk.rows.max(1) as f64
    );
    // the searches' "now": just after the newest row (so ROWS = 0 searches a state written before)
    let end = disk.newest_us.map_or(t0 + SPAN_US, |t| t + 1);
    let t0 = end - SPAN_US;
    let hour = 3_600_000_000;
    let cases: Vec<(&str, QueryFilter)> = vec![
        (
            "device + since 1h",
            QueryFilter {
                device: Some("10.0.3.7".into()),
                since_us: Some(end - hour),
                ..Default::default()
            },
        ),
        (
            "device, all time",
            QueryFilter {
                device: Some("10.0.3.7".into()),
                ..Default::default()
            },
        ),
        (
            "suffix, popular domain",
            QueryFilter {
                suffix: Some(domain(1)),
                ..Default::default()
            },
        ),
        (
            "suffix, tail domain",
            QueryFilter {
                suffix: Some(domain(4321)),
                ..Default::default()
            },
        ),
        (
            "suffix + since 1h",
            QueryFilter {
                suffix: Some(domain(7)),
                since_us: Some(end - hour),
                ..Default::default()
            },
        ),
        (
            "exact name",
            QueryFilter {
                name: Some(format!("www.{}", domain(3))),
                ..Default::default()
            },
        ),
        (
            "blocked",
            QueryFilter {
                blocked: Some(true),
                ..Default::default()
            },
        ),
        (
            "rcode NXDOMAIN + type TXT",
            QueryFilter {
                rcode: Some(3),
                qtype: Some(16),
                ..Default::default()
            },
        ),
        ("no filter", QueryFilter::default()),
    ];
    println!("first page (100 rows), median of 7:");
    for (label, mut f) in cases {
        f.limit = Some(100);
        let (ms, page) = time(|| store.search_queries(&f).unwrap());
        let (ms2, _) = match &page.next {
            Some(c) => {
                let mut g = f.clone();
                g.cursor = Some(c.clone());
                time(|| store.search_queries(&g).unwrap())
            }
            None => (0.0, page.clone()),
        };
        println!(
            "  {label:<28} {ms:>8.2} ms  ({} rows; next page {ms2:.2} ms)",
            page.rows.len()
        );
    }
    let day = 86_400_000_000i64;
    let five = 300_000_000i64;
    let tl: Vec<(&str, Option<&str>, i64, i64, i64)> = vec![
        (
            "all devices, 24 h in 5 min",
            None,
            (end - day) / five * five,
            end,
            five,
        ),
        (
            "all devices, 7 days in 1 h",
            None,
            t0 / hour * hour,
            end,
            hour,
        ),
        ("all devices, 7 days in 1 h, unaligned", None, t0, end, hour),
        (
            "one device, 7 days in 1 h",
            Some("10.0.3.7"),
            t0 / hour * hour,
            end,
            hour,
        ),
        (
            "one device, 24 h in 5 min",
            Some("10.0.3.7"),
            (end - day) / five * five,
            end,
            five,
        ),
        (
            "all devices, 1 h in 10 s, unaligned",
            None,
            end - hour - 7,
            end,
            10_000_000,
        ),
    ];
    println!("timelines, median of 7:");
    for (label, dev, since, until, step) in tl {
        let (ms, t) = time(|| store.query_timeline(dev, since, until, step).unwrap());
        let total: u64 = t.iter().map(|b| b.queries).sum();
        println!(
            "  {label:<36} {ms:>8.2} ms  ({} buckets, {total} queries)",
            t.len()
        );
    }
    // the same action with the writer stopped, for comparison
    let mut idle = Vec::new();
    for i in 0..20 {
        let b = NewBlock {
            name: format!("idle{i}.example"),
            subdomains: true,
            scope: Scope::All,
            allow: false,
            expires_at: None,
            note: None,
            alert_id: None,
        };
        let t = Instant::now();
        store.add_block(&b, "bench", 1_800_000_000).expect("action");
        idle.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(50));
    }
    idle.sort_by(|a, b| a.total_cmp(b));
    println!(
        "the same action with the writer idle: p50 {:.1} ms, max {:.1} ms",
        idle[idle.len() / 2],
        idle[idle.len() - 1]
    );
}
