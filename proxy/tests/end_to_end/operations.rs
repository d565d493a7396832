//! Operations: reload under load with no failed request, bad reloads refused with
//! FILE:LINE:COL, graceful shutdown finishing in-flight requests, access log, metrics and
//! the admin API that `flowgate ctl` speaks to.

use crate::common::*;
use flowgate_driver::admin::client as admin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request_and_switches_new_requests() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = start(&plain(&pool("web", "round-robin", "", &[&a]))).await;
    let url = p.url("/");
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..3 {
        let (url, stop) = (url.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut failed) = (0u32, Vec::new());
            // Bounded: stops when told, or after 20 000 requests.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(format!("{e:?}")),
                }
            }
            (ok, failed)
        }));
    }
    eventually("load to reach a", || async {
        a.requests.load(Ordering::Relaxed) >= 20
    })
    .await;
    // Flip between a and b, then a bad config, then b for good.
    for (i, target) in [&b, &a, &b].into_iter().enumerate() {
        p.rewrite(&plain(&pool("web", "round-robin", "", &[target])));
        let answer = admin::post(p.proxy.admin, "/reload").await.unwrap();
        assert!(answer.is_success(), "reload {i}: {answer:?}");
        let seen = target.requests.load(Ordering::Relaxed);
        eventually("load to reach the new pool", || async {
            target.requests.load(Ordering::Relaxed) >= seen + 10
        })
        .await;
    }
    p.rewrite(&plain("[[pool]]\nname = \"web\"\nbalance = \"fastest\"\n"));
    let answer = admin::post(p.proxy.admin, "/reload").await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("proxy.toml:9:"), "{}", answer.body);
    let before = b.requests.load(Ordering::Relaxed);
    eventually("the old config to keep serving", || async {
        b.requests.load(Ordering::Relaxed) >= before + 10
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for l in load {
        let (ok, failed) = l.await.unwrap();
        assert_eq!(failed, Vec::<String>::new());
        total += ok;
    }
    assert!(total >= 60, "{total}");
    // New requests go to b only.
    let c = client();
    for _ in 0..4 {
        assert_eq!(get(&c, &url).await, (200, "b".to_string()));
    }
    let status: serde_json::Value =
        serde_json::from_str(&admin::get(p.proxy.admin, "/status").await.unwrap().body).unwrap();
    assert_eq!(status["version"], 4);
    let metrics = admin::get(p.proxy.admin, "/metrics").await.unwrap().body;
    assert!(
        metrics.contains("flowgate_proxy_reloads_total{result=\"refused\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowgate_proxy_reloads_total{result=\"ok\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_request_finishes_on_the_old_config_and_through_shutdown() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = start(&plain(&format!(
        "[timeouts]\nshutdown_ms = 20000\n{}",
        pool("web", "round-robin", "", &[&a])
    )))
    .await;
    let url = p.url("/gate");
    let slow = tokio::spawn(async move { client().get(&url).send().await.map(|r| r.status()) });
    eventually("the request to reach a", || async {
        a.requests.load(Ordering::Relaxed) == 1
    })
    .await;
    // A reload moves new requests to b; the one in flight stays with a.
    p.rewrite(&plain(&pool("web", "round-robin", "", &[&b])));
    p.proxy.reload().await.unwrap();
    assert_eq!(get(&client(), &p.url("/")).await.1, "b");
    // Shutdown waits for it.
    let Running { proxy, dir: _dir } = p;
    let shutdown = tokio::spawn(proxy.shutdown());
    a.gate.notify_waiters();
    assert_eq!(slow.await.unwrap().unwrap(), 200);
    assert_eq!(
        shutdown.await.unwrap(),
        0,
        "connections cut at the deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_json_line_per_request() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let p = start_in(
        dir,
        &plain(&format!(
            "[access_log]\npath = \"access.log\"\nformat = \"json\"\n{}",
            pool("web", "round-robin", "", &[&a])
        )),
    )
    .await;
    let c = client();
    for path in ["/one", "/two?x=1", "/status/404"] {
        c.get(p.url(path))
            .header("user-agent", "e2e")
            .send()
            .await
            .unwrap();
    }
    let mut lines = Vec::new();
    eventually("three log lines", || {
        lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        let n = lines.len();
        async move { n >= 3 }
    })
    .await;
    let entries: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1]["uri"], "/two?x=1");
    assert_eq!(entries[2]["status"], 404);
    assert_eq!(entries[0]["pool"], "web");
    assert_eq!(entries[0]["backend"], a.addr.to_string());
    assert_eq!(entries[0]["client"], "127.0.0.1");
    assert_eq!(entries[0]["user_agent"], "e2e");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_for_flowgate_ctl() {
    let a = Backend::start("a").await;
    let p = start(&plain(&pool("web", "p2c", "", &[&a]))).await;
    let c = client();
    for _ in 0..3 {
        get(&c, &p.url("/")).await;
    }
    let status = admin::get(p.proxy.admin, "/status").await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["pools"][0]["name"], "web");
    assert_eq!(
        status["pools"][0]["backends"][0]["address"],
        a.addr.to_string()
    );
    assert_eq!(status["pools"][0]["backends"][0]["usable"], true);
    let metrics = admin::get(p.proxy.admin, "/metrics").await.unwrap().body;
    let line = format!(
        "flowgate_proxy_requests_total{{pool=\"web\",backend=\"{}\",class=\"2xx\"}} 3",
        a.addr
    );
    assert!(metrics.contains(&line), "{metrics}");
    assert!(
        metrics.contains("flowgate_proxy_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowgate_proxy_active_connections"),
        "{metrics}"
    );
    let unknown = admin::post(p.proxy.admin, "/backends/web/127.0.0.1:1/drain")
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
}
