//! The replay tools against data directories written the way the exchange writes them.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ferrox_engine::event::Trade;
use ferrox_engine::{
    AccountId, BookSnapshot, EngineConfig, Event, InstrumentId, InstrumentSpec, Limits, PriceTicks,
    QtyLots,
};
use ferrox_replay::book::{engine_at, At};
use ferrox_replay::export::{self, decimal, iso8601, Filter, Format};
use ferrox_replay::fixture::{write_data_dir, FlowOptions};
use ferrox_replay::{verify, DataDir, Divergence, ReplayError, VerifyOptions};

const COMMANDS: u64 = 20_000;
const SNAPSHOT_EVERY: u64 = 4_000;

fn config() -> EngineConfig {
    let mut b = InstrumentSpec::simple("BBB", 50_000);
    b.qty_decimals = 3;
    b.tick_size = PriceTicks(5);
    b.lot_size = QtyLots(10);
    EngineConfig {
        limits: Limits::default(),
        instruments: vec![InstrumentSpec::simple("AAA", 10_000), b],
    }
}

fn options(seed: u64) -> FlowOptions {
    FlowOptions {
        commands: COMMANDS,
        seed,
        snapshot_every: SNAPSHOT_EVERY,
        // About 5,000 records per segment, so the journal has several full segments and a tail.
        segment_bytes: 1 << 19,
        ..FlowOptions::default()
    }
}

/// A recorded run with what the engine said along the way.
struct Run {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    trades: Vec<(u64, u64, Trade)>,
    books: Vec<(u64, u64, BookSnapshot)>,
    final_hash: u64,
}

fn record(seed: u64, book_seqs: &[u64]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut trades = Vec::new();
    let mut books = Vec::new();
    let engine = write_data_dir(&dir, &config(), &options(seed), |cmd, events, engine| {
        for e in events {
            if let Event::Trade(t) = e {
                trades.push((cmd.seq, cmd.ts_ns, *t));
            }
        }
        if book_seqs.contains(&cmd.seq) {
            books.push((cmd.seq, cmd.ts_ns, engine.book(InstrumentId(1)).unwrap()));
        }
    })
    .unwrap();
    Run {
        _tmp: tmp,
        dir,
        trades,
        books,
        final_hash: engine.state_hash(),
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "fxj"))
        .collect();
    v.sort();
    v
}

#[test]
fn verify_passes_on_a_recorded_run() {
    let run = record(1, &[]);
    let data = DataDir::open(&run.dir).unwrap();
    let report = verify(&data, &config(), &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:?}", report.divergence);
    assert_eq!(report.commands, COMMANDS);
    assert_eq!(report.last_seq, COMMANDS);
    // The exchange keeps the newest three snapshots.
    assert_eq!(report.snapshots_checked, vec![12_000, 16_000, 20_000]);
    assert_eq!(report.final_state_hash, run.final_hash);
    // Events are compared from the newest snapshot before the journal's end.
    assert_eq!(data.last_seq_hint(), Some(COMMANDS));
    assert_eq!(report.events_from, Some(16_000));
    assert_eq!(report.events_commands, 4_000);
    assert!(report.events_compared > 4_000);

    // From a snapshot, the event comparison covers the tail after the newest snapshot.
    let from = verify(
        &data,
        &config(),
        &VerifyOptions {
            from_snapshot: Some(12_000),
            progress: false,
        },
    )
    .unwrap();
    assert!(from.ok());
    assert_eq!(from.commands, COMMANDS - 12_000);
    assert_eq!(from.snapshots_checked, vec![16_000, 20_000]);
    assert_eq!(from.final_state_hash, run.final_hash);
}

#[test]
fn verify_compares_events_over_the_overlap() {
    // A snapshot before the end leaves a tail over which both replays' events are compared.
    let run = record(2, &[]);
    std::fs::remove_file(run.dir.join("snapshots/snapshot-00000000000000020000.fxs")).unwrap();
    let data = DataDir::open(&run.dir).unwrap();
    let report = verify(&data, &config(), &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:?}", report.divergence);
    assert_eq!(report.events_from, Some(16_000));
    assert_eq!(report.events_commands, 4_000);
    assert!(report.events_compared > 4_000);
}

#[test]
fn verify_reports_a_snapshot_from_another_history() {
    let run = record(3, &[]);
    let other = record(4, &[]);
    let name = "snapshots/snapshot-00000000000000016000.fxs";
    std::fs::copy(other.dir.join(name), run.dir.join(name)).unwrap();
    let data = DataDir::open(&run.dir).unwrap();
    let report = verify(&data, &config(), &VerifyOptions::default()).unwrap();
    match report.divergence {
        Some(Divergence::State {
            seq,
            replayed_hash,
            snapshot_hash,
            ref detail,
            ..
        }) => {
            assert_eq!(seq, 16_000);
            assert_ne!(replayed_hash, snapshot_hash);
            assert!(detail.contains("instrument AAA book differs"), "{detail}");
            assert!(detail.contains("level 0"), "{detail}");
        }
        other => panic!("expected a state divergence, got {other:?}"),
    }
    assert_eq!(report.snapshots_checked, vec![12_000, 16_000]);
    assert!(report.divergence.unwrap().to_string().contains("seq 16000"));
}

fn read_all(dir: &Path) -> Result<u64, ReplayError> {
    let data = DataDir::open(dir)?;
    let mut n = 0;
    for c in data.commands() {
        c?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn a_flipped_byte_names_file_offset_and_seq() {
    let run = record(5, &[]);
    assert_eq!(read_all(&run.dir).unwrap(), COMMANDS);
    let first = &segments(&run.dir)[0];
    // Record 101 (seq 101) starts at 64 + 100 * 104; flip a byte of its payload.
    let offset = 64 + 100 * 104;
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(first)
        .unwrap();
    f.seek(SeekFrom::Start(offset + 40)).unwrap();
    f.write_all(&[0xA5]).unwrap();
    drop(f);
    let err = read_all(&run.dir).unwrap_err().to_string();
    let name = first.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    assert!(err.contains(&format!("byte offset {offset}")), "{err}");
    assert!(err.contains("expected seq 101"), "{err}");
    // Verify stops with the same error rather than panicking.
    let data = DataDir::open(&run.dir).unwrap();
    let err = verify(&data, &config(), &VerifyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(name) && err.contains("seq 101"), "{err}");
}

#[test]
fn truncated_journals_name_file_offset_and_seq() {
    let run = record(6, &[]);
    let segs = segments(&run.dir);
    assert!(segs.len() >= 3, "{segs:?}");
    let last = segs.last().unwrap();
    let first_seq: u64 = last
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("journal-")
        .trim_end_matches(".fxj")
        .parse()
        .unwrap();
    // Cut the last segment in the middle of its 11th record.
    let cut = 64 + 10 * 104;
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(cut + 50)
        .unwrap();
    match read_all(&run.dir) {
        Err(ReplayError::TornTail {
            path, offset, seq, ..
        }) => {
            assert_eq!(&path, last);
            assert_eq!(offset, cut);
            assert_eq!(seq, first_seq + 10);
        }
        other => panic!("expected a torn tail, got {other:?}"),
    }
    // A segment that is not the last, cut short: the reader names it.
    let middle = &segs[1];
    OpenOptions::new()
        .write(true)
        .open(middle)
        .unwrap()
        .set_len(64 + 104 * 7 + 13)
        .unwrap();
    let err = read_all(&run.dir).unwrap_err().to_string();
    let name = middle.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    assert!(err.contains("offset"), "{err}");
}

#[test]
fn dump_filters_by_instrument_account_and_range() {
    let run = record(7, &[]);
    let data = DataDir::open(&run.dir).unwrap();
    let filter = Filter {
        instrument: Some(InstrumentId(1)),
        account: Some(AccountId(3)),
        seq_from: Some(13_001),
        seq_to: Some(14_000),
        ..Filter::default()
    };
    let mut out = Vec::new();
    let lines = export::dump(&data, &config(), &filter, Format::Json, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count() as u64, lines);
    assert!(lines > 20, "{text}");
    for line in text.lines() {
        let seq: u64 = line["{\"seq\":".len()..line.find(',').unwrap()]
            .parse()
            .unwrap();
        assert!((13_001..=14_000).contains(&seq), "{line}");
        if line.contains("\"record\":\"event\"") {
            assert!(line.contains("\"instrument\":\"BBB\""), "{line}");
            assert!(
                line.contains("\"account\":3") || line.contains("\"maker_account\":3"),
                "{line}"
            );
        }
    }
    // Every trade of account 3 on BBB in the range shows up.
    let expected = run
        .trades
        .iter()
        .filter(|(s, _, t)| {
            (13_001..=14_000).contains(s)
                && t.instrument == InstrumentId(1)
                && (t.maker_account.0 == 3 || t.taker_account.0 == 3)
        })
        .count();
    assert_eq!(text.matches("\"kind\":\"trade\"").count(), expected);

    // The CSV form has the same rows, one header, and a fixed column count.
    let mut out = Vec::new();
    let csv_lines = export::dump(&data, &config(), &filter, Format::Csv, false, &mut out).unwrap();
    let csv = String::from_utf8(out).unwrap();
    assert_eq!(csv_lines, lines);
    assert_eq!(csv.lines().count() as u64, lines + 1);
    for line in csv.lines() {
        assert_eq!(line.split(',').count(), 12, "{line}");
    }

    // A time range selects the same commands as the seq range it corresponds to.
    let o = options(7);
    let by_time = Filter {
        seq_from: None,
        seq_to: None,
        ts_from: Some(o.ts_start_ns + 13_001 * o.ts_step_ns),
        ts_to: Some(o.ts_start_ns + 14_000 * o.ts_step_ns),
        ..filter
    };
    let mut out2 = Vec::new();
    export::dump(&data, &config(), &by_time, Format::Json, false, &mut out2).unwrap();
    assert_eq!(String::from_utf8(out2).unwrap(), text);
}

#[test]
fn trades_csv_matches_the_engines_trade_events() {
    let run = record(8, &[]);
    assert!(run.trades.len() > 100);
    let data = DataDir::open(&run.dir).unwrap();
    let mut out = Vec::new();
    let n = export::trades(&data, &config(), &Filter::default(), false, &mut out).unwrap();
    assert_eq!(n as usize, run.trades.len());
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(export::TRADES_CSV_HEADER));
    let cfg = config();
    for ((seq, ts, t), line) in run.trades.iter().zip(lines) {
        let spec = &cfg.instruments[t.instrument.0 as usize];
        let expected = format!(
            "{ts},{},{seq},{},{},{},{},{:?},{},{},{},{}",
            iso8601(*ts),
            t.trade_id.0,
            spec.symbol,
            decimal(t.price.0.into(), spec.price_decimals),
            decimal(t.qty.0.into(), spec.qty_decimals),
            t.aggressor_side,
            t.maker_order_id.0,
            t.maker_account.0,
            t.taker_order_id.0,
            t.taker_account.0
        );
        assert_eq!(line, expected);
    }
    // Spot-check the decimal scaling on the instrument with decimals in both fields.
    assert!(text.contains("2026-01-02T09:30:"));
    assert!(text.lines().any(|l| l.contains(",BBB,") && l.contains(".")));
}

#[test]
fn book_at_a_seq_or_time_starts_from_a_snapshot() {
    let run = record(9, &[13_500, 20_000]);
    let data = DataDir::open(&run.dir).unwrap();
    let (seq, ts, expected) = &run.books[0];
    let at_seq = engine_at(&data, &config(), At::Seq(*seq)).unwrap();
    assert_eq!(at_seq.snapshot, Some(12_000));
    assert_eq!(at_seq.replayed, 1_500);
    assert_eq!(&at_seq.engine.book(InstrumentId(1)).unwrap(), expected);
    assert!(!expected.bids.is_empty() && !expected.asks.is_empty());
    let at_time = engine_at(&data, &config(), At::Time(*ts)).unwrap();
    assert_eq!(at_time.snapshot, Some(12_000));
    assert_eq!(&at_time.engine.book(InstrumentId(1)).unwrap(), expected);
    // At a snapshot's own seq nothing is replayed.
    let (seq, _, expected) = &run.books[1];
    let end = engine_at(&data, &config(), At::Seq(*seq)).unwrap();
    assert_eq!((end.snapshot, end.replayed), (Some(20_000), 0));
    assert_eq!(&end.engine.book(InstrumentId(1)).unwrap(), expected);

    let mut out = Vec::new();
    ferrox_replay::book::write_book(
        &mut out,
        &at_seq.engine,
        InstrumentId(1),
        &run.books[0].2,
        5,
        false,
        Format::Csv,
    )
    .unwrap();
    let csv = String::from_utf8(out).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5 + 5, "{csv}");
}

#[test]
fn stats_count_trades_volume_and_bars() {
    let run = record(10, &[]);
    let data = DataDir::open(&run.dir).unwrap();
    let stats = export::stats(
        &data,
        &config(),
        &Filter::default(),
        Some(1_000_000_000),
        false,
    )
    .unwrap();
    for i in 0..2u32 {
        let trades: Vec<_> = run
            .trades
            .iter()
            .filter(|(_, _, t)| t.instrument.0 == i)
            .collect();
        let s = &stats.instruments[i as usize];
        assert_eq!(s.total.trades as usize, trades.len());
        let volume: u128 = trades.iter().map(|(_, _, t)| u128::from(t.qty.0)).sum();
        assert_eq!(s.total.volume, volume);
        assert_eq!(s.bars.iter().map(|b| b.volume).sum::<u128>(), volume);
        assert_eq!(
            s.total.high,
            trades.iter().map(|t| t.2.price.0).max().unwrap()
        );
        assert_eq!(s.total.close, trades.last().unwrap().2.price.0);
    }
    assert_eq!(stats.commands, COMMANDS);
    let mut out = Vec::new();
    stats.write(Format::Json, &mut out).unwrap();
    assert!(String::from_utf8(out)
        .unwrap()
        .starts_with("{\"commands\":20000,"));
}

#[test]
fn replay_reads_a_locked_journal_and_changes_nothing() {
    let run = record(12, &[]);
    let before: Vec<Vec<u8>> = segments(&run.dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    // A writer holds the journal lock, as a running exchange does.
    let (_writer, _) = ferrox_sequencer::journal::Journal::open(
        run.dir.join("journal"),
        ferrox_sequencer::journal::JournalOptions {
            segment_bytes: 1 << 19,
            ..Default::default()
        },
    )
    .unwrap();
    let data = DataDir::open(&run.dir).unwrap();
    let report = verify(&data, &config(), &VerifyOptions::default()).unwrap();
    assert!(report.ok());
    let after: Vec<Vec<u8>> = segments(&run.dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before == after, "the replay modified the journal");
}
