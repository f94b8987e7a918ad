//! `ferrox-suite` (run as `ferrox bench`): the whole benchmark suite in one command.
//!
//! It runs each benchmark binary of this crate as its own process, each writing a report into
//! one directory; for the wire-to-wire steps it starts a real exchange (`ferrox engine`) with
//! the embedded default configuration, once with the async journal and once with the sync one,
//! on ports and ring names of its own. At the end it reads every report and histogram log back,
//! draws the plots and writes `summary.md`. `--summarize DIR` redoes only that last part.

use std::fs;
use std::io::{self, Read as _};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ferrox_benches::suite::{self, Needs, Section, Step, SuiteOptions};

#[derive(Parser)]
#[command(
    about = "The Ferrox benchmark suite: engine, peers, pipeline and wire-to-wire, with floors, \
             reports and plots"
)]
struct Args {
    /// Directory for the reports, histogram logs, plots and summary.md (default:
    /// bench-results/<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A smoke run of under a minute: fewer workloads, commands, rates and seconds.
    #[arg(long)]
    quick: bool,
    /// Only these sections (comma-separated): engine, peers, pipeline, wire.
    #[arg(long, value_delimiter = ',')]
    sections: Vec<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Engine-only workloads (comma-separated: small, medium, large, wide, avalanche, lobster,
    /// file:PATH), instead of the defaults.
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Offered rates of the pipeline sweep (commands per second, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pipeline_rates: Vec<u64>,
    /// Offered rates of the wire-to-wire runs (orders per second, comma-separated).
    #[arg(long, value_delimiter = ',')]
    wire_rates: Vec<u64>,
    /// Do not run anything: redraw the plots and summary of an existing suite directory.
    #[arg(long)]
    summarize: Option<PathBuf>,
    /// Where the benchmark binaries and `ferrox` are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// An exchange started for the wire steps; stopped (SIGTERM, then kill) when dropped.
struct Exchange {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
    durability: &'static str,
    /// The exchange's ring files are `/dev/shm/<name>-*.ring`; it leaves them for a restart to
    /// reuse, and the suite removes them once the exchange has stopped.
    ring_name: String,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut stopped = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let prefix = format!("{}-", self.ring_name);
        if let Ok(entries) = fs::read_dir(RING_DIR) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".ring") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

/// The default configuration's `ring_dir`, which the suite keeps.
const RING_DIR: &str = "/dev/shm";

fn free_tcp_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Replaces exactly one occurrence of `from`, so that a change to the default configuration
/// that this runner does not know about fails loudly instead of benchmarking the wrong thing.
fn replace_once(text: &str, from: &str, to: &str) -> Result<String, String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => Err(format!(
            "the default configuration has {n} occurrences of {from:?} (expected 1)"
        )),
    }
}

fn start_exchange(bins: &Path, durability: &'static str) -> Result<Exchange, String> {
    let ferrox = bins.join("ferrox");
    let out = Command::new(&ferrox)
        .arg("default-config")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ferrox.display()))?;
    let default = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    let port = free_tcp_port().map_err(|e| e.to_string())?;
    let recovery = free_tcp_port().map_err(|e| e.to_string())?;
    let feed = free_udp_port().map_err(|e| e.to_string())?;
    let name = format!("ferrox-suite-{}-{durability}", std::process::id());
    let mut config = replace_once(
        &default,
        "durability = \"async\"",
        &format!("durability = \"{durability}\""),
    )?;
    config = replace_once(&config, "name = \"ferrox\"", &format!("name = \"{name}\""))?;
    // Not a change: a check that the rings are where the runner cleans up after the exchange.
    config = replace_once(
        &config,
        &format!("ring_dir = \"{RING_DIR}\""),
        &format!("ring_dir = \"{RING_DIR}\""),
    )?;
    config = replace_once(
        &config,
        "listen = \"127.0.0.1:9878\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    )?;
    config = replace_once(
        &config,
        "destinations = [\"239.77.0.1:40501\"]",
        &format!("destinations = [\"127.0.0.1:{feed}\"]"),
    )?;
    config = replace_once(
        &config,
        "recovery = \"127.0.0.1:9879\"",
        &format!("recovery = \"127.0.0.1:{recovery}\""),
    )?;
    // The journal goes on the real disk (target/ or the current directory), not on a tmpfs,
    // so that the sync mode pays for a real fdatasync.
    let base = bins
        .parent()
        .filter(|p| p.ends_with("target"))
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = tempfile::Builder::new()
        .prefix("ferrox-suite-exchange-")
        .tempdir_in(&base)
        .map_err(|e| format!("cannot make a directory in {}: {e}", base.display()))?;
    let config_path = dir.path().join("ferrox.toml");
    fs::write(&config_path, config).map_err(|e| e.to_string())?;
    let log = fs::File::create(dir.path().join("exchange.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&ferrox)
        .arg("engine")
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", ferrox.display()))?;
    let mut ex = Exchange {
        child,
        dir,
        addr: format!("127.0.0.1:{port}"),
        durability,
        ring_name: name,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(ex.dir.path().join("exchange.log")) {
            let _ = f.read_to_string(&mut text);
        }
        if text.contains("FIX gateway listening") {
            return Ok(ex);
        }
        if let Ok(Some(status)) = ex.child.try_wait() {
            return Err(format!(
                "the exchange exited ({status}) during start-up:\n{text}"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("the exchange did not start within 60 s:\n{text}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn summarize(dir: &Path) -> Result<PathBuf, String> {
    let reports = suite::load_reports(dir)
        .map_err(|e| format!("reading the reports in {}: {e}", dir.display()))?;
    if reports.is_empty() {
        return Err(format!("no reports in {}", dir.display()));
    }
    let images = suite::draw(dir, &reports).map_err(|e| format!("drawing the plots: {e}"))?;
    let command = fs::read_to_string(dir.join(suite::SUITE_COMMAND_FILE)).ok();
    let md = suite::summary_markdown(&reports, &images, command.as_deref());
    let path = dir.join("summary.md");
    fs::write(&path, md).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

fn run_step(bins: &Path, step: &Step, exchange: Option<&Exchange>) -> Result<(), String> {
    let program = bins.join(step.program);
    let mut cmd = Command::new(&program);
    cmd.args(&step.args);
    if let Some(ex) = exchange {
        cmd.arg("--addr").arg(&ex.addr);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} exited with {status}", step.program))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.summarize {
        return match summarize(dir) {
            Ok(p) => {
                println!("wrote {}", p.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferrox-suite: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let bins = match &args.bin_dir {
        Some(d) => d.clone(),
        None => match std::env::current_exe() {
            Ok(exe) => exe.parent().map(Path::to_path_buf).unwrap_or_default(),
            Err(e) => {
                eprintln!("ferrox-suite: cannot find this binary's directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut o = if args.quick {
        SuiteOptions::quick()
    } else {
        SuiteOptions::full()
    };
    o.seed = args.seed;
    if !args.sections.is_empty() {
        match args.sections.iter().map(|s| Section::parse(s)).collect() {
            Ok(v) => o.sections = v,
            Err(e) => {
                eprintln!("ferrox-suite: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if !args.workloads.is_empty() {
        o.engine_workloads = args.workloads.clone();
    }
    if !args.pipeline_rates.is_empty() {
        o.pipeline_rates = args.pipeline_rates.clone();
    }
    if !args.wire_rates.is_empty() {
        o.wire_rates = args.wire_rates.clone();
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("bench-results/{t}"))
    });
    if let Err(e) = fs::create_dir_all(&out) {
        eprintln!("ferrox-suite: cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    if let Err(e) = fs::write(out.join(suite::SUITE_COMMAND_FILE), command + "\n") {
        eprintln!("ferrox-suite: cannot write into {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let steps = suite::plan(&o, &out);
    let missing: Vec<String> = steps
        .iter()
        .map(|s| s.program)
        .chain(o.sections.contains(&Section::Wire).then_some("ferrox"))
        .filter(|p| !bins.join(p).is_file())
        .map(String::from)
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "ferrox-suite: {} not found in {}; build them with `cargo build --release -p ferrox \
             -p ferrox-benches`",
            missing.join(", "),
            bins.display()
        );
        return ExitCode::FAILURE;
    }

    let t0 = Instant::now();
    let mut failures = Vec::new();
    let mut exchange: Option<Exchange> = None;
    for (i, step) in steps.iter().enumerate() {
        println!(
            "\n=== [{}/{}] {} ({:.0} s so far)",
            i + 1,
            steps.len(),
            step.title,
            t0.elapsed().as_secs_f64()
        );
        match step.needs {
            Needs::Nothing => exchange = None,
            Needs::Exchange(d) => {
                if exchange.as_ref().map(|e| e.durability) != Some(d) {
                    exchange = None;
                    match start_exchange(&bins, d) {
                        Ok(ex) => {
                            println!("exchange up ({d} journal) on {}", ex.addr);
                            exchange = Some(ex);
                        }
                        Err(e) => {
                            eprintln!("ferrox-suite: {e}");
                            failures.push(format!("{}: {e}", step.title));
                            continue;
                        }
                    }
                }
            }
        }
        if let Err(e) = run_step(&bins, step, exchange.as_ref()) {
            eprintln!("ferrox-suite: {e}");
            failures.push(format!("{}: {e}", step.title));
        }
    }
    drop(exchange);

    println!("\n=== summary ({:.0} s)", t0.elapsed().as_secs_f64());
    match summarize(&out) {
        Ok(p) => println!("wrote {} and the plots beside it", p.display()),
        Err(e) => failures.push(e),
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("ferrox-suite: {} step(s) failed:", failures.len());
        for f in &failures {
            eprintln!("  {f}");
        }
        ExitCode::FAILURE
    }
}
