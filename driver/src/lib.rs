//! # flowgate-driver: the control plane
//!
//! The data path in `flowgate-core` runs from programmed state, [`flowgate_core::Tables`];
//! this crate is where that state comes from. An operator writes a TOML config
//! ([`config`]); it is validated with errors that point at the line, then compiled
//! ([`compile()`]) into the tables that the software engine uses directly and that the
//! register writes describe to hardware. A rejected config never reaches an engine, so the
//! running state stays as it was.
//!
//! The tables reach a data path through its register block ([`bus`]): [`program()`]
//! writes them into the shadow copy and commits once, through any [`RegisterBus`] — the
//! software model [`SoftBus`] that the software engine runs from, a PCIe BAR or a file
//! ([`MmapBus`]), or an RTL simulation.
//!
//! While flowgate runs, [`control::ControlPlane`] owns that state and publishes every
//! change to the data path (through `flowgate_host::handoff`); `health` probes the
//! backends and flips their `up` bits through it, and `admin` is the HTTP API (status,
//! drain, weight, reload, Prometheus metrics) that operators and `flowgate ctl` use.
//! `daemon` runs all of that beside any data path (`flowgate_host::DataPath`: a pcap
//! input or DPDK ports), and [`replay`] drives any engine (`flowgate_host::Engine`)
//! through a trace with control events at frame times.
//!
//! Feature `service` (default) holds what needs an async runtime or HTTP: `health`,
//! `admin` and `daemon`. Without it, the crate is what a bare data path needs (config,
//! compile, control plane) and pulls in neither tokio nor axum.

#[cfg(feature = "service")]
pub mod admin;
#[cfg(feature = "service")]
pub mod announce;
pub mod bus;
pub mod compile;
pub mod config;
pub mod control;
#[cfg(feature = "service")]
pub mod daemon;
#[cfg(feature = "service")]
pub mod etcd;
pub mod events;
#[cfg(feature = "service")]
pub mod health;
pub mod mmap;
pub mod program;
pub mod replay;
pub mod softbus;

pub use bus::{BusExt, RegisterBus};
pub use compile::compile;
pub use config::{load, parse_str, Config, ConfigError};
pub use control::{BackendKey, ConfigRevisions, ControlError, ControlPlane, TablesWatch};
pub use mmap::{read_layout, reset_image, MmapBus, MmapError};
pub use program::{
    commit, probe, program, read_counters, read_shadow, set_backend_up, set_enabled, stage,
    DecodeError, DeviceInfo, ProgramError,
};
pub use softbus::{SoftBus, SoftBusError};
