//! Routing, balancing, forwarding headers, backend hiding, error pages, h2c, HTTP/2 to
//! backends, WebSocket pass-through.

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_and_hides_the_backends() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = start(&plain(&pool(
        "web",
        "round-robin",
        "hide_headers = [\"x-backend-id\"]",
        &[&a, &b],
    )))
    .await;
    let c = client();
    let mut names = Vec::new();
    for _ in 0..4 {
        let r = c.get(p.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert!(h.get("server").is_none(), "Server leaked: {h:?}");
        assert!(
            h.get("x-powered-by").is_none(),
            "X-Powered-By leaked: {h:?}"
        );
        assert!(
            h.get("x-backend-id").is_none(),
            "hide_headers ignored: {h:?}"
        );
        assert_eq!(h["via"], "1.1 flowgate");
        names.push(r.text().await.unwrap());
    }
    assert_eq!(names, ["a", "b", "a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_added_and_hop_by_hop_ones_removed() {
    let a = Backend::start("a").await;
    let p = start(&plain(&pool("web", "random", "", &[&a]))).await;
    let r = client()
        .get(p.url("/echo"))
        .header("x-forwarded-for", "192.0.2.9")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = r.json().await.unwrap();
    let h = &echo["headers"];
    assert_eq!(h["x-forwarded-for"], "192.0.2.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(
        h["forwarded"],
        "for=127.0.0.1;proto=http;host=\"127.0.0.1\""
    );
    assert_eq!(h["via"], "1.1 flowgate");
    for gone in ["x-private", "keep-alive", "te"] {
        assert!(h.get(gone).is_none(), "{gone} reached the backend: {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_prefix_and_host_pick_the_pool() {
    let web = Backend::start("web").await;
    let api = Backend::start("api").await;
    let admin = Backend::start("admin-host").await;
    let config = format!(
        "admin = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[route]]\npath_prefix = \"/\"\npool = \"web\"\n\
         [[route]]\npath_prefix = \"/api/\"\npool = \"api\"\n\
         [[route]]\npath_prefix = \"/api/\"\nhost = \"admin.example\"\npool = \"admin\"\n\
         [[route]]\npath_prefix = \"/x\"\nhost = \"only.example\"\npool = \"api\"\n{}{}{}",
        pool("web", "round-robin", "", &[&web]),
        pool("api", "round-robin", "", &[&api]),
        pool("admin", "round-robin", "", &[&admin]),
    );
    let p = start(&config).await;
    let c = client();
    let host_get = |host: &'static str, path: &str| {
        let r = c.get(p.url(path)).header("host", host);
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get(&c, &p.url("/index.html")).await.1, "web");
    assert_eq!(get(&c, &p.url("/api/v1")).await.1, "api");
    assert_eq!(host_get("admin.example", "/api/v1").await.1, "admin-host");
    assert_eq!(
        host_get("ADMIN.example:8080", "/api/v1").await.1,
        "admin-host"
    );
    assert_eq!(host_get("admin.example", "/other").await.1, "web");
    assert_eq!(host_get("only.example", "/xyz").await.1, "api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_errors_are_replaced_by_the_proxys_page_where_the_route_says() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("5xx.html"), "<h1>We are on it</h1>").unwrap();
    let config = format!(
        "admin = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[route]]\npath_prefix = \"/\"\npool = \"web\"\nintercept_errors = true\n\
         [[route]]\npath_prefix = \"/\"\nhost = \"raw.example\"\npool = \"web\"\n\
         [[error_page]]\nstatus = [500, 502, 503]\nfile = \"5xx.html\"\n{}",
        pool("web", "round-robin", "max_fails = 0", &[&a])
    );
    let p = start_in(dir, &config).await;
    let c = client();
    let (status, body) = get(&c, &p.url("/status/502")).await;
    assert_eq!((status, body.as_str()), (502, "<h1>We are on it</h1>"));
    // 4xx pass, and a route without intercept_errors passes 5xx as they are.
    assert_eq!(
        get(&c, &p.url("/status/404")).await,
        (404, "backend a says 404".into())
    );
    let r = c
        .get(p.url("/status/500"))
        .header("host", "raw.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.text().await.unwrap(), "backend a says 500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_and_http2_to_backends() {
    let a = Backend::start("a").await;
    let p = start(&plain(&pool(
        "web",
        "round-robin",
        "protocol = \"h2\"",
        &[&a],
    )))
    .await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let r = c.get(p.url("/echo")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        echo["version"], "HTTP/2.0",
        "the backend was spoken to in h2"
    );
    assert_eq!(echo["headers"]["via"], "2 flowgate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_passes_through() {
    let a = Backend::start("a").await;
    let p = start(&plain(&pool("web", "round-robin", "", &[&a]))).await;
    let mut s = tokio::net::TcpStream::connect(p.proxy.listeners[0])
        .await
        .unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed during the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    s.write_all(b"ping through the tunnel").await.unwrap();
    let mut echo = [0u8; 23];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping through the tunnel");
}
