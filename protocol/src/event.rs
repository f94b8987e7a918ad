//! Events: everything the engine says, in the order it happened.
//!
//! A command produces zero or more events. For a new order the order is: `Accepted` (or
//! `Rejected`), then per maker touched `Trade` (and STP `Cancelled`/`Restated`), a `BookDelta`
//! for each level whose totals changed, and finally `Rested` + `BookDelta` if the rest of the
//! order joins the book, or `Cancelled` if it does not. Market data can rebuild L1/L2 from
//! `BookDelta` alone and L3 from `Rested`, `Trade`, `Cancelled`, `Expired`, `Restated` and
//! `Replaced`, without ever looking inside the engine.

use crate::codes::{CancelReason, ExpireReason, RejectCode, RequestKind};
use crate::types::{
    AccountId, ClientOrderId, InstrumentId, InstrumentStatus, OrderId, OrderType, PriceTicks,
    QtyLots, Side, TimeInForce, TradeId,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Accepted(Accepted),
    Rejected(Rejected),
    Trade(Trade),
    Rested(Rested),
    Cancelled(Cancelled),
    Restated(Restated),
    Replaced(Replaced),
    Expired(Expired),
    BookDelta(BookDelta),
    StatusChanged(StatusChanged),
    MassCancelled(MassCancelled),
    BookChecked(BookChecked),
}

/// A new order passed every check and got its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub client_order_id: ClientOrderId,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    /// The limit price; for a market order, the band edge it may trade up to.
    pub price: PriceTicks,
    pub qty: QtyLots,
    pub expire_ts_ns: u64,
    pub post_only: bool,
}

/// A request had no effect. `order_id` is the target of a cancel or replace, else 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub request: RequestKind,
    pub code: RejectCode,
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub client_order_id: ClientOrderId,
    pub order_id: OrderId,
}

/// One execution between a resting (maker) and an incoming (taker) order, at the maker's
/// price. `*_qty_open` is what each side has left after this trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    pub trade_id: TradeId,
    pub instrument: InstrumentId,
    pub price: PriceTicks,
    pub qty: QtyLots,
    pub aggressor_side: Side,
    pub maker_order_id: OrderId,
    pub maker_account: AccountId,
    pub maker_client_order_id: ClientOrderId,
    pub maker_qty_open: QtyLots,
    pub taker_order_id: OrderId,
    pub taker_account: AccountId,
    pub taker_client_order_id: ClientOrderId,
    pub taker_qty_open: QtyLots,
}

/// The order (or its rest after immediate fills) joined the book at the back of its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rested {
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub side: Side,
    pub price: PriceTicks,
    pub qty_open: QtyLots,
}

/// The order is gone; `qty_cancelled` was its open quantity. For a rejected FOK or an IOC
/// remainder the order never rested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled {
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub client_order_id: ClientOrderId,
    pub side: Side,
    pub price: PriceTicks,
    pub qty_cancelled: QtyLots,
    pub reason: CancelReason,
}

/// The engine reduced an order's open quantity without a trade (self-trade prevention,
/// decrement and cancel). For a resting order it keeps its place; it is also emitted for the
/// incoming order, whose remaining quantity shrinks while it is still being matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restated {
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub client_order_id: ClientOrderId,
    pub side: Side,
    pub price: PriceTicks,
    pub qty_reduced: QtyLots,
    pub qty_open: QtyLots,
}

/// A replace took effect. If `priority_kept` the order stayed in place with less quantity;
/// otherwise it left its old level and is followed by any trades it makes at the new price and
/// then `Rested` (or nothing, if it filled completely).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replaced {
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub client_order_id: ClientOrderId,
    pub orig_client_order_id: ClientOrderId,
    pub side: Side,
    pub price_old: PriceTicks,
    pub price: PriceTicks,
    pub qty_open_old: QtyLots,
    pub qty_open: QtyLots,
    pub qty_filled: QtyLots,
    pub priority_kept: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub client_order_id: ClientOrderId,
    pub side: Side,
    pub price: PriceTicks,
    pub qty_expired: QtyLots,
    pub reason: ExpireReason,
}

/// The new totals of one price level; `order_count == 0` means the level is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookDelta {
    pub instrument: InstrumentId,
    pub side: Side,
    pub price: PriceTicks,
    pub qty_total: QtyLots,
    pub order_count: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusChanged {
    pub instrument: InstrumentId,
    pub status: InstrumentStatus,
}

/// A mass cancel finished; `Cancelled` events for each order came before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MassCancelled {
    pub instrument: Option<InstrumentId>,
    pub account: Option<AccountId>,
    pub client_order_id: ClientOrderId,
    pub count: u32,
}

/// The answer to `Command::Checkpoint`: the instrument's [`crate::BookHasher`] fingerprint and
/// sizes at this point of the event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookChecked {
    pub instrument: InstrumentId,
    pub book_hash: u64,
    pub orders: u32,
    pub bid_levels: u32,
    pub ask_levels: u32,
}

/// Receives the engine's events. Implementations on the hot path must not allocate or block:
/// they copy the event into a preallocated ring slot or fold it into counters.
pub trait EventSink {
    fn event(&mut self, event: &Event);
}

/// Drops every event; for benchmarks of the matching itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    #[inline(always)]
    fn event(&mut self, _event: &Event) {}
}

/// Collects events into a vector; for tests and tools, not for the hot path (it may grow).
#[derive(Clone, Debug, Default)]
pub struct VecSink {
    pub events: Vec<Event>,
}

impl EventSink for VecSink {
    fn event(&mut self, event: &Event) {
        self.events.push(*event);
    }
}

impl VecSink {
    /// Returns the collected events and leaves the sink empty.
    pub fn take(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }
}

impl<S: EventSink + ?Sized> EventSink for &mut S {
    #[inline(always)]
    fn event(&mut self, event: &Event) {
        (**self).event(event)
    }
}
