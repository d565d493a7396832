//! What happens to a frame: forward (rewritten, to a backend), pass (to the host stack,
//! untouched), or drop (with a reason). Per-frame problems are verdicts, never errors.

/// Why a frame was dropped. The numeric codes are part of the contract: the hardware
/// reports them in its drop counters and `tuser`, so never renumber an existing reason,
/// only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// Fewer than 14 bytes: no complete Ethernet II header.
    TruncatedEthernet = 1,
    /// A VLAN tag (0x8100 / 0x88a8 / 0x9100) announced but its 4 bytes are missing.
    TruncatedVlan = 2,
    /// More than [`crate::parse::MAX_VLAN_TAGS`] VLAN tags.
    TooManyVlans = 3,
    /// IPv4 ethertype but fewer than 20 bytes of header.
    TruncatedIpv4 = 4,
    /// The version nibble does not match the ethertype (4 for 0x0800, 6 for 0x86dd).
    BadIpVersion = 5,
    /// IPv4 IHL < 5, or the options it announces run past the frame.
    BadIpv4Ihl = 6,
    /// IPv4 total length smaller than the header, or larger than the bytes present.
    BadIpv4TotalLength = 7,
    /// IPv6 ethertype but fewer than 40 bytes of header.
    TruncatedIpv6 = 8,
    /// IPv6 payload length larger than the bytes present.
    BadIpv6PayloadLength = 9,
    /// An IPv6 extension header runs past the payload.
    TruncatedIpv6Extension = 10,
    /// More than [`crate::parse::MAX_IPV6_EXTENSIONS`] IPv6 extension headers.
    Ipv6ExtensionChainTooDeep = 11,
    /// TCP header shorter than 20 bytes in the (first) fragment.
    TruncatedTcp = 12,
    /// TCP data offset < 5 or past the end of the IP payload.
    BadTcpDataOffset = 13,
    /// UDP header shorter than 8 bytes in the (first) fragment.
    TruncatedUdp = 14,
    /// UDP length field smaller than 8 or larger than the IP payload (unfragmented only).
    BadUdpLength = 15,
    /// ICMP / ICMPv6 message shorter than its 4-byte header.
    TruncatedIcmp = 16,
    /// The frame is for a VIP but neither the primary nor the secondary backend of its
    /// Maglev slot is up (and the flow table held no live backend for it).
    NoHealthyBackend = 17,
    /// The encapsulated frame would exceed the maximum frame size the engine supports.
    EncapTooLarge = 18,
    /// An IPv6 extension header or the TCP / UDP header would be read past the first
    /// [`crate::parse::PARSE_WINDOW`] bytes of the frame (long IPv6 extension chains).
    HeaderTooLong = 19,
}

impl DropReason {
    /// Every reason, in code order (for counters, docs and generated headers).
    pub const ALL: [DropReason; 19] = [
        DropReason::TruncatedEthernet,
        DropReason::TruncatedVlan,
        DropReason::TooManyVlans,
        DropReason::TruncatedIpv4,
        DropReason::BadIpVersion,
        DropReason::BadIpv4Ihl,
        DropReason::BadIpv4TotalLength,
        DropReason::TruncatedIpv6,
        DropReason::BadIpv6PayloadLength,
        DropReason::TruncatedIpv6Extension,
        DropReason::Ipv6ExtensionChainTooDeep,
        DropReason::TruncatedTcp,
        DropReason::BadTcpDataOffset,
        DropReason::TruncatedUdp,
        DropReason::BadUdpLength,
        DropReason::TruncatedIcmp,
        DropReason::NoHealthyBackend,
        DropReason::EncapTooLarge,
        DropReason::HeaderTooLong,
    ];
    /// Number of codes, including the unused code 0 (counter arrays are indexed by code).
    pub const COUNT: usize = Self::ALL.len() + 1;

    pub fn code(self) -> u8 {
        self as u8
    }

    /// Stable snake_case name used in JSON output, metrics and docs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TruncatedEthernet => "truncated_ethernet",
            DropReason::TruncatedVlan => "truncated_vlan",
            DropReason::TooManyVlans => "too_many_vlans",
            DropReason::TruncatedIpv4 => "truncated_ipv4",
            DropReason::BadIpVersion => "bad_ip_version",
            DropReason::BadIpv4Ihl => "bad_ipv4_ihl",
            DropReason::BadIpv4TotalLength => "bad_ipv4_total_length",
            DropReason::TruncatedIpv6 => "truncated_ipv6",
            DropReason::BadIpv6PayloadLength => "bad_ipv6_payload_length",
            DropReason::TruncatedIpv6Extension => "truncated_ipv6_extension",
            DropReason::Ipv6ExtensionChainTooDeep => "ipv6_extension_chain_too_deep",
            DropReason::TruncatedTcp => "truncated_tcp",
            DropReason::BadTcpDataOffset => "bad_tcp_data_offset",
            DropReason::TruncatedUdp => "truncated_udp",
            DropReason::BadUdpLength => "bad_udp_length",
            DropReason::TruncatedIcmp => "truncated_icmp",
            DropReason::NoHealthyBackend => "no_healthy_backend",
            DropReason::EncapTooLarge => "encap_too_large",
            DropReason::HeaderTooLong => "header_too_long",
        }
    }

    pub fn from_code(code: u8) -> Option<DropReason> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }
}

/// The outcome for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten and sent to `backend` (a global backend index) on behalf of `vip`.
    Forward { vip: u16, backend: u16 },
    /// Not for any VIP: hand to the host stack unchanged.
    Pass,
    /// Dropped and counted.
    Drop(DropReason),
}
