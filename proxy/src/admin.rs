//! The proxy's admin API (axum), in the L4 admin API's conventions (`flowgate_driver::admin`),
//! so `flowgate ctl --admin ADDR status|reload|metrics` works on a proxy too:
//!
//! | request | does |
//! | --- | --- |
//! | `GET /status` | JSON: config version, listeners, pools and their backends (weight, drained, active health, ejection, requests in flight), open connections |
//! | `POST /reload` | re-read the config file; `400` with `FILE:LINE:COL: reason` when it is bad, and the running config stays |
//! | `POST /backends/{pool}/{address}/drain` | no new requests to the backend (persistence moves on) |
//! | `POST /backends/{pool}/{address}/undrain` | undo `drain` |
//! | `GET /metrics` | Prometheus (OpenMetrics) text |
//! | `POST /cache/purge` | JSON `{"url": "http://host/path?q"}` and/or `{"prefix": "http://host/static/"}`: remove cached responses; answers `{"purged": N}` |
//!
//! Errors are JSON `{"error": "..."}` with 400 or 404.

use crate::{PoolBackend, Shared};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .route("/backends/{pool}/{address}/drain", post(drain))
        .route("/backends/{pool}/{address}/undrain", post(undrain))
        .route("/cache/purge", post(purge))
        .with_state(shared)
}

/// Serve the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Json<Value> {
    let generation = s.current();
    let pools: Vec<Value> = generation
        .pools
        .iter()
        .map(|pool| {
            let backends: Vec<Value> = pool
                .config
                .backends
                .iter()
                .zip(&pool.backends)
                .enumerate()
                .map(|(i, (b, state))| {
                    json!({
                        "address": b.address.to_string(),
                        "weight": b.weight,
                        "drained": state.drained.load(Ordering::Relaxed),
                        "health_up": state.active_up.load(Ordering::Relaxed),
                        "ejected_for_ms": state.ejected_for().map(|d| d.as_millis() as u64),
                        "outstanding": state.outstanding.load(Ordering::Relaxed),
                        "usable": pool.usable(i),
                    })
                })
                .collect();
            json!({
                "name": pool.config.name,
                "balance": format!("{:?}", pool.config.balance),
                "checked": pool.config.health.is_some(),
                "backends": backends,
            })
        })
        .collect();
    Json(json!({
        "version": generation.version,
        "config": s.config_path().display().to_string(),
        "listeners": generation.config.listeners.iter().map(|l| json!({
            "address": l.address.to_string(),
            "tls": l.tls.is_some(),
        })).collect::<Vec<_>>(),
        "open_connections": s.conns.open_connections(),
        "pools": pools,
    }))
}

async fn reload(State(s): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    match s.reload().await {
        Ok(version) => Ok(Json(json!({ "reloaded": true, "version": version }))),
        Err(e) => Err(ApiError(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

fn set_drained(
    s: &Shared,
    pool: String,
    address: &str,
    drained: bool,
) -> Result<Json<Value>, ApiError> {
    let address: SocketAddr = address.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("'{address}' is not an IP:PORT address"),
        )
    })?;
    let key = PoolBackend { pool, address };
    let backend = s
        .find_backend(&key)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no backend {key}")))?;
    backend.drained.store(drained, Ordering::Relaxed);
    Ok(Json(
        json!({ "backend": key.to_string(), "drained": drained }),
    ))
}

async fn drain(
    State(s): State<Arc<Shared>>,
    Path((pool, address)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_drained(&s, pool, &address, true)
}

async fn undrain(
    State(s): State<Arc<Shared>>,
    Path((pool, address)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_drained(&s, pool, &address, false)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Purge {
    url: Option<String>,
    prefix: Option<String>,
}

async fn purge(
    State(s): State<Arc<Shared>>,
    Json(p): Json<Purge>,
) -> Result<Json<Value>, ApiError> {
    if p.url.is_none() && p.prefix.is_none() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "name a \"url\" or a \"prefix\" to purge".to_string(),
        ));
    }
    let purged = s
        .cache()
        .purge(p.url.as_deref(), p.prefix.as_deref())
        .await
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(json!({ "purged": purged })))
}
