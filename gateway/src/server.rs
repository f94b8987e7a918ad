//! The gateway's event loop: sockets, timers and the exchange rings, on one thread.
//!
//! Everything protocol-shaped lives in pure modules ([`crate::session`], [`crate::app`],
//! [`crate::orders`]); this module only moves bytes. One [`GatewayAgent`] owns a mio poll, a
//! listener, a bounded table of connections and every session, and its `do_work` runs one turn
//! of the duty cycle: accept, read, parse, hand messages to the session layer, poll the
//! exchange's output ring, run timers and write. Nothing in it blocks.
//!
//! Bounds: at most `connections_max` sockets (one more is accepted and closed at once); each
//! has a fixed receive buffer; each session has a bounded outbox; a message longer than
//! `msg_bytes_max` is garbled input and dropped. A connection that does not log on within the
//! logon deadline is closed, so idle or half-open sockets cannot pile up.

use crate::app::{self, AppContext, SlotSink};
use crate::config::{GatewayFile, SessionFile};
use crate::fix::{self, Framing, Parser};
use crate::md::{MarketData, MdConfig, MdSessionStats};
use crate::orders::{OrderManager, OrderManagerConfig, SessionId};
use crate::risk::RiskConfig;
use crate::session::{Now, Outbox, Session, SessionSettings, Verdict};
use crate::store::{SessionStore, StoreOptions};
use crate::throttle::Throttle;
use crate::venue::Venue;
use ferrox_engine::InstrumentSpec;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::Path;
use std::time::Duration;

const LISTENER: Token = Token(usize::MAX - 1);
const NS_PER_MS: u64 = 1_000_000;
/// How long a closing connection may take to drain what the peer still sends.
const LINGER_NS: u64 = 2_000 * NS_PER_MS;
const TIMER_PERIOD_NS: u64 = 20 * NS_PER_MS;

/// Operator commands from the console, delivered over a bounded channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operator {
    /// Cancel every order of the account and block new ones until released.
    KillSwitch { account: u32, on: bool },
    /// Log a session out (by its CompID).
    Logout { comp_id: String },
}

/// Counters for monitoring and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct GatewayStats {
    pub accepted: u64,
    pub refused_full: u64,
    pub logons: u64,
    pub logons_refused: u64,
    pub garbled: u64,
    pub disconnects: u64,
    pub app_messages: u64,
    pub reports: u64,
    /// Market data: conflated updates sent to sessions that had fallen behind, and trades
    /// not sent to them meanwhile (per session: [`GatewayAgent::md_session_stats`]).
    pub md_conflations: u64,
    pub md_trades_dropped: u64,
}

struct Conn {
    stream: TcpStream,
    peer: Option<SocketAddr>,
    rx: Box<[u8]>,
    rx_start: usize,
    rx_end: usize,
    session: Option<usize>,
    opened_mono_ns: u64,
    /// Set once we decided to close: write what is queued, shut down our side, then read and
    /// discard until the peer closes or the deadline passes (closing with unread data would
    /// reset the connection and could destroy our last message in flight).
    closing_deadline_ns: Option<u64>,
    write_interest: bool,
}

pub(crate) struct SessionSlot {
    pub session: Session,
    pub file: SessionFile,
    pub id: SessionId,
    pub throttle: Throttle,
    pub outbox: Outbox,
    conn: Option<usize>,
    dirty: bool,
    /// Logged on since the gateway started: only such stores need a sync at shutdown.
    used: bool,
}

/// The gateway's agent: call `do_work` in a loop.
pub struct GatewayAgent<V: Venue> {
    poll: Poll,
    events: Events,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    sessions: Vec<SessionSlot>,
    by_comp_id: HashMap<Vec<u8>, usize>,
    dirty: Vec<usize>,
    parser: Parser,
    manager: OrderManager,
    md: MarketData,
    venue: V,
    instruments: Vec<InstrumentSpec>,
    config: GatewayFile,
    last_timer_ns: u64,
    pub stats: GatewayStats,
    log: Box<dyn FnMut(&str) + Send>,
}

fn now(mono_origin: &std::time::Instant) -> Now {
    let unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mono_ns = u64::try_from(mono_origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Now { unix_ns, mono_ns }
}

/// Days since the Unix epoch: the trading day a session store belongs to.
fn trading_day(unix_ns: u64) -> u32 {
    u32::try_from(unix_ns / (86_400 * 1_000_000_000)).unwrap_or(u32::MAX)
}

impl<V: Venue> GatewayAgent<V> {
    /// Binds the listener and opens every session's store under `store_dir`.
    pub fn new(
        config: GatewayFile,
        store_dir: &Path,
        instruments: &[InstrumentSpec],
        venue: V,
        log: Box<dyn FnMut(&str) + Send>,
    ) -> Result<GatewayAgent<V>, String> {
        let files = config.expand_sessions()?;
        std::fs::create_dir_all(store_dir).map_err(|e| {
            format!(
                "cannot create gateway store directory {}: {e}",
                store_dir.display()
            )
        })?;
        let today = trading_day(now(&std::time::Instant::now()).unix_ns);
        let mut sessions = Vec::with_capacity(files.len());
        let mut by_comp_id = HashMap::with_capacity(files.len());
        for (i, file) in files.into_iter().enumerate() {
            let name = format!("{}-{}", config.comp_id, file.sender);
            let mut store = SessionStore::open_with_options(
                store_dir,
                &name,
                &StoreOptions {
                    capacity_bytes: file.store_bytes_max,
                    cl_ord_ids_max: file.cl_ord_ids_max,
                },
            )
            .map_err(|e| format!("gateway session {}: {e}", file.sender))?;
            if store.trading_day() != today {
                // A new trading day starts with fresh sequence numbers and ClOrdIDs, as FIX
                // venues reset their sessions daily.
                store
                    .reset_for_day(today)
                    .map_err(|e| format!("gateway session {}: {e}", file.sender))?;
            }
            let mut settings = SessionSettings::new(&config.comp_id, &file.sender);
            settings.password = file.password.clone();
            settings.reset_on_logon = file.reset_on_logon;
            by_comp_id.insert(file.sender.as_bytes().to_vec(), i);
            sessions.push(SessionSlot {
                session: Session::new(settings, store),
                throttle: Throttle::new(
                    file.throttle_per_s,
                    file.throttle_burst,
                    file.throttle_logout_factor,
                ),
                id: SessionId(i as u16),
                file,
                outbox: Outbox::new(config.send_buffer_bytes),
                conn: None,
                dirty: false,
                used: false,
            });
        }
        let risk = RiskConfig::new(
            &config.accounts,
            config.default_limits.as_ref(),
            instruments,
        )
        .map_err(|e| format!("gateway risk limits: {e}"))?;
        let manager = OrderManager::new(
            OrderManagerConfig {
                orders_max: config.orders_max,
                pending_max: config.pending_max,
                sessions_max: sessions.len().max(1),
            },
            instruments,
            risk,
        );
        let mut manager = manager;
        let mut log = log;
        let (restored, skipped) = app::restore_orders(&sessions, &mut manager, instruments);
        if restored + skipped > 0 {
            log(&format!(
                "gateway: {restored} live orders restored from the session stores{}",
                if skipped > 0 {
                    format!(", {skipped} did not fit the order table")
                } else {
                    String::new()
                }
            ));
        }
        let poll = Poll::new().map_err(|e| format!("cannot create the gateway poller: {e}"))?;
        let mut listener = TcpListener::bind(config.listen).map_err(|e| {
            if e.kind() == ErrorKind::AddrInUse {
                format!(
                    "gateway cannot listen on {}: the port is in use (another exchange running? set [gateway] listen)",
                    config.listen
                )
            } else {
                format!("gateway cannot listen on {}: {e}", config.listen)
            }
        })?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("cannot register the gateway listener: {e}"))?;
        let connections_max = config.connections_max;
        let session_count = sessions.len();
        let md = MarketData::new(
            MdConfig {
                depth_max: config.md_depth_max,
                subscriptions_max: config.md_subscriptions_max,
                conflate_bytes: config.md_conflate_bytes,
            },
            instruments,
            session_count,
        );
        Ok(GatewayAgent {
            poll,
            events: Events::with_capacity(1024),
            listener,
            conns: (0..connections_max).map(|_| None).collect(),
            free: (0..connections_max).rev().collect(),
            sessions,
            by_comp_id,
            dirty: Vec::with_capacity(session_count),
            parser: Parser::new(512),
            manager,
            md,
            venue,
            instruments: instruments.to_vec(),
            config,
            last_timer_ns: 0,
            stats: GatewayStats::default(),
            log,
        })
    }

    /// The address the listener is bound to (useful with port 0 in tests).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn manager(&self) -> &OrderManager {
        &self.manager
    }

    /// The market data books and subscriptions (read-only).
    pub fn market_data(&self) -> &MarketData {
        &self.md
    }

    /// For the exchange's start-up: see [`crate::md::DepthBooks::seed_level`].
    pub fn md_seed_level(
        &mut self,
        instrument: u32,
        side: ferrox_engine::Side,
        price: i64,
        qty: u64,
        count: u32,
    ) {
        self.md.seed_level(instrument, side, price, qty, count);
    }

    /// Market data counters of the session with CompID `comp_id`.
    pub fn md_session_stats(&self, comp_id: &str) -> Option<MdSessionStats> {
        let &i = self.by_comp_id.get(comp_id.as_bytes())?;
        Some(self.md.session_stats(i))
    }

    /// One turn of the duty cycle; returns how much work it did. `wait` lets the poller sleep
    /// up to that long when nothing is ready (the caller passes zero while busy).
    pub fn do_work(&mut self, clock: &std::time::Instant, wait: Duration) -> usize {
        let mut work = 0;
        let _ = self.poll.poll(&mut self.events, Some(wait));
        let t = now(clock);
        let mut ready: [(Token, bool, bool); 1024] = [(Token(0), false, false); 1024];
        let mut n = 0;
        for ev in self.events.iter() {
            if n < ready.len() {
                ready[n] = (
                    ev.token(),
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    ev.is_writable(),
                );
                n += 1;
            }
        }
        for &(token, readable, writable) in &ready[..n] {
            work += 1;
            if token == LISTENER {
                self.accept(t);
                continue;
            }
            let c = token.0;
            if readable {
                self.read_conn(c, t);
            }
            if writable {
                if let Some(s) = self
                    .conns
                    .get(c)
                    .and_then(|x| x.as_ref())
                    .and_then(|x| x.session)
                {
                    self.mark_dirty(s);
                }
                self.flush_conn_only(c);
            }
        }

        // Events from the exchange, for our orders and for the band reference prices.
        work += self.poll_venue(t);

        if t.mono_ns.saturating_sub(self.last_timer_ns) >= TIMER_PERIOD_NS {
            self.last_timer_ns = t.mono_ns;
            self.timers(t);
            self.venue.connected();
        }
        if self.md.has_stale() {
            // Sessions whose sockets drained since the last END get their conflated updates.
            let mut sink = SlotSink {
                sessions: &mut self.sessions,
                dirty: &mut self.dirty,
                t,
            };
            self.md.flush_stale(&mut sink);
            self.note_md_stats();
        }
        self.flush_dirty(t);
        work
    }

    fn note_md_stats(&mut self) {
        let md = self.md.totals();
        self.stats.md_conflations = md.conflations;
        self.stats.md_trades_dropped = md.trades_dropped;
    }

    /// Clean stop: every logged-on session gets a Logout, queued bytes are written, and the
    /// stores are synced so that sequence numbers survive even a power cut after a clean stop.
    pub fn shutdown(&mut self, clock: &std::time::Instant) {
        let t = now(clock);
        for i in 0..self.sessions.len() {
            let slot = &mut self.sessions[i];
            if slot.conn.is_some() {
                slot.session
                    .initiate_logout(b"The exchange is shutting down", t, &mut slot.outbox);
                self.mark_dirty(i);
            }
        }
        self.flush_dirty(t);
        for c in 0..self.conns.len() {
            if self.conns[c].is_some() {
                self.close(c, false, t);
                self.drop_conn(c);
            }
        }
        let mut failed = 0;
        let mut first = None;
        for slot in self.sessions.iter().filter(|s| s.used) {
            if let Err(e) = slot.session.store().sync() {
                failed += 1;
                first.get_or_insert_with(|| format!("{}: {e}", slot.file.sender));
            }
        }
        if let Some(first) = first {
            let text = format!("gateway: {failed} session stores not synced; first: {first}");
            (self.log)(&text);
        }
    }

    /// Applies an operator command.
    pub fn operator(&mut self, op: Operator) {
        let clock = std::time::Instant::now();
        let t = now(&clock);
        match op {
            Operator::KillSwitch { account, on } => {
                let mut ctx = self.app_context_none();
                app::kill_switch(&mut ctx, account, on, t);
                let msg = format!(
                    "gateway: kill switch for account {account} {}",
                    if on {
                        "ON: orders cancelled, new orders blocked"
                    } else {
                        "OFF"
                    }
                );
                (self.log)(&msg);
            }
            Operator::Logout { comp_id } => {
                if let Some(&i) = self.by_comp_id.get(comp_id.as_bytes()) {
                    let slot = &mut self.sessions[i];
                    slot.session.initiate_logout(
                        b"Logged out by the operator",
                        t,
                        &mut slot.outbox,
                    );
                    self.mark_dirty(i);
                }
            }
        }
        self.flush_dirty(t);
    }

    fn app_context_none(&mut self) -> AppContext<'_> {
        AppContext {
            sessions: &mut self.sessions,
            manager: &mut self.manager,
            venue: &mut self.venue,
            instruments: &self.instruments,
            dirty: &mut self.dirty,
            md: &mut self.md,
        }
    }

    fn mark_dirty(&mut self, s: usize) {
        mark_dirty(&mut self.sessions, &mut self.dirty, s);
    }

    fn accept(&mut self, t: Now) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let Some(c) = self.free.pop() else {
                        // Full: the socket closes when dropped; the client sees a clean close.
                        self.stats.refused_full += 1;
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(c), Interest::READABLE)
                        .is_err()
                    {
                        self.free.push(c);
                        continue;
                    }
                    self.stats.accepted += 1;
                    self.conns[c] = Some(Conn {
                        stream,
                        peer: Some(peer),
                        rx: vec![0u8; self.config.recv_buffer_bytes].into_boxed_slice(),
                        rx_start: 0,
                        rx_end: 0,
                        session: None,
                        opened_mono_ns: t.mono_ns,
                        closing_deadline_ns: None,
                        write_interest: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Out of file descriptors or similar: try again on the next readiness event.
                Err(_) => return,
            }
        }
    }

    fn read_conn(&mut self, c: usize, t: Now) {
        loop {
            let Some(conn) = self.conns.get_mut(c).and_then(|x| x.as_mut()) else {
                return;
            };
            if conn.closing_deadline_ns.is_some() {
                // Draining: discard until EOF.
                let mut sink = [0u8; 4096];
                match conn.stream.read(&mut sink) {
                    Ok(0) => return self.drop_conn(c),
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return self.drop_conn(c),
                }
            }
            if conn.rx_end == conn.rx.len() {
                if conn.rx_start > 0 {
                    conn.rx.copy_within(conn.rx_start..conn.rx_end, 0);
                    conn.rx_end -= conn.rx_start;
                    conn.rx_start = 0;
                } else {
                    // A full buffer without a complete message cannot happen while the buffer
                    // holds at least msg_bytes_max (the framer calls longer input garbled), so
                    // this is a defensive cut-off.
                    return self.close(c, true, t);
                }
            }
            let end = conn.rx_end;
            match conn.stream.read(&mut conn.rx[end..]) {
                Ok(0) => return self.close(c, true, t),
                Ok(n) => {
                    conn.rx_end += n;
                    if !self.process_rx(c, t) {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.close(c, true, t),
            }
        }
    }

    /// Frames and handles every complete message in the receive buffer. Returns false if the
    /// connection was closed.
    fn process_rx(&mut self, c: usize, t: Now) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(c).and_then(|x| x.as_mut()) else {
                return false;
            };
            if conn.closing_deadline_ns.is_some() {
                conn.rx_start = conn.rx_end;
                return true;
            }
            let buf = &conn.rx[conn.rx_start..conn.rx_end];
            if buf.is_empty() {
                conn.rx_start = 0;
                conn.rx_end = 0;
                return true;
            }
            match fix::frame(buf, self.config.msg_bytes_max) {
                Framing::Incomplete => {
                    if conn.rx_start > 0 {
                        conn.rx.copy_within(conn.rx_start..conn.rx_end, 0);
                        conn.rx_end -= conn.rx_start;
                        conn.rx_start = 0;
                    }
                    return true;
                }
                Framing::Garbled { skip, .. } => {
                    self.stats.garbled += 1;
                    conn.rx_start += skip.max(1).min(buf.len());
                    if conn.session.is_none() {
                        // Before logon there is no session to protect: garbage means close.
                        self.close(c, true, t);
                        return false;
                    }
                }
                Framing::Message { len } => {
                    let start = conn.rx_start;
                    conn.rx_start += len;
                    let session = conn.session;
                    let raw = &conn.rx[start..start + len];
                    let Ok(msg) = self.parser.parse(raw) else {
                        // Garbled messages are dropped without a reply, as FIX requires.
                        self.stats.garbled += 1;
                        if session.is_none() {
                            self.close(c, true, t);
                            return false;
                        }
                        continue;
                    };
                    match session {
                        None => {
                            // The first message must be a Logon for a configured session.
                            let idx = msg
                                .get(fix::tags::SENDER_COMP_ID as i64)
                                .and_then(|s| self.by_comp_id.get(s))
                                .copied();
                            let result = match idx {
                                Some(i) => {
                                    let slot = &mut self.sessions[i];
                                    slot.outbox.clear();
                                    slot.session.on_logon(&msg, t, &mut slot.outbox).map(|()| i)
                                }
                                None => Err(crate::session::LogonRefused::UnknownSession),
                            };
                            match result {
                                Ok(i) => {
                                    self.stats.logons += 1;
                                    // A new connection starts without subscriptions.
                                    self.md.drop_session(i);
                                    conn.session = Some(i);
                                    self.sessions[i].conn = Some(c);
                                    self.sessions[i].used = true;
                                    let peer = conn.peer;
                                    mark_dirty(&mut self.sessions, &mut self.dirty, i);
                                    let text = format!(
                                        "gateway: {} logged on from {}",
                                        self.sessions[i].file.sender,
                                        peer.map_or_else(|| "?".to_string(), |p| p.to_string())
                                    );
                                    (self.log)(&text);
                                }
                                Err(why) => {
                                    self.stats.logons_refused += 1;
                                    let text = format!(
                                        "gateway: logon refused from {}: {why}",
                                        conn.peer
                                            .map_or_else(|| "?".to_string(), |p| p.to_string())
                                    );
                                    (self.log)(&text);
                                    self.close(c, true, t);
                                    return false;
                                }
                            }
                        }
                        Some(i) => {
                            let slot = &mut self.sessions[i];
                            let verdict = slot.session.on_message(&msg, t, &mut slot.outbox);
                            mark_dirty(&mut self.sessions, &mut self.dirty, i);
                            match verdict {
                                Verdict::Done => {}
                                Verdict::Deliver => {
                                    self.stats.app_messages += 1;
                                    let mut ctx = AppContext {
                                        sessions: &mut self.sessions,
                                        manager: &mut self.manager,
                                        venue: &mut self.venue,
                                        instruments: &self.instruments,
                                        dirty: &mut self.dirty,
                                        md: &mut self.md,
                                    };
                                    app::on_message(&mut ctx, i, &msg, t);
                                }
                                Verdict::Disconnect { involuntary } => {
                                    self.close(c, involuntary, t);
                                    return false;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn poll_venue(&mut self, t: Now) -> usize {
        let mine = self.venue.producer();
        let manager = &mut self.manager;
        let md = &mut self.md;
        let sessions = &mut self.sessions;
        let dirty = &mut self.dirty;
        let instruments = &self.instruments;
        let mut reports = 0u64;
        let n = self.venue.poll(4096, &mut |frame| {
            manager.on_output(
                frame.origin.producer == mine,
                frame.origin.producer_ref,
                frame.seq,
                // TransactTime is the exchange's time of the command (the sequencer's stamp),
                // the same on every report it caused, not when this gateway got to it.
                if frame.ts_ns > 0 {
                    frame.ts_ns
                } else {
                    t.unix_ns
                },
                frame.event_index,
                frame.event.as_ref(),
                &mut |report| {
                    reports += 1;
                    app::send_report(sessions, dirty, instruments, &report, t);
                },
            );
            // Every frame, whoever's command it closes: market data is for everyone. The
            // reports go first, so that a client sees its fill before the book it changed.
            let mut sink = SlotSink { sessions, dirty, t };
            md.on_output(frame.event.as_ref(), &mut sink);
        });
        self.stats.reports += reports;
        if n > 0 {
            self.note_md_stats();
        }
        n
    }

    fn timers(&mut self, t: Now) {
        for c in 0..self.conns.len() {
            let Some(conn) = self.conns[c].as_ref() else {
                continue;
            };
            if let Some(deadline) = conn.closing_deadline_ns {
                if t.mono_ns >= deadline {
                    self.drop_conn(c);
                }
                continue;
            }
            match conn.session {
                None => {
                    let deadline = conn.opened_mono_ns + self.config.logon_timeout_ms * NS_PER_MS;
                    if t.mono_ns >= deadline {
                        (self.log)("gateway: connection closed: no Logon within the deadline");
                        self.close(c, true, t);
                    }
                }
                Some(i) => {
                    let slot = &mut self.sessions[i];
                    let verdict = slot.session.on_timer(t, &mut slot.outbox);
                    if !slot.outbox.is_empty() {
                        self.mark_dirty(i);
                    }
                    if let Verdict::Disconnect { involuntary } = verdict {
                        let text = format!("gateway: {} timed out", self.sessions[i].file.sender);
                        (self.log)(&text);
                        self.close(c, involuntary, t);
                    }
                }
            }
        }
    }

    /// Starts closing connection `c`: its session (if any) is released at once, its queued
    /// bytes are written, then our side is shut down and the socket drained.
    fn close(&mut self, c: usize, involuntary: bool, t: Now) {
        let Some(conn) = self.conns.get_mut(c).and_then(|x| x.as_mut()) else {
            return;
        };
        if conn.closing_deadline_ns.is_some() {
            return;
        }
        conn.closing_deadline_ns = Some(t.mono_ns + LINGER_NS);
        if let Some(i) = conn.session {
            // Write whatever the session queued last (a Logout, a Reject) before shutting down.
            let slot = &mut self.sessions[i];
            write_some(&mut conn.stream, &mut slot.outbox);
            slot.outbox.clear();
            slot.session.on_disconnect();
            slot.conn = None;
            // Market data subscriptions live as long as the connection.
            self.md.drop_session(i);
            self.stats.disconnects += 1;
            let text = format!(
                "gateway: {} disconnected{}",
                slot.file.sender,
                if involuntary { " (involuntary)" } else { "" }
            );
            (self.log)(&text);
            if involuntary && slot.file.cancel_on_disconnect {
                let mut ctx = AppContext {
                    sessions: &mut self.sessions,
                    manager: &mut self.manager,
                    venue: &mut self.venue,
                    instruments: &self.instruments,
                    dirty: &mut self.dirty,
                    md: &mut self.md,
                };
                app::cancel_on_disconnect(&mut ctx, i, t);
            }
        }
        if let Some(conn) = self.conns.get_mut(c).and_then(|x| x.as_mut()) {
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
    }

    fn drop_conn(&mut self, c: usize) {
        if let Some(mut conn) = self.conns.get_mut(c).and_then(|x| x.take()) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if let Some(i) = conn.session {
                let slot = &mut self.sessions[i];
                if slot.conn == Some(c) {
                    slot.session.on_disconnect();
                    slot.conn = None;
                    self.md.drop_session(i);
                }
            }
            self.free.push(c);
        }
    }

    fn flush_conn_only(&mut self, c: usize) {
        let Some(conn) = self.conns.get_mut(c).and_then(|x| x.as_mut()) else {
            return;
        };
        if let Some(i) = conn.session {
            let slot = &mut self.sessions[i];
            write_some(&mut conn.stream, &mut slot.outbox);
        }
    }

    fn flush_dirty(&mut self, t: Now) {
        while let Some(i) = self.dirty.pop() {
            let slot = &mut self.sessions[i];
            slot.dirty = false;
            let Some(c) = slot.conn else {
                // Not connected: the messages are in the store and will be resent.
                slot.outbox.clear();
                continue;
            };
            if slot.outbox.overflowed {
                let text = format!(
                    "gateway: {} is not reading; disconnecting (it recovers by ResendRequest)",
                    slot.file.sender
                );
                (self.log)(&text);
                slot.outbox.clear();
                self.close(c, true, t);
                continue;
            }
            let Some(conn) = self.conns.get_mut(c).and_then(|x| x.as_mut()) else {
                continue;
            };
            if !write_some(&mut conn.stream, &mut slot.outbox) {
                self.close(c, true, t);
                continue;
            }
            let want_write = !slot.outbox.is_empty();
            if want_write != conn.write_interest {
                let interest = if want_write {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let _ = self
                    .poll
                    .registry()
                    .reregister(&mut conn.stream, Token(c), interest);
                conn.write_interest = want_write;
            }
        }
    }
}

/// Queues session `s` for a flush at the end of the turn.
pub(crate) fn mark_dirty(sessions: &mut [SessionSlot], dirty: &mut Vec<usize>, s: usize) {
    let slot = &mut sessions[s];
    if !slot.dirty {
        slot.dirty = true;
        dirty.push(s);
    }
}

/// Writes as much of `outbox` as the socket takes; false on a broken connection.
fn write_some(stream: &mut TcpStream, outbox: &mut Outbox) -> bool {
    while !outbox.is_empty() {
        match stream.write(&outbox.bytes) {
            Ok(0) => return false,
            Ok(n) => outbox.consume(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    true
}
