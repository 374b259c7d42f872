//! Live capture on `lo` with the AF_PACKET reader: a real UDP responder on 127.0.0.1 answers
//! a query sent from a real socket, and the capture turns both into one paired event.
//! Skips (with a message) when not running as root.

use dnsight_ingest::live::live_reader;
use dnsight_ingest::IngestOptions;
use dnsight_model::wire::{encode_query, Question};
use dnsight_model::{Flags, Name};
use std::net::UdpSocket;

#[test]
fn captures_a_query_and_its_response_on_loopback() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("live capture test skipped: needs root (CAP_NET_RAW)");
        return;
    }
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let responder = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        buf[2] |= 0x80; // QR: echo the query back as an (empty) response
        buf[3] = (buf[3] & 0xf0) | 3; // NXDOMAIN
        server.send_to(&buf[..n], from).unwrap();
    });
    let opts = IngestOptions {
        dns_ports: vec![port],
        ..IngestOptions::default()
    };
    let reader =
        dnsight_ingest::live::LiveReader::open("lo", &opts).expect("AF_PACKET socket on lo");
    assert!(
        reader.kernel_filter(),
        "the kernel accepted the DNS port filter"
    );
    let mut reader: Box<dyn dnsight_ingest::EventReader> = Box::new(reader);
    let name = format!("live-{}.test.example", std::process::id());
    // drain the capture concurrently (other tests may flood loopback while this one runs);
    // each batch waits at most 250 ms, the loop gives up after 30 s without the event
    let wanted = name.clone();
    let capture = std::thread::spawn(move || {
        let mut out = Vec::new();
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(30) {
            reader.next_batch(&mut out).unwrap();
            if out.iter().any(|e| e.qname.as_str() == wanted) {
                break;
            }
            out.retain(|e| e.server_port == port);
        }
        (out, reader)
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut q = Vec::new();
    encode_query(
        &mut q,
        0x4242,
        Flags(Flags::RD),
        &Question::new(Name::parse(&name).unwrap(), 16),
    )
    .unwrap();
    client.send_to(&q, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 512];
    client.recv_from(&mut buf).unwrap();
    responder.join().unwrap();
    let (out, reader) = capture.join().unwrap();
    let found = out.iter().find(|e| e.qname.as_str() == name).cloned();
    assert!(live_reader("no-such-if0", &opts).is_err());
    let e = found.expect("the query was captured and paired");
    assert_eq!(e.id, 0x4242);
    assert_eq!(e.qtype, 16);
    assert_eq!(e.rcode, Some(3));
    assert_eq!(e.server_port, port);
    assert!(e.has_query() && e.rtt_us.is_some());
    assert_eq!(e.source, dnsight_model::Source::Live);
    // loopback's duplicate (outgoing) copies are skipped: exactly one query and one response
    assert_eq!(out.iter().filter(|e| e.qname.as_str() == name).count(), 1);
    assert_eq!(reader.stats().queries, 1, "{:?}", reader.stats());
}
