//! One worker's share of the flow table: the sets it owns, its flow entries and its
//! counters. The software engine's worker threads and the DPDK data path's lcores are
//! both made of [`Shard`]s, so the sharding rule is written once:
//!
//! with `count` shards, shard `set % count` owns flow-table set `set`, and keeps it at
//! local index `set / count`.
//!
//! Flow-table sets never interact, so any number of shards gives the contract's output
//! exactly (the shards test checks it against the sequential oracle).

use flowgate_core::counters::Counters;
use flowgate_core::flow_table::FlowTable;
use flowgate_core::pipeline::{self, Balance};
use flowgate_core::rewrite::{Mode, RewriteParams};
use flowgate_core::{DropReason, Tables, Verdict};

/// Global flow-table set → (owning shard, local set) for `count` shards, without a
/// division per frame when `count` is a power of two (always, with one shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSplit {
    count: u32,
    /// `log2(count)` when `count` is a power of two.
    shift: Option<u32>,
}

impl SetSplit {
    /// The split over `count` shards (at least 1).
    pub fn new(count: u32) -> SetSplit {
        let count = count.max(1);
        SetSplit {
            count,
            shift: count.is_power_of_two().then(|| count.trailing_zeros()),
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The shard that owns `set`.
    #[inline]
    pub fn owner(&self, set: u32) -> u32 {
        match self.shift {
            Some(_) => set & (self.count - 1),
            None => set % self.count,
        }
    }

    /// `set`'s index in its owner's table.
    #[inline]
    pub fn local(&self, set: u32) -> u32 {
        match self.shift {
            Some(shift) => set >> shift,
            None => set / self.count,
        }
    }

    /// Sets per shard for a table of `sets` sets (the last shards may own one less).
    pub fn local_sets(&self, sets: u32) -> u32 {
        sets.div_ceil(self.count)
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
        let split = SetSplit::new(count);
        Shard {
            index,
            split,
            flows: FlowTable::new(split.local_sets(tables.geometry.sets), tables.geometry.ways),
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

    /// Whether this shard owns the frame's flow-table set.
    #[inline]
    pub fn owns(&self, b: &Balance) -> bool {
        self.split.owner(b.set) == self.index
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

    /// Start loading what balancing `b` will read: its flow-table set and its Maglev slot
    /// (read on a miss). A burst is prefetched as a whole before it is balanced, so these
    /// cache misses overlap instead of following one another. Only a hint: nothing changes.
    #[inline]
    pub fn prefetch(&self, b: &Balance, tables: &Tables) {
        let ways = self.flows.ways() as usize;
        let first = self.split.local(b.set) as usize * ways;
        if let Some(set) = self.flows.entries().get(first..first + ways) {
            prefetch(set.as_ptr());
            prefetch(set.as_ptr_range().end.wrapping_sub(1));
        }
        if let Some(vip) = tables.vips.get(b.vip as usize) {
            let slots = vip.maglev.slots();
            if let Some(slot) = slots.get(vip.maglev.slot_index(b.flow.hash) as usize) {
                prefetch(slot);
            }
        }
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
            self.split.local(b.set),
            &mut self.counters,
            out,
        )
    }

    /// As [`Shard::balance`], with the rewrite left to `rewrite` (e.g. in place, in the
    /// frame's own buffer).
    #[inline]
    pub fn balance_with(
        &mut self,
        frame_len: usize,
        b: &Balance,
        now: u32,
        tables: &Tables,
        rewrite: impl FnOnce(Mode, &RewriteParams) -> Result<(), DropReason>,
    ) -> Verdict {
        debug_assert!(self.owns(b));
        pipeline::balance_with(
            frame_len,
            b,
            now,
            tables,
            &mut self.flows,
            self.split.local(b.set),
            &mut self.counters,
            rewrite,
        )
    }
}

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
        for count in 1..=7u32 {
            let split = SetSplit::new(count);
            let sets = 64u32;
            let mut seen = std::collections::HashSet::new();
            for set in 0..sets {
                let (owner, local) = (split.owner(set), split.local(set));
                assert_eq!((owner, local), (set % count, set / count), "count {count}");
                assert!(local < split.local_sets(sets));
                assert!(seen.insert((owner, local)));
            }
        }
    }
}
