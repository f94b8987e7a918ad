//! `ferrox-peers`: the Ferrox engine side by side with published Rust order books (issue #7,
//! first part).
//!
//! `ferrox-peers --workload SPEC --commands N --seed S [--runs R] [--json FILE] [--report DIR]`
//! builds one workload with `ferrox_benches::workload_by_name` (default `small`: one
//! instrument, about 1,000 resting orders over about 750 levels, fill-aware cancels and
//! replaces, IOC orders that sweep; also medium, large, wide, avalanche, lobster[:PATH],
//! file:PATH with `--config`), then:
//!
//! 1. runs the pre-fill and the measured commands through `ferrox_engine::Engine` and through
//!    each peer (`lobster`, `orderbook-rs`), and cross-checks them: the same number of trades,
//!    the same traded volume, and the same final full L2 book (every price level and its total
//!    resting quantity, both sides). If anything differs, the mismatch is printed and no timing
//!    is reported (exit status 1);
//! 2. times each engine closed loop on a fresh pre-filled instance: every measured command on
//!    its own (`Instant` before and after, into an HdrHistogram: p50 ... p99.99, max), and
//!    throughput as the whole measured stream back to back (best of `--runs`);
//! 3. prints the ratios Ferrox / peer (latency: peer time over Ferrox time, so > 1 means
//!    Ferrox is faster; throughput: Ferrox rate over peer rate).
//!
//! # How the workload is translated, and why the cross-check is honest
//!
//! - **Instruments.** Both peers are single-book libraries: a multi-instrument workload gets
//!   one peer book per instrument (a `Vec` indexed by instrument), the instrument of each
//!   cancel and replace being that of the order it names. Ferrox runs it through its one
//!   multi-instrument engine. The final L2 is compared book by book.
//! - **Self-trade prevention.** The generator's orders carry Ferrox's default STP mode; every
//!   `NewOrder` is rewritten to `StpMode::Off` before anything runs (pre-fill included), so no
//!   order is cancelled for self-trade. `lobster` has no STP at all; `orderbook-rs` defaults to
//!   `STPMode::None` and is left so. Accounts are otherwise ignored by the peers.
//! - **Ids.** Ferrox assigns each accepted order the sequence number of its `NewOrder` command
//!   as its `OrderId`; the peers are given that same number as their order id
//!   (`u128` for `lobster`, `Id::Sequential` for `orderbook-rs`), so cancels and replaces
//!   address the same orders.
//! - **Price-time priority.** All three match at the resting order's price, best price first,
//!   FIFO within a level; the final L2 comparison checks the outcome.
//! - **IOC.** The generator's IOC orders are limits at the far edge of the price range
//!   (`WorkloadConfig::aggressive_price`), beyond every resting price. `orderbook-rs` takes
//!   them as limit orders with `TimeInForce::Ioc`. `lobster` has no IOC, only market orders
//!   (fill what is there, cancel the rest) and GTC limits; since no resting order can lie beyond
//!   the IOC limit in this workload, a market order of the same quantity is equivalent and is
//!   what `lobster` is given. That holds for the generated workloads (small ... wide,
//!   avalanche). For recorded workloads (LOBSTER, command files) an IOC's limit can lie inside
//!   the book, so `lobster` gets a limit order and, if any of it rests, a cancel of the rest:
//!   IOC semantics, built from what the library offers.
//! - **Replace.** Ferrox replaces in place: `qty` is the new *total* (FIX), new open =
//!   `qty - filled`; any price change loses priority. The generator's replaces always change
//!   the price (and keep the total), so a replace is equivalent to cancel + new limit with the
//!   remaining open quantity at the new price, under the same id. Both peers are given exactly
//!   that (`lobster` has no modify; `orderbook-rs` has `update_order`, but cancel + new keeps
//!   the two translations identical and avoids depending on its quantity semantics).
//! - **Priority-keeping replaces.** Ferrox keeps an order's time priority when a replace only
//!   lowers its quantity at the same price (LOBSTER partial cancels are imported that way).
//!   `lobster` has no modify, and `orderbook-rs` 0.15's priority-keeping `UpdateQuantity` is not
//!   reachable without depending on its `pricelevel` crate, so both peers get the same
//!   cancel + re-add, which sends the order to the back of its level. Later executions can then
//!   fill different orders; the cross-check decides whether the results still agree. If they
//!   do not, that peer is refused for this workload (its timings are withheld, the reason
//!   printed) and the others are still timed.
//! - **Not expressible.** Post-only orders, market orders, GTD/FOK/day orders, mass cancels,
//!   halts and other commands have no translation here: the workload is refused with the
//!   command named. Self-trade prevention is rewritten to off for all three engines.
//! - **Orders no longer live.** With STP off, some cancels and replaces the generator made
//!   (for orders it saw live under STP) target orders already filled; Ferrox rejects them. A
//!   peer adapter keeps what a caller of the peer must keep to translate a replace: for each
//!   live order, its side, total and open quantity, maintained from the fills the peer itself
//!   reports. A replace of an order the adapter does not hold is dropped (as Ferrox rejects
//!   it); a cancel is always passed to the peer (a no-op there for unknown ids). This
//!   bookkeeping (a hash map update per fill and per order) is inside the peers' timed region:
//!   it is the work a caller of the peer must do to get Ferrox's replace and fill reporting.
//! - **Events.** Ferrox writes its events into a sink that counts trades and volume; the peers
//!   return their own result values (`OrderEvent` with a `Vec` of fills, `TradeResult`), which
//!   the adapter reads for the same counts. Each engine does its native reporting work.
//!
//! Nothing is generated or allocated by the harness inside a timed region, except what the
//! engines and peer adapters do themselves.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ferrox_benches::report::{self, BenchResult, ReportWriter};
use ferrox_benches::{parse_spec, BookModel, Workload, WorkloadSpec};
use ferrox_engine::{Engine, EngineConfig};
use ferrox_protocol::{
    Command, Event, EventSink, InstrumentId, OrderType, SequencedCommand, Side, StpMode,
    TimeInForce, VecSink,
};
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(about = "Ferrox side by side with lobster and orderbook-rs, cross-checked")]
struct Args {
    /// small | medium | large | wide | avalanche | lobster[:MESSAGES_CSV] | file:PATH
    #[arg(long, default_value = "small")]
    workload: String,
    /// Engine configuration (TOML: [limits] and [[instruments]]) of a file:PATH workload.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write a report (JSON + HdrHistogram logs) into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Measured commands (after the pre-fill; a cap for recorded workloads).
    #[arg(long, default_value_t = 1_000_000)]
    commands: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Throughput runs per engine, each on a fresh pre-filled instance; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Passes over the measured commands per run and in the latency run, each on a fresh
    /// pre-filled book (pre-fill not timed). Default: 1, or for a short workload (the LOBSTER
    /// sample has under 1,000 commands) enough passes for 100,000 timed commands.
    #[arg(long)]
    passes: Option<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Pin the benchmark thread to this core (default: the last core).
    #[arg(long)]
    core: Option<usize>,
    /// Do not pin the thread.
    #[arg(long)]
    no_pin: bool,
}

// ----- the translated workload ----------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Limit {
        inst: u32,
        id: u64,
        side: Side,
        price: u64,
        qty: u64,
    },
    /// `market_ok`: the limit lies beyond every resting price, so a market order of the same
    /// quantity does the same (generated workloads).
    Ioc {
        inst: u32,
        id: u64,
        side: Side,
        price: u64,
        qty: u64,
        market_ok: bool,
    },
    Cancel {
        inst: u32,
        id: u64,
    },
    /// `total` is the new total quantity (filled part included), as in Ferrox.
    Replace {
        inst: u32,
        id: u64,
        price: u64,
        total: u64,
    },
    /// A cancel or replace of an order no command created: Ferrox rejects it, the peers
    /// are not asked.
    Nothing,
}

fn price_u64(p: i64) -> u64 {
    u64::try_from(p).expect("workload prices are positive")
}

/// What translation found worth saying.
#[derive(Default)]
struct Translation {
    ops: Vec<Op>,
    /// Replaces at the order's current price that lower its quantity: Ferrox keeps priority,
    /// the peers' cancel + re-add does not.
    same_price_reduces: u64,
    /// Orders whose STP mode was not already off.
    stp_rewritten: u64,
}

/// Rewrites STP to off and translates each command for the peers.
fn translate(cmds: &mut [SequencedCommand], market_ok: bool) -> Result<Translation, String> {
    let mut t = Translation {
        ops: Vec::with_capacity(cmds.len()),
        ..Translation::default()
    };
    // Order id -> (instrument, price, total) as the commands left it.
    let mut orders: HashMap<u64, (u32, i64, u64)> = HashMap::with_capacity(cmds.len());
    for c in cmds.iter_mut() {
        let seq = c.seq;
        let op = match &mut c.command {
            Command::NewOrder(o) => {
                if o.stp_mode != StpMode::Off {
                    t.stp_rewritten += 1;
                }
                o.stp_mode = StpMode::Off;
                if o.post_only {
                    return Err(format!(
                        "command {seq}: a post-only order (no peer has post-only)"
                    ));
                }
                if o.order_type != OrderType::Limit {
                    return Err(format!(
                        "command {seq}: a {:?} order (only limit orders are translated)",
                        o.order_type
                    ));
                }
                let inst = o.instrument.0;
                let (id, side, price, qty) = (seq, o.side, price_u64(o.price.0), o.qty.0);
                orders.insert(id, (inst, o.price.0, qty));
                match o.tif {
                    TimeInForce::Ioc => Op::Ioc {
                        inst,
                        id,
                        side,
                        price,
                        qty,
                        market_ok,
                    },
                    TimeInForce::Gtc => Op::Limit {
                        inst,
                        id,
                        side,
                        price,
                        qty,
                    },
                    other => {
                        return Err(format!(
                        "command {seq}: time in force {other:?} (only GTC and IOC are translated)"
                    ))
                    }
                }
            }
            Command::Cancel(x) => match orders.get(&x.order_id.0) {
                Some(&(inst, _, _)) => Op::Cancel {
                    inst,
                    id: x.order_id.0,
                },
                None => Op::Nothing,
            },
            Command::Replace(x) => match orders.get_mut(&x.order_id.0) {
                Some(o) => {
                    if x.price.0 == o.1 && x.qty.0 < o.2 {
                        t.same_price_reduces += 1;
                    }
                    o.1 = x.price.0;
                    o.2 = x.qty.0;
                    Op::Replace {
                        inst: o.0,
                        id: x.order_id.0,
                        price: price_u64(x.price.0),
                        total: x.qty.0,
                    }
                }
                None => Op::Nothing,
            },
            other => {
                return Err(format!(
                    "command {seq}: {other:?} has no translation for the peers"
                ))
            }
        };
        t.ops.push(op);
    }
    Ok(t)
}

// ----- results common to every engine ---------------------------------------------------------

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Counts {
    trades: u64,
    volume: u64,
}

/// Full L2: bids best (highest) first, asks best (lowest) first; (price, total resting qty).
#[derive(Default, Debug, PartialEq, Eq)]
struct L2 {
    bids: Vec<(u64, u64)>,
    asks: Vec<(u64, u64)>,
}

/// One engine under test: the same operations as Ferrox's commands, in its own terms.
trait Book {
    fn apply(&mut self, i: usize, c: &mut Counts);
    /// The final L2 of every instrument's book.
    fn l2(&self) -> Vec<L2>;
    /// Operations the engine refused with an error (not counting Ferrox's business rejects).
    fn errors(&self) -> u64 {
        0
    }
}

// ----- Ferrox --------------------------------------------------------------------------------

struct CountSink<'a>(&'a mut Counts);

impl EventSink for CountSink<'_> {
    #[inline]
    fn event(&mut self, e: &Event) {
        if let Event::Trade(t) = e {
            self.0.trades += 1;
            self.0.volume += t.qty.0;
        }
    }
}

struct FerroxBook<'w> {
    engine: Engine,
    cmds: &'w [SequencedCommand],
}

impl Book for FerroxBook<'_> {
    #[inline]
    fn apply(&mut self, i: usize, c: &mut Counts) {
        self.engine.apply(&self.cmds[i], &mut CountSink(c));
    }
    fn l2(&self) -> Vec<L2> {
        unreachable!("Ferrox's L2 is taken from its events by `ferrox_reference`")
    }
}

/// Runs everything through Ferrox with its events fed into the generator's book model, for
/// the counts and the full L2 (checked against the engine's own best bid/ask).
fn ferrox_reference(
    config: &EngineConfig,
    prefill: &[SequencedCommand],
    measured: &[SequencedCommand],
) -> (Counts, Vec<L2>) {
    let mut engine = Engine::new(config.clone()).expect("workload configurations are valid");
    let instruments = config.instruments.len() as u32;
    let mut model = BookModel::new(instruments);
    let mut sink = VecSink::default();
    let mut counts = Counts::default();
    for (k, cmd) in prefill.iter().chain(measured).enumerate() {
        engine.apply(cmd, &mut sink);
        for ev in sink.events.drain(..) {
            if k >= prefill.len() {
                if let Event::Trade(t) = &ev {
                    counts.trades += 1;
                    counts.volume += t.qty.0;
                }
            }
            model.on_event(&ev);
        }
    }
    let level = |inst, side| {
        model
            .top_levels(inst, side, usize::MAX)
            .into_iter()
            .map(|(p, orders)| (price_u64(p), orders.iter().map(|o| o.open).sum::<u64>()))
            .collect::<Vec<_>>()
    };
    let best = |x: Option<(ferrox_protocol::PriceTicks, ferrox_protocol::QtyLots)>| {
        x.map(|(p, q)| (price_u64(p.0), q.0))
    };
    let books = (0..instruments)
        .map(|inst| {
            let l2 = L2 {
                bids: level(inst, Side::Buy),
                asks: level(inst, Side::Sell),
            };
            assert_eq!(
                best(engine.best_bid(InstrumentId(inst))),
                l2.bids.first().copied(),
                "model and engine disagree on the best bid of instrument {inst}"
            );
            assert_eq!(
                best(engine.best_ask(InstrumentId(inst))),
                l2.asks.first().copied(),
                "model and engine disagree on the best ask of instrument {inst}"
            );
            l2
        })
        .collect();
    (counts, books)
}

// ----- the adapters' shared bookkeeping -------------------------------------------------------

#[derive(Clone, Copy)]
struct Live {
    side: Side,
    total: u64,
    open: u64,
}

#[derive(Default)]
struct LiveOrders(HashMap<u64, Live>);

impl LiveOrders {
    fn with_capacity(n: usize) -> LiveOrders {
        LiveOrders(HashMap::with_capacity(n))
    }

    #[inline]
    fn maker_fill(&mut self, id: u64, qty: u64) {
        if let Some(o) = self.0.get_mut(&id) {
            o.open -= qty;
            if o.open == 0 {
                self.0.remove(&id);
            }
        }
    }

    #[inline]
    fn rested(&mut self, id: u64, side: Side, total: u64, open: u64) {
        if open > 0 {
            self.0.insert(id, Live { side, total, open });
        }
    }
}

// ----- lobster -------------------------------------------------------------------------------

/// Sizes of the peers' books, from the workload.
#[derive(Clone, Copy)]
struct Sizing {
    instruments: usize,
    /// Orders a book is expected to hold (arena sizes).
    orders_per_book: usize,
    /// Live orders in all books.
    orders_total: usize,
}

struct LobsterBook<'w> {
    books: Vec<lobster::OrderBook>,
    live: LiveOrders,
    ops: &'w [Op],
}

fn lob_side(s: Side) -> lobster::Side {
    match s {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    }
}

impl LobsterBook<'_> {
    fn new(ops: &[Op], z: Sizing) -> LobsterBook<'_> {
        // One book: as before (arena 4,096, 64 orders preallocated per level). Many books:
        // arenas sized for the book and 16 per level, or the preallocation alone would take
        // gigabytes for 10,000 books (both grow when needed).
        let (arena, queue) = if z.instruments == 1 {
            (z.orders_per_book.max(4_096), 64)
        } else {
            (z.orders_per_book.max(64), 16)
        };
        LobsterBook {
            books: (0..z.instruments)
                .map(|_| lobster::OrderBook::new(arena, queue, false))
                .collect(),
            live: LiveOrders::with_capacity(z.orders_total.max(4_096)),
            ops,
        }
    }

    /// Processes the peer's answer; returns the taker's filled quantity.
    #[inline]
    fn fills(&mut self, ev: lobster::OrderEvent, c: &mut Counts) -> u64 {
        match ev {
            lobster::OrderEvent::PartiallyFilled {
                filled_qty, fills, ..
            }
            | lobster::OrderEvent::Filled {
                filled_qty, fills, ..
            } => {
                for f in &fills {
                    c.trades += 1;
                    c.volume += f.qty;
                    self.live.maker_fill(f.order_2 as u64, f.qty);
                }
                filled_qty
            }
            _ => 0,
        }
    }

    /// A limit order; returns its filled quantity.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn limit(
        &mut self,
        inst: u32,
        id: u64,
        side: Side,
        price: u64,
        qty: u64,
        total: u64,
        c: &mut Counts,
    ) -> u64 {
        let ev = self.books[inst as usize].execute(lobster::OrderType::Limit {
            id: u128::from(id),
            side: lob_side(side),
            qty,
            price,
        });
        let filled = self.fills(ev, c);
        self.live.rested(id, side, total, qty - filled);
        filled
    }
}

impl Book for LobsterBook<'_> {
    #[inline]
    fn apply(&mut self, i: usize, c: &mut Counts) {
        match self.ops[i] {
            Op::Limit {
                inst,
                id,
                side,
                price,
                qty,
            } => {
                self.limit(inst, id, side, price, qty, qty, c);
            }
            Op::Ioc {
                inst,
                id,
                side,
                price,
                qty,
                market_ok,
            } => {
                if market_ok {
                    let ev = self.books[inst as usize].execute(lobster::OrderType::Market {
                        id: u128::from(id),
                        side: lob_side(side),
                        qty,
                    });
                    self.fills(ev, c);
                } else {
                    // IOC from what lobster has: a limit order, then a cancel of what rested.
                    let filled = self.limit(inst, id, side, price, qty, qty, c);
                    if filled < qty {
                        self.books[inst as usize]
                            .execute(lobster::OrderType::Cancel { id: u128::from(id) });
                        self.live.0.remove(&id);
                    }
                }
            }
            Op::Cancel { inst, id } => {
                self.books[inst as usize]
                    .execute(lobster::OrderType::Cancel { id: u128::from(id) });
                self.live.0.remove(&id);
            }
            Op::Replace {
                inst,
                id,
                price,
                total,
            } => {
                if let Some(o) = self.live.0.remove(&id) {
                    self.books[inst as usize]
                        .execute(lobster::OrderType::Cancel { id: u128::from(id) });
                    let open = total.saturating_sub(o.total - o.open);
                    if open > 0 {
                        self.limit(inst, id, o.side, price, open, total, c);
                    }
                }
            }
            Op::Nothing => {}
        }
    }

    fn l2(&self) -> Vec<L2> {
        // `depth` preallocates `levels` entries per side and returns every level whatever the
        // argument.
        self.books
            .iter()
            .map(|b| {
                let d = b.depth(64);
                L2 {
                    bids: d.bids.iter().rev().map(|l| (l.price, l.qty)).collect(),
                    asks: d.asks.iter().map(|l| (l.price, l.qty)).collect(),
                }
            })
            .collect()
    }
}

// ----- orderbook-rs --------------------------------------------------------------------------

struct ObrsBook<'w> {
    books: Vec<orderbook_rs::OrderBook<()>>,
    live: LiveOrders,
    ops: &'w [Op],
    errors: u64,
}

fn obrs_side(s: Side) -> orderbook_rs::Side {
    match s {
        Side::Buy => orderbook_rs::Side::Buy,
        Side::Sell => orderbook_rs::Side::Sell,
    }
}

impl ObrsBook<'_> {
    fn new(ops: &[Op], z: Sizing) -> ObrsBook<'_> {
        ObrsBook {
            books: (0..z.instruments)
                .map(|i| orderbook_rs::OrderBook::new(&format!("SYM{i:05}")))
                .collect(),
            live: LiveOrders::with_capacity(z.orders_total.max(4_096)),
            ops,
            errors: 0,
        }
    }

    /// Submits a limit order; returns the quantity left unfilled.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        inst: u32,
        id: u64,
        side: Side,
        price: u64,
        qty: u64,
        tif: orderbook_rs::TimeInForce,
        c: &mut Counts,
    ) -> u64 {
        match self.books[inst as usize].add_limit_order_with_result(
            orderbook_rs::Id::sequential(id),
            u128::from(price),
            qty,
            obrs_side(side),
            tif,
            None,
        ) {
            Ok((_, Some(tr))) => {
                for t in tr.match_result.trades().as_vec() {
                    let q = t.quantity().as_u64();
                    c.trades += 1;
                    c.volume += q;
                    if let Some(maker) = t.maker_order_id().as_u64() {
                        self.live.maker_fill(maker, q);
                    }
                }
                tr.match_result.remaining_quantity().as_u64()
            }
            Ok((_, None)) => qty,
            Err(_) => {
                self.errors += 1;
                0
            }
        }
    }
}

impl Book for ObrsBook<'_> {
    #[inline]
    fn apply(&mut self, i: usize, c: &mut Counts) {
        match self.ops[i] {
            Op::Limit {
                inst,
                id,
                side,
                price,
                qty,
            } => {
                let open = self.submit(
                    inst,
                    id,
                    side,
                    price,
                    qty,
                    orderbook_rs::TimeInForce::Gtc,
                    c,
                );
                self.live.rested(id, side, qty, open);
            }
            Op::Ioc {
                inst,
                id,
                side,
                price,
                qty,
                ..
            } => {
                self.submit(
                    inst,
                    id,
                    side,
                    price,
                    qty,
                    orderbook_rs::TimeInForce::Ioc,
                    c,
                );
            }
            Op::Cancel { inst, id } => {
                if self.books[inst as usize]
                    .cancel_order(orderbook_rs::Id::sequential(id))
                    .is_err()
                {
                    self.errors += 1;
                }
                self.live.0.remove(&id);
            }
            Op::Replace {
                inst,
                id,
                price,
                total,
            } => {
                if let Some(o) = self.live.0.remove(&id) {
                    if self.books[inst as usize]
                        .cancel_order(orderbook_rs::Id::sequential(id))
                        .is_err()
                    {
                        self.errors += 1;
                    }
                    let open = total.saturating_sub(o.total - o.open);
                    if open > 0 {
                        let left = self.submit(
                            inst,
                            id,
                            o.side,
                            price,
                            open,
                            orderbook_rs::TimeInForce::Gtc,
                            c,
                        );
                        self.live.rested(id, o.side, total, left);
                    }
                }
            }
            Op::Nothing => {}
        }
    }

    fn l2(&self) -> Vec<L2> {
        self.books
            .iter()
            .map(|b| {
                let side = |s| {
                    b.levels_with_cumulative_depth(s)
                        .map(|l| {
                            let l = l.expect("orderbook-rs level iteration");
                            (u64::try_from(l.price).expect("price fits u64"), l.quantity)
                        })
                        .collect::<Vec<_>>()
                };
                L2 {
                    bids: side(orderbook_rs::Side::Buy),
                    asks: side(orderbook_rs::Side::Sell),
                }
            })
            .collect()
    }

    fn errors(&self) -> u64 {
        self.errors
    }
}

// ----- timing --------------------------------------------------------------------------------

struct Timing {
    name: &'static str,
    hist: Histogram<u64>,
    /// Best throughput over the runs, commands per second.
    throughput: f64,
    runs: Vec<f64>,
}

const PCTS: [(&str, f64); 5] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

/// Times `make()`'s book over indices `first..end` (the measured part), `make()` being
/// called fresh (and pre-filled over `0..first`) for the latency run and each throughput run.
fn time_engine<'a, B: Book + 'a>(
    name: &'static str,
    mut make: impl FnMut() -> B,
    first: usize,
    end: usize,
    runs: usize,
    passes: usize,
) -> Timing {
    let prefilled = |make: &mut dyn FnMut() -> B| {
        let mut b = make();
        let mut c = Counts::default();
        for i in 0..first {
            b.apply(i, &mut c);
        }
        b
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    for _ in 0..passes {
        let mut b = prefilled(&mut make);
        let mut c = Counts::default();
        for i in first..end {
            let t0 = Instant::now();
            b.apply(i, &mut c);
            let dt = t0.elapsed().as_nanos() as u64;
            hist.record(dt.max(1)).expect("in range");
        }
        black_box(c);
    }
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut secs = 0.0;
        for _ in 0..passes {
            let mut b = prefilled(&mut make);
            let mut c = Counts::default();
            let t0 = Instant::now();
            for i in first..end {
                b.apply(black_box(i), &mut c);
            }
            secs += t0.elapsed().as_secs_f64();
            black_box(c);
        }
        rates.push(((end - first) * passes) as f64 / secs);
    }
    let throughput = rates.iter().copied().fold(0.0, f64::max);
    Timing {
        name,
        hist,
        throughput,
        runs: rates,
    }
}

/// The cost of the timer itself: the minimum and median of back-to-back `Instant` pairs.
fn timer_overhead() -> (u64, u64) {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let t0 = Instant::now();
            black_box(t0.elapsed().as_nanos() as u64)
        })
        .collect();
    v.sort_unstable();
    (v[0], v[v.len() / 2])
}

fn first_diff(a: &[(u64, u64)], b: &[(u64, u64)]) -> String {
    let i = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    format!(
        "{} vs {} levels; first difference at level {i}: {:?} vs {:?}",
        a.len(),
        b.len(),
        a.get(i),
        b.get(i)
    )
}

fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cmdline = std::env::args().collect::<Vec<_>>().join(" ");
    // Before pinning: the pinned thread's available parallelism is one.
    let report_machine = report::Machine::detect();
    let machine = format!(
        "{}, {} logical CPUs",
        report_machine.cpu_model, report_machine.logical_cpus
    );
    let mut pinned = None;
    if !args.no_pin {
        if let Some(ids) = core_affinity::get_core_ids() {
            let want = args.core.unwrap_or(ids.len().saturating_sub(1));
            if let Some(id) = ids.into_iter().find(|c| c.id == want) {
                if core_affinity::set_for_current(id) {
                    pinned = Some(want);
                }
            }
        }
    }

    let spec = match parse_spec(&args.workload) {
        Ok(WorkloadSpec::File { path, .. }) => WorkloadSpec::File {
            path,
            config: args.config.clone(),
        },
        Ok(_) if args.config.is_some() => {
            eprintln!("--config applies to file:PATH workloads only");
            return ExitCode::FAILURE;
        }
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let t_gen = Instant::now();
    let w: Workload = match spec.build(args.commands, args.seed) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot build the workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gen_time = t_gen.elapsed();
    let mut cmds: Vec<SequencedCommand> = w.prefill.iter().chain(&w.measured).copied().collect();
    // Generated workloads price IOCs beyond every resting order; recorded ones may not.
    let translation = match translate(&mut cmds, spec.is_generated()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "refused: workload {} is not expressible for the peers: {e}",
                w.name
            );
            return ExitCode::FAILURE;
        }
    };
    let ops = &translation.ops;
    let first = w.prefill.len();
    let end = cmds.len();
    let instruments = w.instruments() as usize;
    let sizing = Sizing {
        instruments,
        orders_per_book: (w.stats.orders_max.max(w.stats.orders_after_prefill) as usize
            / instruments.max(1))
        .next_power_of_two(),
        orders_total: w.stats.orders_max.max(w.stats.orders_after_prefill) as usize,
    };
    println!(
        "workload: {} ({} instruments), seed {}, {} pre-fill + {} measured commands ({:?} to build)",
        w.name,
        instruments,
        args.seed,
        first,
        end - first,
        gen_time
    );
    if w.stats.sweeps > 0 {
        println!(
            "sweeps: {} IOCs, levels swept per IOC mean {:.1} max {}, trades per IOC {:.1}",
            w.stats.sweeps,
            w.stats.levels_per_sweep(),
            w.stats.levels_swept_max,
            w.stats.trades_per_sweep()
        );
    }
    println!(
        "translation: STP rewritten to off on {} orders; {} priority-keeping replaces (same \
         price, lower quantity) given to the peers as cancel + re-add",
        translation.stp_rewritten, translation.same_price_reduces
    );
    println!(
        "machine: {machine}; pinned to core {}",
        pinned.map_or("none".to_string(), |c| c.to_string())
    );

    // ----- cross-check ---------------------------------------------------------------------
    let (f_counts, f_l2) = ferrox_reference(&w.engine_config, &cmds[..first], &cmds[first..]);
    let mut peers: Vec<(&str, Counts, Vec<L2>, u64)> = Vec::new();
    {
        let mut run = |name, b: &mut dyn Book| {
            let mut pre = Counts::default();
            let mut c = Counts::default();
            for i in 0..end {
                b.apply(i, if i < first { &mut pre } else { &mut c });
            }
            peers.push((name, c, b.l2(), b.errors()));
        };
        run("lobster", &mut LobsterBook::new(ops, sizing));
        run("orderbook-rs", &mut ObrsBook::new(ops, sizing));
    }
    let bid_levels: usize = f_l2.iter().map(|b| b.bids.len()).sum();
    let ask_levels: usize = f_l2.iter().map(|b| b.asks.len()).sum();
    println!(
        "cross-check reference (Ferrox): {} trades, volume {}, final books {} bid levels / {} ask \
         levels over {} instruments, resting qty {} / {}; instrument 0 best bid {:?} best ask {:?}",
        f_counts.trades,
        f_counts.volume,
        bid_levels,
        ask_levels,
        instruments,
        f_l2.iter().flat_map(|b| &b.bids).map(|l| l.1).sum::<u64>(),
        f_l2.iter().flat_map(|b| &b.asks).map(|l| l.1).sum::<u64>(),
        f_l2[0].bids.first(),
        f_l2[0].asks.first()
    );
    // Peers that agree, and the cross-check line of each peer for the report.
    let mut agreed: Vec<&str> = Vec::new();
    let mut check_notes: Vec<(&str, String)> = Vec::new();
    for (name, c, l2, errors) in &peers {
        let mut bad = Vec::new();
        if *c != f_counts {
            bad.push(format!("counts {c:?} vs Ferrox {f_counts:?}"));
        }
        let differing: Vec<usize> = (0..instruments).filter(|&i| l2[i] != f_l2[i]).collect();
        if let Some(&i) = differing.first() {
            let mut line = format!(
                "{} of {instruments} books differ; first, instrument {i}:",
                differing.len()
            );
            if l2[i].bids != f_l2[i].bids {
                let _ = write!(line, " bids: {}", first_diff(&l2[i].bids, &f_l2[i].bids));
            }
            if l2[i].asks != f_l2[i].asks {
                let _ = write!(line, " asks: {}", first_diff(&l2[i].asks, &f_l2[i].asks));
            }
            bad.push(line);
        }
        if *errors != 0 {
            bad.push(format!("{errors} operations returned errors"));
        }
        if bad.is_empty() {
            println!(
                "cross-check {name}: OK (same trades, volume and full L2 of all {instruments} \
                 books as Ferrox)"
            );
            agreed.push(name);
            check_notes.push((name, "ok".into()));
        } else {
            println!("cross-check {name}: MISMATCH");
            for b in &bad {
                println!("  {b}");
            }
            let why = if translation.same_price_reduces > 0 {
                format!(
                    "the workload has {} priority-keeping replaces, which {name} can only do as \
                     cancel + re-add (losing time priority), so later fills go to other orders",
                    translation.same_price_reduces
                )
            } else {
                "no known translation difference explains it".to_string()
            };
            println!("refused: {name} is not timed on workload {}: {why}", w.name);
            check_notes.push((name, format!("mismatch: {}; {why}", bad.join("; "))));
        }
    }
    if agreed.is_empty() {
        println!("timings withheld: no peer agrees with Ferrox on this workload");
        return ExitCode::FAILURE;
    }

    // ----- timing ---------------------------------------------------------------------------
    let passes = args
        .passes
        .unwrap_or_else(|| 100_000usize.div_ceil((end - first).max(1)).clamp(1, 1_000))
        .max(1);
    if passes > 1 {
        println!(
            "{passes} passes per run, each on a fresh pre-filled book: {} timed commands",
            (end - first) * passes
        );
    }
    let (ov_min, ov_med) = timer_overhead();
    println!("timer: Instant pair overhead min {ov_min} ns, median {ov_med} ns (included below)");
    let cmds_ref = &cmds;
    let engine_config = &w.engine_config;
    let mut timings = vec![time_engine(
        "ferrox",
        || FerroxBook {
            engine: Engine::new(engine_config.clone()).expect("workload configuration is valid"),
            cmds: cmds_ref,
        },
        first,
        end,
        args.runs,
        passes,
    )];
    if agreed.contains(&"lobster") {
        timings.push(time_engine(
            "lobster",
            || LobsterBook::new(ops, sizing),
            first,
            end,
            args.runs,
            passes,
        ));
    }
    if agreed.contains(&"orderbook-rs") {
        timings.push(time_engine(
            "orderbook-rs",
            || ObrsBook::new(ops, sizing),
            first,
            end,
            args.runs,
            passes,
        ));
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>14}",
        "engine (ns)", "p50", "p90", "p99", "p99.9", "p99.99", "max", "throughput/s"
    );
    for t in &timings {
        let _ = write!(out, "{:<14}", t.name);
        for (_, p) in PCTS {
            let _ = write!(out, " {:>8}", t.hist.value_at_percentile(p));
        }
        let _ = writeln!(out, " {:>10} {:>14.0}", t.hist.max(), t.throughput);
    }
    let f = &timings[0];
    let _ = writeln!(
        out,
        "\nratios (peer / Ferrox for latency, Ferrox / peer for throughput; > 1: Ferrox faster)"
    );
    let ratio = |t: &Timing, p: f64| {
        t.hist.value_at_percentile(p) as f64 / f.hist.value_at_percentile(p) as f64
    };
    for t in &timings[1..] {
        let _ = write!(out, "{:<14}", t.name);
        for (n, p) in PCTS {
            let _ = write!(out, " {n} {:.1}x", ratio(t, p));
        }
        let _ = writeln!(
            out,
            " max {:.1}x throughput {:.1}x",
            t.hist.max() as f64 / f.hist.max() as f64,
            f.throughput / t.throughput
        );
    }
    print!("{out}");

    if let Some(path) = &args.json {
        let mut j = String::new();
        let _ = write!(
            j,
            "{{\"bench\":\"ferrox-peers\",\"command\":{},\"machine\":{},\"preset\":{},\
             \"seed\":{},\"prefill\":{},\"commands\":{},\"timer_overhead_ns\":{{\"min\":{},\
             \"median\":{}}},\"cross_check\":{{\"ok\":{},\"trades\":{},\"volume\":{},\
             \"bid_levels\":{},\"ask_levels\":{}}},\"engines\":[",
            json_str(&cmdline),
            json_str(&machine),
            json_str(&w.name),
            args.seed,
            first,
            end - first,
            ov_min,
            ov_med,
            agreed.len() == peers.len(),
            f_counts.trades,
            f_counts.volume,
            bid_levels,
            ask_levels
        );
        for (k, t) in timings.iter().enumerate() {
            let _ = write!(
                j,
                "{}{{\"name\":\"{}\",\"count\":{}",
                if k > 0 { "," } else { "" },
                t.name,
                t.hist.len()
            );
            for (n, p) in PCTS {
                let _ = write!(j, ",\"{n}_ns\":{}", t.hist.value_at_percentile(p));
            }
            let _ = write!(
                j,
                ",\"max_ns\":{},\"mean_ns\":{:.1},\"throughput_per_s\":{:.0},\"runs_per_s\":{:?}}}",
                t.hist.max(),
                t.hist.mean(),
                t.throughput,
                t.runs
            );
        }
        j.push_str("]}\n");
        if let Err(e) = std::fs::write(path, j) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }

    if let Some(dir) = &args.report {
        let stem = format!("peers-{}", w.name);
        let mut rw = match ReportWriter::new(dir, &stem, "ferrox-peers", report_machine) {
            Ok(rw) => rw,
            Err(e) => {
                eprintln!("cannot write a report in {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        };
        let pinning = pinned.map_or("not pinned".to_string(), |c| {
            format!("bench thread on core {c}")
        });
        for t in &timings {
            let mut r = BenchResult::new(
                format!("{stem}-{}", t.name),
                "peers",
                t.name,
                w.name.clone(),
                &t.hist,
            )
            .basis("service time per command, closed loop, Instant pair included")
            .rates(None, t.throughput)
            .pinning(pinning.clone())
            .param("seed", args.seed)
            .param("commands", (end - first) as u64)
            .param("prefill", first as u64)
            .param("runs", args.runs as u64)
            .param("passes", passes as u64)
            .param("runs_per_s", t.runs.clone())
            .param("instruments", instruments as u64)
            .param("timer_overhead_median_ns", ov_med)
            .param("cross_check_trades", f_counts.trades)
            .param("cross_check_volume", f_counts.volume)
            .param("cross_check_bid_levels", bid_levels as u64)
            .param("cross_check_ask_levels", ask_levels as u64)
            .param("same_price_reduces", translation.same_price_reduces)
            .param("stp_rewritten_off", translation.stp_rewritten)
            .param("generator_rejects", w.stats.rejects);
            for (name, note) in &check_notes {
                r = r.param(&format!("cross_check_{name}"), note.clone());
            }
            if t.name == "ferrox" {
                for p in &timings[1..] {
                    r = r.param(
                        &format!("throughput_ratio_vs_{}", p.name),
                        f.throughput / p.throughput,
                    );
                }
            } else {
                r = r
                    .param(
                        "throughput_ratio_ferrox_over_this",
                        f.throughput / t.throughput,
                    )
                    .param("p50_ratio_this_over_ferrox", ratio(t, 50.0))
                    .param("p99_ratio_this_over_ferrox", ratio(t, 99.0))
                    .param("p99_99_ratio_this_over_ferrox", ratio(t, 99.99));
            }
            if w.stats.sweeps > 0 {
                r = r
                    .param("levels_swept_mean", w.stats.levels_per_sweep())
                    .param("levels_swept_max", w.stats.levels_swept_max)
                    .param("trades_per_sweep", w.stats.trades_per_sweep());
            }
            if let Err(e) = rw.add(r, Some(&t.hist)) {
                eprintln!("cannot write the report: {e}");
                return ExitCode::FAILURE;
            }
        }
        println!("wrote {}", rw.path().display());
    }
    ExitCode::SUCCESS
}
