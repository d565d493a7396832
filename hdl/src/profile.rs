//! The hardware profiles: one table row per class of board, from which everything else
//! about a balancer top is derived — the top's type ([`profile_top!`]: its 18 const
//! generics), its design in [`crate::Design`], its manifest parameters, `flowgate synth
//! --profile` and `flowgate hdl emit --profile`, and the example config a user replays
//! through it (a test checks that each example config's geometry is its profile's).
//!
//! Adding a profile is adding a row here and a `profile_top!` alias in [`crate::top`].

use crate::hash::INPUT_BITS;

/// One class of board: stream width, table sizes and FIFO depths of its balancer top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HwProfile {
    /// The name on the command line (`--profile`).
    pub name: &'static str,
    /// What it is for, for `--help` and the docs.
    pub about: &'static str,
    /// The design name of its top (`flowgate hdl list`).
    pub design: &'static str,
    /// AXI4-Stream data width in bits.
    pub data_bits: usize,
    /// Frame FIFO depth in beats (a power of two): `frame_fifo_beats × data_bits / 8`
    /// bytes is the longest frame the top takes.
    pub frame_fifo_beats: usize,
    /// Frames whose actions can wait for their payload (a power of two).
    pub action_fifo_frames: usize,
    /// VIP slots (a power of two).
    pub vips: usize,
    /// Backend slots (a power of two, at least 32: the up bits are 32-bit words).
    pub backends: usize,
    /// The Maglev table size M the top is built with (a prime).
    pub maglev_m: u32,
    /// Slots per VIP row of the Maglev RAM (a power of two, at least `maglev_m`).
    pub maglev_row: usize,
    /// Flow-table sets (a power of two) and ways.
    pub sets: u32,
    pub ways: u32,
    /// Clocks (slices) the decision block takes to hash a flow's 312-bit input: 8 on a
    /// 64-bit stream (a frame is at least 8 beats), 1 on a wide stream (a frame a clock).
    pub hash_slices: usize,
    /// The example config with this profile's geometry (`examples/...`).
    pub example_config: &'static str,
}

/// `log2` of a power of two (the const generics of a top are bit widths).
pub const fn log2(x: usize) -> usize {
    assert!(x.is_power_of_two(), "profile sizes are powers of two");
    x.trailing_zeros() as usize
}

impl HwProfile {
    /// Bits of the hash input per slice.
    pub const fn hash_chunk(&self) -> usize {
        assert!(INPUT_BITS.is_multiple_of(self.hash_slices));
        INPUT_BITS / self.hash_slices
    }

    /// Bytes per stream beat.
    pub const fn data_bytes(&self) -> usize {
        self.data_bits / 8
    }

    /// The longest frame the top takes, in bytes.
    pub const fn max_frame_bytes(&self) -> usize {
        self.frame_fifo_beats * self.data_bytes()
    }

    /// Flow-table entries.
    pub const fn flow_entries(&self) -> u64 {
        self.sets as u64 * self.ways as u64
    }

    /// The profile named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<&'static HwProfile> {
        PROFILES
            .iter()
            .copied()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The names, for messages.
    pub fn names() -> String {
        PROFILES
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// ECP5-85F class: 64-bit stream, a 16 KiB frame FIFO, 8 VIPs, 64 backends, M = 251,
/// 4096 × 4 flows, the serial Toeplitz hash.
pub const SMALL: HwProfile = HwProfile {
    name: "small",
    about: "64-bit stream, ECP5-class tables (8 VIPs, 64 backends, M = 251, 4096 x 4 flows)",
    design: "top",
    data_bits: 64,
    frame_fifo_beats: 2048,
    action_fifo_frames: 256,
    vips: 8,
    backends: 64,
    maglev_m: 251,
    maglev_row: 256,
    sets: 4096,
    ways: 4,
    hash_slices: 8,
    example_config: "examples/hw-small.toml",
};

/// The small profile's tables on a 512-bit stream (a frame per clock).
pub const WIDE: HwProfile = HwProfile {
    name: "wide",
    about: "512-bit stream with the small profile's tables",
    design: "wide-top",
    data_bits: 512,
    frame_fifo_beats: 256,
    hash_slices: 1,
    ..SMALL
};

/// 100 GbE shells (Corundum / OpenNIC class): 512-bit stream, 64 VIPs, 1024 backends,
/// M = 4093, 16384 × 4 flows.
pub const HUNDRED_G: HwProfile = HwProfile {
    name: "100g",
    about: "512-bit stream, 100G-shell tables (64 VIPs, 1024 backends, M = 4093, 16384 x 4 flows)",
    design: "top-100g",
    vips: 64,
    backends: 1024,
    maglev_m: 4093,
    maglev_row: 4096,
    sets: 16384,
    example_config: "examples/hw-100g.toml",
    ..WIDE
};

/// Every profile, in the order `--help` lists them.
pub const PROFILES: &[&HwProfile] = &[&SMALL, &WIDE, &HUNDRED_G];

/// The [`crate::top::Top`] type of a profile: its const generics, derived from the row.
#[macro_export]
macro_rules! profile_top {
    ($p:path) => {
        $crate::top::Top<
            { $p.data_bits },
            { $p.data_bytes() },
            { $crate::profile::log2($p.frame_fifo_beats) },
            { $crate::profile::log2($p.frame_fifo_beats) + 1 },
            { $crate::profile::log2($p.action_fifo_frames) },
            { $crate::profile::log2($p.action_fifo_frames) + 1 },
            { $p.vips },
            { $crate::profile::log2($p.vips) },
            { $p.backends },
            { $crate::profile::log2($p.backends) },
            { $crate::profile::log2($p.maglev_row) },
            { $crate::profile::log2($p.vips) + $crate::profile::log2($p.maglev_row) },
            { $p.backends / 32 },
            { $crate::profile::log2($p.sets as usize) },
            { $crate::profile::log2($p.sets as usize) - 1 },
            { $p.ways as usize },
            { 2 * $p.ways as usize },
            { $p.hash_chunk() },
            { $p.hash_chunk() + 31 },
            { $p.hash_slices + 1 },
        >
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_names_a_design_and_fits_its_rules() {
        for p in PROFILES {
            assert!(
                crate::Design::from_name(p.design).is_some(),
                "{}: no design {}",
                p.name,
                p.design
            );
            assert_eq!(HwProfile::from_name(p.name), Some(*p));
            assert!(p.maglev_m as usize <= p.maglev_row, "{}", p.name);
            assert!(
                p.backends >= 32 && p.backends.is_multiple_of(32),
                "{}",
                p.name
            );
            assert!(flowgate_core::maglev::is_prime(p.maglev_m), "{}", p.name);
        }
        assert!(HwProfile::from_name("10g").is_none());
    }
}
