//! The market-data publisher's and subscriber's pure cost per event, on a realistic stream.
//!
//! A real [`Engine`] runs a seeded workload once (below, `record`): one instrument with about
//! 1,000 resting orders over some 750 price levels, and exchange-core's mix of 9% new passive
//! orders, 3% aggressive IOC orders, 6% cancels and 82% moves. Every cancel and move targets
//! an order that is live at that point, because the generator folds the engine's own events
//! into its list of live orders. The events are recorded as output-ring frames would carry
//! them: each command's events, then its END.
//!
//! Benches (no sockets anywhere):
//!
//! - `publisher/per_event`: one engine event (END frames included as they come) through
//!   [`Publisher::on_event`] / [`Publisher::on_end`] into a sink that packs the messages into
//!   packets with [`PacketBuilder`] and keeps them in a [`RetransmitStore`], as the server's
//!   sink does. A full packet is "sent" by handing its bytes to `black_box`. Packets are sent
//!   only when full, which is how the publisher behaves when it cannot keep up (the ring is
//!   never empty), so this is the cost at saturation.
//! - `publisher/per_command`: the same, counted per command (all its events and its END).
//! - `subscriber/per_message`: [`Subscriber::on_packet`] over the packets the publisher made,
//!   per message (a packet is the unit of work; the time of the packets taken is divided by
//!   their messages).
//!
//! The publisher and subscriber are rebuilt when the recorded stream runs out, outside the
//! timed regions, so every timed event is one the mirror expects. The stream's shape (events
//! per command, messages per event, messages per packet) is printed first, so that the
//! per-event and per-command figures can be converted into each other.
//!
//! Run: `cargo bench -p ferrox-marketdata --bench publisher -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ferrox_engine::{Engine, EngineConfig, InstrumentSpec, Limits};
use ferrox_marketdata::feed::{Message, PacketBuilder, SessionId};
use ferrox_marketdata::publisher::{InstrumentInfo, MessageSink, Publisher, PublisherConfig};
use ferrox_marketdata::recovery::RetransmitStore;
use ferrox_marketdata::subscriber::{Subscriber, SubscriberConfig};
use ferrox_protocol::{
    AccountId, Cancel, ClientOrderId, Command, Event, InstrumentId, NewOrder, OrderId, PriceTicks,
    QtyLots, Replace, SequencedCommand, Side, TimeInForce, VecSink,
};

// ----- the workload -------------------------------------------------------------------------

const MID: i64 = 100_000;
/// Passive prices lie 1..=this many ticks from the mid, so passive orders never cross.
const RANGE: u64 = 820;
const TARGET_ORDERS: usize = 1_000;
const QTY_MAX: u64 = 100;
const ACCOUNTS: u64 = 1_000;
const PREFILL: usize = TARGET_ORDERS;
const MEASURED: usize = 200_000;
const PACKET_BYTES: usize = 1_400;
/// The exchange's default `marketdata.retransmit_messages`.
const RETRANSMIT: usize = 262_144;
/// Sequencer timestamps: an arbitrary Unix time, one microsecond per command.
const TS0: u64 = 1_800_000_000_000_000_000;

/// SplitMix64, so that the stream is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

#[derive(Clone, Copy)]
struct Live {
    id: u64,
    account: u32,
    side: Side,
    price: i64,
    /// Filled plus open: what a replace asks for to keep the open quantity.
    total: u64,
}

/// The orders that rest right now, as the engine's events say, with O(1) random choice.
#[derive(Default)]
struct LiveOrders {
    list: Vec<Live>,
    at: HashMap<u64, usize>,
}

impl LiveOrders {
    fn upsert(&mut self, o: Live) {
        match self.at.get(&o.id) {
            Some(&k) => self.list[k] = o,
            None => {
                self.at.insert(o.id, self.list.len());
                self.list.push(o);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(k) = self.at.remove(&id) {
            self.list.swap_remove(k);
            if let Some(moved) = self.list.get(k) {
                self.at.insert(moved.id, k);
            }
        }
    }

    fn get(&self, id: u64) -> Option<Live> {
        self.at.get(&id).map(|&k| self.list[k])
    }

    /// Folds one event in; `new_qty` is the quantity of the new order being applied, if any.
    fn on_event(&mut self, event: &Event, new_qty: u64) {
        match event {
            Event::Rested(r) => {
                // A moved order rests again under its id and keeps its total; a new one's
                // total is what it asked for (passive orders never trade on entry).
                let total = self.get(r.order_id.0).map_or(new_qty, |o| o.total);
                self.upsert(Live {
                    id: r.order_id.0,
                    account: r.account.0,
                    side: r.side,
                    price: r.price.0,
                    total,
                });
            }
            Event::Replaced(r) => {
                if let Some(mut o) = self.get(r.order_id.0) {
                    o.total = r.qty_filled.0 + r.qty_open.0;
                    o.price = r.price.0;
                    self.upsert(o);
                }
            }
            Event::Restated(r) => {
                if let Some(mut o) = self.get(r.order_id.0) {
                    o.total -= r.qty_reduced.0;
                    self.upsert(o);
                }
            }
            Event::Trade(t) if t.maker_qty_open.0 == 0 => self.remove(t.maker_order_id.0),
            Event::Cancelled(c) => self.remove(c.order_id.0),
            Event::Expired(x) => self.remove(x.order_id.0),
            _ => {}
        }
    }
}

/// One output-ring frame: an event of command `seq`, or its END.
#[derive(Clone, Copy)]
struct Frame {
    seq: u64,
    ts_ns: u64,
    event: Option<Event>,
}

struct Recording {
    infos: Vec<InstrumentInfo>,
    prefill: Vec<Frame>,
    measured: Vec<Frame>,
    commands: u64,
    events: u64,
}

fn engine_config() -> EngineConfig {
    let mut spec = InstrumentSpec::simple("BENCH", MID);
    spec.levels_per_side_max = 1_024;
    EngineConfig {
        limits: Limits {
            orders_max: 4_096,
            levels_max: 4_096,
            gtd_orders_max: 1,
        },
        instruments: vec![spec],
    }
}

fn passive(rng: &mut Rng, side: Side) -> i64 {
    let offset = 1 + rng.below(RANGE) as i64;
    match side {
        Side::Buy => MID - offset,
        Side::Sell => MID + offset,
    }
}

fn side(rng: &mut Rng) -> Side {
    if rng.next() & 1 == 0 {
        Side::Buy
    } else {
        Side::Sell
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    New,
    Ioc,
    Cancel,
    Move,
}

/// Runs the engine on the seeded workload and records its output frames.
fn record(seed: u64) -> Recording {
    let config = engine_config();
    let infos = config
        .instruments
        .iter()
        .map(|s| InstrumentInfo {
            symbol: s.symbol.clone(),
            price_decimals: s.price_decimals as u8,
            qty_decimals: s.qty_decimals as u8,
            tick_size: s.tick_size,
            lot_size: s.lot_size,
            status: s.status,
        })
        .collect();
    let mut engine = Engine::new(config).expect("the bench configuration is valid");
    let mut rng = Rng(seed);
    let mut live = LiveOrders::default();
    let mut sink = VecSink::default();
    let mut seq = 0u64;
    let mut prefill = Vec::new();
    let mut measured = Vec::new();
    let instrument = InstrumentId(0);
    for k in 0..PREFILL + MEASURED {
        seq += 1;
        let cid = ClientOrderId(seq);
        let account = AccountId(1 + rng.below(ACCOUNTS) as u32);
        let qty = 1 + rng.below(QTY_MAX);
        // 90 / 30 / 60 / 820 per mille, with the book held near its target size the way the
        // engine benches do it: a cancel becomes a new order when the book is short, and the
        // other way round.
        let mut op = if k < PREFILL {
            Op::New
        } else {
            match rng.below(1_000) {
                0..90 => Op::New,
                90..120 => Op::Ioc,
                120..180 => Op::Cancel,
                _ => Op::Move,
            }
        };
        if op == Op::Cancel && live.list.len() + 20 < TARGET_ORDERS {
            op = Op::New;
        } else if op == Op::New && live.list.len() > TARGET_ORDERS + 20 {
            op = Op::Cancel;
        }
        if live.list.is_empty() && matches!(op, Op::Cancel | Op::Move) {
            op = Op::New;
        }
        let command = match op {
            Op::New => {
                let s = side(&mut rng);
                Command::NewOrder(NewOrder::limit(
                    instrument,
                    account,
                    cid,
                    s,
                    PriceTicks(passive(&mut rng, s)),
                    QtyLots(qty),
                ))
            }
            Op::Ioc => {
                let s = side(&mut rng);
                let through = match s {
                    Side::Buy => MID + RANGE as i64,
                    Side::Sell => MID - RANGE as i64,
                };
                let mut o = NewOrder::limit(
                    instrument,
                    account,
                    cid,
                    s,
                    PriceTicks(through),
                    QtyLots(qty),
                );
                o.tif = TimeInForce::Ioc;
                Command::NewOrder(o)
            }
            Op::Cancel => {
                let o = live.list[rng.below(live.list.len() as u64) as usize];
                Command::Cancel(Cancel {
                    order_id: OrderId(o.id),
                    account: AccountId(o.account),
                    client_order_id: cid,
                })
            }
            Op::Move => {
                let o = live.list[rng.below(live.list.len() as u64) as usize];
                let mut price = o.price;
                while price == o.price {
                    price = passive(&mut rng, o.side);
                }
                Command::Replace(Replace {
                    order_id: OrderId(o.id),
                    account: AccountId(o.account),
                    client_order_id: cid,
                    price: PriceTicks(price),
                    qty: QtyLots(o.total),
                })
            }
        };
        let new_qty = match command {
            Command::NewOrder(o) => o.qty.0,
            _ => 0,
        };
        let ts_ns = TS0 + seq * 1_000;
        engine.apply(
            &SequencedCommand {
                seq,
                ts_ns,
                command,
            },
            &mut sink,
        );
        let out = if k < PREFILL {
            &mut prefill
        } else {
            &mut measured
        };
        for event in sink.events.drain(..) {
            assert!(
                !matches!(event, Event::Rejected(_)),
                "the workload targets live orders only: {event:?}"
            );
            live.on_event(&event, new_qty);
            out.push(Frame {
                seq,
                ts_ns,
                event: Some(event),
            });
        }
        out.push(Frame {
            seq,
            ts_ns,
            event: None,
        });
    }
    let events = measured.iter().filter(|f| f.event.is_some()).count() as u64;
    Recording {
        infos,
        prefill,
        measured,
        commands: MEASURED as u64,
        events,
    }
}

// ----- the publisher's sink -----------------------------------------------------------------

/// Packs messages into packets and keeps them for retransmission, as the server's sink does;
/// a full packet is handed to `black_box` (or kept, to feed the subscriber bench).
struct PackSink {
    packet: PacketBuilder,
    store: RetransmitStore,
    packets: u64,
    kept: Option<Vec<Vec<u8>>>,
}

impl PackSink {
    fn new(kept: bool) -> PackSink {
        PackSink {
            packet: PacketBuilder::new(session(), PACKET_BYTES),
            store: RetransmitStore::new(RETRANSMIT),
            packets: 0,
            kept: kept.then(Vec::new),
        }
    }

    fn send(&mut self) {
        if self.packet.is_empty() {
            return;
        }
        self.packets += 1;
        match &mut self.kept {
            Some(kept) => kept.push(self.packet.bytes().to_vec()),
            None => {
                black_box(self.packet.bytes());
            }
        }
        let next = self.packet.next_seq();
        self.packet.start(next);
    }
}

impl MessageSink for PackSink {
    #[inline]
    fn message(&mut self, seq: u64, msg: &Message) {
        self.store.push(seq, msg);
        if self.packet.is_empty() {
            self.packet.start(seq);
        }
        if !self.packet.push(msg) {
            self.send();
            self.packet.start(seq);
            let pushed = self.packet.push(msg);
            debug_assert!(pushed, "an empty packet holds any one message");
        }
    }
}

fn session() -> SessionId {
    SessionId::new("BENCH").expect("a valid session id")
}

#[inline]
fn feed(publisher: &mut Publisher, frame: &Frame, sink: &mut PackSink) {
    match &frame.event {
        Some(e) => publisher.on_event(frame.ts_ns, frame.seq, e, sink),
        None => publisher.on_end(frame.ts_ns, sink),
    }
}

/// A publisher that has opened its session and taken the pre-fill, and where it is in the
/// measured stream.
struct PubRun {
    publisher: Publisher,
    sink: PackSink,
    next: usize,
}

impl PubRun {
    fn new(rec: &Recording, keep_packets: bool) -> PubRun {
        let mut publisher = Publisher::new(
            &rec.infos,
            PublisherConfig {
                depth: 10,
                orders_capacity: 4_096,
                levels_capacity: 1_024,
            },
        );
        let mut sink = PackSink::new(keep_packets);
        publisher.start(TS0, &mut sink);
        for f in &rec.prefill {
            feed(&mut publisher, f, &mut sink);
        }
        sink.send();
        PubRun {
            publisher,
            sink,
            next: 0,
        }
    }
}

/// Runs the publisher over `iters` units of the measured stream, where a unit is an event
/// (`per_command` false) or a command; only the replay is timed, never a rebuild.
fn time_publisher(
    rec: &Recording,
    run: &mut Option<PubRun>,
    iters: u64,
    per_command: bool,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        if run.as_ref().is_none_or(|r| r.next >= rec.measured.len()) {
            *run = Some(PubRun::new(rec, false));
        }
        let Some(r) = run.as_mut() else {
            unreachable!("Invariant: a run was just made");
        };
        let frames = &rec.measured[r.next..];
        let t0 = Instant::now();
        let mut k = 0;
        while k < frames.len() && done < iters {
            let f = &frames[k];
            feed(&mut r.publisher, f, &mut r.sink);
            if f.event.is_none() == per_command {
                done += 1;
            }
            k += 1;
        }
        total += t0.elapsed();
        r.next += k;
    }
    total
}

// ----- the subscriber -----------------------------------------------------------------------

struct Packets {
    /// The session's opening and the pre-fill: applied before anything is timed.
    setup: Vec<Vec<u8>>,
    measured: Vec<Vec<u8>>,
    messages: u64,
}

fn packets(rec: &Recording) -> Packets {
    let mut run = PubRun::new(rec, true);
    let setup = run.sink.kept.replace(Vec::new()).unwrap_or_default();
    for f in &rec.measured {
        feed(&mut run.publisher, f, &mut run.sink);
    }
    run.sink.send();
    let measured = run.sink.kept.take().unwrap_or_default();
    let messages = measured.iter().map(|p| count_of(p)).sum();
    Packets {
        setup,
        measured,
        messages,
    }
}

fn count_of(packet: &[u8]) -> u64 {
    u64::from(u16::from_le_bytes([packet[22], packet[23]]))
}

struct SubRun {
    sub: Subscriber,
    next: usize,
}

impl SubRun {
    fn new(p: &Packets) -> SubRun {
        let mut sub = Subscriber::new(SubscriberConfig {
            instruments_max: 1,
            orders_capacity: 4_096,
            levels_capacity: 1_024,
            ..SubscriberConfig::default()
        });
        for packet in &p.setup {
            sub.on_packet(packet)
                .expect("the publisher's packets parse");
        }
        SubRun { sub, next: 0 }
    }
}

/// Applies whole packets until at least `iters` messages were taken, and scales the time to
/// exactly `iters` messages.
fn time_subscriber(p: &Packets, run: &mut Option<SubRun>, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        if run.as_ref().is_none_or(|r| r.next >= p.measured.len()) {
            *run = Some(SubRun::new(p));
        }
        let Some(r) = run.as_mut() else {
            unreachable!("Invariant: a run was just made");
        };
        let t0 = Instant::now();
        while r.next < p.measured.len() && done < iters {
            let packet = &p.measured[r.next];
            let _ = black_box(r.sub.on_packet(packet));
            done += count_of(packet);
            r.next += 1;
        }
        total += t0.elapsed();
    }
    total.mul_f64(iters as f64 / done as f64)
}

// ----- criterion ----------------------------------------------------------------------------

fn benches(c: &mut Criterion) {
    let rec = record(1);
    let p = packets(&rec);
    let check = PubRun::new(&rec, false);
    let mut full = check;
    for f in &rec.measured {
        feed(&mut full.publisher, f, &mut full.sink);
    }
    let counters = full.publisher.counters();
    assert_eq!(
        counters.mirror_errors + counters.delta_mismatches + counters.checkpoint_mismatches,
        0,
        "the publisher's self-checks pass on the recorded stream: {:?}",
        full.publisher.first_error()
    );
    println!(
        "recorded stream: {} commands, {} engine events ({:.2} per command), {} feed messages \
         ({:.2} per event, {:.2} per command), {} full packets ({:.1} messages per packet)",
        rec.commands,
        rec.events,
        rec.events as f64 / rec.commands as f64,
        p.messages,
        p.messages as f64 / rec.events as f64,
        p.messages as f64 / rec.commands as f64,
        p.measured.len(),
        p.messages as f64 / p.measured.len() as f64,
    );

    let mut g = c.benchmark_group("publisher");
    let mut run = None;
    g.bench_function("per_event", |b| {
        b.iter_custom(|iters| time_publisher(&rec, &mut run, iters, false))
    });
    let mut run = None;
    g.bench_function("per_command", |b| {
        b.iter_custom(|iters| time_publisher(&rec, &mut run, iters, true))
    });
    g.finish();

    let mut g = c.benchmark_group("subscriber");
    let mut run = None;
    g.bench_function("per_message", |b| {
        b.iter_custom(|iters| time_subscriber(&p, &mut run, iters))
    });
    g.finish();
}

criterion_group!(publisher, benches);
criterion_main!(publisher);
