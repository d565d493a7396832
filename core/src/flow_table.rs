//! Stage 4 — the flow table: S sets × W ways, set-associative, so hardware reads one set
//! (W entries) per frame from block RAM and compares the ways in parallel.
//!
//! An entry holds a 64-bit flow digest, the backend index, the tick it was last seen and
//! its class. The class decides its idle timeout and how readily it is evicted:
//!
//! * `Embryonic` — a TCP flow seen only with SYN (no ACK yet). Short timeout; evicted
//!   before any established flow; and an embryonic insert never evicts an established
//!   entry, so a SYN flood from spoofed sources cannot push established flows out.
//! * `Tcp` — an established TCP flow (anything but a bare SYN was seen).
//! * `Udp` — a UDP flow.
//!
//! Ticks are milliseconds from the frame timestamp (wrapping `u32`); ages are computed
//! with wrapping subtraction. An entry is *live* when `now - last_seen <= timeout(class)`.
//!
//! Insert picks its way in this order (ties → lowest way):
//! 1. the way that holds this very digest (it missed, so it is expired) → `Expired`;
//! 2. an invalid way → `Empty`;
//! 3. an expired way → `Expired`;
//! 4. the least recently seen embryonic way → `Evicted`;
//! 5. only for a non-embryonic insert: the least recently seen way → `Evicted`;
//! 6. otherwise the insert is `Refused` (the frame is still forwarded by Maglev).
//!
//! **Two choices** ([`Geometry::choices`] = 2): a flow has two candidate sets,
//! [`Geometry::sets_of`], that differ in the *bank bit* ([`Geometry::bank_bit`]: set bit 6
//! from 4,096 sets on), so hardware keeps them in two RAM banks and reads each once.
//! A hit in either set is a hit (the first set is looked at first). A miss inserts by the
//! rules above applied to the union of the two sets' ways, ordered: the less loaded set's
//! ways first (load = live ways; ties → the first set), then the other's; "lowest way" is
//! first in that order. So a new flow goes to the less loaded set, and an eviction, when
//! both sets are full, takes the older of the two sets' victims (an embryonic one before
//! any established one, in either set). With one choice both candidates are the same set,
//! and the union is that set: the rules above exactly.

/// The class of a flow-table entry (stored in 2 bits; 0 = invalid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlowClass {
    Embryonic = 1,
    Tcp = 2,
    Udp = 3,
}

/// Idle timeouts in milliseconds, per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_ms: u32,
    pub tcp_embryonic_ms: u32,
    pub udp_ms: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_ms: 300_000,
            tcp_embryonic_ms: 5_000,
            udp_ms: 30_000,
        }
    }
}

impl Timeouts {
    #[inline]
    pub fn for_class(&self, class: FlowClass) -> u32 {
        match class {
            FlowClass::Embryonic => self.tcp_embryonic_ms,
            FlowClass::Tcp => self.tcp_ms,
            FlowClass::Udp => self.udp_ms,
        }
    }
}

/// Table shape. `sets` must be a power of two (the set is the low bits of the hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub sets: u32,
    pub ways: u32,
    /// Candidate sets per flow: 1 (the set of the hash) or 2 (that set and its partner in
    /// the other bank, [`Geometry::sets_of`]).
    pub choices: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry::DEFAULT
    }
}

/// The highest bank bit: a flow's two candidate sets differ in the bank bit (set bit 6 at
/// most) and share the bits below it, which decide the shard that owns both
/// ([`Geometry::shared_bits`]).
pub const MAX_BANK_BIT: u32 = 6;

impl Geometry {
    /// The default table (software engines, and the register map's reset values):
    /// 16384 sets × 4 ways, two choices. The one place these numbers are written.
    pub const DEFAULT: Geometry = Geometry {
        sets: 16384,
        ways: 4,
        choices: 2,
    };

    pub fn capacity(&self) -> u64 {
        self.sets as u64 * self.ways as u64
    }

    /// The set bit in which a flow's two candidate sets differ: log2(sets) − 6, at least 0
    /// and at most 6 (bit 6 from 4,096 sets on). The bits below it are shared by both sets
    /// (the sharding classes); the bits above it are the partner pool, kept at 64 sets or
    /// more (the whole table when smaller): a pool much smaller (a 256-set table with 6
    /// shared bits would leave groups of 4 sets) overflows as a group and evicts.
    #[inline]
    pub fn bank_bit(&self) -> u32 {
        self.sets
            .trailing_zeros()
            .saturating_sub(6)
            .min(MAX_BANK_BIT)
    }

    /// How many low set bits both candidate sets share (those below the bank bit): the
    /// sharding rule reads only these, so a flow's two sets always have one owner.
    #[inline]
    pub fn shared_bits(&self) -> u32 {
        self.bank_bit()
    }

    /// The flow's first candidate set (the set of one-choice tables).
    #[inline]
    pub fn set_of(&self, hash: u32) -> u32 {
        hash & (self.sets - 1)
    }

    /// A flow's candidate sets: `s1` = the hash's low bits, and with two choices
    /// `s2 = s1 ^ (((h2 | 1) << bank_bit) & (sets - 1))` with `h2` the digest's high half
    /// (independent of the hash): the bank bit always flips, the bits above it are mixed
    /// by `h2` so a crowded `s1`'s flows spread over many partners, the bits below it stay.
    /// With one choice (or one set) both are `s1`.
    #[inline]
    pub fn sets_of(&self, hash: u32, digest: u64) -> [u32; 2] {
        let s1 = self.set_of(hash);
        if self.choices < 2 || self.sets < 2 {
            return [s1, s1];
        }
        let h2 = (digest >> 32) as u32 | 1;
        [s1, s1 ^ ((h2 << self.bank_bit()) & (self.sets - 1))]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowEntry {
    /// `None` = invalid way.
    pub class: Option<FlowClass>,
    pub digest: u64,
    pub backend: u16,
    pub last_seen: u32,
}

impl FlowEntry {
    #[inline]
    fn is_live(&self, now: u32, t: &Timeouts) -> bool {
        match self.class {
            Some(c) => now.wrapping_sub(self.last_seen) <= t.for_class(c),
            None => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit {
        way: u32,
        backend: u16,
        class: FlowClass,
    },
    Miss,
}

/// What an insert displaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Empty,
    Expired,
    Evicted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Inserted { way: u32, replaced: Replaced },
    Refused,
}

/// Where [`FlowTable::insert_at`] stores a missed flow: a way of one of its candidate sets,
/// and what the way held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub set: u32,
    pub way: u32,
    pub replaced: Replaced,
}

/// [`FlowTable::probe`]: a hit (in candidate set `set`), or a miss with where an insert of
/// this flow would go now (`None`: it would be refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Hit {
        set: u32,
        way: u32,
        backend: u16,
        class: FlowClass,
    },
    Miss(Option<Choice>),
}

/// A table of `sets` × `ways` entries. The engine may hold a shard of the global table (a
/// subset of its sets); `set` arguments are then shard-local indices.
#[derive(Debug, Clone)]
pub struct FlowTable {
    ways: u32,
    entries: Vec<FlowEntry>,
}

impl FlowTable {
    pub fn new(sets: u32, ways: u32) -> Self {
        assert!(ways > 0, "a flow table needs at least one way");
        FlowTable {
            ways,
            entries: vec![FlowEntry::default(); sets as usize * ways as usize],
        }
    }

    pub fn ways(&self) -> u32 {
        self.ways
    }

    pub fn entries(&self) -> &[FlowEntry] {
        &self.entries
    }

    #[inline]
    fn set(&self, set: u32) -> &[FlowEntry] {
        let base = set as usize * self.ways as usize;
        &self.entries[base..base + self.ways as usize]
    }

    #[inline]
    fn set_mut(&mut self, set: u32) -> &mut [FlowEntry] {
        let base = set as usize * self.ways as usize;
        let ways = self.ways as usize;
        &mut self.entries[base..base + ways]
    }

    /// Find a live entry with `digest` in `set`. Read-only: the caller refreshes a hit
    /// with [`FlowTable::touch`].
    #[inline]
    pub fn lookup(&self, set: u32, digest: u64, now: u32, t: &Timeouts) -> Lookup {
        for (way, e) in self.set(set).iter().enumerate() {
            if e.digest == digest && e.is_live(now, t) {
                // `is_live` implies the class is present.
                let class = e.class.unwrap_or(FlowClass::Tcp);
                return Lookup::Hit {
                    way: way as u32,
                    backend: e.backend,
                    class,
                };
            }
        }
        Lookup::Miss
    }

    /// Look a flow up in its candidate sets (`sets`, from [`Geometry::sets_of`], as
    /// local indices; equal for one choice) and, on a miss, choose where it would be
    /// inserted (the module doc's rules over the union of the sets), reading each set once:
    /// the per-frame form. With equal sets it is [`FlowTable::lookup`] then
    /// [`FlowTable::insert`]'s choice (`probe_is_lookup_then_choice`); with two, the rules
    /// over the ordered union (`two_choice_probe_is_the_rules_over_the_union`).
    #[inline]
    pub fn probe(
        &self,
        sets: [u32; 2],
        digest: u64,
        class: FlowClass,
        now: u32,
        t: &Timeouts,
    ) -> Probe {
        let first = match self.scan(sets[0], digest, now, t) {
            Ok(scan) => scan,
            Err(hit) => return hit,
        };
        let choice = if sets[1] == sets[0] {
            first
                .choice(class)
                .map(|(way, replaced)| (sets[0], way, replaced))
        } else {
            let second = match self.scan(sets[1], digest, now, t) {
                Ok(scan) => scan,
                Err(hit) => return hit,
            };
            // The less loaded set's ways come first; ties → the first set.
            let (a, b, sa, sb) = if second.live < first.live {
                (second, first, sets[1], sets[0])
            } else {
                (first, second, sets[0], sets[1])
            };
            let w = self.ways as usize;
            a.then(b.offset(w))
                .choice(class)
                .map(|(pos, replaced)| match pos < w {
                    true => (sa, pos, replaced),
                    false => (sb, pos - w, replaced),
                })
        };
        Probe::Miss(choice.map(|(set, way, replaced)| Choice {
            set,
            way: way as u32,
            replaced,
        }))
    }

    /// One set's pass for [`FlowTable::probe`]: `Err` is the hit ([`Probe::Hit`]);
    /// `Ok` what an insert needs to know of the set.
    #[inline]
    fn scan(&self, set: u32, digest: u64, now: u32, t: &Timeouts) -> Result<SetScan, Probe> {
        let mut scan = SetScan::default();
        for (w, e) in self.set(set).iter().enumerate() {
            let Some(c) = e.class else {
                scan.victims.empty(w);
                continue;
            };
            let live = e.is_live(now, t);
            if e.digest == digest {
                if live {
                    return Err(Probe::Hit {
                        set,
                        way: w as u32,
                        backend: e.backend,
                        class: c,
                    });
                }
                // Insert rule 1, unless a later way holds the digest live (a hit).
                scan.same = scan.same.or(Some(w));
                continue;
            }
            scan.live += u32::from(live);
            scan.victims.occupied(w, e, c, live, now);
        }
        Ok(scan)
    }

    /// Store a missed flow where [`FlowTable::probe`] chose (with nothing written to its
    /// sets in between): what [`FlowTable::insert`] does, without reading the sets again.
    #[inline]
    pub fn insert_at(
        &mut self,
        choice: Option<Choice>,
        digest: u64,
        backend: u16,
        class: FlowClass,
        now: u32,
    ) -> Insert {
        match choice {
            Some(Choice { set, way, replaced }) => {
                self.set_mut(set)[way as usize] = FlowEntry {
                    class: Some(class),
                    digest,
                    backend,
                    last_seen: now,
                };
                Insert::Inserted { way, replaced }
            }
            None => Insert::Refused,
        }
    }

    /// Refresh a hit: record `now`, and the (possibly promoted) class and (possibly
    /// re-selected) backend.
    #[inline]
    pub fn touch(&mut self, set: u32, way: u32, backend: u16, class: FlowClass, now: u32) {
        let e = &mut self.set_mut(set)[way as usize];
        e.backend = backend;
        e.class = Some(class);
        e.last_seen = now;
    }

    /// Insert a flow that missed; see the module doc for the choice of way.
    #[inline]
    pub fn insert(
        &mut self,
        set: u32,
        digest: u64,
        backend: u16,
        class: FlowClass,
        now: u32,
        t: &Timeouts,
    ) -> Insert {
        let choice =
            Self::choose_way(self.set(set), digest, class, now, t).map(|(way, replaced)| Choice {
                set,
                way: way as u32,
                replaced,
            });
        self.insert_at(choice, digest, backend, class, now)
    }

    /// The rules of the module doc in one pass over the set (the per-frame form; tested
    /// equal to the rule-by-rule reference in `one_pass_choice_is_the_rules`).
    #[inline]
    fn choose_way(
        ways: &[FlowEntry],
        digest: u64,
        class: FlowClass,
        now: u32,
        t: &Timeouts,
    ) -> Option<(usize, Replaced)> {
        let mut victims = Victims::default();
        for (w, e) in ways.iter().enumerate() {
            let Some(c) = e.class else {
                victims.empty(w);
                continue;
            };
            if e.digest == digest {
                // It missed, so this entry is expired.
                return Some((w, Replaced::Expired));
            }
            victims.occupied(w, e, c, e.is_live(now, t), now);
        }
        victims.choice(class)
    }
}

/// What [`FlowTable::probe`] learns of one candidate set that missed.
#[derive(Default)]
struct SetScan {
    /// Rule 1: a way holding this digest (expired).
    same: Option<usize>,
    /// Live ways (the set's load).
    live: u32,
    victims: Victims,
}

impl SetScan {
    /// Ways numbered from `by` on (the second set's ways follow the first's).
    fn offset(self, by: usize) -> SetScan {
        let v = self.victims;
        SetScan {
            same: self.same.map(|w| w + by),
            live: self.live,
            victims: Victims {
                empty: v.empty.map(|w| w + by),
                expired: v.expired.map(|w| w + by),
                oldest_embryonic: v.oldest_embryonic,
                oldest_embryonic_way: v.oldest_embryonic_way + by,
                oldest: v.oldest,
                oldest_way: v.oldest_way + by,
            },
        }
    }

    /// The scan of this set's ways followed by `later`'s, as if they were one set.
    fn then(self, later: SetScan) -> SetScan {
        let (a, b) = (self.victims, later.victims);
        // Only a strictly older way replaces: ties keep the earlier.
        let (oldest_embryonic, oldest_embryonic_way) = match b.oldest_embryonic > a.oldest_embryonic
        {
            true => (b.oldest_embryonic, b.oldest_embryonic_way),
            false => (a.oldest_embryonic, a.oldest_embryonic_way),
        };
        let (oldest, oldest_way) = match b.oldest > a.oldest {
            true => (b.oldest, b.oldest_way),
            false => (a.oldest, a.oldest_way),
        };
        SetScan {
            same: self.same.or(later.same),
            live: self.live + later.live,
            victims: Victims {
                empty: a.empty.or(b.empty),
                expired: a.expired.or(b.expired),
                oldest_embryonic,
                oldest_embryonic_way,
                oldest,
                oldest_way,
            },
        }
    }

    /// Where a `class` flow goes: rule 1, then rules 2–6.
    fn choice(&self, class: FlowClass) -> Option<(usize, Replaced)> {
        match self.same {
            Some(w) => Some((w, Replaced::Expired)),
            None => self.victims.choice(class),
        }
    }
}

/// Rules 2–6 of the module doc (empty, expired, oldest embryonic, oldest, refused) in one
/// pass over a set, way by way; shared by [`FlowTable::probe`] and `choose_way`, which
/// handle rule 1 (the flow's own digest) themselves.
#[derive(Default, Clone, Copy)]
struct Victims {
    empty: Option<usize>,
    expired: Option<usize>,
    // The oldest embryonic way and the oldest of all, each as (age + 1, way) with 0 for
    // "none yet": only a strictly older way replaces, so ties keep the lowest way. (Plain
    // integers rather than `Option<(age, way)>`: this runs for every missed frame, and
    // the compiler turns these compares into conditional moves.)
    oldest_embryonic: u64,
    oldest_embryonic_way: usize,
    oldest: u64,
    oldest_way: usize,
}

impl Victims {
    /// Way `w` is empty.
    #[inline]
    fn empty(&mut self, w: usize) {
        self.empty = self.empty.or(Some(w));
    }

    /// Way `w` holds `e` (of class `c`; `live` at `now`), another flow's.
    #[inline]
    fn occupied(&mut self, w: usize, e: &FlowEntry, c: FlowClass, live: bool, now: u32) {
        if !live {
            self.expired = self.expired.or(Some(w));
        }
        let rank = u64::from(now.wrapping_sub(e.last_seen)) + 1;
        if c == FlowClass::Embryonic && rank > self.oldest_embryonic {
            (self.oldest_embryonic, self.oldest_embryonic_way) = (rank, w);
        }
        if rank > self.oldest {
            (self.oldest, self.oldest_way) = (rank, w);
        }
    }

    /// The way for a `class` flow after every way was seen, and what it replaces.
    #[inline]
    fn choice(&self, class: FlowClass) -> Option<(usize, Replaced)> {
        if let Some(w) = self.empty {
            return Some((w, Replaced::Empty));
        }
        if let Some(w) = self.expired {
            return Some((w, Replaced::Expired));
        }
        if self.oldest_embryonic > 0 {
            return Some((self.oldest_embryonic_way, Replaced::Evicted));
        }
        if class == FlowClass::Embryonic || self.oldest == 0 {
            return None;
        }
        Some((self.oldest_way, Replaced::Evicted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        tcp_ms: 1000,
        tcp_embryonic_ms: 100,
        udp_ms: 500,
    };

    /// The module doc's rules, one after another: the reference for the one-pass form.
    fn choose_way_reference(
        ways: &[FlowEntry],
        digest: u64,
        class: FlowClass,
        now: u32,
        t: &Timeouts,
    ) -> Option<(usize, Replaced)> {
        if let Some(w) = ways
            .iter()
            .position(|e| e.class.is_some() && e.digest == digest)
        {
            // It missed, so this entry is expired.
            return Some((w, Replaced::Expired));
        }
        if let Some(w) = ways.iter().position(|e| e.class.is_none()) {
            return Some((w, Replaced::Empty));
        }
        if let Some(w) = ways.iter().position(|e| !e.is_live(now, t)) {
            return Some((w, Replaced::Expired));
        }
        let age = |e: &FlowEntry| now.wrapping_sub(e.last_seen);
        // Oldest first; `max_by_key` returns the last maximum, so compare on (age, -way).
        let oldest = |pred: &dyn Fn(&FlowEntry) -> bool| {
            ways.iter()
                .enumerate()
                .filter(|(_, e)| pred(e))
                .max_by_key(|(w, e)| (age(e), std::cmp::Reverse(*w)))
                .map(|(w, _)| w)
        };
        if let Some(w) = oldest(&|e| e.class == Some(FlowClass::Embryonic)) {
            return Some((w, Replaced::Evicted));
        }
        if class == FlowClass::Embryonic {
            return None;
        }
        oldest(&|_| true).map(|w| (w, Replaced::Evicted))
    }

    #[test]
    fn one_pass_choice_is_the_rules() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x9e37_79b9_7f4a_7c15u64);
        let mut next = || rng.gen::<u64>();
        let classes = [
            None,
            Some(FlowClass::Embryonic),
            Some(FlowClass::Tcp),
            Some(FlowClass::Udp),
        ];
        for _ in 0..200_000 {
            let ways = 1 + (next() % 6) as usize;
            let now = next() as u32;
            let set: Vec<FlowEntry> = (0..ways)
                .map(|_| {
                    let r = next();
                    FlowEntry {
                        class: classes[(r & 3) as usize],
                        digest: (r >> 2) & 3,
                        backend: 0,
                        // Ages around the timeouts (and a few wrapped ones).
                        last_seen: now.wrapping_sub((r >> 8) as u32 % 1300),
                    }
                })
                .collect();
            let digest = next() & 7;
            for class in [FlowClass::Embryonic, FlowClass::Tcp, FlowClass::Udp] {
                assert_eq!(
                    FlowTable::choose_way(&set, digest, class, now, &T),
                    choose_way_reference(&set, digest, class, now, &T),
                    "{set:?} digest {digest} {class:?} now {now}"
                );
            }
        }
    }

    /// An entry from 64 random bits `r`: any class (or none), one of 4 digests (so
    /// repeated flows), ages around every timeout (and a few wrapped ticks) before `now`.
    fn random_entry(r: u64, now: u32) -> FlowEntry {
        const CLASSES: [Option<FlowClass>; 4] = [
            None,
            Some(FlowClass::Embryonic),
            Some(FlowClass::Tcp),
            Some(FlowClass::Udp),
        ];
        FlowEntry {
            class: CLASSES[(r & 3) as usize],
            digest: (r >> 2) & 3,
            backend: (r >> 4) as u16 & 0xff,
            last_seen: now.wrapping_sub((r >> 16) as u32 % 1300),
        }
    }

    /// `probe` is `lookup`, and on a miss `insert`'s choice, and `insert_at` with it
    /// leaves the table as `insert` does: on random sets with repeated digests (live and
    /// expired copies of the same flow), ages around every timeout, and wrapped ticks.
    #[test]
    fn probe_is_lookup_then_choice() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x05ee_d0f9_a0be);
        let (mut hits, mut refused, mut inserted) = (0, 0, 0);
        for _ in 0..100_000 {
            let ways = rng.gen_range(1..=6u32);
            let now: u32 = rng.gen();
            let mut ft = FlowTable::new(2, ways);
            for e in ft.set_mut(1) {
                *e = random_entry(rng.gen(), now);
            }
            let digest = rng.gen_range(0..6u64);
            let class = [FlowClass::Embryonic, FlowClass::Tcp, FlowClass::Udp][rng.gen_range(0..3)];
            let probe = ft.probe([1, 1], digest, class, now, &T);
            match ft.lookup(1, digest, now, &T) {
                Lookup::Hit {
                    way,
                    backend,
                    class: stored,
                } => {
                    hits += 1;
                    assert_eq!(
                        probe,
                        Probe::Hit {
                            set: 1,
                            way,
                            backend,
                            class: stored
                        }
                    );
                }
                Lookup::Miss => {
                    let Probe::Miss(choice) = probe else {
                        panic!("probe hit where lookup missed: {probe:?}");
                    };
                    let mut by_insert = ft.clone();
                    let want = by_insert.insert(1, digest, 9, class, now, &T);
                    let got = ft.insert_at(choice, digest, 9, class, now);
                    assert_eq!(
                        got,
                        want,
                        "{:?} digest {digest} {class:?} now {now}",
                        ft.set(1)
                    );
                    assert_eq!(ft.entries(), by_insert.entries());
                    match got {
                        Insert::Refused => refused += 1,
                        Insert::Inserted { .. } => inserted += 1,
                    }
                }
            }
        }
        // The cases all occur.
        assert!(
            hits > 1000 && refused > 1000 && inserted > 1000,
            "{hits} {refused} {inserted}"
        );
    }

    /// Two candidate sets: `probe` is a lookup in the first set then the second, and on a
    /// miss the module doc's rules (the reference above) over the union of their ways,
    /// the less loaded set's first.
    #[test]
    fn two_choice_probe_is_the_rules_over_the_union() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x2c40_1ce5);
        let (mut hits, mut second, mut refused, mut evicted) = (0, 0, 0, 0);
        for _ in 0..100_000 {
            let ways = rng.gen_range(1..=5u32);
            let now: u32 = rng.gen();
            let mut ft = FlowTable::new(4, ways);
            let sets = [rng.gen_range(0..4u32), rng.gen_range(0..4u32)];
            for e in ft.entries.iter_mut() {
                *e = random_entry(rng.gen(), now);
            }
            let digest = rng.gen_range(0..6u64);
            let class = [FlowClass::Embryonic, FlowClass::Tcp, FlowClass::Udp][rng.gen_range(0..3)];
            let got = ft.probe(sets, digest, class, now, &T);
            let hit = sets
                .iter()
                .find_map(|&set| match ft.lookup(set, digest, now, &T) {
                    Lookup::Hit {
                        way,
                        backend,
                        class,
                    } => Some(Probe::Hit {
                        set,
                        way,
                        backend,
                        class,
                    }),
                    Lookup::Miss => None,
                });
            if let Some(want) = hit {
                hits += 1;
                assert_eq!(got, want);
                continue;
            }
            let live = |set| ft.set(set).iter().filter(|e| e.is_live(now, &T)).count();
            let order = match sets[0] != sets[1] && live(sets[1]) < live(sets[0]) {
                true => [sets[1], sets[0]],
                false => [sets[0], sets[1]],
            };
            // Equal sets: the union is the set.
            let union: Vec<FlowEntry> = match sets[0] == sets[1] {
                true => ft.set(sets[0]).to_vec(),
                false => [ft.set(order[0]), ft.set(order[1])].concat(),
            };
            let w = ways as usize;
            let want =
                choose_way_reference(&union, digest, class, now, &T).map(|(pos, replaced)| {
                    Choice {
                        set: order[pos / w],
                        way: (pos % w) as u32,
                        replaced,
                    }
                });
            assert_eq!(
                got,
                Probe::Miss(want),
                "{:?} {sets:?} digest {digest} {class:?}",
                ft.entries
            );
            match want {
                None => refused += 1,
                Some(c) => {
                    second += usize::from(c.set != sets[0]);
                    evicted += usize::from(c.replaced == Replaced::Evicted);
                }
            }
        }
        // The cases all occur.
        assert!(
            hits > 1000 && second > 1000 && refused > 300 && evicted > 1000,
            "{hits} {second} {refused} {evicted}"
        );
    }

    /// The candidate sets differ in the bank bit and share the bits below it, for every
    /// table size; one choice (or one set) gives the hash's set twice.
    #[test]
    fn candidate_sets_differ_in_the_bank_bit_only_above_the_shared_bits() {
        for log2 in 0..=14u32 {
            let sets = 1u32 << log2;
            for choices in [1, 2] {
                let g = Geometry {
                    sets,
                    ways: 4,
                    choices,
                };
                let bank = g.bank_bit();
                assert!(bank <= MAX_BANK_BIT);
                for i in 0..1000u64 {
                    let hash = (i as u32).wrapping_mul(0x9e37_79b9);
                    let digest = i.wrapping_mul(0xd6e8_feb8_6659_fd93);
                    let [s1, s2] = g.sets_of(hash, digest);
                    assert_eq!(s1, hash & (sets - 1));
                    assert!(s2 < sets);
                    if choices == 1 || sets == 1 {
                        assert_eq!(s2, s1);
                    } else {
                        assert_eq!((s1 ^ s2) >> bank & 1, 1, "{sets} sets: the bank bit flips");
                        let shared = (1 << g.shared_bits()) - 1;
                        assert_eq!(s1 & shared, s2 & shared, "{sets} sets");
                    }
                }
            }
        }
    }

    #[test]
    fn hit_after_insert_and_miss_after_expiry() {
        let mut ft = FlowTable::new(4, 2);
        assert_eq!(ft.lookup(1, 42, 0, &T), Lookup::Miss);
        assert_eq!(
            ft.insert(1, 42, 7, FlowClass::Tcp, 0, &T),
            Insert::Inserted {
                way: 0,
                replaced: Replaced::Empty
            }
        );
        assert_eq!(
            ft.lookup(1, 42, 1000, &T),
            Lookup::Hit {
                way: 0,
                backend: 7,
                class: FlowClass::Tcp
            }
        );
        assert_eq!(
            ft.lookup(1, 42, 1001, &T),
            Lookup::Miss,
            "idle longer than the TCP timeout"
        );
        // Other sets are untouched.
        assert_eq!(ft.lookup(0, 42, 0, &T), Lookup::Miss);
        // Re-inserting the expired flow reuses its own way.
        assert_eq!(
            ft.insert(1, 42, 3, FlowClass::Tcp, 1001, &T),
            Insert::Inserted {
                way: 0,
                replaced: Replaced::Expired
            }
        );
    }

    #[test]
    fn touch_refreshes_and_promotes() {
        let mut ft = FlowTable::new(1, 1);
        ft.insert(0, 9, 1, FlowClass::Embryonic, 0, &T);
        assert_eq!(
            ft.lookup(0, 9, 101, &T),
            Lookup::Miss,
            "embryonic timeout is short"
        );
        ft.insert(0, 9, 1, FlowClass::Embryonic, 200, &T);
        ft.touch(0, 0, 1, FlowClass::Tcp, 250);
        assert_eq!(
            ft.lookup(0, 9, 1250, &T),
            Lookup::Hit {
                way: 0,
                backend: 1,
                class: FlowClass::Tcp
            }
        );
    }

    #[test]
    fn evicts_least_recently_seen_then_lowest_way() {
        let mut ft = FlowTable::new(1, 3);
        ft.insert(0, 1, 1, FlowClass::Tcp, 10, &T);
        ft.insert(0, 2, 2, FlowClass::Tcp, 10, &T);
        ft.insert(0, 3, 3, FlowClass::Tcp, 20, &T);
        // Ways 0 and 1 tie as oldest: the lowest goes.
        assert_eq!(
            ft.insert(0, 4, 4, FlowClass::Tcp, 30, &T),
            Insert::Inserted {
                way: 0,
                replaced: Replaced::Evicted
            }
        );
        // Now way 1 (seen at 10) is the oldest.
        assert_eq!(
            ft.insert(0, 5, 5, FlowClass::Udp, 31, &T),
            Insert::Inserted {
                way: 1,
                replaced: Replaced::Evicted
            }
        );
        assert_eq!(
            ft.lookup(0, 3, 31, &T),
            Lookup::Hit {
                way: 2,
                backend: 3,
                class: FlowClass::Tcp
            }
        );
    }

    #[test]
    fn expired_way_is_preferred_over_eviction() {
        let mut ft = FlowTable::new(1, 2);
        ft.insert(0, 1, 1, FlowClass::Udp, 0, &T);
        ft.insert(0, 2, 2, FlowClass::Tcp, 0, &T);
        // At 600 the UDP flow (timeout 500) is expired, the TCP flow is not.
        assert_eq!(
            ft.insert(0, 3, 3, FlowClass::Tcp, 600, &T),
            Insert::Inserted {
                way: 0,
                replaced: Replaced::Expired
            }
        );
        assert!(matches!(ft.lookup(0, 2, 600, &T), Lookup::Hit { .. }));
    }

    #[test]
    fn embryonic_goes_first_and_never_displaces_established() {
        let mut ft = FlowTable::new(1, 2);
        ft.insert(0, 1, 1, FlowClass::Tcp, 0, &T);
        ft.insert(0, 2, 2, FlowClass::Embryonic, 50, &T);
        // An established insert evicts the (younger) embryonic entry, not the older TCP one.
        assert_eq!(
            ft.insert(0, 3, 3, FlowClass::Tcp, 60, &T),
            Insert::Inserted {
                way: 1,
                replaced: Replaced::Evicted
            }
        );
        // The set is now full of established flows: a SYN cannot get in.
        assert_eq!(
            ft.insert(0, 4, 4, FlowClass::Embryonic, 70, &T),
            Insert::Refused
        );
        assert!(matches!(ft.lookup(0, 1, 70, &T), Lookup::Hit { .. }));
        assert!(matches!(ft.lookup(0, 3, 70, &T), Lookup::Hit { .. }));
    }

    #[test]
    fn ticks_wrap() {
        let mut ft = FlowTable::new(1, 1);
        ft.insert(0, 1, 1, FlowClass::Tcp, u32::MAX - 10, &T);
        assert!(matches!(ft.lookup(0, 1, 500, &T), Lookup::Hit { .. }));
        assert_eq!(ft.lookup(0, 1, 1000, &T), Lookup::Miss);
    }
}
