//! # flowgate-dpdk: the contract on DPDK ports
//!
//! The software data path of `host-fallback`, with DPDK ports instead of pcap files at its
//! edges. [`eal`], [`mempool`], [`port`] and [`mbuf`] are a thin safe layer over the in-tree
//! `dpdk-sys` bindings; [`datapath`] reads bursts of mbufs, runs each frame through the
//! `core` contract (`prepare` then `balance`, as `ShardedEngine`'s workers do), writes the
//! rewritten frame back into the same mbuf and sends it. [`daemon`] is the data path of
//! `flowgate run -- <EAL args>`: it follows the control plane's tables while it runs.
//!
//! Everything needs feature `dpdk` (and DPDK 22.11's development files); without it the
//! crate is empty so that the default workspace build needs no DPDK.

#[cfg(feature = "dpdk")]
pub mod daemon;
#[cfg(feature = "dpdk")]
pub mod datapath;
#[cfg(feature = "dpdk")]
pub mod eal;
#[cfg(feature = "dpdk")]
pub mod lcore;
#[cfg(feature = "dpdk")]
pub mod mbuf;
#[cfg(feature = "dpdk")]
pub mod mempool;
#[cfg(feature = "dpdk")]
pub mod port;
#[cfg(feature = "dpdk")]
pub mod steer;

#[cfg(feature = "dpdk")]
pub use eal::{DpdkError, Eal};
#[cfg(feature = "dpdk")]
pub use mbuf::Mbuf;
#[cfg(feature = "dpdk")]
pub use mempool::Mempool;
#[cfg(feature = "dpdk")]
pub use port::{Port, PortConfig, PortStats, RssMode};
