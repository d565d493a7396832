//! One worker's share of the flow table: the sets it owns, its flow entries and its
//! counters. The software engine's worker threads and the DPDK data path's lcores are
//! both made of [`Shard`]s, so the sharding rule is written once:
//!
//! a set's owner is read from its low [`Geometry::shared_bits`] bits only (set bits 0–5 of
//! a table of 4,096 sets or more; fewer for smaller tables, which then split less evenly
//! over shards that are not a power of two), the bits a flow's two candidate sets share, so both of a
//! flow's sets always have one owner: with `count` shards, set class `c = set & (2^b − 1)`
//! belongs to shard `c % count`, which keeps the set at local index
//! `(set >> b) × (its number of classes) + c / count`. The 64 classes (of large tables)
//! are shared as evenly as they divide (22/21/21 for three shards); one shard owns all.
//! A NIC RETA of 64 entries or more (`h % size`, which fixes `h & 63`) steers every hash
//! to its owner for any number of shards.
//!
//! Flows whose candidate sets differ never interact, so any number of shards gives the
//! contract's output exactly (the shards test checks it against the sequential oracle).

use flowgate_core::counters::Counters;
use flowgate_core::flow_table::{FlowTable, Geometry};
use flowgate_core::pipeline::{self, Balance};
use flowgate_core::rewrite::{Mode, RewriteParams};
use flowgate_core::{DropReason, Tables, Verdict};

/// Global flow-table set → (owning shard, local set) for `count` shards: a lookup in a
/// table of the set classes (at most 64), no division per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSplit {
    count: u32,
    /// `Geometry::shared_bits`: the set bits that name a class.
    shared: u32,
    /// Per class: its owner, its position among the owner's classes, and how many classes
    /// the owner has.
    classes: [Class; 1 << flowgate_core::flow_table::MAX_BANK_BIT],
    /// Sets per shard (the most any shard owns).
    local_sets: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Class {
    owner: u32,
    position: u32,
    of: u32,
}

impl SetSplit {
    /// The split of `geometry`'s sets over `count` shards (at least 1).
    pub fn new(count: u32, geometry: &Geometry) -> SetSplit {
        let count = count.max(1);
        let shared = geometry.shared_bits();
        let n = 1u32 << shared;
        let mut classes = [Class::default(); 1 << flowgate_core::flow_table::MAX_BANK_BIT];
        for c in 0..n {
            let owner = c % count;
            classes[c as usize] = Class {
                owner,
                position: c / count,
                // The classes `owner, owner + count, …` below n.
                of: (n - owner).div_ceil(count),
            };
        }
        SetSplit {
            count,
            shared,
            classes,
            local_sets: (geometry.sets >> shared) * n.div_ceil(count),
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    #[inline]
    fn class(&self, set: u32) -> &Class {
        &self.classes[(set & ((1 << self.shared) - 1)) as usize]
    }

    /// The shard that owns `set`.
    #[inline]
    pub fn owner(&self, set: u32) -> u32 {
        self.class(set).owner
    }

    /// `set`'s index in its owner's table.
    #[inline]
    pub fn local(&self, set: u32) -> u32 {
        if self.count == 1 {
            // One shard: local = global (what the class table gives too, with a load
            // and a multiply per set).
            return set;
        }
        let c = self.class(set);
        (set >> self.shared) * c.of + c.position
    }

    /// A flow's candidate sets in their owner's table.
    #[inline]
    pub fn local_pair(&self, sets: [u32; 2]) -> [u32; 2] {
        [self.local(sets[0]), self.local(sets[1])]
    }

    /// Sets per shard (the shards that own fewer classes leave some unused).
    pub fn local_sets(&self) -> u32 {
        self.local_sets
    }
}

/// Grow `c` to count every VIP and backend of `tables` (indices only grow: a reload keeps
/// every index, see the control plane).
pub fn fit_counters(c: &mut Counters, tables: &Tables) {
    let (vips, backends) = (tables.vips.len(), tables.backends.len());
    c.vips.resize(vips.max(c.vips.len()), Default::default());
    c.backends
        .resize(backends.max(c.backends.len()), Default::default());
}

/// One worker's share of the flow table and its counters.
#[derive(Debug, Clone)]
pub struct Shard {
    index: u32,
    split: SetSplit,
    flows: FlowTable,
    counters: Counters,
}

impl Shard {
    /// Shard `index` of `count` for `tables`' flow-table geometry.
    pub fn new(tables: &Tables, index: u32, count: u32) -> Shard {
        let split = SetSplit::new(count, &tables.geometry);
        Shard {
            index,
            split,
            flows: FlowTable::new(split.local_sets(), tables.geometry.ways),
            counters: Counters::new(tables.vips.len(), tables.backends.len()),
        }
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn split(&self) -> SetSplit {
        self.split
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether this shard owns the frame's flow-table sets.
    #[inline]
    pub fn owns(&self, b: &Balance) -> bool {
        self.split.owner(b.sets[0]) == self.index
    }

    /// Take new tables (the control plane's): the flow table stays, so established flows
    /// stay; the counters grow with the VIP and backend indices. The geometry is fixed.
    pub fn update_tables(&mut self, tables: &Tables) {
        fit_counters(&mut self.counters, tables);
    }

    /// Count a frame that `prepare` decided (pass or drop).
    pub fn count_unbalanced(&mut self, verdict: Verdict) {
        pipeline::count_unbalanced(verdict, &mut self.counters);
    }

    /// Where balancing `b` will look in this shard's table ([`Located`]), and start
    /// loading what it will read: its flow-table sets and its Maglev slot (read on a
    /// miss). A burst is located as a whole before it is balanced, so these cache misses
    /// overlap instead of following one another. The prefetches are only hints.
    // Always inlined: called once per frame, and left to itself the compiler keeps it a
    // call (saving registers, `Located` returned in memory).
    #[inline(always)]
    pub fn locate(&self, b: &Balance, tables: &Tables) -> Located {
        let ways = self.flows.ways() as usize;
        let locals = self.split.local_pair(b.sets);
        // Addresses computed with wrapping pointer arithmetic and no bounds checks (a
        // prefetch never faults, and the local sets and the Maglev slot index are in range
        // anyway); both sets unconditionally (one choice, or two equal sets: the same lines
        // twice, cheaper than the branch). The checked form cost 21 instructions more a
        // frame in flowgate-dpdk.
        let entries = self.flows.entries().as_ptr();
        for local in locals {
            let set = entries.wrapping_add(local as usize * ways);
            prefetch(set);
            prefetch(set.wrapping_add(ways - 1));
        }
        if let Some(vip) = tables.vips.get(b.vip as usize) {
            let slots = vip.maglev.slots().as_ptr();
            prefetch(slots.wrapping_add(vip.maglev.slot_index(b.flow.hash) as usize));
        }
        Located(locals)
    }

    /// The contract's stateful half for a balanced frame of this shard; when forwarded,
    /// the rewritten frame is in `out`.
    #[inline]
    pub fn balance(
        &mut self,
        frame: &[u8],
        b: &Balance,
        now: u32,
        tables: &Tables,
        out: &mut Vec<u8>,
    ) -> Verdict {
        debug_assert!(self.owns(b));
        pipeline::balance(
            frame,
            b,
            now,
            tables,
            &mut self.flows,
            self.split.local_pair(b.sets),
            &mut self.counters,
            out,
        )
    }

    /// As [`Shard::balance`] for a frame this shard [located](Shard::locate), with the
    /// rewrite left to `rewrite` (e.g. in place, in the frame's own buffer).
    #[inline]
    pub fn balance_with(
        &mut self,
        frame_len: usize,
        b: &Balance,
        at: Located,
        now: u32,
        tables: &Tables,
        rewrite: impl FnOnce(Mode, &RewriteParams) -> Result<(), DropReason>,
    ) -> Verdict {
        debug_assert!(self.owns(b));
        debug_assert_eq!(at.0, self.split.local_pair(b.sets));
        pipeline::balance_with(
            frame_len,
            b,
            now,
            tables,
            &mut self.flows,
            at.0,
            &mut self.counters,
            rewrite,
        )
    }
}

/// A balanced frame's candidate sets in its shard's table, from [`Shard::locate`]: computed
/// once per frame, for the prefetch and then for the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located([u32; 2]);

/// Ask for the cache line holding `p` (a hint: no effect on results).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_has_one_owner_and_distinct_local_indices() {
        for log2 in 0..=13u32 {
            let geometry = Geometry {
                sets: 1 << log2,
                ways: 4,
                choices: 2,
            };
            let shared = (1u32 << geometry.shared_bits()) - 1;
            for count in 1..=7u32 {
                let split = SetSplit::new(count, &geometry);
                let mut seen = std::collections::HashSet::new();
                let mut per_owner = vec![0u32; count as usize];
                for set in 0..geometry.sets {
                    let (owner, local) = (split.owner(set), split.local(set));
                    assert_eq!(owner, (set & shared) % count, "{geometry:?} count {count}");
                    assert!(local < split.local_sets(), "{geometry:?} count {count}");
                    assert!(seen.insert((owner, local)));
                    per_owner[owner as usize] += 1;
                }
                if count == 1 {
                    assert!((0..geometry.sets).all(|s| split.local(s) == s), "identity");
                }
                // As even as the classes divide: the shards' shares differ by at most
                // one class's sets.
                let (most, least) = (per_owner.iter().max(), per_owner.iter().min());
                let class_sets = geometry.sets >> geometry.shared_bits();
                if count <= shared + 1 {
                    assert!(
                        most.unwrap() - least.unwrap() <= class_sets,
                        "{per_owner:?}"
                    );
                }
            }
        }
    }

    /// Both of a flow's candidate sets have one owner, whatever the number of shards.
    #[test]
    fn a_flows_candidate_sets_have_one_owner() {
        for log2 in [1u32, 3, 6, 7, 8, 14] {
            let geometry = Geometry {
                sets: 1 << log2,
                ways: 4,
                choices: 2,
            };
            for count in 1..=8u32 {
                let split = SetSplit::new(count, &geometry);
                for i in 0..4096u64 {
                    let [s1, s2] = geometry.sets_of(
                        (i as u32).wrapping_mul(0x9e37_79b9),
                        i.wrapping_mul(0xd6e8_feb8_6659_fd93),
                    );
                    assert_eq!(split.owner(s1), split.owner(s2), "{geometry:?} {count}");
                }
            }
        }
    }
}
