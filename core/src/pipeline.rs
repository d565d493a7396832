//! The whole per-frame contract, chained: [`prepare`] (parse → classify → hash: stateless)
//! then [`balance`] (flow table → select → rewrite → counters: stateful). [`process`] is
//! the two in sequence — the oracle every engine is compared with.
//!
//! Engines that shard the flow table (the software fallback's workers, say) run `prepare`
//! wherever they like, send the frame to the shard that owns its set, and run `balance`
//! there in input order; since sets never interact, the result is the same for any
//! number of shards.

use crate::classify::classify;
use crate::counters::Counters;
use crate::flow_table::{FlowClass, FlowTable, Insert, Probe, Replaced};
use crate::hash::{FlowHash, FlowHasher};
use crate::maglev::NO_BACKEND;
use crate::parse::{parse, Parsed, ParsedFrame, IPPROTO_TCP};
use crate::rewrite::{rewrite, Datagram, Mode, RewriteParams};
use crate::tables::Tables;
use crate::verdict::{DropReason, Verdict};
use std::time::Duration;

/// A frame's timestamp as a flow-table tick (milliseconds, wrapping).
pub fn tick_of(timestamp: Duration) -> u32 {
    timestamp.as_millis() as u32
}

/// The outcome of the stateless half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    Drop(DropReason),
    Pass,
    Balance(Balance),
}

/// A frame for a VIP, with what the stateful half needs — and only that: engines hold a
/// burst of these, so it is kept small (no addresses: they are in the hash already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// What the rewrite reads of the parsed frame.
    pub datagram: Datagram,
    /// The class the frame gives its flow.
    pub class: FlowClass,
    pub vip: u16,
    pub flow: FlowHash,
    /// The flow's global candidate sets ([`crate::flow_table::Geometry::sets_of`]; equal
    /// with one choice). Both have the same owner in a sharded engine.
    pub sets: [u32; 2],
}

/// Parse, classify and hash. Reads only `tables` and `hasher`, which must be built from
/// `tables.keys` (engines rebuild it whenever they take new tables).
// Always inlined, as `balance_with`: called once per frame, left to itself the compiler
// kept both calls, and the two (saved registers, `Prepared` returned in memory, the
// closure's captures) cost 59 (hit-heavy) and 66 (new-flow-heavy) instructions a frame
// in flowgate-dpdk.
#[inline(always)]
pub fn prepare(frame: &[u8], tables: &Tables, hasher: &FlowHasher) -> Prepared {
    debug_assert!(
        hasher.keys() == &tables.keys,
        "the hasher must be built from these tables' keys"
    );
    // The parsed frame is borrowed from `parse`'s result, not moved out of it: the move
    // copied the whole `ParsedFrame` (two `IpAddr`s) a second time, 16 to 23 instructions
    // a frame in flowgate-dpdk.
    let result = parse(frame);
    let parsed = match &result {
        Err(reason) => return Prepared::Drop(*reason),
        Ok(Parsed::NotIp) => return Prepared::Pass,
        Ok(Parsed::Ip(p)) => p,
    };
    let Some(vip) = classify(tables, parsed) else {
        return Prepared::Pass;
    };
    let flow = hasher.flow_hash(parsed, tables.vips[vip as usize].persistence, vip);
    let sets = tables.geometry.sets_of(flow.hash, flow.digest);
    Prepared::Balance(Balance {
        datagram: Datagram::from(parsed),
        class: frame_class(parsed),
        vip,
        flow,
        sets,
    })
}

/// Count a frame that `prepare` already decided (pass or drop).
#[inline]
pub fn count_unbalanced(verdict: Verdict, counters: &mut Counters) {
    counters.frames_in += 1;
    match verdict {
        Verdict::Pass => counters.passed += 1,
        Verdict::Drop(r) => counters.drops[r.code() as usize] += 1,
        Verdict::Forward { .. } => unreachable!("forwarded frames are counted by balance"),
    }
}

/// The backend for a new (or re-selected) flow: the slot's primary if up, else its
/// secondary if up.
#[inline]
pub fn select(tables: &Tables, vip: u16, hash: u32) -> Option<u16> {
    let maglev = &tables.vips[vip as usize].maglev;
    if maglev.is_empty() {
        return None;
    }
    let slot = maglev.slot(hash);
    [slot.primary, slot.secondary]
        .into_iter()
        .find(|&b| backend_is_up(tables, vip, b))
}

#[inline]
fn backend_is_up(tables: &Tables, vip: u16, b: u16) -> bool {
    b != NO_BACKEND
        && tables
            .backends
            .get(b as usize)
            .is_some_and(|be| be.up && be.vip == vip)
}

/// The class a frame gives its flow.
#[inline]
fn frame_class(p: &ParsedFrame) -> FlowClass {
    if p.protocol != IPPROTO_TCP {
        FlowClass::Udp
    } else if p.is_tcp_syn_only() {
        FlowClass::Embryonic
    } else {
        FlowClass::Tcp
    }
}

/// The stateful half for a frame `prepare` balanced: `flows` holds the candidate sets as
/// `local_sets` (equal to `b.sets` for an unsharded table). The rewritten frame is written
/// to `out` when the verdict is `Forward`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn balance(
    frame: &[u8],
    b: &Balance,
    now: u32,
    tables: &Tables,
    flows: &mut FlowTable,
    local_sets: [u32; 2],
    counters: &mut Counters,
    out: &mut Vec<u8>,
) -> Verdict {
    balance_with(
        frame.len(),
        b,
        now,
        tables,
        flows,
        local_sets,
        counters,
        |mode, params| rewrite(frame, b.datagram, mode, params, out),
    )
}

/// [`balance`] with the rewrite left to the caller, for engines that rewrite the frame
/// where it lies (a DPDK mbuf, with [`crate::rewrite::rewrite_in_place`]). `frame_len` is
/// the received frame's length; `rewrite` is called once for a frame to forward, with
/// its VIP's mode and the parameters, and must do what [`rewrite()`] does (an error turns
/// the verdict into that drop, as in [`balance`]).
// Always inlined: see `prepare`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn balance_with(
    frame_len: usize,
    b: &Balance,
    now: u32,
    tables: &Tables,
    flows: &mut FlowTable,
    local_sets: [u32; 2],
    counters: &mut Counters,
    rewrite: impl FnOnce(Mode, &RewriteParams) -> Result<(), DropReason>,
) -> Verdict {
    counters.frames_in += 1;
    let verdict = decide(b, now, tables, flows, local_sets, counters);
    let verdict = match verdict {
        Verdict::Forward { backend, .. } => {
            let be = &tables.backends[backend as usize];
            let params = RewriteParams {
                own_mac: tables.own_mac,
                backend_mac: be.mac,
                backend_addr: be.address,
                encap_src_v4: tables.encap_src_v4,
                encap_src_v6: tables.encap_src_v6,
                hash: b.flow.hash,
            };
            match rewrite(tables.vips[b.vip as usize].mode, &params) {
                Ok(()) => verdict,
                Err(reason) => Verdict::Drop(reason),
            }
        }
        other => other,
    };
    match verdict {
        Verdict::Forward { vip, backend } => {
            counters.forwarded += 1;
            counters.vips[vip as usize].add(frame_len);
            counters.backends[backend as usize].add(frame_len);
        }
        Verdict::Drop(r) => counters.drops[r.code() as usize] += 1,
        Verdict::Pass => counters.passed += 1,
    }
    verdict
}

/// Flow table and selection: which backend, if any.
// Always inlined: left to itself the compiler calls it, and the call (saving registers,
// passing `Balance` by reference) cost ~40 instructions a frame in flowgate-dpdk.
#[inline(always)]
fn decide(
    b: &Balance,
    now: u32,
    tables: &Tables,
    flows: &mut FlowTable,
    sets: [u32; 2],
    counters: &mut Counters,
) -> Verdict {
    let timeouts = &tables.timeouts;
    let class = b.class;
    let no_backend = Verdict::Drop(DropReason::NoHealthyBackend);
    let forward = |backend| Verdict::Forward {
        vip: b.vip,
        backend,
    };
    match flows.probe(sets, b.flow.digest, class, now, timeouts) {
        Probe::Hit {
            set,
            way,
            backend,
            class: stored,
        } => {
            counters.flow.hits += 1;
            let promoted = if stored == FlowClass::Embryonic && class != FlowClass::Embryonic {
                class
            } else {
                stored
            };
            let backend = if backend_is_up(tables, b.vip, backend) {
                backend
            } else {
                let Some(new) = select(tables, b.vip, b.flow.hash) else {
                    return no_backend;
                };
                counters.flow.reselects += 1;
                new
            };
            flows.touch(set, way, backend, promoted, now);
            forward(backend)
        }
        Probe::Miss(choice) => {
            counters.flow.misses += 1;
            let Some(backend) = select(tables, b.vip, b.flow.hash) else {
                return no_backend;
            };
            // Nothing wrote the sets since the probe: its choice stands.
            match flows.insert_at(choice, b.flow.digest, backend, class, now) {
                Insert::Inserted { replaced, .. } => {
                    counters.flow.inserts += 1;
                    match replaced {
                        Replaced::Empty => {}
                        Replaced::Expired => counters.flow.expirations += 1,
                        Replaced::Evicted => counters.flow.evictions += 1,
                    }
                }
                Insert::Refused => counters.flow.refused += 1,
            }
            forward(backend)
        }
    }
}

/// The sequential oracle: one frame through the whole contract.
#[inline]
pub fn process(
    frame: &[u8],
    now: u32,
    tables: &Tables,
    hasher: &FlowHasher,
    flows: &mut FlowTable,
    counters: &mut Counters,
    out: &mut Vec<u8>,
) -> Verdict {
    match prepare(frame, tables, hasher) {
        Prepared::Balance(b) => balance(frame, &b, now, tables, flows, b.sets, counters, out),
        Prepared::Pass => {
            count_unbalanced(Verdict::Pass, counters);
            Verdict::Pass
        }
        Prepared::Drop(r) => {
            count_unbalanced(Verdict::Drop(r), counters);
            Verdict::Drop(r)
        }
    }
}

/// The contract with its state: programmed tables (and the hasher derived from their
/// keys), one flow table, counters.
#[derive(Debug, Clone)]
pub struct Engine {
    tables: Tables,
    hasher: FlowHasher,
    pub flows: FlowTable,
    pub counters: Counters,
}

impl Engine {
    pub fn new(tables: Tables) -> Engine {
        let flows = FlowTable::new(tables.geometry.sets, tables.geometry.ways);
        let counters = Counters::new(tables.vips.len(), tables.backends.len());
        let hasher = FlowHasher::new(&tables.keys);
        Engine {
            tables,
            hasher,
            flows,
            counters,
        }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    #[inline]
    pub fn process(&mut self, frame: &[u8], now: u32, out: &mut Vec<u8>) -> Verdict {
        process(
            frame,
            now,
            &self.tables,
            &self.hasher,
            &mut self.flows,
            &mut self.counters,
            out,
        )
    }
}
