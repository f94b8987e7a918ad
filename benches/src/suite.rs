//! The pure half of `ferrox bench` (the `ferrox-suite` binary): what to run, and what to make
//! of the reports afterwards (tables, ratios, plots).
//!
//! The suite runs every benchmark as its own process (a fresh heap, its own pinning, and no
//! state carried from one measurement into the next); each writes a [`Report`] into the
//! suite's directory. Everything here works from those files only, so the summary of a suite
//! can be redrawn later from its directory (`ferrox-suite --summarize DIR`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use hdrhistogram::Histogram;

use crate::plot::{self, CurvePoint, SpectrumSeries};
use crate::report::{read_histogram_log, read_report, BenchResult, Latency, Report};

/// A run at an offered rate counts as saturated when it achieved less than this share of it.
pub const SATURATED_BELOW: f64 = 0.95;

/// The parts of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    Engine,
    Peers,
    Pipeline,
    Wire,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Engine,
        Section::Peers,
        Section::Pipeline,
        Section::Wire,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Engine => "engine",
            Section::Peers => "peers",
            Section::Pipeline => "pipeline",
            Section::Wire => "wire",
        }
    }

    pub fn parse(s: &str) -> Result<Section, String> {
        Section::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!("unknown section {s:?}: expected engine, peers, pipeline or wire")
            })
    }
}

/// What the suite runs. [`SuiteOptions::full`] is the default of `ferrox bench`,
/// [`SuiteOptions::quick`] a smoke run of under a minute.
#[derive(Clone, Debug, PartialEq)]
pub struct SuiteOptions {
    pub sections: Vec<Section>,
    pub seed: u64,
    pub engine_workloads: Vec<String>,
    pub engine_commands: usize,
    pub engine_runs: usize,
    pub peer_workloads: Vec<String>,
    pub peer_commands: usize,
    /// Commands of the limit/cancel feed file (the workload "feed").
    pub feed_commands: usize,
    pub pipeline_rates: Vec<u64>,
    pub pipeline_seconds: f64,
    pub wire_rates: Vec<u64>,
    pub wire_sessions: u32,
    pub wire_seconds: f64,
}

impl SuiteOptions {
    pub fn full() -> SuiteOptions {
        SuiteOptions {
            sections: Section::ALL.to_vec(),
            seed: 1,
            engine_workloads: [
                "small",
                "medium",
                "large",
                "wide",
                "avalanche",
                "lobster",
                "feed",
            ]
            .map(String::from)
            .to_vec(),
            engine_commands: 2_000_000,
            engine_runs: 3,
            peer_workloads: ["small", "medium", "avalanche", "lobster", "feed"]
                .map(String::from)
                .to_vec(),
            peer_commands: 1_000_000,
            feed_commands: 500_000,
            pipeline_rates: vec![50_000, 200_000, 500_000, 1_000_000, 1_500_000, 2_000_000],
            pipeline_seconds: 3.0,
            wire_rates: vec![5_000, 20_000, 50_000, 100_000],
            wire_sessions: 100,
            wire_seconds: 5.0,
        }
    }

    pub fn quick() -> SuiteOptions {
        SuiteOptions {
            engine_workloads: ["small", "avalanche", "lobster", "feed"]
                .map(String::from)
                .to_vec(),
            feed_commands: 100_000,
            engine_commands: 200_000,
            engine_runs: 1,
            peer_workloads: ["small"].map(String::from).to_vec(),
            peer_commands: 200_000,
            pipeline_rates: vec![50_000, 500_000],
            pipeline_seconds: 1.0,
            wire_rates: vec![5_000, 20_000],
            wire_sessions: 20,
            wire_seconds: 2.0,
            ..SuiteOptions::full()
        }
    }
}

/// Where a step's process must run: alone, or against an exchange the suite starts first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// A running exchange with this durability mode ("async" or "sync").
    Exchange(&'static str),
}

/// One process to run: a benchmark binary of this crate and its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub section: Section,
    pub title: String,
    pub program: &'static str,
    pub args: Vec<String>,
    pub needs: Needs,
}

fn list(rates: &[u64]) -> String {
    rates
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The workload "feed" is a limit/cancel feed replayed from a command file, which the suite
/// writes (seeded) before its first use; these are the file and its engine configuration.
pub fn feed_paths(out: &Path) -> (String, String) {
    let dir = out.join("feed");
    (
        dir.join("limit-cancel.csv").display().to_string(),
        dir.join("limit-cancel.toml").display().to_string(),
    )
}

/// The `--workload` arguments for a suite workload name.
fn workload_args(w: &str, out: &Path) -> Vec<String> {
    if w == "feed" {
        let (file, config) = feed_paths(out);
        vec![
            "--workload".into(),
            format!("file:{file}"),
            "--config".into(),
            config,
        ]
    } else {
        vec!["--workload".into(), w.to_string()]
    }
}

/// The steps of a suite writing into `out`, in order. Wire steps name the exchange they need;
/// the runner starts it before the first such step and stops it after the last.
pub fn plan(o: &SuiteOptions, out: &Path) -> Vec<Step> {
    let dir = out.display().to_string();
    let seed = o.seed.to_string();
    let mut steps = Vec::new();
    let uses_feed = (o.sections.contains(&Section::Engine)
        && o.engine_workloads.iter().any(|w| w == "feed"))
        || (o.sections.contains(&Section::Peers) && o.peer_workloads.iter().any(|w| w == "feed"));
    if uses_feed {
        let (file, config) = feed_paths(out);
        steps.push(Step {
            section: Section::Engine,
            title: "write the limit/cancel feed file (workload \"feed\")".into(),
            program: "ferrox-bench",
            args: vec![
                "feed".into(),
                "--commands".into(),
                o.feed_commands.to_string(),
                "--seed".into(),
                seed.clone(),
                "--out".into(),
                file,
                "--config-out".into(),
                config,
            ],
            needs: Needs::Nothing,
        });
    }
    for &section in &o.sections {
        match section {
            Section::Engine | Section::Peers => {
                let (program, lead, workloads, commands, what) = if section == Section::Engine {
                    (
                        "ferrox-bench",
                        Some("engine"),
                        &o.engine_workloads,
                        o.engine_commands,
                        "engine only",
                    )
                } else {
                    (
                        "ferrox-peers",
                        None,
                        &o.peer_workloads,
                        o.peer_commands,
                        "side by side with lobster and orderbook-rs",
                    )
                };
                for w in workloads {
                    let mut args: Vec<String> = lead.into_iter().map(String::from).collect();
                    args.extend(workload_args(w, out));
                    args.extend([
                        "--commands".into(),
                        commands.to_string(),
                        "--runs".into(),
                        o.engine_runs.to_string(),
                        "--seed".into(),
                        seed.clone(),
                        "--report".into(),
                        dir.clone(),
                    ]);
                    steps.push(Step {
                        section,
                        title: format!("{what}, workload {w}"),
                        program,
                        args,
                        needs: Needs::Nothing,
                    });
                }
            }
            Section::Pipeline => {
                let secs = o.pipeline_seconds.to_string();
                steps.push(Step {
                    section,
                    title: "bare SPSC ring floor, rate sweep".into(),
                    program: "ferrox-pipeline-bench",
                    args: vec![
                        "floor".into(),
                        "--rate".into(),
                        list(&o.pipeline_rates),
                        "--seconds".into(),
                        secs.clone(),
                        "--report".into(),
                        dir.clone(),
                    ],
                    needs: Needs::Nothing,
                });
                for durability in ["async", "sync"] {
                    steps.push(Step {
                        section,
                        title: format!("pipeline, {durability} journal, rate sweep"),
                        program: "ferrox-pipeline-bench",
                        args: vec![
                            "pipeline".into(),
                            "--durability".into(),
                            durability.into(),
                            "--rate".into(),
                            list(&o.pipeline_rates),
                            "--seconds".into(),
                            secs.clone(),
                            "--seed".into(),
                            seed.clone(),
                            "--report".into(),
                            dir.clone(),
                        ],
                        needs: Needs::Nothing,
                    });
                }
            }
            Section::Wire => {
                let secs = o.wire_seconds.to_string();
                let sessions = o.wire_sessions.to_string();
                for &rate in &o.wire_rates {
                    steps.push(Step {
                        section,
                        title: format!("bare TCP echo floor, {rate}/s"),
                        program: "ferrox-fix-bench",
                        args: vec![
                            "echo".into(),
                            "--rate".into(),
                            rate.to_string(),
                            "--seconds".into(),
                            secs.clone(),
                            "--connections".into(),
                            sessions.clone(),
                            "--warmup".into(),
                            "0.5".into(),
                            "--report".into(),
                            dir.clone(),
                        ],
                        needs: Needs::Nothing,
                    });
                }
                for durability in ["async", "sync"] {
                    for &rate in &o.wire_rates {
                        steps.push(Step {
                            section,
                            title: format!("wire to wire, {durability} journal, {rate}/s"),
                            program: "ferrox-fix-bench",
                            args: vec![
                                "load".into(),
                                "--rate".into(),
                                rate.to_string(),
                                "--seconds".into(),
                                secs.clone(),
                                "--sessions".into(),
                                sessions.clone(),
                                "--warmup".into(),
                                "0.5".into(),
                                "--seed".into(),
                                seed.clone(),
                                "--durability-label".into(),
                                durability.into(),
                                "--report".into(),
                                dir.clone(),
                            ],
                            needs: Needs::Exchange(durability),
                        });
                    }
                }
            }
        }
    }
    steps
}

/// The file in a suite directory that records the suite's own command line.
pub const SUITE_COMMAND_FILE: &str = "suite-command.txt";

/// Every report in `dir` (each `*.json`), in the order they
/// were run (start time, then file name).
pub fn load_reports(dir: &Path) -> io::Result<Vec<Report>> {
    let mut paths: Vec<_> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut reports: Vec<Report> = paths
        .iter()
        .map(|p| read_report(p))
        .collect::<io::Result<_>>()?;
    reports.sort_by_key(|r| r.started_unix_s);
    Ok(reports)
}

/// A latency in the unit a person reads best: "87 ns", "12.3 µs", "4.56 ms", "1.20 s".
pub fn human_ns(ns: u64) -> String {
    // Three significant digits, as the histograms hold them: 12.3 µs, 182 µs, 2.45 ms.
    let scaled = |div: f64, unit: &str| {
        let v = ns as f64 / div;
        let decimals = if v < 10.0 {
            2
        } else if v < 100.0 {
            1
        } else {
            0
        };
        let text = format!("{v:.decimals$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        format!("{text} {unit}")
    };
    // The unit changes where three significant digits would round up to 1000 (999.9 µs).
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 999_500 {
        scaled(1e3, "µs")
    } else if ns < 999_500_000 {
        scaled(1e6, "ms")
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// A rate: "950k/s", "1.52M/s".
pub fn human_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.0}k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0}/s")
    }
}

/// Whether an open-loop result fell behind its offered rate, or its tool judged it saturated
/// for another reason (latency rising through the run, a consumer timeout).
pub fn saturated(r: &BenchResult) -> bool {
    let flagged = r.params.get("saturated").and_then(|v| v.as_bool()) == Some(true);
    match r.offered_per_s {
        Some(offered) => flagged || r.achieved_per_s < SATURATED_BELOW * offered,
        None => false,
    }
}

/// The legend label of a result within its mode: the subject, with the durability mode for
/// pipeline and wire runs of the exchange.
pub fn series_label(r: &BenchResult) -> String {
    let durability = r.params.get("durability").and_then(|v| v.as_str());
    match (r.mode.as_str(), durability) {
        ("floor-ring", _) => "bare SPSC ring".into(),
        ("floor-tcp", _) => "bare TCP echo".into(),
        ("pipeline" | "wire", Some(d)) => format!("ferrox, {d} journal"),
        _ => r.subject.clone(),
    }
}

/// The open-loop modes and the floor each is compared with.
pub const OPEN_LOOP: [(&str, &str); 2] = [("pipeline", "floor-ring"), ("wire", "floor-tcp")];

fn all_results(reports: &[Report]) -> impl Iterator<Item = &BenchResult> {
    reports.iter().flat_map(|r| r.results.iter())
}

/// Throughput/latency curves of an open-loop mode and its floor: one per series label, the
/// points sorted by offered rate.
pub fn curves(reports: &[Report], mode: &str, floor: &str) -> Vec<(String, Vec<CurvePoint>)> {
    let mut by_label: BTreeMap<String, Vec<CurvePoint>> = BTreeMap::new();
    for r in all_results(reports).filter(|r| r.mode == mode || r.mode == floor) {
        let Some(offered) = r.offered_per_s else {
            continue;
        };
        by_label
            .entry(series_label(r))
            .or_default()
            .push(CurvePoint {
                offered_per_s: offered,
                achieved_per_s: r.achieved_per_s,
                p50_ns: r.latency.p50_ns,
                p99_ns: r.latency.p99_ns,
                p99_9_ns: r.latency.p99_9_ns,
                max_ns: r.latency.max_ns,
            });
    }
    by_label
        .into_iter()
        .map(|(label, mut pts)| {
            pts.sort_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
            (label, pts)
        })
        .collect()
}

/// The offered rate at which to compare the spectra of an open-loop mode and its floor: the
/// lowest rate every series ran at, where the latency is the system's own and not a queue's
/// (the curve across the sweep shows where queueing starts).
pub fn comparison_rate(reports: &[Report], mode: &str, floor: &str) -> Option<f64> {
    let mut rates: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in all_results(reports).filter(|r| r.mode == mode || r.mode == floor) {
        if let Some(offered) = r.offered_per_s {
            rates
                .entry(series_label(r))
                .or_default()
                .push(offered.round() as u64);
        }
    }
    let mut series = rates.values();
    let mut common: Vec<u64> = series.next()?.clone();
    for other in series {
        common.retain(|rate| other.contains(rate));
    }
    common.into_iter().min().map(|rate| rate as f64)
}

/// A result's histogram, read back from its log in `dir`.
fn histogram(dir: &Path, r: &BenchResult) -> io::Result<Option<Histogram<u64>>> {
    match &r.histogram_log {
        Some(file) => read_histogram_log(&dir.join(file)).map(Some),
        None => Ok(None),
    }
}

/// Draws the latency spectra of `results` into `dir/file`, each labelled by `label`, and
/// adds it to `images` with `caption`; results without a histogram log are left out, and
/// nothing is drawn when none has one.
fn spectrum(
    dir: &Path,
    file: String,
    title: &str,
    caption: String,
    results: &[&BenchResult],
    label: impl Fn(&BenchResult) -> String,
    images: &mut Vec<(String, String)>,
) -> io::Result<()> {
    let mut hists = Vec::new();
    for r in results {
        if let Some(h) = histogram(dir, r)? {
            hists.push((label(r), h));
        }
    }
    if hists.is_empty() {
        return Ok(());
    }
    let series: Vec<SpectrumSeries> = hists
        .iter()
        .map(|(label, hist)| SpectrumSeries {
            label: label.clone(),
            hist,
        })
        .collect();
    plot::percentile_spectrum_svg(&dir.join(&file), title, &series)?;
    images.push((caption, file));
    Ok(())
}

/// Draws every picture the reports in `dir` support and returns (caption, file name) pairs.
pub fn draw(dir: &Path, reports: &[Report]) -> io::Result<Vec<(String, String)>> {
    let mut images = Vec::new();

    // Engine only: one spectrum, a line per workload.
    let engine: Vec<&BenchResult> = all_results(reports)
        .filter(|r| r.mode == "engine")
        .collect();
    spectrum(
        dir,
        "engine-spectrum.svg".into(),
        "Engine only: service time per command, by workload",
        "Engine only, per-command service time by workload (legend: best throughput)".into(),
        &engine,
        |r| format!("{} ({})", r.workload, human_rate(r.achieved_per_s)),
        &mut images,
    )?;

    // Side by side: per workload, a spectrum and a bar chart of the engines.
    let mut peer_workloads: Vec<&str> = all_results(reports)
        .filter(|r| r.mode == "peers")
        .map(|r| r.workload.as_str())
        .collect();
    peer_workloads.dedup();
    for w in peer_workloads {
        let rs: Vec<&BenchResult> = all_results(reports)
            .filter(|r| r.mode == "peers" && r.workload == w)
            .collect();
        spectrum(
            dir,
            format!("peers-{w}-spectrum.svg"),
            &format!("Ferrox and other Rust order books, workload {w}"),
            format!("Side by side, workload {w}: latency spectrum"),
            &rs,
            |r| r.subject.clone(),
            &mut images,
        )?;
        let subjects: Vec<(String, Latency)> = rs
            .iter()
            .map(|r| (r.subject.clone(), r.latency.clone()))
            .collect();
        let file = format!("peers-{w}-bars.svg");
        plot::comparison_svg(
            &dir.join(&file),
            &format!("Per-command latency, workload {w} (lower is better)"),
            &["p50", "p99", "p99.9"],
            &subjects,
        )?;
        images.push((format!("Side by side, workload {w}: percentiles"), file));
    }

    // Open-loop modes: the curve across the sweep, and the spectra at one common rate.
    for (mode, floor) in OPEN_LOOP {
        let c = curves(reports, mode, floor);
        if c.is_empty() {
            continue;
        }
        let file = format!("{mode}-curve.svg");
        // Titles stay short enough for the plot's width; the summary's captions say more.
        let what = if mode == "pipeline" {
            "Pipeline against a bare SPSC ring"
        } else {
            "Wire to wire (FIX) against a bare TCP echo"
        };
        plot::throughput_latency_svg(&dir.join(&file), what, &c)?;
        images.push((
            format!("{mode}: throughput against latency, rate sweep"),
            file,
        ));
        if let Some(rate) = comparison_rate(reports, mode, floor) {
            let at_rate: Vec<&BenchResult> = all_results(reports)
                .filter(|r| {
                    (r.mode == mode || r.mode == floor)
                        && r.offered_per_s.map(|o| o.round()) == Some(rate)
                })
                .collect();
            spectrum(
                dir,
                format!("{mode}-spectrum.svg"),
                &format!("{what}, {} offered", human_rate(rate)),
                format!("{mode}: latency spectrum at {} offered", human_rate(rate)),
                &at_rate,
                series_label,
                &mut images,
            )?;
        }
    }
    Ok(images)
}

const MODE_ORDER: [(&str, &str); 6] = [
    ("engine", "Engine only (in process, closed loop)"),
    (
        "peers",
        "Side by side with published Rust order books (closed loop)",
    ),
    (
        "floor-ring",
        "Floor: bare SPSC shared-memory ring (open loop)",
    ),
    (
        "pipeline",
        "Pipeline: sequencer, journal, rings, engine (open loop)",
    ),
    (
        "floor-tcp",
        "Floor: bare TCP echo over loopback (open loop)",
    ),
    ("wire", "Wire to wire: FIX through the gateway (open loop)"),
];

/// The suite's summary as Markdown: the machine, a table per mode, the ratios against peers
/// and floors, and the pictures.
pub fn summary_markdown(
    reports: &[Report],
    images: &[(String, String)],
    suite_command: Option<&str>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Ferrox benchmark suite\n");
    if let Some(c) = suite_command {
        let _ = writeln!(s, "Run with `{}`.\n", c.trim());
    }
    if let Some(first) = reports.first() {
        let m = &first.machine;
        let _ = writeln!(
            s,
            "Machine: {}, {} logical CPUs, {} (host {}).\n",
            m.cpu_model, m.logical_cpus, m.kernel, m.hostname
        );
    }
    let _ = writeln!(
        s,
        "Latency percentiles come from each result's HdrHistogram log (3 significant digits). \
         Open-loop latencies are measured from each operation's planned send time, so a \
         stalled system is charged for every operation it delayed. A rate marked * achieved \
         less than {:.0}% of the offered rate (saturated).\n",
        SATURATED_BELOW * 100.0
    );
    for (mode, title) in MODE_ORDER {
        let mut rows: Vec<&BenchResult> = all_results(reports).filter(|r| r.mode == mode).collect();
        // Open-loop series read best in rate order; closed-loop results stay in run order.
        if rows.iter().all(|r| r.offered_per_s.is_some()) {
            rows.sort_by(|a, b| {
                (series_label(a), a.offered_per_s.unwrap_or(0.0))
                    .partial_cmp(&(series_label(b), b.offered_per_s.unwrap_or(0.0)))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "## {title}\n");
        if let Some(basis) = rows
            .iter()
            .map(|r| &r.latency_basis)
            .find(|b| !b.is_empty())
        {
            let _ = writeln!(s, "Latency: {basis}.\n");
        }
        let _ = writeln!(
            s,
            "| subject | workload | offered | achieved | p50 | p90 | p99 | p99.9 | p99.99 | max | count |"
        );
        let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for r in &rows {
            let l = &r.latency;
            let offered = r.offered_per_s.map_or("—".into(), human_rate);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} |",
                series_label(r),
                r.workload,
                offered,
                human_rate(r.achieved_per_s),
                if saturated(r) { "*" } else { "" },
                human_ns(l.p50_ns),
                human_ns(l.p90_ns),
                human_ns(l.p99_ns),
                human_ns(l.p99_9_ns),
                human_ns(l.p99_99_ns),
                human_ns(l.max_ns),
                l.count
            );
        }
        let _ = writeln!(s);
        if let Some(p) = rows.iter().map(|r| &r.pinning).find(|p| !p.is_empty()) {
            let _ = writeln!(s, "Pinning: {p}.\n");
        }
        if mode == "peers" {
            s.push_str(&peer_ratios(&rows));
        }
        if let Some((_, floor)) = OPEN_LOOP.iter().find(|(m, _)| *m == mode) {
            s.push_str(&floor_ratios(reports, mode, floor));
        }
    }
    if !images.is_empty() {
        let _ = writeln!(s, "## Pictures\n");
        for (caption, file) in images {
            let _ = writeln!(s, "### {caption}\n\n![{caption}]({file})\n");
        }
    }
    let _ = writeln!(s, "## Command lines\n");
    for r in reports {
        let _ = writeln!(s, "- `{}`", r.command_line);
    }
    s
}

/// "peer / Ferrox" ratios per workload: above 1, Ferrox is faster.
fn peer_ratios(rows: &[&BenchResult]) -> String {
    let mut s = String::new();
    let mut any = false;
    for ferrox in rows.iter().filter(|r| r.subject == "ferrox") {
        for peer in rows
            .iter()
            .filter(|r| r.subject != "ferrox" && r.workload == ferrox.workload)
        {
            if !any {
                let _ = writeln!(
                    s,
                    "Ratios, peer over Ferrox (latency) and Ferrox over peer (throughput); \
                     above 1 means Ferrox is faster:\n"
                );
                let _ = writeln!(s, "| workload | peer | p50 | p99 | p99.9 | throughput |");
                let _ = writeln!(s, "|---|---|--:|--:|--:|--:|");
                any = true;
            }
            let ratio = |name: &str| {
                let f = ferrox.latency.get(name).unwrap_or(0).max(1) as f64;
                peer.latency.get(name).unwrap_or(0) as f64 / f
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.1}× | {:.1}× | {:.1}× | {:.1}× |",
                ferrox.workload,
                peer.subject,
                ratio("p50"),
                ratio("p99"),
                ratio("p99.9"),
                ferrox.achieved_per_s / peer.achieved_per_s.max(1e-9)
            );
        }
    }
    if any {
        s.push('\n');
    }
    s
}

/// The mode's latency over its floor's at each offered rate both ran at.
fn floor_ratios(reports: &[Report], mode: &str, floor: &str) -> String {
    let floors: Vec<&BenchResult> = all_results(reports).filter(|r| r.mode == floor).collect();
    let mut s = String::new();
    let mut any = false;
    for r in all_results(reports).filter(|r| r.mode == mode) {
        let Some(f) = floors
            .iter()
            .find(|f| f.offered_per_s.is_some() && f.offered_per_s == r.offered_per_s)
        else {
            continue;
        };
        if !any {
            let _ = writeln!(
                s,
                "Over the floor at the same offered rate (how much the exchange adds to the \
                 bare transport):\n"
            );
            let _ = writeln!(s, "| series | offered | p50 | p99 | p99.9 |");
            let _ = writeln!(s, "|---|--:|--:|--:|--:|");
            any = true;
        }
        let x = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        let _ = writeln!(
            s,
            "| {} | {} | {:.1}× | {:.1}× | {:.1}× |",
            series_label(r),
            human_rate(r.offered_per_s.unwrap_or(0.0)),
            x(r.latency.p50_ns, f.latency.p50_ns),
            x(r.latency.p99_ns, f.latency.p99_ns),
            x(r.latency.p99_9_ns, f.latency.p99_9_ns),
        );
    }
    if any {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{new_histogram, record_ns, Machine, ReportWriter};

    fn hist(base: u64) -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 0..1_000 {
            record_ns(&mut h, base + i);
        }
        h
    }

    fn open(name: &str, mode: &str, d: Option<&str>, offered: f64, achieved: f64) -> BenchResult {
        let mut r = BenchResult::new(name, mode, "ferrox", "w", &hist(offered as u64 / 1000))
            .rates(Some(offered), achieved);
        if let Some(d) = d {
            r = r.param("durability", d);
        }
        r
    }

    #[test]
    fn plan_covers_every_section_and_each_exchange_mode() {
        let o = SuiteOptions::quick();
        let steps = plan(&o, Path::new("/x"));
        for section in Section::ALL {
            assert!(steps.iter().any(|s| s.section == section), "{section:?}");
        }
        // Every benchmark reports into the suite's directory; the feed writer writes the file.
        assert!(steps.iter().all(|s| s.args[0] == "feed"
            || s.args
                .windows(2)
                .any(|w| w[0] == "--report" && w[1] == "/x")));
        let exchanges: Vec<Needs> = steps.iter().map(|s| s.needs).collect();
        assert!(exchanges.contains(&Needs::Exchange("async")));
        assert!(exchanges.contains(&Needs::Exchange("sync")));
        // All the steps of one exchange mode are adjacent, so each exchange starts once.
        let mut seen = Vec::new();
        for n in exchanges.iter().filter(|n| **n != Needs::Nothing) {
            if seen.last() != Some(n) {
                assert!(!seen.contains(n), "{n:?} needed twice");
                seen.push(*n);
            }
        }
        let engine = steps.iter().find(|s| s.args[0] == "engine").unwrap();
        assert_eq!(engine.args[..3], ["engine", "--workload", "small"]);
        let peers = steps.iter().find(|s| s.program == "ferrox-peers").unwrap();
        assert_eq!(peers.args[..2], ["--workload", "small"]);
        assert!(peers.args.windows(2).any(|w| w == ["--commands", "200000"]));
        // The feed file is written once, before the first step that reads it.
        let feed = steps.iter().position(|s| s.args[0] == "feed").unwrap();
        let (file, _) = feed_paths(Path::new("/x"));
        let readers: Vec<usize> = (0..steps.len())
            .filter(|&i| steps[i].args.contains(&format!("file:{file}")))
            .collect();
        assert!(!readers.is_empty() && readers.iter().all(|&i| i > feed));
        let only = SuiteOptions {
            sections: vec![Section::Peers],
            peer_workloads: vec!["small".into()],
            ..o
        };
        assert!(plan(&only, Path::new("/x"))
            .iter()
            .all(|s| s.program == "ferrox-peers"));
        assert_eq!(Section::parse("wire"), Ok(Section::Wire));
        assert!(Section::parse("wires").is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(87), "87 ns");
        assert_eq!(human_ns(12_300), "12.3 µs");
        assert_eq!(human_ns(4_560_000), "4.56 ms");
        assert_eq!(human_ns(1_000), "1 µs");
        assert_eq!(human_ns(181_759), "182 µs");
        assert_eq!(human_ns(2_454_000), "2.45 ms");
        assert_eq!(human_ns(100_000), "100 µs");
        assert_eq!(human_ns(999_900), "1 ms");
        assert_eq!(human_ns(999_400), "999 µs");
        assert_eq!(human_ns(1_200_000_000), "1.20 s");
        assert_eq!(human_rate(950_000.0), "950k/s");
        assert_eq!(human_rate(1_520_000.0), "1.52M/s");
        assert_eq!(human_rate(12.0), "12/s");
    }

    fn reports() -> Vec<Report> {
        let machine = Machine::detect();
        let mk = |tool: &str, results: Vec<BenchResult>| Report {
            tool: tool.into(),
            command_line: format!("{tool} --x"),
            machine: machine.clone(),
            started_unix_s: 0,
            results,
        };
        vec![
            mk(
                "floor",
                vec![
                    open("f1", "floor-ring", None, 100_000.0, 100_000.0),
                    open("f2", "floor-ring", None, 1_000_000.0, 999_000.0),
                ],
            ),
            mk(
                "pipeline",
                vec![
                    open("a1", "pipeline", Some("async"), 100_000.0, 100_000.0),
                    open("a2", "pipeline", Some("async"), 1_000_000.0, 990_000.0),
                    open("s1", "pipeline", Some("sync"), 100_000.0, 99_000.0),
                    // Kept up on average, but its tool saw latency grow without bound.
                    open("s3", "pipeline", Some("sync"), 500_000.0, 500_000.0)
                        .param("saturated", true),
                    open("s2", "pipeline", Some("sync"), 1_000_000.0, 600_000.0),
                ],
            ),
        ]
    }

    #[test]
    fn curves_group_by_series_and_sort_by_rate() {
        let c = curves(&reports(), "pipeline", "floor-ring");
        let labels: Vec<&str> = c.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "bare SPSC ring",
                "ferrox, async journal",
                "ferrox, sync journal"
            ]
        );
        for (label, pts) in &c {
            assert_eq!(
                pts.len(),
                if label == "ferrox, sync journal" {
                    3
                } else {
                    2
                }
            );
            assert!(pts[0].offered_per_s < pts[1].offered_per_s);
        }
        // Spectra are compared at the lowest rate all three ran at (not 500k/s: the floor
        // did not run it).
        assert_eq!(
            comparison_rate(&reports(), "pipeline", "floor-ring"),
            Some(100_000.0)
        );
        assert!(curves(&reports(), "wire", "floor-tcp").is_empty());
    }

    #[test]
    fn summary_has_tables_ratios_and_marks_saturation() {
        let md = summary_markdown(
            &reports(),
            &[("cap".into(), "x.svg".into())],
            Some("ferrox bench --quick\n"),
        );
        assert!(md.contains("Run with `ferrox bench --quick`."), "{md}");
        assert!(md.contains("## Pipeline"), "{md}");
        assert!(
            md.contains("| ferrox, sync journal | w | 1.00M/s | 600k/s* |"),
            "{md}"
        );
        assert!(
            md.contains("Over the floor at the same offered rate"),
            "{md}"
        );
        assert!(md.contains("![cap](x.svg)"));
        assert!(md.contains("`pipeline --x`"));
        assert!(!md.contains("## Wire to wire"));
    }

    #[test]
    fn draw_and_reload_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ReportWriter::new(dir.path(), "pipeline", "t", Machine::detect()).unwrap();
        for r in reports().into_iter().flat_map(|r| r.results) {
            let h = hist(r.offered_per_s.unwrap() as u64 / 1000);
            w.add(r, Some(&h)).unwrap();
        }
        let mut peers = ReportWriter::new(dir.path(), "peers", "t", Machine::detect()).unwrap();
        for (subject, base) in [("ferrox", 100), ("lobster", 4_000)] {
            let h = hist(base);
            let r = BenchResult::new(format!("peers-{subject}"), "peers", subject, "small", &h)
                .rates(None, 1e9 / base as f64);
            peers.add(r, Some(&h)).unwrap();
        }
        let loaded = load_reports(dir.path()).unwrap();
        assert_eq!(loaded.len(), 2);
        let images = draw(dir.path(), &loaded).unwrap();
        let files: Vec<&str> = images.iter().map(|(_, f)| f.as_str()).collect();
        assert_eq!(
            files,
            [
                "peers-small-spectrum.svg",
                "peers-small-bars.svg",
                "pipeline-curve.svg",
                "pipeline-spectrum.svg"
            ]
        );
        for f in files {
            let svg = fs::read_to_string(dir.path().join(f)).unwrap();
            assert!(svg.trim_end().ends_with("</svg>"), "{f}");
        }
        let md = summary_markdown(&loaded, &images, None);
        // p50 of 100..1099 ns against 4000..4999 ns.
        assert!(md.contains("| small | lobster | 7.5× |"), "{md}");
    }
}
