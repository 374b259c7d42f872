//! JSON lines: dnsight's own event schema round-trips through the reader, and hostile input is
//! counted and skipped.

use dnsight_ingest::{open_path, IngestOptions};
use dnsight_model::{
    escape_text, Answer, DnsEvent, Flags, Name, RData, Source, Transport, Ts, Verdict,
    VerdictAction,
};
use proptest::prelude::*;
use std::io::Write;

fn read_file(path: &std::path::Path) -> (Vec<DnsEvent>, dnsight_ingest::IngestStats) {
    let mut r = open_path(path, &IngestOptions::default()).unwrap();
    let mut out = Vec::new();
    while r.next_batch(&mut out).unwrap() {}
    (out, r.stats().clone())
}

fn event(i: u32, label: Vec<u8>, v6: bool, rcode: Option<u16>) -> DnsEvent {
    let client = if v6 {
        format!("2001:db8::{:x}", i % 0xffff)
    } else {
        format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
    };
    let qname = Name::from_labels([label.as_slice(), b"example", b"com"]);
    let mut e = DnsEvent::new(
        Ts(1_700_000_000_000_000 + i as i64 * 1_234),
        client.parse().unwrap(),
        qname.clone(),
        (i % 300) as u16,
    );
    e.client_port = (i % 65536) as u16;
    e.server = "192.0.2.53".parse().unwrap();
    e.transport = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Dot,
        Transport::Doh,
    ][i as usize % 4];
    e.id = (i * 7 % 65536) as u16;
    e.rcode = rcode;
    e.flags = Flags::from_header((i * 131) as u16);
    e.qclass = [1, 3, 255, 42][i as usize % 4];
    e.query_size = Some(30 + i % 100);
    e.response_size = rcode.map(|_| 60 + i % 400);
    e.rtt_us = rcode.map(|_| i * 3);
    e.source = Source::Pcap;
    if rcode.is_some() {
        e.answers.push(Answer {
            name: qname.clone(),
            rtype: 5,
            ttl: i,
            data: RData::Name(Name::parse("cdn.example.net").unwrap()),
        });
        e.answers.push(Answer {
            name: qname,
            rtype: 16,
            ttl: 1,
            data: RData::Text(escape_text("\"quoted\" \u{1} <b>")),
        });
    }
    if i.is_multiple_of(5) {
        e.verdict = Some(Verdict {
            action: VerdictAction::Blocked,
            rule: Some("blocklist:ads.txt".into()),
        });
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn events_roundtrip_through_a_file(
        specs in proptest::collection::vec((0u32..5_000_000, proptest::collection::vec(1u8..=255, 1..30), any::<bool>(), proptest::option::of(0u16..24)), 0..60)
    ) {
        let events: Vec<DnsEvent> = specs.into_iter().map(|(i, l, v6, rc)| event(i, l, v6, rc)).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        // a JSON object starting the file with "qname" is sniffed as dnsight JSON lines
        for e in &events {
            writeln!(f, "{}", e.to_json_line()).unwrap();
        }
        drop(f);
        if events.is_empty() {
            return Ok(());
        }
        let (back, st) = read_file(&path);
        prop_assert_eq!(st.rejected_total(), 0);
        prop_assert_eq!(st.events as usize, events.len());
        prop_assert_eq!(back, events);
    }
}

#[test]
fn hostile_lines_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    let good = event(1, b"ok".to_vec(), false, Some(0)).to_json_line();
    let mut data = Vec::new();
    data.extend_from_slice(good.as_bytes());
    data.push(b'\n');
    data.extend_from_slice(b"{\"ts\":\"yesterday\",\"client\":\"10.0.0.1\",\"qname\":\"x\"}\n");
    data.extend_from_slice(b"{\"ts\":1,\"client\":\"10.0.0.1\",\"qname\":\"x\",\"qtype\":\"A\"\n"); // truncated
    data.extend_from_slice(b"\xff\xfe\x00garbage\n");
    data.extend_from_slice(b"[1,2,3]\n");
    // a 3 MiB line without a newline in between: skipped without being held in memory
    data.extend_from_slice(b"{\"qname\":\"");
    data.extend(std::iter::repeat_n(b'a', 3 << 20));
    data.extend_from_slice(b"\"}\n");
    data.extend_from_slice(good.as_bytes());
    std::fs::write(&path, &data).unwrap();
    let (evs, st) = read_file(&path);
    assert_eq!(evs.len(), 2);
    assert_eq!(st.records, 7);
    assert_eq!(st.rejected.get("jsonl.bad_event"), Some(&2), "{st:?}");
    assert_eq!(st.rejected.get("jsonl.bad_json"), Some(&2), "{st:?}");
    assert_eq!(st.rejected.get("jsonl.line_too_long"), Some(&1), "{st:?}");
}
