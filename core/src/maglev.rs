//! Stage 5 — select: weighted Maglev consistent hashing with a primary and a secondary
//! backend per slot.
//!
//! slot = (hash × M) >> 32 (no modulo, so hardware needs one multiplier). A frame goes to
//! the slot's primary if that backend is up, else to its secondary if that is up; the
//! control plane then rebuilds the table without the failed backend.

/// Marks an empty half of a slot (no backend).
pub const NO_BACKEND: u16 = u16::MAX;

/// Default table size (prime) in software.
pub const DEFAULT_M: u32 = 65537;

/// One Maglev slot: global backend indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub primary: u16,
    pub secondary: u16,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Vec<Slot>,
}

impl MaglevTable {
    /// Build the table of `m` slots (m prime) for `backends`.
    pub fn build(m: u32, backends: &[MaglevBackend]) -> MaglevTable {
        let _ = (m, backends);
        todo!("maglev work item")
    }

    pub fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// slot index = (hash × M) >> 32.
    pub fn slot_index(&self, hash: u32) -> u32 {
        ((hash as u64 * self.slots.len() as u64) >> 32) as u32
    }

    pub fn slot(&self, hash: u32) -> Slot {
        self.slots[self.slot_index(hash) as usize]
    }
}
