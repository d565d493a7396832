//! Idle plain HTTP/1 connections parked outside hyper (`timeouts.park_ms`): a parked
//! connection serves its next requests (pipelined ones included) with nothing lost or
//! added, still closes at the idle timeout, still counts against the connection limits,
//! and closes at once on shutdown.

use crate::common::*;
use flowgate_driver::admin::client as admin;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The proxy's gauge of parked connections.
async fn parked(admin_addr: SocketAddr) -> u64 {
    let metrics = admin::get(admin_addr, "/metrics").await.unwrap().body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("flowgate_proxy_parked_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no parked_connections gauge in\n{metrics}"))
}

async fn wait_parked(admin_addr: SocketAddr, n: u64) {
    eventually(&format!("{n} parked connection(s)"), || async move {
        parked(admin_addr).await == n
    })
    .await;
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
