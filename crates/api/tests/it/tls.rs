//! HTTPS with a certificate made here (rcgen), checked by a rustls client that trusts only it.

use super::*;
use std::sync::Arc;

#[test]
fn https_serves_the_api_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let fx = fixture_with(|c| c.tls = Some((cert.clone(), key.clone())));
    assert!(fx.url.starts_with("https://"), "{}", fx.url);
    let port = fx.api.as_ref().unwrap().addr().port();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let agent = ureq::AgentBuilder::new().tls_config(Arc::new(cfg)).build();
    let r = agent
        .get(&format!("https://localhost:{port}/api/v1/alerts"))
        .set("Authorization", &format!("Bearer {}", fx.viewer))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(v["total"], 0);
    // plain HTTP to the TLS port gets no answer
    let plain = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
        .get(&format!("http://127.0.0.1:{port}/api/v1/health"))
        .call();
    assert!(plain.is_err());

    // a key that does not fit the certificate is refused at start
    let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
    let key2 = dir.path().join("key2.pem");
    std::fs::write(&key2, other.signing_key.serialize_pem()).unwrap();
    let h = fx.run.as_ref().unwrap().handle();
    let mut c = ApiConfig::new("127.0.0.1:0".parse().unwrap());
    c.tls = Some((cert, key2));
    let e = dnsight_api::start(c, h, fx.dir.clone())
        .err()
        .expect("mismatched key");
    assert!(e.to_string().contains("TLS"), "{e}");
}
