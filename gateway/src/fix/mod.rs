//! The FIX 4.4 tag=value codec: framing a receive buffer into messages, parsing a message into
//! fields, encoding outgoing messages, UTCTimestamp conversion and the parts of the FIX 4.4
//! dictionary that session-level validation needs.
//!
//! Everything here is pure: no I/O, no clock, and no allocation per message once a [`Parser`]
//! and an [`Encoder`] have been built with their capacities. The session layer owns sockets,
//! time and sequence numbers, and decides what to do with each [`Framing`], [`ParseError`] and
//! [`dict::SessionReject`].

pub mod dict;
pub mod encode;
pub mod frame;
pub mod parse;
pub mod tags;
pub mod time;

pub use encode::Encoder;
pub use frame::{frame, Framing, Garble};
pub use parse::{Field, Message, ParseError, Parser};

/// The field delimiter.
pub const SOH: u8 = 0x01;

/// The only BeginString this gateway speaks. Framing accepts any value (so that a session can
/// answer a wrong version with a Logout); the session layer compares against this.
pub const BEGIN_STRING: &[u8] = b"FIX.4.4";
