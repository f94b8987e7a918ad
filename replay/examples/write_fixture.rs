//! Writes a seeded order flow as a data directory (journal plus snapshots), to try the replay
//! tools without running an exchange:
//!
//! ```text
//! cargo run -p ferrox-replay --example write_fixture -- CONFIG DIR [COMMANDS] [SNAPSHOT_EVERY]
//! ferrox replay verify --config CONFIG --data DIR
//! ```
//!
//! CONFIG holds the engine sections only (`[limits]` and `[[instruments]]`), which both this
//! example and `ferrox replay --config` accept.

use ferrox_engine::EngineConfig;
use ferrox_replay::fixture::{write_data_dir, FlowOptions};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, dir, rest @ ..] = args.as_slice() else {
        return Err("usage: write_fixture CONFIG DIR [COMMANDS] [SNAPSHOT_EVERY]".into());
    };
    let text = std::fs::read_to_string(config).map_err(|e| format!("{config}: {e}"))?;
    let config = EngineConfig::from_toml_str(&text).map_err(|e| e.to_string())?;
    let number = |i: usize, default: u64| -> Result<u64, String> {
        rest.get(i)
            .map_or(Ok(default), |s| s.parse().map_err(|e| format!("{s}: {e}")))
    };
    let options = FlowOptions {
        commands: number(0, 100_000)?,
        snapshot_every: number(1, 25_000)?,
        segment_bytes: 64 << 20,
        ..FlowOptions::default()
    };
    let engine =
        write_data_dir(dir.as_ref(), &config, &options, |_, _, _| {}).map_err(|e| e.to_string())?;
    println!(
        "wrote {} commands to {dir}; final state hash {:016x}",
        options.commands,
        engine.state_hash()
    );
    Ok(())
}
