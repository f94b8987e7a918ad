//! A seeded order flow written as a real data directory (journal plus snapshots), for tests,
//! examples and benchmarks of the replay tools.
//!
//! It does what the exchange does, in-process and without threads: stamp each command with a
//! seq and time, append it to the journal, apply it to the engine, and write a snapshot file
//! every `snapshot_every` commands (after syncing the journal, as the exchange's snapshots
//! never cover unjournalled commands).

use std::path::Path;

use ferrox_engine::{
    AccountId, Cancel, Checkpoint, ClientOrderId, Command, Engine, EngineConfig, Event,
    InstrumentId, NewOrder, OrderId, PriceTicks, QtyLots, Replace, SequencedCommand, Side,
    TimeInForce, VecSink,
};
use ferrox_sequencer::frame::{encode_input, Origin, INPUT_SLOT_BYTES};
use ferrox_sequencer::journal::{Journal, JournalOptions};
use ferrox_sequencer::recovery::write_snapshot_file;

use crate::source::{new_engine, ReplayError};

/// What to write.
#[derive(Clone, Copy, Debug)]
pub struct FlowOptions {
    pub commands: u64,
    pub seed: u64,
    /// Commands between snapshots; 0 for none.
    pub snapshot_every: u64,
    /// Journal segment size; small values exercise segment rollover.
    pub segment_bytes: u64,
    pub ts_start_ns: u64,
    pub ts_step_ns: u64,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            commands: 10_000,
            seed: 1,
            snapshot_every: 0,
            segment_bytes: 1 << 20,
            // 2026-01-02T09:30:00Z, so that times look like a trading day.
            ts_start_ns: 1_767_346_200_000_000_000,
            ts_step_ns: 1_000_000,
        }
    }
}

/// A small deterministic random generator (xorshift64*), so that flows are reproducible
/// without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The next command of a mixed flow: resting limits around the reference price, aggressive
/// IOCs, cancels and replaces of earlier order ids (some already gone, which exercises
/// rejects), and now and then a checkpoint.
fn next_command(config: &EngineConfig, rng: &mut Rng, seq: u64) -> Command {
    let n = config.instruments.len() as u64;
    let i = rng.below(n) as u32;
    let spec = &config.instruments[i as usize];
    let tick = spec.tick_size.0.max(1);
    let lot = spec.lot_size.0.max(1);
    let side = if rng.below(2) == 0 {
        Side::Buy
    } else {
        Side::Sell
    };
    let account = AccountId(1 + rng.below(8) as u32);
    let cl = ClientOrderId(seq);
    let offset = (1 + rng.below(40)) as i64 * tick;
    let passive = match side {
        Side::Buy => spec.reference_price.0 - offset,
        Side::Sell => spec.reference_price.0 + offset,
    };
    let qty = QtyLots(lot * (1 + rng.below(9)));
    match rng.below(100) {
        0..=49 => Command::NewOrder(NewOrder::limit(
            InstrumentId(i),
            account,
            cl,
            side,
            PriceTicks(passive),
            qty,
        )),
        50..=64 => {
            // Crosses a few levels: the opposite side's passive prices are within 40 ticks.
            let through = match side {
                Side::Buy => spec.reference_price.0 + 20 * tick,
                Side::Sell => spec.reference_price.0 - 20 * tick,
            };
            let mut o =
                NewOrder::limit(InstrumentId(i), account, cl, side, PriceTicks(through), qty);
            o.tif = TimeInForce::Ioc;
            Command::NewOrder(o)
        }
        65..=86 => Command::Cancel(Cancel {
            order_id: OrderId(1 + rng.below(seq)),
            account,
            client_order_id: cl,
        }),
        87..=98 => Command::Replace(Replace {
            order_id: OrderId(1 + rng.below(seq)),
            account,
            client_order_id: cl,
            price: PriceTicks(passive),
            qty,
        }),
        _ => Command::Checkpoint(Checkpoint {
            instrument: InstrumentId(i),
        }),
    }
}

/// Writes a flow into `data_dir` (`journal/` and `snapshots/`) and returns the engine after
/// it. `each` sees every command with its events and the engine just after it.
pub fn write_data_dir(
    data_dir: &Path,
    config: &EngineConfig,
    options: &FlowOptions,
    mut each: impl FnMut(&SequencedCommand, &[Event], &Engine),
) -> Result<Engine, ReplayError> {
    let mut journal = Journal::open(
        data_dir.join("journal"),
        JournalOptions {
            segment_bytes: options.segment_bytes,
            ..JournalOptions::default()
        },
    )?
    .0;
    let mut engine = new_engine(config)?;
    let mut rng = Rng(options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut sink = VecSink::default();
    let mut slot = [0u8; INPUT_SLOT_BYTES];
    let snapshots = data_dir.join("snapshots");
    for seq in 1..=options.commands {
        let cmd = SequencedCommand {
            seq,
            ts_ns: options.ts_start_ns + seq * options.ts_step_ns,
            command: next_command(config, &mut rng, seq),
        };
        let origin = Origin {
            producer: (seq % 3) as u32,
            producer_ref: seq,
        };
        encode_input(origin, &cmd.command, &mut slot);
        journal.append(seq, cmd.ts_ns, &slot)?;
        engine.apply(&cmd, &mut sink);
        each(&cmd, &sink.events, &engine);
        sink.events.clear();
        if options.snapshot_every > 0 && seq % options.snapshot_every == 0 {
            journal.sync()?;
            let mut bytes = Vec::new();
            engine.write_snapshot(&mut bytes);
            write_snapshot_file(&snapshots, seq, &bytes)
                .map_err(|e| ReplayError::Invalid(e.to_string()))?;
        }
    }
    journal.sync()?;
    Ok(engine)
}
