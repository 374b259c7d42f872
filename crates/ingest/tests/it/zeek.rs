//! Zeek dns.log readers on the third-party logs in `../shared/data/captures/zeek_dns_logs` (when
//! present) and on generated logs, through the public sniffing entry point.

use dnsight_ingest::{open_reader, IngestOptions, IngestStats};
use dnsight_model::{DnsEvent, RData, Ts};
use std::path::PathBuf;

fn logs_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/captures/zeek_dns_logs");
    if d.is_dir() {
        Some(d)
    } else {
        println!("skipped: {} not found (corpus part)", d.display());
        None
    }
}

fn read_bytes(name: &str, bytes: Vec<u8>) -> (Vec<DnsEvent>, IngestStats) {
    let mut r = open_reader(
        Box::new(std::io::Cursor::new(bytes)),
        name,
        &IngestOptions::default(),
    )
    .unwrap();
    let mut evs = Vec::new();
    while r.next_batch(&mut evs).unwrap() {}
    (evs, r.stats().clone())
}

#[test]
fn every_corpus_log_reads() {
    let Some(dir) = logs_dir() else { return };
    // (file, events, rejected by reason)
    type Expect = (&'static str, u64, &'static [(&'static str, u64)]);
    let expected: &[Expect] = &[
        ("rita_proxy.dns.log", 942, &[]),
        ("slips_test10.dns.log", 85, &[("zeek.no_query", 8)]),
        ("slips_test9_json.dns.log", 239, &[]),
        // Zeek's test baselines mask every timestamp: all lines rejected, by reason
        (
            "zeek-baseline_core.ipv6-frag.dns.log",
            0,
            &[("zeek.bad_ts", 3)],
        ),
        ("zeek-baseline_opt.basic.dns.log", 0, &[("zeek.bad_ts", 34)]),
        (
            "zeek-baseline_scripts.base.protocols.dns.dynamic-update.dns.log",
            0,
            &[("zeek.bad_ts", 2)],
        ),
        (
            "zeek-baseline_scripts.base.protocols.dns.mdns-no-assoc.dns.log",
            0,
            &[("zeek.bad_ts", 6)],
        ),
        (
            "zeek-baseline_scripts.base.protocols.dns.multiple-txt-strings.dns.log",
            0,
            &[("zeek.bad_ts", 1)],
        ),
        (
            "zeek-baseline_scripts.base.protocols.dns.rrsig.dns.log",
            0,
            &[("zeek.bad_ts", 4)],
        ),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut r = dnsight_ingest::open_path(&path, &IngestOptions::default()).unwrap();
        let mut evs = Vec::new();
        while r.next_batch(&mut evs).unwrap() {}
        let st = r.stats();
        println!("{name}: {} events, rejected {:?}", evs.len(), st.rejected);
        let Some((_, n, rej)) = expected.iter().find(|(f, _, _)| *f == name) else {
            continue;
        };
        seen += 1;
        assert_eq!(evs.len() as u64, *n, "{name}: {st:?}");
        assert_eq!(st.events, *n);
        let want: std::collections::BTreeMap<String, u64> =
            rej.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(st.rejected, want, "{name}");
    }
    assert_eq!(seen, expected.len());
}

#[test]
fn corpus_fields() {
    let Some(dir) = logs_dir() else { return };
    let (evs, _) = read_bytes(
        "slips10",
        std::fs::read(dir.join("slips_test10.dns.log")).unwrap(),
    );
    let e = &evs[0];
    assert_eq!(e.ts, Ts(1_601_998_366_786_397));
    assert_eq!(e.client.to_string(), "2001:718:2:1663:dc58:6d9:ef13:51a5");
    assert_eq!(
        (e.client_port, e.server_port, e.id, e.qtype),
        (53879, 53, 3478, 28)
    );
    assert_eq!(e.qname.as_str(), "clients6.google.com");
    assert_eq!(e.rtt_us, Some(6970));
    assert_eq!(e.answers.len(), 2);
    assert_eq!(
        e.answers[0].data,
        RData::Name(dnsight_model::Name::parse("clients.l.google.com").unwrap())
    );
    assert_eq!((e.answers[1].rtype, e.answers[1].ttl), (28, 105));
    // an mDNS name with spaces and parentheses stays one escaped name
    let hp = evs
        .iter()
        .find(|e| e.qname.as_str().starts_with("hp\\032laserjet"))
        .unwrap();
    assert_eq!(
        hp.qname.as_str(),
        "hp\\032laserjet\\032m1536dnf\\032mfp\\032\\(236b10\\)._ipp._tcp.local"
    );
    assert!(hp.flags.has(dnsight_model::Flags::TC));

    // the masked baselines, with a real time put in: every other field is read
    let unmask = |f: &str| {
        String::from_utf8_lossy(&std::fs::read(dir.join(f)).unwrap())
            .replace("XXXXXXXXXX.XXXXXX", "1300000000.5")
    };
    let (evs, st) = read_bytes(
        "upd",
        unmask("zeek-baseline_scripts.base.protocols.dns.dynamic-update.dns.log").into_bytes(),
    );
    assert_eq!(st.rejected_total(), 0, "{st:?}");
    assert_eq!(evs.len(), 2);
    assert_eq!(
        (evs[0].opcode, evs[0].rcode),
        (5, Some(5)),
        "dynamic update, REFUSED"
    );
    assert_eq!(evs[0].answers.len(), 4);
    assert_eq!(evs[0].answers[3].ttl, 1200);
    let (evs, st) = read_bytes(
        "rrsig",
        unmask("zeek-baseline_scripts.base.protocols.dns.rrsig.dns.log").into_bytes(),
    );
    assert_eq!((evs.len(), st.rejected_total()), (4, 0));
    assert_eq!(
        evs[2].answers.iter().map(|a| a.rtype).collect::<Vec<_>>(),
        [5, 46, 1, 46]
    );
    assert_eq!(evs[2].answers[2].name.as_str(), "quasar.sas.upenn.edu");
    assert!(
        evs[0].flags.has(dnsight_model::Flags::CD),
        "Z=1 is the CD bit"
    );
    assert_eq!(evs[3].rcode, None);
    let (evs, _) = read_bytes(
        "ipv6",
        unmask("zeek-baseline_core.ipv6-frag.dns.log").into_bytes(),
    );
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[0].answers[0].rtype, 16);
}

#[test]
fn generated_log_with_hostile_names() {
    // a generated TSV log: escapes, binary junk, overlong line, a second header block
    let mut log = String::from("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#fields\tts\tid.orig_h\tid.orig_p\tquery\tqtype\trcode\tanswers\tTTLs\n#types\ttime\taddr\tport\tstring\tcount\tcount\tvector[string]\tvector[interval]\n");
    for i in 0..1000 {
        log.push_str(&format!("{}.{:06}\t10.0.{}.{}\t{}\tq{i}.\\x3cscript\\x3e\\x22\\x00.example\t1\t0\t192.0.2.{},x\\x09y\t60,60\n", 1_700_000_000 + i, i, i / 256, i % 256, 1024 + i, i % 256));
    }
    log.push_str(&format!(
        "1700000000\t10.0.0.1\t1\t{}\t1\t0\t-\t-\n",
        "a".repeat(2 << 20)
    ));
    log.push_str("1700000000\t10.0.0.1\t\u{1}\u{2}\n");
    let (evs, st) = read_bytes("gen", log.into_bytes());
    assert_eq!(evs.len(), 1000);
    assert_eq!(st.rejected.get("zeek.line_too_long"), Some(&1));
    assert_eq!(st.rejected.get("zeek.bad_field_count"), Some(&1));
    let e = &evs[7];
    assert_eq!(e.qname.as_str(), "q7.<script>\\\"\\000.example");
    assert!(e.qname.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
    assert_eq!(e.answers.len(), 2);
    assert_eq!(
        e.answers[1].data,
        RData::Text(dnsight_model::escape_text("x\ty")),
        "text with whitespace is not taken as a name"
    );
    assert_eq!(e.ts, Ts(1_700_000_007_000_007));
}

#[test]
fn gzip_json_log_is_sniffed() {
    use std::io::Write;
    let line = r#"{"ts":1700000000.25,"id.orig_h":"192.168.1.9","id.orig_p":5353,"id.resp_h":"224.0.0.251","id.resp_p":5353,"proto":"udp","trans_id":0,"query":"printer.local","qtype":1,"rcode":0,"answers":["192.168.1.20"],"TTLs":[120.0]}"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..3 {
        writeln!(gz, "{line}").unwrap();
    }
    let (evs, st) = read_bytes("gz", gz.finish().unwrap());
    assert_eq!((evs.len(), st.rejected_total()), (3, 0));
    assert_eq!(evs[0].source, dnsight_model::Source::Zeek);
    assert_eq!(
        evs[0].answers[0].addr(),
        Some("192.168.1.20".parse().unwrap())
    );
}

mod randomized {
    //! Stable-Rust stand-in for the cargo-fuzz target `zeek_log`: lines assembled from Zeek-ish
    //! tokens (directives, escapes, unset/empty markers, addresses, numbers, separators).
    use dnsight_ingest::zeek::{ZeekJsonReader, ZeekTsvReader};
    use dnsight_ingest::EventReader;
    use proptest::prelude::*;

    const TOKENS: &[&str] = &[
        "#separator \\x09",
        "#separator |",
        "#set_separator\t,",
        "#set_separator\t",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#fields\tts\tid.orig_h\tquery\tqtype\trcode\tanswers\tTTLs",
        "#fields\tts\tid.orig_h\tid.orig_p\tquery\tAA\tZ\topcode\trtt",
        "#close",
        "\t",
        "|",
        ",",
        "-",
        "(empty)",
        "1700000000.123456",
        "XXXXXXXXXX.XXXXXX",
        "1e300",
        "-5",
        "10.0.0.1",
        "::1",
        "fe80::1%eth0",
        "256.1.1.1",
        "a.b.example",
        "\\x00",
        "\\x2e",
        "\\x",
        "\\\\",
        ".",
        "..",
        "T",
        "F",
        "65536",
        "99999999999999999999",
        "TXT 5 hi",
        "RRSIG 1 x",
        "\u{0}",
        "\u{7f}",
        "é",
        "{",
        "}",
        "\"ts\":",
        "\"id.orig_h\":\"10.0.0.2\"",
        "\"query\":",
        "\"answers\":[\"1.2.3.4\",\"x\"]",
        "\"TTLs\":[1e999,-1,\"x\"]",
        "\"ts\":\"2024-01-01T00:00:00Z\"",
        ":",
        "[",
        "]",
        "null",
        "true",
    ];

    fn doc(lines: &[Vec<prop::sample::Index>]) -> Vec<u8> {
        let mut s = String::new();
        for l in lines {
            for t in l {
                s.push_str(TOKENS[t.index(TOKENS.len())]);
            }
            s.push('\n');
        }
        s.into_bytes()
    }

    fn check(mut r: Box<dyn EventReader>) -> Result<(), TestCaseError> {
        let mut out = Vec::new();
        while r.next_batch(&mut out).unwrap() {}
        prop_assert_eq!(r.stats().events as usize, out.len());
        for e in &out {
            prop_assert!(e.qname.as_str().bytes().all(|c| (0x21..=0x7e).contains(&c)));
            for a in &e.answers {
                prop_assert!(a.name.as_str().bytes().all(|c| (0x21..=0x7e).contains(&c)));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn token_soup_never_panics(lines in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..24), 0..12)) {
            let b = doc(&lines);
            check(Box::new(ZeekTsvReader::new(Box::new(std::io::Cursor::new(b.clone())))))?;
            check(Box::new(ZeekJsonReader::new(Box::new(std::io::Cursor::new(b)))))?;
        }
    }
}
