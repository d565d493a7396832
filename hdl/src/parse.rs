//! Stage 1 — parse: [`flowgate_core::parse::parse`] on a header vector, one frame per
//! clock.
//!
//! [`HeaderParse`] takes the header vector and frame length that
//! [`crate::axis::HeaderCapture`] produces and computes every field of
//! [`flowgate_core::parse::ParsedFrame`] plus a result code: 0 for an IP frame,
//! [`RESULT_NOT_IP`] for a well-formed non-IP frame, else the [`DropReason::code`] of the
//! first rule the frame breaks — the rules and their order are `core`'s, applied as nested
//! priority logic in the same order as `core/src/parse.rs` applies them.
//!
//! # The header window
//! Hardware sees only the first [`crate::axis::HEADER_BYTES`] (H = 128) bytes of a frame.
//! Ethernet + 2 tags + IPv4 with 40 bytes of options + a TCP header end at byte 102, so
//! every IPv4 frame is parsed exactly as `core` parses it. IPv6 extension headers, however,
//! can be 2048 bytes each, and no fixed H covers every chain. So the contract has a parse
//! window (`flowgate_core::parse::PARSE_WINDOW` = H) and this rule, which the block
//! implements exactly as `core` does:
//!
//! > **HeaderTooLong** ([`DropReason::HeaderTooLong`], code [`RESULT_HEADER_TOO_LONG`]):
//! > when the parser is about to read a header's fields — an IPv6 extension header (its
//! > 2-byte prefix; a fragment header's 8 bytes), a TCP header (20 bytes) or a UDP header
//! > (8 bytes) — and that fixed part, which the header's own truncation check has just
//! > found inside the datagram, does not end within the first H bytes of the frame, the
//! > frame is dropped as `HeaderTooLong`. ICMP is exempt (no ICMP field is read).
//!
//! The check sits right after the same header's truncation check, so a frame `core`
//! drops for a truncation still gets that reason. A frame no longer than H can never
//! break the rule (everything it reads is inside the frame).
//!
//! # Outputs
//! Valid when `result` is 0 (an IP frame); for any other result the field values are
//! unspecified. Addresses are 128 bits: an IPv6 address as its 16 bytes (byte 0 on top),
//! an IPv4 address in the low 32 bits with zeros above, `is_v6` telling which.
//!
//! # Timing
//! Initiation interval 1, latency [`LATENCY`] clocks: the outputs show, [`LATENCY`] rising
//! edges after `header_valid`, the parse of the header presented with it (`valid` marks
//! that clock), with the frame length and the caller's `tag` presented with it. The work
//! is cut into stages so that no clock holds more than one variable-offset read and a few
//! 16-bit carry chains, and no carry chain depends on a variable-offset read in the same
//! clock unless it feeds a register directly:
//! 1. L2: the frame-length checks, the VLAN tags, the 3-way window select that puts the
//!    IP header on top, and the length left for it;
//! 2. the IP header's fixed fields and checks;
//! 3. to 6. one IPv6 extension header each (an 8-byte-word read, the length and window
//!    checks, the next offset);
//! 7. the fifth-header check, the L4 header's read (a 4-byte-word read) and the checks
//!    that need no field of it (room, window);
//! 8. the checks on the L4 header's own fields (TCP data offset, UDP length).
//!
//! Between stages travel the walk's state (`code`, `proto`, `at`, `upper`, `fragment`),
//! the L4 header's offset from the IP header (`l4rel`) and the datagram bytes from there on
//! (`avail`), both kept up to date by every extension step (for IPv6, `at + 40` and
//! `payload - at`), so the L4 read's select and the room checks start from a register
//! rather than behind an adder; the fields read so far and the window. Offsets and lengths are computed in 32-bit
//! locals (rust-hdl emits literals 32 bits wide) but stored masked to their real width,
//! so yosys drops the constant upper bits and narrows the arithmetic.

use flowgate_core::DropReason;
use rust_hdl::prelude::*;

/// Result code of a well-formed frame that is not IPv4 or IPv6 (`Parsed::NotIp`).
pub const RESULT_NOT_IP: u8 = 0xff;
/// Result code of [`DropReason::HeaderTooLong`] (see the module doc).
pub const RESULT_HEADER_TOO_LONG: u8 = DropReason::HeaderTooLong as u8;

// The block's window is the contract's.
const _: () = assert!(crate::axis::HEADER_BYTES == flowgate_core::parse::PARSE_WINDOW);

/// Stage registers: after the IP-header stage and after each of the four extension steps
/// (the L2 stage before them has its own, `l2_*`).
const STAGES: usize = 5;
// `update` walks the extension steps as `0..4` (`#[hdl_gen]` cannot evaluate
// `STAGES - 1`), and the steps are the contract's extension limit.
const _: () = assert!(STAGES - 1 == flowgate_core::parse::MAX_IPV6_EXTENSIONS);

/// Clocks from `header_valid` to the parse's `valid`: the L2 stage, the stage registers,
/// the L4 read's registers (`rd_*`) and the outputs.
pub const LATENCY: usize = STAGES + 3;

/// Parses a `HEADER_BITS`-wide header vector (byte 0 on top) and the frame's length.
#[derive(LogicBlock)]
pub struct HeaderParse<const HEADER_BITS: usize> {
    pub clock: Signal<In, Clock>,
    pub header: Signal<In, Bits<HEADER_BITS>>,
    /// Bytes in the frame (at most 65 535: the capture saturates).
    pub frame_len: Signal<In, Bits<32>>,
    pub header_valid: Signal<In, Bit>,
    /// Travels with the header: `tag_out` shows, with `valid`, what `tag` was with
    /// `header_valid` (the top passes the frame's tick).
    pub tag: Signal<In, Bits<32>>,
    /// High for one clock per parsed header, [`LATENCY`] clocks after `header_valid`.
    pub valid: Signal<Out, Bit>,
    /// 0 = IP, [`RESULT_NOT_IP`], or a [`DropReason`] code.
    pub result: Signal<Out, Bits<8>>,
    pub vlan_count: Signal<Out, Bits<2>>,
    pub l3_offset: Signal<Out, Bits<16>>,
    pub is_v6: Signal<Out, Bit>,
    pub src: Signal<Out, Bits<128>>,
    pub dst: Signal<Out, Bits<128>>,
    pub ip_len: Signal<Out, Bits<16>>,
    pub protocol: Signal<Out, Bits<8>>,
    pub l4_offset: Signal<Out, Bits<16>>,
    pub fragment: Signal<Out, Bit>,
    pub src_port: Signal<Out, Bits<16>>,
    pub dst_port: Signal<Out, Bits<16>>,
    pub tcp_flags: Signal<Out, Bits<8>>,
    pub dscp_ecn: Signal<Out, Bits<8>>,
    /// `frame_len` of the header, with `valid`.
    pub len_out: Signal<Out, Bits<16>>,
    /// `tag` of the header, with `valid`.
    pub tag_out: Signal<Out, Bits<32>>,
    /// A header is presented, in a stage, or at the outputs.
    pub busy: Signal<Out, Bit>,
    // Numbers the body needs (hdl_gen would emit a const-generic name verbatim).
    /// HEADER_BITS.
    hb: Constant<Bits<32>>,
    /// HEADER_BITS / 8: the window H.
    hbytes: Constant<Bits<32>>,
    zero_header: Constant<Bits<HEADER_BITS>>,
    zero128: Constant<Bits<128>>,
    // Locals, all offsets and lengths 32 bits wide (literals are emitted 32 bits wide).
    len: Signal<Local, Bits<32>>,
    code: Signal<Local, Bits<32>>,
    et0: Signal<Local, Bits<32>>,
    et1: Signal<Local, Bits<32>>,
    et2: Signal<Local, Bits<32>>,
    ethertype: Signal<Local, Bits<32>>,
    vlans: Signal<Local, Bits<32>>,
    l3: Signal<Local, Bits<32>>,
    /// The header from the IP header on (byte `l3` on top).
    win: Signal<Local, Bits<HEADER_BITS>>,
    /// Frame bytes from the IP header on.
    plen: Signal<Local, Bits<32>>,
    b0: Signal<Local, Bits<32>>,
    b1: Signal<Local, Bits<32>>,
    ihl4: Signal<Local, Bits<32>>,
    total: Signal<Local, Bits<32>>,
    frag_field: Signal<Local, Bits<32>>,
    v6_payload: Signal<Local, Bits<32>>,
    v6: Signal<Local, Bit>,
    ip_len_l: Signal<Local, Bits<32>>,
    proto: Signal<Local, Bits<32>>,
    dscp: Signal<Local, Bits<32>>,
    is_fragment: Signal<Local, Bit>,
    /// The upper-layer header is in this datagram (not a non-first fragment).
    upper: Signal<Local, Bit>,
    src_l: Signal<Local, Bits<128>>,
    dst_l: Signal<Local, Bits<128>>,
    /// IPv6 extension walk: offset into the payload of the header `proto` names.
    at: Signal<Local, Bits<32>>,
    is_ext: Signal<Local, Bit>,
    /// `win` shifted up by the extension header's offset (see the read below).
    ext_win: Signal<Local, Bits<HEADER_BITS>>,
    ext_word: Signal<Local, Bits<32>>,
    ext_len: Signal<Local, Bits<32>>,
    /// L4 header offset from the IP header, and the datagram bytes from it on (during the
    /// IPv6 walk: the offset of the header `proto` names, and the payload bytes left).
    l4rel: Signal<Local, Bits<32>>,
    avail: Signal<Local, Bits<32>>,
    l4abs: Signal<Local, Bits<32>>,
    /// `header` shifted up by the L4 header's offset (see the read below).
    l4_win: Signal<Local, Bits<HEADER_BITS>>,
    /// The first 16 bytes of the L4 header (ports, UDP length, TCP data offset and flags).
    l4_bytes: Signal<Local, Bits<128>>,
    l4w0: Signal<Local, Bits<32>>,
    l4w4: Signal<Local, Bits<32>>,
    l4w12: Signal<Local, Bits<32>>,
    /// IP header bytes 0..4, 4..8, 8..12.
    w0: Signal<Local, Bits<32>>,
    w4: Signal<Local, Bits<32>>,
    w8: Signal<Local, Bits<32>>,
    doff4: Signal<Local, Bits<32>>,
    ulen: Signal<Local, Bits<32>>,
    sport: Signal<Local, Bits<32>>,
    dport: Signal<Local, Bits<32>>,
    flags: Signal<Local, Bits<32>>,
    /// After stage 7: the TCP data offset, or the UDP length, is still to be checked.
    check_tcp: Signal<Local, Bit>,
    check_udp: Signal<Local, Bit>,
    // The L2 stage's registers: the header after stage 1 (see the module doc).
    l2_valid: DFF<Bit>,
    l2_code: DFF<Bits<32>>,
    l2_vlans: DFF<Bits<32>>,
    l2_l3: DFF<Bits<32>>,
    l2_ethertype: DFF<Bits<32>>,
    l2_plen: DFF<Bits<32>>,
    l2_win: DFF<Bits<HEADER_BITS>>,
    l2_tag: DFF<Bits<32>>,
    l2_len: DFF<Bits<32>>,
    // Stage registers: index `s` holds a header after stage `s + 2` (see the module doc).
    s_valid: [DFF<Bit>; STAGES],
    s_code: [DFF<Bits<32>>; STAGES],
    s_vlans: [DFF<Bits<32>>; STAGES],
    s_l3: [DFF<Bits<32>>; STAGES],
    s_v6: [DFF<Bit>; STAGES],
    s_proto: [DFF<Bits<32>>; STAGES],
    s_upper: [DFF<Bit>; STAGES],
    s_frag: [DFF<Bit>; STAGES],
    s_ip_len: [DFF<Bits<32>>; STAGES],
    s_dscp: [DFF<Bits<32>>; STAGES],
    s_src: [DFF<Bits<128>>; STAGES],
    s_dst: [DFF<Bits<128>>; STAGES],
    s_v6_payload: [DFF<Bits<32>>; STAGES],
    s_at: [DFF<Bits<32>>; STAGES],
    s_l4rel: [DFF<Bits<32>>; STAGES],
    s_avail: [DFF<Bits<32>>; STAGES],
    s_win: [DFF<Bits<HEADER_BITS>>; STAGES],
    s_tag: [DFF<Bits<32>>; STAGES],
    s_len: [DFF<Bits<32>>; STAGES],
    // The L4 read's registers: the header after stage 7 (see the module doc).
    rd_valid: DFF<Bit>,
    rd_code: DFF<Bits<32>>,
    rd_check_tcp: DFF<Bit>,
    rd_check_udp: DFF<Bit>,
    rd_avail: DFF<Bits<32>>,
    rd_doff4: DFF<Bits<32>>,
    rd_ulen: DFF<Bits<32>>,
    rd_flags: DFF<Bits<32>>,
    rd_sport: DFF<Bits<32>>,
    rd_dport: DFF<Bits<32>>,
    rd_vlans: DFF<Bits<32>>,
    rd_l3: DFF<Bits<32>>,
    rd_l4abs: DFF<Bits<32>>,
    rd_v6: DFF<Bit>,
    rd_proto: DFF<Bits<32>>,
    rd_frag: DFF<Bit>,
    rd_ip_len: DFF<Bits<32>>,
    rd_dscp: DFF<Bits<32>>,
    rd_src: DFF<Bits<128>>,
    rd_dst: DFF<Bits<128>>,
    rd_tag: DFF<Bits<32>>,
    rd_len: DFF<Bits<32>>,
    valid_reg: DFF<Bit>,
    result_reg: DFF<Bits<8>>,
    vlan_reg: DFF<Bits<2>>,
    l3_reg: DFF<Bits<16>>,
    v6_reg: DFF<Bit>,
    src_reg: DFF<Bits<128>>,
    dst_reg: DFF<Bits<128>>,
    ip_len_reg: DFF<Bits<16>>,
    proto_reg: DFF<Bits<8>>,
    l4_reg: DFF<Bits<16>>,
    frag_reg: DFF<Bit>,
    sport_reg: DFF<Bits<16>>,
    dport_reg: DFF<Bits<16>>,
    flags_reg: DFF<Bits<8>>,
    dscp_reg: DFF<Bits<8>>,
    len_reg: DFF<Bits<16>>,
    tag_reg: DFF<Bits<32>>,
}

/// The parser the pipeline instantiates, on the 128-byte header of
/// [`crate::axis::FlowHeaderCapture`].
pub type FlowHeaderParse = HeaderParse<{ crate::axis::HEADER_BITS }>;

impl<const HEADER_BITS: usize> Default for HeaderParse<HEADER_BITS> {
    fn default() -> Self {
        // The largest IPv4 header must fit: 22 + 60 + 20 bytes (see the module doc), and
        // the fixed reads below assume at least the 22 + 40 + 4 bytes of IPv6.
        assert!(
            HEADER_BITS / 8 * 8 == HEADER_BITS && HEADER_BITS >= 102 * 8,
            "the header window must hold Ethernet + 2 tags + IPv4 with options + TCP"
        );
        assert!(HEADER_BITS < 1 << 16, "offsets are 32-bit constants");
        Self {
            clock: Default::default(),
            header: Default::default(),
            frame_len: Default::default(),
            header_valid: Default::default(),
            tag: Default::default(),
            valid: Default::default(),
            result: Default::default(),
            vlan_count: Default::default(),
            l3_offset: Default::default(),
            is_v6: Default::default(),
            src: Default::default(),
            dst: Default::default(),
            ip_len: Default::default(),
            protocol: Default::default(),
            l4_offset: Default::default(),
            fragment: Default::default(),
            src_port: Default::default(),
            dst_port: Default::default(),
            tcp_flags: Default::default(),
            dscp_ecn: Default::default(),
            len_out: Default::default(),
            tag_out: Default::default(),
            busy: Default::default(),
            hb: Constant::new((HEADER_BITS as u64).into()),
            hbytes: Constant::new(((HEADER_BITS / 8) as u64).into()),
            zero_header: Constant::new(Bits::default()),
            zero128: Constant::new(Bits::default()),
            len: Default::default(),
            code: Default::default(),
            et0: Default::default(),
            et1: Default::default(),
            et2: Default::default(),
            ethertype: Default::default(),
            vlans: Default::default(),
            l3: Default::default(),
            win: Default::default(),
            plen: Default::default(),
            b0: Default::default(),
            b1: Default::default(),
            ihl4: Default::default(),
            total: Default::default(),
            frag_field: Default::default(),
            v6_payload: Default::default(),
            v6: Default::default(),
            ip_len_l: Default::default(),
            proto: Default::default(),
            dscp: Default::default(),
            is_fragment: Default::default(),
            upper: Default::default(),
            src_l: Default::default(),
            dst_l: Default::default(),
            at: Default::default(),
            is_ext: Default::default(),
            ext_win: Default::default(),
            ext_word: Default::default(),
            ext_len: Default::default(),
            l4rel: Default::default(),
            avail: Default::default(),
            l4abs: Default::default(),
            l4_win: Default::default(),
            l4_bytes: Default::default(),
            l4w0: Default::default(),
            l4w4: Default::default(),
            l4w12: Default::default(),
            w0: Default::default(),
            w4: Default::default(),
            w8: Default::default(),
            doff4: Default::default(),
            ulen: Default::default(),
            sport: Default::default(),
            dport: Default::default(),
            flags: Default::default(),
            check_tcp: Default::default(),
            check_udp: Default::default(),
            l2_valid: Default::default(),
            l2_code: Default::default(),
            l2_vlans: Default::default(),
            l2_l3: Default::default(),
            l2_ethertype: Default::default(),
            l2_plen: Default::default(),
            l2_win: Default::default(),
            l2_tag: Default::default(),
            l2_len: Default::default(),
            s_valid: std::array::from_fn(|_| Default::default()),
            s_code: std::array::from_fn(|_| Default::default()),
            s_vlans: std::array::from_fn(|_| Default::default()),
            s_l3: std::array::from_fn(|_| Default::default()),
            s_v6: std::array::from_fn(|_| Default::default()),
            s_proto: std::array::from_fn(|_| Default::default()),
            s_upper: std::array::from_fn(|_| Default::default()),
            s_frag: std::array::from_fn(|_| Default::default()),
            s_ip_len: std::array::from_fn(|_| Default::default()),
            s_dscp: std::array::from_fn(|_| Default::default()),
            s_src: std::array::from_fn(|_| Default::default()),
            s_dst: std::array::from_fn(|_| Default::default()),
            s_v6_payload: std::array::from_fn(|_| Default::default()),
            s_at: std::array::from_fn(|_| Default::default()),
            s_l4rel: std::array::from_fn(|_| Default::default()),
            s_avail: std::array::from_fn(|_| Default::default()),
            s_win: std::array::from_fn(|_| Default::default()),
            s_tag: std::array::from_fn(|_| Default::default()),
            s_len: std::array::from_fn(|_| Default::default()),
            rd_valid: Default::default(),
            rd_code: Default::default(),
            rd_check_tcp: Default::default(),
            rd_check_udp: Default::default(),
            rd_avail: Default::default(),
            rd_doff4: Default::default(),
            rd_ulen: Default::default(),
            rd_flags: Default::default(),
            rd_sport: Default::default(),
            rd_dport: Default::default(),
            rd_vlans: Default::default(),
            rd_l3: Default::default(),
            rd_l4abs: Default::default(),
            rd_v6: Default::default(),
            rd_proto: Default::default(),
            rd_frag: Default::default(),
            rd_ip_len: Default::default(),
            rd_dscp: Default::default(),
            rd_src: Default::default(),
            rd_dst: Default::default(),
            rd_tag: Default::default(),
            rd_len: Default::default(),
            valid_reg: Default::default(),
            result_reg: Default::default(),
            vlan_reg: Default::default(),
            l3_reg: Default::default(),
            v6_reg: Default::default(),
            src_reg: Default::default(),
            dst_reg: Default::default(),
            ip_len_reg: Default::default(),
            proto_reg: Default::default(),
            l4_reg: Default::default(),
            frag_reg: Default::default(),
            sport_reg: Default::default(),
            dport_reg: Default::default(),
            flags_reg: Default::default(),
            dscp_reg: Default::default(),
            len_reg: Default::default(),
            tag_reg: Default::default(),
        }
    }
}

impl<const HEADER_BITS: usize> Logic for HeaderParse<HEADER_BITS> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            valid_reg,
            result_reg,
            vlan_reg,
            l3_reg,
            v6_reg,
            src_reg,
            dst_reg,
            ip_len_reg,
            proto_reg,
            l4_reg,
            frag_reg,
            sport_reg,
            dport_reg,
            flags_reg,
            dscp_reg,
            len_reg,
            tag_reg,
            l2_valid,
            l2_code,
            l2_vlans,
            l2_l3,
            l2_ethertype,
            l2_plen,
            l2_win,
            l2_tag,
            l2_len,
            rd_valid,
            rd_code,
            rd_check_tcp,
            rd_check_udp,
            rd_avail,
            rd_doff4,
            rd_ulen,
            rd_flags,
            rd_sport,
            rd_dport,
            rd_vlans,
            rd_l3,
            rd_l4abs,
            rd_v6,
            rd_proto,
            rd_frag,
            rd_ip_len,
            rd_dscp,
            rd_src,
            rd_dst,
            rd_tag,
            rd_len
        );
        // Stage registers hold unless a header moves into them.
        for i in 0..5 {
            self.s_valid[i].clock.next = self.clock.val();
            self.s_valid[i].d.next = self.s_valid[i].q.val();
            self.s_code[i].clock.next = self.clock.val();
            self.s_code[i].d.next = self.s_code[i].q.val();
            self.s_vlans[i].clock.next = self.clock.val();
            self.s_vlans[i].d.next = self.s_vlans[i].q.val();
            self.s_l3[i].clock.next = self.clock.val();
            self.s_l3[i].d.next = self.s_l3[i].q.val();
            self.s_v6[i].clock.next = self.clock.val();
            self.s_v6[i].d.next = self.s_v6[i].q.val();
            self.s_proto[i].clock.next = self.clock.val();
            self.s_proto[i].d.next = self.s_proto[i].q.val();
            self.s_upper[i].clock.next = self.clock.val();
            self.s_upper[i].d.next = self.s_upper[i].q.val();
            self.s_frag[i].clock.next = self.clock.val();
            self.s_frag[i].d.next = self.s_frag[i].q.val();
            self.s_ip_len[i].clock.next = self.clock.val();
            self.s_ip_len[i].d.next = self.s_ip_len[i].q.val();
            self.s_dscp[i].clock.next = self.clock.val();
            self.s_dscp[i].d.next = self.s_dscp[i].q.val();
            self.s_src[i].clock.next = self.clock.val();
            self.s_src[i].d.next = self.s_src[i].q.val();
            self.s_dst[i].clock.next = self.clock.val();
            self.s_dst[i].d.next = self.s_dst[i].q.val();
            self.s_v6_payload[i].clock.next = self.clock.val();
            self.s_v6_payload[i].d.next = self.s_v6_payload[i].q.val();
            self.s_at[i].clock.next = self.clock.val();
            self.s_at[i].d.next = self.s_at[i].q.val();
            self.s_l4rel[i].clock.next = self.clock.val();
            self.s_l4rel[i].d.next = self.s_l4rel[i].q.val();
            self.s_avail[i].clock.next = self.clock.val();
            self.s_avail[i].d.next = self.s_avail[i].q.val();
            self.s_win[i].clock.next = self.clock.val();
            self.s_win[i].d.next = self.s_win[i].q.val();
            self.s_tag[i].clock.next = self.clock.val();
            self.s_tag[i].d.next = self.s_tag[i].q.val();
            self.s_len[i].clock.next = self.clock.val();
            self.s_len[i].d.next = self.s_len[i].q.val();
        }
        // Defaults: every local is assigned on every path (no latches). A field read at byte
        // offset `k` of `win` is the slice at bit `hb - 8k - width`.
        self.len.next = self.frame_len.val();
        self.code.next = 0.into();
        self.et0.next = 0.into();
        self.et1.next = 0.into();
        self.et2.next = 0.into();
        self.ethertype.next = 0.into();
        self.vlans.next = 0.into();
        self.l3.next = 14.into();
        self.win.next = self.zero_header.val();
        self.plen.next = 0.into();
        self.b0.next = 0.into();
        self.b1.next = 0.into();
        self.ihl4.next = 0.into();
        self.total.next = 0.into();
        self.frag_field.next = 0.into();
        self.v6_payload.next = 0.into();
        self.v6.next = false;
        self.ip_len_l.next = 0.into();
        self.proto.next = 0.into();
        self.dscp.next = 0.into();
        self.is_fragment.next = false;
        self.upper.next = false;
        self.src_l.next = self.zero128.val();
        self.dst_l.next = self.zero128.val();
        self.at.next = 0.into();
        self.is_ext.next = false;
        self.ext_win.next = self.zero_header.val();
        self.ext_word.next = 0.into();
        self.ext_len.next = 0.into();
        self.l4rel.next = 0.into();
        self.avail.next = 0.into();
        self.l4abs.next = 0.into();
        self.l4_win.next = self.zero_header.val();
        self.l4_bytes.next = self.zero128.val();
        self.l4w0.next = 0.into();
        self.l4w4.next = 0.into();
        self.l4w12.next = 0.into();
        self.w0.next = 0.into();
        self.w4.next = 0.into();
        self.w8.next = 0.into();
        self.doff4.next = 0.into();
        self.ulen.next = 0.into();
        self.sport.next = 0.into();
        self.dport.next = 0.into();
        self.flags.next = 0.into();
        self.check_tcp.next = false;
        self.check_udp.next = false;

        // ---- Stage 1: L2. A header moves on only when presented (this
        // also keeps the simulation from parsing on every clock of a long frame).
        self.l2_valid.d.next = self.header_valid.val();
        if self.header_valid.val() {
            // Ethernet and VLAN tags (core: parse_l2).
            // Fields are read as 32-bit words and shifted down: rust-hdl can only widen a
            // narrower slice with a mask that Verilator flags (WIDTH).
            self.et0.next = self
                .header
                .val()
                .get_bits::<32>((self.hb.val() - 128).index())
                >> 16;
            self.et1.next = self
                .header
                .val()
                .get_bits::<32>((self.hb.val() - 160).index())
                >> 16;
            self.et2.next = self
                .header
                .val()
                .get_bits::<32>((self.hb.val() - 192).index())
                >> 16;
            self.ethertype.next = self.et0.val();
            if self.len.val() < 14 {
                self.code.next = 1.into();
            } else if self.et0.val() == 0x8100
                || self.et0.val() == 0x88a8
                || self.et0.val() == 0x9100
            {
                if self.len.val() < 18 {
                    self.code.next = 2.into();
                } else if self.et1.val() == 0x8100
                    || self.et1.val() == 0x88a8
                    || self.et1.val() == 0x9100
                {
                    if self.len.val() < 22 {
                        self.code.next = 2.into();
                    } else if self.et2.val() == 0x8100
                        || self.et2.val() == 0x88a8
                        || self.et2.val() == 0x9100
                    {
                        self.code.next = 3.into();
                    } else {
                        self.vlans.next = 2.into();
                        self.l3.next = 22.into();
                        self.ethertype.next = self.et2.val();
                    }
                } else {
                    self.vlans.next = 1.into();
                    self.l3.next = 18.into();
                    self.ethertype.next = self.et1.val();
                }
            }
            // The IP header on top: three fixed shifts, so later fixed-offset fields cost
            // a 3-way choice each and nothing more.
            if self.vlans.val() == 2 {
                self.win.next = self.header.val() << 176;
            } else if self.vlans.val() == 1 {
                self.win.next = self.header.val() << 144;
            } else {
                self.win.next = self.header.val() << 112;
            }
            self.plen.next = self.len.val() - self.l3.val();
            self.l2_code.d.next = self.code.val();
            self.l2_vlans.d.next = self.vlans.val();
            self.l2_l3.d.next = self.l3.val();
            self.l2_ethertype.d.next = self.ethertype.val();
            self.l2_plen.d.next = self.plen.val() & 0xffff;
            self.l2_win.d.next = self.win.val();
            self.l2_tag.d.next = self.tag.val();
            self.l2_len.d.next = self.len.val() & 0xffff;
        }

        // ---- Stage 2: the IP header's fixed fields and checks.
        self.s_valid[0].d.next = self.l2_valid.q.val();
        if self.l2_valid.q.val() {
            self.code.next = self.l2_code.q.val();
            self.vlans.next = self.l2_vlans.q.val();
            self.l3.next = self.l2_l3.q.val();
            self.ethertype.next = self.l2_ethertype.q.val();
            self.plen.next = self.l2_plen.q.val();
            self.win.next = self.l2_win.q.val();
            self.len.next = self.l2_len.q.val();
            self.w0.next = self.win.val().get_bits::<32>((self.hb.val() - 32).index());
            self.w4.next = self.win.val().get_bits::<32>((self.hb.val() - 64).index());
            self.w8.next = self.win.val().get_bits::<32>((self.hb.val() - 96).index());
            self.b0.next = self.w0.val() >> 24;
            self.b1.next = (self.w0.val() >> 16) & 0xff;

            if self.code.val() == 0 {
                if self.ethertype.val() == 0x0800 {
                    // IPv4 (core: parse_ipv4).
                    self.ihl4.next = (self.b0.val() & 0xf) << 2;
                    self.total.next = self.w0.val() & 0xffff;
                    if self.plen.val() < 20 {
                        self.code.next = 4.into();
                    } else if (self.b0.val() >> 4) != 4 {
                        self.code.next = 5.into();
                    } else if self.ihl4.val() < 20 || self.ihl4.val() > self.plen.val() {
                        self.code.next = 6.into();
                    } else if self.total.val() < self.ihl4.val()
                        || self.total.val() > self.plen.val()
                    {
                        self.code.next = 7.into();
                    } else {
                        self.frag_field.next = self.w4.val() & 0xffff;
                        self.is_fragment.next = (self.frag_field.val() & 0x3fff) != 0;
                        self.upper.next = (self.frag_field.val() & 0x1fff) == 0;
                        self.proto.next = (self.w8.val() >> 16) & 0xff;
                        self.dscp.next = self.b1.val();
                        self.ip_len_l.next = self.total.val();
                        self.l4rel.next = self.ihl4.val();
                        self.avail.next = self.total.val() - self.ihl4.val();
                        self.src_l.next = self
                            .win
                            .val()
                            .get_bits::<128>((self.hb.val() - 224).index())
                            >> 96;
                        self.dst_l.next = self
                            .win
                            .val()
                            .get_bits::<128>((self.hb.val() - 256).index())
                            >> 96;
                    }
                } else if self.ethertype.val() == 0x86dd {
                    // IPv6 (core: parse_ipv6).
                    self.v6.next = true;
                    self.v6_payload.next = self.w4.val() >> 16;
                    // The walk starts at the first header after the fixed one.
                    self.l4rel.next = 40.into();
                    self.avail.next = self.v6_payload.val();
                    if self.plen.val() < 40 {
                        self.code.next = 8.into();
                    } else if (self.b0.val() >> 4) != 6 {
                        self.code.next = 5.into();
                    } else if self.v6_payload.val() + 40 > 0xffff
                        || self.v6_payload.val() + 40 > self.plen.val()
                    {
                        self.code.next = 9.into();
                    } else {
                        self.ip_len_l.next = self.v6_payload.val() + 40;
                        self.dscp.next = ((self.b0.val() << 4) | (self.b1.val() >> 4)) & 0xff;
                        self.src_l.next = self
                            .win
                            .val()
                            .get_bits::<128>((self.hb.val() - 192).index());
                        self.dst_l.next = self
                            .win
                            .val()
                            .get_bits::<128>((self.hb.val() - 320).index());
                        self.proto.next = (self.w4.val() >> 8) & 0xff;
                        self.upper.next = true;
                    }
                } else {
                    self.code.next = 0xff.into();
                }
            }
            self.s_code[0].d.next = self.code.val();
            self.s_vlans[0].d.next = self.vlans.val();
            self.s_l3[0].d.next = self.l3.val();
            self.s_v6[0].d.next = self.v6.val();
            self.s_proto[0].d.next = self.proto.val();
            self.s_upper[0].d.next = self.upper.val();
            self.s_frag[0].d.next = self.is_fragment.val();
            self.s_ip_len[0].d.next = self.ip_len_l.val() & 0xffff;
            self.s_dscp[0].d.next = self.dscp.val();
            self.s_src[0].d.next = self.src_l.val();
            self.s_dst[0].d.next = self.dst_l.val();
            self.s_v6_payload[0].d.next = self.v6_payload.val() & 0xffff;
            self.s_at[0].d.next = 0.into();
            self.s_l4rel[0].d.next = self.l4rel.val() & 0xff;
            self.s_avail[0].d.next = self.avail.val() & 0xffff;
            self.s_win[0].d.next = self.win.val();
            self.s_tag[0].d.next = self.l2_tag.q.val();
            self.s_len[0].d.next = self.len.val() & 0xffff;
        }

        // ---- Stages 3 to 6: one IPv6 extension header each (core: parse_ipv6's walk).
        for s in 0..4 {
            self.code.next = self.s_code[s].q.val();
            self.proto.next = self.s_proto[s].q.val();
            self.at.next = self.s_at[s].q.val();
            self.upper.next = self.s_upper[s].q.val();
            self.is_fragment.next = self.s_frag[s].q.val();
            self.l3.next = self.s_l3[s].q.val();
            // For IPv6: the header's offset from the IP header (`at + 40`) and the payload
            // bytes from it on (`payload - at`, never negative: `at` only grows by what
            // the room check let through).
            self.l4rel.next = self.s_l4rel[s].q.val();
            self.avail.next = self.s_avail[s].q.val();
            self.is_ext.next = self.proto.val() == 0
                || self.proto.val() == 43
                || self.proto.val() == 44
                || self.proto.val() == 60;
            if self.s_v6[s].q.val() && self.code.val() == 0 && self.upper.val() && self.is_ext.val()
            {
                // The read: every extension header is a multiple of 8
                // bytes long, so `at` is, and the header sits at a 64-bit
                // boundary of `win`. Shifting by `{at / 8, 6'b0}` lets yosys
                // build a 4-level mux over 8-byte words instead of a
                // byte-granular 10-level shifter (about 10 k LUT4 each).
                // `at / 8` is taken mod 16: past byte 128 of `win` the
                // value is never used (the window check below fails first).
                self.ext_win.next = self.s_win[s].q.val() << (((self.at.val() >> 3) & 0xf) << 6);
                self.ext_word.next = self
                    .ext_win
                    .val()
                    .get_bits::<32>((self.hb.val() - 352).index());
                if self.proto.val() == 44 {
                    if self.avail.val() < 8 {
                        self.code.next = 10.into();
                    } else if self.l3.val() + self.l4rel.val() + 8 > self.hbytes.val() {
                        // HeaderTooLong, see the module doc.
                        self.code.next = 19.into();
                    } else {
                        self.is_fragment.next = true;
                        self.proto.next = self.ext_word.val() >> 24;
                        self.at.next = self.at.val() + 8;
                        self.l4rel.next = self.l4rel.val() + 8;
                        self.avail.next = self.avail.val() - 8;
                        // Offset != 0: fragment data follows, not headers.
                        if (self.ext_word.val() & 0xfff8) != 0 {
                            self.upper.next = false;
                        }
                    }
                } else if self.avail.val() < 2 {
                    self.code.next = 10.into();
                } else if self.l3.val() + self.l4rel.val() + 2 > self.hbytes.val() {
                    // HeaderTooLong, see the module doc.
                    self.code.next = 19.into();
                } else {
                    self.ext_len.next = (((self.ext_word.val() >> 16) & 0xff) + 1) << 3;
                    if self.ext_len.val() > self.avail.val() {
                        self.code.next = 10.into();
                    } else {
                        self.proto.next = self.ext_word.val() >> 24;
                        self.at.next = self.at.val() + self.ext_len.val();
                        self.l4rel.next = self.l4rel.val() + self.ext_len.val();
                        self.avail.next = self.avail.val() - self.ext_len.val();
                    }
                }
            }
            self.s_valid[s + 1].d.next = self.s_valid[s].q.val();
            if self.s_valid[s].q.val() {
                self.s_code[s + 1].d.next = self.code.val();
                self.s_proto[s + 1].d.next = self.proto.val();
                self.s_at[s + 1].d.next = self.at.val() & 0xffff;
                self.s_upper[s + 1].d.next = self.upper.val();
                self.s_frag[s + 1].d.next = self.is_fragment.val();
                self.s_vlans[s + 1].d.next = self.s_vlans[s].q.val();
                self.s_l3[s + 1].d.next = self.s_l3[s].q.val();
                self.s_v6[s + 1].d.next = self.s_v6[s].q.val();
                self.s_ip_len[s + 1].d.next = self.s_ip_len[s].q.val();
                self.s_dscp[s + 1].d.next = self.s_dscp[s].q.val();
                self.s_src[s + 1].d.next = self.s_src[s].q.val();
                self.s_dst[s + 1].d.next = self.s_dst[s].q.val();
                self.s_v6_payload[s + 1].d.next = self.s_v6_payload[s].q.val();
                self.s_l4rel[s + 1].d.next = self.l4rel.val() & 0xffff;
                self.s_avail[s + 1].d.next = self.avail.val() & 0xffff;
                self.s_win[s + 1].d.next = self.s_win[s].q.val();
                self.s_tag[s + 1].d.next = self.s_tag[s].q.val();
                self.s_len[s + 1].d.next = self.s_len[s].q.val();
            }
        }

        // ---- Stage 7: the end of the walk, the upper-layer header's read and the checks
        // that need none of its fields.
        self.rd_valid.d.next = self.s_valid[4].q.val();
        if self.s_valid[4].q.val() {
            self.code.next = self.s_code[4].q.val();
            self.proto.next = self.s_proto[4].q.val();
            self.upper.next = self.s_upper[4].q.val();
            self.is_fragment.next = self.s_frag[4].q.val();
            self.l3.next = self.s_l3[4].q.val();
            self.l4rel.next = self.s_l4rel[4].q.val();
            self.avail.next = self.s_avail[4].q.val();
            // A fifth extension header is one too many (counted before its length is looked
            // at).
            if self.s_v6[4].q.val()
                && self.code.val() == 0
                && self.upper.val()
                && (self.proto.val() == 0
                    || self.proto.val() == 43
                    || self.proto.val() == 44
                    || self.proto.val() == 60)
            {
                self.code.next = 11.into();
            }

            // The upper-layer header (core: parse_l4), first fragments and whole datagrams.
            if self.code.val() == 0 && self.upper.val() {
                // The read: `l4rel` is a multiple of 4 (IHL words; IPv6 headers of 8-byte
                // units), so `win` shifted by `{l4rel / 4, 5'b0}` puts the L4 header on top:
                // a 5-level mux over 32-bit words, where a byte-granular shift would be a
                // 10-level one (about 10 k LUT4 each; see the extension read). The value is
                // used only when the header lies inside the window (checked below).
                self.l4_win.next = self.s_win[4].q.val() << (((self.l4rel.val() >> 2) & 0x1f) << 5);
                self.l4_bytes.next = self
                    .l4_win
                    .val()
                    .get_bits::<128>((self.hb.val() - 128).index());
                self.l4w0.next = self.l4_bytes.val().get_bits::<32>(96);
                self.l4w4.next = self.l4_bytes.val().get_bits::<32>(64);
                self.l4w12.next = self.l4_bytes.val().get_bits::<32>(0);
                self.sport.next = self.l4w0.val() >> 16;
                self.dport.next = self.l4w0.val() & 0xffff;
                self.ulen.next = self.l4w4.val() >> 16;
                self.doff4.next = (self.l4w12.val() >> 28) << 2;
                self.flags.next = (self.l4w12.val() >> 16) & 0xff;
                // The read's own fields are checked in stage 8 (`check_*`), in the same
                // order: a frame these checks drop never gets there.
                if self.proto.val() == 6 {
                    if self.avail.val() < 20 {
                        self.code.next = 12.into();
                    } else if self.l3.val() + self.l4rel.val() + 20 > self.hbytes.val() {
                        // HeaderTooLong, see the module doc.
                        self.code.next = 19.into();
                    } else {
                        self.check_tcp.next = true;
                    }
                } else if self.proto.val() == 17 {
                    if self.avail.val() < 8 {
                        self.code.next = 14.into();
                    } else if self.l3.val() + self.l4rel.val() + 8 > self.hbytes.val() {
                        // HeaderTooLong, see the module doc.
                        self.code.next = 19.into();
                    } else if !self.is_fragment.val() {
                        self.check_udp.next = true;
                    }
                } else if (self.proto.val() == 1 || self.proto.val() == 58) && self.avail.val() < 4
                {
                    self.code.next = 16.into();
                }
                // Ports only from TCP and UDP.
                if self.proto.val() != 6 && self.proto.val() != 17 {
                    self.sport.next = 0.into();
                    self.dport.next = 0.into();
                }
            }
            self.l4abs.next = self.l3.val() + self.l4rel.val();
            self.rd_code.d.next = self.code.val();
            self.rd_check_tcp.d.next = self.check_tcp.val();
            self.rd_check_udp.d.next = self.check_udp.val();
            self.rd_avail.d.next = self.avail.val() & 0xffff;
            self.rd_doff4.d.next = self.doff4.val() & 0xff;
            self.rd_ulen.d.next = self.ulen.val() & 0xffff;
            self.rd_flags.d.next = self.flags.val() & 0xff;
            self.rd_sport.d.next = self.sport.val() & 0xffff;
            self.rd_dport.d.next = self.dport.val() & 0xffff;
            self.rd_vlans.d.next = self.s_vlans[4].q.val();
            self.rd_l3.d.next = self.l3.val();
            self.rd_l4abs.d.next = self.l4abs.val() & 0xffff;
            self.rd_v6.d.next = self.s_v6[4].q.val();
            self.rd_proto.d.next = self.proto.val();
            self.rd_frag.d.next = self.is_fragment.val();
            self.rd_ip_len.d.next = self.s_ip_len[4].q.val();
            self.rd_dscp.d.next = self.s_dscp[4].q.val();
            self.rd_src.d.next = self.s_src[4].q.val();
            self.rd_dst.d.next = self.s_dst[4].q.val();
            self.rd_tag.d.next = self.s_tag[4].q.val();
            self.rd_len.d.next = self.s_len[4].q.val();
        }

        // ---- Stage 8: the L4 header's own fields (core: parse_l4's checks after the
        // room and window ones), from registers: a 16-bit compare and the result.
        self.valid_reg.d.next = self.rd_valid.q.val();
        if self.rd_valid.q.val() {
            self.code.next = self.rd_code.q.val();
            self.flags.next = 0.into();
            if self.rd_check_tcp.q.val() {
                if self.rd_doff4.q.val() < 20 || self.rd_doff4.q.val() > self.rd_avail.q.val() {
                    self.code.next = 13.into();
                } else {
                    self.flags.next = self.rd_flags.q.val();
                }
            }
            if self.rd_check_udp.q.val()
                && (self.rd_ulen.q.val() < 8 || self.rd_ulen.q.val() > self.rd_avail.q.val())
            {
                self.code.next = 15.into();
            }
            self.result_reg.d.next = self.code.val().get_bits::<8>(0);
            self.vlan_reg.d.next = self.rd_vlans.q.val().get_bits::<2>(0);
            self.l3_reg.d.next = self.rd_l3.q.val().get_bits::<16>(0);
            self.v6_reg.d.next = self.rd_v6.q.val();
            self.src_reg.d.next = self.rd_src.q.val();
            self.dst_reg.d.next = self.rd_dst.q.val();
            self.ip_len_reg.d.next = self.rd_ip_len.q.val().get_bits::<16>(0);
            self.proto_reg.d.next = self.rd_proto.q.val().get_bits::<8>(0);
            self.l4_reg.d.next = self.rd_l4abs.q.val().get_bits::<16>(0);
            self.frag_reg.d.next = self.rd_frag.q.val();
            self.sport_reg.d.next = self.rd_sport.q.val().get_bits::<16>(0);
            self.dport_reg.d.next = self.rd_dport.q.val().get_bits::<16>(0);
            self.flags_reg.d.next = self.flags.val().get_bits::<8>(0);
            self.dscp_reg.d.next = self.rd_dscp.q.val().get_bits::<8>(0);
            self.len_reg.d.next = self.rd_len.q.val().get_bits::<16>(0);
            self.tag_reg.d.next = self.rd_tag.q.val();
        }
        self.busy.next = self.header_valid.val()
            || self.l2_valid.q.val()
            || self.s_valid[0].q.val()
            || self.s_valid[1].q.val()
            || self.s_valid[2].q.val()
            || self.s_valid[3].q.val()
            || self.s_valid[4].q.val()
            || self.rd_valid.q.val()
            || self.valid_reg.q.val();
        self.valid.next = self.valid_reg.q.val();
        self.result.next = self.result_reg.q.val();
        self.vlan_count.next = self.vlan_reg.q.val();
        self.l3_offset.next = self.l3_reg.q.val();
        self.is_v6.next = self.v6_reg.q.val();
        self.src.next = self.src_reg.q.val();
        self.dst.next = self.dst_reg.q.val();
        self.ip_len.next = self.ip_len_reg.q.val();
        self.protocol.next = self.proto_reg.q.val();
        self.l4_offset.next = self.l4_reg.q.val();
        self.fragment.next = self.frag_reg.q.val();
        self.src_port.next = self.sport_reg.q.val();
        self.dst_port.next = self.dport_reg.q.val();
        self.tcp_flags.next = self.flags_reg.q.val();
        self.dscp_ecn.next = self.dscp_reg.q.val();
        self.len_out.next = self.len_reg.q.val();
        self.tag_out.next = self.tag_reg.q.val();
    }
}
