//! The register block against the driver's software model of the same page
//! (`flowgate_driver::SoftBus`): the driver's own `program()` / `read_shadow()` /
//! `read_counters()` run against the RTL through AXI4-Lite handshakes and against
//! `SoftBus`, and every register, window entry and the pipeline-side view must agree.
//! Plus: every register's reset value, the error paths, commit timing against
//! `frame_boundary`, synthesis and lint.

use flowgate_core::counters::Counters;
use flowgate_core::flow_table::Geometry;
use flowgate_core::regmap::{
    self, Access, Counter, BACKEND_WINDOW, COUNTER_WINDOW, FLOW_WINDOW, MAGLEV_WINDOW, UP_BITMAP,
    VIP_WINDOW,
};
use flowgate_core::verdict::DropReason;
use flowgate_core::Tables;
use flowgate_driver::bus::regs;
use flowgate_driver::program::Image;
use flowgate_driver::{BusExt, DeviceInfo, RegisterBus, SoftBus};
use flowgate_hdl::csr::{Csr, CsrParams};
use flowgate_hdl::toolchain::{self, SynthFlow};
use rust_hdl::prelude::*;
use std::sync::mpsc::{channel, Receiver, Sender};

// A shrunk build: 4 VIPs, 8 backends, M = 13 in 16-slot tables.
const VIPS: usize = 4;
const BACKEND_BITS: usize = 3;
const SLOT_BITS: usize = 4;
const MAGLEV_BITS: usize = 6;
const UP_WORDS: usize = 1;
type Dut = Csr<VIPS, BACKEND_BITS, SLOT_BITS, MAGLEV_BITS, UP_WORDS>;
const M: u32 = 13;
const BACKENDS: u32 = 8;

fn params() -> CsrParams {
    CsrParams {
        backend_capacity: BACKENDS,
        maglev_m: M,
        flow_sets_log2: 14,
        flow_ways: 4,
    }
}

fn device() -> DeviceInfo {
    DeviceInfo {
        version: regmap::BLOCK_VERSION,
        vip_capacity: VIPS as u32,
        backend_capacity: BACKENDS,
        maglev_m: M,
        geometry: Geometry {
            sets: 1 << 14,
            ways: 4,
            choices: flowgate_driver::program::HW_CHOICES,
        },
    }
}

/// `examples/basic.toml` with a Maglev size that fits the shrunk build.
fn example_tables(edit: impl Fn(String) -> String) -> Tables {
    let text =
        include_str!("../../examples/basic.toml").replace("maglev_m = 65537", "maglev_m = 13");
    let config = flowgate_driver::parse_str(&edit(text), "basic.toml").expect("example parses");
    flowgate_driver::compile(&config)
}

/// What the pipeline sees, read from the block's pipeline-side ports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    enable: bool,
    own_mac: u64,
    encap_v4: (u32, u32),
    encap_v6: (u128, u32),
    timeouts: [u32; 3],
    keys: [Vec<u32>; 3],
    vips: Vec<[u32; flowgate_core::regmap::VIP_WORDS]>,
    backends: Vec<[u32; 7]>,
    /// `VIPS × 2^SLOT_BITS` slots, VIP-major.
    maglev: Vec<u32>,
    up: Vec<u32>,
    busy: bool,
}

enum Req {
    Read(u32),
    Write(u32, u32),
    Boundary(bool),
    Idle(u32),
    View,
}

enum Resp {
    Value(u32),
    Done,
    View(Box<View>),
}

/// The RTL as a `RegisterBus`, for the driver running in its own thread.
struct HwBus {
    tx: Sender<Req>,
    rx: Receiver<Resp>,
}

impl HwBus {
    fn call(&mut self, req: Req) -> Resp {
        self.tx.send(req).expect("simulation stopped");
        self.rx.recv().expect("simulation stopped")
    }
    fn view(&mut self) -> View {
        match self.call(Req::View) {
            Resp::View(v) => *v,
            _ => unreachable!(),
        }
    }
    fn boundary(&mut self, on: bool) {
        self.call(Req::Boundary(on));
    }
    fn idle(&mut self, clocks: u32) {
        self.call(Req::Idle(clocks));
    }
}

impl RegisterBus for HwBus {
    fn read32(&mut self, offset: u32) -> u32 {
        if offset >= regmap::MAP_SIZE {
            return u32::MAX;
        }
        match self.call(Req::Read(offset)) {
            Resp::Value(v) => v,
            _ => unreachable!(),
        }
    }
    fn write32(&mut self, offset: u32, value: u32) {
        if offset < regmap::MAP_SIZE {
            self.call(Req::Write(offset, value));
        }
    }
}

/// Answers the block's FLOW and COUNTER read requests one clock after they are made, as
/// the flow table and counter blocks would: the flow table reads empty (as `SoftBus`
/// models it), counters come from `counters`.
struct Responder {
    counters: Counters,
    flow_pending: bool,
    ctr_pending: Option<u32>,
}

type R<T> = Result<T, SimError>;

/// One clock: rising edge, then falling edge; the responder acts at the falling edge.
fn tick(sim: &mut Sim<Dut>, x: Box<Dut>, r: &mut Responder) -> R<Box<Dut>> {
    let x = sim.watch(|x| x.clock.val().clk, x)?;
    let mut x = sim.watch(|x| !x.clock.val().clk, x)?;
    x.flow_rd_valid.next = r.flow_pending;
    x.flow_rd_data.next = 0u64.into();
    x.ctr_rd_valid.next = r.ctr_pending.is_some();
    let value = r
        .ctr_pending
        .and_then(Counter::from_index)
        .and_then(|c| c.value(&r.counters))
        .unwrap_or(0);
    x.ctr_rd_data.next = value.into();
    r.flow_pending = x.flow_rd_req.val();
    r.ctr_pending = x.ctr_rd_req.val().then(|| x.ctr_rd_index.val().to_u32());
    Ok(x)
}

/// Bound on the clocks any one handshake may take (a commit copy is 65 clocks here).
const PATIENCE: u32 = 1000;

fn axi_write(
    sim: &mut Sim<Dut>,
    mut x: Box<Dut>,
    r: &mut Responder,
    off: u32,
    v: u32,
) -> R<Box<Dut>> {
    x.s_axil_awaddr.next = (off as u64).into();
    x.s_axil_wdata.next = (v as u64).into();
    x.s_axil_wstrb.next = 0xfu64.into();
    x.s_axil_awvalid.next = true;
    x.s_axil_wvalid.next = true;
    x.s_axil_bready.next = true;
    let mut n = 0;
    loop {
        x = sim.wait(1, x)?;
        let taken = x.s_axil_awready.val() && x.s_axil_wready.val();
        x = tick(sim, x, r)?;
        if taken {
            break;
        }
        n += 1;
        if n >= PATIENCE {
            println!("HALT: no AXI handshake within {PATIENCE} clocks");
            sim.halt(x)?;
            return Err(SimError::SimHalted);
        }
    }
    x.s_axil_awvalid.next = false;
    x.s_axil_wvalid.next = false;
    let mut n = 0;
    loop {
        x = sim.wait(1, x)?;
        let done = x.s_axil_bvalid.val();
        if x.s_axil_bresp.val() != 0u64 {
            println!("HALT: bresp not OKAY");
            sim.halt(x)?;
            return Err(SimError::SimHalted);
        }
        x = tick(sim, x, r)?;
        if done {
            break;
        }
        n += 1;
        if n >= PATIENCE {
            println!("HALT: no AXI handshake within {PATIENCE} clocks");
            sim.halt(x)?;
            return Err(SimError::SimHalted);
        }
    }
    x.s_axil_bready.next = false;
    Ok(x)
}

fn axi_read(
    sim: &mut Sim<Dut>,
    mut x: Box<Dut>,
    r: &mut Responder,
    off: u32,
) -> R<(Box<Dut>, u32)> {
    x.s_axil_araddr.next = (off as u64).into();
    x.s_axil_arvalid.next = true;
    x.s_axil_rready.next = true;
    let mut n = 0;
    loop {
        x = sim.wait(1, x)?;
        let taken = x.s_axil_arready.val();
        x = tick(sim, x, r)?;
        if taken {
            break;
        }
        n += 1;
        if n >= PATIENCE {
            println!("HALT: no AXI handshake within {PATIENCE} clocks");
            sim.halt(x)?;
            return Err(SimError::SimHalted);
        }
    }
    x.s_axil_arvalid.next = false;
    let mut n = 0;
    let value = loop {
        x = sim.wait(1, x)?;
        let done = x.s_axil_rvalid.val();
        let value = x.s_axil_rdata.val().to_u32();
        if x.s_axil_rresp.val() != 0u64 {
            println!("HALT: rresp not OKAY");
            sim.halt(x)?;
            return Err(SimError::SimHalted);
        }
        x = tick(sim, x, r)?;
        if done {
            break value;
        }
        n += 1;
        if n >= PATIENCE {
            println!("HALT: no AXI handshake within {PATIENCE} clocks");
            sim.halt(x)?;
            return Err(SimError::SimHalted);
        }
    };
    x.s_axil_rready.next = false;
    Ok((x, value))
}

fn words<const N: usize>(b: Bits<N>, n: usize) -> Vec<u32> {
    (0..n).map(|k| b.get_bits::<32>(32 * k).to_u32()).collect()
}

/// Reads every pipeline-side output, sweeping the two RAM read ports over every address.
fn view(sim: &mut Sim<Dut>, mut x: Box<Dut>, r: &mut Responder) -> R<(Box<Dut>, View)> {
    let key = |k: Bits<{ flowgate_hdl::csr::KEY_BITS }>| {
        // Word 0 (key bytes 0..3) is on top.
        let mut w = words(k, regmap::KEY_WORDS);
        w.reverse();
        w
    };
    let v6 = x.encap_v6_prefix.val();
    let mut v = View {
        enable: x.enable.val(),
        own_mac: x.own_mac.val().to_u64(),
        encap_v4: (
            x.encap_v4_prefix.val().to_u32(),
            x.encap_v4_len.val().to_u32(),
        ),
        encap_v6: (
            words(v6, 4)
                .iter()
                .rev()
                .fold(0u128, |a, &w| a << 32 | w as u128),
            x.encap_v6_len.val().to_u32(),
        ),
        timeouts: [
            x.timeout_tcp_ms.val().to_u32(),
            x.timeout_embryonic_ms.val().to_u32(),
            x.timeout_udp_ms.val().to_u32(),
        ],
        keys: [
            key(x.rss_key.val()),
            key(x.digest_hi_key.val()),
            key(x.digest_lo_key.val()),
        ],
        vips: (0..VIPS)
            .map(|i| {
                words(x.vip_entry[i].val(), flowgate_core::regmap::VIP_WORDS)
                    .try_into()
                    .unwrap()
            })
            .collect(),
        backends: Vec::new(),
        maglev: Vec::new(),
        up: (0..UP_WORDS).map(|w| x.up[w].val().to_u32()).collect(),
        busy: x.commit_busy.val(),
    };
    let n = (1usize << BACKEND_BITS).max(1 << MAGLEV_BITS);
    for a in 0..=n {
        // Data of the address set one clock earlier.
        if a > 0 {
            if a <= 1 << BACKEND_BITS {
                v.backends
                    .push(words(x.backend_rd_data.val(), 7).try_into().unwrap());
            }
            if a <= 1 << MAGLEV_BITS {
                v.maglev.push(x.maglev_rd_data.val().to_u32());
            }
        }
        x.backend_rd_addr.next = ((a % (1 << BACKEND_BITS)) as u64).into();
        x.maglev_rd_addr.next = ((a % (1 << MAGLEV_BITS)) as u64).into();
        x = tick(sim, x, r)?;
    }
    Ok((x, v))
}

/// Runs `script` (the driver side) against the RTL; panics in either side fail the test.
fn with_hardware(counters: Counters, script: impl FnOnce(&mut HwBus) + Send + 'static) {
    let (req_tx, req_rx) = channel();
    let (resp_tx, resp_rx) = channel();
    let driver = std::thread::spawn(move || {
        let mut bus = HwBus {
            tx: req_tx,
            rx: resp_rx,
        };
        script(&mut bus);
    });
    let mut uut = Dut::new(params()).expect("test build fits");
    uut.connect_all();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<Dut>| x.clock.next = !x.clock.val());
    sim.add_testbench(move |mut sim: Sim<Dut>| {
        let mut x = sim.init()?;
        let mut r = Responder {
            counters: counters.clone(),
            flow_pending: false,
            ctr_pending: None,
        };
        x.frame_boundary.next = true;
        x = tick(&mut sim, x, &mut r)?;
        while let Ok(req) = req_rx.recv() {
            let resp = match req {
                Req::Read(off) => {
                    let (y, v) = axi_read(&mut sim, x, &mut r, off)?;
                    x = y;
                    Resp::Value(v)
                }
                Req::Write(off, v) => {
                    x = axi_write(&mut sim, x, &mut r, off, v)?;
                    Resp::Done
                }
                Req::Boundary(on) => {
                    x.frame_boundary.next = on;
                    x = tick(&mut sim, x, &mut r)?;
                    Resp::Done
                }
                Req::Idle(n) => {
                    for _ in 0..n {
                        x = tick(&mut sim, x, &mut r)?;
                    }
                    Resp::Done
                }
                Req::View => {
                    let (y, v) = view(&mut sim, x, &mut r)?;
                    x = y;
                    Resp::View(Box::new(v))
                }
            };
            if resp_tx.send(resp).is_err() {
                break;
            }
        }
        sim.done(x)
    });
    let result = sim.run(Box::new(uut), 200_000_000);
    if let Err(panic) = driver.join() {
        std::panic::resume_unwind(panic);
    }
    result.expect("simulation failed");
}

/// Every register (including unmapped and misaligned offsets around them) and every
/// window latch, read through `bus`.
fn sweep(bus: &mut dyn RegisterBus) -> Vec<(u32, u32)> {
    let mut offsets: Vec<u32> = regmap::REGISTERS.iter().map(|r| r.offset).collect();
    for w in regmap::WINDOWS {
        match w.kind {
            regmap::WindowKind::Indexed => {
                offsets.extend((0..w.span() / 4 + 1).map(|k| w.base + 4 * k));
            }
            regmap::WindowKind::Array => offsets.extend((0..4).map(|k| w.base + 4 * k)),
        }
    }
    offsets.extend([0xc, 0x3ffc, 0x2, 0x101, 0x1fc]);
    offsets.iter().map(|&o| (o, bus.read32(o))).collect()
}

/// Reads back every entry of every window through the driver protocol.
fn window_dump(bus: &mut dyn RegisterBus) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut entry = |bus: &mut dyn RegisterBus, w: &regmap::Window, index: u32| {
        let mut data = vec![0u32; w.data_words as usize];
        bus.read_entry(w, index, &mut data);
        out.push(data);
    };
    for i in 0..VIPS as u32 + 1 {
        entry(bus, &VIP_WINDOW, i);
    }
    for i in 0..BACKENDS + 1 {
        entry(bus, &BACKEND_WINDOW, i);
    }
    for v in 0..VIPS as u16 + 1 {
        for s in [0, 1, M - 1, M] {
            entry(bus, &MAGLEV_WINDOW, regmap::maglev_index(v, s).unwrap());
        }
    }
    for (set, way) in [(0, 0), (5, 3), (0, 4), ((1 << 14) - 1, 3), (1 << 14, 0)] {
        entry(bus, &FLOW_WINDOW, regmap::flow_index(set, way).unwrap());
    }
    let mut counters: Vec<u32> = Counter::all(VIPS as u16, BACKENDS as u16)
        .iter()
        .map(|c| c.index())
        .collect();
    counters.extend([
        3,
        0x100,
        0x1ff,
        0x207,
        0x2_0000 + 2 * VIPS as u32,
        0x4_0000 + 2 * BACKENDS,
        0x6_0000,
    ]);
    for i in counters {
        entry(bus, &COUNTER_WINDOW, i);
    }
    out
}

/// The pipeline view `tables` should produce once committed.
fn expected_view(tables: &Tables) -> View {
    let image = Image::encode(tables, &device()).expect("tables fit");
    let reg = |r: &regmap::Register| image.registers[&r.offset];
    let key = |k: &[regmap::Register; regmap::KEY_WORDS]| k.iter().map(reg).collect::<Vec<_>>();
    let mut maglev = vec![0u32; VIPS << SLOT_BITS];
    for (v, slots) in image.maglev.iter().enumerate() {
        maglev[v << SLOT_BITS..(v << SLOT_BITS) + slots.len()].copy_from_slice(slots);
    }
    View {
        enable: false,
        own_mac: (reg(&regs::OWN_MAC_HI) as u64) << 32 | reg(&regs::OWN_MAC_LO) as u64,
        encap_v4: (reg(&regs::ENCAP_V4_PREFIX), reg(&regs::ENCAP_V4_LEN)),
        encap_v6: (
            regs::ENCAP_V6_PREFIX
                .iter()
                .fold(0u128, |a, r| a << 32 | reg(r) as u128),
            reg(&regs::ENCAP_V6_LEN),
        ),
        timeouts: [
            reg(&regs::TIMEOUT_TCP_MS),
            reg(&regs::TIMEOUT_TCP_EMBRYONIC_MS),
            reg(&regs::TIMEOUT_UDP_MS),
        ],
        keys: [
            key(&regs::RSS_KEY),
            key(&regs::DIGEST_HI_KEY),
            key(&regs::DIGEST_LO_KEY),
        ],
        vips: image.vips.clone(),
        backends: image.backends.clone(),
        maglev,
        up: image.up.clone(),
        busy: false,
    }
}

/// Maglev slots past M are never written: compare only the slots a table has.
fn same_tables(hw: &View, want: &View) {
    let mut hw = hw.clone();
    for (v, chunk) in hw.maglev.chunks_mut(1 << SLOT_BITS).enumerate() {
        for (s, slot) in chunk.iter_mut().enumerate() {
            if s >= M as usize || v >= want.vips.iter().filter(|e| e[4] != 0).count() {
                *slot = want.maglev[(v << SLOT_BITS) + s];
            }
        }
    }
    assert_eq!(&hw, want);
}

fn sample_counters() -> Counters {
    let mut c = Counters::new(VIPS, BACKENDS as usize);
    c.frames_in = 0x1_0000_0005;
    c.forwarded = 3;
    c.passed = 1;
    c.drops[DropReason::BadIpv4Ihl.code() as usize] = 7;
    c.flow.hits = 11;
    c.flow.reselects = 0xdead_beef_0000_0001;
    c.vips[2].bytes = 1234;
    c.backends[7].packets = 99;
    c
}

#[test]
fn program_and_read_back_match_the_software_model() {
    let counters = sample_counters();
    let soft_counters = counters.clone();
    with_hardware(counters, move |hw| {
        let mut soft = SoftBus::new(device()).unwrap();
        soft.set_counters(soft_counters.clone());
        assert_eq!(flowgate_driver::probe(hw).unwrap(), device());

        // Program the example, then a changed one on top (the shadow keeps its contents).
        let a = example_tables(|t| t);
        let b = example_tables(|t| {
            t.replace("weight = 2", "weight = 0")
                .replace("tcp = 300000", "tcp = 120000")
                .replace("6d5a56da", "0123abcd")
        });
        for tables in [&a, &b] {
            flowgate_driver::program(hw, tables).expect("hardware programs");
            flowgate_driver::program(&mut soft, tables).expect("model programs");
            assert_eq!(sweep(hw), sweep(&mut soft));
            assert_eq!(window_dump(hw), window_dump(&mut soft));
            assert_eq!(
                flowgate_driver::read_shadow(hw).unwrap(),
                flowgate_driver::read_shadow(&mut soft).unwrap()
            );
            let view = hw.view();
            same_tables(&view, &expected_view(tables));
            assert_eq!(
                soft.active_tables().unwrap(),
                flowgate_driver::read_shadow(hw).unwrap()
            );
        }
        for bus in [hw as &mut dyn RegisterBus, &mut soft] {
            let read = flowgate_driver::read_counters(bus, VIPS as u16, BACKENDS as u16);
            assert_eq!(read.unwrap(), soft_counters);
        }
        // Health and enable act at once, without a commit.
        for bus in [hw as &mut dyn RegisterBus, &mut soft] {
            flowgate_driver::set_backend_up(bus, 1, false);
            flowgate_driver::set_backend_up(bus, 6, true);
            flowgate_driver::set_enabled(bus, true);
        }
        assert_eq!(sweep(hw), sweep(&mut soft));
        let view = hw.view();
        assert!(view.enable);
        assert_eq!(view.up, vec![0b0101_1101]);
    });
}

/// The same access sequence on both buses, every read compared as it happens.
struct Both<'a> {
    hw: &'a mut HwBus,
    soft: SoftBus,
}

impl Both<'_> {
    fn w(&mut self, off: u32, v: u32) {
        self.hw.write32(off, v);
        self.soft.write32(off, v);
    }
    fn r(&mut self, off: u32) -> u32 {
        let (h, s) = (self.hw.read32(off), self.soft.read32(off));
        assert_eq!(h, s, "read of {off:#x}");
        h
    }
}

#[test]
fn access_types_errors_and_windows_match_the_software_model() {
    with_hardware(sample_counters(), |hw| {
        let soft = SoftBus::new(device()).unwrap();
        let mut b = Both { hw, soft };
        let err = |f: regmap::Field| 1u32 << f.lsb;
        // Reset values.
        for reg in regmap::REGISTERS {
            b.r(reg.offset);
        }
        // RO ignores writes, RW keeps only its width, WO / STROBE read 0.
        for reg in regmap::REGISTERS.iter().filter(|r| r.name != "COMMIT") {
            b.w(reg.offset, 0xffff_ffff);
            b.r(reg.offset);
            b.w(reg.offset, 0x1234_5678);
            b.r(reg.offset);
        }
        assert_eq!(
            b.r(regs::ERROR.offset),
            err(regmap::ERROR_INDEX_OUT_OF_RANGE)
        );
        b.w(regs::ERROR.offset, 0xffff_ffff);
        assert_eq!(b.r(regs::ERROR.offset), 0);
        // Misaligned: reads all ones, writes ignored.
        b.w(regs::SCRATCH.offset + 1, 5);
        assert_eq!(b.r(regs::SCRATCH.offset + 2), u32::MAX);
        b.r(regs::SCRATCH.offset);
        // Windows: write with auto-increment, read back, the index rules.
        b.w(VIP_WINDOW.index_reg(), 2);
        for k in 0..VIP_WINDOW.data_words {
            b.w(VIP_WINDOW.data_reg(k), 0x1111_0000 * (k + 1) + 0xff);
        }
        b.w(VIP_WINDOW.cmd_reg(), regmap::CMD_WRITE | 4);
        b.w(VIP_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        b.w(VIP_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        assert_eq!(b.r(VIP_WINDOW.index_reg()), 4);
        assert_eq!(
            b.r(regs::ERROR.offset),
            err(regmap::ERROR_INDEX_OUT_OF_RANGE)
        );
        b.w(VIP_WINDOW.cmd_reg(), 3);
        b.w(VIP_WINDOW.cmd_reg(), 0);
        b.w(COUNTER_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        b.w(FLOW_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        b.r(regs::ERROR.offset);
        b.w(regs::ERROR.offset, err(regmap::ERROR_BAD_COMMAND));
        b.r(regs::ERROR.offset);
        b.w(VIP_WINDOW.index_reg(), 3);
        b.w(VIP_WINDOW.cmd_reg(), regmap::CMD_READ);
        for k in 0..VIP_WINDOW.data_words + 1 {
            b.r(VIP_WINDOW.data_reg(k));
        }
        b.r(VIP_WINDOW.index_reg());
        // RAM windows: Maglev INDEX does not carry from slot into VIP.
        b.w(
            MAGLEV_WINDOW.index_reg(),
            regmap::maglev_index(1, M - 2).unwrap(),
        );
        for s in 0..3 {
            b.w(MAGLEV_WINDOW.data_reg(0), 0xabcd_0000 + s);
            b.w(MAGLEV_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        }
        b.r(MAGLEV_WINDOW.index_reg());
        b.r(regs::ERROR.offset);
        b.w(regs::ERROR.offset, u32::MAX);
        b.w(
            MAGLEV_WINDOW.index_reg(),
            regmap::maglev_index(1, M - 2).unwrap(),
        );
        for _ in 0..3 {
            b.w(MAGLEV_WINDOW.cmd_reg(), regmap::CMD_READ);
            b.r(MAGLEV_WINDOW.data_reg(0));
        }
        b.w(BACKEND_WINDOW.index_reg(), BACKENDS - 1);
        for k in 0..BACKEND_WINDOW.data_words {
            b.w(BACKEND_WINDOW.data_reg(k), 0x0101_0101 * (k + 3));
        }
        b.w(BACKEND_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        b.w(BACKEND_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        b.w(BACKEND_WINDOW.index_reg(), BACKENDS - 1);
        b.w(BACKEND_WINDOW.cmd_reg(), regmap::CMD_READ);
        for k in 0..BACKEND_WINDOW.data_words {
            b.r(BACKEND_WINDOW.data_reg(k));
        }
        // Data latches of read-only windows are plain latches.
        b.w(COUNTER_WINDOW.data_reg(1), 77);
        b.r(COUNTER_WINDOW.data_reg(1));
        // Up bits: set / clear / out of range / array word masked to the capacity.
        b.w(regs::UP_SET.offset, 3);
        b.w(regs::UP_SET.offset, BACKENDS);
        b.w(regs::UP_CLEAR.offset, 0x1_0003);
        b.r(UP_BITMAP.base);
        b.w(UP_BITMAP.base, 0xffff_ffff);
        b.w(UP_BITMAP.base + 4, 0xffff_ffff);
        b.r(UP_BITMAP.base);
        b.r(UP_BITMAP.base + 4);
        b.r(regs::ERROR.offset);
        let before = b.hw.view();

        // Commit while the pipeline is mid-frame: pending until the boundary, busy, and
        // shadowed writes refused meanwhile.
        b.hw.boundary(false);
        b.soft =
            std::mem::replace(&mut b.soft, SoftBus::new(device()).unwrap()).with_commit_latency(1);
        b.w(regs::COMMIT.offset, 1);
        b.hw.idle(20);
        let pending = b.hw.view();
        assert!(pending.busy);
        assert_eq!(
            pending,
            View {
                busy: true,
                ..before.clone()
            }
        );
        b.w(regs::TIMEOUT_UDP_MS.offset, 1);
        b.w(regs::COMMIT.offset, 1);
        b.w(VIP_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        b.w(MAGLEV_WINDOW.cmd_reg(), regmap::CMD_WRITE);
        b.w(regs::SCRATCH.offset, 9);
        b.r(regs::TIMEOUT_UDP_MS.offset);
        b.r(regs::SCRATCH.offset);
        b.r(regs::ERROR.offset);
        b.hw.boundary(true);
        b.hw.idle(80);
        // The model completes its commit on a STATUS read.
        assert_eq!(b.soft.read32(regs::STATUS.offset), 1);
        b.r(regs::STATUS.offset);
        b.r(regs::COMMIT_GENERATION.offset);
        let after = b.hw.view();
        assert!(!after.busy);
        assert_eq!(after.vips[2][0], 0x1111_00ff);
        assert_eq!(after.maglev[(1 << SLOT_BITS) + M as usize - 1], 0xabcd_0001);
        assert_eq!(after.backends[BACKENDS as usize - 1][6], 0x0909_0909);
        // The shadow kept its contents, and a READ after the copy sees them.
        b.w(
            MAGLEV_WINDOW.index_reg(),
            regmap::maglev_index(1, M - 1).unwrap(),
        );
        b.w(MAGLEV_WINDOW.cmd_reg(), regmap::CMD_READ);
        assert_eq!(b.r(MAGLEV_WINDOW.data_reg(0)), 0xabcd_0001);
        // A READ issued while busy waits for the copy and returns the committed entry.
        b.soft =
            std::mem::replace(&mut b.soft, SoftBus::new(device()).unwrap()).with_commit_latency(0);
        b.w(regs::COMMIT.offset, 1);
        b.w(
            MAGLEV_WINDOW.index_reg(),
            regmap::maglev_index(1, M - 1).unwrap(),
        );
        b.w(MAGLEV_WINDOW.cmd_reg(), regmap::CMD_READ);
        assert_eq!(b.r(MAGLEV_WINDOW.data_reg(0)), 0xabcd_0001);
        assert_eq!(b.r(regs::COMMIT_GENERATION.offset), 2);
        b.r(regs::STATUS.offset);
        for (o, v) in sweep(b.hw) {
            assert_eq!(v, b.soft.read32(o), "sweep at {o:#x}");
        }
    });
}

#[test]
fn every_register_resets_to_the_register_map() {
    with_hardware(Counters::new(VIPS, BACKENDS as usize), |hw| {
        let d = device();
        for reg in regmap::REGISTERS {
            let want = match reg.name {
                "FLOW_SETS_LOG2" => d.geometry.sets.trailing_zeros(),
                "FLOW_WAYS" => d.geometry.ways,
                "MAGLEV_M" => d.maglev_m,
                "VIP_CAPACITY" => d.vip_capacity,
                "BACKEND_CAPACITY" => d.backend_capacity,
                _ if matches!(reg.access, Access::Wo | Access::Strobe) => 0,
                _ => reg.reset,
            };
            assert_eq!(hw.read32(reg.offset), want, "{} after reset", reg.name);
        }
        // The pipeline starts from the reset values too.
        let v = hw.view();
        let reset = |name: &str| regmap::register(name).unwrap().reset;
        assert_eq!(
            v.own_mac,
            (reset("OWN_MAC_HI") as u64) << 32 | reset("OWN_MAC_LO") as u64
        );
        assert_eq!(v.timeouts[0], reset("TIMEOUT_TCP_MS"));
        assert_eq!(v.keys[0][0], reset("RSS_KEY_0"));
        assert_eq!(v.keys[2][12], reset("DIGEST_LO_KEY_12"));
        assert!(v.vips.iter().all(|e| e.iter().all(|&w| w == 0)) && v.up == vec![0]);
    });
}

#[test]
fn csr_synthesizes() {
    // Generic synthesis turns block RAM into flip-flops, so it runs on the test build;
    // the ECP5 profile is linted.
    let mut uut = Dut::new(params()).unwrap();
    uut.connect_all();
    let small = generate_verilog(&uut);
    let report = toolchain::yosys_synth(&small, "top", SynthFlow::Generic).expect("yosys");
    println!("test build: {report}; {} flip-flops", report.flip_flops());
    let verilog = flowgate_hdl::emit_verilog(flowgate_hdl::Design::SmallCsr);
    // UNUSEDSIGNAL: index arithmetic runs at 32 bits (rust-hdl literals and loop indices
    // are 32-bit) and is narrowed to the RAM address width with `get_bits`, leaving the
    // high bits of those locals unread on purpose.
    let waivers = [toolchain::RUST_HDL_LINT_WAIVERS, &["UNUSEDSIGNAL"]].concat();
    toolchain::verilator_lint(&verilog, "top", &waivers).expect("verilator lint");
}
