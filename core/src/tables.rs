//! The programmed state every engine runs from: VIPs, backends, Maglev tables, keys,
//! timeouts and geometry. The driver compiles a config into this (and into register
//! writes that describe exactly the same state to hardware).

use crate::flow_table::{Geometry, Timeouts};
use crate::hash::{HashKeys, Persistence};
use crate::maglev::MaglevTable;
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
