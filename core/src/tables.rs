//! The programmed state every engine runs from: VIPs, backends, Maglev tables, keys,
//! timeouts and geometry. The driver compiles a config into this (and into register
//! writes that describe exactly the same state to hardware).

use crate::flow_table::{Geometry, Timeouts};
use crate::hash::{HashKeys, Persistence};
use crate::maglev::{MaglevBackend, MaglevTable};
use crate::rewrite::{EncapSource, Mode};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A virtual IP service: (address, port or 0 = any, protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    pub name: String,
    pub address: IpAddr,
    /// 0 = any port.
    pub port: u16,
    /// IP protocol number (6 = TCP, 17 = UDP).
    pub protocol: u8,
    pub mode: Mode,
    pub persistence: Persistence,
    pub maglev: MaglevTable,
    /// Global indices of this VIP's backends.
    pub backends: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub address: IpAddr,
    pub mac: [u8; 6],
    /// 0 = draining: keeps established flows, gets no new ones.
    pub weight: u32,
    /// Health: a backend that is down gets no frames; its slots fall to their secondaries.
    pub up: bool,
    /// The VIP this backend serves.
    pub vip: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub own_mac: [u8; 6],
    pub encap_src_v4: EncapSource<Ipv4Addr>,
    pub encap_src_v6: EncapSource<Ipv6Addr>,
    pub keys: HashKeys,
    pub timeouts: Timeouts,
    pub geometry: Geometry,
    pub vips: Vec<Vip>,
    pub backends: Vec<Backend>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            own_mac: [0x02, 0, 0, 0, 0, 0xfe],
            encap_src_v4: EncapSource {
                prefix: Ipv4Addr::new(172, 16, 0, 0),
                len: 16,
            },
            encap_src_v6: EncapSource {
                prefix: Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
                len: 64,
            },
            keys: HashKeys::default(),
            timeouts: Timeouts::default(),
            geometry: Geometry::default(),
            vips: Vec::new(),
            backends: Vec::new(),
        }
    }
}

impl Tables {
    /// The Maglev inputs of VIP `vip`: each backend keyed by its address in canonical text
    /// (so `2001:DB8:0::1` and `2001:db8::1` are one backend), so every host that builds
    /// from the same config builds the same table.
    pub fn maglev_members(&self, vip: usize) -> Vec<MaglevBackend> {
        self.vips[vip]
            .backends
            .iter()
            .map(|&i| {
                let b = &self.backends[i as usize];
                MaglevBackend {
                    key: b.address.to_string().into_bytes(),
                    weight: b.weight,
                    index: i,
                }
            })
            .collect()
    }

    /// (Re)build VIP `vip`'s Maglev table with `m` slots (m prime) from its backends'
    /// weights, from scratch.
    pub fn rebuild_maglev(&mut self, vip: usize, m: u32) {
        self.vips[vip].maglev = MaglevTable::build(m, &self.maglev_members(vip));
    }

    /// Add a VIP with the given backends (all up) and build its Maglev table; returns its
    /// index. For tests, benchmarks and tools that build tables without a config file.
    pub fn add_vip(&mut self, mut vip: Vip, backends: Vec<Backend>, m: u32) -> u16 {
        let index = self.vips.len() as u16;
        vip.backends.clear();
        for mut b in backends {
            b.vip = index;
            vip.backends.push(self.backends.len() as u16);
            self.backends.push(b);
        }
        self.vips.push(vip);
        self.rebuild_maglev(index as usize, m);
        index
    }
}
