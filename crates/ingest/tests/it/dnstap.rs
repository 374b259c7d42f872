//! dnstap: BIND's Frame Streams file against BIND's own text rendering, the live handshake over
//! unix and TCP sockets with the crate's own Frame Streams writer, and a real Unbound streaming
//! to the listener.

use dnsight_ingest::dnstap::framestream::{Frame, FrameReader, Writer, DNSTAP_CONTENT_TYPE};
use dnsight_ingest::dnstap::{self, proto, DnstapDecoder, DnstapOptions, ListenOptions};
use dnsight_ingest::{EventReader, IngestOptions, IngestStats};
use dnsight_model::wire::{encode_query, encode_response, Question};
use dnsight_model::{Answer, DnsEvent, Flags, Name, RData, Transport};
use std::io::{BufReader, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

fn bind9_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/captures/dnstap_bind9");
    if d.is_dir() {
        Some(d)
    } else {
        println!("skipped: {} not found (corpus part)", d.display());
        None
    }
}

/// One line of BIND's `dnstap-read` output:
/// `03-Feb-2017 15:47:16.000 SQ 10.53.0.1:2112 -> 10.53.0.2:2112 UDP 40b www.isc.org/IN/A`.
#[derive(Debug, PartialEq)]
struct TextLine {
    code: String,
    query_addr: String,
    response_addr: String,
    proto: String,
    size: usize,
    qname: String,
    qtype: String,
}

fn parse_text_line(l: &str) -> TextLine {
    let f: Vec<&str> = l.split_whitespace().collect();
    assert_eq!(f.len(), 9, "unexpected line {l:?}");
    let (qname, rest) = f[8].split_once('/').unwrap();
    let (_class, qtype) = rest.split_once('/').unwrap();
    TextLine {
        code: f[2].into(),
        query_addr: f[3].into(),
        response_addr: f[5].into(),
        proto: f[6].into(),
        size: f[7].trim_end_matches('b').parse().unwrap(),
        qname: qname.into(),
        qtype: qtype.into(),
    }
}

#[test]
fn bind9_file_matches_bind_text() {
    let Some(dir) = bind9_dir() else { return };
    let text = std::fs::read_to_string(dir.join("dnstap.text")).unwrap();
    let expected: Vec<TextLine> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_text_line)
        .collect();
    assert_eq!(expected.len(), 96);

    let file = std::fs::File::open(dir.join("dnstap.saved")).unwrap();
    let mut frames = FrameReader::new(BufReader::new(file), 1 << 20);
    let mut got = Vec::new();
    let mut controls = Vec::new();
    while let Some(f) = frames.next_frame().unwrap() {
        match f {
            Frame::Data(d) => {
                let m = dnstap::decode_frame(d).unwrap().message.unwrap();
                let code = dnstap::type_code(m.r#type);
                let wire = if code.ends_with('Q') {
                    m.query_message.clone()
                } else {
                    m.response_message.clone()
                }
                .unwrap();
                let msg = dnsight_model::wire::decode(&wire).unwrap();
                let addr = |a: &Option<Vec<u8>>, p: Option<u32>| {
                    format!("{}:{}", dnstap::addr_of(a.as_deref()).unwrap(), p.unwrap())
                };
                got.push(TextLine {
                    code: code.into(),
                    query_addr: addr(&m.query_address, m.query_port),
                    response_addr: addr(&m.response_address, m.response_port),
                    proto: match m.socket_protocol() {
                        proto::SocketProtocol::Udp => "UDP".into(),
                        proto::SocketProtocol::Tcp => "TCP".into(),
                        p => format!("{p:?}"),
                    },
                    size: wire.len(),
                    qname: msg.qname.as_str().into(),
                    qtype: dnsight_model::rtype_to_str(msg.qtype).into_owned(),
                });
            }
            Frame::Control(c) => controls.push(c.kind),
            Frame::TooLarge(n) => panic!("frame of {n} bytes"),
        }
    }
    assert_eq!(controls, [2, 3], "START ... STOP");
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "message {i}");
    }

    // and through the file reader as events: every message decodes, the pairer sees 48 queries
    // and 48 responses (all share one 5-tuple and id in this synthetic file)
    let mut r =
        dnsight_ingest::open_path(&dir.join("dnstap.saved"), &IngestOptions::default()).unwrap();
    let mut evs = Vec::new();
    while r.next_batch(&mut evs).unwrap() {}
    let st = r.stats();
    assert_eq!(st.records, 98, "96 data frames + START + STOP");
    assert_eq!(
        (st.messages, st.queries, st.responses),
        (96, 48, 48),
        "{st:?}"
    );
    assert!(st.rejected.keys().all(|k| k.starts_with("pair.")), "{st:?}");
    assert!(evs
        .iter()
        .all(|e| e.qname.as_str() == "www.isc.org" && e.qtype == 1));
    assert!(evs
        .iter()
        .all(|e| e.client.to_string() == "10.53.0.1" && e.server.to_string() == "10.53.0.2"));
    assert!(evs
        .iter()
        .any(|e| e.has_query() && e.has_response() && e.transport == Transport::Tcp));
    println!("bind9 dnstap.saved: {} events, {st:?}", evs.len());
}

#[test]
fn bind9_single_messages() {
    let Some(dir) = bind9_dir() else { return };
    let mut d = DnstapDecoder::new(&DnstapOptions::default());
    let (mut st, mut out) = (IngestStats::default(), Vec::new());
    let q = std::fs::read(dir.join("correct_query_nanosec.dnstap")).unwrap();
    let m = dnstap::decode_frame(&q).unwrap();
    assert_eq!(m.identity.as_deref(), Some(&b"sheep"[..]));
    assert_eq!(dnstap::type_code(m.message.as_ref().unwrap().r#type), "CQ");
    d.push_frame(&q, &mut st, &mut out);
    d.push_frame(
        &std::fs::read(dir.join("correct_response_nanosec.dnstap")).unwrap(),
        &mut st,
        &mut out,
    );
    for f in [
        "invalid_message_type.dnstap",
        "query_time_nanosec_big.dnstap",
        "response_time_nanosec_big.dnstap",
    ] {
        d.push_frame(&std::fs::read(dir.join(f)).unwrap(), &mut st, &mut out);
    }
    d.flush(&mut st, &mut out);
    // the query and the response are from different transactions (and the response carries no
    // query address): two events, each with one side
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|e| e.qname.as_str() == "isc.org"));
    let q = out.iter().find(|e| e.has_query()).unwrap();
    assert_eq!(
        (q.client.to_string(), q.server.to_string(), q.id),
        ("10.53.0.1".into(), "10.53.0.10".into(), 28057)
    );
    let r = out.iter().find(|e| e.has_response()).unwrap();
    assert_eq!(r.server.to_string(), "199.249.112.1");
    assert_eq!(
        st.rejected.get("dnstap.bad_message_type"),
        Some(&1),
        "{st:?}"
    );
    assert_eq!(st.rejected.get("dnstap.bad_time"), Some(&2), "{st:?}");
}

fn dns_pair(id: u16, name: &str, client_port: u32) -> (proto::Message, proto::Message) {
    let qn = Name::parse(name).unwrap();
    let (mut q, mut r) = (Vec::new(), Vec::new());
    encode_query(&mut q, id, Flags(Flags::RD), &Question::new(qn.clone(), 1)).unwrap();
    let ans = [Answer {
        name: qn.clone(),
        rtype: 1,
        ttl: 30,
        data: RData::Addr("198.51.100.9".parse().unwrap()),
    }];
    encode_response(
        &mut r,
        id,
        Flags(Flags::QR | Flags::RD | Flags::RA),
        0,
        &Question::new(qn, 1),
        &ans,
    )
    .unwrap();
    let base = proto::Message {
        socket_family: Some(proto::SocketFamily::Inet6 as i32),
        socket_protocol: Some(proto::SocketProtocol::Tcp as i32),
        query_address: Some(
            "2001:db8::5"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
                .to_vec(),
        ),
        response_address: Some(
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
                .to_vec(),
        ),
        query_port: Some(client_port),
        response_port: Some(53),
        query_time_sec: Some(1_800_000_000),
        query_time_nsec: Some(0),
        ..Default::default()
    };
    let query = proto::Message {
        r#type: proto::message::Type::ClientQuery as i32,
        query_message: Some(q),
        ..base.clone()
    };
    let resp = proto::Message {
        r#type: proto::message::Type::ClientResponse as i32,
        response_message: Some(r),
        response_time_sec: Some(1_800_000_000),
        response_time_nsec: Some(2_000_000),
        ..base
    };
    (query, resp)
}

/// Sends `n` query/response pairs through the bidirectional handshake and checks FINISH.
fn send_stream<W: Write>(w: W, read_half: Box<dyn std::io::Read + Send>, n: u16, port: u32) {
    let mut fw = Writer::connect(w, read_half, DNSTAP_CONTENT_TYPE).expect("handshake");
    for i in 0..n {
        let (q, r) = dns_pair(i, &format!("host{i}.example.org"), port);
        fw.write_frame(&dnstap::encode_message(q)).unwrap();
        fw.write_frame(&dnstap::encode_message(r)).unwrap();
    }
    fw.write_frame(b"\x08\x01garbage").unwrap();
    fw.flush().unwrap();
    fw.finish().expect("FINISH from the listener");
}

fn collect(l: &mut dnstap::DnstapListener, want: usize) -> Vec<DnsEvent> {
    let mut out = Vec::new();
    // bounded: each call returns at the latest after idle_flush; 200 × 50 ms = 10 s at most
    for _ in 0..200 {
        if out.len() >= want {
            break;
        }
        assert!(l.next_batch(&mut out).unwrap());
    }
    out
}

fn check_events(evs: &[DnsEvent], n: usize) {
    assert_eq!(evs.len(), n);
    for e in evs {
        assert!(e.has_query() && e.has_response(), "{e:?}");
        assert_eq!(e.client, "2001:db8::5".parse::<IpAddr>().unwrap());
        assert_eq!(e.server_port, 53);
        assert_eq!(e.transport, Transport::Tcp);
        assert_eq!(e.rtt_us, Some(2000));
        assert!(e.qname.as_str().ends_with(".example.org"));
    }
}

fn fast_opts() -> ListenOptions {
    ListenOptions {
        idle_flush: Duration::from_millis(50),
        ..Default::default()
    }
}

#[test]
fn live_unix_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnstap.sock");
    let mut l = dnstap::listen_unix(&path, &fast_opts()).unwrap();
    let p2 = path.clone();
    let sender = std::thread::spawn(move || {
        for round in 0..2 {
            let s = std::os::unix::net::UnixStream::connect(&p2).unwrap();
            let rh = s.try_clone().unwrap();
            send_stream(s, Box::new(rh), 50, 40000 + round);
        }
    });
    let evs = collect(&mut l, 100);
    sender.join().unwrap();
    check_events(&evs, 100);
    // the senders got FINISH, so every frame was handed to the listener; the last batch (with
    // the garbage frame) may still be queued: drain it (bounded: idle_flush per call)
    let mut extra = Vec::new();
    for _ in 0..200 {
        if l.stats().rejected.get("dnstap.bad_protobuf") == Some(&2) {
            break;
        }
        assert!(l.next_batch(&mut extra).unwrap());
    }
    assert!(extra.is_empty());
    let st = l.stats().clone();
    assert_eq!(st.records, 202);
    assert_eq!(st.rejected.get("dnstap.bad_protobuf"), Some(&2), "{st:?}");
    assert_eq!(l.connections().0, 2);
    // a sender offering another content type is refused
    {
        let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let rh = s.try_clone().unwrap();
        assert!(Writer::connect(s, Box::new(rh), b"protobuf:other").is_err());
    }
    let h = l.shutdown_handle();
    h.shutdown();
    let mut rest = Vec::new();
    while l.next_batch(&mut rest).unwrap() {}
    assert!(rest.is_empty());
    assert_eq!(
        l.stats().rejected.get("fstrm.content_type_mismatch"),
        Some(&1),
        "{:?}",
        l.stats()
    );
    assert!(!path.exists(), "socket file removed on shutdown");
}

#[test]
fn live_tcp_handshake_and_unidirectional_sender() {
    let mut l = dnstap::listen_tcp("127.0.0.1:0", &fast_opts()).unwrap();
    let addr = l.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        let rh = s.try_clone().unwrap();
        send_stream(s, Box::new(rh), 30, 41000);
        // a unidirectional sender (START without READY), closing without STOP
        let s = std::net::TcpStream::connect(addr).unwrap();
        let mut fw = Writer::new(s, DNSTAP_CONTENT_TYPE).unwrap();
        let (q, r) = dns_pair(999, "uni.example.org", 42000);
        fw.write_frame(&dnstap::encode_message(q)).unwrap();
        fw.write_frame(&dnstap::encode_message(r)).unwrap();
        fw.flush().unwrap();
    });
    let evs = collect(&mut l, 31);
    sender.join().unwrap();
    check_events(&evs, 31);
    assert!(evs.iter().any(|e| e.qname.as_str() == "uni.example.org"));
    drop(l);
}

#[test]
fn live_unanswered_query_is_emitted_when_idle() {
    let opts = ListenOptions {
        dnstap: DnstapOptions {
            ingest: IngestOptions {
                pair_timeout_secs: 0,
                ..Default::default()
            },
            ..Default::default()
        },
        ..fast_opts()
    };
    let mut l = dnstap::listen_tcp("127.0.0.1:0", &opts).unwrap();
    let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let rh = s.try_clone().unwrap();
    let mut fw = Writer::connect(s, Box::new(rh), DNSTAP_CONTENT_TYPE).unwrap();
    let (q, _) = dns_pair(7, "lonely.example.org", 43000);
    fw.write_frame(&dnstap::encode_message(q)).unwrap();
    fw.flush().unwrap();
    let evs = collect(&mut l, 1);
    assert_eq!(evs.len(), 1);
    assert!(evs[0].has_query() && !evs[0].has_response());
    fw.finish().unwrap();
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(tool))
        .find(|p| p.is_file())
}

fn free_udp_port() -> u16 {
    // bind UDP and TCP on the same port so unbound can take both
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn real_unbound_streams_to_unix_listener() {
    real_unbound(false);
}

#[test]
fn real_unbound_streams_to_tcp_listener() {
    real_unbound(true);
}

/// Unbound answering from local data, logging client queries and responses over dnstap to a
/// unix-socket or TCP listener; three `dig` queries must arrive as paired events.
fn real_unbound(tcp: bool) {
    let unbound = which("unbound").or_else(|| {
        ["/usr/sbin/unbound"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    let (Some(unbound), Some(dig)) = (unbound, which("dig")) else {
        println!("skipped: unbound or dig not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("dnstap.sock");
    let (mut l, dnstap_conf) = if tcp {
        let l = dnstap::listen_tcp("127.0.0.1:0", &fast_opts()).unwrap();
        let a = l.local_addr().unwrap();
        (
            l,
            format!("dnstap-ip: \"{}@{}\"\n    dnstap-tls: no", a.ip(), a.port()),
        )
    } else {
        let l = dnstap::listen_unix(&sock, &fast_opts()).unwrap();
        (l, format!("dnstap-socket-path: \"{}\"", sock.display()))
    };
    let port = free_udp_port();
    let conf = dir.path().join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            r#"server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    use-syslog: no
    logfile: ""
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    verbosity: 0
    num-threads: 1
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    local-zone: "dnsight.test." static
    local-data: "www.dnsight.test. 300 IN A 192.0.2.80"
    local-data: "txt.dnsight.test. 300 IN TXT \"hello\""
remote-control:
    control-enable: no
dnstap:
    dnstap-enable: yes
    {dnstap_conf}
    dnstap-send-identity: yes
    dnstap-send-version: yes
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
"#,
            dir = dir.path().display(),
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(&unbound)
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // dig retries until unbound listens (dig's own timeout bounds each attempt)
    let mut answered = 0;
    let queries = [
        ("www.dnsight.test", "A"),
        ("txt.dnsight.test", "TXT"),
        ("nope.dnsight.test", "A"),
    ];
    for (name, t) in queries {
        for _ in 0..20 {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                use std::io::Read;
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("unbound exited with {status}: {err}");
            }
            let o = std::process::Command::new(&dig)
                .args([
                    "+tries=1",
                    "+time=1",
                    "-p",
                    &port.to_string(),
                    "@127.0.0.1",
                    name,
                    t,
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&o.stdout).contains("status:") {
                answered += 1;
                break;
            }
        }
    }
    let child = Kill(child);
    assert_eq!(answered, 3, "dig got answers from unbound");
    let evs = collect(&mut l, 3);
    drop(child);
    let find = |n: &str| {
        evs.iter()
            .find(|e| e.qname.as_str() == n)
            .unwrap_or_else(|| panic!("{n} not in {evs:?}"))
    };
    let www = find("www.dnsight.test");
    assert_eq!(www.client.to_string(), "127.0.0.1");
    assert_eq!(www.server_port, port);
    assert!(www.has_query() && www.has_response());
    assert_eq!(www.answers[0].addr(), Some("192.0.2.80".parse().unwrap()));
    assert_eq!(find("txt.dnsight.test").qtype, 16);
    assert_eq!(
        find("nope.dnsight.test").rcode,
        Some(dnsight_model::RCODE_NXDOMAIN)
    );
    println!(
        "unbound → dnsight: {} events, stats {:?}",
        evs.len(),
        l.stats()
    );
}

mod randomized {
    //! Stable-Rust stand-in for the cargo-fuzz target `dnstap_framestream`: valid streams with
    //! random mutations must never panic the file reader, and what comes out stays consistent.
    use super::*;
    use dnstap::DnstapFileReader;
    use proptest::prelude::*;

    fn valid_stream(n: u16) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), DNSTAP_CONTENT_TYPE).unwrap();
        for i in 0..n {
            let (q, r) = dns_pair(i, &format!("n{i}.example.org"), 40000 + u32::from(i));
            w.write_frame(&dnstap::encode_message(q)).unwrap();
            w.write_frame(&dnstap::encode_message(r)).unwrap();
        }
        w.finish().unwrap()
    }

    fn read(bytes: Vec<u8>) -> (Vec<DnsEvent>, IngestStats) {
        let opts = DnstapOptions {
            max_frame: 4096,
            ..Default::default()
        };
        let mut r = DnstapFileReader::new(Box::new(std::io::Cursor::new(bytes)), &opts);
        let mut out = Vec::new();
        while r.next_batch(&mut out).unwrap() {}
        (out, r.stats().clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn mutated_streams_never_panic(
            n in 0u16..6,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..12),
            cut in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let mut b = valid_stream(n);
            for (at, byte, op) in edits {
                if b.is_empty() { break; }
                let i = at.index(b.len());
                match op {
                    0 => b[i] = byte,
                    1 => b[i] ^= 1 << (byte % 8),
                    2 => b.insert(i, byte),
                    _ => { b.remove(i); }
                }
            }
            if let Some(c) = cut { let l = b.len(); b.truncate(c.index(l + 1)); }
            let (evs, st) = read(b);
            prop_assert_eq!(st.events as usize, evs.len());
            for e in &evs {
                prop_assert!(e.qname.as_str().bytes().all(|c| (0x21..=0x7e).contains(&c)));
            }
        }

        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut with_escape = vec![0, 0, 0, 0];
            with_escape.extend_from_slice(&b);
            read(with_escape);
            read(b);
        }
    }

    #[test]
    fn unmutated_stream_reads_fully() {
        let (evs, st) = read(valid_stream(5));
        assert_eq!(evs.len(), 5);
        assert_eq!(st.rejected_total(), 0);
    }
}

#[test]
fn live_listener_limits_connections_and_stalled_handshakes() {
    use std::io::Read;
    let opts = ListenOptions {
        max_connections: 1,
        handshake_timeout: Duration::from_millis(200),
        ..fast_opts()
    };
    let mut l = dnstap::listen_tcp("127.0.0.1:0", &opts).unwrap();
    let addr = l.local_addr().unwrap();
    // A completes the handshake and holds the only slot
    let a = std::net::TcpStream::connect(addr).unwrap();
    let ah = a.try_clone().unwrap();
    let fw = Writer::connect(a, Box::new(ah), DNSTAP_CONTENT_TYPE).unwrap();
    // B is closed at once
    let b = std::net::TcpStream::connect(addr).unwrap();
    let bh = b.try_clone().unwrap();
    assert!(Writer::connect(b, Box::new(bh), DNSTAP_CONTENT_TYPE).is_err());
    fw.finish().unwrap();
    // C connects after A is gone and says nothing: dropped after the handshake timeout. A's
    // slot is released when its thread ends; until then C is refused like B, so retry.
    let mut out = Vec::new();
    for _ in 0..100 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            s.read(&mut buf).unwrap(),
            0,
            "the listener closes the connection"
        );
        assert!(l.next_batch(&mut out).unwrap());
        if l.stats().rejected.contains_key("fstrm.io_error") {
            break;
        }
    }
    l.shutdown_handle().shutdown();
    let mut out = Vec::new();
    while l.next_batch(&mut out).unwrap() {}
    let st = l.stats();
    assert!(
        st.rejected
            .get("fstrm.too_many_connections")
            .copied()
            .unwrap_or(0)
            >= 1,
        "{st:?}"
    );
    assert_eq!(st.rejected.get("fstrm.io_error"), Some(&1), "{st:?}");
}
