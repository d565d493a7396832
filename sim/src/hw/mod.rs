//! Simulation engines for a flowgate top-level design: the same commands (AXI4-Lite
//! register accesses, frames on AXI4-Stream, run until the design is idle) served by the
//! rust-hdl simulator ([`rtl`]) or by a Verilator build of the emitted Verilog
//! ([`verilator`]), so both can be diffed against each other and against `core`.
//!
//! Both engines drive the top's ports clock by clock with the same rules ([`cycle`]), so
//! they agree on every output bit *and* on every clock count:
//! * each clock, inputs are set while the clock is low, the design settles, handshakes are
//!   sampled (`valid && ready`), then the clock rises;
//! * frames are streamed back to back on `s_axis` (`s_axis_tuser` = the frame's tick on its
//!   first beat, 0 on the others), `tvalid` held until `tready`; an empty frame is one beat
//!   with no byte kept;
//! * `m_axis_tready` is high, or, with [`Backpressure`], high with a given probability from
//!   a seeded xorshift32 (the same sequence in both engines);
//! * AXI4-Lite accesses are real handshakes: a write raises `awvalid` and `wvalid` together
//!   (`wstrb` = 0xf) and drops each on its ready, then waits for `bvalid` with `bready`
//!   high; a read raises `arvalid` until `arready`, then waits for `rvalid` with `rready`
//!   high. While they run the stream is idle and `m_axis` is still drained.
//!
//! Clock numbers count rising edges from the start of the engine. [`RunReport::span`] is
//! the number of clocks from the first beat in to the last beat out, inclusive: N frames
//! of B beats through a design with II = 1 and latency L take `N·B + L`.
//!
//! [`HwBus`] puts the driver's [`flowgate_driver::bus::RegisterBus`] on top of either
//! engine, so `flowgate_driver::program::program` programs the design through AXI4-Lite.

mod bus;
pub mod cycle;
pub mod engine;
pub mod replay;
pub mod rtl;
pub mod verilator;

pub use bus::HwBus;
pub use engine::HwEngine;

use std::io;
use std::path::PathBuf;

/// AXI4-Lite `OKAY` response.
pub const RESP_OKAY: u8 = 0;

/// Clocks an AXI4-Lite access may take before the engine gives up (a design that never
/// answers must not hang the caller).
pub const AXIL_TIMEOUT_CYCLES: u64 = 1_000;

/// One frame that left on `m_axis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    /// The kept bytes of its beats, in lane order.
    pub data: Vec<u8>,
    /// `m_axis_tuser` on its first beat.
    pub tuser: u8,
}

/// What a [`HwSim::run`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunReport {
    /// Frames that left since the previous run (including any that left during register
    /// accesses in between), in order.
    pub frames: Vec<OutFrame>,
    /// Clock of the first `s_axis` handshake of this run.
    pub first_in: Option<u64>,
    /// Clock of the last `m_axis` handshake of this run.
    pub last_out: Option<u64>,
    /// Clock count of the engine when the run ended.
    pub end_cycle: u64,
}

impl RunReport {
    /// Clocks from the first beat in to the last beat out, both included.
    pub fn span(&self) -> Option<u64> {
        match (self.first_in, self.last_out) {
            (Some(a), Some(b)) if b >= a => Some(b - a + 1),
            _ => None,
        }
    }
}

/// Random `m_axis_tready`: high in `ready_percent` % of the clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backpressure {
    pub seed: u32,
    pub ready_percent: u8,
}

/// How a [`HwSim::run`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    /// The run ends once every queued beat has been taken, no frame is half out, and
    /// `m_axis_tvalid` has been low for this many clocks in a row. A design that drops a
    /// frame stays silent while the frame drains (the top: one beat per clock out of its
    /// frame FIFO), so a caller sending long frames allows for that here, as
    /// [`HwReplay::run`](replay::HwReplay::run) does.
    pub idle_cycles: u32,
    /// Clocks after which the run fails with [`HwError::Timeout`].
    pub max_cycles: u64,
    pub backpressure: Option<Backpressure>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            idle_cycles: 64,
            max_cycles: 50_000_000,
            backpressure: None,
        }
    }
}

/// Why an engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum HwError {
    #[error(
        "`{tool}` is not installed: install the Debian package `{package}` (scripts/setup does)"
    )]
    Missing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("building the Verilator model in {dir}:\n{log}")]
    Build { dir: PathBuf, log: String },
    #[error("the design's ports do not match the flowgate top: {0}")]
    Ports(String),
    #[error("{0} cannot be simulated as a top: it does not have the top's ports")]
    NotATop(String),
    #[error("simulation I/O: {0}")]
    Io(#[from] io::Error),
    #[error("the simulation stopped: {0}")]
    Died(String),
    #[error("no end after {cycles} clocks (design stalled or never idle)")]
    Timeout { cycles: u64 },
    #[error("AXI4-Lite {op} at {addr:#06x} answered response {resp} (not OKAY)")]
    Response {
        op: &'static str,
        addr: u32,
        resp: u8,
    },
    #[error("AXI4-Lite {op} at {addr:#06x}: no response within {AXIL_TIMEOUT_CYCLES} clocks")]
    AxilTimeout { op: &'static str, addr: u32 },
}

/// A simulated flowgate top: the commands every engine serves.
pub trait HwSim {
    /// Bytes per stream beat (`s_axis_tdata` width / 8).
    fn data_bytes(&self) -> usize;
    /// Clocks since the engine started.
    fn cycle(&self) -> u64;
    /// One AXI4-Lite write of all four bytes; a non-OKAY response is an error.
    fn axil_write(&mut self, addr: u32, data: u32) -> Result<(), HwError>;
    /// One AXI4-Lite read; a non-OKAY response is an error.
    fn axil_read(&mut self, addr: u32) -> Result<u32, HwError>;
    /// Queue `frame` for the next [`run`](HwSim::run), with `tick` on its first beat.
    fn send(&mut self, frame: &[u8], tick: u32);
    /// Stream every queued frame and clock until the design is idle.
    fn run(&mut self, config: &RunConfig) -> Result<RunReport, HwError>;
}

impl<E: HwSim + ?Sized> HwSim for &mut E {
    fn data_bytes(&self) -> usize {
        (**self).data_bytes()
    }
    fn cycle(&self) -> u64 {
        (**self).cycle()
    }
    fn axil_write(&mut self, addr: u32, data: u32) -> Result<(), HwError> {
        (**self).axil_write(addr, data)
    }
    fn axil_read(&mut self, addr: u32) -> Result<u32, HwError> {
        (**self).axil_read(addr)
    }
    fn send(&mut self, frame: &[u8], tick: u32) {
        (**self).send(frame, tick)
    }
    fn run(&mut self, config: &RunConfig) -> Result<RunReport, HwError> {
        (**self).run(config)
    }
}

impl<E: HwSim + ?Sized> HwSim for Box<E> {
    fn data_bytes(&self) -> usize {
        (**self).data_bytes()
    }
    fn cycle(&self) -> u64 {
        (**self).cycle()
    }
    fn axil_write(&mut self, addr: u32, data: u32) -> Result<(), HwError> {
        (**self).axil_write(addr, data)
    }
    fn axil_read(&mut self, addr: u32) -> Result<u32, HwError> {
        (**self).axil_read(addr)
    }
    fn send(&mut self, frame: &[u8], tick: u32) {
        (**self).send(frame, tick)
    }
    fn run(&mut self, config: &RunConfig) -> Result<RunReport, HwError> {
        (**self).run(config)
    }
}

/// Which simulator runs a design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulator {
    /// rust-hdl's simulator ([`rtl::RtlSim`]).
    Rtl,
    /// A Verilator build of the emitted Verilog ([`verilator::VerilatorSim`]).
    Verilator,
}

impl Simulator {
    /// Its name on the command line (`--engine rtl|verilator`).
    pub fn name(self) -> &'static str {
        match self {
            Simulator::Rtl => "rtl",
            Simulator::Verilator => "verilator",
        }
    }
}

/// Start `engine` on `design`. Only top-level designs (with the top's ports) can be
/// simulated; the Verilator build is cached (see [`verilator::VerilatorSim::build`]).
pub fn open(engine: Simulator, design: flowgate_hdl::Design) -> Result<Box<dyn HwSim>, HwError> {
    use flowgate_hdl::stand_in::{StandIn512, StandIn64};
    use flowgate_hdl::Design;
    match engine {
        Simulator::Rtl => match design {
            Design::StandIn64 => Ok(Box::new(rtl::RtlSim::new(StandIn64::default()))),
            Design::StandIn512 => Ok(Box::new(rtl::RtlSim::new(StandIn512::default()))),
            Design::Top => Ok(Box::new(rtl::RtlSim::spawn(flowgate_hdl::top::small_top))),
            Design::WideTop => Ok(Box::new(rtl::RtlSim::spawn(flowgate_hdl::top::wide_top))),
            Design::Top100g => Ok(Box::new(rtl::RtlSim::spawn(flowgate_hdl::top::top_100g))),
            other => Err(HwError::NotATop(format!("{other:?}"))),
        },
        Simulator::Verilator => match design {
            Design::StandIn64
            | Design::StandIn512
            | Design::Top
            | Design::WideTop
            | Design::Top100g => {
                // `emit_verilog` runs on its own large-stack thread.
                Ok(Box::new(verilator::VerilatorSim::build(
                    &flowgate_hdl::emit_verilog(design),
                )?))
            }
            other => Err(HwError::NotATop(format!("{other:?}"))),
        },
    }
}
