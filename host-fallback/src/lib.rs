//! # flowgate-host: the software data path
//!
//! The `core` contract run as a multi-core engine. Frames arrive in bursts; each burst is
//! prepared (parse, classify, hash — stateless) in parallel, then every frame for a VIP is
//! handed to the worker that owns its flow-table set (`set % workers`). A worker owns its
//! shard of the table and its own counters, so nothing on the fast path is shared or
//! locked, and since flow-table sets never interact, the output is byte-identical for any
//! worker count. Counters are summed on read.
//!
//! I/O lives at the edges: [`pcap_io`] reads and writes pcap files with the pure-Rust
//! `pcap-file` crate (no system library), and the `live-capture` feature adds libpcap
//! sources through the `pcap` crate.

pub mod engine;
#[cfg(feature = "live-capture")]
pub mod live;
pub mod pcap_io;

pub use engine::{Outcome, ShardedEngine};
pub use pcap_io::Frame;
