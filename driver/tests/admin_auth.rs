//! Who gets into the admin API: the bearer token on mutating requests (and on every request
//! off loopback), the refusal to start exposed without a token, the body size limit, the
//! token file's rules, and TLS with a CA made by rcgen. Router checks run in process
//! (`tower::ServiceExt::oneshot`); the TLS test serves on loopback.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flowgate_driver::admin::client::AdminClient;
use flowgate_driver::admin::{
    self, AdminAuth, AdminSecurity, AdminSetupError, AdminState, AdminToken, MAX_BODY,
};
use flowgate_driver::health::HealthBoard;
use flowgate_driver::ControlPlane;
use flowgate_host::CountersBoard;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "correct-horse-battery-staple";

fn state() -> Arc<AdminState> {
    let text = "maglev_m = 251\n[flow_table]\nsets = 16\nways = 4\n\
                [[vip]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nprotocol = \"tcp\"\n\
                [[vip.backend]]\naddress = \"198.51.100.1\"\nmac = \"02:00:00:00:00:01\"\n";
    let config = flowgate_driver::parse_str(text, "t.toml").unwrap();
    Arc::new(AdminState {
        control: Arc::new(ControlPlane::new(config, None)),
        health: Arc::new(HealthBoard::default()),
        counters: Arc::new(CountersBoard::default()),
        node: Default::default(),
    })
}

fn token() -> AdminToken {
    AdminToken::new(TOKEN.as_bytes()).unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:9090".parse().unwrap()
}

/// The status of `method path` with `authorization` through the guarded router.
async fn status_of(
    auth: &AdminAuth,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> StatusCode {
    let app = admin::guarded(admin::router(state()), auth.clone());
    let mut request = Request::builder().method(method).uri(path);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    app.oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap()
        .status()
}

const DRAIN: &str = "/backends/web/198.51.100.1/drain";

#[tokio::test]
async fn mutating_requests_without_the_token_get_401() {
    let auth = AdminAuth::new(loopback(), Some(token())).unwrap();
    let bearer = format!("Bearer {TOKEN}");
    for path in [
        DRAIN,
        "/backends/web/198.51.100.1/weight?value=3",
        "/reload",
        "/nope",
    ] {
        for authorization in [
            None,
            Some("Bearer wrong"),
            Some(TOKEN),
            Some("Basic Zm9vOmJhcg=="),
        ] {
            let got = status_of(&auth, "POST", path, authorization, vec![]).await;
            assert_eq!(
                got,
                StatusCode::UNAUTHORIZED,
                "POST {path} with {authorization:?}"
            );
        }
    }
    // A token that is a prefix of the real one, or the real one plus a byte, is wrong too.
    for wrong in [&TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}x")] {
        let a = format!("Bearer {wrong}");
        let got = status_of(&auth, "POST", DRAIN, Some(&a), vec![]).await;
        assert_eq!(got, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        status_of(&auth, "POST", DRAIN, Some(&bearer), vec![]).await,
        StatusCode::OK
    );
    // The scheme is case-insensitive.
    let lower = format!("bearer {TOKEN}");
    assert_eq!(
        status_of(&auth, "POST", DRAIN, Some(&lower), vec![]).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn loopback_reads_need_no_token() {
    let auth = AdminAuth::new(loopback(), Some(token())).unwrap();
    for path in ["/status", "/metrics"] {
        assert_eq!(
            status_of(&auth, "GET", path, None, vec![]).await,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn off_loopback_every_request_needs_the_token() {
    let exposed: SocketAddr = "192.0.2.1:9090".parse().unwrap();
    let auth = AdminAuth::new(exposed, Some(token())).unwrap();
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/status", "/metrics"] {
        assert_eq!(
            status_of(&auth, "GET", path, None, vec![]).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status_of(&auth, "GET", path, Some(&bearer), vec![]).await,
            StatusCode::OK
        );
    }
}

#[test]
fn exposed_address_without_a_token_is_refused() {
    for addr in ["0.0.0.0:9090", "192.0.2.1:9090", "[::]:9090"] {
        let err = AdminAuth::new(addr.parse().unwrap(), None).unwrap_err();
        assert!(
            matches!(err, AdminSetupError::ExposedWithoutToken { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(addr), "{err}");
    }
    for addr in ["127.0.0.1:9090", "[::1]:9090"] {
        assert!(AdminAuth::new(addr.parse().unwrap(), None).is_ok());
    }
}

#[tokio::test]
async fn oversize_body_is_refused() {
    let auth = AdminAuth::new(loopback(), Some(token())).unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let path = "/backends/web/198.51.100.1/weight";
    let mut big = br#"{"weight": 2, "pad": ""#.to_vec();
    big.resize(MAX_BODY + 1, b'x');
    big.extend(br#""}"#);
    assert_eq!(
        status_of(&auth, "POST", path, Some(&bearer), big).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let small = br#"{"weight": 2}"#.to_vec();
    assert_eq!(
        status_of(&auth, "POST", path, Some(&bearer), small).await,
        StatusCode::OK
    );
}

#[test]
fn token_file_is_trimmed_and_an_empty_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::write(&good, format!("{TOKEN}\n")).unwrap();
    assert_eq!(AdminToken::from_file(&good).unwrap().as_str(), TOKEN);
    for (name, text) in [("empty", "\n"), ("spaces", "two words\n")] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = AdminToken::from_file(&path).unwrap_err();
        assert!(
            matches!(err, AdminSetupError::TokenEmpty { .. }),
            "{name}: {err}"
        );
    }
    let err = AdminToken::from_file(&dir.path().join("missing")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    // The token never shows in debug output.
    assert!(!format!("{:?}", token()).contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_admin_api_answers_a_client_that_trusts_its_ca() {
    // A CA, and a server certificate for 127.0.0.1 signed by it.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "flowgate test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca_cert, &ca_key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        dir.path().join("ca.pem"),
        dir.path().join("admin.crt"),
        dir.path().join("admin.key"),
    );
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    std::fs::write(&cert_pem, server.pem()).unwrap();
    std::fs::write(&key_pem, server_key.serialize_pem()).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let security = AdminSecurity {
        auth: AdminAuth::new(addr, Some(token())).unwrap(),
        tls: Some(admin::tls_config(&cert_pem, &key_pem).unwrap()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(admin::serve_with(listener, state(), security, async move {
        let _ = stopped.await;
    }));

    let api = AdminClient::new(addr, Some(token()), Some(&ca_pem)).unwrap();
    let status = api.get("/status").await.unwrap();
    assert_eq!(status.status, 200, "{}", status.body);
    assert!(status.body.contains("\"web\""));
    let drained = api.post(DRAIN).await.unwrap();
    assert_eq!(drained.status, 200, "{}", drained.body);
    // Without the token over TLS: still 401.
    let anonymous = AdminClient::new(addr, None, Some(&ca_pem)).unwrap();
    assert_eq!(anonymous.post(DRAIN).await.unwrap().status, 401);
    // Plain HTTP to the TLS port gets no answer.
    assert!(AdminClient::new(addr, None, None)
        .unwrap()
        .get("/status")
        .await
        .is_err());
    // A client trusting another CA refuses the server's certificate.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_pem = dir.path().join("other.pem");
    std::fs::write(&other_pem, other.self_signed(&other_key).unwrap().pem()).unwrap();
    assert!(AdminClient::new(addr, None, Some(&other_pem))
        .unwrap()
        .get("/status")
        .await
        .is_err());

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn tls_files_that_do_not_fit_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let err = admin::tls_config(&cert, &key).unwrap_err();
    assert!(err.to_string().contains("c.pem"), "{err}");
}
