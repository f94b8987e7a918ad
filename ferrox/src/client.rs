//! Producers on the rings: the remote console of `ferrox run` and the seeded load generator
//! of `ferrox load` (multi-process mode, crash tests, pipeline latency).
//!
//! A producer owns input ring `k` (it creates the file) and reads the output ring as consumer
//! `k`. It sends frames with strictly increasing `producer_ref`s and treats the END frame of a
//! ref as its acknowledgement. If the exchange dies, the producer's ring fills and it sees
//! back-pressure; the restarted sequencer attaches at the producer's current position, so
//! frames that were never sequenced are dropped (never acknowledged), and nothing is
//! sequenced twice.

use ferrox_engine::{
    AccountId, Cancel, ClientOrderId, Command, Event, InstrumentId, InstrumentSpec, NewOrder,
    OrderId, OrderType, PriceTicks, QtyLots, Side, StpGroup, StpMode, TimeInForce,
};
use ferrox_sequencer::agents::{
    input_ring_path, input_ring_spec, output_ring_path, output_ring_spec,
};
use ferrox_sequencer::frame::{self, Origin, OutputFrame, INPUT_SLOT_BYTES};
use ferrox_sequencer::ring::{Consumer, PeerStatus, Producer, Start};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::exchange::ExchangeConfig;

/// One producer's connection to the exchange's rings.
pub struct RingClient {
    pub producer: u32,
    input: Producer,
    output: Option<Consumer>,
    output_path: PathBuf,
    config_output_slots: usize,
    config_consumers: usize,
    next_ref: u64,
}

impl RingClient {
    /// Creates input ring `producer` and waits (up to `timeout`) for the sequencer to attach.
    pub fn connect(
        config: &ExchangeConfig,
        producer: u32,
        timeout: Duration,
    ) -> Result<RingClient, String> {
        let x = &config.exchange;
        if producer >= x.producers_max || producer as usize >= x.output_consumers_max {
            return Err(format!(
                "producer {producer} is outside producers_max {} / output_consumers_max {}",
                x.producers_max, x.output_consumers_max
            ));
        }
        let path = input_ring_path(&x.ring_dir, &x.name, producer);
        let spec = input_ring_spec(x.input_ring_slots).map_err(|e| e.to_string())?;
        let input = Producer::create(&path, spec)
            .map_err(|e| format!("cannot create input ring {}: {e}", path.display()))?;
        let mut client = RingClient {
            producer,
            input,
            output: None,
            output_path: output_ring_path(&x.ring_dir, &x.name),
            config_output_slots: x.output_ring_slots,
            config_consumers: x.output_consumers_max,
            next_ref: 1,
        };
        let started = Instant::now();
        while !client.connected() {
            if started.elapsed() > timeout {
                return Err(format!(
                    "no exchange attached to {} within {:?} (is `ferrox engine` running with the same ring_dir and name?)",
                    path.display(),
                    timeout
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(client)
    }

    /// Whether the sequencer reads our ring and we read a live output ring; re-attaches the
    /// output ring after an exchange restart.
    pub fn connected(&mut self) -> bool {
        let alive =
            |c: &Consumer| matches!(c.producer_status(Duration::from_secs(5)), PeerStatus::Alive);
        if self.output.as_ref().is_some_and(|c| !alive(c)) {
            self.output = None;
        }
        if self.output.is_none() {
            if let Ok(spec) = output_ring_spec(self.config_output_slots, self.config_consumers) {
                self.output = Consumer::attach(
                    &self.output_path,
                    spec,
                    self.producer as usize,
                    Start::Producer,
                )
                .ok()
                .filter(alive);
            }
        }
        self.input.heartbeat();
        self.output.is_some() && self.input.attached_consumers() > 0
    }

    /// Publishes `command`; returns its `producer_ref`, or `None` under back-pressure.
    pub fn try_send(&mut self, command: &Command) -> Option<u64> {
        let producer_ref = self.next_ref;
        let mut slot = [0u8; INPUT_SLOT_BYTES];
        frame::encode_input(
            Origin {
                producer: self.producer,
                producer_ref,
            },
            command,
            &mut slot,
        );
        self.input.try_publish(&slot).ok()?;
        self.next_ref += 1;
        Some(producer_ref)
    }

    /// Hands every available output frame meant for this producer to `f`.
    pub fn poll(&mut self, mut f: impl FnMut(&OutputFrame)) -> usize {
        let producer = self.producer;
        let Some(output) = self.output.as_mut() else {
            return 0;
        };
        let mut mine = 0;
        let polled = output.poll(4096, |_, slot| {
            if let Ok(frame) = frame::decode_output(slot) {
                if frame.origin.producer == producer {
                    mine += 1;
                    f(&frame);
                }
            }
        });
        if polled.is_err() {
            self.output = None;
        }
        mine
    }
}

/// The remote console: reads lines, sends commands, prints this console's events.
/// Operator commands for the FIX gateway: `kill ACCOUNT`, `unkill ACCOUNT`, `logout COMPID`.
/// Returns `None` for any other line.
fn gateway_command(
    line: &str,
    operator: Option<&crossbeam_channel::Sender<ferrox_gateway::server::Operator>>,
) -> Option<String> {
    use ferrox_gateway::server::Operator;
    let mut words = line.split_whitespace();
    let verb = words.next()?;
    let arg = words.next();
    let op = match (verb, arg) {
        ("kill" | "unkill", Some(a)) => match a.parse::<u32>() {
            Ok(account) => Operator::KillSwitch {
                account,
                on: verb == "kill",
            },
            Err(_) => return Some(format!("error: {verb} needs an account number, not {a:?}")),
        },
        ("logout", Some(comp_id)) => Operator::Logout {
            comp_id: comp_id.to_string(),
        },
        ("kill" | "unkill" | "logout", None) => {
            return Some(format!("error: {verb} needs an argument"))
        }
        _ => return None,
    };
    let Some(tx) = operator else {
        return Some("error: no FIX gateway runs in this exchange".to_string());
    };
    Some(match tx.try_send(op) {
        Ok(()) => format!("sent to the gateway: {}", line.trim()),
        Err(_) => "error: the gateway is not taking operator commands".to_string(),
    })
}

pub fn remote_console(
    config: &ExchangeConfig,
    stop: &AtomicBool,
    interactive: bool,
    operator: Option<&crossbeam_channel::Sender<ferrox_gateway::server::Operator>>,
) -> Result<(), String> {
    let mut client = RingClient::connect(config, 0, Duration::from_secs(10))?;
    let mut console = crate::console::Console::remote(config.engine.instruments.clone());
    let mut out = std::io::stdout();
    // stdin is read on a thread of its own, so that this loop keeps draining the output ring
    // while nobody types: the console is a consumer of that ring, and a consumer that stops
    // reading holds the engine back once the ring is full.
    let (line_tx, line_rx) = crossbeam_channel::bounded::<Option<String>>(1);
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<()>(1);
    std::thread::Builder::new()
        .name("ferrox-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            loop {
                if interactive {
                    let mut out = std::io::stdout();
                    let _ = write!(out, "ferrox> ");
                    let _ = out.flush();
                }
                let mut line = String::new();
                let read = stdin.read_line(&mut line);
                let eof = matches!(read, Ok(0) | Err(_));
                if line_tx.send((!eof).then_some(line)).is_err() || eof {
                    return;
                }
                // Wait until the line's output is printed before showing the next prompt.
                if ready_rx.recv().is_err() {
                    return;
                }
            }
        })
        .map_err(|e| e.to_string())?;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let line = match line_rx.recv_timeout(Duration::from_millis(1)) {
            Ok(Some(line)) => line,
            Ok(None) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                while client.poll(|f| {
                    if let Some(e) = &f.event {
                        console.observe(e);
                    }
                }) > 0
                {}
                continue;
            }
        };
        let keep_going = console_line(&mut client, &mut console, &mut out, &line, stop, operator);
        let _ = ready_tx.send(());
        if !keep_going {
            return Ok(());
        }
    }
}

/// Handles one console line; false when the console should end.
fn console_line(
    client: &mut RingClient,
    console: &mut crate::console::Console,
    out: &mut std::io::Stdout,
    line: &str,
    stop: &AtomicBool,
    operator: Option<&crossbeam_channel::Sender<ferrox_gateway::server::Operator>>,
) -> bool {
    if let Some(reply) = gateway_command(line, operator) {
        let _ = writeln!(out, "{reply}");
        return true;
    }
    match console.parse(line) {
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
        }
        Ok(crate::console::Line::Quit) => {
            stop.store(true, Ordering::Release);
            return false;
        }
        Ok(crate::console::Line::Command(command)) => {
            console.note_command(&command);
            let Some(producer_ref) = client.try_send(&command) else {
                let _ = writeln!(
                    out,
                    "error: the exchange is not keeping up (input ring full)"
                );
                return true;
            };
            let started = Instant::now();
            let mut done = false;
            while !done && started.elapsed() < Duration::from_secs(5) {
                client.poll(|f| {
                    if let Some(e) = &f.event {
                        console.observe(e);
                        if f.origin.producer == 0 {
                            let _ = writeln!(out, "{}", console.render_event(e));
                        }
                    } else if f.origin.producer_ref == producer_ref && f.origin.producer == 0 {
                        done = true;
                    }
                });
                if !done {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            if !done {
                let _ = writeln!(out, "error: no acknowledgement within 5 s");
            }
        }
        Ok(other) => {
            // Help, instruments and the like need no exchange.
            if let Some(text) = console.handle_local(other) {
                let _ = writeln!(out, "{text}");
            }
        }
    }
    true
}

/// Options of `ferrox load`.
pub struct LoadOptions {
    pub producer: u32,
    pub commands: u64,
    pub rate_per_s: u64,
    pub seed: u64,
    pub acks: Option<PathBuf>,
    pub connect_timeout: Duration,
}

/// A small seeded order flow: limit orders around the reference price (some crossing), IOC
/// orders, and cancels of this producer's live orders.
struct Flow {
    rng: u64,
    specs: Vec<InstrumentSpec>,
    live: Vec<(OrderId, AccountId)>,
}

impl Flow {
    fn next_u64(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn command(&mut self, n: u64) -> Command {
        if !self.live.is_empty() && self.below(10) < 3 {
            let i = self.below(self.live.len() as u64) as usize;
            let (order_id, account) = self.live.swap_remove(i);
            return Command::Cancel(Cancel {
                order_id,
                account,
                client_order_id: ClientOrderId(n),
            });
        }
        let i = self.below(self.specs.len() as u64) as usize;
        let spec = self.specs[i].clone();
        let offset = self.below(21) as i64 - 10;
        let price = PriceTicks(spec.reference_price.0 + offset * spec.tick_size.0);
        let side = if self.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let ioc = self.below(10) == 0;
        Command::NewOrder(NewOrder {
            instrument: InstrumentId(i as u32),
            account: AccountId(1 + self.below(8) as u32),
            client_order_id: ClientOrderId(n),
            side,
            order_type: OrderType::Limit,
            price,
            qty: QtyLots(spec.lot_size.0 * (1 + self.below(10))),
            tif: if ioc {
                TimeInForce::Ioc
            } else {
                TimeInForce::Gtc
            },
            expire_ts_ns: 0,
            post_only: false,
            stp_mode: StpMode::CancelResting,
            stp_group: StpGroup(0),
        })
    }
}

pub struct LoadReport {
    pub sent: u64,
    pub acked: u64,
    pub histogram: hdrhistogram::Histogram<u64>,
    pub elapsed: Duration,
}

/// Sends `commands` at `rate_per_s`, open loop: each command has a planned send time, and its
/// latency is measured from that plan to its acknowledgement, so a stall shows up in the
/// percentiles instead of slowing the sender down (no coordinated omission).
pub fn load(
    config: &ExchangeConfig,
    options: &LoadOptions,
    stop: &AtomicBool,
) -> Result<LoadReport, String> {
    let mut client = RingClient::connect(config, options.producer, options.connect_timeout)?;
    let mut flow = Flow {
        rng: options.seed.max(1),
        specs: config.engine.instruments.clone(),
        live: Vec::new(),
    };
    let mut acks = match &options.acks {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| e.to_string())?;
    // Planned send times by producer_ref, in a ring indexed by ref: refs are consecutive.
    let window = 1 << 20;
    let mut planned_ns = vec![0u64; window];
    let interval_ns = 1_000_000_000 / options.rate_per_s.max(1);
    let started = Instant::now();
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut last_ack = Instant::now();
    let mut was_connected = true;
    let mut pending: Option<Command> = None;
    while !stop.load(Ordering::Relaxed) {
        let now_ns = started.elapsed().as_nanos() as u64;
        // Send everything whose planned time has come (at most half a window unacknowledged).
        while sent < options.commands
            && sent * interval_ns <= now_ns
            && sent - acked < window as u64 / 2
        {
            let command = pending.take().unwrap_or_else(|| flow.command(sent + 1));
            match client.try_send(&command) {
                Some(r) => {
                    planned_ns[(r as usize) % window] = sent * interval_ns;
                    sent += 1;
                }
                None => {
                    pending = Some(command);
                    break;
                }
            }
        }
        let mut newly = 0;
        client.poll(|f| match &f.event {
            None => {
                let planned = planned_ns[(f.origin.producer_ref as usize) % window];
                let _ = histogram.record(now_ns.saturating_sub(planned).max(1));
                if let Some(w) = acks.as_mut() {
                    let _ = writeln!(w, "{} {}", f.origin.producer_ref, f.seq);
                }
                newly += 1;
            }
            Some(Event::Rested(r)) => {
                if flow.live.len() >= 100_000 {
                    flow.live.swap_remove(0);
                }
                flow.live.push((r.order_id, r.account));
            }
            Some(_) => {}
        });
        acked += newly;
        if newly > 0 {
            last_ack = Instant::now();
        } else {
            // Frames in flight when an exchange crashed are never acknowledged; once all are
            // sent, a quiet second while connected means nothing more is coming.
            let connected = client.connected();
            if connected != was_connected {
                if connected {
                    eprintln!("load: exchange is back; sending resumes");
                } else {
                    eprintln!("load: exchange is gone (its process exited); waiting for a restart");
                }
                was_connected = connected;
            }
            if sent == options.commands
                && (acked == sent || (connected && last_ack.elapsed() > Duration::from_secs(1)))
            {
                break;
            }
            if !connected {
                std::thread::sleep(Duration::from_millis(2));
            } else {
                // Nothing arrived: give the core back. On a small machine the sequencer and
                // the engine need it more than this loop does, and a spinning load generator
                // would measure the scheduler instead of the exchange.
                std::thread::yield_now();
            }
        }
    }
    if let Some(mut w) = acks {
        w.flush().map_err(|e| e.to_string())?;
    }
    Ok(LoadReport {
        sent,
        acked,
        histogram,
        elapsed: started.elapsed(),
    })
}
