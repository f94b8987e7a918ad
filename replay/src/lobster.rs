//! Import of LOBSTER data (<https://lobsterdata.com>): message file to Ferrox commands, replayed
//! through the engine and compared, row by row, with LOBSTER's own orderbook file.
//!
//! # The mapping
//!
//! LOBSTER prices are USD × 10000 and sizes are shares, so the import configures one instrument
//! ([`config`]) with `price_decimals = 4`, tick 1, lot 1 and a price band of ±10000 % (the data
//! is history: nothing in it should be refused for being far from a reference price). Each
//! message becomes at most one engine command, stamped with the message's time (nanoseconds
//! after midnight, parsed exactly from the decimal seconds):
//!
//! - type 1 (new limit order): a GTC limit order of account [`ACCOUNT_ORDERS`] with
//!   `StpMode::Off` (all LOBSTER orders share one account, and unrelated orders must never
//!   prevent each other's trades) and the LOBSTER order id as client order id.
//! - type 2 (partial cancel): a `Replace` to the lower total quantity at the same price. The
//!   engine's rules (`docs/matching-rules.md`, "Replace") keep time priority when the open
//!   quantity shrinks at the same price, which is exactly what a partial cancel does at Nasdaq,
//!   so queue positions stay right. A partial cancel of everything left becomes a `Cancel`.
//! - type 3 (delete): a `Cancel`.
//! - type 4 (execution of a visible order): the message shows only the resting side, so the
//!   import synthesises the aggressor: an IOC limit order of the opposite side, of account
//!   [`ACCOUNT_AGGRESSOR`], at the executed order's price for the executed size. The engine then
//!   produces the trade. It trades with the front of the queue at that price, which is the
//!   executed order whenever our queue matches Nasdaq's.
//! - type 5 (hidden execution): no visible change; skipped and counted.
//! - type 6 (cross trade) and 7 (halt): skipped and counted (a cross does not change the
//!   visible book, and the sample has no halts).
//!
//! # State before the window
//!
//! The book holds orders before message 1. Row k of the orderbook file is the book *after*
//! message k, so the initial book is row 1 with message 1 undone; it is seeded as one synthetic
//! order per level (account [`ACCOUNT_SEED`], client order ids counting down from `u64::MAX`,
//! so they cannot clash with LOBSTER ids). Orders that predate the window are unknown when a
//! message cancels or executes them: a cancel or partial cancel of an unknown order reduces the
//! seed orders at its price instead (counted); an execution needs nothing special, because the
//! synthetic aggressor trades with whatever rests at the price.
//!
//! LOBSTER's message file only reports events inside the requested N-level window, so levels
//! beyond it are invisible: at the start, and whenever orders are added or cancelled out there.
//! Such a level can later enter the window without a message of their own (when a better level
//! empties). With `reveal` on (the default), after each message the import looks at the prices
//! that were outside the previous row's window (it was full) and are inside the current row's,
//! and makes the engine agree with the row there: missing shares become another seed order
//! (counted as `revealed_levels`), surplus shares are cancelled or reduced, seeds first and
//! then the newest orders (counted as `window_removals`). This uses the orderbook file as a
//! source of out-of-window state, so the command stream depends on it; turn `reveal` off to
//! measure what the messages alone give.
//!
//! On the AAPL 2012-06-21 sample (999 messages, 10 levels) the rebuilt book equals the
//! orderbook file on all 10 levels of every row with `reveal` on; from the messages alone,
//! 955 rows agree at the top of the book, 531 on the top 5 levels and 113 on all 10.
//! Messages must be in time order; a decreasing time is an error naming the message.

use std::collections::{BTreeMap, HashMap};

use ferrox_engine::{
    AccountId, Cancel, ClientOrderId, Command, Engine, EngineConfig, Event, InstrumentId,
    InstrumentSpec, InstrumentStatus, Limits, NewOrder, OrderId, OrderType, PriceBand, PriceTicks,
    QtyLots, Replace, SequencedCommand, Side, StpGroup, StpMode, TimeInForce, VecSink,
};

use crate::cmdfile::TimedCommand;

/// The account of every LOBSTER limit order.
pub const ACCOUNT_ORDERS: u32 = 1;
/// The account of the synthesised aggressors of type 4 executions.
pub const ACCOUNT_AGGRESSOR: u32 = 2;
/// The account of the synthetic orders standing for the book before the window.
pub const ACCOUNT_SEED: u32 = 3;

/// LOBSTER's placeholder prices for empty levels.
const EMPTY_ASK: i64 = 9_999_999_999;
const EMPTY_BID: i64 = -9_999_999_999;

/// One line of a message file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub ts_ns: u64,
    pub kind: u8,
    pub order_id: u64,
    pub size: u64,
    pub price: i64,
    pub side: Side,
}

/// One level of an orderbook row: `None` where LOBSTER writes its empty-level placeholder.
pub type Level = Option<(i64, u64)>;

/// One orderbook row: asks and bids, best first, `levels` each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookRow {
    pub asks: Vec<Level>,
    pub bids: Vec<Level>,
}

/// Parses decimal seconds after midnight into nanoseconds, exactly.
fn seconds_to_ns(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let mut frac_ns: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..9 {
        frac_ns *= 10;
    }
    whole.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// Parses a message file; errors name the line and the column.
pub fn parse_messages(text: &str) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let f: Vec<&str> = raw.split(',').map(str::trim).collect();
        if f.len() < 6 {
            return Err(format!(
                "message line {line}: expected 6 fields (time,type,id,size,price,direction), found {}",
                f.len()
            ));
        }
        let bad = |col: usize, what: &str| {
            format!(
                "message line {line}, column {}: {:?} is not {what}",
                col + 1,
                f[col]
            )
        };
        let ts_ns =
            seconds_to_ns(f[0]).ok_or_else(|| bad(0, "decimal seconds (at most 9 decimals)"))?;
        let kind: u8 = f[1]
            .parse()
            .ok()
            .filter(|k| (1..=7).contains(k))
            .ok_or_else(|| bad(1, "a type from 1 to 7"))?;
        let order_id: u64 = f[2].parse().map_err(|_| bad(2, "an order id"))?;
        let size: u64 = f[3].parse().map_err(|_| bad(3, "a size"))?;
        let price: i64 = f[4].parse().map_err(|_| bad(4, "a price"))?;
        let side = match f[5] {
            "1" => Side::Buy,
            "-1" => Side::Sell,
            _ => return Err(bad(5, "1 or -1")),
        };
        out.push(Message {
            ts_ns,
            kind,
            order_id,
            size,
            price,
            side,
        });
    }
    Ok(out)
}

/// Parses an orderbook file; the number of levels is the number of columns / 4.
pub fn parse_orderbook(text: &str) -> Result<Vec<BookRow>, String> {
    let mut out = Vec::new();
    let mut levels = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let f: Vec<&str> = raw.split(',').map(str::trim).collect();
        if f.len() % 4 != 0 || f.is_empty() {
            return Err(format!(
                "orderbook line {line}: {} columns is not a multiple of 4",
                f.len()
            ));
        }
        let n = f.len() / 4;
        if *levels.get_or_insert(n) != n {
            return Err(format!(
                "orderbook line {line}: {n} levels, earlier lines have {}",
                levels.unwrap_or(0)
            ));
        }
        let mut row = BookRow {
            asks: Vec::with_capacity(n),
            bids: Vec::with_capacity(n),
        };
        for j in 0..n {
            let num = |c: usize| -> Result<i64, String> {
                f[c].parse().map_err(|_| {
                    format!(
                        "orderbook line {line}, column {}: {:?} is not a whole number",
                        c + 1,
                        f[c]
                    )
                })
            };
            let level = |p: i64, q: i64, empty: i64| (p != empty && q > 0).then_some((p, q as u64));
            row.asks
                .push(level(num(4 * j)?, num(4 * j + 1)?, EMPTY_ASK));
            row.bids
                .push(level(num(4 * j + 2)?, num(4 * j + 3)?, EMPTY_BID));
        }
        out.push(row);
    }
    Ok(out)
}

/// The single-instrument configuration LOBSTER data is replayed with; `orders_max` is sized
/// for `messages` so that the pool never fills.
pub fn config(symbol: &str, reference_price: i64, messages: usize) -> EngineConfig {
    let orders = (messages as u64 + 4096).next_power_of_two().min(1 << 24) as u32;
    EngineConfig {
        limits: Limits {
            orders_max: orders,
            levels_max: orders.min(1 << 18),
            gtd_orders_max: 64,
        },
        instruments: vec![InstrumentSpec {
            symbol: symbol.to_string(),
            price_decimals: 4,
            qty_decimals: 0,
            tick_size: PriceTicks(1),
            lot_size: QtyLots(1),
            reference_price: PriceTicks(reference_price.max(1)),
            price_band: PriceBand::Bps(1_000_000),
            qty_max: QtyLots(1_000_000_000),
            // 10^15 USD in ticks x lots: far above any real order, and expressible in the
            // TOML configuration that `config_toml` writes for replaying the journal.
            notional_max: 10u128.pow(19),
            levels_per_side_max: 1 << 16,
            ladder_window_ticks: 65_536,
            status: InstrumentStatus::Open,
        }],
    }
}

/// A notional limit as decimal text. "No limit" (`u128::MAX`, as `InstrumentSpec::simple`
/// sets) has no decimal form, so it is written as the largest number of units a decimal holds
/// (about 7.9e28), which no order reaches either.
fn notional_text(units: u128, decimals: u32) -> String {
    i128::try_from(units)
        .ok()
        .and_then(|u| rust_decimal::Decimal::try_from_i128_with_scale(u, decimals).ok())
        .unwrap_or_else(|| {
            // The most units a decimal can count, so that converting back to units fits.
            rust_decimal::Decimal::from_i128_with_scale(
                rust_decimal::Decimal::MAX.mantissa(),
                decimals.min(28),
            )
        })
        .to_string()
}

/// The configuration as TOML that `ferrox` reads (`[limits]` and `[[instruments]]`), so that
/// a journal written from an import can be replayed with `--config`.
pub fn config_toml(config: &EngineConfig) -> String {
    let dec = |units: i128, decimals: u32| {
        rust_decimal::Decimal::from_i128_with_scale(units, decimals).to_string()
    };
    let l = &config.limits;
    let mut out = format!(
        "# The engine configuration a journal or command file replays with.\n[limits]\norders_max = {}\nlevels_max = {}\ngtd_orders_max = {}\n",
        l.orders_max, l.levels_max, l.gtd_orders_max
    );
    for i in &config.instruments {
        let band = match i.price_band {
            PriceBand::Bps(b) => format!("price_band_percent = \"{}\"", dec(b.into(), 2)),
            PriceBand::Ticks(t) => format!("price_band = \"{}\"", dec(t.into(), i.price_decimals)),
        };
        out.push_str(&format!(
            "\n[[instruments]]\nsymbol = \"{}\"\nprice_decimals = {}\nqty_decimals = {}\ntick_size = \"{}\"\nlot_size = \"{}\"\nreference_price = \"{}\"\n{band}\nqty_max = \"{}\"\nnotional_max = \"{}\"\nlevels_per_side_max = {}\nladder_window_ticks = {}\n",
            i.symbol,
            i.price_decimals,
            i.qty_decimals,
            dec(i.tick_size.0.into(), i.price_decimals),
            dec(i.lot_size.0.into(), i.qty_decimals),
            dec(i.reference_price.0.into(), i.price_decimals),
            dec(i.qty_max.0.into(), i.qty_decimals),
            notional_text(i.notional_max, i.price_decimals + i.qty_decimals),
            i.levels_per_side_max,
            i.ladder_window_ticks,
        ));
    }
    out
}

/// How the import runs.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub symbol: String,
    /// Levels compared per side; at most the orderbook file's.
    pub levels: usize,
    /// Seed levels that enter the window without a message; see the module docs.
    pub reveal: bool,
    /// How many disagreements to keep as examples per category.
    pub examples: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            symbol: "AAPL".into(),
            levels: 10,
            reveal: true,
            examples: 5,
        }
    }
}

/// Counts of how messages were mapped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub messages: u64,
    pub new_orders: u64,
    pub partial_cancels: u64,
    pub deletes: u64,
    pub executions: u64,
    pub hidden_executions_skipped: u64,
    pub cross_trades_skipped: u64,
    pub halts_skipped: u64,
    /// Seed orders placed for the initial book.
    pub seed_orders: u64,
    /// Seed orders placed for levels that entered the window later.
    pub revealed_levels: u64,
    /// Levels that entered the window with fewer shares than the engine held (changes made
    /// while they were outside the window, which LOBSTER does not report), and were reduced.
    pub window_removals: u64,
    /// Cancels and partial cancels of orders from before the window, taken from the seeds.
    pub unknown_cancels: u64,
    /// Executions of orders from before the window.
    pub unknown_executions: u64,
    /// Shares an unknown cancel could not take from the seeds (none were left at the price).
    pub unknown_cancel_shortfall: u64,
    /// Shares a synthesised aggressor could not trade (the engine held less at the price).
    pub execution_shortfall: u64,
    /// New orders that traded on arrival: the engine's book was staler than Nasdaq's.
    pub new_orders_crossed: u64,
    /// Engine commands generated.
    pub commands: u64,
    pub trades: u64,
    pub rejects: u64,
}

/// One disagreement between the rebuilt book and the orderbook file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// 1-based row of the orderbook file (= message number).
    pub row: usize,
    pub side: Side,
    /// 1-based level.
    pub level: usize,
    pub expected: Level,
    pub got: Level,
}

/// Row-by-row agreement of the rebuilt book with the orderbook file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    pub rows: usize,
    pub levels: usize,
    /// Rows whose compared levels all agree on both sides.
    pub rows_equal: usize,
    /// Rows whose best bid and best ask agree.
    pub rows_equal_top1: usize,
    /// Rows whose first five levels agree on both sides.
    pub rows_equal_top5: usize,
    /// Disagreeing rows by explanation (the first disagreeing level of each row decides).
    pub categories: BTreeMap<String, usize>,
    pub examples: BTreeMap<String, Vec<Example>>,
}

impl Agreement {
    pub fn percent(part: usize, whole: usize) -> f64 {
        if whole == 0 {
            100.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    }
}

/// The result of an import.
#[derive(Clone, Debug)]
pub struct Import {
    pub config: EngineConfig,
    /// The command stream, command n with seq n; replaying it gives `state_hash`.
    pub commands: Vec<TimedCommand>,
    pub counts: Counts,
    pub agreement: Option<Agreement>,
    pub state_hash: u64,
}

/// The engine and the bookkeeping of a running import.
struct Replayer {
    engine: Engine,
    sink: VecSink,
    commands: Vec<TimedCommand>,
    counts: Counts,
    /// LOBSTER order id to engine order id.
    known: HashMap<u64, OrderId>,
    /// Seed orders per (side, price), oldest first.
    seeds: HashMap<(Side, i64), Vec<OrderId>>,
    next_seed_clid: u64,
    /// The L2 book rebuilt from `BookDelta` events.
    bids: BTreeMap<i64, u64>,
    asks: BTreeMap<i64, u64>,
    /// Prices where an unknown order could not be found in full: later disagreements there are
    /// explained by it.
    unknown_at: HashMap<(Side, i64), usize>,
}

const INSTRUMENT: InstrumentId = InstrumentId(0);

impl Replayer {
    /// Applies one command; returns its events.
    fn apply(&mut self, ts_ns: u64, command: Command) -> Vec<Event> {
        self.commands.push((ts_ns, command));
        let seq = self.commands.len() as u64;
        self.engine.apply(
            &SequencedCommand {
                seq,
                ts_ns,
                command,
            },
            &mut self.sink,
        );
        let events = self.sink.take();
        for e in &events {
            match e {
                Event::BookDelta(d) => {
                    let side = match d.side {
                        Side::Buy => &mut self.bids,
                        Side::Sell => &mut self.asks,
                    };
                    if d.order_count == 0 {
                        side.remove(&d.price.0);
                    } else {
                        side.insert(d.price.0, d.qty_total.0);
                    }
                }
                Event::Trade(_) => self.counts.trades += 1,
                Event::Rejected(_) => self.counts.rejects += 1,
                _ => {}
            }
        }
        events
    }

    fn seed(&mut self, ts_ns: u64, side: Side, price: i64, qty: u64) {
        let clid = self.next_seed_clid;
        self.next_seed_clid -= 1;
        let mut order = NewOrder::limit(
            INSTRUMENT,
            AccountId(ACCOUNT_SEED),
            ClientOrderId(clid),
            side,
            PriceTicks(price),
            QtyLots(qty),
        );
        order.stp_mode = StpMode::Off;
        self.apply(ts_ns, Command::NewOrder(order));
        let id = OrderId(self.commands.len() as u64);
        self.seeds.entry((side, price)).or_default().push(id);
    }

    /// Takes `size` shares off the live order `id`: a priority-keeping replace, or a cancel
    /// when nothing would be left. Returns the shares actually taken.
    fn reduce(&mut self, ts_ns: u64, id: OrderId, account: u32, size: u64) -> u64 {
        let Some(o) = self.engine.order(id) else {
            return 0;
        };
        if size >= o.qty_open.0 {
            self.apply(
                ts_ns,
                Command::Cancel(Cancel {
                    order_id: id,
                    account: AccountId(account),
                    client_order_id: o.client_order_id,
                }),
            );
            o.qty_open.0
        } else {
            self.apply(
                ts_ns,
                Command::Replace(Replace {
                    order_id: id,
                    account: AccountId(account),
                    client_order_id: o.client_order_id,
                    price: o.price,
                    qty: QtyLots(o.qty_filled.0 + o.qty_open.0 - size),
                }),
            );
            size
        }
    }

    /// A cancel of an order from before the window: taken from the seeds at its price.
    fn reduce_seeds(&mut self, m: &Message, row: usize) {
        self.counts.unknown_cancels += 1;
        let mut left = m.size;
        let ids = self
            .seeds
            .get(&(m.side, m.price))
            .cloned()
            .unwrap_or_default();
        for id in ids {
            if left == 0 {
                break;
            }
            left -= self.reduce(m.ts_ns, id, ACCOUNT_SEED, left);
        }
        if let Some(v) = self.seeds.get_mut(&(m.side, m.price)) {
            v.retain(|id| self.engine.order(*id).is_some());
        }
        if left > 0 {
            self.counts.unknown_cancel_shortfall += left;
            self.unknown_at.entry((m.side, m.price)).or_insert(row);
        }
    }

    fn message(&mut self, m: &Message, row: usize) {
        self.counts.messages += 1;
        match m.kind {
            1 => {
                self.counts.new_orders += 1;
                let mut order = NewOrder::limit(
                    INSTRUMENT,
                    AccountId(ACCOUNT_ORDERS),
                    ClientOrderId(m.order_id),
                    m.side,
                    PriceTicks(m.price),
                    QtyLots(m.size),
                );
                order.stp_mode = StpMode::Off;
                let events = self.apply(m.ts_ns, Command::NewOrder(order));
                self.known
                    .insert(m.order_id, OrderId(self.commands.len() as u64));
                if events.iter().any(|e| matches!(e, Event::Trade(_))) {
                    self.counts.new_orders_crossed += 1;
                }
            }
            2 | 3 => {
                if m.kind == 2 {
                    self.counts.partial_cancels += 1;
                } else {
                    self.counts.deletes += 1;
                }
                match self.known.get(&m.order_id).copied() {
                    Some(id) if self.engine.order(id).is_some() => {
                        // A delete removes whatever is left, whatever size the message gives.
                        let size = if m.kind == 3 { u64::MAX } else { m.size };
                        self.reduce(m.ts_ns, id, ACCOUNT_ORDERS, size);
                    }
                    _ => self.reduce_seeds(m, row),
                }
            }
            4 => {
                self.counts.executions += 1;
                if !self.known.contains_key(&m.order_id) {
                    self.counts.unknown_executions += 1;
                }
                let order = NewOrder {
                    instrument: INSTRUMENT,
                    account: AccountId(ACCOUNT_AGGRESSOR),
                    client_order_id: ClientOrderId(m.order_id),
                    side: m.side.opposite(),
                    order_type: OrderType::Limit,
                    price: PriceTicks(m.price),
                    qty: QtyLots(m.size),
                    tif: TimeInForce::Ioc,
                    expire_ts_ns: 0,
                    post_only: false,
                    stp_mode: StpMode::Off,
                    stp_group: StpGroup(0),
                };
                let events = self.apply(m.ts_ns, Command::NewOrder(order));
                let traded: u64 = events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Trade(t) => Some(t.qty.0),
                        _ => None,
                    })
                    .sum();
                self.counts.execution_shortfall += m.size.saturating_sub(traded);
                if m.size > traded {
                    self.unknown_at.entry((m.side, m.price)).or_insert(row);
                }
            }
            5 => self.counts.hidden_executions_skipped += 1,
            6 => self.counts.cross_trades_skipped += 1,
            _ => self.counts.halts_skipped += 1,
        }
    }

    /// Makes the engine agree with `row` at the prices that were outside `previous`'s window
    /// and are inside `row`'s: LOBSTER writes no message for changes outside the window, so
    /// what the engine holds there is what it last saw, not what Nasdaq held. Missing shares
    /// become seed orders, surplus shares are taken off (seeds first, then the newest orders).
    fn reconcile_window(&mut self, ts_ns: u64, row: &BookRow, previous: &BookRow, levels: usize) {
        for side in [Side::Buy, Side::Sell] {
            let (expected, before) = match side {
                Side::Buy => (&row.bids[..levels], &previous.bids[..levels]),
                Side::Sell => (&row.asks[..levels], &previous.asks[..levels]),
            };
            let Some(Some((prev_worst, _))) = before.last().copied() else {
                // The previous row did not fill the window: the whole side was visible.
                continue;
            };
            let limit = expected.last().copied().flatten().map(|(p, _)| p);
            let worse = |p: i64, than: i64| match side {
                Side::Buy => p < than,
                Side::Sell => p > than,
            };
            let in_region = |p: i64| worse(p, prev_worst) && limit.is_none_or(|l| !worse(p, l));
            let book = match side {
                Side::Buy => &self.bids,
                Side::Sell => &self.asks,
            };
            let mut prices: Vec<i64> = book.keys().copied().filter(|p| in_region(*p)).collect();
            prices.extend(
                expected
                    .iter()
                    .flatten()
                    .map(|(p, _)| *p)
                    .filter(|p| in_region(*p)),
            );
            prices.sort_unstable();
            prices.dedup();
            for p in prices {
                let want = expected
                    .iter()
                    .flatten()
                    .find(|(q, _)| *q == p)
                    .map_or(0, |(_, q)| *q);
                let have = self.qty_at(side, p);
                if want > have {
                    self.seed(ts_ns, side, p, want - have);
                    self.counts.revealed_levels += 1;
                } else if have > want {
                    self.remove_surplus(ts_ns, side, p, have - want);
                    self.counts.window_removals += 1;
                }
            }
        }
    }

    /// Takes `size` shares off the level at `price`: seed orders first, then the newest
    /// orders, which are the likeliest to have been cancelled while out of sight.
    fn remove_surplus(&mut self, ts_ns: u64, side: Side, price: i64, size: u64) {
        let mut order: Vec<(OrderId, u32)> = self
            .seeds
            .get(&(side, price))
            .map(|v| v.iter().map(|id| (*id, ACCOUNT_SEED)).collect())
            .unwrap_or_default();
        if let Some(level) = self
            .engine
            .levels_of(INSTRUMENT, side)
            .into_iter()
            .find(|l| l.price.0 == price)
        {
            order.extend(level.orders.iter().rev().map(|o| (o.order_id, o.account.0)));
        }
        let mut left = size;
        for (id, account) in order {
            if left == 0 {
                break;
            }
            left -= self.reduce(ts_ns, id, account, left);
        }
        if let Some(v) = self.seeds.get_mut(&(side, price)) {
            v.retain(|id| self.engine.order(*id).is_some());
        }
    }

    fn top(&self, side: Side, n: usize) -> Vec<Level> {
        let mut out: Vec<Level> = match side {
            Side::Buy => self
                .bids
                .iter()
                .rev()
                .take(n)
                .map(|(p, q)| Some((*p, *q)))
                .collect(),
            Side::Sell => self
                .asks
                .iter()
                .take(n)
                .map(|(p, q)| Some((*p, *q)))
                .collect(),
        };
        out.resize(n, None);
        out
    }

    fn qty_at(&self, side: Side, price: i64) -> u64 {
        let book = match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        };
        book.get(&price).copied().unwrap_or(0)
    }
}

/// Whether `price` is worse than every level of a full `previous` window side.
fn outside(previous: &[Level], side: Side, price: i64) -> bool {
    match previous.last() {
        Some(Some((worst, _))) => match side {
            Side::Buy => price < *worst,
            Side::Sell => price > *worst,
        },
        // The previous row did not fill the window: the whole side was visible.
        _ => false,
    }
}

/// The book before message 1: row 1 with message 1 undone.
fn initial_book(
    row: &BookRow,
    first: Option<&Message>,
) -> (BTreeMap<i64, u64>, BTreeMap<i64, u64>) {
    let mut bids: BTreeMap<i64, u64> = row.bids.iter().flatten().copied().collect();
    let mut asks: BTreeMap<i64, u64> = row.asks.iter().flatten().copied().collect();
    if let Some(m) = first {
        let book = match m.side {
            Side::Buy => &mut bids,
            Side::Sell => &mut asks,
        };
        match m.kind {
            1 => {
                if let Some(q) = book.get_mut(&m.price) {
                    *q = q.saturating_sub(m.size);
                    if *q == 0 {
                        book.remove(&m.price);
                    }
                }
            }
            2..=4 => *book.entry(m.price).or_default() += m.size,
            _ => {}
        }
    }
    (bids, asks)
}

/// Imports `messages`, replaying them through the engine; with `orderbook`, seeds the initial
/// book from its first row and compares every row.
pub fn import(
    messages: &[Message],
    orderbook: Option<&[BookRow]>,
    options: &ImportOptions,
) -> Result<Import, String> {
    if let Some(rows) = orderbook {
        if rows.len() != messages.len() {
            return Err(format!(
                "the orderbook file has {} rows but the message file {} messages; row k must be the book after message k",
                rows.len(),
                messages.len()
            ));
        }
    }
    let reference = orderbook
        .and_then(|rows| rows.first())
        .and_then(|r| r.bids[0].or(r.asks[0]))
        .map(|(p, _)| p)
        .or_else(|| messages.iter().find(|m| m.price > 0).map(|m| m.price))
        .unwrap_or(1);
    let config = config(&options.symbol, reference, messages.len() * 2);
    let engine = Engine::new(config.clone()).map_err(|e| e.to_string())?;
    let mut r = Replayer {
        engine,
        sink: VecSink::default(),
        commands: Vec::with_capacity(messages.len() + 64),
        counts: Counts::default(),
        known: HashMap::new(),
        seeds: HashMap::new(),
        next_seed_clid: u64::MAX,
        bids: BTreeMap::new(),
        asks: BTreeMap::new(),
        unknown_at: HashMap::new(),
    };
    let levels = orderbook
        .and_then(|rows| rows.first())
        .map_or(options.levels, |row| options.levels.min(row.asks.len()));
    let mut agreement = orderbook.map(|_| Agreement {
        levels,
        ..Agreement::default()
    });
    if let Some(row) = orderbook.and_then(|rows| rows.first()) {
        let ts = messages.first().map_or(0, |m| m.ts_ns);
        let (bids, asks) = initial_book(row, messages.first());
        // Best first, so that the seed's commands read like a book from the top.
        for (p, q) in bids.iter().rev() {
            r.seed(ts, Side::Buy, *p, *q);
        }
        for (p, q) in &asks {
            r.seed(ts, Side::Sell, *p, *q);
        }
        r.counts.seed_orders = r.commands.len() as u64;
    }
    let mut last_ts = 0u64;
    for (k, m) in messages.iter().enumerate() {
        let row_no = k + 1;
        // The engine's clock only moves forward; refuse here rather than feed it a step back.
        if m.ts_ns < last_ts {
            return Err(format!(
                "message {row_no}: time {} ns is before the previous message's {last_ts} ns",
                m.ts_ns
            ));
        }
        last_ts = m.ts_ns;
        r.message(m, row_no);
        let (Some(rows), Some(agreement)) = (orderbook, agreement.as_mut()) else {
            continue;
        };
        let row = &rows[k];
        let previous = if k == 0 { row } else { &rows[k - 1] };
        if options.reveal {
            r.reconcile_window(m.ts_ns, row, previous, levels);
        }
        compare(
            &r,
            row,
            previous,
            levels,
            row_no,
            m,
            agreement,
            options.examples,
        );
    }
    r.counts.commands = r.commands.len() as u64;
    Ok(Import {
        config,
        state_hash: r.engine.state_hash(),
        commands: r.commands,
        counts: r.counts,
        agreement,
    })
}

#[allow(clippy::too_many_arguments)]
fn compare(
    r: &Replayer,
    row: &BookRow,
    previous: &BookRow,
    levels: usize,
    row_no: usize,
    m: &Message,
    a: &mut Agreement,
    examples: usize,
) {
    a.rows += 1;
    let mut first_bad: Option<(usize, Side, Level, Level)> = None;
    let mut top1 = true;
    let mut top5 = true;
    for side in [Side::Sell, Side::Buy] {
        let expected = match side {
            Side::Buy => &row.bids,
            Side::Sell => &row.asks,
        };
        let got = r.top(side, levels);
        for j in 0..levels {
            if expected[j] != got[j] {
                if j == 0 {
                    top1 = false;
                }
                if j < 5 {
                    top5 = false;
                }
                if first_bad.is_none_or(|(l, ..)| j < l) {
                    first_bad = Some((j, side, expected[j], got[j]));
                }
                break;
            }
        }
    }
    a.rows_equal_top1 += usize::from(top1);
    a.rows_equal_top5 += usize::from(top5);
    let Some((j, side, expected, got)) = first_bad else {
        a.rows_equal += 1;
        return;
    };
    let before = match side {
        Side::Buy => &previous.bids,
        Side::Sell => &previous.asks,
    };
    let price = expected.or(got).map_or(0, |(p, _)| p);
    let category = if matches!(m.kind, 5..=7) {
        "skipped message (hidden execution, cross or halt)"
    } else if r.unknown_at.contains_key(&(side, price)) {
        "unknown pre-window order (larger than the seed at its price)"
    } else if expected.is_some() && outside(&before[..levels], side, price) {
        "level outside the window (entered without a message)"
    } else if expected.is_none() || got.is_none() {
        "level missing on one side (hidden order or pre-window state)"
    } else {
        "quantity differs"
    };
    *a.categories.entry(category.to_string()).or_default() += 1;
    let list = a.examples.entry(category.to_string()).or_default();
    if list.len() < examples {
        list.push(Example {
            row: row_no,
            side,
            level: j + 1,
            expected,
            got,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_toml_reads_back_as_the_same_config() {
        let c = config("AAPL", 5_853_300, 999);
        let back = EngineConfig::from_toml_str(&config_toml(&c)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn seconds_convert_exactly() {
        assert_eq!(seconds_to_ns("34200.004241176"), Some(34_200_004_241_176));
        assert_eq!(seconds_to_ns("1.5"), Some(1_500_000_000));
        assert_eq!(seconds_to_ns("7"), Some(7_000_000_000));
        assert_eq!(seconds_to_ns("1.0000000001"), None);
        assert_eq!(seconds_to_ns("x.1"), None);
    }

    #[test]
    fn message_errors_name_line_and_column() {
        let e = parse_messages("1.0,1,5,10,100,1\n1.0,9,5,10,100,1\n").unwrap_err();
        assert!(e.contains("line 2, column 2"), "{e}");
        let e = parse_messages("1.0,1,5,10,100,0\n").unwrap_err();
        assert!(e.contains("column 6"), "{e}");
    }
}
