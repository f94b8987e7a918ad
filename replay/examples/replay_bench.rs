//! Replay speed: writes a journal of the engine benchmarks' seeded workload to disk, then times
//! (1) the raw journal read (memory-mapped, CRC-checked records), (2) read plus command
//! decode, (3) `verify`-style replay through the engine with a `NullSink`, and (4) the engine
//! alone over the same commands held in memory, which shows where the time goes.
//!
//! ```text
//! cargo run --release -p ferrox-replay --example replay_bench -- [COMMANDS] [DIR]
//! ```
//!
//! COMMANDS defaults to 10,000,000 measured commands (after the preset's pre-fill); DIR to a
//! temporary directory under the current one (so on the same disk as the workspace, not
//! tmpfs). Each measurement is run 3 times; the page cache is warm after the first read.
//! `REPLAY_BENCH_ONLY=verify` runs only the verify replay, for `perf record`.

use std::time::Instant;

use ferrox_benches::{generate, WorkloadConfig};
use ferrox_engine::NullSink;
use ferrox_replay::{verify, DataDir, VerifyOptions};
use ferrox_sequencer::frame::{encode_input, Origin, INPUT_SLOT_BYTES};
use ferrox_sequencer::journal::{Journal, JournalOptions, JournalReader};

fn best(label: &str, n: u64, runs: usize, mut f: impl FnMut() -> u64) {
    let mut rates = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let got = f();
        let s = t.elapsed().as_secs_f64();
        assert_eq!(got, n, "{label}: counted {got}, expected {n}");
        rates.push(n as f64 / s / 1e6);
    }
    let shown: Vec<String> = rates.iter().map(|r| format!("{r:.2}")).collect();
    let max = rates.iter().copied().fold(0.0, f64::max);
    println!(
        "{label:<44} {:>7.2} M/s best ({} M/s per run; {:.1} ns/command)",
        max,
        shown.join(" / "),
        1e3 / max
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let measured: usize = args
        .next()
        .map_or(10_000_000, |s| s.parse().expect("COMMANDS"));
    let tmp;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir_in(".").expect("temporary directory");
            tmp.path().to_path_buf()
        }
    };
    let config = WorkloadConfig::small();
    let t = Instant::now();
    let workload = generate(&config, measured, 1);
    let commands: Vec<_> = workload
        .prefill
        .iter()
        .chain(&workload.measured)
        .copied()
        .collect();
    drop(workload);
    let n = commands.len() as u64;
    println!(
        "generated {n} commands (small preset, seed 1) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let (mut journal, _) =
        Journal::open(dir.join("journal"), JournalOptions::default()).expect("journal");
    let mut slot = [0u8; INPUT_SLOT_BYTES];
    for c in &commands {
        encode_input(
            Origin {
                producer: 1,
                producer_ref: c.seq,
            },
            &c.command,
            &mut slot,
        );
        journal.append(c.seq, c.ts_ns, &slot).expect("append");
    }
    journal.sync().expect("sync");
    drop(journal);
    let bytes: u64 = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "wrote the journal ({} segments of {} MiB preallocated, {:.0} MiB of records) in {:.1} s",
        bytes / JournalOptions::default().segment_bytes.max(1),
        JournalOptions::default().segment_bytes >> 20,
        (n * 104) as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );

    let engine_config = config.engine_config();
    let runs = 3;
    // For profiling one phase: REPLAY_BENCH_ONLY=verify runs only the verify replay.
    if std::env::var("REPLAY_BENCH_ONLY").is_ok_and(|v| v == "verify") {
        best("verify replay (read + decode + engine)", n, runs, || {
            let data = DataDir::open(&dir).expect("data dir");
            let report = verify(&data, &engine_config, &VerifyOptions::default()).expect("verify");
            report.commands
        });
        return;
    }
    best("journal read (mmap, CRC per record)", n, runs, || {
        let reader = JournalReader::open(dir.join("journal")).expect("reader");
        let mut k = 0;
        for r in reader.iter() {
            std::hint::black_box(r.expect("record").payload);
            k += 1;
        }
        k
    });
    best("journal read + command decode", n, runs, || {
        let data = DataDir::open(&dir).expect("data dir");
        let mut k = 0;
        for c in data.commands() {
            std::hint::black_box(c.expect("command"));
            k += 1;
        }
        k
    });
    best("verify replay (read + decode + engine)", n, runs, || {
        let data = DataDir::open(&dir).expect("data dir");
        let report = verify(&data, &engine_config, &VerifyOptions::default()).expect("verify");
        assert!(report.ok());
        report.commands
    });
    best("engine alone, commands in memory", n, runs, || {
        let mut engine = ferrox_engine::Engine::new(engine_config.clone()).expect("engine");
        for c in &commands {
            engine.apply(c, &mut NullSink);
        }
        engine.commands_applied()
    });
}
