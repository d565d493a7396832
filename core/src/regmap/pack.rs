//! Packing programmed state into register values: what the driver writes.

use super::*;

/// The 13 register values of a hash key (key byte 0 in bits 31..24 of word 0).
pub fn key_words(key: &[u8; KEY_LEN]) -> [u32; KEY_WORDS] {
    let mut words = [0u32; KEY_WORDS];
    for (w, chunk) in words.iter_mut().zip(key.chunks_exact(4)) {
        *w = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    words
}

/// `OWN_MAC_HI`, `OWN_MAC_LO` for a MAC address.
pub fn mac_words(mac: [u8; 6]) -> (u32, u32) {
    (
        u16::from_be_bytes([mac[0], mac[1]]) as u32,
        u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
    )
}

fn addr_value(addr: IpAddr) -> (u128, bool) {
    match addr {
        IpAddr::V4(a) => (u32::from(a) as u128, false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

fn mac_value(mac: [u8; 6]) -> u128 {
    mac.iter().fold(0u128, |acc, &b| acc << 8 | b as u128)
}

/// The `mode` field value of a rewrite mode.
pub fn mode_code(mode: Mode) -> u32 {
    mode.code().into()
}

/// The `persistence` field value of a persistence mode.
pub fn persistence_code(p: Persistence) -> u32 {
    match p {
        Persistence::FiveTuple => 0,
        Persistence::SrcIp => 1,
    }
}

/// The VIP window's data words for `vip` (marked valid).
pub fn vip_entry(vip: &Vip) -> [u32; VIP_WORDS] {
    vip_words(
        vip.address,
        vip.port,
        vip.protocol,
        vip.mode,
        vip.persistence,
    )
}

/// The VIP window's data words for a valid VIP with these match fields and modes.
pub fn vip_words(
    address: IpAddr,
    port: u16,
    protocol: u8,
    mode: Mode,
    persistence: Persistence,
) -> [u32; VIP_WORDS] {
    let mut w = [0u32; VIP_WORDS];
    let (addr, v6) = addr_value(address);
    VIP_ADDRESS.set(&mut w, addr);
    VIP_PORT.set(&mut w, port as u128);
    VIP_PROTOCOL.set(&mut w, protocol as u128);
    VIP_IS_V6.set(&mut w, v6 as u128);
    VIP_MODE.set(&mut w, mode_code(mode) as u128);
    VIP_ENCAP_PORT.set(&mut w, mode.param() as u128);
    VIP_PERSISTENCE.set(&mut w, persistence_code(persistence) as u128);
    VIP_VALID.set(&mut w, 1);
    w
}

/// The backend window's data words for `b`; `None` if its weight does not fit the 16-bit
/// field.
pub fn backend_entry(b: &Backend) -> Option<[u32; 7]> {
    let weight = u16::try_from(b.weight).ok()?;
    let mut w = [0u32; 7];
    let (addr, v6) = addr_value(b.address);
    BACKEND_ADDRESS.set(&mut w, addr);
    BACKEND_MAC.set(&mut w, mac_value(b.mac));
    BACKEND_VIP.set(&mut w, b.vip as u128);
    BACKEND_WEIGHT.set(&mut w, weight as u128);
    BACKEND_IS_V6.set(&mut w, v6 as u128);
    Some(w)
}

/// The Maglev window's data word for a slot.
pub fn maglev_entry(slot: Slot) -> u32 {
    slot.primary as u32 | (slot.secondary as u32) << 16
}

/// The Maglev window's `INDEX` for `slot` of `vip`; `None` if the slot does not fit.
pub fn maglev_index(vip: u16, slot: u32) -> Option<u32> {
    let vip_ok = (vip as u32) < 1 << MAGLEV_INDEX_VIP.width;
    (slot < 1 << MAGLEV_SLOT_BITS && vip_ok).then_some((vip as u32) << MAGLEV_SLOT_BITS | slot)
}

/// The flow window's `INDEX` for (`set`, `way`); `None` if either does not fit.
pub fn flow_index(set: u32, way: u32) -> Option<u32> {
    (way < 1 << FLOW_WAY_BITS && set < 1 << (32 - FLOW_WAY_BITS))
        .then_some(set << FLOW_WAY_BITS | way)
}

/// The `UP_BITMAP` word and bit of a backend.
pub fn up_bit(backend: u16) -> (u32, u32) {
    (backend as u32 / 32, backend as u32 % 32)
}
