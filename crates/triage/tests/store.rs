//! The SQLite triage store against real files in temporary directories.

use dnsight_engine::{Alert, Kind, Severity, Status};
use dnsight_model::Ts;
use dnsight_triage::{
    Act, AlertFilter, Change, NewBlock, Reason, Role, Scope, Sort, SqliteStore, TriageError,
    TriageStore, TRIAGE_FILE,
};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn alert(id: &str, kind: Kind, sev: Severity, device: &str, dest: &str, first: i64) -> Alert {
    Alert {
        id: id.into(),
        kind,
        severity: sev,
        score: match sev {
            Severity::Info => 10,
            Severity::Low => 25,
            Severity::Medium => 50,
            Severity::High => 70,
            Severity::Critical => 90,
        },
        device: device.into(),
        device_name: None,
        group: None,
        destination: dest.into(),
        first_seen: Ts::from_secs(first),
        last_seen: Ts::from_secs(first + 100),
        count: 1,
        summary: format!("{kind} on {dest}"),
        evidence: json!({"country": "RU", "asn": 64500, "other": "x"}),
        status: Status::Open,
        devices: vec![device.into()],
        device_count: 1,
        own_score: 0.5,
    }
}

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    (dir, s)
}

fn ids(s: &SqliteStore, f: &AlertFilter) -> Vec<String> {
    let (list, total) = s.list_alerts(f).unwrap();
    let got: Vec<String> = list.iter().map(|a| a.alert.id.clone()).collect();
    if f.limit.is_none() && f.offset == 0 {
        assert_eq!(total as usize, got.len());
        let mut all = s.alert_ids(f).unwrap();
        let mut g = got.clone();
        all.sort();
        g.sort();
        assert_eq!(all, g, "alert_ids agrees with list_alerts");
    }
    got
}

fn block(name: &str, subdomains: bool, allow: bool, expires_at: Option<i64>) -> NewBlock {
    NewBlock {
        name: name.into(),
        subdomains,
        scope: Scope::All,
        allow,
        expires_at,
        note: None,
        alert_id: None,
    }
}

#[test]
fn upsert_semantics() {
    let (_d, mut s) = store();
    let a = alert(
        "a",
        Kind::NewDestination,
        Severity::Medium,
        "10.0.0.1",
        "x.example",
        1000,
    );
    let mut f = alert(
        "f",
        Kind::Dga,
        Severity::High,
        "10.0.0.2",
        "y.example",
        1000,
    );
    f.status = Status::Flagged;
    assert_eq!(
        s.upsert_alerts(&[a.clone(), f.clone()], NOW).unwrap(),
        vec![Change::New, Change::New]
    );
    assert_eq!(
        s.get_alert("a").unwrap().unwrap().alert.status,
        Status::Open
    );
    assert_eq!(
        s.get_alert("f").unwrap().unwrap().alert.status,
        Status::Flagged
    );
    // engine reports flagged alert as open: stays flagged (store wins)
    f.status = Status::Open;
    f.count = 5;
    assert_eq!(
        s.upsert_alerts(&[f.clone()], NOW + 1).unwrap(),
        vec![Change::Updated]
    );
    let got = s.get_alert("f").unwrap().unwrap();
    assert_eq!(got.alert.status, Status::Flagged);
    assert_eq!(got.alert.count, 5);
    assert_eq!(got.updated_at, NOW + 1);
    // escalation
    let mut a2 = a.clone();
    a2.severity = Severity::Critical;
    a2.score = 90;
    assert_eq!(
        s.upsert_alerts(&[a2.clone()], NOW).unwrap(),
        vec![Change::Escalated]
    );
    // lower severity is just an update
    let mut a3 = a2.clone();
    a3.severity = Severity::High;
    assert_eq!(
        s.upsert_alerts(&[a3.clone()], NOW).unwrap(),
        vec![Change::Updated]
    );
    // grew
    let mut a4 = a3.clone();
    a4.devices.push("10.0.0.9".into());
    a4.device_count = 2;
    assert_eq!(
        s.upsert_alerts(&[a4.clone()], NOW).unwrap(),
        vec![Change::Grew]
    );
    let by_dev = AlertFilter {
        device: Some("10.0.0.9".into()),
        ..AlertFilter::default()
    };
    assert_eq!(ids(&s, &by_dev), vec!["a"]);
    // closed then open again in the engine: reopened, audited as system
    s.act(
        "a",
        &Act::Resolve {
            reason: Reason::TruePositive,
        },
        "ana",
        None,
        NOW,
    )
    .unwrap();
    // engine still reports it closed: store status stays
    let mut closed = a4.clone();
    closed.status = Status::Resolved;
    assert_eq!(
        s.upsert_alerts(&[closed], NOW).unwrap(),
        vec![Change::Updated]
    );
    assert_eq!(
        s.get_alert("a").unwrap().unwrap().alert.status,
        Status::Resolved
    );
    assert_eq!(
        s.get_alert("a").unwrap().unwrap().reason,
        Some(Reason::TruePositive)
    );
    assert_eq!(
        s.upsert_alerts(&[a4.clone()], NOW + 5).unwrap(),
        vec![Change::Reopened]
    );
    let got = s.get_alert("a").unwrap().unwrap();
    assert_eq!(got.alert.status, Status::Reopened);
    assert_eq!(got.reason, None);
    let h = s.history("a").unwrap();
    let last = h.last().unwrap();
    assert_eq!(last.actor, "system");
    assert_eq!(last.action, "reopen");
    assert_eq!(last.status_before, Some(Status::Resolved));
    assert_eq!(last.status_after, Some(Status::Reopened));
    assert_eq!(last.ts, NOW + 5);
    // the full alert round-trips (status is the store's)
    let mut want = a4.clone();
    want.status = Status::Reopened;
    assert_eq!(got.alert, want);
}

#[test]
fn ten_thousand_upserts() {
    let (_d, mut s) = store();
    let many: Vec<Alert> = (0..10_000)
        .map(|i| {
            alert(
                &format!("id{i:05}"),
                Kind::NewDestination,
                Severity::Low,
                &format!("10.0.{}.{}", i / 256, i % 256),
                &format!("d{i}.example"),
                1000 + i,
            )
        })
        .collect();
    let t = std::time::Instant::now();
    let ch = s.upsert_alerts(&many, NOW).unwrap();
    eprintln!("10k inserts: {:?}", t.elapsed());
    assert!(ch.iter().all(|c| *c == Change::New));
    let t = std::time::Instant::now();
    let ch = s.upsert_alerts(&many, NOW).unwrap();
    eprintln!("10k updates: {:?}", t.elapsed());
    assert!(ch.iter().all(|c| *c == Change::Updated));
    let (page, total) = s
        .list_alerts(&AlertFilter {
            limit: Some(10),
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(total, 10_000);
    assert_eq!(page.len(), 10);
    assert_eq!(s.alert_ids(&AlertFilter::default()).unwrap().len(), 10_000);
    assert_eq!(s.stats(NOW).unwrap().alerts_by_status["open"], 10_000);
}

fn fixture() -> (tempfile::TempDir, SqliteStore) {
    let (d, mut s) = store();
    let mut v = vec![
        alert(
            "a1",
            Kind::NewDestination,
            Severity::Low,
            "10.0.0.1",
            "evil.example",
            1000,
        ),
        alert(
            "a2",
            Kind::Dga,
            Severity::Critical,
            "10.0.0.2",
            "x.evil.example",
            2000,
        ),
        alert(
            "a3",
            Kind::Beaconing,
            Severity::High,
            "10.0.0.1",
            "notevil.example",
            3000,
        ),
        alert(
            "a4",
            Kind::Policy,
            Severity::Medium,
            "10.0.0.3",
            "other.test",
            4000,
        ),
        alert(
            "a5",
            Kind::ThreatIntel,
            Severity::Info,
            "10.0.0.4",
            "evil.example.org",
            5000,
        ),
    ];
    v[0].count = 50;
    v[1].count = 7;
    v[2].count = 50;
    v[3].count = 1;
    v[4].count = 3;
    v[3].group = Some("kids".into());
    v[3].devices = vec!["10.0.0.3".into(), "10.0.0.7".into()];
    v[3].device_count = 2;
    s.upsert_alerts(&v, NOW).unwrap();
    s.act("a4", &Act::Flag, "ana", None, NOW).unwrap();
    s.act(
        "a5",
        &Act::Resolve {
            reason: Reason::Duplicate,
        },
        "ana",
        None,
        NOW,
    )
    .unwrap();
    (d, s)
}

#[test]
fn every_filter() {
    let (_d, s) = fixture();
    let f = |g: fn(&mut AlertFilter)| {
        let mut f = AlertFilter {
            sort: Sort::FirstSeen,
            ..AlertFilter::default()
        };
        g(&mut f);
        ids(&s, &f)
    };
    assert_eq!(f(|_| {}), ["a5", "a4", "a3", "a2", "a1"]);
    assert_eq!(
        f(|f| f.ids = vec!["a2".into(), "a1".into(), "zz".into()]),
        ["a2", "a1"]
    );
    assert_eq!(
        f(|f| f.status = vec![Status::Flagged, Status::Resolved]),
        ["a5", "a4"]
    );
    assert_eq!(f(|f| f.status = vec![Status::Open]), ["a3", "a2", "a1"]);
    // rank, not string order ("high" < "medium" as strings)
    assert_eq!(
        f(|f| f.min_severity = Some(Severity::Medium)),
        ["a4", "a3", "a2"]
    );
    assert_eq!(f(|f| f.min_severity = Some(Severity::High)), ["a3", "a2"]);
    assert_eq!(f(|f| f.kind = vec![Kind::Dga, Kind::Policy]), ["a4", "a2"]);
    assert_eq!(f(|f| f.device = Some("10.0.0.1".into())), ["a3", "a1"]);
    // roll-up member
    assert_eq!(f(|f| f.device = Some("10.0.0.7".into())), ["a4"]);
    assert!(f(|f| f.device = Some("10.9.9.9".into())).is_empty());
    assert_eq!(f(|f| f.group = Some("kids".into())), ["a4"]);
    assert_eq!(f(|f| f.destination = Some("evil.example".into())), ["a1"]);
    assert_eq!(
        f(|f| f.destination = Some("*.evil.example".into())),
        ["a2", "a1"]
    );
    assert_eq!(
        f(|f| f.destination = Some("*.EXAMPLE".into())),
        ["a3", "a2", "a1"]
    );
    // since: last_seen (first + 100) at or after
    assert_eq!(f(|f| f.since = Some(3100)), ["a5", "a4", "a3"]);
    assert_eq!(f(|f| f.since = Some(3101)), ["a5", "a4"]);
    // until: first_seen before
    assert_eq!(f(|f| f.until = Some(3000)), ["a2", "a1"]);
    assert_eq!(f(|f| f.until = Some(3001)), ["a3", "a2", "a1"]);
    // combined
    assert_eq!(
        f(|f| {
            f.device = Some("10.0.0.1".into());
            f.min_severity = Some(Severity::High);
        }),
        ["a3"]
    );
}

#[test]
fn sorts_and_paging() {
    let (_d, s) = fixture();
    let sorted = |sort| {
        ids(
            &s,
            &AlertFilter {
                sort,
                ..AlertFilter::default()
            },
        )
    };
    assert_eq!(sorted(Sort::Severity), ["a2", "a3", "a4", "a1", "a5"]);
    assert_eq!(sorted(Sort::LastSeen), ["a5", "a4", "a3", "a2", "a1"]);
    assert_eq!(sorted(Sort::FirstSeen), ["a5", "a4", "a3", "a2", "a1"]);
    // a1 and a3 tie on count 50: id breaks the tie
    assert_eq!(sorted(Sort::Count), ["a1", "a3", "a2", "a5", "a4"]);
    let page = |limit, offset| {
        let (l, t) = s
            .list_alerts(&AlertFilter {
                sort: Sort::Count,
                limit: Some(limit),
                offset,
                ..AlertFilter::default()
            })
            .unwrap();
        (l.into_iter().map(|a| a.alert.id).collect::<Vec<_>>(), t)
    };
    assert_eq!(page(2, 0), (vec!["a1".to_string(), "a3".into()], 5));
    assert_eq!(page(2, 2), (vec!["a2".to_string(), "a5".into()], 5));
    assert_eq!(page(2, 4), (vec!["a4".to_string()], 5));
    assert_eq!(page(2, 10), (vec![], 5));
    // offset without limit
    let (l, t) = s
        .list_alerts(&AlertFilter {
            sort: Sort::Count,
            offset: 3,
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(t, 5);
    assert_eq!(l.len(), 2);
}

#[test]
fn act_each_variant() {
    let (_d, mut s) = fixture();
    // ack
    let o = s
        .act(
            "a1",
            &Act::Ack {
                scope: Scope::Device("10.0.0.1".parse().unwrap()),
                until: Some(NOW + 3600),
            },
            "ana",
            Some("backup job"),
            NOW + 1,
        )
        .unwrap();
    assert_eq!((o.before, o.after), (Status::Open, Status::Acknowledged));
    let ack = o.ack.unwrap();
    assert_eq!(ack.kind, Kind::NewDestination);
    assert_eq!(ack.destination, "evil.example");
    assert_eq!(ack.detail, json!({"country": "RU", "asn": 64500}));
    assert_eq!(ack.note.as_deref(), Some("backup job"));
    assert_eq!(s.active_acks(NOW).unwrap(), vec![ack.clone()]);
    let line = s.history("a1").unwrap().pop().unwrap();
    assert_eq!(line.action, "ack");
    assert_eq!(line.actor, "ana");
    assert_eq!(line.scope.as_deref(), Some("device:10.0.0.1"));
    assert_eq!(line.until, Some(NOW + 3600));
    assert_eq!(line.note.as_deref(), Some("backup job"));
    assert_eq!(line.status_before, Some(Status::Open));
    assert_eq!(line.status_after, Some(Status::Acknowledged));
    assert_eq!(line.ts, NOW + 1);
    let a1 = s.get_alert("a1").unwrap().unwrap();
    assert_eq!(a1.alert.status, Status::Acknowledged);
    assert_eq!(a1.note.as_deref(), Some("backup job"));
    // reopen
    let o = s.act("a1", &Act::Reopen, "bob", None, NOW + 2).unwrap();
    assert_eq!(
        (o.before, o.after),
        (Status::Acknowledged, Status::Reopened)
    );
    // reopening ends the ack that covered it: a restart must not re-apply it
    assert_eq!(o.ended_acks, vec![ack.clone()]);
    assert!(s.active_acks(NOW + 2).unwrap().is_empty());
    // note: status stays, latest note stored
    let o = s
        .act("a1", &Act::Note, "bob", Some("still looking"), NOW + 3)
        .unwrap();
    assert_eq!((o.before, o.after), (Status::Reopened, Status::Reopened));
    assert_eq!(
        s.get_alert("a1").unwrap().unwrap().note.as_deref(),
        Some("still looking")
    );
    assert!(matches!(
        s.act("a1", &Act::Note, "bob", None, NOW),
        Err(TriageError::Invalid(_))
    ));
    // resolve
    let o = s
        .act(
            "a1",
            &Act::Resolve {
                reason: Reason::FalsePositive,
            },
            "bob",
            None,
            NOW + 4,
        )
        .unwrap();
    assert_eq!(o.after, Status::Resolved);
    let a1 = s.get_alert("a1").unwrap().unwrap();
    assert_eq!(a1.reason, Some(Reason::FalsePositive));
    assert_eq!(a1.note.as_deref(), Some("still looking"));
    let h = s.history("a1").unwrap();
    let acts: Vec<&str> = h.iter().map(|l| l.action.as_str()).collect();
    assert_eq!(acts, ["ack", "reopen", "note", "resolve"]);
    assert_eq!(h[3].reason, Some(Reason::FalsePositive));
    assert_eq!(h[3].status_before, Some(Status::Reopened));
    // flag
    let o = s.act("a2", &Act::Flag, "ana", None, NOW).unwrap();
    assert_eq!((o.before, o.after), (Status::Open, Status::Flagged));
    assert_eq!(s.history("a2").unwrap()[0].action, "flag");
    // block
    let serial = s.rpz_serial().unwrap();
    let o = s
        .act(
            "a3",
            &Act::Block {
                scope: Scope::All,
                name: "NotEvil.Example.".into(),
                subdomains: true,
                expires_at: None,
            },
            "ana",
            Some("c2"),
            NOW,
        )
        .unwrap();
    assert_eq!(o.after, Status::Blocked);
    let b = o.block.unwrap();
    assert_eq!(b.name, "notevil.example");
    assert!(b.subdomains && !b.allow);
    assert_eq!(b.alert_id.as_deref(), Some("a3"));
    assert_eq!(b.note.as_deref(), Some("c2"));
    assert_eq!(s.active_blocks(NOW).unwrap(), vec![b.clone()]);
    assert_eq!(s.rpz_serial().unwrap(), serial + 1);
    let line = s.history("a3").unwrap().pop().unwrap();
    assert_eq!(line.action, "block");
    assert_eq!(line.scope.as_deref(), Some("all"));
    assert_eq!(line.target.as_deref(), Some("notevil.example"));
    // invalid block names do nothing
    for bad in ["", ".", "a b.example", "a..b", "*.y.example"] {
        let r = s.act(
            "a4",
            &Act::Block {
                scope: Scope::All,
                name: bad.into(),
                subdomains: false,
                expires_at: None,
            },
            "ana",
            None,
            NOW,
        );
        assert!(matches!(r, Err(TriageError::Invalid(_))), "{bad:?}: {r:?}");
    }
    assert_eq!(
        s.get_alert("a4").unwrap().unwrap().alert.status,
        Status::Flagged
    );
    assert_eq!(s.rpz_serial().unwrap(), serial + 1);
    // unknown id
    match s.act("nope\"x", &Act::Flag, "ana", None, NOW) {
        Err(TriageError::NotFound(m)) => assert!(m.contains("nope"), "{m}"),
        other => panic!("{other:?}"),
    }
    // oversized note
    let big = "n".repeat(4097);
    assert!(matches!(
        s.act("a2", &Act::Note, "ana", Some(&big), NOW),
        Err(TriageError::Invalid(_))
    ));
    let ok = "n".repeat(4096);
    s.act("a2", &Act::Note, "ana", Some(&ok), NOW).unwrap();
    // audit: newest first
    let au = s.audit(2).unwrap();
    assert_eq!(au.len(), 2);
    assert_eq!(au[0].action, "note");
    assert!(au[0].id > au[1].id);
}

#[test]
fn block_name_validation() {
    use dnsight_triage::normalize_name;
    assert_eq!(normalize_name("Evil.EXAMPLE.").unwrap(), "evil.example");
    assert_eq!(
        normalize_name("xn--bcher-kva.example").unwrap(),
        "xn--bcher-kva.example"
    );
    assert_eq!(normalize_name("_dmarc.example").unwrap(), "_dmarc.example");
    let l63 = "a".repeat(63);
    assert!(normalize_name(&format!("{l63}.example")).is_ok());
    let long = [l63.as_str(); 4].join(".");
    assert_eq!(long.len(), 255);
    for bad in [
        String::new(),
        ".".into(),
        "example..".into(),
        ".example".into(),
        "a..b".into(),
        format!("{}.example", "a".repeat(64)),
        long,
        "bad name".into(),
        "tab\t.example".into(),
        "nl\n.example".into(),
        "nul\0.example".into(),
        "bücher.example".into(),
        "*.wild.example".into(),
        "a.*.example".into(),
        "bad\\".into(),
        "bad\\25".into(),
    ] {
        match normalize_name(&bad) {
            Err(TriageError::Invalid(m)) => assert!(!m.is_empty()),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // zone-file specials and escapes are taken and written canonically (the alert's own form)
    for (given, canonical) in [
        ("semi;colon", "semi\\;colon"),
        ("Paren(.example", "paren\\(.example"),
        ("quote\".example", "quote\\\".example"),
        ("back\\slash", "backslash"),
        ("back\\\\slash", "back\\\\slash"),
        ("sp\\032ace.example", "sp\\032ace.example"),
        ("dot\\.in.label", "dot\\.in.label"),
        ("@", "\\@"),
    ] {
        assert_eq!(normalize_name(given).unwrap(), canonical, "{given}");
        assert_eq!(
            dnsight_model::Name::parse(canonical).unwrap().as_str(),
            canonical
        );
    }
    let (_d, mut s) = store();
    assert!(matches!(
        s.add_block(&block("a b", false, false, None), "x", NOW),
        Err(TriageError::Invalid(_))
    ));
    assert_eq!(s.rpz_serial().unwrap(), 1);
    assert!(s.audit(10).unwrap().is_empty());
}

#[test]
fn blocks_serial_and_expiry() {
    let (_d, mut s) = store();
    assert_eq!(s.rpz_serial().unwrap(), 1);
    let b1 = s
        .add_block(&block("a.example", true, false, Some(NOW + 10)), "ana", NOW)
        .unwrap();
    assert_eq!(s.rpz_serial().unwrap(), 2);
    let b2 = s
        .add_block(&block("b.example", false, true, None), "ana", NOW)
        .unwrap();
    assert_eq!(s.rpz_serial().unwrap(), 3);
    assert!(b2.allow);
    assert_eq!(b2.created_by, "ana");
    assert_eq!(b2.created_at, NOW);
    let au = s.audit(10).unwrap();
    assert_eq!(au[0].action, "allow");
    assert_eq!(au[0].target.as_deref(), Some("b.example"));
    assert_eq!(au[1].action, "block");
    assert_eq!(au[1].until, Some(NOW + 10));
    // an ack that expires too
    s.upsert_alerts(
        &[alert(
            "x",
            Kind::NewCountry,
            Severity::Low,
            "10.0.0.1",
            "c.example",
            1,
        )],
        NOW,
    )
    .unwrap();
    s.act(
        "x",
        &Act::Ack {
            scope: Scope::All,
            until: Some(NOW + 20),
        },
        "ana",
        None,
        NOW,
    )
    .unwrap();
    let st = s.stats(NOW).unwrap();
    assert_eq!(
        (st.blocks_active, st.allows_active, st.acks_active),
        (1, 1, 1)
    );
    // active by now
    assert_eq!(s.active_blocks(NOW + 9).unwrap().len(), 2);
    assert_eq!(s.active_blocks(NOW + 10).unwrap(), vec![b2.clone()]);
    assert_eq!(s.active_acks(NOW + 20).unwrap().len(), 0);
    // expire: nothing yet
    assert_eq!(s.expire(NOW + 5).unwrap(), 0);
    assert_eq!(s.rpz_serial().unwrap(), 3);
    assert_eq!(s.expire(NOW + 10).unwrap(), 1);
    assert_eq!(s.rpz_serial().unwrap(), 4);
    let l = &s.audit(1).unwrap()[0];
    assert_eq!((l.actor.as_str(), l.action.as_str()), ("system", "expire"));
    assert_eq!(l.target.as_deref(), Some("a.example"));
    // the ack expires without touching the serial
    assert_eq!(s.expire(NOW + 30).unwrap(), 0);
    assert_eq!(s.rpz_serial().unwrap(), 4);
    let l = &s.audit(1).unwrap()[0];
    assert_eq!(
        (l.action.as_str(), l.alert_id.as_deref()),
        ("expire", Some("x"))
    );
    assert!(s.active_acks(0).unwrap().is_empty());
    // remove
    let gone = s.remove_block(b2.id, "bob", NOW).unwrap();
    assert_eq!(gone, b2);
    assert_eq!(s.rpz_serial().unwrap(), 5);
    assert_eq!(s.audit(1).unwrap()[0].action, "unblock");
    assert!(matches!(
        s.remove_block(b1.id, "bob", NOW),
        Err(TriageError::NotFound(_))
    ));
    assert!(s.active_blocks(0).unwrap().is_empty());
}

#[test]
fn tokens() {
    let (_d, mut s) = store();
    let (info, secret) = s
        .create_token("ci", Role::Analyst, Some(NOW + 100), "admin", NOW)
        .unwrap();
    assert!(
        secret.starts_with(&format!("dnsight_{}_", info.id)),
        "{secret}"
    );
    assert_eq!(
        secret.len(),
        "dnsight_".len() + info.id.to_string().len() + 1 + 64
    );
    assert_eq!(info.role, Role::Analyst);
    let v = s.verify_token(&secret, NOW + 1).unwrap().unwrap();
    assert_eq!(
        (v.id, v.name.as_str(), v.role),
        (info.id, "ci", Role::Analyst)
    );
    assert_eq!(v.last_used, Some(NOW + 1));
    // last_used written at most once a minute
    s.verify_token(&secret, NOW + 30).unwrap().unwrap();
    assert_eq!(s.list_tokens().unwrap()[0].last_used, Some(NOW + 1));
    s.verify_token(&secret, NOW + 61).unwrap().unwrap();
    assert_eq!(s.list_tokens().unwrap()[0].last_used, Some(NOW + 61));
    // wrong secrets
    let mut wrong = secret.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    for bad in [
        wrong.as_str(),
        "",
        "dnsight_",
        "dnsight_1_",
        "Bearer x",
        &secret[..secret.len() - 1],
        "dnsight_99_0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert!(s.verify_token(bad, NOW).unwrap().is_none(), "{bad}");
    }
    // expired
    assert!(s.verify_token(&secret, NOW + 100).unwrap().is_none());
    // names unique among non-revoked
    assert!(matches!(
        s.create_token("ci", Role::Viewer, None, "admin", NOW),
        Err(TriageError::Invalid(_))
    ));
    assert!(matches!(
        s.create_token("", Role::Viewer, None, "admin", NOW),
        Err(TriageError::Invalid(_))
    ));
    let (v2, sec2) = s
        .create_token("viewer", Role::Viewer, None, "admin", NOW)
        .unwrap();
    assert_ne!(sec2, secret);
    // revoke by name and by id
    let r = s.revoke_token("ci", "admin", NOW + 2).unwrap();
    assert_eq!(r.revoked_at, Some(NOW + 2));
    assert!(s.verify_token(&secret, NOW + 3).unwrap().is_none());
    let r2 = s
        .revoke_token(&v2.id.to_string(), "admin", NOW + 2)
        .unwrap();
    assert_eq!(r2.name, "viewer");
    assert!(s.verify_token(&sec2, NOW + 3).unwrap().is_none());
    assert!(matches!(
        s.revoke_token("ci", "admin", NOW),
        Err(TriageError::NotFound(_))
    ));
    // the name is free again
    s.create_token("ci", Role::Admin, None, "admin", NOW)
        .unwrap();
    let list = s.list_tokens().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(s.stats(NOW + 3).unwrap().tokens_active, 1);
    let acts: Vec<String> = s.audit(10).unwrap().into_iter().map(|l| l.action).collect();
    assert_eq!(
        acts,
        [
            "token_create",
            "token_revoke",
            "token_revoke",
            "token_create",
            "token_create"
        ]
    );
    // the secret is nowhere in the file
    drop(s);
    let bytes = std::fs::read(_d.path().join(TRIAGE_FILE)).unwrap();
    let mut wal = std::fs::read(_d.path().join(format!("{TRIAGE_FILE}-wal"))).unwrap_or_default();
    wal.extend(bytes);
    let hexpart = secret.rsplit('_').next().unwrap().as_bytes();
    assert!(!wal.windows(hexpart.len()).any(|w| w == hexpart));
}

#[test]
fn second_process_sees_and_writes() {
    let (d, mut s1) = fixture();
    let mut s2 = SqliteStore::open(d.path()).unwrap();
    assert_eq!(
        s2.get_alert("a4").unwrap().unwrap().alert.status,
        Status::Flagged
    );
    // s2 writes while s1 holds its connection
    let (_, secret) = s2
        .create_token("cli", Role::Admin, None, "cli", NOW)
        .unwrap();
    assert!(s1.verify_token(&secret, NOW).unwrap().is_some());
    s1.act("a1", &Act::Flag, "ana", None, NOW).unwrap();
    assert_eq!(
        s2.get_alert("a1").unwrap().unwrap().alert.status,
        Status::Flagged
    );
    s2.add_block(&block("z.example", false, false, None), "cli", NOW)
        .unwrap();
    assert_eq!(s1.rpz_serial().unwrap(), 2);
    // a writer in another thread while a read transaction is open elsewhere
    let dir = d.path().to_path_buf();
    let h = std::thread::spawn(move || {
        let mut s3 = SqliteStore::open(&dir).unwrap();
        for i in 0..20 {
            s3.add_block(
                &block(&format!("t{i}.example"), false, false, None),
                "t",
                NOW,
            )
            .unwrap();
        }
    });
    for _ in 0..20 {
        s1.act("a2", &Act::Note, "ana", Some("n"), NOW).unwrap();
    }
    h.join().unwrap();
    assert_eq!(s2.active_blocks(NOW).unwrap().len(), 21);
    assert_eq!(s1.rpz_serial().unwrap(), 22);
}

#[test]
fn hostile_strings_round_trip_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let evil = "q'uo\"te; DROP TABLE alerts;--\n\r\t\0 ünï©ødé 🦀 \\ %_";
    let (tok_secret, block_id) = {
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let mut a = alert(evil, Kind::Policy, Severity::High, "10.0.0.1", evil, 1000);
        a.device_name = Some(evil.into());
        a.group = Some(evil.into());
        a.summary = evil.into();
        a.evidence = json!({"name": evil, "rule": evil});
        a.devices = vec!["10.0.0.1".into(), evil.into()];
        a.device_count = 2;
        s.upsert_alerts(&[a], NOW).unwrap();
        s.act(
            evil,
            &Act::Ack {
                scope: Scope::Group(evil.into()),
                until: None,
            },
            evil,
            Some(evil),
            NOW,
        )
        .unwrap();
        let mut nb = block("ok.example", false, false, None);
        nb.scope = Scope::Group(evil.into());
        nb.note = Some(evil.into());
        nb.alert_id = Some(evil.into());
        let b = s.add_block(&nb, evil, NOW).unwrap();
        let (_, secret) = s.create_token(evil, Role::Viewer, None, evil, NOW).unwrap();
        (secret, b.id)
    };
    // reopened from the file: everything is there, exactly
    let s = SqliteStore::open(dir.path()).unwrap();
    let a = s.get_alert(evil).unwrap().unwrap();
    assert_eq!(a.alert.id, evil);
    assert_eq!(a.alert.destination, evil);
    assert_eq!(a.alert.device_name.as_deref(), Some(evil));
    assert_eq!(a.alert.summary, evil);
    assert_eq!(a.note.as_deref(), Some(evil));
    assert_eq!(a.alert.status, Status::Acknowledged);
    let by = |f: AlertFilter| s.alert_ids(&f).unwrap();
    assert_eq!(
        by(AlertFilter {
            device: Some(evil.into()),
            ..AlertFilter::default()
        }),
        vec![evil.to_string()]
    );
    assert_eq!(
        by(AlertFilter {
            group: Some(evil.into()),
            ..AlertFilter::default()
        }),
        vec![evil.to_string()]
    );
    let ack = &s.active_acks(NOW).unwrap()[0];
    assert_eq!(ack.scope, Scope::Group(evil.into()));
    assert_eq!(ack.created_by, evil);
    assert_eq!(ack.detail, json!({"name": evil, "rule": evil}));
    let h = s.history(evil).unwrap();
    // the ack, and the block that names the alert
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].action.as_str(), h[1].action.as_str()),
        ("ack", "block")
    );
    assert_eq!(h[0].scope, Some(format!("group:{evil}")));
    assert_eq!(h[0].actor, evil);
    assert_eq!(h[0].note.as_deref(), Some(evil));
    let b = &s.active_blocks(NOW).unwrap()[0];
    assert_eq!(b.id, block_id);
    assert_eq!(b.note.as_deref(), Some(evil));
    assert_eq!(b.alert_id.as_deref(), Some(evil));
    assert_eq!(b.created_by, evil);
    assert_eq!(
        s.verify_token(&tok_secret, NOW).unwrap().unwrap().name,
        evil
    );
    assert_eq!(s.rpz_serial().unwrap(), 2);
    let st = s.stats(NOW).unwrap();
    assert_eq!(st.alerts_by_status["acknowledged"], 1);
    assert_eq!(st.alerts_by_status["open"], 0);
    assert_eq!(st.audit_entries, 3);
    assert!(st.file_bytes > 0);
}

// ---------------------------------------------------------------- the notification outbox

/// Routes every event of a medium-or-worse alert to "hook", and acknowledgements to "chat".
struct TestRouter;
impl dnsight_triage::Router for TestRouter {
    fn route(&self, a: &Alert, e: dnsight_triage::NotifyEvent) -> Vec<String> {
        use dnsight_triage::NotifyEvent as E;
        let mut v = Vec::new();
        if a.severity >= Severity::Medium {
            v.push("hook".to_string());
        }
        if e == E::Acknowledged {
            v.push("chat".to_string());
        }
        v
    }
}

#[test]
fn outbox_rows_come_with_the_change_that_caused_them() {
    use dnsight_triage::{NotifyEvent as E, OutboxState};
    let (d, mut s) = store();
    // before a router is set, nothing is queued
    s.upsert_alerts(
        &[alert(
            "q",
            Kind::Dga,
            Severity::High,
            "10.0.0.9",
            "q.example",
            NOW,
        )],
        NOW,
    )
    .unwrap();
    assert!(s.outbox_list(None, 10).unwrap().is_empty());
    s.set_router(Some(std::sync::Arc::new(TestRouter)));

    let mut a = alert(
        "a",
        Kind::Dga,
        Severity::Medium,
        "10.0.0.1",
        "x.example",
        NOW,
    );
    let low = alert("l", Kind::Dga, Severity::Low, "10.0.0.2", "y.example", NOW);
    s.upsert_alerts(&[a.clone(), low.clone()], NOW).unwrap();
    // a count update is not news; an escalation is; the roll-up growing to 2 and 4 devices is,
    // to 3 is not
    a.count = 5;
    s.upsert_alerts(&[a.clone()], NOW + 1).unwrap();
    a.severity = Severity::High;
    s.upsert_alerts(&[a.clone()], NOW + 2).unwrap();
    for n in [2u32, 3, 4] {
        a.device_count = n;
        a.devices.push(format!("10.0.0.{}", 10 + n));
        s.upsert_alerts(&[a.clone()], NOW + 3).unwrap();
    }
    s.act(
        "a",
        &Act::Ack {
            scope: Scope::All,
            until: None,
        },
        "ann",
        Some("fine"),
        NOW + 4,
    )
    .unwrap();
    s.act("a", &Act::Note, "ann", Some("just a note"), NOW + 5)
        .unwrap();
    let due = s.outbox_due("hook", NOW + 10, 100).unwrap();
    let evs: Vec<(String, E)> = due.iter().map(|i| (i.alert.id.clone(), i.event)).collect();
    assert_eq!(
        evs,
        vec![
            ("a".into(), E::New),
            ("a".into(), E::Escalated),
            ("a".into(), E::Grew),
            ("a".into(), E::Grew),
            ("a".into(), E::Acknowledged),
        ]
    );
    let ack = &due[4];
    assert_eq!(
        (ack.actor.as_str(), ack.note.as_deref()),
        ("ann", Some("fine"))
    );
    assert_eq!(ack.alert.status, Status::Acknowledged);
    assert_eq!(due[3].alert.device_count, 4);
    let chat = s.outbox_due("chat", NOW + 10, 100).unwrap();
    assert_eq!(chat.len(), 1);
    // not due before its time
    assert!(s.outbox_due("hook", NOW - 1, 100).unwrap().is_empty());

    // delivery outcomes: sent, digest, retry until failed
    s.outbox_sent(&[due[0].id], NOW + 11).unwrap();
    let dg = s
        .outbox_digest_sent("hook", &[due[1].id, due[2].id], NOW + 12)
        .unwrap();
    assert_eq!(s.outbox_sent_since("hook", NOW).unwrap(), (1, 1));
    assert_eq!(s.outbox_last_digest("hook").unwrap(), Some(NOW + 12));
    assert_eq!(s.outbox_retry(&[due[3].id], "503", NOW + 20, 2).unwrap(), 0);
    assert!(s
        .outbox_due("hook", NOW + 19, 100)
        .unwrap()
        .iter()
        .all(|i| i.id != due[3].id));
    assert_eq!(
        s.outbox_retry(&[due[3].id], "503 again", NOW + 40, 2)
            .unwrap(),
        1
    );
    let failed = s.outbox_list(Some(OutboxState::Failed), 10).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 2);
    assert_eq!(failed[0].last_error.as_deref(), Some("503 again"));
    let st = s.stats(NOW).unwrap().outbox;
    assert_eq!((st.pending, st.sent, st.failed, st.digests), (2, 3, 1, 1));
    let all = s.outbox_list(None, 100).unwrap();
    assert!(all.iter().filter(|i| i.digest == Some(dg)).count() == 2);

    // another connection (the notifier's) sees the same rows
    let other = SqliteStore::open(d.path()).unwrap();
    assert_eq!(other.outbox_due("hook", NOW + 10, 100).unwrap().len(), 1);
}

#[test]
fn a_version_1_file_gains_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join(TRIAGE_FILE)).unwrap();
        // the columns later versions index (v3)
        c.execute_batch(
            "CREATE TABLE alerts (id TEXT PRIMARY KEY, kind, severity, sev_rank, score, status, \
             device, destination, first_seen, last_seen, updated_at); PRAGMA user_version = 1; \
             INSERT INTO alerts VALUES ('a', 'dga', 'high', 3, 50, 'open', '10.0.0.1', 'x.example', 0, 0, 0), \
             ('b', 'dga', 'low', 1, 20, 'resolved', '10.0.0.2', 'y.example', 0, 0, 0);",
        )
        .unwrap();
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    assert!(s.outbox_list(None, 1).unwrap().is_empty());
    // step 4 counts the alerts the file already held
    assert_eq!(s.alerts_changed().unwrap().0, 1);
    let o = s.alert_overview(0, 10).unwrap();
    assert_eq!(o.top_destinations, vec![("x.example".to_string(), 1)]);
}

#[test]
fn users_and_sessions() {
    let (_d, mut s) = store();
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    assert!(s.list_users().unwrap().is_empty());
    let u = s
        .upsert_user("alice", Role::Analyst, hash, false, "cli", 100)
        .unwrap();
    assert_eq!((u.name.as_str(), u.role), ("alice", Role::Analyst));
    // a second add is refused; a replace changes the role
    assert!(s
        .upsert_user("alice", Role::Admin, hash, false, "cli", 101)
        .is_err());
    for bad in ["", "a b", "<x>", &"x".repeat(65)] {
        assert!(
            s.upsert_user(bad, Role::Viewer, hash, false, "cli", 1)
                .is_err(),
            "{bad:?}"
        );
    }
    assert!(s
        .upsert_user("bob", Role::Viewer, "plain", false, "cli", 1)
        .is_err());
    let (_, h) = s.user_password("alice").unwrap().unwrap();
    assert_eq!(h, hash);
    assert!(s.user_password("nobody").unwrap().is_none());

    let (sess, secret) = s
        .create_session(u.id, 3600, Some("127.0.0.1"), Some("test\u{7}agent"), 200)
        .unwrap();
    assert_eq!(sess.user, "alice");
    assert_eq!(sess.agent.as_deref(), Some("testagent"));
    assert!(secret.starts_with("dss_") && sess.csrf.len() == 64);
    let v = s.verify_session(&secret, 3600, 300).unwrap().unwrap();
    assert_eq!((v.id, v.csrf.as_str()), (sess.id, sess.csrf.as_str()));
    // used after a minute: the expiry slides
    assert_eq!(v.expires_at, 300 + 3600);
    assert!(s.verify_session("dss_nope", 3600, 300).unwrap().is_none());
    assert!(s.verify_session(&secret, 3600, 10_000).unwrap().is_none());
    assert_eq!(s.list_sessions(300).unwrap().len(), 1);
    s.revoke_session(sess.id, "alice", 301).unwrap();
    assert!(s.verify_session(&secret, 3600, 302).unwrap().is_none());
    assert!(s.revoke_session(sess.id, "alice", 303).is_err());

    // a new password ends the sessions; removing the user too
    let (_, secret) = s.create_session(u.id, 3600, None, None, 400).unwrap();
    s.upsert_user("alice", Role::Admin, hash, true, "cli", 401)
        .unwrap();
    assert!(s.verify_session(&secret, 3600, 402).unwrap().is_none());
    let (_, secret) = s.create_session(u.id, 3600, None, None, 403).unwrap();
    s.remove_user("alice", "cli", 404).unwrap();
    assert!(s.verify_session(&secret, 3600, 405).unwrap().is_none());
    assert!(s.remove_user("alice", "cli", 406).is_err());
    let actions: Vec<String> = s
        .audit(100)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    for a in ["user_add", "user_update", "session_revoke", "user_remove"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    assert_eq!(s.alerts_changed().unwrap(), (0, 0));
}

#[test]
fn overview_counts() {
    let (_d, mut s) = store();
    let day = 86_400;
    s.upsert_alerts(
        &[
            alert("a", Kind::Dga, Severity::High, "10.0.0.1", "x.example", NOW),
            alert(
                "b",
                Kind::Dga,
                Severity::Low,
                "10.0.0.1",
                "y.example",
                NOW + day,
            ),
            alert(
                "c",
                Kind::Beaconing,
                Severity::High,
                "10.0.0.2",
                "x.example",
                NOW + day,
            ),
        ],
        NOW,
    )
    .unwrap();
    let o = s.alert_overview(NOW - day, 10).unwrap();
    assert_eq!(o.by_severity, vec![("high".into(), 2), ("low".into(), 1)]);
    assert_eq!(o.by_kind[0], ("dga".into(), 2));
    assert_eq!(o.top_devices[0], ("10.0.0.1".into(), 2));
    assert_eq!(o.top_destinations[0], ("x.example".into(), 2));
    assert_eq!(o.per_day.iter().map(|d| d.1).sum::<u64>(), 3);
    assert_eq!(o.per_day.len(), 2);
    assert_eq!(o.per_hour.iter().map(|d| d.1).sum::<u64>(), 3);
    assert_eq!(s.alerts_changed().unwrap(), (3, NOW));
    // the counts follow the alerts: flagged stays open, resolved leaves, reopened comes back
    s.act("a", &Act::Flag, "ana", None, NOW + 1).unwrap();
    let o = s.alert_overview(NOW - day, 10).unwrap();
    assert_eq!(o.by_severity, vec![("high".into(), 2), ("low".into(), 1)]);
    s.act(
        "a",
        &Act::Resolve {
            reason: Reason::FalsePositive,
        },
        "ana",
        None,
        NOW + 2,
    )
    .unwrap();
    let o = s.alert_overview(NOW - day, 10).unwrap();
    assert_eq!(o.by_severity, vec![("high".into(), 1), ("low".into(), 1)]);
    assert_eq!(
        o.top_destinations,
        vec![("x.example".into(), 1), ("y.example".into(), 1)]
    );
    assert_eq!(
        o.top_devices,
        vec![("10.0.0.1".into(), 1), ("10.0.0.2".into(), 1)]
    );
    assert_eq!(s.alerts_changed().unwrap(), (2, NOW + 2));
    s.act("a", &Act::Reopen, "ana", None, NOW + 3).unwrap();
    let o = s.alert_overview(NOW - day, 10).unwrap();
    assert_eq!(o.top_devices[0], ("10.0.0.1".into(), 2));
    // an update that moves an open alert to another severity moves its count
    s.upsert_alerts(
        &[alert(
            "b",
            Kind::Dga,
            Severity::High,
            "10.0.0.1",
            "y.example",
            NOW + day,
        )],
        NOW + 4,
    )
    .unwrap();
    let o = s.alert_overview(NOW - day, 10).unwrap();
    assert_eq!(o.by_severity, vec![("high".into(), 3)]);
    assert_eq!(s.alerts_changed().unwrap().0, 3);
    // the store's statistics come from the same counts, every status
    s.act("c", &Act::Flag, "ana", None, NOW + 5).unwrap();
    let st = s.stats(NOW + 5).unwrap();
    assert_eq!(st.alerts_by_status["open"], 1);
    assert_eq!(st.alerts_by_status["flagged"], 1);
    assert_eq!(st.alerts_by_status["reopened"], 1);
    assert_eq!(st.alerts_by_status["resolved"], 0);
    let by: Vec<(String, String, String, u64)> = st
        .alerts_by
        .iter()
        .map(|c| {
            (
                c.kind.clone(),
                c.severity.clone(),
                c.status.clone(),
                c.count,
            )
        })
        .collect();
    let want = |k: &str, sv: &str, stt: &str| (k.to_string(), sv.to_string(), stt.to_string(), 1);
    assert_eq!(
        by,
        vec![
            want("beaconing", "high", "flagged"),
            want("dga", "high", "open"),
            want("dga", "high", "reopened"),
        ]
    );
}

#[test]
fn planner_statistics_follow_the_alerts() {
    let (d, mut s) = store();
    let batch: Vec<Alert> = (0..50)
        .map(|i| {
            alert(
                &format!("s{i}"),
                Kind::Dga,
                Severity::High,
                "10.0.0.1",
                "x.example",
                NOW,
            )
        })
        .collect();
    s.upsert_alerts(&batch, NOW).unwrap();
    drop(s);
    // the next open analyses the alert tables (none had statistics)
    drop(SqliteStore::open(d.path()).unwrap());
    let c = rusqlite::Connection::open(d.path().join(TRIAGE_FILE)).unwrap();
    let stat: String = c
        .query_row(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'alerts_status'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stat.starts_with("50 "), "{stat}");
    // the counts the triggers kept survive the reopen
    let o = SqliteStore::open(d.path())
        .unwrap()
        .alert_overview(NOW - 86_400, 10)
        .unwrap();
    assert_eq!(o.top_devices, vec![("10.0.0.1".to_string(), 50)]);
}
