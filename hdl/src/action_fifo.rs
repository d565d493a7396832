//! The action FIFO between the decision (stage A) and the rewriter: one action per frame,
//! first word fall-through, `2^ADDR_BITS` deep, with an output register slice as the frame
//! FIFO has, so the rewriter's `read` reaches flip-flops only and its outputs come from
//! flip-flops, not from a RAM read.
//!
//! An action's fields travel as one packed word ([`ACT_WORD_BITS`]): one RAM, one pair of
//! FIFO pointers and one word in each slice register. [`PackAction`] joins the fields (a
//! Verilog concatenation: rust-hdl widens only through `bit_cast`, which Verilator warns
//! about, see [`crate::widen`]); the outputs are slices of the word.

use rust_hdl::prelude::*;
use rust_hdl::widgets::fifo::fifo_logic::{FIFOReadLogic, FIFOWriteLogic};

/// Bits of an action's mode: the VIP entry's `mode` code (2 bits) and `encap_port` (16).
pub const ACT_MODE_BITS: usize = 18;

/// The fields of an action in the packed word, from bit 0 up: (name, width).
pub const ACT_FIELDS: [(&str, usize); 11] = [
    ("kind", 2),
    ("mode", ACT_MODE_BITS),
    ("mac", 48),
    ("addr", 128),
    ("addr_v6", 1),
    ("hash", 32),
    ("l3", 16),
    ("ip_len", 16),
    ("inner_v6", 1),
    ("dscp", 8),
    ("inner_sum", 32),
];

/// Bits of one packed action: the sum of [`ACT_FIELDS`]' widths.
pub const ACT_WORD_BITS: usize = 302;

/// Bit offset of a field in the packed word.
const fn offset(field: usize) -> usize {
    let mut at = 0;
    let mut i = 0;
    while i < field {
        at += ACT_FIELDS[i].1;
        i += 1;
    }
    at
}

const KIND: usize = offset(0);
const MODE: usize = offset(1);
const MAC: usize = offset(2);
const ADDR: usize = offset(3);
const ADDR_V6: usize = offset(4);
const HASH: usize = offset(5);
const L3: usize = offset(6);
const IP_LEN: usize = offset(7);
const INNER_V6: usize = offset(8);
const DSCP: usize = offset(9);
const INNER_SUM: usize = offset(10);
const _: () = assert!(offset(ACT_FIELDS.len()) == ACT_WORD_BITS);
// `#[hdl_gen]` takes only literal bit offsets: the outputs' slices below spell these.
const _: () = assert!(
    KIND == 0
        && MODE == 2
        && MAC == 20
        && ADDR == 68
        && ADDR_V6 == 196
        && HASH == 197
        && L3 == 229
        && IP_LEN == 245
        && INNER_V6 == 261
        && DSCP == 262
        && INNER_SUM == 270
);

/// The action's fields joined into one word, [`ACT_FIELDS`]' layout.
#[derive(LogicBlock, Default)]
pub struct PackAction {
    pub kind: Signal<In, Bits<2>>,
    pub mode: Signal<In, Bits<ACT_MODE_BITS>>,
    pub mac: Signal<In, Bits<48>>,
    pub addr: Signal<In, Bits<128>>,
    pub addr_v6: Signal<In, Bit>,
    pub hash: Signal<In, Bits<32>>,
    pub l3: Signal<In, Bits<16>>,
    pub ip_len: Signal<In, Bits<16>>,
    pub inner_v6: Signal<In, Bit>,
    pub dscp: Signal<In, Bits<8>>,
    pub inner_sum: Signal<In, Bits<32>>,
    pub word: Signal<Out, Bits<ACT_WORD_BITS>>,
}

impl Logic for PackAction {
    fn update(&mut self) {
        let w = |v: Bits<ACT_WORD_BITS>, at: usize| v << at as LiteralType;
        self.word.next = w(bit_cast(self.kind.val()), KIND)
            | w(bit_cast(self.mode.val()), MODE)
            | w(bit_cast(self.mac.val()), MAC)
            | w(bit_cast(self.addr.val()), ADDR)
            | w(
                bit_cast::<ACT_WORD_BITS, 1>(self.addr_v6.val().into()),
                ADDR_V6,
            )
            | w(bit_cast(self.hash.val()), HASH)
            | w(bit_cast(self.l3.val()), L3)
            | w(bit_cast(self.ip_len.val()), IP_LEN)
            | w(
                bit_cast::<ACT_WORD_BITS, 1>(self.inner_v6.val().into()),
                INNER_V6,
            )
            | w(bit_cast(self.dscp.val()), DSCP)
            | w(bit_cast(self.inner_sum.val()), INNER_SUM);
    }

    fn connect(&mut self) {
        self.word.connect();
    }

    fn hdl(&self) -> Verilog {
        let fields: Vec<&str> = ACT_FIELDS.iter().rev().map(|(name, _)| *name).collect();
        Verilog::Custom(format!("always @(*) word = {{{}}};", fields.join(", ")))
    }
}

/// The action FIFO: see the module doc.
#[derive(LogicBlock, Default)]
pub struct ActionFifo<const ADDR_BITS: usize, const ADDR_BITS_PLUS_1: usize> {
    pub clock: Signal<In, Clock>,
    pub write: Signal<In, Bit>,
    pub read: Signal<In, Bit>,
    /// No action at the output (`kind` … `dscp` are not valid).
    pub empty: Signal<Out, Bit>,
    /// Actions in the RAM, not counting the output register slice (at most two more).
    pub fill: Signal<Out, Bits<ADDR_BITS_PLUS_1>>,
    /// An action is inside: in the RAM or in the output register slice.
    pub holds_actions: Signal<Out, Bit>,
    pub in_kind: Signal<In, Bits<2>>,
    /// The VIP's mode code (bits 1..0) and its parameter (bits 17..2): [`ACT_MODE_BITS`].
    pub in_mode: Signal<In, Bits<ACT_MODE_BITS>>,
    pub in_mac: Signal<In, Bits<48>>,
    pub in_addr: Signal<In, Bits<128>>,
    pub in_addr_v6: Signal<In, Bit>,
    pub in_hash: Signal<In, Bits<32>>,
    pub in_l3: Signal<In, Bits<16>>,
    pub in_ip_len: Signal<In, Bits<16>>,
    pub in_inner_v6: Signal<In, Bit>,
    pub in_dscp: Signal<In, Bits<8>>,
    /// The frame's inner datagram sum ([`crate::inner_sum`]), for GUE under IPv6.
    pub in_inner_sum: Signal<In, Bits<32>>,
    pub kind: Signal<Out, Bits<2>>,
    pub mode: Signal<Out, Bits<ACT_MODE_BITS>>,
    pub mac: Signal<Out, Bits<48>>,
    pub addr: Signal<Out, Bits<128>>,
    pub addr_v6: Signal<Out, Bit>,
    pub hash: Signal<Out, Bits<32>>,
    pub l3: Signal<Out, Bits<16>>,
    pub ip_len: Signal<Out, Bits<16>>,
    pub inner_v6: Signal<Out, Bit>,
    pub dscp: Signal<Out, Bits<8>>,
    pub inner_sum: Signal<Out, Bits<32>>,
    pack: PackAction,
    read_logic: FIFOReadLogic<Bits<ACT_WORD_BITS>, ADDR_BITS, ADDR_BITS_PLUS_1, 1>,
    write_logic: FIFOWriteLogic<Bits<ACT_WORD_BITS>, ADDR_BITS, ADDR_BITS_PLUS_1, 1>,
    ram: RAM<Bits<ACT_WORD_BITS>, ADDR_BITS>,
    // The output register slice (as the frame FIFO's): `o_*` drive the outputs, `k_*`
    // hold the action in flight when the rewriter stopped taking.
    o_valid: DFF<Bit>,
    o_word: DFF<Bits<ACT_WORD_BITS>>,
    k_valid: DFF<Bit>,
    k_word: DFF<Bits<ACT_WORD_BITS>>,
    ram_ready: DFF<Bit>,
    ram_valid: Signal<Local, Bit>,
}

impl<const ADDR_BITS: usize, const ADDR_BITS_PLUS_1: usize> Logic
    for ActionFifo<ADDR_BITS, ADDR_BITS_PLUS_1>
{
    #[hdl_gen]
    fn update(&mut self) {
        clock!(self, clock, read_logic, write_logic);
        dff_setup!(self, clock, o_valid, o_word, k_valid, k_word, ram_ready);
        self.pack.kind.next = self.in_kind.val();
        self.pack.mode.next = self.in_mode.val();
        self.pack.mac.next = self.in_mac.val();
        self.pack.addr.next = self.in_addr.val();
        self.pack.addr_v6.next = self.in_addr_v6.val();
        self.pack.hash.next = self.in_hash.val();
        self.pack.l3.next = self.in_l3.val();
        self.pack.ip_len.next = self.in_ip_len.val();
        self.pack.inner_v6.next = self.in_inner_v6.val();
        self.pack.dscp.next = self.in_dscp.val();
        self.pack.inner_sum.next = self.in_inner_sum.val();
        self.write_logic.write.next = self.write.val();
        self.write_logic.data_in.next = self.pack.word.val();
        // The read logic ignores a read while empty (see `FrameFifo`); it reads on the
        // slice's registered ready, so the rewriter's `read` reaches flip-flops only.
        self.read_logic.read.next = self.ram_ready.q.val();
        self.ram_valid.next = !self.read_logic.empty.val();
        self.fill.next = self.read_logic.fill_level.val();
        self.holds_actions.next = self.ram_valid.val() | self.o_valid.q.val();
        self.read_logic.write_address_delayed.next = self.write_logic.write_address_delayed.val();
        self.write_logic.read_address.next = self.read_logic.read_address_out.val();
        self.ram.write_clock.next = self.clock.val();
        self.ram.write_enable.next = self.write_logic.ram_write_enable.val();
        self.ram.write_address.next = self.write_logic.ram_write_address.val();
        self.ram.write_data.next = self.write_logic.ram_write_data.val();
        self.ram.read_clock.next = self.clock.val();
        self.ram.read_address.next = self.read_logic.ram_read_address.val();
        self.read_logic.ram_read_data.next = self.ram.read_data.val();

        // ---- The output register slice, as in `FrameFifo` (verilog-axis
        // `axis_register` with its skid register): a RAM read (distributed RAM here, as
        // the routed top showed: pop → read address → RAM → register) no longer sits in
        // the rewriter's take path.
        self.ram_ready.d.next = self.read.val()
            | (!self.k_valid.q.val() & (!self.o_valid.q.val() | !self.ram_valid.val()));
        if self.ram_ready.q.val() {
            if self.read.val() | !self.o_valid.q.val() {
                self.o_valid.d.next = self.ram_valid.val();
                self.o_word.d.next = self.read_logic.data_out.val();
            } else {
                self.k_valid.d.next = self.ram_valid.val();
                self.k_word.d.next = self.read_logic.data_out.val();
            }
        } else if self.read.val() {
            self.o_valid.d.next = self.k_valid.q.val();
            self.o_word.d.next = self.k_word.q.val();
            self.k_valid.d.next = false;
        }
        self.empty.next = !self.o_valid.q.val();
        self.kind.next = self.o_word.q.val().get_bits::<2>(0);
        self.mode.next = self.o_word.q.val().get_bits::<18>(2);
        self.mac.next = self.o_word.q.val().get_bits::<48>(20);
        self.addr.next = self.o_word.q.val().get_bits::<128>(68);
        self.addr_v6.next = self.o_word.q.val().get_bit(196);
        self.hash.next = self.o_word.q.val().get_bits::<32>(197);
        self.l3.next = self.o_word.q.val().get_bits::<16>(229);
        self.ip_len.next = self.o_word.q.val().get_bits::<16>(245);
        self.inner_v6.next = self.o_word.q.val().get_bit(261);
        self.dscp.next = self.o_word.q.val().get_bits::<8>(262);
        self.inner_sum.next = self.o_word.q.val().get_bits::<32>(270);
    }
}
