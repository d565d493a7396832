//! Counters: identical in every engine. Engines that run in parallel keep one
//! [`Counters`] per worker and [`Counters::merge`] them on read.

use crate::verdict::DropReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketBytes {
    pub packets: u64,
    /// Bytes of the frames as received (before rewrite).
    pub bytes: u64,
}

impl PacketBytes {
    #[inline]
    pub fn add(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowCounters {
    /// Lookups that found a live entry.
    pub hits: u64,
    pub misses: u64,
    /// New entries written (= misses − refused).
    pub inserts: u64,
    /// Live entries displaced by an insert.
    pub evictions: u64,
    /// Expired entries reused by an insert.
    pub expirations: u64,
    /// Embryonic (SYN-only) inserts refused because the set held only established flows.
    pub refused: u64,
    /// Hits whose backend was down, re-selected and overwritten.
    pub reselects: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    pub frames_in: u64,
    pub forwarded: u64,
    pub passed: u64,
    /// Indexed by [`DropReason::code`].
    pub drops: [u64; DropReason::COUNT],
    pub vips: Vec<PacketBytes>,
    pub backends: Vec<PacketBytes>,
    pub flow: FlowCounters,
}

impl Counters {
    pub fn new(vips: usize, backends: usize) -> Self {
        Counters {
            frames_in: 0,
            forwarded: 0,
            passed: 0,
            drops: [0; DropReason::COUNT],
            vips: vec![PacketBytes::default(); vips],
            backends: vec![PacketBytes::default(); backends],
            flow: FlowCounters::default(),
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.code() as usize]
    }

    pub fn total_dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Add `other` into `self` (both for the same tables).
    pub fn merge(&mut self, other: &Counters) {
        self.frames_in += other.frames_in;
        self.forwarded += other.forwarded;
        self.passed += other.passed;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
        merge_vec(&mut self.vips, &other.vips);
        merge_vec(&mut self.backends, &other.backends);
        let (f, o) = (&mut self.flow, &other.flow);
        f.hits += o.hits;
        f.misses += o.misses;
        f.inserts += o.inserts;
        f.evictions += o.evictions;
        f.expirations += o.expirations;
        f.refused += o.refused;
        f.reselects += o.reselects;
    }
}

fn merge_vec(a: &mut Vec<PacketBytes>, b: &[PacketBytes]) {
    if a.len() < b.len() {
        a.resize(b.len(), PacketBytes::default());
    }
    for (x, y) in a.iter_mut().zip(b) {
        x.packets += y.packets;
        x.bytes += y.bytes;
    }
}
