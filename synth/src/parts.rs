//! The synthesis targets and the parts behind them: device names for each tool, and the
//! capacities a report divides by (datasheet figures; for ECP5, nextpnr's own counts
//! replace them when it runs).

use std::fmt;
use std::str::FromStr;

/// Where `flowgate synth` takes a design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Lattice LFE5U-85F: yosys `synth_ecp5` → nextpnr-ecp5 → ecppack, to a `.bit`.
    Ecp5_85F,
    /// Lattice LFE5U-25F, same flow.
    Ecp5_25F,
    /// yosys `synth_xilinx` (UltraScale+) cell counts, out of context; no timing.
    XilinxEstimate,
    /// A generated Vivado non-project script + XDC for an Alveo U250 (not run here).
    Vivado,
    /// A generated Quartus script + SDC for an Agilex 7 F-series part (not run here).
    Quartus,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Ecp5_85F,
        Target::Ecp5_25F,
        Target::XilinxEstimate,
        Target::Vivado,
        Target::Quartus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Ecp5_85F => "ecp5-85f",
            Target::Ecp5_25F => "ecp5-25f",
            Target::XilinxEstimate => "xilinx-estimate",
            Target::Vivado => "vivado",
            Target::Quartus => "quartus",
        }
    }

    pub fn part(self) -> &'static Part {
        match self {
            Target::Ecp5_85F => &ECP5_85F,
            Target::Ecp5_25F => &ECP5_25F,
            Target::XilinxEstimate | Target::Vivado => &ALVEO_U250,
            Target::Quartus => &AGILEX_F014,
        }
    }

    /// The clock a run aims for when `--freq` is not given: 150 MHz on ECP5 (one 64-byte
    /// frame per clock is 148.8 Mpps, the 100 GbE minimum-frame rate); on the 100G-class
    /// parts 322.265625 MHz for the 100g profile (the clock of the 100 GbE MAC's 512-bit
    /// stream in open shells: Corundum and OpenNIC run their CMAC datapath on it, so the
    /// balancer sits on that stream with no clock crossing) and 250 MHz otherwise (a
    /// common shell user clock, e.g. OpenNIC's 250 MHz user domain).
    pub fn default_freq_mhz(self, hundred_g: bool) -> f64 {
        match self {
            Target::Ecp5_85F | Target::Ecp5_25F => 150.0,
            Target::XilinxEstimate | Target::Vivado | Target::Quartus if hundred_g => {
                CMAC_CLOCK_MHZ
            }
            Target::XilinxEstimate | Target::Vivado | Target::Quartus => 250.0,
        }
    }
}

/// The 100 GbE MAC's stream clock in open FPGA NIC shells (Xilinx CMAC: 512 bits at
/// 322.265625 MHz, 165 Gb/s of bus for 100 Gb/s of line).
pub const CMAC_CLOCK_MHZ: f64 = 322.265625;

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                format!("unknown target `{s}` (one of: {})", names.join(", "))
            })
    }
}

/// One FPGA part and the resources a report counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// What users call it ("Lattice ECP5 LFE5U-85F").
    pub title: &'static str,
    /// The device string the vendor tool takes.
    pub device: &'static str,
    pub luts: u64,
    /// What a LUT is on this part ("LUT4", "LUT6", "ALM").
    pub lut_kind: &'static str,
    pub ffs: u64,
    pub bram: u64,
    /// The block RAM primitive `bram` counts.
    pub bram_kind: &'static str,
    /// The primitive's shape that holds a 4096-deep (or its own deepest useful) flow-table
    /// way: `depth` entries of `width` bits, so a way of `depth` sets needs
    /// ⌈114 / width⌉ blocks.
    pub bram_depth: u64,
    pub bram_width: u64,
    /// UltraRAM blocks (4096 × 72), 0 where the part has none.
    pub uram: u64,
    pub dsp: u64,
    pub dsp_kind: &'static str,
}

/// Bits of one flow-table entry as `flow_table` lays it out (class 2, digest 64,
/// backend 16, last seen 32).
pub const FLOW_ENTRY_BITS: u64 = 114;

impl Part {
    /// Blocks of this part's block RAM that one way of `bram_depth` sets needs.
    pub fn blocks_per_way(&self) -> u64 {
        FLOW_ENTRY_BITS.div_ceil(self.bram_width)
    }

    /// Flow entries that fit in `free_blocks` block RAMs (plus all UltraRAM), counted in
    /// whole ways of `bram_depth` sets — the layout `flow_table` uses (one RAM per field
    /// and way, all addressed by the set).
    pub fn flow_entries_in(&self, free_blocks: u64) -> u64 {
        let from_bram = free_blocks / self.blocks_per_way() * self.bram_depth;
        // URAM288 as 4096 × 72: two per way of 4096 sets.
        let from_uram = self.uram / FLOW_ENTRY_BITS.div_ceil(72) * 4096;
        from_bram + from_uram
    }
}

/// LFE5U-85F (e.g. ULX3S-85F, ECP5 evaluation board): 83 640 LUT4, 208 DP16KD, 156
/// MULT18X18D (Lattice FPGA-DS-02012).
pub static ECP5_85F: Part = Part {
    title: "Lattice ECP5 LFE5U-85F (CABGA381, speed 6)",
    device: "--85k",
    luts: 83_640,
    lut_kind: "LUT4",
    ffs: 83_640,
    bram: 208,
    bram_kind: "DP16KD",
    bram_depth: 4096,
    bram_width: 4,
    uram: 0,
    dsp: 156,
    dsp_kind: "MULT18X18D",
};

/// LFE5U-25F: 24 288 LUT4, 56 DP16KD, 28 MULT18X18D.
pub static ECP5_25F: Part = Part {
    title: "Lattice ECP5 LFE5U-25F (CABGA381, speed 6)",
    device: "--25k",
    luts: 24_288,
    lut_kind: "LUT4",
    ffs: 24_288,
    bram: 56,
    bram_kind: "DP16KD",
    bram_depth: 4096,
    bram_width: 4,
    uram: 0,
    dsp: 28,
    dsp_kind: "MULT18X18D",
};

/// Alveo U250 (XCU250, VU13P-class): 1 728 000 LUT6, 3 456 000 FF, 2 688 RAMB36, 1 280
/// URAM288, 12 288 DSP48E2 (Xilinx DS962).
pub static ALVEO_U250: Part = Part {
    title: "AMD/Xilinx Alveo U250 (xcu250-figd2104-2L-e, UltraScale+)",
    device: "xcu250-figd2104-2L-e",
    luts: 1_728_000,
    lut_kind: "LUT6",
    ffs: 3_456_000,
    bram: 2_688,
    bram_kind: "RAMB36",
    bram_depth: 4096,
    bram_width: 9,
    uram: 1_280,
    dsp: 12_288,
    dsp_kind: "DSP48E2",
};

/// Agilex 7 F-series AGFB014 (e.g. the Agilex 7 F-series development kit): 487 200 ALM,
/// 1 948 800 registers, 7 110 M20K, 4 510 DSP blocks (Intel Agilex 7 product table).
pub static AGILEX_F014: Part = Part {
    title: "Intel Agilex 7 F-series AGFB014R24B2E2V",
    device: "AGFB014R24B2E2V",
    luts: 487_200,
    lut_kind: "ALM",
    ffs: 1_948_800,
    bram: 7_110,
    bram_kind: "M20K",
    bram_depth: 2048,
    bram_width: 10,
    uram: 0,
    dsp: 4_510,
    dsp_kind: "DSP",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_their_names() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>(), Ok(t));
        }
        let err = "ice40".parse::<Target>().unwrap_err();
        assert!(err.contains("ecp5-85f") && err.contains("quartus"), "{err}");
    }

    #[test]
    fn a_16k_table_takes_116_dp16kd_and_the_85f_holds_28k_entries() {
        // 29 DP16KD per 4096-set way is what synth_ecp5 infers for FlowTable16K (hdl
        // README: 116 for 4 ways).
        assert_eq!(ECP5_85F.blocks_per_way(), 29);
        assert_eq!(ECP5_85F.flow_entries_in(116), 16 * 1024);
        assert_eq!(ECP5_85F.flow_entries_in(208), 7 * 4096);
        assert_eq!(ECP5_25F.flow_entries_in(56), 4096);
        // U250: 2688 / 13 = 206 ways in RAMB36 + 1280 / 2 = 640 ways in URAM.
        assert_eq!(ALVEO_U250.flow_entries_in(2688), (206 + 640) * 4096);
        assert_eq!(AGILEX_F014.flow_entries_in(7110), 7110 / 12 * 2048);
    }
}
