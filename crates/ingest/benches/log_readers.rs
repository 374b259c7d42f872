//! Throughput of the log-style readers: Zeek TSV, Zeek JSON, dnsight JSON lines, a dnstap
//! Frame Streams file, and three query logs (dnsmasq, Route 53 Resolver, BIND), each on a
//! generated in-memory input (no disk in the loop). Prints lines (or frames) per second; run
//! with `cargo bench -p dnsight-ingest --bench log_readers [NAME]`.

use dnsight_ingest::dnstap::framestream::{Writer, DNSTAP_CONTENT_TYPE};
use dnsight_ingest::dnstap::{self, proto};
use dnsight_ingest::querylog::LogFormat;
use dnsight_ingest::{open_format, Format, IngestOptions};
use dnsight_model::wire::{encode_query, encode_response, Question};
use dnsight_model::{Answer, DnsEvent, Flags, Name, RData, Ts};
use std::time::Instant;

const N: usize = 1_000_000;

fn zeek_tsv() -> Vec<u8> {
    let mut s = String::from("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\tinterval\tstring\tcount\tstring\tcount\tstring\tcount\tstring\tbool\tbool\tbool\tbool\tcount\tvector[string]\tvector[interval]\tbool\n");
    for i in 0..N {
        let answers = if i % 3 == 0 {
            "-\t-".to_string()
        } else {
            format!(
                "cdn{}.example.net,93.184.{}.{}\t60.000000,20.000000",
                i % 50,
                i % 200,
                i % 250
            )
        };
        s.push_str(&format!(
            "{}.{:06}\tCYwXsR3yfDq6hooIU2\t10.1.{}.{}\t{}\t10.0.0.1\t53\tudp\t{}\t0.000{}\twww{}.site{}.example.com\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t{answers}\tF\n",
            1_700_000_000 + i / 100, i % 1_000_000, (i / 250) % 250, i % 250, 1024 + i % 60000, i % 65536, 100 + i % 800, i % 10, i % 5000
        ));
    }
    s.into_bytes()
}

fn zeek_json() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..N {
        s.push_str(&format!(
            r#"{{"ts":{}.{:06},"uid":"C8oOlb4e9UFLQg3gD1","id.orig_h":"10.1.{}.{}","id.orig_p":{},"id.resp_h":"10.0.0.1","id.resp_p":53,"proto":"udp","trans_id":{},"rtt":0.0004,"query":"www{}.site{}.example.com","qclass":1,"qclass_name":"C_INTERNET","qtype":1,"qtype_name":"A","rcode":0,"rcode_name":"NOERROR","AA":false,"TC":false,"RD":true,"RA":true,"Z":0,"answers":["93.184.216.34"],"TTLs":[60.0],"rejected":false}}"#,
            1_700_000_000 + i / 100, i % 1_000_000, (i / 250) % 250, i % 250, 1024 + i % 60000, i % 65536, i % 10, i % 5000
        ));
        s.push('\n');
    }
    s.into_bytes()
}

fn jsonl() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..N {
        let mut e = DnsEvent::new(
            Ts(1_700_000_000_000_000 + i as i64 * 1000),
            format!("10.1.{}.{}", (i / 250) % 250, i % 250)
                .parse()
                .unwrap(),
            Name::parse(&format!("www{}.site{}.example.com", i % 10, i % 5000)).unwrap(),
            1,
        );
        e.answers.push(Answer {
            name: e.qname.clone(),
            rtype: 1,
            ttl: 60,
            data: RData::Addr("93.184.216.34".parse().unwrap()),
        });
        s.push_str(&e.to_json_line());
        s.push('\n');
    }
    s.into_bytes()
}

fn dnstap_file() -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), DNSTAP_CONTENT_TYPE).unwrap();
    for i in 0..N / 2 {
        let name = Name::parse(&format!("www{}.site{}.example.com", i % 10, i % 5000)).unwrap();
        let id = (i % 65536) as u16;
        let (mut q, mut r) = (Vec::new(), Vec::new());
        encode_query(
            &mut q,
            id,
            Flags(Flags::RD),
            &Question::new(name.clone(), 1),
        )
        .unwrap();
        let ans = [Answer {
            name: name.clone(),
            rtype: 1,
            ttl: 60,
            data: RData::Addr("93.184.216.34".parse().unwrap()),
        }];
        encode_response(
            &mut r,
            id,
            Flags(Flags::QR | Flags::RD | Flags::RA),
            0,
            &Question::new(name, 1),
            &ans,
        )
        .unwrap();
        let base = proto::Message {
            socket_family: Some(1),
            socket_protocol: Some(1),
            query_address: Some(vec![10, 1, (i / 250 % 250) as u8, (i % 250) as u8]),
            response_address: Some(vec![10, 0, 0, 1]),
            query_port: Some(1024 + (i % 60000) as u32),
            response_port: Some(53),
            query_time_sec: Some(1_700_000_000 + (i / 100) as u64),
            query_time_nsec: Some(0),
            ..Default::default()
        };
        let qm = proto::Message {
            r#type: 5,
            query_message: Some(q),
            ..base.clone()
        };
        let rm = proto::Message {
            r#type: 6,
            response_message: Some(r),
            response_time_sec: Some(1_700_000_000 + (i / 100) as u64),
            response_time_nsec: Some(300_000),
            ..base
        };
        w.write_frame(&dnstap::encode_message(qm)).unwrap();
        w.write_frame(&dnstap::encode_message(rm)).unwrap();
    }
    w.finish().unwrap()
}

/// A Pi-hole / dnsmasq `log-queries=extra` log: query, forwarded and reply lines (3 a query).
fn dnsmasq() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..N / 3 {
        let (c, n) = (
            format!("10.1.{}.{}", (i / 250) % 250, i % 250),
            format!("www{}.site{}.example.com", i % 10, i % 5000),
        );
        let t = format!("Dec  3 12:{:02}:{:02}", (i / 60_000) % 60, (i / 1000) % 60);
        let id = i + 1;
        s.push_str(&format!(
            "{t} dnsmasq[676]: {id} {c}/{} query[A] {n} from {c}\n",
            1024 + i % 60000
        ));
        s.push_str(&format!(
            "{t} dnsmasq[676]: {id} {c}/{} forwarded {n} to 1.1.1.1\n",
            1024 + i % 60000
        ));
        s.push_str(&format!(
            "{t} dnsmasq[676]: {id} {c}/{} reply {n} is 93.184.{}.{}\n",
            1024 + i % 60000,
            i % 200,
            i % 250
        ));
    }
    s.into_bytes()
}

/// AWS Route 53 Resolver query log lines (JSON), one answer each.
fn route53() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..N {
        s.push_str(&format!(
            r#"{{"version":"1.100000","account_id":"111122223333","region":"eu-west-1","vpc_id":"vpc-0a1b2c3d","query_timestamp":"2026-12-03T12:{:02}:{:02}Z","query_name":"www{}.site{}.example.com.","query_type":"A","query_class":"IN","rcode":"NOERROR","answers":[{{"Rdata":"93.184.{}.{}","Type":"A","Class":"IN"}}],"srcaddr":"10.1.{}.{}","srcport":"{}","transport":"UDP","srcids":{{"instance":"i-0abc"}}}}"#,
            (i / 60_000) % 60, (i / 1000) % 60, i % 10, i % 5000, i % 200, i % 250, (i / 250) % 250, i % 250, 1024 + i % 60000
        ));
        s.push('\n');
    }
    s.into_bytes()
}

/// BIND querylog lines.
fn bind() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..N {
        s.push_str(&format!(
            "03-Dec-2026 12:{:02}:{:02}.{:03} queries: info: client @0x7f3a2c00e1d8 10.1.{}.{}#{} (www{}.site{}.example.com): query: www{}.site{}.example.com IN A +E(0)K (10.0.0.1)\n",
            (i / 60_000) % 60, (i / 1000) % 60, i % 1000, (i / 250) % 250, i % 250, 1024 + i % 60000, i % 10, i % 5000, i % 10, i % 5000
        ));
    }
    s.into_bytes()
}

/// CPU time of this thread (seconds): the machine is shared, so wall time alone overstates cost.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn run(label: &str, format: Format, data: Vec<u8>) {
    let mb = data.len() as f64 / 1e6;
    let cpu0 = thread_cpu();
    let t = Instant::now();
    let mut r = open_format(
        format,
        Box::new(std::io::Cursor::new(data)),
        label,
        &IngestOptions::default(),
    )
    .unwrap();
    let mut out = Vec::with_capacity(4096);
    let mut events = 0usize;
    while r.next_batch(&mut out).unwrap() {
        events += out.len();
        out.clear();
    }
    events += out.len();
    let secs = t.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu0;
    let st = r.stats();
    println!(
        "{label:<10} {:>8} records {:>8} events {:>6.1} MB | wall {:>6.3} s {:>9.0} rec/s | cpu {:>6.3} s {:>9.0} rec/s {:>6.1} MB/s | rejected {}",
        st.records,
        events,
        mb,
        secs,
        st.records as f64 / secs,
        cpu,
        st.records as f64 / cpu,
        mb / cpu,
        st.rejected_total()
    );
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let want = |n: &str| only.as_deref().is_none_or(|o| n.contains(o));
    if want("zeek-tsv") {
        run("zeek-tsv", Format::ZeekTsv, zeek_tsv());
    }
    if want("zeek-json") {
        run("zeek-json", Format::ZeekJson, zeek_json());
    }
    if want("jsonl") {
        run("jsonl", Format::Jsonl, jsonl());
    }
    if want("dnstap") {
        run("dnstap", Format::Dnstap, dnstap_file());
    }
    if want("dnsmasq") {
        run("dnsmasq", Format::Log(LogFormat::Dnsmasq), dnsmasq());
    }
    if want("route53") {
        run(
            "route53",
            Format::Log(LogFormat::Route53Resolver),
            route53(),
        );
    }
    if want("bind") {
        run("bind", Format::Log(LogFormat::Bind), bind());
    }
}
