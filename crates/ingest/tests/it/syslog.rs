//! The syslog receiver, fed by util-linux `logger` (UDP with RFC 5424, TCP with RFC 3164 and
//! octet counting) and by raw sockets for the allow-list and hostile frames.

use dnsight_ingest::syslog::{listen_tcp, listen_udp, SyslogOptions, SyslogReceiver};
use dnsight_ingest::EventReader;
use dnsight_model::{Cidr, DnsEvent};
use std::io::Write;
use std::time::{Duration, Instant};

fn logger() -> Option<&'static str> {
    ["/usr/bin/logger", "/bin/logger"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Pulls batches until `done` says so (at most 20 s); returns the events.
fn pull(
    r: &mut SyslogReceiver,
    done: impl Fn(&[DnsEvent], &SyslogReceiver) -> bool,
) -> Vec<DnsEvent> {
    let end = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while !done(&out, r) && Instant::now() < end {
        assert!(r.next_batch(&mut out).unwrap());
    }
    out
}

fn log(args: &[&str], msg: &str) {
    let st = std::process::Command::new(logger().unwrap())
        .args(args)
        .arg(msg)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn logger_over_udp_and_tcp_pairs_each_stream() {
    if logger().is_none() {
        eprintln!("skipping: needs logger (util-linux)");
        return;
    }
    let mut udp = listen_udp("127.0.0.1:0", &SyslogOptions::default()).unwrap();
    let port = udp.local_addr().port().to_string();
    let base = [
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--udp",
        "--rfc5424",
    ];
    let with = |tag: &str| {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v.extend(["-t".into(), tag.into()]);
        v
    };
    let dm = with("dnsmasq");
    let dm: Vec<&str> = dm.iter().map(String::as_str).collect();
    log(&dm, "query[A] a.example from 10.0.0.5");
    log(&dm, "forwarded a.example to 1.1.1.1");
    log(&dm, "reply a.example is 192.0.2.1");
    let nm = with("named");
    let nm: Vec<&str> = nm.iter().map(String::as_str).collect();
    log(
        &nm,
        "client @0x7f1 10.0.0.6#5353 (b.example): query: b.example IN AAAA + (10.0.0.1)",
    );
    let evs = pull(&mut udp, |o, _| o.len() >= 2);
    assert_eq!(evs.len(), 2, "{:?}", udp.stats());
    let a = evs
        .iter()
        .find(|e| e.qname.as_str() == "a.example")
        .unwrap();
    assert_eq!(a.client.to_string(), "10.0.0.5");
    assert_eq!(a.answers[0].addr().unwrap().to_string(), "192.0.2.1");
    let b = evs
        .iter()
        .find(|e| e.qname.as_str() == "b.example")
        .unwrap();
    assert_eq!((b.client.to_string().as_str(), b.qtype), ("10.0.0.6", 28));
    assert_eq!(udp.stats().rejected_total(), 0, "{:?}", udp.stats());
    udp.shutdown_handle().shutdown();

    let mut tcp = listen_tcp("127.0.0.1:0", &SyslogOptions::default()).unwrap();
    let port = tcp.local_addr().port().to_string();
    log(
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--tcp",
            "--rfc3164",
            "-t",
            "unbound",
        ],
        "[811:0] info: 10.0.0.7 c.example. A IN NXDOMAIN 0.001 0 40",
    );
    log(
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "unbound",
        ],
        "[811:0] info: 10.0.0.8 d.example. MX IN NOERROR 0.002 0 80",
    );
    let evs = pull(&mut tcp, |o, _| o.len() >= 2);
    assert_eq!(evs.len(), 2, "{:?}", tcp.stats());
    assert!(evs
        .iter()
        .any(|e| e.qname.as_str() == "c.example" && e.is_nxdomain()));
    assert!(evs
        .iter()
        .any(|e| e.qname.as_str() == "d.example" && e.qtype == 15));
    let h = tcp.shutdown_handle();
    h.shutdown();
    let mut out = Vec::new();
    while tcp.next_batch(&mut out).unwrap() {}
}

#[test]
fn senders_outside_the_allow_list_are_dropped_and_counted() {
    let opts = SyslogOptions {
        allow: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        ..Default::default()
    };
    let mut udp = listen_udp("127.0.0.1:0", &opts).unwrap();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(
        b"<30>Dec  3 12:00:00 dnsmasq[1]: query[A] x.example from 10.0.0.5",
        udp.local_addr(),
    )
    .unwrap();
    let evs = pull(&mut udp, |_, r| r.stats().rejected_total() > 0);
    assert!(evs.is_empty());
    assert_eq!(
        udp.stats().rejected.get("syslog.sender_not_allowed"),
        Some(&1)
    );
    udp.shutdown_handle().shutdown();
}

#[test]
fn hostile_tcp_frames_are_counted_never_a_crash() {
    let mut tcp = listen_tcp("127.0.0.1:0", &SyslogOptions::default()).unwrap();
    let addr = tcp.local_addr();
    // junk and invalid UTF-8 lines, then a line of no known format, then a real one
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"\xff\xfe\x00garbage\n<999>not syslog at all\n\n")
        .unwrap();
    c.write_all(b"<30>Dec  3 12:00:00 host prog[1]: hello world\n")
        .unwrap();
    c.write_all(b"<30>Dec  3 12:00:01 host named[1]: client 10.0.0.9#1 (e.example): query: e.example IN A + (10.0.0.1)\n").unwrap();
    drop(c);
    // an octet count far over the limit, and a line far over it: each closes its connection
    // (the client waits for that close, so the count is there before we look)
    let mut big = vec![b'a'; 200 * 1024];
    big.push(b'\n');
    for payload in [b"999999999 <30>x".to_vec(), big] {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let _ = c.write_all(&payload);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let _ = std::io::Read::read(&mut c, &mut [0u8; 1]);
    }
    let evs = pull(&mut tcp, |o, r| {
        !o.is_empty() && r.stats().rejected.get("syslog.too_long") == Some(&2)
    });
    assert_eq!(evs.len(), 1, "{:?}", tcp.stats());
    assert_eq!(evs[0].qname.as_str(), "e.example");
    let st = tcp.stats();
    assert_eq!(st.rejected.get("syslog.unknown_format"), Some(&3), "{st:?}");
    tcp.shutdown_handle().shutdown();
}
