//! `BookHasher`: the public fingerprint of one instrument's order book.
//!
//! The engine and every market-data subscriber compute it the same way, so a subscriber can prove
//! that the book it rebuilt from the feed is the engine's book, order for order and in time
//! priority, by comparing one number (the feed's `Checkpoint` message carries the engine's).
//! It covers only what the public feed shows (order id, side, price, open quantity, and the
//! order of orders within each level), never accounts or client ids.
//!
//! The fold: start from the instrument id; then for the bids, best level first, each level's
//! orders in time priority, fold `(side, price, order id, open quantity)`; then the same for the
//! asks; then the two order counts. Each word goes through SplitMix64's finaliser and is folded in
//! with a rotate and a multiply, so the result depends on the order of the words.

use crate::types::{InstrumentId, OrderId, PriceTicks, QtyLots, Side};

#[derive(Clone, Copy, Debug)]
pub struct BookHasher {
    state: u64,
    bids: u64,
    asks: u64,
}

impl BookHasher {
    pub fn new(instrument: InstrumentId) -> Self {
        let mut h = BookHasher {
            state: 0xB00C_4A54_0000_0001,
            bids: 0,
            asks: 0,
        };
        h.word(u64::from(instrument.0));
        h
    }

    #[inline]
    fn word(&mut self, x: u64) {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        self.state = (self.state.rotate_left(23) ^ z).wrapping_mul(0x2127_599B_F432_5C37);
    }

    /// Folds in the next order. Callers give all bids (best level first, time priority within a
    /// level) before any ask.
    #[inline]
    pub fn order(&mut self, side: Side, price: PriceTicks, order_id: OrderId, qty_open: QtyLots) {
        match side {
            Side::Buy => self.bids += 1,
            Side::Sell => self.asks += 1,
        }
        self.word(u64::from(side.as_u8()));
        self.word(price.0 as u64);
        self.word(order_id.0);
        self.word(qty_open.0);
    }

    pub fn finish(mut self) -> u64 {
        let (bids, asks) = (self.bids, self.asks);
        self.word(bids);
        self.word(asks);
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(orders: &[(Side, i64, u64, u64)]) -> u64 {
        let mut h = BookHasher::new(InstrumentId(1));
        for &(s, p, id, q) in orders {
            h.order(s, PriceTicks(p), OrderId(id), QtyLots(q));
        }
        h.finish()
    }

    #[test]
    fn order_and_every_field_matter() {
        let base = [(Side::Buy, 100, 1, 5), (Side::Buy, 100, 2, 5)];
        let h = hash(&base);
        assert_ne!(h, hash(&[(Side::Buy, 100, 2, 5), (Side::Buy, 100, 1, 5)]));
        assert_ne!(h, hash(&[(Side::Buy, 100, 1, 5), (Side::Buy, 100, 2, 4)]));
        assert_ne!(h, hash(&[(Side::Buy, 100, 1, 5), (Side::Buy, 101, 2, 5)]));
        assert_ne!(h, hash(&[(Side::Buy, 100, 1, 5), (Side::Sell, 100, 2, 5)]));
        assert_ne!(h, hash(&base[..1]));
        assert_ne!(hash(&[]), BookHasher::new(InstrumentId(2)).finish());
        assert_eq!(h, hash(&base));
    }
}
