//! Dynamic overrides (block/allow from an alert) against a real nsd: applied from the next
//! query, before the cache, scoped to everyone, a group or one device.

use crate::*;
use dnsight_model::VerdictAction;
use dnsight_resolver::{GroupSpec, ListRole, ListSpec, Override, OverrideScope};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

const T: Duration = Duration::from_secs(3);

/// A query sent from the source address `from` (e.g. 127.0.0.2: any 127/8 address is local).
fn query_from(from: &str, to: SocketAddr, name: &str, qtype: u16) -> Vec<u8> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let id: u16 = rand::random();
    s.send_to(&build_query(id, name, qtype, false), to).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).expect("answer");
    buf.truncate(n);
    assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), id);
    buf
}

fn ov(id: i64, name: &str, subdomains: bool, scope: OverrideScope, allow: bool) -> Override {
    Override {
        id,
        name: name.into(),
        subdomains,
        scope,
        allow,
    }
}

#[test]
fn overrides_block_allow_and_restore() {
    let Some(nsd) = start_nsd(None) else { return };
    let dir = tempfile::tempdir().unwrap();
    let list = write(dir.path(), "list.txt", &format!("||listed.{ZONE}^\n"));
    let mut cfg = base_config(&[nsd.addr]);
    cfg.policy.lists = vec![ListSpec {
        name: "list.txt".into(),
        path: list,
        role: ListRole::Block,
    }];
    cfg.policy.groups = vec![GroupSpec {
        name: "kids".into(),
        clients: vec!["127.0.0.3/32".parse().unwrap()],
        lists: None,
        answer: Some(dnsight_resolver::BlockAnswer::Refused),
        upstreams: None,
    }];
    let (r, events) = start(cfg);
    let a = r.udp_addrs()[0];
    let www = format!("www.{ZONE}");
    let ads = format!("ads.{ZONE}");
    let x_ads = format!("x.ads.{ZONE}");
    let listed = format!("listed.{ZONE}");

    // warm the cache: the name to be blocked is cached before the block
    assert_eq!(
        addrs(&query_from("127.0.0.1", a, &ads, 1)),
        vec!["192.0.2.66"]
    );
    assert_eq!(
        addrs(&query_from("127.0.0.1", a, &ads, 1)),
        vec!["192.0.2.66"]
    );
    assert_eq!(r.stats().cache_hits, 1);
    assert_eq!(rcode(&query_from("127.0.0.1", a, &listed, 1)), 3);

    // exact block: NXDOMAIN at once (the cached answer does not leak); siblings and
    // subdomains still resolve
    r.set_overrides(&[ov(7, &ads, false, OverrideScope::All, false)]);
    assert_eq!(r.overrides_len(), 1);
    let b = query_from("127.0.0.1", a, &ads, 1);
    assert_eq!(rcode(&b), 3);
    assert!(addrs(&b).is_empty());
    assert_eq!(
        addrs(&query_from("127.0.0.1", a, &www, 1)),
        vec!["192.0.2.1"]
    );
    assert_eq!(
        addrs(&query_from("127.0.0.1", a, &x_ads, 1)),
        vec!["192.0.2.67"]
    );

    // subdomain block covers a.b.name; the group's block answer (REFUSED for kids) is used
    r.set_overrides(&[ov(8, ZONE, true, OverrideScope::All, false)]);
    assert_eq!(rcode(&query_from("127.0.0.1", a, &x_ads, 1)), 3);
    assert_eq!(rcode(&query_from("127.0.0.1", a, &www, 1)), 3);
    assert_eq!(rcode(&query_from("127.0.0.3", a, &www, 1)), 5);

    // device scope: only 127.0.0.2 is blocked
    r.set_overrides(&[ov(
        9,
        &www,
        false,
        OverrideScope::Device("127.0.0.2".parse::<IpAddr>().unwrap()),
        false,
    )]);
    assert_eq!(rcode(&query_from("127.0.0.2", a, &www, 1)), 3);
    assert_eq!(
        addrs(&query_from("127.0.0.1", a, &www, 1)),
        vec!["192.0.2.1"]
    );

    // group scope: only the kids group
    r.set_overrides(&[ov(
        10,
        &www,
        false,
        OverrideScope::Group("kids".into()),
        false,
    )]);
    assert_eq!(rcode(&query_from("127.0.0.3", a, &www, 1)), 5);
    assert_eq!(
        addrs(&query_from("127.0.0.2", a, &www, 1)),
        vec!["192.0.2.1"]
    );

    // an allow beats a list block (nsd answers NXDOMAIN for the name: it was forwarded),
    // and beats an override block
    r.set_overrides(&[
        ov(11, &listed, false, OverrideScope::All, true),
        ov(12, ZONE, true, OverrideScope::All, false),
        ov(
            13,
            &www,
            false,
            OverrideScope::Device("127.0.0.1".parse().unwrap()),
            true,
        ),
    ]);
    let before = r.stats().cache_misses;
    assert_eq!(rcode(&query_from("127.0.0.1", a, &listed, 1)), 3);
    assert_eq!(r.stats().cache_misses, before + 1, "forwarded, not blocked");
    assert_eq!(
        addrs(&query_from("127.0.0.1", a, &www, 1)),
        vec!["192.0.2.1"]
    );
    assert_eq!(rcode(&query_from("127.0.0.2", a, &www, 1)), 3);

    // restore: the lists alone decide again
    r.set_overrides(&[]);
    assert_eq!(r.overrides_len(), 0);
    assert_eq!(
        addrs(&query_from("127.0.0.1", a, &ads, 1)),
        vec!["192.0.2.66"]
    );
    assert_eq!(
        addrs(&query_from("127.0.0.2", a, &www, 1)),
        vec!["192.0.2.1"]
    );
    let blocked_before = r.stats().blocked;
    assert_eq!(rcode(&query_from("127.0.0.1", a, &listed, 1)), 3);
    assert_eq!(
        r.stats().blocked,
        blocked_before + 1,
        "the list blocks again"
    );

    // verdicts name the override that decided
    let evs = events.wait(19);
    assert_eq!(evs.len(), 19);
    let rule_of = |name: &str, client: &str, action: VerdictAction| {
        evs.iter()
            .filter(|e| {
                e.qname.as_str() == name
                    && e.client.to_string() == client
                    && e.verdict.as_ref().unwrap().action == action
            })
            .filter_map(|e| {
                e.verdict
                    .as_ref()
                    .unwrap()
                    .rule
                    .as_deref()
                    .map(String::from)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rule_of(&ads, "127.0.0.1", VerdictAction::Blocked),
        vec!["block:7"]
    );
    assert_eq!(
        rule_of(&www, "127.0.0.2", VerdictAction::Blocked),
        vec!["block:9", "block:12"]
    );
    assert_eq!(
        rule_of(&listed, "127.0.0.1", VerdictAction::Forwarded),
        vec!["allow:11"]
    );
    assert!(rule_of(&www, "127.0.0.1", VerdictAction::Cached).contains(&"allow:13".to_string()));
    r.shutdown();
}
