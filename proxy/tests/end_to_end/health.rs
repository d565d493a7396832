//! Health: failover with no client error when a backend dies mid-run, the shared active
//! checker, passive ejection, and 503 with Retry-After when nothing is up.

use crate::common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_dying_mid_run_costs_no_idempotent_request() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c3 = Backend::start("c").await;
    let p = start(&plain(&pool(
        "web",
        "least-requests",
        "[pool.health]\nkind = \"tcp\"\ninterval_ms = 100\nfall = 2\nrise = 1",
        &[&a, &b, &c3],
    )))
    .await;
    let url = p.url("/");
    let done = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    // 4 clients × 150 requests, keep-alive, while backend b is killed partway.
    for _ in 0..4 {
        let url = url.clone();
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let c = client();
            let mut failures = Vec::new();
            for _ in 0..150 {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(format!("{e:?}")),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    eventually("b to have served 30 requests", || async {
        b.requests.load(Ordering::Relaxed) >= 30
    })
    .await;
    b.kill().await;
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "client errors during failover"
    );
    assert_eq!(done.load(Ordering::Relaxed), 600);
    // The checker saw it go.
    eventually("b marked down", || async {
        let s = flowgate_driver::admin::client::get(p.proxy.admin, "/status")
            .await
            .unwrap();
        let s: serde_json::Value = serde_json::from_str(&s.body).unwrap();
        s["pools"][0]["backends"][1]["health_up"] == false
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_http_check_takes_a_failing_backend_out_and_back() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = start(&plain(&pool(
        "web",
        "round-robin",
        "[pool.health]\nkind = \"http\"\npath = \"/health\"\ninterval_ms = 50\nfall = 2\nrise = 2",
        &[&a, &b],
    )))
    .await;
    let c = client();
    let status = || async {
        let s = flowgate_driver::admin::client::get(p.proxy.admin, "/status")
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&s.body).unwrap()
    };
    a.healthy.store(false, Ordering::Relaxed);
    eventually("a down", || async {
        status().await["pools"][0]["backends"][0]["health_up"] == false
    })
    .await;
    for _ in 0..6 {
        assert_eq!(get(&c, &p.url("/")).await, (200, "b".to_string()));
    }
    a.healthy.store(true, Ordering::Relaxed);
    eventually("a up", || async {
        status().await["pools"][0]["backends"][0]["health_up"] == true
    })
    .await;
    let names: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(get(&c, &p.url("/")).await.1);
        }
        v
    };
    assert!(names.contains(&"a".to_string()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_ejection_then_503_with_retry_after() {
    let a = Backend::start("a").await;
    let p = start(&plain(&pool(
        "web",
        "round-robin",
        "max_fails = 2\neject_ms = 30000",
        &[&a],
    )))
    .await;
    let c = client();
    // 5xx answers count as failures: two eject the backend.
    assert_eq!(get(&c, &p.url("/status/500")).await.0, 500);
    assert_eq!(get(&c, &p.url("/status/500")).await.0, 500);
    let r = c.get(p.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=31).contains(&retry), "{retry}");
    let metrics = flowgate_driver::admin::client::get(p.proxy.admin, "/metrics")
        .await
        .unwrap();
    assert!(
        metrics
            .body
            .contains("flowgate_proxy_ejections_total{pool=\"web\""),
        "{}",
        metrics.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_request_is_not_retried() {
    let a = Backend::start("a").await;
    let dead = Backend::start("dead").await;
    dead.kill().await;
    let p = start(&plain(&pool(
        "web",
        "round-robin",
        "max_fails = 0",
        &[&dead, &a],
    )))
    .await;
    let c = client();
    // Round robin starts with `dead`: the POST to it fails with 502 and is not retried;
    // of the two GETs after it, the one that meets `dead` is retried on a.
    let r = c.post(p.url("/")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(get(&c, &p.url("/")).await, (200, "a".to_string()));
    assert_eq!(get(&c, &p.url("/")).await, (200, "a".to_string()));
}
