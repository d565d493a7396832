//! Stage 4 — the flow table: `2^SET_BITS` sets × `WAYS` ways in block RAM, one request per
//! clock (II = 1), bit-exact with [`flowgate_core::flow_table::FlowTable`] driven the way
//! `decide()` in `flowgate_core::pipeline` drives it (probe → touch on a hit, insert where
//! the probe chose on a miss), with one or two candidate sets per flow (`two_choice`, the
//! contract's `Geometry::choices`; docs/CONTRACT.md §4).
//!
//! # Two banks
//!
//! A flow's two candidate sets differ in the bank bit B (`Geometry::bank_bit`), so the
//! table is two banks of `2^(SET_BITS-1)` rows, bank = bit B of the set, row = the set
//! without bit B; a request reads one row of each bank in the same cycle. The block
//! derives the second set itself, `s2 = s1 ^ (((h2 | 1) << B) & (S - 1))` with h2 the
//! digest's high half (an XOR on the request, before the RAM address). Everything after
//! the read works on *slots*: the `2 × WAYS` ways of both rows, bank 0's then bank 1's.
//! With one choice only the first set's bank is a candidate (`avail`), and the other
//! bank's row is read and ignored.
//!
//! The decision is the contract's over the union: a hit is the first live digest match in
//! the first set, else in the second; a miss takes the insert rules over both sets' slots
//! ordered less-loaded set first (load = live ways, counted after the forwarding below;
//! ties → the first set), as "first in order" for rules 1–3 (a masked priority pick: the
//! first bank's candidates, else the other's) and as the tie-break of the LRU order for
//! rules 4–5 (`beats`, from per-slot constant masks chosen by the order).
//!
//! # Interface and timing
//!
//! A request presented in cycle `t` (sampled at the clock edge that ends `t`):
//!
//! * `t` — `req_*`: the set, 64-bit digest, tick (`now`), the frame's class (1 embryonic,
//!   2 TCP, 3 UDP), the VIP, and `select()`'s answer for this frame (`req_select_ok`,
//!   `req_select`). `select` depends only on the programmed tables and the hash, never on
//!   the flow table, so the pipeline computes it alongside this block (Maglev) and hands
//!   it over with the request. `req_valid` low is a bubble.
//! * `t + 4` — the backend-up query: `query_backend[w]` is the backend stored in way `w`
//!   (with every earlier request's write but the previous one's already applied) and
//!   `query_vip` the request's VIP; the top level answers `backend_is_up(vip,
//!   query_backend[w])` for every way on `query_up` (bit `w`) *in the same cycle* (a
//!   combinational lookup in the backend registers). Only a hit's way matters, but which
//!   way hits is not known yet.
//! * `t + 6` — the result: `res_hit`, `res_way`, the stored class and backend (hit only),
//!   the insert outcome ([`InsertOutcome`], miss only), `res_reselect`, and the verdict:
//!   `res_forward` with `res_backend`, or no healthy backend. Everything `decide()` counts
//!   follows from these (see [`Outcome`]).
//!
//! The write (touch or insert) lands in RAM at the end of `t + 6`.
//!
//! # Stages
//!
//! 0 (`t`) reads both rows; 1 waits for the RAMs' second read register; 2 gets the rows
//! and does every subtraction and wide compare per source (the RAM slots' ages, digest
//! matches and liveness; the same for the in-flight writes), registered; 2b overlays the
//! in-flight writes on those facts and orders the ages; 2c overlays the write decided a
//! clock earlier, asks the backend-up query and decides under every assumption about
//! the write being decided now, registered; 3 picks the assumption that holds and 4
//! writes. Stage 2b exists so that no carry chain sits between the block RAMs' output
//! registers (placed far from the logic) and the overlay's muxes; stage 2c so that the
//! one-cycle loop (stage 3 → `w1` → stage 3) is a mux, not the decision.
//!
//! # Hazards: the result equals the sequential model
//!
//! Request `k` reads its rows at the end of cycle `t`, but requests `k-1 .. k-6` have not
//! written yet (or write at that very edge). Their writes are kept in a four-deep history
//! (`w1` .. `w4`, newest first: both rows of the request and the one-hot slot it wrote)
//! beside the RAM write ports. Whether a write lands in one of `k`'s slots is a row compare
//! per bank, made a cycle early (in stage 2, as `same1..4`: the slots whose bank row
//! matches) and registered, so only the write's one-hot slot ANDs it in stage 2b. So are
//! the writes' digest matches, ages by `k`'s tick (`w1_age..w4_age`, and `prev_age`,
//! `prev2_age` for `k-1`'s and `k-2`'s) and liveness per class (`w1_fresh..w4_fresh`;
//! the class itself picks in 2b, since `w1`'s is decided in that very cycle of stage 2).
//! Then:
//!
//! * in stage 2b the RAM data of `k` is overlaid with the writes of `k-6` .. `k-3`
//!   (older first, so the newest wins per slot) — plain muxes on registered data;
//! * the write of `k-2` is decided in the very cycle `k` is in stage 2b, and that of
//!   `k-1` while `k` is in stage 2c. Stage 2b precomputes everything about "slot `w`
//!   holds `k-2`'s (`k-1`'s) entry" that does not depend on their decisions: such an
//!   entry always carries its request's digest and tick, so digest equality, age,
//!   liveness for each of the three classes and age order against the other slots (and
//!   between the two entries) are known a cycle early.
//! * Stage 2c overlays `k-2`'s write, from its register `w1`, with those facts (muxes),
//!   asks the backend-up query on the result, and decides for every assumption about
//!   `k-1`'s write at once: `k-1` wrote none of this request's slots, or slot `j` with an
//!   entry that is dead or live by this request's tick (one [`SlotChoice`] each, `2 ×
//!   SLOTS + 1`), each with the miss choice for an embryonic and a non-embryonic entry in
//!   `j`. The LRU picks those need (the oldest slot, the oldest embryonic slot, for
//!   either set first in the insert order) are computed per assumption beside them. Each
//!   copy registers its hit and miss choices.
//! * Stage 3: `k-1`'s written slot (`w1_way` and the row match) and class pick one copy:
//!   the one-cycle loop `w1` → `w1` is that mux, a hit's class and backend taken from
//!   `w1` when the hit is `k-1`'s slot, and the promotion (f(mux(x)) = mux(f(x))).
//!
//! The one thing stage 2c cannot ask the top level about is whether `k-1`'s freshly
//! written backend is up: it was chosen up one cycle earlier (a stored backend that
//! answered up, or `select()`, which only returns up backends), and is taken as up. The
//! result differs from the sequential model only if that backend goes down in exactly
//! that cycle.
//!
//! # Layout: one RAM per field and slot
//!
//! An entry is class (2 bits, 0 = invalid), digest (64), backend (16) and last-seen tick
//! (32) = 114 bits. Each slot's (bank × way) fields sit in their own RAMs, addressed by the
//! bank's row, so a lookup reads both candidate sets at once and a write enables only the
//! slot it changes (no read-modify-write of a wide word). A single row-wide word would need
//! a width of `WAYS × 114`, which a const generic cannot express in stable Rust. The
//! 16 K-entry profile's banks are 2048 rows deep, so each field RAM maps to DP16KD as
//! 2048 × 9: class 1, digest 8, backend 2, tick 4 = 15 per slot, 120 for the 8 slots (one
//! bank of 4096 rows at 4096 × 4 took 1 + 16 + 4 + 8 = 29 per way, 116).
//!
//! The RAMs start zeroed (every way invalid) as block RAM does after configuration; there
//! is no clear sequence for a reset at run time yet.
//!
//! # Registered reads
//!
//! Every field RAM is a [`RegRam`] (read latency 2): the rows read at the end of stage 0
//! arrive in stage 2 from the RAM's second read register, which on ECP5 the synth flow
//! moves into the DP16KD's output register (0.9 ns clock-to-out instead of the array's
//! 5.8 ns, with no fabric flip-flop to place beside the block RAM). `RegRam` leaves the
//! read of an address written in the same clock undefined; here that read is never used:
//! the only write landing at the edge that ends request `k`'s stage 0 is `k-6`'s (`w1` in
//! stage 4), it writes RAM `p` only for its one-hot slot `p` and in the row of that
//! slot's bank, and stage 2b overlays exactly that slot with `w4` (`k-6`'s write,
//! `same4`) instead of the RAM data.

use crate::constant;
use crate::reg_ram::RegRam;
use flowgate_core::flow_table::{
    FlowClass, FlowEntry, Geometry, Insert, Probe, Replaced, Timeouts, MAX_BANK_BIT,
};
use rust_hdl::prelude::*;

/// A request's insert outcome on `res_insert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum InsertOutcome {
    /// A hit, or a miss with no backend (nothing inserted, nothing refused).
    None = 0,
    Empty = 1,
    Expired = 2,
    Evicted = 3,
    Refused = 4,
}

impl InsertOutcome {
    pub fn from_bits(code: u32) -> Option<InsertOutcome> {
        [
            Self::None,
            Self::Empty,
            Self::Expired,
            Self::Evicted,
            Self::Refused,
        ]
        .into_iter()
        .find(|o| *o as u32 == code)
    }

    /// The outcome of a `FlowTable::insert`.
    pub fn of_insert(insert: Insert) -> InsertOutcome {
        match insert {
            Insert::Inserted { replaced, .. } => match replaced {
                Replaced::Empty => Self::Empty,
                Replaced::Expired => Self::Expired,
                Replaced::Evicted => Self::Evicted,
            },
            Insert::Refused => Self::Refused,
        }
    }
}

/// The class encoding of `req_class`, `res_stored_class` and the RAM (0 = invalid way).
pub fn class_bits(class: Option<FlowClass>) -> u32 {
    class.map_or(0, |c| c as u32)
}

/// One request's result, as the block reports it on `res_*` and as the sequential model
/// computes it. `decide()`'s flow counters follow from it: `hit` → hits, else misses;
/// `reselect` → reselects; `insert` Empty/Expired/Evicted → inserts (+ expirations,
/// evictions), Refused → refused; `!forward` → the `NoHealthyBackend` drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub hit: bool,
    /// The candidate set of `way`; 0 when neither.
    pub set: u32,
    /// The hit way, or the way inserted into; 0 when neither.
    pub way: u32,
    /// The hit entry's class (before promotion) and backend; 0 on a miss.
    pub stored_class: u32,
    pub stored_backend: u16,
    /// [`InsertOutcome`] as its code.
    pub insert: u32,
    pub reselect: bool,
    pub forward: bool,
    /// The backend the frame goes to; 0 without `forward`.
    pub backend: u16,
}

/// One request to the flow table: the block's `req_*` inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The first candidate set (the hash's low bits; the block derives the second).
    pub set: u32,
    pub digest: u64,
    pub now: u32,
    pub class: FlowClass,
    pub vip: u16,
    /// `select(tables, vip, hash)`.
    pub select: Option<u16>,
}

/// The sequential model: `decide()`'s flow-table half on `flowgate_core`'s `FlowTable`
/// of `geometry` (probe, then touch on a hit or insert where the probe chose), with
/// `select()` from the request and `backend_is_up` as `up`. Hardware must equal it.
pub fn decide_model(
    table: &mut flowgate_core::flow_table::FlowTable,
    geometry: &Geometry,
    req: &Request,
    timeouts: &Timeouts,
    up: impl Fn(u16) -> bool,
) -> Outcome {
    let sets = geometry.sets_of(req.set, req.digest);
    match table.probe(sets, req.digest, req.class, req.now, timeouts) {
        Probe::Hit {
            set,
            way,
            backend,
            class: stored,
        } => {
            let mut out = Outcome {
                hit: true,
                set,
                way,
                stored_class: stored as u32,
                stored_backend: backend,
                ..Outcome::default()
            };
            let promoted = if stored == FlowClass::Embryonic && req.class != FlowClass::Embryonic {
                req.class
            } else {
                stored
            };
            let backend = if up(backend) {
                backend
            } else {
                let Some(new) = req.select else {
                    return out;
                };
                out.reselect = true;
                new
            };
            table.touch(set, way, backend, promoted, req.now);
            out.forward = true;
            out.backend = backend;
            out
        }
        Probe::Miss(choice) => {
            let Some(backend) = req.select else {
                return Outcome::default();
            };
            let insert = table.insert_at(choice, req.digest, backend, req.class, req.now);
            let (set, way) = choice.map_or((0, 0), |c| (c.set, c.way));
            Outcome {
                set,
                way,
                insert: InsertOutcome::of_insert(insert) as u32,
                forward: true,
                backend,
                ..Outcome::default()
            }
        }
    }
}

/// The flow table block; see the module doc for the interface and timing.
///
/// `2^SET_BITS` sets in two banks of `2^ROW_BITS` rows (`ROW_BITS = SET_BITS - 1`), `WAYS`
/// ways per set; `SLOTS = 2 × WAYS` is the ways of one row of both banks (the two candidate
/// sets of a request). `SET_BITS` in 2..=24, `WAYS` in 1..=16 ([`FlowTable::default`]
/// asserts these; stable Rust cannot compute `ROW_BITS` and `SLOTS` from the others).
#[derive(LogicBlock)]
pub struct FlowTable<
    const SET_BITS: usize,
    const ROW_BITS: usize,
    const WAYS: usize,
    const SLOTS: usize,
> {
    pub clock: Signal<In, Clock>,
    /// Two candidate sets per flow (`Geometry::choices` = 2), else one (a control
    /// register; static while requests flow).
    pub two_choice: Signal<In, bool>,
    // Stage 0: the request.
    pub req_valid: Signal<In, bool>,
    /// The flow's first candidate set (the hash's low bits); the block derives the second.
    pub req_set: Signal<In, Bits<SET_BITS>>,
    pub req_digest: Signal<In, Bits<64>>,
    pub req_now: Signal<In, Bits<32>>,
    pub req_class: Signal<In, Bits<2>>,
    pub req_vip: Signal<In, Bits<16>>,
    pub req_select_ok: Signal<In, bool>,
    pub req_select: Signal<In, Bits<16>>,
    /// Idle timeouts in ticks (the timeout registers; static while requests flow).
    pub timeout_embryonic: Signal<In, Bits<32>>,
    pub timeout_tcp: Signal<In, Bits<32>>,
    pub timeout_udp: Signal<In, Bits<32>>,
    // Stage 2b: the backend-up query, answered combinationally, for every slot (bank 0's
    // ways, then bank 1's).
    pub query_vip: Signal<Out, Bits<16>>,
    pub query_backend: [Signal<Out, Bits<16>>; SLOTS],
    pub query_up: Signal<In, Bits<SLOTS>>,
    // Stage 2, raw: set `req_set` as read from RAM (registered), without in-flight writes.
    // With the pipeline drained, a bubble with `req_set = s` dumps set `s` here.
    pub peek_class: [Signal<Out, Bits<2>>; WAYS],
    pub peek_digest: [Signal<Out, Bits<64>>; WAYS],
    pub peek_backend: [Signal<Out, Bits<16>>; WAYS],
    pub peek_last_seen: [Signal<Out, Bits<32>>; WAYS],
    // Stage 4: the result.
    pub res_valid: Signal<Out, bool>,
    pub res_hit: Signal<Out, bool>,
    /// The candidate set hit or inserted into (0 when neither).
    pub res_set: Signal<Out, Bits<SET_BITS>>,
    pub res_way: Signal<Out, Bits<8>>,
    pub res_stored_class: Signal<Out, Bits<2>>,
    pub res_stored_backend: Signal<Out, Bits<16>>,
    pub res_insert: Signal<Out, Bits<3>>,
    pub res_reselect: Signal<Out, bool>,
    pub res_forward: Signal<Out, bool>,
    pub res_backend: Signal<Out, Bits<16>>,

    // The table: per slot (bank × way), one RAM per field, read latency 2 (`RegRam`: the
    // second read register is the DP16KD's output register on ECP5; see "Registered
    // reads" in the module doc for why a colliding read never matters here).
    class_ram: [RegRam<Bits<2>, ROW_BITS>; SLOTS],
    digest_ram: [RegRam<Bits<64>, ROW_BITS>; SLOTS],
    backend_ram: [RegRam<Bits<16>, ROW_BITS>; SLOTS],
    seen_ram: [RegRam<Bits<32>, ROW_BITS>; SLOTS],

    // Constants (sized, so that Verilator sees no width mismatch).
    no_ways: Constant<Bits<SLOTS>>,
    bank0: Constant<Bits<SLOTS>>,
    bank1: Constant<Bits<SLOTS>>,
    onehot: [Constant<Bits<SLOTS>>; SLOTS],
    /// Slots after `p` in the insert order when `p`'s bank comes first (the higher ways of
    /// its bank and the whole other bank), and when it comes second (its higher ways).
    after_first: [Constant<Bits<SLOTS>>; SLOTS],
    after_second: [Constant<Bits<SLOTS>>; SLOTS],
    way_id: [Constant<Bits<8>>; SLOTS],
    no_way: Constant<Bits<8>>,
    no_set: Constant<Bits<SET_BITS>>,
    /// The bank bit of a set; the bits above it.
    bank_bit: Constant<Bits<SET_BITS>>,
    high_bits: Constant<Bits<SET_BITS>>,
    /// The bits of a row below the bank bit (the set's own; the rest is the set >> 1).
    row_low: Constant<Bits<ROW_BITS>>,
    no_backend: Constant<Bits<16>>,
    class_none: Constant<Bits<2>>,
    class_embryonic: Constant<Bits<2>>,
    class_tcp: Constant<Bits<2>>,
    class_udp: Constant<Bits<2>>,
    /// `w*_fresh` bits: none, and the bit of each class (its code).
    fresh_none: Constant<Bits<4>>,
    fresh_embryonic: Constant<Bits<4>>,
    fresh_tcp: Constant<Bits<4>>,
    fresh_udp: Constant<Bits<4>>,
    insert_none: Constant<Bits<3>>,
    insert_refused: Constant<Bits<3>>,

    // Stage 0 logic: the second candidate set and each bank's row.
    mix: Signal<Local, Bits<SET_BITS>>,
    set2: Signal<Local, Bits<SET_BITS>>,
    first_bank: Signal<Local, bool>,
    row_of1: Signal<Local, Bits<ROW_BITS>>,
    row_of2: Signal<Local, Bits<ROW_BITS>>,
    row0: Signal<Local, Bits<ROW_BITS>>,
    row1: Signal<Local, Bits<ROW_BITS>>,
    // Stage 1: the request, registered while the RAM reads.
    r1_valid: DFF<bool>,
    r1_two: DFF<bool>,
    r1_first: DFF<bool>,
    r1_set: DFF<Bits<SET_BITS>>,
    r1_set2: DFF<Bits<SET_BITS>>,
    r1_row0: DFF<Bits<ROW_BITS>>,
    r1_row1: DFF<Bits<ROW_BITS>>,
    r1_digest: DFF<Bits<64>>,
    r1_now: DFF<Bits<32>>,
    r1_class: DFF<Bits<2>>,
    r1_vip: DFF<Bits<16>>,
    r1_select_ok: DFF<bool>,
    r1_select: DFF<Bits<16>>,
    // Stage 2: the request and the registered RAM outputs.
    r2_valid: DFF<bool>,
    r2_two: DFF<bool>,
    r2_first: DFF<bool>,
    r2_set: DFF<Bits<SET_BITS>>,
    r2_set2: DFF<Bits<SET_BITS>>,
    r2_row0: DFF<Bits<ROW_BITS>>,
    r2_row1: DFF<Bits<ROW_BITS>>,
    r2_digest: DFF<Bits<64>>,
    r2_now: DFF<Bits<32>>,
    r2_class: DFF<Bits<2>>,
    r2_vip: DFF<Bits<16>>,
    r2_select_ok: DFF<bool>,
    r2_select: DFF<Bits<16>>,
    // Stage 2 logic: the facts of every candidate source, each from registers or the RAM's
    // output register alone: the RAM slots' ages, digest matches and liveness, and those
    // of the writes that sit in `w1..w4` when this request reaches stage 2b.
    ram_age: [Signal<Local, Bits<32>>; SLOTS],
    ram_dmatch: Signal<Local, Bits<SLOTS>>,
    ram_live: Signal<Local, Bits<SLOTS>>,
    same1_n: Signal<Local, Bits<SLOTS>>,
    same2_n: Signal<Local, Bits<SLOTS>>,
    same3_n: Signal<Local, Bits<SLOTS>>,
    same4_n: Signal<Local, Bits<SLOTS>>,
    w1_age_n: Signal<Local, Bits<32>>,
    w2_age_n: Signal<Local, Bits<32>>,
    w3_age_n: Signal<Local, Bits<32>>,
    w4_age_n: Signal<Local, Bits<32>>,
    w1_fresh_n: Signal<Local, Bits<4>>,
    w2_fresh_n: Signal<Local, Bits<4>>,
    w3_fresh_n: Signal<Local, Bits<4>>,
    w4_fresh_n: Signal<Local, Bits<4>>,
    // Stage 2b: the request, and the facts of stage 2, registered.
    r2b_valid: DFF<bool>,
    r2b_two: DFF<bool>,
    r2b_first: DFF<bool>,
    r2b_set: DFF<Bits<SET_BITS>>,
    r2b_set2: DFF<Bits<SET_BITS>>,
    r2b_row0: DFF<Bits<ROW_BITS>>,
    r2b_row1: DFF<Bits<ROW_BITS>>,
    r2b_digest: DFF<Bits<64>>,
    r2b_now: DFF<Bits<32>>,
    r2b_class: DFF<Bits<2>>,
    r2b_vip: DFF<Bits<16>>,
    r2b_select_ok: DFF<bool>,
    r2b_select: DFF<Bits<16>>,
    /// The RAM slots as read, with their age by this request's tick, digest match and
    /// liveness (the subtraction and compares after the block RAM's long route end here).
    slot_class: [DFF<Bits<2>>; SLOTS],
    slot_backend: [DFF<Bits<16>>; SLOTS],
    slot_age: [DFF<Bits<32>>; SLOTS],
    slot_dmatch: DFF<Bits<SLOTS>>,
    slot_live: DFF<Bits<SLOTS>>,
    /// For the write that sits in `w1`/`w2`/`w3`/`w4` when this request is in stage 2b
    /// (k-3 .. k-6): the slots whose row equals this request's row in their bank (a
    /// write's one-hot slot then picks), its entry's age by this request's tick, whether
    /// its digest is this request's, and bit `c` of `w*_fresh`: an entry of class `c`
    /// with that age is live (`w1`'s class is stage 3's decision in stage 2, so the class
    /// picks in stage 2b).
    same1: DFF<Bits<SLOTS>>,
    same2: DFF<Bits<SLOTS>>,
    same3: DFF<Bits<SLOTS>>,
    same4: DFF<Bits<SLOTS>>,
    w1_age: DFF<Bits<32>>,
    w2_age: DFF<Bits<32>>,
    w3_age: DFF<Bits<32>>,
    w4_age: DFF<Bits<32>>,
    w1_dmatch: DFF<bool>,
    w2_dmatch: DFF<bool>,
    w3_dmatch: DFF<bool>,
    w4_dmatch: DFF<bool>,
    w1_fresh: DFF<Bits<4>>,
    w2_fresh: DFF<Bits<4>>,
    w3_fresh: DFF<Bits<4>>,
    w4_fresh: DFF<Bits<4>>,
    /// The age of an entry k-1 (k-2) writes, by this request's tick.
    prev_age: DFF<Bits<32>>,
    prev2_age: DFF<Bits<32>>,
    // Stage 2b logic: the sources muxed by the writes of k-6..k-3, then the age order.
    prev_same_n: Signal<Local, Bits<SLOTS>>,
    prev2_same_n: Signal<Local, Bits<SLOTS>>,
    w1_live: Signal<Local, bool>,
    w2_live: Signal<Local, bool>,
    w3_live: Signal<Local, bool>,
    w4_live: Signal<Local, bool>,
    m_dmatch_w: [Signal<Local, bool>; SLOTS],
    m_live_w: [Signal<Local, bool>; SLOTS],
    w1_pending: Signal<Local, Bits<SLOTS>>,
    w2_pending: Signal<Local, Bits<SLOTS>>,
    w3_pending: Signal<Local, Bits<SLOTS>>,
    w4_pending: Signal<Local, Bits<SLOTS>>,
    m_class: [Signal<Local, Bits<2>>; SLOTS],
    m_backend: [Signal<Local, Bits<16>>; SLOTS],
    age: [Signal<Local, Bits<32>>; SLOTS],
    m_valid: Signal<Local, Bits<SLOTS>>,
    m_dmatch: Signal<Local, Bits<SLOTS>>,
    m_live: Signal<Local, Bits<SLOTS>>,
    m_emb: Signal<Local, Bits<SLOTS>>,
    m_ge: [Signal<Local, Bits<SLOTS>>; SLOTS],
    m_prev_ge: Signal<Local, Bits<SLOTS>>,
    m_ge_prev: Signal<Local, Bits<SLOTS>>,
    m_prev2_ge: Signal<Local, Bits<SLOTS>>,
    m_ge_prev2: Signal<Local, Bits<SLOTS>>,
    // Stage 2c: the request and the per-slot facts with k-3..k-6's writes, registered.
    r2c_valid: DFF<bool>,
    r2c_two: DFF<bool>,
    r2c_first: DFF<bool>,
    r2c_set: DFF<Bits<SET_BITS>>,
    r2c_set2: DFF<Bits<SET_BITS>>,
    r2c_row0: DFF<Bits<ROW_BITS>>,
    r2c_row1: DFF<Bits<ROW_BITS>>,
    r2c_digest: DFF<Bits<64>>,
    r2c_now: DFF<Bits<32>>,
    r2c_class: DFF<Bits<2>>,
    r2c_vip: DFF<Bits<16>>,
    r2c_select_ok: DFF<bool>,
    r2c_select: DFF<Bits<16>>,
    s_valid: DFF<Bits<SLOTS>>,
    s_dmatch: DFF<Bits<SLOTS>>,
    s_live: DFF<Bits<SLOTS>>,
    s_emb: DFF<Bits<SLOTS>>,
    s_class: [DFF<Bits<2>>; SLOTS],
    s_backend: [DFF<Bits<16>>; SLOTS],
    /// Bit `v` of `s_ge[w]`: age of slot `w` >= age of slot `v`.
    s_ge: [DFF<Bits<SLOTS>>; SLOTS],
    /// Bit `w`: an entry written by the previous request would be at least as old as slot `w`.
    s_prev_ge: DFF<Bits<SLOTS>>,
    /// Bit `w`: slot `w` is at least as old as an entry written by the previous request.
    s_ge_prev: DFF<Bits<SLOTS>>,
    /// The slots whose row equals the previous request's row in their bank.
    s_prev_same: DFF<Bits<SLOTS>>,
    s_prev_dmatch: DFF<bool>,
    s_prev_live_embryonic: DFF<bool>,
    s_prev_live_tcp: DFF<bool>,
    s_prev_live_udp: DFF<bool>,
    /// The same for an entry written by the request before the previous one (k-2, whose
    /// write stage 2c overlays), and the age order of k-1's and k-2's entries.
    s_prev2_ge: DFF<Bits<SLOTS>>,
    s_ge_prev2: DFF<Bits<SLOTS>>,
    s_prev2_same: DFF<Bits<SLOTS>>,
    s_prev2_dmatch: DFF<bool>,
    s_prev2_live_embryonic: DFF<bool>,
    s_prev2_live_tcp: DFF<bool>,
    s_prev2_live_udp: DFF<bool>,
    s_prev_ge_prev2: DFF<bool>,
    s_prev2_ge_prev: DFF<bool>,
    // Stage 2c logic: k-2's write (in w1 now) overlaid on the facts, the backend-up query,
    // and the LRU picks and the `SlotChoice` copies' first clock under every assumption
    // about k-1's write (one per slot it may have written and that entry's liveness, and
    // one for none of this request's slots).
    fwd2: Signal<Local, Bits<SLOTS>>,
    fwd2_live: Signal<Local, bool>,
    ov_valid: Signal<Local, Bits<SLOTS>>,
    ov_dmatch: Signal<Local, Bits<SLOTS>>,
    ov_live: Signal<Local, Bits<SLOTS>>,
    ov_emb: Signal<Local, Bits<SLOTS>>,
    ov_class: [Signal<Local, Bits<2>>; SLOTS],
    ov_backend: [Signal<Local, Bits<16>>; SLOTS],
    ov_ge: [Signal<Local, Bits<SLOTS>>; SLOTS],
    ov_prev_ge: Signal<Local, Bits<SLOTS>>,
    ov_ge_prev: Signal<Local, Bits<SLOTS>>,
    choice_none: SlotChoice<SLOTS>,
    /// k-1 wrote slot `j` and its entry is dead (`choice0[j]`) or live (`choice1[j]`)
    /// by this request's tick.
    choice0: [SlotChoice<SLOTS>; SLOTS],
    choice1: [SlotChoice<SLOTS>; SLOTS],
    /// The slot k-1 wrote, if it is one of this request's (one-hot or none).
    fwd: Signal<Local, Bits<SLOTS>>,
    /// k-1's entry is live by this request's tick; it is embryonic.
    fwd_live: Signal<Local, bool>,
    fwd_emb: Signal<Local, bool>,
    /// The slots of the request's candidate sets (both banks with two choices, else the
    /// first set's bank), and of its first set's bank.
    avail: Signal<Local, Bits<SLOTS>>,
    s1_slots: Signal<Local, Bits<SLOTS>>,
    /// Stage 2c's LRU order and picks (see the stage's comments).
    embc: Signal<Local, Bits<SLOTS>>,
    gt: [Signal<Local, Bits<SLOTS>>; SLOTS],
    aft_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    aft_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    bt_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    bt_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    ok_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    ok_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    oke_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    oke_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    rel_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    rel_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    prow_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    prow_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    old_a_n: Signal<Local, Bits<SLOTS>>,
    old_b_n: Signal<Local, Bits<SLOTS>>,
    oe_a_n: Signal<Local, Bits<SLOTS>>,
    oe_b_n: Signal<Local, Bits<SLOTS>>,
    old_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    old_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    oe0_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    oe0_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    oe1_a: [Signal<Local, Bits<SLOTS>>; SLOTS],
    oe1_b: [Signal<Local, Bits<SLOTS>>; SLOTS],
    // Stage 3: the request, the slots' class, backend and up bit, and k-1's row match and
    // per-class liveness, registered; the `SlotChoice` copies' second clock.
    r3_valid: DFF<bool>,
    r3_first: DFF<bool>,
    r3_set: DFF<Bits<SET_BITS>>,
    r3_set2: DFF<Bits<SET_BITS>>,
    r3_row0: DFF<Bits<ROW_BITS>>,
    r3_row1: DFF<Bits<ROW_BITS>>,
    r3_digest: DFF<Bits<64>>,
    r3_now: DFF<Bits<32>>,
    r3_class: DFF<Bits<2>>,
    r3_select_ok: DFF<bool>,
    r3_select: DFF<Bits<16>>,
    dec_class: [DFF<Bits<2>>; SLOTS],
    dec_backend: [DFF<Bits<16>>; SLOTS],
    s_up: DFF<Bits<SLOTS>>,
    r3_prev_same: DFF<Bits<SLOTS>>,
    r3_prev_live_embryonic: DFF<bool>,
    r3_prev_live_tcp: DFF<bool>,
    r3_prev_live_udp: DFF<bool>,
    /// The hit slot's class and backend per assumption, from the registers.
    hc_n: Signal<Local, Bits<2>>,
    hb_n: Signal<Local, Bits<16>>,
    hc0: [Signal<Local, Bits<2>>; SLOTS],
    hc1: [Signal<Local, Bits<2>>; SLOTS],
    hb0: [Signal<Local, Bits<16>>; SLOTS],
    hb1: [Signal<Local, Bits<16>>; SLOTS],
    /// The choice that holds (the `SlotChoice` outputs, muxed).
    c_hit: Signal<Local, bool>,
    c_hit_slot: Signal<Local, bool>,
    c_hit_class: Signal<Local, Bits<2>>,
    c_hit_backend: Signal<Local, Bits<16>>,
    c_hit_up: Signal<Local, bool>,
    /// The chosen copy's `way`: the hit's slot on a hit, else the miss's.
    c_way: Signal<Local, Bits<SLOTS>>,
    c_miss_insert: Signal<Local, Bits<3>>,
    stored_class: Signal<Local, Bits<2>>,
    stored_backend: Signal<Local, Bits<16>>,
    chosen: Signal<Local, Bits<SLOTS>>,
    chosen_id: Signal<Local, Bits<8>>,
    chosen_set: Signal<Local, Bits<SET_BITS>>,
    new_class: Signal<Local, Bits<2>>,
    backend: Signal<Local, Bits<16>>,
    insert: Signal<Local, Bits<3>>,
    reselect: Signal<Local, bool>,
    forward: Signal<Local, bool>,
    write: Signal<Local, bool>,
    // Stage 4: the result registers and the write history (w1 = the request in stage 4,
    // writing RAM now; w2 .. w4 the three before it).
    o_valid: DFF<bool>,
    o_hit: DFF<bool>,
    /// The request's two candidate sets and its first set's bank: `res_set` and `res_way`
    /// follow from these and `w1_way` (the slot chosen) after the register, so that
    /// encoding the chosen slot is not in stage 3's path.
    o_set1: DFF<Bits<SET_BITS>>,
    o_set2: DFF<Bits<SET_BITS>>,
    o_first: DFF<bool>,
    o_stored_class: DFF<Bits<2>>,
    o_stored_backend: DFF<Bits<16>>,
    o_insert: DFF<Bits<3>>,
    o_reselect: DFF<bool>,
    o_forward: DFF<bool>,
    o_backend: DFF<Bits<16>>,
    w1_en: DFF<bool>,
    w1_row0: DFF<Bits<ROW_BITS>>,
    w1_row1: DFF<Bits<ROW_BITS>>,
    w1_way: DFF<Bits<SLOTS>>,
    w1_class: DFF<Bits<2>>,
    w1_digest: DFF<Bits<64>>,
    w1_backend: DFF<Bits<16>>,
    w1_seen: DFF<Bits<32>>,
    w2_en: DFF<bool>,
    w2_row0: DFF<Bits<ROW_BITS>>,
    w2_row1: DFF<Bits<ROW_BITS>>,
    w2_way: DFF<Bits<SLOTS>>,
    w2_class: DFF<Bits<2>>,
    w2_digest: DFF<Bits<64>>,
    w2_backend: DFF<Bits<16>>,
    w2_seen: DFF<Bits<32>>,
    w3_en: DFF<bool>,
    w3_row0: DFF<Bits<ROW_BITS>>,
    w3_row1: DFF<Bits<ROW_BITS>>,
    w3_way: DFF<Bits<SLOTS>>,
    w3_class: DFF<Bits<2>>,
    w3_digest: DFF<Bits<64>>,
    w3_backend: DFF<Bits<16>>,
    w3_seen: DFF<Bits<32>>,
    // w4 needs neither rows, digest nor tick: they were matched against the request and
    // subtracted from its tick a cycle earlier, as w3's (`same4`, `w4_dmatch`, `w4_age`).
    w4_en: DFF<bool>,
    w4_way: DFF<Bits<SLOTS>>,
    w4_class: DFF<Bits<2>>,
    w4_backend: DFF<Bits<16>>,
}

/// The 16 K-entry profile for an ECP5-85F: 4096 sets × 4 ways, two banks of 2048 rows.
pub type FlowTable16K = FlowTable<12, 11, 4, 8>;

/// Clock cycles from a request to its `res_*` outputs.
pub const LATENCY: usize = 6;
/// Clock cycles from a request to its backend-up query.
pub const QUERY_LATENCY: usize = 4;
/// Clock cycles from a bubble with `req_set = s` to set `s` on the `peek_*` outputs.
pub const PEEK_LATENCY: usize = 2;

/// The bank bit of a table of `2^set_bits` sets ([`flowgate_core::flow_table::Geometry::bank_bit`]).
pub const fn bank_bit(set_bits: usize) -> usize {
    let b = set_bits.saturating_sub(6);
    if b > MAX_BANK_BIT as usize {
        MAX_BANK_BIT as usize
    } else {
        b
    }
}

fn array<T, const N: usize>(f: impl FnMut(usize) -> T) -> [T; N] {
    std::array::from_fn(f)
}

impl<const SET_BITS: usize, const ROW_BITS: usize, const WAYS: usize, const SLOTS: usize> Default
    for FlowTable<SET_BITS, ROW_BITS, WAYS, SLOTS>
{
    fn default() -> Self {
        assert!((2..=24).contains(&SET_BITS), "SET_BITS must be in 2..=24");
        assert!(ROW_BITS + 1 == SET_BITS, "ROW_BITS must be SET_BITS - 1");
        assert!((1..=16).contains(&WAYS), "WAYS must be in 1..=16");
        assert!(SLOTS == 2 * WAYS, "SLOTS must be 2 × WAYS");
        let b = bank_bit(SET_BITS);
        let bank_ways = (1u64 << WAYS) - 1;
        // Slot p is way p % WAYS of bank p / WAYS.
        let bank_of = |p: usize| bank_ways << (WAYS * (p / WAYS));
        let higher = |p: usize| bank_of(p) & !((2u64 << p) - 1);
        let other = |p: usize| ((1u64 << SLOTS) - 1) & !bank_of(p);
        Self {
            clock: Default::default(),
            two_choice: Default::default(),
            req_valid: Default::default(),
            req_set: Default::default(),
            req_digest: Default::default(),
            req_now: Default::default(),
            req_class: Default::default(),
            req_vip: Default::default(),
            req_select_ok: Default::default(),
            req_select: Default::default(),
            timeout_embryonic: Default::default(),
            timeout_tcp: Default::default(),
            timeout_udp: Default::default(),
            query_vip: Default::default(),
            query_backend: array(|_| Default::default()),
            query_up: Default::default(),
            peek_class: array(|_| Default::default()),
            peek_digest: array(|_| Default::default()),
            peek_backend: array(|_| Default::default()),
            peek_last_seen: array(|_| Default::default()),
            res_valid: Default::default(),
            res_hit: Default::default(),
            res_set: Default::default(),
            res_way: Default::default(),
            res_stored_class: Default::default(),
            res_stored_backend: Default::default(),
            res_insert: Default::default(),
            res_reselect: Default::default(),
            res_forward: Default::default(),
            res_backend: Default::default(),
            class_ram: array(|_| Default::default()),
            digest_ram: array(|_| Default::default()),
            backend_ram: array(|_| Default::default()),
            seen_ram: array(|_| Default::default()),
            no_ways: constant(0),
            bank0: constant(bank_ways),
            bank1: constant(bank_ways << WAYS),
            onehot: array(|p| constant(1 << p)),
            after_first: array(|p| constant(higher(p) | other(p))),
            after_second: array(|p| constant(higher(p))),
            way_id: array(|p| constant((p % WAYS) as u64)),
            no_way: constant(0),
            no_set: constant(0),
            bank_bit: constant(1 << b),
            row_low: constant((1 << b) - 1),
            high_bits: constant(((1u64 << SET_BITS) - 1) & !((2u64 << b) - 1)),
            no_backend: constant(0),
            class_none: constant(0),
            class_embryonic: constant(FlowClass::Embryonic as u64),
            class_tcp: constant(FlowClass::Tcp as u64),
            class_udp: constant(FlowClass::Udp as u64),
            fresh_none: constant(0),
            fresh_embryonic: constant(1 << FlowClass::Embryonic as u64),
            fresh_tcp: constant(1 << FlowClass::Tcp as u64),
            fresh_udp: constant(1 << FlowClass::Udp as u64),
            insert_none: constant(InsertOutcome::None as u64),
            insert_refused: constant(InsertOutcome::Refused as u64),
            mix: Default::default(),
            set2: Default::default(),
            first_bank: Default::default(),
            row_of1: Default::default(),
            row_of2: Default::default(),
            row0: Default::default(),
            row1: Default::default(),
            r1_valid: Default::default(),
            r1_two: Default::default(),
            r1_first: Default::default(),
            r1_set: Default::default(),
            r1_set2: Default::default(),
            r1_row0: Default::default(),
            r1_row1: Default::default(),
            r1_digest: Default::default(),
            r1_now: Default::default(),
            r1_class: Default::default(),
            r1_vip: Default::default(),
            r1_select_ok: Default::default(),
            r1_select: Default::default(),
            r2_valid: Default::default(),
            r2_two: Default::default(),
            r2_first: Default::default(),
            r2_set: Default::default(),
            r2_set2: Default::default(),
            r2_row0: Default::default(),
            r2_row1: Default::default(),
            r2_digest: Default::default(),
            r2_now: Default::default(),
            r2_class: Default::default(),
            r2_vip: Default::default(),
            r2_select_ok: Default::default(),
            r2_select: Default::default(),
            ram_age: array(|_| Default::default()),
            ram_dmatch: Default::default(),
            ram_live: Default::default(),
            same1_n: Default::default(),
            same2_n: Default::default(),
            same3_n: Default::default(),
            same4_n: Default::default(),
            w1_age_n: Default::default(),
            w2_age_n: Default::default(),
            w3_age_n: Default::default(),
            w4_age_n: Default::default(),
            w1_fresh_n: Default::default(),
            w2_fresh_n: Default::default(),
            w3_fresh_n: Default::default(),
            w4_fresh_n: Default::default(),
            r2b_valid: Default::default(),
            r2b_two: Default::default(),
            r2b_first: Default::default(),
            r2b_set: Default::default(),
            r2b_set2: Default::default(),
            r2b_row0: Default::default(),
            r2b_row1: Default::default(),
            r2b_digest: Default::default(),
            r2b_now: Default::default(),
            r2b_class: Default::default(),
            r2b_vip: Default::default(),
            r2b_select_ok: Default::default(),
            r2b_select: Default::default(),
            slot_class: array(|_| Default::default()),
            slot_backend: array(|_| Default::default()),
            slot_age: array(|_| Default::default()),
            slot_dmatch: Default::default(),
            slot_live: Default::default(),
            same1: Default::default(),
            same2: Default::default(),
            same3: Default::default(),
            same4: Default::default(),
            w1_age: Default::default(),
            w2_age: Default::default(),
            w3_age: Default::default(),
            w4_age: Default::default(),
            w1_dmatch: Default::default(),
            w2_dmatch: Default::default(),
            w3_dmatch: Default::default(),
            w4_dmatch: Default::default(),
            w1_fresh: Default::default(),
            w2_fresh: Default::default(),
            w3_fresh: Default::default(),
            w4_fresh: Default::default(),
            prev_same_n: Default::default(),
            prev2_same_n: Default::default(),
            w1_live: Default::default(),
            w2_live: Default::default(),
            w3_live: Default::default(),
            w4_live: Default::default(),
            m_dmatch_w: array(|_| Default::default()),
            m_live_w: array(|_| Default::default()),
            w1_pending: Default::default(),
            w2_pending: Default::default(),
            w3_pending: Default::default(),
            w4_pending: Default::default(),
            m_class: array(|_| Default::default()),
            m_backend: array(|_| Default::default()),
            age: array(|_| Default::default()),
            prev_age: Default::default(),
            prev2_age: Default::default(),
            m_prev2_ge: Default::default(),
            m_ge_prev2: Default::default(),
            r2c_valid: Default::default(),
            r2c_two: Default::default(),
            r2c_first: Default::default(),
            r2c_set: Default::default(),
            r2c_set2: Default::default(),
            r2c_row0: Default::default(),
            r2c_row1: Default::default(),
            r2c_digest: Default::default(),
            r2c_now: Default::default(),
            r2c_class: Default::default(),
            r2c_vip: Default::default(),
            r2c_select_ok: Default::default(),
            r2c_select: Default::default(),
            s_prev2_ge: Default::default(),
            s_ge_prev2: Default::default(),
            s_prev2_same: Default::default(),
            s_prev2_dmatch: Default::default(),
            s_prev2_live_embryonic: Default::default(),
            s_prev2_live_tcp: Default::default(),
            s_prev2_live_udp: Default::default(),
            s_prev_ge_prev2: Default::default(),
            s_prev2_ge_prev: Default::default(),
            fwd2: Default::default(),
            fwd2_live: Default::default(),
            ov_valid: Default::default(),
            ov_dmatch: Default::default(),
            ov_live: Default::default(),
            ov_emb: Default::default(),
            ov_prev_ge: Default::default(),
            ov_ge_prev: Default::default(),
            r3_prev_same: Default::default(),
            r3_prev_live_embryonic: Default::default(),
            r3_prev_live_tcp: Default::default(),
            r3_prev_live_udp: Default::default(),
            ov_class: array(|_| Default::default()),
            ov_backend: array(|_| Default::default()),
            ov_ge: array(|_| Default::default()),
            dec_class: array(|_| Default::default()),
            dec_backend: array(|_| Default::default()),
            m_valid: Default::default(),
            m_dmatch: Default::default(),
            m_live: Default::default(),
            m_emb: Default::default(),
            m_ge: array(|_| Default::default()),
            m_prev_ge: Default::default(),
            m_ge_prev: Default::default(),
            r3_valid: Default::default(),
            r3_first: Default::default(),
            r3_set: Default::default(),
            r3_set2: Default::default(),
            r3_row0: Default::default(),
            r3_row1: Default::default(),
            r3_digest: Default::default(),
            r3_now: Default::default(),
            r3_class: Default::default(),
            r3_select_ok: Default::default(),
            r3_select: Default::default(),
            s_valid: Default::default(),
            s_dmatch: Default::default(),
            s_live: Default::default(),
            s_emb: Default::default(),
            s_up: Default::default(),
            s_class: array(|_| Default::default()),
            s_backend: array(|_| Default::default()),
            s_ge: array(|_| Default::default()),
            s_prev_ge: Default::default(),
            s_ge_prev: Default::default(),
            s_prev_same: Default::default(),
            s_prev_dmatch: Default::default(),
            s_prev_live_embryonic: Default::default(),
            s_prev_live_tcp: Default::default(),
            s_prev_live_udp: Default::default(),
            choice_none: Default::default(),
            choice0: array(|_| Default::default()),
            choice1: array(|_| Default::default()),
            fwd: Default::default(),
            fwd_live: Default::default(),
            fwd_emb: Default::default(),
            avail: Default::default(),
            s1_slots: Default::default(),
            embc: Default::default(),
            gt: array(|_| Default::default()),
            aft_a: array(|_| Default::default()),
            aft_b: array(|_| Default::default()),
            bt_a: array(|_| Default::default()),
            bt_b: array(|_| Default::default()),
            ok_a: array(|_| Default::default()),
            ok_b: array(|_| Default::default()),
            oke_a: array(|_| Default::default()),
            oke_b: array(|_| Default::default()),
            rel_a: array(|_| Default::default()),
            rel_b: array(|_| Default::default()),
            prow_a: array(|_| Default::default()),
            prow_b: array(|_| Default::default()),
            old_a_n: Default::default(),
            old_b_n: Default::default(),
            oe_a_n: Default::default(),
            oe_b_n: Default::default(),
            old_a: array(|_| Default::default()),
            old_b: array(|_| Default::default()),
            oe0_a: array(|_| Default::default()),
            oe0_b: array(|_| Default::default()),
            oe1_a: array(|_| Default::default()),
            oe1_b: array(|_| Default::default()),
            hc_n: Default::default(),
            hb_n: Default::default(),
            hc0: array(|_| Default::default()),
            hc1: array(|_| Default::default()),
            hb0: array(|_| Default::default()),
            hb1: array(|_| Default::default()),
            c_hit: Default::default(),
            c_hit_slot: Default::default(),
            c_hit_class: Default::default(),
            c_hit_backend: Default::default(),
            c_hit_up: Default::default(),
            c_way: Default::default(),
            c_miss_insert: Default::default(),
            stored_class: Default::default(),
            stored_backend: Default::default(),
            chosen: Default::default(),
            chosen_id: Default::default(),
            chosen_set: Default::default(),
            new_class: Default::default(),
            backend: Default::default(),
            insert: Default::default(),
            reselect: Default::default(),
            forward: Default::default(),
            write: Default::default(),
            o_valid: Default::default(),
            o_hit: Default::default(),
            o_set1: Default::default(),
            o_set2: Default::default(),
            o_first: Default::default(),
            o_stored_class: Default::default(),
            o_stored_backend: Default::default(),
            o_insert: Default::default(),
            o_reselect: Default::default(),
            o_forward: Default::default(),
            o_backend: Default::default(),
            w1_en: Default::default(),
            w1_row0: Default::default(),
            w1_row1: Default::default(),
            w1_way: Default::default(),
            w1_class: Default::default(),
            w1_digest: Default::default(),
            w1_backend: Default::default(),
            w1_seen: Default::default(),
            w2_en: Default::default(),
            w2_row0: Default::default(),
            w2_row1: Default::default(),
            w2_way: Default::default(),
            w2_class: Default::default(),
            w2_digest: Default::default(),
            w2_backend: Default::default(),
            w2_seen: Default::default(),
            w3_en: Default::default(),
            w3_row0: Default::default(),
            w3_row1: Default::default(),
            w3_way: Default::default(),
            w3_class: Default::default(),
            w3_digest: Default::default(),
            w3_backend: Default::default(),
            w3_seen: Default::default(),
            w4_en: Default::default(),
            w4_way: Default::default(),
            w4_class: Default::default(),
            w4_backend: Default::default(),
        }
    }
}

impl<const SET_BITS: usize, const ROW_BITS: usize, const WAYS: usize, const SLOTS: usize>
    FlowTable<SET_BITS, ROW_BITS, WAYS, SLOTS>
{
    const WAYS_PLUS_ONE: usize = WAYS + 1;
    const MIX_FROM: usize = 32 - bank_bit(SET_BITS);
    const MIX_TO: usize = Self::MIX_FROM + 1;
}

impl<const SET_BITS: usize, const ROW_BITS: usize, const WAYS: usize, const SLOTS: usize> Logic
    for FlowTable<SET_BITS, ROW_BITS, WAYS, SLOTS>
{
    #[hdl_gen]
    fn update(&mut self) {
        // Every register below is assigned on every path, so no hold (`d = q`) is needed.
        clock!(
            self,
            clock,
            r1_valid,
            r1_two,
            r1_first,
            r1_set,
            r1_set2,
            r1_row0,
            r1_row1,
            r1_digest,
            r1_now,
            r1_class,
            r1_vip,
            r1_select_ok,
            r1_select,
            r2_valid,
            r2_two,
            r2_first,
            r2_set,
            r2_set2,
            r2_row0,
            r2_row1,
            r2_digest,
            r2_now,
            r2_class,
            r2_vip,
            r2_select_ok,
            r2_select,
            r2b_valid,
            r2b_two,
            r2b_first,
            r2b_set,
            r2b_set2,
            r2b_row0,
            r2b_row1,
            r2b_digest,
            r2b_now,
            r2b_class,
            r2b_vip,
            r2b_select_ok,
            r2b_select,
            slot_dmatch,
            slot_live,
            same1,
            same2,
            same3,
            same4,
            r3_valid,
            r3_first,
            r3_set,
            r3_set2,
            r3_row0,
            r3_row1,
            r3_digest,
            r3_now,
            r3_class,
            r3_select_ok,
            r3_select,
            s_valid,
            s_dmatch,
            s_live,
            s_emb,
            s_up,
            s_prev_ge,
            s_ge_prev,
            s_prev_same,
            s_prev_dmatch,
            s_prev_live_embryonic,
            s_prev_live_tcp,
            s_prev_live_udp,
            o_valid,
            o_hit,
            o_set1,
            o_set2,
            o_first,
            o_stored_class,
            o_stored_backend,
            o_insert,
            o_reselect,
            o_forward,
            o_backend,
            w1_en,
            w1_row0,
            w1_row1,
            w1_way,
            w1_class,
            w1_digest,
            w1_backend,
            w1_seen,
            w2_en,
            w2_row0,
            w2_row1,
            w2_way,
            w2_class,
            w2_digest,
            w2_backend,
            w2_seen,
            w3_en,
            w3_row0,
            w3_row1,
            w3_way,
            w3_class,
            w3_digest,
            w3_backend,
            w3_seen,
            w4_en,
            w4_way,
            w4_class,
            w4_backend,
            w1_age,
            w2_age,
            w3_age,
            w4_age,
            w1_dmatch,
            w2_dmatch,
            w3_dmatch,
            w4_dmatch,
            w1_fresh,
            w2_fresh,
            w3_fresh,
            w4_fresh,
            prev_age,
            prev2_age,
            r2c_valid,
            r2c_two,
            r2c_first,
            r2c_set,
            r2c_set2,
            r2c_row0,
            r2c_row1,
            r2c_digest,
            r2c_now,
            r2c_class,
            r2c_vip,
            r2c_select_ok,
            r2c_select,
            s_prev2_ge,
            s_ge_prev2,
            s_prev2_same,
            s_prev2_dmatch,
            s_prev2_live_embryonic,
            s_prev2_live_tcp,
            s_prev2_live_udp,
            s_prev_ge_prev2,
            s_prev2_ge_prev,
            r3_prev_same,
            r3_prev_live_embryonic,
            r3_prev_live_tcp,
            r3_prev_live_udp
        );
        for p in 0..SLOTS {
            self.class_ram[p].clock.next = self.clock.val();
            self.digest_ram[p].clock.next = self.clock.val();
            self.backend_ram[p].clock.next = self.clock.val();
            self.seen_ram[p].clock.next = self.clock.val();
            self.slot_class[p].clock.next = self.clock.val();
            self.slot_backend[p].clock.next = self.clock.val();
            self.slot_age[p].clock.next = self.clock.val();
            self.s_class[p].clock.next = self.clock.val();
            self.s_backend[p].clock.next = self.clock.val();
            self.s_ge[p].clock.next = self.clock.val();
            self.dec_class[p].clock.next = self.clock.val();
            self.dec_backend[p].clock.next = self.clock.val();
        }
        self.choice_none.clock.next = self.clock.val();
        for j in 0..SLOTS {
            self.choice0[j].clock.next = self.clock.val();
            self.choice1[j].clock.next = self.clock.val();
        }

        // ---- Stage 0: the second candidate set, s1 ^ (((h2 | 1) << B) & (S - 1)), and
        // each bank's row (the set without its bank bit); read both rows.
        // `from` is a one-iteration loop: the code generator evaluates a slice offset over
        // loop variables only. Bits 32 − B .. of the digest are `h2 << B`.
        self.mix.next = self.bank_bit.val();
        for from in Self::MIX_FROM..Self::MIX_TO {
            self.mix.next = (self.req_digest.val().get_bits::<SET_BITS>(from)
                & self.high_bits.val())
                | self.bank_bit.val();
        }
        self.set2.next = self.req_set.val();
        if self.two_choice.val() {
            self.set2.next = self.req_set.val() ^ self.mix.val();
        }
        self.first_bank.next = (self.req_set.val() & self.bank_bit.val()).any();
        self.row_of1.next = (self.req_set.val().get_bits::<ROW_BITS>(0) & self.row_low.val())
            | (self.req_set.val().get_bits::<ROW_BITS>(1) & !self.row_low.val());
        self.row_of2.next = (self.set2.val().get_bits::<ROW_BITS>(0) & self.row_low.val())
            | (self.set2.val().get_bits::<ROW_BITS>(1) & !self.row_low.val());
        // With one choice both rows are the first set's; the other bank's is unused.
        self.row0.next = self.row_of1.val();
        self.row1.next = self.row_of2.val();
        if self.first_bank.val() {
            self.row0.next = self.row_of2.val();
            self.row1.next = self.row_of1.val();
        }
        for p in 0..WAYS {
            self.class_ram[p].read_address.next = self.row0.val();
            self.digest_ram[p].read_address.next = self.row0.val();
            self.backend_ram[p].read_address.next = self.row0.val();
            self.seen_ram[p].read_address.next = self.row0.val();
        }
        for p in WAYS..SLOTS {
            self.class_ram[p].read_address.next = self.row1.val();
            self.digest_ram[p].read_address.next = self.row1.val();
            self.backend_ram[p].read_address.next = self.row1.val();
            self.seen_ram[p].read_address.next = self.row1.val();
        }
        self.r1_valid.d.next = self.req_valid.val();
        self.r1_two.d.next = self.two_choice.val();
        self.r1_first.d.next = self.first_bank.val();
        self.r1_set.d.next = self.req_set.val();
        self.r1_set2.d.next = self.set2.val();
        self.r1_row0.d.next = self.row0.val();
        self.r1_row1.d.next = self.row1.val();
        self.r1_digest.d.next = self.req_digest.val();
        self.r1_now.d.next = self.req_now.val();
        self.r1_class.d.next = self.req_class.val();
        self.r1_vip.d.next = self.req_vip.val();
        self.r1_select_ok.d.next = self.req_select_ok.val();
        self.r1_select.d.next = self.req_select.val();

        // ---- Stage 1: the RAM reads land in their second read register (inside `RegRam`;
        // the DP16KD's output register on ECP5).
        self.r2_valid.d.next = self.r1_valid.q.val();
        self.r2_two.d.next = self.r1_two.q.val();
        self.r2_first.d.next = self.r1_first.q.val();
        self.r2_set.d.next = self.r1_set.q.val();
        self.r2_set2.d.next = self.r1_set2.q.val();
        self.r2_row0.d.next = self.r1_row0.q.val();
        self.r2_row1.d.next = self.r1_row1.q.val();
        self.r2_digest.d.next = self.r1_digest.q.val();
        self.r2_now.d.next = self.r1_now.q.val();
        self.r2_class.d.next = self.r1_class.q.val();
        self.r2_vip.d.next = self.r1_vip.q.val();
        self.r2_select_ok.d.next = self.r1_select_ok.q.val();
        self.r2_select.d.next = self.r1_select.q.val();

        // ---- Stage 2: the rows arrive from the RAMs' output registers. Everything that
        // needs a carry chain or a wide compare is done here, per source, and registered
        // for stage 2b: the RAM slots' ages, digest matches and liveness, and those of the
        // writes that sit in w1..w4 when this request reaches stage 2b (k-3 .. k-6: what
        // stage 3 decides now, from r3, then what w1, w2, w3 hold now).
        self.ram_dmatch.next = self.no_ways.val();
        self.ram_live.next = self.no_ways.val();
        for p in 0..SLOTS {
            self.ram_age[p].next = self.r2_now.q.val() - self.seen_ram[p].read_data.val();
            if self.digest_ram[p].read_data.val() == self.r2_digest.q.val() {
                self.ram_dmatch.next = self.ram_dmatch.val() | self.onehot[p].val();
            }
            if (self.class_ram[p].read_data.val() == self.class_embryonic.val()
                && self.ram_age[p].val() <= self.timeout_embryonic.val())
                || (self.class_ram[p].read_data.val() == self.class_tcp.val()
                    && self.ram_age[p].val() <= self.timeout_tcp.val())
                || (self.class_ram[p].read_data.val() == self.class_udp.val()
                    && self.ram_age[p].val() <= self.timeout_udp.val())
            {
                self.ram_live.next = self.ram_live.val() | self.onehot[p].val();
            }
            self.slot_class[p].d.next = self.class_ram[p].read_data.val();
            self.slot_backend[p].d.next = self.backend_ram[p].read_data.val();
            self.slot_age[p].d.next = self.ram_age[p].val();
        }
        self.slot_dmatch.d.next = self.ram_dmatch.val();
        self.slot_live.d.next = self.ram_live.val();
        // Per bank: the slots a write there would hit.
        self.same1_n.next = self.no_ways.val();
        self.same2_n.next = self.no_ways.val();
        self.same3_n.next = self.no_ways.val();
        self.same4_n.next = self.no_ways.val();
        if self.r3_row0.q.val() == self.r2_row0.q.val() {
            self.same1_n.next = self.bank0.val();
        }
        if self.r3_row1.q.val() == self.r2_row1.q.val() {
            self.same1_n.next = self.same1_n.val() | self.bank1.val();
        }
        if self.w1_row0.q.val() == self.r2_row0.q.val() {
            self.same2_n.next = self.bank0.val();
        }
        if self.w1_row1.q.val() == self.r2_row1.q.val() {
            self.same2_n.next = self.same2_n.val() | self.bank1.val();
        }
        if self.w2_row0.q.val() == self.r2_row0.q.val() {
            self.same3_n.next = self.bank0.val();
        }
        if self.w2_row1.q.val() == self.r2_row1.q.val() {
            self.same3_n.next = self.same3_n.val() | self.bank1.val();
        }
        if self.w3_row0.q.val() == self.r2_row0.q.val() {
            self.same4_n.next = self.bank0.val();
        }
        if self.w3_row1.q.val() == self.r2_row1.q.val() {
            self.same4_n.next = self.same4_n.val() | self.bank1.val();
        }
        self.same1.d.next = self.same1_n.val();
        self.same2.d.next = self.same2_n.val();
        self.same3.d.next = self.same3_n.val();
        self.same4.d.next = self.same4_n.val();
        // The four writes' entries carry their requests' ticks and digests (w1's is stage
        // 3's request, r3's); k-1, in stage 2b now, writes one with r2b's tick, and k-2,
        // in stage 2c, with r2c's.
        self.w1_age_n.next = self.r2_now.q.val() - self.r3_now.q.val();
        self.w2_age_n.next = self.r2_now.q.val() - self.w1_seen.q.val();
        self.w3_age_n.next = self.r2_now.q.val() - self.w2_seen.q.val();
        self.w4_age_n.next = self.r2_now.q.val() - self.w3_seen.q.val();
        self.prev_age.d.next = self.r2_now.q.val() - self.r2b_now.q.val();
        self.prev2_age.d.next = self.r2_now.q.val() - self.r2c_now.q.val();
        self.w1_age.d.next = self.w1_age_n.val();
        self.w2_age.d.next = self.w2_age_n.val();
        self.w3_age.d.next = self.w3_age_n.val();
        self.w4_age.d.next = self.w4_age_n.val();
        self.w1_dmatch.d.next = self.r3_digest.q.val() == self.r2_digest.q.val();
        self.w2_dmatch.d.next = self.w1_digest.q.val() == self.r2_digest.q.val();
        self.w3_dmatch.d.next = self.w2_digest.q.val() == self.r2_digest.q.val();
        self.w4_dmatch.d.next = self.w3_digest.q.val() == self.r2_digest.q.val();
        self.w1_fresh_n.next = self.fresh_none.val();
        self.w2_fresh_n.next = self.fresh_none.val();
        self.w3_fresh_n.next = self.fresh_none.val();
        self.w4_fresh_n.next = self.fresh_none.val();
        if self.w1_age_n.val() <= self.timeout_embryonic.val() {
            self.w1_fresh_n.next = self.w1_fresh_n.val() | self.fresh_embryonic.val();
        }
        if self.w1_age_n.val() <= self.timeout_tcp.val() {
            self.w1_fresh_n.next = self.w1_fresh_n.val() | self.fresh_tcp.val();
        }
        if self.w1_age_n.val() <= self.timeout_udp.val() {
            self.w1_fresh_n.next = self.w1_fresh_n.val() | self.fresh_udp.val();
        }
        if self.w2_age_n.val() <= self.timeout_embryonic.val() {
            self.w2_fresh_n.next = self.w2_fresh_n.val() | self.fresh_embryonic.val();
        }
        if self.w2_age_n.val() <= self.timeout_tcp.val() {
            self.w2_fresh_n.next = self.w2_fresh_n.val() | self.fresh_tcp.val();
        }
        if self.w2_age_n.val() <= self.timeout_udp.val() {
            self.w2_fresh_n.next = self.w2_fresh_n.val() | self.fresh_udp.val();
        }
        if self.w3_age_n.val() <= self.timeout_embryonic.val() {
            self.w3_fresh_n.next = self.w3_fresh_n.val() | self.fresh_embryonic.val();
        }
        if self.w3_age_n.val() <= self.timeout_tcp.val() {
            self.w3_fresh_n.next = self.w3_fresh_n.val() | self.fresh_tcp.val();
        }
        if self.w3_age_n.val() <= self.timeout_udp.val() {
            self.w3_fresh_n.next = self.w3_fresh_n.val() | self.fresh_udp.val();
        }
        if self.w4_age_n.val() <= self.timeout_embryonic.val() {
            self.w4_fresh_n.next = self.w4_fresh_n.val() | self.fresh_embryonic.val();
        }
        if self.w4_age_n.val() <= self.timeout_tcp.val() {
            self.w4_fresh_n.next = self.w4_fresh_n.val() | self.fresh_tcp.val();
        }
        if self.w4_age_n.val() <= self.timeout_udp.val() {
            self.w4_fresh_n.next = self.w4_fresh_n.val() | self.fresh_udp.val();
        }
        self.w1_fresh.d.next = self.w1_fresh_n.val();
        self.w2_fresh.d.next = self.w2_fresh_n.val();
        self.w3_fresh.d.next = self.w3_fresh_n.val();
        self.w4_fresh.d.next = self.w4_fresh_n.val();
        // The dump: set `r2_set`'s ways, from its bank.
        for w in 0..WAYS {
            self.peek_class[w].next = self.class_ram[w].read_data.val();
            self.peek_digest[w].next = self.digest_ram[w].read_data.val();
            self.peek_backend[w].next = self.backend_ram[w].read_data.val();
            self.peek_last_seen[w].next = self.seen_ram[w].read_data.val();
            // `bank1` is a one-iteration loop: the code generator evaluates array indices
            // over loop variables only.
            for bank1 in WAYS..Self::WAYS_PLUS_ONE {
                if self.r2_first.q.val() {
                    self.peek_class[w].next = self.class_ram[w + bank1].read_data.val();
                    self.peek_digest[w].next = self.digest_ram[w + bank1].read_data.val();
                    self.peek_backend[w].next = self.backend_ram[w + bank1].read_data.val();
                    self.peek_last_seen[w].next = self.seen_ram[w + bank1].read_data.val();
                }
            }
        }
        self.r2b_valid.d.next = self.r2_valid.q.val();
        self.r2b_two.d.next = self.r2_two.q.val();
        self.r2b_first.d.next = self.r2_first.q.val();
        self.r2b_set.d.next = self.r2_set.q.val();
        self.r2b_set2.d.next = self.r2_set2.q.val();
        self.r2b_row0.d.next = self.r2_row0.q.val();
        self.r2b_row1.d.next = self.r2_row1.q.val();
        self.r2b_digest.d.next = self.r2_digest.q.val();
        self.r2b_now.d.next = self.r2_now.q.val();
        self.r2b_class.d.next = self.r2_class.q.val();
        self.r2b_vip.d.next = self.r2_vip.q.val();
        self.r2b_select_ok.d.next = self.r2_select_ok.q.val();
        self.r2b_select.d.next = self.r2_select.q.val();

        // ---- Stage 2b: apply the writes of requests k-6 .. k-3 (older first, so the
        // newest wins) to the registered slot facts, then reduce each slot to the facts
        // the decision needs: only muxes and the age order's compares, from registers.
        self.w1_pending.next = self.no_ways.val();
        self.w2_pending.next = self.no_ways.val();
        self.w3_pending.next = self.no_ways.val();
        self.w4_pending.next = self.no_ways.val();
        if self.w1_en.q.val() {
            self.w1_pending.next = self.w1_way.q.val() & self.same1.q.val();
        }
        if self.w2_en.q.val() {
            self.w2_pending.next = self.w2_way.q.val() & self.same2.q.val();
        }
        if self.w3_en.q.val() {
            self.w3_pending.next = self.w3_way.q.val() & self.same3.q.val();
        }
        if self.w4_en.q.val() {
            self.w4_pending.next = self.w4_way.q.val() & self.same4.q.val();
        }
        // A write's liveness: its class picks a registered per-class bit (class 0 has none).
        self.w1_live.next = self.w1_fresh.q.val().get_bit(self.w1_class.q.val().index());
        self.w2_live.next = self.w2_fresh.q.val().get_bit(self.w2_class.q.val().index());
        self.w3_live.next = self.w3_fresh.q.val().get_bit(self.w3_class.q.val().index());
        self.w4_live.next = self.w4_fresh.q.val().get_bit(self.w4_class.q.val().index());
        self.m_valid.next = self.no_ways.val();
        self.m_dmatch.next = self.no_ways.val();
        self.m_live.next = self.no_ways.val();
        self.m_emb.next = self.no_ways.val();
        self.m_prev_ge.next = self.no_ways.val();
        self.m_ge_prev.next = self.no_ways.val();
        self.m_prev2_ge.next = self.no_ways.val();
        self.m_ge_prev2.next = self.no_ways.val();
        for p in 0..SLOTS {
            self.m_class[p].next = self.slot_class[p].q.val();
            self.m_backend[p].next = self.slot_backend[p].q.val();
            self.age[p].next = self.slot_age[p].q.val();
            self.m_dmatch_w[p].next = self.slot_dmatch.q.val().get_bit(p);
            self.m_live_w[p].next = self.slot_live.q.val().get_bit(p);
            if self.w4_pending.val().get_bit(p) {
                self.m_class[p].next = self.w4_class.q.val();
                self.m_backend[p].next = self.w4_backend.q.val();
                self.age[p].next = self.w4_age.q.val();
                self.m_dmatch_w[p].next = self.w4_dmatch.q.val();
                self.m_live_w[p].next = self.w4_live.val();
            }
            if self.w3_pending.val().get_bit(p) {
                self.m_class[p].next = self.w3_class.q.val();
                self.m_backend[p].next = self.w3_backend.q.val();
                self.age[p].next = self.w3_age.q.val();
                self.m_dmatch_w[p].next = self.w3_dmatch.q.val();
                self.m_live_w[p].next = self.w3_live.val();
            }
            if self.w2_pending.val().get_bit(p) {
                self.m_class[p].next = self.w2_class.q.val();
                self.m_backend[p].next = self.w2_backend.q.val();
                self.age[p].next = self.w2_age.q.val();
                self.m_dmatch_w[p].next = self.w2_dmatch.q.val();
                self.m_live_w[p].next = self.w2_live.val();
            }
            if self.w1_pending.val().get_bit(p) {
                self.m_class[p].next = self.w1_class.q.val();
                self.m_backend[p].next = self.w1_backend.q.val();
                self.age[p].next = self.w1_age.q.val();
                self.m_dmatch_w[p].next = self.w1_dmatch.q.val();
                self.m_live_w[p].next = self.w1_live.val();
            }
            if self.m_class[p].val() != self.class_none.val() {
                self.m_valid.next = self.m_valid.val() | self.onehot[p].val();
                if self.m_dmatch_w[p].val() {
                    self.m_dmatch.next = self.m_dmatch.val() | self.onehot[p].val();
                }
            }
            if self.m_class[p].val() == self.class_embryonic.val() {
                self.m_emb.next = self.m_emb.val() | self.onehot[p].val();
            }
            if self.m_live_w[p].val() {
                self.m_live.next = self.m_live.val() | self.onehot[p].val();
            }
            if self.prev_age.q.val() >= self.age[p].val() {
                self.m_prev_ge.next = self.m_prev_ge.val() | self.onehot[p].val();
            }
            if self.age[p].val() >= self.prev_age.q.val() {
                self.m_ge_prev.next = self.m_ge_prev.val() | self.onehot[p].val();
            }
            if self.prev2_age.q.val() >= self.age[p].val() {
                self.m_prev2_ge.next = self.m_prev2_ge.val() | self.onehot[p].val();
            }
            if self.age[p].val() >= self.prev2_age.q.val() {
                self.m_ge_prev2.next = self.m_ge_prev2.val() | self.onehot[p].val();
            }
        }
        for p in 0..SLOTS {
            self.m_ge[p].next = self.no_ways.val();
            for v in 0..SLOTS {
                if self.age[p].val() >= self.age[v].val() {
                    self.m_ge[p].next = self.m_ge[p].val() | self.onehot[v].val();
                }
            }
            self.s_ge[p].d.next = self.m_ge[p].val();
            self.s_class[p].d.next = self.m_class[p].val();
            self.s_backend[p].d.next = self.m_backend[p].val();
        }
        self.s_valid.d.next = self.m_valid.val();
        self.s_dmatch.d.next = self.m_dmatch.val();
        self.s_live.d.next = self.m_live.val();
        self.s_emb.d.next = self.m_emb.val();
        self.s_prev_ge.d.next = self.m_prev_ge.val();
        self.s_ge_prev.d.next = self.m_ge_prev.val();
        self.s_prev2_ge.d.next = self.m_prev2_ge.val();
        self.s_ge_prev2.d.next = self.m_ge_prev2.val();
        // k-1 is in stage 2c now, k-2 in stage 3.
        self.prev_same_n.next = self.no_ways.val();
        if self.r2c_valid.q.val() && self.r2c_row0.q.val() == self.r2b_row0.q.val() {
            self.prev_same_n.next = self.bank0.val();
        }
        if self.r2c_valid.q.val() && self.r2c_row1.q.val() == self.r2b_row1.q.val() {
            self.prev_same_n.next = self.prev_same_n.val() | self.bank1.val();
        }
        self.s_prev_same.d.next = self.prev_same_n.val();
        self.prev2_same_n.next = self.no_ways.val();
        if self.r3_valid.q.val() && self.r3_row0.q.val() == self.r2b_row0.q.val() {
            self.prev2_same_n.next = self.bank0.val();
        }
        if self.r3_valid.q.val() && self.r3_row1.q.val() == self.r2b_row1.q.val() {
            self.prev2_same_n.next = self.prev2_same_n.val() | self.bank1.val();
        }
        self.s_prev2_same.d.next = self.prev2_same_n.val();
        self.s_prev_dmatch.d.next = self.r2c_digest.q.val() == self.r2b_digest.q.val();
        self.s_prev2_dmatch.d.next = self.r3_digest.q.val() == self.r2b_digest.q.val();
        self.s_prev_live_embryonic.d.next = self.prev_age.q.val() <= self.timeout_embryonic.val();
        self.s_prev_live_tcp.d.next = self.prev_age.q.val() <= self.timeout_tcp.val();
        self.s_prev_live_udp.d.next = self.prev_age.q.val() <= self.timeout_udp.val();
        self.s_prev2_live_embryonic.d.next = self.prev2_age.q.val() <= self.timeout_embryonic.val();
        self.s_prev2_live_tcp.d.next = self.prev2_age.q.val() <= self.timeout_tcp.val();
        self.s_prev2_live_udp.d.next = self.prev2_age.q.val() <= self.timeout_udp.val();
        self.s_prev_ge_prev2.d.next = self.prev_age.q.val() >= self.prev2_age.q.val();
        self.s_prev2_ge_prev.d.next = self.prev2_age.q.val() >= self.prev_age.q.val();
        self.r2c_valid.d.next = self.r2b_valid.q.val();
        self.r2c_two.d.next = self.r2b_two.q.val();
        self.r2c_first.d.next = self.r2b_first.q.val();
        self.r2c_set.d.next = self.r2b_set.q.val();
        self.r2c_set2.d.next = self.r2b_set2.q.val();
        self.r2c_row0.d.next = self.r2b_row0.q.val();
        self.r2c_row1.d.next = self.r2b_row1.q.val();
        self.r2c_digest.d.next = self.r2b_digest.q.val();
        self.r2c_now.d.next = self.r2b_now.q.val();
        self.r2c_class.d.next = self.r2b_class.q.val();
        self.r2c_vip.d.next = self.r2b_vip.q.val();
        self.r2c_select_ok.d.next = self.r2b_select_ok.q.val();
        self.r2c_select.d.next = self.r2b_select.q.val();

        // ---- Stage 2c: the write of request k-2 (in w1 now, decided a clock ago) is
        // overlaid on the registered facts (muxes by its one-hot slot and the registered
        // row match), with what stage 2b knew of its entry: digest match, liveness per
        // class (its class picks), age order against every slot and against k-1's entry.
        self.fwd2.next = self.no_ways.val();
        if self.w1_en.q.val() {
            self.fwd2.next = self.w1_way.q.val() & self.s_prev2_same.q.val();
        }
        self.fwd2_live.next = (self.w1_class.q.val() == self.class_embryonic.val()
            && self.s_prev2_live_embryonic.q.val())
            || (self.w1_class.q.val() == self.class_tcp.val() && self.s_prev2_live_tcp.q.val())
            || (self.w1_class.q.val() == self.class_udp.val() && self.s_prev2_live_udp.q.val());
        self.ov_valid.next = self.s_valid.q.val() | self.fwd2.val();
        self.ov_dmatch.next = self.s_dmatch.q.val() & !self.fwd2.val();
        if self.s_prev2_dmatch.q.val() {
            self.ov_dmatch.next = self.s_dmatch.q.val() | self.fwd2.val();
        }
        self.ov_live.next = self.s_live.q.val() & !self.fwd2.val();
        if self.fwd2_live.val() {
            self.ov_live.next = self.s_live.q.val() | self.fwd2.val();
        }
        self.ov_emb.next = self.s_emb.q.val() & !self.fwd2.val();
        if self.w1_class.q.val() == self.class_embryonic.val() {
            self.ov_emb.next = self.s_emb.q.val() | self.fwd2.val();
        }
        self.ov_prev_ge.next = self.s_prev_ge.q.val() & !self.fwd2.val();
        if self.s_prev_ge_prev2.q.val() {
            self.ov_prev_ge.next = self.s_prev_ge.q.val() | self.fwd2.val();
        }
        self.ov_ge_prev.next = self.s_ge_prev.q.val() & !self.fwd2.val();
        if self.s_prev2_ge_prev.q.val() {
            self.ov_ge_prev.next = self.s_ge_prev.q.val() | self.fwd2.val();
        }
        for p in 0..SLOTS {
            self.ov_class[p].next = self.s_class[p].q.val();
            self.ov_backend[p].next = self.s_backend[p].q.val();
            // Bit v: slot p as old as slot v. Column p, if k-2 wrote p: slot v against
            // k-2's entry (the row below replaces bit p itself, which is set).
            self.ov_ge[p].next = self.s_ge[p].q.val() & !self.fwd2.val();
            if self.s_ge_prev2.q.val().get_bit(p) {
                self.ov_ge[p].next = self.s_ge[p].q.val() | self.fwd2.val();
            }
            if self.fwd2.val().get_bit(p) {
                self.ov_class[p].next = self.w1_class.q.val();
                self.ov_backend[p].next = self.w1_backend.q.val();
                self.ov_ge[p].next = self.s_prev2_ge.q.val() | self.onehot[p].val();
            }
            self.query_backend[p].next = self.ov_backend[p].val();
            self.dec_class[p].d.next = self.ov_class[p].val();
            self.dec_backend[p].d.next = self.ov_backend[p].val();
        }
        self.query_vip.next = self.r2c_vip.q.val();
        self.s_up.d.next = self.query_up.val();
        self.r3_prev_same.d.next = self.s_prev_same.q.val();
        self.r3_prev_live_embryonic.d.next = self.s_prev_live_embryonic.q.val();
        self.r3_prev_live_tcp.d.next = self.s_prev_live_tcp.q.val();
        self.r3_prev_live_udp.d.next = self.s_prev_live_udp.q.val();
        self.r3_valid.d.next = self.r2c_valid.q.val();
        self.r3_first.d.next = self.r2c_first.q.val();
        self.r3_set.d.next = self.r2c_set.q.val();
        self.r3_set2.d.next = self.r2c_set2.q.val();
        self.r3_row0.d.next = self.r2c_row0.q.val();
        self.r3_row1.d.next = self.r2c_row1.q.val();
        self.r3_digest.d.next = self.r2c_digest.q.val();
        self.r3_now.d.next = self.r2c_now.q.val();
        self.r3_class.d.next = self.r2c_class.q.val();
        self.r3_select_ok.d.next = self.r2c_select_ok.q.val();
        self.r3_select.d.next = self.r2c_select.q.val();

        // Stage 2c, continued: the write of request k-1 (in stage 3 now) is known only
        // in stage 3, so the choice is made for every slot it may have written
        // (`choice0/1[j]`) and for none (`choice_none`), and registered in the copies;
        // stage 3 muxes in the one that holds.
        self.s1_slots.next = self.bank0.val();
        if self.r2c_first.q.val() {
            self.s1_slots.next = self.bank1.val();
        }
        self.avail.next = self.s1_slots.val();
        if self.r2c_two.q.val() {
            self.avail.next = self.bank0.val() | self.bank1.val();
        }
        // LRU order from the registered age compares, for both insert orders (`_a`: the
        // first set first, `_b`: the second), and the least recently seen slots (of all,
        // of the embryonic ones) for each assumption about k-1's write. Bit `v` of
        // `bt_*[p]`: slot p goes before slot v (older, or as old and earlier in the order).
        self.embc.next = self.ov_emb.val() & self.avail.val();
        for p in 0..SLOTS {
            // age[p] > age[v] is !(age[v] >= age[p]).
            self.gt[p].next = self.no_ways.val();
            for v in 0..SLOTS {
                if !self.ov_ge[v].val().get_bit(p) {
                    self.gt[p].next = self.gt[p].val() | self.onehot[v].val();
                }
            }
            self.aft_a[p].next = self.after_second[p].val();
            self.aft_b[p].next = self.after_first[p].val();
            if self.s1_slots.val().get_bit(p) {
                self.aft_a[p].next = self.after_first[p].val();
                self.aft_b[p].next = self.after_second[p].val();
            }
            self.bt_a[p].next = (self.ov_ge[p].val() & self.aft_a[p].val())
                | (self.gt[p].val() & !self.aft_a[p].val());
            self.bt_b[p].next = (self.ov_ge[p].val() & self.aft_b[p].val())
                | (self.gt[p].val() & !self.aft_b[p].val());
            self.ok_a[p].next = self.bt_a[p].val() | !self.avail.val() | self.onehot[p].val();
            self.ok_b[p].next = self.bt_b[p].val() | !self.avail.val() | self.onehot[p].val();
            self.oke_a[p].next = self.bt_a[p].val() | !self.embc.val() | self.onehot[p].val();
            self.oke_b[p].next = self.bt_b[p].val() | !self.embc.val() | self.onehot[p].val();
            // Bit j: slot p goes before k-1's entry in slot j (at least as old and before
            // it in the order, or older).
            self.rel_a[p].next = self.no_ways.val();
            self.rel_b[p].next = self.no_ways.val();
            if self.ov_ge_prev.val().get_bit(p) {
                self.rel_a[p].next = self.aft_a[p].val();
                self.rel_b[p].next = self.aft_b[p].val();
            }
            if !self.ov_prev_ge.val().get_bit(p) {
                self.rel_a[p].next = !self.no_ways.val();
                self.rel_b[p].next = !self.no_ways.val();
            }
            // Bit v: k-1's entry in slot p goes before slot v.
            self.prow_a[p].next = (self.ov_prev_ge.val() & self.aft_a[p].val())
                | (!self.ov_ge_prev.val() & !self.aft_a[p].val());
            self.prow_b[p].next = (self.ov_prev_ge.val() & self.aft_b[p].val())
                | (!self.ov_ge_prev.val() & !self.aft_b[p].val());
        }
        self.old_a_n.next = self.no_ways.val();
        self.old_b_n.next = self.no_ways.val();
        self.oe_a_n.next = self.no_ways.val();
        self.oe_b_n.next = self.no_ways.val();
        for p in 0..SLOTS {
            if self.avail.val().get_bit(p) && self.ok_a[p].val().all() {
                self.old_a_n.next = self.old_a_n.val() | self.onehot[p].val();
            }
            if self.avail.val().get_bit(p) && self.ok_b[p].val().all() {
                self.old_b_n.next = self.old_b_n.val() | self.onehot[p].val();
            }
            if self.embc.val().get_bit(p) && self.oke_a[p].val().all() {
                self.oe_a_n.next = self.oe_a_n.val() | self.onehot[p].val();
            }
            if self.embc.val().get_bit(p) && self.oke_b[p].val().all() {
                self.oe_b_n.next = self.oe_b_n.val() | self.onehot[p].val();
            }
        }
        for j in 0..SLOTS {
            self.old_a[j].next = self.no_ways.val();
            self.old_b[j].next = self.no_ways.val();
            self.oe0_a[j].next = self.no_ways.val();
            self.oe0_b[j].next = self.no_ways.val();
            self.oe1_a[j].next = self.no_ways.val();
            self.oe1_b[j].next = self.no_ways.val();
            // Slots p other than j: against the others as before, and against k-1's
            // entry in j if j is a candidate (for `oe1`: an embryonic candidate).
            for p in 0..SLOTS {
                if self.avail.val().get_bit(p)
                    && (self.ok_a[p].val() | self.onehot[j].val()).all()
                    && (self.rel_a[p].val().get_bit(j) || !self.avail.val().get_bit(j))
                {
                    self.old_a[j].next = self.old_a[j].val() | self.onehot[p].val();
                }
                if self.avail.val().get_bit(p)
                    && (self.ok_b[p].val() | self.onehot[j].val()).all()
                    && (self.rel_b[p].val().get_bit(j) || !self.avail.val().get_bit(j))
                {
                    self.old_b[j].next = self.old_b[j].val() | self.onehot[p].val();
                }
                if self.embc.val().get_bit(p) && (self.oke_a[p].val() | self.onehot[j].val()).all()
                {
                    self.oe0_a[j].next = self.oe0_a[j].val() | self.onehot[p].val();
                    if self.rel_a[p].val().get_bit(j) || !self.avail.val().get_bit(j) {
                        self.oe1_a[j].next = self.oe1_a[j].val() | self.onehot[p].val();
                    }
                }
                if self.embc.val().get_bit(p) && (self.oke_b[p].val() | self.onehot[j].val()).all()
                {
                    self.oe0_b[j].next = self.oe0_b[j].val() | self.onehot[p].val();
                    if self.rel_b[p].val().get_bit(j) || !self.avail.val().get_bit(j) {
                        self.oe1_b[j].next = self.oe1_b[j].val() | self.onehot[p].val();
                    }
                }
            }
            // Slot j itself, holding k-1's entry.
            self.old_a[j].next = self.old_a[j].val() & !self.onehot[j].val();
            self.old_b[j].next = self.old_b[j].val() & !self.onehot[j].val();
            self.oe0_a[j].next = self.oe0_a[j].val() & !self.onehot[j].val();
            self.oe0_b[j].next = self.oe0_b[j].val() & !self.onehot[j].val();
            self.oe1_a[j].next = self.oe1_a[j].val() & !self.onehot[j].val();
            self.oe1_b[j].next = self.oe1_b[j].val() & !self.onehot[j].val();
            if self.avail.val().get_bit(j)
                && (self.prow_a[j].val() | !self.avail.val() | self.onehot[j].val()).all()
            {
                self.old_a[j].next = self.old_a[j].val() | self.onehot[j].val();
            }
            if self.avail.val().get_bit(j)
                && (self.prow_b[j].val() | !self.avail.val() | self.onehot[j].val()).all()
            {
                self.old_b[j].next = self.old_b[j].val() | self.onehot[j].val();
            }
            if self.avail.val().get_bit(j)
                && (self.prow_a[j].val() | !self.embc.val() | self.onehot[j].val()).all()
            {
                self.oe1_a[j].next = self.oe1_a[j].val() | self.onehot[j].val();
            }
            if self.avail.val().get_bit(j)
                && (self.prow_b[j].val() | !self.embc.val() | self.onehot[j].val()).all()
            {
                self.oe1_b[j].next = self.oe1_b[j].val() | self.onehot[j].val();
            }
        }
        self.hc_n.next = self.class_none.val();
        self.hb_n.next = self.no_backend.val();
        for p in 0..SLOTS {
            if self.choice_none.hit_way.val().get_bit(p) {
                self.hc_n.next = self.hc_n.val() | self.dec_class[p].q.val();
                self.hb_n.next = self.hb_n.val() | self.dec_backend[p].q.val();
            }
        }
        self.choice_none.valid.next = self.ov_valid.val();
        self.choice_none.dmatch.next = self.ov_dmatch.val();
        self.choice_none.live.next = self.ov_live.val();
        self.choice_none.up.next = self.s_up.q.val();
        self.choice_none.slot.next = self.no_ways.val();
        self.choice_none.avail.next = self.avail.val();
        self.choice_none.first.next = self.r2c_first.q.val();
        self.choice_none.two.next = self.r2c_two.q.val();
        self.choice_none.req_embryonic.next = self.r2c_class.q.val() == self.class_embryonic.val();
        self.choice_none.oldest_a.next = self.old_a_n.val();
        self.choice_none.oldest_b.next = self.old_b_n.val();
        self.choice_none.oldest_emb0_a.next = self.oe_a_n.val();
        self.choice_none.oldest_emb0_b.next = self.oe_b_n.val();
        self.choice_none.oldest_emb1_a.next = self.oe_a_n.val();
        self.choice_none.oldest_emb1_b.next = self.oe_b_n.val();
        // Slot j holding k-1's entry: valid, k-1's digest, taken as up (see the module
        // doc), dead or live; embryonic or not per `SlotChoice`'s two miss versions.
        for j in 0..SLOTS {
            self.choice0[j].valid.next = self.ov_valid.val() | self.onehot[j].val();
            self.choice1[j].valid.next = self.ov_valid.val() | self.onehot[j].val();
            self.choice0[j].dmatch.next = self.ov_dmatch.val() & !self.onehot[j].val();
            self.choice1[j].dmatch.next = self.ov_dmatch.val() & !self.onehot[j].val();
            if self.s_prev_dmatch.q.val() {
                self.choice0[j].dmatch.next = self.ov_dmatch.val() | self.onehot[j].val();
                self.choice1[j].dmatch.next = self.ov_dmatch.val() | self.onehot[j].val();
            }
            self.choice0[j].live.next = self.ov_live.val() & !self.onehot[j].val();
            self.choice1[j].live.next = self.ov_live.val() | self.onehot[j].val();
            self.choice0[j].up.next = self.s_up.q.val() | self.onehot[j].val();
            self.choice1[j].up.next = self.s_up.q.val() | self.onehot[j].val();
            self.choice0[j].slot.next = self.onehot[j].val();
            self.choice1[j].slot.next = self.onehot[j].val();
            self.choice0[j].avail.next = self.avail.val();
            self.choice1[j].avail.next = self.avail.val();
            self.choice0[j].first.next = self.r2c_first.q.val();
            self.choice1[j].first.next = self.r2c_first.q.val();
            self.choice0[j].two.next = self.r2c_two.q.val();
            self.choice1[j].two.next = self.r2c_two.q.val();
            self.choice0[j].req_embryonic.next =
                self.r2c_class.q.val() == self.class_embryonic.val();
            self.choice1[j].req_embryonic.next =
                self.r2c_class.q.val() == self.class_embryonic.val();
            self.choice0[j].oldest_a.next = self.old_a[j].val();
            self.choice1[j].oldest_a.next = self.old_a[j].val();
            self.choice0[j].oldest_b.next = self.old_b[j].val();
            self.choice1[j].oldest_b.next = self.old_b[j].val();
            self.choice0[j].oldest_emb0_a.next = self.oe0_a[j].val();
            self.choice1[j].oldest_emb0_a.next = self.oe0_a[j].val();
            self.choice0[j].oldest_emb0_b.next = self.oe0_b[j].val();
            self.choice1[j].oldest_emb0_b.next = self.oe0_b[j].val();
            self.choice0[j].oldest_emb1_a.next = self.oe1_a[j].val();
            self.choice1[j].oldest_emb1_a.next = self.oe1_a[j].val();
            self.choice0[j].oldest_emb1_b.next = self.oe1_b[j].val();
            self.choice1[j].oldest_emb1_b.next = self.oe1_b[j].val();
            // The hit slot's class and backend as the registers hold them.
            self.hc0[j].next = self.class_none.val();
            self.hc1[j].next = self.class_none.val();
            self.hb0[j].next = self.no_backend.val();
            self.hb1[j].next = self.no_backend.val();
            for p in 0..SLOTS {
                if self.choice0[j].hit_way.val().get_bit(p) {
                    self.hc0[j].next = self.hc0[j].val() | self.dec_class[p].q.val();
                    self.hb0[j].next = self.hb0[j].val() | self.dec_backend[p].q.val();
                }
                if self.choice1[j].hit_way.val().get_bit(p) {
                    self.hc1[j].next = self.hc1[j].val() | self.dec_class[p].q.val();
                    self.hb1[j].next = self.hb1[j].val() | self.dec_backend[p].q.val();
                }
            }
        }
        // ---- Stage 3: the write of request k-1 (in w1 now) picks one choice: the
        // one-cycle loop is this mux, by k-1's written slot and class.
        self.fwd.next = self.no_ways.val();
        if self.w1_en.q.val() {
            self.fwd.next = self.w1_way.q.val() & self.r3_prev_same.q.val();
        }
        self.fwd_live.next = (self.w1_class.q.val() == self.class_embryonic.val()
            && self.r3_prev_live_embryonic.q.val())
            || (self.w1_class.q.val() == self.class_tcp.val() && self.r3_prev_live_tcp.q.val())
            || (self.w1_class.q.val() == self.class_udp.val() && self.r3_prev_live_udp.q.val());
        self.fwd_emb.next = self.w1_class.q.val() == self.class_embryonic.val();
        self.choice_none.slot_emb.next = self.fwd_emb.val();
        for j in 0..SLOTS {
            self.choice0[j].slot_emb.next = self.fwd_emb.val();
            self.choice1[j].slot_emb.next = self.fwd_emb.val();
        }
        self.c_hit.next = false;
        self.c_way.next = self.no_ways.val();
        self.c_hit_slot.next = false;
        self.c_hit_class.next = self.class_none.val();
        self.c_hit_backend.next = self.no_backend.val();
        self.c_hit_up.next = false;
        self.c_miss_insert.next = self.insert_none.val();
        if !self.fwd.val().any() {
            self.c_hit.next = self.choice_none.hit.val();
            self.c_way.next = self.choice_none.way.val();
            self.c_hit_class.next = self.hc_n.val();
            self.c_hit_backend.next = self.hb_n.val();
            self.c_hit_slot.next = self.choice_none.hit_slot.val();
            self.c_hit_up.next = self.choice_none.hit_up.val();
            // With no slot written both miss versions are the same.
            self.c_miss_insert.next = self.choice_none.miss_insert0.val();
            if self.fwd_emb.val() {
                self.c_miss_insert.next = self.choice_none.miss_insert1.val();
            }
        }
        // One-hot: at most one term below is on, so ORs, not a priority chain.
        for j in 0..SLOTS {
            if self.fwd.val().get_bit(j) && !self.fwd_live.val() {
                self.c_hit.next = self.c_hit.val() || self.choice0[j].hit.val();
                self.c_way.next = self.c_way.val() | self.choice0[j].way.val();
                self.c_hit_slot.next = self.c_hit_slot.val() || self.choice0[j].hit_slot.val();
                self.c_hit_class.next = self.c_hit_class.val() | self.hc0[j].val();
                self.c_hit_backend.next = self.c_hit_backend.val() | self.hb0[j].val();
                self.c_hit_up.next = self.c_hit_up.val() || self.choice0[j].hit_up.val();
                if self.fwd_emb.val() {
                    self.c_miss_insert.next =
                        self.c_miss_insert.val() | self.choice0[j].miss_insert1.val();
                } else {
                    self.c_miss_insert.next =
                        self.c_miss_insert.val() | self.choice0[j].miss_insert0.val();
                }
            }
            if self.fwd.val().get_bit(j) && self.fwd_live.val() {
                self.c_hit.next = self.c_hit.val() || self.choice1[j].hit.val();
                self.c_way.next = self.c_way.val() | self.choice1[j].way.val();
                self.c_hit_slot.next = self.c_hit_slot.val() || self.choice1[j].hit_slot.val();
                self.c_hit_class.next = self.c_hit_class.val() | self.hc1[j].val();
                self.c_hit_backend.next = self.c_hit_backend.val() | self.hb1[j].val();
                self.c_hit_up.next = self.c_hit_up.val() || self.choice1[j].hit_up.val();
                if self.fwd_emb.val() {
                    self.c_miss_insert.next =
                        self.c_miss_insert.val() | self.choice1[j].miss_insert1.val();
                } else {
                    self.c_miss_insert.next =
                        self.c_miss_insert.val() | self.choice1[j].miss_insert0.val();
                }
            }
        }
        // A hit on k-1's slot: its class and backend are k-1's.
        self.stored_class.next = self.class_none.val();
        self.stored_backend.next = self.no_backend.val();
        if self.c_hit.val() {
            self.stored_class.next = self.c_hit_class.val();
            self.stored_backend.next = self.c_hit_backend.val();
            if self.c_hit_slot.val() {
                self.stored_class.next = self.w1_class.q.val();
                self.stored_backend.next = self.w1_backend.q.val();
            }
        }

        self.chosen.next = self.no_ways.val();
        self.new_class.next = self.r3_class.q.val();
        self.backend.next = self.no_backend.val();
        self.insert.next = self.insert_none.val();
        self.reselect.next = false;
        self.forward.next = false;
        self.write.next = false;
        if self.r3_valid.q.val() {
            if self.c_hit.val() {
                // Hit: touch, promoting an embryonic entry, re-selecting a down backend.
                self.chosen.next = self.c_way.val();
                self.new_class.next = self.stored_class.val();
                if self.stored_class.val() == self.class_embryonic.val()
                    && self.r3_class.q.val() != self.class_embryonic.val()
                {
                    self.new_class.next = self.r3_class.q.val();
                }
                if self.c_hit_up.val() {
                    self.backend.next = self.stored_backend.val();
                    self.forward.next = true;
                    self.write.next = true;
                } else if self.r3_select_ok.q.val() {
                    self.backend.next = self.r3_select.q.val();
                    self.reselect.next = true;
                    self.forward.next = true;
                    self.write.next = true;
                }
            } else if self.r3_select_ok.q.val() {
                // Miss: insert where the choice says (nowhere when refused).
                self.backend.next = self.r3_select.q.val();
                self.forward.next = true;
                self.chosen.next = self.c_way.val();
                self.insert.next = self.c_miss_insert.val();
                self.write.next = self.c_miss_insert.val() != self.insert_refused.val();
            }
        }
        self.o_valid.d.next = self.r3_valid.q.val();
        self.o_hit.d.next = self.r3_valid.q.val() && self.c_hit.val();
        self.o_set1.d.next = self.r3_set.q.val();
        self.o_set2.d.next = self.r3_set2.q.val();
        self.o_first.d.next = self.r3_first.q.val();
        self.o_stored_class.d.next = self.stored_class.val();
        self.o_stored_backend.d.next = self.stored_backend.val();
        self.o_insert.d.next = self.insert.val();
        self.o_reselect.d.next = self.reselect.val();
        self.o_forward.d.next = self.forward.val();
        self.o_backend.d.next = self.backend.val();
        self.w1_en.d.next = self.write.val();
        self.w1_row0.d.next = self.r3_row0.q.val();
        self.w1_row1.d.next = self.r3_row1.q.val();
        self.w1_way.d.next = self.chosen.val();
        self.w1_class.d.next = self.new_class.val();
        self.w1_digest.d.next = self.r3_digest.q.val();
        self.w1_backend.d.next = self.backend.val();
        self.w1_seen.d.next = self.r3_now.q.val();

        // ---- Stage 4: results out; w1 writes RAM; the history shifts.
        self.res_valid.next = self.o_valid.q.val();
        self.res_hit.next = self.o_hit.q.val();
        // The chosen slot (`w1_way`, none when neither hit nor insert) as set and way.
        self.chosen_id.next = self.no_way.val();
        for p in 0..SLOTS {
            if self.w1_way.q.val().get_bit(p) {
                self.chosen_id.next = self.way_id[p].val();
            }
        }
        self.chosen_set.next = self.no_set.val();
        if (self.w1_way.q.val() & self.bank0.val()).any() {
            self.chosen_set.next = self.o_set1.q.val();
            if self.o_first.q.val() {
                self.chosen_set.next = self.o_set2.q.val();
            }
        }
        if (self.w1_way.q.val() & self.bank1.val()).any() {
            self.chosen_set.next = self.o_set2.q.val();
            if self.o_first.q.val() {
                self.chosen_set.next = self.o_set1.q.val();
            }
        }
        self.res_set.next = self.chosen_set.val();
        self.res_way.next = self.chosen_id.val();
        self.res_stored_class.next = self.o_stored_class.q.val();
        self.res_stored_backend.next = self.o_stored_backend.q.val();
        self.res_insert.next = self.o_insert.q.val();
        self.res_reselect.next = self.o_reselect.q.val();
        self.res_forward.next = self.o_forward.q.val();
        self.res_backend.next = self.o_backend.q.val();
        for p in 0..SLOTS {
            self.class_ram[p].write_enable.next =
                self.w1_en.q.val() && self.w1_way.q.val().get_bit(p);
            self.digest_ram[p].write_enable.next =
                self.w1_en.q.val() && self.w1_way.q.val().get_bit(p);
            self.backend_ram[p].write_enable.next =
                self.w1_en.q.val() && self.w1_way.q.val().get_bit(p);
            self.seen_ram[p].write_enable.next =
                self.w1_en.q.val() && self.w1_way.q.val().get_bit(p);
            self.class_ram[p].write_data.next = self.w1_class.q.val();
            self.digest_ram[p].write_data.next = self.w1_digest.q.val();
            self.backend_ram[p].write_data.next = self.w1_backend.q.val();
            self.seen_ram[p].write_data.next = self.w1_seen.q.val();
        }
        for p in 0..WAYS {
            self.class_ram[p].write_address.next = self.w1_row0.q.val();
            self.digest_ram[p].write_address.next = self.w1_row0.q.val();
            self.backend_ram[p].write_address.next = self.w1_row0.q.val();
            self.seen_ram[p].write_address.next = self.w1_row0.q.val();
        }
        for p in WAYS..SLOTS {
            self.class_ram[p].write_address.next = self.w1_row1.q.val();
            self.digest_ram[p].write_address.next = self.w1_row1.q.val();
            self.backend_ram[p].write_address.next = self.w1_row1.q.val();
            self.seen_ram[p].write_address.next = self.w1_row1.q.val();
        }
        self.w2_en.d.next = self.w1_en.q.val();
        self.w2_row0.d.next = self.w1_row0.q.val();
        self.w2_row1.d.next = self.w1_row1.q.val();
        self.w2_way.d.next = self.w1_way.q.val();
        self.w2_class.d.next = self.w1_class.q.val();
        self.w2_digest.d.next = self.w1_digest.q.val();
        self.w2_backend.d.next = self.w1_backend.q.val();
        self.w2_seen.d.next = self.w1_seen.q.val();
        self.w3_en.d.next = self.w2_en.q.val();
        self.w3_row0.d.next = self.w2_row0.q.val();
        self.w3_row1.d.next = self.w2_row1.q.val();
        self.w3_way.d.next = self.w2_way.q.val();
        self.w3_class.d.next = self.w2_class.q.val();
        self.w3_digest.d.next = self.w2_digest.q.val();
        self.w3_backend.d.next = self.w2_backend.q.val();
        self.w3_seen.d.next = self.w2_seen.q.val();
        self.w4_en.d.next = self.w3_en.q.val();
        self.w4_way.d.next = self.w3_way.q.val();
        self.w4_class.d.next = self.w3_class.q.val();
        self.w4_backend.d.next = self.w3_backend.q.val();
    }
}

/// The choice for one assumption about the write of request k-1, over two clocks: the
/// slot it wrote (`slot`, one-hot, or none) and that entry's liveness are already folded
/// into the facts on its inputs, and the LRU picks (`oldest*`) come computed for that
/// assumption (the parent feeds one copy per slot and liveness, and one for "k-1 wrote
/// none of this request's slots"). The inputs belong to stage 2c, where everything but
/// k-1's write is known: the hit and both miss versions are decided there and registered
/// here. The outputs belong to stage 3, the next clock, and take only its own inputs
/// (`slot_emb`, `up`) after those registers, so the parent's one-cycle loop is the mux
/// over these copies by k-1's written slot, not this logic (f(mux(x)) = mux(f(x)), as
/// stage 2b does for the overlay of k-3..k-6).
///
/// The miss choice comes in two versions, `miss_*0` and `miss_*1`: k-1's entry not
/// embryonic, or embryonic (it only matters to rule 4, the oldest embryonic slot).
#[derive(LogicBlock)]
pub struct SlotChoice<const SLOTS: usize> {
    pub clock: Signal<In, Clock>,
    // Stage 2c inputs.
    /// Per slot: holds an entry, its digest equals the request's, it is live.
    pub valid: Signal<In, Bits<SLOTS>>,
    pub dmatch: Signal<In, Bits<SLOTS>>,
    pub live: Signal<In, Bits<SLOTS>>,
    /// The least recently seen slot with the first set first in the insert order (`_a`)
    /// or the second (`_b`): of all slots, of the embryonic ones with k-1's entry not
    /// embryonic (`emb0`) or embryonic (`emb1`).
    pub oldest_a: Signal<In, Bits<SLOTS>>,
    pub oldest_b: Signal<In, Bits<SLOTS>>,
    pub oldest_emb0_a: Signal<In, Bits<SLOTS>>,
    pub oldest_emb0_b: Signal<In, Bits<SLOTS>>,
    pub oldest_emb1_a: Signal<In, Bits<SLOTS>>,
    pub oldest_emb1_b: Signal<In, Bits<SLOTS>>,
    /// The request's candidate slots; its first set is in bank 1 (else bank 0); two
    /// choices; an embryonic request.
    pub avail: Signal<In, Bits<SLOTS>>,
    pub first: Signal<In, bool>,
    pub two: Signal<In, bool>,
    pub req_embryonic: Signal<In, bool>,
    // Stage 3 inputs.
    /// The slot k-1 wrote under this assumption (one-hot), or none (a constant per copy).
    pub slot: Signal<In, Bits<SLOTS>>,
    /// Per slot: its backend is up (the query's answer, registered; `slot`'s taken as up).
    pub up: Signal<In, Bits<SLOTS>>,
    /// k-1's entry in `slot` is embryonic (picks the miss version for `way`).
    pub slot_emb: Signal<In, bool>,
    // Stage 3 outputs.
    /// A hit, its slot (one-hot), whether that is `slot`, and its backend-up bit.
    pub hit: Signal<Out, bool>,
    pub hit_way: Signal<Out, Bits<SLOTS>>,
    pub hit_slot: Signal<Out, bool>,
    pub hit_up: Signal<Out, bool>,
    /// A miss: the [`InsertOutcome`] (the slot is in `way`).
    pub miss_insert0: Signal<Out, Bits<3>>,
    pub miss_insert1: Signal<Out, Bits<3>>,
    /// The slot the request touches or inserts into: the hit's, else the miss version's
    /// by `slot_emb` (picked here, beside each copy, so that only one vector per copy
    /// goes through the parent's mux by k-1's slot).
    pub way: Signal<Out, Bits<SLOTS>>,

    // Stage 2c's decision, registered.
    r_hit: DFF<bool>,
    r_hit_way: DFF<Bits<SLOTS>>,
    r_miss_way0: DFF<Bits<SLOTS>>,
    r_miss_way1: DFF<Bits<SLOTS>>,
    r_miss_insert0: DFF<Bits<3>>,
    r_miss_insert1: DFF<Bits<3>>,

    no_ways: Constant<Bits<SLOTS>>,
    one_way: Constant<Bits<SLOTS>>,
    onehot: [Constant<Bits<SLOTS>>; SLOTS],
    /// Each bank's slots (the first `SLOTS / 2`, the rest).
    bank0: Constant<Bits<SLOTS>>,
    bank1: Constant<Bits<SLOTS>>,
    /// The slots below `p` in its own bank (the lowest-set-bit picks of both banks at
    /// once, without a carry chain).
    below: [Constant<Bits<SLOTS>>; SLOTS],
    insert_empty: Constant<Bits<3>>,
    insert_expired: Constant<Bits<3>>,
    insert_evicted: Constant<Bits<3>>,
    insert_refused: Constant<Bits<3>>,

    /// Live slots of bank 0 and bank 1 as thermometer codes (bit `i`: more than `i`
    /// live), each from its own bank's bits only, so "the second set is less loaded" is
    /// logic, not adders, and narrow.
    therm0: Signal<Local, Bits<SLOTS>>,
    therm1: Signal<Local, Bits<SLOTS>>,
    /// The second set comes first in the insert order; the order's first bank is bank 1.
    second_first: Signal<Local, bool>,
    lead1: Signal<Local, bool>,
    oldest: Signal<Local, Bits<SLOTS>>,
    oldest_emb0: Signal<Local, Bits<SLOTS>>,
    oldest_emb1: Signal<Local, Bits<SLOTS>>,
    hits: Signal<Local, Bits<SLOTS>>,
    /// The lowest hit of each bank; the hit is bank 1's; the hit's slot.
    hit_low: Signal<Local, Bits<SLOTS>>,
    hit_b1: Signal<Local, bool>,
    hit_pick: Signal<Local, Bits<SLOTS>>,
    same_cand: Signal<Local, Bits<SLOTS>>,
    empty_cand: Signal<Local, Bits<SLOTS>>,
    expired_cand: Signal<Local, Bits<SLOTS>>,
    /// Per rule: the lowest candidate of each bank, and whether each bank has one.
    same_low: Signal<Local, Bits<SLOTS>>,
    empty_low: Signal<Local, Bits<SLOTS>>,
    expired_low: Signal<Local, Bits<SLOTS>>,
    same_any: Signal<Local, bool>,
    empty_any: Signal<Local, bool>,
    expired_any: Signal<Local, bool>,
    same_b0: Signal<Local, bool>,
    same_b1: Signal<Local, bool>,
    empty_b0: Signal<Local, bool>,
    empty_b1: Signal<Local, bool>,
    expired_b0: Signal<Local, bool>,
    expired_b1: Signal<Local, bool>,
    /// The applying rule's candidates: lowest per bank, and per bank whether any.
    pick_low: Signal<Local, Bits<SLOTS>>,
    pick_b0: Signal<Local, bool>,
    pick_b1: Signal<Local, bool>,
    /// The pick is bank 1's.
    use_b1: Signal<Local, bool>,
    pick: Signal<Local, Bits<SLOTS>>,
    rule_insert: Signal<Local, Bits<3>>,
    /// Rules 1–3 apply (a same-digest, empty or expired candidate).
    rule: Signal<Local, bool>,
    /// A miss: the slot to insert into (none when refused), and the outcome, per version.
    miss_way0: Signal<Local, Bits<SLOTS>>,
    miss_way1: Signal<Local, Bits<SLOTS>>,
    miss_ins0: Signal<Local, Bits<3>>,
    miss_ins1: Signal<Local, Bits<3>>,
}

impl<const SLOTS: usize> Default for SlotChoice<SLOTS> {
    fn default() -> Self {
        let ways = SLOTS / 2;
        let bank0 = (1u64 << ways) - 1;
        let bank_of = |p: usize| bank0 << (ways * (p / ways));
        Self {
            clock: Default::default(),
            valid: Default::default(),
            dmatch: Default::default(),
            live: Default::default(),
            up: Default::default(),
            slot: Default::default(),
            oldest_a: Default::default(),
            oldest_b: Default::default(),
            oldest_emb0_a: Default::default(),
            oldest_emb0_b: Default::default(),
            oldest_emb1_a: Default::default(),
            oldest_emb1_b: Default::default(),
            avail: Default::default(),
            first: Default::default(),
            two: Default::default(),
            req_embryonic: Default::default(),
            slot_emb: Default::default(),
            hit: Default::default(),
            hit_way: Default::default(),
            hit_slot: Default::default(),
            hit_up: Default::default(),
            miss_insert0: Default::default(),
            miss_insert1: Default::default(),
            way: Default::default(),
            r_hit: Default::default(),
            r_hit_way: Default::default(),
            r_miss_way0: Default::default(),
            r_miss_way1: Default::default(),
            r_miss_insert0: Default::default(),
            r_miss_insert1: Default::default(),
            no_ways: constant(0),
            one_way: constant(1),
            onehot: array(|p| constant(1 << p)),
            bank0: constant(bank0),
            bank1: constant(bank0 << ways),
            below: array(|p| constant(((1 << p) - 1) & bank_of(p))),
            insert_empty: constant(InsertOutcome::Empty as u64),
            insert_expired: constant(InsertOutcome::Expired as u64),
            insert_evicted: constant(InsertOutcome::Evicted as u64),
            insert_refused: constant(InsertOutcome::Refused as u64),
            therm0: Default::default(),
            therm1: Default::default(),
            second_first: Default::default(),
            lead1: Default::default(),
            oldest: Default::default(),
            oldest_emb0: Default::default(),
            oldest_emb1: Default::default(),
            hits: Default::default(),
            hit_low: Default::default(),
            hit_b1: Default::default(),
            hit_pick: Default::default(),
            same_cand: Default::default(),
            empty_cand: Default::default(),
            expired_cand: Default::default(),
            same_low: Default::default(),
            empty_low: Default::default(),
            expired_low: Default::default(),
            same_any: Default::default(),
            empty_any: Default::default(),
            expired_any: Default::default(),
            same_b0: Default::default(),
            same_b1: Default::default(),
            empty_b0: Default::default(),
            empty_b1: Default::default(),
            expired_b0: Default::default(),
            expired_b1: Default::default(),
            pick_low: Default::default(),
            pick_b0: Default::default(),
            pick_b1: Default::default(),
            use_b1: Default::default(),
            pick: Default::default(),
            rule_insert: Default::default(),
            rule: Default::default(),
            miss_way0: Default::default(),
            miss_way1: Default::default(),
            miss_ins0: Default::default(),
            miss_ins1: Default::default(),
        }
    }
}

impl<const SLOTS: usize> Logic for SlotChoice<SLOTS> {
    #[hdl_gen]
    fn update(&mut self) {
        clock!(
            self,
            clock,
            r_hit,
            r_hit_way,
            r_miss_way0,
            r_miss_way1,
            r_miss_insert0,
            r_miss_insert1
        );
        // ---- Stage 2c. Everything below is written per bank: the first set is one whole
        // bank, so each "first set's slots before the second's" is a choice between two
        // banks' results, each a function of its own bank's bits only (narrow logic, few
        // levels).
        //
        // The loads as thermometer codes; the second set goes first when it has fewer
        // live ways (ties → the first set): the first's code has a bit the second's lacks.
        self.therm0.next = self.no_ways.val();
        self.therm1.next = self.no_ways.val();
        for p in 0..SLOTS {
            if self.live.val().get_bit(p) {
                if self.bank0.val().get_bit(p) {
                    self.therm0.next =
                        (self.therm0.val() << self.one_way.val()) | self.one_way.val();
                } else {
                    self.therm1.next =
                        (self.therm1.val() << self.one_way.val()) | self.one_way.val();
                }
            }
        }
        self.second_first.next = false;
        if self.two.val() {
            if self.first.val() {
                self.second_first.next = (self.therm1.val() & !self.therm0.val()).any();
            } else {
                self.second_first.next = (self.therm0.val() & !self.therm1.val()).any();
            }
        }
        // The insert order's first bank: the first set's, or the other when it goes first.
        self.lead1.next = self.first.val();
        if self.second_first.val() {
            self.lead1.next = !self.first.val();
        }
        self.oldest.next = self.oldest_a.val();
        self.oldest_emb0.next = self.oldest_emb0_a.val();
        self.oldest_emb1.next = self.oldest_emb1_a.val();
        if self.second_first.val() {
            self.oldest.next = self.oldest_b.val();
            self.oldest_emb0.next = self.oldest_emb0_b.val();
            self.oldest_emb1.next = self.oldest_emb1_b.val();
        }
        // A hit: the first set's slots before the second's, the lowest of them.
        self.hits.next = self.dmatch.val() & self.live.val() & self.avail.val();
        // Insert rules 1–3: the first candidate in the insert order.
        self.same_cand.next = self.dmatch.val() & self.avail.val();
        self.empty_cand.next = !self.valid.val() & self.avail.val();
        self.expired_cand.next = !self.live.val() & self.avail.val();
        self.hit_low.next = self.no_ways.val();
        self.same_low.next = self.no_ways.val();
        self.empty_low.next = self.no_ways.val();
        self.expired_low.next = self.no_ways.val();
        for p in 0..SLOTS {
            if self.hits.val().get_bit(p) && !(self.hits.val() & self.below[p].val()).any() {
                self.hit_low.next = self.hit_low.val() | self.onehot[p].val();
            }
            if self.same_cand.val().get_bit(p)
                && !(self.same_cand.val() & self.below[p].val()).any()
            {
                self.same_low.next = self.same_low.val() | self.onehot[p].val();
            }
            if self.empty_cand.val().get_bit(p)
                && !(self.empty_cand.val() & self.below[p].val()).any()
            {
                self.empty_low.next = self.empty_low.val() | self.onehot[p].val();
            }
            if self.expired_cand.val().get_bit(p)
                && !(self.expired_cand.val() & self.below[p].val()).any()
            {
                self.expired_low.next = self.expired_low.val() | self.onehot[p].val();
            }
        }
        self.hit_b1.next = (self.hits.val() & self.bank1.val()).any();
        if !self.first.val() {
            self.hit_b1.next = !(self.hits.val() & self.bank0.val()).any();
        }
        self.hit_pick.next = self.hit_low.val() & self.bank0.val();
        if self.hit_b1.val() {
            self.hit_pick.next = self.hit_low.val() & self.bank1.val();
        }

        self.same_b0.next = (self.same_cand.val() & self.bank0.val()).any();
        self.same_b1.next = (self.same_cand.val() & self.bank1.val()).any();
        self.empty_b0.next = (self.empty_cand.val() & self.bank0.val()).any();
        self.empty_b1.next = (self.empty_cand.val() & self.bank1.val()).any();
        self.expired_b0.next = (self.expired_cand.val() & self.bank0.val()).any();
        self.expired_b1.next = (self.expired_cand.val() & self.bank1.val()).any();
        self.same_any.next = self.same_b0.val() || self.same_b1.val();
        self.empty_any.next = self.empty_b0.val() || self.empty_b1.val();
        self.expired_any.next = self.expired_b0.val() || self.expired_b1.val();
        self.rule.next = true;
        self.rule_insert.next = self.insert_expired.val();
        self.pick_low.next = self.expired_low.val();
        self.pick_b0.next = self.expired_b0.val();
        self.pick_b1.next = self.expired_b1.val();
        if self.same_any.val() {
            self.pick_low.next = self.same_low.val();
            self.pick_b0.next = self.same_b0.val();
            self.pick_b1.next = self.same_b1.val();
        } else if self.empty_any.val() {
            self.pick_low.next = self.empty_low.val();
            self.pick_b0.next = self.empty_b0.val();
            self.pick_b1.next = self.empty_b1.val();
            self.rule_insert.next = self.insert_empty.val();
        } else if !self.expired_any.val() {
            self.rule.next = false;
        }
        // The order's first bank if it has a candidate, else the other.
        self.use_b1.next = !self.pick_b0.val();
        if self.lead1.val() {
            self.use_b1.next = self.pick_b1.val();
        }
        self.pick.next = self.pick_low.val() & self.bank0.val();
        if self.use_b1.val() {
            self.pick.next = self.pick_low.val() & self.bank1.val();
        }
        // Rules 4–5 (eviction), or a refusal: an embryonic request evicts only an
        // embryonic entry.
        self.miss_way0.next = self.pick.val();
        self.miss_ins0.next = self.rule_insert.val();
        self.miss_way1.next = self.pick.val();
        self.miss_ins1.next = self.rule_insert.val();
        if !self.rule.val() {
            self.miss_ins0.next = self.insert_evicted.val();
            self.miss_ins1.next = self.insert_evicted.val();
            if self.oldest_emb0.val().any() {
                self.miss_way0.next = self.oldest_emb0.val();
            } else if !self.req_embryonic.val() {
                self.miss_way0.next = self.oldest.val();
            } else {
                self.miss_way0.next = self.no_ways.val();
                self.miss_ins0.next = self.insert_refused.val();
            }
            if self.oldest_emb1.val().any() {
                self.miss_way1.next = self.oldest_emb1.val();
            } else if !self.req_embryonic.val() {
                self.miss_way1.next = self.oldest.val();
            } else {
                self.miss_way1.next = self.no_ways.val();
                self.miss_ins1.next = self.insert_refused.val();
            }
        }
        self.r_hit.d.next = self.hits.val().any();
        self.r_hit_way.d.next = self.hit_pick.val();
        self.r_miss_way0.d.next = self.miss_way0.val();
        self.r_miss_way1.d.next = self.miss_way1.val();
        self.r_miss_insert0.d.next = self.miss_ins0.val();
        self.r_miss_insert1.d.next = self.miss_ins1.val();

        // ---- Stage 3: only k-1's class and the up answers, after the registers.
        self.hit.next = self.r_hit.q.val();
        self.hit_way.next = self.r_hit_way.q.val();
        self.hit_slot.next = (self.r_hit_way.q.val() & self.slot.val()).any();
        self.hit_up.next = (self.r_hit_way.q.val() & self.up.val()).any();
        self.miss_insert0.next = self.r_miss_insert0.q.val();
        self.miss_insert1.next = self.r_miss_insert1.q.val();
        self.way.next = self.r_miss_way0.q.val();
        if self.slot_emb.val() {
            self.way.next = self.r_miss_way1.q.val();
        }
        if self.r_hit.q.val() {
            self.way.next = self.r_hit_way.q.val();
        }
    }
}

/// One clock's request for [`simulate`], with the backend-up state it sees.
#[derive(Debug, Clone)]
pub struct Step {
    pub req: Request,
    /// `up[b]`: backend `b` is up for this request's VIP; beyond the end = down, as
    /// `backend_is_up` treats an unknown backend.
    pub up: std::sync::Arc<[bool]>,
}

impl Step {
    fn backend_is_up(&self, backend: u16) -> bool {
        self.up.get(backend as usize).copied().unwrap_or(false)
    }
}

/// What a run produced: one [`Outcome`] per request (`None` for a bubble) and the table
/// afterwards, in `FlowTable::entries()` order (set-major).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub outcomes: Vec<Option<Outcome>>,
    pub entries: Vec<FlowEntry>,
}

/// The sequential model's trace for `steps` (`None` = bubble) on an empty table of
/// `geometry`.
pub fn model_trace(geometry: &Geometry, steps: &[Option<Step>], timeouts: &Timeouts) -> Trace {
    let mut table = flowgate_core::flow_table::FlowTable::new(geometry.sets, geometry.ways);
    let outcomes = steps
        .iter()
        .map(|step| {
            step.as_ref().map(|s| {
                decide_model(&mut table, geometry, &s.req, timeouts, |b| {
                    s.backend_is_up(b)
                })
            })
        })
        .collect();
    Trace {
        outcomes,
        entries: table.entries().to_vec(),
    }
}

fn class_of_bits(bits: u32) -> Option<FlowClass> {
    [FlowClass::Embryonic, FlowClass::Tcp, FlowClass::Udp]
        .into_iter()
        .find(|c| *c as u32 == bits)
}

/// Runs `steps` through the block in rust-hdl's simulator, one per clock (`None` = a
/// bubble), answering each backend-up query from the step's `up`, then drains the
/// pipeline and reads every set back through the `peek_*` outputs.
///
/// Fails if the simulation does (a request whose set does not fit, a query whose VIP is
/// not the request's — the testbench halts on either).
pub fn simulate<
    const SET_BITS: usize,
    const ROW_BITS: usize,
    const WAYS: usize,
    const SLOTS: usize,
>(
    choices: u32,
    steps: &[Option<Step>],
    timeouts: &Timeouts,
) -> Result<Trace, SimError> {
    let sets = 1usize << SET_BITS;
    let n = steps.len();
    let steps: Vec<Option<Step>> = steps.to_vec();
    let timeouts = *timeouts;
    let outcomes = std::sync::Arc::new(std::sync::Mutex::new(vec![None; n]));
    let entries = std::sync::Arc::new(std::sync::Mutex::new(vec![
        FlowEntry::default();
        sets * WAYS
    ]));
    // Dump reads start once the last write has landed (request n-1 writes at the end
    // of cycle n-1 + LATENCY).
    let dump_start = n + LATENCY + 1;
    let cycles = dump_start + sets + PEEK_LATENCY + 1;
    let mut uut = FlowTable::<SET_BITS, ROW_BITS, WAYS, SLOTS>::default();
    uut.connect_all();
    let mut sim = Simulation::new();
    sim.add_clock(
        5,
        |x: &mut Box<FlowTable<SET_BITS, ROW_BITS, WAYS, SLOTS>>| x.clock.next = !x.clock.val(),
    );
    let (out_tb, entries_tb) = (outcomes.clone(), entries.clone());
    sim.add_testbench(
        move |mut sim: Sim<FlowTable<SET_BITS, ROW_BITS, WAYS, SLOTS>>| {
            let mut x = sim.init()?;
            x.two_choice.next = choices == 2;
            x.timeout_embryonic.next = (timeouts.tcp_embryonic_ms as u64).into();
            x.timeout_tcp.next = (timeouts.tcp_ms as u64).into();
            x.timeout_udp.next = (timeouts.udp_ms as u64).into();
            for cycle in 0..cycles {
                wait_clock_false!(sim, clock, x);
                if let Some(Some(_)) = cycle.checked_sub(LATENCY).and_then(|i| steps.get(i)) {
                    sim_assert!(sim, x.res_valid.val(), x);
                    out_tb.lock().unwrap()[cycle - LATENCY] = Some(Outcome {
                        hit: x.res_hit.val(),
                        set: x.res_set.val().to_u32(),
                        way: x.res_way.val().to_u32(),
                        stored_class: x.res_stored_class.val().to_u32(),
                        stored_backend: x.res_stored_backend.val().to_u16(),
                        insert: x.res_insert.val().to_u32(),
                        reselect: x.res_reselect.val(),
                        forward: x.res_forward.val(),
                        backend: x.res_backend.val().to_u16(),
                    });
                }
                if let Some(Some(step)) =
                    cycle.checked_sub(QUERY_LATENCY).and_then(|i| steps.get(i))
                {
                    sim_assert_eq!(sim, x.query_vip.val().to_u16(), step.req.vip, x);
                    let mut up = 0u64;
                    for w in 0..SLOTS {
                        if step.backend_is_up(x.query_backend[w].val().to_u16()) {
                            up |= 1 << w;
                        }
                    }
                    x.query_up.next = up.into();
                }
                if let Some(dumped) = cycle.checked_sub(dump_start + PEEK_LATENCY) {
                    if dumped < sets {
                        let mut entries = entries_tb.lock().unwrap();
                        for w in 0..WAYS {
                            entries[dumped * WAYS + w] = FlowEntry {
                                class: class_of_bits(x.peek_class[w].val().to_u32()),
                                digest: x.peek_digest[w].val().to_u64(),
                                backend: x.peek_backend[w].val().to_u16(),
                                last_seen: x.peek_last_seen[w].val().to_u32(),
                            };
                        }
                    }
                }
                x.req_valid.next = false;
                match steps.get(cycle) {
                    Some(Some(step)) => {
                        let r = &step.req;
                        sim_assert!(sim, (r.set as usize) < sets, x);
                        x.req_valid.next = true;
                        x.req_set.next = (r.set as u64).into();
                        x.req_digest.next = r.digest.into();
                        x.req_now.next = (r.now as u64).into();
                        x.req_class.next = (r.class as u64).into();
                        x.req_vip.next = (r.vip as u64).into();
                        x.req_select_ok.next = r.select.is_some();
                        x.req_select.next = (r.select.unwrap_or(0) as u64).into();
                    }
                    Some(None) => {}
                    None => {
                        if let Some(set) = cycle.checked_sub(dump_start) {
                            x.req_set.next = ((set % sets) as u64).into();
                        }
                    }
                }
                wait_clock_true!(sim, clock, x);
            }
            sim.done(x)
        },
    );
    sim.run(Box::new(uut), 10 * (cycles as u64 + 2))?;
    let outcomes = outcomes.lock().unwrap().clone();
    let entries = entries.lock().unwrap().clone();
    Ok(Trace { outcomes, entries })
}

/// Flow counters as `decide()` keeps them, tallied from outcomes (`reselects`, `refused`
/// and the no-backend drops included), to show what a stream exercised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub expirations: u64,
    pub evictions: u64,
    pub refused: u64,
    pub reselects: u64,
    pub no_backend: u64,
}

impl Tally {
    pub fn of(outcomes: &[Option<Outcome>]) -> Tally {
        let mut t = Tally::default();
        for o in outcomes.iter().flatten() {
            if o.hit {
                t.hits += 1;
            } else {
                t.misses += 1;
            }
            t.reselects += o.reselect as u64;
            t.no_backend += !o.forward as u64;
            match InsertOutcome::from_bits(o.insert) {
                Some(InsertOutcome::Empty) => t.inserts += 1,
                Some(InsertOutcome::Expired) => {
                    t.inserts += 1;
                    t.expirations += 1;
                }
                Some(InsertOutcome::Evicted) => {
                    t.inserts += 1;
                    t.evictions += 1;
                }
                Some(InsertOutcome::Refused) => t.refused += 1,
                Some(InsertOutcome::None) | None => {}
            }
        }
        t
    }

    /// Every counter moved at least once.
    pub fn covers_everything(&self) -> bool {
        [
            self.hits,
            self.misses,
            self.inserts,
            self.expirations,
            self.evictions,
            self.refused,
            self.reselects,
            self.no_backend,
        ]
        .iter()
        .all(|&n| n > 0)
    }
}

/// Panics with the first difference between a simulated and a model trace.
pub fn assert_same_trace(hardware: &Trace, model: &Trace, steps: &[Option<Step>]) {
    for (i, (h, m)) in hardware.outcomes.iter().zip(&model.outcomes).enumerate() {
        assert_eq!(
            h,
            m,
            "request {i} ({:?}) differs; previous requests: {:?}",
            steps[i].as_ref().map(|s| s.req),
            steps[i.saturating_sub(5)..i]
                .iter()
                .map(|s| s.as_ref().map(|s| s.req))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(hardware.outcomes.len(), model.outcomes.len());
    for (i, (h, m)) in hardware.entries.iter().zip(&model.entries).enumerate() {
        assert_eq!(
            h, m,
            "entry {i} (set-major: set × ways + way) differs after the run"
        );
    }
    assert_eq!(hardware.entries.len(), model.entries.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::{verilator_lint, yosys_synth, SynthFlow, RUST_HDL_LINT_WAIVERS};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::sync::Arc;

    /// Short timeouts so that entries expire within a few requests.
    const TINY: Timeouts = Timeouts {
        tcp_ms: 40,
        tcp_embryonic_ms: 8,
        udp_ms: 20,
    };

    /// A hazard-heavy stream for a table of `sets` sets: mostly the same set as the
    /// request before, a handful of digests (hits, expired re-inserts), ticks that start
    /// just below `u32::MAX` and wrap, now and then step back or jump, all three classes,
    /// `select()` failing now and then, and backends going down and up in phases.
    fn hazard_stream(seed: u64, len: usize, sets: u32) -> Vec<Option<Step>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let backends = 6usize;
        let mut up: Arc<[bool]> = vec![true; backends].into();
        let mut now = u32::MAX - rng.gen_range(0..len as u32);
        let mut set = 0;
        let mut steps = Vec::with_capacity(len);
        while steps.len() < len {
            if rng.gen_range(0..40) == 0 {
                // A new backend-up phase. The bubble keeps it off the request right
                // after one that wrote (whose backend the block takes as up).
                up = (0..backends).map(|_| rng.gen_bool(0.7)).collect();
                steps.push(None);
                continue;
            }
            if rng.gen_range(0..10) == 0 {
                steps.push(None);
                continue;
            }
            if rng.gen_range(0..10) >= 6 {
                set = rng.gen_range(0..sets);
            }
            now = match rng.gen_range(0..100) {
                0 => now.wrapping_sub(rng.gen_range(1..30)),
                1..=4 => now.wrapping_add(rng.gen_range(8..60)),
                _ => now.wrapping_add(rng.gen_range(0..4)),
            };
            let class = match rng.gen_range(0..3) {
                0 => FlowClass::Embryonic,
                1 => FlowClass::Tcp,
                _ => FlowClass::Udp,
            };
            let live: Vec<u16> = (0..backends as u16).filter(|&b| up[b as usize]).collect();
            let select = if live.is_empty() || rng.gen_range(0..10) == 0 {
                None
            } else {
                Some(live[rng.gen_range(0..live.len())])
            };
            steps.push(Some(Step {
                req: Request {
                    set,
                    digest: rng.gen_range(1..7u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    now,
                    class,
                    vip: rng.gen_range(0..4),
                    select,
                },
                up: up.clone(),
            }));
        }
        steps
    }

    fn geometry(set_bits: usize, ways: usize, choices: u32) -> Geometry {
        Geometry {
            sets: 1 << set_bits,
            ways: ways as u32,
            choices,
        }
    }

    fn check<
        const SET_BITS: usize,
        const ROW_BITS: usize,
        const WAYS: usize,
        const SLOTS: usize,
    >(
        choices: u32,
        steps: &[Option<Step>],
    ) -> Tally {
        let model = model_trace(&geometry(SET_BITS, WAYS, choices), steps, &TINY);
        let hardware = simulate::<SET_BITS, ROW_BITS, WAYS, SLOTS>(choices, steps, &TINY)
            .expect("simulation halted");
        assert_same_trace(&hardware, &model, steps);
        Tally::of(&model.outcomes)
    }

    #[test]
    fn tiny_table_matches_core_on_hazard_streams() {
        // 4 sets × 2 ways, one and two candidate sets: most requests hit the set (or
        // the bank row) the previous one wrote.
        for choices in [1, 2] {
            for seed in 0..3 {
                let steps = hazard_stream(seed, 3000, 4);
                let tally = check::<2, 1, 2, 4>(choices, &steps);
                println!("choices {choices}, seed {seed}: {tally:?}");
                assert!(tally.covers_everything(), "seed {seed}: {tally:?}");
            }
        }
    }

    #[test]
    fn three_ways_and_one_set_match_core() {
        // Every request in one set: each one depends on the one before. Three ways
        // (not a power of two) exercise LRU order with ties among more than two ways.
        // With two choices the first set is always 0 and the second varies with the
        // digest.
        for choices in [1, 2] {
            let steps = hazard_stream(7, 3000, 1);
            let tally = check::<2, 1, 3, 6>(choices, &steps);
            // Two sets of three ways for six digests: nothing is evicted.
            if choices == 1 {
                assert!(tally.covers_everything(), "{tally:?}");
            } else {
                assert!(tally.hits > 0 && tally.expirations > 0, "{tally:?}");
            }
        }
    }

    #[test]
    fn two_choices_with_a_bank_bit_above_zero_match_core() {
        // 128 sets: the bank bit is 1, so a row keeps set bit 0 and the bits above bit 1,
        // and the second set mixes the digest's high half into bits 2..6.
        let steps = hazard_stream(11, 3000, 128);
        let tally = check::<7, 6, 2, 4>(2, &steps);
        assert!(tally.hits > 0 && tally.expirations > 0, "{tally:?}");
    }

    #[test]
    fn back_to_back_hits_on_one_flow_see_each_others_writes() {
        // A SYN, then the same flow's ACKs on consecutive clocks: the first ACK must hit
        // the entry the SYN inserted one clock before (not yet in RAM) and promote it; the
        // next must see it established.
        let up: Arc<[bool]> = vec![true; 4].into();
        let step = |now, class| {
            Some(Step {
                req: Request {
                    set: 1,
                    digest: 0xfeed_f00d_0000_0001,
                    now,
                    class,
                    vip: 0,
                    select: Some(2),
                },
                up: up.clone(),
            })
        };
        let steps = vec![
            step(100, FlowClass::Embryonic),
            step(101, FlowClass::Tcp),
            step(102, FlowClass::Tcp),
            // 30 ticks later: beyond the embryonic timeout (8), within TCP's (40).
            step(132, FlowClass::Tcp),
        ];
        let hardware = simulate::<2, 1, 2, 4>(2, &steps, &TINY).unwrap();
        let model = model_trace(&geometry(2, 2, 2), &steps, &TINY);
        assert_same_trace(&hardware, &model, &steps);
        let o = &hardware.outcomes;
        assert_eq!(o[0].unwrap().insert, InsertOutcome::Empty as u32);
        assert!(o[1].unwrap().hit);
        assert_eq!(o[1].unwrap().stored_class, FlowClass::Embryonic as u32);
        assert_eq!(o[2].unwrap().stored_class, FlowClass::Tcp as u32);
        assert!(o[3].unwrap().hit, "promoted on the first ACK");
    }

    fn verilog<
        const SET_BITS: usize,
        const ROW_BITS: usize,
        const WAYS: usize,
        const SLOTS: usize,
    >() -> String {
        let mut uut = FlowTable::<SET_BITS, ROW_BITS, WAYS, SLOTS>::default();
        uut.connect_all();
        generate_verilog(&uut)
    }

    /// Register bits the block declares for `2^set_bits` sets × `ways` ways: the table
    /// itself, the RAM read registers, and the pipeline.
    fn register_bits(set_bits: u64, ways: u64) -> (u64, u64) {
        let entry = 2 + 64 + 16 + 32;
        let slots = 2 * ways;
        let rows = 2 * (set_bits - 1);
        let table = (1 << set_bits) * ways * entry;
        // valid, two, first, both sets, both rows, digest, now, class, vip, select.
        let request = 3 + 2 * set_bits + rows + 64 + 32 + 2 + 16 + 1 + 16;
        // Stage 2c: the request; valid, digest match, live, embryonic; class, backend; the
        // age order; k-1's and k-2's entries' age order, row match, digest match and
        // per-class liveness, and the two entries' order.
        let stage2c =
            request + 4 * slots + slots * (2 + 16) + slots * slots + 2 * (3 * slots + 4) + 2;
        // Stage 3: the request without VIP and `two`; class, backend and up bit per slot;
        // k-1's row match and per-class liveness. The `SlotChoice` copies (2 × slots + 1):
        // hit, hit slot, both miss slots and outcomes.
        let stage3 = (request - 17) + slots * (2 + 16) + 2 * slots + 3;
        let choices = (2 * slots + 1) * (1 + 3 * slots + 2 * 3);
        let result = 1 + 1 + 2 * set_bits + 1 + 2 + 16 + 3 + 1 + 1 + 16;
        // Stage 2b's slot facts: class, backend, age; digest match and liveness bits.
        let stage2b = slots * (2 + 16 + 32) + 2 * slots;
        // w1 .. w3; w4 without rows, digest or tick; `same1..4`; the writes' and k-1's
        // ages (and k-2's); the writes' digest matches and per-class liveness.
        let history =
            3 * (1 + rows + slots + entry) + (1 + slots + 2 + 16) + 4 * slots + 6 * 32 + 4 + 4 * 4;
        let pipeline = 3 * request
            + 2 * slots * entry
            + stage2b
            + stage2c
            + stage3
            + choices
            + result
            + history;
        (table, pipeline)
    }

    #[test]
    fn flow_table_synthesizes() {
        // Generic synthesis maps RAM to flip-flops, so a small table: 4 sets × 4 ways.
        let verilog = verilog::<2, 1, 4, 8>();
        yosys_validate("flowgate_hdl_flow_table", &verilog)
            .unwrap_or_else(|e| panic!("yosys_validate: {e:?}"));
        let report = yosys_synth(&verilog, "top", SynthFlow::Generic).unwrap();
        println!("generic synth, 4 sets x 4 ways: {report}");
        let flops = report.flip_flops();
        // The whole table and its read registers survive (a write path that synthesis
        // found dead would drop them), and nothing beyond the declared registers appears
        // (yosys only removes constant bits, such as the unused top bits of `res_way`).
        let (table, pipeline) = register_bits(2, 4);
        assert!(flops >= table + 8 * 114, "{report}");
        assert!(flops <= table + pipeline, "{report}");
    }

    #[test]
    fn flow_table_passes_verilator_lint() {
        // Waived: UNOPTFLAT. The block's one always block drives the `SlotChoice` copies'
        // inputs and reads their outputs, a loop only at Verilator's always-block
        // granularity; yosys `check -assert` (`flow_table_synthesizes`) finds no logic
        // loop.
        let mut waivers = RUST_HDL_LINT_WAIVERS.to_vec();
        waivers.push("UNOPTFLAT");
        verilator_lint(
            &crate::emit_verilog(crate::Design::FlowTable16K),
            "top",
            &waivers,
        )
        .unwrap();
    }
}
