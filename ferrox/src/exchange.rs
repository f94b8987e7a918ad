//! The running exchange: configuration, recovery, threads, pinning, signals, shutdown.
//!
//! Threads (one process, or split: see `ferrox engine` and the producer side in `load.rs`):
//!
//! ```text
//! producers ──input rings──► sequencer ──engine ring──► engine (pinned) ──output ring──► consumers
//!                              │ journal (fdatasync)        │ snapshot bytes
//!                              ▼                            ▼
//!                          data/journal              snapshot writer ──► data/snapshots
//! ```

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use ferrox_engine::config::ConfigFile;
use ferrox_engine::config::{InstrumentFile, Limits};
use ferrox_engine::EngineConfig;
use ferrox_gateway::config::GatewayFile;
use ferrox_gateway::server::{GatewayAgent, Operator};
use ferrox_gateway::venue::{RingVenue, Venue};
use ferrox_marketdata::server::ServerStats;
use ferrox_sequencer::agents::{
    engine_ring_path, engine_ring_spec, input_ring_spec, output_ring_path, output_ring_spec,
    Durability, EngineAgent, SequencerAgent, SequencerStats,
};
use ferrox_sequencer::journal::{JournalError, JournalOptions};
use ferrox_sequencer::recovery::{self, RecoveryError};
use ferrox_sequencer::ring::{Consumer, Producer, Start, WaitStrategy};
use serde::Deserialize;

use crate::marketdata::{self, MarketdataFile};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The configuration file: the engine's sections plus `[exchange]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeFile {
    #[serde(default)]
    pub limits: Limits,
    pub instruments: Vec<InstrumentFile>,
    #[serde(default)]
    pub exchange: ExchangeSection,
    /// The FIX gateway; absent means no gateway.
    #[serde(default)]
    pub gateway: Option<GatewayFile>,
    /// The market-data publisher; absent means no market data.
    #[serde(default)]
    pub marketdata: Option<MarketdataFile>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeSection {
    /// Journal and snapshots live here (created if missing).
    pub data_dir: PathBuf,
    /// Ring files live here: `/dev/shm` keeps them in memory.
    pub ring_dir: PathBuf,
    /// Prefix of the ring files, so that several exchanges can share `ring_dir`.
    pub name: String,
    /// "sync" or "async"; see the README.
    pub durability: String,
    /// In async mode, the journal is synced at least this often.
    pub async_sync_interval_ms: u64,
    pub segment_bytes: u64,
    /// A snapshot every this many commands (0: only at shutdown).
    pub snapshot_every: u64,
    /// Input rings, one per producer (0 is the console).
    pub producers_max: u32,
    pub input_ring_slots: usize,
    pub engine_ring_slots: usize,
    pub output_ring_slots: usize,
    /// Consumer slots of the output ring (0 is the console).
    pub output_consumers_max: usize,
    /// Pin the engine thread to this core; default: the last core, if there are at least two.
    pub engine_core: Option<usize>,
    /// Each instrument's book fingerprint is taken once per this interval (0: never), so that
    /// market-data subscribers can check their books against the engine's.
    pub checkpoint_interval_ms: u64,
}

impl Default for ExchangeSection {
    fn default() -> Self {
        ExchangeSection {
            data_dir: PathBuf::from("ferrox-data"),
            ring_dir: PathBuf::from("/dev/shm"),
            name: "ferrox".into(),
            durability: "async".into(),
            async_sync_interval_ms: 50,
            segment_bytes: 256 << 20,
            snapshot_every: 1_000_000,
            producers_max: 8,
            input_ring_slots: 4096,
            engine_ring_slots: 65536,
            output_ring_slots: 262_144,
            // The console, the gateway and load producers use slots 0-7 (their producer
            // numbers); market data takes 8.
            output_consumers_max: 12,
            engine_core: None,
            checkpoint_interval_ms: 1_000,
        }
    }
}

#[derive(Clone)]
pub struct ExchangeConfig {
    pub engine: EngineConfig,
    pub exchange: ExchangeSection,
    pub durability: Durability,
    pub gateway: Option<GatewayFile>,
    pub marketdata: Option<MarketdataFile>,
}

pub fn parse_config(text: &str, name: &str) -> Result<ExchangeConfig, String> {
    let file: ExchangeFile =
        toml::from_str(text).map_err(|e| format!("{name}: not a valid configuration: {e}"))?;
    let engine = ConfigFile {
        limits: file.limits,
        instruments: file.instruments,
    }
    .engine_config()
    .map_err(|e| format!("{name}: {e}"))?;
    let x = file.exchange;
    if let Some(g) = &file.gateway {
        g.expand_sessions().map_err(|e| format!("{name}: {e}"))?;
        if g.producer == 0
            || g.producer >= x.producers_max
            || g.producer as usize >= x.output_consumers_max
        {
            return Err(format!(
                "{name}: gateway.producer must be between 1 and producers_max - 1 (0 is the console)"
            ));
        }
    }
    let durability = match x.durability.as_str() {
        "sync" => Durability::Sync,
        "async" => Durability::Async {
            sync_interval: Duration::from_millis(x.async_sync_interval_ms.max(1)),
        },
        other => {
            return Err(format!(
                "{name}: exchange.durability must be \"sync\" or \"async\", not {other:?}"
            ))
        }
    };
    if x.producers_max == 0 || x.output_consumers_max == 0 {
        return Err(format!(
            "{name}: exchange.producers_max and output_consumers_max must be positive"
        ));
    }
    for (what, slots) in [
        ("input_ring_slots", x.input_ring_slots),
        ("engine_ring_slots", x.engine_ring_slots),
        ("output_ring_slots", x.output_ring_slots),
    ] {
        if slots < 2 || !slots.is_power_of_two() {
            return Err(format!(
                "{name}: exchange.{what} must be a power of two, at least 2"
            ));
        }
    }
    if let Some(md) = &file.marketdata {
        md.validate(x.producers_max, x.output_consumers_max)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(ExchangeConfig {
        engine,
        exchange: x,
        durability,
        gateway: file.gateway,
        marketdata: file.marketdata,
    })
}

/// Set by SIGTERM / SIGINT.
pub fn install_signal_flag() -> Result<Arc<AtomicBool>, String> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    Ok(flag)
}

/// What a running exchange reports when it stops.
pub struct Stopped {
    pub last_seq: u64,
    pub state_hash: u64,
    pub snapshot: Option<PathBuf>,
}

/// Handles to a running exchange.
pub struct Running {
    /// Counters of the sequencer, for monitoring.
    pub stats: Arc<SequencerStats>,
    pub stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<Result<(), String>>>,
    engine_thread: Option<thread::JoinHandle<Result<Stopped, String>>>,
    /// Operator commands for the gateway (kill switch, logout), if it runs.
    pub gateway_operator: Option<Sender<Operator>>,
    /// The address the gateway listens on, if it runs.
    pub gateway_addr: Option<std::net::SocketAddr>,
    /// The market-data publisher's counters, if it runs.
    pub marketdata: Option<Arc<ServerStats>>,
}

fn describe_journal_error(e: JournalError, dir: &Path) -> String {
    let text = e.to_string();
    if text.contains("lock") {
        format!("data directory {} is locked by another process (is an exchange already running on it?): {text}", dir.display())
    } else {
        format!("journal in {}: {text}", dir.display())
    }
}

/// Recovers state from the data directory and starts the sequencer, engine and snapshot
/// threads. Returns once everything runs; producers and consumers attach to the rings.
pub fn start(config: &ExchangeConfig, stop: Arc<AtomicBool>) -> Result<Running, String> {
    let x = &config.exchange;
    std::fs::create_dir_all(&x.data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", x.data_dir.display()))?;
    std::fs::create_dir_all(&x.ring_dir)
        .map_err(|e| format!("cannot create ring directory {}: {e}", x.ring_dir.display()))?;
    let options = JournalOptions {
        segment_bytes: x.segment_bytes,
        ..JournalOptions::default()
    };
    let recovered =
        recovery::recover(&config.engine, &x.data_dir, options).map_err(|e| match e {
            RecoveryError::Journal(j) => describe_journal_error(j, &x.data_dir),
            other => format!("recovery from {}: {other}", x.data_dir.display()),
        })?;
    for (path, why) in &recovered.snapshots_skipped {
        eprintln!("ferrox: skipped snapshot {}: {why}", path.display());
    }
    eprintln!(
        "ferrox: recovered in {:.3} s: snapshot {}, {} journal records replayed, last seq {}, state_hash {:016x}{}",
        recovered.elapsed.as_secs_f64(),
        recovered.snapshot_seq.map_or_else(|| "none".to_string(), |s| format!("at seq {s}")),
        recovered.replayed,
        recovered.engine.last_seq(),
        recovered.engine.state_hash(),
        match &recovered.journal_recovery.truncated_at {
            Some((p, off)) => format!(", torn tail truncated in {} at byte {off}", p.display()),
            None => String::new(),
        }
    );
    let engine_spec = engine_ring_spec(x.engine_ring_slots).map_err(|e| e.to_string())?;
    let output_spec =
        output_ring_spec(x.output_ring_slots, x.output_consumers_max).map_err(|e| e.to_string())?;
    let input_spec = input_ring_spec(x.input_ring_slots).map_err(|e| e.to_string())?;
    let engine_path = engine_ring_path(&x.ring_dir, &x.name);
    let output_path = output_ring_path(&x.ring_dir, &x.name);
    let engine_ring = Producer::create(&engine_path, engine_spec)
        .map_err(|e| format!("cannot create ring {}: {e}", engine_path.display()))?;
    let engine_input = Consumer::attach(&engine_path, engine_spec, 0, Start::Producer)
        .map_err(|e| format!("cannot attach to ring {}: {e}", engine_path.display()))?;
    let output = Producer::create(&output_path, output_spec)
        .map_err(|e| format!("cannot create ring {}: {e}", output_path.display()))?;
    // The publisher is seeded from the recovered books and attached to the output ring before
    // the engine runs, so it sees every event after the state it was seeded with.
    let marketdata = match &config.marketdata {
        Some(md) if md.enabled => {
            let server = marketdata::prepare(
                md,
                &recovered.engine,
                config.engine.limits.orders_max as usize,
            )?;
            eprintln!("ferrox: {}", marketdata::describe(md, &server));
            let consumer =
                Consumer::attach(&output_path, output_spec, md.consumer, Start::Producer).map_err(
                    |e| {
                        format!(
                            "market data cannot attach to ring {}: {e}",
                            output_path.display()
                        )
                    },
                )?;
            Some((server, consumer))
        }
        _ => None,
    };
    let md_start_ts_ns = recovered.last_ts_ns;
    let engine_done = Arc::new(AtomicBool::new(false));

    let stats = Arc::new(SequencerStats::default());
    let sequencer = SequencerAgent::new(
        &x.ring_dir,
        &x.name,
        x.producers_max,
        input_spec,
        recovered.journal,
        engine_ring,
        config.durability,
        recovered.last_ts_ns,
        4096,
        Arc::clone(&stats),
    )
    .with_checkpoints(
        config.engine.instruments.len() as u32,
        Duration::from_millis(x.checkpoint_interval_ms),
    );

    // Take the core list once, before any thread is pinned.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let engine_core = match x.engine_core {
        Some(i) => Some(cores.get(i).copied().ok_or_else(|| {
            format!(
                "exchange.engine_core = {i}, but this machine has {} cores",
                cores.len()
            )
        })?),
        None if cores.len() >= 2 => cores.last().copied(),
        None => None,
    };
    // Busy-spinning needs a core of its own and one more for everything else; on small
    // machines the engine spins, then yields.
    let engine_wait = if cores.len() >= 4 {
        WaitStrategy::BusySpin
    } else {
        WaitStrategy::SpinThenYield { spins: 10_000 }
    };

    let (snap_tx, snap_rx) = bounded::<(u64, Vec<u8>)>(1);
    let (buf_tx, buf_rx) = bounded::<Vec<u8>>(1);
    let sequencer_done = Arc::new(AtomicBool::new(false));

    let mut threads = Vec::new();
    // In async mode the interval fdatasync runs on a thread of its own, so that the sequencer
    // never waits for the disk.
    let (mut sequencer, background) = match config.durability {
        Durability::Async { .. } => {
            let (s, bg) = sequencer.with_background_sync();
            (s, Some(bg))
        }
        Durability::Sync => (sequencer, None),
    };
    {
        let stop = Arc::clone(&stop);
        let done = Arc::clone(&sequencer_done);
        threads.push(
            thread::Builder::new()
                .name("ferrox-sequencer".into())
                .spawn(move || {
                    let result = sequencer_loop(&mut sequencer, &stop);
                    done.store(true, Ordering::Release);
                    result
                })
                .map_err(|e| e.to_string())?,
        );
    }
    // Pushed after the sequencer: `Running` expects the sequencer's thread first.
    if let (Some(bg), Durability::Async { sync_interval }) = (background, config.durability) {
        let stats = Arc::clone(&stats);
        let done = Arc::clone(&sequencer_done);
        threads.push(
            thread::Builder::new()
                .name("ferrox-journal-sync".into())
                .spawn(move || bg.run(&stats, sync_interval, &done))
                .map_err(|e| e.to_string())?,
        );
    }
    {
        let data_dir = x.data_dir.clone();
        let stats = Arc::clone(&stats);
        threads.push(
            thread::Builder::new()
                .name("ferrox-snapshots".into())
                .spawn(move || snapshot_loop(&data_dir, &snap_rx, &buf_tx, &stats))
                .map_err(|e| e.to_string())?,
        );
    }
    // The gateway attaches to the output ring before the engine runs, with its market-data
    // depth seeded from the recovered books, so its view starts exactly where its reading does.
    let (gateway_operator, gateway_addr) = match &config.gateway {
        Some(g) if g.enabled => {
            let mut levels = Vec::new();
            for i in 0..config.engine.instruments.len() as u32 {
                for side in [ferrox_protocol::Side::Buy, ferrox_protocol::Side::Sell] {
                    for l in recovered
                        .engine
                        .levels_of(ferrox_protocol::InstrumentId(i), side)
                    {
                        levels.push((i, side, l.price.0, l.qty_total.0, l.orders.len() as u32));
                    }
                }
            }
            let (tx, addr, handle) = start_gateway(config, g, &levels, Arc::clone(&stop))?;
            threads.push(handle);
            (Some(tx), Some(addr))
        }
        _ => (None, None),
    };
    let snapshot_every = x.snapshot_every;
    let data_dir = x.data_dir.clone();
    let engine = recovered.engine;
    let stats_engine = Arc::clone(&stats);
    let engine_finished = Arc::clone(&engine_done);
    let engine_thread = thread::Builder::new()
        .name("ferrox-engine".into())
        .spawn(move || {
            // Set however the thread ends, so that the market-data thread can finish draining.
            struct Done(Arc<AtomicBool>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let _done = Done(engine_finished);
            if let Some(core) = engine_core {
                if !core_affinity::set_for_current(core) {
                    eprintln!(
                        "ferrox: could not pin the engine thread to core {}; running unpinned",
                        core.id
                    );
                } else {
                    eprintln!("ferrox: engine thread pinned to core {}", core.id);
                }
            }
            let mut agent = EngineAgent::new(
                engine,
                engine_input,
                output,
                engine_wait,
                1024,
                snapshot_every,
            );
            engine_loop(&mut agent, &sequencer_done, &snap_tx, &buf_rx, engine_wait);
            drop(snap_tx);
            // Final snapshot: everything the journal holds is applied and synced by now.
            let last_seq = agent.engine.last_seq();
            let mut bytes = Vec::new();
            agent.engine.write_snapshot(&mut bytes);
            let durable = stats_engine.durable_seq.load(Ordering::Acquire);
            let snapshot = if last_seq > 0 && durable >= last_seq {
                let dir = data_dir.join("snapshots");
                Some(
                    recovery::write_snapshot_file(&dir, last_seq, &bytes)
                        .map_err(|e| e.to_string())?,
                )
            } else {
                None
            };
            Ok(Stopped {
                last_seq,
                state_hash: agent.engine.state_hash(),
                snapshot,
            })
        })
        .map_err(|e| e.to_string())?;
    let marketdata_stats = match marketdata {
        Some((server, consumer)) => {
            let md_stats = server.stats();
            let stop = Arc::clone(&stop);
            let done = Arc::clone(&engine_done);
            threads.push(
                thread::Builder::new()
                    .name("ferrox-marketdata".into())
                    .spawn(move || marketdata::run(server, consumer, md_start_ts_ns, &stop, &done))
                    .map_err(|e| e.to_string())?,
            );
            Some(md_stats)
        }
        None => None,
    };
    Ok(Running {
        stats,
        stop,
        threads,
        engine_thread: Some(engine_thread),
        gateway_operator,
        gateway_addr,
        marketdata: marketdata_stats,
    })
}

type GatewayStart = (
    Sender<Operator>,
    std::net::SocketAddr,
    thread::JoinHandle<Result<(), String>>,
);

/// Binds the gateway's port and opens its session stores on this thread, so that a port in
/// use or a damaged store stops the start with a clear error, then runs it on a thread of its
/// own. The gateway is producer `gateway.producer` like any other: it talks to the exchange
/// only through the rings.
fn start_gateway(
    config: &ExchangeConfig,
    g: &GatewayFile,
    levels: &[(u32, ferrox_protocol::Side, i64, u64, u32)],
    stop: Arc<AtomicBool>,
) -> Result<GatewayStart, String> {
    let x = &config.exchange;
    let mut venue = RingVenue::create(
        &x.ring_dir,
        &x.name,
        g.producer,
        x.input_ring_slots,
        x.output_ring_slots,
        x.output_consumers_max,
    )?;
    // Clients may log on only once orders can reach the engine and reports can come back.
    let started = Instant::now();
    while !venue.connected() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the gateway could not attach to the exchange's rings within 30 s".into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    let store_dir = x.data_dir.join(&g.store_dir);
    let agent = GatewayAgent::new(
        g.clone(),
        &store_dir,
        &config.engine.instruments,
        venue,
        Box::new(|line: &str| eprintln!("ferrox: {line}")),
    )?;
    let mut agent = agent;
    for &(instrument, side, price, qty, count) in levels {
        agent.md_seed_level(instrument, side, price, qty, count);
    }
    let addr = agent
        .local_addr()
        .ok_or_else(|| "gateway listener has no address".to_string())?;
    let (tx, rx) = bounded::<Operator>(64);
    let handle = thread::Builder::new()
        .name("ferrox-gateway".into())
        .spawn(move || gateway_loop(agent, &rx, &stop))
        .map_err(|e| e.to_string())?;
    Ok((tx, addr, handle))
}

fn gateway_loop(
    mut agent: GatewayAgent<RingVenue>,
    operator: &Receiver<Operator>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let clock = Instant::now();
    let mut idle = 0u32;
    // On a machine with fewer cores than busy threads a spinning poller only steals time
    // from the threads it waits for (measured: p50 3 ms without yielding, 0.33 ms with it, at
    // 1,000 orders/s on 2 vCPUs; BENCHMARKS.md).
    let yield_when_idle = thread::available_parallelism().map_or(true, |n| n.get() < 4);
    while !stop.load(Ordering::Relaxed) {
        while let Ok(op) = operator.try_recv() {
            agent.operator(op);
        }
        // Spin while there is traffic, then let the poller sleep a millisecond at a time: on
        // a small machine a spinning gateway would take a core from the engine.
        let wait = if idle < 20_000 {
            Duration::ZERO
        } else {
            Duration::from_millis(1)
        };
        if agent.do_work(&clock, wait) == 0 {
            idle = idle.saturating_add(1);
            if idle > 100 && yield_when_idle {
                // Let the sequencer, the engine or a client on the same core run.
                thread::yield_now();
            }
        } else {
            idle = 0;
        }
    }
    agent.shutdown(&clock);
    Ok(())
}

fn sequencer_loop<S: ferrox_sequencer::journal::Storage>(
    agent: &mut SequencerAgent<S>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // A journal error is fatal: the journal must not be used after a failed fsync.
        match agent
            .do_work()
            .map_err(|e| format!("sequencer stopped: {e}"))?
        {
            0 => {
                idle = idle.saturating_add(1);
                if idle > 1_000 {
                    thread::sleep(Duration::from_micros(50));
                } else {
                    std::hint::spin_loop();
                }
            }
            _ => idle = 0,
        }
    }
    // Intake stops here; what was journalled is made durable before the engine finishes.
    agent
        .sync_all()
        .map_err(|e| format!("final journal sync failed: {e}"))?;
    Ok(())
}

fn engine_loop(
    agent: &mut EngineAgent,
    sequencer_done: &AtomicBool,
    snap_tx: &Sender<(u64, Vec<u8>)>,
    buf_rx: &Receiver<Vec<u8>>,
    wait: WaitStrategy,
) {
    let mut idle = 0u32;
    loop {
        let n = agent.do_work();
        if let Some((seq, bytes)) = agent.take_snapshot() {
            // If the writer is still busy with the previous snapshot, this one is dropped;
            // the next interval brings another.
            let _ = snap_tx.try_send((seq, bytes));
        }
        match buf_rx.try_recv() {
            Ok(buf) => agent.return_snapshot_buffer(buf),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        }
        if n == 0 {
            // Drain: stop only once the sequencer has stopped and nothing is left.
            if sequencer_done.load(Ordering::Acquire) && agent.input_available() == 0 {
                break;
            }
            idle = idle.saturating_add(1);
            match wait {
                WaitStrategy::BusySpin => std::hint::spin_loop(),
                _ if idle < 10_000 => std::hint::spin_loop(),
                _ if idle < 20_000 => thread::yield_now(),
                _ => thread::sleep(Duration::from_micros(20)),
            }
        } else {
            idle = 0;
        }
    }
}

fn snapshot_loop(
    data_dir: &Path,
    rx: &Receiver<(u64, Vec<u8>)>,
    buf_tx: &Sender<Vec<u8>>,
    stats: &SequencerStats,
) -> Result<(), String> {
    let dir = data_dir.join("snapshots");
    while let Ok((seq, bytes)) = rx.recv() {
        // A snapshot must never be ahead of the durable journal, or a power cut could leave a
        // snapshot that the journal cannot continue from.
        let started = Instant::now();
        while stats.durable_seq.load(Ordering::Acquire) < seq {
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        if stats.durable_seq.load(Ordering::Acquire) >= seq {
            recovery::write_snapshot_file(&dir, seq, &bytes).map_err(|e| e.to_string())?;
        }
        let _ = buf_tx.try_send(bytes);
    }
    Ok(())
}

impl Running {
    /// Whether the sequencer stopped on its own (a fatal error).
    pub fn finished(&self) -> bool {
        self.threads.first().is_none_or(|t| t.is_finished())
    }

    /// Stops intake, drains the rings, syncs the journal, writes a snapshot and joins every
    /// thread.
    pub fn shutdown(mut self) -> Result<Stopped, String> {
        self.stop.store(true, Ordering::Release);
        self.wait()
    }

    /// Waits until the exchange stops (after the stop flag is set, or a fatal error).
    pub fn wait(&mut self) -> Result<Stopped, String> {
        let mut first_error = None;
        for t in self.threads.drain(..1) {
            if let Err(e) = t
                .join()
                .map_err(|_| "a thread panicked".to_string())
                .and_then(|r| r)
            {
                first_error.get_or_insert(e);
                // The engine drains once the sequencer is done, whatever the reason.
            }
        }
        let stopped = match self.engine_thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| "the engine thread panicked".to_string())?,
            None => Err("already stopped".to_string()),
        };
        for t in self.threads.drain(..) {
            if let Err(e) = t
                .join()
                .map_err(|_| "a thread panicked".to_string())
                .and_then(|r| r)
            {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => stopped,
        }
    }
}
