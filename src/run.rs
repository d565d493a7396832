//! `flowgate run`: the daemon. The software engine replays a pcap on this thread (the DPDK
//! port comes later) and follows the control plane's published tables between bursts; a
//! tokio runtime beside it runs the health checker, the admin API and the signal handlers
//! (SIGHUP reloads the config, SIGINT / SIGTERM stop after the current burst).

use crate::report;
use anyhow::{bail, Context, Result};
use clap::Args;
use flowgate_core::Verdict;
use flowgate_driver::admin::{self, AdminState, CountersBoard};
use flowgate_driver::config::DEFAULT_ADMIN;
use flowgate_driver::health::{self, HealthBoard};
use flowgate_driver::ControlPlane;
use flowgate_host::pcap_io::{PcapSink, PcapSource};
use flowgate_host::ShardedEngine;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct RunArgs {
    /// The TOML config; SIGHUP and `POST /reload` re-read it.
    #[arg(long, short)]
    config: PathBuf,
    /// Input trace (pcap or pcapng, Ethernet).
    #[arg(long, short)]
    input: PathBuf,
    /// Where forwarded (rewritten) frames go.
    #[arg(long, short)]
    output: PathBuf,
    /// Where frames for no VIP go, untouched.
    #[arg(long)]
    passed: Option<PathBuf>,
    /// Admin API address [default: the config's `admin`, else 127.0.0.1:9090]; port 0
    /// picks a free port (the address is logged).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Worker threads, each owning a shard of the flow table.
    #[arg(long, short, default_value_t = 1)]
    workers: usize,
    /// Frames per burst; new tables are taken between bursts.
    #[arg(long, default_value_t = 64)]
    burst: usize,
    /// Replay at the capture's own pace instead of as fast as possible.
    #[arg(long)]
    pace: bool,
    /// Start the input again at its end (timestamps keep increasing) until stopped.
    #[arg(long = "loop")]
    repeat: bool,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
}

/// How often the data path publishes its counters for the admin API.
const COUNTERS_EVERY: Duration = Duration::from_millis(200);

pub fn run(args: RunArgs) -> Result<()> {
    if args.workers == 0 || args.burst == 0 {
        bail!("--workers and --burst must be at least 1");
    }
    let control = Arc::new(ControlPlane::from_file(&args.config)?);
    let admin_addr = args
        .admin
        .or(control.config().admin)
        .unwrap_or(DEFAULT_ADMIN);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("flowgate-control")
        .build()
        .context("starting the control-plane runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|&s| s).await;
    };
    let counters = Arc::new(CountersBoard::default());
    let health_board = Arc::new(HealthBoard::default());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(admin_addr))
        .with_context(|| format!("admin API: cannot listen on {admin_addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(admin = %bound, config = %args.config.display(), "flowgate running");
    let state = Arc::new(AdminState {
        control: control.clone(),
        health: health_board.clone(),
        counters: counters.clone(),
    });
    let server = runtime.spawn(admin::serve(listener, state, stopped(shutdown.subscribe())));
    runtime.spawn(health::run(
        control.clone(),
        health_board,
        stopped(shutdown.subscribe()),
    ));
    runtime.spawn(signals(control.clone(), stop.clone()));

    let result = data_path(&args, &control, &counters, &stop);
    let _ = shutdown.send(true);
    if let Err(e) = runtime.block_on(server) {
        tracing::warn!(error = %e, "admin API task");
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    let engine = result?;
    let c = engine.counters();
    let summary = report::Summary::new(engine.tables(), &c, engine.worker_count());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    } else {
        summary.print();
    }
    Ok(())
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

fn data_path(
    args: &RunArgs,
    control: &ControlPlane,
    counters: &CountersBoard,
    stop: &AtomicBool,
) -> Result<ShardedEngine> {
    let watch = control.watch();
    let mut seen = watch.version();
    let mut engine = ShardedEngine::new((*watch.load()).clone(), args.workers);
    let mut output = PcapSink::create(&args.output)?;
    let mut passed = args.passed.as_deref().map(PcapSink::create).transpose()?;
    let mut burst = Vec::with_capacity(args.burst);
    let started = Instant::now();
    let mut published = Instant::now();
    // Pacing: the first frame's timestamp is the run's start.
    let mut epoch: Option<Duration> = None;
    // Added to every timestamp of the current pass over the input, so that a looped
    // trace's time (and with it the flow-table ticks) keeps moving forward.
    let mut offset = Duration::ZERO;
    'passes: loop {
        let mut source = PcapSource::open(&args.input)?;
        let mut span: Option<(Duration, Duration)> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                break 'passes;
            }
            burst.clear();
            if source.read_burst(args.burst, &mut burst)? == 0 {
                break;
            }
            for f in burst.iter_mut() {
                span = Some(span.map_or((f.ts, f.ts), |(a, _)| (a, f.ts)));
                f.ts += offset;
            }
            if args.pace {
                let first = *epoch.get_or_insert(burst[0].ts);
                let due = burst[0].ts.saturating_sub(first);
                // Sleep in short steps so a stop request is seen promptly.
                while started.elapsed() < due && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep((due - started.elapsed()).min(Duration::from_millis(50)));
                }
            }
            if let Some(tables) = watch.changed(&mut seen) {
                engine.update_tables((*tables).clone());
            }
            let outcomes = engine.process_burst(&burst);
            for (frame, outcome) in burst.iter().zip(&outcomes) {
                match outcome.verdict {
                    Verdict::Forward { .. } => output.write(frame.ts, &outcome.frame)?,
                    Verdict::Pass => {
                        if let Some(p) = passed.as_mut() {
                            p.write(frame.ts, &frame.data)?;
                        }
                    }
                    Verdict::Drop(_) => {}
                }
            }
            if published.elapsed() >= COUNTERS_EVERY {
                counters.publish(engine.counters());
                published = Instant::now();
            }
        }
        match span {
            Some((first, last)) if args.repeat => {
                offset += last.saturating_sub(first) + Duration::from_millis(1);
            }
            // An empty input would loop without doing anything.
            _ => break,
        }
    }
    counters.publish(engine.counters());
    output.finish()?;
    if let Some(p) = passed {
        p.finish()?;
    }
    Ok(engine)
}
