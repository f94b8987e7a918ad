//! One-way hop latency between two pinned threads, through a `ferrox_sequencer::ring` ring and
//! through a bare in-process SPSC ring (two `AtomicU64` cursors and an array of slots of the
//! same size), in the same run, so that the cost of the shared-memory ring's file mapping,
//! header and eviction check can be read off directly.
//!
//! The sender waits until the previous message was consumed, spins a moment, reads the clock,
//! writes the timestamp into the payload and publishes; the receiver busy-spins, and on receipt
//! reads the clock and records the difference. The clock is `rdtsc` (fenced with `lfence`,
//! calibrated against `Instant`) on x86-64 and `Instant` elsewhere; the time-stamp counter is
//! synchronised across cores on every CPU with an invariant TSC, which the run checks by
//! refusing negative hops.
//!
//! ```text
//! cargo run --release -p ferrox-sequencer --example ring_hop -- [samples] [sender_core receiver_core]
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use core_affinity::CoreId;
use ferrox_sequencer::ring::{Consumer, Producer, RingSpec, Start, WaitStrategy};
use hdrhistogram::Histogram;

const SLOT_BYTES: usize = 64;
const SLOT_WORDS: usize = SLOT_BYTES / 8;
const CAPACITY: usize = 1024;
/// The sender's pause between one message being consumed and the next being sent, so that
/// every hop starts from an idle ring, as a command arriving at an idle engine does.
const GAP: Duration = Duration::from_nanos(500);

/// A calibrated tick source shared by both threads.
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
    ticks_per_ns: f64,
    rdtsc: bool,
}

impl Clock {
    fn new() -> Clock {
        let base = Instant::now();
        let mut clock = Clock {
            base,
            ticks_per_ns: 1.0,
            rdtsc: cfg!(target_arch = "x86_64"),
        };
        if clock.rdtsc {
            let t0 = Instant::now();
            let c0 = clock.ticks();
            while t0.elapsed() < Duration::from_millis(100) {
                std::hint::spin_loop();
            }
            let c1 = clock.ticks();
            clock.ticks_per_ns = (c1 - c0) as f64 / t0.elapsed().as_nanos() as f64;
        }
        clock
    }

    #[inline(always)]
    fn ticks(&self) -> u64 {
        if self.rdtsc {
            rdtsc_fenced()
        } else {
            self.base.elapsed().as_nanos() as u64
        }
    }

    fn ns(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_ns
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rdtsc_fenced() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: `lfence` and `rdtsc` exist on every x86-64 CPU and touch no memory; the fences
    // keep earlier loads (the payload, on the receiver) from completing after the read.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn rdtsc_fenced() -> u64 {
    unreachable!("Clock uses Instant off x86-64")
}

fn spin_for(clock: &Clock, ticks: u64) {
    let start = clock.ticks();
    while clock.ticks() - start < ticks {
        std::hint::spin_loop();
    }
}

fn pin(core: CoreId, who: &str) {
    assert!(
        core_affinity::set_for_current(core),
        "could not pin the {who} thread to core {}",
        core.id
    );
}

/// The baseline: a minimal single-producer single-consumer ring in process memory. The slots
/// are `AtomicU64` words accessed with `Relaxed` (plain moves on x86-64), so no unsafe code is
/// needed; the cursors carry the `Release`/`Acquire` ordering, as in the real ring.
struct Baseline {
    head: Padded,
    tail: Padded,
    slots: Box<[AtomicU64]>,
}

#[repr(align(128))]
struct Padded(AtomicU64);

impl Baseline {
    fn new() -> Baseline {
        Baseline {
            head: Padded(AtomicU64::new(0)),
            tail: Padded(AtomicU64::new(0)),
            slots: (0..CAPACITY * SLOT_WORDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn slot(&self, seq: u64) -> &[AtomicU64] {
        let i = (seq as usize & (CAPACITY - 1)) * SLOT_WORDS;
        &self.slots[i..i + SLOT_WORDS]
    }
}

struct Run {
    hops: Histogram<u64>,
    negative: u64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1 << 40, 3).expect("histogram bounds")
}

fn record(run: &mut Run, sent: u64, now: u64) {
    if now < sent {
        run.negative += 1;
    } else {
        run.hops
            .record((now - sent).max(1))
            .expect("hop within bounds");
    }
}

fn hop_ring(clock: Clock, cores: (CoreId, CoreId), warmup: u64, samples: u64) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("ferrox-ring-hop")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temporary directory");
    let path = dir.path().join("ring");
    let spec = RingSpec::new(SLOT_BYTES, CAPACITY, 1).expect("spec");
    let mut producer = Producer::create(&path, spec).expect("create ring");
    let mut consumer = Consumer::attach(&path, spec, 0, Start::Producer).expect("attach");
    let total = warmup + samples;
    let receiver = thread::spawn(move || {
        pin(cores.1, "receiver");
        let mut run = Run {
            hops: new_histogram(),
            negative: 0,
        };
        // The library's busy-spin wait: `poll`, then `spin_loop` between empty polls, as the
        // baseline does (without the pause hint, leaving the spin costs a pipeline flush).
        while consumer.next_seq() < total {
            consumer
                .poll_wait(
                    &WaitStrategy::BusySpin,
                    Duration::from_secs(10),
                    usize::MAX,
                    |seq, slot| {
                        let now = clock.ticks();
                        let sent = u64::from_ne_bytes(slot[..8].try_into().expect("8 bytes"));
                        if seq >= warmup {
                            record(&mut run, sent, now);
                        }
                    },
                )
                .expect("not evicted");
        }
        run
    });
    let gap_ticks = (GAP.as_nanos() as f64 * clock.ticks_per_ns) as u64;
    let sender = thread::spawn(move || {
        pin(cores.0, "sender");
        let mut msg = [0u8; SLOT_BYTES];
        for seq in 0..total {
            while producer.free_slots() < CAPACITY {
                std::hint::spin_loop();
            }
            spin_for(&clock, gap_ticks);
            msg[8..16].copy_from_slice(&seq.to_ne_bytes());
            msg[..8].copy_from_slice(&clock.ticks().to_ne_bytes());
            producer.try_publish(&msg).expect("the ring is empty");
        }
    });
    sender.join().expect("sender");
    receiver.join().expect("receiver")
}

fn hop_baseline(clock: Clock, cores: (CoreId, CoreId), warmup: u64, samples: u64) -> Run {
    let ring = Arc::new(Baseline::new());
    let total = warmup + samples;
    let rx = Arc::clone(&ring);
    let receiver = thread::spawn(move || {
        pin(cores.1, "receiver");
        let mut run = Run {
            hops: new_histogram(),
            negative: 0,
        };
        let mut words = [0u64; SLOT_WORDS];
        let mut next = 0;
        while next < total {
            let head = rx.head.0.load(Ordering::Acquire);
            if head == next {
                std::hint::spin_loop();
                continue;
            }
            for seq in next..head {
                for (word, cell) in words.iter_mut().zip(rx.slot(seq)) {
                    *word = cell.load(Ordering::Relaxed);
                }
                let now = clock.ticks();
                if seq >= warmup {
                    record(&mut run, words[0], now);
                }
            }
            next = head;
            rx.tail.0.store(next, Ordering::Release);
        }
        run
    });
    let gap_ticks = (GAP.as_nanos() as f64 * clock.ticks_per_ns) as u64;
    let sender = thread::spawn(move || {
        pin(cores.0, "sender");
        let mut msg = [0u64; SLOT_WORDS];
        for seq in 0..total {
            while ring.tail.0.load(Ordering::Acquire) != seq {
                std::hint::spin_loop();
            }
            spin_for(&clock, gap_ticks);
            msg[1] = seq;
            msg[0] = clock.ticks();
            for (cell, word) in ring.slot(seq).iter().zip(msg) {
                cell.store(word, Ordering::Relaxed);
            }
            ring.head.0.store(seq + 1, Ordering::Release);
        }
    });
    sender.join().expect("sender");
    receiver.join().expect("receiver")
}

fn report(name: &str, clock: &Clock, run: &Run) {
    let h = &run.hops;
    let q = |quantile: f64| clock.ns(h.value_at_quantile(quantile));
    println!(
        "{name:<22} n={:<9} p50={:>7.1} ns  p99={:>7.1} ns  p99.9={:>8.1} ns  max={:>10.1} ns  \
         mean={:>7.1} ns  negative={}",
        h.len(),
        q(0.50),
        q(0.99),
        q(0.999),
        clock.ns(h.max()),
        h.mean() / clock.ticks_per_ns,
        run.negative
    );
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let samples: u64 = args
        .first()
        .map(|s| s.parse().expect("samples is a number"))
        .unwrap_or(1_000_000);
    // The core list is taken once; every pin's result is checked where it happens.
    let cores = core_affinity::get_core_ids().expect("the core list");
    let pick = |i: usize, default: usize| -> CoreId {
        let id = args
            .get(i)
            .map(|s| s.parse().expect("core id is a number"))
            .unwrap_or(default);
        *cores
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("core {id} is not in the core list {cores:?}"))
    };
    assert!(cores.len() >= 2, "need two cores for a hop, have {cores:?}");
    let pair = (pick(1, cores[0].id), pick(2, cores[cores.len() - 1].id));
    let warmup = (samples / 10).max(1000);
    let clock = Clock::new();
    println!(
        "ring_hop: {samples} samples (+{warmup} warm-up) of {SLOT_BYTES}-byte slots, \
         sender core {}, receiver core {}, {} cores, clock {} ({:.3} ticks/ns), gap {GAP:?}",
        pair.0.id,
        pair.1.id,
        cores.len(),
        if clock.rdtsc { "rdtsc" } else { "Instant" },
        clock.ticks_per_ns
    );
    println!("load average before: {}", load_average());
    // Interleave the two transports so that a change of machine load hits both alike.
    for round in 1..=2 {
        let ring = hop_ring(clock, pair, warmup, samples / 2);
        report(&format!("ferrox ring (round {round})"), &clock, &ring);
        let base = hop_baseline(clock, pair, warmup, samples / 2);
        report(&format!("bare SPSC (round {round})"), &clock, &base);
    }
    println!("load average after: {}", load_average());
}
