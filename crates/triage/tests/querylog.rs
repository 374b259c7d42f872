//! The query log: the batching writer, searches with every filter, keyset pages, retention,
//! pseudonymised clients, on a real SQLite file.

use dnsight_model::{DnsEvent, Name, Ts, Verdict, VerdictAction};
use dnsight_triage::{QueryFilter, QueryLog, QueryLogConfig, SqliteStore, TriageStore};

fn ev(sec: i64, client: &str, name: &str, qtype: u16) -> DnsEvent {
    let mut e = DnsEvent::new(
        Ts::from_secs(sec),
        client.parse().unwrap(),
        Name::parse_lenient(name),
        qtype,
    );
    e.rtt_us = Some(1500);
    e
}

fn write(
    dir: &std::path::Path,
    cfg: &QueryLogConfig,
    evs: &[DnsEvent],
) -> dnsight_triage::querylog::WriterStats {
    let (log, w) = QueryLog::spawn(dir, cfg).unwrap();
    for e in evs {
        log.log(e);
    }
    drop(log);
    w.close()
}

fn all(store: &SqliteStore, mut f: QueryFilter) -> Vec<dnsight_triage::QueryRow> {
    let mut out = Vec::new();
    loop {
        let p = store.search_queries(&f).unwrap();
        out.extend(p.rows);
        match p.next {
            Some(c) => f.cursor = Some(c),
            None => return out,
        }
    }
}

#[test]
fn writes_and_searches_by_every_filter_with_keyset_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut evs = Vec::new();
    for i in 0..1000 {
        let client = if i % 2 == 0 { "10.0.0.5" } else { "10.0.0.6" };
        let name = match i % 4 {
            0 => format!("h{i}.example.com"),
            1 => "example.com".to_string(),
            2 => format!("x{i}.badexample.com"),
            _ => "evil\\.example.com".to_string(),
        };
        let mut e = ev(
            1_700_000_000 + i,
            client,
            &name,
            if i % 5 == 0 { 28 } else { 1 },
        );
        if i % 10 == 0 {
            e.rcode = Some(3);
        }
        if i % 7 == 0 {
            e.verdict = Some(Verdict {
                action: VerdictAction::Blocked,
                rule: Some("blocklist:ads.txt".into()),
            });
        }
        evs.push(e);
    }
    let st = write(dir.path(), &QueryLogConfig::default(), &evs);
    assert_eq!((st.written, st.dropped), (1000, 0));
    let store = SqliteStore::open(dir.path()).unwrap();

    let rows = all(
        &store,
        QueryFilter {
            limit: Some(33),
            ..Default::default()
        },
    );
    assert_eq!(rows.len(), 1000, "every row once across pages");
    assert!(
        rows.windows(2)
            .all(|w| (w[0].ts_us, w[0].id) > (w[1].ts_us, w[1].id)),
        "newest first"
    );

    let dev = all(
        &store,
        QueryFilter {
            device: Some("10.0.0.5".into()),
            since_us: Some((1_700_000_000 + 500) * 1_000_000),
            ..Default::default()
        },
    );
    assert_eq!(dev.len(), 250);
    assert!(dev.iter().all(|r| r.client == "10.0.0.5"));

    // suffix: example.com and h*.example.com, not badexample.com, not the escaped-dot label
    let suf = all(
        &store,
        QueryFilter {
            suffix: Some("example.com".into()),
            limit: Some(7),
            ..Default::default()
        },
    );
    assert_eq!(suf.len(), 500);
    assert!(suf
        .iter()
        .all(|r| r.name == "example.com"
            || r.name.ends_with(".example.com") && !r.name.contains('\\')));
    let exact = all(
        &store,
        QueryFilter {
            name: Some("EXAMPLE.com.".into()),
            ..Default::default()
        },
    );
    assert_eq!(exact.len(), 250);
    let escaped = all(
        &store,
        QueryFilter {
            name: Some("evil\\.example.com".into()),
            ..Default::default()
        },
    );
    assert_eq!(escaped.len(), 250);

    let aaaa = all(
        &store,
        QueryFilter {
            qtype: Some(28),
            ..Default::default()
        },
    );
    assert_eq!(aaaa.len(), 200);
    assert!(aaaa.iter().all(|r| r.qtype == "AAAA"));
    let nx = all(
        &store,
        QueryFilter {
            rcode: Some(3),
            ..Default::default()
        },
    );
    assert_eq!(nx.len(), 100);
    assert!(nx.iter().all(|r| r.rcode.as_deref() == Some("NXDOMAIN")));
    let blocked = all(
        &store,
        QueryFilter {
            blocked: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(blocked.len(), 143);
    assert!(blocked
        .iter()
        .all(|r| r.blocked.as_deref() == Some("blocklist:ads.txt") && r.upstream_us.is_none()));
    let window = all(
        &store,
        QueryFilter {
            since_us: Some(1_700_000_100_000_000),
            until_us: Some(1_700_000_200_000_000),
            ..Default::default()
        },
    );
    assert_eq!(window.len(), 100);

    let bad = store.search_queries(&QueryFilter {
        cursor: Some("nope".into()),
        ..Default::default()
    });
    assert!(matches!(bad, Err(dnsight_triage::TriageError::Invalid(_))));
    let bad = store.search_queries(&QueryFilter {
        device: Some("<script>".into()),
        ..Default::default()
    });
    assert!(matches!(bad, Err(dnsight_triage::TriageError::Invalid(_))));

    let d = store.querylog_disk().unwrap();
    assert_eq!(d.rows, 1000);
    assert!(d.file_bytes > 0);
    assert_eq!(d.newest_us, Some((1_700_000_000 + 999) * 1_000_000));
}

#[test]
fn pseudonymised_clients_are_keyed_hashes_and_still_searchable_by_address() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = QueryLogConfig {
        pseudonymise: true,
        ..Default::default()
    };
    write(
        dir.path(),
        &cfg,
        &[
            ev(1_700_000_000, "10.0.0.5", "a.example", 1),
            ev(1_700_000_001, "10.0.0.6", "b.example", 1),
        ],
    );
    let key = std::fs::read_to_string(dir.path().join("querylog.key")).unwrap();
    assert_eq!(key.trim().len(), 64);
    let store = SqliteStore::open(dir.path()).unwrap();
    let rows = all(&store, QueryFilter::default());
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r.client.starts_with("anon-") && r.client.len() == 21));
    assert_ne!(rows[0].client, rows[1].client);
    // no address anywhere in the file
    let bytes = std::fs::read(dir.path().join("triage.sqlite")).unwrap();
    let wal = std::fs::read(dir.path().join("triage.sqlite-wal")).unwrap_or_default();
    for b in [&bytes, &wal] {
        assert!(!b.windows(8).any(|w| w == b"10.0.0.5"));
    }
    let by_ip = all(
        &store,
        QueryFilter {
            device: Some("10.0.0.5".into()),
            ..Default::default()
        },
    );
    assert_eq!(by_ip.len(), 1);
    assert_eq!(by_ip[0].name, "a.example");
    let by_pseudonym = all(
        &store,
        QueryFilter {
            device: Some(by_ip[0].client.clone()),
            ..Default::default()
        },
    );
    assert_eq!(by_pseudonym, by_ip);
    // the same key next time: the same pseudonym
    write(
        dir.path(),
        &cfg,
        &[ev(1_700_000_002, "10.0.0.5", "c.example", 1)],
    );
    assert_eq!(
        all(
            &store,
            QueryFilter {
                device: Some("10.0.0.5".into()),
                ..Default::default()
            }
        )
        .len(),
        2
    );
    assert!(store.querylog_disk().unwrap().pseudonymise);
}

#[test]
fn retention_by_days_counts_from_the_newest_row_and_size_deletes_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400;
    let evs: Vec<_> = (0..10)
        .map(|d| ev(1_700_000_000 + d * day, "10.0.0.5", "a.example", 1))
        .collect();
    let cfg = QueryLogConfig {
        retention_days: Some(3),
        max_bytes: None,
        ..Default::default()
    };
    write(dir.path(), &cfg, &evs);
    // the writer applies the retention at start and at the end: 3 days before day 9 is day 6
    let store = SqliteStore::open(dir.path()).unwrap();
    let rows = all(&store, QueryFilter::default());
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(
        rows.last().unwrap().ts_us,
        (1_700_000_000 + 6 * day) * 1_000_000
    );

    let dir = tempfile::tempdir().unwrap();
    let many: Vec<_> = (0..30_000)
        .map(|i| {
            ev(
                1_700_000_000 + i,
                "10.0.0.5",
                &format!("host-{i}.some-long-name.example"),
                1,
            )
        })
        .collect();
    write(
        dir.path(),
        &QueryLogConfig {
            retention_days: None,
            max_bytes: None,
            ..Default::default()
        },
        &many,
    );
    let store = SqliteStore::open(dir.path()).unwrap();
    let full = store.querylog_disk().unwrap();
    let cap = full.used_bytes / 2;
    write(
        dir.path(),
        &QueryLogConfig {
            retention_days: None,
            max_bytes: Some(cap),
            ..Default::default()
        },
        &[],
    );
    let after = store.querylog_disk().unwrap();
    assert!(after.used_bytes <= cap, "{after:?} over {cap}");
    assert!(after.rows < 30_000 && after.rows > 0);
    // the newest rows stay
    assert_eq!(after.newest_us, full.newest_us);
}

#[test]
fn a_full_queue_drops_and_counts_and_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = QueryLogConfig {
        queue: 1,
        ..Default::default()
    };
    let (log, w) = QueryLog::spawn(dir.path(), &cfg).unwrap();
    let e = ev(1_700_000_000, "10.0.0.5", "a.example", 1);
    for _ in 0..10_000 {
        log.log(&e);
    }
    let s = log.stats();
    assert_eq!(s.queued + s.dropped, 10_000);
    drop(log);
    let s = w.close();
    assert_eq!(s.written, s.queued);
}

#[test]
fn timelines_count_queries_blocks_and_nxdomains_per_bucket_for_all_or_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000;
    let mut evs = Vec::new();
    // bucket 0 (t0..t0+60): 3 queries from .5, one NXDOMAIN; bucket 2: 2 from .6, one blocked
    for (dt, client) in [(0, "10.0.0.5"), (10, "10.0.0.5"), (59, "10.0.0.5")] {
        let mut e = ev(t0 + dt, client, "a.example", 1);
        if dt == 10 {
            e.rcode = Some(3);
        }
        evs.push(e);
    }
    for dt in [120, 179] {
        let mut e = ev(t0 + dt, "10.0.0.6", "b.example", 1);
        if dt == 179 {
            e.verdict = Some(Verdict {
                action: VerdictAction::Blocked,
                rule: Some("list:ads".into()),
            });
        }
        evs.push(e);
    }
    // outside the range: not counted
    evs.push(ev(t0 + 240, "10.0.0.5", "c.example", 1));
    write(dir.path(), &QueryLogConfig::default(), &evs);
    let store = SqliteStore::open(dir.path()).unwrap();
    let us = 1_000_000i64;
    let all = store
        .query_timeline(None, t0 * us, (t0 + 180) * us, 60 * us)
        .unwrap();
    let counts: Vec<(u64, u64, u64)> = all
        .iter()
        .map(|b| (b.queries, b.blocked, b.nxdomain))
        .collect();
    assert_eq!(counts, vec![(3, 0, 1), (0, 0, 0), (2, 1, 0)]);
    assert_eq!(all[1].start_us, (t0 + 60) * us);
    let one = store
        .query_timeline(Some("10.0.0.6"), t0 * us, (t0 + 180) * us, 60 * us)
        .unwrap();
    assert_eq!(
        one.iter().map(|b| b.queries).collect::<Vec<_>>(),
        vec![0, 0, 2]
    );
    assert!(store
        .query_timeline(None, t0 * us, t0 * us, 60 * us)
        .is_err());
    assert!(store.query_timeline(None, 0, i64::MAX / 2, 1).is_err());
    assert!(store
        .query_timeline(Some("not-an-address"), t0 * us, (t0 + 60) * us, us)
        .is_err());
}

/// What a search must return, worked out from the events themselves: (time µs, client, name),
/// newest first.
fn expect(evs: &[DnsEvent], keep: impl Fn(&DnsEvent) -> bool) -> Vec<(i64, String, String)> {
    let mut v: Vec<_> = evs
        .iter()
        .filter(|e| keep(e))
        .map(|e| {
            (
                e.ts.micros(),
                e.client.to_string(),
                e.qname.as_str().to_string(),
            )
        })
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.0));
    v
}

fn got(rows: Vec<dnsight_triage::QueryRow>) -> Vec<(i64, String, String)> {
    rows.into_iter()
        .map(|r| (r.ts_us, r.client, r.name))
        .collect()
}

fn blocked(e: &DnsEvent) -> bool {
    matches!(&e.verdict, Some(v) if v.action == VerdictAction::Blocked)
}

/// Counts per bucket worked out from the events.
fn expect_timeline(
    evs: &[DnsEvent],
    device: Option<&str>,
    since: i64,
    until: i64,
    step: i64,
) -> Vec<(u64, u64, u64)> {
    let n = ((until - since + step - 1) / step) as usize;
    let mut out = vec![(0, 0, 0); n];
    for e in evs {
        let t = e.ts.micros();
        if t < since || t >= until || device.is_some_and(|d| e.client.to_string() != d) {
            continue;
        }
        let b = &mut out[((t - since) / step) as usize];
        b.0 += 1;
        b.1 += blocked(e) as u64;
        b.2 += (e.rcode == Some(3)) as u64;
    }
    out
}

fn timeline_of(
    store: &SqliteStore,
    device: Option<&str>,
    since: i64,
    until: i64,
    step: i64,
) -> Vec<(u64, u64, u64)> {
    store
        .query_timeline(device, since, until, step)
        .unwrap()
        .iter()
        .map(|b| (b.queries, b.blocked, b.nxdomain))
        .collect()
}

/// Events over about three days (the search indexes' buckets are ~72 minutes, so this crosses
/// ~60 of them), a few arriving late with older times.
fn days_of_events() -> Vec<DnsEvent> {
    let base = 1_699_999_200; // a whole hour
    let mut evs = Vec::new();
    for i in 0..3000i64 {
        let client = format!("10.0.0.{}", 1 + (i * 7) % 5);
        let name = match i % 5 {
            0 => format!("h{}.shop.example", i % 40),
            1 => "shop.example".to_string(),
            2 => format!("x{i}.other.test"),
            // inside the suffix's index range, but not under it
            3 => "foo-shop.example".to_string(),
            _ => format!("w{}.example", i % 9),
        };
        let mut e = ev(
            base + i * 97,
            &client,
            &name,
            if i % 3 == 0 { 28 } else { 1 },
        );
        // a late arrival: written in this order, with a time ~1 day earlier (never equal to
        // another event's time)
        if i % 101 == 50 {
            e.ts = Ts::from_micros((base + i * 97 - 86_400) * 1_000_000 + 13);
        }
        if i % 11 == 0 {
            e.verdict = Some(Verdict {
                action: VerdictAction::Blocked,
                rule: Some("list:ads".into()),
            });
        } else if i % 13 == 0 {
            e.rcode = Some(3);
        }
        evs.push(e);
    }
    evs
}

fn check_everything(store: &SqliteStore, evs: &[DnsEvent]) {
    let page = |f: QueryFilter| QueryFilter {
        limit: Some(37),
        ..f
    };
    let newest = evs.iter().map(|e| e.ts.micros()).max().unwrap();
    let day_ago = newest - 86_400_000_000;
    type Keep = Box<dyn Fn(&DnsEvent) -> bool>;
    let cases: Vec<(QueryFilter, Keep)> = vec![
        (QueryFilter::default(), Box::new(|_| true)),
        (
            QueryFilter {
                device: Some("10.0.0.3".into()),
                ..Default::default()
            },
            Box::new(|e| e.client.to_string() == "10.0.0.3"),
        ),
        (
            QueryFilter {
                suffix: Some("shop.example".into()),
                ..Default::default()
            },
            Box::new(|e| {
                let n = e.qname.as_str();
                n == "shop.example" || n.ends_with(".shop.example")
            }),
        ),
        (
            QueryFilter {
                name: Some("shop.example".into()),
                device: Some("10.0.0.2".into()),
                ..Default::default()
            },
            Box::new(|e| e.qname.as_str() == "shop.example" && e.client.to_string() == "10.0.0.2"),
        ),
        (
            QueryFilter {
                suffix: Some("example".into()),
                since_us: Some(day_ago),
                blocked: Some(false),
                ..Default::default()
            },
            Box::new(move |e| {
                e.qname.as_str().ends_with(".example") && e.ts.micros() >= day_ago && !blocked(e)
            }),
        ),
        (
            QueryFilter {
                blocked: Some(true),
                until_us: Some(day_ago),
                ..Default::default()
            },
            Box::new(move |e| blocked(e) && e.ts.micros() < day_ago),
        ),
        (
            QueryFilter {
                device: Some("10.0.0.4".into()),
                rcode: Some(3),
                ..Default::default()
            },
            Box::new(|e| e.client.to_string() == "10.0.0.4" && e.rcode == Some(3)),
        ),
        (
            QueryFilter {
                device: Some("10.9.9.9".into()),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
    ];
    for (f, keep) in cases {
        let want = expect(evs, keep);
        assert_eq!(got(all(store, page(f.clone()))), want, "{f:?}");
    }
    // timelines from the roll-ups (whole minutes, whole hours) and from the rows (any other)
    let hour = 3_600_000_000i64;
    let start = (newest - 3 * 86_400_000_000) / hour * hour;
    for (dev, since, until, step) in [
        (None, start, newest + 1, hour),
        (None, start + 7 * 60_000_000, newest - 5, 300_000_000),
        (None, start + 123, newest, 3_000_000_007),
        // whole-minute steps from a time inside a minute: each bucket boundary cuts one
        (None, start + 7 * 60_000_000 + 13, newest, hour),
        (Some("10.0.0.2"), start + 1_800_000_000, newest, 2 * hour),
        (Some("10.0.0.3"), start, newest + 1, hour),
        (Some("10.0.0.3"), start, newest + 1, 6 * hour),
        (Some("10.0.0.5"), start + 60_000_000, newest, hour),
        (Some("10.0.0.1"), start + 5, newest, 1_234_567_891),
    ] {
        assert_eq!(
            timeline_of(store, dev, since, until, step),
            expect_timeline(evs, dev, since, until, step),
            "{dev:?} {since} {until} {step}"
        );
    }
}

#[test]
fn searches_and_timelines_agree_with_the_events_across_days_and_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let evs = days_of_events();
    let cfg = QueryLogConfig {
        retention_days: None,
        max_bytes: None,
        ..Default::default()
    };
    let st = write(dir.path(), &cfg, &evs);
    assert_eq!((st.written, st.dropped), (3000, 0));
    let store = SqliteStore::open(dir.path()).unwrap();
    check_everything(&store, &evs);
    drop(store);
    // retention by days deletes the oldest rows and subtracts them from the roll-ups
    let newest = evs.iter().map(|e| e.ts.micros()).max().unwrap();
    let cutoff = newest - 86_400_000_000;
    let st = write(
        dir.path(),
        &QueryLogConfig {
            retention_days: Some(1),
            max_bytes: None,
            ..Default::default()
        },
        &[],
    );
    let kept: Vec<DnsEvent> = evs
        .iter()
        .filter(|e| e.ts.micros() >= cutoff)
        .cloned()
        .collect();
    assert_eq!(st.deleted as usize, evs.len() - kept.len());
    let store = SqliteStore::open(dir.path()).unwrap();
    check_everything(&store, &kept);
}

#[test]
fn a_version_3_query_log_migrates_with_its_rows_clients_and_timelines() {
    let dir = tempfile::tempdir().unwrap();
    dnsight_triage::create_at_version(dir.path(), 3).unwrap();
    let evs = days_of_events();
    {
        // rows as dnsight's v3 writer stored them: the client as text, the name reversed
        let c = rusqlite::Connection::open(dir.path().join(dnsight_triage::TRIAGE_FILE)).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 3);
        let tx = c.unchecked_transaction().unwrap();
        for e in &evs {
            let r = dnsight_triage::querylog::LogRow::from_event(e);
            tx.execute(
                "INSERT INTO queries (ts, client, rname, qtype, rcode, answers, action, blocked, \
                 upstream_us, source, transport) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rusqlite::params![
                    r.ts_us,
                    r.client.to_string(),
                    r.rname,
                    r.qtype,
                    r.rcode,
                    r.answers,
                    r.action.map(|a| a as i64),
                    r.blocked,
                    r.upstream_us,
                    r.source as i64,
                    r.transport as i64
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    check_everything(&store, &evs);
    let first = all(&store, QueryFilter::default());
    assert_eq!(first.len(), 3000);
    drop(store);
    // the migrated file takes new rows; old and new are searched together
    let later: Vec<DnsEvent> = (0..50)
        .map(|i| ev(1_700_400_000 + i, "10.0.0.3", "new.shop.example", 1))
        .collect();
    write(
        dir.path(),
        &QueryLogConfig {
            retention_days: None,
            max_bytes: None,
            ..Default::default()
        },
        &later,
    );
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut both = evs.clone();
    both.extend(later);
    check_everything(&store, &both);
    // reopening does not migrate again
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(all(&store, QueryFilter::default()).len(), 3050);
}

fn at(us: i64, client: &str, name: &str, qtype: u16, rtt: u32) -> DnsEvent {
    let mut e = ev(0, client, name, qtype);
    e.ts = Ts::from_micros(us);
    e.rtt_us = Some(rtt);
    e
}

/// Transactions of one second and their expected rows: 5 identical ones of .5 (one row of
/// count 5, the first time, the highest latency), a different type, client, rcode or verdict
/// apart, the next second apart.
fn coalescing_events() -> Vec<DnsEvent> {
    let s = 1_700_000_000_000_000i64; // a whole second
    let mut evs = vec![
        at(s + 200_000, "10.0.0.5", "a.example", 1, 1500),
        at(s + 100_000, "10.0.0.5", "a.example", 1, 900), // earlier, arriving later
        at(s + 300_000, "10.0.0.5", "a.example", 1, 7000),
        at(s + 400_000, "10.0.0.5", "a.example", 1, 2000),
        at(s + 999_999, "10.0.0.5", "a.example", 1, 1000),
        at(s + 500_000, "10.0.0.5", "a.example", 28, 1000),
        at(s + 600_000, "10.0.0.6", "a.example", 1, 1000),
        at(s + 1_000_000, "10.0.0.5", "a.example", 1, 1000),
        at(s + 1_000_001, "10.0.0.5", "a.example", 1, 1000),
    ];
    let mut nx = at(s + 700_000, "10.0.0.5", "a.example", 1, 1000);
    nx.rcode = Some(3);
    evs.push(nx.clone());
    evs.push(nx);
    for dt in [800_000, 850_000] {
        let mut b = at(s + dt, "10.0.0.5", "a.example", 1, 1000);
        b.verdict = Some(Verdict {
            action: VerdictAction::Blocked,
            rule: Some("list:ads".into()),
        });
        evs.push(b);
    }
    evs
}

/// Like [`write`], through a producer-side [`SinkCoalescer`] (as the resolver's event thread).
fn write_coalescing(
    dir: &std::path::Path,
    cfg: &QueryLogConfig,
    evs: &[DnsEvent],
) -> dnsight_triage::querylog::WriterStats {
    let (log, w) = QueryLog::spawn(dir, cfg).unwrap();
    let mut sink = log.coalescing();
    for e in evs {
        sink.event(e);
        sink.flush();
    }
    sink.close();
    let queued = log.stats().queued;
    assert_eq!(queued, evs.len() as u64, "queued counts transactions");
    drop(log);
    w.close()
}

#[test]
fn identical_transactions_of_a_second_are_one_row_with_their_count_everywhere() {
    let s = 1_700_000_000_000_000i64;
    let evs = coalescing_events();
    // in the writer, and on the producer's thread before the queue: the same rows
    for producer_side in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let st = if producer_side {
            write_coalescing(dir.path(), &QueryLogConfig::default(), &evs)
        } else {
            write(dir.path(), &QueryLogConfig::default(), &evs)
        };
        assert_eq!((st.written, st.rows_written, st.dropped), (13, 6, 0));
        check_coalesced(dir.path(), s);
    }
    // the retention deletes rows and subtracts their counts
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &QueryLogConfig::default(), &evs);
    let m = 60_000_000;
    let st = write(
        dir.path(),
        &QueryLogConfig {
            retention_days: None,
            max_bytes: Some(1),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(st.deleted, 13);
    let store = SqliteStore::open(dir.path()).unwrap();
    let t = store
        .query_timeline(None, s / m * m, s / m * m + m, m)
        .unwrap();
    assert_eq!(t[0].queries, 0);
    assert_eq!(store.querylog_disk().unwrap().queries, 0);

    // coalescing off: a row per transaction
    let dir = tempfile::tempdir().unwrap();
    let st = write(
        dir.path(),
        &QueryLogConfig {
            coalesce: false,
            ..Default::default()
        },
        &evs,
    );
    assert_eq!((st.written, st.rows_written), (13, 13));
    let store = SqliteStore::open(dir.path()).unwrap();
    let rows = all(&store, QueryFilter::default());
    assert_eq!(rows.len(), 13);
    assert!(rows.iter().all(|r| r.count == 1));
    let dir = tempfile::tempdir().unwrap();
    let off = QueryLogConfig {
        coalesce: false,
        ..Default::default()
    };
    let st = write_coalescing(dir.path(), &off, &evs);
    assert_eq!((st.written, st.rows_written), (13, 13));
}

/// The rows of [`coalescing_events`] and every reader's view of their counts.
fn check_coalesced(dir: &std::path::Path, s: i64) {
    let store = SqliteStore::open(dir).unwrap();
    let rows = all(&store, QueryFilter::default());
    type Seen<'a> = (
        i64,
        &'a str,
        &'a str,
        Option<&'a str>,
        bool,
        u64,
        Option<u32>,
    );
    let seen: Vec<Seen> = rows
        .iter()
        .map(|r| {
            (
                r.ts_us - s,
                r.client.as_str(),
                r.qtype.as_str(),
                r.rcode.as_deref(),
                r.blocked.is_some(),
                r.count,
                r.upstream_us,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                1_000_000,
                "10.0.0.5",
                "A",
                Some("NOERROR"),
                false,
                2,
                Some(1000)
            ),
            (800_000, "10.0.0.5", "A", Some("NOERROR"), true, 2, None),
            (
                700_000,
                "10.0.0.5",
                "A",
                Some("NXDOMAIN"),
                false,
                2,
                Some(1000)
            ),
            (
                600_000,
                "10.0.0.6",
                "A",
                Some("NOERROR"),
                false,
                1,
                Some(1000)
            ),
            (
                500_000,
                "10.0.0.5",
                "AAAA",
                Some("NOERROR"),
                false,
                1,
                Some(1000)
            ),
            // five: the earliest time, the highest upstream latency
            (
                100_000,
                "10.0.0.5",
                "A",
                Some("NOERROR"),
                false,
                5,
                Some(7000)
            ),
        ]
    );
    // filters see rows; timelines, disk and CSV see their counts
    let dev = all(
        &store,
        QueryFilter {
            device: Some("10.0.0.5".into()),
            ..Default::default()
        },
    );
    assert_eq!(dev.iter().map(|r| r.count).sum::<u64>(), 12);
    let us = 1_000_000;
    let t = store.query_timeline(None, s, s + 2 * us, us).unwrap();
    let counts: Vec<_> = t
        .iter()
        .map(|b| (b.queries, b.blocked, b.nxdomain))
        .collect();
    assert_eq!(counts, vec![(11, 2, 2), (2, 0, 0)]);
    // from the roll-ups (whole minutes and hours) too
    let m = 60 * us;
    let t = store
        .query_timeline(None, s / m * m, s / m * m + m, m)
        .unwrap();
    assert_eq!((t[0].queries, t[0].blocked, t[0].nxdomain), (13, 2, 2));
    let h = 60 * m;
    let t = store
        .query_timeline(Some("10.0.0.5"), s / h * h, s / h * h + h, h)
        .unwrap();
    assert_eq!((t[0].queries, t[0].blocked, t[0].nxdomain), (12, 2, 2));
    let d = store.querylog_disk().unwrap();
    assert_eq!((d.rows, d.queries), (6, 13));
    assert_eq!(
        dnsight_triage::querylog::CSV_HEADER
            .trim_end()
            .rsplit(',')
            .next(),
        Some("count")
    );
    assert!(dnsight_triage::querylog::csv_row(rows.last().unwrap()).ends_with(",5\n"));
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(json["count"], 2);
    drop(store);
}

#[test]
fn a_version_5_query_log_gains_counts_of_one_and_coalesces_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    dnsight_triage::create_at_version(dir.path(), 5).unwrap();
    let evs = days_of_events();
    {
        // rows as dnsight's v5 writer stored them: interned clients, no count, the roll-ups
        let c = rusqlite::Connection::open(dir.path().join(dnsight_triage::TRIAGE_FILE)).unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for e in &evs {
            let r = dnsight_triage::querylog::LogRow::from_event(e);
            tx.execute(
                "INSERT INTO query_clients (client) VALUES (?) ON CONFLICT (client) DO NOTHING",
                [r.client.to_string()],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO queries (ts, cid, rname, qtype, rcode, answers, action, blocked, \
                 upstream_us, source, transport) VALUES (?, (SELECT id FROM query_clients \
                 WHERE client = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rusqlite::params![
                    r.ts_us,
                    r.client.to_string(),
                    r.rname,
                    r.qtype,
                    r.rcode,
                    r.answers,
                    r.action.map(|a| a as i64),
                    r.blocked,
                    r.upstream_us,
                    r.source as i64,
                    r.transport as i64
                ],
            )
            .unwrap();
        }
        tx.execute_batch(
            "INSERT INTO query_minutes (minute, queries, blocked, nxdomain)
                SELECT (ts - ((ts % 60000000) + 60000000) % 60000000) / 60000000 AS m,
                       COUNT(*), COUNT(blocked), COALESCE(SUM(rcode = 3), 0)
                FROM queries GROUP BY m;
             INSERT INTO query_hours (hour, cid, queries, blocked, nxdomain)
                SELECT (ts - ((ts % 3600000000) + 3600000000) % 3600000000) / 3600000000 AS h,
                       cid, COUNT(*), COUNT(blocked), COALESCE(SUM(rcode = 3), 0)
                FROM queries GROUP BY h, cid;",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let v: i64 = rusqlite::Connection::open(dir.path().join(dnsight_triage::TRIAGE_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 6);
    check_everything(&store, &evs);
    let old = all(&store, QueryFilter::default());
    assert_eq!(old.len(), 3000);
    assert!(old.iter().all(|r| r.count == 1));
    drop(store);
    // new rows in the migrated file coalesce; old and new are counted together
    let later = coalescing_events();
    write(
        dir.path(),
        &QueryLogConfig {
            retention_days: None,
            max_bytes: None,
            ..Default::default()
        },
        &later,
    );
    let store = SqliteStore::open(dir.path()).unwrap();
    let rows = all(&store, QueryFilter::default());
    assert_eq!(rows.len(), 3006);
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 3013);
    assert_eq!(store.querylog_disk().unwrap().queries, 3013);
}
