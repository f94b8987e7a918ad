//! `ferrox replay ...`: the replay crate's tools on a data directory.
//!
//! Every subcommand opens the data directory read-only (no journal lock), so it can run next
//! to a live exchange. The engine configuration must be the one the exchange ran with, because
//! replay re-executes the commands; `--config` names it (the embedded default otherwise) and
//! `--data` overrides the configuration's data directory.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use ferrox_engine::{AccountId, EngineConfig, InstrumentId};
use ferrox_replay::book::{engine_at, write_book, At};
use ferrox_replay::export::{self, Filter, Format};
use ferrox_replay::{verify, DataDir, VerifyOptions};

/// The data directory and configuration every replay subcommand needs.
#[derive(Args, Clone, Debug)]
pub struct SourceArgs {
    /// The exchange's TOML configuration (the embedded default without it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The data directory (holding journal/ and snapshots/); defaults to the configuration's.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub quiet: bool,
}

impl SourceArgs {
    /// Loads the configuration and opens the data directory.
    pub fn open(&self) -> Result<(EngineConfig, DataDir), String> {
        let config = crate::load_config(self.config.as_ref())?;
        let dir = self.data.clone().unwrap_or(config.exchange.data_dir);
        let data = DataDir::open(&dir).map_err(|e| e.to_string())?;
        Ok((config.engine, data))
    }
}

/// Which commands and events to look at.
#[derive(Args, Clone, Debug, Default)]
pub struct FilterArgs {
    /// Only this instrument (its symbol).
    #[arg(long)]
    pub instrument: Option<String>,
    /// Only this account (as taker or maker for trades).
    #[arg(long)]
    pub account: Option<u32>,
    /// First seq (inclusive).
    #[arg(long)]
    pub from_seq: Option<u64>,
    /// Last seq (inclusive).
    #[arg(long)]
    pub to_seq: Option<u64>,
    /// Earliest time: ns since the epoch or ISO-8601 UTC (2026-01-02T09:30:00Z).
    #[arg(long)]
    pub from_time: Option<String>,
    /// Latest time (inclusive), as --from-time.
    #[arg(long)]
    pub to_time: Option<String>,
}

impl FilterArgs {
    pub fn filter(&self, config: &EngineConfig) -> Result<Filter, String> {
        let instrument = match &self.instrument {
            None => None,
            Some(s) => Some(symbol(config, s)?),
        };
        Ok(Filter {
            instrument,
            account: self.account.map(AccountId),
            seq_from: self.from_seq,
            seq_to: self.to_seq,
            ts_from: self.from_time.as_deref().map(parse_time).transpose()?,
            ts_to: self.to_time.as_deref().map(parse_time).transpose()?,
        })
    }
}

fn symbol(config: &EngineConfig, s: &str) -> Result<InstrumentId, String> {
    config
        .instruments
        .iter()
        .position(|i| i.symbol == s)
        .map(|i| InstrumentId(i as u32))
        .ok_or_else(|| format!("no instrument {s:?} in the configuration"))
}

/// Output formats of the subcommands.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    /// Human-readable (JSON lines for `dump`).
    Text,
    Csv,
    /// Machine-readable JSON (JSON lines for `dump`).
    Json,
}

impl From<OutFormat> for Format {
    fn from(f: OutFormat) -> Format {
        match f {
            OutFormat::Text => Format::Text,
            OutFormat::Csv => Format::Csv,
            OutFormat::Json => Format::Json,
        }
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum ReplayCmd {
    /// Re-execute the journal and check it against every snapshot and against a second replay
    /// from the newest snapshot before the journal's end; report the first divergence.
    Verify {
        #[command(flatten)]
        source: SourceArgs,
        /// Start from the snapshot with this seq instead of the journal's start.
        #[arg(long)]
        from_snapshot: Option<u64>,
        #[arg(long, value_enum, default_value_t = OutFormat::Text)]
        format: OutFormat,
    },
    /// Commands and their events as JSON lines or CSV.
    Dump {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// `text` and `json` both give JSON lines.
        #[arg(long, value_enum, default_value_t = OutFormat::Json)]
        format: OutFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Every trade as CSV.
    Trades {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Per-instrument counts, volume, VWAP and OHLC (per --interval, e.g. 1m).
    Stats {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Bar length: 500ms, 10s, 1m, 1h, 1d.
        #[arg(long)]
        interval: Option<String>,
        #[arg(long, value_enum, default_value_t = OutFormat::Text)]
        format: OutFormat,
    },
    /// The book of an instrument after a seq or at a time (the end of the journal by default).
    Book {
        #[command(flatten)]
        source: SourceArgs,
        /// The instrument's symbol.
        symbol: String,
        #[arg(long, conflicts_with = "at_time")]
        at_seq: Option<u64>,
        /// ns since the epoch or ISO-8601 UTC.
        #[arg(long)]
        at_time: Option<String>,
        /// Levels per side.
        #[arg(long, default_value_t = 10)]
        depth: usize,
        /// Every order of each level (L3) rather than level totals (L2).
        #[arg(long)]
        l3: bool,
        #[arg(long, value_enum, default_value_t = OutFormat::Text)]
        format: OutFormat,
    },
    /// Run a command file (docs/command-file.md) through a fresh engine and write its events:
    /// "what if" scenarios.
    Run {
        /// The command file.
        file: PathBuf,
        /// Engine configuration (TOML); the embedded default without it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the events here (the summary then goes to stdout); default: events on stdout,
        /// summary on stderr.
        #[arg(long)]
        events: Option<PathBuf>,
        /// Event format: csv or jsonl.
        #[arg(long, default_value = "csv")]
        format: ferrox_replay::cmdfile::EventFormat,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Turn a command file into the journal of data directory OUT (OUT/journal).
    ToJournal {
        file: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a journal (a data directory or its journal/ directory) as a command file.
    FromJournal {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output file; stdout without it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import LOBSTER data, replay it and compare the rebuilt book with the orderbook file row
    /// by row.
    ImportLobster {
        #[arg(long)]
        messages: PathBuf,
        #[arg(long)]
        orderbook: Option<PathBuf>,
        /// Levels compared per side (at most the orderbook file's).
        #[arg(long, default_value_t = 10)]
        levels: usize,
        /// Also write the commands as the journal of this data directory, with its ferrox.toml.
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Also write the commands as a command file.
        #[arg(long)]
        commands: Option<PathBuf>,
        /// Use the message file alone: do not reconcile levels entering the window.
        #[arg(long)]
        no_reveal: bool,
        #[arg(long, default_value = "AAPL")]
        symbol: String,
        /// Machine-readable output (one JSON object).
        #[arg(long)]
        json: bool,
    },
}

/// Runs one replay subcommand.
pub fn run(cmd: ReplayCmd) -> Result<(), String> {
    use crate::replay_tools;
    match cmd {
        ReplayCmd::Run {
            file,
            config,
            events,
            format,
            json,
        } => replay_tools::run_file(&file, config.as_ref(), events.as_deref(), format, json),
        ReplayCmd::ToJournal { file, config, out } => {
            replay_tools::to_journal(&file, config.as_ref(), &out)
        }
        ReplayCmd::FromJournal { data, config, out } => {
            replay_tools::from_journal(&data, config.as_ref(), out.as_deref())
        }
        ReplayCmd::ImportLobster {
            messages,
            orderbook,
            levels,
            journal,
            commands,
            no_reveal,
            symbol,
            json,
        } => replay_tools::import_lobster(&replay_tools::LobsterArgs {
            messages: &messages,
            orderbook: orderbook.as_deref(),
            levels,
            journal: journal.as_deref(),
            commands: commands.as_deref(),
            no_reveal,
            symbol: &symbol,
            json,
        }),
        ReplayCmd::Verify {
            source,
            from_snapshot,
            format,
        } => run_verify(&source, from_snapshot, format),
        ReplayCmd::Dump {
            source,
            filter,
            format,
            output,
        } => {
            let (config, data) = source.open()?;
            let filter = filter.filter(&config)?;
            let format = if format == OutFormat::Csv {
                Format::Csv
            } else {
                Format::Json
            };
            let mut out = output_to(output.as_ref())?;
            let lines = export::dump(&data, &config, &filter, format, !source.quiet, &mut out)
                .map_err(|e| e.to_string())?;
            eprintln!("{lines} lines written");
            Ok(())
        }
        ReplayCmd::Trades {
            source,
            filter,
            output,
        } => {
            let (config, data) = source.open()?;
            let filter = filter.filter(&config)?;
            let mut out = output_to(output.as_ref())?;
            let n = export::trades(&data, &config, &filter, !source.quiet, &mut out)
                .map_err(|e| e.to_string())?;
            eprintln!("{n} trades written");
            Ok(())
        }
        ReplayCmd::Stats {
            source,
            filter,
            interval,
            format,
        } => {
            let (config, data) = source.open()?;
            let filter = filter.filter(&config)?;
            let interval = interval
                .as_deref()
                .map(export::parse_interval)
                .transpose()?;
            let stats = export::stats(&data, &config, &filter, interval, !source.quiet)
                .map_err(|e| e.to_string())?;
            let mut out = std::io::stdout().lock();
            stats
                .write(format.into(), &mut out)
                .map_err(|e| e.to_string())
        }
        ReplayCmd::Book {
            source,
            symbol: sym,
            at_seq,
            at_time,
            depth,
            l3,
            format,
        } => {
            let (config, data) = source.open()?;
            let instrument = symbol(&config, &sym)?;
            let at = match (at_seq, at_time) {
                (Some(s), _) => At::Seq(s),
                (None, Some(t)) => At::Time(parse_time(&t)?),
                (None, None) => At::End,
            };
            let rebuilt = engine_at(&data, &config, at).map_err(|e| e.to_string())?;
            let book = rebuilt
                .engine
                .book(instrument)
                .ok_or_else(|| format!("no book for {sym}"))?;
            let mut out = std::io::stdout().lock();
            write_book(
                &mut out,
                &rebuilt.engine,
                instrument,
                &book,
                depth,
                l3,
                format.into(),
            )
            .map_err(|e| e.to_string())?;
            eprintln!(
                "rebuilt from {} plus {} commands",
                rebuilt
                    .snapshot
                    .map_or("the journal's start".to_string(), |s| format!(
                        "snapshot {s}"
                    )),
                rebuilt.replayed
            );
            Ok(())
        }
    }
}

fn run_verify(
    source: &SourceArgs,
    from_snapshot: Option<u64>,
    format: OutFormat,
) -> Result<(), String> {
    let (config, data) = source.open()?;
    let options = VerifyOptions {
        from_snapshot,
        progress: !source.quiet,
    };
    let report = verify(&data, &config, &options).map_err(|e| e.to_string())?;
    let divergence = report.divergence.as_ref().map(|d| d.to_string());
    let checked: Vec<String> = report
        .snapshots_checked
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = std::io::stdout().lock();
    let written = if format == OutFormat::Json {
        let skipped: Vec<String> = report
            .snapshots_skipped
            .iter()
            .map(|(p, why)| {
                format!(
                    "{{\"path\":{},\"reason\":{}}}",
                    json(&p.display().to_string()),
                    json(why)
                )
            })
            .collect();
        writeln!(
            out,
            "{{\"ok\":{},\"commands\":{},\"started_from_snapshot\":{},\"snapshots_checked\":[{}],\"snapshots_skipped\":[{}],\"events_from_snapshot\":{},\"events_compared\":{},\"last_seq\":{},\"final_state_hash\":\"{:016x}\",\"seconds\":{:.6},\"commands_per_sec\":{:.0},\"divergence\":{}}}",
            report.ok(),
            report.commands,
            report.started_from.map_or("null".into(), |s| s.to_string()),
            checked.join(","),
            skipped.join(","),
            report.events_from.map_or("null".into(), |s| s.to_string()),
            report.events_compared,
            report.last_seq,
            report.final_state_hash,
            report.elapsed.as_secs_f64(),
            report.rate(),
            divergence.as_deref().map_or("null".into(), json),
        )
    } else {
        (|| {
            writeln!(
                out,
                "replayed {} commands from {} to seq {} in {:.3} s ({:.1} M commands/s)",
                report.commands,
                report
                    .started_from
                    .map_or("the start".to_string(), |s| format!("snapshot {s}")),
                report.last_seq,
                report.elapsed.as_secs_f64(),
                report.rate() / 1e6
            )?;
            writeln!(
                out,
                "snapshots checked: {} [{}]",
                checked.len(),
                checked.join(", ")
            )?;
            for (p, why) in &report.snapshots_skipped {
                writeln!(out, "snapshot skipped: {}: {why}", p.display())?;
            }
            if let Some(s) = report.events_from {
                writeln!(
                    out,
                    "events compared from snapshot {s}: {} events over {} commands",
                    report.events_compared, report.events_commands
                )?;
            }
            writeln!(out, "final state hash: {:016x}", report.final_state_hash)?;
            match &divergence {
                None => writeln!(out, "OK: the replay matches the record"),
                Some(d) => writeln!(out, "DIVERGENCE: {d}"),
            }
        })()
    };
    written.map_err(|e| e.to_string())?;
    match divergence {
        None => Ok(()),
        Some(d) => Err(format!("verify failed: {d}")),
    }
}

fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn output_to(path: Option<&PathBuf>) -> Result<Box<dyn Write>, String> {
    Ok(match path {
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
        )),
    })
}

/// Parses a time given as ns since the epoch or as ISO-8601 UTC
/// (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`).
pub fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(ns) = s.parse::<u64>() {
        return Ok(ns);
    }
    let bad = || format!("bad time {s:?}: give ns since the epoch or YYYY-MM-DDTHH:MM:SS[.f]Z");
    let t = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let h: Vec<u64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || h.len() != 3 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let days = u64::try_from(days).map_err(|_| bad())?;
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().map_err(|_| bad())? * 10u64.pow(9 - frac.len() as u32)
    };
    Ok(((days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2]) * 1_000_000_000) + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_both_ways() {
        assert_eq!(
            parse_time("1700000000000000000"),
            Ok(1_700_000_000_000_000_000)
        );
        let t = parse_time("2023-11-14T22:13:20.5Z").unwrap();
        assert_eq!(t, 1_700_000_000_500_000_000);
        assert_eq!(export::iso8601(t), "2023-11-14T22:13:20.500000000Z");
        assert!(parse_time("yesterday").is_err());
    }
}
