//! The [`Engine`] trait: one interface over every execution of the contract that is fed
//! frames in bursts: the sharded software engine ([`crate::ShardedEngine`]) and the
//! hardware designs replayed in simulation (`flowgate_sim::hw::HwReplay`: rust-hdl and
//! Verilator). The replay driver (`flowgate_driver::replay`) and the pcap data path
//! ([`crate::datapath::PcapDataPath`]) are written once over it, so the CLI never
//! branches on the engine once it has built one.
//!
//! The DPDK data path owns its I/O loop (it polls ports on lcores) and is a
//! [`crate::datapath::DataPath`] instead; its lcores are made of the same
//! [`crate::shard::Shard`]s as the software engine's workers.

use crate::pcap_io::{Frame, PcapError, PcapSink};
use flowgate_core::counters::Counters;
use flowgate_core::{Tables, Verdict};
use std::sync::Arc;
use std::time::Duration;

/// Why an engine stopped: its own error (a hardware simulation's, an output file's).
pub type EngineError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What became of one input frame (the software engine's per-frame result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The rewritten frame when `verdict` is `Forward`; empty otherwise.
    pub frame: Vec<u8>,
}

/// A frame that leaves an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving<'a> {
    /// Balanced to a backend: the rewritten frame.
    Forwarded(&'a [u8]),
    /// For no VIP: the frame as the engine hands it to the host stack (untouched).
    Passed(&'a [u8]),
}

/// Where the frames that leave an engine go, with their input's timestamp: the one
/// dispatch of `Leaving` to files, for the replay driver and the pcap data path.
pub struct Outputs<'a> {
    /// Forwarded (rewritten) frames.
    pub forwarded: &'a mut PcapSink,
    /// Frames for no VIP, untouched; counted only when `None`.
    pub passed: Option<&'a mut PcapSink>,
}

impl Outputs<'_> {
    /// Write `frame` where it belongs.
    pub fn write(&mut self, ts: Duration, frame: Leaving<'_>) -> Result<(), PcapError> {
        match frame {
            Leaving::Forwarded(data) => self.forwarded.write(ts, data),
            Leaving::Passed(data) => match self.passed.as_mut() {
                Some(p) => p.write(ts, data),
                None => Ok(()),
            },
        }
    }
}

/// An execution of the contract fed with bursts of frames.
///
/// Contract for implementors: for the same tables and the same frames, every engine emits
/// the same frames with the same bytes, in input order, and counts the same counters as
/// `flowgate_core`'s sequential oracle, whatever the burst sizes.
pub trait Engine {
    /// The engine's name in messages: `model`, `rtl`, `verilator`.
    fn name(&self) -> &str;

    /// Take new tables between bursts (the control plane's atomic swap). Flow tables are
    /// kept, so established flows stay on their backends; the flow-table geometry and the
    /// VIP and backend indices of existing entries must mean the same in `tables`.
    fn program(&mut self, tables: Arc<Tables>) -> Result<(), EngineError>;

    /// The tables programmed last.
    fn programmed(&self) -> Arc<Tables>;

    /// Run one burst. `emit(i, frame)` is called for every frame that leaves (`i`: its
    /// index in `frames`), in input order; dropped frames emit nothing. An error from
    /// `emit` stops the burst and is returned.
    fn process(
        &mut self,
        frames: &[Frame],
        emit: &mut dyn FnMut(usize, Leaving<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError>;

    /// Every counter so far (all shards summed; read from the design's registers for
    /// hardware).
    fn counters(&mut self) -> Result<Counters, EngineError>;

    /// Flow-table shards: worker threads for software, 1 for a hardware design.
    fn shards(&self) -> usize;

    /// One line about the run so far for the log (e.g. a simulation's clocks), if any.
    fn report_line(&self) -> Option<String> {
        None
    }
}
