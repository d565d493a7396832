//! Stages 2–5 joined: the header decision pipeline. From the parser's result for a frame
//! (and the frame's tick) it computes, one frame per clock, what `core` computes in
//! `pipeline::prepare` (classify → hash) and the flow-table / select half of
//! `pipeline::balance`: the verdict (forward to a VIP's backend, pass, or drop with a
//! reason), what the rewriter needs, and the flow-table outcome for the counters.
//!
//! # Pipeline (a frame presented in cycle `t`)
//!
//! The three hashes are [`SerialToeplitz`] blocks of `INPUT_BITS / CHUNK` slices, with
//! latency `HLAT` = slices + 1: eight 39-bit slices on a 64-bit stream ([`FlowDecide`],
//! `HLAT` 9, the profile that must fit an ECP5), one slice on a 512-bit stream (`HLAT` 2).
//! Stage `h` below is `t + 3 + HLAT`.
//!
//! | Cycle | Work |
//! |---|---|
//! | `t` | VIP compares: every entry in parallel (valid, family, address, protocol; exact port or any-port; fragments on address + protocol), registered with the input (stage M) |
//! | `t+1` | VIP pick, first half (`core::classify`): the lowest-index exact-port match and the lowest-index any-port match, each with its VIP's index, mode and persistence, registered side by side; whether any matched; frame class from protocol and TCP flags; the frame's context (all but its VIP) packed into one vector |
//! | `t+2` | VIP pick, second half: exact port before any-port, a 2:1 choice between the two registered candidates; the ports zeroed for fragments and src-ip persistence |
//! | `t+3` | hash inputs assembled as `core::hash` lays them out (tuple, its ports as `t+2` left them; ‖ protocol ‖ VIP index for the digest); a frame for a VIP starts the three hashes (rss, digest_hi, digest_lo); its context enters a delay line of `HLAT` clocks |
//! | `h` | hash and digest out, with the context; the two 32-bit partial products of (hash × M) >> 32, `lo16 × M` and `hi16 × M`, as shifts, adds and subtracts of the constant M's non-adjacent digits ([`naf`]), registered |
//! | `h+1` | Maglev slot = (`hi16 × M` + (`lo16 × M` >> 16)) >> 16, registered (the product in one clock was decide's critical path: 14.2 ns routed, docs/synth/decide-ecp5-85f-a0147b2-seed1.md) |
//! | `h+2` | Maglev RAM read at `vip << SLOT_BITS | slot` |
//! | `h+3` | the Maglev row in the second read register of its [`RegRam`] (read latency 2): nothing else reads the array, so on ECP5 the synth flow moves this register into the DP16KD's own output register (`OUTREG`, `flowgate_synth::outreg`), and select()'s logic starts from a 0.9 ns clock-to-out instead of the RAM's 5.8 ns |
//! | `h+4` | `select()`: primary if up, else secondary if up (up = up bit set and the backend serves this VIP); flow-table request |
//! | `h+8` | the flow table's backend-up query (`h+4` + [`flow_table::QUERY_LATENCY`]), answered from the same up state `h+4` saw |
//! | `h+10` | `out_*` (combinational from registers): verdict, backend, flow outcome (`h+4` + [`flow_table::LATENCY`]) |
//!
//! [`Decide::LATENCY`] = `13 + HLAT` clocks (22 for [`FlowDecide`], 15 on a 512-bit stream).
//! Frames leave in input order; a pass or drop decided by the parser or the VIP match
//! travels the same pipeline (as a bubble to the flow table), so every frame takes exactly
//! `LATENCY` clocks. Frames may enter every [`Decide::MIN_GAP`] clocks (the slices of one
//! hash: 8 for [`FlowDecide`], whose 64-byte frames take 8 beats anyway; 1 on a 512-bit
//! stream). Nothing here checks the spacing: a frame that comes sooner gets a stale hash,
//! and the top holds a `tlast` that would come sooner (`crate::top`).
//!
//! # Tables
//!
//! All table state is written through simple ports (an AXI4-Lite CSR drives them):
//!
//! * VIP entry `vip_index`: `vip_address` (IPv4 in the low 32 bits, as the register
//!   map's VIP window), `vip_port` (0 = any), `vip_protocol`, `vip_is_v6`, `vip_mode`
//!   (0 DSR, 1 IP-in-IP; passed to `out_mode`), `vip_persistence` (0 five-tuple, else
//!   src-ip), `vip_valid`; all written together on `vip_we`.
//! * Maglev RAM: `maglev_addr` = `vip << SLOT_BITS | slot` (each VIP owns `2^SLOT_BITS`
//!   rows, of which the first M are read), `maglev_data` = primary in bits 15..0,
//!   secondary in 31..16 (0xFFFF = none), on `maglev_we`. The RAM starts zeroed: the driver
//!   writes every slot of every VIP in use (NO_BACKEND for a VIP without backends).
//! * Backend VIP: `bvip_index`, `bvip_vip` on `bvip_we` (the backend's VIP; an
//!   index ≥ `VIPS`, e.g. 0xFFFF, marks an unused entry that is never up).
//! * Up bitmap: `up_word` (backends `32w .. 32w+31`), `up_data`, `up_mask` (bits to
//!   change) on `up_we`; a one-bit mask is `UP_SET` / `UP_CLEAR`, a full mask a word
//!   write of `UP_BITMAP`. `up_state` reads the bitmap back.
//! * Scalars: the three 52-byte keys (byte 0 in the top bits, [`crate::hash::left_aligned`])
//!   and the three timeouts, read every clock.
//!
//! Up changes are exact per frame: a write lands in `up_next` at once, and moves to the
//! copy `select()` reads only in a clock in which no frame is at `h+4` (a frame
//! boundary); the flow table's query reads that copy `QUERY_LATENCY` clocks later, so
//! each frame sees one up state at both places, and a change never falls between two back-to-back
//! flow-table requests (which [`FlowTable`] requires, see its module doc). A frame sees a
//! change if it reaches `h+4` after the first such idle clock following the write.
//!
//! VIP entries, Maglev rows, backend VIPs, keys and timeouts are read at several stages
//! and are meant to change only with no frame in flight (the register map shadows them
//! and commits between frames): `busy` is high while any frame is inside the block.

use crate::constant;
use crate::flow_table::{self, FlowTable};
use crate::hash::{SerialToeplitz, INPUT_BITS, KEY_BITS};
use crate::reg_ram::RegRam;
use flowgate_core::flow_table::FlowClass;
use flowgate_core::DropReason;
use rust_hdl::prelude::*;

/// Clocks from a parser result at the input to its `out_*`, beside the hash's:
/// [`Decide::LATENCY`] = `HASH_LATENCY_OFFSET + HLAT`: three before the hash, four from
/// the hash to the flow-table request (`h+4`), and the flow table's.
pub const HASH_LATENCY_OFFSET: usize = 7 + flow_table::LATENCY;

/// Clocks from the hash (`h`) to the verdict: the length of the delay lines after the hash.
const VERDICT_DELAY: usize = 4 + flow_table::LATENCY;

// The query's copy of the up state is `up_sel` delayed by `up_d1`, `up_d2`, `up_d3`,
// `up_qry`.
const _: () = assert!(flow_table::QUERY_LATENCY == 4);

/// [`Decide::LATENCY`] of a block whose hash takes `hlat` clocks (for a containing block
/// that would otherwise spell out `Decide`'s ten parameters).
pub const fn latency(hlat: usize) -> usize {
    HASH_LATENCY_OFFSET + hlat
}

/// The non-adjacent form of `m`: `(add, sub)` with `m = add - sub`, no two adjacent digits
/// nonzero (`add & sub == 0`, `(add | sub) & (add | sub) >> 1 == 0`), so the fewest
/// shifted terms of any signed-digit form; bits up to 16 for `m < 2^16`. A constant
/// multiply written as shifts and adds becomes a sum of that many terms (yosys does not
/// recode a constant written so; it does not see a multiply).
pub const fn naf(m: u32) -> (u32, u32) {
    let (mut add, mut sub) = (0u32, 0u32);
    let mut n = m as u64;
    let mut k = 0;
    while n != 0 {
        if n & 1 == 1 {
            // The digit ±1 that leaves n divisible by 4: +1 for n ≡ 1, −1 for n ≡ 3 (mod 4).
            if n & 3 == 1 {
                add |= 1 << k;
                n -= 1;
            } else {
                sub |= 1 << k;
                n += 1;
            }
        }
        n >>= 1;
        k += 1;
    }
    (add, sub)
}

/// [`Decide::MIN_GAP`] of a block whose hash works in slices of `chunk` bits.
pub const fn min_gap(chunk: usize) -> usize {
    INPUT_BITS / chunk
}

// The frame's context as it crosses the pipeline, one vector (bit offsets; see
// `Decide::update`, which packs and unpacks it with these literals).
const CTX_BITS: usize = 121;
/// `out_verdict` codes.
pub const VERDICT_FORWARD: u8 = 0;
pub const VERDICT_PASS: u8 = 1;
pub const VERDICT_DROP: u8 = 2;

/// A fixed delay line with every stage visible: `taps[i]` is `data_in` of `i + 1` clocks
/// ago, and `last` is `taps[N - 1]` (for a generic `N`: `#[hdl_gen]` cannot evaluate
/// `N - 1` in an index).
#[derive(LogicBlock)]
pub struct Pipe<D: Synth, const N: usize> {
    pub clock: Signal<In, Clock>,
    pub data_in: Signal<In, D>,
    pub taps: [Signal<Out, D>; N],
    pub last: Signal<Out, D>,
    line: [DFF<D>; N],
}

impl<D: Synth, const N: usize> Default for Pipe<D, N> {
    fn default() -> Self {
        assert!(N >= 1);
        Self {
            clock: Default::default(),
            data_in: Default::default(),
            taps: std::array::from_fn(|_| Default::default()),
            last: Default::default(),
            line: std::array::from_fn(|_| Default::default()),
        }
    }
}

impl<D: Synth, const N: usize> Logic for Pipe<D, N> {
    #[hdl_gen]
    fn update(&mut self) {
        for i in 0..N {
            self.line[i].clock.next = self.clock.val();
            self.taps[i].next = self.line[i].q.val();
            // The last iteration's assignment stands.
            self.last.next = self.line[i].q.val();
        }
        self.line[0].d.next = self.data_in.val();
        for i in 1..N {
            self.line[i].d.next = self.line[i - 1].q.val();
        }
    }
}

/// The decision pipeline; see the module doc. Geometry: `VIPS` entries (`VIP_BITS` =
/// ⌈log₂ VIPS⌉, at least 1), `BACKENDS` (a multiple of 32), Maglev M (prime, given to
/// [`Decide::new`]) in rows of `2^SLOT_BITS` ≥ M, `MAGLEV_BITS = VIP_BITS + SLOT_BITS`,
/// flow table `2^SET_BITS` × `WAYS`.
#[derive(LogicBlock)]
pub struct Decide<
    const VIPS: usize,
    const VIP_BITS: usize,
    const BACKENDS: usize,
    const SLOT_BITS: usize,
    const MAGLEV_BITS: usize,
    const SET_BITS: usize,
    const ROW_BITS: usize,
    const WAYS: usize,
    const PAIR_WAYS: usize,
    const CHUNK: usize,
    const WIN: usize,
    const HLAT: usize,
> {
    pub clock: Signal<In, Clock>,
    // The parser's result (`crate::axis_parse::AxisParser` outputs) and the frame's tick.
    pub in_valid: Signal<In, Bit>,
    pub in_result: Signal<In, Bits<8>>,
    pub in_is_v6: Signal<In, Bit>,
    pub in_src: Signal<In, Bits<128>>,
    pub in_dst: Signal<In, Bits<128>>,
    pub in_protocol: Signal<In, Bits<8>>,
    pub in_fragment: Signal<In, Bit>,
    pub in_src_port: Signal<In, Bits<16>>,
    pub in_dst_port: Signal<In, Bits<16>>,
    pub in_tcp_flags: Signal<In, Bits<8>>,
    pub in_l3_offset: Signal<In, Bits<16>>,
    pub in_ip_len: Signal<In, Bits<16>>,
    pub in_dscp_ecn: Signal<In, Bits<8>>,
    pub in_tick: Signal<In, Bits<32>>,
    /// The frame's length, carried to `out_frame_len` for the top's counters.
    pub in_frame_len: Signal<In, Bits<16>>,
    // Scalars.
    pub key_rss: Signal<In, Bits<KEY_BITS>>,
    pub key_digest_hi: Signal<In, Bits<KEY_BITS>>,
    pub key_digest_lo: Signal<In, Bits<KEY_BITS>>,
    pub timeout_embryonic: Signal<In, Bits<32>>,
    /// Two candidate sets per flow (`flow_table.choices` = 2), else one.
    pub two_choice: Signal<In, Bit>,
    pub timeout_tcp: Signal<In, Bits<32>>,
    pub timeout_udp: Signal<In, Bits<32>>,
    // VIP table write port.
    pub vip_we: Signal<In, Bit>,
    pub vip_index: Signal<In, Bits<16>>,
    pub vip_address: Signal<In, Bits<128>>,
    pub vip_port: Signal<In, Bits<16>>,
    pub vip_protocol: Signal<In, Bits<8>>,
    pub vip_is_v6: Signal<In, Bit>,
    pub vip_mode: Signal<In, Bits<2>>,
    pub vip_persistence: Signal<In, Bits<2>>,
    pub vip_valid: Signal<In, Bit>,
    // Maglev RAM write port.
    pub maglev_we: Signal<In, Bit>,
    pub maglev_addr: Signal<In, Bits<MAGLEV_BITS>>,
    pub maglev_data: Signal<In, Bits<32>>,
    // Backend VIP write port.
    pub bvip_we: Signal<In, Bit>,
    pub bvip_index: Signal<In, Bits<16>>,
    pub bvip_vip: Signal<In, Bits<16>>,
    // Up bitmap write port and read-back.
    pub up_we: Signal<In, Bit>,
    pub up_word: Signal<In, Bits<16>>,
    pub up_data: Signal<In, Bits<32>>,
    pub up_mask: Signal<In, Bits<32>>,
    pub up_state: Signal<Out, Bits<BACKENDS>>,
    /// A frame is inside the block.
    pub busy: Signal<Out, Bit>,
    /// Flow-table read-back: while no frame is at `h+4`, the flow table reads set
    /// `peek_set`, and two clocks later its ways appear on `peek_*` as stored in RAM (with
    /// the block drained — `busy` low for `LATENCY` clocks — that is the set's content).
    pub peek_set: Signal<In, Bits<SET_BITS>>,
    pub peek_class: [Signal<Out, Bits<2>>; WAYS],
    pub peek_digest: [Signal<Out, Bits<64>>; WAYS],
    pub peek_backend: [Signal<Out, Bits<16>>; WAYS],
    pub peek_last_seen: [Signal<Out, Bits<32>>; WAYS],
    // The decision, `LATENCY` clocks after the input.
    pub out_valid: Signal<Out, Bit>,
    /// [`VERDICT_FORWARD`], [`VERDICT_PASS`] or [`VERDICT_DROP`].
    pub out_verdict: Signal<Out, Bits<2>>,
    /// The `DropReason` code of a drop, else 0.
    pub out_reason: Signal<Out, Bits<8>>,
    /// The matched VIP (forward, or a NoHealthyBackend drop), else 0.
    pub out_vip: Signal<Out, Bits<16>>,
    /// The backend of a forward, else 0.
    pub out_backend: Signal<Out, Bits<16>>,
    // What the rewriter needs (meaningful for a forward).
    pub out_mode: Signal<Out, Bits<2>>,
    pub out_hash: Signal<Out, Bits<32>>,
    pub out_l3_offset: Signal<Out, Bits<16>>,
    pub out_ip_len: Signal<Out, Bits<16>>,
    pub out_is_v6: Signal<Out, Bit>,
    pub out_dscp_ecn: Signal<Out, Bits<8>>,
    pub out_frame_len: Signal<Out, Bits<16>>,
    // The flow-table outcome (`crate::flow_table::Outcome`): `out_flow` when the frame
    // went to the flow table (it matched a VIP).
    pub out_flow: Signal<Out, Bit>,
    pub out_hit: Signal<Out, Bit>,
    /// `crate::flow_table::InsertOutcome` code.
    pub out_insert: Signal<Out, Bits<3>>,
    pub out_reselect: Signal<Out, Bit>,

    // ---- Tables.
    t_addr: [DFF<Bits<128>>; VIPS],
    t_port: [DFF<Bits<16>>; VIPS],
    t_proto: [DFF<Bits<8>>; VIPS],
    t_mode: [DFF<Bits<2>>; VIPS],
    t_persist: [DFF<Bits<2>>; VIPS],
    t_valid: DFF<Bits<VIPS>>,
    t_is_v6: DFF<Bits<VIPS>>,
    /// Read latency 2: the address at h+2, the row at h+4 (`RegRam`).
    maglev: RegRam<Bits<32>, MAGLEV_BITS>,
    /// Bit plane `j`: bit `j` of each backend's VIP.
    plane: [DFF<Bits<BACKENDS>>; VIP_BITS],
    /// Each backend's VIP is a VIP index (< VIPS).
    bvip_ok: DFF<Bits<BACKENDS>>,
    up_next: DFF<Bits<BACKENDS>>,
    up_sel: DFF<Bits<BACKENDS>>,
    up_d1: DFF<Bits<BACKENDS>>,
    up_d2: DFF<Bits<BACKENDS>>,
    up_d3: DFF<Bits<BACKENDS>>,
    up_qry: DFF<Bits<BACKENDS>>,

    // ---- Constants.
    zero_v: Constant<Bits<VIPS>>,
    one_v: Constant<Bits<VIPS>>,
    onehot_v: [Constant<Bits<VIPS>>; VIPS],
    vip_id: [Constant<Bits<32>>; VIPS],
    vip_id16: [Constant<Bits<16>>; VIPS],
    onehot_w: [Constant<Bits<PAIR_WAYS>>; PAIR_WAYS],
    zero_w: Constant<Bits<PAIR_WAYS>>,
    one_b: Constant<Bits<BACKENDS>>,
    zero2: Constant<Bits<2>>,
    zero3: Constant<Bits<3>>,
    zero8: Constant<Bits<8>>,
    zero16: Constant<Bits<16>>,
    zero32: Constant<Bits<32>>,
    zero_in: Constant<Bits<INPUT_BITS>>,
    ctx_one: Constant<Bits<CTX_BITS>>,
    not_ip: Constant<Bits<8>>,
    proto_tcp: Constant<Bits<8>>,
    syn_ack: Constant<Bits<8>>,
    syn: Constant<Bits<8>>,
    class_emb: Constant<Bits<2>>,
    class_tcp: Constant<Bits<2>>,
    class_udp: Constant<Bits<2>>,
    kind_forward: Constant<Bits<2>>,
    kind_pass: Constant<Bits<2>>,
    kind_drop: Constant<Bits<2>>,
    no_backend_code: Constant<Bits<8>>,
    n_backends: Constant<Bits<16>>,
    n_vips: Constant<Bits<16>>,
    n_words: Constant<Bits<16>>,
    /// M's digits in non-adjacent form (M = Σ 2^k over `m_add` − Σ 2^k over `m_sub`,
    /// [`naf`]), and k: the constant multiplier as shifts, adds and subtracts.
    m_add: [Constant<Bit>; 17],
    m_sub: [Constant<Bit>; 17],
    shift_k: [Constant<Bits<32>>; 17],
    slot_bits: Constant<Bits<32>>,
    mask16: Constant<Bits<32>>,

    // ---- Stage M (t): the VIP compares, registered with the input (`m_*`): the match's
    // compares (128-bit addresses) and its priority pick do not fit one clock together.
    exact: Signal<Local, Bits<VIPS>>,
    wild: Signal<Local, Bits<VIPS>>,
    m_exact: DFF<Bits<VIPS>>,
    m_wild: DFF<Bits<VIPS>>,
    m_valid: DFF<Bit>,
    m_result: DFF<Bits<8>>,
    m_is_v6: DFF<Bit>,
    m_src: DFF<Bits<128>>,
    m_dst: DFF<Bits<128>>,
    m_protocol: DFF<Bits<8>>,
    m_fragment: DFF<Bit>,
    m_src_port: DFF<Bits<16>>,
    m_dst_port: DFF<Bits<16>>,
    m_tcp_flags: DFF<Bits<8>>,
    m_l3_offset: DFF<Bits<16>>,
    m_ip_len: DFF<Bits<16>>,
    m_dscp_ecn: DFF<Bits<8>>,
    m_tick: DFF<Bits<32>>,
    m_frame_len: DFF<Bits<16>>,
    // ---- Stage V (t+1): the VIP pick's first half. The pick as one clock (compares
    // registered → any exact? → the lowest index of one set → its persistence → the
    // ports zeroed) was decide's critical path (70.7 MHz, 5 levels); here each set's
    // lowest-index entry and its attributes are found side by side and registered
    // (`v_*`), and stage 0 only chooses between the two.
    first_e: Signal<Local, Bits<VIPS>>,
    first_w: Signal<Local, Bits<VIPS>>,
    idx_e: Signal<Local, Bits<32>>,
    idx_w: Signal<Local, Bits<32>>,
    mode_e: Signal<Local, Bits<2>>,
    mode_w: Signal<Local, Bits<2>>,
    srcip_e: Signal<Local, Bit>,
    srcip_w: Signal<Local, Bit>,
    any: Signal<Local, Bit>,
    kind: Signal<Local, Bits<2>>,
    code: Signal<Local, Bits<8>>,
    bal: Signal<Local, Bit>,
    fclass: Signal<Local, Bits<2>>,
    /// The context without the VIP's index and mode (layout in `update`).
    vctx: Signal<Local, Bits<CTX_BITS>>,
    v_any_e: DFF<Bit>,
    v_idx_e: DFF<Bits<32>>,
    v_idx_w: DFF<Bits<32>>,
    v_mode_e: DFF<Bits<2>>,
    v_mode_w: DFF<Bits<2>>,
    v_srcip_e: DFF<Bit>,
    v_srcip_w: DFF<Bit>,
    v_ctx: DFF<Bits<CTX_BITS>>,
    v_src: DFF<Bits<128>>,
    v_dst: DFF<Bits<128>>,
    v_sport: DFF<Bits<16>>,
    v_dport: DFF<Bits<16>>,
    v_proto: DFF<Bits<8>>,
    v_is_v6: DFF<Bit>,
    v_fragment: DFF<Bit>,
    // ---- Stage 0 (t+2): the VIP picked (exact port first), the hash fields.
    vip_idx: Signal<Local, Bits<32>>,
    vip_mode_l: Signal<Local, Bits<2>>,
    src_ip: Signal<Local, Bit>,
    a_src: DFF<Bits<128>>,
    a_dst: DFF<Bits<128>>,
    a_sport: DFF<Bits<16>>,
    a_dport: DFF<Bits<16>>,
    a_proto: DFF<Bits<8>>,
    a_is_v6: DFF<Bit>,
    // The frame's facts that later stages need, packed (`CTX_BITS`; layout in `update`): `a_ctx` at `t+3`,
    // `h_ctx` across the hash (its `last` at `h`, with the hash), `p_ctx` after it
    // (tap i = cycle `h + 1 + i`).
    ctx: Signal<Local, Bits<CTX_BITS>>,
    a_ctx: DFF<Bits<CTX_BITS>>,
    h_ctx: Pipe<Bits<CTX_BITS>, HLAT>,
    p_ctx: Pipe<Bits<CTX_BITS>, VERDICT_DELAY>,
    a_bal: Signal<Local, Bit>,
    a_vip: Signal<Local, Bits<32>>,
    h_valid: Signal<Local, Bit>,

    // ---- Stage 1 (t+3): hash inputs.
    w_src: Signal<Local, Bits<INPUT_BITS>>,
    w_dst: Signal<Local, Bits<INPUT_BITS>>,
    w_sport: Signal<Local, Bits<INPUT_BITS>>,
    w_dport: Signal<Local, Bits<INPUT_BITS>>,
    w_proto: Signal<Local, Bits<INPUT_BITS>>,
    w_vip: Signal<Local, Bits<INPUT_BITS>>,
    tuple: Signal<Local, Bits<INPUT_BITS>>,
    rss_hash: SerialToeplitz<INPUT_BITS, KEY_BITS, CHUNK, WIN>,
    hi_hash: SerialToeplitz<INPUT_BITS, KEY_BITS, CHUNK, WIN>,
    lo_hash: SerialToeplitz<INPUT_BITS, KEY_BITS, CHUNK, WIN>,

    // ---- Stage h (t+3+HLAT): slot.
    lo16: Signal<Local, Bits<32>>,
    hi16: Signal<Local, Bits<32>>,
    lo_m: Signal<Local, Bits<32>>,
    hi_m: Signal<Local, Bits<32>>,
    c_lo_m: DFF<Bits<32>>,
    c_hi_m: DFF<Bits<32>>,
    digest: Signal<Local, Bits<64>>,
    p_hash: Pipe<Bits<32>, VERDICT_DELAY>,
    p_digest: Pipe<Bits<64>, 4>,

    // ---- Stage h+1: the slot from the two partial products.
    slot_sum: Signal<Local, Bits<32>>,
    c_slot: DFF<Bits<32>>,

    // ---- Stage h+2: Maglev read.
    m_vip: Signal<Local, Bits<32>>,
    m_addr: Signal<Local, Bits<32>>,

    // ---- Stage h+4: select and flow-table request.
    s_bal: Signal<Local, Bit>,
    s_vip: Signal<Local, Bits<32>>,
    s_hash: Signal<Local, Bits<32>>,
    s_entry: Signal<Local, Bits<32>>,
    primary: Signal<Local, Bits<16>>,
    secondary: Signal<Local, Bits<16>>,
    elig_sel: Signal<Local, Bits<BACKENDS>>,
    p_up: Signal<Local, Bit>,
    s_up: Signal<Local, Bit>,
    flow: FlowTable<SET_BITS, ROW_BITS, WAYS, PAIR_WAYS>,

    // ---- Stage h+8: the flow table's up query.
    elig_qry: Signal<Local, Bits<BACKENDS>>,
    qb: Signal<Local, Bits<16>>,
    qup: Signal<Local, Bits<PAIR_WAYS>>,

    // ---- Table writes.
    up_shift: Signal<Local, Bits<16>>,
    up_wmask: Signal<Local, Bits<BACKENDS>>,
    up_wdata: Signal<Local, Bits<BACKENDS>>,
    bvip_bit: Signal<Local, Bits<BACKENDS>>,

    // ---- Output (h+10).
    o_ctx: Signal<Local, Bits<CTX_BITS>>,
}

/// The small profile (ECP5): 8 VIPs, 64 backends, Maglev M = 251, 4096 × 4 flows.
pub type FlowDecide = Decide<8, 3, 64, 8, 11, 12, 11, 4, 8, SERIAL_CHUNK, SERIAL_WIN, SERIAL_HLAT>;
/// The serial hash of a narrow stream: 8 slices of 39 bits, a frame every 8 clocks at
/// most (a 64-byte frame is 8 beats of 64 bits).
pub const SERIAL_CHUNK: usize = INPUT_BITS / 8;
pub const SERIAL_WIN: usize = SERIAL_CHUNK + 31;
pub const SERIAL_HLAT: usize = INPUT_BITS / SERIAL_CHUNK + 1;
/// The one-slice hash of a wide stream (a frame every clock).
pub const WIDE_CHUNK: usize = INPUT_BITS;
pub const WIDE_WIN: usize = WIDE_CHUNK + 31;
pub const WIDE_HLAT: usize = 2;
/// Maglev M of [`FlowDecide`].
pub const FLOW_DECIDE_M: u32 = 251;

impl<
        const VIPS: usize,
        const VIP_BITS: usize,
        const BACKENDS: usize,
        const SLOT_BITS: usize,
        const MAGLEV_BITS: usize,
        const SET_BITS: usize,
        const ROW_BITS: usize,
        const WAYS: usize,
        const PAIR_WAYS: usize,
        const CHUNK: usize,
        const WIN: usize,
        const HLAT: usize,
    >
    Decide<
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
    >
{
    /// Clocks from a parser result at the input to its `out_*`.
    pub const LATENCY: usize = latency(HLAT);
    /// The least spacing, in clocks, of two frames at the input: one per hash slice
    /// ([`SerialToeplitz::CHUNKS`]). 1 with a one-slice hash; the top holds a `tlast`
    /// that would come sooner.
    pub const MIN_GAP: usize = min_gap(CHUNK);

    /// The block for Maglev tables of `maglev_m` slots.
    ///
    /// # Panics
    /// On a geometry the block cannot implement (checked here, as rust-hdl widgets do):
    /// `VIPS` not in `1..=2^VIP_BITS` or above 64, `BACKENDS` not a multiple of 32 in
    /// `32..=65504`, `maglev_m` not a prime below `min(2^16, 2^SLOT_BITS + 1)`,
    /// `MAGLEV_BITS != VIP_BITS + SLOT_BITS`.
    pub fn new(maglev_m: u32) -> Self {
        assert!(
            (1..=64).contains(&VIPS) && VIP_BITS >= 1 && VIPS <= 1 << VIP_BITS,
            "VIPS must be in 1..=min(64, 2^VIP_BITS)"
        );
        assert!(
            BACKENDS >= 32 && BACKENDS / 32 * 32 == BACKENDS && BACKENDS < 0xffff,
            "BACKENDS must be a multiple of 32 below 0xFFFF (NO_BACKEND)"
        );
        assert!(
            flowgate_core::maglev::is_prime(maglev_m)
                && maglev_m < 1 << 16
                && maglev_m as u64 <= 1u64 << SLOT_BITS,
            "Maglev M must be a prime below 2^16 that fits 2^SLOT_BITS rows"
        );
        assert_eq!(MAGLEV_BITS, VIP_BITS + SLOT_BITS, "MAGLEV_BITS");
        assert!(
            CHUNK > 0 && INPUT_BITS.is_multiple_of(CHUNK),
            "the hash input must split into whole slices"
        );
        assert_eq!(HLAT, INPUT_BITS / CHUNK + 1, "HLAT is the hash's latency");
        Self {
            clock: Default::default(),
            in_valid: Default::default(),
            in_result: Default::default(),
            in_is_v6: Default::default(),
            in_src: Default::default(),
            in_dst: Default::default(),
            in_protocol: Default::default(),
            in_fragment: Default::default(),
            in_src_port: Default::default(),
            in_dst_port: Default::default(),
            in_tcp_flags: Default::default(),
            in_l3_offset: Default::default(),
            in_ip_len: Default::default(),
            in_dscp_ecn: Default::default(),
            in_tick: Default::default(),
            in_frame_len: Default::default(),
            key_rss: Default::default(),
            key_digest_hi: Default::default(),
            key_digest_lo: Default::default(),
            timeout_embryonic: Default::default(),
            two_choice: Default::default(),
            timeout_tcp: Default::default(),
            timeout_udp: Default::default(),
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
            up_state: Default::default(),
            busy: Default::default(),
            peek_set: Default::default(),
            peek_class: std::array::from_fn(|_| Default::default()),
            peek_digest: std::array::from_fn(|_| Default::default()),
            peek_backend: std::array::from_fn(|_| Default::default()),
            peek_last_seen: std::array::from_fn(|_| Default::default()),
            out_valid: Default::default(),
            out_verdict: Default::default(),
            out_reason: Default::default(),
            out_vip: Default::default(),
            out_backend: Default::default(),
            out_mode: Default::default(),
            out_hash: Default::default(),
            out_l3_offset: Default::default(),
            out_ip_len: Default::default(),
            out_is_v6: Default::default(),
            out_dscp_ecn: Default::default(),
            out_frame_len: Default::default(),
            out_flow: Default::default(),
            out_hit: Default::default(),
            out_insert: Default::default(),
            out_reselect: Default::default(),
            t_addr: std::array::from_fn(|_| Default::default()),
            t_port: std::array::from_fn(|_| Default::default()),
            t_proto: std::array::from_fn(|_| Default::default()),
            t_mode: std::array::from_fn(|_| Default::default()),
            t_persist: std::array::from_fn(|_| Default::default()),
            t_valid: Default::default(),
            t_is_v6: Default::default(),
            maglev: Default::default(),
            plane: std::array::from_fn(|_| Default::default()),
            bvip_ok: Default::default(),
            up_next: Default::default(),
            up_sel: Default::default(),
            up_d1: Default::default(),
            up_d2: Default::default(),
            up_d3: Default::default(),
            up_qry: Default::default(),
            zero_v: constant(0),
            one_v: constant(1),
            onehot_v: std::array::from_fn(|i| constant(1 << i)),
            vip_id: std::array::from_fn(|i| constant(i as u64)),
            vip_id16: std::array::from_fn(|i| constant(i as u64)),
            onehot_w: std::array::from_fn(|w| constant(1 << w)),
            zero_w: constant(0),
            one_b: constant(1),
            zero2: constant(0),
            zero3: constant(0),
            zero8: constant(0),
            zero16: constant(0),
            zero32: constant(0),
            zero_in: constant(0),
            ctx_one: constant(1),
            not_ip: constant(crate::parse::RESULT_NOT_IP as u64),
            proto_tcp: constant(flowgate_core::parse::IPPROTO_TCP as u64),
            syn_ack: constant(
                (flowgate_core::parse::TCP_SYN | flowgate_core::parse::TCP_ACK) as u64,
            ),
            syn: constant(flowgate_core::parse::TCP_SYN as u64),
            class_emb: constant(FlowClass::Embryonic as u64),
            class_tcp: constant(FlowClass::Tcp as u64),
            class_udp: constant(FlowClass::Udp as u64),
            kind_forward: constant(VERDICT_FORWARD as u64),
            kind_pass: constant(VERDICT_PASS as u64),
            kind_drop: constant(VERDICT_DROP as u64),
            no_backend_code: constant(DropReason::NoHealthyBackend.code() as u64),
            n_backends: constant(BACKENDS as u64),
            n_vips: constant(VIPS as u64),
            n_words: constant((BACKENDS / 32) as u64),
            m_add: std::array::from_fn(|k| Constant::new(naf(maglev_m).0 >> k & 1 == 1)),
            m_sub: std::array::from_fn(|k| Constant::new(naf(maglev_m).1 >> k & 1 == 1)),
            shift_k: std::array::from_fn(|k| constant(k as u64)),
            slot_bits: constant(SLOT_BITS as u64),
            mask16: constant(0xffff),
            exact: Default::default(),
            wild: Default::default(),
            m_exact: Default::default(),
            m_wild: Default::default(),
            m_valid: Default::default(),
            m_result: Default::default(),
            m_is_v6: Default::default(),
            m_src: Default::default(),
            m_dst: Default::default(),
            m_protocol: Default::default(),
            m_fragment: Default::default(),
            m_src_port: Default::default(),
            m_dst_port: Default::default(),
            m_tcp_flags: Default::default(),
            m_l3_offset: Default::default(),
            m_ip_len: Default::default(),
            m_dscp_ecn: Default::default(),
            m_tick: Default::default(),
            m_frame_len: Default::default(),
            first_e: Default::default(),
            first_w: Default::default(),
            idx_e: Default::default(),
            idx_w: Default::default(),
            mode_e: Default::default(),
            mode_w: Default::default(),
            srcip_e: Default::default(),
            srcip_w: Default::default(),
            any: Default::default(),
            kind: Default::default(),
            code: Default::default(),
            bal: Default::default(),
            fclass: Default::default(),
            vctx: Default::default(),
            v_any_e: Default::default(),
            v_idx_e: Default::default(),
            v_idx_w: Default::default(),
            v_mode_e: Default::default(),
            v_mode_w: Default::default(),
            v_srcip_e: Default::default(),
            v_srcip_w: Default::default(),
            v_ctx: Default::default(),
            v_src: Default::default(),
            v_dst: Default::default(),
            v_sport: Default::default(),
            v_dport: Default::default(),
            v_proto: Default::default(),
            v_is_v6: Default::default(),
            v_fragment: Default::default(),
            vip_idx: Default::default(),
            vip_mode_l: Default::default(),
            src_ip: Default::default(),
            a_src: Default::default(),
            a_dst: Default::default(),
            a_sport: Default::default(),
            a_dport: Default::default(),
            a_proto: Default::default(),
            a_is_v6: Default::default(),
            ctx: Default::default(),
            a_ctx: Default::default(),
            h_ctx: Default::default(),
            p_ctx: Default::default(),
            a_bal: Default::default(),
            a_vip: Default::default(),
            h_valid: Default::default(),
            w_src: Default::default(),
            w_dst: Default::default(),
            w_sport: Default::default(),
            w_dport: Default::default(),
            w_proto: Default::default(),
            w_vip: Default::default(),
            tuple: Default::default(),
            rss_hash: Default::default(),
            hi_hash: Default::default(),
            lo_hash: Default::default(),
            lo16: Default::default(),
            hi16: Default::default(),
            lo_m: Default::default(),
            hi_m: Default::default(),
            slot_sum: Default::default(),
            digest: Default::default(),
            c_lo_m: Default::default(),
            c_hi_m: Default::default(),
            c_slot: Default::default(),
            p_hash: Default::default(),
            p_digest: Default::default(),
            m_vip: Default::default(),
            m_addr: Default::default(),
            s_bal: Default::default(),
            s_vip: Default::default(),
            s_hash: Default::default(),
            s_entry: Default::default(),
            primary: Default::default(),
            secondary: Default::default(),
            elig_sel: Default::default(),
            p_up: Default::default(),
            s_up: Default::default(),
            flow: Default::default(),
            elig_qry: Default::default(),
            qb: Default::default(),
            qup: Default::default(),
            up_shift: Default::default(),
            up_wmask: Default::default(),
            up_wdata: Default::default(),
            bvip_bit: Default::default(),
            o_ctx: Default::default(),
        }
    }
}

impl<
        const VIPS: usize,
        const VIP_BITS: usize,
        const BACKENDS: usize,
        const SLOT_BITS: usize,
        const MAGLEV_BITS: usize,
        const SET_BITS: usize,
        const ROW_BITS: usize,
        const WAYS: usize,
        const PAIR_WAYS: usize,
        const CHUNK: usize,
        const WIN: usize,
        const HLAT: usize,
    > Logic
    for Decide<
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
    >
{
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            t_valid,
            t_is_v6,
            bvip_ok,
            up_next,
            up_sel,
            up_d1,
            up_d2,
            up_d3,
            up_qry,
            a_src,
            a_dst,
            a_sport,
            a_dport,
            a_proto,
            a_is_v6,
            a_ctx,
            c_lo_m,
            c_hi_m,
            c_slot,
            m_exact,
            m_wild,
            m_valid,
            m_result,
            m_is_v6,
            m_src,
            m_dst,
            m_protocol,
            m_fragment,
            m_src_port,
            m_dst_port,
            m_tcp_flags,
            m_l3_offset,
            m_ip_len,
            m_dscp_ecn,
            m_tick,
            m_frame_len,
            v_any_e,
            v_idx_e,
            v_idx_w,
            v_mode_e,
            v_mode_w,
            v_srcip_e,
            v_srcip_w,
            v_ctx,
            v_src,
            v_dst,
            v_sport,
            v_dport,
            v_proto,
            v_is_v6,
            v_fragment
        );
        clock!(self, clock, h_ctx, p_ctx, rss_hash, hi_hash, lo_hash, p_hash, p_digest, flow);
        self.maglev.clock.next = self.clock.val();
        for i in 0..VIPS {
            self.t_addr[i].clock.next = self.clock.val();
            self.t_port[i].clock.next = self.clock.val();
            self.t_proto[i].clock.next = self.clock.val();
            self.t_mode[i].clock.next = self.clock.val();
            self.t_persist[i].clock.next = self.clock.val();
            self.t_addr[i].d.next = self.t_addr[i].q.val();
            self.t_port[i].d.next = self.t_port[i].q.val();
            self.t_proto[i].d.next = self.t_proto[i].q.val();
            self.t_mode[i].d.next = self.t_mode[i].q.val();
            self.t_persist[i].d.next = self.t_persist[i].q.val();
        }
        for j in 0..VIP_BITS {
            self.plane[j].clock.next = self.clock.val();
            self.plane[j].d.next = self.plane[j].q.val();
        }

        // ---- Table writes.
        for i in 0..VIPS {
            if self.vip_we.val() && self.vip_index.val() == self.vip_id16[i].val() {
                self.t_addr[i].d.next = self.vip_address.val();
                self.t_port[i].d.next = self.vip_port.val();
                self.t_proto[i].d.next = self.vip_protocol.val();
                self.t_mode[i].d.next = self.vip_mode.val();
                self.t_persist[i].d.next = self.vip_persistence.val();
                if self.vip_valid.val() {
                    self.t_valid.d.next = self.t_valid.q.val() | self.onehot_v[i].val();
                } else {
                    self.t_valid.d.next = self.t_valid.q.val() & !self.onehot_v[i].val();
                }
                if self.vip_is_v6.val() {
                    self.t_is_v6.d.next = self.t_is_v6.q.val() | self.onehot_v[i].val();
                } else {
                    self.t_is_v6.d.next = self.t_is_v6.q.val() & !self.onehot_v[i].val();
                }
            }
        }
        self.maglev.write_address.next = self.maglev_addr.val();
        self.maglev.write_data.next = self.maglev_data.val();
        self.maglev.write_enable.next = self.maglev_we.val();
        // One barrel shift places the bit (or word) of a write; writes are rare, the
        // lookups below are per frame.
        self.bvip_bit.next = self.one_b.val() << self.bvip_index.val();
        if self.bvip_we.val() && self.bvip_index.val() < self.n_backends.val() {
            for j in 0..VIP_BITS {
                if self.bvip_vip.val().get_bit(j) {
                    self.plane[j].d.next = self.plane[j].q.val() | self.bvip_bit.val();
                } else {
                    self.plane[j].d.next = self.plane[j].q.val() & !self.bvip_bit.val();
                }
            }
            if self.bvip_vip.val() < self.n_vips.val() {
                self.bvip_ok.d.next = self.bvip_ok.q.val() | self.bvip_bit.val();
            } else {
                self.bvip_ok.d.next = self.bvip_ok.q.val() & !self.bvip_bit.val();
            }
        }
        self.up_shift.next = self.up_word.val() << 5;
        self.up_wmask.next = bit_cast::<BACKENDS, 32>(self.up_mask.val()) << self.up_shift.val();
        self.up_wdata.next = bit_cast::<BACKENDS, 32>(self.up_data.val()) << self.up_shift.val();
        if self.up_we.val() && self.up_word.val() < self.n_words.val() {
            self.up_next.d.next = (self.up_next.q.val() & !self.up_wmask.val())
                | (self.up_wdata.val() & self.up_wmask.val());
        }
        self.up_state.next = self.up_next.q.val();

        // ---- Stage M: the VIP compares (core::classify), registered with the input.
        self.exact.next = self.zero_v.val();
        self.wild.next = self.zero_v.val();
        for i in 0..VIPS {
            if self.t_valid.q.val().get_bit(i)
                && self.t_is_v6.q.val().get_bit(i) == self.in_is_v6.val()
                && self.t_addr[i].q.val() == self.in_dst.val()
                && self.t_proto[i].q.val() == self.in_protocol.val()
            {
                if self.in_fragment.val() || self.t_port[i].q.val() == self.in_dst_port.val() {
                    self.exact.next = self.exact.val() | self.onehot_v[i].val();
                }
                if self.t_port[i].q.val() == self.zero16.val() {
                    self.wild.next = self.wild.val() | self.onehot_v[i].val();
                }
            }
        }
        self.m_valid.d.next = self.in_valid.val();
        self.m_result.d.next = self.in_result.val();
        self.m_is_v6.d.next = self.in_is_v6.val();
        self.m_src.d.next = self.in_src.val();
        self.m_dst.d.next = self.in_dst.val();
        self.m_protocol.d.next = self.in_protocol.val();
        self.m_fragment.d.next = self.in_fragment.val();
        self.m_src_port.d.next = self.in_src_port.val();
        self.m_dst_port.d.next = self.in_dst_port.val();
        self.m_tcp_flags.d.next = self.in_tcp_flags.val();
        self.m_l3_offset.d.next = self.in_l3_offset.val();
        self.m_ip_len.d.next = self.in_ip_len.val();
        self.m_dscp_ecn.d.next = self.in_dscp_ecn.val();
        self.m_tick.d.next = self.in_tick.val();
        self.m_frame_len.d.next = self.in_frame_len.val();
        self.m_exact.d.next = self.exact.val();
        self.m_wild.d.next = self.wild.val();

        // ---- Stage V: each set's lowest-index entry with its attributes, side by side
        // (`core::classify`: exact port before any-port, lowest index first), and the
        // frame's class.
        self.first_e.next = self.m_exact.q.val() & (!self.m_exact.q.val() + self.one_v.val());
        self.first_w.next = self.m_wild.q.val() & (!self.m_wild.q.val() + self.one_v.val());
        self.idx_e.next = self.zero32.val();
        self.idx_w.next = self.zero32.val();
        self.mode_e.next = self.zero2.val();
        self.mode_w.next = self.zero2.val();
        self.srcip_e.next = false;
        self.srcip_w.next = false;
        for i in 0..VIPS {
            if self.first_e.val().get_bit(i) {
                self.idx_e.next = self.vip_id[i].val();
                self.mode_e.next = self.t_mode[i].q.val();
                self.srcip_e.next = self.t_persist[i].q.val() != self.zero2.val();
            }
            if self.first_w.val().get_bit(i) {
                self.idx_w.next = self.vip_id[i].val();
                self.mode_w.next = self.t_mode[i].q.val();
                self.srcip_w.next = self.t_persist[i].q.val() != self.zero2.val();
            }
        }
        self.v_any_e.d.next = self.m_exact.q.val().any();
        self.v_idx_e.d.next = self.idx_e.val();
        self.v_idx_w.d.next = self.idx_w.val();
        self.v_mode_e.d.next = self.mode_e.val();
        self.v_mode_w.d.next = self.mode_w.val();
        self.v_srcip_e.d.next = self.srcip_e.val();
        self.v_srcip_w.d.next = self.srcip_w.val();
        self.any.next = self.m_exact.q.val().any() | self.m_wild.q.val().any();
        self.bal.next = false;
        self.code.next = self.zero8.val();
        if self.m_result.q.val() == self.zero8.val() {
            if self.any.val() {
                self.kind.next = self.kind_forward.val();
                self.bal.next = self.m_valid.q.val();
            } else {
                self.kind.next = self.kind_pass.val();
            }
        } else if self.m_result.q.val() == self.not_ip.val() {
            self.kind.next = self.kind_pass.val();
        } else {
            self.kind.next = self.kind_drop.val();
            self.code.next = self.m_result.q.val();
        }
        if self.m_protocol.q.val() == self.proto_tcp.val() {
            if (self.m_tcp_flags.q.val() & self.syn_ack.val()) == self.syn.val() {
                self.fclass.next = self.class_emb.val();
            } else {
                self.fclass.next = self.class_tcp.val();
            }
        } else {
            self.fclass.next = self.class_udp.val();
        }
        self.v_src.d.next = self.m_src.q.val();
        self.v_dst.d.next = self.m_dst.q.val();
        self.v_sport.d.next = self.m_src_port.q.val();
        self.v_dport.d.next = self.m_dst_port.q.val();
        self.v_proto.d.next = self.m_protocol.q.val();
        self.v_is_v6.d.next = self.m_is_v6.q.val();
        self.v_fragment.d.next = self.m_fragment.q.val();
        // The context: valid 0, bal 1, is_v6 2, kind 3..5, mode 5..7, class 7..9,
        // code 9..17, dscp 17..25, vip 25..41, l3 41..57, ip_len 57..73,
        // frame_len 73..89, tick 89..121 (mode and vip are added in stage 0).
        self.vctx.next = (bit_cast::<CTX_BITS, 2>(self.kind.val()) << 3)
            | (bit_cast::<CTX_BITS, 2>(self.fclass.val()) << 7)
            | (bit_cast::<CTX_BITS, 8>(self.code.val()) << 9)
            | (bit_cast::<CTX_BITS, 8>(self.m_dscp_ecn.q.val()) << 17)
            | (bit_cast::<CTX_BITS, 16>(self.m_l3_offset.q.val()) << 41)
            | (bit_cast::<CTX_BITS, 16>(self.m_ip_len.q.val()) << 57)
            | (bit_cast::<CTX_BITS, 16>(self.m_frame_len.q.val()) << 73)
            | (bit_cast::<CTX_BITS, 32>(self.m_tick.q.val()) << 89);
        if self.m_valid.q.val() {
            self.vctx.next = self.vctx.val() | self.ctx_one.val();
        }
        if self.bal.val() {
            self.vctx.next = self.vctx.val() | (self.ctx_one.val() << 1);
        }
        if self.m_is_v6.q.val() {
            self.vctx.next = self.vctx.val() | (self.ctx_one.val() << 2);
        }
        self.v_ctx.d.next = self.vctx.val();

        // ---- Stage 0: the VIP picked: the exact-port candidate if there is one.
        if self.v_any_e.q.val() {
            self.vip_idx.next = self.v_idx_e.q.val();
            self.vip_mode_l.next = self.v_mode_e.q.val();
            self.src_ip.next = self.v_srcip_e.q.val();
        } else {
            self.vip_idx.next = self.v_idx_w.q.val();
            self.vip_mode_l.next = self.v_mode_w.q.val();
            self.src_ip.next = self.v_srcip_w.q.val();
        }
        self.a_src.d.next = self.v_src.q.val();
        self.a_dst.d.next = self.v_dst.q.val();
        self.a_proto.d.next = self.v_proto.q.val();
        self.a_is_v6.d.next = self.v_is_v6.q.val();
        // Fragments hash on L3 only; src-ip persistence drops the ports.
        if self.v_fragment.q.val() || self.src_ip.val() {
            self.a_sport.d.next = self.zero16.val();
            self.a_dport.d.next = self.zero16.val();
        } else {
            self.a_sport.d.next = self.v_sport.q.val();
            self.a_dport.d.next = self.v_dport.q.val();
        }
        self.ctx.next = self.v_ctx.q.val()
            | (bit_cast::<CTX_BITS, 2>(self.vip_mode_l.val()) << 5)
            | (bit_cast::<CTX_BITS, 32>(self.vip_idx.val() & self.mask16.val()) << 25);
        self.a_ctx.d.next = self.ctx.val();
        self.h_ctx.data_in.next = self.a_ctx.q.val();
        self.a_bal.next = self.a_ctx.q.val().get_bit(1);
        self.a_vip.next = bit_cast::<32, 16>(self.a_ctx.q.val().get_bits::<16>(25));

        // ---- Stage 1: the hash inputs, left-aligned (core::hash::tuple_bytes): src, dst,
        // sport, dport; the digest appends protocol and the VIP index (big-endian u16).
        self.rss_hash.key.next = self.key_rss.val();
        self.hi_hash.key.next = self.key_digest_hi.val();
        self.lo_hash.key.next = self.key_digest_lo.val();
        self.rss_hash.data.next = self.zero_in.val();
        self.hi_hash.data.next = self.zero_in.val();
        self.lo_hash.data.next = self.zero_in.val();
        self.tuple.next = self.zero_in.val();
        self.w_src.next = bit_cast::<INPUT_BITS, 128>(self.a_src.q.val());
        self.w_dst.next = bit_cast::<INPUT_BITS, 128>(self.a_dst.q.val());
        self.w_sport.next = bit_cast::<INPUT_BITS, 16>(self.a_sport.q.val());
        self.w_dport.next = bit_cast::<INPUT_BITS, 16>(self.a_dport.q.val());
        self.w_proto.next = bit_cast::<INPUT_BITS, 8>(self.a_proto.q.val());
        self.w_vip.next = bit_cast::<INPUT_BITS, 32>(self.a_vip.val());
        // Only frames for a VIP are hashed: they start the hash, whose result shows at
        // stage h, `HLAT` clocks later, with the frame's context at `h_ctx.last`.
        self.rss_hash.start.next = self.a_bal.val();
        self.hi_hash.start.next = self.a_bal.val();
        self.lo_hash.start.next = self.a_bal.val();
        if self.a_bal.val() {
            if self.a_is_v6.q.val() {
                // 16 + 16 + 2 + 2 bytes, then 1 + 2: bits 311..0 of a 39-byte field.
                self.tuple.next = (self.w_src.val() << 184)
                    | (self.w_dst.val() << 56)
                    | (self.w_sport.val() << 40)
                    | (self.w_dport.val() << 24);
                self.rss_hash.data.next = self.tuple.val();
                self.tuple.next = self.tuple.val() | (self.w_proto.val() << 16) | self.w_vip.val();
            } else {
                // An IPv4 address sits in the low 32 bits of its 128-bit field.
                self.tuple.next = (self.w_src.val() << 280)
                    | (self.w_dst.val() << 248)
                    | (self.w_sport.val() << 232)
                    | (self.w_dport.val() << 216);
                self.rss_hash.data.next = self.tuple.val();
                self.tuple.next =
                    self.tuple.val() | (self.w_proto.val() << 208) | (self.w_vip.val() << 192);
            }
            self.hi_hash.data.next = self.tuple.val();
            self.lo_hash.data.next = self.tuple.val();
        }

        // ---- Stage h: slot = (hash × M) >> 32 with M < 2^16, in 32-bit pieces:
        // hash × M = (hi16 × M) << 16 + lo16 × M, each product below 2^32, and
        // hi16 × M + (lo16 × M >> 16) < 2^32 as well. Each product is a sum of M's
        // non-adjacent digits (3 terms for M = 251 = 2^8 − 2^2 − 2^0, against 7 of its
        // binary ones), wrapping mod 2^32, which is exact since the product fits; the two
        // are registered, and added in the next clock.
        self.lo16.next = self.rss_hash.hash.val() & self.mask16.val();
        self.hi16.next = self.rss_hash.hash.val() >> 16;
        self.lo_m.next = self.zero32.val();
        self.hi_m.next = self.zero32.val();
        for k in 0..17 {
            if self.m_add[k].val() {
                self.lo_m.next = self.lo_m.val() + (self.lo16.val() << self.shift_k[k].val());
                self.hi_m.next = self.hi_m.val() + (self.hi16.val() << self.shift_k[k].val());
            }
            if self.m_sub[k].val() {
                self.lo_m.next = self.lo_m.val() - (self.lo16.val() << self.shift_k[k].val());
                self.hi_m.next = self.hi_m.val() - (self.hi16.val() << self.shift_k[k].val());
            }
        }
        self.c_lo_m.d.next = self.lo_m.val();
        self.c_hi_m.d.next = self.hi_m.val();
        self.digest.next = (bit_cast::<64, 32>(self.hi_hash.hash.val()) << 32)
            | bit_cast::<64, 32>(self.lo_hash.hash.val());
        self.p_hash.data_in.next = self.rss_hash.hash.val();
        self.p_digest.data_in.next = self.digest.val();
        self.p_ctx.data_in.next = self.h_ctx.last.val();

        // ---- Stage h+1: the slot.
        self.slot_sum.next = self.c_hi_m.q.val() + (self.c_lo_m.q.val() >> 16);
        self.c_slot.d.next = self.slot_sum.val() >> 16;

        // ---- Stage h+2: read the VIP's Maglev row.
        self.m_vip.next = bit_cast::<32, 16>(self.p_ctx.taps[1].val().get_bits::<16>(25));
        self.m_addr.next = (self.m_vip.val() << self.slot_bits.val()) | self.c_slot.q.val();
        self.maglev.read_address.next = self.m_addr.val().get_bits::<MAGLEV_BITS>(0);

        // ---- Stage h+3: the Maglev row in the RAM's second read register.

        // ---- Stage h+4: select() and the flow-table request.
        self.s_bal.next = self.p_ctx.taps[3].val().get_bit(1);
        self.s_vip.next = bit_cast::<32, 16>(self.p_ctx.taps[3].val().get_bits::<16>(25));
        self.s_hash.next = self.p_hash.taps[3].val();
        self.s_entry.next = self.maglev.read_data.val();
        self.primary.next = self.s_entry.val().get_bits::<16>(0);
        self.secondary.next = self.s_entry.val().get_bits::<16>(16);
        // backend_is_up(vip, b): up, and a backend of this VIP.
        self.elig_sel.next = self.up_sel.q.val() & self.bvip_ok.q.val();
        for j in 0..VIP_BITS {
            if self.s_vip.val().get_bit(j) {
                self.elig_sel.next = self.elig_sel.val() & self.plane[j].q.val();
            } else {
                self.elig_sel.next = self.elig_sel.val() & !self.plane[j].q.val();
            }
        }
        self.p_up.next = false;
        self.s_up.next = false;
        if self.primary.val() < self.n_backends.val() {
            self.p_up.next = self.elig_sel.val().get_bit(self.primary.val().index());
        }
        if self.secondary.val() < self.n_backends.val() {
            self.s_up.next = self.elig_sel.val().get_bit(self.secondary.val().index());
        }
        self.flow.req_valid.next = self.s_bal.val();
        self.flow.req_set.next = self.s_hash.val().get_bits::<SET_BITS>(0);
        if !self.s_bal.val() {
            self.flow.req_set.next = self.peek_set.val();
        }
        for w in 0..WAYS {
            self.peek_class[w].next = self.flow.peek_class[w].val();
            self.peek_digest[w].next = self.flow.peek_digest[w].val();
            self.peek_backend[w].next = self.flow.peek_backend[w].val();
            self.peek_last_seen[w].next = self.flow.peek_last_seen[w].val();
        }
        self.flow.req_digest.next = self.p_digest.taps[3].val();
        self.flow.req_now.next = self.p_ctx.taps[3].val().get_bits::<32>(89);
        self.flow.req_class.next = self.p_ctx.taps[3].val().get_bits::<2>(7);
        self.flow.req_vip.next = self.s_vip.val().get_bits::<16>(0);
        self.flow.req_select_ok.next = self.p_up.val() || self.s_up.val();
        if self.p_up.val() {
            self.flow.req_select.next = self.primary.val();
        } else {
            self.flow.req_select.next = self.secondary.val();
        }
        self.flow.timeout_embryonic.next = self.timeout_embryonic.val();
        self.flow.two_choice.next = self.two_choice.val();
        self.flow.timeout_tcp.next = self.timeout_tcp.val();
        self.flow.timeout_udp.next = self.timeout_udp.val();
        // The up state moves to select()'s copy only between flow-table requests, and
        // reaches the query's copy `QUERY_LATENCY` clocks later, with the frames that saw it.
        if !self.s_bal.val() {
            self.up_sel.d.next = self.up_next.q.val();
        }
        self.up_d1.d.next = self.up_sel.q.val();
        self.up_d2.d.next = self.up_d1.q.val();
        self.up_d3.d.next = self.up_d2.q.val();
        self.up_qry.d.next = self.up_d3.q.val();

        // ---- Stage h+8: the flow table asks whether its stored backends are up.
        self.elig_qry.next = self.up_qry.q.val() & self.bvip_ok.q.val();
        for j in 0..VIP_BITS {
            if self.flow.query_vip.val().get_bit(j) {
                self.elig_qry.next = self.elig_qry.val() & self.plane[j].q.val();
            } else {
                self.elig_qry.next = self.elig_qry.val() & !self.plane[j].q.val();
            }
        }
        self.qup.next = self.zero_w.val();
        for w in 0..PAIR_WAYS {
            self.qb.next = self.flow.query_backend[w].val();
            // `&&` keeps the simulator's bit read inside the vector.
            if self.qb.val() < self.n_backends.val()
                && self.elig_qry.val().get_bit(self.qb.val().index())
            {
                self.qup.next = self.qup.val() | self.onehot_w[w].val();
            }
        }
        self.flow.query_up.next = self.qup.val();

        // ---- Stage h+10: the verdict.
        self.h_valid.next = self.a_ctx.q.val().get_bit(0);
        for i in 0..HLAT {
            if self.h_ctx.taps[i].val().get_bit(0) {
                self.h_valid.next = true;
            }
        }
        self.busy.next = self.h_valid.val() | self.m_valid.q.val() | self.v_ctx.q.val().get_bit(0);
        for i in 0..VERDICT_DELAY {
            if self.p_ctx.taps[i].val().get_bit(0) {
                self.busy.next = true;
            }
        }
        self.o_ctx.next = self.p_ctx.last.val();
        self.out_valid.next = self.o_ctx.val().get_bit(0);
        self.out_mode.next = self.o_ctx.val().get_bits::<2>(5);
        self.out_hash.next = self.p_hash.last.val();
        self.out_l3_offset.next = self.o_ctx.val().get_bits::<16>(41);
        self.out_ip_len.next = self.o_ctx.val().get_bits::<16>(57);
        self.out_is_v6.next = self.o_ctx.val().get_bit(2);
        self.out_dscp_ecn.next = self.o_ctx.val().get_bits::<8>(17);
        self.out_frame_len.next = self.o_ctx.val().get_bits::<16>(73);
        self.out_vip.next = self.zero16.val();
        self.out_backend.next = self.zero16.val();
        self.out_flow.next = false;
        self.out_hit.next = false;
        self.out_insert.next = self.zero3.val();
        self.out_reselect.next = false;
        if self.o_ctx.val().get_bit(1) {
            self.out_flow.next = true;
            self.out_hit.next = self.flow.res_hit.val();
            self.out_insert.next = self.flow.res_insert.val();
            self.out_reselect.next = self.flow.res_reselect.val();
            self.out_vip.next = self.o_ctx.val().get_bits::<16>(25);
            if self.flow.res_forward.val() {
                self.out_verdict.next = self.kind_forward.val();
                self.out_reason.next = self.zero8.val();
                self.out_backend.next = self.flow.res_backend.val();
            } else {
                self.out_verdict.next = self.kind_drop.val();
                self.out_reason.next = self.no_backend_code.val();
            }
        } else {
            self.out_verdict.next = self.o_ctx.val().get_bits::<2>(3);
            self.out_reason.next = self.o_ctx.val().get_bits::<8>(9);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::naf;

    /// Every M the block accepts recodes to its value with no two adjacent digits, within
    /// the 17 digit positions the block has constants for.
    #[test]
    fn naf_recodes_every_16_bit_multiplier() {
        for m in 1..1u32 << 16 {
            let (add, sub) = naf(m);
            assert_eq!(add.wrapping_sub(sub), m, "m = {m}");
            assert_eq!(add & sub, 0, "m = {m}");
            let digits = add | sub;
            assert_eq!(digits & digits >> 1, 0, "m = {m}: adjacent digits");
            assert!(digits < 1 << 17, "m = {m}: a digit above 2^16");
        }
        assert_eq!(naf(251), (256, 5));
    }

    /// The slot as the hardware computes it (two 32-bit partial products as wrapping sums
    /// of signed digits, then their sum) is `core`'s (hash × M) >> 32.
    #[test]
    fn the_split_product_is_the_slot() {
        let terms = |x: u32, m: u32| {
            let (add, sub) = naf(m);
            (0..17).fold(0u32, |acc, k| {
                let acc = if add >> k & 1 == 1 {
                    acc.wrapping_add(x << k)
                } else {
                    acc
                };
                if sub >> k & 1 == 1 {
                    acc.wrapping_sub(x << k)
                } else {
                    acc
                }
            })
        };
        let mut hash = 0x9e37_79b9u32;
        for m in [2, 3, 251, 257, 4093, 65521] {
            for _ in 0..2000 {
                hash = hash.rotate_left(5) ^ hash.wrapping_mul(0x85eb_ca6b);
                let slot = terms(hash >> 16, m).wrapping_add(terms(hash & 0xffff, m) >> 16) >> 16;
                assert_eq!(
                    u64::from(slot),
                    (u64::from(hash) * u64::from(m)) >> 32,
                    "{hash} × {m}"
                );
            }
            for hash in [0, u32::MAX] {
                let slot = terms(hash >> 16, m).wrapping_add(terms(hash & 0xffff, m) >> 16) >> 16;
                assert_eq!(u64::from(slot), (u64::from(hash) * u64::from(m)) >> 32);
            }
        }
    }
}
