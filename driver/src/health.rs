//! The health checker: one tokio task per checked backend, probing it every `interval_ms`
//! with a TCP connect or an HTTP GET, each bounded by `timeout_ms`.
//!
//! A single result changes nothing: [`RiseFall`] turns the stream of results into a state
//! that goes down only after `fall` consecutive failures and up only after `rise`
//! consecutive successes, so a flapping backend is not flipped back and forth at every
//! probe.
//!
//! What is checked and where verdicts go is a [`CheckedBackends`]: for the L4 tier ([`run`])
//! a state change goes straight to [`ControlPlane::set_up`], which flips the `up` bit for the
//! data path at once and then rebuilds the VIP's Maglev table, and results and latencies
//! are kept on a [`HealthBoard`] for the admin API and metrics; the L7 proxy
//! (`flowgate-proxy`) runs the same checker ([`run_checks`]) over its pools.

use crate::config::{CheckKind, HealthCheck};
use crate::control::{BackendKey, CheckTarget, ControlPlane};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinHandle;

/// The rise/fall state of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiseFall {
    up: bool,
    /// Consecutive results against the current state.
    streak: u32,
    rise: u32,
    fall: u32,
}

impl RiseFall {
    /// Start in state `up`; `rise` and `fall` are at least 1 (the config checks).
    pub fn new(up: bool, rise: u32, fall: u32) -> RiseFall {
        RiseFall {
            up,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Feed one result; returns the new state when it changes.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak < needed {
            return None;
        }
        self.up = ok;
        self.streak = 0;
        Some(ok)
    }
}

/// What the checker last saw of one backend.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BackendHealth {
    /// The checker's state (after rise/fall).
    pub up: bool,
    pub checks: u64,
    pub failures: u64,
    pub last_ok: Option<bool>,
    /// Why the last check failed.
    pub last_error: Option<String>,
    /// Duration of the last check, in seconds.
    pub last_latency_seconds: Option<f64>,
    /// Seconds since the Unix epoch of the last state change seen by the checker.
    pub last_change_unix: Option<f64>,
}

/// Labels of the check-latency histogram.
pub type BackendLabels = Vec<(&'static str, String)>;

/// Check results shared with the admin API.
#[derive(Debug)]
pub struct HealthBoard {
    backends: Mutex<HashMap<BackendKey, BackendHealth>>,
    /// Check latency in seconds, by VIP, backend and result.
    pub latency: Family<BackendLabels, Histogram>,
}

impl Default for HealthBoard {
    fn default() -> Self {
        HealthBoard {
            backends: Mutex::new(HashMap::new()),
            latency: Family::new_with_constructor(|| {
                // 100 µs .. ~6.5 s.
                Histogram::new(exponential_buckets(0.0001, 2.0, 17))
            }),
        }
    }
}

impl HealthBoard {
    /// What the checker knows of `key`, if it checks it.
    pub fn get(&self, key: &BackendKey) -> Option<BackendHealth> {
        self.lock().get(key).cloned()
    }

    /// Everything, sorted by key.
    pub fn all(&self) -> Vec<(BackendKey, BackendHealth)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BackendKey, BackendHealth>> {
        self.backends.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, key: &BackendKey, result: &Result<(), String>, latency: Duration, up: bool) {
        let labels = vec![
            ("vip", key.vip.clone()),
            ("backend", key.address.to_string()),
            (
                "result",
                if result.is_ok() { "ok" } else { "fail" }.to_string(),
            ),
        ];
        self.latency
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
        let mut all = self.lock();
        let h = all.entry(key.clone()).or_insert_with(|| BackendHealth {
            up,
            checks: 0,
            failures: 0,
            last_ok: None,
            last_error: None,
            last_latency_seconds: None,
            last_change_unix: None,
        });
        if h.up != up {
            h.last_change_unix = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs_f64());
        }
        h.up = up;
        h.checks += 1;
        h.failures += u64::from(result.is_err());
        h.last_ok = Some(result.is_ok());
        h.last_error = result.as_ref().err().cloned();
        h.last_latency_seconds = Some(latency.as_secs_f64());
    }

    fn forget(&self, key: &BackendKey) {
        self.lock().remove(key);
        for result in ["ok", "fail"] {
            self.latency.remove(&vec![
                ("vip", key.vip.clone()),
                ("backend", key.address.to_string()),
                ("result", result.to_string()),
            ]);
        }
    }
}

/// Probe `addr` once.
pub async fn probe(
    client: &reqwest::Client,
    addr: SocketAddr,
    check: &HealthCheck,
) -> Result<(), String> {
    let timeout = Duration::from_millis(u64::from(check.timeout_ms));
    match &check.kind {
        CheckKind::Tcp => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_stream)) => Ok(()),
                Ok(Err(e)) => Err(format!("connect: {e}")),
                Err(_) => Err(format!("connect: no answer within {timeout:?}")),
            }
        }
        CheckKind::Http {
            path,
            expect_status,
        } => {
            // SocketAddr's Display brackets IPv6 addresses, as a URL needs.
            let url = format!("http://{addr}{path}");
            let response = client
                .get(&url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
            let status = response.status().as_u16();
            if status == *expect_status {
                Ok(())
            } else {
                Err(format!(
                    "GET {url}: status {status}, expected {expect_status}"
                ))
            }
        }
    }
}

/// An error with its causes, which reqwest keeps in the source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

/// The HTTP client health checks use: no proxies from the environment (checks go to the
/// backends themselves), no redirects (a redirect is the status to compare), and no idle
/// connections kept, so every check opens a new connection as a client would.
pub fn check_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        // Building fails only when the TLS backend or resolver cannot start; neither is
        // compiled in.
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// One backend to probe: who it is to the owner, where to probe, how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe<K> {
    pub key: K,
    pub addr: SocketAddr,
    pub check: HealthCheck,
}

/// What a checker probes and where its verdicts go: the L4 [`ControlPlane`] (through
/// [`run`]) or the proxy's pools.
pub trait CheckedBackends: Send + Sync + 'static {
    /// Names a checked backend (in logs too).
    type Key: Clone + Eq + Hash + fmt::Display + fmt::Debug + Send + Sync + 'static;

    /// Every backend to probe now.
    fn targets(&self) -> Vec<Probe<Self::Key>>;

    /// Ticks whenever [`CheckedBackends::targets`] may have changed (a reload); the checker
    /// stops when its sender is gone.
    fn reloads(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The state a new target's rise/fall starts in; `None` when it is gone already.
    fn initial_state(&self, key: &Self::Key) -> Option<bool>;

    /// One probe's `result` and `latency`, the rise/fall state `up` after it, and `change`
    /// when that state just changed. Returns false when `key` is gone: its checks stop.
    fn report(
        &self,
        key: &Self::Key,
        result: &Result<(), String>,
        latency: Duration,
        up: bool,
        change: Option<bool>,
    ) -> bool;

    /// `key` is no longer a target (a reload removed it).
    fn forget(&self, key: &Self::Key);
}

/// The L4 tier's checked backends: the control plane's targets, verdicts to its `up` bits
/// and to the health board.
struct L4Backends {
    control: Arc<ControlPlane>,
    board: Arc<HealthBoard>,
}

impl CheckedBackends for L4Backends {
    type Key = BackendKey;

    fn targets(&self) -> Vec<Probe<BackendKey>> {
        self.control
            .check_targets()
            .into_iter()
            .map(|CheckTarget { key, port, check }| Probe {
                addr: SocketAddr::new(key.address, port),
                key,
                check,
            })
            .collect()
    }

    fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.control.reloads()
    }

    fn initial_state(&self, key: &BackendKey) -> Option<bool> {
        self.control.is_healthy(key).ok()
    }

    fn report(
        &self,
        key: &BackendKey,
        result: &Result<(), String>,
        latency: Duration,
        up: bool,
        change: Option<bool>,
    ) -> bool {
        self.board.record(key, result, latency, up);
        match change {
            Some(up) => self.control.set_up(key, up).is_ok(),
            None => true,
        }
    }

    fn forget(&self, key: &BackendKey) {
        self.board.forget(key);
    }
}

/// Run the L4 checker until `shutdown` resolves: one task per target of `control`,
/// re-synced after every reload (a target whose check is unchanged keeps its task and its
/// rise/fall state).
pub async fn run(
    control: Arc<ControlPlane>,
    board: Arc<HealthBoard>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    run_checks(Arc::new(L4Backends { control, board }), shutdown).await;
}

/// Run the checker over `backends` until `shutdown` resolves: one task per target,
/// re-synced after every reload (a target whose check is unchanged keeps its task and its
/// rise/fall state).
pub async fn run_checks<B: CheckedBackends>(
    backends: Arc<B>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let client = check_client();
    let mut reloads = backends.reloads();
    let mut tasks: HashMap<Probe<B::Key>, JoinHandle<()>> = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        let targets = backends.targets();
        tasks.retain(|target, task| {
            let keep = targets.contains(target);
            if !keep {
                task.abort();
                backends.forget(&target.key);
            }
            keep
        });
        for target in targets {
            if tasks.contains_key(&target) {
                continue;
            }
            let task = tokio::spawn(check_loop(target.clone(), backends.clone(), client.clone()));
            tasks.insert(target, task);
        }
        tokio::select! {
            () = &mut shutdown => break,
            changed = reloads.changed() => if changed.is_err() { break },
        }
    }
    for (_, task) in tasks {
        task.abort();
    }
}

async fn check_loop<B: CheckedBackends>(
    target: Probe<B::Key>,
    backends: Arc<B>,
    client: reqwest::Client,
) {
    let Some(healthy) = backends.initial_state(&target.key) else {
        return;
    };
    let addr = target.addr;
    let check = &target.check;
    let mut state = RiseFall::new(healthy, check.rise, check.fall);
    let mut ticker = tokio::time::interval(Duration::from_millis(u64::from(check.interval_ms)));
    // A slow check delays the next one rather than firing a burst of catch-up checks.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!(backend = %target.key, %addr, ?check, "health check started");
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let result = probe(&client, addr, check).await;
        let latency = started.elapsed();
        let change = state.observe(result.is_ok());
        if let Err(e) = &result {
            tracing::debug!(backend = %target.key, error = %e, "health check failed");
        }
        if let Some(up) = change {
            tracing::info!(backend = %target.key, up, last = ?result.as_ref().err(), "health state changed");
        }
        if !backends.report(&target.key, &result, latency, state.is_up(), change) {
            // Removed by a reload that the supervisor has not acted on yet.
            tracing::debug!(backend = %target.key, "health check stopped: backend gone");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut s = RiseFall::new(true, 2, 3);
        // Two failures, then a success: the streak starts over.
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), Some(false));
        assert!(!s.is_up());
        // Failures while down change nothing; one success is not enough for rise = 2.
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(true), Some(true));
        assert!(s.is_up());
    }

    #[test]
    fn a_flapping_backend_stays_in_its_state() {
        let mut s = RiseFall::new(true, 2, 2);
        for i in 0..100 {
            assert_eq!(s.observe(i % 2 == 0), None, "result {i}");
        }
        assert!(s.is_up());
    }

    #[test]
    fn rise_and_fall_of_one_flip_at_once() {
        let mut s = RiseFall::new(true, 1, 1);
        assert_eq!(s.observe(false), Some(false));
        assert_eq!(s.observe(true), Some(true));
    }

    #[tokio::test]
    async fn tcp_probe_sees_a_listener_and_its_absence() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let check = HealthCheck {
            kind: CheckKind::Tcp,
            port: addr.port(),
            interval_ms: 100,
            timeout_ms: 100,
            rise: 1,
            fall: 1,
        };
        let client = check_client();
        assert_eq!(probe(&client, addr, &check).await, Ok(()));
        drop(listener);
        let e = probe(&client, addr, &check).await.unwrap_err();
        assert!(e.contains("connect"), "{e}");
    }
}
