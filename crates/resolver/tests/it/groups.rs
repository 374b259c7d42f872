//! Per-group upstreams: two client addresses on the loopback (127.0.0.1 and 127.0.0.2, real
//! source addresses given to `dig -b`) in different groups get different upstreams — a real
//! nsd for the office, a real Unbound standing in for a filtering resolver for the guests —
//! with answers cached apart; forward zones still go to their servers for everyone. The same
//! from two client addresses inside a network namespace the test creates (veth pair), skipped
//! with a message where namespaces are not permitted.

use crate::*;
use dnsight_resolver::{ForwardSpec, GroupSpec, UpstreamSpec};

#[test]
fn groups_pick_their_upstreams_and_are_cached_apart() {
    if !which("dig") {
        eprintln!("SKIP: dig not installed");
        return;
    }
    let Some(office) = start_nsd(None) else {
        return;
    };
    // the "filtering resolver": answers www with a block page, logs what guests ask
    let Some(filter) = start_unbound(&[&format!("www.{ZONE}. A 192.0.2.250")]) else {
        eprintln!("SKIP: unbound not installed");
        return;
    };
    let Some(dc) = start_nsd_zones(
        None,
        &[(
            "corp.example",
            "$ORIGIN corp.example.\n$TTL 300\n@ SOA ns admin 1 3600 600 86400 60\n@ NS ns\nns A 10.20.0.10\ndc1 A 10.20.0.10\n".into(),
        )],
        "dc1.corp.example",
    ) else {
        return;
    };
    let mut cfg = base_config(&[office.addr]);
    cfg.policy.groups = vec![GroupSpec {
        name: "guests".into(),
        clients: vec!["127.0.0.2/32".parse().unwrap()],
        lists: None,
        answer: None,
        upstreams: Some(vec![UpstreamSpec::udp(filter.addr)]),
    }];
    cfg.forwards = vec![ForwardSpec {
        zones: vec!["corp.example".into()],
        upstreams: vec![UpstreamSpec::udp(dc.addr)],
        internal_only: true,
    }];
    let (r, events) = start(cfg);
    let a = r.udp_addrs()[0];
    let www = format!("www.{ZONE}");
    let from = |src: &str, name: &str| dig(a, &["-b", src, name]);

    assert_eq!(from("127.0.0.1", &www), ["192.0.2.1"]);
    assert_eq!(from("127.0.0.2", &www), ["192.0.2.250"]);
    // each from its own cache view
    assert_eq!(from("127.0.0.1", &www), ["192.0.2.1"]);
    assert_eq!(from("127.0.0.2", &www), ["192.0.2.250"]);
    let s = r.stats();
    assert_eq!((s.cache_misses, s.cache_hits), (2, 2), "{s}");
    // forward zones win over a group's upstreams
    assert_eq!(from("127.0.0.2", "dc1.corp.example"), ["10.20.0.10"]);
    let log = filter.query_log();
    assert!(log.contains(&format!("www.{ZONE}.")), "{log}");
    assert!(!log.contains("corp.example"), "{log}");

    let evs = events.wait(5);
    let guests: Vec<_> = evs
        .iter()
        .filter(|e| e.client.to_string() == "127.0.0.2")
        .collect();
    assert_eq!(guests.len(), 3);
    assert_eq!(
        guests[0].answers[0].addr().unwrap().to_string(),
        "192.0.2.250"
    );
    r.shutdown();
}

/// A network namespace made by the test, joined to the host by a veth pair: two client
/// addresses on the namespace's side, dnsight listening on the host's side. Removed on drop
/// (deleting the namespace deletes the pair).
struct Netns {
    name: String,
    host_if: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// `host`: the host side's address; `clients`: the namespace side's (all in one /24).
    fn create(host: &str, clients: &[&str]) -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let ns = Netns {
            name: format!("dnsight-it-{id}"),
            host_if: format!("dnsh{id}"),
        };
        let peer = format!("dnsc{id}");
        ip(&["netns", "add", &ns.name])?;
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &ns.name])?;
        ip(&["addr", "add", &format!("{host}/24"), "dev", &ns.host_if])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        for c in clients {
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{c}/24"),
                "dev",
                &peer,
            ])?;
        }
        ip(&["-n", &ns.name, "link", "set", &peer, "up"])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `dig` run inside the namespace from source address `src`: the answer lines.
    fn dig(&self, server: std::net::SocketAddr, src: &str, name: &str) -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.name, "dig"])
            .arg(format!("@{}", server.ip()))
            .args(["-p", &server.port().to_string(), "-b", src])
            .args(["+short", "+time=3", "+tries=2", name])
            .output()
            .expect("ip netns exec dig runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn two_clients_in_a_network_namespace_get_their_groups_upstreams() {
    if !which("dig") || !which("ip") {
        eprintln!("SKIP: dig or ip (iproute2) not installed; namespace group test skipped");
        return;
    }
    let Some(office) = start_nsd(None) else {
        return;
    };
    let Some(filter) = start_unbound(&[&format!("www.{ZONE}. A 192.0.2.250")]) else {
        eprintln!("SKIP: unbound not installed");
        return;
    };
    let third = 100 + std::process::id() % 100;
    let net = format!("10.177.{third}");
    let (host, staff, guest) = (format!("{net}.1"), format!("{net}.10"), format!("{net}.20"));
    let ns = match Netns::create(&host, &[&staff, &guest]) {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!(
                "SKIP: network namespaces not permitted here ({e}); namespace group test skipped"
            );
            return;
        }
    };
    let mut cfg = base_config(&[office.addr]);
    cfg.listen = vec![format!("{host}:0").parse().unwrap()];
    cfg.policy.groups = vec![GroupSpec {
        name: "guests".into(),
        clients: vec![format!("{guest}/32").parse().unwrap()],
        lists: None,
        answer: None,
        upstreams: Some(vec![UpstreamSpec::udp(filter.addr)]),
    }];
    let (r, events) = start(cfg);
    let a = r.udp_addrs()[0];
    let www = format!("www.{ZONE}");
    let asked = |log: String| log.matches(&format!("www.{ZONE}.")).count();
    let before = asked(filter.query_log()); // its readiness probe
    for _ in 0..2 {
        assert_eq!(
            ns.dig(a, &staff, &www),
            ["192.0.2.1"],
            "staff: office upstream"
        );
        assert_eq!(
            ns.dig(a, &guest, &www),
            ["192.0.2.250"],
            "guest: filtering upstream"
        );
    }
    let s = r.stats();
    assert_eq!((s.cache_misses, s.cache_hits), (2, 2), "{s}");
    // the filtering resolver saw the guest's question only
    let log = filter.query_log();
    assert_eq!(asked(log.clone()) - before, 1, "{log}");
    // the engine sees both clients by their own addresses
    let evs = events.wait(4);
    let from = |c: &str| evs.iter().filter(|e| e.client.to_string() == c).count();
    assert_eq!((from(&staff), from(&guest)), (2, 2), "{evs:#?}");
    r.shutdown();
    drop(ns);
}
