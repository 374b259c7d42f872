//! Partition leases and the election against a real `nats-server -js` (started by the test):
//! two members split 64 partitions 32/32, a third joining makes it 22/21/21, a member dropped
//! without leaving (a crash) has its partitions taken over within the TTL, and no partition
//! is ever owned by two members at once (checked at every sample). Timing: heartbeat 200 ms,
//! TTL 1.5 s.

use dnsight_bus::lease::{Election, Group, GroupConfig};
use dnsight_bus::testing::TestNats;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn cfg(url: &str, member: &str) -> GroupConfig {
    let mut c = GroupConfig::new(url, 64, member);
    c.heartbeat = Duration::from_millis(200);
    c.ttl = Duration::from_millis(1500);
    c.auto_release = true;
    c
}

/// Panics when two members own one partition; returns the counts.
fn counts(gs: &[&Group]) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    gs.iter()
        .map(|g| {
            let o = g.owned();
            for p in &o {
                assert!(seen.insert(*p), "partition {p} owned twice");
            }
            o.len()
        })
        .collect()
}

/// Samples until the counts are `want` (and every partition is owned), checking exclusivity.
fn wait_for(gs: &[&Group], want: &[usize], within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let c = counts(gs);
        if c == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "counts {c:?}, want {want:?} within {within:?} (errors: {:?})",
            gs.iter().map(|g| g.error()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn members_share_partitions_and_take_over_a_dead_ones() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let url = nats.url();
    let a = Group::join(cfg(&url, "a")).unwrap();
    let b = Group::join(cfg(&url, "b")).unwrap();
    wait_for(&[&a, &b], &[32, 32], Duration::from_secs(15));
    let c = Group::join(cfg(&url, "c")).unwrap();
    wait_for(&[&a, &b, &c], &[22, 21, 21], Duration::from_secs(15));
    assert_eq!(a.members(), vec!["a", "b", "c"]);
    // b crashes: no release, its leases run out
    let t0 = Instant::now();
    drop(b);
    wait_for(&[&a, &c], &[32, 32], Duration::from_secs(15));
    let took = t0.elapsed();
    eprintln!("takeover after a crash: {took:?} (ttl 1.5 s, heartbeat 200 ms)");
    assert!(
        took >= Duration::from_millis(1000),
        "taken over before the lease could expire: {took:?}"
    );
    // a clean leave: the other takes everything at once, no TTL wait
    let t0 = Instant::now();
    c.leave();
    wait_for(&[&a], &[64], Duration::from_secs(15));
    eprintln!("takeover after a clean leave: {:?}", t0.elapsed());
}

#[test]
fn members_racing_for_partitions_never_both_own_one() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let url = nats.url();
    // six members start at once over 8 partitions, then half of them crash and come back
    let mk = |i: usize| {
        let mut c = cfg(&url, &format!("m{i}"));
        c.partitions = 8;
        Group::join(c).unwrap()
    };
    let mut gs: Vec<Option<Group>> = (0..6).map(|i| Some(mk(i))).collect();
    let t0 = Instant::now();
    let mut round = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        let live: Vec<&Group> = gs.iter().flatten().collect();
        counts(&live);
        std::thread::sleep(Duration::from_millis(10));
        if t0.elapsed() > Duration::from_secs(2 + 2 * round) && round < 3 {
            let i = round as usize * 2;
            gs[i] = None;
            gs[i] = Some(mk(i));
            round += 1;
        }
    }
    // and they settle: every partition owned once, shares differ by at most one
    let live: Vec<&Group> = gs.iter().flatten().collect();
    let t1 = Instant::now();
    loop {
        let c = counts(&live);
        if c.iter().sum::<usize>() == 8 && c.iter().max().unwrap() - c.iter().min().unwrap() <= 1 {
            break;
        }
        assert!(t1.elapsed() < Duration::from_secs(15), "{c:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_leader_at_a_time_and_a_standby_takes_over() {
    let Some(nats) = TestNats::start() else {
        return;
    };
    let url = nats.url();
    let a = Election::start(&cfg(&url, "a"), "correlator").unwrap();
    let b = Election::start(&cfg(&url, "b"), "correlator").unwrap();
    let t0 = Instant::now();
    while !(a.is_leader() || b.is_leader()) {
        assert!(t0.elapsed() < Duration::from_secs(10), "nobody elected");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..50 {
        assert!(!(a.is_leader() && b.is_leader()), "two leaders");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (leader, standby) = if a.is_leader() { (a, b) } else { (b, a) };
    // the leader crashes: the standby takes over after the TTL
    let t0 = Instant::now();
    drop(leader);
    while !standby.is_leader() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no takeover");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("election takeover after a crash: {:?}", t0.elapsed());
    // a third one stays standby while the leader lives, takes over at once when it resigns
    let c = Election::start(&cfg(&url, "c"), "correlator").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(!c.is_leader());
    let t0 = Instant::now();
    standby.resign();
    while !c.is_leader() {
        assert!(t0.elapsed() < Duration::from_secs(5), "no takeover");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        t0.elapsed() < Duration::from_millis(1200),
        "{:?}",
        t0.elapsed()
    );
}
