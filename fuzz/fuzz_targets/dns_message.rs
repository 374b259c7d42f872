//! DNS wire decoder: never panics; names stay printable; `decode_expecting` agrees with
//! `decode`; whatever decodes re-encodes and decodes to the same question and answers (where
//! the encoder can represent them).
#![no_main]
use dnsight_model::wire::{encode_response, Decoder, Question};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new();
    let Ok(m) = d.decode(data) else { return };
    assert!(m.qname.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
    for a in &m.answers {
        assert!(a.name.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
    // decoding against the known question name agrees with a plain decode
    if m.header.qdcount > 0 {
        let (again, matched) = d.decode_expecting(data, Some(&m.qname)).expect("decodes twice");
        assert!(matched);
        assert_eq!(again.answers, m.answers);
    }
    let q = Question { name: m.qname.clone(), qtype: m.qtype, qclass: m.qclass };
    let mut out = Vec::new();
    if encode_response(&mut out, m.id(), m.header.flags, m.rcode, &q, &m.answers).is_ok() {
        let again = d.decode(&out).expect("own encoding decodes");
        assert_eq!(again.qname, m.qname);
        assert_eq!(again.answers, m.answers);
        assert_eq!(again.rcode, m.rcode);
    }
});
