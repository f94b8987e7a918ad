//! The command file: a plain-text CSV form of engine commands, for "what if" runs.
//!
//! A quant writes (or generates) a file of commands, runs it through the same engine code as
//! the exchange with [`run`], and reads the events back as CSV or JSONL. The same file can be
//! turned into a Ferrox journal ([`to_journal`]) so that every journal tool reads it, and a
//! journal can be turned back into a file ([`from_journal`]). `docs/command-file.md` has the
//! same description with more examples.
//!
//! # Format
//!
//! UTF-8 text, one record per line. Blank lines and lines whose first non-blank character is
//! `#` are ignored. The first other line is the header, exactly these 14 columns:
//!
//! ```text
//! ts_ns,type,instrument,account,client_order_id,side,order_type,price,qty,tif,expire_ts_ns,post_only,stp,order_id
//! ```
//!
//! Every following line is one command with the same 14 comma-separated fields (spaces around
//! a field are ignored; there is no quoting, symbols must not contain commas). The n-th
//! command of the file (comments, blank lines and the header not counted) gets sequence
//! number n, and because the engine names every order after the sequence number of the
//! command that created it, the order created by the n-th command has order id n.
//!
//! | column            | meaning                                                               |
//! |-------------------|-----------------------------------------------------------------------|
//! | `ts_ns`           | time in nanoseconds; required; must not decrease from line to line    |
//! | `type`            | `new`, `cancel`, `replace`, `masscancel`, `halt`, `resume`, `eod`, `tick`, `checkpoint` |
//! | `instrument`      | symbol from the configuration                                         |
//! | `account`         | account number                                                        |
//! | `client_order_id` | the client's id for the request (empty: 0)                            |
//! | `side`            | `buy` or `sell`                                                       |
//! | `order_type`      | `limit` or `market` (empty: `limit`)                                  |
//! | `price`           | decimal in the instrument's currency, e.g. `190.25`                   |
//! | `qty`             | decimal in the instrument's base unit; for `replace` the new *total*  |
//! | `tif`             | `gtc`, `day`, `gtd`, `ioc`, `fok` (empty: `gtc` for limit, `ioc` for market) |
//! | `expire_ts_ns`    | expiry of a `gtd` order (empty: 0)                                    |
//! | `post_only`       | `0`/`1` or `false`/`true` (empty: false)                              |
//! | `stp`             | `resting`, `aggressor`, `both`, `decrement` or `off`, optionally `/GROUP` (empty: `resting`, group 0) |
//! | `order_id`        | the order a `cancel` or `replace` acts on                             |
//!
//! Which fields each type uses (R required, o optional, blank must be empty):
//!
//! | type         | instrument | account | client_order_id | side | order_type | price | qty | tif | expire_ts_ns | post_only | stp | order_id |
//! |--------------|-----|-----|-----|---|---|---|---|---|---|---|---|---|
//! | `new`        | R   | R   | o   | R | o | R (limit), o (market) | R | o | o | o | o |   |
//! | `cancel`     |     | R   | o   |   |   |   |   |   |   |   |   | R |
//! | `replace`    | R   | R   | o   |   |   | R | R |   |   |   |   | R |
//! | `masscancel` | o   | o   | o   |   |   |   |   |   |   |   |   |   |
//! | `halt`, `resume`, `checkpoint` | R |   |   |   |   |   |   |   |   |   |   |   |
//! | `eod`, `tick`|     |     |     |   |   |   |   |   |   |   |   |   |
//!
//! A `replace` names the instrument because its price is written in that instrument's units
//! (the engine's command carries only the order id). An empty `instrument` or `account` in a
//! `masscancel` means "all".
//!
//! Prices and quantities are converted to ticks and lots exactly: a value with more decimals
//! than the instrument's `price_decimals`/`qty_decimals`, or one that is not a multiple of its
//! tick or lot size, is a parse error naming the line and column, never a silent rounding.
//! Negative prices are accepted (the engine rejects them with its own code, which a what-if
//! run may want to see); negative quantities are not.
//!
//! ```text
//! # two crossing orders, then a cancel of the rest
//! ts_ns,type,instrument,account,client_order_id,side,order_type,price,qty,tif,expire_ts_ns,post_only,stp,order_id
//! 1000,new,AAPL,1,11,sell,limit,190.00,300,gtc,,,,
//! 2000,new,AAPL,2,21,buy,limit,190.00,100,ioc,,,,
//! 3000,cancel,,1,12,,,,,,,,,1
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::Path;

use ferrox_engine::{
    AccountId, Cancel, Checkpoint, ClientOrderId, Command, Engine, EngineConfig, Event,
    InstrumentId, InstrumentSpec, InstrumentStatus, MassCancel, NewOrder, OrderId, OrderType,
    PriceTicks, QtyLots, RejectCode, Replace, SequencedCommand, SetStatus, Side, StpGroup, StpMode,
    TimeInForce, VecSink,
};
use ferrox_sequencer::frame::{self, Origin, INPUT_SLOT_BYTES};
use ferrox_sequencer::journal::{Journal, JournalOptions, JournalReader};
use rust_decimal::Decimal;

/// The header line, and therefore the column order.
pub const HEADER: &str = "ts_ns,type,instrument,account,client_order_id,side,order_type,price,qty,tif,expire_ts_ns,post_only,stp,order_id";

const COLUMNS: [&str; 14] = [
    "ts_ns",
    "type",
    "instrument",
    "account",
    "client_order_id",
    "side",
    "order_type",
    "price",
    "qty",
    "tif",
    "expire_ts_ns",
    "post_only",
    "stp",
    "order_id",
];

const C_TS: usize = 0;
const C_TYPE: usize = 1;
const C_INSTRUMENT: usize = 2;
const C_ACCOUNT: usize = 3;
const C_CLID: usize = 4;
const C_SIDE: usize = 5;
const C_ORDER_TYPE: usize = 6;
const C_PRICE: usize = 7;
const C_QTY: usize = 8;
const C_TIF: usize = 9;
const C_EXPIRE: usize = 10;
const C_POST: usize = 11;
const C_STP: usize = 12;
const C_ORDER_ID: usize = 13;

/// A command with its timestamp, as one line of the file holds it.
pub type TimedCommand = (u64, Command);

/// Why a command file was refused: the 1-based line, the 1-based column (with its name) when
/// one field is at fault, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: Option<usize>,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(c) => write!(
                f,
                "line {}, column {} ({}): {}",
                self.line,
                c,
                COLUMNS.get(c - 1).copied().unwrap_or("?"),
                self.reason
            ),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole command file. See the module docs for the format.
pub fn parse(text: &str, specs: &[InstrumentSpec]) -> Result<Vec<TimedCommand>, ParseError> {
    let mut out = Vec::new();
    let mut header_seen = false;
    let mut last_ts = 0u64;
    let symbols: HashMap<&str, usize> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.symbol.as_str(), i))
        .collect();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        if !header_seen {
            if fields != COLUMNS {
                return Err(ParseError {
                    line,
                    column: None,
                    reason: format!("expected the header line {HEADER:?}"),
                });
            }
            header_seen = true;
            continue;
        }
        if fields.len() != COLUMNS.len() {
            return Err(ParseError {
                line,
                column: None,
                reason: format!(
                    "expected {} comma-separated fields, found {}",
                    COLUMNS.len(),
                    fields.len()
                ),
            });
        }
        let row = Row {
            line,
            fields: &fields,
            specs,
            symbols: &symbols,
        };
        let (ts, command) = row.command()?;
        if ts < last_ts {
            return Err(row.err(
                C_TS,
                format!("ts_ns {ts} is before the previous command's {last_ts}"),
            ));
        }
        last_ts = ts;
        out.push((ts, command));
    }
    if !header_seen {
        return Err(ParseError {
            line: text.lines().count().max(1),
            column: None,
            reason: format!("no header line {HEADER:?}"),
        });
    }
    Ok(out)
}

/// Reads and parses a command file.
pub fn read(path: &Path, specs: &[InstrumentSpec]) -> Result<Vec<TimedCommand>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, specs).map_err(|e| format!("{}: {e}", path.display()))
}

struct Row<'a> {
    line: usize,
    fields: &'a [&'a str],
    specs: &'a [InstrumentSpec],
    symbols: &'a HashMap<&'a str, usize>,
}

impl Row<'_> {
    fn err(&self, column: usize, reason: String) -> ParseError {
        ParseError {
            line: self.line,
            column: Some(column + 1),
            reason,
        }
    }

    fn get(&self, c: usize) -> Option<&str> {
        Some(self.fields[c]).filter(|f| !f.is_empty())
    }

    fn required(&self, c: usize, kind: &str) -> Result<&str, ParseError> {
        self.get(c)
            .ok_or_else(|| self.err(c, format!("required for {kind}")))
    }

    fn number<T: std::str::FromStr>(&self, c: usize, kind: &str) -> Result<T, ParseError> {
        let f = self.required(c, kind)?;
        f.parse()
            .map_err(|_| self.err(c, format!("{f:?} is not a whole number in range")))
    }

    fn number_or<T: std::str::FromStr>(&self, c: usize, default: T) -> Result<T, ParseError> {
        match self.get(c) {
            None => Ok(default),
            Some(f) => f
                .parse()
                .map_err(|_| self.err(c, format!("{f:?} is not a whole number in range"))),
        }
    }

    /// Refuses values in columns that the command type does not use, so that a misplaced
    /// field is caught rather than silently ignored.
    fn only(&self, kind: &str, used: &[usize]) -> Result<(), ParseError> {
        for c in 2..COLUMNS.len() {
            if !used.contains(&c) && self.get(c).is_some() {
                return Err(self.err(c, format!("does not apply to {kind}; leave it empty")));
            }
        }
        Ok(())
    }

    fn instrument(&self, kind: &str) -> Result<(InstrumentId, &InstrumentSpec), ParseError> {
        let s = self.required(C_INSTRUMENT, kind)?;
        let i = *self
            .symbols
            .get(s)
            .ok_or_else(|| self.err(C_INSTRUMENT, format!("unknown instrument {s:?}")))?;
        Ok((InstrumentId(i as u32), &self.specs[i]))
    }

    fn price(&self, spec: &InstrumentSpec, kind: &str) -> Result<PriceTicks, ParseError> {
        let f = self.required(C_PRICE, kind)?;
        price_from_text(spec, f).map_err(|r| self.err(C_PRICE, r))
    }

    fn qty(&self, spec: &InstrumentSpec, kind: &str) -> Result<QtyLots, ParseError> {
        let f = self.required(C_QTY, kind)?;
        qty_from_text(spec, f).map_err(|r| self.err(C_QTY, r))
    }

    fn command(&self) -> Result<TimedCommand, ParseError> {
        let ts: u64 = self.number(C_TS, "every command")?;
        let kind = self.fields[C_TYPE].to_ascii_lowercase();
        let kind = kind.as_str();
        let clid = || self.number_or(C_CLID, 0u64).map(ClientOrderId);
        let command = match kind {
            "new" => {
                self.only(
                    kind,
                    &[
                        C_INSTRUMENT,
                        C_ACCOUNT,
                        C_CLID,
                        C_SIDE,
                        C_ORDER_TYPE,
                        C_PRICE,
                        C_QTY,
                        C_TIF,
                        C_EXPIRE,
                        C_POST,
                        C_STP,
                    ],
                )?;
                let (instrument, spec) = self.instrument(kind)?;
                let side = match self.required(C_SIDE, kind)?.to_ascii_lowercase().as_str() {
                    "buy" => Side::Buy,
                    "sell" => Side::Sell,
                    other => return Err(self.err(C_SIDE, format!("{other:?} is not buy or sell"))),
                };
                let order_type = match self.get(C_ORDER_TYPE).map(str::to_ascii_lowercase) {
                    None => OrderType::Limit,
                    Some(t) if t == "limit" => OrderType::Limit,
                    Some(t) if t == "market" => OrderType::Market,
                    Some(t) => {
                        return Err(
                            self.err(C_ORDER_TYPE, format!("{t:?} is not limit or market"))
                        )
                    }
                };
                let price = match (order_type, self.get(C_PRICE)) {
                    (OrderType::Market, None) => PriceTicks(0),
                    _ => self.price(spec, "a limit order")?,
                };
                let tif = match self.get(C_TIF).map(str::to_ascii_lowercase) {
                    None if order_type == OrderType::Market => TimeInForce::Ioc,
                    None => TimeInForce::Gtc,
                    Some(t) => tif_from_text(&t).ok_or_else(|| {
                        self.err(C_TIF, format!("{t:?} is not gtc, day, gtd, ioc or fok"))
                    })?,
                };
                let post_only = match self.get(C_POST).map(str::to_ascii_lowercase) {
                    None => false,
                    Some(p) if p == "1" || p == "true" => true,
                    Some(p) if p == "0" || p == "false" => false,
                    Some(p) => return Err(self.err(C_POST, format!("{p:?} is not 0, 1, true or false"))),
                };
                let (stp_mode, stp_group) = match self.get(C_STP) {
                    None => (StpMode::CancelResting, StpGroup(0)),
                    Some(s) => stp_from_text(s).ok_or_else(|| {
                        self.err(
                            C_STP,
                            format!("{s:?} is not resting, aggressor, both, decrement or off, optionally followed by /GROUP"),
                        )
                    })?,
                };
                Command::NewOrder(NewOrder {
                    instrument,
                    account: AccountId(self.number(C_ACCOUNT, kind)?),
                    client_order_id: clid()?,
                    side,
                    order_type,
                    price,
                    qty: self.qty(spec, kind)?,
                    tif,
                    expire_ts_ns: self.number_or(C_EXPIRE, 0)?,
                    post_only,
                    stp_mode,
                    stp_group,
                })
            }
            "cancel" => {
                self.only(kind, &[C_ACCOUNT, C_CLID, C_ORDER_ID])?;
                Command::Cancel(Cancel {
                    order_id: OrderId(self.number(C_ORDER_ID, kind)?),
                    account: AccountId(self.number(C_ACCOUNT, kind)?),
                    client_order_id: clid()?,
                })
            }
            "replace" => {
                self.only(
                    kind,
                    &[C_INSTRUMENT, C_ACCOUNT, C_CLID, C_PRICE, C_QTY, C_ORDER_ID],
                )?;
                let (_, spec) = self.instrument(kind)?;
                Command::Replace(Replace {
                    order_id: OrderId(self.number(C_ORDER_ID, kind)?),
                    account: AccountId(self.number(C_ACCOUNT, kind)?),
                    client_order_id: clid()?,
                    price: self.price(spec, kind)?,
                    qty: self.qty(spec, kind)?,
                })
            }
            "masscancel" => {
                self.only(kind, &[C_INSTRUMENT, C_ACCOUNT, C_CLID])?;
                let instrument = match self.get(C_INSTRUMENT) {
                    None => None,
                    Some(_) => Some(self.instrument(kind)?.0),
                };
                let account = match self.get(C_ACCOUNT) {
                    None => None,
                    Some(_) => Some(AccountId(self.number(C_ACCOUNT, kind)?)),
                };
                Command::MassCancel(MassCancel {
                    instrument,
                    account,
                    client_order_id: clid()?,
                })
            }
            "halt" | "resume" | "checkpoint" => {
                self.only(kind, &[C_INSTRUMENT])?;
                let (instrument, _) = self.instrument(kind)?;
                match kind {
                    "halt" => Command::SetStatus(SetStatus {
                        instrument,
                        status: InstrumentStatus::Halted,
                    }),
                    "resume" => Command::SetStatus(SetStatus {
                        instrument,
                        status: InstrumentStatus::Open,
                    }),
                    _ => Command::Checkpoint(Checkpoint { instrument }),
                }
            }
            "eod" | "tick" => {
                self.only(kind, &[])?;
                if kind == "eod" {
                    Command::EndOfDay
                } else {
                    Command::Tick
                }
            }
            other => {
                return Err(self.err(
                    C_TYPE,
                    format!("unknown type {other:?}; expected new, cancel, replace, masscancel, halt, resume, eod, tick or checkpoint"),
                ))
            }
        };
        Ok((ts, command))
    }
}

/// Decimal price text to ticks, exactly, on the instrument's tick size.
pub fn price_from_text(spec: &InstrumentSpec, text: &str) -> Result<PriceTicks, String> {
    let d: Decimal = text
        .parse()
        .map_err(|_| format!("{text:?} is not a decimal number"))?;
    let ticks = ferrox_engine::config::decimal_to_units(d, spec.price_decimals)
        .and_then(|u| i64::try_from(u).ok())
        .ok_or_else(|| {
            format!(
                "{text} has more than {} decimals or is out of range for {}",
                spec.price_decimals, spec.symbol
            )
        })?;
    // checked_rem: the specs may come from an unvalidated configuration (tick size 0).
    if ticks.checked_rem(spec.tick_size.0) != Some(0) {
        return Err(format!(
            "{text} is not a multiple of {}'s tick size {}",
            spec.symbol,
            price_text(spec, spec.tick_size)
        ));
    }
    Ok(PriceTicks(ticks))
}

/// Decimal quantity text to lots, exactly, on the instrument's lot size.
pub fn qty_from_text(spec: &InstrumentSpec, text: &str) -> Result<QtyLots, String> {
    let d: Decimal = text
        .parse()
        .map_err(|_| format!("{text:?} is not a decimal number"))?;
    let lots = ferrox_engine::config::decimal_to_units(d, spec.qty_decimals)
        .and_then(|u| u64::try_from(u).ok())
        .ok_or_else(|| {
            format!(
                "{text} is negative, has more than {} decimals or is out of range for {}",
                spec.qty_decimals, spec.symbol
            )
        })?;
    if lots.checked_rem(spec.lot_size.0) != Some(0) {
        return Err(format!(
            "{text} is not a multiple of {}'s lot size {}",
            spec.symbol,
            qty_text(spec, spec.lot_size)
        ));
    }
    Ok(QtyLots(lots))
}

/// Ticks as decimal text with exactly `price_decimals` decimals.
pub fn price_text(spec: &InstrumentSpec, p: PriceTicks) -> String {
    Decimal::from_i128_with_scale(i128::from(p.0), spec.price_decimals).to_string()
}

/// Lots as decimal text with exactly `qty_decimals` decimals.
pub fn qty_text(spec: &InstrumentSpec, q: QtyLots) -> String {
    Decimal::from_i128_with_scale(i128::from(q.0), spec.qty_decimals).to_string()
}

fn tif_from_text(t: &str) -> Option<TimeInForce> {
    Some(match t {
        "gtc" => TimeInForce::Gtc,
        "day" => TimeInForce::Day,
        "gtd" => TimeInForce::Gtd,
        "ioc" => TimeInForce::Ioc,
        "fok" => TimeInForce::Fok,
        _ => return None,
    })
}

fn tif_text(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "gtc",
        TimeInForce::Day => "day",
        TimeInForce::Gtd => "gtd",
        TimeInForce::Ioc => "ioc",
        TimeInForce::Fok => "fok",
    }
}

fn stp_from_text(s: &str) -> Option<(StpMode, StpGroup)> {
    let (mode, group) = match s.split_once('/') {
        Some((m, g)) => (m, StpGroup(g.trim().parse().ok()?)),
        None => (s, StpGroup(0)),
    };
    let mode = match mode.trim().to_ascii_lowercase().as_str() {
        "resting" => StpMode::CancelResting,
        "aggressor" => StpMode::CancelAggressor,
        "both" => StpMode::CancelBoth,
        "decrement" => StpMode::DecrementCancel,
        "off" => StpMode::Off,
        _ => return None,
    };
    Some((mode, group))
}

fn stp_text(mode: StpMode, group: StpGroup) -> String {
    let m = match mode {
        StpMode::CancelResting => "resting",
        StpMode::CancelAggressor => "aggressor",
        StpMode::CancelBoth => "both",
        StpMode::DecrementCancel => "decrement",
        StpMode::Off => "off",
    };
    if group.0 == 0 {
        m.to_string()
    } else {
        format!("{m}/{}", group.0)
    }
}

fn side_text(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// Writes commands in the file format, header first; command n is taken to have seq n, which
/// is how a `replace` finds the instrument of the order it names.
///
/// Fails (naming the command) when a command cannot be written so that it parses back to the
/// same command: an instrument id outside `specs`, a price or quantity off the tick or lot
/// size, or a `replace` of an order whose instrument is unknown (not created by an earlier
/// command of the list, and more than one instrument configured).
pub fn write(specs: &[InstrumentSpec], commands: &[TimedCommand]) -> Result<String, String> {
    let mut out = String::with_capacity(64 * (commands.len() + 1));
    out.push_str(HEADER);
    out.push('\n');
    let mut order_instrument: HashMap<u64, InstrumentId> = HashMap::new();
    for (index, (ts, command)) in commands.iter().enumerate() {
        let seq = index as u64 + 1;
        let bad = |reason: String| format!("command {seq} (ts_ns {ts}): {reason}");
        let spec_of = |i: InstrumentId| {
            specs
                .get(i.0 as usize)
                .ok_or_else(|| bad(format!("instrument id {} is not configured", i.0)))
        };
        let check = |spec: &InstrumentSpec, p: Option<PriceTicks>, q: QtyLots| {
            if p.is_some_and(|p| p.0.checked_rem(spec.tick_size.0) != Some(0))
                || q.0.checked_rem(spec.lot_size.0) != Some(0)
            {
                Err(bad("price or quantity is off the tick or lot size".into()))
            } else {
                Ok(())
            }
        };
        let mut f: [String; 14] = Default::default();
        f[C_TS] = ts.to_string();
        match command {
            Command::NewOrder(o) => {
                let spec = spec_of(o.instrument)?;
                let market_no_price = o.order_type == OrderType::Market && o.price.0 == 0;
                check(spec, (!market_no_price).then_some(o.price), o.qty)?;
                order_instrument.insert(seq, o.instrument);
                f[C_TYPE] = "new".into();
                f[C_INSTRUMENT] = spec.symbol.clone();
                f[C_ACCOUNT] = o.account.0.to_string();
                f[C_CLID] = o.client_order_id.0.to_string();
                f[C_SIDE] = side_text(o.side).into();
                f[C_ORDER_TYPE] = match o.order_type {
                    OrderType::Limit => "limit".into(),
                    OrderType::Market => "market".into(),
                };
                if !market_no_price {
                    f[C_PRICE] = price_text(spec, o.price);
                }
                f[C_QTY] = qty_text(spec, o.qty);
                f[C_TIF] = tif_text(o.tif).into();
                if o.expire_ts_ns != 0 {
                    f[C_EXPIRE] = o.expire_ts_ns.to_string();
                }
                if o.post_only {
                    f[C_POST] = "1".into();
                }
                f[C_STP] = stp_text(o.stp_mode, o.stp_group);
            }
            Command::Cancel(c) => {
                f[C_TYPE] = "cancel".into();
                f[C_ACCOUNT] = c.account.0.to_string();
                f[C_CLID] = c.client_order_id.0.to_string();
                f[C_ORDER_ID] = c.order_id.0.to_string();
            }
            Command::Replace(r) => {
                let instrument = match order_instrument.get(&r.order_id.0) {
                    Some(i) => *i,
                    None if specs.len() == 1 => InstrumentId(0),
                    None => {
                        return Err(bad(format!(
                            "cannot tell the instrument of order {} (not created by an earlier command)",
                            r.order_id
                        )))
                    }
                };
                let spec = spec_of(instrument)?;
                check(spec, Some(r.price), r.qty)?;
                f[C_TYPE] = "replace".into();
                f[C_INSTRUMENT] = spec.symbol.clone();
                f[C_ACCOUNT] = r.account.0.to_string();
                f[C_CLID] = r.client_order_id.0.to_string();
                f[C_PRICE] = price_text(spec, r.price);
                f[C_QTY] = qty_text(spec, r.qty);
                f[C_ORDER_ID] = r.order_id.0.to_string();
            }
            Command::MassCancel(m) => {
                f[C_TYPE] = "masscancel".into();
                if let Some(i) = m.instrument {
                    f[C_INSTRUMENT] = spec_of(i)?.symbol.clone();
                }
                if let Some(a) = m.account {
                    f[C_ACCOUNT] = a.0.to_string();
                }
                f[C_CLID] = m.client_order_id.0.to_string();
            }
            Command::SetStatus(s) => {
                f[C_TYPE] = match s.status {
                    InstrumentStatus::Halted => "halt".into(),
                    InstrumentStatus::Open => "resume".into(),
                };
                f[C_INSTRUMENT] = spec_of(s.instrument)?.symbol.clone();
            }
            Command::Checkpoint(c) => {
                f[C_TYPE] = "checkpoint".into();
                f[C_INSTRUMENT] = spec_of(c.instrument)?.symbol.clone();
            }
            Command::EndOfDay => f[C_TYPE] = "eod".into(),
            Command::Tick => f[C_TYPE] = "tick".into(),
        }
        out.push_str(&f.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// How [`run`] writes events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFormat {
    /// One header line, then one event per line; see [`EVENT_CSV_HEADER`].
    Csv,
    /// One JSON object per line with every field of the event named.
    Jsonl,
}

impl std::str::FromStr for EventFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(EventFormat::Csv),
            "jsonl" => Ok(EventFormat::Jsonl),
            _ => Err(format!("event format {s:?} is not csv or jsonl")),
        }
    }
}

/// The event CSV columns. `seq` and `ts_ns` are those of the command that caused the event;
/// the columns every event type shares come next, and `detail` holds the rest of the event's
/// fields as space-separated `name=value` pairs (the JSONL form names the same fields).
pub const EVENT_CSV_HEADER: &str =
    "seq,ts_ns,event,instrument,side,order_id,account,client_order_id,price,qty,detail";

/// What a [`run`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub commands: u64,
    pub events: u64,
    pub trades: u64,
    /// Traded lots per instrument id.
    pub volume_lots: BTreeMap<u32, u128>,
    pub rejects: BTreeMap<RejectCode, u64>,
    pub state_hash: u64,
    pub orders_live: u32,
}

/// Feeds `commands` through a fresh engine built from `config`, command n with seq n, and
/// writes every event to `out` (if given) in `format`.
///
/// Fails on an invalid configuration, on a timestamp that decreases (naming both commands),
/// or on a write error.
pub fn run(
    config: &EngineConfig,
    commands: &[TimedCommand],
    mut out: Option<(&mut dyn Write, EventFormat)>,
) -> Result<RunSummary, String> {
    let mut engine = Engine::new(config.clone()).map_err(|e| e.to_string())?;
    let specs = config.instruments.clone();
    let mut sink = VecSink::default();
    let mut summary = RunSummary::default();
    if let Some((w, EventFormat::Csv)) = out.as_mut() {
        writeln!(w, "{EVENT_CSV_HEADER}").map_err(|e| format!("writing events: {e}"))?;
    }
    let mut last_ts = 0u64;
    for (index, (ts, command)) in commands.iter().enumerate() {
        let seq = index as u64 + 1;
        if *ts < last_ts {
            return Err(format!(
                "command {seq}: ts_ns {ts} is before command {}'s {last_ts}; timestamps must not decrease",
                seq - 1
            ));
        }
        last_ts = *ts;
        engine.apply(
            &SequencedCommand {
                seq,
                ts_ns: *ts,
                command: *command,
            },
            &mut sink,
        );
        for e in sink.take() {
            summary.events += 1;
            match &e {
                Event::Trade(t) => {
                    summary.trades += 1;
                    *summary.volume_lots.entry(t.instrument.0).or_default() += u128::from(t.qty.0);
                }
                Event::Rejected(r) => *summary.rejects.entry(r.code).or_default() += 1,
                _ => {}
            }
            if let Some((w, format)) = out.as_mut() {
                let line = render_event(&specs, seq, *ts, &e, *format);
                w.write_all(line.as_bytes())
                    .map_err(|e| format!("writing events: {e}"))?;
            }
        }
        summary.commands += 1;
    }
    summary.state_hash = engine.state_hash();
    summary.orders_live = engine.orders_live();
    Ok(summary)
}

/// One field of a rendered event.
enum V {
    Num(u128),
    Text(String),
    Bool(bool),
}

/// One event as CSV or JSONL text, with a trailing newline. Prices and quantities are decimal
/// text in the instrument's units (strings in JSON, so that no precision is lost).
pub fn render_event(
    specs: &[InstrumentSpec],
    seq: u64,
    ts_ns: u64,
    e: &Event,
    format: EventFormat,
) -> String {
    let fallback = InstrumentSpec::simple("?", 1);
    let spec = |i: InstrumentId| specs.get(i.0 as usize).unwrap_or(&fallback);
    let sym = |i: InstrumentId| V::Text(spec(i).symbol.clone());
    let px = |i: InstrumentId, p: PriceTicks| V::Text(price_text(spec(i), p));
    let q = |i: InstrumentId, v: QtyLots| V::Text(qty_text(spec(i), v));
    let side = |s: Side| V::Text(side_text(s).into());
    let n = |v: u64| V::Num(u128::from(v));
    let (name, fields): (&str, Vec<(&str, V)>) = match e {
        Event::Accepted(a) => (
            "accepted",
            vec![
                ("instrument", sym(a.instrument)),
                ("side", side(a.side)),
                ("order_id", n(a.order_id.0)),
                ("account", n(a.account.0.into())),
                ("client_order_id", n(a.client_order_id.0)),
                ("price", px(a.instrument, a.price)),
                ("qty", q(a.instrument, a.qty)),
                (
                    "order_type",
                    V::Text(
                        match a.order_type {
                            OrderType::Limit => "limit",
                            OrderType::Market => "market",
                        }
                        .into(),
                    ),
                ),
                ("tif", V::Text(tif_text(a.tif).into())),
                ("expire_ts_ns", n(a.expire_ts_ns)),
                ("post_only", V::Bool(a.post_only)),
            ],
        ),
        Event::Rejected(r) => (
            "rejected",
            vec![
                ("instrument", sym(r.instrument)),
                ("order_id", n(r.order_id.0)),
                ("account", n(r.account.0.into())),
                ("client_order_id", n(r.client_order_id.0)),
                ("request", V::Text(format!("{:?}", r.request))),
                ("code", n(r.code.as_u16().into())),
                ("reason", V::Text(r.code.text().into())),
            ],
        ),
        Event::Trade(t) => (
            "trade",
            vec![
                ("instrument", sym(t.instrument)),
                ("side", side(t.aggressor_side)),
                ("order_id", n(t.taker_order_id.0)),
                ("account", n(t.taker_account.0.into())),
                ("client_order_id", n(t.taker_client_order_id.0)),
                ("price", px(t.instrument, t.price)),
                ("qty", q(t.instrument, t.qty)),
                ("trade_id", n(t.trade_id.0)),
                ("taker_qty_open", q(t.instrument, t.taker_qty_open)),
                ("maker_order_id", n(t.maker_order_id.0)),
                ("maker_account", n(t.maker_account.0.into())),
                ("maker_client_order_id", n(t.maker_client_order_id.0)),
                ("maker_qty_open", q(t.instrument, t.maker_qty_open)),
            ],
        ),
        Event::Rested(r) => (
            "rested",
            vec![
                ("instrument", sym(r.instrument)),
                ("side", side(r.side)),
                ("order_id", n(r.order_id.0)),
                ("account", n(r.account.0.into())),
                ("price", px(r.instrument, r.price)),
                ("qty", q(r.instrument, r.qty_open)),
            ],
        ),
        Event::Cancelled(c) => (
            "cancelled",
            vec![
                ("instrument", sym(c.instrument)),
                ("side", side(c.side)),
                ("order_id", n(c.order_id.0)),
                ("account", n(c.account.0.into())),
                ("client_order_id", n(c.client_order_id.0)),
                ("price", px(c.instrument, c.price)),
                ("qty", q(c.instrument, c.qty_cancelled)),
                ("reason", V::Text(format!("{:?}", c.reason))),
            ],
        ),
        Event::Restated(r) => (
            "restated",
            vec![
                ("instrument", sym(r.instrument)),
                ("side", side(r.side)),
                ("order_id", n(r.order_id.0)),
                ("account", n(r.account.0.into())),
                ("client_order_id", n(r.client_order_id.0)),
                ("price", px(r.instrument, r.price)),
                ("qty", q(r.instrument, r.qty_reduced)),
                ("qty_open", q(r.instrument, r.qty_open)),
            ],
        ),
        Event::Replaced(r) => (
            "replaced",
            vec![
                ("instrument", sym(r.instrument)),
                ("side", side(r.side)),
                ("order_id", n(r.order_id.0)),
                ("account", n(r.account.0.into())),
                ("client_order_id", n(r.client_order_id.0)),
                ("price", px(r.instrument, r.price)),
                ("qty", q(r.instrument, r.qty_open)),
                ("orig_client_order_id", n(r.orig_client_order_id.0)),
                ("price_old", px(r.instrument, r.price_old)),
                ("qty_open_old", q(r.instrument, r.qty_open_old)),
                ("qty_filled", q(r.instrument, r.qty_filled)),
                ("priority_kept", V::Bool(r.priority_kept)),
            ],
        ),
        Event::Expired(x) => (
            "expired",
            vec![
                ("instrument", sym(x.instrument)),
                ("side", side(x.side)),
                ("order_id", n(x.order_id.0)),
                ("account", n(x.account.0.into())),
                ("client_order_id", n(x.client_order_id.0)),
                ("price", px(x.instrument, x.price)),
                ("qty", q(x.instrument, x.qty_expired)),
                ("reason", V::Text(format!("{:?}", x.reason))),
            ],
        ),
        Event::BookDelta(d) => (
            "level",
            vec![
                ("instrument", sym(d.instrument)),
                ("side", side(d.side)),
                ("price", px(d.instrument, d.price)),
                ("qty", q(d.instrument, d.qty_total)),
                ("order_count", n(d.order_count.into())),
            ],
        ),
        Event::StatusChanged(s) => (
            "status",
            vec![
                ("instrument", sym(s.instrument)),
                ("status", V::Text(format!("{:?}", s.status))),
            ],
        ),
        Event::MassCancelled(m) => {
            let mut f = Vec::new();
            if let Some(i) = m.instrument {
                f.push(("instrument", sym(i)));
            }
            if let Some(a) = m.account {
                f.push(("account", n(a.0.into())));
            }
            f.push(("client_order_id", n(m.client_order_id.0)));
            f.push(("count", n(m.count.into())));
            ("masscancelled", f)
        }
        Event::BookChecked(c) => (
            "checkpoint",
            vec![
                ("instrument", sym(c.instrument)),
                ("book_hash", V::Text(format!("{:016x}", c.book_hash))),
                ("orders", n(c.orders.into())),
                ("bid_levels", n(c.bid_levels.into())),
                ("ask_levels", n(c.ask_levels.into())),
            ],
        ),
    };
    let text = |v: &V| match v {
        V::Num(x) => x.to_string(),
        V::Text(t) => t.clone(),
        V::Bool(b) => b.to_string(),
    };
    match format {
        EventFormat::Csv => {
            const SHARED: [&str; 8] = [
                "instrument",
                "side",
                "order_id",
                "account",
                "client_order_id",
                "price",
                "qty",
                "",
            ];
            let mut cols = vec![seq.to_string(), ts_ns.to_string(), name.to_string()];
            for key in &SHARED[..7] {
                cols.push(
                    fields
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| text(v))
                        .unwrap_or_default(),
                );
            }
            let detail: Vec<String> = fields
                .iter()
                .filter(|(k, _)| !SHARED.contains(k))
                .map(|(k, v)| format!("{k}={}", text(v).replace(' ', "_")))
                .collect();
            cols.push(detail.join(" "));
            let mut line = cols.join(",");
            line.push('\n');
            line
        }
        EventFormat::Jsonl => {
            let mut line = format!("{{\"seq\":{seq},\"ts_ns\":{ts_ns},\"event\":\"{name}\"");
            for (k, v) in &fields {
                match v {
                    V::Text(t) => line.push_str(&format!(",\"{k}\":\"{}\"", json_escape(t))),
                    other => line.push_str(&format!(",\"{k}\":{}", text(other))),
                }
            }
            line.push_str("}\n");
            line
        }
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Writes `commands` as a new Ferrox journal in `dir` (which must not hold one yet): command n
/// becomes record n with the file's `ts_ns`, producer 0 and producer_ref n, and the journal is
/// synced before returning. Returns the number of records.
pub fn to_journal(dir: &Path, commands: &[TimedCommand]) -> Result<u64, String> {
    // Segments sized to the file (records are 104 bytes framed) rather than the exchange's
    // 256 MiB default, so that a small what-if file does not preallocate a large file.
    let wanted = (commands.len() as u64 * 104 + (64 << 10)).next_power_of_two();
    let options = JournalOptions {
        segment_bytes: wanted.min(JournalOptions::default().segment_bytes),
        ..JournalOptions::default()
    };
    let (mut journal, recovery) = Journal::open(dir, options)
        .map_err(|e| format!("opening journal {}: {e}", dir.display()))?;
    if recovery.records != 0 {
        return Err(format!(
            "{} already holds a journal ({} records); choose an empty directory",
            dir.display(),
            recovery.records
        ));
    }
    let mut last_ts = 0u64;
    let mut payload = [0u8; INPUT_SLOT_BYTES];
    for (index, (ts, command)) in commands.iter().enumerate() {
        let seq = index as u64 + 1;
        // The journal itself does not check time, but the engine's replay does; refusing here
        // keeps a bad file from becoming a journal that fails later.
        if *ts < last_ts {
            return Err(format!(
                "command {seq}: ts_ns {ts} is before the previous command's {last_ts}"
            ));
        }
        last_ts = *ts;
        frame::encode_input(
            Origin {
                producer: 0,
                producer_ref: seq,
            },
            command,
            &mut payload,
        );
        journal
            .append(seq, *ts, &payload)
            .map_err(|e| format!("appending record {seq}: {e}"))?;
    }
    journal
        .sync()
        .map_err(|e| format!("syncing journal {}: {e}", dir.display()))?;
    Ok(commands.len() as u64)
}

/// Reads every command of the journal in `dir`. The journal must start at seq 1, because the
/// command file numbers commands from 1 and order ids are those numbers.
pub fn from_journal(dir: &Path) -> Result<Vec<TimedCommand>, String> {
    let reader =
        JournalReader::open(dir).map_err(|e| format!("opening journal {}: {e}", dir.display()))?;
    match reader.first_seq() {
        None | Some(1) => {}
        Some(first) => {
            return Err(format!(
                "journal {} starts at seq {first}; the command file needs one that starts at seq 1",
                dir.display()
            ))
        }
    }
    let mut out = Vec::new();
    for record in reader.iter() {
        let record = record.map_err(|e| e.to_string())?;
        let (_, command) = frame::decode_input(record.payload)
            .map_err(|e| format!("journal record {}: {e}", record.seq))?;
        out.push((record.ts_ns, command));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<InstrumentSpec> {
        let mut btc = InstrumentSpec::simple("BTC", 9_000_000);
        btc.qty_decimals = 4;
        btc.tick_size = PriceTicks(50);
        btc.lot_size = QtyLots(10);
        vec![InstrumentSpec::simple("AAPL", 19_000), btc]
    }

    fn line(row: &str) -> Result<Vec<TimedCommand>, ParseError> {
        parse(&format!("{HEADER}\n{row}\n"), &specs())
    }

    #[test]
    fn errors_name_line_column_and_reason() {
        let e = line("1,new,AAPL,1,1,buy,limit,190.001,5,gtc,,,,").unwrap_err();
        assert_eq!((e.line, e.column), (2, Some(8)));
        assert!(e.to_string().contains("column 8 (price)"), "{e}");
        let e = line("1,new,BTC,1,1,buy,limit,90000.25,1,gtc,,,,").unwrap_err();
        assert!(e.reason.contains("tick size 0.50"), "{e}");
        let e = line("1,new,BTC,1,1,buy,limit,90000.50,0.0005,gtc,,,,").unwrap_err();
        assert_eq!(e.column, Some(9));
        let e = line("1,cancel,AAPL,1,1,,,,,,,,,7").unwrap_err();
        assert_eq!(e.column, Some(3));
        let e = line("1,frob,,,,,,,,,,,,").unwrap_err();
        assert_eq!(e.column, Some(2));
        let e = line("1,tick,,,").unwrap_err();
        assert_eq!((e.line, e.column), (2, None));
        let e = parse("ts_ns,type\n", &specs()).unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse(
            &format!("{HEADER}\n5,tick,,,,,,,,,,,,\n4,tick,,,,,,,,,,,,\n"),
            &specs(),
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (3, Some(1)));
    }

    #[test]
    fn defaults_apply_to_empty_fields() {
        let c = line("7,new,AAPL,3,,sell,,190.5,10,,,,,").unwrap();
        let Command::NewOrder(o) = c[0].1 else {
            panic!("not a new order")
        };
        assert_eq!(o.price, PriceTicks(19_050));
        assert_eq!(o.tif, TimeInForce::Gtc);
        assert_eq!(o.stp_mode, StpMode::CancelResting);
        let c = line("7,masscancel,,,,,,,,,,,,").unwrap();
        assert!(matches!(
            c[0].1,
            Command::MassCancel(MassCancel {
                instrument: None,
                account: None,
                ..
            })
        ));
    }
}
