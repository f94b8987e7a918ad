//! Ferrox's shared message types: the vocabulary every component speaks.
//!
//! This crate owns the integer money types, identifiers, the commands that enter the matching
//! engine, the events that leave it, and the stable reject and cancel codes. It owns no logic
//! beyond construction checks and code conversions, does no I/O and has no dependencies, so the
//! gateway, the sequencer, market data and replay can all depend on it without depending on the
//! engine's internals.
//!
//! Units: a *tick* is an instrument's price quantum (10^-price_decimals of the quote currency)
//! and a *lot* is its quantity quantum (10^-qty_decimals of the base unit). An instrument may
//! further require prices to be a multiple of `tick_size_ticks` and quantities a multiple of
//! `lot_size_lots`; the engine rejects orders that are not. Conversion from decimal text happens
//! only at the edges (gateway, CLI, configuration).

#![forbid(unsafe_code)]

pub mod bookhash;
pub mod codes;
pub mod command;
pub mod event;
pub mod types;
pub mod wire;

pub use bookhash::BookHasher;
pub use codes::{CancelReason, ExpireReason, RejectCode, RequestKind};
pub use command::{
    Cancel, Checkpoint, Command, MassCancel, NewOrder, Replace, SequencedCommand, SetStatus,
};
pub use event::{Event, EventSink, NullSink, VecSink};
pub use types::{
    AccountId, ClientOrderId, InstrumentId, InstrumentStatus, OrderId, OrderType, PriceTicks,
    QtyLots, Side, StpGroup, StpMode, TimeInForce, TradeId,
};
