//! The driver's [`RegisterBus`] over a simulated top: every `read32` / `write32` is one
//! AXI4-Lite transaction on the design's `s_axil` port.

use super::{HwError, HwSim};
use flowgate_core::regmap::MAP_SIZE;
use flowgate_driver::bus::RegisterBus;

/// [`RegisterBus`] over an engine. The bus cannot fail, so the first engine error is kept
/// (see [`HwBus::take_error`]) and that access behaves as an unanswered PCIe access:
/// reads give all ones, writes are lost. Offsets the block does not decode (misaligned,
/// or past `regmap::MAP_SIZE`) get the same treatment without reaching the design, as
/// the `RegisterBus` contract asks.
pub struct HwBus<E: HwSim> {
    engine: E,
    error: Option<HwError>,
}

impl<E: HwSim> HwBus<E> {
    pub fn new(engine: E) -> HwBus<E> {
        HwBus {
            engine,
            error: None,
        }
    }

    /// The first engine error since the last call, if any.
    pub fn take_error(&mut self) -> Option<HwError> {
        self.error.take()
    }

    pub fn engine(&mut self) -> &mut E {
        &mut self.engine
    }

    pub fn into_inner(self) -> E {
        self.engine
    }

    fn decoded(offset: u32) -> bool {
        offset & 3 == 0 && offset < MAP_SIZE
    }
}

impl<E: HwSim> RegisterBus for HwBus<E> {
    fn read32(&mut self, offset: u32) -> u32 {
        if !Self::decoded(offset) {
            return u32::MAX;
        }
        match self.engine.axil_read(offset) {
            Ok(value) => value,
            Err(e) => {
                self.error.get_or_insert(e);
                u32::MAX
            }
        }
    }

    fn write32(&mut self, offset: u32, value: u32) {
        if !Self::decoded(offset) {
            return;
        }
        if let Err(e) = self.engine.axil_write(offset, value) {
            self.error.get_or_insert(e);
        }
    }
}
