//! The decision pipeline against `flowgate_core`: trace frames streamed over AXI4-Stream
//! into [`AxisParser`] and on into [`Decide`] in rust-hdl's simulator, with the tables
//! programmed through the block's write ports from a `flowgate_core::Tables`; every
//! frame's verdict, backend, hash and flow-table outcome compared with what `core`'s
//! `process` does with the same tables (and the same backend up/down changes at the same
//! frame boundaries). Then the emitted Verilog through yosys and Verilator.

use flowgate_core::counters::Counters;
use flowgate_core::flow_table::{FlowTable as CoreFlowTable, Geometry, Timeouts};
use flowgate_core::hash::{FlowHasher, Persistence};
use flowgate_core::pipeline::{prepare, process, tick_of, Prepared};
use flowgate_core::rewrite::Mode;
use flowgate_core::tables::{Backend, Tables, Vip};
use flowgate_core::{DropReason, Verdict};
use flowgate_hdl::axis_parse::{AxisParser, LATENCY as PARSE_LATENCY};
use flowgate_hdl::decide::{
    Decide, SERIAL_CHUNK, SERIAL_HLAT, SERIAL_WIN, VERDICT_DROP, VERDICT_FORWARD, VERDICT_PASS,
    WIDE_CHUNK, WIDE_HLAT, WIDE_WIN,
};
use flowgate_hdl::flow_table::{self, InsertOutcome};
use flowgate_hdl::hash::{left_aligned, KEY_BITS};
use flowgate_hdl::toolchain::{verilator_lint, yosys_synth, SynthFlow, RUST_HDL_LINT_WAIVERS};
use flowgate_hdl::{emit_verilog, Design};
use flowgate_traces::{generate_trace, TraceSpec, VipTarget};
use rust_hdl::prelude::*;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The Maglev size of the tests: the small profile's.
const M: u32 = 251;
const SLOT_BITS: usize = 8;
type TestDecide<
    const SB: usize,
    const RB: usize,
    const W: usize,
    const PW: usize,
    const CH: usize,
    const WN: usize,
    const HL: usize,
> = Decide<8, 3, 64, SLOT_BITS, 11, SB, RB, W, PW, CH, WN, HL>;

/// Parser + decision block, with the block's table ports and scalars brought out.
#[derive(LogicBlock)]
struct Harness<
    const D: usize,
    const K: usize,
    const SB: usize,
    const RB: usize,
    const W: usize,
    const PW: usize,
    const CH: usize,
    const WN: usize,
    const HL: usize,
> {
    clock: Signal<In, Clock>,
    tdata: Signal<In, Bits<D>>,
    tkeep: Signal<In, Bits<K>>,
    tlast: Signal<In, Bit>,
    tvalid: Signal<In, Bit>,
    /// The tick of the frame whose parse the parser shows this clock.
    tick: Signal<In, Bits<32>>,
    key_rss: Signal<In, Bits<KEY_BITS>>,
    key_digest_hi: Signal<In, Bits<KEY_BITS>>,
    key_digest_lo: Signal<In, Bits<KEY_BITS>>,
    timeout_embryonic: Signal<In, Bits<32>>,
    timeout_tcp: Signal<In, Bits<32>>,
    timeout_udp: Signal<In, Bits<32>>,
    /// Two candidate sets per flow (the tables' `geometry.choices == 2`).
    two_choice: Signal<In, Bit>,
    vip_we: Signal<In, Bit>,
    vip_index: Signal<In, Bits<16>>,
    vip_address: Signal<In, Bits<128>>,
    vip_port: Signal<In, Bits<16>>,
    vip_protocol: Signal<In, Bits<8>>,
    vip_is_v6: Signal<In, Bit>,
    vip_mode: Signal<In, Bits<2>>,
    vip_persistence: Signal<In, Bits<2>>,
    vip_valid: Signal<In, Bit>,
    maglev_we: Signal<In, Bit>,
    maglev_addr: Signal<In, Bits<11>>,
    maglev_data: Signal<In, Bits<32>>,
    bvip_we: Signal<In, Bit>,
    bvip_index: Signal<In, Bits<16>>,
    bvip_vip: Signal<In, Bits<16>>,
    up_we: Signal<In, Bit>,
    up_word: Signal<In, Bits<16>>,
    up_data: Signal<In, Bits<32>>,
    up_mask: Signal<In, Bits<32>>,
    /// The flow table's read-back set (idle here: the top's FLOW window reads drive it).
    peek_set: Signal<In, Bits<SB>>,
    parser: AxisParser<D, K>,
    decide: TestDecide<SB, RB, W, PW, CH, WN, HL>,
}

impl<
        const D: usize,
        const K: usize,
        const SB: usize,
        const RB: usize,
        const W: usize,
        const PW: usize,
        const CH: usize,
        const WN: usize,
        const HL: usize,
    > Default for Harness<D, K, SB, RB, W, PW, CH, WN, HL>
{
    fn default() -> Self {
        Self {
            clock: Default::default(),
            tdata: Default::default(),
            tkeep: Default::default(),
            tlast: Default::default(),
            tvalid: Default::default(),
            tick: Default::default(),
            key_rss: Default::default(),
            key_digest_hi: Default::default(),
            key_digest_lo: Default::default(),
            timeout_embryonic: Default::default(),
            timeout_tcp: Default::default(),
            timeout_udp: Default::default(),
            two_choice: Default::default(),
            vip_we: Default::default(),
            vip_index: Default::default(),
            vip_address: Default::default(),
            vip_port: Default::default(),
            vip_protocol: Default::default(),
            vip_is_v6: Default::default(),
            vip_mode: Default::default(),
            vip_persistence: Default::default(),
            vip_valid: Default::default(),
            maglev_we: Default::default(),
            maglev_addr: Default::default(),
            maglev_data: Default::default(),
            bvip_we: Default::default(),
            bvip_index: Default::default(),
            bvip_vip: Default::default(),
            up_we: Default::default(),
            up_word: Default::default(),
            up_data: Default::default(),
            up_mask: Default::default(),
            peek_set: Default::default(),
            parser: Default::default(),
            decide: Decide::new(M),
        }
    }
}

impl<
        const D: usize,
        const K: usize,
        const SB: usize,
        const RB: usize,
        const W: usize,
        const PW: usize,
        const CH: usize,
        const WN: usize,
        const HL: usize,
    > Logic for Harness<D, K, SB, RB, W, PW, CH, WN, HL>
{
    #[hdl_gen]
    fn update(&mut self) {
        clock!(self, clock, parser, decide);
        self.parser.tdata.next = self.tdata.val();
        self.parser.tkeep.next = self.tkeep.val();
        self.parser.tlast.next = self.tlast.val();
        self.parser.tvalid.next = self.tvalid.val();
        // The testbench gives the tick when the parse shows (`tick`), not through the tag.
        self.parser.tag.next = 0.into();
        self.decide.in_valid.next = self.parser.valid.val();
        self.decide.in_result.next = self.parser.result.val();
        self.decide.in_is_v6.next = self.parser.is_v6.val();
        self.decide.in_src.next = self.parser.src.val();
        self.decide.in_dst.next = self.parser.dst.val();
        self.decide.in_protocol.next = self.parser.protocol.val();
        self.decide.in_fragment.next = self.parser.fragment.val();
        self.decide.in_src_port.next = self.parser.src_port.val();
        self.decide.in_dst_port.next = self.parser.dst_port.val();
        self.decide.in_tcp_flags.next = self.parser.tcp_flags.val();
        self.decide.in_l3_offset.next = self.parser.l3_offset.val();
        self.decide.in_ip_len.next = self.parser.ip_len.val();
        self.decide.in_dscp_ecn.next = self.parser.dscp_ecn.val();
        self.decide.in_frame_len.next = self.parser.frame_len.val();
        self.decide.in_tick.next = self.tick.val();
        self.decide.key_rss.next = self.key_rss.val();
        self.decide.key_digest_hi.next = self.key_digest_hi.val();
        self.decide.key_digest_lo.next = self.key_digest_lo.val();
        self.decide.timeout_embryonic.next = self.timeout_embryonic.val();
        self.decide.timeout_tcp.next = self.timeout_tcp.val();
        self.decide.timeout_udp.next = self.timeout_udp.val();
        self.decide.two_choice.next = self.two_choice.val();
        self.decide.vip_we.next = self.vip_we.val();
        self.decide.vip_index.next = self.vip_index.val();
        self.decide.vip_address.next = self.vip_address.val();
        self.decide.vip_port.next = self.vip_port.val();
        self.decide.vip_protocol.next = self.vip_protocol.val();
        self.decide.vip_is_v6.next = self.vip_is_v6.val();
        self.decide.vip_mode.next = self.vip_mode.val();
        self.decide.vip_persistence.next = self.vip_persistence.val();
        self.decide.vip_valid.next = self.vip_valid.val();
        self.decide.maglev_we.next = self.maglev_we.val();
        self.decide.maglev_addr.next = self.maglev_addr.val();
        self.decide.maglev_data.next = self.maglev_data.val();
        self.decide.bvip_we.next = self.bvip_we.val();
        self.decide.bvip_index.next = self.bvip_index.val();
        self.decide.bvip_vip.next = self.bvip_vip.val();
        self.decide.up_we.next = self.up_we.val();
        self.decide.up_word.next = self.up_word.val();
        self.decide.up_data.next = self.up_data.val();
        self.decide.up_mask.next = self.up_mask.val();
        self.decide.peek_set.next = self.peek_set.val();
    }
}

// ---- Tables ----

fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Eight VIPs that exercise every classify rule: an exact port and an any-port VIP on one
/// address (IPv4 and IPv6), a UDP any-port VIP behind a UDP port VIP on one address (its
/// fragments classify to the lower one), src-ip persistence, both modes, a draining
/// backend, and a VIP without backends (every frame NoHealthyBackend).
fn test_tables(geometry: Geometry, timeouts: Timeouts) -> Tables {
    let mut t = Tables {
        geometry,
        timeouts,
        ..Tables::default()
    };
    let vip = |name: &str, address: &str, port, protocol, mode, persistence| Vip {
        name: name.into(),
        address: ip(address),
        port,
        protocol,
        mode,
        persistence,
        maglev: Default::default(),
        backends: Vec::new(),
    };
    let backends = |prefix: &str, weights: &[u32]| -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Backend {
                address: ip(&format!("{prefix}{}", i + 1)),
                mac: [2, 0, 0, 0, 1, i as u8],
                weight,
                up: true,
                vip: 0,
            })
            .collect()
    };
    use Mode::{Dsr, IpIp};
    use Persistence::{FiveTuple, SrcIp};
    let specs = [
        (
            vip("web", "192.0.2.10", 443, 6, Dsr, FiveTuple),
            backends("198.51.100.", &[1, 1, 2, 1]),
        ),
        (
            vip("web-any", "192.0.2.10", 0, 6, IpIp, SrcIp),
            backends("198.51.101.", &[1, 1, 0]),
        ),
        (
            vip("dns", "192.0.2.11", 53, 17, IpIp, FiveTuple),
            backends("198.51.102.", &[1, 1, 1]),
        ),
        (
            vip("udp-any", "192.0.2.11", 0, 17, Dsr, SrcIp),
            backends("198.51.103.", &[2, 1]),
        ),
        (
            vip("web6", "2001:db8::10", 80, 6, IpIp, FiveTuple),
            backends("2001:db8:b::", &[1, 1, 1]),
        ),
        (
            vip("dns6", "2001:db8::53", 0, 17, Dsr, FiveTuple),
            backends("2001:db8:c::", &[1, 3]),
        ),
        (
            vip("web6-any", "2001:db8::10", 0, 6, Dsr, SrcIp),
            backends("2001:db8:d::", &[1, 1]),
        ),
        (
            vip("empty", "192.0.2.99", 8080, 6, Dsr, FiveTuple),
            Vec::new(),
        ),
    ];
    for (v, b) in specs {
        t.add_vip(v, b, M);
    }
    t
}

/// The register writes that describe `tables` to the block, one per clock.
#[derive(Clone, Copy, Debug)]
enum Write {
    Vip {
        index: u16,
        address: u128,
        port: u16,
        protocol: u8,
        is_v6: bool,
        mode: u8,
        persistence: u8,
    },
    Maglev {
        addr: u32,
        data: u32,
    },
    BackendVip {
        index: u16,
        vip: u16,
    },
    Up {
        word: u16,
        data: u32,
        mask: u32,
    },
}

fn program(tables: &Tables) -> Vec<Write> {
    let mut writes = Vec::new();
    for (i, v) in tables.vips.iter().enumerate() {
        writes.push(Write::Vip {
            index: i as u16,
            address: addr_bits(v.address),
            port: v.port,
            protocol: v.protocol,
            is_v6: v.address.is_ipv6(),
            mode: v.mode.code(),
            persistence: match v.persistence {
                Persistence::FiveTuple => 0,
                Persistence::SrcIp => 1,
            },
        });
        assert_eq!(v.maglev.len(), M);
        for (s, slot) in v.maglev.slots().iter().enumerate() {
            writes.push(Write::Maglev {
                addr: (i as u32) << SLOT_BITS | s as u32,
                data: u32::from(slot.secondary) << 16 | u32::from(slot.primary),
            });
        }
    }
    for b in 0..64u16 {
        let vip = tables.backends.get(b as usize).map_or(0xffff, |be| be.vip);
        writes.push(Write::BackendVip { index: b, vip });
    }
    for word in 0..2u16 {
        let mut data = 0u32;
        for bit in 0..32 {
            let b = word as usize * 32 + bit;
            if tables.backends.get(b).is_some_and(|be| be.up) {
                data |= 1 << bit;
            }
        }
        writes.push(Write::Up {
            word,
            data,
            mask: u32::MAX,
        });
    }
    writes
}

/// One up/down change, written to the block just before the first beat of frame `before`.
#[derive(Clone, Copy, Debug)]
struct UpChange {
    before: usize,
    backend: u16,
    up: bool,
}

// ---- Simulation ----

/// What the block said about one frame, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct HwOut {
    cycle: u64,
    verdict: u8,
    reason: u8,
    vip: u16,
    backend: u16,
    mode: u8,
    hash: u32,
    l3_offset: u16,
    ip_len: u16,
    is_v6: bool,
    dscp_ecn: u8,
    /// The frame's length, carried beside the decision for the top's counters.
    frame_len: u16,
    flow: bool,
    hit: bool,
    insert: u8,
    reselect: bool,
}

struct Run {
    outs: Vec<HwOut>,
    /// Clock in which each frame's parse entered the decision block.
    entered: Vec<u64>,
    /// Clock in which each up change was written.
    written: Vec<u64>,
}

fn lanes<const D: usize, const K: usize>(chunk: &[u8]) -> (Bits<D>, Bits<K>) {
    let mut data = Bits::<D>::default();
    let mut keep = Bits::<K>::default();
    for (j, &byte) in chunk.iter().enumerate() {
        data.set_bits::<8>(8 * j, u64::from(byte).into());
        keep = keep.replace_bit(j, true);
    }
    (data, keep)
}

fn set_write<
    const D: usize,
    const K: usize,
    const SB: usize,
    const RB: usize,
    const W: usize,
    const PW: usize,
    const CH: usize,
    const WN: usize,
    const HL: usize,
>(
    x: &mut Harness<D, K, SB, RB, W, PW, CH, WN, HL>,
    w: Option<Write>,
) {
    x.vip_we.next = false;
    x.maglev_we.next = false;
    x.bvip_we.next = false;
    x.up_we.next = false;
    match w {
        None => {}
        Some(Write::Vip {
            index,
            address,
            port,
            protocol,
            is_v6,
            mode,
            persistence,
        }) => {
            x.vip_we.next = true;
            x.vip_index.next = u64::from(index).into();
            x.vip_address.next = left_aligned(&address.to_be_bytes()).unwrap();
            x.vip_port.next = u64::from(port).into();
            x.vip_protocol.next = u64::from(protocol).into();
            x.vip_is_v6.next = is_v6;
            x.vip_mode.next = u64::from(mode).into();
            x.vip_persistence.next = u64::from(persistence).into();
            x.vip_valid.next = true;
        }
        Some(Write::Maglev { addr, data }) => {
            x.maglev_we.next = true;
            x.maglev_addr.next = u64::from(addr).into();
            x.maglev_data.next = u64::from(data).into();
        }
        Some(Write::BackendVip { index, vip }) => {
            x.bvip_we.next = true;
            x.bvip_index.next = u64::from(index).into();
            x.bvip_vip.next = u64::from(vip).into();
        }
        Some(Write::Up { word, data, mask }) => {
            x.up_we.next = true;
            x.up_word.next = u64::from(word).into();
            x.up_data.next = u64::from(data).into();
            x.up_mask.next = u64::from(mask).into();
        }
    }
}

fn read_out<
    const SB: usize,
    const RB: usize,
    const W: usize,
    const PW: usize,
    const CH: usize,
    const WN: usize,
    const HL: usize,
>(
    d: &TestDecide<SB, RB, W, PW, CH, WN, HL>,
    cycle: u64,
) -> HwOut {
    HwOut {
        cycle,
        verdict: d.out_verdict.val().to_u8(),
        reason: d.out_reason.val().to_u8(),
        vip: d.out_vip.val().to_u16(),
        backend: d.out_backend.val().to_u16(),
        mode: d.out_mode.val().to_u8(),
        hash: d.out_hash.val().to_u32(),
        l3_offset: d.out_l3_offset.val().to_u16(),
        ip_len: d.out_ip_len.val().to_u16(),
        is_v6: d.out_is_v6.val(),
        dscp_ecn: d.out_dscp_ecn.val().to_u8(),
        frame_len: d.out_frame_len.val().to_u16(),
        flow: d.out_flow.val(),
        hit: d.out_hit.val(),
        insert: d.out_insert.val().to_u8(),
        reselect: d.out_reselect.val(),
    }
}

/// Programs `tables`, then streams `frames` (back to back, `K` bytes a beat; an idle
/// clock now and then when `gaps`) with `changes` written on the way.
fn run_hardware<
    const D: usize,
    const K: usize,
    const SB: usize,
    const RB: usize,
    const W: usize,
    const PW: usize,
    const CH: usize,
    const WN: usize,
    const HL: usize,
>(
    tables: &Tables,
    frames: &[(Vec<u8>, u32)],
    changes: &[UpChange],
    gaps: bool,
) -> Run {
    let mut uut = Harness::<D, K, SB, RB, W, PW, CH, WN, HL>::default();
    uut.connect_all();
    let mut sim = Simulation::new();
    sim.add_clock(
        5,
        |x: &mut Box<Harness<D, K, SB, RB, W, PW, CH, WN, HL>>| x.clock.next = !x.clock.val(),
    );
    let writes = program(tables);
    let beats: usize = frames.iter().map(|f| f.0.len().div_ceil(K).max(1)).sum();
    let gap = TestDecide::<SB, RB, W, PW, CH, WN, HL>::MIN_GAP;
    let budget = (writes.len() + beats * if gaps { 2 } else { 1 } + frames.len() * gap + 64) as u64;
    let keys = tables.keys.clone();
    let timeouts = tables.timeouts;
    let two_choice = tables.geometry.choices == 2;
    let frames_tb = frames.to_vec();
    let changes_tb = changes.to_vec();
    let run = Arc::new(Mutex::new(Run {
        outs: Vec::new(),
        entered: Vec::new(),
        written: Vec::new(),
    }));
    let run_tb = run.clone();
    sim.add_testbench(
        move |mut sim: Sim<Harness<D, K, SB, RB, W, PW, CH, WN, HL>>| {
            let mut x = sim.init()?;
            x.key_rss.next = left_aligned(&keys.rss).unwrap();
            x.key_digest_hi.next = left_aligned(&keys.digest_hi).unwrap();
            x.key_digest_lo.next = left_aligned(&keys.digest_lo).unwrap();
            x.timeout_embryonic.next = u64::from(timeouts.tcp_embryonic_ms).into();
            x.timeout_tcp.next = u64::from(timeouts.tcp_ms).into();
            x.timeout_udp.next = u64::from(timeouts.udp_ms).into();
            x.two_choice.next = two_choice;
            x.tvalid.next = false;
            let mut cycle = 0u64;
            let mut parsed = 0usize;
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            let mut gap = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng & 7 == 0
            };
            // Every clock: watch the parser and the block, then drive this clock's inputs.
            macro_rules! clock {
                ($beat:expr, $write:expr) => {{
                    wait_clock_false!(sim, clock, x);
                    {
                        let mut r = run_tb.lock().unwrap();
                        if x.parser.valid.val() {
                            x.tick.next =
                                u64::from(frames_tb.get(parsed).map_or(0, |f| f.1)).into();
                            r.entered.push(cycle);
                            parsed += 1;
                        }
                        if x.decide.out_valid.val() {
                            r.outs.push(read_out(&x.decide, cycle));
                        }
                    }
                    match $beat {
                        Some((data, keep, last)) => {
                            x.tdata.next = data;
                            x.tkeep.next = keep;
                            x.tlast.next = last;
                            x.tvalid.next = true;
                        }
                        None => x.tvalid.next = false,
                    }
                    set_write(&mut x, $write);
                    wait_clock_true!(sim, clock, x);
                    cycle += 1;
                }};
            }
            for w in &writes {
                clock!(None, Some(*w));
            }
            let mut next_change = 0;
            // The block takes a frame every `MIN_GAP` clocks at most (the top holds a `tlast`
            // that comes sooner; here the testbench waits).
            let min_gap = TestDecide::<SB, RB, W, PW, CH, WN, HL>::MIN_GAP as u64;
            let mut last_tlast: Option<u64> = None;
            for (n, (frame, _)) in frames_tb.iter().enumerate() {
                let chunks: Vec<&[u8]> = frame.chunks(K).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    while gaps && gap() {
                        clock!(None, None);
                    }
                    if i + 1 == chunks.len() {
                        while last_tlast.is_some_and(|l| cycle - l < min_gap) {
                            clock!(None, None);
                        }
                        last_tlast = Some(cycle);
                    }
                    let mut write = None;
                    if i == 0 {
                        if let Some(c) = changes_tb.get(next_change).filter(|c| c.before == n) {
                            let bit = 1u32 << (c.backend % 32);
                            write = Some(Write::Up {
                                word: c.backend / 32,
                                data: if c.up { bit } else { 0 },
                                mask: bit,
                            });
                            run_tb.lock().unwrap().written.push(cycle);
                            next_change += 1;
                        }
                    }
                    let (data, keep) = lanes::<D, K>(chunk);
                    clock!(Some((data, keep, i + 1 == chunks.len())), write);
                }
            }
            for _ in 0..(PARSE_LATENCY + TestDecide::<SB, RB, W, PW, CH, WN, HL>::LATENCY + 8) {
                clock!(None, None);
            }
            sim.done(x)
        },
    );
    sim.run(Box::new(uut), 10 * budget + 200)
        .expect("simulation ended early");
    let run = std::mem::replace(
        &mut *run.lock().unwrap(),
        Run {
            outs: Vec::new(),
            entered: Vec::new(),
            written: Vec::new(),
        },
    );
    run
}

// ---- The contract's side ----

/// The frame from which each change is in effect, by the block's documented rule: the
/// write reaches `select()`'s copy of the up state at the end of the first clock after it
/// in which no frame for a VIP is at stage 4 (`entered + 4`); frames reaching stage 4
/// after that clock see it.
fn effective_frames(
    run: &Run,
    balanced: &[bool],
    changes: &[UpChange],
    latency: usize,
) -> Vec<(usize, bool)> {
    // Select is the flow table's latency before the output.
    let stage4 = |i: usize| run.entered[i] + (latency - flow_table::LATENCY) as u64;
    let busy: std::collections::HashSet<u64> = (0..run.entered.len())
        .filter(|&i| balanced[i])
        .map(stage4)
        .collect();
    // The first frame that reaches stage 4 after clock `t`.
    let first_after = |t: u64| {
        (0..run.entered.len())
            .find(|&i| stage4(i) > t)
            .unwrap_or(run.entered.len())
    };
    changes
        .iter()
        .zip(&run.written)
        .map(|(c, &w)| {
            let mut idle = w + 1;
            while busy.contains(&idle) {
                idle += 1;
            }
            let from = first_after(idle);
            assert!(
                from >= c.before.saturating_sub(PARSE_LATENCY + latency + 4),
                "change moved backwards"
            );
            // Waiting for the idle clock moved the change past a frame.
            (from, from > first_after(w + 1))
        })
        .collect()
}

#[derive(Default, Debug)]
struct Tally {
    forward: u64,
    pass: u64,
    drops: std::collections::BTreeMap<u8, u64>,
    hits: u64,
    misses: u64,
    inserts: u64,
    evictions: u64,
    expirations: u64,
    refused: u64,
    reselects: u64,
    encap_too_large: u64,
    /// Up changes that took effect at a later frame than the first one after their write,
    /// because stage 4 had no idle clock yet.
    deferred: u64,
    /// NoHealthyBackend drops per VIP.
    no_backend_by_vip: std::collections::BTreeMap<u16, u64>,
}

/// Runs `frames` through the hardware and through `core::process` (with each change
/// applied from the frame the hardware applied it), and lists every difference.
fn compare<
    const D: usize,
    const K: usize,
    const SB: usize,
    const RB: usize,
    const W: usize,
    const PW: usize,
    const CH: usize,
    const WN: usize,
    const HL: usize,
>(
    tables: &Tables,
    frames: &[(Vec<u8>, u32)],
    changes: &[UpChange],
    gaps: bool,
) -> (Vec<String>, Tally) {
    let start = Instant::now();
    let run = run_hardware::<D, K, SB, RB, W, PW, CH, WN, HL>(tables, frames, changes, gaps);
    eprintln!(
        "simulated {} frames ({}-bit stream) in {:.1} s",
        frames.len(),
        D,
        start.elapsed().as_secs_f64()
    );
    assert_eq!(run.entered.len(), frames.len(), "one parse per frame");
    assert_eq!(run.outs.len(), frames.len(), "one decision per frame");
    assert_eq!(run.written.len(), changes.len(), "every change written");

    let hasher = FlowHasher::new(&tables.keys);
    let mut tally = Tally::default();
    let balanced: Vec<bool> = frames
        .iter()
        .map(|(f, _)| matches!(prepare(f, tables, &hasher), Prepared::Balance(_)))
        .collect();
    let latency = TestDecide::<SB, RB, W, PW, CH, WN, HL>::LATENCY;
    let effective = effective_frames(&run, &balanced, changes, latency);
    tally.deferred = effective.iter().filter(|(_, waited)| *waited).count() as u64;

    let mut t = tables.clone();
    let mut flows = CoreFlowTable::new(t.geometry.sets, t.geometry.ways);
    let mut counters = Counters::new(t.vips.len(), t.backends.len());
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, ((frame, tick), hw)) in frames.iter().zip(&run.outs).enumerate() {
        for (c, _) in changes.iter().zip(&effective).filter(|(_, &(e, _))| e == i) {
            t.backends[c.backend as usize].up = c.up;
        }
        if hw.cycle != run.entered[i] + latency as u64 {
            bad.push(format!(
                "frame {i}: decided {} clocks after entering, not {latency}",
                hw.cycle - run.entered[i]
            ));
        }
        let prepared = prepare(frame, &t, &hasher);
        let before = counters.flow;
        let verdict = process(
            frame,
            *tick,
            &t,
            &hasher,
            &mut flows,
            &mut counters,
            &mut out,
        );
        let after = counters.flow;
        let mut want = HwOut {
            cycle: hw.cycle,
            frame_len: u16::try_from(frame.len()).expect("test frames fit 16 bits"),
            ..HwOut::default()
        };
        match prepared {
            Prepared::Drop(r) => {
                want.verdict = VERDICT_DROP;
                want.reason = r.code();
            }
            Prepared::Pass => want.verdict = VERDICT_PASS,
            Prepared::Balance(b) => {
                want.flow = true;
                want.vip = b.vip;
                want.hash = b.flow.hash;
                want.mode = t.vips[b.vip as usize].mode.code();
                want.l3_offset = b.datagram.l3_offset;
                want.ip_len = b.datagram.ip_len;
                want.is_v6 = b.datagram.ipv6;
                want.dscp_ecn = b.datagram.dscp_ecn;
                want.hit = after.hits > before.hits;
                want.reselect = after.reselects > before.reselects;
                want.insert = if after.refused > before.refused {
                    InsertOutcome::Refused
                } else if after.evictions > before.evictions {
                    InsertOutcome::Evicted
                } else if after.expirations > before.expirations {
                    InsertOutcome::Expired
                } else if after.inserts > before.inserts {
                    InsertOutcome::Empty
                } else {
                    InsertOutcome::None
                } as u8;
            }
        }
        match verdict {
            Verdict::Forward { backend, .. } => {
                want.verdict = VERDICT_FORWARD;
                want.backend = backend;
            }
            Verdict::Drop(DropReason::EncapTooLarge) => {
                // The rewriter's drop: this block forwards; the backend is the one the
                // flow table now holds for the flow (or Maglev's, on a refused insert).
                tally.encap_too_large += 1;
                want.verdict = VERDICT_FORWARD;
                want.backend = hw.backend;
            }
            Verdict::Drop(r) => {
                want.verdict = VERDICT_DROP;
                want.reason = r.code();
            }
            Verdict::Pass => {}
        }
        // The rewrite fields only mean something for a forward.
        if want.verdict != VERDICT_FORWARD {
            let mut hw_masked = *hw;
            for o in [&mut want, &mut hw_masked] {
                o.mode = 0;
                o.l3_offset = 0;
                o.ip_len = 0;
                o.is_v6 = false;
                o.dscp_ecn = 0;
                if !o.flow {
                    o.hash = 0;
                }
            }
            if hw_masked != want {
                bad.push(format!("frame {i}: hw {hw_masked:?}\n  core {want:?}"));
            }
        } else if *hw != want {
            bad.push(format!("frame {i}: hw {hw:?}\n  core {want:?}"));
        }
        match want.verdict {
            VERDICT_FORWARD => tally.forward += 1,
            VERDICT_PASS => tally.pass += 1,
            _ => *tally.drops.entry(want.reason).or_default() += 1,
        }
        if want.flow && want.verdict == VERDICT_DROP {
            *tally.no_backend_by_vip.entry(want.vip).or_default() += 1;
        }
    }
    let f = counters.flow;
    tally.hits = f.hits;
    tally.misses = f.misses;
    tally.inserts = f.inserts;
    tally.evictions = f.evictions;
    tally.expirations = f.expirations;
    tally.refused = f.refused;
    tally.reselects = f.reselects;
    eprintln!("{tally:?}");
    (bad, tally)
}

fn assert_no_mismatch(bad: &[String], frames: usize) {
    assert!(
        bad.is_empty(),
        "{} of {frames} frames differ from core:\n{}",
        bad.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn trace(tables: &Tables, target: u32) -> Vec<(Vec<u8>, u32)> {
    let trace = generate_trace(&TraceSpec::mixed(VipTarget::for_tables(tables), target))
        .expect("valid spec");
    trace
        .frames
        .into_iter()
        .map(|f| (f.data, tick_of(f.ts)))
        .collect()
}

// ---- Tests ----

/// A mixed trace (IPv4/IPv6, VLAN, fragments, malformed, passthrough, SYN flood) through
/// the 512-bit parser back to back (one-beat frames arrive one per clock), with backends
/// going down and up mid-stream: some slots lose both backends (NoHealthyBackend), stored
/// flows re-select.
#[test]
fn trace_decisions_match_core_with_backends_going_down_and_up() {
    let tables = test_tables(
        Geometry {
            sets: 256,
            ways: 4,
            choices: 1,
        },
        Timeouts::default(),
    );
    let mut frames = trace(&tables, 1500);
    let hasher = FlowHasher::new(&tables.keys);
    let one_beat =
        |f: &[u8]| f.len() <= 64 && matches!(prepare(f, &tables, &hasher), Prepared::Balance(_));
    // With one-beat frames, stage h+4 (select) in the clock after the write holds the
    // frame `PARSE_LATENCY + WIDE_HLAT + 6` before this one (the VIP compares, the pick's
    // two halves and the hash inputs each take a clock before the hash, the slot, the
    // Maglev read and its register three after it): those must all be busy for the
    // change to wait (the burst below).
    let back = PARSE_LATENCY + WIDE_HLAT + 7;
    // The trace's runs of one-beat VIP frames can be shorter than that: put `back + 8` of
    // them back to back in the middle, at the tick of the frame before (sized from the
    // latencies, so a deeper parser or decide keeps the burst long enough).
    let run: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| one_beat(&f.0))
        .take(back + 8)
        .map(|f| f.0.clone())
        .collect();
    assert_eq!(run.len(), back + 8, "the trace has one-beat VIP frames");
    let at = frames.len() / 2 + 5;
    let tick = frames[at - 1].1;
    frames.splice(at..at, run.into_iter().map(|f| (f, tick)));
    let n = frames.len();
    let step = n / 8;
    // Backends 0–3 serve VIP 0, 4–6 VIP 1 (6 draining), 7–9 VIP 2, 10–11 VIP 3,
    // 12–14 VIP 4, 15–16 VIP 5, 17–18 VIP 6.
    let change = |before, backend, up| UpChange {
        before,
        backend,
        up,
    };
    let mut changes = vec![
        change(step, 0, false),
        change(2 * step, 2, false),
        change(2 * step + 1, 7, false),
        change(3 * step, 12, false),
        change(3 * step + 3, 10, false),
        change(4 * step, 11, false),
        change(5 * step, 0, true),
        change(5 * step + 2, 2, true),
        change(6 * step, 15, false),
        change(7 * step, 10, true),
        change(7 * step + 1, 11, true),
        change(7 * step + 2, 12, true),
    ];
    // Inside the SYN flood (one-beat frames for VIP 0, one per clock): a change written
    // there finds stage 4 busy and must wait for a frame boundary with an idle clock.
    let one_beat_for_vip = |i: usize| one_beat(&frames[i].0);
    let burst = (back..n - 50)
        .find(|&i| (i - back..i).all(one_beat_for_vip))
        .expect("the trace has a SYN flood");
    changes.push(change(burst, 1, false));
    changes.push(change(burst + 4, 3, false));
    changes.push(change(burst + 40, 1, true));
    changes.push(change(burst + 41, 3, true));
    changes.sort_by_key(|c| c.before);
    let (bad, tally) = compare::<512, 64, 8, 7, 4, 8, WIDE_CHUNK, WIDE_WIN, WIDE_HLAT>(
        &tables, &frames, &changes, false,
    );
    assert_no_mismatch(&bad, n);
    // The trace reached every outcome this test is about.
    assert!(tally.forward > n as u64 / 2, "{tally:?}");
    assert!(
        tally.pass > 0 && tally.hits > 0 && tally.misses > 0,
        "{tally:?}"
    );
    assert!(tally.reselects > 0, "{tally:?}");
    // Back to back, some changes wait for a frame boundary with an idle clock.
    assert!(tally.deferred > 0, "{tally:?}");
    let no_backend = DropReason::NoHealthyBackend.code();
    assert!(
        tally.drops.get(&no_backend).is_some_and(|&d| d > 0),
        "{tally:?}"
    );
    assert!(tally.drops.keys().any(|&c| c != no_backend), "{tally:?}");
}

/// A tiny flow table (4 sets × 2 ways) and short timeouts under the same mix and its SYN
/// flood: evictions, expirations and refused embryonic inserts, back to back.
#[test]
fn table_overflow_evicts_expires_and_refuses_like_core() {
    let timeouts = Timeouts {
        tcp_ms: 300,
        tcp_embryonic_ms: 40,
        udp_ms: 100,
    };
    let tables = test_tables(
        Geometry {
            sets: 4,
            ways: 2,
            choices: 1,
        },
        timeouts,
    );
    let frames = trace(&tables, 1200);
    let (bad, tally) = compare::<512, 64, 2, 1, 2, 4, WIDE_CHUNK, WIDE_WIN, WIDE_HLAT>(
        &tables,
        &frames,
        &[],
        false,
    );
    assert_no_mismatch(&bad, frames.len());
    assert!(tally.evictions > 0, "{tally:?}");
    assert!(tally.expirations > 0, "{tally:?}");
    assert!(tally.refused > 0, "{tally:?}");
}

/// The 64-bit parser with idle clocks between beats: frames reach the block far apart,
/// and up changes take effect at once (every clock between frames is idle).
#[test]
fn narrow_stream_with_gaps_matches_core() {
    let tables = test_tables(
        Geometry {
            sets: 64,
            ways: 4,
            choices: 1,
        },
        Timeouts::default(),
    );
    let frames: Vec<_> = trace(&tables, 1500).into_iter().take(250).collect();
    let changes = vec![
        UpChange {
            before: 60,
            backend: 7,
            up: false,
        },
        UpChange {
            before: 61,
            backend: 8,
            up: false,
        },
        UpChange {
            before: 150,
            backend: 7,
            up: true,
        },
    ];
    let (bad, tally) = compare::<64, 8, 6, 5, 4, 8, SERIAL_CHUNK, SERIAL_WIN, SERIAL_HLAT>(
        &tables, &frames, &changes, true,
    );
    assert_no_mismatch(&bad, frames.len());
    assert_eq!(tally.deferred, 0, "{tally:?}");
}

/// Runt UDP frames (42 bytes: six 64-bit beats) back to back on the 64-bit stream, for
/// two VIPs (an exact port and an any-port with src-ip persistence): they come closer
/// than the serial hash's `MIN_GAP`, so each `tlast` waits as the top makes it wait, and
/// parses reach the block exactly `MIN_GAP` clocks apart, the tightest spacing it takes.
#[test]
fn narrow_runts_back_to_back_match_core() {
    use etherparse::PacketBuilder;
    type Serial = TestDecide<6, 5, 4, 8, SERIAL_CHUNK, SERIAL_WIN, SERIAL_HLAT>;
    let tables = test_tables(
        Geometry {
            sets: 64,
            ways: 4,
            choices: 1,
        },
        Timeouts::default(),
    );
    let frames: Vec<(Vec<u8>, u32)> = (0..160u16)
        .map(|i| {
            let mut frame = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4([10, 0, 0, (i % 40) as u8], [192, 0, 2, 11], 64)
                .udp(1024 + i % 40, if i % 3 == 0 { 5353 } else { 53 })
                .write(&mut frame, &[])
                .unwrap();
            (frame, 1000 + u32::from(i))
        })
        .collect();
    assert!(frames
        .iter()
        .all(|f| f.0.len().div_ceil(8) < Serial::MIN_GAP));
    let (bad, tally) = compare::<64, 8, 6, 5, 4, 8, SERIAL_CHUNK, SERIAL_WIN, SERIAL_HLAT>(
        &tables,
        &frames,
        &[],
        false,
    );
    assert_no_mismatch(&bad, frames.len());
    assert_eq!(tally.forward, frames.len() as u64, "{tally:?}");
    assert!(tally.hits > 0 && tally.inserts > 0, "{tally:?}");
}

// ---- Synthesis and lint ----

/// A geometry small enough for generic synthesis (which maps every RAM to flip-flops):
/// 2 VIPs, 32 backends, M = 13, 4 sets × 2 ways (two banks of 2 rows). The three hash
/// trees dominate.
type SynthDecide = Decide<2, 1, 32, 4, 5, 2, 1, 2, 4, WIDE_CHUNK, WIDE_WIN, WIDE_HLAT>;

#[test]
fn decide_synthesizes() {
    let mut uut = SynthDecide::new(13);
    uut.connect_all();
    let verilog = generate_verilog(&uut);
    let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
    eprintln!("generic synth: {report}");
    // The three Toeplitz trees: 3 × 32 × 311 two-input XORs at least (yosys may merge a
    // few with the surrounding logic, never drop a tree).
    let xors = report.cell_count("$_XOR_") + report.cell_count("$_XNOR_");
    assert!(xors >= 3 * 32 * 300, "{report}");
    // Registers: the Maglev RAM (2 × 16 rows × 32 bits), the flow table (4 × 2 × 114 bits)
    // and the pipeline are all there.
    assert!(report.flip_flops() > 2 * 16 * 32 + 8 * 114, "{report}");
}

/// The emitted profile lints clean but for the warnings rust-hdl's idioms cause: WIDTH
/// (the zero-extending `bit_cast`s that place fields in the 312-bit hash input and the
/// 32-bit up word in the bitmap), UNUSEDSIGNAL (upper bits of 32-bit indices) and
/// UNOPTFLAT (the flow table's always block drives its `SlotChoice` copies and reads them
/// back: a loop only at Verilator's granularity, see `flow_table_passes_verilator_lint`).
#[test]
fn decide_passes_verilator_lint() {
    let verilog = emit_verilog(Design::FlowDecide);
    let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
    waivers.extend(["WIDTH", "UNUSEDSIGNAL", "UNOPTFLAT"]);
    verilator_lint(&verilog, "top", &waivers).unwrap();
}
