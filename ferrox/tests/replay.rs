//! `ferrox replay ...` end to end: a data directory written as the exchange writes it, replayed
//! by the binary in fresh processes.

use std::path::Path;
use std::process::{Command, Output};

use ferrox_engine::EngineConfig;
use ferrox_replay::fixture::{write_data_dir, FlowOptions};

const CONFIG: &str = r#"
[limits]
orders_max = 65536
levels_max = 16384
gtd_orders_max = 1024

[[instruments]]
symbol = "AAPL"
price_decimals = 2
tick_size = "0.01"
reference_price = "190.00"
price_band_percent = "10"
qty_max = "100000"
notional_max = "100000000"

[[instruments]]
symbol = "BTC-USD"
price_decimals = 2
qty_decimals = 4
tick_size = "0.50"
lot_size = "0.0010"
reference_price = "90000.00"
price_band_percent = "5"
qty_max = "50"
notional_max = "50000000"
"#;

fn ferrox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrox"))
        .args(args)
        .output()
        .expect("run ferrox")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Pulls `"key":"value"` or `"key":value` out of a one-line JSON object.
fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ',', '}']).unwrap();
    &rest[..end]
}

fn setup(dir: &Path) -> (String, String, u64) {
    let config_path = dir.join("ferrox.toml");
    std::fs::write(&config_path, CONFIG).unwrap();
    let config = EngineConfig::from_toml_str(CONFIG).unwrap();
    let data = dir.join("data");
    let options = FlowOptions {
        commands: 30_000,
        seed: 11,
        snapshot_every: 7_000,
        segment_bytes: 1 << 20,
        ..FlowOptions::default()
    };
    let engine = write_data_dir(&data, &config, &options, |_, _, _| {}).unwrap();
    (
        config_path.display().to_string(),
        data.display().to_string(),
        engine.state_hash(),
    )
}

#[test]
fn verify_is_deterministic_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data, hash) = setup(tmp.path());
    let args = [
        "replay", "verify", "--config", &config, "--data", &data, "--format", "json",
    ];
    let first = ferrox(&args);
    let second = ferrox(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(second.status.success(), "{}", text(&second.stderr));
    let (a, b) = (text(&first.stdout), text(&second.stdout));
    assert_eq!(json_field(&a, "ok"), "true", "{a}");
    assert_eq!(json_field(&a, "commands"), "30000", "{a}");
    assert_eq!(json_field(&a, "snapshots_checked"), "[14000");
    let (ha, hb) = (
        json_field(&a, "final_state_hash"),
        json_field(&b, "final_state_hash"),
    );
    assert_eq!(ha, hb);
    assert_eq!(ha, format!("{hash:016x}"));

    let human = ferrox(&["replay", "verify", "--config", &config, "--data", &data]);
    let out = text(&human.stdout);
    assert!(human.status.success(), "{}", text(&human.stderr));
    assert!(out.contains("replayed 30000 commands"), "{out}");
    assert!(
        out.contains(&format!("final state hash: {hash:016x}")),
        "{out}"
    );
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn verify_fails_on_a_foreign_snapshot_and_the_other_tools_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, data, _) = setup(tmp.path());
    let book = ferrox(&[
        "replay", "book", "BTC-USD", "--config", &config, "--data", &data, "--at-seq", "22000",
        "--format", "csv",
    ]);
    assert!(book.status.success(), "{}", text(&book.stderr));
    assert!(text(&book.stdout).starts_with("side,level,price,qty_total,order_count\nask,0,"));
    assert!(text(&book.stderr).contains("snapshot 21000 plus 1000 commands"));

    let trades = ferrox(&[
        "replay",
        "trades",
        "--config",
        &config,
        "--data",
        &data,
        "--instrument",
        "BTC-USD",
        "--to-seq",
        "5000",
    ]);
    assert!(trades.status.success(), "{}", text(&trades.stderr));
    let csv = text(&trades.stdout);
    assert!(csv.lines().count() > 10);
    assert!(
        csv.lines().skip(1).all(|l| l.contains(",BTC-USD,")),
        "{csv}"
    );

    let stats = ferrox(&[
        "replay",
        "stats",
        "--config",
        &config,
        "--data",
        &data,
        "--interval",
        "1s",
        "--format",
        "csv",
    ]);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    assert!(text(&stats.stdout).starts_with("instrument,interval_start_ns,"));

    // A snapshot from another history: verify exits non-zero and names the seq.
    let other = tempfile::tempdir().unwrap();
    let config2 = EngineConfig::from_toml_str(CONFIG).unwrap();
    let options = FlowOptions {
        commands: 21_000,
        seed: 99,
        snapshot_every: 7_000,
        ..FlowOptions::default()
    };
    write_data_dir(other.path(), &config2, &options, |_, _, _| {}).unwrap();
    let name = "snapshots/snapshot-00000000000000021000.fxs";
    std::fs::copy(other.path().join(name), Path::new(&data).join(name)).unwrap();
    let bad = ferrox(&["replay", "verify", "--config", &config, "--data", &data]);
    assert!(!bad.status.success());
    let out = text(&bad.stdout);
    assert!(
        out.contains("DIVERGENCE: state diverges at seq 21000"),
        "{out}"
    );
}
