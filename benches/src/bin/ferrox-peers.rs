//! `ferrox-peers`: the Ferrox engine side by side with published Rust order books (issue #7,
//! first part).
//!
//! `ferrox-peers --commands N --seed S [--runs R] [--json FILE]` generates one seeded workload
//! with the library's exchange-core-style generator (preset `small`: one instrument, about
//! 1,000 resting orders over about 750 levels, fill-aware cancels and replaces, IOC orders that
//! sweep), then:
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
//! - **One instrument.** Both peers are single-book libraries, so only the one-instrument
//!   preset is used; Ferrox runs it through its full multi-instrument engine.
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
//!   what `lobster` is given.
//! - **Replace.** Ferrox replaces in place: `qty` is the new *total* (FIX), new open =
//!   `qty - filled`; any price change loses priority. The generator's replaces always change
//!   the price (and keep the total), so a replace is equivalent to cancel + new limit with the
//!   remaining open quantity at the new price, under the same id. Both peers are given exactly
//!   that (`lobster` has no modify; `orderbook-rs` has `update_order`, but cancel + new keeps
//!   the two translations identical and avoids depending on its quantity semantics).
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
use ferrox_benches::{generate, BookModel, WorkloadConfig};
use ferrox_engine::Engine;
use ferrox_protocol::{
    Command, Event, EventSink, InstrumentId, SequencedCommand, Side, StpMode, TimeInForce, VecSink,
};
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(about = "Ferrox side by side with lobster and orderbook-rs, cross-checked")]
struct Args {
    /// Measured commands (after the pre-fill of about 1,000 resting orders).
    #[arg(long, default_value_t = 1_000_000)]
    commands: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Throughput runs per engine, each on a fresh pre-filled instance; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
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
        id: u64,
        side: Side,
        price: u64,
        qty: u64,
    },
    Ioc {
        id: u64,
        side: Side,
        price: u64,
        qty: u64,
    },
    Cancel {
        id: u64,
    },
    /// `total` is the new total quantity (filled part included), as in Ferrox.
    Replace {
        id: u64,
        price: u64,
        total: u64,
    },
}

fn price_u64(p: i64) -> u64 {
    u64::try_from(p).expect("workload prices are positive")
}

/// Rewrites STP to off and translates each command for the peers.
fn translate(cmds: &mut [SequencedCommand]) -> Result<Vec<Op>, String> {
    let mut ops = Vec::with_capacity(cmds.len());
    for c in cmds.iter_mut() {
        let seq = c.seq;
        let op = match &mut c.command {
            Command::NewOrder(o) => {
                o.stp_mode = StpMode::Off;
                if o.post_only || o.instrument != InstrumentId(0) {
                    return Err(format!("command {seq}: not expressible for the peers"));
                }
                let (id, side, price, qty) = (seq, o.side, price_u64(o.price.0), o.qty.0);
                match o.tif {
                    TimeInForce::Ioc => Op::Ioc {
                        id,
                        side,
                        price,
                        qty,
                    },
                    TimeInForce::Gtc => Op::Limit {
                        id,
                        side,
                        price,
                        qty,
                    },
                    other => return Err(format!("command {seq}: time in force {other:?}")),
                }
            }
            Command::Cancel(x) => Op::Cancel { id: x.order_id.0 },
            Command::Replace(x) => Op::Replace {
                id: x.order_id.0,
                price: price_u64(x.price.0),
                total: x.qty.0,
            },
            other => return Err(format!("command {seq}: {other:?} not translated")),
        };
        ops.push(op);
    }
    Ok(ops)
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
    fn l2(&self) -> L2;
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
    fn l2(&self) -> L2 {
        unreachable!("Ferrox's L2 is taken from its events by `ferrox_reference`")
    }
}

/// Runs everything through Ferrox with its events fed into the generator's book model, for
/// the counts and the full L2 (checked against the engine's own best bid/ask).
fn ferrox_reference(
    config: &WorkloadConfig,
    prefill: &[SequencedCommand],
    measured: &[SequencedCommand],
) -> (Counts, L2) {
    let mut engine = Engine::new(config.engine_config()).expect("preset is valid");
    let mut model = BookModel::new(config.instruments);
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
    let level = |side| {
        model
            .top_levels(0, side, usize::MAX)
            .into_iter()
            .map(|(p, orders)| (price_u64(p), orders.iter().map(|o| o.open).sum::<u64>()))
            .collect::<Vec<_>>()
    };
    let l2 = L2 {
        bids: level(Side::Buy),
        asks: level(Side::Sell),
    };
    let best = |x: Option<(ferrox_protocol::PriceTicks, ferrox_protocol::QtyLots)>| {
        x.map(|(p, q)| (price_u64(p.0), q.0))
    };
    assert_eq!(
        best(engine.best_bid(InstrumentId(0))),
        l2.bids.first().copied(),
        "model and engine disagree on the best bid"
    );
    assert_eq!(
        best(engine.best_ask(InstrumentId(0))),
        l2.asks.first().copied(),
        "model and engine disagree on the best ask"
    );
    (counts, l2)
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

struct LobsterBook<'w> {
    book: lobster::OrderBook,
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
    fn new(ops: &[Op]) -> LobsterBook<'_> {
        LobsterBook {
            book: lobster::OrderBook::new(4_096, 64, false),
            live: LiveOrders::with_capacity(4_096),
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

    #[inline]
    fn limit(&mut self, id: u64, side: Side, price: u64, qty: u64, total: u64, c: &mut Counts) {
        let ev = self.book.execute(lobster::OrderType::Limit {
            id: u128::from(id),
            side: lob_side(side),
            qty,
            price,
        });
        let filled = self.fills(ev, c);
        self.live.rested(id, side, total, qty - filled);
    }
}

impl Book for LobsterBook<'_> {
    #[inline]
    fn apply(&mut self, i: usize, c: &mut Counts) {
        match self.ops[i] {
            Op::Limit {
                id,
                side,
                price,
                qty,
            } => self.limit(id, side, price, qty, qty, c),
            Op::Ioc { id, side, qty, .. } => {
                let ev = self.book.execute(lobster::OrderType::Market {
                    id: u128::from(id),
                    side: lob_side(side),
                    qty,
                });
                self.fills(ev, c);
            }
            Op::Cancel { id } => {
                self.book
                    .execute(lobster::OrderType::Cancel { id: u128::from(id) });
                self.live.0.remove(&id);
            }
            Op::Replace { id, price, total } => {
                if let Some(o) = self.live.0.remove(&id) {
                    self.book
                        .execute(lobster::OrderType::Cancel { id: u128::from(id) });
                    let open = total.saturating_sub(o.total - o.open);
                    if open > 0 {
                        self.limit(id, o.side, price, open, total, c);
                    }
                }
            }
        }
    }

    fn l2(&self) -> L2 {
        // `depth` preallocates `levels` entries per side and returns every level whatever the
        // argument; the book never holds more than a few thousand levels.
        let d = self.book.depth(1 << 16);
        L2 {
            bids: d.bids.iter().rev().map(|l| (l.price, l.qty)).collect(),
            asks: d.asks.iter().map(|l| (l.price, l.qty)).collect(),
        }
    }
}

// ----- orderbook-rs --------------------------------------------------------------------------

struct ObrsBook<'w> {
    book: orderbook_rs::OrderBook<()>,
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
    fn new(ops: &[Op]) -> ObrsBook<'_> {
        ObrsBook {
            book: orderbook_rs::OrderBook::new("SYM00000"),
            live: LiveOrders::with_capacity(4_096),
            ops,
            errors: 0,
        }
    }

    /// Submits a limit order; returns the quantity left unfilled.
    #[inline]
    fn submit(
        &mut self,
        id: u64,
        side: Side,
        price: u64,
        qty: u64,
        tif: orderbook_rs::TimeInForce,
        c: &mut Counts,
    ) -> u64 {
        match self.book.add_limit_order_with_result(
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
                id,
                side,
                price,
                qty,
            } => {
                let open = self.submit(id, side, price, qty, orderbook_rs::TimeInForce::Gtc, c);
                self.live.rested(id, side, qty, open);
            }
            Op::Ioc {
                id,
                side,
                price,
                qty,
            } => {
                self.submit(id, side, price, qty, orderbook_rs::TimeInForce::Ioc, c);
            }
            Op::Cancel { id } => {
                if self
                    .book
                    .cancel_order(orderbook_rs::Id::sequential(id))
                    .is_err()
                {
                    self.errors += 1;
                }
                self.live.0.remove(&id);
            }
            Op::Replace { id, price, total } => {
                if let Some(o) = self.live.0.remove(&id) {
                    if self
                        .book
                        .cancel_order(orderbook_rs::Id::sequential(id))
                        .is_err()
                    {
                        self.errors += 1;
                    }
                    let open = total.saturating_sub(o.total - o.open);
                    if open > 0 {
                        let left =
                            self.submit(id, o.side, price, open, orderbook_rs::TimeInForce::Gtc, c);
                        self.live.rested(id, o.side, total, left);
                    }
                }
            }
        }
    }

    fn l2(&self) -> L2 {
        let side = |s| {
            self.book
                .levels_with_cumulative_depth(s)
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
    {
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
        let mut b = prefilled(&mut make);
        let mut c = Counts::default();
        let t0 = Instant::now();
        for i in first..end {
            b.apply(black_box(i), &mut c);
        }
        let dt = t0.elapsed();
        black_box(c);
        rates.push((end - first) as f64 / dt.as_secs_f64());
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

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} logical CPUs")
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
    let machine = machine();
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

    let config = WorkloadConfig::small();
    let t_gen = Instant::now();
    let w = generate(&config, args.commands, args.seed);
    let mut cmds: Vec<SequencedCommand> = w.prefill.iter().chain(&w.measured).copied().collect();
    let ops = match translate(&mut cmds) {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("cannot translate the workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    let first = w.prefill.len();
    let end = cmds.len();
    println!(
        "workload: preset small, seed {}, {} pre-fill + {} measured commands ({:?} to generate)",
        args.seed,
        first,
        end - first,
        t_gen.elapsed()
    );
    println!(
        "machine: {machine}; pinned to core {}",
        pinned.map_or("none".to_string(), |c| c.to_string())
    );

    // ----- cross-check ---------------------------------------------------------------------
    let (f_counts, f_l2) = ferrox_reference(&config, &cmds[..first], &cmds[first..]);
    let mut peers: Vec<(&str, Counts, L2, u64)> = Vec::new();
    {
        let mut run = |name, b: &mut dyn Book| {
            let mut pre = Counts::default();
            let mut c = Counts::default();
            for i in 0..end {
                b.apply(i, if i < first { &mut pre } else { &mut c });
            }
            peers.push((name, c, b.l2(), b.errors()));
        };
        run("lobster", &mut LobsterBook::new(&ops));
        run("orderbook-rs", &mut ObrsBook::new(&ops));
    }
    println!(
        "cross-check reference (Ferrox): {} trades, volume {}, final book {} bid levels / {} ask \
         levels, resting qty {} / {}, best bid {:?} best ask {:?}",
        f_counts.trades,
        f_counts.volume,
        f_l2.bids.len(),
        f_l2.asks.len(),
        f_l2.bids.iter().map(|l| l.1).sum::<u64>(),
        f_l2.asks.iter().map(|l| l.1).sum::<u64>(),
        f_l2.bids.first(),
        f_l2.asks.first()
    );
    let mut ok = true;
    for (name, c, l2, errors) in &peers {
        let mut bad = Vec::new();
        if *c != f_counts {
            bad.push(format!("counts {c:?} vs Ferrox {f_counts:?}"));
        }
        if l2.bids != f_l2.bids {
            bad.push(format!("bids: {}", first_diff(&l2.bids, &f_l2.bids)));
        }
        if l2.asks != f_l2.asks {
            bad.push(format!("asks: {}", first_diff(&l2.asks, &f_l2.asks)));
        }
        if *errors != 0 {
            bad.push(format!("{errors} operations returned errors"));
        }
        if bad.is_empty() {
            println!("cross-check {name}: OK (same trades, volume and full L2 as Ferrox)");
        } else {
            ok = false;
            println!("cross-check {name}: MISMATCH");
            for b in bad {
                println!("  {b}");
            }
        }
    }
    if !ok {
        println!("timings withheld: the engines do not agree on this workload");
        return ExitCode::FAILURE;
    }

    // ----- timing ---------------------------------------------------------------------------
    let (ov_min, ov_med) = timer_overhead();
    println!("timer: Instant pair overhead min {ov_min} ns, median {ov_med} ns (included below)");
    let cmds_ref = &cmds;
    let timings = vec![
        time_engine(
            "ferrox",
            || FerroxBook {
                engine: Engine::new(config.engine_config()).expect("preset is valid"),
                cmds: cmds_ref,
            },
            first,
            end,
            args.runs,
        ),
        time_engine("lobster", || LobsterBook::new(&ops), first, end, args.runs),
        time_engine(
            "orderbook-rs",
            || ObrsBook::new(&ops),
            first,
            end,
            args.runs,
        ),
    ];

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
    for t in &timings[1..] {
        let _ = write!(out, "{:<14}", t.name);
        for (n, p) in PCTS {
            let r = t.hist.value_at_percentile(p) as f64 / f.hist.value_at_percentile(p) as f64;
            let _ = write!(out, " {n} {r:.1}x");
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
            "{{\"bench\":\"ferrox-peers\",\"command\":{},\"machine\":{},\"preset\":\"small\",\
             \"seed\":{},\"prefill\":{},\"commands\":{},\"timer_overhead_ns\":{{\"min\":{},\
             \"median\":{}}},\"cross_check\":{{\"ok\":true,\"trades\":{},\"volume\":{},\
             \"bid_levels\":{},\"ask_levels\":{}}},\"engines\":[",
            json_str(&cmdline),
            json_str(&machine),
            args.seed,
            first,
            end - first,
            ov_min,
            ov_med,
            f_counts.trades,
            f_counts.volume,
            f_l2.bids.len(),
            f_l2.asks.len()
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
    ExitCode::SUCCESS
}
