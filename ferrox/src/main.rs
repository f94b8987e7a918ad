//! `ferrox`: the thin binary that wires Ferrox's parts together.
//!
//! It owns what the library crates never do: reading files and the clock, threads, terminals.
//! Today it runs the engine behind an operator console; the sequencer, gateway, market data and
//! replay subcommands arrive with their issues.

mod console;

use clap::{Parser, Subcommand};
use ferrox_engine::{Engine, EngineConfig};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// Run the exchange: the engine behind an operator console reading commands from stdin.
    Run {
        /// A TOML configuration file; without it the embedded default is used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run the commands of this file (console syntax), print the events, and exit.
        #[arg(long)]
        script: Option<PathBuf>,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Check a configuration file and print its instruments in engine units.
    CheckConfig { file: PathBuf },
}

fn load_config(path: Option<&PathBuf>) -> Result<EngineConfig, String> {
    let text = match path {
        None => DEFAULT_CONFIG.to_string(),
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read config {}: {e}", p.display()))?,
    };
    let name = path.map_or_else(
        || "embedded default config".to_string(),
        |p| p.display().to_string(),
    );
    EngineConfig::from_toml_str(&text).map_err(|e| format!("{name}: {e}"))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn run(config: Option<PathBuf>, script: Option<PathBuf>) -> Result<(), String> {
    let config = load_config(config.as_ref())?;
    let symbols: Vec<String> = config
        .instruments
        .iter()
        .map(|i| i.symbol.clone())
        .collect();
    let engine = Engine::new(config).map_err(|e| e.to_string())?;
    eprintln!(
        "ferrox: engine ready with {} instruments ({}), {} MiB preallocated",
        symbols.len(),
        symbols.join(", "),
        engine.memory_bytes() >> 20
    );
    let mut console = console::Console::new(engine);
    let input: Box<dyn BufRead> = match &script {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p)
                .map_err(|e| format!("cannot open script {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let interactive = script.is_none() && std::io::stdin().is_terminal();
    if interactive {
        eprintln!("type `help` for the commands, `quit` to stop");
    }
    let mut out = std::io::stdout().lock();
    let prompt = |out: &mut std::io::StdoutLock| {
        if interactive {
            let _ = write!(out, "ferrox> ");
            let _ = out.flush();
        }
    };
    prompt(&mut out);
    for line in input.lines() {
        let line = line.map_err(|e| format!("reading input: {e}"))?;
        if script.is_some() && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            let _ = writeln!(out, "> {}", line.trim());
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        match console.handle(&line, now_ns()) {
            None => break,
            Some(text) if text.is_empty() => {}
            Some(text) => {
                let _ = writeln!(out, "{text}");
            }
        }
        prompt(&mut out);
    }
    eprintln!(
        "ferrox: stopped after {} commands, state_hash {:016x}",
        console.engine.commands_applied(),
        console.engine.state_hash()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run { config, script } => run(config, script),
        Cmd::DefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
        Cmd::CheckConfig { file } => load_config(Some(&file)).map(|c| {
            for (i, s) in c.instruments.iter().enumerate() {
                println!(
                    "{i}: {} tick_size {} ticks, lot_size {} lots, reference {} ticks, band {:?}, qty_max {} lots, notional_max {}",
                    s.symbol, s.tick_size, s.lot_size, s.reference_price, s.price_band, s.qty_max, s.notional_max
                );
            }
            println!("limits: {:?}", c.limits);
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
