//! `ferrox-icount`: the cases of the instruction-count regression gate.
//!
//! `ferrox-icount CASE` builds one seeded, fixed workload (setup: workload generation,
//! pre-fill, building the commands) and then runs the measured part inside one
//! `#[inline(never)]` function whose name starts with `icount_region_`. Run alone it only
//! checks that the case works; the count comes from running it under
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*icount_region_*' ferrox-icount CASE
//! ```
//!
//! which counts instructions only between entry and exit of that function (and what it calls),
//! so setup and checks are never counted. `benches/instructions-gate.sh` does that for every
//! case and compares the totals with `benches/baselines/instructions.json` (see its header).
//! `ferrox-icount list` prints the case names.
//!
//! The program prints `case=NAME ops=N` on success: the gate divides the counted total by N.
//! Nothing inside a region allocates, reads a clock or depends on addresses, so counts are
//! identical run to run for a given binary.
//!
//! Cases (all on the `small` preset: 1 instrument, ~1,000 resting orders over ~750 levels):
//!
//! - `mixed_small`: the measured phase of `generate(small, 20_000, seed 1)` on its pre-filled
//!   engine (exchange-core's mix: 9% new GTC, 3% IOC, 6% cancel, 82% move).
//! - `new_order_rest`: 1,000 passive GTC orders at random prices that rest (never cross).
//! - `cancel`: cancels of 500 distinct live orders.
//! - `replace_move`: 5,000 replaces of random live orders to a new price on their side.
//! - `ioc_sweep`: 100 IOC orders, sides alternating, each taking the 5 best opposite levels
//!   completely (its limit is the fifth level's price, its quantity their total).
//! - `protocol_decode`: `wire::decode_command` of the 20,000 `mixed_small` commands, encoded
//!   as 64-byte records in setup.

use std::hint::black_box;
use std::process::ExitCode;

use ferrox_benches::{generate, BookModel, LiveOrder, Rng, WorkloadConfig};
use ferrox_engine::Engine;
use ferrox_protocol::wire::{decode_command, encode_command, COMMAND_BYTES};
use ferrox_protocol::{
    AccountId, Cancel, ClientOrderId, Command, InstrumentId, NewOrder, NullSink, OrderId,
    PriceTicks, QtyLots, Replace, SequencedCommand, Side, TimeInForce,
};

const CASES: [&str; 6] = [
    "mixed_small",
    "new_order_rest",
    "cancel",
    "replace_move",
    "ioc_sweep",
    "protocol_decode",
];

const SEED: u64 = 1;
const MIXED_COMMANDS: usize = 20_000;

/// The counted region of the engine cases: apply every command, events dropped.
#[inline(never)]
fn icount_region_engine(engine: &mut Engine, cmds: &[SequencedCommand]) {
    for cmd in cmds {
        engine.apply(cmd, &mut NullSink);
    }
}

/// The counted region of `protocol_decode`: decode every record; the result folds the decoded
/// commands so that nothing can be optimised away.
#[inline(never)]
fn icount_region_decode(records: &[[u8; COMMAND_BYTES]]) -> u64 {
    let mut ok = 0u64;
    for record in records {
        if black_box(decode_command(record)).is_ok() {
            ok += 1;
        }
    }
    ok
}

/// A pre-filled small-preset engine with the model of its live orders, and the sequencing
/// and random state to build more commands.
struct Setup {
    config: WorkloadConfig,
    engine: Engine,
    model: BookModel,
    rng: Rng,
    seq: u64,
}

impl Setup {
    fn new() -> Setup {
        let config = WorkloadConfig::small();
        let w = generate(&config, 0, SEED);
        let (engine, model) = w.prefilled_with_model();
        Setup {
            seq: engine.last_seq(),
            config,
            engine,
            model,
            rng: Rng::new(SEED ^ 0x1C0_u64),
        }
    }

    fn sequenced(&mut self, command: Command) -> SequencedCommand {
        self.seq += 1;
        SequencedCommand {
            seq: self.seq,
            ts_ns: self.seq,
            command,
        }
    }

    fn passive(&mut self) -> SequencedCommand {
        let side = self.rng.side();
        let price = self.config.passive_price(&mut self.rng, side);
        let qty = self.config.random_qty(&mut self.rng);
        let account = self.config.random_account(&mut self.rng);
        let cmd = self.sequenced(Command::NewOrder(NewOrder::limit(
            InstrumentId(0),
            AccountId(account),
            ClientOrderId(self.seq + 1),
            side,
            PriceTicks(price),
            QtyLots(qty),
        )));
        self.model.insert(LiveOrder {
            id: cmd.seq,
            instrument: 0,
            account,
            side,
            price,
            open: qty,
            total: qty,
        });
        cmd
    }

    fn cancel(&mut self) -> SequencedCommand {
        let o = self
            .model
            .random_order(0, &mut self.rng)
            .expect("book not empty");
        self.model.remove(o.id);
        self.sequenced(Command::Cancel(Cancel {
            order_id: OrderId(o.id),
            account: AccountId(o.account),
            client_order_id: ClientOrderId(self.seq + 1),
        }))
    }

    fn replace(&mut self) -> SequencedCommand {
        let o = self
            .model
            .random_order(0, &mut self.rng)
            .expect("book not empty");
        let mut price = o.price;
        while price == o.price {
            price = self.config.passive_price(&mut self.rng, o.side);
        }
        // The engine moves the order to the back of its new level; so does the model.
        self.model.remove(o.id);
        self.model.insert(LiveOrder { price, ..o });
        self.sequenced(Command::Replace(Replace {
            order_id: OrderId(o.id),
            account: AccountId(o.account),
            client_order_id: ClientOrderId(self.seq + 1),
            price: PriceTicks(price),
            qty: QtyLots(o.total),
        }))
    }

    /// An IOC on `side` taking the `levels` best opposite levels completely.
    fn sweep(&mut self, side: Side, levels: usize) -> SequencedCommand {
        let top = self.model.top_levels(0, side.opposite(), levels);
        assert_eq!(top.len(), levels, "the book has {levels} levels to sweep");
        let qty: u64 = top
            .iter()
            .flat_map(|(_, os)| os.iter().map(|o| o.open))
            .sum();
        for (_, orders) in &top {
            for o in orders {
                self.model.remove(o.id);
            }
        }
        let mut o = NewOrder::limit(
            InstrumentId(0),
            // An account no resting order has: no self-trade prevention.
            AccountId(self.config.accounts + 1),
            ClientOrderId(self.seq + 1),
            side,
            PriceTicks(top[levels - 1].0),
            QtyLots(qty),
        );
        o.tif = TimeInForce::Ioc;
        self.sequenced(Command::NewOrder(o))
    }

    /// Runs the counted region on `cmds`, then checks that the engine agrees with the model
    /// (so every command did what the case says: no reject, no unexpected fill).
    fn run(mut self, cmds: &[SequencedCommand]) -> usize {
        icount_region_engine(&mut self.engine, cmds);
        assert_eq!(
            self.engine.orders_live() as usize,
            self.model.len(),
            "engine and model disagree on live orders"
        );
        assert_eq!(
            self.engine.levels_live() as usize,
            self.model.levels_total(),
            "engine and model disagree on levels"
        );
        cmds.len()
    }
}

fn mixed_workload() -> ferrox_benches::Workload {
    let w = generate(&WorkloadConfig::small(), MIXED_COMMANDS, SEED);
    assert_eq!(w.stats.rejects, 0, "the mixed workload has no rejects");
    w
}

/// Runs one case; returns its number of operations.
fn run_case(case: &str) -> Option<usize> {
    let ops = match case {
        "mixed_small" => {
            let w = mixed_workload();
            let mut engine = w.prefilled_engine();
            icount_region_engine(&mut engine, &w.measured);
            assert_eq!(engine.state_hash(), w.stats.state_hash_end);
            w.measured.len()
        }
        "new_order_rest" => {
            let mut s = Setup::new();
            let cmds: Vec<_> = (0..1_000).map(|_| s.passive()).collect();
            s.run(&cmds)
        }
        "cancel" => {
            let mut s = Setup::new();
            let cmds: Vec<_> = (0..500).map(|_| s.cancel()).collect();
            s.run(&cmds)
        }
        "replace_move" => {
            let mut s = Setup::new();
            let cmds: Vec<_> = (0..5_000).map(|_| s.replace()).collect();
            s.run(&cmds)
        }
        "ioc_sweep" => {
            let mut s = Setup::new();
            let cmds: Vec<_> = (0..100)
                .map(|i| s.sweep(if i % 2 == 0 { Side::Buy } else { Side::Sell }, 5))
                .collect();
            s.run(&cmds)
        }
        "protocol_decode" => {
            let w = mixed_workload();
            let records: Vec<[u8; COMMAND_BYTES]> = w
                .measured
                .iter()
                .map(|c| {
                    let mut record = [0u8; COMMAND_BYTES];
                    encode_command(&c.command, &mut record);
                    record
                })
                .collect();
            let ok = icount_region_decode(&records);
            assert_eq!(ok as usize, records.len(), "every record decodes");
            records.len()
        }
        _ => return None,
    };
    Some(ops)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd] if cmd == "list" => {
            for case in CASES {
                println!("{case}");
            }
            ExitCode::SUCCESS
        }
        [case] => match run_case(case) {
            Some(ops) => {
                println!("case={case} ops={ops}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("unknown case {case:?}; cases: {}", CASES.join(", "));
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!(
                "usage: ferrox-icount CASE | list   (cases: {})",
                CASES.join(", ")
            );
            ExitCode::from(2)
        }
    }
}
