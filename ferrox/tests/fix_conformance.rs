//! FIX session conformance: the QuickFIX acceptance tests for FIX 4.4 (lists A and A2, session
//! core and session-level rejects) against the real gateway, driven by the independent
//! `fixat.py` in lenient mode, as `../shared/conformance/README.md` prescribes.
//!
//! The test needs `python3` and the conformance directory beside the project (CI installs
//! the former; the latter ships with the development environment). Without them it fails
//! with the reason, unless FERROX_SKIP_CONFORMANCE=1 says on purpose that it should not run.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn quickfix_session_acceptance_lists_a_and_a2_pass() {
    if std::env::var("FERROX_SKIP_CONFORMANCE").as_deref() == Ok("1") {
        eprintln!("FERROX_SKIP_CONFORMANCE=1: FIX conformance not run");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let conformance = root.join("../shared/conformance");
    assert!(
        conformance.join("fixat.py").is_file(),
        "{} is missing (set FERROX_SKIP_CONFORMANCE=1 to skip on purpose)",
        conformance.display()
    );
    let mut defs = Vec::new();
    for list in ["list-A.txt", "list-A2.txt"] {
        let text = std::fs::read_to_string(conformance.join("quickfix-at").join(list))
            .expect("list readable");
        defs.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    assert_eq!(defs.len(), 36, "lists A and A2 hold 31 + 5 tests");

    let dir = tempfile::tempdir().expect("temp dir");
    let config = common::gateway_config(dir.path(), "conformance", "", "");
    let exchange = common::Exchange::start(&config);
    let out = Command::new("python3")
        .current_dir(&root)
        .arg(conformance.join("fixat.py"))
        .arg(exchange.addr.ip().to_string())
        .arg(exchange.addr.port().to_string())
        .args(&defs)
        .args([
            "--mode",
            "lenient",
            "--map",
            "56:ISLD=FERROX",
            "--timeout",
            "20",
        ])
        .output()
        .expect("python3 runs (CI installs it; see .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let log = exchange.stop();
    assert!(
        out.status.success(),
        "conformance failures:\n{stdout}\n{}\nexchange log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("36 tests passed"), "{stdout}");
}
