//! The gateway's order manager: between decoded FIX requests and the engine.
//!
//! A pure library: no I/O, no clock (time arrives as `now_ns` and `ts_ns` arguments), and no
//! allocation after [`OrderManager::new`]. Every table is preallocated and bounded; when one
//! is full the request is refused with a named [`GatewayReject`], the table never grows.
//!
//! Flow. A request ([`NewOrderRequest`], [`CancelRequest`], [`ReplaceRequest`],
//! [`MassCancelRequest`]) passes the risk checks, is registered as *pending* under the
//! caller's `producer_ref`, and comes back as the engine [`Command`] to publish. Every output
//! frame (of every producer) then goes to [`OrderManager::on_output`], which turns the events
//! about this gateway's orders into [`Report`]s for the FIX layer; the END frame of one of
//! this gateway's commands closes its pending entry. Orders are known by the engine's order
//! id once accepted, so events caused by other producers (another gateway's taker filling our
//! maker, an operator's mass cancel, GTD expiry, end of day) are reported too.
//!
//! The engine's `client_order_id` of every command this gateway sends is the command's
//! `producer_ref`, so a journal record leads back to the FIX request that caused it; FIX
//! ClOrdIDs stay in the gateway.
//!
//! Accounting. Per account the manager keeps the number of open orders and the open
//! notional. An order counts from the moment it is sent (not only once accepted), so that a
//! burst of orders cannot pass the limits before the first acknowledgement arrives. Its
//! notional is price × open quantity in the common notional scale of
//! [`RiskConfig::notional_decimals`], at its limit price or, for a market order, at its
//! protection price (the band edge). A replace in flight that raises an order's notional
//! reserves the increase until the engine answers. Fills, cancels, expiries, restatements and
//! replaces adjust both numbers; [`OrderManager::audit`] recomputes them from the tables.
//!
//! Reports follow the events in order. A trade between two orders of this gateway (a self
//! match across accounts, or with self-trade prevention off) gives the maker's report, then
//! the taker's, told apart by their [`ExecId`]s.
//!
//! ClOrdIDs: a request's ClOrdID must differ from the ClOrdIDs of the session's live orders
//! and requests in flight. Uniqueness over the whole trading day (including finished orders)
//! is the session store's business, not this table's.

use core::fmt;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};

use ferrox_engine::InstrumentSpec;
use ferrox_protocol::codes::{CancelReason, ExpireReason};
use ferrox_protocol::event::{Cancelled, Replaced, Restated, Trade};
use ferrox_protocol::{
    AccountId, Cancel, ClientOrderId, Command, Event, InstrumentId, InstrumentStatus, MassCancel,
    NewOrder, OrderId, OrderType, PriceTicks, QtyLots, Replace, Side, StpGroup, StpMode,
    TimeInForce, TradeId,
};

use crate::risk::{engine_price_ok, engine_qty_ok, write_decimal, BandState};
pub use crate::risk::{GatewayReject, Reject, RiskConfig, Text};

// ----- identifiers ----------------------------------------------------------------------

/// A FIX session of this gateway, `0..sessions_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u16);

/// A live order as the gateway's stored execution reports describe it; see
/// [`OrderManager::restore_live_order`].
#[derive(Clone, Copy, Debug)]
pub struct RestoredOrder {
    pub session: SessionId,
    pub cl_ord_id: ClOrdId,
    pub order_id: OrderId,
    pub account: AccountId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    pub expire_ts_ns: u64,
    pub price: PriceTicks,
    pub order_qty: QtyLots,
    pub cum_qty: QtyLots,
    pub leaves_qty: QtyLots,
    /// Sum of price × quantity over the fills, in price units × quantity units.
    pub avg_px_num: i128,
}

/// A FIX ClOrdID, at most 64 bytes, stored inline (no heap).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClOrdId {
    len: u8,
    /// Bytes past `len` are always zero, so the derived equality and hash are those of the
    /// text.
    bytes: [u8; ClOrdId::MAX_LEN],
}

impl ClOrdId {
    pub const MAX_LEN: usize = 64;

    /// Placeholder in free table slots; never a valid ClOrdID.
    const EMPTY: ClOrdId = ClOrdId {
        len: 0,
        bytes: [0; ClOrdId::MAX_LEN],
    };

    /// `None` if `id` is empty or longer than 64 bytes.
    pub fn new(id: &[u8]) -> Option<ClOrdId> {
        if id.is_empty() || id.len() > ClOrdId::MAX_LEN {
            return None;
        }
        let mut c = ClOrdId::EMPTY;
        c.bytes[..id.len()].copy_from_slice(id);
        c.len = id.len() as u8;
        Some(c)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for ClOrdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClOrdId(\"{}\")", self.as_bytes().escape_ascii())
    }
}

impl fmt::Display for ClOrdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_bytes().escape_ascii())
    }
}

// ----- requests -------------------------------------------------------------------------

/// NewOrderSingle (D), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOrderRequest {
    pub session: SessionId,
    pub cl_ord_id: ClOrdId,
    pub account: AccountId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub order_type: OrderType,
    /// `None` for a market order (a price given with a market order is ignored).
    pub price: Option<PriceTicks>,
    pub qty: QtyLots,
    /// As the client sent it. A market DAY order is sent to the engine as IOC (the engine
    /// requires market orders to be immediate); reports keep DAY.
    pub tif: TimeInForce,
    pub expire_ts_ns: u64,
    pub post_only: bool,
    pub stp_mode: StpMode,
}

/// OrderCancelRequest (F), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelRequest {
    pub session: SessionId,
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: ClOrdId,
    /// If given, it identifies the order (it must be an order of this session and account);
    /// else `orig_cl_ord_id` does.
    pub order_id: Option<OrderId>,
    pub account: AccountId,
}

/// OrderCancelReplaceRequest (G), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaceRequest {
    pub session: SessionId,
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: ClOrdId,
    pub order_id: Option<OrderId>,
    pub account: AccountId,
    /// `None` keeps the order's price.
    pub price: Option<PriceTicks>,
    /// The new total order quantity, filled part included (FIX semantics).
    pub qty: QtyLots,
}

/// OrderMassCancelRequest (q), decoded. It cancels the account's orders (of every session)
/// in one instrument or in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MassCancelRequest {
    pub session: SessionId,
    pub cl_ord_id: ClOrdId,
    pub account: AccountId,
    /// `None` for all instruments.
    pub instrument: Option<InstrumentId>,
    /// FIX MassCancelRequestType (530), echoed in the report.
    pub request_type: u8,
}

// ----- reports --------------------------------------------------------------------------

/// FIX ExecType (150) values this gateway produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecType {
    New,
    /// A fill, partial or complete (FIX 4.4 `F`); the OrdStatus tells which.
    Trade,
    Canceled,
    Replaced,
    Rejected,
    Expired,
    Restated,
    OrderStatus,
}

impl ExecType {
    /// The FIX tag 150 value.
    pub const fn fix_value(self) -> u8 {
        match self {
            ExecType::New => b'0',
            ExecType::Trade => b'F',
            ExecType::Canceled => b'4',
            ExecType::Replaced => b'5',
            ExecType::Rejected => b'8',
            ExecType::Expired => b'C',
            ExecType::Restated => b'D',
            ExecType::OrderStatus => b'I',
        }
    }
}

/// FIX OrdStatus (39) values this gateway produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrdStatus {
    New,
    PartiallyFilled,
    Filled,
    /// Also for an order cancelled after partial fills, as FIX 4.4 specifies.
    Canceled,
    Rejected,
    Expired,
}

impl OrdStatus {
    /// The FIX tag 39 value.
    pub const fn fix_value(self) -> u8 {
        match self {
            OrdStatus::New => b'0',
            OrdStatus::PartiallyFilled => b'1',
            OrdStatus::Filled => b'2',
            OrdStatus::Canceled => b'4',
            OrdStatus::Rejected => b'8',
            OrdStatus::Expired => b'C',
        }
    }
}

/// FIX ExecID (17) of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExecId {
    /// A report about an engine event of the command with sequence number `seq`: unique,
    /// and traceable to the journal. `index` is `2 × position + leg`, where `position` is
    /// the event's place among the command's events (from 0, counted past the output
    /// frame's 16-bit wrap) and `leg` tells apart two reports about one event: a trade
    /// between two orders of this gateway gives the taker's report leg 0 and the maker's
    /// leg 1. Every other report is leg 0, so its index is twice the event's position.
    Engine { seq: u64, index: u32 },
    /// A report made by the gateway alone (a reject before sequencing), numbered by a
    /// counter the caller keeps. Counter 0 is reserved for answers to status requests, which
    /// FIX does not require to be unique.
    Gateway { counter: u64 },
}

impl fmt::Display for ExecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecId::Engine { seq, index } => write!(f, "{seq}-{index}"),
            ExecId::Gateway { counter } => write!(f, "G{counter}"),
        }
    }
}

/// An ExecutionReport (8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecReport {
    pub session: SessionId,
    pub exec_id: ExecId,
    pub exec_type: ExecType,
    pub ord_status: OrdStatus,
    /// `None` for an order the engine never accepted.
    pub order_id: Option<OrderId>,
    pub cl_ord_id: ClOrdId,
    /// For a requested cancel and a replace: the order's ClOrdID before the request.
    pub orig_cl_ord_id: Option<ClOrdId>,
    pub account: AccountId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    /// The limit price; `None` for market orders.
    pub price: Option<PriceTicks>,
    /// Total order quantity: the last accepted replace's, reduced by self-trade
    /// decrements, so that `cum_qty + leaves_qty == order_qty` while the order is open.
    pub order_qty: QtyLots,
    pub last_px: Option<PriceTicks>,
    pub last_qty: Option<QtyLots>,
    /// The engine's trade id of a fill (FIX TrdMatchID).
    pub trade_id: Option<TradeId>,
    pub cum_qty: QtyLots,
    pub leaves_qty: QtyLots,
    /// Sum of price × quantity over the fills, in ticks × lots; AvgPx is this / `cum_qty`.
    pub avg_px_num: i128,
    pub expire_ts_ns: u64,
    /// The engine command's time as passed to `on_output`, or `now_ns` for gateway rejects.
    pub transact_ts_ns: u64,
    /// FIX OrdRejReason (103), for rejects.
    pub ord_rej_reason: Option<u32>,
    pub reject: Option<Reject>,
    /// FIX ExecRestatementReason (378): 5 (partial decline of OrderQty) for self-trade
    /// prevention's decrement, the only restatement the engine makes.
    pub restatement_reason: Option<u32>,
    pub cancel_reason: Option<CancelReason>,
    /// FIX Text (58): why, for rejects, cancels, expiries and restatements. For a reject
    /// this is the reject's own text; the detailed text of a gateway refusal (with the
    /// values involved) is [`OrderManager::reject_text`].
    pub text: Option<&'static str>,
    /// For fills: whether this order was the aggressor.
    pub aggressor: Option<bool>,
    pub post_only: bool,
}

/// Which request an OrderCancelReject answers (FIX 434).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CxlRejResponseTo {
    Cancel = 1,
    Replace = 2,
}

/// An OrderCancelReject (9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelReject {
    pub session: SessionId,
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: ClOrdId,
    pub order_id: Option<OrderId>,
    pub account: AccountId,
    /// The order's current status; its final one if it finished while the request was in
    /// flight; `Rejected` if the order is unknown.
    pub ord_status: OrdStatus,
    pub response_to: CxlRejResponseTo,
    /// FIX CxlRejReason (102): 0 too late (the order finished while the request was in
    /// flight), 1 unknown order, 2 broker option, 3 already pending, 6 duplicate ClOrdID,
    /// 99 other.
    pub cxl_rej_reason: u32,
    /// Why; its `text()` is the FIX Text.
    pub reject: Reject,
    pub transact_ts_ns: u64,
}

/// An OrderMassCancelReport (r).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MassCancelReport {
    pub session: SessionId,
    /// Unique id of the report, for the FIX layer to use as the mass cancel report's OrderID
    /// (37), which FIX defines as the id of the mass cancel request.
    pub exec_id: ExecId,
    pub cl_ord_id: ClOrdId,
    pub account: AccountId,
    pub instrument: Option<InstrumentId>,
    /// FIX MassCancelRequestType (530), echoed.
    pub request_type: u8,
    /// FIX MassCancelResponse (531): the request type if accepted; if rejected, 0 in the
    /// request type's encoding (`b'0'` when the request type is an ASCII digit, as the FIX
    /// layer passes it, else the number 0).
    pub response: u8,
    /// FIX MassCancelRejectReason (532) when rejected.
    pub reject_reason: Option<u32>,
    pub reject: Option<Reject>,
    /// Orders cancelled (FIX TotalAffectedOrders (533)), of every session of the account.
    pub affected: u32,
    pub transact_ts_ns: u64,
}

/// What the FIX layer sends to a session.
// Reports travel by value through a callback; boxing the large variant would allocate.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Exec(ExecReport),
    CancelReject(CancelReject),
    MassCancel(MassCancelReport),
}

impl Report {
    pub fn session(&self) -> SessionId {
        match self {
            Report::Exec(r) => r.session,
            Report::CancelReject(r) => r.session,
            Report::MassCancel(r) => r.session,
        }
    }
}

// ----- configuration --------------------------------------------------------------------

/// Table sizes. Values are clamped into range (at least 1; at most 2^30 orders and pending
/// requests, 65,536 sessions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderManagerConfig {
    /// Orders live or in flight at once.
    pub orders_max: usize,
    /// Requests waiting for their END frame at once.
    pub pending_max: usize,
    /// Sessions are `SessionId(0..sessions_max)`.
    pub sessions_max: usize,
}

impl Default for OrderManagerConfig {
    fn default() -> Self {
        OrderManagerConfig {
            orders_max: 1 << 16,
            pending_max: 1 << 12,
            sessions_max: 256,
        }
    }
}

const SLOTS_MAX: usize = 1 << 30;
/// Accounts that are not listed in the risk configuration but are switched off by the
/// kill switch while they have no orders: room reserved for them in the account table.
const KILL_SWITCHES_MAX: usize = 1024;

// ----- the index tables -----------------------------------------------------------------

const EMPTY: u32 = u32::MAX;
const NONE: u32 = u32::MAX;
/// Marks a pending-request slot (instead of an order slot) in the ClOrdID index.
const PENDING_BIT: u32 = 1 << 31;

/// An open-addressing hash index from a key to a `u32` handle (a slot of another table).
/// Keys are not stored: the caller compares through a closure reading its own slot, as the
/// engine's order index does, so an entry is 8 bytes (hash and handle). Linear probing, at
/// most half full by construction, and backward-shift deletion, so there are no tombstones
/// and the table never needs rebuilding or growing.
struct Index {
    slots: Vec<(u32, u32)>,
    mask: usize,
    len: usize,
    max: usize,
}

impl Index {
    fn new(max: usize) -> Index {
        let capacity = (max.max(4) * 2).next_power_of_two();
        Index {
            slots: vec![(0, EMPTY); capacity],
            mask: capacity - 1,
            len: 0,
            max,
        }
    }

    fn find(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut i = hash as usize & self.mask;
        loop {
            let (h, handle) = self.slots[i];
            if handle == EMPTY {
                return None;
            }
            if h == hash && eq(handle) {
                return Some(handle);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn insert(&mut self, hash: u32, handle: u32) {
        // Callers take a slot of the table the handle points into first, and those tables
        // hold at most `max` entries; this is a bug check, not a capacity check.
        assert!(self.len < self.max, "Invariant: index has room");
        let mut i = hash as usize & self.mask;
        while self.slots[i].1 != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = (hash, handle);
        self.len += 1;
    }

    /// Removes the entry `(hash, handle)`; false if there is none.
    fn remove(&mut self, hash: u32, handle: u32) -> bool {
        let mut i = hash as usize & self.mask;
        loop {
            let entry = self.slots[i];
            if entry.1 == EMPTY {
                return false;
            }
            if entry == (hash, handle) {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: move later entries of the probe run into the hole when the hole
        // lies on their way from their home slot.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let entry = self.slots[j];
            if entry.1 == EMPTY {
                break;
            }
            let home = entry.0 as usize & self.mask;
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.slots[hole] = entry;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.slots[hole] = (0, EMPTY);
        self.len -= 1;
        true
    }
}

// ----- table entries ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Free,
    /// Sent, no Accepted or Rejected yet; there is no order id.
    PendingNew,
    Live,
}

#[derive(Clone, Copy, Debug)]
struct OrderState {
    phase: Phase,
    order_id: OrderId,
    session: SessionId,
    account: AccountId,
    account_slot: u32,
    instrument: InstrumentId,
    side: Side,
    order_type: OrderType,
    tif: TimeInForce,
    post_only: bool,
    expire_ts_ns: u64,
    cl_ord_id: ClOrdId,
    /// The limit price; for a market order, its protection price (the band edge).
    price: i64,
    order_qty: u64,
    cum_qty: u64,
    leaves_qty: u64,
    avg_px_num: i128,
    /// Notional counted in the account's open notional for this order.
    exposure: i128,
    /// The pending cancel or replace of this order, or NONE.
    pending: u32,
    sess_prev: u32,
    sess_next: u32,
    last_ts_ns: u64,
}

impl OrderState {
    const FREE: OrderState = OrderState {
        phase: Phase::Free,
        order_id: OrderId(0),
        session: SessionId(0),
        account: AccountId(0),
        account_slot: NONE,
        instrument: InstrumentId(0),
        side: Side::Buy,
        order_type: OrderType::Limit,
        tif: TimeInForce::Gtc,
        post_only: false,
        expire_ts_ns: 0,
        cl_ord_id: ClOrdId::EMPTY,
        price: 0,
        order_qty: 0,
        cum_qty: 0,
        leaves_qty: 0,
        avg_px_num: 0,
        exposure: 0,
        pending: NONE,
        sess_prev: NONE,
        sess_next: NONE,
        last_ts_ns: 0,
    };

    /// The status of an open order. One not yet acknowledged counts as New: FIX's
    /// PendingNew is not among the statuses this gateway sends.
    fn open_status(&self) -> OrdStatus {
        if self.cum_qty > 0 {
            OrdStatus::PartiallyFilled
        } else {
            OrdStatus::New
        }
    }
}

/// The order a cancel or replace is about.
#[derive(Clone, Copy, Debug)]
struct Target {
    /// The order's slot, or NONE once it left the table or the request was answered.
    slot: u32,
    order_id: OrderId,
    orig_cl_ord_id: ClOrdId,
    /// The order's final status if it finished while the request was in flight.
    gone: Option<OrdStatus>,
}

#[derive(Clone, Copy, Debug)]
enum PendingKind {
    Free,
    /// The order slot, or NONE once the answer released it.
    New {
        slot: u32,
    },
    Cancel(Target),
    Replace {
        target: Target,
        /// The new total quantity.
        qty: u64,
        /// Notional reserved in the account until the engine answers.
        reserved: i128,
        /// The account holding the reservation (and a reference), or NONE once released.
        account_slot: u32,
    },
    MassCancel {
        request_type: u8,
        instrument: Option<InstrumentId>,
    },
    /// A command of the operator (the kill switch's mass cancel); no reports of its own.
    Operator,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    producer_ref: u64,
    session: SessionId,
    cl_ord_id: ClOrdId,
    account: AccountId,
    sent_ns: u64,
    /// The engine answered (Accepted, Rejected, Cancelled, Replaced or MassCancelled).
    resolved: bool,
    kind: PendingKind,
}

impl Pending {
    const FREE: Pending = Pending {
        producer_ref: 0,
        session: SessionId(0),
        cl_ord_id: ClOrdId::EMPTY,
        account: AccountId(0),
        sent_ns: 0,
        resolved: false,
        kind: PendingKind::Free,
    };
}

#[derive(Clone, Copy, Debug)]
struct AccountState {
    in_use: bool,
    account: AccountId,
    /// Row of limits in the risk configuration.
    row: u32,
    /// Listed accounts keep their entry for ever; others only while they have state.
    listed: bool,
    open_orders: u32,
    open_notional: i128,
    /// Pending replaces holding a reservation in this account.
    refs: u32,
    killed: bool,
}

impl AccountState {
    const FREE: AccountState = AccountState {
        in_use: false,
        account: AccountId(0),
        row: 0,
        listed: false,
        open_orders: 0,
        open_notional: 0,
        refs: 0,
        killed: false,
    };
}

/// Displays a count of 10^-decimals units as a decimal number.
struct Dec(i128, u32);

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0, self.1)
    }
}

fn cancel_text(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Requested => "cancelled on request",
        CancelReason::IocRemainder => "IOC remainder cancelled",
        CancelReason::FokUnfillable => "FOK order could not be filled completely",
        CancelReason::MarketNoLiquidity => "market order found no liquidity",
        CancelReason::MarketPriceBand => "market order stopped at the price band",
        CancelReason::SelfTradeResting => "cancelled by self-trade prevention (resting order)",
        CancelReason::SelfTradeAggressor => "cancelled by self-trade prevention (incoming order)",
        CancelReason::SelfTradeDecrement => "cancelled by self-trade prevention (decrement)",
        CancelReason::MassCancel => "cancelled by mass cancel",
    }
}

fn expire_text(reason: ExpireReason) -> &'static str {
    match reason {
        ExpireReason::EndOfDay => "DAY order expired at the end of the day",
        ExpireReason::GoodTillDate => "GTD order reached its expiry time",
    }
}

/// MassCancelResponse (531) "rejected" in the encoding of the request type: the FIX
/// character `b'0'` if the request type is a FIX character, else the number 0.
fn rejected_response(request_type: u8) -> u8 {
    if request_type.is_ascii_digit() {
        b'0'
    } else {
        0
    }
}

/// The report about order `o` with its current quantities; callers set the rest.
fn exec_report(
    o: &OrderState,
    exec_id: ExecId,
    exec_type: ExecType,
    ord_status: OrdStatus,
    ts_ns: u64,
) -> ExecReport {
    ExecReport {
        session: o.session,
        exec_id,
        exec_type,
        ord_status,
        order_id: (o.phase == Phase::Live).then_some(o.order_id),
        cl_ord_id: o.cl_ord_id,
        orig_cl_ord_id: None,
        account: o.account,
        instrument: o.instrument,
        side: o.side,
        order_type: o.order_type,
        tif: o.tif,
        price: (o.order_type == OrderType::Limit).then_some(PriceTicks(o.price)),
        order_qty: QtyLots(o.order_qty),
        last_px: None,
        last_qty: None,
        trade_id: None,
        cum_qty: QtyLots(o.cum_qty),
        leaves_qty: QtyLots(o.leaves_qty),
        avg_px_num: o.avg_px_num,
        expire_ts_ns: o.expire_ts_ns,
        transact_ts_ns: ts_ns,
        ord_rej_reason: None,
        reject: None,
        restatement_reason: None,
        cancel_reason: None,
        text: None,
        aggressor: None,
        post_only: o.post_only,
    }
}

// ----- the manager ------------------------------------------------------------------------

/// See the module documentation.
pub struct OrderManager {
    risk: RiskConfig,
    bands: Vec<BandState>,
    status: Vec<InstrumentStatus>,
    /// Largest notional of one order (common scale): `i128::MAX / (orders_max + pending_max
    /// + 1)`, so that no sum of exposures and reservations can overflow.
    notional_cap: i128,
    hasher: RandomState,

    orders: Vec<OrderState>,
    order_free: Vec<u32>,
    by_order_id: Index,
    /// (session, ClOrdID) of live orders, orders in flight and requests in flight.
    by_cl_ord_id: Index,

    pending: Vec<Pending>,
    pending_free: Vec<u32>,
    by_ref: Index,

    accounts: Vec<AccountState>,
    account_free: Vec<u32>,
    by_account: Index,
    killed: u32,
    /// Set when the kill switch was thrown for an account the table had no room for: every
    /// account without an entry is then blocked (failing closed) until all switches are off.
    kill_overflow: bool,

    /// Per session: (first, last) live order in order-id order, linked through the orders.
    sessions: Vec<(u32, u32)>,

    /// Position of the frame being processed within its command, past 16-bit wraps.
    frame_seq: u64,
    frame_wraps: u32,
    frame_last: u16,
    frame_started: bool,

    /// The detailed text of the last reject a request method returned.
    reject_text: Text,
}

impl OrderManager {
    /// Allocates every table. `instruments` are the engine's, indexed by `InstrumentId`;
    /// `risk` must have been converted for the same list.
    pub fn new(
        config: OrderManagerConfig,
        instruments: &[InstrumentSpec],
        risk: RiskConfig,
    ) -> OrderManager {
        assert_eq!(
            instruments.len(),
            risk.instrument_count(),
            "the risk configuration was converted for a different list of instruments"
        );
        let orders_max = config.orders_max.clamp(1, SLOTS_MAX);
        let pending_max = config.pending_max.clamp(1, SLOTS_MAX);
        let sessions_max = config.sessions_max.clamp(1, 1 << 16);
        // Unlisted accounts hold an entry only while they have an order, a replace in flight
        // or a kill switch, so this many entries can never all be taken by orders.
        let accounts_max = risk.listed.len() + orders_max + pending_max + KILL_SWITCHES_MAX;
        let bands = risk.instruments.iter().map(BandState::new).collect();
        let status = risk.instruments.iter().map(|i| i.status).collect();
        let notional_cap = i128::MAX / (orders_max as i128 + pending_max as i128 + 1);
        let mut m = OrderManager {
            bands,
            status,
            notional_cap,
            hasher: RandomState::new(),
            orders: vec![OrderState::FREE; orders_max],
            order_free: (0..orders_max as u32).rev().collect(),
            by_order_id: Index::new(orders_max),
            by_cl_ord_id: Index::new(orders_max + pending_max),
            pending: vec![Pending::FREE; pending_max],
            pending_free: (0..pending_max as u32).rev().collect(),
            by_ref: Index::new(pending_max),
            accounts: vec![AccountState::FREE; accounts_max],
            account_free: (0..accounts_max as u32).rev().collect(),
            by_account: Index::new(accounts_max),
            killed: 0,
            kill_overflow: false,
            sessions: vec![(NONE, NONE); sessions_max],
            frame_seq: 0,
            frame_wraps: 0,
            frame_last: 0,
            frame_started: false,
            reject_text: Text::EMPTY,
            risk,
        };
        for i in 0..m.risk.listed.len() {
            let (account, row) = m.risk.listed[i];
            let slot = m.new_account(account, row);
            m.accounts[slot as usize].listed = true;
        }
        m
    }

    // ----- lookups ------------------------------------------------------------------

    fn hash<T: Hash>(&self, key: T) -> u32 {
        // The high half of a keyed SipHash: ClOrdIDs are chosen by clients, so the hash
        // must not be predictable (no collisions on demand).
        (self.hasher.hash_one(key) >> 32) as u32
    }

    fn key_hash(&self, session: SessionId, cl: &ClOrdId) -> u32 {
        self.hash((session.0, cl.as_bytes()))
    }

    /// The handle (order slot, or pending slot with PENDING_BIT) of a session's ClOrdID.
    fn find_key(&self, session: SessionId, cl: &ClOrdId) -> Option<u32> {
        let (orders, pending) = (&self.orders, &self.pending);
        self.by_cl_ord_id
            .find(self.key_hash(session, cl), |handle| {
                if handle & PENDING_BIT != 0 {
                    let p = &pending[(handle & !PENDING_BIT) as usize];
                    p.session == session && p.cl_ord_id == *cl
                } else {
                    let o = &orders[handle as usize];
                    o.session == session && o.cl_ord_id == *cl
                }
            })
    }

    fn find_order(&self, order_id: OrderId) -> Option<u32> {
        let orders = &self.orders;
        self.by_order_id.find(self.hash(order_id.0), |slot| {
            orders[slot as usize].order_id == order_id
        })
    }

    fn find_pending(&self, producer_ref: u64) -> Option<u32> {
        let pending = &self.pending;
        self.by_ref.find(self.hash(producer_ref), |p| {
            pending[p as usize].producer_ref == producer_ref
        })
    }

    fn find_account(&self, account: AccountId) -> Option<u32> {
        let accounts = &self.accounts;
        self.by_account.find(self.hash(account.0), |a| {
            accounts[a as usize].account == account
        })
    }

    /// Notional of `qty` at `price`, or `None` if it does not fit or exceeds the cap.
    fn exposure(&self, instrument: InstrumentId, price: i64, qty: u64) -> Option<i128> {
        self.risk
            .notional(instrument, price, qty)
            .filter(|&n| n <= self.notional_cap)
    }

    /// Exposure of an order as it stands; capped, so that a race in which the engine's band
    /// edge differs from ours can never overflow the sums.
    fn order_exposure(&self, slot: u32) -> i128 {
        let o = &self.orders[slot as usize];
        self.exposure(o.instrument, o.price, o.leaves_qty)
            .unwrap_or(self.notional_cap)
    }

    // ----- refusals -----------------------------------------------------------------

    fn refuse(&mut self, g: GatewayReject) -> Reject {
        self.refuse_with(g, format_args!("{}", g.text()))
    }

    fn refuse_with(&mut self, g: GatewayReject, text: fmt::Arguments<'_>) -> Reject {
        let mut t = Text::EMPTY;
        // Text's writer truncates instead of failing.
        let _ = fmt::Write::write_fmt(&mut t, text);
        self.reject_text = t;
        Reject::Gateway(g)
    }

    /// The detailed text of the last reject a request method returned (with the values
    /// involved, e.g. "order quantity 500 above the account maximum 100").
    pub fn reject_text(&self) -> &str {
        self.reject_text.as_str()
    }

    fn check_session(&mut self, session: SessionId) -> Result<(), Reject> {
        if usize::from(session.0) >= self.sessions.len() {
            return Err(self.refuse(GatewayReject::SessionUnknown));
        }
        Ok(())
    }

    /// The ClOrdID of a new request must not be in use in the session.
    fn check_new_key(&mut self, session: SessionId, cl: &ClOrdId) -> Result<(), Reject> {
        match self.find_key(session, cl) {
            None => Ok(()),
            Some(h) if h & PENDING_BIT != 0 => Err(self.refuse(GatewayReject::ClOrdIdInUse)),
            Some(slot) if self.orders[slot as usize].phase == Phase::PendingNew => {
                Err(self.refuse(GatewayReject::ClOrdIdInUse))
            }
            Some(_) => Err(self.refuse(GatewayReject::DuplicateClOrdId)),
        }
    }

    fn check_producer_ref(&mut self, producer_ref: u64) -> Result<(), Reject> {
        if self.find_pending(producer_ref).is_some() {
            // The caller reused a reference that is still in flight: a bug upstream, but
            // refusing keeps the tables consistent.
            return Err(self.refuse(GatewayReject::RequestAlreadyPending));
        }
        if self.pending_free.is_empty() {
            return Err(self.refuse(GatewayReject::PendingTableFull));
        }
        Ok(())
    }

    /// The account's entry (if any) and its row of limits; refuses unpermitted and blocked
    /// accounts when `blocking`.
    fn account_of(
        &mut self,
        account: AccountId,
        blocking: bool,
    ) -> Result<(Option<u32>, u32), Reject> {
        let (slot, row) = match self.find_account(account) {
            Some(slot) => (Some(slot), self.accounts[slot as usize].row),
            None => match self.risk.row_of(account) {
                Some(row) => (None, row),
                None => return Err(self.refuse(GatewayReject::AccountNotPermitted)),
            },
        };
        let killed = match slot {
            Some(s) => self.accounts[s as usize].killed,
            None => self.kill_overflow,
        };
        if blocking && killed {
            return Err(self.refuse(GatewayReject::AccountBlocked));
        }
        Ok((slot, row))
    }

    /// A live order of `session` and `account` named by order id or ClOrdID.
    fn resolve(
        &mut self,
        session: SessionId,
        orig: &ClOrdId,
        order_id: Option<OrderId>,
        account: AccountId,
    ) -> Result<u32, Reject> {
        let found = match order_id {
            Some(id) => self.find_order(id),
            None => match self.find_key(session, orig) {
                Some(h) if h & PENDING_BIT != 0 => {
                    // The OrigClOrdID is a request in flight, e.g. a replace not answered
                    // yet: the order already has a change pending.
                    return Err(self.refuse(GatewayReject::RequestAlreadyPending));
                }
                other => other,
            },
        };
        let Some(slot) = found else {
            return Err(self.refuse(GatewayReject::UnknownClOrdId));
        };
        let o = &self.orders[slot as usize];
        // Another session's or account's order is "unknown", as in the engine, so that
        // order ids of others cannot be probed.
        if o.session != session || o.account != account {
            return Err(self.refuse(GatewayReject::UnknownClOrdId));
        }
        if o.phase == Phase::PendingNew {
            return Err(self.refuse(GatewayReject::OrderNotAcknowledged));
        }
        if o.pending != NONE {
            return Err(self.refuse(GatewayReject::RequestAlreadyPending));
        }
        Ok(slot)
    }

    // ----- requests -----------------------------------------------------------------

    /// Risk checks and kill switch; on success registers the request as pending under
    /// `producer_ref` (the caller's next ring reference) and returns the engine command to
    /// publish. If publishing fails, the caller calls [`OrderManager::abort`].
    ///
    /// Checks, in order: session, instrument, ClOrdID, account permitted and not blocked,
    /// price present for a limit order, account's order quantity maximum, price band (only
    /// where the engine would reach its own band check, so that the engine's more specific
    /// codes are kept), account's order notional maximum, open orders, credit, capacity.
    pub fn new_order(
        &mut self,
        req: &NewOrderRequest,
        producer_ref: u64,
        now_ns: u64,
    ) -> Result<Command, Reject> {
        self.reject_text.clear();
        self.check_session(req.session)?;
        let i = req.instrument.0 as usize;
        if i >= self.risk.instruments.len() {
            return Err(self.refuse(GatewayReject::InstrumentUnknown));
        }
        self.check_new_key(req.session, &req.cl_ord_id)?;
        let (account_slot, row) = self.account_of(req.account, true)?;
        let is_market = req.order_type == OrderType::Market;
        // The engine requires market orders to be immediate; FIX's default DAY becomes IOC.
        let engine_tif = if is_market && req.tif == TimeInForce::Day {
            TimeInForce::Ioc
        } else {
            req.tif
        };
        let band = self.bands[i];
        let price = if is_market {
            band.market_price(req.side)
        } else {
            match req.price {
                Some(p) => p.0,
                None => return Err(self.refuse(GatewayReject::PriceMissing)),
            }
        };
        let inst = self.risk.instruments[i];
        let (qd, pd) = (inst.qty_decimals, inst.price_decimals);
        let qty = req.qty.0;
        let qty_max = self.risk.qty_max(row, req.instrument);
        if qty > qty_max {
            return Err(self.refuse_with(
                GatewayReject::OrderQtyAboveAccountMax,
                format_args!(
                    "order quantity {} above the account maximum {}",
                    Dec(qty.into(), qd),
                    Dec(qty_max.into(), qd)
                ),
            ));
        }
        if !is_market {
            let immediate = matches!(engine_tif, TimeInForce::Ioc | TimeInForce::Fok);
            let gtd = engine_tif == TimeInForce::Gtd;
            let expiry_ok = if gtd {
                req.expire_ts_ns > now_ns
            } else {
                req.expire_ts_ns == 0
            };
            let reaches_band = self.status[i] == InstrumentStatus::Open
                && !(req.post_only && immediate)
                && engine_qty_ok(&inst, qty)
                && expiry_ok
                && engine_price_ok(&inst, price);
            if reaches_band && !band.contains(price) {
                return Err(self.refuse_with(
                    GatewayReject::PriceOutsideBand,
                    format_args!(
                        "price {} outside the price band {} to {}",
                        Dec(price.into(), pd),
                        Dec(band.lo.into(), pd),
                        Dec(band.hi.into(), pd)
                    ),
                ));
            }
        }
        let nd = self.risk.notional_decimals;
        let Some(notional) = self.exposure(req.instrument, price, qty) else {
            return Err(self.refuse(GatewayReject::ValueOverflow));
        };
        let limits = self.risk.rows[row as usize];
        if notional > limits.order_notional_max {
            return Err(self.refuse_with(
                GatewayReject::NotionalAboveAccountMax,
                format_args!(
                    "order notional {} above the account maximum {}",
                    Dec(notional, nd),
                    Dec(limits.order_notional_max, nd)
                ),
            ));
        }
        let (open_orders, open_notional) = match account_slot {
            Some(a) => (
                self.accounts[a as usize].open_orders,
                self.accounts[a as usize].open_notional,
            ),
            None => (0, 0),
        };
        if open_orders >= limits.open_orders_max {
            return Err(self.refuse_with(
                GatewayReject::OpenOrdersAboveMax,
                format_args!(
                    "open orders {open_orders} at the account maximum {}",
                    limits.open_orders_max
                ),
            ));
        }
        // Both terms are bounded by the cap times the table sizes: no overflow.
        if open_notional + notional > limits.open_notional_max {
            return Err(self.refuse_with(
                GatewayReject::CreditLimitExceeded,
                format_args!(
                    "open notional {} plus order {} above the credit limit {}",
                    Dec(open_notional, nd),
                    Dec(notional, nd),
                    Dec(limits.open_notional_max, nd)
                ),
            ));
        }
        if self.order_free.is_empty() {
            return Err(self.refuse(GatewayReject::OrderTableFull));
        }
        self.check_producer_ref(producer_ref)?;
        if account_slot.is_none() && self.account_free.is_empty() {
            return Err(self.refuse(GatewayReject::AccountTableFull));
        }

        // Every check passed: register. Nothing below can fail.
        let account_slot = match account_slot {
            Some(a) => a,
            None => self.new_account(req.account, row),
        };
        let acct = &mut self.accounts[account_slot as usize];
        acct.open_orders += 1;
        acct.open_notional += notional;
        let slot = self.order_free.pop().unwrap_or(NONE);
        self.orders[slot as usize] = OrderState {
            phase: Phase::PendingNew,
            session: req.session,
            account: req.account,
            account_slot,
            instrument: req.instrument,
            side: req.side,
            order_type: req.order_type,
            tif: req.tif,
            post_only: req.post_only,
            expire_ts_ns: req.expire_ts_ns,
            cl_ord_id: req.cl_ord_id,
            price,
            order_qty: qty,
            leaves_qty: qty,
            exposure: notional,
            last_ts_ns: now_ns,
            ..OrderState::FREE
        };
        let h = self.key_hash(req.session, &req.cl_ord_id);
        self.by_cl_ord_id.insert(h, slot);
        self.add_pending(Pending {
            producer_ref,
            session: req.session,
            cl_ord_id: req.cl_ord_id,
            account: req.account,
            sent_ns: now_ns,
            resolved: false,
            kind: PendingKind::New { slot },
        });
        Ok(Command::NewOrder(NewOrder {
            instrument: req.instrument,
            account: req.account,
            client_order_id: ClientOrderId(producer_ref),
            side: req.side,
            order_type: req.order_type,
            price: if is_market {
                PriceTicks(0)
            } else {
                PriceTicks(price)
            },
            qty: req.qty,
            tif: engine_tif,
            expire_ts_ns: req.expire_ts_ns,
            post_only: req.post_only,
            stp_mode: req.stp_mode,
            stp_group: StpGroup(0),
        }))
    }

    /// Puts back an order that was live before a restart, as the session's stored execution
    /// reports describe it, so that its later fills and cancels are reported and it can be
    /// cancelled or replaced by its ClOrdID. Its exposure counts against the account again.
    /// Limits are not re-checked: the order exists in the engine whatever they say now.
    pub fn restore_live_order(&mut self, r: &RestoredOrder) -> Result<(), Reject> {
        self.reject_text.clear();
        self.check_session(r.session)?;
        if r.instrument.0 as usize >= self.risk.instruments.len() {
            return Err(self.refuse(GatewayReject::InstrumentUnknown));
        }
        if self.find_order(r.order_id).is_some() || self.find_key(r.session, &r.cl_ord_id).is_some()
        {
            return Err(self.refuse(GatewayReject::DuplicateClOrdId));
        }
        let (account_slot, row) = self.account_of(r.account, false)?;
        if self.order_free.is_empty() {
            return Err(self.refuse(GatewayReject::OrderTableFull));
        }
        if account_slot.is_none() && self.account_free.is_empty() {
            return Err(self.refuse(GatewayReject::AccountTableFull));
        }
        let account_slot = match account_slot {
            Some(a) => a,
            None => self.new_account(r.account, row),
        };
        self.accounts[account_slot as usize].open_orders += 1;
        let slot = self.order_free.pop().unwrap_or(NONE);
        self.orders[slot as usize] = OrderState {
            phase: Phase::Live,
            order_id: r.order_id,
            session: r.session,
            account: r.account,
            account_slot,
            instrument: r.instrument,
            side: r.side,
            order_type: r.order_type,
            tif: r.tif,
            expire_ts_ns: r.expire_ts_ns,
            cl_ord_id: r.cl_ord_id,
            price: r.price.0,
            order_qty: r.order_qty.0,
            cum_qty: r.cum_qty.0,
            leaves_qty: r.leaves_qty.0,
            avg_px_num: r.avg_px_num,
            ..OrderState::FREE
        };
        self.set_exposure(slot);
        let h = self.key_hash(r.session, &r.cl_ord_id);
        self.by_cl_ord_id.insert(h, slot);
        let h = self.hash(r.order_id.0);
        self.by_order_id.insert(h, slot);
        self.session_append(slot);
        Ok(())
    }

    /// Resolves the order (by `order_id` if given, else by `orig_cl_ord_id` among the
    /// session's live orders) and returns the engine cancel. Unknown orders give
    /// [`GatewayReject::UnknownClOrdId`], which the caller reports as an OrderCancelReject
    /// (see [`OrderManager::cancel_rejected`]). Cancels are allowed under the kill switch.
    pub fn cancel(
        &mut self,
        req: &CancelRequest,
        producer_ref: u64,
        now_ns: u64,
    ) -> Result<Command, Reject> {
        self.reject_text.clear();
        self.check_session(req.session)?;
        self.check_new_key(req.session, &req.cl_ord_id)?;
        let slot = self.resolve(req.session, &req.orig_cl_ord_id, req.order_id, req.account)?;
        self.check_producer_ref(producer_ref)?;
        let order_id = self.orders[slot as usize].order_id;
        let p = self.add_pending(Pending {
            producer_ref,
            session: req.session,
            cl_ord_id: req.cl_ord_id,
            account: req.account,
            sent_ns: now_ns,
            resolved: false,
            kind: PendingKind::Cancel(Target {
                slot,
                order_id,
                orig_cl_ord_id: req.orig_cl_ord_id,
                gone: None,
            }),
        });
        self.orders[slot as usize].pending = p;
        let h = self.key_hash(req.session, &req.cl_ord_id);
        self.by_cl_ord_id.insert(h, p | PENDING_BIT);
        Ok(Command::Cancel(Cancel {
            order_id,
            account: req.account,
            client_order_id: ClientOrderId(producer_ref),
        }))
    }

    /// Like [`OrderManager::cancel`], plus the risk checks of the new quantity and price:
    /// kill switch, order quantity maximum, band (if the price changes), order notional
    /// maximum, and credit for any increase of the order's notional, which stays reserved
    /// until the engine answers.
    pub fn replace(
        &mut self,
        req: &ReplaceRequest,
        producer_ref: u64,
        now_ns: u64,
    ) -> Result<Command, Reject> {
        self.reject_text.clear();
        self.check_session(req.session)?;
        self.check_new_key(req.session, &req.cl_ord_id)?;
        let slot = self.resolve(req.session, &req.orig_cl_ord_id, req.order_id, req.account)?;
        let (_, row) = self.account_of(req.account, true)?;
        let o = self.orders[slot as usize];
        let i = o.instrument.0 as usize;
        let inst = self.risk.instruments[i];
        let (qd, pd, nd) = (
            inst.qty_decimals,
            inst.price_decimals,
            self.risk.notional_decimals,
        );
        let price = req.price.map_or(o.price, |p| p.0);
        let qty = req.qty.0;
        let qty_max = self.risk.qty_max(row, o.instrument);
        if qty > qty_max {
            return Err(self.refuse_with(
                GatewayReject::OrderQtyAboveAccountMax,
                format_args!(
                    "order quantity {} above the account maximum {}",
                    Dec(qty.into(), qd),
                    Dec(qty_max.into(), qd)
                ),
            ));
        }
        // The engine checks the band of a replace only when the price changes.
        let band = self.bands[i];
        let reaches_band = price != o.price
            && self.status[i] == InstrumentStatus::Open
            && engine_qty_ok(&inst, qty)
            && engine_price_ok(&inst, price);
        if reaches_band && !band.contains(price) {
            return Err(self.refuse_with(
                GatewayReject::PriceOutsideBand,
                format_args!(
                    "price {} outside the price band {} to {}",
                    Dec(price.into(), pd),
                    Dec(band.lo.into(), pd),
                    Dec(band.hi.into(), pd)
                ),
            ));
        }
        let Some(notional) = self.exposure(o.instrument, price, qty) else {
            return Err(self.refuse(GatewayReject::ValueOverflow));
        };
        let limits = self.risk.rows[row as usize];
        if notional > limits.order_notional_max {
            return Err(self.refuse_with(
                GatewayReject::NotionalAboveAccountMax,
                format_args!(
                    "order notional {} above the account maximum {}",
                    Dec(notional, nd),
                    Dec(limits.order_notional_max, nd)
                ),
            ));
        }
        // The new open quantity is the new total less what is filled (the engine refuses a
        // total not above the filled quantity; that leaves nothing open here).
        let new_exposure = self
            .exposure(o.instrument, price, qty.saturating_sub(o.cum_qty))
            .unwrap_or(notional);
        let reserved = (new_exposure - o.exposure).max(0);
        let open_notional = self.accounts[o.account_slot as usize].open_notional;
        if reserved > 0 && open_notional + reserved > limits.open_notional_max {
            return Err(self.refuse_with(
                GatewayReject::CreditLimitExceeded,
                format_args!(
                    "open notional {} plus increase {} above the credit limit {}",
                    Dec(open_notional, nd),
                    Dec(reserved, nd),
                    Dec(limits.open_notional_max, nd)
                ),
            ));
        }
        self.check_producer_ref(producer_ref)?;

        let acct = &mut self.accounts[o.account_slot as usize];
        acct.open_notional += reserved;
        acct.refs += 1;
        let p = self.add_pending(Pending {
            producer_ref,
            session: req.session,
            cl_ord_id: req.cl_ord_id,
            account: req.account,
            sent_ns: now_ns,
            resolved: false,
            kind: PendingKind::Replace {
                target: Target {
                    slot,
                    order_id: o.order_id,
                    orig_cl_ord_id: req.orig_cl_ord_id,
                    gone: None,
                },
                qty,
                reserved,
                account_slot: o.account_slot,
            },
        });
        self.orders[slot as usize].pending = p;
        let h = self.key_hash(req.session, &req.cl_ord_id);
        self.by_cl_ord_id.insert(h, p | PENDING_BIT);
        Ok(Command::Replace(Replace {
            order_id: o.order_id,
            account: req.account,
            client_order_id: ClientOrderId(producer_ref),
            price: PriceTicks(price),
            qty: req.qty,
        }))
    }

    /// Cancels the account's orders in one instrument or all (orders of every session of
    /// the account). Allowed under the kill switch.
    pub fn mass_cancel(
        &mut self,
        req: &MassCancelRequest,
        producer_ref: u64,
        now_ns: u64,
    ) -> Result<Command, Reject> {
        self.reject_text.clear();
        self.check_session(req.session)?;
        if let Some(i) = req.instrument {
            if i.0 as usize >= self.risk.instruments.len() {
                return Err(self.refuse(GatewayReject::InstrumentUnknown));
            }
        }
        self.check_new_key(req.session, &req.cl_ord_id)?;
        self.check_producer_ref(producer_ref)?;
        let p = self.add_pending(Pending {
            producer_ref,
            session: req.session,
            cl_ord_id: req.cl_ord_id,
            account: req.account,
            sent_ns: now_ns,
            resolved: false,
            kind: PendingKind::MassCancel {
                request_type: req.request_type,
                instrument: req.instrument,
            },
        });
        let h = self.key_hash(req.session, &req.cl_ord_id);
        self.by_cl_ord_id.insert(h, p | PENDING_BIT);
        Ok(Command::MassCancel(MassCancel {
            instrument: req.instrument,
            account: Some(req.account),
            client_order_id: ClientOrderId(producer_ref),
        }))
    }

    /// Registers an operator command (such as the kill switch's mass cancel) published
    /// under `producer_ref`, so that its END is expected and the cancels it causes say
    /// that the operator cancelled the orders. It produces no report of its own.
    pub fn register_operator(&mut self, producer_ref: u64) -> Result<(), Reject> {
        self.reject_text.clear();
        self.check_producer_ref(producer_ref)?;
        self.add_pending(Pending {
            producer_ref,
            kind: PendingKind::Operator,
            ..Pending::FREE
        });
        Ok(())
    }

    /// Forgets the request registered under `producer_ref` because it could not be
    /// published (it never reaches the engine): the order, reservation or ClOrdID it held
    /// is released. Unknown references are ignored.
    pub fn abort(&mut self, producer_ref: u64) {
        let Some(p) = self.find_pending(producer_ref) else {
            return;
        };
        if let PendingKind::New { slot } = self.pending[p as usize].kind {
            if slot != NONE && self.orders[slot as usize].phase == Phase::PendingNew {
                self.remove_order(slot, OrdStatus::Rejected);
            }
        }
        self.free_pending(p);
    }

    // ----- output frames ------------------------------------------------------------

    /// One output frame: an event (`Some`) or the END of a command (`None`). `mine` says
    /// whether the command came from this gateway (its producer index). Emits the reports
    /// for orders of this gateway through `out`; events about other orders are ignored,
    /// except that trades move the price band and status changes are tracked.
    ///
    /// `ts_ns` becomes the reports' TransactTime: the command's time if the caller has it,
    /// else the time it read the frame (output frames do not carry the time).
    #[allow(clippy::too_many_arguments)] // the fields of one output frame, as decoded
    pub fn on_output(
        &mut self,
        mine: bool,
        producer_ref: u64,
        seq: u64,
        ts_ns: u64,
        event_index: u16,
        event: Option<&Event>,
        out: &mut impl FnMut(Report),
    ) {
        let index = self.frame_position(seq, event_index);
        let p = if mine {
            self.find_pending(producer_ref)
        } else {
            None
        };
        let id = |leg: u32| ExecId::Engine {
            seq,
            index: index.saturating_mul(2) | leg,
        };
        let Some(event) = event else {
            if let Some(p) = p {
                self.finish(p, id(0), ts_ns, out);
            }
            return;
        };
        match event {
            Event::Accepted(a) => {
                let Some(p) = p else { return };
                let pd = self.pending[p as usize];
                let PendingKind::New { slot } = pd.kind else {
                    return;
                };
                if pd.resolved || slot == NONE {
                    return;
                }
                self.pending[p as usize].resolved = true;
                let o = &mut self.orders[slot as usize];
                o.phase = Phase::Live;
                o.order_id = a.order_id;
                o.price = a.price.0;
                o.last_ts_ns = ts_ns;
                self.set_exposure(slot);
                let h = self.hash(a.order_id.0);
                self.by_order_id.insert(h, slot);
                self.session_append(slot);
                let o = &self.orders[slot as usize];
                out(Report::Exec(exec_report(
                    o,
                    id(0),
                    ExecType::New,
                    OrdStatus::New,
                    ts_ns,
                )));
            }
            Event::Rejected(r) => {
                let Some(p) = p else { return };
                if self.pending[p as usize].resolved {
                    return;
                }
                self.pending[p as usize].resolved = true;
                self.answer_reject(p, Reject::Engine(r.code), id(0), ts_ns, out);
            }
            Event::Trade(t) => {
                let i = t.instrument.0 as usize;
                if let (Some(band), Some(inst)) =
                    (self.bands.get_mut(i), self.risk.instruments.get(i))
                {
                    band.last_trade = t.price.0;
                    band.recompute(inst);
                }
                if let Some(slot) = self.find_order(t.maker_order_id) {
                    self.fill(slot, t, false, id(1), ts_ns, out);
                }
                if let Some(slot) = self.find_order(t.taker_order_id) {
                    self.fill(slot, t, true, id(0), ts_ns, out);
                }
            }
            Event::Cancelled(c) => {
                if let Some(slot) = self.find_order(c.order_id) {
                    self.cancelled(slot, p, c, id(0), ts_ns, out);
                }
            }
            Event::Restated(r) => {
                if let Some(slot) = self.find_order(r.order_id) {
                    self.restated(slot, r, id(0), ts_ns, out);
                }
            }
            Event::Replaced(r) => {
                if let Some(slot) = self.find_order(r.order_id) {
                    self.replaced(slot, p, r, id(0), ts_ns, out);
                }
            }
            Event::Expired(e) => {
                let Some(slot) = self.find_order(e.order_id) else {
                    return;
                };
                let o = &mut self.orders[slot as usize];
                o.leaves_qty = 0;
                o.last_ts_ns = ts_ns;
                let mut r = exec_report(o, id(0), ExecType::Expired, OrdStatus::Expired, ts_ns);
                r.text = Some(expire_text(e.reason));
                out(Report::Exec(r));
                self.remove_order(slot, OrdStatus::Expired);
            }
            Event::MassCancelled(m) => {
                let Some(p) = p else { return };
                let pd = self.pending[p as usize];
                if pd.resolved {
                    return;
                }
                self.pending[p as usize].resolved = true;
                if let PendingKind::MassCancel {
                    request_type,
                    instrument,
                } = pd.kind
                {
                    out(Report::MassCancel(MassCancelReport {
                        session: pd.session,
                        exec_id: id(0),
                        cl_ord_id: pd.cl_ord_id,
                        account: pd.account,
                        instrument,
                        request_type,
                        response: request_type,
                        reject_reason: None,
                        reject: None,
                        affected: m.count,
                        transact_ts_ns: ts_ns,
                    }));
                }
            }
            Event::StatusChanged(s) => {
                if let Some(status) = self.status.get_mut(s.instrument.0 as usize) {
                    *status = s.status;
                }
            }
            Event::Rested(_) | Event::BookDelta(_) | Event::BookChecked(_) => {}
        }
    }

    /// The event's position within its command: the frame's 16-bit index, continued past
    /// its wrap (a mass cancel can emit more than 65,536 events).
    fn frame_position(&mut self, seq: u64, event_index: u16) -> u32 {
        if !self.frame_started || seq != self.frame_seq {
            self.frame_started = true;
            self.frame_seq = seq;
            self.frame_wraps = 0;
        } else if event_index < self.frame_last {
            self.frame_wraps = self.frame_wraps.saturating_add(1);
        }
        self.frame_last = event_index;
        self.frame_wraps.saturating_mul(1 << 16) | u32::from(event_index)
    }

    /// Reports the engine's (or, at END, the gateway's) refusal of pending request `p`.
    fn answer_reject(
        &mut self,
        p: u32,
        reject: Reject,
        exec_id: ExecId,
        ts_ns: u64,
        out: &mut impl FnMut(Report),
    ) {
        let pd = self.pending[p as usize];
        match pd.kind {
            PendingKind::New { slot } => {
                if slot == NONE || self.orders[slot as usize].phase != Phase::PendingNew {
                    return;
                }
                let o = &mut self.orders[slot as usize];
                o.leaves_qty = 0;
                o.last_ts_ns = ts_ns;
                let mut r = exec_report(o, exec_id, ExecType::Rejected, OrdStatus::Rejected, ts_ns);
                r.ord_rej_reason = Some(reject.fix_ord_rej_reason());
                r.reject = Some(reject);
                r.text = Some(reject.text());
                out(Report::Exec(r));
                self.remove_order(slot, OrdStatus::Rejected);
                self.pending[p as usize].kind = PendingKind::New { slot: NONE };
            }
            PendingKind::Cancel(target) | PendingKind::Replace { target, .. } => {
                let response_to = if matches!(pd.kind, PendingKind::Cancel(_)) {
                    CxlRejResponseTo::Cancel
                } else {
                    CxlRejResponseTo::Replace
                };
                let (ord_status, cxl_rej_reason) = match target.gone {
                    // The order finished while the request was in flight: too late.
                    Some(status) => (status, 0),
                    None if target.slot != NONE => (
                        self.orders[target.slot as usize].open_status(),
                        reject.fix_cxl_rej_reason(),
                    ),
                    None => (OrdStatus::Rejected, reject.fix_cxl_rej_reason()),
                };
                out(Report::CancelReject(CancelReject {
                    session: pd.session,
                    cl_ord_id: pd.cl_ord_id,
                    orig_cl_ord_id: target.orig_cl_ord_id,
                    order_id: Some(target.order_id),
                    account: pd.account,
                    ord_status,
                    response_to,
                    cxl_rej_reason,
                    reject,
                    transact_ts_ns: ts_ns,
                }));
                self.release_replace(p);
                self.detach(p);
            }
            PendingKind::MassCancel {
                request_type,
                instrument,
            } => out(Report::MassCancel(MassCancelReport {
                session: pd.session,
                exec_id,
                cl_ord_id: pd.cl_ord_id,
                account: pd.account,
                instrument,
                request_type,
                response: rejected_response(request_type),
                reject_reason: Some(reject.fix_mass_cancel_reject_reason()),
                reject: Some(reject),
                affected: 0,
                transact_ts_ns: ts_ns,
            })),
            PendingKind::Operator | PendingKind::Free => {}
        }
    }

    fn fill(
        &mut self,
        slot: u32,
        t: &Trade,
        taker: bool,
        exec_id: ExecId,
        ts_ns: u64,
        out: &mut impl FnMut(Report),
    ) {
        let open_after = if taker {
            t.taker_qty_open.0
        } else {
            t.maker_qty_open.0
        };
        let o = &mut self.orders[slot as usize];
        let q = t.qty.0;
        debug_assert_eq!(
            o.leaves_qty.saturating_sub(q),
            open_after,
            "Invariant: the gateway's open quantity follows the engine's"
        );
        o.cum_qty += q;
        o.avg_px_num += i128::from(t.price.0) * i128::from(q);
        // The engine's open quantity is authoritative; the assertion above checks in tests
        // that it never differs.
        o.leaves_qty = open_after;
        o.last_ts_ns = ts_ns;
        let status = if open_after == 0 {
            OrdStatus::Filled
        } else {
            OrdStatus::PartiallyFilled
        };
        let mut r = exec_report(o, exec_id, ExecType::Trade, status, ts_ns);
        r.last_px = Some(t.price);
        r.last_qty = Some(t.qty);
        r.trade_id = Some(t.trade_id);
        r.aggressor = Some(taker);
        out(Report::Exec(r));
        if open_after == 0 {
            self.remove_order(slot, OrdStatus::Filled);
        } else {
            self.set_exposure(slot);
        }
    }

    fn cancelled(
        &mut self,
        slot: u32,
        p: Option<u32>,
        c: &Cancelled,
        exec_id: ExecId,
        ts_ns: u64,
        out: &mut impl FnMut(Report),
    ) {
        let o = self.orders[slot as usize];
        let mut cl_ord_id = o.cl_ord_id;
        let mut orig = None;
        let mut text = cancel_text(c.reason);
        if let Some(p) = p {
            let pd = self.pending[p as usize];
            match pd.kind {
                // The answer to this gateway's cancel: FIX wants the cancel's ClOrdID, with
                // the order's as OrigClOrdID.
                PendingKind::Cancel(target)
                    if target.slot == slot
                        && !pd.resolved
                        && c.reason == CancelReason::Requested =>
                {
                    self.pending[p as usize].resolved = true;
                    cl_ord_id = pd.cl_ord_id;
                    orig = Some(o.cl_ord_id);
                }
                PendingKind::Operator if c.reason == CancelReason::MassCancel => {
                    text = "cancelled by the operator";
                }
                // The gateway's own single cancels are cancel-on-disconnect.
                PendingKind::Operator if c.reason == CancelReason::Requested => {
                    text = "cancelled on disconnect";
                }
                _ => {}
            }
        }
        debug_assert_eq!(
            c.qty_cancelled.0, o.leaves_qty,
            "Invariant: a cancel removes the whole open quantity"
        );
        let mut r = exec_report(&o, exec_id, ExecType::Canceled, OrdStatus::Canceled, ts_ns);
        r.cl_ord_id = cl_ord_id;
        r.orig_cl_ord_id = orig;
        r.leaves_qty = QtyLots(0);
        r.cancel_reason = Some(c.reason);
        r.text = Some(text);
        out(Report::Exec(r));
        self.remove_order(slot, OrdStatus::Canceled);
    }

    fn restated(
        &mut self,
        slot: u32,
        e: &Restated,
        exec_id: ExecId,
        ts_ns: u64,
        out: &mut impl FnMut(Report),
    ) {
        let o = &mut self.orders[slot as usize];
        // Self-trade decrement removes quantity without a fill: FIX restates the order with
        // a smaller OrderQty, so that CumQty + LeavesQty = OrderQty still holds.
        o.order_qty = o.order_qty.saturating_sub(e.qty_reduced.0);
        o.leaves_qty = e.qty_open.0;
        o.last_ts_ns = ts_ns;
        debug_assert_eq!(o.order_qty, o.cum_qty + o.leaves_qty);
        let mut r = exec_report(o, exec_id, ExecType::Restated, o.open_status(), ts_ns);
        r.restatement_reason = Some(5);
        r.text = Some("self-trade prevention reduced the order quantity");
        out(Report::Exec(r));
        self.set_exposure(slot);
    }

    fn replaced(
        &mut self,
        slot: u32,
        p: Option<u32>,
        e: &Replaced,
        exec_id: ExecId,
        ts_ns: u64,
        out: &mut impl FnMut(Report),
    ) {
        let mine = p.and_then(|p| {
            let pd = self.pending[p as usize];
            match pd.kind {
                PendingKind::Replace { target, qty, .. } if target.slot == slot && !pd.resolved => {
                    Some((p, pd.cl_ord_id, qty))
                }
                _ => None,
            }
        });
        let old = self.orders[slot as usize].cl_ord_id;
        let session = self.orders[slot as usize].session;
        let orig = match mine {
            Some((p, new_cl, qty)) => {
                self.pending[p as usize].resolved = true;
                // The order is known by its new ClOrdID from now on.
                let old_h = self.key_hash(session, &old);
                self.by_cl_ord_id.remove(old_h, slot);
                let new_h = self.key_hash(session, &new_cl);
                self.by_cl_ord_id.remove(new_h, p | PENDING_BIT);
                self.by_cl_ord_id.insert(new_h, slot);
                let o = &mut self.orders[slot as usize];
                o.cl_ord_id = new_cl;
                o.order_qty = qty;
                self.release_replace(p);
                self.detach(p);
                Some(old)
            }
            None => {
                // A replace sent by someone else (an operator tool): the quantities are the
                // engine's, the ClOrdID stays ours.
                let o = &mut self.orders[slot as usize];
                o.order_qty = e.qty_filled.0 + e.qty_open.0;
                None
            }
        };
        let o = &mut self.orders[slot as usize];
        debug_assert_eq!(o.cum_qty, e.qty_filled.0);
        o.price = e.price.0;
        o.leaves_qty = e.qty_open.0;
        o.last_ts_ns = ts_ns;
        let mut r = exec_report(o, exec_id, ExecType::Replaced, o.open_status(), ts_ns);
        r.orig_cl_ord_id = orig;
        out(Report::Exec(r));
        self.set_exposure(slot);
    }

    /// END of pending request `p`: answers a request the engine did not answer, then frees
    /// everything the request held.
    fn finish(&mut self, p: u32, exec_id: ExecId, ts_ns: u64, out: &mut impl FnMut(Report)) {
        if !self.pending[p as usize].resolved {
            self.pending[p as usize].resolved = true;
            let reject = Reject::Gateway(GatewayReject::NoEngineResponse);
            self.answer_reject(p, reject, exec_id, ts_ns, out);
        }
        self.free_pending(p);
    }

    // ----- table maintenance --------------------------------------------------------

    fn add_pending(&mut self, pending: Pending) -> u32 {
        // Callers checked `pending_free` first.
        let p = self.pending_free.pop().unwrap_or(NONE);
        let h = self.hash(pending.producer_ref);
        self.pending[p as usize] = pending;
        self.by_ref.insert(h, p);
        p
    }

    /// Releases a pending replace's reservation and account reference (once).
    fn release_replace(&mut self, p: u32) {
        if let PendingKind::Replace {
            reserved,
            account_slot,
            ..
        } = &mut self.pending[p as usize].kind
        {
            if *account_slot != NONE {
                let a = *account_slot as usize;
                self.accounts[a].open_notional -= *reserved;
                self.accounts[a].refs -= 1;
                *reserved = 0;
                *account_slot = NONE;
                self.maybe_drop_account(a as u32);
            }
        }
    }

    /// Unlinks a cancel or replace from its order, so that the order can take a new one.
    fn detach(&mut self, p: u32) {
        if let PendingKind::Cancel(target) | PendingKind::Replace { target, .. } =
            &mut self.pending[p as usize].kind
        {
            if target.slot != NONE {
                let o = &mut self.orders[target.slot as usize];
                if o.pending == p {
                    o.pending = NONE;
                }
                target.slot = NONE;
            }
        }
    }

    fn free_pending(&mut self, p: u32) {
        self.release_replace(p);
        self.detach(p);
        let pd = self.pending[p as usize];
        // A new order's ClOrdID belongs to the order; the others' to the request, unless a
        // replace already handed it to the order.
        if !matches!(pd.kind, PendingKind::New { .. } | PendingKind::Operator) {
            let h = self.key_hash(pd.session, &pd.cl_ord_id);
            self.by_cl_ord_id.remove(h, p | PENDING_BIT);
        }
        let h = self.hash(pd.producer_ref);
        self.by_ref.remove(h, p);
        self.pending[p as usize] = Pending::FREE;
        self.pending_free.push(p);
    }

    /// Recomputes an open order's exposure and moves the difference into its account.
    fn set_exposure(&mut self, slot: u32) {
        let exposure = self.order_exposure(slot);
        let o = &mut self.orders[slot as usize];
        let delta = exposure - o.exposure;
        o.exposure = exposure;
        self.accounts[o.account_slot as usize].open_notional += delta;
    }

    /// Takes a finished order out of every table; `final_status` is kept for a cancel or
    /// replace of it still in flight.
    fn remove_order(&mut self, slot: u32, final_status: OrdStatus) {
        let o = self.orders[slot as usize];
        let a = o.account_slot;
        self.accounts[a as usize].open_orders -= 1;
        self.accounts[a as usize].open_notional -= o.exposure;
        if o.phase == Phase::Live {
            let h = self.hash(o.order_id.0);
            self.by_order_id.remove(h, slot);
            self.session_unlink(slot);
        }
        let h = self.key_hash(o.session, &o.cl_ord_id);
        self.by_cl_ord_id.remove(h, slot);
        if o.pending != NONE {
            if let PendingKind::Cancel(target) | PendingKind::Replace { target, .. } =
                &mut self.pending[o.pending as usize].kind
            {
                target.slot = NONE;
                target.gone = Some(final_status);
            }
        }
        self.orders[slot as usize] = OrderState::FREE;
        self.order_free.push(slot);
        self.maybe_drop_account(a);
    }

    fn new_account(&mut self, account: AccountId, row: u32) -> u32 {
        // Callers checked `account_free` first.
        let a = self.account_free.pop().unwrap_or(NONE);
        self.accounts[a as usize] = AccountState {
            in_use: true,
            account,
            row,
            ..AccountState::FREE
        };
        let h = self.hash(account.0);
        self.by_account.insert(h, a);
        a
    }

    /// Frees an unlisted account's entry once nothing refers to it.
    fn maybe_drop_account(&mut self, a: u32) {
        let s = self.accounts[a as usize];
        if s.listed || s.open_orders != 0 || s.refs != 0 || s.killed {
            return;
        }
        debug_assert_eq!(s.open_notional, 0);
        let h = self.hash(s.account.0);
        self.by_account.remove(h, a);
        self.accounts[a as usize] = AccountState::FREE;
        self.account_free.push(a);
    }

    /// Appends a newly accepted order to its session's list. Orders are accepted in
    /// sequence order and their ids are their sequence numbers, so each list is in order-id
    /// order without sorting.
    fn session_append(&mut self, slot: u32) {
        let s = usize::from(self.orders[slot as usize].session.0);
        let (head, tail) = self.sessions[s];
        self.orders[slot as usize].sess_prev = tail;
        self.orders[slot as usize].sess_next = NONE;
        if tail == NONE {
            self.sessions[s] = (slot, slot);
        } else {
            self.orders[tail as usize].sess_next = slot;
            self.sessions[s] = (head, slot);
        }
    }

    fn session_unlink(&mut self, slot: u32) {
        let o = self.orders[slot as usize];
        let s = usize::from(o.session.0);
        if o.sess_prev == NONE {
            self.sessions[s].0 = o.sess_next;
        } else {
            self.orders[o.sess_prev as usize].sess_next = o.sess_next;
        }
        if o.sess_next == NONE {
            self.sessions[s].1 = o.sess_prev;
        } else {
            self.orders[o.sess_next as usize].sess_prev = o.sess_prev;
        }
    }

    // ----- gateway reject reports ---------------------------------------------------

    /// The ExecutionReport (150=8, 39=8) refusing `req` with `reject` (returned by
    /// [`OrderManager::new_order`], or the FIX layer's own, such as the throttle's).
    pub fn new_order_rejected(
        &self,
        req: &NewOrderRequest,
        reject: Reject,
        exec_counter: u64,
        now_ns: u64,
    ) -> ExecReport {
        ExecReport {
            session: req.session,
            exec_id: ExecId::Gateway {
                counter: exec_counter,
            },
            exec_type: ExecType::Rejected,
            ord_status: OrdStatus::Rejected,
            order_id: None,
            cl_ord_id: req.cl_ord_id,
            orig_cl_ord_id: None,
            account: req.account,
            instrument: req.instrument,
            side: req.side,
            order_type: req.order_type,
            tif: req.tif,
            price: req.price.filter(|_| req.order_type == OrderType::Limit),
            order_qty: req.qty,
            last_px: None,
            last_qty: None,
            trade_id: None,
            cum_qty: QtyLots(0),
            leaves_qty: QtyLots(0),
            avg_px_num: 0,
            expire_ts_ns: req.expire_ts_ns,
            transact_ts_ns: now_ns,
            ord_rej_reason: Some(reject.fix_ord_rej_reason()),
            reject: Some(reject),
            restatement_reason: None,
            cancel_reason: None,
            text: Some(reject.text()),
            aggressor: None,
            post_only: req.post_only,
        }
    }

    /// The OrderCancelReject answering a cancel refused with `reject`.
    pub fn cancel_rejected(
        &self,
        req: &CancelRequest,
        reject: Reject,
        now_ns: u64,
    ) -> CancelReject {
        self.cxl_rejected(
            (req.session, req.cl_ord_id, req.orig_cl_ord_id),
            req.order_id,
            req.account,
            CxlRejResponseTo::Cancel,
            reject,
            now_ns,
        )
    }

    /// The OrderCancelReject answering a replace refused with `reject`.
    pub fn replace_rejected(
        &self,
        req: &ReplaceRequest,
        reject: Reject,
        now_ns: u64,
    ) -> CancelReject {
        self.cxl_rejected(
            (req.session, req.cl_ord_id, req.orig_cl_ord_id),
            req.order_id,
            req.account,
            CxlRejResponseTo::Replace,
            reject,
            now_ns,
        )
    }

    fn cxl_rejected(
        &self,
        (session, cl_ord_id, orig_cl_ord_id): (SessionId, ClOrdId, ClOrdId),
        order_id: Option<OrderId>,
        account: AccountId,
        response_to: CxlRejResponseTo,
        reject: Reject,
        now_ns: u64,
    ) -> CancelReject {
        // The order's current status if this session and account can see it.
        let slot = self.lookup(session, Some(&orig_cl_ord_id), order_id);
        let order = slot
            .map(|s| &self.orders[s as usize])
            .filter(|o| o.account == account);
        CancelReject {
            session,
            cl_ord_id,
            orig_cl_ord_id,
            order_id: order
                .filter(|o| o.phase == Phase::Live)
                .map(|o| o.order_id)
                .or(order_id),
            account,
            ord_status: order.map_or(OrdStatus::Rejected, OrderState::open_status),
            response_to,
            cxl_rej_reason: reject.fix_cxl_rej_reason(),
            reject,
            transact_ts_ns: now_ns,
        }
    }

    /// The OrderMassCancelReport (531=0) answering a mass cancel refused with `reject`.
    pub fn mass_cancel_rejected(
        &self,
        req: &MassCancelRequest,
        reject: Reject,
        exec_counter: u64,
        now_ns: u64,
    ) -> MassCancelReport {
        MassCancelReport {
            session: req.session,
            exec_id: ExecId::Gateway {
                counter: exec_counter,
            },
            cl_ord_id: req.cl_ord_id,
            account: req.account,
            instrument: req.instrument,
            request_type: req.request_type,
            response: rejected_response(req.request_type),
            reject_reason: Some(reject.fix_mass_cancel_reject_reason()),
            reject: Some(reject),
            affected: 0,
            transact_ts_ns: now_ns,
        }
    }

    // ----- queries and operator actions ---------------------------------------------

    /// An order of `session` (live or in flight) by order id, else by ClOrdID.
    fn lookup(
        &self,
        session: SessionId,
        cl_ord_id: Option<&ClOrdId>,
        order_id: Option<OrderId>,
    ) -> Option<u32> {
        let by_id = order_id
            .and_then(|id| self.find_order(id))
            .filter(|&s| self.orders[s as usize].session == session);
        by_id.or_else(|| {
            cl_ord_id
                .and_then(|cl| self.find_key(session, cl))
                .filter(|h| h & PENDING_BIT == 0)
        })
    }

    /// Answers OrderStatusRequest (H): the order's current state as ExecType OrderStatus
    /// (ExecID `Gateway { counter: 0 }`), or `None` if the session has no such open order.
    /// Finished orders leave the table, and an order not yet acknowledged by the engine has
    /// no status to report yet (its New or Rejected follows within the pipeline's latency).
    pub fn status(
        &self,
        session: SessionId,
        cl_ord_id: Option<&ClOrdId>,
        order_id: Option<OrderId>,
    ) -> Option<ExecReport> {
        let slot = self.lookup(session, cl_ord_id, order_id)?;
        let o = &self.orders[slot as usize];
        if o.phase != Phase::Live {
            return None;
        }
        Some(exec_report(
            o,
            ExecId::Gateway { counter: 0 },
            ExecType::OrderStatus,
            o.open_status(),
            o.last_ts_ns,
        ))
    }

    /// Orders of `session` to cancel on an involuntary disconnect: its live DAY orders
    /// (GTC and GTD orders stay), in order-id order. Orders still in flight are not
    /// included; call again once the session's pending requests have finished.
    pub fn cancel_on_disconnect(&self, session: SessionId, mut f: impl FnMut(OrderId, AccountId)) {
        let Some(&(mut cur, _)) = self.sessions.get(usize::from(session.0)) else {
            return;
        };
        while cur != NONE {
            let o = &self.orders[cur as usize];
            if o.tif == TimeInForce::Day {
                f(o.order_id, o.account);
            }
            cur = o.sess_next;
        }
    }

    /// Operator kill switch: while on, new orders and replaces of `account` are refused
    /// ([`GatewayReject::AccountBlocked`]); cancels stay allowed. Switching it on returns the
    /// mass cancel of the account's orders to publish (register it with
    /// [`OrderManager::register_operator`] if the acknowledgement matters). If the account
    /// table has no room to record the switch, every account without an entry is blocked
    /// (failing closed) until all switches are off.
    pub fn set_kill_switch(&mut self, account: AccountId, on: bool) -> Option<Command> {
        let slot = self.find_account(account);
        if on {
            let slot = match slot {
                Some(a) => Some(a),
                None if !self.account_free.is_empty() => {
                    let row = self.risk.row_of(account).unwrap_or(0);
                    Some(self.new_account(account, row))
                }
                None => None,
            };
            match slot {
                Some(a) if !self.accounts[a as usize].killed => {
                    self.accounts[a as usize].killed = true;
                    self.killed += 1;
                }
                Some(_) => {}
                None => self.kill_overflow = true,
            }
            Some(Command::MassCancel(MassCancel {
                instrument: None,
                account: Some(account),
                client_order_id: ClientOrderId(0),
            }))
        } else {
            if let Some(a) = slot {
                if self.accounts[a as usize].killed {
                    self.accounts[a as usize].killed = false;
                    self.killed -= 1;
                    self.maybe_drop_account(a);
                }
            }
            if self.killed == 0 {
                self.kill_overflow = false;
            }
            None
        }
    }

    pub fn kill_switch(&self, account: AccountId) -> bool {
        match self.find_account(account) {
            Some(a) => self.accounts[a as usize].killed,
            None => self.kill_overflow,
        }
    }

    /// Orders of `account` live or in flight through this gateway.
    pub fn open_orders(&self, account: AccountId) -> u32 {
        self.find_account(account)
            .map_or(0, |a| self.accounts[a as usize].open_orders)
    }

    /// Open notional of `account` (orders live or in flight, plus increases reserved by
    /// replaces in flight), in the common scale of [`RiskConfig::notional_decimals`].
    pub fn open_notional(&self, account: AccountId) -> i128 {
        self.find_account(account)
            .map_or(0, |a| self.accounts[a as usize].open_notional)
    }

    /// The risk configuration in use (for its notional scale).
    pub fn risk(&self) -> &RiskConfig {
        &self.risk
    }

    /// The band `(lo, hi)` the gateway applies to `instrument` now.
    pub fn price_band(&self, instrument: InstrumentId) -> Option<(PriceTicks, PriceTicks)> {
        let b = self.bands.get(instrument.0 as usize)?;
        Some((PriceTicks(b.lo), PriceTicks(b.hi)))
    }

    /// Sets the last trade price of `instrument` (e.g. from the engine's reference price at
    /// start-up, when trades happened before this gateway started reading the output ring).
    pub fn set_last_trade(&mut self, instrument: InstrumentId, price: PriceTicks) {
        let i = instrument.0 as usize;
        if let (Some(band), Some(inst)) = (self.bands.get_mut(i), self.risk.instruments.get(i)) {
            band.last_trade = price.0.max(0);
            band.recompute(inst);
        }
    }

    /// Orders live or in flight.
    pub fn orders_in_use(&self) -> usize {
        self.orders.len() - self.order_free.len()
    }

    /// Requests waiting for their END frame.
    pub fn pending_requests(&self) -> usize {
        self.pending.len() - self.pending_free.len()
    }

    /// The oldest request still waiting for its END, as `(producer_ref, sent_ns)`: a request
    /// that waits long points at a stalled pipeline. Scans the pending table.
    pub fn oldest_pending(&self) -> Option<(u64, u64)> {
        self.pending
            .iter()
            .filter(|p| !matches!(p.kind, PendingKind::Free))
            .map(|p| (p.producer_ref, p.sent_ns))
            .min_by_key(|&(r, t)| (t, r))
    }

    /// Recomputes every account's open orders and open notional from the order and pending
    /// tables and checks them, with each open order's `cum + leaves == order qty`, its
    /// exposure, its index entries and its session list. For tests and the console: it
    /// allocates, and takes time proportional to the table sizes.
    pub fn audit(&self) -> Result<(), String> {
        let mut counts = vec![(0u32, 0i128); self.accounts.len()];
        let mut listed_in_sessions = 0usize;
        for (s, &(head, _)) in self.sessions.iter().enumerate() {
            let mut cur = head;
            let mut last_id = 0u64;
            while cur != NONE {
                let o = &self.orders[cur as usize];
                if o.phase != Phase::Live || usize::from(o.session.0) != s {
                    return Err(format!("session {s} lists slot {cur}, which is not its"));
                }
                if o.order_id.0 <= last_id {
                    return Err(format!("session {s} list is out of order-id order"));
                }
                last_id = o.order_id.0;
                listed_in_sessions += 1;
                cur = o.sess_next;
            }
        }
        let mut live = 0usize;
        for (slot, o) in self.orders.iter().enumerate() {
            let slot = slot as u32;
            if o.phase == Phase::Free {
                continue;
            }
            if o.phase == Phase::Live {
                live += 1;
                if self.find_order(o.order_id) != Some(slot) {
                    return Err(format!("order {} is not indexed", o.order_id));
                }
            }
            if self.find_key(o.session, &o.cl_ord_id) != Some(slot) {
                return Err(format!("ClOrdID {} is not indexed", o.cl_ord_id));
            }
            if o.cum_qty + o.leaves_qty != o.order_qty {
                return Err(format!(
                    "order {}: cum {} + leaves {} != qty {}",
                    o.order_id, o.cum_qty, o.leaves_qty, o.order_qty
                ));
            }
            if o.exposure != self.order_exposure(slot) {
                return Err(format!("order {}: stale exposure", o.order_id));
            }
            let c = &mut counts[o.account_slot as usize];
            c.0 += 1;
            c.1 += o.exposure;
        }
        if live != listed_in_sessions {
            return Err(format!(
                "{live} live orders but {listed_in_sessions} in session lists"
            ));
        }
        for p in &self.pending {
            if let PendingKind::Replace {
                reserved,
                account_slot,
                ..
            } = p.kind
            {
                if account_slot != NONE {
                    counts[account_slot as usize].1 += reserved;
                }
            }
        }
        for (a, s) in self.accounts.iter().enumerate() {
            if !s.in_use {
                continue;
            }
            if (s.open_orders, s.open_notional) != counts[a] {
                return Err(format!(
                    "account {}: open orders {} notional {}, recomputed {} and {}",
                    s.account, s.open_orders, s.open_notional, counts[a].0, counts[a].1
                ));
            }
            if self.find_account(s.account) != Some(a as u32) {
                return Err(format!("account {} is not indexed", s.account));
            }
        }
        if self.by_order_id.len != live {
            return Err("order-id index holds stale entries".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cl_ord_id_is_bounded_and_prints_as_text() {
        assert!(ClOrdId::new(b"").is_none());
        assert!(ClOrdId::new(&[b'a'; 65]).is_none());
        let c = ClOrdId::new(b"abc-1").unwrap();
        assert_eq!(c.as_bytes(), b"abc-1");
        assert_eq!(format!("{c:?}"), "ClOrdId(\"abc-1\")");
        assert_eq!(ClOrdId::new(&[b'x'; 64]).unwrap().as_bytes().len(), 64);
        assert_ne!(ClOrdId::new(b"a").unwrap(), ClOrdId::new(b"a\0").unwrap());
    }

    #[test]
    fn index_survives_churn_without_growing() {
        let mut keys: Vec<u64> = Vec::new();
        let mut index = Index::new(100);
        let capacity = index.slots.len();
        // Hashes chosen to collide heavily, so that backward shifts happen.
        let hash = |k: u64| (k % 7) as u32;
        let mut x = 1u64;
        for round in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if keys.len() < 100 && (x >> 60) % 2 == 0 {
                let k = round;
                index.insert(hash(k), k as u32);
                keys.push(k);
            } else if !keys.is_empty() {
                let i = (x >> 33) as usize % keys.len();
                let k = keys.swap_remove(i);
                assert!(index.remove(hash(k), k as u32));
            }
            for &k in &keys {
                assert_eq!(index.find(hash(k), |h| h == k as u32), Some(k as u32));
            }
        }
        assert_eq!(index.slots.len(), capacity);
        assert_eq!(index.len, keys.len());
    }
}
