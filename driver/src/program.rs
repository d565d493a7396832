//! Programming a device from [`Tables`]: the register image of the tables, written into
//! the shadow copy and committed once, so the data path sees the old state or the new one
//! and never a mix; plus the two paths that bypass the shadow on purpose (backend health
//! and the enable bit) and the counter read-out.
//!
//! The same code drives every backend of [`RegisterBus`]: the software model
//! ([`crate::SoftBus`]), hardware through a PCIe BAR ([`crate::MmapBus`]) and an RTL
//! simulation.
//!
//! What a commit does not cover: `UP_BITMAP` is deliberately not shadowed (a health change
//! must act at once). So [`program`] orders its writes to keep every up bit true for both
//! the old and the new tables across the commit: before the commit it clears the bit of
//! every backend index that changes owner (or goes down), after the commit it writes the
//! new bits. In between, an index whose backend is replaced reads as down — its frames take
//! their slot's secondary for that moment — and never as up for a backend whose health is
//! not known.

use crate::bus::{error_names, regs, BusExt, CommitTimeout, RegisterBus, COMMIT_POLLS};
use flowgate_core::counters::Counters;
use flowgate_core::flow_table::{Geometry, Timeouts};
use flowgate_core::hash::{HashKeys, Persistence, KEY_LEN};
use flowgate_core::maglev::{MaglevTable, Slot};
use flowgate_core::regmap::{
    self, Counter, Register, Tally, BACKEND_WINDOW, COUNTER_WINDOW, KEY_WORDS, MAGLEV_WINDOW,
    UP_BITMAP, VIP_WINDOW,
};
use flowgate_core::rewrite::{EncapSource, Mode};
use flowgate_core::tables::{Backend, Vip};
use flowgate_core::Tables;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

/// The register-map major version this driver speaks (`BLOCK_VERSION` bits 31..24).
pub const KNOWN_MAJOR: u32 = regmap::BLOCK_VERSION >> 24;

/// `vip` of a backend entry that is not in use: 65535 is never a VIP index (the config
/// allows at most 65534 VIPs), so the data path treats a slot naming it as down.
pub const NO_VIP: u16 = u16::MAX;

/// The most candidate sets per flow the hardware's flow table takes: two (two RAM banks,
/// one read each; `hdl::flow_table`'s `two_choice`, driven by the `FLOW_CHOICES` register,
/// which [`program`] writes from the config). A device older than register-map minor
/// [`regmap::FLOW_CHOICES_MINOR`] has one.
pub const HW_CHOICES: u32 = 2;

/// Why a device could not be programmed (or read). Every check that can fail is made
/// before the first write, except the device refusing a write, which is caught before
/// the commit: in no case does a partial state become active.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProgramError {
    #[error(
        "no flowgate register block: BLOCK_TYPE reads {found:#010x}, expected {:#010x}",
        regmap::BLOCK_TYPE
    )]
    NotFlowgate { found: u32 },
    #[error("register map version {found:#010x} has major {}; this driver knows major {KNOWN_MAJOR}", found >> 24)]
    UnsupportedVersion { found: u32 },
    #[error("{needed} VIPs do not fit the device's VIP table of {capacity}")]
    TooManyVips { needed: usize, capacity: u32 },
    #[error("{needed} backends do not fit the device's backend table of {capacity}")]
    TooManyBackends { needed: usize, capacity: u32 },
    #[error("VIP {vip} has a Maglev table of {slots} slots; the device has MAGLEV_M = {device}")]
    MaglevSize { vip: usize, slots: u32, device: u32 },
    #[error("flow table of {}×{} entries with {} choice(s) configured; the device is built with {}×{} and {} choice(s) (sets and ways are the build's; choices may be 1 up to the device's)", config.sets, config.ways, config.choices, device.sets, device.ways, device.choices)]
    Geometry { config: Geometry, device: Geometry },
    #[error("backend {backend}: weight {weight} does not fit the 16-bit weight field")]
    WeightTooLarge { backend: usize, weight: u32 },
    #[error("backend {backend} serves VIP {vip}, which is not in the tables")]
    BackendVip { backend: usize, vip: u16 },
    #[error("{register} = {value} is out of range (at most {max})")]
    OutOfRange {
        register: &'static str,
        value: u32,
        max: u32,
    },
    #[error("the device refused register accesses (ERROR = {bits:#x}: {}); nothing was committed", error_names(*bits).join(", "))]
    Refused { bits: u32 },
    #[error(transparent)]
    CommitTimeout(#[from] CommitTimeout),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Why a register image does not describe valid tables (only possible for state that
/// [`program`] did not write).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("VIP {vip}: mode code {code} names no rewrite mode")]
    Mode { vip: usize, code: u32 },
    #[error("VIP {vip}: persistence code {code} names no persistence mode")]
    Persistence { vip: usize, code: u32 },
    #[error("backend {backend} serves VIP {vip}, which is not valid")]
    BackendVip { backend: usize, vip: u16 },
}

/// The build parameters a device reports in its read-only geometry registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    pub version: u32,
    pub vip_capacity: u32,
    pub backend_capacity: u32,
    pub maglev_m: u32,
    pub geometry: Geometry,
}

impl Default for DeviceInfo {
    /// The default build of the register map.
    fn default() -> Self {
        DeviceInfo {
            version: regmap::BLOCK_VERSION,
            vip_capacity: regmap::DEFAULT_VIPS,
            backend_capacity: regmap::DEFAULT_BACKENDS,
            maglev_m: flowgate_core::maglev::DEFAULT_M,
            geometry: Geometry {
                sets: 1 << regmap::DEFAULT_FLOW_SETS_LOG2,
                ways: regmap::DEFAULT_FLOW_WAYS,
                choices: HW_CHOICES,
            },
        }
    }
}

/// Check the block header and read the device's geometry.
pub fn probe(bus: &mut dyn RegisterBus) -> Result<DeviceInfo, ProgramError> {
    let found = bus.read_reg(&regs::BLOCK_TYPE);
    if found != regmap::BLOCK_TYPE {
        return Err(ProgramError::NotFlowgate { found });
    }
    let version = bus.read_reg(&regs::BLOCK_VERSION);
    if version >> 24 != KNOWN_MAJOR {
        return Err(ProgramError::UnsupportedVersion { found: version });
    }
    Ok(DeviceInfo {
        version,
        vip_capacity: bus.read_reg(&regs::VIP_CAPACITY),
        backend_capacity: bus.read_reg(&regs::BACKEND_CAPACITY),
        maglev_m: bus.read_reg(&regs::MAGLEV_M),
        geometry: Geometry {
            // FLOW_SETS_LOG2 is 5 bits wide, so the shift cannot overflow.
            sets: 1 << bus.read_reg(&regs::FLOW_SETS_LOG2),
            ways: bus.read_reg(&regs::FLOW_WAYS),
            choices: if (version >> 16) & 0xff >= regmap::FLOW_CHOICES_MINOR {
                HW_CHOICES
            } else {
                1
            },
        },
    })
}

/// The shadowed register values and window entries that describe some [`Tables`] to a
/// device of a given [`DeviceInfo`]: what [`program`] writes, and what a device's state is
/// decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Shadowed registers by offset.
    pub registers: BTreeMap<u32, u32>,
    /// Every entry of the VIP table (unused ones invalid).
    pub vips: Vec<[u32; regmap::VIP_WORDS]>,
    /// Every entry of the backend table (unused ones serve [`NO_VIP`]).
    pub backends: Vec<[u32; 7]>,
    /// The Maglev slots of each VIP in use (`MAGLEV_M` words each).
    pub maglev: Vec<Vec<u32>>,
    /// `UP_BITMAP`, every word of the backend capacity.
    pub up: Vec<u32>,
}

impl Image {
    /// The image of `tables`, after checking that they fit `device`.
    pub fn encode(tables: &Tables, device: &DeviceInfo) -> Result<Image, ProgramError> {
        check_fit(tables, device)?;
        let mut registers = BTreeMap::new();
        let mut put = |reg: &Register, value: u32, max: u32| {
            if value > max.min(reg.mask()) {
                return Err(ProgramError::OutOfRange {
                    register: reg.name,
                    value,
                    max: max.min(reg.mask()),
                });
            }
            registers.insert(reg.offset, value);
            Ok(())
        };
        let (hi, lo) = regmap::mac_words(tables.own_mac);
        put(&regs::OWN_MAC_HI, hi, u32::MAX)?;
        put(&regs::OWN_MAC_LO, lo, u32::MAX)?;
        let v4 = &tables.encap_src_v4;
        put(&regs::ENCAP_V4_PREFIX, u32::from(v4.prefix), u32::MAX)?;
        put(&regs::ENCAP_V4_LEN, v4.len.into(), 32)?;
        let v6 = &tables.encap_src_v6;
        for (reg, chunk) in regs::ENCAP_V6_PREFIX
            .iter()
            .zip(v6.prefix.octets().chunks(4))
        {
            let word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            put(reg, word, u32::MAX)?;
        }
        put(&regs::ENCAP_V6_LEN, v6.len.into(), 128)?;
        let t = &tables.timeouts;
        put(&regs::TIMEOUT_TCP_MS, t.tcp_ms, u32::MAX)?;
        put(
            &regs::TIMEOUT_TCP_EMBRYONIC_MS,
            t.tcp_embryonic_ms,
            u32::MAX,
        )?;
        put(&regs::TIMEOUT_UDP_MS, t.udp_ms, u32::MAX)?;
        if device.geometry.choices > 1 {
            put(&regs::FLOW_CHOICES, tables.geometry.choices, HW_CHOICES)?;
        }
        for (key_regs, key) in key_registers(&tables.keys) {
            for (reg, word) in key_regs.iter().zip(regmap::key_words(key)) {
                put(reg, word, u32::MAX)?;
            }
        }

        let mut vips = vec![[0u32; regmap::VIP_WORDS]; device.vip_capacity as usize];
        for (entry, vip) in vips.iter_mut().zip(&tables.vips) {
            *entry = regmap::vip_entry(vip);
        }
        let mut unused = [0u32; 7];
        regmap::BACKEND_VIP.set(&mut unused, NO_VIP.into());
        let mut backends = vec![unused; device.backend_capacity as usize];
        for (i, (entry, b)) in backends.iter_mut().zip(&tables.backends).enumerate() {
            *entry = regmap::backend_entry(b).ok_or(ProgramError::WeightTooLarge {
                backend: i,
                weight: b.weight,
            })?;
        }
        let maglev = tables
            .vips
            .iter()
            .map(|v| {
                if v.maglev.is_empty() {
                    return vec![regmap::maglev_entry(Slot::EMPTY); device.maglev_m as usize];
                }
                v.maglev
                    .slots()
                    .iter()
                    .map(|&s| regmap::maglev_entry(s))
                    .collect()
            })
            .collect();
        let mut up = vec![0u32; up_words(device)];
        for (i, b) in tables.backends.iter().enumerate() {
            let (word, bit) = regmap::up_bit(i as u16);
            if b.up {
                up[word as usize] |= 1 << bit;
            }
        }
        Ok(Image {
            registers,
            vips,
            backends,
            maglev,
            up,
        })
    }

    /// The tables this image describes. The VIPs are the valid entries from 0 up to the
    /// first invalid one; the backends run up to the last entry that serves one of them.
    /// VIP names are control-plane labels the device does not hold: they decode as "".
    pub fn decode(&self, device: &DeviceInfo) -> Result<Tables, DecodeError> {
        let reg = |r: &Register| self.registers.get(&r.offset).copied().unwrap_or(r.reset);
        let words = |rs: &[Register]| rs.iter().map(reg).collect::<Vec<u32>>();
        let mut vips = Vec::new();
        for (i, w) in self.vips.iter().enumerate() {
            if regmap::VIP_VALID.get(w) == 0 {
                break;
            }
            let code = regmap::VIP_MODE.get(w) as u32;
            let mode = Mode::from_code(code, regmap::VIP_ENCAP_PORT.get(w) as u16)
                .ok_or(DecodeError::Mode { vip: i, code })?;
            let persistence = match regmap::VIP_PERSISTENCE.get(w) as u32 {
                c if c == regmap::persistence_code(Persistence::FiveTuple) => {
                    Persistence::FiveTuple
                }
                c if c == regmap::persistence_code(Persistence::SrcIp) => Persistence::SrcIp,
                code => return Err(DecodeError::Persistence { vip: i, code }),
            };
            let slots = self.maglev.get(i).map(Vec::as_slice).unwrap_or(&[]);
            vips.push(Vip {
                name: String::new(),
                address: address(regmap::VIP_ADDRESS.get(w), regmap::VIP_IS_V6.get(w)),
                port: regmap::VIP_PORT.get(w) as u16,
                protocol: regmap::VIP_PROTOCOL.get(w) as u8,
                mode,
                persistence,
                maglev: MaglevTable::from_slots(
                    slots
                        .iter()
                        .map(|&d| Slot {
                            primary: regmap::MAGLEV_PRIMARY.get(&[d]) as u16,
                            secondary: regmap::MAGLEV_SECONDARY.get(&[d]) as u16,
                        })
                        .collect(),
                ),
                backends: Vec::new(),
            });
        }
        let serves = |w: &[u32; 7]| (regmap::BACKEND_VIP.get(w) as usize) < vips.len();
        let used = self.backends.iter().rposition(serves).map_or(0, |i| i + 1);
        let mut backends = Vec::with_capacity(used);
        for (i, w) in self.backends[..used].iter().enumerate() {
            let vip = regmap::BACKEND_VIP.get(w) as u16;
            let Some(v) = vips.get_mut(vip as usize) else {
                return Err(DecodeError::BackendVip { backend: i, vip });
            };
            v.backends.push(i as u16);
            let mac = regmap::BACKEND_MAC.get(w).to_be_bytes();
            let (word, bit) = regmap::up_bit(i as u16);
            backends.push(Backend {
                address: address(regmap::BACKEND_ADDRESS.get(w), regmap::BACKEND_IS_V6.get(w)),
                mac: mac[10..16].try_into().expect("6 of 16 bytes"),
                weight: regmap::BACKEND_WEIGHT.get(w) as u32,
                up: self
                    .up
                    .get(word as usize)
                    .is_some_and(|w| w >> bit & 1 == 1),
                vip,
            });
        }
        let key = |rs: &[Register]| -> [u8; KEY_LEN] {
            let mut key = [0u8; KEY_LEN];
            for (chunk, w) in key.chunks_exact_mut(4).zip(words(rs)) {
                chunk.copy_from_slice(&w.to_be_bytes());
            }
            key
        };
        let v6: Vec<u8> = words(&regs::ENCAP_V6_PREFIX)
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        let v6: [u8; 16] = v6.try_into().expect("4 words are 16 bytes");
        let (mac_hi, mac_lo) = (reg(&regs::OWN_MAC_HI), reg(&regs::OWN_MAC_LO));
        let mut own_mac = [0u8; 6];
        own_mac[..2].copy_from_slice(&(mac_hi as u16).to_be_bytes());
        own_mac[2..].copy_from_slice(&mac_lo.to_be_bytes());
        Ok(Tables {
            own_mac,
            encap_src_v4: EncapSource {
                prefix: Ipv4Addr::from(reg(&regs::ENCAP_V4_PREFIX)),
                len: reg(&regs::ENCAP_V4_LEN) as u8,
            },
            encap_src_v6: EncapSource {
                prefix: Ipv6Addr::from(v6),
                len: reg(&regs::ENCAP_V6_LEN) as u8,
            },
            keys: HashKeys {
                rss: key(&regs::RSS_KEY),
                digest_hi: key(&regs::DIGEST_HI_KEY),
                digest_lo: key(&regs::DIGEST_LO_KEY),
            },
            timeouts: Timeouts {
                tcp_ms: reg(&regs::TIMEOUT_TCP_MS),
                tcp_embryonic_ms: reg(&regs::TIMEOUT_TCP_EMBRYONIC_MS),
                udp_ms: reg(&regs::TIMEOUT_UDP_MS),
            },
            geometry: Geometry {
                choices: if device.geometry.choices > 1 && reg(&regs::FLOW_CHOICES) == 2 {
                    2
                } else {
                    1
                },
                ..device.geometry
            },
            vips,
            backends,
        })
    }
}

fn key_registers(keys: &HashKeys) -> [(&'static [Register; KEY_WORDS], &[u8; KEY_LEN]); 3] {
    [
        (&regs::RSS_KEY, &keys.rss),
        (&regs::DIGEST_HI_KEY, &keys.digest_hi),
        (&regs::DIGEST_LO_KEY, &keys.digest_lo),
    ]
}

fn address(value: u128, is_v6: u128) -> IpAddr {
    if is_v6 != 0 {
        IpAddr::V6(Ipv6Addr::from(value))
    } else {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    }
}

/// Words of `UP_BITMAP` that hold the device's backends.
fn up_words(device: &DeviceInfo) -> usize {
    (device.backend_capacity as usize).div_ceil(32)
}

fn check_fit(tables: &Tables, device: &DeviceInfo) -> Result<(), ProgramError> {
    if tables.vips.len() > device.vip_capacity as usize {
        return Err(ProgramError::TooManyVips {
            needed: tables.vips.len(),
            capacity: device.vip_capacity,
        });
    }
    if tables.backends.len() > device.backend_capacity as usize {
        return Err(ProgramError::TooManyBackends {
            needed: tables.backends.len(),
            capacity: device.backend_capacity,
        });
    }
    // Sets and ways are the build's; the choice count is the device's to take, up to what
    // it reads (`device.geometry.choices`).
    if tables.geometry.sets != device.geometry.sets
        || tables.geometry.ways != device.geometry.ways
        || !(1..=device.geometry.choices).contains(&tables.geometry.choices)
    {
        return Err(ProgramError::Geometry {
            config: tables.geometry,
            device: device.geometry,
        });
    }
    for (i, v) in tables.vips.iter().enumerate() {
        // A VIP removed by a reload keeps its index as a tombstone
        // (`control::tombstone_vip`) with an empty table; it is written as M empty slots.
        if !v.maglev.is_empty() && v.maglev.len() != device.maglev_m {
            return Err(ProgramError::MaglevSize {
                vip: i,
                slots: v.maglev.len(),
                device: device.maglev_m,
            });
        }
    }
    for (i, b) in tables.backends.iter().enumerate() {
        if b.vip as usize >= tables.vips.len() {
            return Err(ProgramError::BackendVip {
                backend: i,
                vip: b.vip,
            });
        }
    }
    Ok(())
}

/// Write `tables` into the device's shadow copy, without committing: the data path keeps
/// running on the active copy. Fails before the first write if the tables do not fit,
/// and after the last if the device refused any of them (`ERROR`).
pub fn stage(bus: &mut dyn RegisterBus, tables: &Tables) -> Result<DeviceInfo, ProgramError> {
    stage_image(bus, tables).map(|(device, _)| device)
}

fn stage_image(
    bus: &mut dyn RegisterBus,
    tables: &Tables,
) -> Result<(DeviceInfo, Image), ProgramError> {
    let device = probe(bus)?;
    let image = Image::encode(tables, &device)?;
    bus.wait_not_busy(COMMIT_POLLS)?;
    bus.take_errors();
    for (&offset, &value) in &image.registers {
        bus.write32(offset, value);
    }
    // INDEX auto-increments after each command, so each table needs one INDEX write.
    bus.write32(VIP_WINDOW.index_reg(), 0);
    for entry in &image.vips {
        bus.write_next_entry(&VIP_WINDOW, entry);
    }
    bus.write32(BACKEND_WINDOW.index_reg(), 0);
    for entry in &image.backends {
        bus.write_next_entry(&BACKEND_WINDOW, entry);
    }
    for (v, slots) in image.maglev.iter().enumerate() {
        // The increment does not carry from the slot into the VIP part of INDEX: every
        // VIP's table starts with its own INDEX write.
        let first = regmap::maglev_index(v as u16, 0).expect("VIP count checked against capacity");
        bus.write32(MAGLEV_WINDOW.index_reg(), first);
        for &slot in slots {
            bus.write_next_entry(&MAGLEV_WINDOW, &[slot]);
        }
    }
    match bus.take_errors() {
        0 => Ok((device, image)),
        bits => Err(ProgramError::Refused { bits }),
    }
}

/// Make the shadow copy active, waiting (bounded) until the device reports it done.
/// Returns the new `COMMIT_GENERATION`.
pub fn commit(bus: &mut dyn RegisterBus) -> Result<u32, ProgramError> {
    Ok(bus.commit(COMMIT_POLLS)?)
}

/// Program `tables` into the device: everything shadowed is staged and committed once;
/// the up bits (not shadowed) are narrowed before the commit and set after it, as the
/// module doc explains.
pub fn program(bus: &mut dyn RegisterBus, tables: &Tables) -> Result<(), ProgramError> {
    let device = probe(bus)?;
    bus.wait_not_busy(COMMIT_POLLS)?;
    // Between commits the shadow holds what is active, so this is the active backend table.
    let active = read_backends(bus, &device);
    let (_, image) = stage_image(bus, tables)?;
    let up_now: Vec<u32> = (0..up_words(&device) as u32)
        .map(|w| bus.read32(UP_BITMAP.data_reg(w)))
        .collect();
    write_up_bitmap(bus, &up_across_commit(&up_now, &image, &active));
    commit(bus)?;
    write_up_bitmap(bus, &image.up);
    Ok(())
}

fn read_backends(bus: &mut dyn RegisterBus, device: &DeviceInfo) -> Vec<[u32; 7]> {
    let mut backends = vec![[0u32; 7]; device.backend_capacity as usize];
    bus.write32(BACKEND_WINDOW.index_reg(), 0);
    for entry in backends.iter_mut() {
        bus.read_next_entry(&BACKEND_WINDOW, entry);
    }
    backends
}

/// The up bits that hold for the active tables and for `image` alike: up now, up in the
/// image, and the same backend (address, MAC, VIP; a weight change keeps it) at that index.
fn up_across_commit(up_now: &[u32], image: &Image, active: &[[u32; 7]]) -> Vec<u32> {
    let same_backend = |i: usize| match (active.get(i), image.backends.get(i)) {
        (Some(old), Some(new)) => [
            regmap::BACKEND_ADDRESS,
            regmap::BACKEND_MAC,
            regmap::BACKEND_VIP,
            regmap::BACKEND_IS_V6,
        ]
        .iter()
        .all(|f| f.get(old) == f.get(new)),
        _ => false,
    };
    let mut up: Vec<u32> = image
        .up
        .iter()
        .zip(up_now)
        .map(|(new, now)| new & now)
        .collect();
    for (w, word) in up.iter_mut().enumerate() {
        for bit in 0..32 {
            if *word & (1 << bit) != 0 && !same_backend(w * 32 + bit) {
                *word &= !(1 << bit);
            }
        }
    }
    up
}

fn write_up_bitmap(bus: &mut dyn RegisterBus, words: &[u32]) {
    for (w, &word) in words.iter().enumerate() {
        bus.write32(UP_BITMAP.data_reg(w as u32), word);
    }
}

/// Mark one backend up or down, at once: a single write of `UP_SET` or `UP_CLEAR`, with
/// no read-modify-write another writer could tear. An index past the device's backend
/// table is ignored by the device, which sets `ERROR.index_out_of_range`.
pub fn set_backend_up(bus: &mut dyn RegisterBus, backend: u16, up: bool) {
    let reg = if up { &regs::UP_SET } else { &regs::UP_CLEAR };
    bus.write_reg(reg, backend.into());
}

/// Turn balancing on or off (`ENABLE`, not shadowed: takes effect at once).
pub fn set_enabled(bus: &mut dyn RegisterBus, enabled: bool) {
    bus.write_reg(&regs::ENABLE, enabled.into());
}

/// Read every counter of `vips` VIPs and `backends` backends through the COUNTER window.
/// Counters of a region are read with consecutive commands, so each region costs one
/// `INDEX` write.
pub fn read_counters(
    bus: &mut dyn RegisterBus,
    vips: u16,
    backends: u16,
) -> Result<Counters, ProgramError> {
    let device = probe(bus)?;
    if u32::from(vips) > device.vip_capacity {
        return Err(ProgramError::TooManyVips {
            needed: vips.into(),
            capacity: device.vip_capacity,
        });
    }
    if u32::from(backends) > device.backend_capacity {
        return Err(ProgramError::TooManyBackends {
            needed: backends.into(),
            capacity: device.backend_capacity,
        });
    }
    bus.take_errors();
    let mut counters = Counters::new(vips.into(), backends.into());
    let mut next = None;
    let mut data = [0u32; 2];
    for counter in Counter::all(vips, backends) {
        let index = counter.index();
        if next != Some(index) {
            bus.write32(COUNTER_WINDOW.index_reg(), index);
        }
        bus.read_next_entry(&COUNTER_WINDOW, &mut data);
        next = Some(index + 1);
        let value = regmap::COUNTER_VALUE.get(&data) as u64;
        let slot = match counter {
            Counter::FramesIn => &mut counters.frames_in,
            Counter::Forwarded => &mut counters.forwarded,
            Counter::Passed => &mut counters.passed,
            Counter::Drop(r) => &mut counters.drops[r.code() as usize],
            Counter::Flow(f) => {
                use regmap::FlowCounter as F;
                let fc = &mut counters.flow;
                match f {
                    F::Hits => &mut fc.hits,
                    F::Misses => &mut fc.misses,
                    F::Inserts => &mut fc.inserts,
                    F::Evictions => &mut fc.evictions,
                    F::Expirations => &mut fc.expirations,
                    F::Refused => &mut fc.refused,
                    F::Reselects => &mut fc.reselects,
                }
            }
            Counter::Vip(v, t) => tally(&mut counters.vips[v as usize], t),
            Counter::Backend(b, t) => tally(&mut counters.backends[b as usize], t),
        };
        *slot = value;
    }
    match bus.take_errors() {
        0 => Ok(counters),
        bits => Err(ProgramError::Refused { bits }),
    }
}

fn tally(pb: &mut flowgate_core::counters::PacketBytes, t: Tally) -> &mut u64 {
    match t {
        Tally::Packets => &mut pb.packets,
        Tally::Bytes => &mut pb.bytes,
    }
}

/// Read the tables back from the device's shadow copy (what the next commit would make
/// active), through the windows' READ commands.
pub fn read_shadow(bus: &mut dyn RegisterBus) -> Result<Tables, ProgramError> {
    let device = probe(bus)?;
    bus.take_errors();
    let mut registers = BTreeMap::new();
    for reg in regmap::REGISTERS.iter().filter(|r| r.shadowed) {
        registers.insert(reg.offset, bus.read_reg(reg));
    }
    let mut vips = vec![[0u32; regmap::VIP_WORDS]; device.vip_capacity as usize];
    bus.write32(VIP_WINDOW.index_reg(), 0);
    for entry in vips.iter_mut() {
        bus.read_next_entry(&VIP_WINDOW, entry);
    }
    let mut backends = vec![[0u32; 7]; device.backend_capacity as usize];
    bus.write32(BACKEND_WINDOW.index_reg(), 0);
    for entry in backends.iter_mut() {
        bus.read_next_entry(&BACKEND_WINDOW, entry);
    }
    let valid = vips
        .iter()
        .take_while(|w| regmap::VIP_VALID.get(*w) != 0)
        .count();
    let mut maglev = Vec::with_capacity(valid);
    for v in 0..valid {
        let first = regmap::maglev_index(v as u16, 0).expect("VIP capacity fits the INDEX");
        bus.write32(MAGLEV_WINDOW.index_reg(), first);
        let mut slots = vec![0u32; device.maglev_m as usize];
        for slot in slots.iter_mut() {
            let mut word = [0u32];
            bus.read_next_entry(&MAGLEV_WINDOW, &mut word);
            *slot = word[0];
        }
        maglev.push(slots);
    }
    let up = (0..up_words(&device) as u32)
        .map(|w| bus.read32(UP_BITMAP.data_reg(w)))
        .collect();
    if let bits @ 1.. = bus.take_errors() {
        return Err(ProgramError::Refused { bits });
    }
    let image = Image {
        registers,
        vips,
        backends,
        maglev,
        up,
    };
    Ok(image.decode(&device)?)
}
