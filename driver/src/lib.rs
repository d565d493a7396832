//! # flowgate-driver: the control plane
//!
//! The data path in `flowgate-core` runs from programmed state, [`flowgate_core::Tables`];
//! this crate is where that state comes from. An operator writes a TOML config
//! ([`config`]); it is validated with errors that point at the line, then compiled
//! ([`compile()`]) into the tables that the software engine uses directly and that the
//! register writes describe to hardware. A rejected config never reaches an engine, so the
//! running state stays as it was.
//!
//! While flowgate runs, [`control::ControlPlane`] owns that state and publishes every
//! change to the data path; [`health`] probes the backends and flips their `up` bits
//! through it, and [`admin`] is the HTTP API (status, drain, weight, reload, Prometheus
//! metrics) that operators and `flowgate ctl` use.

pub mod admin;
pub mod compile;
pub mod config;
pub mod control;
pub mod health;

pub use compile::compile;
pub use config::{load, parse_str, Config, ConfigError};
pub use control::{BackendKey, ControlError, ControlPlane, TablesWatch};
