//! The register block of `docs/REGISTERS.md` as an AXI4-Lite slave: the header, the
//! scalar registers (shadow + active), `COMMIT`, `ERROR`, the indexed windows, the up
//! bitmap, and the table storage the pipeline reads. Every offset, reset value, width,
//! window base, data-word count and field position comes from `flowgate_core::regmap`
//! when the block is built ([`Csr::new`]); the behaviour is register for register that of
//! `flowgate_driver::softbus::SoftBus`, the driver's software model of the same page (the
//! `csr_hw` tests drive both with the same bus traffic and compare every read).
//!
//! # Bus
//!
//! AXI4-Lite, 14-bit byte address, 32-bit data, one transaction at a time. A write is
//! taken when `awvalid` and `wvalid` are both high (writes win over a read offered in the
//! same clock); `wstrb` = 0 writes nothing, any other strobe writes the whole word (the
//! map's registers are read and written whole). Responses are always OKAY. A misaligned
//! address reads all ones and ignores writes, as `SoftBus` does. Latency: a register write
//! answers on `bvalid` 3 clocks after the handshake (one of them, WDEC, registers the
//! command decode), a read on `rvalid` 2 clocks after it. A window command that reads
//! block RAM answers one clock later, a FLOW or COUNTER read when the pipeline answers
//! (`flow_rd_valid`, `ctr_rd_valid`).
//!
//! # Shadow, commit and the table banks
//!
//! Scalar registers and VIP entries are flip-flops in two copies; `COMMIT` copies shadow to
//! active in one clock. BACKEND and MAGLEV entries live in block RAM in two banks, each
//! bank twice (one copy's read port serves the pipeline, the other's the bus and the
//! background copy; both take the same writes). A `COMMIT` write sets `commit_busy`; in
//! the first clock with `frame_boundary` high the active copies take the shadow and the
//! banks swap roles, so that every read issued after that clock sees the new state and
//! every earlier read the old one. Then the new active bank is copied into the new shadow
//! bank, one entry per clock, in the background ("the shadow keeps its contents"); when
//! the copy is done `commit_busy` clears and `COMMIT_GENERATION` increments. While busy,
//! shadowed writes (and `COMMIT`) are refused with `ERROR.write_while_busy`, and a READ
//! command on BACKEND or MAGLEV waits (its AXI response is held) until the copy is done.
//! The copy takes `max(2^BACKEND_BITS, 2^MAGLEV_BITS) + 1` clocks.
//!
//! # Pipeline side
//!
//! Active scalars on named outputs (`own_mac`, the encap prefixes and lengths, the three
//! timeouts, the three keys as 416-bit vectors with key byte 0 on top as
//! [`crate::hash::ToeplitzHash`] takes them, `enable`); every active VIP entry on
//! `vip_entry[v]` (the VIP window's entry layout, `regmap::VIP_*` fields); block-RAM read
//! ports for BACKEND (`backend_rd_addr` = backend index) and MAGLEV (`maglev_rd_addr` =
//! `vip << SLOT_BITS | slot`), data one clock after the address; the up bitmap as words
//! (`up[w]` bit `b` = backend `32w + b`); read requests towards the flow table and the
//! counters, answered by `*_rd_valid` with the entry (FLOW layout) or the 64-bit value.

use crate::widen::Concat32;
use flowgate_core::regmap::{
    self, Access, Register, Window, WindowKind, BACKEND_WINDOW, COUNTER_WINDOW, FLOW_WINDOW,
    MAGLEV_WINDOW, VIP_WINDOW,
};
use flowgate_core::verdict::DropReason;
use rust_hdl::prelude::*;
use std::collections::BTreeSet;

/// Byte-address bits of the block (`regmap::MAP_SIZE` = 2^14).
pub const ADDR_BITS: usize = regmap::MAP_SIZE.trailing_zeros() as usize;
/// A byte address inside the block.
pub type Addr = Bits<ADDR_BITS>;

const VIP_WORDS: usize = VIP_WINDOW.data_words as usize;
const BACKEND_WORDS: usize = BACKEND_WINDOW.data_words as usize;
const MAGLEV_WORDS: usize = MAGLEV_WINDOW.data_words as usize;
const FLOW_WORDS: usize = FLOW_WINDOW.data_words as usize;
const COUNTER_WORDS: usize = COUNTER_WINDOW.data_words as usize;
/// Bits of a VIP entry (`vip_entry[v]`): the VIP window's data words, DATA0 lowest.
pub const VIP_ENTRY_BITS: usize = VIP_WORDS * 32;
/// Bits of a BACKEND entry (`backend_rd_data`).
pub const BACKEND_ENTRY_BITS: usize = BACKEND_WORDS * 32;
/// Bits of a FLOW entry (`flow_rd_data`).
pub const FLOW_ENTRY_BITS: usize = FLOW_WORDS * 32;
/// Bits of a counter value (`ctr_rd_data`).
pub const COUNTER_BITS: usize = COUNTER_WORDS * 32;
const KEY_WORDS: usize = regmap::KEY_WORDS;
/// Bits of a hash key output.
pub const KEY_BITS: usize = KEY_WORDS * 32;
const V6_PREFIX_WORDS: usize = 4;

const _: () = assert!(MAGLEV_WORDS == 1, "a Maglev entry is one word");
const _: () = assert!(COUNTER_BITS == 64, "counters are 64-bit");

/// Registers of access type RO (their values are build constants or block state).
const fn count_ro() -> usize {
    let mut i = 0;
    let mut n = 0;
    while i < regmap::REGISTERS.len() {
        if matches!(regmap::REGISTERS[i].access, Access::Ro) {
            n += 1;
        }
        i += 1;
    }
    n
}
const N_RO: usize = count_ro();

/// Counter-index ranges that name a counter: globals, drops, flow, VIP, backend.
const COUNTER_RANGES: usize = 5;

/// The build parameters the geometry registers report (the VIP capacity is `VIPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrParams {
    pub backend_capacity: u32,
    pub maglev_m: u32,
    pub flow_sets_log2: u32,
    pub flow_ways: u32,
}

/// A build the register map or the block cannot describe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("{0} backends need more than BACKEND_BITS = {1} address bits, or are none")]
    BackendCapacity(u32, usize),
    #[error("UP_WORDS = {0}, but {1} backends need {2} bitmap words")]
    UpWords(usize, u32, usize),
    #[error("MAGLEV_M = {0} must be in 1..2^SLOT_BITS (SLOT_BITS = {1}) and below 2^17")]
    MaglevM(u32, usize),
    #[error("{0} VIPs do not fit MAGLEV_BITS - SLOT_BITS = {1} bits, or the Maglev INDEX")]
    Vips(usize, usize),
    #[error("flow table 2^{0} sets × {1} ways does not fit the FLOW INDEX")]
    Flow(u32, u32),
    #[error("the register map has {0}, which this block does not implement")]
    Unhandled(String),
    #[error("drop reason codes are not 1..=N, so the drop counters cannot be a range")]
    DropCodes,
}

/// One shadowed register: the shadow copy (written and read by the bus) and the active
/// copy (read by the pipeline), which takes the shadow on `flip`.
#[derive(LogicBlock)]
pub struct ShadowReg {
    pub clock: Signal<In, Clock>,
    pub addr: Signal<In, Addr>,
    pub wdata: Signal<In, Bits<32>>,
    /// Write strobe; the register checks the address. The parent drops it while busy.
    pub write: Signal<In, bool>,
    pub flip: Signal<In, bool>,
    /// `addr` is this register.
    pub hit: Signal<Out, bool>,
    /// The shadow value when `hit`, else 0 (so a read mux is an OR).
    pub rd: Signal<Out, Bits<32>>,
    pub active: Signal<Out, Bits<32>>,
    offset: Constant<Addr>,
    mask: Constant<Bits<32>>,
    shadow_r: DFFWithInit<Bits<32>>,
    active_r: DFFWithInit<Bits<32>>,
}

impl ShadowReg {
    fn new(reg: &Register) -> ShadowReg {
        ShadowReg {
            clock: Default::default(),
            addr: Default::default(),
            wdata: Default::default(),
            write: Default::default(),
            flip: Default::default(),
            hit: Default::default(),
            rd: Default::default(),
            active: Default::default(),
            offset: Constant::new((reg.offset as u64).into()),
            mask: Constant::new((reg.mask() as u64).into()),
            shadow_r: DFFWithInit::new((reg.reset as u64).into()),
            active_r: DFFWithInit::new((reg.reset as u64).into()),
        }
    }
}

impl Logic for ShadowReg {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, shadow_r, active_r);
        self.hit.next = self.addr.val() == self.offset.val();
        self.rd.next = 0.into();
        if self.addr.val() == self.offset.val() {
            self.rd.next = self.shadow_r.q.val();
            if self.write.val() {
                self.shadow_r.d.next = self.wdata.val() & self.mask.val();
            }
        }
        if self.flip.val() {
            self.active_r.d.next = self.shadow_r.q.val();
        }
        self.active.next = self.active_r.q.val();
    }
}

/// One plain (not shadowed) read/write register.
#[derive(LogicBlock)]
pub struct RwReg {
    pub clock: Signal<In, Clock>,
    pub addr: Signal<In, Addr>,
    pub wdata: Signal<In, Bits<32>>,
    pub write: Signal<In, bool>,
    /// The value when `addr` is this register, else 0.
    pub rd: Signal<Out, Bits<32>>,
    pub value: Signal<Out, Bits<32>>,
    offset: Constant<Addr>,
    mask: Constant<Bits<32>>,
    r: DFFWithInit<Bits<32>>,
}

impl RwReg {
    fn new(reg: &Register) -> RwReg {
        RwReg {
            clock: Default::default(),
            addr: Default::default(),
            wdata: Default::default(),
            write: Default::default(),
            rd: Default::default(),
            value: Default::default(),
            offset: Constant::new((reg.offset as u64).into()),
            mask: Constant::new((reg.mask() as u64).into()),
            r: DFFWithInit::new((reg.reset as u64).into()),
        }
    }
}

impl Logic for RwReg {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, r);
        self.rd.next = 0.into();
        if self.addr.val() == self.offset.val() {
            self.rd.next = self.r.q.val();
            if self.write.val() {
                self.r.d.next = self.wdata.val() & self.mask.val();
            }
        }
        self.value.next = self.r.q.val();
    }
}

/// The register block. `VIPS` VIP entries (flip-flops), `2^BACKEND_BITS` backend entries
/// and `2^MAGLEV_BITS` Maglev slots (`VIPS` tables of `2^SLOT_BITS` slots, `MAGLEV_M` of
/// them used) in block RAM, `UP_WORDS` words of up bits. See the module doc.
#[derive(LogicBlock)]
pub struct Csr<
    const VIPS: usize,
    const BACKEND_BITS: usize,
    const SLOT_BITS: usize,
    const MAGLEV_BITS: usize,
    const UP_WORDS: usize,
> {
    pub clock: Signal<In, Clock>,
    // ---- AXI4-Lite slave.
    pub s_axil_awaddr: Signal<In, Addr>,
    pub s_axil_awvalid: Signal<In, bool>,
    pub s_axil_awready: Signal<Out, bool>,
    pub s_axil_wdata: Signal<In, Bits<32>>,
    pub s_axil_wstrb: Signal<In, Bits<4>>,
    pub s_axil_wvalid: Signal<In, bool>,
    pub s_axil_wready: Signal<Out, bool>,
    pub s_axil_bresp: Signal<Out, Bits<2>>,
    pub s_axil_bvalid: Signal<Out, bool>,
    pub s_axil_bready: Signal<In, bool>,
    pub s_axil_araddr: Signal<In, Addr>,
    pub s_axil_arvalid: Signal<In, bool>,
    pub s_axil_arready: Signal<Out, bool>,
    pub s_axil_rdata: Signal<Out, Bits<32>>,
    pub s_axil_rresp: Signal<Out, Bits<2>>,
    pub s_axil_rvalid: Signal<Out, bool>,
    pub s_axil_rready: Signal<In, bool>,
    // ---- Pipeline side.
    /// High in a clock between two frames: a pending commit takes effect at its end.
    pub frame_boundary: Signal<In, bool>,
    /// `STATUS.commit_busy`.
    pub commit_busy: Signal<Out, bool>,
    pub enable: Signal<Out, bool>,
    /// Own MAC as an integer, byte 0 in bits 47..40.
    pub own_mac: Signal<Out, Bits<48>>,
    pub encap_v4_prefix: Signal<Out, Bits<32>>,
    pub encap_v4_len: Signal<Out, Bits<32>>,
    /// Address byte 0 in bits 127..120.
    pub encap_v6_prefix: Signal<Out, Bits<128>>,
    pub encap_v6_len: Signal<Out, Bits<32>>,
    pub timeout_tcp_ms: Signal<Out, Bits<32>>,
    pub timeout_embryonic_ms: Signal<Out, Bits<32>>,
    pub timeout_udp_ms: Signal<Out, Bits<32>>,
    /// Candidate sets per flow (FLOW_CHOICES): 1 or 2.
    pub flow_choices: Signal<Out, Bits<32>>,
    /// Key byte 0 in the top 8 bits.
    pub rss_key: Signal<Out, Bits<KEY_BITS>>,
    pub digest_hi_key: Signal<Out, Bits<KEY_BITS>>,
    pub digest_lo_key: Signal<Out, Bits<KEY_BITS>>,
    /// Active VIP entries, the VIP window's layout (bit n = bit n % 32 of DATA(n / 32)).
    pub vip_entry: [Signal<Out, Bits<VIP_ENTRY_BITS>>; VIPS],
    pub backend_rd_addr: Signal<In, Bits<BACKEND_BITS>>,
    /// The active BACKEND entry at the previous clock's `backend_rd_addr`.
    pub backend_rd_data: Signal<Out, Bits<BACKEND_ENTRY_BITS>>,
    /// `vip << SLOT_BITS | slot`.
    pub maglev_rd_addr: Signal<In, Bits<MAGLEV_BITS>>,
    /// The active MAGLEV entry at the previous clock's `maglev_rd_addr`.
    pub maglev_rd_data: Signal<Out, Bits<32>>,
    /// Bit b of word w: backend 32w + b is up.
    pub up: [Signal<Out, Bits<32>>; UP_WORDS],
    /// One-clock request to read flow-table entry (`flow_rd_set`, `flow_rd_way`).
    pub flow_rd_req: Signal<Out, bool>,
    pub flow_rd_set: Signal<Out, Bits<32>>,
    pub flow_rd_way: Signal<Out, Bits<32>>,
    /// The answer: the entry in the FLOW window's layout.
    pub flow_rd_valid: Signal<In, bool>,
    pub flow_rd_data: Signal<In, Bits<FLOW_ENTRY_BITS>>,
    /// One-clock request to read counter `ctr_rd_index` (the COUNTER window's index).
    pub ctr_rd_req: Signal<Out, bool>,
    pub ctr_rd_index: Signal<Out, Bits<32>>,
    pub ctr_rd_valid: Signal<In, bool>,
    pub ctr_rd_data: Signal<In, Bits<COUNTER_BITS>>,

    // ---- Registers.
    r_enable: RwReg,
    r_scratch: RwReg,
    r_own_mac_hi: ShadowReg,
    r_own_mac_lo: ShadowReg,
    r_encap_v4_prefix: ShadowReg,
    r_encap_v4_len: ShadowReg,
    r_encap_v6_prefix: [ShadowReg; V6_PREFIX_WORDS],
    r_encap_v6_len: ShadowReg,
    r_timeout_tcp: ShadowReg,
    r_timeout_embryonic: ShadowReg,
    r_timeout_udp: ShadowReg,
    r_flow_choices: ShadowReg,
    r_rss: [ShadowReg; KEY_WORDS],
    r_digest_hi: [ShadowReg; KEY_WORDS],
    r_digest_lo: [ShadowReg; KEY_WORDS],
    mac_cat: Concat32<2, 64>,
    v6_cat: Concat32<V6_PREFIX_WORDS, 128>,
    rss_cat: Concat32<KEY_WORDS, KEY_BITS>,
    hi_cat: Concat32<KEY_WORDS, KEY_BITS>,
    lo_cat: Concat32<KEY_WORDS, KEY_BITS>,
    ro_off: [Constant<Addr>; N_RO],
    ro_val: [Constant<Bits<32>>; N_RO],
    off_commit: Constant<Addr>,
    off_generation: Constant<Addr>,
    off_status: Constant<Addr>,
    off_error: Constant<Addr>,
    off_up_set: Constant<Addr>,
    off_up_clear: Constant<Addr>,
    commit_mask: Constant<Bits<32>>,
    error_mask: Constant<Bits<32>>,
    up_value_mask: Constant<Bits<32>>,
    status_busy: Constant<Bits<32>>,
    err_range: Constant<Bits<32>>,
    err_busy: Constant<Bits<32>>,
    err_bad: Constant<Bits<32>>,
    cmd_write: Constant<Bits<32>>,
    cmd_read: Constant<Bits<32>>,
    zero: Constant<Bits<32>>,
    okay: Constant<Bits<2>>,
    one: Constant<Bits<32>>,
    ones: Constant<Bits<32>>,
    five: Constant<Bits<32>>,
    thirty_one: Constant<Bits<32>>,
    low_bits: Constant<Addr>,
    zero_addr: Constant<Addr>,

    // ---- Windows: INDEX, DATA latches, offsets.
    vip_index_off: Constant<Addr>,
    vip_cmd_off: Constant<Addr>,
    vip_data_off: [Constant<Addr>; VIP_WORDS],
    vip_index: DFF<Bits<32>>,
    vip_data: [DFF<Bits<32>>; VIP_WORDS],
    be_index_off: Constant<Addr>,
    be_cmd_off: Constant<Addr>,
    be_data_off: [Constant<Addr>; BACKEND_WORDS],
    be_index: DFF<Bits<32>>,
    be_data: [DFF<Bits<32>>; BACKEND_WORDS],
    mg_index_off: Constant<Addr>,
    mg_cmd_off: Constant<Addr>,
    mg_data_off: [Constant<Addr>; MAGLEV_WORDS],
    mg_index: DFF<Bits<32>>,
    mg_data: [DFF<Bits<32>>; MAGLEV_WORDS],
    fl_index_off: Constant<Addr>,
    fl_cmd_off: Constant<Addr>,
    fl_data_off: [Constant<Addr>; FLOW_WORDS],
    fl_index: DFF<Bits<32>>,
    fl_data: [DFF<Bits<32>>; FLOW_WORDS],
    ct_index_off: Constant<Addr>,
    ct_cmd_off: Constant<Addr>,
    ct_data_off: [Constant<Addr>; COUNTER_WORDS],
    ct_index: DFF<Bits<32>>,
    ct_data: [DFF<Bits<32>>; COUNTER_WORDS],

    // ---- Tables.
    vip_num: [Constant<Bits<32>>; VIPS],
    vip_sh: [DFF<Bits<VIP_ENTRY_BITS>>; VIPS],
    vip_act: [DFF<Bits<VIP_ENTRY_BITS>>; VIPS],
    vip_cat: Concat32<VIP_WORDS, VIP_ENTRY_BITS>,
    vips: Constant<Bits<32>>,
    /// Bank b, copy c at 2b + c; copy 0 serves the pipeline, copy 1 the bus and the copier.
    be_ram: [RAM<Bits<BACKEND_ENTRY_BITS>, BACKEND_BITS>; 4],
    be_cat: Concat32<BACKEND_WORDS, BACKEND_ENTRY_BITS>,
    be_capacity: Constant<Bits<32>>,
    be_size: Constant<Bits<32>>,
    mg_ram: [RAM<Bits<32>, MAGLEV_BITS>; 4],
    mg_m: Constant<Bits<32>>,
    mg_slot_lsb: Constant<Bits<32>>,
    mg_slot_mask: Constant<Bits<32>>,
    mg_vip_lsb: Constant<Bits<32>>,
    mg_vip_mask: Constant<Bits<32>>,
    slot_bits: Constant<Bits<32>>,
    mg_size: Constant<Bits<32>>,
    fl_way_lsb: Constant<Bits<32>>,
    fl_way_mask: Constant<Bits<32>>,
    fl_set_lsb: Constant<Bits<32>>,
    fl_set_mask: Constant<Bits<32>>,
    fl_ways: Constant<Bits<32>>,
    fl_sets: Constant<Bits<32>>,
    ct_lo: [Constant<Bits<32>>; COUNTER_RANGES],
    ct_len: [Constant<Bits<32>>; COUNTER_RANGES],
    up_r: [DFF<Bits<32>>; UP_WORDS],
    up_off: [Constant<Addr>; UP_WORDS],
    up_mask: [Constant<Bits<32>>; UP_WORDS],
    up_num: [Constant<Bits<32>>; UP_WORDS],

    // ---- Bus state.
    st: DFF<Bits<3>>,
    st_idle: Constant<Bits<3>>,
    st_wexec: Constant<Bits<3>>,
    st_wwait: Constant<Bits<3>>,
    st_bresp: Constant<Bits<3>>,
    st_rdata: Constant<Bits<3>>,
    st_rresp: Constant<Bits<3>>,
    st_wdec: Constant<Bits<3>>,
    wait_kind: DFF<Bits<3>>,
    // The command decode, registered in state WDEC and used in WEXEC (see `update`).
    cmd_wr: DFF<bool>,
    cmd_rd: DFF<bool>,
    c_sel: DFF<bool>,
    c_ok: DFF<bool>,
    c_rw: DFF<bool>,
    c_ram: DFF<bool>,
    c_vip: DFF<bool>,
    c_be: DFF<bool>,
    c_mg: DFF<bool>,
    c_fl: DFF<bool>,
    c_ct: DFF<bool>,
    vip_sel: [DFF<bool>; VIPS],
    k_be: Constant<Bits<3>>,
    k_mg: Constant<Bits<3>>,
    k_fl: Constant<Bits<3>>,
    k_ct: Constant<Bits<3>>,
    a: DFF<Addr>,
    wd: DFF<Bits<32>>,
    wen: DFF<bool>,
    rdata: DFF<Bits<32>>,
    err: DFF<Bits<32>>,
    busy: DFF<bool>,
    pend: DFF<bool>,
    generation: DFF<Bits<32>>,
    bank: DFF<bool>,
    bank_d1: DFF<bool>,
    copying: DFF<bool>,
    copy_addr: DFF<Bits<32>>,
    cp1_valid: DFF<bool>,
    cp1_last: DFF<bool>,
    cp1_addr: DFF<Bits<32>>,
    copy_last: Constant<Bits<32>>,

    // ---- Combinational.
    exec: Signal<Local, bool>,
    we: Signal<Local, bool>,
    sh_we: Signal<Local, bool>,
    flip: Signal<Local, bool>,
    sh_hit: Signal<Local, bool>,
    rd: Signal<Local, Bits<32>>,
    c_go: Signal<Local, bool>,
    stall: Signal<Local, bool>,
    ct_rel: Signal<Local, Bits<32>>,
    up_value: Signal<Local, Bits<32>>,
    up_word: Signal<Local, Bits<32>>,
    up_bit: Signal<Local, Bits<32>>,
    mg_slot: Signal<Local, Bits<32>>,
    mg_vip: Signal<Local, Bits<32>>,
    mg_addr: Signal<Local, Bits<32>>,
    fl_set: Signal<Local, Bits<32>>,
    fl_way: Signal<Local, Bits<32>>,
    be_w_en: Signal<Local, bool>,
    mg_w_en: Signal<Local, bool>,
    ram_w_addr: Signal<Local, Bits<32>>,
    ram_r_addr: Signal<Local, Bits<32>>,
    be_w_data: Signal<Local, Bits<BACKEND_ENTRY_BITS>>,
    mg_w_data: Signal<Local, Bits<32>>,
    be_src: Signal<Local, Bits<BACKEND_ENTRY_BITS>>,
    mg_src: Signal<Local, Bits<32>>,
    be_shadow_rd: Signal<Local, Bits<BACKEND_ENTRY_BITS>>,
    mg_shadow_rd: Signal<Local, Bits<32>>,
}

fn reg(name: &str) -> Result<&'static Register, CsrError> {
    regmap::register(name).ok_or_else(|| CsrError::Unhandled(format!("no register {name}")))
}

fn addr(offset: u32) -> Constant<Addr> {
    Constant::new((offset as u64).into())
}

fn word(value: u32) -> Constant<Bits<32>> {
    Constant::new((value as u64).into())
}

fn bit(field: regmap::Field) -> Constant<Bits<32>> {
    word(1 << field.lsb)
}

fn field_mask(field: &regmap::Field) -> Constant<Bits<32>> {
    word(field.mask() as u32)
}

fn data_offsets<const N: usize>(w: &Window) -> [Constant<Addr>; N] {
    assert_eq!(w.data_words as usize, N);
    std::array::from_fn(|k| addr(w.data_reg(k as u32)))
}

fn st(v: u64) -> Constant<Bits<3>> {
    Constant::new(v.into())
}

impl<
        const VIPS: usize,
        const BACKEND_BITS: usize,
        const SLOT_BITS: usize,
        const MAGLEV_BITS: usize,
        const UP_WORDS: usize,
    > Csr<VIPS, BACKEND_BITS, SLOT_BITS, MAGLEV_BITS, UP_WORDS>
{
    /// The block for a build of `params`, its register layout taken from
    /// `flowgate_core::regmap`. Fails if the map has a register or window the block does
    /// not implement, or the geometry does not fit the const parameters or the map.
    pub fn new(params: CsrParams) -> Result<Self, CsrError> {
        let cap = params.backend_capacity;
        if cap == 0 || cap as u64 > 1 << BACKEND_BITS || cap > u16::MAX as u32 {
            return Err(CsrError::BackendCapacity(cap, BACKEND_BITS));
        }
        let up_words = (cap as usize).div_ceil(32);
        if up_words != UP_WORDS {
            return Err(CsrError::UpWords(UP_WORDS, cap, up_words));
        }
        let m = params.maglev_m;
        if m == 0 || m as u64 > 1 << SLOT_BITS || m >= 1 << regmap::MAGLEV_SLOT_BITS {
            return Err(CsrError::MaglevM(m, SLOT_BITS));
        }
        let vip_bits = MAGLEV_BITS.saturating_sub(SLOT_BITS);
        if VIPS == 0
            || MAGLEV_BITS < SLOT_BITS
            || VIPS as u64 > 1 << vip_bits
            || VIPS as u64 > 1 << regmap::MAGLEV_INDEX_VIP.width
        {
            return Err(CsrError::Vips(VIPS, vip_bits));
        }
        if params.flow_sets_log2 > regmap::FLOW_INDEX_SET.width
            || params.flow_ways == 0
            || params.flow_ways as u128 > regmap::FLOW_INDEX_WAY.mask()
        {
            return Err(CsrError::Flow(params.flow_sets_log2, params.flow_ways));
        }
        // The drop counters form one index range: codes must be 1..=N.
        let codes: Vec<u32> = DropReason::ALL.iter().map(|r| r.code() as u32).collect();
        if codes != (1..=codes.len() as u32).collect::<Vec<_>>() {
            return Err(CsrError::DropCodes);
        }

        let mut handled = BTreeSet::new();
        let mut take = |name: &str| -> Result<&'static Register, CsrError> {
            let r = reg(name)?;
            handled.insert(r.offset);
            Ok(r)
        };
        let shadow = |r: &Register| -> Result<ShadowReg, CsrError> {
            if !r.shadowed || r.access != Access::Rw {
                return Err(CsrError::Unhandled(format!(
                    "{} as a shadowed RW register",
                    r.name
                )));
            }
            Ok(ShadowReg::new(r))
        };
        let plain = |r: &Register| -> Result<RwReg, CsrError> {
            if r.shadowed || r.access != Access::Rw {
                return Err(CsrError::Unhandled(format!(
                    "{} as a plain RW register",
                    r.name
                )));
            }
            Ok(RwReg::new(r))
        };
        let r_enable = plain(take("ENABLE")?)?;
        let r_scratch = plain(take("SCRATCH")?)?;
        let r_own_mac_hi = shadow(take("OWN_MAC_HI")?)?;
        let r_own_mac_lo = shadow(take("OWN_MAC_LO")?)?;
        let r_encap_v4_prefix = shadow(take("ENCAP_V4_PREFIX")?)?;
        let r_encap_v4_len = shadow(take("ENCAP_V4_LEN")?)?;
        let mut v6 = Vec::new();
        for w in 0..V6_PREFIX_WORDS {
            v6.push(shadow(take(&format!("ENCAP_V6_PREFIX_{w}"))?)?);
        }
        let r_encap_v6_len = shadow(take("ENCAP_V6_LEN")?)?;
        let r_timeout_tcp = shadow(take("TIMEOUT_TCP_MS")?)?;
        let r_timeout_embryonic = shadow(take("TIMEOUT_TCP_EMBRYONIC_MS")?)?;
        let r_timeout_udp = shadow(take("TIMEOUT_UDP_MS")?)?;
        let r_flow_choices = shadow(take("FLOW_CHOICES")?)?;
        let mut key = |prefix: &str| -> Result<Vec<ShadowReg>, CsrError> {
            (0..KEY_WORDS)
                .map(|w| shadow(take(&format!("{prefix}_{w}"))?))
                .collect()
        };
        let rss = key("RSS_KEY")?;
        let hi = key("DIGEST_HI_KEY")?;
        let lo = key("DIGEST_LO_KEY")?;
        let commit = take("COMMIT")?;
        let generation = take("COMMIT_GENERATION")?;
        let status = take("STATUS")?;
        let error = take("ERROR")?;
        let up_set = take("UP_SET")?;
        let up_clear = take("UP_CLEAR")?;
        let kinds = [
            (commit, Access::Strobe),
            (error, Access::W1c),
            (up_set, Access::Wo),
            (up_clear, Access::Wo),
        ];
        for (r, access) in kinds {
            if r.access != access {
                return Err(CsrError::Unhandled(format!(
                    "{} as {}",
                    r.name,
                    r.access.name()
                )));
            }
        }
        // Read-only registers: build constants (geometry, header) by offset.
        let geometry = [
            ("FLOW_SETS_LOG2", params.flow_sets_log2),
            ("FLOW_WAYS", params.flow_ways),
            ("MAGLEV_M", m),
            ("VIP_CAPACITY", VIPS as u32),
            ("BACKEND_CAPACITY", cap),
        ];
        let ro: Vec<&Register> = regmap::REGISTERS
            .iter()
            .filter(|r| r.access == Access::Ro)
            .collect();
        let ro_value = |r: &Register| {
            let v = geometry
                .iter()
                .find(|(n, _)| *n == r.name)
                .map_or(r.reset, |&(_, v)| v);
            v & r.mask()
        };
        for r in &ro {
            handled.insert(r.offset);
        }
        if let Some(r) = regmap::REGISTERS
            .iter()
            .find(|r| !handled.contains(&r.offset))
        {
            return Err(CsrError::Unhandled(format!("register {}", r.name)));
        }
        // Windows: exactly these five indexed ones and the up bitmap.
        let indexed = [
            VIP_WINDOW,
            BACKEND_WINDOW,
            MAGLEV_WINDOW,
            FLOW_WINDOW,
            COUNTER_WINDOW,
        ];
        for w in regmap::WINDOWS {
            let known = indexed.contains(w)
                || (w.kind == WindowKind::Array && w.base == regmap::UP_BITMAP.base);
            if !known {
                return Err(CsrError::Unhandled(format!("window {}", w.name)));
            }
        }
        for w in &indexed {
            // One flag serves both: the writable windows are exactly the shadowed ones.
            let rw = w.access == Access::Rw;
            if rw != w.shadowed || w.kind != WindowKind::Indexed {
                return Err(CsrError::Unhandled(format!(
                    "window {} as {}",
                    w.name,
                    w.access.name()
                )));
            }
        }
        if !(FLOW_WINDOW.access == Access::Ro && COUNTER_WINDOW.access == Access::Ro) {
            return Err(CsrError::Unhandled(
                "a writable FLOW or COUNTER window".into(),
            ));
        }

        let ndrop = DropReason::ALL.len() as u32;
        let nflow = regmap::FlowCounter::ALL.len() as u32;
        let ct_ranges: [(u32, u32); COUNTER_RANGES] = [
            (
                regmap::COUNTER_GLOBAL_BASE,
                regmap::Counter::GLOBALS.len() as u32,
            ),
            (regmap::COUNTER_DROP_BASE + 1, ndrop),
            (regmap::COUNTER_FLOW_BASE, nflow),
            (regmap::COUNTER_VIP_BASE, 2 * VIPS as u32),
            (regmap::COUNTER_BACKEND_BASE, 2 * cap),
        ];
        let be_size = 1u32 << BACKEND_BITS;
        let mg_size = 1u32 << MAGLEV_BITS;

        Ok(Csr {
            clock: Default::default(),
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
            frame_boundary: Default::default(),
            commit_busy: Default::default(),
            enable: Default::default(),
            own_mac: Default::default(),
            encap_v4_prefix: Default::default(),
            encap_v4_len: Default::default(),
            encap_v6_prefix: Default::default(),
            encap_v6_len: Default::default(),
            timeout_tcp_ms: Default::default(),
            timeout_embryonic_ms: Default::default(),
            timeout_udp_ms: Default::default(),
            flow_choices: Default::default(),
            rss_key: Default::default(),
            digest_hi_key: Default::default(),
            digest_lo_key: Default::default(),
            vip_entry: std::array::from_fn(|_| Default::default()),
            backend_rd_addr: Default::default(),
            backend_rd_data: Default::default(),
            maglev_rd_addr: Default::default(),
            maglev_rd_data: Default::default(),
            up: std::array::from_fn(|_| Default::default()),
            flow_rd_req: Default::default(),
            flow_rd_set: Default::default(),
            flow_rd_way: Default::default(),
            flow_rd_valid: Default::default(),
            flow_rd_data: Default::default(),
            ctr_rd_req: Default::default(),
            ctr_rd_index: Default::default(),
            ctr_rd_valid: Default::default(),
            ctr_rd_data: Default::default(),
            r_enable,
            r_scratch,
            r_own_mac_hi,
            r_own_mac_lo,
            r_encap_v4_prefix,
            r_encap_v4_len,
            r_encap_v6_prefix: into_array(v6),
            r_encap_v6_len,
            r_timeout_tcp,
            r_timeout_embryonic,
            r_timeout_udp,
            r_flow_choices,
            r_rss: into_array(rss),
            r_digest_hi: into_array(hi),
            r_digest_lo: into_array(lo),
            mac_cat: Concat32::msb_first(),
            v6_cat: Concat32::msb_first(),
            rss_cat: Concat32::msb_first(),
            hi_cat: Concat32::msb_first(),
            lo_cat: Concat32::msb_first(),
            ro_off: std::array::from_fn(|i| addr(ro[i].offset)),
            ro_val: std::array::from_fn(|i| word(ro_value(ro[i]))),
            off_commit: addr(commit.offset),
            off_generation: addr(generation.offset),
            off_status: addr(status.offset),
            off_error: addr(error.offset),
            off_up_set: addr(up_set.offset),
            off_up_clear: addr(up_clear.offset),
            commit_mask: word(commit.mask()),
            error_mask: word(error.mask()),
            up_value_mask: word(up_set.mask()),
            status_busy: bit(regmap::STATUS_COMMIT_BUSY),
            err_range: bit(regmap::ERROR_INDEX_OUT_OF_RANGE),
            err_busy: bit(regmap::ERROR_WRITE_WHILE_BUSY),
            err_bad: bit(regmap::ERROR_BAD_COMMAND),
            cmd_write: word(regmap::CMD_WRITE),
            cmd_read: word(regmap::CMD_READ),
            zero: word(0),
            okay: Constant::new(0u64.into()),
            one: word(1),
            ones: word(u32::MAX),
            five: word(5),
            thirty_one: word(31),
            low_bits: addr(3),
            zero_addr: addr(0),
            vip_index_off: addr(VIP_WINDOW.index_reg()),
            vip_cmd_off: addr(VIP_WINDOW.cmd_reg()),
            vip_data_off: data_offsets(&VIP_WINDOW),
            vip_index: Default::default(),
            vip_data: std::array::from_fn(|_| Default::default()),
            be_index_off: addr(BACKEND_WINDOW.index_reg()),
            be_cmd_off: addr(BACKEND_WINDOW.cmd_reg()),
            be_data_off: data_offsets(&BACKEND_WINDOW),
            be_index: Default::default(),
            be_data: std::array::from_fn(|_| Default::default()),
            mg_index_off: addr(MAGLEV_WINDOW.index_reg()),
            mg_cmd_off: addr(MAGLEV_WINDOW.cmd_reg()),
            mg_data_off: data_offsets(&MAGLEV_WINDOW),
            mg_index: Default::default(),
            mg_data: std::array::from_fn(|_| Default::default()),
            fl_index_off: addr(FLOW_WINDOW.index_reg()),
            fl_cmd_off: addr(FLOW_WINDOW.cmd_reg()),
            fl_data_off: data_offsets(&FLOW_WINDOW),
            fl_index: Default::default(),
            fl_data: std::array::from_fn(|_| Default::default()),
            ct_index_off: addr(COUNTER_WINDOW.index_reg()),
            ct_cmd_off: addr(COUNTER_WINDOW.cmd_reg()),
            ct_data_off: data_offsets(&COUNTER_WINDOW),
            ct_index: Default::default(),
            ct_data: std::array::from_fn(|_| Default::default()),
            vip_num: std::array::from_fn(|v| word(v as u32)),
            vip_sh: std::array::from_fn(|_| Default::default()),
            vip_act: std::array::from_fn(|_| Default::default()),
            vip_cat: Concat32::lsb_first(),
            vips: word(VIPS as u32),
            be_ram: std::array::from_fn(|_| Default::default()),
            be_cat: Concat32::lsb_first(),
            be_capacity: word(cap),
            be_size: word(be_size),
            mg_ram: std::array::from_fn(|_| Default::default()),
            mg_m: word(m),
            mg_slot_lsb: word(regmap::MAGLEV_INDEX_SLOT.lsb),
            mg_slot_mask: field_mask(&regmap::MAGLEV_INDEX_SLOT),
            mg_vip_lsb: word(regmap::MAGLEV_INDEX_VIP.lsb),
            mg_vip_mask: field_mask(&regmap::MAGLEV_INDEX_VIP),
            slot_bits: word(SLOT_BITS as u32),
            mg_size: word(mg_size),
            fl_way_lsb: word(regmap::FLOW_INDEX_WAY.lsb),
            fl_way_mask: field_mask(&regmap::FLOW_INDEX_WAY),
            fl_set_lsb: word(regmap::FLOW_INDEX_SET.lsb),
            fl_set_mask: field_mask(&regmap::FLOW_INDEX_SET),
            fl_ways: word(params.flow_ways),
            fl_sets: word(1 << params.flow_sets_log2),
            ct_lo: std::array::from_fn(|i| word(ct_ranges[i].0)),
            ct_len: std::array::from_fn(|i| word(ct_ranges[i].1)),
            up_r: std::array::from_fn(|_| Default::default()),
            up_off: std::array::from_fn(|w| addr(regmap::UP_BITMAP.data_reg(w as u32))),
            up_mask: std::array::from_fn(|w| {
                let bits = (cap - 32 * w as u32).min(32);
                word(if bits == 32 {
                    u32::MAX
                } else {
                    (1 << bits) - 1
                })
            }),
            up_num: std::array::from_fn(|w| word(w as u32)),
            st: Default::default(),
            st_idle: st(0),
            st_wexec: st(1),
            st_wwait: st(2),
            st_bresp: st(3),
            st_rdata: st(4),
            st_rresp: st(5),
            st_wdec: st(6),
            wait_kind: Default::default(),
            cmd_wr: Default::default(),
            cmd_rd: Default::default(),
            c_sel: Default::default(),
            c_ok: Default::default(),
            c_rw: Default::default(),
            c_ram: Default::default(),
            c_vip: Default::default(),
            c_be: Default::default(),
            c_mg: Default::default(),
            c_fl: Default::default(),
            c_ct: Default::default(),
            vip_sel: std::array::from_fn(|_| Default::default()),
            k_be: st(1),
            k_mg: st(2),
            k_fl: st(3),
            k_ct: st(4),
            a: Default::default(),
            wd: Default::default(),
            wen: Default::default(),
            rdata: Default::default(),
            err: Default::default(),
            busy: Default::default(),
            pend: Default::default(),
            generation: Default::default(),
            bank: Default::default(),
            bank_d1: Default::default(),
            copying: Default::default(),
            copy_addr: Default::default(),
            cp1_valid: Default::default(),
            cp1_last: Default::default(),
            cp1_addr: Default::default(),
            copy_last: word(be_size.max(mg_size) - 1),
            exec: Default::default(),
            we: Default::default(),
            sh_we: Default::default(),
            flip: Default::default(),
            sh_hit: Default::default(),
            rd: Default::default(),
            c_go: Default::default(),
            stall: Default::default(),
            ct_rel: Default::default(),
            up_value: Default::default(),
            up_word: Default::default(),
            up_bit: Default::default(),
            mg_slot: Default::default(),
            mg_vip: Default::default(),
            mg_addr: Default::default(),
            fl_set: Default::default(),
            fl_way: Default::default(),
            be_w_en: Default::default(),
            mg_w_en: Default::default(),
            ram_w_addr: Default::default(),
            ram_r_addr: Default::default(),
            be_w_data: Default::default(),
            mg_w_data: Default::default(),
            be_src: Default::default(),
            mg_src: Default::default(),
            be_shadow_rd: Default::default(),
            mg_shadow_rd: Default::default(),
        })
    }
}

fn into_array<T, const N: usize>(v: Vec<T>) -> [T; N] {
    match v.try_into() {
        Ok(a) => a,
        Err(v) => unreachable!("built {} of {N}", v.len()),
    }
}

impl<
        const VIPS: usize,
        const BACKEND_BITS: usize,
        const SLOT_BITS: usize,
        const MAGLEV_BITS: usize,
        const UP_WORDS: usize,
    > Logic for Csr<VIPS, BACKEND_BITS, SLOT_BITS, MAGLEV_BITS, UP_WORDS>
{
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, vip_index, be_index, mg_index, fl_index, ct_index, st, wait_kind, a, wd,
            wen, rdata, err, busy, pend, generation, bank, bank_d1, copying, copy_addr, cp1_valid,
            cp1_last, cp1_addr, cmd_wr, cmd_rd, c_sel, c_ok, c_rw, c_ram, c_vip, c_be, c_mg, c_fl,
            c_ct
        );
        for v in 0..VIPS {
            self.vip_sel[v].clock.next = self.clock.val();
            self.vip_sel[v].d.next = self.vip_sel[v].q.val();
        }
        for k in 0..VIP_WORDS {
            self.vip_data[k].clock.next = self.clock.val();
            self.vip_data[k].d.next = self.vip_data[k].q.val();
        }
        for k in 0..BACKEND_WORDS {
            self.be_data[k].clock.next = self.clock.val();
            self.be_data[k].d.next = self.be_data[k].q.val();
        }
        for k in 0..MAGLEV_WORDS {
            self.mg_data[k].clock.next = self.clock.val();
            self.mg_data[k].d.next = self.mg_data[k].q.val();
        }
        for k in 0..FLOW_WORDS {
            self.fl_data[k].clock.next = self.clock.val();
            self.fl_data[k].d.next = self.fl_data[k].q.val();
        }
        for k in 0..COUNTER_WORDS {
            self.ct_data[k].clock.next = self.clock.val();
            self.ct_data[k].d.next = self.ct_data[k].q.val();
        }
        for v in 0..VIPS {
            self.vip_sh[v].clock.next = self.clock.val();
            self.vip_sh[v].d.next = self.vip_sh[v].q.val();
            self.vip_act[v].clock.next = self.clock.val();
            self.vip_act[v].d.next = self.vip_act[v].q.val();
        }
        for w in 0..UP_WORDS {
            self.up_r[w].clock.next = self.clock.val();
            self.up_r[w].d.next = self.up_r[w].q.val();
        }
        for r in 0..4 {
            self.be_ram[r].read_clock.next = self.clock.val();
            self.be_ram[r].write_clock.next = self.clock.val();
            self.mg_ram[r].read_clock.next = self.clock.val();
            self.mg_ram[r].write_clock.next = self.clock.val();
        }

        // ---- AXI4-Lite handshakes. One transaction at a time; writes first.
        self.s_axil_awready.next = false;
        self.s_axil_wready.next = false;
        self.s_axil_arready.next = false;
        self.s_axil_bresp.next = self.okay.val();
        self.s_axil_rresp.next = self.okay.val();
        self.s_axil_bvalid.next = self.st.q.val() == self.st_bresp.val();
        self.s_axil_rvalid.next = self.st.q.val() == self.st_rresp.val();
        self.s_axil_rdata.next = self.rdata.q.val();
        if self.st.q.val() == self.st_idle.val() {
            if self.s_axil_awvalid.val() && self.s_axil_wvalid.val() {
                self.s_axil_awready.next = true;
                self.s_axil_wready.next = true;
                self.a.d.next = self.s_axil_awaddr.val();
                self.wd.d.next = self.s_axil_wdata.val();
                self.wen.d.next = self.s_axil_wstrb.val().any();
                self.st.d.next = self.st_wdec.val();
            } else if self.s_axil_arvalid.val() {
                self.s_axil_arready.next = true;
                self.a.d.next = self.s_axil_araddr.val();
                self.st.d.next = self.st_rdata.val();
            }
        }
        // WDEC: one clock to register the command decode below before WEXEC uses it.
        if self.st.q.val() == self.st_wdec.val() {
            self.st.d.next = self.st_wexec.val();
        }
        if self.st.q.val() == self.st_bresp.val() && self.s_axil_bready.val() {
            self.st.d.next = self.st_idle.val();
        }
        if self.st.q.val() == self.st_rresp.val() && self.s_axil_rready.val() {
            self.st.d.next = self.st_idle.val();
        }

        // ---- Write decode (state WEXEC).
        self.exec.next = self.st.q.val() == self.st_wexec.val();
        self.we.next = self.exec.val()
            && self.wen.q.val()
            && (self.a.q.val() & self.low_bits.val()) == self.zero_addr.val();
        self.sh_we.next = self.we.val() && !self.busy.q.val();
        self.flip.next = false;
        // A pending commit flips at a frame boundary (copy active → shadow follows below).
        if self.pend.q.val() && self.frame_boundary.val() {
            self.pend.d.next = false;
            self.flip.next = true;
            self.bank.d.next = !self.bank.q.val();
            self.copying.d.next = true;
            self.copy_addr.d.next = self.zero.val();
        }

        // Scalar registers (they decode their own address).
        self.r_enable.clock.next = self.clock.val();
        self.r_enable.addr.next = self.a.q.val();
        self.r_enable.wdata.next = self.wd.q.val();
        self.r_enable.write.next = self.we.val();
        self.r_scratch.clock.next = self.clock.val();
        self.r_scratch.addr.next = self.a.q.val();
        self.r_scratch.wdata.next = self.wd.q.val();
        self.r_scratch.write.next = self.we.val();
        self.r_own_mac_hi.clock.next = self.clock.val();
        self.r_own_mac_hi.addr.next = self.a.q.val();
        self.r_own_mac_hi.wdata.next = self.wd.q.val();
        self.r_own_mac_hi.write.next = self.sh_we.val();
        self.r_own_mac_hi.flip.next = self.flip.val();
        self.r_own_mac_lo.clock.next = self.clock.val();
        self.r_own_mac_lo.addr.next = self.a.q.val();
        self.r_own_mac_lo.wdata.next = self.wd.q.val();
        self.r_own_mac_lo.write.next = self.sh_we.val();
        self.r_own_mac_lo.flip.next = self.flip.val();
        self.r_encap_v4_prefix.clock.next = self.clock.val();
        self.r_encap_v4_prefix.addr.next = self.a.q.val();
        self.r_encap_v4_prefix.wdata.next = self.wd.q.val();
        self.r_encap_v4_prefix.write.next = self.sh_we.val();
        self.r_encap_v4_prefix.flip.next = self.flip.val();
        self.r_encap_v4_len.clock.next = self.clock.val();
        self.r_encap_v4_len.addr.next = self.a.q.val();
        self.r_encap_v4_len.wdata.next = self.wd.q.val();
        self.r_encap_v4_len.write.next = self.sh_we.val();
        self.r_encap_v4_len.flip.next = self.flip.val();
        self.r_encap_v6_len.clock.next = self.clock.val();
        self.r_encap_v6_len.addr.next = self.a.q.val();
        self.r_encap_v6_len.wdata.next = self.wd.q.val();
        self.r_encap_v6_len.write.next = self.sh_we.val();
        self.r_encap_v6_len.flip.next = self.flip.val();
        self.r_timeout_tcp.clock.next = self.clock.val();
        self.r_timeout_tcp.addr.next = self.a.q.val();
        self.r_timeout_tcp.wdata.next = self.wd.q.val();
        self.r_timeout_tcp.write.next = self.sh_we.val();
        self.r_timeout_tcp.flip.next = self.flip.val();
        self.r_timeout_embryonic.clock.next = self.clock.val();
        self.r_timeout_embryonic.addr.next = self.a.q.val();
        self.r_timeout_embryonic.wdata.next = self.wd.q.val();
        self.r_timeout_embryonic.write.next = self.sh_we.val();
        self.r_timeout_embryonic.flip.next = self.flip.val();
        self.r_timeout_udp.clock.next = self.clock.val();
        self.r_timeout_udp.addr.next = self.a.q.val();
        self.r_timeout_udp.wdata.next = self.wd.q.val();
        self.r_timeout_udp.write.next = self.sh_we.val();
        self.r_timeout_udp.flip.next = self.flip.val();
        self.r_flow_choices.clock.next = self.clock.val();
        self.r_flow_choices.addr.next = self.a.q.val();
        self.r_flow_choices.wdata.next = self.wd.q.val();
        self.r_flow_choices.write.next = self.sh_we.val();
        self.r_flow_choices.flip.next = self.flip.val();
        for k in 0..V6_PREFIX_WORDS {
            self.r_encap_v6_prefix[k].clock.next = self.clock.val();
            self.r_encap_v6_prefix[k].addr.next = self.a.q.val();
            self.r_encap_v6_prefix[k].wdata.next = self.wd.q.val();
            self.r_encap_v6_prefix[k].write.next = self.sh_we.val();
            self.r_encap_v6_prefix[k].flip.next = self.flip.val();
        }
        for k in 0..KEY_WORDS {
            self.r_rss[k].clock.next = self.clock.val();
            self.r_rss[k].addr.next = self.a.q.val();
            self.r_rss[k].wdata.next = self.wd.q.val();
            self.r_rss[k].write.next = self.sh_we.val();
            self.r_rss[k].flip.next = self.flip.val();
            self.r_digest_hi[k].clock.next = self.clock.val();
            self.r_digest_hi[k].addr.next = self.a.q.val();
            self.r_digest_hi[k].wdata.next = self.wd.q.val();
            self.r_digest_hi[k].write.next = self.sh_we.val();
            self.r_digest_hi[k].flip.next = self.flip.val();
            self.r_digest_lo[k].clock.next = self.clock.val();
            self.r_digest_lo[k].addr.next = self.a.q.val();
            self.r_digest_lo[k].wdata.next = self.wd.q.val();
            self.r_digest_lo[k].write.next = self.sh_we.val();
            self.r_digest_lo[k].flip.next = self.flip.val();
        }
        self.sh_hit.next = self.r_own_mac_hi.hit.val()
            || self.r_own_mac_lo.hit.val()
            || self.r_encap_v4_prefix.hit.val()
            || self.r_encap_v4_len.hit.val()
            || self.r_encap_v6_len.hit.val()
            || self.r_timeout_tcp.hit.val()
            || self.r_timeout_embryonic.hit.val()
            || self.r_timeout_udp.hit.val()
            || self.r_flow_choices.hit.val();
        for k in 0..V6_PREFIX_WORDS {
            self.sh_hit.next = self.sh_hit.val() || self.r_encap_v6_prefix[k].hit.val();
        }
        for k in 0..KEY_WORDS {
            self.sh_hit.next = self.sh_hit.val()
                || self.r_rss[k].hit.val()
                || self.r_digest_hi[k].hit.val()
                || self.r_digest_lo[k].hit.val();
        }
        if self.we.val() && self.busy.q.val() && self.sh_hit.val() {
            self.err.d.next = self.err.q.val() | self.err_busy.val();
        }

        // COMMIT, ERROR (W1C), UP_SET / UP_CLEAR, the up bitmap.
        if self.we.val()
            && self.a.q.val() == self.off_commit.val()
            && (self.wd.q.val() & self.commit_mask.val()) != self.zero.val()
        {
            if self.busy.q.val() {
                self.err.d.next = self.err.q.val() | self.err_busy.val();
            } else {
                self.busy.d.next = true;
                self.pend.d.next = true;
            }
        }
        if self.we.val() && self.a.q.val() == self.off_error.val() {
            self.err.d.next = self.err.q.val() & !(self.wd.q.val() & self.error_mask.val());
        }
        self.up_value.next = self.wd.q.val() & self.up_value_mask.val();
        self.up_word.next = self.up_value.val() >> self.five.val();
        self.up_bit.next = self.one.val() << (self.up_value.val() & self.thirty_one.val());
        if self.we.val()
            && (self.a.q.val() == self.off_up_set.val()
                || self.a.q.val() == self.off_up_clear.val())
        {
            if self.up_value.val() >= self.be_capacity.val() {
                self.err.d.next = self.err.q.val() | self.err_range.val();
            } else {
                for w in 0..UP_WORDS {
                    if self.up_word.val() == self.up_num[w].val() {
                        if self.a.q.val() == self.off_up_set.val() {
                            self.up_r[w].d.next = self.up_r[w].q.val() | self.up_bit.val();
                        } else {
                            self.up_r[w].d.next = self.up_r[w].q.val() & !self.up_bit.val();
                        }
                    }
                }
            }
        }
        for w in 0..UP_WORDS {
            if self.we.val() && self.a.q.val() == self.up_off[w].val() {
                self.up_r[w].d.next = self.wd.q.val() & self.up_mask[w].val();
            }
            self.up[w].next = self.up_r[w].q.val();
        }

        // Window INDEX and DATA latches.
        if self.we.val() && self.a.q.val() == self.vip_index_off.val() {
            self.vip_index.d.next = self.wd.q.val();
        }
        for k in 0..VIP_WORDS {
            if self.we.val() && self.a.q.val() == self.vip_data_off[k].val() {
                self.vip_data[k].d.next = self.wd.q.val();
            }
            self.vip_cat.words[k].next = self.vip_data[k].q.val();
        }
        if self.we.val() && self.a.q.val() == self.be_index_off.val() {
            self.be_index.d.next = self.wd.q.val();
        }
        for k in 0..BACKEND_WORDS {
            if self.we.val() && self.a.q.val() == self.be_data_off[k].val() {
                self.be_data[k].d.next = self.wd.q.val();
            }
            self.be_cat.words[k].next = self.be_data[k].q.val();
        }
        if self.we.val() && self.a.q.val() == self.mg_index_off.val() {
            self.mg_index.d.next = self.wd.q.val();
        }
        for k in 0..MAGLEV_WORDS {
            if self.we.val() && self.a.q.val() == self.mg_data_off[k].val() {
                self.mg_data[k].d.next = self.wd.q.val();
            }
        }
        if self.we.val() && self.a.q.val() == self.fl_index_off.val() {
            self.fl_index.d.next = self.wd.q.val();
        }
        for k in 0..FLOW_WORDS {
            if self.we.val() && self.a.q.val() == self.fl_data_off[k].val() {
                self.fl_data[k].d.next = self.wd.q.val();
            }
        }
        if self.we.val() && self.a.q.val() == self.ct_index_off.val() {
            self.ct_index.d.next = self.wd.q.val();
        }
        for k in 0..COUNTER_WORDS {
            if self.we.val() && self.a.q.val() == self.ct_data_off[k].val() {
                self.ct_data[k].d.next = self.wd.q.val();
            }
        }

        // ---- Window commands: which window, whether the index names an entry.
        self.mg_slot.next =
            (self.mg_index.q.val() >> self.mg_slot_lsb.val()) & self.mg_slot_mask.val();
        self.mg_vip.next =
            (self.mg_index.q.val() >> self.mg_vip_lsb.val()) & self.mg_vip_mask.val();
        self.mg_addr.next = (self.mg_vip.val() << self.slot_bits.val()) | self.mg_slot.val();
        self.fl_set.next =
            (self.fl_index.q.val() >> self.fl_set_lsb.val()) & self.fl_set_mask.val();
        self.fl_way.next =
            (self.fl_index.q.val() >> self.fl_way_lsb.val()) & self.fl_way_mask.val();
        self.flow_rd_set.next = self.fl_set.val();
        self.flow_rd_way.next = self.fl_way.val();
        self.ctr_rd_index.next = self.ct_index.q.val();
        // The command decode is registered every clock from the address, data and index
        // registers. In WEXEC it is the decode of the write being executed: WDEC, the
        // clock before, saw that write's address and data, and only WEXEC and WWAIT,
        // both after WDEC, change an index. This keeps the address compares and index
        // range checks out of the clock that fans `c_go` out to the shadow tables'
        // enables (the register block's critical path on the routed top,
        // docs/SYNTHESIS.md).
        self.cmd_wr.d.next = (self.wd.q.val() & self.cmd_write.val()) != self.zero.val();
        self.cmd_rd.d.next = (self.wd.q.val() & self.cmd_read.val()) != self.zero.val();
        self.c_sel.d.next = false;
        self.c_ok.d.next = false;
        self.c_rw.d.next = false;
        self.c_ram.d.next = false;
        self.c_vip.d.next = false;
        self.c_be.d.next = false;
        self.c_mg.d.next = false;
        self.c_fl.d.next = false;
        self.c_ct.d.next = false;
        for v in 0..VIPS {
            self.vip_sel[v].d.next = self.vip_index.q.val() == self.vip_num[v].val();
        }
        self.ct_rel.next = self.zero.val();
        if self.a.q.val() == self.vip_cmd_off.val() {
            self.c_vip.d.next = true;
            self.c_sel.d.next = true;
            self.c_rw.d.next = true;
            self.c_ok.d.next = self.vip_index.q.val() < self.vips.val();
        }
        if self.a.q.val() == self.be_cmd_off.val() {
            self.c_be.d.next = true;
            self.c_sel.d.next = true;
            self.c_rw.d.next = true;
            self.c_ram.d.next = true;
            self.c_ok.d.next = self.be_index.q.val() < self.be_capacity.val();
        }
        if self.a.q.val() == self.mg_cmd_off.val() {
            self.c_mg.d.next = true;
            self.c_sel.d.next = true;
            self.c_rw.d.next = true;
            self.c_ram.d.next = true;
            self.c_ok.d.next =
                self.mg_slot.val() < self.mg_m.val() && self.mg_vip.val() < self.vips.val();
        }
        if self.a.q.val() == self.fl_cmd_off.val() {
            self.c_fl.d.next = true;
            self.c_sel.d.next = true;
            self.c_ok.d.next =
                self.fl_way.val() < self.fl_ways.val() && self.fl_set.val() < self.fl_sets.val();
        }
        if self.a.q.val() == self.ct_cmd_off.val() {
            self.c_ct.d.next = true;
            self.c_sel.d.next = true;
            for i in 0..COUNTER_RANGES {
                // One unsigned compare per range (a `>= 0` bound would be constant).
                self.ct_rel.next = self.ct_index.q.val() - self.ct_lo[i].val();
                if self.ct_rel.val() < self.ct_len[i].val() {
                    self.c_ok.d.next = true;
                }
            }
        }
        // A READ of block RAM waits while the background copy owns the RAM ports.
        self.stall.next = self.we.val()
            && self.c_sel.q.val()
            && self.c_ram.q.val()
            && self.cmd_rd.q.val()
            && !self.cmd_wr.q.val()
            && self.c_ok.q.val()
            && self.busy.q.val();
        self.c_go.next = false;
        if self.we.val()
            && self.c_sel.q.val()
            && !self.stall.val()
            && (self.cmd_wr.q.val() || self.cmd_rd.q.val())
        {
            if self.cmd_wr.q.val() && (self.cmd_rd.q.val() || !self.c_rw.q.val()) {
                self.err.d.next = self.err.q.val() | self.err_bad.val();
            } else if self.cmd_wr.q.val() && self.busy.q.val() {
                self.err.d.next = self.err.q.val() | self.err_busy.val();
            } else if !self.c_ok.q.val() {
                self.err.d.next = self.err.q.val() | self.err_range.val();
            } else {
                self.c_go.next = true;
            }
        }
        self.flow_rd_req.next = false;
        self.ctr_rd_req.next = false;
        self.be_w_en.next = false;
        self.mg_w_en.next = false;
        self.ram_w_addr.next = self.be_index.q.val();
        self.be_w_data.next = self.be_cat.out.val();
        self.mg_w_data.next = self.mg_data[0].q.val();
        self.ram_r_addr.next = self.be_index.q.val();
        if self.a.q.val() == self.mg_cmd_off.val() {
            self.ram_w_addr.next = self.mg_addr.val();
            self.ram_r_addr.next = self.mg_addr.val();
        }
        if self.exec.val() {
            self.st.d.next = self.st_bresp.val();
            if self.stall.val() {
                self.st.d.next = self.st_wexec.val();
            }
        }
        if self.c_go.val() {
            if self.c_vip.q.val() {
                for v in 0..VIPS {
                    if self.vip_sel[v].q.val() {
                        if self.cmd_wr.q.val() {
                            self.vip_sh[v].d.next = self.vip_cat.out.val();
                        } else {
                            for k in 0..VIP_WORDS {
                                self.vip_data[k].d.next =
                                    self.vip_sh[v].q.val().get_bits::<32>(32 * k);
                            }
                        }
                    }
                }
                self.vip_index.d.next = self.vip_index.q.val() + self.one.val();
            }
            if self.c_be.q.val() {
                if self.cmd_wr.q.val() {
                    self.be_w_en.next = true;
                    self.be_index.d.next = self.be_index.q.val() + self.one.val();
                } else {
                    self.wait_kind.d.next = self.k_be.val();
                    self.st.d.next = self.st_wwait.val();
                }
            }
            if self.c_mg.q.val() {
                if self.cmd_wr.q.val() {
                    self.mg_w_en.next = true;
                    self.mg_index.d.next = self.mg_index.q.val() + self.one.val();
                } else {
                    self.wait_kind.d.next = self.k_mg.val();
                    self.st.d.next = self.st_wwait.val();
                }
            }
            if self.c_fl.q.val() {
                self.flow_rd_req.next = true;
                self.wait_kind.d.next = self.k_fl.val();
                self.st.d.next = self.st_wwait.val();
            }
            if self.c_ct.q.val() {
                self.ctr_rd_req.next = true;
                self.wait_kind.d.next = self.k_ct.val();
                self.st.d.next = self.st_wwait.val();
            }
        }

        if self.flip.val() {
            for v in 0..VIPS {
                self.vip_act[v].d.next = self.vip_sh[v].q.val();
            }
        }
        if self.copying.q.val() {
            self.copy_addr.d.next = self.copy_addr.q.val() + self.one.val();
            if self.copy_addr.q.val() == self.copy_last.val() {
                self.copying.d.next = false;
            }
        }
        self.cp1_valid.d.next = self.copying.q.val();
        self.cp1_addr.d.next = self.copy_addr.q.val();
        self.cp1_last.d.next =
            self.copying.q.val() && self.copy_addr.q.val() == self.copy_last.val();
        if self.cp1_valid.q.val() && self.cp1_last.q.val() {
            self.busy.d.next = false;
            self.generation.d.next = self.generation.q.val() + self.one.val();
        }
        self.commit_busy.next = self.busy.q.val();

        // ---- Table RAMs. Bank b copy c is RAM 2b + c; `bank` is the active bank.
        self.bank_d1.d.next = self.bank.q.val();
        // Copy 1 of each bank: the bus reads the shadow bank, the copier the active one.
        if self.copying.q.val() {
            self.ram_r_addr.next = self.copy_addr.q.val();
        }
        self.be_ram[1].read_address.next = self.ram_r_addr.val().get_bits::<BACKEND_BITS>(0);
        self.be_ram[3].read_address.next = self.ram_r_addr.val().get_bits::<BACKEND_BITS>(0);
        self.mg_ram[1].read_address.next = self.ram_r_addr.val().get_bits::<MAGLEV_BITS>(0);
        self.mg_ram[3].read_address.next = self.ram_r_addr.val().get_bits::<MAGLEV_BITS>(0);
        if self.bank.q.val() {
            self.be_src.next = self.be_ram[3].read_data.val();
            self.mg_src.next = self.mg_ram[3].read_data.val();
            self.be_shadow_rd.next = self.be_ram[1].read_data.val();
            self.mg_shadow_rd.next = self.mg_ram[1].read_data.val();
        } else {
            self.be_src.next = self.be_ram[1].read_data.val();
            self.mg_src.next = self.mg_ram[1].read_data.val();
            self.be_shadow_rd.next = self.be_ram[3].read_data.val();
            self.mg_shadow_rd.next = self.mg_ram[3].read_data.val();
        }
        if self.cp1_valid.q.val() {
            self.ram_w_addr.next = self.cp1_addr.q.val();
            self.be_w_data.next = self.be_src.val();
            self.mg_w_data.next = self.mg_src.val();
            self.be_w_en.next = self.cp1_addr.q.val() < self.be_size.val();
            self.mg_w_en.next = self.cp1_addr.q.val() < self.mg_size.val();
        }
        for r in 0..4 {
            self.be_ram[r].write_address.next = self.ram_w_addr.val().get_bits::<BACKEND_BITS>(0);
            self.be_ram[r].write_data.next = self.be_w_data.val();
            self.mg_ram[r].write_address.next = self.ram_w_addr.val().get_bits::<MAGLEV_BITS>(0);
            self.mg_ram[r].write_data.next = self.mg_w_data.val();
        }
        // The shadow bank takes the writes: bank 1 while bank 0 is active, and back.
        self.be_ram[0].write_enable.next = self.be_w_en.val() && self.bank.q.val();
        self.be_ram[1].write_enable.next = self.be_w_en.val() && self.bank.q.val();
        self.be_ram[2].write_enable.next = self.be_w_en.val() && !self.bank.q.val();
        self.be_ram[3].write_enable.next = self.be_w_en.val() && !self.bank.q.val();
        self.mg_ram[0].write_enable.next = self.mg_w_en.val() && self.bank.q.val();
        self.mg_ram[1].write_enable.next = self.mg_w_en.val() && self.bank.q.val();
        self.mg_ram[2].write_enable.next = self.mg_w_en.val() && !self.bank.q.val();
        self.mg_ram[3].write_enable.next = self.mg_w_en.val() && !self.bank.q.val();
        // Copy 0 of each bank: the pipeline's read port.
        self.be_ram[0].read_address.next = self.backend_rd_addr.val();
        self.be_ram[2].read_address.next = self.backend_rd_addr.val();
        self.mg_ram[0].read_address.next = self.maglev_rd_addr.val();
        self.mg_ram[2].read_address.next = self.maglev_rd_addr.val();
        if self.bank_d1.q.val() {
            self.backend_rd_data.next = self.be_ram[2].read_data.val();
            self.maglev_rd_data.next = self.mg_ram[2].read_data.val();
        } else {
            self.backend_rd_data.next = self.be_ram[0].read_data.val();
            self.maglev_rd_data.next = self.mg_ram[0].read_data.val();
        }

        // ---- Waiting for a RAM, flow-table or counter read.
        if self.st.q.val() == self.st_wwait.val() {
            if self.wait_kind.q.val() == self.k_be.val() {
                for k in 0..BACKEND_WORDS {
                    self.be_data[k].d.next = self.be_shadow_rd.val().get_bits::<32>(32 * k);
                }
                self.be_index.d.next = self.be_index.q.val() + self.one.val();
                self.st.d.next = self.st_bresp.val();
            }
            if self.wait_kind.q.val() == self.k_mg.val() {
                self.mg_data[0].d.next = self.mg_shadow_rd.val();
                self.mg_index.d.next = self.mg_index.q.val() + self.one.val();
                self.st.d.next = self.st_bresp.val();
            }
            if self.wait_kind.q.val() == self.k_fl.val() && self.flow_rd_valid.val() {
                for k in 0..FLOW_WORDS {
                    self.fl_data[k].d.next = self.flow_rd_data.val().get_bits::<32>(32 * k);
                }
                self.fl_index.d.next = self.fl_index.q.val() + self.one.val();
                self.st.d.next = self.st_bresp.val();
            }
            if self.wait_kind.q.val() == self.k_ct.val() && self.ctr_rd_valid.val() {
                for k in 0..COUNTER_WORDS {
                    self.ct_data[k].d.next = self.ctr_rd_data.val().get_bits::<32>(32 * k);
                }
                self.ct_index.d.next = self.ct_index.q.val() + self.one.val();
                self.st.d.next = self.st_bresp.val();
            }
        }

        // ---- Read mux (state RDATA), from the latched address.
        self.rd.next = self.r_enable.rd.val()
            | self.r_scratch.rd.val()
            | self.r_own_mac_hi.rd.val()
            | self.r_own_mac_lo.rd.val()
            | self.r_encap_v4_prefix.rd.val()
            | self.r_encap_v4_len.rd.val()
            | self.r_encap_v6_len.rd.val()
            | self.r_timeout_tcp.rd.val()
            | self.r_timeout_embryonic.rd.val()
            | self.r_timeout_udp.rd.val()
            | self.r_flow_choices.rd.val();
        for k in 0..V6_PREFIX_WORDS {
            self.rd.next = self.rd.val() | self.r_encap_v6_prefix[k].rd.val();
        }
        for k in 0..KEY_WORDS {
            self.rd.next = self.rd.val()
                | self.r_rss[k].rd.val()
                | self.r_digest_hi[k].rd.val()
                | self.r_digest_lo[k].rd.val();
        }
        for i in 0..N_RO {
            if self.a.q.val() == self.ro_off[i].val() {
                self.rd.next = self.ro_val[i].val();
            }
        }
        if self.a.q.val() == self.off_status.val() {
            self.rd.next = self.zero.val();
            if self.busy.q.val() {
                self.rd.next = self.status_busy.val();
            }
        }
        if self.a.q.val() == self.off_generation.val() {
            self.rd.next = self.generation.q.val();
        }
        if self.a.q.val() == self.off_error.val() {
            self.rd.next = self.err.q.val();
        }
        if self.a.q.val() == self.vip_index_off.val() {
            self.rd.next = self.vip_index.q.val();
        }
        for k in 0..VIP_WORDS {
            if self.a.q.val() == self.vip_data_off[k].val() {
                self.rd.next = self.vip_data[k].q.val();
            }
        }
        if self.a.q.val() == self.be_index_off.val() {
            self.rd.next = self.be_index.q.val();
        }
        for k in 0..BACKEND_WORDS {
            if self.a.q.val() == self.be_data_off[k].val() {
                self.rd.next = self.be_data[k].q.val();
            }
        }
        if self.a.q.val() == self.mg_index_off.val() {
            self.rd.next = self.mg_index.q.val();
        }
        for k in 0..MAGLEV_WORDS {
            if self.a.q.val() == self.mg_data_off[k].val() {
                self.rd.next = self.mg_data[k].q.val();
            }
        }
        if self.a.q.val() == self.fl_index_off.val() {
            self.rd.next = self.fl_index.q.val();
        }
        for k in 0..FLOW_WORDS {
            if self.a.q.val() == self.fl_data_off[k].val() {
                self.rd.next = self.fl_data[k].q.val();
            }
        }
        if self.a.q.val() == self.ct_index_off.val() {
            self.rd.next = self.ct_index.q.val();
        }
        for k in 0..COUNTER_WORDS {
            if self.a.q.val() == self.ct_data_off[k].val() {
                self.rd.next = self.ct_data[k].q.val();
            }
        }
        for w in 0..UP_WORDS {
            if self.a.q.val() == self.up_off[w].val() {
                self.rd.next = self.up_r[w].q.val();
            }
        }
        if (self.a.q.val() & self.low_bits.val()) != self.zero_addr.val() {
            self.rd.next = self.ones.val();
        }
        if self.st.q.val() == self.st_rdata.val() {
            self.rdata.d.next = self.rd.val();
            self.st.d.next = self.st_rresp.val();
        }

        // ---- Active state towards the pipeline.
        self.enable.next = self.r_enable.value.val().get_bit(0);
        self.mac_cat.words[0].next = self.r_own_mac_hi.active.val();
        self.mac_cat.words[1].next = self.r_own_mac_lo.active.val();
        self.own_mac.next = self.mac_cat.out.val().get_bits::<48>(0);
        self.encap_v4_prefix.next = self.r_encap_v4_prefix.active.val();
        self.encap_v4_len.next = self.r_encap_v4_len.active.val();
        for k in 0..V6_PREFIX_WORDS {
            self.v6_cat.words[k].next = self.r_encap_v6_prefix[k].active.val();
        }
        self.encap_v6_prefix.next = self.v6_cat.out.val();
        self.encap_v6_len.next = self.r_encap_v6_len.active.val();
        self.timeout_tcp_ms.next = self.r_timeout_tcp.active.val();
        self.timeout_embryonic_ms.next = self.r_timeout_embryonic.active.val();
        self.timeout_udp_ms.next = self.r_timeout_udp.active.val();
        self.flow_choices.next = self.r_flow_choices.active.val();
        for k in 0..KEY_WORDS {
            self.rss_cat.words[k].next = self.r_rss[k].active.val();
            self.hi_cat.words[k].next = self.r_digest_hi[k].active.val();
            self.lo_cat.words[k].next = self.r_digest_lo[k].active.val();
        }
        self.rss_key.next = self.rss_cat.out.val();
        self.digest_hi_key.next = self.hi_cat.out.val();
        self.digest_lo_key.next = self.lo_cat.out.val();
        for v in 0..VIPS {
            self.vip_entry[v].next = self.vip_act[v].q.val();
        }
    }
}

/// The ECP5 profile: 8 VIPs, 64 backends, Maglev M ≤ 512 (8 × 512 slots), 4096 × 4 flows.
pub type SmallCsr = Csr<8, 6, 9, 12, 2>;

/// [`SmallCsr`] with M = 509 and the 4096 × 4 flow table.
pub fn small_csr() -> SmallCsr {
    SmallCsr::new(CsrParams {
        backend_capacity: 64,
        maglev_m: 509,
        flow_sets_log2: 12,
        flow_ways: 4,
    })
    .expect("the small profile fits the register map")
}
