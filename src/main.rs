//! `flowgate`: the command line. Thin: every subcommand calls into the workspace crates
//! and only turns their results into text, JSON and exit codes.

mod ctl;
mod gen_trace;
mod hdl_cmd;
mod report;
mod run;
mod synth;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use flowgate_core::Tables;
use flowgate_driver::{events, replay, ControlPlane};
use flowgate_host::pcap_io::{PcapSink, PcapSource};
use flowgate_host::{Engine, ShardedEngine};
use flowgate_sim::hw::{HwEngine, Simulator};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "flowgate",
    version,
    about = "L4 load balancer: one fast path for FPGA, DPDK and pcap replay"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a pcap trace through the balancer and write what it forwards.
    Replay(ReplayArgs),
    /// Write a seeded synthetic trace (flows, SYN flood, malformed frames).
    GenTrace(gen_trace::GenTraceArgs),
    /// Run the balancer with health checks, the admin API and reloads: on a pcap input,
    /// or on DPDK ports with EAL arguments after `--` (feature `dpdk`).
    Run(run::RunArgs),
    /// Talk to a running balancer's admin API.
    Ctl(ctl::CtlArgs),
    /// Hardware: write a design's Verilog, shell wrapper and manifest (`hdl emit`).
    Hdl(hdl_cmd::HdlArgs),
    /// Validate a config file; prints the VIPs and backends it defines.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Synthesise the hardware: ECP5 bitstream, UltraScale+ estimate, Vivado/Quartus scripts.
    Synth(synth::SynthArgs),
    /// The L7 reverse proxy (TLS, HTTP/1.1 and HTTP/2, load balancing, persistence):
    /// runs until SIGTERM/SIGINT, reloads its config on SIGHUP (crate flowgate-proxy).
    Proxy {
        /// The proxy's TOML config (examples/proxy.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Args)]
struct ReplayArgs {
    /// The TOML config (VIPs, backends, table geometry, keys).
    #[arg(long, short)]
    config: PathBuf,
    /// Input trace (pcap or pcapng, Ethernet).
    #[arg(long, short)]
    input: PathBuf,
    /// Where forwarded (rewritten) frames go, in input order.
    #[arg(long, short)]
    output: PathBuf,
    /// Where frames for no VIP go, untouched.
    #[arg(long)]
    passed: Option<PathBuf>,
    /// Worker threads, each owning a shard of the flow table (the output does not depend on it).
    #[arg(long, short, default_value_t = 1)]
    workers: usize,
    /// Frames per burst handed to the workers.
    #[arg(long, default_value_t = 4096)]
    burst: usize,
    /// Print one JSON object on stdout instead of the summary table.
    #[arg(long)]
    json: bool,
    /// Which engine runs the trace: the software path (`model`), the rust-hdl simulation
    /// of the hardware design (`rtl`), or a Verilator build of its Verilog (`verilator`).
    /// The hardware engines program the design through its AXI4-Lite registers and need
    /// a config with the design's geometry (examples/hw-small.toml).
    #[arg(long, value_enum, default_value_t = EngineArg::Model)]
    engine: EngineArg,
    /// Hardware design for `rtl` / `verilator` (`flowgate hdl list`): `top` (64-bit
    /// stream) or `wide-top` (512-bit).
    #[arg(long, default_value = "top")]
    design: String,
    /// Control events (backend down/up, weight, reload) applied at frame times; see
    /// `flowgate_driver::events` for the format.
    #[arg(long)]
    events: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EngineArg {
    Model,
    Rtl,
    Verilator,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay(args),
        Command::GenTrace(args) => gen_trace::run(&args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Hdl(args) => hdl_cmd::run(args),
        Command::Run(args) => {
            init_logs();
            run::run(args)
        }
        Command::Ctl(args) => ctl::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Proxy { config } => {
            init_logs();
            proxy_runtime()
                .context("starting the proxy's runtime")
                .and_then(|rt| Ok(rt.block_on(flowgate_proxy::run(&config))?))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The proxy's runtime: tokio's multi-thread scheduler, with one worker per CPU or
/// `TOKIO_WORKER_THREADS`; with one worker (`TOKIO_WORKER_THREADS=1`), the current-thread
/// scheduler, which runs the same tasks on one thread without the multi-thread one's
/// cross-thread hand-offs (a worker thread beside the thread that blocks on the main
/// future, atomic run queues, a LIFO slot that lets the last-woken task jump the queue).
fn proxy_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::env::var("TOKIO_WORKER_THREADS").ok();
    if workers.as_deref().map(str::trim) == Some("1") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
}

/// Structured logs on stderr; `RUST_LOG` filters them (default `info`).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn check_config(file: &std::path::Path) -> Result<()> {
    let config = flowgate_driver::load(file)?;
    let tables = flowgate_driver::compile(&config);
    println!("{}: ok", file.display());
    report::print_tables(&tables);
    Ok(())
}

fn replay(args: ReplayArgs) -> Result<()> {
    if args.workers == 0 || args.burst == 0 {
        bail!("--workers and --burst must be at least 1");
    }
    let config = flowgate_driver::load(&args.config)?;
    let control = ControlPlane::new(config, Some(args.config.clone()));
    let events = match &args.events {
        Some(path) => events::load(path)?,
        None => Vec::new(),
    };
    let mut source = PcapSource::open(&args.input)?;
    let mut output = PcapSink::create(&args.output)?;
    let mut passed = args.passed.as_deref().map(PcapSink::create).transpose()?;
    let mut engine = open_engine(&args, control.tables())?;
    let progress = progress_bar(&args.input);
    let replayed = replay::run(
        &mut *engine,
        &control,
        &events,
        &mut source,
        replay::Outputs {
            forwarded: &mut output,
            passed: passed.as_mut(),
        },
        args.burst,
        &mut |burst| {
            if let Some(pb) = &progress {
                pb.inc(burst.iter().map(|f| f.data.len() as u64 + 16).sum());
            }
        },
    );
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    // On an error the sinks are dropped unfinished, which removes their partial files.
    replayed.with_context(|| {
        format!(
            "replay of {} stopped after {} frames were read; no output written",
            args.input.display(),
            source.frames_read()
        )
    })?;
    if source.normalised_timestamps() > 0 {
        eprintln!(
            "replay: {} records of {} had a timestamp fraction of a second or more (scapy \
             writes a microsecond field of 1000000); carried into the seconds",
            source.normalised_timestamps(),
            args.input.display()
        );
    }
    output.finish()?;
    if let Some(p) = passed {
        p.finish()?;
    }
    if let Some(line) = engine.report_line() {
        eprintln!("replay: {line}");
    }
    let counters = engine.counters().map_err(|e| anyhow::anyhow!(e))?;
    let tables = engine.programmed();
    let summary = report::Summary::new(&tables, &counters, engine.shards());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary.to_json()).context("serialising the summary")?
        );
    } else {
        summary.print();
    }
    Ok(())
}

/// The engine `--engine` names, programmed with `tables`.
fn open_engine(args: &ReplayArgs, tables: Arc<Tables>) -> Result<Box<dyn Engine>> {
    let simulator = match args.engine {
        EngineArg::Model => {
            return Ok(Box::new(ShardedEngine::new(
                (*tables).clone(),
                args.workers,
            )));
        }
        EngineArg::Rtl => Simulator::Rtl,
        EngineArg::Verilator => Simulator::Verilator,
    };
    let design = flowgate_hdl::Design::from_name(&args.design)
        .with_context(|| format!("no design `{}` (see `flowgate hdl list`)", args.design))?;
    eprintln!(
        "replay: building the {} engine for design `{}`",
        simulator.name(),
        args.design
    );
    Ok(Box::new(HwEngine::open(simulator, design, tables)?))
}

/// A progress bar over the input file's bytes, only when stderr is a terminal.
fn progress_bar(input: &std::path::Path) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let len = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} replay [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Some(pb)
}
