//! The pipeline's duty cycles (Aeron's "agents"): the sequencer and the engine.
//!
//! Each agent owns its state and talks to the others only through rings; `do_work` does one
//! bounded round of work and returns how much it did, so the thread that runs it (the binary
//! owns threads and pinning) can pick its idle strategy.
//!
//! - [`SequencerAgent`] takes commands from the producers' input rings, round-robin (fair and
//!   deterministic for a given arrival pattern), stamps each with the next sequence number and
//!   `ts_ns`, appends it to the journal and publishes it to the engine ring. It is the only
//!   component that reads the clock. It takes no more commands than the engine ring has room
//!   for, so back-pressure flows upstream to the producers instead of into a queue.
//!   Durability: in `sync` mode it publishes a batch only after `fdatasync` covered it (group
//!   commit: one sync per batch, and batches grow with load); in `async` mode it publishes
//!   once the records are written to the OS and syncs on an interval.
//! - [`EngineAgent`] applies engine-ring commands to the engine and publishes the events, and
//!   one END frame per command, to the output ring. Since the engine only ever sees journalled
//!   (in `sync` mode: durable) commands, everything downstream of it is released only for
//!   records the chosen durability mode covers.

use crate::frame::{self, Origin, ENGINE_SLOT_BYTES, INPUT_SLOT_BYTES, OUTPUT_SLOT_BYTES};
use crate::journal::{Journal, JournalError, Storage};
use crate::ring::{Consumer, PeerStatus, Producer, RingSpec, Start, WaitStrategy};
use ferrox_engine::Engine;
use ferrox_protocol::{Checkpoint, Command, Event, EventSink, InstrumentId, SequencedCommand};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// When acknowledgements may be released, relative to `fdatasync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Release only what a completed `fdatasync` covers.
    Sync,
    /// Release once written to the OS; sync every `sync_interval`. Survives a killed
    /// process; a power cut may lose up to one interval of acknowledged commands.
    Async { sync_interval: Duration },
}

/// The ring specs every party must agree on.
pub fn input_ring_spec(capacity: usize) -> Result<RingSpec, crate::ring::RingError> {
    RingSpec::new(INPUT_SLOT_BYTES, capacity, 1)
}

pub fn engine_ring_spec(capacity: usize) -> Result<RingSpec, crate::ring::RingError> {
    RingSpec::new(ENGINE_SLOT_BYTES, capacity, 1)
}

pub fn output_ring_spec(
    capacity: usize,
    consumers_max: usize,
) -> Result<RingSpec, crate::ring::RingError> {
    RingSpec::new(OUTPUT_SLOT_BYTES, capacity, consumers_max)
}

/// The file name of producer `k`'s input ring inside the ring directory.
pub fn input_ring_path(dir: &Path, name: &str, producer: u32) -> PathBuf {
    dir.join(format!("{name}-in-{producer}.ring"))
}

pub fn engine_ring_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-engine.ring"))
}

pub fn output_ring_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-out.ring"))
}

#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    /// The journal failed; the process must stop (see the journal's fsync notes).
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The background `fdatasync` of async mode failed; the process must stop.
    #[error("journal sync failed in the background: {0}")]
    BackgroundSync(String),
}

/// Async mode's interval sync, run on a thread of its own so that the sequencer never waits
/// for `fdatasync`. The sequencer publishes what it has written (`flushed_seq`, after the
/// active segment's path at a rollover); the syncer syncs that segment through its own file
/// handle, which covers every write made through any handle of the file, then publishes the
/// durable seq. A full segment is synced by the journal itself before it rolls over, so
/// syncing the active segment is enough.
#[derive(Debug, Default)]
pub struct BackgroundSync {
    segment: std::sync::Mutex<PathBuf>,
    flushed_seq: AtomicU64,
    /// Set on failure, so that the sequencer's check is one load; the text is in `failure`.
    failed: std::sync::atomic::AtomicBool,
    failure: std::sync::Mutex<Option<String>>,
}

impl BackgroundSync {
    /// Syncs every `interval` until `stop`, then once more. Returns the error that stopped it.
    pub fn run(
        &self,
        stats: &SequencerStats,
        interval: Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<(), String> {
        let mut file: Option<(PathBuf, std::fs::File)> = None;
        loop {
            let stopping = stop.load(Ordering::Acquire);
            // The seq first, then the path: the path is then at least as new as the segment
            // holding that seq.
            let seq = self.flushed_seq.load(Ordering::Acquire);
            let path = self
                .segment
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if seq > stats.durable_seq.load(Ordering::Acquire) && !path.as_os_str().is_empty() {
                if file.as_ref().is_none_or(|(p, _)| *p != path) {
                    let f = std::fs::File::open(&path)
                        .map_err(|e| format!("opening {}: {e}", path.display()));
                    match f {
                        Ok(f) => file = Some((path.clone(), f)),
                        Err(e) => return Err(self.fail(e)),
                    }
                }
                if let Some((p, f)) = &file {
                    if let Err(e) = f.sync_data() {
                        return Err(self.fail(format!("fdatasync {}: {e}", p.display())));
                    }
                }
                stats.syncs.fetch_add(1, Ordering::Relaxed);
                stats.durable_seq.fetch_max(seq, Ordering::AcqRel);
            }
            if stopping {
                return Ok(());
            }
            // Sleep the interval in short steps so that a stop is noticed promptly.
            let mut slept = Duration::ZERO;
            while slept < interval && !stop.load(Ordering::Acquire) {
                let step = (interval - slept).min(Duration::from_millis(5));
                std::thread::sleep(step);
                slept += step;
            }
        }
    }

    fn fail(&self, message: String) -> String {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        self.failed.store(true, Ordering::Release);
        message
    }
}

/// Counters a monitoring thread may read.
#[derive(Debug, Default)]
pub struct SequencerStats {
    pub sequenced: AtomicU64,
    pub malformed_frames: AtomicU64,
    pub syncs: AtomicU64,
    /// Highest seq covered by a completed `fdatasync`.
    pub durable_seq: AtomicU64,
    /// Highest seq published to the engine.
    pub published_seq: AtomicU64,
    /// Bit `k` is set while producer `k`'s input ring is attached (producers 0..64).
    pub producers_attached: AtomicU64,
}

struct Input {
    path: PathBuf,
    consumer: Option<Consumer>,
}

pub struct SequencerAgent<S: Storage> {
    inputs: Vec<Input>,
    spec: RingSpec,
    journal: Journal<S>,
    engine_ring: Producer,
    durability: Durability,
    next_seq: u64,
    last_ts_ns: u64,
    last_sync_ns: u64,
    last_scan_ns: u64,
    batch_max: usize,
    /// Engine-ring frames of the current batch, journalled but not yet published.
    staged: Vec<[u8; ENGINE_SLOT_BYTES]>,
    round_robin: usize,
    clock_ns: fn() -> u64,
    stats: Arc<SequencerStats>,
    background: Option<Arc<BackgroundSync>>,
    /// The active segment the background syncer was last told about.
    announced_segment: PathBuf,
    checkpoints: Option<Checkpoints>,
}

/// The producer number of commands the sequencer makes itself (checkpoints). No input ring
/// has it, so no producer mistakes their acknowledgements for its own.
pub const SEQUENCER_PRODUCER: u32 = u32::MAX;

/// When the next `Command::Checkpoint` is due and for which instrument. One instrument per
/// step, spread evenly over the interval, so that the engine never walks every book at once.
struct Checkpoints {
    instruments: u32,
    step_ns: u64,
    next_ns: u64,
    next_instrument: u32,
    made: u64,
}

/// Wall-clock nanoseconds since the Unix epoch: the exchange's time.
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A monotonic clock for intervals (never for timestamps that enter the journal).
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

impl<S: Storage> SequencerAgent<S> {
    /// `journal` has been recovered; the next command gets `journal`'s last seq + 1 (or
    /// `first_seq` for an empty journal). `last_ts_ns` is the last journalled timestamp, so
    /// that time never goes backwards across a restart.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ring_dir: &Path,
        name: &str,
        producers_max: u32,
        input_spec: RingSpec,
        journal: Journal<S>,
        engine_ring: Producer,
        durability: Durability,
        last_ts_ns: u64,
        batch_max: usize,
        stats: Arc<SequencerStats>,
    ) -> Self {
        let next_seq = journal.written_seq() + 1;
        stats
            .durable_seq
            .store(journal.durable_seq(), Ordering::Release);
        stats
            .published_seq
            .store(journal.written_seq(), Ordering::Release);
        let batch_max = batch_max.clamp(1, engine_ring.spec().capacity());
        SequencerAgent {
            inputs: (0..producers_max)
                .map(|k| Input {
                    path: input_ring_path(ring_dir, name, k),
                    consumer: None,
                })
                .collect(),
            spec: input_spec,
            journal,
            engine_ring,
            durability,
            next_seq,
            last_ts_ns,
            last_sync_ns: monotonic_ns(),
            last_scan_ns: 0,
            batch_max,
            staged: Vec::with_capacity(batch_max),
            round_robin: 0,
            clock_ns: realtime_ns,
            stats,
            background: None,
            announced_segment: PathBuf::new(),
            checkpoints: None,
        }
    }

    /// Asks the engine for each instrument's book fingerprint once per `interval` (one
    /// instrument every `interval / instruments`), so that market-data subscribers can compare
    /// their books with the engine's. Checkpoints are journalled like any command, so a replay
    /// gives the same fingerprints at the same places.
    pub fn with_checkpoints(mut self, instruments: u32, interval: Duration) -> Self {
        if instruments > 0 && !interval.is_zero() {
            let step_ns = (duration_ns(interval) / u64::from(instruments)).max(1);
            self.checkpoints = Some(Checkpoints {
                instruments,
                step_ns,
                next_ns: monotonic_ns().saturating_add(step_ns),
                next_instrument: 0,
                made: 0,
            });
        }
        self
    }

    /// Checkpoint commands made so far.
    pub fn checkpoints_made(&self) -> u64 {
        self.checkpoints.as_ref().map_or(0, |c| c.made)
    }

    /// In async mode, hands the interval sync to a [`BackgroundSync`] run by another thread.
    pub fn with_background_sync(mut self) -> (Self, Arc<BackgroundSync>) {
        let shared = Arc::new(BackgroundSync::default());
        self.background = Some(Arc::clone(&shared));
        self.announce_written();
        (self, shared)
    }

    fn announce_written(&mut self) {
        let Some(bg) = &self.background else { return };
        let active = self.journal.active_segment_path();
        if active != self.announced_segment {
            self.announced_segment = active.to_path_buf();
            *bg.segment.lock().unwrap_or_else(|e| e.into_inner()) = self.announced_segment.clone();
        }
        bg.flushed_seq
            .store(self.journal.written_seq(), Ordering::Release);
    }

    /// Replaces the clock (for tests that need reproducible timestamps).
    pub fn with_clock(mut self, clock_ns: fn() -> u64) -> Self {
        self.clock_ns = clock_ns;
        self
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn attached_producers(&self) -> usize {
        self.inputs.iter().filter(|i| i.consumer.is_some()).count()
    }

    /// Attaches to input rings that appeared and lets go of those whose producer is gone and
    /// that hold nothing more. Runs on the idle path at most every 50 ms.
    fn scan_inputs(&mut self, now_ns: u64) {
        if now_ns.saturating_sub(self.last_scan_ns) < 50_000_000 {
            return;
        }
        self.last_scan_ns = now_ns;
        for input in &mut self.inputs {
            match &input.consumer {
                Some(c) => {
                    let gone = matches!(
                        c.producer_status(Duration::from_secs(5)),
                        PeerStatus::Closed | PeerStatus::Exited { .. }
                    );
                    if gone && c.available() == 0 {
                        input.consumer = None;
                    }
                }
                None => {
                    if input.path.exists() {
                        // A ring that is being created, or belongs to another layout, is
                        // retried at the next scan.
                        // A ring left behind by a producer that exited is not attached:
                        // nothing will ever arrive on it.
                        input.consumer =
                            Consumer::attach(&input.path, self.spec, 0, Start::Producer)
                                .ok()
                                .filter(|c| {
                                    !matches!(
                                        c.producer_status(Duration::from_secs(5)),
                                        PeerStatus::Closed | PeerStatus::Exited { .. }
                                    )
                                });
                    }
                }
            }
        }
        let mask = self
            .inputs
            .iter()
            .enumerate()
            .filter(|(k, i)| *k < 64 && i.consumer.is_some())
            .fold(0u64, |m, (k, _)| m | 1 << k);
        self.stats.producers_attached.store(mask, Ordering::Release);
    }

    /// One round: gather a batch, journal it, make it as durable as the mode requires,
    /// publish it. Returns the number of commands sequenced.
    pub fn do_work(&mut self) -> Result<usize, SequencerError> {
        let now_ns = monotonic_ns();
        let room = self.engine_ring.free_slots().min(self.batch_max);
        let mut taken = 0;
        if room > 0 {
            let ts_ns = (self.clock_ns)().max(self.last_ts_ns);
            self.last_ts_ns = ts_ns;
            let n = self.inputs.len();
            let mut failure = None;
            for k in 0..n {
                let producer = ((self.round_robin + k) % n) as u32;
                let Some(consumer) = self.inputs[producer as usize].consumer.as_mut() else {
                    continue;
                };
                // An even share per producer keeps one busy producer from starving the rest.
                let share = (room - taken).div_ceil(n - k).max(1).min(room - taken);
                if share == 0 {
                    break;
                }
                let journal = &mut self.journal;
                let staged = &mut self.staged;
                let stats = &self.stats;
                let next_seq = &mut self.next_seq;
                let polled = consumer.poll(share, |_, slot| {
                    if failure.is_some() {
                        return;
                    }
                    match frame::decode_input(slot) {
                        Ok((origin, _)) if origin.producer == producer => {}
                        _ => {
                            // Producers are Ferrox's own components encoding with the same
                            // codec, so a bad frame is a bug or memory damage: it is counted
                            // and never sequenced.
                            stats.malformed_frames.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    let seq = *next_seq;
                    if let Err(e) = journal.append(seq, ts_ns, slot) {
                        failure = Some(e);
                        return;
                    }
                    *next_seq += 1;
                    let mut out = [0u8; ENGINE_SLOT_BYTES];
                    frame::encode_engine(seq, ts_ns, slot, &mut out);
                    staged.push(out);
                });
                if let Err(evicted) = polled {
                    // Only the producer can evict its consumer, which it never does for the
                    // sequencer; re-attach at the next scan.
                    let _ = evicted;
                    self.inputs[producer as usize].consumer = None;
                }
                if let Some(e) = failure.take() {
                    return Err(e.into());
                }
                taken = self.staged.len();
                if taken >= room {
                    break;
                }
            }
            self.round_robin = (self.round_robin + 1) % n.max(1);
            if taken < room {
                if let Some(c) = self.checkpoints.as_mut() {
                    if now_ns >= c.next_ns {
                        // One at a time, and late ones are not made up: a checkpoint is a
                        // sample, not a schedule to catch up with.
                        c.next_ns = now_ns.saturating_add(c.step_ns);
                        let instrument = InstrumentId(c.next_instrument);
                        c.next_instrument = (c.next_instrument + 1) % c.instruments;
                        c.made += 1;
                        let mut slot = [0u8; INPUT_SLOT_BYTES];
                        frame::encode_input(
                            Origin {
                                producer: SEQUENCER_PRODUCER,
                                producer_ref: c.made,
                            },
                            &Command::Checkpoint(Checkpoint { instrument }),
                            &mut slot,
                        );
                        let seq = self.next_seq;
                        self.journal.append(seq, ts_ns, &slot)?;
                        self.next_seq += 1;
                        let mut out = [0u8; ENGINE_SLOT_BYTES];
                        frame::encode_engine(seq, ts_ns, &slot, &mut out);
                        self.staged.push(out);
                        taken = self.staged.len();
                    }
                }
            }
        }
        if !self.staged.is_empty() {
            match self.durability {
                Durability::Sync => {
                    let synced = self.journal.sync()?;
                    self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .durable_seq
                        .store(synced.durable_seq, Ordering::Release);
                    self.last_sync_ns = now_ns;
                }
                Durability::Async { .. } => {
                    self.journal.flush()?;
                    self.announce_written();
                }
            }
            self.publish_staged();
        }
        if let Some(bg) = &self.background {
            if bg.failed.load(Ordering::Acquire) {
                let e = bg.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(SequencerError::BackgroundSync(e.unwrap_or_default()));
            }
        } else if let Durability::Async { sync_interval } = self.durability {
            let due = now_ns.saturating_sub(self.last_sync_ns) >= duration_ns(sync_interval);
            if due && self.journal.durable_seq() < self.journal.written_seq() {
                let synced = self.journal.sync()?;
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .durable_seq
                    .store(synced.durable_seq, Ordering::Release);
                self.last_sync_ns = now_ns;
            }
        }
        if taken == 0 {
            self.engine_ring.heartbeat();
            self.scan_inputs(now_ns);
        }
        Ok(taken)
    }

    fn publish_staged(&mut self) {
        let count = self.staged.len();
        // Room was reserved before gathering and only this agent produces, so the claim
        // cannot fail.
        let mut claim = self
            .engine_ring
            .try_claim(count)
            .expect("Invariant: engine ring room was reserved before gathering");
        for frame in &self.staged {
            claim.push(frame);
        }
        claim.publish();
        self.stats
            .sequenced
            .fetch_add(count as u64, Ordering::Relaxed);
        self.stats
            .published_seq
            .store(self.next_seq - 1, Ordering::Release);
        self.staged.clear();
    }

    /// Makes everything written durable (clean shutdown).
    pub fn sync_all(&mut self) -> Result<u64, SequencerError> {
        let synced = self.journal.sync()?;
        self.stats
            .durable_seq
            .store(synced.durable_seq, Ordering::Release);
        Ok(synced.durable_seq)
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Writes events into the output ring, waiting (never dropping) when consumers lag.
struct RingSink<'a> {
    out: &'a mut Producer,
    wait: WaitStrategy,
    seq: u64,
    ts_ns: u64,
    origin: Origin,
    index: u16,
}

impl RingSink<'_> {
    fn push(&mut self, event: Option<&Event>) {
        let mut buf = [0u8; OUTPUT_SLOT_BYTES];
        frame::encode_output(
            self.seq,
            self.ts_ns,
            self.origin,
            self.index,
            event,
            &mut buf,
        );
        // Events are the record of what happened: they wait for room rather than vanish.
        // A consumer that died is detached by the exchange's supervisor, which frees room.
        while self
            .out
            .publish_wait(&buf, &self.wait, Duration::from_millis(100))
            .is_err()
        {
            self.out.detach_exited_consumers();
        }
        self.index = self.index.wrapping_add(1);
    }
}

impl EventSink for RingSink<'_> {
    #[inline]
    fn event(&mut self, event: &Event) {
        self.push(Some(event));
    }
}

/// Applies journalled commands to the engine and publishes the results.
pub struct EngineAgent {
    pub engine: Engine,
    input: Consumer,
    output: Producer,
    wait: WaitStrategy,
    batch_max: usize,
    snapshot_every: u64,
    snapshot_buf: Vec<u8>,
    /// Set when a snapshot is ready to be handed to the snapshot writer.
    snapshot_ready: bool,
}

impl EngineAgent {
    pub fn new(
        engine: Engine,
        input: Consumer,
        output: Producer,
        wait: WaitStrategy,
        batch_max: usize,
        snapshot_every: u64,
    ) -> Self {
        EngineAgent {
            engine,
            input,
            output,
            wait,
            batch_max: batch_max.max(1),
            snapshot_every,
            snapshot_buf: Vec::new(),
            snapshot_ready: false,
        }
    }

    /// Applies up to one batch; returns the number of commands applied.
    pub fn do_work(&mut self) -> usize {
        let engine = &mut self.engine;
        let output = &mut self.output;
        let wait = self.wait;
        let snapshot_every = self.snapshot_every;
        let mut snapshot_due = false;
        let polled = self.input.poll(self.batch_max, |_, slot| {
            let (seq, ts_ns, origin, command) = frame::decode_engine(slot)
                .expect("Invariant: the sequencer only publishes frames it decoded");
            let mut sink = RingSink {
                out: output,
                wait,
                seq,
                ts_ns,
                origin,
                index: 0,
            };
            engine.apply(
                &SequencedCommand {
                    seq,
                    ts_ns,
                    command,
                },
                &mut sink,
            );
            sink.push(None);
            if snapshot_every > 0 && seq % snapshot_every == 0 {
                snapshot_due = true;
            }
        });
        let n = polled.unwrap_or(0);
        if snapshot_due && !self.snapshot_ready {
            self.snapshot_buf.clear();
            self.engine.write_snapshot(&mut self.snapshot_buf);
            self.snapshot_ready = true;
        }
        if n == 0 {
            self.output.heartbeat();
            self.input.heartbeat();
        }
        n
    }

    /// A snapshot taken by `do_work`, if one is waiting: `(last_seq, bytes)`. The caller
    /// writes it and gives the buffer back with [`EngineAgent::return_snapshot_buffer`].
    pub fn take_snapshot(&mut self) -> Option<(u64, Vec<u8>)> {
        if !self.snapshot_ready {
            return None;
        }
        self.snapshot_ready = false;
        Some((
            self.engine.last_seq(),
            std::mem::take(&mut self.snapshot_buf),
        ))
    }

    pub fn return_snapshot_buffer(&mut self, buf: Vec<u8>) {
        if buf.capacity() > self.snapshot_buf.capacity() {
            self.snapshot_buf = buf;
        }
    }

    pub fn input_available(&self) -> u64 {
        self.input.available()
    }
}
