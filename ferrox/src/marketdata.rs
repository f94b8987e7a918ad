//! Market data in the exchange process: the `[marketdata]` configuration, the publisher's
//! thread, and `ferrox md watch`, the terminal subscriber.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrox_engine::{Engine, InstrumentSpec};
use ferrox_marketdata::client::{ClientConfig, FeedClient};
use ferrox_marketdata::feed::SessionId;
use ferrox_marketdata::publisher::{InstrumentInfo, Publisher, PublisherConfig};
use ferrox_marketdata::server::{MdServer, ServerConfig, ServerStats};
use ferrox_marketdata::subscriber::SubscriberConfig;
use ferrox_protocol::{InstrumentId, PriceTicks, QtyLots, Side};
use ferrox_sequencer::frame;
use ferrox_sequencer::ring::Consumer;
use serde::Deserialize;

/// `[marketdata]`: the feed publisher. Absent or `enabled = false`: no market data.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketdataFile {
    pub enabled: bool,
    /// Where UDP packets go: one multicast group, or unicast addresses, `host:port` each.
    pub destinations: Vec<String>,
    /// The interface multicast leaves from and is joined on.
    pub interface: Ipv4Addr,
    /// Multicast TTL: 0 keeps packets on this host, 1 on this subnet.
    pub ttl: u32,
    /// The TCP recovery service (snapshots and retransmissions).
    pub recovery: String,
    /// Levels per side in the L2 (`L`) messages.
    pub depth: usize,
    pub packet_bytes_max: usize,
    pub heartbeat_ms: u64,
    /// Messages kept for retransmission; older gaps are recovered by snapshot.
    pub retransmit_messages: usize,
    /// Bytes of replies a recovery connection may have queued before it is cut off.
    pub recovery_queue_bytes: usize,
    pub recovery_connections_max: usize,
    /// The publisher's consumer slot on the output ring; must be one no producer uses.
    pub consumer: usize,
}

impl Default for MarketdataFile {
    fn default() -> Self {
        MarketdataFile {
            enabled: true,
            destinations: vec!["239.77.0.1:40501".into()],
            interface: Ipv4Addr::LOCALHOST,
            ttl: 0,
            recovery: "127.0.0.1:9879".into(),
            depth: 10,
            packet_bytes_max: 1_400,
            heartbeat_ms: 1_000,
            retransmit_messages: 262_144,
            recovery_queue_bytes: 64 << 20,
            recovery_connections_max: 64,
            consumer: 8,
        }
    }
}

fn resolve(what: &str, addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("marketdata.{what} {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("marketdata.{what} {addr:?}: no address"))
}

impl MarketdataFile {
    /// Checks the section against the exchange's rings.
    pub fn validate(&self, producers_max: u32, output_consumers_max: usize) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.destinations.is_empty() {
            return Err("marketdata.destinations is empty".into());
        }
        for d in &self.destinations {
            resolve("destinations", d)?;
        }
        resolve("recovery", &self.recovery)?;
        if self.consumer < producers_max as usize || self.consumer >= output_consumers_max {
            return Err(format!(
                "marketdata.consumer must be an output-ring slot no producer uses: between \
                 exchange.producers_max ({producers_max}) and output_consumers_max - 1 ({})",
                output_consumers_max.saturating_sub(1)
            ));
        }
        if !(1..=255).contains(&self.depth) {
            return Err("marketdata.depth must be between 1 and 255".into());
        }
        if !(256..=65_000).contains(&self.packet_bytes_max) {
            return Err("marketdata.packet_bytes_max must be between 256 and 65000".into());
        }
        if self.heartbeat_ms == 0 || self.retransmit_messages == 0 {
            return Err("marketdata.heartbeat_ms and retransmit_messages must be positive".into());
        }
        if self.recovery_queue_bytes < 1 << 16 || self.recovery_connections_max == 0 {
            return Err(
                "marketdata.recovery_queue_bytes must be at least 65536 and recovery_connections_max positive"
                    .into(),
            );
        }
        Ok(())
    }
}

pub fn instrument_infos(specs: &[InstrumentSpec]) -> Vec<InstrumentInfo> {
    specs
        .iter()
        .map(|s| InstrumentInfo {
            symbol: s.symbol.clone(),
            price_decimals: s.price_decimals.min(18) as u8,
            qty_decimals: s.qty_decimals.min(18) as u8,
            tick_size: s.tick_size,
            lot_size: s.lot_size,
            status: s.status,
        })
        .collect()
}

/// The feed session of this start: the Unix time in seconds, ten digits, so that each start
/// of the exchange is a new session and subscribers know to take a fresh snapshot.
fn session_now() -> SessionId {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SessionId::new(&format!("{:010}", secs % 10_000_000_000)).unwrap_or(SessionId(*b"0000000000"))
}

/// Builds the publisher, seeded with the books the engine recovered (in time priority), and
/// binds its sockets. Runs before the engine thread starts, so no event can be missed.
pub fn prepare(
    md: &MarketdataFile,
    engine: &Engine,
    orders_max: usize,
) -> Result<MdServer, String> {
    let specs = engine.instruments();
    let mut publisher = Publisher::new(
        &instrument_infos(specs),
        PublisherConfig {
            depth: md.depth,
            orders_capacity: orders_max,
            levels_capacity: 256,
        },
    );
    for i in 0..specs.len() {
        let instrument = InstrumentId(i as u32);
        let Some(book) = engine.book(instrument) else {
            continue;
        };
        for (side, levels) in [(Side::Buy, &book.bids), (Side::Sell, &book.asks)] {
            for level in levels {
                for o in &level.orders {
                    publisher
                        .seed_order(instrument, o.order_id, side, o.price, o.qty_open)
                        .map_err(|e| format!("seeding the market-data books: {e}"))?;
                }
            }
        }
        if let Some(price) = book.last_trade_price {
            publisher.seed_last_trade(instrument, price);
        }
    }
    let destinations = md
        .destinations
        .iter()
        .map(|d| resolve("destinations", d))
        .collect::<Result<Vec<_>, _>>()?;
    let recovery_listen = resolve("recovery", &md.recovery)?;
    MdServer::bind(
        ServerConfig {
            session: session_now(),
            destinations,
            multicast_interface: md.interface,
            multicast_ttl: md.ttl,
            recovery_listen,
            packet_bytes_max: md.packet_bytes_max,
            heartbeat_interval: Duration::from_millis(md.heartbeat_ms),
            retransmit_messages: md.retransmit_messages,
            recovery_queue_bytes: md.recovery_queue_bytes,
            recovery_connections_max: md.recovery_connections_max,
        },
        publisher,
    )
    .map_err(|e| format!("market data: cannot bind {}: {e}", md.recovery))
}

/// The publisher's thread: output ring in, packets out; recovery when idle. It drains what the
/// engine wrote before stopping and then ends the session.
pub fn run(
    mut server: MdServer,
    mut consumer: Consumer,
    start_ts_ns: u64,
    stop: &AtomicBool,
    engine_done: &AtomicBool,
) -> Result<(), String> {
    server.start(start_ts_ns);
    let mut idle = 0u32;
    let mut bad_frames = 0u64;
    // Fewer than four CPUs: no core to spare for polling (see the idle policy below).
    let small_machine = thread::available_parallelism().map_or(true, |n| n.get() < 4);
    loop {
        let polled = consumer.poll(1024, |_, slot| match frame::decode_output(slot) {
            Ok(f) => match f.event {
                Some(e) => server.on_event(f.ts_ns, f.seq, &e),
                None => server.on_end(f.ts_ns),
            },
            Err(_) => bad_frames += 1,
        });
        let n = polled.map_err(|_| {
            "the market-data consumer was detached from the output ring".to_string()
        })?;
        let now = Instant::now();
        if n > 0 {
            idle = 0;
            server.flush(now);
            continue;
        }
        if stop.load(Ordering::Relaxed)
            && engine_done.load(Ordering::Acquire)
            && consumer.available() == 0
        {
            break;
        }
        server.idle(now);
        idle = idle.saturating_add(1);
        // On a machine with a core for this thread: spin first (an event that arrives now is
        // sent within a poll), then yield. On a machine too small for that, sleep at once:
        // between two commands at a few thousand per second the spin phase never ended, and
        // spinning or yielding here took the core the gateway, sequencer and engine needed.
        // Measured at 5,000 FIX orders/s on 2 vCPUs, five alternating runs each (BENCHMARKS
        // "The suite"): order-to-first-report p50 2.2-4.1 ms with the spin-then-yield policy,
        // 1.0-1.7 ms with this sleep. Market data then waits up to the sleep (plus timer
        // slack) longer; a 50 µs sleep was no better for the order path in two runs.
        if small_machine {
            consumer.heartbeat();
            thread::sleep(Duration::from_micros(100));
        } else if idle > 20_000 {
            consumer.heartbeat();
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    server.end_session();
    if bad_frames > 0 {
        eprintln!("ferrox: market data skipped {bad_frames} output frames that did not decode");
    }
    let c = server.publisher().counters();
    if c.mirror_errors + c.delta_mismatches + c.checkpoint_mismatches > 0 {
        eprintln!(
            "ferrox: market data self-checks failed: {c:?}; first: {}",
            server.publisher().first_error().unwrap_or("-")
        );
    }
    Ok(())
}

/// What `ferrox run` prints about the feed at start.
pub fn describe(md: &MarketdataFile, server: &MdServer) -> String {
    format!(
        "market data: session {}, feed {} (UDP), recovery {} (TCP)",
        server.session(),
        md.destinations.join(", "),
        server
            .recovery_addr()
            .map_or_else(|_| md.recovery.clone(), |a| a.to_string())
    )
}

pub fn stats_line(stats: &ServerStats) -> String {
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "md: seq {}, {} messages in {} packets, {} send errors, {} recovery requests ({} refused), {} slow consumers cut, {} checkpoints, {} self-check failures",
        g(&stats.last_seq),
        g(&stats.messages),
        g(&stats.packets),
        g(&stats.send_errors),
        g(&stats.recovery_requests),
        g(&stats.recovery_rejects),
        g(&stats.slow_consumers),
        g(&stats.checkpoints),
        g(&stats.check_failures),
    )
}

// ----- ferrox md watch --------------------------------------------------------------------

pub struct WatchOptions {
    pub symbol: String,
    pub feed: String,
    pub interface: Ipv4Addr,
    pub recovery: String,
    pub depth: usize,
    pub check: bool,
    /// Stop after this many seconds (0: run until interrupted).
    pub seconds: u64,
    /// Print a line per second instead of redrawing the screen.
    pub plain: bool,
}

fn px(ticks: PriceTicks, decimals: u8) -> String {
    let d = decimals as u32;
    if d == 0 {
        return ticks.0.to_string();
    }
    let scale = 10i64.pow(d);
    let sign = if ticks.0 < 0 { "-" } else { "" };
    let a = ticks.0.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        a / scale as u64,
        a % scale as u64,
        width = d as usize
    )
}

fn qty(lots: QtyLots, decimals: u8) -> String {
    px(PriceTicks(lots.0 as i64), decimals)
}

/// Joins the feed, recovers, keeps the book of one symbol and shows it. With `check`, verifies
/// sequence continuity and every engine checkpoint, and fails (exit status 1) on the first
/// divergence; it prints a summary at the end either way.
pub fn watch(o: &WatchOptions, stop: &AtomicBool) -> Result<bool, String> {
    let feed = resolve("feed", &o.feed)?;
    let recovery = resolve("recovery", &o.recovery)?;
    let mut client = FeedClient::join(ClientConfig {
        feed,
        interface: o.interface,
        recovery,
        subscriber: SubscriberConfig {
            depth: o.depth,
            ..SubscriberConfig::default()
        },
        recovery_timeout: Duration::from_secs(5),
    })
    .map_err(|e| format!("cannot join the feed at {feed}: {e}"))?;
    let started = Instant::now();
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut instrument: Option<InstrumentId> = None;
    let interactive = !o.plain && std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        client
            .poll(Duration::from_millis(50))
            .map_err(|e| format!("feed: {e}"))?;
        let sub = client.subscriber();
        if instrument.is_none() {
            instrument = sub.find_symbol(&o.symbol);
        }
        if o.check {
            let c = sub.counters();
            if c.checkpoints_bad + c.apply_errors + c.snapshots_bad + c.view_mismatches > 0 {
                println!("{}", summary(&client, instrument, started));
                println!(
                    "check FAILED: {}",
                    sub.first_problem().unwrap_or("a self-check failed")
                );
                return Ok(false);
            }
        }
        let done = stop.load(Ordering::Relaxed)
            || (o.seconds > 0 && started.elapsed() >= Duration::from_secs(o.seconds))
            || sub.session_ended();
        if last_draw.elapsed() >= Duration::from_millis(if interactive { 200 } else { 1000 })
            || done
        {
            last_draw = Instant::now();
            if interactive {
                print!("\x1b[2J\x1b[H");
            }
            match instrument {
                Some(i) if interactive || !o.check => println!("{}", ladder(&client, i, o.depth)),
                Some(_) => {}
                None => println!(
                    "waiting for {} in the feed directory (session {})",
                    o.symbol,
                    sub.session()
                        .map_or_else(|| "-".to_string(), |s| s.to_string())
                ),
            }
            println!("{}", summary(&client, instrument, started));
        }
        if done {
            break;
        }
    }
    let sub = client.subscriber();
    if o.check {
        let c = sub.counters();
        if instrument.is_none() {
            println!("check FAILED: {} never appeared in the feed", o.symbol);
            return Ok(false);
        }
        if c.checkpoints_ok == 0 {
            println!("check FAILED: no engine checkpoint arrived (is exchange.checkpoint_interval_ms 0?)");
            return Ok(false);
        }
        println!(
            "check passed: {} checkpoints matched the engine's book, {} gaps recovered, sequence continuous to {}",
            c.checkpoints_ok,
            c.gaps,
            sub.next_seq().saturating_sub(1)
        );
    }
    Ok(true)
}

fn ladder(client: &FeedClient, instrument: InstrumentId, depth: usize) -> String {
    use std::fmt::Write;
    let sub = client.subscriber();
    let books = sub.books();
    let view = sub.instrument(instrument);
    let dir = view.and_then(|v| v.directory);
    let (pd, qd) = dir.map_or((0, 0), |d| (d.price_decimals, d.qty_decimals));
    let symbol = dir.map_or_else(String::new, |d| d.symbol_str().to_string());
    let mut out = String::new();
    let status = view
        .and_then(|v| v.status)
        .map_or("?".to_string(), |s| format!("{s:?}").to_lowercase());
    let _ = writeln!(out, "{symbol}  ({status})");
    let mut asks = vec![
        ferrox_marketdata::book::LevelView {
            price: PriceTicks(0),
            qty_total: QtyLots(0),
            order_count: 0
        };
        depth
    ];
    let mut bids = asks.clone();
    let na = books.depth(instrument, Side::Sell, &mut asks);
    let nb = books.depth(instrument, Side::Buy, &mut bids);
    let _ = writeln!(
        out,
        "{:>8} {:>14} {:>12} | {:<12} {:<14} {:<8}",
        "orders", "bid qty", "bid", "ask", "ask qty", "orders"
    );
    for k in 0..depth.max(1) {
        let b = (k < nb).then(|| bids[k]);
        let a = (k < na).then(|| asks[k]);
        if b.is_none() && a.is_none() {
            break;
        }
        let _ = writeln!(
            out,
            "{:>8} {:>14} {:>12} | {:<12} {:<14} {:<8}",
            b.map_or(String::new(), |l| l.order_count.to_string()),
            b.map_or(String::new(), |l| qty(l.qty_total, qd)),
            b.map_or(String::new(), |l| px(l.price, pd)),
            a.map_or(String::new(), |l| px(l.price, pd)),
            a.map_or(String::new(), |l| qty(l.qty_total, qd)),
            a.map_or(String::new(), |l| l.order_count.to_string()),
        );
    }
    if let Some(v) = view {
        let s = &v.stats;
        let f = |p: Option<PriceTicks>| p.map_or("-".to_string(), |p| px(p, pd));
        let _ = writeln!(
            out,
            "open {} high {} low {} last {} volume {} trades {} vwap {}",
            f(s.open),
            f(s.high),
            f(s.low),
            f(s.last),
            qty(s.volume, qd),
            s.trade_count,
            s.vwap().map_or("-".to_string(), |v| format!(
                "{:.*}",
                pd as usize + 2,
                v / 10f64.powi(pd as i32)
            ))
        );
    }
    let trades: Vec<_> = sub
        .trades()
        .iter()
        .rev()
        .filter(|t| t.instrument == instrument)
        .take(8)
        .collect();
    if !trades.is_empty() {
        let _ = writeln!(out, "last trades:");
        for t in trades {
            let _ = writeln!(
                out,
                "  #{:<8} {} {} @ {} (aggressor {})",
                t.trade_id.0,
                qty(t.qty, qd),
                symbol,
                px(t.price, pd),
                if t.aggressor_side == Side::Buy {
                    "buy"
                } else {
                    "sell"
                }
            );
        }
    }
    out
}

fn summary(client: &FeedClient, instrument: Option<InstrumentId>, started: Instant) -> String {
    let sub = client.subscriber();
    let c = sub.counters();
    let orders = instrument.map_or(0, |i| sub.books().order_count(i));
    let mut line = format!(
        "[{:>5.1}s] session {} next seq {} | {} orders | {} gaps ({} retransmitted, {} snapshots) {} duplicates | checkpoints {} ok {} bad",
        started.elapsed().as_secs_f64(),
        sub.session().map_or_else(|| "-".to_string(), |s| s.to_string()),
        sub.next_seq(),
        orders,
        c.gaps,
        c.retransmitted,
        c.snapshots,
        c.duplicates,
        c.checkpoints_ok,
        c.checkpoints_bad,
    );
    if let Some(p) = client.last_problem() {
        line.push_str(&format!(" | {p}"));
    }
    line
}

/// The feed and recovery addresses of a configuration file's `[marketdata]`, for `md watch`.
pub fn addresses(
    config: Option<&Path>,
    default_config: &str,
) -> Result<(String, Ipv4Addr, String), String> {
    let text = match config {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read config {}: {e}", p.display()))?,
        None => default_config.to_string(),
    };
    let parsed: toml::Value =
        toml::from_str(&text).map_err(|e| format!("config is not valid TOML: {e}"))?;
    let md: MarketdataFile = parsed
        .get("marketdata")
        .cloned()
        .ok_or_else(|| "the configuration has no [marketdata] section".to_string())?
        .try_into()
        .map_err(|e: toml::de::Error| format!("[marketdata]: {e}"))?;
    let feed = md
        .destinations
        .first()
        .cloned()
        .ok_or_else(|| "marketdata.destinations is empty".to_string())?;
    Ok((feed, md.interface, md.recovery))
}
