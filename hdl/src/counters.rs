//! The counters of `flowgate_core::counters::Counters`, one frame per clock (II = 1): a
//! per-frame event updates every counter the frame touches in the clock it arrives (the
//! scalar counters, in flip-flops) or one clock later (packets and bytes per VIP and per
//! backend, read-modify-write in block RAM). 64-bit, wrapping.
//!
//! # Event (one per clock, sampled when `ev_valid`)
//!
//! * `ev_verdict`: [`VERDICT_FORWARD`], [`VERDICT_PASS`] or [`VERDICT_DROP`] — the frame's
//!   final verdict (a rewrite that fails is a drop). Every event counts `frames_in`.
//! * `ev_reason`: the `DropReason` code of a drop.
//! * `ev_vip`, `ev_backend`, `ev_len` (bytes as received): a forwarded frame adds one
//!   packet and `ev_len` bytes to its VIP and its backend.
//! * `ev_flow` high when the frame went through the flow table, with the flow table's
//!   result as `flow_table::FlowTable` reports it: `ev_hit` (else a miss), `ev_insert` (an
//!   [`InsertOutcome`] code), `ev_reselect`. These count `flow.*` exactly as `decide()`
//!   does (see `flow_table::Tally`).
//!
//! # Read port
//!
//! `rd_req` with `rd_index` (the COUNTER window's index, `regmap::Counter::index`) →
//! `rd_valid` and `rd_data` one clock later. An index that names no counter reads 0 (the
//! register block refuses those indices before asking). The per-VIP and per-backend
//! counters live in two RAM copies that take the same writes, one read by the update
//! path every clock, one by this port, so reads never stall the data path. A read sees
//! every event up to two clocks before it.
//!
//! # Back-to-back frames
//!
//! A RAM counter is read in the event's clock and written one clock later, so the event
//! right behind it (same VIP or backend) would read the value before that write: the
//! previous event's written value is kept in a register and taken instead of the RAM data
//! when the indices match.

use crate::flow_table::InsertOutcome;
use crate::widen::ZeroExtend;
use flowgate_core::regmap::{
    Counter, FlowCounter, COUNTER_BACKEND_BASE, COUNTER_INDEX_END, COUNTER_VIP_BASE,
};
use flowgate_core::verdict::DropReason;
use rust_hdl::prelude::*;

/// `ev_verdict` of a forwarded frame.
pub const VERDICT_FORWARD: u64 = 0;
/// `ev_verdict` of a frame passed to the host.
pub const VERDICT_PASS: u64 = 1;
/// `ev_verdict` of a dropped frame.
pub const VERDICT_DROP: u64 = 2;

const NDROP: usize = DropReason::ALL.len();

/// The counter block: `2^VIP_BITS` VIPs, `2^BACKEND_BITS` backends. See the module doc.
#[derive(LogicBlock)]
pub struct CounterBlock<const VIP_BITS: usize, const BACKEND_BITS: usize> {
    pub clock: Signal<In, Clock>,
    pub ev_valid: Signal<In, bool>,
    pub ev_verdict: Signal<In, Bits<2>>,
    pub ev_reason: Signal<In, Bits<8>>,
    pub ev_vip: Signal<In, Bits<16>>,
    pub ev_backend: Signal<In, Bits<16>>,
    pub ev_len: Signal<In, Bits<16>>,
    pub ev_flow: Signal<In, bool>,
    pub ev_hit: Signal<In, bool>,
    pub ev_insert: Signal<In, Bits<3>>,
    pub ev_reselect: Signal<In, bool>,
    pub rd_req: Signal<In, bool>,
    pub rd_index: Signal<In, Bits<32>>,
    pub rd_valid: Signal<Out, bool>,
    pub rd_data: Signal<Out, Bits<64>>,

    frames_in: DFF<Bits<64>>,
    forwarded: DFF<Bits<64>>,
    passed: DFF<Bits<64>>,
    drops: [DFF<Bits<64>>; NDROP],
    hits: DFF<Bits<64>>,
    misses: DFF<Bits<64>>,
    inserts: DFF<Bits<64>>,
    evictions: DFF<Bits<64>>,
    expirations: DFF<Bits<64>>,
    refused: DFF<Bits<64>>,
    reselects: DFF<Bits<64>>,
    /// Packets and bytes per VIP / backend: update copy and read-port copy.
    vip_pk: [RAM<Bits<64>, VIP_BITS>; 2],
    vip_by: [RAM<Bits<64>, VIP_BITS>; 2],
    be_pk: [RAM<Bits<64>, BACKEND_BITS>; 2],
    be_by: [RAM<Bits<64>, BACKEND_BITS>; 2],
    len_wide: ZeroExtend<16, 64>,
    // Stage 1 of the RAM update.
    s1_valid: DFF<bool>,
    s1_vip: DFF<Bits<16>>,
    s1_be: DFF<Bits<16>>,
    s1_len: DFF<Bits<64>>,
    // The previous stage-1 write, for the event right behind it.
    fw_valid: DFF<bool>,
    fw_vip: DFF<Bits<16>>,
    fw_be: DFF<Bits<16>>,
    fw_vip_pk: DFF<Bits<64>>,
    fw_vip_by: DFF<Bits<64>>,
    fw_be_pk: DFF<Bits<64>>,
    fw_be_by: DFF<Bits<64>>,
    // Read port.
    rd_valid_r: DFF<bool>,
    rd_src: DFF<Bits<3>>,
    rd_scalar: DFF<Bits<64>>,

    v_forward: Constant<Bits<2>>,
    v_pass: Constant<Bits<2>>,
    v_drop: Constant<Bits<2>>,
    drop_code: [Constant<Bits<8>>; NDROP],
    drop_index: [Constant<Bits<32>>; NDROP],
    i_frames_in: Constant<Bits<32>>,
    i_forwarded: Constant<Bits<32>>,
    i_passed: Constant<Bits<32>>,
    i_hits: Constant<Bits<32>>,
    i_misses: Constant<Bits<32>>,
    i_inserts: Constant<Bits<32>>,
    i_evictions: Constant<Bits<32>>,
    i_expirations: Constant<Bits<32>>,
    i_refused: Constant<Bits<32>>,
    i_reselects: Constant<Bits<32>>,
    vip_base: Constant<Bits<32>>,
    be_base: Constant<Bits<32>>,
    index_end: Constant<Bits<32>>,
    ins_empty: Constant<Bits<3>>,
    ins_expired: Constant<Bits<3>>,
    ins_evicted: Constant<Bits<3>>,
    ins_refused: Constant<Bits<3>>,
    src_scalar: Constant<Bits<3>>,
    src_vip_pk: Constant<Bits<3>>,
    src_vip_by: Constant<Bits<3>>,
    src_be_pk: Constant<Bits<3>>,
    src_be_by: Constant<Bits<3>>,
    one: Constant<Bits<64>>,
    zero: Constant<Bits<64>>,
    one32: Constant<Bits<32>>,

    vip_pk_cur: Signal<Local, Bits<64>>,
    vip_by_cur: Signal<Local, Bits<64>>,
    be_pk_cur: Signal<Local, Bits<64>>,
    be_by_cur: Signal<Local, Bits<64>>,
    rel: Signal<Local, Bits<32>>,
    half: Signal<Local, Bits<32>>,
    scalar: Signal<Local, Bits<64>>,
}

fn w32(v: u32) -> Constant<Bits<32>> {
    Constant::new((v as u64).into())
}

fn w3(v: u64) -> Constant<Bits<3>> {
    Constant::new(v.into())
}

impl<const VIP_BITS: usize, const BACKEND_BITS: usize> Default
    for CounterBlock<VIP_BITS, BACKEND_BITS>
{
    fn default() -> Self {
        assert!(
            VIP_BITS <= 16 && BACKEND_BITS <= 16,
            "VIP and backend indices are 16-bit"
        );
        let flow = |f| w32(Counter::Flow(f).index());
        CounterBlock {
            clock: Default::default(),
            ev_valid: Default::default(),
            ev_verdict: Default::default(),
            ev_reason: Default::default(),
            ev_vip: Default::default(),
            ev_backend: Default::default(),
            ev_len: Default::default(),
            ev_flow: Default::default(),
            ev_hit: Default::default(),
            ev_insert: Default::default(),
            ev_reselect: Default::default(),
            rd_req: Default::default(),
            rd_index: Default::default(),
            rd_valid: Default::default(),
            rd_data: Default::default(),
            frames_in: Default::default(),
            forwarded: Default::default(),
            passed: Default::default(),
            drops: std::array::from_fn(|_| Default::default()),
            hits: Default::default(),
            misses: Default::default(),
            inserts: Default::default(),
            evictions: Default::default(),
            expirations: Default::default(),
            refused: Default::default(),
            reselects: Default::default(),
            vip_pk: std::array::from_fn(|_| Default::default()),
            vip_by: std::array::from_fn(|_| Default::default()),
            be_pk: std::array::from_fn(|_| Default::default()),
            be_by: std::array::from_fn(|_| Default::default()),
            len_wide: Default::default(),
            s1_valid: Default::default(),
            s1_vip: Default::default(),
            s1_be: Default::default(),
            s1_len: Default::default(),
            fw_valid: Default::default(),
            fw_vip: Default::default(),
            fw_be: Default::default(),
            fw_vip_pk: Default::default(),
            fw_vip_by: Default::default(),
            fw_be_pk: Default::default(),
            fw_be_by: Default::default(),
            rd_valid_r: Default::default(),
            rd_src: Default::default(),
            rd_scalar: Default::default(),
            v_forward: Constant::new(VERDICT_FORWARD.into()),
            v_pass: Constant::new(VERDICT_PASS.into()),
            v_drop: Constant::new(VERDICT_DROP.into()),
            drop_code: std::array::from_fn(|i| {
                Constant::new((DropReason::ALL[i].code() as u64).into())
            }),
            drop_index: std::array::from_fn(|i| w32(Counter::Drop(DropReason::ALL[i]).index())),
            i_frames_in: w32(Counter::FramesIn.index()),
            i_forwarded: w32(Counter::Forwarded.index()),
            i_passed: w32(Counter::Passed.index()),
            i_hits: flow(FlowCounter::Hits),
            i_misses: flow(FlowCounter::Misses),
            i_inserts: flow(FlowCounter::Inserts),
            i_evictions: flow(FlowCounter::Evictions),
            i_expirations: flow(FlowCounter::Expirations),
            i_refused: flow(FlowCounter::Refused),
            i_reselects: flow(FlowCounter::Reselects),
            vip_base: w32(COUNTER_VIP_BASE),
            be_base: w32(COUNTER_BACKEND_BASE),
            index_end: w32(COUNTER_INDEX_END),
            ins_empty: w3(InsertOutcome::Empty as u64),
            ins_expired: w3(InsertOutcome::Expired as u64),
            ins_evicted: w3(InsertOutcome::Evicted as u64),
            ins_refused: w3(InsertOutcome::Refused as u64),
            src_scalar: w3(0),
            src_vip_pk: w3(1),
            src_vip_by: w3(2),
            src_be_pk: w3(3),
            src_be_by: w3(4),
            one: Constant::new(1u64.into()),
            zero: Constant::new(0u64.into()),
            one32: w32(1),
            vip_pk_cur: Default::default(),
            vip_by_cur: Default::default(),
            be_pk_cur: Default::default(),
            be_by_cur: Default::default(),
            rel: Default::default(),
            half: Default::default(),
            scalar: Default::default(),
        }
    }
}

impl<const VIP_BITS: usize, const BACKEND_BITS: usize> Logic
    for CounterBlock<VIP_BITS, BACKEND_BITS>
{
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            frames_in,
            forwarded,
            passed,
            hits,
            misses,
            inserts,
            evictions,
            expirations,
            refused,
            reselects,
            s1_valid,
            s1_vip,
            s1_be,
            s1_len,
            fw_valid,
            fw_vip,
            fw_be,
            fw_vip_pk,
            fw_vip_by,
            fw_be_pk,
            fw_be_by,
            rd_valid_r,
            rd_src,
            rd_scalar
        );
        for i in 0..NDROP {
            self.drops[i].clock.next = self.clock.val();
            self.drops[i].d.next = self.drops[i].q.val();
        }
        for c in 0..2 {
            self.vip_pk[c].read_clock.next = self.clock.val();
            self.vip_pk[c].write_clock.next = self.clock.val();
            self.vip_by[c].read_clock.next = self.clock.val();
            self.vip_by[c].write_clock.next = self.clock.val();
            self.be_pk[c].read_clock.next = self.clock.val();
            self.be_pk[c].write_clock.next = self.clock.val();
            self.be_by[c].read_clock.next = self.clock.val();
            self.be_by[c].write_clock.next = self.clock.val();
        }

        // ---- Scalar counters: in the event's clock.
        if self.ev_valid.val() {
            self.frames_in.d.next = self.frames_in.q.val() + self.one.val();
            if self.ev_verdict.val() == self.v_forward.val() {
                self.forwarded.d.next = self.forwarded.q.val() + self.one.val();
            }
            if self.ev_verdict.val() == self.v_pass.val() {
                self.passed.d.next = self.passed.q.val() + self.one.val();
            }
            if self.ev_verdict.val() == self.v_drop.val() {
                for i in 0..NDROP {
                    if self.ev_reason.val() == self.drop_code[i].val() {
                        self.drops[i].d.next = self.drops[i].q.val() + self.one.val();
                    }
                }
            }
            if self.ev_flow.val() {
                if self.ev_hit.val() {
                    self.hits.d.next = self.hits.q.val() + self.one.val();
                } else {
                    self.misses.d.next = self.misses.q.val() + self.one.val();
                }
                if self.ev_reselect.val() {
                    self.reselects.d.next = self.reselects.q.val() + self.one.val();
                }
                if self.ev_insert.val() == self.ins_empty.val()
                    || self.ev_insert.val() == self.ins_expired.val()
                    || self.ev_insert.val() == self.ins_evicted.val()
                {
                    self.inserts.d.next = self.inserts.q.val() + self.one.val();
                }
                if self.ev_insert.val() == self.ins_expired.val() {
                    self.expirations.d.next = self.expirations.q.val() + self.one.val();
                }
                if self.ev_insert.val() == self.ins_evicted.val() {
                    self.evictions.d.next = self.evictions.q.val() + self.one.val();
                }
                if self.ev_insert.val() == self.ins_refused.val() {
                    self.refused.d.next = self.refused.q.val() + self.one.val();
                }
            }
        }

        // ---- Per-VIP / per-backend: read in the event's clock, add and write one later.
        self.len_wide.narrow.next = self.ev_len.val();
        self.vip_pk[0].read_address.next = self.ev_vip.val().get_bits::<VIP_BITS>(0);
        self.vip_by[0].read_address.next = self.ev_vip.val().get_bits::<VIP_BITS>(0);
        self.be_pk[0].read_address.next = self.ev_backend.val().get_bits::<BACKEND_BITS>(0);
        self.be_by[0].read_address.next = self.ev_backend.val().get_bits::<BACKEND_BITS>(0);
        self.s1_valid.d.next = self.ev_valid.val() && self.ev_verdict.val() == self.v_forward.val();
        self.s1_vip.d.next = self.ev_vip.val();
        self.s1_be.d.next = self.ev_backend.val();
        self.s1_len.d.next = self.len_wide.wide.val();

        self.vip_pk_cur.next = self.vip_pk[0].read_data.val();
        self.vip_by_cur.next = self.vip_by[0].read_data.val();
        if self.fw_valid.q.val() && self.fw_vip.q.val() == self.s1_vip.q.val() {
            self.vip_pk_cur.next = self.fw_vip_pk.q.val();
            self.vip_by_cur.next = self.fw_vip_by.q.val();
        }
        self.be_pk_cur.next = self.be_pk[0].read_data.val();
        self.be_by_cur.next = self.be_by[0].read_data.val();
        if self.fw_valid.q.val() && self.fw_be.q.val() == self.s1_be.q.val() {
            self.be_pk_cur.next = self.fw_be_pk.q.val();
            self.be_by_cur.next = self.fw_be_by.q.val();
        }
        self.fw_valid.d.next = self.s1_valid.q.val();
        self.fw_vip.d.next = self.s1_vip.q.val();
        self.fw_be.d.next = self.s1_be.q.val();
        self.fw_vip_pk.d.next = self.vip_pk_cur.val() + self.one.val();
        self.fw_vip_by.d.next = self.vip_by_cur.val() + self.s1_len.q.val();
        self.fw_be_pk.d.next = self.be_pk_cur.val() + self.one.val();
        self.fw_be_by.d.next = self.be_by_cur.val() + self.s1_len.q.val();
        for c in 0..2 {
            self.vip_pk[c].write_enable.next = self.s1_valid.q.val();
            self.vip_by[c].write_enable.next = self.s1_valid.q.val();
            self.be_pk[c].write_enable.next = self.s1_valid.q.val();
            self.be_by[c].write_enable.next = self.s1_valid.q.val();
            self.vip_pk[c].write_address.next = self.s1_vip.q.val().get_bits::<VIP_BITS>(0);
            self.vip_by[c].write_address.next = self.s1_vip.q.val().get_bits::<VIP_BITS>(0);
            self.be_pk[c].write_address.next = self.s1_be.q.val().get_bits::<BACKEND_BITS>(0);
            self.be_by[c].write_address.next = self.s1_be.q.val().get_bits::<BACKEND_BITS>(0);
            self.vip_pk[c].write_data.next = self.vip_pk_cur.val() + self.one.val();
            self.vip_by[c].write_data.next = self.vip_by_cur.val() + self.s1_len.q.val();
            self.be_pk[c].write_data.next = self.be_pk_cur.val() + self.one.val();
            self.be_by[c].write_data.next = self.be_by_cur.val() + self.s1_len.q.val();
        }

        // ---- Read port: decode the index now, answer next clock.
        self.scalar.next = self.zero.val();
        if self.rd_index.val() == self.i_frames_in.val() {
            self.scalar.next = self.frames_in.q.val();
        }
        if self.rd_index.val() == self.i_forwarded.val() {
            self.scalar.next = self.forwarded.q.val();
        }
        if self.rd_index.val() == self.i_passed.val() {
            self.scalar.next = self.passed.q.val();
        }
        for i in 0..NDROP {
            if self.rd_index.val() == self.drop_index[i].val() {
                self.scalar.next = self.drops[i].q.val();
            }
        }
        if self.rd_index.val() == self.i_hits.val() {
            self.scalar.next = self.hits.q.val();
        }
        if self.rd_index.val() == self.i_misses.val() {
            self.scalar.next = self.misses.q.val();
        }
        if self.rd_index.val() == self.i_inserts.val() {
            self.scalar.next = self.inserts.q.val();
        }
        if self.rd_index.val() == self.i_evictions.val() {
            self.scalar.next = self.evictions.q.val();
        }
        if self.rd_index.val() == self.i_expirations.val() {
            self.scalar.next = self.expirations.q.val();
        }
        if self.rd_index.val() == self.i_refused.val() {
            self.scalar.next = self.refused.q.val();
        }
        if self.rd_index.val() == self.i_reselects.val() {
            self.scalar.next = self.reselects.q.val();
        }
        self.rd_scalar.d.next = self.scalar.val();
        self.rd_valid_r.d.next = self.rd_req.val();
        self.rd_src.d.next = self.src_scalar.val();
        self.rel.next = self.rd_index.val() - self.vip_base.val();
        if self.rd_index.val() >= self.be_base.val() {
            self.rel.next = self.rd_index.val() - self.be_base.val();
        }
        self.half.next = self.rel.val() >> 1;
        self.vip_pk[1].read_address.next = self.half.val().get_bits::<VIP_BITS>(0);
        self.vip_by[1].read_address.next = self.half.val().get_bits::<VIP_BITS>(0);
        self.be_pk[1].read_address.next = self.half.val().get_bits::<BACKEND_BITS>(0);
        self.be_by[1].read_address.next = self.half.val().get_bits::<BACKEND_BITS>(0);
        if self.rd_index.val() >= self.vip_base.val() && self.rd_index.val() < self.be_base.val() {
            self.rd_src.d.next = self.src_vip_pk.val();
            if (self.rd_index.val() & self.one32.val()) == self.one32.val() {
                self.rd_src.d.next = self.src_vip_by.val();
            }
        }
        if self.rd_index.val() >= self.be_base.val() && self.rd_index.val() < self.index_end.val() {
            self.rd_src.d.next = self.src_be_pk.val();
            if (self.rd_index.val() & self.one32.val()) == self.one32.val() {
                self.rd_src.d.next = self.src_be_by.val();
            }
        }
        self.rd_valid.next = self.rd_valid_r.q.val();
        self.rd_data.next = self.rd_scalar.q.val();
        if self.rd_src.q.val() == self.src_vip_pk.val() {
            self.rd_data.next = self.vip_pk[1].read_data.val();
        }
        if self.rd_src.q.val() == self.src_vip_by.val() {
            self.rd_data.next = self.vip_by[1].read_data.val();
        }
        if self.rd_src.q.val() == self.src_be_pk.val() {
            self.rd_data.next = self.be_pk[1].read_data.val();
        }
        if self.rd_src.q.val() == self.src_be_by.val() {
            self.rd_data.next = self.be_by[1].read_data.val();
        }
    }
}

/// The ECP5 profile: 8 VIPs, 64 backends.
pub type SmallCounters = CounterBlock<3, 6>;
