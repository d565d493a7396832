//! Compiling a validated [`Config`] into the [`Tables`] every engine runs from.
//!
//! Compilation is bookkeeping plus one expensive step: building each VIP's Maglev table.
//! [`layout`] does the bookkeeping (global backend indices, protocol numbers, Maglev inputs)
//! and [`build_maglev`] is the single place a table is built, so the layout can be checked on
//! its own and the build can be swapped or repeated (e.g. after a health change) without
//! re-deriving the rest.

use crate::config::{Config, VipConfig};
use flowgate_core::hash::Persistence;
use flowgate_core::maglev::{MaglevBackend, MaglevTable};
use flowgate_core::rewrite::Mode;
use flowgate_core::tables::{Backend, Vip};
use flowgate_core::Tables;
use std::net::IpAddr;

/// The tables described by `config`: backends get global indices in config order (VIP by
/// VIP), each VIP lists its backends' indices and gets a Maglev table of `maglev_m` slots
/// built over them, keyed by each backend's address in canonical text form. Every backend
/// starts up; the health checker takes them down.
pub fn compile(config: &Config) -> Tables {
    let Layout { mut tables, vips } = layout(config);
    tables.vips = vips
        .into_iter()
        .map(|vip| {
            let maglev = build_maglev(config.maglev_m, &vip.maglev);
            vip.into_vip(maglev)
        })
        .collect();
    tables
}

/// Build one VIP's Maglev table: the only step of compilation that is not bookkeeping.
pub fn build_maglev(m: u32, backends: &[MaglevBackend]) -> MaglevTable {
    MaglevTable::build(m, backends)
}

/// The Maglev identity of a backend: its address as canonical text (so `2001:DB8::1` and
/// `2001:db8:0::1` are one backend), identical on every host that reads the same config.
pub fn maglev_key(address: IpAddr) -> Vec<u8> {
    address.to_string().into_bytes()
}

/// A config laid out as tables, short of the Maglev tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Every field final except `vips`, which is empty.
    pub tables: Tables,
    pub vips: Vec<VipLayout>,
}

/// A [`Vip`] whose Maglev table is not built yet, with the inputs to build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VipLayout {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: u8,
    pub mode: Mode,
    pub persistence: Persistence,
    pub backends: Vec<u16>,
    pub maglev: Vec<MaglevBackend>,
}

impl VipLayout {
    fn into_vip(self, maglev: MaglevTable) -> Vip {
        Vip {
            name: self.name,
            address: self.address,
            port: self.port,
            protocol: self.protocol,
            mode: self.mode,
            persistence: self.persistence,
            maglev,
            backends: self.backends,
        }
    }
}

pub(crate) fn layout(config: &Config) -> Layout {
    let mut tables = Tables {
        own_mac: config.own_mac,
        encap_src_v4: config.encap_src_v4,
        encap_src_v6: config.encap_src_v6,
        keys: config.keys.clone(),
        timeouts: config.timeouts,
        geometry: config.geometry,
        vips: Vec::new(),
        backends: Vec::new(),
    };
    let vips = config
        .vips
        .iter()
        .enumerate()
        .map(|(vip_index, vip)| lay_out_vip(&mut tables.backends, vip_index, vip))
        .collect();
    Layout { tables, vips }
}

/// Append `vip`'s backends to the global list and lay out the VIP.
fn lay_out_vip(backends: &mut Vec<Backend>, vip_index: usize, vip: &VipConfig) -> VipLayout {
    // `Config` guarantees fewer than 65535 VIPs and backends, so indices fit in u16 below
    // NO_BACKEND.
    let vip_index = vip_index as u16;
    let mut indices = Vec::with_capacity(vip.backends.len());
    let mut maglev = Vec::with_capacity(vip.backends.len());
    for b in &vip.backends {
        let index = backends.len() as u16;
        backends.push(Backend {
            address: b.address,
            mac: b.mac,
            weight: b.weight,
            up: true,
            vip: vip_index,
        });
        indices.push(index);
        maglev.push(MaglevBackend {
            key: maglev_key(b.address),
            weight: b.weight,
            index,
        });
    }
    VipLayout {
        name: vip.name.clone(),
        address: vip.address,
        port: vip.port,
        protocol: vip.protocol.number(),
        mode: vip.mode,
        persistence: vip.persistence,
        backends: indices,
        maglev,
    }
}
