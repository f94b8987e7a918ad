//! Every workload the benchmark tools run, behind one entry point: [`workload_by_name`].
//!
//! | spec                | what it is |
//! |---------------------|------------|
//! | `small`             | 1 instrument, ~1,000 resting orders on ~750 levels (exchange-core mix) |
//! | `medium`            | 100 instruments x 1,000 = 100,000 orders, Pareto activity |
//! | `large`             | 1,000 instruments x 1,000 = 1,000,000 orders, Pareto activity |
//! | `wide`              | 10,000 instruments x 100 = 1,000,000 orders, Pareto, price range 82 ticks |
//! | `avalanche`         | 1 instrument, 5,000 orders on 2,500 levels; IOCs sweeping 10-100 levels, each followed by the refills that rebuild them ([`AvalancheConfig`]) |
//! | `lobster[:PATH]`    | a LOBSTER message file through the replay importer (default: the AAPL 2012-06-21 sample) |
//! | `file:PATH`         | a command file (`docs/command-file.md`) |
//!
//! The first five are seeded and fill-aware (0 rejects). The last two are data: the seed is
//! ignored, and `commands` only caps the measured part.
//!
//! # Engine configuration of a command file
//!
//! A command file names instruments by symbol and writes prices in decimal, so it needs the
//! instrument definitions. [`WorkloadSpec::File`] takes an optional TOML file: its `[limits]`
//! table and `[[instruments]]` tables are read (an exchange configuration as `ferrox run
//! --config` takes works as is: every other table, `[exchange]`, `[gateway]`, ..., is ignored).
//! Without one, the configuration `ferrox` embeds (`ferrox/src/default.toml`: AAPL, MSFT, ESZ6,
//! BTC-USD), which is also what `ferrox replay run` uses without `--config`. The whole file is
//! the measured part (no pre-fill), so its order ids are its command numbers as the format says.
//!
//! # LOBSTER
//!
//! `ferrox_replay::lobster::import` maps the messages to engine commands and, with the
//! orderbook file next to the message file (same name with `_orderbook_` for `_message_`),
//! seeds the book that existed before the first message. The seeding commands are the
//! pre-fill; the message commands are the measured part.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ferrox_engine::{Engine, EngineConfig, Limits};
use ferrox_protocol::{
    AccountId, CancelReason, ClientOrderId, Command, Event, InstrumentId, NewOrder, PriceTicks,
    QtyLots, SequencedCommand, Side, TimeInForce, VecSink,
};

use crate::{generate, Activity, BookModel, GenStats, Mix, OpKind, Rng, Workload, WorkloadConfig};

/// The names [`workload_by_name`] knows (file and LOBSTER forms take a path).
pub const WORKLOAD_NAMES: &str =
    "small|medium|large|wide|avalanche|lobster[:MESSAGES_CSV]|file:PATH";

/// The LOBSTER sample, relative to the workspace root.
const LOBSTER_SAMPLE: &str =
    "../shared/data/lobster/AAPL_2012-06-21_34200000_57600000_message_10.csv";

/// `ferrox`'s embedded default configuration.
const FERROX_DEFAULT_CONFIG: &str = include_str!("../../ferrox/src/default.toml");

// ----- the mix on the command line ------------------------------------------------------------

impl FromStr for Mix {
    type Err = String;

    /// `gtc=9,ioc=3,cancel=6,move=82` (`replace` is accepted for `move`). Keys left out weigh
    /// 0; at least one weight must be positive.
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut mix = Mix {
            new_gtc: 0,
            ioc: 0,
            cancel: 0,
            replace: 0,
        };
        let mut seen = [false; 4];
        if s.trim().is_empty() {
            return Err("empty mix; expected e.g. gtc=9,ioc=3,cancel=6,move=82".into());
        }
        for (n, part) in s.split(',').enumerate() {
            let part = part.trim();
            let (key, value) = part.split_once('=').ok_or_else(|| {
                format!(
                    "mix item {} {part:?}: expected KEY=WEIGHT, e.g. ioc=3",
                    n + 1
                )
            })?;
            let (key, value) = (key.trim(), value.trim());
            let (slot, index) = match key {
                "gtc" => (&mut mix.new_gtc, 0),
                "ioc" => (&mut mix.ioc, 1),
                "cancel" => (&mut mix.cancel, 2),
                "move" | "replace" => (&mut mix.replace, 3),
                _ => {
                    return Err(format!(
                        "mix item {} {part:?}: unknown kind {key:?}; the kinds are gtc, ioc, cancel, move",
                        n + 1
                    ))
                }
            };
            if seen[index] {
                return Err(format!("mix item {} {part:?}: {key} given twice", n + 1));
            }
            seen[index] = true;
            *slot = value.parse::<u32>().map_err(|e| {
                format!(
                    "mix item {} {part:?}: weight {value:?} is not a whole number ({e})",
                    n + 1
                )
            })?;
        }
        let total = u64::from(mix.new_gtc)
            + u64::from(mix.ioc)
            + u64::from(mix.cancel)
            + u64::from(mix.replace);
        if total == 0 {
            return Err(format!("mix {s:?}: every weight is 0"));
        }
        if total > u64::from(u32::MAX) {
            return Err(format!(
                "mix {s:?}: the weights add up to more than {}",
                u32::MAX
            ));
        }
        Ok(mix)
    }
}

impl Mix {
    /// The mix in the form [`Mix::from_str`] reads.
    pub fn to_spec(&self) -> String {
        format!(
            "gtc={},ioc={},cancel={},move={}",
            self.new_gtc, self.ioc, self.cancel, self.replace
        )
    }
}

// ----- the avalanche workload -----------------------------------------------------------------

/// A deep book swept by aggressive IOC orders.
///
/// Pre-fill: `levels_per_side` price levels each side of the mid (1..=`levels_per_side` ticks
/// away), `orders_per_level` orders on each, placed in random order. Measured phase, repeated:
/// one IOC of a random side whose quantity is exactly the open quantity of the best `n`
/// opposite levels, `n` uniform in `sweep_min..=sweep_max` (so it takes out exactly `n`
/// levels; it is priced at the far edge of the book, beyond every resting price), then the
/// refills: `orders_per_level` passive GTC orders on each swept price, best first, rebuilding
/// the book. The generator reads the quantities from its model of the book (fill-aware), so
/// nothing is rejected. Makers (accounts 1..=1,000) and takers (accounts 1,000,001..) never
/// share an account, so self-trade prevention never acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvalancheConfig {
    pub levels_per_side: u32,
    pub orders_per_level: u32,
    pub sweep_min: u32,
    pub sweep_max: u32,
}

impl Default for AvalancheConfig {
    fn default() -> Self {
        AvalancheConfig {
            levels_per_side: 1_250,
            orders_per_level: 2,
            sweep_min: 10,
            sweep_max: 100,
        }
    }
}

const TAKER_ACCOUNT_BASE: u32 = 1_000_000;

impl AvalancheConfig {
    pub fn orders(&self) -> u32 {
        2 * self.levels_per_side * self.orders_per_level
    }

    /// The generator-style configuration: engine limits sized for the book.
    pub fn workload_config(&self) -> WorkloadConfig {
        let orders = self.orders();
        let levels = 2 * self.levels_per_side;
        WorkloadConfig {
            name: "avalanche".into(),
            instruments: 1,
            orders_per_instrument: orders,
            price_range_ticks: i64::from(self.levels_per_side),
            mid_price: 100_000,
            order_qty_max: 100,
            accounts: 1_000,
            mix: Mix::default(),
            activity: Activity::Uniform,
            // The book never holds more than its pre-fill (a sweep removes before the refills
            // add); one more slot is the IOC's own.
            limits: Limits {
                orders_max: (orders + 1_024).next_power_of_two(),
                levels_max: (levels + 64).next_power_of_two(),
                gtd_orders_max: 1,
            },
            levels_per_side_max: (self.levels_per_side + 16).next_power_of_two(),
            // The whole book (2 x levels_per_side ticks) in the direct-mapped window.
            ladder_window_ticks: (levels + 2).next_power_of_two().clamp(64, 65_536),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.levels_per_side == 0 || self.orders_per_level == 0 {
            return Err("avalanche: levels_per_side and orders_per_level must be positive".into());
        }
        if self.sweep_min == 0 || self.sweep_min > self.sweep_max {
            return Err("avalanche: need 0 < sweep_min <= sweep_max".into());
        }
        if self.sweep_max > self.levels_per_side {
            return Err("avalanche: sweep_max is more than the levels a side holds".into());
        }
        Ok(())
    }
}

/// Counts the events of a measured command into `stats`; returns (trades, distinct trade
/// prices) of this command.
fn count_events(stats: &mut GenStats, events: &[Event], measured: bool) -> (u64, u64) {
    let mut trades = 0;
    let mut prices: Vec<i64> = Vec::new();
    for ev in events {
        if !measured {
            if matches!(ev, Event::Rejected(_)) {
                stats.prefill_rejects += 1;
            }
            continue;
        }
        stats.events += 1;
        match ev {
            Event::Trade(t) => {
                stats.trades += 1;
                trades += 1;
                if !prices.contains(&t.price.0) {
                    prices.push(t.price.0);
                }
            }
            Event::Rejected(_) => stats.rejects += 1,
            Event::Cancelled(c) => match c.reason {
                CancelReason::IocRemainder => stats.ioc_remainders += 1,
                CancelReason::SelfTradeResting => stats.self_trade_cancels += 1,
                _ => {}
            },
            _ => {}
        }
    }
    (trades, prices.len() as u64)
}

fn track_sizes(stats: &mut GenStats, engine: &Engine) {
    let orders = u64::from(engine.orders_live());
    let levels = u64::from(engine.levels_live());
    stats.orders_min = stats.orders_min.min(orders);
    stats.orders_max = stats.orders_max.max(orders);
    stats.levels_min = stats.levels_min.min(levels);
    stats.levels_max = stats.levels_max.max(levels);
}

/// Generates an avalanche workload of exactly `commands` measured commands.
pub fn avalanche(a: &AvalancheConfig, commands: usize, seed: u64) -> Result<Workload, String> {
    a.check()?;
    let config = a.workload_config();
    let engine_config = config.engine_config();
    let mut engine = Engine::new(engine_config.clone()).map_err(|e| e.to_string())?;
    let mut model = BookModel::new(1);
    let mut sink = VecSink::default();
    let mut rng = Rng::new(seed);
    let mut stats = GenStats::default();
    let mut seq = 0u64;
    let mid = config.mid_price;
    let limit = |side: Side, price: i64, qty: u64, account: u32, seq: u64| {
        Command::NewOrder(NewOrder::limit(
            InstrumentId(0),
            AccountId(account),
            ClientOrderId(seq),
            side,
            PriceTicks(price),
            QtyLots(qty),
        ))
    };
    // Applies one command, folds its events into the model; returns (trades, levels traded).
    let mut apply = |command: Command,
                     out: &mut Vec<SequencedCommand>,
                     measured: bool,
                     engine: &mut Engine,
                     model: &mut BookModel,
                     stats: &mut GenStats,
                     seq: &mut u64| {
        *seq += 1;
        let cmd = SequencedCommand {
            seq: *seq,
            ts_ns: *seq,
            command,
        };
        engine.apply(&cmd, &mut sink);
        for ev in &sink.events {
            model.on_event(ev);
        }
        let r = count_events(stats, &sink.events, measured);
        sink.events.clear();
        out.push(cmd);
        r
    };

    // Pre-fill: every (side, level, slot) once, in random order.
    let mut slots: Vec<(Side, i64)> = Vec::with_capacity(a.orders() as usize);
    for k in 1..=i64::from(a.levels_per_side) {
        for _ in 0..a.orders_per_level {
            slots.push((Side::Buy, mid - k));
            slots.push((Side::Sell, mid + k));
        }
    }
    rng.shuffle(&mut slots);
    let mut prefill = Vec::with_capacity(slots.len());
    for (side, price) in slots {
        let qty = config.random_qty(&mut rng);
        let account = config.random_account(&mut rng);
        let c = limit(side, price, qty, account, seq + 1);
        apply(
            c,
            &mut prefill,
            false,
            &mut engine,
            &mut model,
            &mut stats,
            &mut seq,
        );
    }
    stats.orders_after_prefill = u64::from(engine.orders_live());
    stats.levels_after_prefill = u64::from(engine.levels_live());
    stats.state_hash_after_prefill = engine.state_hash();
    stats.orders_min = u64::MAX;
    stats.levels_min = u64::MAX;
    track_sizes(&mut stats, &engine);

    let mut measured = Vec::with_capacity(commands);
    let span = u64::from(a.sweep_max - a.sweep_min + 1);
    'outer: while measured.len() < commands {
        let side = rng.side();
        let n = (u64::from(a.sweep_min) + rng.below(span)) as usize;
        let levels = model.top_levels(0, side.opposite(), n);
        let qty: u64 = levels
            .iter()
            .flat_map(|(_, orders)| orders.iter().map(|o| o.open))
            .sum();
        if qty > 0 {
            let account = TAKER_ACCOUNT_BASE + 1 + rng.below(1_000) as u32;
            let mut o = NewOrder::limit(
                InstrumentId(0),
                AccountId(account),
                ClientOrderId(seq + 1),
                side,
                PriceTicks(config.aggressive_price(side)),
                QtyLots(qty),
            );
            o.tif = TimeInForce::Ioc;
            let (trades, swept) = apply(
                Command::NewOrder(o),
                &mut measured,
                true,
                &mut engine,
                &mut model,
                &mut stats,
                &mut seq,
            );
            stats.ops[OpKind::Ioc.index()] += 1;
            stats.sweeps += 1;
            stats.sweep_trades += trades;
            stats.levels_swept += swept;
            stats.levels_swept_max = stats.levels_swept_max.max(swept);
            track_sizes(&mut stats, &engine);
        }
        // Refill every swept price, best first, on the side that was swept.
        for (price, _) in &levels {
            for _ in 0..a.orders_per_level {
                if measured.len() >= commands {
                    break 'outer;
                }
                let q = config.random_qty(&mut rng);
                let account = config.random_account(&mut rng);
                let c = limit(side.opposite(), *price, q, account, seq + 1);
                apply(
                    c,
                    &mut measured,
                    true,
                    &mut engine,
                    &mut model,
                    &mut stats,
                    &mut seq,
                );
                stats.ops[OpKind::NewGtc.index()] += 1;
                track_sizes(&mut stats, &engine);
            }
        }
    }
    stats.orders_end = u64::from(engine.orders_live());
    stats.levels_end = u64::from(engine.levels_live());
    stats.state_hash_end = engine.state_hash();
    Ok(Workload {
        name: config.name.clone(),
        engine_config,
        config,
        seed,
        prefill,
        measured,
        stats,
    })
}

// ----- recorded workloads (files) -------------------------------------------------------------

/// Replays `prefill` and `measured` on a fresh engine and gathers the statistics a generated
/// workload reports (mix by [`OpKind`], trades, rejects, book sizes, state hashes).
pub fn replay_stats(
    engine_config: &EngineConfig,
    prefill: &[SequencedCommand],
    measured: &[SequencedCommand],
) -> Result<GenStats, String> {
    let mut engine = Engine::new(engine_config.clone()).map_err(|e| e.to_string())?;
    let mut sink = VecSink::default();
    let mut stats = GenStats::default();
    for cmd in prefill {
        engine.apply(cmd, &mut sink);
        count_events(&mut stats, &sink.take(), false);
    }
    stats.orders_after_prefill = u64::from(engine.orders_live());
    stats.levels_after_prefill = u64::from(engine.levels_live());
    stats.state_hash_after_prefill = engine.state_hash();
    stats.orders_min = u64::MAX;
    stats.levels_min = u64::MAX;
    track_sizes(&mut stats, &engine);
    for cmd in measured {
        if let Some(k) = OpKind::of(&cmd.command) {
            stats.ops[k.index()] += 1;
        }
        engine.apply(cmd, &mut sink);
        count_events(&mut stats, &sink.take(), true);
        track_sizes(&mut stats, &engine);
    }
    stats.orders_end = u64::from(engine.orders_live());
    stats.levels_end = u64::from(engine.levels_live());
    stats.state_hash_end = engine.state_hash();
    Ok(stats)
}

/// A `WorkloadConfig` describing a recorded workload as far as it can (name, instruments,
/// limits); the generator fields keep the small preset's values and do not apply.
fn recorded_config(name: &str, engine_config: &EngineConfig) -> WorkloadConfig {
    WorkloadConfig {
        name: name.to_string(),
        instruments: engine_config.instruments.len() as u32,
        limits: engine_config.limits.clone(),
        levels_per_side_max: engine_config
            .instruments
            .iter()
            .map(|i| i.levels_per_side_max)
            .max()
            .unwrap_or(1),
        ..WorkloadConfig::small()
    }
}

fn recorded(
    name: String,
    engine_config: EngineConfig,
    commands: Vec<(u64, Command)>,
    prefill_len: usize,
    measured_max: usize,
) -> Result<Workload, String> {
    let mut all: Vec<SequencedCommand> = commands
        .into_iter()
        .enumerate()
        .map(|(i, (ts_ns, command))| SequencedCommand {
            seq: i as u64 + 1,
            ts_ns,
            command,
        })
        .collect();
    all.truncate(prefill_len.saturating_add(measured_max));
    let measured = all.split_off(prefill_len.min(all.len()));
    let prefill = all;
    let stats = replay_stats(&engine_config, &prefill, &measured)?;
    Ok(Workload {
        config: recorded_config(&name, &engine_config),
        name,
        engine_config,
        seed: 0,
        prefill,
        measured,
        stats,
    })
}

/// Keeps the `[limits]` and `[[instruments]]` tables of a TOML configuration and parses them
/// as the engine's configuration.
pub fn engine_config_from_toml(text: &str, name: &str) -> Result<EngineConfig, String> {
    let mut kept = String::new();
    let mut keep = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            let header: String = t
                .split('#')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            keep = header == "[limits]" || header == "[[instruments]]";
        }
        if keep {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    EngineConfig::from_toml_str(&kept).map_err(|e| format!("{name}: {e}"))
}

/// A command file replayed as the measured part (no pre-fill), at most `commands` commands.
pub fn file_workload(
    path: &Path,
    config: Option<&Path>,
    commands: usize,
) -> Result<Workload, String> {
    let engine_config = match config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read config {}: {e}", p.display()))?;
            engine_config_from_toml(&text, &p.display().to_string())?
        }
        None => engine_config_from_toml(FERROX_DEFAULT_CONFIG, "ferrox's embedded default config")?,
    };
    let cmds = ferrox_replay::cmdfile::read(path, &engine_config.instruments)?;
    if cmds.is_empty() {
        return Err(format!("{}: no commands", path.display()));
    }
    let stem = path
        .file_stem()
        .map_or("file".into(), |s| s.to_string_lossy().into_owned());
    recorded(format!("file-{stem}"), engine_config, cmds, 0, commands)
}

/// Where the LOBSTER sample is: relative to the working directory (the workspace root), or
/// to this crate's source directory.
pub fn lobster_sample_path() -> PathBuf {
    let here = PathBuf::from(LOBSTER_SAMPLE);
    if here.exists() {
        return here;
    }
    let from_crate = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(LOBSTER_SAMPLE);
    if from_crate.exists() {
        return from_crate;
    }
    here
}

/// A LOBSTER message file through the replay importer: the seeding commands are the pre-fill,
/// the message commands (at most `commands`) the measured part.
pub fn lobster_workload(messages: Option<&Path>, commands: usize) -> Result<Workload, String> {
    let default = messages.is_none();
    let path = messages.map_or_else(lobster_sample_path, Path::to_path_buf);
    if !path.exists() {
        return Err(if default {
            format!(
                "the LOBSTER sample is not there: {} (expected /work/shared/data/lobster/ next to \
                 the workspace); give a message file with --workload lobster:PATH",
                path.display()
            )
        } else {
            format!("LOBSTER message file {} does not exist", path.display())
        });
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let messages = ferrox_replay::lobster::parse_messages(&read(&path)?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let file_name = path
        .file_name()
        .map_or(String::new(), |f| f.to_string_lossy().into_owned());
    let book_path = path.with_file_name(file_name.replace("_message_", "_orderbook_"));
    let book = if file_name.contains("_message_") && book_path.exists() {
        Some(
            ferrox_replay::lobster::parse_orderbook(&read(&book_path)?)
                .map_err(|e| format!("{}: {e}", book_path.display()))?,
        )
    } else {
        None
    };
    let symbol = file_name
        .split('_')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("LOBSTER");
    let options = ferrox_replay::lobster::ImportOptions {
        symbol: symbol.to_string(),
        ..Default::default()
    };
    let import = ferrox_replay::lobster::import(&messages, book.as_deref(), &options)?;
    let seeds = import.counts.seed_orders as usize;
    recorded(
        format!("lobster-{}", symbol.to_lowercase()),
        import.config,
        import.commands,
        seeds,
        commands,
    )
}

// ----- the one entry point --------------------------------------------------------------------

/// A parsed workload spec.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadSpec {
    /// small, medium, large, wide (possibly changed by the caller: mix, depth, ...).
    Generated(WorkloadConfig),
    Avalanche(AvalancheConfig),
    /// A LOBSTER message file; `None` is the AAPL sample.
    Lobster(Option<PathBuf>),
    /// A command file and the configuration its instruments come from (`None`: ferrox's
    /// embedded default).
    File {
        path: PathBuf,
        config: Option<PathBuf>,
    },
}

/// Parses "small|medium|large|wide|avalanche|lobster[:path]|file:path".
pub fn parse_spec(spec: &str) -> Result<WorkloadSpec, String> {
    let s = spec.trim();
    if let Some(config) = WorkloadConfig::preset(s) {
        return Ok(WorkloadSpec::Generated(config));
    }
    if s == "avalanche" {
        return Ok(WorkloadSpec::Avalanche(AvalancheConfig::default()));
    }
    if s == "lobster" {
        return Ok(WorkloadSpec::Lobster(None));
    }
    if let Some(p) = s.strip_prefix("lobster:") {
        if p.is_empty() {
            return Err("workload \"lobster:\": the path is empty".into());
        }
        return Ok(WorkloadSpec::Lobster(Some(PathBuf::from(p))));
    }
    if let Some(p) = s.strip_prefix("file:") {
        if p.is_empty() {
            return Err("workload \"file:\": the path is empty".into());
        }
        return Ok(WorkloadSpec::File {
            path: PathBuf::from(p),
            config: None,
        });
    }
    Err(format!(
        "unknown workload {spec:?}; expected {WORKLOAD_NAMES}"
    ))
}

impl WorkloadSpec {
    /// Builds the workload: `commands` measured commands (a cap for recorded ones).
    pub fn build(&self, commands: usize, seed: u64) -> Result<Workload, String> {
        match self {
            WorkloadSpec::Generated(config) => {
                let w = generate(config, commands, seed);
                if w.stats.prefill_rejects + w.stats.rejects > 0 {
                    return Err(format!(
                        "workload {}: the generator saw {} pre-fill and {} measured rejects; \
                         the engine limits do not fit the configuration",
                        config.name, w.stats.prefill_rejects, w.stats.rejects
                    ));
                }
                Ok(w)
            }
            WorkloadSpec::Avalanche(a) => avalanche(a, commands, seed),
            WorkloadSpec::Lobster(p) => lobster_workload(p.as_deref(), commands),
            WorkloadSpec::File { path, config } => file_workload(path, config.as_deref(), commands),
        }
    }

    /// Whether the workload is generated from the seed (rather than read from a file).
    pub fn is_generated(&self) -> bool {
        matches!(
            self,
            WorkloadSpec::Generated(_) | WorkloadSpec::Avalanche(_)
        )
    }
}

/// The single entry point of every tool: parses `spec` and builds the workload.
pub fn workload_by_name(spec: &str, commands: usize, seed: u64) -> Result<Workload, String> {
    parse_spec(spec)?.build(commands, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_clean(w: &Workload) {
        assert_eq!(w.stats.prefill_rejects, 0, "{}: {:?}", w.name, w.stats);
        assert_eq!(w.stats.rejects, 0, "{}: {:?}", w.name, w.stats);
    }

    #[test]
    fn small_and_medium_generate_without_rejects() {
        for name in ["small", "medium"] {
            let w = workload_by_name(name, 2_000, 5).unwrap();
            assert_clean(&w);
            assert_eq!(w.name, name);
            assert_eq!(w.measured.len(), 2_000);
            assert_eq!(w.stats.orders_after_prefill, w.config.target_orders());
            assert_eq!(w.engine_config, w.config.engine_config());
        }
    }

    /// Large and wide are 1M orders: too slow in a debug test. Their limits are checked by
    /// arithmetic, and a reduced instance (same per-book shape, fewer books) is generated.
    #[test]
    fn large_and_wide_limits_fit_and_reduced_instances_are_clean() {
        for (config, tolerance) in [(WorkloadConfig::large(), 20), (WorkloadConfig::wide(), 2)] {
            let per = u64::from(config.orders_per_instrument);
            assert_eq!(config.target_orders(), 1_000_000);
            assert_eq!(tolerance, (per / 50).max(2), "{}", config.name);
            // Worst case of the balancing: every book at target + tolerance + the IOC's slot.
            let worst = u64::from(config.instruments) * (per + tolerance + 1);
            assert!(
                worst <= u64::from(config.limits.orders_max),
                "{}",
                config.name
            );
            // Levels per book side cannot exceed the price range (or the orders on it).
            let side_max = (config.price_range_ticks as u64).min(per + tolerance + 1);
            assert!(
                side_max <= u64::from(config.levels_per_side_max) || config.name == "large",
                "{}",
                config.name
            );
            assert!(
                config.ladder_window_ticks as i64 >= 2 * config.price_range_ticks
                    || config.name == "large"
            );
            Engine::new(
                WorkloadConfig {
                    instruments: 2,
                    limits: Limits {
                        orders_max: 4096,
                        levels_max: 4096,
                        gtd_orders_max: 1,
                    },
                    ..config.clone()
                }
                .engine_config(),
            )
            .unwrap();
            let reduced = WorkloadConfig {
                instruments: if config.name == "wide" { 200 } else { 10 },
                limits: Limits {
                    orders_max: 1 << 16,
                    levels_max: 1 << 16,
                    gtd_orders_max: 1,
                },
                ..config
            };
            let w = generate(&reduced, 20_000, 3);
            assert_clean(&w);
            // The expected level count of the full preset: within 13% headroom of levels_max.
            let per_book = w.stats.levels_max as f64 / f64::from(reduced.instruments);
            let full =
                per_book * f64::from(WorkloadConfig::preset(&reduced.name).unwrap().instruments);
            let limit = f64::from(
                WorkloadConfig::preset(&reduced.name)
                    .unwrap()
                    .limits
                    .levels_max,
            );
            assert!(
                full < limit * 0.97,
                "{}: {full} levels vs {limit}",
                reduced.name
            );
        }
    }

    #[test]
    fn avalanche_sweeps_many_levels_without_rejects() {
        let w = workload_by_name("avalanche", 20_000, 9).unwrap();
        assert_clean(&w);
        let s = &w.stats;
        assert_eq!(s.orders_after_prefill, 5_000);
        assert_eq!(s.levels_after_prefill, 2_500);
        assert_eq!(w.measured.len(), 20_000);
        assert!(s.sweeps > 100, "{s:?}");
        assert!(s.levels_per_sweep() >= 10.0, "{}", s.levels_per_sweep());
        assert!(
            s.levels_swept_max <= 100 && s.levels_swept_max >= 50,
            "{s:?}"
        );
        assert!(s.trades_per_sweep() >= s.levels_per_sweep(), "{s:?}");
        assert_eq!(s.self_trade_cancels, 0);
        assert_eq!(
            s.ioc_remainders, 0,
            "each IOC's quantity is exactly what it sweeps"
        );
        // The refills keep the book whole: never more than the pre-fill, never below it by
        // more than one sweep.
        assert!(
            s.orders_max <= 5_000 && s.levels_min >= 2_500 - 100,
            "{s:?}"
        );
    }

    #[test]
    fn same_seed_same_workload() {
        for name in ["small", "avalanche"] {
            let a = workload_by_name(name, 3_000, 11).unwrap();
            let b = workload_by_name(name, 3_000, 11).unwrap();
            let c = workload_by_name(name, 3_000, 12).unwrap();
            assert_eq!(a.prefill, b.prefill);
            assert_eq!(a.measured, b.measured);
            assert_eq!(a.stats, b.stats);
            assert_ne!(a.measured, c.measured);
            // A replay reaches the generator's state.
            let mut e = a.prefilled_engine();
            assert_eq!(e.state_hash(), a.stats.state_hash_after_prefill);
            for cmd in &a.measured {
                e.apply(cmd, &mut ferrox_protocol::NullSink);
            }
            assert_eq!(e.state_hash(), a.stats.state_hash_end);
        }
    }

    #[test]
    fn unknown_specs_are_refused_precisely() {
        for bad in [
            "",
            "smal",
            "huge",
            "lobster:",
            "file:",
            "avalanche:3",
            "FILE:x",
        ] {
            let e = workload_by_name(bad, 10, 1).err().unwrap();
            assert!(
                e.contains(WORKLOAD_NAMES) || e.contains("path is empty"),
                "{bad}: {e}"
            );
        }
        let e = workload_by_name("file:/nonexistent/x.csv", 10, 1)
            .err()
            .unwrap();
        assert!(e.contains("/nonexistent/x.csv"), "{e}");
        let e = workload_by_name("lobster:/nonexistent/m.csv", 10, 1)
            .err()
            .unwrap();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn mix_parses_and_refuses_precisely() {
        assert_eq!(
            "gtc=9,ioc=3,cancel=6,move=82".parse::<Mix>().unwrap(),
            Mix {
                new_gtc: 9,
                ioc: 3,
                cancel: 6,
                replace: 82
            }
        );
        assert_eq!(
            " ioc = 1 ".parse::<Mix>().unwrap(),
            Mix {
                new_gtc: 0,
                ioc: 1,
                cancel: 0,
                replace: 0
            }
        );
        let err = |s: &str| s.parse::<Mix>().unwrap_err();
        assert!(
            err("gtc=9,fok=1").contains("unknown kind \"fok\""),
            "{}",
            err("gtc=9,fok=1")
        );
        assert!(err("gtc9").contains("expected KEY=WEIGHT"));
        assert!(err("gtc=x").contains("not a whole number"));
        assert!(err("gtc=-1").contains("not a whole number"));
        assert!(err("gtc=1,gtc=2").contains("given twice"));
        assert!(err("gtc=0,ioc=0").contains("every weight is 0"));
        assert!(err("").contains("empty"));
        let m: Mix = "gtc=50,ioc=50".parse().unwrap();
        assert_eq!(m.to_spec().parse::<Mix>().unwrap(), m);
        let w = WorkloadSpec::Generated(WorkloadConfig {
            mix: m,
            ..WorkloadConfig::small()
        })
        .build(2_000, 1)
        .unwrap();
        assert_eq!(w.stats.ops[OpKind::Replace.index()], 0);
        assert!(w.stats.ops[OpKind::Ioc.index()] > 500);
    }

    #[test]
    fn command_file_workload_uses_the_default_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.csv");
        std::fs::write(
            &path,
            format!(
                "{}\n1000,new,AAPL,1,11,sell,limit,190.00,300,gtc,,,,\n2000,new,AAPL,2,21,buy,limit,190.00,100,ioc,,,,\n3000,cancel,,1,13,,,,,,,,,1\n",
                ferrox_replay::cmdfile::HEADER
            ),
        )
        .unwrap();
        let w = workload_by_name(&format!("file:{}", path.display()), 100, 1).unwrap();
        assert_eq!(w.name, "file-feed");
        assert_eq!(w.prefill.len(), 0);
        assert_eq!(w.measured.len(), 3);
        assert_eq!(w.stats.trades, 1);
        assert_eq!(w.stats.rejects, 0);
        assert_eq!(w.stats.orders_end, 0);
        assert_eq!(w.engine_config.instruments.len(), 4);
        // An exchange configuration with other tables is read for its engine part only.
        let cfg = dir.path().join("x.toml");
        std::fs::write(&cfg, "[exchange]\nname = \"x\"\n[limits]\norders_max = 64\nlevels_max = 64\ngtd_orders_max = 1\n[[instruments]]\nsymbol = \"AAPL\"\nprice_decimals = 2\ntick_size = \"0.01\"\nreference_price = \"190.00\"\nprice_band_percent = \"10\"\nqty_max = \"1000\"\nnotional_max = \"1000000\"\n[gateway]\nlisten = \"x\"\n").unwrap();
        let w = WorkloadSpec::File {
            path: path.clone(),
            config: Some(cfg),
        }
        .build(2, 1)
        .unwrap();
        assert_eq!(w.engine_config.instruments.len(), 1);
        assert_eq!(w.engine_config.limits.orders_max, 64);
        assert_eq!(w.measured.len(), 2);
    }

    #[test]
    fn lobster_sample_loads_when_present() {
        let path = lobster_sample_path();
        if !path.exists() {
            println!("skipped: the LOBSTER sample is not at {}", path.display());
            return;
        }
        let w = workload_by_name("lobster", usize::MAX, 1).unwrap();
        assert_eq!(w.name, "lobster-aapl");
        assert!(!w.prefill.is_empty(), "the orderbook file seeds the book");
        assert!(w.measured.len() >= 900, "{}", w.measured.len());
        assert!(w.stats.trades > 0);
        assert_eq!(w.stats.orders_after_prefill, w.prefill.len() as u64);
        let capped = workload_by_name("lobster", 100, 1).unwrap();
        assert_eq!(capped.measured.len(), 100);
        assert_eq!(capped.prefill, w.prefill);
    }
}
