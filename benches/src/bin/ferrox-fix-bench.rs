//! `ferrox-fix-bench`: wire-to-wire measurements of the FIX gateway, and their physical floor.
//!
//! Subcommands:
//!
//! - `load`: logs on `--sessions` FIX sessions (`LOAD0001`, `LOAD0002`, ... with ResetSeqNumFlag)
//!   and sends a seeded order flow *open loop* at `--rate` messages per second in total:
//!   planned send times are evenly spaced and go round-robin over the sessions; a sender that
//!   falls behind sends late, but latency is always measured from the planned time, so a stall
//!   anywhere (the generator included) shows up in the percentiles instead of slowing the
//!   offered load (no coordinated omission). The flow, per session: about 60% passive limit
//!   orders (day, 1 to 50 ticks away from a fixed mid on AAPL and MSFT, so they rest), 30%
//!   cancels of the session's own resting orders (a random one), 10% IOC orders that cross the
//!   spread by 60 ticks and take liquidity; a session with `--resting-max` live orders cancels
//!   instead of adding. Latency is from the planned send time of a NewOrderSingle to the
//!   arrival of the first ExecutionReport for its ClOrdID (any ExecType), and separately for
//!   cancels to the first ExecutionReport or OrderCancelReject. One thread sends, one thread
//!   receives (one epoll over all sessions). At the end every session sends an
//!   OrderMassCancelRequest for all its orders and logs out. `--with-echo` first runs the echo
//!   floor below with the same rate, duration and number of connections, and prints the ratios.
//! - `hold`: logs on `--sessions` sessions, keeps them for `--seconds` while heartbeating
//!   (HeartBtInt `--heartbeat`), and reports how many stayed logged on.
//! - `echo`: the physical floor: a bare TCP echo server thread on loopback (one epoll loop, like
//!   the gateway's) and the same open-loop client, sending messages the size of a real encoded
//!   NewOrderSingle (they *are* one) and timing the round trip from the planned send time.
//!
//! ClOrdIDs are `<run tag>-<kind><index>` (kind N passive, I IOC, X cancel, E echo): the
//! receiver recovers the planned send time from the index alone. Everything prints a table;
//! `--json FILE` writes the figures.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferrox_benches::report::{self, BenchResult, ReportWriter};
use ferrox_gateway::client::{unix_ns, FixClient, FixWriter, FrameReader, ReadEvent, ReadSet};
use ferrox_gateway::fix::{tags, Encoder, Message};
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(
    name = "ferrox-fix-bench",
    about = "Wire-to-wire FIX gateway load, session hold and TCP echo floor"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open-loop order flow over many sessions; latency to the first execution report.
    Load(LoadArgs),
    /// Log on many sessions and keep them alive with heartbeats.
    Hold(HoldArgs),
    /// The TCP loopback round-trip floor with NewOrderSingle-sized messages.
    Echo(EchoArgs),
}

#[derive(Args, Clone)]
struct SessionArgs {
    #[arg(long, default_value = "127.0.0.1:9878")]
    addr: String,
    #[arg(long, default_value_t = 100)]
    sessions: u32,
    /// SenderCompIDs are this prefix and a zero-padded number.
    #[arg(long, default_value = "LOAD")]
    prefix: String,
    /// Number of the first session.
    #[arg(long, default_value_t = 1)]
    first: u32,
    #[arg(long, default_value_t = 4)]
    digits: usize,
    #[arg(long, default_value = "load")]
    password: String,
    /// The exchange's CompID.
    #[arg(long, default_value = "FERROX")]
    target: String,
    /// HeartBtInt (108) of the Logon, seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat: u64,
    /// Seconds to wait for all sessions to log on.
    #[arg(long, default_value_t = 30)]
    logon_timeout: u64,
}

#[derive(Args)]
struct LoadArgs {
    #[command(flatten)]
    s: SessionArgs,
    /// Messages per second, all sessions together.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replies to messages planned in the first this many seconds are not recorded.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Seconds to wait for outstanding replies after the last send.
    #[arg(long, default_value_t = 5)]
    drain: u64,
    /// A session with this many live orders cancels instead of adding.
    #[arg(long, default_value_t = 200)]
    resting_max: usize,
    /// Skip the OrderMassCancelRequest at the end (orders then stay until the gateway's
    /// cancel-on-disconnect, if the session has it).
    #[arg(long)]
    no_cleanup: bool,
    /// Run the echo floor first (same rate, duration, connections) and print the ratios.
    #[arg(long)]
    with_echo: bool,
    #[arg(long)]
    json: Option<PathBuf>,
    /// The running exchange's durability mode, which this tool cannot see: it goes into the
    /// report's result name and params.
    #[arg(long, value_enum, default_value = "unknown")]
    durability_label: DurabilityLabel,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum DurabilityLabel {
    Async,
    Sync,
    Unknown,
}

impl DurabilityLabel {
    fn as_str(self) -> &'static str {
        match self {
            DurabilityLabel::Async => "async",
            DurabilityLabel::Sync => "sync",
            DurabilityLabel::Unknown => "unknown",
        }
    }
}

#[derive(Args, Clone, Default)]
struct ReportArgs {
    /// Write the common benchmark report (JSON + HdrHistogram log) into DIR.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// File stem of the report (default: the result's name, e.g. `wire-async-10000` or
    /// `floor-tcp-10000`, so that runs at several rates do not overwrite each other).
    #[arg(long, value_name = "NAME")]
    report_stem: Option<String>,
}

#[derive(Args)]
struct HoldArgs {
    #[command(flatten)]
    s: SessionArgs,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct EchoArgs {
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Message size in bytes; default: that of a real NewOrderSingle. Larger sizes pad the
    /// message with a Text (58) field.
    #[arg(long)]
    size: Option<usize>,
    /// TCP connections (messages go round-robin over them).
    #[arg(long, default_value_t = 1)]
    connections: u32,
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    report: ReportArgs,
}

fn main() {
    let cli = Cli::parse();
    set_timer_slack_1us();
    let result = match cli.cmd {
        Cmd::Load(a) => load(&a),
        Cmd::Hold(a) => hold(&a),
        Cmd::Echo(a) => echo(&a).map(|_| ()),
    };
    if let Err(e) = result {
        eprintln!("ferrox-fix-bench: {e}");
        std::process::exit(1);
    }
}

#[cfg(target_os = "linux")]
fn set_timer_slack_1us() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only the calling thread
    // (and threads it creates afterwards).
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_timer_slack_1us() {}

/// CPU time the calling thread has used.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a live local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu() -> Duration {
    Duration::ZERO
}

/// CPU used over wall time, in percent of one core.
fn cpu_percent(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

// ---- seeded randomness -------------------------------------------------------------------

/// splitmix64: small, fast, and good enough for a workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

// ---- identifiers and timing --------------------------------------------------------------

/// A per-run tag so that ClOrdIDs never repeat across runs: base-36 milliseconds.
fn run_tag() -> Vec<u8> {
    let mut ms = unix_ns() / 1_000_000;
    let mut out = Vec::new();
    while ms > 0 {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(ms % 36) as usize]);
        ms /= 36;
    }
    out.reverse();
    out
}

/// `<tag>-<kind><n>` into `buf`; returns the bytes used.
fn cl_ord_id<'b>(buf: &'b mut [u8; 48], tag: &[u8], kind: u8, n: u64) -> &'b [u8] {
    let mut len = 0;
    for &b in tag.iter().take(24) {
        buf[len] = b;
        len += 1;
    }
    buf[len] = b'-';
    buf[len + 1] = kind;
    len += 2;
    let mut digits = [0u8; 20];
    let mut d = digits.len();
    let mut v = n;
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let count = digits.len() - d;
    buf[len..len + count].copy_from_slice(&digits[d..]);
    &buf[..len + count]
}

/// The kind and index of one of our ClOrdIDs.
fn parse_cl_ord_id(id: &[u8]) -> Option<(u8, u64)> {
    let dash = id.iter().rposition(|&b| b == b'-')?;
    let kind = *id.get(dash + 1)?;
    let digits = &id[dash + 2..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((
        kind,
        digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    ))
}

/// Planned send offset of message `index` at `rate` per second, in ns from the start.
fn planned_ns(index: u64, rate: u64) -> u64 {
    (u128::from(index) * 1_000_000_000 / u128::from(rate.max(1))) as u64
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// How early a sleep before a planned send ends: sleeps overshoot by tens of microseconds
/// (more on a virtual machine), and the rest of the wait is spent spinning.
const SLEEP_MARGIN_US: u64 = 100;

/// Waits until `deadline`: sleeps while it is far, spins when it is near. The spinning costs
/// a core at high rates (at 100k msg/s there is no time to sleep anyway); what lateness
/// remains is measured and reported as "sender lateness".
fn wait_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > Duration::from_micros(SLEEP_MARGIN_US + 20) {
            thread::sleep(left - Duration::from_micros(SLEEP_MARGIN_US));
        } else {
            std::hint::spin_loop();
        }
    }
}

// ---- the order flow ----------------------------------------------------------------------

struct Instrument {
    symbol: &'static [u8],
    /// Mid price in ticks of 0.01.
    mid: i64,
}

const INSTRUMENTS: [Instrument; 2] = [
    Instrument {
        symbol: b"AAPL",
        mid: 19_000,
    },
    Instrument {
        symbol: b"MSFT",
        mid: 42_000,
    },
];
const PRICE_DECIMALS: u32 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Passive,
    Ioc,
    Cancel,
}

impl Kind {
    fn letter(self) -> u8 {
        match self {
            Kind::Passive => b'N',
            Kind::Ioc => b'I',
            Kind::Cancel => b'X',
        }
    }
}

#[derive(Clone, Copy)]
struct Live {
    index: u64,
    instrument: u8,
    side: u8,
}

/// One session's sending side.
struct SendSide {
    stream: TcpStream,
    writer: FixWriter,
    live: Vec<Live>,
}

/// Encodes one NewOrderSingle. `side` is b'1' or b'2'.
#[allow(clippy::too_many_arguments)]
fn nos_body(
    e: &mut Encoder,
    id: &[u8],
    symbol: &[u8],
    side: u8,
    qty: u64,
    price_ticks: i64,
    tif: u8,
    now_ns: u64,
) {
    e.str(tags::CL_ORD_ID, id)
        .str(tags::SYMBOL, symbol)
        .char(tags::SIDE, side)
        .timestamp(tags::TRANSACT_TIME, now_ns)
        .u64(tags::ORDER_QTY, qty)
        .char(tags::ORD_TYPE, b'2')
        .decimal(tags::PRICE, i128::from(price_ticks), PRICE_DECIMALS)
        .char(tags::TIME_IN_FORCE, tif);
}

// ---- shared run state --------------------------------------------------------------------

/// What the sender and receiver threads share.
struct Shared {
    rate: u64,
    total: u64,
    start: Instant,
    /// Messages sent so far (planned indexes below this were sent).
    sent: AtomicU64,
    sending_done: AtomicBool,
    /// The receiver has a first reply for every message sent.
    drained: AtomicBool,
    /// Stop the receiver (main thread, after the sender finished).
    stop: AtomicBool,
    /// The sender is logging the sessions out: closes from now on are expected.
    closing: AtomicBool,
    /// The receiver saw every connection close.
    all_closed: AtomicBool,
    /// OrderMassCancelReports received.
    mass_reports: AtomicU64,
}

#[derive(Default)]
struct SenderReport {
    sent: [u64; 3],
    lateness: Option<Histogram<u64>>,
    queued_writes: u64,
    write_errors: Vec<String>,
    heartbeats: u64,
    send_elapsed: Duration,
    /// The sender thread's CPU time while sending.
    send_cpu: Duration,
}

struct ReceiverReport {
    new_latency: Histogram<u64>,
    cancel_latency: Histogram<u64>,
    first_replies: u64,
    execution_reports: u64,
    fills: u64,
    rejects: HashMap<String, u64>,
    unknown_ids: u64,
    garbled: u64,
    logouts: HashMap<String, u64>,
    disconnects_unexpected: u64,
    mass_cancel_reports: u64,
    last_reply: Option<Instant>,
    /// The receiver thread's CPU time and wall time.
    cpu: Duration,
    wall: Duration,
}

impl ReceiverReport {
    fn new() -> ReceiverReport {
        ReceiverReport {
            new_latency: new_histogram(),
            cancel_latency: new_histogram(),
            first_replies: 0,
            execution_reports: 0,
            fills: 0,
            rejects: HashMap::new(),
            unknown_ids: 0,
            garbled: 0,
            logouts: HashMap::new(),
            disconnects_unexpected: 0,
            mass_cancel_reports: 0,
            last_reply: None,
            cpu: Duration::ZERO,
            wall: Duration::ZERO,
        }
    }
}

/// Bookkeeping of first replies: one bit per planned message.
struct Firsts {
    bits: Vec<u64>,
}

impl Firsts {
    fn new(total: u64) -> Firsts {
        Firsts {
            bits: vec![0; (total as usize).div_ceil(64)],
        }
    }

    /// True the first time `index` is seen.
    fn first(&mut self, index: u64) -> bool {
        let Some(word) = self.bits.get_mut((index / 64) as usize) else {
            return false;
        };
        let bit = 1u64 << (index % 64);
        let first = *word & bit == 0;
        *word |= bit;
        first
    }
}

// ---- the receiver ------------------------------------------------------------------------

struct Receiver {
    shared: Arc<Shared>,
    readers: Vec<FrameReader>,
    firsts: Firsts,
    warmup_index: u64,
    report: ReceiverReport,
    test_requests: mpsc::Sender<(usize, Vec<u8>)>,
    tag: Vec<u8>,
}

impl Receiver {
    fn run(mut self, mut set: ReadSet) -> ReceiverReport {
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        while !self.shared.stop.load(Ordering::Acquire) && set.open() > 0 {
            let mut closed = Vec::new();
            // Messages are handled as soon as their bytes are read, each timed on arrival.
            let result = set.wait(Some(Duration::from_millis(5)), |k, ev| match ev {
                ReadEvent::Data(d) => {
                    let now = Instant::now();
                    let reader = &mut self.readers[k];
                    reader.extend(d);
                    while let Some(m) = reader.next_message() {
                        match m {
                            Ok(m) => handle_reply(
                                &m,
                                k,
                                now,
                                &self.shared,
                                &mut self.firsts,
                                self.warmup_index,
                                &self.tag,
                                &mut self.report,
                                &self.test_requests,
                            ),
                            Err(_) => self.report.garbled += 1,
                        }
                    }
                }
                ReadEvent::Closed(e) => closed.push((k, e)),
            });
            if let Err(e) = result {
                eprintln!("ferrox-fix-bench: poll: {e}");
                break;
            }
            for (_, e) in closed {
                if !self.shared.closing.load(Ordering::Acquire) {
                    self.report.disconnects_unexpected += 1;
                    let text = e.map_or_else(|| "closed by peer".to_string(), |e| e.to_string());
                    *self.report.logouts.entry(text).or_default() += 1;
                }
            }
            if self.shared.sending_done.load(Ordering::Acquire)
                && self.report.first_replies >= self.shared.sent.load(Ordering::Acquire)
            {
                self.shared.drained.store(true, Ordering::Release);
            }
        }
        if set.open() == 0 {
            self.shared.all_closed.store(true, Ordering::Release);
        }
        self.report.cpu = thread_cpu().saturating_sub(cpu0);
        self.report.wall = wall0.elapsed();
        self.report
    }
}

#[allow(clippy::too_many_arguments)]
fn handle_reply(
    m: &Message<'_>,
    session: usize,
    now: Instant,
    shared: &Shared,
    firsts: &mut Firsts,
    warmup_index: u64,
    tag: &[u8],
    report: &mut ReceiverReport,
    test_requests: &mpsc::Sender<(usize, Vec<u8>)>,
) {
    let get = |t: u32| m.get(i64::from(t));
    let text = || String::from_utf8_lossy(get(tags::TEXT).unwrap_or(b"")).into_owned();
    let id_tag = match m.msg_type() {
        b"8" => {
            report.execution_reports += 1;
            match get(tags::EXEC_TYPE) {
                Some(b"F") => report.fills += 1,
                Some(b"8") => {
                    *report
                        .rejects
                        .entry(format!("order: {}", text()))
                        .or_default() += 1
                }
                _ => {}
            }
            Some(tags::CL_ORD_ID)
        }
        b"9" => {
            *report
                .rejects
                .entry(format!("cancel: {}", text()))
                .or_default() += 1;
            Some(tags::CL_ORD_ID)
        }
        b"j" => {
            *report
                .rejects
                .entry(format!("business: {}", text()))
                .or_default() += 1;
            Some(tags::BUSINESS_REJECT_REF_ID)
        }
        // The echo floor: our own message came back.
        b"D" => Some(tags::CL_ORD_ID),
        b"3" => {
            *report
                .rejects
                .entry(format!("session: {}", text()))
                .or_default() += 1;
            None
        }
        b"1" => {
            let id = get(tags::TEST_REQ_ID).unwrap_or(b"").to_vec();
            let _ = test_requests.send((session, id));
            None
        }
        b"5" => {
            if !shared.closing.load(Ordering::Acquire) {
                *report
                    .logouts
                    .entry(format!("logout: {}", text()))
                    .or_default() += 1;
            }
            None
        }
        b"r" => {
            report.mass_cancel_reports += 1;
            shared.mass_reports.fetch_add(1, Ordering::AcqRel);
            None
        }
        _ => None,
    };
    let Some(id_tag) = id_tag else {
        return;
    };
    let Some(id) = get(id_tag) else {
        report.unknown_ids += 1;
        return;
    };
    if !id.starts_with(tag) {
        report.unknown_ids += 1;
        return;
    }
    let Some((kind, index)) = parse_cl_ord_id(id) else {
        report.unknown_ids += 1;
        return;
    };
    if kind == b'M' || !firsts.first(index) {
        return;
    }
    report.first_replies += 1;
    report.last_reply = Some(now);
    if index < warmup_index {
        return;
    }
    let planned = shared.start + Duration::from_nanos(planned_ns(index, shared.rate));
    let ns = u64::try_from(now.saturating_duration_since(planned).as_nanos()).unwrap_or(u64::MAX);
    let h = if kind == b'X' {
        &mut report.cancel_latency
    } else {
        &mut report.new_latency
    };
    h.saturating_record(ns.max(1));
}

// ---- the FIX sender ----------------------------------------------------------------------

struct Sender {
    shared: Arc<Shared>,
    sides: Vec<SendSide>,
    rng: Rng,
    resting_max: usize,
    cleanup: bool,
    drain: Duration,
    test_requests: mpsc::Receiver<(usize, Vec<u8>)>,
    tag: Vec<u8>,
}

impl Sender {
    fn run(mut self) -> SenderReport {
        let mut report = SenderReport {
            lateness: Some(new_histogram()),
            ..SenderReport::default()
        };
        let shared = Arc::clone(&self.shared);
        let n = self.sides.len() as u64;
        let cpu0 = thread_cpu();
        let mut queued: Vec<usize> = Vec::new();
        let mut id = [0u8; 48];
        let mut orig = [0u8; 48];
        for index in 0..shared.total {
            let planned = shared.start + Duration::from_nanos(planned_ns(index, shared.rate));
            wait_until(planned);
            self.service(&mut report, &mut queued);
            let s = (index % n) as usize;
            let side = &mut self.sides[s];
            let roll = self.rng.below(100);
            let full = side.live.len() >= self.resting_max;
            let kind = if roll >= 90 {
                Kind::Ioc
            } else if (roll >= 60 || full) && !side.live.is_empty() {
                Kind::Cancel
            } else {
                Kind::Passive
            };
            let now_ns = unix_ns();
            let id = cl_ord_id(&mut id, &self.tag, kind.letter(), index);
            let result = match kind {
                Kind::Passive | Kind::Ioc => {
                    let instrument = self.rng.below(INSTRUMENTS.len() as u64) as u8;
                    let buy = self.rng.below(2) == 0;
                    let qty = 10 * (1 + self.rng.below(10));
                    let mid = INSTRUMENTS[instrument as usize].mid;
                    let (price, tif) = match (kind, buy) {
                        (Kind::Passive, true) => (mid - 1 - self.rng.below(50) as i64, b'0'),
                        (Kind::Passive, false) => (mid + 1 + self.rng.below(50) as i64, b'0'),
                        (_, true) => (mid + 60, b'3'),
                        (_, false) => (mid - 60, b'3'),
                    };
                    let side_char = if buy { b'1' } else { b'2' };
                    if kind == Kind::Passive {
                        side.live.push(Live {
                            index,
                            instrument,
                            side: side_char,
                        });
                    }
                    let symbol = INSTRUMENTS[instrument as usize].symbol;
                    side.writer.send(&mut side.stream, b"D", |e| {
                        nos_body(e, id, symbol, side_char, qty, price, tif, now_ns);
                    })
                }
                Kind::Cancel => {
                    let pick = self.rng.below(side.live.len() as u64) as usize;
                    let target = side.live.swap_remove(pick);
                    let orig = cl_ord_id(&mut orig, &self.tag, b'N', target.index);
                    let symbol = INSTRUMENTS[target.instrument as usize].symbol;
                    side.writer.send(&mut side.stream, b"F", |e| {
                        e.str(tags::ORIG_CL_ORD_ID, orig)
                            .str(tags::CL_ORD_ID, id)
                            .str(tags::SYMBOL, symbol)
                            .char(tags::SIDE, target.side)
                            .timestamp(tags::TRANSACT_TIME, now_ns);
                    })
                }
            };
            let after = Instant::now();
            if let Some(h) = report.lateness.as_mut() {
                let late = u64::try_from(after.saturating_duration_since(planned).as_nanos())
                    .unwrap_or(u64::MAX);
                h.saturating_record(late.max(1));
            }
            match result {
                Ok(_) => {
                    report.sent[kind as usize] += 1;
                    if side.writer.pending_bytes() > 0 && !queued.contains(&s) {
                        report.queued_writes += 1;
                        queued.push(s);
                    }
                }
                Err(e) => report.write_errors.push(format!(
                    "{}: {e}",
                    String::from_utf8_lossy(side.writer.sender())
                )),
            }
            shared.sent.store(index + 1, Ordering::Release);
        }
        report.send_elapsed = shared.start.elapsed();
        report.send_cpu = thread_cpu().saturating_sub(cpu0);
        shared.sending_done.store(true, Ordering::Release);
        let drain_deadline = Instant::now() + self.drain;
        while !shared.drained.load(Ordering::Acquire) && Instant::now() < drain_deadline {
            self.service(&mut report, &mut queued);
            thread::sleep(Duration::from_millis(1));
        }
        if self.cleanup {
            let mut mass = [0u8; 48];
            for (k, side) in self.sides.iter_mut().enumerate() {
                let id = cl_ord_id(&mut mass, &self.tag, b'M', k as u64);
                let _ = side.writer.send(&mut side.stream, b"q", |e| {
                    e.str(tags::CL_ORD_ID, id)
                        .char(tags::MASS_CANCEL_REQUEST_TYPE, b'7')
                        .timestamp(tags::TRANSACT_TIME, unix_ns());
                });
            }
            // Their reports come back through the engine; a Logout now would overtake them.
            let deadline = Instant::now() + Duration::from_secs(5);
            while shared.mass_reports.load(Ordering::Acquire) < self.sides.len() as u64
                && Instant::now() < deadline
            {
                self.service(&mut report, &mut queued);
                thread::sleep(Duration::from_millis(1));
            }
        }
        shared.closing.store(true, Ordering::Release);
        for side in self.sides.iter_mut() {
            let _ = side.writer.send(&mut side.stream, b"5", |_| {});
        }
        let close_deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < close_deadline && !shared.all_closed.load(Ordering::Acquire) {
            self.service(&mut report, &mut queued);
            thread::sleep(Duration::from_millis(1));
        }
        report
    }

    /// Answers TestRequests and writes what the sockets would not take before.
    fn service(&mut self, report: &mut SenderReport, queued: &mut Vec<usize>) {
        while let Ok((s, id)) = self.test_requests.try_recv() {
            let side = &mut self.sides[s];
            if side
                .writer
                .send(&mut side.stream, b"0", |e| {
                    e.str(tags::TEST_REQ_ID, &id);
                })
                .is_ok()
            {
                report.heartbeats += 1;
            }
        }
        queued.retain(|&s| {
            let side = &mut self.sides[s];
            !matches!(side.writer.flush(&mut side.stream), Ok(true) | Err(_))
        });
    }
}

// ---- sessions ----------------------------------------------------------------------------

/// Logs on `args.sessions` sessions at once; returns the ones that made it and the reasons of
/// the others.
fn logon_all(args: &SessionArgs) -> (Vec<FixClient>, HashMap<String, u64>, Duration) {
    let started = Instant::now();
    let mut pending: Vec<(u32, FixClient)> = Vec::new();
    let mut failures: HashMap<String, u64> = HashMap::new();
    for k in 0..args.sessions {
        let name = format!(
            "{}{:0width$}",
            args.prefix,
            args.first + k,
            width = args.digits
        );
        let started = FixClient::start(
            args.addr.as_str(),
            &name,
            &args.target,
            Some(&args.password),
            args.heartbeat,
            true,
        )
        .and_then(|mut c| c.set_nonblocking(true).map(|()| c));
        match started {
            Ok(c) => pending.push((k, c)),
            Err(e) => *failures.entry(format!("connect: {e}")).or_default() += 1,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(args.logon_timeout);
    let mut done = Vec::new();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut k = 0;
        while k < pending.len() {
            let c = &mut pending[k].1;
            let mut failed = None;
            loop {
                match c.recv(Duration::ZERO) {
                    Ok(Some(_)) if !c.is_logged_on() && c.is_open() => {}
                    Ok(_) => break,
                    Err(e) => {
                        failed = Some(
                            c.logout_text()
                                .map_or_else(|| e.to_string(), |t| format!("logon refused: {t}")),
                        );
                        break;
                    }
                }
            }
            if let Some(reason) = failed {
                *failures.entry(reason).or_default() += 1;
                pending.swap_remove(k);
            } else if pending[k].1.is_logged_on() {
                done.push(pending.swap_remove(k));
            } else if !pending[k].1.is_open() {
                let reason = pending[k].1.logout_text().unwrap_or("closed").to_string();
                *failures
                    .entry(format!("logon refused: {reason}"))
                    .or_default() += 1;
                pending.swap_remove(k);
            } else {
                k += 1;
            }
        }
        if !pending.is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
    }
    if !pending.is_empty() {
        *failures
            .entry("no Logon reply before --logon-timeout".to_string())
            .or_default() += pending.len() as u64;
    }
    // Configuration order, so that a seed gives each session the same flow in every run.
    done.sort_by_key(|(k, _)| *k);
    (
        done.into_iter().map(|(_, c)| c).collect(),
        failures,
        started.elapsed(),
    )
}

fn print_failures(what: &str, failures: &HashMap<String, u64>) {
    let mut v: Vec<_> = failures.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (reason, n) in v {
        println!("  {what} {n:>8}  {reason}");
    }
}

// ---- reporting ---------------------------------------------------------------------------

fn fmt_ns(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else if ns >= 10_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

fn hist_line(label: &str, h: &Histogram<u64>) -> String {
    let mut s = format!("{label:<24} n {:>9}", h.len());
    if h.is_empty() {
        return s;
    }
    for (name, q) in QUANTILES {
        let _ = write!(s, "  {name} {:>9}", fmt_ns(h.value_at_quantile(q)));
    }
    let _ = write!(s, "  max {:>9}", fmt_ns(h.max()));
    s
}

fn hist_json(h: &Histogram<u64>) -> String {
    let mut s = format!("{{\"count\": {}", h.len());
    if !h.is_empty() {
        for (name, q) in QUANTILES {
            let _ = write!(
                s,
                ", \"{}_ns\": {}",
                name.replace('.', "_"),
                h.value_at_quantile(q)
            );
        }
        let _ = write!(s, ", \"max_ns\": {}, \"mean_ns\": {:.0}", h.max(), h.mean());
    }
    s.push('}');
    s
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn counts_json(m: &HashMap<String, u64>) -> String {
    let mut v: Vec<_> = m.iter().collect();
    v.sort();
    let items: Vec<String> = v
        .iter()
        .map(|(k, n)| format!("{}: {n}", json_string(k)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn counts_value(m: &HashMap<String, u64>) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> =
        m.iter().map(|(k, n)| (k.clone(), (*n).into())).collect();
    serde_json::Value::Object(map)
}

fn write_json(path: &PathBuf, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

// ---- load --------------------------------------------------------------------------------

struct EchoResult {
    latency: Histogram<u64>,
    size: usize,
    rate: u64,
    seconds: u64,
    warmup: f64,
    connections: u32,
    sent: u64,
    echoed: u64,
    write_errors: u64,
    /// Echoes per second, first planned send to last echo.
    achieved_per_s: f64,
    sent_per_s: f64,
    lateness: Histogram<u64>,
}

/// A latency histogram in the report's bounds (1 ns to a minute); values beyond are clamped.
fn report_histogram(h: &Histogram<u64>) -> Histogram<u64> {
    let mut out = report::new_histogram();
    for v in h.iter_recorded() {
        out.saturating_record_n(
            v.value_iterated_to().clamp(1, report::HIST_MAX_NS),
            v.count_at_value(),
        );
    }
    out
}

fn open_report(
    args: &ReportArgs,
    default_stem: &str,
    tool: &str,
) -> Result<Option<ReportWriter>, String> {
    let Some(dir) = &args.report else {
        return Ok(None);
    };
    let stem = args.report_stem.as_deref().unwrap_or(default_stem);
    ReportWriter::new(dir, stem, tool, report::Machine::detect())
        .map(Some)
        .map_err(|e| format!("cannot write a report into {}: {e}", dir.display()))
}

fn add_result(w: &mut ReportWriter, result: BenchResult, h: &Histogram<u64>) -> Result<(), String> {
    let name = result.name.clone();
    w.add(result, Some(&report_histogram(h)))
        .map_err(|e| format!("cannot add result {name} to the report: {e}"))?;
    println!("report: {name} -> {}", w.path().display());
    Ok(())
}

/// Saturated: fewer than 95% of the offered messages per second came back.
fn saturated(offered: u64, achieved_per_s: f64) -> bool {
    achieved_per_s < 0.95 * offered as f64
}

fn echo_bench_result(e: &EchoResult) -> BenchResult {
    let name = format!("floor-tcp-{}", e.rate);
    BenchResult::new(name, "floor-tcp", "tcp-echo", "fix-orders", &e.latency)
        .basis(format!(
            "planned send time (open loop, evenly spaced at the offered rate, round-robin over \
             the connections) to the client reading the echo of a {}-byte NewOrderSingle from a \
             bare TCP echo server thread on loopback (one epoll loop, no FIX parsing, no engine)",
            e.size
        ))
        .rates(Some(e.rate as f64), e.achieved_per_s)
        .pinning("client sender, client receiver and echo server threads unpinned (OS scheduling)")
        .param("connections", e.connections)
        .param("message_bytes", e.size as u64)
        .param("seconds", e.seconds)
        .param("warmup_s", e.warmup)
        .param("commands", e.sent)
        .param("echoed", e.echoed)
        .param("dropped", e.sent.saturating_sub(e.echoed))
        .param("write_errors", e.write_errors)
        .param("sent_per_s", e.sent_per_s.round())
        .param("sender_lateness_p99_ns", quantile_or_0(&e.lateness, 0.99))
        .param("saturated", saturated(e.rate, e.achieved_per_s))
}

fn quantile_or_0(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

fn load(a: &LoadArgs) -> Result<(), String> {
    if a.rate == 0 || a.seconds == 0 || a.s.sessions == 0 {
        return Err("--rate, --seconds and --sessions must be positive".to_string());
    }
    let total = a.rate * a.seconds;
    let echo_result = if a.with_echo {
        println!("== echo floor ({} connections) ==", a.s.sessions);
        Some(echo(&EchoArgs {
            rate: a.rate,
            seconds: a.seconds,
            size: None,
            connections: a.s.sessions,
            warmup: a.warmup,
            json: None,
            report: ReportArgs::default(),
        })?)
    } else {
        None
    };
    println!(
        "== FIX load: {} sessions {}{:0w$}.. at {}, {} msg/s for {} s, seed {} ==",
        a.s.sessions,
        a.s.prefix,
        a.s.first,
        a.s.addr,
        a.rate,
        a.seconds,
        a.seed,
        w = a.s.digits
    );
    let (clients, failures, logon_time) = logon_all(&a.s);
    println!(
        "logon: {} of {} sessions logged on in {:.0} ms",
        clients.len(),
        a.s.sessions,
        logon_time.as_secs_f64() * 1e3
    );
    print_failures("failed", &failures);
    if clients.is_empty() {
        return Err("no session logged on".to_string());
    }
    let mut set = ReadSet::new().map_err(|e| format!("epoll: {e}"))?;
    let mut sides = Vec::new();
    let mut readers = Vec::new();
    for c in clients {
        let parts = c.into_parts();
        set.add(&parts.stream)
            .map_err(|e| format!("register session: {e}"))?;
        sides.push(SendSide {
            stream: parts.stream,
            writer: parts.writer,
            live: Vec::new(),
        });
        readers.push(parts.reader);
    }
    let tag = run_tag();
    let shared = Arc::new(Shared {
        rate: a.rate,
        total,
        // A short lead so both threads are running before the first planned send.
        start: Instant::now() + Duration::from_millis(50),
        sent: AtomicU64::new(0),
        sending_done: AtomicBool::new(false),
        drained: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        all_closed: AtomicBool::new(false),
        mass_reports: AtomicU64::new(0),
    });
    let (tr_tx, tr_rx) = mpsc::channel();
    let receiver = Receiver {
        shared: Arc::clone(&shared),
        readers,
        firsts: Firsts::new(total),
        warmup_index: (a.warmup * a.rate as f64) as u64,
        report: ReceiverReport::new(),
        test_requests: tr_tx,
        tag: tag.clone(),
    };
    let sender = Sender {
        shared: Arc::clone(&shared),
        sides,
        rng: Rng(a.seed),
        resting_max: a.resting_max,
        cleanup: !a.no_cleanup,
        drain: Duration::from_secs(a.drain),
        test_requests: tr_rx,
        tag,
    };
    let rx = thread::Builder::new()
        .name("fix-bench-rx".into())
        .spawn(move || receiver.run(set))
        .map_err(|e| e.to_string())?;
    let tx = thread::Builder::new()
        .name("fix-bench-tx".into())
        .spawn(move || sender.run())
        .map_err(|e| e.to_string())?;
    let sent_report = tx
        .join()
        .map_err(|_| "sender thread panicked".to_string())?;
    shared.stop.store(true, Ordering::Release);
    let rx_report = rx
        .join()
        .map_err(|_| "receiver thread panicked".to_string())?;

    let sent: u64 = sent_report.sent.iter().sum();
    let secs = sent_report.send_elapsed.as_secs_f64().max(1e-9);
    let reply_span = rx_report.last_reply.map_or(0.0, |t| {
        t.saturating_duration_since(shared.start).as_secs_f64()
    });
    println!(
        "sent {sent} ({} passive, {} IOC, {} cancel) in {:.2} s: offered {} msg/s, achieved {:.0} msg/s",
        sent_report.sent[Kind::Passive as usize],
        sent_report.sent[Kind::Ioc as usize],
        sent_report.sent[Kind::Cancel as usize],
        secs,
        a.rate,
        sent as f64 / secs
    );
    println!(
        "replies: {} first replies ({} missing), last at {:.2} s ({:.0} replies/s); {} execution reports, {} fills, {} mass-cancel reports",
        rx_report.first_replies,
        sent.saturating_sub(rx_report.first_replies),
        reply_span,
        rx_report.first_replies as f64 / reply_span.max(1e-9),
        rx_report.execution_reports,
        rx_report.fills,
        rx_report.mass_cancel_reports
    );
    println!("latency from planned send time to the first reply:");
    println!(
        "{}",
        hist_line("  new order -> first ER", &rx_report.new_latency)
    );
    println!(
        "{}",
        hist_line("  cancel -> ER/reject", &rx_report.cancel_latency)
    );
    if let Some(h) = &sent_report.lateness {
        println!("{}", hist_line("  sender lateness", h));
    }
    let mut all = rx_report.new_latency.clone();
    let _ = all.add(&rx_report.cancel_latency);
    if let Some(echo) = &echo_result {
        println!("{}", hist_line("  echo floor", &echo.latency));
        let mut s = String::from("  ratio FIX/echo (all requests):");
        for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            let e = echo.latency.value_at_quantile(q).max(1) as f64;
            let _ = write!(s, " {name} {:.1}x", all.value_at_quantile(q) as f64 / e);
        }
        println!("{s}");
    }
    println!(
        "generator CPU: sender {:.0}% of a core while sending, receiver {:.0}% over its {:.1} s",
        cpu_percent(sent_report.send_cpu, sent_report.send_elapsed),
        cpu_percent(rx_report.cpu, rx_report.wall),
        rx_report.wall.as_secs_f64()
    );
    if !rx_report.rejects.is_empty() {
        println!("rejects by reason:");
        print_failures("", &rx_report.rejects);
    }
    println!(
        "errors: {} unexpected disconnects, {} write errors, {} writes queued (socket full), {} garbled, {} replies with unknown ids, {} heartbeats sent",
        rx_report.disconnects_unexpected,
        sent_report.write_errors.len(),
        sent_report.queued_writes,
        rx_report.garbled,
        rx_report.unknown_ids,
        sent_report.heartbeats
    );
    if !rx_report.logouts.is_empty() {
        print_failures("closed", &rx_report.logouts);
    }
    for e in sent_report.write_errors.iter().take(5) {
        println!("  write error: {e}");
    }
    let label = a.durability_label.as_str();
    let name = format!("wire-{label}-{}", a.rate);
    if let Some(mut w) = open_report(&a.report, &name, "ferrox-fix-bench load")? {
        if let Some(echo) = &echo_result {
            add_result(&mut w, echo_bench_result(echo), &echo.latency)?;
        }
        let achieved = rx_report.first_replies as f64 / reply_span.max(1e-9);
        let rejects: u64 = rx_report.rejects.values().sum();
        let mut result = BenchResult::new(name, "wire", "ferrox", "fix-orders", &all)
            .basis(
                "planned send time (open loop, evenly spaced at the offered rate, round-robin over \
                 the sessions) of a NewOrderSingle or OrderCancelRequest to the client reading the \
                 first ExecutionReport (or OrderCancelReject) for its ClOrdID, over TCP loopback \
                 through the running exchange's FIX gateway, sequencer (journal) and engine",
            )
            .rates(Some(a.rate as f64), achieved)
            .pinning(
                "client sender and receiver threads unpinned (OS scheduling); the exchange's \
                 threads as the exchange pins them (not known to this tool)",
            )
            .param("durability", label)
            .param("addr", a.s.addr.clone())
            .param("sessions", a.s.sessions)
            .param("sessions_logged_on", sides_count(&failures, a.s.sessions))
            .param("seed", a.seed)
            .param("seconds", a.seconds)
            .param("warmup_s", a.warmup)
            .param("resting_max", a.resting_max as u64)
            .param("commands", sent)
            .param("sent_passive", sent_report.sent[Kind::Passive as usize])
            .param("sent_ioc", sent_report.sent[Kind::Ioc as usize])
            .param("sent_cancel", sent_report.sent[Kind::Cancel as usize])
            .param("sent_per_s", (sent as f64 / secs).round())
            .param("first_replies", rx_report.first_replies)
            .param("timeouts", sent.saturating_sub(rx_report.first_replies))
            .param("execution_reports", rx_report.execution_reports)
            .param("fills", rx_report.fills)
            .param("rejects", rejects)
            .param("rejects_by_reason", counts_value(&rx_report.rejects))
            .param("logon_failures", counts_value(&failures))
            .param("disconnects_unexpected", rx_report.disconnects_unexpected)
            .param("write_errors", sent_report.write_errors.len() as u64)
            .param("queued_writes", sent_report.queued_writes)
            .param("garbled", rx_report.garbled)
            .param("unknown_ids", rx_report.unknown_ids)
            .param("new_order_p50_ns", quantile_or_0(&rx_report.new_latency, 0.5))
            .param("new_order_p99_ns", quantile_or_0(&rx_report.new_latency, 0.99))
            .param("cancel_p50_ns", quantile_or_0(&rx_report.cancel_latency, 0.5))
            .param("cancel_p99_ns", quantile_or_0(&rx_report.cancel_latency, 0.99))
            .param(
                "sender_lateness_p99_ns",
                sent_report
                    .lateness
                    .as_ref()
                    .map_or(0, |h| quantile_or_0(h, 0.99)),
            )
            .param("saturated", saturated(a.rate, achieved));
        if let Some(echo) = &echo_result {
            result = result.param("echo_floor", format!("floor-tcp-{}", echo.rate));
        }
        add_result(&mut w, result, &all)?;
    }
    if let Some(path) = &a.json {
        let mut j = format!(
            "{{\"mode\": \"load\", \"addr\": {}, \"sessions\": {}, \"sessions_logged_on\": {}, \"seed\": {}, \"rate_offered\": {}, \"seconds\": {}, \"warmup_s\": {}, \"sent\": {sent}, \"sent_passive\": {}, \"sent_ioc\": {}, \"sent_cancel\": {}, \"achieved_rate\": {:.0}, \"first_replies\": {}, \"execution_reports\": {}, \"fills\": {}, \"new_order\": {}, \"cancel\": {}, \"all\": {}, \"sender_lateness\": {}, \"rejects\": {}, \"logon_failures\": {}, \"disconnects_unexpected\": {}, \"write_errors\": {}",
            json_string(&a.s.addr),
            a.s.sessions,
            sides_count(&failures, a.s.sessions),
            a.seed,
            a.rate,
            a.seconds,
            a.warmup,
            sent_report.sent[Kind::Passive as usize],
            sent_report.sent[Kind::Ioc as usize],
            sent_report.sent[Kind::Cancel as usize],
            sent as f64 / secs,
            rx_report.first_replies,
            rx_report.execution_reports,
            rx_report.fills,
            hist_json(&rx_report.new_latency),
            hist_json(&rx_report.cancel_latency),
            hist_json(&all),
            sent_report.lateness.as_ref().map_or("null".to_string(), hist_json),
            counts_json(&rx_report.rejects),
            counts_json(&failures),
            rx_report.disconnects_unexpected,
            sent_report.write_errors.len(),
        );
        if let Some(echo) = &echo_result {
            let ratio = |q: f64| {
                all.value_at_quantile(q) as f64 / echo.latency.value_at_quantile(q).max(1) as f64
            };
            let _ = write!(
                j,
                ", \"echo\": {}, \"echo_message_bytes\": {}, \"ratio_p50\": {:.2}, \"ratio_p99\": {:.2}, \"ratio_p99_9\": {:.2}",
                hist_json(&echo.latency),
                echo.size,
                ratio(0.5),
                ratio(0.99),
                ratio(0.999)
            );
        }
        j.push_str("}\n");
        write_json(path, &j)?;
    }
    Ok(())
}

fn sides_count(failures: &HashMap<String, u64>, sessions: u32) -> u64 {
    u64::from(sessions).saturating_sub(failures.values().sum())
}

// ---- hold --------------------------------------------------------------------------------

fn hold(a: &HoldArgs) -> Result<(), String> {
    println!(
        "== hold: {} sessions {}{:0w$}.. at {}, HeartBtInt {} s, {} s ==",
        a.s.sessions,
        a.s.prefix,
        a.s.first,
        a.s.addr,
        a.s.heartbeat,
        a.seconds,
        w = a.s.digits
    );
    let (mut clients, failures, logon_time) = logon_all(&a.s);
    println!(
        "logon: {} of {} sessions logged on in {:.0} ms",
        clients.len(),
        a.s.sessions,
        logon_time.as_secs_f64() * 1e3
    );
    print_failures("failed", &failures);
    if clients.is_empty() {
        return Err("no session logged on".to_string());
    }
    let logged_on = clients.len();
    let mut dropped: HashMap<String, u64> = HashMap::new();
    let mut unexpected_messages = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut next_progress = start + Duration::from_secs(10);
    while Instant::now() < end {
        let mut k = 0;
        while k < clients.len() {
            let c = &mut clients[k];
            let mut lost = None;
            loop {
                match c.recv(Duration::ZERO) {
                    Ok(Some(_)) => unexpected_messages += 1,
                    Ok(None) => break,
                    Err(e) => {
                        lost = Some(
                            c.logout_text()
                                .map_or_else(|| e.to_string(), |t| format!("logged out: {t}")),
                        );
                        break;
                    }
                }
            }
            if lost.is_none() && !c.is_logged_on() {
                lost = Some(format!("logged out: {}", c.logout_text().unwrap_or("")));
            }
            if let Some(reason) = lost {
                *dropped.entry(reason).or_default() += 1;
                clients.swap_remove(k);
            } else {
                k += 1;
            }
        }
        if Instant::now() >= next_progress {
            println!(
                "  {:>4.0} s: {} logged on",
                start.elapsed().as_secs_f64(),
                clients.len()
            );
            next_progress += Duration::from_secs(10);
        }
        thread::sleep(Duration::from_millis(100));
    }
    let stayed = clients.len();
    let (mut heartbeats, mut test_requests) = (0u64, 0u64);
    for c in &clients {
        let s = c.stats();
        heartbeats += s.heartbeats_sent;
        test_requests += s.test_requests_answered;
    }
    println!(
        "held {} s: {stayed} of {logged_on} logged-on sessions stayed logged on ({} of {} requested); {heartbeats} heartbeats sent, {test_requests} test requests answered, {unexpected_messages} other messages",
        a.seconds, stayed, a.s.sessions
    );
    print_failures("dropped", &dropped);
    // Log out all at once, then wait for the confirmations.
    for c in clients.iter_mut() {
        let _ = c.begin_logout(None);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut confirmed = 0;
    while !clients.is_empty() && Instant::now() < deadline {
        clients.retain_mut(|c| loop {
            match c.recv(Duration::ZERO) {
                Ok(Some(_)) => {}
                Ok(None) => return c.is_open(),
                Err(_) => {
                    confirmed += 1;
                    return false;
                }
            }
        });
        thread::sleep(Duration::from_millis(5));
    }
    println!(
        "logout: {confirmed} of {stayed} closed by the exchange after our Logout, {} still open",
        clients.len()
    );
    if let Some(path) = &a.json {
        let j = format!(
            "{{\"mode\": \"hold\", \"addr\": {}, \"sessions\": {}, \"logged_on\": {logged_on}, \"logon_ms\": {:.1}, \"seconds\": {}, \"heartbeat_s\": {}, \"stayed\": {stayed}, \"heartbeats_sent\": {heartbeats}, \"test_requests_answered\": {test_requests}, \"logon_failures\": {}, \"dropped\": {}}}\n",
            json_string(&a.s.addr),
            a.s.sessions,
            logon_time.as_secs_f64() * 1e3,
            a.seconds,
            a.s.heartbeat,
            counts_json(&failures),
            counts_json(&dropped)
        );
        write_json(path, &j)?;
    }
    if stayed < a.s.sessions as usize {
        return Err(format!(
            "{} of {} sessions did not stay logged on",
            a.s.sessions as usize - stayed,
            a.s.sessions
        ));
    }
    Ok(())
}

// ---- echo --------------------------------------------------------------------------------

/// A real NewOrderSingle as the load sends it, with ClOrdID index `index`, padded with a Text
/// field to at least `size` bytes.
fn echo_message(w: &mut FixWriter, tag: &[u8], index: u64, pad: usize, now_ns: u64) -> Vec<u8> {
    let mut id = [0u8; 48];
    let id = cl_ord_id(&mut id, tag, b'E', index);
    let padding = vec![b'x'; pad];
    w.encode(b"D", now_ns, |e| {
        nos_body(e, id, b"AAPL", b'1', 100, 18_975, b'0', now_ns);
        if pad > 0 {
            e.str(tags::TEXT, &padding);
        }
    })
    .to_vec()
}

/// The echo server: accepts `connections`, then writes back whatever it reads, from one epoll
/// loop, until every connection has closed.
fn echo_server(listener: TcpListener, connections: u32) -> io::Result<()> {
    let mut streams = Vec::new();
    let mut set = ReadSet::new()?;
    for _ in 0..connections {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        set.add(&s)?;
        streams.push((s, Vec::<u8>::new()));
    }
    while set.open() > 0 {
        set.wait(Some(Duration::from_millis(50)), |k, ev| {
            if let ReadEvent::Data(d) = ev {
                let (s, pending) = &mut streams[k];
                pending.extend_from_slice(d);
                let _ = flush_vec(s, pending);
            }
        })?;
        for (s, pending) in streams.iter_mut() {
            if !pending.is_empty() {
                let _ = flush_vec(s, pending);
            }
        }
    }
    Ok(())
}

/// Writes as much of `pending` as the non-blocking socket takes.
fn flush_vec(s: &mut TcpStream, pending: &mut Vec<u8>) -> io::Result<()> {
    let mut at = 0;
    while at < pending.len() {
        match s.write(&pending[at..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                pending.clear();
                return Err(e);
            }
        }
    }
    pending.drain(..at);
    Ok(())
}

fn echo(a: &EchoArgs) -> Result<EchoResult, String> {
    if a.rate == 0 || a.seconds == 0 || a.connections == 0 {
        return Err("--rate, --seconds and --connections must be positive".to_string());
    }
    let tag = run_tag();
    let mut w = FixWriter::new("LOAD0001", "FERROX", 1);
    let natural = echo_message(&mut w, &tag, a.rate * a.seconds / 2, 0, unix_ns()).len();
    let pad = match a.size {
        None => 0,
        Some(size) if size <= natural => {
            if size < natural {
                eprintln!("ferrox-fix-bench: --size {size} is below a NewOrderSingle's {natural} bytes; using {natural}");
            }
            0
        }
        // "58=" and SOH take 4 bytes.
        Some(size) => (size - natural).saturating_sub(4).max(1),
    };
    let size = echo_message(&mut w, &tag, a.rate * a.seconds / 2, pad, unix_ns()).len();
    println!(
        "echo: {} connection(s) on loopback, {} msg/s for {} s, {size}-byte messages (a NewOrderSingle is {natural})",
        a.connections, a.rate, a.seconds
    );
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let connections = a.connections;
    let server = thread::Builder::new()
        .name("echo-server".into())
        .spawn(move || echo_server(listener, connections))
        .map_err(|e| e.to_string())?;
    let mut streams = Vec::new();
    let mut set = ReadSet::new().map_err(|e| e.to_string())?;
    let mut readers = Vec::new();
    for _ in 0..a.connections {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect echo: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        set.add(&s).map_err(|e| e.to_string())?;
        streams.push(s);
        readers.push(FrameReader::new(64 * 1024));
    }
    let total = a.rate * a.seconds;
    let shared = Arc::new(Shared {
        rate: a.rate,
        total,
        start: Instant::now() + Duration::from_millis(50),
        sent: AtomicU64::new(0),
        sending_done: AtomicBool::new(false),
        drained: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        all_closed: AtomicBool::new(false),
        mass_reports: AtomicU64::new(0),
    });
    let (tr_tx, _tr_rx) = mpsc::channel();
    let receiver = Receiver {
        shared: Arc::clone(&shared),
        readers,
        firsts: Firsts::new(total),
        warmup_index: (a.warmup * a.rate as f64) as u64,
        report: ReceiverReport::new(),
        test_requests: tr_tx,
        tag: tag.clone(),
    };
    let rx = thread::Builder::new()
        .name("echo-rx".into())
        .spawn(move || receiver.run(set))
        .map_err(|e| e.to_string())?;
    let tx_shared = Arc::clone(&shared);
    let tx = thread::Builder::new()
        .name("echo-tx".into())
        .spawn(move || {
            let shared = tx_shared;
            let mut writers: Vec<FixWriter> = (0..streams.len())
                .map(|_| FixWriter::new("LOAD0001", "FERROX", 1))
                .collect();
            let mut lateness = new_histogram();
            let mut errors = 0u64;
            let cpu0 = thread_cpu();
            let mut id = [0u8; 48];
            let padding = vec![b'x'; pad];
            let n = streams.len() as u64;
            for index in 0..shared.total {
                let planned = shared.start + Duration::from_nanos(planned_ns(index, shared.rate));
                wait_until(planned);
                let k = (index % n) as usize;
                let now_ns = unix_ns();
                let id = cl_ord_id(&mut id, &tag, b'E', index);
                let (w, s) = (&mut writers[k], &mut streams[k]);
                let _ = w.flush(s);
                let r = w.send(s, b"D", |e| {
                    nos_body(e, id, b"AAPL", b'1', 100, 18_975, b'0', now_ns);
                    if pad > 0 {
                        e.str(tags::TEXT, &padding);
                    }
                });
                if r.is_err() {
                    errors += 1;
                }
                let late = u64::try_from(planned.elapsed().as_nanos()).unwrap_or(u64::MAX);
                lateness.saturating_record(late.max(1));
                shared.sent.store(index + 1, Ordering::Release);
            }
            let elapsed = shared.start.elapsed();
            let cpu = thread_cpu().saturating_sub(cpu0);
            shared.sending_done.store(true, Ordering::Release);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !shared.drained.load(Ordering::Acquire) && Instant::now() < deadline {
                for (w, s) in writers.iter_mut().zip(streams.iter_mut()) {
                    let _ = w.flush(s);
                }
                thread::sleep(Duration::from_millis(1));
            }
            shared.closing.store(true, Ordering::Release);
            for s in &streams {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            (lateness, errors, elapsed, cpu)
        })
        .map_err(|e| e.to_string())?;
    let (lateness, errors, elapsed, send_cpu) = tx.join().map_err(|_| "echo sender panicked")?;
    shared.stop.store(true, Ordering::Release);
    let report = rx.join().map_err(|_| "echo receiver panicked")?;
    server
        .join()
        .map_err(|_| "echo server panicked")?
        .map_err(|e| format!("echo server: {e}"))?;
    let sent = shared.sent.load(Ordering::Acquire);
    println!(
        "sent {sent} in {:.2} s: offered {} msg/s, achieved {:.0} msg/s; {} echoed, {} write errors",
        elapsed.as_secs_f64(),
        a.rate,
        sent as f64 / elapsed.as_secs_f64().max(1e-9),
        report.first_replies,
        errors
    );
    println!("{}", hist_line("  echo round trip", &report.new_latency));
    println!("{}", hist_line("  sender lateness", &lateness));
    println!(
        "generator CPU: sender {:.0}% of a core while sending, receiver {:.0}% over its {:.1} s",
        cpu_percent(send_cpu, elapsed),
        cpu_percent(report.cpu, report.wall),
        report.wall.as_secs_f64()
    );
    if let Some(path) = &a.json {
        let j = format!(
            "{{\"mode\": \"echo\", \"connections\": {}, \"rate_offered\": {}, \"seconds\": {}, \"message_bytes\": {size}, \"sent\": {sent}, \"echoed\": {}, \"latency\": {}, \"sender_lateness\": {}}}\n",
            a.connections,
            a.rate,
            a.seconds,
            report.first_replies,
            hist_json(&report.new_latency),
            hist_json(&lateness)
        );
        write_json(path, &j)?;
    }
    let reply_span = report.last_reply.map_or(0.0, |t| {
        t.saturating_duration_since(shared.start).as_secs_f64()
    });
    let result = EchoResult {
        latency: report.new_latency,
        size,
        rate: a.rate,
        seconds: a.seconds,
        warmup: a.warmup,
        connections: a.connections,
        sent,
        echoed: report.first_replies,
        write_errors: errors,
        achieved_per_s: report.first_replies as f64 / reply_span.max(1e-9),
        sent_per_s: sent as f64 / elapsed.as_secs_f64().max(1e-9),
        lateness,
    };
    let name = format!("floor-tcp-{}", a.rate);
    if let Some(mut w) = open_report(&a.report, &name, "ferrox-fix-bench echo")? {
        add_result(&mut w, echo_bench_result(&result), &result.latency)?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cl_ord_ids_round_trip() {
        let mut buf = [0u8; 48];
        let id = cl_ord_id(&mut buf, b"k3f9a", b'X', 1_234_567).to_vec();
        assert_eq!(id, b"k3f9a-X1234567");
        assert_eq!(parse_cl_ord_id(&id), Some((b'X', 1_234_567)));
        assert_eq!(parse_cl_ord_id(b"k3f9a-N0"), Some((b'N', 0)));
        assert_eq!(parse_cl_ord_id(b"nodash"), None);
        assert_eq!(parse_cl_ord_id(b"t-N"), None);
    }

    #[test]
    fn planned_times_are_evenly_spaced() {
        assert_eq!(planned_ns(0, 100_000), 0);
        assert_eq!(planned_ns(1, 100_000), 10_000);
        assert_eq!(planned_ns(3, 300_000), 10_000);
        assert_eq!(planned_ns(100_000, 100_000), 1_000_000_000);
    }

    #[test]
    fn firsts_are_reported_once() {
        let mut f = Firsts::new(130);
        assert!(f.first(129));
        assert!(!f.first(129));
        assert!(f.first(0));
        assert!(!f.first(1000));
    }

    #[test]
    fn rng_is_seeded() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng(7);
                move |_| r.below(100)
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng(7);
                move |_| r.below(100)
            })
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|&x| x < 100));
    }
}
