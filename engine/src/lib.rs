//! Ferrox's matching engine: a deterministic state machine over preallocated order books.
//!
//! What it owns: the books of every instrument (price levels holding FIFO queues of orders as
//! intrusive doubly linked lists over one preallocated order pool), the order-id index, the GTD
//! expiry queue, trade ids, and the instruments' status and reference prices.
//!
//! What it never does: I/O, reading a clock or a random source, spawning threads, allocating
//! after [`Engine::new`], or iterating anything whose order could differ between runs. Time and
//! sequence numbers arrive with each [`SequencedCommand`]; events leave through an
//! [`EventSink`]. The same commands therefore always give the same events and the same
//! [`Engine::state_hash`]. The precise rules are in `docs/matching-rules.md`.
//!
//! Client input never panics the engine: every bad value is a [`RejectCode`]. Assertions that
//! start with `Invariant:` guard the engine's own consistency (and the sequencer's promise of
//! increasing sequence numbers); if one fails, state is corrupt and stopping is the only safe
//! choice.

pub mod config;
mod hash;
mod index;
mod ladder;
pub mod snapshot;
mod view;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub use config::{ConfigError, EngineConfig, InstrumentSpec, Limits, PriceBand};
use ferrox_protocol::event::{
    Accepted, BookDelta, Cancelled, Expired, MassCancelled, Rejected, Replaced, Restated, Rested,
    StatusChanged, Trade,
};
pub use ferrox_protocol::*;
pub use snapshot::SnapshotError;
pub use view::{BookSnapshot, LevelSnapshot, OrderView};

use index::OrderIndex;
use ladder::SideBook;

/// "No slot" in the intrusive links.
const NIL: u32 = u32::MAX;

const FLAG_POST_ONLY: u8 = 1;
const STP_SHIFT: u8 = 1;
const STP_MASK: u8 = 0b1110;

/// A resting order: one slot of the preallocated pool.
///
/// Its size is fixed at one cache line so that touching an order during matching or a cancel
/// costs one line, and so that the pool's memory per order is predictable.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Order {
    /// Order id, or 0 while the slot is free.
    pub(crate) id: u64,
    pub(crate) price: i64,
    pub(crate) qty_open: u64,
    pub(crate) qty_filled: u64,
    pub(crate) client_order_id: u64,
    /// Previous order in the level's FIFO (towards the head), or NIL.
    pub(crate) prev: u32,
    /// Next order in the level's FIFO, or NIL; in a free slot, the next free slot.
    pub(crate) next: u32,
    pub(crate) level: u32,
    pub(crate) account: u32,
    pub(crate) stp_group: u32,
    pub(crate) side: Side,
    pub(crate) tif: TimeInForce,
    /// Bit 0: post-only; bits 1-3: the order's STP mode.
    pub(crate) flags: u8,
    _pad: u8,
}

// One cache line per order; see the type's comment.
const _: () = assert!(core::mem::size_of::<Order>() == 64);

impl Order {
    const FREE: Order = Order {
        id: 0,
        price: 0,
        qty_open: 0,
        qty_filled: 0,
        client_order_id: 0,
        prev: NIL,
        next: NIL,
        level: NIL,
        account: 0,
        stp_group: 0,
        side: Side::Buy,
        tif: TimeInForce::Gtc,
        flags: 0,
        _pad: 0,
    };

    #[inline(always)]
    fn stp_mode(&self) -> StpMode {
        StpMode::from_u8((self.flags & STP_MASK) >> STP_SHIFT).unwrap_or_default()
    }

    #[inline(always)]
    fn post_only(&self) -> bool {
        self.flags & FLAG_POST_ONLY != 0
    }
}

/// A price level: totals and the FIFO of its orders.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub(crate) struct Level {
    pub(crate) price: i64,
    pub(crate) qty_total: u64,
    /// First order (oldest), or NIL; in a free slot, the next free level.
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) count: u32,
    pub(crate) instrument: u32,
}

// Half a cache line: levels are touched on every add and cancel.
const _: () = assert!(core::mem::size_of::<Level>() == 32);

impl Level {
    const FREE: Level = Level {
        price: 0,
        qty_total: 0,
        head: NIL,
        tail: NIL,
        count: 0,
        instrument: 0,
    };
}

pub(crate) struct Book {
    pub(crate) bids: SideBook,
    pub(crate) asks: SideBook,
    pub(crate) status: InstrumentStatus,
    /// Last trade price, or 0 before the first trade.
    pub(crate) last_trade: i64,
    band_lo: i64,
    band_hi: i64,
}

impl Book {
    #[inline(always)]
    fn side(&self, side: Side) -> &SideBook {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    #[inline(always)]
    fn side_mut(&mut self, side: Side) -> &mut SideBook {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }
}

/// The incoming order while it is matched.
struct Taker {
    id: u64,
    instrument: u32,
    account: u32,
    client_order_id: u64,
    stp_group: u32,
    stp_mode: StpMode,
    side: Side,
    /// The price reported in events about the taker (limit, or band edge for market orders).
    price: i64,
    remaining: u64,
    filled: u64,
    /// Set when self-trade prevention ended matching with quantity left.
    stp_stopped: bool,
}

/// How a taker's remaining quantity is disposed of after matching.
enum Rest {
    /// Join the book (GTC, DAY, GTD).
    Book,
    Cancel(CancelReason),
}

/// The matching engine. See the crate documentation.
pub struct Engine {
    orders: Vec<Order>,
    order_free: u32,
    orders_live: u32,
    levels: Vec<Level>,
    level_free: u32,
    levels_live: u32,
    index: OrderIndex,
    books: Vec<Book>,
    specs: Vec<InstrumentSpec>,
    /// Min-heap of (expire_ts_ns, order_id) for GTD orders. Entries of orders that left the
    /// book early stay until they reach the top or the heap is compacted.
    gtd: BinaryHeap<Reverse<(u64, u64)>>,
    gtd_live: u32,
    gtd_max: u32,
    next_trade_id: u64,
    last_seq: u64,
    last_ts_ns: u64,
    commands: u64,
}

impl Engine {
    /// Builds an engine and allocates every structure it will ever use.
    pub fn new(config: EngineConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        let limits = &config.limits;
        let mut orders = vec![Order::FREE; limits.orders_max as usize];
        for (i, o) in orders.iter_mut().enumerate() {
            o.next = if i + 1 < limits.orders_max as usize {
                i as u32 + 1
            } else {
                NIL
            };
        }
        let mut levels = vec![Level::FREE; limits.levels_max as usize];
        for (i, l) in levels.iter_mut().enumerate() {
            l.head = if i + 1 < limits.levels_max as usize {
                i as u32 + 1
            } else {
                NIL
            };
        }
        let books = config
            .instruments
            .iter()
            .map(|spec| {
                let cap = spec.levels_per_side_max as usize;
                let slots = (spec.ladder_window_ticks as usize).next_power_of_two();
                let tick = spec.tick_size.0;
                let reference = spec.reference_price.0;
                let mut book = Book {
                    bids: SideBook::new(cap, slots, tick, SideBook::key(Side::Buy, reference)),
                    asks: SideBook::new(cap, slots, tick, SideBook::key(Side::Sell, reference)),
                    status: spec.status,
                    last_trade: 0,
                    band_lo: 0,
                    band_hi: 0,
                };
                set_band(&mut book, spec);
                book
            })
            .collect();
        Ok(Engine {
            orders,
            order_free: 0,
            orders_live: 0,
            levels,
            level_free: 0,
            levels_live: 0,
            index: OrderIndex::new(limits.orders_max),
            books,
            gtd: BinaryHeap::with_capacity(limits.gtd_orders_max as usize),
            gtd_live: 0,
            gtd_max: limits.gtd_orders_max,
            next_trade_id: 1,
            last_seq: 0,
            last_ts_ns: 0,
            commands: 0,
            specs: config.instruments,
        })
    }

    /// Applies one sequenced command, emitting its events to `sink`.
    pub fn apply<S: EventSink>(&mut self, cmd: &SequencedCommand, sink: &mut S) {
        assert!(
            cmd.seq > self.last_seq,
            "Invariant: sequence numbers increase (got {} after {})",
            cmd.seq,
            self.last_seq
        );
        assert!(
            cmd.ts_ns >= self.last_ts_ns,
            "Invariant: timestamps do not decrease (got {} after {})",
            cmd.ts_ns,
            self.last_ts_ns
        );
        self.last_seq = cmd.seq;
        self.last_ts_ns = cmd.ts_ns;
        self.commands += 1;
        if let Some(Reverse((ts, _))) = self.gtd.peek() {
            if *ts <= cmd.ts_ns {
                self.expire_gtd(cmd.ts_ns, sink);
            }
        }
        match &cmd.command {
            Command::NewOrder(o) => self.new_order(cmd.seq, cmd.ts_ns, o, sink),
            Command::Cancel(c) => self.cancel(c, sink),
            Command::Replace(r) => self.replace(r, sink),
            Command::MassCancel(m) => self.mass_cancel(m, sink),
            Command::SetStatus(s) => self.set_status(s, sink),
            Command::EndOfDay => self.end_of_day(sink),
            Command::Tick => {}
            Command::Checkpoint(c) => {
                // An unknown instrument has no book to fingerprint; the sequencer only asks for
                // configured ones, so there is nothing to answer and nothing to change.
                if let Some((book_hash, orders, bid_levels, ask_levels)) =
                    self.book_hash(c.instrument)
                {
                    sink.event(&Event::BookChecked(ferrox_protocol::event::BookChecked {
                        instrument: c.instrument,
                        book_hash,
                        orders,
                        bid_levels,
                        ask_levels,
                    }));
                }
            }
        }
    }

    // ----- new orders -------------------------------------------------------------------

    fn new_order<S: EventSink>(&mut self, seq: u64, ts_ns: u64, o: &NewOrder, sink: &mut S) {
        let reject = |code: RejectCode, sink: &mut S| {
            sink.event(&Event::Rejected(Rejected {
                request: RequestKind::NewOrder,
                code,
                instrument: o.instrument,
                account: o.account,
                client_order_id: o.client_order_id,
                order_id: OrderId(0),
            }))
        };
        let b = o.instrument.0 as usize;
        if b >= self.books.len() {
            return reject(RejectCode::UnknownInstrument, sink);
        }
        if let Err(code) = self.check_new(b, ts_ns, o) {
            return reject(code, sink);
        }
        let book = &self.books[b];
        let is_market = o.order_type == OrderType::Market;
        let limit = if is_market {
            match o.side {
                Side::Buy => book.band_hi,
                Side::Sell => book.band_lo,
            }
        } else {
            o.price.0
        };
        sink.event(&Event::Accepted(Accepted {
            order_id: OrderId(seq),
            instrument: o.instrument,
            account: o.account,
            client_order_id: o.client_order_id,
            side: o.side,
            order_type: o.order_type,
            tif: o.tif,
            price: PriceTicks(limit),
            qty: o.qty,
            expire_ts_ns: o.expire_ts_ns,
            post_only: o.post_only,
        }));
        let mut taker = Taker {
            id: seq,
            instrument: o.instrument.0,
            account: o.account.0,
            client_order_id: o.client_order_id.0,
            stp_group: o.stp_group.0,
            stp_mode: o.stp_mode,
            side: o.side,
            price: limit,
            remaining: o.qty.0,
            filled: 0,
            stp_stopped: false,
        };
        if o.tif == TimeInForce::Fok && !self.fok_fillable(b, &taker, limit) {
            return self.emit_taker_cancel(
                &taker,
                taker.remaining,
                CancelReason::FokUnfillable,
                sink,
            );
        }
        self.match_taker(b, &mut taker, limit, sink);
        let rest = if taker.remaining == 0 {
            return;
        } else if taker.stp_stopped {
            Rest::Cancel(CancelReason::SelfTradeAggressor)
        } else if is_market {
            let opposite = self.books[b].side(o.side.opposite());
            Rest::Cancel(if opposite.is_empty() {
                CancelReason::MarketNoLiquidity
            } else {
                CancelReason::MarketPriceBand
            })
        } else if o.tif.rests() {
            Rest::Book
        } else {
            // IOC; a FOK that passed its check always fills completely.
            Rest::Cancel(CancelReason::IocRemainder)
        };
        match rest {
            Rest::Cancel(reason) => self.emit_taker_cancel(&taker, taker.remaining, reason, sink),
            Rest::Book => {
                let slot = self.order_free;
                assert!(
                    slot != NIL,
                    "Invariant: an order slot was checked free before matching"
                );
                self.order_free = self.orders[slot as usize].next;
                self.orders_live += 1;
                self.orders[slot as usize] = Order {
                    id: seq,
                    price: limit,
                    qty_open: taker.remaining,
                    qty_filled: taker.filled,
                    client_order_id: o.client_order_id.0,
                    prev: NIL,
                    next: NIL,
                    level: NIL,
                    account: o.account.0,
                    stp_group: o.stp_group.0,
                    side: o.side,
                    tif: o.tif,
                    flags: u8::from(o.post_only) | (o.stp_mode.as_u8() << STP_SHIFT),
                    _pad: 0,
                };
                self.index.insert(seq, slot);
                if o.tif == TimeInForce::Gtd {
                    self.gtd_push(o.expire_ts_ns, seq);
                }
                self.rest_order(b, slot, sink);
            }
        }
    }

    /// Every check of a new order that can reject it, in the documented order.
    fn check_new(&self, b: usize, ts_ns: u64, o: &NewOrder) -> Result<(), RejectCode> {
        let book = &self.books[b];
        let spec = &self.specs[b];
        if book.status == InstrumentStatus::Halted {
            return Err(RejectCode::InstrumentHalted);
        }
        let is_market = o.order_type == OrderType::Market;
        let immediate = matches!(o.tif, TimeInForce::Ioc | TimeInForce::Fok);
        // Market orders must be immediate; post-only orders must be able to rest.
        let invalid = if is_market {
            o.post_only || !immediate
        } else {
            o.post_only && immediate
        };
        if invalid {
            return Err(RejectCode::InvalidOrderType);
        }
        check_qty(spec, o.qty.0)?;
        let gtd = o.tif == TimeInForce::Gtd;
        if (gtd && o.expire_ts_ns <= ts_ns) || (!gtd && o.expire_ts_ns != 0) {
            return Err(RejectCode::InvalidExpiry);
        }
        let price = if is_market {
            match o.side {
                Side::Buy => book.band_hi,
                Side::Sell => book.band_lo,
            }
        } else {
            check_price(spec, o.price.0)?;
            if o.price.0 < book.band_lo || o.price.0 > book.band_hi {
                return Err(RejectCode::PriceOutsideBand);
            }
            o.price.0
        };
        check_notional(spec, price, o.qty.0)?;
        if o.post_only && self.crosses(b, o.side, price) {
            return Err(RejectCode::PostOnlyWouldTake);
        }
        if self.order_free == NIL {
            return Err(RejectCode::OrderPoolFull);
        }
        if o.tif.rests() {
            let own = book.side(o.side);
            if (own.is_full() || self.level_free == NIL)
                && own.get(SideBook::key(o.side, price)).is_none()
            {
                return Err(RejectCode::LevelPoolFull);
            }
            if gtd && self.gtd_live >= self.gtd_max {
                return Err(RejectCode::ExpiryQueueFull);
            }
        }
        Ok(())
    }

    /// Whether an order on `side` at `price` would meet the best opposite level.
    #[inline]
    fn crosses(&self, b: usize, side: Side, price: i64) -> bool {
        let opposite = side.opposite();
        match self.books[b].side(opposite).best() {
            Some((best, _)) => best >= SideBook::key(opposite, price),
            None => false,
        }
    }

    /// The FOK pre-check of `docs/matching-rules.md`: would the order fill completely?
    fn fok_fillable(&self, b: usize, taker: &Taker, limit: i64) -> bool {
        let opposite = self.books[b].side(taker.side.opposite());
        let limit_key = SideBook::key(taker.side.opposite(), limit);
        let mut available: u64 = 0;
        for (key, lvl) in opposite.iter() {
            if key < limit_key {
                break;
            }
            let mut cur = self.levels[lvl as usize].head;
            while cur != NIL {
                let maker = &self.orders[cur as usize];
                if is_self_trade(taker, maker) {
                    if taker.stp_mode != StpMode::CancelResting {
                        return false;
                    }
                } else {
                    available = available.saturating_add(maker.qty_open);
                    if available >= taker.remaining {
                        return true;
                    }
                }
                cur = maker.next;
            }
        }
        false
    }

    /// Matches `taker` against the opposite side up to `limit`. Updates the book, emits
    /// trades, STP events and book deltas, and the instrument's last trade price.
    fn match_taker<S: EventSink>(&mut self, b: usize, taker: &mut Taker, limit: i64, sink: &mut S) {
        let opp = taker.side.opposite();
        let limit_key = SideBook::key(opp, limit);
        let mut last_price = None;
        while taker.remaining > 0 {
            let (key, lvl) = match self.books[b].side(opp).best() {
                Some((key, lvl)) if key >= limit_key => (key, lvl),
                _ => break,
            };
            let level_price = self.levels[lvl as usize].price;
            let mut changed = false;
            let mut cur = self.levels[lvl as usize].head;
            while cur != NIL && taker.remaining > 0 && !taker.stp_stopped {
                let maker = self.orders[cur as usize];
                let next = maker.next;
                if is_self_trade(taker, &maker) {
                    changed |= self.self_trade(cur, taker, sink);
                } else {
                    let q = maker.qty_open.min(taker.remaining);
                    let m = &mut self.orders[cur as usize];
                    m.qty_open -= q;
                    m.qty_filled += q;
                    let maker_open = m.qty_open;
                    self.levels[lvl as usize].qty_total -= q;
                    taker.remaining -= q;
                    taker.filled += q;
                    changed = true;
                    let trade_id = self.next_trade_id;
                    self.next_trade_id += 1;
                    last_price = Some(level_price);
                    sink.event(&Event::Trade(Trade {
                        trade_id: TradeId(trade_id),
                        instrument: InstrumentId(taker.instrument),
                        price: PriceTicks(level_price),
                        qty: QtyLots(q),
                        aggressor_side: taker.side,
                        maker_order_id: OrderId(maker.id),
                        maker_account: AccountId(maker.account),
                        maker_client_order_id: ClientOrderId(maker.client_order_id),
                        maker_qty_open: QtyLots(maker_open),
                        taker_order_id: OrderId(taker.id),
                        taker_account: AccountId(taker.account),
                        taker_client_order_id: ClientOrderId(taker.client_order_id),
                        taker_qty_open: QtyLots(taker.remaining),
                    }));
                    if maker_open == 0 {
                        self.unlink(cur);
                        self.release(cur);
                    }
                }
                cur = next;
            }
            if changed {
                self.emit_delta(lvl, opp, sink);
            }
            if self.levels[lvl as usize].count == 0 {
                self.books[b].side_mut(opp).remove(key);
                self.free_level(lvl);
            }
            if taker.stp_stopped {
                break;
            }
        }
        if let Some(price) = last_price {
            let book = &mut self.books[b];
            book.last_trade = price;
            set_band(book, &self.specs[b]);
        }
    }

    /// Applies the taker's STP mode to resting order `slot`; returns whether the level changed.
    fn self_trade<S: EventSink>(&mut self, slot: u32, taker: &mut Taker, sink: &mut S) -> bool {
        match taker.stp_mode {
            StpMode::CancelResting => {
                self.cancel_resting(slot, CancelReason::SelfTradeResting, sink);
                true
            }
            StpMode::CancelAggressor => {
                taker.stp_stopped = true;
                false
            }
            StpMode::CancelBoth => {
                self.cancel_resting(slot, CancelReason::SelfTradeResting, sink);
                taker.stp_stopped = true;
                true
            }
            StpMode::DecrementCancel => {
                let maker = self.orders[slot as usize];
                let d = maker.qty_open.min(taker.remaining);
                if d == maker.qty_open {
                    self.cancel_resting(slot, CancelReason::SelfTradeDecrement, sink);
                } else {
                    self.orders[slot as usize].qty_open -= d;
                    self.levels[maker.level as usize].qty_total -= d;
                    sink.event(&Event::Restated(Restated {
                        order_id: OrderId(maker.id),
                        instrument: InstrumentId(taker.instrument),
                        account: AccountId(maker.account),
                        client_order_id: ClientOrderId(maker.client_order_id),
                        side: maker.side,
                        price: PriceTicks(maker.price),
                        qty_reduced: QtyLots(d),
                        qty_open: QtyLots(maker.qty_open - d),
                    }));
                }
                taker.remaining -= d;
                if taker.remaining == 0 {
                    self.emit_taker_cancel(taker, d, CancelReason::SelfTradeDecrement, sink);
                } else {
                    sink.event(&Event::Restated(Restated {
                        order_id: OrderId(taker.id),
                        instrument: InstrumentId(taker.instrument),
                        account: AccountId(taker.account),
                        client_order_id: ClientOrderId(taker.client_order_id),
                        side: taker.side,
                        price: PriceTicks(taker.price),
                        qty_reduced: QtyLots(d),
                        qty_open: QtyLots(taker.remaining),
                    }));
                }
                true
            }
            // Callers only ask when prevention is on.
            StpMode::Off => false,
        }
    }

    /// Removes a resting order during matching or a sweep: emits `Cancelled`, leaves the
    /// level (and its delta) to the caller.
    fn cancel_resting<S: EventSink>(&mut self, slot: u32, reason: CancelReason, sink: &mut S) {
        let o = self.orders[slot as usize];
        let instrument = self.levels[o.level as usize].instrument;
        self.unlink(slot);
        sink.event(&Event::Cancelled(Cancelled {
            order_id: OrderId(o.id),
            instrument: InstrumentId(instrument),
            account: AccountId(o.account),
            client_order_id: ClientOrderId(o.client_order_id),
            side: o.side,
            price: PriceTicks(o.price),
            qty_cancelled: QtyLots(o.qty_open),
            reason,
        }));
        self.release(slot);
    }

    fn emit_taker_cancel<S: EventSink>(
        &self,
        taker: &Taker,
        qty: u64,
        reason: CancelReason,
        sink: &mut S,
    ) {
        sink.event(&Event::Cancelled(Cancelled {
            order_id: OrderId(taker.id),
            instrument: InstrumentId(taker.instrument),
            account: AccountId(taker.account),
            client_order_id: ClientOrderId(taker.client_order_id),
            side: taker.side,
            price: PriceTicks(taker.price),
            qty_cancelled: QtyLots(qty),
            reason,
        }));
    }

    /// Puts order `slot` (linked to nothing) at the back of its price level, creating the
    /// level if needed, and emits `Rested` and the level's delta. Capacity was checked before.
    fn rest_order<S: EventSink>(&mut self, b: usize, slot: u32, sink: &mut S) {
        let o = self.orders[slot as usize];
        let key = SideBook::key(o.side, o.price);
        let lvl = match self.books[b].side(o.side).get(key) {
            Some(lvl) => lvl,
            None => {
                let lvl = self.level_free;
                assert!(
                    lvl != NIL,
                    "Invariant: a level slot was checked free before resting"
                );
                self.level_free = self.levels[lvl as usize].head;
                self.levels_live += 1;
                self.levels[lvl as usize] = Level {
                    price: o.price,
                    qty_total: 0,
                    head: NIL,
                    tail: NIL,
                    count: 0,
                    instrument: b as u32,
                };
                self.books[b].side_mut(o.side).insert(key, lvl);
                lvl
            }
        };
        let level = &mut self.levels[lvl as usize];
        let tail = level.tail;
        level.tail = slot;
        if tail == NIL {
            level.head = slot;
        }
        level.qty_total += o.qty_open;
        level.count += 1;
        if tail != NIL {
            self.orders[tail as usize].next = slot;
        }
        let order = &mut self.orders[slot as usize];
        order.prev = tail;
        order.next = NIL;
        order.level = lvl;
        sink.event(&Event::Rested(Rested {
            order_id: OrderId(o.id),
            instrument: InstrumentId(b as u32),
            account: AccountId(o.account),
            side: o.side,
            price: PriceTicks(o.price),
            qty_open: QtyLots(o.qty_open),
        }));
        self.emit_delta(lvl, o.side, sink);
    }

    /// Takes order `slot` out of its level's FIFO and totals. The level itself stays, even if
    /// empty; the caller removes it from the side when it is done with it.
    #[inline]
    fn unlink(&mut self, slot: u32) {
        let o = self.orders[slot as usize];
        let level = &mut self.levels[o.level as usize];
        level.qty_total -= o.qty_open;
        level.count -= 1;
        if o.prev == NIL {
            level.head = o.next;
        } else {
            self.orders[o.prev as usize].next = o.next;
        }
        if o.next == NIL {
            level.tail = o.prev;
        } else {
            self.orders[o.next as usize].prev = o.prev;
        }
        let order = &mut self.orders[slot as usize];
        order.prev = NIL;
        order.next = NIL;
        order.level = NIL;
    }

    /// Returns an unlinked order's slot to the pool and forgets its id.
    #[inline]
    fn release(&mut self, slot: u32) {
        let id = self.orders[slot as usize].id;
        self.index.remove(&self.orders, id);
        if self.orders[slot as usize].tif == TimeInForce::Gtd {
            self.gtd_live -= 1;
        }
        let order = &mut self.orders[slot as usize];
        *order = Order::FREE;
        order.next = self.order_free;
        self.order_free = slot;
        self.orders_live -= 1;
    }

    #[inline]
    fn free_level(&mut self, lvl: u32) {
        self.levels[lvl as usize] = Level {
            head: self.level_free,
            ..Level::FREE
        };
        self.level_free = lvl;
        self.levels_live -= 1;
    }

    /// Removes level `lvl` from its side if it holds no orders.
    fn drop_level_if_empty(&mut self, b: usize, side: Side, lvl: u32) {
        let level = self.levels[lvl as usize];
        if level.count != 0 {
            return;
        }
        self.books[b]
            .side_mut(side)
            .remove(SideBook::key(side, level.price));
        self.free_level(lvl);
    }

    #[inline]
    fn emit_delta<S: EventSink>(&self, lvl: u32, side: Side, sink: &mut S) {
        let level = &self.levels[lvl as usize];
        sink.event(&Event::BookDelta(BookDelta {
            instrument: InstrumentId(level.instrument),
            side,
            price: PriceTicks(level.price),
            qty_total: QtyLots(level.qty_total),
            order_count: level.count,
        }));
    }

    fn gtd_push(&mut self, expire_ts_ns: u64, id: u64) {
        if self.gtd.len() >= self.gtd_max as usize {
            // Drop entries of orders that already left the book; at most `gtd_live` remain,
            // which the admission check keeps below `gtd_max`. Retain never allocates.
            let (index, orders) = (&self.index, &self.orders);
            self.gtd
                .retain(|Reverse((_, id))| index.get(orders, *id).is_some());
        }
        assert!(
            self.gtd.len() < self.gtd_max as usize,
            "Invariant: GTD queue has room"
        );
        self.gtd.push(Reverse((expire_ts_ns, id)));
        self.gtd_live += 1;
    }

    fn expire_gtd<S: EventSink>(&mut self, ts_ns: u64, sink: &mut S) {
        while let Some(&Reverse((expire_ts_ns, id))) = self.gtd.peek() {
            if expire_ts_ns > ts_ns {
                break;
            }
            self.gtd.pop();
            if let Some(slot) = self.index.get(&self.orders, id) {
                self.expire_one(slot, ExpireReason::GoodTillDate, sink);
            }
        }
    }

    fn expire_one<S: EventSink>(&mut self, slot: u32, reason: ExpireReason, sink: &mut S) {
        let o = self.orders[slot as usize];
        let lvl = o.level;
        let b = self.levels[lvl as usize].instrument as usize;
        self.unlink(slot);
        sink.event(&Event::Expired(Expired {
            order_id: OrderId(o.id),
            instrument: InstrumentId(b as u32),
            account: AccountId(o.account),
            client_order_id: ClientOrderId(o.client_order_id),
            side: o.side,
            price: PriceTicks(o.price),
            qty_expired: QtyLots(o.qty_open),
            reason,
        }));
        self.release(slot);
        self.emit_delta(lvl, o.side, sink);
        self.drop_level_if_empty(b, o.side, lvl);
    }

    // ----- cancel and replace -----------------------------------------------------------

    /// The slot of live order `id` if `account` owns it.
    #[inline]
    fn owned(&self, id: OrderId, account: AccountId) -> Option<u32> {
        let slot = self.index.get(&self.orders, id.0)?;
        (self.orders[slot as usize].account == account.0).then_some(slot)
    }

    fn cancel<S: EventSink>(&mut self, c: &Cancel, sink: &mut S) {
        let Some(slot) = self.owned(c.order_id, c.account) else {
            return sink.event(&Event::Rejected(Rejected {
                request: RequestKind::Cancel,
                code: RejectCode::UnknownOrder,
                instrument: InstrumentId(0),
                account: c.account,
                client_order_id: c.client_order_id,
                order_id: c.order_id,
            }));
        };
        let o = self.orders[slot as usize];
        let lvl = o.level;
        let b = self.levels[lvl as usize].instrument as usize;
        self.cancel_resting(slot, CancelReason::Requested, sink);
        self.emit_delta(lvl, o.side, sink);
        self.drop_level_if_empty(b, o.side, lvl);
    }

    fn replace<S: EventSink>(&mut self, r: &Replace, sink: &mut S) {
        let found = self.owned(r.order_id, r.account);
        let instrument = found.map_or(0, |slot| {
            self.levels[self.orders[slot as usize].level as usize].instrument
        });
        let reject = |code: RejectCode, sink: &mut S| {
            sink.event(&Event::Rejected(Rejected {
                request: RequestKind::Replace,
                code,
                instrument: InstrumentId(instrument),
                account: r.account,
                client_order_id: r.client_order_id,
                order_id: r.order_id,
            }))
        };
        let Some(slot) = found else {
            return reject(RejectCode::UnknownOrder, sink);
        };
        let b = instrument as usize;
        let o = self.orders[slot as usize];
        let new_open = match self.check_replace(b, &o, r) {
            Ok(new_open) => new_open,
            Err(code) => return reject(code, sink),
        };
        let lvl = o.level;
        let keep_priority = r.price.0 == o.price && new_open < o.qty_open;
        let mut replaced = Replaced {
            order_id: r.order_id,
            instrument: InstrumentId(instrument),
            account: r.account,
            client_order_id: r.client_order_id,
            orig_client_order_id: ClientOrderId(o.client_order_id),
            side: o.side,
            price_old: PriceTicks(o.price),
            price: r.price,
            qty_open_old: QtyLots(o.qty_open),
            qty_open: QtyLots(new_open),
            qty_filled: QtyLots(o.qty_filled),
            priority_kept: keep_priority,
        };
        if keep_priority {
            let order = &mut self.orders[slot as usize];
            order.qty_open = new_open;
            order.client_order_id = r.client_order_id.0;
            self.levels[lvl as usize].qty_total -= o.qty_open - new_open;
            sink.event(&Event::Replaced(replaced));
            return self.emit_delta(lvl, o.side, sink);
        }
        self.unlink(slot);
        replaced.priority_kept = false;
        sink.event(&Event::Replaced(replaced));
        self.emit_delta(lvl, o.side, sink);
        self.drop_level_if_empty(b, o.side, lvl);
        let mut taker = Taker {
            id: o.id,
            instrument,
            account: o.account,
            client_order_id: r.client_order_id.0,
            stp_group: o.stp_group,
            stp_mode: o.stp_mode(),
            side: o.side,
            price: r.price.0,
            remaining: new_open,
            filled: o.qty_filled,
            stp_stopped: false,
        };
        self.match_taker(b, &mut taker, r.price.0, sink);
        if taker.remaining == 0 {
            return self.release(slot);
        }
        if taker.stp_stopped {
            self.emit_taker_cancel(
                &taker,
                taker.remaining,
                CancelReason::SelfTradeAggressor,
                sink,
            );
            return self.release(slot);
        }
        let order = &mut self.orders[slot as usize];
        order.price = r.price.0;
        order.qty_open = taker.remaining;
        order.qty_filled = taker.filled;
        order.client_order_id = r.client_order_id.0;
        self.rest_order(b, slot, sink);
    }

    /// The checks of a replace, in the documented order; returns the new open quantity.
    fn check_replace(&self, b: usize, o: &Order, r: &Replace) -> Result<u64, RejectCode> {
        let book = &self.books[b];
        let spec = &self.specs[b];
        if book.status == InstrumentStatus::Halted {
            return Err(RejectCode::InstrumentHalted);
        }
        check_qty(spec, r.qty.0)?;
        check_price(spec, r.price.0)?;
        let price_changed = r.price.0 != o.price;
        if price_changed && (r.price.0 < book.band_lo || r.price.0 > book.band_hi) {
            return Err(RejectCode::PriceOutsideBand);
        }
        check_notional(spec, r.price.0, r.qty.0)?;
        if r.qty.0 <= o.qty_filled {
            return Err(RejectCode::ReplaceQtyNotAboveFilled);
        }
        let new_open = r.qty.0 - o.qty_filled;
        if !price_changed && new_open == o.qty_open {
            return Err(RejectCode::ReplaceNoChange);
        }
        if o.post_only() && self.crosses(b, o.side, r.price.0) {
            return Err(RejectCode::PostOnlyWouldTake);
        }
        if price_changed {
            let own = book.side(o.side);
            let frees_old = self.levels[o.level as usize].count == 1;
            if !frees_old
                && (own.is_full() || self.level_free == NIL)
                && own.get(SideBook::key(o.side, r.price.0)).is_none()
            {
                return Err(RejectCode::LevelPoolFull);
            }
        }
        Ok(new_open)
    }

    // ----- sweeps: mass cancel, end of day ------------------------------------------------

    fn mass_cancel<S: EventSink>(&mut self, m: &MassCancel, sink: &mut S) {
        let range = match m.instrument {
            Some(i) if i.0 as usize >= self.books.len() => {
                return sink.event(&Event::Rejected(Rejected {
                    request: RequestKind::MassCancel,
                    code: RejectCode::UnknownInstrument,
                    instrument: i,
                    account: m.account.unwrap_or_default(),
                    client_order_id: m.client_order_id,
                    order_id: OrderId(0),
                }));
            }
            Some(i) => i.0 as usize..i.0 as usize + 1,
            None => 0..self.books.len(),
        };
        let account = m.account;
        let mut count = 0u32;
        for b in range {
            count += self.sweep(b, sink, |o| account.is_none_or(|a| a.0 == o.account), None);
        }
        sink.event(&Event::MassCancelled(MassCancelled {
            instrument: m.instrument,
            account: m.account,
            client_order_id: m.client_order_id,
            count,
        }));
    }

    fn end_of_day<S: EventSink>(&mut self, sink: &mut S) {
        for b in 0..self.books.len() {
            self.sweep(
                b,
                sink,
                |o| o.tif == TimeInForce::Day,
                Some(ExpireReason::EndOfDay),
            );
        }
    }

    /// Removes every order of book `b` that `select` picks, bids then asks, best level first,
    /// in time priority; cancels them, or expires them when `expire` is given.
    fn sweep<S: EventSink>(
        &mut self,
        b: usize,
        sink: &mut S,
        select: impl Fn(&Order) -> bool,
        expire: Option<ExpireReason>,
    ) -> u32 {
        let mut count = 0;
        for side in [Side::Buy, Side::Sell] {
            let mut next = self.books[b].side(side).best();
            while let Some((key, lvl)) = next {
                // The next level is found before this one may disappear.
                next = self.books[b].side(side).next_below(key);
                let mut changed = false;
                let mut cur = self.levels[lvl as usize].head;
                while cur != NIL {
                    let o = self.orders[cur as usize];
                    if select(&o) {
                        changed = true;
                        count += 1;
                        match expire {
                            Some(reason) => {
                                self.unlink(cur);
                                sink.event(&Event::Expired(Expired {
                                    order_id: OrderId(o.id),
                                    instrument: InstrumentId(b as u32),
                                    account: AccountId(o.account),
                                    client_order_id: ClientOrderId(o.client_order_id),
                                    side: o.side,
                                    price: PriceTicks(o.price),
                                    qty_expired: QtyLots(o.qty_open),
                                    reason,
                                }));
                                self.release(cur);
                            }
                            None => self.cancel_resting(cur, CancelReason::MassCancel, sink),
                        }
                    }
                    cur = o.next;
                }
                if changed {
                    self.emit_delta(lvl, side, sink);
                }
                if self.levels[lvl as usize].count == 0 {
                    self.books[b].side_mut(side).remove(key);
                    self.free_level(lvl);
                }
            }
        }
        count
    }

    fn set_status<S: EventSink>(&mut self, s: &SetStatus, sink: &mut S) {
        let Some(book) = self.books.get_mut(s.instrument.0 as usize) else {
            return sink.event(&Event::Rejected(Rejected {
                request: RequestKind::SetStatus,
                code: RejectCode::UnknownInstrument,
                instrument: s.instrument,
                account: AccountId(0),
                client_order_id: ClientOrderId(0),
                order_id: OrderId(0),
            }));
        };
        book.status = s.status;
        sink.event(&Event::StatusChanged(StatusChanged {
            instrument: s.instrument,
            status: s.status,
        }));
    }

    // ----- inspection -------------------------------------------------------------------

    /// The configured instruments, indexed by `InstrumentId`.
    pub fn instruments(&self) -> &[InstrumentSpec] {
        &self.specs
    }

    /// Looks an instrument up by symbol (a linear scan; not for the hot path).
    pub fn instrument_by_symbol(&self, symbol: &str) -> Option<InstrumentId> {
        self.specs
            .iter()
            .position(|s| s.symbol == symbol)
            .map(|i| InstrumentId(i as u32))
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn last_ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// Commands applied since start-up.
    pub fn commands_applied(&self) -> u64 {
        self.commands
    }

    pub fn orders_live(&self) -> u32 {
        self.orders_live
    }

    pub fn levels_live(&self) -> u32 {
        self.levels_live
    }

    /// The next trade id the engine will assign.
    pub fn next_trade_id(&self) -> u64 {
        self.next_trade_id
    }

    pub fn status(&self, instrument: InstrumentId) -> Option<InstrumentStatus> {
        self.books.get(instrument.0 as usize).map(|b| b.status)
    }

    /// The reference price of the band: the last trade price, else the configured one.
    pub fn reference_price(&self, instrument: InstrumentId) -> Option<PriceTicks> {
        let b = instrument.0 as usize;
        let book = self.books.get(b)?;
        Some(PriceTicks(reference(book, &self.specs[b])))
    }

    /// The band `(lo, hi)` limit prices must lie in right now.
    pub fn price_band(&self, instrument: InstrumentId) -> Option<(PriceTicks, PriceTicks)> {
        let book = self.books.get(instrument.0 as usize)?;
        Some((PriceTicks(book.band_lo), PriceTicks(book.band_hi)))
    }

    pub fn best_bid(&self, instrument: InstrumentId) -> Option<(PriceTicks, QtyLots)> {
        self.best(instrument, Side::Buy)
    }

    pub fn best_ask(&self, instrument: InstrumentId) -> Option<(PriceTicks, QtyLots)> {
        self.best(instrument, Side::Sell)
    }

    fn best(&self, instrument: InstrumentId, side: Side) -> Option<(PriceTicks, QtyLots)> {
        let book = self.books.get(instrument.0 as usize)?;
        let (_, lvl) = book.side(side).best()?;
        let level = &self.levels[lvl as usize];
        Some((PriceTicks(level.price), QtyLots(level.qty_total)))
    }

    /// Bytes held by the engine's preallocated structures (capacity, not use).
    pub fn memory_bytes(&self) -> usize {
        use core::mem::size_of;
        let sides: usize = self
            .books
            .iter()
            .map(|b| b.bids.bytes() + b.asks.bytes())
            .sum();
        self.orders.capacity() * size_of::<Order>()
            + self.levels.capacity() * size_of::<Level>()
            + self.index.bytes()
            + self.gtd.capacity() * size_of::<Reverse<(u64, u64)>>()
            + self.books.capacity() * size_of::<Book>()
            + sides
    }
}

#[inline(always)]
fn is_self_trade(taker: &Taker, maker: &Order) -> bool {
    taker.stp_mode != StpMode::Off
        && taker.stp_group == maker.stp_group
        && (taker.stp_group != 0 || taker.account == maker.account)
}

#[inline]
fn check_qty(spec: &InstrumentSpec, qty: u64) -> Result<(), RejectCode> {
    if qty == 0 {
        Err(RejectCode::QtyZero)
    } else if spec.lot_size.0 != 1 && qty % spec.lot_size.0 != 0 {
        // The test for 1 skips a division on the most common configuration.
        Err(RejectCode::QtyOffLot)
    } else if qty > spec.qty_max.0 {
        Err(RejectCode::QtyAboveMax)
    } else {
        Ok(())
    }
}

#[inline]
fn check_price(spec: &InstrumentSpec, price: i64) -> Result<(), RejectCode> {
    if price <= 0 {
        Err(RejectCode::PriceNotPositive)
    } else if spec.tick_size.0 != 1 && price % spec.tick_size.0 != 0 {
        Err(RejectCode::PriceOffTick)
    } else {
        Ok(())
    }
}

#[inline]
fn check_notional(spec: &InstrumentSpec, price: i64, qty: u64) -> Result<(), RejectCode> {
    // i64 times u64 always fits in u128; a non-positive band edge has no notional.
    let notional = u128::try_from(price).unwrap_or(0) * u128::from(qty);
    if notional > spec.notional_max {
        Err(RejectCode::NotionalAboveMax)
    } else {
        Ok(())
    }
}

fn reference(book: &Book, spec: &InstrumentSpec) -> i64 {
    if book.last_trade > 0 {
        book.last_trade
    } else {
        spec.reference_price.0
    }
}

/// Recomputes the cached band after the reference price changed.
fn set_band(book: &mut Book, spec: &InstrumentSpec) {
    let reference = reference(book, spec);
    let band = match spec.price_band {
        PriceBand::Bps(bps) => {
            let b = i128::from(reference) * i128::from(bps) / 10_000;
            i64::try_from(b).unwrap_or(i64::MAX)
        }
        PriceBand::Ticks(t) => t,
    };
    book.band_lo = reference.saturating_sub(band);
    book.band_hi = reference.saturating_add(band);
}
