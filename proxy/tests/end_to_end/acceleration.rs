//! Issue 21, web acceleration: compression and the RFC 9111 cache, through a real client
//! (reqwest, which neither asks for nor decodes codings unless told) against backends whose
//! answers each test scripts. Test names carry the RFC section they check.

use crate::common::{client, eventually, start, Running, PATIENCE};
use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// What a scripted backend answers: from the request's head and how many requests it has
/// answered on that path before (0 for the first).
type Script = dyn Fn(&http::request::Parts, u64) -> Response<Full<Bytes>> + Send + Sync;

/// A backend answering by `script`, counting requests per path and keeping their heads.
struct Scripted {
    addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, u64>>>,
    heads: Arc<Mutex<Vec<http::request::Parts>>>,
    /// Paths starting `/slow` answer only once this is notified.
    gate: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    async fn start(
        script: impl Fn(&http::request::Parts, u64) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Scripted {
        let script: Arc<Script> = Arc::new(script);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let heads: Arc<Mutex<Vec<http::request::Parts>>> = Arc::default();
        let gate = Arc::new(tokio::sync::Notify::new());
        let (c, h, g) = (counts.clone(), heads.clone(), gate.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (script, c, h, g) = (script.clone(), c.clone(), h.clone(), g.clone());
                connections.spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (script, c, h, g) = (script.clone(), c.clone(), h.clone(), g.clone());
                        async move {
                            let (parts, _) = req.into_parts();
                            let path = parts.uri.path().to_string();
                            let n = {
                                let mut counts = c.lock().unwrap();
                                let n = counts.entry(path.clone()).or_insert(0);
                                *n += 1;
                                *n - 1
                            };
                            if path.starts_with("/slow") {
                                g.notified().await;
                            }
                            let response = script(&parts, n);
                            h.lock().unwrap().push(parts);
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Scripted {
            addr,
            counts,
            heads,
            gate,
            task,
        }
    }

    fn count(&self, path: &str) -> u64 {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn last_head(&self) -> http::request::Parts {
        self.heads
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no request")
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A proxy with one route `/` (with `route_keys`) to the scripted backend, and `rest`.
async fn proxy(b: &Scripted, route_keys: &str, rest: &str) -> Running {
    start(&format!(
        "admin = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[route]]\npath_prefix = \"/\"\npool = \"web\"\n{route_keys}\n\
         [[pool]]\nname = \"web\"\nbalance = \"random\"\n\
         [[pool.backend]]\naddress = \"{}\"\n{rest}",
        b.addr
    ))
    .await
}

fn text_body(len: usize) -> Bytes {
    let line = "flowgate compresses this line of text, and the cache keeps it. ";
    Bytes::from(line.repeat(len / line.len() + 1)[..len].to_string())
}

fn ok(headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::builder();
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(body.into())).unwrap()
}

/// A backend whose first answer is "good" with `cache_control`, and every later one a 503
/// ("down"): the stale-on-error cases.
async fn good_then_503(cache_control: &'static str) -> Scripted {
    Scripted::start(move |_, n| {
        if n == 0 {
            ok(&[("cache-control", cache_control)], "good")
        } else {
            Response::builder()
                .status(503)
                .body(Full::new(Bytes::from("down")))
                .unwrap()
        }
    })
    .await
}

/// A cache (`cache = true`) in front of [`good_then_503`], its "good" answer to `path`
/// fetched and stored: the start of every stale-on-error case.
async fn good_stored_then_503(cache_control: &'static str, path: &str) -> (Scripted, Running) {
    let b = good_then_503(cache_control).await;
    let p = proxy(&b, "cache = true", "").await;
    assert_eq!(fetch(&p.url(path), &[]).await.text().await.unwrap(), "good");
    eventually("the response stored", || async {
        metric(&p, "flowgate_proxy_cache_stored_bytes").await > 0.0
    })
    .await;
    (b, p)
}

async fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => GzipDecoder::new(data).read_to_end(&mut out).await,
        "br" => BrotliDecoder::new(data).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(data).read_to_end(&mut out).await,
        other => panic!("unexpected coding {other}"),
    }
    .unwrap_or_else(|e| panic!("{coding} body does not decode: {e}"));
    out
}

async fn fetch(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = client().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"))
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

// ---------------------------------------------------------------- compression

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_8_4_every_coding_decodes_to_the_original_byte_for_byte() {
    let body = text_body(300_000);
    let sent = body.clone();
    let b = Scripted::start(move |_, _| {
        ok(
            &[
                ("content-type", "text/html; charset=utf-8"),
                ("etag", "\"v1\""),
            ],
            sent.clone(),
        )
    })
    .await;
    let p = proxy(&b, "compress = true", "").await;
    for coding in ["gzip", "br", "zstd"] {
        let r = fetch(&p.url("/page"), &[("accept-encoding", coding)]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-encoding"), Some(coding));
        assert_eq!(header(&r, "vary"), Some("accept-encoding"));
        assert_eq!(
            header(&r, "content-length"),
            None,
            "length of the identity body kept"
        );
        assert_eq!(
            header(&r, "etag"),
            Some("W/\"v1\""),
            "a strong ETag on a transformed body"
        );
        let wire = r.bytes().await.unwrap();
        assert!(
            wire.len() < body.len() / 4,
            "{coding}: {} bytes",
            wire.len()
        );
        assert!(
            decode(coding, &wire).await == body[..],
            "{coding} decodes to other bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_12_5_3_q_values_and_the_server_order_choose_the_coding() {
    let b =
        Scripted::start(|_, _| ok(&[("content-type", "application/json")], text_body(4000))).await;
    let p = proxy(
        &b,
        "compress = true\ncompress_prefer = [\"zstd\", \"gzip\", \"br\"]",
        "",
    )
    .await;
    let cases = [
        ("gzip;q=0.5, br;q=0.9", Some("br")),
        ("gzip, br", Some("gzip")),
        ("br, gzip, zstd", Some("zstd")),
        ("*", Some("zstd")),
        ("zstd;q=0, *", Some("gzip")),
        ("identity", None),
        ("identity;q=0, gzip;q=0.1", Some("gzip")),
        ("*;q=0", None),
        ("gzip;q=0", None),
    ];
    for (accept, want) in cases {
        let r = fetch(&p.url("/api"), &[("accept-encoding", accept)]).await;
        assert_eq!(
            header(&r, "content-encoding"),
            want,
            "Accept-Encoding: {accept}"
        );
        assert_eq!(header(&r, "vary"), Some("accept-encoding"), "{accept}");
        let coding = header(&r, "content-encoding").map(str::to_string);
        let wire = r.bytes().await.unwrap();
        let plain = match coding {
            Some(c) => decode(&c, &wire).await,
            None => wire.to_vec(),
        };
        assert!(plain == text_body(4000)[..], "{accept}");
    }
    // No Accept-Encoding at all: identity, but still Vary.
    let r = fetch(&p.url("/api"), &[]).await;
    assert_eq!(header(&r, "content-encoding"), None);
    assert_eq!(header(&r, "vary"), Some("accept-encoding"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_7_7_and_14_never_compressed_responses_go_as_they_are() {
    let b = Scripted::start(|parts, _| {
        let big = text_body(5000);
        match parts.uri.path() {
            "/encoded" => ok(
                &[("content-type", "text/plain"), ("content-encoding", "gzip")],
                big,
            ),
            "/no-transform" => ok(
                &[
                    ("content-type", "text/plain"),
                    ("cache-control", "no-transform"),
                ],
                big,
            ),
            "/small" => ok(&[("content-type", "text/plain")], "tiny"),
            "/image" => ok(&[("content-type", "image/png")], big),
            "/empty" => Response::builder()
                .status(204)
                .body(Full::new(Bytes::new()))
                .unwrap(),
            "/partial" => Response::builder()
                .status(206)
                .header("content-type", "text/plain")
                .header("content-range", "bytes 0-4999/10000")
                .body(Full::new(big))
                .unwrap(),
            _ => ok(&[("content-type", "text/plain")], big),
        }
    })
    .await;
    let p = proxy(&b, "compress = true", "").await;
    let gz = [("accept-encoding", "gzip")];
    for path in [
        "/encoded",
        "/no-transform",
        "/small",
        "/image",
        "/empty",
        "/partial",
    ] {
        let r = fetch(&p.url(path), &gz).await;
        let coding = header(&r, "content-encoding");
        let want = (path == "/encoded").then_some("gzip");
        assert_eq!(coding, want, "{path} was compressed by the proxy");
    }
    // A Range request (RFC 9110 §14.2) and HEAD are not compressed either.
    let r = fetch(
        &p.url("/text"),
        &[("accept-encoding", "gzip"), ("range", "bytes=0-9")],
    )
    .await;
    assert_eq!(header(&r, "content-encoding"), None);
    let r = client()
        .head(p.url("/text"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-encoding"), None);
    assert_eq!(header(&r, "content-length"), Some("5000"));
    // And a route without compress = true leaves everything alone.
    let q = proxy(&b, "", "").await;
    let r = fetch(&q.url("/text"), &gz).await;
    assert_eq!(header(&r, "content-encoding"), None);
    assert_eq!(header(&r, "vary"), None);
}

// ---------------------------------------------------------------- cache

async fn metric(p: &Running, name: &str) -> f64 {
    let text = client()
        .get(format!("http://{}/metrics", p.proxy.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().unwrap())
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_a_fresh_response_is_reused_with_age_and_cache_status() {
    let b = Scripted::start(|_, n| {
        ok(
            &[
                ("content-type", "text/plain"),
                ("cache-control", "max-age=600"),
            ],
            format!("v{n}"),
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    let first = fetch(&p.url("/a"), &[]).await;
    let status = header(&first, "cache-status").unwrap().to_string();
    assert!(
        status.starts_with("flowgate; fwd=uri-miss") && status.contains("stored"),
        "{status}"
    );
    assert_eq!(first.text().await.unwrap(), "v0");
    // The copy is stored once the body has been read through; wait for it to be a hit.
    eventually("the first response stored", || async {
        let r = fetch(&p.url("/a"), &[]).await;
        header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit"))
    })
    .await;
    let again = fetch(&p.url("/a"), &[]).await;
    assert!(
        header(&again, "age").is_some(),
        "RFC 9111 §5.1: Age on a cached response"
    );
    assert!(header(&again, "cache-status").unwrap().contains("ttl="));
    assert_eq!(again.text().await.unwrap(), "v0");
    assert_eq!(b.count("/a"), 1);
    assert!(metric(&p, "flowgate_proxy_cache_hits_total").await >= 2.0);
    assert_eq!(metric(&p, "flowgate_proxy_cache_misses_total").await, 1.0);
    assert!(metric(&p, "flowgate_proxy_cache_stored_bytes").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_no_store_private_and_authorization_are_not_shared() {
    let b = Scripted::start(|parts, n| {
        let cc = match parts.uri.path() {
            "/no-store" => "no-store, max-age=600",
            "/private" => "private, max-age=600",
            _ => "max-age=600",
        };
        ok(&[("cache-control", cc)], format!("v{n}"))
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    for path in ["/no-store", "/private"] {
        for n in 0..3 {
            assert_eq!(
                fetch(&p.url(path), &[]).await.text().await.unwrap(),
                format!("v{n}")
            );
        }
        assert_eq!(b.count(path), 3, "{path} was stored");
    }
    // RFC 9111 §3.5: a response to a request with Authorization is not stored for others
    // unless the response allows it explicitly.
    for n in 0..2 {
        let r = fetch(&p.url("/auth"), &[("authorization", "Bearer x")]).await;
        assert_eq!(r.text().await.unwrap(), format!("v{n}"));
    }
    assert_eq!(b.count("/auth"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_1_vary_keeps_variants_apart() {
    let b = Scripted::start(|parts, _| {
        let lang = parts
            .headers
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap())
            .to_string();
        ok(
            &[
                ("cache-control", "max-age=600"),
                ("vary", "Accept-Language"),
            ],
            lang,
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    for lang in ["en", "fr"] {
        let r = fetch(&p.url("/v"), &[("accept-language", lang)]).await;
        assert_eq!(r.text().await.unwrap(), lang);
    }
    for lang in ["en", "fr"] {
        eventually("each language served from its own variant", || async {
            let r = fetch(&p.url("/v"), &[("accept-language", lang)]).await;
            let hit = header(&r, "cache-status").is_some_and(|s| s.contains("hit"));
            hit && r.text().await.unwrap() == lang
        })
        .await;
    }
    assert_eq!(b.count("/v"), 2, "one backend request per variant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_revalidation_gets_a_304_and_updates_the_stored_headers() {
    let b = Scripted::start(|parts, n| {
        if parts
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"e1\"")
        {
            return Response::builder()
                .status(304)
                .header("etag", "\"e1\"")
                .header("cache-control", "no-cache")
                .header("x-revision", format!("{n}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        ok(
            &[
                ("cache-control", "no-cache"),
                ("etag", "\"e1\""),
                ("x-revision", "0"),
            ],
            "the body",
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    assert_eq!(
        fetch(&p.url("/r"), &[]).await.text().await.unwrap(),
        "the body"
    );
    eventually("the backend revalidated with If-None-Match", || async {
        let r = fetch(&p.url("/r"), &[]).await;
        let status = header(&r, "cache-status").unwrap_or("").to_string();
        if !status.contains("fwd-status=304") {
            return false;
        }
        let revision: u64 = header(&r, "x-revision").unwrap().parse().unwrap();
        assert!(revision >= 1, "the 304's fields were not merged");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "the body");
        true
    })
    .await;
    assert_eq!(
        b.last_head().headers.get("if-none-match").unwrap(),
        "\"e1\""
    );
    assert!(
        metric(
            &p,
            "flowgate_proxy_cache_revalidations_total{result=\"not-modified\"}"
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_13_1_client_conditionals_are_answered_304_from_the_cache() {
    let b = Scripted::start(|_, _| {
        ok(
            &[
                ("cache-control", "max-age=600"),
                ("etag", "\"abc\""),
                ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ],
            "cached",
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    fetch(&p.url("/c"), &[]).await.text().await.unwrap();
    eventually("stored", || async {
        header(&fetch(&p.url("/c"), &[]).await, "cache-status").is_some_and(|s| s.contains("hit"))
    })
    .await;
    let r = fetch(&p.url("/c"), &[("if-none-match", "W/\"abc\"")]).await;
    assert_eq!(r.status(), 304, "RFC 9110 §13.1.2: weak comparison matches");
    assert_eq!(header(&r, "etag"), Some("\"abc\""));
    let r = fetch(&p.url("/c"), &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status(), 200);
    let r = fetch(
        &p.url("/c"),
        &[("if-modified-since", "Wed, 02 Dec 2026 10:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status(), 304, "RFC 9110 §13.1.3");
    let r = fetch(
        &p.url("/c"),
        &[("if-modified-since", "Mon, 30 Nov 2026 10:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(b.count("/c"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_an_unsafe_method_invalidates_the_stored_response() {
    let b = Scripted::start(|parts, n| {
        if parts.method == http::Method::POST {
            return Response::builder()
                .status(201)
                .header("location", "/other")
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        ok(&[("cache-control", "max-age=600")], format!("v{n}"))
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    for path in ["/i", "/other"] {
        fetch(&p.url(path), &[]).await.text().await.unwrap();
        eventually("stored", || async {
            header(&fetch(&p.url(path), &[]).await, "cache-status")
                .is_some_and(|s| s.contains("hit"))
        })
        .await;
    }
    let r = client().post(p.url("/i")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 201);
    // RFC 9211 §2.2: the POST did not go through the cache, and says why.
    assert_eq!(
        header(&r, "cache-status"),
        Some("flowgate; fwd=method; fwd-status=201")
    );
    // Both /i and /other were removed, counted apart from the admin API's purges.
    assert_eq!(
        metric(&p, "flowgate_proxy_cache_invalidations_total").await,
        2.0
    );
    assert_eq!(metric(&p, "flowgate_proxy_cache_purged_total").await, 0.0);
    // The backend's count for /i includes the POST: v0 was stored, the POST was 1.
    assert_eq!(fetch(&p.url("/i"), &[]).await.text().await.unwrap(), "v2");
    assert_eq!(
        fetch(&p.url("/other"), &[]).await.text().await.unwrap(),
        "v1",
        "Location not invalidated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_key_make_one_backend_request() {
    let b = Scripted::start(|_, n| ok(&[("cache-control", "max-age=600")], format!("v{n}"))).await;
    let p = proxy(&b, "cache = true", "").await;
    const N: usize = 10;
    let url = p.url("/slow");
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..N {
        let url = url.clone();
        clients.spawn(async move { fetch(&url, &[]).await.text().await.unwrap() });
    }
    eventually(
        "one request at the backend and the others waiting on it",
        || async {
            b.count("/slow") == 1
                && metric(&p, "flowgate_proxy_cache_coalesced_total").await >= (N - 1) as f64
        },
    )
    .await;
    b.gate.notify_one();
    let bodies = tokio::time::timeout(PATIENCE, clients.join_all())
        .await
        .unwrap();
    assert_eq!(bodies, vec!["v0".to_string(); N]);
    assert_eq!(b.count("/slow"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_4_stale_if_error_serves_the_stale_copy_when_the_backend_fails() {
    let (_b, p) = good_stored_then_503("max-age=0, stale-if-error=600", "/e").await;
    eventually("the stale copy served in place of the 503", || async {
        let r = fetch(&p.url("/e"), &[]).await;
        let stale = header(&r, "cache-status").is_some_and(|s| s.contains("stale-if-error"));
        stale && r.status() == 200 && r.text().await.unwrap() == "good"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_3_stale_while_revalidate_answers_at_once_and_refreshes_behind() {
    let b = Scripted::start(|_, n| {
        ok(
            &[("cache-control", "max-age=0, stale-while-revalidate=600")],
            format!("v{n}"),
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    assert_eq!(fetch(&p.url("/w"), &[]).await.text().await.unwrap(), "v0");
    eventually("a stale answer while the backend refreshes", || async {
        let r = fetch(&p.url("/w"), &[]).await;
        header(&r, "cache-status").is_some_and(|s| s.contains("stale-while-revalidate"))
    })
    .await;
    eventually("the refreshed copy served", || async {
        let r = fetch(&p.url("/w"), &[]).await;
        r.text().await.unwrap() != "v0"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_are_streamed_and_not_stored_and_purge_removes_entries() {
    let b = Scripted::start(|parts, n| {
        let len = if parts.uri.path() == "/big" {
            200_000
        } else {
            10
        };
        let mut body = format!("v{n}").into_bytes();
        body.resize(len, b'.');
        ok(&[("cache-control", "max-age=600")], body)
    })
    .await;
    let p = proxy(
        &b,
        "cache = true",
        "[cache]\nmax_bytes = 1000000\nmax_object_bytes = 100000\n",
    )
    .await;
    for _ in 0..2 {
        let r = fetch(&p.url("/big"), &[]).await;
        assert_eq!(r.bytes().await.unwrap().len(), 200_000);
    }
    assert_eq!(
        b.count("/big"),
        2,
        "an object over max_object_bytes was stored"
    );
    for path in ["/s/1", "/s/2", "/t"] {
        fetch(&p.url(path), &[]).await.bytes().await.unwrap();
        eventually("stored", || async {
            header(&fetch(&p.url(path), &[]).await, "cache-status")
                .is_some_and(|s| s.contains("hit"))
        })
        .await;
    }
    let host = p.proxy.listeners[0].ip();
    let purge = |body: serde_json::Value| {
        let url = format!("http://{}/cache/purge", p.proxy.admin);
        async move {
            let r = client().post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()["purged"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(
        purge(serde_json::json!({ "prefix": format!("http://{host}/s/") })).await,
        2
    );
    assert_eq!(
        purge(serde_json::json!({ "url": format!("http://{host}/t") })).await,
        1
    );
    for path in ["/s/1", "/s/2", "/t"] {
        fetch(&p.url(path), &[]).await.bytes().await.unwrap();
        assert_eq!(
            b.count(path),
            2,
            "{path} still served from the cache after a purge"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stored_copy_is_compressed_for_each_client() {
    let body = text_body(20_000);
    let sent = body.clone();
    let b = Scripted::start(move |_, _| {
        ok(
            &[
                ("content-type", "text/css"),
                ("cache-control", "max-age=600"),
            ],
            sent.clone(),
        )
    })
    .await;
    let p = proxy(&b, "cache = true\ncompress = true", "").await;
    fetch(&p.url("/site.css"), &[("accept-encoding", "br")])
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        b.last_head().headers.get("accept-encoding").is_none(),
        "the cache asked the backend for a coded body"
    );
    eventually("stored", || async {
        header(&fetch(&p.url("/site.css"), &[]).await, "cache-status")
            .is_some_and(|s| s.contains("hit"))
    })
    .await;
    for coding in ["gzip", "br", "zstd"] {
        let r = fetch(&p.url("/site.css"), &[("accept-encoding", coding)]).await;
        assert_eq!(header(&r, "content-encoding"), Some(coding));
        let wire = r.bytes().await.unwrap();
        assert!(decode(coding, &wire).await == body[..], "{coding}");
    }
    assert_eq!(b.count("/site.css"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9211_2_2_a_range_request_bypasses_the_cache_and_says_so() {
    let b = Scripted::start(|_, n| ok(&[("cache-control", "max-age=600")], format!("v{n}"))).await;
    let p = proxy(&b, "cache = true", "").await;
    for n in 0..2 {
        let r = fetch(&p.url("/range"), &[("range", "bytes=0-0")]).await;
        assert_eq!(
            header(&r, "cache-status"),
            Some("flowgate; fwd=bypass; fwd-status=200")
        );
        assert_eq!(r.text().await.unwrap(), format!("v{n}"));
    }
    assert_eq!(b.count("/range"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_1_a_vary_star_response_is_not_stored() {
    let b = Scripted::start(|_, n| {
        ok(
            &[("cache-control", "max-age=600"), ("vary", "*")],
            format!("v{n}"),
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    for n in 0..3 {
        let r = fetch(&p.url("/star"), &[]).await;
        let status = header(&r, "cache-status").unwrap().to_string();
        assert_eq!(
            status, "flowgate; fwd=uri-miss; fwd-status=200",
            "stored or reused"
        );
        assert_eq!(r.text().await.unwrap(), format!("v{n}"));
    }
    assert_eq!(b.count("/star"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_5_a_head_miss_goes_as_head_and_stores_no_body() {
    let b = Scripted::start(|parts, n| {
        ok(
            &[
                ("cache-control", "max-age=600"),
                ("x-method", parts.method.as_str()),
            ],
            format!("v{n}"),
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    let r = client().head(p.url("/h")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(b.last_head().method, http::Method::HEAD, "sent as GET");
    let status = header(&r, "cache-status").unwrap().to_string();
    assert!(
        status.starts_with("flowgate; fwd=uri-miss") && !status.contains("stored"),
        "{status}"
    );
    // Nothing was stored from the HEAD: the GET goes to the backend and gets the body.
    let r = fetch(&p.url("/h"), &[]).await;
    assert!(header(&r, "cache-status").unwrap().contains("fwd=uri-miss"));
    assert_eq!(header(&r, "x-method"), Some("GET"));
    assert_eq!(r.text().await.unwrap(), "v1");
    // A HEAD is then answered from the stored GET, without the backend.
    eventually("a HEAD answered from the stored GET", || async {
        let r = client().head(p.url("/h")).send().await.unwrap();
        header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit"))
            && header(&r, "x-method") == Some("GET")
    })
    .await;
    assert_eq!(b.count("/h"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_2_and_4_3_4_every_value_of_a_field_survives_a_revalidation() {
    let b = Scripted::start(|parts, _| {
        if parts
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"e1\"")
        {
            // Two lines each: the freshness is in the second Cache-Control line.
            return Response::builder()
                .status(304)
                .header("etag", "\"e1\"")
                .header("cache-control", "public")
                .header("cache-control", "max-age=600")
                .header("link", "</c>; rel=preload")
                .header("link", "</d>; rel=preload")
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        Response::builder()
            .header("etag", "\"e1\"")
            .header("cache-control", "max-age=0")
            .header("link", "</a>; rel=preload")
            .header("link", "</b>; rel=preload")
            .body(Full::new(Bytes::from("the body")))
            .unwrap()
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    let values = |r: &reqwest::Response, name: &str| -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    let first = fetch(&p.url("/m"), &[]).await;
    assert_eq!(values(&first, "link").len(), 2);
    assert_eq!(first.text().await.unwrap(), "the body");
    eventually("a revalidation answered 304", || async {
        let r = fetch(&p.url("/m"), &[]).await;
        if !header(&r, "cache-status").is_some_and(|s| s.contains("fwd-status=304")) {
            return false;
        }
        assert_eq!(
            values(&r, "link"),
            ["</c>; rel=preload", "</d>; rel=preload"],
            "the 304's Link lines replace the stored ones, all of them"
        );
        assert_eq!(values(&r, "cache-control"), ["public", "max-age=600"]);
        assert_eq!(r.text().await.unwrap(), "the body");
        true
    })
    .await;
    // The refreshed entry is fresh by the second Cache-Control line.
    eventually("the refreshed entry is a hit", || async {
        let r = fetch(&p.url("/m"), &[]).await;
        header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit"))
            && values(&r, "link").len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_1_hop_by_hop_and_proxy_fields_are_not_stored() {
    let b = Scripted::start(|_, n| {
        ok(
            &[
                ("cache-control", "max-age=600"),
                ("connection", "x-secret"),
                ("x-secret", "for the next hop only"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic realm=\"backend\""),
                ("proxy-authentication-info", "nextnonce=\"x\""),
                ("x-kept", "yes"),
            ],
            format!("v{n}"),
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    let first = fetch(&p.url("/hop"), &[]).await;
    for name in ["x-secret", "keep-alive"] {
        assert_eq!(
            header(&first, name),
            None,
            "{name} forwarded (RFC 9110 §7.6.1)"
        );
    }
    first.text().await.unwrap();
    eventually("the response stored", || async {
        let r = fetch(&p.url("/hop"), &[]).await;
        if !header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit")) {
            return false;
        }
        for name in [
            "x-secret",
            "keep-alive",
            "proxy-authenticate",
            "proxy-authentication-info",
        ] {
            assert_eq!(header(&r, name), None, "{name} served from the cache");
        }
        assert_eq!(header(&r, "x-kept"), Some("yes"));
        assert_eq!(r.text().await.unwrap(), "v0");
        true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_responses_are_not_stored_unless_asked_and_never_replayed() {
    let b = Scripted::start(|_, n| {
        ok(
            &[
                ("cache-control", "max-age=600"),
                ("set-cookie", "session=s1; Path=/"),
            ],
            format!("v{n}"),
        )
    })
    .await;
    // Default: not stored (as Varnish and nginx).
    let p = proxy(&b, "cache = true", "").await;
    for n in 0..2 {
        let r = fetch(&p.url("/cookie"), &[]).await;
        assert_eq!(header(&r, "set-cookie"), Some("session=s1; Path=/"));
        assert!(!header(&r, "cache-status").unwrap().contains("stored"));
        assert_eq!(r.text().await.unwrap(), format!("v{n}"));
    }
    drop(p);
    // store_set_cookie = true: stored as RFC 9111 §7.3 allows; the cookie goes to the
    // client whose request fetched it, never from the cache to another.
    let p = proxy(&b, "cache = true", "[cache]\nstore_set_cookie = true").await;
    let r = fetch(&p.url("/cookie"), &[]).await;
    assert!(header(&r, "cache-status").unwrap().contains("stored"));
    assert_eq!(header(&r, "set-cookie"), Some("session=s1; Path=/"));
    assert_eq!(r.text().await.unwrap(), "v2");
    eventually("the response stored", || async {
        let r = fetch(&p.url("/cookie"), &[]).await;
        if !header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit")) {
            return false;
        }
        assert_eq!(
            header(&r, "set-cookie"),
            None,
            "Set-Cookie replayed from the cache"
        );
        assert_eq!(r.text().await.unwrap(), "v2");
        true
    })
    .await;
    assert_eq!(b.count("/cookie"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_10_s_maxage_forbids_serving_stale_on_error() {
    let (_b, p) = good_stored_then_503("s-maxage=0, stale-if-error=600", "/s").await;
    // s-maxage implies proxy-revalidate for a shared cache: the 503 goes through.
    let r = fetch(&p.url("/s"), &[]).await;
    assert_eq!(
        header(&r, "cache-status"),
        Some("flowgate; fwd=stale; fwd-status=503")
    );
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "down");
}

// ------------------------------------------- found by the cache-tests conformance suite

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_4_a_304_without_validators_refreshes_the_revalidated_response() {
    // The backend confirms the ETag this cache sent with a bare 304 (no ETag, no
    // Last-Modified): the client, who asked nothing conditional, gets the stored 200.
    let b = Scripted::start(|parts, _| {
        if parts.headers.contains_key("if-none-match") {
            return Response::builder()
                .status(304)
                .header("cache-control", "max-age=0, must-revalidate")
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        ok(
            &[
                ("cache-control", "max-age=0, must-revalidate"),
                ("etag", "\"e1\""),
            ],
            "the body",
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    assert_eq!(
        fetch(&p.url("/b"), &[]).await.text().await.unwrap(),
        "the body"
    );
    eventually("a revalidation answered by a bare 304", || async {
        let r = fetch(&p.url("/b"), &[]).await;
        if !header(&r, "cache-status").is_some_and(|s| s.contains("fwd-status=304")) {
            return false;
        }
        assert_eq!(r.status(), 200, "the backend's 304 reached the client");
        assert_eq!(header(&r, "etag"), Some("\"e1\""));
        assert_eq!(r.text().await.unwrap(), "the body");
        true
    })
    .await;
    assert_eq!(
        b.last_head().headers.get("if-none-match").unwrap(),
        "\"e1\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_cache_directive_names_are_case_insensitive() {
    let b = Scripted::start(|parts, n| {
        let cc = if parts.uri.path() == "/upper" {
            "MAX-AGE=600"
        } else {
            "max-age=600, No-StOrE"
        };
        ok(&[("cache-control", cc)], format!("v{n}"))
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    let r = fetch(&p.url("/nostore"), &[]).await;
    assert!(
        !header(&r, "cache-status").unwrap().contains("stored"),
        "No-StOrE ignored"
    );
    assert_eq!(r.text().await.unwrap(), "v0");
    assert_eq!(
        fetch(&p.url("/nostore"), &[]).await.text().await.unwrap(),
        "v1"
    );
    let r = fetch(&p.url("/upper"), &[]).await;
    assert!(header(&r, "cache-status").unwrap().contains("stored"));
    assert_eq!(r.text().await.unwrap(), "v0");
    eventually("MAX-AGE read as max-age: a hit", || async {
        let r = fetch(&p.url("/upper"), &[]).await;
        header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit"))
    })
    .await;
    assert_eq!(b.count("/upper"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_4_no_cache_with_field_names_stores_the_rest() {
    let b = Scripted::start(|_, n| {
        ok(
            &[
                ("cache-control", "max-age=600, no-cache=\"x-secret\""),
                ("x-secret", "s"),
                ("x-public", "p"),
            ],
            format!("v{n}"),
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    let first = fetch(&p.url("/q"), &[]).await;
    assert_eq!(
        header(&first, "x-secret"),
        Some("s"),
        "a miss keeps every field"
    );
    assert_eq!(first.text().await.unwrap(), "v0");
    eventually("the response stored and reused", || async {
        let r = fetch(&p.url("/q"), &[]).await;
        if !header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit")) {
            return false;
        }
        assert_eq!(
            header(&r, "x-secret"),
            None,
            "a listed field sent from the cache"
        );
        assert_eq!(header(&r, "x-public"), Some("p"));
        assert_eq!(r.text().await.unwrap(), "v0");
        true
    })
    .await;
    assert_eq!(b.count("/q"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_4_only_pragma_no_cache_without_cache_control_counts() {
    let (_b, p) = good_stored_then_503("max-age=0, stale-if-error=600", "/p").await;
    // An unknown Pragma, or any Pragma beside Cache-Control, asks nothing of the cache.
    for headers in [
        &[("pragma", "foo")][..],
        &[("pragma", "no-cache"), ("cache-control", "x-extension")][..],
    ] {
        let r = fetch(&p.url("/p"), headers).await;
        assert!(
            header(&r, "cache-status").is_some_and(|s| s.contains("stale-if-error")),
            "{headers:?}"
        );
        assert_eq!(r.text().await.unwrap(), "good");
    }
    // Pragma: no-cache alone is a request's no-cache: no stale answer.
    let r = fetch(&p.url("/p"), &[("pragma", "no-cache")]).await;
    assert_eq!(r.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_1_cdn_cache_control_is_this_caches_targeted_field() {
    let b = Scripted::start(|parts, n| {
        let headers: &[(&str, &str)] = match parts.uri.path() {
            // Cache-Control alone would have it stale at once.
            "/cdn-longer" => &[
                ("cache-control", "max-age=0"),
                ("cdn-cache-control", "max-age=600"),
            ],
            "/cdn-no-store" => &[
                ("cache-control", "max-age=600"),
                ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
                ("cdn-cache-control", "no-store"),
            ],
            // Not a Structured Fields dictionary: ignored, Cache-Control decides.
            _ => &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600, &&&"),
            ],
        };
        ok(headers, format!("v{n}"))
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    let r = fetch(&p.url("/cdn-longer"), &[]).await;
    assert_eq!(
        header(&r, "cache-control"),
        Some("max-age=0"),
        "fields forwarded as sent"
    );
    assert_eq!(r.text().await.unwrap(), "v0");
    eventually("CDN-Cache-Control: max-age=600 reused", || async {
        let r = fetch(&p.url("/cdn-longer"), &[]).await;
        header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit"))
    })
    .await;
    assert_eq!(b.count("/cdn-longer"), 1);
    for path in ["/cdn-no-store", "/cdn-invalid"] {
        let r = fetch(&p.url(path), &[]).await;
        assert!(
            !header(&r, "cache-status").unwrap().contains("stored"),
            "{path} stored"
        );
        assert_eq!(r.text().await.unwrap(), "v0");
        assert_eq!(fetch(&p.url(path), &[]).await.text().await.unwrap(), "v1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_5_a_head_200_updates_the_stored_get() {
    // GETs are fresh for one second; a HEAD's answer makes the entry fresh for ten
    // minutes and carries a new x-rev.
    let b = Scripted::start(|parts, _| {
        if parts.method == http::Method::HEAD {
            ok(
                &[("cache-control", "max-age=600"), ("x-rev", "head")],
                "body",
            )
        } else {
            ok(&[("cache-control", "max-age=1"), ("x-rev", "get")], "body")
        }
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    assert_eq!(fetch(&p.url("/u"), &[]).await.text().await.unwrap(), "body");
    eventually("a stale entry's HEAD sent as HEAD and used", || async {
        let r = client().head(p.url("/u")).send().await.unwrap();
        header(&r, "cache-status").is_some_and(|s| s.contains("detail=head"))
    })
    .await;
    assert_eq!(b.last_head().method, http::Method::HEAD, "sent as GET");
    // The stored GET now has the HEAD's fields and freshness, and its own body.
    let r = fetch(&p.url("/u"), &[]).await;
    let status = header(&r, "cache-status").unwrap().to_string();
    assert!(status.starts_with("flowgate; hit"), "{status}");
    assert_eq!(header(&r, "x-rev"), Some("head"));
    assert_eq!(r.text().await.unwrap(), "body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_5_a_head_error_never_replaces_the_stored_get() {
    // A HEAD's 410 is fresh for ten minutes but has no body: the stale GET stays stored,
    // and the next GET revalidates it instead of getting an empty 410 from the cache.
    let b = Scripted::start(|parts, n| {
        if parts.method == http::Method::HEAD {
            Response::builder()
                .status(410)
                .header("cache-control", "max-age=600")
                .body(Full::new(Bytes::from("gone")))
                .unwrap()
        } else {
            ok(&[("cache-control", "max-age=1")], format!("v{n}"))
        }
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    assert_eq!(fetch(&p.url("/g"), &[]).await.text().await.unwrap(), "v0");
    eventually(
        "a stale entry's HEAD answered 410 by the backend",
        || async {
            let r = client().head(p.url("/g")).send().await.unwrap();
            r.status() == 410
                && header(&r, "cache-status")
                    .is_some_and(|s| s.contains("fwd=stale; fwd-status=410"))
        },
    )
    .await;
    let r = fetch(&p.url("/g"), &[]).await;
    assert_eq!(r.status(), 200, "the HEAD's 410 was stored for GETs");
    assert!(r.text().await.unwrap().starts_with('v'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9211_2_2_cache_status_tells_a_uri_miss_from_a_vary_miss() {
    let b = Scripted::start(|_, n| {
        ok(
            &[("cache-control", "max-age=600"), ("vary", "x-v")],
            format!("v{n}"),
        )
    })
    .await;
    let p = proxy(&b, "cache = true", "").await;
    let r = fetch(&p.url("/m"), &[("x-v", "a")]).await;
    assert!(header(&r, "cache-status")
        .unwrap()
        .starts_with("flowgate; fwd=uri-miss"));
    assert_eq!(r.text().await.unwrap(), "v0");
    eventually("the a variant stored", || async {
        let r = fetch(&p.url("/m"), &[("x-v", "a")]).await;
        header(&r, "cache-status").is_some_and(|s| s.starts_with("flowgate; hit"))
    })
    .await;
    let r = fetch(&p.url("/m"), &[("x-v", "b")]).await;
    assert!(
        header(&r, "cache-status")
            .unwrap()
            .starts_with("flowgate; fwd=vary-miss"),
        "{:?}",
        header(&r, "cache-status")
    );
    assert_eq!(r.text().await.unwrap(), "v1");
}
