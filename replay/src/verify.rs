//! `verify`: re-execute the journal with the engine code and check it against the record.
//!
//! Events are not journalled, only commands, so the record a replay can be checked against
//! is the set of snapshot files the running exchange wrote (each the engine's full state at a
//! seq) together with determinism itself. Verify therefore checks two things:
//!
//! 1. **State.** The journal is re-applied from the start (or from a chosen snapshot), and at
//!    every snapshot seq the replay passes, the replayed engine's `state_hash()` must equal the
//!    hash of the engine restored from that file. On a mismatch the books of both engines are
//!    diffed to name the instrument and the first differing level or order.
//! 2. **Events.** From the newest snapshot before the journal's end on, a second engine
//!    restored from that snapshot is run in lockstep with the first, and the two event streams
//!    are compared event by event.
//!    A restore that lost some state the hash does not see shows up here.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrox_engine::{BookSnapshot, Engine, EngineConfig, Event, InstrumentId, NullSink, VecSink};

use crate::progress::Progress;
use crate::source::{new_engine, DataDir, ReplayError};

/// Where verify starts and what it reports on.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Start from the snapshot with this seq instead of from the journal's start.
    pub from_snapshot: Option<u64>,
    /// Draw a progress bar on stderr if it is a terminal.
    pub progress: bool,
}

/// The first place where the replay and the record disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// The replayed state after `seq` differs from the snapshot file's.
    State {
        seq: u64,
        snapshot: PathBuf,
        replayed_hash: u64,
        snapshot_hash: u64,
        /// Which instrument's book differs and where, or what other state differs.
        detail: String,
    },
    /// The event streams of the replay from the start and from the snapshot differ.
    Events {
        seq: u64,
        event_index: usize,
        from_start: Option<Event>,
        from_snapshot: Option<Event>,
    },
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Divergence::State {
                seq,
                snapshot,
                replayed_hash,
                snapshot_hash,
                detail,
            } => write!(
                f,
                "state diverges at seq {seq}: replayed state hash {replayed_hash:016x}, snapshot {} has {snapshot_hash:016x}; {detail}",
                snapshot.display()
            ),
            Divergence::Events {
                seq,
                event_index,
                from_start,
                from_snapshot,
            } => write!(
                f,
                "events diverge at seq {seq}, event {event_index}: replay from the start gave {from_start:?}, replay from the snapshot gave {from_snapshot:?}"
            ),
        }
    }
}

/// What a verify found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// Commands re-applied by the main replay.
    pub commands: u64,
    /// The snapshot the main replay started from, if any.
    pub started_from: Option<u64>,
    /// Snapshot seqs whose state was compared.
    pub snapshots_checked: Vec<u64>,
    /// Snapshot files that could not be used, with the reason.
    pub snapshots_skipped: Vec<(PathBuf, String)>,
    /// The snapshot the second, event-comparing replay started from.
    pub events_from: Option<u64>,
    /// Commands and events compared by the second replay.
    pub events_commands: u64,
    pub events_compared: u64,
    pub last_seq: u64,
    pub final_state_hash: u64,
    pub elapsed: Duration,
    /// `None` when everything agreed.
    pub divergence: Option<Divergence>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.divergence.is_none()
    }

    /// Commands per second of the main replay.
    pub fn rate(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Verifies the journal and snapshots of `dir` with the engine configuration `config`.
pub fn verify(
    dir: &DataDir,
    config: &EngineConfig,
    options: &VerifyOptions,
) -> Result<VerifyReport, ReplayError> {
    let started = Instant::now();
    let snapshots = dir.snapshots()?;
    let first = dir.first_seq().unwrap_or(1);
    let (mut engine, from, started_from) = match options.from_snapshot {
        Some(seq) => {
            let Some((_, path)) = snapshots.iter().find(|(s, _)| *s == seq) else {
                return Err(ReplayError::Invalid(format!("no snapshot with seq {seq}")));
            };
            let (s, engine) = dir.load_snapshot(path, config)?;
            (engine, s + 1, Some(s))
        }
        None => {
            if first > 1 {
                return Err(ReplayError::NoBase {
                    first,
                    needed: first - 1,
                });
            }
            (new_engine(config)?, 1, None)
        }
    };
    if from < first {
        return Err(ReplayError::NoBase {
            first,
            needed: first - 1,
        });
    }
    // Snapshots the replay will pass, in order; damaged ones are reported, not fatal, because
    // the exchange itself passes over them at restart.
    let mut skipped = Vec::new();
    let checks: Vec<(u64, PathBuf)> = snapshots.into_iter().filter(|(s, _)| *s >= from).collect();
    // The event comparison starts at the newest snapshot before the journal's end: the
    // exchange also writes one at shutdown, at the very last seq, which would leave nothing
    // to compare.
    let end = dir.last_seq_hint().unwrap_or(u64::MAX);
    let newest = checks
        .iter()
        .rev()
        .map(|(s, _)| *s)
        .find(|s| *s < end)
        .or_else(|| checks.last().map(|(s, _)| *s));
    let mut next_check = 0;
    let mut report = VerifyReport {
        commands: 0,
        started_from,
        snapshots_checked: Vec::new(),
        snapshots_skipped: Vec::new(),
        events_from: None,
        events_commands: 0,
        events_compared: 0,
        last_seq: engine.last_seq(),
        final_state_hash: 0,
        elapsed: Duration::ZERO,
        divergence: None,
    };
    let mut progress = Progress::new(options.progress, "verify");
    let mut second: Option<Engine> = None;
    let mut sink_a = VecSink::default();
    let mut sink_b = VecSink::default();
    let mut commands = dir.commands_from(from);
    'replay: loop {
        // Up to the next snapshot seq (`limit`). Once the newest snapshot has been checked, a
        // second engine restored from it runs in lockstep and the events are compared; before
        // that, the fast path applies with a NullSink and keeps no events.
        let limit = checks.get(next_check).map_or(u64::MAX, |(s, _)| *s);
        if let Some(b) = second.as_mut() {
            for c in commands.by_ref() {
                let c = c?;
                let cmd = c.sequenced();
                engine.apply(&cmd, &mut sink_a);
                b.apply(&cmd, &mut sink_b);
                report.commands += 1;
                report.events_commands += 1;
                if let Some(d) = compare_events(c.seq, &sink_a.events, &sink_b.events) {
                    report.divergence = Some(d);
                    break 'replay;
                }
                let n = sink_a.events.len();
                report.events_compared += n as u64;
                sink_a.events.clear();
                sink_b.events.clear();
                if report.commands & 0xF_FFFF == 0 {
                    progress.set(report.commands);
                }
                if c.seq >= limit {
                    break;
                }
            }
        } else {
            for c in commands.by_ref() {
                let c = c?;
                engine.apply(&c.sequenced(), &mut NullSink);
                report.commands += 1;
                if report.commands & 0xF_FFFF == 0 {
                    progress.set(report.commands);
                }
                if c.seq >= limit {
                    break;
                }
            }
        }
        let Some((seq, path)) = checks.get(next_check) else {
            break;
        };
        if engine.last_seq() < *seq {
            // The journal ended before this snapshot: the snapshot is past the journal (an
            // async-mode power cut can cause that), so it cannot be checked.
            for (s, p) in &checks[next_check..] {
                skipped.push((p.clone(), format!("covers seq {s}, past the journal's end")));
            }
            break;
        }
        next_check += 1;
        match dir.load_snapshot(path, config) {
            Err(e) => skipped.push((path.clone(), e.to_string())),
            Ok((_, recorded)) => {
                report.snapshots_checked.push(*seq);
                let (a, b) = (engine.state_hash(), recorded.state_hash());
                if a != b {
                    report.divergence = Some(Divergence::State {
                        seq: *seq,
                        snapshot: path.clone(),
                        replayed_hash: a,
                        snapshot_hash: b,
                        detail: diff_engines(&engine, &recorded),
                    });
                    break;
                }
                if Some(*seq) == newest {
                    report.events_from = Some(*seq);
                    second = Some(recorded);
                }
            }
        }
    }
    progress.finish(report.commands);
    report.snapshots_skipped = skipped;
    report.last_seq = engine.last_seq();
    report.final_state_hash = engine.state_hash();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The first difference between the events two replays gave for the command `seq`; a
/// missing event on one side is a difference too.
pub fn compare_events(
    seq: u64,
    from_start: &[Event],
    from_snapshot: &[Event],
) -> Option<Divergence> {
    (0..from_start.len().max(from_snapshot.len())).find_map(|i| {
        let (x, y) = (from_start.get(i), from_snapshot.get(i));
        (x != y).then(|| Divergence::Events {
            seq,
            event_index: i,
            from_start: x.copied(),
            from_snapshot: y.copied(),
        })
    })
}

/// Describes the first difference between two engines' states, books first.
pub fn diff_engines(a: &Engine, b: &Engine) -> String {
    for (i, spec) in a.instruments().iter().enumerate() {
        let id = InstrumentId(i as u32);
        match (a.book(id), b.book(id)) {
            (Some(x), Some(y)) => {
                if let Some(d) = diff_books(&x, &y) {
                    return format!("instrument {} book differs: {d}", spec.symbol);
                }
            }
            (x, y) if x.is_some() != y.is_some() => {
                return format!("instrument {} exists in only one engine", spec.symbol)
            }
            _ => {}
        }
    }
    let fields = [
        ("last seq", a.last_seq(), b.last_seq()),
        ("last ts_ns", a.last_ts_ns(), b.last_ts_ns()),
        ("next trade id", a.next_trade_id(), b.next_trade_id()),
        (
            "live orders",
            u64::from(a.orders_live()),
            u64::from(b.orders_live()),
        ),
        (
            "commands applied",
            a.commands_applied(),
            b.commands_applied(),
        ),
    ];
    for (name, x, y) in fields {
        if x != y {
            return format!("books are equal; {name} differs: replayed {x}, snapshot {y}");
        }
    }
    let (ga, gb) = (a.gtd_orders(), b.gtd_orders());
    if ga != gb {
        return "books are equal; the GTD expiry schedules differ".to_string();
    }
    "books, counters and GTD schedule are equal; the difference is in state only the hash covers"
        .to_string()
}

/// The first difference between two books of the same instrument, `None` if equal.
/// `a` is the replayed book and `b` the recorded one. Levels and orders are compared first,
/// because they are what a reader of the report wants to look at.
pub fn diff_books(a: &BookSnapshot, b: &BookSnapshot) -> Option<String> {
    for (name, x, y) in [("bid", &a.bids, &b.bids), ("ask", &a.asks, &b.asks)] {
        for i in 0..x.len().max(y.len()) {
            let (lx, ly) = match (x.get(i), y.get(i)) {
                (Some(lx), Some(ly)) => (lx, ly),
                (lx, ly) => {
                    let show = |l: Option<&ferrox_engine::LevelSnapshot>| {
                        l.map_or("none".to_string(), |l| {
                            format!(
                                "{} x {} ({} orders)",
                                l.price.0,
                                l.qty_total.0,
                                l.orders.len()
                            )
                        })
                    };
                    return Some(format!(
                        "{name} level {i}: replayed {}, snapshot {}",
                        show(lx),
                        show(ly)
                    ));
                }
            };
            if lx.price != ly.price || lx.qty_total != ly.qty_total {
                return Some(format!(
                    "{name} level {i}: replayed {} x {}, snapshot {} x {}",
                    lx.price.0, lx.qty_total.0, ly.price.0, ly.qty_total.0
                ));
            }
            for j in 0..lx.orders.len().max(ly.orders.len()) {
                let (ox, oy) = (lx.orders.get(j), ly.orders.get(j));
                if ox != oy {
                    return Some(format!(
                        "{name} level {i} (price {}), order {j} in time priority: replayed {ox:?}, snapshot {oy:?}",
                        lx.price.0
                    ));
                }
            }
        }
    }
    if a.status != b.status {
        return Some(format!(
            "status: replayed {:?}, snapshot {:?}",
            a.status, b.status
        ));
    }
    if a.last_trade_price != b.last_trade_price {
        return Some(format!(
            "last trade price: replayed {:?}, snapshot {:?}",
            a.last_trade_price, b.last_trade_price
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrox_engine::event::BookDelta;
    use ferrox_engine::{PriceTicks, QtyLots, Side};

    fn delta(qty: u64) -> Event {
        Event::BookDelta(BookDelta {
            instrument: InstrumentId(0),
            side: Side::Buy,
            price: PriceTicks(100),
            qty_total: QtyLots(qty),
            order_count: 1,
        })
    }

    #[test]
    fn event_streams_are_compared_event_by_event() {
        assert_eq!(compare_events(5, &[delta(1)], &[delta(1)]), None);
        let d = compare_events(7, &[delta(1), delta(2)], &[delta(1), delta(3)]).unwrap();
        assert_eq!(
            d,
            Divergence::Events {
                seq: 7,
                event_index: 1,
                from_start: Some(delta(2)),
                from_snapshot: Some(delta(3)),
            }
        );
        assert!(d.to_string().contains("seq 7, event 1"));
        let missing = compare_events(8, &[delta(1)], &[]).unwrap();
        assert!(matches!(
            missing,
            Divergence::Events {
                event_index: 0,
                from_snapshot: None,
                ..
            }
        ));
    }
}
