//! Criterion benches of single engine operations on realistic books kept in steady state.
//!
//! Two topologies, built by the workload generator's pre-fill (see the library docs):
//!
//! - `book_1x1k`: 1 instrument, 1,000 resting orders over ~750 price levels;
//! - `books_1000x1k`: 1,000 instruments of that shape, 1,000,000 resting orders, the
//!   instrument of each operation drawn with the large preset's Pareto activity.
//!
//! Method: each bench times only the operation under test (with `NullSink`) and undoes its
//! effect on the book *outside* the timed region, so the book keeps its size and shape over
//! millions of iterations. Commands are built before the timer starts. Where possible the
//! timed region is a batch of `BATCH` operations (amortising the ~30 ns cost of reading the
//! clock to ~1 ns per operation); the sweep is timed one operation at a time, so its figure
//! includes one `Instant` pair (~30 ns on the reference machine).
//!
//! - `add_resting`: new passive GTC limit orders at random prices on random sides (a new level
//!   about two times in three). Restore: cancel as many random live orders of the same
//!   instruments.
//! - `cancel`: cancels of random live orders. Restore: as many new passive orders.
//! - `move_price`: replaces of random live orders to a new random price on their side, same
//!   quantity (the order leaves its level and joins the back of another). No restore needed.
//! - `match_one_order`: an IOC whose quantity equals the open quantity of the first order of
//!   the best opposite level, priced at that level: it fills exactly that one maker (sides
//!   alternate). Restore: an equal maker is added back at the same price.
//! - `sweep_10_levels`: an IOC that takes the ten best opposite levels completely. Restore:
//!   the swept orders are added back at their prices in their old time order.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ferrox_benches::{generate, BookModel, InstrumentPicker, LiveOrder, Rng, WorkloadConfig};
use ferrox_engine::Engine;
use ferrox_protocol::{
    AccountId, Cancel, ClientOrderId, Command, InstrumentId, NewOrder, NullSink, OrderId,
    PriceTicks, QtyLots, Replace, SequencedCommand, Side, TimeInForce,
};

const BATCH: u64 = 32;

struct Bench {
    config: WorkloadConfig,
    engine: Engine,
    model: BookModel,
    picker: InstrumentPicker,
    rng: Rng,
    seq: u64,
    taker_account: u32,
    taker_side: Side,
    cmds: Vec<SequencedCommand>,
}

impl Bench {
    fn new(config: WorkloadConfig, seed: u64) -> Bench {
        let w = generate(&config, 0, seed);
        let (engine, model) = w.prefilled_with_model();
        let mut rng = Rng::new(seed ^ 0x5EED);
        let picker = InstrumentPicker::new(config.instruments, config.activity, &mut rng);
        Bench {
            seq: engine.last_seq(),
            taker_account: config.accounts + 1,
            config,
            engine,
            model,
            picker,
            rng,
            taker_side: Side::Buy,
            cmds: Vec::with_capacity(BATCH as usize),
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

    /// Times the prepared batch.
    fn run_batch(&mut self) -> Duration {
        let t = Instant::now();
        for cmd in &self.cmds {
            self.engine.apply(cmd, &mut NullSink);
        }
        let d = t.elapsed();
        black_box(&self.engine);
        d
    }

    /// A new passive order command, recorded in the model (it will rest: it never crosses).
    fn passive(
        &mut self,
        instrument: u32,
        side: Side,
        price: i64,
        qty: u64,
        account: u32,
    ) -> SequencedCommand {
        let cmd = self.sequenced(Command::NewOrder(NewOrder::limit(
            InstrumentId(instrument),
            AccountId(account),
            ClientOrderId(self.seq + 1),
            side,
            PriceTicks(price),
            QtyLots(qty),
        )));
        self.model.insert(LiveOrder {
            id: cmd.seq,
            instrument,
            account,
            side,
            price,
            open: qty,
            total: qty,
        });
        cmd
    }

    fn random_passive(&mut self, instrument: u32) -> SequencedCommand {
        let side = self.rng.side();
        let price = self.config.passive_price(&mut self.rng, side);
        let qty = self.config.random_qty(&mut self.rng);
        let account = self.config.random_account(&mut self.rng);
        self.passive(instrument, side, price, qty, account)
    }

    /// A cancel of a random live order of `instrument`, removed from the model.
    fn random_cancel(&mut self, instrument: u32) -> SequencedCommand {
        let o = self
            .model
            .random_order(instrument, &mut self.rng)
            .expect("book not empty");
        self.model.remove(o.id);
        self.sequenced(Command::Cancel(Cancel {
            order_id: OrderId(o.id),
            account: AccountId(o.account),
            client_order_id: ClientOrderId(self.seq + 1),
        }))
    }

    fn add(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        let mut instruments = Vec::with_capacity(BATCH as usize);
        while left > 0 {
            let n = left.min(BATCH);
            self.cmds.clear();
            instruments.clear();
            for _ in 0..n {
                let i = self.picker.pick(&mut self.rng);
                instruments.push(i);
                let cmd = self.random_passive(i);
                self.cmds.push(cmd);
            }
            total += self.run_batch();
            for &i in &instruments {
                let cmd = self.random_cancel(i);
                self.engine.apply(&cmd, &mut NullSink);
            }
            left -= n;
        }
        total
    }

    fn cancel(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        let mut instruments = Vec::with_capacity(BATCH as usize);
        while left > 0 {
            let n = left.min(BATCH);
            self.cmds.clear();
            instruments.clear();
            for _ in 0..n {
                let i = self.picker.pick(&mut self.rng);
                instruments.push(i);
                let cmd = self.random_cancel(i);
                self.cmds.push(cmd);
            }
            total += self.run_batch();
            for &i in &instruments {
                let cmd = self.random_passive(i);
                self.engine.apply(&cmd, &mut NullSink);
            }
            left -= n;
        }
        total
    }

    fn move_price(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(BATCH);
            self.cmds.clear();
            for _ in 0..n {
                let i = self.picker.pick(&mut self.rng);
                let o = self
                    .model
                    .random_order(i, &mut self.rng)
                    .expect("book not empty");
                let mut price = o.price;
                while price == o.price {
                    price = self.config.passive_price(&mut self.rng, o.side);
                }
                // The engine moves the order to the back of its new level; so does the model.
                self.model.remove(o.id);
                self.model.insert(LiveOrder { price, ..o });
                let cmd = self.sequenced(Command::Replace(Replace {
                    order_id: OrderId(o.id),
                    account: AccountId(o.account),
                    client_order_id: ClientOrderId(self.seq + 1),
                    price: PriceTicks(price),
                    qty: QtyLots(o.total),
                }));
                self.cmds.push(cmd);
            }
            total += self.run_batch();
            left -= n;
        }
        total
    }

    fn next_taker_side(&mut self) -> Side {
        self.taker_side = self.taker_side.opposite();
        self.taker_side
    }

    fn ioc(&mut self, instrument: u32, side: Side, price: i64, qty: u64) -> SequencedCommand {
        let mut o = NewOrder::limit(
            InstrumentId(instrument),
            AccountId(self.taker_account),
            ClientOrderId(self.seq + 1),
            side,
            PriceTicks(price),
            QtyLots(qty),
        );
        o.tif = TimeInForce::Ioc;
        self.sequenced(Command::NewOrder(o))
    }

    fn match_one(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        let mut taken = Vec::with_capacity(BATCH as usize);
        while left > 0 {
            let n = left.min(BATCH);
            self.cmds.clear();
            taken.clear();
            for _ in 0..n {
                let i = self.picker.pick(&mut self.rng);
                let side = self.next_taker_side();
                let (price, orders) = self
                    .model
                    .top_levels(i, side.opposite(), 1)
                    .pop()
                    .expect("book side not empty");
                let maker = orders[0];
                self.model.remove(maker.id);
                taken.push(maker);
                let cmd = self.ioc(i, side, price, maker.open);
                self.cmds.push(cmd);
            }
            total += self.run_batch();
            for m in &taken {
                let cmd = self.passive(m.instrument, m.side, m.price, m.open, m.account);
                self.engine.apply(&cmd, &mut NullSink);
            }
            left -= n;
        }
        total
    }

    fn sweep(&mut self, iters: u64, levels: usize) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let i = self.picker.pick(&mut self.rng);
            let side = self.next_taker_side();
            let top = self.model.top_levels(i, side.opposite(), levels);
            assert_eq!(top.len(), levels, "the book has {levels} levels to sweep");
            let qty: u64 = top
                .iter()
                .flat_map(|(_, os)| os.iter().map(|o| o.open))
                .sum();
            let limit = top[levels - 1].0;
            for (_, orders) in &top {
                for o in orders {
                    self.model.remove(o.id);
                }
            }
            let cmd = self.ioc(i, side, limit, qty);
            let t = Instant::now();
            self.engine.apply(&cmd, &mut NullSink);
            total += t.elapsed();
            black_box(&self.engine);
            for (_, orders) in &top {
                for o in orders {
                    let cmd = self.passive(o.instrument, o.side, o.price, o.open, o.account);
                    self.engine.apply(&cmd, &mut NullSink);
                }
            }
        }
        total
    }

    /// The engine and the model agree on the book size (checked after each bench).
    fn check(&self, what: &str) {
        assert_eq!(
            self.engine.orders_live() as usize,
            self.model.len(),
            "{what}: engine and model disagree"
        );
        assert_eq!(
            self.engine.levels_live() as usize,
            self.model.levels_total(),
            "{what}"
        );
    }
}

fn topology(c: &mut Criterion, group: &str, config: WorkloadConfig) {
    let mut b = Bench::new(config, 42);
    let mut g = c.benchmark_group(group);
    g.bench_function("add_resting", |bencher| bencher.iter_custom(|n| b.add(n)));
    b.check("add_resting");
    g.bench_function("cancel", |bencher| bencher.iter_custom(|n| b.cancel(n)));
    b.check("cancel");
    g.bench_function("move_price", |bencher| {
        bencher.iter_custom(|n| b.move_price(n))
    });
    b.check("move_price");
    g.bench_function("match_one_order", |bencher| {
        bencher.iter_custom(|n| b.match_one(n))
    });
    b.check("match_one_order");
    g.bench_function("sweep_10_levels", |bencher| {
        bencher.iter_custom(|n| b.sweep(n, 10))
    });
    b.check("sweep_10_levels");
    g.finish();
    println!(
        "{group}: book after the benches: {} orders on {} levels",
        b.engine.orders_live(),
        b.engine.levels_live()
    );
}

fn small(c: &mut Criterion) {
    topology(c, "book_1x1k", WorkloadConfig::small());
}

fn large(c: &mut Criterion) {
    let mut config = WorkloadConfig::large();
    // `cargo test --benches` runs each bench once to check it works (no `--bench` argument):
    // a smaller book set keeps that quick in debug builds. Real runs use the full topology.
    if !std::env::args().any(|a| a == "--bench") {
        config.instruments = 50;
        println!("test mode: books_1000x1k runs with 50 instruments");
    }
    topology(c, "books_1000x1k", config);
}

criterion_group!(benches, small, large);
criterion_main!(benches);
