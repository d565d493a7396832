//! Health checks against real servers on loopback, with the software engine following the
//! control plane: a killed backend goes down within about interval × fall, its flows (new
//! and established) move to their slots' secondaries while every other flow stays exactly
//! where it was, and it comes back after `rise` good checks.

mod common;

use common::{flow_hash, flows, wait_until_async, DataPath, TcpServer};
use flowgate_driver::config::parse_str;
use flowgate_driver::health::{self, HealthBoard};
use flowgate_driver::{BackendKey, ControlPlane};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INTERVAL_MS: u64 = 100;
const TIMEOUT_MS: u64 = 80;
const RISE: u64 = 2;
const FALL: u64 = 3;
/// Scheduling slack on a shared 2-core machine: bounds are loose, never tight.
const SLACK: Duration = Duration::from_millis(1500);
/// Timer jitter allowed below a lower bound.
const EARLY: Duration = Duration::from_millis(30);

fn config(health: &str, backends: &[(Ipv4Addr, u16)]) -> String {
    let mut text = format!(
        "maglev_m = 1021\n[flow_table]\nsets = 4096\nways = 4\n\
         [[vip]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nprotocol = \"tcp\"\n\
         [vip.health]\n{health}\ninterval_ms = {INTERVAL_MS}\ntimeout_ms = {TIMEOUT_MS}\n\
         rise = {RISE}\nfall = {FALL}\n"
    );
    for (i, (ip, port)) in backends.iter().enumerate() {
        text += &format!(
            "[[vip.backend]]\naddress = \"{ip}\"\nmac = \"02:00:00:00:00:{:02x}\"\nhealth_port = {port}\n",
            i + 1
        );
    }
    text
}

fn key(ip: Ipv4Addr) -> BackendKey {
    BackendKey {
        vip: "web".into(),
        address: IpAddr::V4(ip),
    }
}

/// Runs the checker until the returned sender is dropped or sent to.
fn start_checker(
    control: &Arc<ControlPlane>,
    board: &Arc<HealthBoard>,
) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(health::run(control.clone(), board.clone(), async move {
        let _ = stopped.await;
    }));
    stop
}

async fn wait_up(control: &ControlPlane, index: u16, up: bool, limit: Duration) -> Duration {
    wait_until_async(limit, || async {
        control.tables().backends[index as usize].up == up
    })
    .await
    .unwrap_or_else(|| panic!("backend {index} did not become up={up} within {limit:?}"))
}

/// Waits for the second publish of a health verdict: `set_up` publishes the flipped `up`
/// bit first (flows move to their slots' secondaries at once) and the rebuilt Maglev table
/// after it, so a reader that saw the bit may still see the old table.
async fn wait_rebuilt(control: &ControlPlane, index: u16, up: bool, limit: Duration) {
    wait_until_async(limit, || async {
        let has = control.tables().vips[0]
            .maglev
            .slots()
            .iter()
            .any(|s| s.primary == index);
        has == up
    })
    .await
    .unwrap_or_else(|| panic!("VIP 0's Maglev table was not rebuilt around backend {index} (up={up}) within {limit:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_failover_moves_only_the_failed_backends_flows() {
    let ips = [
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    ];
    let mut servers = Vec::new();
    for ip in ips {
        servers.push(TcpServer::start(ip, 0).await);
    }
    let backends: Vec<_> = ips
        .iter()
        .zip(&servers)
        .map(|(&ip, s)| (ip, s.addr.port()))
        .collect();
    let text = config("kind = \"tcp\"", &backends);
    let control = Arc::new(ControlPlane::new(
        parse_str(&text, "test.toml").unwrap(),
        None,
    ));
    let board = Arc::new(HealthBoard::default());
    let _stop = start_checker(&control, &board);

    // Every backend checked and up.
    wait_until_async(Duration::from_secs(5), || async {
        ips.iter()
            .all(|&ip| board.get(&key(ip)).is_some_and(|h| h.up && h.checks >= 1))
    })
    .await
    .expect("first checks");
    let failed = control.index_of(&key(ips[1])).unwrap();
    let original = control.tables();

    let mut dp = DataPath::new(control.watch(), 2);
    let established = flows(3000, 1);
    dp.backends(&established, true);
    let before = dp.backends(&established, false);
    for b in 0..3 {
        assert!(
            before.iter().filter(|&&x| x == b).count() > 500,
            "backend {b} has flows"
        );
    }

    // Kill one backend: it must go down after `fall` failed checks, not before.
    servers[1].kill().await;
    let killed = Instant::now();
    let down_after = wait_up(&control, failed, false, Duration::from_secs(10)).await;
    let lower = Duration::from_millis(INTERVAL_MS * (FALL - 1)) - EARLY;
    let upper = Duration::from_millis(INTERVAL_MS * FALL + TIMEOUT_MS) + SLACK;
    assert!(
        down_after >= lower && down_after <= upper,
        "down after {down_after:?}, expected {lower:?}..{upper:?}"
    );
    eprintln!("failover: backend down {down_after:?} after its server was killed (interval {INTERVAL_MS} ms x fall {FALL})");

    let after = dp.backends(&established, false);
    let rebuilt = control.tables();
    let maglev = &original.vips[0].maglev;
    let mut to_secondary = 0;
    let mut moved = 0;
    for ((flow, &b0), &b1) in established.iter().zip(&before).zip(&after) {
        if b0 != failed {
            assert_eq!(b1, b0, "flow {flow:?} of a healthy backend moved");
            continue;
        }
        moved += 1;
        assert_ne!(b1, failed, "flow {flow:?} still on the failed backend");
        let hash = flow_hash(&original, *flow);
        let slot = maglev.slot(hash);
        // Re-selected under the tables of the moment: the slot's secondary at once, or the
        // rebuilt table's primary (which is that secondary unless its quota was full).
        let new_primary = rebuilt.vips[0].maglev.slot(hash).primary;
        assert!(
            b1 == slot.secondary || b1 == new_primary,
            "flow {flow:?}: went to {b1}, secondary {}, rebuilt primary {new_primary}",
            slot.secondary
        );
        to_secondary += usize::from(b1 == slot.secondary);
    }
    assert!(moved > 500);
    eprintln!("failover: {moved} established flows moved, {to_secondary} to their original slot's secondary");
    assert!(
        to_secondary * 10 >= moved * 8,
        "{to_secondary} of {moved} to the secondary"
    );

    // New flows: none to the failed backend; those whose slot it did not own land exactly
    // where the original table put them.
    let fresh = flows(3000, 2);
    let placed = dp.backends(&fresh, true);
    for (flow, &b) in fresh.iter().zip(&placed) {
        assert_ne!(b, failed);
        let slot = maglev.slot(flow_hash(&original, *flow));
        if slot.primary != failed {
            assert_eq!(b, slot.primary, "new flow {flow:?} of a healthy slot moved");
        }
    }
    let health = board.get(&key(ips[1])).unwrap();
    assert!(!health.up && health.last_ok == Some(false) && health.failures >= FALL);
    assert!(
        health.last_error.as_deref().unwrap().contains("connect"),
        "{health:?}"
    );

    // Back up after `rise` good checks.
    let port = servers[1].addr.port();
    servers[1] = TcpServer::start(ips[1], port).await;
    let up_after = wait_up(&control, failed, true, Duration::from_secs(10)).await;
    let lower = Duration::from_millis(INTERVAL_MS * (RISE - 1)) - EARLY;
    let upper = Duration::from_millis(INTERVAL_MS * RISE + TIMEOUT_MS) + SLACK;
    assert!(
        up_after >= lower && up_after <= upper,
        "up after {up_after:?}, expected {lower:?}..{upper:?}"
    );
    eprintln!("recovery: backend up {up_after:?} after its server restarted (rise {RISE}); {:?} since the kill", killed.elapsed());

    // Established flows stay where they are (the moved ones on their new backends); new
    // flows reach the recovered backend again.
    assert_eq!(dp.backends(&established, false), after);
    let newest = flows(3000, 3);
    let placed = dp.backends(&newest, true);
    let share = placed.iter().filter(|&&b| b == failed).count();
    assert!(
        share > 600,
        "recovered backend got {share} of 3000 new flows"
    );
    let status = control.status();
    assert!(
        status[0].backends.iter().all(|b| b.up && b.slots > 250),
        "{status:?}"
    );
}

/// A minimal HTTP backend whose answer to `GET /healthz` is set by the test.
async fn http_backend(ip: Ipv4Addr, status: Arc<AtomicU16>) -> (u16, tokio::task::JoinHandle<()>) {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let status = status.clone();
            async move { StatusCode::from_u16(status.load(Ordering::Relaxed)).unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_follows_the_expected_status() {
    let ips = [Ipv4Addr::new(127, 0, 0, 5), Ipv4Addr::new(127, 0, 0, 6)];
    let statuses = [Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(200))];
    let mut backends = Vec::new();
    let mut tasks = Vec::new();
    for (ip, status) in ips.iter().zip(&statuses) {
        let (port, task) = http_backend(*ip, status.clone()).await;
        backends.push((*ip, port));
        tasks.push(task);
    }
    let text = config(
        "kind = \"http\"\npath = \"/healthz\"\nexpect_status = 200",
        &backends,
    );
    let control = Arc::new(ControlPlane::new(
        parse_str(&text, "test.toml").unwrap(),
        None,
    ));
    let board = Arc::new(HealthBoard::default());
    let _stop = start_checker(&control, &board);
    wait_until_async(Duration::from_secs(5), || async {
        ips.iter().all(|&ip| {
            board
                .get(&key(ip))
                .is_some_and(|h| h.checks >= 2 && h.last_ok == Some(true))
        })
    })
    .await
    .expect("first checks pass");
    let b0 = control.index_of(&key(ips[0])).unwrap();
    let b1 = control.index_of(&key(ips[1])).unwrap();

    // A 503 is a failure: down after `fall` of them. The server still answers, so this is
    // the status check, not the connection.
    statuses[0].store(503, Ordering::Relaxed);
    let down_after = wait_up(&control, b0, false, Duration::from_secs(10)).await;
    assert!(down_after <= Duration::from_millis(INTERVAL_MS * FALL + TIMEOUT_MS) + SLACK);
    eprintln!("http: down {down_after:?} after the status became 503");
    let h = board.get(&key(ips[0])).unwrap();
    assert!(
        h.last_error
            .as_deref()
            .unwrap()
            .contains("status 503, expected 200"),
        "{h:?}"
    );
    assert!(
        control.tables().backends[b1 as usize].up,
        "the other backend stays up"
    );
    // The whole VIP's new flows now go to the other backend.
    wait_rebuilt(&control, b0, false, Duration::from_secs(10)).await;
    assert!(control.tables().vips[0]
        .maglev
        .slots()
        .iter()
        .all(|s| s.primary == b1));

    statuses[0].store(200, Ordering::Relaxed);
    let up_after = wait_up(&control, b0, true, Duration::from_secs(10)).await;
    assert!(up_after <= Duration::from_millis(INTERVAL_MS * RISE + TIMEOUT_MS) + SLACK);
    eprintln!("http: up {up_after:?} after the status became 200");
    wait_rebuilt(&control, b0, true, Duration::from_secs(10)).await;
    let share: HashMap<u16, usize> =
        control.tables().vips[0]
            .maglev
            .slots()
            .iter()
            .fold(HashMap::new(), |mut m, s| {
                *m.entry(s.primary).or_default() += 1;
                m
            });
    assert!(share[&b0] > 400 && share[&b1] > 400, "{share:?}");

    // A server that is gone is a failure too (connection refused).
    tasks.remove(0).abort();
    wait_up(&control, b0, false, Duration::from_secs(10)).await;
    for t in tasks {
        t.abort();
    }
}
