//! # flowgate-proxy: the L7 tier
//!
//! The L4 fast path (`flowgate-core` on hardware, DPDK or software) spreads client packets
//! over proxy instances that hold the VIP on loopback; with DSR the client's packets reach
//! them intact, and this crate is what runs there: `flowgate proxy --config FILE`. It
//! terminates TLS ([`tls`], rustls), serves HTTP/1.1 and HTTP/2 to clients ([`server`],
//! hyper 1), routes each request by host and longest path prefix to a pool, picks a backend
//! ([`pool`]: round robin, least requests, p2c, random, `core`'s Maglev) under signed
//! cookie persistence ([`cookie`]), forwards it with the forwarding headers and without the
//! hop-by-hop ones ([`forward`], [`headers`]), and protects the backends ([`limits`]).
//!
//! Health is the control plane's checker (`flowgate_driver::health`, the same rise/fall
//! and probes as the L4 tier) plus passive ejection; the config follows the L4 config's
//! conventions ([`config`], `FILE:LINE:COL` errors); reloads swap a whole [`Generation`]
//! atomically (requests in flight finish on the one they started with); the admin API
//! ([`admin`]) speaks the L4 admin API's dialect, so `flowgate ctl` works on it.
//!
//! Room for web acceleration (issue 21): a response passes through [`forward`]'s
//! `finish_response` on its way back, per route, which is where compression and the cache
//! plug in as further steps over the same [`ProxyBody`].

/// `AsyncWrite` for a connection wrapper that only watches what is read
/// ([`limits::IdleTimeoutIo`], [`framing::FramingIo`]): every write goes to `inner` as is.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<T> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

pub mod access_log;
pub mod admin;
pub mod backend_conn;
pub mod cache;
pub mod compress;
pub mod config;
pub mod cookie;
pub mod forward;
pub mod framing;
pub mod headers;
pub mod limits;
pub mod metrics;
pub mod parking;
pub mod pool;
pub mod server;
pub mod tls;

use crate::access_log::AccessLog;
use crate::config::{ProxyConfig, Upstream};
use crate::limits::{ConnectionLimiter, RateLimiter};
use crate::metrics::Metrics;
use crate::pool::{BackendState, Pool};
use arc_swap::ArcSwap;
use bytes::Bytes;
use flowgate_driver::health::{CheckedBackends, Probe};
use flowgate_driver::ConfigError;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Errors of bodies on their way through.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of everything the proxy sends (to clients and to backends).
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
/// The connection-pooling client to an HTTP/2 pool's backends.
pub type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// How a pool's requests reach its backends.
pub enum PoolClient {
    /// HTTP/1.1: the proxy's own connections, per backend (parallel to its backends).
    Http1(Vec<Arc<backend_conn::Conns>>),
    /// HTTP/2 with prior knowledge: hyper-util's client, one multiplexed connection per
    /// backend.
    Http2(Box<UpstreamClient>),
}

/// Why the proxy could not start or reload.
#[derive(Debug, Error)]
pub enum ProxyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{origin}: {reason}")]
    Refused { origin: String, reason: String },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("access log: {0}")]
    AccessLog(#[source] std::io::Error),
    #[error("parking lot (epoll): {0}")]
    ParkingLot(#[source] std::io::Error),
}

/// One config as the proxy runs it: what every request that started under it uses until
/// it ends.
pub struct Generation {
    /// 1 for the config the proxy started with, +1 per successful reload.
    pub version: u64,
    pub config: ProxyConfig,
    /// Parallel to `config.pools`.
    pub pools: Vec<Arc<Pool>>,
    /// Parallel to `config.pools`.
    pub clients: Vec<PoolClient>,
    pub access_log: Option<AccessLog>,
}

/// A checked backend: its pool and address (`pool/address` in logs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolBackend {
    pub pool: String,
    pub address: SocketAddr,
}

impl fmt::Display for PoolBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pool, self.address)
    }
}

/// What every connection, request, the checker and the admin API share.
pub struct Shared {
    current: ArcSwap<Generation>,
    /// Live backend state by pool and address, kept across reloads.
    backends: Mutex<HashMap<PoolBackend, Arc<BackendState>>>,
    pub metrics: Metrics,
    pub rate: RateLimiter,
    pub conns: Arc<ConnectionLimiter>,
    /// Idle plain HTTP/1 connections, held as bare sockets.
    pub parking: Arc<parking::ParkingLot>,
    /// Replaced (emptied) only when a reload changes `[cache]`.
    cache: ArcSwap<cache::Cache>,
    reloads: watch::Sender<u64>,
    reload_lock: tokio::sync::Mutex<()>,
    config_path: PathBuf,
}

impl Shared {
    /// The generation new requests use.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The response cache of routes with `cache = true`.
    pub fn cache(&self) -> Arc<cache::Cache> {
        self.cache.load_full()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The state of `key`, made on first use.
    fn backend_state(&self, key: PoolBackend) -> Arc<BackendState> {
        let mut all = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(key.clone())
            .or_insert_with(|| Arc::new(BackendState::new(key.address)))
            .clone()
    }

    /// Look a backend up (admin API, checker).
    pub fn find_backend(&self, key: &PoolBackend) -> Option<Arc<BackendState>> {
        let all = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        all.get(key).cloned()
    }

    async fn build(&self, config: ProxyConfig, version: u64) -> Result<Generation, ProxyError> {
        let mut pools = Vec::new();
        let mut clients = Vec::new();
        let connect = Duration::from_millis(u64::from(config.timeouts.connect_ms));
        for p in &config.pools {
            let states = p
                .backends
                .iter()
                .map(|b| {
                    self.backend_state(PoolBackend {
                        pool: p.name.clone(),
                        address: b.address,
                    })
                })
                .collect();
            pools.push(Arc::new(Pool::new(p.clone(), states)));
            clients.push(match p.upstream {
                Upstream::Http1 => PoolClient::Http1(
                    p.backends
                        .iter()
                        .map(|b| backend_conn::Conns::new(b.address, connect))
                        .collect(),
                ),
                Upstream::H2 => {
                    let mut connector = HttpConnector::new();
                    connector.set_connect_timeout(Some(connect));
                    connector.set_nodelay(true);
                    let mut builder = Client::builder(TokioExecutor::new());
                    builder
                        .pool_idle_timeout(Duration::from_secs(60))
                        .http2_only(true);
                    PoolClient::Http2(Box::new(builder.build(connector)))
                }
            });
        }
        let access_log = match &config.access_log {
            Some(c) => Some(AccessLog::open(c).await.map_err(ProxyError::AccessLog)?),
            None => None,
        };
        // Forget backends that no pool has any more.
        {
            let keep: std::collections::HashSet<PoolBackend> = config
                .pools
                .iter()
                .flat_map(|p| {
                    p.backends.iter().map(|b| PoolBackend {
                        pool: p.name.clone(),
                        address: b.address,
                    })
                })
                .collect();
            let mut all = self.backends.lock().unwrap_or_else(|p| p.into_inner());
            all.retain(|k, _| keep.contains(k));
        }
        Ok(Generation {
            version,
            config,
            pools,
            clients,
            access_log,
        })
    }

    /// Re-read the config file and swap it in. A bad config (`FILE:LINE:COL: reason`) or
    /// one that changes the listeners is refused, and the running one stays.
    pub async fn reload(&self) -> Result<u64, ProxyError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let result = self.try_reload().await;
        let label = if result.is_ok() { "ok" } else { "refused" };
        self.metrics
            .reloads
            .get_or_create(&vec![("result", label.to_string())])
            .inc();
        match &result {
            Ok(v) => tracing::info!(version = v, "config reloaded"),
            Err(e) => tracing::warn!(error = %e, "reload refused; the running config stays"),
        }
        result
    }

    async fn try_reload(&self) -> Result<u64, ProxyError> {
        let config = config::load(&self.config_path)?;
        let old = self.current();
        let addresses = |c: &ProxyConfig| c.listeners.iter().map(|l| l.address).collect::<Vec<_>>();
        if addresses(&config) != addresses(&old.config) || config.admin != old.config.admin {
            return Err(ProxyError::Refused {
                origin: self.config_path.display().to_string(),
                reason: "listener and admin addresses cannot change on reload; restart the \
                         proxy to move them"
                    .to_string(),
            });
        }
        let version = old.version + 1;
        if config.cache != self.cache().config() {
            self.cache
                .store(Arc::new(cache::Cache::new(config.cache, &self.metrics)));
        }
        let generation = self.build(config, version).await?;
        self.current.store(Arc::new(generation));
        self.reloads.send_replace(version);
        Ok(version)
    }
}

/// The active checker's view of the proxy: every backend of a pool with `[pool.health]`.
pub struct ProxyChecks(pub Arc<Shared>);

impl CheckedBackends for ProxyChecks {
    type Key = PoolBackend;

    fn targets(&self) -> Vec<Probe<PoolBackend>> {
        let generation = self.0.current();
        generation
            .config
            .pools
            .iter()
            .filter_map(|p| p.health.as_ref().map(|h| (p, h)))
            .flat_map(|(p, h)| {
                p.backends.iter().map(move |b| Probe {
                    key: PoolBackend {
                        pool: p.name.clone(),
                        address: b.address,
                    },
                    addr: match h.port {
                        0 => b.address,
                        port => SocketAddr::new(b.address.ip(), port),
                    },
                    check: h.clone(),
                })
            })
            .collect()
    }

    fn reloads(&self) -> watch::Receiver<u64> {
        self.0.reloads.subscribe()
    }

    fn initial_state(&self, key: &PoolBackend) -> Option<bool> {
        self.0
            .find_backend(key)
            .map(|b| b.active_up.load(Ordering::Relaxed))
    }

    fn report(
        &self,
        key: &PoolBackend,
        _result: &Result<(), String>,
        _latency: Duration,
        _up: bool,
        change: Option<bool>,
    ) -> bool {
        let Some(backend) = self.0.find_backend(key) else {
            return false;
        };
        if let Some(up) = change {
            backend.active_up.store(up, Ordering::Relaxed);
        }
        true
    }

    fn forget(&self, _key: &PoolBackend) {}
}

/// A running proxy: its listeners, admin API and health checker.
pub struct Proxy {
    shared: Arc<Shared>,
    /// Bound listener addresses, in config order (a configured port 0 is resolved here).
    pub listeners: Vec<SocketAddr>,
    pub admin: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Load `config_path`, bind every listener and the admin API, start the checker.
    pub async fn start(config_path: &Path) -> Result<Proxy, ProxyError> {
        let config = config::load(config_path)?;
        let (reloads, _) = watch::channel(1);
        let placeholder = Generation {
            version: 0,
            config: config.clone(),
            pools: vec![],
            clients: vec![],
            access_log: None,
        };
        let metrics = Metrics::default();
        let parking = parking::ParkingLot::new(metrics.parked_connections.clone())
            .map_err(ProxyError::ParkingLot)?;
        let shared = Arc::new(Shared {
            parking: Arc::new(parking),
            current: ArcSwap::from_pointee(placeholder),
            backends: Mutex::new(HashMap::new()),
            cache: ArcSwap::from_pointee(cache::Cache::new(config.cache, &metrics)),
            metrics,
            rate: RateLimiter::default(),
            conns: Arc::new(ConnectionLimiter::default()),
            reloads,
            reload_lock: tokio::sync::Mutex::new(()),
            config_path: config_path.to_path_buf(),
        });
        let generation = shared.build(config, 1).await?;
        shared.current.store(Arc::new(generation));
        let config = shared.current().config.clone();

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut listeners = Vec::new();
        for (index, l) in config.listeners.iter().enumerate() {
            let listener = tokio::net::TcpListener::bind(l.address)
                .await
                .map_err(|source| ProxyError::Bind {
                    address: l.address,
                    source,
                })?;
            listeners.push(listener.local_addr().map_err(|source| ProxyError::Bind {
                address: l.address,
                source,
            })?);
            tasks.push(tokio::spawn(server::accept_loop(
                listener,
                index,
                shared.clone(),
                shutdown_rx.clone(),
            )));
        }
        let admin_listener =
            tokio::net::TcpListener::bind(config.admin)
                .await
                .map_err(|source| ProxyError::Bind {
                    address: config.admin,
                    source,
                })?;
        let admin = admin_listener
            .local_addr()
            .map_err(|source| ProxyError::Bind {
                address: config.admin,
                source,
            })?;
        let mut admin_stop = shutdown_rx.clone();
        tasks.push(tokio::spawn({
            let shared = shared.clone();
            async move {
                let stop = async move {
                    let _ = admin_stop.wait_for(|stop| *stop).await;
                };
                if let Err(e) = admin::serve(admin_listener, shared, stop).await {
                    tracing::error!(error = %e, "admin API stopped");
                }
            }
        }));
        tasks.push(tokio::spawn(
            shared
                .parking
                .clone()
                .run(shared.clone(), shutdown_rx.clone()),
        ));
        let mut checker_stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(flowgate_driver::health::run_checks(
            Arc::new(ProxyChecks(shared.clone())),
            async move {
                let _ = checker_stop.wait_for(|stop| *stop).await;
            },
        )));
        tracing::info!(?listeners, %admin, "proxy started");
        Ok(Proxy {
            shared,
            listeners,
            admin,
            shutdown,
            tasks,
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reload the config file (as SIGHUP and `POST /reload` do).
    pub async fn reload(&self) -> Result<u64, ProxyError> {
        self.shared.reload().await
    }

    /// Graceful shutdown: stop accepting, let connections finish their requests, and cut
    /// whatever is still open after the config's `shutdown_ms`. Returns the connections
    /// that had to be cut.
    pub async fn shutdown(self) -> usize {
        let deadline =
            Duration::from_millis(u64::from(self.shared.current().config.timeouts.shutdown_ms));
        self.shutdown.send_replace(true);
        let conns = self.shared.conns.clone();
        let drained = tokio::time::timeout(deadline, conns.wait_idle())
            .await
            .is_ok();
        for task in &self.tasks {
            task.abort();
        }
        if drained {
            0
        } else {
            conns.open_connections()
        }
    }
}

/// `flowgate proxy --config FILE`: run until SIGTERM or SIGINT, reloading on SIGHUP.
pub async fn run(config_path: &Path) -> Result<(), ProxyError> {
    use tokio::signal::unix::{signal, SignalKind};
    let proxy = Proxy::start(config_path).await?;
    let signal_error = |source| ProxyError::Bind {
        address: proxy.admin,
        source,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
    eprintln!(
        "flowgate proxy: listening on {:?}, admin API on {}",
        proxy.listeners, proxy.admin
    );
    loop {
        tokio::select! {
            _ = hup.recv() => match proxy.reload().await {
                Ok(v) => eprintln!("flowgate proxy: config reloaded (version {v})"),
                Err(e) => eprintln!("flowgate proxy: reload refused, the running config stays: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    eprintln!("flowgate proxy: shutting down, draining connections");
    let cut = proxy.shutdown().await;
    eprintln!("flowgate proxy: stopped ({cut} connections cut at the drain deadline)");
    Ok(())
}
