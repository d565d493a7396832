//! # flowgate-sim: the hardware top under simulation
//!
//! The balancer's hardware top (`flowgate-hdl`) run clock by clock by rust-hdl's simulator
//! or by a Verilator build of its emitted Verilog ([`hw`]), programmed through its
//! AXI4-Lite registers by the driver, fed frames on AXI4-Stream; [`hw::HwEngine`] makes it a
//! `flowgate_host::Engine`, so `flowgate replay --engine rtl|verilator` and
//! `scripts/hw-diff` run it exactly as they run the software engine. Traces come from
//! `flowgate-traces`.

pub mod fuzz;
pub mod hw;
