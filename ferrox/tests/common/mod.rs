//! Starting and stopping a real exchange with its FIX gateway for the integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ferrox");

/// The embedded default configuration with private data and ring locations and the gateway on
/// an ephemeral loopback port; `gateway_extra` is appended inside `[gateway]`, `tail` at the end.
pub fn gateway_config(dir: &Path, name: &str, gateway_extra: &str, tail: &str) -> PathBuf {
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
        &format!("listen = \"127.0.0.1:0\"\n{gateway_extra}"),
    );
    // Each exchange gets its own feed port and an ephemeral recovery port, so that tests run
    // in parallel never hear each other's market data.
    let feed_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let gateway_part = gateway_part
        .replace(
            "destinations = [\"239.77.0.1:40501\"]",
            &format!("destinations = [\"239.77.0.1:{feed_port}\"]"),
        )
        .replace(
            "recovery = \"127.0.0.1:9879\"",
            "recovery = \"127.0.0.1:0\"",
        );
    let ring_dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from(format!("/dev/shm/ferrox-gw-{}-{name}", std::process::id()))
    } else {
        dir.join("rings")
    };
    let text = format!(
        "{engine_part}[exchange]\ndata_dir = {:?}\nring_dir = {:?}\nname = {name:?}\n\
         segment_bytes = 4194304\ninput_ring_slots = 4096\nengine_ring_slots = 4096\n\
         output_ring_slots = 16384\n\n{gateway_part}\n{tail}\n",
        dir.join("data").display().to_string(),
        ring_dir.display().to_string(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("config written");
    path
}

/// A running `ferrox run` process and its gateway address; its log lines are collected.
pub struct Exchange {
    pub child: Child,
    pub addr: SocketAddr,
    /// The market-data feed (UDP) and recovery (TCP) addresses, if it publishes.
    pub md_feed: Option<String>,
    pub md_recovery: Option<String>,
    pub log: Arc<Mutex<String>>,
    /// The exchange's ring directory, removed when this handle goes (rings in /dev/shm are
    /// memory; a test suite run many times must not leave them behind).
    ring_dir: Option<PathBuf>,
}

impl Exchange {
    pub fn start(config: &Path) -> Exchange {
        let ring_dir = std::fs::read_to_string(config).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("ring_dir = "))
                .map(|v| PathBuf::from(v.trim().trim_matches('"')))
        });
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
        let log = Arc::new(Mutex::new(String::new()));
        let started = Instant::now();
        let mut addr = None;
        let (mut md_feed, mut md_recovery) = (None, None);
        while addr.is_none() && started.elapsed() < Duration::from_secs(60) {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            log.lock().unwrap().push_str(&line);
            if let Some(rest) = line.trim().strip_prefix("ferrox: market data: session ") {
                // "<session>, feed <addr> (UDP), recovery <addr> (TCP)"
                let feed = rest.split("feed ").nth(1).and_then(|r| r.split(' ').next());
                let recovery = rest
                    .split("recovery ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next());
                md_feed = feed.map(|f| f.trim_end_matches(',').to_string());
                md_recovery = recovery.map(str::to_string);
            }
            if let Some(rest) = line
                .trim()
                .strip_prefix("ferrox: FIX gateway listening on ")
            {
                addr = rest.parse().ok();
            }
        }
        let addr = addr.unwrap_or_else(|| {
            panic!(
                "the exchange did not report its gateway address:\n{}",
                log.lock().unwrap()
            )
        });
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Exchange {
            child,
            addr,
            md_feed,
            md_recovery,
            log,
            ring_dir,
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, and the exit must be clean.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("exits");
        let log = self.log_text();
        assert!(status.success(), "exchange did not stop cleanly:\n{log}");
        log
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Exchange {
    /// A failing test must not leave its exchange running (it would keep spinning on the
    /// machine's cores and skew every later test and benchmark).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(dir) = &self.ring_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
