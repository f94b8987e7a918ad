//! `ferrox-pipeline-bench`: the pipeline around the engine, measured end to end (issue #3).
//!
//! Subcommands:
//!
//! - `pipeline --rate R[,R2,...] --commands N [--durability async|sync]`: in one process, a
//!   producer thread writes input frames into input ring 0 *open loop*, at a fixed rate with
//!   planned send times; the real [`SequencerAgent`] (journal on the real disk, under
//!   `target/`, never tmpfs, where `fdatasync` is free) and [`EngineAgent`] run on their own
//!   threads, wired as `ferrox run` wires them; a consumer thread reads the output ring and, on
//!   each command's END frame, records `now - planned send time` (no coordinated omission: a
//!   stall anywhere, the producer included, shows up in the percentiles) and
//!   `now - actual publish time` ("service latency": the pipeline alone). The flow is the
//!   engine benchmark's fill-aware small preset (1 instrument, ~1,000 resting orders, 9% new,
//!   3% IOC, 6% cancel, 82% move), pre-fill included, so every cancel and move targets a live
//!   order (order ids are sequence numbers, and the sequencer numbers from 1 as the generator
//!   did); the run reports the engine's rejects, which should be 0.
//!
//!   In async mode the interval `fdatasync` runs on its own thread, as in `ferrox run`
//!   (`--inline-sync` puts it back into the sequencer's duty cycle, for comparison). The
//!   engine thread is pinned to the last core; `--layout` pins the others. Every thread polls
//!   and, when idle, spins `--spins` times and then yields (or backs off into short sleeps with
//!   `--idle backoff`): with four busy threads on fewer than five cores, any spinning takes the
//!   core from the thread that has work, so the default is 0. Each run also reports the CPU
//!   that other processes used meanwhile, per-thread CPU and context switches, and the
//!   duration of every busy sequencer and engine round. `--prewrite-segment` overwrites the
//!   first journal segment with zeros before the run (an experiment on ext4's unwritten
//!   extents).
//! - `recovery --commands N [--snapshot-every K]`: writes a journal of N commands directly
//!   (`Journal::append` of `frame::encode_input` payloads) and snapshot files from an engine
//!   driven alongside, then times `recovery::recover` with snapshots and with full replay,
//!   warm (page cache) and, if the page cache can be dropped, cold.
//! - `journal`: append throughput and ack latency of the journal with 80-byte payloads, in
//!   both durability modes, at several group-commit batch sizes; the cost of a segment
//!   rollover; a writer paced like async mode with and without a background `fdatasync`
//!   thread; and a raw-file `fdatasync` baseline on blocks that are already written.
//!
//! Every subcommand prints a table and, with `--json FILE`, writes the figures as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use core_affinity::CoreId;
use ferrox_benches::report::{self, BenchResult, ReportWriter};
use ferrox_benches::timer::{Timer, TimerKind};
use ferrox_benches::{generate, WorkloadConfig};
use ferrox_engine::Engine;
use ferrox_protocol::wire::COMMAND_BYTES;
use ferrox_protocol::{Event, NullSink, SequencedCommand};
use ferrox_sequencer::agents::{
    engine_ring_path, engine_ring_spec, input_ring_path, input_ring_spec, output_ring_path,
    output_ring_spec, Durability, EngineAgent, SequencerAgent, SequencerStats,
};
use ferrox_sequencer::frame::{self, Origin, INPUT_SLOT_BYTES};
use ferrox_sequencer::journal::{Journal, JournalOptions, JournalReader};
use ferrox_sequencer::recovery;
use ferrox_sequencer::ring::RingSpec;
use ferrox_sequencer::ring::{Consumer, Producer, Start, WaitStrategy};
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(
    name = "ferrox-pipeline-bench",
    about = "Ferrox pipeline, journal and recovery benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open-loop end-to-end latency through producer -> sequencer (journal) -> engine -> consumer.
    Pipeline(PipelineArgs),
    /// The physical floor of `pipeline`: the same open-loop producer writing 64-byte messages
    /// into a bare SPSC shared-memory ring, one consumer reading them; nothing in between.
    Floor(FloorArgs),
    /// Restart time from a journal of N commands, with and without snapshots.
    Recovery(RecoveryArgs),
    /// Journal append throughput and group-commit ack latency.
    Journal(JournalArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    Async,
    Sync,
}

/// Where the four pipeline threads run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Layout {
    /// As `ferrox run` on this machine: the engine pinned to the last core, the others unpinned.
    Engine,
    /// The engine alone on the last core; producer, sequencer and consumer pinned to the first.
    Split,
    /// Producer and consumer (the "client") on the first core, sequencer and engine on the last.
    Pairs,
    /// Nothing pinned.
    None,
}

#[derive(clap::Args)]
struct PipelineArgs {
    /// Offered rate(s), commands per second; a comma-separated list runs each in turn, each on
    /// a fresh pipeline and journal.
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    rate: Vec<u64>,
    /// Measured commands per run (after the warm-up). Ignored if --seconds is given.
    #[arg(long, default_value_t = 2_000_000)]
    commands: u64,
    /// Measured seconds per run: commands = rate x seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Seconds of warm-up at the same rate before measuring (not recorded).
    #[arg(long, default_value_t = 0.5)]
    warmup_s: f64,
    #[arg(long, value_enum, default_value = "async")]
    durability: DurabilityArg,
    /// Async mode: the journal is fdatasync'ed at least this often (the exchange's default).
    #[arg(long, default_value_t = 50)]
    async_sync_interval_ms: u64,
    /// Async mode: run the interval fdatasync inside the sequencer's duty cycle (blocking it),
    /// instead of on a thread of its own as `ferrox run` does.
    #[arg(long)]
    inline_sync: bool,
    #[arg(long, value_enum, default_value = "engine")]
    layout: Layout,
    /// How idle threads wait (all four threads).
    #[arg(long, value_enum, default_value = "yield")]
    idle: IdleArg,
    /// Idle loops spin this many times before yielding. On two cores shared by four threads,
    /// 0 is best: a spinning thread keeps the core from the thread that has work.
    #[arg(long, default_value_t = 0)]
    spins: u32,
    /// Backoff: yields before sleeping.
    #[arg(long, default_value_t = 10)]
    yields: u32,
    /// Backoff: the longest sleep, in µs.
    #[arg(long, default_value_t = 50)]
    sleep_max_us: u64,
    /// Take an engine snapshot every this many commands, on the engine thread (0: never). The
    /// bytes are not written to disk (the exchange writes them on another thread).
    #[arg(long, default_value_t = 0)]
    snapshot_every: u64,
    #[arg(long, default_value_t = 4096)]
    input_ring_slots: usize,
    #[arg(long, default_value_t = 65_536)]
    engine_ring_slots: usize,
    #[arg(long, default_value_t = 262_144)]
    output_ring_slots: usize,
    /// Experiment: before the run, overwrite the first journal segment's preallocated area with
    /// zeros (and sync), so that fdatasync finds no unwritten extents to convert.
    #[arg(long)]
    prewrite_segment: bool,
    /// Journal segment size (bytes), as `exchange.segment_bytes`.
    #[arg(long, default_value_t = 256 << 20)]
    segment_bytes: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the journal (a temporary directory is made inside it). Default: the
    /// workspace's target/ (the real disk).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Directory for the ring files (a temporary directory is made inside it).
    #[arg(long, default_value = "/dev/shm")]
    ring_dir: PathBuf,
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    report: ReportArgs,
}

/// Report options shared by `pipeline` and `floor`.
#[derive(clap::Args)]
struct ReportArgs {
    /// Write the common benchmark report (JSON + one HdrHistogram log per rate) into DIR.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// File stem of the report (default: `pipeline-<durability>` or `floor-ring`).
    #[arg(long, value_name = "NAME")]
    report_stem: Option<String>,
    /// Stop a rate sweep at the first saturated run (achieved < 95% of offered, or latency
    /// growing through the run); by default every rate runs and saturated runs are marked.
    #[arg(long)]
    stop_at_saturation: bool,
}

#[derive(clap::Args)]
struct FloorArgs {
    /// Offered rate(s), messages per second; a comma-separated list runs each in turn, each on
    /// a fresh ring.
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    rate: Vec<u64>,
    /// Measured messages per run (after the warm-up). Ignored if --seconds is given.
    #[arg(long, default_value_t = 2_000_000)]
    commands: u64,
    /// Measured seconds per run: messages = rate x seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Seconds of warm-up at the same rate before measuring (not recorded).
    #[arg(long, default_value_t = 0.5)]
    warmup_s: f64,
    /// Pins the producer and the consumer exactly as `pipeline` pins its producer and consumer
    /// with the same layout (there is no sequencer or engine thread here).
    #[arg(long, value_enum, default_value = "engine")]
    layout: Layout,
    /// How idle threads wait (both threads).
    #[arg(long, value_enum, default_value = "yield")]
    idle: IdleArg,
    #[arg(long, default_value_t = 0)]
    spins: u32,
    #[arg(long, default_value_t = 10)]
    yields: u32,
    #[arg(long, default_value_t = 50)]
    sleep_max_us: u64,
    /// Ring slots (the pipeline's input ring has 4,096).
    #[arg(long, default_value_t = 4096)]
    ring_slots: usize,
    /// Recorded in the report only: the floor's messages carry no workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the ring file (a temporary directory is made inside it).
    #[arg(long, default_value = "/dev/shm")]
    ring_dir: PathBuf,
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(clap::Args)]
struct RecoveryArgs {
    /// Journal records (commands), pre-fill included.
    #[arg(long, default_value_t = 10_000_000)]
    commands: u64,
    /// A snapshot every this many commands. Snapshots are written at K, 2K, ... below N, not
    /// at N itself, so the restart replays the last K commands: the worst case for an exchange
    /// snapshotting every K.
    #[arg(long, default_value_t = 1_000_000)]
    snapshot_every: u64,
    /// Timed restarts per case (warm, and cold if the page cache can be dropped).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the cold runs (they drop the whole machine's page cache).
    #[arg(long)]
    no_cold: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct JournalArgs {
    /// Records for the append-throughput test.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Group-commit batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,64,1024")]
    batch: Vec<usize>,
    /// Seconds per batch size and mode.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Paced async test: records per second.
    #[arg(long, default_value_t = 1_000_000)]
    paced_rate: u64,
    /// Paced async test: records per flush.
    #[arg(long, default_value_t = 64)]
    paced_batch: usize,
    /// Segment rollovers to time (each appends a whole 256 MiB segment first).
    #[arg(long, default_value_t = 3)]
    rollovers: usize,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Pipeline(args) => pipeline_bench(&args),
        Cmd::Floor(args) => floor_bench(&args),
        Cmd::Recovery(args) => recovery_bench(&args),
        Cmd::Journal(args) => journal_bench(&args),
    }
}

// ----- shared helpers -----------------------------------------------------------------------

struct Machine {
    cpu: String,
    logical_cpus: usize,
    kernel: String,
    hypervisor: bool,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown")
        .to_string();
    let hypervisor = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    Machine {
        cpu,
        logical_cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        hypervisor,
    }
}

impl Machine {
    fn describe(&self) -> String {
        format!(
            "{} ({} logical CPUs{}), kernel {}",
            self.cpu,
            self.logical_cpus,
            if self.hypervisor {
                ", virtual machine"
            } else {
                ""
            },
            self.kernel
        )
    }

    fn json(&self) -> String {
        format!(
            "{{\"cpu\": \"{}\", \"logical_cpus\": {}, \"kernel\": \"{}\", \"virtual\": {}}}",
            self.cpu, self.logical_cpus, self.kernel, self.hypervisor
        )
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU accounting of the whole machine and of this process, to tell how much of the machine
/// other processes used during a run (the machine is shared).
#[derive(Clone, Copy, Default)]
struct CpuSnapshot {
    /// Busy ticks of all CPUs (user, nice, system, irq, softirq), in USER_HZ ticks.
    busy: u64,
    steal: u64,
    /// This process's user + system ticks.
    own: u64,
}

fn cpu_snapshot() -> CpuSnapshot {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let own_stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let own = own_stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            // `rest` starts at field 3, the state letter, which is not a number.
            let v: Vec<i64> = rest
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.get(10).copied().unwrap_or(0) + v.get(11).copied().unwrap_or(0)).max(0) as u64
        })
        .unwrap_or(0);
    CpuSnapshot {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        steal: at(7),
        own,
    }
}

/// (other processes' CPU use, steal), in CPUs (1.0 = one whole CPU), between two snapshots.
fn others_cpu(a: CpuSnapshot, b: CpuSnapshot, secs: f64) -> (f64, f64) {
    let hz = 100.0;
    let busy = b.busy.saturating_sub(a.busy) as f64 / hz;
    let own = b.own.saturating_sub(a.own) as f64 / hz;
    let steal = b.steal.saturating_sub(a.steal) as f64 / hz;
    (((busy - own) / secs).max(0.0), steal / secs)
}

/// The file system type holding `path`, from /proc/self/mounts (longest matching mount point).
fn fs_type(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, mnt, ty) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mnt)
                .then(|| (mnt.len(), format!("{ty} on {dev}")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".to_string(), |(_, d)| d)
}

/// The default place for journals: the workspace's `target/`, on the real disk.
fn default_data_base() -> PathBuf {
    let base = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/pipeline-bench"
    ));
    std::fs::create_dir_all(&base).expect("create target/pipeline-bench");
    base.canonicalize().unwrap_or(base)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

const QUANTILES: [(&str, f64); 6] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("max", 1.0),
];

fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else if q >= 1.0 {
        h.max()
    } else {
        h.value_at_quantile(q)
    }
}

/// Nanoseconds, readable: "850 ns", "12.3 µs", "4.56 ms", "1.23 s".
fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Thousands separators for counts and rates.
fn fmt_count(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn hist_header(label: &str) -> String {
    let mut line = format!("  {label:<34}");
    for (name, _) in QUANTILES {
        let _ = write!(line, "{name:>10}");
    }
    let _ = write!(line, "{:>10}{:>12}", "mean", "count");
    line
}

fn hist_row(label: &str, h: &Histogram<u64>) -> String {
    let mut line = format!("  {label:<34}");
    for (_, q) in QUANTILES {
        let _ = write!(line, "{:>10}", fmt_ns(quantile(h, q) as f64));
    }
    let _ = write!(line, "{:>10}{:>12}", fmt_ns(h.mean()), h.len());
    line
}

fn hist_json(h: &Histogram<u64>) -> String {
    let mut parts: Vec<String> = QUANTILES
        .iter()
        .map(|(n, q)| format!("\"{n}\": {}", quantile(h, *q)))
        .collect();
    parts.push(format!("\"mean\": {:.1}", h.mean()));
    parts.push(format!("\"count\": {}", h.len()));
    format!("{{{}}}", parts.join(", "))
}

/// CPU time and context switches of the calling thread.
#[derive(Clone, Copy, Debug, Default)]
struct ThreadUsage {
    cpu_s: f64,
    voluntary_switches: i64,
    involuntary_switches: i64,
}

#[cfg(target_os = "linux")]
fn thread_usage() -> ThreadUsage {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return ThreadUsage::default();
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ThreadUsage {
        cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
        voluntary_switches: ru.ru_nvcsw,
        involuntary_switches: ru.ru_nivcsw,
    }
}

#[cfg(not(target_os = "linux"))]
fn thread_usage() -> ThreadUsage {
    ThreadUsage::default()
}

fn usage_delta(a: ThreadUsage, b: ThreadUsage) -> ThreadUsage {
    ThreadUsage {
        cpu_s: b.cpu_s - a.cpu_s,
        voluntary_switches: b.voluntary_switches - a.voluntary_switches,
        involuntary_switches: b.involuntary_switches - a.involuntary_switches,
    }
}

/// A clock shared by all threads: the fenced time-stamp counter (synchronised across cores on
/// a CPU with an invariant TSC), in nanoseconds since the run's start.
#[derive(Clone, Copy)]
struct Clock {
    timer: Timer,
    t0: u64,
}

impl Clock {
    #[inline(always)]
    fn now_ns(&self) -> u64 {
        let t = self.timer.ticks().saturating_sub(self.t0);
        (t as f64 / self.timer.ticks_per_ns) as u64
    }
}

/// How an idle thread waits between empty polls.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum IdleArg {
    /// Spin `--spins` times, then `sched_yield` between checks.
    Yield,
    /// Spin `--spins` times, yield `--yields` times, then sleep, doubling from 1 µs to
    /// `--sleep-max-us` (with the thread's timer slack cut to 1 µs), freeing the core.
    Backoff,
}

#[derive(Clone, Copy)]
struct IdleConfig {
    mode: IdleArg,
    spins: u32,
    yields: u32,
    sleep_max_ns: u64,
}

/// One thread's idle state; see [`IdleArg`]. With four busy threads on two cores, spinning
/// only steals the core from the thread that has work.
struct Idle {
    rounds: u32,
    sleep_ns: u64,
    config: IdleConfig,
}

impl Idle {
    fn new(config: IdleConfig) -> Idle {
        if config.mode == IdleArg::Backoff {
            set_timer_slack_1us();
        }
        Idle {
            rounds: 0,
            sleep_ns: 0,
            config,
        }
    }

    #[inline]
    fn step(&mut self) {
        self.rounds = self.rounds.saturating_add(1);
        let c = &self.config;
        if self.rounds <= c.spins {
            std::hint::spin_loop();
        } else if c.mode == IdleArg::Yield || self.rounds <= c.spins.saturating_add(c.yields) {
            thread::yield_now();
        } else {
            self.sleep_ns = (self.sleep_ns * 2).clamp(1_000, c.sleep_max_ns.max(1_000));
            thread::sleep(Duration::from_nanos(self.sleep_ns));
        }
    }

    #[inline]
    fn reset(&mut self) {
        self.rounds = 0;
        self.sleep_ns = 0;
    }
}

/// Short sleeps need a small timer slack (the default, 50 µs, rounds every sleep up to it).
#[cfg(target_os = "linux")]
fn set_timer_slack_1us() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_timer_slack_1us() {}

fn pin(core: Option<CoreId>) -> Option<(usize, bool)> {
    core.map(|c| (c.id, core_affinity::set_for_current(c)))
}

/// The cores of the producer, sequencer, engine and consumer threads in `layout`.
fn layout_cores(layout: Layout, cores: &[CoreId]) -> [Option<CoreId>; 4] {
    let last = cores.last().copied();
    let first = cores.first().copied();
    match layout {
        Layout::Engine => [None, None, last, None],
        Layout::Split => [first, first, last, first],
        Layout::Pairs => [first, last, last, first],
        Layout::None => [None, None, None, None],
    }
}

/// "producer unpinned, engine on core 1, ...": which thread ran where, as this tool set it.
fn pinning_description(threads: &[ThreadReport]) -> String {
    threads
        .iter()
        .map(|t| match t.pinned {
            None => format!("{} unpinned", t.name),
            Some((c, true)) => format!("{} on core {c}", t.name),
            Some((c, false)) => format!("{} unpinned (pinning to core {c} FAILED)", t.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A run is saturated when it falls behind its offered rate: the achieved rate is below 95% of
/// the offered one, the consumer timed out, or the latency keeps growing through the run. The
/// last is read from the medians of the run's tenths (by planned send time): a queue that
/// builds up raises them steadily, so they must rise in at least 4 of the 5 steps of the second
/// half, and the last tenth's median must be above 1 ms and above 4x the first tenth's. One
/// stall (another process taking the core for a while) raises one or two tenths, not a ramp.
fn saturation(
    rate: u64,
    achieved_per_s: f64,
    timed_out: bool,
    trend_p50: &[u64],
) -> Option<String> {
    if timed_out {
        return Some("timed out: no output for 20 s".to_string());
    }
    let ratio = achieved_per_s / rate.max(1) as f64;
    if ratio < 0.95 {
        return Some(format!(
            "achieved {:.1}% of the offered rate (< 95%)",
            ratio * 100.0
        ));
    }
    let n = trend_p50.len();
    if n >= 4 {
        let (first, last) = (trend_p50[0], trend_p50[n - 1]);
        let half = &trend_p50[n / 2 - 1..];
        let rises = half.windows(2).filter(|w| w[1] > w[0]).count();
        let steps = half.len() - 1;
        if last > 1_000_000 && last > first.saturating_mul(4) && rises + 1 >= steps {
            let medians = trend_p50
                .iter()
                .map(|&ns| fmt_ns(ns as f64))
                .collect::<Vec<_>>()
                .join(", ");
            return Some(format!(
                "latency growing through the run: medians by tenth {medians}"
            ));
        }
    }
    None
}

/// The latency of the measured commands in tenths of the run (by planned send time), to tell
/// a queue that grows without bound from a steady state.
struct Trend {
    first: u64,
    count: u64,
    windows: Vec<Histogram<u64>>,
}

const TREND_WINDOWS: u64 = 10;

impl Trend {
    fn new(first: u64, count: u64) -> Trend {
        Trend {
            first,
            count: count.max(1),
            windows: (0..TREND_WINDOWS)
                .map(|_| {
                    Histogram::new_with_bounds(1, 600_000_000_000, 2)
                        .expect("valid histogram bounds")
                })
                .collect(),
        }
    }

    #[inline]
    fn record(&mut self, index: u64, ns: u64) {
        let w =
            (index.saturating_sub(self.first) * TREND_WINDOWS / self.count).min(TREND_WINDOWS - 1);
        self.windows[w as usize].saturating_record(ns);
    }

    /// Each window's median (0 for an empty one).
    fn p50s(&self) -> Vec<u64> {
        self.windows.iter().map(|h| quantile(h, 0.5)).collect()
    }
}

/// A latency histogram in the report's bounds (1 ns to a minute); values beyond are clamped.
fn report_histogram(h: &Histogram<u64>) -> Histogram<u64> {
    let mut out = report::new_histogram();
    for v in h.iter_recorded() {
        let value = v.value_iterated_to().clamp(1, report::HIST_MAX_NS);
        out.saturating_record_n(value, v.count_at_value());
    }
    out
}

/// Opens the report writer of `--report`, if given; exits on failure.
fn open_report(args: &ReportArgs, default_stem: &str, tool: &str) -> Option<ReportWriter> {
    let dir = args.report.as_ref()?;
    let stem = args.report_stem.as_deref().unwrap_or(default_stem);
    match ReportWriter::new(dir, stem, tool, report::Machine::detect()) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!(
                "ferrox-pipeline-bench: cannot write a report into {}: {e}",
                dir.display()
            );
            std::process::exit(1);
        }
    }
}

/// `base`, or `base-2`, `base-3`, ... if the report already has a result of that name (the
/// same rate twice in one sweep).
fn unique_name(w: &ReportWriter, base: &str) -> String {
    let taken = |n: &str| w.report().results.iter().any(|r| r.name == n);
    let mut name = base.to_string();
    let mut k = 2;
    while taken(&name) {
        name = format!("{base}-{k}");
        k += 1;
    }
    name
}

/// Adds a result and its histogram log; exits on failure (a half-written report misleads).
fn add_result(w: &mut ReportWriter, result: BenchResult, h: &Histogram<u64>) {
    let name = result.name.clone();
    if let Err(e) = w.add(result, Some(&report_histogram(h))) {
        eprintln!("ferrox-pipeline-bench: cannot add result {name} to the report: {e}");
        std::process::exit(1);
    }
    println!("  report: {name} -> {}", w.path().display());
}

// ----- open loop (shared by pipeline and floor) ----------------------------------------------

/// Measured and warm-up commands of a run at `rate`: `rate` x `seconds` (or `commands`), at
/// least 1, and `rate` x `warmup_s`.
fn run_sizes(rate: u64, seconds: Option<f64>, commands: u64, warmup_s: f64) -> (u64, u64) {
    let measured = match seconds {
        Some(s) => (rate as f64 * s) as u64,
        None => commands,
    };
    let warmup = (rate as f64 * warmup_s) as u64;
    (measured.max(1), warmup)
}

/// The runs' clock source: the time-stamp counter on x86-64, `Instant` elsewhere.
fn run_timer() -> Timer {
    Timer::with_kind(
        if cfg!(target_arch = "x86_64") {
            TimerKind::Rdtsc
        } else {
            TimerKind::Instant
        },
        Duration::from_millis(200),
    )
}

impl IdleConfig {
    fn new(mode: IdleArg, spins: u32, yields: u32, sleep_max_us: u64) -> IdleConfig {
        IdleConfig {
            mode,
            spins,
            yields,
            sleep_max_ns: sleep_max_us * 1_000,
        }
    }
}

/// A bench thread's pinning and its resource usage from `start` to `report`.
struct ThreadMeter {
    pinned: Option<(usize, bool)>,
    u0: ThreadUsage,
}

impl ThreadMeter {
    /// Pins the calling thread to `core` (if any), then starts counting its usage.
    fn start(core: Option<CoreId>) -> ThreadMeter {
        let pinned = pin(core);
        ThreadMeter {
            pinned,
            u0: thread_usage(),
        }
    }

    fn report(self, name: &'static str, rounds: Option<Histogram<u64>>) -> ThreadReport {
        ThreadReport {
            name,
            pinned: self.pinned,
            usage: usage_delta(self.u0, thread_usage()),
            rounds,
        }
    }
}

/// The open-loop producer: publishes messages `0..total` into `ring`, message `i` planned at
/// `planned_ns(i, interval_ns)`. Each round claims up to 256 of the messages due by `now` (no
/// more than the ring has free), pushes `message(i, now)` for each and publishes them at once;
/// with nothing due or no free slot it idles. Returns each message's lateness (publish - plan).
fn produce_open_loop<M: AsRef<[u8]>>(
    ring: &mut Producer,
    total: u64,
    interval_ns: f64,
    clock: Clock,
    idle_config: IdleConfig,
    mut message: impl FnMut(u64, u64) -> M,
) -> Histogram<u64> {
    let mut late = new_histogram();
    let mut next = 0u64;
    let mut idle = Idle::new(idle_config);
    let capacity = ring.spec().capacity();
    while next < total {
        let now = clock.now_ns();
        let due = ((now as f64 / interval_ns) as u64 + 1).min(total);
        let want = (due.saturating_sub(next) as usize).min(256);
        let k = if want == 0 {
            0
        } else {
            want.min(ring.free_slots()).min(capacity)
        };
        if k == 0 {
            idle.step();
            continue;
        }
        idle.reset();
        let mut claim = ring.try_claim(k).expect("free slots were counted");
        for i in next..next + k as u64 {
            claim.push(message(i, now).as_ref());
            late.saturating_record(now.saturating_sub(planned_ns(i, interval_ns)).max(1));
        }
        claim.publish();
        next += k as u64;
    }
    late
}

/// The open-loop consumer: polls `ring` until `handle(seq, slot, now)` has returned true for
/// `total` messages (`now`: when the message's batch was observed), idling between empty
/// polls. Every 1,024th idle round it heartbeats the ring (if `heartbeat`) and gives up if
/// nothing came for 20 s. Returns whether it gave up.
fn consume_open_loop(
    ring: &mut Consumer,
    total: u64,
    clock: Clock,
    idle_config: IdleConfig,
    heartbeat: bool,
    mut handle: impl FnMut(u64, &[u8], u64) -> bool,
) -> bool {
    let mut idle = Idle::new(idle_config);
    let mut done = 0u64;
    let mut last_progress = Instant::now();
    while done < total {
        let mut now_cached: Option<u64> = None;
        let n = ring
            .poll(4096, |seq, slot| {
                // All messages of a batch were there when it was observed: one clock read.
                let now = *now_cached.get_or_insert_with(|| clock.now_ns());
                if handle(seq, slot, now) {
                    done += 1;
                }
            })
            .expect("the consumer is never evicted");
        if n == 0 {
            idle.step();
            if idle.rounds % 1024 == 0 {
                if heartbeat {
                    ring.heartbeat();
                }
                if last_progress.elapsed() > Duration::from_secs(20) {
                    return true;
                }
            }
        } else {
            idle.reset();
            last_progress = Instant::now();
        }
    }
    false
}

/// What the open-loop consumer measures of the messages from `measured_from` on: the latency
/// from the planned send time (and its trend by tenth), the service latency from the publish.
struct OpenLoopLatency {
    measured_from: u64,
    interval_ns: f64,
    count: u64,
    last_ns: u64,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    trend: Trend,
}

impl OpenLoopLatency {
    fn new(measured_from: u64, measured: u64, interval_ns: f64) -> OpenLoopLatency {
        OpenLoopLatency {
            measured_from,
            interval_ns,
            count: 0,
            last_ns: 0,
            latency: new_histogram(),
            service: new_histogram(),
            trend: Trend::new(measured_from, measured),
        }
    }

    /// Records message `index` (if measured), read at `now` and published at `sent()`.
    #[inline]
    fn record(&mut self, index: u64, now: u64, sent: impl FnOnce() -> u64) {
        if index >= self.measured_from {
            self.count += 1;
            let ns = now
                .saturating_sub(planned_ns(index, self.interval_ns))
                .max(1);
            self.latency.saturating_record(ns);
            self.trend.record(index, ns);
            self.service
                .saturating_record(now.saturating_sub(sent()).max(1));
            self.last_ns = now;
        }
    }
}

/// One run of a rate sweep, as [`sweep`] sees it.
trait SweepRun {
    fn print(&self);
    fn latency(&self) -> &Histogram<u64>;
    fn saturated(&self) -> bool;
    fn summary_row(&self) -> SummaryRow<'_>;
    /// `result` with the report parameters every open-loop run has.
    fn add_params(&self, result: BenchResult) -> BenchResult;
}

/// Runs `run_rate` for each of `rates` in turn and prints the run; adds it to the report with
/// `result` if there is one; stops at the first saturated run with `--stop-at-saturation`.
/// Then prints the summary of the sweep (of two runs or more). Returns the runs.
fn sweep<R: SweepRun>(
    rates: &[u64],
    report: &ReportArgs,
    writer: &mut Option<ReportWriter>,
    summary_title: &str,
    mut run_rate: impl FnMut(u64) -> R,
    mut result: impl FnMut(&ReportWriter, &R) -> BenchResult,
) -> Vec<R> {
    let mut runs = Vec::new();
    for &rate in rates {
        let run = run_rate(rate);
        run.print();
        if let Some(w) = writer.as_mut() {
            let result = result(w, &run);
            add_result(w, result, run.latency());
        }
        let stop = report.stop_at_saturation && run.saturated();
        runs.push(run);
        if stop {
            println!("  --stop-at-saturation: the sweep stops here");
            break;
        }
    }
    if runs.len() > 1 {
        let rows: Vec<SummaryRow<'_>> = runs.iter().map(R::summary_row).collect();
        print_summary(summary_title, &rows);
    }
    runs
}

// ----- pipeline -----------------------------------------------------------------------------

struct ThreadReport {
    name: &'static str,
    pinned: Option<(usize, bool)>,
    usage: ThreadUsage,
    /// Sequencer and engine: the duration of each `do_work` call that did some work.
    rounds: Option<Histogram<u64>>,
}

struct PipelineRun {
    rate: u64,
    durability: &'static str,
    warmup: u64,
    measured: u64,
    acked_measured: u64,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    achieved_per_s: f64,
    producer_sent_per_s: f64,
    producer_late: Histogram<u64>,
    wall_s: f64,
    events: u64,
    trades: u64,
    rejects: u64,
    syncs: u64,
    sequenced: u64,
    snapshots: u64,
    threads: Vec<ThreadReport>,
    load_start: String,
    load_end: String,
    /// CPUs' worth of time used by other processes during the run, and steal.
    others_cpus: f64,
    steal_cpus: f64,
    timed_out: bool,
    /// Median latency of each tenth of the measured commands, in planned-send order.
    trend_p50: Vec<u64>,
    /// Why the run is saturated, if it is.
    saturated: Option<String>,
}

/// `SweepRun` for an open-loop run type (`PipelineRun`, `FloorRun`: the fields of the same
/// names), printed by `$print`.
macro_rules! sweep_run {
    ($run:ty, $print:ident) => {
        impl SweepRun for $run {
            fn print(&self) {
                $print(self);
            }
            fn latency(&self) -> &Histogram<u64> {
                &self.latency
            }
            fn saturated(&self) -> bool {
                self.saturated.is_some()
            }
            fn summary_row(&self) -> SummaryRow<'_> {
                SummaryRow {
                    rate: self.rate,
                    achieved_per_s: self.achieved_per_s,
                    latency: &self.latency,
                    service: &self.service,
                    others_cpus: self.others_cpus,
                    saturated: self.saturated.is_some(),
                }
            }
            fn add_params(&self, result: BenchResult) -> BenchResult {
                result
                    .param("saturated", self.saturated.is_some())
                    .param("saturation", self.saturated.clone())
                    .param("latency_p50_by_tenth_ns", self.trend_p50.clone())
                    .param("service_p50_ns", quantile(&self.service, 0.5))
                    .param("service_p99_ns", quantile(&self.service, 0.99))
                    .param(
                        "producer_lateness_p99_ns",
                        quantile(&self.producer_late, 0.99),
                    )
                    .param("producer_sent_per_s", self.producer_sent_per_s.round())
                    .param("wall_s", self.wall_s)
                    .param("loadavg_start", self.load_start.clone())
                    .param("loadavg_end", self.load_end.clone())
                    .param("other_processes_cpus", self.others_cpus)
                    .param("steal_cpus", self.steal_cpus)
            }
        }
    };
}

sweep_run!(PipelineRun, print_run);
sweep_run!(FloorRun, print_floor_run);

/// Planned send time of the command at `index` (0-based), ns after the run's start.
#[inline]
fn planned_ns(index: u64, interval_ns: f64) -> u64 {
    (index as f64 * interval_ns) as u64
}

#[allow(clippy::too_many_arguments)]
fn run_pipeline(
    args: &PipelineArgs,
    frames: &[[u8; INPUT_SLOT_BYTES]],
    engine_config: &ferrox_engine::EngineConfig,
    prefill: u64,
    warmup: u64,
    rate: u64,
    timer: Timer,
    cores: &[CoreId],
) -> PipelineRun {
    let total = frames.len() as u64;
    let measured_from = prefill + warmup;
    let interval_ns = 1e9 / rate as f64;
    let durability = match args.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Async => Durability::Async {
            sync_interval: Duration::from_millis(args.async_sync_interval_ms.max(1)),
        },
    };
    let data_base = args.data_dir.clone().unwrap_or_else(default_data_base);
    let data = tempfile::Builder::new()
        .prefix("pipeline-")
        .tempdir_in(&data_base)
        .expect("journal directory");
    let rings = tempfile::Builder::new()
        .prefix("ferrox-pipeline-bench-")
        .tempdir_in(&args.ring_dir)
        .expect("ring directory");
    let name = "bench";
    let options = JournalOptions {
        segment_bytes: args.segment_bytes,
        ..JournalOptions::default()
    };
    let journal_dir = data.path().join("journal");
    let (mut journal, _) = Journal::open(&journal_dir, options.clone()).expect("journal");
    if args.prewrite_segment {
        // An experiment: overwrite the first segment's preallocated (fallocated, hence
        // "unwritten") area with zeros and sync, so that later writes land in blocks that are
        // already written and fdatasync needs no extent conversion (a metadata commit). The
        // journal reads zeros as "no record", so it reopens as an empty journal.
        let segment = journal.active_segment_path().to_path_buf();
        drop(journal);
        prewrite_zeros(&segment, args.segment_bytes);
        journal = Journal::open(&journal_dir, options).expect("journal").0;
    }

    let input_spec = input_ring_spec(args.input_ring_slots).expect("input ring spec");
    let engine_spec = engine_ring_spec(args.engine_ring_slots).expect("engine ring spec");
    let output_spec = output_ring_spec(args.output_ring_slots, 1).expect("output ring spec");
    let engine_path = engine_ring_path(rings.path(), name);
    let output_path = output_ring_path(rings.path(), name);
    let engine_ring = Producer::create(&engine_path, engine_spec).expect("engine ring");
    let engine_input =
        Consumer::attach(&engine_path, engine_spec, 0, Start::Producer).expect("engine attach");
    let output = Producer::create(&output_path, output_spec).expect("output ring");
    let mut output_consumer =
        Consumer::attach(&output_path, output_spec, 0, Start::Producer).expect("output attach");
    let mut input =
        Producer::create(input_ring_path(rings.path(), name, 0), input_spec).expect("input ring");

    let stats = Arc::new(SequencerStats::default());
    let sequencer = SequencerAgent::new(
        rings.path(),
        name,
        1,
        input_spec,
        journal,
        engine_ring,
        durability,
        0,
        4096,
        Arc::clone(&stats),
    );
    // As `ferrox run` does: in async mode the interval fdatasync runs on a thread of its own,
    // unless --inline-sync asks for the sequencer to do it in its duty cycle.
    let (mut sequencer, background) = match durability {
        Durability::Async { .. } if !args.inline_sync => {
            let (s, bg) = sequencer.with_background_sync();
            (s, Some(bg))
        }
        _ => (sequencer, None),
    };
    // The sequencer attaches to input rings on its idle path (every 50 ms).
    let attach_started = Instant::now();
    while input.attached_consumers() == 0 {
        sequencer.do_work().expect("sequencer");
        thread::sleep(Duration::from_millis(5));
        assert!(
            attach_started.elapsed() < Duration::from_secs(5),
            "the sequencer did not attach to the input ring"
        );
    }
    let wait = WaitStrategy::SpinThenYield { spins: args.spins };
    let mut engine_agent = EngineAgent::new(
        Engine::new(engine_config.clone()).expect("engine config"),
        engine_input,
        output,
        wait,
        1024,
        args.snapshot_every,
    );

    let [producer_core, sequencer_core, engine_core, consumer_core] =
        layout_cores(args.layout, cores);

    let published: Vec<AtomicU64> = (0..total).map(|_| AtomicU64::new(0)).collect();
    let stop = AtomicBool::new(false);
    let sequencer_done = AtomicBool::new(false);
    let idle_config = IdleConfig::new(args.idle, args.spins, args.yields, args.sleep_max_us);
    let load_start = loadavg();
    let clock = Clock {
        timer,
        t0: timer.ticks(),
    };
    let wall = Instant::now();
    let cpu0 = cpu_snapshot();

    let mut threads = Vec::new();
    let mut latency = new_histogram();
    let mut service = new_histogram();
    let mut producer_late = new_histogram();
    let (mut events, mut trades, mut rejects, mut acked_measured) = (0, 0, 0, 0);
    let mut last_end_ns = 0u64;
    let mut producer_done_ns = 0u64;
    let mut snapshots = 0u64;
    let mut timed_out = false;
    let mut trend_p50 = Vec::new();

    thread::scope(|s| {
        let published = &published;
        let stop = &stop;
        let sequencer_done = &sequencer_done;
        let stats_ref = &*stats;
        let input = &mut input;
        let sequencer = &mut sequencer;
        let engine_agent = &mut engine_agent;
        let output_consumer = &mut output_consumer;
        let producer_late = &mut producer_late;
        let producer_done_ns = &mut producer_done_ns;
        let snapshots = &mut snapshots;

        let producer = s.spawn(move || {
            let meter = ThreadMeter::start(producer_core);
            *producer_late =
                produce_open_loop(input, total, interval_ns, clock, idle_config, |i, now| {
                    published[i as usize].store(now, Ordering::Relaxed);
                    &frames[i as usize]
                });
            *producer_done_ns = clock.now_ns();
            // Keep the input ring open until everything is acknowledged: a closed ring that is
            // empty is let go by the sequencer, which is harmless, but the heartbeat keeps the
            // sequencer from ever calling the producer stale.
            while !stop.load(Ordering::Acquire) {
                input.heartbeat();
                thread::sleep(Duration::from_millis(1));
            }
            meter.report("producer", None)
        });

        let seq_thread = s.spawn(move || {
            let meter = ThreadMeter::start(sequencer_core);
            let mut idle = Idle::new(idle_config);
            let mut rounds = new_histogram();
            while !stop.load(Ordering::Acquire) {
                let t = clock.now_ns();
                match sequencer.do_work().expect("sequencer: journal failed") {
                    0 => idle.step(),
                    _ => {
                        rounds.saturating_record(clock.now_ns().saturating_sub(t).max(1));
                        idle.reset();
                    }
                }
            }
            sequencer.sync_all().expect("final sync");
            sequencer_done.store(true, Ordering::Release);
            meter.report("sequencer", Some(rounds))
        });

        let syncer = background.map(|bg| {
            let interval = Duration::from_millis(args.async_sync_interval_ms.max(1));
            s.spawn(move || {
                let meter = ThreadMeter::start(sequencer_core);
                bg.run(stats_ref, interval, sequencer_done)
                    .expect("background journal sync");
                meter.report("journal-sync", None)
            })
        });

        let engine_thread = s.spawn(move || {
            let meter = ThreadMeter::start(engine_core);
            let mut idle = Idle::new(idle_config);
            let mut rounds = new_histogram();
            loop {
                let t = clock.now_ns();
                let n = engine_agent.do_work();
                if n > 0 {
                    rounds.saturating_record(clock.now_ns().saturating_sub(t).max(1));
                }
                if let Some((_, bytes)) = engine_agent.take_snapshot() {
                    *snapshots += 1;
                    engine_agent.return_snapshot_buffer(bytes);
                }
                if n == 0 {
                    if stop.load(Ordering::Acquire) && engine_agent.input_available() == 0 {
                        break;
                    }
                    idle.step();
                } else {
                    idle.reset();
                }
            }
            meter.report("engine", Some(rounds))
        });

        // The consumer runs on this thread's scope too, as its own thread.
        let consumer = s.spawn(move || {
            let meter = ThreadMeter::start(consumer_core);
            let mut measure =
                OpenLoopLatency::new(measured_from, total - measured_from, interval_ns);
            let (mut events, mut trades, mut rejects) = (0u64, 0u64, 0u64);
            let timed_out = consume_open_loop(
                output_consumer,
                total,
                clock,
                idle_config,
                true,
                |_, slot, now| {
                    let frame = frame::decode_output(slot).expect("output frame decodes");
                    match frame.event {
                        None => {
                            let index = frame.origin.producer_ref - 1;
                            measure.record(index, now, || {
                                published[index as usize].load(Ordering::Relaxed)
                            });
                            true
                        }
                        Some(e) => {
                            events += 1;
                            match e {
                                Event::Trade(_) => trades += 1,
                                Event::Rejected(_) => rejects += 1,
                                _ => {}
                            }
                            false
                        }
                    }
                },
            );
            stop.store(true, Ordering::Release);
            (
                meter.report("consumer", None),
                measure,
                (events, trades, rejects),
                timed_out,
            )
        });

        let (report, measure, counts, to) = consumer.join().expect("consumer thread");
        latency = measure.latency;
        service = measure.service;
        trend_p50 = measure.trend.p50s();
        acked_measured = measure.count;
        (events, trades, rejects) = counts;
        last_end_ns = measure.last_ns;
        timed_out = to;
        threads.push(producer.join().expect("producer thread"));
        threads.push(seq_thread.join().expect("sequencer thread"));
        threads.push(engine_thread.join().expect("engine thread"));
        threads.push(report);
        if let Some(t) = syncer {
            threads.push(t.join().expect("journal sync thread"));
        }
    });
    let wall_s = wall.elapsed().as_secs_f64();
    let (others_cpus, steal_cpus) = others_cpu(cpu0, cpu_snapshot(), wall_s);
    let first_planned = planned_ns(measured_from, interval_ns);
    let measured = total - measured_from;
    let achieved_per_s =
        acked_measured as f64 / (last_end_ns.saturating_sub(first_planned).max(1) as f64 / 1e9);
    let producer_sent_per_s = total as f64 / (producer_done_ns.max(1) as f64 / 1e9);
    let saturated = saturation(rate, achieved_per_s, timed_out, &trend_p50);
    PipelineRun {
        rate,
        durability: match args.durability {
            DurabilityArg::Async => "async",
            DurabilityArg::Sync => "sync",
        },
        warmup,
        measured,
        acked_measured,
        latency,
        service,
        achieved_per_s,
        producer_sent_per_s,
        producer_late,
        wall_s,
        events,
        trades,
        rejects,
        syncs: stats.syncs.load(Ordering::Acquire),
        sequenced: stats.sequenced.load(Ordering::Acquire),
        snapshots,
        threads,
        load_start,
        load_end: loadavg(),
        others_cpus,
        steal_cpus,
        timed_out,
        trend_p50,
        saturated,
    }
}

fn idle_description(idle: IdleArg, spins: u32, yields: u32, sleep_max_us: u64) -> String {
    match idle {
        IdleArg::Yield => format!("spin {spins} then yield"),
        IdleArg::Backoff => {
            format!("spin {spins}, yield {yields}, then sleep 1..{sleep_max_us} µs")
        }
    }
}

/// Writes zeros over a fresh segment's data area (after its 64-byte header) and syncs it.
fn prewrite_zeros(path: &Path, segment_bytes: u64) {
    use std::os::unix::fs::FileExt as _;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment");
    let zeros = vec![0u8; 1 << 20];
    let mut offset = ferrox_sequencer::journal::SEGMENT_HEADER_BYTES as u64;
    while offset < segment_bytes {
        let n = (segment_bytes - offset).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], offset).expect("write zeros");
        offset += n as u64;
    }
    f.sync_all().expect("sync segment");
}

fn pipeline_bench(args: &PipelineArgs) {
    let m = machine();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let data_base = args.data_dir.clone().unwrap_or_else(default_data_base);
    println!("ferrox-pipeline-bench pipeline");
    println!("machine: {}", m.describe());
    println!(
        "journal under {} ({}), rings under {} ({})",
        data_base.display(),
        fs_type(&data_base),
        args.ring_dir.display(),
        fs_type(&args.ring_dir)
    );
    println!(
        "threads: producer, sequencer, engine, consumer on {} cores, layout {:?}; idle: {}",
        cores.len(),
        args.layout,
        idle_description(args.idle, args.spins, args.yields, args.sleep_max_us)
    );
    if args.prewrite_segment {
        println!(
            "experiment: the first journal segment is pre-written with zeros before each run (no unwritten extents)"
        );
    }
    let per_run = |rate: u64| run_sizes(rate, args.seconds, args.commands, args.warmup_s);
    let longest = args
        .rate
        .iter()
        .map(|&r| {
            let (m, w) = per_run(r);
            m + w
        })
        .max()
        .unwrap_or(1);
    let config = WorkloadConfig::small();
    let t = Instant::now();
    let w = generate(&config, longest as usize, args.seed);
    println!(
        "workload: small preset, seed {}, {} pre-fill + {} commands generated in {:.1} s ({} events, {} trades, {} rejects in the generator)",
        args.seed,
        w.prefill.len(),
        w.measured.len(),
        t.elapsed().as_secs_f64(),
        w.stats.events,
        w.stats.trades,
        w.stats.rejects
    );
    let encode = |c: &SequencedCommand| {
        let mut slot = [0u8; INPUT_SLOT_BYTES];
        frame::encode_input(
            Origin {
                producer: 0,
                producer_ref: c.seq,
            },
            &c.command,
            &mut slot,
        );
        slot
    };
    let prefill = w.prefill.len() as u64;
    let all_frames: Vec<[u8; INPUT_SLOT_BYTES]> =
        w.prefill.iter().chain(&w.measured).map(encode).collect();
    let engine_config = config.engine_config();
    drop(w);
    let timer = run_timer();

    let durability = match args.durability {
        DurabilityArg::Async => "async",
        DurabilityArg::Sync => "sync",
    };
    let mut writer = open_report(
        &args.report,
        &format!("pipeline-{durability}"),
        "ferrox-pipeline-bench pipeline",
    );
    let run_rate = |rate: u64| {
        let (measured, warmup) = per_run(rate);
        let frames = &all_frames[..(prefill + warmup + measured) as usize];
        println!(
            "\n-- {} mode, offered {} commands/s: {} measured commands after {} warm-up (+{} pre-fill); load average {} --",
            match args.durability {
                DurabilityArg::Async => format!(
                    "async (fdatasync every {} ms, {})",
                    args.async_sync_interval_ms,
                    if args.inline_sync {
                        "inline in the sequencer"
                    } else {
                        "on its own thread"
                    }
                ),
                DurabilityArg::Sync => "sync (group commit)".to_string(),
            },
            fmt_count(rate as f64),
            fmt_count(measured as f64),
            fmt_count(warmup as f64),
            prefill,
            loadavg()
        );
        run_pipeline(
            args,
            frames,
            &engine_config,
            prefill,
            warmup,
            rate,
            timer,
            &cores,
        )
    };
    let runs = sweep(
        &args.rate,
        &args.report,
        &mut writer,
        &format!("{durability} mode"),
        run_rate,
        |w, run| pipeline_result(w, args, run, prefill, &data_base),
    );

    if let Some(path) = &args.json {
        let mut j = String::from("{\n");
        let _ = writeln!(j, "  \"benchmark\": \"pipeline\",");
        let _ = writeln!(j, "  \"machine\": {},", m.json());
        let _ = writeln!(
            j,
            "  \"journal_fs\": \"{}\", \"ring_fs\": \"{}\",",
            fs_type(&data_base),
            fs_type(&args.ring_dir)
        );
        let _ = writeln!(
            j,
            "  \"layout\": \"{:?}\", \"idle\": \"{}\", \"seed\": {}, \"snapshot_every\": {}, \"inline_sync\": {}, \"prewrite_segment\": {},",
            args.layout,
            idle_description(args.idle, args.spins, args.yields, args.sleep_max_us),
            args.seed,
            args.snapshot_every,
            args.inline_sync,
            args.prewrite_segment
        );
        let _ = writeln!(
            j,
            "  \"ring_slots\": {{\"input\": {}, \"engine\": {}, \"output\": {}}}, \"segment_bytes\": {}, \"async_sync_interval_ms\": {},",
            args.input_ring_slots, args.engine_ring_slots, args.output_ring_slots, args.segment_bytes, args.async_sync_interval_ms
        );
        j.push_str("  \"runs\": [\n");
        for (i, r) in runs.iter().enumerate() {
            let threads = r
                .threads
                .iter()
                .map(|t| {
                    format!(
                        "{{\"name\": \"{}\", \"core\": {}, \"pinned\": {}, \"cpu_s\": {:.3}, \"voluntary_switches\": {}, \"involuntary_switches\": {}, \"busy_round_ns\": {}}}",
                        t.name,
                        t.pinned.map_or("null".into(), |(c, _)| c.to_string()),
                        t.pinned.is_some_and(|(_, ok)| ok),
                        t.usage.cpu_s,
                        t.usage.voluntary_switches,
                        t.usage.involuntary_switches,
                        t.rounds.as_ref().map_or("null".into(), hist_json)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                j,
                "    {{\"durability\": \"{}\", \"offered_per_s\": {}, \"achieved_per_s\": {:.0}, \"producer_sent_per_s\": {:.0}, \"warmup\": {}, \"measured\": {}, \"acked_measured\": {}, \"timed_out\": {}, \"saturated\": {}, \"saturation\": {}, \"wall_s\": {:.3},\n     \"latency_ns\": {},\n     \"service_latency_ns\": {},\n     \"producer_lateness_ns\": {},\n     \"events\": {}, \"trades\": {}, \"rejects\": {}, \"sequenced\": {}, \"syncs\": {}, \"snapshots\": {}, \"loadavg_start\": \"{}\", \"loadavg_end\": \"{}\", \"other_processes_cpus\": {:.2}, \"steal_cpus\": {:.2},\n     \"threads\": [{}]}}{}\n",
                r.durability,
                r.rate,
                r.achieved_per_s,
                r.producer_sent_per_s,
                r.warmup,
                r.measured,
                r.acked_measured,
                r.timed_out,
                r.saturated.is_some(),
                r.saturated
                    .as_ref()
                    .map_or_else(|| "null".to_string(), |s| format!("{s:?}")),
                r.wall_s,
                hist_json(&r.latency),
                hist_json(&r.service),
                hist_json(&r.producer_late),
                r.events,
                r.trades,
                r.rejects,
                r.sequenced,
                r.syncs,
                r.snapshots,
                r.load_start,
                r.load_end,
                r.others_cpus,
                r.steal_cpus,
                threads,
                if i + 1 < runs.len() { "," } else { "" }
            );
        }
        j.push_str("  ]\n}\n");
        std::fs::write(path, j).expect("write the JSON file");
        println!("\nwrote {}", path.display());
    }
}

fn print_run(r: &PipelineRun) {
    if r.timed_out {
        println!("  !! TIMED OUT: no output for 20 s; figures are partial");
    }
    if let Some(why) = &r.saturated {
        println!("  !! SATURATED: {why}");
    }
    let ratio = r.achieved_per_s / r.rate as f64;
    println!(
        "  offered {}/s, achieved {}/s ({:.1}%), producer sent at {}/s; wall {:.2} s; load average {} -> {}; other processes used {:.2} CPUs, steal {:.2}",
        fmt_count(r.rate as f64),
        fmt_count(r.achieved_per_s),
        ratio * 100.0,
        fmt_count(r.producer_sent_per_s),
        r.wall_s,
        r.load_start,
        r.load_end,
        r.others_cpus,
        r.steal_cpus
    );
    println!(
        "  measured {} of {} commands acknowledged; {} events ({:.2}/command), {} trades, {} rejects; sequenced {}, {} fdatasyncs{}{}",
        fmt_count(r.acked_measured as f64),
        fmt_count(r.measured as f64),
        fmt_count(r.events as f64),
        r.events as f64 / r.sequenced.max(1) as f64,
        fmt_count(r.trades as f64),
        r.rejects,
        fmt_count(r.sequenced as f64),
        fmt_count(r.syncs as f64),
        if r.durability == "sync" && r.syncs > 0 {
            format!(" (mean group commit {:.1} commands)", r.sequenced as f64 / r.syncs as f64)
        } else {
            String::new()
        },
        if r.snapshots > 0 {
            format!(", {} snapshots", r.snapshots)
        } else {
            String::new()
        }
    );
    println!("{}", hist_header("latency"));
    println!(
        "{}",
        hist_row("planned send -> END (open loop)", &r.latency)
    );
    println!("{}", hist_row("publish -> END (service)", &r.service));
    println!(
        "{}",
        hist_row("producer lateness (publish-plan)", &r.producer_late)
    );
    for t in &r.threads {
        if let Some(h) = &t.rounds {
            println!(
                "{}",
                hist_row(&format!("{} do_work round (busy)", t.name), h)
            );
        }
    }
    print_threads(&r.threads, r.wall_s);
}

fn print_threads(threads: &[ThreadReport], wall_s: f64) {
    println!(
        "  {:<12} {:>8} {:>8} {:>8} {:>12} {:>12}",
        "thread", "core", "pinned", "cpu", "vol. csw", "invol. csw"
    );
    for t in threads {
        println!(
            "  {:<12} {:>8} {:>8} {:>7.0}% {:>12} {:>12}",
            t.name,
            t.pinned.map_or("-".into(), |(c, _)| c.to_string()),
            match t.pinned {
                None => "no",
                Some((_, true)) => "yes",
                Some((_, false)) => "FAILED",
            },
            t.usage.cpu_s / wall_s * 100.0,
            t.usage.voluntary_switches,
            t.usage.involuntary_switches
        );
    }
}

/// One line of a rate sweep's summary table.
struct SummaryRow<'a> {
    rate: u64,
    achieved_per_s: f64,
    latency: &'a Histogram<u64>,
    service: &'a Histogram<u64>,
    others_cpus: f64,
    saturated: bool,
}

fn print_summary(what: &str, rows: &[SummaryRow<'_>]) {
    println!(
        "\n-- summary ({what}; others = CPUs used by other processes during the run; sat: SAT = saturated) --"
    );
    println!(
        "  {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {:>12} {:>12} {:>7}  sat",
        "offered/s",
        "achieved/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "service p50",
        "service p99",
        "others",
    );
    for r in rows {
        println!(
            "  {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {:>12} {:>12} {:>7.2}  {}",
            fmt_count(r.rate as f64),
            fmt_count(r.achieved_per_s),
            fmt_ns(quantile(r.latency, 0.5) as f64),
            fmt_ns(quantile(r.latency, 0.9) as f64),
            fmt_ns(quantile(r.latency, 0.99) as f64),
            fmt_ns(quantile(r.latency, 0.999) as f64),
            fmt_ns(quantile(r.latency, 0.9999) as f64),
            fmt_ns(quantile(r.latency, 1.0) as f64),
            fmt_ns(quantile(r.service, 0.5) as f64),
            fmt_ns(quantile(r.service, 0.99) as f64),
            r.others_cpus,
            if r.saturated { "SAT" } else { "-" }
        );
    }
}

/// The pipeline run as a result of the common report.
fn pipeline_result(
    w: &ReportWriter,
    args: &PipelineArgs,
    r: &PipelineRun,
    prefill: u64,
    data_base: &Path,
) -> BenchResult {
    let name = unique_name(w, &format!("pipeline-{}-{}", r.durability, r.rate));
    let durability = match args.durability {
        DurabilityArg::Async => format!(
            "async: fdatasync every {} ms {}",
            args.async_sync_interval_ms,
            if args.inline_sync {
                "inline in the sequencer"
            } else {
                "on its own thread"
            }
        ),
        DurabilityArg::Sync => {
            "sync: group commit, fdatasync before the engine sees a command".into()
        }
    };
    let threads: serde_json::Map<String, serde_json::Value> = r
        .threads
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                serde_json::json!({
                    "core": t.pinned.map(|(c, _)| c),
                    "pinned": t.pinned.is_some_and(|(_, ok)| ok),
                    "cpu_s": t.usage.cpu_s,
                    "voluntary_switches": t.usage.voluntary_switches,
                    "involuntary_switches": t.usage.involuntary_switches,
                }),
            )
        })
        .collect();
    let result = BenchResult::new(name, "pipeline", "ferrox", "small", &r.latency)
        .basis(
            "planned send time (open loop, evenly spaced at the offered rate) to the consumer \
             reading the command's last output frame (END), through producer -> input ring -> \
             sequencer (journal) -> engine ring -> engine -> output ring -> consumer, one process",
        )
        .rates(Some(r.rate as f64), r.achieved_per_s)
        .pinning(pinning_description(&r.threads))
        .param("durability", r.durability)
        .param("durability_detail", durability)
        .param("seed", args.seed)
        .param("commands", r.measured)
        .param("acknowledged", r.acked_measured)
        .param("dropped", r.measured - r.acked_measured.min(r.measured))
        .param("timed_out", r.timed_out)
        .param("warmup_commands", r.warmup)
        .param("warmup_s", args.warmup_s)
        .param("prefill_commands", prefill)
        .param("rejects", r.rejects)
        .param("events", r.events)
        .param("trades", r.trades)
        .param("sequenced", r.sequenced)
        .param("fdatasyncs", r.syncs)
        .param("snapshots", r.snapshots)
        .param("snapshot_every", args.snapshot_every)
        .param("layout", format!("{:?}", args.layout))
        .param(
            "idle",
            idle_description(args.idle, args.spins, args.yields, args.sleep_max_us),
        )
        .param("threads", threads)
        .param(
            "ring_slots",
            serde_json::json!({
                "input": args.input_ring_slots,
                "engine": args.engine_ring_slots,
                "output": args.output_ring_slots,
            }),
        )
        .param("journal_fs", fs_type(data_base))
        .param("ring_fs", fs_type(&args.ring_dir));
    r.add_params(result)
}

// ----- floor ------------------------------------------------------------------------------

/// One run of the bare-ring floor.
struct FloorRun {
    rate: u64,
    warmup: u64,
    measured: u64,
    received_measured: u64,
    /// Messages whose index did not match their ring sequence (should be 0).
    out_of_order: u64,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    producer_late: Histogram<u64>,
    achieved_per_s: f64,
    producer_sent_per_s: f64,
    wall_s: f64,
    threads: Vec<ThreadReport>,
    load_start: String,
    load_end: String,
    others_cpus: f64,
    steal_cpus: f64,
    timed_out: bool,
    trend_p50: Vec<u64>,
    saturated: Option<String>,
}

/// The floor's message: its index and its publish time (ns on the run's clock), then filler,
/// `COMMAND_BYTES` in all, the size of a wire command.
#[inline]
fn floor_message(index: u64, now: u64) -> [u8; COMMAND_BYTES] {
    let mut m = [0u8; COMMAND_BYTES];
    m[..8].copy_from_slice(&index.to_le_bytes());
    m[8..16].copy_from_slice(&now.to_le_bytes());
    m[16..24].copy_from_slice(&(!index).to_le_bytes());
    m
}

/// The pipeline's open-loop producer and consumer with nothing between them but one bare
/// single-producer single-consumer shared-memory ring (the sequencer crate's ring, one consumer
/// slot, `COMMAND_BYTES`-byte slots): the floor under `pipeline`'s latency on this machine.
fn run_floor(
    args: &FloorArgs,
    warmup: u64,
    measured: u64,
    rate: u64,
    timer: Timer,
    cores: &[CoreId],
) -> FloorRun {
    let total = warmup + measured;
    let measured_from = warmup;
    let interval_ns = 1e9 / rate as f64;
    let rings = tempfile::Builder::new()
        .prefix("ferrox-floor-bench-")
        .tempdir_in(&args.ring_dir)
        .expect("ring directory");
    let spec = RingSpec::new(COMMAND_BYTES, args.ring_slots, 1).expect("ring spec");
    let path = rings.path().join("floor.ring");
    let mut producer = Producer::create(&path, spec).expect("floor ring");
    let mut consumer = Consumer::attach(&path, spec, 0, Start::Producer).expect("floor attach");
    let [producer_core, _, _, consumer_core] = layout_cores(args.layout, cores);
    let idle_config = IdleConfig::new(args.idle, args.spins, args.yields, args.sleep_max_us);
    let load_start = loadavg();
    let clock = Clock {
        timer,
        t0: timer.ticks(),
    };
    let wall = Instant::now();
    let cpu0 = cpu_snapshot();
    let mut producer_done_ns = 0u64;

    let (producer_report, producer_late, consumer_out) = thread::scope(|s| {
        let producer = &mut producer;
        let consumer = &mut consumer;
        let producer_done_ns = &mut producer_done_ns;
        let p = s.spawn(move || {
            let meter = ThreadMeter::start(producer_core);
            let late = produce_open_loop(
                producer,
                total,
                interval_ns,
                clock,
                idle_config,
                floor_message,
            );
            *producer_done_ns = clock.now_ns();
            (meter.report("producer", None), late)
        });
        let c = s.spawn(move || {
            let meter = ThreadMeter::start(consumer_core);
            let mut measure = OpenLoopLatency::new(measured_from, measured, interval_ns);
            let mut out_of_order = 0u64;
            let timed_out = consume_open_loop(
                consumer,
                total,
                clock,
                idle_config,
                false,
                |seq, slot, now| {
                    let word = |k: usize| {
                        u64::from_le_bytes(slot[k * 8..k * 8 + 8].try_into().expect("8 bytes"))
                    };
                    let (index, sent) = (word(0), word(1));
                    if index != seq || word(2) != !index {
                        out_of_order += 1;
                    }
                    measure.record(index, now, || sent);
                    true
                },
            );
            (
                meter.report("consumer", None),
                measure,
                out_of_order,
                timed_out,
            )
        });
        let consumer_out = c.join().expect("consumer thread");
        let (report, late) = p.join().expect("producer thread");
        (report, late, consumer_out)
    });
    let (consumer_report, measure, out_of_order, timed_out) = consumer_out;
    let OpenLoopLatency {
        count: received_measured,
        last_ns,
        latency,
        service,
        trend,
        ..
    } = measure;
    let trend_p50 = trend.p50s();
    drop((producer, consumer));
    let wall_s = wall.elapsed().as_secs_f64();
    let (others_cpus, steal_cpus) = others_cpu(cpu0, cpu_snapshot(), wall_s);
    let first_planned = planned_ns(measured_from, interval_ns);
    let achieved_per_s =
        received_measured as f64 / (last_ns.saturating_sub(first_planned).max(1) as f64 / 1e9);
    let producer_sent_per_s = total as f64 / (producer_done_ns.max(1) as f64 / 1e9);
    let saturated = saturation(rate, achieved_per_s, timed_out, &trend_p50);
    FloorRun {
        rate,
        warmup,
        measured,
        received_measured,
        out_of_order,
        latency,
        service,
        producer_late,
        achieved_per_s,
        producer_sent_per_s,
        wall_s,
        threads: vec![producer_report, consumer_report],
        load_start,
        load_end: loadavg(),
        others_cpus,
        steal_cpus,
        timed_out,
        trend_p50,
        saturated,
    }
}

fn print_floor_run(r: &FloorRun) {
    if r.timed_out {
        println!("  !! TIMED OUT: nothing read for 20 s; figures are partial");
    }
    if let Some(why) = &r.saturated {
        println!("  !! SATURATED: {why}");
    }
    println!(
        "  offered {}/s, achieved {}/s ({:.1}%), producer sent at {}/s; wall {:.2} s; load average {} -> {}; other processes used {:.2} CPUs, steal {:.2}",
        fmt_count(r.rate as f64),
        fmt_count(r.achieved_per_s),
        r.achieved_per_s / r.rate as f64 * 100.0,
        fmt_count(r.producer_sent_per_s),
        r.wall_s,
        r.load_start,
        r.load_end,
        r.others_cpus,
        r.steal_cpus
    );
    println!(
        "  measured {} of {} messages read; {} out of order or corrupt",
        fmt_count(r.received_measured as f64),
        fmt_count(r.measured as f64),
        r.out_of_order
    );
    println!("{}", hist_header("latency"));
    println!(
        "{}",
        hist_row("planned send -> read (open loop)", &r.latency)
    );
    println!("{}", hist_row("publish -> read (service)", &r.service));
    println!(
        "{}",
        hist_row("producer lateness (publish-plan)", &r.producer_late)
    );
    print_threads(&r.threads, r.wall_s);
}

fn floor_result(w: &ReportWriter, args: &FloorArgs, r: &FloorRun) -> BenchResult {
    let name = unique_name(w, &format!("floor-ring-{}", r.rate));
    let result = BenchResult::new(
        name,
        "floor-ring",
        "spsc-ring",
        "64-byte-messages",
        &r.latency,
    )
    .basis(format!(
        "planned send time (open loop, evenly spaced at the offered rate) to the consumer \
             reading the {COMMAND_BYTES}-byte message from a bare single-producer \
             single-consumer shared-memory ring (no sequencer, journal or engine), one process"
    ))
    .rates(Some(r.rate as f64), r.achieved_per_s)
    .pinning(pinning_description(&r.threads))
    .param("message_bytes", COMMAND_BYTES as u64)
    .param("ring_slots", args.ring_slots as u64)
    .param("ring_fs", fs_type(&args.ring_dir))
    .param("seed", args.seed)
    .param("commands", r.measured)
    .param("received", r.received_measured)
    .param("dropped", r.measured - r.received_measured.min(r.measured))
    .param("out_of_order", r.out_of_order)
    .param("timed_out", r.timed_out)
    .param("warmup_commands", r.warmup)
    .param("warmup_s", args.warmup_s)
    .param("layout", format!("{:?}", args.layout))
    .param(
        "idle",
        idle_description(args.idle, args.spins, args.yields, args.sleep_max_us),
    );
    r.add_params(result)
}

fn floor_bench(args: &FloorArgs) {
    let m = machine();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    println!("ferrox-pipeline-bench floor");
    println!("machine: {}", m.describe());
    println!(
        "one bare SPSC ring of {} x {COMMAND_BYTES}-byte slots under {} ({}); no sequencer, journal or engine",
        fmt_count(args.ring_slots as f64),
        args.ring_dir.display(),
        fs_type(&args.ring_dir)
    );
    println!(
        "threads: producer, consumer on {} cores, layout {:?} (as pipeline's producer and consumer); idle: {}",
        cores.len(),
        args.layout,
        idle_description(args.idle, args.spins, args.yields, args.sleep_max_us)
    );
    let timer = run_timer();
    let mut writer = open_report(&args.report, "floor-ring", "ferrox-pipeline-bench floor");
    let run_rate = |rate: u64| {
        let (measured, warmup) = run_sizes(rate, args.seconds, args.commands, args.warmup_s);
        println!(
            "\n-- bare ring, offered {} messages/s: {} measured messages after {} warm-up; load average {} --",
            fmt_count(rate as f64),
            fmt_count(measured as f64),
            fmt_count(warmup as f64),
            loadavg()
        );
        run_floor(args, warmup, measured, rate.max(1), timer, &cores)
    };
    let runs = sweep(
        &args.rate,
        &args.report,
        &mut writer,
        "bare SPSC ring floor",
        run_rate,
        |w, run| floor_result(w, args, run),
    );
    if let Some(path) = &args.json {
        let mut j = String::from("{\n");
        let _ = writeln!(j, "  \"benchmark\": \"floor-ring\",");
        let _ = writeln!(j, "  \"machine\": {},", m.json());
        let _ = writeln!(
            j,
            "  \"ring_fs\": \"{}\", \"ring_slots\": {}, \"message_bytes\": {COMMAND_BYTES}, \"layout\": \"{:?}\", \"idle\": \"{}\",",
            fs_type(&args.ring_dir),
            args.ring_slots,
            args.layout,
            idle_description(args.idle, args.spins, args.yields, args.sleep_max_us)
        );
        j.push_str("  \"runs\": [\n");
        for (i, r) in runs.iter().enumerate() {
            let _ = write!(
                j,
                "    {{\"offered_per_s\": {}, \"achieved_per_s\": {:.0}, \"producer_sent_per_s\": {:.0}, \"warmup\": {}, \"measured\": {}, \"received_measured\": {}, \"out_of_order\": {}, \"timed_out\": {}, \"saturated\": {}, \"saturation\": {}, \"wall_s\": {:.3},\n     \"latency_ns\": {},\n     \"service_latency_ns\": {},\n     \"producer_lateness_ns\": {},\n     \"loadavg_start\": \"{}\", \"loadavg_end\": \"{}\", \"other_processes_cpus\": {:.2}, \"steal_cpus\": {:.2}}}{}\n",
                r.rate,
                r.achieved_per_s,
                r.producer_sent_per_s,
                r.warmup,
                r.measured,
                r.received_measured,
                r.out_of_order,
                r.timed_out,
                r.saturated.is_some(),
                r.saturated
                    .as_ref()
                    .map_or_else(|| "null".to_string(), |s| format!("{s:?}")),
                r.wall_s,
                hist_json(&r.latency),
                hist_json(&r.service),
                hist_json(&r.producer_late),
                r.load_start,
                r.load_end,
                r.others_cpus,
                r.steal_cpus,
                if i + 1 < runs.len() { "," } else { "" }
            );
        }
        j.push_str("  ]\n}\n");
        std::fs::write(path, j).expect("write the JSON file");
        println!("\nwrote {}", path.display());
    }
}

// ----- recovery -----------------------------------------------------------------------------

/// Drops the page cache (needs root); says whether it worked.
fn drop_caches() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

struct RecoveryRun {
    case: &'static str,
    cold: bool,
    secs: f64,
    snapshot_seq: Option<u64>,
    replayed: u64,
    state_ok: bool,
}

fn recovery_bench(args: &RecoveryArgs) {
    let m = machine();
    let data_base = args.data_dir.clone().unwrap_or_else(default_data_base);
    println!("ferrox-pipeline-bench recovery");
    println!("machine: {}", m.describe());
    println!(
        "data under {} ({}); load average {}",
        data_base.display(),
        fs_type(&data_base),
        loadavg()
    );
    let config = WorkloadConfig::small();
    let engine_config = config.engine_config();
    let prefill = u64::from(config.orders_per_instrument * config.instruments);
    let n = args.commands.max(prefill + 1);
    let t = Instant::now();
    let w = generate(&config, (n - prefill) as usize, args.seed);
    assert_eq!(w.prefill.len() as u64, prefill);
    println!(
        "workload: small preset, seed {}, {} commands generated in {:.1} s",
        args.seed,
        fmt_count(n as f64),
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::Builder::new()
        .prefix("recovery-")
        .tempdir_in(&data_base)
        .expect("data directory");
    let journal_dir = dir.path().join("journal");
    let snapshots_dir = dir.path().join("snapshots");
    let parked = dir.path().join("snapshots-parked");

    // Build: the journal, and snapshots from an engine driven alongside. A snapshot is written
    // only once the journal covering it is durable, as the exchange does.
    let t = Instant::now();
    let (mut journal, _) =
        Journal::open(&journal_dir, JournalOptions::default()).expect("open journal");
    let mut engine = Engine::new(engine_config.clone()).expect("engine");
    let mut snap = Vec::new();
    let mut snapshot_secs = 0.0;
    let mut snapshot_bytes = 0usize;
    let mut snapshots = 0;
    for cmd in w.prefill.iter().chain(&w.measured) {
        let mut slot = [0u8; INPUT_SLOT_BYTES];
        frame::encode_input(
            Origin {
                producer: 0,
                producer_ref: cmd.seq,
            },
            &cmd.command,
            &mut slot,
        );
        journal
            .append(cmd.seq, cmd.ts_ns, &slot)
            .expect("journal append");
        engine.apply(cmd, &mut NullSink);
        if args.snapshot_every > 0 && cmd.seq % args.snapshot_every == 0 && cmd.seq < n {
            journal.sync().expect("journal sync");
            let ts = Instant::now();
            snap.clear();
            engine.write_snapshot(&mut snap);
            recovery::write_snapshot_file(&snapshots_dir, cmd.seq, &snap).expect("snapshot");
            snapshot_secs += ts.elapsed().as_secs_f64();
            snapshot_bytes = snap.len();
            snapshots += 1;
        }
    }
    journal.sync().expect("journal sync");
    let last_seq = journal.written_seq();
    drop(journal);
    let expected_hash = engine.state_hash();
    drop(engine);
    drop(w);
    let journal_bytes: u64 = std::fs::read_dir(&journal_dir)
        .expect("journal listing")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let data_bytes = last_seq * ferrox_sequencer::journal::framed_bytes(INPUT_SLOT_BYTES) as u64;
    println!(
        "built in {:.1} s: journal of {} records (last seq {}), {:.0} MiB of records in {:.0} MiB of segment files; {} snapshots ({} bytes each, {:.1} ms each to serialise and write)",
        t.elapsed().as_secs_f64(),
        fmt_count(last_seq as f64),
        last_seq,
        data_bytes as f64 / (1 << 20) as f64,
        journal_bytes as f64 / (1 << 20) as f64,
        snapshots,
        snapshot_bytes,
        snapshot_secs * 1e3 / f64::from(snapshots.max(1))
    );
    let kept = recovery::list_snapshots(&snapshots_dir).unwrap_or_default();
    println!(
        "snapshots kept (newest first): {:?}",
        kept.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );

    let cold_ok = !args.no_cold && drop_caches();
    if !args.no_cold && !cold_ok {
        println!("cannot drop the page cache (not root?): cold runs skipped");
    }
    let mut runs: Vec<RecoveryRun> = Vec::new();
    let time_recover = |case: &'static str, cold: bool| -> RecoveryRun {
        if cold {
            drop_caches();
        }
        let t = Instant::now();
        let r = recovery::recover(&engine_config, dir.path(), JournalOptions::default())
            .expect("recover");
        let secs = t.elapsed().as_secs_f64();
        let run = RecoveryRun {
            case,
            cold,
            secs,
            snapshot_seq: r.snapshot_seq,
            replayed: r.replayed,
            state_ok: r.engine.state_hash() == expected_hash && r.engine.last_seq() == last_seq,
        };
        println!(
            "  {:<22} {:<5} {:>8.3} s   snapshot {:>10}   replayed {:>11}   {}   state {}",
            case,
            if cold { "cold" } else { "warm" },
            secs,
            r.snapshot_seq
                .map_or_else(|| "none".to_string(), |s| fmt_count(s as f64)),
            fmt_count(r.replayed as f64),
            if r.replayed > 0 {
                format!(
                    "{:>6.2} M commands/s over the whole restart",
                    r.replayed as f64 / secs / 1e6
                )
            } else {
                String::new()
            },
            if run.state_ok { "matches" } else { "DIFFERS" }
        );
        run
    };
    println!("\n-- restart: recovery::recover (journal open and verify, snapshot load, replay) --");
    let cases: [(&'static str, bool); 2] = [
        ("with snapshots", args.snapshot_every > 0),
        ("full replay", true),
    ];
    for (case, enabled) in cases {
        if !enabled {
            continue;
        }
        let with = case == "with snapshots";
        if !with && snapshots_dir.exists() {
            std::fs::rename(&snapshots_dir, &parked).expect("park snapshots");
        }
        // A first untimed pass warms the page cache for the warm runs.
        let _ = recovery::recover(&engine_config, dir.path(), JournalOptions::default())
            .expect("recover");
        for _ in 0..args.runs {
            runs.push(time_recover(case, false));
        }
        if cold_ok {
            for _ in 0..args.runs {
                runs.push(time_recover(case, true));
            }
        }
        if !with && parked.exists() {
            std::fs::rename(&parked, &snapshots_dir).expect("restore snapshots");
        }
    }

    // Components, warm: verifying the journal alone, and replay alone.
    println!("\n-- components (warm) --");
    let t = Instant::now();
    let (j, rec) = Journal::open(&journal_dir, JournalOptions::default()).expect("open");
    let open_secs = t.elapsed().as_secs_f64();
    drop(j);
    println!(
        "  Journal::open (scan and CRC-check {} records in {} segments): {:.3} s, {:.0} MB/s of records",
        fmt_count(rec.records as f64),
        rec.segments,
        open_secs,
        data_bytes as f64 / open_secs / 1e6
    );
    // The zero tail of the last, preallocated segment is scanned for intact records at open
    // (torn-tail detection): time that on a journal of one record in a fresh segment.
    let tail_dir = dir.path().join("tail-journal");
    {
        let (mut j, _) = Journal::open(&tail_dir, JournalOptions::default()).expect("open");
        j.append(1, 1, &[0u8; INPUT_SLOT_BYTES]).expect("append");
        j.sync().expect("sync");
    }
    let mut tail_open_secs = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let (j, _) = Journal::open(&tail_dir, JournalOptions::default()).expect("open");
        tail_open_secs = tail_open_secs.min(t.elapsed().as_secs_f64());
        drop(j);
    }
    let mut tail_read_secs = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let reader = JournalReader::open(&tail_dir).expect("reader");
        assert_eq!(reader.iter_from(1).count(), 1);
        tail_read_secs = tail_read_secs.min(t.elapsed().as_secs_f64());
    }
    println!(
        "  Journal::open of a journal holding 1 record (a fresh {} MiB segment): {:.3} s; JournalReader iterating it: {:.3} s (best of 3; the preallocated zero tail is scanned)",
        JournalOptions::default().segment_bytes >> 20,
        tail_open_secs,
        tail_read_secs
    );
    let t = Instant::now();
    let reader = JournalReader::open(&journal_dir).expect("reader");
    let mut engine = Engine::new(engine_config.clone()).expect("engine");
    let mut replayed = 0u64;
    for record in reader.iter_from(1) {
        let record = record.expect("record");
        let (_, command) = frame::decode_input(record.payload).expect("payload decodes");
        engine.apply(
            &SequencedCommand {
                seq: record.seq,
                ts_ns: record.ts_ns,
                command,
            },
            &mut NullSink,
        );
        replayed += 1;
    }
    let replay_secs = t.elapsed().as_secs_f64();
    assert_eq!(engine.state_hash(), expected_hash, "replay matches");
    println!(
        "  replay alone (JournalReader + decode + Engine::apply, NullSink): {} commands in {:.3} s: {:.2} M commands/s",
        fmt_count(replayed as f64),
        replay_secs,
        replayed as f64 / replay_secs / 1e6
    );
    let t = Instant::now();
    let reader = JournalReader::open(&journal_dir).expect("reader");
    let mut decoded = 0u64;
    for record in reader.iter_from(1) {
        let record = record.expect("record");
        if frame::decode_input(record.payload).is_ok() {
            decoded += 1;
        }
    }
    let read_secs = t.elapsed().as_secs_f64();
    println!(
        "  read + decode only (no engine): {} records in {:.3} s: {:.2} M records/s",
        fmt_count(decoded as f64),
        read_secs,
        decoded as f64 / read_secs / 1e6
    );

    if let Some(path) = &args.json {
        let mut j = String::from("{\n");
        let _ = writeln!(j, "  \"benchmark\": \"recovery\",");
        let _ = writeln!(j, "  \"machine\": {},", m.json());
        let _ = writeln!(j, "  \"fs\": \"{}\",", fs_type(&data_base));
        let _ = writeln!(
            j,
            "  \"commands\": {last_seq}, \"snapshot_every\": {}, \"snapshot_bytes\": {snapshot_bytes}, \"journal_record_bytes\": {data_bytes}, \"journal_file_bytes\": {journal_bytes},",
            args.snapshot_every
        );
        let _ = writeln!(
            j,
            "  \"journal_open_s\": {open_secs:.4}, \"one_record_journal_open_s\": {tail_open_secs:.4}, \"one_record_journal_read_s\": {tail_read_secs:.4}, \"replay_only_s\": {replay_secs:.4}, \"replay_only_per_s\": {:.0}, \"read_decode_only_s\": {read_secs:.4},",
            replayed as f64 / replay_secs
        );
        j.push_str("  \"runs\": [\n");
        for (i, r) in runs.iter().enumerate() {
            let _ = writeln!(
                j,
                "    {{\"case\": \"{}\", \"cold\": {}, \"secs\": {:.4}, \"snapshot_seq\": {}, \"replayed\": {}, \"state_matches\": {}}}{}",
                r.case,
                r.cold,
                r.secs,
                r.snapshot_seq.map_or("null".into(), |s| s.to_string()),
                r.replayed,
                r.state_ok,
                if i + 1 < runs.len() { "," } else { "" }
            );
        }
        j.push_str("  ]\n}\n");
        std::fs::write(path, j).expect("write the JSON file");
        println!("\nwrote {}", path.display());
    }
}

// ----- journal ------------------------------------------------------------------------------

struct BatchResult {
    mode: &'static str,
    batch: usize,
    rounds: u64,
    records_per_s: f64,
    /// Per batch: append of the batch + flush (+ fdatasync), i.e. the ack latency of the
    /// batch's last record.
    ack: Histogram<u64>,
    /// Per batch: the flush (+ fdatasync) call alone.
    io: Histogram<u64>,
}

fn journal_bench(args: &JournalArgs) {
    let m = machine();
    let data_base = args.data_dir.clone().unwrap_or_else(default_data_base);
    println!("ferrox-pipeline-bench journal");
    println!("machine: {}", m.describe());
    println!(
        "files under {} ({}); load average {}",
        data_base.display(),
        fs_type(&data_base),
        loadavg()
    );
    let dir = tempfile::Builder::new()
        .prefix("journal-")
        .tempdir_in(&data_base)
        .expect("bench directory");
    // A real payload: an encoded input frame of a limit order.
    let w = generate(&WorkloadConfig::small(), 1, 1);
    let mut payload = [0u8; INPUT_SLOT_BYTES];
    frame::encode_input(
        Origin {
            producer: 0,
            producer_ref: 1,
        },
        &w.prefill[0].command,
        &mut payload,
    );
    let framed = ferrox_sequencer::journal::framed_bytes(payload.len());
    println!(
        "payload {} bytes, {} bytes framed; segments {} MiB (preallocated with fallocate)",
        payload.len(),
        framed,
        JournalOptions::default().segment_bytes >> 20
    );
    let (mut journal, _) =
        Journal::open(dir.path().join("journal"), JournalOptions::default()).expect("open");
    let mut seq = 0u64;

    // Segment rollover: the append that finds the segment full syncs it and creates the next
    // one (fallocate, fsync, rename, directory fsync) inline, on the sequencer's thread.
    // Appends are flushed every 1,024 records, as the sequencer's async mode does per batch,
    // and synced (untimed) just before the rollover batch, as the background sync would have
    // done, so that the timed batch measures the segment change rather than a backlog of
    // unsynced data. This runs first, on a fresh journal, so segment boundaries are known.
    let per_segment = (JournalOptions::default().segment_bytes
        - ferrox_sequencer::journal::SEGMENT_HEADER_BYTES as u64)
        / framed as u64;
    let mut rollovers = Vec::new();
    let mut segment_first = 1u64;
    for _ in 0..args.rollovers {
        let segment = journal.active_segment_path().to_path_buf();
        loop {
            if (seq + 1 - segment_first) + 2 * 1024 > per_segment {
                journal.sync().expect("sync");
            }
            let t = Instant::now();
            for _ in 0..1024 {
                seq += 1;
                journal.append(seq, seq, &payload).expect("append");
            }
            journal.flush().expect("flush");
            if journal.active_segment_path() != segment {
                rollovers.push(t.elapsed().as_nanos() as u64);
                // Records are all the same size, so every segment holds `per_segment`.
                segment_first += per_segment;
                break;
            }
        }
    }
    journal.sync().expect("sync");
    if !rollovers.is_empty() {
        println!(
            "segment rollover ({} MiB segments, {} records each): the batch of 1,024 appends + flush that rolled over took {}",
            JournalOptions::default().segment_bytes >> 20,
            fmt_count(per_segment as f64),
            rollovers
                .iter()
                .map(|&ns| fmt_ns(ns as f64))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // Appends only: encoding, CRC and the 1 MiB user-space buffer, one pwrite per MiB.
    let t = Instant::now();
    for _ in 0..args.records {
        seq += 1;
        journal.append(seq, seq, &payload).expect("append");
    }
    journal.flush().expect("flush");
    let append_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    journal.sync().expect("sync");
    let first_sync_secs = t.elapsed().as_secs_f64();
    let append_per_s = args.records as f64 / append_secs;
    println!(
        "\nappend + flush (buffered, one pwrite per MiB): {} records in {:.3} s: {:.2} M records/s, {:.0} MB/s framed; the fdatasync after it: {}",
        fmt_count(args.records as f64),
        append_secs,
        append_per_s / 1e6,
        (args.records * framed as u64) as f64 / append_secs / 1e6,
        fmt_ns(first_sync_secs * 1e9)
    );

    let mut results = Vec::new();
    let budget = Duration::from_secs_f64(args.seconds);
    for mode in ["async", "sync"] {
        for &batch in &args.batch {
            let mut ack = new_histogram();
            let mut io = new_histogram();
            let mut rounds = 0u64;
            let start = Instant::now();
            while start.elapsed() < budget {
                let t0 = Instant::now();
                for _ in 0..batch {
                    seq += 1;
                    journal.append(seq, seq, &payload).expect("append");
                }
                let t1 = Instant::now();
                if mode == "sync" {
                    journal.sync().expect("sync");
                } else {
                    journal.flush().expect("flush");
                }
                let t2 = Instant::now();
                ack.saturating_record((t2 - t0).as_nanos().max(1) as u64);
                io.saturating_record((t2 - t1).as_nanos().max(1) as u64);
                rounds += 1;
            }
            let secs = start.elapsed().as_secs_f64();
            results.push(BatchResult {
                mode,
                batch,
                rounds,
                records_per_s: (rounds * batch as u64) as f64 / secs,
                ack,
                io,
            });
            // Untimed: leave no pile of dirty pages for the next test.
            journal.sync().expect("sync");
        }
    }

    // Async mode as `ferrox run` runs it: the writer appends and flushes a batch at a paced
    // rate while another thread fdatasyncs the active segment every 50 ms through its own
    // handle; and the same without that thread. The difference is what the background sync
    // costs the writer's pwrite (file system and writeback contention), with no other thread
    // competing for the cores.
    let mut paced = Vec::new();
    for with_syncer in [true, false] {
        let batch = args.paced_batch.max(1);
        let interval = Duration::from_secs_f64(batch as f64 / args.paced_rate.max(1) as f64);
        let segment = Arc::new(std::sync::Mutex::new(
            journal.active_segment_path().to_path_buf(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let syncs = Arc::new(AtomicU64::new(0));
        let syncer = with_syncer.then(|| {
            let (segment, stop, syncs) =
                (Arc::clone(&segment), Arc::clone(&stop), Arc::clone(&syncs));
            thread::spawn(move || {
                let mut sync_ns = new_histogram();
                while !stop.load(Ordering::Acquire) {
                    thread::sleep(Duration::from_millis(50));
                    let path = segment.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let t = Instant::now();
                    std::fs::File::open(&path)
                        .and_then(|f| f.sync_data())
                        .expect("fdatasync");
                    sync_ns.saturating_record(t.elapsed().as_nanos().max(1) as u64);
                    syncs.fetch_add(1, Ordering::Relaxed);
                }
                sync_ns
            })
        });
        let mut flush = new_histogram();
        let mut rounds = 0u64;
        let start = Instant::now();
        let mut next = start;
        while start.elapsed() < budget {
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            next += interval;
            for _ in 0..batch {
                seq += 1;
                journal.append(seq, seq, &payload).expect("append");
            }
            let t = Instant::now();
            journal.flush().expect("flush");
            flush.saturating_record(t.elapsed().as_nanos().max(1) as u64);
            let active = journal.active_segment_path();
            let mut shared = segment.lock().unwrap_or_else(|e| e.into_inner());
            if *shared != active {
                *shared = active.to_path_buf();
            }
            drop(shared);
            rounds += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Release);
        let sync_hist = syncer.map(|t| t.join().expect("syncer thread"));
        journal.sync().expect("sync");
        paced.push((
            with_syncer,
            (rounds * batch as u64) as f64 / secs,
            flush,
            sync_hist,
        ));
    }
    drop(journal);

    // Baseline: the same pwrite + fdatasync pattern on a file whose blocks were written (zeros)
    // and synced beforehand, so fdatasync has no extent conversion (metadata) to commit.
    let raw_path = dir.path().join("raw-baseline");
    let raw_bytes: u64 = 256 << 20;
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&raw_path).expect("raw file");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..raw_bytes >> 20 {
            f.write_all(&zeros).expect("write zeros");
        }
        f.sync_all().expect("sync raw file");
    }
    let raw = std::fs::OpenOptions::new()
        .write(true)
        .open(&raw_path)
        .expect("open raw file");
    let mut raw_results = Vec::new();
    {
        use std::os::unix::fs::FileExt as _;
        let mut offset = 0u64;
        for &batch in &args.batch {
            let buf = vec![0x5au8; batch * framed];
            let mut io = new_histogram();
            let mut rounds = 0u64;
            let start = Instant::now();
            while start.elapsed() < budget {
                if offset + buf.len() as u64 > raw_bytes {
                    offset = 0;
                }
                let t = Instant::now();
                raw.write_all_at(&buf, offset).expect("pwrite");
                raw.sync_data().expect("fdatasync");
                io.saturating_record(t.elapsed().as_nanos().max(1) as u64);
                offset += buf.len() as u64;
                rounds += 1;
            }
            let secs = start.elapsed().as_secs_f64();
            raw_results.push(BatchResult {
                mode: "raw pre-written file",
                batch,
                rounds,
                records_per_s: (rounds * batch as u64) as f64 / secs,
                ack: io.clone(),
                io,
            });
        }
    }

    println!("\n-- group commit: per batch, append the batch then flush (async) or sync (sync) --");
    println!("   (ack = append of the batch + flush [+ fdatasync]; io = the flush [+ fdatasync] call alone)");
    println!(
        "  {:<22} {:>6} {:>8} {:>14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "mode", "batch", "rounds", "records/s", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    let row = |r: &BatchResult, what: &str, h: &Histogram<u64>| {
        println!(
            "  {:<22} {:>6} {:>8} {:>14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            format!("{} {}", r.mode, what),
            r.batch,
            r.rounds,
            fmt_count(r.records_per_s),
            fmt_ns(quantile(h, 0.5) as f64),
            fmt_ns(quantile(h, 0.9) as f64),
            fmt_ns(quantile(h, 0.99) as f64),
            fmt_ns(quantile(h, 0.999) as f64),
            fmt_ns(quantile(h, 1.0) as f64),
            fmt_ns(h.mean()),
        );
    };
    for r in &results {
        row(r, "ack", &r.ack);
        row(r, "io", &r.io);
    }
    for r in &raw_results {
        row(r, "", &r.io);
    }
    println!(
        "\n-- async writer paced at {} records/s in batches of {} (append + flush per batch) --",
        fmt_count(args.paced_rate as f64),
        args.paced_batch
    );
    println!("{}", hist_header("latency"));
    for (with_syncer, rate, flush, sync_hist) in &paced {
        println!(
            "{}",
            hist_row(
                &format!(
                    "flush, {} ({:.2} M/s)",
                    if *with_syncer {
                        "bg fdatasync/50 ms"
                    } else {
                        "no fdatasync"
                    },
                    rate / 1e6
                ),
                flush
            )
        );
        if let Some(h) = sync_hist {
            println!("{}", hist_row("  the background fdatasync itself", h));
        }
    }

    if let Some(path) = &args.json {
        let mut j = String::from("{\n");
        let _ = writeln!(j, "  \"benchmark\": \"journal\",");
        let _ = writeln!(j, "  \"machine\": {},", m.json());
        let _ = writeln!(j, "  \"fs\": \"{}\",", fs_type(&data_base));
        let _ = writeln!(
            j,
            "  \"payload_bytes\": {}, \"framed_bytes\": {framed},",
            payload.len()
        );
        let _ = writeln!(
            j,
            "  \"append_flush_records\": {}, \"append_flush_per_s\": {append_per_s:.0}, \"first_sync_ns\": {:.0}, \"rollover_batch_ns\": {:?},",
            args.records,
            first_sync_secs * 1e9,
            rollovers
        );
        let paced_json = paced
            .iter()
            .map(|(w, rate, flush, sync_hist)| {
                format!(
                    "{{\"background_fdatasync\": {w}, \"records_per_s\": {rate:.0}, \"flush_ns\": {}, \"fdatasync_ns\": {}}}",
                    hist_json(flush),
                    sync_hist.as_ref().map_or("null".into(), hist_json)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            j,
            "  \"paced_async\": {{\"rate\": {}, \"batch\": {}, \"runs\": [{paced_json}]}},",
            args.paced_rate, args.paced_batch
        );
        j.push_str("  \"batches\": [\n");
        let all: Vec<&BatchResult> = results.iter().chain(&raw_results).collect();
        for (i, r) in all.iter().enumerate() {
            let _ = writeln!(
                j,
                "    {{\"mode\": \"{}\", \"batch\": {}, \"rounds\": {}, \"records_per_s\": {:.0}, \"ack_ns\": {}, \"io_ns\": {}}}{}",
                r.mode,
                r.batch,
                r.rounds,
                r.records_per_s,
                hist_json(&r.ack),
                hist_json(&r.io),
                if i + 1 < all.len() { "," } else { "" }
            );
        }
        j.push_str("  ]\n}\n");
        std::fs::write(path, j).expect("write the JSON file");
        println!("\nwrote {}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_rules() {
        let flat = [50_000u64; 10];
        assert_eq!(saturation(100_000, 99_000.0, false, &flat), None);
        assert!(saturation(100_000, 90_000.0, false, &flat).is_some());
        assert!(saturation(100_000, 99_000.0, true, &flat).is_some());
        // A queue that builds up: the medians ramp.
        let ramp: Vec<u64> = (1..=10).map(|k| k * 400_000).collect();
        assert!(saturation(100_000, 99_000.0, false, &ramp).is_some());
        // One stall at the end of an otherwise steady run is not saturation.
        let mut stall = [100_000u64; 10];
        stall[9] = 3_000_000;
        assert_eq!(saturation(100_000, 99_000.0, false, &stall), None);
        // A ramp that stays below 1 ms is not either.
        let small: Vec<u64> = (1..=10).map(|k| k * 20_000).collect();
        assert_eq!(saturation(100_000, 99_000.0, false, &small), None);
    }

    #[test]
    fn trend_windows_split_the_measured_commands() {
        let mut t = Trend::new(100, 1_000);
        for i in 100..1_100u64 {
            t.record(i, (i - 99) * 1_000);
        }
        let p = t.p50s();
        assert_eq!(p.len(), 10);
        assert!(p.windows(2).all(|w| w[1] > w[0]), "{p:?}");
        let h = report_histogram(&{
            let mut h = new_histogram();
            h.saturating_record(120_000_000_000);
            h.saturating_record(5_000);
            h
        });
        assert_eq!(h.len(), 2);
        assert!(h.max() <= report::HIST_MAX_NS + report::HIST_MAX_NS / 1000);
    }

    #[test]
    fn floor_messages_carry_index_and_time() {
        let m = floor_message(42, 7);
        assert_eq!(m.len(), COMMAND_BYTES);
        assert_eq!(u64::from_le_bytes(m[..8].try_into().unwrap()), 42);
        assert_eq!(u64::from_le_bytes(m[8..16].try_into().unwrap()), 7);
        assert_eq!(u64::from_le_bytes(m[16..24].try_into().unwrap()), !42);
    }
}
