//! The counter index layout of the COUNTER window: regions at fixed bases, so adding a
//! drop reason or building with more VIPs never renumbers another counter.

use super::*;

/// First global counter (frames_in, forwarded, passed).
pub const COUNTER_GLOBAL_BASE: u32 = 0x0;
/// Drop counter of reason code `c` is at `COUNTER_DROP_BASE + c` (any u8 code fits).
pub const COUNTER_DROP_BASE: u32 = 0x100;
/// First flow-table counter.
pub const COUNTER_FLOW_BASE: u32 = 0x200;
/// VIP `v`: packets at `COUNTER_VIP_BASE + 2v`, bytes at `COUNTER_VIP_BASE + 2v + 1`.
pub const COUNTER_VIP_BASE: u32 = 0x2_0000;
/// Backend `b`: packets at `COUNTER_BACKEND_BASE + 2b`, bytes at `... + 2b + 1`.
pub const COUNTER_BACKEND_BASE: u32 = 0x4_0000;
/// One past the largest counter index.
pub const COUNTER_INDEX_END: u32 = 0x6_0000;

/// A flow-table counter (fields of [`FlowCounters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowCounter {
    Hits,
    Misses,
    Inserts,
    Evictions,
    Expirations,
    Refused,
    Reselects,
}

impl FlowCounter {
    /// In index order (the index is `COUNTER_FLOW_BASE` + position).
    pub const ALL: [FlowCounter; 7] = [
        FlowCounter::Hits,
        FlowCounter::Misses,
        FlowCounter::Inserts,
        FlowCounter::Evictions,
        FlowCounter::Expirations,
        FlowCounter::Refused,
        FlowCounter::Reselects,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FlowCounter::Hits => "hits",
            FlowCounter::Misses => "misses",
            FlowCounter::Inserts => "inserts",
            FlowCounter::Evictions => "evictions",
            FlowCounter::Expirations => "expirations",
            FlowCounter::Refused => "refused",
            FlowCounter::Reselects => "reselects",
        }
    }

    pub fn value(self, f: &FlowCounters) -> u64 {
        match self {
            FlowCounter::Hits => f.hits,
            FlowCounter::Misses => f.misses,
            FlowCounter::Inserts => f.inserts,
            FlowCounter::Evictions => f.evictions,
            FlowCounter::Expirations => f.expirations,
            FlowCounter::Refused => f.refused,
            FlowCounter::Reselects => f.reselects,
        }
    }
}

/// Packets or bytes of a VIP or backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tally {
    Packets,
    /// Bytes of the frames as received (before rewrite).
    Bytes,
}

/// Every counter the COUNTER window can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    FramesIn,
    Forwarded,
    Passed,
    Drop(DropReason),
    Flow(FlowCounter),
    Vip(u16, Tally),
    Backend(u16, Tally),
}

impl Counter {
    /// The global counters, in index order from `COUNTER_GLOBAL_BASE`.
    pub const GLOBALS: [Counter; 3] = [Counter::FramesIn, Counter::Forwarded, Counter::Passed];

    /// Its index in the COUNTER window.
    pub fn index(self) -> u32 {
        let tally = |t| match t {
            Tally::Packets => 0,
            Tally::Bytes => 1,
        };
        match self {
            Counter::FramesIn => COUNTER_GLOBAL_BASE,
            Counter::Forwarded => COUNTER_GLOBAL_BASE + 1,
            Counter::Passed => COUNTER_GLOBAL_BASE + 2,
            Counter::Drop(r) => COUNTER_DROP_BASE + r.code() as u32,
            Counter::Flow(f) => COUNTER_FLOW_BASE + f as u32,
            Counter::Vip(v, t) => COUNTER_VIP_BASE + 2 * v as u32 + tally(t),
            Counter::Backend(b, t) => COUNTER_BACKEND_BASE + 2 * b as u32 + tally(t),
        }
    }

    /// The counter at `index`, if any.
    pub fn from_index(index: u32) -> Option<Counter> {
        let tally = |i: u32| {
            if i & 1 == 0 {
                Tally::Packets
            } else {
                Tally::Bytes
            }
        };
        match index {
            i if i < COUNTER_DROP_BASE => Self::GLOBALS.get(i as usize).copied(),
            i if i < COUNTER_FLOW_BASE => {
                DropReason::from_code((i - COUNTER_DROP_BASE) as u8).map(Counter::Drop)
            }
            i if i < COUNTER_VIP_BASE => FlowCounter::ALL
                .get((i - COUNTER_FLOW_BASE) as usize)
                .map(|&f| Counter::Flow(f)),
            i if i < COUNTER_BACKEND_BASE => {
                let i = i - COUNTER_VIP_BASE;
                Some(Counter::Vip((i / 2) as u16, tally(i)))
            }
            i if i < COUNTER_INDEX_END => {
                let i = i - COUNTER_BACKEND_BASE;
                Some(Counter::Backend((i / 2) as u16, tally(i)))
            }
            _ => None,
        }
    }

    /// Its value in `c`; `None` for a VIP or backend that `c` does not have.
    pub fn value(self, c: &Counters) -> Option<u64> {
        let pick = |pb: &crate::counters::PacketBytes, t| match t {
            Tally::Packets => pb.packets,
            Tally::Bytes => pb.bytes,
        };
        match self {
            Counter::FramesIn => Some(c.frames_in),
            Counter::Forwarded => Some(c.forwarded),
            Counter::Passed => Some(c.passed),
            Counter::Drop(r) => Some(c.dropped(r)),
            Counter::Flow(f) => Some(f.value(&c.flow)),
            Counter::Vip(v, t) => c.vips.get(v as usize).map(|pb| pick(pb, t)),
            Counter::Backend(b, t) => c.backends.get(b as usize).map(|pb| pick(pb, t)),
        }
    }

    /// Every counter of a build with `vips` VIPs and `backends` backends, in index order.
    pub fn all(vips: u16, backends: u16) -> Vec<Counter> {
        let mut all: Vec<Counter> = Self::GLOBALS.to_vec();
        all.extend(DropReason::ALL.iter().map(|&r| Counter::Drop(r)));
        all.extend(FlowCounter::ALL.iter().map(|&f| Counter::Flow(f)));
        for v in 0..vips {
            all.extend([
                Counter::Vip(v, Tally::Packets),
                Counter::Vip(v, Tally::Bytes),
            ]);
        }
        for b in 0..backends {
            all.extend([
                Counter::Backend(b, Tally::Packets),
                Counter::Backend(b, Tally::Bytes),
            ]);
        }
        all
    }
}
