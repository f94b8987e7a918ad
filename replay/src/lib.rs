//! Replay for quants: verify, rebuild, export, import and what-if runs over journals.
//!
//! Status: not built yet (issue #6). It will drive the same engine code as the exchange.
