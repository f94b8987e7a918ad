//! The feed over a bad network: a real engine, the publisher, a channel that drops, duplicates
//! and reorders packets, the recovery service's answers, and a subscriber. Every gap must be
//! detected and recovered, duplicates ignored, and the rebuilt books must equal the engine's
//! (by fingerprint) at every checkpoint and at every command boundary where the subscriber has
//! caught up.
//!
//! Randomness is seeded; set `FERROX_SEED` to rerun a failure (the seed is in the message).

use std::collections::BTreeMap;

use ferrox_engine::{Engine, EngineConfig, InstrumentSpec, Limits};
use ferrox_marketdata::feed::{
    encode_heartbeat, FrameSplitter, Message, PacketBuilder, SessionId, PACKET_HEADER_BYTES,
};
use ferrox_marketdata::publisher::{InstrumentInfo, MessageSink, Publisher, PublisherConfig};
use ferrox_marketdata::recovery::{answer, RetransmitStore};
use ferrox_marketdata::subscriber::{Subscriber, SubscriberConfig};
use ferrox_protocol::{
    AccountId, Cancel, Checkpoint, ClientOrderId, Command, Event, InstrumentId, InstrumentStatus,
    NewOrder, OrderId, OrderType, PriceTicks, QtyLots, Replace, SequencedCommand, SetStatus, Side,
    TimeInForce, VecSink,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64: small, seedable, good enough for test streams.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `per_10k` / 10,000.
    fn chance(&mut self, per_10k: u64) -> bool {
        self.below(10_000) < per_10k
    }
}

fn seed() -> u64 {
    std::env::var("FERROX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_F00D)
}

const INSTRUMENTS: u32 = 3;
const REFERENCE: [i64; 3] = [10_000, 2_000, 500];

fn engine() -> Engine {
    let instruments = (0..INSTRUMENTS as usize)
        .map(|i| InstrumentSpec::simple(&format!("S{i}"), REFERENCE[i]))
        .collect();
    Engine::new(EngineConfig {
        limits: Limits {
            orders_max: 65_536,
            levels_max: 8_192,
            gtd_orders_max: 1_024,
        },
        instruments,
    })
    .expect("valid config")
}

fn infos() -> Vec<InstrumentInfo> {
    (0..INSTRUMENTS as usize)
        .map(|i| InstrumentInfo {
            symbol: format!("S{i}"),
            price_decimals: 2,
            qty_decimals: 0,
            tick_size: PriceTicks(1),
            lot_size: QtyLots(1),
            status: InstrumentStatus::Open,
        })
        .collect()
}

/// Random commands aimed at live orders (it learns them from the events), with halts,
/// checkpoints and the occasional sweep.
struct Driver {
    rng: Rng,
    seq: u64,
    ts_ns: u64,
    live: Vec<(u64, u32)>,
    halted: [bool; INSTRUMENTS as usize],
}

impl Driver {
    fn next(&mut self) -> SequencedCommand {
        self.seq += 1;
        self.ts_ns += 1 + self.rng.below(1_000);
        let account = AccountId(self.rng.below(5) as u32);
        let cid = ClientOrderId(self.seq);
        let roll = self.rng.below(1_000);
        let command = if roll < 560 || self.live.is_empty() {
            let i = self.rng.below(u64::from(INSTRUMENTS)) as u32;
            let side = if self.rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let away = self.rng.below(30) as i64 - 4;
            let r = REFERENCE[i as usize];
            let price = match side {
                Side::Buy => r - away,
                Side::Sell => r + away,
            };
            let mut o = NewOrder::limit(
                InstrumentId(i),
                account,
                cid,
                side,
                PriceTicks(price),
                QtyLots(1 + self.rng.below(50)),
            );
            match self.rng.below(100) {
                0..=9 => o.tif = TimeInForce::Ioc,
                10..=12 => o.tif = TimeInForce::Fok,
                13..=14 => {
                    // A sweep: a big marketable order.
                    o.order_type = OrderType::Market;
                    o.tif = TimeInForce::Ioc;
                    o.qty = QtyLots(200 + self.rng.below(800));
                }
                _ => {}
            }
            Command::NewOrder(o)
        } else if roll < 800 {
            let k = self.rng.below(self.live.len() as u64) as usize;
            let (id, acct) = self.live[k];
            Command::Cancel(Cancel {
                order_id: OrderId(id),
                account: AccountId(acct),
                client_order_id: cid,
            })
        } else if roll < 960 {
            let k = self.rng.below(self.live.len() as u64) as usize;
            let (id, acct) = self.live[k];
            Command::Replace(Replace {
                order_id: OrderId(id),
                account: AccountId(acct),
                client_order_id: cid,
                price: PriceTicks(REFERENCE[0] - 20 + self.rng.below(40) as i64),
                qty: QtyLots(1 + self.rng.below(60)),
            })
        } else if roll < 990 {
            Command::Checkpoint(Checkpoint {
                instrument: InstrumentId(self.rng.below(u64::from(INSTRUMENTS)) as u32),
            })
        } else if let Some(i) = self.halted.iter().position(|&h| h) {
            // Halts are short: the next status command reopens the instrument.
            self.halted[i] = false;
            Command::SetStatus(SetStatus {
                instrument: InstrumentId(i as u32),
                status: InstrumentStatus::Open,
            })
        } else if self.rng.below(10) > 0 {
            Command::Tick
        } else {
            let i = self.rng.below(u64::from(INSTRUMENTS)) as usize;
            self.halted[i] = !self.halted[i];
            Command::SetStatus(SetStatus {
                instrument: InstrumentId(i as u32),
                status: if self.halted[i] {
                    InstrumentStatus::Halted
                } else {
                    InstrumentStatus::Open
                },
            })
        };
        SequencedCommand {
            seq: self.seq,
            ts_ns: self.ts_ns,
            command,
        }
    }

    fn learn(&mut self, events: &[Event]) {
        for e in events {
            match e {
                Event::Rested(r) => self.live.push((r.order_id.0, r.account.0)),
                Event::Cancelled(c) => self.live.retain(|o| o.0 != c.order_id.0),
                Event::Expired(x) => self.live.retain(|o| o.0 != x.order_id.0),
                Event::Trade(t) if t.maker_qty_open.0 == 0 => {
                    self.live.retain(|o| o.0 != t.maker_order_id.0)
                }
                Event::Replaced(r) if !r.priority_kept => self.live.retain(|o| o.0 != r.order_id.0),
                _ => {}
            }
        }
    }
}

/// The publisher's side of the wire: messages into the retransmission store and into packets.
struct Wire {
    store: RetransmitStore,
    packet: PacketBuilder,
    sent: Vec<Vec<u8>>,
}

impl MessageSink for Wire {
    fn message(&mut self, seq: u64, msg: &Message) {
        self.store.push(seq, msg);
        if self.packet.is_empty() {
            self.packet.start(seq);
        }
        if !self.packet.push(msg) {
            self.sent.push(self.packet.bytes().to_vec());
            self.packet.start(seq);
            assert!(self.packet.push(msg));
        }
    }
}

impl Wire {
    fn flush(&mut self) {
        if !self.packet.is_empty() {
            self.sent.push(self.packet.bytes().to_vec());
            let next = self.packet.next_seq();
            self.packet.start(next);
        }
    }
}

/// Rates in units of 1/10,000.
#[derive(Clone, Copy, Debug)]
struct Loss {
    drop: u64,
    dup: u64,
    reorder: u64,
}

#[derive(Debug, Default)]
struct Outcome {
    packets: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    boundary_checks: u64,
}

/// Delivers packets through the lossy channel into the subscriber and serves its recovery
/// requests, the way the client and the server do over sockets.
struct Channel {
    rng: Rng,
    loss: Loss,
    /// Packets in flight, by the step at which they arrive.
    in_flight: BTreeMap<(u64, u64), Vec<u8>>,
    step: u64,
    n: u64,
    outcome: Outcome,
}

impl Channel {
    fn send(&mut self, packet: Vec<u8>) {
        self.outcome.packets += 1;
        if self.rng.chance(self.loss.drop) {
            self.outcome.dropped += 1;
            return;
        }
        let mut at = self.step;
        if self.rng.chance(self.loss.reorder) {
            self.outcome.reordered += 1;
            at += 1 + self.rng.below(4);
        }
        if self.rng.chance(self.loss.dup) {
            self.outcome.duplicated += 1;
            self.n += 1;
            let later = at + self.rng.below(6);
            self.in_flight.insert((later, self.n), packet.clone());
        }
        self.n += 1;
        self.in_flight.insert((at, self.n), packet);
    }

    fn deliver(&mut self, sub: &mut Subscriber, upto_step: u64) {
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > upto_step {
                break;
            }
            let packet = entry.remove();
            sub.on_packet(&packet)
                .expect("the publisher's packets parse");
        }
    }
}

fn recover(sub: &mut Subscriber, session: SessionId, wire: &Wire, publisher: &Publisher) {
    let mut rounds = 0;
    while let Some(request) = sub.poll_request() {
        rounds += 1;
        assert!(rounds < 1_000, "recovery does not converge");
        let mut bytes = Vec::new();
        let _ = answer(&request, session, &wire.store, publisher, 1_400, &mut bytes);
        let mut frames = FrameSplitter::new();
        frames.push(&bytes);
        while let Some(frame) = frames.next_frame() {
            sub.on_reply(frame).expect("the service's replies parse");
        }
    }
}

/// `FERROX_MD_COMMANDS` replaces each test's command count, for long runs.
fn commands(default: u64) -> u64 {
    std::env::var("FERROX_MD_COMMANDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn run(seed: u64, commands: u64, loss: Loss, join_after: u64, retransmit_capacity: usize) {
    let ctx = format!("seed {seed} (FERROX_SEED={seed}), loss {loss:?}");
    let mut engine = engine();
    let session = SessionId::new("T0000001").unwrap();
    let mut publisher = Publisher::new(&infos(), PublisherConfig::default());
    let mut wire = Wire {
        store: RetransmitStore::new(retransmit_capacity),
        packet: PacketBuilder::new(session, 1_400),
        sent: Vec::new(),
    };
    publisher.start(0, &mut wire);
    wire.flush();
    let mut driver = Driver {
        rng: Rng(seed),
        seq: 0,
        ts_ns: 1_000,
        live: Vec::new(),
        halted: [false; INSTRUMENTS as usize],
    };
    let mut channel = Channel {
        rng: Rng(seed ^ 0xC4A7),
        loss,
        in_flight: BTreeMap::new(),
        step: 0,
        n: 0,
        outcome: Outcome::default(),
    };
    let mut sub = Subscriber::new(SubscriberConfig {
        instruments_max: INSTRUMENTS as usize,
        depth: PublisherConfig::default().depth,
        ..SubscriberConfig::default()
    });
    let mut sink = VecSink::default();
    for c in 0..commands {
        let cmd = driver.next();
        engine.apply(&cmd, &mut sink);
        let events = sink.take();
        driver.learn(&events);
        for e in &events {
            publisher.on_event(cmd.ts_ns, cmd.seq, e, &mut wire);
        }
        publisher.on_end(cmd.ts_ns, &mut wire);
        if std::env::var("FERROX_DEBUG_MIRROR").is_ok() {
            for i in 0..INSTRUMENTS {
                let instrument = InstrumentId(i);
                if publisher.books().hash(instrument) != engine.book_hash(instrument).unwrap().0 {
                    let mut mine = Vec::new();
                    publisher.books().for_each_order(instrument, |o| {
                        mine.push((o.side, o.price.0, o.order_id.0, o.qty_open.0))
                    });
                    let mut theirs = Vec::new();
                    for side in [Side::Buy, Side::Sell] {
                        for l in engine.levels_of(instrument, side) {
                            for o in l.orders {
                                theirs.push((o.side, o.price.0, o.order_id.0, o.qty_open.0));
                            }
                        }
                    }
                    panic!("{ctx}: after {cmd:?} the mirror of {instrument} differs; events {events:?}\nmirror {mine:?}\nengine {theirs:?}");
                }
            }
        }
        // Packets go out every few commands (or when full), as a busy publisher batches them.
        if channel.rng.below(4) == 0 {
            wire.flush();
        }
        if wire.sent.is_empty() && channel.rng.below(50) == 0 {
            // An idle moment: a heartbeat, which the channel may lose like any packet.
            let mut hb = [0u8; PACKET_HEADER_BYTES];
            encode_heartbeat(session, publisher.next_seq(), &mut hb);
            wire.sent.push(hb.to_vec());
        }
        for p in std::mem::take(&mut wire.sent) {
            if c >= join_after {
                channel.send(p);
            }
        }
        channel.step += 1;
        channel.deliver(&mut sub, channel.step);
        recover(&mut sub, session, &wire, &publisher);
        if sub.is_caught_up() && sub.next_seq() == publisher.next_seq() {
            channel.outcome.boundary_checks += 1;
            for i in 0..INSTRUMENTS {
                let instrument = InstrumentId(i);
                assert_eq!(
                    sub.books().hash(instrument),
                    engine.book_hash(instrument).unwrap().0,
                    "{ctx}: after command {} the subscriber's book of {instrument} differs; {:?}",
                    cmd.seq,
                    sub.first_problem()
                );
            }
        }
    }
    // The end: everything still in flight arrives, then a heartbeat that is not lost tells the
    // subscriber where the stream ends.
    wire.flush();
    for p in std::mem::take(&mut wire.sent) {
        channel.send(p);
    }
    channel.deliver(&mut sub, u64::MAX);
    let mut hb = [0u8; PACKET_HEADER_BYTES];
    encode_heartbeat(session, publisher.next_seq(), &mut hb);
    sub.on_packet(&hb).unwrap();
    recover(&mut sub, session, &wire, &publisher);

    let pc = publisher.counters();
    let sc = sub.counters();
    let o = &channel.outcome;
    let report = format!(
        "{ctx}\npublisher {pc:?}\nsubscriber {sc:?}\nchannel {o:?}\nfirst problem: {:?} / {:?}",
        sub.first_problem(),
        publisher.first_error()
    );
    assert_eq!(pc.mirror_errors, 0, "{report}");
    assert_eq!(pc.delta_mismatches, 0, "{report}");
    assert_eq!(pc.checkpoint_mismatches, 0, "{report}");
    assert!(pc.checkpoints > 0, "{report}");
    assert!(sub.is_caught_up(), "{report}");
    assert_eq!(sub.next_seq(), publisher.next_seq(), "{report}");
    assert_eq!(sc.apply_errors, 0, "{report}");
    assert_eq!(sc.checkpoints_bad, 0, "{report}");
    assert_eq!(sc.snapshots_bad, 0, "{report}");
    assert_eq!(sc.view_mismatches, 0, "{report}");
    assert!(sc.checkpoints_ok > 0, "{report}");
    assert!(o.boundary_checks > (commands - join_after) / 4, "{report}");
    if loss.drop > 0 && o.dropped > 0 {
        assert!(
            sc.gaps > 0 && sc.retransmitted + sc.snapshots > 0,
            "{report}"
        );
    }
    if loss.dup > 0 && o.duplicated > 0 {
        assert!(sc.duplicates > 0, "{report}");
    }
    if join_after > 0 {
        assert!(sc.snapshots > 0, "{report}");
    }
    for i in 0..INSTRUMENTS {
        let instrument = InstrumentId(i);
        let (hash, orders, _, _) = engine.book_hash(instrument).unwrap();
        assert_eq!(sub.books().hash(instrument), hash, "{report}");
        assert_eq!(sub.books().order_count(instrument), orders, "{report}");
        let view = sub.instrument(instrument).unwrap();
        assert_eq!(
            view.status,
            Some(engine.status(instrument).unwrap()),
            "{report}"
        );
        assert_eq!(
            view.directory.unwrap().symbol_str(),
            format!("S{i}"),
            "{report}"
        );
    }
    eprintln!("{report}");
}

const NONE: Loss = Loss {
    drop: 0,
    dup: 0,
    reorder: 0,
};

/// The same rate, in units of 1/10,000, for dropping, duplicating and reordering.
const fn loss(per_10k: u64) -> Loss {
    Loss {
        drop: per_10k,
        dup: per_10k,
        reorder: per_10k,
    }
}

#[test]
fn clean_channel_needs_no_recovery() {
    run(seed(), commands(5_000), NONE, 0, 1 << 20);
}

#[test]
fn drops_dups_and_reorders_at_a_tenth_of_a_percent() {
    run(seed(), commands(100_000), loss(10), 0, 1 << 20);
}

#[test]
fn drops_dups_and_reorders_at_one_percent() {
    run(seed() + 1, commands(100_000), loss(100), 0, 1 << 20);
}

#[test]
fn drops_dups_and_reorders_at_five_percent() {
    run(seed() + 2, commands(100_000), loss(500), 0, 1 << 20);
}

#[test]
fn late_joiner_takes_a_snapshot() {
    let n = commands(10_000);
    run(seed() + 3, n, loss(100), n * 3 / 10, 1 << 20);
}

#[test]
fn gaps_older_than_the_retransmit_buffer_fall_back_to_a_snapshot() {
    // A buffer of 64 messages: most gaps are still in it, some are not.
    let l = Loss {
        drop: 500,
        dup: 0,
        reorder: 500,
    };
    run(seed() + 4, commands(20_000), l, 0, 64);
}
