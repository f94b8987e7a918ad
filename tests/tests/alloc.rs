//! Allocation count: after start-up the engine must not allocate, whatever the command.
//!
//! A counting global allocator wraps `System`. Only allocations made by a thread that has armed
//! its own flag are counted, into that thread's own counter, so the test harness (and any other
//! test running on another thread) cannot disturb the count. The workload is generated up front
//! on a twin engine, so that choosing live orders to cancel or replace happens outside the
//! measured window; the measured engine then replays the same commands and must reach the same
//! state.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use ferrox_engine::{
    AccountId, Cancel, CancelReason, ClientOrderId, Command, Engine, EngineConfig, Event,
    EventSink, ExpireReason, InstrumentId, InstrumentSpec, InstrumentStatus, Limits, MassCancel,
    NewOrder, OrderId, OrderType, PriceBand, PriceTicks, QtyLots, RejectCode, Replace,
    SequencedCommand, SetStatus, Side, StpGroup, StpMode, TimeInForce,
};

// ----- the counting allocator ------------------------------------------------------------------

struct CountingAllocator;

thread_local! {
    // Const-initialised and without destructors: reading them never allocates, which matters
    // because the allocator itself reads them.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNTED: Cell<u64> = const { Cell::new(0) };
}

/// Every allocation in the process, armed or not; only for the report on failure.
static ALL_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn note_allocation() {
    ALL_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    // `try_with` because the allocator also runs while a thread's locals are torn down.
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNTED.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// touches only thread-local cells and an atomic, never the memory being handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Growing or shrinking a block counts: it is how a `Vec` past its capacity shows up.
        note_allocation();
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System` underneath.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System` underneath.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the number of allocations this thread made meanwhile.
fn allocations_during<R>(f: impl FnOnce() -> R) -> (R, u64) {
    COUNTED.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    let result = f();
    ARMED.with(|a| a.set(false));
    (result, COUNTED.with(Cell::get))
}

// ----- an allocation-free sink -----------------------------------------------------------------

/// Folds events into fixed counters: what a production sink that copies into a preallocated
/// ring would cost, and enough to show which rules the workload exercised.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Counters {
    /// By event kind, in the order of `KINDS`.
    kinds: [u64; 12],
    /// By reject code number minus 100.
    rejects: [u64; 32],
    /// By cancel reason number.
    cancels: [u64; 16],
    /// By expire reason number.
    expired: [u64; 4],
    /// A running digest of trades, so that the two runs are compared on content too.
    trade_digest: u64,
}

const KINDS: [&str; 12] = [
    "Accepted",
    "Rejected",
    "Trade",
    "Rested",
    "Cancelled",
    "Restated",
    "Replaced",
    "Expired",
    "BookDelta",
    "StatusChanged",
    "MassCancelled",
    "BookChecked",
];

impl Counters {
    fn new() -> Self {
        Counters {
            kinds: [0; 12],
            rejects: [0; 32],
            cancels: [0; 16],
            expired: [0; 4],
            trade_digest: 0,
        }
    }

    fn kind(&self, name: &str) -> u64 {
        let i = KINDS.iter().position(|k| *k == name).expect("known kind");
        self.kinds[i]
    }

    fn rejected(&self, code: RejectCode) -> u64 {
        self.rejects[usize::from(code.as_u16() - 100)]
    }

    fn cancelled(&self, reason: CancelReason) -> u64 {
        self.cancels[usize::from(reason.as_u8())]
    }
}

impl EventSink for Counters {
    fn event(&mut self, event: &Event) {
        let kind = match event {
            Event::Accepted(_) => 0,
            Event::Rejected(r) => {
                self.rejects[usize::from(r.code.as_u16() - 100)] += 1;
                1
            }
            Event::Trade(t) => {
                self.trade_digest = self
                    .trade_digest
                    .rotate_left(7)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ t.trade_id.0
                    ^ (t.price.0 as u64).wrapping_mul(31)
                    ^ t.qty.0.wrapping_mul(131)
                    ^ t.maker_order_id.0.wrapping_mul(1_000_003);
                2
            }
            Event::Rested(_) => 3,
            Event::Cancelled(c) => {
                self.cancels[usize::from(c.reason.as_u8())] += 1;
                4
            }
            Event::Restated(_) => 5,
            Event::Replaced(_) => 6,
            Event::Expired(e) => {
                self.expired[usize::from(e.reason.as_u8())] += 1;
                7
            }
            Event::BookDelta(_) => 8,
            Event::StatusChanged(_) => 9,
            Event::MassCancelled(_) => 10,
            Event::BookChecked(_) => 11,
        };
        self.kinds[kind] += 1;
    }
}

/// The generator's sink: counters plus the ids of orders that rested, so that later commands
/// can aim at live orders. Used only outside the measured window.
struct Tracker {
    counters: Counters,
    rested: Vec<u64>,
}

impl EventSink for Tracker {
    fn event(&mut self, event: &Event) {
        if let Event::Rested(r) = event {
            self.rested.push(r.order_id.0);
        }
        self.counters.event(event);
    }
}

// ----- the workload --------------------------------------------------------------------------------

/// xorshift64*: small, seeded and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Three instruments with different tick, lot and band rules, and pools small enough that the
/// workload runs into every capacity limit now and then.
fn config() -> EngineConfig {
    let a = InstrumentSpec::simple("A", 10_000);
    let mut b = InstrumentSpec::simple("B", 5_000);
    b.tick_size = PriceTicks(5);
    b.lot_size = QtyLots(10);
    b.qty_max = QtyLots(1_000);
    b.notional_max = 3_000_000;
    b.price_band = PriceBand::Ticks(150);
    let mut c = InstrumentSpec::simple("C", 1_000);
    c.price_band = PriceBand::Bps(500);
    c.levels_per_side_max = 6;
    EngineConfig {
        limits: Limits {
            orders_max: 150,
            levels_max: 40,
            gtd_orders_max: 12,
        },
        instruments: vec![a, b, c],
    }
}

/// Builds commands against a twin engine so that cancels and replaces aim at live orders.
struct Generator {
    engine: Engine,
    rng: Rng,
    tracker: Tracker,
    /// Ids that rested at some point; pruned lazily when they turn out to be gone.
    live: Vec<u64>,
    seen: BTreeSet<u64>,
    halted: Option<u32>,
    /// Commands left in a burst of passive resting orders, which drives the pools to their
    /// limits so that the capacity rejects are exercised too.
    flood: u32,
    seq: u64,
    ts: u64,
    specs: Vec<InstrumentSpec>,
}

impl Generator {
    fn new(config: EngineConfig, seed: u64) -> Self {
        Generator {
            engine: Engine::new(config.clone()).expect("valid configuration"),
            rng: Rng(seed),
            tracker: Tracker {
                counters: Counters::new(),
                rested: Vec::new(),
            },
            live: Vec::new(),
            seen: BTreeSet::new(),
            halted: None,
            flood: 0,
            seq: 0,
            ts: 1_000_000,
            specs: config.instruments,
        }
    }

    fn step(&mut self) -> SequencedCommand {
        self.seq += 1;
        self.ts += self.rng.below(2_000);
        let command = self.command();
        let cmd = SequencedCommand {
            seq: self.seq,
            ts_ns: self.ts,
            command,
        };
        self.engine.apply(&cmd, &mut self.tracker);
        for id in self.tracker.rested.drain(..) {
            if self.seen.insert(id) {
                self.live.push(id);
            }
        }
        cmd
    }

    /// A live order id, dropping ids of orders that have gone in the meantime.
    fn live_order(&mut self) -> Option<u64> {
        while !self.live.is_empty() {
            let i = self.rng.below(self.live.len() as u64) as usize;
            let id = self.live[i];
            if self.engine.order(OrderId(id)).is_some() {
                return Some(id);
            }
            self.live.swap_remove(i);
        }
        None
    }

    fn command(&mut self) -> Command {
        // Halts are short: a halted instrument is usually resumed soon.
        if let Some(i) = self.halted {
            if self.rng.chance(20) {
                self.halted = None;
                return Command::SetStatus(SetStatus {
                    instrument: InstrumentId(i),
                    status: InstrumentStatus::Open,
                });
            }
        }
        if self.flood > 0 {
            self.flood -= 1;
            return Command::NewOrder(self.passive_order());
        }
        if self.rng.chance(1) {
            self.flood = 50 + self.rng.below(150) as u32;
        }
        match self.rng.below(100) {
            0..=29 => {
                let tif = self.rng.pick(&[
                    TimeInForce::Gtc,
                    TimeInForce::Gtc,
                    TimeInForce::Day,
                    TimeInForce::Gtd,
                ]);
                Command::NewOrder(self.limit_order(tif))
            }
            30..=37 => Command::NewOrder(self.limit_order(TimeInForce::Ioc)),
            38..=42 => Command::NewOrder(self.limit_order(TimeInForce::Fok)),
            43..=47 => {
                let mut o = self.limit_order(TimeInForce::Ioc);
                o.order_type = OrderType::Market;
                o.post_only = false;
                if self.rng.chance(30) {
                    o.tif = TimeInForce::Fok;
                }
                Command::NewOrder(o)
            }
            48..=64 => self.cancel(),
            65..=79 => self.replace(),
            80..=81 => Command::MassCancel(MassCancel {
                instrument: self
                    .rng
                    .chance(60)
                    .then(|| InstrumentId(self.rng.below(4) as u32)),
                account: self
                    .rng
                    .chance(60)
                    .then(|| AccountId(1 + self.rng.below(6) as u32)),
                client_order_id: ClientOrderId(self.seq),
            }),
            82 => Command::EndOfDay,
            83..=84 => {
                let i = self.rng.below(3) as u32;
                self.halted = Some(i);
                Command::SetStatus(SetStatus {
                    instrument: InstrumentId(i),
                    status: InstrumentStatus::Halted,
                })
            }
            85..=86 => {
                // A larger step in time, so that GTD orders reach their expiry.
                self.ts += self.rng.below(40_000);
                Command::Tick
            }
            // The book fingerprint walks a whole book; it must not allocate either.
            87 => Command::Checkpoint(ferrox_protocol::Checkpoint {
                instrument: InstrumentId(self.rng.below(3) as u32),
            }),
            _ => Command::NewOrder(self.hostile_order()),
        }
    }

    /// A price near the instrument's reference, on tick, sometimes just outside the band.
    fn price(&mut self, instrument: u32) -> i64 {
        let spec = &self.specs[instrument as usize];
        let tick = spec.tick_size.0;
        let reference = self
            .engine
            .reference_price(InstrumentId(instrument))
            .expect("instrument")
            .0;
        let (lo, hi) = self
            .engine
            .price_band(InstrumentId(instrument))
            .expect("instrument");
        let half = ((hi.0 - lo.0) / 2 / tick).clamp(1, 40) + 3;
        let offset = self.rng.below(2 * half as u64 + 1) as i64 - half;
        (reference / tick + offset) * tick
    }

    fn limit_order(&mut self, tif: TimeInForce) -> NewOrder {
        let instrument = self.rng.below(3) as u32;
        let lot = self.specs[instrument as usize].lot_size.0;
        let side = self.rng.pick(&[Side::Buy, Side::Sell]);
        let stp_mode = self.rng.pick(&[
            StpMode::CancelResting,
            StpMode::CancelResting,
            StpMode::CancelAggressor,
            StpMode::CancelBoth,
            StpMode::DecrementCancel,
            StpMode::Off,
        ]);
        NewOrder {
            instrument: InstrumentId(instrument),
            account: AccountId(1 + self.rng.below(6) as u32),
            client_order_id: ClientOrderId(self.seq),
            side,
            order_type: OrderType::Limit,
            price: PriceTicks(self.price(instrument)),
            qty: QtyLots(lot * (1 + self.rng.below(20))),
            tif,
            expire_ts_ns: if tif == TimeInForce::Gtd {
                self.ts + 1 + self.rng.below(60_000)
            } else {
                0
            },
            post_only: tif.rests() && self.rng.chance(10),
            stp_mode,
            stp_group: StpGroup(if self.rng.chance(20) {
                1 + self.rng.below(2) as u32
            } else {
                0
            }),
        }
    }

    /// A resting order away from the touch: bids below the reference, asks above it.
    fn passive_order(&mut self) -> NewOrder {
        let tif = self
            .rng
            .pick(&[TimeInForce::Gtc, TimeInForce::Day, TimeInForce::Gtd]);
        let mut o = self.limit_order(tif);
        o.post_only = false;
        let spec = &self.specs[o.instrument.0 as usize];
        let tick = spec.tick_size.0;
        let reference = self
            .engine
            .reference_price(o.instrument)
            .expect("instrument")
            .0;
        let away = tick * (1 + self.rng.below(3) as i64);
        o.price = PriceTicks(match o.side {
            Side::Buy => reference / tick * tick - away,
            Side::Sell => reference / tick * tick + away,
        });
        o
    }

    /// An order with one bad field, for the reject paths.
    fn hostile_order(&mut self) -> NewOrder {
        let mut o = self.limit_order(TimeInForce::Gtc);
        match self.rng.below(10) {
            0 => o.instrument = InstrumentId(3 + self.rng.below(u64::from(u32::MAX - 3)) as u32),
            1 => o.qty = QtyLots(0),
            2 => o.qty = QtyLots(u64::MAX - self.rng.below(3)),
            3 => o.price = PriceTicks(-(self.rng.below(1_000) as i64)),
            4 => {
                o.price = PriceTicks(if self.rng.chance(50) {
                    i64::MAX
                } else {
                    i64::MIN
                })
            }
            5 => {
                o.tif = TimeInForce::Gtd;
                o.expire_ts_ns = self.rng.below(self.ts + 1);
            }
            6 => o.expire_ts_ns = 1 + self.rng.below(1_000_000),
            7 => {
                o.order_type = OrderType::Market;
                o.tif = self.rng.pick(&[TimeInForce::Gtc, TimeInForce::Day]);
            }
            8 => {
                o.instrument = InstrumentId(1);
                if self.rng.chance(50) {
                    o.qty = QtyLots(15);
                } else {
                    o.price = PriceTicks(5_003);
                    o.qty = QtyLots(10);
                }
            }
            _ => {
                // Notional above the maximum on instrument B: 5000 * 1000 > 3 000 000.
                o.instrument = InstrumentId(1);
                o.price = PriceTicks(5_000);
                o.qty = QtyLots(1_000);
            }
        }
        o
    }

    fn cancel(&mut self) -> Command {
        let target = self.live_order();
        let (order_id, account) = match target {
            Some(id) if !self.rng.chance(8) => {
                let o = self.engine.order(OrderId(id)).expect("live order");
                (id, o.account.0)
            }
            // Another account's order, or an id that was never issued.
            Some(id) => (id, 7),
            None => (self.seq + 1_000, 1),
        };
        Command::Cancel(Cancel {
            order_id: OrderId(order_id),
            account: AccountId(account),
            client_order_id: ClientOrderId(self.seq),
        })
    }

    fn replace(&mut self) -> Command {
        let Some(id) = self.live_order() else {
            return Command::Tick;
        };
        let o = self.engine.order(OrderId(id)).expect("live order");
        let instrument = o.instrument.0;
        let lot = self.specs[instrument as usize].lot_size.0;
        let total = o.qty_filled.0 + o.qty_open.0;
        let (price, qty) = match self.rng.below(7) {
            // Reduce at the same price: keeps priority.
            0 | 1 if o.qty_open.0 > lot => (o.price.0, total - lot),
            // Grow at the same price: loses priority.
            2 => (o.price.0, total + lot * (1 + self.rng.below(5))),
            // New price, possibly crossing.
            3 | 4 => (self.price(instrument), total),
            // Nothing changes (also the reduction of an order with one lot open).
            0 | 1 | 5 => (o.price.0, total),
            // Not above the filled quantity.
            _ => (o.price.0, o.qty_filled.0),
        };
        Command::Replace(Replace {
            order_id: OrderId(id),
            account: o.account,
            client_order_id: ClientOrderId(self.seq),
            price: PriceTicks(price),
            qty: QtyLots(qty),
        })
    }
}

#[test]
fn counting_allocator_sees_this_threads_allocations() {
    // Guards the instrument itself: a counter that saw nothing would make the real test vacuous.
    let (v, n) = allocations_during(|| {
        let mut v: Vec<u64> = Vec::with_capacity(4);
        v.extend([1, 2, 3, 4, 5]);
        v
    });
    assert_eq!(v.len(), 5);
    assert!(n >= 2, "one allocation and one growth, saw {n}");
    let ((), n) = allocations_during(|| {
        let mut fixed = [0u64; 4];
        fixed[1] = 3;
        assert_eq!(fixed.iter().sum::<u64>(), 3);
    });
    assert_eq!(n, 0);
}

#[test]
fn engine_makes_no_allocation_per_command_after_warm_up() {
    const COMMANDS: usize = 200_000;
    const WARM_UP: usize = 10_000;

    let config = config();
    let mut generator = Generator::new(config.clone(), 0x00C0_FFEE_F00D_1234);
    let commands: Vec<SequencedCommand> = (0..COMMANDS).map(|_| generator.step()).collect();

    let mut engine = Engine::new(config).expect("valid configuration");
    let mut counters = Counters::new();
    for cmd in &commands[..WARM_UP] {
        engine.apply(cmd, &mut counters);
    }
    let warm = counters.clone();
    let all_before = ALL_ALLOCATIONS.load(Ordering::Relaxed);
    let ((), allocations) = allocations_during(|| {
        for cmd in &commands[WARM_UP..] {
            engine.apply(cmd, &mut counters);
        }
    });
    let all_during = ALL_ALLOCATIONS.load(Ordering::Relaxed) - all_before;
    assert_eq!(
        allocations,
        0,
        "the engine allocated {allocations} times over {} commands \
         (all threads together: {all_during})",
        COMMANDS - WARM_UP
    );

    // The measured engine replayed exactly what the generator's twin saw.
    assert_eq!(engine.state_hash(), generator.engine.state_hash());
    assert_eq!(counters, generator.tracker.counters);

    // What happened in the measured phase alone.
    let mut measured = counters.clone();
    let pairs = [
        (&mut measured.kinds[..], &warm.kinds[..]),
        (&mut measured.rejects[..], &warm.rejects[..]),
        (&mut measured.cancels[..], &warm.cancels[..]),
        (&mut measured.expired[..], &warm.expired[..]),
    ];
    for (m, w) in pairs {
        for (m, w) in m.iter_mut().zip(w) {
            *m -= w;
        }
    }

    // The measured phase really exercised every path it claims to.
    for kind in KINDS {
        assert!(
            measured.kind(kind) > 0,
            "no {kind} event in the measured phase"
        );
    }
    for reason in CancelReason::ALL {
        assert!(
            measured.cancelled(*reason) > 0,
            "no Cancelled({reason:?}) in the measured phase"
        );
    }
    for reason in ExpireReason::ALL {
        assert!(
            measured.expired[usize::from(reason.as_u8())] > 0,
            "no Expired({reason:?}) in the measured phase"
        );
    }
    for code in RejectCode::ALL {
        if *code == RejectCode::Overflow {
            continue;
        }
        assert!(
            measured.rejected(*code) > 0,
            "no Rejected({code:?}) in the measured phase: {measured:?}"
        );
    }
}
