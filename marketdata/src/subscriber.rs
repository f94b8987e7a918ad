//! The subscriber's core: packets in, books out, and the recovery requests it needs.
//!
//! Like the publisher it is a pure state machine; [`crate::client`] gives it sockets. It keeps
//! the feed's sequence: messages are applied strictly in order, duplicates are dropped, and
//! anything that arrives ahead of a gap waits (bounded) until the gap is filled by a retransmit
//! or replaced by a snapshot. See FEED.md, "Recovering".
//!
//! A subscriber can follow one instrument (`filter`) or all. It rebuilds the L3 book of each
//! with the same [`Books`] the publisher uses, derives L1 and L2 from it, and also keeps the L2
//! view the `L` messages describe, so that `--check` can hold both against the engine's
//! checkpoints.

use std::collections::{BTreeMap, VecDeque};

use crate::book::{side_index, BookError, Books, LevelView};
use crate::feed::{
    decode_reply, parse_packet, BestBidOffer, Directory, FeedError, Message, OrderExecuted,
    PacketKind, RejectReason, Reply, Request, SessionId,
};
use crate::publisher::DayStats;
use crate::recovery::RETRANSMIT_COUNT_MAX;
use ferrox_protocol::{InstrumentId, InstrumentStatus, QtyLots, Side};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriberConfig {
    /// Instruments with ids below this are followed; the feed's directory says how many exist.
    pub instruments_max: usize,
    /// Follow only this instrument (its messages are applied, the rest only sequenced).
    pub filter: Option<InstrumentId>,
    pub orders_capacity: usize,
    pub levels_capacity: usize,
    /// The publisher's L2 depth, so that the `L` view can be rebuilt after a snapshot.
    pub depth: usize,
    /// Messages held while a gap is open; past this the newest are dropped and fetched again.
    pub pending_max: usize,
    /// Trades kept for display.
    pub trades_kept: usize,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            instruments_max: 4096,
            filter: None,
            orders_capacity: 1 << 16,
            levels_capacity: 64,
            depth: 10,
            pending_max: 1 << 20,
            trades_kept: 64,
        }
    }
}

/// What happened so far; every field is a count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriberCounters {
    pub packets: u64,
    pub heartbeats: u64,
    /// Live messages applied in sequence.
    pub applied: u64,
    /// Messages that arrived again after they had been applied (or were covered by a snapshot).
    pub duplicates: u64,
    /// Times a sequence number above the expected one was seen.
    pub gaps: u64,
    /// Messages that arrived by retransmission and were applied.
    pub retransmitted: u64,
    pub retransmit_requests: u64,
    pub snapshots: u64,
    /// Messages dropped because the pending buffer was full (they are fetched again).
    pub pending_overflows: u64,
    pub checkpoints_ok: u64,
    pub checkpoints_bad: u64,
    /// Snapshots whose closing fingerprint did not match the book they built.
    pub snapshots_bad: u64,
    /// Messages the book could not apply (an unknown order, say).
    pub apply_errors: u64,
    /// `L` or `Q` views that disagreed with the L3 book at a checkpoint.
    pub view_mismatches: u64,
    /// New sessions seen after the first (exchange restarts).
    pub session_changes: u64,
    pub rejects: u64,
}

/// The per-instrument state besides the L3 book.
#[derive(Clone, Debug, Default)]
pub struct InstrumentView {
    pub directory: Option<Directory>,
    pub status: Option<InstrumentStatus>,
    pub stats: DayStats,
    pub bbo: Option<BestBidOffer>,
    /// The top levels per side as the `L` messages describe them, best first.
    pub levels: [Vec<LevelView>; 2],
}

/// What a reply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// A packet of the reply was taken; more follow.
    Continue,
    /// The request is complete.
    Done,
    /// The request was refused (the subscriber already knows what to ask next).
    Refused(RejectReason),
}

/// Why a packet or reply was refused. Nothing is changed by a refused input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscriberError {
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error("a snapshot packet (seq 0) arrived on the live feed")]
    SnapshotOnFeed,
    #[error("a reply names session {found}, the feed's is {expected}")]
    WrongSession {
        expected: SessionId,
        found: SessionId,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InFlight {
    Retransmit,
    Snapshot { as_of_seq: Option<u64> },
}

pub struct Subscriber {
    cfg: SubscriberConfig,
    session: Option<SessionId>,
    /// The next sequence number to apply; 0 while the subscriber has no position yet (it joined
    /// late and waits for a snapshot).
    next_seq: u64,
    /// The highest sequence number known to exist (from messages or heartbeats).
    seen_to: u64,
    ended: bool,
    books: Books,
    inst: Vec<InstrumentView>,
    pending: BTreeMap<u64, Message>,
    in_flight: Option<InFlight>,
    snapshot_needed: bool,
    trades: VecDeque<OrderExecuted>,
    counters: SubscriberCounters,
    first_problem: Option<String>,
    scratch: Vec<LevelView>,
}

impl Subscriber {
    pub fn new(cfg: SubscriberConfig) -> Subscriber {
        let depth = cfg.depth.max(1);
        Subscriber {
            books: Books::new(
                cfg.instruments_max,
                cfg.orders_capacity,
                cfg.levels_capacity,
            ),
            inst: vec![InstrumentView::default(); cfg.instruments_max],
            cfg,
            session: None,
            next_seq: 0,
            seen_to: 0,
            ended: false,
            pending: BTreeMap::new(),
            in_flight: None,
            snapshot_needed: false,
            trades: VecDeque::with_capacity(cfg.trades_kept),
            counters: SubscriberCounters::default(),
            first_problem: None,
            scratch: vec![
                LevelView {
                    price: ferrox_protocol::PriceTicks(0),
                    qty_total: QtyLots(0),
                    order_count: 0,
                };
                depth
            ],
        }
    }

    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// The next sequence number to apply (0: no position yet).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn books(&self) -> &Books {
        &self.books
    }

    pub fn instrument(&self, instrument: InstrumentId) -> Option<&InstrumentView> {
        self.inst.get(instrument.0 as usize)
    }

    /// Finds an instrument by its directory symbol.
    pub fn find_symbol(&self, symbol: &str) -> Option<InstrumentId> {
        self.inst.iter().enumerate().find_map(|(i, v)| {
            v.directory
                .filter(|d| d.symbol_str() == symbol)
                .map(|_| InstrumentId(i as u32))
        })
    }

    /// The last trades, oldest first.
    pub fn trades(&self) -> &VecDeque<OrderExecuted> {
        &self.trades
    }

    pub fn counters(&self) -> SubscriberCounters {
        self.counters
    }

    /// The first divergence or error, described.
    pub fn first_problem(&self) -> Option<&str> {
        self.first_problem.as_deref()
    }

    /// True when every message known to exist has been applied and nothing is being recovered.
    pub fn is_caught_up(&self) -> bool {
        self.next_seq > 0
            && self.in_flight.is_none()
            && !self.snapshot_needed
            && self.pending.is_empty()
            && self.seen_to < self.next_seq
    }

    /// True once the publisher said the session is over.
    pub fn session_ended(&self) -> bool {
        self.ended
    }

    /// Messages waiting for a gap to be filled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn problem(&mut self, text: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(text());
        }
    }

    fn follows(&self, instrument: InstrumentId) -> bool {
        (instrument.0 as usize) < self.inst.len() && self.cfg.filter.is_none_or(|f| f == instrument)
    }

    fn reset(&mut self) {
        for i in 0..self.inst.len() {
            self.books.clear(InstrumentId(i as u32));
            self.inst[i] = InstrumentView::default();
        }
        self.pending.clear();
        self.trades.clear();
        self.next_seq = 0;
        self.seen_to = 0;
        self.ended = false;
        self.in_flight = None;
        self.snapshot_needed = false;
    }

    /// Takes one UDP packet. A packet that does not parse is refused whole (and counted by the
    /// caller); it changes nothing.
    pub fn on_packet(&mut self, bytes: &[u8]) -> Result<(), SubscriberError> {
        let packet = parse_packet(bytes)?;
        if packet.seq == 0 && packet.kind == PacketKind::Messages {
            // Snapshot packets belong to the recovery service, never to the live feed.
            return Err(SubscriberError::SnapshotOnFeed);
        }
        self.counters.packets += 1;
        if self.session != Some(packet.session) {
            if self.session.is_some() {
                self.counters.session_changes += 1;
            }
            self.reset();
            self.session = Some(packet.session);
        }
        match packet.kind {
            PacketKind::Heartbeat => {
                self.counters.heartbeats += 1;
                self.saw(packet.seq.saturating_sub(1));
            }
            PacketKind::EndOfSession => {
                self.saw(packet.seq.saturating_sub(1));
                self.ended = true;
            }
            PacketKind::Messages => {
                for (seq, msg) in packet.messages() {
                    self.offer(seq, msg, false);
                }
            }
        }
        Ok(())
    }

    fn saw(&mut self, seq: u64) {
        if seq > self.seen_to {
            if self.next_seq > 0 && seq >= self.next_seq && self.seen_to < self.next_seq {
                self.counters.gaps += 1;
            }
            self.seen_to = seq;
        }
    }

    fn offer(&mut self, seq: u64, msg: Message, retransmitted: bool) {
        if self.next_seq == 0 && seq == 1 && self.in_flight.is_none() {
            // Joined at the very start of the session: nothing to recover.
            self.next_seq = 1;
        }
        if self.next_seq > 0 && seq < self.next_seq {
            self.counters.duplicates += 1;
            return;
        }
        if self.next_seq > 0 && seq == self.next_seq {
            self.apply(seq, &msg);
            if retransmitted {
                self.counters.retransmitted += 1;
            }
            self.next_seq += 1;
            self.seen_to = self.seen_to.max(seq);
            self.drain();
            return;
        }
        self.saw(seq);
        if self.pending.contains_key(&seq) {
            self.counters.duplicates += 1;
        } else if self.pending.len() < self.cfg.pending_max {
            self.pending.insert(seq, msg);
        } else {
            self.counters.pending_overflows += 1;
        }
    }

    fn drain(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            let seq = *entry.key();
            if seq < self.next_seq {
                entry.remove();
                self.counters.duplicates += 1;
            } else if seq == self.next_seq {
                let msg = entry.remove();
                self.apply(seq, &msg);
                self.next_seq += 1;
            } else {
                break;
            }
        }
    }

    /// The recovery request to send now, if one is needed and none is outstanding. The caller
    /// sends it and feeds every reply frame to [`Subscriber::on_reply`].
    pub fn poll_request(&mut self) -> Option<Request> {
        if self.in_flight.is_some() {
            return None;
        }
        let session = self.session?;
        if self.next_seq == 0 || self.snapshot_needed {
            self.in_flight = Some(InFlight::Snapshot { as_of_seq: None });
            self.counters.snapshots += 1;
            return Some(Request::Snapshot {
                session,
                instrument: self.cfg.filter,
            });
        }
        let gap_end = match self.pending.keys().next() {
            Some(&first) => first,
            None if self.seen_to >= self.next_seq => self.seen_to + 1,
            None => return None,
        };
        let count = (gap_end - self.next_seq).min(u64::from(RETRANSMIT_COUNT_MAX)) as u32;
        self.in_flight = Some(InFlight::Retransmit);
        self.counters.retransmit_requests += 1;
        Some(Request::Retransmit {
            session,
            from_seq: self.next_seq,
            count,
        })
    }

    /// Forgets the outstanding request (its connection broke); it will be asked again.
    pub fn abandon_request(&mut self) {
        if let Some(InFlight::Snapshot { .. }) = self.in_flight {
            self.snapshot_needed = true;
        }
        self.in_flight = None;
    }

    /// Takes one reply frame (without its length prefix).
    pub fn on_reply(&mut self, payload: &[u8]) -> Result<ReplyOutcome, SubscriberError> {
        let reply = decode_reply(payload)?;
        let Some(in_flight) = self.in_flight else {
            // A reply to nothing (a request abandoned after a reconnect): ignore it.
            return Ok(ReplyOutcome::Continue);
        };
        match reply {
            Reply::Packet(packet) => {
                if let Some(expected) = self.session.filter(|s| *s != packet.session) {
                    return Err(SubscriberError::WrongSession {
                        expected,
                        found: packet.session,
                    });
                }
                match in_flight {
                    InFlight::Retransmit => {
                        for (seq, msg) in packet.messages() {
                            self.offer(seq, msg, true);
                        }
                    }
                    InFlight::Snapshot { .. } => {
                        for (_, msg) in packet.messages() {
                            self.snapshot_message(&msg);
                        }
                    }
                }
                Ok(ReplyOutcome::Continue)
            }
            Reply::End => {
                self.in_flight = None;
                if let InFlight::Snapshot { as_of_seq } = in_flight {
                    self.snapshot_needed = false;
                    if let Some(as_of) = as_of_seq {
                        self.next_seq = as_of + 1;
                        self.seen_to = self.seen_to.max(as_of);
                        self.drain();
                    } else {
                        // An empty snapshot (no instrument matched): ask again later.
                        self.snapshot_needed = true;
                    }
                }
                Ok(ReplyOutcome::Done)
            }
            Reply::Reject { reason, text } => {
                self.counters.rejects += 1;
                self.in_flight = None;
                match reason {
                    RejectReason::RangeNotAvailable => self.snapshot_needed = true,
                    RejectReason::WrongSession => {
                        // The exchange restarted; the next live packet names the new session.
                        self.reset();
                        self.session = None;
                    }
                    _ => {
                        let text = text.to_string();
                        self.problem(|| format!("recovery refused: {reason:?}: {text}"));
                    }
                }
                Ok(ReplyOutcome::Refused(reason))
            }
        }
    }

    fn snapshot_message(&mut self, msg: &Message) {
        match *msg {
            Message::SnapshotBegin(g) => {
                if let Some(InFlight::Snapshot { as_of_seq }) = &mut self.in_flight {
                    *as_of_seq = Some(g.as_of_seq);
                }
                if self.follows(g.instrument) {
                    self.books.clear(g.instrument);
                    let view = &mut self.inst[g.instrument.0 as usize];
                    view.bbo = None;
                    view.levels = [Vec::new(), Vec::new()];
                }
            }
            Message::SnapshotEnd(z) => {
                if !self.follows(z.instrument) {
                    return;
                }
                let mine = self.books.hash(z.instrument);
                if mine != z.book_hash {
                    self.counters.snapshots_bad += 1;
                    self.problem(|| {
                        format!(
                            "snapshot of instrument {} as of {} hashes to {mine:016x}, expected {:016x}",
                            z.instrument, z.as_of_seq, z.book_hash
                        )
                    });
                }
                // The L2 and L1 views restart from the book: at a command boundary they are
                // what the publisher last published.
                let i = z.instrument.0 as usize;
                let depth = self.scratch.len();
                for side in [Side::Buy, Side::Sell] {
                    let n = self
                        .books
                        .depth(z.instrument, side, &mut self.scratch[..depth]);
                    self.inst[i].levels[side_index(side)] = self.scratch[..n].to_vec();
                }
            }
            Message::Directory(_) | Message::Status(_) | Message::Stats(_) | Message::Add(_) => {
                self.apply(0, msg)
            }
            _ => {
                self.counters.apply_errors += 1;
                self.problem(|| format!("unexpected message in a snapshot: {msg:?}"));
            }
        }
    }

    fn book_result<T>(&mut self, seq: u64, r: Result<T, BookError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.counters.apply_errors += 1;
                // A book that cannot apply the feed is wrong; a snapshot replaces it.
                self.snapshot_needed = true;
                self.problem(|| format!("message {seq}: {e}"));
                None
            }
        }
    }

    /// Applies one message in sequence (`seq` 0 for snapshot content).
    fn apply(&mut self, seq: u64, msg: &Message) {
        if seq > 0 {
            self.counters.applied += 1;
        }
        let instrument = msg.instrument();
        if !self.follows(instrument) {
            return;
        }
        let i = instrument.0 as usize;
        match *msg {
            Message::Directory(d) => self.inst[i].directory = Some(d),
            Message::Status(s) => self.inst[i].status = Some(s.status),
            Message::Stats(s) => self.inst[i].stats = DayStats::from_message(&s),
            Message::Add(a) => {
                let r = self
                    .books
                    .add(instrument, a.order_id, a.side, a.price, a.qty);
                self.book_result(seq, r);
            }
            Message::Delete(d) => {
                let r = self.books.delete(instrument, d.order_id);
                self.book_result(seq, r);
            }
            Message::Reduce(x) => {
                let r = self.books.reduce(instrument, x.order_id, x.qty_reduced);
                if let Some(open) = self.book_result(seq, r) {
                    if open != x.qty_open {
                        self.counters.apply_errors += 1;
                        self.problem(|| {
                            format!(
                                "message {seq}: reduce leaves {open}, feed says {}",
                                x.qty_open
                            )
                        });
                    }
                }
            }
            Message::Modify(u) => {
                let r = self
                    .books
                    .modify(instrument, u.order_id, u.price, u.qty_open, true);
                self.book_result(seq, r);
            }
            Message::Executed(e) => {
                let r = self
                    .books
                    .execute(instrument, e.maker_order_id, e.price, e.qty);
                if let Some(open) = self.book_result(seq, r) {
                    if open != e.maker_qty_open {
                        self.counters.apply_errors += 1;
                        self.problem(|| {
                            format!(
                                "message {seq}: maker left with {open}, feed says {}",
                                e.maker_qty_open
                            )
                        });
                    }
                }
                if self.trades.len() == self.cfg.trades_kept {
                    self.trades.pop_front();
                }
                if self.cfg.trades_kept > 0 {
                    self.trades.push_back(e);
                }
            }
            Message::Level(l) => {
                let levels = &mut self.inst[i].levels[side_index(l.side)];
                let at = levels.iter().position(|v| v.price == l.price);
                match (at, l.order_count) {
                    (Some(k), 0) => {
                        levels.remove(k);
                    }
                    (None, 0) => {}
                    (Some(k), _) => {
                        levels[k].qty_total = l.qty_total;
                        levels[k].order_count = l.order_count;
                    }
                    (None, _) => {
                        let view = LevelView {
                            price: l.price,
                            qty_total: l.qty_total,
                            order_count: l.order_count,
                        };
                        // Best first: bids by falling price, asks by rising price.
                        let k = levels
                            .iter()
                            .position(|v| match l.side {
                                Side::Buy => v.price < l.price,
                                Side::Sell => v.price > l.price,
                            })
                            .unwrap_or(levels.len());
                        levels.insert(k, view);
                    }
                }
            }
            Message::Bbo(q) => self.inst[i].bbo = Some(q),
            Message::Checkpoint(c) => {
                let mine = self.books.hash(instrument);
                if mine == c.book_hash {
                    self.counters.checkpoints_ok += 1;
                } else {
                    self.counters.checkpoints_bad += 1;
                    self.snapshot_needed = true;
                    let orders = self.books.order_count(instrument);
                    self.problem(|| {
                        format!(
                            "checkpoint at message {seq} (engine command {}): instrument {} book hash {mine:016x}, engine {:016x} ({orders} orders, engine {})",
                            c.engine_seq,
                            instrument,
                            c.book_hash,
                            c.orders
                        )
                    });
                }
                self.check_views(seq, instrument);
            }
            Message::SnapshotBegin(_) | Message::SnapshotEnd(_) => {
                self.counters.apply_errors += 1;
                self.problem(|| format!("message {seq}: a snapshot message in the live feed"));
            }
        }
    }

    /// At a checkpoint (a command boundary) the `L` and `Q` views must agree with the book.
    fn check_views(&mut self, seq: u64, instrument: InstrumentId) {
        let i = instrument.0 as usize;
        let depth = self.scratch.len();
        let mut ok = true;
        for side in [Side::Buy, Side::Sell] {
            let n = self
                .books
                .depth(instrument, side, &mut self.scratch[..depth]);
            if self.inst[i].levels[side_index(side)] != self.scratch[..n] {
                ok = false;
            }
        }
        if let Some(q) = self.inst[i].bbo {
            let bid = self.books.best(instrument, Side::Buy);
            let ask = self.books.best(instrument, Side::Sell);
            if q.bid_price != bid.map(|l| l.price)
                || q.bid_qty != bid.map_or(QtyLots(0), |l| l.qty_total)
                || q.ask_price != ask.map(|l| l.price)
                || q.ask_qty != ask.map_or(QtyLots(0), |l| l.qty_total)
            {
                ok = false;
            }
        }
        if !ok {
            self.counters.view_mismatches += 1;
            self.problem(|| format!("message {seq}: the L2/L1 view of instrument {instrument} differs from the book"));
        }
    }
}
