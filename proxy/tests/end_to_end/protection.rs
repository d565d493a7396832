//! Protection: rate limit (429 + Retry-After), size limits (413, 414, 431), connection
//! limits, slowloris cut off in bounded time while others are served, smuggling refused.

use crate::common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_with_retry_after() {
    let a = Backend::start("a").await;
    let p = start(&plain(&format!(
        "[limits]\nrate_per_second = 0.5\nrate_burst = 3\n{}",
        pool("web", "round-robin", "", &[&a])
    )))
    .await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(get(&c, &p.url("/")).await.0, 200);
    }
    let r = c.get(p.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    // A token every 2 s: the next one is at most 2 s away (1 s if the three above were
    // slow enough to earn half a token).
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(a.requests.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_answer_413_414_431() {
    let a = Backend::start("a").await;
    let p = start(&plain(&format!(
        "[limits]\nmax_body_bytes = 1000\nmax_uri_bytes = 200\nmax_header_bytes = 8192\nmax_headers = 20\n{}",
        pool("web", "round-robin", "", &[&a])
    )))
    .await;
    let c = client();
    // Declared too long, and streamed (chunked) past the limit.
    let r = c
        .post(p.url("/echo"))
        .body(vec![b'x'; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let mut chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(b"64\r\n");
        chunked.extend_from_slice(&[b'y'; 100]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(p.proxy.listeners[0], &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let r = c
        .post(p.url("/echo"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get(&c, &p.url(&format!("/{}", "u".repeat(300)))).await.0,
        414
    );
    let r = c
        .get(p.url("/"))
        .header("x-big", "v".repeat(9000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let mut req = c.get(p.url("/"));
    for i in 0..25 {
        req = req.header(format!("x-h{i}"), "1");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_client_limit_are_refused() {
    let a = Backend::start("a").await;
    let p = start(&plain(&format!(
        "[limits]\nmax_connections_per_client = 2\n{}",
        pool("web", "round-robin", "", &[&a])
    )))
    .await;
    let addr = p.proxy.listeners[0];
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Each is really served, so both hold their place.
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(s);
    }
    let third = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(third, "", "the third connection was served");
    drop(held);
    eventually("a place to free up", || async {
        raw_exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .starts_with("HTTP/1.1 200")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let a = Backend::start("a").await;
    let p = start(&plain(&format!(
        "[timeouts]\nheader_read_ms = 600\nidle_ms = 5000\n{}",
        pool("web", "round-robin", "", &[&a])
    )))
    .await;
    let addr = p.proxy.listeners[0];
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // One header byte every 100 ms: never a complete head.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for _ in 0..200 {
            tick.tick().await;
            if s.write_all(b"X").await.is_err() {
                break;
            }
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
        started.elapsed()
    });
    let c = client();
    for _ in 0..5 {
        assert_eq!(get(&c, &p.url("/")).await, (200, "a".to_string()));
    }
    let held = slow.await.unwrap();
    assert!(
        held < Duration::from_secs(5),
        "the slow client held on for {held:?}"
    );
}

/// Each request on a connection of its own, over raw TCP: answered 400 and the connection
/// closed (`raw_exchange` reads to EOF, bounded), and the backend saw none of them.
async fn assert_refused(cases: &[(&str, &[u8])]) {
    let a = Backend::start("a").await;
    let p = start(&plain(&pool("web", "round-robin", "", &[&a]))).await;
    for (what, request) in cases {
        let answer = raw_exchange(p.proxy.listeners[0], request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer:?}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{what}: {answer:?}");
    }
    let seen = a.paths.lock().unwrap().clone();
    assert!(seen.is_empty(), "the backend saw {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_6_1_content_length_with_transfer_encoding_is_refused() {
    // Both orders, each with a request hidden where a length-reading server would look
    // for the next one.
    assert_refused(&[
        (
            "CL then TE",
            b"POST /clte HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n\
              0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            "TE then CL",
            b"POST /tecl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
              5\r\nGET /\r\n0\r\n\r\n",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_6_1_transfer_encoding_in_http_1_0_is_refused() {
    assert_refused(&[(
        "HTTP/1.0 with TE",
        b"POST /te10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_6_3_transfer_encoding_not_ending_in_chunked_is_refused() {
    assert_refused(&[
        (
            "gzip alone",
            b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        ),
        (
            "chunked, then gzip",
            b"POST /te2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_6_3_conflicting_invalid_or_repeated_content_length_is_refused() {
    assert_refused(&[
        (
            "differing",
            b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
        ),
        (
            "repeated, equal",
            b"POST /cl2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
        ),
        (
            "a list",
            b"POST /cl3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nabcde",
        ),
        (
            "not a number",
            b"POST /cl4 HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nabcde",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_7_1_invalid_chunking_is_refused() {
    assert_refused(&[
        (
            "a chunk size that is not hex",
            b"POST /chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "more data than the chunk size",
            b"POST /chunk2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_is_followed_across_keep_alive_requests() {
    // Sound requests with bodies (a length, chunks with an extension and a trailer) are
    // served on one connection; the ambiguous one after them is refused and ends it.
    let a = Backend::start("a").await;
    let p = start(&plain(&pool("web", "round-robin", "", &[&a]))).await;
    let answer = raw_exchange(
        p.proxy.listeners[0],
        b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
          GET /three HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /four HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "200", "400"], "{answer}");
    assert_eq!(*a.paths.lock().unwrap(), ["/one", "/two", "/three"]);
}
