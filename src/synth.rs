//! `flowgate synth`: runs a synthesis flow from `flowgate_synth` and prints its
//! progress step by step and the report's headline.

use anyhow::{Context, Result};
use clap::Args;
use flowgate_synth::report::PathSummary;
use flowgate_synth::{self as synth, parts::Target, Options, Profile, Progress, Router};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct SynthArgs {
    /// ecp5-85f, ecp5-25f (bitstream), xilinx-estimate (yosys counts), vivado, quartus
    /// (generated scripts).
    #[arg(long, required_unless_present_any = ["list_designs", "levels"])]
    target: Option<Target>,
    /// Stream geometry: small (64-bit) or 100g (512-bit); sets the line-rate figures.
    #[arg(long, default_value = "small")]
    profile: Profile,
    /// The design to synthesise (`--list-designs` shows them; default: the profile's whole
    /// balancer, `top` or `top-100g`).
    #[arg(long)]
    design: Option<String>,
    /// Target clock in MHz (default: 150 on ECP5; on the 100G-class parts 322.265625, the
    /// 100 GbE MAC's stream clock, with `--profile 100g`, else 250).
    #[arg(long)]
    freq: Option<f64>,
    /// Output directory (default: target/synth/DESIGN-TARGET).
    #[arg(long)]
    out: Option<PathBuf>,
    /// nextpnr placer seed.
    #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
    seed: u64,
    /// Several nextpnr seeds, one run after another (`--seeds 1,2,3`), each into
    /// OUT/seed-N; yosys runs once and the later seeds reuse its netlist. The seed decides
    /// which placements route (docs/SYNTHESIS.md); `scripts/synth-bg` runs this in the
    /// background.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    seeds: Vec<u64>,
    /// nextpnr's router on the ECP5 targets: router1 (nextpnr's default) or router2.
    #[arg(long, default_value = "router1")]
    router: Router,
    /// Print report.json on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// List the designs and exit.
    #[arg(long)]
    list_designs: bool,
    /// Print the deepest logic paths (levels) of an earlier run's yosys netlist
    /// (`synth.json`, or `synth-outreg.json` as nextpnr reads it) and exit: which block
    /// will set the clock, in seconds instead of after place and route.
    #[arg(long, value_name = "NETLIST")]
    levels: Option<PathBuf>,
}

pub fn run(args: SynthArgs) -> Result<()> {
    if let Some(netlist) = &args.levels {
        let text = std::fs::read_to_string(netlist)
            .with_context(|| format!("reading {}", netlist.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a yosys JSON netlist", netlist.display()))?;
        let paths = synth::levels::deepest(&json, synth::DEEPEST_PATHS)
            .map_err(|e| anyhow::anyhow!("{}: {e}", netlist.display()))?;
        print!("{}", synth::levels::to_markdown(&paths));
        return Ok(());
    }
    if args.list_designs {
        for d in synth::DESIGNS {
            println!("{:<16} {}", d.name, d.about);
        }
        return Ok(());
    }
    let Some(target) = args.target else {
        anyhow::bail!("--target is required");
    };
    let design = synth::design(
        args.design
            .as_deref()
            .unwrap_or(synth::default_design(args.profile)),
    )?;
    let freq_mhz = args
        .freq
        .unwrap_or(target.default_freq_mhz(args.profile == Profile::Hundred));
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
    if !args.seeds.is_empty() {
        return run_seeds(&opts, &args.seeds, args.json);
    }
    eprintln!(
        "synth: {} on {} at {freq_mhz} MHz → {}",
        design.name,
        target,
        out_dir.display()
    );
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
    if !report.critical_path.is_empty() {
        let p = PathSummary::of(&report.critical_path);
        println!(
            "critical path: {:.2} ns, {} logic levels, routing {:.2} ns: {}",
            p.total_ns,
            p.logic_levels,
            p.routing_ns,
            p.route()
        );
    }
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

fn show(p: Progress) {
    match p {
        Progress::Started { step, of, what } => {
            eprint!("[{step}/{of}] {what} ... ");
            let _ = std::io::stderr().flush();
        }
        Progress::Finished { took, .. } => eprintln!("done in {:.1} s", took.as_secs_f64()),
    }
}

/// `--seeds`: one run per seed into OUT/seed-N, one after another (each place and route
/// takes a core; the machine decides how many may run side by side, `scripts/synth-bg`
/// starts them). A seed that fails is reported and the next one runs.
fn run_seeds(base: &Options, seeds: &[u64], json: bool) -> Result<()> {
    let mut results = Vec::new();
    let mut netlist_from: Option<PathBuf> = None;
    for &seed in seeds {
        let out_dir = base.out_dir.join(format!("seed-{seed}"));
        if let Some(from) = &netlist_from {
            synth::offer_netlist(from, &out_dir)?;
        }
        let opts = Options {
            seed,
            out_dir: out_dir.clone(),
            ..base.clone()
        };
        eprintln!(
            "synth: {} on {} at {} MHz, seed {seed} → {}",
            base.design,
            base.target,
            base.freq_mhz,
            out_dir.display()
        );
        match synth::run(&opts, &mut show) {
            Ok(report) => {
                netlist_from = Some(out_dir.clone());
                results.push((seed, Ok(report)));
            }
            Err(e) => {
                eprintln!("failed: {e}");
                if out_dir.join("synth.inputs").is_file() {
                    netlist_from = Some(out_dir.clone());
                }
                results.push((seed, Err(e)));
            }
        }
    }
    if json {
        let all: Vec<serde_json::Value> = results
            .iter()
            .map(|(seed, r)| match r {
                Ok(report) => serde_json::json!({"seed": seed, "report": report.to_json()}),
                Err(e) => serde_json::json!({"seed": seed, "error": e.to_string()}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for (seed, r) in &results {
            match r {
                Ok(report) => println!(
                    "seed {seed}: Fmax {} → {}",
                    report
                        .fmax_mhz
                        .map_or("not measured".into(), |f| format!("{f:.1} MHz")),
                    base.out_dir
                        .join(format!("seed-{seed}/report.md"))
                        .display()
                ),
                Err(e) => println!("seed {seed}: failed: {e}"),
            }
        }
    }
    if results.iter().all(|(_, r)| r.is_err()) {
        anyhow::bail!("every seed failed");
    }
    Ok(())
}
