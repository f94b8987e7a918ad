//! `book`: the L2 or L3 book of an instrument at a seq or at a time.
//!
//! The engine is restored from the newest snapshot at or before the target and only the
//! journal tail after it is replayed, so a query near the end of a long journal costs a
//! snapshot load plus at most one snapshot interval of commands.

use std::io::Write;

use ferrox_engine::{BookSnapshot, Engine, EngineConfig, InstrumentId, NullSink};

use crate::export::{decimal, iso8601, Format};
use crate::source::{new_engine, DataDir, ReplayError};

/// The point in history to rebuild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// After the command with this seq.
    Seq(u64),
    /// After the last command with a timestamp at or before this (ns since the epoch).
    Time(u64),
    /// After the journal's last command.
    End,
}

/// An engine rebuilt at a point, and how.
pub struct Rebuilt {
    pub engine: Engine,
    /// The snapshot used as the starting point, if any.
    pub snapshot: Option<u64>,
    /// Commands replayed after it.
    pub replayed: u64,
}

/// Rebuilds the engine at `at`, starting from the newest snapshot at or before it.
pub fn engine_at(dir: &DataDir, config: &EngineConfig, at: At) -> Result<Rebuilt, ReplayError> {
    let first = dir.first_seq().unwrap_or(1);
    let mut base = None;
    // Newest first: the first usable snapshot not past the target is the best start.
    for (seq, path) in dir.snapshots()?.into_iter().rev() {
        if let At::Seq(target) = at {
            if seq > target {
                continue;
            }
        }
        let Ok((s, engine)) = dir.load_snapshot(&path, config) else {
            continue;
        };
        if let At::Time(t) = at {
            if engine.last_ts_ns() > t {
                continue;
            }
        }
        base = Some((s, engine));
        break;
    }
    let (snapshot, mut engine) = match base {
        Some((s, e)) => (Some(s), e),
        None if first > 1 => {
            return Err(ReplayError::NoBase {
                first,
                needed: first - 1,
            })
        }
        None => (None, new_engine(config)?),
    };
    let mut replayed = 0;
    for c in dir.commands_from(engine.last_seq().max(first - 1) + 1) {
        let c = c?;
        let past = match at {
            At::Seq(s) => c.seq > s,
            At::Time(t) => c.ts_ns > t,
            At::End => false,
        };
        if past {
            break;
        }
        engine.apply(&c.sequenced(), &mut NullSink);
        replayed += 1;
    }
    if let At::Seq(s) = at {
        if engine.last_seq() < s {
            return Err(ReplayError::Invalid(format!(
                "the journal ends at seq {}, before seq {s}",
                engine.last_seq()
            )));
        }
    }
    Ok(Rebuilt {
        engine,
        snapshot,
        replayed,
    })
}

/// Prints `book` as a ladder (asks above bids), CSV or JSON; `depth` levels per side, and
/// with `l3` every order of each level in time priority.
pub fn write_book(
    out: &mut impl Write,
    engine: &Engine,
    instrument: InstrumentId,
    book: &BookSnapshot,
    depth: usize,
    l3: bool,
    format: Format,
) -> std::io::Result<()> {
    let spec = &engine.instruments()[instrument.0 as usize];
    let px = |p: i64| decimal(p.into(), spec.price_decimals);
    let qty = |q: u64| decimal(q.into(), spec.qty_decimals);
    let sides = [("ask", &book.asks), ("bid", &book.bids)];
    match format {
        Format::Csv => {
            if l3 {
                writeln!(out, "side,level,price,position,order_id,account,qty_open")?;
            } else {
                writeln!(out, "side,level,price,qty_total,order_count")?;
            }
            for (name, levels) in sides {
                for (i, l) in levels.iter().take(depth).enumerate() {
                    if l3 {
                        for (j, o) in l.orders.iter().enumerate() {
                            writeln!(
                                out,
                                "{name},{i},{},{j},{},{},{}",
                                px(l.price.0),
                                o.order_id.0,
                                o.account.0,
                                qty(o.qty_open.0)
                            )?;
                        }
                    } else {
                        writeln!(
                            out,
                            "{name},{i},{},{},{}",
                            px(l.price.0),
                            qty(l.qty_total.0),
                            l.orders.len()
                        )?;
                    }
                }
            }
        }
        Format::Json => {
            let side_json = |levels: &[ferrox_engine::LevelSnapshot]| {
                let v: Vec<String> = levels
                    .iter()
                    .take(depth)
                    .map(|l| {
                        let orders = if l3 {
                            let o: Vec<String> = l
                                .orders
                                .iter()
                                .map(|o| {
                                    format!(
                                        "{{\"order_id\":{},\"account\":{},\"qty_open\":\"{}\"}}",
                                        o.order_id.0,
                                        o.account.0,
                                        qty(o.qty_open.0)
                                    )
                                })
                                .collect();
                            format!(",\"orders\":[{}]", o.join(","))
                        } else {
                            String::new()
                        };
                        format!(
                            "{{\"price\":\"{}\",\"qty_total\":\"{}\",\"order_count\":{}{orders}}}",
                            px(l.price.0),
                            qty(l.qty_total.0),
                            l.orders.len()
                        )
                    })
                    .collect();
                format!("[{}]", v.join(","))
            };
            writeln!(out, "{{\"instrument\":\"{}\",\"seq\":{},\"ts_ns\":{},\"status\":\"{:?}\",\"bids\":{},\"asks\":{}}}", spec.symbol, engine.last_seq(), engine.last_ts_ns(), book.status, side_json(&book.bids), side_json(&book.asks))?;
        }
        Format::Text => {
            writeln!(
                out,
                "{} after seq {} ({}), status {:?}",
                spec.symbol,
                engine.last_seq(),
                iso8601(engine.last_ts_ns()),
                book.status
            )?;
            writeln!(
                out,
                "{:>6} {:>14} {:>14} {:>7}",
                "side", "price", "qty", "orders"
            )?;
            for l in book.asks.iter().take(depth).rev() {
                writeln!(
                    out,
                    "{:>6} {:>14} {:>14} {:>7}",
                    "ask",
                    px(l.price.0),
                    qty(l.qty_total.0),
                    l.orders.len()
                )?;
                if l3 {
                    for o in &l.orders {
                        writeln!(
                            out,
                            "{:>30}   order {} account {} qty {}",
                            "",
                            o.order_id.0,
                            o.account.0,
                            qty(o.qty_open.0)
                        )?;
                    }
                }
            }
            writeln!(out, "{:-<44}", "")?;
            for l in book.bids.iter().take(depth) {
                writeln!(
                    out,
                    "{:>6} {:>14} {:>14} {:>7}",
                    "bid",
                    px(l.price.0),
                    qty(l.qty_total.0),
                    l.orders.len()
                )?;
                if l3 {
                    for o in &l.orders {
                        writeln!(
                            out,
                            "{:>30}   order {} account {} qty {}",
                            "",
                            o.order_id.0,
                            o.account.0,
                            qty(o.qty_open.0)
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}
