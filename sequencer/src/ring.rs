//! Bounded shared-memory rings in the style of the LMAX Disruptor: one producer, one or more
//! broadcast consumers, fixed-size slots, and back-pressure instead of overwriting.
//!
//! A ring is a file (under `/dev/shm` in production, so that it is memory and never touches a
//! disk) mapped with [`memmap2::MmapRaw`] by every thread or process that uses it. Threads of one
//! process and separate processes use the same code: each opens the file and maps it.
//!
//! # File layout
//!
//! Every field is a native-endian `u64` accessed only through `AtomicU64`; the slots are accessed
//! only through raw copies. Each line is 128 bytes, two cache lines, so that the adjacent-line
//! prefetcher of x86 cores never couples two fields written by different parties.
//!
//! ```text
//!  offset (bytes)                       written by      read by
//!  0      +--------------------------+
//!         | header line              |  creator, once  everyone, at open
//!         |  magic "FRXRING\0"       |
//!         |  layout_version          |
//!         |  slot_bytes              |
//!         |  capacity (slots, 2^k)   |
//!         |  consumers_max           |
//!         |  data_offset_bytes       |
//!         |  file_bytes              |
//!  128    +--------------------------+
//!         | producer cursor          |  producer       consumers (hot)
//!         |  = sequences published   |
//!  256    +--------------------------+
//!         | producer liveness        |  producer       consumers (rarely)
//!         |  state (running, closed) |
//!         |  pid, heartbeat_ns       |
//!  384    +--------------------------+
//!         | consumer 0               |  consumer 0     producer (hot: cursor)
//!         |  cursor = seqs consumed  |
//!         |  state = gen << 2 | tag  |  (tag: free, attaching, attached)
//!         |  pid, heartbeat_ns       |
//!  512    +--------------------------+
//!         | consumer 1 ...           |
//!         +--------------------------+  384 + 128 * consumers_max = data_offset_bytes
//!         | slot 0                   |  producer       consumers
//!         | slot 1                   |  slot_bytes each; message `seq` lives in
//!         | ...                      |  slot `seq & (capacity - 1)`
//!         | slot capacity - 1        |
//!         +--------------------------+  file_bytes
//! ```
//!
//! # Cursor protocol
//!
//! Sequences count from 0 and never wrap (a `u64` of messages outlives the machine). The producer
//! cursor holds the number of messages published; a consumer cursor holds the number it has
//! consumed. The producer may write sequence `s` only when `s - min(consumer cursors) <
//! capacity`, that is when every attached consumer has finished with the message that slot held
//! before. It writes the slot with a raw copy, then stores its cursor with `Release`; a consumer
//! loads the producer cursor with `Acquire`, copies every available slot out (batch consumption),
//! and then stores its own cursor once with `Release`, which the producer loads with `Acquire`
//! before reusing those slots. Both sides cache the other's cursor and reload it only when the
//! cached value says "full" or "empty", so a steady stream costs one shared load per batch, not
//! per message. `tests/ring_model.rs` checks this protocol exhaustively.
//!
//! The publish and consume paths take no lock, allocate nothing and make no system call.
//! Heartbeats read `CLOCK_MONOTONIC` through the vDSO and are meant for the caller's duty cycle
//! (or the idle branch of the wait helpers), not for every message.
//!
//! # Attaching, liveness and dead peers
//!
//! A consumer attaches to a numbered consumer slot (its role: journal, engine, ...). It starts at
//! the producer's current position, so messages published before it attached are not for it;
//! a ring with no attached consumer does not gate its producer at all. A consumer whose process
//! died keeps gating the producer (its unread messages are kept), until either a restarted
//! consumer takes the slot over (resuming where the dead one stopped, or jumping to the
//! producer's position) or the producer explicitly detaches it with
//! [`Producer::detach_consumer`]. Liveness is the process id, checked with `kill(pid, 0)`
//! (`rustix::process::test_kill_process`), plus a heartbeat in nanoseconds of `CLOCK_MONOTONIC`,
//! which is system-wide on Linux; see [`PeerStatus`]. The pid check assumes that all parties
//! share one pid namespace; the heartbeat works regardless.
//!
//! A consumer publishes its cursor after its handler has seen the whole batch, so a consumer
//! that crashes mid-batch and is resumed sees that batch again: delivery is at-least-once
//! across a crash, exactly-once otherwise.
//!
//! # Use
//!
//! ```
//! use std::time::Duration;
//! use ferrox_sequencer::ring::{Consumer, Producer, RingSpec, Start, WaitStrategy};
//!
//! let dir = std::env::temp_dir().join(format!("ferrox-ring-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("commands");
//! let spec = RingSpec::new(64, 1024, 2)?; // 64-byte slots, 1024 of them, 2 consumer slots
//! let mut producer = Producer::create(&path, spec)?;
//! let mut engine = Consumer::attach(&path, spec, 0, Start::Producer)?;
//!
//! producer.try_publish(b"a command").expect("an empty ring has room");
//! let mut claim = producer.try_claim(2).expect("room for two");
//! claim.push(b"two commands");
//! claim.push(b"in one publish");
//! claim.publish();
//!
//! let mut seen = Vec::new();
//! let wait = WaitStrategy::backoff();
//! while seen.len() < 3 {
//!     engine.poll_wait(&wait, Duration::from_secs(1), 64, |seq, slot| {
//!         seen.push((seq, slot.len()));
//!     })?;
//! }
//! assert_eq!(seen, [(0, 64), (1, 64), (2, 64)]);
//! assert!(engine.producer_alive(Duration::from_secs(1)));
//! # drop((producer, engine));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};
use thiserror::Error;

/// `"FRXRING\0"`, read as a native-endian `u64`: a file from a machine of the other endianness
/// fails this check too.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"FRXRING\0");

/// Bumped whenever the file layout changes; a ring of another version is refused at open.
pub const LAYOUT_VERSION: u64 = 1;

/// Every shared line is this long: two 64-byte cache lines, to defeat adjacent-line prefetch.
pub const LINE_BYTES: usize = 128;

/// The largest slot; larger messages belong in a journal, not in a ring slot.
pub const SLOT_BYTES_MAX: usize = 64 * 1024;

/// The most slots a ring may have.
pub const CAPACITY_MAX: usize = 1 << 30;

/// The most consumer slots a ring may have; the producer scans them all when it recomputes its
/// gate, so the number should stay small.
pub const CONSUMERS_MAX: usize = 64;

// Word indices (in u64 units) inside the header line.
const HEADER_MAGIC: usize = 0;
const HEADER_VERSION: usize = 1;
const HEADER_SLOT_BYTES: usize = 2;
const HEADER_CAPACITY: usize = 3;
const HEADER_CONSUMERS_MAX: usize = 4;
const HEADER_DATA_OFFSET_BYTES: usize = 5;
const HEADER_FILE_BYTES: usize = 6;

// Line numbers.
const LINE_HEADER: usize = 0;
const LINE_PRODUCER_CURSOR: usize = 1;
const LINE_PRODUCER: usize = 2;
const LINE_FIRST_CONSUMER: usize = 3;

// Word indices inside the producer liveness line.
const PRODUCER_STATE: usize = 0;
const PRODUCER_PID: usize = 1;
const PRODUCER_HEARTBEAT_NS: usize = 2;

const PRODUCER_RUNNING: u64 = 1;
const PRODUCER_CLOSED: u64 = 2;

// Word indices inside a consumer line.
const CONSUMER_CURSOR: usize = 0;
const CONSUMER_STATE: usize = 1;
const CONSUMER_PID: usize = 2;
const CONSUMER_HEARTBEAT_NS: usize = 3;

// A consumer state word is `generation << 2 | tag`. The generation grows at every attach, so a
// consumer that was detached and replaced can tell that the slot is no longer its own.
const TAG_MASK: u64 = 0b11;
const TAG_FREE: u64 = 0;
const TAG_ATTACHING: u64 = 1;
const TAG_ATTACHED: u64 = 2;

/// How often the wait helpers refresh the caller's heartbeat while idle.
const IDLE_HEARTBEAT_INTERVAL_NS: u64 = 1_000_000;

/// Errors of creating, opening and attaching to rings.
#[derive(Debug, Error)]
pub enum RingError {
    #[error("ring file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid ring spec: {0}")]
    InvalidSpec(&'static str),
    #[error("{path} is not a ring file: magic {found:#018x}, expected {expected:#018x}")]
    BadMagic {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path} has ring layout version {found}; this build reads version {expected}")]
    VersionMismatch {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path} has {found}-byte slots; expected {expected}")]
    SlotBytesMismatch {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path} has {found} slots; expected {expected}")]
    CapacityMismatch {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path} has {found} consumer slots; expected {expected}")]
    ConsumersMaxMismatch {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path} is {found_bytes} bytes long; its header and spec need {expected_bytes}")]
    Truncated {
        path: PathBuf,
        expected_bytes: u64,
        found_bytes: u64,
    },
    #[error("consumer slot {index} does not exist: the ring has {consumers_max}")]
    NoSuchConsumer { index: usize, consumers_max: usize },
    #[error("consumer slot {index} is held by process {pid}, which is still running")]
    ConsumerSlotBusy { index: usize, pid: u64 },
    #[error("consumer slot {index} was detached by the producer while attaching to it")]
    AttachInterrupted { index: usize },
    #[error(
        "cannot resume consumer slot {index}: it was free, so its old position no longer gates \
         the producer and the messages after it may be overwritten"
    )]
    CannotResume { index: usize },
}

/// Back-pressure: the slowest attached consumer has not yet freed the slot(s) asked for.
/// Nothing was written.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("ring full: the slowest consumer has not freed enough slots")]
pub struct Full;

/// The producer detached this consumer, or another process took its slot over. Messages from
/// here on would not be protected from overwriting, so none is handed out.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("consumer slot {index} was detached by the producer or taken over by another process")]
pub struct Evicted {
    pub index: usize,
}

/// The shape of a ring: fixed at creation, and checked by everyone who opens it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSpec {
    slot_bytes: usize,
    capacity: usize,
    consumers_max: usize,
}

impl RingSpec {
    /// `slot_bytes` must be a multiple of 8 (so that slots stay 8-byte aligned) between 8 and
    /// [`SLOT_BYTES_MAX`]; `capacity` a power of two between 2 and [`CAPACITY_MAX`];
    /// `consumers_max` between 1 and [`CONSUMERS_MAX`].
    pub fn new(
        slot_bytes: usize,
        capacity: usize,
        consumers_max: usize,
    ) -> Result<RingSpec, RingError> {
        if slot_bytes == 0 || slot_bytes % 8 != 0 || slot_bytes > SLOT_BYTES_MAX {
            return Err(RingError::InvalidSpec(
                "slot_bytes must be a positive multiple of 8, at most SLOT_BYTES_MAX",
            ));
        }
        if capacity < 2 || !capacity.is_power_of_two() || capacity > CAPACITY_MAX {
            return Err(RingError::InvalidSpec(
                "capacity must be a power of two between 2 and CAPACITY_MAX",
            ));
        }
        if consumers_max == 0 || consumers_max > CONSUMERS_MAX {
            return Err(RingError::InvalidSpec(
                "consumers_max must be between 1 and CONSUMERS_MAX",
            ));
        }
        let spec = RingSpec {
            slot_bytes,
            capacity,
            consumers_max,
        };
        if spec.file_bytes_checked().is_none() {
            return Err(RingError::InvalidSpec("the ring does not fit in memory"));
        }
        Ok(spec)
    }

    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn consumers_max(&self) -> usize {
        self.consumers_max
    }

    /// Where slot 0 starts: after the header, producer and consumer lines.
    pub fn data_offset_bytes(&self) -> usize {
        (LINE_FIRST_CONSUMER + self.consumers_max) * LINE_BYTES
    }

    /// The size of the ring file.
    pub fn file_bytes(&self) -> usize {
        self.file_bytes_checked()
            .expect("RingSpec::new checked that the ring fits")
    }

    fn file_bytes_checked(&self) -> Option<usize> {
        let slots_bytes = self.slot_bytes.checked_mul(self.capacity)?;
        let total = self.data_offset_bytes().checked_add(slots_bytes)?;
        (total <= isize::MAX as usize).then_some(total)
    }
}

/// What a party knows about its peer on the other end of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// The process exists and its heartbeat is fresh.
    Alive,
    /// The producer closed the ring cleanly (dropped its [`Producer`]).
    Closed,
    /// The process no longer exists and did not close: it crashed or was killed.
    Exited { pid: u64 },
    /// The process exists but its heartbeat is older than `stale_after`: it hangs, is stopped,
    /// forgot its duty cycle, or its pid was reused by another process after it died.
    Stale { pid: u64, heartbeat_age_ns: u64 },
}

/// What the producer sees in one consumer slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerStatus {
    /// Nobody holds the slot; it does not gate the producer.
    Free,
    /// The slot is held (or being attached) and gates the producer.
    Held(PeerStatus),
}

/// Where a consumer starts when it attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// At the producer's current position: messages published before are skipped.
    Producer,
    /// Where the slot's previous holder, a process that died while attached, stopped: its
    /// unread messages were kept for it. Fails with [`RingError::CannotResume`] on a free slot.
    Resume,
}

/// How a thread waits for messages (consumer) or free slots (producer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin with `spin_loop` hints: the lowest latency, and a whole core. Only for a thread
    /// pinned to a core of its own.
    BusySpin,
    /// Spin `spins` times, then `yield_now` between checks: for threads that share cores.
    SpinThenYield { spins: u32 },
    /// Spin, then yield, then sleep, doubling the sleep from `sleep_min` to `sleep_max`: for
    /// idle consumers. Works across processes because it only ever re-reads the cursor.
    Backoff {
        spins: u32,
        yields: u32,
        sleep_min: Duration,
        sleep_max: Duration,
    },
}

impl WaitStrategy {
    /// A backoff suited to an idle consumer that should still react within a millisecond.
    pub const fn backoff() -> WaitStrategy {
        WaitStrategy::Backoff {
            spins: 100,
            yields: 10,
            sleep_min: Duration::from_micros(10),
            sleep_max: Duration::from_millis(1),
        }
    }
}

/// One idle period of a [`WaitStrategy`]: the state of its spin, yield and sleep phases.
struct Idle {
    rounds: u32,
    sleep_ns: u64,
}

impl Idle {
    fn new() -> Idle {
        Idle {
            rounds: 0,
            sleep_ns: 0,
        }
    }

    /// Waits one step and says whether the caller should read the clock now. Spinning reads it
    /// every 64 rounds only, because a clock read costs more than a spin.
    fn step(&mut self, strategy: &WaitStrategy) -> bool {
        self.rounds = self.rounds.saturating_add(1);
        match *strategy {
            WaitStrategy::BusySpin => {
                std::hint::spin_loop();
                self.rounds % 64 == 0
            }
            WaitStrategy::SpinThenYield { spins } => {
                if self.rounds <= spins {
                    std::hint::spin_loop();
                    self.rounds % 64 == 0
                } else {
                    std::thread::yield_now();
                    true
                }
            }
            WaitStrategy::Backoff {
                spins,
                yields,
                sleep_min,
                sleep_max,
            } => {
                if self.rounds <= spins {
                    std::hint::spin_loop();
                    self.rounds % 64 == 0
                } else if self.rounds <= spins.saturating_add(yields) {
                    std::thread::yield_now();
                    true
                } else {
                    let min_ns = duration_ns(sleep_min).max(1);
                    let max_ns = duration_ns(sleep_max).max(min_ns);
                    self.sleep_ns = if self.sleep_ns == 0 {
                        min_ns
                    } else {
                        self.sleep_ns.saturating_mul(2).min(max_ns)
                    };
                    std::thread::sleep(Duration::from_nanos(self.sleep_ns));
                    true
                }
            }
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds of `CLOCK_MONOTONIC`, one clock for every process of the machine.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

fn own_pid() -> u64 {
    rustix::process::getpid().as_raw_pid() as u64
}

/// `kill(pid, 0)`: whether a process with this id exists. "Not permitted" means it exists.
fn process_exists(pid: u64) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

fn peer_status(pid: u64, heartbeat_ns: u64, stale_after: Duration) -> PeerStatus {
    if !process_exists(pid) {
        return PeerStatus::Exited { pid };
    }
    let heartbeat_age_ns = monotonic_ns().saturating_sub(heartbeat_ns);
    if heartbeat_age_ns > duration_ns(stale_after) {
        PeerStatus::Stale {
            pid,
            heartbeat_age_ns,
        }
    } else {
        PeerStatus::Alive
    }
}

/// One mapping of a ring file, and the only code that touches the shared memory.
struct Shared {
    map: MmapRaw,
    spec: RingSpec,
    mask: u64,
    path: PathBuf,
}

impl Shared {
    fn map_file(file: &File, path: &Path, len_bytes: usize) -> Result<MmapRaw, RingError> {
        // MAP_POPULATE faults every page in now, so the first laps of the ring do not.
        MmapOptions::new()
            .len(len_bytes)
            .populate()
            .map_raw(file)
            .map_err(|source| io_error(path, source))
    }

    fn new(map: MmapRaw, spec: RingSpec, path: &Path) -> Shared {
        assert!(map.len() >= spec.file_bytes());
        Shared {
            map,
            spec,
            mask: spec.capacity as u64 - 1,
            path: path.to_path_buf(),
        }
    }

    /// The word at `line`, `word` as an atomic. Callers pass constants or consumer indices that
    /// were checked against `consumers_max`, so the assertion is for bugs in this module only.
    #[inline(always)]
    fn word(&self, line: usize, word: usize) -> &AtomicU64 {
        let offset_bytes = line * LINE_BYTES + word * 8;
        debug_assert!(word < LINE_BYTES / 8 && offset_bytes + 8 <= self.spec.data_offset_bytes());
        // SAFETY: `offset_bytes` lies inside the header lines, which are inside the mapping
        // (`Shared::new` checked its length), and is a multiple of 8 from a page-aligned base,
        // so the pointer is valid and aligned for a u64. The reference borrows `self`, which owns
        // the mapping, so it cannot outlive it. Every party accesses these words only atomically,
        // which is what `AtomicU64::from_ptr` requires of concurrent access.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset_bytes).cast::<u64>()) }
    }

    #[inline(always)]
    fn header(&self, word: usize) -> &AtomicU64 {
        self.word(LINE_HEADER, word)
    }

    #[inline(always)]
    fn producer_cursor(&self) -> &AtomicU64 {
        self.word(LINE_PRODUCER_CURSOR, 0)
    }

    #[inline(always)]
    fn producer(&self, word: usize) -> &AtomicU64 {
        self.word(LINE_PRODUCER, word)
    }

    #[inline(always)]
    fn consumer(&self, index: usize, word: usize) -> &AtomicU64 {
        debug_assert!(index < self.spec.consumers_max);
        self.word(LINE_FIRST_CONSUMER + index, word)
    }

    /// Copies `msg` into the slot of `seq` and zeroes the rest of the slot, so that a short
    /// message never shows the tail of an older one.
    #[inline(always)]
    fn write_slot(&self, seq: u64, msg: &[u8]) {
        let slot_bytes = self.spec.slot_bytes;
        assert!(
            msg.len() <= slot_bytes,
            "message of {} bytes does not fit a {slot_bytes}-byte slot",
            msg.len()
        );
        let offset_bytes = self.spec.data_offset_bytes() + (seq & self.mask) as usize * slot_bytes;
        // SAFETY: the slot index is masked below `capacity`, so the slot lies inside the mapping,
        // and `msg` fits it (asserted). Only the producer writes slots, and the cursor protocol
        // guarantees that no attached consumer reads this slot until the producer cursor passes
        // `seq`. Raw copies create no reference into the shared memory.
        unsafe {
            let dst = self.map.as_mut_ptr().add(offset_bytes);
            copy_bytes(msg.as_ptr(), dst, msg.len());
            if msg.len() < slot_bytes {
                ptr::write_bytes(dst.add(msg.len()), 0, slot_bytes - msg.len());
            }
        }
    }

    /// Copies the slot of `seq` into `out`, which is exactly one slot long.
    #[inline(always)]
    fn read_slot(&self, seq: u64, out: &mut [u8]) {
        let slot_bytes = self.spec.slot_bytes;
        assert_eq!(out.len(), slot_bytes);
        let offset_bytes = self.spec.data_offset_bytes() + (seq & self.mask) as usize * slot_bytes;
        // SAFETY: the slot index is masked below `capacity`, so the slot lies inside the mapping,
        // and `out` is a private buffer of exactly one slot. The cursor protocol guarantees the
        // producer does not write this slot until this consumer's cursor passes `seq` (the caller
        // checks afterwards that it was not evicted, the one case where that could happen).
        unsafe {
            let src = self.map.as_mut_ptr().add(offset_bytes);
            copy_bytes(src, out.as_mut_ptr(), slot_bytes);
        }
    }

    /// Opens an existing ring and checks its header against `spec`, most telling field first.
    fn open(path: &Path, spec: RingSpec) -> Result<Shared, RingError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| io_error(path, source))?;
        let found_bytes = file
            .metadata()
            .map_err(|source| io_error(path, source))?
            .len();
        if found_bytes < spec.data_offset_bytes() as u64 {
            return Err(RingError::Truncated {
                path: path.to_path_buf(),
                expected_bytes: spec.file_bytes() as u64,
                found_bytes,
            });
        }
        let map_bytes = usize::try_from(found_bytes).unwrap_or(usize::MAX);
        let map = Shared::map_file(&file, path, map_bytes.min(spec.file_bytes()))?;
        // The header words are read through a temporary `Shared` whose spec is the caller's: its
        // header lines are all mapped, which is all that `word` needs.
        let probe = Shared {
            map,
            spec,
            mask: spec.capacity as u64 - 1,
            path: path.to_path_buf(),
        };
        let magic = probe.header(HEADER_MAGIC).load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(RingError::BadMagic {
                path: path.to_path_buf(),
                expected: MAGIC,
                found: magic,
            });
        }
        let check = |word: usize, expected: u64| {
            let found = probe.header(word).load(Ordering::Relaxed);
            (found != expected).then_some((expected, found))
        };
        let path_buf = || path.to_path_buf();
        if let Some((expected, found)) = check(HEADER_VERSION, LAYOUT_VERSION) {
            return Err(RingError::VersionMismatch {
                path: path_buf(),
                expected,
                found,
            });
        }
        if let Some((expected, found)) = check(HEADER_SLOT_BYTES, spec.slot_bytes as u64) {
            return Err(RingError::SlotBytesMismatch {
                path: path_buf(),
                expected,
                found,
            });
        }
        if let Some((expected, found)) = check(HEADER_CAPACITY, spec.capacity as u64) {
            return Err(RingError::CapacityMismatch {
                path: path_buf(),
                expected,
                found,
            });
        }
        if let Some((expected, found)) = check(HEADER_CONSUMERS_MAX, spec.consumers_max as u64) {
            return Err(RingError::ConsumersMaxMismatch {
                path: path_buf(),
                expected,
                found,
            });
        }
        let expected_bytes = spec.file_bytes() as u64;
        if check(HEADER_DATA_OFFSET_BYTES, spec.data_offset_bytes() as u64).is_some()
            || check(HEADER_FILE_BYTES, expected_bytes).is_some()
            || found_bytes != expected_bytes
        {
            return Err(RingError::Truncated {
                path: path_buf(),
                expected_bytes,
                found_bytes,
            });
        }
        Ok(Shared::new(probe.map, spec, path))
    }

    fn consumer_status(&self, index: usize, stale_after: Duration) -> ConsumerStatus {
        let state = self.consumer(index, CONSUMER_STATE).load(Ordering::Acquire);
        match state & TAG_MASK {
            TAG_FREE => ConsumerStatus::Free,
            // The attacher writes its pid just after claiming the slot; until then the pid is
            // not yet meaningful, and the attacher is by definition alive.
            TAG_ATTACHING => ConsumerStatus::Held(PeerStatus::Alive),
            _ => ConsumerStatus::Held(peer_status(
                self.consumer(index, CONSUMER_PID).load(Ordering::Relaxed),
                self.consumer(index, CONSUMER_HEARTBEAT_NS)
                    .load(Ordering::Relaxed),
                stale_after,
            )),
        }
    }

    fn producer_status(&self, stale_after: Duration) -> PeerStatus {
        if self.producer(PRODUCER_STATE).load(Ordering::Acquire) == PRODUCER_CLOSED {
            return PeerStatus::Closed;
        }
        peer_status(
            self.producer(PRODUCER_PID).load(Ordering::Relaxed),
            self.producer(PRODUCER_HEARTBEAT_NS).load(Ordering::Relaxed),
            stale_after,
        )
    }
}

/// `ptr::copy_nonoverlapping`, with the common slot sizes as constant-length copies, which
/// compile to a few vector moves instead of a call to `memcpy` (whose dispatch costs about as
/// much as the copy itself at these sizes, and lands inside every hop).
///
/// # Safety
///
/// As for `ptr::copy_nonoverlapping`: `src` readable and `dst` writable for `len` bytes, and
/// the two ranges do not overlap.
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller upholds `copy_nonoverlapping`'s contract for `len` bytes, and each
    // arm copies exactly `len` bytes.
    unsafe {
        match len {
            64 => ptr::copy_nonoverlapping(src, dst, 64),
            128 => ptr::copy_nonoverlapping(src, dst, 128),
            _ => ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}

fn io_error(path: &Path, source: std::io::Error) -> RingError {
    RingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The single writer of a ring. It creates the ring file and owns it until dropped, when it
/// marks the ring closed (the file stays for consumers to drain; the creator removes it).
pub struct Producer {
    shared: Shared,
    /// The next sequence to publish; equal to the published producer cursor between calls.
    next: u64,
    /// The lowest consumer cursor when last computed: a lower bound of the true gate, because
    /// consumer cursors only grow, so a slot that it says is free really is.
    cached_gate: u64,
    last_heartbeat_ns: u64,
}

impl Producer {
    /// Creates a ring file at `path`, replacing any file there. The file is built under a
    /// temporary name and renamed into place, so a consumer that opens `path` never sees a
    /// half-written header; consumers of a replaced ring keep their old mapping and see its
    /// producer stop (closed or exited).
    pub fn create(path: impl AsRef<Path>, spec: RingSpec) -> Result<Producer, RingError> {
        let path = path.as_ref();
        let file_name = path
            .file_name()
            .ok_or(RingError::InvalidSpec("the ring path has no file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".{}.tmp", own_pid()));
        let tmp_path = path.with_file_name(tmp_name);
        let result = Producer::create_at(&tmp_path, path, spec);
        if result.is_err() {
            // The temporary file is ours alone; failing to remove it leaves only litter.
            let _ = std::fs::remove_file(&tmp_path);
        }
        result
    }

    fn create_at(tmp_path: &Path, path: &Path, spec: RingSpec) -> Result<Producer, RingError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp_path)
            .map_err(|source| io_error(tmp_path, source))?;
        // `set_len` fills the file with zeros: every cursor 0, every consumer slot free.
        file.set_len(spec.file_bytes() as u64)
            .map_err(|source| io_error(tmp_path, source))?;
        let map = Shared::map_file(&file, tmp_path, spec.file_bytes())?;
        let shared = Shared::new(map, spec, path);
        let h = |word: usize, value: u64| shared.header(word).store(value, Ordering::Relaxed);
        h(HEADER_VERSION, LAYOUT_VERSION);
        h(HEADER_SLOT_BYTES, spec.slot_bytes as u64);
        h(HEADER_CAPACITY, spec.capacity as u64);
        h(HEADER_CONSUMERS_MAX, spec.consumers_max as u64);
        h(HEADER_DATA_OFFSET_BYTES, spec.data_offset_bytes() as u64);
        h(HEADER_FILE_BYTES, spec.file_bytes() as u64);
        let now_ns = monotonic_ns();
        shared
            .producer(PRODUCER_PID)
            .store(own_pid(), Ordering::Relaxed);
        shared
            .producer(PRODUCER_HEARTBEAT_NS)
            .store(now_ns, Ordering::Relaxed);
        shared
            .producer(PRODUCER_STATE)
            .store(PRODUCER_RUNNING, Ordering::Relaxed);
        // The magic goes last, with Release, so a reader that sees it sees the whole header.
        shared.header(HEADER_MAGIC).store(MAGIC, Ordering::Release);
        std::fs::rename(tmp_path, path).map_err(|source| io_error(path, source))?;
        Ok(Producer {
            shared,
            next: 0,
            cached_gate: 0,
            last_heartbeat_ns: now_ns,
        })
    }

    pub fn spec(&self) -> RingSpec {
        self.shared.spec
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The number of messages published so far, which is also the next sequence.
    pub fn published(&self) -> u64 {
        self.next
    }

    /// Publishes one message of at most `slot_bytes` bytes (panics if longer: a bug, since the
    /// slot size is part of the ring's contract), or returns [`Full`] without writing anything.
    #[inline]
    pub fn try_publish(&mut self, msg: &[u8]) -> Result<(), Full> {
        let seq = self.next;
        self.ensure_free(1)?;
        self.shared.write_slot(seq, msg);
        self.next = seq + 1;
        self.shared
            .producer_cursor()
            .store(self.next, Ordering::Release);
        Ok(())
    }

    /// Claims `count` consecutive slots (at most `capacity`), to be filled with [`Claim::push`]
    /// and made visible all at once with [`Claim::publish`]; or [`Full`] if fewer are free.
    #[inline]
    pub fn try_claim(&mut self, count: usize) -> Result<Claim<'_>, Full> {
        assert!(
            count <= self.shared.spec.capacity,
            "a claim of {count} slots can never fit a ring of {}",
            self.shared.spec.capacity
        );
        self.ensure_free(count as u64)?;
        Ok(Claim {
            first_seq: self.next,
            count,
            pushed: 0,
            producer: self,
        })
    }

    /// Like [`Producer::try_publish`], but waits for a free slot with `wait` for at most
    /// `timeout`, refreshing the producer's heartbeat while it waits.
    pub fn publish_wait(
        &mut self,
        msg: &[u8],
        wait: &WaitStrategy,
        timeout: Duration,
    ) -> Result<(), Full> {
        if self.try_publish(msg).is_ok() {
            return Ok(());
        }
        let start_ns = monotonic_ns();
        let timeout_ns = duration_ns(timeout);
        let mut idle = Idle::new();
        loop {
            let read_clock = idle.step(wait);
            if self.try_publish(msg).is_ok() {
                return Ok(());
            }
            if read_clock {
                let now_ns = monotonic_ns();
                self.heartbeat_if_due(now_ns);
                if now_ns.saturating_sub(start_ns) >= timeout_ns {
                    return Err(Full);
                }
            }
        }
    }

    /// The number of slots the producer could fill right now. Reads every consumer's cursor.
    pub fn free_slots(&mut self) -> usize {
        self.cached_gate = self.gate();
        // A consumer that attached with a stale position can leave the gate more than
        // `capacity` behind for a moment: then nothing is free.
        (self.shared.spec.capacity as u64).saturating_sub(self.next - self.cached_gate) as usize
    }

    #[inline(always)]
    fn ensure_free(&mut self, count: u64) -> Result<(), Full> {
        let capacity = self.shared.spec.capacity as u64;
        // `cached_gate <= next` always, and a consumer that attached with a stale position may
        // put the gate more than `capacity` behind: then the ring is simply full until it moves.
        if self.next + count - self.cached_gate > capacity {
            self.cached_gate = self.gate();
            if self.next + count - self.cached_gate > capacity {
                return Err(Full);
            }
        }
        Ok(())
    }

    /// The lowest cursor among consumer slots that are not free, or `next` if there are none.
    #[cold]
    fn gate(&self) -> u64 {
        // Pairs with the fence in `Consumer::attach`: either this scan sees the new consumer's
        // claim of its slot, or the attacher's read of the producer cursor sees every sequence
        // published before this fence, and so starts no lower than the gate computed here.
        fence(Ordering::SeqCst);
        let mut gate = self.next;
        for index in 0..self.shared.spec.consumers_max {
            let state = self
                .shared
                .consumer(index, CONSUMER_STATE)
                .load(Ordering::Acquire);
            if state & TAG_MASK != TAG_FREE {
                let cursor = self
                    .shared
                    .consumer(index, CONSUMER_CURSOR)
                    .load(Ordering::Acquire);
                gate = gate.min(cursor);
            }
        }
        gate
    }

    /// Stores the current time as the producer's heartbeat. Call it from the duty cycle, every
    /// millisecond or so; consumers compare its age with their `stale_after`.
    pub fn heartbeat(&mut self) {
        self.store_heartbeat(monotonic_ns());
    }

    fn heartbeat_if_due(&mut self, now_ns: u64) {
        if now_ns.saturating_sub(self.last_heartbeat_ns) >= IDLE_HEARTBEAT_INTERVAL_NS {
            self.store_heartbeat(now_ns);
        }
    }

    fn store_heartbeat(&mut self, now_ns: u64) {
        self.last_heartbeat_ns = now_ns;
        self.shared
            .producer(PRODUCER_HEARTBEAT_NS)
            .store(now_ns, Ordering::Relaxed);
    }

    /// The number of consumer slots held by a consumer that has finished attaching (a dead
    /// holder counts until it is detached).
    pub fn attached_consumers(&self) -> usize {
        // Only consumers that finished attaching count: one still attaching has not fixed its
        // start position yet, so with `Start::Producer` it could start after a message
        // published now (seen as a rare test failure under load, and it would silently drop
        // a producer's first command).
        (0..self.shared.spec.consumers_max)
            .filter(|&i| {
                self.shared
                    .consumer(i, CONSUMER_STATE)
                    .load(Ordering::Acquire)
                    & TAG_MASK
                    == TAG_ATTACHED
            })
            .count()
    }

    /// Whether consumer slot `index` is free, or who holds it and whether they are alive.
    pub fn consumer_status(
        &self,
        index: usize,
        stale_after: Duration,
    ) -> Result<ConsumerStatus, RingError> {
        self.check_index(index)?;
        Ok(self.shared.consumer_status(index, stale_after))
    }

    /// Frees consumer slot `index`, so that it no longer gates the producer: the way to go on
    /// past a consumer that died. Returns whether the slot was held.
    ///
    /// Meant for consumers whose process is gone ([`PeerStatus::Exited`]); kill a hung one
    /// first. A live consumer that is detached gets [`Evicted`] at its next message and hands
    /// out nothing more, but a batch it was committing at that very moment could still move the
    /// cursor of a consumer that re-attaches to the slot immediately after.
    pub fn detach_consumer(&mut self, index: usize) -> Result<bool, RingError> {
        self.check_index(index)?;
        let state_word = self.shared.consumer(index, CONSUMER_STATE);
        let mut state = state_word.load(Ordering::Acquire);
        loop {
            if state & TAG_MASK == TAG_FREE {
                return Ok(false);
            }
            match state_word.compare_exchange(
                state,
                state & !TAG_MASK | TAG_FREE,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        // Orders the release of the slot before any later slot write, for the consumer-side
        // check in `Consumer::poll` (slot copy, Acquire fence, state load).
        fence(Ordering::SeqCst);
        Ok(true)
    }

    /// Detaches every consumer whose process no longer exists; returns how many.
    pub fn detach_exited_consumers(&mut self) -> usize {
        let mut detached = 0;
        for index in 0..self.shared.spec.consumers_max {
            let status = self.shared.consumer_status(index, Duration::MAX);
            if let ConsumerStatus::Held(PeerStatus::Exited { .. }) = status {
                if matches!(self.detach_consumer(index), Ok(true)) {
                    detached += 1;
                }
            }
        }
        detached
    }

    fn check_index(&self, index: usize) -> Result<(), RingError> {
        if index < self.shared.spec.consumers_max {
            Ok(())
        } else {
            Err(RingError::NoSuchConsumer {
                index,
                consumers_max: self.shared.spec.consumers_max,
            })
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.shared
            .producer(PRODUCER_STATE)
            .store(PRODUCER_CLOSED, Ordering::Release);
    }
}

/// Slots claimed by [`Producer::try_claim`]. Nothing is visible to consumers until
/// [`Claim::publish`]; dropping the claim unpublished abandons it.
#[must_use = "a claim publishes nothing until `publish` is called"]
pub struct Claim<'a> {
    producer: &'a mut Producer,
    first_seq: u64,
    count: usize,
    pushed: usize,
}

impl Claim<'_> {
    /// The sequence of the first claimed slot.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The number of slots claimed.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Writes the next claimed slot. Panics if all claimed slots are written already.
    #[inline]
    pub fn push(&mut self, msg: &[u8]) {
        assert!(
            self.pushed < self.count,
            "claim of {} slots is full",
            self.count
        );
        self.producer
            .shared
            .write_slot(self.first_seq + self.pushed as u64, msg);
        self.pushed += 1;
    }

    /// Publishes the slots pushed so far with one store of the producer cursor.
    #[inline]
    pub fn publish(self) {
        let producer = self.producer;
        producer.next = self.first_seq + self.pushed as u64;
        producer
            .shared
            .producer_cursor()
            .store(producer.next, Ordering::Release);
    }
}

/// One broadcast consumer: it sees every message published after it attached, in order.
pub struct Consumer {
    shared: Shared,
    index: usize,
    /// The state word this consumer installed; any other value means it was evicted.
    state: u64,
    /// The next sequence to consume; equal to the published consumer cursor between calls.
    next: u64,
    /// The producer cursor when last loaded; never below `next`.
    cached_published: u64,
    /// A private copy of the slot being handled, so the handler never sees shared memory.
    buf: Box<[u8]>,
    last_heartbeat_ns: u64,
}

impl Consumer {
    /// Opens the ring at `path`, checks it has the shape `spec`, and attaches to consumer slot
    /// `index`. A slot held by a live process is refused; a slot whose holder died is taken
    /// over, starting where `start` says.
    pub fn attach(
        path: impl AsRef<Path>,
        spec: RingSpec,
        index: usize,
        start: Start,
    ) -> Result<Consumer, RingError> {
        let shared = Shared::open(path.as_ref(), spec)?;
        if index >= spec.consumers_max {
            return Err(RingError::NoSuchConsumer {
                index,
                consumers_max: spec.consumers_max,
            });
        }
        let state_word = shared.consumer(index, CONSUMER_STATE);
        let mut state = state_word.load(Ordering::Acquire);
        let was_free = loop {
            let tag = state & TAG_MASK;
            if tag == TAG_FREE && start == Start::Resume {
                return Err(RingError::CannotResume { index });
            }
            if tag != TAG_FREE {
                let pid = shared.consumer(index, CONSUMER_PID).load(Ordering::Relaxed);
                if tag == TAG_ATTACHING || process_exists(pid) {
                    return Err(RingError::ConsumerSlotBusy { index, pid });
                }
            }
            // Claiming with a new generation tells an evicted holder it lost the slot.
            let claimed = ((state >> 2) + 1) << 2 | TAG_ATTACHING;
            match state_word.compare_exchange(state, claimed, Ordering::SeqCst, Ordering::Acquire) {
                Ok(_) => break tag == TAG_FREE,
                Err(now) => state = now,
            }
        };
        let generation = (state >> 2) + 1;
        // Pairs with the fence in `Producer::gate` (see there). A slot claimed from free gates
        // the producer from this point with whatever cursor it held, which is at most the
        // producer cursor read below, so the producer can only be held back, never run ahead.
        fence(Ordering::SeqCst);
        let now_ns = monotonic_ns();
        shared
            .consumer(index, CONSUMER_PID)
            .store(own_pid(), Ordering::Relaxed);
        shared
            .consumer(index, CONSUMER_HEARTBEAT_NS)
            .store(now_ns, Ordering::Relaxed);
        let cursor = shared.consumer(index, CONSUMER_CURSOR);
        let next = if start == Start::Resume && !was_free {
            cursor.load(Ordering::Acquire)
        } else {
            let published = shared.producer_cursor().load(Ordering::Acquire);
            cursor.store(published, Ordering::Release);
            published
        };
        // A compare-exchange rather than a store: if the producer detached the slot while it was
        // attaching, the slot must stay free (the producer no longer gates on it).
        let attached = generation << 2 | TAG_ATTACHED;
        if state_word
            .compare_exchange(
                generation << 2 | TAG_ATTACHING,
                attached,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(RingError::AttachInterrupted { index });
        }
        let slot_bytes = spec.slot_bytes;
        Ok(Consumer {
            shared,
            index,
            state: attached,
            next,
            cached_published: next,
            buf: vec![0; slot_bytes].into_boxed_slice(),
            last_heartbeat_ns: now_ns,
        })
    }

    pub fn spec(&self) -> RingSpec {
        self.shared.spec
    }

    pub fn index(&self) -> usize {
        self.index
    }

    /// The next sequence this consumer will see.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// How many published messages this consumer has not consumed yet.
    pub fn available(&self) -> u64 {
        self.shared.producer_cursor().load(Ordering::Acquire) - self.next
    }

    /// Hands up to `max_batch` available messages, in order, to `handler(seq, slot)`, then
    /// publishes the consumer cursor once; returns how many. `slot` is a private copy of the
    /// whole slot (`slot_bytes` long), valid during the call only.
    #[inline]
    pub fn poll(
        &mut self,
        max_batch: usize,
        mut handler: impl FnMut(u64, &[u8]),
    ) -> Result<usize, Evicted> {
        let next = self.next;
        if self.cached_published == next {
            self.cached_published = self.shared.producer_cursor().load(Ordering::Acquire);
            if self.cached_published == next {
                self.check_attached()?;
                return Ok(0);
            }
        }
        let end = self
            .cached_published
            .min(next.saturating_add(max_batch as u64));
        for seq in next..end {
            self.shared.read_slot(seq, &mut self.buf);
            // A producer overwrites a slot it is not gated on only after detaching this
            // consumer (and a SeqCst fence there), so if the copy above saw such a write, this
            // Acquire fence makes the state load below see the detach.
            fence(Ordering::Acquire);
            self.check_attached()?;
            handler(seq, &self.buf);
        }
        self.next = end;
        self.shared
            .consumer(self.index, CONSUMER_CURSOR)
            .store(end, Ordering::Release);
        Ok((end - next) as usize)
    }

    #[inline(always)]
    fn check_attached(&self) -> Result<(), Evicted> {
        let state = self
            .shared
            .consumer(self.index, CONSUMER_STATE)
            .load(Ordering::Relaxed);
        if state == self.state {
            Ok(())
        } else {
            Err(Evicted { index: self.index })
        }
    }

    /// Like [`Consumer::poll`], but waits with `wait` for at least one message, for at most
    /// `timeout` (then returns `Ok(0)`, so the caller can check [`Consumer::producer_status`]),
    /// refreshing this consumer's heartbeat while it waits.
    pub fn poll_wait(
        &mut self,
        wait: &WaitStrategy,
        timeout: Duration,
        max_batch: usize,
        mut handler: impl FnMut(u64, &[u8]),
    ) -> Result<usize, Evicted> {
        let n = self.poll(max_batch, &mut handler)?;
        if n > 0 || max_batch == 0 {
            return Ok(n);
        }
        let start_ns = monotonic_ns();
        let timeout_ns = duration_ns(timeout);
        let mut idle = Idle::new();
        loop {
            let read_clock = idle.step(wait);
            let n = self.poll(max_batch, &mut handler)?;
            if n > 0 {
                return Ok(n);
            }
            if read_clock {
                let now_ns = monotonic_ns();
                self.heartbeat_if_due(now_ns);
                if now_ns.saturating_sub(start_ns) >= timeout_ns {
                    return Ok(0);
                }
            }
        }
    }

    /// Stores the current time as this consumer's heartbeat; call it from the duty cycle.
    pub fn heartbeat(&mut self) {
        self.store_heartbeat(monotonic_ns());
    }

    fn heartbeat_if_due(&mut self, now_ns: u64) {
        if now_ns.saturating_sub(self.last_heartbeat_ns) >= IDLE_HEARTBEAT_INTERVAL_NS {
            self.store_heartbeat(now_ns);
        }
    }

    fn store_heartbeat(&mut self, now_ns: u64) {
        self.last_heartbeat_ns = now_ns;
        self.shared
            .consumer(self.index, CONSUMER_HEARTBEAT_NS)
            .store(now_ns, Ordering::Relaxed);
    }

    /// Whether the producer is alive: [`PeerStatus::Alive`] from [`Consumer::producer_status`].
    pub fn producer_alive(&self, stale_after: Duration) -> bool {
        self.producer_status(stale_after) == PeerStatus::Alive
    }

    /// The producer's state: closed, exited (pid gone), stale (heartbeat older than
    /// `stale_after`) or alive. Messages already published can still be consumed in every case.
    pub fn producer_status(&self, stale_after: Duration) -> PeerStatus {
        self.shared.producer_status(stale_after)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Frees the slot only if it is still ours; an evicted consumer must not free its
        // successor's slot.
        let _ = self
            .shared
            .consumer(self.index, CONSUMER_STATE)
            .compare_exchange(
                self.state,
                self.state & !TAG_MASK | TAG_FREE,
                Ordering::Release,
                Ordering::Relaxed,
            );
    }
}
