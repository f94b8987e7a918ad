//! Pre-trade risk: account limits, the gateway's copy of the engine's price bands, and the
//! reject codes the gateway adds to the engine's.
//!
//! Limits are configured in decimal units (TOML strings read with `rust_decimal`, as in the
//! engine's configuration) and converted once, in [`RiskConfig::new`], to the integer units
//! the checks use:
//!
//! - quantities per instrument in lots (10^-`qty_decimals` of the base unit), rounded down, so
//!   that a limit of 1.5 units on an instrument traded in whole units allows 1;
//! - notionals in one *common notional scale* shared by all instruments, so that one credit
//!   limit covers orders in several instruments: a unit is 10^-`N` of the currency, where `N`
//!   is the largest `price_decimals + qty_decimals` of the configured instruments (see
//!   [`RiskConfig::notional_decimals`]). An order's notional is `price × qty ×
//!   10^(N − price_decimals − qty_decimals)`, which is exact; limits are rounded down to it.
//!
//! All arithmetic on client values is checked: an order whose notional does not fit in `i128`
//! is refused with [`GatewayReject::ValueOverflow`], never a panic. Limits too large for the
//! integer range saturate, which makes them effectively unlimited.
//!
//! Price bands: the gateway refuses a limit order outside the instrument's band before it is
//! sequenced, with the engine's exact rule (`docs/matching-rules.md`): the reference is the
//! last trade price (else the configured reference price), the band is `reference × bps /
//! 10_000` (i128, integer division) or a number of ticks, and the edges saturate. The gateway
//! follows the last trade price from every `Trade` event on the output ring, whichever
//! producer caused it, so it agrees with the engine except for races (a trade of another
//! gateway that the engine has applied but this gateway has not yet read). In a race the
//! engine's own band check still applies, so the only effect is which of the two refuses the
//! order. A market order's notional and credit use its protection price, the band edge (buy:
//! high edge, sell: low edge), as the engine does.

use core::fmt;

use ferrox_engine::{InstrumentSpec, PriceBand};
use ferrox_protocol::{AccountId, InstrumentId, InstrumentStatus, RejectCode, Side};
use rust_decimal::Decimal;
use serde::Deserialize;

// ----- text -----------------------------------------------------------------------------

/// A short text stored inline (no heap), for FIX `Text` (58). Writing more than fits
/// truncates at a character boundary.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text {
    len: u8,
    bytes: [u8; Text::CAPACITY],
}

impl Text {
    /// The most bytes a text holds.
    pub const CAPACITY: usize = 127;

    pub const EMPTY: Text = Text {
        len: 0,
        bytes: [0; Text::CAPACITY],
    };

    /// A copy of `s`, truncated to [`Text::CAPACITY`] bytes at a character boundary.
    pub fn from_str_truncated(s: &str) -> Text {
        let mut t = Text::EMPTY;
        t.push_str(s);
        t
    }

    pub fn as_str(&self) -> &str {
        // Only whole characters are ever stored, so this never fails.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    fn push_str(&mut self, s: &str) {
        let used = usize::from(self.len);
        let room = Text::CAPACITY - used;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[used..used + take].copy_from_slice(&s.as_bytes()[..take]);
        // take <= CAPACITY < 256.
        self.len = (used + take) as u8;
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::EMPTY
    }
}

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Truncation is not an error: a shortened explanation is better than none.
        self.push_str(s);
        Ok(())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes `value` × 10^-`decimals` as a decimal number without trailing zeros.
pub(crate) fn write_decimal(w: &mut impl fmt::Write, value: i128, decimals: u32) -> fmt::Result {
    let Some(p) = 10u128.checked_pow(decimals) else {
        return write!(w, "{value}e-{decimals}");
    };
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let int = abs / p;
    let mut frac = abs % p;
    let mut digits = decimals;
    while digits > 0 && frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    if digits == 0 {
        write!(w, "{sign}{int}")
    } else {
        write!(w, "{sign}{int}.{frac:0width$}", width = digits as usize)
    }
}

// ----- reject codes ---------------------------------------------------------------------

/// Why the gateway refused a request before it reached the engine. The numbers are stable
/// (the gateway's 2xx range of `ferrox_protocol::codes`); a retired code keeps its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum GatewayReject {
    /// The session sent faster than its throttle allows.
    ThrottleExceeded = 201,
    /// The ClOrdID is the current ClOrdID of a live order of this session.
    DuplicateClOrdId = 202,
    /// The ClOrdID is used by a request of this session that the engine has not yet answered.
    ClOrdIdInUse = 203,
    /// No live order of this session and account has this OrigClOrdID (or OrderID).
    UnknownClOrdId = 204,
    /// The order quantity is above the account's maximum for the instrument.
    OrderQtyAboveAccountMax = 205,
    /// Price times quantity is above the account's maximum order notional.
    NotionalAboveAccountMax = 206,
    /// The account already has its maximum number of open orders.
    OpenOrdersAboveMax = 207,
    /// The account's open notional plus this order's would exceed its credit limit.
    CreditLimitExceeded = 208,
    /// The limit price is outside the instrument's price band (checked before sequencing).
    PriceOutsideBand = 209,
    /// The operator's kill switch blocks new orders and replaces of this account.
    AccountBlocked = 210,
    /// The account is not configured and the configuration admits listed accounts only.
    AccountNotPermitted = 211,
    /// Too many requests are waiting for the engine's answer.
    PendingTableFull = 212,
    /// The gateway's order table is full.
    OrderTableFull = 213,
    /// The instrument id names no configured instrument.
    InstrumentUnknown = 214,
    /// The request could not be handed to the exchange (input ring full, engine gone).
    ExchangeUnavailable = 215,
    /// The gateway's table of accounts with open orders is full.
    AccountTableFull = 216,
    /// The session id is outside the configured sessions.
    SessionUnknown = 217,
    /// A cancel or replace of this order is already waiting for the engine's answer.
    RequestAlreadyPending = 218,
    /// The order has not been acknowledged by the engine yet, so it cannot be changed.
    OrderNotAcknowledged = 219,
    /// A limit order without a price.
    PriceMissing = 220,
    /// An order value (notional) does not fit the integer range.
    ValueOverflow = 221,
    /// The engine acknowledged the request without answering it; nothing is known to have
    /// happened.
    NoEngineResponse = 222,
    /// An order status request names no order this session has open.
    UnknownOrder = 223,
    /// The price is not a valid decimal number for the instrument.
    InvalidPrice = 224,
    /// The price is not a multiple of the instrument's tick size (checked at the FIX edge).
    PriceOffTick = 225,
    /// The quantity is missing, not positive or not a valid decimal for the instrument.
    InvalidQty = 226,
    /// The quantity is not a multiple of the instrument's lot size (checked at the FIX edge).
    QtyOffLot = 227,
    /// A field value or combination this gateway does not support.
    Unsupported = 228,
    /// The ClOrdID is empty or longer than 64 bytes.
    InvalidClOrdId = 229,
    /// The expiry time is missing, malformed or not allowed with the time in force.
    InvalidExpiry = 230,
    /// The session's table of the day's ClOrdIDs is full.
    ClOrdIdTableFull = 231,
}

impl GatewayReject {
    /// Every code, in number order.
    pub const ALL: &'static [GatewayReject] = &[
        GatewayReject::ThrottleExceeded,
        GatewayReject::DuplicateClOrdId,
        GatewayReject::ClOrdIdInUse,
        GatewayReject::UnknownClOrdId,
        GatewayReject::OrderQtyAboveAccountMax,
        GatewayReject::NotionalAboveAccountMax,
        GatewayReject::OpenOrdersAboveMax,
        GatewayReject::CreditLimitExceeded,
        GatewayReject::PriceOutsideBand,
        GatewayReject::AccountBlocked,
        GatewayReject::AccountNotPermitted,
        GatewayReject::PendingTableFull,
        GatewayReject::OrderTableFull,
        GatewayReject::InstrumentUnknown,
        GatewayReject::ExchangeUnavailable,
        GatewayReject::AccountTableFull,
        GatewayReject::SessionUnknown,
        GatewayReject::RequestAlreadyPending,
        GatewayReject::OrderNotAcknowledged,
        GatewayReject::PriceMissing,
        GatewayReject::ValueOverflow,
        GatewayReject::NoEngineResponse,
        GatewayReject::UnknownOrder,
        GatewayReject::InvalidPrice,
        GatewayReject::PriceOffTick,
        GatewayReject::InvalidQty,
        GatewayReject::QtyOffLot,
        GatewayReject::Unsupported,
        GatewayReject::InvalidClOrdId,
        GatewayReject::InvalidExpiry,
        GatewayReject::ClOrdIdTableFull,
    ];

    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    pub fn from_u16(value: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_u16() == value)
    }

    /// A short, stable, human-readable explanation. Reports built by the order manager carry
    /// a more specific text with the values involved where there are any.
    pub const fn text(self) -> &'static str {
        match self {
            GatewayReject::ThrottleExceeded => "message rate above the session limit",
            GatewayReject::DuplicateClOrdId => "ClOrdID is used by a live order",
            GatewayReject::ClOrdIdInUse => "ClOrdID is used by a request in flight",
            GatewayReject::UnknownClOrdId => "unknown order",
            GatewayReject::OrderQtyAboveAccountMax => "order quantity above the account maximum",
            GatewayReject::NotionalAboveAccountMax => "order notional above the account maximum",
            GatewayReject::OpenOrdersAboveMax => "open orders at the account maximum",
            GatewayReject::CreditLimitExceeded => "account credit limit exceeded",
            GatewayReject::PriceOutsideBand => "price outside the price band",
            GatewayReject::AccountBlocked => "account blocked by the kill switch",
            GatewayReject::AccountNotPermitted => "account not permitted",
            GatewayReject::PendingTableFull => "too many requests in flight",
            GatewayReject::OrderTableFull => "gateway order capacity exhausted",
            GatewayReject::InstrumentUnknown => "unknown instrument",
            GatewayReject::ExchangeUnavailable => "exchange unavailable",
            GatewayReject::AccountTableFull => "gateway account capacity exhausted",
            GatewayReject::SessionUnknown => "unknown session",
            GatewayReject::RequestAlreadyPending => {
                "a cancel or replace of this order is already pending"
            }
            GatewayReject::OrderNotAcknowledged => "order not yet acknowledged by the exchange",
            GatewayReject::PriceMissing => "limit order without a price",
            GatewayReject::ValueOverflow => "order value out of range",
            GatewayReject::NoEngineResponse => "no response from the exchange",
            GatewayReject::UnknownOrder => "unknown order",
            GatewayReject::InvalidPrice => "invalid price",
            GatewayReject::PriceOffTick => "price is not a multiple of the tick size",
            GatewayReject::InvalidQty => "invalid quantity",
            GatewayReject::QtyOffLot => "quantity is not a multiple of the lot size",
            GatewayReject::Unsupported => "unsupported request",
            GatewayReject::InvalidClOrdId => "ClOrdID must be 1 to 64 bytes",
            GatewayReject::InvalidExpiry => "invalid expiry time",
            GatewayReject::ClOrdIdTableFull => "ClOrdID capacity of the session exhausted",
        }
    }

    /// FIX OrdRejReason (103) for an ExecutionReport rejecting a new order.
    pub const fn fix_ord_rej_reason(self) -> u32 {
        match self {
            GatewayReject::DuplicateClOrdId | GatewayReject::ClOrdIdInUse => 6,
            GatewayReject::UnknownClOrdId | GatewayReject::UnknownOrder => 5,
            GatewayReject::InstrumentUnknown => 1,
            GatewayReject::InvalidQty | GatewayReject::QtyOffLot => 13,
            GatewayReject::Unsupported => 11,
            GatewayReject::OrderQtyAboveAccountMax
            | GatewayReject::NotionalAboveAccountMax
            | GatewayReject::OpenOrdersAboveMax
            | GatewayReject::CreditLimitExceeded => 3,
            GatewayReject::AccountBlocked
            | GatewayReject::AccountNotPermitted
            | GatewayReject::PendingTableFull
            | GatewayReject::OrderTableFull
            | GatewayReject::AccountTableFull
            | GatewayReject::ClOrdIdTableFull => 0,
            GatewayReject::ExchangeUnavailable | GatewayReject::NoEngineResponse => 2,
            GatewayReject::ThrottleExceeded
            | GatewayReject::PriceOutsideBand
            | GatewayReject::SessionUnknown
            | GatewayReject::RequestAlreadyPending
            | GatewayReject::OrderNotAcknowledged
            | GatewayReject::PriceMissing
            | GatewayReject::ValueOverflow
            | GatewayReject::InvalidPrice
            | GatewayReject::PriceOffTick
            | GatewayReject::InvalidClOrdId
            | GatewayReject::InvalidExpiry => 99,
        }
    }

    /// FIX CxlRejReason (102) for an OrderCancelReject.
    pub const fn fix_cxl_rej_reason(self) -> u32 {
        match self {
            GatewayReject::DuplicateClOrdId | GatewayReject::ClOrdIdInUse => 6,
            GatewayReject::UnknownClOrdId | GatewayReject::UnknownOrder => 1,
            GatewayReject::RequestAlreadyPending => 3,
            GatewayReject::OrderQtyAboveAccountMax
            | GatewayReject::NotionalAboveAccountMax
            | GatewayReject::OpenOrdersAboveMax
            | GatewayReject::CreditLimitExceeded
            | GatewayReject::AccountBlocked
            | GatewayReject::AccountNotPermitted
            | GatewayReject::PendingTableFull
            | GatewayReject::OrderTableFull
            | GatewayReject::AccountTableFull
            | GatewayReject::ClOrdIdTableFull
            | GatewayReject::ExchangeUnavailable => 2,
            GatewayReject::ThrottleExceeded
            | GatewayReject::PriceOutsideBand
            | GatewayReject::InstrumentUnknown
            | GatewayReject::SessionUnknown
            | GatewayReject::OrderNotAcknowledged
            | GatewayReject::PriceMissing
            | GatewayReject::ValueOverflow
            | GatewayReject::NoEngineResponse
            | GatewayReject::InvalidPrice
            | GatewayReject::PriceOffTick
            | GatewayReject::InvalidQty
            | GatewayReject::QtyOffLot
            | GatewayReject::Unsupported
            | GatewayReject::InvalidClOrdId
            | GatewayReject::InvalidExpiry => 99,
        }
    }
}

impl fmt::Display for GatewayReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.as_u16())
    }
}

/// FIX OrdRejReason (103) for an engine reject of a new order.
const fn engine_ord_rej_reason(code: RejectCode) -> u32 {
    match code {
        RejectCode::UnknownInstrument => 1,
        RejectCode::InstrumentHalted => 2,
        RejectCode::UnknownOrder => 5,
        RejectCode::QtyOffLot | RejectCode::QtyZero | RejectCode::ReplaceQtyNotAboveFilled => 13,
        RejectCode::QtyAboveMax | RejectCode::NotionalAboveMax => 3,
        RejectCode::InvalidOrderType => 11,
        // Capacity is the exchange's decision, not a fault of the order.
        RejectCode::OrderPoolFull | RejectCode::LevelPoolFull | RejectCode::ExpiryQueueFull => 0,
        // FIX 4.4 has no values for these; the text says what was wrong.
        RejectCode::PriceOffTick
        | RejectCode::PriceNotPositive
        | RejectCode::PriceOutsideBand
        | RejectCode::PostOnlyWouldTake
        | RejectCode::Overflow
        | RejectCode::InvalidExpiry
        | RejectCode::ReplaceNoChange => 99,
    }
}

/// FIX CxlRejReason (102) for an engine reject of a cancel or replace.
const fn engine_cxl_rej_reason(code: RejectCode) -> u32 {
    match code {
        RejectCode::UnknownOrder => 1,
        RejectCode::InstrumentHalted
        | RejectCode::OrderPoolFull
        | RejectCode::LevelPoolFull
        | RejectCode::ExpiryQueueFull => 2,
        _ => 99,
    }
}

/// Why a request was refused: by the gateway before sequencing, or by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    Gateway(GatewayReject),
    Engine(RejectCode),
}

impl Reject {
    /// The stable number: 2xx for the gateway, 1xx for the engine.
    pub const fn code(self) -> u16 {
        match self {
            Reject::Gateway(g) => g.as_u16(),
            Reject::Engine(e) => e.as_u16(),
        }
    }

    pub const fn text(self) -> &'static str {
        match self {
            Reject::Gateway(g) => g.text(),
            Reject::Engine(e) => e.text(),
        }
    }

    /// FIX OrdRejReason (103): 0 broker option, 1 unknown symbol, 2 exchange closed, 3 order
    /// exceeds limit, 5 unknown order, 6 duplicate order, 11 unsupported order
    /// characteristic, 13 incorrect quantity, 99 other.
    pub const fn fix_ord_rej_reason(self) -> u32 {
        match self {
            Reject::Gateway(g) => g.fix_ord_rej_reason(),
            Reject::Engine(e) => engine_ord_rej_reason(e),
        }
    }

    /// FIX CxlRejReason (102): 0 too late to cancel, 1 unknown order, 2 broker option, 3
    /// already pending, 6 duplicate ClOrdID, 99 other.
    pub const fn fix_cxl_rej_reason(self) -> u32 {
        match self {
            Reject::Gateway(g) => g.fix_cxl_rej_reason(),
            Reject::Engine(e) => engine_cxl_rej_reason(e),
        }
    }

    /// FIX MassCancelRejectReason (532): 1 unknown security, 99 other.
    pub const fn fix_mass_cancel_reject_reason(self) -> u32 {
        match self {
            Reject::Gateway(GatewayReject::InstrumentUnknown)
            | Reject::Engine(RejectCode::UnknownInstrument) => 1,
            _ => 99,
        }
    }
}

impl From<GatewayReject> for Reject {
    fn from(g: GatewayReject) -> Self {
        Reject::Gateway(g)
    }
}

impl From<RejectCode> for Reject {
    fn from(e: RejectCode) -> Self {
        Reject::Engine(e)
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.code())
    }
}

// ----- configuration --------------------------------------------------------------------

/// One account's limits as written in the configuration. Every limit is optional; a missing
/// one does not limit. Quantities are in base units and notionals in currency, as decimal
/// strings (e.g. `order_qty_max = "1000"`, `open_notional_max = "2500000.00"`). As the
/// `default_limits` entry, `account` may be omitted and is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountLimitsFile {
    #[serde(default)]
    pub account: u32,
    /// Largest quantity of one order, in base units (per instrument).
    #[serde(default)]
    pub order_qty_max: Option<Decimal>,
    /// Largest price × quantity of one order, in currency.
    #[serde(default)]
    pub order_notional_max: Option<Decimal>,
    /// Most orders open at once (live or in flight), over all instruments. Whatever this
    /// says, the gateway's order table bounds it too.
    #[serde(default)]
    pub open_orders_max: Option<u32>,
    /// Credit limit: most open notional (price × open quantity over all open orders and
    /// orders in flight), in currency.
    #[serde(default)]
    pub open_notional_max: Option<Decimal>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RiskConfigError {
    #[error("account {account}: {field} must not be negative")]
    Negative { account: u32, field: &'static str },
    #[error("account {0} has limits configured twice")]
    DuplicateAccount(u32),
    #[error(
        "instrument {symbol}: price_decimals + qty_decimals = {decimals}, above the 36 the \
         common notional scale supports"
    )]
    Decimals { symbol: String, decimals: u32 },
}

/// Integer limits of one row (an account, or the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LimitRow {
    /// In the common notional scale; `i128::MAX` when unlimited.
    pub(crate) order_notional_max: i128,
    /// `u32::MAX` when unlimited (the order table bounds it anyway).
    pub(crate) open_orders_max: u32,
    /// In the common notional scale; `i128::MAX` when unlimited.
    pub(crate) open_notional_max: i128,
}

/// Per-instrument constants of the checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InstrumentRisk {
    /// 10^(N − price_decimals − qty_decimals): ticks × lots to the common notional scale.
    pub(crate) notional_factor: i128,
    pub(crate) price_decimals: u32,
    pub(crate) qty_decimals: u32,
    pub(crate) tick_size: i64,
    pub(crate) lot_size: u64,
    pub(crate) qty_max: u64,
    pub(crate) reference_price: i64,
    pub(crate) band: PriceBand,
    pub(crate) status: InstrumentStatus,
}

/// Validated risk configuration, converted to integer units for one list of instruments.
#[derive(Clone, Debug)]
pub struct RiskConfig {
    pub(crate) notional_decimals: u32,
    pub(crate) instruments: Vec<InstrumentRisk>,
    /// Row 0 is the default for unlisted accounts; row i + 1 is `accounts[i]`.
    pub(crate) rows: Vec<LimitRow>,
    /// Order quantity maximum in lots, `rows.len() × instruments.len()`, row-major.
    pub(crate) qty_max: Vec<u64>,
    /// Listed accounts and their rows, sorted by account.
    pub(crate) listed: Vec<(AccountId, u32)>,
    pub(crate) allow_unlisted: bool,
}

/// 10^k as i128, or `None` above 10^38.
fn pow10(k: u32) -> Option<i128> {
    10i128.checked_pow(k)
}

/// `value` (not negative) in units of 10^-`decimals`, rounded down; saturates at `i128::MAX`.
fn floor_units(value: Decimal, decimals: u32) -> i128 {
    let mantissa = value.mantissa();
    let scale = value.scale();
    if decimals >= scale {
        pow10(decimals - scale)
            .and_then(|p| mantissa.checked_mul(p))
            .unwrap_or(i128::MAX)
    } else {
        // scale <= 28, so the power always exists.
        pow10(scale - decimals).map_or(0, |p| mantissa / p)
    }
}

impl RiskConfig {
    /// Validates the limits and converts them for `instruments` (indexed by `InstrumentId`).
    /// `default` applies to accounts not listed; `None` leaves them unlimited.
    pub fn new(
        accounts: &[AccountLimitsFile],
        default: Option<&AccountLimitsFile>,
        instruments: &[InstrumentSpec],
    ) -> Result<RiskConfig, RiskConfigError> {
        let mut notional_decimals = 0;
        for spec in instruments {
            let decimals = spec.price_decimals.saturating_add(spec.qty_decimals);
            if decimals > 36 {
                return Err(RiskConfigError::Decimals {
                    symbol: spec.symbol.clone(),
                    decimals,
                });
            }
            notional_decimals = notional_decimals.max(decimals);
        }
        let instrument_risk: Vec<InstrumentRisk> = instruments
            .iter()
            .map(|spec| InstrumentRisk {
                // Both exponents are at most 36, checked above.
                notional_factor: pow10(notional_decimals - spec.price_decimals - spec.qty_decimals)
                    .unwrap_or(i128::MAX),
                price_decimals: spec.price_decimals,
                qty_decimals: spec.qty_decimals,
                tick_size: spec.tick_size.0.max(1),
                lot_size: spec.lot_size.0.max(1),
                qty_max: spec.qty_max.0,
                reference_price: spec.reference_price.0,
                band: spec.price_band,
                status: spec.status,
            })
            .collect();
        let mut listed: Vec<(AccountId, u32)> = Vec::with_capacity(accounts.len());
        let mut rows = Vec::with_capacity(accounts.len() + 1);
        let mut qty_max = Vec::with_capacity((accounts.len() + 1) * instruments.len());
        let unlimited = AccountLimitsFile::default();
        let files = core::iter::once(default.unwrap_or(&unlimited)).chain(accounts.iter());
        for (row, file) in files.enumerate() {
            let negative = |field: &'static str| RiskConfigError::Negative {
                account: file.account,
                field,
            };
            let check = |v: Option<Decimal>, field| match v {
                Some(d) if d.is_sign_negative() && !d.is_zero() => Err(negative(field)),
                _ => Ok(v),
            };
            let order_qty = check(file.order_qty_max, "order_qty_max")?;
            let order_notional = check(file.order_notional_max, "order_notional_max")?;
            let open_notional = check(file.open_notional_max, "open_notional_max")?;
            rows.push(LimitRow {
                order_notional_max: order_notional
                    .map_or(i128::MAX, |d| floor_units(d, notional_decimals)),
                open_orders_max: file.open_orders_max.unwrap_or(u32::MAX),
                open_notional_max: open_notional
                    .map_or(i128::MAX, |d| floor_units(d, notional_decimals)),
            });
            for i in &instrument_risk {
                qty_max.push(order_qty.map_or(u64::MAX, |d| {
                    u64::try_from(floor_units(d, i.qty_decimals)).unwrap_or(u64::MAX)
                }));
            }
            if row > 0 {
                listed.push((AccountId(file.account), row as u32));
            }
        }
        listed.sort_unstable();
        if let Some(w) = listed.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(RiskConfigError::DuplicateAccount(w[0].0 .0));
        }
        Ok(RiskConfig {
            notional_decimals,
            instruments: instrument_risk,
            rows,
            qty_max,
            listed,
            allow_unlisted: true,
        })
    }

    /// The same limits, but accounts that are not listed are refused
    /// ([`GatewayReject::AccountNotPermitted`]) instead of getting the default limits.
    pub fn listed_accounts_only(mut self) -> RiskConfig {
        self.allow_unlisted = false;
        self
    }

    /// `N`: one unit of notional (in limits, [`crate::orders::OrderManager::open_notional`]
    /// and reports' texts) is 10^-N of the currency.
    pub fn notional_decimals(&self) -> u32 {
        self.notional_decimals
    }

    /// The instruments this configuration was converted for.
    pub fn instrument_count(&self) -> usize {
        self.instruments.len()
    }

    /// `price × qty` of `instrument` in the common notional scale; a price at or below zero
    /// (a market sell's band edge in a band wider than 100%) counts as 0, as in the engine.
    /// `None` if the instrument is unknown or the value does not fit.
    pub fn notional(&self, instrument: InstrumentId, price: i64, qty: u64) -> Option<i128> {
        let i = self.instruments.get(instrument.0 as usize)?;
        if price <= 0 {
            return Some(0);
        }
        i128::from(price)
            .checked_mul(i128::from(qty))?
            .checked_mul(i.notional_factor)
    }

    /// The row of limits that applies to `account`, or `None` if it is not permitted.
    pub(crate) fn row_of(&self, account: AccountId) -> Option<u32> {
        match self.listed.binary_search_by_key(&account, |&(a, _)| a) {
            Ok(i) => Some(self.listed[i].1),
            Err(_) => self.allow_unlisted.then_some(0),
        }
    }

    pub(crate) fn qty_max(&self, row: u32, instrument: InstrumentId) -> u64 {
        self.qty_max[row as usize * self.instruments.len() + instrument.0 as usize]
    }
}

// ----- price bands ----------------------------------------------------------------------

/// The gateway's copy of one instrument's band state; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BandState {
    /// Last trade price, or 0 before the first trade (trade prices are always positive).
    pub(crate) last_trade: i64,
    pub(crate) lo: i64,
    pub(crate) hi: i64,
}

impl BandState {
    pub(crate) fn new(i: &InstrumentRisk) -> BandState {
        let mut b = BandState {
            last_trade: 0,
            lo: 0,
            hi: 0,
        };
        b.recompute(i);
        b
    }

    /// The engine's `set_band`, replicated: see `engine/src/lib.rs`.
    pub(crate) fn recompute(&mut self, i: &InstrumentRisk) {
        let reference = if self.last_trade > 0 {
            self.last_trade
        } else {
            i.reference_price
        };
        let band = match i.band {
            PriceBand::Bps(bps) => {
                let b = i128::from(reference) * i128::from(bps) / 10_000;
                i64::try_from(b).unwrap_or(i64::MAX)
            }
            PriceBand::Ticks(t) => t,
        };
        self.lo = reference.saturating_sub(band);
        self.hi = reference.saturating_add(band);
    }

    /// A market order's protection price: the band edge it may trade up to.
    pub(crate) fn market_price(&self, side: Side) -> i64 {
        match side {
            Side::Buy => self.hi,
            Side::Sell => self.lo,
        }
    }

    pub(crate) fn contains(&self, price: i64) -> bool {
        price >= self.lo && price <= self.hi
    }
}

/// Whether the engine's quantity checks (zero, lot, instrument maximum) pass.
pub(crate) fn engine_qty_ok(i: &InstrumentRisk, qty: u64) -> bool {
    qty != 0 && qty % i.lot_size == 0 && qty <= i.qty_max
}

/// Whether the engine's price checks before the band (positive, on tick) pass.
pub(crate) fn engine_price_ok(i: &InstrumentRisk, price: i64) -> bool {
    price > 0 && price % i.tick_size == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn codes_keep_their_numbers_and_texts_exist() {
        assert_eq!(GatewayReject::ThrottleExceeded.as_u16(), 201);
        assert_eq!(GatewayReject::NoEngineResponse.as_u16(), 222);
        assert_eq!(GatewayReject::ClOrdIdTableFull.as_u16(), 231);
        for (i, g) in GatewayReject::ALL.iter().enumerate() {
            assert_eq!(g.as_u16(), 201 + i as u16, "{g:?}");
            assert_eq!(GatewayReject::from_u16(g.as_u16()), Some(*g));
            assert!(!g.text().is_empty());
        }
        for e in RejectCode::ALL {
            let r = Reject::Engine(*e);
            assert!([0, 1, 2, 3, 5, 11, 13, 99].contains(&r.fix_ord_rej_reason()));
            assert!([1, 2, 99].contains(&r.fix_cxl_rej_reason()));
        }
        assert_eq!(
            Reject::Engine(RejectCode::PriceOffTick).fix_ord_rej_reason(),
            99
        );
        assert_eq!(
            Reject::Engine(RejectCode::QtyOffLot).fix_ord_rej_reason(),
            13
        );
        assert_eq!(
            Reject::Engine(RejectCode::InstrumentHalted).fix_ord_rej_reason(),
            2
        );
    }

    #[test]
    fn decimals_round_down_into_units() {
        assert_eq!(floor_units(d("1.5"), 0), 1);
        assert_eq!(floor_units(d("1.5"), 2), 150);
        assert_eq!(floor_units(d("0.009"), 2), 0);
        assert_eq!(
            floor_units(d("79228162514264337593543950335"), 36),
            i128::MAX
        );
        let mut t = Text::EMPTY;
        write_decimal(&mut t, 1_234_500, 4).unwrap();
        assert_eq!(t.as_str(), "123.45");
        let mut t = Text::EMPTY;
        write_decimal(&mut t, -5, 0).unwrap();
        assert_eq!(t.as_str(), "-5");
    }

    #[test]
    fn text_truncates_at_a_character_boundary() {
        let long = "é".repeat(100);
        let t = Text::from_str_truncated(&long);
        assert_eq!(t.as_str().len(), 126);
        assert!(t.as_str().chars().all(|c| c == 'é'));
    }

    #[test]
    fn config_converts_per_instrument_and_refuses_bad_values() {
        let mut a = InstrumentSpec::simple("A", 10_000);
        a.qty_decimals = 2;
        let b = InstrumentSpec::simple("B", 500);
        let accounts = [AccountLimitsFile {
            account: 7,
            order_qty_max: Some(d("1.5")),
            order_notional_max: Some(d("100")),
            open_orders_max: Some(3),
            open_notional_max: None,
        }];
        let r = RiskConfig::new(&accounts, None, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(r.notional_decimals(), 4);
        let row = r.row_of(AccountId(7)).unwrap();
        assert_eq!(r.qty_max(row, InstrumentId(0)), 150);
        assert_eq!(r.qty_max(row, InstrumentId(1)), 1);
        assert_eq!(r.rows[row as usize].order_notional_max, 1_000_000);
        assert_eq!(r.row_of(AccountId(8)), Some(0));
        assert_eq!(r.qty_max(0, InstrumentId(0)), u64::MAX);
        // 1.00 units at 100.00: 10000 ticks × 100 lots = 1_000_000 in 10^-4.
        assert_eq!(r.notional(InstrumentId(0), 10_000, 100), Some(1_000_000));
        assert_eq!(r.notional(InstrumentId(1), 500, 2), Some(100_000));
        assert_eq!(r.notional(InstrumentId(1), -5, 2), Some(0));
        assert_eq!(r.notional(InstrumentId(1), i64::MAX, u64::MAX), None);
        let only = r.clone().listed_accounts_only();
        assert_eq!(only.row_of(AccountId(8)), None);

        let twice = [accounts[0].clone(), accounts[0].clone()];
        assert_eq!(
            RiskConfig::new(&twice, None, &[a.clone()]).unwrap_err(),
            RiskConfigError::DuplicateAccount(7)
        );
        let negative = AccountLimitsFile {
            account: 0,
            open_notional_max: Some(d("-1")),
            ..AccountLimitsFile::default()
        };
        assert!(matches!(
            RiskConfig::new(&[], Some(&negative), &[a]),
            Err(RiskConfigError::Negative { .. })
        ));
        let parsed: AccountLimitsFile =
            toml::from_str("account = 3\norder_qty_max = \"10.5\"\nopen_orders_max = 4\n").unwrap();
        assert_eq!(parsed.order_qty_max, Some(d("10.5")));
        assert_eq!(parsed.open_orders_max, Some(4));
    }
}
