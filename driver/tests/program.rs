//! `program()` through the register protocol into the software model of the device, and
//! back out of its active copy: everything the data path uses survives the register
//! encoding, a commit is atomic, health bits act at once, counters read back exactly, and
//! tables that do not fit are refused before anything is written.

use flowgate_core::counters::Counters;
use flowgate_core::flow_table::Geometry;
use flowgate_core::regmap::{self, UP_BITMAP};
use flowgate_core::verdict::DropReason;
use flowgate_core::Tables;
use flowgate_driver::bus::{regs, BusExt};
use flowgate_driver::{
    commit, compile, parse_str, program, read_counters, read_shadow, set_backend_up, stage,
    DeviceInfo, ProgramError, RegisterBus, SoftBus,
};
use std::fmt::Write as _;

const BASIC: &str = include_str!("../../examples/basic.toml");

/// Names label VIPs in the control plane (logs, admin API); the device does not hold
/// them, so tables read back from it have none.
fn unnamed(mut t: Tables) -> Tables {
    for v in &mut t.vips {
        v.name.clear();
    }
    t
}

/// `text` compiled, with the hardware's one candidate set per flow (software configs such
/// as examples/basic.toml default to two; a device refuses them, see
/// `a_two_choice_config_is_refused_by_the_device`).
fn tables(text: &str) -> Tables {
    let mut t = compile(&parse_str(text, "test.toml").unwrap());
    t.geometry.choices = flowgate_driver::program::HW_CHOICES;
    t
}

/// The default build but with `m` Maglev slots and `geometry`.
fn device(m: u32, geometry: Geometry) -> DeviceInfo {
    DeviceInfo {
        maglev_m: m,
        // A device looks flows up in as many sets as the hardware does, whatever the
        // geometry's default (two, for software engines).
        geometry: Geometry {
            choices: flowgate_driver::program::HW_CHOICES,
            ..geometry
        },
        ..DeviceInfo::default()
    }
}

/// A config with many VIPs and backends exercising every field: IPv4 and IPv6 VIPs and
/// backends, any-port VIPs, both protocols, modes and persistences, weights from draining
/// (0) to the 16-bit maximum, non-default globals.
fn many_config(vips: usize) -> String {
    let mut s = String::new();
    s.push_str(
        "own_mac = \"0a:1b:2c:3d:4e:5f\"\n\
         encap_src_v4 = \"10.200.0.0/14\"\n\
         encap_src_v6 = \"fd12:3456:789a::/48\"\n\
         hash_key = \"",
    );
    for i in 0..52u32 {
        write!(s, "{:02x}", (i * 37 + 11) % 256).unwrap();
    }
    s.push_str(
        "\"\nmaglev_m = 251\n\
         [flow_table]\nsets = 1024\nways = 8\n\
         [timeouts]\ntcp = 123456\ntcp_embryonic = 789\nudp = 4242\n",
    );
    let mut backend = 0u32;
    for v in 0..vips {
        let address = if v % 3 == 2 {
            format!("2001:db8:{v:x}::{:x}", v + 1)
        } else {
            format!("192.0.{}.{}", v / 200, v % 200 + 1)
        };
        write!(
            s,
            "[[vip]]\nname = \"svc{v}\"\naddress = \"{address}\"\nport = {}\nprotocol = \"{}\"\n\
             mode = \"{}\"\npersistence = \"{}\"\n",
            if v % 5 == 0 { 0 } else { 1000 + v },
            if v % 2 == 0 { "tcp" } else { "udp" },
            if v % 4 < 2 { "dsr" } else { "ipip" },
            if v % 7 < 4 { "5tuple" } else { "src-ip" },
        )
        .unwrap();
        for k in 0..(v % 9 + 1) {
            backend += 1;
            let address = if (v + k) % 2 == 0 {
                format!(
                    "10.{}.{}.{}",
                    backend / 65536,
                    backend / 256 % 256,
                    backend % 256
                )
            } else {
                format!("fd00::{backend:x}")
            };
            let weight = match backend % 6 {
                0 => 0,
                1 => 65535,
                w => w * 100,
            };
            // A VIP keeps at least one weighted backend (the first), so its table is full.
            let weight = if k == 0 { weight.max(1) } else { weight };
            write!(
                s,
                "[[vip.backend]]\naddress = \"{address}\"\nmac = \"02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"\n\
                 weight = {weight}\n",
                backend % 251,
                v,
                k,
                backend / 256,
                backend % 256
            )
            .unwrap();
        }
    }
    s
}

fn many_tables() -> Tables {
    let mut t = tables(&many_config(60));
    // The config sets only the RSS key; the digest keys are registers too.
    t.keys.digest_hi[0] ^= 0xa5;
    t.keys.digest_lo[51] ^= 0x3c;
    t
}

fn many_device() -> DeviceInfo {
    device(
        251,
        Geometry {
            sets: 1024,
            ways: 8,
            choices: 1,
        },
    )
}

/// The device takes the config's choice count at run time (`FLOW_CHOICES`): two choices
/// program and read back as two, one as one; a device older than the register (minor 1)
/// reads as one choice and refuses two before writing anything.
#[test]
fn the_choice_count_is_programmed_and_an_older_device_refuses_two() {
    let two = compile(&parse_str(BASIC, "basic.toml").unwrap());
    assert_eq!(
        two.geometry.choices, 2,
        "examples/basic.toml asks two choices"
    );
    for choices in [2, 1, 2] {
        let mut want = two.clone();
        want.geometry.choices = choices;
        let mut bus = SoftBus::new(DeviceInfo::default()).unwrap();
        program(&mut bus, &want).unwrap();
        assert_eq!(bus.read_reg(&regs::FLOW_CHOICES), choices);
        assert_eq!(bus.active_tables().unwrap(), unnamed(want.clone()));
    }

    let older = DeviceInfo {
        version: 0x0001_0000,
        geometry: Geometry {
            choices: 1,
            ..DeviceInfo::default().geometry
        },
        ..DeviceInfo::default()
    };
    let mut bus = SoftBus::new(older).unwrap();
    assert_eq!(flowgate_driver::program::probe(&mut bus).unwrap(), older);
    let err = program(&mut bus, &two).unwrap_err();
    assert_eq!(
        err,
        ProgramError::Geometry {
            config: two.geometry,
            device: older.geometry
        }
    );
    assert_eq!(bus.generation(), 0, "nothing committed");
}

#[test]
fn basic_config_round_trips_through_the_registers() {
    let want = tables(BASIC);
    let mut bus = SoftBus::new(DeviceInfo::default()).unwrap();
    program(&mut bus, &want).unwrap();
    assert_eq!(bus.active_tables().unwrap(), unnamed(want.clone()));
    assert_eq!(bus.generation(), 1, "one commit");
    // Read back through the READ commands as a driver would: the same.
    assert_eq!(read_shadow(&mut bus).unwrap(), unnamed(want));
}

#[test]
fn many_vips_and_backends_round_trip_through_the_registers() {
    let mut want = many_tables();
    assert_eq!(want.vips.len(), 60);
    assert!(want.backends.len() > 250, "{}", want.backends.len());
    assert!(want.backends.iter().any(|b| b.weight == 0));
    assert!(want.backends.iter().any(|b| b.weight == 65535));
    // Health state is part of what is programmed.
    want.backends[3].up = false;
    want.backends[200].up = false;
    let mut bus = SoftBus::new(many_device()).unwrap();
    program(&mut bus, &want).unwrap();
    assert_eq!(bus.active_tables().unwrap(), unnamed(want));
}

#[test]
fn a_commit_switches_from_one_state_to_the_other_and_never_mixes() {
    let a = many_tables();
    // B: fewer VIPs and backends than A (so A's extra entries must go), other globals.
    let b = tables(
        &BASIC
            .replace("maglev_m = 65537", "maglev_m = 251")
            .replace("sets = 16384", "sets = 1024")
            .replace("ways = 4", "ways = 8")
            .replace("udp = 30000", "udp = 1"),
    );
    assert!(b.vips.len() < a.vips.len() && b.backends.len() < a.backends.len());
    // Commits take a while, as in hardware: the swap happens on the 3rd STATUS read.
    let mut bus = SoftBus::new(many_device()).unwrap().with_commit_latency(3);
    program(&mut bus, &a).unwrap();
    let generation = bus.generation();

    stage(&mut bus, &b).unwrap();
    assert_eq!(
        bus.active_tables().unwrap(),
        unnamed(a.clone()),
        "staged only"
    );
    assert_eq!(bus.shadow_tables().unwrap(), unnamed(b.clone()));
    assert_eq!(bus.generation(), generation);

    // The COMMIT write alone does not swap; while it is busy the data path still has A.
    bus.write_reg(&regs::COMMIT, 1);
    assert_eq!(bus.active_tables().unwrap(), unnamed(a.clone()));
    bus.wait_not_busy(10).unwrap();
    assert_eq!(bus.active_tables().unwrap(), unnamed(b.clone()));
    assert_eq!(bus.generation(), generation + 1);

    // And back to the larger state: nothing of B is left over.
    program(&mut bus, &a).unwrap();
    assert_eq!(bus.active_tables().unwrap(), unnamed(a));
}

#[test]
fn tables_that_do_not_fit_are_refused_before_anything_is_written() {
    let a = many_tables();
    let mut bus = SoftBus::new(many_device()).unwrap();
    program(&mut bus, &a).unwrap();
    let before = bus.shadow_tables().unwrap();

    let too_many = tables(&many_config(65));
    assert_eq!(
        program(&mut bus, &too_many),
        Err(ProgramError::TooManyVips {
            needed: 65,
            capacity: 64
        })
    );
    let basic = tables(BASIC);
    assert_eq!(
        program(&mut bus, &basic),
        Err(ProgramError::Geometry {
            config: basic.geometry,
            device: a.geometry
        })
    );
    let mut wide = a.clone();
    wide.backends[5].weight = 65536;
    assert_eq!(
        program(&mut bus, &wide),
        Err(ProgramError::WeightTooLarge {
            backend: 5,
            weight: 65536
        })
    );
    let mut long_prefix = a.clone();
    long_prefix.encap_src_v4.len = 33;
    assert!(matches!(
        program(&mut bus, &long_prefix),
        Err(ProgramError::OutOfRange {
            register: "ENCAP_V4_LEN",
            value: 33,
            ..
        })
    ));
    assert_eq!(bus.shadow_tables().unwrap(), before, "shadow untouched");
    assert_eq!(bus.active_tables().unwrap(), unnamed(a));
    assert_eq!(bus.generation(), 1);

    // A device with room for 4 backends, and one whose Maglev tables are another size.
    let mut small = SoftBus::new(DeviceInfo {
        backend_capacity: 4,
        ..DeviceInfo::default()
    })
    .unwrap();
    assert_eq!(
        program(&mut small, &basic),
        Err(ProgramError::TooManyBackends {
            needed: 5,
            capacity: 4
        })
    );
    let mut other_m = SoftBus::new(device(4093, Geometry::default())).unwrap();
    assert_eq!(
        program(&mut other_m, &basic),
        Err(ProgramError::MaglevSize {
            vip: 0,
            slots: 65537,
            device: 4093
        })
    );
    assert!(other_m.active_tables().unwrap().vips.is_empty());
}

#[test]
fn a_commit_that_never_completes_is_an_error_and_the_old_state_stays() {
    let mut bus = SoftBus::new(many_device())
        .unwrap()
        .with_commit_latency(u32::MAX);
    let err = program(&mut bus, &many_tables()).unwrap_err();
    assert!(matches!(err, ProgramError::CommitTimeout(_)), "{err}");
    assert!(bus.active_tables().unwrap().vips.is_empty());
}

#[test]
fn set_backend_up_flips_exactly_one_bit_without_a_commit() {
    let t = many_tables();
    let mut bus = SoftBus::new(many_device()).unwrap();
    program(&mut bus, &t).unwrap();
    let words = |bus: &mut SoftBus| -> Vec<u32> {
        (0..UP_BITMAP.entries)
            .map(|w| bus.read32(UP_BITMAP.data_reg(w)))
            .collect()
    };
    let before = words(&mut bus);
    let generation = bus.generation();

    set_backend_up(&mut bus, 37, false);
    let after = words(&mut bus);
    let flipped: u32 = before
        .iter()
        .zip(&after)
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(flipped, 1);
    assert_eq!(after[1] & 1 << 5, 0, "backend 37 is bit 5 of word 1");
    let mut want = unnamed(t);
    want.backends[37].up = false;
    assert_eq!(
        bus.active_tables().unwrap(),
        want,
        "visible without a commit"
    );
    assert_eq!(bus.generation(), generation);

    set_backend_up(&mut bus, 37, true);
    assert_eq!(words(&mut bus), before);

    // An index past the table is refused by the device and flagged.
    set_backend_up(&mut bus, 1024, true);
    assert_eq!(words(&mut bus), before);
    assert_eq!(bus.take_errors(), 1 << regmap::ERROR_INDEX_OUT_OF_RANGE.lsb);
}

#[test]
fn counters_read_through_the_counter_window_equal_the_device_counters() {
    let (vips, backends) = (60u16, 300u16);
    let mut c = Counters::new(vips.into(), backends.into());
    // Distinct values with bits in both halves of the 64-bit counter.
    let mut n = 0u64;
    let mut next = || {
        n += 1;
        n << 33 | (n * 0x9e37) & 0xffff_ffff
    };
    c.frames_in = next();
    c.forwarded = next();
    c.passed = next();
    // Index 0 of `drops` is no reason (codes start at 1), so it has no counter.
    for r in DropReason::ALL {
        c.drops[r.code() as usize] = next();
    }
    let f = &mut c.flow;
    for x in [
        &mut f.hits,
        &mut f.misses,
        &mut f.inserts,
        &mut f.evictions,
        &mut f.expirations,
        &mut f.refused,
        &mut f.reselects,
    ] {
        *x = next();
    }
    for pb in c.vips.iter_mut().chain(c.backends.iter_mut()) {
        pb.packets = next();
        pb.bytes = next();
    }
    let mut bus = SoftBus::new(many_device()).unwrap();
    bus.set_counters(c.clone());
    assert_eq!(read_counters(&mut bus, vips, backends).unwrap(), c);
    assert_eq!(
        read_counters(&mut bus, 65, 0),
        Err(ProgramError::TooManyVips {
            needed: 65,
            capacity: 64
        })
    );
}

#[test]
fn program_is_the_same_through_a_dyn_bus() {
    // The engine-facing path: a boxed bus chosen at run time.
    let mut bus: Box<dyn RegisterBus> = Box::new(SoftBus::new(DeviceInfo::default()).unwrap());
    program(bus.as_mut(), &tables(BASIC)).unwrap();
    assert_eq!(commit(bus.as_mut()), Ok(2));
    assert_eq!(read_shadow(bus.as_mut()).unwrap(), unnamed(tables(BASIC)));
}

/// Counts the accesses that reach the bus.
struct Counting<B> {
    bus: B,
    reads: usize,
    writes: usize,
}

impl<B: RegisterBus> RegisterBus for Counting<B> {
    fn read32(&mut self, offset: u32) -> u32 {
        self.reads += 1;
        self.bus.read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.writes += 1;
        self.bus.write32(offset, value)
    }
}

#[test]
fn the_health_fast_path_is_one_write_and_a_reprogram_one_commit() {
    let t = many_tables();
    let mut bus = Counting {
        bus: SoftBus::new(many_device()).unwrap(),
        reads: 0,
        writes: 0,
    };
    program(&mut bus, &t).unwrap();
    assert_eq!(bus.bus.generation(), 1);
    // Every entry of every table once: INDEX per table (per VIP for Maglev), DATA words
    // and CMD per entry, plus the shadowed registers, COMMIT, ERROR clears and the bitmap
    // (twice: narrowed before the commit, then set); and a READ command per backend entry,
    // to learn which up bits may survive the commit.
    let d = many_device();
    let entries = d.vip_capacity as usize * (flowgate_core::regmap::VIP_WORDS + 1)
        + d.backend_capacity as usize * 8
        + t.vips.len() * (1 + 2 * d.maglev_m as usize)
        + d.backend_capacity as usize
        + 2 * (d.backend_capacity as usize).div_ceil(32);
    assert!(
        bus.writes >= entries && bus.writes < entries + 100,
        "{} writes for {entries} window writes",
        bus.writes
    );
    let (reads, writes) = (bus.reads, bus.writes);
    set_backend_up(&mut bus, 12, false);
    assert_eq!((bus.reads - reads, bus.writes - writes), (0, 1));
    assert!(!bus.bus.active_tables().unwrap().backends[12].up);
}

/// A bus that, after every write, checks that each set up bit names a backend known to be
/// up: in the active tables, the backend at that index must be one that is up in the old
/// tables or in the new ones (same address, MAC and VIP).
struct UpBitWatch {
    bus: SoftBus,
    known_up: Vec<(std::net::IpAddr, [u8; 6], u16)>,
    violations: Vec<String>,
    writes: usize,
}

impl RegisterBus for UpBitWatch {
    fn read32(&mut self, offset: u32) -> u32 {
        let value = self.bus.read32(offset);
        self.check();
        value
    }

    fn write32(&mut self, offset: u32, value: u32) {
        self.bus.write32(offset, value);
        self.writes += 1;
        self.check();
    }
}

impl UpBitWatch {
    fn check(&mut self) {
        let active = self.bus.active_tables().unwrap();
        for (i, b) in active.backends.iter().enumerate() {
            if b.up && !self.known_up.contains(&(b.address, b.mac, b.vip)) {
                self.violations.push(format!(
                    "after write {}: index {i} ({}) reads up but is not known up",
                    self.writes, b.address
                ));
            }
        }
    }
}

#[test]
fn a_reprogram_that_replaces_a_backend_never_shows_it_up_before_its_health_is_known() {
    let base = BASIC.replace("maglev_m = 65537", "maglev_m = 251");
    let old = tables(&base);
    // The new state puts another backend at index 1 (a removed one's index reused), whose
    // health is not known yet (down), and takes backend 0 down.
    let mut new = old.clone();
    new.backends[1].address = "198.51.100.99".parse().unwrap();
    new.backends[1].mac = [2, 0, 0, 0, 0x99, 0x99];
    new.backends[1].up = false;
    new.backends[0].up = false;
    let mut bus = SoftBus::new(device(251, Geometry::default()))
        .unwrap()
        .with_commit_latency(2);
    program(&mut bus, &old).unwrap();
    let known_up = |t: &Tables| {
        t.backends
            .iter()
            .filter(|b| b.up)
            .map(|b| (b.address, b.mac, b.vip))
            .collect::<Vec<_>>()
    };
    // Backend 0 is up only in the old tables: it may read up until the commit, not after;
    // the check is per state, so allow exactly old-up before and new-up after the swap.
    let mut watch = UpBitWatch {
        bus,
        known_up: [known_up(&old), known_up(&new)].concat(),
        violations: Vec::new(),
        writes: 0,
    };
    program(&mut watch, &new).unwrap();
    assert!(watch.violations.is_empty(), "{:#?}", watch.violations);
    assert_eq!(watch.bus.active_tables().unwrap(), unnamed(new));
}

/// Found by differential fuzzing (`sim/tests/hw-regressions/reload-removing-a-vip`): a
/// reload that removes a VIP leaves a tombstone at its index with an empty Maglev table,
/// and `program` refused it ("VIP 1 has a Maglev table of 0 slots"), so no hardware
/// engine could take the reload. The tombstone is written as M empty slots.
#[test]
fn a_reload_that_removes_a_vip_programs_its_tombstone() {
    // The example as a hardware config: one candidate set per flow.
    let basic = BASIC.replacen("choices = 2", "choices = 1", 1);
    let control =
        flowgate_driver::ControlPlane::new(parse_str(&basic, "basic.toml").unwrap(), None);
    let without_dns = basic
        .split("[[vip]]")
        .filter(|part| !part.contains("name = \"dns\""))
        .collect::<Vec<_>>()
        .join("[[vip]]");
    control.reload_str(&without_dns, "reload.toml").unwrap();
    let after = control.tables();
    let dns = after.vips.iter().position(|v| v.maglev.is_empty());
    let dns = dns.expect("the removed VIP stays as a tombstone with an empty table");
    let mut bus = SoftBus::new(DeviceInfo::default()).unwrap();
    program(&mut bus, &tables(BASIC)).unwrap();
    program(&mut bus, &after).unwrap();
    let active = bus.active_tables().unwrap();
    assert_eq!(active.vips.len(), after.vips.len());
    assert!(
        active.vips[dns]
            .maglev
            .slots()
            .iter()
            .all(|s| *s == flowgate_core::maglev::Slot::EMPTY),
        "the tombstone's slots are all empty"
    );
    assert_eq!(active.vips[0].maglev, after.vips[0].maglev, "the kept VIP");
}
