//! The FIX 4.4 gateway: sessions, order entry, pre-trade risk and protection.
//!
//! What it owns: TCP connections from trading clients, the FIX session layer (logon,
//! sequence numbers, heartbeats, resend, rejects), conversion of decimal prices and
//! quantities to the engine's integer units, pre-trade risk and throttles, and execution
//! reports. What it never does: match orders or read the engine's state. It talks to the
//! exchange only through its input ring and the broadcast output ring ([`venue`]).
//!
//! Layers, from pure to I/O (the way quinn separates `quinn-proto` from its sockets):
//! - [`fix`]: tag=value framing, parsing, encoding, timestamps and the FIX 4.4 dictionary;
//! - [`session`]: the session-layer state machine (time is an argument);
//! - [`orders`], [`risk`], [`throttle`]: the order manager, a pure library;
//! - [`app`]: FIX application messages to typed requests and typed reports to FIX;
//! - [`md`]: market data over FIX (MarketDataRequest, snapshots, incremental refreshes), with
//!   its books built from the engine's events and conflation for slow readers;
//! - [`store`]: the per-session file that keeps sequence numbers, sent messages and ClOrdIDs;
//! - [`server`]: the mio event loop that moves bytes; [`venue`]: the exchange's rings;
//! - [`client`]: a small blocking FIX initiator for tools and tests.
pub mod app;
pub mod client;
pub mod config;
pub mod fix;
pub mod md;
pub mod orders;
pub mod risk;
pub mod server;
pub mod session;
pub mod store;
pub mod throttle;
pub mod venue;
