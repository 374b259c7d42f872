//! DNS-over-TCP reassembly: segments as [flow, flags, seq_delta_hi, seq_delta_lo, len, bytes...].
//! Never panics; every emitted message is at most 65535 bytes; memory stays bounded.
#![no_main]
use dnsight_ingest::tcp::{FlowKey, TcpReassembler};
use dnsight_ingest::IngestStats;
use dnsight_model::Ts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = TcpReassembler::new().with_max_flows(4);
    let mut st = IngestStats::default();
    let mut seqs = [0u32; 8];
    let mut rest = data;
    let mut ts = 0i64;
    let mut emitted = 0usize;
    let mut check = |_: &mut IngestStats, _: &FlowKey, _: Ts, m: &[u8]| {
        assert!(!m.is_empty() && m.len() <= 65535);
        emitted += 1;
    };
    while rest.len() >= 5 {
        let flow = (rest[0] % 8) as usize;
        let flags = rest[1];
        let delta = u16::from_be_bytes([rest[2], rest[3]]) as i16 as i32;
        let n = (rest[4] as usize).min(rest.len() - 5);
        let payload = &rest[5..5 + n];
        rest = &rest[5 + n..];
        seqs[flow] = seqs[flow].wrapping_add(delta as u32);
        ts += 1_000_000 * (flags as i64 >> 6);
        let key = FlowKey { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), src_port: 1000 + flow as u16, dst_port: 53 };
        r.segment(Ts(ts), key, seqs[flow], flags & 0x1f, payload, &mut st, &mut check);
        assert!(r.flows() <= 4);
    }
    r.flush(&mut st, &mut check);
});
