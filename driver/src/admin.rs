//! The admin HTTP API (axum), bound to loopback by default:
//!
//! | request | does |
//! | --- | --- |
//! | `GET /status` | JSON: VIPs, backends (index, weight, drain, health, up, slots, last check), counters; the tables' `version` and the `applied_version` the whole data path runs |
//! | `POST /backends/{vip}/{address}/drain` | stop new flows to the backend; established ones stay |
//! | `POST /backends/{vip}/{address}/undrain` | undo `drain` |
//! | `POST /backends/{vip}/{address}/weight?value=N` | set the weight (or JSON body `{"weight": N}`) until the next reload |
//! | `POST /reload` | re-read the config file; `400` with `FILE:LINE:COL: reason` when it is bad, and the running state stays |
//! | `GET /metrics` | Prometheus (OpenMetrics) text |
//!
//! Errors are JSON `{"error": "..."}` with 400 (bad request or config), 404 (no such
//! backend) or 500. [`client`] is the other end, for `flowgate ctl`.
//!
//! The metrics are encoded with `prometheus-client` from a snapshot of the data path's
//! counters taken at scrape time ([`CountersBoard`]), so the data path never touches a
//! metrics registry; check latency is a histogram filled by the health checker.

use crate::control::{BackendKey, ControlError, ControlPlane};
use crate::health::HealthBoard;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flowgate_core::{DropReason, Tables};
use flowgate_host::handoff::{BoardSnapshot, CountersBoard};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// What the API handlers share.
pub struct AdminState {
    pub control: Arc<ControlPlane>,
    pub health: Arc<HealthBoard>,
    pub counters: Arc<CountersBoard>,
}

/// The API's routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .route("/backends/{vip}/{address}/drain", post(drain))
        .route("/backends/{vip}/{address}/undrain", post(undrain))
        .route("/backends/{vip}/{address}/weight", post(weight))
        .with_state(state)
}

/// Serve the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match e {
            ControlError::NoSuchBackend(_) => StatusCode::NOT_FOUND,
            ControlError::WeightTooLarge(_)
            | ControlError::Config(_)
            | ControlError::Incompatible { .. }
            | ControlError::NoConfigFile => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

fn backend_key(vip: String, address: &str) -> Result<BackendKey, ApiError> {
    let address: IpAddr = address.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("'{address}' is not an IP address"),
        )
    })?;
    Ok(BackendKey { vip, address })
}

/// Run a control-plane operation off the async workers: Maglev rebuilds take milliseconds.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

async fn status(State(s): State<Arc<AdminState>>) -> Json<Value> {
    Json(status_json(&s))
}

/// The `/status` document.
pub fn status_json(s: &AdminState) -> Value {
    let snapshot = s.counters.load();
    let counters = &snapshot.counters;
    let vips: Vec<Value> = s
        .control
        .status()
        .into_iter()
        .map(|v| {
            let pb = counters
                .vips
                .get(v.index as usize)
                .copied()
                .unwrap_or_default();
            let backends: Vec<Value> = v
                .backends
                .iter()
                .map(|b| {
                    let key = BackendKey {
                        vip: v.name.clone(),
                        address: b.address,
                    };
                    let pb = counters
                        .backends
                        .get(b.index as usize)
                        .copied()
                        .unwrap_or_default();
                    json!({
                        "address": b.address, "index": b.index,
                        "weight": b.weight, "configured_weight": b.configured_weight,
                        "drained": b.drained, "healthy": b.healthy, "up": b.up,
                        "slots": b.slots, "packets": pb.packets, "bytes": pb.bytes,
                        "health": s.health.get(&key),
                    })
                })
                .collect();
            json!({
                "name": v.name, "index": v.index, "address": v.address, "port": v.port,
                "protocol": v.protocol, "packets": pb.packets, "bytes": pb.bytes,
                "backends": backends,
            })
        })
        .collect();
    let drops: serde_json::Map<String, Value> = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), json!(counters.dropped(*r))))
        .collect();
    let f = &counters.flow;
    json!({
        "version": s.control.watch().version(),
        "applied_version": snapshot.tables_version,
        "config": s.control.config_path().map(|p| p.display().to_string()),
        "vips": vips,
        "counters": {
            "frames_in": counters.frames_in, "forwarded": counters.forwarded,
            "passed": counters.passed, "dropped": drops,
            "flow": {
                "hits": f.hits, "misses": f.misses, "inserts": f.inserts,
                "evictions": f.evictions, "expirations": f.expirations,
                "refused": f.refused, "reselects": f.reselects,
            },
        },
    })
}

#[derive(serde::Deserialize)]
struct WeightQuery {
    value: Option<u32>,
}

#[derive(serde::Deserialize)]
struct WeightBody {
    weight: u32,
}

async fn drain(
    State(s): State<Arc<AdminState>>,
    Path((vip, address)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let key = backend_key(vip, &address)?;
    let control = s.control.clone();
    let k = key.clone();
    blocking(move || control.drain(&k)).await?;
    Ok(Json(json!({ "backend": key.to_string(), "drained": true })))
}

async fn undrain(
    State(s): State<Arc<AdminState>>,
    Path((vip, address)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let key = backend_key(vip, &address)?;
    let control = s.control.clone();
    let k = key.clone();
    blocking(move || control.undrain(&k)).await?;
    Ok(Json(
        json!({ "backend": key.to_string(), "drained": false }),
    ))
}

async fn weight(
    State(s): State<Arc<AdminState>>,
    Path((vip, address)): Path<(String, String)>,
    Query(query): Query<WeightQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = backend_key(vip, &address)?;
    let value = match query.value {
        Some(v) => v,
        None => {
            serde_json::from_slice::<WeightBody>(&body)
                .map_err(|e| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "give the weight as ?value=N or a JSON body {{\"weight\": N}}: {e}"
                        ),
                    )
                })?
                .weight
        }
    };
    let control = s.control.clone();
    let k = key.clone();
    blocking(move || control.set_weight(&k, value)).await?;
    Ok(Json(json!({ "backend": key.to_string(), "weight": value })))
}

async fn reload(State(s): State<Arc<AdminState>>) -> Result<Json<Value>, ApiError> {
    let control = s.control.clone();
    let summary = blocking(move || control.reload()).await.inspect_err(|e| {
        tracing::warn!(error = %e.1, "reload refused; the running config stays");
    })?;
    let names = |keys: &[BackendKey]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    Ok(Json(json!({
        "reloaded": true,
        "added": names(&summary.added),
        "removed": names(&summary.removed),
        "kept": summary.kept,
    })))
}

async fn metrics(State(s): State<Arc<AdminState>>) -> Result<Response, ApiError> {
    let text =
        metrics_text(&s).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The metrics exposition: data-path counters from the last snapshot, control-plane state,
/// and the health checker's latency histogram.
pub fn metrics_text(s: &AdminState) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("flowgate");
    registry.register_collector(Box::new(Snapshot {
        tables: s.control.tables(),
        counters: s.counters.load(),
        alive: s.control.status().iter().map(|v| v.index).collect(),
    }));
    registry.register(
        "health_check_duration_seconds",
        "Duration of health checks by VIP, backend and result",
        s.health.latency.clone(),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Everything read from one consistent snapshot at scrape time.
#[derive(Debug)]
struct Snapshot {
    tables: Arc<Tables>,
    counters: Arc<BoardSnapshot>,
    /// Indices of live (non-tombstone) VIPs.
    alive: Vec<u16>,
}

impl Snapshot {
    /// (vip index, vip name) of live VIPs.
    fn vips(&self) -> impl Iterator<Item = (usize, &str)> {
        self.alive
            .iter()
            .map(|&v| (v as usize, self.tables.vips[v as usize].name.as_str()))
    }

    /// (global index, vip name, address) of live backends.
    fn backends(&self) -> impl Iterator<Item = (usize, &str, String)> {
        self.vips().flat_map(move |(v, name)| {
            self.tables.vips[v].backends.iter().map(move |&b| {
                (
                    b as usize,
                    name,
                    self.tables.backends[b as usize].address.to_string(),
                )
            })
        })
    }
}

fn counter_family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge_family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.counters.counters;
        let t = &*self.tables;
        let vip_pb = |v: usize| c.vips.get(v).copied().unwrap_or_default();
        let be_pb = |b: usize| c.backends.get(b).copied().unwrap_or_default();
        counter_family(
            &mut e,
            "vip_packets",
            "Frames forwarded per VIP",
            self.vips()
                .map(|(v, n)| (vec![("vip", n.to_string())], vip_pb(v).packets)),
        )?;
        counter_family(
            &mut e,
            "vip_bytes",
            "Bytes (as received) forwarded per VIP",
            self.vips()
                .map(|(v, n)| (vec![("vip", n.to_string())], vip_pb(v).bytes)),
        )?;
        let labels = |n: &str, a: &str| vec![("vip", n.to_string()), ("backend", a.to_string())];
        counter_family(
            &mut e,
            "backend_packets",
            "Frames forwarded per backend",
            self.backends()
                .map(|(b, n, a)| (labels(n, &a), be_pb(b).packets)),
        )?;
        counter_family(
            &mut e,
            "backend_bytes",
            "Bytes (as received) forwarded per backend",
            self.backends()
                .map(|(b, n, a)| (labels(n, &a), be_pb(b).bytes)),
        )?;
        gauge_family(
            &mut e,
            "backend_up",
            "1 when the backend's up bit is set (healthy and not removed)",
            self.backends()
                .map(|(b, n, a)| (labels(n, &a), i64::from(t.backends[b].up))),
        )?;
        gauge_family(
            &mut e,
            "backend_weight",
            "Weight in force (0 = draining or down for new flows)",
            self.backends()
                .map(|(b, n, a)| (labels(n, &a), i64::from(t.backends[b].weight))),
        )?;
        let f = &c.flow;
        counter_family(
            &mut e,
            "flow_table_events",
            "Flow-table events by kind",
            [
                ("hit", f.hits),
                ("miss", f.misses),
                ("insert", f.inserts),
                ("eviction", f.evictions),
                ("expiration", f.expirations),
                ("refused", f.refused),
                ("reselect", f.reselects),
            ]
            .map(|(k, v)| (vec![("event", k.to_string())], v)),
        )?;
        counter_family(
            &mut e,
            "drops",
            "Dropped frames by reason",
            DropReason::ALL.map(|r| (vec![("reason", r.name().to_string())], c.dropped(r))),
        )?;
        counter_family(
            &mut e,
            "frames",
            "Frames by outcome",
            [
                ("in", c.frames_in),
                ("forwarded", c.forwarded),
                ("passed", c.passed),
            ]
            .map(|(k, v)| (vec![("outcome", k.to_string())], v)),
        )?;
        Ok(())
    }
}

/// The other end of the API, for `flowgate ctl` and tests.
pub mod client {
    use std::net::SocketAddr;
    use std::time::Duration;

    /// An answer: the HTTP status and the body.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Answer {
        pub status: u16,
        pub body: String,
    }

    impl Answer {
        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.status)
        }
    }

    fn http() -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
    }

    /// `GET {admin}{path}`.
    pub async fn get(admin: SocketAddr, path: &str) -> Result<Answer, reqwest::Error> {
        let r = http()?.get(format!("http://{admin}{path}")).send().await?;
        Ok(Answer {
            status: r.status().as_u16(),
            body: r.text().await?,
        })
    }

    /// `POST {admin}{path}` with an empty body.
    pub async fn post(admin: SocketAddr, path: &str) -> Result<Answer, reqwest::Error> {
        let r = http()?.post(format!("http://{admin}{path}")).send().await?;
        Ok(Answer {
            status: r.status().as_u16(),
            body: r.text().await?,
        })
    }

    /// The path of a backend operation (`drain`, `undrain`, `weight`); the VIP name is
    /// percent-encoded, so any name the config accepts can be addressed.
    pub fn backend_path(vip: &str, address: std::net::IpAddr, op: &str) -> String {
        let mut url = reqwest::Url::parse("http://x/backends").expect("constant URL");
        url.path_segments_mut()
            .expect("http URLs have paths")
            .push(vip)
            .push(&address.to_string())
            .push(op);
        url.path().to_string()
    }
}
