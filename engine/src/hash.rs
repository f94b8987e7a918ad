//! `state_hash`: one 64-bit digest of everything that decides the engine's future behaviour.
//!
//! It walks the books in a fixed order (instruments by id, bids then asks, best level first,
//! orders in time priority), then the live GTD entries sorted, then the counters. Pool slot
//! numbers and the free lists are left out on purpose: they are invisible in every event, so an
//! engine restored from a snapshot with a different slot layout is still the same engine.

use crate::{Engine, NIL};
use ferrox_protocol::{BookHasher, InstrumentId, OrderId, PriceTicks, QtyLots, Side};

/// A small, fixed, portable hasher (no per-process seed, unlike std's `DefaultHasher`).
struct StateHasher(u64);

impl StateHasher {
    #[inline]
    fn word(&mut self, x: u64) {
        // SplitMix64's finaliser on each word, folded in with a rotate and a multiply.
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        self.0 = (self.0.rotate_left(23) ^ z).wrapping_mul(0x2127_599B_F432_5C37);
    }
}

impl Engine {
    /// A deterministic hash of the complete book state. Equal engines (same commands from the
    /// same configuration) give equal hashes on every machine of any endianness.
    pub fn state_hash(&self) -> u64 {
        let mut h = StateHasher(0xF3E0_C0DE_0000_0001);
        h.word(self.books.len() as u64);
        for (b, book) in self.books.iter().enumerate() {
            h.word(b as u64);
            h.word(u64::from(book.status.as_u8()));
            h.word(book.last_trade as u64);
            for side in [Side::Buy, Side::Sell] {
                let ladder = book.side(side);
                h.word(ladder.len() as u64);
                for (_, lvl) in ladder.iter() {
                    let level = &self.levels[lvl as usize];
                    h.word(level.price as u64);
                    h.word(level.qty_total);
                    h.word(u64::from(level.count));
                    let mut cur = level.head;
                    while cur != NIL {
                        let o = &self.orders[cur as usize];
                        h.word(o.id);
                        h.word(o.price as u64);
                        h.word(o.qty_open);
                        h.word(o.qty_filled);
                        h.word(o.client_order_id);
                        h.word(u64::from(o.account) << 32 | u64::from(o.stp_group));
                        h.word(
                            u64::from(o.side.as_u8()) << 16
                                | u64::from(o.tif.as_u8()) << 8
                                | u64::from(o.flags),
                        );
                        cur = o.next;
                    }
                }
            }
        }
        let gtd = self.gtd_orders();
        h.word(gtd.len() as u64);
        for (ts, id) in gtd {
            h.word(ts);
            h.word(id.0);
        }
        h.word(self.next_trade_id);
        h.word(self.last_seq);
        h.word(self.last_ts_ns);
        h.word(self.commands);
        h.word(u64::from(self.orders_live));
        h.word(u64::from(self.levels_live));
        h.0
    }

    /// The public fingerprint of one instrument's book ([`BookHasher`]), computed by walking it
    /// without allocating; `None` if the instrument does not exist. Returns the hash, the number
    /// of live orders, and the number of bid and ask levels.
    pub fn book_hash(&self, instrument: InstrumentId) -> Option<(u64, u32, u32, u32)> {
        let book = self.books.get(instrument.0 as usize)?;
        let mut h = BookHasher::new(instrument);
        let mut orders = 0u32;
        for side in [Side::Buy, Side::Sell] {
            for (_, lvl) in book.side(side).iter() {
                let mut cur = self.levels[lvl as usize].head;
                while cur != NIL {
                    let o = &self.orders[cur as usize];
                    h.order(
                        side,
                        PriceTicks(o.price),
                        OrderId(o.id),
                        QtyLots(o.qty_open),
                    );
                    orders += 1;
                    cur = o.next;
                }
            }
        }
        Some((
            h.finish(),
            orders,
            book.side(Side::Buy).len() as u32,
            book.side(Side::Sell).len() as u32,
        ))
    }
}
