//! The command file: exact events of a small scenario, round trips through text and through a
//! journal, and the journal replaying to the same state as `run`.

use ferrox_engine::{
    AccountId, Cancel, Checkpoint, ClientOrderId, Command, Engine, EngineConfig, InstrumentId,
    InstrumentSpec, InstrumentStatus, Limits, MassCancel, NewOrder, NullSink, OrderId, OrderType,
    PriceTicks, QtyLots, Replace, SequencedCommand, SetStatus, Side, StpGroup, StpMode,
    TimeInForce,
};
use ferrox_replay::cmdfile::{self, EventFormat, TimedCommand};
use ferrox_sequencer::frame;
use ferrox_sequencer::journal::JournalReader;

fn config() -> EngineConfig {
    let mut btc = InstrumentSpec::simple("BTC-USD", 9_000_000);
    btc.qty_decimals = 4;
    btc.tick_size = PriceTicks(50);
    btc.lot_size = QtyLots(10);
    EngineConfig {
        limits: Limits {
            orders_max: 1024,
            levels_max: 1024,
            gtd_orders_max: 64,
        },
        instruments: vec![InstrumentSpec::simple("AAPL", 19_000), btc],
    }
}

const SCENARIO: &str = "\
# A resting sell, a partly filling IOC buy, a priority-keeping replace and two cancels (the
# second is rejected: the order is gone).
ts_ns,type,instrument,account,client_order_id,side,order_type,price,qty,tif,expire_ts_ns,post_only,stp,order_id
1000,new,AAPL,1,11,sell,limit,190.00,300,gtc,,,,
2000,new,AAPL,2,21,buy,limit,190.00,100,ioc,,,,
3000,replace,AAPL,1,12,,,190.00,250,,,,,1
4000,cancel,,1,13,,,,,,,,,1
5000,cancel,,1,14,,,,,,,,,1
";

const SCENARIO_EVENTS: &str = "\
seq,ts_ns,event,instrument,side,order_id,account,client_order_id,price,qty,detail
1,1000,accepted,AAPL,sell,1,1,11,190.00,300,order_type=limit tif=gtc expire_ts_ns=0 post_only=false
1,1000,rested,AAPL,sell,1,1,,190.00,300,
1,1000,level,AAPL,sell,,,,190.00,300,order_count=1
2,2000,accepted,AAPL,buy,2,2,21,190.00,100,order_type=limit tif=ioc expire_ts_ns=0 post_only=false
2,2000,trade,AAPL,buy,2,2,21,190.00,100,trade_id=1 taker_qty_open=0 maker_order_id=1 maker_account=1 maker_client_order_id=11 maker_qty_open=200
2,2000,level,AAPL,sell,,,,190.00,200,order_count=1
3,3000,replaced,AAPL,sell,1,1,12,190.00,150,orig_client_order_id=11 price_old=190.00 qty_open_old=200 qty_filled=100 priority_kept=true
3,3000,level,AAPL,sell,,,,190.00,150,order_count=1
4,4000,cancelled,AAPL,sell,1,1,12,190.00,150,reason=Requested
4,4000,level,AAPL,sell,,,,190.00,0,order_count=0
5,5000,rejected,AAPL,,1,1,14,,,request=Cancel code=103 reason=unknown_order
";

#[test]
fn scenario_gives_exact_events_and_summary() {
    let cfg = config();
    let commands = cmdfile::parse(SCENARIO, &cfg.instruments).unwrap();
    assert_eq!(commands.len(), 5);
    let mut out = Vec::new();
    let summary = cmdfile::run(&cfg, &commands, Some((&mut out, EventFormat::Csv))).unwrap();
    let text = String::from_utf8(out).unwrap();
    print!("{text}");
    assert_eq!(text, SCENARIO_EVENTS);
    assert_eq!(summary.commands, 5);
    assert_eq!(summary.trades, 1);
    assert_eq!(summary.volume_lots.get(&0), Some(&100));
    assert_eq!(summary.rejects.values().sum::<u64>(), 1);
    assert_eq!(summary.orders_live, 0);

    let mut jsonl = Vec::new();
    cmdfile::run(&cfg, &commands, Some((&mut jsonl, EventFormat::Jsonl))).unwrap();
    let jsonl = String::from_utf8(jsonl).unwrap();
    assert_eq!(jsonl.lines().count(), SCENARIO_EVENTS.lines().count() - 1);
    assert!(jsonl.lines().nth(4).unwrap().starts_with(
        "{\"seq\":2,\"ts_ns\":2000,\"event\":\"trade\",\"instrument\":\"AAPL\",\"side\":\"buy\""
    ));
}

#[test]
fn decreasing_time_is_refused_by_run() {
    let cfg = config();
    let err = cmdfile::run(&cfg, &[(5, Command::Tick), (4, Command::Tick)], None).unwrap_err();
    assert!(
        err.contains("command 2") && err.contains("ts_ns 4"),
        "{err}"
    );
}

/// A small deterministic generator, so that failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Commands that the file can express: prices and quantities on the tick and lot size, and
/// replaces only of orders created earlier in the list (so their instrument is known).
fn generate(seed: u64, n: usize) -> Vec<TimedCommand> {
    let mut rng = Rng(seed);
    let mut ts = rng.below(1_000);
    let mut created: Vec<(u64, InstrumentId)> = Vec::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        ts += rng.below(3);
        let instrument = InstrumentId(rng.below(2) as u32);
        let (tick, lot) = if instrument.0 == 0 { (1, 1) } else { (50, 10) };
        let price = PriceTicks((rng.below(400_000) as i64 - 1_000) * tick);
        let qty = QtyLots(rng.below(10_000) * lot);
        let account = AccountId(rng.below(5) as u32);
        let clid = ClientOrderId(rng.below(1 << 40));
        let command = match rng.below(9) {
            0..=2 => {
                let order_type = if rng.below(4) == 0 {
                    OrderType::Market
                } else {
                    OrderType::Limit
                };
                let tif = TimeInForce::ALL[rng.below(5) as usize];
                created.push((i as u64 + 1, instrument));
                Command::NewOrder(NewOrder {
                    instrument,
                    account,
                    client_order_id: clid,
                    side: if rng.below(2) == 0 {
                        Side::Buy
                    } else {
                        Side::Sell
                    },
                    order_type,
                    price: if order_type == OrderType::Market && rng.below(2) == 0 {
                        PriceTicks(0)
                    } else {
                        price
                    },
                    qty,
                    tif,
                    expire_ts_ns: if tif == TimeInForce::Gtd {
                        ts + rng.below(99)
                    } else {
                        0
                    },
                    post_only: rng.below(3) == 0,
                    stp_mode: StpMode::ALL[rng.below(5) as usize],
                    stp_group: StpGroup(if rng.below(2) == 0 {
                        0
                    } else {
                        rng.below(9) as u32
                    }),
                })
            }
            3 => Command::Cancel(Cancel {
                order_id: OrderId(rng.below(n as u64 + 2)),
                account,
                client_order_id: clid,
            }),
            4 if !created.is_empty() => {
                let (order, instrument) = created[rng.below(created.len() as u64) as usize];
                let tick = if instrument.0 == 0 { 1 } else { 50 };
                let lot = if instrument.0 == 0 { 1 } else { 10 };
                Command::Replace(Replace {
                    order_id: OrderId(order),
                    account,
                    client_order_id: clid,
                    price: PriceTicks(rng.below(30_000) as i64 * tick),
                    qty: QtyLots(rng.below(500) * lot),
                })
            }
            5 => Command::MassCancel(MassCancel {
                instrument: (rng.below(2) == 0).then_some(instrument),
                account: (rng.below(2) == 0).then_some(account),
                client_order_id: clid,
            }),
            6 => Command::SetStatus(SetStatus {
                instrument,
                status: if rng.below(2) == 0 {
                    InstrumentStatus::Halted
                } else {
                    InstrumentStatus::Open
                },
            }),
            7 => Command::Checkpoint(Checkpoint { instrument }),
            _ => {
                if rng.below(2) == 0 {
                    Command::Tick
                } else {
                    Command::EndOfDay
                }
            }
        };
        out.push((ts, command));
    }
    out
}

#[test]
fn write_then_parse_gives_the_same_commands() {
    let cfg = config();
    for seed in 0..40 {
        let commands = generate(seed, 200);
        let text = cmdfile::write(&cfg.instruments, &commands).unwrap();
        let back = cmdfile::parse(&text, &cfg.instruments)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        assert_eq!(back, commands, "seed {seed}");
    }
}

#[test]
fn file_to_journal_to_file_is_identical_and_replays_to_the_run_hash() {
    let cfg = config();
    let mut text = String::from(SCENARIO);
    // Add generated traffic so that the journal holds more than a handful of records.
    let extra = cmdfile::write(&cfg.instruments, &generate(7, 300)).unwrap();
    let shift = 5_000u64;
    let extra: Vec<TimedCommand> = cmdfile::parse(&extra, &cfg.instruments)
        .unwrap()
        .into_iter()
        .map(|(ts, c)| (ts + shift, c))
        .collect();
    let mut commands = cmdfile::parse(&text, &cfg.instruments).unwrap();
    // Generated replaces name orders by their position in the generated list; keep them
    // pointing at the same orders after the scenario's five commands.
    for (_, c) in &extra {
        let mut c = *c;
        if let Command::Replace(r) = &mut c {
            r.order_id.0 += 5;
        }
        commands.push((0, c));
    }
    for (i, (ts, _)) in extra.iter().enumerate() {
        commands[5 + i].0 = *ts;
    }
    text = cmdfile::write(&cfg.instruments, &commands).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    assert_eq!(cmdfile::to_journal(&journal, &commands).unwrap(), 305);
    let back = cmdfile::from_journal(&journal).unwrap();
    assert_eq!(back, commands);
    assert_eq!(cmdfile::write(&cfg.instruments, &back).unwrap(), text);

    // Replay the journal record by record, with its own seqs, as any journal tool would.
    let summary = cmdfile::run(&cfg, &commands, None).unwrap();
    let mut engine = Engine::new(cfg.clone()).unwrap();
    let reader = JournalReader::open(&journal).unwrap();
    for record in reader.iter() {
        let record = record.unwrap();
        let (_, command) = frame::decode_input(record.payload).unwrap();
        engine.apply(
            &SequencedCommand {
                seq: record.seq,
                ts_ns: record.ts_ns,
                command,
            },
            &mut NullSink,
        );
    }
    assert_eq!(engine.state_hash(), summary.state_hash);

    // A second journal into the same directory is refused rather than appended.
    assert!(cmdfile::to_journal(&journal, &commands).is_err());
}

#[test]
fn the_documented_example_parses_and_runs() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/command-file.md"),
    )
    .unwrap();
    let example = doc
        .split("## Example")
        .nth(1)
        .and_then(|s| s.split("```text\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("docs/command-file.md has an example block");
    let cfg = config();
    let commands = cmdfile::parse(example, &cfg.instruments).unwrap();
    assert_eq!(commands.len(), 11);
    assert!(SCENARIO_EVENTS.lines().skip(1).all(|l| doc.contains(l)));
    let summary = cmdfile::run(&cfg, &commands, None).unwrap();
    assert_eq!(summary.commands, 11);
}

#[test]
fn mangled_files_give_errors_not_panics() {
    let cfg = config();
    let text = cmdfile::write(&cfg.instruments, &generate(3, 60)).unwrap();
    let alphabet = b",.-#/0123456789 abcdefghijklmnopqrstuvwxyz\n";
    let mut rng = Rng(99);
    for _ in 0..300 {
        let mut bytes = text.clone().into_bytes();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[at] = alphabet[rng.below(alphabet.len() as u64) as usize],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[rng.below(alphabet.len() as u64) as usize]),
            }
        }
        let mangled = String::from_utf8(bytes).unwrap();
        if let Err(e) = cmdfile::parse(&mangled, &cfg.instruments) {
            assert!(
                e.line >= 1 && e.line <= mangled.lines().count().max(1),
                "{e}"
            );
        }
    }
}
