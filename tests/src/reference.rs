//! A reference model of the matching engine, written from `docs/matching-rules.md` alone.
//!
//! The model trades speed for obviousness: each book side is a `Vec` of levels kept sorted best
//! first, each level a `Vec` of orders in time priority (index 0 is the oldest), and every
//! lookup is a linear scan. Nothing is cached: level totals, live-order counts, level counts and
//! the GTD list are recomputed from the orders whenever they are needed, so they cannot drift
//! out of step with the book. Property tests compare its events and its state with the engine's
//! after every command.
//!
//! Each rule below cites the section of the document it implements, so that a disagreement with
//! the engine can be settled by reading the document rather than this code.

use ferrox_engine::{
    BookSnapshot, EngineConfig, InstrumentSpec, LevelSnapshot, Limits, OrderView, PriceBand,
};
use ferrox_protocol::event::{
    Accepted, BookDelta, Cancelled, Expired, MassCancelled, Rejected, Replaced, Restated, Rested,
    StatusChanged, Trade,
};
use ferrox_protocol::{
    AccountId, Cancel, CancelReason, ClientOrderId, Command, Event, ExpireReason, InstrumentId,
    InstrumentStatus, MassCancel, NewOrder, OrderId, OrderType, PriceTicks, QtyLots, RejectCode,
    Replace, RequestKind, SequencedCommand, SetStatus, Side, StpGroup, StpMode, TimeInForce,
    TradeId,
};

/// One live (resting) order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RefOrder {
    id: u64,
    instrument: InstrumentId,
    account: AccountId,
    client_order_id: ClientOrderId,
    side: Side,
    price_ticks: i64,
    qty_open: u64,
    qty_filled: u64,
    tif: TimeInForce,
    expire_ts_ns: u64,
    post_only: bool,
    stp_mode: StpMode,
    stp_group: StpGroup,
}

impl RefOrder {
    fn view(&self) -> OrderView {
        OrderView {
            order_id: OrderId(self.id),
            instrument: self.instrument,
            account: self.account,
            client_order_id: self.client_order_id,
            side: self.side,
            price: PriceTicks(self.price_ticks),
            qty_open: QtyLots(self.qty_open),
            qty_filled: QtyLots(self.qty_filled),
            tif: self.tif,
            post_only: self.post_only,
            stp_mode: self.stp_mode,
            stp_group: self.stp_group,
        }
    }

    fn cancelled(&self, qty_cancelled: u64, reason: CancelReason) -> Event {
        Event::Cancelled(Cancelled {
            order_id: OrderId(self.id),
            instrument: self.instrument,
            account: self.account,
            client_order_id: self.client_order_id,
            side: self.side,
            price: PriceTicks(self.price_ticks),
            qty_cancelled: QtyLots(qty_cancelled),
            reason,
        })
    }

    fn expired(&self, reason: ExpireReason) -> Event {
        Event::Expired(Expired {
            order_id: OrderId(self.id),
            instrument: self.instrument,
            account: self.account,
            client_order_id: self.client_order_id,
            side: self.side,
            price: PriceTicks(self.price_ticks),
            qty_expired: QtyLots(self.qty_open),
            reason,
        })
    }
}

/// One price level: its orders in time priority. A level with no orders never stays in a book.
#[derive(Clone, Debug)]
struct RefLevel {
    price_ticks: i64,
    orders: Vec<RefOrder>,
}

impl RefLevel {
    fn qty_total(&self) -> u64 {
        self.orders.iter().map(|o| o.qty_open).sum()
    }
}

#[derive(Clone, Debug)]
struct RefBook {
    status: InstrumentStatus,
    last_trade_ticks: Option<i64>,
    /// Best (highest) first.
    bids: Vec<RefLevel>,
    /// Best (lowest) first.
    asks: Vec<RefLevel>,
}

impl RefBook {
    fn side(&self, side: Side) -> &Vec<RefLevel> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Vec<RefLevel> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn orders(&self) -> impl Iterator<Item = &RefOrder> {
        self.bids
            .iter()
            .chain(self.asks.iter())
            .flat_map(|l| l.orders.iter())
    }
}

/// The STP key of an order ("Self-trade prevention"): the group if non-zero, else the account.
/// The two variants keep group 7 and account 7 apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StpKey {
    Group(u32),
    Account(u32),
}

fn stp_key(group: StpGroup, account: AccountId) -> StpKey {
    if group.0 != 0 {
        StpKey::Group(group.0)
    } else {
        StpKey::Account(account.0)
    }
}

/// Whether a price on `side` is strictly better than `other` on the same side.
fn is_better(side: Side, price_ticks: i64, other_ticks: i64) -> bool {
    match side {
        Side::Buy => price_ticks > other_ticks,
        Side::Sell => price_ticks < other_ticks,
    }
}

/// Whether a taker on `taker_side` with `limit_ticks` may trade with a maker at `maker_ticks`.
fn crosses(taker_side: Side, maker_ticks: i64, limit_ticks: i64) -> bool {
    match taker_side {
        Side::Buy => maker_ticks <= limit_ticks,
        Side::Sell => maker_ticks >= limit_ticks,
    }
}

/// Price times quantity in u128 ("New order", check 7). A non-positive price (only possible
/// for a market sell whose band edge is at or below zero) has no notional; the document is
/// silent on that case.
fn notional(price_ticks: i64, qty_lots: u64) -> u128 {
    u128::try_from(price_ticks).unwrap_or(0) * u128::from(qty_lots)
}

/// The incoming order (or a replaced order that lost priority) while it is matched.
#[derive(Clone, Debug)]
struct Taker {
    order_id: u64,
    instrument: InstrumentId,
    account: AccountId,
    client_order_id: ClientOrderId,
    side: Side,
    /// The limit; also the price reported in the taker's own events.
    price_ticks: i64,
    qty_remaining: u64,
    qty_filled: u64,
    stp_mode: StpMode,
    stp_group: StpGroup,
    /// Set when self-trade prevention ended matching with quantity left.
    stp_stopped: bool,
}

impl Taker {
    fn cancelled(&self, qty_cancelled: u64, reason: CancelReason) -> Event {
        Event::Cancelled(Cancelled {
            order_id: OrderId(self.order_id),
            instrument: self.instrument,
            account: self.account,
            client_order_id: self.client_order_id,
            side: self.side,
            price: PriceTicks(self.price_ticks),
            qty_cancelled: QtyLots(qty_cancelled),
            reason,
        })
    }
}

/// The reference model. Build it from the same [`EngineConfig`] as the engine and feed it the
/// same commands.
#[derive(Clone, Debug)]
pub struct ReferenceBook {
    specs: Vec<InstrumentSpec>,
    limits: Limits,
    books: Vec<RefBook>,
    next_trade_id: u64,
    last_seq: u64,
    last_ts_ns: u64,
    /// Events of the command being applied.
    out: Vec<Event>,
}

impl ReferenceBook {
    /// A model with empty books. The configuration is assumed valid (the engine validates it).
    pub fn new(config: &EngineConfig) -> Self {
        ReferenceBook {
            specs: config.instruments.clone(),
            limits: config.limits.clone(),
            books: config
                .instruments
                .iter()
                .map(|spec| RefBook {
                    status: spec.status,
                    last_trade_ticks: None,
                    bids: Vec::new(),
                    asks: Vec::new(),
                })
                .collect(),
            next_trade_id: 1,
            last_seq: 0,
            last_ts_ns: 0,
            out: Vec::new(),
        }
    }

    /// Applies one command and returns the events it produced, in order.
    pub fn apply(&mut self, cmd: &SequencedCommand) -> Vec<Event> {
        // "Commands and time": a broken sequence is a harness bug, not a client error.
        assert!(
            cmd.seq > self.last_seq,
            "reference model: seq {} after {}",
            cmd.seq,
            self.last_seq
        );
        assert!(
            cmd.ts_ns >= self.last_ts_ns,
            "reference model: ts_ns {} after {}",
            cmd.ts_ns,
            self.last_ts_ns
        );
        self.last_seq = cmd.seq;
        self.last_ts_ns = cmd.ts_ns;
        self.out.clear();
        self.expire_gtd(cmd.ts_ns);
        match &cmd.command {
            Command::NewOrder(o) => self.new_order(cmd.seq, cmd.ts_ns, o),
            Command::Cancel(c) => self.cancel(c),
            Command::Replace(r) => self.replace(r),
            Command::MassCancel(m) => self.mass_cancel(m),
            Command::SetStatus(s) => self.set_status(s),
            Command::EndOfDay => self.end_of_day(),
            Command::Tick => {}
            Command::Checkpoint(c) => self.checkpoint(c.instrument),
        }
        std::mem::take(&mut self.out)
    }

    /// The fingerprint from the model's own book snapshot, through the public `BookHasher`.
    fn checkpoint(&mut self, instrument: InstrumentId) {
        let Some(book) = self.book(instrument) else {
            return;
        };
        let mut h = ferrox_protocol::BookHasher::new(instrument);
        let mut orders = 0u32;
        for (side, levels) in [(Side::Buy, &book.bids), (Side::Sell, &book.asks)] {
            for level in levels {
                for o in &level.orders {
                    h.order(side, o.price, o.order_id, o.qty_open);
                    orders += 1;
                }
            }
        }
        self.out
            .push(Event::BookChecked(ferrox_protocol::event::BookChecked {
                instrument,
                book_hash: h.finish(),
                orders,
                bid_levels: book.bids.len() as u32,
                ask_levels: book.asks.len() as u32,
            }));
    }

    // ----- inspection ---------------------------------------------------------------------

    /// The same structure as `Engine::book`.
    pub fn book(&self, instrument: InstrumentId) -> Option<BookSnapshot> {
        let book = self.books.get(instrument.0 as usize)?;
        let levels = |side: Side| -> Vec<LevelSnapshot> {
            book.side(side)
                .iter()
                .map(|l| LevelSnapshot {
                    price: PriceTicks(l.price_ticks),
                    qty_total: QtyLots(l.qty_total()),
                    orders: l.orders.iter().map(RefOrder::view).collect(),
                })
                .collect()
        };
        Some(BookSnapshot {
            instrument,
            status: book.status,
            last_trade_price: book.last_trade_ticks.map(PriceTicks),
            bids: levels(Side::Buy),
            asks: levels(Side::Sell),
        })
    }

    /// Live GTD orders as `(expire_ts_ns, order_id)`, sorted (the same as `Engine::gtd_orders`).
    pub fn gtd_orders(&self) -> Vec<(u64, OrderId)> {
        let mut gtd: Vec<(u64, OrderId)> = self
            .books
            .iter()
            .flat_map(RefBook::orders)
            .filter(|o| o.tif == TimeInForce::Gtd)
            .map(|o| (o.expire_ts_ns, OrderId(o.id)))
            .collect();
        gtd.sort_unstable();
        gtd
    }

    /// Every live order, by instrument, bids then asks, best level first, in time priority.
    pub fn live_orders(&self) -> Vec<OrderView> {
        self.books
            .iter()
            .flat_map(RefBook::orders)
            .map(RefOrder::view)
            .collect()
    }

    pub fn orders_live(&self) -> u32 {
        self.count_orders() as u32
    }

    pub fn levels_live(&self) -> u32 {
        self.count_levels() as u32
    }

    /// The next trade id the model will assign.
    pub fn next_trade_id(&self) -> u64 {
        self.next_trade_id
    }

    /// The band `(lo, hi)` limit prices must lie in right now.
    pub fn price_band(&self, instrument: InstrumentId) -> Option<(PriceTicks, PriceTicks)> {
        let b = instrument.0 as usize;
        (b < self.books.len()).then(|| {
            let (lo, hi) = self.band(b);
            (PriceTicks(lo), PriceTicks(hi))
        })
    }

    fn count_orders(&self) -> usize {
        self.books.iter().map(|b| b.orders().count()).sum()
    }

    fn count_levels(&self) -> usize {
        self.books.iter().map(|b| b.bids.len() + b.asks.len()).sum()
    }

    fn count_gtd(&self) -> usize {
        self.books
            .iter()
            .flat_map(RefBook::orders)
            .filter(|o| o.tif == TimeInForce::Gtd)
            .count()
    }

    // ----- price band ---------------------------------------------------------------------

    /// "Price band": `(band_lo, band_hi)` from the last trade price, else the configured one.
    fn band(&self, b: usize) -> (i64, i64) {
        let spec = &self.specs[b];
        let reference = i128::from(
            self.books[b]
                .last_trade_ticks
                .unwrap_or(spec.reference_price.0),
        );
        let width = match spec.price_band {
            PriceBand::Bps(bps) => reference * i128::from(bps) / 10_000,
            PriceBand::Ticks(ticks) => i128::from(ticks),
        };
        let clamp = |x: i128| x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        (clamp(reference - width), clamp(reference + width))
    }

    // ----- book helpers -------------------------------------------------------------------

    fn best_price(&self, b: usize, side: Side) -> Option<i64> {
        self.books[b].side(side).first().map(|l| l.price_ticks)
    }

    fn has_level(&self, b: usize, side: Side, price_ticks: i64) -> bool {
        self.books[b]
            .side(side)
            .iter()
            .any(|l| l.price_ticks == price_ticks)
    }

    /// Whether a new level on `side` of book `b` would exceed a capacity ("New order", check 9).
    fn level_capacity_exhausted(&self, b: usize, side: Side) -> bool {
        self.books[b].side(side).len() >= self.specs[b].levels_per_side_max as usize
            || self.count_levels() >= self.limits.levels_max as usize
    }

    /// Where order `id` rests: (book, side, level index, position in the level).
    fn locate(&self, id: u64) -> Option<(usize, Side, usize, usize)> {
        for (b, book) in self.books.iter().enumerate() {
            for side in [Side::Buy, Side::Sell] {
                for (li, level) in book.side(side).iter().enumerate() {
                    if let Some(pos) = level.orders.iter().position(|o| o.id == id) {
                        return Some((b, side, li, pos));
                    }
                }
            }
        }
        None
    }

    /// Takes order `id` out of its level (the level stays, possibly empty, until
    /// [`Self::emit_delta`] looks at it).
    fn take_order(&mut self, b: usize, side: Side, li: usize, pos: usize) -> RefOrder {
        self.books[b].side_mut(side)[li].orders.remove(pos)
    }

    /// Emits the `BookDelta` of the level at `price_ticks` with its current totals, and drops
    /// the level if it has no orders left (`order_count` 0 means "gone").
    fn emit_delta(&mut self, b: usize, side: Side, price_ticks: i64) {
        let levels = self.books[b].side_mut(side);
        let (qty_total, order_count) =
            match levels.iter().position(|l| l.price_ticks == price_ticks) {
                Some(li) => {
                    let totals = (levels[li].qty_total(), levels[li].orders.len());
                    if totals.1 == 0 {
                        levels.remove(li);
                    }
                    totals
                }
                None => (0, 0),
            };
        self.out.push(Event::BookDelta(BookDelta {
            instrument: InstrumentId(b as u32),
            side,
            price: PriceTicks(price_ticks),
            qty_total: QtyLots(qty_total),
            order_count: order_count as u32,
        }));
    }

    /// Puts `order` at the back of its level, creating the level in price order if needed, and
    /// emits `Rested` then `BookDelta`.
    fn rest(&mut self, b: usize, order: RefOrder) {
        let (side, price_ticks) = (order.side, order.price_ticks);
        self.out.push(Event::Rested(Rested {
            order_id: OrderId(order.id),
            instrument: order.instrument,
            account: order.account,
            side,
            price: PriceTicks(price_ticks),
            qty_open: QtyLots(order.qty_open),
        }));
        let levels = self.books[b].side_mut(side);
        match levels.iter().position(|l| l.price_ticks == price_ticks) {
            Some(li) => levels[li].orders.push(order),
            None => {
                let at = levels
                    .iter()
                    .position(|l| is_better(side, price_ticks, l.price_ticks))
                    .unwrap_or(levels.len());
                levels.insert(
                    at,
                    RefLevel {
                        price_ticks,
                        orders: vec![order],
                    },
                );
            }
        }
        self.emit_delta(b, side, price_ticks);
    }

    // ----- GTD expiry ---------------------------------------------------------------------

    /// "Commands and time": every GTD order with `expire_ts_ns <= ts_ns` expires before the
    /// command, in `(expire_ts_ns, order_id)` order, each followed by its level's `BookDelta`.
    fn expire_gtd(&mut self, ts_ns: u64) {
        let due: Vec<(u64, OrderId)> = self
            .gtd_orders()
            .into_iter()
            .filter(|(expire_ts_ns, _)| *expire_ts_ns <= ts_ns)
            .collect();
        for (_, id) in due {
            let Some((b, side, li, pos)) = self.locate(id.0) else {
                unreachable!("reference model: GTD order {id} listed but not in a book");
            };
            let order = self.take_order(b, side, li, pos);
            self.out.push(order.expired(ExpireReason::GoodTillDate));
            self.emit_delta(b, side, order.price_ticks);
        }
    }

    // ----- new orders ---------------------------------------------------------------------

    fn reject_new(&mut self, o: &NewOrder, code: RejectCode) {
        self.out.push(Event::Rejected(Rejected {
            request: RequestKind::NewOrder,
            code,
            instrument: o.instrument,
            account: o.account,
            client_order_id: o.client_order_id,
            order_id: OrderId(0),
        }));
    }

    /// "New order: checks, in this order". Returns the taker's limit: the limit price, or the
    /// band edge for a market order.
    fn check_new(&self, ts_ns: u64, o: &NewOrder) -> Result<i64, RejectCode> {
        let b = o.instrument.0 as usize;
        // 1. instrument
        let Some(spec) = self.specs.get(b) else {
            return Err(RejectCode::UnknownInstrument);
        };
        // 2. status
        if self.books[b].status == InstrumentStatus::Halted {
            return Err(RejectCode::InstrumentHalted);
        }
        // 3. order type combinations
        let is_market = o.order_type == OrderType::Market;
        let immediate = matches!(o.tif, TimeInForce::Ioc | TimeInForce::Fok);
        let post_only_cannot_rest = o.post_only && (is_market || immediate);
        let market_not_immediate = is_market && !immediate;
        if post_only_cannot_rest || market_not_immediate {
            return Err(RejectCode::InvalidOrderType);
        }
        // 4. quantity
        if o.qty.0 == 0 {
            return Err(RejectCode::QtyZero);
        }
        if o.qty.0 % spec.lot_size.0 != 0 {
            return Err(RejectCode::QtyOffLot);
        }
        if o.qty.0 > spec.qty_max.0 {
            return Err(RejectCode::QtyAboveMax);
        }
        // 5. expiry
        let expiry_ok = if o.tif == TimeInForce::Gtd {
            o.expire_ts_ns > ts_ns
        } else {
            o.expire_ts_ns == 0
        };
        if !expiry_ok {
            return Err(RejectCode::InvalidExpiry);
        }
        // 6. limit price
        let (band_lo, band_hi) = self.band(b);
        let limit_ticks = if is_market {
            match o.side {
                Side::Buy => band_hi,
                Side::Sell => band_lo,
            }
        } else {
            let price_ticks = o.price.0;
            if price_ticks <= 0 {
                return Err(RejectCode::PriceNotPositive);
            }
            if price_ticks % spec.tick_size.0 != 0 {
                return Err(RejectCode::PriceOffTick);
            }
            if price_ticks < band_lo || price_ticks > band_hi {
                return Err(RejectCode::PriceOutsideBand);
            }
            price_ticks
        };
        // 7. notional, at the band edge for a market order
        if notional(limit_ticks, o.qty.0) > spec.notional_max {
            return Err(RejectCode::NotionalAboveMax);
        }
        // 8. post-only (only limit orders get here with post_only set)
        if o.post_only {
            let opposite_best = self.best_price(b, o.side.opposite());
            let would_take = match o.side {
                Side::Buy => opposite_best.is_some_and(|ask| limit_ticks >= ask),
                Side::Sell => opposite_best.is_some_and(|bid| limit_ticks <= bid),
            };
            if would_take {
                return Err(RejectCode::PostOnlyWouldTake);
            }
        }
        // 9. capacity, assuming the order will rest
        if self.count_orders() >= self.limits.orders_max as usize {
            return Err(RejectCode::OrderPoolFull);
        }
        if o.tif.rests()
            && !self.has_level(b, o.side, limit_ticks)
            && self.level_capacity_exhausted(b, o.side)
        {
            return Err(RejectCode::LevelPoolFull);
        }
        if o.tif == TimeInForce::Gtd && self.count_gtd() >= self.limits.gtd_orders_max as usize {
            return Err(RejectCode::ExpiryQueueFull);
        }
        Ok(limit_ticks)
    }

    /// "New order: execution".
    fn new_order(&mut self, seq: u64, ts_ns: u64, o: &NewOrder) {
        let limit_ticks = match self.check_new(ts_ns, o) {
            Ok(limit_ticks) => limit_ticks,
            Err(code) => return self.reject_new(o, code),
        };
        let b = o.instrument.0 as usize;
        self.out.push(Event::Accepted(Accepted {
            order_id: OrderId(seq),
            instrument: o.instrument,
            account: o.account,
            client_order_id: o.client_order_id,
            side: o.side,
            order_type: o.order_type,
            tif: o.tif,
            price: PriceTicks(limit_ticks),
            qty: o.qty,
            expire_ts_ns: o.expire_ts_ns,
            post_only: o.post_only,
        }));
        let mut taker = Taker {
            order_id: seq,
            instrument: o.instrument,
            account: o.account,
            client_order_id: o.client_order_id,
            side: o.side,
            price_ticks: limit_ticks,
            qty_remaining: o.qty.0,
            qty_filled: 0,
            stp_mode: o.stp_mode,
            stp_group: o.stp_group,
            stp_stopped: false,
        };
        if o.tif == TimeInForce::Fok && self.fok_available(b, &taker) < o.qty.0 {
            self.out
                .push(taker.cancelled(o.qty.0, CancelReason::FokUnfillable));
            return;
        }
        let last_trade = self.match_taker(b, &mut taker);
        if taker.qty_remaining > 0 {
            if taker.stp_stopped {
                self.out
                    .push(taker.cancelled(taker.qty_remaining, CancelReason::SelfTradeAggressor));
            } else if o.order_type == OrderType::Market {
                // Whatever still lies on the other side is beyond the band edge, by the loop's
                // exit condition; the document phrases it as a condition, so test it as one.
                let beyond_band = self.books[b]
                    .side(o.side.opposite())
                    .iter()
                    .any(|l| !crosses(o.side, l.price_ticks, limit_ticks));
                let reason = if beyond_band {
                    CancelReason::MarketPriceBand
                } else {
                    CancelReason::MarketNoLiquidity
                };
                self.out.push(taker.cancelled(taker.qty_remaining, reason));
            } else if o.tif == TimeInForce::Ioc {
                self.out
                    .push(taker.cancelled(taker.qty_remaining, CancelReason::IocRemainder));
            } else {
                assert!(
                    o.tif.rests(),
                    "reference model: a FOK order {seq} passed its check but did not fill"
                );
                let order = RefOrder {
                    id: seq,
                    instrument: o.instrument,
                    account: o.account,
                    client_order_id: o.client_order_id,
                    side: o.side,
                    price_ticks: limit_ticks,
                    qty_open: taker.qty_remaining,
                    qty_filled: taker.qty_filled,
                    tif: o.tif,
                    expire_ts_ns: o.expire_ts_ns,
                    post_only: o.post_only,
                    stp_mode: o.stp_mode,
                    stp_group: o.stp_group,
                };
                self.rest(b, order);
            }
        }
        if let Some(price_ticks) = last_trade {
            self.books[b].last_trade_ticks = Some(price_ticks);
        }
    }

    fn is_self_trade(taker: &Taker, maker: &RefOrder) -> bool {
        taker.stp_mode != StpMode::Off
            && stp_key(taker.stp_group, taker.account) == stp_key(maker.stp_group, maker.account)
    }

    /// "New order: execution", step 2: the quantity a FOK order could fill, walking the
    /// opposite side in priority order; self trades are skipped (`CancelResting`) or end the
    /// walk (the other modes).
    fn fok_available(&self, b: usize, taker: &Taker) -> u64 {
        let mut available = 0u64;
        for level in self.books[b].side(taker.side.opposite()) {
            if !crosses(taker.side, level.price_ticks, taker.price_ticks) {
                break;
            }
            for maker in &level.orders {
                if Self::is_self_trade(taker, maker) {
                    if taker.stp_mode == StpMode::CancelResting {
                        continue;
                    }
                    return available;
                }
                available = available.saturating_add(maker.qty_open);
            }
        }
        available
    }

    /// "New order: execution", step 3, with "Self-trade prevention". Returns the price of the
    /// last trade, if any.
    fn match_taker(&mut self, b: usize, t: &mut Taker) -> Option<i64> {
        let maker_side = t.side.opposite();
        let mut last_trade = None;
        while t.qty_remaining > 0 && !t.stp_stopped {
            let Some(level_price) = self.best_price(b, maker_side) else {
                break;
            };
            if !crosses(t.side, level_price, t.price_ticks) {
                break;
            }
            let mut changed = false;
            let mut pos = 0;
            while t.qty_remaining > 0 && !t.stp_stopped {
                let level = &mut self.books[b].side_mut(maker_side)[0];
                let Some(maker) = level.orders.get_mut(pos) else {
                    break;
                };
                if !Self::is_self_trade(t, maker) {
                    let qty = maker.qty_open.min(t.qty_remaining);
                    maker.qty_open -= qty;
                    maker.qty_filled += qty;
                    t.qty_remaining -= qty;
                    t.qty_filled += qty;
                    self.out.push(Event::Trade(Trade {
                        trade_id: TradeId(self.next_trade_id),
                        instrument: t.instrument,
                        price: PriceTicks(level_price),
                        qty: QtyLots(qty),
                        aggressor_side: t.side,
                        maker_order_id: OrderId(maker.id),
                        maker_account: maker.account,
                        maker_client_order_id: maker.client_order_id,
                        maker_qty_open: QtyLots(maker.qty_open),
                        taker_order_id: OrderId(t.order_id),
                        taker_account: t.account,
                        taker_client_order_id: t.client_order_id,
                        taker_qty_open: QtyLots(t.qty_remaining),
                    }));
                    self.next_trade_id += 1;
                    last_trade = Some(level_price);
                    changed = true;
                    if maker.qty_open == 0 {
                        level.orders.remove(pos);
                    } else {
                        pos += 1;
                    }
                    continue;
                }
                match t.stp_mode {
                    StpMode::CancelResting | StpMode::CancelBoth => {
                        let maker = level.orders.remove(pos);
                        self.out
                            .push(maker.cancelled(maker.qty_open, CancelReason::SelfTradeResting));
                        changed = true;
                        t.stp_stopped = t.stp_mode == StpMode::CancelBoth;
                    }
                    StpMode::CancelAggressor => t.stp_stopped = true,
                    StpMode::DecrementCancel => {
                        let qty = maker.qty_open.min(t.qty_remaining);
                        maker.qty_open -= qty;
                        t.qty_remaining -= qty;
                        changed = true;
                        if maker.qty_open == 0 {
                            let maker = level.orders.remove(pos);
                            self.out
                                .push(maker.cancelled(qty, CancelReason::SelfTradeDecrement));
                        } else {
                            self.out.push(Event::Restated(Restated {
                                order_id: OrderId(maker.id),
                                instrument: maker.instrument,
                                account: maker.account,
                                client_order_id: maker.client_order_id,
                                side: maker.side,
                                price: PriceTicks(maker.price_ticks),
                                qty_reduced: QtyLots(qty),
                                qty_open: QtyLots(maker.qty_open),
                            }));
                            pos += 1;
                        }
                        if t.qty_remaining == 0 {
                            self.out
                                .push(t.cancelled(qty, CancelReason::SelfTradeDecrement));
                        } else {
                            self.out.push(Event::Restated(Restated {
                                order_id: OrderId(t.order_id),
                                instrument: t.instrument,
                                account: t.account,
                                client_order_id: t.client_order_id,
                                side: t.side,
                                price: PriceTicks(t.price_ticks),
                                qty_reduced: QtyLots(qty),
                                qty_open: QtyLots(t.qty_remaining),
                            }));
                        }
                    }
                    StpMode::Off => unreachable!("Off never counts as a self trade"),
                }
            }
            if changed {
                self.emit_delta(b, maker_side, level_price);
            } else {
                // Nothing changed here, so the taker stopped at this level (CancelAggressor on
                // its first maker); the level keeps its orders and matching ends.
                break;
            }
        }
        last_trade
    }

    // ----- cancel and replace -------------------------------------------------------------

    /// The order `id` if it is live and owned by `account` ("Cancel": other accounts' orders
    /// look unknown).
    fn owned(&self, id: OrderId, account: AccountId) -> Option<(usize, Side, usize, usize)> {
        let (b, side, li, pos) = self.locate(id.0)?;
        (self.books[b].side(side)[li].orders[pos].account == account).then_some((b, side, li, pos))
    }

    /// "Cancel".
    fn cancel(&mut self, c: &Cancel) {
        let Some((b, side, li, pos)) = self.owned(c.order_id, c.account) else {
            self.out.push(Event::Rejected(Rejected {
                request: RequestKind::Cancel,
                code: RejectCode::UnknownOrder,
                instrument: InstrumentId(0),
                account: c.account,
                client_order_id: c.client_order_id,
                order_id: c.order_id,
            }));
            return;
        };
        let order = self.take_order(b, side, li, pos);
        self.out
            .push(order.cancelled(order.qty_open, CancelReason::Requested));
        self.emit_delta(b, side, order.price_ticks);
    }

    /// "Replace": the checks, in order. Returns the new open quantity.
    fn check_replace(&self, b: usize, order: &RefOrder, r: &Replace) -> Result<u64, RejectCode> {
        let spec = &self.specs[b];
        if self.books[b].status == InstrumentStatus::Halted {
            return Err(RejectCode::InstrumentHalted);
        }
        if r.qty.0 == 0 {
            return Err(RejectCode::QtyZero);
        }
        if r.qty.0 % spec.lot_size.0 != 0 {
            return Err(RejectCode::QtyOffLot);
        }
        if r.qty.0 > spec.qty_max.0 {
            return Err(RejectCode::QtyAboveMax);
        }
        if r.price.0 <= 0 {
            return Err(RejectCode::PriceNotPositive);
        }
        if r.price.0 % spec.tick_size.0 != 0 {
            return Err(RejectCode::PriceOffTick);
        }
        let price_changed = r.price.0 != order.price_ticks;
        let (band_lo, band_hi) = self.band(b);
        if price_changed && (r.price.0 < band_lo || r.price.0 > band_hi) {
            return Err(RejectCode::PriceOutsideBand);
        }
        if notional(r.price.0, r.qty.0) > spec.notional_max {
            return Err(RejectCode::NotionalAboveMax);
        }
        if r.qty.0 <= order.qty_filled {
            return Err(RejectCode::ReplaceQtyNotAboveFilled);
        }
        let new_open = r.qty.0 - order.qty_filled;
        if !price_changed && new_open == order.qty_open {
            return Err(RejectCode::ReplaceNoChange);
        }
        if order.post_only {
            let opposite_best = self.best_price(b, order.side.opposite());
            let would_take = match order.side {
                Side::Buy => opposite_best.is_some_and(|ask| r.price.0 >= ask),
                Side::Sell => opposite_best.is_some_and(|bid| r.price.0 <= bid),
            };
            if would_take {
                return Err(RejectCode::PostOnlyWouldTake);
            }
        }
        if price_changed && !self.has_level(b, order.side, r.price.0) {
            let old_level_has_others = self.books[b]
                .side(order.side)
                .iter()
                .find(|l| l.price_ticks == order.price_ticks)
                .is_some_and(|l| l.orders.len() > 1);
            if old_level_has_others && self.level_capacity_exhausted(b, order.side) {
                return Err(RejectCode::LevelPoolFull);
            }
        }
        Ok(new_open)
    }

    /// "Replace".
    fn replace(&mut self, r: &Replace) {
        let found = self.owned(r.order_id, r.account);
        let reject = |model: &mut Self, instrument: u32, code: RejectCode| {
            model.out.push(Event::Rejected(Rejected {
                request: RequestKind::Replace,
                code,
                instrument: InstrumentId(instrument),
                account: r.account,
                client_order_id: r.client_order_id,
                order_id: r.order_id,
            }));
        };
        let Some((b, side, li, pos)) = found else {
            return reject(self, 0, RejectCode::UnknownOrder);
        };
        let order = self.books[b].side(side)[li].orders[pos].clone();
        let new_open = match self.check_replace(b, &order, r) {
            Ok(new_open) => new_open,
            Err(code) => return reject(self, b as u32, code),
        };
        let price_changed = r.price.0 != order.price_ticks;
        let mut replaced = Replaced {
            order_id: r.order_id,
            instrument: order.instrument,
            account: order.account,
            client_order_id: r.client_order_id,
            orig_client_order_id: order.client_order_id,
            side,
            price_old: PriceTicks(order.price_ticks),
            price: r.price,
            qty_open_old: QtyLots(order.qty_open),
            qty_open: QtyLots(new_open),
            qty_filled: QtyLots(order.qty_filled),
            priority_kept: true,
        };
        if !price_changed && new_open < order.qty_open {
            let resting = &mut self.books[b].side_mut(side)[li].orders[pos];
            resting.qty_open = new_open;
            resting.client_order_id = r.client_order_id;
            self.out.push(Event::Replaced(replaced));
            self.emit_delta(b, side, order.price_ticks);
            return;
        }
        replaced.priority_kept = false;
        let mut order = self.take_order(b, side, li, pos);
        self.out.push(Event::Replaced(replaced));
        self.emit_delta(b, side, replaced.price_old.0);
        let mut taker = Taker {
            order_id: order.id,
            instrument: order.instrument,
            account: order.account,
            client_order_id: r.client_order_id,
            side,
            price_ticks: r.price.0,
            qty_remaining: new_open,
            qty_filled: order.qty_filled,
            stp_mode: order.stp_mode,
            stp_group: order.stp_group,
            stp_stopped: false,
        };
        let last_trade = self.match_taker(b, &mut taker);
        if taker.qty_remaining > 0 {
            if taker.stp_stopped {
                // The document's replace section only says "rests or is gone"; the STP section
                // says the taker's rest is cancelled, which is what is done here.
                self.out
                    .push(taker.cancelled(taker.qty_remaining, CancelReason::SelfTradeAggressor));
            } else {
                order.price_ticks = r.price.0;
                order.qty_open = taker.qty_remaining;
                order.qty_filled = taker.qty_filled;
                order.client_order_id = r.client_order_id;
                self.rest(b, order);
            }
        }
        if let Some(price_ticks) = last_trade {
            self.books[b].last_trade_ticks = Some(price_ticks);
        }
    }

    // ----- sweeps -------------------------------------------------------------------------

    /// Removes the orders of book `b` that `select` picks, bids then asks, best level first, in
    /// time priority, emitting `event_for` for each and one `BookDelta` per level that changed.
    fn sweep(
        &mut self,
        b: usize,
        select: impl Fn(&RefOrder) -> bool,
        event_for: impl Fn(&RefOrder) -> Event,
    ) -> u32 {
        let mut count = 0;
        for side in [Side::Buy, Side::Sell] {
            let prices: Vec<i64> = self.books[b]
                .side(side)
                .iter()
                .map(|l| l.price_ticks)
                .collect();
            for price_ticks in prices {
                let level = self.books[b]
                    .side_mut(side)
                    .iter_mut()
                    .find(|l| l.price_ticks == price_ticks)
                    .expect("reference model: a level listed a moment ago is still there");
                let (removed, kept): (Vec<RefOrder>, Vec<RefOrder>) =
                    std::mem::take(&mut level.orders)
                        .into_iter()
                        .partition(|o| select(o));
                level.orders = kept;
                if removed.is_empty() {
                    continue;
                }
                count += removed.len() as u32;
                self.out.extend(removed.iter().map(&event_for));
                self.emit_delta(b, side, price_ticks);
            }
        }
        count
    }

    /// "Mass cancel".
    fn mass_cancel(&mut self, m: &MassCancel) {
        let books: Vec<usize> = match m.instrument {
            Some(i) if i.0 as usize >= self.books.len() => {
                self.out.push(Event::Rejected(Rejected {
                    request: RequestKind::MassCancel,
                    code: RejectCode::UnknownInstrument,
                    instrument: i,
                    account: m.account.unwrap_or(AccountId(0)),
                    client_order_id: m.client_order_id,
                    order_id: OrderId(0),
                }));
                return;
            }
            Some(i) => vec![i.0 as usize],
            None => (0..self.books.len()).collect(),
        };
        let mut count = 0;
        for b in books {
            count += self.sweep(
                b,
                |o| m.account.is_none_or(|a| a == o.account),
                |o| o.cancelled(o.qty_open, CancelReason::MassCancel),
            );
        }
        self.out.push(Event::MassCancelled(MassCancelled {
            instrument: m.instrument,
            account: m.account,
            client_order_id: m.client_order_id,
            count,
        }));
    }

    /// "Halt, resume, end of day, tick": every DAY order expires.
    fn end_of_day(&mut self) {
        for b in 0..self.books.len() {
            self.sweep(
                b,
                |o| o.tif == TimeInForce::Day,
                |o| o.expired(ExpireReason::EndOfDay),
            );
        }
    }

    fn set_status(&mut self, s: &SetStatus) {
        let Some(book) = self.books.get_mut(s.instrument.0 as usize) else {
            self.out.push(Event::Rejected(Rejected {
                request: RequestKind::SetStatus,
                code: RejectCode::UnknownInstrument,
                instrument: s.instrument,
                account: AccountId(0),
                client_order_id: ClientOrderId(0),
                order_id: OrderId(0),
            }));
            return;
        };
        book.status = s.status;
        self.out.push(Event::StatusChanged(StatusChanged {
            instrument: s.instrument,
            status: s.status,
        }));
    }
}
