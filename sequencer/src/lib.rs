//! The pipeline around the engine: shared-memory rings, the sequencer, the event-sourced
//! journal, snapshot files and restart.
//!
//! What it owns:
//! - [`ring`]: bounded shared-memory rings (LMAX style) between threads or processes, with
//!   back-pressure, broadcast consumers and liveness of peers.
//! - [`frame`]: the slot layouts of the input, engine and output rings and the journal payload.
//! - [`agents`]: the sequencer's duty cycle (the only reader of the clock: it stamps each
//!   command with the next sequence number and `ts_ns`, journals it, and publishes it to the
//!   engine ring, in `sync` or `async` durability) and the engine's duty cycle.
//! - [`journal`]: append-only, CRC-checked, preallocated segment files with crash recovery
//!   (torn tails truncated, corruption refused), group-commit `fdatasync`, a directory lock, a
//!   memory-mapped zero-copy reader, and a simulated disk ([`journal::sim`]) for power-loss
//!   tests.
//! - [`recovery`]: atomic snapshot files and restart from the newest usable snapshot plus the
//!   journal tail.
//!
//! What it never does: decide matching (that is `ferrox-engine`), or spawn threads and pin
//! cores (that is the `ferrox` binary).

pub mod agents;
pub mod frame;
pub mod journal;
pub mod recovery;
pub mod ring;
