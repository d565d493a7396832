//! The inner datagram's ones' complement sum, taken as a frame enters the frame FIFO, for
//! GUE's UDP checksum under an outer IPv6 header (RFC 8200 §8.1: it covers the whole
//! inner datagram, and the rewriter writes it in the outer header, before the datagram
//! leaves).
//!
//! The datagram is `ip_len` bytes from `l3_offset`, which the parser only knows after the
//! frame's last beat. This block reads just what it needs from the frame's first 28 bytes
//! as they pass: the ethertype and up to two VLAN tags (TPIDs 0x8100, 0x88a8, 0x9100, as
//! `flowgate_core::parse`) give the L3 offset (14, 18 or 22), and the IPv4 total length or
//! 40 + the IPv6 payload length gives the datagram's end. Every byte from 22 up to that end
//! is summed as it streams (big-endian 16-bit words: the L3 offsets are even, so a byte's
//! lane parity is its place in its word); bytes 14..22 are added at the end as far as they
//! belong to the datagram. So Ethernet padding, which the rewrite drops, is not counted.
//!
//! The end is known once byte 27 has passed (the last length field), but a datagram
//! cannot end before byte 34 (a 20-byte IPv4 header behind 14 bytes), so bytes 22..34
//! are always summed and the end is first needed at byte 34: on a 64-bit stream its beat
//! comes after byte 27's; on wider streams both sit in one beat and the fields are read
//! from that beat directly.
//!
//! On frames the parser rejects (not IP, lengths that do not fit) the sum is meaningless,
//! and no rewrite reads it: only a GUE forward to an IPv6 backend does, and only frames
//! the parser accepted are forwarded.
//!
//! Five stages, so no path runs from the header bytes to the running sum in one clock
//! (together they were the whole top's slowest path, 66 logic levels), and no clock holds
//! more than one carry chain of note:
//! 0. registers the header bytes as this beat shows them (its lanes where it carries
//!    them, else as kept: a mux on a 3-bit saturating beat number) with the beat, and
//!    which of the beat's lanes are byte 22 or later;
//! 1. computes the datagram's end (and the L3 bytes' sum) from that registered view;
//! 2. masks the registered beat to the bytes before the end: one subtraction (the bytes
//!    left, `end − beat's place`) compared with each lane's constant place, instead of a
//!    sum and a comparison per word;
//! 3. adds the masked words as a balanced adder tree;
//! 4. adds the beat's sum into the running sum.
//!
//! The end is computed for the three L2 layouts side by side (no tag, one, two), each with
//! its own ethertype check, and the tags pick one.
//!
//! Timing: `sum_valid` is high for one clock, five clocks after the frame's `tlast` beat is
//! taken (`LATENCY`), with `sum` (unfolded: at most `ip_len / 2 · 0xFFFF`, within 32 bits
//! for any frame the FIFO holds). Positions are 32-bit and below 2³¹ (frames are far
//! shorter), so `end − place` is negative exactly when its bit 31 is set.

use rust_hdl::prelude::*;

/// Frame bytes 12..28 are read: ethertype / TPIDs at 12, 16, 20; the IP header's first
/// bytes behind up to two tags.
const HEADER_FROM: usize = 12;
const HEADER_BYTES: usize = 16;
/// Per L2 layout (no tag, one, two): the L3 offset. The ethertype is at `L3 − 2`, the
/// IPv4 total length at `L3 + 2`, the IPv6 payload length at `L3 + 4`.
const LAYOUT_L3: [usize; 3] = [14, 18, 22];
/// No datagram ends before byte 34 (a 20-byte IPv4 header behind 14 bytes).
const MIN_END: usize = 34;

/// Clocks from the edge that takes a frame's `tlast` beat to the clock whose `sum_valid`
/// is high, counting that clock (1 would be the clock right after it).
pub const LATENCY: usize = 5;

/// The summer on a `DATA_BITS`-wide stream (`KEEP_BITS = DATA_BITS / 8`).
#[derive(LogicBlock)]
pub struct InnerSum<const DATA_BITS: usize, const KEEP_BITS: usize> {
    pub clock: Signal<In, Clock>,
    pub tdata: Signal<In, Bits<DATA_BITS>>,
    pub tkeep: Signal<In, Bits<KEEP_BITS>>,
    pub tlast: Signal<In, Bit>,
    /// The beat is taken (`tvalid` and `tready`).
    pub take: Signal<In, Bit>,
    /// One clock, the clock after a frame's last beat is taken.
    pub sum_valid: Signal<Out, Bit>,
    /// The frame's inner datagram summed as big-endian 16-bit words, unfolded.
    pub sum: Signal<Out, Bits<32>>,

    zero: Constant<Bits<32>>,
    zero_view: Constant<Bits<128>>,
    zero_beat: Constant<Bits<DATA_BITS>>,
    byte_mask: Constant<Bits<DATA_BITS>>,
    keep_bytes: Constant<Bits<32>>,
    /// Lane `b`'s place in its beat: `b`.
    lane_at: [Constant<Bits<32>>; KEEP_BITS],
    /// The lanes of beat `k` (0, 1, 2) that are byte 22 or later (one bit a lane); from
    /// beat 3 on, all (22 < 3 · 8). `lane_mask[b]` selects lane `b`'s byte in a beat.
    from_beat: [Constant<Bits<KEEP_BITS>>; 3],
    beat_no: [Constant<Bits<3>>; 3],
    /// The beat number saturates here (above every header byte's beat: 27 / 8 = 3).
    beat_max: Constant<Bits<3>>,
    zero_beat_no: Constant<Bits<3>>,
    all_lanes: Constant<Bits<KEEP_BITS>>,
    lane_mask: [Constant<Bits<DATA_BITS>>; KEEP_BITS],
    /// Header byte `HEADER_FROM + i`: its beat, its lane shift, its place in `view`.
    hb_beat: [Constant<Bits<3>>; HEADER_BYTES],
    hb_shift: [Constant<Bits<32>>; HEADER_BYTES],
    hb_place: [Constant<Bits<32>>; HEADER_BYTES],
    tpid_vlan: Constant<Bits<32>>,
    tpid_qinq: Constant<Bits<32>>,
    tpid_qinq_old: Constant<Bits<32>>,
    ethertype_v6: Constant<Bits<32>>,
    /// `LAYOUT_L3`.
    layout_l3: [Constant<Bits<32>>; 3],
    v6_header: Constant<Bits<32>>,
    /// Before which no datagram ends.
    min_end: Constant<Bits<32>>,
    /// Per layout, the IPv4 total length below which the end is `min_end` (`34 − L3`):
    /// compared with the field itself, beside the add, not with its sum after it.
    layout_short_v4: [Constant<Bits<32>>; 3],

    in_frame: DFF<Bit>,
    /// The beat's number in its frame, saturating at `beat_max`.
    beat: DFF<Bits<3>>,
    beat_pos: DFF<Bits<32>>,
    hdr: [DFF<Bits<8>>; HEADER_BYTES],
    /// Stage 0's registers: the header view, the beat as taken, where it starts in the
    /// frame, whether it is the frame's first, its lanes from byte 22.
    v_view: DFF<Bits<128>>,
    v_take: DFF<Bit>,
    v_last: DFF<Bit>,
    v_first: DFF<Bit>,
    v_data: DFF<Bits<DATA_BITS>>,
    v_keep: DFF<Bits<KEEP_BITS>>,
    v_pos: DFF<Bits<32>>,
    v_from: DFF<Bits<KEEP_BITS>>,
    /// Stage 1's registers: the beat as taken, where it starts in the frame, whether it is
    /// the frame's first, the datagram's end and the L3 bytes' sum seen from it.
    s_take: DFF<Bit>,
    s_last: DFF<Bit>,
    s_first: DFF<Bit>,
    s_data: DFF<Bits<DATA_BITS>>,
    s_keep: DFF<Bits<KEEP_BITS>>,
    s_pos: DFF<Bits<32>>,
    s_end: DFF<Bits<32>>,
    s_extra: DFF<Bits<32>>,
    /// Bit `b`: the beat's lane `b` is byte 22 or later.
    s_from: DFF<Bits<KEEP_BITS>>,
    /// Stage 2's: the beat with every byte outside the datagram's 22.. part zeroed.
    t_take: DFF<Bit>,
    t_last: DFF<Bit>,
    t_first: DFF<Bit>,
    t_data: DFF<Bits<DATA_BITS>>,
    t_extra: DFF<Bits<32>>,
    /// Stage 3's: the masked beat's sum.
    u_take: DFF<Bit>,
    u_last: DFF<Bit>,
    u_first: DFF<Bit>,
    u_sum: DFF<Bits<32>>,
    u_extra: DFF<Bits<32>>,
    /// Stage 4's: the sum so far, the frame's L3 bytes' sum, the frame is summed.
    acc: DFF<Bits<32>>,
    extra: DFF<Bits<32>>,
    done: DFF<Bit>,

    cur_beat: Signal<Local, Bits<3>>,
    cur_pos: Signal<Local, Bits<32>>,
    lane: Signal<Local, Bits<DATA_BITS>>,
    hbyte: Signal<Local, Bits<8>>,
    /// Header bytes 12..28 as seen now (this beat's where it has them), byte 12 in bits
    /// 7..0.
    view: Signal<Local, Bits<128>>,
    /// The registered view's big-endian 16-bit fields: field `f` is frame bytes `12 + 2f`
    /// and `13 + 2f`. Every field read is one of them: ethertypes and TPIDs at 12, 16, 20
    /// (fields 0, 2, 4), lengths at L3 + 2 and L3 + 4, bytes 14..22 (fields 1..5).
    field: [Signal<Local, Bits<32>>; 8],
    tag0: Signal<Local, Bit>,
    tag1: Signal<Local, Bit>,
    ethertype: Signal<Local, Bits<32>>,
    len_v4: Signal<Local, Bits<32>>,
    len_v6: Signal<Local, Bits<32>>,
    /// The datagram's end under each L2 layout, at least `min_end`.
    layout_end: [Signal<Local, Bits<32>>; 3],
    dgram_end: Signal<Local, Bits<32>>,
    /// A big-endian 16-bit field's bytes.
    byte_hi: Signal<Local, Bits<8>>,
    byte_lo: Signal<Local, Bits<8>>,
    from_mask: Signal<Local, Bits<KEEP_BITS>>,
    /// Stage 2: the datagram's bytes left from the beat's first (negative: bit 31), the
    /// lanes kept.
    left: Signal<Local, Bits<32>>,
    data_mask: Signal<Local, Bits<DATA_BITS>>,
    /// The adder tree over the masked beat's words: word `w`'s masked term starts in
    /// slot `w`, and each level adds slots `2j` and `2j + 1` into slot `j` (ascending, so
    /// a slot is overwritten only after both were read); the beat's sum ends in slot 0.
    /// Slots from `KEEP_BITS / 2` up stay zero.
    slot: [Signal<Local, Bits<32>>; KEEP_BITS],
    head_a: Signal<Local, Bits<32>>,
    head_b: Signal<Local, Bits<32>>,
}

impl<const DATA_BITS: usize, const KEEP_BITS: usize> Default for InnerSum<DATA_BITS, KEEP_BITS> {
    fn default() -> Self {
        assert!(
            KEEP_BITS * 8 == DATA_BITS && KEEP_BITS.is_multiple_of(2),
            "whole 16-bit words a beat, one keep bit a byte"
        );
        assert!(
            KEEP_BITS.is_power_of_two() && (4..=64).contains(&KEEP_BITS),
            "the words' adder tree: 2 to 32 words (five levels), a power of two"
        );
        let bits32 = |v: usize| Constant::new((v as u64).into());
        let bits3 = |v: usize| Constant::new((v as u64).into());
        assert!(
            (HEADER_FROM + HEADER_BYTES) / KEEP_BITS < 7,
            "header beats below the saturation"
        );
        assert!(
            (0..3).all(|c| LAYOUT_L3[c] == HEADER_FROM + 2 + 4 * c),
            "`update` reads layout c's fields as view fields 2c, 2c + 2, 2c + 3"
        );
        assert!(
            3 * KEEP_BITS >= 22,
            "from beat 3 on every lane is byte 22 or later (`from_beat` covers beats 0..3)"
        );
        Self {
            clock: Default::default(),
            tdata: Default::default(),
            tkeep: Default::default(),
            tlast: Default::default(),
            take: Default::default(),
            sum_valid: Default::default(),
            sum: Default::default(),
            zero: bits32(0),
            zero_view: Constant::new(Bits::default()),
            zero_beat: Constant::new(Bits::default()),
            byte_mask: Constant::new(0xff_u64.into()),
            keep_bytes: bits32(KEEP_BITS),
            lane_at: std::array::from_fn(bits32),
            from_beat: std::array::from_fn(|k| {
                let mut lanes = Bits::<KEEP_BITS>::default();
                for b in 0..KEEP_BITS {
                    lanes = lanes.replace_bit(b, k * KEEP_BITS + b >= 22);
                }
                Constant::new(lanes)
            }),
            beat_no: std::array::from_fn(bits3),
            beat_max: bits3(7),
            zero_beat_no: bits3(0),
            all_lanes: Constant::new(!Bits::<KEEP_BITS>::default()),
            lane_mask: std::array::from_fn(|b| {
                Constant::new(Bits::<DATA_BITS>::from(0xff_u64) << (8 * b as u64))
            }),
            hb_beat: std::array::from_fn(|i| bits3((HEADER_FROM + i) / KEEP_BITS)),
            hb_shift: std::array::from_fn(|i| bits32(8 * ((HEADER_FROM + i) % KEEP_BITS))),
            hb_place: std::array::from_fn(|i| bits32(8 * i)),
            tpid_vlan: bits32(flowgate_core::parse::ETHERTYPE_VLAN.into()),
            tpid_qinq: bits32(flowgate_core::parse::ETHERTYPE_QINQ.into()),
            tpid_qinq_old: bits32(flowgate_core::parse::ETHERTYPE_QINQ_OLD.into()),
            ethertype_v6: bits32(flowgate_core::parse::ETHERTYPE_IPV6.into()),
            layout_l3: LAYOUT_L3.map(bits32),
            v6_header: bits32(40),
            min_end: bits32(MIN_END),
            layout_short_v4: LAYOUT_L3.map(|l3| bits32(MIN_END - l3)),
            in_frame: Default::default(),
            beat: Default::default(),
            beat_pos: Default::default(),
            hdr: Default::default(),
            v_view: Default::default(),
            v_take: Default::default(),
            v_last: Default::default(),
            v_first: Default::default(),
            v_data: Default::default(),
            v_keep: Default::default(),
            v_pos: Default::default(),
            v_from: Default::default(),
            s_take: Default::default(),
            s_last: Default::default(),
            s_first: Default::default(),
            s_data: Default::default(),
            s_keep: Default::default(),
            s_pos: Default::default(),
            s_end: Default::default(),
            s_extra: Default::default(),
            s_from: Default::default(),
            t_take: Default::default(),
            t_last: Default::default(),
            t_first: Default::default(),
            t_data: Default::default(),
            t_extra: Default::default(),
            u_take: Default::default(),
            u_last: Default::default(),
            u_first: Default::default(),
            u_sum: Default::default(),
            u_extra: Default::default(),
            acc: Default::default(),
            extra: Default::default(),
            done: Default::default(),
            cur_beat: Default::default(),
            cur_pos: Default::default(),
            lane: Default::default(),
            hbyte: Default::default(),
            view: Default::default(),
            field: Default::default(),
            tag0: Default::default(),
            tag1: Default::default(),
            ethertype: Default::default(),
            len_v4: Default::default(),
            len_v6: Default::default(),
            layout_end: Default::default(),
            dgram_end: Default::default(),
            byte_hi: Default::default(),
            byte_lo: Default::default(),
            from_mask: Default::default(),
            left: Default::default(),
            data_mask: Default::default(),
            slot: std::array::from_fn(|_| Default::default()),
            head_a: Default::default(),
            head_b: Default::default(),
        }
    }
}

impl<const DATA_BITS: usize, const KEEP_BITS: usize> Logic for InnerSum<DATA_BITS, KEEP_BITS> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, in_frame, beat, beat_pos, v_view, v_take, v_last, v_first, v_data, v_keep,
            v_pos, v_from, s_take, s_last, s_first, s_data, s_keep, s_pos, s_end, s_extra, s_from,
            t_take, t_last, t_first, t_data, t_extra, u_take, u_last, u_first, u_sum, u_extra, acc,
            extra, done
        );
        for i in 0..HEADER_BYTES {
            self.hdr[i].clock.next = self.clock.val();
            self.hdr[i].d.next = self.hdr[i].q.val();
        }
        self.done.d.next = false;
        self.cur_beat.next = self.zero_beat_no.val();
        self.cur_pos.next = self.zero.val();
        if self.in_frame.q.val() {
            self.cur_beat.next = self.beat.q.val();
            self.cur_pos.next = self.beat_pos.q.val();
        }

        // ---- Header bytes 12..28: from this beat where it carries them, else as kept.
        self.view.next = self.zero_view.val();
        for i in 0..HEADER_BYTES {
            self.lane.next = (self.tdata.val() >> self.hb_shift[i].val()) & self.byte_mask.val();
            self.hbyte.next = self.hdr[i].q.val();
            if self.cur_beat.val() == self.hb_beat[i].val() {
                self.hbyte.next = self.lane.val().get_bits::<8>(0);
                if self.take.val() {
                    self.hdr[i].d.next = self.lane.val().get_bits::<8>(0);
                }
            }
            self.view.next =
                self.view.val() | (bit_cast::<128, 8>(self.hbyte.val()) << self.hb_place[i].val());
        }
        self.from_mask.next = self.all_lanes.val();
        for k in 0..3 {
            if self.cur_beat.val() == self.beat_no[k].val() {
                self.from_mask.next = self.from_beat[k].val();
            }
        }
        self.v_view.d.next = self.view.val();
        self.v_take.d.next = self.take.val();
        self.v_last.d.next = self.tlast.val();
        self.v_first.d.next = !self.in_frame.q.val();
        self.v_data.d.next = self.tdata.val();
        self.v_keep.d.next = self.tkeep.val();
        self.v_pos.d.next = self.cur_pos.val();
        self.v_from.d.next = self.from_mask.val();
        if self.take.val() {
            self.beat.d.next = self.cur_beat.val();
            if self.cur_beat.val() != self.beat_max.val() {
                self.beat.d.next = self.cur_beat.val() + 1;
            }
            self.beat_pos.d.next = self.cur_pos.val() + self.keep_bytes.val();
            self.in_frame.d.next = !self.tlast.val();
        }

        // ---- Stage 1: the datagram's end and the L3 bytes' sum, from the registered
        // view.
        for f in 0..(HEADER_BYTES / 2) {
            self.byte_hi.next = self.v_view.q.val().get_bits::<8>(16 * f);
            self.byte_lo.next = self.v_view.q.val().get_bits::<8>(16 * f + 8);
            self.field[f].next = (bit_cast::<32, 8>(self.byte_hi.val()) << 8)
                | bit_cast::<32, 8>(self.byte_lo.val());
        }
        self.tag0.next = (self.field[0].val() == self.tpid_vlan.val())
            | (self.field[0].val() == self.tpid_qinq.val())
            | (self.field[0].val() == self.tpid_qinq_old.val());
        self.tag1.next = self.tag0.val()
            & ((self.field[2].val() == self.tpid_vlan.val())
                | (self.field[2].val() == self.tpid_qinq.val())
                | (self.field[2].val() == self.tpid_qinq_old.val()));
        // The bytes 14..22 that belong to the datagram (A: 14..18, B: 18..22).
        self.head_a.next = self.field[1].val() + self.field[2].val();
        self.head_b.next = self.field[3].val() + self.field[4].val();
        // The datagram's end under each layout `c` (L3 = 14 + 4c, field 2c the ethertype):
        // L3 + the IPv4 total length (field 2c + 2), or L3 + 40 + the IPv6 payload length
        // (field 2c + 3).
        for c in 0..3 {
            self.ethertype.next = self.field[2 * c].val();
            self.len_v4.next = self.field[2 * c + 2].val();
            self.len_v6.next = self.field[2 * c + 3].val();
            // An IPv6 end (L3 + 40 + length ≥ 54) is never below `min_end`, so the clamp
            // is the IPv4 length's alone.
            self.layout_end[c].next = self.layout_l3[c].val() + self.len_v4.val();
            if self.len_v4.val() < self.layout_short_v4[c].val() {
                self.layout_end[c].next = self.min_end.val();
            }
            if self.ethertype.val() == self.ethertype_v6.val() {
                self.layout_end[c].next =
                    self.layout_l3[c].val() + self.v6_header.val() + self.len_v6.val();
            }
        }
        self.dgram_end.next = self.layout_end[0].val();
        if self.tag1.val() {
            self.dgram_end.next = self.layout_end[2].val();
        } else if self.tag0.val() {
            self.dgram_end.next = self.layout_end[1].val();
        }

        self.s_take.d.next = self.v_take.q.val();
        self.s_last.d.next = self.v_last.q.val();
        self.s_first.d.next = self.v_first.q.val();
        self.s_data.d.next = self.v_data.q.val();
        self.s_keep.d.next = self.v_keep.q.val();
        self.s_pos.d.next = self.v_pos.q.val();
        self.s_end.d.next = self.dgram_end.val();
        self.s_extra.d.next = self.zero.val();
        if !self.tag0.val() {
            self.s_extra.d.next = self.head_a.val() + self.head_b.val();
        } else if !self.tag1.val() {
            self.s_extra.d.next = self.head_b.val();
        }
        self.s_from.d.next = self.v_from.q.val();

        // ---- Stage 2: the registered beat's bytes from byte 22 to the end, kept lanes
        // only: lane `b` is in when it is byte 22 or later and `b < left`.
        self.left.next = self.s_end.q.val() - self.s_pos.q.val();
        self.data_mask.next = self.zero_beat.val();
        for b in 0..KEEP_BITS {
            if self.s_from.q.val().get_bit(b)
                & !self.left.val().get_bit(31)
                & (self.lane_at[b].val() < self.left.val())
                & self.s_keep.q.val().get_bit(b)
            {
                self.data_mask.next = self.data_mask.val() | self.lane_mask[b].val();
            }
        }
        self.t_take.d.next = self.s_take.q.val();
        self.t_last.d.next = self.s_last.q.val();
        self.t_first.d.next = self.s_first.q.val();
        self.t_data.d.next = self.s_data.q.val() & self.data_mask.val();
        self.t_extra.d.next = self.s_extra.q.val();

        // ---- Stage 3: the masked beat's big-endian words, summed as a tree.
        for j in 0..KEEP_BITS {
            self.slot[j].next = self.zero.val();
        }
        for w in 0..(KEEP_BITS / 2) {
            self.byte_hi.next = self.t_data.q.val().get_bits::<8>(16 * w);
            self.byte_lo.next = self.t_data.q.val().get_bits::<8>(16 * w + 8);
            self.slot[w].next = (bit_cast::<32, 8>(self.byte_hi.val()) << 8)
                | bit_cast::<32, 8>(self.byte_lo.val());
        }
        // Five levels cover 32 words (512 bits); a level past log2(KEEP_BITS / 2) runs no
        // iteration. (hdl_gen takes no loop bound that names another loop index.)
        for j in 0..(KEEP_BITS >> 2) {
            self.slot[j].next = self.slot[2 * j].val() + self.slot[2 * j + 1].val();
        }
        for j in 0..(KEEP_BITS >> 3) {
            self.slot[j].next = self.slot[2 * j].val() + self.slot[2 * j + 1].val();
        }
        for j in 0..(KEEP_BITS >> 4) {
            self.slot[j].next = self.slot[2 * j].val() + self.slot[2 * j + 1].val();
        }
        for j in 0..(KEEP_BITS >> 5) {
            self.slot[j].next = self.slot[2 * j].val() + self.slot[2 * j + 1].val();
        }
        for j in 0..(KEEP_BITS >> 6) {
            self.slot[j].next = self.slot[2 * j].val() + self.slot[2 * j + 1].val();
        }
        self.u_take.d.next = self.t_take.q.val();
        self.u_last.d.next = self.t_last.q.val();
        self.u_first.d.next = self.t_first.q.val();
        self.u_sum.d.next = self.slot[0].val();
        self.u_extra.d.next = self.t_extra.q.val();

        // ---- Stage 4: the running sum.
        if self.u_take.q.val() {
            self.acc.d.next = self.acc.q.val() + self.u_sum.q.val();
            if self.u_first.q.val() {
                self.acc.d.next = self.u_sum.q.val();
            }
            self.extra.d.next = self.u_extra.q.val();
            self.done.d.next = self.u_last.q.val();
        }
        self.sum_valid.next = self.done.q.val();
        self.sum.next = self.acc.q.val() + self.extra.q.val();
    }
}

/// The 64-bit build.
pub type SmallInnerSum = InnerSum<64, 8>;
/// The 512-bit build.
pub type WideInnerSum = InnerSum<512, 64>;

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_core::parse::{parse, Parsed};

    /// The datagram's sum as the rewrite's contract defines it (big-endian words, an odd
    /// last byte high).
    fn expected(frame: &[u8]) -> Option<u32> {
        let Ok(Parsed::Ip(p)) = parse(frame) else {
            return None;
        };
        let (l3, len) = (usize::from(p.l3_offset), usize::from(p.ip_len));
        Some(
            frame[l3..l3 + len]
                .chunks(2)
                .map(|w| u32::from(w[0]) << 8 | u32::from(w.get(1).copied().unwrap_or(0)))
                .sum(),
        )
    }

    /// Streams `frames` back to back (beat `j` of a frame: bytes `j·K..`), with `gaps` a
    /// clock of garbage not taken after every third beat, and returns the sums in order,
    /// each with the clocks from its `tlast` beat's to the clock its `sum_valid` was seen.
    fn run<const D: usize, const K: usize>(frames: &[Vec<u8>], gaps: bool) -> Vec<(u32, u64)> {
        let mut uut = InnerSum::<D, K>::default();
        uut.connect_all();
        let mut beats = Vec::new();
        for f in frames {
            let chunks: Vec<&[u8]> = f.chunks(K).collect();
            for (j, chunk) in chunks.iter().enumerate() {
                let mut data = Bits::<D>::default();
                let mut keep = Bits::<K>::default();
                for (q, &b) in chunk.iter().enumerate() {
                    data.set_bits::<8>(8 * q, u64::from(b).into());
                    keep = keep.replace_bit(q, true);
                }
                beats.push((data, keep, j + 1 == chunks.len(), true));
                if gaps && beats.len() % 4 == 3 {
                    beats.push((!Bits::<D>::default(), !Bits::<K>::default(), true, false));
                }
            }
        }
        let total = beats.len();
        let mut sim = Simulation::new();
        let sums = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = sums.clone();
        sim.add_clock(5, |x: &mut Box<InnerSum<D, K>>| {
            x.clock.next = !x.clock.val()
        });
        sim.add_testbench(move |mut sim: Sim<InnerSum<D, K>>| {
            let mut x = sim.init()?;
            let mut now = 0u64;
            // The clocks of the `tlast` beats whose sums are still to come.
            let mut last_at = std::collections::VecDeque::new();
            for &(data, keep, last, take) in beats
                .iter()
                .chain([(Bits::<D>::default(), Bits::<K>::default(), false, false); 4].iter())
            {
                x.tdata.next = data;
                x.tkeep.next = keep;
                x.tlast.next = last;
                x.take.next = take;
                if take && last {
                    last_at.push_back(now);
                }
                wait_clock_cycle!(sim, clock, x);
                now += 1;
                if x.sum_valid.val() {
                    out.lock().unwrap().push((
                        x.sum.val().index() as u32,
                        now - last_at.pop_front().unwrap_or(now),
                    ));
                }
            }
            sim.done(x)
        });
        sim.run(Box::new(uut), 10 * (total as u64 + 8))
            .expect("simulation runs");
        let v = sums.lock().unwrap().clone();
        v
    }

    #[test]
    fn sums_the_datagram_of_every_parsed_frame_of_a_trace() {
        use flowgate_traces::{generate_trace, TraceSpec, VipTarget};
        use std::net::{Ipv4Addr, Ipv6Addr};
        let vips = vec![
            VipTarget::tcp(Ipv4Addr::new(192, 0, 2, 10).into(), 443),
            VipTarget::udp("2001:db8::53".parse::<Ipv6Addr>().unwrap().into(), 0),
        ];
        let trace = generate_trace(&TraceSpec::mixed(vips, 150)).expect("valid spec");
        let mut frames: Vec<Vec<u8>> = trace.frames.into_iter().map(|f| f.data).collect();
        // Ethernet padding (not summed) behind a short datagram, and an odd length.
        let mut padded = frames
            .iter()
            .find(|f| expected(f).is_some())
            .expect("an IP frame")
            .clone();
        padded.extend_from_slice(&[0xab; 7]);
        frames.push(padded);
        let want: Vec<Option<u32>> = frames.iter().map(|f| expected(f)).collect();
        assert!(want.iter().filter(|w| w.is_some()).count() > 100);
        for (got, gaps) in [
            (run::<64, 8>(&frames, false), false),
            (run::<64, 8>(&frames, true), true),
            (run::<512, 64>(&frames, false), false),
            (run::<512, 64>(&frames, true), true),
        ] {
            assert_eq!(got.len(), frames.len(), "one sum a frame (gaps: {gaps})");
            for (i, ((g, after), w)) in got.iter().zip(&want).enumerate() {
                // The top's bound on the sums FIFO and its stage A's pop rely on this.
                assert_eq!(
                    *after, LATENCY as u64,
                    "frame {i}'s sum_valid (gaps: {gaps})"
                );
                if let Some(w) = w {
                    assert_eq!(g, w, "frame {i} (gaps: {gaps})");
                }
            }
        }
    }

    /// Both widths pass Verilator's lint (WIDTH waived: rust-hdl's only widening,
    /// `bit_cast`, emits a mask wider than its operand) and synthesize in yosys with the
    /// state this module keeps: the 16 header bytes, the sum, the L3 bytes' sum, the beat
    /// counters.
    #[test]
    fn both_widths_lint_and_synthesize() {
        use crate::toolchain::{verilator_lint, yosys_synth, SynthFlow, RUST_HDL_LINT_WAIVERS};
        let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
        waivers.push("WIDTH");
        // UNUSEDSIGNAL: `lane` is a beat-wide local of which the low byte is read (the rest
        // is masked to zero by construction), and the adder tree's slots from
        // `KEEP_BITS / 2` up are never read.
        waivers.push("UNUSEDSIGNAL");
        for verilog in [
            crate::emit(SmallInnerSum::default()),
            crate::emit(WideInnerSum::default()),
        ] {
            verilator_lint(&verilog, "top", &waivers).unwrap();
            let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
            println!("generic synth: {report}");
            assert!(report.flip_flops() >= 16 * 8 + 32, "{report}");
        }
    }
}
