//! One side of a book: the price levels in price order.
//!
//! Levels are addressed by a *key*: the price for bids and minus the price for asks, so that
//! "better" is "greater" on both sides and one structure serves both.
//!
//! Most levels live in a direct-mapped *window*: an array with one slot per tick over a span of
//! keys, plus a bitmap of occupied slots. Finding, adding and removing a level there is O(1)
//! and touches one slot; the best level is cached and, when it empties, the next one is found
//! by scanning the bitmap 64 ticks at a time. Levels whose price lies outside the window (an
//! order far from the market, or after the market moved a long way) go to an *overflow*: a
//! sorted vector, searched by bisection. The window is placed around the reference price at
//! start-up and re-centred whenever it is empty, so the overflow normally stays empty.
//!
//! Both parts are allocated at start-up; the number of levels per side is bounded by
//! `levels_per_side_max` whichever part holds them.

use crate::NIL;

pub(crate) struct SideBook {
    /// Key of window slot 0.
    base: i64,
    /// Key distance between window slots (the instrument's tick size).
    step: i64,
    /// Level index per slot, or NIL.
    window: Vec<u32>,
    /// Bit i set when slot i holds a level.
    bits: Vec<u64>,
    /// Levels in the window.
    window_len: usize,
    /// Slot of the best level in the window, valid when `window_len > 0`.
    window_best: usize,
    /// Keys outside the window, ascending, with their level indices.
    overflow_keys: Vec<i64>,
    overflow_levels: Vec<u32>,
    /// Most levels this side may hold.
    cap: usize,
}

impl SideBook {
    /// A side for `cap` levels with a window of `slots` ticks of `step` (slots a power of two,
    /// at least 64) placed around `centre_key` (see `centre`).
    pub(crate) fn new(cap: usize, slots: usize, step: i64, centre_key: i64) -> Self {
        let slots = slots.max(64).next_power_of_two();
        let mut side = SideBook {
            base: 0,
            step: step.max(1),
            window: vec![NIL; slots],
            bits: vec![0; slots / 64],
            window_len: 0,
            window_best: 0,
            overflow_keys: Vec::with_capacity(cap),
            overflow_levels: Vec::with_capacity(cap),
            cap,
        };
        side.centre(centre_key);
        side
    }

    #[inline(always)]
    pub(crate) fn key(side: ferrox_protocol::Side, price: i64) -> i64 {
        match side {
            ferrox_protocol::Side::Buy => price,
            // Prices are positive in the book; saturating keeps hostile band edges harmless.
            ferrox_protocol::Side::Sell => price.saturating_neg(),
        }
    }

    /// Places the window so that `key` sits at three quarters of its span, on the tick grid;
    /// only while the window is empty. Resting orders lie on the worse side of the market
    /// (bids below it, asks above it: smaller keys on both sides), so most of the span goes
    /// there.
    fn centre(&mut self, key: i64) {
        debug_assert_eq!(self.window_len, 0);
        let below = (self.window.len() as i64 / 4 * 3).saturating_mul(self.step);
        let base = key.saturating_sub(below);
        // Keys of real levels are multiples of the step, so a base on the grid maps each of
        // them to exactly one slot.
        self.base = base.saturating_sub(base.rem_euclid(self.step));
    }

    /// The window slot of `key`, if the key lies in the window's span and on its grid.
    #[inline(always)]
    fn slot(&self, key: i64) -> Option<usize> {
        let d = key.checked_sub(self.base)?;
        if d < 0 {
            return None;
        }
        let i = if self.step == 1 {
            d
        } else {
            if d % self.step != 0 {
                return None;
            }
            d / self.step
        };
        (i < self.window.len() as i64).then_some(i as usize)
    }

    #[inline(always)]
    fn key_of(&self, slot: usize) -> i64 {
        self.base + slot as i64 * self.step
    }

    pub(crate) fn len(&self) -> usize {
        self.window_len + self.overflow_keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.cap
    }

    /// The level at `key`.
    #[inline]
    pub(crate) fn get(&self, key: i64) -> Option<u32> {
        if let Some(i) = self.slot(key) {
            let lvl = self.window[i];
            if lvl != NIL {
                return Some(lvl);
            }
        }
        if self.overflow_keys.is_empty() {
            return None;
        }
        self.overflow_keys
            .binary_search(&key)
            .ok()
            .map(|i| self.overflow_levels[i])
    }

    /// Adds level `lvl` at `key`, which must not be present; the caller checked capacity.
    #[inline]
    pub(crate) fn insert(&mut self, key: i64, lvl: u32) {
        assert!(
            !self.is_full(),
            "Invariant: level capacity was checked before inserting"
        );
        if self.window_len == 0 && self.slot(key).is_none() {
            self.centre(key);
        }
        match self.slot(key) {
            Some(i) => {
                self.window[i] = lvl;
                self.bits[i / 64] |= 1 << (i % 64);
                if self.window_len == 0 || i > self.window_best {
                    self.window_best = i;
                }
                self.window_len += 1;
            }
            None => {
                let at = match self.overflow_keys.binary_search(&key) {
                    Ok(_) => panic!("Invariant: level key {key} inserted twice"),
                    Err(at) => at,
                };
                self.overflow_keys.insert(at, key);
                self.overflow_levels.insert(at, lvl);
            }
        }
    }

    /// Removes the level at `key`, which must be present.
    #[inline]
    pub(crate) fn remove(&mut self, key: i64) {
        if let Some(i) = self.slot(key) {
            if self.window[i] != NIL {
                self.window[i] = NIL;
                self.bits[i / 64] &= !(1 << (i % 64));
                self.window_len -= 1;
                if self.window_len > 0 && i == self.window_best {
                    self.window_best = self
                        .highest_below(i)
                        .expect("Invariant: the window holds another level");
                }
                return;
            }
        }
        let at = self
            .overflow_keys
            .binary_search(&key)
            .expect("Invariant: a removed level is listed in its side");
        if at + 1 == self.overflow_keys.len() {
            self.overflow_keys.pop();
            self.overflow_levels.pop();
        } else {
            self.overflow_keys.remove(at);
            self.overflow_levels.remove(at);
        }
    }

    /// The highest occupied window slot below `slot`.
    #[inline]
    fn highest_below(&self, slot: usize) -> Option<usize> {
        if slot == 0 {
            return None;
        }
        let top = slot - 1;
        let mut w = top / 64;
        // Keep the bits at or below `top` in its word.
        let mut word = self.bits[w] & (u64::MAX >> (63 - top % 64));
        loop {
            if word != 0 {
                return Some(w * 64 + 63 - word.leading_zeros() as usize);
            }
            if w == 0 {
                return None;
            }
            w -= 1;
            word = self.bits[w];
        }
    }

    /// The best level: `(key, level)`.
    #[inline]
    pub(crate) fn best(&self) -> Option<(i64, u32)> {
        let window = (self.window_len > 0)
            .then(|| (self.key_of(self.window_best), self.window[self.window_best]));
        let overflow = self
            .overflow_keys
            .last()
            .map(|&k| (k, self.overflow_levels[self.overflow_keys.len() - 1]));
        match (window, overflow) {
            (Some(w), Some(o)) => Some(if o.0 > w.0 { o } else { w }),
            (w, o) => w.or(o),
        }
    }

    /// The best level strictly worse than `key`: the next one when walking from the best.
    pub(crate) fn next_below(&self, key: i64) -> Option<(i64, u32)> {
        let window = if self.window_len == 0 || key <= self.base {
            None
        } else {
            // Widened: keys of hostile prices can be far from the base.
            let d = i128::from(key) - i128::from(self.base);
            let step = i128::from(self.step);
            // The first slot whose key is >= `key`; everything below it is a candidate.
            let limit = ((d + step - 1) / step).min(self.window.len() as i128) as usize;
            self.highest_below(limit)
                .map(|i| (self.key_of(i), self.window[i]))
        };
        let at = self.overflow_keys.partition_point(|&k| k < key);
        let overflow = (at > 0).then(|| (self.overflow_keys[at - 1], self.overflow_levels[at - 1]));
        match (window, overflow) {
            (Some(w), Some(o)) => Some(if o.0 > w.0 { o } else { w }),
            (w, o) => w.or(o),
        }
    }

    /// Levels from the best to the worst.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        let mut next = self.best();
        std::iter::from_fn(move || {
            let here = next?;
            next = self.next_below(here.0);
            Some(here)
        })
    }

    /// Bytes reserved by this side.
    pub(crate) fn bytes(&self) -> usize {
        self.window.capacity() * 4
            + self.bits.capacity() * 8
            + self.overflow_keys.capacity() * 8
            + self.overflow_levels.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain sorted model to hold the ladder to.
    fn check(side: &SideBook, model: &std::collections::BTreeMap<i64, u32>) {
        let got: Vec<(i64, u32)> = side.iter().collect();
        let want: Vec<(i64, u32)> = model.iter().rev().map(|(&k, &v)| (k, v)).collect();
        assert_eq!(got, want);
        assert_eq!(side.len(), model.len());
        assert_eq!(side.best(), want.first().copied());
    }

    #[test]
    fn window_and_overflow_agree_with_a_sorted_map() {
        for (step, slots) in [(1i64, 64usize), (5, 64), (1, 256)] {
            let mut side = SideBook::new(500, slots, step, 1_000 * step);
            let mut model = std::collections::BTreeMap::new();
            let mut x: u64 = 0x1234_5678 + step as u64;
            for n in 0..20_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly near the centre, sometimes far away, on the tick grid.
                let spread = if x % 10 == 0 { 5_000 } else { 80 };
                let key = (1_000 + (x >> 8) as i64 % spread - spread / 2) * step;
                if let Some(lvl) = side.get(key) {
                    assert_eq!(model.get(&key), Some(&lvl));
                    side.remove(key);
                    model.remove(&key);
                } else if !side.is_full() {
                    assert!(!model.contains_key(&key));
                    side.insert(key, n);
                    model.insert(key, n);
                }
                if n % 97 == 0 {
                    check(&side, &model);
                    if let Some(&probe) = model.keys().nth(model.len() / 2) {
                        let below = model.range(..probe).next_back().map(|(&k, &v)| (k, v));
                        assert_eq!(side.next_below(probe), below);
                    }
                }
            }
            while let Some((k, _)) = side.best() {
                side.remove(k);
                model.remove(&k);
                if model.len() % 50 == 0 {
                    check(&side, &model);
                }
            }
            assert!(side.is_empty() && model.is_empty());
        }
    }
}
