//! The shared HTTP cache (RFC 9111) of routes with `cache = true`.
//!
//! The rules come from `http-cache-semantics` (`CachePolicy`: storability, freshness from
//! `s-maxage`/`max-age`/`Expires`/heuristics, request directives, `Age`, `Vary` matching,
//! revalidation headers and the 304 merge), the storage from `moka` (bounded by the bytes of
//! what is stored, `[cache] max_bytes`). What this module adds is the proxy's part:
//!
//! - One primary key per effective URI (host without port + path and query); under it, one
//!   variant per set of selecting headers (`Vary`), newest first. GET responses are stored;
//!   HEAD is answered from a stored GET, and goes to the backend as HEAD on a miss (its
//!   answer is not stored) or when the stored GET is stale (a 200 with agreeing
//!   validators then updates the stored GET's fields, §4.3.5). `Vary: *` responses are
//!   not stored (§4.1), nor, unless
//!   `[cache] store_set_cookie = true`, responses with a backend's `Set-Cookie` (which
//!   is then stored without it).
//! - Bodies are stored identity-encoded (the request to the backend loses `Accept-Encoding`),
//!   and compression per client happens on the way out, so one copy serves every coding.
//! - A miss streams the backend's body to the client while a copy fills; the copy is stored
//!   when the body ends, and dropped past `max_object_bytes` (the client still gets it all).
//! - Concurrent misses for one key wait for the first (request coalescing) and are then
//!   answered from what it stored.
//! - Stale entries are revalidated with the backend (`If-None-Match`/`If-Modified-Since`);
//!   a 304 refreshes the stored headers, every value of each field kept (§3.2). `stale-while-revalidate` answers stale at once and
//!   revalidates in the background; `stale-if-error` answers stale when the backend fails
//!   (RFC 5861).
//! - Unsafe methods with a non-error answer invalidate the target URI, and `Location` and
//!   `Content-Location` on the same host (RFC 9111 §4.4).
//! - Client conditionals (`If-None-Match`, `If-Modified-Since`) are answered 304 from a
//!   fresh entry (RFC 9110 §13.1); every answer of a caching route has `Cache-Status`
//!   (RFC 9211): `fwd=uri-miss` / `fwd=vary-miss` on a miss, `fwd=stale` on a
//!   revalidation, `fwd=method`/`fwd=bypass` for those that did not go through the cache.
//! - What the library reads is `targeted`: a valid `CDN-Cache-Control` (RFC 9213) in place
//!   of `Cache-Control` and `Expires`, directive names lower-cased, and `no-cache` /
//!   `private` with field names turned into not storing those fields (§5.2.2.4, §5.2.2.7).

use crate::forward::{full, request_host, Note, Upstream};
use crate::metrics::Metrics;
use crate::{BoxError, ProxyBody};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// The name this cache gives itself in `Cache-Status`.
const CACHE_NAME: &str = "flowgate";

/// One stored response.
pub struct Stored {
    policy: CachePolicy,
    status: StatusCode,
    /// As stored: hop-by-hop fields gone, `Date` present.
    headers: HeaderMap,
    body: Bytes,
    /// When it stops being fresh (from the policy when stored or last revalidated).
    fresh_until: SystemTime,
    /// The request's values of the fields `Vary` names: what tells variants apart.
    selecting: Vec<(String, Vec<HeaderValue>)>,
}

impl Stored {
    /// This response with `headers` (merged from a 304 or a HEAD) in place of its own and
    /// its freshness computed anew from them: status, body and variant kept.
    fn with_headers(&self, view: &Request<()>, headers: HeaderMap, now: SystemTime) -> Stored {
        let policy = policy_of(view, self.status, &headers, now);
        Stored {
            fresh_until: now + policy.time_to_live(now),
            policy,
            status: self.status,
            selecting: self.selecting.clone(),
            headers,
            body: self.body.clone(),
        }
    }
}

/// The variants stored under one URI, newest first.
type Variants = Arc<Vec<Arc<Stored>>>;

/// What an entry costs besides its body and header bytes (the policy, the Arcs, the map
/// slot): a rough fixed figure for the weigher.
const ENTRY_OVERHEAD: usize = 256;

fn weight(key: &str, variants: &Variants) -> u32 {
    let bytes: usize = variants
        .iter()
        .map(|v| {
            v.body.len()
                + ENTRY_OVERHEAD
                + v.headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    u32::try_from(bytes + key.len()).unwrap_or(u32::MAX)
}

/// Counters the cache keeps (registered in [`Metrics`]).
#[derive(Clone)]
pub struct CacheMetrics {
    pub hits: prometheus_client::metrics::counter::Counter,
    pub misses: prometheus_client::metrics::counter::Counter,
    pub revalidations: prometheus_client::metrics::family::Family<
        crate::metrics::Labels,
        prometheus_client::metrics::counter::Counter,
    >,
    pub stale_served: prometheus_client::metrics::counter::Counter,
    pub coalesced: prometheus_client::metrics::counter::Counter,
    pub evictions: prometheus_client::metrics::counter::Counter,
    pub stored_bytes: prometheus_client::metrics::gauge::Gauge,
    pub purged: prometheus_client::metrics::counter::Counter,
    pub invalidations: prometheus_client::metrics::counter::Counter,
}

/// The cache: a moka store and the misses being filled.
pub struct Cache {
    store: moka::future::Cache<String, Variants>,
    config: crate::config::CacheConfig,
    /// Keys whose first miss is at the backend; later misses wait for it.
    filling: Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>,
    metrics: CacheMetrics,
}

impl Cache {
    pub fn new(config: crate::config::CacheConfig, metrics: &Metrics) -> Cache {
        let m = metrics.cache.clone();
        let evictions = m.evictions.clone();
        let store = moka::future::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|k: &String, v: &Variants| weight(k, v))
            .eviction_listener(move |_k, _v, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        Cache {
            store,
            config,
            filling: Arc::new(Mutex::new(HashMap::new())),
            metrics: m,
        }
    }

    pub fn config(&self) -> crate::config::CacheConfig {
        self.config
    }

    /// Bytes stored (bodies, headers, bookkeeping), after pending maintenance.
    pub async fn stored_bytes(&self) -> u64 {
        self.store.run_pending_tasks().await;
        self.store.weighted_size()
    }

    /// Answer a GET or HEAD of a caching route: from the cache, after revalidation, or
    /// from the backend (storing what may be stored).
    pub async fn serve(
        &self,
        req: &mut Request<()>,
        upstream: &Upstream,
        note: &mut Note,
    ) -> Response<ProxyBody> {
        let view = view(req);
        let key = primary_key(req);
        let mut waited = false;
        let mut leading = None;
        let mut miss;
        loop {
            let now = SystemTime::now();
            let found = self.lookup(&key, &view, now).await;
            miss = found.fwd();
            match found {
                Lookup::Fresh(stored) => {
                    self.metrics.hits.inc();
                    return from_cache(req, &stored, now, "hit");
                }
                Lookup::Stale(stored, conditional)
                    if !directives(view.headers())
                        .iter()
                        .any(|(d, _)| d == "only-if-cached") =>
                {
                    return self
                        .revalidate(req, &key, &view, stored, *conditional, upstream, note)
                        .await;
                }
                Lookup::Stale(..) | Lookup::UriMiss | Lookup::VaryMiss => {}
            }
            // RFC 9111 §5.2.1.7: only-if-cached and nothing usable stored: 504.
            if directives(view.headers())
                .iter()
                .any(|(d, _)| d == "only-if-cached")
            {
                let mut response = Response::new(crate::forward::empty());
                *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                add_cache_status(
                    response.headers_mut(),
                    &format!("{miss}; detail=only-if-cached"),
                );
                return response;
            }
            if waited {
                break;
            }
            // Request coalescing: wait for a fill of this key in progress, then look again;
            // with none in progress, a GET becomes the fill in the same step, so that two
            // concurrent misses cannot both find none and both go to the backend.
            let mut done = match self.join_fill(&key, *req.method() != Method::HEAD) {
                Joined::Wait(done) => done,
                Joined::Lead(fill) => {
                    leading = Some(fill);
                    break;
                }
                Joined::Alone => break,
            };
            self.metrics.coalesced.inc();
            let patience =
                Duration::from_millis(u64::from(upstream.generation.config.timeouts.response_ms));
            let _ = tokio::time::timeout(patience, done.wait_for(|d| *d)).await;
            waited = true;
        }
        self.metrics.misses.inc();
        let mut out = view.clone_head();
        if *req.method() == Method::HEAD {
            // RFC 9110 §9.3.2: a HEAD goes to the backend as HEAD; its answer has no body,
            // so nothing is stored from it (RFC 9111 §4.3.5 only lets it update a stored
            // GET's headers, which a miss has none of).
            *out.method_mut() = Method::HEAD;
            let mut response = upstream.forward(&mut out, None, note).await;
            let note = format!("{miss}; fwd-status={}", response.status().as_u16());
            add_cache_status(response.headers_mut(), &note);
            return response;
        }
        let fill = leading.or_else(|| self.begin_fill(&key));
        let response = upstream.forward(&mut out, None, note).await;
        self.store_response(&key, &view, response, upstream, fill, miss)
    }

    async fn lookup(&self, key: &str, view: &Request<()>, now: SystemTime) -> Lookup {
        let Some(variants) = self.store.get(key).await else {
            return Lookup::UriMiss;
        };
        for stored in variants.iter() {
            match stored.policy.before_request(view, now) {
                BeforeRequest::Fresh(_) => return Lookup::Fresh(stored.clone()),
                BeforeRequest::Stale {
                    request,
                    matches: true,
                } => return Lookup::Stale(stored.clone(), Box::new(request)),
                BeforeRequest::Stale { matches: false, .. } => {}
            }
        }
        Lookup::VaryMiss
    }

    /// Mark `key` as being filled (unless another request already is).
    fn begin_fill(&self, key: &str) -> Option<Fill> {
        match self.join_fill(key, true) {
            Joined::Lead(fill) => Some(fill),
            Joined::Wait(_) | Joined::Alone => None,
        }
    }

    /// Under one lock: the fill of `key` in progress to wait on, or (with `lead`) a new
    /// fill of `key` that this request makes.
    fn join_fill(&self, key: &str, lead: bool) -> Joined {
        let mut filling = self.filling.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = filling.get(key) {
            return Joined::Wait(done.clone());
        }
        if !lead {
            return Joined::Alone;
        }
        let (tx, rx) = watch::channel(false);
        filling.insert(key.to_string(), rx);
        Joined::Lead(Fill {
            key: key.to_string(),
            done: tx,
            filling: self.filling.clone(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn revalidate(
        &self,
        req: &Request<()>,
        key: &str,
        view: &Request<()>,
        stored: Arc<Stored>,
        conditional: http::request::Parts,
        upstream: &Upstream,
        note: &mut Note,
    ) -> Response<ProxyBody> {
        let now = SystemTime::now();
        let staleness = now
            .duration_since(stored.fresh_until)
            .unwrap_or(Duration::ZERO);
        let response_cc = directives(&targeted(&stored.headers));
        let request_cc = directives(view.headers());
        // RFC 9111 §4.2.4: no stale answer where a directive forbids it; `s-maxage` carries
        // `proxy-revalidate` for a shared cache (§5.2.2.10).
        let only_stale = now >= stored.fresh_until
            && !request_cc
                .iter()
                .any(|(d, _)| matches!(d.as_str(), "no-cache" | "max-age" | "min-fresh"))
            && !response_cc.iter().any(|(d, _)| {
                matches!(
                    d.as_str(),
                    "no-cache" | "must-revalidate" | "proxy-revalidate" | "s-maxage"
                )
            })
            && !pragma_no_cache(view.headers());
        // RFC 5861 §3: stale-while-revalidate: answer now, refresh in the background.
        if only_stale && within(&response_cc, "stale-while-revalidate", staleness) {
            if let Some(fill) = self.begin_fill(key) {
                let cache = self.clone_handle();
                let upstream = upstream.clone();
                let view = view.clone_head();
                let key = key.to_string();
                let stored = stored.clone();
                let mut conditional = Request::from_parts(conditional, ());
                tokio::spawn(async move {
                    let mut note = Note::default();
                    let response = upstream.forward(&mut conditional, None, &mut note).await;
                    let outcome = cache.after_revalidation(
                        &view,
                        &key,
                        &stored,
                        response,
                        &upstream,
                        Some(fill),
                    );
                    if let Revalidated::Replaced(response) = outcome {
                        // Read the new body through, which stores it.
                        let _ = response.into_body().collect().await;
                    }
                });
            }
            self.metrics.stale_served.inc();
            return from_cache(
                req,
                &stored,
                now,
                "hit; fwd=stale; detail=stale-while-revalidate",
            );
        }
        let mut out = Request::from_parts(conditional, ());
        let head = *req.method() == Method::HEAD;
        if head {
            // RFC 9110 §9.3.2: a HEAD goes to the backend as HEAD, stale entry or not.
            *out.method_mut() = Method::HEAD;
        }
        // The client's own conditionals are answered here, not by the backend.
        let response = upstream.forward(&mut out, None, note).await;
        let failed = matches!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        );
        // RFC 5861 §4: stale-if-error, from the response or the request.
        if failed
            && only_stale
            && (within(&response_cc, "stale-if-error", staleness)
                || within(&request_cc, "stale-if-error", staleness))
        {
            self.metrics.stale_served.inc();
            self.metrics
                .revalidations
                .get_or_create(&vec![("result", "error".to_string())])
                .inc();
            return from_cache(
                req,
                &stored,
                now,
                &format!(
                    "fwd=stale; fwd-status={}; detail=stale-if-error",
                    response.status().as_u16()
                ),
            );
        }
        if head && response.status() == StatusCode::OK {
            return self.update_from_head(req, key, view, &stored, response);
        }
        if head && response.status() != StatusCode::NOT_MODIFIED {
            // Any other answer to a HEAD has no body: it goes on, and never takes the
            // stored GET's place.
            let mut response = response;
            let note = format!("fwd=stale; fwd-status={}", response.status().as_u16());
            add_cache_status(response.headers_mut(), &note);
            return response;
        }
        match self.after_revalidation(view, key, &stored, response, upstream, None) {
            Revalidated::Refreshed(fresh) => {
                from_cache(req, &fresh, SystemTime::now(), "fwd=stale; fwd-status=304")
            }
            Revalidated::Replaced(response) => response,
        }
    }

    /// RFC 9111 §4.3.5: a 200 to a HEAD updates the stored GET it could stand for when
    /// their validators (ETag, Last-Modified) agree and its `Content-Length`, if any, is the
    /// stored body's; the HEAD is then answered from the updated entry. Otherwise the
    /// stored response stays stale and the HEAD's answer goes on as it is.
    fn update_from_head(
        &self,
        req: &Request<()>,
        key: &str,
        view: &Request<()>,
        stored: &Arc<Stored>,
        mut response: Response<ProxyBody>,
    ) -> Response<ProxyBody> {
        let h = response.headers();
        let agrees = |name: &HeaderName| match (h.get(name), stored.headers.get(name)) {
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let same_length = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_none_or(|n| n == stored.body.len() as u64);
        if !(agrees(&header::ETAG) && agrees(&header::LAST_MODIFIED) && same_length) {
            add_cache_status(response.headers_mut(), "fwd=stale; fwd-status=200");
            return response;
        }
        let now = SystemTime::now();
        let mut headers = stored.headers.clone();
        merge_304(&mut headers, h);
        // `view` is the request as a GET: the entry goes on answering GETs.
        let fresh = Arc::new(stored.with_headers(view, headers, now));
        self.metrics
            .revalidations
            .get_or_create(&vec![("result", "head".to_string())])
            .inc();
        self.put(key.to_string(), fresh.clone(), None);
        from_cache(req, &fresh, now, "fwd=stale; fwd-status=200; detail=head")
    }

    /// Act on the backend's answer to a revalidation: a matching 304 refreshes the entry's
    /// headers (RFC 9111 §4.3.4); anything else replaces it (stored if storable).
    fn after_revalidation(
        &self,
        view: &Request<()>,
        key: &str,
        stored: &Arc<Stored>,
        response: Response<ProxyBody>,
        upstream: &Upstream,
        fill: Option<Fill>,
    ) -> Revalidated {
        let now = SystemTime::now();
        if response.status() == StatusCode::NOT_MODIFIED {
            // RFC 9111 §4.3.4: a 304 with validators refreshes the stored response they
            // match (the library's check); one with none at all can only be about the
            // one stored response whose validators this cache sent, so it refreshes that
            // one (the library asks that the stored response have no validator either,
            // and the 304 would then reach a client that asked nothing conditional).
            let bare = !response.headers().contains_key(header::ETAG)
                && !response.headers().contains_key(header::LAST_MODIFIED);
            let matched = matches!(
                stored.policy.after_response(
                    view,
                    &for_policy(response.status(), response.headers()),
                    now,
                ),
                AfterResponse::NotModified(..)
            );
            if matched || bare {
                self.metrics
                    .revalidations
                    .get_or_create(&vec![("result", "not-modified".to_string())])
                    .inc();
                let mut headers = stored.headers.clone();
                merge_304(&mut headers, response.headers());
                // The library's refreshed policy keeps one value per field (it merges with
                // `HeaderMap::insert`), so a second `Cache-Control` line would be lost to
                // freshness: the policy is rebuilt from the merged fields, all values kept
                // (RFC 9111 §3.2, §4.3.4).
                let fresh = Arc::new(stored.with_headers(view, headers, now));
                self.put(key.to_string(), fresh.clone(), fill);
                return Revalidated::Refreshed(fresh);
            }
        }
        self.metrics
            .revalidations
            .get_or_create(&vec![("result", "modified".to_string())])
            .inc();
        Revalidated::Replaced(self.store_response(key, view, response, upstream, fill, "fwd=stale"))
    }

    /// A handle on the same store for a background task.
    fn clone_handle(&self) -> Cache {
        Cache {
            store: self.store.clone(),
            config: self.config,
            filling: self.filling.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Pass the backend's response on, storing a copy when RFC 9111 §3 allows.
    #[allow(clippy::too_many_arguments)]
    fn store_response(
        &self,
        key: &str,
        view: &Request<()>,
        response: Response<ProxyBody>,
        upstream: &Upstream,
        fill: Option<Fill>,
        status_note: &str,
    ) -> Response<ProxyBody> {
        let now = SystemTime::now();
        let (mut parts, body) = response.into_parts();
        if !parts.headers.contains_key(header::DATE) {
            // RFC 9110 §6.6.1: a cache adds the Date it received the response at.
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
                parts.headers.insert(header::DATE, v);
            }
        }
        let mut stored_headers = parts.headers.clone();
        remove_unstorable(&mut stored_headers);
        // The policy reads what is stored: the library counts a shared response with
        // `Set-Cookie` as stale at once, and the cookie is not what is stored.
        let policy = policy_of(view, parts.status, &stored_headers, now);
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // The proxy's own persistence cookie belongs to this client and says nothing about
        // the resource; only the backend's cookies count.
        let own = upstream.cookie_name().map(|name| format!("{name}="));
        let backend_cookie = parts.headers.get_all(header::SET_COOKIE).iter().any(|v| {
            own.as_ref()
                .is_none_or(|own| !v.as_bytes().starts_with(own.as_bytes()))
        });
        let storable = policy.is_storable()
            && parts.status != StatusCode::PARTIAL_CONTENT
            && parts.status != StatusCode::NOT_MODIFIED
            // RFC 9111 §4.1: a `Vary: *` response never matches a later request.
            && !vary_names(&parts.headers).iter().any(|n| n == "*")
            && (self.config.store_set_cookie || !backend_cookie)
            && length.is_none_or(|n| n <= self.config.max_object_bytes);
        let mut cache_status = format!("{status_note}; fwd-status={}", parts.status.as_u16());
        if !storable {
            add_cache_status(&mut parts.headers, &cache_status);
            drop(fill);
            return Response::from_parts(parts, body);
        }
        cache_status.push_str("; stored");
        add_cache_status(&mut parts.headers, &cache_status);
        let cache = self.clone_handle();
        let status = parts.status;
        let limit = self.config.max_object_bytes;
        let selecting = selecting(&vary_names(&stored_headers), view.headers());
        let key = key.to_string();
        let on_done = move |body: Bytes| {
            let stored = Arc::new(Stored {
                fresh_until: now + policy.time_to_live(now),
                policy,
                status,
                selecting,
                headers: stored_headers,
                body,
            });
            cache.put(key, stored, fill);
        };
        let body = Tee::new(body, limit, Box::new(on_done)).boxed_unsync();
        Response::from_parts(parts, body)
    }

    /// Store `stored` under `key` (newest first among its variants; a variant with the same
    /// selecting headers replaced), then let waiters of `fill` look again.
    fn put(&self, key: String, stored: Arc<Stored>, fill: Option<Fill>) {
        let store = self.store.clone();
        let gauge = self.metrics.stored_bytes.clone();
        tokio::spawn(async move {
            let mut variants: Vec<Arc<Stored>> = vec![stored.clone()];
            if let Some(old) = store.get(&key).await {
                variants.extend(
                    old.iter()
                        .filter(|o| o.selecting != stored.selecting)
                        .cloned(),
                );
            }
            store.insert(key, Arc::new(variants)).await;
            store.run_pending_tasks().await;
            gauge.set(i64::try_from(store.weighted_size()).unwrap_or(i64::MAX));
            drop(fill);
        });
    }

    /// RFC 9111 §4.4: after an unsafe method's non-error answer, the target URI and the
    /// same-host `Location` / `Content-Location` are invalidated.
    pub async fn invalidate_after(
        &self,
        req: &Request<()>,
        status: StatusCode,
        response_headers: &HeaderMap,
    ) {
        if is_safe(req.method()) {
            return;
        }
        if !(status.is_success() || status.is_redirection()) {
            return;
        }
        let host = request_host(req).unwrap_or_default();
        let mut keys = vec![primary_key(req)];
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            if let Some(k) = response_headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| key_of_reference(&host, v))
            {
                keys.push(k);
            }
        }
        // Done before the response goes out, so the client's next request misses.
        for k in keys {
            if self.store.remove(&k).await.is_some() {
                self.metrics.invalidations.inc();
            }
        }
    }

    /// Purge by URL (`http://host/path?query`) or by prefix of it; how many were removed.
    pub async fn purge(&self, url: Option<&str>, prefix: Option<&str>) -> Result<u64, String> {
        let mut removed = 0;
        if let Some(url) = url {
            let key = key_of_url(url)?;
            if self.store.remove(&key).await.is_some() {
                removed += 1;
            }
        }
        if let Some(prefix) = prefix {
            let prefix = key_of_url(prefix)?;
            let keys: Vec<String> = self
                .store
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| (*k).clone())
                .collect();
            for k in keys {
                if self.store.remove(&k).await.is_some() {
                    removed += 1;
                }
            }
        }
        self.metrics.purged.inc_by(removed);
        self.store.run_pending_tasks().await;
        self.metrics
            .stored_bytes
            .set(i64::try_from(self.store.weighted_size()).unwrap_or(i64::MAX));
        Ok(removed)
    }
}

enum Lookup {
    Fresh(Arc<Stored>),
    Stale(Arc<Stored>, Box<http::request::Parts>),
    /// Nothing usable; `VaryMiss` when responses for the URI are stored but none has this
    /// request's selecting headers (RFC 9211 §2.2: `fwd=vary-miss`, else `fwd=uri-miss`).
    UriMiss,
    VaryMiss,
}

impl Lookup {
    /// The `Cache-Status` `fwd` parameter of a miss.
    fn fwd(&self) -> &'static str {
        match self {
            Lookup::VaryMiss => "fwd=vary-miss",
            _ => "fwd=uri-miss",
        }
    }
}

enum Revalidated {
    Refreshed(Arc<Stored>),
    Replaced(Response<ProxyBody>),
}

/// What [`Cache::join_fill`] found.
enum Joined {
    /// Another request is filling the key: wait for it.
    Wait(watch::Receiver<bool>),
    /// This request fills it.
    Lead(Fill),
    /// Nobody fills it, and this request does not either (a HEAD).
    Alone,
}

/// A miss being filled; dropping it wakes the requests coalesced on it.
struct Fill {
    key: String,
    done: watch::Sender<bool>,
    filling: Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>,
}

impl Drop for Fill {
    fn drop(&mut self) {
        self.filling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        self.done.send_replace(true);
    }
}

/// Whether a request is looked up in the cache (RFC 9111 §4: GET, and HEAD answered from
/// a stored GET); `Range` requests and upgrades go straight to the backend.
pub fn is_lookup<B>(req: &Request<B>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && !req.headers().contains_key(header::RANGE)
        && !crate::headers::is_upgrade(req.headers())
}

/// `Cache-Status` (RFC 9211 §2.2) on the answer to a request of a caching route that did
/// not go through the cache: `fwd=method` for a method it does not look up, `fwd=bypass`
/// for a GET or HEAD it passes by (a `Range` or an upgrade).
pub fn mark_bypass<B>(req: &Request<B>, response: &mut Response<ProxyBody>) {
    let why = if req.method() == Method::GET || req.method() == Method::HEAD {
        "bypass"
    } else {
        "method"
    };
    let note = format!("fwd={why}; fwd-status={}", response.status().as_u16());
    add_cache_status(response.headers_mut(), &note);
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The primary cache key: host (lower case, no port) and the request target.
fn primary_key<B>(req: &Request<B>) -> String {
    let host = request_host(req).unwrap_or_default();
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("{host}{target}")
}

/// The key of an absolute `http(s)://host[:port]/path?query` URL.
fn key_of_url(url: &str) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("'{url}' is not a URL"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("'{url}' names no host (expected http://host/path)"))?;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(format!("{}{target}", host.to_ascii_lowercase()))
}

/// The key of a `Location`-style reference, if it is on `host` (absolute or path-absolute).
fn key_of_reference(host: &str, reference: &str) -> Option<String> {
    if reference.starts_with('/') && !reference.starts_with("//") {
        return Some(format!("{host}{reference}"));
    }
    let key = key_of_url(reference).ok()?;
    key.starts_with(&format!("{host}/")).then_some(key)
}

/// How the cache sees a request, and what goes to the backend on a miss: as a GET (a HEAD
/// is answered from a stored GET), without hop-by-hop fields, `Accept-Encoding` (bodies are
/// stored identity-encoded) or the client's own validators (answered here from the stored
/// response, so the backend's full answer can be stored), with a `Host`.
fn view(req: &Request<()>) -> Request<()> {
    let mut headers = req.headers().clone();
    crate::headers::strip_hop_by_hop(&mut headers, false);
    for name in [
        header::ACCEPT_ENCODING,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ] {
        headers.remove(name);
    }
    if !headers.contains_key(header::HOST) {
        if let Some(v) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(header::HOST, v);
        }
    }
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut view = Request::new(());
    *view.method_mut() = Method::GET;
    *view.uri_mut() = target.parse().unwrap_or_default();
    *view.headers_mut() = headers;
    view
}

trait CloneHead {
    fn clone_head(&self) -> Request<()>;
}

impl CloneHead for Request<()> {
    fn clone_head(&self) -> Request<()> {
        let mut r = Request::new(());
        *r.method_mut() = self.method().clone();
        *r.uri_mut() = self.uri().clone();
        *r.version_mut() = self.version();
        *r.headers_mut() = self.headers().clone();
        r
    }
}

/// A response head as the policy library should read it: its dates in IMF-fixdate. The
/// library parses dates as RFC 2822 only, where HTTP recipients must also accept the
/// obsolete RFC 850 and asctime forms (RFC 9110 §5.6.7); `httpdate` reads all three. A
/// date that none of them parses stays as it is (an invalid `Expires` means "already
/// expired", RFC 9111 §5.3, which the library does for what it cannot parse).
fn for_policy(status: StatusCode, headers: &HeaderMap) -> http::response::Parts {
    let mut h = targeted(headers);
    for name in [header::DATE, header::EXPIRES, header::LAST_MODIFIED] {
        let normal = h
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
            .and_then(|t| HeaderValue::from_str(&httpdate::fmt_http_date(t)).ok());
        if let Some(v) = normal {
            h.insert(name, v);
        }
    }
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.headers = h;
    parts
}

/// Cache-Control directives (lower-case name, value without quotes).
fn directives(h: &HeaderMap) -> Vec<(String, Option<String>)> {
    h.get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let d = d.trim();
            if d.is_empty() {
                return None;
            }
            Some(match d.split_once('=') {
                Some((n, v)) => (
                    n.trim().to_ascii_lowercase(),
                    Some(v.trim().trim_matches('"').to_string()),
                ),
                None => (d.to_ascii_lowercase(), None),
            })
        })
        .collect()
}

/// Whether a request carries `Pragma: no-cache` that counts: RFC 9111 §5.4 ignores
/// `Pragma` when the request also has `Cache-Control`, and gives meaning only to
/// `no-cache`.
fn pragma_no_cache(request: &HeaderMap) -> bool {
    !request.contains_key(header::CACHE_CONTROL)
        && request
            .get_all(header::PRAGMA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
}

/// The directives of a `Cache-Control` value, split at commas outside quoted strings
/// (RFC 9110 §5.6.4: a quoted `extension="a, b"` is one directive).
fn split_directives(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|d| !d.is_empty());
    out
}

/// The field names of a qualified `no-cache="a, b"` / `private="a"` directive value.
fn field_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .trim_matches('"')
        .split(',')
        .map(|f| f.trim().to_ascii_lowercase())
        .filter(|f| !f.is_empty())
}

/// The response fields this shared cache decides by, as `http-cache-semantics` should read
/// them; the stored and forwarded fields stay as the backend sent them.
///
/// - RFC 9213 §2.1: a valid `CDN-Cache-Control` (a Structured Fields dictionary, RFC 8941,
///   parsed by `sfv`) is this cache's targeted field: its directives replace
///   `Cache-Control`, and `Expires` no longer counts. An invalid one is ignored whole, and
///   a directive whose value has the wrong type is dropped.
/// - RFC 9111 §5.2: directive names are case-insensitive (the library matches them as
///   written), so they are lower-cased.
/// - RFC 9111 §5.2.2.4 / §5.2.2.7: `no-cache` and `private` with a field list do not
///   stop storing or reuse; the listed fields are what is not stored (`remove_unstorable`),
///   so the qualified forms are not passed on (the library reads them as the bare ones).
fn targeted(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    if let Some(cc) = cdn_cache_control(headers) {
        h.remove(header::EXPIRES);
        h.remove(header::CACHE_CONTROL);
        if let Ok(v) = HeaderValue::from_str(&cc) {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
    let values: Vec<String> = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            split_directives(v)
                .into_iter()
                .filter_map(|d| {
                    let (name, value) = match d.split_once('=') {
                        Some((n, v)) => (n.to_ascii_lowercase(), Some(v)),
                        None => (d.to_ascii_lowercase(), None),
                    };
                    if value.is_some() && (name == "no-cache" || name == "private") {
                        return None;
                    }
                    Some(match value {
                        Some(v) => format!("{name}={v}"),
                        None => name,
                    })
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    if h.contains_key(header::CACHE_CONTROL) {
        h.remove(header::CACHE_CONTROL);
        for v in values.iter().filter(|v| !v.is_empty()) {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(header::CACHE_CONTROL, v);
            }
        }
    }
    h
}

/// `CDN-Cache-Control` (RFC 9213) as `Cache-Control` text, when present and valid.
fn cdn_cache_control(headers: &HeaderMap) -> Option<String> {
    let joined = headers
        .get_all("cdn-cache-control")
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<_>>>()?
        .join(", ");
    if joined.trim().is_empty() {
        return None;
    }
    let dictionary: sfv::Dictionary = sfv::Parser::new(&joined).parse().ok()?;
    let mut out = Vec::new();
    for (key, entry) in &dictionary {
        let sfv::ListEntry::Item(item) = entry else {
            continue;
        };
        let name = key.as_str();
        let numeric = matches!(
            name,
            "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error"
        );
        match &item.bare_item {
            sfv::BareItem::Integer(n) if numeric => out.push(format!("{name}={n}")),
            sfv::BareItem::Boolean(true) if !numeric => out.push(name.to_string()),
            sfv::BareItem::Token(t) if !numeric => out.push(format!("{name}={}", t.as_str())),
            sfv::BareItem::String(v) if !numeric => out.push(format!("{name}=\"{}\"", v.as_str())),
            _ => {}
        }
    }
    Some(out.join(", "))
}

/// Whether `staleness` is within the seconds of directive `name`.
fn within(cc: &[(String, Option<String>)], name: &str, staleness: Duration) -> bool {
    cc.iter()
        .find(|(d, _)| d == name)
        .and_then(|(_, v)| v.as_deref()?.parse::<u64>().ok())
        .is_some_and(|s| staleness <= Duration::from_secs(s))
}

/// The policy (RFC 9111 §3, §4.2) of a response to `view`, as a shared cache sees it.
fn policy_of(
    view: &Request<()>,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> CachePolicy {
    CachePolicy::new_options(
        view,
        &for_policy(status, headers),
        now,
        CacheOptions {
            shared: true,
            ..CacheOptions::default()
        },
    )
}

/// Fields a stored response must not keep. Hop-by-hop fields and those `Connection` names
/// are already gone (`finish_response`, RFC 9110 §7.6.1); these remain:
/// - RFC 9111 §3.1: the fields of the proxy a cache forwards through (`Proxy-Authenticate`,
///   `Proxy-Authentication-Info`; `Proxy-Authorization` is a request field).
/// - `Set-Cookie`: the proxy's persistence cookie belongs to one client, and a backend's is
///   stored only with `[cache] store_set_cookie = true`, never to be replayed to another
///   client (RFC 9111 §7.3 leaves this to the cache; Varnish and nginx do the same).
const UNSTORABLE: [&str; 3] = [
    "proxy-authenticate",
    "proxy-authentication-info",
    "set-cookie",
];

fn remove_unstorable(h: &mut HeaderMap) {
    crate::headers::strip_hop_by_hop(h, false);
    for name in UNSTORABLE {
        h.remove(name);
    }
    // RFC 9111 §5.2.2.4 / §5.2.2.7: the fields a `no-cache="..."` or (for a shared
    // cache) `private="..."` lists are not stored, the rest of the response may be.
    let listed: Vec<String> = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_directives)
        .filter_map(|d| {
            let (name, value) = d.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            (name == "no-cache" || name == "private").then(|| field_list(value).collect::<Vec<_>>())
        })
        .flatten()
        .collect();
    for name in listed {
        h.remove(name.as_str());
    }
}

/// RFC 9111 §3.2: a 304's fields replace the stored ones, except those describing the
/// stored body's framing and coding, and those never stored.
fn merge_304(stored: &mut HeaderMap, fresh: &HeaderMap) {
    let mut fresh = fresh.clone();
    remove_unstorable(&mut fresh);
    const KEEP: [&str; 5] = [
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "content-range",
        "cache-status",
    ];
    let names: Vec<HeaderName> = fresh.keys().cloned().collect();
    let fresh = &fresh;
    for name in names {
        if KEEP.contains(&name.as_str()) || name == header::VIA {
            continue;
        }
        stored.remove(&name);
        for v in fresh.get_all(&name) {
            stored.append(name.clone(), v.clone());
        }
    }
}

fn vary_names(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The values of the fields `vary` names in a request.
fn selecting(vary: &[String], request: &HeaderMap) -> Vec<(String, Vec<HeaderValue>)> {
    vary.iter()
        .map(|n| {
            (
                n.clone(),
                request.get_all(n.as_str()).iter().cloned().collect(),
            )
        })
        .collect()
}

/// Add `Cache-Status` (RFC 9211) with this cache's entry.
fn add_cache_status(h: &mut HeaderMap, params: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("{CACHE_NAME}; {params}")) {
        h.append(HeaderName::from_static("cache-status"), v);
    }
}

/// A response from a stored entry: its headers with `Age` (RFC 9111 §5.1) and
/// `Cache-Status`, or a 304 where the client's validators match (RFC 9110 §13.1.2/13.1.3).
fn from_cache(
    req: &Request<()>,
    stored: &Stored,
    now: SystemTime,
    status_note: &str,
) -> Response<ProxyBody> {
    let mut headers = stored.headers.clone();
    headers.insert(
        header::AGE,
        HeaderValue::from(stored.policy.age(now).as_secs()),
    );
    // RFC 9211 §2.7: ttl is negative once stale.
    let ttl = match stored.fresh_until.duration_since(now) {
        Ok(left) => left.as_secs() as i64,
        Err(past) => -(past.duration().as_secs() as i64),
    };
    headers.remove("cache-status");
    add_cache_status(&mut headers, &format!("{status_note}; ttl={ttl}"));
    if stored.status.is_success() && not_modified(req.headers(), &stored.headers) {
        const METADATA: [HeaderName; 8] = [
            header::CACHE_CONTROL,
            header::CONTENT_LOCATION,
            header::DATE,
            header::ETAG,
            header::EXPIRES,
            header::VARY,
            header::LAST_MODIFIED,
            header::AGE,
        ];
        let mut short = HeaderMap::new();
        for name in METADATA.iter().chain(&[header::VIA]) {
            for v in headers.get_all(name) {
                short.append(name.clone(), v.clone());
            }
        }
        for v in headers.get_all("cache-status") {
            short.append(HeaderName::from_static("cache-status"), v.clone());
        }
        let mut response = Response::new(crate::forward::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = short;
        return response;
    }
    let body = if *req.method() == Method::HEAD {
        crate::forward::empty()
    } else {
        full(stored.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = stored.status;
    *response.headers_mut() = headers;
    response
}

/// RFC 9110 §13.1.2 (`If-None-Match`, weak comparison) and §13.1.3 (`If-Modified-Since`,
/// only without `If-None-Match`).
fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let etag = stored
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|e| e.trim().trim_start_matches("W/"));
    let inm: Vec<&str> = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if !inm.is_empty() {
        return inm
            .iter()
            .any(|t| *t == "*" || etag.is_some_and(|e| e == t.trim_start_matches("W/")));
    }
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let modified = stored
        .get(header::LAST_MODIFIED)
        .or_else(|| stored.get(header::DATE))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (since, modified) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// A body passed through while a copy of it (up to `limit` bytes) fills; `on_done` gets
/// the copy when the body ended whole within the limit.
struct Tee {
    inner: ProxyBody,
    copy: Option<BytesMut>,
    limit: u64,
    on_done: Option<Box<dyn FnOnce(Bytes) + Send>>,
}

impl Tee {
    fn new(inner: ProxyBody, limit: u64, on_done: Box<dyn FnOnce(Bytes) + Send>) -> Tee {
        let mut tee = Tee {
            inner,
            copy: Some(BytesMut::new()),
            limit,
            on_done: Some(on_done),
        };
        if tee.inner.is_end_stream() {
            tee.finish();
        }
        tee
    }

    fn finish(&mut self) {
        if let (Some(copy), Some(done)) = (self.copy.take(), self.on_done.take()) {
            done(copy.freeze());
        }
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let fits = this
                        .copy
                        .as_ref()
                        .is_some_and(|c| (c.len() + data.len()) as u64 <= this.limit);
                    match (&mut this.copy, fits) {
                        (Some(copy), true) => copy.extend_from_slice(data),
                        _ => this.copy = None,
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(None) => this.finish(),
            // A body that failed is not stored.
            Poll::Ready(Some(Err(_))) => this.copy = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9110_5_6_7_obsolete_date_forms_reach_the_policy_as_imf_fixdate() {
        let mut h = HeaderMap::new();
        h.insert(
            header::EXPIRES,
            "Sunday, 06-Nov-94 08:49:37 GMT".parse().unwrap(),
        );
        h.insert(header::DATE, "Sun Nov  6 08:49:37 1994".parse().unwrap());
        h.insert(header::LAST_MODIFIED, "not a date".parse().unwrap());
        let p = for_policy(StatusCode::OK, &h);
        assert_eq!(p.headers[header::EXPIRES], "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(p.headers[header::DATE], "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(p.headers[header::LAST_MODIFIED], "not a date");
    }

    #[test]
    fn rfc9110_13_1_validators_compare_weakly_and_if_none_match_wins() {
        let mut stored = HeaderMap::new();
        stored.insert(header::ETAG, "\"a\"".parse().unwrap());
        stored.insert(
            header::LAST_MODIFIED,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        let req = |pairs: &[(HeaderName, &str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(n.clone(), v.parse().unwrap());
            }
            h
        };
        assert!(not_modified(
            &req(&[(header::IF_NONE_MATCH, "W/\"a\"")]),
            &stored
        ));
        assert!(not_modified(
            &req(&[(header::IF_NONE_MATCH, "\"x\", \"a\"")]),
            &stored
        ));
        assert!(not_modified(&req(&[(header::IF_NONE_MATCH, "*")]), &stored));
        assert!(!not_modified(
            &req(&[(header::IF_NONE_MATCH, "\"b\"")]),
            &stored
        ));
        // With If-None-Match present, If-Modified-Since is ignored (§13.2.2).
        assert!(!not_modified(
            &req(&[
                (header::IF_NONE_MATCH, "\"b\""),
                (header::IF_MODIFIED_SINCE, "Mon, 07 Nov 1994 08:49:37 GMT"),
            ]),
            &stored
        ));
        assert!(not_modified(
            &req(&[(header::IF_MODIFIED_SINCE, "Mon, 07 Nov 1994 08:49:37 GMT")]),
            &stored
        ));
        assert!(!not_modified(
            &req(&[(header::IF_MODIFIED_SINCE, "Sat, 05 Nov 1994 08:49:37 GMT")]),
            &stored
        ));
    }

    #[test]
    fn rfc9111_4_4_location_invalidates_only_on_the_same_host() {
        assert_eq!(
            key_of_reference("a.example", "/x?y").as_deref(),
            Some("a.example/x?y")
        );
        assert_eq!(
            key_of_reference("a.example", "http://A.example:8080/z").as_deref(),
            Some("a.example/z")
        );
        assert_eq!(key_of_reference("a.example", "http://b.example/z"), None);
        assert_eq!(key_of_reference("a.example", "//b.example/z"), None);
    }
}
