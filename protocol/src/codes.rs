//! Stable business-outcome codes: why a request was rejected, why an order was cancelled or
//! expired.
//!
//! The numbers are part of the wire and journal formats and of the FIX text clients see. They
//! are grouped by the component that produces them (engine 1xx; gateway 2xx and sequencer 3xx
//! are reserved for those crates). A retired code keeps its number; new codes take new numbers.

use core::fmt;

/// Why the engine refused a request. The request had no effect on the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum RejectCode {
    /// The instrument id names no configured instrument.
    UnknownInstrument = 101,
    /// The instrument is halted: new orders and replaces are refused, cancels are allowed.
    InstrumentHalted = 102,
    /// No live order has this id for this account.
    UnknownOrder = 103,
    /// The price is not a multiple of the instrument's tick size.
    PriceOffTick = 104,
    /// The quantity is not a multiple of the instrument's lot size.
    QtyOffLot = 105,
    /// The quantity is zero.
    QtyZero = 106,
    /// A limit price is zero or negative.
    PriceNotPositive = 107,
    /// The quantity exceeds the instrument's maximum order quantity.
    QtyAboveMax = 108,
    /// Price times quantity exceeds the instrument's maximum order notional.
    NotionalAboveMax = 109,
    /// The limit price lies outside the reference price plus or minus the price band.
    PriceOutsideBand = 110,
    /// Every order slot is in use; the order was not accepted.
    OrderPoolFull = 111,
    /// Every price-level slot is in use, or this book side holds its maximum number of levels.
    LevelPoolFull = 112,
    /// A post-only order would have taken liquidity.
    PostOnlyWouldTake = 113,
    /// A value does not fit the engine's integer range. The engine widens its own arithmetic
    /// (notional in u128, quantities bounded by configuration) so it never needs this code;
    /// the edges use it when decimal text converts to more ticks or lots than fit.
    Overflow = 114,
    /// GTD without an expiry time, an expiry time already reached, or an expiry time on a
    /// non-GTD order.
    InvalidExpiry = 115,
    /// The GTD expiry queue is full; the order was not accepted.
    ExpiryQueueFull = 116,
    /// A combination the engine does not support, such as a post-only market order or a
    /// post-only IOC/FOK order.
    InvalidOrderType = 117,
    /// A replace's new total quantity is not above the quantity already filled.
    ReplaceQtyNotAboveFilled = 118,
    /// A replace that would change nothing.
    ReplaceNoChange = 119,
}

impl RejectCode {
    /// Every code, in number order.
    pub const ALL: &'static [RejectCode] = &[
        RejectCode::UnknownInstrument,
        RejectCode::InstrumentHalted,
        RejectCode::UnknownOrder,
        RejectCode::PriceOffTick,
        RejectCode::QtyOffLot,
        RejectCode::QtyZero,
        RejectCode::PriceNotPositive,
        RejectCode::QtyAboveMax,
        RejectCode::NotionalAboveMax,
        RejectCode::PriceOutsideBand,
        RejectCode::OrderPoolFull,
        RejectCode::LevelPoolFull,
        RejectCode::PostOnlyWouldTake,
        RejectCode::Overflow,
        RejectCode::InvalidExpiry,
        RejectCode::ExpiryQueueFull,
        RejectCode::InvalidOrderType,
        RejectCode::ReplaceQtyNotAboveFilled,
        RejectCode::ReplaceNoChange,
    ];

    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    pub fn from_u16(value: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_u16() == value)
    }

    /// A short, stable, human-readable explanation (used for FIX Text and CLI output).
    pub const fn text(self) -> &'static str {
        match self {
            RejectCode::UnknownInstrument => "unknown instrument",
            RejectCode::InstrumentHalted => "instrument is halted",
            RejectCode::UnknownOrder => "unknown order",
            RejectCode::PriceOffTick => "price is not a multiple of the tick size",
            RejectCode::QtyOffLot => "quantity is not a multiple of the lot size",
            RejectCode::QtyZero => "quantity must be positive",
            RejectCode::PriceNotPositive => "limit price must be positive",
            RejectCode::QtyAboveMax => "quantity above the instrument maximum",
            RejectCode::NotionalAboveMax => "notional above the instrument maximum",
            RejectCode::PriceOutsideBand => "price outside the price band",
            RejectCode::OrderPoolFull => "order capacity exhausted",
            RejectCode::LevelPoolFull => "price level capacity exhausted",
            RejectCode::PostOnlyWouldTake => "post-only order would take liquidity",
            RejectCode::Overflow => "arithmetic overflow on order values",
            RejectCode::InvalidExpiry => "invalid expiry time for the time in force",
            RejectCode::ExpiryQueueFull => "GTD order capacity exhausted",
            RejectCode::InvalidOrderType => "unsupported order type combination",
            RejectCode::ReplaceQtyNotAboveFilled => "new quantity not above filled quantity",
            RejectCode::ReplaceNoChange => "replace changes nothing",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.as_u16())
    }
}

/// Why a live order (or the rest of an incoming one) was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum CancelReason {
    /// The owner asked for it.
    Requested = 1,
    /// The unfilled rest of an IOC order.
    IocRemainder = 2,
    /// A FOK order that could not fill completely; nothing traded.
    FokUnfillable = 3,
    /// A market order found no liquidity (at all, or left) on the other side.
    MarketNoLiquidity = 4,
    /// A market order stopped at the edge of the price band with quantity left.
    MarketPriceBand = 5,
    /// Self-trade prevention cancelled the resting order.
    SelfTradeResting = 6,
    /// Self-trade prevention cancelled the rest of the incoming order.
    SelfTradeAggressor = 7,
    /// Self-trade prevention (decrement and cancel) used up this order.
    SelfTradeDecrement = 8,
    /// A mass cancel by account and/or instrument.
    MassCancel = 9,
}

/// Why a resting order expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ExpireReason {
    /// A DAY order at the end-of-day command.
    EndOfDay = 1,
    /// A GTD order whose expiry time was reached.
    GoodTillDate = 2,
}

/// Which kind of request a reject answers, so that the gateway can pick the right FIX reply
/// (ExecutionReport for a new order, OrderCancelReject for a cancel or replace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RequestKind {
    NewOrder = 1,
    Cancel = 2,
    Replace = 3,
    MassCancel = 4,
    SetStatus = 5,
}

macro_rules! u8_codes {
    ($($name:ident { $($variant:ident),* $(,)? })*) => {$(
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub const fn as_u8(self) -> u8 {
                self as u8
            }
            pub fn from_u8(value: u8) -> Option<Self> {
                Self::ALL.iter().copied().find(|c| c.as_u8() == value)
            }
        }
    )*};
}
u8_codes! {
    CancelReason {
        Requested, IocRemainder, FokUnfillable, MarketNoLiquidity, MarketPriceBand,
        SelfTradeResting, SelfTradeAggressor, SelfTradeDecrement, MassCancel,
    }
    ExpireReason { EndOfDay, GoodTillDate }
    RequestKind { NewOrder, Cancel, Replace, MassCancel, SetStatus }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards the stability promise: these numbers are on the wire and in journals.
    #[test]
    fn reject_codes_keep_their_numbers() {
        let expected: &[(RejectCode, u16)] = &[
            (RejectCode::UnknownInstrument, 101),
            (RejectCode::InstrumentHalted, 102),
            (RejectCode::UnknownOrder, 103),
            (RejectCode::PriceOffTick, 104),
            (RejectCode::QtyOffLot, 105),
            (RejectCode::QtyZero, 106),
            (RejectCode::PriceNotPositive, 107),
            (RejectCode::QtyAboveMax, 108),
            (RejectCode::NotionalAboveMax, 109),
            (RejectCode::PriceOutsideBand, 110),
            (RejectCode::OrderPoolFull, 111),
            (RejectCode::LevelPoolFull, 112),
            (RejectCode::PostOnlyWouldTake, 113),
            (RejectCode::Overflow, 114),
            (RejectCode::InvalidExpiry, 115),
            (RejectCode::ExpiryQueueFull, 116),
            (RejectCode::InvalidOrderType, 117),
            (RejectCode::ReplaceQtyNotAboveFilled, 118),
            (RejectCode::ReplaceNoChange, 119),
        ];
        assert_eq!(expected.len(), RejectCode::ALL.len());
        for (code, number) in expected {
            assert_eq!(code.as_u16(), *number, "{code:?}");
            assert_eq!(RejectCode::from_u16(*number), Some(*code));
        }
        assert_eq!(RejectCode::from_u16(0), None);
        assert_eq!(RejectCode::from_u16(100), None);
    }

    #[test]
    fn reason_codes_round_trip() {
        for r in CancelReason::ALL {
            assert_eq!(CancelReason::from_u8(r.as_u8()), Some(*r));
        }
        assert_eq!(CancelReason::Requested.as_u8(), 1);
        assert_eq!(CancelReason::MassCancel.as_u8(), 9);
        assert_eq!(ExpireReason::GoodTillDate.as_u8(), 2);
        assert_eq!(RequestKind::from_u8(0), None);
    }
}
