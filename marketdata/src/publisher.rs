//! The publisher's core: engine events in, sequenced feed messages out.
//!
//! It is a pure state machine, like the engine: no sockets, no clock, no threads. The I/O shell
//! ([`crate::server`]) reads the engine's output ring, hands each event to
//! [`Publisher::on_event`] and each end-of-command frame to [`Publisher::on_end`], and turns the
//! messages into packets. Because the messages are a function of the event stream alone, the
//! same events always give the same feed, which is what lets tests run the publisher against a
//! real engine and compare byte for byte.
//!
//! The publisher never looks inside the engine. It keeps its own mirror of every book
//! ([`Books`]), built from the events, and uses it to know which orders rest (an IOC remainder
//! that is cancelled never rested, so it is not an L3 delete), to derive the L2 and L1 views,
//! and to serve snapshots. It checks the mirror against the engine's `BookDelta` totals and
//! `BookChecked` fingerprints and counts every disagreement, so a bug in either shows up in the
//! counters instead of on a customer's screen.

use crate::book::{side_index, BookError, Books, LevelView};
use crate::feed::{
    AddOrder, BestBidOffer, Checkpoint, DeleteOrder, Directory, Message, ModifyOrder,
    OrderExecuted, PriceLevel, ReduceOrder, SnapshotBegin, SnapshotEnd, Statistics, Status,
    SYMBOL_BYTES,
};
use ferrox_protocol::{Event, InstrumentId, InstrumentStatus, OrderId, PriceTicks, QtyLots, Side};

/// Receives the publisher's messages with their feed sequence numbers, in order.
pub trait MessageSink {
    fn message(&mut self, seq: u64, msg: &Message);
}

/// Collects messages; for tests and tools (it grows).
impl MessageSink for Vec<(u64, Message)> {
    fn message(&mut self, seq: u64, msg: &Message) {
        self.push((seq, *msg));
    }
}

/// What the feed says about an instrument in its directory message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstrumentInfo {
    pub symbol: String,
    pub price_decimals: u8,
    pub qty_decimals: u8,
    pub tick_size: PriceTicks,
    pub lot_size: QtyLots,
    pub status: InstrumentStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Levels per side in the L2 view (`L` messages).
    pub depth: usize,
    /// Orders the mirror holds without allocating (it grows past this, never fails).
    pub orders_capacity: usize,
    /// Levels per side per instrument the mirror holds without allocating.
    pub levels_capacity: usize,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            depth: 10,
            orders_capacity: 1 << 20,
            levels_capacity: 256,
        }
    }
}

/// The day's statistics of one instrument, as `S` messages carry them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayStats {
    pub open: Option<PriceTicks>,
    pub high: Option<PriceTicks>,
    pub low: Option<PriceTicks>,
    pub last: Option<PriceTicks>,
    pub volume: QtyLots,
    pub trade_count: u64,
    /// Price times quantity summed, in ticks times lots.
    pub turnover: u128,
}

impl DayStats {
    pub fn on_trade(&mut self, price: PriceTicks, qty: QtyLots) {
        self.open.get_or_insert(price);
        self.high = Some(self.high.map_or(price, |h| h.max(price)));
        self.low = Some(self.low.map_or(price, |l| l.min(price)));
        self.last = Some(price);
        self.volume = QtyLots(self.volume.0.saturating_add(qty.0));
        self.trade_count += 1;
        // Prices are positive in every configured instrument; a negative one adds nothing
        // rather than wrapping the unsigned sum.
        let notional = u128::try_from(price.0).unwrap_or(0) * u128::from(qty.0);
        self.turnover = self.turnover.saturating_add(notional);
    }

    /// Volume-weighted average price in ticks, if anything traded.
    pub fn vwap(&self) -> Option<f64> {
        (self.volume.0 > 0).then(|| self.turnover as f64 / self.volume.0 as f64)
    }

    pub fn message(&self, instrument: InstrumentId, ts_ns: u64) -> Statistics {
        Statistics {
            instrument,
            ts_ns,
            open: self.open,
            high: self.high,
            low: self.low,
            last: self.last,
            volume: self.volume,
            trade_count: self.trade_count,
            turnover: self.turnover,
        }
    }

    pub fn from_message(m: &Statistics) -> DayStats {
        DayStats {
            open: m.open,
            high: m.high,
            low: m.low,
            last: m.last,
            volume: m.volume,
            trade_count: m.trade_count,
            turnover: m.turnover,
        }
    }
}

/// Counters an operator (and every test) can read. All should stay 0 except `events`,
/// `commands`, `messages` and `checkpoints`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherCounters {
    pub events: u64,
    pub commands: u64,
    pub messages: u64,
    pub checkpoints: u64,
    /// An event the mirror could not apply (an order it did not know, say).
    pub mirror_errors: u64,
    /// A `BookDelta` whose totals differ from the mirror's level at the end of the command.
    pub delta_mismatches: u64,
    /// A `BookChecked` fingerprint that differs from the mirror's.
    pub checkpoint_mismatches: u64,
}

struct Inst {
    directory: Directory,
    status: InstrumentStatus,
    stats: DayStats,
    traded: bool,
    touched: bool,
    /// Whether a change this command may have altered the side's top `depth` levels; only
    /// dirty sides are compared at the end of the command.
    dirty: [bool; 2],
    bbo: [Option<LevelView>; 2],
    /// The top `depth` levels per side as last published, best first.
    published: [Vec<LevelView>; 2],
}

pub struct Publisher {
    books: Books,
    inst: Vec<Inst>,
    touched: Vec<u32>,
    next_seq: u64,
    depth: usize,
    scratch: Vec<LevelView>,
    last_ts_ns: u64,
    counters: PublisherCounters,
    first_error: Option<String>,
}

const SIDES: [Side; 2] = [Side::Buy, Side::Sell];

impl Publisher {
    /// Instrument `i` of `instruments` is `InstrumentId(i)`, as in the engine's configuration.
    /// Symbols longer than the directory's 16 bytes are cut (the engine's are shorter).
    pub fn new(instruments: &[InstrumentInfo], config: PublisherConfig) -> Publisher {
        let depth = config.depth.clamp(1, 255);
        let inst = instruments
            .iter()
            .enumerate()
            .map(|(i, info)| {
                let mut symbol = [b' '; SYMBOL_BYTES];
                for (d, s) in symbol.iter_mut().zip(info.symbol.bytes()) {
                    *d = if s.is_ascii_graphic() { s } else { b'?' };
                }
                Inst {
                    directory: Directory {
                        instrument: InstrumentId(i as u32),
                        ts_ns: 0,
                        symbol,
                        price_decimals: info.price_decimals,
                        qty_decimals: info.qty_decimals,
                        tick_size: info.tick_size,
                        lot_size: info.lot_size,
                    },
                    status: info.status,
                    stats: DayStats::default(),
                    traded: false,
                    touched: false,
                    dirty: [false; 2],
                    bbo: [None; 2],
                    published: [Vec::with_capacity(depth), Vec::with_capacity(depth)],
                }
            })
            .collect::<Vec<_>>();
        Publisher {
            books: Books::new(
                instruments.len(),
                config.orders_capacity,
                config.levels_capacity,
            ),
            touched: Vec::with_capacity(inst.len()),
            inst,
            next_seq: 1,
            depth,
            scratch: vec![
                LevelView {
                    price: PriceTicks(0),
                    qty_total: QtyLots(0),
                    order_count: 0,
                };
                depth
            ],
            last_ts_ns: 0,
            counters: PublisherCounters::default(),
            first_error: None,
        }
    }

    /// The sequence number the next message will get (the first is 1).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn books(&self) -> &Books {
        &self.books
    }

    pub fn counters(&self) -> PublisherCounters {
        self.counters
    }

    /// The first mirror or check failure, described, if there was one.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    pub fn instruments(&self) -> usize {
        self.inst.len()
    }

    pub fn directory(&self, instrument: InstrumentId) -> Option<&Directory> {
        self.inst.get(instrument.0 as usize).map(|i| &i.directory)
    }

    pub fn status(&self, instrument: InstrumentId) -> Option<InstrumentStatus> {
        self.inst.get(instrument.0 as usize).map(|i| i.status)
    }

    pub fn stats(&self, instrument: InstrumentId) -> Option<&DayStats> {
        self.inst.get(instrument.0 as usize).map(|i| &i.stats)
    }

    /// The time of the last event seen (the sequencer's clock), for heartbeats and snapshots.
    pub fn last_ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// Puts an order that already rests in the engine into the mirror, before [`start`]: an
    /// exchange that restarts from its journal seeds the publisher from the recovered books,
    /// in time priority, so that the new feed session starts from the true state.
    ///
    /// [`start`]: Publisher::start
    pub fn seed_order(
        &mut self,
        instrument: InstrumentId,
        order_id: OrderId,
        side: Side,
        price: PriceTicks,
        qty: QtyLots,
    ) -> Result<(), BookError> {
        self.books.add(instrument, order_id, side, price, qty)
    }

    /// Sets an instrument's last trade price before [`Publisher::start`] (after a restart), so
    /// that the statistics show it.
    pub fn seed_last_trade(&mut self, instrument: InstrumentId, price: PriceTicks) {
        if let Some(i) = self.inst.get_mut(instrument.0 as usize) {
            i.stats.last = Some(price);
        }
    }

    /// Opens the session: the directory and status of every instrument, then every seeded
    /// order and the L2/L1 views, so that a subscriber that reads from message 1 needs nothing
    /// else.
    pub fn start(&mut self, ts_ns: u64, out: &mut impl MessageSink) {
        self.last_ts_ns = ts_ns;
        for i in 0..self.inst.len() {
            let instrument = InstrumentId(i as u32);
            let mut directory = self.inst[i].directory;
            directory.ts_ns = ts_ns;
            self.emit(out, Message::Directory(directory));
            let status = Status {
                instrument,
                ts_ns,
                status: self.inst[i].status,
            };
            self.emit(out, Message::Status(status));
            if self.inst[i].stats.last.is_some() {
                let stats = self.inst[i].stats.message(instrument, ts_ns);
                self.emit(out, Message::Stats(stats));
            }
            let mut adds = Vec::with_capacity(self.books.order_count(instrument) as usize);
            self.books.for_each_order(instrument, |o| {
                adds.push(Message::Add(AddOrder {
                    instrument,
                    ts_ns,
                    side: o.side,
                    order_id: o.order_id,
                    price: o.price,
                    qty: o.qty_open,
                }))
            });
            for m in adds {
                self.emit(out, m);
            }
            self.touch(instrument);
            self.inst[i].dirty = [true; 2];
        }
        self.on_end(ts_ns, out);
    }

    fn emit(&mut self, out: &mut impl MessageSink, msg: Message) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.counters.messages += 1;
        out.message(seq, &msg);
    }

    fn touch(&mut self, instrument: InstrumentId) {
        if let Some(i) = self.inst.get_mut(instrument.0 as usize) {
            if !i.touched {
                i.touched = true;
                self.touched.push(instrument.0);
            }
        }
    }

    /// Notes a change at `price` on `side`: the side's L2 window needs comparing only if the
    /// price is inside it (or the window is not full), which spares the comparison for the
    /// many changes deep in the book.
    fn touch_level(&mut self, instrument: InstrumentId, side: Side, price: PriceTicks) {
        self.touch(instrument);
        let depth = self.depth;
        if let Some(i) = self.inst.get_mut(instrument.0 as usize) {
            let s = side_index(side);
            if i.dirty[s] {
                return;
            }
            let published = &i.published[s];
            i.dirty[s] = published.len() < depth
                || published.last().is_none_or(|worst| match side {
                    Side::Buy => price >= worst.price,
                    Side::Sell => price <= worst.price,
                });
        }
    }

    fn mirror_error(&mut self, what: &str, e: BookError) {
        self.counters.mirror_errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{what}: {e}"));
        }
    }

    /// Whether the mirror holds `order_id` in `instrument`: an order that never rested (an IOC
    /// remainder, a fully filled taker) has nothing to delete from the public book.
    fn rests(&self, instrument: InstrumentId, order_id: OrderId) -> bool {
        self.books
            .order(order_id)
            .is_some_and(|o| o.instrument == instrument)
    }

    /// One event of the command with sequence number `seq`, stamped `ts_ns`.
    pub fn on_event(&mut self, ts_ns: u64, seq: u64, event: &Event, out: &mut impl MessageSink) {
        self.counters.events += 1;
        self.last_ts_ns = ts_ns;
        match *event {
            Event::Rested(r) => {
                match self
                    .books
                    .add(r.instrument, r.order_id, r.side, r.price, r.qty_open)
                {
                    Ok(()) => self.emit(
                        out,
                        Message::Add(AddOrder {
                            instrument: r.instrument,
                            ts_ns,
                            side: r.side,
                            order_id: r.order_id,
                            price: r.price,
                            qty: r.qty_open,
                        }),
                    ),
                    Err(e) => self.mirror_error("Rested", e),
                }
                self.touch_level(r.instrument, r.side, r.price);
            }
            Event::Trade(t) => {
                // The trade print goes out even if the mirror disagrees: a trade happened.
                if let Err(e) = self
                    .books
                    .execute(t.instrument, t.maker_order_id, t.price, t.qty)
                {
                    self.mirror_error("Trade", e);
                }
                self.emit(
                    out,
                    Message::Executed(OrderExecuted {
                        instrument: t.instrument,
                        ts_ns,
                        aggressor_side: t.aggressor_side,
                        trade_id: t.trade_id,
                        maker_order_id: t.maker_order_id,
                        price: t.price,
                        qty: t.qty,
                        maker_qty_open: t.maker_qty_open,
                    }),
                );
                if let Some(i) = self.inst.get_mut(t.instrument.0 as usize) {
                    i.stats.on_trade(t.price, t.qty);
                    i.traded = true;
                }
                let maker_side = match t.aggressor_side {
                    Side::Buy => Side::Sell,
                    Side::Sell => Side::Buy,
                };
                self.touch_level(t.instrument, maker_side, t.price);
            }
            Event::Cancelled(c) => self.delete(ts_ns, c.instrument, c.order_id, out),
            Event::Expired(x) => self.delete(ts_ns, x.instrument, x.order_id, out),
            Event::Restated(r) => {
                if self.rests(r.instrument, r.order_id) {
                    match self.books.reduce(r.instrument, r.order_id, r.qty_reduced) {
                        Ok(_) => self.emit(
                            out,
                            Message::Reduce(ReduceOrder {
                                instrument: r.instrument,
                                ts_ns,
                                side: r.side,
                                order_id: r.order_id,
                                qty_reduced: r.qty_reduced,
                                qty_open: r.qty_open,
                            }),
                        ),
                        Err(e) => self.mirror_error("Restated", e),
                    }
                    self.touch_level(r.instrument, r.side, r.price);
                }
            }
            Event::Replaced(r) => {
                if !self.rests(r.instrument, r.order_id) {
                    return;
                }
                if r.priority_kept {
                    match self
                        .books
                        .modify(r.instrument, r.order_id, r.price, r.qty_open, true)
                    {
                        Ok(()) => self.emit(
                            out,
                            Message::Modify(ModifyOrder {
                                instrument: r.instrument,
                                ts_ns,
                                side: r.side,
                                order_id: r.order_id,
                                price: r.price,
                                qty_open: r.qty_open,
                            }),
                        ),
                        Err(e) => self.mirror_error("Replaced", e),
                    }
                    self.touch_level(r.instrument, r.side, r.price);
                } else {
                    // It leaves its place now; if anything is left after it trades at the new
                    // price, `Rested` adds it back at the end of its new level.
                    self.delete(ts_ns, r.instrument, r.order_id, out);
                }
            }
            Event::BookDelta(d) => {
                // The engine emits a level's new totals right after changing it, and the mirror
                // has applied the same change by then: they must agree at this point.
                let mirror = self.books.level(d.instrument, d.side, d.price);
                let agrees = match mirror {
                    None => d.order_count == 0,
                    Some(l) => l.order_count == d.order_count && l.qty_total == d.qty_total,
                };
                if !agrees {
                    self.counters.delta_mismatches += 1;
                    if self.first_error.is_none() {
                        self.first_error =
                            Some(format!("command {seq}: BookDelta {d:?}, mirror {mirror:?}"));
                    }
                }
            }
            Event::StatusChanged(s) => {
                if let Some(i) = self.inst.get_mut(s.instrument.0 as usize) {
                    i.status = s.status;
                    self.emit(
                        out,
                        Message::Status(Status {
                            instrument: s.instrument,
                            ts_ns,
                            status: s.status,
                        }),
                    );
                }
            }
            Event::BookChecked(c) => {
                self.counters.checkpoints += 1;
                if c.instrument.0 as usize >= self.inst.len() {
                    return;
                }
                let mine = self.books.hash(c.instrument);
                if mine != c.book_hash {
                    self.counters.checkpoint_mismatches += 1;
                    if self.first_error.is_none() {
                        self.first_error = Some(format!(
                            "command {seq}: instrument {} fingerprint {:016x}, mirror {:016x}",
                            c.instrument, c.book_hash, mine
                        ));
                    }
                }
                self.emit(
                    out,
                    Message::Checkpoint(Checkpoint {
                        instrument: c.instrument,
                        ts_ns,
                        engine_seq: seq,
                        book_hash: c.book_hash,
                        orders: c.orders,
                        bid_levels: c.bid_levels,
                        ask_levels: c.ask_levels,
                    }),
                );
            }
            Event::Accepted(_) | Event::Rejected(_) | Event::MassCancelled(_) => {}
        }
    }

    fn delete(
        &mut self,
        ts_ns: u64,
        instrument: InstrumentId,
        order_id: OrderId,
        out: &mut impl MessageSink,
    ) {
        if !self.rests(instrument, order_id) {
            return;
        }
        match self.books.delete(instrument, order_id) {
            Ok(o) => {
                self.emit(
                    out,
                    Message::Delete(DeleteOrder {
                        instrument,
                        ts_ns,
                        side: o.side,
                        order_id,
                        qty: o.qty_open,
                    }),
                );
                self.touch_level(instrument, o.side, o.price);
            }
            Err(e) => {
                self.mirror_error("delete", e);
                self.touch(instrument);
            }
        }
    }

    /// The end of a command: statistics, L2 and L1 updates for every instrument it touched.
    pub fn on_end(&mut self, ts_ns: u64, out: &mut impl MessageSink) {
        self.counters.commands += 1;
        self.last_ts_ns = ts_ns;
        for t in 0..self.touched.len() {
            let i = self.touched[t] as usize;
            let instrument = InstrumentId(i as u32);
            self.inst[i].touched = false;
            if self.inst[i].traded {
                self.inst[i].traded = false;
                let stats = self.inst[i].stats.message(instrument, ts_ns);
                self.emit(out, Message::Stats(stats));
            }
            let mut bbo_changed = false;
            for side in SIDES {
                let s = side_index(side);
                if !std::mem::take(&mut self.inst[i].dirty[s]) {
                    continue;
                }
                let mut scratch = std::mem::take(&mut self.scratch);
                let n = self
                    .books
                    .depth(instrument, side, &mut scratch[..self.depth]);
                let new = &scratch[..n];
                let mut published = std::mem::take(&mut self.inst[i].published[s]);
                // Both lists are best first: one merge finds the levels that left the window,
                // the new ones and the changed ones.
                let better = |a: PriceTicks, b: PriceTicks| match side {
                    Side::Buy => a > b,
                    Side::Sell => a < b,
                };
                let (mut a, mut b) = (0, 0);
                while a < published.len() || b < new.len() {
                    let left = match (published.get(a), new.get(b)) {
                        (Some(o), Some(l)) if o.price == l.price => {
                            a += 1;
                            b += 1;
                            if o == l {
                                continue;
                            }
                            None
                        }
                        (Some(o), Some(l)) if better(o.price, l.price) => {
                            a += 1;
                            Some(o.price)
                        }
                        (Some(o), None) => {
                            a += 1;
                            Some(o.price)
                        }
                        _ => {
                            b += 1;
                            None
                        }
                    };
                    let msg = match left {
                        Some(price) => PriceLevel {
                            instrument,
                            ts_ns,
                            side,
                            price,
                            qty_total: QtyLots(0),
                            order_count: 0,
                            position: 0,
                        },
                        None => {
                            let l = new[b - 1];
                            PriceLevel {
                                instrument,
                                ts_ns,
                                side,
                                price: l.price,
                                qty_total: l.qty_total,
                                order_count: l.order_count,
                                position: b as u8,
                            }
                        }
                    };
                    self.emit(out, Message::Level(msg));
                }
                let best = new.first().copied();
                if self.inst[i].bbo[s] != best {
                    self.inst[i].bbo[s] = best;
                    bbo_changed = true;
                }
                published.clear();
                published.extend_from_slice(new);
                self.inst[i].published[s] = published;
                self.scratch = scratch;
            }
            if bbo_changed {
                let [bid, ask] = self.inst[i].bbo;
                self.emit(
                    out,
                    Message::Bbo(BestBidOffer {
                        instrument,
                        ts_ns,
                        bid_price: bid.map(|l| l.price),
                        bid_qty: bid.map_or(QtyLots(0), |l| l.qty_total),
                        ask_price: ask.map(|l| l.price),
                        ask_qty: ask.map_or(QtyLots(0), |l| l.qty_total),
                        bid_orders: bid.map_or(0, |l| l.order_count),
                        ask_orders: ask.map_or(0, |l| l.order_count),
                    }),
                );
            }
        }
        self.touched.clear();
    }

    /// One instrument's snapshot as of the last message published: `G`, `R`, `H`, `S`, an `A`
    /// per order in time priority, `Z`. Recovery calls this between commands.
    pub fn snapshot(&self, instrument: InstrumentId, mut f: impl FnMut(&Message)) {
        let Some(inst) = self.inst.get(instrument.0 as usize) else {
            return;
        };
        let ts_ns = self.last_ts_ns;
        let as_of_seq = self.next_seq - 1;
        f(&Message::SnapshotBegin(SnapshotBegin {
            instrument,
            ts_ns,
            as_of_seq,
            orders: self.books.order_count(instrument),
        }));
        let mut directory = inst.directory;
        directory.ts_ns = ts_ns;
        f(&Message::Directory(directory));
        f(&Message::Status(Status {
            instrument,
            ts_ns,
            status: inst.status,
        }));
        f(&Message::Stats(inst.stats.message(instrument, ts_ns)));
        self.books.for_each_order(instrument, |o| {
            f(&Message::Add(AddOrder {
                instrument,
                ts_ns,
                side: o.side,
                order_id: o.order_id,
                price: o.price,
                qty: o.qty_open,
            }))
        });
        f(&Message::SnapshotEnd(SnapshotEnd {
            instrument,
            ts_ns,
            as_of_seq,
            book_hash: self.books.hash(instrument),
        }));
    }
}
