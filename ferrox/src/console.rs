//! The operator console: one command per line in, readable events out.
//!
//! This is an edge component: it converts decimal text to ticks and lots with `rust_decimal`,
//! stamps each command with a sequence number and a wall-clock timestamp (the role the
//! sequencer takes in the full pipeline), applies it to the engine and prints the events with
//! prices and quantities back in decimal form.

use ferrox_engine::{
    AccountId, ClientOrderId, Command, Engine, Event, InstrumentId, InstrumentSpec,
    InstrumentStatus, MassCancel, NewOrder, OrderId, OrderType, PriceTicks, QtyLots, Replace,
    SequencedCommand, SetStatus, Side, StpGroup, StpMode, TimeInForce, VecSink,
};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const HELP: &str = "\
commands (one per line; PRICE and QTY are decimals in the instrument's units):
  buy  SYMBOL QTY [PRICE] [gtc|day|ioc|fok|gtd=TS_NS] [post] [acct=N] [id=N]
       [stp=resting|aggressor|both|decrement|off] [group=N]     (no PRICE: market order, IOC)
  sell ...                                                        (same options)
  cancel ORDER_ID [acct=N]
  replace ORDER_ID PRICE QTY [acct=N] [id=N]                      (QTY: new total quantity)
  mass [SYMBOL|*] [acct=N]                                        (mass cancel)
  halt SYMBOL | resume SYMBOL | eod | tick
  instruments | help | quit; book SYMBOL and hash in `run --script` mode (market data shows books)
  kill ACCOUNT | unkill ACCOUNT      (FIX gateway kill switch: cancel all, block new orders)
  logout COMPID                      (log a FIX session out)
account defaults to 1.";

/// What a console line asks for.
pub enum Line {
    Command(Command),
    Book(InstrumentId),
    Hash,
    Instruments,
    Help,
    Quit,
    Empty,
}

pub struct Console {
    /// The engine, when the console drives one in-process (`--script`, tests); `None` when
    /// commands go through the sequencer's rings.
    pub engine: Option<Engine>,
    specs: Vec<InstrumentSpec>,
    /// Instruments of the orders this console has seen accepted, so that a replace can convert
    /// its decimal price without asking the engine.
    order_instruments: BTreeMap<u64, InstrumentId>,
    seq: u64,
    next_client_id: u64,
    sink: VecSink,
}

impl Console {
    pub fn new(engine: Engine) -> Self {
        let specs = engine.instruments().to_vec();
        Console {
            engine: Some(engine),
            specs,
            order_instruments: BTreeMap::new(),
            seq: 0,
            next_client_id: 1,
            sink: VecSink {
                events: Vec::with_capacity(256),
            },
        }
    }

    /// A console whose commands are executed elsewhere (through the rings).
    pub fn remote(specs: Vec<InstrumentSpec>) -> Self {
        Console {
            engine: None,
            specs,
            order_instruments: BTreeMap::new(),
            seq: 0,
            next_client_id: 1,
            sink: VecSink::default(),
        }
    }

    /// Learns which orders exist from the events it is shown.
    pub fn observe(&mut self, e: &Event) {
        match e {
            Event::Accepted(a) => {
                self.order_instruments.insert(a.order_id.0, a.instrument);
            }
            Event::Cancelled(c) => {
                self.order_instruments.remove(&c.order_id.0);
            }
            Event::Expired(x) => {
                self.order_instruments.remove(&x.order_id.0);
            }
            _ => {}
        }
    }

    /// Advances the client order id counter past the id a command used.
    pub fn note_command(&mut self, command: &Command) {
        let clid = match command {
            Command::NewOrder(o) => o.client_order_id.0,
            Command::Cancel(c) => c.client_order_id.0,
            Command::Replace(r) => r.client_order_id.0,
            Command::MassCancel(m) => m.client_order_id.0,
            _ => 0,
        };
        self.next_client_id = self.next_client_id.max(clid.saturating_add(1));
    }

    /// Handles one line against the in-process engine and returns the text to print, or
    /// `None` to quit.
    pub fn handle(&mut self, line: &str, ts_ns: u64) -> Option<String> {
        match self.parse(line) {
            Err(e) => Some(format!("error: {e}")),
            Ok(Line::Quit) => None,
            Ok(Line::Empty) => Some(String::new()),
            Ok(Line::Help) => Some(HELP.to_string()),
            Ok(Line::Hash) => Some(match &self.engine {
                Some(e) => format!(
                    "state_hash {:016x} after seq {}",
                    e.state_hash(),
                    e.last_seq()
                ),
                None => "the exchange prints its state hash when it stops".to_string(),
            }),
            Ok(Line::Instruments) => Some(self.instruments()),
            Ok(Line::Book(i)) => Some(self.render_book(i)),
            Ok(Line::Command(command)) => {
                self.note_command(&command);
                let Some(engine) = self.engine.as_mut() else {
                    return Some("error: no engine attached to this console".to_string());
                };
                self.seq += 1;
                // Wall clocks can step backwards; the engine requires time not to, so the
                // console holds time still rather than go back.
                let ts_ns = ts_ns.max(engine.last_ts_ns());
                let cmd = SequencedCommand {
                    seq: self.seq,
                    ts_ns,
                    command,
                };
                engine.apply(&cmd, &mut self.sink);
                let mut out = String::new();
                for e in self.sink.take() {
                    self.observe(&e);
                    let _ = writeln!(out, "{}", self.render_event(&e));
                }
                Some(out.trim_end().to_string())
            }
        }
    }

    /// Answers the lines that need no engine command (help, instruments, book, hash).
    pub fn handle_local(&mut self, line: Line) -> Option<String> {
        match line {
            Line::Empty | Line::Quit | Line::Command(_) => None,
            Line::Help => Some(HELP.to_string()),
            Line::Instruments => Some(self.instruments()),
            Line::Book(i) => Some(self.render_book(i)),
            Line::Hash => Some(match &self.engine {
                Some(e) => format!(
                    "state_hash {:016x} after seq {}",
                    e.state_hash(),
                    e.last_seq()
                ),
                None => "the exchange prints its state hash when it stops".to_string(),
            }),
        }
    }

    fn spec(&self, i: InstrumentId) -> &InstrumentSpec {
        &self.specs[i.0 as usize]
    }

    fn symbol(&self, symbol: &str) -> Result<InstrumentId, String> {
        self.specs
            .iter()
            .position(|s| s.symbol == symbol)
            .map(|i| InstrumentId(i as u32))
            .ok_or_else(|| format!("unknown symbol {symbol:?} (try `instruments`)"))
    }

    pub fn parse(&mut self, line: &str) -> Result<Line, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return Ok(Line::Empty);
        };
        let (positional, options): (Vec<&str>, Vec<&str>) =
            args.iter().partition(|w| !w.contains('=') && !is_flag(w));
        let opts = Options::parse(&options)?;
        // Client order ids count up on their own unless given; `handle` advances the counter
        // only for lines that became commands.
        let client_order_id = ClientOrderId(opts.id.unwrap_or(self.next_client_id));
        let account = AccountId(opts.account.unwrap_or(1));
        let command = match verb.to_ascii_lowercase().as_str() {
            "buy" | "sell" => {
                let side = if verb.eq_ignore_ascii_case("buy") {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let (symbol, qty, price) = match positional.as_slice() {
                    [s, q] => (*s, *q, None),
                    [s, q, p] => (*s, *q, Some(*p)),
                    _ => return Err("usage: buy|sell SYMBOL QTY [PRICE] [options]".into()),
                };
                let instrument = self.symbol(symbol)?;
                let spec = self.spec(instrument);
                let qty = to_lots(spec, qty)?;
                let (order_type, price, default_tif) = match price {
                    Some(p) => (OrderType::Limit, to_ticks(spec, p)?, TimeInForce::Gtc),
                    None => (OrderType::Market, PriceTicks(0), TimeInForce::Ioc),
                };
                let tif = opts.tif.unwrap_or(default_tif);
                Command::NewOrder(NewOrder {
                    instrument,
                    account,
                    client_order_id,
                    side,
                    order_type,
                    price,
                    qty,
                    tif,
                    expire_ts_ns: opts.expire_ts_ns.unwrap_or(0),
                    post_only: opts.post_only,
                    stp_mode: opts.stp_mode.unwrap_or_default(),
                    stp_group: StpGroup(opts.group.unwrap_or(0)),
                })
            }
            "cancel" => {
                let [id] = positional.as_slice() else {
                    return Err("usage: cancel ORDER_ID [acct=N]".into());
                };
                Command::Cancel(ferrox_engine::Cancel {
                    order_id: OrderId(parse_u64(id, "order id")?),
                    account,
                    client_order_id,
                })
            }
            "replace" => {
                let [id, price, qty] = positional.as_slice() else {
                    return Err("usage: replace ORDER_ID PRICE QTY [acct=N]".into());
                };
                let order_id = OrderId(parse_u64(id, "order id")?);
                let instrument = self
                    .engine
                    .as_ref()
                    .and_then(|e| e.order(order_id))
                    .map(|v| v.instrument)
                    .or_else(|| self.order_instruments.get(&order_id.0).copied())
                    .ok_or_else(|| format!("no live order {order_id} known to this console"))?;
                let spec = self.spec(instrument);
                Command::Replace(Replace {
                    order_id,
                    account,
                    client_order_id,
                    price: to_ticks(spec, price)?,
                    qty: to_lots(spec, qty)?,
                })
            }
            "mass" => {
                let instrument = match positional.as_slice() {
                    [] | ["*"] => None,
                    [s] => Some(self.symbol(s)?),
                    _ => return Err("usage: mass [SYMBOL|*] [acct=N]".into()),
                };
                Command::MassCancel(MassCancel {
                    instrument,
                    account: opts.account.map(AccountId),
                    client_order_id,
                })
            }
            "halt" | "resume" => {
                let [s] = positional.as_slice() else {
                    return Err(format!("usage: {verb} SYMBOL"));
                };
                let status = if verb.eq_ignore_ascii_case("halt") {
                    InstrumentStatus::Halted
                } else {
                    InstrumentStatus::Open
                };
                Command::SetStatus(SetStatus {
                    instrument: self.symbol(s)?,
                    status,
                })
            }
            "eod" => Command::EndOfDay,
            "tick" => Command::Tick,
            "checkpoint" => {
                let [s] = positional.as_slice() else {
                    return Err("usage: checkpoint SYMBOL".into());
                };
                Command::Checkpoint(ferrox_protocol::Checkpoint {
                    instrument: self.symbol(s)?,
                })
            }
            "book" => {
                let [s] = positional.as_slice() else {
                    return Err("usage: book SYMBOL".into());
                };
                return Ok(Line::Book(self.symbol(s)?));
            }
            "hash" => return Ok(Line::Hash),
            "instruments" => return Ok(Line::Instruments),
            "help" | "?" => return Ok(Line::Help),
            "quit" | "exit" => return Ok(Line::Quit),
            other => return Err(format!("unknown command {other:?} (try `help`)")),
        };
        Ok(Line::Command(command))
    }

    fn instruments(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.specs.iter().enumerate() {
            let id = InstrumentId(i as u32);
            let reference = self
                .engine
                .as_ref()
                .and_then(|e| e.reference_price(id))
                .unwrap_or(s.reference_price);
            let _ = write!(
                out,
                "{i}: {} tick {} lot {} reference {}",
                s.symbol,
                px(s, s.tick_size),
                qty(s, s.lot_size),
                px(s, reference),
            );
            if let Some(status) = self.engine.as_ref().and_then(|e| e.status(id)) {
                let _ = write!(out, " status {status:?}");
            }
            out.push('\n');
        }
        out.trim_end().to_string()
    }

    pub fn render_book(&self, i: InstrumentId) -> String {
        let spec = self.spec(i);
        let Some(engine) = &self.engine else {
            return "the book is shown by the market-data tools; this console sends orders only"
                .into();
        };
        let Some(book) = engine.book(i) else {
            return "no such instrument".into();
        };
        let mut out = format!("{} ({:?})\n", spec.symbol, book.status);
        let _ = writeln!(
            out,
            "{:>14} {:>12} | {:<12} {:<14}",
            "bid qty", "bid", "ask", "ask qty"
        );
        let depth = book.bids.len().max(book.asks.len()).min(20);
        for k in 0..depth {
            let bid = book.bids.get(k);
            let ask = book.asks.get(k);
            let _ = writeln!(
                out,
                "{:>14} {:>12} | {:<12} {:<14}",
                bid.map(|l| format!("{} ({})", qty(spec, l.qty_total), l.orders.len()))
                    .unwrap_or_default(),
                bid.map(|l| px(spec, l.price)).unwrap_or_default(),
                ask.map(|l| px(spec, l.price)).unwrap_or_default(),
                ask.map(|l| format!("{} ({})", qty(spec, l.qty_total), l.orders.len()))
                    .unwrap_or_default(),
            );
        }
        if let Some(last) = book.last_trade_price {
            let _ = write!(out, "last {}", px(spec, last));
        }
        out.trim_end().to_string()
    }

    pub fn render_event(&self, e: &Event) -> String {
        let s = |i: InstrumentId| &self.specs[i.0 as usize];
        match e {
            Event::Accepted(a) => format!(
                "accepted  order {} {} {:?} {:?} {} @ {} {:?}{} acct {} clid {}",
                a.order_id, s(a.instrument).symbol, a.side, a.order_type,
                qty(s(a.instrument), a.qty), px(s(a.instrument), a.price), a.tif,
                if a.post_only { " post-only" } else { "" }, a.account, a.client_order_id
            ),
            Event::Rejected(r) => format!(
                "rejected  {:?} clid {} order {}: {}",
                r.request, r.client_order_id, r.order_id, r.code
            ),
            Event::Trade(t) => format!(
                "trade #{} {} {} @ {} aggressor {:?} maker {} (acct {}, open {}) taker {} (acct {}, open {})",
                t.trade_id, s(t.instrument).symbol, qty(s(t.instrument), t.qty),
                px(s(t.instrument), t.price), t.aggressor_side, t.maker_order_id, t.maker_account,
                qty(s(t.instrument), t.maker_qty_open), t.taker_order_id, t.taker_account,
                qty(s(t.instrument), t.taker_qty_open)
            ),
            Event::Rested(r) => format!(
                "rested    order {} {} {:?} {} @ {}",
                r.order_id, s(r.instrument).symbol, r.side, qty(s(r.instrument), r.qty_open),
                px(s(r.instrument), r.price)
            ),
            Event::Cancelled(c) => format!(
                "cancelled order {} {} {} ({:?})",
                c.order_id, s(c.instrument).symbol, qty(s(c.instrument), c.qty_cancelled), c.reason
            ),
            Event::Restated(r) => format!(
                "restated  order {} reduced by {} to {} (self-trade prevention)",
                r.order_id, qty(s(r.instrument), r.qty_reduced), qty(s(r.instrument), r.qty_open)
            ),
            Event::Replaced(r) => format!(
                "replaced  order {} {} @ {} -> {} @ {}{}",
                r.order_id, qty(s(r.instrument), r.qty_open_old), px(s(r.instrument), r.price_old),
                qty(s(r.instrument), r.qty_open), px(s(r.instrument), r.price),
                if r.priority_kept { " (priority kept)" } else { "" }
            ),
            Event::Expired(x) => format!(
                "expired   order {} {} {} ({:?})",
                x.order_id, s(x.instrument).symbol, qty(s(x.instrument), x.qty_expired), x.reason
            ),
            Event::BookDelta(d) => format!(
                "level     {} {:?} {} now {} in {} orders",
                s(d.instrument).symbol, d.side, px(s(d.instrument), d.price),
                qty(s(d.instrument), d.qty_total), d.order_count
            ),
            Event::StatusChanged(c) => {
                format!("status    {} {:?}", s(c.instrument).symbol, c.status)
            }
            Event::MassCancelled(m) => format!("mass cancel done: {} orders", m.count),
            Event::BookChecked(c) => format!(
                "checkpoint {}: {} orders, {} bid / {} ask levels, book hash {:016x}",
                s(c.instrument).symbol,
                c.orders,
                c.bid_levels,
                c.ask_levels,
                c.book_hash
            ),
        }
    }
}

fn is_flag(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "gtc" | "day" | "ioc" | "fok" | "post"
    )
}

#[derive(Default)]
struct Options {
    tif: Option<TimeInForce>,
    expire_ts_ns: Option<u64>,
    post_only: bool,
    account: Option<u32>,
    id: Option<u64>,
    stp_mode: Option<StpMode>,
    group: Option<u32>,
}

impl Options {
    fn parse(words: &[&str]) -> Result<Options, String> {
        let mut o = Options::default();
        for w in words {
            let lower = w.to_ascii_lowercase();
            match lower.split_once('=') {
                None => match lower.as_str() {
                    "gtc" => o.tif = Some(TimeInForce::Gtc),
                    "day" => o.tif = Some(TimeInForce::Day),
                    "ioc" => o.tif = Some(TimeInForce::Ioc),
                    "fok" => o.tif = Some(TimeInForce::Fok),
                    "post" => o.post_only = true,
                    _ => return Err(format!("unknown option {w:?}")),
                },
                Some(("gtd", v)) => {
                    o.tif = Some(TimeInForce::Gtd);
                    o.expire_ts_ns = Some(parse_u64(v, "gtd expiry")?);
                }
                Some(("acct", v)) => o.account = Some(parse_u32(v, "account")?),
                Some(("id", v)) => o.id = Some(parse_u64(v, "client order id")?),
                Some(("group", v)) => o.group = Some(parse_u32(v, "stp group")?),
                Some(("stp", v)) => {
                    o.stp_mode = Some(match v {
                        "resting" => StpMode::CancelResting,
                        "aggressor" => StpMode::CancelAggressor,
                        "both" => StpMode::CancelBoth,
                        "decrement" => StpMode::DecrementCancel,
                        "off" => StpMode::Off,
                        _ => return Err(format!("unknown stp mode {v:?}")),
                    })
                }
                Some((k, _)) => return Err(format!("unknown option {k:?}")),
            }
        }
        Ok(o)
    }
}

fn parse_u64(s: &str, what: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not a whole number"))
}

fn parse_u32(s: &str, what: &str) -> Result<u32, String> {
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not a whole number below 2^32"))
}

/// Decimal text to ticks; refuses values finer than one tick quantum. Whether the price is a
/// multiple of the tick size is the engine's check, so that the reject carries its code.
pub fn to_ticks(spec: &InstrumentSpec, text: &str) -> Result<PriceTicks, String> {
    let d: Decimal = text
        .parse()
        .map_err(|_| format!("price {text:?} is not a decimal"))?;
    ferrox_engine::config::decimal_to_units(d, spec.price_decimals)
        .and_then(|u| i64::try_from(u).ok())
        .map(PriceTicks)
        .ok_or_else(|| {
            format!(
                "price {text} has more than {} decimals or is out of range",
                spec.price_decimals
            )
        })
}

pub fn to_lots(spec: &InstrumentSpec, text: &str) -> Result<QtyLots, String> {
    let d: Decimal = text
        .parse()
        .map_err(|_| format!("quantity {text:?} is not a decimal"))?;
    ferrox_engine::config::decimal_to_units(d, spec.qty_decimals)
        .and_then(|u| u64::try_from(u).ok())
        .map(QtyLots)
        .ok_or_else(|| {
            format!(
                "quantity {text} is negative, has more than {} decimals or is out of range",
                spec.qty_decimals
            )
        })
}

pub fn px(spec: &InstrumentSpec, p: PriceTicks) -> String {
    Decimal::new(p.0, spec.price_decimals).to_string()
}

pub fn qty(spec: &InstrumentSpec, q: QtyLots) -> String {
    match i64::try_from(q.0) {
        Ok(v) => Decimal::new(v, spec.qty_decimals).to_string(),
        Err(_) => format!("{}e-{}", q.0, spec.qty_decimals),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{QuickCheck, TestResult};

    fn console() -> Console {
        let mut config = crate::exchange::parse_config(crate::DEFAULT_CONFIG, "default")
            .expect("default config")
            .engine;
        // A small pool keeps each quickcheck case cheap to build.
        config.limits = ferrox_engine::Limits {
            orders_max: 256,
            levels_max: 64,
            gtd_orders_max: 8,
        };
        Console::new(Engine::new(config).expect("engine"))
    }

    #[test]
    fn decimals_convert_exactly_or_not_at_all() {
        let c = console();
        let btc = &c.specs[3];
        assert_eq!(to_ticks(btc, "90000.50"), Ok(PriceTicks(9_000_050)));
        assert!(to_ticks(btc, "90000.505").is_err());
        assert_eq!(to_lots(btc, "0.001"), Ok(QtyLots(10)));
        assert!(to_lots(btc, "-1").is_err());
        assert!(to_lots(btc, "0.00001").is_err());
        assert_eq!(px(btc, PriceTicks(9_000_050)), "90000.50");
        assert_eq!(qty(btc, QtyLots(15)), "0.0015");
    }

    #[test]
    fn console_session_trades_and_reports() {
        let mut c = console();
        assert!(c
            .handle("sell AAPL 100 190.10 acct=2", 1)
            .unwrap()
            .contains("rested"));
        let out = c.handle("buy AAPL 120 190.10 ioc", 2).unwrap();
        assert!(out.contains("trade #1 AAPL 100 @ 190.10"), "{out}");
        assert!(out.contains("IocRemainder"), "{out}");
        let out = c.handle("buy AAPL 10 150.00", 3).unwrap();
        assert!(out.contains("(110)"), "{out}");
        assert!(c.handle("frobnicate", 4).unwrap().starts_with("error"));
        assert!(c.handle("quit", 5).is_none());
    }

    /// The console is a decoder of untrusted text: no line may panic it.
    #[test]
    fn arbitrary_lines_never_panic() {
        fn prop(words: Vec<String>, pick: Vec<u8>) -> TestResult {
            let mut c = console();
            let vocab = [
                "buy",
                "sell",
                "cancel",
                "replace",
                "mass",
                "halt",
                "resume",
                "eod",
                "tick",
                "book",
                "hash",
                "AAPL",
                "ESZ6",
                "BTC-USD",
                "1",
                "0",
                "-5",
                "190.10",
                "1e9",
                "99999999999999999999",
                "ioc",
                "fok",
                "gtd=5",
                "post",
                "acct=2",
                "stp=off",
                "group=1",
                "id=18446744073709551615",
                "*",
            ];
            let mut line = String::new();
            for (i, w) in words.iter().enumerate() {
                let k = pick.get(i).copied().unwrap_or(0) as usize;
                line.push_str(if k % 3 == 0 {
                    w.as_str()
                } else {
                    vocab[k % vocab.len()]
                });
                line.push(' ');
            }
            let _ = c.handle(&line, 1);
            TestResult::passed()
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<String>, Vec<u8>) -> TestResult);
    }
}
