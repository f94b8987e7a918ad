//! `ferrox`: the thin binary that wires Ferrox's parts together.
//!
//! It owns what the library crates never do: reading files and the clock, threads, terminals.
//! Today it runs the engine behind an operator console; the sequencer, gateway, market data and
//! replay subcommands arrive with their issues.

mod client;
mod console;
mod exchange;
mod fixclient;
mod marketdata;
mod replay;
mod replay_tools;

use clap::{Parser, Subcommand};
use ferrox_engine::Engine;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The configuration `ferrox run` uses when no --config is given.
const DEFAULT_CONFIG: &str = include_str!("default.toml");

#[derive(Parser)]
#[command(
    name = "ferrox",
    version,
    about = "Ferrox: a deterministic, low-latency matching engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the exchange (sequencer, journal, engine) with an operator console on stdin.
    Run {
        /// A TOML configuration file; without it the embedded default is used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run the console commands of this file against an in-process engine (no journal),
        /// print the events, and exit.
        #[arg(long)]
        script: Option<PathBuf>,
    },
    /// Run the exchange headless (multi-process mode): producers attach to its rings.
    Engine {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Send a seeded order flow through the rings of a running exchange, open loop.
    Load {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Input ring / output consumer slot to use (0 is the console's).
        #[arg(long, default_value_t = 1)]
        producer: u32,
        #[arg(long, default_value_t = 100_000)]
        commands: u64,
        /// Commands per second (planned send times are spaced evenly).
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write "producer_ref seq" for every acknowledged command to this file.
        #[arg(long)]
        acks: Option<PathBuf>,
        /// Seconds to wait for the exchange to come up.
        #[arg(long, default_value_t = 30)]
        connect_timeout: u64,
    },
    /// Market data: `ferrox md watch SYMBOL` joins the feed and shows the book.
    Md {
        #[command(subcommand)]
        command: MdCmd,
    },
    /// Replay tools over a data directory: verify, dump, trades, stats, book.
    Replay {
        #[command(subcommand)]
        command: replay::ReplayCmd,
    },
    /// The benchmark suite in one command: engine only, side by side with other order books,
    /// pipeline and wire to wire with their floors; reports, histogram logs, plots and a
    /// summary. Arguments go to `ferrox-suite` (`ferrox bench --help-suite` lists them).
    Bench {
        /// Print the suite's own options.
        #[arg(long)]
        help_suite: bool,
        /// Options for the suite, e.g. `--quick`, `--out DIR`, `--sections engine,peers`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Check a configuration file and print its instruments in engine units.
    CheckConfig { file: PathBuf },
    /// A FIX 4.4 order-entry client: log on to the gateway, type orders, see execution reports.
    Client {
        #[arg(long, default_value = "127.0.0.1:9878")]
        addr: String,
        /// Our SenderCompID (49).
        #[arg(long, default_value = "CLIENT1")]
        sender: String,
        /// The exchange's CompID (56).
        #[arg(long, default_value = "FERROX")]
        target: String,
        #[arg(long, default_value = "client1")]
        password: String,
        /// HeartBtInt (108), seconds.
        #[arg(long, default_value_t = 30)]
        heartbeat: u64,
        /// Keep sequence numbers (no ResetSeqNumFlag); the session starts at --seq.
        #[arg(long)]
        no_reset: bool,
        #[arg(long, default_value_t = 1)]
        seq: u64,
        /// Also print each message sent and received as FIX, with | for SOH.
        #[arg(long)]
        raw: bool,
        /// Run the commands of this file, each waiting for its replies, then log out.
        #[arg(long)]
        script: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MdCmd {
    /// Join the feed, recover, keep the book of SYMBOL and show a live ladder and the last
    /// trades. Addresses come from the configuration's [marketdata] (the embedded default
    /// without --config) unless given.
    Watch {
        symbol: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// The feed: a multicast group:port, or a unicast address to bind.
        #[arg(long)]
        feed: Option<String>,
        /// The interface to join the multicast group on.
        #[arg(long)]
        interface: Option<std::net::Ipv4Addr>,
        /// The recovery service, host:port.
        #[arg(long)]
        recovery: Option<String>,
        #[arg(long, default_value_t = 10)]
        depth: usize,
        /// Verify sequence continuity and every engine checkpoint; exit 1 on a divergence.
        #[arg(long)]
        check: bool,
        /// Stop after this many seconds (0: until Ctrl-C or the end of the session).
        #[arg(long, default_value_t = 0)]
        seconds: u64,
        /// A summary line per second instead of redrawing the terminal.
        #[arg(long)]
        plain: bool,
    },
}

fn md_watch(cmd: MdCmd) -> Result<(), String> {
    let MdCmd::Watch {
        symbol,
        config,
        feed,
        interface,
        recovery,
        depth,
        check,
        seconds,
        plain,
    } = cmd;
    let (feed_default, interface_default, recovery_default) =
        marketdata::addresses(config.as_deref(), DEFAULT_CONFIG)?;
    let stop = exchange::install_signal_flag()?;
    let ok = marketdata::watch(
        &marketdata::WatchOptions {
            symbol,
            feed: feed.unwrap_or(feed_default),
            interface: interface.unwrap_or(interface_default),
            recovery: recovery.unwrap_or(recovery_default),
            depth: depth.clamp(1, 255),
            check,
            seconds,
            plain,
        },
        &stop,
    )?;
    if ok {
        Ok(())
    } else {
        Err("market-data check failed".into())
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<exchange::ExchangeConfig, String> {
    let text = match path {
        None => DEFAULT_CONFIG.to_string(),
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read config {}: {e}", p.display()))?,
    };
    let name = path.map_or_else(
        || "embedded default config".to_string(),
        |p| p.display().to_string(),
    );
    exchange::parse_config(&text, &name)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `--script`: the console against an in-process engine, no journal.
fn run_script(config: Option<PathBuf>, script: PathBuf) -> Result<(), String> {
    let config = load_config(config.as_ref())?.engine;
    let engine = Engine::new(config).map_err(|e| e.to_string())?;
    let mut console = console::Console::new(engine);
    let input = std::io::BufReader::new(
        std::fs::File::open(&script)
            .map_err(|e| format!("cannot open script {}: {e}", script.display()))?,
    );
    let mut out = std::io::stdout().lock();
    for line in input.lines() {
        let line = line.map_err(|e| format!("reading {}: {e}", script.display()))?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let _ = writeln!(out, "> {trimmed}");
        match console.handle(&line, now_ns()) {
            None => break,
            Some(text) if text.is_empty() => {}
            Some(text) => {
                let _ = writeln!(out, "{text}");
            }
        }
    }
    if let Some(engine) = &console.engine {
        eprintln!(
            "ferrox: {} commands, state_hash {:016x}",
            engine.commands_applied(),
            engine.state_hash()
        );
    }
    Ok(())
}

/// The exchange: recover, start the threads, serve until SIGTERM/SIGINT (or `quit` on the
/// console), then shut down cleanly.
fn serve(config: Option<PathBuf>, with_console: bool) -> Result<(), String> {
    let config = load_config(config.as_ref())?;
    let stop = exchange::install_signal_flag()?;
    let running = exchange::start(&config, std::sync::Arc::clone(&stop))?;
    let x = &config.exchange;
    eprintln!(
        "ferrox: exchange running: {} instruments, journal in {} ({:?}), rings {}/{}-*.ring",
        config.engine.instruments.len(),
        x.data_dir.display(),
        config.durability,
        x.ring_dir.display(),
        x.name
    );
    if let Some(addr) = running.gateway_addr {
        eprintln!("ferrox: FIX gateway listening on {addr}");
    }
    if with_console {
        let interactive = std::io::stdin().is_terminal();
        if interactive {
            eprintln!("type `help` for the commands; `quit` or Ctrl-C stops the exchange");
        }
        let stop_console = std::sync::Arc::clone(&stop);
        let engine_config = config.engine.clone();
        let exchange_section = config.exchange.clone();
        let durability = config.durability;
        let gateway = config.gateway.clone();
        let marketdata = config.marketdata.clone();
        let operator = running.gateway_operator.clone();
        std::thread::Builder::new()
            .name("ferrox-console".into())
            .spawn(move || {
                let cfg = exchange::ExchangeConfig {
                    engine: engine_config,
                    exchange: exchange_section,
                    durability,
                    gateway,
                    marketdata,
                };
                if let Err(e) =
                    client::remote_console(&cfg, &stop_console, interactive, operator.as_ref())
                {
                    eprintln!("ferrox: console: {e}");
                }
            })
            .map_err(|e| e.to_string())?;
    }
    // Report producers as they come and go: a killed peer is detected by the sequencer (its
    // process is gone and its ring is drained) and a restarted one is attached again.
    let mut producers = 0u64;
    while !stop.load(Ordering::Relaxed) && !running.finished() {
        std::thread::sleep(Duration::from_millis(20));
        let now = running.stats.producers_attached.load(Ordering::Acquire);
        for k in 0..64 {
            let bit = 1u64 << k;
            if now & bit != producers & bit {
                if now & bit != 0 {
                    eprintln!("ferrox: producer {k} attached");
                } else {
                    eprintln!("ferrox: producer {k} gone (its process exited or closed its ring)");
                }
            }
        }
        producers = now;
    }
    eprintln!("ferrox: stopping: intake closed, draining rings, syncing the journal");
    let md_stats = running.marketdata.clone();
    let stopped = running.shutdown()?;
    if let Some(stats) = md_stats {
        eprintln!("ferrox: {}", marketdata::stats_line(&stats));
    }
    println!(
        "ferrox: stopped at seq {} state_hash {:016x}{}",
        stopped.last_seq,
        stopped.state_hash,
        stopped
            .snapshot
            .map(|p| format!(", snapshot {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

fn run_load(config: Option<PathBuf>, options: client::LoadOptions) -> Result<(), String> {
    let config = load_config(config.as_ref())?;
    let stop = exchange::install_signal_flag()?;
    let report = client::load(&config, &options, &stop)?;
    let h = &report.histogram;
    println!(
        "load: sent {} acknowledged {} in {:.2} s ({:.0}/s offered {}/s); ack latency from planned send: p50 {} ns p90 {} ns p99 {} ns p99.9 {} ns max {} ns",
        report.sent,
        report.acked,
        report.elapsed.as_secs_f64(),
        report.acked as f64 / report.elapsed.as_secs_f64().max(1e-9),
        options.rate_per_s,
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    Ok(())
}

/// Runs `ferrox-suite` from beside this binary. When it is not there and this binary was built
/// from a workspace that is still present, the benchmark binaries are built first (release), so
/// that `cargo run --release -p ferrox -- bench` is the one command a benchmarker needs.
fn bench(args: Vec<String>) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let here = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut bins = here.clone();
    if !bins.join("ferrox-suite").is_file() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .filter(|w| w.join("Cargo.toml").is_file())
            .ok_or(
                "ferrox-suite is not beside this binary and the source tree is not at hand: \
                    build it with `cargo build --release -p ferrox -p ferrox-benches`",
            )?;
        eprintln!("ferrox: building the benchmark binaries (cargo build --release -p ferrox -p ferrox-benches)");
        let status = std::process::Command::new("cargo")
            .args(["build", "--release", "-p", "ferrox", "-p", "ferrox-benches"])
            .current_dir(workspace)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("building the benchmark binaries failed ({status})"));
        }
        bins = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace.join("target"), PathBuf::from)
            .join("release");
    }
    let status = std::process::Command::new(bins.join("ferrox-suite"))
        .arg("--bin-dir")
        .arg(&bins)
        .args(&args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bins.join("ferrox-suite").display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the benchmark suite failed ({status})"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run { config, script: Some(script) } => run_script(config, script),
        Cmd::Run { config, script: None } => serve(config, true),
        Cmd::Engine { config } => serve(config, false),
        Cmd::Load { config, producer, commands, rate, seed, acks, connect_timeout } => run_load(
            config,
            client::LoadOptions {
                producer,
                commands,
                rate_per_s: rate,
                seed,
                acks,
                connect_timeout: Duration::from_secs(connect_timeout),
            },
        ),
        Cmd::Client { addr, sender, target, password, heartbeat, no_reset, seq, raw, script } => {
            fixclient::run(fixclient::Options {
                addr,
                sender,
                target,
                password: Some(password).filter(|p| !p.is_empty()),
                heartbeat_s: heartbeat,
                reset: !no_reset,
                seq,
                raw,
                script,
            })
        }
        Cmd::Md { command } => md_watch(command),
        Cmd::Replay { command } => replay::run(command),
        Cmd::Bench { help_suite, mut args } => {
            if help_suite {
                args.push("--help".into());
            }
            bench(args)
        }
        Cmd::DefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
        Cmd::CheckConfig { file } => load_config(Some(&file)).map(|c| {
            for (i, s) in c.engine.instruments.iter().enumerate() {
                println!(
                    "{i}: {} tick_size {} ticks, lot_size {} lots, reference {} ticks, band {:?}, qty_max {} lots, notional_max {}",
                    s.symbol, s.tick_size, s.lot_size, s.reference_price, s.price_band, s.qty_max, s.notional_max
                );
            }
            println!("limits: {:?}", c.engine.limits);
            println!("exchange: {:?}, durability {:?}", c.exchange, c.durability);
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrox: {e}");
            ExitCode::FAILURE
        }
    }
}
