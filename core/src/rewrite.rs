//! Stage 6 — rewrite the frame for its backend.
//!
//! * **L2 DSR**: destination MAC := backend MAC, source MAC := our MAC; the rest of the
//!   frame (VLAN tags, IP packet, Ethernet padding) is unchanged. The backend holds the VIP
//!   on a loopback interface and answers the client directly.
//! * **IP-in-IP**: an outer IPv4 (protocol 4 / 41) or IPv6 (next header 4 / 41) header
//!   addressed to the backend is inserted after the L2 header (VLAN tags kept, the last
//!   ethertype set to the outer family); the inner datagram is copied without Ethernet
//!   padding. Outer source = the configured encapsulation prefix with its host bits taken
//!   from the flow hash, so ECMP and RSS downstream spread flows; IPv6 outer flow label =
//!   low 20 bits of the flow hash. Outer IPv4: TTL 64, ID 0, DF clear, TOS copied from the
//!   inner header, header checksum correct. Outer IPv6: hop limit 64, traffic class copied.
//!
//! The outer family follows the backend's address, not the inner packet's: IPv6 clients
//! can reach an IPv4-only backend network and vice versa.
//!
//! ## Host bits of the outer source
//! Only the flow hash's 32 bits are available, so the lowest `k = min(32, width - len)` bits
//! of the configured prefix address are replaced by the lowest `k` bits of the hash (`width`
//! = 32 or 128; a `len` beyond the width counts as the full width, so `k = 0` and the
//! prefix is used as is). For an IPv6 prefix shorter than /96 the bits between the prefix
//! and the low 32 are taken from the configured address, so an operator can fix them.
//!
//! ## Guarantees
//! [`rewrite`] never panics and never reads past `frame`. It trusts `parsed` only as far as
//! memory safety allows: the pipeline always hands it the parse of `frame`, but if the
//! offsets in `parsed` do not fit `frame` it returns the drop reason the parser would have
//! given for the same inconsistency ([`DropReason::TruncatedEthernet`] for an L2 header
//! that does not fit, [`DropReason::BadIpv4TotalLength`] /
//! [`DropReason::BadIpv6PayloadLength`] for a datagram that runs past the frame) instead of
//! inventing a reason that the hardware would have to count separately.
//!
//! `out` is cleared first and only grown with `extend_from_slice`, so once its capacity
//! covers [`MAX_FRAME_LEN`] no frame allocates. On `Err`, `out` is left empty.
//!
//! Short outputs are not padded to 60 bytes: padding is the transmitting MAC's job, and an
//! IP-in-IP frame is never shorter than its input frame minus its padding.

use crate::parse::{ParsedFrame, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::verdict::DropReason;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest frame an engine emits (jumbo); an encapsulation that would exceed it is dropped.
pub const MAX_FRAME_LEN: usize = 9216;

/// IP protocol number of an IPv4 datagram carried in IP (RFC 2003), outer IPv4 or IPv6.
pub const IPPROTO_IPIP: u8 = 4;
/// IP protocol number of an IPv6 datagram carried in IP (RFC 2473 / RFC 4213).
pub const IPPROTO_IPV6: u8 = 41;
/// TTL / hop limit of the outer header: the usual host default, so the tunnel survives a
/// routed fabric between the balancer and the backend.
pub const OUTER_HOP_LIMIT: u8 = 64;

/// Length of an Ethernet II header without VLAN tags.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Length of the outer IPv4 header (no options).
pub const OUTER_IPV4_LEN: usize = 20;
/// Length of the outer IPv6 header (no extension headers).
pub const OUTER_IPV6_LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Dsr,
    IpIp,
}

/// An address prefix whose host bits are filled from the flow hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncapSource<A> {
    pub prefix: A,
    pub len: u8,
}

/// Everything a rewrite needs besides the frame.
#[derive(Debug, Clone, Copy)]
pub struct RewriteParams {
    pub own_mac: [u8; 6],
    pub backend_mac: [u8; 6],
    pub backend_addr: IpAddr,
    pub encap_src_v4: EncapSource<Ipv4Addr>,
    pub encap_src_v6: EncapSource<Ipv6Addr>,
    pub hash: u32,
}

/// Byte ranges of the header fields this stage writes (RFC 894, RFC 791, RFC 8200).
mod field {
    pub type Field = core::ops::Range<usize>;

    pub const ETH_DESTINATION: Field = 0..6;
    pub const ETH_SOURCE: Field = 6..12;

    pub const IPV4_VER_IHL: usize = 0;
    pub const IPV4_TOS: usize = 1;
    pub const IPV4_LENGTH: Field = 2..4;
    // Identification (4..6) and flags / fragment offset (6..8) stay zero.
    pub const IPV4_TTL: usize = 8;
    pub const IPV4_PROTOCOL: usize = 9;
    pub const IPV4_CHECKSUM: Field = 10..12;
    pub const IPV4_SOURCE: Field = 12..16;
    pub const IPV4_DESTINATION: Field = 16..20;

    pub const IPV6_VER_TC_FLOW: Field = 0..4;
    pub const IPV6_PAYLOAD_LENGTH: Field = 4..6;
    pub const IPV6_NEXT_HEADER: usize = 6;
    pub const IPV6_HOP_LIMIT: usize = 7;
    pub const IPV6_SOURCE: Field = 8..24;
    pub const IPV6_DESTINATION: Field = 24..40;
}

/// Write the rewritten frame into `out` (cleared first).
///
/// See the module doc for what each [`Mode`] emits and for the errors. The only error the
/// pipeline can see is [`DropReason::EncapTooLarge`]: an IP-in-IP frame longer than
/// [`MAX_FRAME_LEN`]. DSR never grows a frame, so it is never too large.
pub fn rewrite(
    frame: &[u8],
    parsed: &ParsedFrame,
    mode: Mode,
    params: &RewriteParams,
    out: &mut Vec<u8>,
) -> Result<(), DropReason> {
    out.clear();
    match mode {
        Mode::Dsr => rewrite_dsr(frame, params, out),
        Mode::IpIp => encapsulate(frame, parsed, params, out),
    }
}

fn rewrite_dsr(frame: &[u8], params: &RewriteParams, out: &mut Vec<u8>) -> Result<(), DropReason> {
    if frame.len() < ETHERNET_HEADER_LEN {
        return Err(DropReason::TruncatedEthernet);
    }
    out.extend_from_slice(frame);
    write_macs(out, params);
    Ok(())
}

fn encapsulate(
    frame: &[u8],
    parsed: &ParsedFrame,
    params: &RewriteParams,
    out: &mut Vec<u8>,
) -> Result<(), DropReason> {
    let l3_offset = usize::from(parsed.l3_offset);
    let ip_len = usize::from(parsed.ip_len);
    let l2_header = frame
        .get(..l3_offset)
        .filter(|l2| l2.len() >= ETHERNET_HEADER_LEN)
        .ok_or(DropReason::TruncatedEthernet)?;
    let inner = frame
        .get(l3_offset..l3_offset + ip_len)
        .ok_or(if parsed.is_ipv6() {
            DropReason::BadIpv6PayloadLength
        } else {
            DropReason::BadIpv4TotalLength
        })?;
    let inner_protocol = if parsed.is_ipv6() {
        IPPROTO_IPV6
    } else {
        IPPROTO_IPIP
    };
    let (ethertype, outer_len) = match params.backend_addr {
        IpAddr::V4(_) => (ETHERTYPE_IPV4, OUTER_IPV4_LEN),
        IpAddr::V6(_) => (ETHERTYPE_IPV6, OUTER_IPV6_LEN),
    };
    if l3_offset + outer_len + ip_len > MAX_FRAME_LEN {
        return Err(DropReason::EncapTooLarge);
    }

    out.extend_from_slice(l2_header);
    write_macs(out, params);
    // The last ethertype sits just before the IP header, after any VLAN tags.
    out[l3_offset - 2..l3_offset].copy_from_slice(&ethertype.to_be_bytes());
    match params.backend_addr {
        IpAddr::V4(backend) => {
            let source = encap_source_v4(params.encap_src_v4, params.hash);
            // Cannot truncate: `ip_len` ≤ MAX_FRAME_LEN was checked above.
            let total_len = (OUTER_IPV4_LEN + ip_len) as u16;
            out.extend_from_slice(&outer_ipv4_header(
                source,
                backend,
                parsed.dscp_ecn,
                total_len,
                inner_protocol,
            ));
        }
        IpAddr::V6(backend) => {
            let source = encap_source_v6(params.encap_src_v6, params.hash);
            out.extend_from_slice(&outer_ipv6_header(
                source,
                backend,
                parsed.dscp_ecn,
                params.hash,
                parsed.ip_len,
                inner_protocol,
            ));
        }
    }
    out.extend_from_slice(inner);
    Ok(())
}

fn write_macs(out: &mut [u8], params: &RewriteParams) {
    out[field::ETH_DESTINATION].copy_from_slice(&params.backend_mac);
    out[field::ETH_SOURCE].copy_from_slice(&params.own_mac);
}

fn outer_ipv4_header(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    tos: u8,
    total_len: u16,
    protocol: u8,
) -> [u8; OUTER_IPV4_LEN] {
    let mut header = [0u8; OUTER_IPV4_LEN];
    header[field::IPV4_VER_IHL] = 0x45;
    header[field::IPV4_TOS] = tos;
    header[field::IPV4_LENGTH].copy_from_slice(&total_len.to_be_bytes());
    header[field::IPV4_TTL] = OUTER_HOP_LIMIT;
    header[field::IPV4_PROTOCOL] = protocol;
    header[field::IPV4_SOURCE].copy_from_slice(&source.octets());
    header[field::IPV4_DESTINATION].copy_from_slice(&destination.octets());
    let checksum = ipv4_header_checksum(&header);
    header[field::IPV4_CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    header
}

fn outer_ipv6_header(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    traffic_class: u8,
    hash: u32,
    payload_len: u16,
    next_header: u8,
) -> [u8; OUTER_IPV6_LEN] {
    let mut header = [0u8; OUTER_IPV6_LEN];
    let ver_tc_flow = (6u32 << 28) | (u32::from(traffic_class) << 20) | (hash & 0xF_FFFF);
    header[field::IPV6_VER_TC_FLOW].copy_from_slice(&ver_tc_flow.to_be_bytes());
    header[field::IPV6_PAYLOAD_LENGTH].copy_from_slice(&payload_len.to_be_bytes());
    header[field::IPV6_NEXT_HEADER] = next_header;
    header[field::IPV6_HOP_LIMIT] = OUTER_HOP_LIMIT;
    header[field::IPV6_SOURCE].copy_from_slice(&source.octets());
    header[field::IPV6_DESTINATION].copy_from_slice(&destination.octets());
    header
}

/// The mask of the low bits of an address of `width` bits that the hash fills, for a
/// prefix of `len` bits: `min(32, width - len)` ones (none when `len ≥ width`).
fn hash_host_mask(width: u8, len: u8) -> u32 {
    let bits = width.saturating_sub(len).min(32);
    ((1u64 << bits) - 1) as u32
}

/// The outer IPv4 source for a flow: `source.prefix` with its host bits from `hash`.
pub fn encap_source_v4(source: EncapSource<Ipv4Addr>, hash: u32) -> Ipv4Addr {
    let host = hash_host_mask(32, source.len);
    Ipv4Addr::from((u32::from(source.prefix) & !host) | (hash & host))
}

/// The outer IPv6 source for a flow: `source.prefix` with its lowest
/// `min(32, 128 - len)` bits from `hash`.
pub fn encap_source_v6(source: EncapSource<Ipv6Addr>, hash: u32) -> Ipv6Addr {
    let host = u128::from(hash_host_mask(128, source.len));
    Ipv6Addr::from((u128::from(source.prefix) & !host) | (u128::from(hash) & host))
}

/// The header checksum an IPv4 header must carry (RFC 791, computed as in RFC 1071).
///
/// It is the ones' complement of the ones' complement sum of the header's big-endian 16-bit
/// words, with the checksum field itself (bytes 10..12) taken as zero — so the result does
/// not depend on what the field holds, and a received header is valid when the result
/// equals its bytes 10..12. A trailing odd byte counts as the high byte of a word whose low
/// byte is zero; any length is accepted (the function never panics).
///
/// The sum is kept in 16 bits with an end-around carry after every word (a carry out of
/// bit 15 is added back into bit 0), which is the adder the hardware instantiates; since
/// ones' complement addition is associative and commutative, an adder tree over the ten
/// words of a header, folded once at the end, gives the same bits.
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    const CHECKSUM_WORD: usize = field::IPV4_CHECKSUM.start / 2;
    let sum = header
        .chunks(2)
        .enumerate()
        .filter(|&(index, _)| index != CHECKSUM_WORD)
        .map(|(_, word)| u16::from_be_bytes([word[0], word.get(1).copied().unwrap_or(0)]))
        .fold(0u16, ones_complement_add);
    !sum
}

/// 16-bit ones' complement addition: add, then feed the carry back into bit 0. The second
/// addition cannot carry again (a carry leaves at most 0xfffe in the low 16 bits).
fn ones_complement_add(a: u16, b: u16) -> u16 {
    let (sum, carry) = a.overflowing_add(b);
    sum + u16::from(carry)
}
