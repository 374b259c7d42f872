//! Throughput and memory figures for the engine (a benchmark, not a test).
//!
//! `cargo run --release -p dnsight-engine --example bench_engine [-- EVENTS DEVICES [throughput|memory]]`
//!
//! 1. enrich + detect throughput on synthetic but realistic office traffic: 75 % of lookups to
//!    an org-wide Zipf pool of popular domains, 25 % to each device's own long tail, host-name churn under registered domains, CNAME chains, ~3 %
//!    NXDOMAIN, two days (one learning, one detecting), an intel feed of 10k domains, GeoIP
//!    when `../shared/data/geo` is present;
//! 2. memory per (device, destination) baseline entry with 10k devices × 1k destinations,
//!    measured with a counting global allocator;
//! 3. `-- file DIR [WORKERS [sequential]]`: replays a simulated organisation written by
//!    `dnsight simulate --format jsonl --out DIR` (its events, inventory, CIDR groups, intel feed,
//!    learning cut-off, internal suffix and policy as in its dnsight.toml), loaded into memory
//!    first so that only enrich + detect is timed, with WORKERS engine workers (default 1;
//!    `sequential`: their shards run one after the other, to time each without contention
//!    and print the speed-up a core per worker would give).
//!
//! CPU time is the process's (all threads: the workers too).

use dnsight_engine::{Engine, EngineConfig, IntelFormat, IntelSet};
use dnsight_model::{Answer, DnsEvent, Name, RData, Ts};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n > l.size() {
            ALLOCATED.fetch_add(n - l.size(), Ordering::Relaxed);
        } else {
            ALLOCATED.fetch_sub(l.size() - n, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of this thread (user + system): the fair "one core" measure on a shared machine.
fn cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Zipf-like index in 0..n (s ≈ 1).
    fn zipf(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (((n as f64 + 1.0).powf(u) - 1.0) as u64).min(n - 1)
    }
}

const TLDS: [&str; 6] = ["com", "net", "org", "io", "co.uk", "de"];
const HOSTS: [&str; 8] = [
    "www",
    "api",
    "cdn",
    "static",
    "login",
    "img",
    "edge-7",
    "telemetry",
];

fn domain(i: u64) -> String {
    format!("site{i}x.{}", TLDS[(i % 6) as usize])
}

fn traffic(n: usize, devices: u64) -> Vec<DnsEvent> {
    let mut r = Rng(0x9e3779b97f4a7c15);
    let start = 1_793_577_600i64; // Monday
    let span = 2 * 86_400i64;
    let mut v = Vec::with_capacity(n);
    for k in 0..n {
        let t = start + (k as i64 * span) / n as i64;
        let d = r.zipf(devices);
        let client = IpAddr::V4(Ipv4Addr::new(10, 1, (d >> 8) as u8, d as u8));
        // three quarters of lookups go to an org-wide popular pool (Zipf over 20k domains), the
        // rest to each device's own long tail (its slice of another 20k)
        let dom = if r.below(4) != 0 {
            r.zipf(20_000)
        } else {
            20_000 + (r.zipf(400) + d * 37) % 20_000
        };
        let host = HOSTS[r.below(8) as usize];
        let q = format!("{host}.{}", domain(dom));
        let mut e = DnsEvent::new(
            Ts::from_secs(t),
            client,
            Name::parse(&q).unwrap(),
            if r.below(4) == 0 { 28 } else { 1 },
        );
        if r.below(33) == 0 {
            e.rcode = Some(3);
        } else {
            if r.below(4) == 0 {
                let c = Name::parse(&format!("e{}.cdn-provider.net", dom % 97)).unwrap();
                e.answers.push(Answer {
                    name: e.qname.clone(),
                    rtype: 5,
                    ttl: 300,
                    data: RData::Name(c.clone()),
                });
                e.answers.push(Answer {
                    name: c,
                    rtype: 1,
                    ttl: 60,
                    data: RData::Addr(IpAddr::V4(Ipv4Addr::new(151, 101, (dom % 200) as u8, 1))),
                });
            } else {
                let ip = IpAddr::V4(Ipv4Addr::new(
                    ((dom % 180) + 20) as u8,
                    (dom >> 3) as u8,
                    (dom * 7) as u8,
                    10,
                ));
                e.answers.push(Answer {
                    name: e.qname.clone(),
                    rtype: 1,
                    ttl: 300,
                    data: RData::Addr(ip),
                });
            }
        }
        e.query_size = Some(40);
        e.response_size = Some(80);
        v.push(e);
    }
    v
}

fn config(geo: bool) -> EngineConfig {
    let mut cfg = EngineConfig {
        learn_days: 1,
        ..EngineConfig::default()
    };
    let mut feed = String::new();
    for i in 0..10_000 {
        feed.push_str(&format!("bad{i}.example\n"));
    }
    let mut s = IntelSet::new();
    s.add_feed("bench", &feed, IntelFormat::Plain, None);
    cfg.intel = Arc::new(s);
    if geo {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/geo/ip-location-db/geo-whois-asn-country.mmdb");
        if p.exists() {
            cfg.geoip = Some(Arc::new(dnsight_engine::Geo::open(&[&p]).unwrap()));
        }
    }
    cfg
}

/// Feeds every event to a fresh engine; returns it with "wall … events/s; CPU … (µs/event)".
fn timed(mut e: Engine, evs: &[DnsEvent]) -> (Engine, String) {
    let t0 = Instant::now();
    let c0 = cpu_secs();
    // in batches of one epoch, as `analyze` feeds it
    for b in evs.chunks(dnsight_engine::engine::EPOCH_EVENTS) {
        e.observe_batch(b);
    }
    let dt = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - c0;
    let n = evs.len() as f64;
    let rates = format!(
        "wall {dt:.2} s = {:.0} events/s; CPU {cpu:.2} s = {:.0} events per CPU-second ({:.2} µs/event)",
        n / dt,
        n / cpu,
        cpu * 1e6 / n
    );
    (e, rates)
}

fn throughput(n: usize, devices: u64, geo: bool) {
    let evs = traffic(n, devices);
    let cfg = config(geo);
    let has_geo = cfg.geoip.is_some();
    let (e, rates) = timed(Engine::new(cfg), &evs);
    let s = e.stats();
    println!(
        "throughput: {n} events, {devices} devices, geoip {}: {rates}; alerts {}, baseline entries {}, GeoIP database lookups (cache misses) {}",
        if has_geo { "on" } else { "off" },
        s.alerts,
        s.baseline_entries,
        s.geoip_lookups
    );
    println!("  findings: {:?}", s.findings);
}

fn memory(devices: u32, dests: u32) {
    let names: Vec<Name> = (0..dests)
        .map(|i| Name::parse(&domain(u64::from(i))).unwrap())
        .collect();
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut e = Engine::new(EngineConfig {
        learn_days: 365,
        ..EngineConfig::default()
    });
    let t0 = Instant::now();
    let start = 1_793_577_600i64;
    let mut ev = DnsEvent::new(
        Ts::from_secs(start),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        names[0].clone(),
        1,
    );
    ev.answers.push(Answer {
        name: names[0].clone(),
        rtype: 1,
        ttl: 300,
        data: RData::Addr("93.184.216.34".parse().unwrap()),
    });
    for d in 0..devices {
        ev.client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + d));
        for (j, n) in names.iter().enumerate() {
            ev.ts = Ts::from_secs(start + i64::from(d) + j as i64);
            ev.qname = n.clone();
            e.observe(&ev);
        }
    }
    let after = ALLOCATED.load(Ordering::Relaxed);
    let s = e.stats();
    let entries = s.baseline_entries as f64;
    let map_bytes: usize = e
        .shard_baselines()
        .flat_map(|b| b.devices.iter())
        .map(|d| {
            d.dests.capacity()
                * (std::mem::size_of::<(u32, dnsight_engine::baseline::DestEntry)>() + 1)
        })
        .sum();
    println!(
        "memory: {devices} devices x {dests} destinations = {} entries in {:.1} s; engine heap {:.1} MB = {:.1} bytes/entry all-in; destination tables alone {:.1} bytes/entry (entry {} B + key + control byte, at the table's load factor)",
        s.baseline_entries,
        t0.elapsed().as_secs_f64(),
        (after - before) as f64 / 1e6,
        (after - before) as f64 / entries,
        map_bytes as f64 / entries,
        std::mem::size_of::<dnsight_engine::baseline::DestEntry>()
    );
}

/// The simulated organisation's operator files, configured as its dnsight.toml says (the
/// engine crate does not parse TOML: the few settings are mirrored here).
/// The engine configuration `dnsight simulate` wrote for its organisation (`DIR/dnsight.toml`:
/// learning cut-off, internal suffixes, DoH names, policy rules, inventory and CIDR groups,
/// intel feeds), read with the same meaning as the binary's config loader gives those keys.
/// GeoIP comes from the benchmark's own database path (see `config`).
fn sim_config(dir: &std::path::Path) -> EngineConfig {
    let mut cfg = config(true);
    let text = std::fs::read_to_string(dir.join("dnsight.toml")).expect("DIR/dnsight.toml");
    let t: toml::Table = toml::from_str(&text).expect("dnsight.toml parses");
    let strs = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let det = t.get("detection").and_then(|d| d.as_table());
    if let Some(d) = det {
        cfg.learn_until = d
            .get("learn_until")
            .and_then(|v| v.as_str())
            .and_then(Ts::parse);
        for x in strs(d.get("internal_suffixes")) {
            cfg.internal_suffixes.push(x.into());
        }
        for x in strs(d.get("doh_names")) {
            cfg.doh_names.push(x.into());
        }
        for r in d
            .get("policy")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            let names = |k| strs(r.get(k)).into_iter().map(Into::into).collect();
            cfg.policy.push(dnsight_engine::PolicyRule {
                group: r.get("group").and_then(|g| g.as_str()).map(Into::into),
                deny: names("deny"),
                allow_only: names("allow_only"),
                allow_internal: r
                    .get("allow_internal")
                    .and_then(|b| b.as_bool())
                    .unwrap_or(true),
                reason: r
                    .get("reason")
                    .and_then(|x| x.as_str())
                    .unwrap_or("configured policy")
                    .into(),
                ..Default::default()
            });
        }
    }
    let mut inv = dnsight_engine::Inventory::new();
    let invt = t.get("inventory").and_then(|i| i.as_table());
    if let Some(f) = invt.and_then(|i| i.get("file")).and_then(|f| f.as_str()) {
        inv.load_csv(&std::fs::read_to_string(dir.join(f)).expect("inventory file"));
    }
    let groups = invt
        .and_then(|i| i.get("groups"))
        .and_then(|g| g.as_table());
    for (g, cidrs) in groups.into_iter().flatten() {
        for c in strs(Some(cidrs)) {
            inv.add_group(dnsight_engine::Cidr::parse(&c).expect("CIDR"), g);
        }
    }
    cfg.inventory = inv;
    let mut s = IntelSet::new();
    for f in t
        .get("intel")
        .and_then(|i| i.as_array())
        .into_iter()
        .flatten()
    {
        let file = f.get("file").and_then(|x| x.as_str()).expect("intel file");
        let name = f.get("name").and_then(|x| x.as_str()).unwrap_or(file);
        let body = std::fs::read_to_string(dir.join(file)).expect("intel feed");
        s.add_feed(name, &body, IntelFormat::Auto, None);
    }
    cfg.intel = Arc::new(s);
    cfg
}

fn replay_file(dir: &str, workers: usize, sequential: bool) {
    let dir = std::path::Path::new(dir);
    let t0 = Instant::now();
    let text = std::fs::read_to_string(dir.join("events.jsonl")).expect("DIR/events.jsonl");
    let evs: Vec<DnsEvent> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    drop(text);
    let devices = evs
        .iter()
        .map(|e| e.client)
        .collect::<std::collections::HashSet<_>>()
        .len();
    eprintln!(
        "loaded {} events in {:.1} s",
        evs.len(),
        t0.elapsed().as_secs_f64()
    );
    // a persisted engine (saving is timed separately below; observe never touches the store)
    let state = tempfile::tempdir().expect("temp dir");
    let cfg = EngineConfig {
        workers,
        ..sim_config(dir)
    };
    let mut e = Engine::open(cfg, state.path()).expect("state");
    e.set_sequential(sequential);
    let (mut e, rates) = timed(e, &evs);
    let p = e.phase_times();
    let per: Vec<u64> = e
        .shard_baselines()
        .map(|b| b.devices.iter().map(|d| d.events).sum())
        .collect();
    let top: u64 = {
        let mut v: Vec<u64> = e
            .shard_baselines()
            .flat_map(|b| b.devices.iter().map(|d| d.events))
            .collect();
        v.sort_unstable();
        v.last().copied().unwrap_or(0)
    };
    println!(
        "  events per worker {per:?} (busiest device {top}); busiest worker per epoch: {:.1} % of the events (by count: a core per worker could give at most {:.2}x)",
        100.0 * p.events_max as f64 / p.events.max(1) as f64,
        p.events as f64 / p.events_max.max(1) as f64
    );
    println!(
        "  {workers} worker(s){}, {} epochs: dispatch {:.2} s, shards {:.2} s (work {:.2} s, slowest shard per epoch {:.2} s), settle (correlator) {:.2} s; projected speed-up with a core per worker {:.2}x",
        if sequential { " run one after the other" } else { "" },
        p.epochs,
        p.dispatch.as_secs_f64(),
        p.shards.as_secs_f64(),
        p.shard_sum.as_secs_f64(),
        p.shard_max.as_secs_f64(),
        p.settle.as_secs_f64(),
        p.projected_speedup()
    );
    let s = e.stats();
    let n = evs.len();
    println!(
        "simulated org {}: {n} events, {devices} devices, geoip {}: {rates}; alerts {}, baseline entries {}",
        dir.display(),
        if e.config().geoip.is_some() { "on" } else { "off" },
        s.alerts,
        s.baseline_entries,
    );
    println!("  findings: {:?}", s.findings);
    // what `serve` pays every minute: the first save writes everything, a later one the
    // changed devices and alerts plus every detector's windows
    for what in ["first save", "next save"] {
        let t = Instant::now();
        e.save().expect("save");
        let size =
            std::fs::metadata(state.path().join(dnsight_engine::STATE_FILE)).map_or(0, |m| m.len());
        println!(
            "  {what}: {:.2} s, state file {:.1} MB",
            t.elapsed().as_secs_f64(),
            size as f64 / 1e6
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("file") {
        let workers = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
        let sequential = args.get(4).map(String::as_str) == Some("sequential");
        return replay_file(args.get(2).map_or(".", String::as_str), workers, sequential);
    }
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let devices: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let mode = args.get(3).map(String::as_str).unwrap_or("all");
    if mode != "memory" {
        throughput(n, devices, false);
        throughput(n, devices, true);
    }
    if mode != "throughput" {
        memory(10_000, 1_000);
    }
}
