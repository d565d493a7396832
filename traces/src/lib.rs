//! # flowgate-traces: traces for every engine
//!
//! flowgate's engines — the software fallback, the RustHDL pipeline, its Verilator build,
//! the DPDK data path — must agree with the `flowgate-core` contract byte for byte, and the
//! way to show it is to feed them all the same traces. This crate makes those traces:
//! [`gen`] builds seeded, reproducible synthetic pcaps (client flows to VIPs, a SYN flood,
//! malformed frames, frames for no VIP) with the ground truth of what each frame is.
//! Traces are read and written by `flowgate_host::pcap_io`, flowgate's one pcap reader and
//! writer, re-exported here; with default features that links no system library.
//!
//! `flowgate gen-trace` is a thin CLI over [`gen::generate`] and [`write_pcap_file`]. The
//! hardware simulation engines that replay traces are `flowgate-sim`'s.

pub mod gen;

pub use flowgate_host::pcap_io::{
    read_pcap, read_pcap_file, write_pcap, write_pcap_file, Frame, PcapError,
};
pub use gen::{generate, generate_trace, SpecError, SynFlood, Trace, TraceSpec, VipTarget};
