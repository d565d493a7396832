//! Idle plain HTTP/1 connections parked outside hyper (`timeouts.park_ms`), in the
//! proxy's parking lot: a parked connection serves its next requests (pipelined ones
//! included) with nothing lost or added, under the config current when they come, still
//! closes at the idle timeout, still counts against the connection limits, is let go when
//! its client closes it, and closes at once on shutdown; one waking leaves the others
//! parked.

use crate::common::*;
use flowgate_driver::admin::client as admin;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One of the proxy's gauges (`flowgate_proxy_NAME`).
async fn gauge(admin_addr: SocketAddr, name: &str) -> u64 {
    let metrics = admin::get(admin_addr, "/metrics").await.unwrap().body;
    let prefix = format!("flowgate_proxy_{name} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} gauge in\n{metrics}"))
}

async fn wait_gauge(admin_addr: SocketAddr, name: &str, n: u64) {
    eventually(&format!("{name} = {n}"), || async move {
        gauge(admin_addr, name).await == n
    })
    .await;
}

async fn wait_parked(admin_addr: SocketAddr, n: u64) {
    wait_gauge(admin_addr, "parked_connections", n).await;
}

/// Send one request on `s` and read its answer.
async fn exchange(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut carry = Vec::new();
    let answer = read_response(s, &mut carry).await;
    assert!(carry.is_empty(), "{carry:?}");
    answer
}

/// Read one response (head and a `Content-Length` body) from `stream`, bounded; `carry`
/// holds bytes read past it (the next response's start).
async fn read_response(stream: &mut TcpStream, carry: &mut Vec<u8>) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&carry[..end + 4]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a response with a Content-Length");
            if carry.len() >= end + 4 + length {
                let whole: Vec<u8> = carry.drain(..end + 4 + length).collect();
                return String::from_utf8_lossy(&whole).into_owned();
            }
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("no whole response in time")
            .unwrap();
        assert!(n > 0, "connection closed mid-response: {carry:?}");
        carry.extend_from_slice(&buf[..n]);
    }
}

fn config(timeouts: &str, limits: &str, a: &Backend) -> String {
    plain(&format!(
        "[timeouts]\n{timeouts}\n[limits]\n{limits}\n{}",
        pool("web", "round-robin", "", &[a])
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_serves_its_next_requests_then_closes_when_idle() {
    let a = Backend::start("a").await;
    let idle = Duration::from_millis(1500);
    let p = start(&config(
        &format!("park_ms = 20\nidle_ms = {}", idle.as_millis()),
        "",
        &a,
    ))
    .await;
    let mut s = TcpStream::connect(p.proxy.listeners[0]).await.unwrap();
    let mut carry = Vec::new();
    s.write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut s, &mut carry).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Leaving hyper adds no `Connection: close` to the answer already out.
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    wait_parked(p.proxy.admin, 1).await;
    // Two requests in one write: both answered, in order, on the same connection.
    s.write_all(
        b"GET /two HTTP/1.1\r\nHost: x\r\n\r\nPOST /three HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let answer = read_response(&mut s, &mut carry).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\na"), "{answer}");
    }
    assert!(carry.is_empty(), "{carry:?}");
    assert_eq!(*a.paths.lock().unwrap(), ["/first", "/two", "/three"]);
    // Parked again, then closed by the idle timeout (not before it).
    let answered = Instant::now();
    wait_parked(p.proxy.admin, 1).await;
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest))
        .await
        .expect("the parked connection outlived its idle timeout")
        .unwrap();
    let held = answered.elapsed();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(held >= idle / 2, "closed after {held:?}");
    wait_parked(p.proxy.admin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_counts_against_the_limits_and_closes_on_shutdown() {
    let a = Backend::start("a").await;
    let p = start(&config(
        "park_ms = 20\nshutdown_ms = 20000",
        "max_connections_per_client = 1",
        &a,
    ))
    .await;
    let addr = p.proxy.listeners[0];
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut carry = Vec::new();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s, &mut carry)
        .await
        .starts_with("HTTP/1.1 200"));
    wait_parked(p.proxy.admin, 1).await;
    // The parked connection holds the client's one place.
    assert_eq!(
        raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await,
        ""
    );
    // Shutdown closes it at once: nothing left to cut at the (20 s) deadline.
    let Running { proxy, dir: _dir } = p;
    let started = Instant::now();
    assert_eq!(proxy.shutdown().await, 0, "connections cut at the deadline");
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest))
        .await
        .expect("the parked connection stayed open after shutdown")
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parked_connections_wake_one_at_a_time_and_leave_when_their_client_closes() {
    let a = Backend::start("a").await;
    let p = start(&config("park_ms = 20", "", &a)).await;
    let addr = p.proxy.listeners[0];
    let mut conns = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let answer = exchange(&mut s, &format!("/open{i}")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        conns.push(s);
    }
    wait_parked(p.proxy.admin, 20).await;
    assert_eq!(gauge(p.proxy.admin, "active_connections").await, 20);
    // One wakes, is served and parks again; the other 19 stay parked meanwhile.
    let answer = exchange(&mut conns[7], "/again").await;
    assert!(answer.ends_with("\r\n\r\na"), "{answer}");
    wait_parked(p.proxy.admin, 20).await;
    // Clients that close their parked connections free their places.
    for s in conns.drain(..5) {
        drop(s);
    }
    wait_parked(p.proxy.admin, 15).await;
    wait_gauge(p.proxy.admin, "active_connections", 15).await;
    // The rest still answer.
    for s in &mut conns {
        assert!(exchange(s, "/last").await.starts_with("HTTP/1.1 200"));
    }
    assert_eq!(a.requests.load(std::sync::atomic::Ordering::Relaxed), 36);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_takes_the_config_reloaded_while_it_was_parked() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = start(&config("park_ms = 20", "", &a)).await;
    let mut s = TcpStream::connect(p.proxy.listeners[0]).await.unwrap();
    assert!(exchange(&mut s, "/").await.ends_with("\r\n\r\na"));
    wait_parked(p.proxy.admin, 1).await;
    // A reload while it is parked: its next request goes where the new config says, and
    // the new idle timeout bounds it after that.
    p.rewrite(&config("park_ms = 20\nidle_ms = 300", "", &b));
    p.proxy.reload().await.unwrap();
    assert!(exchange(&mut s, "/").await.ends_with("\r\n\r\nb"));
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest))
        .await
        .expect("the reloaded idle timeout did not close the parked connection")
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    wait_parked(p.proxy.admin, 0).await;
}
