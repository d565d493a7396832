//! One request through the proxy: limits, route, backend choice (persistence first), the
//! forward with retries, and the response on its way back.
//!
//! Retries: a request whose method is idempotent (RFC 9110 §9.2.2) and whose body is empty
//! is sent again to another backend when the first failed before any response byte came
//! back (connect error, connection closed, no response head in time), up to the pool's
//! `retries`. Everything else that fails is answered 502 (504 when the backend did not
//! answer in time); a pool with no usable backend answers 503 with `Retry-After`.

use crate::backend_conn::Lease;
use crate::config::RouteConfig;
use crate::framing::Framing;
use crate::headers::{self, Hop};
use crate::limits::Activity;
use crate::pool::{InFlight, PickKey, Pool};
use crate::server::ConnInfo;
use crate::{
    access_log, cache, compress, cookie, metrics, BoxError, Generation, PoolClient, ProxyBody,
    Shared,
};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Body, Incoming};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client's request body failed (bad chunking, connection cut): the client's fault, 400.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
struct ClientBodyError(#[source] hyper::Error);

/// Counts a request of a connection as in flight until dropped (the idle timeout leaves
/// such connections alone).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Busy {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a `Connection` field lists `close` (RFC 9112 §9.6).
fn says_close(headers: &HeaderMap) -> bool {
    headers::connection_lists(headers, "close")
}

/// What the access log and metrics say about a request, filled in on the way: indices
/// of its pool in the generation and of its backend in the pool.
#[derive(Default)]
pub struct Note {
    pool: Option<usize>,
    backend: Option<usize>,
}

pub fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Answer one client request.
pub async fn handle(
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
) -> Response<ClientBody> {
    let started = Instant::now();
    let busy = Busy::new(conn.activity.clone());
    // hyper closes an HTTP/1 connection after this request: it must not be parked.
    if conn.framing.is_some() && (req.version() != Version::HTTP_11 || says_close(req.headers())) {
        conn.activity.no_park();
    }
    // Requests that started under a config finish under it, whatever reloads meanwhile.
    let generation = shared.current();
    // What only the access log needs, taken only when there is one.
    let logged = generation.access_log.as_ref().map(|_| {
        (
            access_log::now_rfc3339(),
            req.method().to_string(),
            req.uri().to_string(),
            req.version(),
            request_host(&req),
            req.headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        )
    });
    let mut note = Note::default();
    let (parts, body) = req.into_parts();
    let mut req = Request::from_parts(parts, ());
    let response = respond(&mut req, body, &conn, &shared, &generation, &mut note).await;
    let status = response.status().as_u16();
    if conn.framing.is_some() && (status == 101 || says_close(response.headers())) {
        conn.activity.no_park();
    }
    let pool = note.pool.and_then(|p| generation.pools.get(p));
    let backend = pool.and_then(|pool| {
        let i = note.backend?;
        Some((i, pool.config.backends.get(i)?.address))
    });
    match pool {
        Some(pool) => {
            let name = &pool.config.name;
            pool.metrics.count(&shared.metrics, name, backend, status);
            pool.metrics
                .observe(&shared.metrics, name, started.elapsed().as_secs_f64());
        }
        None => {
            let none = || "-".to_string();
            shared
                .metrics
                .requests
                .get_or_create(&vec![
                    ("pool", none()),
                    ("backend", none()),
                    ("class", metrics::class(status)),
                ])
                .inc();
            shared
                .metrics
                .latency
                .get_or_create(&vec![("pool", none())])
                .observe(started.elapsed().as_secs_f64());
        }
    }
    if let (Some(log), Some((time, method, uri, version, host, user_agent))) =
        (&generation.access_log, logged)
    {
        log.log(&access_log::Entry {
            time,
            client: conn.client.ip().to_string(),
            method,
            uri,
            version: format!("{version:?}"),
            status,
            bytes: response.body().size_hint().exact(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            host,
            pool: pool.map(|p| p.config.name.clone()),
            backend: backend.map(|(_, a)| a.to_string()),
            user_agent,
        });
    }
    // The connection counts as busy until the body has been sent, so a long download is
    // not cut by the idle timeout.
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, ClientBody { body, _busy: busy })
}

/// A response body on its way to the client, holding its connection busy until dropped.
/// A struct rather than `map_frame(..).boxed_unsync()`: that was a second boxed layer
/// (an allocation and a dynamic call per frame) on every response.
pub struct ClientBody {
    body: ProxyBody,
    _busy: Busy,
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The host a request is for: the URI's authority (HTTP/2, absolute form) or `Host`,
/// lower case, without a port.
pub fn request_host<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    let host = match raw.rsplit_once(':') {
        // "[::1]:80" or "a:80", but not a bare IPv6 "[::1]".
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h,
        _ => raw,
    };
    Some(host.to_ascii_lowercase())
}

/// The route of a request: among routes for its host or for any host, the longest
/// matching prefix; at equal length, the one naming the host.
pub fn find_route<'a>(
    routes: &'a [RouteConfig],
    host: Option<&str>,
    path: &str,
) -> Option<&'a RouteConfig> {
    routes
        .iter()
        .filter(|r| r.host.is_none() || r.host.as_deref() == host)
        .filter(|r| path.starts_with(&r.path_prefix))
        .max_by_key(|r| (r.path_prefix.len(), r.host.is_some()))
}

/// A response made by the proxy itself: the configured error page for its status if there
/// is one, else the status line as text.
pub fn answer(generation: &Generation, status: StatusCode) -> Response<ProxyBody> {
    let (body, content_type) = match generation.config.error_pages.get(&status.as_u16()) {
        Some(page) => (page.clone(), "text/html; charset=utf-8"),
        None => (
            Bytes::from(format!(
                "{} {}\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )),
            "text/plain; charset=utf-8",
        ),
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn with_retry_after(mut response: Response<ProxyBody>, seconds: u64) -> Response<ProxyBody> {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn error_chain_has<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<E>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The framing of an HTTP/1 request as its client sent it (see [`crate::framing`]). Every
/// request whose head declared a body has an entry, and hyper leaves such a request one
/// `Content-Length` or `Transfer-Encoding`: those take theirs, in order.
fn framing(req: &Request<()>, conn: &ConnInfo) -> Framing {
    let Some(log) = &conn.framing else {
        return Framing::Unknown;
    };
    let h = req.headers();
    if !h.contains_key(header::CONTENT_LENGTH) && !h.contains_key(header::TRANSFER_ENCODING) {
        return Framing::Sound;
    }
    log.take(
        req.method().as_str(),
        req.uri().path_and_query().map_or("/", |p| p.as_str()),
    )
}

async fn respond(
    req: &mut Request<()>,
    body: Incoming,
    conn: &Arc<ConnInfo>,
    shared: &Arc<Shared>,
    generation: &Arc<Generation>,
    note: &mut Note,
) -> Response<ProxyBody> {
    if let Framing::Refused(why) = framing(req, conn) {
        tracing::debug!(client = %conn.client, reason = why.label(), "request smuggling refused");
        shared
            .metrics
            .smuggling_refused
            .get_or_create(&vec![("reason", why.label().to_string())])
            .inc();
        let mut response = answer(generation, StatusCode::BAD_REQUEST);
        // hyper closes the connection after a response that says so, unread body and all.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let config = &generation.config;
    let limits = &config.limits;
    let target_len = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    if target_len > limits.max_uri_bytes {
        return answer(generation, StatusCode::URI_TOO_LONG);
    }
    // HTTP/1 heads are bounded by hyper while reading; this covers HTTP/2's header lists.
    let head_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if req.headers().len() > limits.max_headers || head_bytes > limits.max_header_bytes {
        return answer(generation, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    if let Some(rate) = limits.rate {
        if let Err(wait) = shared.rate.take(conn.client.ip(), rate, Instant::now()) {
            shared.metrics.rate_limited.inc();
            let seconds = wait.as_secs_f64().ceil() as u64;
            return with_retry_after(answer(generation, StatusCode::TOO_MANY_REQUESTS), seconds);
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return answer(generation, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let host = request_host(req);
    let Some(route) = find_route(&config.routes, host.as_deref(), req.uri().path()) else {
        return answer(generation, StatusCode::NOT_FOUND);
    };
    let upstream = Upstream {
        host,
        conn: conn.clone(),
        shared: shared.clone(),
        generation: generation.clone(),
        route: config
            .routes
            .iter()
            .position(|r| std::ptr::eq(r, route))
            .unwrap_or(0),
    };
    let method = req.method().clone();
    let request_headers = route.compress.as_ref().map(|_| req.headers().clone());
    let cacheable = route.cache && cache::is_lookup(req);
    // The cache's futures are boxed: inline, their states would size every request's
    // future (moved whole into hyper's dispatcher, or into a task per HTTP/2 stream).
    let response = if cacheable {
        note.pool = Some(route.pool);
        Box::pin(shared.cache().serve(req, &upstream, note)).await
    } else {
        let mut response = upstream.forward(req, Some(body), note).await;
        if route.cache {
            let cache = shared.cache();
            Box::pin(cache.invalidate_after(req, response.status(), response.headers())).await;
            cache::mark_bypass(req, &mut response);
        }
        response
    };
    match (&route.compress, request_headers) {
        (Some(c), Some(h)) => compress::apply(c, &method, &h, response),
        _ => response,
    }
}

/// What sends a request to a route's pool: the client's connection, the shared state, the
/// config generation the request runs under and the route's index in it. Owned (`Arc`s), so
/// a background revalidation can outlive the request that started it.
#[derive(Clone)]
pub struct Upstream {
    /// The request's host ([`request_host`]), found once per request.
    pub host: Option<String>,
    pub conn: Arc<ConnInfo>,
    pub shared: Arc<Shared>,
    pub generation: Arc<Generation>,
    pub route: usize,
}

impl Upstream {
    pub fn route(&self) -> &RouteConfig {
        &self.generation.config.routes[self.route]
    }

    /// The persistence cookie name of the route's pool, if it has one.
    pub fn cookie_name(&self) -> Option<&str> {
        self.generation.pools[self.route().pool]
            .config
            .cookie
            .as_ref()
            .map(|c| c.name.as_str())
    }

    /// Forward `req` (with `body`, or none) to the route's pool: backend choice, retries,
    /// and the response on its way back.
    pub async fn forward(
        &self,
        req: &mut Request<()>,
        body: Option<Incoming>,
        note: &mut Note,
    ) -> Response<ProxyBody> {
        forward(req, body, self, note).await
    }
}

async fn forward(
    req: &mut Request<()>,
    body: Option<Incoming>,
    upstream: &Upstream,
    note: &mut Note,
) -> Response<ProxyBody> {
    let conn = &*upstream.conn;
    let shared = &*upstream.shared;
    let generation = &*upstream.generation;
    let route = upstream.route();
    let config = &generation.config;
    let limits = &config.limits;
    let pool = &generation.pools[route.pool];
    let client = &generation.clients[route.pool];
    note.pool = Some(route.pool);

    // Persistence: a valid cookie naming a usable backend wins; otherwise the balancer
    // picks and the response pins the client to its choice.
    let mut pinned = None;
    if let Some(c) = &pool.config.cookie {
        pinned = cookie::find(req.headers(), &c.name)
            .and_then(|value| cookie::verify(&c.key, &value).map(str::to_string))
            .and_then(|id| {
                pool.config
                    .backends
                    .iter()
                    .position(|b| cookie::backend_id(&pool.config.name, b.address) == id)
            })
            .filter(|&i| pool.usable(i));
    }

    let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut *req));
    let body_is_empty = body.as_ref().is_none_or(|b| b.is_end_stream());
    let retryable = is_idempotent(req.method()) && body_is_empty && !upgrade;

    // The request's fields as they go to a backend, made again for each retry: a retry is
    // rare, where keeping a spare copy for one cost a header-map clone on every request.
    let outgoing = |req: &Request<()>| {
        let mut out = req.headers().clone();
        headers::strip_hop_by_hop(&mut out, upgrade);
        out.reserve(headers::FIELDS_ADDED);
        if req.version() == Version::HTTP_2 && !out.contains_key(header::HOST) {
            if let Some(authority) = req.uri().authority() {
                if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                    out.insert(header::HOST, v);
                }
            }
        }
        headers::add_forwarding(
            &mut out,
            &Hop {
                client: conn.client,
                tls: conn.tls,
                host: upstream.host.as_deref(),
                version: req.version(),
            },
        );
        out
    };
    let mut first_headers = Some(outgoing(req));
    // An origin-form target (asterisk and authority forms have no place behind a proxy).
    let path_and_query = match req.uri().path_and_query() {
        Some(p) if p.as_str().starts_with('/') => p.clone(),
        Some(_) => return answer(generation, StatusCode::BAD_REQUEST),
        None => PathAndQuery::from_static("/"),
    };
    let method = req.method().clone();
    let max_body = limits.max_body_bytes;
    let mut body = body.map(|body| {
        Limited::new(
            body.map_err(|e| Box::new(ClientBodyError(e)) as BoxError),
            max_body as usize,
        )
        .boxed_unsync()
    });
    let response_timeout = Duration::from_millis(u64::from(config.timeouts.response_ms));

    let key = PickKey {
        client: conn.client.ip(),
        headers: req.headers(),
    };
    let mut tried: Vec<usize> = Vec::new();
    let mut last_error = StatusCode::BAD_GATEWAY;
    loop {
        let chosen = match pinned.take() {
            Some(i) => Some(i),
            None => pool.pick(&key, &tried),
        };
        let Some(i) = chosen else {
            if tried.is_empty() {
                return with_retry_after(
                    answer(generation, StatusCode::SERVICE_UNAVAILABLE),
                    pool.retry_after(),
                );
            }
            return answer(generation, last_error);
        };
        let backend = &pool.config.backends[i];
        let state = pool.backends[i].clone();
        note.backend = Some(i);
        let mut headers = first_headers.take().unwrap_or_else(|| outgoing(req));
        // HTTP/1.1 to the proxy's own connections takes the origin form and needs `Host`
        // (an HTTP/1.0 client may have sent none); hyper-util's HTTP/2 client takes the
        // absolute form.
        let uri = match client {
            PoolClient::Http1(_) => {
                if !headers.contains_key(header::HOST) {
                    if let Ok(v) = HeaderValue::from_str(pool.authorities[i].as_str()) {
                        headers.insert(header::HOST, v);
                    }
                }
                Uri::from(path_and_query.clone())
            }
            PoolClient::Http2(_) => {
                let mut uri = http::uri::Parts::default();
                uri.scheme = Some(Scheme::HTTP);
                uri.authority = Some(pool.authorities[i].clone());
                uri.path_and_query = Some(path_and_query.clone());
                let Ok(uri) = Uri::from_parts(uri) else {
                    return answer(generation, StatusCode::BAD_REQUEST);
                };
                uri
            }
        };
        let mut out = Request::new(body.take().unwrap_or_else(empty));
        *out.method_mut() = method.clone();
        *out.uri_mut() = uri;
        *out.headers_mut() = headers;
        let in_flight = InFlight::new(state.clone());
        let send = async {
            match client {
                PoolClient::Http1(conns) => conns[i]
                    .send(out)
                    .await
                    .map(|(response, lease)| (response, Some(lease))),
                PoolClient::Http2(client) => match client.request(out).await {
                    Ok(response) => Ok((response, None)),
                    Err(e) => Err(Box::new(e) as BoxError),
                },
            }
        };
        let sent = tokio::time::timeout(response_timeout, send).await;
        let failure = match sent {
            Ok(Ok((response, lease))) => {
                let status = response.status();
                if status == StatusCode::SWITCHING_PROTOCOLS && client_upgrade.is_some() {
                    if let Some(framing) = &conn.framing {
                        framing.upgraded();
                    }
                }
                if status.is_server_error() {
                    eject_on_failure(shared, pool, i);
                } else {
                    state.record_success();
                }
                let set_cookie = pool
                    .config
                    .cookie
                    .as_ref()
                    .filter(|_| cookie_missing_or_stale(req, pool, i))
                    .map(|c| {
                        cookie::set_cookie(
                            &c.name,
                            &c.key,
                            &cookie::backend_id(&pool.config.name, backend.address),
                            conn.tls,
                        )
                    });
                return finish_response(
                    response,
                    Held { in_flight, lease },
                    route,
                    pool,
                    generation,
                    set_cookie,
                    client_upgrade,
                );
            }
            Ok(Err(e)) => {
                if error_chain_has::<http_body_util::LengthLimitError>(&*e) {
                    return answer(generation, StatusCode::PAYLOAD_TOO_LARGE);
                }
                if error_chain_has::<ClientBodyError>(&*e) {
                    return answer(generation, StatusCode::BAD_REQUEST);
                }
                tracing::debug!(backend = %backend.address, error = %e, "forward failed");
                StatusCode::BAD_GATEWAY
            }
            Err(_) => StatusCode::GATEWAY_TIMEOUT,
        };
        eject_on_failure(shared, pool, i);
        last_error = failure;
        tried.push(i);
        if !retryable || tried.len() > pool.config.retries as usize {
            return answer(generation, failure);
        }
        shared
            .metrics
            .retries
            .get_or_create(&vec![("pool", pool.config.name.clone())])
            .inc();
    }
}

fn eject_on_failure(shared: &Shared, pool: &Pool, i: usize) {
    if pool.backends[i].record_failure(pool.config.max_fails, pool.config.eject_ms) {
        tracing::warn!(pool = %pool.config.name, backend = %pool.config.backends[i].address, "backend ejected");
        shared
            .metrics
            .ejections
            .get_or_create(&vec![
                ("pool", pool.config.name.clone()),
                ("backend", pool.config.backends[i].address.to_string()),
            ])
            .inc();
    }
}

/// Whether the request lacks a valid cookie for backend `i` (so the response sets one).
fn cookie_missing_or_stale<B>(req: &Request<B>, pool: &Pool, i: usize) -> bool {
    let Some(c) = &pool.config.cookie else {
        return false;
    };
    let id = cookie::backend_id(&pool.config.name, pool.config.backends[i].address);
    cookie::find(req.headers(), &c.name)
        .and_then(|v| cookie::verify(&c.key, &v).map(|got| got != id))
        .unwrap_or(true)
}

/// What a response holds of its backend until its body is through: the request's count
/// as outstanding, and the connection it came on (HTTP/1.1).
struct Held {
    in_flight: InFlight,
    lease: Option<Lease>,
}

/// The backend's response on its way to the client: hop-by-hop fields dropped, the backend
/// hidden, the persistence cookie set, the proxy's error page in place of the backend's
/// where the route says so, and a WebSocket upgrade bridged.
fn finish_response(
    response: Response<Incoming>,
    held: Held,
    route: &RouteConfig,
    pool: &Pool,
    generation: &Generation,
    set_cookie: Option<String>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ProxyBody> {
    let mut response = response;
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        if let Some(client_upgrade) = client_upgrade {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                // The backend connection is the tunnel's now: its lease is dropped with
                // the tunnel, never given back to the pool.
                let _held = held;
                match tokio::try_join!(client_upgrade, backend_upgrade) {
                    Ok((client, backend)) => {
                        let mut client = hyper_util::rt::TokioIo::new(client);
                        let mut backend = hyper_util::rt::TokioIo::new(backend);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            let (mut parts, _) = response.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, true);
            headers::hide_backend(&mut parts.headers, &pool.config.hide_headers, parts.version);
            parts.version = Version::HTTP_11;
            return Response::from_parts(parts, empty());
        }
    }
    let status = response.status();
    if route.intercept_errors
        && status.is_server_error()
        && generation.config.error_pages.contains_key(&status.as_u16())
    {
        return answer(generation, status);
    }
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    headers::hide_backend(&mut parts.headers, &pool.config.hide_headers, parts.version);
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    parts.version = Version::HTTP_11;
    let body = BackendBody {
        body,
        done: false,
        _in_flight: held.in_flight,
        lease: held.lease,
    }
    .boxed_unsync();
    Response::from_parts(parts, body)
}

/// A backend's response body on its way: the request counts as outstanding on its
/// backend until the body is through, and the backend connection goes back to its pool
/// only when the body was read to its end (dropped earlier, the connection is closed).
/// A struct rather than `map_err` + `map_frame`: one layer, no closure per frame.
struct BackendBody {
    body: Incoming,
    done: bool,
    _in_flight: InFlight,
    lease: Option<Lease>,
}

impl Body for BackendBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match polled {
            std::task::Poll::Ready(None) => {
                self.done = true;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Ready(Some(Err(e))) => {
                // A broken body leaves the connection in no state to reuse.
                self.lease = None;
                std::task::Poll::Ready(Some(Err(Box::new(e))))
            }
            std::task::Poll::Ready(Some(Ok(frame))) => std::task::Poll::Ready(Some(Ok(frame))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for BackendBody {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            if self.done || self.body.is_end_stream() {
                lease.give_back();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: &str, pool: usize) -> RouteConfig {
        RouteConfig {
            host: host.map(str::to_string),
            path_prefix: prefix.to_string(),
            pool,
            intercept_errors: false,
            cache: false,
            compress: None,
        }
    }

    #[test]
    fn longest_prefix_wins_and_a_named_host_breaks_ties() {
        let routes = vec![
            route(None, "/", 0),
            route(None, "/api/", 1),
            route(Some("a.example"), "/api/", 2),
            route(Some("b.example"), "/", 3),
        ];
        let pick = |host, path| find_route(&routes, host, path).map(|r| r.pool);
        assert_eq!(pick(None, "/x"), Some(0));
        assert_eq!(pick(None, "/api/v1"), Some(1));
        assert_eq!(pick(Some("a.example"), "/api/v1"), Some(2));
        assert_eq!(pick(Some("a.example"), "/other"), Some(0));
        assert_eq!(pick(Some("b.example"), "/other"), Some(3));
        assert_eq!(pick(Some("b.example"), "/api/v1"), Some(1));
        assert_eq!(find_route(&routes[1..2], None, "/nope"), None);
    }

    #[test]
    fn the_host_loses_its_port_and_case() {
        let req = |host: &str| {
            Request::builder()
                .uri("/")
                .header(header::HOST, host)
                .body(())
                .unwrap()
        };
        assert_eq!(
            request_host(&req("Example.COM:8080")).as_deref(),
            Some("example.com")
        );
        assert_eq!(request_host(&req("[::1]:80")).as_deref(), Some("[::1]"));
        assert_eq!(request_host(&req("[::1]")).as_deref(), Some("[::1]"));
    }
}
