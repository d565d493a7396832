//! The balancer's top level: every block of the pipeline wired between one AXI4-Stream in,
//! one AXI4-Stream out and the AXI4-Lite register block, with the ports of
//! [`crate::stand_in`] (which it replaces in the simulation engines and the shell wrapper).
//!
//! ```text
//! s_axis ─┬─▶ FrameFifo (whole frames) ─────────────────────────────────┐
//!         ├─▶ InnerSum ─▶ sums (FIFO, one per frame) ──▶ A (joins the action)
//!         └─▶ AxisParser ─▶ Decide (VIP, hash, Maglev, flow table) ─▶ A ─▶ ActionFifo ─▶ Rewriter ─▶ m_axis
//!                                   ▲ tables (mirror)          BACKEND read ┘   │
//!   s_axil ─▶ Csr ──────────────────┴──────── scalars, own MAC, encap ──────────┘
//!                  ◀── counter reads ── CounterBlock ◀── one event per frame (B)
//!                  ◀── FLOW reads ───── Decide's flow table (peek)
//! ```
//!
//! # Per frame
//! * Every accepted beat goes to the frame FIFO, the parser and the inner summer (one
//!   handshake, so they cannot disagree). The frame's tick is `s_axis_tuser` of its first
//!   beat. The summer's result (the inner datagram's sum, for GUE's UDP checksum under
//!   IPv6) enters a small FIFO [`crate::inner_sum::LATENCY`] clocks after `tlast`, and
//!   stage A pops it into the frame's action: a frame is whole in the frame FIFO before
//!   its action exists.
//! * [`Decide`] takes a frame every [`Top::DECIDE_MIN_GAP`] clocks at most (its serial
//!   hash: 8 on the 64-bit small profile, 1 on 512-bit streams), so a `tlast` beat that
//!   comes sooner after the previous one waits (`s_axis_tready` low for that beat). Only
//!   frames shorter than 64 bytes ever wait: a 64-byte frame is 8 beats of 64 bits.
//! * [`crate::axis_parse::LATENCY`] clocks after `tlast`, the parse result enters [`Decide`]
//!   (with the frame's tick, which travels through the parser beside the header, and,
//!   when `ENABLE` is 0, its result forced to "not IP" so every frame is passed untouched).
//! * [`Top::DECIDE_LATENCY`] clocks later the decision is out; in that clock the top reads the chosen
//!   backend's BACKEND entry (MAC, address, family) from the CSR's active bank, and one
//!   clock later (stage A) it pushes the action into the action FIFO and forms the frame's
//!   counter event, which the counters take one clock after that (stage B, a register
//!   that keeps the MTU compare below off the counters' own paths). A forward by IP-in-IP
//!   whose outer frame would exceed `MAX_FRAME_LEN` is counted as dropped with
//!   `EncapTooLarge` here, by the same rule the rewriter applies when it drops the frame.
//! * The rewriter takes action and frame in order and writes `m_axis`. Dropped frames are
//!   consumed without output, so frames leave in input order.
//!
//! # Tables: the decision block's copy follows the CSR's active bank
//! The CSR keeps shadow and active banks and commits at a frame boundary; [`Decide`]
//! keeps its own table copy (VIP entries in flip-flops and the backend VIP bit planes are
//! read by every frame in parallel, which a RAM read port cannot serve). When a commit
//! has finished (`commit_busy` falls), the *mirror* walks the active bank through the
//! CSR's pipeline read ports and writes every VIP entry, backend VIP and Maglev row into
//! [`Decide`], one row per clock (`2^MAGLEV_BITS + 1` clocks). The up bitmap (not
//! shadowed) is copied one word per clock, round robin, all the time.
//!
//! So that no frame sees a mix of old and new state, the top *holds* the input between
//! frames (`s_axis_tready` low, never inside a frame) while a commit is pending or running
//! and while the mirror runs, and tells the CSR that it is at a frame boundary only when
//! the whole pipeline is empty: no frame half in, none in the parser, the decision block,
//! stages A and B, either FIFO, or the rewriter's action stage. Frames that arrive meanwhile wait
//! upstream (AXI4-Stream backpressure); none is lost.
//!
//! # Read-back
//! Counter reads go to the [`CounterBlock`]'s read port. A FLOW read holds the input the
//! same way, waits until the pipeline has been empty for [`FLOW_READ_QUIET`] clocks (every
//! flow-table write has landed), reads the set through the decision block's peek port and
//! answers with the way asked for.
//!
//! # Flow control
//! The action FIFO has `2^ACT_BITS` entries. Frames already past the parser cannot be
//! stopped (the decision pipeline has no stall), so the input stops while the action
//! FIFO holds more than `2^ACT_BITS - ACT_MARGIN` entries. The frame FIFO must hold the
//! longest frame: a frame longer than `2^FIFO_BITS` beats can never be decided (its
//! `tlast` cannot enter) and blocks the input; the profiles size it for 9216-byte frames.

use crate::action_fifo::{ActionFifo, ACT_MODE_BITS};
use crate::axis_parse::AxisParser;
use crate::constant;
use crate::counters::CounterBlock;
use crate::csr::{Csr, CsrError, CsrParams, ADDR_BITS};
use crate::decide::{self, Decide};
use crate::frame_fifo::FrameFifo;
use crate::inner_sum::InnerSum;
use crate::parse::RESULT_NOT_IP;
use crate::rewrite::Rewriter;
use crate::widen::{Concat32, ZeroExtend};
use flowgate_core::regmap;
use flowgate_core::rewrite::{Mode, MAX_FRAME_LEN};
use flowgate_core::DropReason;
use rust_hdl::prelude::*;

/// Clocks the pipeline must have been empty before a FLOW read samples the flow table
/// (a request's write lands 4 clocks after it, the read shows 2 clocks after its set).
pub const FLOW_READ_QUIET: u64 = 6;
/// Entries kept free in the action FIFO for frames already past the input.
pub const ACT_MARGIN: u64 = 16;

/// The balancer: see the module doc. Stream `D` bits (`K = D / 8`), frame FIFO
/// `2^FB` beats (`FB1 = FB + 1`), action FIFO `2^AB` frames (`AB1 = AB + 1`), and the
/// geometry of [`Decide`] and [`Csr`]: `VIPS` (`VIP_BITS`), `BACKENDS = 2^BACKEND_BITS`,
/// Maglev rows of `2^SLOT_BITS` (`MAGLEV_BITS = VIP_BITS + SLOT_BITS`), `UP_WORDS =
/// BACKENDS / 32`, flow table `2^SET_BITS` × `WAYS`; the decision block's hash in
/// slices of `CHUNK` bits (key window `WIN = CHUNK + 31`, latency `HLAT` = slices + 1):
/// see [`Decide`].
#[derive(LogicBlock)]
pub struct Top<
    const D: usize,
    const K: usize,
    const FB: usize,
    const FB1: usize,
    const AB: usize,
    const AB1: usize,
    const VIPS: usize,
    const VIP_BITS: usize,
    const BACKENDS: usize,
    const BACKEND_BITS: usize,
    const SLOT_BITS: usize,
    const MAGLEV_BITS: usize,
    const UP_WORDS: usize,
    const SET_BITS: usize,
    const ROW_BITS: usize,
    const WAYS: usize,
    const PAIR_WAYS: usize,
    const CHUNK: usize,
    const WIN: usize,
    const HLAT: usize,
> {
    pub clock: Signal<In, Clock>,
    pub s_axis_tdata: Signal<In, Bits<D>>,
    pub s_axis_tkeep: Signal<In, Bits<K>>,
    pub s_axis_tvalid: Signal<In, Bit>,
    pub s_axis_tlast: Signal<In, Bit>,
    /// The frame's tick (milliseconds of frame time), on its first beat.
    pub s_axis_tuser: Signal<In, Bits<32>>,
    pub s_axis_tready: Signal<Out, Bit>,
    pub m_axis_tdata: Signal<Out, Bits<D>>,
    pub m_axis_tkeep: Signal<Out, Bits<K>>,
    pub m_axis_tvalid: Signal<Out, Bit>,
    pub m_axis_tlast: Signal<Out, Bit>,
    /// 0: forwarded (rewritten); 1: passed to the host untouched.
    pub m_axis_tuser: Signal<Out, Bits<8>>,
    pub m_axis_tready: Signal<In, Bit>,
    pub s_axil_awaddr: Signal<In, Bits<ADDR_BITS>>,
    pub s_axil_awvalid: Signal<In, Bit>,
    pub s_axil_awready: Signal<Out, Bit>,
    pub s_axil_wdata: Signal<In, Bits<32>>,
    pub s_axil_wstrb: Signal<In, Bits<4>>,
    pub s_axil_wvalid: Signal<In, Bit>,
    pub s_axil_wready: Signal<Out, Bit>,
    pub s_axil_bresp: Signal<Out, Bits<2>>,
    pub s_axil_bvalid: Signal<Out, Bit>,
    pub s_axil_bready: Signal<In, Bit>,
    pub s_axil_araddr: Signal<In, Bits<ADDR_BITS>>,
    pub s_axil_arvalid: Signal<In, Bit>,
    pub s_axil_arready: Signal<Out, Bit>,
    pub s_axil_rdata: Signal<Out, Bits<32>>,
    pub s_axil_rresp: Signal<Out, Bits<2>>,
    pub s_axil_rvalid: Signal<Out, Bit>,
    pub s_axil_rready: Signal<In, Bit>,

    // ---- Blocks.
    parser: AxisParser<D, K>,
    fifo: FrameFifo<D, K, FB, FB1>,
    decide: Decide<
        VIPS,
        VIP_BITS,
        BACKENDS,
        SLOT_BITS,
        MAGLEV_BITS,
        SET_BITS,
        ROW_BITS,
        WAYS,
        PAIR_WAYS,
        CHUNK,
        WIN,
        HLAT,
    >,
    csr: Csr<VIPS, BACKEND_BITS, SLOT_BITS, MAGLEV_BITS, UP_WORDS>,
    counters: CounterBlock<VIP_BITS, BACKEND_BITS>,
    act: ActionFifo<AB, AB1>,
    /// The inner datagram's sum of each frame ([`crate::inner_sum`]), taken on the input,
    /// waits in `sums` for the frame's action (stage A), which carries it to the rewriter.
    inner_sum: InnerSum<D, K>,
    sums: SynchronousFIFO<Bits<32>, SUM_FIFO_BITS, SUM_FIFO_BITS_PLUS_1, 1>,
    rewriter: Rewriter<D, K>,
    flow_word: Concat32<4, 128>,
    flow_backend32: ZeroExtend<16, 32>,
    flow_class32: ZeroExtend<2, 32>,
    a_l3_32: ZeroExtend<16, 32>,
    a_ip_len_32: ZeroExtend<16, 32>,

    // ---- Input.
    in_frame: DFF<Bit>,
    /// Clocks since the last `tlast` was taken, up to `min_gap`.
    since_last: DFF<Bits<8>>,
    min_gap: Constant<Bits<8>>,
    one8: Constant<Bits<8>>,
    gap_hold: Signal<Local, Bit>,
    tick_cur: DFF<Bits<32>>,
    take: Signal<Local, Bit>,
    frame_tick: Signal<Local, Bits<32>>,
    hold: Signal<Local, Bit>,
    act_gate: Signal<Local, Bit>,
    quiet: Signal<Local, Bit>,

    // ---- Stage A (the clock after the decision).
    a_valid: DFF<Bit>,
    a_verdict: DFF<Bits<2>>,
    a_reason: DFF<Bits<8>>,
    a_vip: DFF<Bits<16>>,
    a_backend: DFF<Bits<16>>,
    a_mode: DFF<Bits<2>>,
    a_hash: DFF<Bits<32>>,
    a_l3: DFF<Bits<16>>,
    a_ip_len: DFF<Bits<16>>,
    a_is_v6: DFF<Bit>,
    a_dscp: DFF<Bits<8>>,
    a_len: DFF<Bits<16>>,
    a_flow: DFF<Bit>,
    a_hit: DFF<Bit>,
    a_insert: DFF<Bits<3>>,
    a_reselect: DFF<Bit>,
    b_v6: Signal<Local, Bit>,
    outer_len: Signal<Local, Bits<32>>,
    /// The frame's VIP's `encap_port`.
    a_port: Signal<Local, Bits<16>>,
    too_large: Signal<Local, Bit>,

    // ---- Stage B: the counter event, registered. It cuts the longest path of the
    // placed top (26.3 ns, 38.1 MHz): the backend entry's block-RAM read → the outer
    // length → the MTU compare → the counter block's enables.
    b_valid: DFF<Bit>,
    b_verdict: DFF<Bits<2>>,
    b_reason: DFF<Bits<8>>,
    b_vip: DFF<Bits<16>>,
    b_backend: DFF<Bits<16>>,
    b_len: DFF<Bits<16>>,
    b_flow: DFF<Bit>,
    b_hit: DFF<Bit>,
    b_insert: DFF<Bits<3>>,
    b_reselect: DFF<Bit>,

    // ---- The rewriter's action stage.
    act_take_d1: DFF<Bit>,
    act_take_d2: DFF<Bit>,

    // ---- Table mirror.
    busy_d1: DFF<Bit>,
    mirror: DFF<Bit>,
    m_idx: DFF<Bits<32>>,
    m_prev: DFF<Bits<32>>,
    m_prev_ok: DFF<Bit>,
    vsel: Signal<Local, Bits<{ crate::csr::VIP_ENTRY_BITS }>>,
    up_rr: DFF<Bits<16>>,
    up_sel_word: Signal<Local, Bits<32>>,

    // ---- FLOW read-back.
    fl_pending: DFF<Bit>,
    fl_set: DFF<Bits<32>>,
    fl_way: DFF<Bits<32>>,
    fl_quiet: DFF<Bits<32>>,
    fl_class: Signal<Local, Bits<2>>,
    fl_digest: Signal<Local, Bits<64>>,
    fl_backend: Signal<Local, Bits<16>>,
    fl_seen: Signal<Local, Bits<32>>,

    // ---- Constants.
    not_ip: Constant<Bits<8>>,
    mode_dsr: Constant<Bits<2>>,
    mode_gue: Constant<Bits<2>>,
    verdict_forward: Constant<Bits<2>>,
    verdict_drop: Constant<Bits<2>>,
    encap_too_large: Constant<Bits<8>>,
    max_frame: Constant<Bits<32>>,
    outer_v4: Constant<Bits<32>>,
    outer_v6: Constant<Bits<32>>,
    outer_gue_v4: Constant<Bits<32>>,
    outer_gue_v6: Constant<Bits<32>>,
    vip_id16: [Constant<Bits<16>>; VIPS],
    act_gate_level: Constant<Bits<AB1>>,
    mirror_rows: Constant<Bits<32>>,
    n_vips: Constant<Bits<32>>,
    n_backends: Constant<Bits<32>>,
    vip_id: [Constant<Bits<32>>; VIPS],
    last_up_word: Constant<Bits<16>>,
    up_id: [Constant<Bits<16>>; UP_WORDS],
    way_id: [Constant<Bits<32>>; WAYS],
    all_ones: Constant<Bits<32>>,
    one32: Constant<Bits<32>>,
    one16: Constant<Bits<16>>,
    zero16: Constant<Bits<16>>,
    zero32: Constant<Bits<32>>,
    quiet_clocks: Constant<Bits<32>>,
    shift16: Constant<Bits<32>>,
}

impl<
        const D: usize,
        const K: usize,
        const FB: usize,
        const FB1: usize,
        const AB: usize,
        const AB1: usize,
        const VIPS: usize,
        const VIP_BITS: usize,
        const BACKENDS: usize,
        const BACKEND_BITS: usize,
        const SLOT_BITS: usize,
        const MAGLEV_BITS: usize,
        const UP_WORDS: usize,
        const SET_BITS: usize,
        const ROW_BITS: usize,
        const WAYS: usize,
        const PAIR_WAYS: usize,
        const CHUNK: usize,
        const WIN: usize,
        const HLAT: usize,
    >
    Top<
        D,
        K,
        FB,
        FB1,
        AB,
        AB1,
        VIPS,
        VIP_BITS,
        BACKENDS,
        BACKEND_BITS,
        SLOT_BITS,
        MAGLEV_BITS,
        UP_WORDS,
        SET_BITS,
        ROW_BITS,
        WAYS,
        PAIR_WAYS,
        CHUNK,
        WIN,
        HLAT,
    >
{
    /// Clocks from a parse result to its decision ([`Decide::LATENCY`]).
    pub const DECIDE_LATENCY: usize = decide::latency(HLAT);
    /// The least spacing of two frames' `tlast` beats ([`Decide::MIN_GAP`]).
    pub const DECIDE_MIN_GAP: usize = decide::min_gap(CHUNK);

    /// The top with Maglev tables of `maglev_m` slots.
    ///
    /// # Errors
    /// A geometry the register block cannot describe ([`CsrError`]).
    ///
    /// # Panics
    /// On a geometry the blocks cannot implement (as [`Decide::new`] does), or a register
    /// map whose VIP or BACKEND entry layout differs from the bit positions wired here.
    pub fn new(maglev_m: u32) -> Result<Self, CsrError> {
        assert_eq!(BACKENDS, 1 << BACKEND_BITS, "BACKENDS = 2^BACKEND_BITS");
        assert_eq!(UP_WORDS * 32, BACKENDS, "UP_WORDS = BACKENDS / 32");
        assert!(
            MAGLEV_BITS < 31 && 1usize << MAGLEV_BITS >= BACKENDS.max(VIPS),
            "the mirror walks 2^MAGLEV_BITS rows, which must cover every backend and VIP"
        );
        assert!(
            AB >= 5 && AB1 == AB + 1 && FB1 == FB + 1,
            "FIFO pointer widths"
        );
        assert_eq!(D, 8 * K, "D = 8 × K");
        // The input stops while the action FIFO holds `2^AB - ACT_MARGIN` actions, but
        // frames already past it still push theirs: at most one per `DECIDE_MIN_GAP`
        // clocks from the input to stage A (parser, decision, BACKEND read, stage A, and
        // the fill count's lag). Either they fit in the margin, or the frame FIFO, which
        // holds at least one beat of every frame whose action is queued, fills first.
        let in_flight =
            (crate::axis_parse::LATENCY + Self::DECIDE_LATENCY + 4).div_ceil(Self::DECIDE_MIN_GAP);
        assert!(
            in_flight as u64 <= ACT_MARGIN || FB <= AB,
            "the action FIFO's margin ({ACT_MARGIN}) is below the {in_flight} frames in flight"
        );
        // The inner-sum FIFO holds a sum from its frame's `tlast` to its stage A: at most
        // one frame a clock over that span (every frame gives one sum and one action).
        assert!(
            crate::axis_parse::LATENCY + Self::DECIDE_LATENCY + 4 < 1 << SUM_FIFO_BITS,
            "the inner-sum FIFO is shorter than the frames between tlast and stage A"
        );
        // Stage A pops the sum without looking: it must be in the FIFO (written, and its
        // `empty` updated a clock later) before the frame's decision is out.
        assert!(
            crate::inner_sum::LATENCY + 2 <= crate::axis_parse::LATENCY + Self::DECIDE_LATENCY,
            "the inner sum comes after its frame's stage A"
        );
        // The field positions wired in `update` (literal bit offsets: `#[hdl_gen]` cannot
        // name a Rust constant inside a bit index).
        for (field, lsb) in [
            (regmap::VIP_ADDRESS, 0),
            (regmap::VIP_PORT, 128),
            (regmap::VIP_PROTOCOL, 144),
            (regmap::VIP_IS_V6, 152),
            (regmap::VIP_MODE, 153),
            (regmap::VIP_PERSISTENCE, 155),
            (regmap::VIP_VALID, 157),
            (regmap::VIP_ENCAP_PORT, 160),
            (regmap::BACKEND_ADDRESS, 0),
            (regmap::BACKEND_MAC, 128),
            (regmap::BACKEND_VIP, 176),
            (regmap::BACKEND_IS_V6, 208),
            (regmap::FLOW_DIGEST, 0),
            (regmap::FLOW_BACKEND, 64),
            (regmap::FLOW_CLASS, 80),
            (regmap::FLOW_LAST_SEEN, 96),
        ] {
            assert_eq!(field.lsb, lsb, "register map field {} moved", field.name);
        }
        let csr = Csr::new(CsrParams {
            backend_capacity: BACKENDS as u32,
            maglev_m,
            flow_sets_log2: SET_BITS as u32,
            flow_ways: WAYS as u32,
        })?;
        Ok(Self {
            clock: Default::default(),
            s_axis_tdata: Default::default(),
            s_axis_tkeep: Default::default(),
            s_axis_tvalid: Default::default(),
            s_axis_tlast: Default::default(),
            s_axis_tuser: Default::default(),
            s_axis_tready: Default::default(),
            m_axis_tdata: Default::default(),
            m_axis_tkeep: Default::default(),
            m_axis_tvalid: Default::default(),
            m_axis_tlast: Default::default(),
            m_axis_tuser: Default::default(),
            m_axis_tready: Default::default(),
            s_axil_awaddr: Default::default(),
            s_axil_awvalid: Default::default(),
            s_axil_awready: Default::default(),
            s_axil_wdata: Default::default(),
            s_axil_wstrb: Default::default(),
            s_axil_wvalid: Default::default(),
            s_axil_wready: Default::default(),
            s_axil_bresp: Default::default(),
            s_axil_bvalid: Default::default(),
            s_axil_bready: Default::default(),
            s_axil_araddr: Default::default(),
            s_axil_arvalid: Default::default(),
            s_axil_arready: Default::default(),
            s_axil_rdata: Default::default(),
            s_axil_rresp: Default::default(),
            s_axil_rvalid: Default::default(),
            s_axil_rready: Default::default(),
            parser: Default::default(),
            fifo: Default::default(),
            decide: Decide::new(maglev_m),
            csr,
            counters: Default::default(),
            act: Default::default(),
            inner_sum: Default::default(),
            sums: Default::default(),
            rewriter: Default::default(),
            flow_word: Concat32::lsb_first(),
            flow_backend32: Default::default(),
            flow_class32: Default::default(),
            a_l3_32: Default::default(),
            a_ip_len_32: Default::default(),
            in_frame: Default::default(),
            since_last: Default::default(),
            min_gap: constant(Self::DECIDE_MIN_GAP as u64),
            one8: constant(1),
            gap_hold: Default::default(),
            tick_cur: Default::default(),
            take: Default::default(),
            frame_tick: Default::default(),
            hold: Default::default(),
            act_gate: Default::default(),
            quiet: Default::default(),
            a_valid: Default::default(),
            a_verdict: Default::default(),
            a_reason: Default::default(),
            a_vip: Default::default(),
            a_backend: Default::default(),
            a_mode: Default::default(),
            a_hash: Default::default(),
            a_l3: Default::default(),
            a_ip_len: Default::default(),
            a_is_v6: Default::default(),
            a_dscp: Default::default(),
            a_len: Default::default(),
            a_flow: Default::default(),
            a_hit: Default::default(),
            a_insert: Default::default(),
            a_reselect: Default::default(),
            b_v6: Default::default(),
            outer_len: Default::default(),
            a_port: Default::default(),
            too_large: Default::default(),
            b_valid: Default::default(),
            b_verdict: Default::default(),
            b_reason: Default::default(),
            b_vip: Default::default(),
            b_backend: Default::default(),
            b_len: Default::default(),
            b_flow: Default::default(),
            b_hit: Default::default(),
            b_insert: Default::default(),
            b_reselect: Default::default(),
            act_take_d1: Default::default(),
            act_take_d2: Default::default(),
            busy_d1: Default::default(),
            mirror: Default::default(),
            m_idx: Default::default(),
            m_prev: Default::default(),
            m_prev_ok: Default::default(),
            vsel: Default::default(),
            up_rr: Default::default(),
            up_sel_word: Default::default(),
            fl_pending: Default::default(),
            fl_set: Default::default(),
            fl_way: Default::default(),
            fl_quiet: Default::default(),
            fl_class: Default::default(),
            fl_digest: Default::default(),
            fl_backend: Default::default(),
            fl_seen: Default::default(),
            not_ip: constant(u64::from(RESULT_NOT_IP)),
            mode_dsr: constant(Mode::Dsr.code().into()),
            mode_gue: constant(Mode::Gue { port: 0 }.code().into()),
            verdict_forward: constant(u64::from(crate::decide::VERDICT_FORWARD)),
            verdict_drop: constant(u64::from(crate::decide::VERDICT_DROP)),
            encap_too_large: constant(u64::from(DropReason::EncapTooLarge.code())),
            max_frame: constant(MAX_FRAME_LEN as u64),
            outer_v4: constant(Mode::IpIp.spec().outer_len_v4 as u64),
            outer_v6: constant(Mode::IpIp.spec().outer_len_v6 as u64),
            outer_gue_v4: constant(Mode::Gue { port: 0 }.spec().outer_len_v4 as u64),
            outer_gue_v6: constant(Mode::Gue { port: 0 }.spec().outer_len_v6 as u64),
            vip_id16: std::array::from_fn(|v| constant(v as u64)),
            act_gate_level: constant((1u64 << AB) - ACT_MARGIN),
            mirror_rows: constant(1u64 << MAGLEV_BITS),
            n_vips: constant(VIPS as u64),
            n_backends: constant(BACKENDS as u64),
            vip_id: std::array::from_fn(|v| constant(v as u64)),
            last_up_word: constant(UP_WORDS as u64 - 1),
            up_id: std::array::from_fn(|w| constant(w as u64)),
            way_id: std::array::from_fn(|w| constant(w as u64)),
            all_ones: constant(u64::from(u32::MAX)),
            one32: constant(1),
            one16: constant(1),
            zero16: constant(0),
            zero32: constant(0),
            quiet_clocks: constant(FLOW_READ_QUIET),
            shift16: constant(16),
        })
    }
}

impl<
        const D: usize,
        const K: usize,
        const FB: usize,
        const FB1: usize,
        const AB: usize,
        const AB1: usize,
        const VIPS: usize,
        const VIP_BITS: usize,
        const BACKENDS: usize,
        const BACKEND_BITS: usize,
        const SLOT_BITS: usize,
        const MAGLEV_BITS: usize,
        const UP_WORDS: usize,
        const SET_BITS: usize,
        const ROW_BITS: usize,
        const WAYS: usize,
        const PAIR_WAYS: usize,
        const CHUNK: usize,
        const WIN: usize,
        const HLAT: usize,
    > Logic
    for Top<
        D,
        K,
        FB,
        FB1,
        AB,
        AB1,
        VIPS,
        VIP_BITS,
        BACKENDS,
        BACKEND_BITS,
        SLOT_BITS,
        MAGLEV_BITS,
        UP_WORDS,
        SET_BITS,
        ROW_BITS,
        WAYS,
        PAIR_WAYS,
        CHUNK,
        WIN,
        HLAT,
    >
{
    #[hdl_gen]
    fn update(&mut self) {
        clock!(self, clock, parser, fifo, decide, csr, counters, act, inner_sum, sums, rewriter);
        dff_setup!(
            self,
            clock,
            in_frame,
            since_last,
            tick_cur,
            a_valid,
            a_verdict,
            a_reason,
            a_vip,
            a_backend,
            a_mode,
            a_hash,
            a_l3,
            a_ip_len,
            a_is_v6,
            a_dscp,
            a_len,
            a_flow,
            a_hit,
            a_insert,
            a_reselect,
            b_valid,
            b_verdict,
            b_reason,
            b_vip,
            b_backend,
            b_len,
            b_flow,
            b_hit,
            b_insert,
            b_reselect,
            act_take_d1,
            act_take_d2,
            busy_d1,
            mirror,
            m_idx,
            m_prev,
            m_prev_ok,
            up_rr,
            fl_pending,
            fl_set,
            fl_way,
            fl_quiet
        );

        // ---- AXI4-Lite: the register block.
        self.csr.s_axil_awaddr.next = self.s_axil_awaddr.val();
        self.csr.s_axil_awvalid.next = self.s_axil_awvalid.val();
        self.s_axil_awready.next = self.csr.s_axil_awready.val();
        self.csr.s_axil_wdata.next = self.s_axil_wdata.val();
        self.csr.s_axil_wstrb.next = self.s_axil_wstrb.val();
        self.csr.s_axil_wvalid.next = self.s_axil_wvalid.val();
        self.s_axil_wready.next = self.csr.s_axil_wready.val();
        self.s_axil_bresp.next = self.csr.s_axil_bresp.val();
        self.s_axil_bvalid.next = self.csr.s_axil_bvalid.val();
        self.csr.s_axil_bready.next = self.s_axil_bready.val();
        self.csr.s_axil_araddr.next = self.s_axil_araddr.val();
        self.csr.s_axil_arvalid.next = self.s_axil_arvalid.val();
        self.s_axil_arready.next = self.csr.s_axil_arready.val();
        self.s_axil_rdata.next = self.csr.s_axil_rdata.val();
        self.s_axil_rresp.next = self.csr.s_axil_rresp.val();
        self.s_axil_rvalid.next = self.csr.s_axil_rvalid.val();
        self.csr.s_axil_rready.next = self.s_axil_rready.val();

        // ---- Input: hold between frames while tables change; stop while the action
        // FIFO is nearly full.
        self.hold.next = self.csr.commit_busy.val()
            || self.mirror.q.val()
            || self.m_prev_ok.q.val()
            || self.fl_pending.q.val();
        self.act_gate.next = self.act.fill.val() >= self.act_gate_level.val();
        // The decision block takes a frame every `MIN_GAP` clocks at most (its serial
        // hash): a `tlast` that comes sooner after the previous one waits.
        self.gap_hold.next =
            self.s_axis_tlast.val() && self.since_last.q.val() < self.min_gap.val();
        self.s_axis_tready.next = self.fifo.s_axis_tready.val()
            && !self.act_gate.val()
            && !self.gap_hold.val()
            && (self.in_frame.q.val() || !self.hold.val());
        self.take.next = self.s_axis_tvalid.val() && self.s_axis_tready.val();
        if self.since_last.q.val() < self.min_gap.val() {
            self.since_last.d.next = self.since_last.q.val() + self.one8.val();
        }
        if self.take.val() {
            self.in_frame.d.next = !self.s_axis_tlast.val();
            if self.s_axis_tlast.val() {
                self.since_last.d.next = self.one8.val();
            }
        }
        self.frame_tick.next = self.s_axis_tuser.val();
        if self.in_frame.q.val() {
            self.frame_tick.next = self.tick_cur.q.val();
        }
        if self.take.val() && !self.in_frame.q.val() {
            self.tick_cur.d.next = self.s_axis_tuser.val();
        }
        // The parse of a frame appears two clocks after its `tlast`: so does its tick.

        self.fifo.s_axis_tdata.next = self.s_axis_tdata.val();
        self.fifo.s_axis_tkeep.next = self.s_axis_tkeep.val();
        self.fifo.s_axis_tlast.next = self.s_axis_tlast.val();
        self.fifo.s_axis_tvalid.next = self.take.val();
        self.parser.tdata.next = self.s_axis_tdata.val();
        self.parser.tkeep.next = self.s_axis_tkeep.val();
        self.parser.tlast.next = self.s_axis_tlast.val();
        self.parser.tvalid.next = self.take.val();
        self.parser.tag.next = self.frame_tick.val();
        self.inner_sum.tdata.next = self.s_axis_tdata.val();
        self.inner_sum.tkeep.next = self.s_axis_tkeep.val();
        self.inner_sum.tlast.next = self.s_axis_tlast.val();
        self.inner_sum.take.next = self.take.val();
        self.sums.data_in.next = self.inner_sum.sum.val();
        self.sums.write.next = self.inner_sum.sum_valid.val();

        // ---- Decision.
        self.decide.in_valid.next = self.parser.valid.val();
        self.decide.in_result.next = self.parser.result.val();
        if !self.csr.enable.val() {
            self.decide.in_result.next = self.not_ip.val();
        }
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
        self.decide.in_tick.next = self.parser.tag_out.val();
        self.decide.in_frame_len.next = self.parser.frame_len.val();
        self.decide.key_rss.next = self.csr.rss_key.val();
        self.decide.key_digest_hi.next = self.csr.digest_hi_key.val();
        self.decide.key_digest_lo.next = self.csr.digest_lo_key.val();
        self.decide.timeout_embryonic.next = self.csr.timeout_embryonic_ms.val();
        self.decide.two_choice.next = self.csr.flow_choices.val() == 2;
        self.decide.timeout_tcp.next = self.csr.timeout_tcp_ms.val();
        self.decide.timeout_udp.next = self.csr.timeout_udp_ms.val();

        // ---- Table mirror: after a commit, copy the active bank into Decide.
        self.busy_d1.d.next = self.csr.commit_busy.val();
        if self.busy_d1.q.val() && !self.csr.commit_busy.val() {
            self.mirror.d.next = true;
            self.m_idx.d.next = self.zero32.val();
        }
        if self.mirror.q.val() {
            self.m_idx.d.next = self.m_idx.q.val() + self.one32.val();
            if self.m_idx.q.val() == self.mirror_rows.val() - self.one32.val() {
                self.mirror.d.next = false;
            }
        }
        if self.csr.commit_busy.val() {
            // A new commit restarts the copy when it is done.
            self.mirror.d.next = false;
        }
        self.m_prev.d.next = self.m_idx.q.val();
        self.m_prev_ok.d.next = self.mirror.q.val() && !self.csr.commit_busy.val();
        self.csr.maglev_rd_addr.next = self.m_idx.q.val().get_bits::<MAGLEV_BITS>(0);
        self.decide.maglev_we.next = self.m_prev_ok.q.val();
        self.decide.maglev_addr.next = self.m_prev.q.val().get_bits::<MAGLEV_BITS>(0);
        self.decide.maglev_data.next = self.csr.maglev_rd_data.val();
        self.decide.bvip_we.next =
            self.m_prev_ok.q.val() && self.m_prev.q.val() < self.n_backends.val();
        self.decide.bvip_index.next = self.m_prev.q.val().get_bits::<16>(0);
        self.decide.bvip_vip.next = self.csr.backend_rd_data.val().get_bits::<16>(176);
        self.vsel.next = self.csr.vip_entry[0].val();
        for v in 0..VIPS {
            if self.m_prev.q.val() == self.vip_id[v].val() {
                self.vsel.next = self.csr.vip_entry[v].val();
            }
        }
        self.decide.vip_we.next = self.m_prev_ok.q.val() && self.m_prev.q.val() < self.n_vips.val();
        self.decide.vip_index.next = self.m_prev.q.val().get_bits::<16>(0);
        self.decide.vip_address.next = self.vsel.val().get_bits::<128>(0);
        self.decide.vip_port.next = self.vsel.val().get_bits::<16>(128);
        self.decide.vip_protocol.next = self.vsel.val().get_bits::<8>(144);
        self.decide.vip_is_v6.next = self.vsel.val().get_bit(152);
        self.decide.vip_mode.next = self.vsel.val().get_bits::<2>(153);
        self.decide.vip_persistence.next = self.vsel.val().get_bits::<2>(155);
        self.decide.vip_valid.next = self.vsel.val().get_bit(157);
        // The up bitmap, one word per clock.
        self.up_rr.d.next = self.up_rr.q.val() + self.one16.val();
        if self.up_rr.q.val() == self.last_up_word.val() {
            self.up_rr.d.next = self.zero16.val();
        }
        self.up_sel_word.next = self.csr.up[0].val();
        for w in 0..UP_WORDS {
            if self.up_rr.q.val() == self.up_id[w].val() {
                self.up_sel_word.next = self.csr.up[w].val();
            }
        }
        self.decide.up_we.next = true;
        self.decide.up_word.next = self.up_rr.q.val();
        self.decide.up_data.next = self.up_sel_word.val();
        self.decide.up_mask.next = self.all_ones.val();

        // ---- Stage A: the backend's entry, the action and the counter event.
        self.csr.backend_rd_addr.next = self.decide.out_backend.val().get_bits::<BACKEND_BITS>(0);
        if self.mirror.q.val() {
            self.csr.backend_rd_addr.next = self.m_idx.q.val().get_bits::<BACKEND_BITS>(0);
        }
        self.a_valid.d.next = self.decide.out_valid.val();
        self.a_verdict.d.next = self.decide.out_verdict.val();
        self.a_reason.d.next = self.decide.out_reason.val();
        self.a_vip.d.next = self.decide.out_vip.val();
        self.a_backend.d.next = self.decide.out_backend.val();
        self.a_mode.d.next = self.decide.out_mode.val();
        self.a_hash.d.next = self.decide.out_hash.val();
        self.a_l3.d.next = self.decide.out_l3_offset.val();
        self.a_ip_len.d.next = self.decide.out_ip_len.val();
        self.a_is_v6.d.next = self.decide.out_is_v6.val();
        self.a_dscp.d.next = self.decide.out_dscp_ecn.val();
        self.a_len.d.next = self.decide.out_frame_len.val();
        self.a_flow.d.next = self.decide.out_flow.val();
        self.a_hit.d.next = self.decide.out_hit.val();
        self.a_insert.d.next = self.decide.out_insert.val();
        self.a_reselect.d.next = self.decide.out_reselect.val();

        self.b_v6.next = self.csr.backend_rd_data.val().get_bit(208);
        // The mode's outer header length (`flowgate_core::rewrite::MODES`).
        self.outer_len.next = self.outer_v4.val();
        if self.a_mode.q.val() == self.mode_gue.val() {
            self.outer_len.next = self.outer_gue_v4.val();
            if self.b_v6.val() {
                self.outer_len.next = self.outer_gue_v6.val();
            }
        } else if self.b_v6.val() {
            self.outer_len.next = self.outer_v6.val();
        }
        self.a_l3_32.narrow.next = self.a_l3.q.val();
        self.a_ip_len_32.narrow.next = self.a_ip_len.q.val();
        // `core::rewrite`'s rule, which the rewriter applies to the frame itself.
        self.too_large.next = (self.a_verdict.q.val() == self.verdict_forward.val())
            && (self.a_mode.q.val() != self.mode_dsr.val())
            && (self.a_l3_32.wide.val() + self.a_ip_len_32.wide.val() + self.outer_len.val()
                > self.max_frame.val());

        self.act.write.next = self.a_valid.q.val();
        self.act.in_kind.next = self.a_verdict.q.val();
        // The VIP's mode parameter, from its active entry (the banks flip only while the
        // pipeline is empty, so it is the entry the decision used).
        self.a_port.next = self.csr.vip_entry[0].val().get_bits::<16>(160);
        for v in 0..VIPS {
            if self.a_vip.q.val() == self.vip_id16[v].val() {
                self.a_port.next = self.csr.vip_entry[v].val().get_bits::<16>(160);
            }
        }
        self.act.in_mode.next = bit_cast::<ACT_MODE_BITS, 2>(self.a_mode.q.val())
            | (bit_cast::<ACT_MODE_BITS, 16>(self.a_port.val()) << 2);
        self.act.in_mac.next = self.csr.backend_rd_data.val().get_bits::<48>(128);
        self.act.in_addr.next = self.csr.backend_rd_data.val().get_bits::<128>(0);
        self.act.in_addr_v6.next = self.b_v6.val();
        self.act.in_hash.next = self.a_hash.q.val();
        self.act.in_l3.next = self.a_l3.q.val();
        self.act.in_ip_len.next = self.a_ip_len.q.val();
        self.act.in_inner_v6.next = self.a_is_v6.q.val();
        self.act.in_dscp.next = self.a_dscp.q.val();
        // The frame's sum has waited since its `tlast`, many clocks before stage A.
        self.act.in_inner_sum.next = self.sums.data_out.val();
        self.sums.read.next = self.a_valid.q.val();

        self.b_valid.d.next = self.a_valid.q.val();
        self.b_verdict.d.next = self.a_verdict.q.val();
        self.b_reason.d.next = self.a_reason.q.val();
        if self.too_large.val() {
            self.b_verdict.d.next = self.verdict_drop.val();
            self.b_reason.d.next = self.encap_too_large.val();
        }
        self.b_vip.d.next = self.a_vip.q.val();
        self.b_backend.d.next = self.a_backend.q.val();
        self.b_len.d.next = self.a_len.q.val();
        self.b_flow.d.next = self.a_flow.q.val();
        self.b_hit.d.next = self.a_hit.q.val();
        self.b_insert.d.next = self.a_insert.q.val();
        self.b_reselect.d.next = self.a_reselect.q.val();
        self.counters.ev_valid.next = self.b_valid.q.val();
        self.counters.ev_verdict.next = self.b_verdict.q.val();
        self.counters.ev_reason.next = self.b_reason.q.val();
        self.counters.ev_vip.next = self.b_vip.q.val();
        self.counters.ev_backend.next = self.b_backend.q.val();
        self.counters.ev_len.next = self.b_len.q.val();
        self.counters.ev_flow.next = self.b_flow.q.val();
        self.counters.ev_hit.next = self.b_hit.q.val();
        self.counters.ev_insert.next = self.b_insert.q.val();
        self.counters.ev_reselect.next = self.b_reselect.q.val();
        self.counters.rd_req.next = self.csr.ctr_rd_req.val();
        self.counters.rd_index.next = self.csr.ctr_rd_index.val();
        self.csr.ctr_rd_valid.next = self.counters.rd_valid.val();
        self.csr.ctr_rd_data.next = self.counters.rd_data.val();

        // ---- Rewriter: frame FIFO + action FIFO in, m_axis out.
        self.rewriter.s_axis_tdata.next = self.fifo.m_axis_tdata.val();
        self.rewriter.s_axis_tkeep.next = self.fifo.m_axis_tkeep.val();
        self.rewriter.s_axis_tlast.next = self.fifo.m_axis_tlast.val();
        self.rewriter.s_axis_tvalid.next = self.fifo.m_axis_tvalid.val();
        self.fifo.m_axis_tready.next = self.rewriter.s_axis_tready.val();
        self.rewriter.act_valid.next = !self.act.empty.val();
        self.act.read.next = self.rewriter.act_ready.val();
        self.rewriter.act_kind.next = self.act.kind.val();
        self.rewriter.act_mode.next = self.act.mode.val().get_bits::<2>(0);
        self.rewriter.act_gue_port.next = self.act.mode.val().get_bits::<16>(2);
        self.rewriter.act_own_mac.next = self.csr.own_mac.val();
        self.rewriter.act_backend_mac.next = self.act.mac.val();
        self.rewriter.act_backend_addr.next = self.act.addr.val();
        self.rewriter.act_backend_v6.next = self.act.addr_v6.val();
        self.rewriter.act_encap_v4_prefix.next = self.csr.encap_v4_prefix.val();
        self.rewriter.act_encap_v4_len.next = self.csr.encap_v4_len.val().get_bits::<8>(0);
        self.rewriter.act_encap_v6_prefix.next = self.csr.encap_v6_prefix.val();
        self.rewriter.act_encap_v6_len.next = self.csr.encap_v6_len.val().get_bits::<8>(0);
        self.rewriter.act_hash.next = self.act.hash.val();
        self.rewriter.act_l3_offset.next = self.act.l3.val();
        self.rewriter.act_ip_len.next = self.act.ip_len.val();
        self.rewriter.act_inner_v6.next = self.act.inner_v6.val();
        self.rewriter.act_dscp_ecn.next = self.act.dscp.val();
        self.rewriter.act_inner_sum.next = self.act.inner_sum.val();
        self.m_axis_tdata.next = self.rewriter.m_axis_tdata.val();
        self.m_axis_tkeep.next = self.rewriter.m_axis_tkeep.val();
        self.m_axis_tlast.next = self.rewriter.m_axis_tlast.val();
        self.m_axis_tvalid.next = self.rewriter.m_axis_tvalid.val();
        self.m_axis_tuser.next = self.rewriter.m_axis_tuser.val();
        self.rewriter.m_axis_tready.next = self.m_axis_tready.val();
        // The rewriter reads the CSR scalars while it prepares an action (2 clocks).
        self.act_take_d1.d.next = self.rewriter.act_ready.val() && !self.act.empty.val();
        self.act_take_d2.d.next = self.act_take_d1.q.val();

        // ---- The pipeline is empty: a commit may flip the banks now.
        self.quiet.next = !self.in_frame.q.val()
            && !self.take.val()
            && !self.parser.busy.val()
            && !self.decide.busy.val()
            && !self.decide.out_valid.val()
            && !self.a_valid.q.val()
            && !self.b_valid.q.val()
            && !self.act.holds_actions.val()
            && !self.act_take_d1.q.val()
            && !self.act_take_d2.q.val()
            && !self.fifo.holds_beats.val()
            && self.sums.empty.val()
            && !self.rewriter.m_axis_tvalid.val();
        self.csr.frame_boundary.next = self.quiet.val();

        // ---- FLOW read-back through the decision block's peek port.
        self.csr.flow_rd_valid.next = false;
        if self.csr.flow_rd_req.val() {
            self.fl_pending.d.next = true;
            self.fl_set.d.next = self.csr.flow_rd_set.val();
            self.fl_way.d.next = self.csr.flow_rd_way.val();
            self.fl_quiet.d.next = self.zero32.val();
        }
        self.decide.peek_set.next = self.fl_set.q.val().get_bits::<SET_BITS>(0);
        if self.fl_pending.q.val() {
            self.fl_quiet.d.next = self.zero32.val();
            if self.quiet.val() {
                self.fl_quiet.d.next = self.fl_quiet.q.val() + self.one32.val();
            }
            if self.fl_quiet.q.val() == self.quiet_clocks.val() {
                self.csr.flow_rd_valid.next = true;
                self.fl_pending.d.next = false;
            }
        }
        self.fl_class.next = self.decide.peek_class[0].val();
        self.fl_digest.next = self.decide.peek_digest[0].val();
        self.fl_backend.next = self.decide.peek_backend[0].val();
        self.fl_seen.next = self.decide.peek_last_seen[0].val();
        for w in 0..WAYS {
            if self.fl_way.q.val() == self.way_id[w].val() {
                self.fl_class.next = self.decide.peek_class[w].val();
                self.fl_digest.next = self.decide.peek_digest[w].val();
                self.fl_backend.next = self.decide.peek_backend[w].val();
                self.fl_seen.next = self.decide.peek_last_seen[w].val();
            }
        }
        self.flow_backend32.narrow.next = self.fl_backend.val();
        self.flow_class32.narrow.next = self.fl_class.val();
        self.flow_word.words[0].next = self.fl_digest.val().get_bits::<32>(0);
        self.flow_word.words[1].next = self.fl_digest.val().get_bits::<32>(32);
        self.flow_word.words[2].next =
            self.flow_backend32.wide.val() | (self.flow_class32.wide.val() << self.shift16.val());
        self.flow_word.words[3].next = self.fl_seen.val();
        self.csr.flow_rd_data.next = self.flow_word.out.val();
    }
}

use crate::profile::{HUNDRED_G, SMALL, WIDE};

/// Address bits of the inner-sum FIFO (64 sums: distributed RAM).
const SUM_FIFO_BITS: usize = 6;
const SUM_FIFO_BITS_PLUS_1: usize = SUM_FIFO_BITS + 1;

/// The small profile (ECP5-85F, [`SMALL`]): 64-bit stream, 2048-beat frame FIFO, 256
/// actions, 8 VIPs, 64 backends, Maglev M = [`SMALL_MAGLEV_M`], 4096 × 4 flows.
pub type SmallTop = crate::profile_top!(SMALL);
/// The same tables on a 512-bit stream (100G shells), 256-beat frame FIFO ([`WIDE`]).
pub type WideTop = crate::profile_top!(WIDE);
/// The `100g` profile (Corundum / OpenNIC class, [`HUNDRED_G`]): 512-bit stream, 256-beat
/// frame FIFO, 256 actions, 64 VIPs, 1024 backends, Maglev M = [`WIDE_MAGLEV_M`] in rows of
/// 4096, 16384 × 4 flows.
pub type Top100g = crate::profile_top!(HUNDRED_G);
/// Maglev M of [`Top100g`].
pub const WIDE_MAGLEV_M: u32 = HUNDRED_G.maglev_m;

/// The 100g profile's top.
pub fn top_100g() -> Top100g {
    Top100g::new(HUNDRED_G.maglev_m).expect("the 100g profile fits the register map")
}

/// The longest frame every profile takes: their frame FIFOs hold 16 KiB (2048 × 8 and
/// 256 × 64 bytes).
pub const MAX_FRAME_BYTES: usize = min_frame_fifo_bytes();

const fn min_frame_fifo_bytes() -> usize {
    let profiles = crate::profile::PROFILES;
    let mut min = usize::MAX;
    let mut i = 0;
    while i < profiles.len() {
        if profiles[i].max_frame_bytes() < min {
            min = profiles[i].max_frame_bytes();
        }
        i += 1;
    }
    min
}

/// Maglev M of the small and wide profiles.
pub const SMALL_MAGLEV_M: u32 = SMALL.maglev_m;

/// The small profile's top.
pub fn small_top() -> SmallTop {
    SmallTop::new(SMALL.maglev_m).expect("the small profile fits the register map")
}

/// The 512-bit top.
pub fn wide_top() -> WideTop {
    WideTop::new(WIDE.maglev_m).expect("the wide profile fits the register map")
}
