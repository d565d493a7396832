//! [`MmapBus`]: the register block through a memory mapping — a PCIe BAR
//! (`/sys/bus/pci/devices/<bdf>/resource0`) on a host with the card, or a plain file of
//! [`regmap::MAP_SIZE`] bytes standing in for it in tests.
//!
//! A plain file is only memory: nothing executes a window command, a `COMMIT` or an
//! `UP_SET` written to it, and read-only registers read whatever the file holds. So on a
//! file, [`crate::program()`] cannot be checked end to end (use [`crate::SoftBus`] for
//! that); what a file does check is the layout: every write lands at the offset
//! `docs/REGISTERS.md` names, little-endian as on PCIe, and [`read_layout`] reads every
//! plain register back. [`reset_image`] makes a file that reads like a device fresh out
//! of reset, so [`crate::probe`] accepts it.

use crate::bus::RegisterBus;
use flowgate_core::regmap::{self, Register, MAP_SIZE};
use memmap2::{MmapMut, MmapOptions};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MmapError {
    #[error("{}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{}: {len} bytes, shorter than the register block ({MAP_SIZE:#x} bytes)", path.display())]
    TooShort { path: PathBuf, len: u64 },
    #[error("{}: cannot map: {source}", path.display())]
    Map { path: PathBuf, source: io::Error },
    #[error("{0:?} is not a PCI address (domain:bus:device.function, e.g. 0000:01:00.0)")]
    BadPciAddress(String),
}

/// A mapped register block. Accesses are single volatile 32-bit loads and stores, as the
/// device's AXI4-Lite interface needs them (no merging, no tearing into bytes).
#[derive(Debug)]
pub struct MmapBus {
    map: MmapMut,
}

impl MmapBus {
    /// Map the first [`MAP_SIZE`] bytes of `path` read/write and shared, so stores reach
    /// the device (or the file).
    pub fn open(path: impl AsRef<Path>) -> Result<MmapBus, MmapError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| MmapError::Open {
                path: path.into(),
                source,
            })?;
        let len = file
            .metadata()
            .map_err(|source| MmapError::Open {
                path: path.into(),
                source,
            })?
            .len();
        if len < u64::from(MAP_SIZE) {
            return Err(MmapError::TooShort {
                path: path.into(),
                len,
            });
        }
        // SAFETY: the mapping is only ever accessed through volatile 32-bit loads and
        // stores of in-bounds, aligned offsets (see `word`), never as Rust references to
        // its contents, so another process (or the device) changing it under us cannot
        // break aliasing rules; the length was checked against the file above.
        let map = unsafe { MmapOptions::new().len(MAP_SIZE as usize).map_mut(&file) }.map_err(
            |source| MmapError::Map {
                path: path.into(),
                source,
            },
        )?;
        Ok(MmapBus { map })
    }

    /// Map BAR 0 of the PCI function `bdf` (e.g. `0000:01:00.0`) through sysfs. Needs
    /// root, and the device bound to no driver that owns the BAR.
    pub fn open_pci(bdf: &str) -> Result<MmapBus, MmapError> {
        // Checked so that the address cannot name another sysfs path.
        let ok = bdf.len() == 12
            && bdf.bytes().enumerate().all(|(i, c)| match i {
                4 | 7 => c == b':',
                10 => c == b'.',
                _ => c.is_ascii_hexdigit(),
            });
        if !ok {
            return Err(MmapError::BadPciAddress(bdf.into()));
        }
        Self::open(format!("/sys/bus/pci/devices/{bdf}/resource0"))
    }

    /// Create (or overwrite) `path` as [`reset_image`] and map it.
    pub fn create_image(path: impl AsRef<Path>) -> Result<MmapBus, MmapError> {
        let path = path.as_ref();
        std::fs::write(path, reset_image()).map_err(|source| MmapError::Open {
            path: path.into(),
            source,
        })?;
        Self::open(path)
    }

    /// Write dirty pages back to the file (a no-op for a BAR, where stores go straight
    /// to the device).
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }

    /// The byte offset of the word at `offset`, if it is aligned and inside the block
    /// (then offset + 4 <= MAP_SIZE, the mapping's length; and the word is aligned, as
    /// the mapping starts on a page boundary).
    fn word(offset: u32) -> Option<usize> {
        (offset & 3 == 0 && offset < MAP_SIZE).then_some(offset as usize)
    }
}

impl RegisterBus for MmapBus {
    /// Little-endian, as PCIe is; a misaligned or out-of-block offset reads all ones.
    fn read32(&mut self, offset: u32) -> u32 {
        match Self::word(offset) {
            // SAFETY: `word` admits only aligned, in-bounds offsets into the mapping,
            // which lives as long as `self`.
            Some(at) => {
                u32::from_le(unsafe { (self.map.as_ptr().add(at) as *const u32).read_volatile() })
            }
            None => u32::MAX,
        }
    }

    /// A misaligned or out-of-block offset is dropped.
    fn write32(&mut self, offset: u32, value: u32) {
        if let Some(at) = Self::word(offset) {
            // SAFETY: as in `read32`.
            unsafe { (self.map.as_mut_ptr().add(at) as *mut u32).write_volatile(value.to_le()) }
        }
    }
}

/// [`MAP_SIZE`] bytes holding every register at its reset value (little-endian) and zero
/// elsewhere: the block as a device leaves reset, before any table is written.
pub fn reset_image() -> Vec<u8> {
    let mut image = vec![0u8; MAP_SIZE as usize];
    for r in regmap::REGISTERS {
        let at = r.offset as usize;
        image[at..at + 4].copy_from_slice(&r.reset.to_le_bytes());
    }
    image
}

/// Every register of the map with the value a read returns now, in offset order. Only
/// reads, so it is safe on live hardware (no register has read side effects; the window
/// latches are not touched).
pub fn read_layout(bus: &mut dyn RegisterBus) -> Vec<(&'static Register, u32)> {
    regmap::REGISTERS
        .iter()
        .map(|r| (r, bus.read32(r.offset) & r.mask()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_are_checked_before_they_become_paths() {
        for bad in [
            "../../../etc/passwd",
            "0000:01:00",
            "0000:01:00.0/x",
            "zzzz:01:00.0",
        ] {
            assert!(matches!(
                MmapBus::open_pci(bad),
                Err(MmapError::BadPciAddress(_))
            ));
        }
        // A well-formed address that names no device is an open error, not a panic.
        assert!(matches!(
            MmapBus::open_pci("ffff:ff:1f.7"),
            Err(MmapError::Open { .. })
        ));
    }

    #[test]
    fn out_of_block_accesses_neither_panic_nor_land() {
        let dir = tempfile::tempdir().unwrap();
        let mut bus = MmapBus::create_image(dir.path().join("bar")).unwrap();
        bus.write32(MAP_SIZE, 1);
        bus.write32(2, 0xdead_beef);
        assert_eq!(bus.read32(MAP_SIZE), u32::MAX);
        assert_eq!(bus.read32(u32::MAX - 3), u32::MAX);
        assert_eq!(bus.read32(2), u32::MAX);
        bus.flush().unwrap();
        let bytes = std::fs::read(dir.path().join("bar")).unwrap();
        assert_eq!(bytes, reset_image());
    }
}
