//! Zeek dns.log readers (TSV and JSON) on arbitrary bytes. The first byte picks the mode: raw
//! TSV, TSV after a standard header (so the fuzzer spends its time on data lines), or JSON.
//! Never panics; every event carries a printable name; stats agree with the output.
#![no_main]
use dnsight_ingest::zeek::{ZeekJsonReader, ZeekTsvReader};
use dnsight_ingest::EventReader;
use libfuzzer_sys::fuzz_target;

const HEADER: &[u8] = b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqtype\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\topcode\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::new();
    if mode % 3 == 1 {
        input.extend_from_slice(HEADER);
    }
    input.extend_from_slice(rest);
    let cursor = Box::new(std::io::Cursor::new(input));
    let mut r: Box<dyn EventReader> = if mode % 3 == 2 {
        Box::new(ZeekJsonReader::new(cursor))
    } else {
        Box::new(ZeekTsvReader::new(cursor))
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
