//! Stage 0 — header capture: the first bytes of every frame on an AXI4-Stream, gathered
//! into one wide header vector, with the frame's length.
//!
//! The parser ([`crate::parse`]) needs the whole header at once to take one frame per
//! clock; the stream delivers it a beat at a time. [`HeaderCapture`] writes beat `b` of a
//! frame into bytes `[b × D, (b + 1) × D)` of a `HEADER_BITS`-wide register (`D` = bytes
//! per beat) while `b` is inside it, counts every byte the frame has, and on the beat with
//! `tlast` presents the header and the length for exactly one clock (`header_valid`).
//!
//! # Stream conventions
//! * Lane order as AXI4-Stream defines it: byte 0 of a beat is `tdata[7:0]`, and `tkeep`
//!   bit `j` says byte `j` is present. Null bytes (`tkeep` 0) are zeroed before they are
//!   stored and not counted, so the length is right for any `tkeep`, not only for the
//!   usual "all ones but the last beat".
//! * `tready` is always high: the block only watches the stream (the payload goes to a
//!   FIFO beside it), and the parser behind it takes a header every clock, so back-to-back
//!   one-beat frames give one header per clock.
//! * A beat with `tvalid` high and no byte kept still counts as a beat of the frame (the
//!   stream's framing is `tlast`, not the data).
//!
//! # The header vector
//! Byte 0 of the frame sits in the top 8 bits (as in [`crate::hash::left_aligned`]), so a
//! field at a given frame offset has a fixed bit position whatever the bus width. Bytes the
//! frame does not have are zero. A frame longer than the vector keeps its first
//! `HEADER_BITS / 8` bytes; the parser's window rule says what that means for the verdict.
//!
//! # Length
//! 16 bits, saturating at 65 535. Saturation changes no verdict: every length the parser
//! compares the frame length with (IPv4 total length, 40 + IPv6 payload length) is at most
//! 65 535 too, so "more than the frame holds" has the same answer.
//!
//! # Timing
//! One register stage: `header`, `frame_len` and `header_valid` change one rising edge after
//! the `tlast` beat is accepted. The next frame may start on that same edge.

use rust_hdl::prelude::*;

/// Bytes of the header vector the pipeline uses ([`FlowHeaderCapture`], [`crate::parse`]).
pub const HEADER_BYTES: usize = 128;
/// Bits of that header vector.
pub const HEADER_BITS: usize = HEADER_BYTES * 8;
/// The AXI4-Stream data width of the small-FPGA build.
pub const AXIS_DATA_BITS: usize = 64;

/// Captures the first `HEADER_BITS / 8` bytes and the length of each frame of a
/// `DATA_BITS`-wide AXI4-Stream (`KEEP_BITS = DATA_BITS / 8`).
///
/// `HEADER_BITS` must be a multiple of `DATA_BITS`, and `DATA_BITS` a multiple of 8 with
/// `KEEP_BITS` its byte count; [`Default`] asserts this, as rust-hdl widgets do.
#[derive(LogicBlock)]
pub struct HeaderCapture<const DATA_BITS: usize, const KEEP_BITS: usize, const HEADER_BITS: usize> {
    pub clock: Signal<In, Clock>,
    pub tdata: Signal<In, Bits<DATA_BITS>>,
    pub tkeep: Signal<In, Bits<KEEP_BITS>>,
    pub tlast: Signal<In, Bit>,
    pub tvalid: Signal<In, Bit>,
    pub tready: Signal<Out, Bit>,
    /// The first bytes of the last frame, byte 0 in the top bits, zeros past its end.
    pub header: Signal<Out, Bits<HEADER_BITS>>,
    /// Bytes in the last frame, saturating at 65 535. 32 bits wide, like every length in
    /// the parser: rust-hdl emits literals 32 bits wide, and a narrower signal beside them
    /// is a Verilator WIDTH warning.
    pub frame_len: Signal<Out, Bits<32>>,
    /// High for the one clock in which `header` and `frame_len` describe a frame that just
    /// ended.
    pub header_valid: Signal<Out, Bit>,
    // Numbers the body needs (hdl_gen would emit a const-generic name verbatim).
    /// Shift that puts lane 0 of a beat in the top byte of the beat.
    lane_top: Constant<Bits<32>>,
    /// Shift that puts a beat in the top `DATA_BITS` of the header vector.
    beat_top: Constant<Bits<32>>,
    /// Beats that fit in the header vector.
    beats_in_header: Constant<Bits<32>>,
    byte_mask: Constant<Bits<DATA_BITS>>,
    zero_data: Constant<Bits<DATA_BITS>>,
    zero_header: Constant<Bits<HEADER_BITS>>,
    zero: Constant<Bits<32>>,
    len_max: Constant<Bits<32>>,
    data_bits: Constant<Bits<32>>,
    slot_mask: Constant<Bits<DATA_BITS>>,
    one_slot: Constant<Bits<DATA_BITS>>,
    zero_pop: Constant<Bits<DATA_BITS>>,
    len_mask: Constant<Bits<32>>,
    count_mask: Constant<Bits<32>>,
    /// The beat, null bytes zeroed and byte order reversed (lane 0 on top).
    beat_bytes: Signal<Local, Bits<DATA_BITS>>,
    /// The beat in the top bits of a header-wide vector.
    beat_wide: Signal<Local, Bits<HEADER_BITS>>,
    /// The bytes kept in this beat, counted as a tree of adds: lane `j`'s bit starts in
    /// the 8-bit slot `j`, and each level adds slots `2j` and `2j + 1` into slot `j`, so
    /// the count is slot 0 after log2(`KEEP_BITS`) levels of narrow adds (a chain of
    /// `KEEP_BITS` increments on 32 bits was the capture's critical path).
    pop: Signal<Local, Bits<DATA_BITS>>,
    kept: Signal<Local, Bits<32>>,
    /// Header and length before this beat: zero on a frame's first beat.
    header_so_far: Signal<Local, Bits<HEADER_BITS>>,
    len_so_far: Signal<Local, Bits<32>>,
    sat_so_far: Signal<Local, Bit>,
    beat_index: Signal<Local, Bits<32>>,
    /// Bit 16 says the frame has passed 65 535 bytes. (32 bits wide as every length here,
    /// but only 17 are live: `len_reg` keeps 16, so yosys drops the constant rest.)
    len_sum: Signal<Local, Bits<32>>,
    header_reg: DFF<Bits<HEADER_BITS>>,
    /// The length so far, modulo 2^16, and whether it ever passed 65 535 (sticky): the
    /// saturation is a flag beside the sum, not a compare after it.
    len_reg: DFF<Bits<32>>,
    sat_reg: DFF<Bit>,
    /// Beats of the current frame so far, saturating at `beats_in_header`.
    beat_reg: DFF<Bits<32>>,
    /// A frame has started and not yet ended.
    in_frame: DFF<Bit>,
    valid_reg: DFF<Bit>,
}

/// The capture the pipeline instantiates: 64-bit stream, 128-byte header.
pub type FlowHeaderCapture = HeaderCapture<AXIS_DATA_BITS, { AXIS_DATA_BITS / 8 }, HEADER_BITS>;

impl<const DATA_BITS: usize, const KEEP_BITS: usize, const HEADER_BITS: usize> Default
    for HeaderCapture<DATA_BITS, KEEP_BITS, HEADER_BITS>
{
    fn default() -> Self {
        assert!(
            DATA_BITS >= 8 && KEEP_BITS * 8 == DATA_BITS,
            "the data bus must be whole bytes, one keep bit each"
        );
        assert!(
            HEADER_BITS / DATA_BITS * DATA_BITS == HEADER_BITS,
            "the header must be whole beats"
        );
        assert!(
            KEEP_BITS.is_power_of_two() && (4..=64).contains(&KEEP_BITS),
            "the byte count's adder tree: 4 to 64 lanes (a 32-bit slot 0, six levels), a power of two"
        );

        Self {
            clock: Default::default(),
            tdata: Default::default(),
            tkeep: Default::default(),
            tlast: Default::default(),
            tvalid: Default::default(),
            tready: Default::default(),
            header: Default::default(),
            frame_len: Default::default(),
            header_valid: Default::default(),
            lane_top: Constant::new(((DATA_BITS - 8) as u64).into()),
            beat_top: Constant::new(((HEADER_BITS - DATA_BITS) as u64).into()),
            beats_in_header: Constant::new(((HEADER_BITS / DATA_BITS) as u64).into()),
            byte_mask: Constant::new(0xff_u64.into()),
            zero_data: Constant::new(Bits::default()),
            zero_header: Constant::new(Bits::default()),
            zero: Constant::new(Bits::default()),
            len_max: Constant::new(0xffff_u64.into()),
            data_bits: Constant::new((DATA_BITS as u64).into()),
            slot_mask: Constant::new(0xff_u64.into()),
            one_slot: Constant::new(1_u64.into()),
            zero_pop: Constant::new(Bits::default()),
            len_mask: Constant::new(0xffff_u64.into()),
            count_mask: Constant::new(0xff_u64.into()),
            beat_bytes: Default::default(),
            beat_wide: Default::default(),
            pop: Default::default(),
            kept: Default::default(),
            header_so_far: Default::default(),
            len_so_far: Default::default(),
            sat_so_far: Default::default(),
            beat_index: Default::default(),
            len_sum: Default::default(),
            header_reg: Default::default(),
            len_reg: Default::default(),
            sat_reg: Default::default(),
            beat_reg: Default::default(),
            in_frame: Default::default(),
            valid_reg: Default::default(),
        }
    }
}

impl<const DATA_BITS: usize, const KEEP_BITS: usize, const HEADER_BITS: usize> Logic
    for HeaderCapture<DATA_BITS, KEEP_BITS, HEADER_BITS>
{
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, header_reg, len_reg, sat_reg, beat_reg, in_frame, valid_reg);
        self.tready.next = true;
        self.valid_reg.d.next = false;
        // Defaults first: every local is assigned on every path (no latches).
        self.beat_bytes.next = self.zero_data.val();
        self.beat_wide.next = self.zero_header.val();
        self.pop.next = self.zero_pop.val();
        self.kept.next = self.zero.val();
        self.header_so_far.next = self.header_reg.q.val();
        self.len_so_far.next = self.len_reg.q.val();
        self.sat_so_far.next = self.sat_reg.q.val();
        self.beat_index.next = self.beat_reg.q.val();
        self.len_sum.next = self.zero.val();
        if self.tvalid.val() {
            if !self.in_frame.q.val() {
                self.header_so_far.next = self.zero_header.val();
                self.len_so_far.next = self.zero.val();
                self.sat_so_far.next = false;
                self.beat_index.next = self.zero.val();
            }
            // The popcount tree (see `pop`): level 0 spreads the keep bits into slots,
            // then each level halves the slots. Slots are written in ascending order, so
            // slot `j` is overwritten only after slots `2j` and `2j + 1` were read.
            for j in 0..(KEEP_BITS as u64) {
                if self.tkeep.val().get_bit((self.zero.val() + j).index()) {
                    self.pop.next = self.pop.val() | (self.one_slot.val() << (8 * j));
                }
            }
            // Six levels cover 64 lanes (512 bits); a level past log2(KEEP_BITS) runs
            // no iteration. (hdl_gen takes no loop bound that names another loop index.)
            for j in 0..((KEEP_BITS as u64) >> 1) {
                self.pop.next = (self.pop.val() & !(self.slot_mask.val() << (8 * j)))
                    | ((((self.pop.val() >> (16 * j)) & self.slot_mask.val())
                        + ((self.pop.val() >> (16 * j + 8)) & self.slot_mask.val()))
                        << (8 * j));
            }
            for j in 0..((KEEP_BITS as u64) >> 2) {
                self.pop.next = (self.pop.val() & !(self.slot_mask.val() << (8 * j)))
                    | ((((self.pop.val() >> (16 * j)) & self.slot_mask.val())
                        + ((self.pop.val() >> (16 * j + 8)) & self.slot_mask.val()))
                        << (8 * j));
            }
            for j in 0..((KEEP_BITS as u64) >> 3) {
                self.pop.next = (self.pop.val() & !(self.slot_mask.val() << (8 * j)))
                    | ((((self.pop.val() >> (16 * j)) & self.slot_mask.val())
                        + ((self.pop.val() >> (16 * j + 8)) & self.slot_mask.val()))
                        << (8 * j));
            }
            for j in 0..((KEEP_BITS as u64) >> 4) {
                self.pop.next = (self.pop.val() & !(self.slot_mask.val() << (8 * j)))
                    | ((((self.pop.val() >> (16 * j)) & self.slot_mask.val())
                        + ((self.pop.val() >> (16 * j + 8)) & self.slot_mask.val()))
                        << (8 * j));
            }
            for j in 0..((KEEP_BITS as u64) >> 5) {
                self.pop.next = (self.pop.val() & !(self.slot_mask.val() << (8 * j)))
                    | ((((self.pop.val() >> (16 * j)) & self.slot_mask.val())
                        + ((self.pop.val() >> (16 * j + 8)) & self.slot_mask.val()))
                        << (8 * j));
            }
            for j in 0..((KEEP_BITS as u64) >> 6) {
                self.pop.next = (self.pop.val() & !(self.slot_mask.val() << (8 * j)))
                    | ((((self.pop.val() >> (16 * j)) & self.slot_mask.val())
                        + ((self.pop.val() >> (16 * j + 8)) & self.slot_mask.val()))
                        << (8 * j));
            }
            self.kept.next = self.pop.val().get_bits::<32>(0) & self.count_mask.val();
            self.header_reg.d.next = self.header_so_far.val();
            // Beat b goes to bytes [b × D, (b + 1) × D): one fixed shift per position, so
            // each header bit is a 2-input choice, not a barrel shifter. (The guard also
            // spares the simulator the wide shifts on the beats past the header.)
            if self.beat_index.val() < self.beats_in_header.val() {
                // Kept lanes, reversed so that lane 0 (the earliest byte) is on top.
                for j in 0..(KEEP_BITS as u64) {
                    if self.tkeep.val().get_bit((self.zero.val() + j).index()) {
                        self.beat_bytes.next = self.beat_bytes.val()
                            | (((self.tdata.val() >> (8 * j)) & self.byte_mask.val())
                                << (self.lane_top.val() - 8 * j));
                    }
                }
                self.beat_wide.next = bit_cast::<HEADER_BITS, DATA_BITS>(self.beat_bytes.val())
                    << self.beat_top.val();
                for b in 0..((HEADER_BITS / DATA_BITS) as u64) {
                    if self.beat_index.val() == b {
                        self.header_reg.d.next = self.header_so_far.val() | self.beat_wide.val();
                    }
                    self.beat_wide.next = self.beat_wide.val() >> self.data_bits.val();
                }
            }
            self.len_sum.next = self.len_so_far.val() + self.kept.val();
            self.len_reg.d.next = self.len_sum.val() & self.len_mask.val();
            self.sat_reg.d.next = self.sat_so_far.val() | self.len_sum.val().get_bit(16);
            if self.beat_index.val() < self.beats_in_header.val() {
                self.beat_reg.d.next = self.beat_index.val() + 1;
            } else {
                self.beat_reg.d.next = self.beat_index.val();
            }
            self.in_frame.d.next = !self.tlast.val();
            self.valid_reg.d.next = self.tlast.val();
        }
        self.header.next = self.header_reg.q.val();
        self.frame_len.next = self.len_reg.q.val();
        if self.sat_reg.q.val() {
            self.frame_len.next = self.len_max.val();
        }
        self.header_valid.next = self.valid_reg.q.val();
    }
}
