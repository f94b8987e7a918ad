//! `ferrox-bench`: the plain benchmark harness.
//!
//! `ferrox-bench engine --workload SPEC --commands N --seed S [--json FILE] [--report DIR]`
//! builds a workload with `ferrox_benches::workload_by_name` (SPEC: small, medium, large,
//! wide, avalanche, lobster[:MESSAGES_CSV], file:PATH; `--preset` is an alias of
//! `--workload`), then on fresh pre-filled engines:
//!
//! - throughput: applies every measured command back to back with `NullSink`, several runs,
//!   reporting each and the best; then the same with a sink that copies each event into a
//!   preallocated ring, so that event construction cannot be optimised away;
//! - latency: times every command on its own with the cycle timer, into an HdrHistogram.
//!
//! Nothing is allocated or generated inside a timed region.
//!
//! Generated workloads take `--mix gtc=9,ioc=3,cancel=6,move=82`, `--orders-per-instrument`,
//! `--activity` and `--price-range`; a command file takes `--config CONFIG.toml` for its
//! instruments (default: ferrox's embedded configuration). `--report DIR` writes
//! `DIR/engine-<workload>.json` and the latency histogram's log in the common report format
//! (`ferrox_benches::report`).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use ferrox_benches::report::{self, BenchResult, ReportWriter};
use ferrox_benches::timer::{Overhead, Timer, TimerKind};
use ferrox_benches::{
    activity_concentration, parse_spec, Activity, Mix, OpKind, Workload, WorkloadSpec,
};
use ferrox_engine::Engine;
use ferrox_protocol::{Event, EventSink, NullSink, SequencedCommand};
use hdrhistogram::Histogram;

/// Opt-in transparent huge pages for large allocations (`--huge-pages`): an experiment on how
/// much of the large preset's cost is TLB misses. The engine itself does not ask for them.
#[cfg(target_os = "linux")]
mod thp {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, Ordering};

    pub static ENABLED: AtomicBool = AtomicBool::new(false);
    const HUGE: usize = 2 << 20;

    pub struct Alloc;

    fn advise(p: *mut u8, len: usize) {
        if len < 2 * HUGE || !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let start = (p as usize).next_multiple_of(HUGE);
        let end = (p as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside an allocation we own; madvise does not move it.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; `advise` only gives
    // the kernel a hint about pages of the returned block.
    unsafe impl GlobalAlloc for Alloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                advise(p, layout.size());
            }
            p
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                advise(p, layout.size());
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(p, layout) }
        }
        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let q = unsafe { System.realloc(p, layout, new_size) };
            if !q.is_null() {
                advise(q, new_size);
            }
            q
        }
    }
}

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: thp::Alloc = thp::Alloc;

#[derive(Parser)]
#[command(name = "ferrox-bench", about = "Ferrox benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Matching-engine throughput and per-command latency on a generated workload.
    Engine(EngineArgs),
    /// Write a workload as a command file (docs/command-file.md) with its engine
    /// configuration, for `engine --workload file:PATH --config CONFIG`: a limit/cancel feed
    /// replayed from a file. The file is read back and replayed before this returns, and must
    /// reach the generator's final state with no rejects.
    Feed(FeedArgs),
}

#[derive(clap::Args)]
struct FeedArgs {
    /// A generated workload: small | medium | large | wide | avalanche.
    #[arg(long, default_value = "small")]
    workload: String,
    /// Measured mix of a generated preset; the default is limits and cancels only.
    #[arg(long, default_value = "gtc=1,cancel=1")]
    mix: String,
    /// Measured commands (the pre-fill is written first; the file has no pre-fill section).
    #[arg(long, default_value_t = 200_000)]
    commands: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The command file to write.
    #[arg(long)]
    out: PathBuf,
    /// The engine configuration (TOML, `[limits]` and `[[instruments]]`) to write.
    #[arg(long)]
    config_out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum ActivityArg {
    Uniform,
    Pareto,
}

#[derive(Clone, Copy, ValueEnum)]
enum TimerArg {
    Rdtsc,
    Instant,
}

#[derive(clap::Args)]
struct EngineArgs {
    /// small | medium | large | wide | avalanche | lobster[:MESSAGES_CSV] | file:PATH
    /// (`--preset` is an alias).
    #[arg(long, alias = "preset", default_value = "small")]
    workload: String,
    /// Measured mix of a generated preset, e.g. gtc=9,ioc=3,cancel=6,move=82 (weights).
    #[arg(long)]
    mix: Option<String>,
    /// Engine configuration (TOML: its [limits] and [[instruments]]) of a file:PATH workload;
    /// default: ferrox's embedded configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write a report (JSON + HdrHistogram log) into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Measured commands (after the pre-fill).
    #[arg(long, default_value_t = 5_000_000)]
    commands: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Throughput runs, each on a fresh pre-filled engine.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Passes over the measured commands per run and in the latency run, each pass on a fresh
    /// pre-filled engine (pre-fill not timed). Default: 1, or for a short workload (the
    /// LOBSTER sample has under 1,000 commands) enough passes for 100,000 timed commands, so
    /// that the throughput is not a 50 µs measurement and the tail percentiles exist.
    #[arg(long)]
    passes: Option<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Pin the benchmark thread to this core (default: the last core).
    #[arg(long)]
    core: Option<usize>,
    /// Do not pin the thread.
    #[arg(long, conflicts_with = "core")]
    no_pin: bool,
    /// Override the preset's activity distribution over instruments.
    #[arg(long, value_enum)]
    activity: Option<ActivityArg>,
    /// Override the preset's passive price range (ticks from the mid on each side).
    #[arg(long)]
    price_range: Option<i64>,
    /// Override the preset's target resting orders per instrument.
    #[arg(long)]
    orders_per_instrument: Option<u32>,
    /// Ask for transparent huge pages (madvise) on allocations of 4 MiB or more, engine pools
    /// included (Linux only; an experiment, off by default).
    #[arg(long)]
    huge_pages: bool,
    /// Latency timer (default: rdtsc on x86-64).
    #[arg(long, value_enum)]
    timer: Option<TimerArg>,
}

/// Copies every event into a preallocated ring, as a journal or market-data publisher would.
struct RingSink {
    ring: Box<[Option<Event>]>,
    next: usize,
}

impl RingSink {
    fn new() -> RingSink {
        RingSink {
            ring: vec![None; 4096].into_boxed_slice(),
            next: 0,
        }
    }
}

impl EventSink for RingSink {
    #[inline]
    fn event(&mut self, event: &Event) {
        self.ring[self.next & 4095] = Some(*event);
        self.next += 1;
    }
}

struct Machine {
    cpu: String,
    logical_cpus: usize,
    kernel: String,
    tsc_flags: String,
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
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let tsc_flags = ["constant_tsc", "nonstop_tsc", "tsc_known_freq"]
        .iter()
        .filter(|f| has(f))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    Machine {
        cpu,
        logical_cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        tsc_flags,
        hypervisor: has("hypervisor"),
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

fn pin(args: &EngineArgs) -> Option<usize> {
    if args.no_pin {
        return None;
    }
    let cores = core_affinity::get_core_ids()?;
    let core = match args.core {
        Some(c) => *cores.iter().find(|id| id.id == c)?,
        None => *cores.last()?,
    };
    core_affinity::set_for_current(core).then_some(core.id)
}

struct RunResult {
    secs: f64,
    per_sec: f64,
}

/// The timed loop of a throughput run, on its own so that profilers can single it out.
#[inline(never)]
fn measured_loop<S: EventSink>(
    engine: &mut Engine,
    cmds: &[SequencedCommand],
    sink: &mut S,
) -> f64 {
    let t0 = Instant::now();
    for cmd in cmds {
        engine.apply(cmd, &mut *sink);
    }
    t0.elapsed().as_secs_f64()
}

/// The default number of passes: enough for 100,000 timed commands, at most 1,000.
fn default_passes(measured: usize) -> usize {
    100_000usize.div_ceil(measured.max(1)).clamp(1, 1_000)
}

fn replay<S: EventSink>(w: &Workload, sink: &mut S, check: bool, passes: usize) -> RunResult {
    let mut secs = 0.0;
    for pass in 0..passes {
        let mut engine = w.prefilled_engine();
        let check = check && pass == 0;
        if check {
            assert_eq!(
                engine.state_hash(),
                w.stats.state_hash_after_prefill,
                "pre-fill replays"
            );
        }
        secs += measured_loop(&mut engine, &w.measured, sink);
        black_box(&engine);
        if check {
            assert_eq!(
                engine.state_hash(),
                w.stats.state_hash_end,
                "replay is deterministic"
            );
        }
    }
    RunResult {
        secs,
        per_sec: (w.measured.len() * passes) as f64 / secs,
    }
}

struct Latency {
    all: Histogram<u64>,
    by_kind: Vec<Histogram<u64>>,
    wall_secs: f64,
    engine: Engine,
}

#[inline(never)]
fn latency(w: &Workload, timer: &Timer, passes: usize) -> Latency {
    let hist = || Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).expect("valid bounds");
    let mut all = hist();
    let mut by_kind: Vec<Histogram<u64>> = OpKind::ALL.iter().map(|_| hist()).collect();
    let kinds: Vec<u8> = w
        .measured
        .iter()
        .map(|c| OpKind::of(&c.command).map_or(255, |k| k as u8))
        .collect();
    let mut engine = w.prefilled_engine();
    let mut wall_secs = 0.0;
    for pass in 0..passes {
        if pass > 0 {
            engine = w.prefilled_engine();
        }
        let t0 = Instant::now();
        for (cmd, &kind) in w.measured.iter().zip(&kinds) {
            let a = timer.ticks();
            engine.apply(cmd, &mut NullSink);
            let b = timer.ticks();
            let d = b.saturating_sub(a).max(1);
            all.saturating_record(d);
            if let Some(h) = by_kind.get_mut(kind as usize) {
                h.saturating_record(d);
            }
        }
        wall_secs += t0.elapsed().as_secs_f64();
    }
    Latency {
        all,
        by_kind,
        wall_secs,
        engine,
    }
}

const QUANTILES: [(&str, f64); 6] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("max", 1.0),
];

fn quantile_ns(h: &Histogram<u64>, q: f64, timer: &Timer) -> f64 {
    let ticks = if q >= 1.0 {
        h.max()
    } else {
        h.value_at_quantile(q)
    };
    timer.to_ns(ticks)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Engine(args) => engine_bench(&args),
        Cmd::Feed(args) => write_feed(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrox-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_feed(args: &FeedArgs) -> Result<(), String> {
    let mut spec = parse_spec(&args.workload)?;
    match &mut spec {
        WorkloadSpec::Generated(config) => config.mix = args.mix.parse()?,
        WorkloadSpec::Avalanche(_) => {}
        _ => {
            return Err(
                "feed writes generated workloads only (lobster and file are files already)".into(),
            )
        }
    }
    let w = spec.build(args.commands, args.seed)?;
    let cmds: Vec<(u64, ferrox_protocol::Command)> = w
        .prefill
        .iter()
        .chain(&w.measured)
        .map(|c| (c.ts_ns, c.command))
        .collect();
    let text = ferrox_replay::cmdfile::write(&w.engine_config.instruments, &cmds)?;
    for path in [&args.out, &args.config_out] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    std::fs::write(&args.out, text)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    std::fs::write(
        &args.config_out,
        ferrox_replay::lobster::config_toml(&w.engine_config),
    )
    .map_err(|e| format!("cannot write {}: {e}", args.config_out.display()))?;
    // Read it back the way `engine --workload file:` will, and check it replays to the same
    // final state: a feed that drifted from its workload (a rounding in the decimal text, a
    // cancel of the wrong order) would otherwise benchmark something else.
    let back =
        ferrox_benches::workloads::file_workload(&args.out, Some(&args.config_out), usize::MAX)?;
    if back.stats.state_hash_end != w.stats.state_hash_end || back.stats.rejects != 0 {
        return Err(format!(
            "{} does not replay to the workload's final state (state hash {:#x} vs {:#x}, {} rejects)",
            args.out.display(),
            back.stats.state_hash_end,
            w.stats.state_hash_end,
            back.stats.rejects
        ));
    }
    println!(
        "wrote {} ({} commands: {} pre-fill + {} measured, mix {}) and {}; read back: same final \
         state, 0 rejects",
        args.out.display(),
        cmds.len(),
        w.prefill.len(),
        w.measured.len(),
        args.mix,
        args.config_out.display()
    );
    Ok(())
}

/// The workload spec with the command line's changes applied.
fn workload_spec(args: &EngineArgs) -> Result<WorkloadSpec, String> {
    let mut spec = parse_spec(&args.workload)?;
    match &mut spec {
        WorkloadSpec::Generated(config) => {
            match args.activity {
                Some(ActivityArg::Uniform) => config.activity = Activity::Uniform,
                Some(ActivityArg::Pareto) => config.activity = Activity::Pareto { alpha: 1.5 },
                None => {}
            }
            if let Some(r) = args.price_range {
                config.price_range_ticks = r.max(1);
            }
            if let Some(n) = args.orders_per_instrument {
                config.orders_per_instrument = n.max(1);
            }
            if let Some(m) = &args.mix {
                config.mix = m.parse::<Mix>().map_err(|e| format!("--mix: {e}"))?;
            }
        }
        other => {
            let generator_flags = args.activity.is_some()
                || args.price_range.is_some()
                || args.orders_per_instrument.is_some()
                || args.mix.is_some();
            if generator_flags {
                return Err(format!(
                    "--mix, --orders-per-instrument, --activity and --price-range apply to the \
                     generated presets (small, medium, large, wide), not to {:?}",
                    args.workload
                ));
            }
            if let WorkloadSpec::File { config, .. } = other {
                config.clone_from(&args.config);
            }
        }
    }
    if args.config.is_some() && !matches!(spec, WorkloadSpec::File { .. }) {
        return Err("--config applies to file:PATH workloads only".into());
    }
    Ok(spec)
}

fn engine_bench(args: &EngineArgs) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    thp::ENABLED.store(args.huge_pages, std::sync::atomic::Ordering::Relaxed);
    let spec = workload_spec(args)?;
    let m = machine();
    let report_machine = report::Machine::detect();
    let load_start = loadavg();
    let pinned = pin(args);
    let timer = match args.timer {
        Some(TimerArg::Rdtsc) if cfg!(target_arch = "x86_64") => {
            Timer::with_kind(TimerKind::Rdtsc, Duration::from_millis(200))
        }
        Some(_) => Timer::with_kind(TimerKind::Instant, Duration::ZERO),
        None => Timer::new(Duration::from_millis(200)),
    };
    let overhead: Overhead = timer.overhead(1_000_000);
    let instant_overhead = Timer::with_kind(TimerKind::Instant, Duration::ZERO).overhead(1_000_000);

    println!(
        "ferrox-bench engine: workload {}, {} measured commands, seed {}",
        args.workload, args.commands, args.seed
    );
    println!(
        "machine: {} ({} logical CPUs{}), kernel {}",
        m.cpu,
        m.logical_cpus,
        if m.hypervisor {
            ", virtual machine"
        } else {
            ""
        },
        m.kernel
    );
    println!(
        "pinned to core: {}",
        pinned.map_or("no".to_string(), |c| c.to_string())
    );
    let thp_setting = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .unwrap_or_default()
        .split_whitespace()
        .find(|w| w.starts_with('['))
        .unwrap_or("?")
        .trim_matches(['[', ']'])
        .to_string();
    println!(
        "transparent huge pages: system setting [{thp_setting}], madvise by this run: {}",
        if args.huge_pages {
            "yes (allocations >= 4 MiB)"
        } else {
            "no"
        }
    );
    println!("load average at start: {load_start}");

    let t0 = Instant::now();
    let w = spec.build(args.commands, args.seed)?;
    let gen_secs = t0.elapsed().as_secs_f64();
    let config = &w.config;
    let instruments = w.instruments();
    let s = &w.stats;
    let total_ops: u64 = s.ops.iter().sum();
    println!("\n-- workload (generated in {gen_secs:.1} s) --");
    println!(
        "workload {}: instruments {}, pre-fill {} commands -> {} resting orders on {} levels",
        w.name,
        instruments,
        w.prefill.len(),
        s.orders_after_prefill,
        s.levels_after_prefill
    );
    let (top1, top10) = activity_concentration(config, args.seed);
    if instruments > 1 && matches!(spec, WorkloadSpec::Generated(_)) {
        println!(
        "activity {:?}: busiest 1% of instruments get {:.1}% of commands, busiest 10% get {:.1}%",
        config.activity, top1 * 100.0, top10 * 100.0
    );
    }
    let mix = OpKind::ALL
        .iter()
        .map(|k| {
            format!(
                "{} {:.2}%",
                k.name(),
                s.ops[k.index()] as f64 * 100.0 / total_ops as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if let WorkloadSpec::Generated(c) = &spec {
        println!("configured mix: {}", c.mix.to_spec());
    }
    println!("measured mix: {mix}");
    println!(
        "balancing: {} cancels became new orders, {} new orders became cancels",
        s.cancel_to_new, s.new_to_cancel
    );
    println!(
        "measured phase: {} trades, {} events, {} IOC remainders, {} self-trade cancels, {} rejects",
        s.trades, s.events, s.ioc_remainders, s.self_trade_cancels, s.rejects
    );
    println!(
        "book during measured phase: orders {}..{}, levels {}..{}",
        s.orders_min, s.orders_max, s.levels_min, s.levels_max
    );
    if s.sweeps > 0 {
        println!(
            "sweeps: {} IOCs, levels swept per IOC mean {:.1} max {}, trades per IOC {:.1}",
            s.sweeps,
            s.levels_per_sweep(),
            s.levels_swept_max,
            s.trades_per_sweep()
        );
    }
    if s.prefill_rejects > 0 {
        println!("pre-fill rejects: {}", s.prefill_rejects);
    }

    // Throughput.
    let passes = args
        .passes
        .unwrap_or_else(|| default_passes(w.measured.len()))
        .max(1);
    println!("\n-- throughput (fresh pre-filled engine per run, pre-fill not timed) --");
    if passes > 1 {
        println!(
            "  {passes} passes per run, each on a fresh pre-filled engine: {} timed commands",
            w.measured.len() * passes
        );
    }
    let mut null_runs = Vec::new();
    for r in 0..args.runs.max(1) {
        let res = replay(&w, &mut NullSink, r == 0, passes);
        println!(
            "  NullSink run {}: {:.3} s, {:.2} M commands/s",
            r + 1,
            res.secs,
            res.per_sec / 1e6
        );
        null_runs.push(res);
    }
    let mut ring_runs = Vec::new();
    for r in 0..args.runs.clamp(1, 3) {
        let mut sink = RingSink::new();
        let res = replay(&w, &mut sink, false, passes);
        black_box(sink.next);
        println!(
            "  RingSink run {}: {:.3} s, {:.2} M commands/s",
            r + 1,
            res.secs,
            res.per_sec / 1e6
        );
        ring_runs.push(res);
    }
    let best = |v: &[RunResult]| v.iter().map(|r| r.per_sec).fold(0.0, f64::max);
    let worst = |v: &[RunResult]| v.iter().map(|r| r.per_sec).fold(f64::MAX, f64::min);
    let median = |v: &[RunResult]| {
        let mut x: Vec<f64> = v.iter().map(|r| r.per_sec).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    println!(
        "  NullSink: best {:.2} M/s, median {:.2} M/s, worst {:.2} M/s ({:.1} ns/command at best)",
        best(&null_runs) / 1e6,
        median(&null_runs) / 1e6,
        worst(&null_runs) / 1e6,
        1e9 / best(&null_runs)
    );
    println!(
        "  RingSink: best {:.2} M/s ({:.1} ns/command)",
        best(&ring_runs) / 1e6,
        1e9 / best(&ring_runs)
    );

    // Latency.
    let lat = latency(&w, &timer, passes);
    println!("\n-- latency per command (NullSink, every command timed on its own) --");
    println!(
        "timer: {:?}, {:.4} ticks/ns, resolution {:.1} ns; empty timed region (overhead): min {:.1} ns, p50 {:.1} ns, p99 {:.1} ns",
        timer.kind, timer.ticks_per_ns, overhead.resolution_ns, overhead.min_ns, overhead.p50_ns, overhead.p99_ns
    );
    println!(
        "(for comparison, Instant::now() pair: min {:.1} ns, p50 {:.1} ns)",
        instant_overhead.min_ns, instant_overhead.p50_ns
    );
    println!(
        "figures INCLUDE the timer overhead (not subtracted); the 'minus p50 overhead' row subtracts {:.1} ns",
        overhead.p50_ns
    );
    println!(
        "latency run wall time {:.3} s ({:.1} ns/command including timing and histogram recording)",
        lat.wall_secs,
        lat.wall_secs * 1e9 / (w.measured.len() * passes) as f64
    );
    let mut header = format!("  {:<22}", "ns");
    for (name, _) in QUANTILES {
        let _ = write!(header, "{name:>12}");
    }
    let _ = write!(header, "{:>10}{:>12}", "mean", "count");
    println!("{header}");
    let row = |label: &str, h: &Histogram<u64>, minus: f64| {
        let mut line = format!("  {label:<22}");
        for (_, q) in QUANTILES {
            let _ = write!(
                line,
                "{:>12.1}",
                (quantile_ns(h, q, &timer) - minus).max(0.0)
            );
        }
        let _ = write!(
            line,
            "{:>10.1}{:>12}",
            timer.to_ns(h.mean() as u64) - minus,
            h.len()
        );
        println!("{line}");
    };
    row("all commands", &lat.all, 0.0);
    row("all, minus p50 overhead", &lat.all, overhead.p50_ns);
    for k in OpKind::ALL {
        row(k.name(), &lat.by_kind[k.index()], 0.0);
    }

    // Memory.
    let engine = &lat.engine;
    let mem = engine.memory_bytes();
    let orders = engine.orders_live();
    let levels = engine.levels_live();
    let limits = &w.engine_config.limits;
    println!("\n-- memory --");
    println!(
        "limits: orders_max {}, levels_max {}, gtd_orders_max {}, levels_per_side_max {}",
        limits.orders_max, limits.levels_max, limits.gtd_orders_max, config.levels_per_side_max
    );
    println!("resting at end: {orders} orders on {levels} levels");
    println!(
        "engine.memory_bytes() = {} ({:.1} MiB): {:.1} bytes per resting order, {:.1} bytes per orders_max slot",
        mem, mem as f64 / (1 << 20) as f64,
        mem as f64 / f64::from(orders.max(1)),
        mem as f64 / f64::from(limits.orders_max)
    );
    let anon_huge = std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("AnonHugePages"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "n/a".into());
    println!("process memory on transparent huge pages (AnonHugePages): {anon_huge}");
    let load_end = loadavg();
    println!("\nload average at end: {load_end}");

    if let Some(path) = &args.json {
        let mut j = String::from("{\n");
        let _ = writeln!(j, "  \"preset\": \"{}\",", w.name);
        let _ = writeln!(j, "  \"commands\": {},", args.commands);
        let _ = writeln!(j, "  \"seed\": {},", args.seed);
        let _ = writeln!(j, "  \"instruments\": {instruments},");
        let _ = writeln!(j, "  \"activity\": \"{:?}\",", config.activity);
        let _ = writeln!(j, "  \"machine\": {{\"cpu\": \"{}\", \"logical_cpus\": {}, \"kernel\": \"{}\", \"virtual\": {}, \"tsc_flags\": \"{}\"}},",
            m.cpu, m.logical_cpus, m.kernel, m.hypervisor, m.tsc_flags);
        let _ = writeln!(
            j,
            "  \"pinned_core\": {},",
            pinned.map_or("null".into(), |c| c.to_string())
        );
        let _ = writeln!(
            j,
            "  \"thp_setting\": \"{thp_setting}\", \"huge_pages_madvise\": {},",
            args.huge_pages
        );
        let _ = writeln!(
            j,
            "  \"loadavg_start\": \"{load_start}\", \"loadavg_end\": \"{load_end}\","
        );
        let _ = writeln!(
            j,
            "  \"mix\": {{\"new_gtc\": {}, \"ioc\": {}, \"cancel\": {}, \"move\": {}}},",
            s.ops[0], s.ops[1], s.ops[2], s.ops[3]
        );
        let _ = writeln!(j, "  \"trades\": {}, \"rejects\": {},", s.trades, s.rejects);
        let list = |v: &[RunResult]| {
            v.iter()
                .map(|r| format!("{:.0}", r.per_sec))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            j,
            "  \"throughput_null_sink_per_sec\": [{}],",
            list(&null_runs)
        );
        let _ = writeln!(
            j,
            "  \"throughput_ring_sink_per_sec\": [{}],",
            list(&ring_runs)
        );
        let _ = writeln!(j, "  \"timer\": \"{:?}\", \"timer_resolution_ns\": {:.2}, \"timer_overhead_ns\": {{\"min\": {:.2}, \"p50\": {:.2}, \"p99\": {:.2}}}, \"overhead_subtracted\": false,",
            timer.kind, overhead.resolution_ns, overhead.min_ns, overhead.p50_ns, overhead.p99_ns);
        let lat_obj = |h: &Histogram<u64>| {
            QUANTILES
                .iter()
                .map(|(n, q)| format!("\"{n}\": {:.1}", quantile_ns(h, *q, &timer)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(j, "  \"latency_ns\": {{{}}},", lat_obj(&lat.all));
        for k in OpKind::ALL {
            let _ = writeln!(
                j,
                "  \"latency_ns_{}\": {{{}}},",
                k.name().replace(' ', "_").to_lowercase(),
                lat_obj(&lat.by_kind[k.index()])
            );
        }
        let _ = writeln!(
            j,
            "  \"orders_resting_end\": {orders}, \"levels_end\": {levels},"
        );
        let _ = writeln!(j, "  \"memory_bytes\": {mem}, \"bytes_per_resting_order\": {:.1}, \"bytes_per_order_slot\": {:.1}",
            mem as f64 / f64::from(orders.max(1)), mem as f64 / f64::from(limits.orders_max));
        j.push_str("}\n");
        std::fs::write(path, j).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }

    if let Some(dir) = &args.report {
        let stem = format!("engine-{}", w.name);
        let mut rw = ReportWriter::new(dir, &stem, "ferrox-bench engine", report_machine)
            .map_err(|e| format!("cannot write a report in {}: {e}", dir.display()))?;
        // The histogram in nanoseconds (the timed loop recorded timer ticks).
        let mut h = report::new_histogram();
        for v in lat.all.iter_recorded() {
            let ns = timer.to_ns(v.value_iterated_to()).round() as u64;
            h.record_n(ns.clamp(1, report::HIST_MAX_NS), v.count_at_value())
                .map_err(|e| format!("histogram: {e:?}"))?;
        }
        let runs: Vec<f64> = null_runs.iter().map(|r| r.per_sec).collect();
        let mut result = BenchResult::new(stem.clone(), "engine", "ferrox", w.name.clone(), &h)
            .basis("service time per command, closed loop, timer included")
            .rates(None, best(&null_runs))
            .pinning(pinned.map_or("not pinned".to_string(), |c| {
                format!("bench thread on core {c}")
            }))
            .param("seed", args.seed)
            .param("commands", w.measured.len() as u64)
            .param("prefill", w.prefill.len() as u64)
            .param("runs", args.runs.max(1) as u64)
            .param("passes", passes as u64)
            .param("runs_per_s", runs)
            .param("ring_sink_best_per_s", best(&ring_runs))
            .param("rejects", s.rejects)
            .param("prefill_rejects", s.prefill_rejects)
            .param("trades", s.trades)
            .param("instruments", u64::from(instruments))
            .param("orders_after_prefill", s.orders_after_prefill)
            .param("levels_after_prefill", s.levels_after_prefill)
            .param(
                "mix_measured",
                OpKind::ALL
                    .iter()
                    .map(|k| {
                        (
                            k.name().to_string(),
                            serde_json::Value::from(s.ops[k.index()]),
                        )
                    })
                    .collect::<serde_json::Map<_, _>>(),
            )
            .param("timer", format!("{:?}", timer.kind))
            .param("timer_overhead_p50_ns", overhead.p50_ns)
            .param("memory_bytes", mem as u64)
            .param("huge_pages_madvise", args.huge_pages)
            .param("loadavg_start", load_start.clone())
            .param("loadavg_end", load_end.clone());
        if let WorkloadSpec::Generated(c) = &spec {
            result = result
                .param("mix", c.mix.to_spec())
                .param("orders_per_instrument", u64::from(c.orders_per_instrument))
                .param("price_range_ticks", c.price_range_ticks)
                .param("activity", format!("{:?}", c.activity));
        }
        if s.sweeps > 0 {
            result = result
                .param("sweeps", s.sweeps)
                .param("levels_swept_mean", s.levels_per_sweep())
                .param("levels_swept_max", s.levels_swept_max)
                .param("trades_per_sweep", s.trades_per_sweep());
        }
        if !spec.is_generated() {
            result = result.param("source", args.workload.clone());
        }
        rw.add(result, Some(&h))
            .map_err(|e| format!("cannot write the report: {e}"))?;
        println!("wrote {}", rw.path().display());
    }
    Ok(())
}
