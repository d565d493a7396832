//! The admin API over real HTTP on loopback: status, drain / undrain / weight, reload of a
//! good and a bad config (the bad one refused with its line, the running state kept), and
//! the Prometheus exposition. Established flows are checked with the software engine.

mod common;

use common::{flows, DataPath};
use flowgate_driver::admin::{self, client, AdminState};
use flowgate_driver::health::HealthBoard;
use flowgate_driver::ControlPlane;
use flowgate_host::CountersBoard;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

fn config(backends: &[(&str, u32)]) -> String {
    let mut text = String::from(
        "maglev_m = 1021\n[flow_table]\nsets = 4096\nways = 4\n\
         [[vip]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nprotocol = \"tcp\"\n",
    );
    for (i, (address, weight)) in backends.iter().enumerate() {
        text += &format!(
            "[[vip.backend]]\naddress = \"{address}\"\nmac = \"02:00:00:00:00:{:02x}\"\nweight = {weight}\n",
            i + 1
        );
    }
    text
}

struct Admin {
    addr: SocketAddr,
    state: Arc<AdminState>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(path: &Path) -> Admin {
    let control = Arc::new(ControlPlane::from_file(path).unwrap());
    let state = Arc::new(AdminState {
        control,
        health: Arc::new(HealthBoard::default()),
        counters: Arc::new(CountersBoard::default()),
        node: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(admin::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Admin {
        addr,
        state,
        _stop: stop,
    }
}

async fn json(admin: SocketAddr, path: &str) -> Value {
    let a = client::get(admin, path).await.unwrap();
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    serde_json::from_str(&a.body).unwrap()
}

async fn post(admin: SocketAddr, path: &str) -> (u16, Value) {
    let a = client::post(admin, path).await.unwrap();
    (a.status, serde_json::from_str(&a.body).unwrap())
}

fn backend<'a>(status: &'a Value, address: &str) -> &'a Value {
    status["vips"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == address)
        .unwrap_or_else(|| panic!("no backend {address} in {status}"))
}

fn path(address: &str, op: &str) -> String {
    client::backend_path("web", address.parse::<IpAddr>().unwrap(), op)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_drain_weight_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flowgate.toml");
    std::fs::write(
        &file,
        config(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]),
    )
    .unwrap();
    let admin = start(&file).await;
    let a = admin.addr;

    let status = json(a, "/status").await;
    assert_eq!(status["vips"][0]["name"], "web");
    assert_eq!(status["vips"][0]["backends"].as_array().unwrap().len(), 3);
    for b in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        let b = backend(&status, b);
        assert_eq!(
            (b["up"].as_bool(), b["weight"].as_u64()),
            (Some(true), Some(1))
        );
        assert!(b["slots"].as_u64().unwrap() > 300);
    }

    // Established flows, then drain 10.0.0.2: its flows stay, it gets no new ones.
    let mut dp = DataPath::new(admin.state.control.watch(), 1);
    let established = flows(2000, 1);
    dp.backends(&established, true);
    let before = dp.backends(&established, false);
    let (code, body) = post(a, &path("10.0.0.2", "drain")).await;
    assert_eq!(code, 200, "{body}");
    let status = json(a, "/status").await;
    let b = backend(&status, "10.0.0.2");
    assert_eq!(
        (
            b["drained"].as_bool(),
            b["weight"].as_u64(),
            b["slots"].as_u64()
        ),
        (Some(true), Some(0), Some(0))
    );
    assert_eq!(
        dp.backends(&established, false),
        before,
        "drain moved an established flow"
    );
    assert!(dp.backends(&flows(2000, 2), true).iter().all(|&b| b != 1));

    // Undrain, then weights by query and by JSON body.
    assert_eq!(post(a, &path("10.0.0.2", "undrain")).await.0, 200);
    assert_eq!(
        post(a, &format!("{}?value=3", path("10.0.0.3", "weight")))
            .await
            .0,
        200
    );
    let status = json(a, "/status").await;
    assert_eq!(backend(&status, "10.0.0.2")["drained"], false);
    assert_eq!(backend(&status, "10.0.0.3")["weight"], 3);
    assert!(backend(&status, "10.0.0.3")["slots"].as_u64().unwrap() > 550);
    let body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{a}{}", path("10.0.0.1", "weight")))
        .json(&serde_json::json!({ "weight": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(backend(&json(a, "/status").await, "10.0.0.1")["weight"], 2);
    assert_eq!(
        dp.backends(&established, false),
        before,
        "re-weighting moved a flow"
    );

    // Bad requests.
    let (code, body) = post(a, &format!("{}?value=70000", path("10.0.0.1", "weight"))).await;
    assert_eq!(code, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("above the maximum"),
        "{body}"
    );
    assert_eq!(post(a, &path("10.9.9.9", "drain")).await.0, 404);
    assert_eq!(post(a, "/backends/web/not-an-ip/drain").await.0, 400);
    assert_eq!(
        post(a, &path("10.0.0.1", "weight")).await.0,
        400,
        "no weight given"
    );

    // Metrics from the data path's counters; /status says which table version they were
    // counted under (0: nothing published yet).
    assert_eq!(json(a, "/status").await["applied_version"], 0);
    dp.sync();
    let running = dp.seen();
    admin.state.counters.publish(dp.engine.counters(), running);
    let status = json(a, "/status").await;
    assert_eq!(status["applied_version"], running);
    assert_eq!(
        status["version"], running,
        "the data path took every version"
    );
    let m = client::get(a, "/metrics").await.unwrap();
    assert_eq!(m.status, 200);
    let c = dp.engine.counters();
    let line = |name: &str| {
        m.body
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{}", m.body))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert_eq!(
        line("flowgate_vip_packets_total{vip=\"web\"}"),
        c.vips[0].packets as f64
    );
    assert_eq!(
        line("flowgate_backend_packets_total{vip=\"web\",backend=\"10.0.0.2\"}"),
        c.backends[1].packets as f64
    );
    assert_eq!(
        line("flowgate_backend_up{vip=\"web\",backend=\"10.0.0.1\"}"),
        1.0
    );
    assert_eq!(
        line("flowgate_backend_weight{vip=\"web\",backend=\"10.0.0.3\"}"),
        3.0
    );
    assert_eq!(
        line("flowgate_flow_table_events_total{event=\"hit\"}"),
        c.flow.hits as f64
    );
    assert_eq!(
        line("flowgate_flow_table_events_total{event=\"miss\"}"),
        c.flow.misses as f64
    );
    assert_eq!(
        line("flowgate_drops_total{reason=\"no_healthy_backend\"}"),
        0.0
    );
    assert_eq!(
        line("flowgate_frames_total{outcome=\"in\"}"),
        c.frames_in as f64
    );
    assert!(m
        .body
        .contains("# TYPE flowgate_health_check_duration_seconds histogram"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_good_config_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flowgate.toml");
    std::fs::write(
        &file,
        config(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]),
    )
    .unwrap();
    let admin = start(&file).await;
    let a = admin.addr;
    let mut dp = DataPath::new(admin.state.control.watch(), 2);
    let established = flows(3000, 1);
    dp.backends(&established, true);
    let before = dp.backends(&established, false);

    // Remove .3, add .4, re-weight .1.
    std::fs::write(
        &file,
        config(&[("10.0.0.1", 3), ("10.0.0.2", 1), ("10.0.0.4", 1)]),
    )
    .unwrap();
    let (code, body) = post(a, "/reload").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["removed"], serde_json::json!(["web/10.0.0.3"]));
    assert_eq!(body["added"], serde_json::json!(["web/10.0.0.4"]));
    let status = json(a, "/status").await;
    let indices: Vec<u64> = status["vips"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        indices,
        [0, 1, 3],
        "survivors keep their indices, the new one is appended"
    );
    let after = dp.backends(&established, false);
    let mut moved = 0;
    for ((f, &b0), &b1) in established.iter().zip(&before).zip(&after) {
        if b0 == 2 {
            moved += 1;
            assert!(b1 != 2, "flow {f:?} still on the removed backend");
        } else {
            assert_eq!(b1, b0, "flow {f:?} of a surviving backend moved");
        }
    }
    assert!(moved > 500);

    // A bad config: refused with its place and reason, and nothing changes.
    let version = status["version"].clone();
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, good.replace("weight = 3", "weight = 3\nwieght = 1")).unwrap();
    let (code, body) = post(a, "/reload").await;
    assert_eq!(code, 400);
    let error = body["error"].as_str().unwrap();
    let expected = format!("{}:", file.display());
    assert!(error.starts_with(&expected), "{error}");
    assert!(error.contains("unknown field `wieght`"), "{error}");
    let line: usize = error[expected.len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        good.replace("weight = 3", "weight = 3\nwieght = 1")
            .lines()
            .nth(line - 1),
        Some("wieght = 1"),
        "{error}"
    );
    let status = json(a, "/status").await;
    assert_eq!(status["version"], version);
    assert_eq!(backend(&status, "10.0.0.1")["weight"], 3);
    assert!(!dp.sync(), "no new tables after a refused reload");
    assert_eq!(dp.backends(&established, false), after);
}
