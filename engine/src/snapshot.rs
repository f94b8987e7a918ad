//! Snapshots: the engine's complete state as bytes, and an engine rebuilt from them.
//!
//! The engine does no I/O: it writes a snapshot into a caller's buffer and rebuilds itself from
//! a byte slice; the sequencer owns files, fsync and atomic renames. A restored engine has the
//! same `state_hash` as the one that wrote the snapshot and produces the same events for the
//! same following commands (slot numbers may differ, but no event reveals them).
//!
//! Layout (little-endian; version 1):
//!
//! ```text
//! offset size field
//! 0      8    magic "FXSNAP\0\x01"
//! 8      4    format version (1)
//! 12     4    number of books
//! 16     8    last_seq
//! 24     8    last_ts_ns
//! 32     8    next_trade_id
//! 40     8    commands applied
//! 48     8    instruments fingerprint (see `instruments_fingerprint`)
//! 56     8    state_hash of the engine that wrote it
//! 64     ...  per book:  status u8, last_trade i64,
//!                        then bids and asks: level count u32, then per level (best first):
//!                        price i64, order count u32, then per order (time priority):
//!                        id u64, qty_open u64, qty_filled u64, client_order_id u64,
//!                        account u32, stp_group u32, tif u8, flags u8
//! ...    ...  GTD entries: count u32, then (expire_ts_ns u64, order_id u64) sorted
//! ```
//!
//! Integrity of the bytes on disk is the file layer's job (it adds a CRC); restore still checks
//! every value, and finally that the rebuilt engine hashes to the recorded `state_hash`, so a
//! snapshot that decodes but describes another state is refused rather than trusted.

use crate::{Engine, EngineConfig, InstrumentSpec, Order, PriceBand, SideBook, NIL};
use ferrox_protocol::{InstrumentStatus, Side, TimeInForce};
use std::cmp::Reverse;

const MAGIC: [u8; 8] = *b"FXSNAP\0\x01";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot is truncated at byte {offset} (reading {field})")]
    Truncated { offset: usize, field: &'static str },
    #[error("not a Ferrox snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot format version {0} is not supported (this build reads version 1)")]
    Version(u32),
    #[error("snapshot was taken with other instruments (fingerprint {found:016x}, config {expected:016x})")]
    Instruments { expected: u64, found: u64 },
    #[error("invalid {field} at byte {offset}: {value}")]
    Invalid {
        offset: usize,
        field: &'static str,
        value: u64,
    },
    #[error("snapshot does not fit the configured limits: {0}")]
    Capacity(&'static str),
    #[error("snapshot has {0} trailing bytes")]
    Trailing(usize),
    #[error("rebuilt state hashes to {found:016x}, snapshot recorded {expected:016x}")]
    HashMismatch { expected: u64, found: u64 },
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
}

/// A fingerprint of everything in the instrument definitions that matching depends on, so that
/// a snapshot is never restored into a differently configured market. Limits are left out:
/// they may grow between restarts.
pub fn instruments_fingerprint(instruments: &[InstrumentSpec]) -> u64 {
    let mut h: u64 = 0xC0FF_EE00_5EED_0001;
    let mut mix = |x: u64| {
        h = (h.rotate_left(29) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    };
    mix(instruments.len() as u64);
    for s in instruments {
        mix(s.symbol.len() as u64);
        for b in s.symbol.bytes() {
            mix(u64::from(b));
        }
        mix(s.tick_size.0 as u64);
        mix(s.lot_size.0);
        mix(s.reference_price.0 as u64);
        match s.price_band {
            PriceBand::Bps(b) => mix(1 << 32 | u64::from(b)),
            PriceBand::Ticks(t) => mix(2 << 32 ^ t as u64),
        }
        mix(s.qty_max.0);
        mix(s.notional_max as u64);
        mix((s.notional_max >> 64) as u64);
    }
    h
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SnapshotError> {
        let end = self.at.checked_add(N).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(SnapshotError::Truncated {
                offset: self.at,
                field,
            });
        };
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.at..end]);
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self, f: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>(f)?[0])
    }
    fn u32(&mut self, f: &'static str) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.take(f)?))
    }
    fn u64(&mut self, f: &'static str) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.take(f)?))
    }
    fn i64(&mut self, f: &'static str) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.take(f)?))
    }
    fn invalid(&self, field: &'static str, value: u64) -> SnapshotError {
        SnapshotError::Invalid {
            offset: self.at,
            field,
            value,
        }
    }
}

impl Engine {
    /// Appends the engine's complete state to `out` (which may allocate: snapshots are taken
    /// off the hot path, by the sequencer between commands).
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.books.len() as u32).to_le_bytes());
        for v in [
            self.last_seq,
            self.last_ts_ns,
            self.next_trade_id,
            self.commands,
            instruments_fingerprint(&self.specs),
            self.state_hash(),
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for book in &self.books {
            out.push(book.status.as_u8());
            out.extend_from_slice(&book.last_trade.to_le_bytes());
            for side in [Side::Buy, Side::Sell] {
                let ladder = book.side(side);
                out.extend_from_slice(&(ladder.len() as u32).to_le_bytes());
                for (_, lvl) in ladder.iter() {
                    let level = &self.levels[lvl as usize];
                    out.extend_from_slice(&level.price.to_le_bytes());
                    out.extend_from_slice(&level.count.to_le_bytes());
                    let mut cur = level.head;
                    while cur != NIL {
                        let o = &self.orders[cur as usize];
                        for v in [o.id, o.qty_open, o.qty_filled, o.client_order_id] {
                            out.extend_from_slice(&v.to_le_bytes());
                        }
                        out.extend_from_slice(&o.account.to_le_bytes());
                        out.extend_from_slice(&o.stp_group.to_le_bytes());
                        out.push(o.tif.as_u8());
                        out.push(o.flags);
                        cur = o.next;
                    }
                }
            }
        }
        let gtd = self.gtd_orders();
        out.extend_from_slice(&(gtd.len() as u32).to_le_bytes());
        for (ts, id) in gtd {
            out.extend_from_slice(&ts.to_le_bytes());
            out.extend_from_slice(&id.0.to_le_bytes());
        }
    }

    /// Rebuilds an engine for `config` from snapshot bytes. Every value is checked; the result
    /// must hash to the recorded `state_hash`.
    pub fn from_snapshot(config: EngineConfig, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let mut engine = Engine::new(config)?;
        let mut r = Reader { buf: bytes, at: 0 };
        if r.take::<8>("magic")? != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32("version")?;
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        let books = r.u32("book count")?;
        if books as usize != engine.books.len() {
            return Err(r.invalid("book count", books.into()));
        }
        engine.last_seq = r.u64("last_seq")?;
        engine.last_ts_ns = r.u64("last_ts_ns")?;
        engine.next_trade_id = r.u64("next_trade_id")?;
        engine.commands = r.u64("commands")?;
        let fingerprint = r.u64("instruments fingerprint")?;
        let expected = instruments_fingerprint(&engine.specs);
        if fingerprint != expected {
            return Err(SnapshotError::Instruments {
                expected,
                found: fingerprint,
            });
        }
        let recorded_hash = r.u64("state_hash")?;
        for b in 0..engine.books.len() {
            let status = r.u8("status")?;
            engine.books[b].status = InstrumentStatus::from_u8(status)
                .ok_or_else(|| r.invalid("status", status.into()))?;
            let last_trade = r.i64("last_trade")?;
            if last_trade < 0 {
                return Err(r.invalid("last_trade", last_trade as u64));
            }
            engine.books[b].last_trade = last_trade;
            crate::set_band(&mut engine.books[b], &engine.specs[b]);
            for side in [Side::Buy, Side::Sell] {
                let levels = r.u32("level count")?;
                let mut previous_key = i64::MAX;
                for _ in 0..levels {
                    let price = r.i64("level price")?;
                    let key = SideBook::key(side, price);
                    // Levels arrive best first, so keys strictly decrease.
                    if price <= 0 || key >= previous_key || price % engine.specs[b].tick_size.0 != 0
                    {
                        return Err(r.invalid("level price", price as u64));
                    }
                    previous_key = key;
                    let count = r.u32("order count")?;
                    if count == 0 {
                        return Err(r.invalid("order count", 0));
                    }
                    for _ in 0..count {
                        engine.restore_order(&mut r, b, side, price)?;
                    }
                }
            }
        }
        let gtd = r.u32("GTD count")?;
        for _ in 0..gtd {
            let ts = r.u64("GTD expiry")?;
            let id = r.u64("GTD order id")?;
            let live = engine
                .index
                .get(&engine.orders, id)
                .map(|s| engine.orders[s as usize].tif);
            if live != Some(TimeInForce::Gtd) || engine.gtd.len() >= engine.gtd_max as usize {
                return Err(r.invalid("GTD order id", id));
            }
            engine.gtd.push(Reverse((ts, id)));
        }
        if engine.gtd.len() != engine.gtd_live as usize {
            return Err(SnapshotError::Invalid {
                offset: r.at,
                field: "GTD count",
                value: u64::from(gtd),
            });
        }
        if r.at != bytes.len() {
            return Err(SnapshotError::Trailing(bytes.len() - r.at));
        }
        let found = engine.state_hash();
        if found != recorded_hash {
            return Err(SnapshotError::HashMismatch {
                expected: recorded_hash,
                found,
            });
        }
        Ok(engine)
    }

    fn restore_order(
        &mut self,
        r: &mut Reader<'_>,
        b: usize,
        side: Side,
        price: i64,
    ) -> Result<(), SnapshotError> {
        let id = r.u64("order id")?;
        let qty_open = r.u64("qty_open")?;
        let qty_filled = r.u64("qty_filled")?;
        let client_order_id = r.u64("client_order_id")?;
        let account = r.u32("account")?;
        let stp_group = r.u32("stp_group")?;
        let tif_raw = r.u8("tif")?;
        let flags = r.u8("flags")?;
        let tif = TimeInForce::from_u8(tif_raw)
            .filter(|t| t.rests())
            .ok_or_else(|| r.invalid("tif", tif_raw.into()))?;
        if flags & !(crate::FLAG_POST_ONLY | crate::STP_MASK) != 0
            || ferrox_protocol::StpMode::from_u8((flags & crate::STP_MASK) >> crate::STP_SHIFT)
                .is_none()
        {
            return Err(r.invalid("flags", flags.into()));
        }
        if id == 0 || id > self.last_seq || self.index.get(&self.orders, id).is_some() {
            return Err(r.invalid("order id", id));
        }
        let spec = &self.specs[b];
        if qty_open == 0 || qty_open > spec.qty_max.0 || qty_filled > spec.qty_max.0 {
            return Err(r.invalid("qty_open", qty_open));
        }
        let slot = self.order_free;
        if slot == NIL {
            return Err(SnapshotError::Capacity("more orders than orders_max"));
        }
        let book = &self.books[b];
        let own = book.side(side);
        if own.get(SideBook::key(side, price)).is_none()
            && (own.is_full() || self.level_free == NIL)
        {
            return Err(SnapshotError::Capacity(
                "more levels than levels_max or levels_per_side_max",
            ));
        }
        if tif == TimeInForce::Gtd && self.gtd_live >= self.gtd_max {
            return Err(SnapshotError::Capacity(
                "more GTD orders than gtd_orders_max",
            ));
        }
        self.order_free = self.orders[slot as usize].next;
        self.orders_live += 1;
        self.orders[slot as usize] = Order {
            id,
            price,
            qty_open,
            qty_filled,
            client_order_id,
            prev: NIL,
            next: NIL,
            level: NIL,
            account,
            stp_group,
            side,
            tif,
            flags,
            _pad: 0,
        };
        self.index.insert(id, slot);
        if tif == TimeInForce::Gtd {
            self.gtd_live += 1;
        }
        // Resting appends at the back of the level, which restores time priority because the
        // snapshot lists orders in that order. Its events are dropped: restoring is not news.
        self.rest_order(b, slot, &mut ferrox_protocol::NullSink);
        Ok(())
    }
}
