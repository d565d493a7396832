//! Differential fuzzing of the hardware against the contract (`flowgate-hw-fuzz`,
//! `scripts/hw-fuzz`): seeds become cases ([`gen`]: a config within the hardware profile,
//! a random frame stream, random control events), each case runs through the software
//! engine and through the Verilator build of the top ([`run`]), every output frame and
//! every counter is compared, and a case that differs is shrunk ([`shrink`]) and written
//! as a regression case ([`case`]: `config.toml`, `events.toml`, `reload-N.toml`,
//! `trace.pcap`) under `sim/tests/hw-regressions/`, which `sim/tests/hw_regressions.rs`
//! replays through both.
//!
//! Each case gets a fresh Verilator process of the cached build: the design has no
//! register that empties its flow table, and a case must start from an empty one as the
//! model does. Starting the process and programming the tables through AXI4-Lite costs
//! a few tens of milliseconds, small beside a case's frames.

pub mod case;
pub mod gen;
pub mod run;
pub mod shrink;

pub use case::{Case, CaseMeta, StreamSpec};
pub use gen::{generate, Sizes};
pub use run::{check, check_dir, compare, EngineFactory, Verdict};
pub use shrink::{shrink, Shrunk};

use crate::hw::{HwEngine, Simulator};
use flowgate_host::engine::{Engine, EngineError};

/// The engine factory for `design` under `simulator` (one fresh process per case).
pub fn hardware(
    simulator: Simulator,
    design: flowgate_hdl::Design,
) -> impl FnMut(
    std::sync::Arc<flowgate_core::Tables>,
    Option<crate::hw::Backpressure>,
) -> Result<Box<dyn Engine>, EngineError> {
    move |tables, backpressure| {
        let mut engine =
            HwEngine::open(simulator, design, tables).map_err(|e| Box::new(e) as EngineError)?;
        engine.set_backpressure(backpressure);
        Ok(Box::new(engine))
    }
}

/// The hardware profile of a top design (its config geometry and slots).
pub fn profile_of(
    design: flowgate_hdl::Design,
) -> Option<&'static flowgate_hdl::profile::HwProfile> {
    let name = design.name();
    flowgate_hdl::profile::PROFILES
        .iter()
        .copied()
        .find(|p| p.design == name)
}
