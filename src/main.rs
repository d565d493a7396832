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
use flowgate_driver::events::{self, ControlEvent};
use flowgate_driver::ControlPlane;
use flowgate_host::pcap_io::{PcapSink, PcapSource};
use flowgate_host::ShardedEngine;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    let control = ControlPlane::new(config, Some(args.config.clone()));
    let events = match &args.events {
        Some(path) => events::load(path)?,
        None => Vec::new(),
    };
    let mut source = PcapSource::open(&args.input)?;
    let mut output = PcapSink::create(&args.output)?;
    let mut passed = args.passed.as_deref().map(PcapSink::create).transpose()?;
    let replayed = match args.engine {
        EngineArg::Model => replay_model(
            &args,
            &control,
            &events,
            &mut source,
            &mut output,
            &mut passed,
        ),
        EngineArg::Rtl | EngineArg::Verilator => replay_hw(
            &args,
            &control,
            &events,
            &mut source,
            &mut output,
            &mut passed,
        ),
    };
    // On an error the sinks are dropped unfinished, which removes their partial files.
    let (tables, counters, workers) = replayed.with_context(|| {
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
    let summary = report::Summary::new(&tables, &counters, workers);
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

/// Whether the event at `next` is due before a frame at `ts`.
fn event_due(events: &[ControlEvent], next: usize, first: Duration, ts: Duration) -> bool {
    events.get(next).is_some_and(|e| first + e.at <= ts)
}

/// The events due before a frame at `ts` (those at or before `ts - first`), from `next`
/// on; `next` moves past them.
fn due<'e>(
    events: &'e [ControlEvent],
    next: &mut usize,
    first: Duration,
    ts: Duration,
) -> &'e [ControlEvent] {
    let start = *next;
    while event_due(events, *next, first, ts) {
        *next += 1;
    }
    &events[start..*next]
}

fn replay_model(
    args: &ReplayArgs,
    control: &ControlPlane,
    events: &[ControlEvent],
    source: &mut PcapSource,
    output: &mut PcapSink,
    passed: &mut Option<PcapSink>,
) -> Result<(
    flowgate_core::tables::Tables,
    flowgate_core::counters::Counters,
    usize,
)> {
    let mut engine = ShardedEngine::new((*control.tables()).clone(), args.workers);
    let progress = progress_bar(&args.input);
    let mut first: Option<Duration> = None;
    let mut next_event = 0;
    let mut burst = Vec::with_capacity(args.burst);
    loop {
        burst.clear();
        if source.read_burst(args.burst, &mut burst)? == 0 {
            break;
        }
        // Split the burst where events fall, so each applies between the right frames.
        let mut start = 0;
        while start < burst.len() {
            let t0 = *first.get_or_insert(burst[start].ts);
            let mut end = start;
            while end < burst.len() && !event_due(events, next_event, t0, burst[end].ts) {
                end += 1;
            }
            if end == start {
                for event in due(events, &mut next_event, t0, burst[start].ts) {
                    events::apply(control, event)?;
                }
                engine.update_tables((*control.tables()).clone());
                continue;
            }
            let chunk = &burst[start..end];
            let outcomes = engine.process_burst(chunk);
            for (frame, outcome) in chunk.iter().zip(&outcomes) {
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
            start = end;
        }
        if let Some(pb) = &progress {
            pb.inc(burst.iter().map(|f| f.data.len() as u64 + 16).sum());
        }
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    Ok((
        engine.tables().clone(),
        engine.counters(),
        engine.worker_count(),
    ))
}

fn replay_hw(
    args: &ReplayArgs,
    control: &ControlPlane,
    events: &[ControlEvent],
    source: &mut PcapSource,
    output: &mut PcapSink,
    passed: &mut Option<PcapSink>,
) -> Result<(
    flowgate_core::tables::Tables,
    flowgate_core::counters::Counters,
    usize,
)> {
    use flowgate_sim::hw::{self, replay::HwReplay};
    let design = flowgate_hdl::Design::from_name(&args.design)
        .with_context(|| format!("no design `{}` (see `flowgate hdl list`)", args.design))?;
    let engine = match args.engine {
        EngineArg::Rtl => hw::Engine::Rtl,
        _ => hw::Engine::Verilator,
    };
    eprintln!(
        "replay: building the {} engine for design `{}`",
        if engine == hw::Engine::Rtl {
            "rtl"
        } else {
            "verilator"
        },
        args.design
    );
    let sim = hw::open(engine, design)?;
    let tables = control.tables();
    let mut replay = HwReplay::new(sim, &tables, flowgate_hdl::top::MAX_FRAME_BYTES)?;
    let mut frames = Vec::new();
    while source.read_burst(args.burst, &mut frames)? > 0 {}
    let first = frames.first().map_or(Duration::ZERO, |f| f.ts);
    let mut next_event = 0;
    let mut start = 0;
    while start < frames.len() {
        let applied = due(events, &mut next_event, first, frames[start].ts);
        if !applied.is_empty() {
            for event in applied {
                events::apply(control, event)?;
            }
            replay.program(&control.tables())?;
        }
        let mut end = start + 1;
        while end < frames.len()
            && end - start < args.burst
            && !event_due(events, next_event, first, frames[end].ts)
        {
            end += 1;
        }
        for emitted in replay.run(start, &frames[start..end])? {
            let input = &frames[emitted.input];
            if emitted.frame.tuser == flowgate_hdl::rewrite::TUSER_PASSED {
                if let Some(p) = passed.as_mut() {
                    p.write(input.ts, &emitted.frame.data)?;
                }
            } else {
                output.write(input.ts, &emitted.frame.data)?;
            }
        }
        start = end;
    }
    let tables = control.tables();
    let counters = replay.counters(tables.vips.len() as u16, tables.backends.len() as u16)?;
    eprintln!(
        "replay: {} frames in {} clocks of streaming",
        frames.len(),
        replay.cycles()
    );
    Ok(((*tables).clone(), counters, 1))
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
