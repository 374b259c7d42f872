//! Hostile and unwelcome clients: garbage datagrams, half-open TCP, ACL, rate limits, ANY.
//! These need no upstream (queries that would go upstream are not part of them).

use crate::*;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

#[test]
fn garbage_is_counted_and_dropped() {
    let (r, _ev) = start(base_config(&[]));
    let a = r.udp_addrs()[0];
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // short, a response (QR set), random bytes
    s.send_to(&[1, 2, 3], a).unwrap();
    let mut resp = build_query(9, "www.example", 1, false);
    resp[2] |= 0x80;
    s.send_to(&resp, a).unwrap();
    let mut rng_bytes = vec![0u8; 300];
    for (i, b) in rng_bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    rng_bytes[2] &= 0x7f; // a "query" with nonsense counts → FORMERR
    s.send_to(&rng_bytes, a).unwrap();
    let mut buf = [0u8; 600];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(buf[3] & 0xf, 1, "FORMERR for a malformed query");
    assert_eq!(n, 12);
    // an ANY query gets the minimal RFC 8482 answer without an upstream
    let any = udp_query(a, "whatever.example", 255, false, Duration::from_secs(3)).unwrap();
    assert_eq!(answers(&any)[0].rtype, 13);
    // still serving after all that
    let st = r.stats();
    assert_eq!(
        (st.garbage_short, st.garbage_response, st.garbage_question),
        (1, 1, 1),
        "{st}"
    );
    r.shutdown();
}

#[test]
fn half_open_tcp_connections_time_out() {
    let mut cfg = base_config(&[]);
    cfg.tcp_idle_timeout = Duration::from_millis(300);
    let (r, _ev) = start(cfg);
    let t = r.tcp_addrs()[0];
    // sends one byte of a length prefix, then nothing
    let mut c = TcpStream::connect(t).unwrap();
    c.write_all(&[0]).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 4];
    assert_eq!(
        c.read(&mut b).unwrap(),
        0,
        "server closes the half-open connection"
    );
    // a connection that never sends anything is closed too
    let mut idle = TcpStream::connect(t).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(idle.read(&mut b).unwrap(), 0);
    assert_eq!(r.stats().tcp_timeouts, 2);
    // a well-behaved connection in between still works (ANY needs no upstream)
    let any = tcp_query(t, "x.example", 255);
    assert_eq!(rcode(&any), 0);
    r.shutdown();
}

#[test]
fn acl_refuses_outsiders() {
    let mut cfg = base_config(&[]);
    cfg.rules.acl = vec!["10.0.0.0/8".parse().unwrap()];
    cfg.udp_batch = 1; // the plain recv_from/send_to worker
    let (r, events) = start(cfg);
    let resp = udp_query(
        r.udp_addrs()[0],
        "www.example",
        1,
        false,
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!(rcode(&resp), 5);
    assert_eq!(resp.len(), 12, "no amplification");
    assert_eq!(r.stats().refused_acl, 1);
    assert_eq!(
        events.wait(1)[0].verdict.as_ref().unwrap().action,
        dnsight_model::VerdictAction::Refused
    );
    r.shutdown();
}

#[test]
fn per_client_rate_limit() {
    let mut cfg = base_config(&[]);
    cfg.rate_limit_qps = 5;
    cfg.rate_limit_burst = 5;
    cfg.rate_limit_exempt = vec![];
    let (r, _ev) = start(cfg);
    let a = r.udp_addrs()[0];
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..40u16 {
        s.send_to(&build_query(i, "x.example", 255, false), a)
            .unwrap();
    }
    // answers arrive for the burst; the rest are dropped and counted
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = 0;
    let mut buf = [0u8; 512];
    while s.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    let st = r.shutdown();
    assert_eq!(st.queries, 40);
    assert_eq!(st.rate_limited + got, 40);
    assert!(st.rate_limited >= 30, "{st}");
}

/// The question goes upstream exactly as the client spelled it: letter case carries data (DNS
/// 0x20 anti-spoofing, base64 tunnels such as dns2tcp). A recording upstream checks the bytes.
#[test]
fn question_case_is_preserved_upstream() {
    let up = UdpSocket::bind("127.0.0.1:0").unwrap();
    up.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let up_addr = up.local_addr().unwrap();
    let (r, _ev) = start(base_config(&[up_addr]));
    let a = r.udp_addrs()[0];
    let client = std::thread::spawn(move || {
        udp_query(a, "AbCdEf.Tunnel.Test", 16, false, Duration::from_secs(5))
    });
    let mut buf = [0u8; 1500];
    let (n, from) = up
        .recv_from(&mut buf)
        .expect("the query reaches the upstream");
    let q = &buf[..n];
    assert!(
        q.windows(b"\x06AbCdEf\x06Tunnel\x04Test\x00".len())
            .any(|w| w == b"\x06AbCdEf\x06Tunnel\x04Test\x00"),
        "upstream saw {:?}",
        String::from_utf8_lossy(q)
    );
    // answer it (echoing the question) so the client is not left waiting
    let mut resp = q.to_vec();
    resp[2] |= 0x80;
    resp[3] = (resp[3] & 0xf0) | 3; // NXDOMAIN
    up.send_to(&resp, from).unwrap();
    let got = client.join().unwrap().expect("client gets an answer");
    assert_eq!(rcode(&got), 3);
    r.shutdown();
}
