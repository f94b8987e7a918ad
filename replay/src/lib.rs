//! Replay for quants: verify, export, statistics and books at any point of a journal.
//!
//! The journal holds commands only; replay re-executes them with the same engine code as the
//! exchange, which is deterministic, so every event and every state is reproduced exactly.
//! Snapshot files written by the exchange are the recorded states a replay is checked against
//! ([`verify`]) and the starting points that keep point-in-time queries ([`book`]) short.

pub mod book;
pub mod cmdfile;
pub mod export;
pub mod fixture;
pub mod lobster;
mod progress;
pub mod source;
pub mod verify;

pub use progress::Progress;
pub use source::{DataDir, ReplayError, Sequenced};
pub use verify::{verify, Divergence, VerifyOptions, VerifyReport};
