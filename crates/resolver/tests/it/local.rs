//! Local records (config lines and a hosts-style file) answered by the resolver itself, asked
//! with `dig`, with the file reloaded like the lists; a real nsd upstream holds the rest.

use crate::*;
use dnsight_model::VerdictAction;

#[test]
fn local_records_answer_before_upstream_and_reload() {
    if !which("dig") {
        eprintln!("SKIP: dig not installed");
        return;
    }
    let Some(nsd) = start_nsd(None) else { return };
    let dir = tempfile::tempdir().unwrap();
    let hosts = write(
        dir.path(),
        "office.hosts",
        "# printers\n10.0.0.6 printer.office.example printer\nfd00::6 printer.office.example\nnot a record\n",
    );
    let mut cfg = base_config(&[nsd.addr]);
    cfg.policy.local.records = vec![
        "nas.office.example A 10.0.0.5".into(),
        "*.dev.office.example 60 A 10.0.0.9".into(),
        "wiki.office.example CNAME nas.office.example".into(),
        "office.example TXT \"v=spf1 -all\"".into(),
        // a rewrite of a name the upstream has
        format!("www.{ZONE} A 10.1.1.1"),
    ];
    cfg.policy.local.files = vec![hosts.clone()];
    let (r, events) = start(cfg);
    let a = r.udp_addrs()[0];

    assert_eq!(dig(a, &["nas.office.example"]), ["10.0.0.5"]);
    assert_eq!(dig(a, &["printer.office.example"]), ["10.0.0.6"]);
    assert_eq!(dig(a, &["printer.office.example", "AAAA"]), ["fd00::6"]);
    assert_eq!(dig(a, &["PRINTER"]), ["10.0.0.6"]);
    assert_eq!(dig(a, &["x.y.dev.office.example"]), ["10.0.0.9"]);
    assert_eq!(
        dig(a, &["wiki.office.example"]),
        ["nas.office.example.", "10.0.0.5"]
    );
    assert_eq!(dig(a, &["office.example", "TXT"]), ["\"v=spf1 -all\""]);
    assert_eq!(dig(a, &["-x", "10.0.0.5"]), ["nas.office.example."]);
    assert_eq!(dig(a, &["-x", "10.0.0.6"]), ["printer.office.example."]);
    assert_eq!(dig(a, &["-x", "fd00::6"]), ["printer.office.example."]);
    assert_eq!(dig(a, &[&format!("www.{ZONE}")]), ["10.1.1.1"]);
    // a local name without that type is NODATA, not forwarded; other names are forwarded
    assert_eq!(dig_status(a, &["nas.office.example", "AAAA"]), "NOERROR");
    assert_eq!(dig(a, &[&format!("ads.{ZONE}")]), ["192.0.2.66"]);
    let s = r.stats();
    assert_eq!((s.local_answers, s.cache_misses), (12, 1), "{s}");

    // the file changes: reloaded like the lists
    std::fs::write(&hosts, "10.0.0.7 printer.office.example\n").unwrap();
    assert!(
        r.reload_if_changed().unwrap(),
        "the file is watched like the lists"
    );
    assert_eq!(dig(a, &["printer.office.example"]), ["10.0.0.7"]);
    assert_eq!(dig(a, &["-x", "10.0.0.7"]), ["printer.office.example."]);
    assert_eq!(dig(a, &["printer", "AAAA"]), Vec::<String>::new());
    // gone from the file: forwarded again (nsd is not authoritative for it)
    assert_eq!(dig_status(a, &["printer"]), "REFUSED");

    let evs = events.wait(17);
    let nas = evs
        .iter()
        .find(|e| e.qname.as_str() == "nas.office.example")
        .unwrap();
    let v = nas.verdict.as_ref().unwrap();
    assert_eq!(v.action, VerdictAction::Local);
    assert_eq!(v.rule.as_deref(), Some("local"));
    assert_eq!(nas.answers.len(), 1);
    r.shutdown();
}
