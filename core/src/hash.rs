//! Stage 3 — hash: a keyed Toeplitz hash (the RSS hash NICs compute) over the frame's
//! tuple, masked by the VIP's persistence mode, plus a 64-bit flow digest from two more
//! independent keys.
//!
//! * `hash` = Toeplitz(key `rss`, tuple). For the 5-tuple mode this is exactly the RSS hash
//!   a NIC computes with the same key over (src addr, dst addr, src port, dst port), so a
//!   DPDK host can reuse the NIC's hash. It picks the flow-table set and the Maglev slot.
//! * `digest` = Toeplitz(`digest_hi`, tuple ‖ protocol ‖ vip) << 32 | Toeplitz(`digest_lo`,
//!   same): what the flow table stores to recognise a flow (a false hit needs both 32-bit
//!   halves and the set to collide).
//!
//! The tuple: source address, destination address (4 or 16 bytes each), then source and
//! destination port (big-endian). Ports are zero for fragments (L3-only hashing, so every
//! fragment of a datagram lands on one backend) and in `SrcIp` persistence (every
//! connection of a client to the VIP lands on one backend).
//!
//! Toeplitz is written by hand: it is ten lines, and the contract needs the exact bit order
//! the hardware's XOR tree computes; no crate exposes it over arbitrary keys this way.

use crate::parse::ParsedFrame;
use std::net::IpAddr;

/// Bytes in each hash key: enough for the longest digest input (36-byte IPv6 tuple +
/// protocol + 2-byte VIP index = 39 bytes, plus 4). The first 40 bytes of `rss` are the
/// NIC's RSS key.
pub const KEY_LEN: usize = 52;
/// Longest digest input (IPv6 tuple + protocol + VIP index).
pub const MAX_INPUT_LEN: usize = 39;

/// How a VIP maps frames to flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persistence {
    /// (src, dst, protocol, src port, dst port): each connection balanced on its own.
    #[default]
    FiveTuple,
    /// (src, dst, protocol): all of a client's connections to the VIP on one backend.
    SrcIp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKeys {
    pub rss: [u8; KEY_LEN],
    pub digest_hi: [u8; KEY_LEN],
    pub digest_lo: [u8; KEY_LEN],
}

impl Default for HashKeys {
    fn default() -> Self {
        // The first 40 bytes of `rss` are the well-known default RSS key (Microsoft's
        // verification key, used by most NIC drivers); the rest are arbitrary fixed bytes.
        const RSS: [u8; KEY_LEN] = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa, 0x1f, 0x83,
            0xd9, 0xab, 0xfb, 0x41, 0xbd, 0x6b, 0x5b, 0xe0, 0xcd, 0x19,
        ];
        HashKeys {
            rss: RSS,
            digest_hi: derive_key(0x243f_6a88_85a3_08d3),
            digest_lo: derive_key(0x1319_8a2e_0370_7344),
        }
    }
}

/// A fixed key from a seed (splitmix64), so defaults are reproducible everywhere.
pub fn derive_key(seed: u64) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    let mut state = seed;
    for chunk in key.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
    }
    key
}

/// Toeplitz hash of `input` under `key` (bit 0 of the input = MSB of its first byte).
/// `key` must be at least `input.len() + 4` bytes long.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    debug_assert!(key.len() >= input.len() + 4);
    let mut result = 0u32;
    // A 64-bit window over the key: its top 32 bits are the key bits aligned with the
    // current input bit.
    let mut window = u64::from_be_bytes([
        key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
    ]);
    for (i, &byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= (window >> (32 - bit)) as u32;
            }
        }
        window = window << 8 | key.get(i + 8).copied().unwrap_or(0) as u64;
    }
    result
}

/// The two values every later stage uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHash {
    pub hash: u32,
    pub digest: u64,
}

/// Write the tuple for `p` under `persistence` into `buf`; returns its length (12 or 36).
pub fn tuple_bytes(
    p: &ParsedFrame,
    persistence: Persistence,
    buf: &mut [u8; MAX_INPUT_LEN],
) -> usize {
    let mut n = 0;
    for addr in [p.src, p.dst] {
        match addr {
            IpAddr::V4(a) => {
                buf[n..n + 4].copy_from_slice(&a.octets());
                n += 4;
            }
            IpAddr::V6(a) => {
                buf[n..n + 16].copy_from_slice(&a.octets());
                n += 16;
            }
        }
    }
    let ports = !p.fragment && persistence == Persistence::FiveTuple;
    let (sp, dp) = if ports {
        (p.src_port, p.dst_port)
    } else {
        (0, 0)
    };
    buf[n..n + 2].copy_from_slice(&sp.to_be_bytes());
    buf[n + 2..n + 4].copy_from_slice(&dp.to_be_bytes());
    n + 4
}

/// Hash and digest of a frame classified to VIP `vip`, by the bit-serial reference
/// [`toeplitz`]. Engines use [`FlowHasher::flow_hash`], which is tested equal to this.
pub fn flow_hash(keys: &HashKeys, p: &ParsedFrame, persistence: Persistence, vip: u16) -> FlowHash {
    hash_with(
        |key, input| toeplitz(key.bytes(keys), input),
        p,
        persistence,
        vip,
    )
}

/// Which of the three keys.
#[derive(Clone, Copy)]
enum Key {
    Rss,
    DigestHi,
    DigestLo,
}

impl Key {
    fn bytes(self, keys: &HashKeys) -> &[u8; KEY_LEN] {
        match self {
            Key::Rss => &keys.rss,
            Key::DigestHi => &keys.digest_hi,
            Key::DigestLo => &keys.digest_lo,
        }
    }
}

/// The one definition of what is hashed: the tuple under `rss`, the tuple ‖ protocol ‖ vip
/// under the two digest keys.
fn hash_with(
    toeplitz: impl Fn(Key, &[u8]) -> u32,
    p: &ParsedFrame,
    persistence: Persistence,
    vip: u16,
) -> FlowHash {
    let mut buf = [0u8; MAX_INPUT_LEN];
    let n = tuple_bytes(p, persistence, &mut buf);
    let hash = toeplitz(Key::Rss, &buf[..n]);
    buf[n] = p.protocol;
    buf[n + 1..n + 3].copy_from_slice(&vip.to_be_bytes());
    let m = n + 3;
    let digest = (toeplitz(Key::DigestHi, &buf[..m]) as u64) << 32
        | toeplitz(Key::DigestLo, &buf[..m]) as u64;
    FlowHash { hash, digest }
}

/// Toeplitz under one fixed key as a table per input byte position: row `i`, entry `v`
/// is the hash contribution of byte value `v` at position `i`. Toeplitz is linear over
/// XOR, so the hash of an input is the XOR of one entry per byte — 39 loads instead of
/// 312 conditional XORs. This is the software form of the hardware's XOR tree; no crate
/// provides it over arbitrary keys and the contract's input layout.
#[derive(Clone)]
struct ToeplitzTable {
    rows: Box<[[u32; 256]; MAX_INPUT_LEN]>,
}

impl ToeplitzTable {
    fn new(key: &[u8; KEY_LEN]) -> ToeplitzTable {
        let mut rows = Box::new([[0u32; 256]; MAX_INPUT_LEN]);
        for (i, row) in rows.iter_mut().enumerate() {
            // The contribution of each single bit at position i; entries are XORs of them.
            let mut input = [0u8; MAX_INPUT_LEN];
            let mut bit_value = [0u32; 8];
            for (b, value) in bit_value.iter_mut().enumerate() {
                input[i] = 0x80 >> b;
                *value = toeplitz(key, &input[..=i]);
            }
            for (v, entry) in row.iter_mut().enumerate() {
                *entry = (0..8)
                    .filter(|b| v & (0x80 >> b) != 0)
                    .fold(0, |acc, b| acc ^ bit_value[b]);
            }
        }
        ToeplitzTable { rows }
    }

    fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.rows.iter())
            .fold(0, |acc, (&byte, row)| acc ^ row[byte as usize])
    }
}

/// The fast form of [`flow_hash`] for one set of keys: engines build it once per key
/// change (it is about 117 KiB of tables) and hash every frame with it.
#[derive(Clone)]
pub struct FlowHasher {
    keys: HashKeys,
    tables: std::sync::Arc<[ToeplitzTable; 3]>,
}

impl std::fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowHasher")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl FlowHasher {
    pub fn new(keys: &HashKeys) -> FlowHasher {
        let tables = [
            ToeplitzTable::new(&keys.rss),
            ToeplitzTable::new(&keys.digest_hi),
            ToeplitzTable::new(&keys.digest_lo),
        ];
        FlowHasher {
            keys: keys.clone(),
            tables: std::sync::Arc::new(tables),
        }
    }

    /// The keys this hasher was built for.
    pub fn keys(&self) -> &HashKeys {
        &self.keys
    }

    /// Same result as [`flow_hash`] with this hasher's keys.
    pub fn flow_hash(&self, p: &ParsedFrame, persistence: Persistence, vip: u16) -> FlowHash {
        hash_with(
            |key, input| self.tables[key as usize].hash(input),
            p,
            persistence,
            vip,
        )
    }
}

/// One vector of the RSS specification's verification suite: the tuple bytes as hashed
/// (src addr, dst addr, src port, dst port) and the published hash under the default key.
pub struct RssVector {
    pub tuple: Vec<u8>,
    pub hash: u32,
}

/// The published RSS verification vectors (IPv4 and IPv6 with ports) for the default key
/// (`HashKeys::default().rss`): the independent check of bit order and key windowing that
/// every engine's Toeplitz is tested with.
pub fn rss_verification_vectors() -> Vec<RssVector> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let tuple = |src: &[u8], dst: &[u8], sport: u16, dport: u16| {
        [src, dst, &sport.to_be_bytes(), &dport.to_be_bytes()].concat()
    };
    let v4 = |src: Ipv4Addr, sport, dst: Ipv4Addr, dport, hash| RssVector {
        tuple: tuple(&src.octets(), &dst.octets(), sport, dport),
        hash,
    };
    let v6 = |src: Ipv6Addr, sport, dst: Ipv6Addr, dport, hash| RssVector {
        tuple: tuple(&src.octets(), &dst.octets(), sport, dport),
        hash,
    };
    vec![
        v4(
            Ipv4Addr::new(66, 9, 149, 187),
            2794,
            Ipv4Addr::new(161, 142, 100, 80),
            1766,
            0x51cc_c178,
        ),
        v4(
            Ipv4Addr::new(199, 92, 111, 2),
            14230,
            Ipv4Addr::new(65, 69, 140, 83),
            4739,
            0xc626_b0ea,
        ),
        v4(
            Ipv4Addr::new(24, 19, 198, 95),
            12898,
            Ipv4Addr::new(12, 22, 207, 184),
            38024,
            0x5c2b_394a,
        ),
        v6(
            Ipv6Addr::new(0x3ffe, 0x2501, 0x200, 0x1fff, 0, 0, 0, 7),
            2794,
            Ipv6Addr::new(0x3ffe, 0x2501, 0x200, 3, 0, 0, 0, 1),
            1766,
            0x4020_7d3d,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_driven_hasher_equals_the_reference() {
        use crate::parse::{ParsedFrame, IPPROTO_TCP, IPPROTO_UDP};
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let keys = if round % 100 == 0 {
                HashKeys {
                    rss: derive_key(next()),
                    digest_hi: derive_key(next()),
                    digest_lo: derive_key(next()),
                }
            } else {
                HashKeys::default()
            };
            let hasher = FlowHasher::new(&keys);
            let r = next();
            let (src, dst): (IpAddr, IpAddr) = if r & 1 == 0 {
                (
                    std::net::Ipv4Addr::from(r as u32).into(),
                    std::net::Ipv4Addr::from((r >> 32) as u32).into(),
                )
            } else {
                (
                    std::net::Ipv6Addr::from(r as u128 * 0x9e37_79b9).into(),
                    std::net::Ipv6Addr::from(next() as u128).into(),
                )
            };
            let p = ParsedFrame {
                vlan_count: 0,
                l3_offset: 14,
                src,
                dst,
                ip_len: 40,
                protocol: if r & 2 == 0 { IPPROTO_TCP } else { IPPROTO_UDP },
                l4_offset: 34,
                fragment: r & 4 != 0,
                src_port: (r >> 8) as u16,
                dst_port: (r >> 24) as u16,
                tcp_flags: 0,
                dscp_ecn: 0,
            };
            for persistence in [Persistence::FiveTuple, Persistence::SrcIp] {
                let vip = (r >> 40) as u16;
                assert_eq!(
                    hasher.flow_hash(&p, persistence, vip),
                    flow_hash(&keys, &p, persistence, vip)
                );
            }
        }
    }

    #[test]
    fn toeplitz_matches_rss_verification_suite() {
        let key = HashKeys::default().rss;
        for v in rss_verification_vectors() {
            assert_eq!(toeplitz(&key, &v.tuple), v.hash, "tuple {:02x?}", v.tuple);
        }
    }
}
