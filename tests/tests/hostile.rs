//! Hostile input: commands whose every field is drawn from the whole range of its type (any
//! id, any price, any quantity, any expiry) must never panic the engine, must be answered with
//! events, and must leave the engine consistent. Seeded; set FERROX_SEED to replay one case.

use ferrox_engine::{
    AccountId, Cancel, ClientOrderId, Command, Engine, EngineConfig, Event, InstrumentId,
    InstrumentSpec, InstrumentStatus, Limits, MassCancel, NewOrder, OrderId, OrderType, PriceBand,
    PriceTicks, QtyLots, Replace, SequencedCommand, SetStatus, Side, StpGroup, StpMode,
    TimeInForce, VecSink,
};

use ferrox_tests::Rng;

/// Draws for hostile values, on top of the shared generator.
trait Wild {
    fn wild_u64(&mut self) -> u64;
    fn wild_i64(&mut self) -> i64;
}

impl Wild for Rng {
    /// Mostly extreme values, sometimes small ones, so that both overflow edges and the
    /// interesting middle are hit.
    fn wild_u64(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => u64::MAX / 2 + self.below(3),
            3 => self.below(1_000),
            4 => 1 << self.below(64),
            _ => self.next_u64(),
        }
    }

    fn wild_i64(&mut self) -> i64 {
        match self.below(6) {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => 9_900 + self.below(200) as i64,
            3 => -(self.below(1_000) as i64),
            _ => self.next_u64() as i64,
        }
    }
}

fn config() -> EngineConfig {
    let mut tight = InstrumentSpec::simple("TIGHT", 10_000);
    tight.tick_size = PriceTicks(5);
    tight.lot_size = QtyLots(10);
    tight.qty_max = QtyLots(10_000);
    tight.notional_max = 50_000_000;
    tight.price_band = PriceBand::Ticks(500);
    tight.levels_per_side_max = 8;
    EngineConfig {
        limits: Limits {
            orders_max: 64,
            levels_max: 24,
            gtd_orders_max: 8,
        },
        instruments: vec![InstrumentSpec::simple("WIDE", 10_000), tight],
    }
}

fn wild_command(rng: &mut Rng, seq: u64) -> Command {
    let order_id = if rng.below(2) == 0 {
        OrderId(rng.below(seq + 1))
    } else {
        OrderId(rng.next_u64())
    };
    match rng.below(8) {
        0..=3 => Command::NewOrder(NewOrder {
            instrument: InstrumentId(if rng.below(4) == 0 {
                rng.next_u64() as u32
            } else {
                rng.below(2) as u32
            }),
            account: AccountId(if rng.below(2) == 0 {
                rng.below(3) as u32
            } else {
                rng.next_u64() as u32
            }),
            client_order_id: ClientOrderId(rng.next_u64()),
            side: if rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            },
            order_type: if rng.below(4) == 0 {
                OrderType::Market
            } else {
                OrderType::Limit
            },
            price: PriceTicks(if rng.below(2) == 0 {
                9_900 + 5 * rng.below(40) as i64
            } else {
                rng.wild_i64()
            }),
            qty: QtyLots(if rng.below(2) == 0 {
                10 * (1 + rng.below(20))
            } else {
                rng.wild_u64()
            }),
            tif: TimeInForce::ALL[rng.below(5) as usize],
            expire_ts_ns: if rng.below(2) == 0 { 0 } else { rng.wild_u64() },
            post_only: rng.below(4) == 0,
            stp_mode: StpMode::ALL[rng.below(5) as usize],
            stp_group: StpGroup(if rng.below(2) == 0 {
                0
            } else {
                rng.next_u64() as u32
            }),
        }),
        4 => Command::Cancel(Cancel {
            order_id,
            account: AccountId(rng.below(3) as u32),
            client_order_id: ClientOrderId(rng.next_u64()),
        }),
        5 => Command::Replace(Replace {
            order_id,
            account: AccountId(rng.below(3) as u32),
            client_order_id: ClientOrderId(rng.next_u64()),
            price: PriceTicks(rng.wild_i64()),
            qty: QtyLots(rng.wild_u64()),
        }),
        6 => Command::MassCancel(MassCancel {
            instrument: match rng.below(3) {
                0 => None,
                1 => Some(InstrumentId(rng.below(2) as u32)),
                _ => Some(InstrumentId(rng.next_u64() as u32)),
            },
            account: if rng.below(2) == 0 {
                None
            } else {
                Some(AccountId(rng.below(3) as u32))
            },
            client_order_id: ClientOrderId(rng.next_u64()),
        }),
        _ => match rng.below(4) {
            0 => Command::EndOfDay,
            1 => Command::Tick,
            _ => Command::SetStatus(SetStatus {
                instrument: InstrumentId(rng.below(3) as u32),
                status: if rng.below(3) == 0 {
                    InstrumentStatus::Halted
                } else {
                    InstrumentStatus::Open
                },
            }),
        },
    }
}

fn run_case(seed: u64, commands: u64) -> (u64, u64) {
    let (mut accepted, mut trades) = (0u64, 0u64);
    let mut rng = Rng(seed | 1);
    let mut engine = Engine::new(config()).expect("valid config");
    let mut sink = VecSink::default();
    let mut ts_ns = 0u64;
    for seq in 1..=commands {
        ts_ns = ts_ns.saturating_add(rng.below(1_000));
        let command = wild_command(&mut rng, seq);
        let cmd = SequencedCommand {
            seq,
            ts_ns,
            command,
        };
        engine.apply(&cmd, &mut sink);
        let events = sink.take();
        // Every request is answered: new orders, cancels, replaces and mass cancels each emit
        // at least one event (an acceptance, a reject, or the mass-cancel summary).
        if matches!(
            cmd.command,
            Command::NewOrder(_)
                | Command::Cancel(_)
                | Command::Replace(_)
                | Command::MassCancel(_)
        ) {
            assert!(
                !events.is_empty(),
                "seed {seed}: command {seq} {cmd:?} produced no event"
            );
        }
        for e in &events {
            match e {
                Event::Trade(t) => {
                    trades += 1;
                    assert!(t.qty.0 > 0, "seed {seed}: zero-quantity trade {t:?}");
                }
                Event::Accepted(_) => accepted += 1,
                _ => {}
            }
        }
        // The book never crosses at rest.
        for i in 0..2 {
            if let (Some((bid, _)), Some((ask, _))) = (
                engine.best_bid(InstrumentId(i)),
                engine.best_ask(InstrumentId(i)),
            ) {
                assert!(
                    bid < ask,
                    "seed {seed}: crossed book after {cmd:?}: {bid:?} >= {ask:?}"
                );
            }
        }
        let resting: usize = (0..2)
            .filter_map(|i| engine.book(InstrumentId(i)))
            .map(|b| {
                b.bids
                    .iter()
                    .chain(&b.asks)
                    .map(|l| l.orders.len())
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(
            resting,
            engine.orders_live() as usize,
            "seed {seed}: pool count drifted"
        );
    }
    (accepted, trades)
}

#[test]
fn hostile_commands_never_panic_and_keep_the_book_consistent() {
    let cases: u64 = std::env::var("FERROX_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seeds: Vec<u64> = match std::env::var("FERROX_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..cases).map(|i| 0x5EED_0000 + i * 7919).collect(),
    };
    let (mut accepted, mut trades) = (0, 0);
    for seed in seeds {
        let result = std::panic::catch_unwind(|| run_case(seed, 3_000));
        let Ok((a, t)) = result else {
            panic!("hostile case failed; reproduce with FERROX_SEED={seed}");
        };
        accepted += a;
        trades += t;
    }
    println!("hostile input: {accepted} orders accepted, {trades} trades");
    // Most wild orders are rejected, but enough must get through for the test to exercise
    // matching at all.
    assert!(
        accepted > 100 && trades > 10,
        "too few accepted orders ({accepted}) or trades ({trades})"
    );
}
