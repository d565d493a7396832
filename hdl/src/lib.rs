//! flowgate's hardware pipeline: the `core` contract (parse → classify → hash → flow table →
//! select → rewrite) rebuilt as RustHDL blocks, emitted as Verilog for FPGA NIC shells, and
//! proven identical to `core` by simulation. Each block's tests drive it in rust-hdl's
//! simulator against the `flowgate_core` function it implements, then feed the emitted
//! Verilog to yosys (synthesis, `check -assert`) and Verilator (`--lint-only -Wall`). The
//! driver programs the hardware through the register map in `core`; the sim crate replays
//! pcap traces through it and diffs it against the software engine.
//!
//! Modules follow the data flow:
//! * [`axis`] — AXI4-Stream header capture: the first 128 bytes and the length of a frame.
//! * [`parse`] — the header parser (`core::parse`), one frame per clock.
//! * [`axis_parse`] — the two joined: AXI4-Stream in, parsed fields out.
//! * [`hash`] — Toeplitz (RSS) hash, one XOR tree with a registered output.
//! * [`decide`] — VIP match, flow hash, Maglev select and the flow table joined: one
//!   verdict per clock from the parser's result.
//! * [`flow_table`] — the set-associative flow table in block RAM, one request per clock,
//!   with forwarding so back-to-back requests see each other's writes.
//! * [`rewrite`] — the rewriter (DSR MACs, IP-in-IP or GUE outer header, per `core`'s mode table),
//!   one beat per clock; [`frame_fifo`] holds frames while their headers are decided.
//! * [`stand_in`] — the top's exact ports around a register stub and a pass-through: the
//!   simulation harness's test fixture (predictable to the bit, builds in seconds).
//! * [`top`] — all of them wired: AXI4-Stream in and out, AXI4-Lite registers; its
//!   types per board class come from the [`profile`] table.
//! * [`counters`] — the counters, one frame event per clock.
//! * [`csr`] — the AXI4-Lite register block of `docs/REGISTERS.md` and the table storage.
//! * [`widen`] — concatenation and zero-extension as tiny Verilog modules.
//! * [`toolchain`] — running yosys and Verilator on emitted Verilog.
//! * [`emit`] — the files `flowgate hdl emit` writes: Verilog, shell wrapper, manifest.
//! * [`wrap`] — the Verilog around an emitted design: its port list, the serial harness
//!   and the shell wrapper.
//!
//! The synthesis flows behind `flowgate synth` (ECP5 bitstreams, yosys UltraScale+
//! estimates, Vivado and Quartus projects, timing reports) are the `flowgate-synth` crate.

pub mod action_fifo;
pub mod axis;
pub mod axis_parse;
pub mod counters;
pub mod csr;
pub mod decide;
pub mod emit;
pub mod flow_table;
pub mod frame_fifo;
pub mod hash;
pub mod inner_sum;
pub mod parse;
pub mod profile;
pub mod reg_ram;
pub mod rewrite;
pub mod stand_in;
pub mod toolchain;
pub mod top;
pub mod widen;
pub mod wrap;

use rust_hdl::prelude::{generate_verilog, Block};

/// The top-level designs this crate emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// [`hash::FlowToeplitz`]: the 39-byte-input, 52-byte-key Toeplitz hash.
    FlowToeplitz,
    /// [`flow_table::FlowTable16K`]: 4096 sets × 4 ways, the ECP5-85F profile.
    FlowTable16K,
    /// [`axis::FlowHeaderCapture`]: 64-bit AXI4-Stream to a 128-byte header vector.
    FlowHeaderCapture,
    /// [`parse::FlowHeaderParse`]: the parser on a 128-byte header vector.
    FlowHeaderParse,
    /// [`axis_parse::FlowAxisParser`]: capture and parser joined, 64-bit stream.
    AxisParser,
    /// [`stand_in::StandIn64`]: the top's ports around a register stub and a FIFO, 64-bit
    /// stream; the simulation harness's test fixture.
    StandIn64,
    /// [`stand_in::StandIn512`]: the same, 512-bit stream.
    StandIn512,
    /// [`rewrite::FlowRewriter`]: the rewriter on a 64-bit stream.
    FlowRewriter,
    /// [`rewrite::WideRewriter`]: the rewriter on a 512-bit stream.
    WideRewriter,
    /// [`frame_fifo::FlowFrameFifo`]: 2048 beats of 64 bits.
    FlowFrameFifo,
    /// [`csr::SmallCsr`]: the register block, ECP5 profile (8 VIPs, 64 backends, M = 509).
    SmallCsr,
    /// [`counters::SmallCounters`]: the counters, 8 VIPs, 64 backends.
    SmallCounters,
    /// [`decide::FlowDecide`]: VIP match → hash → Maglev → flow table, the small profile
    /// (8 VIPs, 64 backends, M = 251, 4096 × 4 flows).
    FlowDecide,
    /// [`top::SmallTop`]: the whole balancer, 64-bit stream, the small profile's tables
    /// (8 VIPs, 64 backends, M = 251, 4096 × 4 flows).
    Top,
    /// [`top::WideTop`]: the same balancer on a 512-bit stream.
    WideTop,
    /// [`top::Top100g`]: the balancer for 100G shells: 512-bit stream, 64 VIPs, 1024
    /// backends, M = 4093, 16384 × 4 flows.
    Top100g,
}

impl Design {
    /// Every design, in the order `flowgate hdl list` shows them.
    pub const ALL: &'static [Design] = &[
        Design::FlowToeplitz,
        Design::FlowTable16K,
        Design::FlowHeaderCapture,
        Design::FlowHeaderParse,
        Design::AxisParser,
        Design::StandIn64,
        Design::StandIn512,
        Design::FlowRewriter,
        Design::WideRewriter,
        Design::FlowFrameFifo,
        Design::SmallCsr,
        Design::SmallCounters,
        Design::FlowDecide,
        Design::Top,
        Design::WideTop,
        Design::Top100g,
    ];

    /// The design's name on the command line: its variant name in kebab case, digits
    /// as one word (`FlowTable16K` → `flow-table-16k`).
    pub fn name(self) -> String {
        let mut name = String::new();
        let mut prev: Option<char> = None;
        for c in format!("{self:?}").chars() {
            let starts_word = match prev {
                Some(p) => {
                    (c.is_ascii_uppercase() && p.is_ascii_lowercase())
                        || (c.is_ascii_digit() && p.is_ascii_alphabetic())
                }
                None => false,
            };
            if starts_word {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
            prev = Some(c);
        }
        name
    }

    /// The design named `name` (as [`Design::name`] spells it).
    pub fn from_name(name: &str) -> Option<Design> {
        Design::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// The design's geometry and widths, for the emission manifest.
    pub fn parameters(self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Design::FlowToeplitz => json!({
                "input_bytes": hash::INPUT_BITS / 8,
                "key_bytes": hash::KEY_BITS / 8,
                "latency": 1,
            }),
            Design::FlowTable16K => json!({
                "sets": 4096,
                "ways": 4,
                "banks": 2,
                "latency": 4,
            }),
            Design::FlowHeaderCapture => json!({
                "data_bits": axis::AXIS_DATA_BITS,
                "header_bytes": axis::HEADER_BYTES,
            }),
            Design::FlowHeaderParse => json!({
                "header_bytes": axis::HEADER_BYTES,
                "latency": 1,
            }),
            Design::AxisParser => json!({
                "data_bits": 64,
                "header_bytes": axis::HEADER_BYTES,
            }),
            Design::StandIn64 => json!({"data_bits": 64}),
            Design::StandIn512 => json!({"data_bits": 512}),
            Design::FlowRewriter => json!({"data_bits": 64}),
            Design::WideRewriter => json!({"data_bits": 512}),
            Design::FlowFrameFifo => json!({"data_bits": 64, "beats": 2048}),
            Design::SmallCsr => json!({"vips": 8, "backends": 64, "maglev_m": 509}),
            Design::SmallCounters => json!({"vips": 8, "backends": 64}),
            Design::FlowDecide => json!({
                "vips": 8,
                "backends": 64,
                "maglev_m": decide::FLOW_DECIDE_M,
                "sets": 4096,
                "ways": 4,
                "latency": decide::FlowDecide::LATENCY,
                "min_gap": decide::FlowDecide::MIN_GAP,
            }),
            Design::Top => profile_parameters(&profile::SMALL, top::SmallTop::DECIDE_LATENCY),
            Design::WideTop => profile_parameters(&profile::WIDE, top::WideTop::DECIDE_LATENCY),
            Design::Top100g => {
                profile_parameters(&profile::HUNDRED_G, top::Top100g::DECIDE_LATENCY)
            }
        }
    }
}

/// A balancer top's manifest parameters, from its profile.
fn profile_parameters(p: &profile::HwProfile, decide_latency: usize) -> serde_json::Value {
    serde_json::json!({
        "profile": p.name,
        "data_bits": p.data_bits,
        "frame_fifo_beats": p.frame_fifo_beats,
        "action_fifo_frames": p.action_fifo_frames,
        "vips": p.vips,
        "backends": p.backends,
        "maglev_m": p.maglev_m,
        "sets": p.sets,
        "ways": p.ways,
        "decide_latency": decide_latency,
    })
}

/// The Verilog of `design`, top module named `top` (rust-hdl always names it so).
///
/// Every design here passes rust-hdl's connectivity checks (its `*_synthesizes` test
/// proves it), so emission cannot fail at run time.
pub fn emit_verilog(design: Design) -> String {
    // rust-hdl keeps a design's signals inline and walks it recursively: a whole top on a
    // 512-bit stream needs far more than a default thread stack.
    std::thread::Builder::new()
        .stack_size(EMIT_STACK)
        .spawn(move || emit_design(design))
        .expect("spawning the emission thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Stack of the thread that builds and emits a design.
pub const EMIT_STACK: usize = 512 << 20;

fn emit_design(design: Design) -> String {
    match design {
        Design::FlowToeplitz => emit(hash::FlowToeplitz::default()),
        Design::FlowTable16K => emit(flow_table::FlowTable16K::default()),
        Design::FlowHeaderCapture => emit(axis::FlowHeaderCapture::default()),
        Design::FlowHeaderParse => emit(parse::FlowHeaderParse::default()),
        Design::AxisParser => emit(axis_parse::FlowAxisParser::default()),
        Design::StandIn64 => emit(stand_in::StandIn64::default()),
        Design::StandIn512 => emit(stand_in::StandIn512::default()),
        Design::FlowRewriter => emit(rewrite::FlowRewriter::default()),
        Design::WideRewriter => emit(rewrite::WideRewriter::default()),
        Design::FlowFrameFifo => emit(frame_fifo::FlowFrameFifo::default()),
        Design::SmallCsr => emit(csr::small_csr()),
        Design::SmallCounters => emit(counters::SmallCounters::default()),
        Design::FlowDecide => emit(decide::FlowDecide::new(decide::FLOW_DECIDE_M)),
        Design::Top => emit(top::small_top()),
        Design::WideTop => emit(top::wide_top()),
        Design::Top100g => emit(top::top_100g()),
    }
}

/// A `Bits<N>` constant from an integer (emitted as a Verilog `localparam`).
pub(crate) fn constant<const N: usize>(
    value: u64,
) -> rust_hdl::prelude::Constant<rust_hdl::prelude::Bits<N>> {
    rust_hdl::prelude::Constant::new(value.into())
}

fn emit<B: Block>(mut top: B) -> String {
    top.connect_all();
    generate_verilog(&top)
}
