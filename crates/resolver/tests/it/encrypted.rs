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
