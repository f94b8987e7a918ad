//! Crash loop: with a seeded load running, the exchange process is killed with SIGKILL at
//! random moments and restarted, many times. Afterwards every acknowledged command must be in
//! the journal under the sequence number it was acknowledged with, no command may be in the
//! journal twice, and replaying the journal must give the state hash the exchange reported
//! when it stopped.
//!
//! `FERROX_CRASH_CYCLES` sets the number of kills (default 100); `FERROX_SEED` the seed of the
//! kill timing and of the load.

use ferrox_sequencer::frame;
use ferrox_sequencer::journal::{JournalOptions, JournalReader};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrox");

fn config_text(data_dir: &Path, ring_dir: &Path, name: &str, durability: &str) -> String {
    let default = std::process::Command::new(BIN)
        .arg("default-config")
        .output()
        .expect("ferrox default-config runs")
        .stdout;
    let default = String::from_utf8(default).expect("utf-8 config");
    // Keep the instruments, replace the limits and the exchange section with small ones.
    let instruments = &default[default.find("[[instruments]]").expect("instruments")
        ..default.find("[exchange]").expect("exchange section")];
    format!(
        "[limits]\norders_max = 200000\nlevels_max = 20000\ngtd_orders_max = 1000\n\n{instruments}\n\
         [exchange]\ndata_dir = {data:?}\nring_dir = {ring:?}\nname = {name:?}\n\
         durability = {durability:?}\nasync_sync_interval_ms = 20\nsegment_bytes = 4194304\n\
         snapshot_every = 3000\nproducers_max = 4\ninput_ring_slots = 1024\n\
         engine_ring_slots = 4096\noutput_ring_slots = 65536\noutput_consumers_max = 4\n",
        data = data_dir.display().to_string(),
        ring = ring_dir.display().to_string(),
    )
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn spawn_engine(config: &Path) -> Child {
    Command::new(BIN)
        .args(["engine", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrox engine starts")
}

/// Waits for the exchange's "running" line on stderr; returns everything it printed so far.
fn wait_running(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("piped stderr");
    let mut reader = BufReader::new(stderr);
    let mut seen = String::new();
    let started = Instant::now();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap_or(0);
        seen.push_str(&line);
        if line.contains("exchange running") {
            // Keep draining stderr in the background so the child never blocks on a pipe.
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink);
            });
            return seen;
        }
        assert!(n > 0, "the exchange exited before running:\n{seen}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no start within 60 s:\n{seen}"
        );
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill {sig} failed");
}

#[test]
fn sigkill_loop_loses_no_acknowledged_command_and_replays_to_the_same_state() {
    let cycles: u64 = std::env::var("FERROX_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("FERROX_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42);
    println!("crash loop: {cycles} cycles, seed {seed} (FERROX_SEED to reproduce)");
    let mut rng = Rng(seed | 1);
    let data = tempfile::tempdir().expect("temp dir");
    let ring_dir: PathBuf = if Path::new("/dev/shm").is_dir() {
        PathBuf::from(format!("/dev/shm/ferrox-crash-{}", std::process::id()))
    } else {
        data.path().join("rings")
    };
    let name = "crash";
    let configs: Vec<PathBuf> = ["async", "sync"]
        .iter()
        .map(|d| {
            let path = data.path().join(format!("{d}.toml"));
            std::fs::write(
                &path,
                config_text(&data.path().join("data"), &ring_dir, name, d),
            )
            .expect("config written");
            path
        })
        .collect();
    let acks_path = data.path().join("acks.txt");

    // The first exchange must be up before the load connects (it waits up to its timeout).
    let mut engine = spawn_engine(&configs[0]);
    wait_running(&mut engine);
    let load = Command::new(BIN)
        .args(["load", "--config"])
        .arg(&configs[0])
        .args([
            "--producer",
            "1",
            "--commands",
            "100000000",
            "--rate",
            "20000",
        ])
        .args(["--seed", &seed.to_string(), "--acks"])
        .arg(&acks_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrox load starts");

    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_millis(20 + rng.below(180)));
        signal(&engine, "-KILL");
        let _ = engine.wait();
        // Alternate durability modes across restarts: both must keep every acknowledgement.
        engine = spawn_engine(&configs[(cycle % 2) as usize]);
        let seen = wait_running(&mut engine);
        assert!(
            seen.contains("recovered"),
            "cycle {cycle}: no recovery report:\n{seen}"
        );
    }
    // Let the last exchange work a little, then stop the load and the exchange cleanly.
    std::thread::sleep(Duration::from_millis(500));
    signal(&load, "-TERM");
    let load_out = load.wait_with_output().expect("load exits");
    let load_text = String::from_utf8_lossy(&load_out.stdout).to_string()
        + &String::from_utf8_lossy(&load_out.stderr);
    assert!(load_out.status.success(), "load failed:\n{load_text}");
    signal(&engine, "-TERM");
    let out = engine.wait_with_output().expect("exchange exits");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exchange did not stop cleanly: {stdout}"
    );
    let stop_line = stdout
        .lines()
        .find(|l| l.contains("stopped at seq"))
        .expect("stop line");
    let words: Vec<&str> = stop_line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "seq").expect("seq") + 1;
    let reported_seq: u64 = words[at].parse().expect("seq number");
    let reported_hash = words[at + 2].trim_end_matches(',').to_string();

    // Every acknowledged command is in the journal, at the seq it was acknowledged with.
    let journal = JournalReader::open(data.path().join("data/journal")).expect("journal opens");
    let mut by_seq = BTreeMap::new();
    let mut refs = BTreeSet::new();
    for record in journal.iter() {
        let record = record.expect("journal intact");
        let (origin, _) = frame::decode_input(record.payload).expect("payload decodes");
        assert!(
            refs.insert((origin.producer, origin.producer_ref)),
            "command {origin:?} is in the journal twice (seq {})",
            record.seq
        );
        by_seq.insert(record.seq, origin);
    }
    let acks = std::fs::read_to_string(&acks_path).expect("acks file");
    let mut acknowledged = 0;
    for line in acks.lines() {
        let mut it = line
            .split_whitespace()
            .map(|w| w.parse::<u64>().expect("number"));
        let (producer_ref, seq) = (it.next().expect("ref"), it.next().expect("seq"));
        let origin = by_seq.get(&seq).unwrap_or_else(|| {
            panic!("acknowledged command ref {producer_ref} (seq {seq}) is not in the journal")
        });
        assert_eq!(
            (origin.producer, origin.producer_ref),
            (1, producer_ref),
            "seq {seq}"
        );
        acknowledged += 1;
    }
    assert!(
        acknowledged > (cycles as usize) * 20,
        "too little load: {acknowledged} acks\n{load_text}"
    );
    assert_eq!(by_seq.keys().next_back().copied(), Some(reported_seq));

    // Replaying the journal from scratch (no snapshot) reaches the reported state.
    let text = std::fs::read_to_string(&configs[0]).expect("config");
    let engine_part = &text[..text.find("[exchange]").expect("exchange")];
    let engine_config = ferrox_engine::EngineConfig::from_toml_str(engine_part).expect("config");
    let replay_dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(replay_dir.path().join("journal")).expect("dir");
    for entry in std::fs::read_dir(data.path().join("data/journal")).expect("journal dir") {
        let entry = entry.expect("entry");
        if entry.file_name().to_string_lossy().ends_with(".fxj") {
            std::fs::copy(
                entry.path(),
                replay_dir.path().join("journal").join(entry.file_name()),
            )
            .expect("copy segment");
        }
    }
    let recovered = ferrox_sequencer::recovery::recover(
        &engine_config,
        replay_dir.path(),
        JournalOptions {
            segment_bytes: 4_194_304,
            ..JournalOptions::default()
        },
    )
    .expect("replay");
    assert_eq!(
        recovered.snapshot_seq, None,
        "the replay copy has no snapshots"
    );
    assert_eq!(recovered.engine.last_seq(), reported_seq);
    assert_eq!(
        format!("{:016x}", recovered.engine.state_hash()),
        reported_hash
    );
    println!(
        "crash loop: {cycles} kills, {} commands journalled, {acknowledged} acknowledged, all present once; replayed hash {reported_hash} matches\n{load_text}",
        by_seq.len()
    );
    let _ = std::fs::remove_dir_all(&ring_dir);
}
