//! The sequencer, shared-memory rings and the event-sourced journal.
//!
//! The sequencer will be the only component that reads the clock: it stamps each command with
//! the next sequence number and `ts_ns`, journals it, and publishes it to the engine's input
//! ring (issue #3).
//!
//! Built so far:
//! - [`journal`]: the append-only, CRC-checked, preallocated segment files that hold every
//!   sequenced command, with crash recovery (torn tails truncated, corruption refused),
//!   group-commit `fdatasync`, a directory lock, a memory-mapped zero-copy reader, and a
//!   simulated disk ([`journal::sim`]) for power-loss tests.
//!
//! The shared-memory rings live in [`ring`]. Not built yet: the sequencing loop itself.

pub mod agents;
pub mod frame;
pub mod journal;
pub mod recovery;
pub mod ring;
