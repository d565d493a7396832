//! The register map: one table from which the hardware's CSR decoder, the driver's
//! accessors, `docs/REGISTERS.md` and the C header `docs/flowgate_regs.h` are generated.
//!
//! The map is a single self-describing register block in the style of Corundum: it opens
//! with a header (type, version, next pointer) that a driver checks before it trusts
//! anything else, so a later bitstream can chain more blocks behind it without moving
//! this one.
//!
//! Three kinds of state live here:
//!
//! * **Registers** ([`REGISTERS`]): one 32-bit word each, holding one value in its low
//!   `width` bits (or the bit fields listed in [`Register::fields`]).
//! * **Indexed windows** ([`WINDOWS`] of kind [`WindowKind::Indexed`]): tables too large to
//!   map flat (VIPs, backends, Maglev slots, the flow table, counters). Software writes
//!   `INDEX`, the `DATA` words and then `CMD`; each command moves one whole entry, so an
//!   entry is never seen half-written.
//! * **Arrays** ([`WindowKind::Array`]): the backend `up` bitmap, mapped flat because a
//!   health change must be a single register write.
//!
//! Configuration that the data path reads per frame is *shadowed*: writes land in a
//! shadow copy, and one write to `COMMIT` makes all of it active between two frames, so a
//! reprogram is atomic for the data path. The invariants the hardware decoder relies on
//! (alignment, no overlap, unique names, fields inside their registers) are unit tests at
//! the bottom of this file.

use crate::counters::{Counters, FlowCounters};
use crate::hash::Persistence;
use crate::hash::KEY_LEN;
use crate::maglev::{Slot, DEFAULT_M};
use crate::rewrite::modes::MODE_VALUES;
use crate::rewrite::Mode;
use crate::tables::{Backend, Vip};
use crate::verdict::DropReason;
use std::fmt::Write as _;
use std::net::IpAddr;

/// How software may access a register (or window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only; writes are ignored.
    Ro,
    /// Read/write; reads return the last value written (the shadow value, if shadowed).
    Rw,
    /// Write only; reads return 0.
    Wo,
    /// Read; writing 1 to a bit clears it (sticky status bits).
    W1c,
    /// Writing 1 triggers a one-shot action; reads return 0.
    Strobe,
}

impl Access {
    /// The short name used in the docs and the C header.
    pub fn name(self) -> &'static str {
        match self {
            Access::Ro => "RO",
            Access::Rw => "RW",
            Access::Wo => "WO",
            Access::W1c => "W1C",
            Access::Strobe => "STROBE",
        }
    }

    pub fn doc(self) -> &'static str {
        match self {
            Access::Ro => "read only; writes are ignored",
            Access::Rw => "read/write; a read returns the last value written",
            Access::Wo => "write only; reads return 0",
            Access::W1c => "sticky bits: read them, write 1 to a bit to clear it",
            Access::Strobe => "write 1 to trigger a one-shot action; reads return 0",
        }
    }

    pub const ALL: [Access; 5] = [
        Access::Ro,
        Access::Rw,
        Access::Wo,
        Access::W1c,
        Access::Strobe,
    ];
}

/// A bit field of a register, a window index or a window entry. In a window entry, bit
/// `n` is bit `n % 32` of data word `n / 32` (DATA0 holds bits 31..0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    /// Bit offset of the field's least significant bit.
    pub lsb: u32,
    /// Width in bits (1..=128).
    pub width: u32,
    pub doc: &'static str,
    /// Named values of an enumerated field (name, value).
    pub values: &'static [(&'static str, u32)],
}

impl Field {
    const fn new(name: &'static str, lsb: u32, width: u32, doc: &'static str) -> Field {
        Field {
            name,
            lsb,
            width,
            doc,
            values: &[],
        }
    }

    const fn with_values(self, values: &'static [(&'static str, u32)]) -> Field {
        Field { values, ..self }
    }

    /// One past the field's most significant bit.
    pub fn end(&self) -> u32 {
        self.lsb + self.width
    }

    /// `width` ones, unshifted.
    pub fn mask(&self) -> u128 {
        if self.width >= 128 {
            u128::MAX
        } else {
            (1u128 << self.width) - 1
        }
    }

    /// The data word holding the field, if the field lies within one word.
    pub fn word(&self) -> Option<u32> {
        (self.width > 0 && self.lsb / 32 == (self.end() - 1) / 32).then_some(self.lsb / 32)
    }

    /// The field's value in `words`; words missing from the slice read as 0.
    pub fn get(&self, words: &[u32]) -> u128 {
        let mut value = 0u128;
        for i in 0..self.width.min(128) {
            let bit = self.lsb + i;
            let word = words.get((bit / 32) as usize).copied().unwrap_or(0);
            value |= (((word >> (bit % 32)) & 1) as u128) << i;
        }
        value
    }

    /// Store `value` (truncated to `width` bits) into `words`; bits that fall past the
    /// slice are dropped.
    pub fn set(&self, words: &mut [u32], value: u128) {
        for i in 0..self.width.min(128) {
            let bit = self.lsb + i;
            if let Some(word) = words.get_mut((bit / 32) as usize) {
                let b = 1u32 << (bit % 32);
                if (value >> i) & 1 == 1 {
                    *word |= b;
                } else {
                    *word &= !b;
                }
            }
        }
    }

    /// The value named `name` of an enumerated field.
    pub fn value(&self, name: &str) -> Option<u32> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}

/// One 32-bit register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    pub name: &'static str,
    /// Byte offset from the start of the block (4-byte aligned).
    pub offset: u32,
    /// Bits used, from bit 0 (≤ 32); the rest read as 0.
    pub width: u32,
    pub access: Access,
    pub reset: u32,
    /// Takes effect at the next `COMMIT` (writes go to the shadow copy).
    pub shadowed: bool,
    /// Bit fields; empty when the register holds one value in its low `width` bits.
    pub fields: &'static [Field],
    pub doc: &'static str,
}

impl Register {
    const fn new(
        name: &'static str,
        offset: u32,
        width: u32,
        access: Access,
        reset: u32,
        doc: &'static str,
    ) -> Register {
        Register {
            name,
            offset,
            width,
            access,
            reset,
            shadowed: false,
            fields: &[],
            doc,
        }
    }

    const fn shadowed(self) -> Register {
        Register {
            shadowed: true,
            ..self
        }
    }

    const fn with_fields(self, fields: &'static [Field]) -> Register {
        Register { fields, ..self }
    }

    /// The bits a register can hold.
    pub fn mask(&self) -> u32 {
        if self.width >= 32 {
            u32::MAX
        } else {
            (1u32 << self.width) - 1
        }
    }
}

/// How a window's entries are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Through `INDEX` (base + 0x0), `CMD` (base + 0x4) and `DATA0..` (base + 0x8 + 4k).
    Indexed,
    /// Mapped flat: entry `i` is the 32-bit word at base + 4i.
    Array,
}

/// A table reached through the register space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub name: &'static str,
    pub base: u32,
    pub kind: WindowKind,
    /// `Rw` tables are written by software; `Ro` ones are only read back.
    pub access: Access,
    /// Writes go to the shadow copy and take effect at the next `COMMIT`.
    pub shadowed: bool,
    /// Layout of the `INDEX` register (indexed windows only).
    pub index: &'static [Field],
    /// 32-bit data words per entry.
    pub data_words: u32,
    /// Layout of one entry across the data words.
    pub fields: &'static [Field],
    /// Entries (for arrays: words) in the default build; a bitstream may be built with
    /// another value, which the geometry registers report.
    pub entries: u32,
    pub doc: &'static str,
}

/// `CMD` bit: write the `DATA` words into the entry `INDEX` selects, then increment
/// `INDEX`.
pub const CMD_WRITE: u32 = 1 << 0;
/// `CMD` bit: load the entry `INDEX` selects into the `DATA` words, then increment
/// `INDEX`.
pub const CMD_READ: u32 = 1 << 1;

impl Window {
    /// Offset of `INDEX` relative to the window base.
    pub const INDEX_OFFSET: u32 = 0x0;
    /// Offset of `CMD` relative to the window base.
    pub const CMD_OFFSET: u32 = 0x4;
    /// Offset of `DATA0` relative to the window base.
    pub const DATA_OFFSET: u32 = 0x8;

    /// Absolute offset of the `INDEX` register.
    pub fn index_reg(&self) -> u32 {
        self.base + Self::INDEX_OFFSET
    }

    /// Absolute offset of the `CMD` register.
    pub fn cmd_reg(&self) -> u32 {
        self.base + Self::CMD_OFFSET
    }

    /// Absolute offset of data word `k` (for arrays: of entry `k`).
    pub fn data_reg(&self, k: u32) -> u32 {
        match self.kind {
            WindowKind::Indexed => self.base + Self::DATA_OFFSET + 4 * k,
            WindowKind::Array => self.base + 4 * k,
        }
    }

    /// Bytes of register space the window occupies in the default build.
    pub fn span(&self) -> u32 {
        match self.kind {
            WindowKind::Indexed => Self::DATA_OFFSET + 4 * self.data_words,
            WindowKind::Array => 4 * self.entries,
        }
    }

    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// `BLOCK_TYPE`: "FLGT" in ASCII.
pub const BLOCK_TYPE: u32 = 0x464C_4754;
/// `BLOCK_VERSION`: major.minor.patch.meta, one byte each (0.2.0.0). Minor 2 added
/// `FLOW_CHOICES` (a device of minor 1 has one candidate set per flow).
pub const BLOCK_VERSION: u32 = 0x0002_0000;
/// The first `BLOCK_VERSION` minor with `FLOW_CHOICES`.
pub const FLOW_CHOICES_MINOR: u32 = 2;
/// Bytes of address space the block decodes (AXI4-Lite address width 14).
pub const MAP_SIZE: u32 = 0x4000;
/// 32-bit registers per hash key.
pub const KEY_WORDS: usize = KEY_LEN / 4;

/// VIPs in the default build.
pub const DEFAULT_VIPS: u32 = 64;
/// Backends in the default build.
pub const DEFAULT_BACKENDS: u32 = 1024;
/// log2 of the flow-table sets in the default build ([`crate::flow_table::Geometry::DEFAULT`]).
pub const DEFAULT_FLOW_SETS_LOG2: u32 = crate::flow_table::Geometry::DEFAULT.sets.trailing_zeros();
/// Flow-table ways in the default build ([`crate::flow_table::Geometry::DEFAULT`]).
pub const DEFAULT_FLOW_WAYS: u32 = crate::flow_table::Geometry::DEFAULT.ways;

// Reset values of the hash keys: the words of `HashKeys::default()` (checked by a test).
const RSS_KEY_RESET: [u32; KEY_WORDS] = [
    0x6d5a_56da,
    0x255b_0ec2,
    0x4167_253d,
    0x43a3_8fb0,
    0xd0ca_2bcb,
    0xae7b_30b4,
    0x77cb_2da3,
    0x8030_f20c,
    0x6a42_b73b,
    0xbeac_01fa,
    0x1f83_d9ab,
    0xfb41_bd6b,
    0x5be0_cd19,
];
const DIGEST_HI_KEY_RESET: [u32; KEY_WORDS] = [
    0x2cb0_f69f,
    0x4abe_a221,
    0x9417_0347,
    0x2314_8989,
    0xdd55_5950,
    0x609d_fe03,
    0xdbaf_b150,
    0xdeb1_2800,
    0x7e78_9b2e,
    0x6c44_2cb6,
    0xf41e_5636,
    0xc7e4_f8c4,
    0x0959_d150,
];
const DIGEST_LO_KEY_RESET: [u32; KEY_WORDS] = [
    0x3bb5_48a5,
    0x53e6_12ba,
    0x4069_ce2e,
    0xdb03_5080,
    0xff06_faea,
    0x22f3_67be,
    0x9605_e6bc,
    0x306b_b0e4,
    0xc3cb_c109,
    0x943d_092d,
    0xa061_048c,
    0x23a9_37bf,
    0x5530_1840,
];

pub const STATUS_COMMIT_BUSY: Field = Field::new(
    "commit_busy",
    0,
    1,
    "A commit is in progress (set by the COMMIT write, cleared when the new \
     state is active and the shadow copy is writable again).",
);
pub const ERROR_INDEX_OUT_OF_RANGE: Field = Field::new(
    "index_out_of_range",
    0,
    1,
    "A window command (or an UP_SET / UP_CLEAR write) named an entry past the table; \
     it was ignored.",
);
pub const ERROR_WRITE_WHILE_BUSY: Field = Field::new(
    "write_while_busy",
    1,
    1,
    "Shadowed state was written while commit_busy was set; the write was ignored.",
);
pub const ERROR_BAD_COMMAND: Field = Field::new(
    "bad_command",
    2,
    1,
    "A CMD write had both bits set, or asked to write a read-only window; it was ignored.",
);

/// One register of a hash key: word `$i` holds key bytes 4i..4i+3, the lowest-numbered
/// byte in bits 31..24.
macro_rules! key_reg {
    ($prefix:literal, $base:expr, $reset:expr, $i:literal, $bytes:literal) => {
        Register::new(
            concat!($prefix, "_KEY_", $i),
            $base + 4 * $i,
            32,
            Access::Rw,
            $reset[$i],
            concat!(
                "Word ",
                $i,
                " of the ",
                $prefix,
                " key: key bytes ",
                $bytes,
                ", the first of them in bits 31..24."
            ),
        )
        .shadowed()
    };
}

macro_rules! key_regs {
    ($prefix:literal, $base:expr, $reset:expr) => {
        [
            key_reg!($prefix, $base, $reset, 0, "0..3"),
            key_reg!($prefix, $base, $reset, 1, "4..7"),
            key_reg!($prefix, $base, $reset, 2, "8..11"),
            key_reg!($prefix, $base, $reset, 3, "12..15"),
            key_reg!($prefix, $base, $reset, 4, "16..19"),
            key_reg!($prefix, $base, $reset, 5, "20..23"),
            key_reg!($prefix, $base, $reset, 6, "24..27"),
            key_reg!($prefix, $base, $reset, 7, "28..31"),
            key_reg!($prefix, $base, $reset, 8, "32..35"),
            key_reg!($prefix, $base, $reset, 9, "36..39"),
            key_reg!($prefix, $base, $reset, 10, "40..43"),
            key_reg!($prefix, $base, $reset, 11, "44..47"),
            key_reg!($prefix, $base, $reset, 12, "48..51"),
        ]
    };
}

/// Base of the RSS key registers.
pub const RSS_KEY_BASE: u32 = 0x100;
/// Base of the DIGEST_HI key registers.
pub const DIGEST_HI_KEY_BASE: u32 = 0x140;
/// Base of the DIGEST_LO key registers.
pub const DIGEST_LO_KEY_BASE: u32 = 0x180;

const SCALAR_REGISTERS: [Register; 29] = [
    // Block header (Corundum-style): lets a driver find and check the block.
    Register::new(
        "BLOCK_TYPE",
        0x000,
        32,
        Access::Ro,
        BLOCK_TYPE,
        "Block type: 0x464C4754, \"FLGT\" in ASCII. Anything else: not a flowgate block.",
    ),
    Register::new(
        "BLOCK_VERSION",
        0x004,
        32,
        Access::Ro,
        BLOCK_VERSION,
        "Register map version, one byte each: major (31..24), minor, patch, meta (7..0). \
         A driver refuses a major version it does not know.",
    ),
    Register::new(
        "BLOCK_NEXT",
        0x008,
        32,
        Access::Ro,
        0,
        "Offset of the next register block from the start of the region; 0 ends the list.",
    ),
    // Control and status.
    Register::new(
        "ENABLE",
        0x010,
        1,
        Access::Rw,
        0,
        "1: balance frames. 0: pass every frame to the host untouched (counted as passed). \
         Takes effect at once.",
    ),
    Register::new(
        "COMMIT",
        0x014,
        1,
        Access::Strobe,
        0,
        "Write 1: between two frames, make the shadow copy of every shadowed register and \
         table the active one, all at once. The shadow keeps its contents, so the next \
         change starts from what is now active.",
    ),
    Register::new(
        "COMMIT_GENERATION",
        0x018,
        32,
        Access::Ro,
        0,
        "Commits completed since reset (wrapping). Software waits for it to change after \
         writing COMMIT.",
    ),
    Register::new("STATUS", 0x01C, 1, Access::Ro, 0, "Data-path status.")
        .with_fields(&[STATUS_COMMIT_BUSY]),
    Register::new(
        "ERROR",
        0x020,
        3,
        Access::W1c,
        0,
        "Sticky errors of the register interface; each records an access that was ignored.",
    )
    .with_fields(&[
        ERROR_INDEX_OUT_OF_RANGE,
        ERROR_WRITE_WHILE_BUSY,
        ERROR_BAD_COMMAND,
    ]),
    // Geometry: parameters of the build, read only.
    Register::new(
        "FLOW_SETS_LOG2",
        0x040,
        5,
        Access::Ro,
        DEFAULT_FLOW_SETS_LOG2,
        "log2 of the flow-table sets S (the set is the low S bits of the flow hash).",
    ),
    Register::new(
        "FLOW_WAYS",
        0x044,
        8,
        Access::Ro,
        DEFAULT_FLOW_WAYS,
        "Flow-table ways W per set.",
    ),
    Register::new(
        "MAGLEV_M",
        0x048,
        17,
        Access::Ro,
        DEFAULT_M,
        "Maglev slots per VIP (a prime below 2^17); slot = (hash × M) >> 32.",
    ),
    Register::new(
        "VIP_CAPACITY",
        0x04C,
        17,
        Access::Ro,
        DEFAULT_VIPS,
        "Entries of the VIP table.",
    ),
    Register::new(
        "BACKEND_CAPACITY",
        0x050,
        17,
        Access::Ro,
        DEFAULT_BACKENDS,
        "Entries of the backend table (and bits of UP_BITMAP).",
    ),
    // Addresses the rewrite stage writes into frames.
    Register::new(
        "OWN_MAC_HI",
        0x060,
        16,
        Access::Rw,
        0x0200,
        "Own MAC address (source of L2 DSR frames), bytes 0..1: byte 0 in bits 15..8.",
    )
    .shadowed(),
    Register::new(
        "OWN_MAC_LO",
        0x064,
        32,
        Access::Rw,
        0x0000_00fe,
        "Own MAC address, bytes 2..5: byte 2 in bits 31..24.",
    )
    .shadowed(),
    Register::new(
        "ENCAP_V4_PREFIX",
        0x070,
        32,
        Access::Rw,
        0xAC10_0000,
        "IPv4 prefix of the outer source address of IP-in-IP frames (address byte 0 in \
         bits 31..24); its host bits are filled from the flow hash for ECMP entropy.",
    )
    .shadowed(),
    Register::new(
        "ENCAP_V4_LEN",
        0x074,
        6,
        Access::Rw,
        16,
        "Length of ENCAP_V4_PREFIX in bits (0..32).",
    )
    .shadowed(),
    Register::new(
        "ENCAP_V6_PREFIX_0",
        0x080,
        32,
        Access::Rw,
        0xFC00_0000,
        "IPv6 prefix of the outer source address, bytes 0..3 (byte 0 in bits 31..24).",
    )
    .shadowed(),
    Register::new(
        "ENCAP_V6_PREFIX_1",
        0x084,
        32,
        Access::Rw,
        0,
        "IPv6 outer source prefix, bytes 4..7.",
    )
    .shadowed(),
    Register::new(
        "ENCAP_V6_PREFIX_2",
        0x088,
        32,
        Access::Rw,
        0,
        "IPv6 outer source prefix, bytes 8..11.",
    )
    .shadowed(),
    Register::new(
        "ENCAP_V6_PREFIX_3",
        0x08C,
        32,
        Access::Rw,
        0,
        "IPv6 outer source prefix, bytes 12..15.",
    )
    .shadowed(),
    Register::new(
        "ENCAP_V6_LEN",
        0x090,
        8,
        Access::Rw,
        64,
        "Length of the IPv6 outer source prefix in bits (0..128).",
    )
    .shadowed(),
    // Flow-table idle timeouts (ticks are milliseconds of frame time).
    Register::new(
        "TIMEOUT_TCP_MS",
        0x0A0,
        32,
        Access::Rw,
        300_000,
        "Idle timeout of an established TCP flow, in milliseconds.",
    )
    .shadowed(),
    Register::new(
        "TIMEOUT_TCP_EMBRYONIC_MS",
        0x0A4,
        32,
        Access::Rw,
        5_000,
        "Idle timeout of a TCP flow seen only with SYN, in milliseconds.",
    )
    .shadowed(),
    Register::new(
        "TIMEOUT_UDP_MS",
        0x0A8,
        32,
        Access::Rw,
        30_000,
        "Idle timeout of a UDP (or other non-TCP) flow, in milliseconds.",
    )
    .shadowed(),
    Register::new(
        "FLOW_CHOICES",
        0x0AC,
        2,
        Access::Rw,
        1,
        "Candidate sets per flow (flow_table.choices): 1, or 2 for a second set in the other \
         RAM bank (docs/CONTRACT.md §4). Other values act as 1.",
    )
    .shadowed(),
    // The health fast path: one write flips one backend, with no read-modify-write of
    // UP_BITMAP (which a health checker racing another writer could tear).
    Register::new(
        "UP_SET",
        0x0B0,
        16,
        Access::Wo,
        0,
        "Write a backend index: mark that backend up, at once (not shadowed). Same effect \
         as setting its bit in UP_BITMAP, without a read-modify-write.",
    ),
    Register::new(
        "UP_CLEAR",
        0x0B4,
        16,
        Access::Wo,
        0,
        "Write a backend index: mark that backend down, at once; its Maglev slots fall to \
         their secondaries from the next frame on.",
    ),
    Register::new(
        "SCRATCH",
        0x0BC,
        32,
        Access::Rw,
        0,
        "Free for software; lets a driver check that writes reach the block.",
    ),
];

const KEY_REGISTERS: [[Register; KEY_WORDS]; 3] = [
    key_regs!("RSS", RSS_KEY_BASE, RSS_KEY_RESET),
    key_regs!("DIGEST_HI", DIGEST_HI_KEY_BASE, DIGEST_HI_KEY_RESET),
    key_regs!("DIGEST_LO", DIGEST_LO_KEY_BASE, DIGEST_LO_KEY_RESET),
];

const REGISTER_COUNT: usize = SCALAR_REGISTERS.len() + 3 * KEY_WORDS;

const fn all_registers() -> [Register; REGISTER_COUNT] {
    let mut out = [SCALAR_REGISTERS[0]; REGISTER_COUNT];
    let mut i = 0;
    while i < SCALAR_REGISTERS.len() {
        out[i] = SCALAR_REGISTERS[i];
        i += 1;
    }
    let mut k = 0;
    while k < 3 {
        let mut w = 0;
        while w < KEY_WORDS {
            out[SCALAR_REGISTERS.len() + k * KEY_WORDS + w] = KEY_REGISTERS[k][w];
            w += 1;
        }
        k += 1;
    }
    out
}

const ALL_REGISTERS: [Register; REGISTER_COUNT] = all_registers();

/// Every register, in offset order.
pub const REGISTERS: &[Register] = &ALL_REGISTERS;

/// The register called `name`.
pub fn register(name: &str) -> Option<&'static Register> {
    REGISTERS.iter().find(|r| r.name == name)
}

// ---------------------------------------------------------------------------------------
// Window layouts. Each field is a constant so packing code and the table share it.

pub const WINDOW_ENTRY: Field = Field::new("entry", 0, 32, "Entry number.");

pub const VIP_ADDRESS: Field = Field::new(
    "address",
    0,
    128,
    "Destination address as an integer: IPv4 in bits 31..0 (upper bits 0), IPv6 in \
     bits 127..0 (address byte 0 in bits 127..120).",
);
pub const VIP_PORT: Field = Field::new("port", 128, 16, "Destination port; 0 = any port.");
pub const VIP_PROTOCOL: Field = Field::new(
    "protocol",
    144,
    8,
    "IP protocol number (6 = TCP, 17 = UDP).",
);
pub const VIP_IS_V6: Field = Field::new("is_v6", 152, 1, "1: address is IPv6.");
pub const VIP_MODE: Field = Field::new(
    "mode",
    153,
    2,
    "Rewrite of forwarded frames (`flowgate_core::rewrite::MODES`).",
)
.with_values(&MODE_VALUES);
pub const VIP_PERSISTENCE: Field = Field::new(
    "persistence",
    155,
    2,
    "Which fields make a flow: five_tuple = addresses, protocol and ports; src_ip = \
     addresses and protocol (all of a client's connections on one backend).",
)
.with_values(&[("five_tuple", 0), ("src_ip", 1)]);
pub const VIP_VALID: Field = Field::new(
    "valid",
    157,
    1,
    "1: the entry is a VIP; 0: the entry matches nothing.",
);

pub const VIP_ENCAP_PORT: Field = Field::new(
    "encap_port",
    160,
    16,
    "The mode's parameter: the outer UDP destination port of gue (config `gue_port`); 0 \
     for the other modes.",
);
/// Data words of a VIP entry.
pub const VIP_WORDS: usize = 6;

pub const BACKEND_ADDRESS: Field = Field::new(
    "address",
    0,
    128,
    "Backend address as an integer (as VIP address): the outer destination of IP-in-IP.",
);
pub const BACKEND_MAC: Field = Field::new(
    "mac",
    128,
    48,
    "Backend MAC address as an integer: byte 0 in bits 47..40. Destination of L2 DSR.",
);
pub const BACKEND_VIP: Field = Field::new(
    "vip",
    176,
    16,
    "Index of the VIP this backend serves; a slot naming a backend of another VIP is \
     treated as down. 0xFFFF marks an unused backend entry (the driver writes it into every \
     entry past the configured backends).",
);
pub const BACKEND_WEIGHT: Field = Field::new(
    "weight",
    192,
    16,
    "Maglev weight, kept for read-back only: the data path follows the Maglev table, \
     where a draining backend (weight 0) has no slots.",
);
pub const BACKEND_IS_V6: Field = Field::new("is_v6", 208, 1, "1: address is IPv6.");

/// Bits of the slot part of a Maglev `INDEX` (so M < 2^17).
pub const MAGLEV_SLOT_BITS: u32 = 17;
pub const MAGLEV_INDEX_SLOT: Field = Field::new(
    "slot",
    0,
    MAGLEV_SLOT_BITS,
    "Slot number within the VIP's table (< MAGLEV_M).",
);
pub const MAGLEV_INDEX_VIP: Field =
    Field::new("vip", MAGLEV_SLOT_BITS, 32 - MAGLEV_SLOT_BITS, "VIP index.");
pub const MAGLEV_PRIMARY: Field = Field::new(
    "primary",
    0,
    16,
    "Backend index taken while it is up; 0xFFFF = none.",
);
pub const MAGLEV_SECONDARY: Field = Field::new(
    "secondary",
    16,
    16,
    "Backend index taken when the primary is down; 0xFFFF = none.",
);

/// Bits of the way part of a flow-table `INDEX`.
pub const FLOW_WAY_BITS: u32 = 8;
pub const FLOW_INDEX_WAY: Field = Field::new("way", 0, FLOW_WAY_BITS, "Way within the set.");
pub const FLOW_INDEX_SET: Field = Field::new("set", FLOW_WAY_BITS, 32 - FLOW_WAY_BITS, "Set.");
pub const FLOW_DIGEST: Field = Field::new("digest", 0, 64, "64-bit flow digest.");
pub const FLOW_BACKEND: Field = Field::new("backend", 64, 16, "Backend index of the flow.");
pub const FLOW_CLASS: Field = Field::new(
    "class",
    80,
    2,
    "Entry class, which picks its timeout; invalid = empty way.",
)
.with_values(&[("invalid", 0), ("embryonic", 1), ("tcp", 2), ("udp", 3)]);
pub const FLOW_LAST_SEEN: Field = Field::new(
    "last_seen",
    96,
    32,
    "Tick (milliseconds of frame time, wrapping) the flow was last seen.",
);

pub const COUNTER_INDEX: Field = Field::new(
    "counter",
    0,
    32,
    "Counter index (see Counter index layout).",
);
pub const COUNTER_VALUE: Field = Field::new(
    "value",
    0,
    64,
    "Counter value (wrapping): DATA0 = low 32 bits, DATA1 = high 32 bits, latched together \
     by the READ command.",
);

pub const UP_BITS: Field = Field::new(
    "up",
    0,
    32,
    "Bit b of word w: backend 32w + b is up. Not shadowed: a write takes effect from the \
     next frame.",
);

pub const VIP_WINDOW: Window = Window {
    name: "VIP",
    base: 0x200,
    kind: WindowKind::Indexed,
    access: Access::Rw,
    shadowed: true,
    index: &[WINDOW_ENTRY],
    data_words: VIP_WORDS as u32,
    fields: &[
        VIP_ADDRESS,
        VIP_PORT,
        VIP_PROTOCOL,
        VIP_IS_V6,
        VIP_MODE,
        VIP_PERSISTENCE,
        VIP_VALID,
        VIP_ENCAP_PORT,
    ],
    entries: DEFAULT_VIPS,
    doc: "The VIP table: (address, port, protocol) services and how each is balanced. \
          A frame matches the valid VIP with its destination address and protocol whose \
          port is its destination port, else one whose port is 0; lowest index first.",
};

pub const BACKEND_WINDOW: Window = Window {
    name: "BACKEND",
    base: 0x240,
    kind: WindowKind::Indexed,
    access: Access::Rw,
    shadowed: true,
    index: &[WINDOW_ENTRY],
    data_words: 7,
    fields: &[
        BACKEND_ADDRESS,
        BACKEND_MAC,
        BACKEND_VIP,
        BACKEND_WEIGHT,
        BACKEND_IS_V6,
    ],
    entries: DEFAULT_BACKENDS,
    doc: "The backend table, by global backend index. Whether a backend is up is not \
          part of its entry but of UP_BITMAP, so that health changes need no commit.",
};

pub const MAGLEV_WINDOW: Window = Window {
    name: "MAGLEV",
    base: 0x280,
    kind: WindowKind::Indexed,
    access: Access::Rw,
    shadowed: true,
    index: &[MAGLEV_INDEX_SLOT, MAGLEV_INDEX_VIP],
    data_words: 1,
    fields: &[MAGLEV_PRIMARY, MAGLEV_SECONDARY],
    entries: DEFAULT_VIPS * DEFAULT_M,
    doc: "The Maglev tables, MAGLEV_M slots per VIP. INDEX auto-increments, so a VIP's \
          table is written as INDEX = first slot, then (DATA0, CMD) per slot.",
};

pub const FLOW_WINDOW: Window = Window {
    name: "FLOW",
    base: 0x2C0,
    kind: WindowKind::Indexed,
    access: Access::Ro,
    shadowed: false,
    index: &[FLOW_INDEX_WAY, FLOW_INDEX_SET],
    data_words: 4,
    fields: &[FLOW_DIGEST, FLOW_BACKEND, FLOW_CLASS, FLOW_LAST_SEEN],
    entries: (1 << DEFAULT_FLOW_SETS_LOG2) * DEFAULT_FLOW_WAYS,
    doc: "Read-back of the live flow table, for debugging. The data path keeps running, \
          so an entry may change right after it is read.",
};

pub const COUNTER_WINDOW: Window = Window {
    name: "COUNTER",
    base: 0x300,
    kind: WindowKind::Indexed,
    access: Access::Ro,
    shadowed: false,
    index: &[COUNTER_INDEX],
    data_words: 2,
    fields: &[COUNTER_VALUE],
    entries: COUNTER_INDEX_END,
    doc: "The counters, as 64-bit values. The index space is sparse (see Counter index \
          layout); an index that names no counter sets ERROR.index_out_of_range.",
};

pub const UP_BITMAP: Window = Window {
    name: "UP_BITMAP",
    base: 0x1000,
    kind: WindowKind::Array,
    access: Access::Rw,
    shadowed: false,
    index: &[],
    data_words: 1,
    fields: &[UP_BITS],
    entries: DEFAULT_BACKENDS / 32,
    doc: "One up bit per backend, mapped flat. A frame goes to its slot's primary if that \
          is up, else to the secondary if that is up, so one write here fails a backend \
          over before the control plane rebuilds the Maglev table. Placed last so that a \
          build with more backends can grow it up to MAP_SIZE.",
};

// Layout facts the index encodings rely on, checked at compile time.
const _: () = assert!(
    DEFAULT_M < 1 << MAGLEV_SLOT_BITS,
    "M must fit the slot bits"
);
const _: () = assert!(
    UP_BITMAP.base + 4 * (65536 / 32) <= MAP_SIZE,
    "UP_BITMAP must be able to grow to every u16 backend index"
);
const _: () = assert!(
    COUNTER_VIP_BASE + 2 * 65536 <= COUNTER_BACKEND_BASE
        && COUNTER_BACKEND_BASE + 2 * 65536 <= COUNTER_INDEX_END
        && COUNTER_DROP_BASE + 256 <= COUNTER_FLOW_BASE,
    "counter regions must hold every u16 VIP / backend and every u8 drop code"
);

/// Every window, in base order.
pub const WINDOWS: &[Window] = &[
    VIP_WINDOW,
    BACKEND_WINDOW,
    MAGLEV_WINDOW,
    FLOW_WINDOW,
    COUNTER_WINDOW,
    UP_BITMAP,
];

mod counters;
mod generate;
mod pack;
pub use counters::*;
pub use generate::*;
pub use pack::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_table::{Geometry, Timeouts};
    use crate::hash::HashKeys;
    use crate::tables::Tables;
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn reset(name: &str) -> u32 {
        register(name)
            .unwrap_or_else(|| panic!("no register {name}"))
            .reset
    }

    fn ranges_overlap(a: (u32, u32), b: (u32, u32)) -> bool {
        a.0 < b.1 && b.0 < a.1
    }

    #[test]
    fn registers_are_aligned_sorted_and_fit_the_map() {
        for r in REGISTERS {
            assert_eq!(r.offset % 4, 0, "{} unaligned", r.name);
            assert!(r.offset + 4 <= MAP_SIZE, "{} past the map", r.name);
            assert!((1..=32).contains(&r.width), "{} width {}", r.name, r.width);
            assert_eq!(r.reset & !r.mask(), 0, "{} reset wider than it", r.name);
        }
        for pair in REGISTERS.windows(2) {
            assert!(
                pair[0].offset < pair[1].offset,
                "{} and {} overlap or are out of order",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names = HashSet::new();
        for r in REGISTERS {
            assert!(names.insert(r.name), "duplicate register {}", r.name);
        }
        for w in WINDOWS {
            assert!(names.insert(w.name), "duplicate window {}", w.name);
            let mut fields = HashSet::new();
            for f in w.fields {
                assert!(
                    fields.insert(f.name),
                    "{}: duplicate field {}",
                    w.name,
                    f.name
                );
            }
        }
        // The C header flattens names: no two macros may collide.
        let header = c_header();
        let mut macros = HashSet::new();
        for line in header.lines().filter(|l| l.starts_with("#define ")) {
            let name = line.split_whitespace().nth(1).unwrap();
            let name = name.split('(').next().unwrap();
            assert!(
                macros.insert(name.to_string()),
                "macro {name} defined twice"
            );
        }
    }

    #[test]
    fn windows_overlap_nothing_and_fit_the_map() {
        for (i, w) in WINDOWS.iter().enumerate() {
            let span = (w.base, w.base + w.span());
            assert_eq!(w.base % 4, 0);
            assert!(span.1 <= MAP_SIZE, "{} past the map", w.name);
            for r in REGISTERS {
                assert!(
                    !ranges_overlap(span, (r.offset, r.offset + 4)),
                    "{} overlaps register {}",
                    w.name,
                    r.name
                );
            }
            for other in &WINDOWS[i + 1..] {
                assert!(
                    !ranges_overlap(span, (other.base, other.base + other.span())),
                    "{} overlaps {}",
                    w.name,
                    other.name
                );
            }
        }
        // The up bitmap must be able to grow to every backend a u16 index can name.
        let last = WINDOWS.iter().max_by_key(|w| w.base).unwrap();
        assert_eq!(last.name, UP_BITMAP.name);
    }

    fn assert_disjoint_within(what: &str, fields: &[Field], bits: u32) {
        for (i, f) in fields.iter().enumerate() {
            assert!(f.width >= 1, "{what}.{} is empty", f.name);
            assert!(f.end() <= bits, "{what}.{} past bit {bits}", f.name);
            for g in &fields[i + 1..] {
                assert!(
                    !ranges_overlap((f.lsb, f.end()), (g.lsb, g.end())),
                    "{what}: {} overlaps {}",
                    f.name,
                    g.name
                );
            }
            for (n, v) in f.values {
                assert!(
                    (*v as u128) <= f.mask(),
                    "{what}.{}: {n} does not fit",
                    f.name
                );
            }
        }
    }

    #[test]
    fn fields_are_disjoint_and_fit() {
        for r in REGISTERS {
            assert_disjoint_within(r.name, r.fields, r.width);
        }
        for w in WINDOWS {
            assert_disjoint_within(w.name, w.fields, 32 * w.data_words);
            assert_disjoint_within(w.name, w.index, 32);
            assert_eq!(
                w.kind == WindowKind::Array,
                w.index.is_empty(),
                "{}",
                w.name
            );
        }
    }

    #[test]
    fn reset_state_is_the_default_tables() {
        // After reset the hardware must behave as a software engine given
        // `Tables::default()`, so a driver that programs only VIPs and backends gets the
        // same flows everywhere.
        let t = Tables::default();
        let keys = HashKeys::default();
        let words = |prefix: &str| -> Vec<u32> {
            (0..KEY_WORDS)
                .map(|i| reset(&format!("{prefix}_KEY_{i}")))
                .collect()
        };
        assert_eq!(words("RSS"), key_words(&keys.rss));
        assert_eq!(words("DIGEST_HI"), key_words(&keys.digest_hi));
        assert_eq!(words("DIGEST_LO"), key_words(&keys.digest_lo));
        assert_eq!(
            (reset("OWN_MAC_HI"), reset("OWN_MAC_LO")),
            mac_words(t.own_mac)
        );
        assert_eq!(
            Ipv4Addr::from(reset("ENCAP_V4_PREFIX")),
            t.encap_src_v4.prefix
        );
        assert_eq!(reset("ENCAP_V4_LEN"), t.encap_src_v4.len as u32);
        let v6 = (0..4).fold(0u128, |acc, i| {
            acc << 32 | reset(&format!("ENCAP_V6_PREFIX_{i}")) as u128
        });
        assert_eq!(Ipv6Addr::from(v6), t.encap_src_v6.prefix);
        assert_eq!(reset("ENCAP_V6_LEN"), t.encap_src_v6.len as u32);
        let to = Timeouts::default();
        assert_eq!(reset("TIMEOUT_TCP_MS"), to.tcp_ms);
        assert_eq!(reset("TIMEOUT_TCP_EMBRYONIC_MS"), to.tcp_embryonic_ms);
        assert_eq!(reset("TIMEOUT_UDP_MS"), to.udp_ms);
        let g = Geometry::default();
        assert_eq!(1u32 << reset("FLOW_SETS_LOG2"), g.sets);
        assert_eq!(reset("FLOW_WAYS"), g.ways);
        assert_eq!(reset("MAGLEV_M"), DEFAULT_M);
    }

    #[test]
    fn key_byte_zero_is_the_msb_of_the_first_register() {
        let mut key = [0u8; KEY_LEN];
        key[0] = 0xAB;
        key[KEY_LEN - 1] = 0xCD;
        let w = key_words(&key);
        assert_eq!(w[0], 0xAB00_0000);
        assert_eq!(w[KEY_WORDS - 1], 0x0000_00CD);
    }

    #[test]
    fn field_get_set_round_trip_across_words() {
        let mut w = [0u32; 7];
        BACKEND_MAC.set(&mut w, 0x0123_4567_89ab);
        BACKEND_VIP.set(&mut w, 0xbeef);
        assert_eq!(BACKEND_MAC.get(&w), 0x0123_4567_89ab);
        assert_eq!(BACKEND_VIP.get(&w), 0xbeef);
        // mac spans DATA4 and the low half of DATA5; vip is DATA5's high half.
        assert_eq!(w[4], 0x4567_89ab);
        assert_eq!(w[5], 0xbeef_0123);
        // Values are truncated to the field; neighbours are untouched.
        BACKEND_VIP.set(&mut w, 0x1_0000);
        assert_eq!(BACKEND_VIP.get(&w), 0);
        assert_eq!(BACKEND_MAC.get(&w), 0x0123_4567_89ab);
        // Short slices neither panic nor invent bits.
        let mut short = [0u32; 1];
        VIP_ADDRESS.set(&mut short, u128::MAX);
        assert_eq!(short[0], u32::MAX);
        assert_eq!(VIP_ADDRESS.get(&short), u32::MAX as u128);
    }

    #[test]
    fn vip_and_backend_entries_pack_their_fields() {
        let w = vip_words(
            "2001:db8::1".parse().unwrap(),
            443,
            6,
            Mode::IpIp,
            Persistence::SrcIp,
        );
        assert_eq!(w[3], 0x2001_0db8, "address byte 0 is the top of DATA3");
        assert_eq!(w[0], 1);
        assert_eq!(VIP_PORT.get(&w), 443);
        assert_eq!(VIP_PROTOCOL.get(&w), 6);
        assert_eq!(VIP_IS_V6.get(&w), 1);
        assert_eq!(VIP_MODE.get(&w), VIP_MODE.value("ipip").unwrap() as u128);
        assert_eq!(
            VIP_PERSISTENCE.get(&w),
            VIP_PERSISTENCE.value("src_ip").unwrap() as u128
        );
        assert_eq!(VIP_VALID.get(&w), 1);
        assert_eq!(VIP_ENCAP_PORT.get(&w), 0);
        let gue = vip_words(
            "192.0.2.1".parse().unwrap(),
            53,
            17,
            Mode::Gue { port: 6080 },
            Persistence::FiveTuple,
        );
        assert_eq!(VIP_MODE.get(&gue), VIP_MODE.value("gue").unwrap() as u128);
        assert_eq!(VIP_ENCAP_PORT.get(&gue), 6080);
        assert_eq!(gue[5], 6080, "encap_port is the low half of DATA5");
        assert_eq!(mode_code(Mode::Dsr), VIP_MODE.value("dsr").unwrap());
        assert_eq!(
            persistence_code(Persistence::FiveTuple),
            VIP_PERSISTENCE.value("five_tuple").unwrap()
        );

        let mut be = Backend {
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
            mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x55],
            weight: 100,
            up: true,
            vip: 3,
        };
        let w = backend_entry(&be).unwrap();
        assert_eq!(w[0], 0x0a00_0007);
        assert_eq!(BACKEND_ADDRESS.get(&w), 0x0a00_0007);
        assert_eq!(BACKEND_MAC.get(&w), 0x0211_2233_4455);
        assert_eq!(BACKEND_VIP.get(&w), 3);
        assert_eq!(BACKEND_WEIGHT.get(&w), 100);
        assert_eq!(BACKEND_IS_V6.get(&w), 0);
        be.weight = 70_000;
        assert_eq!(backend_entry(&be), None, "weights past 16 bits are refused");
    }

    #[test]
    fn maglev_and_flow_indices() {
        let slot = Slot {
            primary: 5,
            secondary: crate::maglev::NO_BACKEND,
        };
        let word = [maglev_entry(slot)];
        assert_eq!(MAGLEV_PRIMARY.get(&word), 5);
        assert_eq!(MAGLEV_SECONDARY.get(&word), 0xFFFF);
        let i = maglev_index(3, 65536).unwrap();
        assert_eq!(MAGLEV_INDEX_VIP.get(&[i]), 3);
        assert_eq!(MAGLEV_INDEX_SLOT.get(&[i]), 65536);
        assert_eq!(maglev_index(3, 1 << 17), None);
        assert_eq!(maglev_index(u16::MAX, 0), None, "VIP index past 15 bits");
        let i = flow_index(16383, 3).unwrap();
        assert_eq!(FLOW_INDEX_SET.get(&[i]), 16383);
        assert_eq!(FLOW_INDEX_WAY.get(&[i]), 3);
        assert_eq!(flow_index(0, 256), None);
        assert_eq!(up_bit(33), (1, 1));
    }

    #[test]
    fn counter_indices_round_trip_and_are_unique() {
        let all = Counter::all(300, 2000);
        let mut seen = HashSet::new();
        for c in &all {
            let i = c.index();
            assert!(i < COUNTER_INDEX_END);
            assert!(seen.insert(i), "{c:?} shares index {i:#x}");
            assert_eq!(Counter::from_index(i), Some(*c));
        }
        let extremes = [
            Counter::Vip(u16::MAX, Tally::Bytes),
            Counter::Backend(u16::MAX, Tally::Bytes),
            Counter::Backend(0, Tally::Packets),
        ];
        for c in extremes {
            assert_eq!(Counter::from_index(c.index()), Some(c));
        }
        assert!(Counter::Vip(u16::MAX, Tally::Bytes).index() < COUNTER_BACKEND_BASE);
        // Gaps name nothing.
        for i in [
            3,
            COUNTER_DROP_BASE,
            COUNTER_FLOW_BASE + 7,
            COUNTER_INDEX_END,
            u32::MAX,
        ] {
            assert_eq!(Counter::from_index(i), None, "index {i:#x}");
        }
        assert_eq!(
            Counter::Drop(DropReason::TruncatedEthernet).index(),
            COUNTER_DROP_BASE + 1
        );
    }

    #[test]
    fn counter_values_read_from_core_counters() {
        let mut c = Counters::new(2, 3);
        c.frames_in = 10;
        c.passed = 4;
        c.drops[DropReason::BadIpv4Ihl.code() as usize] = 2;
        c.flow.reselects = 9;
        c.vips[1].add(100);
        c.backends[2].add(60);
        c.backends[2].add(40);
        let v = |i: u32| Counter::from_index(i).and_then(|k| k.value(&c));
        assert_eq!(v(0), Some(10));
        assert_eq!(v(2), Some(4));
        assert_eq!(
            v(COUNTER_DROP_BASE + DropReason::BadIpv4Ihl.code() as u32),
            Some(2)
        );
        assert_eq!(v(COUNTER_FLOW_BASE + 6), Some(9));
        assert_eq!(v(COUNTER_VIP_BASE + 2), Some(1));
        assert_eq!(v(COUNTER_VIP_BASE + 3), Some(100));
        assert_eq!(v(COUNTER_BACKEND_BASE + 4), Some(2));
        assert_eq!(v(COUNTER_BACKEND_BASE + 5), Some(100));
        assert_eq!(
            v(COUNTER_BACKEND_BASE + 6),
            None,
            "backend 3 does not exist"
        );
    }

    #[test]
    fn generators_are_deterministic_and_complete() {
        let (md, h) = (markdown(), c_header());
        assert_eq!(md, markdown());
        assert_eq!(h, c_header());
        for r in REGISTERS {
            assert!(
                md.contains(&format!("`{}`", r.name)),
                "{} not in docs",
                r.name
            );
            assert!(
                h.contains(&format!(
                    "#define FLOWGATE_REG_{} {:#05x}u",
                    r.name, r.offset
                )),
                "{} not in header",
                r.name
            );
        }
        for w in WINDOWS {
            for f in w.fields {
                assert!(
                    h.contains(&format!("FLOWGATE_WIN_{}_{}_", w.name, c_name(f.name))),
                    "{}.{} not in header",
                    w.name,
                    f.name
                );
            }
        }
        for r in DropReason::ALL {
            assert!(md.contains(&format!("`drop.{}`", r.name())));
        }
        assert!(h.contains("#define FLOWGATE_WIN_VIP_MODE_IPIP 1u"));
        assert!(h.contains("#define FLOWGATE_REG_STATUS_COMMIT_BUSY_MASK 0x00000001u"));
    }
}
