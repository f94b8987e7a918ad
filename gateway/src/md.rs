//! Market data over FIX: aggregated books (L2) built from the engine's `BookDelta` events,
//! per-session subscriptions from MarketDataRequest (V), and the answers: snapshots
//! (MarketDataSnapshotFullRefresh, W), incremental refreshes (MarketDataIncrementalRefresh, X)
//! and rejects (MarketDataRequestReject, Y).
//!
//! Pure like the rest of the protocol core: no I/O and no clock. The event loop hands every
//! output frame to [`MarketData::on_output`] and every V to [`MarketData::on_request`]; the
//! messages go out through an [`MdSink`], which the gateway implements on its sessions (and a
//! test on a vector).
//!
//! # What a client sees
//!
//! A subscription covers one instrument, a depth N (MarketDepth 264: 0 is the full book up to
//! `md_depth_max` levels, 1 the top of book) and a set of entry types (0 bid, 1 offer,
//! 2 trade). One request may name several symbols; each gets its own W and its own updates,
//! all keyed by the request's MDReqID, and each counts as one subscription against
//! `md_subscriptions_max`. Only aggregated price levels are offered (AggregatedBook 266 = Y):
//! the order-by-order book (L3) is not served over FIX, because per-order entries would
//! disclose more than a FIX client needs and multiply the traffic; the binary feed carries it.
//!
//! After the W, every command of the engine that touched the instrument (a `BookDelta` or a
//! `Trade`) ends with one X per subscription whose top N changed, or which subscribes to
//! trades and saw some. Book entries are positional: each carries MDEntryPositionNo (290),
//! 1 being the best price of its side, and
//!
//! - `279=2` Delete removes the entry at that position (the ones below move up);
//! - `279=0` New inserts an entry at that position (the ones below move down);
//! - `279=1` Change replaces size and order count at that position (the price is the same).
//!
//! The difference between what a subscription last sent and the current top N is computed,
//! per side (bids, then offers), by a merge of the two price-sorted lists: first every Delete
//! (levels no longer in the top N, in best-first order, each position counted after the
//! deletes before it), then every New and Change in best-first order, at its final position. So a client never holds more than N
//! entries and needs no implicit deletes, a new best level costs one New (plus one Delete of
//! the level that fell off the bottom) rather than a rewrite of every position, and a client
//! applying the messages in order holds exactly the gateway's top N after each of them (the
//! tests check this against the engine's own levels). Trades of the command follow the book
//! entries as `279=0 269=2` with price and size. With MDUpdateType 265 = 0 (full refresh) a
//! new W is sent instead of each X; it carries the last trade, not every trade of the command.
//!
//! An X holds at most [`X_ENTRIES_MAX`] entries; a longer update (a sweep through many levels)
//! is split into consecutive X messages, which the client applies in order like any others.
//!
//! # Slow consumers
//!
//! Market data must never slow the engine or another session, and must never pile up without
//! bound behind a client that does not read. So before each message for a session the sink's
//! queued bytes are compared with `md_conflate_bytes`: above it, the session's subscriptions
//! are marked stale instead of being sent anything, and the trades they would have carried are
//! dropped (and counted). Once the session's queue is back below the threshold (checked at
//! every END and on every turn of the event loop), each stale subscription gets one conflated
//! X: the difference between what it last sent and the current top N, computed exactly as
//! above. A W that could not be sent yet (the first snapshot, or a full-refresh subscription)
//! is sent then instead. The counters are in [`MdSessionStats`].
//!
//! # Resends
//!
//! W and X are numbered like other application messages but not stored: on a ResendRequest
//! their numbers are gap-filled, never resent, because a replayed book update describes a book
//! that no longer exists and would corrupt the client's picture (and storing market data would
//! fill the session store). A client that lost messages re-subscribes for a fresh W. Y answers
//! a request and is stored and resent like other rejects.
//!
//! # Bounds
//!
//! Books grow only to the engine's own level limit per side (preallocated up to a cap at
//! start). Subscriptions are bounded per session; each allocates its two fixed arrays of N
//! levels when a client request creates it, never on the matching path. The scratch vectors
//! (entries, the command's trades, touched instruments) keep their capacity.

use crate::fix::{tags, Encoder, Message};
use ferrox_engine::{InstrumentSpec, InstrumentStatus, Side};
use ferrox_protocol::Event;
use std::cmp::Ordering;
use std::io::Write as _;

/// Longest MDReqID (262) accepted.
pub const MD_REQ_ID_BYTES_MAX: usize = 64;
/// Most entries in one X message; a longer update is split (see the module documentation).
pub const X_ENTRIES_MAX: usize = 100;
/// The largest `md_depth_max` a configuration may set: a W of that depth on both sides plus a
/// trade stays well under common limits on fields per message (1024).
pub const DEPTH_MAX_LIMIT: usize = 100;
/// The largest `md_subscriptions_max` a configuration may set.
pub const SUBSCRIPTIONS_MAX_LIMIT: usize = 10_000;
/// Levels preallocated per book side at start; a side grows beyond only when the book does.
const LEVELS_PREALLOCATED_MAX: usize = 4096;

/// Market data settings, from the `[gateway]` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MdConfig {
    /// The deepest book a subscription may ask for; MarketDepth 0 means this many levels.
    pub depth_max: usize,
    /// Subscriptions (MDReqID × symbol) per session.
    pub subscriptions_max: usize,
    /// A session with more queued outbound bytes than this gets no market data until its
    /// queue drains; its subscriptions are then conflated.
    pub conflate_bytes: usize,
}

impl Default for MdConfig {
    fn default() -> MdConfig {
        MdConfig {
            depth_max: 50,
            subscriptions_max: 100,
            conflate_bytes: 256 * 1024,
        }
    }
}

/// One aggregated price level: its price in ticks, total open quantity in lots and number of
/// orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Level {
    pub price: i64,
    pub qty: u64,
    pub orders: u32,
}

/// Index of a side in per-side arrays.
fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// `Less` when price `a` is better than `b` on side `s` (0 bids, 1 offers).
fn cmp_best(s: usize, a: i64, b: i64) -> Ordering {
    if s == 0 {
        b.cmp(&a)
    } else {
        a.cmp(&b)
    }
}

#[derive(Clone, Debug)]
struct Book {
    /// Per side, sorted worst first so that the best level is at the end: changes happen
    /// mostly at the top of the book, where inserting or removing moves nothing.
    sides: [Vec<Level>; 2],
    last_trade: Option<(i64, u64)>,
    status: InstrumentStatus,
}

/// The aggregated books of every instrument, maintained from `BookDelta` events only (each
/// carries the new totals of one level, so no event before it needs to be known for it to be
/// applied), plus the last trade of each instrument.
#[derive(Clone, Debug)]
pub struct DepthBooks {
    books: Vec<Book>,
}

impl DepthBooks {
    /// Empty books for `instruments`, indexed by `InstrumentId`.
    pub fn new(instruments: &[InstrumentSpec]) -> DepthBooks {
        let books = instruments
            .iter()
            .map(|spec| {
                let n = (spec.levels_per_side_max as usize).min(LEVELS_PREALLOCATED_MAX);
                Book {
                    sides: [Vec::with_capacity(n), Vec::with_capacity(n)],
                    last_trade: None,
                    status: spec.status,
                }
            })
            .collect();
        DepthBooks { books }
    }

    /// Sets one level's totals; `orders == 0` removes the level. An unknown instrument is
    /// ignored (the engine never names one).
    pub fn set_level(&mut self, instrument: u32, side: Side, price: i64, qty: u64, orders: u32) {
        let Some(book) = self.books.get_mut(instrument as usize) else {
            return;
        };
        let s = side_index(side);
        let levels = &mut book.sides[s];
        // Sorted worst first: the reverse of best-first order.
        let found = levels.binary_search_by(|l| cmp_best(s, price, l.price));
        match (found, orders) {
            (Ok(i), 0) => {
                levels.remove(i);
            }
            (Ok(i), _) => levels[i] = Level { price, qty, orders },
            (Err(_), 0) => {}
            (Err(i), _) => levels.insert(i, Level { price, qty, orders }),
        }
    }

    /// Seeds one level at start-up from the engine's recovered state, before the first output
    /// frame is read: the gateway reads the output ring from where it attaches, so a level
    /// that rests since before then and does not change again would otherwise be missing.
    /// The caller (the exchange's wiring) passes every level of every book once, e.g. from
    /// `Engine::levels_of`, and must take them at the ring position the gateway starts
    /// reading from. The same as a `BookDelta` with these totals.
    pub fn seed_level(&mut self, instrument: u32, side: Side, price: i64, qty: u64, count: u32) {
        self.set_level(instrument, side, price, qty, count);
    }

    /// Applies one engine event: `BookDelta`, `Trade` and `StatusChanged` matter, the rest
    /// are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::BookDelta(d) => self.set_level(
                d.instrument.0,
                d.side,
                d.price.0,
                d.qty_total.0,
                d.order_count,
            ),
            Event::Trade(t) => {
                if let Some(book) = self.books.get_mut(t.instrument.0 as usize) {
                    book.last_trade = Some((t.price.0, t.qty.0));
                }
            }
            Event::StatusChanged(c) => {
                if let Some(book) = self.books.get_mut(c.instrument.0 as usize) {
                    book.status = c.status;
                }
            }
            _ => {}
        }
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.books.len()
    }

    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    /// Every level of one side, worst first (the best is last); empty for an unknown
    /// instrument.
    pub fn levels(&self, instrument: u32, side: Side) -> &[Level] {
        self.books
            .get(instrument as usize)
            .map_or(&[][..], |b| &b.sides[side_index(side)])
    }

    /// The best `n` levels of one side, best first.
    pub fn top(&self, instrument: u32, side: Side, n: usize) -> impl Iterator<Item = Level> + '_ {
        self.levels(instrument, side).iter().rev().take(n).copied()
    }

    /// The last trade's (price, quantity), if the instrument traded since the gateway started.
    pub fn last_trade(&self, instrument: u32) -> Option<(i64, u64)> {
        self.books.get(instrument as usize)?.last_trade
    }

    /// The instrument's trading status as the engine last reported it.
    pub fn status(&self, instrument: u32) -> Option<InstrumentStatus> {
        self.books.get(instrument as usize).map(|b| b.status)
    }
}

/// MDUpdateAction (279).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateAction {
    New,
    Change,
    Delete,
}

impl UpdateAction {
    pub fn fix(self) -> u8 {
        match self {
            UpdateAction::New => b'0',
            UpdateAction::Change => b'1',
            UpdateAction::Delete => b'2',
        }
    }
}

/// One entry of an X: a book entry has a position (1 = best); a trade has position 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    action: UpdateAction,
    /// 0 bid, 1 offer, 2 trade: the index and the MDEntryType digit at once.
    kind: u8,
    price: i64,
    qty: u64,
    orders: u32,
    position: u32,
}

/// Pushes the entries that turn `old` (best first, what the client holds) into the best
/// `n` levels of `book` (worst first, as [`DepthBooks::levels`] gives them); see the module
/// documentation for the order.
fn diff_side(s: usize, old: &[Level], book: &[Level], n: usize, out: &mut Vec<Entry>) {
    let new_len = n.min(book.len());
    let new = |j: usize| book[book.len() - 1 - j];
    let kind = s as u8;
    // Deletes: old levels that are not in the new top N.
    let (mut i, mut j, mut deleted) = (0, 0, 0);
    while i < old.len() {
        let gone = if j < new_len {
            match cmp_best(s, old[i].price, new(j).price) {
                Ordering::Less => true,
                Ordering::Equal => {
                    j += 1;
                    false
                }
                Ordering::Greater => {
                    j += 1;
                    continue;
                }
            }
        } else {
            true
        };
        if gone {
            out.push(Entry {
                action: UpdateAction::Delete,
                kind,
                price: old[i].price,
                qty: 0,
                orders: 0,
                position: (i - deleted + 1) as u32,
            });
            deleted += 1;
        }
        i += 1;
    }
    // News and changes, best first, each at its final position.
    let mut i = 0;
    for j in 0..new_len {
        let level = new(j);
        while i < old.len() && cmp_best(s, old[i].price, level.price) == Ordering::Less {
            i += 1;
        }
        let action = if i < old.len() && old[i].price == level.price {
            let changed = old[i].qty != level.qty || old[i].orders != level.orders;
            i += 1;
            if !changed {
                continue;
            }
            UpdateAction::Change
        } else {
            UpdateAction::New
        };
        out.push(Entry {
            action,
            kind,
            price: level.price,
            qty: level.qty,
            orders: level.orders,
            position: (j + 1) as u32,
        });
    }
}

/// Applies a book entry to what a subscription holds, exactly as a client does; entries that
/// do not fit (which the diff never produces) are ignored rather than trusted.
fn apply_entry(levels: &mut [Level], len: &mut usize, e: &Entry) {
    let Some(p) = (e.position as usize).checked_sub(1) else {
        return;
    };
    match e.action {
        UpdateAction::New => {
            if *len < levels.len() && p <= *len {
                levels.copy_within(p..*len, p + 1);
                levels[p] = Level {
                    price: e.price,
                    qty: e.qty,
                    orders: e.orders,
                };
                *len += 1;
            }
        }
        UpdateAction::Change => {
            if p < *len {
                levels[p].qty = e.qty;
                levels[p].orders = e.orders;
            }
        }
        UpdateAction::Delete => {
            if p < *len {
                levels.copy_within(p + 1..*len, p);
                *len -= 1;
            }
        }
    }
}

/// Where market data messages go: the gateway's sessions, or a test's vectors.
pub trait MdSink {
    /// Outbound bytes queued for the session and not yet written to its socket.
    fn queued_bytes(&self, session: usize) -> usize;
    /// Starts an application message of `msg_type` (header written); the body follows.
    fn begin(&mut self, session: usize, msg_type: &[u8]) -> &mut Encoder;
    /// Numbers and sends the message built since `begin`. `store` is true for a reject (Y),
    /// which is kept for resend; W and X are not (see the module documentation). Returns
    /// false if nothing was sent (no connection, or no room for it in the session's queue),
    /// in which case no sequence number was used.
    fn send(&mut self, session: usize, store: bool) -> bool;
}

/// Market data counters of one session, for the operator and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MdSessionStats {
    /// Live subscriptions (MDReqID × symbol).
    pub subscriptions: u64,
    pub snapshots_sent: u64,
    pub incrementals_sent: u64,
    pub rejects_sent: u64,
    /// Times a subscription was marked stale because the session's queue was above
    /// `md_conflate_bytes` (or a message did not fit in it).
    pub stale_marks: u64,
    /// Conflated updates sent to stale subscriptions once the queue drained.
    pub conflations: u64,
    /// Trades not sent to a stale subscription.
    pub trades_dropped: u64,
}

/// MDReqRejReason (281) values of FIX 4.4 that the gateway uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MdRejReason {
    UnknownSymbol,
    DuplicateMdReqId,
    /// Used for "too many subscriptions": FIX 4.4 has no closer value.
    InsufficientBandwidth,
    UnsupportedSubscriptionRequestType,
    UnsupportedMarketDepth,
    UnsupportedMdUpdateType,
    UnsupportedAggregatedBook,
    UnsupportedMdEntryType,
}

impl MdRejReason {
    pub fn fix(self) -> u8 {
        match self {
            MdRejReason::UnknownSymbol => b'0',
            MdRejReason::DuplicateMdReqId => b'1',
            MdRejReason::InsufficientBandwidth => b'2',
            MdRejReason::UnsupportedSubscriptionRequestType => b'4',
            MdRejReason::UnsupportedMarketDepth => b'5',
            MdRejReason::UnsupportedMdUpdateType => b'6',
            MdRejReason::UnsupportedAggregatedBook => b'7',
            MdRejReason::UnsupportedMdEntryType => b'8',
        }
    }
}

struct Instrument {
    symbol: Box<[u8]>,
    price_decimals: u32,
    qty_decimals: u32,
}

struct Sub {
    session: usize,
    req_id: Box<[u8]>,
    instrument: u32,
    depth: usize,
    /// Bids and offers subscribed.
    sides: [bool; 2],
    trades: bool,
    /// MDUpdateType 0: a W instead of each X.
    full_refresh: bool,
    /// SubscriptionRequestType 0: removed once its W is sent.
    snapshot_only: bool,
    /// Per side, what the client holds, best first: `sent[s][..sent_len[s]]`.
    sent: [Box<[Level]>; 2],
    sent_len: [usize; 2],
    /// Updates were withheld; the next message is a conflated one.
    stale: bool,
    /// No W was sent yet.
    snapshot_pending: bool,
}

#[derive(Default)]
struct SessionMd {
    subs: Vec<u32>,
    in_stale_list: bool,
    stats: MdSessionStats,
}

/// Books, subscriptions and the messages between them; see the module documentation.
pub struct MarketData {
    config: MdConfig,
    books: DepthBooks,
    instruments: Vec<Instrument>,
    /// Subscription slots; `free` lists the empty ones.
    subs: Vec<Option<Sub>>,
    free: Vec<u32>,
    sessions: Vec<SessionMd>,
    /// Per instrument, the subscriptions on it.
    by_instrument: Vec<Vec<u32>>,
    /// Instruments with a `BookDelta` or `Trade` since the last END, and their flags.
    touched: Vec<u32>,
    touched_flag: Vec<bool>,
    /// The trades of the current command: (instrument, price, qty).
    trades: Vec<(u32, i64, u64)>,
    /// Sessions with stale subscriptions.
    stale_sessions: Vec<usize>,
    entries: Vec<Entry>,
    /// Instruments named by the request being handled.
    request_instruments: Vec<u32>,
    text: Vec<u8>,
    totals: MdSessionStats,
}

/// A request refused: the reason (none when FIX 4.4 has no fitting value) and the Text in
/// `MarketData::text`.
struct Refusal(Option<MdRejReason>);

/// Writes at most `MD_REQ_ID_BYTES_MAX` bytes of a client's value into a reject's text, so
/// that the text names the value without growing with it.
fn quote(text: &mut Vec<u8>, v: &[u8]) {
    text.extend_from_slice(&v[..v.len().min(MD_REQ_ID_BYTES_MAX)]);
    if v.len() > MD_REQ_ID_BYTES_MAX {
        text.extend_from_slice(b"...");
    }
}

impl MarketData {
    /// Market data for `instruments` (indexed by `InstrumentId`) and `sessions` sessions.
    pub fn new(config: MdConfig, instruments: &[InstrumentSpec], sessions: usize) -> MarketData {
        let n = instruments.len();
        MarketData {
            config,
            books: DepthBooks::new(instruments),
            instruments: instruments
                .iter()
                .map(|s| Instrument {
                    symbol: s.symbol.as_bytes().into(),
                    price_decimals: s.price_decimals,
                    qty_decimals: s.qty_decimals,
                })
                .collect(),
            subs: Vec::new(),
            free: Vec::new(),
            sessions: (0..sessions).map(|_| SessionMd::default()).collect(),
            by_instrument: (0..n).map(|_| Vec::new()).collect(),
            touched: Vec::with_capacity(n),
            touched_flag: vec![false; n],
            trades: Vec::with_capacity(1024),
            stale_sessions: Vec::with_capacity(sessions),
            entries: Vec::with_capacity(4 * config.depth_max + 64),
            request_instruments: Vec::with_capacity(16),
            text: Vec::with_capacity(256),
            totals: MdSessionStats::default(),
        }
    }

    pub fn config(&self) -> &MdConfig {
        &self.config
    }

    pub fn books(&self) -> &DepthBooks {
        &self.books
    }

    /// See [`DepthBooks::seed_level`]: for the exchange's wiring, before the first frame.
    pub fn seed_level(&mut self, instrument: u32, side: Side, price: i64, qty: u64, count: u32) {
        self.books.seed_level(instrument, side, price, qty, count);
    }

    /// The counters of one session (all zero for an unknown one).
    pub fn session_stats(&self, session: usize) -> MdSessionStats {
        self.sessions
            .get(session)
            .map_or_else(MdSessionStats::default, |s| s.stats)
    }

    /// The counters of every session added up.
    pub fn totals(&self) -> MdSessionStats {
        self.totals
    }

    /// Whether some subscription waits for its session's queue to drain.
    pub fn has_stale(&self) -> bool {
        !self.stale_sessions.is_empty()
    }

    fn bump(&mut self, session: usize, f: impl Fn(&mut MdSessionStats)) {
        if let Some(s) = self.sessions.get_mut(session) {
            f(&mut s.stats);
        }
        f(&mut self.totals);
    }

    /// One output frame: an event, or the END (`None`) that closes a command.
    pub fn on_output(&mut self, event: Option<&Event>, sink: &mut dyn MdSink) {
        match event {
            Some(e) => self.on_event(e),
            None => self.on_end(sink),
        }
    }

    /// An engine event: the book update plus O(1) bookkeeping, whether or not anyone
    /// subscribes.
    pub fn on_event(&mut self, event: &Event) {
        self.books.apply(event);
        let instrument = match event {
            Event::BookDelta(d) => d.instrument.0,
            Event::Trade(t) => {
                self.trades.push((t.instrument.0, t.price.0, t.qty.0));
                t.instrument.0
            }
            _ => return,
        };
        if let Some(flag) = self.touched_flag.get_mut(instrument as usize) {
            if !*flag {
                *flag = true;
                self.touched.push(instrument);
            }
        }
    }

    /// The end of a command: updates for every subscription on an instrument it touched, then
    /// conflated updates for stale subscriptions whose sessions drained.
    pub fn on_end(&mut self, sink: &mut dyn MdSink) {
        for k in 0..self.touched.len() {
            let instrument = self.touched[k];
            self.touched_flag[instrument as usize] = false;
            for n in 0..self.by_instrument[instrument as usize].len() {
                let id = self.by_instrument[instrument as usize][n];
                self.update(id, sink);
            }
        }
        self.touched.clear();
        self.trades.clear();
        self.flush_stale(sink);
    }

    /// The update of one subscription at the end of a command.
    fn update(&mut self, id: u32, sink: &mut dyn MdSink) {
        let Some(sub) = self.subs[id as usize].as_ref() else {
            return;
        };
        let (session, instrument) = (sub.session, sub.instrument);
        let trades = if sub.trades {
            self.trades.iter().filter(|t| t.0 == instrument).count() as u64
        } else {
            0
        };
        if sub.stale {
            self.bump(session, |s| s.trades_dropped += trades);
            return;
        }
        if sink.queued_bytes(session) > self.config.conflate_bytes {
            self.mark_stale(id);
            self.bump(session, |s| s.trades_dropped += trades);
            return;
        }
        let sent = if self.subs[id as usize]
            .as_ref()
            .is_some_and(|s| s.full_refresh)
        {
            self.diff(id);
            if self.entries.is_empty() && trades == 0 {
                return;
            }
            self.send_snapshot(id, sink)
        } else {
            self.send_incremental(id, true, sink)
        };
        if !sent {
            self.mark_stale(id);
        }
    }

    fn mark_stale(&mut self, id: u32) {
        let Some(sub) = self.subs[id as usize].as_mut() else {
            return;
        };
        if sub.stale {
            return;
        }
        sub.stale = true;
        let session = sub.session;
        self.bump(session, |s| s.stale_marks += 1);
        if let Some(s) = self.sessions.get_mut(session) {
            if !s.in_stale_list {
                s.in_stale_list = true;
                self.stale_sessions.push(session);
            }
        }
    }

    /// Conflated updates for the stale subscriptions of every session whose queue is below
    /// the threshold again. Cheap when nothing is stale: the event loop calls it every turn,
    /// so that a session that drains its socket without new engine events still catches up.
    pub fn flush_stale(&mut self, sink: &mut dyn MdSink) {
        let mut k = 0;
        while k < self.stale_sessions.len() {
            let session = self.stale_sessions[k];
            if self.flush_session(session, sink) {
                self.sessions[session].in_stale_list = false;
                self.stale_sessions.swap_remove(k);
            } else {
                k += 1;
            }
        }
    }

    /// True when no subscription of `session` is stale any more.
    fn flush_session(&mut self, session: usize, sink: &mut dyn MdSink) -> bool {
        let mut k = 0;
        while k < self.sessions[session].subs.len() {
            let id = self.sessions[session].subs[k];
            let Some(sub) = self.subs[id as usize].as_ref() else {
                k += 1;
                continue;
            };
            if !sub.stale {
                k += 1;
                continue;
            }
            if sink.queued_bytes(session) > self.config.conflate_bytes {
                return false;
            }
            let snapshot = sub.snapshot_pending || sub.full_refresh;
            let snapshot_only = sub.snapshot_only;
            let sent = if snapshot {
                self.send_snapshot(id, sink)
            } else {
                self.send_incremental(id, false, sink)
            };
            if !sent {
                return false;
            }
            if let Some(sub) = self.subs[id as usize].as_mut() {
                sub.stale = false;
            }
            self.bump(session, |s| s.conflations += 1);
            if snapshot_only {
                // Removes index k: the last subscription moved there and is looked at next.
                self.remove(id);
            } else {
                k += 1;
            }
        }
        true
    }

    /// Fills `entries` with the book difference of subscription `id`.
    fn diff(&mut self, id: u32) {
        self.entries.clear();
        let Some(sub) = self.subs[id as usize].as_ref() else {
            return;
        };
        for (s, side) in [(0, Side::Buy), (1, Side::Sell)] {
            if sub.sides[s] {
                let old = &sub.sent[s][..sub.sent_len[s]];
                let book = self.books.levels(sub.instrument, side);
                diff_side(s, old, book, sub.depth, &mut self.entries);
            }
        }
    }

    /// Sends the X messages of subscription `id`: its book difference, plus this command's
    /// trades when `with_trades`. False if a message could not be sent; what was sent before
    /// it is already applied to the subscription, so a later conflated X starts from there.
    fn send_incremental(&mut self, id: u32, with_trades: bool, sink: &mut dyn MdSink) -> bool {
        self.diff(id);
        let Some(sub) = self.subs[id as usize].as_mut() else {
            return true;
        };
        if with_trades && sub.trades {
            for &(instrument, price, qty) in &self.trades {
                if instrument == sub.instrument {
                    self.entries.push(Entry {
                        action: UpdateAction::New,
                        kind: 2,
                        price,
                        qty,
                        orders: 0,
                        position: 0,
                    });
                }
            }
        }
        let Some(ins) = self.instruments.get(sub.instrument as usize) else {
            return true;
        };
        let session = sub.session;
        let mut sent_messages = 0;
        for (c, chunk) in self.entries.chunks(X_ENTRIES_MAX).enumerate() {
            let e = sink.begin(session, b"X");
            e.str(tags::MD_REQ_ID, &sub.req_id)
                .u64(tags::NO_MD_ENTRIES, chunk.len() as u64);
            for entry in chunk {
                e.char(tags::MD_UPDATE_ACTION, entry.action.fix())
                    .char(tags::MD_ENTRY_TYPE, b'0' + entry.kind)
                    .str(tags::SYMBOL, &ins.symbol)
                    .decimal(
                        tags::MD_ENTRY_PX,
                        i128::from(entry.price),
                        ins.price_decimals,
                    );
                if entry.action != UpdateAction::Delete {
                    e.decimal(tags::MD_ENTRY_SIZE, i128::from(entry.qty), ins.qty_decimals);
                }
                if entry.kind < 2 {
                    if entry.action != UpdateAction::Delete {
                        e.u64(tags::NUMBER_OF_ORDERS, u64::from(entry.orders));
                    }
                    e.u64(tags::MD_ENTRY_POSITION_NO, u64::from(entry.position));
                }
            }
            if !sink.send(session, false) {
                let lost = self.entries[c * X_ENTRIES_MAX..]
                    .iter()
                    .filter(|e| e.kind == 2)
                    .count() as u64;
                self.totals.incrementals_sent += sent_messages;
                self.totals.trades_dropped += lost;
                if let Some(s) = self.sessions.get_mut(session) {
                    s.stats.incrementals_sent += sent_messages;
                    s.stats.trades_dropped += lost;
                }
                return false;
            }
            sent_messages += 1;
            for entry in chunk.iter().filter(|e| e.kind < 2) {
                let s = entry.kind as usize;
                apply_entry(&mut sub.sent[s], &mut sub.sent_len[s], entry);
            }
        }
        debug_assert!(
            (0..2).all(|s| !sub.sides[s]
                || sub.sent[s][..sub.sent_len[s]]
                    .iter()
                    .copied()
                    .eq(self.books.top(
                        sub.instrument,
                        if s == 0 { Side::Buy } else { Side::Sell },
                        sub.depth
                    ))),
            "Invariant: after its X messages a subscription holds the book's top N"
        );
        self.bump(session, |s| s.incrementals_sent += sent_messages);
        true
    }

    /// Sends a W for subscription `id` and records its contents as sent.
    fn send_snapshot(&mut self, id: u32, sink: &mut dyn MdSink) -> bool {
        let Some(sub) = self.subs[id as usize].as_mut() else {
            return true;
        };
        let Some(ins) = self.instruments.get(sub.instrument as usize) else {
            return true;
        };
        let books = &self.books;
        let last_trade = if sub.trades {
            books.last_trade(sub.instrument)
        } else {
            None
        };
        let mut count = usize::from(last_trade.is_some());
        for (s, side) in [(0, Side::Buy), (1, Side::Sell)] {
            if sub.sides[s] {
                count += books.top(sub.instrument, side, sub.depth).count();
            }
        }
        let e = sink.begin(sub.session, b"W");
        e.str(tags::MD_REQ_ID, &sub.req_id)
            .str(tags::SYMBOL, &ins.symbol)
            .u64(tags::NO_MD_ENTRIES, count as u64);
        for (s, side) in [(0, Side::Buy), (1, Side::Sell)] {
            if !sub.sides[s] {
                continue;
            }
            for (k, level) in books.top(sub.instrument, side, sub.depth).enumerate() {
                e.char(tags::MD_ENTRY_TYPE, b'0' + s as u8)
                    .decimal(
                        tags::MD_ENTRY_PX,
                        i128::from(level.price),
                        ins.price_decimals,
                    )
                    .decimal(tags::MD_ENTRY_SIZE, i128::from(level.qty), ins.qty_decimals)
                    .u64(tags::NUMBER_OF_ORDERS, u64::from(level.orders))
                    .u64(tags::MD_ENTRY_POSITION_NO, k as u64 + 1);
            }
        }
        if let Some((price, qty)) = last_trade {
            e.char(tags::MD_ENTRY_TYPE, b'2')
                .decimal(tags::MD_ENTRY_PX, i128::from(price), ins.price_decimals)
                .decimal(tags::MD_ENTRY_SIZE, i128::from(qty), ins.qty_decimals);
        }
        let session = sub.session;
        if !sink.send(session, false) {
            return false;
        }
        for (s, side) in [(0, Side::Buy), (1, Side::Sell)] {
            let mut n = 0;
            if sub.sides[s] {
                for level in books.top(sub.instrument, side, sub.depth) {
                    sub.sent[s][n] = level;
                    n += 1;
                }
            }
            sub.sent_len[s] = n;
        }
        sub.snapshot_pending = false;
        self.bump(session, |s| s.snapshots_sent += 1);
        true
    }

    /// Removes subscription `id` everywhere.
    fn remove(&mut self, id: u32) {
        let Some(sub) = self.subs[id as usize].take() else {
            return;
        };
        if let Some(list) = self.by_instrument.get_mut(sub.instrument as usize) {
            if let Some(k) = list.iter().position(|&x| x == id) {
                list.swap_remove(k);
            }
        }
        if let Some(s) = self.sessions.get_mut(sub.session) {
            if let Some(k) = s.subs.iter().position(|&x| x == id) {
                s.subs.swap_remove(k);
            }
            s.stats.subscriptions = s.subs.len() as u64;
        }
        self.totals.subscriptions = self.totals.subscriptions.saturating_sub(1);
        self.free.push(id);
    }

    /// The session's connection is gone (logout or disconnect): its subscriptions end with
    /// it, as FIX subscriptions do not outlive the connection.
    pub fn drop_session(&mut self, session: usize) {
        let Some(s) = self.sessions.get(session) else {
            return;
        };
        if s.subs.is_empty() && !s.in_stale_list {
            return;
        }
        while let Some(&id) = self.sessions[session].subs.last() {
            self.remove(id);
        }
        if self.sessions[session].in_stale_list {
            self.sessions[session].in_stale_list = false;
            self.stale_sessions.retain(|&x| x != session);
        }
    }

    /// Live subscriptions of `session` (MDReqID × symbol).
    pub fn subscription_count(&self, session: usize) -> usize {
        self.sessions.get(session).map_or(0, |s| s.subs.len())
    }

    /// A MarketDataRequest (V) from `session`, already valid under the dictionary (but this
    /// checks again what it relies on, so no input can make it misbehave).
    pub fn on_request(&mut self, session: usize, msg: &Message, sink: &mut dyn MdSink) {
        if session >= self.sessions.len() {
            return;
        }
        let req_id = match msg.get(tags::MD_REQ_ID as i64) {
            Some(v) if !v.is_empty() => v,
            _ => b"NONE",
        };
        self.text.clear();
        if let Err(Refusal(reason)) = self.request(session, req_id, msg, sink) {
            self.bump(session, |s| s.rejects_sent += 1);
            let e = sink.begin(session, b"Y");
            e.str(tags::MD_REQ_ID, req_id);
            if let Some(r) = reason {
                e.char(tags::MD_REQ_REJ_REASON, r.fix());
            }
            e.str(tags::TEXT, &self.text);
            sink.send(session, true);
        }
    }

    fn refuse(&mut self, reason: Option<MdRejReason>, parts: &[&[u8]]) -> Result<(), Refusal> {
        self.text.clear();
        for (k, p) in parts.iter().enumerate() {
            // Odd parts are the client's values, quoted and bounded.
            if k % 2 == 1 {
                quote(&mut self.text, p);
            } else {
                self.text.extend_from_slice(p);
            }
        }
        Err(Refusal(reason))
    }

    fn request(
        &mut self,
        session: usize,
        req_id: &[u8],
        msg: &Message,
        sink: &mut dyn MdSink,
    ) -> Result<(), Refusal> {
        use MdRejReason::*;
        if req_id.len() > MD_REQ_ID_BYTES_MAX {
            return self.refuse(None, &[b"MDReqID (262) must be 1 to 64 bytes"]);
        }
        let snapshot_only = match msg.get(tags::SUBSCRIPTION_REQUEST_TYPE as i64) {
            Some(b"0") => true,
            Some(b"1") => false,
            Some(b"2") => return self.unsubscribe(session, req_id),
            Some(v) => return self.refuse(
                Some(UnsupportedSubscriptionRequestType),
                &[
                    b"SubscriptionRequestType ",
                    v,
                    b" is not supported: use 0 (snapshot), 1 (snapshot and updates) or 2 (disable)",
                ],
            ),
            None => {
                return self.refuse(
                    Some(UnsupportedSubscriptionRequestType),
                    &[b"SubscriptionRequestType (263) is required"],
                )
            }
        };
        let duplicate = self.sessions[session].subs.iter().any(|&id| {
            self.subs[id as usize]
                .as_ref()
                .is_some_and(|s| &*s.req_id == req_id)
        });
        if duplicate {
            return self.refuse(
                Some(DuplicateMdReqId),
                &[
                    b"MDReqID ",
                    req_id,
                    b" is already used by an active request of this session",
                ],
            );
        }
        let depth_max = self.config.depth_max;
        let depth = match msg.get_i64(tags::MARKET_DEPTH as i64) {
            Ok(Some(0)) => depth_max,
            Ok(Some(d)) if d > 0 && d as u64 <= depth_max as u64 => d as usize,
            Ok(Some(_)) | Err(_) => {
                let mut max = [0u8; 20];
                let n = {
                    let mut w = &mut max[..];
                    let _ = write!(w, "{depth_max}");
                    20 - w.len()
                };
                let value = msg.get(tags::MARKET_DEPTH as i64).unwrap_or(b"");
                return self.refuse(
                    Some(UnsupportedMarketDepth),
                    &[
                        b"MarketDepth ",
                        value,
                        b" is not supported: use 0 (full book), 1 (top of book) or up to ",
                        &max[..n],
                        b" levels",
                    ],
                );
            }
            Ok(None) => {
                return self.refuse(
                    Some(UnsupportedMarketDepth),
                    &[b"MarketDepth (264) is required"],
                )
            }
        };
        let full_refresh = match msg.get(tags::MD_UPDATE_TYPE as i64) {
            None | Some(b"1") => false,
            Some(b"0") => true,
            Some(v) => {
                return self.refuse(
                    Some(UnsupportedMdUpdateType),
                    &[
                        b"MDUpdateType ",
                        v,
                        b" is not supported: use 0 (full refresh) or 1 (incremental refresh)",
                    ],
                )
            }
        };
        match msg.get(tags::AGGREGATED_BOOK as i64) {
            None | Some(b"Y") => {}
            Some(b"N") => {
                return self.refuse(
                    Some(UnsupportedAggregatedBook),
                    &[b"AggregatedBook N is not supported: only aggregated price levels (Y) are offered over FIX"],
                )
            }
            Some(v) => {
                return self.refuse(
                    Some(UnsupportedAggregatedBook),
                    &[b"AggregatedBook ", v, b" is not supported: use Y"],
                )
            }
        }
        // Entry types: every 269 of the NoMDEntryTypes group.
        let (mut sides, mut trades, mut types) = ([false; 2], false, 0u64);
        for f in msg
            .fields()
            .iter()
            .filter(|f| f.tag == tags::MD_ENTRY_TYPE as i64)
        {
            types += 1;
            match msg.value(f) {
                b"0" => sides[0] = true,
                b"1" => sides[1] = true,
                b"2" => trades = true,
                v => {
                    return self.refuse(
                        Some(UnsupportedMdEntryType),
                        &[
                            b"MDEntryType ",
                            v,
                            b" is not supported: use 0 (bid), 1 (offer) or 2 (trade)",
                        ],
                    )
                }
            }
        }
        if types == 0 {
            return self.refuse(
                Some(UnsupportedMdEntryType),
                &[b"at least one MDEntryType (269) is required"],
            );
        }
        if msg.get_u64(tags::NO_MD_ENTRY_TYPES as i64) != Ok(Some(types)) {
            return self.refuse(
                None,
                &[b"NoMDEntryTypes (267) does not match the number of MDEntryType (269) fields"],
            );
        }
        // Symbols: every 55 of the NoRelatedSym group, all known, each once.
        self.request_instruments.clear();
        let mut symbols = 0u64;
        for f in msg.fields().iter().filter(|f| f.tag == tags::SYMBOL as i64) {
            symbols += 1;
            let symbol = msg.value(f);
            let Some(i) = self.instruments.iter().position(|s| &*s.symbol == symbol) else {
                return self.refuse(Some(UnknownSymbol), &[b"unknown symbol ", symbol]);
            };
            if !self.request_instruments.contains(&(i as u32)) {
                self.request_instruments.push(i as u32);
            }
        }
        if symbols == 0 {
            return self.refuse(
                Some(UnknownSymbol),
                &[b"at least one Symbol (55) is required"],
            );
        }
        if msg.get_u64(tags::NO_RELATED_SYM as i64) != Ok(Some(symbols)) {
            return self.refuse(
                None,
                &[b"NoRelatedSym (146) does not match the number of Symbol (55) fields"],
            );
        }
        let have = self.sessions[session].subs.len();
        let max = self.config.subscriptions_max;
        if have + self.request_instruments.len() > max {
            let mut numbers = [0u8; 64];
            let n = {
                let mut w = &mut numbers[..];
                let _ = write!(
                    w,
                    "{have} active and {} requested, at most {max}",
                    self.request_instruments.len()
                );
                64 - w.len()
            };
            return self.refuse(
                Some(InsufficientBandwidth),
                &[
                    b"too many market data subscriptions for this session: ",
                    b"",
                    &numbers[..n],
                ],
            );
        }
        for k in 0..self.request_instruments.len() {
            let instrument = self.request_instruments[k];
            let id = self.add(Sub {
                session,
                req_id: req_id.into(),
                instrument,
                depth,
                sides,
                trades,
                full_refresh,
                snapshot_only,
                sent: [
                    vec![Level::default(); if sides[0] { depth } else { 0 }].into(),
                    vec![Level::default(); if sides[1] { depth } else { 0 }].into(),
                ],
                sent_len: [0; 2],
                stale: false,
                snapshot_pending: true,
            });
            let sent = sink.queued_bytes(session) <= self.config.conflate_bytes
                && self.send_snapshot(id, sink);
            if !sent {
                // The W waits for the session's queue to drain, like a conflated update.
                self.mark_stale(id);
            } else if snapshot_only {
                self.remove(id);
            }
        }
        Ok(())
    }

    fn add(&mut self, sub: Sub) -> u32 {
        let (session, instrument) = (sub.session, sub.instrument);
        let id = match self.free.pop() {
            Some(id) => {
                self.subs[id as usize] = Some(sub);
                id
            }
            None => {
                self.subs.push(Some(sub));
                (self.subs.len() - 1) as u32
            }
        };
        self.by_instrument[instrument as usize].push(id);
        let s = &mut self.sessions[session];
        s.subs.push(id);
        s.stats.subscriptions = s.subs.len() as u64;
        self.totals.subscriptions += 1;
        id
    }

    /// SubscriptionRequestType 2: ends every subscription of the session with this MDReqID.
    /// FIX 4.4 has no MDReqRejReason for an unknown MDReqID, so that reject carries only
    /// its Text.
    fn unsubscribe(&mut self, session: usize, req_id: &[u8]) -> Result<(), Refusal> {
        let mut found = false;
        let mut k = 0;
        while k < self.sessions[session].subs.len() {
            let id = self.sessions[session].subs[k];
            if self.subs[id as usize]
                .as_ref()
                .is_some_and(|s| &*s.req_id == req_id)
            {
                self.remove(id);
                found = true;
            } else {
                k += 1;
            }
        }
        if found {
            Ok(())
        } else {
            self.refuse(
                None,
                &[
                    b"no active market data request with MDReqID ",
                    req_id,
                    b" to disable",
                ],
            )
        }
    }
}
