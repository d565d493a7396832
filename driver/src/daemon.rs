//! The daemon: a data path (any [`DataPath`]: a pcap input, DPDK ports) on the calling
//! thread, and beside it, on a small tokio runtime, the health checker, the admin API and
//! the signal handlers: SIGHUP reloads the config (a bad one is logged and the running
//! one stays), SIGINT stops the data path after its current burst, SIGTERM first withdraws
//! the node's BGP announcements and waits the drain time. With a config from etcd it
//! follows the key (`etcd`); with a BGP speaker it announces the VIPs (`announce`).
//! Written once: `flowgate run` with a pcap input and with `-- <EAL args>` both come
//! through [`run`].

use crate::admin::{self, AdminSecurity, AdminState};
use crate::announce::{self, NodeState, Speaker};
use crate::control::ControlPlane;
use crate::health::{self, HealthBoard};
use flowgate_host::datapath::{DataPath, Finished};
use flowgate_host::handoff::CountersBoard;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the data path publishes its counters for the admin API.
pub const COUNTERS_EVERY: Duration = Duration::from_millis(200);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("starting the control-plane runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("admin API: cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("data path: {0}")]
    DataPath(#[source] flowgate_host::EngineError),
}

/// What is this node's own, beside the shared config: its BGP speaker and drain time.
#[derive(Default)]
pub struct NodeOptions {
    /// Where the VIPs are announced; `None`: no BGP.
    pub speaker: Option<Box<dyn Speaker>>,
    /// On SIGTERM, how long the data path keeps forwarding after the announcements are
    /// withdrawn, for the routers to move new flows to the other nodes.
    pub drain: Duration,
}

/// Run `datapath` under `control` until it stops (input ended, or SIGINT / SIGTERM), with
/// the admin API on `admin` (port 0: a free port, logged; its token and TLS from
/// `security`) and health checks as the config asks. Returns what the data path reports
/// at the end.
pub fn run(
    control: Arc<ControlPlane>,
    admin: SocketAddr,
    security: AdminSecurity,
    node: NodeOptions,
    datapath: &mut dyn DataPath,
) -> Result<Finished, DaemonError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("flowgate-control")
        .build()
        .map_err(DaemonError::Runtime)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|&s| s).await;
    };
    let counters = Arc::new(CountersBoard::default());
    let node_state = Arc::new(NodeState::default());
    let health_board = Arc::new(HealthBoard::default());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(admin))
        .map_err(|source| DaemonError::Listen {
            address: admin,
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            address: admin,
            source,
        })?;
    let config = match (control.config_path(), control.etcd_key()) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(k)) => k.url(),
        (None, None) => "(text)".to_string(),
    };
    tracing::info!(admin = %bound, config, "flowgate running");
    let state = Arc::new(AdminState {
        control: control.clone(),
        health: health_board.clone(),
        counters: counters.clone(),
        node: node_state.clone(),
    });
    let server = runtime.spawn(admin::serve_with(
        listener,
        state,
        security,
        stopped(shutdown.subscribe()),
    ));
    runtime.spawn(health::run(
        control.clone(),
        health_board,
        stopped(shutdown.subscribe()),
    ));
    if let Some(key) = control.etcd_key() {
        runtime.spawn(crate::etcd::follow(
            control.clone(),
            crate::etcd::EtcdClient::new(key.clone()),
            stopped(shutdown.subscribe()),
        ));
    }
    let announcer = node.speaker.map(|speaker| {
        runtime.spawn(announce::run(
            control.clone(),
            counters.clone(),
            node_state.clone(),
            speaker,
            stopped(shutdown.subscribe()),
        ))
    });
    runtime.spawn(signals(
        control.clone(),
        stop.clone(),
        node_state.clone(),
        announcer.is_some().then_some(node.drain),
    ));

    let result = datapath.run(&control.watch(), &counters, COUNTERS_EVERY, &stop);
    let _ = shutdown.send(true);
    if let Err(e) = runtime.block_on(server) {
        tracing::warn!(error = %e, "admin API task");
    }
    // The announcer withdraws everything when told to stop: wait for it.
    if let Some(a) = announcer {
        if let Err(e) = runtime.block_on(a) {
            tracing::warn!(error = %e, "announcer task");
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    result.map_err(DaemonError::DataPath)
}

/// SIGHUP: reload (a bad config is logged and the running one stays). SIGINT: ask the data
/// path to stop. SIGTERM: with a BGP speaker (`drain` given), withdraw the announcements,
/// wait `drain`, then stop; without one, stop.
async fn signals(
    control: Arc<ControlPlane>,
    stop: Arc<AtomicBool>,
    node: Arc<NodeState>,
    drain: Option<Duration>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let c = control.clone();
                match tokio::task::spawn_blocking(move || c.reload()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "reload refused; the running config stays"),
                    Err(e) => tracing::error!(error = %e, "reload task failed"),
                }
            }
            _ = int.recv() => break,
            _ = term.recv() => {
                if let Some(drain) = drain {
                    drain_node(&node, drain).await;
                }
                break;
            }
        }
    }
    tracing::info!("stopping");
    stop.store(true, Ordering::Relaxed);
}

/// Withdraw the node's announcements, then keep forwarding for `drain` while the routers
/// move new flows elsewhere.
async fn drain_node(node: &NodeState, drain: Duration) {
    tracing::info!(
        ?drain,
        "SIGTERM: withdrawing the announcements, then draining"
    );
    node.set_draining(true);
    let deadline = tokio::time::Instant::now() + drain;
    while !node.announced().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(announce::EVALUATE_EVERY / 4).await;
    }
    tokio::time::sleep_until(deadline).await;
}
