//! Each hardware profile's example config has the profile's geometry: a user who replays
//! it through the profile's top (`flowgate replay --engine verilator --design ...`) gets
//! a design that takes it, and a profile change that forgets its example fails here.

use flowgate_hdl::profile::PROFILES;
use std::path::Path;

#[test]
fn every_example_config_has_its_profiles_geometry() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for p in PROFILES {
        let path = root.join(p.example_config);
        let config =
            flowgate_driver::load(&path).unwrap_or_else(|e| panic!("{}: {e}", p.example_config));
        let tables = flowgate_driver::compile(&config);
        let at = format!("profile {} / {}", p.name, p.example_config);
        assert_eq!(
            (tables.geometry.sets, tables.geometry.ways),
            (p.sets, p.ways),
            "{at}: flow-table geometry"
        );
        assert!(!tables.vips.is_empty(), "{at}: no VIP");
        assert!(
            tables.vips.len() <= p.vips,
            "{at}: more VIPs than the top holds"
        );
        assert!(
            tables.backends.len() <= p.backends,
            "{at}: more backends than the top holds"
        );
        for v in &tables.vips {
            assert_eq!(v.maglev.len(), p.maglev_m, "{at}: VIP {} Maglev M", v.name);
        }
    }
}
