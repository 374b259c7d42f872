//! The query-log readers (every format of `querylog::FORMATS`, and sniffing) on arbitrary
//! bytes. The first byte picks the format (or sniffing when it is past the registry's end).
//! Never panics; every event carries a printable name; stats agree with the output.
#![no_main]
use dnsight_ingest::querylog::FORMATS;
use dnsight_ingest::{open_reader, Format, IngestOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let opts = IngestOptions {
        format: FORMATS.get(mode as usize).map(|f| Format::Log(f.format)),
        ..Default::default()
    };
    let Ok(mut r) = open_reader(Box::new(std::io::Cursor::new(rest.to_vec())), "fuzz", &opts)
    else {
        return;
    };
    let mut out = Vec::new();
    let mut rounds = 0;
    while let Ok(true) = r.next_batch(&mut out) {
        rounds += 1;
        assert!(rounds < 1_000_000);
    }
    for e in &out {
        assert!(e.qname.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
        for a in &e.answers {
            assert!(a.name.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
        }
    }
    assert_eq!(r.stats().events as usize, out.len());
});
