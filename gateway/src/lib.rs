//! The FIX 4.4 gateway: sessions, order entry, pre-trade risk and protection.
//!
//! Status: not built yet (issue #4). This crate exists so that the workspace has its final shape
//! and the dependency arrows are fixed from the start: it will depend on `ferrox-protocol` only,
//! never on the engine's internals, and it will own sockets, FIX parsing and the order manager.
