//! The sequencer, shared-memory rings and the event-sourced journal.
//!
//! Status: not built yet (issue #3). It will be the only component that reads the clock: it
//! stamps each command with the next sequence number and `ts_ns`, journals it, and publishes it
//! to the engine's input ring.
