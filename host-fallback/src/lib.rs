//! # flowgate-host: the software data path and the engine layer
//!
//! The engine layer every execution of the contract plugs into: the [`Engine`] trait
//! (bursts in, frames out: the software engine and the simulated hardware), the
//! [`DataPath`] trait (what a running balancer's data-path thread runs: a pcap input here,
//! DPDK ports in `flowgate-dpdk`), the [`Shard`] that both the software workers and the
//! DPDK lcores are made of, and the [`handoff`] to the control plane (tables down,
//! counters up) with no async runtime or HTTP in it.
//!
//! The software engine is the `core` contract run as a multi-core engine. Frames arrive in bursts; each burst is
//! prepared (parse, classify, hash — stateless) in parallel, then every frame for a VIP is
//! handed to the worker that owns its flow-table sets (both of a flow's candidate sets
//! have one owner: [`SetSplit`]). A worker owns its shard of the table and its own
//! counters, so nothing on the fast path is shared or locked, and since flows of different
//! owners never interact, the output is byte-identical for any worker count. Counters are summed on read.
//!
//! I/O lives at the edges: [`pcap_io`] reads and writes pcap files with the pure-Rust
//! `pcap-file` crate (no system library), and the `live-capture` feature adds libpcap
//! sources through the `pcap` crate.

pub mod datapath;
pub mod engine;
pub mod handoff;
pub mod idle;
#[cfg(feature = "live-capture")]
pub mod live;
pub mod pcap_io;
pub mod shard;
pub mod sharded;

pub use datapath::{DataPath, Finished, IoReport, PcapDataPath, PcapOptions};
pub use engine::{Engine, EngineError, Leaving, Outcome, Outputs};
pub use handoff::{BoardSnapshot, CountersBoard, TablesPublisher, TablesWatch};
pub use idle::{IdleBackoff, IdlePolicy};
pub use pcap_io::Frame;
pub use shard::{SetSplit, Shard};
pub use sharded::ShardedEngine;
