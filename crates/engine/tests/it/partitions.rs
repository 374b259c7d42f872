//! The partitioned engine: 1, 2 and 3 workers give the same alerts on simulated
//! organisations with attacks, and a state saved with some number of workers loads with any
//! other.

use dnsight_engine::{Alert, Engine, EngineConfig, IntelFormat, IntelSet, PolicyRule};
use dnsight_model::DnsEvent;
use dnsight_sim::{output, SimConfig, Simulation};
use std::sync::Arc;

/// A simulated organisation's events and the engine configuration its operator files give
/// (learning cut-off, internal suffix, groups, inventory, policies, intel feed; no GeoIP).
fn org(seed: u64, devices: usize, days: u32) -> (Vec<DnsEvent>, EngineConfig) {
    let mut sim = Simulation::new(SimConfig {
        devices,
        days,
        learn_days: days - 2,
        seed,
        catalog_size: 1500,
        daily_new_domains: 150,
        ..SimConfig::default()
    })
    .expect("simulation");
    let mut cfg = EngineConfig {
        learn_until: Some(sim.labels.learn_until),
        ..EngineConfig::default()
    };
    cfg.internal_suffixes.push("corp.example".into());
    let mut inv = dnsight_engine::Inventory::new();
    inv.load_csv(&output::inventory_csv(&sim));
    for (g, c) in [
        ("workstations", "10.1.0.0/16"),
        ("servers", "10.2.0.0/24"),
        ("db", "10.3.0.0/24"),
        ("iot", "10.4.0.0/16"),
    ] {
        inv.add_group(dnsight_engine::Cidr::parse(c).unwrap(), g);
    }
    cfg.inventory = inv;
    cfg.policy.push(PolicyRule {
        group: Some("servers".into()),
        deny: vec!["deb.debian.org".into(), "pypi.org".into()],
        reason: "servers use the mirror".into(),
        ..Default::default()
    });
    cfg.policy.push(PolicyRule {
        group: Some("db".into()),
        allow_only: vec!["corp.example".into(), "10.in-addr.arpa".into()],
        allow_internal: true,
        reason: "databases reach internal services only".into(),
        ..Default::default()
    });
    let mut intel = IntelSet::new();
    intel.add_feed(
        "sim-feed",
        &output::intel_txt(&sim),
        IntelFormat::Auto,
        None,
    );
    cfg.intel = Arc::new(intel);
    let mut evs = Vec::new();
    sim.run(|e| {
        evs.push(e.clone());
        Ok(())
    })
    .unwrap();
    (evs, cfg)
}

fn run(cfg: &EngineConfig, workers: usize, evs: &[DnsEvent], batch: usize) -> Engine {
    let mut e = Engine::new(EngineConfig {
        workers,
        ..cfg.clone()
    });
    assert_eq!(e.workers(), workers);
    for b in evs.chunks(batch) {
        e.observe_batch(b);
    }
    e
}

/// Every alert, whole (ids, scores, devices, evidence): the strongest form of "the same".
fn alerts(e: &Engine) -> Vec<Alert> {
    let mut v = e.all_alerts();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn same(a: &Engine, b: &Engine, what: &str) {
    let (x, y) = (alerts(a), alerts(b));
    assert_eq!(x.len(), y.len(), "{what}: alert counts");
    for (p, q) in x.iter().zip(&y) {
        assert_eq!(p, q, "{what}");
    }
    let (s, t) = (a.stats(), b.stats());
    assert_eq!(
        (
            s.events,
            &s.findings,
            s.suppressed,
            s.devices,
            s.baseline_entries,
            s.destinations
        ),
        (
            t.events,
            &t.findings,
            t.suppressed,
            t.devices,
            t.baseline_entries,
            t.destinations
        ),
        "{what}: stats"
    );
}

#[test]
fn one_two_and_three_workers_raise_the_same_alerts() {
    for (seed, devices) in [(1, 30), (7, 40)] {
        let (evs, cfg) = org(seed, devices, 9);
        let one = run(&cfg, 1, &evs, 4096);
        let got = alerts(&one);
        // the story is rich enough to tell: attacks and roll-ups over several devices
        let kinds: std::collections::BTreeSet<&str> = got.iter().map(|a| a.kind.as_str()).collect();
        for k in ["beaconing", "threat_intel", "new_destination"] {
            assert!(kinds.contains(k), "seed {seed}: no {k} alert in {kinds:?}");
        }
        assert!(
            got.iter().any(|a| a.device_count > 1),
            "seed {seed}: no rolled-up alert"
        );
        for w in [2, 3] {
            same(
                &one,
                &run(&cfg, w, &evs, 4096),
                &format!("seed {seed}, {w} workers"),
            );
        }
    }
}

#[test]
fn batches_smaller_than_the_parallel_threshold_give_the_same_alerts() {
    // small epochs run their shards one after the other; large ones on threads
    let (evs, cfg) = org(3, 30, 9);
    let one = run(&cfg, 1, &evs, 300);
    same(&one, &run(&cfg, 2, &evs, 300), "300-event batches");
}

#[test]
fn a_state_saved_with_two_workers_resumes_with_one_or_three() {
    let (evs, cfg) = org(5, 30, 9);
    // cut in the middle of the scenario days (windows and open alerts carry over)
    let cut = evs.len() * 8 / 9;
    let (a, b) = evs.split_at(cut);
    let resumed = |first: usize, second: usize| -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Engine::open(
            EngineConfig {
                workers: first,
                ..cfg.clone()
            },
            dir.path(),
        )
        .unwrap();
        for c in a.chunks(4096) {
            e.observe_batch(c);
        }
        e.save().unwrap();
        drop(e);
        let mut e = Engine::open(
            EngineConfig {
                workers: second,
                ..cfg.clone()
            },
            dir.path(),
        )
        .unwrap();
        assert!(
            !e.notices()
                .iter()
                .any(|n| n.contains("could not be decoded")),
            "{:?}",
            e.notices()
        );
        for c in b.chunks(4096) {
            e.observe_batch(c);
        }
        e
    };
    let base = resumed(1, 1);
    assert!(!alerts(&base).is_empty());
    same(&base, &resumed(2, 1), "saved with 2, resumed with 1");
    same(&base, &resumed(2, 3), "saved with 2, resumed with 3");
}

#[test]
fn a_partition_checkpoint_holds_its_devices_and_the_sequence() {
    let (evs, cfg) = org(2, 20, 3);
    let mut e = run(&cfg, 2, &evs, 4096);
    let mut seen = 0;
    for p in 0..dnsight_engine::msg::PARTITIONS {
        let c = e.checkpoint(p);
        assert_eq!((c.partition, c.seq), (p, evs.len() as u64));
        for (ip, rec) in &c.devices {
            assert_eq!(dnsight_engine::msg::partition(*ip), p);
            assert!(!rec.is_empty());
        }
        seen += c.devices.len() as u64;
        // a plain serialisable message
        let j = serde_json::to_string(&c).unwrap();
        let back: dnsight_engine::msg::Checkpoint = serde_json::from_str(&j).unwrap();
        assert_eq!(back.devices.len(), c.devices.len());
    }
    assert_eq!(seen, e.stats().devices);
}
