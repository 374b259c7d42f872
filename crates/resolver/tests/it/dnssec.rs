//! DNSSEC with real parts: a zone signed here by `ldns-signzone` (keys from `ldns-keygen`), one
//! record tampered with after signing, served by a real `nsd`. Pass-through: a real validating
//! Unbound (the zone's key as its trust anchor) in front of nsd, dnsight in front of Unbound;
//! dnsight's own validation: dnsight straight in front of nsd with the key as its trust anchor.
//! Every answer is checked with `dig +dnssec` (its flags line and sections).

use crate::*;
use dnsight_resolver::{DnssecMode, ForwardSpec, UpstreamSpec};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SIGNED: &str = "dnssec.example";

/// A signed zone: (zone text with `evil` tampered, path of the KSK's DNSKEY file).
struct Signed {
    zone: String,
    ksk: std::path::PathBuf,
}

fn sign_zone(dir: &Path) -> Option<Signed> {
    if !which("ldns-signzone") || !which("ldns-keygen") {
        eprintln!(
            "SKIP: ldns-signzone/ldns-keygen (ldnsutils) not installed; DNSSEC tests skipped"
        );
        return None;
    }
    let zone = format!(
        "$ORIGIN {SIGNED}.\n$TTL 300\n@ SOA ns admin 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\nwww A 192.0.2.1\nevil A 192.0.2.66\n"
    );
    std::fs::write(dir.join("zone"), zone).unwrap();
    let keygen = |args: &[&str]| {
        let out = Command::new("ldns-keygen")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("ldns-keygen runs");
        assert!(out.status.success(), "ldns-keygen: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ksk = keygen(&["-a", "ECDSAP256SHA256", "-k", SIGNED]);
    let zsk = keygen(&["-a", "ECDSAP256SHA256", SIGNED]);
    let st = Command::new("ldns-signzone")
        .current_dir(dir)
        .args(["-o", SIGNED, "zone", &zsk, &ksk])
        .status()
        .expect("ldns-signzone runs");
    assert!(st.success());
    let signed = std::fs::read_to_string(dir.join("zone.signed")).unwrap();
    // tamper with one signed record: its RRSIG no longer matches
    let before = format!("evil.{SIGNED}.\t300\tIN\tA\t192.0.2.66");
    assert!(signed.contains(&before), "{signed}");
    let zone = signed.replace(&before, &format!("evil.{SIGNED}.\t300\tIN\tA\t192.0.2.99"));
    Some(Signed {
        zone,
        ksk: dir.join(format!("{ksk}.key")),
    })
}

/// `dig @addr -p PORT +dnssec +time=3 +tries=1 ARGS`: the whole output.
fn dig_dnssec(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args([
            "-p",
            &addr.port().to_string(),
            "+dnssec",
            "+time=3",
            "+tries=1",
        ])
        .args(args)
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(dig: &str) -> &str {
    dig.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
}

/// The header flags dig printed (`qr rd ra ad`).
fn flags(dig: &str) -> Vec<&str> {
    dig.split(";; flags: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

/// Records of a type in the answer section (dig's tab-separated lines).
fn answer_lines<'a>(dig: &'a str, rtype: &str) -> Vec<&'a str> {
    let Some(sec) = dig.split(";; ANSWER SECTION:").nth(1) else {
        return Vec::new();
    };
    sec.split("\n\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some(rtype))
        .collect()
}

struct ValidatingUnbound {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for ValidatingUnbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Unbound validating with `anchor` (a DNSKEY file), the signed zone stubbed to `nsd`.
fn start_validating_unbound(nsd: std::net::SocketAddr, anchor: &Path) -> Option<ValidatingUnbound> {
    let bin = ["unbound", "/usr/sbin/unbound"]
        .into_iter()
        .find(|b| which(b))?;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let conf = format!(
        "server:\n interface: 127.0.0.1@{port}\n port: {port}\n do-ip6: no\n username: \"\"\n chroot: \"\"\n directory: \"{d}\"\n pidfile: \"{d}/unbound.pid\"\n use-syslog: no\n logfile: \"{d}/unbound.log\"\n verbosity: 1\n num-threads: 1\n module-config: \"validator iterator\"\n do-not-query-localhost: no\n access-control: 127.0.0.0/8 allow\n trust-anchor-file: \"{anchor}\"\n val-log-level: 2\nstub-zone:\n name: \"{SIGNED}\"\n stub-addr: {ip}@{nport}\nremote-control:\n control-enable: no\n",
        d = d.display(),
        anchor = anchor.display(),
        ip = nsd.ip(),
        nport = nsd.port(),
    );
    std::fs::write(d.join("unbound.conf"), conf).unwrap();
    let child = Command::new(bin)
        .arg("-d")
        .arg("-c")
        .arg(d.join("unbound.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let u = ValidatingUnbound {
        child,
        addr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(r) = udp_query(
            addr,
            &format!("www.{SIGNED}"),
            1,
            false,
            Duration::from_millis(300),
        ) {
            if rcode(&r) == 0 {
                return Some(u);
            }
        }
    }
    panic!("unbound did not answer on {addr}");
}

fn lab() -> Option<(tempfile::TempDir, Signed, Nsd)> {
    if !which("dig") {
        eprintln!("SKIP: dig not installed; DNSSEC tests skipped");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let signed = sign_zone(dir.path())?;
    let nsd = start_nsd_zones(
        None,
        &[(SIGNED, signed.zone.clone())],
        &format!("www.{SIGNED}"),
    )?;
    Some((dir, signed, nsd))
}

#[test]
fn ad_passes_only_from_a_trusted_validating_upstream_and_cd_is_honoured() {
    let Some((_dir, signed, nsd)) = lab() else {
        return;
    };
    let Some(unbound) = start_validating_unbound(nsd.addr, &signed.ksk) else {
        eprintln!("SKIP: unbound not installed");
        return;
    };
    let www = format!("www.{SIGNED}");
    let evil = format!("evil.{SIGNED}");
    // the lab itself: Unbound validates the zone
    let u = dig_dnssec(unbound.addr, &[&www]);
    assert!(flags(&u).contains(&"ad"), "{u}");

    for trusted in [true, false] {
        let mut cfg = base_config(&[]);
        cfg.upstreams = vec![UpstreamSpec {
            trusted,
            ..UpstreamSpec::udp(unbound.addr)
        }];
        let (r, _events) = start(cfg);
        let a = r.udp_addrs()[0];
        for round in ["miss", "cache hit"] {
            let out = dig_dnssec(a, &[&www]);
            assert_eq!(status(&out), "NOERROR", "{round}: {out}");
            assert_eq!(
                flags(&out).contains(&"ad"),
                trusted,
                "{round} trusted={trusted}: {out}"
            );
            // DO was forwarded: the RRSIG is there, from the cache too
            assert_eq!(answer_lines(&out, "RRSIG").len(), 1, "{round}: {out}");
            assert_eq!(answer_lines(&out, "A").len(), 1, "{round}: {out}");
        }
        // without DO (and without AD in the query): no RRSIG, no AD
        let plain = dig_dnssec(a, &["+nodnssec", "+noadflag", &www]);
        assert!(answer_lines(&plain, "RRSIG").is_empty(), "{plain}");
        assert!(!flags(&plain).contains(&"ad"), "{plain}");
        // the tampered record: the validating upstream says SERVFAIL, and so does dnsight
        assert_eq!(status(&dig_dnssec(a, &[&evil])), "SERVFAIL");
        // CD: the client takes the unvalidated data itself
        let cd = dig_dnssec(a, &["+cd", &evil]);
        assert_eq!(status(&cd), "NOERROR", "{cd}");
        assert!(cd.contains("192.0.2.99"), "{cd}");
        assert!(flags(&cd).contains(&"cd"), "{cd}");
        r.shutdown();
    }
}

#[test]
fn dnsight_validates_itself_valid_gets_ad_bogus_gets_servfail() {
    let Some((_dir, signed, nsd)) = lab() else {
        return;
    };
    // a plain upstream for everything else (nothing there validates)
    let Some(other) = start_nsd(None) else {
        return;
    };
    let mut cfg = base_config(&[other.addr]);
    cfg.forwards = vec![ForwardSpec {
        zones: vec![SIGNED.into()],
        upstreams: vec![UpstreamSpec::udp(nsd.addr)],
        internal_only: true,
    }];
    cfg.dnssec = DnssecMode::Validate;
    cfg.dnssec_trust_anchor = Some(signed.ksk.clone());
    let (r, events) = start(cfg);
    let a = r.udp_addrs()[0];
    let www = format!("www.{SIGNED}");
    let evil = format!("evil.{SIGNED}");

    for round in ["miss", "cache hit"] {
        let out = dig_dnssec(a, &[&www]);
        assert_eq!(status(&out), "NOERROR", "{round}: {out}");
        assert!(flags(&out).contains(&"ad"), "{round}: {out}");
        assert_eq!(answer_lines(&out, "RRSIG").len(), 1, "{round}: {out}");
        assert!(out.contains("192.0.2.1"), "{out}");
    }
    // a client without DO: AD (dig asks with the AD bit), but no DNSSEC records
    let plain = dig_dnssec(a, &["+nodnssec", &www]);
    assert_eq!(status(&plain), "NOERROR", "{plain}");
    assert!(flags(&plain).contains(&"ad"), "{plain}");
    assert!(answer_lines(&plain, "RRSIG").is_empty(), "{plain}");
    assert_eq!(answer_lines(&plain, "A").len(), 1, "{plain}");
    // the tampered record: SERVFAIL, twice (never cached)
    for _ in 0..2 {
        let out = dig_dnssec(a, &[&evil]);
        assert_eq!(status(&out), "SERVFAIL", "{out}");
        assert!(!out.contains("192.0.2.99"), "{out}");
    }
    // CD: no validation, the client gets the data
    let cd = dig_dnssec(a, &["+cd", &evil]);
    assert_eq!(status(&cd), "NOERROR", "{cd}");
    assert!(cd.contains("192.0.2.99"), "{cd}");
    assert!(!flags(&cd).contains(&"ad"), "{cd}");
    // a proven non-existent name (NSEC): NXDOMAIN with AD
    let nx = dig_dnssec(a, &[&format!("nx.{SIGNED}")]);
    assert_eq!(status(&nx), "NXDOMAIN", "{nx}");
    assert!(flags(&nx).contains(&"ad"), "{nx}");
    // names under no trust anchor: answered as before, without AD
    let other_out = dig_dnssec(a, &[&format!("www.{ZONE}")]);
    assert_eq!(status(&other_out), "NOERROR", "{other_out}");
    assert!(!flags(&other_out).contains(&"ad"), "{other_out}");

    let s = r.stats();
    assert_eq!(s.dnssec_bogus, 2, "{s}");
    assert!(s.dnssec_secure >= 3, "{s}");
    // the engine sees the bogus answers: failed, with the dnssec rule
    let evs = events.wait(8);
    let bogus: Vec<_> = evs
        .iter()
        .filter(|e| {
            e.qname.as_str() == evil
                && e.verdict
                    .as_ref()
                    .is_some_and(|v| v.rule.as_deref() == Some("dnssec:bogus"))
        })
        .collect();
    assert_eq!(bogus.len(), 2, "{evs:#?}");
    r.shutdown();
}
