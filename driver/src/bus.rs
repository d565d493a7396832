//! The register bus: 32-bit reads and writes into flowgate's register block, and the
//! protocol on top of them that `docs/REGISTERS.md` describes (indexed windows, shadow and
//! commit).
//!
//! [`RegisterBus`] is the one thing a backend implements: the software model
//! ([`crate::SoftBus`]), a mapped file or PCIe BAR ([`crate::MmapBus`]), or an RTL
//! simulation. Everything else ([`BusExt`]) is written once against it, with every offset
//! taken from `flowgate_core::regmap` — the [`regs`] constants are looked up there by
//! name at compile time, so a renamed or missing register is a build error rather than a
//! stale hand-copied number.

use flowgate_core::regmap::{self, Register, Window, CMD_READ, CMD_WRITE, KEY_WORDS};

/// 32-bit access to a flowgate register block. Offsets are bytes from the start of the
/// block. A backend never panics on a bad offset: a misaligned offset or one past the
/// block reads all ones (as a PCIe read that nobody answers) and its writes are dropped.
pub trait RegisterBus {
    fn read32(&mut self, offset: u32) -> u32;
    fn write32(&mut self, offset: u32, value: u32);
}

impl<B: RegisterBus + ?Sized> RegisterBus for &mut B {
    fn read32(&mut self, offset: u32) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        (**self).write32(offset, value)
    }
}

/// Polls of `STATUS` / `COMMIT_GENERATION` that [`BusExt::commit`] makes before it gives
/// up. A commit swaps between two frames, so hardware finishes within microseconds; one
/// poll is one bus read (~1 µs over PCIe), so this bounds a stuck device to ~0.1 s.
pub const COMMIT_POLLS: u32 = 100_000;

/// The registers the driver uses, looked up in [`regmap::REGISTERS`] by name when the
/// crate is compiled.
pub mod regs {
    use super::*;

    /// The register called `name`; evaluated in constants only, so a name that is not in
    /// the map stops the build.
    const fn by_name(name: &str) -> Register {
        let mut i = 0;
        while i < regmap::REGISTERS.len() {
            if str_eq(regmap::REGISTERS[i].name, name) {
                return regmap::REGISTERS[i];
            }
            i += 1;
        }
        panic!("no register of that name in regmap::REGISTERS")
    }

    /// The `KEY_WORDS` registers of a hash key, from its word 0 on; each must be the
    /// register at the next word's offset.
    const fn key(first: &str) -> [Register; KEY_WORDS] {
        let first = by_name(first);
        let mut out = [first; KEY_WORDS];
        let mut w = 1;
        while w < KEY_WORDS {
            out[w] = by_offset(first.offset + 4 * w as u32);
            w += 1;
        }
        out
    }

    const fn by_offset(offset: u32) -> Register {
        let mut i = 0;
        while i < regmap::REGISTERS.len() {
            if regmap::REGISTERS[i].offset == offset {
                return regmap::REGISTERS[i];
            }
            i += 1;
        }
        panic!("no register at that offset in regmap::REGISTERS")
    }

    const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    pub const BLOCK_TYPE: Register = by_name("BLOCK_TYPE");
    pub const BLOCK_VERSION: Register = by_name("BLOCK_VERSION");
    pub const ENABLE: Register = by_name("ENABLE");
    pub const COMMIT: Register = by_name("COMMIT");
    pub const COMMIT_GENERATION: Register = by_name("COMMIT_GENERATION");
    pub const STATUS: Register = by_name("STATUS");
    pub const ERROR: Register = by_name("ERROR");
    pub const FLOW_SETS_LOG2: Register = by_name("FLOW_SETS_LOG2");
    pub const FLOW_WAYS: Register = by_name("FLOW_WAYS");
    pub const MAGLEV_M: Register = by_name("MAGLEV_M");
    pub const VIP_CAPACITY: Register = by_name("VIP_CAPACITY");
    pub const BACKEND_CAPACITY: Register = by_name("BACKEND_CAPACITY");
    pub const OWN_MAC_HI: Register = by_name("OWN_MAC_HI");
    pub const OWN_MAC_LO: Register = by_name("OWN_MAC_LO");
    pub const ENCAP_V4_PREFIX: Register = by_name("ENCAP_V4_PREFIX");
    pub const ENCAP_V4_LEN: Register = by_name("ENCAP_V4_LEN");
    pub const ENCAP_V6_PREFIX: [Register; 4] = [
        by_name("ENCAP_V6_PREFIX_0"),
        by_name("ENCAP_V6_PREFIX_1"),
        by_name("ENCAP_V6_PREFIX_2"),
        by_name("ENCAP_V6_PREFIX_3"),
    ];
    pub const ENCAP_V6_LEN: Register = by_name("ENCAP_V6_LEN");
    pub const TIMEOUT_TCP_MS: Register = by_name("TIMEOUT_TCP_MS");
    pub const TIMEOUT_TCP_EMBRYONIC_MS: Register = by_name("TIMEOUT_TCP_EMBRYONIC_MS");
    pub const TIMEOUT_UDP_MS: Register = by_name("TIMEOUT_UDP_MS");
    pub const FLOW_CHOICES: Register = by_name("FLOW_CHOICES");
    pub const UP_SET: Register = by_name("UP_SET");
    pub const UP_CLEAR: Register = by_name("UP_CLEAR");
    pub const SCRATCH: Register = by_name("SCRATCH");
    pub const RSS_KEY: [Register; KEY_WORDS] = key("RSS_KEY_0");
    pub const DIGEST_HI_KEY: [Register; KEY_WORDS] = key("DIGEST_HI_KEY_0");
    pub const DIGEST_LO_KEY: [Register; KEY_WORDS] = key("DIGEST_LO_KEY_0");
}

/// The bus timed out waiting for a commit: `COMMIT_GENERATION` did not move (or
/// `STATUS.commit_busy` stayed set) within `polls` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("commit did not complete within {polls} polls of STATUS")]
pub struct CommitTimeout {
    pub polls: u32,
}

/// The register protocol, for every [`RegisterBus`] (including `dyn RegisterBus`).
pub trait BusExt: RegisterBus {
    /// `reg`'s value, with the bits past its width cleared.
    fn read_reg(&mut self, reg: &Register) -> u32 {
        self.read32(reg.offset) & reg.mask()
    }

    /// Write `value` to `reg`; bits past its width are dropped, as the device drops them.
    fn write_reg(&mut self, reg: &Register, value: u32) {
        self.write32(reg.offset, value & reg.mask())
    }

    /// Store one entry of an indexed window: `INDEX`, the data words, then `CMD` = WRITE.
    fn write_entry(&mut self, window: &Window, index: u32, data: &[u32]) {
        self.write32(window.index_reg(), index);
        self.write_next_entry(window, data);
    }

    /// Store `data` into the entry `INDEX` now selects (the one after the last command).
    fn write_next_entry(&mut self, window: &Window, data: &[u32]) {
        for (k, &word) in (0..window.data_words).zip(data) {
            self.write32(window.data_reg(k), word);
        }
        self.write32(window.cmd_reg(), CMD_WRITE);
    }

    /// Load one entry of an indexed window into `data`: `INDEX`, `CMD` = READ, then the
    /// data words.
    fn read_entry(&mut self, window: &Window, index: u32, data: &mut [u32]) {
        self.write32(window.index_reg(), index);
        self.read_next_entry(window, data);
    }

    /// Load the entry `INDEX` now selects into `data`.
    fn read_next_entry(&mut self, window: &Window, data: &mut [u32]) {
        self.write32(window.cmd_reg(), CMD_READ);
        for (k, word) in (0..window.data_words).zip(data.iter_mut()) {
            *word = self.read32(window.data_reg(k));
        }
    }

    /// Make the shadow copy active and wait until it is: write `COMMIT`, then poll until
    /// `COMMIT_GENERATION` has moved and `STATUS.commit_busy` is clear. Waiting on the
    /// generation (not only on busy) matters because the `COMMIT` write may still be in
    /// flight when the first poll reads a busy bit that was never set. Returns the new
    /// generation.
    fn commit(&mut self, polls: u32) -> Result<u32, CommitTimeout> {
        let before = self.read_reg(&regs::COMMIT_GENERATION);
        self.write_reg(&regs::COMMIT, 1);
        for _ in 0..polls {
            let busy = regmap::STATUS_COMMIT_BUSY.get(&[self.read_reg(&regs::STATUS)]) != 0;
            let generation = self.read_reg(&regs::COMMIT_GENERATION);
            if !busy && generation != before {
                return Ok(generation);
            }
        }
        Err(CommitTimeout { polls })
    }

    /// Wait (bounded) until no commit is in progress, so that shadow writes are taken.
    fn wait_not_busy(&mut self, polls: u32) -> Result<(), CommitTimeout> {
        for _ in 0..polls {
            if regmap::STATUS_COMMIT_BUSY.get(&[self.read_reg(&regs::STATUS)]) == 0 {
                return Ok(());
            }
        }
        Err(CommitTimeout { polls })
    }

    /// Read the sticky `ERROR` bits and clear the ones that were set.
    fn take_errors(&mut self) -> u32 {
        let bits = self.read_reg(&regs::ERROR);
        if bits != 0 {
            self.write_reg(&regs::ERROR, bits);
        }
        bits
    }
}

impl<B: RegisterBus + ?Sized> BusExt for B {}

/// The names of the `ERROR` bits set in `bits`, for messages.
pub fn error_names(bits: u32) -> Vec<&'static str> {
    regs::ERROR
        .fields
        .iter()
        .filter(|f| f.get(&[bits]) != 0)
        .map(|f| f.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_registers_are_the_map_entries_of_that_name() {
        for (reg, name) in [
            (regs::COMMIT, "COMMIT"),
            (regs::MAGLEV_M, "MAGLEV_M"),
            (regs::UP_CLEAR, "UP_CLEAR"),
        ] {
            assert_eq!(Some(&reg), regmap::register(name));
        }
        // Key words follow the key's word 0 in order, named as the map names them.
        for (w, reg) in regs::DIGEST_LO_KEY.iter().enumerate() {
            assert_eq!(reg.name, format!("DIGEST_LO_KEY_{w}"));
        }
        assert_eq!(regs::RSS_KEY[12].offset, regmap::RSS_KEY_BASE + 48);
    }

    #[test]
    fn error_bits_are_named_from_the_map() {
        assert_eq!(error_names(0), Vec::<&str>::new());
        assert_eq!(
            error_names(0b101),
            ["index_out_of_range", "bad_command"].to_vec()
        );
    }
}
