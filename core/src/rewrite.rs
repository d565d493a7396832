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
//! * **GUE** (variant 1, direct IP-in-UDP, as Katran sends it): the IP-in-IP outer header
//!   with protocol / next header 17, then an 8-byte UDP header, then the inner datagram (no
//!   GUE header: the receiver tells IPv4 from IPv6 by the inner version nibble). UDP source
//!   port = `0xC000 | hash >> 18` (the flow hash's top 14 bits in the dynamic range, for
//!   ECMP entropy; see [`gue_source_port`]), destination port = the VIP's `gue_port`, length
//!   = 8 + inner length. UDP checksum 0 under an outer IPv4 header (RFC 768 allows it and
//!   tunnel receivers expect it), computed under an outer IPv6 header (RFC 8200 §8.1
//!   forbids 0 there; a result of 0 is sent as 0xFFFF).
//!
//! [`modes::MODES`] describes every mode (name, code, parameter, outer length).
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
//! [`rewrite`] never panics and never reads past `frame`. It trusts `datagram` only as far as
//! memory safety allows: the pipeline always hands it the parse of `frame`, but if the
//! offsets in `datagram` do not fit `frame` it returns the drop reason the parser would have
//! given for the same inconsistency ([`DropReason::TruncatedEthernet`] for an L2 header
//! that does not fit, [`DropReason::BadIpv4TotalLength`] /
//! [`DropReason::BadIpv6PayloadLength`] for a datagram that runs past the frame) instead of
//! inventing a reason that the hardware would have to count separately.
//!
//! `out` is cleared first and only grown with `extend_from_slice`, so once its capacity
//! covers [`MAX_FRAME_LEN`] no frame allocates. On `Err`, `out` is left empty.
//!
//! An encapsulated frame can be shorter than the 60-byte Ethernet minimum (a tiny inner
//! datagram whose padding was dropped, e.g. a bare ICMP header in IPv4 in IPv4: 58 bytes).
//! It is not padded here: padding is the transmitting MAC's job.

pub mod modes;

pub use modes::{Mode, ModeSpec, GUE_DEFAULT_PORT, MAX_OUTER_LEN, MODES};

use crate::parse::{ParsedFrame, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_UDP};
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
/// Length of GUE's UDP header (variant 1 has no GUE header after it).
pub const UDP_HEADER_LEN: usize = 8;

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

    pub const UDP_SOURCE: Field = 0..2;
    pub const UDP_DESTINATION: Field = 2..4;
    pub const UDP_LENGTH: Field = 4..6;
    pub const UDP_CHECKSUM: Field = 6..8;
}

/// What the rewrite reads of a parsed frame: where the IP datagram lies and what an outer
/// header copies from it. The stateful half carries this instead of the whole
/// [`ParsedFrame`] (two addresses it never reads), so a burst's per-frame records stay
/// small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// [`ParsedFrame::l3_offset`].
    pub l3_offset: u16,
    /// [`ParsedFrame::ip_len`].
    pub ip_len: u16,
    /// [`ParsedFrame::is_ipv6`].
    pub ipv6: bool,
    /// [`ParsedFrame::dscp_ecn`].
    pub dscp_ecn: u8,
}

impl From<&ParsedFrame> for Datagram {
    #[inline]
    fn from(p: &ParsedFrame) -> Datagram {
        Datagram {
            l3_offset: p.l3_offset,
            ip_len: p.ip_len,
            ipv6: p.is_ipv6(),
            dscp_ecn: p.dscp_ecn,
        }
    }
}

/// Write the rewritten frame into `out` (cleared first).
///
/// See the module doc for what each [`Mode`] emits and for the errors. The only error the
/// pipeline can see is [`DropReason::EncapTooLarge`]: an IP-in-IP or GUE frame longer than
/// [`MAX_FRAME_LEN`]. DSR never grows a frame, so it is never too large.
#[inline]
pub fn rewrite(
    frame: &[u8],
    datagram: impl Into<Datagram>,
    mode: Mode,
    params: &RewriteParams,
    out: &mut Vec<u8>,
) -> Result<(), DropReason> {
    out.clear();
    match mode {
        Mode::Dsr => rewrite_dsr(frame, params, out),
        Mode::IpIp | Mode::Gue { .. } => encapsulate(frame, &datagram.into(), mode, params, out),
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

/// What an encapsulating rewrite (IP-in-IP, GUE) puts around the inner datagram, checked
/// against the frame: [`rewrite`] and [`rewrite_in_place`] both emit `L2 header (MACs and
/// last ethertype rewritten) ‖ outer header(s) ‖ frame[l3_offset..l3_offset + ip_len]`.
/// The outer header(s) are written straight to their place by [`Encap::write_outer`] (no
/// stack buffer to copy: ~100 instructions a frame under IPv6).
struct Encap {
    l3_offset: usize,
    ip_len: usize,
    ethertype: u16,
    outer_len: usize,
    /// The outer IP header's protocol (UDP under GUE, else the inner datagram's).
    protocol: u8,
    gue_port: Option<u16>,
    dscp_ecn: u8,
}

#[inline]
fn encap_plan(
    frame: &[u8],
    datagram: &Datagram,
    mode: Mode,
    params: &RewriteParams,
) -> Result<Encap, DropReason> {
    let l3_offset = usize::from(datagram.l3_offset);
    let ip_len = usize::from(datagram.ip_len);
    if l3_offset < ETHERNET_HEADER_LEN || frame.len() < l3_offset {
        return Err(DropReason::TruncatedEthernet);
    }
    if frame.len() < l3_offset + ip_len {
        return Err(if datagram.ipv6 {
            DropReason::BadIpv6PayloadLength
        } else {
            DropReason::BadIpv4TotalLength
        });
    }
    let inner_protocol = if datagram.ipv6 {
        IPPROTO_IPV6
    } else {
        IPPROTO_IPIP
    };
    let gue_port = match mode {
        Mode::Gue { port } => Some(port),
        Mode::Dsr | Mode::IpIp => None,
    };
    // The outer IP header carries UDP under GUE, the inner datagram itself under IP-in-IP.
    let protocol = match gue_port {
        Some(_) => IPPROTO_UDP,
        None => inner_protocol,
    };
    let backend_v6 = params.backend_addr.is_ipv6();
    let ethertype = if backend_v6 {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    };
    let outer_len = mode.spec().outer_len(backend_v6);
    if l3_offset + outer_len + ip_len > MAX_FRAME_LEN {
        return Err(DropReason::EncapTooLarge);
    }
    Ok(Encap {
        l3_offset,
        ip_len,
        ethertype,
        outer_len,
        protocol,
        gue_port,
        dscp_ecn: datagram.dscp_ecn,
    })
}

impl Encap {
    /// Rewrite the L2 header `l2` (the frame's first `l3_offset` bytes) for the backend.
    #[inline]
    fn write_l2(&self, l2: &mut [u8], params: &RewriteParams) {
        write_macs(l2, params);
        // The last ethertype sits just before the IP header, after any VLAN tags.
        l2[self.l3_offset - 2..self.l3_offset].copy_from_slice(&self.ethertype.to_be_bytes());
    }

    /// Write the outer header(s) to `outer` (`outer_len` bytes) for the inner datagram
    /// `inner` (`ip_len` bytes; GUE's IPv6 UDP checksum covers it).
    #[inline]
    fn write_outer(&self, outer: &mut [u8], inner: &[u8], params: &RewriteParams) {
        let udp_len = match self.gue_port {
            Some(_) => UDP_HEADER_LEN,
            None => 0,
        };
        // Cannot truncate: the whole frame is at most MAX_FRAME_LEN (`encap_plan`).
        let ip_payload_len = (udp_len + self.ip_len) as u16;
        match params.backend_addr {
            IpAddr::V4(backend) => {
                let source = encap_source_v4(params.encap_src_v4, params.hash);
                outer[..OUTER_IPV4_LEN].copy_from_slice(&outer_ipv4_header(
                    source,
                    backend,
                    self.dscp_ecn,
                    OUTER_IPV4_LEN as u16 + ip_payload_len,
                    self.protocol,
                ));
                if let Some(port) = self.gue_port {
                    let udp = udp_header(params.hash, port, ip_payload_len, |_| 0);
                    outer[OUTER_IPV4_LEN..self.outer_len].copy_from_slice(&udp);
                }
            }
            IpAddr::V6(backend) => {
                let source = encap_source_v6(params.encap_src_v6, params.hash);
                outer[..OUTER_IPV6_LEN].copy_from_slice(&outer_ipv6_header(
                    source,
                    backend,
                    self.dscp_ecn,
                    params.hash,
                    ip_payload_len,
                    self.protocol,
                ));
                if let Some(port) = self.gue_port {
                    let udp = udp_header(params.hash, port, ip_payload_len, |udp| {
                        udp_ipv6_checksum(source, backend, udp, inner)
                    });
                    outer[OUTER_IPV6_LEN..self.outer_len].copy_from_slice(&udp);
                }
            }
        }
    }
}

fn encapsulate(
    frame: &[u8],
    datagram: &Datagram,
    mode: Mode,
    params: &RewriteParams,
    out: &mut Vec<u8>,
) -> Result<(), DropReason> {
    let e = encap_plan(frame, datagram, mode, params)?;
    let inner = &frame[e.l3_offset..e.l3_offset + e.ip_len];
    // One growth at most, and none once `out` has held a frame this large.
    out.reserve(e.l3_offset + e.outer_len + e.ip_len);
    out.extend_from_slice(&frame[..e.l3_offset]);
    e.write_l2(out, params);
    out.resize(e.l3_offset + e.outer_len, 0);
    e.write_outer(&mut out[e.l3_offset..], inner, params);
    out.extend_from_slice(inner);
    Ok(())
}

/// What [`rewrite_in_place`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InPlace {
    /// The rewritten frame is `buf[range]`.
    Done(core::ops::Range<usize>),
    /// The outer header does not fit the room in front of the frame; nothing was
    /// written (use [`rewrite`] into a buffer of its own).
    NoRoom,
}

/// [`rewrite`] without copying the frame, for engines whose frame buffers have free room
/// in front of the frame (a DPDK mbuf's headroom): `buf[start..]` is the received frame
/// and `buf[..start]` may be overwritten. DSR writes the two MACs; IP-in-IP and GUE move
/// the L2 header `outer_len` bytes to the front (at most [`MAX_OUTER_LEN`]), rewrite it,
/// write the outer header(s) between it and the inner datagram and leaves the Ethernet padding out of the returned range.
///
/// The returned range of `buf` holds exactly the bytes [`rewrite`] would write to `out`,
/// and the errors are the same; on `Err` or [`InPlace::NoRoom`] `buf` is unchanged.
#[inline]
pub fn rewrite_in_place(
    buf: &mut [u8],
    start: usize,
    datagram: impl Into<Datagram>,
    mode: Mode,
    params: &RewriteParams,
) -> Result<InPlace, DropReason> {
    let Some(frame) = buf.get(start..) else {
        return Err(DropReason::TruncatedEthernet);
    };
    match mode {
        Mode::Dsr => {
            if frame.len() < ETHERNET_HEADER_LEN {
                return Err(DropReason::TruncatedEthernet);
            }
            write_macs(&mut buf[start..], params);
            Ok(InPlace::Done(start..buf.len()))
        }
        Mode::IpIp | Mode::Gue { .. } => {
            let e = encap_plan(frame, &datagram.into(), mode, params)?;
            let Some(front) = start.checked_sub(e.outer_len) else {
                return Ok(InPlace::NoRoom);
            };
            buf.copy_within(start..start + e.l3_offset, front);
            e.write_l2(&mut buf[front..front + e.l3_offset], params);
            // The outer header(s) end where the inner datagram starts.
            let (head, tail) = buf.split_at_mut(start + e.l3_offset);
            e.write_outer(&mut head[front + e.l3_offset..], &tail[..e.ip_len], params);
            Ok(InPlace::Done(front..start + e.l3_offset + e.ip_len))
        }
    }
}

#[inline]
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

/// GUE's outer UDP source port for a flow: the hash's top 14 bits in the dynamic port range
/// (RFC 6335: 49152..=65535), so routers' ECMP and NICs' RSS spread flows (as RFC 8086
/// asks of UDP tunnels), no port is 0 and none looks like a well-known service. The top
/// bits are the ones the outer source address and the IPv6 flow label use least.
pub fn gue_source_port(hash: u32) -> u16 {
    0xC000 | (hash >> 18) as u16
}

/// GUE's UDP header; `checksum` gets the header with a zero checksum field and returns
/// the value to write.
fn udp_header(
    hash: u32,
    port: u16,
    length: u16,
    checksum: impl FnOnce(&[u8; UDP_HEADER_LEN]) -> u16,
) -> [u8; UDP_HEADER_LEN] {
    let mut header = [0u8; UDP_HEADER_LEN];
    header[field::UDP_SOURCE].copy_from_slice(&gue_source_port(hash).to_be_bytes());
    header[field::UDP_DESTINATION].copy_from_slice(&port.to_be_bytes());
    header[field::UDP_LENGTH].copy_from_slice(&length.to_be_bytes());
    let sum = checksum(&header);
    header[field::UDP_CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    header
}

/// The UDP checksum under an IPv6 header (RFC 8200 §8.1): the ones' complement of the sum
/// of the pseudo-header (addresses, upper-layer length, next header 17), the UDP header
/// (checksum field zero) and the payload; 0 is sent as 0xFFFF.
fn udp_ipv6_checksum(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    header: &[u8; UDP_HEADER_LEN],
    payload: &[u8],
) -> u16 {
    let length = (UDP_HEADER_LEN + payload.len()) as u32;
    let pseudo = ones_complement_sum(&source.octets(), 0)
        + ones_complement_sum(&destination.octets(), 0)
        + u64::from(length)
        + u64::from(IPPROTO_UDP);
    let sum = ones_complement_sum(payload, ones_complement_sum(header, pseudo));
    match !fold_ones_complement(sum) {
        0 => 0xffff,
        c => c,
    }
}

/// `initial` plus the big-endian 16-bit words of `data` (a trailing odd byte is a high
/// byte), unfolded: a u64 cannot overflow on any frame, and folding once at the end gives
/// the same bits as the end-around carry after every word (RFC 1071 §2).
fn ones_complement_sum(data: &[u8], initial: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    let mut sum = initial;
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// A ones' complement sum folded to 16 bits.
fn fold_ones_complement(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
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

#[cfg(test)]
mod tests {
    //! Outputs are read back with etherparse, an independent implementation, so these
    //! tests check the wire format rather than restating the code above.

    use super::*;
    use crate::parse::{IPPROTO_TCP, IPPROTO_UDP, TCP_SYN};
    use etherparse::{
        IpDscp, IpEcn, IpHeaders, IpNumber, Ipv4Header, Ipv4HeaderSlice, Ipv4Options,
        Ipv6FlowLabel, Ipv6Header, LinkExtSlice, NetSlice, PacketBuilder, SlicedPacket,
        TransportSlice, VlanId,
    };
    use proptest::prelude::*;

    const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x1e, 0x47, 0x00, 0x01];
    const ROUTER_FACING_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x10];
    const OWN_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];
    const BACKEND_MAC: [u8; 6] = [0x02, 0xbe, 0xef, 0x00, 0x00, 0x07];
    const HASH: u32 = 0xdead_beef;
    const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VIP_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
    const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x10);
    const BACKEND_V4: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
    const BACKEND_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 0, 0, 0, 0, 0, 3);
    const PAD_BYTE: u8 = 0xa5;

    /// The client frame a test sends through the balancer.
    #[derive(Debug, Clone, Copy)]
    struct Spec {
        inner_v6: bool,
        tcp: bool,
        vlans: u8,
        /// Ethernet padding appended after the IP datagram.
        padding: usize,
        dscp_ecn: u8,
        payload_len: usize,
        /// Four bytes of IPv4 options (NOP NOP NOP EOL); ignored for IPv6.
        ipv4_options: bool,
    }

    impl Default for Spec {
        fn default() -> Self {
            Spec {
                inner_v6: false,
                tcp: true,
                vlans: 0,
                padding: 0,
                dscp_ecn: 0xb9, // DSCP 46 (EF), ECN 1 — both halves non-zero
                payload_len: 100,
                ipv4_options: false,
            }
        }
    }

    /// Build the frame with etherparse and describe it the way the parser would.
    fn client_frame(spec: Spec) -> (Vec<u8>, ParsedFrame) {
        let (ip, ip_header_len, src, dst) = if spec.inner_v6 {
            let header = Ipv6Header {
                traffic_class: spec.dscp_ecn,
                flow_label: Ipv6FlowLabel::try_new(0x1_2345).unwrap(),
                payload_length: 0,
                next_header: IpNumber::TCP,
                hop_limit: 61,
                source: CLIENT_V6.octets(),
                destination: VIP_V6.octets(),
            };
            let ip = IpHeaders::Ipv6(header, Default::default());
            (ip, 40, IpAddr::V6(CLIENT_V6), IpAddr::V6(VIP_V6))
        } else {
            let mut header =
                Ipv4Header::new(0, 61, IpNumber::TCP, CLIENT_V4.octets(), VIP_V4.octets()).unwrap();
            header.dscp = IpDscp::try_new(spec.dscp_ecn >> 2).unwrap();
            header.ecn = IpEcn::try_new(spec.dscp_ecn & 3).unwrap();
            header.identification = 0x4242;
            header.dont_fragment = true;
            if spec.ipv4_options {
                header.options = Ipv4Options::try_from(&[1u8, 1, 1, 0][..]).unwrap();
            }
            let header_len = header.header_len();
            let ip = IpHeaders::Ipv4(header, Default::default());
            (ip, header_len, IpAddr::V4(CLIENT_V4), IpAddr::V4(VIP_V4))
        };
        let eth = PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_FACING_MAC);
        let ip_step = match spec.vlans {
            0 => eth.ip(ip),
            1 => eth.single_vlan(VlanId::try_new(100).unwrap()).ip(ip),
            _ => eth
                .double_vlan(VlanId::try_new(200).unwrap(), VlanId::try_new(100).unwrap())
                .ip(ip),
        };
        let payload: Vec<u8> = (0..spec.payload_len).map(|i| i as u8).collect();
        let mut frame = Vec::new();
        let (protocol, dst_port, tcp_flags) = if spec.tcp {
            ip_step
                .tcp(40_000, 80, 1, 64_240)
                .syn()
                .write(&mut frame, &payload)
                .unwrap();
            (IPPROTO_TCP, 80, TCP_SYN)
        } else {
            ip_step.udp(40_000, 53).write(&mut frame, &payload).unwrap();
            (IPPROTO_UDP, 53, 0)
        };
        let l3_offset = 14 + 4 * usize::from(spec.vlans);
        let ip_len = frame.len() - l3_offset;
        frame.resize(frame.len() + spec.padding, PAD_BYTE);
        let parsed = ParsedFrame {
            vlan_count: spec.vlans,
            l3_offset: l3_offset as u16,
            src,
            dst,
            ip_len: ip_len as u16,
            protocol,
            l4_offset: (l3_offset + ip_header_len) as u16,
            fragment: false,
            src_port: 40_000,
            dst_port,
            tcp_flags,
            dscp_ecn: spec.dscp_ecn,
        };
        (frame, parsed)
    }

    fn params(backend: IpAddr, hash: u32) -> RewriteParams {
        RewriteParams {
            own_mac: OWN_MAC,
            backend_mac: BACKEND_MAC,
            backend_addr: backend,
            encap_src_v4: crate::Tables::default().encap_src_v4,
            encap_src_v6: crate::Tables::default().encap_src_v6,
            hash,
        }
    }

    /// Bit-by-bit statement of the host-bit rule (independent of the mask arithmetic):
    /// bit i (from the least significant) comes from the hash when i < 32 and i is a host
    /// bit, else from the configured prefix.
    fn expected_source(prefix: u128, width: u32, len: u8, hash: u32) -> u128 {
        (0..width).fold(0u128, |address, i| {
            let from_hash = i < 32 && i < width.saturating_sub(u32::from(len));
            let bit = if from_hash {
                (hash >> i) & 1 == 1
            } else {
                (prefix >> i) & 1 == 1
            };
            address | (u128::from(bit) << i)
        })
    }

    fn vlan_ids(packet: &SlicedPacket) -> Vec<u16> {
        packet
            .link_exts
            .iter()
            .filter_map(|ext| match ext {
                LinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
                _ => None,
            })
            .collect()
    }

    /// The inner datagram's own checksums (IPv4 header, TCP / UDP) verify, and its L4
    /// protocol is the one the frame was built with.
    fn assert_inner_checksums(inner: &[u8], protocol: u8) {
        let packet = SlicedPacket::from_ip(inner).expect("inner datagram parses");
        let (src, dst): (Vec<u8>, Vec<u8>) = match &packet.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                (h.source().to_vec(), h.destination().to_vec())
            }
            Some(NetSlice::Ipv6(ip)) => (
                ip.header().source().to_vec(),
                ip.header().destination().to_vec(),
            ),
            Some(NetSlice::Arp(_)) | None => panic!("inner datagram is not IP"),
        };
        match (&packet.transport, protocol) {
            (Some(TransportSlice::Tcp(tcp)), IPPROTO_TCP) => {
                let expected = if src.len() == 4 {
                    tcp.calc_checksum_ipv4(src[..].try_into().unwrap(), dst[..].try_into().unwrap())
                } else {
                    tcp.calc_checksum_ipv6(src[..].try_into().unwrap(), dst[..].try_into().unwrap())
                };
                assert_eq!(tcp.checksum(), expected.unwrap(), "inner TCP checksum");
            }
            (Some(TransportSlice::Udp(udp)), IPPROTO_UDP) => {
                let header = udp.to_header();
                let expected = if src.len() == 4 {
                    header.calc_checksum_ipv4_raw(
                        src[..].try_into().unwrap(),
                        dst[..].try_into().unwrap(),
                        udp.payload(),
                    )
                } else {
                    header.calc_checksum_ipv6_raw(
                        src[..].try_into().unwrap(),
                        dst[..].try_into().unwrap(),
                        udp.payload(),
                    )
                };
                assert_eq!(udp.checksum(), expected.unwrap(), "inner UDP checksum");
            }
            (other, _) => panic!("inner transport {other:?}, expected protocol {protocol}"),
        }
    }

    /// Everything the IP-in-IP contract says about `out`, read back with etherparse.
    fn assert_encapsulation(frame: &[u8], parsed: &ParsedFrame, p: &RewriteParams, out: &[u8]) {
        assert_encapsulated(frame, parsed, Mode::IpIp, p, out);
    }

    /// Everything the IP-in-IP or GUE contract says about `out`, read back with etherparse
    /// (Ethernet, VLANs, outer IP, and for GUE the UDP header and its checksum).
    fn assert_encapsulated(
        frame: &[u8],
        parsed: &ParsedFrame,
        mode: Mode,
        p: &RewriteParams,
        out: &[u8],
    ) {
        let l3 = usize::from(parsed.l3_offset);
        let ip_len = usize::from(parsed.ip_len);
        let inner = &frame[l3..l3 + ip_len];
        let gue_port = match mode {
            Mode::Gue { port } => Some(port),
            Mode::IpIp => None,
            Mode::Dsr => panic!("DSR does not encapsulate"),
        };
        let udp_len = if gue_port.is_some() { 8 } else { 0 };
        let outer_protocol = match (gue_port, parsed.is_ipv6()) {
            (Some(_), _) => 17,
            (None, true) => 41,
            (None, false) => 4,
        };
        let (outer_len, ethertype) = match p.backend_addr {
            IpAddr::V4(_) => (20 + udp_len, [0x08, 0x00]),
            IpAddr::V6(_) => (40 + udp_len, [0x86, 0xdd]),
        };

        // L2: new MACs, the frame's VLAN tags byte for byte, the outer family's ethertype,
        // and no Ethernet padding carried over.
        assert_eq!(out.len(), l3 + outer_len + ip_len);
        assert_eq!(out[0..6], BACKEND_MAC);
        assert_eq!(out[6..12], OWN_MAC);
        assert_eq!(out[12..l3 - 2], frame[12..l3 - 2], "VLAN tags");
        assert_eq!(out[l3 - 2..l3], ethertype);

        let packet = SlicedPacket::from_ethernet(out).expect("output parses");
        let original = SlicedPacket::from_ethernet(frame).expect("input parses");
        assert_eq!(vlan_ids(&packet), vlan_ids(&original));
        let (carried, source, destination): (&[u8], Vec<u8>, Vec<u8>) =
            match (&packet.net, p.backend_addr) {
                (Some(NetSlice::Ipv4(ip)), IpAddr::V4(backend)) => {
                    let h = ip.header();
                    let src = p.encap_src_v4;
                    let expected_src =
                        expected_source(u32::from(src.prefix).into(), 32, src.len, p.hash);
                    assert_eq!(h.version(), 4);
                    assert_eq!(h.ihl(), 5);
                    assert_eq!(h.dcp().value() << 2 | h.ecn().value(), parsed.dscp_ecn);
                    assert_eq!(usize::from(h.total_len()), 20 + udp_len + ip_len);
                    assert_eq!(h.identification(), 0);
                    assert!(!h.dont_fragment() && !h.more_fragments());
                    assert_eq!(h.fragments_offset().value(), 0);
                    assert_eq!(h.ttl(), 64);
                    assert_eq!(h.protocol().0, outer_protocol);
                    assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                    assert_eq!(u128::from(u32::from(h.source_addr())), expected_src);
                    assert_eq!(h.destination_addr(), backend);
                    let (s, d) = (h.source().to_vec(), h.destination().to_vec());
                    (ip.payload().payload, s, d)
                }
                (Some(NetSlice::Ipv6(ip)), IpAddr::V6(backend)) => {
                    let h = ip.header();
                    let src = p.encap_src_v6;
                    let expected_src = expected_source(src.prefix.into(), 128, src.len, p.hash);
                    assert_eq!(h.version(), 6);
                    assert_eq!(h.traffic_class(), parsed.dscp_ecn);
                    assert_eq!(h.flow_label().value(), p.hash & 0xf_ffff);
                    assert_eq!(usize::from(h.payload_length()), udp_len + ip_len);
                    assert_eq!(h.next_header().0, outer_protocol);
                    assert_eq!(h.hop_limit(), 64);
                    assert_eq!(u128::from(h.source_addr()), expected_src);
                    assert_eq!(h.destination_addr(), backend);
                    assert!(ip.extensions().is_empty());
                    let (s, d) = (h.source().to_vec(), h.destination().to_vec());
                    (ip.payload().payload, s, d)
                }
                (net, backend) => panic!("outer {net:?} for backend {backend}"),
            };
        match gue_port {
            None => assert_eq!(carried, inner, "inner datagram"),
            Some(port) => {
                let Some(TransportSlice::Udp(udp)) = &packet.transport else {
                    panic!("GUE output carries {:?}, not UDP", packet.transport);
                };
                assert!(
                    udp.source_port() >= 49152,
                    "source port in the dynamic range"
                );
                assert_eq!(udp.source_port() & 0x3fff, (p.hash >> 18) as u16);
                assert_eq!(udp.destination_port(), port);
                assert_eq!(usize::from(udp.length()), 8 + ip_len);
                // Variant 1: no GUE header, the inner datagram follows UDP directly.
                assert_eq!(udp.payload(), inner, "inner datagram");
                let header = udp.to_header();
                if source.len() == 4 {
                    assert_eq!(udp.checksum(), 0, "no UDP checksum under IPv4");
                } else {
                    let expected = header
                        .calc_checksum_ipv6_raw(
                            source[..].try_into().unwrap(),
                            destination[..].try_into().unwrap(),
                            udp.payload(),
                        )
                        .unwrap();
                    assert_ne!(udp.checksum(), 0, "IPv6 forbids a zero UDP checksum");
                    assert_eq!(udp.checksum(), expected, "outer UDP checksum");
                }
            }
        }
        assert_inner_checksums(inner, parsed.protocol);
    }

    /// Every VLAN depth × TCP/UDP × with/without padding, for one inner/outer family pair.
    fn check_family_pair(inner_v6: bool, backend: IpAddr) {
        let mut out = Vec::new();
        for vlans in 0..=2 {
            for tcp in [true, false] {
                for (padding, payload_len) in [(0, 100), (12, 2), (4, 333)] {
                    let spec = Spec {
                        inner_v6,
                        tcp,
                        vlans,
                        padding,
                        payload_len,
                        ..Spec::default()
                    };
                    let (frame, parsed) = client_frame(spec);
                    let p = params(backend, HASH);
                    rewrite(&frame, &parsed, Mode::IpIp, &p, &mut out)
                        .unwrap_or_else(|e| panic!("{spec:?}: {e:?}"));
                    assert_encapsulation(&frame, &parsed, &p, &out);
                }
            }
        }
    }

    #[test]
    fn ipv4_in_ipv4() {
        check_family_pair(false, IpAddr::V4(BACKEND_V4));
    }

    #[test]
    fn ipv6_in_ipv4() {
        check_family_pair(true, IpAddr::V4(BACKEND_V4));
    }

    #[test]
    fn ipv4_in_ipv6() {
        check_family_pair(false, IpAddr::V6(BACKEND_V6));
    }

    #[test]
    fn ipv6_in_ipv6() {
        check_family_pair(true, IpAddr::V6(BACKEND_V6));
    }

    #[test]
    fn inner_ipv4_options_are_carried_whole() {
        let spec = Spec {
            ipv4_options: true,
            vlans: 1,
            ..Spec::default()
        };
        let (frame, parsed) = client_frame(spec);
        assert_eq!(parsed.l4_offset, parsed.l3_offset + 24);
        for backend in [IpAddr::V4(BACKEND_V4), IpAddr::V6(BACKEND_V6)] {
            let p = params(backend, HASH);
            let mut out = Vec::new();
            rewrite(&frame, &parsed, Mode::IpIp, &p, &mut out).unwrap();
            assert_encapsulation(&frame, &parsed, &p, &out);
        }
    }

    #[test]
    fn outer_source_and_flow_label_known_answers() {
        let (frame, parsed) = client_frame(Spec::default());
        let mut out = Vec::new();

        rewrite(
            &frame,
            &parsed,
            Mode::IpIp,
            &params(IpAddr::V4(BACKEND_V4), HASH),
            &mut out,
        )
        .unwrap();
        let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
        // 172.16.0.0/16 + low 16 bits of 0xdeadbeef.
        assert_eq!(outer.source_addr(), Ipv4Addr::new(172, 16, 0xbe, 0xef));

        rewrite(
            &frame,
            &parsed,
            Mode::IpIp,
            &params(IpAddr::V6(BACKEND_V6), HASH),
            &mut out,
        )
        .unwrap();
        let outer = etherparse::Ipv6HeaderSlice::from_slice(&out[14..]).unwrap();
        // fc00::/64: only the low 32 bits can come from the hash.
        assert_eq!(
            outer.source_addr(),
            "fc00::dead:beef".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(outer.flow_label().value(), 0xd_beef);
    }

    const GUE: Mode = Mode::Gue { port: 6080 };

    /// GUE output decoded by etherparse (outer Ethernet / IP / UDP, checksums), then the
    /// inner packet equals the input's IP packet: every VLAN depth, both inner and outer
    /// families, TCP and UDP, padded or not.
    #[test]
    fn gue_frames_decode_with_an_independent_decoder() {
        let mut out = Vec::new();
        for inner_v6 in [false, true] {
            for backend in [IpAddr::V4(BACKEND_V4), IpAddr::V6(BACKEND_V6)] {
                for vlans in 0..=2 {
                    for tcp in [true, false] {
                        for (padding, payload_len) in [(0, 100), (12, 2), (4, 333), (0, 1)] {
                            let spec = Spec {
                                inner_v6,
                                tcp,
                                vlans,
                                padding,
                                payload_len,
                                ..Spec::default()
                            };
                            let (frame, parsed) = client_frame(spec);
                            for (port, hash) in [(6080, HASH), (1, 0), (65535, u32::MAX)] {
                                let p = params(backend, hash);
                                let mode = Mode::Gue { port };
                                rewrite(&frame, &parsed, mode, &p, &mut out).unwrap();
                                assert_encapsulated(&frame, &parsed, mode, &p, &out);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gue_known_answers() {
        let (frame, parsed) = client_frame(Spec::default());
        let mut out = Vec::new();
        rewrite(
            &frame,
            &parsed,
            GUE,
            &params(IpAddr::V4(BACKEND_V4), HASH),
            &mut out,
        )
        .unwrap();
        // 0xdeadbeef >> 18 = 0x37ab; in the dynamic range: 0xf7ab.
        assert_eq!(out[34..36], [0xf7, 0xab], "source port");
        assert_eq!(out[36..38], 6080u16.to_be_bytes(), "destination port");
        assert_eq!(out[23], 17, "outer protocol UDP");
        assert_eq!(gue_source_port(0), 0xc000);
        assert_eq!(gue_source_port(u32::MAX), 0xffff);
        assert_eq!(
            gue_source_port(0x0003_ffff),
            0xc000,
            "the low 18 bits do not count"
        );
    }

    /// A payload whose UDP checksum sums to 0xFFFF goes out as 0xFFFF, never 0: found by
    /// trying payload bytes until the complement is zero.
    #[test]
    fn gue_ipv6_checksum_never_zero() {
        let p = params(IpAddr::V6(BACKEND_V6), HASH);
        let mut out = Vec::new();
        let mut seen_ffff = false;
        for last in 0..=u16::MAX {
            let (mut frame, parsed) = client_frame(Spec {
                tcp: false,
                payload_len: 2,
                ..Spec::default()
            });
            // The inner datagram's last two bytes are the UDP payload; the inner UDP
            // checksum goes stale, which the outer checksum must not care about.
            let end = usize::from(parsed.l3_offset + parsed.ip_len);
            frame[end - 2..end].copy_from_slice(&last.to_be_bytes());
            rewrite(&frame, &parsed, GUE, &p, &mut out).unwrap();
            let checksum = u16::from_be_bytes([out[14 + 46], out[14 + 47]]);
            assert_ne!(checksum, 0);
            if checksum == 0xffff {
                seen_ffff = true;
                let udp = etherparse::UdpHeaderSlice::from_slice(&out[54..]).unwrap();
                let expected = udp
                    .to_header()
                    .calc_checksum_ipv6_raw(
                        out[22..38].try_into().unwrap(),
                        out[38..54].try_into().unwrap(),
                        &out[62..],
                    )
                    .unwrap();
                assert_eq!(expected, 0xffff);
                break;
            }
        }
        assert!(seen_ffff, "some payload makes the sum 0xffff");
    }

    #[test]
    fn host_bits_follow_prefix_length() {
        let v4 = |prefix: [u8; 4], len| {
            encap_source_v4(
                EncapSource {
                    prefix: Ipv4Addr::from(prefix),
                    len,
                },
                HASH,
            )
        };
        // Host bits of the configured address are replaced, not ORed.
        assert_eq!(v4([10, 1, 2, 0x10], 24), Ipv4Addr::new(10, 1, 2, 0xef));
        assert_eq!(v4([10, 1, 2, 0x10], 32), Ipv4Addr::new(10, 1, 2, 0x10));
        assert_eq!(v4([10, 1, 2, 0x10], 200), Ipv4Addr::new(10, 1, 2, 0x10));
        assert_eq!(v4([10, 1, 2, 0x10], 0), Ipv4Addr::from(HASH));
        assert_eq!(v4([10, 1, 2, 0x10], 31), Ipv4Addr::new(10, 1, 2, 0x11));

        let v6 = |prefix: &str, len| {
            encap_source_v6(
                EncapSource {
                    prefix: prefix.parse().unwrap(),
                    len,
                },
                HASH,
            )
        };
        let addr = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(v6("fc00::1:2:3:10", 128), addr("fc00::1:2:3:10"));
        assert_eq!(v6("fc00::1:2:3:10", 112), addr("fc00::1:2:3:beef"));
        assert_eq!(v6("fc00::1:2:3:10", 96), addr("fc00::1:2:dead:beef"));
        // Shorter than /96: bits above the low 32 stay as configured.
        assert_eq!(v6("fc00::1:2:3:10", 64), addr("fc00::1:2:dead:beef"));
        assert_eq!(v6("fc00::1:2:3:10", 0), addr("fc00::1:2:dead:beef"));
    }

    #[test]
    fn dsr_changes_only_the_macs() {
        for inner_v6 in [false, true] {
            for vlans in 0..=2 {
                for padding in [0, 12] {
                    let spec = Spec {
                        inner_v6,
                        vlans,
                        padding,
                        payload_len: 3,
                        ..Spec::default()
                    };
                    let (frame, parsed) = client_frame(spec);
                    let mut out = vec![0xee; 3]; // stale content must not survive
                    let p = params(IpAddr::V4(BACKEND_V4), HASH);
                    rewrite(&frame, &parsed, Mode::Dsr, &p, &mut out).unwrap();
                    let mut expected = frame.clone();
                    expected[0..6].copy_from_slice(&BACKEND_MAC);
                    expected[6..12].copy_from_slice(&OWN_MAC);
                    assert_eq!(out, expected, "{spec:?}");
                }
            }
        }
    }

    /// UDP payload that makes the encapsulated frame exactly `len` bytes long.
    fn payload_for_output_len(len: usize, vlans: u8, mode: Mode, backend: IpAddr) -> usize {
        let outer = mode.spec().outer_len(backend.is_ipv6());
        len - (14 + 4 * usize::from(vlans)) - outer - 20 - 8
    }

    #[test]
    fn encapsulation_beyond_max_frame_len_is_dropped() {
        for (mode, backend, vlans) in [Mode::IpIp, GUE]
            .into_iter()
            .flat_map(|m| [IpAddr::V4(BACKEND_V4), IpAddr::V6(BACKEND_V6)].map(|b| (m, b)))
            .flat_map(|(m, b)| [0, 2].map(|v| (m, b, v)))
        {
            {
                let p = params(backend, HASH);
                let spec = |payload_len| Spec {
                    tcp: false,
                    vlans,
                    payload_len,
                    ..Spec::default()
                };
                let mut out = Vec::new();

                let fits = payload_for_output_len(MAX_FRAME_LEN, vlans, mode, backend);
                let (frame, parsed) = client_frame(spec(fits));
                rewrite(&frame, &parsed, mode, &p, &mut out).unwrap();
                assert_eq!(out.len(), MAX_FRAME_LEN);
                assert_encapsulated(&frame, &parsed, mode, &p, &out);

                let (frame, parsed) = client_frame(spec(fits + 1));
                let result = rewrite(&frame, &parsed, mode, &p, &mut out);
                assert_eq!(result, Err(DropReason::EncapTooLarge));
                assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn parse_inconsistent_with_frame_is_an_error() {
        let p = params(IpAddr::V4(BACKEND_V4), HASH);
        let mut out = Vec::new();
        for inner_v6 in [false, true] {
            let (frame, parsed) = client_frame(Spec {
                inner_v6,
                ..Spec::default()
            });
            let mut run = |parsed: ParsedFrame| rewrite(&frame, &parsed, Mode::IpIp, &p, &mut out);
            let bad_l3 = |l3_offset| ParsedFrame {
                l3_offset,
                ..parsed
            };
            assert_eq!(run(bad_l3(13)), Err(DropReason::TruncatedEthernet));
            assert_eq!(run(bad_l3(u16::MAX)), Err(DropReason::TruncatedEthernet));
            let long_ip = ParsedFrame {
                ip_len: parsed.ip_len + 1,
                ..parsed
            };
            let expected = if inner_v6 {
                DropReason::BadIpv6PayloadLength
            } else {
                DropReason::BadIpv4TotalLength
            };
            assert_eq!(run(long_ip), Err(expected));
            let huge = ParsedFrame {
                l3_offset: u16::MAX,
                ip_len: u16::MAX,
                ..parsed
            };
            assert_eq!(run(huge), Err(DropReason::TruncatedEthernet));
        }
        let parsed = client_frame(Spec::default()).1;
        let short = [0u8; 13];
        assert_eq!(
            rewrite(&short, &parsed, Mode::Dsr, &p, &mut out),
            Err(DropReason::TruncatedEthernet)
        );
    }

    #[test]
    fn output_buffer_is_reused_without_reallocation() {
        let mut out = Vec::with_capacity(MAX_FRAME_LEN);
        let (buffer, capacity) = (out.as_ptr(), out.capacity());
        for (inner_v6, backend, mode) in [
            (false, IpAddr::V4(BACKEND_V4), Mode::IpIp),
            (true, IpAddr::V6(BACKEND_V6), Mode::IpIp),
            (true, IpAddr::V4(BACKEND_V4), Mode::Dsr),
            (false, IpAddr::V6(BACKEND_V6), GUE),
        ] {
            let (frame, parsed) = client_frame(Spec {
                inner_v6,
                payload_len: 1400,
                ..Spec::default()
            });
            rewrite(&frame, &parsed, mode, &params(backend, HASH), &mut out).unwrap();
            assert_eq!((out.as_ptr(), out.capacity()), (buffer, capacity));
        }
    }

    #[test]
    fn header_checksum_known_answer() {
        // The classic example header (checksum 0xb861); the result must not depend on
        // what the checksum field holds.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&header), 0xb861);
        header[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(ipv4_header_checksum(&header), 0xb861);
        header[10..12].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(ipv4_header_checksum(&header), 0xb861);
        // End-around carry: all-ones words sum to 0xffff, whose complement is 0.
        assert_eq!(ipv4_header_checksum(&[0xff; 20]), 0x0000);
        // Odd and empty inputs: the last byte is a high byte; nothing panics.
        assert_eq!(ipv4_header_checksum(&[0x45]), !0x4500);
        assert_eq!(ipv4_header_checksum(&[]), 0xffff);
    }

    fn any_mode() -> impl Strategy<Value = Mode> {
        prop_oneof![
            Just(Mode::Dsr),
            Just(Mode::IpIp),
            any::<u16>().prop_map(|port| Mode::Gue { port }),
        ]
    }

    fn any_backend() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        ]
    }

    fn any_params() -> impl Strategy<Value = RewriteParams> {
        (
            any_backend(),
            any::<u32>(),
            // Mostly real prefix lengths (a length past the width leaves no host bits).
            prop_oneof![3 => 0u8..=32, 1 => any::<u8>()],
            any::<u128>(),
            prop_oneof![3 => 0u8..=128, 1 => any::<u8>()],
            any::<u32>(),
        )
            .prop_map(|(backend, p4, len4, p6, len6, hash)| RewriteParams {
                own_mac: OWN_MAC,
                backend_mac: BACKEND_MAC,
                backend_addr: backend,
                encap_src_v4: EncapSource {
                    prefix: Ipv4Addr::from(p4),
                    len: len4,
                },
                encap_src_v6: EncapSource {
                    prefix: Ipv6Addr::from(p6),
                    len: len6,
                },
                hash,
            })
    }

    proptest! {
        // Arbitrary offsets make most cases errors; run enough that ~150 reach an IPv4 outer
        // header (each case costs microseconds).
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever `parsed` claims about whatever bytes, rewrite returns (no panic); a
        /// success has the promised length and, with an IPv4 outer header, a checksum that
        /// etherparse verifies and the promised source address.
        #[test]
        fn rewrite_never_panics_and_ipv4_outer_checksums_verify(
            frame in proptest::collection::vec(any::<u8>(), 0..300),
            l3_offset in prop_oneof![4 => 0u16..32, 1 => any::<u16>()],
            ip_len in prop_oneof![4 => 0u16..64, 1 => any::<u16>()],
            inner_v6 in any::<bool>(),
            dscp_ecn in any::<u8>(),
            mode in any_mode(),
            p in any_params(),
        ) {
            let (src, dst) = if inner_v6 {
                (IpAddr::V6(CLIENT_V6), IpAddr::V6(VIP_V6))
            } else {
                (IpAddr::V4(CLIENT_V4), IpAddr::V4(VIP_V4))
            };
            let parsed = ParsedFrame {
                vlan_count: 0,
                l3_offset,
                src,
                dst,
                ip_len,
                protocol: IPPROTO_UDP,
                l4_offset: l3_offset,
                fragment: false,
                src_port: 0,
                dst_port: 0,
                tcp_flags: 0,
                dscp_ecn,
            };
            let mut out = vec![1, 2, 3];
            match rewrite(&frame, &parsed, mode, &p, &mut out) {
                Err(_) => prop_assert!(out.is_empty()),
                Ok(()) if mode == Mode::Dsr => prop_assert_eq!(out.len(), frame.len()),
                Ok(()) => {
                    let l3 = usize::from(l3_offset);
                    let outer_len = mode.spec().outer_len(p.backend_addr.is_ipv6());
                    prop_assert_eq!(out.len(), l3 + outer_len + usize::from(ip_len));
                    if p.backend_addr.is_ipv4() {
                        let h = Ipv4HeaderSlice::from_slice(&out[l3..]).unwrap();
                        prop_assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                        let prefix = u32::from(p.encap_src_v4.prefix).into();
                        let expected = expected_source(prefix, 32, p.encap_src_v4.len, p.hash);
                        prop_assert_eq!(u128::from(u32::from(h.source_addr())), expected);
                    }
                }
            }
        }

    }

    /// `rewrite_in_place` gives `rewrite`'s bytes, or `NoRoom` / the same error with the
    /// buffer untouched.
    fn assert_in_place_equals_copy(
        frame: &[u8],
        parsed: &ParsedFrame,
        mode: Mode,
        p: &RewriteParams,
        headroom: usize,
    ) -> Result<(), TestCaseError> {
        let mut copied = Vec::new();
        let expected = rewrite(frame, parsed, mode, p, &mut copied);
        let mut buf = vec![0x5a; headroom];
        buf.extend_from_slice(frame);
        let before = buf.clone();
        match (
            rewrite_in_place(&mut buf, headroom, parsed, mode, p),
            expected,
        ) {
            (Ok(InPlace::Done(range)), Ok(())) => prop_assert_eq!(&buf[range], &copied[..]),
            (Ok(InPlace::NoRoom), Ok(())) => {
                prop_assert!(headroom < mode.spec().outer_len(p.backend_addr.is_ipv6()));
                prop_assert_eq!(buf, before);
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a, b);
                prop_assert_eq!(buf, before);
            }
            (got, want) => prop_assert!(false, "in place {got:?}, copy {want:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// In place and copied rewrites agree byte for byte on real frames (VLANs,
        /// padding, options, both families, both modes) and on arbitrary bytes.
        #[test]
        fn rewrite_in_place_equals_rewrite(
            inner_v6 in any::<bool>(),
            tcp in any::<bool>(),
            vlans in 0u8..=2,
            padding in 0usize..20,
            payload_len in 0usize..300,
            ipv4_options in any::<bool>(),
            mode in any_mode(),
            headroom in prop_oneof![3 => Just(128usize), 1 => 0usize..64],
            p in any_params(),
        ) {
            let spec = Spec { inner_v6, tcp, vlans, padding, dscp_ecn: 0x2e, payload_len, ipv4_options };
            let (frame, parsed) = client_frame(spec);
            assert_in_place_equals_copy(&frame, &parsed, mode, &p, headroom)?;
        }

        #[test]
        fn rewrite_in_place_equals_rewrite_on_arbitrary_bytes(
            frame in proptest::collection::vec(any::<u8>(), 0..120),
            l3_offset in 0u16..40,
            ip_len in 0u16..100,
            mode in any_mode(),
            headroom in 0usize..64,
            p in any_params(),
        ) {
            let parsed = ParsedFrame {
                vlan_count: 0,
                l3_offset,
                src: IpAddr::V4(CLIENT_V4),
                dst: IpAddr::V4(VIP_V4),
                ip_len,
                protocol: IPPROTO_UDP,
                l4_offset: l3_offset,
                fragment: false,
                src_port: 0,
                dst_port: 0,
                tcp_flags: 0,
                dscp_ecn: 0,
            };
            assert_in_place_equals_copy(&frame, &parsed, mode, &p, headroom)?;
        }
    }

    proptest! {
        /// Real frames of every shape, random hashes, prefixes and backends: the whole
        /// encapsulation contract holds.
        #[test]
        fn encapsulation_contract_holds_for_random_frames(
            inner_v6 in any::<bool>(),
            tcp in any::<bool>(),
            vlans in 0u8..=2,
            padding in 0usize..20,
            dscp_ecn in any::<u8>(),
            payload_len in 0usize..1500,
            ipv4_options in any::<bool>(),
            gue_port in proptest::option::of(any::<u16>()),
            p in any_params(),
        ) {
            let spec = Spec { inner_v6, tcp, vlans, padding, dscp_ecn, payload_len, ipv4_options };
            let (frame, parsed) = client_frame(spec);
            let mut out = Vec::new();
            let mode = gue_port.map_or(Mode::IpIp, |port| Mode::Gue { port });
            rewrite(&frame, &parsed, mode, &p, &mut out).unwrap();
            assert_encapsulated(&frame, &parsed, mode, &p, &out);
        }

        /// ipv4_header_checksum agrees with etherparse on random valid headers.
        #[test]
        fn header_checksum_matches_etherparse(mut header in proptest::array::uniform20(any::<u8>())) {
            header[0] = 0x45;
            header[6] &= 0x7f; // etherparse does not model the reserved flag bit
            let total_len = u16::from_be_bytes([header[2], header[3]]).max(20);
            header[2..4].copy_from_slice(&total_len.to_be_bytes());
            let parsed = Ipv4HeaderSlice::from_slice(&header).unwrap();
            prop_assert_eq!(ipv4_header_checksum(&header), parsed.to_header().calc_header_checksum());
        }
    }
}
