//! A quick journal benchmark, ignored by default because its numbers only mean something in
//! release mode on the target disk:
//!
//! ```text
//! cargo test --release -p ferrox-sequencer --test journal_bench -- --ignored --nocapture
//! FERROX_BENCH_DIR=/data/scratch cargo test --release ...   # measure another file system
//! ```
//!
//! It prints append throughput for 64-byte payloads (buffered, and flushed to the OS) and the
//! latency of `sync` after group commits of several sizes. The default directory is under
//! `target/`, not `/tmp`, because `/tmp` is often tmpfs, where fdatasync costs nothing.

use std::time::{Duration, Instant};

use ferrox_sequencer::journal::{Journal, JournalOptions};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[test]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
fn append_throughput_and_sync_latency() {
    let base = std::env::var_os("FERROX_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let tmp = tempfile::tempdir_in(&base).expect("bench directory");
    let options = JournalOptions {
        segment_bytes: 64 << 20,
        ..JournalOptions::default()
    };
    let (mut journal, _) = Journal::open(tmp.path(), options).expect("open");
    let payload = [0x5au8; 64];
    let mut seq = 0u64;

    // Appends only: encoding, CRC and the user-space buffer (flushed when full, no sync).
    let records = 2_000_000u64;
    let start = Instant::now();
    for _ in 0..records {
        seq += 1;
        journal.append(seq, seq, &payload).expect("append");
    }
    journal.flush().expect("flush");
    let elapsed = start.elapsed();
    println!(
        "append+flush, 64-byte payloads: {records} records in {elapsed:?}: {:.2} M records/s, {:.0} MB/s framed",
        records as f64 / elapsed.as_secs_f64() / 1e6,
        (records * 88) as f64 / elapsed.as_secs_f64() / 1e6
    );
    let start = Instant::now();
    journal.sync().expect("sync");
    println!("first sync after that: {:?}", start.elapsed());

    // Group commit: a batch of appends then one sync, as the sequencer will do.
    for batch in [1u64, 16, 256, 4096] {
        let mut latencies = Vec::new();
        let rounds = if batch >= 4096 { 200 } else { 1000 };
        let start = Instant::now();
        for _ in 0..rounds {
            for _ in 0..batch {
                seq += 1;
                journal.append(seq, seq, &payload).expect("append");
            }
            let t = Instant::now();
            journal.sync().expect("sync");
            latencies.push(t.elapsed());
        }
        let elapsed = start.elapsed();
        latencies.sort();
        println!(
            "batch {batch:>5}: sync p50 {:?} p99 {:?} max {:?}; {:.0} records/s durable",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1],
            (rounds * batch) as f64 / elapsed.as_secs_f64()
        );
    }
}
