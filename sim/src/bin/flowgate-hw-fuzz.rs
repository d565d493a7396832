//! `flowgate-hw-fuzz`: differential fuzzing of a Verilator build of the hardware top
//! against the software engine (`flowgate_sim::fuzz`). Seeds `--seed` upwards become
//! cases; each runs through both and is compared frame for frame and counter for counter.
//! A case that differs is shrunk and written under `--regressions` (the exit status is 1);
//! `--replay DIR` runs one stored case. The last line is the summary:
//!
//! ```text
//! hw-fuzz: design top, seeds 0..40: 40 cases, 123456 frames compared, 98765 out, 210 events, 0 refused, 0 mismatches, 61.2 s (2017 frames/s)
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use flowgate_sim::fuzz::{self, CaseMeta, Sizes, Verdict};
use flowgate_sim::hw::Simulator;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "flowgate-hw-fuzz",
    about = "Differential fuzzing: the Verilator build of the top against the software engine"
)]
struct Args {
    /// The top to fuzz (`top`: 64-bit; `wide-top`: 512-bit).
    #[arg(long, default_value = "top")]
    design: String,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cases to run (seeds `seed..seed+cases`); 0: until `--seconds`.
    #[arg(long, default_value_t = 0)]
    cases: u64,
    /// Stop starting cases after this many seconds; 0: no limit (`--cases` then bounds).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// About this many frames per ordinary case.
    #[arg(long, default_value_t = 3000)]
    frames: u32,
    /// One case in N overflows the flow table (more flows than entries); 0: never.
    #[arg(long, default_value_t = 16)]
    overflow_every: u32,
    /// Where a shrunk failing case is written (a directory per case).
    #[arg(long, default_value = "sim/tests/hw-regressions")]
    regressions: PathBuf,
    /// Time allowed to shrink one failing case, in seconds.
    #[arg(long, default_value_t = 300)]
    shrink_seconds: u64,
    /// Go on after a mismatch (each one shrunk and written).
    #[arg(long)]
    keep_going: bool,
    /// Print a progress line every N cases (0: never).
    #[arg(long, default_value_t = 0)]
    progress: u64,
    /// Run the stored case in this directory instead of fuzzing.
    #[arg(long)]
    replay: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.cases == 0 && args.seconds == 0 && args.replay.is_none() {
        bail!("give --cases, --seconds or --replay (a run must end)");
    }
    let design = flowgate_hdl::Design::from_name(&args.design)
        .with_context(|| format!("no design `{}` (see `flowgate hdl list`)", args.design))?;
    let profile = fuzz::profile_of(design)
        .with_context(|| format!("`{}` is no balancer top of a hardware profile", args.design))?;
    let mut make = fuzz::hardware(Simulator::Verilator, design);

    if let Some(dir) = &args.replay {
        let verdict = fuzz::check_dir(dir, &mut make).map_err(anyhow::Error::msg)?;
        println!("{}: {verdict:?}", dir.display());
        if !matches!(verdict, Verdict::Same { .. }) {
            std::process::exit(1);
        }
        return Ok(());
    }

    let sizes = Sizes {
        frames: args.frames,
        overflow_every: args.overflow_every,
    };
    let start = Instant::now();
    let limit = (args.seconds > 0).then(|| Duration::from_secs(args.seconds));
    let (mut cases, mut frames, mut out, mut events, mut refused, mut mismatches) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut seed = args.seed;
    loop {
        if args.cases > 0 && cases >= args.cases {
            break;
        }
        if limit.is_some_and(|l| start.elapsed() >= l) {
            break;
        }
        let case = fuzz::generate(seed, profile, sizes);
        match fuzz::check(&case, &mut make) {
            Verdict::Same {
                frames_out,
                events: e,
            } => {
                frames += case.frames.len() as u64;
                out += frames_out as u64;
                events += e as u64;
            }
            Verdict::Refused(reason) => {
                refused += 1;
                eprintln!("hw-fuzz: seed {seed}: refused: {reason}");
            }
            Verdict::Differs(difference) => {
                mismatches += 1;
                eprintln!(
                    "hw-fuzz: seed {seed}: MISMATCH ({} frames, {} events): {difference}",
                    case.frames.len(),
                    case.events.len()
                );
                let shrunk = fuzz::shrink(
                    &case,
                    &difference,
                    &mut make,
                    Duration::from_secs(args.shrink_seconds),
                );
                let dir = args
                    .regressions
                    .join(format!("seed-{seed}-{}", args.design));
                let meta = CaseMeta {
                    design: args.design.clone(),
                    seed,
                    note: shrunk.difference.clone(),
                };
                shrunk
                    .case
                    .write_dir(&dir, Some(&meta))
                    .with_context(|| format!("writing {}", dir.display()))?;
                eprintln!(
                    "hw-fuzz: seed {seed}: shrunk in {} tries to {} frames, {} events, {} VIPs: \
                     {}; written to {} (reproduce: flowgate-hw-fuzz --design {} --replay {})",
                    shrunk.tries,
                    shrunk.case.frames.len(),
                    shrunk.case.events.len(),
                    shrunk.case.config.vip.len(),
                    shrunk.difference,
                    dir.display(),
                    args.design,
                    dir.display()
                );
                if !args.keep_going {
                    cases += 1;
                    break;
                }
            }
        }
        cases += 1;
        seed += 1;
        if args.progress > 0 && cases % args.progress == 0 {
            eprintln!(
                "hw-fuzz: {cases} cases, {frames} frames compared, {mismatches} mismatches, {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "hw-fuzz: design {}, seeds {}..{}: {cases} cases, {frames} frames compared, {out} out, \
         {events} events, {refused} refused, {mismatches} mismatches, {secs:.1} s ({:.0} frames/s)",
        args.design,
        args.seed,
        args.seed + cases,
        frames as f64 / secs.max(1e-9)
    );
    if mismatches > 0 {
        std::process::exit(1);
    }
    Ok(())
}
