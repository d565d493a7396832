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

use crate::parse::ParsedFrame;
use crate::verdict::DropReason;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest frame an engine emits (jumbo); an encapsulation that would exceed it is dropped.
pub const MAX_FRAME_LEN: usize = 9216;

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

/// Write the rewritten frame into `out` (cleared first).
pub fn rewrite(
    frame: &[u8],
    parsed: &ParsedFrame,
    mode: Mode,
    params: &RewriteParams,
    out: &mut Vec<u8>,
) -> Result<(), DropReason> {
    let _ = (frame, parsed, mode, params, out);
    todo!("rewrite work item")
}
