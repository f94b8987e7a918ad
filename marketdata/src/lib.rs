//! Market data: the publisher, the feed with gap recovery, and the subscriber library.
//!
//! The publisher reads only the engine's events (from the output ring), never the engine's
//! state. The layers go from pure code to I/O, as in the gateway:
//!
//! - [`feed`]: the binary feed format (FEED.md), encode and decode.
//! - [`book`]: the order-by-order book mirror that publisher and subscribers share.
//! - [`publisher`]: events in, sequenced messages out (pure).
//! - [`recovery`]: the retransmission buffer and the answers to recovery requests (pure).
//! - [`subscriber`]: packets in, books out, recovery requests out (pure).
//! - [`server`] and [`client`]: the UDP and TCP shells around them.

pub mod book;
pub mod client;
pub mod feed;
pub mod publisher;
pub mod recovery;
pub mod server;
pub mod subscriber;
