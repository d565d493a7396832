//! The daemon: a data path (any [`DataPath`]: a pcap input, DPDK ports) on the calling
//! thread, and beside it, on a small tokio runtime, the health checker, the admin API and
//! the signal handlers: SIGHUP reloads the config (a bad one is logged and the running
//! one stays), SIGINT / SIGTERM stop the data path after its current burst. Written once:
//! `flowgate run` with a pcap input and with `-- <EAL args>` both come through [`run`].

use crate::admin::{self, AdminSecurity, AdminState};
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

/// Run `datapath` under `control` until it stops (input ended, or SIGINT / SIGTERM), with
/// the admin API on `admin` (port 0: a free port, logged; its token and TLS from
/// `security`) and health checks as the config asks. Returns what the data path reports
/// at the end.
pub fn run(
    control: Arc<ControlPlane>,
    admin: SocketAddr,
    security: AdminSecurity,
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
    let config = control
        .config_path()
        .map_or_else(|| "(text)".to_string(), |p| p.display().to_string());
    tracing::info!(admin = %bound, config, "flowgate running");
    let state = Arc::new(AdminState {
        control: control.clone(),
        health: health_board.clone(),
        counters: counters.clone(),
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
    runtime.spawn(signals(control.clone(), stop.clone()));

    let result = datapath.run(&control.watch(), &counters, COUNTERS_EVERY, &stop);
    let _ = shutdown.send(true);
    if let Err(e) = runtime.block_on(server) {
        tracing::warn!(error = %e, "admin API task");
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    result.map_err(DaemonError::DataPath)
}

/// SIGHUP: reload (a bad config is logged and the running one stays). SIGINT / SIGTERM:
/// ask the data path to stop.
async fn signals(control: Arc<ControlPlane>, stop: Arc<AtomicBool>) {
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
            _ = term.recv() => break,
        }
    }
    tracing::info!("stopping");
    stop.store(true, Ordering::Relaxed);
}
