//! The binary market-data feed, version 1: messages, packets and the recovery service's frames.
//!
//! `marketdata/FEED.md` is the specification; this module is its codec and nothing more (no
//! sockets, no state). The layout tables there are checked byte for byte by the golden vectors
//! in `marketdata/tests/feed.rs`.
//!
//! # Rules
//!
//! * Integers are little-endian, as in every other Ferrox format.
//! * Every message has its type's fixed size; the length prefix in front of it in a packet must
//!   say exactly that size.
//! * The side byte is `'B'` or `'S'` in a message that has a side and 0 in one that has not.
//! * An optional price is `i64::MIN` on the wire when absent. `Some(PriceTicks(i64::MIN))` is
//!   therefore not representable: it encodes as `i64::MIN` and decodes as `None`.
//! * Reserved bytes are written as zero and refused when non-zero, so that a flipped bit is
//!   noticed rather than ignored and a later version can give them a meaning.
//!
//! Together these make the encoding canonical: every buffer that decodes re-encodes to exactly
//! the same bytes, so a flipped bit either fails to decode or decodes to a different value.
//!
//! # Errors
//!
//! Decoders never panic; they return a [`FeedError`] that says what is wrong and where. Every
//! `offset` in an error counts from the start of the buffer given to the function that failed
//! (the packet for [`parse_packet`], the message for [`decode_message`], the frame payload for
//! [`decode_request`] and [`decode_reply`]; the string for [`SessionId::new`] and
//! [`Directory::symbol_bytes`]).
//!
//! # Allocation
//!
//! Encoding and decoding messages and packets, and [`PacketBuilder::push`], never allocate; the
//! only allocations are the ones the caller asks for by passing a `Vec` (the recovery frame
//! encoders) and the buffers that [`PacketBuilder::new`] and [`FrameSplitter::new`] reserve once.

use core::fmt;
use core::str::FromStr;

use ferrox_protocol::types::{
    InstrumentId, InstrumentStatus, OrderId, PriceTicks, QtyLots, Side, TradeId,
};

// ---------------------------------------------------------------------------------------------
// Constants

/// The feed version carried in every packet header.
pub const VERSION: u8 = 1;
/// The first two bytes of every packet.
pub const MAGIC: [u8; 2] = *b"FM";
/// Size of the packet header that precedes the message blocks.
pub const PACKET_HEADER_BYTES: usize = 24;
/// Size of the largest message type (`S`, [`Statistics`]).
pub const MESSAGE_BYTES_MAX: usize = 80;
/// The packet `count` that marks the end of a session.
pub const COUNT_END_OF_SESSION: u16 = 0xFFFF;
/// The largest packet: a recovery frame's length prefix is a `u16`, and a UDP datagram cannot
/// be larger either.
pub const PACKET_BYTES_MAX: usize = 65_535;
/// The largest payload of a recovery frame (its length prefix is a `u16`).
pub const FRAME_PAYLOAD_MAX: usize = 65_535;
/// Size of a session id on the wire.
pub const SESSION_BYTES: usize = 10;
/// Size of a directory message's symbol.
pub const SYMBOL_BYTES: usize = 16;
/// Every message type code, in the order of FEED.md's table.
pub const MESSAGE_TYPES: [u8; 13] = *b"RHADXUELQSCGZ";
/// Size of a retransmit (`'r'`) request payload.
pub const RETRANSMIT_REQUEST_BYTES: usize = 23;
/// Size of a snapshot (`'s'`) request payload.
pub const SNAPSHOT_REQUEST_BYTES: usize = 15;
/// The longest text a reject frame can carry: the frame payload minus `'j'` and the code.
pub const REJECT_TEXT_MAX: usize = FRAME_PAYLOAD_MAX - 2;

/// Size of a message block's length prefix in a packet.
const BLOCK_PREFIX_BYTES: usize = 2;
/// Size of a recovery frame's length prefix.
const FRAME_PREFIX_BYTES: usize = 2;
/// The smallest buffer a [`PacketBuilder`] accepts: one header and one block of the largest
/// message, so that every message fits into an empty packet.
const BUILDER_BYTES_MIN: usize = PACKET_HEADER_BYTES + BLOCK_PREFIX_BYTES + MESSAGE_BYTES_MAX;
/// The wire value of "every instrument" in a snapshot request.
const ALL_INSTRUMENTS: u32 = u32::MAX;
/// The wire value of an absent price.
const NO_PRICE: i64 = i64::MIN;

const SIDE_BUY: u8 = b'B';
const SIDE_SELL: u8 = b'S';

const REQUEST_RETRANSMIT: u8 = b'r';
const REQUEST_SNAPSHOT: u8 = b's';
const REPLY_END: u8 = b'e';
const REPLY_REJECT: u8 = b'j';

// ---------------------------------------------------------------------------------------------
// Errors

/// Why bytes were refused. Offsets count from the start of the buffer given to the decoder that
/// failed (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The input ends before something it must hold.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// The input is longer than anything the encoder writes (a packet or frame payload over
    /// 65,535 bytes).
    #[error("{len} bytes is more than the {max} allowed")]
    TooLong { len: usize, max: usize },
    /// The packet does not start with `"FM"`.
    #[error("magic is {0:02x?}, expected \"FM\" [46, 4d]")]
    Magic([u8; 2]),
    /// The packet's version is not [`VERSION`].
    #[error("version {0} is not supported, expected {VERSION}")]
    Version(u8),
    /// The packet's flags byte is not 0.
    #[error("flags are {0:#04x}, expected 0")]
    Flags(u8),
    /// A session id is not 1 to 10 graphic ASCII characters right-padded with spaces; `offset`
    /// is the first byte that breaks the rule (for [`SessionId::new`], the index in the string,
    /// or 10 for a string that is too long).
    #[error("byte {offset}: a session id is 1 to 10 graphic ASCII characters, space padded")]
    Session { offset: usize },
    /// A packet's first sequence number plus its message count does not fit in a `u64`.
    #[error("first seq {seq} plus count {count} overflows u64")]
    SeqOverflow { seq: u64, count: u16 },
    /// The packet ended after `found` whole messages although its header declares `declared`.
    #[error("the header declares {declared} messages but the packet ends after {found}")]
    Count { declared: u16, found: usize },
    /// Bytes follow the last message of a packet (or the end of a fixed-size frame).
    #[error("unexpected bytes from byte {offset} on")]
    TrailingBytes { offset: usize },
    /// A message type code that FEED.md does not define.
    #[error("unknown message type {}", Code(*.0))]
    UnknownType(u8),
    /// A message (or its length prefix) does not have its type's fixed size.
    #[error("message type {} is {expected} bytes long, found {found}", Code(*.msg_type))]
    Length {
        msg_type: u8,
        expected: usize,
        found: usize,
    },
    /// The side byte is not `'B'` or `'S'` in a message with a side, or not 0 in one without.
    #[error("message type {}: side byte {value:#04x} is not allowed", Code(*.msg_type))]
    Side { msg_type: u8, value: u8 },
    /// A reserved byte is not zero.
    #[error("byte {offset}: reserved, must be zero")]
    Reserved { offset: usize },
    /// An instrument status that is neither 1 (open) nor 2 (halted).
    #[error("instrument status {0} is neither 1 (open) nor 2 (halted)")]
    Status(u8),
    /// A directory symbol is not printable ASCII, starts with a space, or is empty.
    #[error("byte {offset}: a symbol is printable ASCII, not empty, right-padded with spaces")]
    Symbol { offset: usize },
    /// A recovery request type other than `'r'` and `'s'`.
    #[error("unknown request type {}", Code(*.0))]
    RequestType(u8),
    /// A recovery reply that is neither a packet nor `'e'` nor `'j'`.
    #[error("unknown reply type {}", Code(*.0))]
    ReplyType(u8),
    /// A reject code that names no [`RejectReason`].
    #[error("unknown reject reason {0}")]
    RejectReason(u8),
    /// A reject text byte that is not printable ASCII.
    #[error("byte {offset}: reject text must be printable ASCII")]
    Text { offset: usize },
}

impl FeedError {
    /// Moves the offsets of an error found in a message to the position of that message in the
    /// enclosing packet, so that a packet's errors point into the packet.
    fn shifted(self, base: usize) -> FeedError {
        match self {
            FeedError::Truncated { need, have } => FeedError::Truncated {
                need: need + base,
                have: have + base,
            },
            FeedError::Reserved { offset } => FeedError::Reserved {
                offset: offset + base,
            },
            FeedError::Symbol { offset } => FeedError::Symbol {
                offset: offset + base,
            },
            FeedError::TrailingBytes { offset } => FeedError::TrailingBytes {
                offset: offset + base,
            },
            other => other,
        }
    }
}

/// Shows a type code as its letter when it is one, and in hex otherwise, so that an error about
/// a corrupted type byte stays readable.
struct Code(u8);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "{:#04x}", self.0)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed-layout readers and writers

/// Reads fields of an `N`-byte record. Offsets are const generics so that a field that would
/// run past the end of the record fails to compile instead of panicking at run time.
struct Reader<'a, const N: usize>(&'a [u8; N]);

impl<'a, const N: usize> Reader<'a, N> {
    fn get<const OFF: usize, const LEN: usize>(&self) -> [u8; LEN] {
        const { assert!(OFF + LEN <= N, "field extends past the end of the record") };
        let mut bytes = [0u8; LEN];
        bytes.copy_from_slice(&self.0[OFF..OFF + LEN]);
        bytes
    }

    fn u8<const OFF: usize>(&self) -> u8 {
        self.get::<OFF, 1>()[0]
    }

    fn u16<const OFF: usize>(&self) -> u16 {
        u16::from_le_bytes(self.get::<OFF, 2>())
    }

    fn u32<const OFF: usize>(&self) -> u32 {
        u32::from_le_bytes(self.get::<OFF, 4>())
    }

    fn u64<const OFF: usize>(&self) -> u64 {
        u64::from_le_bytes(self.get::<OFF, 8>())
    }

    fn i64<const OFF: usize>(&self) -> i64 {
        i64::from_le_bytes(self.get::<OFF, 8>())
    }

    fn u128<const OFF: usize>(&self) -> u128 {
        u128::from_le_bytes(self.get::<OFF, 16>())
    }

    fn price<const OFF: usize>(&self) -> PriceTicks {
        PriceTicks(self.i64::<OFF>())
    }

    fn qty<const OFF: usize>(&self) -> QtyLots {
        QtyLots(self.u64::<OFF>())
    }

    /// `i64::MIN` is the wire's "none"; decoding it as `None` (never as a `Some`) is what keeps
    /// the encoding canonical.
    fn price_opt<const OFF: usize>(&self) -> Option<PriceTicks> {
        match self.i64::<OFF>() {
            NO_PRICE => None,
            ticks => Some(PriceTicks(ticks)),
        }
    }

    /// Refuses the record if any byte in `FROM..TO` is not zero, naming the first one.
    fn reserved<const FROM: usize, const TO: usize>(&self) -> Result<(), FeedError> {
        const { assert!(FROM <= TO && TO <= N, "reserved range outside the record") };
        match self.0[FROM..TO].iter().position(|&b| b != 0) {
            Some(i) => Err(FeedError::Reserved { offset: FROM + i }),
            None => Ok(()),
        }
    }

    /// The side of a message that has one (byte 1).
    fn side(&self) -> Result<Side, FeedError> {
        match self.u8::<1>() {
            SIDE_BUY => Ok(Side::Buy),
            SIDE_SELL => Ok(Side::Sell),
            value => Err(FeedError::Side {
                msg_type: self.u8::<0>(),
                value,
            }),
        }
    }

    /// Checks that a message without a side has 0 in the side byte.
    fn no_side(&self) -> Result<(), FeedError> {
        match self.u8::<1>() {
            0 => Ok(()),
            value => Err(FeedError::Side {
                msg_type: self.u8::<0>(),
                value,
            }),
        }
    }

    /// The rest of the common 16-byte message header: reserved bytes 2..4, the instrument and
    /// the timestamp. Called after the side check so that errors come in offset order.
    fn common(&self) -> Result<(InstrumentId, u64), FeedError> {
        self.reserved::<2, 4>()?;
        Ok((InstrumentId(self.u32::<4>()), self.u64::<8>()))
    }
}

/// A reader over the whole of `bytes`, which must be exactly `N` long: the length check of every
/// message type is this one.
fn message_reader<const N: usize>(bytes: &[u8]) -> Result<Reader<'_, N>, FeedError> {
    match <&[u8; N]>::try_from(bytes) {
        Ok(record) => Ok(Reader(record)),
        Err(_) => Err(FeedError::Length {
            msg_type: bytes.first().copied().unwrap_or(0),
            expected: N,
            found: bytes.len(),
        }),
    }
}

/// A reader over a recovery request payload of fixed size `N`.
fn frame_reader<const N: usize>(bytes: &[u8]) -> Result<Reader<'_, N>, FeedError> {
    if bytes.len() > N {
        return Err(FeedError::TrailingBytes { offset: N });
    }
    match <&[u8; N]>::try_from(bytes) {
        Ok(record) => Ok(Reader(record)),
        Err(_) => Err(FeedError::Truncated {
            need: N,
            have: bytes.len(),
        }),
    }
}

/// Writes fields of an `N`-byte record; offsets are checked at compile time as in [`Reader`].
struct Writer<'a, const N: usize>(&'a mut [u8; N]);

impl<'a, const N: usize> Writer<'a, N> {
    /// Takes the first `N` bytes of `out` and clears them, which is what makes every byte not
    /// written afterwards a zero reserved byte.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than `N`: the caller did not size its buffer by the message's length.
    fn new(out: &'a mut [u8]) -> Self {
        let have = out.len();
        let Some(record) = out.first_chunk_mut::<N>() else {
            panic!("output buffer of {have} bytes is too short for a {N}-byte record");
        };
        record.fill(0);
        Writer(record)
    }

    fn put<const OFF: usize, const LEN: usize>(&mut self, bytes: [u8; LEN]) {
        const { assert!(OFF + LEN <= N, "field extends past the end of the record") };
        self.0[OFF..OFF + LEN].copy_from_slice(&bytes);
    }

    fn u8<const OFF: usize>(&mut self, value: u8) {
        self.put::<OFF, 1>([value]);
    }

    fn u16<const OFF: usize>(&mut self, value: u16) {
        self.put::<OFF, 2>(value.to_le_bytes());
    }

    fn u32<const OFF: usize>(&mut self, value: u32) {
        self.put::<OFF, 4>(value.to_le_bytes());
    }

    fn u64<const OFF: usize>(&mut self, value: u64) {
        self.put::<OFF, 8>(value.to_le_bytes());
    }

    fn i64<const OFF: usize>(&mut self, value: i64) {
        self.put::<OFF, 8>(value.to_le_bytes());
    }

    fn u128<const OFF: usize>(&mut self, value: u128) {
        self.put::<OFF, 16>(value.to_le_bytes());
    }

    fn price_opt<const OFF: usize>(&mut self, value: Option<PriceTicks>) {
        self.i64::<OFF>(value.map_or(NO_PRICE, |p| p.0));
    }

    /// The common 16-byte message header; `side` is the wire byte (0 for none).
    fn header(&mut self, msg_type: u8, side: u8, instrument: InstrumentId, ts_ns: u64) {
        self.u8::<0>(msg_type);
        self.u8::<1>(side);
        self.u32::<4>(instrument.0);
        self.u64::<8>(ts_ns);
    }
}

fn side_byte(side: Side) -> u8 {
    match side {
        Side::Buy => SIDE_BUY,
        Side::Sell => SIDE_SELL,
    }
}

// ---------------------------------------------------------------------------------------------
// Session ids and symbols

/// A feed session: 10 ASCII bytes, right-padded with spaces. A new session starts at every
/// exchange start, and sequence numbers start again from 1 in it.
///
/// A session that [`SessionId::new`] made or a decoder returned is 1 to 10 graphic ASCII
/// characters followed by spaces. The field is public so that a session can be written as a
/// constant; a value that breaks the rule encodes as given but no decoder accepts it back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionId(pub [u8; SESSION_BYTES]);

impl SessionId {
    /// The session named `s`: 1 to 10 graphic ASCII characters (no spaces), padded with spaces.
    pub fn new(s: &str) -> Result<SessionId, FeedError> {
        let bytes = s.as_bytes();
        if bytes.is_empty() {
            return Err(FeedError::Session { offset: 0 });
        }
        if let Some(i) = bytes.iter().position(|b| !b.is_ascii_graphic()) {
            return Err(FeedError::Session { offset: i });
        }
        if bytes.len() > SESSION_BYTES {
            return Err(FeedError::Session {
                offset: SESSION_BYTES,
            });
        }
        let mut id = [b' '; SESSION_BYTES];
        id[..bytes.len()].copy_from_slice(bytes);
        Ok(SessionId(id))
    }

    /// The name without its padding. Returns `""` for a hand-built value that is not ASCII,
    /// which no decoder produces.
    pub fn as_str(&self) -> &str {
        let end = self.0.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        core::str::from_utf8(&self.0[..end]).unwrap_or("")
    }

    /// Validates a session read at byte `base` of some buffer: graphic characters, at least
    /// one, then only spaces. Refusing anything else is what makes `SessionId::new(s.as_str())`
    /// give back every decoded session, and what keeps the padding canonical.
    fn from_wire(bytes: [u8; SESSION_BYTES], base: usize) -> Result<SessionId, FeedError> {
        let name = bytes
            .iter()
            .position(|b| !b.is_ascii_graphic())
            .unwrap_or(SESSION_BYTES);
        if name == 0 {
            return Err(FeedError::Session { offset: base });
        }
        if let Some(i) = bytes[name..].iter().position(|&b| b != b' ') {
            return Err(FeedError::Session {
                offset: base + name + i,
            });
        }
        Ok(SessionId(bytes))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionId {
    type Err = FeedError;

    fn from_str(s: &str) -> Result<SessionId, FeedError> {
        SessionId::new(s)
    }
}

/// Checks a directory symbol read at byte `base`: printable ASCII (spaces included, since some
/// venues' symbols have them), not starting with a space (so not empty, and the padding is only
/// ever on the right).
fn check_symbol(symbol: &[u8; SYMBOL_BYTES], base: usize) -> Result<(), FeedError> {
    if symbol[0] == b' ' {
        return Err(FeedError::Symbol { offset: base });
    }
    match symbol.iter().position(|&b| !(b' '..=b'~').contains(&b)) {
        Some(i) => Err(FeedError::Symbol { offset: base + i }),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

/// `R`: an instrument's symbol and how to display its prices and quantities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Directory {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    /// Printable ASCII, right-padded with spaces; see [`Directory::symbol_bytes`].
    pub symbol: [u8; SYMBOL_BYTES],
    /// Digits after the decimal point when a price in ticks is shown as a decimal number.
    pub price_decimals: u8,
    /// Digits after the decimal point when a quantity in lots is shown as a decimal number.
    pub qty_decimals: u8,
    pub tick_size: PriceTicks,
    pub lot_size: QtyLots,
}

impl Directory {
    /// `symbol` as the 16 space-padded bytes of [`Directory::symbol`]. Refuses (with the offset
    /// in the string) a symbol that is empty, longer than 16 bytes, starts with a space or is not
    /// printable ASCII, because no decoder would accept it back.
    pub fn symbol_bytes(symbol: &str) -> Result<[u8; SYMBOL_BYTES], FeedError> {
        let bytes = symbol.as_bytes();
        if bytes.len() > SYMBOL_BYTES {
            return Err(FeedError::Symbol {
                offset: SYMBOL_BYTES,
            });
        }
        let mut padded = [b' '; SYMBOL_BYTES];
        padded[..bytes.len()].copy_from_slice(bytes);
        check_symbol(&padded, 0)?;
        Ok(padded)
    }

    /// The symbol without its padding. Returns `""` for a hand-built symbol that is not ASCII,
    /// which no decoder produces.
    pub fn symbol_str(&self) -> &str {
        let end = self
            .symbol
            .iter()
            .rposition(|&b| b != b' ')
            .map_or(0, |i| i + 1);
        core::str::from_utf8(&self.symbol[..end]).unwrap_or("")
    }

    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ Directory::BYTES }>::new(out);
        w.header(Self::TYPE, 0, self.instrument, self.ts_ns);
        w.put::<16, SYMBOL_BYTES>(self.symbol);
        w.u8::<32>(self.price_decimals);
        w.u8::<33>(self.qty_decimals);
        w.i64::<40>(self.tick_size.0);
        w.u64::<48>(self.lot_size.0);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ Directory::BYTES }>(bytes)?;
        r.no_side()?;
        let (instrument, ts_ns) = r.common()?;
        let symbol = r.get::<16, SYMBOL_BYTES>();
        check_symbol(&symbol, 16)?;
        r.reserved::<34, 40>()?;
        Ok(Directory {
            instrument,
            ts_ns,
            symbol,
            price_decimals: r.u8::<32>(),
            qty_decimals: r.u8::<33>(),
            tick_size: r.price::<40>(),
            lot_size: r.qty::<48>(),
        })
    }
}

/// `H`: an instrument was halted or reopened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub status: InstrumentStatus,
}

impl Status {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ Status::BYTES }>::new(out);
        w.header(Self::TYPE, 0, self.instrument, self.ts_ns);
        w.u8::<16>(self.status.as_u8());
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ Status::BYTES }>(bytes)?;
        r.no_side()?;
        let (instrument, ts_ns) = r.common()?;
        let code = r.u8::<16>();
        let status = InstrumentStatus::from_u8(code).ok_or(FeedError::Status(code))?;
        r.reserved::<17, 24>()?;
        Ok(Status {
            instrument,
            ts_ns,
            status,
        })
    }
}

/// `A`: an order joined the back of its price level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddOrder {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub side: Side,
    pub order_id: OrderId,
    pub price: PriceTicks,
    pub qty: QtyLots,
}

impl AddOrder {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ AddOrder::BYTES }>::new(out);
        w.header(
            Self::TYPE,
            side_byte(self.side),
            self.instrument,
            self.ts_ns,
        );
        w.u64::<16>(self.order_id.0);
        w.i64::<24>(self.price.0);
        w.u64::<32>(self.qty.0);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ AddOrder::BYTES }>(bytes)?;
        let side = r.side()?;
        let (instrument, ts_ns) = r.common()?;
        Ok(AddOrder {
            instrument,
            ts_ns,
            side,
            order_id: OrderId(r.u64::<16>()),
            price: r.price::<24>(),
            qty: r.qty::<32>(),
        })
    }
}

/// `D`: an order left the book (cancelled, expired, or left its place to be re-priced).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeleteOrder {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    /// The deleted order's side.
    pub side: Side,
    pub order_id: OrderId,
    /// The open quantity the order had.
    pub qty: QtyLots,
}

impl DeleteOrder {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ DeleteOrder::BYTES }>::new(out);
        w.header(
            Self::TYPE,
            side_byte(self.side),
            self.instrument,
            self.ts_ns,
        );
        w.u64::<16>(self.order_id.0);
        w.u64::<24>(self.qty.0);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ DeleteOrder::BYTES }>(bytes)?;
        let side = r.side()?;
        let (instrument, ts_ns) = r.common()?;
        Ok(DeleteOrder {
            instrument,
            ts_ns,
            side,
            order_id: OrderId(r.u64::<16>()),
            qty: r.qty::<24>(),
        })
    }
}

/// `X`: an order was reduced in place without a trade; it keeps its priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReduceOrder {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub side: Side,
    pub order_id: OrderId,
    pub qty_reduced: QtyLots,
    /// The open quantity after the reduction.
    pub qty_open: QtyLots,
}

impl ReduceOrder {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ ReduceOrder::BYTES }>::new(out);
        w.header(
            Self::TYPE,
            side_byte(self.side),
            self.instrument,
            self.ts_ns,
        );
        w.u64::<16>(self.order_id.0);
        w.u64::<24>(self.qty_reduced.0);
        w.u64::<32>(self.qty_open.0);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ ReduceOrder::BYTES }>(bytes)?;
        let side = r.side()?;
        let (instrument, ts_ns) = r.common()?;
        Ok(ReduceOrder {
            instrument,
            ts_ns,
            side,
            order_id: OrderId(r.u64::<16>()),
            qty_reduced: r.qty::<24>(),
            qty_open: r.qty::<32>(),
        })
    }
}

/// `U`: a replace that kept priority (same price, less quantity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModifyOrder {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub side: Side,
    pub order_id: OrderId,
    pub price: PriceTicks,
    pub qty_open: QtyLots,
}

impl ModifyOrder {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ ModifyOrder::BYTES }>::new(out);
        w.header(
            Self::TYPE,
            side_byte(self.side),
            self.instrument,
            self.ts_ns,
        );
        w.u64::<16>(self.order_id.0);
        w.i64::<24>(self.price.0);
        w.u64::<32>(self.qty_open.0);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ ModifyOrder::BYTES }>(bytes)?;
        let side = r.side()?;
        let (instrument, ts_ns) = r.common()?;
        Ok(ModifyOrder {
            instrument,
            ts_ns,
            side,
            order_id: OrderId(r.u64::<16>()),
            price: r.price::<24>(),
            qty_open: r.qty::<32>(),
        })
    }
}

/// `E`: a trade, which is also the execution of the resting (maker) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrderExecuted {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    /// The side of the incoming order; the maker is on the other side.
    pub aggressor_side: Side,
    pub trade_id: TradeId,
    pub maker_order_id: OrderId,
    pub price: PriceTicks,
    pub qty: QtyLots,
    /// The maker's open quantity after the trade; 0 means it left the book.
    pub maker_qty_open: QtyLots,
}

impl OrderExecuted {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ OrderExecuted::BYTES }>::new(out);
        w.header(
            Self::TYPE,
            side_byte(self.aggressor_side),
            self.instrument,
            self.ts_ns,
        );
        w.u64::<16>(self.trade_id.0);
        w.u64::<24>(self.maker_order_id.0);
        w.i64::<32>(self.price.0);
        w.u64::<40>(self.qty.0);
        w.u64::<48>(self.maker_qty_open.0);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ OrderExecuted::BYTES }>(bytes)?;
        let aggressor_side = r.side()?;
        let (instrument, ts_ns) = r.common()?;
        r.reserved::<56, 64>()?;
        Ok(OrderExecuted {
            instrument,
            ts_ns,
            aggressor_side,
            trade_id: TradeId(r.u64::<16>()),
            maker_order_id: OrderId(r.u64::<24>()),
            price: r.price::<32>(),
            qty: r.qty::<40>(),
            maker_qty_open: r.qty::<48>(),
        })
    }
}

/// `L`: one position of the aggregated depth changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PriceLevel {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub side: Side,
    pub price: PriceTicks,
    pub qty_total: QtyLots,
    /// 0 when the level left the published depth or is gone.
    pub order_count: u32,
    /// 1 is the best level.
    pub position: u8,
}

impl PriceLevel {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ PriceLevel::BYTES }>::new(out);
        w.header(
            Self::TYPE,
            side_byte(self.side),
            self.instrument,
            self.ts_ns,
        );
        w.i64::<16>(self.price.0);
        w.u64::<24>(self.qty_total.0);
        w.u32::<32>(self.order_count);
        w.u8::<36>(self.position);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ PriceLevel::BYTES }>(bytes)?;
        let side = r.side()?;
        let (instrument, ts_ns) = r.common()?;
        r.reserved::<37, 40>()?;
        Ok(PriceLevel {
            instrument,
            ts_ns,
            side,
            price: r.price::<16>(),
            qty_total: r.qty::<24>(),
            order_count: r.u32::<32>(),
            position: r.u8::<36>(),
        })
    }
}

/// `Q`: the top of the book changed. An empty side has no price (`i64::MIN` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BestBidOffer {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub bid_price: Option<PriceTicks>,
    pub bid_qty: QtyLots,
    pub ask_price: Option<PriceTicks>,
    pub ask_qty: QtyLots,
    pub bid_orders: u32,
    pub ask_orders: u32,
}

impl BestBidOffer {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ BestBidOffer::BYTES }>::new(out);
        w.header(Self::TYPE, 0, self.instrument, self.ts_ns);
        w.price_opt::<16>(self.bid_price);
        w.u64::<24>(self.bid_qty.0);
        w.price_opt::<32>(self.ask_price);
        w.u64::<40>(self.ask_qty.0);
        w.u32::<48>(self.bid_orders);
        w.u32::<52>(self.ask_orders);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ BestBidOffer::BYTES }>(bytes)?;
        r.no_side()?;
        let (instrument, ts_ns) = r.common()?;
        Ok(BestBidOffer {
            instrument,
            ts_ns,
            bid_price: r.price_opt::<16>(),
            bid_qty: r.qty::<24>(),
            ask_price: r.price_opt::<32>(),
            ask_qty: r.qty::<40>(),
            bid_orders: r.u32::<48>(),
            ask_orders: r.u32::<52>(),
        })
    }
}

/// `S`: the day's statistics of an instrument, after a command that traded in it. Prices are
/// `None` until the first trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Statistics {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub open: Option<PriceTicks>,
    pub high: Option<PriceTicks>,
    pub low: Option<PriceTicks>,
    pub last: Option<PriceTicks>,
    pub volume: QtyLots,
    pub trade_count: u64,
    /// Price × quantity summed over the trades, in ticks × lots; VWAP is `turnover / volume`.
    pub turnover: u128,
}

impl Statistics {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ Statistics::BYTES }>::new(out);
        w.header(Self::TYPE, 0, self.instrument, self.ts_ns);
        w.price_opt::<16>(self.open);
        w.price_opt::<24>(self.high);
        w.price_opt::<32>(self.low);
        w.price_opt::<40>(self.last);
        w.u64::<48>(self.volume.0);
        w.u64::<56>(self.trade_count);
        w.u128::<64>(self.turnover);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ Statistics::BYTES }>(bytes)?;
        r.no_side()?;
        let (instrument, ts_ns) = r.common()?;
        Ok(Statistics {
            instrument,
            ts_ns,
            open: r.price_opt::<16>(),
            high: r.price_opt::<24>(),
            low: r.price_opt::<32>(),
            last: r.price_opt::<40>(),
            volume: r.qty::<48>(),
            trade_count: r.u64::<56>(),
            turnover: r.u128::<64>(),
        })
    }
}

/// `C`: the engine's hash of an instrument's book at this point of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub engine_seq: u64,
    pub book_hash: u64,
    pub orders: u32,
    pub bid_levels: u32,
    pub ask_levels: u32,
}

impl Checkpoint {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ Checkpoint::BYTES }>::new(out);
        w.header(Self::TYPE, 0, self.instrument, self.ts_ns);
        w.u64::<16>(self.engine_seq);
        w.u64::<24>(self.book_hash);
        w.u32::<32>(self.orders);
        w.u32::<36>(self.bid_levels);
        w.u32::<40>(self.ask_levels);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ Checkpoint::BYTES }>(bytes)?;
        r.no_side()?;
        let (instrument, ts_ns) = r.common()?;
        r.reserved::<44, 48>()?;
        Ok(Checkpoint {
            instrument,
            ts_ns,
            engine_seq: r.u64::<16>(),
            book_hash: r.u64::<24>(),
            orders: r.u32::<32>(),
            bid_levels: r.u32::<36>(),
            ask_levels: r.u32::<40>(),
        })
    }
}

/// `G`: the start of one instrument's snapshot, which reflects every message up to and including
/// `as_of_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotBegin {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub as_of_seq: u64,
    /// How many `A` messages the snapshot holds.
    pub orders: u32,
}

impl SnapshotBegin {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ SnapshotBegin::BYTES }>::new(out);
        w.header(Self::TYPE, 0, self.instrument, self.ts_ns);
        w.u64::<16>(self.as_of_seq);
        w.u32::<24>(self.orders);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ SnapshotBegin::BYTES }>(bytes)?;
        r.no_side()?;
        let (instrument, ts_ns) = r.common()?;
        r.reserved::<28, 32>()?;
        Ok(SnapshotBegin {
            instrument,
            ts_ns,
            as_of_seq: r.u64::<16>(),
            orders: r.u32::<24>(),
        })
    }
}

/// `Z`: the end of one instrument's snapshot, with the hash of the book it describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotEnd {
    pub instrument: InstrumentId,
    pub ts_ns: u64,
    pub as_of_seq: u64,
    pub book_hash: u64,
}

impl SnapshotEnd {
    fn write(&self, out: &mut [u8]) {
        let mut w = Writer::<{ SnapshotEnd::BYTES }>::new(out);
        w.header(Self::TYPE, 0, self.instrument, self.ts_ns);
        w.u64::<16>(self.as_of_seq);
        w.u64::<24>(self.book_hash);
    }

    fn read(bytes: &[u8]) -> Result<Self, FeedError> {
        let r = message_reader::<{ SnapshotEnd::BYTES }>(bytes)?;
        r.no_side()?;
        let (instrument, ts_ns) = r.common()?;
        Ok(SnapshotEnd {
            instrument,
            ts_ns,
            as_of_seq: r.u64::<16>(),
            book_hash: r.u64::<24>(),
        })
    }
}

/// One feed message of any type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    Directory(Directory),
    Status(Status),
    Add(AddOrder),
    Delete(DeleteOrder),
    Reduce(ReduceOrder),
    Modify(ModifyOrder),
    Executed(OrderExecuted),
    Level(PriceLevel),
    Bbo(BestBidOffer),
    Stats(Statistics),
    Checkpoint(Checkpoint),
    SnapshotBegin(SnapshotBegin),
    SnapshotEnd(SnapshotEnd),
}

/// Defines, from one table, each message type's code and size, the conversions into
/// [`Message`], and the functions that dispatch on the type, so that the table in FEED.md is
/// written down exactly once here.
macro_rules! message_types {
    ($($variant:ident($ty:ident) = $code:literal, $bytes:literal;)*) => {
        $(
            impl $ty {
                /// The type code (the message's first byte).
                pub const TYPE: u8 = $code;
                /// The message's fixed size in bytes.
                pub const BYTES: usize = $bytes;
            }

            impl From<$ty> for Message {
                fn from(m: $ty) -> Message {
                    Message::$variant(m)
                }
            }
        )*

        impl Message {
            /// The type code (`b'R'`, `b'H'`, ...).
            pub fn type_code(&self) -> u8 {
                match self {
                    $(Message::$variant(_) => $ty::TYPE,)*
                }
            }

            /// The fixed size of this message's type, which [`Message::encode`] writes.
            // A message is never empty, so an `is_empty` would only ever say `false`.
            #[allow(clippy::len_without_is_empty)]
            pub fn len(&self) -> usize {
                match self {
                    $(Message::$variant(_) => $ty::BYTES,)*
                }
            }

            /// The instrument the message is about.
            pub fn instrument(&self) -> InstrumentId {
                match self {
                    $(Message::$variant(m) => m.instrument,)*
                }
            }

            /// The sequencer's timestamp of the command that caused the message.
            pub fn ts_ns(&self) -> u64 {
                match self {
                    $(Message::$variant(m) => m.ts_ns,)*
                }
            }

            /// Writes exactly `self.len()` bytes at the start of `out`, reserved bytes included
            /// (as zero), and returns `self.len()`. Bytes of `out` after that are untouched.
            ///
            /// # Panics
            ///
            /// If `out` is shorter than `self.len()`. That is a bug in the caller, which can
            /// always size `out` by `self.len()` or [`MESSAGE_BYTES_MAX`].
            pub fn encode(&self, out: &mut [u8]) -> usize {
                match self {
                    $(Message::$variant(m) => m.write(out),)*
                }
                self.len()
            }
        }

        /// The fixed size of messages of type `type_code`, or `None` for an unknown type.
        pub fn message_len(type_code: u8) -> Option<usize> {
            match type_code {
                $($code => Some($bytes),)*
                _ => None,
            }
        }

        /// Decodes one message; `bytes` must be exactly that message (its type's size).
        pub fn decode_message(bytes: &[u8]) -> Result<Message, FeedError> {
            let Some(&msg_type) = bytes.first() else {
                return Err(FeedError::Truncated { need: 1, have: 0 });
            };
            match msg_type {
                $($code => $ty::read(bytes).map(Message::$variant),)*
                _ => Err(FeedError::UnknownType(msg_type)),
            }
        }
    };
}

message_types! {
    Directory(Directory) = b'R', 56;
    Status(Status) = b'H', 24;
    Add(AddOrder) = b'A', 40;
    Delete(DeleteOrder) = b'D', 32;
    Reduce(ReduceOrder) = b'X', 40;
    Modify(ModifyOrder) = b'U', 40;
    Executed(OrderExecuted) = b'E', 64;
    Level(PriceLevel) = b'L', 40;
    Bbo(BestBidOffer) = b'Q', 56;
    Stats(Statistics) = b'S', 80;
    Checkpoint(Checkpoint) = b'C', 48;
    SnapshotBegin(SnapshotBegin) = b'G', 32;
    SnapshotEnd(SnapshotEnd) = b'Z', 32;
}

// ---------------------------------------------------------------------------------------------
// Packets

/// Writes a packet header into the first [`PACKET_HEADER_BYTES`] of `out`.
fn write_header(out: &mut [u8], session: SessionId, seq: u64, count: u16) {
    let mut w = Writer::<PACKET_HEADER_BYTES>::new(out);
    w.put::<0, 2>(MAGIC);
    w.u8::<2>(VERSION);
    w.put::<4, SESSION_BYTES>(session.0);
    w.u64::<14>(seq);
    w.u16::<22>(count);
}

/// Builds one packet at a time in a buffer allocated once, at construction.
///
/// A new builder holds an empty packet whose first message will carry sequence number 1.
/// [`PacketBuilder::bytes`] is always a complete packet: with no message in it, it is a
/// heartbeat announcing `first_seq` as the next sequence number.
#[derive(Debug)]
pub struct PacketBuilder {
    buf: Box<[u8]>,
    len: usize,
    session: SessionId,
    first_seq: u64,
    count: u16,
}

impl PacketBuilder {
    /// A builder for packets of at most `max_bytes`, clamped to at least
    /// `PACKET_HEADER_BYTES + 2 + MESSAGE_BYTES_MAX` (so that every message fits into an empty
    /// packet) and at most 65,535 (the largest UDP payload and recovery frame).
    pub fn new(session: SessionId, max_bytes: usize) -> PacketBuilder {
        let max_bytes = max_bytes.clamp(BUILDER_BYTES_MIN, PACKET_BYTES_MAX);
        let mut builder = PacketBuilder {
            buf: vec![0; max_bytes].into_boxed_slice(),
            len: 0,
            session,
            first_seq: 1,
            count: 0,
        };
        builder.start(1);
        builder
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The size limit after clamping.
    pub fn max_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Empties the packet; its first message will carry `first_seq` (0 for a snapshot packet).
    pub fn start(&mut self, first_seq: u64) {
        write_header(&mut self.buf, self.session, first_seq, 0);
        self.len = PACKET_HEADER_BYTES;
        self.first_seq = first_seq;
        self.count = 0;
    }

    /// Appends `msg` and returns `true`, or returns `false` and changes nothing when it does not
    /// fit in `max_bytes`, when the count would reach [`COUNT_END_OF_SESSION`] (which means
    /// something else), or when the next sequence number would overflow a `u64`.
    pub fn push(&mut self, msg: &Message) -> bool {
        let msg_len = msg.len();
        let end = self.len + BLOCK_PREFIX_BYTES + msg_len;
        let count = self.count + 1;
        if end > self.buf.len()
            || count == COUNT_END_OF_SESSION
            || self.first_seq.checked_add(u64::from(count)).is_none()
        {
            return false;
        }
        // `msg_len` is at most MESSAGE_BYTES_MAX, so the cast cannot truncate.
        let prefix = (msg_len as u16).to_le_bytes();
        self.buf[self.len..self.len + BLOCK_PREFIX_BYTES].copy_from_slice(&prefix);
        msg.encode(&mut self.buf[self.len + BLOCK_PREFIX_BYTES..end]);
        self.len = end;
        self.count = count;
        // The header's count is kept current so that `bytes` is a complete packet at any time.
        self.buf[22..24].copy_from_slice(&count.to_le_bytes());
        true
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// `first_seq + count`: the sequence number the next packet starts at (meaningless in a
    /// snapshot packet, whose messages are not sequenced).
    pub fn next_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }

    /// The packet: header (with the current count) and messages.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Writes a heartbeat: no messages, `next_seq` is the sequence number of the next message.
pub fn encode_heartbeat(session: SessionId, next_seq: u64, out: &mut [u8; PACKET_HEADER_BYTES]) {
    write_header(out, session, next_seq, 0);
}

/// Writes an end-of-session packet: no messages, and none will follow in this session.
pub fn encode_end_of_session(
    session: SessionId,
    next_seq: u64,
    out: &mut [u8; PACKET_HEADER_BYTES],
) {
    write_header(out, session, next_seq, COUNT_END_OF_SESSION);
}

/// What a packet is, by its count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// 1 to 65,534 messages.
    Messages,
    /// Count 0: no messages; `seq` is the next message's number.
    Heartbeat,
    /// Count 0xFFFF: no messages, and the session is over; `seq` is the next message's number.
    EndOfSession,
}

/// A packet that [`parse_packet`] has checked completely: every message in it decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub session: SessionId,
    /// The first message's sequence number; for a heartbeat or end of session, the next one's;
    /// 0 in a snapshot packet.
    pub seq: u64,
    pub kind: PacketKind,
    /// The header's count as sent: 0 for a heartbeat, 0xFFFF for an end of session.
    pub count: u16,
    body: &'a [u8],
}

impl<'a> Packet<'a> {
    /// The messages with their sequence numbers, `seq + i` for message `i`. Messages of a
    /// snapshot packet (`seq` 0) are not part of the sequenced stream and all come with 0, so
    /// that none can be mistaken for a live message.
    pub fn messages(&self) -> Messages<'a> {
        Messages {
            rest: self.body,
            seq: self.seq,
            step: u64::from(self.seq != 0),
        }
    }

    /// The message blocks after the header, exactly as received.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// The messages of a [`Packet`], with their sequence numbers.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
    seq: u64,
    step: u64,
}

impl Iterator for Messages<'_> {
    type Item = (u64, Message);

    fn next(&mut self) -> Option<(u64, Message)> {
        let (prefix, rest) = self.rest.split_first_chunk::<BLOCK_PREFIX_BYTES>()?;
        let len = usize::from(u16::from_le_bytes(*prefix));
        // `parse_packet` has checked every block, so neither of these fails; stopping rather
        // than panicking keeps the iterator total all the same.
        let Some((bytes, rest)) = rest.split_at_checked(len) else {
            self.rest = &[];
            return None;
        };
        let Ok(msg) = decode_message(bytes) else {
            self.rest = &[];
            return None;
        };
        self.rest = rest;
        let seq = self.seq;
        // `parse_packet` refuses a packet whose seq + count overflows, so this never wraps;
        // wrapping rather than `+` keeps a panic path out of the iterator all the same.
        self.seq = self.seq.wrapping_add(self.step);
        Some((seq, msg))
    }
}

/// Checks a packet completely: header, every message block, and that the blocks fill the packet
/// exactly.
pub fn parse_packet(bytes: &[u8]) -> Result<Packet<'_>, FeedError> {
    let have = bytes.len();
    if have > PACKET_BYTES_MAX {
        return Err(FeedError::TooLong {
            len: have,
            max: PACKET_BYTES_MAX,
        });
    }
    let Some(header) = bytes.first_chunk::<PACKET_HEADER_BYTES>() else {
        return Err(FeedError::Truncated {
            need: PACKET_HEADER_BYTES,
            have,
        });
    };
    let r = Reader(header);
    let magic = r.get::<0, 2>();
    if magic != MAGIC {
        return Err(FeedError::Magic(magic));
    }
    let version = r.u8::<2>();
    if version != VERSION {
        return Err(FeedError::Version(version));
    }
    let flags = r.u8::<3>();
    if flags != 0 {
        return Err(FeedError::Flags(flags));
    }
    let session = SessionId::from_wire(r.get::<4, SESSION_BYTES>(), 4)?;
    let seq = r.u64::<14>();
    let count = r.u16::<22>();
    let body = &bytes[PACKET_HEADER_BYTES..];

    let kind = match count {
        0 => PacketKind::Heartbeat,
        COUNT_END_OF_SESSION => PacketKind::EndOfSession,
        _ => PacketKind::Messages,
    };
    if kind != PacketKind::Messages {
        if !body.is_empty() {
            return Err(FeedError::TrailingBytes {
                offset: PACKET_HEADER_BYTES,
            });
        }
    } else {
        if seq.checked_add(u64::from(count)).is_none() {
            return Err(FeedError::SeqOverflow { seq, count });
        }
        let mut offset = PACKET_HEADER_BYTES;
        for found in 0..usize::from(count) {
            offset += check_block(bytes, offset, count, found)?;
        }
        if offset != have {
            return Err(FeedError::TrailingBytes { offset });
        }
    }
    Ok(Packet {
        session,
        seq,
        kind,
        count,
        body,
    })
}

/// Checks the message block at `offset` of `packet`, the `found`-th of `declared`, and returns
/// its size. The type is looked at before the length so that a corrupted length is reported as
/// a length that does not match the type rather than as a truncated packet.
fn check_block(
    packet: &[u8],
    offset: usize,
    declared: u16,
    found: usize,
) -> Result<usize, FeedError> {
    let have = packet.len();
    let rest = packet.get(offset..).unwrap_or(&[]);
    if rest.is_empty() {
        return Err(FeedError::Count { declared, found });
    }
    let Some((prefix, rest)) = rest.split_first_chunk::<BLOCK_PREFIX_BYTES>() else {
        return Err(FeedError::Truncated {
            need: offset + BLOCK_PREFIX_BYTES,
            have,
        });
    };
    let len = usize::from(u16::from_le_bytes(*prefix));
    let Some(&msg_type) = rest.first() else {
        return Err(FeedError::Truncated {
            need: offset + BLOCK_PREFIX_BYTES + 1,
            have,
        });
    };
    let expected = message_len(msg_type).ok_or(FeedError::UnknownType(msg_type))?;
    if len != expected {
        return Err(FeedError::Length {
            msg_type,
            expected,
            found: len,
        });
    }
    let Some(msg) = rest.get(..len) else {
        return Err(FeedError::Truncated {
            need: offset + BLOCK_PREFIX_BYTES + len,
            have,
        });
    };
    decode_message(msg).map_err(|e| e.shifted(offset + BLOCK_PREFIX_BYTES))?;
    Ok(BLOCK_PREFIX_BYTES + len)
}

// ---------------------------------------------------------------------------------------------
// Recovery service

/// A request from a subscriber to the recovery service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// `'r'`: send messages `from_seq .. from_seq + count` again.
    Retransmit {
        session: SessionId,
        from_seq: u64,
        count: u32,
    },
    /// `'s'`: send a snapshot of one instrument, or of all of them (`None`, 0xFFFFFFFF on the
    /// wire). `Some(InstrumentId(0xFFFFFFFF))` is therefore not representable: it encodes as
    /// "all".
    Snapshot {
        session: SessionId,
        instrument: Option<InstrumentId>,
    },
}

/// Why the recovery service refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RejectReason {
    /// The request names a session other than the current one.
    WrongSession = 1,
    /// Older than the retransmission buffer, or not yet published.
    RangeNotAvailable = 2,
    UnknownInstrument = 3,
    /// The request did not decode.
    Malformed = 4,
    /// Too many recovery connections (the service takes a bounded number at a time).
    TooManyRequests = 5,
    /// The connection's bounded reply queue filled; the connection is closed after this frame.
    SlowConsumer = 6,
}

impl RejectReason {
    /// Every reason, in code order.
    pub const ALL: [RejectReason; 6] = [
        RejectReason::WrongSession,
        RejectReason::RangeNotAvailable,
        RejectReason::UnknownInstrument,
        RejectReason::Malformed,
        RejectReason::TooManyRequests,
        RejectReason::SlowConsumer,
    ];

    /// The wire code.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Decodes a wire code; `None` for a code that names no reason.
    pub const fn from_u8(value: u8) -> Option<RejectReason> {
        match value {
            1 => Some(RejectReason::WrongSession),
            2 => Some(RejectReason::RangeNotAvailable),
            3 => Some(RejectReason::UnknownInstrument),
            4 => Some(RejectReason::Malformed),
            5 => Some(RejectReason::TooManyRequests),
            6 => Some(RejectReason::SlowConsumer),
            _ => None,
        }
    }
}

/// A reply frame from the recovery service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// One feed packet of the reply.
    Packet(Packet<'a>),
    /// `'e'`: the reply is complete.
    End,
    /// `'j'`: the request was refused.
    Reject { reason: RejectReason, text: &'a str },
}

/// Appends a frame's length prefix to `out`.
///
/// # Panics
///
/// If `len` is over [`FRAME_PAYLOAD_MAX`]: the caller built a payload no frame can carry.
fn push_frame_len(len: usize, out: &mut Vec<u8>) {
    let Ok(len) = u16::try_from(len) else {
        panic!("a frame payload of {len} bytes is over the {FRAME_PAYLOAD_MAX}-byte limit");
    };
    out.extend_from_slice(&len.to_le_bytes());
}

/// Appends a request frame (length prefix and payload) to `out`.
pub fn encode_request(req: &Request, out: &mut Vec<u8>) {
    match *req {
        Request::Retransmit {
            session,
            from_seq,
            count,
        } => {
            let mut payload = [0u8; RETRANSMIT_REQUEST_BYTES];
            let mut w = Writer::<RETRANSMIT_REQUEST_BYTES>::new(&mut payload);
            w.u8::<0>(REQUEST_RETRANSMIT);
            w.put::<1, SESSION_BYTES>(session.0);
            w.u64::<11>(from_seq);
            w.u32::<19>(count);
            push_frame_len(payload.len(), out);
            out.extend_from_slice(&payload);
        }
        Request::Snapshot {
            session,
            instrument,
        } => {
            let mut payload = [0u8; SNAPSHOT_REQUEST_BYTES];
            let mut w = Writer::<SNAPSHOT_REQUEST_BYTES>::new(&mut payload);
            w.u8::<0>(REQUEST_SNAPSHOT);
            w.put::<1, SESSION_BYTES>(session.0);
            w.u32::<11>(instrument.map_or(ALL_INSTRUMENTS, |i| i.0));
            push_frame_len(payload.len(), out);
            out.extend_from_slice(&payload);
        }
    }
}

/// Decodes a request frame's payload (without the length prefix).
pub fn decode_request(payload: &[u8]) -> Result<Request, FeedError> {
    let Some(&kind) = payload.first() else {
        return Err(FeedError::Truncated { need: 1, have: 0 });
    };
    match kind {
        REQUEST_RETRANSMIT => {
            let r = frame_reader::<RETRANSMIT_REQUEST_BYTES>(payload)?;
            Ok(Request::Retransmit {
                session: SessionId::from_wire(r.get::<1, SESSION_BYTES>(), 1)?,
                from_seq: r.u64::<11>(),
                count: r.u32::<19>(),
            })
        }
        REQUEST_SNAPSHOT => {
            let r = frame_reader::<SNAPSHOT_REQUEST_BYTES>(payload)?;
            let session = SessionId::from_wire(r.get::<1, SESSION_BYTES>(), 1)?;
            let instrument = match r.u32::<11>() {
                ALL_INSTRUMENTS => None,
                id => Some(InstrumentId(id)),
            };
            Ok(Request::Snapshot {
                session,
                instrument,
            })
        }
        other => Err(FeedError::RequestType(other)),
    }
}

/// Appends a reply frame carrying `packet` (a complete feed packet) to `out`.
///
/// # Panics
///
/// If `packet` is longer than 65,535 bytes, which no [`PacketBuilder`] makes.
pub fn encode_reply_packet(packet: &[u8], out: &mut Vec<u8>) {
    push_frame_len(packet.len(), out);
    out.extend_from_slice(packet);
}

/// Appends the `'e'` frame that ends a reply to `out`.
pub fn encode_reply_end(out: &mut Vec<u8>) {
    push_frame_len(1, out);
    out.push(REPLY_END);
}

/// Appends a `'j'` reject frame to `out`. Each character of `text` that is not printable ASCII
/// (anything outside space to `~`, so control characters too, which a terminal would act on)
/// becomes one `'?'`, and the text is cut at [`REJECT_TEXT_MAX`] characters to fit the frame.
pub fn encode_reply_reject(reason: RejectReason, text: &str, out: &mut Vec<u8>) {
    let chars = text.chars().take(REJECT_TEXT_MAX);
    push_frame_len(2 + chars.clone().count(), out);
    out.push(REPLY_REJECT);
    out.push(reason.as_u8());
    out.extend(chars.map(|c| {
        u8::try_from(c)
            .ok()
            .filter(|b| (b' '..=b'~').contains(b))
            .unwrap_or(b'?')
    }));
}

/// Decodes a reply frame's payload (without the length prefix). A payload starting with `'F'`
/// is a feed packet and is checked completely, as by [`parse_packet`].
pub fn decode_reply(payload: &[u8]) -> Result<Reply<'_>, FeedError> {
    if payload.len() > FRAME_PAYLOAD_MAX {
        return Err(FeedError::TooLong {
            len: payload.len(),
            max: FRAME_PAYLOAD_MAX,
        });
    }
    let Some(&kind) = payload.first() else {
        return Err(FeedError::Truncated { need: 1, have: 0 });
    };
    match kind {
        b if b == MAGIC[0] => parse_packet(payload).map(Reply::Packet),
        REPLY_END => match payload.len() {
            1 => Ok(Reply::End),
            _ => Err(FeedError::TrailingBytes { offset: 1 }),
        },
        REPLY_REJECT => {
            let Some(&code) = payload.get(1) else {
                return Err(FeedError::Truncated { need: 2, have: 1 });
            };
            let reason = RejectReason::from_u8(code).ok_or(FeedError::RejectReason(code))?;
            let text = payload.get(2..).unwrap_or(&[]);
            if let Some(i) = text.iter().position(|b| !(b' '..=b'~').contains(b)) {
                return Err(FeedError::Text { offset: 2 + i });
            }
            // Printable ASCII is always UTF-8; the error arm only keeps this free of a panic.
            let text = core::str::from_utf8(text).map_err(|_| FeedError::Text { offset: 2 })?;
            Ok(Reply::Reject { reason, text })
        }
        other => Err(FeedError::ReplyType(other)),
    }
}

/// Splits a TCP byte stream into frame payloads: push what the socket gave, then take every
/// complete frame out before pushing again.
///
/// Used that way, it holds at most one incomplete frame (2 + 65,535 bytes) plus the last push,
/// so its buffer stays bounded; [`FrameSplitter::new`] reserves room for two whole frames so that
/// reads of up to 64 KiB never make it grow. (It does not refuse a push: a caller that keeps
/// pushing without taking frames makes it grow without bound.)
#[derive(Debug)]
pub struct FrameSplitter {
    buf: Vec<u8>,
    /// Where the first byte not yet returned by `next_frame` is.
    start: usize,
}

impl Default for FrameSplitter {
    fn default() -> Self {
        FrameSplitter::new()
    }
}

impl FrameSplitter {
    pub fn new() -> Self {
        FrameSplitter {
            buf: Vec::with_capacity(2 * (FRAME_PREFIX_BYTES + FRAME_PAYLOAD_MAX)),
            start: 0,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        // Frames already returned are dropped here rather than in `next_frame`, because the
        // slice `next_frame` returned must stay valid until the caller is done with it.
        if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The payload of the next complete frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        let pending = self.buf.get(self.start..)?;
        let (prefix, rest) = pending.split_first_chunk::<FRAME_PREFIX_BYTES>()?;
        let len = usize::from(u16::from_le_bytes(*prefix));
        if rest.len() < len {
            return None;
        }
        let from = self.start + FRAME_PREFIX_BYTES;
        self.start = from + len;
        self.buf.get(from..from + len)
    }

    /// Bytes pushed and not yet returned as part of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_table_matches_the_constants() {
        let sizes: Vec<usize> = MESSAGE_TYPES
            .iter()
            .map(|&t| message_len(t).expect("every listed type has a size"))
            .collect();
        assert_eq!(sizes, [56, 24, 40, 32, 40, 40, 64, 40, 56, 80, 48, 32, 32]);
        assert_eq!(sizes.iter().max(), Some(&MESSAGE_BYTES_MAX));
        for t in 0..=u8::MAX {
            assert_eq!(message_len(t).is_some(), MESSAGE_TYPES.contains(&t));
        }
    }

    #[test]
    fn errors_in_messages_point_into_the_packet() {
        assert_eq!(
            FeedError::Reserved { offset: 3 }.shifted(26),
            FeedError::Reserved { offset: 29 }
        );
        assert_eq!(FeedError::Status(9).shifted(26), FeedError::Status(9));
    }

    #[test]
    fn code_display_is_readable() {
        assert_eq!(
            FeedError::UnknownType(b'?').to_string(),
            "unknown message type '?'"
        );
        assert_eq!(
            FeedError::UnknownType(0).to_string(),
            "unknown message type 0x00"
        );
    }
}
