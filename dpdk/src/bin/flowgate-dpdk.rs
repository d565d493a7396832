//! `flowgate-dpdk`: the balancer on DPDK ports.
//!
//! ```text
//! flowgate-dpdk --config FILE [--json] [--max-frames N] [--idle-exit-ms MS]
//!               [--rx-port 0] [--tx-port P] [--pass-port P] [--rx-queues N]
//!               [--clock tsc|rx-timestamp]
//!               -- <EAL args>
//! ```
//! Frames are read from `--rx-port` (default 0) and forwarded on `--tx-port` (default 1
//! when the EAL found two ports or more, else 0: one port for both); passed frames go to
//! `--pass-port` when given, else they are counted and freed. Once the ports are up it
//! says so on stderr (`flowgate-dpdk: forwarding: ...`). SIGINT / SIGTERM stop the
//! loop; the counters are then printed like `flowgate replay`'s (`--json`: the same JSON
//! object plus a `dpdk` section).

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use flowgate_dpdk::daemon::PortReport;
use flowgate_dpdk::datapath::{self, Clock, LoopConfig};
use flowgate_dpdk::port::{open_ports, run_port_config, PortRoles};
use flowgate_dpdk::{Eal, Mempool};
use flowgate_host::TablesWatch;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

// The replay summary lives in the `flowgate` CLI; it is shared by path so that both
// binaries print the very same JSON (one source) until it moves into a library crate.
#[allow(dead_code)]
#[path = "../../../src/report.rs"]
mod report;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClockArg {
    /// The TSC: for live traffic.
    Tsc,
    /// The PMD's RX timestamps (net_pcap: capture times), falling back to the TSC.
    RxTimestamp,
}

#[derive(Parser)]
#[command(
    name = "flowgate-dpdk",
    version,
    about = "flowgate's data path on DPDK ports",
    after_help = "EAL arguments follow `--`, e.g. -- -l 1 --no-huge -m 512 --no-pci \
                  --file-prefix fg --vdev net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
)]
struct Cli {
    /// The TOML config (VIPs, backends, table geometry, keys).
    #[arg(long, short)]
    config: PathBuf,
    /// Print one JSON object on stdout instead of the summary table.
    #[arg(long)]
    json: bool,
    /// Stop after this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Stop when no frame arrived for this many milliseconds (end of a pcap input).
    #[arg(long)]
    idle_exit_ms: Option<u64>,
    /// Port frames are read from.
    #[arg(long, default_value_t = 0)]
    rx_port: u16,
    /// Port forwarded frames are sent on (default: 1 if there are two ports, else 0).
    #[arg(long)]
    tx_port: Option<u16>,
    /// Port passed frames (for no VIP) are sent on; default: counted and freed.
    #[arg(long)]
    pass_port: Option<u16>,
    /// Where flow-table time comes from.
    #[arg(long, value_enum, default_value_t = ClockArg::Tsc)]
    clock: ClockArg,
    /// RX queues per port (default: one per forwarding lcore; at most what the port
    /// offers, e.g. net_pcap's one per rx_pcap file). Worker w of n polls the queues
    /// q % n == w; with several, the port spreads frames by RSS with the config's hash key
    /// and a redirection table laid out for the workers where it can.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    rx_queues: Option<u16>,
    /// Frames per RX burst.
    #[arg(long, default_value_t = 32)]
    burst: u16,
    /// Mbufs in the pool (net_pcap with infinite_rx keeps the whole trace in mbufs).
    #[arg(long, default_value_t = 8191)]
    mbufs: u32,
    /// EAL arguments.
    #[arg(last = true)]
    eal: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowgate-dpdk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.burst == 0 {
        bail!("--burst must be at least 1");
    }
    let config = flowgate_driver::load(&cli.config)?;
    // No control plane: tables that never change, taken the way the daemon's data path
    // takes the control plane's.
    let watch = TablesWatch::fixed(flowgate_driver::compile(&config));
    let tables = watch.load();

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    let (eal, _) = Eal::init(&cli.eal).context("initialising DPDK")?;
    let pool = Arc::new(Mempool::new(&eal, "flowgate_mbufs", cli.mbufs, 256)?);
    let lcores = flowgate_dpdk::lcore::worker_lcores(&eal).len() + 1;
    let port_config = run_port_config(
        &eal,
        &tables,
        cli.rx_queues,
        matches!(cli.clock, ClockArg::RxTimestamp),
    );
    let roles = PortRoles {
        rx: cli.rx_port,
        tx: cli.tx_port,
        pass: cli.pass_port,
    };
    let ports = open_ports(&eal, roles, &port_config, &pool)?;
    let rx = ports.rx();
    let clock = match cli.clock {
        ClockArg::Tsc => Clock::Tsc,
        ClockArg::RxTimestamp => match rx.rx_timestamp_field() {
            Some(f) => Clock::RxTimestamp(f),
            None => bail!(
                "port {}: its PMD gives no RX timestamps; use --clock tsc",
                rx.id()
            ),
        },
    };
    let loop_config = LoopConfig {
        burst: cli.burst,
        max_frames: cli.max_frames,
        idle_exit: cli.idle_exit_ms.map(Duration::from_millis),
        clock,
        ..LoopConfig::default()
    };
    // The one line on stderr of a good start: a service manager's log, or a script, sees
    // when the ports are up and frames flow.
    eprintln!(
        "flowgate-dpdk: forwarding: rx port {}, {lcores} lcore(s)",
        rx.id()
    );
    let report = datapath::run(&eal, &ports.roles(), &watch, &loop_config, None, &stop)?;
    let workers: Vec<_> = report
        .workers
        .iter()
        .map(|w| json!({"lcore": w.lcore, "frames": w.frames}))
        .collect();

    let port_json: Vec<_> = ports
        .all()
        .iter()
        .map(|p| PortReport::of_run(p, rx.id(), &report.io).json())
        .collect();
    let io = &report.io;
    let dpdk = json!({
        "received": io.received, "sent": io.sent, "passed_sent": io.passed_sent,
        "tx_unsent": io.tx_unsent, "rewrite_no_room": io.rewrite_no_room,
        "busy_s": io.busy.as_secs_f64(), "mpps": io.mpps(), "lcores": lcores,
        "steered": io.steered, "handed_off": io.handed_off,
        "worker_lcores": workers, "table_updates": report.table_updates, "ports": port_json,
    });
    // Ports stop (and net_pcap closes its files) before the summary is printed.
    drop(ports);
    let summary = report::Summary::new(&report.tables, &report.counters, report.shards as usize);
    if cli.json {
        let mut value = summary.to_json();
        value["dpdk"] = dpdk;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        summary.print();
        println!();
        println!(
            "dpdk: received {}  sent {}  passed sent {}  tx unsent {}  no room {}  {:.3} s  {:.2} Mpps",
            io.received, io.sent, io.passed_sent, io.tx_unsent, io.rewrite_no_room,
            io.busy.as_secs_f64(), io.mpps()
        );
    }
    drop(pool);
    drop(eal);
    Ok(())
}
