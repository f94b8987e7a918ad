//! `ferrox-md-bench`: the market-data publisher against the engine, on the wire.
//!
//! Every mode first builds the engine benchmarks' seeded, fill-aware workload
//! ([`ferrox_benches::generate`], preset `small` or `large`), applies its pre-fill to an engine,
//! and records the engine's output for the measured commands: each command's events and then
//! its END, as the output ring carries them. The publisher is seeded with the pre-filled books
//! exactly as `ferrox run` seeds it after a restart, so every recorded event is one its mirror
//! expects (the self-check counters are printed and must stay 0).
//!
//! - `throughput`: how fast the engine alone turns the measured commands into events
//!   (best of `--runs`, same workload, same process), how fast the publisher's pure core turns
//!   those events into packed messages (no sockets), and how fast a real [`MdServer`] does it
//!   including `decode_output` and the UDP sends to a loopback receiver (drained by a thread
//!   on the other core, or not read at all with `--receiver none`). Frames are encoded into
//!   batches of 1,024 outside the timed region, then decoded, published and flushed inside it,
//!   as `ferrox/src/marketdata.rs::run` does with each `poll(1024)`. `--server-only` runs just
//!   the last part, for profiling.
//! - `latency`: open loop at fixed event rates (`--rate`). A producer thread writes the frames
//!   into a real shared-memory output ring in /dev/shm, each command's frames stamped with its
//!   planned time (CLOCK_REALTIME, as the sequencer stamps commands; events evenly spaced). A
//!   publisher thread runs the same duty cycle as `ferrox/src/marketdata.rs::run` and sends to
//!   a loopback receiver. Event-to-wire is the time the `send_to` of the packet carrying an
//!   event returned, minus the event's planned time; event-to-receive is the time a receiver
//!   thread got the message, minus the same planned time. Because both start at the planned
//!   time, a producer or publisher that falls behind is charged for it (no coordinated
//!   omission). Also printed: the producer's lateness, how long events waited before the
//!   publisher's poll picked them up, and how long one end-of-batch flush (one `send_to`)
//!   took. `--receiver none` sends to a socket nobody reads, which takes the receiver's
//!   wake-up out of the send.
//! - `fanout`: the same open loop, but the publisher sends to a multicast group on the
//!   loopback interface (TTL 0) joined by `--subscribers` sockets on one port, read by
//!   `--receiver-threads` threads; it reports every subscriber's messages against those sent,
//!   its gaps, and the latency to receive over all subscribers.
//!
//! Threads: with two or more cores, the producer and the receivers share the first core and
//! the publisher has the last one to itself (`--no-pin` leaves placement to the scheduler).

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use ferrox_benches::{generate, Workload, WorkloadConfig};
use ferrox_marketdata::feed::{
    parse_packet, Message, PacketBuilder, PacketKind, SessionId, PACKET_BYTES_MAX,
};
use ferrox_marketdata::publisher::{
    InstrumentInfo, MessageSink, Publisher, PublisherConfig, PublisherCounters,
};
use ferrox_marketdata::recovery::RetransmitStore;
use ferrox_marketdata::server::{MdServer, ServerConfig, ServerStats};
use ferrox_protocol::{Event, EventSink, InstrumentId, PriceTicks, Side, VecSink};
use ferrox_sequencer::agents::{output_ring_path, output_ring_spec, realtime_ns};
use ferrox_sequencer::frame::{self, Origin, OUTPUT_SLOT_BYTES};
use ferrox_sequencer::ring::{Consumer, Producer, Start};
use hdrhistogram::Histogram;

// ----- command line -------------------------------------------------------------------------

#[derive(Parser)]
#[command(
    name = "ferrox-md-bench",
    about = "Market-data publisher benchmarks: throughput, latency, fan-out"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Events/s of the engine alone, of the publisher's core, and of a real MdServer sending UDP.
    Throughput(ThroughputArgs),
    /// Open loop at fixed event rates through a shared-memory ring: event-to-wire and
    /// event-to-receive latency on loopback.
    Latency(LatencyArgs),
    /// Open loop to a multicast group on loopback joined by many subscribers.
    Fanout(FanoutArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// 1 instrument, ~1,000 resting orders over ~750 levels.
    Small,
    /// 1,000 instruments, ~1,000,000 resting orders, Pareto activity.
    Large,
}

#[derive(clap::Args)]
struct WorkloadArgs {
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    /// Measured commands to generate (default: enough for the mode).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1_000..=100_000_000))]
    commands: Option<u64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The publisher's packet size limit (the exchange's default is 1,400).
    #[arg(long, default_value_t = 1_400, value_parser = clap::value_parser!(u32).range(256..=65_000))]
    packet_bytes: u32,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Do not pin threads to cores.
    #[arg(long)]
    no_pin: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReceiverArg {
    /// A thread on the other core reads and counts every packet.
    Drain,
    /// The destination socket exists but nobody reads it; the kernel drops what overflows.
    None,
}

#[derive(clap::Args)]
struct ThroughputArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Runs of each measurement (fresh engine, publisher and server each time); the best is
    /// reported with the others.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    #[arg(long, value_enum, default_value = "drain")]
    receiver: ReceiverArg,
    /// Skip the publisher-core and engine-alone measurements and run only the MdServer one
    /// (to profile it on its own; no comparison is printed then).
    #[arg(long)]
    server_only: bool,
}

#[derive(clap::Args)]
struct OpenLoopArgs {
    /// Offered engine events per second, one run each (comma-separated list).
    #[arg(long, value_delimiter = ',', default_value = "100000,500000,1000000",
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    rate: Vec<u64>,
    /// Measured seconds per rate, after the warm-up.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Seconds at the offered rate before recording starts.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// Output ring slots (a power of two; the exchange's default is 262,144).
    #[arg(long, default_value_t = 262_144, value_parser = parse_ring_slots)]
    ring_slots: usize,
}

#[derive(clap::Args)]
struct LatencyArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    open_loop: OpenLoopArgs,
    /// `none`: send to a socket nobody reads, which takes the receiver's wake-up out of the
    /// send (no event-to-receive figures then).
    #[arg(long, value_enum, default_value = "drain")]
    receiver: ReceiverArg,
}

#[derive(clap::Args)]
struct FanoutArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    open_loop: OpenLoopArgs,
    /// Subscriber sockets joined to the group.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    subscribers: u32,
    /// Threads reading the subscriber sockets (they share the first core with the producer).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    receiver_threads: u32,
    /// The multicast group (239.0.0.0/8 is administratively scoped; TTL 0 keeps it on this host).
    #[arg(long, default_value = "239.77.0.50", value_parser = parse_group)]
    group: Ipv4Addr,
}

fn parse_ring_slots(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if !(1_024..=(1 << 24)).contains(&n) || !n.is_power_of_two() {
        return Err("a power of two between 1024 and 16777216".into());
    }
    Ok(n)
}

fn parse_group(s: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = s.parse().map_err(|e| format!("{e}"))?;
    if !ip.is_multicast() {
        return Err(format!("{ip} is not a multicast address (224.0.0.0/4)"));
    }
    Ok(ip)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Throughput(a) => throughput(&a),
        Mode::Latency(a) => latency(&a),
        Mode::Fanout(a) => fanout(&a),
    };
    if let Err(e) = result {
        eprintln!("ferrox-md-bench: {e}");
        std::process::exit(1);
    }
}

// ----- machine and workload -------------------------------------------------------------------

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_machine() -> (String, usize) {
    let cpu = cpu_model();
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "machine: {cpu}, {cores} logical CPUs, load average at start {}",
        loadavg()
    );
    (cpu, cores)
}

/// Busy CPU ticks of the whole machine and of this process, from /proc (USER_HZ, 100 a second):
/// the difference between two readings says how much CPU other processes took meanwhile.
#[derive(Clone, Copy)]
struct CpuSample {
    at: Instant,
    machine: u64,
    own: u64,
}

impl CpuSample {
    fn now() -> CpuSample {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // user nice system idle iowait irq softirq steal: everything but idle and iowait.
        let machine = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .take(8)
            .enumerate()
            .filter(|(k, _)| *k != 3 && *k != 4)
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum();
        let own_stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // The command name may hold spaces; the fields after its closing parenthesis do not.
        let own = own_stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        CpuSample {
            at: Instant::now(),
            machine,
            own,
        }
    }

    /// CPUs other processes kept busy on average since `self`.
    fn others_since(&self) -> f64 {
        let now = CpuSample::now();
        let secs = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let others = (now.machine - self.machine).saturating_sub(now.own - self.own);
        others as f64 / 100.0 / secs
    }
}

/// Where the threads go: the producer and receivers on the first core, the publisher (and the
/// throughput loop) on the last. `None` when not pinning or with a single core.
struct Placement {
    shared: Option<core_affinity::CoreId>,
    publisher: Option<core_affinity::CoreId>,
}

impl Placement {
    fn new(no_pin: bool) -> Placement {
        let cores = if no_pin {
            Vec::new()
        } else {
            core_affinity::get_core_ids().unwrap_or_default()
        };
        if cores.len() < 2 {
            return Placement {
                shared: None,
                publisher: None,
            };
        }
        Placement {
            shared: cores.first().copied(),
            publisher: cores.last().copied(),
        }
    }

    fn describe(&self) -> String {
        match (self.shared, self.publisher) {
            (Some(s), Some(p)) => format!(
                "producer and receivers pinned to core {}, publisher to core {}",
                s.id, p.id
            ),
            _ => "threads not pinned".into(),
        }
    }
}

fn pin(core: Option<core_affinity::CoreId>) {
    if let Some(c) = core {
        // A failed pin only makes the figures noisier; the run itself is still valid.
        if !core_affinity::set_for_current(c) {
            eprintln!("ferrox-md-bench: could not pin a thread to core {}", c.id);
        }
    }
}

/// One output-ring frame of the measured phase: an event of command `seq`, or its END.
#[derive(Clone, Copy)]
struct Frame {
    seq: u64,
    event: Option<Event>,
}

/// The measured phase as the engine reported it, and what the publisher needs to start from
/// the pre-filled books.
struct Recording {
    preset: String,
    infos: Vec<InstrumentInfo>,
    orders_max: usize,
    seeds: Vec<(
        InstrumentId,
        ferrox_protocol::OrderId,
        Side,
        PriceTicks,
        ferrox_protocol::QtyLots,
    )>,
    last_trades: Vec<(InstrumentId, PriceTicks)>,
    frames: Vec<Frame>,
    commands: u64,
    events: u64,
}

fn preset(p: Preset) -> WorkloadConfig {
    match p {
        Preset::Small => WorkloadConfig::small(),
        Preset::Large => WorkloadConfig::large(),
    }
}

fn make_workload(args: &WorkloadArgs, default_commands: u64) -> Workload {
    let config = preset(args.preset);
    let commands = args.commands.unwrap_or(default_commands);
    let t0 = Instant::now();
    let w = generate(&config, commands as usize, args.seed);
    println!(
        "workload: preset {}, seed {}, {} pre-fill orders, {} measured commands ({} trades, {} rejects), generated in {:.1} s",
        config.name,
        args.seed,
        w.prefill.len(),
        w.measured.len(),
        w.stats.trades,
        w.stats.rejects,
        t0.elapsed().as_secs_f64()
    );
    w
}

/// Replays the measured commands on a pre-filled engine and keeps every event.
fn record(w: &Workload) -> Recording {
    let mut engine = w.prefilled_engine();
    let specs = engine.instruments();
    let infos = specs
        .iter()
        .map(|s| InstrumentInfo {
            symbol: s.symbol.clone(),
            price_decimals: s.price_decimals.min(18) as u8,
            qty_decimals: s.qty_decimals.min(18) as u8,
            tick_size: s.tick_size,
            lot_size: s.lot_size,
            status: s.status,
        })
        .collect::<Vec<_>>();
    let mut seeds = Vec::new();
    let mut last_trades = Vec::new();
    for i in 0..infos.len() {
        let instrument = InstrumentId(i as u32);
        let Some(book) = engine.book(instrument) else {
            continue;
        };
        for (side, levels) in [(Side::Buy, &book.bids), (Side::Sell, &book.asks)] {
            for level in levels {
                for o in &level.orders {
                    seeds.push((instrument, o.order_id, side, o.price, o.qty_open));
                }
            }
        }
        if let Some(price) = book.last_trade_price {
            last_trades.push((instrument, price));
        }
    }
    let mut frames = Vec::with_capacity(w.measured.len() * 5);
    let mut sink = VecSink::default();
    let mut events = 0u64;
    for cmd in &w.measured {
        engine.apply(cmd, &mut sink);
        for e in sink.events.drain(..) {
            events += 1;
            frames.push(Frame {
                seq: cmd.seq,
                event: Some(e),
            });
        }
        frames.push(Frame {
            seq: cmd.seq,
            event: None,
        });
    }
    println!(
        "recorded: {} engine events ({:.2} per command), {} resting orders seeded",
        events,
        events as f64 / w.measured.len() as f64,
        seeds.len()
    );
    Recording {
        preset: w.config.name.clone(),
        infos,
        orders_max: w.config.limits.orders_max as usize,
        seeds,
        last_trades,
        frames,
        commands: w.measured.len() as u64,
        events,
    }
}

fn publisher(rec: &Recording) -> Result<Publisher, String> {
    let mut p = Publisher::new(
        &rec.infos,
        PublisherConfig {
            depth: 10,
            orders_capacity: rec.orders_max,
            levels_capacity: 256,
        },
    );
    for &(instrument, order_id, side, price, qty) in &rec.seeds {
        p.seed_order(instrument, order_id, side, price, qty)
            .map_err(|e| format!("seeding the publisher: {e}"))?;
    }
    for &(instrument, price) in &rec.last_trades {
        p.seed_last_trade(instrument, price);
    }
    Ok(p)
}

fn session() -> SessionId {
    SessionId(*b"MDBENCH   ")
}

/// The exchange's default `marketdata.retransmit_messages`.
const RETRANSMIT_MESSAGES: usize = 262_144;

fn server(
    rec: &Recording,
    destinations: Vec<SocketAddr>,
    packet_bytes: u32,
) -> Result<MdServer, String> {
    MdServer::bind(
        ServerConfig {
            session: session(),
            destinations,
            multicast_interface: Ipv4Addr::LOCALHOST,
            multicast_ttl: 0,
            recovery_listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            packet_bytes_max: packet_bytes as usize,
            heartbeat_interval: Duration::from_secs(1),
            retransmit_messages: RETRANSMIT_MESSAGES,
            recovery_queue_bytes: 64 << 20,
            recovery_connections_max: 4,
        },
        publisher(rec)?,
    )
    .map_err(|e| format!("binding the market-data server: {e}"))
}

fn check_failures(c: &PublisherCounters) -> u64 {
    c.mirror_errors + c.delta_mismatches + c.checkpoint_mismatches
}

/// A UDP socket on 127.0.0.1 with a large receive buffer (the kernel caps it at rmem_max).
fn loopback_receiver() -> Result<UdpSocket, String> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(|e| format!("receiver socket: {e}"))?;
    let _ = s.set_recv_buffer_size(16 << 20);
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).into())
        .map_err(|e| format!("binding the receiver: {e}"))?;
    Ok(s.into())
}

// ----- histograms and JSON --------------------------------------------------------------------

fn histogram() -> Histogram<u64> {
    // 1 ns to 100 s, 3 significant digits.
    Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
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

fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

fn hist_row(label: &str, h: &Histogram<u64>) -> String {
    let mut line = format!("  {label:<24}");
    for (_, q) in QUANTILES {
        let _ = write!(line, "{:>12}", fmt_ns(quantile(h, q)));
    }
    let _ = write!(line, "{:>12}", h.len());
    line
}

fn hist_header() -> String {
    let mut line = format!("  {:<24}", "");
    for (name, _) in QUANTILES {
        let _ = write!(line, "{name:>12}");
    }
    let _ = write!(line, "{:>12}", "count");
    line
}

fn hist_json(h: &Histogram<u64>) -> String {
    let mut s = String::from("{");
    for (name, q) in QUANTILES {
        let _ = write!(s, "\"{name}_ns\": {}, ", quantile(h, q));
    }
    let _ = write!(s, "\"count\": {}}}", h.len());
    s
}

fn write_json(path: &Path, body: &str) -> Result<(), String> {
    std::fs::write(path, body).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn json_header(j: &mut String, mode: &str, cpu: &str, cores: usize, rec: &Recording) {
    let _ = writeln!(j, "  \"mode\": \"{mode}\",");
    let _ = writeln!(
        j,
        "  \"machine\": {{\"cpu\": \"{cpu}\", \"logical_cpus\": {cores}}},"
    );
    let _ = writeln!(
        j,
        "  \"workload\": {{\"preset\": \"{}\", \"commands\": {}, \"events\": {}}},",
        rec.preset, rec.commands, rec.events
    );
}

// ----- throughput ---------------------------------------------------------------------------

/// Counts events, so that the engine's throughput includes handing each event to a sink.
#[derive(Default)]
struct CountSink(u64);

impl EventSink for CountSink {
    #[inline]
    fn event(&mut self, _event: &Event) {
        self.0 += 1;
    }
}

/// Packs messages into packets and keeps them for retransmission, as the server's sink does,
/// but "sends" a full packet by only counting it: the publisher's core without sockets.
struct PackSink {
    packet: PacketBuilder,
    store: RetransmitStore,
    packets: u64,
}

impl PackSink {
    fn new(packet_bytes: u32) -> PackSink {
        PackSink {
            packet: PacketBuilder::new(session(), packet_bytes as usize),
            store: RetransmitStore::new(RETRANSMIT_MESSAGES),
            packets: 0,
        }
    }

    fn send(&mut self) {
        if self.packet.is_empty() {
            return;
        }
        std::hint::black_box(self.packet.bytes());
        self.packets += 1;
        let next = self.packet.next_seq();
        self.packet.start(next);
    }
}

impl MessageSink for PackSink {
    #[inline]
    fn message(&mut self, seq: u64, msg: &Message) {
        self.store.push(seq, msg);
        if self.packet.is_empty() {
            self.packet.start(seq);
        }
        if !self.packet.push(msg) {
            self.send();
            self.packet.start(seq);
            let pushed = self.packet.push(msg);
            debug_assert!(pushed, "an empty packet holds any one message");
        }
    }
}

const TS0: u64 = 1_800_000_000_000_000_000;

fn ts_of(seq: u64) -> u64 {
    TS0 + seq * 1_000
}

struct Run {
    secs: f64,
    messages: u64,
    packets: u64,
    bytes: u64,
    send_errors: u64,
    received_packets: u64,
    /// Packets sent over the whole run, the session's opening included, to compare with
    /// `received_packets`.
    packets_total: u64,
    check_failures: u64,
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

#[inline(never)]
fn engine_loop(w: &Workload) -> (f64, u64) {
    let mut engine = w.prefilled_engine();
    let mut sink = CountSink::default();
    let t0 = Instant::now();
    for cmd in &w.measured {
        engine.apply(cmd, &mut sink);
    }
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(&engine);
    (secs, sink.0)
}

#[inline(never)]
fn publisher_core_loop(rec: &Recording, packet_bytes: u32) -> Result<Run, String> {
    let mut p = publisher(rec)?;
    let mut sink = PackSink::new(packet_bytes);
    p.start(TS0, &mut sink);
    sink.send();
    let before = p.counters().messages;
    let packets_before = sink.packets;
    let t0 = Instant::now();
    for f in &rec.frames {
        match &f.event {
            Some(e) => p.on_event(ts_of(f.seq), f.seq, e, &mut sink),
            None => p.on_end(ts_of(f.seq), &mut sink),
        }
    }
    sink.send();
    let secs = t0.elapsed().as_secs_f64();
    Ok(Run {
        secs,
        messages: p.counters().messages - before,
        packets: sink.packets - packets_before,
        bytes: 0,
        send_errors: 0,
        received_packets: 0,
        packets_total: sink.packets,
        check_failures: check_failures(&p.counters()),
    })
}

/// Counts what arrives on `socket` until the end-of-session packet or `stop`.
fn drain(socket: UdpSocket, stop: &AtomicBool) -> u64 {
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; PACKET_BYTES_MAX];
    let mut packets = 0u64;
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                if let Ok(p) = parse_packet(&buf[..n]) {
                    match p.kind {
                        PacketKind::Messages => packets += 1,
                        PacketKind::EndOfSession => return packets,
                        PacketKind::Heartbeat => {}
                    }
                }
            }
            Err(_) if stop.load(Ordering::Relaxed) => return packets,
            Err(_) => {}
        }
    }
}

#[inline(never)]
fn server_loop(
    rec: &Recording,
    args: &ThroughputArgs,
    placement: &Placement,
) -> Result<Run, String> {
    let receiver = loopback_receiver()?;
    let dest = receiver
        .local_addr()
        .map_err(|e| format!("receiver address: {e}"))?;
    let mut server = server(rec, vec![dest], args.workload.packet_bytes)?;
    let stats = server.stats();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let drained = (args.receiver == ReceiverArg::Drain).then(|| {
            let stop = &stop;
            let core = placement.shared;
            let receiver = receiver.try_clone();
            s.spawn(move || {
                pin(core);
                receiver.map_or(0, |r| drain(r, stop))
            })
        });
        server.start(TS0);
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (m0, p0, b0, e0) = (
            g(&stats.messages),
            g(&stats.packets),
            g(&stats.bytes),
            g(&stats.send_errors),
        );
        let mut slots = vec![[0u8; OUTPUT_SLOT_BYTES]; 1_024];
        let origin = Origin {
            producer: 0,
            producer_ref: 0,
        };
        let mut secs = 0.0;
        let mut index = 0u16;
        let mut bad_frames = 0u64;
        for batch in rec.frames.chunks(1_024) {
            // The engine's side of the ring: encoding is not the publisher's work.
            for (slot, f) in slots.iter_mut().zip(batch) {
                frame::encode_output(f.seq, ts_of(f.seq), origin, index, f.event.as_ref(), slot);
                index = if f.event.is_some() { index + 1 } else { 0 };
            }
            let t0 = Instant::now();
            for slot in &slots[..batch.len()] {
                match frame::decode_output(slot) {
                    Ok(f) => match f.event {
                        Some(e) => server.on_event(f.ts_ns, f.seq, &e),
                        None => server.on_end(f.ts_ns),
                    },
                    Err(_) => bad_frames += 1,
                }
            }
            server.flush(Instant::now());
            secs += t0.elapsed().as_secs_f64();
        }
        server.end_session();
        // The receiver stops at the end-of-session packet; the flag covers its loss.
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let received_packets = drained.map_or(0, |h| h.join().unwrap_or(0));
        if bad_frames > 0 {
            return Err(format!("{bad_frames} frames did not decode"));
        }
        Ok(Run {
            secs,
            messages: g(&stats.messages) - m0,
            packets: g(&stats.packets) - p0,
            bytes: g(&stats.bytes) - b0,
            send_errors: g(&stats.send_errors) - e0,
            received_packets,
            packets_total: g(&stats.packets),
            check_failures: check_failures(&server.publisher().counters()),
        })
    })
}

fn throughput(args: &ThroughputArgs) -> Result<(), String> {
    println!("ferrox-md-bench throughput");
    let (cpu, cores) = print_machine();
    let placement = Placement::new(args.workload.no_pin);
    println!(
        "{} (this measuring thread on the publisher's core)",
        placement.describe()
    );
    pin(placement.publisher);
    let w = make_workload(&args.workload, 1_000_000);

    let measuring = CpuSample::now();
    println!("\n-- engine alone (pre-filled engine per run, events counted by the sink) --");
    let mut engine_cmds = Vec::new();
    let mut engine_events = Vec::new();
    let runs = if args.server_only { 0 } else { args.runs };
    for r in 0..runs {
        let (secs, events) = engine_loop(&w);
        engine_cmds.push(w.measured.len() as f64 / secs);
        engine_events.push(events as f64 / secs);
        println!(
            "  run {}: {:.3} s, {:.2} M commands/s, {:.2} M events/s",
            r + 1,
            secs,
            w.measured.len() as f64 / secs / 1e6,
            events as f64 / secs / 1e6
        );
    }
    let rec = record(&w);
    drop(w);

    println!("\n-- publisher core (Publisher + packing + retransmit store, no sockets) --");
    let mut core_events = Vec::new();
    let mut core_runs = Vec::new();
    for r in 0..runs {
        let run = publisher_core_loop(&rec, args.workload.packet_bytes)?;
        let eps = rec.events as f64 / run.secs;
        println!(
            "  run {}: {:.3} s, {:.2} M events/s ({:.1} ns/event, {:.1} ns/command), {:.2} M messages/s, {} packets",
            r + 1,
            run.secs,
            eps / 1e6,
            run.secs * 1e9 / rec.events as f64,
            run.secs * 1e9 / rec.commands as f64,
            run.messages as f64 / run.secs / 1e6,
            run.packets
        );
        core_events.push(eps);
        core_runs.push(run);
    }

    println!(
        "\n-- MdServer: decode_output + publish + UDP send_to 127.0.0.1 (receiver: {}) --",
        match args.receiver {
            ReceiverArg::Drain => "drained by a thread on the other core",
            ReceiverArg::None => "not read",
        }
    );
    let mut server_events = Vec::new();
    let mut server_runs = Vec::new();
    for r in 0..args.runs {
        let run = server_loop(&rec, args, &placement)?;
        let eps = rec.events as f64 / run.secs;
        println!(
            "  run {}: {:.3} s, {:.2} M events/s ({:.1} ns/event), {:.2} M messages/s, {:.0} packets/s, {:.1} MB/s; send errors {}; receiver got {} of {} packets",
            r + 1,
            run.secs,
            eps / 1e6,
            run.secs * 1e9 / rec.events as f64,
            run.messages as f64 / run.secs / 1e6,
            run.packets as f64 / run.secs,
            run.bytes as f64 / run.secs / 1e6,
            run.send_errors,
            run.received_packets,
            run.packets_total
        );
        server_events.push(eps);
        server_runs.push(run);
    }
    let failures: u64 = core_runs
        .iter()
        .chain(&server_runs)
        .map(|r| r.check_failures)
        .sum();
    let others = measuring.others_since();
    println!(
        "\nother processes used {others:.2} CPUs on average during the measurements; load average at end: {}",
        loadavg()
    );
    if args.server_only {
        return Ok(());
    }
    let engine_best = best(&engine_events);
    let server_best = best(&server_events);
    let core_best = best(&core_events);
    let ratio = server_best / engine_best;
    println!(
        "\nSummary: on this workload ({} preset, {:.2} events per command) the engine alone \
         produces at best {:.2} M events/s ({:.2} M commands/s). The publisher's core consumes \
         at best {:.2} M events/s ({:.0} ns/event) and the real MdServer, with frame decoding \
         and UDP sends of full {}-byte packets to loopback, {:.2} M events/s ({:.0} ns/event, \
         {:.0} packets/s), i.e. {:.2}x the engine's rate: the publisher {} the engine's maximum \
         sustained rate. Publisher self-check failures: {failures}.",
        rec.preset,
        rec.events as f64 / rec.commands as f64,
        engine_best / 1e6,
        best(&engine_cmds) / 1e6,
        core_best / 1e6,
        1e9 / core_best,
        args.workload.packet_bytes,
        server_best / 1e6,
        1e9 / server_best,
        server_runs
            .iter()
            .map(|r| r.packets as f64 / r.secs)
            .fold(0.0, f64::max),
        ratio,
        if ratio >= 1.0 {
            "keeps up with"
        } else {
            "does NOT keep up with"
        }
    );

    if let Some(path) = &args.workload.json {
        let mut j = String::from("{\n");
        json_header(&mut j, "throughput", &cpu, cores, &rec);
        let _ = writeln!(j, "  \"placement\": \"{}\",", placement.describe());
        let _ = writeln!(
            j,
            "  \"engine_commands_per_sec\": [{}],",
            list_raw(&engine_cmds)
        );
        let _ = writeln!(
            j,
            "  \"engine_events_per_sec\": [{}],",
            list_raw(&engine_events)
        );
        let _ = writeln!(
            j,
            "  \"publisher_core_events_per_sec\": [{}],",
            list_raw(&core_events)
        );
        let _ = writeln!(
            j,
            "  \"server_events_per_sec\": [{}],",
            list_raw(&server_events)
        );
        let runs = server_runs
            .iter()
            .map(|r| {
                format!(
                    "{{\"secs\": {:.6}, \"messages\": {}, \"packets\": {}, \"bytes\": {}, \"send_errors\": {}, \"received_packets\": {}, \"packets_total\": {}}}",
                    r.secs, r.messages, r.packets, r.bytes, r.send_errors, r.received_packets, r.packets_total
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(j, "  \"server_runs\": [{runs}],");
        let _ = writeln!(j, "  \"server_over_engine\": {ratio:.4},");
        let _ = writeln!(j, "  \"other_processes_cpus\": {others:.3},");
        let _ = writeln!(j, "  \"check_failures\": {failures}");
        j.push_str("}\n");
        write_json(path, &j)?;
    }
    Ok(())
}

fn list_raw(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ----- open loop: latency and fan-out ---------------------------------------------------------

/// What one subscriber socket saw.
#[derive(Clone, Copy, Debug, Default)]
struct SubStats {
    packets: u64,
    messages: u64,
    /// Messages whose sequence number was skipped (lost on the way or in the socket buffer).
    lost: u64,
    gaps: u64,
    /// Packets at or below what was already seen.
    stale: u64,
    bad: u64,
    heartbeats: u64,
    /// The next sequence number expected (0 before the first packet).
    next_seq: u64,
    ended: bool,
}

impl SubStats {
    fn on_packet(&mut self, bytes: &[u8], record_from: u64, hist: &mut Histogram<u64>) {
        let Ok(p) = parse_packet(bytes) else {
            self.bad += 1;
            return;
        };
        match p.kind {
            PacketKind::Heartbeat => {
                self.heartbeats += 1;
                return;
            }
            PacketKind::EndOfSession => {
                self.ended = true;
                if self.next_seq > 0 && p.seq > self.next_seq {
                    self.lost += p.seq - self.next_seq;
                    self.gaps += 1;
                }
                return;
            }
            PacketKind::Messages => {}
        }
        let now = realtime_ns();
        self.packets += 1;
        if self.next_seq > 0 {
            if p.seq > self.next_seq {
                self.lost += p.seq - self.next_seq;
                self.gaps += 1;
            } else if p.seq < self.next_seq {
                self.stale += 1;
                return;
            }
        }
        self.next_seq = p.seq + u64::from(p.count);
        for (_, msg) in p.messages() {
            self.messages += 1;
            let ts = msg.ts_ns();
            if ts >= record_from {
                hist.saturating_record(now.saturating_sub(ts).max(1));
            }
        }
    }
}

struct ReceiverResult {
    subs: Vec<SubStats>,
    hist: Histogram<u64>,
}

/// Reads every socket of one receiver thread as packets arrive (epoll through mio), until each
/// has seen the end of the session or `stop` is set.
fn receive(
    sockets: Vec<UdpSocket>,
    record_from: u64,
    stop: &AtomicBool,
) -> io::Result<ReceiverResult> {
    let mut poll = mio::Poll::new()?;
    let mut socks = Vec::with_capacity(sockets.len());
    for (k, s) in sockets.into_iter().enumerate() {
        s.set_nonblocking(true)?;
        let mut m = mio::net::UdpSocket::from_std(s);
        poll.registry()
            .register(&mut m, mio::Token(k), mio::Interest::READABLE)?;
        socks.push(m);
    }
    let mut subs = vec![SubStats::default(); socks.len()];
    let mut hist = histogram();
    let mut events = mio::Events::with_capacity(1_024);
    let mut buf = vec![0u8; PACKET_BYTES_MAX];
    let mut ended = 0usize;
    while ended < socks.len() {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if events.is_empty() && stop.load(Ordering::Relaxed) {
            break;
        }
        for ev in events.iter() {
            let k = ev.token().0;
            // Edge-triggered: read until the socket is empty.
            loop {
                match socks[k].recv(&mut buf) {
                    Ok(n) => {
                        let was_ended = subs[k].ended;
                        subs[k].on_packet(&buf[..n], record_from, &mut hist);
                        if subs[k].ended && !was_ended {
                            ended += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(ReceiverResult { subs, hist })
}

struct OpenLoopResult {
    rate: u64,
    /// CPUs other processes kept busy on average during the run.
    others_cpus: f64,
    /// Planned span of the recorded commands, in seconds.
    measured_secs: f64,
    /// From the start of the recorded window to the moment its last event went out: the
    /// achieved rate is `events / wire_secs`.
    wire_secs: f64,
    /// Events and commands published in the recorded window.
    events: u64,
    commands: u64,
    /// The stream ended before the planned duration.
    ran_out: bool,
    /// When the producer finished publishing a command, minus its planned time.
    producer_late: Histogram<u64>,
    /// Times the producer found the ring full.
    ring_full: u64,
    wire: Histogram<u64>,
    pickup: Histogram<u64>,
    send: Histogram<u64>,
    receive: Histogram<u64>,
    subs: Vec<SubStats>,
    /// Feed messages sent over the whole run (session opening included).
    messages_sent: u64,
    packets_sent: u64,
    bytes_sent: u64,
    send_errors: u64,
    /// Messages the publisher emitted while the recorded window's commands were published:
    /// the first and last sequence numbers of the window.
    window_seqs: (u64, u64),
    check_failures: u64,
    /// Publisher polls that found frames, and frames per such poll.
    busy_polls: u64,
    frames_polled: u64,
}

struct OpenLoopSetup<'a> {
    rec: &'a Recording,
    rate: u64,
    seconds: u64,
    warmup: u64,
    ring_slots: usize,
    packet_bytes: u32,
    destinations: Vec<SocketAddr>,
    /// The subscriber sockets, one list per receiver thread.
    receivers: Vec<Vec<UdpSocket>>,
    placement: &'a Placement,
}

/// Removes the ring file when the run ends, however it ends.
struct RingFile(PathBuf);

impl Drop for RingFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct ProducerResult {
    commands: u64,
    events: u64,
    late: Histogram<u64>,
    ring_full: u64,
    ran_out: bool,
    last_planned: u64,
}

/// The engine's side: publishes each command's frames at its planned time, open loop.
fn produce(
    rec: &Recording,
    mut ring: Producer,
    t0: u64,
    record_from: u64,
    end: u64,
    rate: u64,
) -> ProducerResult {
    let ns_per_event = 1e9 / rate as f64;
    let origin = Origin {
        producer: 0,
        producer_ref: 0,
    };
    let mut buf = [0u8; OUTPUT_SLOT_BYTES];
    let mut late = histogram();
    let mut events_before = 0u64;
    let mut commands = 0u64;
    let mut events = 0u64;
    let mut ring_full = 0u64;
    let mut k = 0usize;
    let mut last_planned = t0;
    let frames = &rec.frames;
    while k < frames.len() {
        let planned = t0 + (events_before as f64 * ns_per_event) as u64;
        if planned >= end {
            return ProducerResult {
                commands,
                events,
                late,
                ring_full,
                ran_out: false,
                last_planned,
            };
        }
        // Waits for the planned time. Far from it, the thread yields, so that the receiver
        // sharing this core runs at once when a packet arrives; the last microseconds are spun.
        loop {
            let now = realtime_ns();
            if now >= planned {
                break;
            }
            if planned - now > 3_000 {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let seq = frames[k].seq;
        let mut index = 0u16;
        let recorded = planned >= record_from;
        loop {
            let f = &frames[k];
            frame::encode_output(seq, planned, origin, index, f.event.as_ref(), &mut buf);
            while ring.try_publish(&buf).is_err() {
                // The publisher is a whole ring behind: this is counted, and the delay is
                // charged to the latency of every later event through its planned time.
                ring_full += 1;
                thread::yield_now();
            }
            k += 1;
            index = index.wrapping_add(1);
            if f.event.is_none() {
                break;
            }
            events_before += 1;
            if recorded {
                events += 1;
            }
        }
        if recorded {
            commands += 1;
            late.saturating_record(realtime_ns().saturating_sub(planned).max(1));
        }
        last_planned = planned;
    }
    ProducerResult {
        commands,
        events,
        late,
        ring_full,
        ran_out: true,
        last_planned,
    }
}

struct PublisherResult {
    wire: Histogram<u64>,
    /// From an event's planned time to the moment the publisher's poll picked it up.
    pickup: Histogram<u64>,
    /// How long one end-of-batch flush took (one UDP send per destination).
    send: Histogram<u64>,
    busy_polls: u64,
    frames_polled: u64,
    bad_frames: u64,
    check_failures: u64,
    window_seqs: (u64, u64),
    /// When the last event of the recorded window went out.
    last_wire_ns: u64,
}

/// The publisher's thread, as `ferrox/src/marketdata.rs::run` runs it, plus the event-to-wire
/// measurement: the planned times of the events handed to the server since the last packet
/// went out wait in `pending`; when a send completes (the server's packet counter moved, or a
/// batch ended with a flush) the clock is read once and each of them is recorded.
fn publish(
    mut server: MdServer,
    mut consumer: Consumer,
    record_from: u64,
    producer_done: &AtomicBool,
) -> Result<PublisherResult, String> {
    let stats: Arc<ServerStats> = server.stats();
    server.start(realtime_ns());
    let mut wire = histogram();
    let mut pending: Vec<u64> = Vec::with_capacity(4_096);
    let mut idle = 0u32;
    let mut bad_frames = 0u64;
    let mut busy_polls = 0u64;
    let mut frames_polled = 0u64;
    let mut window_first = 0u64;
    let small_machine = thread::available_parallelism().map_or(true, |n| n.get() < 4);
    let mut last_wire_ns = 0u64;
    let mut pickup = histogram();
    let mut send = histogram();
    let record = |pending: &mut Vec<u64>, wire: &mut Histogram<u64>, last: &mut u64, now: u64| {
        for &ts in pending.iter() {
            if ts >= record_from {
                wire.saturating_record(now.saturating_sub(ts).max(1));
                *last = now;
            }
        }
        pending.clear();
    };
    loop {
        // The clock is read once per batch, at its first frame: how long the batch's events
        // waited before the publisher saw them (in the ring, or for the thread to come round).
        let mut batch_clock = 0u64;
        let polled = consumer.poll(1024, |_, slot| match frame::decode_output(slot) {
            Ok(f) => {
                if batch_clock == 0 {
                    batch_clock = realtime_ns();
                }
                let sent = stats.packets.load(Ordering::Relaxed);
                if window_first == 0 && f.ts_ns >= record_from {
                    window_first = server.publisher().next_seq();
                }
                match f.event {
                    Some(e) => server.on_event(f.ts_ns, f.seq, &e),
                    None => server.on_end(f.ts_ns),
                }
                // A packet filled up and went out during this frame: it carried the messages
                // of the events before this one (this one's start the next packet).
                if stats.packets.load(Ordering::Relaxed) != sent {
                    record(&mut pending, &mut wire, &mut last_wire_ns, realtime_ns());
                }
                if f.event.is_some() {
                    pending.push(f.ts_ns);
                    if f.ts_ns >= record_from {
                        pickup.saturating_record(batch_clock.saturating_sub(f.ts_ns).max(1));
                    }
                }
            }
            Err(_) => bad_frames += 1,
        });
        let n =
            polled.map_err(|_| "the publisher was detached from the output ring".to_string())?;
        let now = Instant::now();
        if n > 0 {
            busy_polls += 1;
            frames_polled += n as u64;
            idle = 0;
            let sent = stats.packets.load(Ordering::Relaxed);
            let before = realtime_ns();
            server.flush(now);
            let after = realtime_ns();
            if stats.packets.load(Ordering::Relaxed) != sent {
                send.saturating_record(after.saturating_sub(before).max(1));
            }
            record(&mut pending, &mut wire, &mut last_wire_ns, after);
            continue;
        }
        if producer_done.load(Ordering::Acquire) && consumer.available() == 0 {
            break;
        }
        server.idle(now);
        consumer.heartbeat();
        idle = idle.saturating_add(1);
        if idle > 20_000 && small_machine {
            thread::sleep(Duration::from_micros(200));
        } else if idle > 100 {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    let window_last = server.publisher().next_seq() - 1;
    server.end_session();
    Ok(PublisherResult {
        wire,
        pickup,
        send,
        busy_polls,
        frames_polled,
        bad_frames,
        check_failures: check_failures(&server.publisher().counters()),
        window_seqs: (window_first, window_last),
        last_wire_ns,
    })
}

fn open_loop(setup: OpenLoopSetup<'_>) -> Result<OpenLoopResult, String> {
    let cpu = CpuSample::now();
    let rec = setup.rec;
    let name = format!("ferrox-md-bench-{}-{}", std::process::id(), setup.rate);
    let path = output_ring_path(Path::new("/dev/shm"), &name);
    let spec = output_ring_spec(setup.ring_slots, 1).map_err(|e| format!("ring spec: {e}"))?;
    let ring =
        Producer::create(&path, spec).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let _cleanup = RingFile(path.clone());
    let consumer = Consumer::attach(&path, spec, 0, Start::Producer)
        .map_err(|e| format!("attaching to {}: {e}", path.display()))?;
    let server = server(rec, setup.destinations.clone(), setup.packet_bytes)?;
    let stats = server.stats();

    // The first command is planned a little after the threads start, so that all are running.
    let t0 = realtime_ns() + 100_000_000;
    let record_from = t0 + setup.warmup * 1_000_000_000;
    let end = record_from + setup.seconds * 1_000_000_000;
    let producer_done = AtomicBool::new(false);
    let stop_receivers = AtomicBool::new(false);
    let placement = setup.placement;

    // Threads are named so that a profile (`perf report --comm md-publisher`) can single them
    // out. A thread that cannot start ends the run: the ones already started are told to stop,
    // so that the scope can join them.
    let spawn_error = |e: io::Error| {
        producer_done.store(true, Ordering::Release);
        stop_receivers.store(true, Ordering::Relaxed);
        format!("starting a thread: {e}")
    };
    let (produced, published, received) = thread::scope(|s| {
        let mut receivers = Vec::new();
        for (k, sockets) in setup.receivers.into_iter().enumerate() {
            let stop = &stop_receivers;
            let core = placement.shared;
            let handle = thread::Builder::new()
                .name(format!("md-receiver-{k}"))
                .spawn_scoped(s, move || {
                    pin(core);
                    receive(sockets, record_from, stop)
                })
                .map_err(spawn_error)?;
            receivers.push(handle);
        }
        let done = &producer_done;
        let publisher = thread::Builder::new()
            .name("md-publisher".into())
            .spawn_scoped(s, move || {
                pin(placement.publisher);
                publish(server, consumer, record_from, done)
            })
            .map_err(spawn_error)?;
        let producer = thread::Builder::new()
            .name("md-producer".into())
            .spawn_scoped(s, move || {
                pin(placement.shared);
                let r = produce(rec, ring, t0, record_from, end, setup.rate);
                done.store(true, Ordering::Release);
                r
            })
            .map_err(spawn_error)?;
        let produced = producer.join();
        let published = publisher.join();
        // The receivers stop at the end-of-session packet; this covers its loss.
        thread::sleep(Duration::from_millis(300));
        stop_receivers.store(true, Ordering::Relaxed);
        let received = receivers.into_iter().map(|h| h.join()).collect::<Vec<_>>();
        Ok::<_, String>((produced, published, received))
    })?;
    let produced = produced.map_err(|_| "the producer thread panicked".to_string())?;
    let published = published.map_err(|_| "the publisher thread panicked".to_string())??;
    let mut subs = Vec::new();
    let mut receive_hist = histogram();
    for r in received {
        let r = r
            .map_err(|_| "a receiver thread panicked".to_string())?
            .map_err(|e| format!("receiver: {e}"))?;
        subs.extend(r.subs);
        receive_hist
            .add(&r.hist)
            .map_err(|e| format!("merging histograms: {e}"))?;
    }
    if published.bad_frames > 0 {
        return Err(format!("{} frames did not decode", published.bad_frames));
    }
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let measured_secs = if produced.ran_out {
        (produced.last_planned.saturating_sub(record_from)) as f64 / 1e9
    } else {
        setup.seconds as f64
    };
    Ok(OpenLoopResult {
        rate: setup.rate,
        others_cpus: cpu.others_since(),
        measured_secs,
        wire_secs: published.last_wire_ns.saturating_sub(record_from) as f64 / 1e9,
        events: produced.events,
        commands: produced.commands,
        ran_out: produced.ran_out,
        producer_late: produced.late,
        ring_full: produced.ring_full,
        wire: published.wire,
        pickup: published.pickup,
        send: published.send,
        receive: receive_hist,
        subs,
        messages_sent: g(&stats.messages),
        packets_sent: g(&stats.packets),
        bytes_sent: g(&stats.bytes),
        send_errors: g(&stats.send_errors),
        window_seqs: published.window_seqs,
        check_failures: published.check_failures,
        busy_polls: published.busy_polls,
        frames_polled: published.frames_polled,
    })
}

/// Default length of the stream: enough events for the highest rate's warm-up and
/// measurement, at the small preset's 3.8 events per command, with some to spare.
fn commands_for(o: &OpenLoopArgs) -> u64 {
    let rate = o.rate.iter().copied().max().unwrap_or(1);
    let events = rate.saturating_mul(o.seconds + o.warmup) as f64;
    ((events / 3.5) as u64 + 10_000).clamp(1_000, 100_000_000)
}

/// Events of the recorded window per second from its start until the last of them was sent.
fn achieved(r: &OpenLoopResult) -> f64 {
    r.events as f64 / r.wire_secs.max(r.measured_secs).max(1e-9)
}

fn print_open_loop(r: &OpenLoopResult, fanout: bool) {
    let received: u64 = r.subs.iter().map(|s| s.messages).sum();
    let lost: u64 = r.subs.iter().map(|s| s.lost).sum();
    println!(
        "\n-- offered {} events/s: {} events in {} commands planned over {:.2} s, all on the wire after {:.2} s ({:.0} events/s achieved){} --",
        r.rate,
        r.events,
        r.commands,
        r.measured_secs,
        r.wire_secs,
        achieved(r),
        if r.ran_out {
            "; the recorded stream ran out early"
        } else {
            ""
        }
    );
    println!(
        "publisher: {} messages in {} packets ({:.1} messages/packet, {:.0} bytes/packet), {} send errors, {} self-check failures; {} busy polls, {:.1} frames per busy poll; ring full {} times",
        r.messages_sent,
        r.packets_sent,
        r.messages_sent as f64 / r.packets_sent.max(1) as f64,
        r.bytes_sent as f64 / r.packets_sent.max(1) as f64,
        r.send_errors,
        r.check_failures,
        r.busy_polls,
        r.frames_polled as f64 / r.busy_polls.max(1) as f64,
        r.ring_full
    );
    println!(
        "other processes used {:.2} CPUs on average during this run",
        r.others_cpus
    );
    println!("{}", hist_header());
    println!("{}", hist_row("producer lateness", &r.producer_late));
    println!("{}", hist_row("event to pickup", &r.pickup));
    println!("{}", hist_row("end-of-batch send", &r.send));
    println!("{}", hist_row("event to wire", &r.wire));
    println!("{}", hist_row("event to receive", &r.receive));
    if fanout {
        let min = r.subs.iter().map(|s| s.messages).min().unwrap_or(0);
        let max = r.subs.iter().map(|s| s.messages).max().unwrap_or(0);
        let with_loss = r.subs.iter().filter(|s| s.lost > 0).count();
        println!(
            "subscribers: {}; messages received per subscriber min {min}, max {max} of {} sent; {} subscribers lost messages, {lost} messages lost in total ({:.3}% of {} expected)",
            r.subs.len(),
            r.messages_sent,
            with_loss,
            lost as f64 * 100.0 / (r.messages_sent * r.subs.len() as u64).max(1) as f64,
            r.messages_sent * r.subs.len() as u64
        );
    } else if r.subs.is_empty() {
        println!("receiver: none (the destination socket was not read)");
    } else {
        println!(
            "receiver: {received} of {} messages, {lost} lost",
            r.messages_sent
        );
    }
}

fn open_loop_json(r: &OpenLoopResult) -> String {
    let lost: u64 = r.subs.iter().map(|s| s.lost).sum();
    let received: Vec<String> = r.subs.iter().map(|s| s.messages.to_string()).collect();
    let lost_each: Vec<String> = r.subs.iter().map(|s| s.lost.to_string()).collect();
    format!(
        "{{\"rate\": {}, \"other_processes_cpus\": {:.3}, \"measured_secs\": {:.3}, \"wire_secs\": {:.3}, \"achieved_events_per_sec\": {:.0}, \"events\": {}, \"commands\": {}, \"ran_out\": {}, \
         \"messages_sent\": {}, \"packets_sent\": {}, \"bytes_sent\": {}, \"send_errors\": {}, \
         \"check_failures\": {}, \"ring_full\": {}, \"busy_polls\": {}, \"frames_polled\": {}, \
         \"window_seqs\": [{}, {}], \
         \"producer_late\": {}, \"event_to_pickup\": {}, \"end_of_batch_send\": {}, \
         \"event_to_wire\": {}, \"event_to_receive\": {}, \
         \"lost_total\": {lost}, \"received_per_subscriber\": [{}], \"lost_per_subscriber\": [{}]}}",
        r.rate,
        r.others_cpus,
        r.measured_secs,
        r.wire_secs,
        achieved(r),
        r.events,
        r.commands,
        r.ran_out,
        r.messages_sent,
        r.packets_sent,
        r.bytes_sent,
        r.send_errors,
        r.check_failures,
        r.ring_full,
        r.busy_polls,
        r.frames_polled,
        r.window_seqs.0,
        r.window_seqs.1,
        hist_json(&r.producer_late),
        hist_json(&r.pickup),
        hist_json(&r.send),
        hist_json(&r.wire),
        hist_json(&r.receive),
        received.join(", "),
        lost_each.join(", ")
    )
}

fn latency(args: &LatencyArgs) -> Result<(), String> {
    println!("ferrox-md-bench latency");
    let (cpu, cores) = print_machine();
    let placement = Placement::new(args.workload.no_pin);
    println!("{}", placement.describe());
    let o = &args.open_loop;
    let w = make_workload(&args.workload, commands_for(o));
    let rec = record(&w);
    drop(w);
    let mut results = Vec::new();
    for &rate in &o.rate {
        let receiver = loopback_receiver()?;
        let dest = receiver
            .local_addr()
            .map_err(|e| format!("receiver address: {e}"))?;
        // With `--receiver none` the socket stays open here, unread, until the run is over.
        let (receivers, _unread) = match args.receiver {
            ReceiverArg::Drain => (vec![vec![receiver]], None),
            ReceiverArg::None => (Vec::new(), Some(receiver)),
        };
        let r = open_loop(OpenLoopSetup {
            rec: &rec,
            rate,
            seconds: o.seconds,
            warmup: o.warmup,
            ring_slots: o.ring_slots,
            packet_bytes: args.workload.packet_bytes,
            destinations: vec![dest],
            receivers,
            placement: &placement,
        })?;
        print_open_loop(&r, false);
        results.push(r);
    }
    println!("\nload average at end: {}", loadavg());
    let mut summary = format!(
        "\nSummary: open loop through a shared-memory output ring to one loopback UDP socket ({});",
        match args.receiver {
            ReceiverArg::Drain => "read by a receiver thread",
            ReceiverArg::None => "not read",
        }
    );
    for r in &results {
        let receive = if r.subs.is_empty() {
            String::new()
        } else {
            format!(
                " and event-to-receive p50 {} / p99 {}{}",
                fmt_ns(quantile(&r.receive, 0.5)),
                fmt_ns(quantile(&r.receive, 0.99)),
                if r.subs.iter().any(|s| s.lost > 0) {
                    ", with losses"
                } else {
                    ""
                }
            )
        };
        let _ = write!(
            summary,
            " at {} events/s offered ({:.0} achieved) event-to-wire p50 {} / p99 {} / max {}{receive};",
            r.rate,
            achieved(r),
            fmt_ns(quantile(&r.wire, 0.5)),
            fmt_ns(quantile(&r.wire, 0.99)),
            fmt_ns(quantile(&r.wire, 1.0)),
        );
    }
    let met = results
        .iter()
        .all(|r| quantile(&r.wire, 0.99) < 5_000 && !r.ran_out);
    let _ = write!(
        summary,
        " the target p99 event-to-wire under 5 µs is {} at every rate run.",
        if met { "met" } else { "NOT met" }
    );
    println!("{summary}");
    if let Some(path) = &args.workload.json {
        let mut j = String::from("{\n");
        json_header(&mut j, "latency", &cpu, cores, &rec);
        let _ = writeln!(j, "  \"placement\": \"{}\",", placement.describe());
        let _ = writeln!(
            j,
            "  \"receiver\": \"{}\",",
            match args.receiver {
                ReceiverArg::Drain => "drain",
                ReceiverArg::None => "none",
            }
        );
        let _ = writeln!(
            j,
            "  \"seconds\": {}, \"warmup\": {}, \"ring_slots\": {},",
            o.seconds, o.warmup, o.ring_slots
        );
        let runs = results.iter().map(open_loop_json).collect::<Vec<_>>();
        let _ = writeln!(j, "  \"runs\": [\n    {}\n  ]", runs.join(",\n    "));
        j.push_str("}\n");
        write_json(path, &j)?;
    }
    Ok(())
}

/// `n` sockets bound to one port on every address, with SO_REUSEADDR, each joined to `group`
/// on the loopback interface: each gets its own copy of every packet sent to the group.
fn group_members(group: Ipv4Addr, n: u32) -> Result<(u16, Vec<UdpSocket>), String> {
    let mut port = 0u16;
    let mut sockets = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(|e| format!("subscriber socket: {e}"))?;
        s.set_reuse_address(true)
            .map_err(|e| format!("SO_REUSEADDR: {e}"))?;
        let _ = s.set_recv_buffer_size(16 << 20);
        s.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port).into())
            .map_err(|e| format!("binding a subscriber to port {port}: {e}"))?;
        if port == 0 {
            port = s
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.port())
                .ok_or("subscriber port")?;
        }
        s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
            .map_err(|e| format!("joining {group} on 127.0.0.1: {e}"))?;
        sockets.push(s.into());
    }
    Ok((port, sockets))
}

fn fanout(args: &FanoutArgs) -> Result<(), String> {
    println!("ferrox-md-bench fanout");
    let (cpu, cores) = print_machine();
    let placement = Placement::new(args.workload.no_pin);
    println!(
        "{}; {} subscribers on group {} read by {} receiver thread(s)",
        placement.describe(),
        args.subscribers,
        args.group,
        args.receiver_threads
    );
    let o = &args.open_loop;
    let w = make_workload(&args.workload, commands_for(o));
    let rec = record(&w);
    drop(w);
    let mut results = Vec::new();
    for &rate in &o.rate {
        let (port, sockets) = group_members(args.group, args.subscribers)?;
        let threads = args.receiver_threads.min(args.subscribers) as usize;
        let mut receivers: Vec<Vec<UdpSocket>> = (0..threads).map(|_| Vec::new()).collect();
        for (k, s) in sockets.into_iter().enumerate() {
            receivers[k % threads].push(s);
        }
        let r = open_loop(OpenLoopSetup {
            rec: &rec,
            rate,
            seconds: o.seconds,
            warmup: o.warmup,
            ring_slots: o.ring_slots,
            packet_bytes: args.workload.packet_bytes,
            destinations: vec![SocketAddr::V4(SocketAddrV4::new(args.group, port))],
            receivers,
            placement: &placement,
        })?;
        print_open_loop(&r, true);
        results.push(r);
    }
    println!("\nload average at end: {}", loadavg());
    let mut summary = format!(
        "\nSummary: multicast to {} subscribers on loopback ({} receiver thread(s) sharing a core with the producer);",
        args.subscribers, args.receiver_threads
    );
    for r in &results {
        let expected = r.messages_sent * r.subs.len() as u64;
        let lost: u64 = r.subs.iter().map(|s| s.lost).sum();
        let _ = write!(
            summary,
            " at {} events/s the publisher sent {} messages in {} packets ({} send errors); subscribers received {:.3}% of the {} copies ({} lost); latency to receive over all subscribers p50 {} / p99 {} / max {}, event-to-wire p99 {};",
            r.rate,
            r.messages_sent,
            r.packets_sent,
            r.send_errors,
            (expected - lost.min(expected)) as f64 * 100.0 / expected.max(1) as f64,
            expected,
            lost,
            fmt_ns(quantile(&r.receive, 0.5)),
            fmt_ns(quantile(&r.receive, 0.99)),
            fmt_ns(quantile(&r.receive, 1.0)),
            fmt_ns(quantile(&r.wire, 0.99)),
        );
    }
    println!("{summary}");
    if let Some(path) = &args.workload.json {
        let mut j = String::from("{\n");
        json_header(&mut j, "fanout", &cpu, cores, &rec);
        let _ = writeln!(j, "  \"placement\": \"{}\",", placement.describe());
        let _ = writeln!(
            j,
            "  \"subscribers\": {}, \"receiver_threads\": {}, \"group\": \"{}\",",
            args.subscribers, args.receiver_threads, args.group
        );
        let _ = writeln!(
            j,
            "  \"seconds\": {}, \"warmup\": {}, \"ring_slots\": {},",
            o.seconds, o.warmup, o.ring_slots
        );
        let runs = results.iter().map(open_loop_json).collect::<Vec<_>>();
        let _ = writeln!(j, "  \"runs\": [\n    {}\n  ]", runs.join(",\n    "));
        j.push_str("}\n");
        write_json(path, &j)?;
    }
    Ok(())
}
