//! LOBSTER import: tiny hand-written files with known books, and the real AAPL sample in
//! `../shared/data/lobster/` (skipped with a message when that directory is absent).

use std::path::PathBuf;

use ferrox_replay::cmdfile;
use ferrox_replay::lobster::{self, BookRow, ImportOptions};

fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/lobster")
}

fn row(text: &str) -> BookRow {
    lobster::parse_orderbook(text).unwrap().remove(0)
}

fn one_level() -> ImportOptions {
    ImportOptions {
        levels: 1,
        ..ImportOptions::default()
    }
}

#[test]
fn sample_agrees_with_the_orderbook_file() {
    let dir = sample_dir();
    if !dir.is_dir() {
        eprintln!("skipping: LOBSTER sample not found at {}", dir.display());
        return;
    }
    let base = "AAPL_2012-06-21_34200000_57600000";
    let messages = lobster::parse_messages(
        &std::fs::read_to_string(dir.join(format!("{base}_message_10.csv"))).unwrap(),
    )
    .unwrap();
    let book = lobster::parse_orderbook(
        &std::fs::read_to_string(dir.join(format!("{base}_orderbook_10.csv"))).unwrap(),
    )
    .unwrap();
    let import = lobster::import(&messages, Some(&book), &ImportOptions::default()).unwrap();
    let a = import.agreement.clone().unwrap();
    eprintln!("{:?}", import.counts);
    for (k, v) in &a.examples {
        eprintln!("{k}: {}", a.categories[k]);
        for e in v {
            eprintln!("  {e:?}");
        }
    }
    assert_eq!(a.rows, messages.len());
    assert_eq!(
        a.rows_equal_top1, a.rows,
        "top of book must agree on every row"
    );
    assert_eq!(a.rows_equal_top5, a.rows);
    assert_eq!(a.rows_equal, a.rows);
    // Without the window reconciliation the messages alone still give the top of the book on
    // every row; deeper levels suffer from changes made outside the window (measured: see
    // the report printed here).
    let blind = ImportOptions {
        reveal: false,
        ..ImportOptions::default()
    };
    let b = lobster::import(&messages, Some(&book), &blind)
        .unwrap()
        .agreement
        .unwrap();
    eprintln!(
        "messages only: rows equal {} / top1 {} / top5 {} of {}; {:?}",
        b.rows_equal, b.rows_equal_top1, b.rows_equal_top5, b.rows, b.categories
    );
    // Measured 955 of 999 rows when this was written.
    assert!(
        b.rows_equal_top1 >= 950,
        "messages-only top of book regressed: {b:?}"
    );
    // The command stream alone reproduces the engine state the import ended with.
    let summary = cmdfile::run(&import.config, &import.commands, None).unwrap();
    assert_eq!(summary.state_hash, import.state_hash);
}

#[test]
fn seed_is_row_one_minus_message_one() {
    // Message 1 adds 5 to the bid at 100; row 1 shows 15 there, so 10 rested before it.
    let messages = lobster::parse_messages("1.0,1,7,5,100,1\n").unwrap();
    let rows = vec![row("110,3,100,15\n")];
    let import = lobster::import(&messages, Some(&rows), &one_level()).unwrap();
    assert_eq!(import.counts.seed_orders, 2);
    assert_eq!(import.agreement.unwrap().rows_equal, 1);
}

#[test]
fn executions_partial_cancels_and_unknown_orders_rebuild_the_book() {
    let messages = lobster::parse_messages(
        "\
1.0,1,7,5,100,1
2.0,4,7,2,100,1
3.0,2,7,1,100,1
4.0,3,99,3,110,-1
5.0,5,0,50,105,-1
6.0,4,98,10,100,1
",
    )
    .unwrap();
    let rows = lobster::parse_orderbook(
        "\
110,3,100,15
110,3,100,13
110,3,100,12
9999999999,0,100,12
9999999999,0,100,12
9999999999,0,100,2
",
    )
    .unwrap();
    let import = lobster::import(&messages, Some(&rows), &one_level()).unwrap();
    let a = import.agreement.unwrap();
    assert_eq!(a.rows_equal, 6, "{a:#?}");
    let c = &import.counts;
    assert_eq!((c.executions, c.partial_cancels, c.deletes), (2, 1, 1));
    assert_eq!((c.unknown_cancels, c.unknown_executions), (1, 1));
    assert_eq!(c.hidden_executions_skipped, 1);
    // The unknown order's execution takes the seed (front of the queue) and then 2 shares of
    // order 7: the level total is what LOBSTER shows, the individual orders differ.
    assert_eq!(c.trades, 3);
}

#[test]
fn a_level_entering_the_window_is_revealed_or_reported() {
    // One level is shown; when the best bid goes, the next one (never seen) becomes visible.
    let messages =
        lobster::parse_messages("1.0,1,1,2,100,1\n2.0,3,1,2,100,1\n3.0,3,5,4,100,1\n").unwrap();
    let rows = lobster::parse_orderbook("110,3,100,6\n110,3,100,4\n110,3,99,8\n").unwrap();
    let seen = lobster::import(&messages, Some(&rows), &one_level()).unwrap();
    assert_eq!(seen.counts.revealed_levels, 1);
    assert_eq!(seen.agreement.unwrap().rows_equal, 3);
    let blind = ImportOptions {
        reveal: false,
        ..one_level()
    };
    let not_seen = lobster::import(&messages, Some(&rows), &blind).unwrap();
    let a = not_seen.agreement.unwrap();
    assert_eq!(a.rows_equal, 2);
    assert_eq!(
        a.categories.keys().next().map(String::as_str),
        Some("level outside the window (entered without a message)")
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let messages = lobster::parse_messages("2.0,1,1,5,100,1\n1.0,1,2,5,100,1\n").unwrap();
    let err = lobster::import(&messages, None, &ImportOptions::default()).unwrap_err();
    assert!(err.contains("message 2"), "{err}");
    let rows = lobster::parse_orderbook("110,3,100,15\n").unwrap();
    assert!(lobster::import(&messages[..1], Some(&rows[..0]), &one_level()).is_err());
    assert!(lobster::parse_orderbook("1,2,3\n").is_err());
    assert!(lobster::parse_orderbook("1,2,3,4\n1,2,3,4,5,6,7,8\n").is_err());
    // Zero sizes and odd prices reach the engine, which rejects them; nothing panics.
    let odd = lobster::parse_messages("1.0,1,1,0,100,1\n1.0,1,2,5,-3,-1\n1.0,3,9,5,7,1\n").unwrap();
    let import = lobster::import(&odd, None, &ImportOptions::default()).unwrap();
    assert_eq!(import.counts.rejects, 2);
}
