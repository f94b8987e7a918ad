//! Order id → pool slot map: open addressing with linear probing, sized at start-up.
//!
//! The table stores only the 4-byte slot; the key is read back from the order itself. A lookup
//! therefore touches the order it was going to touch anyway, and the table costs 8 bytes per
//! order slot at its 50% maximum load instead of 16 or more for key-and-value entries. Deletion
//! shifts later entries back (no tombstones), so probe lengths never degrade over a long day.
//! The table is never iterated, so its layout cannot influence results.

use crate::Order;

pub(crate) const EMPTY: u32 = u32::MAX;

pub(crate) struct OrderIndex {
    table: Vec<u32>,
    mask: usize,
    shift: u32,
}

impl OrderIndex {
    /// A table with at least twice as many buckets as `slots`, so the load stays at or below
    /// one half when every order slot is in use.
    pub(crate) fn new(slots: u32) -> Self {
        let buckets = (u64::from(slots) * 2).next_power_of_two().max(16);
        let bits = buckets.trailing_zeros();
        OrderIndex {
            table: vec![EMPTY; buckets as usize],
            mask: (buckets - 1) as usize,
            shift: 64 - bits,
        }
    }

    #[inline(always)]
    fn home(&self, id: u64) -> usize {
        // Fibonacci hashing spreads sequential ids evenly; it is a fixed function, so the
        // layout is the same in every run.
        (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    pub(crate) fn get(&self, orders: &[Order], id: u64) -> Option<u32> {
        let mut i = self.home(id);
        loop {
            let slot = self.table[i];
            if slot == EMPTY {
                return None;
            }
            if orders[slot as usize].id == id {
                return Some(slot);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts an id that is not present (ids are unique by construction).
    #[inline]
    pub(crate) fn insert(&mut self, id: u64, slot: u32) {
        let mut i = self.home(id);
        while self.table[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.table[i] = slot;
    }

    /// Removes `id`, which must be present and still stored in `orders`.
    #[inline]
    pub(crate) fn remove(&mut self, orders: &[Order], id: u64) {
        let mut i = self.home(id);
        loop {
            let slot = self.table[i];
            assert!(
                slot != EMPTY,
                "Invariant: removing order {id} that is not indexed"
            );
            if orders[slot as usize].id == id {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: move each later entry of the cluster into the hole when its
        // home position does not lie cyclically in (hole, entry].
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let slot = self.table[j];
            if slot == EMPTY {
                break;
            }
            let home = self.home(orders[slot as usize].id);
            let dist_hole = j.wrapping_sub(i) & self.mask;
            let dist_home = j.wrapping_sub(home) & self.mask;
            if dist_home >= dist_hole {
                self.table[i] = slot;
                i = j;
            }
        }
        self.table[i] = EMPTY;
    }

    pub(crate) fn bytes(&self) -> usize {
        self.table.capacity() * core::mem::size_of::<u32>()
    }
}
