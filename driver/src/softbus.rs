//! [`SoftBus`]: the device's register file as an in-memory model, behaving as
//! `docs/REGISTERS.md` describes, so that the same [`crate::program()`] that drives
//! hardware drives the software engine: the engine runs from [`SoftBus::active_tables`].
//!
//! Modelled: every register of [`regmap::REGISTERS`] by its access type and width
//! (RO, RW, WO, W1C, STROBE; bits past the width read 0), shadowed registers and tables
//! with two copies, `COMMIT` copying the shadow to the active copy (the shadow keeps its
//! contents) with `COMMIT_GENERATION` and `STATUS.commit_busy` (the busy time is
//! adjustable, see [`SoftBus::with_commit_latency`]), shadowed writes refused while
//! busy, the indexed windows (`INDEX`, `CMD` WRITE/READ, `DATA`, `INDEX` + 1 after each
//! command, range checks), `ERROR` with its three causes, `UP_BITMAP` / `UP_SET` /
//! `UP_CLEAR` acting at once, and the COUNTER window over a [`Counters`] you supply.
//! Not modelled: the FLOW window reads back empty ways (the model has no flow table).

use crate::bus::{regs, RegisterBus};
use crate::program::{DecodeError, DeviceInfo, Image};
use flowgate_core::counters::Counters;
use flowgate_core::flow_table::Geometry;
use flowgate_core::regmap::{
    self, Access, Counter, Window, WindowKind, BACKEND_WINDOW, COUNTER_WINDOW, FLOW_WINDOW,
    MAGLEV_WINDOW, VIP_WINDOW,
};
use flowgate_core::Tables;
use std::collections::BTreeMap;
use thiserror::Error;

/// A build the register map cannot describe.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SoftBusError {
    #[error("MAGLEV_M {0} does not fit the 17-bit slot part of the Maglev INDEX")]
    MaglevM(u32),
    #[error("{0} VIPs do not fit the VIP part of the Maglev INDEX")]
    VipCapacity(u32),
    #[error("{0} backends: backend indices are 16 bits and 65535 means none")]
    BackendCapacity(u32),
    #[error("flow table {}×{}: sets must be a power of two below 2^24, ways 1..=255", .0.sets, .0.ways)]
    Geometry(Geometry),
}

/// One copy (shadow or active) of the shadowed state.
#[derive(Debug, Clone)]
struct Copy {
    registers: BTreeMap<u32, u32>,
    vips: Vec<[u32; regmap::VIP_WORDS]>,
    backends: Vec<[u32; 7]>,
    /// `vip_capacity × maglev_m` slots, VIP-major.
    maglev: Vec<u32>,
}

/// The `INDEX` and `DATA` latches of one indexed window.
#[derive(Debug, Clone, Default)]
struct Port {
    index: u32,
    data: [u32; 8],
}

/// The software model of a flowgate register block. See the module doc.
#[derive(Debug, Clone)]
pub struct SoftBus {
    device: DeviceInfo,
    shadow: Copy,
    active: Copy,
    /// Non-shadowed RW registers (ENABLE, SCRATCH) by offset.
    plain: BTreeMap<u32, u32>,
    error: u32,
    generation: u32,
    /// STATUS reads left before a pending commit completes; 0 = not busy.
    busy: u32,
    commit_latency: u32,
    up: Vec<u32>,
    /// Latches of each window of [`regmap::WINDOWS`], by position.
    ports: Vec<Port>,
    counters: Counters,
}

impl SoftBus {
    /// A device of `device`'s build, in its reset state: registers at their reset values,
    /// every table entry zero (no valid VIP), every backend down, counters zero. Commits
    /// complete at once (see [`SoftBus::with_commit_latency`]).
    pub fn new(device: DeviceInfo) -> Result<SoftBus, SoftBusError> {
        if device.maglev_m == 0 || device.maglev_m >= 1 << regmap::MAGLEV_SLOT_BITS {
            return Err(SoftBusError::MaglevM(device.maglev_m));
        }
        if device.vip_capacity > 1 << regmap::MAGLEV_INDEX_VIP.width {
            return Err(SoftBusError::VipCapacity(device.vip_capacity));
        }
        if device.backend_capacity > u16::MAX as u32 {
            return Err(SoftBusError::BackendCapacity(device.backend_capacity));
        }
        let g = device.geometry;
        if !g.sets.is_power_of_two() || g.sets >= 1 << 24 || !(1..=255).contains(&g.ways) {
            return Err(SoftBusError::Geometry(g));
        }
        let registers = regmap::REGISTERS
            .iter()
            .filter(|r| r.shadowed)
            .map(|r| (r.offset, r.reset))
            .collect();
        let copy = Copy {
            registers,
            vips: vec![[0; regmap::VIP_WORDS]; device.vip_capacity as usize],
            backends: vec![[0; 7]; device.backend_capacity as usize],
            maglev: vec![0; device.vip_capacity as usize * device.maglev_m as usize],
        };
        let plain = regmap::REGISTERS
            .iter()
            .filter(|r| !r.shadowed && r.access == Access::Rw)
            .map(|r| (r.offset, r.reset))
            .collect();
        Ok(SoftBus {
            device,
            shadow: copy.clone(),
            active: copy,
            plain,
            error: 0,
            generation: 0,
            busy: 0,
            commit_latency: 0,
            up: vec![0; (device.backend_capacity as usize).div_ceil(32)],
            ports: vec![Port::default(); regmap::WINDOWS.len()],
            counters: Counters::new(0, 0),
        })
    }

    /// After a `COMMIT` write, `STATUS.commit_busy` reads 1 on the next `reads` reads of
    /// `STATUS` and the swap happens at the last of them (0: at once). `u32::MAX`: a
    /// device whose commit never completes.
    pub fn with_commit_latency(mut self, reads: u32) -> SoftBus {
        self.commit_latency = reads;
        self
    }

    pub fn device(&self) -> DeviceInfo {
        self.device
    }

    /// The counters the COUNTER window reads from. Counters of VIPs or backends that
    /// `counters` does not have read 0.
    pub fn set_counters(&mut self, counters: Counters) {
        self.counters = counters;
    }

    /// The tables the data path runs from: the active copy and the up bits.
    pub fn active_tables(&self) -> Result<Tables, DecodeError> {
        self.image(&self.active).decode(&self.device)
    }

    /// The tables the next commit would make active.
    pub fn shadow_tables(&self) -> Result<Tables, DecodeError> {
        self.image(&self.shadow).decode(&self.device)
    }

    /// Commits completed since reset.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    fn image(&self, copy: &Copy) -> Image {
        let m = self.device.maglev_m as usize;
        let valid = copy
            .vips
            .iter()
            .take_while(|w| regmap::VIP_VALID.get(*w) != 0)
            .count();
        Image {
            registers: copy.registers.clone(),
            vips: copy.vips.clone(),
            backends: copy.backends.clone(),
            maglev: copy
                .maglev
                .chunks(m)
                .take(valid)
                .map(<[u32]>::to_vec)
                .collect(),
            up: self.up.clone(),
        }
    }

    fn flag(&mut self, field: regmap::Field) {
        self.error |= 1 << field.lsb;
    }

    fn swap(&mut self) {
        self.active = self.shadow.clone();
        self.generation = self.generation.wrapping_add(1);
    }

    fn read_register(&mut self, reg: &regmap::Register) -> u32 {
        let d = &self.device;
        let value = match reg.offset {
            o if reg.shadowed => self.shadow.registers[&o],
            o if o == regs::STATUS.offset => {
                if self.busy == 0 {
                    0
                } else {
                    self.busy -= 1;
                    if self.busy == 0 {
                        self.swap();
                    }
                    1 << regmap::STATUS_COMMIT_BUSY.lsb
                }
            }
            o if o == regs::ERROR.offset => self.error,
            o if o == regs::COMMIT_GENERATION.offset => self.generation,
            o if o == regs::BLOCK_VERSION.offset => d.version,
            o if o == regs::VIP_CAPACITY.offset => d.vip_capacity,
            o if o == regs::BACKEND_CAPACITY.offset => d.backend_capacity,
            o if o == regs::MAGLEV_M.offset => d.maglev_m,
            o if o == regs::FLOW_SETS_LOG2.offset => d.geometry.sets.trailing_zeros(),
            o if o == regs::FLOW_WAYS.offset => d.geometry.ways,
            o => match reg.access {
                Access::Ro => reg.reset,
                Access::Rw => self.plain[&o],
                Access::W1c | Access::Wo | Access::Strobe => 0,
            },
        };
        value & reg.mask()
    }

    fn write_register(&mut self, reg: &regmap::Register, value: u32) {
        let value = value & reg.mask();
        match reg.offset {
            o if reg.shadowed => {
                if self.busy != 0 {
                    self.flag(regmap::ERROR_WRITE_WHILE_BUSY);
                } else {
                    self.shadow.registers.insert(o, value);
                }
            }
            o if o == regs::COMMIT.offset => {
                if value & 1 == 0 {
                } else if self.busy != 0 {
                    // A second COMMIT while one is in flight would swap a shadow that
                    // software could not have written: refused like a shadow write.
                    self.flag(regmap::ERROR_WRITE_WHILE_BUSY);
                } else if self.commit_latency == 0 {
                    self.swap();
                } else {
                    self.busy = self.commit_latency;
                }
            }
            o if o == regs::ERROR.offset => self.error &= !value,
            o if o == regs::UP_SET.offset || o == regs::UP_CLEAR.offset => {
                if value >= self.device.backend_capacity {
                    self.flag(regmap::ERROR_INDEX_OUT_OF_RANGE);
                    return;
                }
                let (word, bit) = regmap::up_bit(value as u16);
                if o == regs::UP_SET.offset {
                    self.up[word as usize] |= 1 << bit;
                } else {
                    self.up[word as usize] &= !(1 << bit);
                }
            }
            o => {
                if reg.access == Access::Rw {
                    self.plain.insert(o, value);
                }
            }
        }
    }

    /// Whether `index` names an entry of `window` in this build.
    fn in_range(&self, window: &Window, index: u32) -> bool {
        let d = &self.device;
        match window.base {
            b if b == VIP_WINDOW.base => index < d.vip_capacity,
            b if b == BACKEND_WINDOW.base => index < d.backend_capacity,
            b if b == MAGLEV_WINDOW.base => {
                regmap::MAGLEV_INDEX_SLOT.get(&[index]) < d.maglev_m as u128
                    && regmap::MAGLEV_INDEX_VIP.get(&[index]) < d.vip_capacity as u128
            }
            b if b == FLOW_WINDOW.base => {
                regmap::FLOW_INDEX_WAY.get(&[index]) < d.geometry.ways as u128
                    && regmap::FLOW_INDEX_SET.get(&[index]) < d.geometry.sets as u128
            }
            b if b == COUNTER_WINDOW.base => match Counter::from_index(index) {
                Some(Counter::Vip(v, _)) => u32::from(v) < d.vip_capacity,
                Some(Counter::Backend(b, _)) => u32::from(b) < d.backend_capacity,
                Some(_) => true,
                None => false,
            },
            _ => false,
        }
    }

    fn command(&mut self, w: usize, cmd: u32) {
        let window = regmap::WINDOWS[w];
        let (write, read) = (cmd & regmap::CMD_WRITE != 0, cmd & regmap::CMD_READ != 0);
        if !write && !read {
            return;
        }
        if write && (read || window.access != Access::Rw) {
            self.flag(regmap::ERROR_BAD_COMMAND);
            return;
        }
        if write && window.shadowed && self.busy != 0 {
            self.flag(regmap::ERROR_WRITE_WHILE_BUSY);
            return;
        }
        let index = self.ports[w].index;
        if !self.in_range(&window, index) {
            self.flag(regmap::ERROR_INDEX_OUT_OF_RANGE);
            return;
        }
        let n = window.data_words as usize;
        let i = index as usize;
        let maglev_slot = |d: &DeviceInfo| {
            let vip = regmap::MAGLEV_INDEX_VIP.get(&[index]) as usize;
            let slot = regmap::MAGLEV_INDEX_SLOT.get(&[index]) as usize;
            vip * d.maglev_m as usize + slot
        };
        if write {
            let data = self.ports[w].data;
            let shadow = &mut self.shadow;
            match window.base {
                b if b == VIP_WINDOW.base => shadow.vips[i].copy_from_slice(&data[..n]),
                b if b == BACKEND_WINDOW.base => shadow.backends[i].copy_from_slice(&data[..n]),
                b if b == MAGLEV_WINDOW.base => shadow.maglev[maglev_slot(&self.device)] = data[0],
                _ => {}
            }
        } else {
            let mut data = [0u32; 8];
            match window.base {
                b if b == VIP_WINDOW.base => data[..n].copy_from_slice(&self.shadow.vips[i]),
                b if b == BACKEND_WINDOW.base => {
                    data[..n].copy_from_slice(&self.shadow.backends[i])
                }
                b if b == MAGLEV_WINDOW.base => {
                    data[0] = self.shadow.maglev[maglev_slot(&self.device)]
                }
                b if b == COUNTER_WINDOW.base => {
                    let counter = Counter::from_index(index).expect("checked by in_range");
                    let value = counter.value(&self.counters).unwrap_or(0);
                    regmap::COUNTER_VALUE.set(&mut data, value.into());
                }
                // FLOW: no flow table in the model, every way reads empty (class invalid).
                _ => {}
            }
            self.ports[w].data = data;
        }
        self.ports[w].index = index.wrapping_add(1);
    }

    /// The window (by position in [`regmap::WINDOWS`]) and word offset within it that
    /// `offset` falls in.
    fn window_at(offset: u32) -> Option<(usize, u32)> {
        regmap::WINDOWS.iter().enumerate().find_map(|(i, w)| {
            let end = match w.kind {
                WindowKind::Indexed => w.base + w.span(),
                // The bitmap may grow up to the end of the block.
                WindowKind::Array => regmap::MAP_SIZE,
            };
            (w.base..end)
                .contains(&offset)
                .then(|| (i, offset - w.base))
        })
    }
}

impl RegisterBus for SoftBus {
    fn read32(&mut self, offset: u32) -> u32 {
        if offset & 3 != 0 || offset >= regmap::MAP_SIZE {
            return u32::MAX;
        }
        if let Some(reg) = regmap::REGISTERS.iter().find(|r| r.offset == offset) {
            return self.read_register(reg);
        }
        let Some((w, rel)) = Self::window_at(offset) else {
            return 0;
        };
        let window = regmap::WINDOWS[w];
        match (window.kind, rel) {
            (WindowKind::Array, rel) => self.up.get((rel / 4) as usize).copied().unwrap_or(0),
            (WindowKind::Indexed, Window::INDEX_OFFSET) => self.ports[w].index,
            (WindowKind::Indexed, Window::CMD_OFFSET) => 0,
            (WindowKind::Indexed, rel) => {
                self.ports[w].data[((rel - Window::DATA_OFFSET) / 4) as usize]
            }
        }
    }

    fn write32(&mut self, offset: u32, value: u32) {
        if offset & 3 != 0 || offset >= regmap::MAP_SIZE {
            return;
        }
        if let Some(reg) = regmap::REGISTERS.iter().find(|r| r.offset == offset) {
            return self.write_register(reg, value);
        }
        let Some((w, rel)) = Self::window_at(offset) else {
            return;
        };
        let window = regmap::WINDOWS[w];
        match (window.kind, rel) {
            (WindowKind::Array, rel) => {
                let capacity = self.device.backend_capacity;
                let word = rel / 4;
                if let Some(slot) = self.up.get_mut(word as usize) {
                    // Bits of backends past the table read 0.
                    let bits = (capacity - 32 * word).min(32);
                    *slot = value
                        & if bits == 32 {
                            u32::MAX
                        } else {
                            (1 << bits) - 1
                        };
                }
            }
            (WindowKind::Indexed, Window::INDEX_OFFSET) => self.ports[w].index = value,
            (WindowKind::Indexed, Window::CMD_OFFSET) => self.command(w, value),
            (WindowKind::Indexed, rel) => {
                self.ports[w].data[((rel - Window::DATA_OFFSET) / 4) as usize] = value
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusExt;

    fn bus() -> SoftBus {
        SoftBus::new(DeviceInfo {
            maglev_m: 7,
            ..DeviceInfo::default()
        })
        .unwrap()
    }

    #[test]
    fn registers_reset_to_the_map_and_report_the_build() {
        let mut b = bus();
        assert_eq!(b.read_reg(&regs::BLOCK_TYPE), regmap::BLOCK_TYPE);
        assert_eq!(b.read_reg(&regs::MAGLEV_M), 7);
        assert_eq!(b.read_reg(&regs::FLOW_SETS_LOG2), 14);
        assert_eq!(b.read_reg(&regs::TIMEOUT_TCP_MS), 300_000);
        assert_eq!(b.read_reg(&regs::RSS_KEY[0]), 0x6d5a_56da);
    }

    #[test]
    fn access_types_behave_as_documented() {
        let mut b = bus();
        // RO: writes ignored.
        b.write32(regs::MAGLEV_M.offset, 3);
        assert_eq!(b.read_reg(&regs::MAGLEV_M), 7);
        // RW: bits past the width are dropped.
        b.write32(regs::ENABLE.offset, 0xffff_ffff);
        assert_eq!(b.read32(regs::ENABLE.offset), 1);
        // WO and STROBE read 0.
        b.write32(regs::UP_SET.offset, 3);
        assert_eq!(b.read32(regs::UP_SET.offset), 0);
        assert_eq!(b.read32(regs::COMMIT.offset), 0);
        // W1C: write 1 clears only that bit.
        b.write32(regs::UP_SET.offset, 5000);
        b.write32(VIP_WINDOW.cmd_reg(), 3);
        assert_eq!(b.read_reg(&regs::ERROR), 0b101);
        b.write32(regs::ERROR.offset, 0b001);
        assert_eq!(b.read_reg(&regs::ERROR), 0b100);
    }

    #[test]
    fn index_increments_after_each_command_and_reads_return_the_shadow() {
        let mut b = bus();
        b.write32(VIP_WINDOW.index_reg(), 3);
        b.write_next_entry(&VIP_WINDOW, &[1, 2, 3, 4, 5, 6]);
        b.write_next_entry(&VIP_WINDOW, &[6, 7, 8, 9, 10, 11]);
        assert_eq!(b.read32(VIP_WINDOW.index_reg()), 5);
        let mut data = [0; regmap::VIP_WORDS];
        b.read_entry(&VIP_WINDOW, 4, &mut data);
        assert_eq!(data, [6, 7, 8, 9, 10, 11]);
        assert_eq!(b.read32(VIP_WINDOW.index_reg()), 5);
        // Not active until committed.
        assert_eq!(b.active.vips[4], [0; regmap::VIP_WORDS]);
        b.commit(1).unwrap();
        assert_eq!(b.active.vips[4], [6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn a_command_past_the_table_is_ignored_and_flagged() {
        let mut b = bus();
        // Slot 7 of a 7-slot table: the slot part does not carry into the VIP part.
        b.write32(
            MAGLEV_WINDOW.index_reg(),
            regmap::maglev_index(0, 7).unwrap(),
        );
        b.write_next_entry(&MAGLEV_WINDOW, &[0xabcd]);
        assert_eq!(b.take_errors(), 1 << regmap::ERROR_INDEX_OUT_OF_RANGE.lsb);
        assert!(b.shadow.maglev.iter().all(|&s| s == 0));
        // Writing a read-only window is a bad command.
        b.write_entry(&COUNTER_WINDOW, 0, &[1, 2]);
        assert_eq!(b.take_errors(), 1 << regmap::ERROR_BAD_COMMAND.lsb);
        // A sparse counter index that names nothing.
        let mut data = [0; 2];
        b.read_entry(&COUNTER_WINDOW, 0x1ff, &mut data);
        assert_eq!(b.take_errors(), 1 << regmap::ERROR_INDEX_OUT_OF_RANGE.lsb);
    }

    #[test]
    fn shadow_writes_while_a_commit_is_busy_are_refused() {
        let mut b = bus().with_commit_latency(3);
        b.write_reg(&regs::TIMEOUT_UDP_MS, 1);
        b.write_reg(&regs::COMMIT, 1);
        b.write_reg(&regs::TIMEOUT_UDP_MS, 2);
        b.write_entry(&VIP_WINDOW, 0, &[9; regmap::VIP_WORDS]);
        assert_eq!(b.take_errors(), 1 << regmap::ERROR_WRITE_WHILE_BUSY.lsb);
        assert_eq!(b.generation(), 0);
        b.wait_not_busy(10).unwrap();
        assert_eq!(b.generation(), 1);
        // The swap took the shadow as it was at the COMMIT write.
        assert_eq!(b.active.registers[&regs::TIMEOUT_UDP_MS.offset], 1);
        assert_eq!(b.shadow.registers[&regs::TIMEOUT_UDP_MS.offset], 1);
        assert_eq!(b.active.vips[0], [0; regmap::VIP_WORDS]);
    }

    #[test]
    fn a_commit_that_never_completes_times_out() {
        let mut b = bus().with_commit_latency(u32::MAX);
        assert_eq!(b.commit(50), Err(crate::bus::CommitTimeout { polls: 50 }));
    }

    #[test]
    fn unbuildable_devices_are_refused() {
        let d = DeviceInfo::default();
        let m = DeviceInfo {
            maglev_m: 1 << 17,
            ..d
        };
        assert_eq!(SoftBus::new(m).unwrap_err(), SoftBusError::MaglevM(1 << 17));
        let g = DeviceInfo {
            geometry: Geometry {
                sets: 3,
                ways: 4,
                choices: 1,
            },
            ..d
        };
        assert!(matches!(SoftBus::new(g), Err(SoftBusError::Geometry(_))));
    }
}
