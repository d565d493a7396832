//! # flowgate-core: the contract
//!
//! This crate *is* flowgate's data path, written once as a sequential, pure function of
//! (frame, time, programmed state). Every engine — the software fallback in `host-fallback`,
//! the RustHDL pipeline in `hdl`, the Verilator and RTL simulations in `sim` — is either a
//! thin adapter that calls into this crate or is checked against it byte for byte on traces.
//! Nothing here does I/O, allocates on the per-frame path beyond the output buffer, or
//! panics on any input frame.
//!
//! The modules follow the data flow of one frame:
//! [`parse`] → [`classify`] → [`hash`] → [`flow_table`] → [`maglev`] (select) →
//! [`rewrite`] → [`counters`]; [`pipeline`] chains them, and [`regmap`] is the single
//! description of the register map that the driver and the hardware share.

pub mod classify;
pub mod counters;
pub mod flow_table;
pub mod hash;
pub mod maglev;
pub mod parse;
pub mod pipeline;
pub mod regmap;
pub mod rewrite;
pub mod tables;
pub mod verdict;

pub use pipeline::{process, Engine};
pub use tables::Tables;
pub use verdict::{DropReason, Verdict};
