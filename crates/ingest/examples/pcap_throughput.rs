//! Throughput of the capture path: writes a capture of plain UDP DNS (queries and responses
//! from 1000 clients) with the project's pcap writer, then reads it back through the real
//! reader on one thread and prints packets per second. Also times the wire decoder alone.
//!
//! `cargo run --release -p dnsight-ingest --example pcap_throughput -- [PACKETS] [FILE]`
//! (default 2,000,000 packets in a temp file; an existing FILE is read instead of written).

use dnsight_ingest::pcap_writer::{ethernet_udp, PcapWriter, LINKTYPE_ETHERNET};
use dnsight_ingest::{open_path, IngestOptions};
use dnsight_model::wire::{encode_query, encode_response, Decoder, Question};
use dnsight_model::{Answer, Flags, Name, RData, Ts};
use std::io::BufWriter;
use std::net::SocketAddr;
use std::time::Instant;

/// CPU time of this thread in seconds (the machine may be shared: wall time overstates cost).
fn thread_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru.ru_utime.tv_sec as f64
            + ru.ru_utime.tv_usec as f64 / 1e6
            + ru.ru_stime.tv_sec as f64
            + ru.ru_stime.tv_usec as f64 / 1e6
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let packets: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("gen.pcap"));
    let mut samples = Vec::new();
    if !path.exists() {
        let t = Instant::now();
        let f = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).expect("create"));
        let mut w = PcapWriter::new(f, LINKTYPE_ETHERNET).expect("header");
        let server: SocketAddr = "10.0.0.1:53".parse().unwrap();
        let mut q = Vec::new();
        let mut r = Vec::new();
        for i in 0..packets / 2 {
            // 1000 clients on 10.0.0.0/22, ephemeral ports cycling
            let client: SocketAddr = format!(
                "10.0.{}.{}:{}",
                (i / 250) % 4,
                i % 250 + 1,
                1024 + (i % 60000)
            )
            .parse()
            .unwrap();
            let name = Name::parse(&format!(
                "host{}.svc{}.example{}.com",
                i % 977,
                i % 31,
                i % 7
            ))
            .unwrap();
            let qn = Question::new(name.clone(), 1);
            q.clear();
            encode_query(&mut q, i as u16, Flags(Flags::RD), &qn).unwrap();
            r.clear();
            let ans = [Answer {
                name,
                rtype: 1,
                ttl: 300,
                data: RData::Addr(std::net::IpAddr::V4([192, 0, 2, (i % 250) as u8].into())),
            }];
            encode_response(&mut r, i as u16, Flags(Flags::RD | Flags::RA), 0, &qn, &ans).unwrap();
            let ts = Ts(1_700_000_000_000_000 + i as i64 * 100);
            w.write_packet(ts, &ethernet_udp(client, server, &q))
                .unwrap();
            w.write_packet(Ts(ts.0 + 50), &ethernet_udp(server, client, &r))
                .unwrap();
            if i < 1000 {
                samples.push(q.clone());
                samples.push(r.clone());
            }
        }
        drop(w);
        println!(
            "wrote {} packets to {} in {:.2}s",
            packets,
            path.display(),
            t.elapsed().as_secs_f64()
        );
    }

    // 1. the full capture path (container, link, IP, UDP, DNS decode, pairing), one thread
    let t = Instant::now();
    let cpu0 = thread_cpu();
    let mut reader = open_path(&path, &IngestOptions::default()).expect("open");
    let mut out = Vec::new();
    let mut events = 0u64;
    while reader.next_batch(&mut out).expect("read") {
        events += out.len() as u64;
        out.clear();
    }
    events += out.len() as u64;
    let secs = t.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu0;
    let st = reader.stats();
    println!(
        "read: {} packets, {} messages, {} events in {:.3}s wall = {:.2} M packets/s; {:.3}s CPU = {:.2} M packets/s per core (rejects {})",
        st.records,
        st.messages,
        events,
        secs,
        st.records as f64 / secs / 1e6,
        cpu,
        st.records as f64 / cpu / 1e6,
        st.rejected_total()
    );

    // 2. the wire decoder alone
    if !samples.is_empty() {
        let mut d = Decoder::new();
        let rounds = 2000;
        let t = Instant::now();
        let mut n = 0u64;
        for _ in 0..rounds {
            for s in &samples {
                let m = d.decode(std::hint::black_box(s)).expect("decodes");
                n += m.answers.len() as u64 + 1;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let msgs = (rounds * samples.len()) as f64;
        println!(
            "decode: {:.0} ns/message ({:.2} M messages/s) [{}]",
            secs * 1e9 / msgs,
            msgs / secs / 1e6,
            n
        );
    }
}
