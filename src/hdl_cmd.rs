//! `flowgate hdl`: the hardware designs of `flowgate-hdl`, as files for a user's FPGA
//! project. `emit` writes a design's Verilog (top renamed `flowgate_core`), the
//! `flowgate_app` wrapper with AXI-style port names for a NIC shell's user-logic slot,
//! and `manifest.json` (ports, parameters, register map); `list` names the designs.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use flowgate_hdl::profile::HwProfile;
use flowgate_hdl::{emit, Design};
use std::path::PathBuf;

#[derive(Args)]
pub struct HdlArgs {
    #[command(subcommand)]
    command: HdlCommand,
}

#[derive(Subcommand)]
enum HdlCommand {
    /// Write a design's Verilog, its shell wrapper and a JSON manifest into a directory.
    Emit {
        /// Output directory (created if missing; files in it are replaced).
        #[arg(long, short)]
        out: PathBuf,
        /// The design (see `flowgate hdl list`); default: the balancer top of `--profile`.
        #[arg(long, value_parser = parse_design, conflicts_with = "profile")]
        design: Option<Design>,
        /// The balancer top for a class of board (a row of `flowgate_hdl::profile`):
        /// `small` (64-bit stream, ECP5-class tables: the `top` design), `wide` (the same
        /// tables on 512 bits: `wide-top`) or `100g` (512-bit stream, 64 VIPs, 1024
        /// backends, 16384 × 4 flows: `top-100g`).
        #[arg(long, default_value = "small", value_parser = parse_profile)]
        profile: &'static HwProfile,
    },
    /// List the designs `emit` knows.
    List,
}

fn parse_profile(name: &str) -> Result<&'static HwProfile, String> {
    HwProfile::from_name(name)
        .ok_or_else(|| format!("unknown profile; one of: {}", HwProfile::names()))
}

fn parse_design(name: &str) -> Result<Design, String> {
    Design::from_name(name).ok_or_else(|| {
        let names: Vec<String> = Design::ALL.iter().map(|d| d.name()).collect();
        format!("unknown design; one of: {}", names.join(", "))
    })
}

pub fn run(args: HdlArgs) -> Result<()> {
    match args.command {
        HdlCommand::List => {
            for d in Design::ALL {
                println!("{}", d.name());
            }
            Ok(())
        }
        HdlCommand::Emit {
            out,
            design,
            profile,
        } => {
            let design = match design {
                Some(d) => d,
                None => Design::from_name(profile.design)
                    .with_context(|| format!("profile {} names no design", profile.name))?,
            };
            let written = emit::write(design, &out)
                .with_context(|| format!("writing {} into {}", design.name(), out.display()))?;
            for path in [&written.core, &written.wrapper, &written.manifest] {
                println!("{}", path.display());
            }
            eprintln!(
                "hdl emit: {} ({} ports) into {}",
                design.name(),
                written.ports.len(),
                out.display()
            );
            Ok(())
        }
    }
}
