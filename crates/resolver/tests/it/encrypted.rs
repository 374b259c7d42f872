//! DoT and DoH with a generated certificate: dnsight as the listener, and dnsight as the client
//! (a second instance whose upstream is the first one's DoT or DoH listener).

use crate::*;
use dnsight_resolver::{tls, TlsFiles, UpstreamProto, UpstreamSpec};
use std::time::Duration;

fn cert(dir: &std::path::Path) -> TlsFiles {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = write(dir, "cert.pem", &ck.cert.pem());
    let key = write(dir, "key.pem", &ck.signing_key.serialize_pem());
    TlsFiles { cert, key }
}

#[test]
fn dot_and_doh_listeners_and_upstreams() {
    let Some(nsd) = start_nsd(None) else { return };
    let dir = tempfile::tempdir().unwrap();
    let files = cert(dir.path());
    let mut cfg = base_config(&[nsd.addr]);
    cfg.dot_listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.doh_listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.tls = Some(files.clone());
    let (front, events) = start(cfg);
    let dot = front.dot_addrs()[0];
    let doh = front.doh_addrs()[0];

    // a client over DoT and DoH (POST), trusting the generated certificate
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let q = build_query(0, &format!("www.{ZONE}"), 1, false);
    let dot_cfg = tls::client_config(Some(&files.cert), &[b"dot"]).unwrap();
    let dot_client = tls::TlsPool::new(dot, "localhost", dot_cfg).unwrap();
    let r = rt
        .block_on(dot_client.dot_exchange(&q))
        .expect("DoT answer");
    assert_eq!(addrs(&r), vec!["192.0.2.1"]);
    // the pooled connection is reused for a second query
    let r = rt
        .block_on(dot_client.dot_exchange(&build_query(1, &format!("x.ads.{ZONE}"), 1, false)))
        .unwrap();
    assert_eq!(addrs(&r), vec!["192.0.2.67"]);
    let doh_cfg = tls::client_config(Some(&files.cert), &[b"http/1.1"]).unwrap();
    let doh_client = tls::TlsPool::new(doh, "localhost", doh_cfg).unwrap();
    let r = rt
        .block_on(doh_client.doh_exchange("localhost", "/dns-query", &q))
        .expect("DoH answer");
    assert_eq!(addrs(&r), vec!["192.0.2.1"]);
    assert!(!doh_client.http2_live(), "offered only http/1.1");
    // a client offering h2 gets a multiplexed HTTP/2 connection (hyper on both sides)
    let h2_client = tls::TlsPool::new(
        doh,
        "localhost",
        tls::client_config(Some(&files.cert), &[b"h2", b"http/1.1"]).unwrap(),
    )
    .unwrap();
    let r = rt
        .block_on(h2_client.doh_exchange("localhost", "/dns-query", &q))
        .expect("DoH answer over HTTP/2");
    assert_eq!(addrs(&r), vec!["192.0.2.1"]);
    assert!(h2_client.http2_live());
    let r = rt
        .block_on(h2_client.doh_exchange("localhost", "/dns-query", &q))
        .expect("second answer on the same HTTP/2 connection");
    assert_eq!(addrs(&r), vec!["192.0.2.1"]);
    // wrong path: no answer (HTTP 404)
    assert!(rt
        .block_on(doh_client.doh_exchange("localhost", "/nope", &q))
        .is_none());
    // a client that does not trust the certificate gets nothing
    let untrusting = tls::TlsPool::new(
        dot,
        "localhost",
        tls::client_config(None, &[b"dot"]).unwrap(),
    )
    .unwrap();
    assert!(rt.block_on(untrusting.dot_exchange(&q)).is_none());

    let evs = events.wait(3);
    assert_eq!(evs[0].transport, dnsight_model::Transport::Dot);
    assert_eq!(evs[2].transport, dnsight_model::Transport::Doh);

    // dnsight as a DoT client, then as a DoH client, of the first instance
    for proto in [UpstreamProto::Dot, UpstreamProto::Doh] {
        let addr = if proto == UpstreamProto::Dot {
            dot
        } else {
            doh
        };
        let mut cfg = base_config(&[]);
        cfg.upstreams = vec![UpstreamSpec {
            addr,
            proto,
            tls_name: Some("localhost".into()),
            trusted: false,
            path: None,
        }];
        cfg.upstream_ca = Some(files.cert.clone());
        let (back, _ev) = start(cfg);
        let a = back.udp_addrs()[0];
        let r = udp_query(a, &format!("www.{ZONE}"), 28, false, Duration::from_secs(3)).unwrap();
        assert_eq!(addrs(&r), vec!["2001:db8::1"], "{proto:?}");
        let r = udp_query(a, &format!("nope.{ZONE}"), 1, false, Duration::from_secs(3)).unwrap();
        assert_eq!(rcode(&r), 3, "{proto:?}");
        assert_eq!(back.shutdown().upstream_failures, 0);
    }
    front.shutdown();
}

#[test]
fn tls_listener_without_certificate_is_an_error() {
    let mut cfg = base_config(&[]);
    cfg.dot_listen = vec!["127.0.0.1:0".parse().unwrap()];
    let err = dnsight_resolver::Resolver::start(cfg, Box::new(dnsight_resolver::NullSink))
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("certificate"), "{err}");
}

/// curl against the DoH listener: `(http_version, status, body)`.
fn curl(args: &[&str], out: &std::path::Path) -> (String, String, Vec<u8>) {
    let o = std::process::Command::new("curl")
        .args(["-s", "-o"])
        .arg(out)
        .args(["-w", "%{http_version} %{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let w = String::from_utf8_lossy(&o.stdout).to_string();
    let (v, c) = w.split_once(' ').unwrap_or(("", ""));
    (
        v.to_string(),
        c.to_string(),
        std::fs::read(out).unwrap_or_default(),
    )
}

#[test]
fn doh_speaks_http2_and_http1_to_real_clients() {
    if !which("dig") || !which("curl") {
        eprintln!("SKIP: dig or curl not installed");
        return;
    }
    let Some(nsd) = start_nsd(None) else { return };
    let dir = tempfile::tempdir().unwrap();
    let files = cert(dir.path());
    let mut cfg = base_config(&[nsd.addr]);
    cfg.doh_listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.tls = Some(files.clone());
    let (front, events) = start(cfg);
    let doh = front.doh_addrs()[0];

    // dig +https is an HTTP/2 client (nghttp2), POST by default, GET with +https-get
    for extra in ["+https", "+https-get"] {
        let out = std::process::Command::new("dig")
            .args(["@127.0.0.1", "-p", &doh.port().to_string(), extra])
            .args(["+short", "+time=3", "+tries=1", &format!("www.{ZONE}")])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "192.0.2.1",
            "dig {extra}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // curl, verifying the certificate, over HTTP/2 and HTTP/1.1, GET and POST
    let port = doh.port().to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/dns-query");
    let q = build_query(0, &format!("www.{ZONE}"), 1, false);
    let get = format!("{url}?dns={}", dnsight_resolver::tls::base64url_encode(&q));
    let qfile = write(dir.path(), "q.bin", "");
    std::fs::write(&qfile, &q).unwrap();
    let post = format!("@{}", qfile.display());
    let ca = files.cert.display().to_string();
    let body = dir.path().join("body.bin");
    let base = ["--cacert", &ca, "--resolve", &resolve];
    for (ver, method) in [
        ("--http2", "GET"),
        ("--http1.1", "GET"),
        ("--http2", "POST"),
        ("--http1.1", "POST"),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        args.push(ver);
        if method == "GET" {
            args.push(&get);
        } else {
            args.extend([
                "-H",
                "content-type: application/dns-message",
                "--data-binary",
                &post,
                &url,
            ]);
        }
        let (v, code, b) = curl(&args, &body);
        assert_eq!(code, "200", "{ver} {method}");
        assert_eq!(
            v,
            if ver == "--http2" { "2" } else { "1.1" },
            "{ver} {method}"
        );
        assert_eq!(addrs(&b), vec!["192.0.2.1"], "{ver} {method}");
    }
    // the errors RFC 8484 clients can get
    let (_, code, _) = curl(
        &[&base[..], &[&format!("https://localhost:{port}/nope")]].concat(),
        &body,
    );
    assert_eq!(code, "404");
    let (_, code, _) = curl(&[&base[..], &[&format!("{url}?dns=!!")]].concat(), &body);
    assert_eq!(code, "400");
    let (_, code, _) = curl(
        &[&base[..], &["--data-binary", &post, &url]].concat(),
        &body,
    );
    assert_eq!(code, "415");
    let big = write(dir.path(), "big.bin", &"x".repeat(70_000));
    let bigpost = format!("@{}", big.display());
    let (_, code, _) = curl(
        &[
            &base[..],
            &[
                "-H",
                "content-type: application/dns-message",
                "--data-binary",
                &bigpost,
                &url,
            ],
        ]
        .concat(),
        &body,
    );
    assert_eq!(code, "413");

    let evs = events.wait(6);
    assert!(evs.len() >= 6);
    assert!(evs
        .iter()
        .all(|e| e.transport == dnsight_model::Transport::Doh));
    front.shutdown();
}
