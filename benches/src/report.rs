//! The one result format of every Ferrox benchmark: a JSON report per tool run and an
//! HdrHistogram interval log per result.
//!
//! Each benchmark binary takes `--report DIR` and writes `DIR/<stem>.json` (a [`Report`]) and,
//! for every result that has a latency distribution, `DIR/<stem>-<name>.hlog`, an HdrHistogram
//! interval log (compressed V2 encoding) that HdrHistogram's own tools (`HistogramLogProcessor`,
//! `HistogramLogAnalyzer`) read. The JSON carries the summary a person reads first: p50 to
//! p99.99, max, count, offered and achieved rate, the machine, the pinning and the command line.
//! `ferrox bench` collects these files, and its plots are drawn from the logs, so the pictures
//! and the numbers come from the same recorded distributions.
//!
//! The JSON is rewritten after every result, so a suite interrupted halfway keeps what it has.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency any benchmark records: one minute, in nanoseconds.
pub const HIST_MAX_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 1 ns to one minute, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("constant bounds are valid")
}

/// Records `ns` into `h`, clamping into the histogram's range rather than failing: a sample
/// beyond a minute is recorded as a minute (and shows as the max), and a zero as 1 ns.
pub fn record_ns(h: &mut Histogram<u64>, ns: u64) {
    let v = ns.clamp(1, HIST_MAX_NS);
    h.record(v)
        .expect("value is clamped into the histogram's range");
}

/// The machine a report was measured on. Call [`Machine::detect`] before pinning any thread:
/// a pinned thread sees one CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub kernel: String,
    pub hostname: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let logical_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("{} {}", std::env::consts::OS, s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        let hostname = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu_model,
            logical_cpus,
            kernel,
            hostname,
        }
    }

    /// One line for a console header: "AMD EPYC ..., 2 logical CPUs, linux 6.1".
    pub fn describe(&self) -> String {
        format!(
            "{}, {} logical CPUs, {}",
            self.cpu_model, self.logical_cpus, self.kernel
        )
    }
}

/// The percentiles every result reports, with their JSON names.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

/// A latency distribution's summary, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p99_9_ns: u64,
    pub p99_99_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            min_ns: h.min(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p99_9_ns: h.value_at_quantile(0.999),
            p99_99_ns: h.value_at_quantile(0.9999),
            max_ns: h.max(),
            mean_ns: h.mean(),
        }
    }

    /// The value reported for one of [`PERCENTILES`]' names, or "max".
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "p50" => self.p50_ns,
            "p90" => self.p90_ns,
            "p99" => self.p99_ns,
            "p99.9" => self.p99_9_ns,
            "p99.99" => self.p99_99_ns,
            "max" => self.max_ns,
            _ => return None,
        })
    }
}

/// One measured result: a subject (Ferrox, a peer, a floor) in one mode on one workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Unique within its report and safe in a file name: "engine-small", "pipeline-async-100000".
    pub name: String,
    /// engine, pipeline, wire, peers, floor-ring, floor-tcp, ...
    pub mode: String,
    /// ferrox, lobster, orderbook-rs, spsc-ring, tcp-echo, ...
    pub subject: String,
    /// The workload's name: a preset, "avalanche", "lobster-aapl", a file name, ...
    pub workload: String,
    /// What one latency sample measures, in a sentence.
    pub latency_basis: String,
    /// Offered rate in operations per second (open-loop modes); `None` for closed loops.
    pub offered_per_s: Option<f64>,
    /// Achieved rate in operations per second.
    pub achieved_per_s: f64,
    /// Which threads ran on which cores.
    pub pinning: String,
    pub latency: Latency,
    /// The HdrHistogram interval log of this result, relative to the report's directory.
    pub histogram_log: Option<String>,
    /// Anything else worth keeping: seed, durability, sessions, rejects, ...
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

impl BenchResult {
    /// A result with the required fields; the latency summary is taken from `h`.
    pub fn new(
        name: impl Into<String>,
        mode: impl Into<String>,
        subject: impl Into<String>,
        workload: impl Into<String>,
        h: &Histogram<u64>,
    ) -> BenchResult {
        BenchResult {
            name: name.into(),
            mode: mode.into(),
            subject: subject.into(),
            workload: workload.into(),
            latency_basis: String::new(),
            offered_per_s: None,
            achieved_per_s: 0.0,
            pinning: String::new(),
            latency: Latency::of(h),
            histogram_log: None,
            params: BTreeMap::new(),
        }
    }

    pub fn basis(mut self, s: impl Into<String>) -> BenchResult {
        self.latency_basis = s.into();
        self
    }

    pub fn rates(mut self, offered_per_s: Option<f64>, achieved_per_s: f64) -> BenchResult {
        self.offered_per_s = offered_per_s;
        self.achieved_per_s = achieved_per_s;
        self
    }

    pub fn pinning(mut self, s: impl Into<String>) -> BenchResult {
        self.pinning = s.into();
        self
    }

    pub fn param(mut self, key: &str, value: impl Into<serde_json::Value>) -> BenchResult {
        self.params.insert(key.to_string(), value.into());
        self
    }
}

/// Everything one tool run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The binary and subcommand: "ferrox-bench engine", "ferrox-peers", ...
    pub tool: String,
    pub command_line: String,
    pub machine: Machine,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: u64,
    pub results: Vec<BenchResult>,
}

/// Writes a [`Report`] and its histogram logs into a directory as results come in.
pub struct ReportWriter {
    dir: PathBuf,
    stem: String,
    report: Report,
    started: SystemTime,
}

impl ReportWriter {
    /// Creates `dir` if needed. `stem` names the files (`<stem>.json`, `<stem>-<name>.hlog`);
    /// the command line is this process's.
    pub fn new(dir: &Path, stem: &str, tool: &str, machine: Machine) -> io::Result<ReportWriter> {
        fs::create_dir_all(dir)?;
        let started = SystemTime::now();
        let report = Report {
            tool: tool.to_string(),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            machine,
            started_unix_s: started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            results: Vec::new(),
        };
        Ok(ReportWriter {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            report,
            started,
        })
    }

    /// Adds a result. With a histogram, its interval log (`<stem>-<name>.hlog`, or `<name>.hlog`
    /// when the name starts with the stem) is written first (one interval, the
    /// whole run) and the result points at it. The JSON is rewritten each time.
    pub fn add(&mut self, mut result: BenchResult, h: Option<&Histogram<u64>>) -> io::Result<()> {
        if self.report.results.iter().any(|r| r.name == result.name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("result name {:?} is already in the report", result.name),
            ));
        }
        if let Some(h) = h {
            // Results are often named after their tool already ("floor-ring-100000" in the
            // report "floor-ring"); the stem is not repeated then.
            let file = if result.name.starts_with(&self.stem) {
                format!("{}.hlog", result.name)
            } else {
                format!("{}-{}.hlog", self.stem, result.name)
            };
            let elapsed = self.started.elapsed().unwrap_or_default();
            write_histogram_log(&self.dir.join(&file), &result.name, h, elapsed)?;
            result.histogram_log = Some(file);
        }
        self.report.results.push(result);
        self.save()
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The JSON file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.stem))
    }

    fn save(&self) -> io::Result<()> {
        let json = serde_json::to_string_pretty(&self.report).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!(".{}.json.tmp", self.stem));
        fs::write(&tmp, json + "\n")?;
        fs::rename(tmp, self.path())
    }
}

/// Writes `h` as an HdrHistogram interval log with one interval of length `duration` ending
/// now, tagged with `tag` (spaces and commas, which tags may not hold, become '_').
pub fn write_histogram_log(
    path: &Path,
    tag: &str,
    h: &Histogram<u64>,
    duration: Duration,
) -> io::Result<()> {
    let now = SystemTime::now();
    let start = now.checked_sub(duration).unwrap_or(now);
    let clean: String = tag
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == ',' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut buf = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("Ferrox benchmark latency, nanoseconds")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1.0)
            .begin_log_with(&mut buf, &mut serializer)?;
        let tag = Tag::new(&clean);
        writer
            .write_histogram(h, Duration::ZERO, duration, tag)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
    }
    fs::write(path, buf)
}

/// Reads an interval log back, adding up all its intervals into one histogram.
pub fn read_histogram_log(path: &Path) -> io::Result<Histogram<u64>> {
    let bytes = fs::read(path)?;
    let mut total = new_histogram();
    let mut deserializer = Deserializer::new();
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e:?}", path.display()),
            )
        })?;
        if let LogEntry::Interval(ilh) = entry {
            let decoded = BASE64_STANDARD
                .decode(ilh.encoded_histogram())
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
            let h: Histogram<u64> =
                deserializer
                    .deserialize(&mut decoded.as_slice())
                    .map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: {e:?}", path.display()),
                        )
                    })?;
            total.add(&h).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e:?}", path.display()),
                )
            })?;
            intervals += 1;
        }
    }
    if intervals == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no histogram intervals", path.display()),
        ));
    }
    Ok(total)
}

/// Reads a report written by [`ReportWriter`].
pub fn read_report(path: &Path) -> io::Result<Report> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 1..=10_000u64 {
            record_ns(&mut h, i * 10);
        }
        record_ns(&mut h, 0);
        record_ns(&mut h, u64::MAX);
        h
    }

    #[test]
    fn latency_summary_reads_the_histogram() {
        let h = sample();
        let l = Latency::of(&h);
        assert_eq!(l.count, 10_002);
        assert_eq!(l.min_ns, 1);
        // Three significant digits: within 0.1% of the exact rank.
        assert!((l.p50_ns as f64 - 50_000.0).abs() <= 50.0, "{}", l.p50_ns);
        assert!((l.p99_ns as f64 - 99_000.0).abs() <= 99.0, "{}", l.p99_ns);
        assert!(l.max_ns >= HIST_MAX_NS && l.max_ns <= HIST_MAX_NS + HIST_MAX_NS / 1000);
        assert_eq!(l.get("p99"), Some(l.p99_ns));
        assert_eq!(l.get("p42"), None);
        assert_eq!(Latency::of(&new_histogram()), Latency::default());
    }

    #[test]
    fn histogram_log_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        let h = sample();
        write_histogram_log(&path, "engine small, ferrox", &h, Duration::from_secs(3)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("Tag=engine_small__ferrox,"), "{text}");
        let back = read_histogram_log(&path).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn corrupt_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        write_histogram_log(&path, "t", &sample(), Duration::from_secs(1)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        // Cut the only interval's payload short: the deflate stream then ends early.
        let line = text.lines().find(|l| l.contains("HISTF")).unwrap();
        let payload = line.rsplit(',').next().unwrap();
        let bad = text.replace(payload, &payload[..payload.len() / 2 / 4 * 4]);
        fs::write(&path, bad).unwrap();
        assert!(read_histogram_log(&path).is_err());
        fs::write(&path, "#nothing here\n").unwrap();
        assert!(read_histogram_log(&path).is_err());
    }

    #[test]
    fn writer_keeps_json_and_logs_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let machine = Machine::detect();
        let mut w = ReportWriter::new(dir.path(), "engine", "test", machine.clone()).unwrap();
        let h = sample();
        w.add(
            BenchResult::new("engine-small", "engine", "ferrox", "small", &h)
                .rates(None, 1.5e7)
                .pinning("core 1")
                .param("seed", 7),
            Some(&h),
        )
        .unwrap();
        w.add(
            BenchResult::new("no-hist", "engine", "ferrox", "small", &new_histogram()),
            None,
        )
        .unwrap();
        let dup = BenchResult::new("no-hist", "engine", "ferrox", "small", &h);
        assert!(w.add(dup, None).is_err());
        let r = read_report(&w.path()).unwrap();
        assert_eq!(&r, w.report());
        assert_eq!(r.results.len(), 2);
        assert_eq!(r.machine, machine);
        assert_eq!(r.results[0].params["seed"], 7);
        let log = r.results[0].histogram_log.as_ref().unwrap();
        assert_eq!(read_histogram_log(&dir.path().join(log)).unwrap(), h);
        assert_eq!(r.results[1].histogram_log, None);
    }
}
