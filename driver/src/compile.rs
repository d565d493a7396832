//! Compiling a validated [`Config`] into the [`Tables`] every engine runs from.
//!
//! Compilation is bookkeeping plus one expensive step: building each VIP's Maglev table.
//! `layout` does the bookkeeping (global backend indices, protocol numbers, Maglev inputs)
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

// `MaglevTable::build` is not implemented yet (it is its own work item), so these tests
// check everything `compile` does around it through `layout`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use flowgate_core::maglev::NO_BACKEND;
    use std::net::Ipv4Addr;

    fn basic() -> Config {
        parse_str(include_str!("../../examples/basic.toml"), "basic.toml").unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn globals_are_copied_from_the_config() {
        let mut config = basic();
        config.own_mac = [2, 1, 2, 3, 4, 5];
        config.keys.rss[0] ^= 0xff;
        config.timeouts.udp_ms = 1234;
        config.geometry.ways = 8;
        config.encap_src_v4.len = 24;
        let Layout { tables, .. } = layout(&config);
        assert_eq!(tables.own_mac, config.own_mac);
        assert_eq!(tables.keys, config.keys);
        assert_eq!(tables.timeouts, config.timeouts);
        assert_eq!(tables.geometry, config.geometry);
        assert_eq!(tables.encap_src_v4, config.encap_src_v4);
        assert_eq!(tables.encap_src_v6, config.encap_src_v6);
        // VIPs are only added once their Maglev tables are built.
        assert!(tables.vips.is_empty());
    }

    #[test]
    fn backends_get_global_indices_in_config_order() {
        let Layout { tables, vips } = layout(&basic());
        let backends: Vec<_> = tables
            .backends
            .iter()
            .map(|b| (b.address, b.weight, b.vip, b.up))
            .collect();
        assert_eq!(
            backends,
            [
                (ip("198.51.100.1"), 1, 0, true),
                (ip("198.51.100.2"), 1, 0, true),
                (ip("198.51.100.3"), 2, 0, true),
                (ip("2001:db8:1::1"), 1, 1, true),
                (ip("2001:db8:1::2"), 1, 1, true),
            ]
        );
        assert_eq!(tables.backends[4].mac, [2, 0, 0, 0, 1, 2]);
        assert_eq!(vips[0].backends, [0, 1, 2]);
        assert_eq!(vips[1].backends, [3, 4]);
        assert!(tables.backends.len() < NO_BACKEND as usize);
    }

    #[test]
    fn vips_carry_their_service_and_policy() {
        let Layout { vips, .. } = layout(&basic());
        let web = &vips[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.address, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!((web.port, web.protocol), (80, 6));
        assert_eq!(
            (web.mode, web.persistence),
            (Mode::Dsr, Persistence::FiveTuple)
        );
        let dns = &vips[1];
        assert_eq!(dns.name, "dns");
        assert_eq!(dns.address, ip("2001:db8::53"));
        assert_eq!((dns.port, dns.protocol), (53, 17));
        assert_eq!(
            (dns.mode, dns.persistence),
            (Mode::IpIp, Persistence::SrcIp)
        );
    }

    #[test]
    fn maglev_inputs_are_keyed_by_address_text() {
        let Layout { vips, .. } = layout(&basic());
        let web: Vec<_> = vips[0]
            .maglev
            .iter()
            .map(|b| (String::from_utf8(b.key.clone()).unwrap(), b.weight, b.index))
            .collect();
        assert_eq!(
            web,
            [
                ("198.51.100.1".to_string(), 1, 0),
                ("198.51.100.2".to_string(), 1, 1),
                ("198.51.100.3".to_string(), 2, 2),
            ]
        );
        assert_eq!(vips[1].maglev[1].key, b"2001:db8:1::2");
        assert_eq!(vips[1].maglev[1].index, 4);
        // Canonical text, so two spellings of one address are one Maglev identity.
        assert_eq!(maglev_key(ip("2001:DB8:0:0::1")), b"2001:db8::1");
    }

    #[test]
    fn a_draining_backend_is_kept_with_weight_zero() {
        let text =
            include_str!("../../examples/basic.toml").replacen("weight = 2", "weight = 0", 1);
        let config = parse_str(&text, "t").unwrap();
        let Layout { tables, vips } = layout(&config);
        // Still present and up, so established flows keep reaching it; Maglev gives it no
        // slots because of the zero weight.
        assert_eq!(
            (tables.backends[2].weight, tables.backends[2].up),
            (0, true)
        );
        assert_eq!(vips[0].maglev[2].weight, 0);
    }
}
