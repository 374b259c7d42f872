//! Measures block-list loading: writes N synthetic domains (default 2,000,000) in plain-domain
//! format to a temp file, loads it as a policy, and prints the time, the set's memory and the
//! process RSS growth, then times lookups.
//!
//!     cargo run --release -p dnsight-resolver --example listload -- [N]

use dnsight_resolver::policy::{text_to_wire, ListRole, ListSpec, PolicySpec};
use std::io::Write;
use std::time::Instant;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(
            f,
            "{:x}{i}.{}.example",
            x & 0xffffff,
            ["ads", "track", "metrics", "cdn"][i % 4]
        )
        .expect("write");
    }
    drop(f);
    let bytes = std::fs::metadata(&path).expect("meta").len();
    let spec = PolicySpec {
        lists: vec![ListSpec {
            name: "big".into(),
            path: path.clone(),
            role: ListRole::Block,
        }],
        ..Default::default()
    };
    let r0 = rss_kib();
    let t0 = Instant::now();
    let p = spec.build().expect("load");
    let load = t0.elapsed();
    let r1 = rss_kib();
    println!("domains={n} file_bytes={bytes} load_ms={} set_bytes={} bytes_per_domain={:.1} rss_growth_kib={}", load.as_millis(), p.memory(), p.memory() as f64 / n as f64, r1.saturating_sub(r0));
    let client = "10.0.0.1".parse().expect("ip");
    let mut wire = Vec::new();
    let names: Vec<Vec<u8>> = (0..100_000)
        .map(|i| {
            text_to_wire(&format!("www.host{i}.example.org"), &mut wire);
            wire.clone()
        })
        .collect();
    let t1 = Instant::now();
    let mut hits = 0;
    for w in &names {
        if !matches!(
            p.decide(client, w),
            dnsight_resolver::policy::Decision::Pass
        ) {
            hits += 1;
        }
    }
    let per = t1.elapsed().as_nanos() as f64 / names.len() as f64;
    println!("lookups=100000 (misses, 4 labels) ns_per_lookup={per:.0} false_hits={hits}");
}
