//! The rewrite modes as one table: what a VIP's `mode` can be.
//!
//! [`MODES`] is the single description of every mode: its name (the config's `mode = "…"`,
//! the summary report and the register map's value names), its code (the VIP entry's
//! `mode` field, which the hardware carries through its pipeline), its parameter (a config
//! key with a default, held in the VIP entry's `encap_port` field) and how many bytes it
//! puts in front of the inner datagram for an IPv4 and an IPv6 backend (the MTU rule and a
//! DPDK mbuf's headroom follow from it). The config parser, the compiler, the register
//! programming and read-back, the report and the register map's docs all read this table;
//! adding a mode is a row here, a [`Mode`] variant and its bytes in
//! [`rewrite`](super::rewrite) and in the hardware rewriter.

use super::{OUTER_IPV4_LEN, OUTER_IPV6_LEN, UDP_HEADER_LEN};

/// What a VIP's forwarded frames become, with the mode's parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// L2 direct server return: only the MACs change.
    #[default]
    Dsr,
    /// IP-in-IP: an outer IPv4 / IPv6 header to the backend (RFC 2003, RFC 2473).
    IpIp,
    /// GUE variant 1, direct IP-in-UDP (draft-ietf-intarea-gue §4, as Katran sends it):
    /// an outer IP header and a UDP header to `port` on the backend, no GUE header.
    Gue { port: u16 },
}

/// A mode's parameter: a config key of the VIP, stored in the VIP entry's `encap_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeParam {
    /// The VIP's config key.
    pub key: &'static str,
    /// Its value when the config leaves it out.
    pub default: u16,
    pub doc: &'static str,
}

/// One row of [`MODES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSpec {
    /// `mode = "<name>"` in the config; the report and the register map's value name.
    pub name: &'static str,
    /// The VIP entry's `mode` field value.
    pub code: u8,
    pub doc: &'static str,
    /// The mode's parameter, if it has one.
    pub param: Option<ModeParam>,
    /// Bytes inserted between the L2 header and the inner datagram for an IPv4 backend
    /// (0: the frame keeps its length and its Ethernet padding).
    pub outer_len_v4: usize,
    /// The same for an IPv6 backend.
    pub outer_len_v6: usize,
}

/// GUE's default destination port: the one Katran uses (`GUE_DPORT`).
pub const GUE_DEFAULT_PORT: u16 = 6080;

/// Every rewrite mode, in code order (row `i` has code `i`).
pub const MODES: [ModeSpec; 3] = [
    ModeSpec {
        name: "dsr",
        code: 0,
        doc: "L2 direct server return: destination MAC := backend MAC, source MAC := own \
              MAC; the backend holds the VIP on loopback.",
        param: None,
        outer_len_v4: 0,
        outer_len_v6: 0,
    },
    ModeSpec {
        name: "ipip",
        code: 1,
        doc: "IP-in-IP: an outer IPv4 or IPv6 header to the backend (the backend's family), \
              source from the encapsulation prefix and the flow hash.",
        param: None,
        outer_len_v4: OUTER_IPV4_LEN,
        outer_len_v6: OUTER_IPV6_LEN,
    },
    ModeSpec {
        name: "gue",
        code: 2,
        doc: "GUE variant 1 (IP-in-UDP, as Katran): outer IP header as ipip, then UDP from \
              a port taken from the flow hash to encap_port; UDP checksum 0 under IPv4, \
              computed under IPv6.",
        param: Some(ModeParam {
            key: "gue_port",
            default: GUE_DEFAULT_PORT,
            doc: "UDP destination port of the GUE tunnel on the backends (not 0).",
        }),
        outer_len_v4: OUTER_IPV4_LEN + UDP_HEADER_LEN,
        outer_len_v6: OUTER_IPV6_LEN + UDP_HEADER_LEN,
    },
];

/// The names of [`MODES`], in code order.
pub const MODE_NAMES: [&str; MODES.len()] = {
    let mut names = [""; MODES.len()];
    let mut i = 0;
    while i < MODES.len() {
        names[i] = MODES[i].name;
        i += 1;
    }
    names
};

/// `(name, code)` of every mode: the register map's value names of the `mode` field.
pub const MODE_VALUES: [(&str, u32); MODES.len()] = {
    let mut values = [("", 0); MODES.len()];
    let mut i = 0;
    while i < MODES.len() {
        values[i] = (MODES[i].name, MODES[i].code as u32);
        i += 1;
    }
    values
};

/// Bytes the widest mode puts in front of an inner datagram: the headroom an in-place
/// rewrite needs.
pub const MAX_OUTER_LEN: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < MODES.len() {
        if MODES[i].outer_len_v4 > max {
            max = MODES[i].outer_len_v4;
        }
        if MODES[i].outer_len_v6 > max {
            max = MODES[i].outer_len_v6;
        }
        i += 1;
    }
    max
};

impl ModeSpec {
    /// The row called `name`.
    pub fn by_name(name: &str) -> Option<&'static ModeSpec> {
        MODES.iter().find(|m| m.name == name)
    }

    /// The row with this code.
    pub fn by_code(code: u32) -> Option<&'static ModeSpec> {
        MODES.iter().find(|m| u32::from(m.code) == code)
    }

    /// This mode with its parameter `param` (ignored by a mode without one).
    pub fn with_param(&self, param: u16) -> Mode {
        match self.code {
            1 => Mode::IpIp,
            2 => Mode::Gue { port: param },
            _ => Mode::Dsr,
        }
    }

    /// Bytes inserted in front of the inner datagram for a backend of this family.
    pub fn outer_len(&self, backend_v6: bool) -> usize {
        if backend_v6 {
            self.outer_len_v6
        } else {
            self.outer_len_v4
        }
    }

    /// Whether the frame is re-encapsulated (an outer header is inserted).
    pub fn encapsulates(&self) -> bool {
        self.outer_len_v4 > 0
    }
}

impl Mode {
    /// This mode's row of [`MODES`].
    pub fn spec(self) -> &'static ModeSpec {
        &MODES[self.code() as usize]
    }

    /// The VIP entry's `mode` field value.
    pub fn code(self) -> u8 {
        match self {
            Mode::Dsr => 0,
            Mode::IpIp => 1,
            Mode::Gue { .. } => 2,
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The value of the mode's parameter (the VIP entry's `encap_port`); 0 without one.
    pub fn param(self) -> u16 {
        match self {
            Mode::Gue { port } => port,
            Mode::Dsr | Mode::IpIp => 0,
        }
    }

    /// The mode that a VIP entry's `mode` and `encap_port` fields describe.
    pub fn from_code(code: u32, param: u16) -> Option<Mode> {
        ModeSpec::by_code(code).map(|s| s.with_param(param))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_code_order_and_round_trip() {
        for (i, spec) in MODES.iter().enumerate() {
            assert_eq!(usize::from(spec.code), i, "{}", spec.name);
            let mode = spec.with_param(spec.param.map_or(0, |p| p.default));
            assert_eq!(mode.spec(), spec);
            assert_eq!(
                Mode::from_code(mode.code().into(), mode.param()),
                Some(mode)
            );
            assert_eq!(ModeSpec::by_name(spec.name), Some(spec));
            assert_eq!(spec.encapsulates(), spec.outer_len_v6 > 0);
        }
        assert_eq!(Mode::from_code(3, 0), None);
        assert_eq!(ModeSpec::by_name("nat"), None);
        assert_eq!(MODE_NAMES, ["dsr", "ipip", "gue"]);
        assert_eq!(MAX_OUTER_LEN, 48);
    }

    #[test]
    fn existing_modes_keep_their_codes() {
        // The register map's values of DSR and IP-in-IP are fixed: programmed devices and
        // the C header depend on them.
        assert_eq!(Mode::Dsr.code(), 0);
        assert_eq!(Mode::IpIp.code(), 1);
        assert_eq!(Mode::Gue { port: 6080 }.code(), 2);
        assert_eq!(Mode::Gue { port: 1 }.param(), 1);
        assert_eq!(Mode::IpIp.param(), 0);
    }
}
