//! # dpdk-sys: raw bindings to the system DPDK
//!
//! The published `dpdk-sys` crate (0.1.5, 2017) builds its own bundled DPDK of that era and
//! does not bind Debian's DPDK 22.11, so flowgate keeps this in-tree crate: bindgen over
//! `wrapper.h` (EAL, ethdev, mbuf, mempool, lcore) against `pkg-config libdpdk`, and
//! `shim.c` for the calls DPDK only offers as static-inline functions or macros
//! (`rte_eth_rx_burst`, `rte_pktmbuf_*`, `rte_lcore_id`, ...), all named `fg_*`.
//!
//! Everything here exists only with feature `dpdk`; without it the crate is empty and its
//! build script does nothing, so the default workspace build needs no DPDK. The safe layer
//! is `flowgate-dpdk`.

#[cfg(feature = "dpdk")]
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(feature = "dpdk")]
pub use bindings::*;
