//! `ferrox replay run | to-journal | from-journal | import-lobster`: the command-file and LOBSTER
//! tools of the replay crate, as plain functions that the clap layer calls.
//!
//! Each returns `Err(text)` for the binary to print; human summaries go to stdout (or stderr
//! when stdout carries the data), and `json` asks for one JSON object instead of the text.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ferrox_engine::{EngineConfig, InstrumentSpec};
use ferrox_replay::cmdfile::{self, EventFormat, RunSummary};
use ferrox_replay::lobster::{self, Agreement, ImportOptions, Level};

fn engine_config(config: Option<&PathBuf>) -> Result<EngineConfig, String> {
    Ok(crate::load_config(config)?.engine)
}

fn create(path: &Path) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// The journal directory inside a data directory, or `dir` itself when it is one already.
fn journal_dir(dir: &Path) -> PathBuf {
    let inner = dir.join("journal");
    if inner.is_dir() {
        inner
    } else {
        dir.to_path_buf()
    }
}

fn volume_text(specs: &[InstrumentSpec], summary: &RunSummary) -> Vec<(String, String)> {
    summary
        .volume_lots
        .iter()
        .map(|(i, lots)| {
            let spec = &specs[*i as usize];
            let text = u64::try_from(*lots)
                .map(|l| cmdfile::qty_text(spec, ferrox_engine::QtyLots(l)))
                .unwrap_or_else(|_| format!("{lots} lots"));
            (spec.symbol.clone(), text)
        })
        .collect()
}

/// `ferrox replay run FILE`: runs a command file through a fresh engine and writes the events
/// (to `events`, or stdout) in `format`, then a summary.
pub fn run_file(
    file: &Path,
    config: Option<&PathBuf>,
    events: Option<&Path>,
    format: EventFormat,
    json: bool,
) -> Result<(), String> {
    let config = engine_config(config)?;
    let commands = cmdfile::read(file, &config.instruments)?;
    let summary = match events {
        Some(path) => {
            let mut out = create(path)?;
            let s = cmdfile::run(&config, &commands, Some((&mut out, format)))?;
            out.flush()
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            s
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let s = cmdfile::run(&config, &commands, Some((&mut out, format)))?;
            out.flush().map_err(|e| format!("writing events: {e}"))?;
            s
        }
    };
    let volume = volume_text(&config.instruments, &summary);
    let text = if json {
        let volume: Vec<String> = volume
            .iter()
            .map(|(s, v)| format!("\"{s}\":\"{v}\""))
            .collect();
        let rejects: Vec<String> = summary
            .rejects
            .iter()
            .map(|(c, n)| format!("\"{}\":{n}", c.as_u16()))
            .collect();
        format!(
            "{{\"commands\":{},\"events\":{},\"trades\":{},\"volume\":{{{}}},\"rejects\":{{{}}},\"orders_live\":{},\"state_hash\":\"{:016x}\"}}",
            summary.commands,
            summary.events,
            summary.trades,
            volume.join(","),
            rejects.join(","),
            summary.orders_live,
            summary.state_hash
        )
    } else {
        let mut t = format!(
            "{}: {} commands, {} events, {} trades, {} orders live, state hash {:016x}",
            file.display(),
            summary.commands,
            summary.events,
            summary.trades,
            summary.orders_live,
            summary.state_hash
        );
        for (symbol, v) in &volume {
            t.push_str(&format!("\n  volume {symbol}: {v}"));
        }
        for (code, n) in &summary.rejects {
            t.push_str(&format!("\n  rejects {code}: {n}"));
        }
        t
    };
    // With the events on stdout, the summary must not mix into them.
    if events.is_none() {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    Ok(())
}

/// `ferrox replay to-journal FILE --out DIR`: writes the command file as the journal of data
/// directory `out` (into `out/journal`), for the other replay tools.
pub fn to_journal(file: &Path, config: Option<&PathBuf>, out: &Path) -> Result<(), String> {
    let config = engine_config(config)?;
    let commands = cmdfile::read(file, &config.instruments)?;
    let dir = out.join("journal");
    let records = cmdfile::to_journal(&dir, &commands)?;
    println!(
        "{}: {records} commands journalled in {}",
        file.display(),
        dir.display()
    );
    Ok(())
}

/// `ferrox replay from-journal --data DIR [--out FILE]`: the journal of a data directory (or a
/// journal directory itself) as a command file.
pub fn from_journal(
    data: &Path,
    config: Option<&PathBuf>,
    out: Option<&Path>,
) -> Result<(), String> {
    let config = engine_config(config)?;
    let commands = cmdfile::from_journal(&journal_dir(data))?;
    let text = cmdfile::write(&config.instruments, &commands)?;
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("{} commands written to {}", commands.len(), path.display());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("writing stdout: {e}"))?;
        }
    }
    Ok(())
}

fn level_text(l: &Level) -> String {
    match l {
        Some((p, q)) => format!("{q} @ {}", rust_decimal::Decimal::new(*p, 4)),
        None => "empty".into(),
    }
}

fn agreement_text(a: &Agreement) -> String {
    let pct = |n: usize| format!("{n}/{} ({:.1}%)", a.rows, Agreement::percent(n, a.rows));
    let mut t = format!(
        "rows compared: {} over {} levels\n  all levels equal: {}\n  top 5 equal:      {}\n  top of book equal: {}",
        a.rows,
        a.levels,
        pct(a.rows_equal),
        pct(a.rows_equal_top5),
        pct(a.rows_equal_top1)
    );
    for (category, n) in &a.categories {
        t.push_str(&format!("\n  disagreeing rows, {category}: {n}"));
        for e in a.examples.get(category).into_iter().flatten() {
            t.push_str(&format!(
                "\n    row {} {:?} level {}: expected {}, got {}",
                e.row,
                e.side,
                e.level,
                level_text(&e.expected),
                level_text(&e.got)
            ));
        }
    }
    t
}

fn agreement_json(a: &Agreement) -> String {
    let categories: Vec<String> = a
        .categories
        .iter()
        .map(|(k, n)| format!("\"{k}\":{n}"))
        .collect();
    format!(
        "{{\"rows\":{},\"levels\":{},\"rows_equal\":{},\"rows_equal_top5\":{},\"rows_equal_top1\":{},\"disagreements\":{{{}}}}}",
        a.rows,
        a.levels,
        a.rows_equal,
        a.rows_equal_top5,
        a.rows_equal_top1,
        categories.join(",")
    )
}

/// What `import_lobster` is asked to do.
pub struct LobsterArgs<'a> {
    pub messages: &'a Path,
    pub orderbook: Option<&'a Path>,
    pub levels: usize,
    /// Write the command stream as the journal of this data directory (plus its config).
    pub journal: Option<&'a Path>,
    /// Write the command stream as a command file.
    pub commands: Option<&'a Path>,
    /// Do not reconcile levels entering the window from the orderbook file.
    pub no_reveal: bool,
    pub symbol: &'a str,
    pub json: bool,
}

/// `ferrox replay import-lobster`: converts a LOBSTER message file into commands, replays them
/// and, with an orderbook file, reports agreement row by row.
pub fn import_lobster(args: &LobsterArgs<'_>) -> Result<(), String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let messages = lobster::parse_messages(&read(args.messages)?)
        .map_err(|e| format!("{}: {e}", args.messages.display()))?;
    let book = match args.orderbook {
        Some(p) => {
            Some(lobster::parse_orderbook(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let options = ImportOptions {
        symbol: args.symbol.to_string(),
        levels: args.levels,
        reveal: !args.no_reveal,
        ..ImportOptions::default()
    };
    let import = lobster::import(&messages, book.as_deref(), &options)?;
    if let Some(dir) = args.journal {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        cmdfile::to_journal(&dir.join("journal"), &import.commands)?;
        let config_path = dir.join("ferrox.toml");
        std::fs::write(&config_path, lobster::config_toml(&import.config))
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        eprintln!(
            "journal written to {}; replay it with --config {}",
            dir.join("journal").display(),
            config_path.display()
        );
    }
    if let Some(path) = args.commands {
        let text = cmdfile::write(&import.config.instruments, &import.commands)?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let c = &import.counts;
    if args.json {
        println!(
            "{{\"messages\":{},\"commands\":{},\"trades\":{},\"seed_orders\":{},\"revealed_levels\":{},\"window_removals\":{},\"unknown_cancels\":{},\"unknown_executions\":{},\"hidden_executions_skipped\":{},\"cross_trades_skipped\":{},\"halts_skipped\":{},\"state_hash\":\"{:016x}\",\"agreement\":{}}}",
            c.messages,
            c.commands,
            c.trades,
            c.seed_orders,
            c.revealed_levels,
            c.window_removals,
            c.unknown_cancels,
            c.unknown_executions,
            c.hidden_executions_skipped,
            c.cross_trades_skipped,
            c.halts_skipped,
            import.state_hash,
            import.agreement.as_ref().map_or("null".into(), agreement_json)
        );
        return Ok(());
    }
    println!(
        "{}: {} messages -> {} commands ({} new, {} partial cancels, {} deletes, {} executions; skipped {} hidden executions, {} crosses, {} halts)",
        args.messages.display(),
        c.messages,
        c.commands,
        c.new_orders,
        c.partial_cancels,
        c.deletes,
        c.executions,
        c.hidden_executions_skipped,
        c.cross_trades_skipped,
        c.halts_skipped
    );
    println!(
        "  {} trades; seed orders {}, levels revealed {}, levels reduced {}; pre-window orders: {} cancels, {} executions; shortfalls: {} cancel, {} execution shares",
        c.trades,
        c.seed_orders,
        c.revealed_levels,
        c.window_removals,
        c.unknown_cancels,
        c.unknown_executions,
        c.unknown_cancel_shortfall,
        c.execution_shortfall
    );
    println!("  final state hash {:016x}", import.state_hash);
    if let Some(a) = &import.agreement {
        println!("{}", agreement_text(a));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
ts_ns,type,instrument,account,client_order_id,side,order_type,price,qty,tif,expire_ts_ns,post_only,stp,order_id
1000,new,AAPL,1,11,sell,limit,190.00,300,gtc,,,,
2000,new,AAPL,2,21,buy,limit,190.00,100,ioc,,,,
";

    #[test]
    fn run_to_journal_and_back_with_the_default_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.csv");
        std::fs::write(&file, FILE).unwrap();
        let events = dir.path().join("events.jsonl");
        run_file(&file, None, Some(&events), EventFormat::Jsonl, true).unwrap();
        let text = std::fs::read_to_string(&events).unwrap();
        assert_eq!(text.lines().filter(|l| l.contains("\"trade\"")).count(), 1);
        let data = dir.path().join("data");
        to_journal(&file, None, &data).unwrap();
        let back = dir.path().join("back.csv");
        from_journal(&data, None, Some(&back)).unwrap();
        let expected = cmdfile::write(
            &engine_config(None).unwrap().instruments,
            &cmdfile::read(&file, &engine_config(None).unwrap().instruments).unwrap(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&back).unwrap(), expected);
        assert!(run_file(
            &dir.path().join("missing.csv"),
            None,
            None,
            EventFormat::Csv,
            false
        )
        .unwrap_err()
        .contains("missing.csv"));
    }

    #[test]
    fn lobster_import_writes_a_journal_its_config_replays() {
        let dir = tempfile::tempdir().unwrap();
        let messages = dir.path().join("m.csv");
        let book = dir.path().join("b.csv");
        std::fs::write(&messages, "1.0,1,7,5,100,1\n2.0,4,7,2,100,1\n").unwrap();
        std::fs::write(&book, "110,3,100,15\n110,3,100,13\n").unwrap();
        let out = dir.path().join("data");
        import_lobster(&LobsterArgs {
            messages: &messages,
            orderbook: Some(&book),
            levels: 1,
            journal: Some(&out),
            commands: None,
            no_reveal: false,
            symbol: "AAPL",
            json: true,
        })
        .unwrap();
        let config = out.join("ferrox.toml");
        let back = dir.path().join("back.csv");
        from_journal(&out, Some(&config), Some(&back)).unwrap();
        let text = std::fs::read_to_string(&back).unwrap();
        assert!(
            text.contains(",new,AAPL,2,7,sell,limit,0.0100,2,ioc,"),
            "{text}"
        );
    }

    #[test]
    fn lobster_sample_report() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/lobster");
        if !dir.is_dir() {
            eprintln!("skipping: LOBSTER sample not found at {}", dir.display());
            return;
        }
        let base = dir.join("AAPL_2012-06-21_34200000_57600000");
        let messages = PathBuf::from(format!("{}_message_10.csv", base.display()));
        let book = PathBuf::from(format!("{}_orderbook_10.csv", base.display()));
        for json in [false, true] {
            import_lobster(&LobsterArgs {
                messages: &messages,
                orderbook: Some(&book),
                levels: 10,
                journal: None,
                commands: None,
                no_reveal: false,
                symbol: "AAPL",
                json,
            })
            .unwrap();
        }
    }
}
