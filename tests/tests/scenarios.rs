//! Scenario tests: one rule of `docs/matching-rules.md` per test, written as "book in, commands,
//! expected events and book out".
//!
//! Events and books are compared as short text so that an expectation reads like the rule it
//! guards. The renderings (see `render` and `Scenario::book`) are:
//!
//! - `Accepted #4 buy Gtc px=100 qty=5` (`market`, `exp=`, `post_only` when they apply)
//! - `Rejected NewOrder QtyZero`, `Rejected Cancel UnknownOrder #7` (the target order id)
//! - `Trade #1 px=100 qty=5 maker=3 taker=4 open=0/2` (`open` = maker/taker open after it)
//! - `Rested #4 buy px=100 open=5`, `Cancelled #4 IocRemainder buy px=100 qty=2`,
//!   `Restated #4 buy px=100 reduced=2 open=3`, `Expired #4 EndOfDay buy px=100 qty=5`
//! - `Replaced #4 px=100->101 open=5->3 filled=0 kept` (or `moved` when priority is lost)
//! - `Delta bid 100x8 n=2` (level price, total quantity, order count)
//! - `Status Halted`, `MassCancelled inst=* acct=1 count=4`
//! - a book: `bids: 100x5(2) 99x2(1) | asks: 101x7(1)`, best level first, `(n)` orders;
//!   a queue: `#2:3 #3:5`, order ids with open quantity in time priority.
//!
//! Every event about an instrument other than 0 ends with ` inst=N`. Commands get sequence
//! numbers 1, 2, 3, ... so the order created by the k-th command of a test is `#k`.

use std::collections::BTreeSet;

use ferrox_engine::{
    AccountId, Cancel, ClientOrderId, Command, Engine, EngineConfig, Event, InstrumentId,
    InstrumentSpec, InstrumentStatus, Limits, MassCancel, NewOrder, OrderId, OrderType, PriceBand,
    PriceTicks, QtyLots, RejectCode, Replace, RequestKind, SequencedCommand, SetStatus, Side,
    StpGroup, StpMode, TimeInForce, TradeId, VecSink,
};
use ferrox_protocol::event::{Accepted, Rejected, Replaced, Trade};

// ----- the scenario DSL ---------------------------------------------------------------------

/// Instrument 0 ("T", reference 100) and instrument 1 ("U", reference 1000), both with the
/// permissive `InstrumentSpec::simple` rules: tick 1, lot 1, a ±50% band.
fn default_config() -> EngineConfig {
    config(
        vec![
            InstrumentSpec::simple("T", 100),
            InstrumentSpec::simple("U", 1_000),
        ],
        limits(1_000, 1_000, 100),
    )
}

fn limits(orders_max: u32, levels_max: u32, gtd_orders_max: u32) -> Limits {
    Limits {
        orders_max,
        levels_max,
        gtd_orders_max,
    }
}

fn config(instruments: Vec<InstrumentSpec>, limits: Limits) -> EngineConfig {
    EngineConfig {
        limits,
        instruments,
    }
}

/// One instrument with the given spec, and pools large enough not to matter.
fn single(spec: InstrumentSpec) -> EngineConfig {
    config(vec![spec], limits(1_000, 1_000, 100))
}

/// A strict instrument for value checks: tick 5, lot 10, at most 1000 lots, notional at most
/// 50 000, reference 100 with a ±50% band (50..=150).
fn strict_spec() -> InstrumentSpec {
    let mut spec = InstrumentSpec::simple("S", 100);
    spec.tick_size = PriceTicks(5);
    spec.lot_size = QtyLots(10);
    spec.qty_max = QtyLots(1_000);
    spec.notional_max = 50_000;
    spec
}

/// A new order under construction; the builder methods read like the order ticket.
#[derive(Clone, Copy, Debug)]
struct Order(NewOrder);

fn limit(side: Side, account: u32, price: i64, qty: u64) -> Order {
    Order(NewOrder::limit(
        InstrumentId(0),
        AccountId(account),
        ClientOrderId(0),
        side,
        PriceTicks(price),
        QtyLots(qty),
    ))
}

/// A GTC limit buy on instrument 0 with the default STP mode (cancel resting).
fn buy(account: u32, price: i64, qty: u64) -> Order {
    limit(Side::Buy, account, price, qty)
}

fn sell(account: u32, price: i64, qty: u64) -> Order {
    limit(Side::Sell, account, price, qty)
}

/// A market IOC buy; the price field is left at 0 because market orders ignore it.
fn market_buy(account: u32, qty: u64) -> Order {
    let mut o = buy(account, 0, qty);
    o.0.order_type = OrderType::Market;
    o.0.tif = TimeInForce::Ioc;
    o
}

fn market_sell(account: u32, qty: u64) -> Order {
    let mut o = sell(account, 0, qty);
    o.0.order_type = OrderType::Market;
    o.0.tif = TimeInForce::Ioc;
    o
}

impl Order {
    fn tif(mut self, tif: TimeInForce) -> Self {
        self.0.tif = tif;
        self
    }
    fn ioc(self) -> Self {
        self.tif(TimeInForce::Ioc)
    }
    fn fok(self) -> Self {
        self.tif(TimeInForce::Fok)
    }
    fn day(self) -> Self {
        self.tif(TimeInForce::Day)
    }
    fn gtd(self, expire_ts_ns: u64) -> Self {
        self.tif(TimeInForce::Gtd).expire(expire_ts_ns)
    }
    /// Sets the expiry without touching the time in force (for invalid combinations).
    fn expire(mut self, expire_ts_ns: u64) -> Self {
        self.0.expire_ts_ns = expire_ts_ns;
        self
    }
    fn post_only(mut self) -> Self {
        self.0.post_only = true;
        self
    }
    fn stp(mut self, mode: StpMode) -> Self {
        self.0.stp_mode = mode;
        self
    }
    fn group(mut self, group: u32) -> Self {
        self.0.stp_group = StpGroup(group);
        self
    }
    fn on(mut self, instrument: u32) -> Self {
        self.0.instrument = InstrumentId(instrument);
        self
    }
    fn cl(mut self, client_order_id: u64) -> Self {
        self.0.client_order_id = ClientOrderId(client_order_id);
        self
    }
}

/// An engine plus the sequencer's part: sequence numbers that count up from 1 and a settable
/// clock. Every command is also logged, so that a twin engine can be rebuilt for comparisons.
struct Scenario {
    config: EngineConfig,
    engine: Engine,
    next_seq: u64,
    ts: u64,
    log: Vec<SequencedCommand>,
}

impl Scenario {
    fn new() -> Self {
        Self::with(default_config())
    }

    fn with(config: EngineConfig) -> Self {
        Scenario {
            engine: Engine::new(config.clone()).expect("the test configuration is valid"),
            config,
            next_seq: 1,
            ts: 1_000,
            log: Vec::new(),
        }
    }

    /// Sets the timestamp of the following commands.
    fn at(&mut self, ts_ns: u64) -> &mut Self {
        self.ts = ts_ns;
        self
    }

    fn sequenced(&self, command: Command) -> SequencedCommand {
        SequencedCommand {
            seq: self.next_seq,
            ts_ns: self.ts,
            command,
        }
    }

    /// Applies a command and returns its events as they are.
    fn raw(&mut self, command: Command) -> Vec<Event> {
        let cmd = self.sequenced(command);
        self.next_seq += 1;
        self.log.push(cmd);
        let mut sink = VecSink::default();
        self.engine.apply(&cmd, &mut sink);
        self.check_consistency();
        sink.events
    }

    /// Applies a command and returns its events rendered as text.
    fn run(&mut self, command: Command) -> Vec<String> {
        self.raw(command).iter().map(render).collect()
    }

    fn submit(&mut self, order: Order) -> Vec<String> {
        self.run(Command::NewOrder(order.0))
    }

    fn submit_raw(&mut self, order: Order) -> Vec<Event> {
        self.raw(Command::NewOrder(order.0))
    }

    /// Submits orders that set up a test; none of them may be rejected.
    fn seed(&mut self, orders: impl IntoIterator<Item = Order>) {
        for order in orders {
            let events = self.submit(order);
            assert!(
                !events.iter().any(|e| e.starts_with("Rejected")),
                "a seed order was rejected: {order:?} -> {events:?}"
            );
        }
    }

    fn cancel(&mut self, account: u32, order_id: u64) -> Vec<String> {
        self.run(Command::Cancel(Cancel {
            order_id: OrderId(order_id),
            account: AccountId(account),
            client_order_id: ClientOrderId(0),
        }))
    }

    fn replace(&mut self, account: u32, order_id: u64, price: i64, qty: u64) -> Vec<String> {
        self.run(Command::Replace(Replace {
            order_id: OrderId(order_id),
            account: AccountId(account),
            client_order_id: ClientOrderId(0),
            price: PriceTicks(price),
            qty: QtyLots(qty),
        }))
    }

    fn mass_cancel(&mut self, instrument: Option<u32>, account: Option<u32>) -> Vec<String> {
        self.run(Command::MassCancel(MassCancel {
            instrument: instrument.map(InstrumentId),
            account: account.map(AccountId),
            client_order_id: ClientOrderId(0),
        }))
    }

    fn set_status(&mut self, instrument: u32, status: InstrumentStatus) -> Vec<String> {
        self.run(Command::SetStatus(SetStatus {
            instrument: InstrumentId(instrument),
            status,
        }))
    }

    fn halt(&mut self, instrument: u32) -> Vec<String> {
        self.set_status(instrument, InstrumentStatus::Halted)
    }

    fn resume(&mut self, instrument: u32) -> Vec<String> {
        self.set_status(instrument, InstrumentStatus::Open)
    }

    fn end_of_day(&mut self) -> Vec<String> {
        self.run(Command::EndOfDay)
    }

    fn tick(&mut self) -> Vec<String> {
        self.run(Command::Tick)
    }

    /// The state hash the engine would have if the next command were a `Tick` (same sequence
    /// number and time): the hash of "this command changed nothing". The hash covers the last
    /// sequence number and timestamp, so comparing with the hash before the command would not
    /// work; a twin engine replays the log instead.
    fn hash_if_next_is_a_no_op(&self) -> u64 {
        let mut twin = Engine::new(self.config.clone()).expect("valid configuration");
        let mut sink = VecSink::default();
        for cmd in &self.log {
            twin.apply(cmd, &mut sink);
        }
        twin.apply(&self.sequenced(Command::Tick), &mut sink);
        twin.state_hash()
    }

    fn book(&self) -> String {
        self.book_of(0)
    }

    fn book_of(&self, instrument: u32) -> String {
        let book = self
            .engine
            .book(InstrumentId(instrument))
            .expect("known instrument");
        let side = |levels: &[ferrox_engine::LevelSnapshot]| {
            if levels.is_empty() {
                return "-".to_string();
            }
            levels
                .iter()
                .map(|l| format!("{}x{}({})", l.price, l.qty_total, l.orders.len()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!("bids: {} | asks: {}", side(&book.bids), side(&book.asks))
    }

    /// The orders of one level of instrument 0 in time priority, as `#id:open`.
    fn queue(&self, side: Side, price: i64) -> String {
        let book = self.engine.book(InstrumentId(0)).expect("instrument 0");
        let levels = match side {
            Side::Buy => &book.bids,
            Side::Sell => &book.asks,
        };
        let level = levels
            .iter()
            .find(|l| l.price == PriceTicks(price))
            .unwrap_or_else(|| panic!("no {side:?} level at {price}"));
        level
            .orders
            .iter()
            .map(|o| format!("#{}:{}", o.order_id, o.qty_open))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks, after every command, what must hold whatever the rules: level totals equal the
    /// sum of their orders, no empty level or order is listed, levels are sorted best first,
    /// the book is not crossed, and the live counters match what the books hold.
    fn check_consistency(&self) {
        let mut orders = 0u64;
        let mut levels = 0u64;
        for i in 0..self.config.instruments.len() {
            let book = self
                .engine
                .book(InstrumentId(i as u32))
                .expect("instrument");
            for (side, list) in [(Side::Buy, &book.bids), (Side::Sell, &book.asks)] {
                for pair in list.windows(2) {
                    let better = match side {
                        Side::Buy => pair[0].price > pair[1].price,
                        Side::Sell => pair[0].price < pair[1].price,
                    };
                    assert!(better, "{side:?} levels out of order: {list:?}");
                }
                for level in list.iter() {
                    assert!(!level.orders.is_empty(), "empty level listed: {level:?}");
                    let sum: u64 = level.orders.iter().map(|o| o.qty_open.0).sum();
                    assert_eq!(sum, level.qty_total.0, "level total: {level:?}");
                    for o in &level.orders {
                        assert!(o.qty_open.0 > 0, "order with nothing open: {o:?}");
                        assert_eq!(o.price, level.price);
                        assert_eq!(o.side, side);
                    }
                    orders += level.orders.len() as u64;
                }
                levels += list.len() as u64;
            }
            if let (Some(bid), Some(ask)) = (book.bids.first(), book.asks.first()) {
                assert!(bid.price < ask.price, "crossed book on instrument {i}");
            }
        }
        assert_eq!(orders, u64::from(self.engine.orders_live()), "orders_live");
        assert_eq!(levels, u64::from(self.engine.levels_live()), "levels_live");
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn level_side(side: Side) -> &'static str {
    match side {
        Side::Buy => "bid",
        Side::Sell => "ask",
    }
}

fn inst(instrument: InstrumentId) -> String {
    if instrument.0 == 0 {
        String::new()
    } else {
        format!(" inst={}", instrument.0)
    }
}

fn filter<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "*".to_string(), |v| v.to_string())
}

/// The compact text of one event; the formats are listed at the top of this file.
fn render(event: &Event) -> String {
    match event {
        Event::Accepted(a) => format!(
            "Accepted #{} {} {}{:?} px={} qty={}{}{}{}",
            a.order_id,
            side_name(a.side),
            if a.order_type == OrderType::Market {
                "market "
            } else {
                ""
            },
            a.tif,
            a.price,
            a.qty,
            if a.expire_ts_ns != 0 {
                format!(" exp={}", a.expire_ts_ns)
            } else {
                String::new()
            },
            if a.post_only { " post_only" } else { "" },
            inst(a.instrument)
        ),
        Event::Rejected(r) => format!(
            "Rejected {:?} {:?}{}{}",
            r.request,
            r.code,
            if r.order_id.0 != 0 {
                format!(" #{}", r.order_id)
            } else {
                String::new()
            },
            inst(r.instrument)
        ),
        Event::Trade(t) => format!(
            "Trade #{} px={} qty={} maker={} taker={} open={}/{}{}",
            t.trade_id,
            t.price,
            t.qty,
            t.maker_order_id,
            t.taker_order_id,
            t.maker_qty_open,
            t.taker_qty_open,
            inst(t.instrument)
        ),
        Event::Rested(r) => format!(
            "Rested #{} {} px={} open={}{}",
            r.order_id,
            side_name(r.side),
            r.price,
            r.qty_open,
            inst(r.instrument)
        ),
        Event::Cancelled(c) => format!(
            "Cancelled #{} {:?} {} px={} qty={}{}",
            c.order_id,
            c.reason,
            side_name(c.side),
            c.price,
            c.qty_cancelled,
            inst(c.instrument)
        ),
        Event::Restated(r) => format!(
            "Restated #{} {} px={} reduced={} open={}{}",
            r.order_id,
            side_name(r.side),
            r.price,
            r.qty_reduced,
            r.qty_open,
            inst(r.instrument)
        ),
        Event::Replaced(r) => format!(
            "Replaced #{} px={}->{} open={}->{} filled={} {}{}",
            r.order_id,
            r.price_old,
            r.price,
            r.qty_open_old,
            r.qty_open,
            r.qty_filled,
            if r.priority_kept { "kept" } else { "moved" },
            inst(r.instrument)
        ),
        Event::Expired(e) => format!(
            "Expired #{} {:?} {} px={} qty={}{}",
            e.order_id,
            e.reason,
            side_name(e.side),
            e.price,
            e.qty_expired,
            inst(e.instrument)
        ),
        Event::BookDelta(d) => format!(
            "Delta {} {}x{} n={}{}",
            level_side(d.side),
            d.price,
            d.qty_total,
            d.order_count,
            inst(d.instrument)
        ),
        Event::StatusChanged(s) => format!("Status {:?}{}", s.status, inst(s.instrument)),
        Event::MassCancelled(m) => format!(
            "MassCancelled inst={} acct={} count={}",
            filter(m.instrument),
            filter(m.account),
            m.count
        ),
        Event::BookChecked(c) => format!(
            "BookChecked orders={} levels={}/{}{}",
            c.orders,
            c.bid_levels,
            c.ask_levels,
            inst(c.instrument)
        ),
    }
}

/// Compares rendered events line by line and prints both lists in full on a mismatch.
#[track_caller]
fn assert_events(actual: Vec<String>, expected: &[&str]) {
    let actual = actual.join("\n");
    let expected = expected.join("\n");
    assert!(
        actual == expected,
        "events differ\n--- actual ---\n{actual}\n--- expected ---\n{expected}\n"
    );
}

/// Asserts that a command was answered by exactly one reject with this code.
#[track_caller]
fn assert_rejected(actual: Vec<String>, request: &str, code: RejectCode) {
    assert_eq!(actual.len(), 1, "expected one reject, got {actual:?}");
    let prefix = format!("Rejected {request} {code:?}");
    assert!(
        actual[0] == prefix || actual[0].starts_with(&format!("{prefix} ")),
        "expected {prefix}, got {actual:?}"
    );
}

fn only_trade(events: &[Event]) -> Trade {
    let trades: Vec<Trade> = events
        .iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 1, "expected one trade in {events:?}");
    trades[0]
}

fn only_reject(events: &[Event]) -> Rejected {
    match events {
        [Event::Rejected(r)] => *r,
        other => panic!("expected one reject, got {other:?}"),
    }
}

// ----- price-time priority and matching --------------------------------------------------------

#[test]
fn orders_at_one_level_fill_in_time_priority() {
    let mut s = Scenario::new();
    s.seed([sell(1, 101, 5), sell(2, 101, 5), sell(3, 101, 5)]);
    assert_events(
        s.submit(buy(4, 101, 7)),
        &[
            "Accepted #4 buy Gtc px=101 qty=7",
            "Trade #1 px=101 qty=5 maker=1 taker=4 open=0/2",
            "Trade #2 px=101 qty=2 maker=2 taker=4 open=3/0",
            "Delta ask 101x8 n=2",
        ],
    );
    assert_eq!(s.book(), "bids: - | asks: 101x8(2)");
    assert_eq!(s.queue(Side::Sell, 101), "#2:3 #3:5");
}

#[test]
fn resting_order_joins_the_back_of_its_level() {
    let mut s = Scenario::new();
    assert_events(
        s.submit(buy(1, 100, 5)),
        &[
            "Accepted #1 buy Gtc px=100 qty=5",
            "Rested #1 buy px=100 open=5",
            "Delta bid 100x5 n=1",
        ],
    );
    assert_events(
        s.submit(buy(2, 100, 3)),
        &[
            "Accepted #2 buy Gtc px=100 qty=3",
            "Rested #2 buy px=100 open=3",
            "Delta bid 100x8 n=2",
        ],
    );
    assert_eq!(s.book(), "bids: 100x8(2) | asks: -");
    assert_eq!(s.queue(Side::Buy, 100), "#1:5 #2:3");
}

#[test]
fn trades_execute_at_the_resting_orders_price() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 5).cl(11)]);
    let events = s.submit_raw(buy(2, 105, 5).cl(22));
    // Every field of the trade, once, so that the text rendering can be trusted elsewhere.
    assert_eq!(
        only_trade(&events),
        Trade {
            trade_id: TradeId(1),
            instrument: InstrumentId(0),
            price: PriceTicks(100),
            qty: QtyLots(5),
            aggressor_side: Side::Buy,
            maker_order_id: OrderId(1),
            maker_account: AccountId(1),
            maker_client_order_id: ClientOrderId(11),
            maker_qty_open: QtyLots(0),
            taker_order_id: OrderId(2),
            taker_account: AccountId(2),
            taker_client_order_id: ClientOrderId(22),
            taker_qty_open: QtyLots(0),
        }
    );
    // The same holds for a selling aggressor: it gets the resting bid's higher price.
    s.seed([buy(1, 100, 5)]);
    let events = s.submit_raw(sell(2, 90, 5));
    let trade = only_trade(&events);
    assert_eq!(trade.price, PriceTicks(100));
    assert_eq!(trade.aggressor_side, Side::Sell);
    assert_events(
        events.iter().map(render).collect(),
        &[
            "Accepted #4 sell Gtc px=90 qty=5",
            "Trade #2 px=100 qty=5 maker=3 taker=4 open=0/0",
            "Delta bid 100x0 n=0",
        ],
    );
}

#[test]
fn sweep_takes_levels_best_first_and_stops_at_the_limit() {
    let mut s = Scenario::new();
    s.seed([
        sell(1, 101, 2),
        sell(2, 102, 3),
        sell(3, 103, 4),
        sell(4, 104, 5),
    ]);
    assert_events(
        s.submit(buy(9, 103, 20)),
        &[
            "Accepted #5 buy Gtc px=103 qty=20",
            "Trade #1 px=101 qty=2 maker=1 taker=5 open=0/18",
            "Delta ask 101x0 n=0",
            "Trade #2 px=102 qty=3 maker=2 taker=5 open=0/15",
            "Delta ask 102x0 n=0",
            "Trade #3 px=103 qty=4 maker=3 taker=5 open=0/11",
            "Delta ask 103x0 n=0",
            "Rested #5 buy px=103 open=11",
            "Delta bid 103x11 n=1",
        ],
    );
    assert_eq!(s.book(), "bids: 103x11(1) | asks: 104x5(1)");
}

#[test]
fn partial_fill_rests_the_remainder_and_records_the_filled_quantity() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3)]);
    assert_events(
        s.submit(buy(2, 100, 10)),
        &[
            "Accepted #2 buy Gtc px=100 qty=10",
            "Trade #1 px=100 qty=3 maker=1 taker=2 open=0/7",
            "Delta ask 100x0 n=0",
            "Rested #2 buy px=100 open=7",
            "Delta bid 100x7 n=1",
        ],
    );
    let o = s.engine.order(OrderId(2)).expect("#2 rests");
    assert_eq!((o.qty_open, o.qty_filled), (QtyLots(7), QtyLots(3)));
    // Now #2 is the maker and is filled partially in turn.
    assert_events(
        s.submit(sell(3, 100, 2)),
        &[
            "Accepted #3 sell Gtc px=100 qty=2",
            "Trade #2 px=100 qty=2 maker=2 taker=3 open=5/0",
            "Delta bid 100x5 n=1",
        ],
    );
    let o = s.engine.order(OrderId(2)).expect("#2 rests");
    assert_eq!((o.qty_open, o.qty_filled), (QtyLots(5), QtyLots(5)));
}

#[test]
fn book_delta_follows_each_touched_level_once_with_its_new_totals() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 2), sell(2, 100, 3), sell(3, 101, 4)]);
    // One delta per level, after the level's trades; the last level is left partly taken.
    assert_events(
        s.submit(buy(9, 101, 6)),
        &[
            "Accepted #4 buy Gtc px=101 qty=6",
            "Trade #1 px=100 qty=2 maker=1 taker=4 open=0/4",
            "Trade #2 px=100 qty=3 maker=2 taker=4 open=0/1",
            "Delta ask 100x0 n=0",
            "Trade #3 px=101 qty=1 maker=3 taker=4 open=3/0",
            "Delta ask 101x3 n=1",
        ],
    );
    assert_eq!(s.book(), "bids: - | asks: 101x3(1)");
}

// ----- IOC and FOK ---------------------------------------------------------------------------------

#[test]
fn ioc_remainder_is_cancelled_and_never_rests() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3)]);
    assert_events(
        s.submit(buy(2, 100, 5).ioc()),
        &[
            "Accepted #2 buy Ioc px=100 qty=5",
            "Trade #1 px=100 qty=3 maker=1 taker=2 open=0/2",
            "Delta ask 100x0 n=0",
            "Cancelled #2 IocRemainder buy px=100 qty=2",
        ],
    );
    assert_eq!(s.book(), "bids: - | asks: -");
    assert_eq!(s.engine.order(OrderId(2)), None);
    assert_eq!(s.engine.orders_live(), 0);
}

#[test]
fn ioc_without_crossing_liquidity_is_cancelled_whole() {
    let mut s = Scenario::new();
    s.seed([buy(1, 99, 5)]);
    assert_events(
        s.submit(sell(2, 100, 4).ioc()),
        &[
            "Accepted #2 sell Ioc px=100 qty=4",
            "Cancelled #2 IocRemainder sell px=100 qty=4",
        ],
    );
    assert_eq!(s.book(), "bids: 99x5(1) | asks: -");
}

#[test]
fn fok_fills_completely_across_levels() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3), sell(2, 101, 3)]);
    assert_events(
        s.submit(buy(9, 101, 5).fok()),
        &[
            "Accepted #3 buy Fok px=101 qty=5",
            "Trade #1 px=100 qty=3 maker=1 taker=3 open=0/2",
            "Delta ask 100x0 n=0",
            "Trade #2 px=101 qty=2 maker=2 taker=3 open=1/0",
            "Delta ask 101x1 n=1",
        ],
    );
    // Exactly the available quantity is enough.
    assert_events(
        s.submit(buy(9, 101, 1).fok()),
        &[
            "Accepted #4 buy Fok px=101 qty=1",
            "Trade #3 px=101 qty=1 maker=2 taker=4 open=0/0",
            "Delta ask 101x0 n=0",
        ],
    );
}

#[test]
fn fok_that_cannot_fill_has_no_side_effects() {
    let mut s = Scenario::new();
    // 6 lots within the limit of 101, and 10 more beyond it that must not count.
    s.seed([sell(1, 100, 3), sell(2, 101, 3), sell(3, 102, 10)]);
    let book_before = s.engine.book(InstrumentId(0));
    let no_op = s.hash_if_next_is_a_no_op();
    assert_events(
        s.submit(buy(9, 101, 7).fok()),
        &[
            "Accepted #4 buy Fok px=101 qty=7",
            "Cancelled #4 FokUnfillable buy px=101 qty=7",
        ],
    );
    assert_eq!(s.engine.book(InstrumentId(0)), book_before);
    assert_eq!(s.engine.state_hash(), no_op);
    assert_eq!(s.engine.next_trade_id(), 1, "no trade id was used");
    assert_eq!(
        s.engine.reference_price(InstrumentId(0)),
        Some(PriceTicks(100))
    );
}

#[test]
fn fok_stops_counting_at_an_own_order_it_would_stop_at() {
    // Own liquidity sits between two foreign orders. Modes that stop the taker at an own order
    // only see the 3 lots in front of it, so a FOK for 5 is unfillable and nothing happens.
    for mode in [
        StpMode::CancelAggressor,
        StpMode::CancelBoth,
        StpMode::DecrementCancel,
    ] {
        let mut s = Scenario::new();
        s.seed([sell(2, 100, 3), sell(1, 100, 3), sell(2, 100, 3)]);
        let no_op = s.hash_if_next_is_a_no_op();
        assert_events(
            s.submit(buy(1, 100, 5).fok().stp(mode)),
            &[
                "Accepted #4 buy Fok px=100 qty=5",
                "Cancelled #4 FokUnfillable buy px=100 qty=5",
            ],
        );
        assert_eq!(s.book(), "bids: - | asks: 100x9(3)", "{mode:?}");
        assert_eq!(s.engine.state_hash(), no_op, "{mode:?}");
    }
}

#[test]
fn fok_skips_own_orders_it_would_cancel_and_fills_past_them() {
    let mut s = Scenario::new();
    s.seed([sell(2, 100, 3), sell(1, 100, 3), sell(2, 100, 3)]);
    // CancelResting skips the own order when counting (3 + 3 >= 5) and cancels it on the way.
    assert_events(
        s.submit(buy(1, 100, 5).fok()),
        &[
            "Accepted #4 buy Fok px=100 qty=5",
            "Trade #1 px=100 qty=3 maker=1 taker=4 open=0/2",
            "Cancelled #2 SelfTradeResting sell px=100 qty=3",
            "Trade #2 px=100 qty=2 maker=3 taker=4 open=1/0",
            "Delta ask 100x1 n=1",
        ],
    );
}

#[test]
fn unfillable_fok_leaves_own_orders_it_would_cancel_alone() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3)]);
    let no_op = s.hash_if_next_is_a_no_op();
    assert_events(
        s.submit(buy(1, 100, 3).fok()),
        &[
            "Accepted #2 buy Fok px=100 qty=3",
            "Cancelled #2 FokUnfillable buy px=100 qty=3",
        ],
    );
    assert_eq!(s.book(), "bids: - | asks: 100x3(1)");
    assert_eq!(s.engine.state_hash(), no_op);
}

#[test]
fn fok_with_stp_off_counts_own_orders_as_liquidity() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3), sell(2, 100, 2)]);
    assert_events(
        s.submit(buy(1, 100, 5).fok().stp(StpMode::Off)),
        &[
            "Accepted #3 buy Fok px=100 qty=5",
            "Trade #1 px=100 qty=3 maker=1 taker=3 open=0/2",
            "Trade #2 px=100 qty=2 maker=2 taker=3 open=0/0",
            "Delta ask 100x0 n=0",
        ],
    );
}

#[test]
fn fok_fills_when_the_liquidity_before_an_own_order_suffices() {
    let mut s = Scenario::new();
    s.seed([sell(2, 100, 3), sell(1, 100, 3)]);
    assert_events(
        s.submit(buy(1, 100, 3).fok().stp(StpMode::DecrementCancel)),
        &[
            "Accepted #3 buy Fok px=100 qty=3",
            "Trade #1 px=100 qty=3 maker=1 taker=3 open=0/0",
            "Delta ask 100x3 n=1",
        ],
    );
    assert_eq!(s.queue(Side::Sell, 100), "#2:3");
}

// ----- market orders -------------------------------------------------------------------------------

#[test]
fn market_buy_trades_within_the_band_and_reports_the_upper_edge_as_its_price() {
    let mut s = Scenario::new();
    assert_eq!(
        s.engine.price_band(InstrumentId(0)),
        Some((PriceTicks(50), PriceTicks(150)))
    );
    s.seed([sell(1, 110, 2), sell(2, 140, 3)]);
    assert_events(
        s.submit(market_buy(9, 4)),
        &[
            "Accepted #3 buy market Ioc px=150 qty=4",
            "Trade #1 px=110 qty=2 maker=1 taker=3 open=0/2",
            "Delta ask 110x0 n=0",
            "Trade #2 px=140 qty=2 maker=2 taker=3 open=1/0",
            "Delta ask 140x1 n=1",
        ],
    );
    // The band now centres on the last trade price: 140 ± 70.
    assert_eq!(
        s.engine.price_band(InstrumentId(0)),
        Some((PriceTicks(70), PriceTicks(210)))
    );
}

#[test]
fn market_sell_reports_the_lower_band_edge_as_its_price() {
    let mut s = Scenario::new();
    s.seed([buy(1, 60, 2)]);
    assert_events(
        s.submit(market_sell(9, 2)),
        &[
            "Accepted #2 sell market Ioc px=50 qty=2",
            "Trade #1 px=60 qty=2 maker=1 taker=2 open=0/0",
            "Delta bid 60x0 n=0",
        ],
    );
}

#[test]
fn market_order_stops_at_the_band_edge_with_market_price_band() {
    let mut spec = InstrumentSpec::simple("T", 100);
    spec.price_band = PriceBand::Ticks(10);
    let mut s = Scenario::with(single(spec));
    // An ask at 110 is inside the first band (90..=110); a trade at 95 then moves the band to
    // 85..=105, which leaves the ask beyond the edge.
    s.seed([sell(1, 110, 2), buy(2, 95, 1), sell(3, 95, 1)]);
    assert_eq!(
        s.engine.price_band(InstrumentId(0)),
        Some((PriceTicks(85), PriceTicks(105)))
    );
    s.seed([sell(1, 104, 2)]);
    // A market FOK counts only what lies within the band: 2 lots, not the 2 more at 110.
    assert_events(
        s.submit(market_buy(9, 3).fok()),
        &[
            "Accepted #5 buy market Fok px=105 qty=3",
            "Cancelled #5 FokUnfillable buy px=105 qty=3",
        ],
    );
    assert_events(
        s.submit(market_buy(9, 5)),
        &[
            "Accepted #6 buy market Ioc px=105 qty=5",
            "Trade #2 px=104 qty=2 maker=4 taker=6 open=0/3",
            "Delta ask 104x0 n=0",
            "Cancelled #6 MarketPriceBand buy px=105 qty=3",
        ],
    );
    assert_eq!(s.book(), "bids: - | asks: 110x2(1)");
}

#[test]
fn self_trade_stop_takes_precedence_over_ioc_and_market_rest_reasons() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 2)]);
    assert_events(
        s.submit(market_buy(1, 5).stp(StpMode::CancelAggressor)),
        &[
            "Accepted #2 buy market Ioc px=150 qty=5",
            "Cancelled #2 SelfTradeAggressor buy px=150 qty=5",
        ],
    );
    assert_events(
        s.submit(buy(1, 100, 5).ioc().stp(StpMode::CancelBoth)),
        &[
            "Accepted #3 buy Ioc px=100 qty=5",
            "Cancelled #1 SelfTradeResting sell px=100 qty=2",
            "Delta ask 100x0 n=0",
            "Cancelled #3 SelfTradeAggressor buy px=100 qty=5",
        ],
    );
}

#[test]
fn market_order_on_an_empty_side_is_cancelled_for_no_liquidity() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 5)]);
    assert_events(
        s.submit(market_sell(2, 5)),
        &[
            "Accepted #2 sell market Ioc px=50 qty=5",
            "Cancelled #2 MarketNoLiquidity sell px=50 qty=5",
        ],
    );
}

#[test]
fn market_order_that_empties_the_side_is_cancelled_for_no_liquidity() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 2)]);
    assert_events(
        s.submit(market_buy(2, 5)),
        &[
            "Accepted #2 buy market Ioc px=150 qty=5",
            "Trade #1 px=100 qty=2 maker=1 taker=2 open=0/3",
            "Delta ask 100x0 n=0",
            "Cancelled #2 MarketNoLiquidity buy px=150 qty=3",
        ],
    );
}

#[test]
fn market_order_ignores_its_price_field() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 1)]);
    // A limit order with these prices would be rejected; a market order has no limit price.
    for (account, price) in [(2, i64::MIN), (3, 0), (4, 7)] {
        let mut order = market_buy(account, 1);
        order.0.price = PriceTicks(price);
        let events = s.submit(order);
        assert!(events[0].starts_with("Accepted"), "{price}: {events:?}");
    }
}

#[test]
fn market_order_with_a_resting_time_in_force_is_rejected() {
    let mut s = Scenario::new();
    for order in [
        market_buy(1, 5).tif(TimeInForce::Gtc),
        market_buy(1, 5).day(),
        market_sell(1, 5).gtd(5_000),
    ] {
        assert_rejected(s.submit(order), "NewOrder", RejectCode::InvalidOrderType);
    }
    assert_eq!(s.engine.orders_live(), 0);
}

#[test]
fn market_fok_fills_completely_within_the_band_or_not_at_all() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 2)]);
    assert_events(
        s.submit(market_buy(2, 3).fok()),
        &[
            "Accepted #2 buy market Fok px=150 qty=3",
            "Cancelled #2 FokUnfillable buy px=150 qty=3",
        ],
    );
    assert_events(
        s.submit(market_buy(2, 2).fok()),
        &[
            "Accepted #3 buy market Fok px=150 qty=2",
            "Trade #1 px=100 qty=2 maker=1 taker=3 open=0/0",
            "Delta ask 100x0 n=0",
        ],
    );
}

#[test]
fn post_only_cannot_combine_with_market_ioc_or_fok() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 5)]);
    for order in [
        market_buy(2, 1).post_only(),
        market_buy(2, 1).fok().post_only(),
        buy(2, 90, 1).ioc().post_only(),
        buy(2, 90, 1).fok().post_only(),
    ] {
        assert_rejected(s.submit(order), "NewOrder", RejectCode::InvalidOrderType);
    }
    assert_eq!(s.book(), "bids: - | asks: 100x5(1)");
}

// ----- price band ------------------------------------------------------------------------------------

#[test]
fn bps_band_is_inclusive_at_both_edges_for_both_sides() {
    let mut s = Scenario::new();
    assert_events(
        s.submit(buy(1, 50, 1)),
        &[
            "Accepted #1 buy Gtc px=50 qty=1",
            "Rested #1 buy px=50 open=1",
            "Delta bid 50x1 n=1",
        ],
    );
    assert_rejected(
        s.submit(buy(1, 49, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    assert_rejected(
        s.submit(buy(1, 151, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    s.seed([sell(1, 150, 1)]);
    assert_rejected(
        s.submit(sell(1, 151, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    assert_rejected(
        s.submit(sell(1, 49, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    assert_eq!(s.book(), "bids: 50x1(1) | asks: 150x1(1)");
}

#[test]
fn bps_band_width_is_rounded_down() {
    // 101 * 333 / 10 000 = 3.36, so the band is 98..=104.
    let mut spec = InstrumentSpec::simple("T", 101);
    spec.price_band = PriceBand::Bps(333);
    let mut s = Scenario::with(single(spec));
    assert_eq!(
        s.engine.price_band(InstrumentId(0)),
        Some((PriceTicks(98), PriceTicks(104)))
    );
    assert_rejected(
        s.submit(buy(1, 97, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    assert_rejected(
        s.submit(sell(1, 105, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    s.seed([buy(1, 98, 1), sell(1, 104, 1)]);
}

#[test]
fn ticks_band_is_a_fixed_distance_from_the_reference() {
    let mut spec = InstrumentSpec::simple("T", 1_000);
    spec.tick_size = PriceTicks(5);
    spec.price_band = PriceBand::Ticks(50);
    let mut s = Scenario::with(single(spec));
    assert_eq!(
        s.engine.price_band(InstrumentId(0)),
        Some((PriceTicks(950), PriceTicks(1_050)))
    );
    s.seed([buy(1, 950, 1), sell(1, 1_050, 1)]);
    assert_rejected(
        s.submit(buy(1, 945, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    assert_rejected(
        s.submit(sell(1, 1_055, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    // The tick check comes before the band check.
    assert_rejected(
        s.submit(sell(1, 1_051, 1)),
        "NewOrder",
        RejectCode::PriceOffTick,
    );
}

#[test]
fn reference_follows_the_last_trade_price_of_each_command() {
    let mut spec = InstrumentSpec::simple("T", 100);
    spec.price_band = PriceBand::Bps(1_000);
    let mut s = Scenario::with(single(spec));
    assert_eq!(
        s.engine.book(InstrumentId(0)).unwrap().last_trade_price,
        None
    );
    s.seed([sell(1, 100, 1), sell(1, 104, 1)]);
    // One command trades at 100 and then at 104: the reference is the last of them.
    s.seed([buy(2, 104, 2)]);
    assert_eq!(
        s.engine.reference_price(InstrumentId(0)),
        Some(PriceTicks(104))
    );
    assert_eq!(
        s.engine.book(InstrumentId(0)).unwrap().last_trade_price,
        Some(PriceTicks(104))
    );
    // 104 * 10% = 10.4, rounded down to 10.
    assert_eq!(
        s.engine.price_band(InstrumentId(0)),
        Some((PriceTicks(94), PriceTicks(114)))
    );
    assert_rejected(
        s.submit(sell(3, 93, 1)),
        "NewOrder",
        RejectCode::PriceOutsideBand,
    );
    s.seed([buy(3, 94, 1), sell(5, 110, 1)]);
    // A trade made by a replace moves the reference too.
    assert_events(
        s.replace(3, 5, 110, 1),
        &[
            "Replaced #5 px=94->110 open=1->1 filled=0 moved",
            "Delta bid 94x0 n=0",
            "Trade #3 px=110 qty=1 maker=6 taker=5 open=0/0",
            "Delta ask 110x0 n=0",
        ],
    );
    assert_eq!(
        s.engine.reference_price(InstrumentId(0)),
        Some(PriceTicks(110))
    );
    assert_eq!(
        s.engine.price_band(InstrumentId(0)),
        Some((PriceTicks(99), PriceTicks(121)))
    );
}

#[test]
fn replace_keeping_a_price_now_outside_the_band_is_allowed() {
    let mut spec = InstrumentSpec::simple("T", 100);
    spec.price_band = PriceBand::Bps(1_000);
    let mut s = Scenario::with(single(spec));
    s.seed([buy(1, 90, 5), sell(2, 110, 1), buy(3, 110, 1)]);
    // The trade at 110 moved the band to 99..=121, leaving #1 at 90 outside it.
    assert_events(
        s.replace(1, 1, 90, 3),
        &[
            "Replaced #1 px=90->90 open=5->3 filled=0 kept",
            "Delta bid 90x3 n=1",
        ],
    );
    assert_events(
        s.replace(1, 1, 90, 6),
        &[
            "Replaced #1 px=90->90 open=3->6 filled=0 moved",
            "Delta bid 90x0 n=0",
            "Rested #1 buy px=90 open=6",
            "Delta bid 90x6 n=1",
        ],
    );
    assert_rejected(
        s.replace(1, 1, 91, 6),
        "Replace",
        RejectCode::PriceOutsideBand,
    );
}

// ----- post-only ---------------------------------------------------------------------------------------

#[test]
fn post_only_is_rejected_when_it_would_take() {
    let mut s = Scenario::new();
    s.seed([sell(1, 101, 5), buy(2, 99, 5)]);
    let no_op = s.hash_if_next_is_a_no_op();
    assert_rejected(
        s.submit(buy(3, 101, 1).post_only()),
        "NewOrder",
        RejectCode::PostOnlyWouldTake,
    );
    assert_eq!(s.engine.state_hash(), no_op);
    for order in [
        buy(3, 102, 1).post_only(),
        sell(3, 99, 1).post_only(),
        sell(3, 98, 1).post_only().day(),
    ] {
        assert_rejected(s.submit(order), "NewOrder", RejectCode::PostOnlyWouldTake);
    }
    assert_eq!(s.book(), "bids: 99x5(1) | asks: 101x5(1)");
}

#[test]
fn post_only_rests_when_it_would_not_take() {
    let mut s = Scenario::new();
    s.seed([sell(1, 101, 5), buy(2, 99, 5)]);
    assert_events(
        s.submit(buy(3, 100, 2).post_only()),
        &[
            "Accepted #3 buy Gtc px=100 qty=2 post_only",
            "Rested #3 buy px=100 open=2",
            "Delta bid 100x2 n=1",
        ],
    );
    assert_events(
        s.submit(sell(3, 101, 1).post_only()),
        &[
            "Accepted #4 sell Gtc px=101 qty=1 post_only",
            "Rested #4 sell px=101 open=1",
            "Delta ask 101x6 n=2",
        ],
    );
    assert!(s.engine.order(OrderId(3)).unwrap().post_only);
}

// ----- DAY and GTD -----------------------------------------------------------------------------------

#[test]
fn end_of_day_expires_day_orders_only_in_book_order() {
    let mut s = Scenario::new();
    s.seed([
        buy(1, 100, 1),
        buy(2, 100, 2).day(),
        buy(3, 99, 3).day(),
        sell(4, 101, 4).day(),
        sell(5, 102, 1).gtd(10_000),
        sell(6, 101, 5),
    ]);
    assert_events(
        s.end_of_day(),
        &[
            "Expired #2 EndOfDay buy px=100 qty=2",
            "Delta bid 100x1 n=1",
            "Expired #3 EndOfDay buy px=99 qty=3",
            "Delta bid 99x0 n=0",
            "Expired #4 EndOfDay sell px=101 qty=4",
            "Delta ask 101x5 n=1",
        ],
    );
    assert_eq!(s.book(), "bids: 100x1(1) | asks: 101x5(1) 102x1(1)");
    assert_events(s.end_of_day(), &[]);
}

#[test]
fn end_of_day_walks_instruments_in_id_order() {
    let mut s = Scenario::new();
    s.seed([sell(1, 1_001, 1).day().on(1), buy(1, 100, 1).day()]);
    assert_events(
        s.end_of_day(),
        &[
            "Expired #2 EndOfDay buy px=100 qty=1",
            "Delta bid 100x0 n=0",
            "Expired #1 EndOfDay sell px=1001 qty=1 inst=1",
            "Delta ask 1001x0 n=0 inst=1",
        ],
    );
}

#[test]
fn gtd_expires_exactly_when_a_command_timestamp_reaches_it() {
    let mut s = Scenario::new();
    s.seed([
        buy(1, 100, 1).gtd(3_000),
        buy(2, 99, 1).gtd(2_000),
        buy(3, 100, 1).gtd(2_000),
    ]);
    assert_events(s.at(1_999).tick(), &[]);
    // Equal expiry times expire in order id order.
    assert_events(
        s.at(2_000).tick(),
        &[
            "Expired #2 GoodTillDate buy px=99 qty=1",
            "Delta bid 99x0 n=0",
            "Expired #3 GoodTillDate buy px=100 qty=1",
            "Delta bid 100x1 n=1",
        ],
    );
    // Expiry comes before the command, so this sell cannot trade with the expiring bid.
    assert_events(
        s.at(3_000).submit(sell(4, 100, 1)),
        &[
            "Expired #1 GoodTillDate buy px=100 qty=1",
            "Delta bid 100x0 n=0",
            "Accepted #6 sell Gtc px=100 qty=1",
            "Rested #6 sell px=100 open=1",
            "Delta ask 100x1 n=1",
        ],
    );
    assert!(s.engine.gtd_orders().is_empty());
}

#[test]
fn gtd_expiry_runs_before_every_kind_of_command() {
    let commands = [
        Command::Tick,
        Command::EndOfDay,
        Command::NewOrder(sell(2, 101, 1).0),
        Command::Cancel(Cancel {
            order_id: OrderId(1),
            account: AccountId(1),
            client_order_id: ClientOrderId(0),
        }),
        Command::Replace(Replace {
            order_id: OrderId(1),
            account: AccountId(1),
            client_order_id: ClientOrderId(0),
            price: PriceTicks(99),
            qty: QtyLots(1),
        }),
        Command::MassCancel(MassCancel {
            instrument: None,
            account: None,
            client_order_id: ClientOrderId(0),
        }),
        Command::SetStatus(SetStatus {
            instrument: InstrumentId(0),
            status: InstrumentStatus::Halted,
        }),
    ];
    let rest: [&[&str]; 7] = [
        &[],
        &[],
        &[
            "Accepted #2 sell Gtc px=101 qty=1",
            "Rested #2 sell px=101 open=1",
            "Delta ask 101x1 n=1",
        ],
        // The order is already gone when the cancel or replace looks for it.
        &["Rejected Cancel UnknownOrder #1"],
        &["Rejected Replace UnknownOrder #1"],
        &["MassCancelled inst=* acct=* count=0"],
        &["Status Halted"],
    ];
    for (command, rest) in commands.into_iter().zip(rest) {
        let mut s = Scenario::new();
        s.seed([buy(1, 100, 1).gtd(2_000)]);
        let mut expected = vec![
            "Expired #1 GoodTillDate buy px=100 qty=1",
            "Delta bid 100x0 n=0",
        ];
        expected.extend_from_slice(rest);
        assert_events(s.at(2_000).run(command), &expected);
    }
}

#[test]
fn gtd_with_an_expiry_not_in_the_future_is_rejected() {
    let mut s = Scenario::new();
    s.at(1_000);
    for expire in [0, 999, 1_000] {
        assert_rejected(
            s.submit(buy(1, 100, 1).gtd(expire)),
            "NewOrder",
            RejectCode::InvalidExpiry,
        );
    }
    assert_events(
        s.submit(buy(1, 100, 1).gtd(1_001)),
        &[
            "Accepted #4 buy Gtd px=100 qty=1 exp=1001",
            "Rested #4 buy px=100 open=1",
            "Delta bid 100x1 n=1",
        ],
    );
}

#[test]
fn expiry_on_an_order_that_is_not_gtd_is_rejected() {
    let mut s = Scenario::new();
    for order in [
        buy(1, 100, 1).expire(5_000),
        buy(1, 100, 1).day().expire(5_000),
        buy(1, 100, 1).ioc().expire(5_000),
        buy(1, 100, 1).fok().expire(5_000),
        market_buy(1, 1).expire(5_000),
    ] {
        assert_rejected(s.submit(order), "NewOrder", RejectCode::InvalidExpiry);
    }
}

#[test]
fn gtd_order_expires_with_its_remaining_open_quantity() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 5).gtd(2_000), buy(2, 100, 2)]);
    assert_events(
        s.at(2_000).tick(),
        &[
            "Expired #1 GoodTillDate sell px=100 qty=3",
            "Delta ask 100x0 n=0",
        ],
    );
}

#[test]
fn gtd_order_that_left_the_book_early_does_not_expire_later() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 1).gtd(2_000)]);
    s.cancel(1, 1);
    s.seed([buy(1, 100, 1).gtd(3_000), sell(2, 100, 1)]);
    assert_events(s.at(3_000).tick(), &[]);
    assert_eq!(s.engine.orders_live(), 0);
}

#[test]
fn replaced_gtd_order_keeps_its_expiry() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 2).gtd(2_000)]);
    s.replace(1, 1, 101, 3);
    assert_events(
        s.at(2_000).tick(),
        &[
            "Expired #1 GoodTillDate buy px=101 qty=3",
            "Delta bid 101x0 n=0",
        ],
    );
}

// ----- cancel ------------------------------------------------------------------------------------------

#[test]
fn cancel_by_owner_removes_the_order_and_reports_its_level() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5), buy(2, 100, 3)]);
    assert_events(
        s.cancel(1, 1),
        &[
            "Cancelled #1 Requested buy px=100 qty=5",
            "Delta bid 100x3 n=1",
        ],
    );
    assert_events(
        s.cancel(2, 2),
        &[
            "Cancelled #2 Requested buy px=100 qty=3",
            "Delta bid 100x0 n=0",
        ],
    );
    assert_eq!(s.book(), "bids: - | asks: -");
    assert_eq!(s.engine.levels_live(), 0);
}

#[test]
fn cancel_of_an_unknown_or_finished_order_is_rejected() {
    let mut s = Scenario::new();
    assert_events(s.cancel(1, 99), &["Rejected Cancel UnknownOrder #99"]);
    // Filled, already cancelled, and never rested (IOC) orders are all unknown.
    s.seed([sell(1, 100, 1), buy(2, 100, 1)]);
    assert_events(s.cancel(1, 2), &["Rejected Cancel UnknownOrder #2"]);
    s.seed([buy(1, 100, 1)]);
    s.cancel(1, 5);
    assert_events(s.cancel(1, 5), &["Rejected Cancel UnknownOrder #5"]);
    s.seed([buy(1, 100, 1).ioc()]);
    assert_events(s.cancel(1, 8), &["Rejected Cancel UnknownOrder #8"]);
}

#[test]
fn cancel_of_another_accounts_order_is_indistinguishable_from_unknown() {
    let mut s = Scenario::new();
    s.seed([buy(1, 1_000, 5).on(1)]);
    let cancel = |order_id: u64| {
        Command::Cancel(Cancel {
            order_id: OrderId(order_id),
            account: AccountId(2),
            client_order_id: ClientOrderId(77),
        })
    };
    let foreign = only_reject(&s.raw(cancel(1)));
    let unknown = only_reject(&s.raw(cancel(42)));
    let expected = |order_id| Rejected {
        request: RequestKind::Cancel,
        code: RejectCode::UnknownOrder,
        instrument: InstrumentId(0),
        account: AccountId(2),
        client_order_id: ClientOrderId(77),
        order_id: OrderId(order_id),
    };
    assert_eq!(foreign, expected(1));
    assert_eq!(unknown, expected(42));
    assert_eq!(s.book_of(1), "bids: 1000x5(1) | asks: -");
}

#[test]
fn cancel_is_allowed_while_halted() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5)]);
    assert_events(s.halt(0), &["Status Halted"]);
    assert_events(
        s.cancel(1, 1),
        &[
            "Cancelled #1 Requested buy px=100 qty=5",
            "Delta bid 100x0 n=0",
        ],
    );
}

// ----- replace -----------------------------------------------------------------------------------------

#[test]
fn replace_reducing_quantity_keeps_time_priority() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5), buy(2, 100, 5)]);
    assert_events(
        s.replace(1, 1, 100, 3),
        &[
            "Replaced #1 px=100->100 open=5->3 filled=0 kept",
            "Delta bid 100x8 n=2",
        ],
    );
    assert_eq!(s.queue(Side::Buy, 100), "#1:3 #2:5");
    let trade = only_trade(&s.submit_raw(sell(3, 100, 3)));
    assert_eq!(trade.maker_order_id, OrderId(1));
}

#[test]
fn replace_increasing_quantity_loses_time_priority() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5), buy(2, 100, 5)]);
    assert_events(
        s.replace(1, 1, 100, 7),
        &[
            "Replaced #1 px=100->100 open=5->7 filled=0 moved",
            "Delta bid 100x5 n=1",
            "Rested #1 buy px=100 open=7",
            "Delta bid 100x12 n=2",
        ],
    );
    assert_eq!(s.queue(Side::Buy, 100), "#2:5 #1:7");
}

#[test]
fn replace_changing_price_loses_time_priority() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5), buy(2, 101, 5)]);
    assert_events(
        s.replace(1, 1, 101, 5),
        &[
            "Replaced #1 px=100->101 open=5->5 filled=0 moved",
            "Delta bid 100x0 n=0",
            "Rested #1 buy px=101 open=5",
            "Delta bid 101x10 n=2",
        ],
    );
    assert_eq!(s.queue(Side::Buy, 101), "#2:5 #1:5");
    // A price change loses priority even when the quantity goes down.
    s.seed([buy(3, 99, 5)]);
    assert_events(
        s.replace(1, 1, 99, 2),
        &[
            "Replaced #1 px=101->99 open=5->2 filled=0 moved",
            "Delta bid 101x5 n=1",
            "Rested #1 buy px=99 open=2",
            "Delta bid 99x7 n=2",
        ],
    );
    assert_eq!(s.queue(Side::Buy, 99), "#4:5 #1:2");
}

#[test]
fn replace_that_crosses_trades_immediately_and_rests_the_rest() {
    let mut s = Scenario::new();
    s.seed([sell(1, 102, 3), buy(2, 100, 5)]);
    assert_events(
        s.replace(2, 2, 102, 5),
        &[
            "Replaced #2 px=100->102 open=5->5 filled=0 moved",
            "Delta bid 100x0 n=0",
            "Trade #1 px=102 qty=3 maker=1 taker=2 open=0/2",
            "Delta ask 102x0 n=0",
            "Rested #2 buy px=102 open=2",
            "Delta bid 102x2 n=1",
        ],
    );
    let o = s.engine.order(OrderId(2)).expect("#2 rests");
    assert_eq!(
        (o.price, o.qty_open, o.qty_filled),
        (PriceTicks(102), QtyLots(2), QtyLots(3))
    );
}

#[test]
fn replace_that_fills_completely_leaves_nothing_resting() {
    let mut s = Scenario::new();
    s.seed([sell(1, 102, 3), buy(2, 100, 3)]);
    assert_events(
        s.replace(2, 2, 103, 3),
        &[
            "Replaced #2 px=100->103 open=3->3 filled=0 moved",
            "Delta bid 100x0 n=0",
            "Trade #1 px=102 qty=3 maker=1 taker=2 open=0/0",
            "Delta ask 102x0 n=0",
        ],
    );
    assert_eq!(s.engine.order(OrderId(2)), None);
    assert_eq!(s.book(), "bids: - | asks: -");
    assert_events(s.cancel(2, 2), &["Rejected Cancel UnknownOrder #2"]);
}

#[test]
fn replace_quantity_is_the_new_total_including_the_filled_part() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 10), buy(2, 100, 4)]);
    // 4 filled, 6 open. A new total of 8 leaves 4 open: a reduction, so priority is kept.
    assert_events(
        s.replace(1, 1, 100, 8),
        &[
            "Replaced #1 px=100->100 open=6->4 filled=4 kept",
            "Delta ask 100x4 n=1",
        ],
    );
    // A new total of 12 leaves 8 open: an increase.
    assert_events(
        s.replace(1, 1, 100, 12),
        &[
            "Replaced #1 px=100->100 open=4->8 filled=4 moved",
            "Delta ask 100x0 n=0",
            "Rested #1 sell px=100 open=8",
            "Delta ask 100x8 n=1",
        ],
    );
    let o = s.engine.order(OrderId(1)).unwrap();
    assert_eq!((o.qty_open, o.qty_filled), (QtyLots(8), QtyLots(4)));
}

#[test]
fn replace_to_a_total_not_above_the_filled_quantity_is_rejected() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 10), buy(2, 100, 4)]);
    for qty in [4, 3, 1] {
        assert_events(
            s.replace(1, 1, 100, qty),
            &["Rejected Replace ReplaceQtyNotAboveFilled #1"],
        );
    }
    assert_events(
        s.replace(1, 1, 100, 5),
        &[
            "Replaced #1 px=100->100 open=6->1 filled=4 kept",
            "Delta ask 100x1 n=1",
        ],
    );
}

#[test]
fn replace_that_changes_nothing_is_rejected() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5)]);
    assert_events(
        s.replace(1, 1, 100, 5),
        &["Rejected Replace ReplaceNoChange #1"],
    );
    // A new client order id alone is no change either.
    let events = s.raw(Command::Replace(Replace {
        order_id: OrderId(1),
        account: AccountId(1),
        client_order_id: ClientOrderId(9),
        price: PriceTicks(100),
        qty: QtyLots(5),
    }));
    assert_eq!(only_reject(&events).code, RejectCode::ReplaceNoChange);
    // With 2 filled and 3 open, the unchanged total of 5 is still no change.
    s.seed([sell(2, 100, 2)]);
    assert_events(
        s.replace(1, 1, 100, 5),
        &["Rejected Replace ReplaceNoChange #1"],
    );
}

#[test]
fn replace_is_rejected_while_halted() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5)]);
    s.halt(0);
    assert_events(
        s.replace(1, 1, 100, 3),
        &["Rejected Replace InstrumentHalted #1"],
    );
    // The halt check comes before the value checks, and after the ownership check.
    assert_events(
        s.replace(1, 1, 100, 0),
        &["Rejected Replace InstrumentHalted #1"],
    );
    assert_events(
        s.replace(2, 1, 100, 3),
        &["Rejected Replace UnknownOrder #1"],
    );
    assert_eq!(s.queue(Side::Buy, 100), "#1:5");
}

#[test]
fn post_only_replace_that_would_cross_is_rejected() {
    let mut s = Scenario::new();
    s.seed([sell(1, 101, 5), buy(2, 99, 5).post_only()]);
    assert_events(
        s.replace(2, 2, 101, 5),
        &["Rejected Replace PostOnlyWouldTake #2"],
    );
    assert_events(
        s.replace(2, 2, 102, 5),
        &["Rejected Replace PostOnlyWouldTake #2"],
    );
    assert_events(
        s.replace(2, 2, 100, 5),
        &[
            "Replaced #2 px=99->100 open=5->5 filled=0 moved",
            "Delta bid 99x0 n=0",
            "Rested #2 buy px=100 open=5",
            "Delta bid 100x5 n=1",
        ],
    );
}

#[test]
fn replace_carries_the_new_client_order_id() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5).cl(10)]);
    let replace = |cl: u64, price: i64, qty: u64| {
        Command::Replace(Replace {
            order_id: OrderId(1),
            account: AccountId(1),
            client_order_id: ClientOrderId(cl),
            price: PriceTicks(price),
            qty: QtyLots(qty),
        })
    };
    let events = s.raw(replace(20, 100, 3));
    assert_eq!(
        events[0],
        Event::Replaced(Replaced {
            order_id: OrderId(1),
            instrument: InstrumentId(0),
            account: AccountId(1),
            client_order_id: ClientOrderId(20),
            orig_client_order_id: ClientOrderId(10),
            side: Side::Buy,
            price_old: PriceTicks(100),
            price: PriceTicks(100),
            qty_open_old: QtyLots(5),
            qty_open: QtyLots(3),
            qty_filled: QtyLots(0),
            priority_kept: true,
        })
    );
    assert_eq!(
        s.engine.order(OrderId(1)).unwrap().client_order_id,
        ClientOrderId(20)
    );
    let events = s.raw(replace(30, 101, 3));
    match events[0] {
        Event::Replaced(r) => assert_eq!(
            (r.client_order_id, r.orig_client_order_id),
            (ClientOrderId(30), ClientOrderId(20))
        ),
        other => panic!("expected Replaced, got {other:?}"),
    }
    let trade = only_trade(&s.submit_raw(sell(2, 101, 1)));
    assert_eq!(trade.maker_client_order_id, ClientOrderId(30));
    // Id, side, time in force and account stay.
    let o = s.engine.order(OrderId(1)).unwrap();
    assert_eq!(
        (o.order_id, o.side, o.tif, o.account),
        (OrderId(1), Side::Buy, TimeInForce::Gtc, AccountId(1))
    );
}

#[test]
fn replace_that_trades_reports_the_new_client_order_id_as_taker() {
    let mut s = Scenario::new();
    s.seed([sell(1, 101, 2), buy(2, 100, 5).cl(10)]);
    let events = s.raw(Command::Replace(Replace {
        order_id: OrderId(2),
        account: AccountId(2),
        client_order_id: ClientOrderId(20),
        price: PriceTicks(101),
        qty: QtyLots(5),
    }));
    let trade = only_trade(&events);
    assert_eq!(
        (
            trade.taker_order_id,
            trade.taker_client_order_id,
            trade.aggressor_side
        ),
        (OrderId(2), ClientOrderId(20), Side::Buy)
    );
}

#[test]
fn replace_reject_names_the_instrument_only_for_an_order_it_found() {
    let mut s = Scenario::new();
    s.seed([buy(1, 1_000, 5).on(1)]);
    let replace = |account: u32, qty: u64| {
        Command::Replace(Replace {
            order_id: OrderId(1),
            account: AccountId(account),
            client_order_id: ClientOrderId(5),
            price: PriceTicks(1_000),
            qty: QtyLots(qty),
        })
    };
    assert_eq!(
        only_reject(&s.raw(replace(2, 3))),
        Rejected {
            request: RequestKind::Replace,
            code: RejectCode::UnknownOrder,
            instrument: InstrumentId(0),
            account: AccountId(2),
            client_order_id: ClientOrderId(5),
            order_id: OrderId(1),
        }
    );
    assert_eq!(
        only_reject(&s.raw(replace(1, 0))),
        Rejected {
            request: RequestKind::Replace,
            code: RejectCode::QtyZero,
            instrument: InstrumentId(1),
            account: AccountId(1),
            client_order_id: ClientOrderId(5),
            order_id: OrderId(1),
        }
    );
}

#[test]
fn replace_into_an_own_order_applies_the_resting_orders_stp_mode() {
    let mut s = Scenario::new();
    s.seed([
        buy(1, 100, 5).stp(StpMode::CancelAggressor),
        sell(1, 102, 5),
    ]);
    assert_events(
        s.replace(1, 1, 102, 5),
        &[
            "Replaced #1 px=100->102 open=5->5 filled=0 moved",
            "Delta bid 100x0 n=0",
            "Cancelled #1 SelfTradeAggressor buy px=102 qty=5",
        ],
    );
    assert_eq!(s.engine.order(OrderId(1)), None);
    assert_eq!(s.book(), "bids: - | asks: 102x5(1)");

    // With the default mode the own resting order goes instead and the replaced order rests.
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5), sell(1, 102, 5)]);
    assert_events(
        s.replace(1, 1, 102, 5),
        &[
            "Replaced #1 px=100->102 open=5->5 filled=0 moved",
            "Delta bid 100x0 n=0",
            "Cancelled #2 SelfTradeResting sell px=102 qty=5",
            "Delta ask 102x0 n=0",
            "Rested #1 buy px=102 open=5",
            "Delta bid 102x5 n=1",
        ],
    );
}

#[test]
fn replace_value_checks_run_in_documented_order() {
    let mut s = Scenario::with(single(strict_spec()));
    s.seed([buy(1, 100, 10)]);
    let cases: &[(i64, u64, RejectCode)] = &[
        (-5, 0, RejectCode::QtyZero),
        (-5, 15, RejectCode::QtyOffLot),
        (-5, 1_010, RejectCode::QtyAboveMax),
        (0, 10, RejectCode::PriceNotPositive),
        (-3, 10, RejectCode::PriceNotPositive),
        (151, 10, RejectCode::PriceOffTick),
        (155, 1_000, RejectCode::PriceOutsideBand),
        (100, 510, RejectCode::NotionalAboveMax),
    ];
    for &(price, qty, code) in cases {
        assert_rejected(s.replace(1, 1, price, qty), "Replace", code);
    }
    // Boundary: a notional of exactly the maximum is allowed.
    assert_events(
        s.replace(1, 1, 100, 500),
        &[
            "Replaced #1 px=100->100 open=10->500 filled=0 moved",
            "Delta bid 100x0 n=0",
            "Rested #1 buy px=100 open=500",
            "Delta bid 100x500 n=1",
        ],
    );
}

#[test]
fn replace_to_a_new_level_on_a_full_side_is_rejected_unless_it_frees_its_level() {
    let mut spec = InstrumentSpec::simple("T", 100);
    spec.levels_per_side_max = 2;
    let mut s = Scenario::with(single(spec));
    s.seed([buy(1, 100, 1), buy(2, 100, 1), buy(3, 99, 1)]);
    assert_events(
        s.replace(1, 1, 98, 1),
        &["Rejected Replace LevelPoolFull #1"],
    );
    // #3 is alone at 99, so its level is freed for the new one.
    assert_events(
        s.replace(3, 3, 98, 1),
        &[
            "Replaced #3 px=99->98 open=1->1 filled=0 moved",
            "Delta bid 99x0 n=0",
            "Rested #3 buy px=98 open=1",
            "Delta bid 98x1 n=1",
        ],
    );
    // Moving to an existing level needs no new one.
    assert_events(
        s.replace(1, 1, 98, 1),
        &[
            "Replaced #1 px=100->98 open=1->1 filled=0 moved",
            "Delta bid 100x1 n=1",
            "Rested #1 buy px=98 open=1",
            "Delta bid 98x2 n=2",
        ],
    );
}

// ----- mass cancel -------------------------------------------------------------------------------------

/// Orders of accounts 1 and 2 on both instruments: #1..#5 on instrument 0, #6 and #7 on 1.
fn mass_cancel_book() -> Scenario {
    let mut s = Scenario::new();
    s.seed([
        buy(1, 100, 1),
        buy(2, 100, 2),
        buy(1, 99, 3),
        sell(1, 101, 4),
        sell(2, 102, 5),
        buy(1, 1_000, 6).on(1),
        sell(2, 1_001, 7).on(1),
    ]);
    s
}

#[test]
fn mass_cancel_by_account_walks_every_instrument_in_book_order() {
    let mut s = mass_cancel_book();
    assert_events(
        s.mass_cancel(None, Some(1)),
        &[
            "Cancelled #1 MassCancel buy px=100 qty=1",
            "Delta bid 100x2 n=1",
            "Cancelled #3 MassCancel buy px=99 qty=3",
            "Delta bid 99x0 n=0",
            "Cancelled #4 MassCancel sell px=101 qty=4",
            "Delta ask 101x0 n=0",
            "Cancelled #6 MassCancel buy px=1000 qty=6 inst=1",
            "Delta bid 1000x0 n=0 inst=1",
            "MassCancelled inst=* acct=1 count=4",
        ],
    );
    assert_eq!(s.book(), "bids: 100x2(1) | asks: 102x5(1)");
    assert_eq!(s.book_of(1), "bids: - | asks: 1001x7(1)");
}

#[test]
fn mass_cancel_by_instrument_cancels_every_account() {
    let mut s = mass_cancel_book();
    assert_events(
        s.mass_cancel(Some(1), None),
        &[
            "Cancelled #6 MassCancel buy px=1000 qty=6 inst=1",
            "Delta bid 1000x0 n=0 inst=1",
            "Cancelled #7 MassCancel sell px=1001 qty=7 inst=1",
            "Delta ask 1001x0 n=0 inst=1",
            "MassCancelled inst=1 acct=* count=2",
        ],
    );
    assert_eq!(s.engine.orders_live(), 5);
}

#[test]
fn mass_cancel_by_instrument_and_account() {
    let mut s = mass_cancel_book();
    assert_events(
        s.mass_cancel(Some(0), Some(2)),
        &[
            "Cancelled #2 MassCancel buy px=100 qty=2",
            "Delta bid 100x1 n=1",
            "Cancelled #5 MassCancel sell px=102 qty=5",
            "Delta ask 102x0 n=0",
            "MassCancelled inst=0 acct=2 count=2",
        ],
    );
    assert_eq!(s.book_of(1), "bids: 1000x6(1) | asks: 1001x7(1)");
}

#[test]
fn mass_cancel_of_everything() {
    let mut s = mass_cancel_book();
    assert_events(
        s.mass_cancel(None, None),
        &[
            "Cancelled #1 MassCancel buy px=100 qty=1",
            "Cancelled #2 MassCancel buy px=100 qty=2",
            "Delta bid 100x0 n=0",
            "Cancelled #3 MassCancel buy px=99 qty=3",
            "Delta bid 99x0 n=0",
            "Cancelled #4 MassCancel sell px=101 qty=4",
            "Delta ask 101x0 n=0",
            "Cancelled #5 MassCancel sell px=102 qty=5",
            "Delta ask 102x0 n=0",
            "Cancelled #6 MassCancel buy px=1000 qty=6 inst=1",
            "Delta bid 1000x0 n=0 inst=1",
            "Cancelled #7 MassCancel sell px=1001 qty=7 inst=1",
            "Delta ask 1001x0 n=0 inst=1",
            "MassCancelled inst=* acct=* count=7",
        ],
    );
    assert_eq!((s.engine.orders_live(), s.engine.levels_live()), (0, 0));
    // Nothing left to match: still a MassCancelled, with count 0.
    assert_events(
        s.mass_cancel(None, Some(1)),
        &["MassCancelled inst=* acct=1 count=0"],
    );
}

#[test]
fn mass_cancel_of_an_unknown_instrument_is_rejected() {
    let mut s = mass_cancel_book();
    let no_op = s.hash_if_next_is_a_no_op();
    assert_events(
        s.mass_cancel(Some(5), Some(1)),
        &["Rejected MassCancel UnknownInstrument inst=5"],
    );
    assert_eq!(s.engine.state_hash(), no_op);
}

#[test]
fn mass_cancel_is_allowed_while_halted() {
    let mut s = mass_cancel_book();
    s.halt(0);
    assert_events(
        s.mass_cancel(Some(0), Some(2)),
        &[
            "Cancelled #2 MassCancel buy px=100 qty=2",
            "Delta bid 100x1 n=1",
            "Cancelled #5 MassCancel sell px=102 qty=5",
            "Delta ask 102x0 n=0",
            "MassCancelled inst=0 acct=2 count=2",
        ],
    );
}

// ----- self-trade prevention ---------------------------------------------------------------------------

#[test]
fn stp_cancel_resting_removes_the_own_maker_and_keeps_matching() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 2), sell(2, 100, 3)]);
    assert_events(
        s.submit(buy(1, 100, 4)),
        &[
            "Accepted #3 buy Gtc px=100 qty=4",
            "Cancelled #1 SelfTradeResting sell px=100 qty=2",
            "Trade #1 px=100 qty=3 maker=2 taker=3 open=0/1",
            "Delta ask 100x0 n=0",
            "Rested #3 buy px=100 open=1",
            "Delta bid 100x1 n=1",
        ],
    );
}

#[test]
fn stp_cancel_aggressor_stops_matching_and_cancels_the_rest() {
    let mut s = Scenario::new();
    s.seed([sell(2, 100, 2), sell(1, 100, 3), sell(2, 100, 3)]);
    assert_events(
        s.submit(buy(1, 100, 6).stp(StpMode::CancelAggressor)),
        &[
            "Accepted #4 buy Gtc px=100 qty=6",
            "Trade #1 px=100 qty=2 maker=1 taker=4 open=0/4",
            "Delta ask 100x6 n=2",
            "Cancelled #4 SelfTradeAggressor buy px=100 qty=4",
        ],
    );
    assert_eq!(s.queue(Side::Sell, 100), "#2:3 #3:3");
}

#[test]
fn stp_cancel_aggressor_at_the_first_maker_touches_no_level() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 2)]);
    assert_events(
        s.submit(buy(1, 100, 2).stp(StpMode::CancelAggressor)),
        &[
            "Accepted #2 buy Gtc px=100 qty=2",
            "Cancelled #2 SelfTradeAggressor buy px=100 qty=2",
        ],
    );
    assert_eq!(s.book(), "bids: - | asks: 100x2(1)");
}

#[test]
fn stp_cancel_both_cancels_the_maker_then_the_taker() {
    let mut s = Scenario::new();
    s.seed([sell(2, 100, 2), sell(1, 100, 3), sell(2, 100, 3)]);
    assert_events(
        s.submit(buy(1, 100, 6).stp(StpMode::CancelBoth)),
        &[
            "Accepted #4 buy Gtc px=100 qty=6",
            "Trade #1 px=100 qty=2 maker=1 taker=4 open=0/4",
            "Cancelled #2 SelfTradeResting sell px=100 qty=3",
            "Delta ask 100x3 n=1",
            "Cancelled #4 SelfTradeAggressor buy px=100 qty=4",
        ],
    );
    assert_eq!(s.queue(Side::Sell, 100), "#3:3");
}

#[test]
fn stp_decrement_with_a_smaller_maker_cancels_it_and_restates_the_taker() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 2), sell(2, 100, 5)]);
    assert_events(
        s.submit(buy(1, 100, 6).stp(StpMode::DecrementCancel)),
        &[
            "Accepted #3 buy Gtc px=100 qty=6",
            "Cancelled #1 SelfTradeDecrement sell px=100 qty=2",
            "Restated #3 buy px=100 reduced=2 open=4",
            "Trade #1 px=100 qty=4 maker=2 taker=3 open=1/0",
            "Delta ask 100x1 n=1",
        ],
    );
}

#[test]
fn stp_decrement_with_a_smaller_taker_restates_the_maker_in_place() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 5), sell(2, 100, 1)]);
    assert_events(
        s.submit(buy(1, 100, 2).stp(StpMode::DecrementCancel)),
        &[
            "Accepted #3 buy Gtc px=100 qty=2",
            "Restated #1 sell px=100 reduced=2 open=3",
            "Cancelled #3 SelfTradeDecrement buy px=100 qty=2",
            "Delta ask 100x4 n=2",
        ],
    );
    assert_eq!(s.queue(Side::Sell, 100), "#1:3 #2:1");
    // A decrement is not a fill.
    assert_eq!(s.engine.order(OrderId(1)).unwrap().qty_filled, QtyLots(0));
    assert_eq!(s.engine.next_trade_id(), 1);
}

#[test]
fn stp_decrement_with_equal_quantities_cancels_both() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3)]);
    assert_events(
        s.submit(buy(1, 100, 3).stp(StpMode::DecrementCancel)),
        &[
            "Accepted #2 buy Gtc px=100 qty=3",
            "Cancelled #1 SelfTradeDecrement sell px=100 qty=3",
            "Cancelled #2 SelfTradeDecrement buy px=100 qty=3",
            "Delta ask 100x0 n=0",
        ],
    );
    assert_eq!(s.book(), "bids: - | asks: -");
    assert_eq!(s.engine.next_trade_id(), 1);
}

#[test]
fn stp_off_lets_an_account_trade_with_itself() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3)]);
    let events = s.submit_raw(buy(1, 100, 3).stp(StpMode::Off));
    let trade = only_trade(&events);
    assert_eq!(
        (trade.maker_account, trade.taker_account),
        (AccountId(1), AccountId(1))
    );
    assert_events(
        events.iter().map(render).collect(),
        &[
            "Accepted #2 buy Gtc px=100 qty=3",
            "Trade #1 px=100 qty=3 maker=1 taker=2 open=0/0",
            "Delta ask 100x0 n=0",
        ],
    );
}

#[test]
fn stp_follows_the_takers_mode_not_the_makers() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3).stp(StpMode::Off)]);
    assert_events(
        s.submit(buy(1, 100, 3)),
        &[
            "Accepted #2 buy Gtc px=100 qty=3",
            "Cancelled #1 SelfTradeResting sell px=100 qty=3",
            "Delta ask 100x0 n=0",
            "Rested #2 buy px=100 open=3",
            "Delta bid 100x3 n=1",
        ],
    );
}

#[test]
fn stp_group_prevents_trades_across_accounts() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3).group(7)]);
    assert_events(
        s.submit(buy(2, 100, 3).group(7)),
        &[
            "Accepted #2 buy Gtc px=100 qty=3",
            "Cancelled #1 SelfTradeResting sell px=100 qty=3",
            "Delta ask 100x0 n=0",
            "Rested #2 buy px=100 open=3",
            "Delta bid 100x3 n=1",
        ],
    );
    // The same account in different groups is not a self trade.
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 3).group(5)]);
    let trade = only_trade(&s.submit_raw(buy(1, 100, 3).group(6)));
    assert_eq!(trade.maker_order_id, OrderId(1));
}

#[test]
fn stp_group_and_account_are_different_keys_even_with_equal_numbers() {
    // Account 7 without a group against group 7: different keys, so they trade.
    let mut s = Scenario::new();
    s.seed([sell(7, 100, 3)]);
    assert_eq!(
        only_trade(&s.submit_raw(buy(9, 100, 3).group(7))).maker_order_id,
        OrderId(1)
    );
    // Account 1 in group 1 against account 1 without a group: also different keys.
    s.seed([sell(1, 100, 3).group(1)]);
    assert_eq!(
        only_trade(&s.submit_raw(buy(1, 100, 3))).maker_order_id,
        OrderId(3)
    );
}

// ----- halt and resume ---------------------------------------------------------------------------------

#[test]
fn halted_instrument_rejects_new_orders_and_replaces_but_keeps_its_book() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5)]);
    assert_events(s.halt(0), &["Status Halted"]);
    assert_eq!(
        s.engine.status(InstrumentId(0)),
        Some(InstrumentStatus::Halted)
    );
    assert_events(
        s.submit(buy(2, 99, 1)),
        &["Rejected NewOrder InstrumentHalted"],
    );
    assert_events(
        s.submit(sell(2, 100, 5)),
        &["Rejected NewOrder InstrumentHalted"],
    );
    assert_events(
        s.submit(market_sell(2, 5)),
        &["Rejected NewOrder InstrumentHalted"],
    );
    assert_events(
        s.replace(1, 1, 100, 3),
        &["Rejected Replace InstrumentHalted #1"],
    );
    assert_eq!(s.book(), "bids: 100x5(1) | asks: -");
    // The other instrument trades on.
    assert_events(
        s.submit(buy(1, 1_000, 1).on(1)),
        &[
            "Accepted #7 buy Gtc px=1000 qty=1 inst=1",
            "Rested #7 buy px=1000 open=1 inst=1",
            "Delta bid 1000x1 n=1 inst=1",
        ],
    );
}

#[test]
fn halted_instrument_still_expires_gtd_and_day_orders() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 1).gtd(2_000), buy(1, 99, 1).day()]);
    s.halt(0);
    assert_events(
        s.at(2_000).tick(),
        &[
            "Expired #1 GoodTillDate buy px=100 qty=1",
            "Delta bid 100x0 n=0",
        ],
    );
    assert_events(
        s.end_of_day(),
        &["Expired #2 EndOfDay buy px=99 qty=1", "Delta bid 99x0 n=0"],
    );
}

#[test]
fn resume_reopens_the_instrument_with_its_book_intact() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5)]);
    s.halt(0);
    assert_events(s.resume(0), &["Status Open"]);
    assert_events(
        s.submit(sell(2, 100, 5)),
        &[
            "Accepted #4 sell Gtc px=100 qty=5",
            "Trade #1 px=100 qty=5 maker=1 taker=4 open=0/0",
            "Delta bid 100x0 n=0",
        ],
    );
    assert_events(s.halt(1), &["Status Halted inst=1"]);
}

#[test]
fn instrument_configured_halted_starts_halted() {
    let mut spec = InstrumentSpec::simple("T", 100);
    spec.status = InstrumentStatus::Halted;
    let mut s = Scenario::with(single(spec));
    assert_events(
        s.submit(buy(1, 100, 1)),
        &["Rejected NewOrder InstrumentHalted"],
    );
    s.resume(0);
    s.seed([buy(1, 100, 1)]);
}

#[test]
fn set_status_of_an_unknown_instrument_is_rejected() {
    let mut s = Scenario::new();
    assert_events(s.halt(2), &["Rejected SetStatus UnknownInstrument inst=2"]);
    assert_events(
        s.set_status(u32::MAX, InstrumentStatus::Open),
        &["Rejected SetStatus UnknownInstrument inst=4294967295"],
    );
}

// ----- reject codes of new orders ----------------------------------------------------------------------

#[test]
fn rejected_new_order_echoes_the_request_and_changes_nothing() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 5)]);
    let no_op = s.hash_if_next_is_a_no_op();
    let events = s.submit_raw(buy(3, 100, 0).cl(33).on(1));
    assert_eq!(
        only_reject(&events),
        Rejected {
            request: RequestKind::NewOrder,
            code: RejectCode::QtyZero,
            instrument: InstrumentId(1),
            account: AccountId(3),
            client_order_id: ClientOrderId(33),
            order_id: OrderId(0),
        }
    );
    assert_eq!(s.engine.state_hash(), no_op);
}

#[test]
fn accepted_echoes_the_order_with_its_id() {
    let mut s = Scenario::new();
    // A tick first, so that the order id (2) is not confused with any other field.
    s.tick();
    // Every field once, so that the text rendering can be trusted elsewhere.
    let events = s.submit_raw(sell(4, 1_200, 7).gtd(9_000).post_only().cl(44).on(1));
    assert_eq!(
        events[0],
        Event::Accepted(Accepted {
            order_id: OrderId(2),
            instrument: InstrumentId(1),
            account: AccountId(4),
            client_order_id: ClientOrderId(44),
            side: Side::Sell,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtd,
            price: PriceTicks(1_200),
            qty: QtyLots(7),
            expire_ts_ns: 9_000,
            post_only: true,
        })
    );
}

#[test]
fn new_order_for_an_unknown_instrument_is_rejected() {
    let mut s = Scenario::new();
    assert_events(
        s.submit(buy(1, 100, 1).on(2)),
        &["Rejected NewOrder UnknownInstrument inst=2"],
    );
}

#[test]
fn price_off_tick_is_rejected() {
    let mut s = Scenario::with(single(strict_spec()));
    assert_rejected(
        s.submit(buy(1, 101, 10)),
        "NewOrder",
        RejectCode::PriceOffTick,
    );
    s.seed([buy(1, 105, 10)]);
}

#[test]
fn qty_off_lot_is_rejected() {
    let mut s = Scenario::with(single(strict_spec()));
    assert_rejected(s.submit(buy(1, 100, 15)), "NewOrder", RejectCode::QtyOffLot);
    assert_rejected(
        s.submit(market_buy(1, 1)),
        "NewOrder",
        RejectCode::QtyOffLot,
    );
    s.seed([buy(1, 100, 20)]);
}

#[test]
fn zero_qty_is_rejected() {
    let mut s = Scenario::new();
    assert_rejected(s.submit(buy(1, 100, 0)), "NewOrder", RejectCode::QtyZero);
    assert_rejected(s.submit(market_sell(1, 0)), "NewOrder", RejectCode::QtyZero);
}

#[test]
fn non_positive_limit_price_is_rejected() {
    let mut s = Scenario::with(single(strict_spec()));
    for price in [0, -5, -3, i64::MIN] {
        assert_rejected(
            s.submit(buy(1, price, 10)),
            "NewOrder",
            RejectCode::PriceNotPositive,
        );
    }
}

#[test]
fn qty_above_max_is_rejected() {
    let mut s = Scenario::with(single(strict_spec()));
    assert_rejected(
        s.submit(sell(1, 50, 1_010)),
        "NewOrder",
        RejectCode::QtyAboveMax,
    );
    // Exactly the maximum is fine (50 * 1000 is also exactly the notional maximum).
    s.seed([buy(1, 50, 1_000)]);
}

#[test]
fn notional_above_max_is_rejected_and_the_maximum_itself_is_allowed() {
    let mut s = Scenario::with(single(strict_spec()));
    assert_rejected(
        s.submit(buy(1, 100, 510)),
        "NewOrder",
        RejectCode::NotionalAboveMax,
    );
    s.seed([buy(1, 100, 500)]);
}

#[test]
fn market_order_notional_uses_the_band_edge() {
    let mut s = Scenario::with(single(strict_spec()));
    // A buy is priced at the upper edge, 150: 150 * 340 > 50 000 although asks might be cheap.
    s.seed([sell(1, 100, 500)]);
    assert_rejected(
        s.submit(market_buy(2, 340)),
        "NewOrder",
        RejectCode::NotionalAboveMax,
    );
    assert_events(
        s.submit(market_buy(2, 330)),
        &[
            "Accepted #3 buy market Ioc px=150 qty=330",
            "Trade #1 px=100 qty=330 maker=1 taker=3 open=170/0",
            "Delta ask 100x170 n=1",
        ],
    );
    // A sell is priced at the lower edge, 50: 50 * 1000 is exactly the maximum.
    assert_events(
        s.submit(market_sell(2, 1_000)),
        &[
            "Accepted #4 sell market Ioc px=50 qty=1000",
            "Cancelled #4 MarketNoLiquidity sell px=50 qty=1000",
        ],
    );
}

#[test]
fn order_pool_full_rejects_every_new_order_until_a_slot_frees() {
    let mut s = Scenario::with(config(
        vec![InstrumentSpec::simple("T", 100)],
        limits(3, 100, 10),
    ));
    s.seed([buy(1, 100, 1), buy(1, 99, 1), sell(1, 101, 1)]);
    // Orders that would not rest, or would trade at once, need a slot too.
    for order in [
        buy(2, 98, 1),
        sell(2, 100, 1).ioc(),
        sell(2, 100, 1).fok(),
        market_sell(2, 1),
    ] {
        assert_rejected(s.submit(order), "NewOrder", RejectCode::OrderPoolFull);
    }
    s.cancel(1, 2);
    s.seed([buy(2, 98, 1)]);
    assert_rejected(
        s.submit(buy(2, 97, 1)),
        "NewOrder",
        RejectCode::OrderPoolFull,
    );
    // A mass cancel frees every slot.
    s.mass_cancel(None, None);
    s.seed([buy(3, 100, 1), buy(3, 100, 1), buy(3, 100, 1)]);
    assert_eq!(s.engine.orders_live(), 3);
}

#[test]
fn level_pool_full_when_a_side_holds_its_maximum_levels() {
    let mut spec = InstrumentSpec::simple("T", 100);
    spec.levels_per_side_max = 2;
    let mut s = Scenario::with(single(spec));
    s.seed([buy(1, 100, 1), buy(1, 99, 1)]);
    for order in [
        buy(1, 98, 1),
        buy(1, 98, 1).day(),
        buy(1, 98, 1).gtd(5_000),
        buy(1, 98, 1).post_only(),
    ] {
        assert_rejected(s.submit(order), "NewOrder", RejectCode::LevelPoolFull);
    }
    // An existing level needs no slot; IOC and FOK orders never rest, so they need none.
    s.seed([buy(2, 99, 1), buy(2, 98, 1).ioc(), buy(2, 98, 1).fok()]);
    // The other side has its own allowance.
    s.seed([sell(3, 101, 1), sell(3, 102, 1)]);
    assert_rejected(
        s.submit(sell(3, 103, 1)),
        "NewOrder",
        RejectCode::LevelPoolFull,
    );
    // The check is conservative: a GTC buy at 101 that would fill completely is still refused,
    // because it might have had to rest at a third bid level.
    assert_rejected(
        s.submit(buy(4, 101, 1)),
        "NewOrder",
        RejectCode::LevelPoolFull,
    );
    // Recovery: a freed level makes room.
    s.cancel(1, 1);
    s.seed([buy(1, 98, 1)]);
    assert_eq!(s.book(), "bids: 99x2(2) 98x1(1) | asks: 101x1(1) 102x1(1)");
}

#[test]
fn level_pool_full_when_the_shared_level_pool_is_exhausted() {
    let mut s = Scenario::with(config(
        vec![
            InstrumentSpec::simple("T", 100),
            InstrumentSpec::simple("U", 1_000),
        ],
        limits(100, 3, 10),
    ));
    s.seed([buy(1, 100, 1), sell(1, 101, 1), buy(1, 1_000, 1).on(1)]);
    assert_rejected(
        s.submit(sell(1, 1_001, 1).on(1)),
        "NewOrder",
        RejectCode::LevelPoolFull,
    );
    assert_rejected(
        s.submit(buy(1, 99, 1)),
        "NewOrder",
        RejectCode::LevelPoolFull,
    );
    s.seed([buy(2, 100, 1)]);
    assert_eq!(s.engine.levels_live(), 3);
    // A replace to a new price needs a level too, unless it frees its own.
    assert_events(
        s.replace(1, 1, 99, 1),
        &["Rejected Replace LevelPoolFull #1"],
    );
    // Recovery: a level freed on instrument 0 can serve instrument 1.
    s.cancel(1, 2);
    s.seed([sell(1, 1_001, 1).on(1)]);
    assert_eq!(s.engine.levels_live(), 3);
}

#[test]
fn expiry_queue_full_rejects_gtd_orders_only() {
    let mut s = Scenario::with(config(
        vec![InstrumentSpec::simple("T", 100)],
        limits(100, 100, 2),
    ));
    s.seed([buy(1, 100, 1).gtd(2_000), buy(1, 99, 1).gtd(3_000)]);
    assert_rejected(
        s.submit(buy(1, 98, 1).gtd(4_000)),
        "NewOrder",
        RejectCode::ExpiryQueueFull,
    );
    // Orders with another time in force are unaffected.
    s.seed([buy(1, 98, 1), buy(1, 98, 1).day()]);
    // Room comes back when a GTD order is cancelled...
    s.cancel(1, 1);
    s.seed([buy(1, 98, 1).gtd(4_000)]);
    assert_rejected(
        s.submit(buy(1, 98, 1).gtd(4_000)),
        "NewOrder",
        RejectCode::ExpiryQueueFull,
    );
    // ...when one fills (#2, the GTD bid at 99)...
    s.seed([sell(2, 99, 1)]);
    s.seed([buy(1, 97, 1).gtd(5_000)]);
    // ...and when they expire.
    s.at(5_000).tick();
    s.seed([buy(1, 97, 1).gtd(6_000), buy(1, 97, 1).gtd(6_000)]);
}

#[test]
fn gtd_queue_reuses_room_left_by_cancelled_orders() {
    let mut s = Scenario::with(config(
        vec![InstrumentSpec::simple("T", 100)],
        limits(100, 100, 2),
    ));
    // Far more GTD orders than the queue holds come and go; each leaves a stale entry.
    for i in 0..20u64 {
        s.seed([buy(1, 100, 1).gtd(1_000_000 + i)]);
        let id = s.next_seq - 1;
        s.cancel(1, id);
    }
    s.seed([buy(1, 100, 1).gtd(9_000), buy(1, 100, 1).gtd(9_000)]);
    assert_rejected(
        s.submit(buy(1, 100, 1).gtd(9_000)),
        "NewOrder",
        RejectCode::ExpiryQueueFull,
    );
}

#[test]
fn new_order_checks_run_in_documented_order() {
    let mut s = Scenario::with(single(strict_spec()));
    s.seed([sell(2, 105, 10)]);
    // Each order breaks two rules; the earlier rule decides.
    s.halt(0);
    assert_rejected(
        s.submit(market_buy(1, 10).tif(TimeInForce::Gtc)),
        "NewOrder",
        RejectCode::InstrumentHalted,
    );
    s.resume(0);
    let cases: &[(Order, RejectCode)] = &[
        (market_buy(1, 0).day(), RejectCode::InvalidOrderType),
        (
            buy(1, 100, 10).ioc().post_only().expire(9),
            RejectCode::InvalidOrderType,
        ),
        (buy(1, 100, 0).gtd(0), RejectCode::QtyZero),
        (buy(1, 100, 1_015), RejectCode::QtyOffLot),
        (buy(1, 0, 10).expire(5_000), RejectCode::InvalidExpiry),
        (buy(1, -3, 10), RejectCode::PriceNotPositive),
        (buy(1, 151, 10), RejectCode::PriceOffTick),
        (buy(1, 155, 1_000), RejectCode::PriceOutsideBand),
        (buy(1, 110, 500).post_only(), RejectCode::NotionalAboveMax),
    ];
    for (order, code) in cases {
        assert_rejected(s.submit(*order), "NewOrder", *code);
    }

    // Post-only comes before capacity, and the capacity checks run pool, level, expiry.
    let mut spec = strict_spec();
    spec.levels_per_side_max = 1;
    let mut s = Scenario::with(config(vec![spec], limits(2, 100, 1)));
    s.seed([buy(1, 100, 10).gtd(9_000), sell(2, 105, 10)]);
    assert_rejected(
        s.submit(buy(1, 105, 10).post_only()),
        "NewOrder",
        RejectCode::PostOnlyWouldTake,
    );
    assert_rejected(
        s.submit(buy(1, 95, 10).gtd(9_000)),
        "NewOrder",
        RejectCode::OrderPoolFull,
    );
    s.cancel(2, 2);
    assert_rejected(
        s.submit(buy(1, 95, 10).gtd(9_000)),
        "NewOrder",
        RejectCode::LevelPoolFull,
    );
    assert_rejected(
        s.submit(buy(1, 100, 10).gtd(9_000)),
        "NewOrder",
        RejectCode::ExpiryQueueFull,
    );
}

/// One place that shows every reject code the engine can produce, produced. `Overflow` is
/// absent on purpose: the engine widens its arithmetic (u128 notional, saturating band edges)
/// and configuration bounds `qty_max` by `u64::MAX / orders_max`, so no request reaches it.
#[test]
fn every_reject_code_except_overflow_is_produced() {
    let mut seen = BTreeSet::new();
    let mut note = |events: Vec<Event>| {
        for e in events {
            if let Event::Rejected(r) = e {
                seen.insert(r.code);
            }
        }
    };
    let mut spec = strict_spec();
    spec.levels_per_side_max = 1;
    let mut s = Scenario::with(config(vec![spec], limits(3, 100, 1)));
    note(s.submit_raw(buy(1, 100, 10).on(9)));
    note(s.submit_raw(buy(1, 100, 10).post_only().ioc()));
    note(s.submit_raw(buy(1, 100, 0)));
    note(s.submit_raw(buy(1, 100, 15)));
    note(s.submit_raw(buy(1, 100, 2_000)));
    note(s.submit_raw(buy(1, 100, 10).gtd(1)));
    note(s.submit_raw(buy(1, 0, 10)));
    note(s.submit_raw(buy(1, 101, 10)));
    note(s.submit_raw(buy(1, 200, 10)));
    note(s.submit_raw(buy(1, 100, 1_000)));
    let gtd_bid = s.next_seq;
    s.seed([buy(1, 100, 20).gtd(9_000), sell(2, 105, 10)]);
    note(s.submit_raw(buy(1, 105, 10).post_only()));
    // The bid side holds its one level (100), and the one GTD slot is taken.
    note(s.submit_raw(buy(1, 95, 10)));
    note(s.submit_raw(buy(1, 100, 10).gtd(9_000)));
    // Half of the GTD bid fills: 10 filled, 10 open. The seller uses IOC because a GTC sell
    // at a new level would be refused by the conservative level check.
    s.seed([sell(3, 100, 10).ioc()]);
    let replace = |qty: u64| {
        Command::Replace(Replace {
            order_id: OrderId(gtd_bid),
            account: AccountId(1),
            client_order_id: ClientOrderId(0),
            price: PriceTicks(100),
            qty: QtyLots(qty),
        })
    };
    note(s.raw(replace(20)));
    note(s.raw(replace(10)));
    note(s.raw(Command::Cancel(Cancel {
        order_id: OrderId(999),
        account: AccountId(1),
        client_order_id: ClientOrderId(0),
    })));
    // A third live order fills the pool of three.
    s.seed([buy(2, 100, 10)]);
    note(s.submit_raw(buy(1, 95, 10)));
    s.halt(0);
    note(s.submit_raw(buy(1, 100, 10)));
    let expected: BTreeSet<RejectCode> = RejectCode::ALL
        .iter()
        .copied()
        .filter(|c| *c != RejectCode::Overflow)
        .collect();
    assert_eq!(seen, expected);
}

// ----- hostile values ----------------------------------------------------------------------------------

#[test]
fn hostile_new_order_values_get_precise_codes() {
    let mut s = Scenario::new();
    let cases: &[(Order, &str)] = &[
        (
            buy(u32::MAX, i64::MAX, 1),
            "Rejected NewOrder PriceOutsideBand",
        ),
        (sell(1, i64::MAX, 1), "Rejected NewOrder PriceOutsideBand"),
        (buy(1, i64::MIN, 1), "Rejected NewOrder PriceNotPositive"),
        (sell(1, i64::MIN, u64::MAX), "Rejected NewOrder QtyAboveMax"),
        (buy(1, 100, u64::MAX), "Rejected NewOrder QtyAboveMax"),
        (market_buy(1, u64::MAX), "Rejected NewOrder QtyAboveMax"),
        (
            buy(1, 100, 1).on(u32::MAX),
            "Rejected NewOrder UnknownInstrument inst=4294967295",
        ),
        (
            buy(1, 100, 1).expire(u64::MAX),
            "Rejected NewOrder InvalidExpiry",
        ),
    ];
    for (order, expected) in cases {
        assert_events(s.submit(*order), &[*expected]);
    }
    // Extreme but valid values are simply accepted.
    s.seed([buy(u32::MAX, 100, 1)
        .group(u32::MAX)
        .cl(u64::MAX)
        .gtd(u64::MAX)]);
    let id = s.next_seq - 1;
    assert_events(
        s.cancel(u32::MAX, id),
        &[
            "Cancelled #9 Requested buy px=100 qty=1",
            "Delta bid 100x0 n=0",
        ],
    );
}

#[test]
fn hostile_cancel_replace_and_operator_values_get_precise_codes() {
    let mut s = Scenario::new();
    s.seed([buy(1, 100, 5)]);
    assert_events(
        s.cancel(1, u64::MAX),
        &["Rejected Cancel UnknownOrder #18446744073709551615"],
    );
    assert_events(s.cancel(1, 0), &["Rejected Cancel UnknownOrder"]);
    assert_events(s.cancel(u32::MAX, 1), &["Rejected Cancel UnknownOrder #1"]);
    assert_events(
        s.replace(1, u64::MAX, 100, 1),
        &["Rejected Replace UnknownOrder #18446744073709551615"],
    );
    assert_events(
        s.replace(1, 1, i64::MAX, 5),
        &["Rejected Replace PriceOutsideBand #1"],
    );
    assert_events(
        s.replace(1, 1, i64::MIN, 5),
        &["Rejected Replace PriceNotPositive #1"],
    );
    assert_events(
        s.replace(1, 1, 100, u64::MAX),
        &["Rejected Replace QtyAboveMax #1"],
    );
    assert_events(
        s.mass_cancel(Some(u32::MAX), Some(u32::MAX)),
        &["Rejected MassCancel UnknownInstrument inst=4294967295"],
    );
    // The end of time expires even the GTD order that never expires; after it no GTD expiry
    // can lie in the future.
    s.seed([buy(1, 100, 1).gtd(u64::MAX)]);
    assert_events(
        s.at(u64::MAX).tick(),
        &[
            "Expired #10 GoodTillDate buy px=100 qty=1",
            "Delta bid 100x5 n=1",
        ],
    );
    assert_rejected(
        s.submit(buy(1, 100, 1).gtd(u64::MAX)),
        "NewOrder",
        RejectCode::InvalidExpiry,
    );
    assert_eq!(s.book(), "bids: 100x5(1) | asks: -");
}

#[test]
fn extreme_reference_prices_and_bands_saturate_instead_of_overflowing() {
    // A reference at i64::MAX with a 100x band: the band saturates to 0..=i64::MAX.
    let mut top = InstrumentSpec::simple("TOP", i64::MAX);
    top.price_band = PriceBand::Bps(1_000_000);
    // A fixed band wider than the price itself reaches below zero.
    let mut wide = InstrumentSpec::simple("WIDE", 100);
    wide.price_band = PriceBand::Ticks(i64::MAX);
    let mut s = Scenario::with(config(vec![top, wide], limits(100, 100, 10)));
    assert_eq!(
        s.engine.price_band(InstrumentId(0)),
        Some((PriceTicks(0), PriceTicks(i64::MAX)))
    );
    assert_eq!(
        s.engine.price_band(InstrumentId(1)),
        Some((PriceTicks(100 - i64::MAX), PriceTicks(i64::MAX)))
    );
    s.seed([buy(1, i64::MAX, 1_000_000_000), sell(1, i64::MAX, 1).on(1)]);
    let px = i64::MAX;
    assert_events(
        s.submit(sell(2, 1, 2)),
        &[
            "Accepted #3 sell Gtc px=1 qty=2",
            &format!("Trade #1 px={px} qty=2 maker=1 taker=3 open=999999998/0"),
            &format!("Delta bid {px}x999999998 n=1"),
        ],
    );
    assert_events(
        s.submit(market_sell(2, 1)),
        &[
            "Accepted #4 sell market Ioc px=0 qty=1",
            &format!("Trade #2 px={px} qty=1 maker=1 taker=4 open=999999997/0"),
            &format!("Delta bid {px}x999999997 n=1"),
        ],
    );
    assert_events(
        s.submit(market_buy(2, 2).on(1)),
        &[
            &format!("Accepted #5 buy market Ioc px={px} qty=2 inst=1"),
            &format!("Trade #3 px={px} qty=1 maker=2 taker=5 open=0/1 inst=1"),
            &format!("Delta ask {px}x0 n=0 inst=1"),
            &format!("Cancelled #5 MarketNoLiquidity buy px={px} qty=1 inst=1"),
        ],
    );
    // After trading at i64::MAX the wide band's lower edge is i64::MAX - i64::MAX = 0.
    assert_eq!(
        s.engine.price_band(InstrumentId(1)),
        Some((PriceTicks(0), PriceTicks(i64::MAX)))
    );
}

// ----- identifiers and sequencing -----------------------------------------------------------------------

#[test]
fn order_id_is_the_seq_of_the_creating_command() {
    let mut s = Scenario::new();
    s.next_seq = 10;
    assert_events(
        s.submit(buy(1, 100, 1)),
        &[
            "Accepted #10 buy Gtc px=100 qty=1",
            "Rested #10 buy px=100 open=1",
            "Delta bid 100x1 n=1",
        ],
    );
    s.next_seq = 57;
    s.seed([sell(2, 101, 1)]);
    assert!(s.engine.order(OrderId(57)).is_some());
    // A reject uses up its sequence number but creates no id.
    s.next_seq = 60;
    assert_eq!(
        only_reject(&s.submit_raw(buy(1, 100, 0))).order_id,
        OrderId(0)
    );
    assert_eq!(s.engine.order(OrderId(60)), None);
    s.tick();
    assert_events(
        s.submit(sell(3, 100, 1).ioc()),
        &[
            "Accepted #62 sell Ioc px=100 qty=1",
            "Trade #1 px=100 qty=1 maker=10 taker=62 open=0/0",
            "Delta bid 100x0 n=0",
        ],
    );
}

#[test]
fn trade_ids_are_dense_from_one_across_instruments_and_commands() {
    let mut s = Scenario::new();
    s.seed([sell(1, 100, 2), sell(1, 1_000, 2).on(1)]);
    let trade_ids = |events: &[Event]| -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Trade(t) => Some(t.trade_id.0),
                _ => None,
            })
            .collect()
    };
    assert_eq!(trade_ids(&s.submit_raw(buy(2, 100, 1))), [1]);
    assert_eq!(trade_ids(&s.submit_raw(buy(2, 1_000, 2).on(1))), [2]);
    // An unfillable FOK and a self-trade cancel use no trade id.
    assert_eq!(
        trade_ids(&s.submit_raw(buy(2, 100, 5).fok())),
        Vec::<u64>::new()
    );
    assert_eq!(trade_ids(&s.submit_raw(buy(1, 100, 1))), Vec::<u64>::new());
    s.seed([sell(3, 101, 3), sell(3, 102, 3), buy(4, 99, 5)]);
    // A replace that trades continues the sequence.
    let id = s.next_seq - 1;
    let events = s.raw(Command::Replace(Replace {
        order_id: OrderId(id),
        account: AccountId(4),
        client_order_id: ClientOrderId(0),
        price: PriceTicks(102),
        qty: QtyLots(5),
    }));
    assert_eq!(trade_ids(&events), [3, 4]);
    assert_eq!(trade_ids(&s.submit_raw(market_sell(5, 10))), [5]);
    assert_eq!(s.engine.next_trade_id(), 6);
}

#[test]
fn equal_timestamps_are_allowed() {
    let mut s = Scenario::new();
    s.at(5_000).tick();
    s.at(5_000).tick();
    assert_eq!(s.engine.last_ts_ns(), 5_000);
    assert_eq!(s.engine.last_seq(), 2);
}

#[test]
#[should_panic(expected = "Invariant: sequence numbers increase")]
fn repeated_sequence_number_stops_the_engine() {
    let mut s = Scenario::new();
    s.tick();
    s.next_seq = 1;
    s.tick();
}

#[test]
#[should_panic(expected = "Invariant: timestamps do not decrease")]
fn decreasing_timestamp_stops_the_engine() {
    let mut s = Scenario::new();
    s.at(2_000).tick();
    s.at(1_999).tick();
}
