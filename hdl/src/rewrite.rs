//! Stage 6 — the rewriter: `flowgate_core::rewrite::rewrite` on an AXI4-Stream, one beat
//! per clock.
//!
//! A frame arrives on `s_axis_*` (from the frame FIFO, [`crate::frame_fifo`]) and its
//! action on `act_*` (from the decision pipeline), the action before or with the frame's
//! first beat. What leaves on `m_axis_*`:
//!
//! * **forward, L2 DSR** — the frame with bytes 0..12 replaced by the backend MAC and our
//!   MAC; `m_axis_tuser` = [`TUSER_FORWARDED`].
//! * **forward, IP-in-IP** — the L2 header (VLAN tags kept, MACs replaced, the last
//!   ethertype set to the outer family), the outer IPv4 (20 bytes, RFC 1071 checksum) or
//!   IPv6 (40 bytes, flow label = low 20 bits of the hash) header, then the inner datagram
//!   only (`act_ip_len` bytes from `act_l3_offset`: Ethernet padding trimmed). An outer
//!   frame longer than [`MAX_FRAME_LEN`] is consumed and dropped (`EncapTooLarge`).
//! * **forward, GUE** — as IP-in-IP with protocol / next header 17 and the 8-byte UDP
//!   header after the outer header (28 bytes in all under IPv4, 48 under IPv6): source
//!   port `0xC000 | hash >> 18`, destination port `act_gue_port`, length `8 +
//!   act_ip_len`. The checksum is 0 under IPv4; under IPv6 (RFC 8200 §8.1) it covers the
//!   pseudo-header, the UDP header and the whole inner datagram, and the header leaves
//!   before the datagram does: the datagram's sum comes with the action
//!   (`act_inner_sum`, summed by [`crate::inner_sum`] as the frame entered the frame
//!   FIFO, which holds the whole frame before its action exists), and preparing the
//!   action folds it with the rest (0 is sent as 0xFFFF).
//! * **pass** — the frame untouched, `m_axis_tuser` = [`TUSER_PASSED`].
//! * **drop** — the frame consumed, nothing out.
//!
//! Every frame gives one event on `ev_valid` / `ev_verdict` (the `decide::VERDICT_*` codes) for
//! the counters, the clock after the frame's action is taken.
//!
//! # Datapath
//! When an action is taken it is *prepared* (two register stages: the lengths, verdict,
//! outer addresses and most of the checksum, then the template): the bytes the rewrite
//! writes — MACs, ethertype, outer header with its checksums — are laid out as a 72-byte
//! *template* in stream lane order, with three byte masks over the first 64 output bytes:
//! template byte, input byte at the same position (the L2 header between the MACs and the
//! ethertype; the whole frame for DSR and pass), input byte shifted by the outer header's
//! length (the first 72 output bytes: the masks past the template say "input"). The
//! masks depend only on (mode, outer family, VLAN count), so they are constants picked by
//! a mux. While the frame streams, template and masks shift down one
//! beat per output beat and each output byte is a 3-way choice.
//!
//! The insertion shifts the rest of the frame by `D` = 20, 28, 40 or 48 bytes, not a
//! multiple of the beat: input beat `n` is consumed with output beat `n`, the last
//! [`HISTORY`] input beats are kept, and output beat `n` takes input beats `n - a` and
//! `n - a - 1` (`D = a·K + s`, `K` bytes a beat) shifted by `s` bytes. `a` and `s` are
//! constants per outer header, so the realigner is two fixed shifts and a 4-way mux, no
//! barrel shifter. After the input's last beat the history keeps shifting (zeros in) until the output's last
//! beat; input beats left after it (padding longer than `D`) are consumed without output.
//!
//! # Throughput
//! DSR, pass and drop: one input beat per clock, no bubble between frames (the action of
//! the next frame is prepared while the current one streams). IP-in-IP: one output beat
//! per clock; a frame takes `max(output beats, input beats)` clocks, so the stream grows by
//! `ceil((l3 + D + ip_len) / K) - ceil(frame_len / K)` beats per frame (0 to 6 at 64 bits,
//! 0 or 1 at 512 bits). Drop consumes a beat per clock with no output.
//!
//! # Preconditions (what the parser guarantees)
//! `act_l3_offset` is 14, 18 or 22 (0 to 2 VLAN tags: any other value is taken as 14),
//! `act_l3_offset + act_ip_len` ≤ the frame's length. A frame shorter than that still
//! gives a well-framed output of the promised length (zeros where the input had no bytes).
//! `tkeep` is contiguous from lane 0 and all ones but on the last beat (the frame FIFO
//! stores what the MAC delivered; AXI4-Stream shells deliver this form).

use crate::hash::left_aligned;
use flowgate_core::rewrite::Mode;
use rust_hdl::prelude::*;

/// The bytes of the template: the L2 header with 2 VLAN tags (22) + GUE's outer IPv6 and
/// UDP headers (48), rounded up to whole 8-byte beats (72). Wider than a 512-bit beat:
/// the masks' `fill_top` marks the top beat's bytes, so the template's last 8 bytes come
/// out in a 512-bit stream's second beat.
pub const TEMPLATE_BYTES: usize = 72;
/// Bits of the template.
pub const TEMPLATE_BITS: usize = TEMPLATE_BYTES * 8;
/// Input beats remembered for the realigner: `ceil(48 / K)` for the narrowest stream (8
/// bytes a beat). Wider streams use fewer; synthesis removes the rest.
pub const HISTORY: usize = 6;
/// Largest frame an engine emits (`flowgate_core::rewrite::MAX_FRAME_LEN`).
pub const MAX_FRAME_LEN: usize = flowgate_core::rewrite::MAX_FRAME_LEN;

/// `act_mode` of each mode: the VIP entry's mode code (`flowgate_core::rewrite::MODES`).
const MODE_IPIP: u8 = 1;
const MODE_GUE: u8 = 2;
const _: () = assert!(MODE_IPIP == flowgate_core::rewrite::MODES[1].code);
const _: () = assert!(MODE_GUE == flowgate_core::rewrite::MODES[2].code);

/// `act_kind`: rewrite and send to the backend.
pub const KIND_FORWARD: u64 = 0;
/// `act_kind`: send to the host untouched.
pub const KIND_PASS: u64 = 1;
/// `act_kind`: consume, nothing out (3 is a drop too).
pub const KIND_DROP: u64 = 2;

/// `ev_verdict`: the frame left rewritten.
pub const VERDICT_FORWARDED: u8 = 0;
/// `ev_verdict`: the frame left untouched.
pub const VERDICT_PASSED: u8 = 1;
/// `ev_verdict`: the action said drop (the reason is the decision pipeline's).
pub const VERDICT_DROPPED: u8 = 2;
/// `ev_verdict`: IP-in-IP would exceed [`MAX_FRAME_LEN`]: `DropReason::EncapTooLarge`.
pub const VERDICT_ENCAP_TOO_LARGE: u8 = 3;

/// `m_axis_tuser` of a forwarded frame.
pub const TUSER_FORWARDED: u8 = 0;
/// `m_axis_tuser` of a passed frame.
pub const TUSER_PASSED: u8 = 1;

const ETHERTYPE_IPV4: u16 = flowgate_core::parse::ETHERTYPE_IPV4;
const ETHERTYPE_IPV6: u16 = flowgate_core::parse::ETHERTYPE_IPV6;

/// The rewriter on a `DATA_BITS`-wide AXI4-Stream (`KEEP_BITS = DATA_BITS / 8`;
/// `DATA_BITS` one of 64, 128, 256, 512).
///
/// Addresses and MACs are integers, byte 0 of the wire form most significant (as in the
/// register map): a MAC's byte 0 is bits 47..40, an IPv4 address `a.b.c.d` is
/// `a << 24 | b << 16 | c << 8 | d` in the low 32 bits of `act_backend_addr`.
#[derive(LogicBlock)]
pub struct Rewriter<const DATA_BITS: usize, const KEEP_BITS: usize> {
    pub clock: Signal<In, Clock>,
    // The frame.
    pub s_axis_tdata: Signal<In, Bits<DATA_BITS>>,
    pub s_axis_tkeep: Signal<In, Bits<KEEP_BITS>>,
    pub s_axis_tlast: Signal<In, Bit>,
    pub s_axis_tvalid: Signal<In, Bit>,
    pub s_axis_tready: Signal<Out, Bit>,
    // Its action (valid/ready handshake; taken when both are high).
    pub act_valid: Signal<In, Bit>,
    pub act_ready: Signal<Out, Bit>,
    /// [`KIND_FORWARD`], [`KIND_PASS`] or [`KIND_DROP`].
    pub act_kind: Signal<In, Bits<2>>,
    /// The VIP's mode code (`flowgate_core::rewrite::MODES`: 0 DSR, 1 IP-in-IP, 2 GUE).
    pub act_mode: Signal<In, Bits<2>>,
    /// GUE's UDP destination port (the VIP's `gue_port`).
    pub act_gue_port: Signal<In, Bits<16>>,
    pub act_own_mac: Signal<In, Bits<48>>,
    pub act_backend_mac: Signal<In, Bits<48>>,
    pub act_backend_addr: Signal<In, Bits<128>>,
    /// The backend address (and so the outer header) is IPv6.
    pub act_backend_v6: Signal<In, Bit>,
    pub act_encap_v4_prefix: Signal<In, Bits<32>>,
    pub act_encap_v4_len: Signal<In, Bits<8>>,
    pub act_encap_v6_prefix: Signal<In, Bits<128>>,
    pub act_encap_v6_len: Signal<In, Bits<8>>,
    /// The flow hash (RSS Toeplitz).
    pub act_hash: Signal<In, Bits<32>>,
    // The parser's fields of the frame.
    pub act_l3_offset: Signal<In, Bits<16>>,
    pub act_ip_len: Signal<In, Bits<16>>,
    pub act_inner_v6: Signal<In, Bit>,
    pub act_dscp_ecn: Signal<In, Bits<8>>,
    /// The frame's inner datagram (`act_ip_len` bytes from `act_l3_offset`) as big-endian
    /// 16-bit words added up, unfolded ([`crate::inner_sum`]; an odd last byte is a high
    /// byte): read only for GUE to an IPv6 backend, whose UDP checksum covers it.
    pub act_inner_sum: Signal<In, Bits<32>>,
    // The rewritten frame.
    pub m_axis_tdata: Signal<Out, Bits<DATA_BITS>>,
    pub m_axis_tkeep: Signal<Out, Bits<KEEP_BITS>>,
    pub m_axis_tlast: Signal<Out, Bit>,
    pub m_axis_tvalid: Signal<Out, Bit>,
    /// [`TUSER_FORWARDED`] or [`TUSER_PASSED`], on every beat.
    pub m_axis_tuser: Signal<Out, Bits<8>>,
    pub m_axis_tready: Signal<In, Bit>,
    /// One clock per frame, the clock after its action is taken.
    pub ev_valid: Signal<Out, Bit>,
    /// A `VERDICT_*` code.
    pub ev_verdict: Signal<Out, Bits<2>>,

    // ---- Constants (hdl_gen emits const-generic names verbatim; these are localparams).
    zero32: Constant<Bits<32>>,
    all32: Constant<Bits<32>>,
    max_len: Constant<Bits<32>>,
    outer20: Constant<Bits<32>>,
    outer28: Constant<Bits<32>>,
    outer40: Constant<Bits<32>>,
    outer48: Constant<Bits<32>>,
    /// What a computed UDP checksum of 0 is sent as (RFC 768, RFC 8200 §8.1).
    udp_zero: Constant<Bits<32>>,
    mode_ipip: Constant<Bits<2>>,
    mode_gue: Constant<Bits<2>>,
    proto_udp: Constant<Bits<32>>,
    /// The dynamic port range's top bits of GUE's source port, in the port word.
    sport_range: Constant<Bits<32>>,
    l3_18: Constant<Bits<16>>,
    /// The UDP header's length, as a 16-bit operand.
    udp_header16: Constant<Bits<16>>,
    l3_22: Constant<Bits<16>>,
    proto_ipip: Constant<Bits<32>>,
    proto_ipv6: Constant<Bits<32>>,
    kind_forward: Constant<Bits<2>>,
    kind_pass: Constant<Bits<2>>,
    verdict_forwarded: Constant<Bits<2>>,
    verdict_passed: Constant<Bits<2>>,
    verdict_dropped: Constant<Bits<2>>,
    verdict_too_large: Constant<Bits<2>>,
    tuser_forwarded: Constant<Bits<8>>,
    tuser_passed: Constant<Bits<8>>,
    len_32: Constant<Bits<8>>,
    len_96: Constant<Bits<8>>,
    len_128: Constant<Bits<8>>,
    keep_bytes: Constant<Bits<32>>,
    beat_bits: Constant<Bits<32>>,
    keep_low: Constant<Bits<32>>,
    keep_shift: Constant<Bits<32>>,
    all_keep: Constant<Bits<KEEP_BITS>>,
    zero_data: Constant<Bits<DATA_BITS>>,
    zero_tmpl: Constant<Bits<TEMPLATE_BITS>>,
    all_tmpl: Constant<Bits<TEMPLATE_BITS>>,
    byte_tmpl: Constant<Bits<TEMPLATE_BITS>>,
    /// Ones in the top beat of the template (what shifts in as the template moves down).
    fill_top: Constant<Bits<TEMPLATE_BITS>>,
    /// Constant bytes of ethertype + outer IPv4 / IPv6 header, byte 0 on top.
    fixed_v4: Constant<Bits<TEMPLATE_BITS>>,
    fixed_v6: Constant<Bits<TEMPLATE_BITS>>,
    /// Lane-order masks: bytes 0..12 (the MACs) and the rest (DSR).
    tm_dsr: Constant<Bits<TEMPLATE_BITS>>,
    sm_dsr: Constant<Bits<TEMPLATE_BITS>>,
    /// Lane-order encapsulation masks, index `2 · vlans + (outer is IPv6)` for IP-in-IP,
    /// `6 + vlans` for GUE over IPv4 (IPv4 + UDP), `9 + vlans` for GUE over IPv6.
    tm_ipip: [Constant<Bits<TEMPLATE_BITS>>; CASES],
    sm_ipip: [Constant<Bits<TEMPLATE_BITS>>; CASES],
    sh_ipip: [Constant<Bits<TEMPLATE_BITS>>; CASES],
    idx: [Constant<Bits<32>>; CASES],
    /// Realigner: output beat `n` takes input beats `n - a` (`hi`) and `n - a - 1` (`lo`),
    /// shifted up by `s` bytes; `a - 1` and `a` index the history (6 = none).
    hi20: Constant<Bits<32>>,
    lo20: Constant<Bits<32>>,
    up20: Constant<Bits<32>>,
    down20: Constant<Bits<32>>,
    hi40: Constant<Bits<32>>,
    lo40: Constant<Bits<32>>,
    up40: Constant<Bits<32>>,
    down40: Constant<Bits<32>>,
    hi28: Constant<Bits<32>>,
    lo28: Constant<Bits<32>>,
    up28: Constant<Bits<32>>,
    down28: Constant<Bits<32>>,
    hi48: Constant<Bits<32>>,
    lo48: Constant<Bits<32>>,
    up48: Constant<Bits<32>>,
    down48: Constant<Bits<32>>,

    // ---- Prepare (combinational from act_*, used when an action is taken).
    act_take: Signal<Local, Bit>,
    p_l3: Signal<Local, Bits<32>>,
    p_ip_len: Signal<Local, Bits<32>>,
    p_total: Signal<Local, Bits<32>>,
    p_too_large: Signal<Local, Bit>,
    p_verdict: Signal<Local, Bits<2>>,
    p_ipip: Signal<Local, Bit>,
    p_gue: Signal<Local, Bit>,
    p_encap: Signal<Local, Bit>,
    p_udp_word: Signal<Local, Bits<32>>,
    p_mask4: Signal<Local, Bits<32>>,
    p_src4: Signal<Local, Bits<32>>,
    p_dst4: Signal<Local, Bits<32>>,
    p_mask6: Signal<Local, Bits<32>>,
    p_src6_low: Signal<Local, Bits<32>>,
    p_src6: Signal<Local, Bits<128>>,
    p_tos: Signal<Local, Bits<32>>,
    p_proto: Signal<Local, Bits<32>>,
    p_len4: Signal<Local, Bits<32>>,
    p_sum0: Signal<Local, Bits<32>>,
    p_sum: Signal<Local, Bits<32>>,
    p_sum1: Signal<Local, Bits<32>>,
    p_checksum: Signal<Local, Bits<32>>,
    p_usum0: Signal<Local, Bits<32>>,
    p_len6: Signal<Local, Bits<16>>,
    p_usum: Signal<Local, Bits<32>>,
    p_usum1: Signal<Local, Bits<32>>,
    p_ucheck: Signal<Local, Bits<32>>,
    p_flow_word: Signal<Local, Bits<32>>,
    p_outer: Signal<Local, Bits<TEMPLATE_BITS>>,
    p_be: Signal<Local, Bits<TEMPLATE_BITS>>,
    p_le: Signal<Local, Bits<TEMPLATE_BITS>>,
    p_case: Signal<Local, Bits<32>>,
    p_tm: Signal<Local, Bits<TEMPLATE_BITS>>,
    p_sm: Signal<Local, Bits<TEMPLATE_BITS>>,
    p_sh: Signal<Local, Bits<TEMPLATE_BITS>>,
    p_rem: Signal<Local, Bits<32>>,
    p_last_keep: Signal<Local, Bits<KEEP_BITS>>,

    // ---- Stream.
    out_free: Signal<Local, Bit>,
    produces: Signal<Local, Bit>,
    need_in: Signal<Local, Bit>,
    step: Signal<Local, Bit>,
    fin: Signal<Local, Bit>,
    load: Signal<Local, Bit>,
    a_move: Signal<Local, Bit>,
    in_done_after: Signal<Local, Bit>,
    out_done_after: Signal<Local, Bit>,
    beat_is_last: Signal<Local, Bit>,
    cur: Signal<Local, Bits<DATA_BITS>>,
    hi_a: Signal<Local, Bits<DATA_BITS>>,
    lo_a: Signal<Local, Bits<DATA_BITS>>,
    hi_b: Signal<Local, Bits<DATA_BITS>>,
    lo_b: Signal<Local, Bits<DATA_BITS>>,
    hi_c: Signal<Local, Bits<DATA_BITS>>,
    lo_c: Signal<Local, Bits<DATA_BITS>>,
    hi_d: Signal<Local, Bits<DATA_BITS>>,
    lo_d: Signal<Local, Bits<DATA_BITS>>,
    shifted: Signal<Local, Bits<DATA_BITS>>,
    o_data: Signal<Local, Bits<DATA_BITS>>,

    // ---- Registers: the taken action (a_), the prepared action (b_) and the frame
    // streaming (c_).
    a_valid: DFF<Bit>,
    a_verdict: DFF<Bits<2>>,
    a_ipip: DFF<Bit>,
    a_gue: DFF<Bit>,
    a_udp_word: DFF<Bits<32>>,
    a_v6: DFF<Bit>,
    a_l3: DFF<Bits<16>>,
    a_ip_len: DFF<Bits<16>>,
    a_tos: DFF<Bits<8>>,
    a_proto: DFF<Bits<8>>,
    a_len4: DFF<Bits<16>>,
    a_sum0: DFF<Bits<32>>,
    /// GUE under IPv6: the UDP checksum's sum of every word but the outer source.
    a_usum0: DFF<Bits<32>>,
    a_src4: DFF<Bits<32>>,
    a_dst4: DFF<Bits<32>>,
    a_src6: DFF<Bits<128>>,
    a_addr: DFF<Bits<128>>,
    a_flow_word: DFF<Bits<32>>,
    a_backend_mac: DFF<Bits<48>>,
    a_own_mac: DFF<Bits<48>>,
    a_last_beat: DFF<Bits<32>>,
    a_last_keep: DFF<Bits<KEEP_BITS>>,
    b_valid: DFF<Bit>,
    b_verdict: DFF<Bits<2>>,
    b_ipip: DFF<Bit>,
    b_gue: DFF<Bit>,
    b_v6: DFF<Bit>,
    b_tmpl: DFF<Bits<TEMPLATE_BITS>>,
    b_tm: DFF<Bits<TEMPLATE_BITS>>,
    b_sm: DFF<Bits<TEMPLATE_BITS>>,
    b_sh: DFF<Bits<TEMPLATE_BITS>>,
    b_last_beat: DFF<Bits<32>>,
    b_last_keep: DFF<Bits<KEEP_BITS>>,
    c_active: DFF<Bit>,
    c_verdict: DFF<Bits<2>>,
    c_ipip: DFF<Bit>,
    c_gue: DFF<Bit>,
    c_v6: DFF<Bit>,
    c_tmpl: DFF<Bits<TEMPLATE_BITS>>,
    c_tm: DFF<Bits<TEMPLATE_BITS>>,
    c_sm: DFF<Bits<TEMPLATE_BITS>>,
    c_sh: DFF<Bits<TEMPLATE_BITS>>,
    c_last_beat: DFF<Bits<32>>,
    c_last_keep: DFF<Bits<KEEP_BITS>>,
    c_beat: DFF<Bits<32>>,
    c_in_done: DFF<Bit>,
    c_out_done: DFF<Bit>,
    /// `hist[k]` = input beat `n - 1 - k` while output beat `n` is made.
    hist: [DFF<Bits<DATA_BITS>>; HISTORY],
    m_valid: DFF<Bit>,
    m_data: DFF<Bits<DATA_BITS>>,
    m_keep: DFF<Bits<KEEP_BITS>>,
    m_last: DFF<Bit>,
    m_user: DFF<Bits<8>>,
    ev_valid_r: DFF<Bit>,
    ev_verdict_r: DFF<Bits<2>>,
}

/// Encapsulation cases (VLAN count × outer header): IP-in-IP over IPv4 / IPv6, GUE over
/// IPv4, GUE over IPv6.
const CASES: usize = 12;

/// `(L3 offset, outer header length)` of encapsulation case `i` (see `tm_ipip`).
fn encap_case(i: usize) -> (usize, usize) {
    let ipip = |v6| if v6 { 40 } else { 20 };
    let gue = Mode::Gue { port: 0 }.spec();
    if i < 6 {
        (14 + 4 * (i / 2), ipip(i % 2 == 1))
    } else if i < 9 {
        (14 + 4 * (i - 6), gue.outer_len_v4)
    } else {
        (14 + 4 * (i - 9), gue.outer_len_v6)
    }
}

/// The 64-bit build (small FPGAs).
pub type FlowRewriter = Rewriter<64, 8>;
/// The 512-bit build (100G shells).
pub type WideRewriter = Rewriter<512, 64>;

/// A lane-order (byte `q` at bits `8q..8q+8`) byte mask of the template with bytes
/// `[from, to)` set.
fn lane_mask(from: usize, to: usize) -> Bits<TEMPLATE_BITS> {
    let mut m = Bits::<TEMPLATE_BITS>::default();
    for q in from..to.min(TEMPLATE_BYTES) {
        m.set_bits::<8>(8 * q, 0xff_u64.into());
    }
    m
}

fn bits32(v: usize) -> Constant<Bits<32>> {
    Constant::new((v as u64).into())
}

/// `(hi index, lo index, up shift, down shift)` of the realigner for an outer header of
/// `outer` bytes on a `keep`-byte stream (see the struct doc; 6 = "the current beat" for
/// `hi`, "none" for `lo` when the shift is whole beats).
fn realign(outer: usize, keep: usize) -> (usize, usize, usize, usize) {
    let (a, s) = (outer / keep, outer % keep);
    let hi = if a == 0 { 6 } else { a - 1 };
    let lo = if s == 0 { 6 } else { a };
    (hi, lo, 8 * s, 8 * (keep - s))
}

impl<const DATA_BITS: usize, const KEEP_BITS: usize> Default for Rewriter<DATA_BITS, KEEP_BITS> {
    fn default() -> Self {
        assert!(
            KEEP_BITS * 8 == DATA_BITS && DATA_BITS.is_power_of_two(),
            "the data bus must be whole bytes, one keep bit each, a power of two"
        );
        assert!(
            (64..=TEMPLATE_BITS).contains(&DATA_BITS),
            "64 to 512 bits: the history covers 48 bytes of 8-byte beats"
        );
        let (hi20, lo20, up20, down20) = realign(20, KEEP_BITS);
        let (hi40, lo40, up40, down40) = realign(40, KEEP_BITS);
        let (hi28, lo28, up28, down28) = realign(28, KEEP_BITS);
        let (hi48, lo48, up48, down48) = realign(48, KEEP_BITS);
        let mut fixed_v4 = [0u8; 22];
        fixed_v4[0..2].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        fixed_v4[2] = 0x45;
        fixed_v4[10] = flowgate_core::rewrite::OUTER_HOP_LIMIT;
        let mut fixed_v6 = [0u8; 42];
        fixed_v6[0..2].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        fixed_v6[9] = flowgate_core::rewrite::OUTER_HOP_LIMIT;
        let case = |i: usize| {
            let (l3, outer) = encap_case(i);
            (
                lane_mask(0, 12) | lane_mask(l3 - 2, l3 + outer),
                lane_mask(12, l3 - 2),
                lane_mask(l3 + outer, TEMPLATE_BYTES),
            )
        };
        Self {
            clock: Default::default(),
            s_axis_tdata: Default::default(),
            s_axis_tkeep: Default::default(),
            s_axis_tlast: Default::default(),
            s_axis_tvalid: Default::default(),
            s_axis_tready: Default::default(),
            act_valid: Default::default(),
            act_ready: Default::default(),
            act_kind: Default::default(),
            act_mode: Default::default(),
            act_gue_port: Default::default(),
            act_own_mac: Default::default(),
            act_backend_mac: Default::default(),
            act_backend_addr: Default::default(),
            act_backend_v6: Default::default(),
            act_encap_v4_prefix: Default::default(),
            act_encap_v4_len: Default::default(),
            act_encap_v6_prefix: Default::default(),
            act_encap_v6_len: Default::default(),
            act_hash: Default::default(),
            act_l3_offset: Default::default(),
            act_ip_len: Default::default(),
            act_inner_v6: Default::default(),
            act_dscp_ecn: Default::default(),
            act_inner_sum: Default::default(),
            m_axis_tdata: Default::default(),
            m_axis_tkeep: Default::default(),
            m_axis_tlast: Default::default(),
            m_axis_tvalid: Default::default(),
            m_axis_tuser: Default::default(),
            m_axis_tready: Default::default(),
            ev_valid: Default::default(),
            ev_verdict: Default::default(),
            zero32: bits32(0),
            all32: Constant::new(0xffff_ffff_u64.into()),
            max_len: bits32(MAX_FRAME_LEN),
            outer20: bits32(20),
            outer28: bits32(28),
            outer40: bits32(40),
            outer48: bits32(48),
            udp_zero: bits32(0xffff),
            mode_ipip: Constant::new(u64::from(MODE_IPIP).into()),
            mode_gue: Constant::new(u64::from(MODE_GUE).into()),
            proto_udp: bits32(flowgate_core::parse::IPPROTO_UDP.into()),
            sport_range: Constant::new(0xc000_0000_u64.into()),
            l3_18: Constant::new(18_u64.into()),
            udp_header16: Constant::new(8_u64.into()),
            l3_22: Constant::new(22_u64.into()),
            proto_ipip: bits32(flowgate_core::rewrite::IPPROTO_IPIP.into()),
            proto_ipv6: bits32(flowgate_core::rewrite::IPPROTO_IPV6.into()),
            kind_forward: Constant::new(KIND_FORWARD.into()),
            kind_pass: Constant::new(KIND_PASS.into()),
            verdict_forwarded: Constant::new(u64::from(VERDICT_FORWARDED).into()),
            verdict_passed: Constant::new(u64::from(VERDICT_PASSED).into()),
            verdict_dropped: Constant::new(u64::from(VERDICT_DROPPED).into()),
            verdict_too_large: Constant::new(u64::from(VERDICT_ENCAP_TOO_LARGE).into()),
            tuser_forwarded: Constant::new(u64::from(TUSER_FORWARDED).into()),
            tuser_passed: Constant::new(u64::from(TUSER_PASSED).into()),
            len_32: Constant::new(32_u64.into()),
            len_96: Constant::new(96_u64.into()),
            len_128: Constant::new(128_u64.into()),
            keep_bytes: bits32(KEEP_BITS),
            beat_bits: bits32(DATA_BITS),
            keep_low: bits32(KEEP_BITS - 1),
            keep_shift: bits32(KEEP_BITS.trailing_zeros() as usize),
            all_keep: Constant::new(Bits::<KEEP_BITS>::mask()),
            zero_data: Constant::new(Bits::default()),
            zero_tmpl: Constant::new(Bits::default()),
            all_tmpl: Constant::new(Bits::<TEMPLATE_BITS>::mask()),
            byte_tmpl: Constant::new(0xff_u64.into()),
            fill_top: Constant::new(lane_mask(
                TEMPLATE_BYTES - KEEP_BITS.min(TEMPLATE_BYTES),
                TEMPLATE_BYTES,
            )),
            fixed_v4: Constant::new(left_aligned(&fixed_v4).expect("fits")),
            fixed_v6: Constant::new(left_aligned(&fixed_v6).expect("fits")),
            tm_dsr: Constant::new(lane_mask(0, 12)),
            sm_dsr: Constant::new(lane_mask(12, TEMPLATE_BYTES)),
            tm_ipip: std::array::from_fn(|i| Constant::new(case(i).0)),
            sm_ipip: std::array::from_fn(|i| Constant::new(case(i).1)),
            sh_ipip: std::array::from_fn(|i| Constant::new(case(i).2)),
            idx: std::array::from_fn(bits32),
            hi20: bits32(hi20),
            lo20: bits32(lo20),
            up20: bits32(up20),
            down20: bits32(down20),
            hi40: bits32(hi40),
            lo40: bits32(lo40),
            up40: bits32(up40),
            down40: bits32(down40),
            hi28: bits32(hi28),
            lo28: bits32(lo28),
            up28: bits32(up28),
            down28: bits32(down28),
            hi48: bits32(hi48),
            lo48: bits32(lo48),
            up48: bits32(up48),
            down48: bits32(down48),
            act_take: Default::default(),
            p_l3: Default::default(),
            p_ip_len: Default::default(),
            p_total: Default::default(),
            p_too_large: Default::default(),
            p_verdict: Default::default(),
            p_ipip: Default::default(),
            p_gue: Default::default(),
            p_encap: Default::default(),
            p_udp_word: Default::default(),
            p_mask4: Default::default(),
            p_src4: Default::default(),
            p_dst4: Default::default(),
            p_mask6: Default::default(),
            p_src6_low: Default::default(),
            p_src6: Default::default(),
            p_tos: Default::default(),
            p_proto: Default::default(),
            p_len4: Default::default(),
            p_sum0: Default::default(),
            p_sum: Default::default(),
            p_sum1: Default::default(),
            p_checksum: Default::default(),
            p_usum0: Default::default(),
            p_len6: Default::default(),
            p_usum: Default::default(),
            p_usum1: Default::default(),
            p_ucheck: Default::default(),
            p_flow_word: Default::default(),
            p_outer: Default::default(),
            p_be: Default::default(),
            p_le: Default::default(),
            p_case: Default::default(),
            p_tm: Default::default(),
            p_sm: Default::default(),
            p_sh: Default::default(),
            p_rem: Default::default(),
            p_last_keep: Default::default(),
            out_free: Default::default(),
            produces: Default::default(),
            need_in: Default::default(),
            step: Default::default(),
            fin: Default::default(),
            load: Default::default(),
            a_move: Default::default(),
            in_done_after: Default::default(),
            out_done_after: Default::default(),
            beat_is_last: Default::default(),
            cur: Default::default(),
            hi_a: Default::default(),
            lo_a: Default::default(),
            hi_b: Default::default(),
            lo_b: Default::default(),
            hi_c: Default::default(),
            lo_c: Default::default(),
            hi_d: Default::default(),
            lo_d: Default::default(),
            shifted: Default::default(),
            o_data: Default::default(),
            a_valid: Default::default(),
            a_verdict: Default::default(),
            a_ipip: Default::default(),
            a_gue: Default::default(),
            a_udp_word: Default::default(),
            a_v6: Default::default(),
            a_l3: Default::default(),
            a_ip_len: Default::default(),
            a_tos: Default::default(),
            a_proto: Default::default(),
            a_len4: Default::default(),
            a_sum0: Default::default(),
            a_usum0: Default::default(),
            a_src4: Default::default(),
            a_dst4: Default::default(),
            a_src6: Default::default(),
            a_addr: Default::default(),
            a_flow_word: Default::default(),
            a_backend_mac: Default::default(),
            a_own_mac: Default::default(),
            a_last_beat: Default::default(),
            a_last_keep: Default::default(),
            b_valid: Default::default(),
            b_verdict: Default::default(),
            b_ipip: Default::default(),
            b_gue: Default::default(),
            b_v6: Default::default(),
            b_tmpl: Default::default(),
            b_tm: Default::default(),
            b_sm: Default::default(),
            b_sh: Default::default(),
            b_last_beat: Default::default(),
            b_last_keep: Default::default(),
            c_active: Default::default(),
            c_verdict: Default::default(),
            c_ipip: Default::default(),
            c_gue: Default::default(),
            c_v6: Default::default(),
            c_tmpl: Default::default(),
            c_tm: Default::default(),
            c_sm: Default::default(),
            c_sh: Default::default(),
            c_last_beat: Default::default(),
            c_last_keep: Default::default(),
            c_beat: Default::default(),
            c_in_done: Default::default(),
            c_out_done: Default::default(),
            hist: Default::default(),
            m_valid: Default::default(),
            m_data: Default::default(),
            m_keep: Default::default(),
            m_last: Default::default(),
            m_user: Default::default(),
            ev_valid_r: Default::default(),
            ev_verdict_r: Default::default(),
        }
    }
}

impl<const DATA_BITS: usize, const KEEP_BITS: usize> Logic for Rewriter<DATA_BITS, KEEP_BITS> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            a_valid,
            a_verdict,
            a_ipip,
            a_gue,
            a_udp_word,
            a_v6,
            a_l3,
            a_ip_len,
            a_tos,
            a_proto,
            a_len4,
            a_sum0,
            a_usum0,
            a_src4,
            a_dst4,
            a_src6,
            a_addr,
            a_flow_word,
            a_backend_mac,
            a_own_mac,
            a_last_beat,
            a_last_keep,
            b_valid,
            b_verdict,
            b_ipip,
            b_gue,
            b_v6,
            b_tmpl,
            b_tm,
            b_sm,
            b_sh,
            b_last_beat,
            b_last_keep,
            c_active,
            c_verdict,
            c_ipip,
            c_gue,
            c_v6,
            c_tmpl,
            c_tm,
            c_sm,
            c_sh,
            c_last_beat,
            c_last_keep,
            c_beat,
            c_in_done,
            c_out_done,
            m_valid,
            m_data,
            m_keep,
            m_last,
            m_user,
            ev_valid_r,
            ev_verdict_r
        );
        for k in 0..HISTORY {
            self.hist[k].clock.next = self.clock.val();
            self.hist[k].d.next = self.hist[k].q.val();
        }
        self.ev_valid_r.d.next = false;

        // ---- The frame streaming: one step = one input beat in and/or one beat out.
        self.out_free.next = !self.m_valid.q.val() | self.m_axis_tready.val();
        self.produces.next = self.c_active.q.val()
            & ((self.c_verdict.q.val() == self.verdict_forwarded.val())
                | (self.c_verdict.q.val() == self.verdict_passed.val()))
            & !self.c_out_done.q.val();
        self.need_in.next = self.c_active.q.val() & !self.c_in_done.q.val();
        self.s_axis_tready.next = self.need_in.val() & (!self.produces.val() | self.out_free.val());
        self.step.next = self.c_active.q.val()
            & (!self.need_in.val() | self.s_axis_tvalid.val())
            & (!self.produces.val() | self.out_free.val());
        self.beat_is_last.next = self.c_beat.q.val() == self.c_last_beat.q.val();
        self.in_done_after.next =
            self.c_in_done.q.val() | (self.need_in.val() & self.s_axis_tlast.val());
        self.out_done_after.next = self.c_ipip.q.val()
            & (self.c_out_done.q.val() | (self.produces.val() & self.beat_is_last.val()));
        // IP-in-IP ends when both sides have; the others end with the input.
        self.fin.next = self.in_done_after.val();
        if self.c_ipip.q.val() {
            self.fin.next = self.in_done_after.val() & self.out_done_after.val();
        }
        self.cur.next = self.zero_data.val();
        self.hi_a.next = self.zero_data.val();
        self.lo_a.next = self.zero_data.val();
        self.hi_b.next = self.zero_data.val();
        self.lo_b.next = self.zero_data.val();
        self.hi_c.next = self.zero_data.val();
        self.lo_c.next = self.zero_data.val();
        self.hi_d.next = self.zero_data.val();
        self.lo_d.next = self.zero_data.val();
        self.shifted.next = self.zero_data.val();
        self.o_data.next = self.zero_data.val();
        if self.step.val() {
            if self.need_in.val() {
                self.cur.next = self.s_axis_tdata.val();
            }
            self.hist[0].d.next = self.cur.val();
            self.hist[1].d.next = self.hist[0].q.val();
            self.hist[2].d.next = self.hist[1].q.val();
            self.hist[3].d.next = self.hist[2].q.val();
            self.hist[4].d.next = self.hist[3].q.val();
            self.hist[5].d.next = self.hist[4].q.val();
            self.c_beat.d.next = self.c_beat.q.val() + 1;
            self.c_in_done.d.next = self.in_done_after.val();
            self.c_out_done.d.next = self.out_done_after.val();
            // Template and masks move down one beat; past the template every byte is the
            // shifted input (IP-in-IP) or the input in place (DSR, pass).
            self.c_tmpl.d.next = self.c_tmpl.q.val() >> self.beat_bits.val();
            self.c_tm.d.next = self.c_tm.q.val() >> self.beat_bits.val();
            if self.c_ipip.q.val() {
                self.c_sm.d.next = self.c_sm.q.val() >> self.beat_bits.val();
                self.c_sh.d.next =
                    (self.c_sh.q.val() >> self.beat_bits.val()) | self.fill_top.val();
            } else {
                self.c_sm.d.next =
                    (self.c_sm.q.val() >> self.beat_bits.val()) | self.fill_top.val();
                self.c_sh.d.next = self.c_sh.q.val() >> self.beat_bits.val();
            }
            if self.produces.val() {
                // The realigner: two fixed shifts per outer header length.
                self.hi_a.next = self.cur.val();
                self.hi_b.next = self.cur.val();
                self.hi_c.next = self.cur.val();
                self.hi_d.next = self.cur.val();
                for k in 0..HISTORY {
                    if self.hi20.val() == self.idx[k].val() {
                        self.hi_a.next = self.hist[k].q.val();
                    }
                    if self.lo20.val() == self.idx[k].val() {
                        self.lo_a.next = self.hist[k].q.val();
                    }
                    if self.hi40.val() == self.idx[k].val() {
                        self.hi_b.next = self.hist[k].q.val();
                    }
                    if self.lo40.val() == self.idx[k].val() {
                        self.lo_b.next = self.hist[k].q.val();
                    }
                    if self.hi28.val() == self.idx[k].val() {
                        self.hi_c.next = self.hist[k].q.val();
                    }
                    if self.lo28.val() == self.idx[k].val() {
                        self.lo_c.next = self.hist[k].q.val();
                    }
                    if self.hi48.val() == self.idx[k].val() {
                        self.hi_d.next = self.hist[k].q.val();
                    }
                    if self.lo48.val() == self.idx[k].val() {
                        self.lo_d.next = self.hist[k].q.val();
                    }
                }
                if self.c_gue.q.val() & self.c_v6.q.val() {
                    self.shifted.next = self.hi_d.val();
                    if self.up48.val() != self.zero32.val() {
                        self.shifted.next = (self.hi_d.val() << self.up48.val())
                            | (self.lo_d.val() >> self.down48.val());
                    }
                } else if self.c_gue.q.val() {
                    self.shifted.next = self.hi_c.val();
                    if self.up28.val() != self.zero32.val() {
                        self.shifted.next = (self.hi_c.val() << self.up28.val())
                            | (self.lo_c.val() >> self.down28.val());
                    }
                } else if self.c_v6.q.val() {
                    self.shifted.next = self.hi_b.val();
                    if self.up40.val() != self.zero32.val() {
                        self.shifted.next = (self.hi_b.val() << self.up40.val())
                            | (self.lo_b.val() >> self.down40.val());
                    }
                } else {
                    self.shifted.next = self.hi_a.val();
                    if self.up20.val() != self.zero32.val() {
                        self.shifted.next = (self.hi_a.val() << self.up20.val())
                            | (self.lo_a.val() >> self.down20.val());
                    }
                }
                self.o_data.next = (self.c_tmpl.q.val().get_bits::<DATA_BITS>(0)
                    & self.c_tm.q.val().get_bits::<DATA_BITS>(0))
                    | (self.cur.val() & self.c_sm.q.val().get_bits::<DATA_BITS>(0))
                    | (self.shifted.val() & self.c_sh.q.val().get_bits::<DATA_BITS>(0));
                self.m_data.d.next = self.o_data.val();
                if self.c_ipip.q.val() {
                    self.m_last.d.next = self.beat_is_last.val();
                    if self.beat_is_last.val() {
                        self.m_keep.d.next = self.c_last_keep.q.val();
                    } else {
                        self.m_keep.d.next = self.all_keep.val();
                    }
                } else {
                    self.m_last.d.next = self.s_axis_tlast.val();
                    self.m_keep.d.next = self.s_axis_tkeep.val();
                }
                if self.c_verdict.q.val() == self.verdict_passed.val() {
                    self.m_user.d.next = self.tuser_passed.val();
                } else {
                    self.m_user.d.next = self.tuser_forwarded.val();
                }
            }
            if self.fin.val() {
                self.c_active.d.next = false;
            }
        }
        if self.out_free.val() {
            self.m_valid.d.next = self.step.val() & self.produces.val();
        }

        // ---- The next frame's prepared action moves in when this frame ends.
        self.load.next =
            self.b_valid.q.val() & (!self.c_active.q.val() | (self.step.val() & self.fin.val()));
        if self.load.val() {
            self.c_active.d.next = true;
            self.c_verdict.d.next = self.b_verdict.q.val();
            self.c_ipip.d.next = self.b_ipip.q.val();
            self.c_gue.d.next = self.b_gue.q.val();
            self.c_v6.d.next = self.b_v6.q.val();
            self.c_tmpl.d.next = self.b_tmpl.q.val();
            self.c_tm.d.next = self.b_tm.q.val();
            self.c_sm.d.next = self.b_sm.q.val();
            self.c_sh.d.next = self.b_sh.q.val();
            self.c_last_beat.d.next = self.b_last_beat.q.val();
            self.c_last_keep.d.next = self.b_last_keep.q.val();
            self.c_beat.d.next = self.zero32.val();
            self.c_in_done.d.next = false;
            self.c_out_done.d.next = false;
            self.ev_valid_r.d.next = true;
            self.ev_verdict_r.d.next = self.b_verdict.q.val();
            self.b_valid.d.next = false;
        }

        // ---- Prepare an action in two register stages. A (act_ → a_): the verdict, the
        // lengths, the outer addresses and the checksum sum of every word but the outer
        // source; every CSR scalar is read here, at the take. B (a_ → b_): the checksum,
        // the outer header, the template and the masks. The next frame's action is prepared
        // while the current one streams, so the second stage costs no throughput.
        self.a_move.next = self.a_valid.q.val() & (!self.b_valid.q.val() | self.load.val());
        self.act_ready.next = !self.a_valid.q.val() | self.a_move.val();
        self.act_take.next = self.act_valid.val() & self.act_ready.val();
        self.p_l3.next = self.zero32.val();
        self.p_ip_len.next = self.zero32.val();
        self.p_total.next = self.zero32.val();
        self.p_too_large.next = false;
        self.p_verdict.next = self.verdict_dropped.val();
        self.p_ipip.next = false;
        self.p_gue.next = false;
        self.p_encap.next = false;
        self.p_udp_word.next = self.zero32.val();
        self.p_mask4.next = self.zero32.val();
        self.p_src4.next = self.zero32.val();
        self.p_dst4.next = self.zero32.val();
        self.p_mask6.next = self.zero32.val();
        self.p_src6_low.next = self.zero32.val();
        self.p_src6.next = self.act_encap_v6_prefix.val();
        self.p_tos.next = self.zero32.val();
        self.p_proto.next = self.zero32.val();
        self.p_len4.next = self.zero32.val();
        self.p_sum0.next = self.zero32.val();
        self.p_sum.next = self.zero32.val();
        self.p_sum1.next = self.zero32.val();
        self.p_checksum.next = self.zero32.val();
        self.p_usum0.next = self.zero32.val();
        self.p_len6.next = self.a_ip_len.q.val();
        self.p_usum.next = self.zero32.val();
        self.p_usum1.next = self.zero32.val();
        self.p_ucheck.next = self.zero32.val();
        self.p_flow_word.next = self.zero32.val();
        self.p_outer.next = self.zero_tmpl.val();
        self.p_be.next = self.zero_tmpl.val();
        self.p_le.next = self.zero_tmpl.val();
        self.p_case.next = self.zero32.val();
        self.p_tm.next = self.zero_tmpl.val();
        self.p_sm.next = self.all_tmpl.val();
        self.p_sh.next = self.zero_tmpl.val();
        self.p_rem.next = self.zero32.val();
        self.p_last_keep.next = self.all_keep.val();

        // Stage B first: it reads the a_ registers before stage A overwrites them.
        if self.a_move.val() {
            // RFC 1071: the ones' complement sum of the nine non-zero words (the checksum
            // word taken as zero), folded twice; stage A summed all but the source.
            self.p_sum.next =
                self.a_sum0.q.val() + (self.a_src4.q.val() >> 16) + (self.a_src4.q.val() & 0xffff);
            self.p_sum1.next = (self.p_sum.val() & 0xffff) + (self.p_sum.val() >> 16);
            self.p_checksum.next =
                !((self.p_sum1.val() & 0xffff) + (self.p_sum1.val() >> 16)) & 0xffff;
            // GUE's UDP checksum under IPv6: stage A summed all but the outer source
            // (the inner datagram's sum came with the action); add its eight words, fold
            // twice (32 bits → 17 → 16), complement, and send 0 as 0xFFFF.
            self.p_usum.next = self.a_usum0.q.val()
                + bit_cast::<32, 16>(self.a_src6.q.val().get_bits::<16>(0))
                + bit_cast::<32, 16>(self.a_src6.q.val().get_bits::<16>(16))
                + bit_cast::<32, 16>(self.a_src6.q.val().get_bits::<16>(32))
                + bit_cast::<32, 16>(self.a_src6.q.val().get_bits::<16>(48))
                + bit_cast::<32, 16>(self.a_src6.q.val().get_bits::<16>(64))
                + bit_cast::<32, 16>(self.a_src6.q.val().get_bits::<16>(80))
                + bit_cast::<32, 16>(self.a_src6.q.val().get_bits::<16>(96))
                + bit_cast::<32, 16>(self.a_src6.q.val().get_bits::<16>(112));
            self.p_usum1.next = (self.p_usum.val() & 0xffff) + (self.p_usum.val() >> 16);
            self.p_ucheck.next =
                !((self.p_usum1.val() & 0xffff) + (self.p_usum1.val() >> 16)) & 0xffff;
            if self.p_ucheck.val() == self.zero32.val() {
                self.p_ucheck.next = self.udp_zero.val();
            }
            // Ethertype + outer header, byte 0 on top (field at byte o, n bytes long:
            // shifted up by 576 - 8 (o + n)).
            // The IPv6 payload: the datagram, behind the UDP header under GUE.
            self.p_len6.next = self.a_ip_len.q.val();
            if self.a_gue.q.val() {
                self.p_len6.next = self.a_ip_len.q.val() + self.udp_header16.val();
            }
            if self.a_v6.q.val() {
                self.p_outer.next = self.fixed_v6.val()
                    | (bit_cast::<TEMPLATE_BITS, 32>(self.a_flow_word.q.val()) << 528)
                    | (bit_cast::<TEMPLATE_BITS, 16>(self.p_len6.val()) << 512)
                    | (bit_cast::<TEMPLATE_BITS, 8>(self.a_proto.q.val()) << 504)
                    | (bit_cast::<TEMPLATE_BITS, 128>(self.a_src6.q.val()) << 368)
                    | (bit_cast::<TEMPLATE_BITS, 128>(self.a_addr.q.val()) << 240);
                if self.a_gue.q.val() {
                    // UDP after the IPv6 header: ports at byte 42, length at 46, the
                    // checksum (RFC 8200 §8.1, never 0) at 48.
                    self.p_outer.next = self.p_outer.val()
                        | (bit_cast::<TEMPLATE_BITS, 32>(self.a_udp_word.q.val()) << 208)
                        | (bit_cast::<TEMPLATE_BITS, 16>(self.a_ip_len.q.val() + 8) << 192)
                        | (bit_cast::<TEMPLATE_BITS, 32>(self.p_ucheck.val()) << 176);
                }
            } else {
                self.p_outer.next = self.fixed_v4.val()
                    | (bit_cast::<TEMPLATE_BITS, 8>(self.a_tos.q.val()) << 544)
                    | (bit_cast::<TEMPLATE_BITS, 16>(self.a_len4.q.val()) << 528)
                    | (bit_cast::<TEMPLATE_BITS, 8>(self.a_proto.q.val()) << 480)
                    | (bit_cast::<TEMPLATE_BITS, 32>(self.p_checksum.val()) << 464)
                    | (bit_cast::<TEMPLATE_BITS, 32>(self.a_src4.q.val()) << 432)
                    | (bit_cast::<TEMPLATE_BITS, 32>(self.a_dst4.q.val()) << 400);
                if self.a_gue.q.val() {
                    // UDP after the IPv4 header: ports at byte 22, length at 26, checksum
                    // 0 at 28.
                    self.p_outer.next = self.p_outer.val()
                        | (bit_cast::<TEMPLATE_BITS, 32>(self.a_udp_word.q.val()) << 368)
                        | (bit_cast::<TEMPLATE_BITS, 16>(self.a_ip_len.q.val() + 8) << 352);
                }
            }
            self.p_be.next = (bit_cast::<TEMPLATE_BITS, 48>(self.a_backend_mac.q.val()) << 528)
                | (bit_cast::<TEMPLATE_BITS, 48>(self.a_own_mac.q.val()) << 480);
            // The ethertype sits 2 bytes before L3: 14, 18 or 22 bytes in.
            if self.a_l3.q.val() == self.l3_22.val() {
                self.p_case.next = self.idx[4].val();
                if self.a_ipip.q.val() {
                    self.p_be.next = self.p_be.val() | (self.p_outer.val() >> 160);
                }
            } else if self.a_l3.q.val() == self.l3_18.val() {
                self.p_case.next = self.idx[2].val();
                if self.a_ipip.q.val() {
                    self.p_be.next = self.p_be.val() | (self.p_outer.val() >> 128);
                }
            } else if self.a_ipip.q.val() {
                self.p_be.next = self.p_be.val() | (self.p_outer.val() >> 96);
            }
            if self.a_gue.q.val() & self.a_v6.q.val() {
                self.p_case.next = (self.p_case.val() >> 1) + 9;
            } else if self.a_gue.q.val() {
                self.p_case.next = (self.p_case.val() >> 1) + 6;
            } else if self.a_v6.q.val() {
                self.p_case.next = self.p_case.val() + 1;
            }
            // Byte q of the frame to lane q (bits 8q..8q+8).
            for q in 0..(TEMPLATE_BYTES as u64) {
                self.p_le.next = self.p_le.val()
                    | (((self.p_be.val() >> (8 * (71 - q))) & self.byte_tmpl.val()) << (8 * q));
            }
            if self.a_ipip.q.val() {
                for i in 0..CASES {
                    if self.p_case.val() == self.idx[i].val() {
                        self.p_tm.next = self.tm_ipip[i].val();
                        self.p_sm.next = self.sm_ipip[i].val();
                        self.p_sh.next = self.sh_ipip[i].val();
                    }
                }
            } else if self.a_verdict.q.val() == self.verdict_forwarded.val() {
                self.p_tm.next = self.tm_dsr.val();
                self.p_sm.next = self.sm_dsr.val();
            } else {
                self.p_le.next = self.zero_tmpl.val();
            }
            self.a_valid.d.next = false;
            self.b_valid.d.next = true;
            self.b_verdict.d.next = self.a_verdict.q.val();
            self.b_ipip.d.next = self.a_ipip.q.val();
            self.b_gue.d.next = self.a_gue.q.val();
            self.b_v6.d.next = self.a_v6.q.val();
            self.b_tmpl.d.next = self.p_le.val();
            self.b_tm.d.next = self.p_tm.val();
            self.b_sm.d.next = self.p_sm.val();
            self.b_sh.d.next = self.p_sh.val();
            self.b_last_beat.d.next = self.a_last_beat.q.val();
            self.b_last_keep.d.next = self.a_last_keep.q.val();
        }

        // Stage A.
        if self.act_take.val() {
            self.p_l3.next = bit_cast::<32, 16>(self.act_l3_offset.val());
            self.p_ip_len.next = bit_cast::<32, 16>(self.act_ip_len.val());
            self.p_gue.next = self.act_mode.val() == self.mode_gue.val();
            self.p_encap.next = self.p_gue.val() | (self.act_mode.val() == self.mode_ipip.val());
            if self.act_backend_v6.val() {
                self.p_total.next = self.p_l3.val() + self.outer40.val() + self.p_ip_len.val();
                if self.p_gue.val() {
                    self.p_total.next = self.p_l3.val() + self.outer48.val() + self.p_ip_len.val();
                }
            } else if self.p_gue.val() {
                self.p_total.next = self.p_l3.val() + self.outer28.val() + self.p_ip_len.val();
            } else {
                self.p_total.next = self.p_l3.val() + self.outer20.val() + self.p_ip_len.val();
            }
            self.p_too_large.next = self.p_total.val() > self.max_len.val();
            if self.act_kind.val() == self.kind_pass.val() {
                self.p_verdict.next = self.verdict_passed.val();
            } else if self.act_kind.val() == self.kind_forward.val() {
                self.p_verdict.next = self.verdict_forwarded.val();
                if self.p_encap.val() {
                    self.p_ipip.next = !self.p_too_large.val();
                    if self.p_too_large.val() {
                        self.p_verdict.next = self.verdict_too_large.val();
                    }
                }
            }

            // Outer source: the prefix with its low min(32, width - len) bits from the hash.
            if self.act_encap_v4_len.val() < self.len_32.val() {
                self.p_mask4.next = self.all32.val() >> self.act_encap_v4_len.val();
            }
            self.p_src4.next = (self.act_encap_v4_prefix.val() & !self.p_mask4.val())
                | (self.act_hash.val() & self.p_mask4.val());
            if self.act_encap_v6_len.val() < self.len_96.val() {
                self.p_mask6.next = self.all32.val();
            } else if self.act_encap_v6_len.val() < self.len_128.val() {
                self.p_mask6.next =
                    self.all32.val() >> (self.act_encap_v6_len.val() - self.len_96.val());
            }
            self.p_src6_low.next = (self.act_encap_v6_prefix.val().get_bits::<32>(0)
                & !self.p_mask6.val())
                | (self.act_hash.val() & self.p_mask6.val());
            self.p_src6.next = ((self.act_encap_v6_prefix.val() >> 32) << 32)
                | bit_cast::<128, 32>(self.p_src6_low.val());
            self.p_dst4.next = self.act_backend_addr.val().get_bits::<32>(0);
            self.p_tos.next = bit_cast::<32, 8>(self.act_dscp_ecn.val());
            if self.p_gue.val() {
                self.p_proto.next = self.proto_udp.val();
            } else if self.act_inner_v6.val() {
                self.p_proto.next = self.proto_ipv6.val();
            } else {
                self.p_proto.next = self.proto_ipip.val();
            }
            // `flowgate_core::rewrite::gue_source_port`, then the destination port.
            self.p_udp_word.next = ((self.act_hash.val() >> 18) << 16)
                | self.sport_range.val()
                | bit_cast::<32, 16>(self.act_gue_port.val());
            self.p_flow_word.next =
                (self.p_tos.val() << 20) | (self.act_hash.val() & 0xf_ffff) | 0x6000_0000;
            self.p_len4.next = (self.p_ip_len.val() + self.outer20.val()) & 0xffff;
            if self.p_gue.val() {
                self.p_len4.next = (self.p_ip_len.val() + self.outer28.val()) & 0xffff;
            }
            self.p_sum0.next = (self.p_tos.val() | 0x4500)
                + self.p_len4.val()
                + (self.p_proto.val() | 0x4000)
                + (self.p_dst4.val() >> 16)
                + (self.p_dst4.val() & 0xffff);
            // GUE under IPv6, RFC 8200 §8.1: the inner datagram's sum, the pseudo-header
            // but the source (destination, upper-layer length, next header 17) and the
            // UDP header (ports, length; checksum field 0). Stage B adds the source.
            self.p_usum0.next = self.act_inner_sum.val()
                + bit_cast::<32, 16>(self.act_backend_addr.val().get_bits::<16>(0))
                + bit_cast::<32, 16>(self.act_backend_addr.val().get_bits::<16>(16))
                + bit_cast::<32, 16>(self.act_backend_addr.val().get_bits::<16>(32))
                + bit_cast::<32, 16>(self.act_backend_addr.val().get_bits::<16>(48))
                + bit_cast::<32, 16>(self.act_backend_addr.val().get_bits::<16>(64))
                + bit_cast::<32, 16>(self.act_backend_addr.val().get_bits::<16>(80))
                + bit_cast::<32, 16>(self.act_backend_addr.val().get_bits::<16>(96))
                + bit_cast::<32, 16>(self.act_backend_addr.val().get_bits::<16>(112))
                + ((self.p_ip_len.val() + 8) << 1)
                + self.proto_udp.val()
                + (self.p_udp_word.val() >> 16)
                + (self.p_udp_word.val() & 0xffff);
            self.p_rem.next = self.p_total.val() & self.keep_low.val();
            if self.p_rem.val() != self.zero32.val() {
                self.p_last_keep.next =
                    self.all_keep.val() >> (self.keep_bytes.val() - self.p_rem.val());
            }
            self.a_valid.d.next = true;
            self.a_verdict.d.next = self.p_verdict.val();
            self.a_ipip.d.next = self.p_ipip.val();
            self.a_gue.d.next = self.p_gue.val() & self.p_ipip.val();
            self.a_udp_word.d.next = self.p_udp_word.val();
            self.a_v6.d.next = self.act_backend_v6.val();
            self.a_l3.d.next = self.act_l3_offset.val();
            self.a_ip_len.d.next = self.act_ip_len.val();
            self.a_tos.d.next = self.act_dscp_ecn.val();
            self.a_proto.d.next = self.p_proto.val().get_bits::<8>(0);
            self.a_len4.d.next = self.p_len4.val().get_bits::<16>(0);
            self.a_sum0.d.next = self.p_sum0.val();
            self.a_usum0.d.next = self.p_usum0.val();
            self.a_src4.d.next = self.p_src4.val();
            self.a_dst4.d.next = self.p_dst4.val();
            self.a_src6.d.next = self.p_src6.val();
            self.a_addr.d.next = self.act_backend_addr.val();
            self.a_flow_word.d.next = self.p_flow_word.val();
            self.a_backend_mac.d.next = self.act_backend_mac.val();
            self.a_own_mac.d.next = self.act_own_mac.val();
            self.a_last_beat.d.next = (self.p_total.val() - 1) >> self.keep_shift.val();
            self.a_last_keep.d.next = self.p_last_keep.val();
        }

        self.m_axis_tvalid.next = self.m_valid.q.val();
        self.m_axis_tdata.next = self.m_data.q.val();
        self.m_axis_tkeep.next = self.m_keep.q.val();
        self.m_axis_tlast.next = self.m_last.q.val();
        self.m_axis_tuser.next = self.m_user.q.val();
        self.ev_valid.next = self.ev_valid_r.q.val();
        self.ev_verdict.next = self.ev_verdict_r.q.val();
    }
}
