//! Where a trace's addresses come from. Everything sits in ranges reserved for shared or
//! documentation use, so a trace that leaks onto a real network names nobody.
//!
//! - clients: 100.64.0.0/10 (RFC 6598 shared space) and 2001:db8:c000::/40 (RFC 3849);
//! - hosts that are not VIPs: 198.51.100.0/24 (RFC 5737) and 2001:db8:ffff::/48;
//! - SYN-flood sources: anywhere routable-looking (unicast IPv4, 2000::/3) except the
//!   client ranges, so a spoofed source never collides with a real flow.

use super::malformed::IpFamily;
use rand::Rng;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

/// Linux's default ephemeral port range (`net.ipv4.ip_local_port_range`).
pub const EPHEMERAL_PORTS: RangeInclusive<u16> = 32768..=60999;

const CLIENT_V4: u32 = 0x6440_0000; // 100.64.0.0
const CLIENT_V4_BITS: u32 = 22; // host bits of the /10
const CLIENT_V6: u128 = 0x2001_0db8_c000_u128 << 80; // 2001:db8:c000::/40
const CLIENT_V6_MASK: u128 = !0 << 88;

/// IPv4 hosts that are not VIPs (passthrough frames, malformed frames of the other family).
pub const OTHER_HOSTS_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);
/// IPv6 hosts that are not VIPs.
pub const OTHER_HOSTS_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0);

/// Where a malformed IPv4 case goes when the VIP it is aimed at is IPv6.
pub const OTHER_FAMILY_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
/// Where a malformed IPv6 case goes when the VIP it is aimed at is IPv4.
pub const OTHER_FAMILY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0xfe);

/// The largest number of distinct clients (the size of 100.64.0.0/10).
pub const MAX_CLIENTS: u32 = 1 << CLIENT_V4_BITS;

/// `clients` distinct client addresses per family, computed on demand from a seeded
/// bijection (index → address), so that a million clients cost no memory.
#[derive(Debug, Clone)]
pub(crate) struct ClientPool {
    multiplier: u32,
    offset: u32,
    iid_key: u64,
}

impl ClientPool {
    pub(crate) fn new<R: Rng + ?Sized>(rng: &mut R) -> ClientPool {
        ClientPool {
            // Odd, so that i ↦ i·m + o is a bijection modulo 2^k for every k.
            multiplier: rng.gen::<u32>() | 1,
            offset: rng.gen(),
            iid_key: rng.gen(),
        }
    }

    /// Client `index`'s address in `family`. Distinct indices below [`MAX_CLIENTS`] give
    /// distinct addresses in each family.
    pub(crate) fn address(&self, index: u32, family: IpFamily) -> IpAddr {
        let scrambled = index
            .wrapping_mul(self.multiplier)
            .wrapping_add(self.offset);
        match family {
            IpFamily::V4 => {
                let host = scrambled & (MAX_CLIENTS - 1);
                Ipv4Addr::from(CLIENT_V4 | host).into()
            }
            IpFamily::V6 => {
                // 32 bits of (bijective) subnet, then a per-client pseudo-random 56-bit IID.
                let iid = mix64(u64::from(index) ^ self.iid_key) >> 8;
                let bits = CLIENT_V6 | (u128::from(scrambled) << 56) | u128::from(iid);
                Ipv6Addr::from(bits).into()
            }
        }
    }
}

/// A random client-range address (for frames that belong to no planned flow).
pub(crate) fn random_client<R: Rng + ?Sized>(rng: &mut R, family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => {
            Ipv4Addr::from(CLIENT_V4 | (rng.gen::<u32>() >> (32 - CLIENT_V4_BITS))).into()
        }
        IpFamily::V6 => Ipv6Addr::from(CLIENT_V6 | (rng.gen::<u128>() & !CLIENT_V6_MASK)).into(),
    }
}

/// A random spoofed source: unicast-looking and never in a client range.
pub(crate) fn spoofed<R: Rng + ?Sized>(rng: &mut R, family: IpFamily) -> IpAddr {
    loop {
        match family {
            IpFamily::V4 => {
                let a: u32 = rng.gen();
                let first = a >> 24;
                let in_clients = a >> CLIENT_V4_BITS == CLIENT_V4 >> CLIENT_V4_BITS;
                if (1..224).contains(&first) && first != 127 && !in_clients {
                    return Ipv4Addr::from(a).into();
                }
            }
            IpFamily::V6 => {
                let a = (rng.gen::<u128>() >> 3) | (1 << 125); // 2000::/3
                if a & CLIENT_V6_MASK != CLIENT_V6 {
                    return Ipv6Addr::from(a).into();
                }
            }
        }
    }
}

/// A random host in the not-a-VIP ranges, avoiding `taken` (the VIP addresses). `None`
/// when 64 draws all hit a VIP (only possible if VIPs fill 198.51.100.0/24).
pub(crate) fn other_host<R: Rng + ?Sized>(
    rng: &mut R,
    family: IpFamily,
    taken: &[IpAddr],
) -> Option<IpAddr> {
    (0..64)
        .map(|_| -> IpAddr {
            match family {
                IpFamily::V4 => {
                    let host = rng.gen_range(1..=253u32);
                    Ipv4Addr::from(u32::from(OTHER_HOSTS_V4) | host).into()
                }
                IpFamily::V6 => {
                    let host = rng.gen_range(1..=0xffff_u128);
                    Ipv6Addr::from(u128::from(OTHER_HOSTS_V6) | host).into()
                }
            }
        })
        .find(|a| !taken.contains(a))
}

/// SplitMix64's finaliser: a cheap bijective scramble.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    fn in_v4_clients(a: IpAddr) -> bool {
        matches!(a, IpAddr::V4(v) if v.octets()[0] == 100 && (64..128).contains(&v.octets()[1]))
    }

    fn in_v6_clients(a: IpAddr) -> bool {
        matches!(a, IpAddr::V6(v) if v.segments()[..2] == [0x2001, 0xdb8] && v.segments()[2] >> 8 == 0xc0)
    }

    #[test]
    fn client_pool_is_distinct_and_in_range() {
        let pool = ClientPool::new(&mut ChaCha8Rng::seed_from_u64(1));
        let n = 50_000;
        let v4: HashSet<_> = (0..n).map(|i| pool.address(i, IpFamily::V4)).collect();
        let v6: HashSet<_> = (0..n).map(|i| pool.address(i, IpFamily::V6)).collect();
        assert_eq!((v4.len(), v6.len()), (n as usize, n as usize));
        assert!(v4.iter().all(|&a| in_v4_clients(a)));
        assert!(v6.iter().all(|&a| in_v6_clients(a)));
        // The last index still maps into the /10 and stays distinct from index 0.
        let last = pool.address(MAX_CLIENTS - 1, IpFamily::V4);
        assert!(in_v4_clients(last) && last != pool.address(0, IpFamily::V4));
    }

    #[test]
    fn random_and_spoofed_sources_stay_where_documented() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..10_000 {
            assert!(in_v4_clients(random_client(&mut rng, IpFamily::V4)));
            assert!(in_v6_clients(random_client(&mut rng, IpFamily::V6)));
            let s4 = spoofed(&mut rng, IpFamily::V4);
            let s6 = spoofed(&mut rng, IpFamily::V6);
            assert!(!in_v4_clients(s4) && !in_v6_clients(s6));
            assert!(matches!(s6, IpAddr::V6(v) if v.segments()[0] >> 13 == 1));
        }
    }

    #[test]
    fn other_host_avoids_taken_addresses() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let taken: Vec<IpAddr> = (1..=252u8)
            .map(|h| Ipv4Addr::new(198, 51, 100, h).into())
            .collect();
        for _ in 0..100 {
            if let Some(a) = other_host(&mut rng, IpFamily::V4, &taken) {
                assert_eq!(a, IpAddr::from(Ipv4Addr::new(198, 51, 100, 253)));
            }
        }
        let all: Vec<IpAddr> = (1..=253u8)
            .map(|h| Ipv4Addr::new(198, 51, 100, h).into())
            .collect();
        assert_eq!(other_host(&mut rng, IpFamily::V4, &all), None);
    }
}
