//! Stage 5 — select: weighted Maglev consistent hashing with a primary and a secondary
//! backend per slot.
//!
//! slot = (hash × M) >> 32 (no modulo, so hardware needs one multiplier). A frame goes to
//! the slot's primary if that backend is up, else to its secondary if that is up; the
//! control plane then rebuilds the table without the failed backend.
//!
//! # How the table is built
//!
//! Each backend gets a permutation of the `m` slots from its `key` alone:
//! `offset = h1(key) % m`, `skip = h2(key) % (m - 1) + 1`, slot j = `(offset + j·skip) % m`,
//! where h1 and h2 are SipHash-2-4 under two fixed keys. Nothing in it depends on the
//! platform, the process or the order of the input, so every host that builds from the same
//! config writes the same table. `m` must be prime so that every skip walks all slots.
//!
//! Primaries are filled as in Katran's `MaglevHashV2`: the backends with weight > 0, sorted
//! by (key, index), take turns in rounds; in each round a backend adds its weight to an
//! accumulator and, when that reaches the largest weight, subtracts it and claims the next
//! free slot of its permutation. Slot shares are therefore proportional to the weights to
//! within one slot, independent of the permutations.
//!
//! Secondaries are a second pass with the same rule in which a backend skips the slots whose
//! primary is itself. When a backend fails, its slots then fall to the other backends in
//! proportion to their weights, while no other slot changes owner. A backend whose
//! permutation has nothing left it may claim leaves the rounds (the largest weight among
//! those left becomes the new threshold), which can only happen in this pass.
//!
//! Weight 0 (draining) gets neither primaries nor secondaries. With one backend of weight
//! > 0 every secondary is [`NO_BACKEND`]; with none, every slot is empty.
//!
//! Backends with equal keys share a permutation: the table is still complete, weighted and
//! deterministic (ties are broken by index), but their slots interleave, so removing one of
//! them moves its twin's neighbourhood more than usual. The config rejects duplicate keys.
//!
//! [`MaglevTable::rebuild_min_disruption`] is the alternative for a running system: it gives
//! every backend the same number of slots as [`MaglevTable::build`] but keeps as many slots
//! as possible with their previous owners.

use siphasher::sip::SipHasher24;
use std::collections::HashMap;
use thiserror::Error;

/// Marks an empty half of a slot (no backend).
pub const NO_BACKEND: u16 = u16::MAX;

/// Default table size (prime) in software.
pub const DEFAULT_M: u32 = 65537;

/// SipHash-2-4 key of h1 (offset). Changing it reshuffles every table.
const OFFSET_KEY: &[u8; 16] = b"flowgate-maglev1";
/// SipHash-2-4 key of h2 (skip).
const SKIP_KEY: &[u8; 16] = b"flowgate-maglev2";

/// One Maglev slot: global backend indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub primary: u16,
    pub secondary: u16,
}

impl Slot {
    /// A slot with neither a primary nor a secondary.
    pub const EMPTY: Slot = Slot {
        primary: NO_BACKEND,
        secondary: NO_BACKEND,
    };
}

/// A backend as Maglev sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevBackend {
    /// Stable identity that seeds this backend's permutation (e.g. its address as text),
    /// so every host that builds from the same config builds the same table.
    pub key: Vec<u8>,
    /// Relative weight; 0 = draining (gets no slots).
    pub weight: u32,
    /// Global backend index written into the slots.
    pub index: u16,
}

/// Why a set of backends cannot be turned into a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MaglevError {
    #[error("Maglev table size {0} is not prime")]
    SizeNotPrime(u32),
    #[error("backend index {0} is reserved to mark an empty slot")]
    ReservedIndex(u16),
    #[error("backend index {0} is given to more than one backend")]
    DuplicateIndex(u16),
}

/// A backend's order of preference over the slots of a table of size `m`:
/// slot j = `(offset + j·skip) % m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permutation {
    pub offset: u32,
    pub skip: u32,
}

impl Permutation {
    /// The permutation of `key` for a table of prime size `m`. (A table of fewer than two
    /// slots has only the trivial order: offset 0, skip 1.)
    pub fn new(key: &[u8], m: u32) -> Permutation {
        if m < 2 {
            return Permutation { offset: 0, skip: 1 };
        }
        let h1 = SipHasher24::new_with_key(OFFSET_KEY).hash(key);
        let h2 = SipHasher24::new_with_key(SKIP_KEY).hash(key);
        Permutation {
            offset: (h1 % u64::from(m)) as u32,
            skip: (h2 % u64::from(m - 1)) as u32 + 1,
        }
    }

    /// The backend's j-th preferred slot (0 for an empty table).
    pub fn slot(&self, j: u32, m: u32) -> u32 {
        let sum = u64::from(self.offset) + u64::from(j) * u64::from(self.skip);
        sum.checked_rem(u64::from(m)).unwrap_or(0) as u32
    }
}

/// An empty table (no slots) selects no backend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaglevTable {
    slots: Vec<Slot>,
}

impl MaglevTable {
    /// Build the table of `m` slots (m prime) for `backends`. The order of `backends` does
    /// not matter.
    ///
    /// # Panics
    /// If `m` is not prime, or an index is [`NO_BACKEND`] or given twice; the config
    /// validates all three first. [`MaglevTable::try_build`] returns them as errors.
    pub fn build(m: u32, backends: &[MaglevBackend]) -> MaglevTable {
        Self::try_build(m, backends).unwrap_or_else(|e| panic!("MaglevTable::build: {e}"))
    }

    /// [`MaglevTable::build`] that reports bad input as an error.
    pub fn try_build(m: u32, backends: &[MaglevBackend]) -> Result<MaglevTable, MaglevError> {
        validate(m, backends)?;
        let members = members(m, backends);
        let mut slots = vec![Slot::EMPTY; m as usize];
        fill(&members, &mut slots, Half::Primary, None);
        if members.len() >= 2 {
            fill(&members, &mut slots, Half::Secondary, None);
        }
        Ok(MaglevTable { slots })
    }

    /// Rebuild after a change of the backend set or weights, moving as few slots as it can.
    ///
    /// Every backend gets exactly as many primary slots as [`MaglevTable::build`] would give
    /// it (so the load bound is the same), but keeps the slots it had in `previous`, up to
    /// that quota (the ones earliest in its permutation when it must give some up). A freed
    /// slot goes first to its previous secondary if that one is short of its quota — it has
    /// been serving the slot since the primary failed, so failover followed by a rebuild
    /// moves those flows only once — and the rest is handed out in weighted rounds along the
    /// backends' permutations. Secondaries are kept and refilled the same way, with the
    /// secondary counts of the plain build as quotas.
    ///
    /// The result depends on `previous`, so hosts must rebuild from the same previous table
    /// to agree; given (previous, backends) it is deterministic and independent of the order
    /// of `backends`. A `previous` of another size gives the plain build.
    ///
    /// # Panics
    /// Like [`MaglevTable::build`].
    pub fn rebuild_min_disruption(
        previous: &MaglevTable,
        m: u32,
        backends: &[MaglevBackend],
    ) -> MaglevTable {
        Self::try_rebuild_min_disruption(previous, m, backends)
            .unwrap_or_else(|e| panic!("MaglevTable::rebuild_min_disruption: {e}"))
    }

    /// [`MaglevTable::rebuild_min_disruption`] that reports bad input as an error.
    pub fn try_rebuild_min_disruption(
        previous: &MaglevTable,
        m: u32,
        backends: &[MaglevBackend],
    ) -> Result<MaglevTable, MaglevError> {
        let plain = Self::try_build(m, backends)?;
        let members = members(m, backends);
        if previous.len() != m || members.is_empty() {
            return Ok(plain);
        }
        let position: HashMap<u16, usize> = members
            .iter()
            .enumerate()
            .map(|(i, b)| (b.index, i))
            .collect();
        let mut primary_quota = vec![0u32; members.len()];
        let mut secondary_quota = vec![0u32; members.len()];
        for s in &plain.slots {
            primary_quota[position[&s.primary]] += 1;
            if let Some(&i) = position.get(&s.secondary) {
                secondary_quota[i] += 1;
            }
        }

        let mut slots = vec![Slot::EMPTY; m as usize];
        let mut left = keep_previous(
            &members,
            &position,
            &previous.slots,
            Half::Primary,
            &primary_quota,
            &mut slots,
        );
        for (s, prev) in slots.iter_mut().zip(&previous.slots) {
            if s.primary != NO_BACKEND {
                continue;
            }
            if let Some(&i) = position.get(&prev.secondary) {
                if left[i] > 0 {
                    s.primary = prev.secondary;
                    left[i] -= 1;
                }
            }
        }
        fill(&members, &mut slots, Half::Primary, Some(&mut left));
        debug_assert!(slots.iter().all(|s| s.primary != NO_BACKEND));

        if members.len() >= 2 {
            let mut left = keep_previous(
                &members,
                &position,
                &previous.slots,
                Half::Secondary,
                &secondary_quota,
                &mut slots,
            );
            fill(&members, &mut slots, Half::Secondary, Some(&mut left));
            repair_secondaries(&members, &mut slots, &mut left);
            // A no-op unless the repair could not place a slot, which the quotas rule out;
            // should it happen, a complete table matters more than exact quotas.
            fill(&members, &mut slots, Half::Secondary, None);
        }
        Ok(MaglevTable { slots })
    }

    /// A table holding exactly `slots`, as read back from a device (the driver decodes a
    /// programmed register file into [`crate::Tables`] with it). No check is made that the
    /// slots form a Maglev table: they are taken as the data path would see them.
    pub fn from_slots(slots: Vec<Slot>) -> MaglevTable {
        MaglevTable { slots }
    }

    pub fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    #[inline]
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Number of slots whose primary differs between `self` and `other` (all of them if the
    /// sizes differ): the share of new flows a rebuild sends elsewhere.
    pub fn primary_changes(&self, other: &MaglevTable) -> u32 {
        if self.len() != other.len() {
            return self.len().max(other.len());
        }
        self.slots
            .iter()
            .zip(&other.slots)
            .filter(|(a, b)| a.primary != b.primary)
            .count() as u32
    }

    /// slot index = (hash × M) >> 32.
    #[inline]
    pub fn slot_index(&self, hash: u32) -> u32 {
        ((hash as u64 * self.slots.len() as u64) >> 32) as u32
    }

    #[inline]
    pub fn slot(&self, hash: u32) -> Slot {
        self.slots[self.slot_index(hash) as usize]
    }
}

/// Whether `n` is prime (trial division by 6k ± 1; at most ~11,000 steps for a u32).
// `u32::is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.80.
#[allow(clippy::manual_is_multiple_of)]
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 || n % 3 == 0 {
        return false;
    }
    let mut d = 5u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n % d == 0 || n % (d + 2) == 0 {
            return false;
        }
        d += 6;
    }
    true
}

fn validate(m: u32, backends: &[MaglevBackend]) -> Result<(), MaglevError> {
    if !is_prime(m) {
        return Err(MaglevError::SizeNotPrime(m));
    }
    let mut indices: Vec<u16> = backends.iter().map(|b| b.index).collect();
    indices.sort_unstable();
    if indices.last() == Some(&NO_BACKEND) {
        return Err(MaglevError::ReservedIndex(NO_BACKEND));
    }
    match indices.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(MaglevError::DuplicateIndex(w[0])),
        None => Ok(()),
    }
}

/// A backend that takes part in the rounds.
struct Member {
    index: u16,
    weight: u32,
    perm: Permutation,
}

/// The backends with weight > 0 in round order: by key, ties by index, so the input order
/// does not matter.
fn members(m: u32, backends: &[MaglevBackend]) -> Vec<Member> {
    let mut sorted: Vec<&MaglevBackend> = backends.iter().filter(|b| b.weight > 0).collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key).then(a.index.cmp(&b.index)));
    sorted
        .into_iter()
        .map(|b| Member {
            index: b.index,
            weight: b.weight,
            perm: Permutation::new(&b.key, m),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Primary,
    Secondary,
}

impl Half {
    fn get(self, s: &Slot) -> u16 {
        match self {
            Half::Primary => s.primary,
            Half::Secondary => s.secondary,
        }
    }

    fn set(self, s: &mut Slot, backend: u16) {
        match self {
            Half::Primary => s.primary = backend,
            Half::Secondary => s.secondary = backend,
        }
    }

    /// Whether `backend` may take this half of `s`.
    fn open_to(self, s: &Slot, backend: u16) -> bool {
        match self {
            Half::Primary => s.primary == NO_BACKEND,
            Half::Secondary => s.secondary == NO_BACKEND && s.primary != backend,
        }
    }
}

/// Walks one backend's permutation. A slot it passes over is taken or forbidden for good
/// (halves are only ever filled during a pass), so it never needs to look back.
struct Cursor {
    next: u32,
    skip: u32,
    unseen: u32,
}

impl Cursor {
    fn new(p: Permutation, m: u32) -> Cursor {
        Cursor {
            next: p.offset,
            skip: p.skip,
            unseen: m,
        }
    }

    /// The next slot of the permutation for which `open` holds, if any is left.
    fn next_open(&mut self, m: u32, open: impl Fn(usize) -> bool) -> Option<usize> {
        while self.unseen > 0 {
            let s = self.next;
            self.unseen -= 1;
            // next + skip < 2m ≤ 2^33 would overflow u32 for m near 2^32; wrap via u64.
            let n = u64::from(self.next) + u64::from(self.skip);
            self.next = if n >= u64::from(m) {
                n - u64::from(m)
            } else {
                n
            } as u32;
            if open(s as usize) {
                return Some(s as usize);
            }
        }
        None
    }
}

/// Fill the free `half`s of `slots` in Katran's weighted rounds. With `quota`, member i
/// claims at most `quota[i]` slots (decremented as it claims).
fn fill(members: &[Member], slots: &mut [Slot], half: Half, mut quota: Option<&mut [u32]>) {
    let m = slots.len() as u32;
    let free = slots.iter().filter(|s| half.get(s) == NO_BACKEND).count();
    let mut cursors: Vec<Cursor> = members.iter().map(|b| Cursor::new(b.perm, m)).collect();
    let weights: Vec<u32> = members.iter().map(|b| b.weight).collect();
    weighted_rounds(&weights, free, |i| {
        if let Some(q) = quota.as_deref_mut() {
            if q[i] == 0 {
                return false;
            }
        }
        let backend = members[i].index;
        match cursors[i].next_open(m, |s| half.open_to(&slots[s], backend)) {
            Some(s) => {
                half.set(&mut slots[s], backend);
                if let Some(q) = quota.as_deref_mut() {
                    q[i] -= 1;
                }
                true
            }
            None => false,
        }
    });
}

/// Katran's MaglevHashV2 schedule: in each round every active member adds its weight to its
/// accumulator and, once that reaches the largest active weight, subtracts it and claims a
/// slot. `claim(i)` returns false when member i can claim nothing more; it then leaves the
/// rounds and the threshold becomes the largest weight left. Stops after `to_fill` claims.
///
/// The member with the largest weight claims (or leaves) every round, so there are at most
/// `to_fill + members` rounds.
fn weighted_rounds(weights: &[u32], mut to_fill: usize, mut claim: impl FnMut(usize) -> bool) {
    let mut active: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0).collect();
    let mut acc = vec![0u64; weights.len()];
    let mut done = vec![false; weights.len()];
    while to_fill > 0 && !active.is_empty() {
        let max = active
            .iter()
            .map(|&i| u64::from(weights[i]))
            .max()
            .unwrap_or(1);
        let mut left_rounds = false;
        for &i in &active {
            acc[i] += u64::from(weights[i]);
            if acc[i] >= max {
                if claim(i) {
                    acc[i] -= max;
                    to_fill -= 1;
                    if to_fill == 0 {
                        return;
                    }
                } else {
                    done[i] = true;
                    left_rounds = true;
                }
            }
        }
        if left_rounds {
            active.retain(|&i| !done[i]);
        }
    }
}

/// For [`MaglevTable::rebuild_min_disruption`]: give each member back the `half`s it held
/// in `previous`, at most its quota, preferring the slots earliest in its permutation.
/// A previous secondary that is now the slot's primary is not kept. Returns how many slots
/// each member still has to claim.
fn keep_previous(
    members: &[Member],
    position: &HashMap<u16, usize>,
    previous: &[Slot],
    half: Half,
    quota: &[u32],
    slots: &mut [Slot],
) -> Vec<u32> {
    let m = slots.len() as u32;
    let mut held: Vec<Vec<u32>> = vec![Vec::new(); members.len()];
    for (s, prev) in previous.iter().enumerate() {
        let b = half.get(prev);
        if let Some(&i) = position.get(&b) {
            if half.open_to(&slots[s], b) {
                held[i].push(s as u32);
            }
        }
    }
    let mut left = vec![0u32; members.len()];
    for (i, (slots_of_i, b)) in held.iter_mut().zip(members).enumerate() {
        if slots_of_i.len() > quota[i] as usize {
            let p = b.perm;
            let inverse_skip = pow_mod(p.skip, m - 2, m);
            // Rank of slot s in the permutation: (s − offset) · skip⁻¹ mod m.
            slots_of_i.sort_by_key(|&s| {
                let d = (u64::from(s) + u64::from(m) - u64::from(p.offset)) % u64::from(m);
                d * u64::from(inverse_skip) % u64::from(m)
            });
            slots_of_i.truncate(quota[i] as usize);
        }
        for &s in slots_of_i.iter() {
            half.set(&mut slots[s as usize], b.index);
        }
        left[i] = quota[i] - slots_of_i.len() as u32;
    }
    left
}

/// Place the secondaries that the quota-bound pass left empty, keeping the quotas exact (so
/// that rebuilding the result with the same backends changes nothing).
///
/// A backend that is still short has walked its whole permutation, so every slot still
/// empty is one it may not take: one of its own primaries. Hence at most one backend is
/// short, and each empty slot s is its primary. It takes instead the secondary of another
/// slot s′ (not its own primary, early in its permutation), whose backend moves to s.
fn repair_secondaries(members: &[Member], slots: &mut [Slot], left: &mut [u32]) {
    let m = slots.len() as u32;
    for (i, b) in members.iter().enumerate() {
        if left[i] == 0 {
            continue;
        }
        let mut cursor = Cursor::new(b.perm, m);
        for s in 0..slots.len() {
            if left[i] == 0 {
                break;
            }
            if slots[s].secondary != NO_BACKEND || slots[s].primary != b.index {
                continue;
            }
            let other = |t: usize| {
                let x = &slots[t];
                x.primary != b.index && x.secondary != b.index && x.secondary != NO_BACKEND
            };
            let Some(t) = cursor.next_open(m, other) else {
                break;
            };
            slots[s].secondary = slots[t].secondary;
            slots[t].secondary = b.index;
            left[i] -= 1;
        }
    }
}

/// base^exp mod m (m prime, so base^(m−2) is base's inverse).
fn pow_mod(base: u32, mut exp: u32, m: u32) -> u32 {
    let m = u64::from(m);
    let mut result = 1u64;
    let mut b = u64::from(base) % m;
    while exp > 0 {
        if exp & 1 == 1 {
            result = result * b % m;
        }
        b = b * b % m;
        exp >>= 1;
    }
    result as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(key: &str, weight: u32, index: u16) -> MaglevBackend {
        MaglevBackend {
            key: key.as_bytes().to_vec(),
            weight,
            index,
        }
    }

    fn equal(n: u16) -> Vec<MaglevBackend> {
        (0..n)
            .map(|i| backend(&format!("10.0.{}.{}:80", i / 256, i % 256), 1, i))
            .collect()
    }

    #[test]
    fn is_prime_matches_a_sieve() {
        let limit = 10_000usize;
        let mut sieve = vec![true; limit];
        sieve[0] = false;
        sieve[1] = false;
        for i in 2..limit {
            if sieve[i] {
                for j in (i * i..limit).step_by(i) {
                    sieve[j] = false;
                }
            }
        }
        for (n, &p) in sieve.iter().enumerate() {
            assert_eq!(is_prime(n as u32), p, "{n}");
        }
        assert!(is_prime(65537));
        assert!(is_prime(4_294_967_291)); // largest u32 prime
        assert!(!is_prime(u32::MAX));
        assert!(!is_prime(65521 * 65537)); // two primes near 2^16
    }

    #[test]
    fn pow_mod_gives_the_inverse() {
        for m in [2u32, 3, 13, 65537] {
            for a in 1..m.min(500) {
                assert_eq!(
                    u64::from(a) * u64::from(pow_mod(a, m - 2, m)) % u64::from(m),
                    1
                );
            }
        }
    }

    #[test]
    fn siphash_is_the_reference_siphash_2_4() {
        // Test vector from the SipHash paper (Aumasson & Bernstein, appendix A): key
        // 00..0f, message 00..0e.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(
            SipHasher24::new_with_key(&key).hash(&msg),
            0xa129_ca61_49be_45e5
        );
    }

    #[test]
    fn permutation_is_pinned_and_covers_every_slot() {
        // Pinned so that a change of hash, key or formula, which would reshuffle every
        // deployed table, cannot go unnoticed.
        let p = Permutation::new(b"10.0.0.1:80", DEFAULT_M);
        assert_eq!(
            (p.offset, p.skip),
            PINNED_PERMUTATION,
            "permutation of 10.0.0.1:80 changed"
        );
        let m = 101;
        let p = Permutation::new(b"backend-a", m);
        let mut seen = vec![false; m as usize];
        for j in 0..m {
            seen[p.slot(j, m) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    const PINNED_PERMUTATION: (u32, u32) = (5959, 33753);

    #[test]
    fn permutation_of_a_degenerate_size_does_not_panic() {
        for m in [0, 1] {
            let p = Permutation::new(b"x", m);
            assert_eq!((p.offset, p.skip), (0, 1));
            assert_eq!(p.slot(5, m), 0);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let ok = equal(3);
        assert_eq!(
            MaglevTable::try_build(100, &ok),
            Err(MaglevError::SizeNotPrime(100))
        );
        assert_eq!(
            MaglevTable::try_build(1, &ok),
            Err(MaglevError::SizeNotPrime(1))
        );
        let mut dup = equal(3);
        dup[2].index = 0;
        assert_eq!(
            MaglevTable::try_build(13, &dup),
            Err(MaglevError::DuplicateIndex(0))
        );
        let reserved = vec![backend("a", 1, NO_BACKEND)];
        assert_eq!(
            MaglevTable::try_build(13, &reserved),
            Err(MaglevError::ReservedIndex(NO_BACKEND))
        );
        let prev = MaglevTable::build(13, &ok);
        assert_eq!(
            MaglevTable::try_rebuild_min_disruption(&prev, 12, &ok),
            Err(MaglevError::SizeNotPrime(12))
        );
    }

    #[test]
    #[should_panic(expected = "not prime")]
    fn build_asserts_prime_size() {
        MaglevTable::build(65536, &equal(2));
    }

    #[test]
    fn no_weighted_backend_gives_empty_slots() {
        for backends in [vec![], vec![backend("a", 0, 0), backend("b", 0, 1)]] {
            let t = MaglevTable::build(13, &backends);
            assert_eq!(t.len(), 13);
            assert!(t.slots().iter().all(|s| *s == Slot::EMPTY));
        }
    }

    #[test]
    fn one_backend_has_every_primary_and_no_secondary() {
        let t = MaglevTable::build(101, &[backend("a", 5, 7), backend("b", 0, 8)]);
        assert!(t.slots().iter().all(|s| *s
            == Slot {
                primary: 7,
                secondary: NO_BACKEND
            }));
    }

    #[test]
    fn draining_backend_gets_no_slot() {
        let mut bs = equal(5);
        bs[2].weight = 0;
        let t = MaglevTable::build(1009, &bs);
        assert!(t.slots().iter().all(|s| s.primary != 2 && s.secondary != 2));
        assert!(t
            .slots()
            .iter()
            .all(|s| s.primary != NO_BACKEND && s.secondary != NO_BACKEND));
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut bs: Vec<MaglevBackend> = (0..20)
            .map(|i| backend(&format!("be{i}"), 1 + i as u32 % 4, i))
            .collect();
        let a = MaglevTable::build(1009, &bs);
        bs.reverse();
        bs.swap(3, 11);
        assert_eq!(MaglevTable::build(1009, &bs), a);
        let b = MaglevTable::build(1009, &bs[1..]);
        let mut cs = bs[1..].to_vec();
        cs.rotate_left(5);
        assert_eq!(
            MaglevTable::rebuild_min_disruption(&a, 1009, &cs),
            MaglevTable::rebuild_min_disruption(&a, 1009, &bs[1..])
        );
        assert_ne!(b, a);
    }

    #[test]
    fn equal_keys_are_deterministic_and_weighted() {
        // The config rejects this; the table still must not depend on input order.
        let bs = vec![
            backend("same", 1, 0),
            backend("same", 3, 1),
            backend("x", 2, 2),
        ];
        let t = MaglevTable::build(601, &bs);
        let rev: Vec<_> = bs.iter().rev().cloned().collect();
        assert_eq!(MaglevTable::build(601, &rev), t);
        let count = |b| t.slots().iter().filter(|s| s.primary == b).count();
        assert_eq!((count(0), count(1), count(2)), (100, 301, 200));
        assert!(t.slots().iter().all(|s| s.secondary != s.primary));
    }

    #[test]
    fn small_table_matches_a_hand_trace() {
        // Permutations (m = 13): a = 7,9,11,0,2,4,6,8,10,12,1,3,5 (offset 7, skip 2);
        // b = 12,8,4,0,9,5,1,10,6,2,11,7,3 (12, 9); c = 11,10,9,…,0,12 (11, 12).
        // Weights a 1, b 2, c 1 → per two rounds b claims twice, a and c once:
        // b12 | a7 b8 c11 | b4 | a9 b0 c10 | b5 | a2 b1 c6 | b3.
        // Secondaries, skipping own primaries: b9 | a11 b10 c8 | b6 | a0 b2 c7 | b has
        // nothing left and leaves, threshold 1 | a4 c5 | a12 c3 | a1.
        for (key, perm) in [("a", (7, 2)), ("b", (12, 9)), ("c", (11, 12))] {
            let p = Permutation::new(key.as_bytes(), 13);
            assert_eq!((p.offset, p.skip), perm, "{key}");
        }
        let bs = vec![backend("a", 1, 0), backend("b", 2, 1), backend("c", 1, 2)];
        let t = MaglevTable::build(13, &bs);
        let got: Vec<(u16, u16)> = t.slots().iter().map(|s| (s.primary, s.secondary)).collect();
        let want = [
            (1, 0),
            (1, 0),
            (0, 1),
            (1, 2),
            (1, 0),
            (1, 2),
            (2, 1),
            (0, 2),
            (1, 2),
            (0, 1),
            (2, 1),
            (2, 0),
            (1, 0),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn rebuild_with_same_backends_changes_nothing() {
        let bs: Vec<MaglevBackend> = (0..30)
            .map(|i| backend(&format!("be{i}"), 1 + i as u32 % 3, i))
            .collect();
        let t = MaglevTable::build(2003, &bs);
        assert_eq!(MaglevTable::rebuild_min_disruption(&t, 2003, &bs), t);
    }

    #[test]
    fn rebuild_keeps_secondary_quotas_exact_when_the_quota_pass_stalls() {
        // Here the quota-bound secondary pass leaves slots that only their own primary is
        // short for, so `repair_secondaries` has to swap.
        let before = vec![backend("a", 1, 0), backend("b", 2, 1), backend("c", 1, 2)];
        let after = vec![backend("a", 1, 0), backend("b", 2, 1), backend("d", 1, 3)];
        let prev = MaglevTable::build(13, &before);
        let fresh = MaglevTable::build(13, &after);
        let t = MaglevTable::rebuild_min_disruption(&prev, 13, &after);
        let counts = |t: &MaglevTable, b: u16| {
            let p = t.slots().iter().filter(|s| s.primary == b).count();
            let s = t.slots().iter().filter(|s| s.secondary == b).count();
            (p, s)
        };
        for b in [0, 1, 3] {
            assert_eq!(counts(&t, b), counts(&fresh, b), "backend {b}");
        }
        assert!(t.slots().iter().all(|s| s.secondary != s.primary
            && s.secondary != NO_BACKEND
            && s.primary != 2
            && s.secondary != 2));
        assert_eq!(MaglevTable::rebuild_min_disruption(&t, 13, &after), t);
    }

    #[test]
    fn rebuild_from_another_size_is_the_plain_build() {
        let bs = equal(7);
        let prev = MaglevTable::build(101, &bs);
        assert_eq!(
            MaglevTable::rebuild_min_disruption(&prev, 1009, &bs[1..]),
            MaglevTable::build(1009, &bs[1..])
        );
    }

    #[test]
    fn slot_index_is_multiply_shift() {
        let t = MaglevTable::build(13, &equal(2));
        assert_eq!(t.slot_index(0), 0);
        assert_eq!(t.slot_index(u32::MAX), 12);
        assert_eq!(t.slot_index(1 << 31), 6);
        assert_eq!(t.slot(u32::MAX), t.slots()[12]);
    }
}
