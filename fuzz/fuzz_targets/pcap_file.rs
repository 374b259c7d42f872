//! pcap / pcapng container reading (via format sniffing) end to end: never panics, and every
//! emitted event carries a printable name.
#![no_main]
use dnsight_ingest::{open_reader, IngestOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = open_reader(Box::new(std::io::Cursor::new(data.to_vec())), "fuzz", &IngestOptions::default()) else { return };
    let mut out = Vec::new();
    let mut rounds = 0;
    while let Ok(true) = r.next_batch(&mut out) {
        rounds += 1;
        assert!(rounds < 1_000_000);
    }
    for e in &out {
        assert!(e.qname.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
});
