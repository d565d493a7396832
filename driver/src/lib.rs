//! # flowgate-driver: the control plane
//!
//! The data path in `flowgate-core` runs from programmed state, [`flowgate_core::Tables`];
//! this crate is where that state comes from. An operator writes a TOML config
//! ([`config`]); it is validated with errors that point at the line, then compiled
//! ([`compile()`]) into the tables that the software engine uses directly and that the
//! register writes describe to hardware. A rejected config never reaches an engine, so the
//! running state stays as it was.

pub mod compile;
pub mod config;

pub use compile::compile;
pub use config::{load, parse_str, Config, ConfigError};
