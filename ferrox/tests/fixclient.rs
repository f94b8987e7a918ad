//! `ferrox client` against a real exchange: a headless `ferrox engine` with its FIX gateway on
//! a free port, two scripted clients (one rests an order, the other takes part of it), and the
//! readable lines they print.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrox");

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The embedded default configuration with private data and ring directories and the gateway
/// on `port`; returns the file and the ring directory.
fn config(dir: &Path, port: u16) -> (PathBuf, PathBuf) {
    let default = Command::new(BIN)
        .arg("default-config")
        .output()
        .expect("runs")
        .stdout;
    let default = String::from_utf8(default).expect("utf-8");
    let engine_part = &default[..default.find("[exchange]").expect("exchange section")];
    let gateway_part = &default[default.find("[gateway]").expect("gateway section")..];
    let gateway_part = gateway_part.replace(
        "listen = \"127.0.0.1:9878\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    assert!(
        gateway_part.contains(&port.to_string()),
        "listen key not found"
    );
    let ring_dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from(format!("/dev/shm/ferrox-fixclient-{}", std::process::id()))
    } else {
        dir.join("rings")
    };
    let text = format!(
        "{engine_part}[exchange]\ndata_dir = {:?}\nring_dir = {:?}\nname = \"fixclient\"\n\
         segment_bytes = 1048576\ninput_ring_slots = 1024\nengine_ring_slots = 1024\n\
         output_ring_slots = 4096\n\n{gateway_part}",
        dir.join("data").display().to_string(),
        ring_dir.display().to_string(),
    );
    let path = dir.join("fixclient.toml");
    std::fs::write(&path, text).expect("config written");
    (path, ring_dir)
}

/// Starts the exchange and waits until the gateway accepts connections.
fn start(config: &Path, port: u16) -> Child {
    let mut child = Command::new(BIN)
        .args(["engine", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut rest);
    });
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop(child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("exits");
    assert!(out.status.success(), "exchange did not stop cleanly");
}

fn client(port: u16, sender: &str, password: &str, script: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["client", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--sender", sender, "--password", password, "--script"])
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn scripted_clients_trade_and_print_readable_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let (cfg, ring_dir) = config(dir.path(), port);
    let exchange = start(&cfg, port);

    // CLIENT1 rests a sell, tries a few things, then waits while CLIENT2 takes 40 of it.
    let maker_script = dir.path().join("maker.txt");
    std::fs::write(
        &maker_script,
        "# resting order, then bad input\n\
         sell AAPL 100 @ 190.10\n\
         sell AAPL 10 @ 190.105\n\
         cancel C99\n\
         bogus command\n\
         sell AAPL 5 @ 191.00 gtc\n\
         replace C3 7 @ 191.50\n\
         cancel C3\n\
         cancel C3\n\
         wait 3000\n\
         status C1\n\
         masscancel AAPL\n",
    )
    .unwrap();
    let mut maker = client(port, "CLIENT1", "client1", &maker_script)
        .spawn()
        .expect("client starts");
    // Follow the maker's output; start the taker once the resting order is acknowledged.
    let (tx, rx) = mpsc::channel();
    let stdout = maker.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut maker_out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !maker_out.iter().any(|l: &String| l.contains("> wait 3000")) {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("maker output so far: {maker_out:#?}"));
        maker_out.push(line);
    }

    let taker_script = dir.path().join("taker.txt");
    std::fs::write(&taker_script, "buy AAPL 40 @ 190.10 ioc\n").unwrap();
    let taker = client(port, "CLIENT2", "client2", &taker_script)
        .output()
        .expect("taker runs");
    let taker_out = String::from_utf8_lossy(&taker.stdout).to_string();
    assert!(
        taker.status.success(),
        "{taker_out}\n{}",
        String::from_utf8_lossy(&taker.stderr)
    );

    let status = maker.wait().expect("maker exits");
    maker_out.extend(rx.iter());
    let maker_out = maker_out.join("\n");
    let mut maker_err = String::new();
    if let Some(mut e) = maker.stderr.take() {
        let _ = e.read_to_string(&mut maker_err);
    }
    stop(exchange);
    let _ = std::fs::remove_dir_all(&ring_dir);
    println!("--- maker ---\n{maker_out}\n--- taker ---\n{taker_out}");
    assert!(status.success(), "{maker_out}\n{maker_err}");

    let has = |out: &str, want: &str| {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    };
    has(&maker_out, "LOGGED ON");
    has(
        &maker_out,
        "ER C1 AAPL sell NEW 100 @ 190.1 leaves 100 cum 0 (order ",
    );
    has(&maker_out, "REJECT C2: ");
    has(&maker_out, "error: unknown order C99");
    has(&maker_out, "error: unknown command \"bogus\"");
    has(&maker_out, "ER C3 AAPL sell NEW 5 @ 191 leaves 5 cum 0");
    has(
        &maker_out,
        "ER C4 AAPL sell REPLACED C3 -> 7 @ 191.5 leaves 7 cum 0",
    );
    // The replace chain is followed: `cancel C3` cancels the order now known as C4.
    has(&maker_out, "ER C5 AAPL sell CANCELED C4 leaves 0 cum 0");
    has(&maker_out, "CANCEL-REJECT C6 (orig C4): ");
    has(
        &maker_out,
        "ER C1 AAPL sell FILL 40 @ 190.1 cum 40 leaves 60 avg 190.1",
    );
    has(
        &maker_out,
        "ER C1 AAPL sell STATUS PARTIAL 100 @ 190.1 leaves 60 cum 40",
    );
    has(&maker_out, "ER C1 AAPL sell CANCELED leaves 0 cum 40");
    has(&maker_out, "MASS-CANCEL C7 AAPL: 1 orders canceled");
    has(&maker_out, "LOGOUT");
    has(&taker_out, "ER C1 AAPL buy NEW 40 @ 190.1 leaves 40 cum 0");
    has(
        &taker_out,
        "ER C1 AAPL buy FILL 40 @ 190.1 cum 40 leaves 0 avg 190.1 (filled)",
    );
    has(&taker_out, "LOGOUT");
}
