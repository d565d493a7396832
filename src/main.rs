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
use flowgate_core::Verdict;
use flowgate_host::pcap_io::{PcapSink, PcapSource};
use flowgate_host::ShardedEngine;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowgate: {e:#}");
            ExitCode::FAILURE
        }
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
    let tables = flowgate_driver::compile(&config);
    let mut engine = ShardedEngine::new(tables, args.workers);
    let mut source = PcapSource::open(&args.input)?;
    let mut output = PcapSink::create(&args.output)?;
    let mut passed = args.passed.as_deref().map(PcapSink::create).transpose()?;
    let progress = progress_bar(&args.input);

    let mut burst = Vec::with_capacity(args.burst);
    loop {
        burst.clear();
        if source.read_burst(args.burst, &mut burst)? == 0 {
            break;
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
        if let Some(pb) = &progress {
            pb.inc(burst.iter().map(|f| f.data.len() as u64 + 16).sum());
        }
    }
    output.finish()?;
    if let Some(p) = passed {
        p.finish()?;
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let counters = engine.counters();
    let summary = report::Summary::new(engine.tables(), &counters, engine.worker_count());
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
