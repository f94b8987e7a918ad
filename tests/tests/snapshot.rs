//! Snapshots: an engine restored from a snapshot has the same state hash as the original and
//! produces the same events for the same following commands; damaged snapshots are refused
//! with an error, never a panic and never a wrong state. Seeded; FERROX_SEED replays one case.

use ferrox_engine::{
    AccountId, Cancel, ClientOrderId, Command, Engine, EngineConfig, InstrumentId, InstrumentSpec,
    InstrumentStatus, Limits, MassCancel, NewOrder, OrderId, OrderType, PriceBand, PriceTicks,
    QtyLots, Replace, SequencedCommand, SetStatus, Side, SnapshotError, StpGroup, StpMode,
    TimeInForce, VecSink,
};

use ferrox_tests::Rng;

fn config() -> EngineConfig {
    let mut b = InstrumentSpec::simple("B", 1_000);
    b.tick_size = PriceTicks(5);
    b.price_band = PriceBand::Ticks(200);
    EngineConfig {
        limits: Limits {
            orders_max: 512,
            levels_max: 128,
            gtd_orders_max: 64,
        },
        instruments: vec![InstrumentSpec::simple("A", 1_000), b],
    }
}

/// A plausible command stream: most orders near the reference so that they cross and rest,
/// cancels and replaces of ids that were recently issued, every time in force.
fn command(rng: &mut Rng, seq: u64, ts_ns: u64) -> Command {
    let recent = OrderId(seq.saturating_sub(1 + rng.below(40)));
    let account = AccountId(rng.below(4) as u32);
    match rng.below(20) {
        0..=10 => {
            let tif = TimeInForce::ALL[rng.below(5) as usize];
            let market = rng.below(10) == 0;
            Command::NewOrder(NewOrder {
                instrument: InstrumentId(rng.below(2) as u32),
                account,
                client_order_id: ClientOrderId(seq),
                side: if rng.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                },
                order_type: if market {
                    OrderType::Market
                } else {
                    OrderType::Limit
                },
                price: PriceTicks(960 + 5 * rng.below(16) as i64),
                qty: QtyLots(1 + rng.below(20)),
                tif: if market { TimeInForce::Ioc } else { tif },
                expire_ts_ns: if tif == TimeInForce::Gtd && !market {
                    ts_ns + 1 + rng.below(5_000)
                } else {
                    0
                },
                post_only: !market && tif.rests() && rng.below(8) == 0,
                stp_mode: StpMode::ALL[rng.below(5) as usize],
                stp_group: StpGroup(rng.below(2) as u32),
            })
        }
        11..=13 => Command::Cancel(Cancel {
            order_id: recent,
            account,
            client_order_id: ClientOrderId(seq),
        }),
        14..=17 => Command::Replace(Replace {
            order_id: recent,
            account,
            client_order_id: ClientOrderId(seq),
            price: PriceTicks(960 + 5 * rng.below(16) as i64),
            qty: QtyLots(1 + rng.below(30)),
        }),
        18 => Command::MassCancel(MassCancel {
            instrument: Some(InstrumentId(rng.below(2) as u32)),
            account: Some(account),
            client_order_id: ClientOrderId(seq),
        }),
        _ => match rng.below(6) {
            0 => Command::EndOfDay,
            1 => Command::SetStatus(SetStatus {
                instrument: InstrumentId(rng.below(2) as u32),
                status: if rng.below(4) == 0 {
                    InstrumentStatus::Halted
                } else {
                    InstrumentStatus::Open
                },
            }),
            _ => Command::Tick,
        },
    }
}

fn stream(seed: u64, n: u64) -> Vec<SequencedCommand> {
    let mut rng = Rng(seed | 1);
    let mut ts_ns = 1_000;
    (1..=n)
        .map(|seq| {
            ts_ns += rng.below(200);
            SequencedCommand {
                seq,
                ts_ns,
                command: command(&mut rng, seq, ts_ns),
            }
        })
        .collect()
}

fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("FERROX_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..default).map(|i| 0xA11C_E000 + i * 104_729).collect(),
    }
}

#[test]
fn restored_engine_continues_identically() {
    for seed in seeds(12) {
        let cmds = stream(seed, 4_000);
        let mut original = Engine::new(config()).unwrap();
        let mut sink = VecSink::default();
        let split = 500 + (seed % 3_000) as usize;
        for c in &cmds[..split] {
            original.apply(c, &mut sink);
        }
        let mut kinds = std::collections::BTreeMap::new();
        for e in sink.take() {
            let k = format!("{e:?}");
            let k = k.split('(').next().unwrap_or("").to_string();
            let code = match e {
                ferrox_engine::Event::Rejected(r) => format!("{:?}", r.code),
                _ => String::new(),
            };
            *kinds.entry(k + &code).or_insert(0u32) += 1;
        }
        assert!(
            original.orders_live() > 0,
            "seed {seed}: the workload left an empty book {kinds:?}"
        );
        let mut bytes = Vec::new();
        original.write_snapshot(&mut bytes);
        let mut restored = Engine::from_snapshot(config(), &bytes)
            .unwrap_or_else(|e| panic!("seed {seed}: restore failed: {e}"));
        assert_eq!(restored.state_hash(), original.state_hash(), "seed {seed}");
        for i in 0..2 {
            assert_eq!(
                restored.book(InstrumentId(i)),
                original.book(InstrumentId(i)),
                "seed {seed}"
            );
        }
        // A snapshot of the restored engine is byte-identical: nothing was lost or reordered.
        let mut again = Vec::new();
        restored.write_snapshot(&mut again);
        assert_eq!(
            again, bytes,
            "seed {seed}: snapshot of the restored engine differs"
        );
        let (mut a, mut b) = (VecSink::default(), VecSink::default());
        for c in &cmds[split..] {
            original.apply(c, &mut a);
            restored.apply(c, &mut b);
            assert_eq!(
                a.take(),
                b.take(),
                "seed {seed}: events diverged at seq {}",
                c.seq
            );
        }
        assert_eq!(restored.state_hash(), original.state_hash(), "seed {seed}");
    }
}

#[test]
fn damaged_snapshots_are_refused_never_trusted() {
    let cmds = stream(7, 1_500);
    let mut engine = Engine::new(config()).unwrap();
    let mut sink = VecSink::default();
    for c in &cmds {
        engine.apply(c, &mut sink);
    }
    let mut bytes = Vec::new();
    engine.write_snapshot(&mut bytes);
    let hash = engine.state_hash();
    // Every truncation is refused.
    for len in 0..bytes.len() {
        assert!(
            Engine::from_snapshot(config(), &bytes[..len]).is_err(),
            "truncated to {len}"
        );
    }
    // Every single-bit flip is refused, or (for bits that do not change the state, which the
    // format has none of) restores the very same state.
    let mut refused = 0;
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        match Engine::from_snapshot(config(), &damaged) {
            Err(_) => refused += 1,
            Ok(e) => {
                assert_eq!(e.state_hash(), hash, "bit {bit} flipped into another state");
                println!("bit {bit} (byte {}) flipped unnoticed", bit / 8);
            }
        }
    }
    assert_eq!(refused, bytes.len() * 8, "some bit flips were not noticed");
    // Trailing garbage, another configuration, and a wrong format are named.
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        Engine::from_snapshot(config(), &long).err(),
        Some(SnapshotError::Trailing(1))
    );
    let mut other = config();
    other.instruments[1].tick_size = PriceTicks(1);
    assert!(matches!(
        Engine::from_snapshot(other, &bytes),
        Err(SnapshotError::Instruments { .. })
    ));
    assert_eq!(
        Engine::from_snapshot(config(), b"not a snapshot").err(),
        Some(SnapshotError::BadMagic)
    );
}

#[test]
fn snapshot_into_smaller_limits_is_a_capacity_error() {
    let cmds = stream(11, 2_000);
    let mut engine = Engine::new(config()).unwrap();
    let mut sink = VecSink::default();
    for c in &cmds {
        engine.apply(c, &mut sink);
    }
    let mut bytes = Vec::new();
    engine.write_snapshot(&mut bytes);
    let mut small = config();
    small.limits.orders_max = (engine.orders_live() / 2).max(1);
    assert!(matches!(
        Engine::from_snapshot(small, &bytes),
        Err(SnapshotError::Capacity(_))
    ));
}
