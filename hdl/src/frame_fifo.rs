//! The frame FIFO: the top buffers each frame here, beat by beat (`tdata`, `tkeep`,
//! `tlast`), while its header goes through the decision pipeline; the rewriter
//! ([`crate::rewrite`]) reads it when the frame's action arrives.
//!
//! Built from rust-hdl's FIFO pointer logic (`FIFOReadLogic` / `FIFOWriteLogic`, the
//! halves of its `SynchronousFIFO`, which stores one `Synth` value per entry) with three
//! RAMs at the same addresses, so one FIFO holds a beat's three fields without packing
//! them into one vector (rust-hdl has no concatenation). Both sides are AXI4-Stream:
//! `s_axis_tready` = not full, `m_axis_tvalid` = not empty, first word fall-through.
//!
//! Depth `2^ADDR_BITS` beats (`ADDR_BITS_PLUS_1 = ADDR_BITS + 1`: the pointers carry a wrap
//! bit so that a full FIFO is told from an empty one). It must hold the longest frame
//! plus the beats that arrive while the decision pipeline works on its header, or the
//! input stalls (`s_axis_tready` low) until the rewriter drains it: with a 64-bit stream,
//! 9216-byte frames need 1152 beats, so 2048; at 512 bits, 256.
//!
//! # The output register slice
//! `m_axis_*` come from flip-flops, not from the block RAMs: behind the RAMs sits a
//! register slice with a skid register (the two-register `axis_register` of
//! alexforencich/verilog-axis, `REG_TYPE = 2`), written here because rust-hdl has no such
//! widget. A DP16KD read without its output register costs 5.5–5.6 ns on ECP5 speed 6,
//! and the routed top's critical path began there: the RAM's `last` ran through the
//! rewriter's end-of-frame logic into the action FIFO's pop. With the slice the
//! consumer's logic starts at a flip-flop, and the RAM's read pointer advances on the
//! slice's registered ready, so `m_axis_tready` reaches only flip-flops too. It moves a
//! beat every clock when the consumer takes one every clock (the skid register catches
//! the beat in flight when `m_axis_tready` falls), so throughput is unchanged.
//!
//! Timing: a beat written at clock `t` is visible on `m_axis_*` from `t + 3` (rust-hdl's
//! FIFO `t + 2`, the slice one more); reads go one per clock; `fill` counts the beats in
//! the RAMs (at most two more sit in the slice); `holds_beats` says whether any beat is
//! inside, RAMs or slice.

use rust_hdl::prelude::*;
use rust_hdl::widgets::fifo::fifo_logic::{FIFOReadLogic, FIFOWriteLogic};

/// A FIFO of AXI4-Stream beats, `2^ADDR_BITS` deep.
#[derive(LogicBlock, Default)]
pub struct FrameFifo<
    const DATA_BITS: usize,
    const KEEP_BITS: usize,
    const ADDR_BITS: usize,
    const ADDR_BITS_PLUS_1: usize,
> {
    pub clock: Signal<In, Clock>,
    pub s_axis_tdata: Signal<In, Bits<DATA_BITS>>,
    pub s_axis_tkeep: Signal<In, Bits<KEEP_BITS>>,
    pub s_axis_tlast: Signal<In, Bit>,
    pub s_axis_tvalid: Signal<In, Bit>,
    pub s_axis_tready: Signal<Out, Bit>,
    pub m_axis_tdata: Signal<Out, Bits<DATA_BITS>>,
    pub m_axis_tkeep: Signal<Out, Bits<KEEP_BITS>>,
    pub m_axis_tlast: Signal<Out, Bit>,
    pub m_axis_tvalid: Signal<Out, Bit>,
    pub m_axis_tready: Signal<In, Bit>,
    /// Beats stored in the RAMs (`2^ADDR_BITS` when full), not counting the slice.
    pub fill: Signal<Out, Bits<ADDR_BITS_PLUS_1>>,
    /// A beat is inside: in the RAMs or in the output register slice.
    pub holds_beats: Signal<Out, Bit>,
    read_logic: FIFOReadLogic<Bits<DATA_BITS>, ADDR_BITS, ADDR_BITS_PLUS_1, 1>,
    write_logic: FIFOWriteLogic<Bits<DATA_BITS>, ADDR_BITS, ADDR_BITS_PLUS_1, 1>,
    data_ram: RAM<Bits<DATA_BITS>, ADDR_BITS>,
    keep_ram: RAM<Bits<KEEP_BITS>, ADDR_BITS>,
    last_ram: RAM<Bit, ADDR_BITS>,
    // The output register slice: `out_*` drive `m_axis_*`; `skid_*` hold the beat that
    // was in flight when the consumer stopped; `ram_ready` is the slice's registered
    // ready towards the RAMs.
    out_valid: DFF<Bit>,
    out_data: DFF<Bits<DATA_BITS>>,
    out_keep: DFF<Bits<KEEP_BITS>>,
    out_last: DFF<Bit>,
    skid_valid: DFF<Bit>,
    skid_data: DFF<Bits<DATA_BITS>>,
    skid_keep: DFF<Bits<KEEP_BITS>>,
    skid_last: DFF<Bit>,
    ram_ready: DFF<Bit>,
    ram_valid: Signal<Local, Bit>,
}

/// 64-bit beats, 2048 deep: a 9216-byte frame and then some.
pub type FlowFrameFifo = FrameFifo<64, 8, 11, 12>;
/// 512-bit beats, 256 deep.
pub type WideFrameFifo = FrameFifo<512, 64, 8, 9>;

impl<
        const DATA_BITS: usize,
        const KEEP_BITS: usize,
        const ADDR_BITS: usize,
        const ADDR_BITS_PLUS_1: usize,
    > Logic for FrameFifo<DATA_BITS, KEEP_BITS, ADDR_BITS, ADDR_BITS_PLUS_1>
{
    #[hdl_gen]
    fn update(&mut self) {
        clock!(self, clock, read_logic, write_logic);
        dff_setup!(
            self, clock, out_valid, out_data, out_keep, out_last, skid_valid, skid_data, skid_keep,
            skid_last, ram_ready
        );
        self.write_logic.write.next = self.s_axis_tvalid.val();
        self.write_logic.data_in.next = self.s_axis_tdata.val();
        self.s_axis_tready.next = !self.write_logic.full.val();
        // The read logic ignores a read while empty (it only sets its underflow flag), so
        // the registered ready goes to it as it is.
        self.read_logic.read.next = self.ram_ready.q.val();
        self.ram_valid.next = !self.read_logic.empty.val();
        self.fill.next = self.read_logic.fill_level.val();
        self.holds_beats.next = self.ram_valid.val() | self.out_valid.q.val();

        // ---- The register slice (verilog-axis `axis_register`, skid variant). Ready for
        // the next clock: the consumer takes this clock, or the skid is free and the
        // output is free or nothing arrives now.
        self.ram_ready.d.next = self.m_axis_tready.val()
            | (!self.skid_valid.q.val() & (!self.out_valid.q.val() | !self.ram_valid.val()));
        if self.ram_ready.q.val() {
            if self.m_axis_tready.val() | !self.out_valid.q.val() {
                self.out_valid.d.next = self.ram_valid.val();
                self.out_data.d.next = self.read_logic.data_out.val();
                self.out_keep.d.next = self.keep_ram.read_data.val();
                self.out_last.d.next = self.last_ram.read_data.val();
            } else {
                self.skid_valid.d.next = self.ram_valid.val();
                self.skid_data.d.next = self.read_logic.data_out.val();
                self.skid_keep.d.next = self.keep_ram.read_data.val();
                self.skid_last.d.next = self.last_ram.read_data.val();
            }
        } else if self.m_axis_tready.val() {
            self.out_valid.d.next = self.skid_valid.q.val();
            self.out_data.d.next = self.skid_data.q.val();
            self.out_keep.d.next = self.skid_keep.q.val();
            self.out_last.d.next = self.skid_last.q.val();
            self.skid_valid.d.next = false;
        }
        self.m_axis_tvalid.next = self.out_valid.q.val();
        self.m_axis_tdata.next = self.out_data.q.val();
        self.m_axis_tkeep.next = self.out_keep.q.val();
        self.m_axis_tlast.next = self.out_last.q.val();
        self.read_logic.write_address_delayed.next = self.write_logic.write_address_delayed.val();
        self.write_logic.read_address.next = self.read_logic.read_address_out.val();
        // Three RAMs, one address: the data RAM as the FIFO logic drives it, the keep and
        // last RAMs beside it.
        self.data_ram.write_clock.next = self.clock.val();
        self.data_ram.write_enable.next = self.write_logic.ram_write_enable.val();
        self.data_ram.write_address.next = self.write_logic.ram_write_address.val();
        self.data_ram.write_data.next = self.write_logic.ram_write_data.val();
        self.data_ram.read_clock.next = self.clock.val();
        self.data_ram.read_address.next = self.read_logic.ram_read_address.val();
        self.read_logic.ram_read_data.next = self.data_ram.read_data.val();
        self.keep_ram.write_clock.next = self.clock.val();
        self.keep_ram.write_enable.next = self.write_logic.ram_write_enable.val();
        self.keep_ram.write_address.next = self.write_logic.ram_write_address.val();
        self.keep_ram.write_data.next = self.s_axis_tkeep.val();
        self.keep_ram.read_clock.next = self.clock.val();
        self.keep_ram.read_address.next = self.read_logic.ram_read_address.val();
        self.last_ram.write_clock.next = self.clock.val();
        self.last_ram.write_enable.next = self.write_logic.ram_write_enable.val();
        self.last_ram.write_address.next = self.write_logic.ram_write_address.val();
        self.last_ram.write_data.next = self.s_axis_tlast.val();
        self.last_ram.read_clock.next = self.clock.val();
        self.last_ram.read_address.next = self.read_logic.ram_read_address.val();
    }
}
