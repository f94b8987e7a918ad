//! Integer newtypes for prices, quantities and identifiers, and the small enums of an order.
//!
//! Every enum here has explicit, stable discriminants because they cross process boundaries
//! (rings, journal, feeds); a retired value keeps its number and is never reused.

use core::fmt;

/// A price as a whole number of the instrument's price quanta ("ticks"). Signed so that
/// arithmetic on differences is natural; the engine rejects non-positive limit prices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PriceTicks(pub i64);

/// A quantity as a whole number of the instrument's quantity quanta ("lots").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct QtyLots(pub u64);

/// Engine-assigned order identifier: the sequence number of the command that created the
/// order. That makes ids unique for the life of a journal, monotonic, and traceable to the
/// journal record that created them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct OrderId(pub u64);

/// Engine-assigned trade identifier, dense from 1 in execution order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct TradeId(pub u64);

/// Dense index of an instrument in the engine's configuration (0-based).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct InstrumentId(pub u32);

/// Trading account. Self-trade prevention is keyed by account unless an STP group is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct AccountId(pub u32);

/// The client's own identifier for a request, carried through to every event about it. The
/// gateway maps FIX ClOrdID strings to these numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct ClientOrderId(pub u64);

/// Explicit self-trade-prevention group; 0 means "use the account".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct StpGroup(pub u32);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_inner!(
    PriceTicks,
    QtyLots,
    OrderId,
    TradeId,
    InstrumentId,
    AccountId,
    ClientOrderId,
    StpGroup
);

/// Generates `from_u8` and `as_u8` for a fieldless enum with explicit discriminants, so that
/// decoders return `None` for unknown values instead of transmuting.
macro_rules! u8_enum {
    ($name:ident { $($variant:ident = $value:expr),* $(,)? }) => {
        impl $name {
            /// Every variant, in discriminant order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stable wire value.
            pub const fn as_u8(self) -> u8 {
                self as u8
            }

            /// Decodes a wire value; `None` for a value that names no variant.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Side {
    Buy = 1,
    Sell = 2,
}
u8_enum!(Side { Buy = 1, Sell = 2 });

impl Side {
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum OrderType {
    Limit = 1,
    /// Executes immediately against the book but never outside the instrument's price band;
    /// whatever cannot execute within the band is cancelled.
    Market = 2,
}
u8_enum!(OrderType { Limit = 1, Market = 2 });

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TimeInForce {
    /// Good till cancelled.
    Gtc = 1,
    /// Expires at the next end-of-day command.
    Day = 2,
    /// Good till date: expires when a command's `ts_ns` reaches `expire_ts_ns`.
    Gtd = 3,
    /// Immediate or cancel: the unfilled rest is cancelled.
    Ioc = 4,
    /// Fill or kill: fills completely at once or not at all, with no side effects.
    Fok = 5,
}
u8_enum!(TimeInForce { Gtc = 1, Day = 2, Gtd = 3, Ioc = 4, Fok = 5 });

impl TimeInForce {
    /// Whether an order with this time in force may rest in the book.
    pub const fn rests(self) -> bool {
        matches!(self, TimeInForce::Gtc | TimeInForce::Day | TimeInForce::Gtd)
    }
}

/// Self-trade prevention: what happens when an incoming order would trade with a resting order
/// of the same account (or STP group). The aggressor's instruction decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum StpMode {
    /// Cancel the resting order and keep matching (the default).
    #[default]
    CancelResting = 0,
    /// Cancel the rest of the incoming order; resting orders stay.
    CancelAggressor = 1,
    /// Cancel both the resting order and the rest of the incoming order.
    CancelBoth = 2,
    /// Reduce both by the smaller quantity; the smaller one is thereby cancelled.
    DecrementCancel = 3,
    /// No prevention: self trades happen. Meant for replaying external data without accounts.
    Off = 4,
}
u8_enum!(StpMode {
    CancelResting = 0,
    CancelAggressor = 1,
    CancelBoth = 2,
    DecrementCancel = 3,
    Off = 4,
});

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum InstrumentStatus {
    #[default]
    Open = 1,
    /// New orders and replaces are rejected; cancels are allowed.
    Halted = 2,
}
u8_enum!(InstrumentStatus { Open = 1, Halted = 2 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_reject_unknown_values() {
        for v in 0..=u8::MAX {
            if let Some(s) = Side::from_u8(v) {
                assert_eq!(s.as_u8(), v);
            }
            if let Some(t) = TimeInForce::from_u8(v) {
                assert_eq!(t.as_u8(), v);
            }
            if let Some(m) = StpMode::from_u8(v) {
                assert_eq!(m.as_u8(), v);
            }
        }
        assert_eq!(Side::from_u8(0), None);
        assert_eq!(Side::from_u8(3), None);
        assert_eq!(TimeInForce::ALL.len(), 5);
        assert_eq!(StpMode::from_u8(5), None);
        assert_eq!(Side::Buy.opposite(), Side::Sell);
    }
}
