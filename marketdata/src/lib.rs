//! The market-data publisher, feeds with gap recovery, and the subscriber library.
//!
//! Status: not built yet (issue #5). It will read only the engine's events (book deltas, trades,
//! status), never the engine's state.
