//! The versioned, fixed-layout binary encoding of commands and events.
//!
//! The shared-memory rings, the journal and replay hold records in this form and read them in
//! place (memory-mapped, zero-copy): every command is exactly [`COMMAND_BYTES`] long and every
//! event exactly [`EVENT_BYTES`], so record `n` of a file or ring starts at `n * SIZE` and no
//! length prefix or parsing pass is needed before a reader can jump to it.
//!
//! # Versioning
//!
//! The layout version, [`WIRE_VERSION`], is carried once by the journal and ring headers, not by
//! each record: a header is read once when a journal or ring is opened, whereas a per-record
//! version would cost bytes and a check on every record, and one journal or ring never mixes
//! versions. A reader refuses a header whose version it does not know. Any change to the
//! meaning, offset or size of a byte takes a new version. Reserved bytes are written as zero
//! and refused when non-zero, which both notices flipped bits and keeps them free: a later
//! version may give them a meaning without an old record ever having been ambiguous.
//!
//! # Rules
//!
//! * Integers are little-endian and naturally aligned within the record (a `u64` at a multiple
//!   of 8, a `u32` at a multiple of 4, a `u16` at a multiple of 2), so a record in an 8-aligned
//!   slot can also be read with plain aligned loads.
//! * Byte 0 is the kind. Commands and events number their kinds separately, from 1 in the order
//!   of the `Command` and `Event` variants; 0 is never a kind, so an all-zero slot that was
//!   never written is refused rather than read as a record.
//! * Enums are stored as their stable code (`as_u8`, `as_u16`); a number that names no variant
//!   is refused.
//! * A `bool` is one byte, 0 or 1; anything else is refused.
//! * An `Option` is a `has_*` bool byte plus the value's bytes, which must be zero when the flag
//!   says absent (`Some(InstrumentId(0))` is a real instrument, so the value alone cannot tell).
//! * Reserved bytes (`reserved` below) are zero.
//!
//! Together these make the encoding a bijection between values and the buffers that decode:
//! `decode(encode(x)) == x` for every value and `encode(decode(b)) == b` for every buffer that
//! decodes. So each value has exactly one encoding, and a flipped bit either fails to decode or
//! decodes to a different value; it is never silently absorbed.
//!
//! Fields that several kinds carry sit at the same offset in each, so a hex dump reads the same
//! whatever the kind: `instrument` at 8, `account` at 12, `order_id` at 16, `client_order_id`
//! at 24, `price` at 32 and the kind's main quantity at 40. (A `Trade` puts the maker's fields
//! there and the taker's further on.)
//!
//! # Command records (`COMMAND_BYTES` = 64)
//!
//! `off` is the byte offset, `sz` the size in bytes; the number before a name is the kind byte.
//!
//! ```text
//! off sz  1 NewOrder              | off sz  2 Cancel                | off sz  3 Replace
//! --- --  ----------------------- | --- --  ----------------------- | --- --  ----------------------
//!   0  1  kind                    |   0  1  kind                    |   0  1  kind
//!   1  1  side                    |   1 11  reserved                |   1 11  reserved
//!   2  1  order_type              |  12  4  account                 |  12  4  account
//!   3  1  tif                     |  16  8  order_id                |  16  8  order_id
//!   4  1  post_only               |  24  8  client_order_id         |  24  8  client_order_id
//!   5  1  stp_mode                |  32 32  reserved                |  32  8  price
//!   6  2  reserved                |                                 |  40  8  qty
//!   8  4  instrument              |                                 |  48 16  reserved
//!  12  4  account                 |                                 |
//!  16  8  reserved                |                                 |
//!  24  8  client_order_id         |                                 |
//!  32  8  price                   |                                 |
//!  40  8  qty                     |                                 |
//!  48  8  expire_ts_ns            |                                 |
//!  56  4  stp_group               |                                 |
//!  60  4  reserved                |                                 |
//!
//! off sz  4 MassCancel            | off sz  5 SetStatus             | off sz  6 EndOfDay
//! --- --  ----------------------- | --- --  ----------------------- | --- --  ----------------------
//!   0  1  kind                    |   0  1  kind                    |   0  1  kind
//!   1  1  has_instrument          |   1  1  status                  |   1 63  reserved
//!   2  1  has_account             |   2  6  reserved                |
//!   3  5  reserved                |   8  4  instrument              | off sz  7 Tick
//!   8  4  instrument              |  12 52  reserved                | --- --  ----------------------
//!  12  4  account                 |                                 |   0  1  kind
//!  16  8  reserved                |                                 |   1 63  reserved
//!  24  8  client_order_id         |                                 |
//!  32 32  reserved                |                                 |
//!
//! off sz  8 Checkpoint            |
//! --- --  ----------------------- |
//!   0  1  kind                    |
//!   1  7  reserved                |
//!   8  4  instrument              |
//!  12 52  reserved                |
//! ```
//!
//! `SequencedCommand::seq` and `ts_ns` are not part of a command record: the sequencer's
//! journal and ring carry them in their own per-slot framing.
//!
//! # Event records (`EVENT_BYTES` = 112)
//!
//! The largest event, `Trade`, uses 92 bytes; 112 leaves room to grow without a new record
//! size.
//!
//! ```text
//! off sz  1 Accepted              | off sz  2 Rejected              | off sz  3 Trade
//! --- --  ----------------------- | --- --  ----------------------- | --- --  ----------------------
//!   0  1  kind                    |   0  1  kind                    |   0  1  kind
//!   1  1  side                    |   1  1  request                 |   1  1  aggressor_side
//!   2  1  order_type              |   2  2  code                    |   2  6  reserved
//!   3  1  tif                     |   4  4  reserved                |   8  4  instrument
//!   4  1  post_only               |   8  4  instrument              |  12  4  maker_account
//!   5  3  reserved                |  12  4  account                 |  16  8  maker_order_id
//!   8  4  instrument              |  16  8  order_id                |  24  8  maker_client_order_id
//!  12  4  account                 |  24  8  client_order_id         |  32  8  price
//!  16  8  order_id                |  32 80  reserved                |  40  8  qty
//!  24  8  client_order_id         |                                 |  48  8  maker_qty_open
//!  32  8  price                   |                                 |  56  8  taker_order_id
//!  40  8  qty                     |                                 |  64  8  taker_client_order_id
//!  48  8  expire_ts_ns            |                                 |  72  8  taker_qty_open
//!  56 56  reserved                |                                 |  80  8  trade_id
//!                                 |                                 |  88  4  taker_account
//!                                 |                                 |  92 20  reserved
//!
//! off sz  4 Rested                | off sz  5 Cancelled             | off sz  6 Restated
//! --- --  ----------------------- | --- --  ----------------------- | --- --  ----------------------
//!   0  1  kind                    |   0  1  kind                    |   0  1  kind
//!   1  1  side                    |   1  1  side                    |   1  1  side
//!   2  6  reserved                |   2  1  reason                  |   2  6  reserved
//!   8  4  instrument              |   3  5  reserved                |   8  4  instrument
//!  12  4  account                 |   8  4  instrument              |  12  4  account
//!  16  8  order_id                |  12  4  account                 |  16  8  order_id
//!  24  8  reserved                |  16  8  order_id                |  24  8  client_order_id
//!  32  8  price                   |  24  8  client_order_id         |  32  8  price
//!  40  8  qty_open                |  32  8  price                   |  40  8  qty_reduced
//!  48 64  reserved                |  40  8  qty_cancelled           |  48  8  qty_open
//!                                 |  48 64  reserved                |  56 56  reserved
//!
//! off sz  7 Replaced              | off sz  8 Expired               | off sz  9 BookDelta
//! --- --  ----------------------- | --- --  ----------------------- | --- --  ----------------------
//!   0  1  kind                    |   0  1  kind                    |   0  1  kind
//!   1  1  side                    |   1  1  side                    |   1  1  side
//!   2  1  priority_kept           |   2  1  reason                  |   2  6  reserved
//!   3  5  reserved                |   3  5  reserved                |   8  4  instrument
//!   8  4  instrument              |   8  4  instrument              |  12 20  reserved
//!  12  4  account                 |  12  4  account                 |  32  8  price
//!  16  8  order_id                |  16  8  order_id                |  40  8  qty_total
//!  24  8  client_order_id         |  24  8  client_order_id         |  48  4  order_count
//!  32  8  price                   |  32  8  price                   |  52 60  reserved
//!  40  8  qty_open                |  40  8  qty_expired             |
//!  48  8  orig_client_order_id    |  48 64  reserved                |
//!  56  8  price_old               |                                 |
//!  64  8  qty_open_old            |                                 |
//!  72  8  qty_filled              |                                 |
//!  80 32  reserved                |                                 |
//!
//! off sz 10 StatusChanged         | off sz 11 MassCancelled         |
//! --- --  ----------------------- | --- --  ----------------------- |
//!   0  1  kind                    |   0  1  kind                    |
//!   1  1  status                  |   1  1  has_instrument          |
//!   2  6  reserved                |   2  1  has_account             |
//!   8  4  instrument              |   3  5  reserved                |
//!  12 100 reserved                |   8  4  instrument              |
//!                                 |  12  4  account                 |
//!                                 |  16  8  reserved                |
//!                                 |  24  8  client_order_id         |
//!                                 |  32  4  count                   |
//!                                 |  36 76  reserved                |
//!
//! off sz 12 BookChecked           |
//! --- --  ----------------------- |
//!   0  1  kind                    |
//!   1  7  reserved                |
//!   8  4  instrument              |
//!  12  4  orders                  |
//!  16  8  book_hash               |
//!  24  4  bid_levels              |
//!  28  4  ask_levels              |
//!  32 80  reserved                |
//! ```
//!
//! The tests parse these tables and check them against the encoder, so they cannot drift from
//! the code.

use core::fmt;

use crate::codes::{CancelReason, ExpireReason, RejectCode, RequestKind};
use crate::command::{Cancel, Checkpoint, Command, MassCancel, NewOrder, Replace, SetStatus};
use crate::event::{
    Accepted, BookChecked, BookDelta, Cancelled, Event, Expired, MassCancelled, Rejected, Replaced,
    Restated, Rested, StatusChanged, Trade,
};
use crate::types::{
    AccountId, ClientOrderId, InstrumentId, InstrumentStatus, OrderId, OrderType, PriceTicks,
    QtyLots, Side, StpGroup, StpMode, TimeInForce, TradeId,
};

/// The layout version described by this module. It lives in journal and ring headers.
pub const WIRE_VERSION: u16 = 1;

/// Size of one command record.
pub const COMMAND_BYTES: usize = 64;

/// Size of one event record.
pub const EVENT_BYTES: usize = 112;

// Records are laid end to end in rings and journals; a multiple of 8 keeps every record, and so
// every `u64` in it, 8-aligned when the first one is.
const _: () = assert!(COMMAND_BYTES % 8 == 0 && EVENT_BYTES % 8 == 0);

const CMD_NEW_ORDER: u8 = 1;
const CMD_CANCEL: u8 = 2;
const CMD_REPLACE: u8 = 3;
const CMD_MASS_CANCEL: u8 = 4;
const CMD_SET_STATUS: u8 = 5;
const CMD_END_OF_DAY: u8 = 6;
const CMD_TICK: u8 = 7;
const CMD_CHECKPOINT: u8 = 8;

const EVT_ACCEPTED: u8 = 1;
const EVT_REJECTED: u8 = 2;
const EVT_TRADE: u8 = 3;
const EVT_RESTED: u8 = 4;
const EVT_CANCELLED: u8 = 5;
const EVT_RESTATED: u8 = 6;
const EVT_REPLACED: u8 = 7;
const EVT_EXPIRED: u8 = 8;
const EVT_BOOK_DELTA: u8 = 9;
const EVT_STATUS_CHANGED: u8 = 10;
const EVT_MASS_CANCELLED: u8 = 11;
const EVT_BOOK_CHECKED: u8 = 12;

/// Why a buffer is not a valid record. Every variant names the byte offset and the field (as
/// in the layout tables) and carries the offending value, so that a corrupt journal record can
/// be diagnosed from the error alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The kind byte names no command (or no event).
    UnknownKind {
        offset: usize,
        field: &'static str,
        value: u8,
    },
    /// An enum field holds a number that names no variant.
    UnknownValue {
        offset: usize,
        field: &'static str,
        value: u16,
    },
    /// A bool field holds something other than 0 or 1.
    InvalidBool {
        offset: usize,
        field: &'static str,
        value: u8,
    },
    /// A reserved byte is not zero; `offset` is the first such byte.
    ReservedNotZero {
        offset: usize,
        field: &'static str,
        value: u8,
    },
    /// An optional field's `has_*` flag says absent, yet its value bytes are not zero.
    AbsentValueNotZero {
        offset: usize,
        field: &'static str,
        value: u64,
    },
}

impl DecodeError {
    /// Byte offset of the offending field (for reserved bytes, of the first non-zero byte).
    pub const fn offset(&self) -> usize {
        match *self {
            DecodeError::UnknownKind { offset, .. }
            | DecodeError::UnknownValue { offset, .. }
            | DecodeError::InvalidBool { offset, .. }
            | DecodeError::ReservedNotZero { offset, .. }
            | DecodeError::AbsentValueNotZero { offset, .. } => offset,
        }
    }

    /// Name of the offending field, as in the layout tables (`reserved` for reserved bytes).
    pub const fn field(&self) -> &'static str {
        match *self {
            DecodeError::UnknownKind { field, .. }
            | DecodeError::UnknownValue { field, .. }
            | DecodeError::InvalidBool { field, .. }
            | DecodeError::ReservedNotZero { field, .. }
            | DecodeError::AbsentValueNotZero { field, .. } => field,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::UnknownKind {
                offset,
                field,
                value,
            } => write!(f, "byte {offset} ({field}): unknown kind {value}"),
            DecodeError::UnknownValue {
                offset,
                field,
                value,
            } => write!(f, "byte {offset} ({field}): unknown value {value}"),
            DecodeError::InvalidBool {
                offset,
                field,
                value,
            } => write!(
                f,
                "byte {offset} ({field}): invalid bool {value}, expected 0 or 1"
            ),
            DecodeError::ReservedNotZero {
                offset,
                field,
                value,
            } => write!(
                f,
                "byte {offset} ({field}): must be zero, found {value:#04x}"
            ),
            DecodeError::AbsentValueNotZero {
                offset,
                field,
                value,
            } => write!(
                f,
                "byte {offset} ({field}): flag says absent but the value is {value}, expected 0"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Writes a command into `out`, overwriting all of it (reserved bytes become zero).
pub fn encode_command(cmd: &Command, out: &mut [u8; COMMAND_BYTES]) {
    // Zeroing first is what makes every byte not written below a zero reserved byte.
    out.fill(0);
    let mut w = Writer(out);
    match *cmd {
        Command::NewOrder(o) => {
            w.u8::<0>(CMD_NEW_ORDER);
            w.u8::<1>(o.side.as_u8());
            w.u8::<2>(o.order_type.as_u8());
            w.u8::<3>(o.tif.as_u8());
            w.bool::<4>(o.post_only);
            w.u8::<5>(o.stp_mode.as_u8());
            w.u32::<8>(o.instrument.0);
            w.u32::<12>(o.account.0);
            w.u64::<24>(o.client_order_id.0);
            w.i64::<32>(o.price.0);
            w.u64::<40>(o.qty.0);
            w.u64::<48>(o.expire_ts_ns);
            w.u32::<56>(o.stp_group.0);
        }
        Command::Cancel(c) => {
            w.u8::<0>(CMD_CANCEL);
            w.u32::<12>(c.account.0);
            w.u64::<16>(c.order_id.0);
            w.u64::<24>(c.client_order_id.0);
        }
        Command::Replace(r) => {
            w.u8::<0>(CMD_REPLACE);
            w.u32::<12>(r.account.0);
            w.u64::<16>(r.order_id.0);
            w.u64::<24>(r.client_order_id.0);
            w.i64::<32>(r.price.0);
            w.u64::<40>(r.qty.0);
        }
        Command::MassCancel(m) => {
            w.u8::<0>(CMD_MASS_CANCEL);
            w.option_u32::<1, 8>(m.instrument.map(|i| i.0));
            w.option_u32::<2, 12>(m.account.map(|a| a.0));
            w.u64::<24>(m.client_order_id.0);
        }
        Command::SetStatus(s) => {
            w.u8::<0>(CMD_SET_STATUS);
            w.u8::<1>(s.status.as_u8());
            w.u32::<8>(s.instrument.0);
        }
        Command::EndOfDay => w.u8::<0>(CMD_END_OF_DAY),
        Command::Tick => w.u8::<0>(CMD_TICK),
        Command::Checkpoint(c) => {
            w.u8::<0>(CMD_CHECKPOINT);
            w.u32::<8>(c.instrument.0);
        }
    }
}

/// Reads a command written by [`encode_command`], refusing any buffer that it could not have
/// written.
pub fn decode_command(buf: &[u8; COMMAND_BYTES]) -> Result<Command, DecodeError> {
    let r = Reader(buf);
    let cmd = match r.u8::<0>() {
        CMD_NEW_ORDER => {
            let order = NewOrder {
                side: r.enum_u8::<1, _>("side", Side::from_u8)?,
                order_type: r.enum_u8::<2, _>("order_type", OrderType::from_u8)?,
                tif: r.enum_u8::<3, _>("tif", TimeInForce::from_u8)?,
                post_only: r.bool::<4>("post_only")?,
                stp_mode: r.enum_u8::<5, _>("stp_mode", StpMode::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
                account: AccountId(r.u32::<12>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
                price: PriceTicks(r.i64::<32>()),
                qty: QtyLots(r.u64::<40>()),
                expire_ts_ns: r.u64::<48>(),
                stp_group: StpGroup(r.u32::<56>()),
            };
            r.reserved::<6, 8>()?;
            r.reserved::<16, 24>()?;
            r.reserved::<60, 64>()?;
            Command::NewOrder(order)
        }
        CMD_CANCEL => {
            let cancel = Cancel {
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
            };
            r.reserved::<1, 12>()?;
            r.reserved::<32, 64>()?;
            Command::Cancel(cancel)
        }
        CMD_REPLACE => {
            let replace = Replace {
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
                price: PriceTicks(r.i64::<32>()),
                qty: QtyLots(r.u64::<40>()),
            };
            r.reserved::<1, 12>()?;
            r.reserved::<48, 64>()?;
            Command::Replace(replace)
        }
        CMD_MASS_CANCEL => {
            let mass = MassCancel {
                instrument: r
                    .option_u32::<1, 8>("has_instrument", "instrument")?
                    .map(InstrumentId),
                account: r
                    .option_u32::<2, 12>("has_account", "account")?
                    .map(AccountId),
                client_order_id: ClientOrderId(r.u64::<24>()),
            };
            r.reserved::<3, 8>()?;
            r.reserved::<16, 24>()?;
            r.reserved::<32, 64>()?;
            Command::MassCancel(mass)
        }
        CMD_SET_STATUS => {
            let status = SetStatus {
                status: r.enum_u8::<1, _>("status", InstrumentStatus::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
            };
            r.reserved::<2, 8>()?;
            r.reserved::<12, 64>()?;
            Command::SetStatus(status)
        }
        CMD_END_OF_DAY => {
            r.reserved::<1, 64>()?;
            Command::EndOfDay
        }
        CMD_TICK => {
            r.reserved::<1, 64>()?;
            Command::Tick
        }
        CMD_CHECKPOINT => {
            let c = Checkpoint {
                instrument: InstrumentId(r.u32::<8>()),
            };
            r.reserved::<1, 8>()?;
            r.reserved::<12, 64>()?;
            Command::Checkpoint(c)
        }
        value => {
            return Err(DecodeError::UnknownKind {
                offset: 0,
                field: "kind",
                value,
            })
        }
    };
    Ok(cmd)
}

/// Writes an event into `out`, overwriting all of it (reserved bytes become zero).
pub fn encode_event(event: &Event, out: &mut [u8; EVENT_BYTES]) {
    // Zeroing first is what makes every byte not written below a zero reserved byte.
    out.fill(0);
    let mut w = Writer(out);
    match *event {
        Event::Accepted(e) => {
            w.u8::<0>(EVT_ACCEPTED);
            w.u8::<1>(e.side.as_u8());
            w.u8::<2>(e.order_type.as_u8());
            w.u8::<3>(e.tif.as_u8());
            w.bool::<4>(e.post_only);
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.account.0);
            w.u64::<16>(e.order_id.0);
            w.u64::<24>(e.client_order_id.0);
            w.i64::<32>(e.price.0);
            w.u64::<40>(e.qty.0);
            w.u64::<48>(e.expire_ts_ns);
        }
        Event::Rejected(e) => {
            w.u8::<0>(EVT_REJECTED);
            w.u8::<1>(e.request.as_u8());
            w.u16::<2>(e.code.as_u16());
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.account.0);
            w.u64::<16>(e.order_id.0);
            w.u64::<24>(e.client_order_id.0);
        }
        Event::Trade(e) => {
            w.u8::<0>(EVT_TRADE);
            w.u8::<1>(e.aggressor_side.as_u8());
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.maker_account.0);
            w.u64::<16>(e.maker_order_id.0);
            w.u64::<24>(e.maker_client_order_id.0);
            w.i64::<32>(e.price.0);
            w.u64::<40>(e.qty.0);
            w.u64::<48>(e.maker_qty_open.0);
            w.u64::<56>(e.taker_order_id.0);
            w.u64::<64>(e.taker_client_order_id.0);
            w.u64::<72>(e.taker_qty_open.0);
            w.u64::<80>(e.trade_id.0);
            w.u32::<88>(e.taker_account.0);
        }
        Event::Rested(e) => {
            w.u8::<0>(EVT_RESTED);
            w.u8::<1>(e.side.as_u8());
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.account.0);
            w.u64::<16>(e.order_id.0);
            w.i64::<32>(e.price.0);
            w.u64::<40>(e.qty_open.0);
        }
        Event::Cancelled(e) => {
            w.u8::<0>(EVT_CANCELLED);
            w.u8::<1>(e.side.as_u8());
            w.u8::<2>(e.reason.as_u8());
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.account.0);
            w.u64::<16>(e.order_id.0);
            w.u64::<24>(e.client_order_id.0);
            w.i64::<32>(e.price.0);
            w.u64::<40>(e.qty_cancelled.0);
        }
        Event::Restated(e) => {
            w.u8::<0>(EVT_RESTATED);
            w.u8::<1>(e.side.as_u8());
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.account.0);
            w.u64::<16>(e.order_id.0);
            w.u64::<24>(e.client_order_id.0);
            w.i64::<32>(e.price.0);
            w.u64::<40>(e.qty_reduced.0);
            w.u64::<48>(e.qty_open.0);
        }
        Event::Replaced(e) => {
            w.u8::<0>(EVT_REPLACED);
            w.u8::<1>(e.side.as_u8());
            w.bool::<2>(e.priority_kept);
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.account.0);
            w.u64::<16>(e.order_id.0);
            w.u64::<24>(e.client_order_id.0);
            w.i64::<32>(e.price.0);
            w.u64::<40>(e.qty_open.0);
            w.u64::<48>(e.orig_client_order_id.0);
            w.i64::<56>(e.price_old.0);
            w.u64::<64>(e.qty_open_old.0);
            w.u64::<72>(e.qty_filled.0);
        }
        Event::Expired(e) => {
            w.u8::<0>(EVT_EXPIRED);
            w.u8::<1>(e.side.as_u8());
            w.u8::<2>(e.reason.as_u8());
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.account.0);
            w.u64::<16>(e.order_id.0);
            w.u64::<24>(e.client_order_id.0);
            w.i64::<32>(e.price.0);
            w.u64::<40>(e.qty_expired.0);
        }
        Event::BookDelta(e) => {
            w.u8::<0>(EVT_BOOK_DELTA);
            w.u8::<1>(e.side.as_u8());
            w.u32::<8>(e.instrument.0);
            w.i64::<32>(e.price.0);
            w.u64::<40>(e.qty_total.0);
            w.u32::<48>(e.order_count);
        }
        Event::StatusChanged(e) => {
            w.u8::<0>(EVT_STATUS_CHANGED);
            w.u8::<1>(e.status.as_u8());
            w.u32::<8>(e.instrument.0);
        }
        Event::MassCancelled(e) => {
            w.u8::<0>(EVT_MASS_CANCELLED);
            w.option_u32::<1, 8>(e.instrument.map(|i| i.0));
            w.option_u32::<2, 12>(e.account.map(|a| a.0));
            w.u64::<24>(e.client_order_id.0);
            w.u32::<32>(e.count);
        }
        Event::BookChecked(e) => {
            w.u8::<0>(EVT_BOOK_CHECKED);
            w.u32::<8>(e.instrument.0);
            w.u32::<12>(e.orders);
            w.u64::<16>(e.book_hash);
            w.u32::<24>(e.bid_levels);
            w.u32::<28>(e.ask_levels);
        }
    }
}

/// Reads an event written by [`encode_event`], refusing any buffer that it could not have
/// written.
pub fn decode_event(buf: &[u8; EVENT_BYTES]) -> Result<Event, DecodeError> {
    let r = Reader(buf);
    let event = match r.u8::<0>() {
        EVT_ACCEPTED => {
            let e = Accepted {
                side: r.enum_u8::<1, _>("side", Side::from_u8)?,
                order_type: r.enum_u8::<2, _>("order_type", OrderType::from_u8)?,
                tif: r.enum_u8::<3, _>("tif", TimeInForce::from_u8)?,
                post_only: r.bool::<4>("post_only")?,
                instrument: InstrumentId(r.u32::<8>()),
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
                price: PriceTicks(r.i64::<32>()),
                qty: QtyLots(r.u64::<40>()),
                expire_ts_ns: r.u64::<48>(),
            };
            r.reserved::<5, 8>()?;
            r.reserved::<56, 112>()?;
            Event::Accepted(e)
        }
        EVT_REJECTED => {
            let e = Rejected {
                request: r.enum_u8::<1, _>("request", RequestKind::from_u8)?,
                code: r.enum_u16::<2, _>("code", RejectCode::from_u16)?,
                instrument: InstrumentId(r.u32::<8>()),
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
            };
            r.reserved::<4, 8>()?;
            r.reserved::<32, 112>()?;
            Event::Rejected(e)
        }
        EVT_TRADE => {
            let e = Trade {
                aggressor_side: r.enum_u8::<1, _>("aggressor_side", Side::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
                maker_account: AccountId(r.u32::<12>()),
                maker_order_id: OrderId(r.u64::<16>()),
                maker_client_order_id: ClientOrderId(r.u64::<24>()),
                price: PriceTicks(r.i64::<32>()),
                qty: QtyLots(r.u64::<40>()),
                maker_qty_open: QtyLots(r.u64::<48>()),
                taker_order_id: OrderId(r.u64::<56>()),
                taker_client_order_id: ClientOrderId(r.u64::<64>()),
                taker_qty_open: QtyLots(r.u64::<72>()),
                trade_id: TradeId(r.u64::<80>()),
                taker_account: AccountId(r.u32::<88>()),
            };
            r.reserved::<2, 8>()?;
            r.reserved::<92, 112>()?;
            Event::Trade(e)
        }
        EVT_RESTED => {
            let e = Rested {
                side: r.enum_u8::<1, _>("side", Side::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                price: PriceTicks(r.i64::<32>()),
                qty_open: QtyLots(r.u64::<40>()),
            };
            r.reserved::<2, 8>()?;
            r.reserved::<24, 32>()?;
            r.reserved::<48, 112>()?;
            Event::Rested(e)
        }
        EVT_CANCELLED => {
            let e = Cancelled {
                side: r.enum_u8::<1, _>("side", Side::from_u8)?,
                reason: r.enum_u8::<2, _>("reason", CancelReason::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
                price: PriceTicks(r.i64::<32>()),
                qty_cancelled: QtyLots(r.u64::<40>()),
            };
            r.reserved::<3, 8>()?;
            r.reserved::<48, 112>()?;
            Event::Cancelled(e)
        }
        EVT_RESTATED => {
            let e = Restated {
                side: r.enum_u8::<1, _>("side", Side::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
                price: PriceTicks(r.i64::<32>()),
                qty_reduced: QtyLots(r.u64::<40>()),
                qty_open: QtyLots(r.u64::<48>()),
            };
            r.reserved::<2, 8>()?;
            r.reserved::<56, 112>()?;
            Event::Restated(e)
        }
        EVT_REPLACED => {
            let e = Replaced {
                side: r.enum_u8::<1, _>("side", Side::from_u8)?,
                priority_kept: r.bool::<2>("priority_kept")?,
                instrument: InstrumentId(r.u32::<8>()),
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
                price: PriceTicks(r.i64::<32>()),
                qty_open: QtyLots(r.u64::<40>()),
                orig_client_order_id: ClientOrderId(r.u64::<48>()),
                price_old: PriceTicks(r.i64::<56>()),
                qty_open_old: QtyLots(r.u64::<64>()),
                qty_filled: QtyLots(r.u64::<72>()),
            };
            r.reserved::<3, 8>()?;
            r.reserved::<80, 112>()?;
            Event::Replaced(e)
        }
        EVT_EXPIRED => {
            let e = Expired {
                side: r.enum_u8::<1, _>("side", Side::from_u8)?,
                reason: r.enum_u8::<2, _>("reason", ExpireReason::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
                account: AccountId(r.u32::<12>()),
                order_id: OrderId(r.u64::<16>()),
                client_order_id: ClientOrderId(r.u64::<24>()),
                price: PriceTicks(r.i64::<32>()),
                qty_expired: QtyLots(r.u64::<40>()),
            };
            r.reserved::<3, 8>()?;
            r.reserved::<48, 112>()?;
            Event::Expired(e)
        }
        EVT_BOOK_DELTA => {
            let e = BookDelta {
                side: r.enum_u8::<1, _>("side", Side::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
                price: PriceTicks(r.i64::<32>()),
                qty_total: QtyLots(r.u64::<40>()),
                order_count: r.u32::<48>(),
            };
            r.reserved::<2, 8>()?;
            r.reserved::<12, 32>()?;
            r.reserved::<52, 112>()?;
            Event::BookDelta(e)
        }
        EVT_STATUS_CHANGED => {
            let e = StatusChanged {
                status: r.enum_u8::<1, _>("status", InstrumentStatus::from_u8)?,
                instrument: InstrumentId(r.u32::<8>()),
            };
            r.reserved::<2, 8>()?;
            r.reserved::<12, 112>()?;
            Event::StatusChanged(e)
        }
        EVT_MASS_CANCELLED => {
            let e = MassCancelled {
                instrument: r
                    .option_u32::<1, 8>("has_instrument", "instrument")?
                    .map(InstrumentId),
                account: r
                    .option_u32::<2, 12>("has_account", "account")?
                    .map(AccountId),
                client_order_id: ClientOrderId(r.u64::<24>()),
                count: r.u32::<32>(),
            };
            r.reserved::<3, 8>()?;
            r.reserved::<16, 24>()?;
            r.reserved::<36, 112>()?;
            Event::MassCancelled(e)
        }
        EVT_BOOK_CHECKED => {
            let e = BookChecked {
                instrument: InstrumentId(r.u32::<8>()),
                orders: r.u32::<12>(),
                book_hash: r.u64::<16>(),
                bid_levels: r.u32::<24>(),
                ask_levels: r.u32::<28>(),
            };
            r.reserved::<1, 8>()?;
            r.reserved::<32, 112>()?;
            Event::BookChecked(e)
        }
        value => {
            return Err(DecodeError::UnknownKind {
                offset: 0,
                field: "kind",
                value,
            })
        }
    };
    Ok(event)
}

/// Typed reads from a record. Offsets are const generic parameters so that each access is
/// checked against the record size at compile time: an offset past the end fails the build
/// instead of panicking at run time, and the slice bounds checks fold away.
struct Reader<'a, const N: usize>(&'a [u8; N]);

impl<const N: usize> Reader<'_, N> {
    fn bytes<const OFF: usize, const LEN: usize>(&self) -> [u8; LEN] {
        const { assert!(OFF + LEN <= N, "field extends past the end of the record") };
        let mut bytes = [0u8; LEN];
        bytes.copy_from_slice(&self.0[OFF..OFF + LEN]);
        bytes
    }

    fn u8<const OFF: usize>(&self) -> u8 {
        u8::from_le_bytes(self.bytes::<OFF, 1>())
    }

    fn u16<const OFF: usize>(&self) -> u16 {
        u16::from_le_bytes(self.bytes::<OFF, 2>())
    }

    fn u32<const OFF: usize>(&self) -> u32 {
        u32::from_le_bytes(self.bytes::<OFF, 4>())
    }

    fn u64<const OFF: usize>(&self) -> u64 {
        u64::from_le_bytes(self.bytes::<OFF, 8>())
    }

    fn i64<const OFF: usize>(&self) -> i64 {
        i64::from_le_bytes(self.bytes::<OFF, 8>())
    }

    fn bool<const OFF: usize>(&self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8::<OFF>() {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidBool {
                offset: OFF,
                field,
                value,
            }),
        }
    }

    fn enum_u8<const OFF: usize, T>(
        &self,
        field: &'static str,
        from_u8: fn(u8) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let value = self.u8::<OFF>();
        from_u8(value).ok_or(DecodeError::UnknownValue {
            offset: OFF,
            field,
            value: u16::from(value),
        })
    }

    fn enum_u16<const OFF: usize, T>(
        &self,
        field: &'static str,
        from_u16: fn(u16) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let value = self.u16::<OFF>();
        from_u16(value).ok_or(DecodeError::UnknownValue {
            offset: OFF,
            field,
            value,
        })
    }

    /// A `has_*` flag byte at `FLAG` and a `u32` value at `OFF`; the value must be zero when
    /// absent so that `None` has exactly one encoding.
    fn option_u32<const FLAG: usize, const OFF: usize>(
        &self,
        flag_field: &'static str,
        field: &'static str,
    ) -> Result<Option<u32>, DecodeError> {
        let present = self.bool::<FLAG>(flag_field)?;
        let value = self.u32::<OFF>();
        match (present, value) {
            (true, value) => Ok(Some(value)),
            (false, 0) => Ok(None),
            (false, value) => Err(DecodeError::AbsentValueNotZero {
                offset: OFF,
                field,
                value: u64::from(value),
            }),
        }
    }

    /// Checks that bytes `START..END` are all zero.
    fn reserved<const START: usize, const END: usize>(&self) -> Result<(), DecodeError> {
        const { assert!(START < END && END <= N, "reserved range outside the record") };
        match self.0[START..END]
            .iter()
            .enumerate()
            .find(|(_, b)| **b != 0)
        {
            None => Ok(()),
            Some((i, &value)) => Err(DecodeError::ReservedNotZero {
                offset: START + i,
                field: "reserved",
                value,
            }),
        }
    }
}

/// Typed writes into a record, with the same compile-time offset checks as [`Reader`].
struct Writer<'a, const N: usize>(&'a mut [u8; N]);

impl<const N: usize> Writer<'_, N> {
    fn bytes<const OFF: usize, const LEN: usize>(&mut self, bytes: [u8; LEN]) {
        const { assert!(OFF + LEN <= N, "field extends past the end of the record") };
        self.0[OFF..OFF + LEN].copy_from_slice(&bytes);
    }

    fn u8<const OFF: usize>(&mut self, value: u8) {
        self.bytes::<OFF, 1>(value.to_le_bytes());
    }

    fn u16<const OFF: usize>(&mut self, value: u16) {
        self.bytes::<OFF, 2>(value.to_le_bytes());
    }

    fn u32<const OFF: usize>(&mut self, value: u32) {
        self.bytes::<OFF, 4>(value.to_le_bytes());
    }

    fn u64<const OFF: usize>(&mut self, value: u64) {
        self.bytes::<OFF, 8>(value.to_le_bytes());
    }

    fn i64<const OFF: usize>(&mut self, value: i64) {
        self.bytes::<OFF, 8>(value.to_le_bytes());
    }

    fn bool<const OFF: usize>(&mut self, value: bool) {
        self.u8::<OFF>(u8::from(value));
    }

    /// Absent leaves both the flag and the value at the zero the record was cleared to.
    fn option_u32<const FLAG: usize, const OFF: usize>(&mut self, value: Option<u32>) {
        if let Some(value) = value {
            self.bool::<FLAG>(true);
            self.u32::<OFF>(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_bytes(cmd: &Command) -> [u8; COMMAND_BYTES] {
        let mut buf = [0xAA; COMMAND_BYTES];
        encode_command(cmd, &mut buf);
        buf
    }

    fn event_bytes(event: &Event) -> [u8; EVENT_BYTES] {
        let mut buf = [0xAA; EVENT_BYTES];
        encode_event(event, &mut buf);
        buf
    }

    fn new_order() -> Command {
        Command::NewOrder(NewOrder::limit(
            InstrumentId(3),
            AccountId(4),
            ClientOrderId(5),
            Side::Buy,
            PriceTicks(100),
            QtyLots(7),
        ))
    }

    #[test]
    fn encoding_overwrites_stale_bytes() {
        // The buffers start as 0xAA, like a reused ring slot; every reserved byte must be zero.
        let buf = command_bytes(&Command::Tick);
        assert_eq!(buf[0], CMD_TICK);
        assert!(buf[1..].iter().all(|&b| b == 0));
        let buf = event_bytes(&Event::StatusChanged(StatusChanged {
            instrument: InstrumentId(0),
            status: InstrumentStatus::Open,
        }));
        assert_eq!(buf[0], EVT_STATUS_CHANGED);
        assert_eq!(buf[1], InstrumentStatus::Open.as_u8());
        assert!(buf[2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn zeroed_and_unknown_kinds_are_refused() {
        assert_eq!(
            decode_command(&[0; COMMAND_BYTES]),
            Err(DecodeError::UnknownKind {
                offset: 0,
                field: "kind",
                value: 0
            })
        );
        let mut buf = [0; EVENT_BYTES];
        buf[0] = 13;
        assert_eq!(
            decode_event(&buf),
            Err(DecodeError::UnknownKind {
                offset: 0,
                field: "kind",
                value: 13
            })
        );
        let mut buf = [0; COMMAND_BYTES];
        buf[0] = 9;
        assert_eq!(
            decode_command(&buf),
            Err(DecodeError::UnknownKind {
                offset: 0,
                field: "kind",
                value: 9
            })
        );
    }

    #[test]
    fn each_error_names_offset_field_and_value() {
        let good = command_bytes(&new_order());
        assert_eq!(decode_command(&good), Ok(new_order()));

        let mut buf = good;
        buf[1] = 3;
        assert_eq!(
            decode_command(&buf),
            Err(DecodeError::UnknownValue {
                offset: 1,
                field: "side",
                value: 3
            })
        );

        let mut buf = good;
        buf[4] = 2;
        assert_eq!(
            decode_command(&buf),
            Err(DecodeError::InvalidBool {
                offset: 4,
                field: "post_only",
                value: 2
            })
        );

        let mut buf = good;
        buf[61] = 0x10;
        assert_eq!(
            decode_command(&buf),
            Err(DecodeError::ReservedNotZero {
                offset: 61,
                field: "reserved",
                value: 0x10
            })
        );

        let mut buf = command_bytes(&Command::MassCancel(MassCancel {
            instrument: None,
            account: Some(AccountId(9)),
            client_order_id: ClientOrderId(1),
        }));
        buf[9] = 1;
        assert_eq!(
            decode_command(&buf),
            Err(DecodeError::AbsentValueNotZero {
                offset: 8,
                field: "instrument",
                value: 256
            })
        );

        let mut buf = event_bytes(&Event::Rejected(Rejected {
            request: RequestKind::Cancel,
            code: RejectCode::UnknownOrder,
            instrument: InstrumentId(0),
            account: AccountId(1),
            client_order_id: ClientOrderId(2),
            order_id: OrderId(3),
        }));
        buf[2..4].copy_from_slice(&100u16.to_le_bytes());
        assert_eq!(
            decode_event(&buf),
            Err(DecodeError::UnknownValue {
                offset: 2,
                field: "code",
                value: 100
            })
        );
    }

    #[test]
    fn errors_display_offset_field_and_value() {
        let cases = [
            (
                DecodeError::UnknownKind {
                    offset: 0,
                    field: "kind",
                    value: 9,
                },
                "byte 0 (kind): unknown kind 9",
            ),
            (
                DecodeError::UnknownValue {
                    offset: 2,
                    field: "code",
                    value: 100,
                },
                "byte 2 (code): unknown value 100",
            ),
            (
                DecodeError::InvalidBool {
                    offset: 4,
                    field: "post_only",
                    value: 2,
                },
                "byte 4 (post_only): invalid bool 2, expected 0 or 1",
            ),
            (
                DecodeError::ReservedNotZero {
                    offset: 61,
                    field: "reserved",
                    value: 0x10,
                },
                "byte 61 (reserved): must be zero, found 0x10",
            ),
            (
                DecodeError::AbsentValueNotZero {
                    offset: 8,
                    field: "instrument",
                    value: 256,
                },
                "byte 8 (instrument): flag says absent but the value is 256, expected 0",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
            let dyn_error: &dyn std::error::Error = &error;
            assert!(dyn_error.source().is_none());
        }
        assert_eq!(cases[3].0.offset(), 61);
        assert_eq!(cases[4].0.field(), "instrument");
    }
}
