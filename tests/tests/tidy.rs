//! Style and purity rules checked by a test rather than by review (the TigerBeetle "tidy"
//! practice): the engine and protocol crates stay free of clocks, threads, I/O, locks and
//! randomly ordered collections, and every crate opens with `//!` docs.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Words that would let the pure core depend on something other than its commands.
const FORBIDDEN: &[&str] = &[
    "std::time",
    "Instant::",
    "SystemTime",
    "std::thread",
    "std::fs",
    "std::net",
    "std::io",
    "std::env",
    "HashMap",
    "HashSet",
    "RandomState",
    "Mutex",
    "RwLock",
    "rand::",
    "println!",
    "eprintln!",
];

#[test]
fn engine_and_protocol_stay_pure() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("engine/src"), &mut files);
    rust_files(&root.join("protocol/src"), &mut files);
    assert!(
        files.len() >= 5,
        "expected the engine and protocol sources, found {files:?}"
    );
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source is readable");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    violations.push(format!(
                        "{}:{}: `{word}` in {line:?}",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the pure core must not use:\n{}",
        violations.join("\n")
    );
}

#[test]
fn engine_dependencies_are_the_allowed_few() {
    let manifest = std::fs::read_to_string(workspace_root().join("engine/Cargo.toml"))
        .expect("engine manifest is readable");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("engine has dependencies")
        .split("\n[")
        .next()
        .unwrap_or("");
    let allowed = [
        "ferrox-protocol",
        "serde",
        "toml",
        "rust_decimal",
        "thiserror",
    ];
    for line in deps.lines().filter(|l| l.contains('=')) {
        let name = line.split(['=', '.']).next().unwrap_or("").trim();
        assert!(
            allowed.contains(&name),
            "engine dependency {name:?} is not on the allowed list {allowed:?}; \
             the engine must stay a pure state machine"
        );
    }
}

#[test]
fn every_crate_opens_with_crate_docs() {
    let root = workspace_root();
    for krate in [
        "protocol/src/lib.rs",
        "engine/src/lib.rs",
        "gateway/src/lib.rs",
        "sequencer/src/lib.rs",
        "marketdata/src/lib.rs",
        "replay/src/lib.rs",
        "benches/src/lib.rs",
        "tests/src/lib.rs",
        "ferrox/src/main.rs",
    ] {
        let text = std::fs::read_to_string(root.join(krate)).expect("crate root is readable");
        assert!(
            text.starts_with("//!"),
            "{krate} must open with //! docs saying what it owns"
        );
    }
}

/// The gateway's protocol core (FIX codec, session layer, order manager, risk, throttle, the
/// application layer and market data) is pure in the quinn-proto sense: time comes in as
/// arguments and bytes go out through buffers, so that tests and simulations drive it exactly
/// as the event loop does. Sockets, clocks and files live in `server.rs`, `venue.rs`,
/// `store.rs` and `client.rs` only.
#[test]
fn gateway_protocol_core_stays_pure() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("gateway/src/fix"), &mut files);
    for f in [
        "session.rs",
        "orders.rs",
        "risk.rs",
        "throttle.rs",
        "app.rs",
        "md.rs",
    ] {
        files.push(root.join("gateway/src").join(f));
    }
    let forbidden = [
        "std::time",
        "Instant::",
        "SystemTime",
        "std::thread",
        "std::fs",
        "std::net",
        "mio::",
        "Mutex",
        "RwLock",
        "println!",
        "eprintln!",
    ];
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source is readable");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    violations.push(format!(
                        "{}:{}: `{word}` in {line:?}",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the gateway's protocol core must not use:\n{}",
        violations.join("\n")
    );
}
