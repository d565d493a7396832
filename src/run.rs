//! `flowgate run`: the daemon. The data path runs on this thread and follows the control
//! plane's published tables between bursts: either the software engine replaying a pcap,
//! or, with EAL arguments after `--` (cargo feature `dpdk`), DPDK ports
//! (`flowgate_dpdk::daemon`). A tokio runtime beside it runs the health checker, the admin
//! API and the signal handlers (SIGHUP reloads the config, SIGINT / SIGTERM stop after the
//! current burst and print the final counters).

use crate::report;
use anyhow::{bail, Context, Result};
use clap::Args;
use flowgate_core::counters::Counters;
use flowgate_core::{Tables, Verdict};
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
    /// Input trace (pcap or pcapng, Ethernet); not with DPDK ports.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Where forwarded (rewritten) frames go; not with DPDK ports.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Where frames for no VIP go, untouched.
    #[arg(long)]
    passed: Option<PathBuf>,
    /// Admin API address [default: the config's `admin`, else 127.0.0.1:9090]; port 0
    /// picks a free port (the address is logged).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// File holding the admin API's bearer token [default: the config's
    /// admin_token_file]; required when the admin address is not loopback.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Serve the admin API over TLS with this PEM certificate chain (with
    /// --admin-tls-key) [default: the config's admin_tls_cert].
    #[arg(long, value_name = "FILE", requires = "admin_tls_key")]
    admin_tls_cert: Option<PathBuf>,
    /// The PEM private key of --admin-tls-cert.
    #[arg(long, value_name = "FILE", requires = "admin_tls_cert")]
    admin_tls_key: Option<PathBuf>,
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
    /// DPDK port frames are read from.
    #[arg(
        long,
        default_value_t = 0,
        help_heading = "DPDK (after `--`: EAL arguments)"
    )]
    rx_port: u16,
    /// DPDK port forwarded frames are sent on [default: 1 if the EAL found two ports or
    /// more, else the RX port].
    #[arg(long, help_heading = "DPDK (after `--`: EAL arguments)")]
    tx_port: Option<u16>,
    /// DPDK port frames for no VIP are sent on [default: counted and freed].
    #[arg(long, help_heading = "DPDK (after `--`: EAL arguments)")]
    pass_port: Option<u16>,
    /// Mbufs in the DPDK pool (without hugepages keep it to a few thousand).
    #[arg(
        long,
        default_value_t = 8191,
        help_heading = "DPDK (after `--`: EAL arguments)"
    )]
    mbufs: u32,
    /// EAL arguments: run on DPDK ports instead of a pcap input (cargo feature `dpdk`),
    /// e.g. `-- -l 0 --no-huge -m 512 --no-pci --vdev net_af_packet0,iface=eth1`.
    #[arg(last = true, value_name = "EAL ARGS")]
    eal: Vec<String>,
}

/// What the data path hands back for the final summary.
struct Finished {
    tables: Arc<Tables>,
    counters: Counters,
    workers: usize,
    /// DPDK only: the summary's `dpdk` JSON section and its text line.
    dpdk: Option<(serde_json::Value, String)>,
}

/// Refuse argument combinations before anything starts.
fn check_args(args: &RunArgs) -> Result<()> {
    if args.workers == 0 || args.burst == 0 {
        bail!("--workers and --burst must be at least 1");
    }
    if args.eal.is_empty() {
        if args.input.is_none() || args.output.is_none() {
            bail!(
                "--input and --output are required (or give EAL arguments after `--` to run on \
                 DPDK ports)"
            );
        }
        return Ok(());
    }
    if !cfg!(feature = "dpdk") {
        bail!(
            "EAL arguments were given after `--`, but this flowgate was built without DPDK \
             support: rebuild with `cargo build --release --features dpdk` (needs DPDK 22.11's \
             development files: apt-get install dpdk-dev libdpdk-dev libclang-dev clang \
             pkg-config)"
        );
    }
    let pcap_only = [
        (args.input.is_some(), "--input"),
        (args.output.is_some(), "--output"),
        (args.passed.is_some(), "--passed (use --pass-port)"),
        (args.pace, "--pace"),
        (args.repeat, "--loop"),
        (args.workers != 1, "--workers"),
    ];
    if let Some((_, name)) = pcap_only.iter().find(|(given, _)| *given) {
        bail!("{name} is for pcap input; it cannot be used with DPDK ports (EAL arguments after `--`)");
    }
    if args.burst > u16::MAX as usize {
        bail!("--burst must be at most {} on DPDK ports", u16::MAX);
    }
    Ok(())
}

/// The admin API's token and TLS from the options, else from the config (its paths are
/// relative to the config file); refuses a non-loopback address without a token.
fn admin_security(
    args: &RunArgs,
    control: &ControlPlane,
    addr: SocketAddr,
) -> Result<admin::AdminSecurity> {
    let from_config = control.config().admin_security;
    let base = args
        .config
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let token_file = args
        .admin_token_file
        .clone()
        .or(from_config.token_file.map(|p| base.join(p)));
    let tls_files = match (&args.admin_tls_cert, &args.admin_tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => from_config.tls.map(|(c, k)| (base.join(c), base.join(k))),
    };
    let token = token_file
        .as_deref()
        .map(admin::AdminToken::from_file)
        .transpose()?;
    if token.is_none() {
        tracing::warn!(
            admin = %addr,
            "the admin API has no token: any local user can drain, re-weight and reload \
             (give --admin-token-file)"
        );
    }
    let auth = admin::AdminAuth::new(addr, token)?;
    let tls = tls_files
        .map(|(cert, key)| admin::tls_config(&cert, &key))
        .transpose()?;
    Ok(admin::AdminSecurity { auth, tls })
}

/// How often the data path publishes its counters for the admin API.
const COUNTERS_EVERY: Duration = Duration::from_millis(200);

pub fn run(args: RunArgs) -> Result<()> {
    check_args(&args)?;
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
    let security = admin_security(&args, &control, admin_addr)?;
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

    let result = if args.eal.is_empty() {
        pcap_path(&args, &control, &counters, &stop)
    } else {
        dpdk_path(&args, &control, &counters, &stop)
    };
    let _ = shutdown.send(true);
    if let Err(e) = runtime.block_on(server) {
        tracing::warn!(error = %e, "admin API task");
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    let done = result?;
    let summary = report::Summary::new(&done.tables, &done.counters, done.workers);
    if args.json {
        let mut value = summary.to_json();
        if let Some((dpdk, _)) = done.dpdk {
            value["dpdk"] = dpdk;
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        summary.print();
        if let Some((_, line)) = done.dpdk {
            println!();
            println!("{line}");
        }
    }
    Ok(())
}

#[cfg(feature = "dpdk")]
fn dpdk_path(
    args: &RunArgs,
    control: &ControlPlane,
    counters: &CountersBoard,
    stop: &AtomicBool,
) -> Result<Finished> {
    use flowgate_dpdk::daemon::{self, DaemonConfig};
    let config = DaemonConfig {
        eal_args: args.eal.clone(),
        rx_port: args.rx_port,
        tx_port: args.tx_port,
        pass_port: args.pass_port,
        burst: args.burst as u16,
        mbufs: args.mbufs,
        counters_every: COUNTERS_EVERY,
        ..DaemonConfig::default()
    };
    let report =
        daemon::run(&config, &control.watch(), counters, stop).context("DPDK data path")?;
    Ok(Finished {
        dpdk: Some((report.dpdk_json(), report.dpdk_line())),
        tables: report.tables,
        counters: report.counters,
        workers: 1,
    })
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_path(
    _args: &RunArgs,
    _control: &ControlPlane,
    _counters: &CountersBoard,
    _stop: &AtomicBool,
) -> Result<Finished> {
    unreachable!("check_args refuses EAL arguments without feature dpdk")
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

fn pcap_path(
    args: &RunArgs,
    control: &ControlPlane,
    counters: &CountersBoard,
    stop: &AtomicBool,
) -> Result<Finished> {
    let (Some(input), Some(output)) = (&args.input, &args.output) else {
        bail!("--input and --output are required");
    };
    let watch = control.watch();
    let mut seen = watch.version();
    let mut engine = ShardedEngine::new((*watch.load()).clone(), args.workers);
    let mut output = PcapSink::create(output)?;
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
        let mut source = PcapSource::open(input)?;
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
                counters.publish(engine.counters(), seen);
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
    counters.publish(engine.counters(), seen);
    output.finish()?;
    if let Some(p) = passed {
        p.finish()?;
    }
    Ok(Finished {
        tables: Arc::new(engine.tables().clone()),
        counters: engine.counters(),
        workers: engine.worker_count(),
        dpdk: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn check(args: &[&str]) -> Result<()> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))?;
        check_args(&cli.run)
    }

    #[test]
    fn pcap_runs_need_input_and_output() {
        let e = check(&["--config", "f.toml", "--input", "in.pcap"]).unwrap_err();
        assert!(
            e.to_string().contains("--input and --output are required"),
            "{e}"
        );
        check(&["--config", "f.toml", "-i", "in.pcap", "-o", "out.pcap"]).unwrap();
    }

    #[cfg(not(feature = "dpdk"))]
    #[test]
    fn eal_arguments_without_the_feature_say_how_to_rebuild() {
        let e = check(&["--config", "f.toml", "--", "-l", "0", "--no-pci"]).unwrap_err();
        assert!(e.to_string().contains("--features dpdk"), "{e}");
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn dpdk_runs_refuse_pcap_options() {
        check(&["--config", "f.toml", "--tx-port", "1", "--", "-l", "0"]).unwrap();
        for extra in [
            ["--input", "in.pcap"],
            ["--workers", "2"],
            ["--output", "o.pcap"],
        ] {
            let mut args = vec!["--config", "f.toml"];
            args.extend(extra);
            args.extend(["--", "-l", "0"]);
            let e = check(&args).unwrap_err();
            assert!(
                e.to_string().contains("cannot be used with DPDK ports"),
                "{e}"
            );
        }
    }
}
