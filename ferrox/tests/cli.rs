//! The binary's promises to an operator: clear errors for a bad configuration and a locked data
//! directory, a clean stop on SIGTERM with a final snapshot, and a restart that passes over a
//! damaged snapshot (as a crash while snapshotting would leave) to an older one.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrox");

/// Removes a test's ring directory in /dev/shm (memory) when the test ends, passed or not.
struct RingDir(std::path::PathBuf);

impl Drop for RingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ring_dir_of(config: &Path) -> RingDir {
    let text = std::fs::read_to_string(config).expect("config");
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("ring_dir = "))
        .expect("ring_dir in the config");
    RingDir(std::path::PathBuf::from(dir.trim().trim_matches('"')))
}

fn config(dir: &Path, name: &str, snapshot_every: u64) -> std::path::PathBuf {
    let default = Command::new(BIN)
        .arg("default-config")
        .output()
        .expect("runs")
        .stdout;
    let default = String::from_utf8(default).expect("utf-8");
    let engine_part = &default[..default.find("[exchange]").expect("exchange section")];
    let ring_dir = if Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from(format!("/dev/shm/ferrox-cli-{}-{name}", std::process::id()))
    } else {
        dir.join("rings")
    };
    let text = format!(
        "{engine_part}[exchange]\ndata_dir = {:?}\nring_dir = {:?}\nname = {name:?}\n\
         snapshot_every = {snapshot_every}\nsegment_bytes = 1048576\n\
         input_ring_slots = 1024\nengine_ring_slots = 1024\noutput_ring_slots = 4096\n",
        dir.join("data").display().to_string(),
        ring_dir.display().to_string(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("config written");
    path
}

fn start(config: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["engine", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    let started = Instant::now();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains("exchange running") || started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        while reader.read_line(&mut rest).unwrap_or(0) > 0 {}
    });
    (child, seen)
}

fn stop(child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("exits");
    assert!(out.status.success(), "exchange did not stop cleanly");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn a_bad_configuration_is_named_and_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[instruments]]\nsymbol = \"X\"\nprice_decimals = 2\ntick_size = \"0.001\"\nreference_price = \"1\"\nprice_band_percent = \"5\"\nqty_max = \"10\"\nnotional_max = \"100\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["engine", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("tick_size"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["run", "--config", "/nonexistent/ferrox.toml"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config"));
}

#[test]
fn a_second_exchange_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = config(dir.path(), "lock1", 0);
    let second = config(dir.path(), "lock2", 0);
    let _rings = (ring_dir_of(&first), ring_dir_of(&second));
    let (child, seen) = start(&first);
    assert!(seen.contains("exchange running"), "{seen}");
    let out = Command::new(BIN)
        .args(["engine", "--config"])
        .arg(&second)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second exchange started: {err}");
    assert!(err.contains("locked"), "{err}");
    stop(child);
}

#[test]
fn restart_passes_over_a_damaged_snapshot_to_an_older_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), "snap", 0);
    let _rings = ring_dir_of(&cfg);
    // Two sessions, each stopped cleanly, leave two snapshots (one per clean stop).
    for (round, commands) in [(1u64, 3_000u64), (2, 2_000)] {
        let (child, seen) = start(&cfg);
        assert!(seen.contains("exchange running"), "{seen}");
        let out = Command::new(BIN)
            .args(["load", "--config"])
            .arg(&cfg)
            .args([
                "--commands",
                &commands.to_string(),
                "--rate",
                "50000",
                "--seed",
            ])
            .arg(round.to_string())
            .output()
            .expect("load runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stop(child);
    }
    let snapshots = dir.path().join("data/snapshots");
    let mut files: Vec<_> = std::fs::read_dir(&snapshots)
        .expect("snapshot dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "fxs"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "expected two snapshots, found {files:?}");
    // A crash while writing the newest snapshot: truncated file, plus a leftover temp file.
    let newest = files.last().expect("newest").clone();
    let bytes = std::fs::read(&newest).expect("read");
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).expect("truncate");
    std::fs::write(
        snapshots.join("snapshot-99999999999999999999.fxs.tmp"),
        b"partial",
    )
    .unwrap();
    let (child, seen) = start(&cfg);
    assert!(seen.contains("skipped snapshot"), "{seen}");
    assert!(seen.contains("recovered"), "{seen}");
    let older = files[files.len() - 2]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let older_seq: u64 = older
        .trim_start_matches("snapshot-")
        .trim_end_matches(".fxs")
        .parse()
        .unwrap();
    assert!(
        seen.contains(&format!("snapshot at seq {older_seq}")),
        "{seen}"
    );
    let stopped = stop(child);
    assert!(stopped.contains("stopped at seq"), "{stopped}");
}
