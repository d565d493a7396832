//! Stage 2 — classify: which VIP, if any, a parsed frame is for.
//!
//! A VIP matches when the destination address and protocol are equal and its port is the
//! destination port or 0 (any). An exact-port VIP wins over an any-port VIP; among equals
//! the lowest index wins (the config rejects duplicates). IP fragments carry no ports after
//! the first, so *every* fragment classifies on (address, protocol) alone, to the lowest
//! VIP with that address and protocol: all fragments of a datagram then meet one VIP, and
//! hash on L3 only, so they meet one backend.

use crate::parse::ParsedFrame;
use crate::tables::Tables;

/// The index of the VIP `p` is for, or `None` (the frame is passed to the host).
#[inline]
pub fn classify(tables: &Tables, p: &ParsedFrame) -> Option<u16> {
    let mut wildcard = None;
    for (i, vip) in tables.vips.iter().enumerate() {
        if vip.address != p.dst || vip.protocol != p.protocol {
            continue;
        }
        if p.fragment || vip.port == p.dst_port {
            return Some(i as u16);
        }
        if vip.port == 0 && wildcard.is_none() {
            wildcard = Some(i as u16);
        }
    }
    wildcard
}
