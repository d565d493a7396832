//! The admin API's requests, in process (the axum router behind its token check, driven by
//! `tower::ServiceExt::oneshot`): arbitrary method, path, `Authorization` header and body.
//! Input: one method byte, then the path, a newline, the header value, a newline, the body.
//!
//! Invariants: nothing panics; no request gets a 5xx; a mutating request without the
//! right token gets 401, and one that gets 2xx carried the token.
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request};
use flowgate_driver::admin::{self, AdminAuth, AdminState, AdminToken};
use flowgate_host::CountersBoard;
use flowgate_driver::health::HealthBoard;
use flowgate_driver::ControlPlane;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token-0123456789";

const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::HEAD,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn config() -> &'static flowgate_driver::Config {
    static CONFIG: OnceLock<flowgate_driver::Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = include_str!("../../examples/basic.toml")
            .replace("sets = 16384", "sets = 16")
            .replace("maglev_m = 65537", "maglev_m = 251");
        flowgate_driver::parse_str(&text, "basic.toml").expect("valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let path = parts.next().unwrap_or_default();
    let authorization = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let method = METHODS[m as usize % METHODS.len()].clone();
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let mut request = Request::builder().method(method.clone()).uri(path);
    if !authorization.is_empty() {
        request = request.header("authorization", authorization);
    }
    // What the router would never see: hyper refuses a bad URI or header value.
    let Ok(request) = request.body(Body::from(body)) else {
        return;
    };
    // A fresh state per input, so each input's outcome is its own.
    let state = Arc::new(AdminState {
        control: Arc::new(ControlPlane::new(config().clone(), None)),
        health: Arc::new(HealthBoard::default()),
        counters: Arc::new(CountersBoard::default()),
        node: Default::default(),
    });
    let token = AdminToken::new(TOKEN.as_bytes()).expect("valid token");
    let auth = AdminAuth::new("127.0.0.1:9090".parse().unwrap(), Some(token)).unwrap();
    let app = admin::guarded(admin::router(state), auth);
    let response = runtime()
        .block_on(app.oneshot(request))
        .expect("axum routers are infallible");
    let status = response.status();
    assert!(!status.is_server_error(), "{method} {path}: {status}");
    let mutating = method != Method::GET && method != Method::HEAD;
    let authorised = authorization.len() > 7
        && authorization[..7].eq_ignore_ascii_case(b"bearer ")
        && authorization[7..].trim_ascii() == TOKEN.as_bytes();
    if mutating && !authorised {
        assert_eq!(status, 401, "{method} {path} without the token");
    }
    if mutating && status.is_success() {
        assert!(authorised);
    }
});
