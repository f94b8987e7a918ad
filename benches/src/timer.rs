//! A low-overhead cycle timer for per-command latency: `rdtsc` fenced with `lfence` on x86-64,
//! calibrated against `std::time::Instant`; `Instant` itself elsewhere.
//!
//! The fences keep the timed instructions inside the two reads (an unfenced `rdtsc` may be
//! executed before earlier loads finish or after later ones start). They cost some cycles of
//! their own, which [`Timer::overhead`] measures so that reports can state it.

use std::time::{Duration, Instant};

/// Which clock [`Timer::ticks`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The time-stamp counter, `lfence; rdtsc; lfence`.
    Rdtsc,
    /// `Instant::now()`, in nanoseconds since the timer was made.
    Instant,
}

/// A calibrated tick source.
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    pub kind: TimerKind,
    /// Ticks per nanosecond, measured against `Instant` at start-up.
    pub ticks_per_ns: f64,
    base: Instant,
}

/// The timer's own cost: what an empty timed region reads, in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Overhead {
    pub min_ns: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
    /// The smallest step between two distinct readings of an empty region, ignoring 1-tick
    /// rounding jitter: the timer's effective resolution (on AMD Zen the TSC advances in steps
    /// of the 100 MHz reference clock, i.e. 10 ns, however high its nominal rate).
    pub resolution_ns: f64,
}

impl Timer {
    /// The best timer for this machine, calibrated over about `calibrate` of wall time.
    pub fn new(calibrate: Duration) -> Timer {
        let kind = if cfg!(target_arch = "x86_64") {
            TimerKind::Rdtsc
        } else {
            TimerKind::Instant
        };
        Timer::with_kind(kind, calibrate)
    }

    pub fn with_kind(kind: TimerKind, calibrate: Duration) -> Timer {
        let base = Instant::now();
        let mut timer = Timer {
            kind,
            ticks_per_ns: 1.0,
            base,
        };
        if kind == TimerKind::Rdtsc {
            let t0 = Instant::now();
            let c0 = timer.ticks();
            while t0.elapsed() < calibrate {
                std::hint::spin_loop();
            }
            let c1 = timer.ticks();
            let ns = t0.elapsed().as_nanos() as f64;
            timer.ticks_per_ns = (c1 - c0) as f64 / ns;
        }
        timer
    }

    /// Reads the clock. Only differences of two reads mean anything.
    #[inline(always)]
    pub fn ticks(&self) -> u64 {
        match self.kind {
            TimerKind::Rdtsc => rdtsc_fenced(),
            TimerKind::Instant => self.base.elapsed().as_nanos() as u64,
        }
    }

    #[inline]
    pub fn to_ns(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_ns
    }

    /// Measures `samples` empty timed regions (two back-to-back reads).
    pub fn overhead(&self, samples: usize) -> Overhead {
        let mut v: Vec<u64> = Vec::with_capacity(samples);
        for _ in 0..samples {
            let a = self.ticks();
            let b = self.ticks();
            v.push(b.saturating_sub(a));
        }
        v.sort_unstable();
        let at = |q: f64| self.to_ns(v[((v.len() - 1) as f64 * q) as usize]);
        let mut distinct = v.clone();
        distinct.dedup();
        let step = distinct
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&d| d > 1)
            .min()
            .unwrap_or(1);
        Overhead {
            min_ns: at(0.0),
            p50_ns: at(0.5),
            p99_ns: at(0.99),
            resolution_ns: self.to_ns(step),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rdtsc_fenced() -> u64 {
    use core::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: `lfence` and `rdtsc` exist on every x86-64 CPU and touch no memory.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn rdtsc_fenced() -> u64 {
    unreachable!("TimerKind::Rdtsc is only chosen on x86-64")
}
