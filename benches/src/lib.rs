//! Workload generators and harnesses for Ferrox's benchmarks.
//!
//! # The workload
//!
//! In the style of exchange-core's test order generator: a seeded stream of new GTC limit
//! orders, aggressive IOC orders, cancels and moves (replaces to a new price), over one or many
//! instruments, with a pre-fill phase that builds the target book before the measured phase.
//!
//! It is *fill-aware*: every cancel and move targets an order that is live at that point. The
//! generator gets that knowledge the simplest honest way: it runs its own [`Engine`] on the
//! commands it makes and folds the events (`Rested`, `Trade`, `Cancelled`, `Replaced`, ...) into
//! a [`BookModel`]. It records the command list; a benchmark replays the list on a fresh engine
//! with the same configuration, which, being deterministic, goes through exactly the same
//! states (so the same orders are live when each cancel or move arrives). The generator counts
//! every `Rejected` event; a healthy workload has none.
//!
//! Prices: passive orders lie 1..=`price_range_ticks` ticks from a fixed mid (bids below it,
//! asks above it, uniformly), so passive orders and moves never cross; IOC orders are priced
//! `price_range_ticks` through the mid and take liquidity from the best levels. The book size
//! of each instrument is held near its target: when it is more than a small tolerance below
//! target a cancel becomes a new order, when above, a new order becomes a cancel (the realised
//! mix is reported).

pub mod plot;
pub mod report;
pub mod suite;
pub mod timer;
pub mod workloads;

pub use workloads::{parse_spec, workload_by_name, AvalancheConfig, WorkloadSpec, WORKLOAD_NAMES};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use ferrox_engine::{Engine, EngineConfig, InstrumentSpec, Limits};
use ferrox_protocol::{
    AccountId, Cancel, ClientOrderId, Command, Event, InstrumentId, NewOrder, NullSink, OrderId,
    PriceTicks, QtyLots, Replace, SequencedCommand, Side, TimeInForce, VecSink,
};

// ----- random numbers ---------------------------------------------------------------------

/// SplitMix64: tiny, fast, and good enough for workload generation; fully determined by the
/// seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-40 for our `n`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn side(&mut self) -> Side {
        if self.next_u64() & 1 == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

// ----- configuration ----------------------------------------------------------------------

/// Relative weights of the measured-phase operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// New passive GTC limit order (rests, never crosses).
    pub new_gtc: u32,
    /// New aggressive IOC limit order (crosses; trades with the best levels).
    pub ioc: u32,
    /// Cancel of a live order.
    pub cancel: u32,
    /// Move: replace of a live order to a new price on its side, same open quantity.
    pub replace: u32,
}

impl Default for Mix {
    /// exchange-core's mix: 9% GTC, 3% IOC, 6% cancel, 82% move.
    fn default() -> Self {
        Mix {
            new_gtc: 90,
            ioc: 30,
            cancel: 60,
            replace: 820,
        }
    }
}

/// The four kinds of measured command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    NewGtc,
    Ioc,
    Cancel,
    Replace,
}

impl OpKind {
    pub const ALL: [OpKind; 4] = [OpKind::NewGtc, OpKind::Ioc, OpKind::Cancel, OpKind::Replace];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            OpKind::NewGtc => "new GTC",
            OpKind::Ioc => "IOC",
            OpKind::Cancel => "cancel",
            OpKind::Replace => "move",
        }
    }

    /// Classifies a command of this crate's workloads.
    pub fn of(command: &Command) -> Option<OpKind> {
        match command {
            Command::NewOrder(o) if o.tif == TimeInForce::Ioc => Some(OpKind::Ioc),
            Command::NewOrder(_) => Some(OpKind::NewGtc),
            Command::Cancel(_) => Some(OpKind::Cancel),
            Command::Replace(_) => Some(OpKind::Replace),
            _ => None,
        }
    }
}

/// How measured-phase activity spreads over instruments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activity {
    Uniform,
    /// Each instrument gets a weight drawn from a Pareto distribution with this shape (as
    /// exchange-core does with 1.5): a few instruments see most of the traffic.
    Pareto {
        alpha: f64,
    },
}

/// Everything that shapes a workload except its seed and length.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    pub name: String,
    pub instruments: u32,
    /// Target resting orders per instrument (pre-fill builds it, the measured phase keeps it).
    pub orders_per_instrument: u32,
    /// Passive prices lie 1..=this many ticks away from the mid, uniformly.
    pub price_range_ticks: i64,
    /// The fixed mid (and the instruments' configured reference price), in ticks.
    pub mid_price: i64,
    /// Order quantities are uniform in 1..=this many lots.
    pub order_qty_max: u64,
    /// Accounts are drawn uniformly from 1..=accounts.
    pub accounts: u32,
    pub mix: Mix,
    pub activity: Activity,
    pub limits: Limits,
    pub levels_per_side_max: u32,
    /// Each book side's direct-mapped price window, in ticks (see the engine's ladder).
    pub ladder_window_ticks: u32,
}

impl WorkloadConfig {
    /// One instrument, about 1,000 resting orders over about 750 price levels.
    pub fn small() -> WorkloadConfig {
        WorkloadConfig {
            name: "small".into(),
            instruments: 1,
            orders_per_instrument: 1_000,
            price_range_ticks: 820,
            mid_price: 100_000,
            order_qty_max: 100,
            accounts: 1_000,
            mix: Mix::default(),
            activity: Activity::Uniform,
            limits: Limits {
                orders_max: 2_048,
                levels_max: 2_048,
                gtd_orders_max: 1,
            },
            levels_per_side_max: 1_024,
            ladder_window_ticks: ferrox_engine::config::DEFAULT_LADDER_WINDOW_TICKS,
        }
    }

    /// 100 instruments of the small preset's shape: 100,000 resting orders over about 75,000
    /// levels, with Pareto-distributed activity.
    pub fn medium() -> WorkloadConfig {
        WorkloadConfig {
            name: "medium".into(),
            instruments: 100,
            activity: Activity::Pareto { alpha: 1.5 },
            accounts: 10_000,
            // At most 100 x (1,000 + 20 tolerance + 1) orders; at most 100 x 2 x 820 levels in
            // theory, about 75,000 in practice.
            limits: Limits {
                orders_max: 1 << 17,
                levels_max: 1 << 17,
                gtd_orders_max: 1,
            },
            ..WorkloadConfig::small()
        }
    }

    /// 10,000 instruments with 100 resting orders each (1,000,000 orders), Pareto activity.
    /// The price range is scaled with the book (82 ticks a side instead of 820) so that about
    /// 50 orders a side lie on about 37 levels, the small preset's orders-per-level ratio.
    pub fn wide() -> WorkloadConfig {
        WorkloadConfig {
            name: "wide".into(),
            instruments: 10_000,
            orders_per_instrument: 100,
            price_range_ticks: 82,
            activity: Activity::Pareto { alpha: 1.5 },
            accounts: 100_000,
            // Orders: at most 10,000 x (100 + 2 tolerance + 1) = 1.03M < 2^20. Levels: about
            // 750,000 (37.5 a side per book), 13% headroom.
            limits: Limits {
                orders_max: 1 << 20,
                levels_max: 851_968,
                gtd_orders_max: 1,
            },
            // A side can never hold more than 82 levels (its whole price range).
            levels_per_side_max: 128,
            // The whole range (2 x 82 ticks) fits a 256-tick window; 10,000 books with the
            // default 2,048-tick window would spend 160 MiB on empty slots.
            ladder_window_ticks: 256,
            ..WorkloadConfig::small()
        }
    }

    /// 1,000 instruments of the small preset's shape: 1,000,000 resting orders over about
    /// 750,000 levels, with Pareto-distributed activity.
    pub fn large() -> WorkloadConfig {
        WorkloadConfig {
            name: "large".into(),
            instruments: 1_000,
            activity: Activity::Pareto { alpha: 1.5 },
            accounts: 100_000,
            // 1,000,000 orders need ~4.9% headroom at most (the generator keeps every book
            // within a tolerance of its target); a power of two keeps the id index at 8 bytes
            // per slot.
            limits: Limits {
                orders_max: 1 << 20,
                levels_max: 851_968,
                gtd_orders_max: 1,
            },
            levels_per_side_max: 512,
            ..WorkloadConfig::small()
        }
    }

    pub fn preset(name: &str) -> Option<WorkloadConfig> {
        match name {
            "small" => Some(WorkloadConfig::small()),
            "medium" => Some(WorkloadConfig::medium()),
            "large" => Some(WorkloadConfig::large()),
            "wide" => Some(WorkloadConfig::wide()),
            _ => None,
        }
    }

    pub fn target_orders(&self) -> u64 {
        u64::from(self.instruments) * u64::from(self.orders_per_instrument)
    }

    pub fn engine_config(&self) -> EngineConfig {
        let instruments = (0..self.instruments)
            .map(|i| {
                let mut spec = InstrumentSpec::simple(&format!("SYM{i:05}"), self.mid_price);
                spec.levels_per_side_max = self.levels_per_side_max;
                spec.ladder_window_ticks = self.ladder_window_ticks;
                spec
            })
            .collect();
        EngineConfig {
            limits: self.limits.clone(),
            instruments,
        }
    }

    /// A random passive price on `side`.
    pub fn passive_price(&self, rng: &mut Rng, side: Side) -> i64 {
        let offset = 1 + rng.below(self.price_range_ticks as u64) as i64;
        match side {
            Side::Buy => self.mid_price - offset,
            Side::Sell => self.mid_price + offset,
        }
    }

    /// The limit of an aggressive order on `side`: through the whole opposite range.
    pub fn aggressive_price(&self, side: Side) -> i64 {
        match side {
            Side::Buy => self.mid_price + self.price_range_ticks,
            Side::Sell => self.mid_price - self.price_range_ticks,
        }
    }

    pub fn random_qty(&self, rng: &mut Rng) -> u64 {
        1 + rng.below(self.order_qty_max)
    }

    pub fn random_account(&self, rng: &mut Rng) -> u32 {
        1 + rng.below(u64::from(self.accounts)) as u32
    }
}

// ----- the generator's view of the books -----------------------------------------------------

/// A live order as the generator knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveOrder {
    pub id: u64,
    pub instrument: u32,
    pub account: u32,
    pub side: Side,
    pub price: i64,
    pub open: u64,
    /// Filled plus open: the quantity a replace must give to keep the open quantity.
    pub total: u64,
}

/// Order ids are sequence numbers; a multiplicative hash spreads them well enough.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Live orders per instrument (for uniform random picks) and per price level in time priority
/// (for the best levels), maintained from engine events or by direct calls.
pub struct BookModel {
    orders: IdMap<(LiveOrder, usize)>,
    by_instrument: Vec<Vec<u64>>,
    /// Per instrument: [bids, asks], price -> ids in time priority.
    levels: Vec<[BTreeMap<i64, VecDeque<u64>>; 2]>,
    /// Total quantity of the order currently being processed (from `Accepted`/`Replaced`).
    pending_total: (u64, u64),
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

impl BookModel {
    pub fn new(instruments: u32) -> BookModel {
        BookModel {
            orders: IdMap::default(),
            by_instrument: vec![Vec::new(); instruments as usize],
            levels: (0..instruments)
                .map(|_| [BTreeMap::new(), BTreeMap::new()])
                .collect(),
            pending_total: (0, 0),
        }
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    pub fn live(&self, instrument: u32) -> usize {
        self.by_instrument[instrument as usize].len()
    }

    /// Price levels of one side of one instrument.
    pub fn level_count(&self, instrument: u32, side: Side) -> usize {
        self.levels[instrument as usize][side_index(side)].len()
    }

    pub fn levels_total(&self) -> usize {
        self.levels.iter().map(|l| l[0].len() + l[1].len()).sum()
    }

    pub fn get(&self, id: u64) -> Option<&LiveOrder> {
        self.orders.get(&id).map(|(o, _)| o)
    }

    /// Adds an order at the back of its level.
    pub fn insert(&mut self, o: LiveOrder) {
        let list = &mut self.by_instrument[o.instrument as usize];
        list.push(o.id);
        let pos = list.len() - 1;
        let old = self.orders.insert(o.id, (o, pos));
        assert!(old.is_none(), "model: order {} inserted twice", o.id);
        self.levels[o.instrument as usize][side_index(o.side)]
            .entry(o.price)
            .or_default()
            .push_back(o.id);
    }

    pub fn remove(&mut self, id: u64) -> Option<LiveOrder> {
        let (o, pos) = self.orders.remove(&id)?;
        let list = &mut self.by_instrument[o.instrument as usize];
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            self.orders
                .get_mut(&moved)
                .expect("listed order is mapped")
                .1 = pos;
        }
        let side = &mut self.levels[o.instrument as usize][side_index(o.side)];
        let queue = side
            .get_mut(&o.price)
            .expect("model: level of a live order");
        let at = queue
            .iter()
            .position(|&x| x == id)
            .expect("model: order in its level");
        queue.remove(at);
        if queue.is_empty() {
            side.remove(&o.price);
        }
        Some(o)
    }

    fn update(&mut self, id: u64, f: impl FnOnce(&mut LiveOrder)) {
        if let Some((o, _)) = self.orders.get_mut(&id) {
            f(o);
        }
    }

    /// A uniformly random live order of `instrument`.
    pub fn random_order(&self, instrument: u32, rng: &mut Rng) -> Option<LiveOrder> {
        let list = &self.by_instrument[instrument as usize];
        if list.is_empty() {
            return None;
        }
        let id = list[rng.below(list.len() as u64) as usize];
        self.get(id).copied()
    }

    /// The best `n` levels of a side, best first, each with its orders in time priority.
    pub fn top_levels(&self, instrument: u32, side: Side, n: usize) -> Vec<(i64, Vec<LiveOrder>)> {
        let levels = &self.levels[instrument as usize][side_index(side)];
        let orders = |q: &VecDeque<u64>| q.iter().map(|id| *self.get(*id).expect("live")).collect();
        match side {
            Side::Buy => levels
                .iter()
                .rev()
                .take(n)
                .map(|(p, q)| (*p, orders(q)))
                .collect(),
            Side::Sell => levels
                .iter()
                .take(n)
                .map(|(p, q)| (*p, orders(q)))
                .collect(),
        }
    }

    /// Folds one engine event into the model.
    pub fn on_event(&mut self, event: &Event) {
        match event {
            Event::Accepted(a) => self.pending_total = (a.order_id.0, a.qty.0),
            Event::Replaced(r) if r.priority_kept => self.update(r.order_id.0, |o| {
                o.open = r.qty_open.0;
                o.total = r.qty_filled.0 + r.qty_open.0;
            }),
            Event::Replaced(r) => {
                self.remove(r.order_id.0);
                self.pending_total = (r.order_id.0, r.qty_filled.0 + r.qty_open.0);
            }
            Event::Rested(r) => {
                let total = if self.pending_total.0 == r.order_id.0 {
                    self.pending_total.1
                } else {
                    r.qty_open.0
                };
                self.insert(LiveOrder {
                    id: r.order_id.0,
                    instrument: r.instrument.0,
                    account: r.account.0,
                    side: r.side,
                    price: r.price.0,
                    open: r.qty_open.0,
                    total,
                });
            }
            Event::Trade(t) => {
                if t.maker_qty_open.0 == 0 {
                    self.remove(t.maker_order_id.0);
                } else {
                    self.update(t.maker_order_id.0, |o| o.open = t.maker_qty_open.0);
                }
            }
            Event::Restated(r) => {
                self.update(r.order_id.0, |o| {
                    o.open = r.qty_open.0;
                    o.total -= r.qty_reduced.0;
                });
                if self.pending_total.0 == r.order_id.0 {
                    self.pending_total.1 -= r.qty_reduced.0;
                }
            }
            Event::Cancelled(c) => {
                self.remove(c.order_id.0);
            }
            Event::Expired(e) => {
                self.remove(e.order_id.0);
            }
            Event::Rejected(_)
            | Event::BookDelta(_)
            | Event::StatusChanged(_)
            | Event::MassCancelled(_)
            | Event::BookChecked(_) => {}
        }
    }
}

// ----- the generator ----------------------------------------------------------------------

/// What the generator saw while making a workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Measured commands by [`OpKind`] index (after book-size balancing).
    pub ops: [u64; 4],
    /// Balancing conversions: cancels that became new orders, new orders that became cancels.
    pub cancel_to_new: u64,
    pub new_to_cancel: u64,
    /// Events of the measured phase.
    pub trades: u64,
    pub rejects: u64,
    pub self_trade_cancels: u64,
    pub ioc_remainders: u64,
    pub events: u64,
    /// Rejects during pre-fill (should be 0).
    pub prefill_rejects: u64,
    pub orders_after_prefill: u64,
    pub levels_after_prefill: u64,
    pub orders_end: u64,
    pub levels_end: u64,
    pub orders_min: u64,
    pub orders_max: u64,
    pub levels_min: u64,
    pub levels_max: u64,
    pub state_hash_after_prefill: u64,
    pub state_hash_end: u64,
    /// Avalanche workloads: IOC orders that swept, the price levels they traded at (total and
    /// the most by one IOC) and their trades.
    pub sweeps: u64,
    pub levels_swept: u64,
    pub levels_swept_max: u64,
    pub sweep_trades: u64,
}

impl GenStats {
    /// Mean price levels one sweeping IOC traded at (0 without sweeps).
    pub fn levels_per_sweep(&self) -> f64 {
        self.levels_swept as f64 / self.sweeps.max(1) as f64
    }

    /// Mean trades per sweeping IOC (0 without sweeps).
    pub fn trades_per_sweep(&self) -> f64 {
        self.sweep_trades as f64 / self.sweeps.max(1) as f64
    }
}

/// A recorded workload: replay `prefill` then `measured` on a fresh engine made from
/// `engine_config` (for generated workloads, `config.engine_config()`).
///
/// Workloads that are not generated (a command file, LOBSTER data) carry a `config` that
/// only says what it can: their name, instrument count and limits; its generator fields
/// (price range, mix, ...) do not describe them.
pub struct Workload {
    /// The workload's name in reports: a preset, "avalanche", "lobster-aapl", "file-<stem>".
    pub name: String,
    pub engine_config: EngineConfig,
    pub config: WorkloadConfig,
    pub seed: u64,
    pub prefill: Vec<SequencedCommand>,
    pub measured: Vec<SequencedCommand>,
    pub stats: GenStats,
}

impl Workload {
    pub fn fresh_engine(&self) -> Engine {
        Engine::new(self.engine_config.clone()).expect("workload configurations are valid")
    }

    /// Instruments of the engine configuration.
    pub fn instruments(&self) -> u32 {
        self.engine_config.instruments.len() as u32
    }

    /// A fresh engine with the pre-fill applied (events dropped).
    pub fn prefilled_engine(&self) -> Engine {
        let mut engine = self.fresh_engine();
        for cmd in &self.prefill {
            engine.apply(cmd, &mut NullSink);
        }
        engine
    }

    /// A fresh engine with the pre-fill applied, and the model of its live orders.
    pub fn prefilled_with_model(&self) -> (Engine, BookModel) {
        let mut engine = self.fresh_engine();
        let mut model = BookModel::new(self.instruments());
        let mut sink = VecSink::default();
        for cmd in &self.prefill {
            engine.apply(cmd, &mut sink);
            for ev in sink.events.drain(..) {
                model.on_event(&ev);
            }
        }
        (engine, model)
    }
}

/// Picks instruments by activity weight (cumulative weights and a binary search).
pub struct InstrumentPicker {
    cumulative: Vec<f64>,
}

impl InstrumentPicker {
    pub fn new(instruments: u32, activity: Activity, rng: &mut Rng) -> InstrumentPicker {
        let mut acc = 0.0;
        let cumulative = (0..instruments)
            .map(|_| {
                acc += match activity {
                    Activity::Uniform => 1.0,
                    // Inverse CDF of Pareto(x_m = 1, alpha); 1 - u is in (0, 1].
                    Activity::Pareto { alpha } => (1.0 - rng.unit()).powf(-1.0 / alpha),
                };
                acc
            })
            .collect();
        InstrumentPicker { cumulative }
    }

    pub fn pick(&self, rng: &mut Rng) -> u32 {
        if self.cumulative.len() == 1 {
            return 0;
        }
        let x = rng.unit() * self.cumulative[self.cumulative.len() - 1];
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1) as u32
    }

    /// Share of activity of the busiest `fraction` of instruments.
    pub fn top_share(&self, fraction: f64) -> f64 {
        let mut w: Vec<f64> = self
            .cumulative
            .iter()
            .scan(0.0, |prev, &c| {
                let x = c - *prev;
                *prev = c;
                Some(x)
            })
            .collect();
        w.sort_by(|a, b| b.total_cmp(a));
        let n = ((w.len() as f64 * fraction).ceil() as usize).max(1);
        w[..n].iter().sum::<f64>() / w.iter().sum::<f64>()
    }
}

struct Gen<'a> {
    config: &'a WorkloadConfig,
    rng: Rng,
    engine: Engine,
    model: BookModel,
    sink: VecSink,
    seq: u64,
    stats: GenStats,
}

impl Gen<'_> {
    fn apply(&mut self, command: Command, out: &mut Vec<SequencedCommand>, measured: bool) {
        self.seq += 1;
        let cmd = SequencedCommand {
            seq: self.seq,
            ts_ns: self.seq,
            command,
        };
        self.engine.apply(&cmd, &mut self.sink);
        for ev in self.sink.events.drain(..) {
            self.model.on_event(&ev);
            if !measured {
                if matches!(ev, Event::Rejected(_)) {
                    self.stats.prefill_rejects += 1;
                }
                continue;
            }
            self.stats.events += 1;
            match ev {
                Event::Trade(_) => self.stats.trades += 1,
                Event::Rejected(_) => self.stats.rejects += 1,
                Event::Cancelled(c) => match c.reason {
                    ferrox_protocol::CancelReason::IocRemainder => self.stats.ioc_remainders += 1,
                    ferrox_protocol::CancelReason::SelfTradeResting => {
                        self.stats.self_trade_cancels += 1
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        out.push(cmd);
    }

    fn new_passive(&mut self, instrument: u32) -> Command {
        let side = self.rng.side();
        let price = self.config.passive_price(&mut self.rng, side);
        let qty = self.config.random_qty(&mut self.rng);
        let account = self.config.random_account(&mut self.rng);
        Command::NewOrder(NewOrder::limit(
            InstrumentId(instrument),
            AccountId(account),
            ClientOrderId(self.seq + 1),
            side,
            PriceTicks(price),
            QtyLots(qty),
        ))
    }

    fn new_ioc(&mut self, instrument: u32) -> Command {
        let side = self.rng.side();
        let qty = self.config.random_qty(&mut self.rng);
        let account = self.config.random_account(&mut self.rng);
        let mut o = NewOrder::limit(
            InstrumentId(instrument),
            AccountId(account),
            ClientOrderId(self.seq + 1),
            side,
            PriceTicks(self.config.aggressive_price(side)),
            QtyLots(qty),
        );
        o.tif = TimeInForce::Ioc;
        Command::NewOrder(o)
    }

    fn cancel(&mut self, o: LiveOrder) -> Command {
        Command::Cancel(Cancel {
            order_id: OrderId(o.id),
            account: AccountId(o.account),
            client_order_id: ClientOrderId(self.seq + 1),
        })
    }

    fn replace(&mut self, o: LiveOrder) -> Command {
        let mut price = o.price;
        while price == o.price {
            price = self.config.passive_price(&mut self.rng, o.side);
        }
        Command::Replace(Replace {
            order_id: OrderId(o.id),
            account: AccountId(o.account),
            client_order_id: ClientOrderId(self.seq + 1),
            price: PriceTicks(price),
            qty: QtyLots(o.total),
        })
    }

    fn track_sizes(&mut self) {
        let orders = u64::from(self.engine.orders_live());
        let levels = u64::from(self.engine.levels_live());
        let s = &mut self.stats;
        s.orders_min = s.orders_min.min(orders);
        s.orders_max = s.orders_max.max(orders);
        s.levels_min = s.levels_min.min(levels);
        s.levels_max = s.levels_max.max(levels);
    }
}

/// Share of measured commands going to the busiest 1% / 10% of instruments (for reports).
pub fn activity_concentration(config: &WorkloadConfig, seed: u64) -> (f64, f64) {
    let mut rng = Rng::new(seed);
    let picker = InstrumentPicker::new(config.instruments, config.activity, &mut rng);
    (picker.top_share(0.01), picker.top_share(0.10))
}

/// Generates a workload: pre-fill to the target book, then `commands` measured commands.
pub fn generate(config: &WorkloadConfig, commands: usize, seed: u64) -> Workload {
    let mut rng = Rng::new(seed);
    // The picker draws first so that `activity_concentration` sees the same weights.
    let picker = InstrumentPicker::new(config.instruments, config.activity, &mut rng);
    let mut g = Gen {
        config,
        rng,
        engine: Engine::new(config.engine_config()).expect("workload presets are valid"),
        model: BookModel::new(config.instruments),
        sink: VecSink::default(),
        seq: 0,
        stats: GenStats::default(),
    };
    let target = config.orders_per_instrument as usize;

    // Pre-fill: every instrument's target, interleaved at random so that one book's orders
    // are spread over the pool as they would be after a while of trading.
    let mut fill: Vec<u32> = (0..config.instruments)
        .flat_map(|i| std::iter::repeat_n(i, target))
        .collect();
    g.rng.shuffle(&mut fill);
    let mut prefill = Vec::with_capacity(fill.len());
    for &instrument in &fill {
        let cmd = g.new_passive(instrument);
        g.apply(cmd, &mut prefill, false);
    }
    drop(fill);
    g.stats.orders_after_prefill = u64::from(g.engine.orders_live());
    g.stats.levels_after_prefill = u64::from(g.engine.levels_live());
    g.stats.state_hash_after_prefill = g.engine.state_hash();
    g.stats.orders_min = u64::MAX;
    g.stats.levels_min = u64::MAX;
    g.track_sizes();

    // Measured phase.
    let mix = config.mix;
    let weight_total = u64::from(mix.new_gtc + mix.ioc + mix.cancel + mix.replace);
    let tolerance = (target / 50).max(2);
    let mut measured = Vec::with_capacity(commands);
    for _ in 0..commands {
        let instrument = picker.pick(&mut g.rng);
        let live = g.model.live(instrument);
        let r = g.rng.below(weight_total) as u32;
        let mut op = if r < mix.new_gtc {
            OpKind::NewGtc
        } else if r < mix.new_gtc + mix.ioc {
            OpKind::Ioc
        } else if r < mix.new_gtc + mix.ioc + mix.cancel {
            OpKind::Cancel
        } else {
            OpKind::Replace
        };
        if op == OpKind::Cancel && live + tolerance < target {
            op = OpKind::NewGtc;
            g.stats.cancel_to_new += 1;
        } else if op == OpKind::NewGtc && live > target + tolerance {
            op = OpKind::Cancel;
            g.stats.new_to_cancel += 1;
        }
        if live == 0 && matches!(op, OpKind::Cancel | OpKind::Replace) {
            op = OpKind::NewGtc;
        }
        let cmd = match op {
            OpKind::NewGtc => g.new_passive(instrument),
            OpKind::Ioc => g.new_ioc(instrument),
            OpKind::Cancel => {
                let o = g
                    .model
                    .random_order(instrument, &mut g.rng)
                    .expect("live > 0");
                g.cancel(o)
            }
            OpKind::Replace => {
                let o = g
                    .model
                    .random_order(instrument, &mut g.rng)
                    .expect("live > 0");
                g.replace(o)
            }
        };
        g.stats.ops[op.index()] += 1;
        g.apply(cmd, &mut measured, true);
        g.track_sizes();
    }
    g.stats.orders_end = u64::from(g.engine.orders_live());
    g.stats.levels_end = u64::from(g.engine.levels_live());
    g.stats.state_hash_end = g.engine.state_hash();
    assert_eq!(
        g.model.len() as u64,
        g.stats.orders_end,
        "model and engine agree on live orders"
    );
    Workload {
        name: config.name.clone(),
        engine_config: config.engine_config(),
        config: config.clone(),
        seed,
        prefill,
        measured,
        stats: g.stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WorkloadConfig {
        WorkloadConfig {
            instruments: 3,
            orders_per_instrument: 200,
            price_range_ticks: 160,
            limits: Limits {
                orders_max: 1_024,
                levels_max: 2_048,
                gtd_orders_max: 1,
            },
            activity: Activity::Pareto { alpha: 1.5 },
            ..WorkloadConfig::small()
        }
    }

    #[test]
    fn same_seed_same_workload_and_replay_reaches_the_generator_state() {
        let a = generate(&tiny(), 20_000, 7);
        let b = generate(&tiny(), 20_000, 7);
        assert_eq!(a.prefill, b.prefill);
        assert_eq!(a.measured, b.measured);
        assert_ne!(
            generate(&tiny(), 2_000, 8).measured[..],
            a.measured[..2_000]
        );

        let mut engine = a.prefilled_engine();
        assert_eq!(engine.state_hash(), a.stats.state_hash_after_prefill);
        let mut sink = VecSink::default();
        let mut rejects = 0;
        for cmd in &a.measured {
            engine.apply(cmd, &mut sink);
            rejects += sink
                .take()
                .iter()
                .filter(|e| matches!(e, Event::Rejected(_)))
                .count();
        }
        assert_eq!(rejects, 0);
        assert_eq!(engine.state_hash(), a.stats.state_hash_end);
    }

    #[test]
    fn workload_is_fill_aware_and_keeps_the_book_near_target() {
        let w = generate(&tiny(), 30_000, 1);
        let s = &w.stats;
        assert_eq!(s.prefill_rejects, 0);
        assert_eq!(s.rejects, 0, "every cancel and move targets a live order");
        assert_eq!(s.orders_after_prefill, 600);
        assert!(s.trades > 0);
        assert!(
            s.orders_min >= 600 - 3 * 10 && s.orders_max <= 600 + 3 * 10,
            "{s:?}"
        );
        let total: u64 = s.ops.iter().sum();
        assert_eq!(total, 30_000);
        let replace_share = s.ops[OpKind::Replace.index()] as f64 / total as f64;
        assert!((replace_share - 0.82).abs() < 0.02, "{replace_share}");
        assert!(s.ops[OpKind::Ioc.index()] > 0 && s.ops[OpKind::Cancel.index()] > 0);
    }

    #[test]
    fn rng_below_is_in_range_and_spread() {
        let mut rng = Rng::new(3);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }
}
