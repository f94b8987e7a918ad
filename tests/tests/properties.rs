//! Property tests: the engine against the reference model in `ferrox_tests::reference`, event
//! for event and state for state after every command, over long random command streams.
//!
//! Every case derives from one u64 seed through a small xorshift generator, so a failure is
//! reproduced exactly with `FERROX_SEED=<seed> cargo test -p ferrox-tests --test properties`.
//! `FERROX_PROPTEST_CASES=<n>` changes the number of random cases per property. quickcheck
//! drives the runs (it draws the seeds and reports the failing one); the command streams come
//! from our own generator, because quickcheck's `Gen` cannot be seeded.
//!
//! On a mismatch the failure message names the seed, the command index, the command, both event
//! lists and both states, and then a shrunk command sequence that still shows a mismatch.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use ferrox_engine::{BookSnapshot, Engine, EngineConfig, InstrumentSpec, Limits, PriceBand};
use ferrox_protocol::{
    AccountId, Cancel, CancelReason, ClientOrderId, Command, Event, ExpireReason, InstrumentId,
    InstrumentStatus, MassCancel, NewOrder, OrderId, OrderType, PriceTicks, QtyLots, RejectCode,
    Replace, RequestKind, SequencedCommand, SetStatus, Side, StpGroup, StpMode, TimeInForce,
    VecSink,
};
use ferrox_tests::reference::ReferenceBook;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// Random cases per property when `FERROX_PROPTEST_CASES` is not set. Kept moderate so that the
/// whole file stays fast in a debug build too.
const DEFAULT_CASES: u64 = 64;
/// Commands per case.
const COMMANDS_PER_CASE: usize = 1000;
const ACCOUNTS: u32 = 4;

// ----- seeded randomness ------------------------------------------------------------------

/// xorshift64*, seeded through SplitMix64 so that small or zero seeds still give good streams.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // xorshift's state must never be zero.
        Rng(z | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (the modulo bias is irrelevant for test generation).
    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo <= hi, "between({lo}, {hi})");
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn weighted<T: Copy>(&mut self, items: &[(u64, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.below(total);
        for (w, item) in items {
            if roll < *w {
                return *item;
            }
            roll -= w;
        }
        unreachable!("roll below the total weight always lands on an item")
    }
}

// ----- configurations ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    /// Generous limits: the matching rules themselves.
    Roomy,
    /// Small pools and level caps, so that capacity rejects happen often.
    Tight,
    /// Extreme but valid configurations: a zero-width band, a band wider than the price (so
    /// that a market sell's band edge is negative), and prices and quantities near the top of
    /// their types.
    Edge,
}

/// Three instruments: a plain one with a bps band, one with tick 5, lot 10, a tick band that is
/// not a multiple of the tick size and small quantity/notional maxima, and a cheap one with a
/// tick of 2 and a wider bps band.
fn instruments(levels_per_side_max: [u32; 3]) -> Vec<InstrumentSpec> {
    let mut aaa = InstrumentSpec::simple("AAA", 1_000);
    aaa.price_band = PriceBand::Bps(100);
    aaa.qty_max = QtyLots(1_000);
    aaa.levels_per_side_max = levels_per_side_max[0];

    let mut bbb = InstrumentSpec::simple("BBB", 5_000);
    bbb.tick_size = PriceTicks(5);
    bbb.lot_size = QtyLots(10);
    bbb.price_band = PriceBand::Ticks(42);
    bbb.qty_max = QtyLots(200);
    bbb.notional_max = 600_000;
    bbb.levels_per_side_max = levels_per_side_max[1];

    let mut ccc = InstrumentSpec::simple("CCC", 200);
    ccc.tick_size = PriceTicks(2);
    ccc.price_band = PriceBand::Bps(500);
    ccc.qty_max = QtyLots(50);
    ccc.levels_per_side_max = levels_per_side_max[2];

    vec![aaa, bbb, ccc]
}

/// Orders at most in the edge profile; `qty_max` of its huge instrument is `u64::MAX` divided by
/// this, the largest the engine accepts.
const EDGE_ORDERS_MAX: u32 = 200;

fn edge_instruments() -> Vec<InstrumentSpec> {
    // Only the reference price is inside a zero-width band, so every limit order there either
    // rests at it or trades at it.
    let mut zero = InstrumentSpec::simple("ZERO", 100);
    zero.price_band = PriceBand::Ticks(0);
    zero.qty_max = QtyLots(100);
    zero.levels_per_side_max = 64;
    // Configured as halted, so that a book starts halted until an operator resumes it.
    zero.status = InstrumentStatus::Halted;

    // A 200% band: band_lo is below zero, which only a market sell can use.
    let mut wide = InstrumentSpec::simple("WIDE", 50);
    wide.price_band = PriceBand::Bps(20_000);
    wide.qty_max = QtyLots(1_000);
    wide.levels_per_side_max = 64;

    // Prices around 4e18 ticks with a band that saturates at i64::MAX, quantities up to
    // u64::MAX / orders_max: notional needs the full u128.
    let mut huge = InstrumentSpec::simple("HUGE", 4_000_000_000_000_000_000);
    huge.price_band = PriceBand::Ticks(i64::MAX);
    huge.qty_max = QtyLots(u64::MAX / u64::from(EDGE_ORDERS_MAX));
    huge.notional_max = u128::MAX / 4;
    huge.levels_per_side_max = 64;

    vec![zero, wide, huge]
}

impl Profile {
    fn config(self) -> EngineConfig {
        match self {
            Profile::Roomy => EngineConfig {
                limits: Limits {
                    orders_max: 10_000,
                    levels_max: 1_000,
                    gtd_orders_max: 1_000,
                },
                instruments: instruments([64, 64, 64]),
            },
            Profile::Tight => EngineConfig {
                limits: Limits {
                    orders_max: 40,
                    levels_max: 16,
                    gtd_orders_max: 5,
                },
                instruments: instruments([6, 6, 4]),
            },
            Profile::Edge => EngineConfig {
                limits: Limits {
                    orders_max: EDGE_ORDERS_MAX,
                    levels_max: 100,
                    gtd_orders_max: 50,
                },
                instruments: edge_instruments(),
            },
        }
    }

    /// Live orders above which the generator leans towards cancels; above `orders_max` for the
    /// tight profile so that its pool fills up.
    fn soft_cap(self) -> usize {
        match self {
            Profile::Roomy | Profile::Edge => 120,
            Profile::Tight => 60,
        }
    }
}

// ----- the command generator --------------------------------------------------------------

/// What the generator knows about a live order, learnt from events only.
#[derive(Clone, Copy, Debug)]
struct LiveOrder {
    instrument: u32,
    account: u32,
    side: Side,
    price_ticks: i64,
    qty_open: u64,
    qty_filled: u64,
}

/// Produces commands that are valid most of the time, aimed at live orders, with prices close
/// to each instrument's reference so that crossing, sweeps and self trades are frequent.
struct CommandGen {
    rng: Rng,
    specs: Vec<InstrumentSpec>,
    profile: Profile,
    seq: u64,
    ts_ns: u64,
    next_client_id: u64,
    live: BTreeMap<u64, LiveOrder>,
    /// Filled quantity of the order being processed as a taker (reset per command).
    taker_filled: BTreeMap<u64, u64>,
    last_trade_ticks: Vec<Option<i64>>,
    halted: Vec<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Cancel,
    Replace,
    MassCancel,
    SetStatus,
    EndOfDay,
    Tick,
}

impl CommandGen {
    fn new(seed: u64, profile: Profile) -> Self {
        let config = profile.config();
        CommandGen {
            rng: Rng::new(seed),
            specs: config.instruments.clone(),
            profile,
            seq: 0,
            ts_ns: 1_000_000,
            next_client_id: 1,
            live: BTreeMap::new(),
            taker_filled: BTreeMap::new(),
            last_trade_ticks: vec![None; config.instruments.len()],
            halted: config
                .instruments
                .iter()
                .map(|s| s.status == InstrumentStatus::Halted)
                .collect(),
        }
    }

    /// Learns live orders, fills, last trades and statuses from one command's events.
    fn observe(&mut self, events: &[Event]) {
        self.taker_filled.clear();
        for event in events {
            match event {
                Event::Accepted(a) => {
                    self.taker_filled.insert(a.order_id.0, 0);
                }
                Event::Trade(t) => {
                    self.last_trade_ticks[t.instrument.0 as usize] = Some(t.price.0);
                    if let Some(maker) = self.live.get_mut(&t.maker_order_id.0) {
                        maker.qty_open = t.maker_qty_open.0;
                        maker.qty_filled += t.qty.0;
                        if maker.qty_open == 0 {
                            self.live.remove(&t.maker_order_id.0);
                        }
                    }
                    *self.taker_filled.entry(t.taker_order_id.0).or_insert(0) += t.qty.0;
                }
                Event::Rested(r) => {
                    let qty_filled = self.taker_filled.get(&r.order_id.0).copied().unwrap_or(0);
                    self.live.insert(
                        r.order_id.0,
                        LiveOrder {
                            instrument: r.instrument.0,
                            account: r.account.0,
                            side: r.side,
                            price_ticks: r.price.0,
                            qty_open: r.qty_open.0,
                            qty_filled,
                        },
                    );
                }
                Event::Cancelled(c) => {
                    self.live.remove(&c.order_id.0);
                }
                Event::Expired(x) => {
                    self.live.remove(&x.order_id.0);
                }
                Event::Restated(r) => {
                    if let Some(o) = self.live.get_mut(&r.order_id.0) {
                        o.qty_open = r.qty_open.0;
                    }
                }
                Event::Replaced(r) => {
                    if r.priority_kept {
                        if let Some(o) = self.live.get_mut(&r.order_id.0) {
                            o.qty_open = r.qty_open.0;
                        }
                    } else {
                        // It is a taker now; `Rested` puts it back if anything is left.
                        self.live.remove(&r.order_id.0);
                        self.taker_filled.insert(r.order_id.0, r.qty_filled.0);
                    }
                }
                Event::StatusChanged(s) => {
                    self.halted[s.instrument.0 as usize] = s.status == InstrumentStatus::Halted;
                }
                Event::Rejected(_)
                | Event::BookDelta(_)
                | Event::MassCancelled(_)
                | Event::BookChecked(_) => {}
            }
        }
    }

    fn client_id(&mut self) -> ClientOrderId {
        self.next_client_id += 1;
        ClientOrderId(self.next_client_id)
    }

    fn reference_ticks(&self, i: usize) -> i64 {
        self.last_trade_ticks[i].unwrap_or(self.specs[i].reference_price.0)
    }

    /// The band's half width in ticks, as the generator estimates it; only used to aim prices
    /// near and just beyond the band edges.
    fn band_width_ticks(&self, i: usize) -> i64 {
        let width = match self.specs[i].price_band {
            PriceBand::Bps(bps) => i128::from(self.reference_ticks(i)) * i128::from(bps) / 10_000,
            PriceBand::Ticks(ticks) => i128::from(ticks),
        };
        i64::try_from(width).unwrap_or(i64::MAX)
    }

    fn next(&mut self) -> SequencedCommand {
        // Occasional gaps: sequence numbers only have to increase.
        self.seq += if self.rng.percent(5) {
            1 + self.rng.below(4)
        } else {
            1
        };
        let kind = self.kind();
        self.ts_ns += match self.rng.below(100) {
            0..=19 => 0,
            20..=89 => 1 + self.rng.below(20),
            _ => 50 + self.rng.below(300),
        };
        if kind == Kind::Tick && self.rng.percent(30) {
            self.ts_ns += 100 + self.rng.below(500);
        }
        let command = match kind {
            Kind::New => self.new_order(),
            Kind::Cancel => self.cancel(),
            Kind::Replace => self.replace(),
            Kind::MassCancel => self.mass_cancel(),
            Kind::SetStatus => self.set_status(),
            Kind::EndOfDay => Command::EndOfDay,
            // Half the time-only commands ask for a book fingerprint instead, sometimes of an
            // instrument that does not exist, so that the engine's allocation-free walk is
            // checked against the reference model's snapshot on every kind of book.
            Kind::Tick if self.rng.percent(50) => {
                Command::Checkpoint(ferrox_protocol::Checkpoint {
                    instrument: InstrumentId(self.rng.below(self.specs.len() as u64 + 1) as u32),
                })
            }
            Kind::Tick => Command::Tick,
        };
        SequencedCommand {
            seq: self.seq,
            ts_ns: self.ts_ns,
            command,
        }
    }

    /// Whether the tight profile is in one of its filling phases: a third of the time it only
    /// adds passive orders at existing prices, so that the order pool (not just the level
    /// caps) runs full, which the crossing flow of the other phases rarely achieves.
    fn filling(&self) -> bool {
        self.profile == Profile::Tight && (self.seq / 150) % 3 == 2
    }

    fn kind(&mut self) -> Kind {
        // Halts are brief, so that halted instruments do not starve the run of matching.
        if self.halted.iter().any(|h| *h) && self.rng.percent(15) {
            return Kind::SetStatus;
        }
        if self.live.len() > self.profile.soft_cap() && self.rng.percent(40) {
            return Kind::Cancel;
        }
        if self.filling() {
            return self
                .rng
                .weighted(&[(900, Kind::New), (40, Kind::Replace), (60, Kind::Tick)]);
        }
        match self.profile {
            Profile::Roomy | Profile::Edge => self.rng.weighted(&[
                (560, Kind::New),
                (150, Kind::Cancel),
                (160, Kind::Replace),
                (18, Kind::MassCancel),
                (10, Kind::SetStatus),
                (7, Kind::EndOfDay),
                (55, Kind::Tick),
            ]),
            // Fewer removals, so that the small pools fill up.
            Profile::Tight => self.rng.weighted(&[
                (650, Kind::New),
                (70, Kind::Cancel),
                (170, Kind::Replace),
                (5, Kind::MassCancel),
                (8, Kind::SetStatus),
                (3, Kind::EndOfDay),
                (40, Kind::Tick),
            ]),
        }
    }

    fn new_order(&mut self) -> Command {
        let i = self.rng.below(self.specs.len() as u64) as usize;
        let spec = self.specs[i].clone();
        let lot = spec.lot_size.0;
        let filling = self.filling();
        let is_market = self.rng.percent(if filling { 2 } else { 10 });
        let tif = if filling && !is_market {
            self.rng.weighted(&[
                (60, TimeInForce::Gtc),
                (20, TimeInForce::Day),
                (20, TimeInForce::Gtd),
            ])
        } else if is_market {
            self.rng.weighted(&[
                (46, TimeInForce::Ioc),
                (46, TimeInForce::Fok),
                (4, TimeInForce::Gtc),
                (4, TimeInForce::Day),
            ])
        } else {
            match self.profile {
                Profile::Roomy | Profile::Edge => self.rng.weighted(&[
                    (30, TimeInForce::Gtc),
                    (15, TimeInForce::Day),
                    (15, TimeInForce::Gtd),
                    (22, TimeInForce::Ioc),
                    (18, TimeInForce::Fok),
                ]),
                Profile::Tight => self.rng.weighted(&[
                    (40, TimeInForce::Gtc),
                    (15, TimeInForce::Day),
                    (25, TimeInForce::Gtd),
                    (12, TimeInForce::Ioc),
                    (8, TimeInForce::Fok),
                ]),
            }
        };
        let (side, price_ticks) = self.side_and_price(i);
        let lots = if self.rng.percent(85) {
            self.rng.between(1, 8)
        } else {
            self.rng.between(9, 25)
        };
        let mut qty_lots = lots as u64 * lot;
        // Near the top of the quantity range where the instrument allows it (the edge
        // profile's huge instrument), so that totals and notionals get large.
        if self.profile == Profile::Edge && spec.qty_max.0 > 1 << 40 && self.rng.percent(20) {
            qty_lots = spec.qty_max.0 - self.rng.below(3) * lot;
        }
        let expire_ts_ns = if tif == TimeInForce::Gtd {
            // Mostly soon, so that expiry happens often; sometimes much later, so that the
            // GTD queue of the tight profile fills up.
            self.ts_ns
                + 1
                + if self.rng.percent(70) {
                    self.rng.below(400)
                } else {
                    self.rng.below(4_000)
                }
        } else {
            0
        };
        let mut order = NewOrder {
            instrument: InstrumentId(i as u32),
            account: AccountId(1 + self.rng.below(u64::from(ACCOUNTS)) as u32),
            client_order_id: self.client_id(),
            side,
            order_type: if is_market {
                OrderType::Market
            } else {
                OrderType::Limit
            },
            price: PriceTicks(if is_market && self.rng.percent(50) {
                0
            } else {
                price_ticks
            }),
            qty: QtyLots(qty_lots),
            tif,
            expire_ts_ns,
            post_only: !is_market && tif.rests() && self.rng.percent(15),
            stp_mode: self.stp_mode(),
            // Groups 1..=3 collide numerically with accounts 1..=3 on purpose: they must still
            // be different STP keys.
            stp_group: StpGroup(if self.rng.percent(70) {
                0
            } else {
                self.rng.between(1, 3) as u32
            }),
        };
        if self.rng.percent(8) {
            self.corrupt_new(&mut order);
        }
        Command::NewOrder(order)
    }

    fn stp_mode(&mut self) -> StpMode {
        self.rng.weighted(&[
            (30, StpMode::CancelResting),
            (15, StpMode::CancelAggressor),
            (15, StpMode::CancelBoth),
            (20, StpMode::DecrementCancel),
            (20, StpMode::Off),
        ])
    }

    /// Mostly a random side and a price near the reference; sometimes the price of a live
    /// order, joining its level (which stacks orders, as the tight profile's small pools need)
    /// or trading against it at exactly its price.
    fn side_and_price(&mut self, i: usize) -> (Side, i64) {
        let join_percent = match self.profile {
            _ if self.filling() => 85,
            Profile::Roomy | Profile::Edge => 20,
            Profile::Tight => 45,
        };
        let same_side_percent = if self.filling() { 100 } else { 75 };
        if self.rng.percent(join_percent) {
            let same_instrument: Vec<LiveOrder> = self
                .live
                .values()
                .filter(|o| o.instrument as usize == i)
                .copied()
                .collect();
            if !same_instrument.is_empty() {
                let o = self.rng.pick(&same_instrument);
                let side = if self.rng.percent(same_side_percent) {
                    o.side
                } else {
                    o.side.opposite()
                };
                return (side, o.price_ticks);
            }
        }
        (
            self.rng.pick(&[Side::Buy, Side::Sell]),
            self.price_near_reference(i),
        )
    }

    /// A price on tick within about the band around the current reference, pulled back
    /// towards the configured reference when trading has drifted far from it.
    fn price_near_reference(&mut self, i: usize) -> i64 {
        let tick = self.specs[i].tick_size.0;
        let reference = self.reference_ticks(i);
        let configured = self.specs[i].reference_price.0;
        let band_steps = (self.band_width_ticks(i) / tick).max(1);
        // The tight profile concentrates on fewer prices, so that its few levels hold many
        // orders and the order pool fills before the level caps stop new levels.
        let usual_reach = match self.profile {
            Profile::Roomy => 7,
            Profile::Tight => 4,
            Profile::Edge => 5,
        };
        let reach = if self.rng.percent(90) {
            band_steps.min(usual_reach)
        } else {
            band_steps.saturating_add(2).min(30)
        };
        let pull = if reference > configured.saturating_add(15 * tick) {
            -2
        } else if reference < configured.saturating_sub(15 * tick) {
            2
        } else {
            0
        };
        let steps = self.rng.between(-reach, reach) + pull;
        // References are prices of trades or configured prices, so they are on tick; keep the
        // result positive so that only deliberate corruption produces bad prices.
        reference.saturating_add(steps * tick).max(tick)
    }

    /// Makes a new order invalid in one specific way.
    fn corrupt_new(&mut self, o: &mut NewOrder) {
        let bbb = 1usize;
        match self.rng.below(11) {
            0 => o.qty = QtyLots(0),
            1 => {
                // Off lot needs a lot size above one.
                o.instrument = InstrumentId(bbb as u32);
                o.price = PriceTicks(self.reference_ticks(bbb));
                o.qty = QtyLots(15);
            }
            2 => {
                o.instrument = InstrumentId(bbb as u32);
                o.order_type = OrderType::Limit;
                o.price = PriceTicks(
                    self.reference_ticks(bbb)
                        .saturating_add(self.rng.pick(&[-3, -1, 1, 2])),
                );
                o.qty = QtyLots(10);
            }
            3 => {
                let i = o.instrument.0 as usize;
                let width = self.band_width_ticks(i);
                let tick = self.specs[i].tick_size.0;
                let beyond = (width / tick)
                    .saturating_add(self.rng.between(1, 4))
                    .saturating_mul(tick);
                let reference = self.reference_ticks(i);
                o.order_type = OrderType::Limit;
                o.price = PriceTicks(if self.rng.percent(50) {
                    reference.saturating_add(beyond)
                } else {
                    reference.saturating_sub(beyond).max(tick)
                });
            }
            4 => {
                o.order_type = OrderType::Limit;
                o.price = PriceTicks(self.rng.pick(&[0, -5, -10, i64::MIN]));
            }
            5 => {
                if o.tif == TimeInForce::Gtd {
                    o.expire_ts_ns = self
                        .rng
                        .pick(&[0, self.ts_ns, self.ts_ns.saturating_sub(7)]);
                } else {
                    o.expire_ts_ns = self.ts_ns + 1 + self.rng.below(100);
                }
            }
            6 => {
                let spec = &self.specs[o.instrument.0 as usize];
                o.qty = QtyLots(spec.qty_max.0 + spec.lot_size.0);
            }
            7 => {
                // 150 lots of BBB near 5000 is above its 600_000 notional maximum.
                o.instrument = InstrumentId(bbb as u32);
                o.price = PriceTicks(self.reference_ticks(bbb));
                o.qty = QtyLots(self.rng.pick(&[130, 150, 200]));
            }
            8 => o.instrument = InstrumentId(self.rng.pick(&[3, 4, 99, u32::MAX])),
            9 => {
                if self.rng.percent(50) {
                    o.post_only = true;
                    o.tif = self
                        .rng
                        .pick(&[TimeInForce::Ioc, TimeInForce::Fok, TimeInForce::Gtc]);
                    o.order_type = if o.tif == TimeInForce::Gtc {
                        OrderType::Market
                    } else {
                        self.rng.pick(&[OrderType::Market, OrderType::Limit])
                    };
                } else {
                    o.order_type = OrderType::Market;
                    o.tif = self
                        .rng
                        .pick(&[TimeInForce::Gtc, TimeInForce::Day, TimeInForce::Gtd]);
                }
            }
            _ => {
                // A buy at or through the best ask (or sell at or through the best bid) that
                // asks for post-only: on a busy book it is often refused.
                o.order_type = OrderType::Limit;
                o.tif = TimeInForce::Gtc;
                o.expire_ts_ns = 0;
                o.post_only = true;
                let i = o.instrument.0 as usize;
                let tick = self.specs[i].tick_size.0;
                let toward = if o.side == Side::Buy { 1 } else { -1 };
                // References reach i64::MAX in the edge profile.
                o.price = PriceTicks(
                    self.reference_ticks(i)
                        .saturating_add(toward * tick * self.rng.between(0, 3)),
                );
            }
        }
    }

    /// An order id and account: mostly a live order with its owner, sometimes a live order
    /// with another account, sometimes an id that is not live.
    fn target(&mut self) -> (OrderId, AccountId, Option<LiveOrder>) {
        let roll = self.rng.below(100);
        if !self.live.is_empty() && roll < 90 {
            let n = self.rng.below(self.live.len() as u64) as usize;
            let (id, order) = self
                .live
                .iter()
                .nth(n)
                .map(|(id, o)| (*id, *o))
                .expect("n < len");
            let account = if roll < 82 {
                order.account
            } else {
                order.account % ACCOUNTS + 1
            };
            return (OrderId(id), AccountId(account), Some(order));
        }
        let id = self.rng.between(0, self.seq as i64 + 5) as u64;
        let account = AccountId(1 + self.rng.below(u64::from(ACCOUNTS)) as u32);
        (OrderId(id), account, self.live.get(&id).copied())
    }

    fn cancel(&mut self) -> Command {
        let (order_id, account, _) = self.target();
        Command::Cancel(Cancel {
            order_id,
            account,
            client_order_id: self.client_id(),
        })
    }

    fn replace(&mut self) -> Command {
        let client_order_id = self.client_id();
        // A total quantity not above what a partly filled order already traded is only
        // possible for such orders, so aim at them on purpose now and then.
        let partly_filled: Vec<(u64, LiveOrder)> = self
            .live
            .iter()
            .filter(|(_, o)| o.qty_filled > 0)
            .map(|(id, o)| (*id, *o))
            .collect();
        if !partly_filled.is_empty() && self.rng.percent(8) {
            let (id, o) = self.rng.pick(&partly_filled);
            let lot = self.specs[o.instrument as usize].lot_size.0;
            let qty = self.rng.between(1, (o.qty_filled / lot).max(1) as i64) as u64 * lot;
            return Command::Replace(Replace {
                order_id: OrderId(id),
                account: AccountId(o.account),
                client_order_id,
                price: PriceTicks(o.price_ticks),
                qty: QtyLots(qty),
            });
        }
        let (order_id, account, order) = self.target();
        let Some(o) = order else {
            return Command::Replace(Replace {
                order_id,
                account,
                client_order_id,
                price: PriceTicks(1_000),
                qty: QtyLots(10),
            });
        };
        let i = o.instrument as usize;
        let spec = self.specs[i].clone();
        let (tick, lot) = (spec.tick_size.0, spec.lot_size.0);
        // Sometimes move onto the price of an order on the other side, so that the replace
        // crosses, trades and meets self-trade prevention.
        let opposite_prices: Vec<i64> = self
            .live
            .values()
            .filter(|x| x.instrument == o.instrument && x.side != o.side)
            .map(|x| x.price_ticks)
            .collect();
        let mut price_ticks = match self.rng.below(100) {
            0..=14 if !opposite_prices.is_empty() => self.rng.pick(&opposite_prices),
            0..=49 => o.price_ticks,
            _ => o
                .price_ticks
                .saturating_add(self.rng.between(-4, 4) * tick)
                .max(tick),
        };
        let open_lots = o.qty_open / lot;
        let new_open = match self.rng.below(100) {
            0..=29 if open_lots > 1 => self.rng.between(1, open_lots as i64 - 1) as u64 * lot,
            30..=59 => o
                .qty_open
                .saturating_add(self.rng.between(1, 5) as u64 * lot),
            60..=69 => o.qty_open,
            _ => self.rng.between(1, 8) as u64 * lot,
        };
        let mut qty = o.qty_filled.saturating_add(new_open);
        if self.rng.percent(10) {
            match self.rng.below(8) {
                0 => qty = 0,
                1 => qty = o.qty_filled.max(lot),
                2 if lot > 1 => qty += 1,
                3 if tick > 1 => price_ticks = price_ticks.saturating_add(1),
                4 => {
                    let beyond = (self.band_width_ticks(i) / tick)
                        .saturating_add(self.rng.between(1, 3))
                        .saturating_mul(tick);
                    let reference = self.reference_ticks(i);
                    price_ticks = if self.rng.percent(50) {
                        reference.saturating_add(beyond)
                    } else {
                        reference.saturating_sub(beyond).max(tick)
                    };
                }
                5 => price_ticks = self.rng.pick(&[0, -tick]),
                6 => qty = spec.qty_max.0 + lot,
                _ => qty = qty.max(130).checked_next_multiple_of(lot).unwrap_or(qty),
            }
        }
        Command::Replace(Replace {
            order_id,
            account,
            client_order_id,
            price: PriceTicks(price_ticks),
            qty: QtyLots(qty),
        })
    }

    fn mass_cancel(&mut self) -> Command {
        let n = self.specs.len() as u64;
        let instrument = match self.rng.below(10) {
            0..=2 => None,
            3..=8 => Some(InstrumentId(self.rng.below(n) as u32)),
            _ => Some(InstrumentId(n as u32 + self.rng.below(3) as u32)),
        };
        let account = self
            .rng
            .percent(60)
            .then(|| AccountId(1 + self.rng.below(u64::from(ACCOUNTS)) as u32));
        Command::MassCancel(MassCancel {
            instrument,
            account,
            client_order_id: self.client_id(),
        })
    }

    fn set_status(&mut self) -> Command {
        let n = self.specs.len();
        if let Some(i) = self.halted.iter().position(|h| *h) {
            if self.rng.percent(80) {
                return Command::SetStatus(SetStatus {
                    instrument: InstrumentId(i as u32),
                    status: InstrumentStatus::Open,
                });
            }
        }
        let instrument = if self.rng.percent(10) {
            InstrumentId(n as u32 + self.rng.below(3) as u32)
        } else {
            InstrumentId(self.rng.below(n as u64) as u32)
        };
        let status = self
            .rng
            .weighted(&[(70, InstrumentStatus::Halted), (30, InstrumentStatus::Open)]);
        Command::SetStatus(SetStatus { instrument, status })
    }
}

// ----- comparing the engine with the model ------------------------------------------------

/// Applies `cmd` to both, turning a panic of either into an error message.
fn apply_both(
    engine: &mut Engine,
    model: &mut ReferenceBook,
    cmd: &SequencedCommand,
) -> Result<(Vec<Event>, Vec<Event>), String> {
    let engine_events = catch_unwind(AssertUnwindSafe(|| {
        let mut sink = VecSink::default();
        engine.apply(cmd, &mut sink);
        sink.events
    }))
    .map_err(|p| format!("the engine panicked: {}", panic_text(&p)))?;
    let model_events = catch_unwind(AssertUnwindSafe(|| model.apply(cmd)))
        .map_err(|p| format!("the reference model panicked: {}", panic_text(&p)))?;
    Ok((engine_events, model_events))
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-text panic payload)".into())
}

/// What differs between engine and model after a command, or `None`.
fn difference(
    engine: &Engine,
    model: &ReferenceBook,
    instruments: usize,
    engine_events: &[Event],
    model_events: &[Event],
) -> Option<String> {
    if engine_events != model_events {
        let at = engine_events
            .iter()
            .zip(model_events)
            .position(|(e, m)| e != m)
            .unwrap_or(engine_events.len().min(model_events.len()));
        return Some(format!("event lists differ, first at position {at}"));
    }
    for i in 0..instruments {
        let id = InstrumentId(i as u32);
        let (e, m) = (engine.book(id), model.book(id));
        if e != m {
            return Some(format!(
                "book of instrument {i} differs\n  engine:\n{}  model:\n{}",
                fmt_book(e.as_ref()),
                fmt_book(m.as_ref())
            ));
        }
    }
    if engine.gtd_orders() != model.gtd_orders() {
        return Some(format!(
            "GTD lists differ\n  engine: {:?}\n  model:  {:?}",
            engine.gtd_orders(),
            model.gtd_orders()
        ));
    }
    if engine.orders_live() != model.orders_live() {
        return Some(format!(
            "orders_live differs: engine {}, model {}",
            engine.orders_live(),
            model.orders_live()
        ));
    }
    if engine.levels_live() != model.levels_live() {
        return Some(format!(
            "levels_live differs: engine {}, model {}",
            engine.levels_live(),
            model.levels_live()
        ));
    }
    if engine.next_trade_id() != model.next_trade_id() {
        return Some(format!(
            "next trade id differs: engine {}, model {}",
            engine.next_trade_id(),
            model.next_trade_id()
        ));
    }
    None
}

fn fmt_book(book: Option<&BookSnapshot>) -> String {
    let Some(book) = book else {
        return "    (none)\n".into();
    };
    let mut s = format!(
        "    status {:?}, last trade {:?}\n",
        book.status, book.last_trade_price
    );
    for (name, levels) in [("bid", &book.bids), ("ask", &book.asks)] {
        for level in levels {
            let _ = write!(s, "    {name} {} total {}:", level.price, level.qty_total);
            for o in &level.orders {
                let _ = write!(
                    s,
                    " [#{} acct {} cid {} open {} filled {} {:?}{} {:?} grp {}]",
                    o.order_id,
                    o.account,
                    o.client_order_id,
                    o.qty_open,
                    o.qty_filled,
                    o.tif,
                    if o.post_only { " post-only" } else { "" },
                    o.stp_mode,
                    o.stp_group
                );
            }
            s.push('\n');
        }
    }
    s
}

fn fmt_events(events: &[Event]) -> String {
    if events.is_empty() {
        return "    (none)\n".into();
    }
    events
        .iter()
        .enumerate()
        .map(|(k, e)| format!("    {k:>3}: {e:?}\n"))
        .collect()
}

/// Replays `cmds` on a fresh engine and model; the first command after which they differ.
fn first_mismatch(config: &EngineConfig, cmds: &[SequencedCommand]) -> Option<(usize, String)> {
    let mut engine = Engine::new(config.clone()).expect("test configurations are valid");
    let mut model = ReferenceBook::new(config);
    for (k, cmd) in cmds.iter().enumerate() {
        let (e, m) = match apply_both(&mut engine, &mut model, cmd) {
            Ok(both) => both,
            Err(panic) => return Some((k, panic)),
        };
        if let Some(what) = difference(&engine, &model, config.instruments.len(), &e, &m) {
            return Some((k, what));
        }
    }
    None
}

/// Shrinks a failing command sequence by deleting chunks, then single commands, as long as
/// some mismatch remains. Subsequences keep sequence numbers and timestamps increasing, and
/// order ids are sequence numbers, so cancels and replaces still aim at the same orders.
fn shrink(config: &EngineConfig, mut cmds: Vec<SequencedCommand>) -> Vec<SequencedCommand> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut chunk = cmds.len().div_ceil(2);
    while chunk >= 1 && Instant::now() < deadline {
        let mut start = 0;
        while start < cmds.len() && Instant::now() < deadline {
            let end = (start + chunk).min(cmds.len());
            let candidate: Vec<SequencedCommand> =
                cmds[..start].iter().chain(&cmds[end..]).copied().collect();
            match first_mismatch(config, &candidate) {
                Some((k, _)) => cmds = candidate[..=k].to_vec(),
                None => start = end,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2).min(chunk - 1);
    }
    cmds
}

/// How often each outcome occurred, to show that the generator reaches every rule.
#[derive(Default)]
struct Coverage {
    events: BTreeMap<&'static str, u64>,
    rejects: BTreeMap<RejectCode, u64>,
    replace_rejects: BTreeMap<RejectCode, u64>,
    cancels: BTreeMap<CancelReason, u64>,
    expiries: BTreeMap<ExpireReason, u64>,
    scenarios: BTreeMap<&'static str, u64>,
    /// Instruments halted in the current case, learnt from `StatusChanged`.
    halted: std::collections::BTreeSet<u32>,
    commands: u64,
}

/// Situations that only arise from particular combinations; each must occur in the coverage
/// run.
const SCENARIOS: &[&str] = &[
    "new order traded at several price levels",
    "FOK order filled",
    "FOK order filled across several levels",
    "post-only order rested",
    "GTD order rested",
    "market order traded",
    "trade between two orders of one account",
    "maker restated by decrement-cancel",
    "taker restated by decrement-cancel and kept matching",
    "taker used up by decrement-cancel",
    "self-trade cancel of the taker after trades",
    "replace kept priority",
    "replace lost priority at the same price",
    "replace moved and traded",
    "replace filled completely",
    "replace stopped by self-trade prevention",
    "several GTD orders expired before one command",
    "level emptied",
    "mass cancel of nothing",
    "cancel while halted",
    "end of day while halted",
    "market sell with a band edge at or below zero",
    "order rested at i64::MAX",
    "trade above 2^50 lots",
];

impl Coverage {
    fn begin_case(&mut self) {
        self.halted.clear();
    }

    fn scenario(&mut self, name: &'static str) {
        debug_assert!(SCENARIOS.contains(&name), "unlisted scenario {name}");
        *self.scenarios.entry(name).or_default() += 1;
    }

    fn count(&mut self, cmd: &SequencedCommand, events: &[Event]) {
        self.commands += 1;
        for event in events {
            let kind = match event {
                Event::Accepted(_) => "Accepted",
                Event::Rejected(r) => {
                    *self.rejects.entry(r.code).or_default() += 1;
                    if r.request == RequestKind::Replace {
                        *self.replace_rejects.entry(r.code).or_default() += 1;
                    }
                    "Rejected"
                }
                Event::Trade(_) => "Trade",
                Event::Rested(_) => "Rested",
                Event::Cancelled(c) => {
                    *self.cancels.entry(c.reason).or_default() += 1;
                    "Cancelled"
                }
                Event::Restated(_) => "Restated",
                Event::Replaced(_) => "Replaced",
                Event::Expired(x) => {
                    *self.expiries.entry(x.reason).or_default() += 1;
                    "Expired"
                }
                Event::BookDelta(_) => "BookDelta",
                Event::StatusChanged(_) => "StatusChanged",
                Event::MassCancelled(_) => "MassCancelled",
                Event::BookChecked(_) => "BookChecked",
            };
            *self.events.entry(kind).or_default() += 1;
        }
        self.count_scenarios(cmd, events);
        for event in events {
            if let Event::StatusChanged(s) = event {
                if s.status == InstrumentStatus::Halted {
                    self.halted.insert(s.instrument.0);
                } else {
                    self.halted.remove(&s.instrument.0);
                }
            }
        }
    }

    fn count_scenarios(&mut self, cmd: &SequencedCommand, events: &[Event]) {
        // The order acting as taker in this command, if any: a new order or a replaced one.
        let taker = match &cmd.command {
            Command::NewOrder(_) => Some(OrderId(cmd.seq)),
            Command::Replace(r) => Some(r.order_id),
            _ => None,
        };
        let mut trade_prices: Vec<i64> = Vec::new();
        let mut traded_before_stp = false;
        let mut gtd_expired = 0;
        for event in events {
            match event {
                Event::Accepted(a) if a.order_type == OrderType::Market && a.price.0 <= 0 => {
                    self.scenario("market sell with a band edge at or below zero");
                }
                Event::Rested(r) if r.price.0 == i64::MAX => {
                    self.scenario("order rested at i64::MAX")
                }
                Event::Trade(t) => {
                    if t.qty.0 > 1 << 50 {
                        self.scenario("trade above 2^50 lots");
                    }
                    trade_prices.push(t.price.0);
                    traded_before_stp = true;
                    if t.maker_account == t.taker_account {
                        self.scenario("trade between two orders of one account");
                    }
                }
                Event::Restated(r) if Some(r.order_id) == taker => {
                    self.scenario("taker restated by decrement-cancel and kept matching");
                }
                Event::Restated(_) => self.scenario("maker restated by decrement-cancel"),
                Event::Cancelled(c) if Some(c.order_id) == taker => match c.reason {
                    CancelReason::SelfTradeDecrement => {
                        self.scenario("taker used up by decrement-cancel")
                    }
                    CancelReason::SelfTradeAggressor if traded_before_stp => {
                        self.scenario("self-trade cancel of the taker after trades")
                    }
                    _ => {}
                },
                Event::Expired(x) if x.reason == ExpireReason::GoodTillDate => gtd_expired += 1,
                Event::BookDelta(d) if d.order_count == 0 => self.scenario("level emptied"),
                Event::MassCancelled(m) if m.count == 0 => self.scenario("mass cancel of nothing"),
                _ => {}
            }
        }
        if gtd_expired >= 2 {
            self.scenario("several GTD orders expired before one command");
        }
        trade_prices.dedup();
        let rested = |id: OrderId| {
            events
                .iter()
                .any(|e| matches!(e, Event::Rested(r) if r.order_id == id))
        };
        let cancelled = |id: OrderId| {
            events
                .iter()
                .any(|e| matches!(e, Event::Cancelled(c) if c.order_id == id))
        };
        match &cmd.command {
            Command::NewOrder(o) => {
                let id = OrderId(cmd.seq);
                let accepted = events.iter().any(|e| matches!(e, Event::Accepted(_)));
                if trade_prices.len() >= 2 {
                    self.scenario("new order traded at several price levels");
                }
                if accepted && o.tif == TimeInForce::Fok && !cancelled(id) {
                    self.scenario("FOK order filled");
                    if trade_prices.len() >= 2 {
                        self.scenario("FOK order filled across several levels");
                    }
                }
                if o.post_only && rested(id) {
                    self.scenario("post-only order rested");
                }
                if o.tif == TimeInForce::Gtd && rested(id) {
                    self.scenario("GTD order rested");
                }
                if o.order_type == OrderType::Market && !trade_prices.is_empty() {
                    self.scenario("market order traded");
                }
            }
            Command::Replace(r) => {
                for event in events {
                    let Event::Replaced(x) = event else { continue };
                    if x.priority_kept {
                        self.scenario("replace kept priority");
                    } else if x.price == x.price_old {
                        self.scenario("replace lost priority at the same price");
                    }
                }
                let moved = events
                    .iter()
                    .any(|e| matches!(e, Event::Replaced(x) if !x.priority_kept));
                if moved && !trade_prices.is_empty() {
                    self.scenario("replace moved and traded");
                    if !rested(r.order_id) && !cancelled(r.order_id) {
                        self.scenario("replace filled completely");
                    }
                }
                if events.iter().any(|e| {
                    matches!(e, Event::Cancelled(c) if c.order_id == r.order_id
                        && c.reason == CancelReason::SelfTradeAggressor)
                }) {
                    self.scenario("replace stopped by self-trade prevention");
                }
            }
            Command::Cancel(_) if !self.halted.is_empty() => {
                let cancelled_halted = events.iter().any(
                    |e| matches!(e, Event::Cancelled(c) if self.halted.contains(&c.instrument.0)),
                );
                if cancelled_halted {
                    self.scenario("cancel while halted");
                }
            }
            Command::EndOfDay
                if events.iter().any(|e| {
                    matches!(e, Event::Expired(x) if x.reason == ExpireReason::EndOfDay
                        && self.halted.contains(&x.instrument.0))
                }) =>
            {
                self.scenario("end of day while halted");
            }
            _ => {}
        }
    }
}

const EVENT_KINDS: &[&str] = &[
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
];

/// Runs one seeded case of `profile` through engine and model, comparing after every command.
fn check_against_model(profile: Profile, seed: u64, coverage: &mut Coverage) -> Result<(), String> {
    let config = profile.config();
    let mut engine = Engine::new(config.clone()).map_err(|e| format!("bad test config: {e}"))?;
    let mut model = ReferenceBook::new(&config);
    let mut commands = CommandGen::new(seed, profile);
    let mut history = Vec::with_capacity(COMMANDS_PER_CASE);
    coverage.begin_case();
    for index in 0..COMMANDS_PER_CASE {
        let cmd = commands.next();
        history.push(cmd);
        let (what, engine_events, model_events) = match apply_both(&mut engine, &mut model, &cmd) {
            Ok((e, m)) => match difference(&engine, &model, config.instruments.len(), &e, &m) {
                None => {
                    coverage.count(&cmd, &e);
                    commands.observe(&e);
                    continue;
                }
                Some(what) => (what, e, m),
            },
            Err(panic) => (panic, Vec::new(), Vec::new()),
        };
        let shrunk = shrink(&config, history.clone());
        let mut msg = format!(
            "engine and reference model disagree\n\
             profile {profile:?}, seed {seed} (reproduce: FERROX_SEED={seed} cargo test -p \
             ferrox-tests --test properties)\n\
             command #{index}: {cmd:?}\n\
             {what}\n\
             engine events:\n{}model events:\n{}",
            fmt_events(&engine_events),
            fmt_events(&model_events)
        );
        let _ = writeln!(
            msg,
            "shrunk to {} commands (from {}):",
            shrunk.len(),
            history.len()
        );
        for c in &shrunk {
            let _ = writeln!(msg, "    {c:?}");
        }
        if let Some((_, what)) = first_mismatch(&config, &shrunk) {
            let _ = writeln!(msg, "  shrunk sequence's mismatch: {what}");
        }
        return Err(msg);
    }
    Ok(())
}

// ----- running properties -----------------------------------------------------------------

/// A case's seed. It does not shrink: a smaller seed is an unrelated case.
#[derive(Clone, Copy, Debug)]
struct Seed(u64);

impl Arbitrary for Seed {
    fn arbitrary(g: &mut Gen) -> Self {
        Seed(u64::arbitrary(g))
    }
}

fn env_seed() -> Option<u64> {
    let text = std::env::var("FERROX_SEED").ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("FERROX_SEED={text:?} is not a u64: {e}")),
    )
}

fn case_count() -> u64 {
    match std::env::var("FERROX_PROPTEST_CASES") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("FERROX_PROPTEST_CASES={text:?} is not a count: {e}")),
        Err(_) => DEFAULT_CASES,
    }
}

/// Runs `check` for the seed in `FERROX_SEED`, or for `FERROX_PROPTEST_CASES` random seeds.
fn run_property(check: fn(u64) -> Result<(), String>, prop: fn(Seed) -> TestResult) {
    if let Some(seed) = env_seed() {
        if let Err(msg) = guarded(check, seed) {
            panic!("{msg}");
        }
        return;
    }
    let cases = case_count();
    QuickCheck::new()
        .tests(cases)
        .max_tests(cases)
        .quickcheck(prop);
}

/// Runs `check` for `seed`, turning a panic anywhere (generator included) into an error that
/// names the seed; engine and model panics are already caught, with more context, per command.
fn guarded(check: fn(u64) -> Result<(), String>, seed: u64) -> Result<(), String> {
    catch_unwind(|| check(seed)).unwrap_or_else(|p| {
        Err(format!(
            "seed {seed} (reproduce: FERROX_SEED={seed}): panicked: {}",
            panic_text(&p)
        ))
    })
}

fn as_test_result(outcome: Result<(), String>) -> TestResult {
    match outcome {
        Ok(()) => TestResult::passed(),
        Err(msg) => TestResult::error(msg),
    }
}

fn check_roomy(seed: u64) -> Result<(), String> {
    check_against_model(Profile::Roomy, seed, &mut Coverage::default())
}

fn check_tight(seed: u64) -> Result<(), String> {
    check_against_model(Profile::Tight, seed, &mut Coverage::default())
}

fn check_edge(seed: u64) -> Result<(), String> {
    check_against_model(Profile::Edge, seed, &mut Coverage::default())
}

fn prop_edge(seed: Seed) -> TestResult {
    as_test_result(guarded(check_edge, seed.0))
}

fn prop_roomy(seed: Seed) -> TestResult {
    as_test_result(guarded(check_roomy, seed.0))
}

fn prop_tight(seed: Seed) -> TestResult {
    as_test_result(guarded(check_tight, seed.0))
}

#[test]
fn engine_matches_reference_model() {
    run_property(check_roomy, prop_roomy);
}

#[test]
fn engine_matches_reference_model_with_small_limits() {
    run_property(check_tight, prop_tight);
}

#[test]
fn engine_matches_reference_model_at_the_edges() {
    run_property(check_edge, prop_edge);
}

// ----- determinism and the state hash -----------------------------------------------------

/// The same command stream on two fresh engines gives the same events and hashes after every
/// command; one extra resting order then changes the hash.
fn check_determinism(seed: u64) -> Result<(), String> {
    let config = Profile::Roomy.config();
    let mut a = Engine::new(config.clone()).map_err(|e| format!("bad test config: {e}"))?;
    let mut b = Engine::new(config.clone()).map_err(|e| format!("bad test config: {e}"))?;
    let mut commands = CommandGen::new(seed, Profile::Roomy);
    let apply = |engine: &mut Engine, cmd: &SequencedCommand| {
        let mut sink = VecSink::default();
        engine.apply(cmd, &mut sink);
        sink.events
    };
    for index in 0..COMMANDS_PER_CASE {
        let cmd = commands.next();
        let (ea, eb) = (apply(&mut a, &cmd), apply(&mut b, &cmd));
        if ea != eb || a.state_hash() != b.state_hash() {
            return Err(format!(
                "seed {seed}: two engines diverged at command #{index}: {cmd:?}\n\
                 hashes {:#x} vs {:#x}\nfirst:\n{}second:\n{}",
                a.state_hash(),
                b.state_hash(),
                fmt_events(&ea),
                fmt_events(&eb)
            ));
        }
        commands.observe(&ea);
    }
    // Now make the books differ by one resting order and nothing else: `a` gets the order, `b`
    // a Tick with the same sequence number and time, so that every counter but the book's
    // contents stays equal.
    let mut seq = commands.seq;
    let ts_ns = commands.ts_ns;
    for i in 0..config.instruments.len() {
        let id = InstrumentId(i as u32);
        if a.status(id) == Some(InstrumentStatus::Halted) {
            seq += 1;
            let resume = SequencedCommand {
                seq,
                ts_ns,
                command: Command::SetStatus(SetStatus {
                    instrument: id,
                    status: InstrumentStatus::Open,
                }),
            };
            apply(&mut a, &resume);
            apply(&mut b, &resume);
        }
        let Some(order) = passive_order(&a, id, &config.instruments[i]) else {
            continue;
        };
        seq += 1;
        let before = a.state_hash();
        let events = apply(
            &mut a,
            &SequencedCommand {
                seq,
                ts_ns,
                command: Command::NewOrder(order),
            },
        );
        apply(
            &mut b,
            &SequencedCommand {
                seq,
                ts_ns,
                command: Command::Tick,
            },
        );
        if !events.iter().any(|e| matches!(e, Event::Rested(_))) {
            return Err(format!(
                "seed {seed}: the extra order did not rest: {events:?}"
            ));
        }
        if a.state_hash() == b.state_hash() || a.state_hash() == before {
            return Err(format!(
                "seed {seed}: state_hash did not change with one extra resting order ({:#x})",
                a.state_hash()
            ));
        }
        return Ok(());
    }
    Err(format!(
        "seed {seed}: found no instrument where a passive order could rest"
    ))
}

/// A post-only GTC order at the passive band edge that does not cross, if there is one.
fn passive_order(engine: &Engine, id: InstrumentId, spec: &InstrumentSpec) -> Option<NewOrder> {
    let (lo, hi) = engine.price_band(id)?;
    let tick = spec.tick_size.0;
    let buy_ticks = (lo.0 + tick - 1).div_euclid(tick) * tick;
    let sell_ticks = hi.0.div_euclid(tick) * tick;
    let (side, price_ticks) = if engine.best_ask(id).is_none_or(|(ask, _)| ask.0 > buy_ticks) {
        (Side::Buy, buy_ticks)
    } else if engine
        .best_bid(id)
        .is_none_or(|(bid, _)| bid.0 < sell_ticks)
    {
        (Side::Sell, sell_ticks)
    } else {
        return None;
    };
    let mut order = NewOrder::limit(
        id,
        AccountId(9),
        ClientOrderId(9),
        side,
        PriceTicks(price_ticks),
        spec.lot_size,
    );
    order.post_only = true;
    Some(order)
}

fn prop_determinism(seed: Seed) -> TestResult {
    as_test_result(guarded(check_determinism, seed.0))
}

#[test]
fn same_commands_give_same_events_and_state_hash() {
    run_property(check_determinism, prop_determinism);
}

// ----- coverage -----------------------------------------------------------------------------

/// Fixed seeds (not random, so that this test cannot flake) through both profiles, with every
/// reject code, cancel reason, expiry reason and event kind required to occur. `Overflow` is
/// left out: no rule in docs/matching-rules.md produces it.
#[test]
fn generator_reaches_every_outcome() {
    let mut coverage = Coverage::default();
    let started = Instant::now();
    for seed in 1..=16 {
        for profile in [Profile::Roomy, Profile::Tight, Profile::Edge] {
            if let Err(msg) = check_against_model(profile, seed, &mut coverage) {
                panic!("{msg}");
            }
        }
    }
    println!(
        "coverage over {} commands ({:?}):",
        coverage.commands,
        started.elapsed()
    );
    for kind in EVENT_KINDS {
        println!(
            "  event {kind:<14} {}",
            coverage.events.get(kind).copied().unwrap_or(0)
        );
    }
    for code in RejectCode::ALL {
        println!(
            "  reject {:<26} {}",
            format!("{code:?}"),
            coverage.rejects.get(code).copied().unwrap_or(0)
        );
    }
    for reason in CancelReason::ALL {
        println!(
            "  cancel {:<26} {}",
            format!("{reason:?}"),
            coverage.cancels.get(reason).copied().unwrap_or(0)
        );
    }
    for reason in ExpireReason::ALL {
        println!(
            "  expire {:<26} {}",
            format!("{reason:?}"),
            coverage.expiries.get(reason).copied().unwrap_or(0)
        );
    }
    for code in RejectCode::ALL {
        if let Some(n) = coverage.replace_rejects.get(code) {
            println!("  replace reject {:<18} {n}", format!("{code:?}"));
        }
    }
    for name in SCENARIOS {
        println!(
            "  scenario {name:<55} {}",
            coverage.scenarios.get(name).copied().unwrap_or(0)
        );
    }
    let mut missing = Vec::new();
    missing.extend(
        SCENARIOS
            .iter()
            .filter(|n| !coverage.scenarios.contains_key(*n))
            .map(|n| n.to_string()),
    );
    // Every replace check, apart from the new-order-only ones, must have fired for a replace.
    missing.extend(
        [
            RejectCode::UnknownOrder,
            RejectCode::InstrumentHalted,
            RejectCode::QtyZero,
            RejectCode::QtyOffLot,
            RejectCode::QtyAboveMax,
            RejectCode::PriceNotPositive,
            RejectCode::PriceOffTick,
            RejectCode::PriceOutsideBand,
            RejectCode::NotionalAboveMax,
            RejectCode::ReplaceQtyNotAboveFilled,
            RejectCode::ReplaceNoChange,
            RejectCode::PostOnlyWouldTake,
            RejectCode::LevelPoolFull,
        ]
        .iter()
        .filter(|c| !coverage.replace_rejects.contains_key(c))
        .map(|c| format!("replace {c:?}")),
    );
    missing.extend(
        EVENT_KINDS
            .iter()
            .filter(|k| !coverage.events.contains_key(*k))
            .map(|k| k.to_string()),
    );
    missing.extend(
        RejectCode::ALL
            .iter()
            .filter(|c| **c != RejectCode::Overflow && !coverage.rejects.contains_key(c))
            .map(|c| format!("{c:?}")),
    );
    missing.extend(
        CancelReason::ALL
            .iter()
            .filter(|r| !coverage.cancels.contains_key(r))
            .map(|r| format!("{r:?}")),
    );
    missing.extend(
        ExpireReason::ALL
            .iter()
            .filter(|r| !coverage.expiries.contains_key(r))
            .map(|r| format!("{r:?}")),
    );
    assert!(
        missing.is_empty(),
        "the generator never produced: {missing:?}"
    );
}
