//! `dump`, `trades` and `stats`: the journal's history as files a quant can load.
//!
//! Only commands are journalled; the events written here are re-created by applying the
//! commands to the engine, which is deterministic, so they are the events the exchange
//! published. A dump that starts at a later seq starts from the newest snapshot before it.

use std::collections::BTreeMap;
use std::io::Write;

use ferrox_engine::{
    AccountId, Command, Engine, EngineConfig, Event, InstrumentId, InstrumentSpec, Side, VecSink,
};

use crate::progress::Progress;
use crate::source::{DataDir, ReplayError, Sequenced};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A readable table (stats, book) or JSON lines (dump).
    Text,
    Csv,
    Json,
}

/// Which commands and events to keep. Ranges are inclusive.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    pub instrument: Option<InstrumentId>,
    pub account: Option<AccountId>,
    pub seq_from: Option<u64>,
    pub seq_to: Option<u64>,
    pub ts_from: Option<u64>,
    pub ts_to: Option<u64>,
}

impl Filter {
    fn in_range(&self, c: &Sequenced) -> bool {
        self.seq_from.is_none_or(|s| c.seq >= s)
            && self.seq_to.is_none_or(|s| c.seq <= s)
            && self.ts_from.is_none_or(|t| c.ts_ns >= t)
            && self.ts_to.is_none_or(|t| c.ts_ns <= t)
    }

    /// True once nothing later can match: seqs and timestamps only grow.
    fn past_end(&self, c: &Sequenced) -> bool {
        self.seq_to.is_some_and(|s| c.seq > s) || self.ts_to.is_some_and(|t| c.ts_ns > t)
    }

    fn matches(&self, f: &Fields) -> bool {
        let inst_ok = self.instrument.is_none_or(|i| f.instrument == Some(i.0));
        let acct_ok = self
            .account
            .is_none_or(|a| f.account == Some(a.0) || f.account2 == Some(a.0));
        inst_ok && acct_ok
    }
}

/// A value in a dumped record.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Val {
    Int(i128),
    Str(String),
    Bool(bool),
}

/// The fields of one command or event, common columns first.
#[derive(Clone, Debug, Default)]
struct Fields {
    kind: &'static str,
    instrument: Option<u32>,
    account: Option<u32>,
    /// A second account the record concerns (a trade's maker), for the account filter.
    account2: Option<u32>,
    order_id: Option<u64>,
    side: Option<Side>,
    price: Option<i64>,
    qty: Option<u64>,
    extra: Vec<(&'static str, Val)>,
}

fn command_fields(c: &Command) -> Fields {
    let mut f = Fields::default();
    match c {
        Command::NewOrder(o) => {
            f.kind = "new_order";
            f.instrument = Some(o.instrument.0);
            f.account = Some(o.account.0);
            f.side = Some(o.side);
            f.price = Some(o.price.0);
            f.qty = Some(o.qty.0);
            f.extra = vec![
                ("client_order_id", Val::Int(o.client_order_id.0.into())),
                ("order_type", Val::Str(format!("{:?}", o.order_type))),
                ("tif", Val::Str(format!("{:?}", o.tif))),
                ("expire_ts_ns", Val::Int(o.expire_ts_ns.into())),
                ("post_only", Val::Bool(o.post_only)),
                ("stp_mode", Val::Str(format!("{:?}", o.stp_mode))),
                ("stp_group", Val::Int(o.stp_group.0.into())),
            ];
        }
        Command::Cancel(x) => {
            f.kind = "cancel";
            f.account = Some(x.account.0);
            f.order_id = Some(x.order_id.0);
            f.extra = vec![("client_order_id", Val::Int(x.client_order_id.0.into()))];
        }
        Command::Replace(x) => {
            f.kind = "replace";
            f.account = Some(x.account.0);
            f.order_id = Some(x.order_id.0);
            f.price = Some(x.price.0);
            f.qty = Some(x.qty.0);
            f.extra = vec![("client_order_id", Val::Int(x.client_order_id.0.into()))];
        }
        Command::MassCancel(x) => {
            f.kind = "mass_cancel";
            f.instrument = x.instrument.map(|i| i.0);
            f.account = x.account.map(|a| a.0);
            f.extra = vec![("client_order_id", Val::Int(x.client_order_id.0.into()))];
        }
        Command::SetStatus(x) => {
            f.kind = "set_status";
            f.instrument = Some(x.instrument.0);
            f.extra = vec![("status", Val::Str(format!("{:?}", x.status)))];
        }
        Command::EndOfDay => f.kind = "end_of_day",
        Command::Tick => f.kind = "tick",
        Command::Checkpoint(x) => {
            f.kind = "checkpoint";
            f.instrument = Some(x.instrument.0);
        }
    }
    f
}

fn event_fields(e: &Event) -> Fields {
    let mut f = Fields::default();
    let int = |v: u64| Val::Int(v.into());
    match e {
        Event::Accepted(x) => {
            f.kind = "accepted";
            (f.instrument, f.account, f.order_id) =
                (Some(x.instrument.0), Some(x.account.0), Some(x.order_id.0));
            (f.side, f.price, f.qty) = (Some(x.side), Some(x.price.0), Some(x.qty.0));
            f.extra = vec![
                ("client_order_id", int(x.client_order_id.0)),
                ("order_type", Val::Str(format!("{:?}", x.order_type))),
                ("tif", Val::Str(format!("{:?}", x.tif))),
            ];
        }
        Event::Rejected(x) => {
            f.kind = "rejected";
            (f.instrument, f.account, f.order_id) =
                (Some(x.instrument.0), Some(x.account.0), Some(x.order_id.0));
            f.extra = vec![
                ("request", Val::Str(format!("{:?}", x.request))),
                ("code", Val::Str(format!("{:?}", x.code))),
                ("client_order_id", int(x.client_order_id.0)),
            ];
        }
        Event::Trade(x) => {
            f.kind = "trade";
            (f.instrument, f.account, f.account2) = (
                Some(x.instrument.0),
                Some(x.taker_account.0),
                Some(x.maker_account.0),
            );
            (f.order_id, f.side, f.price, f.qty) = (
                Some(x.taker_order_id.0),
                Some(x.aggressor_side),
                Some(x.price.0),
                Some(x.qty.0),
            );
            f.extra = vec![
                ("trade_id", int(x.trade_id.0)),
                ("maker_order_id", int(x.maker_order_id.0)),
                ("maker_account", int(x.maker_account.0.into())),
                ("maker_qty_open", int(x.maker_qty_open.0)),
                ("taker_qty_open", int(x.taker_qty_open.0)),
            ];
        }
        Event::Rested(x) => {
            f.kind = "rested";
            (f.instrument, f.account, f.order_id) =
                (Some(x.instrument.0), Some(x.account.0), Some(x.order_id.0));
            (f.side, f.price, f.qty) = (Some(x.side), Some(x.price.0), Some(x.qty_open.0));
        }
        Event::Cancelled(x) => {
            f.kind = "cancelled";
            (f.instrument, f.account, f.order_id) =
                (Some(x.instrument.0), Some(x.account.0), Some(x.order_id.0));
            (f.side, f.price, f.qty) = (Some(x.side), Some(x.price.0), Some(x.qty_cancelled.0));
            f.extra = vec![("reason", Val::Str(format!("{:?}", x.reason)))];
        }
        Event::Restated(x) => {
            f.kind = "restated";
            (f.instrument, f.account, f.order_id) =
                (Some(x.instrument.0), Some(x.account.0), Some(x.order_id.0));
            (f.side, f.price, f.qty) = (Some(x.side), Some(x.price.0), Some(x.qty_open.0));
            f.extra = vec![("qty_reduced", int(x.qty_reduced.0))];
        }
        Event::Replaced(x) => {
            f.kind = "replaced";
            (f.instrument, f.account, f.order_id) =
                (Some(x.instrument.0), Some(x.account.0), Some(x.order_id.0));
            (f.side, f.price, f.qty) = (Some(x.side), Some(x.price.0), Some(x.qty_open.0));
            f.extra = vec![
                ("price_old", Val::Int(x.price_old.0.into())),
                ("qty_open_old", int(x.qty_open_old.0)),
                ("priority_kept", Val::Bool(x.priority_kept)),
            ];
        }
        Event::Expired(x) => {
            f.kind = "expired";
            (f.instrument, f.account, f.order_id) =
                (Some(x.instrument.0), Some(x.account.0), Some(x.order_id.0));
            (f.side, f.price, f.qty) = (Some(x.side), Some(x.price.0), Some(x.qty_expired.0));
            f.extra = vec![("reason", Val::Str(format!("{:?}", x.reason)))];
        }
        Event::BookDelta(x) => {
            f.kind = "book_delta";
            f.instrument = Some(x.instrument.0);
            (f.side, f.price, f.qty) = (Some(x.side), Some(x.price.0), Some(x.qty_total.0));
            f.extra = vec![("order_count", int(x.order_count.into()))];
        }
        Event::StatusChanged(x) => {
            f.kind = "status_changed";
            f.instrument = Some(x.instrument.0);
            f.extra = vec![("status", Val::Str(format!("{:?}", x.status)))];
        }
        Event::MassCancelled(x) => {
            f.kind = "mass_cancelled";
            f.instrument = x.instrument.map(|i| i.0);
            f.account = x.account.map(|a| a.0);
            f.extra = vec![("count", int(x.count.into()))];
        }
        Event::BookChecked(x) => {
            f.kind = "book_checked";
            f.instrument = Some(x.instrument.0);
            f.extra = vec![
                ("book_hash", Val::Str(format!("{:016x}", x.book_hash))),
                ("orders", int(x.orders.into())),
            ];
        }
    }
    f
}

/// Formats `units` scaled by 10^-decimals exactly, e.g. (12345, 2) -> "123.45".
pub fn decimal(units: i128, decimals: u32) -> String {
    if decimals == 0 {
        return units.to_string();
    }
    let scale = 10i128.pow(decimals);
    let sign = if units < 0 { "-" } else { "" };
    let a = units.unsigned_abs();
    let s = scale as u128;
    format!(
        "{sign}{}.{:0width$}",
        a / s,
        a % s,
        width = decimals as usize
    )
}

/// ISO-8601 UTC with nanoseconds for a Unix time in ns.
pub fn iso8601(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let nanos = ts_ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Symbols and decimals of the configured instruments.
struct Names<'a>(&'a [InstrumentSpec]);

impl Names<'_> {
    fn spec(&self, id: u32) -> Option<&InstrumentSpec> {
        self.0.get(id as usize)
    }
    fn symbol(&self, id: u32) -> String {
        self.spec(id)
            .map_or_else(|| format!("#{id}"), |s| s.symbol.clone())
    }
    fn price(&self, id: Option<u32>, ticks: i64) -> String {
        let d = id
            .and_then(|i| self.spec(i))
            .map_or(0, |s| s.price_decimals);
        decimal(ticks.into(), d)
    }
    fn qty(&self, id: Option<u32>, lots: u64) -> String {
        let d = id.and_then(|i| self.spec(i)).map_or(0, |s| s.qty_decimals);
        decimal(lots.into(), d)
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

const DUMP_CSV_HEADER: &str =
    "seq,ts_ns,record,event_index,kind,instrument,account,order_id,side,price,qty,details";

fn write_record(
    out: &mut impl Write,
    format: Format,
    names: &Names<'_>,
    c: &Sequenced,
    event_index: Option<usize>,
    f: &Fields,
) -> std::io::Result<()> {
    let side = f.side.map(|s| format!("{s:?}"));
    let price = f.price.map(|p| names.price(f.instrument, p));
    let qty = f.qty.map(|q| names.qty(f.instrument, q));
    let symbol = f.instrument.map(|i| names.symbol(i));
    let record = if event_index.is_some() {
        "event"
    } else {
        "command"
    };
    if format == Format::Csv {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let details: Vec<String> = f
            .extra
            .iter()
            .map(|(k, v)| match v {
                Val::Int(i) => format!("{k}={i}"),
                Val::Str(s) => format!("{k}={s}"),
                Val::Bool(b) => format!("{k}={b}"),
            })
            .collect();
        return writeln!(
            out,
            "{},{},{record},{},{},{},{},{},{},{},{},{}",
            c.seq,
            c.ts_ns,
            opt(event_index.map(|i| i.to_string())),
            f.kind,
            csv_field(&opt(symbol)),
            opt(f.account.map(|a| a.to_string())),
            opt(f.order_id.map(|o| o.to_string())),
            opt(side),
            opt(price),
            opt(qty),
            csv_field(&details.join(" "))
        );
    }
    let mut line = format!(
        "{{\"seq\":{},\"ts_ns\":{},\"record\":\"{record}\"",
        c.seq, c.ts_ns
    );
    if let Some(i) = event_index {
        line.push_str(&format!(",\"event_index\":{i}"));
    }
    line.push_str(&format!(",\"kind\":\"{}\"", f.kind));
    if let Some(s) = symbol {
        line.push_str(&format!(",\"instrument\":{}", json_str(&s)));
    }
    if let Some(a) = f.account {
        line.push_str(&format!(",\"account\":{a}"));
    }
    if let Some(o) = f.order_id {
        line.push_str(&format!(",\"order_id\":{o}"));
    }
    if let Some(s) = side {
        line.push_str(&format!(",\"side\":\"{s}\""));
    }
    // Decimals as strings, so that no JSON reader rounds them through a float.
    if let Some(p) = price {
        line.push_str(&format!(",\"price\":\"{p}\""));
    }
    if let Some(q) = qty {
        line.push_str(&format!(",\"qty\":\"{q}\""));
    }
    for (k, v) in &f.extra {
        match v {
            Val::Int(i) => line.push_str(&format!(",\"{k}\":{i}")),
            Val::Str(s) => line.push_str(&format!(",\"{k}\":{}", json_str(s))),
            Val::Bool(b) => line.push_str(&format!(",\"{k}\":{b}")),
        }
    }
    line.push('}');
    writeln!(out, "{line}")
}

/// Drives the engine over the commands a filter can concern, calling `each` with every command
/// in range and its events. Starts from the newest snapshot before the seq range when there
/// is one, since events before that cannot be in the output.
fn drive(
    dir: &DataDir,
    config: &EngineConfig,
    filter: &Filter,
    progress: bool,
    mut each: impl FnMut(&Engine, &Sequenced, &[Event]) -> Result<(), ReplayError>,
) -> Result<u64, ReplayError> {
    let before = filter.seq_from.unwrap_or(1).saturating_sub(1);
    let (mut engine, next, _) = dir.engine_before(config, before)?;
    let mut sink = VecSink::default();
    let mut bar = Progress::new(progress, "replay");
    let mut n = 0u64;
    for c in dir.commands_from(next) {
        let c = c?;
        if filter.past_end(&c) {
            break;
        }
        engine.apply(&c.sequenced(), &mut sink);
        n += 1;
        if n & 0xF_FFFF == 0 {
            bar.set(n);
        }
        if filter.in_range(&c) {
            each(&engine, &c, &sink.events)?;
        }
        sink.events.clear();
    }
    bar.finish(n);
    Ok(n)
}

fn io_err(e: std::io::Error) -> ReplayError {
    ReplayError::Io {
        path: "output".into(),
        source: e,
    }
}

/// Writes commands and events as JSON lines ([`Format::Json`] or [`Format::Text`]) or CSV.
/// A command is written when it or one of its events matches the filter; events are written
/// when they match. Returns the number of lines written.
pub fn dump(
    dir: &DataDir,
    config: &EngineConfig,
    filter: &Filter,
    format: Format,
    progress: bool,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    let specs = config.instruments.clone();
    let names = Names(&specs);
    if format == Format::Csv {
        writeln!(out, "{DUMP_CSV_HEADER}").map_err(io_err)?;
    }
    let mut lines = 0u64;
    drive(dir, config, filter, progress, |_, c, events| {
        let cf = command_fields(&c.command);
        let efs: Vec<Fields> = events.iter().map(event_fields).collect();
        let keep_cmd = filter.matches(&cf) || efs.iter().any(|f| filter.matches(f));
        if !keep_cmd {
            return Ok(());
        }
        write_record(out, format, &names, c, None, &cf).map_err(io_err)?;
        lines += 1;
        for (i, f) in efs.iter().enumerate() {
            if filter.matches(f) {
                write_record(out, format, &names, c, Some(i), f).map_err(io_err)?;
                lines += 1;
            }
        }
        Ok(())
    })?;
    out.flush().map_err(io_err)?;
    Ok(lines)
}

/// The `trades` CSV header.
pub const TRADES_CSV_HEADER: &str = "ts_ns,time,seq,trade_id,instrument,price,qty,aggressor_side,maker_order_id,maker_account,taker_order_id,taker_account";

/// Writes every trade matching `filter` as CSV; returns the number of trades.
pub fn trades(
    dir: &DataDir,
    config: &EngineConfig,
    filter: &Filter,
    progress: bool,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    let specs = config.instruments.clone();
    let names = Names(&specs);
    writeln!(out, "{TRADES_CSV_HEADER}").map_err(io_err)?;
    let mut count = 0u64;
    drive(dir, config, filter, progress, |_, c, events| {
        for e in events {
            let Event::Trade(t) = e else { continue };
            if !filter.matches(&event_fields(e)) {
                continue;
            }
            let i = Some(t.instrument.0);
            writeln!(
                out,
                "{},{},{},{},{},{},{},{:?},{},{},{},{}",
                c.ts_ns,
                iso8601(c.ts_ns),
                c.seq,
                t.trade_id.0,
                csv_field(&names.symbol(t.instrument.0)),
                names.price(i, t.price.0),
                names.qty(i, t.qty.0),
                t.aggressor_side,
                t.maker_order_id.0,
                t.maker_account.0,
                t.taker_order_id.0,
                t.taker_account.0
            )
            .map_err(io_err)?;
            count += 1;
        }
        Ok(())
    })?;
    out.flush().map_err(io_err)?;
    Ok(count)
}

/// Open, high, low, close and volume of one interval (or of the whole run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bar {
    pub start_ns: u64,
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    /// Lots traded.
    pub volume: u128,
    /// Sum of price times quantity, in ticks times lots.
    pub notional: i128,
    pub trades: u64,
}

impl Bar {
    fn add(&mut self, ts_start: u64, price: i64, qty: u64) {
        if self.trades == 0 {
            *self = Bar {
                start_ns: ts_start,
                open: price,
                high: price,
                low: price,
                close: price,
                ..Bar::default()
            };
        }
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        self.volume += u128::from(qty);
        self.notional += i128::from(price) * i128::from(qty);
        self.trades += 1;
    }

    /// Volume-weighted average price in ticks, rounded to `extra` more decimals.
    fn vwap(&self, decimals: u32) -> Option<String> {
        let extra = 4;
        (self.volume > 0).then(|| {
            let scaled = self.notional * 10i128.pow(extra) / self.volume as i128;
            decimal(scaled, decimals + extra)
        })
    }
}

/// Per-instrument statistics.
#[derive(Clone, Debug, Default)]
pub struct InstrumentStats {
    /// Commands attributed to the instrument, by kind (`new_order`, `cancel`, ...).
    pub commands: BTreeMap<&'static str, u64>,
    pub rejects: u64,
    pub total: Bar,
    /// Non-empty intervals, in time order (only with an interval).
    pub bars: Vec<Bar>,
}

/// Statistics of a run, per instrument id.
pub struct Stats {
    pub instruments: Vec<InstrumentStats>,
    pub commands: u64,
    pub interval_ns: Option<u64>,
    specs: Vec<InstrumentSpec>,
}

/// Counts commands, rejects and trades per instrument, with OHLC bars per `interval_ns`.
/// A command without an instrument field (cancel, replace) is attributed to the instrument of
/// its first event.
pub fn stats(
    dir: &DataDir,
    config: &EngineConfig,
    filter: &Filter,
    interval_ns: Option<u64>,
    progress: bool,
) -> Result<Stats, ReplayError> {
    let mut per: Vec<InstrumentStats> = vec![InstrumentStats::default(); config.instruments.len()];
    let mut commands = 0;
    drive(dir, config, filter, progress, |_, c, events| {
        let cf = command_fields(&c.command);
        let efs: Vec<Fields> = events.iter().map(event_fields).collect();
        if filter.account.is_some()
            && !filter.matches(&cf)
            && !efs.iter().any(|f| filter.matches(f))
        {
            return Ok(());
        }
        commands += 1;
        let inst = cf
            .instrument
            .or_else(|| efs.iter().find_map(|f| f.instrument));
        if let Some(s) = inst.and_then(|i| per.get_mut(i as usize)) {
            if filter.instrument.is_none_or(|i| Some(i.0) == inst) {
                *s.commands.entry(cf.kind).or_default() += 1;
            }
        }
        for (e, f) in events.iter().zip(&efs) {
            if !filter.matches(f) {
                continue;
            }
            let Some(s) = f.instrument.and_then(|i| per.get_mut(i as usize)) else {
                continue;
            };
            match e {
                Event::Rejected(_) => s.rejects += 1,
                Event::Trade(t) => {
                    s.total.add(c.ts_ns, t.price.0, t.qty.0);
                    if let Some(iv) = interval_ns {
                        let start = c.ts_ns - c.ts_ns % iv;
                        if s.bars.last().is_none_or(|b| b.start_ns != start) {
                            s.bars.push(Bar::default());
                        }
                        let bar = s.bars.last_mut().expect("pushed above");
                        bar.add(start, t.price.0, t.qty.0);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(Stats {
        instruments: per,
        commands,
        interval_ns,
        specs: config.instruments.clone(),
    })
}

impl Stats {
    /// Writes the statistics as a table, CSV or JSON. With an interval, CSV lists the bars.
    pub fn write(&self, format: Format, out: &mut impl Write) -> std::io::Result<()> {
        let names = Names(&self.specs);
        let rows = self
            .instruments
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.commands.is_empty() || s.total.trades > 0 || s.rejects > 0);
        let px = |i: usize, v: i64| names.price(Some(i as u32), v);
        let qty = |i: usize, v: u128| {
            decimal(
                v as i128,
                names.spec(i as u32).map_or(0, |s| s.qty_decimals),
            )
        };
        let vwap = |i: usize, b: &Bar| {
            b.vwap(names.spec(i as u32).map_or(0, |s| s.price_decimals))
                .unwrap_or_default()
        };
        let ohlc = |i: usize, b: &Bar| {
            if b.trades == 0 {
                ["".to_string(), "".into(), "".into(), "".into()]
            } else {
                [px(i, b.open), px(i, b.high), px(i, b.low), px(i, b.close)]
            }
        };
        match format {
            Format::Csv if self.interval_ns.is_some() => {
                writeln!(out, "instrument,interval_start_ns,interval_start,open,high,low,close,volume,trades,vwap")?;
                for (i, s) in rows {
                    for b in &s.bars {
                        let [o, h, l, c] = ohlc(i, b);
                        writeln!(
                            out,
                            "{},{},{},{o},{h},{l},{c},{},{},{}",
                            csv_field(&names.symbol(i as u32)),
                            b.start_ns,
                            iso8601(b.start_ns),
                            qty(i, b.volume),
                            b.trades,
                            vwap(i, b)
                        )?;
                    }
                }
            }
            Format::Csv => {
                writeln!(out, "instrument,commands,new_orders,cancels,replaces,other_commands,rejects,trades,volume,vwap,open,high,low,close")?;
                for (i, s) in rows {
                    let total: u64 = s.commands.values().sum();
                    let get = |k: &str| s.commands.get(k).copied().unwrap_or(0);
                    let other = total - get("new_order") - get("cancel") - get("replace");
                    let [o, h, l, c] = ohlc(i, &s.total);
                    writeln!(
                        out,
                        "{},{total},{},{},{},{other},{},{},{},{},{o},{h},{l},{c}",
                        csv_field(&names.symbol(i as u32)),
                        get("new_order"),
                        get("cancel"),
                        get("replace"),
                        s.rejects,
                        s.total.trades,
                        qty(i, s.total.volume),
                        vwap(i, &s.total)
                    )?;
                }
            }
            Format::Json => {
                let mut parts = Vec::new();
                for (i, s) in rows {
                    let cmds: Vec<String> = s
                        .commands
                        .iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    let bar_json = |b: &Bar| {
                        let [o, h, l, c] = ohlc(i, b);
                        format!("{{\"start_ns\":{},\"open\":\"{o}\",\"high\":\"{h}\",\"low\":\"{l}\",\"close\":\"{c}\",\"volume\":\"{}\",\"trades\":{},\"vwap\":\"{}\"}}", b.start_ns, qty(i, b.volume), b.trades, vwap(i, b))
                    };
                    let bars: Vec<String> = s.bars.iter().map(bar_json).collect();
                    parts.push(format!("{{\"instrument\":{},\"commands\":{{{}}},\"rejects\":{},\"total\":{},\"bars\":[{}]}}", json_str(&names.symbol(i as u32)), cmds.join(","), s.rejects, bar_json(&s.total), bars.join(",")));
                }
                writeln!(
                    out,
                    "{{\"commands\":{},\"interval_ns\":{},\"instruments\":[{}]}}",
                    self.commands,
                    self.interval_ns
                        .map_or("null".to_string(), |v| v.to_string()),
                    parts.join(",")
                )?;
            }
            Format::Text => {
                writeln!(out, "{} commands", self.commands)?;
                writeln!(out, "{:<12} {:>9} {:>9} {:>8} {:>8} {:>8} {:>14} {:>14} {:>12} {:>12} {:>12} {:>12}", "instrument", "commands", "new", "cancel", "rejects", "trades", "volume", "vwap", "open", "high", "low", "close")?;
                for (i, s) in rows.clone() {
                    let total: u64 = s.commands.values().sum();
                    let get = |k: &str| s.commands.get(k).copied().unwrap_or(0);
                    let [o, h, l, c] = ohlc(i, &s.total);
                    writeln!(out, "{:<12} {total:>9} {:>9} {:>8} {:>8} {:>8} {:>14} {:>14} {o:>12} {h:>12} {l:>12} {c:>12}", names.symbol(i as u32), get("new_order"), get("cancel"), s.rejects, s.total.trades, qty(i, s.total.volume), vwap(i, &s.total))?;
                }
                if self.interval_ns.is_some() {
                    for (i, s) in rows {
                        if s.bars.is_empty() {
                            continue;
                        }
                        writeln!(out, "\n{} bars", names.symbol(i as u32))?;
                        writeln!(
                            out,
                            "{:<31} {:>12} {:>12} {:>12} {:>12} {:>14} {:>7}",
                            "start", "open", "high", "low", "close", "volume", "trades"
                        )?;
                        for b in &s.bars {
                            let [o, h, l, c] = ohlc(i, b);
                            writeln!(
                                out,
                                "{:<31} {o:>12} {h:>12} {l:>12} {c:>12} {:>14} {:>7}",
                                iso8601(b.start_ns),
                                qty(i, b.volume),
                                b.trades
                            )?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Parses an interval such as `500ms`, `10s`, `1m`, `1h` or `1d` into nanoseconds.
pub fn parse_interval(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("bad interval {s:?}"))?;
    let mult = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" | "" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => {
            return Err(format!(
                "bad interval unit in {s:?} (ns, us, ms, s, m, h, d)"
            ))
        }
    };
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("interval {s:?} is zero or too large")),
    }
}
