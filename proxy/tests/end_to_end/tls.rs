//! TLS termination with a CA made in the test: ALPN h2 and http/1.1, SNI certificate
//! choice, TLS 1.2 and 1.3, forwarding headers saying https, and certificates reloaded.

use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "flowgate test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// A leaf for `name`, written as NAME.pem / NAME.key into `dir`; returns its DER.
    fn leaf(&self, dir: &std::path::Path, name: &str) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    fn client(&self, proxy: std::net::SocketAddr) -> reqwest::ClientBuilder {
        let root = reqwest::Certificate::from_pem(self.cert.pem().as_bytes()).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .timeout(PATIENCE)
            .add_root_certificate(root)
            .tls_built_in_root_certs(false)
            .tls_info(true)
            .resolve("a.example", proxy)
            .resolve("b.example", proxy)
            .resolve("unknown.example", proxy)
    }
}

fn tls_config(backend: &Backend) -> String {
    format!(
        "admin = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         tls = {{ cert = \"a.example.pem\", key = \"a.example.key\", sni = [{{ name = \"b.example\", cert = \"b.example.pem\", key = \"b.example.key\" }}] }}\n\
         [[route]]\npath_prefix = \"/\"\npool = \"web\"\n{}",
        pool("web", "round-robin", "", &[backend])
    )
}

fn peer_cert(r: &reqwest::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_http1_and_sni_pick_protocol_and_certificate() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let a_der = ca.leaf(dir.path(), "a.example");
    let b_der = ca.leaf(dir.path(), "b.example");
    let backend = Backend::start("a").await;
    let p = start_in(dir, &tls_config(&backend)).await;
    let port = p.proxy.listeners[0].port();
    let proxy = p.proxy.listeners[0];

    // h2 by ALPN, default certificate.
    let h2 = ca.client(proxy).build().unwrap();
    let r = h2
        .get(format!("https://a.example:{port}/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(peer_cert(&r), a_der);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    assert_eq!(echo["headers"]["via"], "2 flowgate");

    // http/1.1 by ALPN; SNI b.example gets b's certificate.
    let h1 = ca.client(proxy).http1_only().build().unwrap();
    let r = h1
        .get(format!("https://b.example:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(peer_cert(&r), b_der);
    assert_eq!(r.text().await.unwrap(), "a");

    // TLS 1.2 and 1.3 both work.
    for (min, max) in [
        (
            reqwest::tls::Version::TLS_1_2,
            reqwest::tls::Version::TLS_1_2,
        ),
        (
            reqwest::tls::Version::TLS_1_3,
            reqwest::tls::Version::TLS_1_3,
        ),
    ] {
        let c = ca
            .client(proxy)
            .min_tls_version(min)
            .max_tls_version(max)
            .build()
            .unwrap();
        let r = c
            .get(format!("https://a.example:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{min:?}");
    }

    // An unknown name gets the default certificate, which the client rejects for it.
    let e = h1
        .get(format!("https://unknown.example:{port}/"))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    let metrics = flowgate_driver::admin::client::get(p.proxy.admin, "/metrics")
        .await
        .unwrap();
    assert!(
        metrics
            .body
            .contains("flowgate_proxy_tls_handshakes_total{result=\"ok\",alpn=\"h2\"}"),
        "{}",
        metrics.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_with_the_config() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf(dir.path(), "a.example");
    ca.leaf(dir.path(), "b.example");
    let backend = Backend::start("a").await;
    let p = start_in(dir, &tls_config(&backend)).await;
    let port = p.proxy.listeners[0].port();
    let c = ca.client(p.proxy.listeners[0]).build().unwrap();
    let r = c
        .get(format!("https://a.example:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_cert(&r), first);

    // A new certificate in place, then a reload: new connections get it.
    let second = ca.leaf(p.dir.path(), "a.example");
    assert_ne!(first, second);
    p.proxy.reload().await.unwrap();
    let fresh = ca.client(p.proxy.listeners[0]).build().unwrap();
    let r = fresh
        .get(format!("https://a.example:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_cert(&r), second);

    // A broken key is refused with its place in the config; the running certificate stays.
    std::fs::write(p.dir.path().join("a.example.key"), "not a key").unwrap();
    let e = p.proxy.reload().await.unwrap_err().to_string();
    assert!(e.contains("proxy.toml:4:") && e.contains("tls.key"), "{e}");
    let again = ca.client(p.proxy.listeners[0]).build().unwrap();
    let r = again
        .get(format!("https://a.example:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_cert(&r), second);
}
