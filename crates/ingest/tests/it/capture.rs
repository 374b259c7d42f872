//! Captures written byte for byte by the project's own writer, read back through the real
//! reader (format sniffing, link layers, IP, fragments, TCP reassembly, pairing).

use dnsight_ingest::pcap_writer::{self as w, tcp_flags, PcapNgWriter, PcapWriter};
use dnsight_ingest::{open_reader, IngestOptions, IngestStats};
use dnsight_model::wire::{encode_query, encode_response, Question};
use dnsight_model::{Answer, DnsEvent, Flags, Name, RData, Transport, Ts};
use std::io::{Cursor, Write};
use std::net::SocketAddr;

pub fn read_all(bytes: Vec<u8>, opts: &IngestOptions) -> (Vec<DnsEvent>, IngestStats) {
    let mut r = open_reader(Box::new(Cursor::new(bytes)), "test", opts).expect("opens");
    let mut out = Vec::new();
    while r.next_batch(&mut out).expect("reads") {}
    (out, r.stats().clone())
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    encode_query(
        &mut b,
        id,
        Flags(Flags::RD),
        &Question::new(Name::parse(name).unwrap(), 1),
    )
    .unwrap();
    b
}

pub fn response(id: u16, name: &str, n_answers: usize) -> Vec<u8> {
    let n = Name::parse(name).unwrap();
    let answers: Vec<Answer> = (0..n_answers)
        .map(|i| Answer {
            name: n.clone(),
            rtype: 1,
            ttl: 60,
            data: RData::Addr(format!("192.0.2.{}", i % 250).parse().unwrap()),
        })
        .collect();
    let mut b = Vec::new();
    encode_response(
        &mut b,
        id,
        Flags(Flags::RD | Flags::RA),
        0,
        &Question::new(n, 1),
        &answers,
    )
    .unwrap();
    b
}

/// A response with `n` A records whose owner names differ (so they are not compressed).
fn big_response(id: u16, name: &str, n: usize) -> Vec<u8> {
    let q = Name::parse(name).unwrap();
    let answers: Vec<Answer> = (0..n)
        .map(|i| Answer {
            name: Name::parse(&format!("host{i}.{name}")).unwrap(),
            rtype: 1,
            ttl: 60,
            data: RData::Addr(format!("192.0.2.{}", i % 250).parse().unwrap()),
        })
        .collect();
    let mut b = Vec::new();
    encode_response(
        &mut b,
        id,
        Flags(Flags::RD | Flags::RA),
        0,
        &Question::new(q, 1),
        &answers,
    )
    .unwrap();
    b
}

fn t(ms: i64) -> Ts {
    Ts(1_700_000_000_000_000 + ms * 1000)
}

#[test]
fn udp_v4_and_v6_pairs_with_both_timestamp_precisions() {
    for nanos in [false, true] {
        let mut p = PcapWriter::with_precision(Vec::new(), w::LINKTYPE_ETHERNET, nanos).unwrap();
        let (c4, s4) = (sa("10.0.0.5:40000"), sa("10.0.0.1:53"));
        let (c6, s6) = (sa("[2001:db8::5]:40001"), sa("[2001:db8::1]:53"));
        p.write_packet(t(0), &w::ethernet_udp(c4, s4, &query(1, "v4.example")))
            .unwrap();
        p.write_packet(t(1), &w::ethernet_udp(c6, s6, &query(2, "v6.example")))
            .unwrap();
        p.write_packet(
            t(3),
            &w::ethernet_udp(s4, c4, &response(1, "v4.example", 2)),
        )
        .unwrap();
        p.write_packet(
            t(4),
            &w::ethernet_udp(s6, c6, &response(2, "v6.example", 1)),
        )
        .unwrap();
        let (ev, st) = read_all(p.into_inner(), &IngestOptions::default());
        assert_eq!(ev.len(), 2, "{st:?}");
        assert_eq!(ev[0].qname.as_str(), "v4.example");
        assert_eq!(ev[0].client, c4.ip());
        assert_eq!(ev[0].answers.len(), 2);
        assert_eq!(ev[0].rtt_us, Some(3000));
        assert_eq!(ev[0].ts, t(0));
        assert_eq!(ev[1].server, s6.ip());
        assert_eq!(ev[1].client_port, 40001);
        assert_eq!(
            (st.records, st.queries, st.responses, st.events),
            (4, 2, 2, 2)
        );
        assert!(st.rejected.is_empty(), "{st:?}");
    }
}

/// Builds one UDP/IPv4 query as a frame of each link type.
fn frames_for_linktypes() -> Vec<(u32, Vec<u8>)> {
    let (c, s) = (sa("10.1.0.5:1234"), sa("10.1.0.1:53"));
    let mut ip4 = Vec::new();
    w::ip_packet(
        c.ip(),
        s.ip(),
        17,
        7,
        &w::udp_segment(c, s, &query(9, "link.example")),
        &mut ip4,
    );
    let (c6, s6) = (sa("[fd00::5]:1234"), sa("[fd00::1]:53"));
    let mut ip6 = Vec::new();
    w::ip_packet(
        c6.ip(),
        s6.ip(),
        17,
        0,
        &w::udp_segment(c6, s6, &query(9, "link.example")),
        &mut ip6,
    );
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let mut qinq = vec![0u8; 12];
    qinq.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
    qinq.extend_from_slice(&ip4);
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip4);
    let mut sll2 = vec![
        0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
    ];
    sll2.extend_from_slice(&ip6);
    vec![
        (1, w::ethernet(&ip4, Some(100))),
        (1, qinq),
        (1, w::ethernet(&ip6, None)),
        (0, cat(&2u32.to_le_bytes(), &ip4)),
        (0, cat(&30u32.to_le_bytes(), &ip6)),
        (0, cat(&2u32.to_be_bytes(), &ip4)),
        (108, cat(&24u32.to_be_bytes(), &ip6)),
        (101, ip4.clone()),
        (101, ip6.clone()),
        (12, ip4.clone()),
        (14, ip6.clone()),
        (228, ip4.clone()),
        (229, ip6.clone()),
        (113, sll),
        (276, sll2),
        (50, cat(&[0xff, 0x03, 0x00, 0x21], &ip4)),
        (9, cat(&[0x00, 0x57], &ip6)),
    ]
}

#[test]
fn every_link_type_yields_the_query() {
    for (lt, frame) in frames_for_linktypes() {
        let mut p = PcapWriter::new(Vec::new(), lt).unwrap();
        p.write_packet(t(0), &frame).unwrap();
        let (ev, st) = read_all(p.into_inner(), &IngestOptions::default());
        assert_eq!(ev.len(), 1, "link type {lt}: {st:?}");
        assert_eq!(ev[0].qname.as_str(), "link.example", "link type {lt}");
        assert_eq!(st.queries, 1);
        assert!(!ev[0].has_response());
    }
}

#[test]
fn pcapng_with_interfaces_of_different_link_types_and_resolutions() {
    let mut p = PcapNgWriter::new(Vec::new()).unwrap();
    let eth = p.add_interface(1, 6).unwrap();
    let raw = p.add_interface(101, 9).unwrap();
    let (c, s) = (sa("10.2.0.5:5000"), sa("10.2.0.1:53"));
    p.write_packet(eth, t(0), &w::ethernet_udp(c, s, &query(1, "ng.example")))
        .unwrap();
    let mut ip = Vec::new();
    w::ip_packet(
        s.ip(),
        c.ip(),
        17,
        3,
        &w::udp_segment(s, c, &response(1, "ng.example", 1)),
        &mut ip,
    );
    p.write_packet(raw, t(2), &ip).unwrap();
    // a packet on an interface that was never described is counted, not fatal
    p.write_packet(
        eth,
        t(3),
        &w::ethernet_udp(c, s, &query(2, "later.example")),
    )
    .unwrap();
    let mut bytes = p.into_inner();
    // patch the last EPB's interface id to 7
    let n = bytes.len();
    let epb_len = u32::from_le_bytes(bytes[n - 4..].try_into().unwrap()) as usize;
    bytes[n - epb_len + 8..n - epb_len + 12].copy_from_slice(&7u32.to_le_bytes());
    let (ev, st) = read_all(bytes, &IngestOptions::default());
    assert_eq!(ev.len(), 1, "{st:?}");
    assert_eq!(ev[0].rtt_us, Some(2000));
    assert_eq!(ev[0].ts, t(0));
    assert_eq!(st.rejected["pcapng.unknown_interface"], 1);
}

#[test]
fn fragmented_responses_are_reassembled_v4_and_v6() {
    let big = big_response(5, "frag.example", 60); // ~2 kB
    assert!(big.len() > 1500);
    let mut p = PcapWriter::new(Vec::new(), w::LINKTYPE_RAW).unwrap();
    let (c, s) = (sa("10.3.0.5:5000"), sa("10.3.0.1:53"));
    p.write_packet(t(0), &{
        let mut ip = Vec::new();
        w::ip_packet(
            c.ip(),
            s.ip(),
            17,
            1,
            &w::udp_segment(c, s, &query(5, "frag.example")),
            &mut ip,
        );
        ip
    })
    .unwrap();
    let mut ip = Vec::new();
    w::ip_packet(s.ip(), c.ip(), 17, 77, &w::udp_segment(s, c, &big), &mut ip);
    let mut frags = w::fragment_ipv4(&ip, 600);
    assert!(frags.len() >= 3);
    frags.swap(0, 2); // out of order
    for f in &frags {
        p.write_packet(t(1), f).unwrap();
    }
    let (c6, s6) = (sa("[fd00::5]:5001"), sa("[fd00::1]:53"));
    let mut ip6 = Vec::new();
    w::ip_packet(
        s6.ip(),
        c6.ip(),
        17,
        0,
        &w::udp_segment(s6, c6, &big),
        &mut ip6,
    );
    for f in w::fragment_ipv6(&ip6, 800, 99).iter().rev() {
        p.write_packet(t(2), f).unwrap();
    }
    // a fragment train that never completes
    let mut lost = w::fragment_ipv4(&ip, 600);
    lost[0][4..6].copy_from_slice(&555u16.to_be_bytes());
    p.write_packet(t(3), &lost[0]).unwrap();
    let (ev, st) = read_all(p.into_inner(), &IngestOptions::default());
    assert_eq!(ev.len(), 2, "{st:?}");
    assert_eq!(ev[0].answers.len(), 60);
    assert!(ev[0].has_query());
    assert_eq!(ev[1].answers.len(), 60);
    assert_eq!(ev[1].client, c6.ip());
    assert_eq!(st.rejected["ip.frag_incomplete"], 1);
}

#[test]
fn dns_over_tcp_segments_retransmissions_reordering_and_gaps() {
    let (c, s) = (sa("10.4.0.5:6000"), sa("10.4.0.1:53"));
    let mut p = PcapWriter::new(Vec::new(), w::LINKTYPE_ETHERNET).unwrap();
    // client: SYN, then two queries in one segment
    p.write_packet(t(0), &w::ethernet_tcp(c, s, 1000, tcp_flags::SYN, b""))
        .unwrap();
    p.write_packet(
        t(0),
        &w::ethernet_tcp(s, c, 5000, tcp_flags::SYN | tcp_flags::ACK, b""),
    )
    .unwrap();
    let qs = [
        w::tcp_framed(&query(1, "one.example")),
        w::tcp_framed(&query(2, "two.example")),
    ]
    .concat();
    p.write_packet(
        t(1),
        &w::ethernet_tcp(c, s, 1001, tcp_flags::PSH | tcp_flags::ACK, &qs),
    )
    .unwrap();
    // server: first response split in three segments, sent out of order and one retransmitted
    let r1 = w::tcp_framed(&response(1, "one.example", 3));
    let r2 = w::tcp_framed(&response(2, "two.example", 1));
    let (a, rest) = r1.split_at(10);
    let (b, cc) = rest.split_at(20);
    let seq = 5001u32;
    p.write_packet(t(2), &w::ethernet_tcp(s, c, seq, tcp_flags::ACK, a))
        .unwrap();
    p.write_packet(t(3), &w::ethernet_tcp(s, c, seq + 30, tcp_flags::ACK, cc))
        .unwrap();
    p.write_packet(t(4), &w::ethernet_tcp(s, c, seq + 10, tcp_flags::ACK, b))
        .unwrap();
    p.write_packet(t(5), &w::ethernet_tcp(s, c, seq + 10, tcp_flags::ACK, b))
        .unwrap();
    p.write_packet(
        t(6),
        &w::ethernet_tcp(
            s,
            c,
            seq + r1.len() as u32,
            tcp_flags::ACK | tcp_flags::FIN,
            &r2,
        ),
    )
    .unwrap();
    // another connection whose first data segment was lost: the next message is recovered
    let (c2, s2) = (sa("10.4.0.6:6001"), sa("10.4.0.1:53"));
    let lost = w::tcp_framed(&query(3, "lost.example"));
    let kept = w::tcp_framed(&query(4, "kept.example"));
    p.write_packet(t(7), &w::ethernet_tcp(c2, s2, 1, tcp_flags::SYN, b""))
        .unwrap();
    p.write_packet(
        t(8),
        &w::ethernet_tcp(c2, s2, 2 + lost.len() as u32, tcp_flags::ACK, &kept),
    )
    .unwrap();
    let (ev, st) = read_all(p.into_inner(), &IngestOptions::default());
    let names: Vec<(&str, bool, Transport)> = ev
        .iter()
        .map(|e| (e.qname.as_str(), e.has_response(), e.transport))
        .collect();
    assert_eq!(
        names,
        vec![
            ("one.example", true, Transport::Tcp),
            ("two.example", true, Transport::Tcp),
            ("kept.example", false, Transport::Tcp)
        ],
        "{st:?}"
    );
    assert_eq!(ev[0].answers.len(), 3);
    assert_eq!(ev[0].rtt_us, Some(3000));
    assert_eq!(st.rejected["tcp.retransmission"], 1);
    assert_eq!(st.rejected["tcp.gap"], 1);
    assert_eq!((st.queries, st.responses), (3, 2));
}

#[test]
fn extra_dns_ports_are_configurable() {
    let mut p = PcapWriter::new(Vec::new(), w::LINKTYPE_ETHERNET).unwrap();
    p.write_packet(
        t(0),
        &w::ethernet_udp(
            sa("10.5.0.5:5353"),
            sa("224.0.0.251:5353"),
            &query(0, "printer.local"),
        ),
    )
    .unwrap();
    p.write_packet(
        t(0),
        &w::ethernet_udp(
            sa("10.5.0.5:4000"),
            sa("10.5.0.1:8053"),
            &query(1, "alt.example"),
        ),
    )
    .unwrap();
    let bytes = p.into_inner();
    let (ev, _) = read_all(bytes.clone(), &IngestOptions::default());
    assert!(ev.is_empty());
    let opts = IngestOptions {
        dns_ports: vec![53, 5353, 8053],
        ..IngestOptions::default()
    };
    let (ev, _) = read_all(bytes, &opts);
    assert_eq!(ev.len(), 2);
}

#[test]
fn truncated_and_corrupt_files_keep_what_came_before() {
    let mut p = PcapWriter::new(Vec::new(), w::LINKTYPE_ETHERNET).unwrap();
    let (c, s) = (sa("10.6.0.5:4000"), sa("10.6.0.1:53"));
    for i in 0..10u16 {
        p.write_packet(t(i as i64), &w::ethernet_udp(c, s, &query(i, "t.example")))
            .unwrap();
    }
    let mut bytes = p.into_inner();
    bytes.truncate(bytes.len() - 7);
    let (ev, st) = read_all(bytes.clone(), &IngestOptions::default());
    assert_eq!(ev.len(), 9);
    assert_eq!(st.rejected["pcap.truncated"], 1);
    // a record header claiming a huge length
    let mut huge = bytes[..24].to_vec();
    huge.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f,
    ]);
    huge.extend_from_slice(&[0u8; 100]);
    let (ev, st) = read_all(huge, &IngestOptions::default());
    assert!(ev.is_empty());
    assert!(st.rejected_total() >= 1, "{st:?}");
    // hostile DNS inside a valid packet: counted by reason
    let mut p = PcapWriter::new(Vec::new(), w::LINKTYPE_ETHERNET).unwrap();
    let mut looped = query(1, "x.example");
    looped.truncate(12);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    p.write_packet(t(0), &w::ethernet_udp(c, s, &looped))
        .unwrap();
    p.write_packet(t(0), &w::ethernet_udp(c, s, b"short"))
        .unwrap();
    p.write_packet(t(0), &w::ethernet_udp(c, s, &query(1, "x.example"))[..30])
        .unwrap();
    let (ev, st) = read_all(p.into_inner(), &IngestOptions::default());
    assert!(ev.is_empty());
    assert_eq!(st.rejected["dns.compression_loop"], 1);
    assert_eq!(st.rejected["dns.short_header"], 1);
    assert_eq!(st.rejected["ip.truncated"], 1);
}

#[test]
fn gzip_is_unwrapped() {
    let mut p = PcapWriter::new(Vec::new(), w::LINKTYPE_ETHERNET).unwrap();
    p.write_packet(
        t(0),
        &w::ethernet_udp(
            sa("10.7.0.5:4000"),
            sa("10.7.0.1:53"),
            &query(1, "gz.example"),
        ),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&p.into_inner()).unwrap();
    let (ev, _) = read_all(gz.finish().unwrap(), &IngestOptions::default());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].qname.as_str(), "gz.example");
}

#[test]
fn random_frames_never_panic() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::default();
    let strat = (
        prop::sample::select(vec![
            0u32, 1, 9, 10, 12, 14, 50, 101, 104, 108, 113, 228, 229, 276,
        ]),
        prop::collection::vec(any::<u8>(), 0..200),
    );
    runner
        .run(&strat, |(lt, mut frame)| {
            // make most frames look like IP so the deeper layers get exercised
            let base = frames_for_linktypes()
                .into_iter()
                .find(|(l, _)| *l == lt)
                .map(|(_, f)| f)
                .unwrap_or_default();
            if !frame.is_empty() && frame[0] % 2 == 0 {
                let cut = (frame[0] as usize) % (base.len() + 1);
                let mut f = base[..cut].to_vec();
                f.extend_from_slice(&frame);
                frame = f;
            }
            let mut p = PcapWriter::new(Vec::new(), lt).unwrap();
            p.write_packet(t(0), &frame).unwrap();
            let _ = read_all(p.into_inner(), &IngestOptions::default());
            Ok(())
        })
        .unwrap();
}
