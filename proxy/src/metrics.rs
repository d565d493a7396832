//! Prometheus metrics (prometheus-client, as the L4 admin API uses): requests by pool,
//! backend and status class, latency histograms, connections, TLS handshakes,
//! rate-limited requests, ejections, retries and reloads.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

pub type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<Labels, Counter>,
    pub latency: Family<Labels, Histogram>,
    pub active_connections: Gauge,
    pub parked_connections: Gauge,
    pub connections: Counter,
    pub refused_connections: Family<Labels, Counter>,
    pub tls_handshakes: Family<Labels, Counter>,
    pub rate_limited: Counter,
    pub ejections: Family<Labels, Counter>,
    pub retries: Family<Labels, Counter>,
    pub reloads: Family<Labels, Counter>,
    pub smuggling_refused: Family<Labels, Counter>,
    pub cache: crate::cache::CacheMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("flowgate_proxy");
        let requests = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram>::new_with_constructor(|| {
            // 100 µs .. ~6.5 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        let active_connections = Gauge::default();
        let parked_connections = Gauge::default();
        let connections = Counter::default();
        let refused_connections = Family::<Labels, Counter>::default();
        let tls_handshakes = Family::<Labels, Counter>::default();
        let rate_limited = Counter::default();
        let ejections = Family::<Labels, Counter>::default();
        let retries = Family::<Labels, Counter>::default();
        let reloads = Family::<Labels, Counter>::default();
        let smuggling_refused = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by pool, backend and status class",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head, by pool",
            latency.clone(),
        );
        registry.register(
            "active_connections",
            "Client connections open",
            active_connections.clone(),
        );
        registry.register(
            "parked_connections",
            "Idle HTTP/1 client connections parked (held as a bare socket until their next request)",
            parked_connections.clone(),
        );
        registry.register(
            "connections",
            "Client connections accepted",
            connections.clone(),
        );
        registry.register(
            "refused_connections",
            "Client connections refused by a connection limit",
            refused_connections.clone(),
        );
        registry.register(
            "tls_handshakes",
            "TLS handshakes, by result and ALPN protocol",
            tls_handshakes.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests answered 429 by the per-client rate limit",
            rate_limited.clone(),
        );
        registry.register(
            "ejections",
            "Passive-health ejections, by pool and backend",
            ejections.clone(),
        );
        registry.register(
            "retries",
            "Requests retried on another backend, by pool",
            retries.clone(),
        );
        registry.register("reloads", "Config reloads, by result", reloads.clone());
        registry.register(
            "smuggling_refused",
            "HTTP/1 requests answered 400 for ambiguous framing (RFC 9112 section 6), by reason",
            smuggling_refused.clone(),
        );
        let cache = crate::cache::CacheMetrics {
            hits: Counter::default(),
            misses: Counter::default(),
            revalidations: Family::default(),
            stale_served: Counter::default(),
            coalesced: Counter::default(),
            evictions: Counter::default(),
            stored_bytes: Gauge::default(),
            purged: Counter::default(),
            invalidations: Counter::default(),
        };
        registry.register(
            "cache_hits",
            "Requests answered from the cache without contacting a backend",
            cache.hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Cache lookups that found nothing usable and went to a backend",
            cache.misses.clone(),
        );
        registry.register(
            "cache_revalidations",
            "Stale entries revalidated with a backend, by result (not-modified, modified, error)",
            cache.revalidations.clone(),
        );
        registry.register(
            "cache_stale_served",
            "Stale responses served (stale-while-revalidate, stale-if-error)",
            cache.stale_served.clone(),
        );
        registry.register(
            "cache_coalesced",
            "Misses that waited for another request's backend fetch of the same key",
            cache.coalesced.clone(),
        );
        registry.register(
            "cache_evictions",
            "Entries evicted to stay within [cache] max_bytes",
            cache.evictions.clone(),
        );
        registry.register(
            "cache_stored_bytes",
            "Bytes held by the cache (bodies, headers, bookkeeping)",
            cache.stored_bytes.clone(),
        );
        registry.register(
            "cache_purged",
            "Entries removed by the admin API's purge",
            cache.purged.clone(),
        );
        registry.register(
            "cache_invalidations",
            "Entries removed after an unsafe method's answer (RFC 9111 section 4.4)",
            cache.invalidations.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            active_connections,
            parked_connections,
            connections,
            refused_connections,
            tls_handshakes,
            rate_limited,
            ejections,
            retries,
            reloads,
            smuggling_refused,
            cache,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// One pool's handles into the per-request families, resolved on first use and kept for
/// the pool's generation: a request then counts with an atomic add instead of building
/// its label set (three `String`s) and looking it up in the family's map, which was the
/// larger part of the metrics' cost per request. A series still appears only once used.
#[derive(Debug)]
pub struct PoolMetrics {
    /// Per backend, then one for "no backend" (`-`); per status class 1xx..5xx.
    requests: Vec<[OnceLock<Counter>; 5]>,
    latency: OnceLock<Histogram>,
}

impl PoolMetrics {
    pub fn new(backends: usize) -> PoolMetrics {
        PoolMetrics {
            requests: (0..=backends).map(|_| Default::default()).collect(),
            latency: OnceLock::new(),
        }
    }

    /// Count a request of pool `pool` answered by backend `backend` (its index and
    /// address; `None`: no backend) with `status`.
    pub fn count(
        &self,
        metrics: &Metrics,
        pool: &str,
        backend: Option<(usize, std::net::SocketAddr)>,
        status: u16,
    ) {
        let labels = || {
            vec![
                ("pool", pool.to_string()),
                (
                    "backend",
                    backend.map_or_else(|| "-".to_string(), |(_, a)| a.to_string()),
                ),
                ("class", class(status)),
            ]
        };
        let slot = backend.map_or(self.requests.len() - 1, |(i, _)| i);
        let class_index = usize::from(status / 100).wrapping_sub(1);
        match self
            .requests
            .get(slot)
            .and_then(|classes| classes.get(class_index))
        {
            Some(cell) => cell
                .get_or_init(|| metrics.requests.get_or_create(&labels()).clone())
                .inc(),
            None => metrics.requests.get_or_create(&labels()).inc(),
        };
    }

    /// Observe a request's duration in pool `pool`.
    pub fn observe(&self, metrics: &Metrics, pool: &str, seconds: f64) {
        self.latency
            .get_or_init(|| {
                metrics
                    .latency
                    .get_or_create(&vec![("pool", pool.to_string())])
                    .clone()
            })
            .observe(seconds);
    }
}

/// `2xx`, `4xx`, ... of a status.
pub fn class(status: u16) -> String {
    format!("{}xx", status / 100)
}
