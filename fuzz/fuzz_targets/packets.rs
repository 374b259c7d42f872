//! Frames through the packet decoder (link layers, IP, fragments, UDP, TCP, DNS, pairing):
//! byte 0 picks a link type, then frames follow as [len_hi, len_lo, bytes...], all fed to one
//! decoder so fragment and TCP state carries across frames.
#![no_main]
use dnsight_ingest::net::PacketDecoder;
use dnsight_ingest::IngestOptions;
use dnsight_model::{Source, Ts};
use libfuzzer_sys::fuzz_target;

const LINKTYPES: [u32; 14] = [0, 1, 9, 10, 12, 14, 50, 101, 104, 108, 113, 228, 229, 276];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let lt = LINKTYPES[sel as usize % LINKTYPES.len()];
    let opts = IngestOptions {
        dns_ports: vec![53, 5353],
        pair_timeout_secs: 1,
        ..Default::default()
    };
    let mut dec = PacketDecoder::new(Source::Pcap, &opts);
    let mut out = Vec::new();
    let mut ts = 0i64;
    while rest.len() >= 2 {
        let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        ts += 300_000;
        dec.packet(Ts(ts), lt, &rest[2..2 + n], &mut out);
        rest = &rest[2 + n..];
    }
    dec.flush(&mut out);
    assert_eq!(dec.stats.events as usize, out.len());
});
