//! A simulated hardware design as a [`flowgate_host::Engine`]: the replay driver and the
//! pcap data path run it exactly as they run the software engine. Frames stream through
//! [`HwReplay`] (programmed through the design's registers), what leaves on `m_axis` is
//! matched back to its input, and `m_axis_tuser` tells a passed frame from a forwarded one.

use super::replay::{HwReplay, ReplayError};
use super::{open, HwError, HwSim, Simulator};
use flowgate_core::counters::Counters;
use flowgate_core::Tables;
use flowgate_host::engine::{Engine, EngineError, Leaving};
use flowgate_host::pcap_io::Frame;
use std::sync::Arc;

/// A design under simulation, programmed and ready for frames.
pub struct HwEngine {
    replay: HwReplay<Box<dyn HwSim>>,
    simulator: Simulator,
    tables: Arc<Tables>,
    /// Frames streamed so far (the index of the next burst's first frame, for errors).
    frames: usize,
}

/// Why a design could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Hw(#[from] HwError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

impl HwEngine {
    /// Start `simulator` on `design` (building it with Verilator if need be) and program
    /// `tables` into it.
    pub fn open(
        simulator: Simulator,
        design: flowgate_hdl::Design,
        tables: Arc<Tables>,
    ) -> Result<HwEngine, OpenError> {
        let sim = open(simulator, design)?;
        let replay = HwReplay::new(sim, &tables, flowgate_hdl::top::MAX_FRAME_BYTES)?;
        Ok(HwEngine {
            replay,
            simulator,
            tables,
            frames: 0,
        })
    }
}

impl HwEngine {
    /// Random `m_axis_tready` from now on ([`HwReplay::set_backpressure`]).
    pub fn set_backpressure(&mut self, backpressure: Option<super::Backpressure>) {
        self.replay.set_backpressure(backpressure);
    }
}

impl Engine for HwEngine {
    fn name(&self) -> &str {
        self.simulator.name()
    }

    fn program(&mut self, tables: Arc<Tables>) -> Result<(), EngineError> {
        self.replay.program(&tables)?;
        self.tables = tables;
        Ok(())
    }

    fn programmed(&self) -> Arc<Tables> {
        self.tables.clone()
    }

    fn process(
        &mut self,
        frames: &[Frame],
        emit: &mut dyn FnMut(usize, Leaving<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let first = self.frames;
        let emitted = self.replay.run(first, frames)?;
        self.frames += frames.len();
        for e in &emitted {
            let data = e.frame.data.as_slice();
            let leaving = if e.frame.tuser == flowgate_hdl::rewrite::TUSER_PASSED {
                Leaving::Passed(data)
            } else {
                Leaving::Forwarded(data)
            };
            emit(e.input - first, leaving)?;
        }
        Ok(())
    }

    fn counters(&mut self) -> Result<Counters, EngineError> {
        let (vips, backends) = (self.tables.vips.len(), self.tables.backends.len());
        Ok(self.replay.counters(vips as u16, backends as u16)?)
    }

    fn shards(&self) -> usize {
        1
    }

    fn report_line(&self) -> Option<String> {
        Some(format!(
            "{} frames in {} clocks of streaming",
            self.frames,
            self.replay.cycles()
        ))
    }
}
