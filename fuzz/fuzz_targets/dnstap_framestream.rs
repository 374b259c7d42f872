//! dnstap Frame Streams: the file reader (framing, protobuf, DNS decode, pairing) and the
//! receiver side of the socket handshake, on arbitrary bytes. Never panics; every event carries
//! a printable name; the reader ends.
#![no_main]
use dnsight_ingest::dnstap::framestream::{accept_handshake, FrameReader, DNSTAP_CONTENT_TYPE};
use dnsight_ingest::dnstap::{DnstapFileReader, DnstapOptions};
use dnsight_ingest::EventReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = DnstapOptions {
        max_frame: 4096,
        ..Default::default()
    };
    let mut r = DnstapFileReader::new(Box::new(std::io::Cursor::new(data.to_vec())), &opts);
    let mut out = Vec::new();
    let mut rounds = 0;
    while let Ok(true) = r.next_batch(&mut out) {
        rounds += 1;
        assert!(rounds < 1_000_000);
    }
    for e in &out {
        assert!(e.qname.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
    let st = r.stats();
    assert!(st.events as usize == out.len());

    let mut fr = FrameReader::new(std::io::Cursor::new(data), 4096);
    let mut reply = Vec::new();
    let _ = accept_handshake(&mut fr, &mut reply, DNSTAP_CONTENT_TYPE);
    assert!(reply.len() <= 8 + 4 + 8 + DNSTAP_CONTENT_TYPE.len());
});
