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
//! * [`flow_table`] — the set-associative flow table in block RAM, one request per clock,
//!   with forwarding so back-to-back requests see each other's writes.
//! * [`toolchain`] — running yosys and Verilator on emitted Verilog.
//! * [`synth`] — the synthesis flows behind `flowgate synth`: ECP5 bitstreams, yosys
//!   UltraScale+ estimates, generated Vivado and Quartus projects, and their reports.

pub mod axis;
pub mod axis_parse;
pub mod flow_table;
pub mod hash;
pub mod parse;
pub mod synth;
pub mod toolchain;

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
}

/// The Verilog of `design`, top module named `top` (rust-hdl always names it so).
///
/// Every design here passes rust-hdl's connectivity checks (its `*_synthesizes` test
/// proves it), so emission cannot fail at run time.
pub fn emit_verilog(design: Design) -> String {
    match design {
        Design::FlowToeplitz => emit(hash::FlowToeplitz::default()),
        Design::FlowTable16K => emit(flow_table::FlowTable16K::default()),
        Design::FlowHeaderCapture => emit(axis::FlowHeaderCapture::default()),
        Design::FlowHeaderParse => emit(parse::FlowHeaderParse::default()),
        Design::AxisParser => emit(axis_parse::FlowAxisParser::default()),
    }
}

fn emit<B: Block>(mut top: B) -> String {
    top.connect_all();
    generate_verilog(&top)
}
