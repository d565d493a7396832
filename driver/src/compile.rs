//! Compiling a validated [`Config`] into the [`Tables`] every engine runs from: global
//! backend indices in config order (VIP by VIP), protocol numbers, and one Maglev table per
//! VIP built by `core` ([`Tables::rebuild_maglev`]), so the Maglev identity of a backend is
//! defined in one place.

use crate::config::Config;
use flowgate_core::maglev::MaglevTable;
use flowgate_core::tables::{Backend, Vip};
use flowgate_core::Tables;

/// The tables described by `config`. Every backend starts up; the health checker takes
/// them down.
pub fn compile(config: &Config) -> Tables {
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
    for vip in &config.vips {
        let backends = vip
            .backends
            .iter()
            .map(|b| Backend {
                address: b.address,
                mac: b.mac,
                weight: b.weight,
                up: true,
                vip: 0,
            })
            .collect();
        let v = Vip {
            name: vip.name.clone(),
            address: vip.address,
            port: vip.port,
            protocol: vip.protocol.number(),
            mode: vip.mode,
            persistence: vip.persistence,
            maglev: MaglevTable::default(),
            backends: Vec::new(),
        };
        // `Config` guarantees fewer than 65535 VIPs and backends and a prime `maglev_m`.
        tables.add_vip(v, backends, config.maglev_m);
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use flowgate_core::hash::Persistence;
    use flowgate_core::maglev::NO_BACKEND;
    use flowgate_core::rewrite::Mode;
    use std::net::{IpAddr, Ipv4Addr};

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
        let tables = compile(&config);
        assert_eq!(tables.own_mac, config.own_mac);
        assert_eq!(tables.keys, config.keys);
        assert_eq!(tables.timeouts, config.timeouts);
        assert_eq!(tables.geometry, config.geometry);
        assert_eq!(tables.encap_src_v4, config.encap_src_v4);
        assert_eq!(tables.encap_src_v6, config.encap_src_v6);
    }

    #[test]
    fn backends_get_global_indices_in_config_order() {
        let tables = compile(&basic());
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
        assert_eq!(tables.vips[0].backends, [0, 1, 2]);
        assert_eq!(tables.vips[1].backends, [3, 4]);
    }

    #[test]
    fn vips_carry_their_service_policy_and_maglev_table() {
        let config = basic();
        let tables = compile(&config);
        let web = &tables.vips[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.address, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!((web.port, web.protocol), (80, 6));
        assert_eq!(
            (web.mode, web.persistence),
            (Mode::Dsr, Persistence::FiveTuple)
        );
        let dns = &tables.vips[1];
        assert_eq!(dns.name, "dns");
        assert_eq!(dns.address, ip("2001:db8::53"));
        assert_eq!((dns.port, dns.protocol), (53, 17));
        assert_eq!(
            (dns.mode, dns.persistence),
            (Mode::IpIp, Persistence::SrcIp)
        );
        for (v, vip) in tables.vips.iter().enumerate() {
            assert_eq!(vip.maglev.len(), config.maglev_m);
            // Every slot holds one of this VIP's own backends, primary and secondary.
            for s in vip.maglev.slots() {
                assert!(
                    vip.backends.contains(&s.primary),
                    "vip {v} slot primary {}",
                    s.primary
                );
                assert!(s.secondary == NO_BACKEND || vip.backends.contains(&s.secondary));
            }
        }
        // web weights 1,1,2: the weight-2 backend owns about half the slots.
        let heavy = web.maglev.slots().iter().filter(|s| s.primary == 2).count() as f64;
        assert!(
            (heavy / config.maglev_m as f64 - 0.5).abs() < 0.01,
            "share {heavy}"
        );
    }

    #[test]
    fn a_draining_backend_is_kept_but_gets_no_slots() {
        let text =
            include_str!("../../examples/basic.toml").replacen("weight = 2", "weight = 0", 1);
        let tables = compile(&parse_str(&text, "t").unwrap());
        // Still present and up, so established flows keep reaching it.
        assert_eq!(
            (tables.backends[2].weight, tables.backends[2].up),
            (0, true)
        );
        assert!(tables.vips[0]
            .maglev
            .slots()
            .iter()
            .all(|s| s.primary != 2 && s.secondary != 2));
    }

    #[test]
    fn two_spellings_of_one_address_are_one_maglev_identity() {
        let a = basic();
        let text =
            include_str!("../../examples/basic.toml").replace("2001:db8:1::1", "2001:DB8:1:0::1");
        let b = parse_str(&text, "t").unwrap();
        assert_eq!(compile(&a).vips[1].maglev, compile(&b).vips[1].maglev);
    }
}
