//! Stage 1 — parse: Ethernet II, up to two VLAN tags, IPv4 (with options) or IPv6 (with
//! extension headers), then TCP / UDP / ICMP / ICMPv6.
//!
//! Guarantee: [`parse`] never reads past `frame` and never panics, for any byte string. A
//! malformed frame yields the [`DropReason`] that names the first rule it breaks.

use crate::verdict::DropReason;
use std::net::IpAddr;

/// At most this many 802.1Q / 802.1ad tags are accepted (a third is `TooManyVlans`).
pub const MAX_VLAN_TAGS: usize = 2;
/// At most this many IPv6 extension headers are walked (one more is
/// `Ipv6ExtensionChainTooDeep`).
pub const MAX_IPV6_EXTENSIONS: usize = 4;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// What the rest of the pipeline needs to know about a well-formed frame. Offsets are byte
/// offsets into the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedFrame {
    /// Number of VLAN tags (0..=2).
    pub vlan_count: u8,
    /// Offset of the IP header (14 + 4 × vlan_count). Not an IP frame → see [`Parsed`].
    pub l3_offset: u16,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Length of the IP datagram as its header states (IPv4 total length; IPv6 40 +
    /// payload length). Bytes after it in the frame are Ethernet padding.
    pub ip_len: u16,
    /// Final upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// Offset of the upper-layer header (after IPv4 options / IPv6 extension headers).
    pub l4_offset: u16,
    /// True for any IP fragment (IPv4 MF or offset ≠ 0; IPv6 fragment header present).
    pub fragment: bool,
    /// Ports when the frame carries a TCP or UDP header (first fragment or unfragmented);
    /// 0 otherwise.
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte (0 when not TCP or no TCP header in this fragment).
    pub tcp_flags: u8,
    /// IPv4 TOS / IPv6 traffic class (copied into an encapsulating header).
    pub dscp_ecn: u8,
}

impl ParsedFrame {
    pub fn is_ipv6(&self) -> bool {
        self.dst.is_ipv6()
    }
    /// A TCP segment with SYN set and ACK clear: the first packet of a handshake.
    pub fn is_tcp_syn_only(&self) -> bool {
        self.protocol == IPPROTO_TCP && self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }
}

/// Result of parsing a well-formed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// An IPv4 or IPv6 packet.
    Ip(ParsedFrame),
    /// A well-formed Ethernet frame that is not IP (ARP, LLDP, ...): passed to the host.
    NotIp,
}

/// Parse one frame. See the module doc for the guarantee.
pub fn parse(frame: &[u8]) -> Result<Parsed, DropReason> {
    let _ = frame;
    todo!("parse: implemented by the parser work item")
}
