//! The admin HTTP API (axum), bound to loopback by default:
//!
//! | request | does |
//! | --- | --- |
//! | `GET /status` | JSON: VIPs, backends (index, weight, drain, health, up, slots, last check), counters; the tables' `version` and the `applied_version` the whole data path runs; `etcd`: the config's applied and refused revisions |
//! | `POST /backends/{vip}/{address}/drain` | stop new flows to the backend; established ones stay |
//! | `POST /backends/{vip}/{address}/undrain` | undo `drain` |
//! | `POST /backends/{vip}/{address}/weight?value=N` | set the weight (or JSON body `{"weight": N}`) until the next reload |
//! | `POST /node/drain` | withdraw every VIP from the BGP speaker (the node keeps forwarding what reaches it) |
//! | `POST /node/undrain` | announce again (VIPs with a backend up) |
//! | `POST /reload` | re-read the config file; `400` with `FILE:LINE:COL: reason` when it is bad, and the running state stays |
//! | `GET /metrics` | Prometheus (OpenMetrics) text |
//!
//! Errors are JSON `{"error": "..."}` with 400 (bad request or config), 401 (no or wrong
//! token), 404 (no such backend), 413 (body over [`MAX_BODY`]) or 500. [`client`] is the
//! other end, for `flowgate ctl`.
//!
//! Who gets in ([`AdminSecurity`]): with a bearer token (read from a file, never from the
//! command line, where `ps` shows it), every mutating request (anything but `GET`/`HEAD`)
//! must carry `Authorization: Bearer TOKEN`, and on an address that is not loopback every
//! request must; the API refuses to start on such an address without a token. The token
//! is compared in constant time (`subtle`). Without a token on loopback the API is open to
//! local users, as before (a warning says so). TLS (rustls, PEM certificate chain and key)
//! is optional.
//!
//! The metrics are encoded with `prometheus-client` from a snapshot of the data path's
//! counters taken at scrape time ([`CountersBoard`]), so the data path never touches a
//! metrics registry; check latency is a histogram filled by the health checker.

use crate::announce::NodeState;
use crate::control::{BackendKey, ControlError, ControlPlane};
use crate::health::HealthBoard;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
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
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What the API handlers share.
pub struct AdminState {
    pub control: Arc<ControlPlane>,
    pub health: Arc<HealthBoard>,
    pub counters: Arc<CountersBoard>,
    /// What the node announces over BGP, and whether it is drained.
    pub node: Arc<NodeState>,
}

/// The largest request body the API reads (the weight endpoint's JSON is a few bytes).
pub const MAX_BODY: usize = 16 * 1024;

/// The API's routes, open to anyone who reaches them: [`guarded`] adds the token check.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .route("/node/drain", post(node_drain))
        .route("/node/undrain", post(node_undrain))
        .route("/backends/{vip}/{address}/drain", post(drain))
        .route("/backends/{vip}/{address}/undrain", post(undrain))
        .route("/backends/{vip}/{address}/weight", post(weight))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// `router` behind `auth`'s token check (every request, routed or not, goes through it).
pub fn guarded(router: Router, auth: AdminAuth) -> Router {
    router.layer(axum::middleware::from_fn_with_state(auth, require_token))
}

/// The admin bearer token. Its bytes never appear in `Debug` output or logs.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// The token in the file at `path`, without trailing whitespace (the newline an editor
    /// or `echo` adds); an empty token is refused.
    pub fn from_file(path: &std::path::Path) -> Result<AdminToken, AdminSetupError> {
        let bytes = std::fs::read(path).map_err(|source| AdminSetupError::TokenRead {
            path: path.into(),
            source,
        })?;
        AdminToken::new(&bytes).ok_or_else(|| AdminSetupError::TokenEmpty { path: path.into() })
    }

    /// `bytes` without trailing whitespace; `None` when nothing is left or it holds bytes
    /// an HTTP header cannot carry (control characters, inner whitespace).
    pub fn new(bytes: &[u8]) -> Option<AdminToken> {
        let token = bytes.trim_ascii_end();
        let valid = !token.is_empty() && token.iter().all(|b| b.is_ascii_graphic());
        valid.then(|| AdminToken(token.into()))
    }

    /// The token as a header value's text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("checked ASCII in new")
    }

    /// Constant time in the token's contents (`subtle`); only its length can be learnt.
    fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(presented).into()
    }
}

/// Why the admin API could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminSetupError {
    #[error("{path}: cannot read the admin token: {source}")]
    TokenRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the admin token file holds no token (or characters a header cannot carry)")]
    TokenEmpty { path: PathBuf },
    #[error(
        "refusing to serve the admin API on {addr}, which is not loopback, without a token: \
         give a token file (--admin-token-file or the config's admin_token_file) or listen \
         on 127.0.0.1 / ::1"
    )]
    ExposedWithoutToken { addr: SocketAddr },
    #[error("{path}: admin TLS: {reason}")]
    Tls { path: PathBuf, reason: String },
}

/// Who may use which requests.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    token: Option<AdminToken>,
    /// Reads need the token too (the API listens beyond loopback).
    reads_need_token: bool,
}

impl AdminAuth {
    /// The policy for an API listening on `addr`: refuses a non-loopback address without
    /// a token.
    pub fn new(addr: SocketAddr, token: Option<AdminToken>) -> Result<AdminAuth, AdminSetupError> {
        let exposed = !addr.ip().is_loopback();
        if exposed && token.is_none() {
            return Err(AdminSetupError::ExposedWithoutToken { addr });
        }
        Ok(AdminAuth {
            token,
            reads_need_token: exposed,
        })
    }

    /// Whether a request with `method` and `authorization` header may go on.
    fn allows(&self, method: &Method, authorization: Option<&[u8]>) -> bool {
        let Some(token) = &self.token else {
            // Only possible on loopback (see `new`).
            return true;
        };
        let read = method == Method::GET || method == Method::HEAD;
        if read && !self.reads_need_token {
            return true;
        }
        authorization
            .and_then(bearer)
            .is_some_and(|presented| token.matches(presented))
    }
}

/// The credentials of an `Authorization: Bearer ...` header (the scheme is
/// case-insensitive, RFC 9110 section 11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

async fn require_token(State(auth): State<AdminAuth>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if auth.allows(request.method(), authorization) {
        return next.run(request).await;
    }
    let mut response = ApiError(
        StatusCode::UNAUTHORIZED,
        "this request needs the admin token: Authorization: Bearer TOKEN \
         (flowgate ctl --token-file FILE)"
            .into(),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// How the API is served: who may use it and, optionally, TLS.
#[derive(Clone)]
pub struct AdminSecurity {
    pub auth: AdminAuth,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl AdminSecurity {
    /// Open to local users, plain HTTP: only for a loopback listener.
    pub fn loopback_open() -> AdminSecurity {
        AdminSecurity {
            auth: AdminAuth {
                token: None,
                reads_need_token: false,
            },
            tls: None,
        }
    }
}

/// A TLS server config from a PEM certificate chain and a PEM private key.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, AdminSetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = |path: &std::path::Path, reason: String| AdminSetupError::Tls {
        path: path.into(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls(cert, format!("cannot read the certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(tls(cert, "no PEM certificate in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls(key, format!("cannot read the private key: {e}")))?;
    // ring, as the proxy uses: rustls 0.23.48 deprecates it for lacking the post-quantum
    // key exchange that aws-lc-rs has, but aws-lc-rs needs cmake and a long C build on
    // every CI machine; a loopback admin API does not need post-quantum key exchange yet.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| tls(key, format!("the key does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// Serve the API, open and plain, on a loopback `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, AdminSecurity::loopback_open(), shutdown).await
}

/// How long a client has to finish the TLS handshake: a silent connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve the API on `listener` with `security` until `shutdown` resolves. Refuses a
/// listener that is not on loopback unless `security` asks for a token on every request.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    security: AdminSecurity,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && !security.auth.reads_need_token {
        let e = AdminSetupError::ExposedWithoutToken { addr };
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e));
    }
    let app = guarded(router(state), security.auth);
    let Some(tls) = security.tls else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    };
    // axum::serve takes plain listeners only; over TLS each connection is accepted, its
    // handshake done on its own task (so a slow client holds up no one else), and served
    // by hyper, as axum's own low-level TLS example does.
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin API: accept");
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let (acceptor, service) = (acceptor.clone(), service.clone());
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "admin API: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(%peer, error = %e, "admin API connection");
            }
        });
    }
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

/// `/status`'s `etcd` section: the key, the revision in force, the last one refused and
/// why, the member being watched; `null` when the config is a file.
fn etcd_json(control: &ControlPlane) -> Value {
    let Some(key) = control.etcd_key() else {
        return Value::Null;
    };
    let r = control.revisions();
    json!({
        "url": key.url(),
        "applied_revision": r.applied,
        "refused_revision": r.refused.as_ref().map(|(n, _)| n),
        "refused_reason": r.refused.map(|(_, why)| why),
        "watching": r.connected,
    })
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
        "etcd": etcd_json(&s.control),
        "node": {
            "draining": s.node.draining(),
            "bgp": s.node.speaking(),
            "announced": s.node.announced().into_iter()
                .map(|(name, address)| json!({ "vip": name, "address": address }))
                .collect::<Vec<_>>(),
        },
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

/// Withdraw every VIP from the routers (they move new flows to the other nodes); this node
/// keeps forwarding what still reaches it.
async fn node_drain(State(s): State<Arc<AdminState>>) -> Json<Value> {
    s.node.set_draining(true);
    Json(json!({ "draining": true }))
}

async fn node_undrain(State(s): State<Arc<AdminState>>) -> Json<Value> {
    s.node.set_draining(false);
    Json(json!({ "draining": false }))
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
        announced: s.node.announced().into_iter().map(|(n, _)| n).collect(),
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
    /// Names of the VIPs announced over BGP.
    announced: Vec<String>,
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
        gauge_family(
            &mut e,
            "vip_announced",
            "1 while this node announces the VIP to its BGP speaker",
            self.vips().map(|(_, n)| {
                let on = self.announced.iter().any(|a| a == n);
                (vec![("vip", n.to_string())], i64::from(on))
            }),
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
    use super::AdminToken;
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
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

    #[derive(Debug, thiserror::Error)]
    pub enum ClientError {
        #[error("{path}: cannot read the CA certificate: {source}")]
        Ca {
            path: PathBuf,
            source: std::io::Error,
        },
        #[error(transparent)]
        Http(#[from] reqwest::Error),
    }

    /// A client for one admin API: its address, the token it sends, and for TLS the CA
    /// (PEM) that signed the API's certificate.
    #[derive(Debug, Clone)]
    pub struct AdminClient {
        base: String,
        token: Option<AdminToken>,
        http: reqwest::Client,
    }

    impl AdminClient {
        /// Plain HTTP without `tls_ca`, HTTPS trusting only `tls_ca` with it.
        pub fn new(
            admin: SocketAddr,
            token: Option<AdminToken>,
            tls_ca: Option<&Path>,
        ) -> Result<AdminClient, ClientError> {
            let mut http = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30));
            let scheme = match tls_ca {
                None => "http",
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|source| ClientError::Ca {
                        path: path.into(),
                        source,
                    })?;
                    http = http
                        .use_rustls_tls()
                        .tls_built_in_root_certs(false)
                        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
                    "https"
                }
            };
            Ok(AdminClient {
                base: format!("{scheme}://{admin}"),
                token,
                http: http.build()?,
            })
        }

        fn send(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
            match &self.token {
                Some(t) => request.bearer_auth(t.as_str()),
                None => request,
            }
        }

        /// `GET {admin}{path}`.
        pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
            let r = self.send(self.http.get(format!("{}{path}", self.base)));
            answer(r).await
        }

        /// `POST {admin}{path}` with an empty body.
        pub async fn post(&self, path: &str) -> Result<Answer, ClientError> {
            let r = self.send(self.http.post(format!("{}{path}", self.base)));
            answer(r).await
        }

        /// `POST {admin}{path}` with `body`.
        pub async fn post_body(&self, path: &str, body: Vec<u8>) -> Result<Answer, ClientError> {
            let r = self.send(self.http.post(format!("{}{path}", self.base)).body(body));
            answer(r).await
        }
    }

    async fn answer(request: reqwest::RequestBuilder) -> Result<Answer, ClientError> {
        let r = request.send().await?;
        Ok(Answer {
            status: r.status().as_u16(),
            body: r.text().await?,
        })
    }

    /// `GET {admin}{path}` over plain HTTP without a token.
    pub async fn get(admin: SocketAddr, path: &str) -> Result<Answer, ClientError> {
        AdminClient::new(admin, None, None)?.get(path).await
    }

    /// `POST {admin}{path}` with an empty body, over plain HTTP without a token.
    pub async fn post(admin: SocketAddr, path: &str) -> Result<Answer, ClientError> {
        AdminClient::new(admin, None, None)?.post(path).await
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
