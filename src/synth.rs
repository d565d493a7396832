//! `flowgate synth`: runs a synthesis flow from `flowgate_hdl::synth` and prints its
//! progress step by step and the report's headline.

use anyhow::{Context, Result};
use clap::Args;
use flowgate_hdl::synth::{self, parts::Target, Options, Profile, Progress, Router};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct SynthArgs {
    /// ecp5-85f, ecp5-25f (bitstream), xilinx-estimate (yosys counts), vivado, quartus
    /// (generated scripts).
    #[arg(long, required_unless_present = "list_designs")]
    target: Option<Target>,
    /// Stream geometry: small (64-bit) or 100g (512-bit); sets the line-rate figures.
    #[arg(long, default_value = "small")]
    profile: Profile,
    /// The design to synthesise (`--list-designs` shows them).
    #[arg(long, default_value = synth::DEFAULT_DESIGN)]
    design: String,
    /// Target clock in MHz (default: 150 on ECP5, 250 for the 100G-class parts).
    #[arg(long)]
    freq: Option<f64>,
    /// Output directory (default: target/synth/DESIGN-TARGET).
    #[arg(long)]
    out: Option<PathBuf>,
    /// nextpnr placer seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// nextpnr's router on the ECP5 targets: router1 (nextpnr's default) or router2.
    #[arg(long, default_value = "router1")]
    router: Router,
    /// Print report.json on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// List the designs and exit.
    #[arg(long)]
    list_designs: bool,
}

pub fn run(args: SynthArgs) -> Result<()> {
    if args.list_designs {
        for d in synth::DESIGNS {
            println!("{:<16} {}", d.name, d.about);
        }
        return Ok(());
    }
    let Some(target) = args.target else {
        anyhow::bail!("--target is required");
    };
    let design = synth::design(&args.design)?;
    let freq_mhz = args.freq.unwrap_or(target.default_freq_mhz());
    if !(freq_mhz.is_finite() && freq_mhz > 0.0 && freq_mhz <= 2000.0) {
        anyhow::bail!("--freq must be in (0, 2000] MHz, not {freq_mhz}");
    }
    let out_dir = args.out.unwrap_or_else(|| {
        PathBuf::from("target/synth").join(format!("{}-{}", design.name, target))
    });
    let opts = Options {
        design: design.name,
        target,
        profile: args.profile,
        freq_mhz,
        out_dir: out_dir.clone(),
        seed: args.seed,
        router: args.router,
    };
    eprintln!(
        "synth: {} on {} at {freq_mhz} MHz → {}",
        design.name,
        target,
        out_dir.display()
    );
    let mut show = |p: Progress| match p {
        Progress::Started { step, of, what } => {
            eprint!("[{step}/{of}] {what} ... ");
            let _ = std::io::stderr().flush();
        }
        Progress::Finished { took, .. } => eprintln!("done in {:.1} s", took.as_secs_f64()),
    };
    let report = synth::run(&opts, &mut show).inspect_err(|_| eprintln!("failed"))?;
    if args.json {
        print!("{}", report.to_json_string());
        return Ok(());
    }
    match report.fmax_mhz {
        Some(f) => println!(
            "Fmax {f:.1} MHz (target {:.1} MHz, {})",
            report.freq_target_mhz,
            if f >= report.freq_target_mhz {
                "met"
            } else {
                "NOT met"
            }
        ),
        None => println!("Fmax not measured on this target"),
    }
    for r in &report.resources {
        if let Some(used) = r.used {
            println!(
                "{:<5} {used:>8} / {:<8} {:>5.1} %  {}",
                r.class,
                r.available,
                r.percent().unwrap_or(0.0),
                r.kind
            );
        }
    }
    println!(
        "flow entries: {} in the design, {} fit the part",
        report.flow_entries,
        report.flow_entries_fit()
    );
    if let Some((file, bytes)) = &report.bitstream {
        println!(
            "bitstream: {} ({bytes} bytes)",
            out_dir.join(file).display()
        );
    }
    let md = out_dir.join("report.md");
    println!("report: {}", md.display());
    std::fs::metadata(&md).with_context(|| format!("report missing: {}", md.display()))?;
    Ok(())
}
