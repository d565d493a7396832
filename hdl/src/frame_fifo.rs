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
//! Timing (rust-hdl's FIFO): a beat written at clock `t` is visible on `m_axis_*` from
//! `t + 2`; reads go one per clock; `fill` counts the stored beats as the read side sees
//! them.

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
    /// Beats stored (`2^ADDR_BITS` when full).
    pub fill: Signal<Out, Bits<ADDR_BITS_PLUS_1>>,
    read_logic: FIFOReadLogic<Bits<DATA_BITS>, ADDR_BITS, ADDR_BITS_PLUS_1, 1>,
    write_logic: FIFOWriteLogic<Bits<DATA_BITS>, ADDR_BITS, ADDR_BITS_PLUS_1, 1>,
    data_ram: RAM<Bits<DATA_BITS>, ADDR_BITS>,
    keep_ram: RAM<Bits<KEEP_BITS>, ADDR_BITS>,
    last_ram: RAM<Bit, ADDR_BITS>,
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
        self.write_logic.write.next = self.s_axis_tvalid.val();
        self.write_logic.data_in.next = self.s_axis_tdata.val();
        self.s_axis_tready.next = !self.write_logic.full.val();
        // The read logic ignores a read while empty (it only sets its underflow flag), and
        // gating it with `empty` here would look like a combinational loop to Verilator.
        self.read_logic.read.next = self.m_axis_tready.val();
        self.m_axis_tvalid.next = !self.read_logic.empty.val();
        self.m_axis_tdata.next = self.read_logic.data_out.val();
        self.m_axis_tkeep.next = self.keep_ram.read_data.val();
        self.m_axis_tlast.next = self.last_ram.read_data.val();
        self.fill.next = self.read_logic.fill_level.val();
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
