//! Commands: what enters the engine, already sequenced and time-stamped by the sequencer.

use crate::types::{
    AccountId, ClientOrderId, InstrumentId, InstrumentStatus, OrderId, OrderType, PriceTicks,
    QtyLots, Side, StpGroup, StpMode, TimeInForce,
};

/// A command with the sequence number and timestamp the sequencer gave it. The engine takes
/// both from here and never reads a clock; `seq` must increase strictly and `ts_ns` must not
/// decrease from one command to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequencedCommand {
    pub seq: u64,
    pub ts_ns: u64,
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    NewOrder(NewOrder),
    Cancel(Cancel),
    Replace(Replace),
    MassCancel(MassCancel),
    /// Halt or resume an instrument (an operator command).
    SetStatus(SetStatus),
    /// End of the trading day: every DAY order expires.
    EndOfDay,
    /// Carries time only, so that GTD orders expire even when no other command arrives.
    Tick,
    /// Asks the engine for the fingerprint of one instrument's book (`Event::BookChecked`), so
    /// that market-data subscribers can prove their rebuilt book is the engine's. The sequencer
    /// sends these on a timer; they change no state.
    Checkpoint(Checkpoint),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub client_order_id: ClientOrderId,
    pub side: Side,
    pub order_type: OrderType,
    /// Limit price; ignored for market orders.
    pub price: PriceTicks,
    pub qty: QtyLots,
    /// Market orders must be IOC or FOK (the engine rejects other combinations with
    /// `InvalidOrderType`; the gateway maps FIX market-DAY orders to IOC).
    pub tif: TimeInForce,
    /// Expiry for GTD orders; must be 0 for every other time in force.
    pub expire_ts_ns: u64,
    /// Rejected if it would take liquidity on arrival.
    pub post_only: bool,
    pub stp_mode: StpMode,
    /// 0 means self-trade prevention is keyed by the account.
    pub stp_group: StpGroup,
}

impl NewOrder {
    /// A plain GTC limit order with default STP; a convenience for tests and tools.
    pub fn limit(
        instrument: InstrumentId,
        account: AccountId,
        client_order_id: ClientOrderId,
        side: Side,
        price: PriceTicks,
        qty: QtyLots,
    ) -> Self {
        NewOrder {
            instrument,
            account,
            client_order_id,
            side,
            order_type: OrderType::Limit,
            price,
            qty,
            tif: TimeInForce::Gtc,
            expire_ts_ns: 0,
            post_only: false,
            stp_mode: StpMode::CancelResting,
            stp_group: StpGroup(0),
        }
    }
}

/// Cancel a live order. The account must own the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancel {
    pub order_id: OrderId,
    pub account: AccountId,
    /// The client's id of this cancel request.
    pub client_order_id: ClientOrderId,
}

/// Change a live order's price and/or quantity. `qty` is the new *total* order quantity,
/// filled part included, as in FIX: the new open quantity is `qty - filled`, which stays
/// correct when fills race with the request. Reducing the open quantity at the same price keeps
/// time priority; any price change or quantity increase loses it, and a new price that crosses
/// the book trades at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replace {
    pub order_id: OrderId,
    pub account: AccountId,
    /// The client's id of this replace request; the order carries it from now on.
    pub client_order_id: ClientOrderId,
    pub price: PriceTicks,
    pub qty: QtyLots,
}

/// Cancel every live order matching the filter; `None` matches everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MassCancel {
    pub instrument: Option<InstrumentId>,
    pub account: Option<AccountId>,
    pub client_order_id: ClientOrderId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetStatus {
    pub instrument: InstrumentId,
    pub status: InstrumentStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub instrument: InstrumentId,
}
