//! The open tools that check emitted Verilog: yosys (synthesis, cell counts) and Verilator
//! (lint). Every block's tests run both, so the Verilog the crate emits is proven to be
//! read by the tools users build with, not only by rust-hdl's own simulator.
//!
//! A missing tool is an error naming the Debian package that provides it (`scripts/setup`
//! installs them), never a silent skip: a green test run means the tools did run.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::process::{Command, Output};

/// What went wrong running a tool on a design.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "`{tool}` is not installed: install the Debian package `{package}` (scripts/setup does)"
    )]
    Missing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("running `{tool}`: {source}")]
    Io {
        tool: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("`{tool}` rejected the design:\n{log}")]
    Rejected { tool: &'static str, log: String },
    #[error("yosys statistics unreadable: {0}")]
    Stat(String),
}

/// Which yosys synthesis script to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthFlow {
    /// `synth`: technology-independent gates (`$_XOR_`, `$_DFF_P_`, ...).
    Generic,
    /// `synth_ecp5`: Lattice ECP5 cells (`LUT4`, `TRELLIS_FF`, `DP16KD`, ...).
    Ecp5,
}

/// Cell counts of a synthesised design (whole hierarchy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynthReport {
    pub cells: BTreeMap<String, u64>,
}

impl SynthReport {
    /// How many cells of type `kind` (0 if none).
    pub fn cell_count(&self, kind: &str) -> u64 {
        self.cells.get(kind).copied().unwrap_or(0)
    }

    pub fn total_cells(&self) -> u64 {
        self.cells.values().sum()
    }

    /// Flip-flops of every kind (yosys names them `$_DFF_*`, `$_SDFF_*`, ...).
    pub fn flip_flops(&self) -> u64 {
        self.cells
            .iter()
            .filter(|(kind, _)| kind.contains("DFF"))
            .map(|(_, n)| n)
            .sum()
    }
}

impl fmt::Display for SynthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cells", self.total_cells())?;
        for (kind, n) in &self.cells {
            write!(f, ", {kind} {n}")?;
        }
        Ok(())
    }
}

/// Synthesises `verilog` with `top` as top module, asserts `check -assert` (no undriven
/// wires, no multiple drivers, no logic loops) and returns the cell counts.
pub fn yosys_synth(verilog: &str, top: &str, flow: SynthFlow) -> Result<SynthReport, ToolError> {
    let dir = scratch_dir("yosys")?;
    write_file("yosys", &dir.path().join("top.v"), verilog)?;
    let synth = match flow {
        SynthFlow::Generic => format!("synth -flatten -top {top}"),
        SynthFlow::Ecp5 => format!("synth_ecp5 -top {top}"),
    };
    let script =
        format!("read_verilog top.v; {synth}; check -assert; tee -q -o stat.json stat -json");
    let output = run(
        "yosys",
        "yosys",
        Command::new("yosys")
            .current_dir(dir.path())
            .args(["-q", "-p", &script]),
    )?;
    if !output.status.success() {
        return Err(rejected("yosys", &output));
    }
    let stat =
        std::fs::read_to_string(dir.path().join("stat.json")).map_err(|source| ToolError::Io {
            tool: "yosys",
            source,
        })?;
    parse_stat(&stat)
}

/// The structural checks of synthesis without its mapping: elaborates `verilog` with
/// `top` (`hierarchy -check`: every module and port exists), turns processes into logic
/// (`proc`), flattens it, and asserts `check -assert` (no undriven wires, no multiple
/// drivers, no logic loops) and that no latch was inferred. For a whole top, where a full
/// `synth` takes yosys more than a quarter of an hour on this kind of machine, while each
/// block's own test runs the full `synth`. Returns the coarse cell counts.
pub fn yosys_check(verilog: &str, top: &str) -> Result<SynthReport, ToolError> {
    let dir = scratch_dir("yosys")?;
    write_file("yosys", &dir.path().join("top.v"), verilog)?;
    let script = format!(
        "read_verilog top.v; hierarchy -check -top {top}; proc; flatten; opt_clean; \
         check -assert; select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$sr; \
         tee -q -o stat.json stat -json"
    );
    let output = run(
        "yosys",
        "yosys",
        Command::new("yosys")
            .current_dir(dir.path())
            .args(["-q", "-p", &script]),
    )?;
    if !output.status.success() {
        return Err(rejected("yosys", &output));
    }
    let stat =
        std::fs::read_to_string(dir.path().join("stat.json")).map_err(|source| ToolError::Io {
            tool: "yosys",
            source,
        })?;
    parse_stat(&stat)
}

/// Verilator warnings every rust-hdl design raises, and why each is benign.
///
/// * `DECLFILENAME`: rust-hdl emits the whole hierarchy into one file, so each submodule
///   (`top$hash_reg`, ...) sits in a file not named after it.
///
/// Waive anything else per block, in its own test, with the reason beside it.
pub const RUST_HDL_LINT_WAIVERS: &[&str] = &["DECLFILENAME"];

/// Runs `verilator --lint-only -Wall` on `verilog` with the warnings in `waivers` turned
/// off; any other warning or error rejects the design.
pub fn verilator_lint(verilog: &str, top: &str, waivers: &[&str]) -> Result<(), ToolError> {
    let dir = scratch_dir("verilator")?;
    write_file("verilator", &dir.path().join("top.v"), verilog)?;
    let mut command = Command::new("verilator");
    command
        .current_dir(dir.path())
        .args(["--lint-only", "-Wall", "--top-module", top]);
    for waiver in waivers {
        command.arg(format!("-Wno-{waiver}"));
    }
    command.arg("top.v");
    let output = run("verilator", "verilator", &mut command)?;
    if !output.status.success() {
        return Err(rejected("verilator", &output));
    }
    Ok(())
}

fn run(
    tool: &'static str,
    package: &'static str,
    command: &mut Command,
) -> Result<Output, ToolError> {
    command.output().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ToolError::Missing { tool, package },
        _ => ToolError::Io { tool, source },
    })
}

fn rejected(tool: &'static str, output: &Output) -> ToolError {
    ToolError::Rejected {
        tool,
        log: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn scratch_dir(tool: &'static str) -> Result<tempfile::TempDir, ToolError> {
    tempfile::Builder::new()
        .prefix("flowgate-hdl-")
        .tempdir()
        .map_err(|source| ToolError::Io { tool, source })
}

fn write_file(tool: &'static str, path: &Path, text: &str) -> Result<(), ToolError> {
    std::fs::write(path, text).map_err(|source| ToolError::Io { tool, source })
}

/// Reads the `design` totals of `stat -json` (the whole hierarchy below the top).
pub fn parse_stat(json: &str) -> Result<SynthReport, ToolError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ToolError::Stat(e.to_string()))?;
    let by_type = value
        .pointer("/design/num_cells_by_type")
        .and_then(|v| v.as_object())
        .ok_or_else(|| ToolError::Stat("no design.num_cells_by_type".into()))?;
    let mut cells = BTreeMap::new();
    for (kind, n) in by_type {
        let n = n
            .as_u64()
            .ok_or_else(|| ToolError::Stat(format!("count of {kind} is not a number")))?;
        cells.insert(kind.clone(), n);
    }
    Ok(SynthReport { cells })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_its_debian_package() {
        let err = run(
            "flowgate-no-such-tool",
            "flowgate-no-such-package",
            &mut Command::new("flowgate-no-such-tool"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("Debian package `flowgate-no-such-package`"),
            "{err}"
        );
    }

    #[test]
    fn broken_verilog_is_rejected_by_both_tools() {
        let broken = "module top(input a, output b); assign b = a &; endmodule\n";
        assert!(matches!(
            yosys_synth(broken, "top", SynthFlow::Generic),
            Err(ToolError::Rejected { tool: "yosys", .. })
        ));
        assert!(matches!(
            verilator_lint(broken, "top", &[]),
            Err(ToolError::Rejected {
                tool: "verilator",
                ..
            })
        ));
    }

    #[test]
    fn clean_verilog_synthesises_to_the_expected_cells() {
        let xor = "module top(input a, input b, output y); assign y = a ^ b; endmodule\n";
        let report = yosys_synth(xor, "top", SynthFlow::Generic).unwrap();
        assert_eq!(report.cell_count("$_XOR_"), 1, "{report}");
        assert_eq!(report.total_cells(), 1, "{report}");
        verilator_lint(xor, "top", &[]).unwrap();
        let ecp5 = yosys_synth(xor, "top", SynthFlow::Ecp5).unwrap();
        assert_eq!(ecp5.cell_count("LUT4"), 1, "{ecp5}");
    }
}
