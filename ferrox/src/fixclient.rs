//! `ferrox client`: a FIX 4.4 order-entry client for people (and scripts).
//!
//! It logs on to the gateway, reads one command per line and prints every message it receives
//! on one readable line:
//!
//! ```text
//! buy AAPL 100 @ 187.25 [day|gtc|ioc|fok|gtd YYYYMMDD-HH:MM:SS] [post]
//! sell MSFT 10 mkt [ioc|fok]
//! cancel C3            replace C3 50 @ 187.30            status C3
//! masscancel [SYMBOL]  help   quit
//! ```
//!
//! ClOrdIDs are `<run tag>-C<n>`, the run tag being the start time in base-36 milliseconds, so
//! they never repeat across runs; output shows them as `C<n>` and commands accept either form.
//!
//! From a terminal commands run as they are typed and messages print as they arrive. From a
//! file (`--script`) or a pipe, each command waits for its first reply (up to 5 s) and then for
//! the messages that follow it closely (until 200 ms pass without one), so the output is in a
//! stable order; at the end the client logs out.

use ferrox_gateway::client::{pipe_string, unix_ns, FixClient, OwnedMessage};
use ferrox_gateway::fix::{tags, time::parse_utc_timestamp, Encoder};
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Options {
    pub addr: String,
    pub sender: String,
    pub target: String,
    pub password: Option<String>,
    pub heartbeat_s: u64,
    /// Log on with ResetSeqNumFlag (both sides start at 1).
    pub reset: bool,
    /// Without reset: our first MsgSeqNum.
    pub seq: u64,
    /// Also print every message sent and received in FIX form, `|` for SOH.
    pub raw: bool,
    pub script: Option<PathBuf>,
}

const HELP: &str = "\
commands:
  buy|sell SYMBOL QTY @ PRICE [day|gtc|ioc|fok|gtd YYYYMMDD-HH:MM:SS] [post]   limit order
  buy|sell SYMBOL QTY mkt [ioc|fok]                                           market order
  cancel ID                      cancel an order of this run (ID as printed, e.g. C3)
  replace ID QTY @ PRICE         new total quantity and price
  status ID                      ask for the order's status
  masscancel [SYMBOL]            cancel all orders of this session's account (on SYMBOL)
  wait MS                        pause (scripts)
  help                           this text
  quit                           log out and exit";

/// What we know about an order sent in this run.
struct Order {
    symbol: String,
    side: u8,
    /// The ClOrdID the exchange knows the order by now (changes with each accepted replace).
    current: String,
    order_id: Option<String>,
}

struct Client {
    fix: FixClient,
    raw: bool,
    /// `<run tag>-`
    prefix: String,
    next_id: u64,
    orders: Vec<Order>,
    /// Any ClOrdID of an order's chain (full form) to its index in `orders`.
    by_id: HashMap<String, usize>,
    /// Symbol of each mass cancel by symbol (short ClOrdID).
    mass_symbols: HashMap<String, String>,
    out: std::io::Stdout,
}

/// What a sent command waits for in script mode.
struct Awaiting {
    cl_ord_id: Option<String>,
    seq: u64,
}

pub fn run(o: Options) -> Result<(), String> {
    let mut fix = if o.reset {
        FixClient::start(
            o.addr.as_str(),
            &o.sender,
            &o.target,
            o.password.as_deref(),
            o.heartbeat_s,
            true,
        )
    } else {
        FixClient::start_at(
            o.addr.as_str(),
            &o.sender,
            &o.target,
            o.password.as_deref(),
            o.heartbeat_s,
            false,
            o.seq,
        )
    }
    .map_err(|e| format!("cannot connect to {}: {e}", o.addr))?;
    if o.raw {
        println!("-> {}", pipe_string(fix.last_sent()));
    }
    let mut client = Client {
        fix,
        raw: o.raw,
        prefix: format!("{}-", run_tag()),
        next_id: 1,
        orders: Vec::new(),
        by_id: HashMap::new(),
        mass_symbols: HashMap::new(),
        out: std::io::stdout(),
    };
    // Wait for the Logon reply, printing it (and anything before it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.fix.is_logged_on() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no Logon reply from {} within 10 s", o.addr));
        }
        match client.fix.recv(left) {
            Ok(Some(m)) => client.print(&m),
            Ok(None) => {}
            Err(e) => {
                return Err(match client.fix.logout_text() {
                    Some(t) => format!("logon refused: {t}"),
                    None => format!("logon failed: {e}"),
                })
            }
        }
        if !client.fix.is_open() {
            return Err(format!(
                "logon refused: {}",
                client.fix.logout_text().unwrap_or("")
            ));
        }
    }
    match &o.script {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot open script {}: {e}", path.display()))?;
            let lines = std::io::BufReader::new(file)
                .lines()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            client.scripted(lines)
        }
        None if !std::io::stdin().is_terminal() => {
            let lines = std::io::stdin()
                .lock()
                .lines()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("reading stdin: {e}"))?;
            client.scripted(lines)
        }
        None => client.interactive(),
    }
}

/// Base-36 milliseconds since the epoch.
fn run_tag() -> String {
    let mut ms = unix_ns() / 1_000_000;
    let mut out = Vec::new();
    while ms > 0 {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(ms % 36) as usize]);
        ms /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

enum Step {
    Continue,
    Quit,
}

impl Client {
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    fn print(&mut self, m: &OwnedMessage) {
        self.track(m);
        let text = self.describe(m);
        self.line(&text);
        if self.raw {
            let raw = format!("<- {}", m.to_pipe_string());
            self.line(&raw);
        }
    }

    fn short<'a>(&self, id: &'a str) -> &'a str {
        id.strip_prefix(self.prefix.as_str()).unwrap_or(id)
    }

    fn full(&self, id: &str) -> String {
        if self.by_id.contains_key(id) {
            id.to_string()
        } else {
            format!("{}{id}", self.prefix)
        }
    }

    fn new_id(&mut self) -> String {
        let id = format!("{}C{}", self.prefix, self.next_id);
        self.next_id += 1;
        id
    }

    /// Keeps order ids and replace chains up to date from execution reports.
    fn track(&mut self, m: &OwnedMessage) {
        if m.msg_type() != b"8" {
            return;
        }
        let Some(id) = m.get_str(tags::CL_ORD_ID) else {
            return;
        };
        let index = self
            .by_id
            .get(id)
            .or_else(|| {
                m.get_str(tags::ORIG_CL_ORD_ID)
                    .and_then(|o| self.by_id.get(o))
            })
            .copied();
        let Some(index) = index else {
            return;
        };
        let order = &mut self.orders[index];
        if let Some(oid) = m.get_str(tags::ORDER_ID) {
            if !oid.is_empty() && oid != "NONE" {
                order.order_id = Some(oid.to_string());
            }
        }
        if m.get(tags::EXEC_TYPE) == Some(b"5") {
            order.current = id.to_string();
        }
    }

    fn field<'m>(&self, m: &'m OwnedMessage, tag: u32) -> &'m str {
        m.get_str(tag).unwrap_or("?")
    }

    fn id_of(&self, m: &OwnedMessage, tag: u32) -> String {
        self.short(m.get_str(tag).unwrap_or("?")).to_string()
    }

    /// One readable line per message.
    fn describe(&self, m: &OwnedMessage) -> String {
        let text = m.get_str(tags::TEXT).filter(|t| !t.is_empty());
        let with_text = |s: String| match text {
            Some(t) => format!("{s} - {t}"),
            None => s,
        };
        match m.msg_type() {
            b"8" => {
                let id = self.id_of(m, tags::CL_ORD_ID);
                let symbol = self.field(m, tags::SYMBOL);
                let side = match m.get(tags::SIDE) {
                    Some(b"1") => "buy",
                    Some(b"2") => "sell",
                    _ => "?",
                };
                let head = format!("ER {id} {symbol} {side}");
                let qty = self.field(m, tags::ORDER_QTY);
                let price = match (m.get_str(tags::PRICE), m.get(tags::ORD_TYPE)) {
                    (Some(p), _) => p,
                    (None, Some(b"1")) => "mkt",
                    (None, _) => "?",
                };
                let leaves = self.field(m, tags::LEAVES_QTY);
                let cum = self.field(m, tags::CUM_QTY);
                let order = match m.get_str(tags::ORDER_ID) {
                    Some(o) => format!(" (order {o})"),
                    None => String::new(),
                };
                match m.get(tags::EXEC_TYPE).unwrap_or(b"?") {
                    b"0" => with_text(format!(
                        "{head} NEW {qty} @ {price} leaves {leaves} cum {cum}{order}"
                    )),
                    b"F" => {
                        let done = if m.get(tags::ORD_STATUS) == Some(b"2") {
                            " (filled)"
                        } else {
                            ""
                        };
                        with_text(format!(
                            "{head} FILL {} @ {} cum {cum} leaves {leaves} avg {}{done}",
                            self.field(m, tags::LAST_QTY),
                            self.field(m, tags::LAST_PX),
                            self.field(m, tags::AVG_PX)
                        ))
                    }
                    b"4" => {
                        let orig = match m.get_str(tags::ORIG_CL_ORD_ID) {
                            Some(o) => format!(" {}", self.short(o)),
                            None => String::new(),
                        };
                        with_text(format!(
                            "{head} CANCELED{orig} leaves {leaves} cum {cum}{order}"
                        ))
                    }
                    b"5" => with_text(format!(
                        "{head} REPLACED {} -> {qty} @ {price} leaves {leaves} cum {cum}{order}",
                        self.id_of(m, tags::ORIG_CL_ORD_ID)
                    )),
                    b"8" => {
                        let reason = text.unwrap_or("rejected");
                        let code = match m.get_str(tags::ORD_REJ_REASON) {
                            Some(c) => format!(" (OrdRejReason {c})"),
                            None => String::new(),
                        };
                        format!("REJECT {id}: {reason}{code}")
                    }
                    b"C" => with_text(format!("{head} EXPIRED leaves {leaves} cum {cum}{order}")),
                    b"D" => with_text(format!(
                        "{head} RESTATED {qty} @ {price} leaves {leaves} cum {cum}{order}"
                    )),
                    b"I" if m.get(tags::ORD_STATUS) == Some(b"8") => {
                        format!("{head} STATUS {}", text.unwrap_or("rejected"))
                    }
                    b"I" => with_text(format!(
                        "{head} STATUS {} {qty} @ {price} leaves {leaves} cum {cum} avg {}{order}",
                        ord_status(m.get(tags::ORD_STATUS)),
                        self.field(m, tags::AVG_PX)
                    )),
                    other => with_text(format!(
                        "{head} ExecType {} {} leaves {leaves} cum {cum}{order}",
                        String::from_utf8_lossy(other),
                        ord_status(m.get(tags::ORD_STATUS))
                    )),
                }
            }
            b"9" => {
                let what = if m.get(tags::CXL_REJ_RESPONSE_TO) == Some(b"2") {
                    "REPLACE-REJECT"
                } else {
                    "CANCEL-REJECT"
                };
                format!(
                    "{what} {} (orig {}): {}",
                    self.id_of(m, tags::CL_ORD_ID),
                    self.id_of(m, tags::ORIG_CL_ORD_ID),
                    text.unwrap_or("rejected")
                )
            }
            b"r" => {
                let id = self.id_of(m, tags::CL_ORD_ID);
                let affected = m.get_str(tags::TOTAL_AFFECTED_ORDERS).unwrap_or("0");
                match m.get(tags::MASS_CANCEL_RESPONSE) {
                    Some(b"0") => format!(
                        "MASS-CANCEL {id} rejected: {}",
                        text.unwrap_or("no reason given")
                    ),
                    Some(b"1") => {
                        // The report need not repeat the symbol; the request had it.
                        let symbol = m
                            .get_str(tags::SYMBOL)
                            .or_else(|| self.mass_symbols.get(&id).map(String::as_str))
                            .unwrap_or("?");
                        with_text(format!(
                            "MASS-CANCEL {id} {symbol}: {affected} orders canceled"
                        ))
                    }
                    _ => with_text(format!("MASS-CANCEL {id}: {affected} orders canceled")),
                }
            }
            b"j" => format!(
                "BUSINESS-REJECT {} (MsgType {}): {}",
                self.id_of(m, tags::BUSINESS_REJECT_REF_ID),
                self.field(m, tags::REF_MSG_TYPE),
                text.unwrap_or("rejected")
            ),
            b"3" => format!(
                "SESSION-REJECT of our message {} (tag {}): {}",
                self.field(m, tags::REF_SEQ_NUM),
                m.get_str(tags::REF_TAG_ID).unwrap_or("-"),
                text.unwrap_or("rejected")
            ),
            b"5" => format!("LOGOUT: {}", text.unwrap_or("")),
            b"A" => format!(
                "LOGGED ON (HeartBtInt {} s)",
                self.field(m, tags::HEART_BT_INT)
            ),
            other => format!(
                "MSG {}: {}",
                String::from_utf8_lossy(other),
                m.to_pipe_string()
            ),
        }
    }

    /// Sends and, with `--raw`, prints what was sent.
    fn send(&mut self, msg_type: &[u8], body: impl FnOnce(&mut Encoder)) -> Result<u64, String> {
        let seq = self
            .fix
            .send(msg_type, body)
            .map_err(|e| format!("send failed: {e}"))?;
        if self.raw {
            let raw = format!("-> {}", pipe_string(self.fix.last_sent()));
            self.line(&raw);
        }
        Ok(seq)
    }

    /// Runs one command line. `Ok(None)` for lines that send nothing.
    fn command(&mut self, line: &str) -> Result<(Option<Awaiting>, Step), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&verb) = words.first() else {
            return Ok((None, Step::Continue));
        };
        let awaiting = match verb.to_ascii_lowercase().as_str() {
            "buy" | "sell" => Some(self.new_order(verb, &words[1..])?),
            "cancel" => Some(self.cancel(&words[1..])?),
            "replace" => Some(self.replace(&words[1..])?),
            "status" => Some(self.status(&words[1..])?),
            "masscancel" => Some(self.mass_cancel(&words[1..])?),
            "help" | "?" => {
                self.line(HELP);
                None
            }
            "wait" => {
                let ms: u64 = words
                    .get(1)
                    .and_then(|w| w.parse().ok())
                    .ok_or("wait needs milliseconds")?;
                self.pump_for(Duration::from_millis(ms))?;
                None
            }
            "quit" | "exit" | "logout" => return Ok((None, Step::Quit)),
            _ => return Err(format!("unknown command {verb:?}; type help")),
        };
        Ok((awaiting, Step::Continue))
    }

    fn new_order(&mut self, verb: &str, args: &[&str]) -> Result<Awaiting, String> {
        let usage =
            "usage: buy|sell SYMBOL QTY @ PRICE [day|gtc|ioc|fok|gtd TIME] [post], or QTY mkt";
        let side = if verb.eq_ignore_ascii_case("buy") {
            b'1'
        } else {
            b'2'
        };
        let mut it = args.iter().copied().peekable();
        let symbol = it.next().ok_or(usage)?.to_ascii_uppercase();
        let qty = it.next().ok_or(usage)?;
        check_decimal(qty, "quantity")?;
        if it.peek() == Some(&"@") {
            it.next();
        }
        let price_word = it.next().ok_or(usage)?;
        let price = match price_word.to_ascii_lowercase().as_str() {
            "mkt" | "market" => None,
            _ => {
                check_decimal(price_word, "price")?;
                Some(price_word)
            }
        };
        let mut tif: Option<u8> = None;
        let mut expire: Option<String> = None;
        let mut post = false;
        while let Some(w) = it.next() {
            let t = match w.to_ascii_lowercase().as_str() {
                "day" => b'0',
                "gtc" => b'1',
                "ioc" => b'3',
                "fok" => b'4',
                "gtd" => {
                    let ts = it.next().ok_or("gtd needs a time YYYYMMDD-HH:MM:SS")?;
                    if parse_utc_timestamp(ts.as_bytes()).is_none() {
                        return Err(format!(
                            "bad gtd time {ts:?}: use YYYYMMDD-HH:MM:SS[.sss] (UTC)"
                        ));
                    }
                    expire = Some(ts.to_string());
                    b'6'
                }
                "post" => {
                    post = true;
                    continue;
                }
                _ => return Err(format!("unexpected {w:?}; {usage}")),
            };
            if tif.replace(t).is_some() {
                return Err("more than one time in force".to_string());
            }
        }
        let id = self.new_id();
        let now = unix_ns();
        let seq = self.send(b"D", |e| {
            e.str(tags::CL_ORD_ID, id.as_bytes())
                .str(tags::SYMBOL, symbol.as_bytes())
                .char(tags::SIDE, side)
                .timestamp(tags::TRANSACT_TIME, now)
                .str(tags::ORDER_QTY, qty.as_bytes())
                .char(tags::ORD_TYPE, if price.is_some() { b'2' } else { b'1' });
            if let Some(p) = price {
                e.str(tags::PRICE, p.as_bytes());
            }
            if let Some(t) = tif {
                e.char(tags::TIME_IN_FORCE, t);
            }
            if let Some(x) = &expire {
                e.str(tags::EXPIRE_TIME, x.as_bytes());
            }
            if post {
                e.str(tags::EXEC_INST, b"6");
            }
        })?;
        self.orders.push(Order {
            symbol,
            side,
            current: id.clone(),
            order_id: None,
        });
        self.by_id.insert(id.clone(), self.orders.len() - 1);
        Ok(Awaiting {
            cl_ord_id: Some(id),
            seq,
        })
    }

    fn lookup(&self, id: &str) -> Result<usize, String> {
        let full = self.full(id);
        self.by_id
            .get(&full)
            .copied()
            .ok_or_else(|| format!("unknown order {id}: only orders sent in this run can be named"))
    }

    fn cancel(&mut self, args: &[&str]) -> Result<Awaiting, String> {
        let [id] = args else {
            return Err("usage: cancel ID".to_string());
        };
        let index = self.lookup(id)?;
        let new = self.new_id();
        let o = &self.orders[index];
        let (orig, symbol, side, oid) = (
            o.current.clone(),
            o.symbol.clone(),
            o.side,
            o.order_id.clone(),
        );
        let now = unix_ns();
        let seq = self.send(b"F", |e| {
            e.str(tags::ORIG_CL_ORD_ID, orig.as_bytes())
                .str(tags::CL_ORD_ID, new.as_bytes())
                .str(tags::SYMBOL, symbol.as_bytes())
                .char(tags::SIDE, side)
                .timestamp(tags::TRANSACT_TIME, now);
            if let Some(oid) = &oid {
                e.str(tags::ORDER_ID, oid.as_bytes());
            }
        })?;
        self.by_id.insert(new.clone(), index);
        Ok(Awaiting {
            cl_ord_id: Some(new),
            seq,
        })
    }

    fn replace(&mut self, args: &[&str]) -> Result<Awaiting, String> {
        let usage = "usage: replace ID QTY @ PRICE";
        let (id, qty, price) = match args {
            [id, qty, "@", price] | [id, qty, price] => (*id, *qty, *price),
            _ => return Err(usage.to_string()),
        };
        check_decimal(qty, "quantity")?;
        check_decimal(price, "price")?;
        let index = self.lookup(id)?;
        let new = self.new_id();
        let o = &self.orders[index];
        let (orig, symbol, side, oid) = (
            o.current.clone(),
            o.symbol.clone(),
            o.side,
            o.order_id.clone(),
        );
        let now = unix_ns();
        let seq = self.send(b"G", |e| {
            e.str(tags::ORIG_CL_ORD_ID, orig.as_bytes())
                .str(tags::CL_ORD_ID, new.as_bytes())
                .str(tags::SYMBOL, symbol.as_bytes())
                .char(tags::SIDE, side)
                .timestamp(tags::TRANSACT_TIME, now)
                .char(tags::ORD_TYPE, b'2')
                .str(tags::ORDER_QTY, qty.as_bytes())
                .str(tags::PRICE, price.as_bytes());
            if let Some(oid) = &oid {
                e.str(tags::ORDER_ID, oid.as_bytes());
            }
        })?;
        self.by_id.insert(new.clone(), index);
        Ok(Awaiting {
            cl_ord_id: Some(new),
            seq,
        })
    }

    fn status(&mut self, args: &[&str]) -> Result<Awaiting, String> {
        let [id] = args else {
            return Err("usage: status ID".to_string());
        };
        let index = self.lookup(id)?;
        let o = &self.orders[index];
        let (current, symbol, side, oid) = (
            o.current.clone(),
            o.symbol.clone(),
            o.side,
            o.order_id.clone(),
        );
        let seq = self.send(b"H", |e| {
            e.str(tags::CL_ORD_ID, current.as_bytes())
                .str(tags::SYMBOL, symbol.as_bytes())
                .char(tags::SIDE, side);
            if let Some(oid) = &oid {
                e.str(tags::ORDER_ID, oid.as_bytes());
            }
        })?;
        Ok(Awaiting {
            cl_ord_id: Some(current),
            seq,
        })
    }

    fn mass_cancel(&mut self, args: &[&str]) -> Result<Awaiting, String> {
        let symbol = match args {
            [] => None,
            [s] => Some(s.to_ascii_uppercase()),
            _ => return Err("usage: masscancel [SYMBOL]".to_string()),
        };
        let id = self.new_id();
        if let Some(s) = &symbol {
            let short = self.short(&id).to_string();
            self.mass_symbols.insert(short, s.clone());
        }
        let now = unix_ns();
        let seq = self.send(b"q", |e| {
            e.str(tags::CL_ORD_ID, id.as_bytes());
            match &symbol {
                Some(s) => {
                    e.char(tags::MASS_CANCEL_REQUEST_TYPE, b'1')
                        .str(tags::SYMBOL, s.as_bytes());
                }
                None => {
                    e.char(tags::MASS_CANCEL_REQUEST_TYPE, b'7');
                }
            }
            e.timestamp(tags::TRANSACT_TIME, now);
        })?;
        Ok(Awaiting {
            cl_ord_id: Some(id),
            seq,
        })
    }

    /// Prints messages for `duration`.
    fn pump_for(&mut self, duration: Duration) -> Result<(), String> {
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.fix.recv(left) {
                Ok(Some(m)) => self.print(&m),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Prints messages until one answers `awaiting` (or 5 s pass), then until 200 ms pass
    /// without a message.
    fn settle(&mut self, awaiting: Option<&Awaiting>) -> Result<(), String> {
        let mut answered = awaiting.is_none();
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            let wait = if answered {
                Duration::from_millis(200)
            } else {
                give_up.saturating_duration_since(Instant::now())
            };
            if wait.is_zero() {
                self.line("(no reply within 5 s)");
                return Ok(());
            }
            match self.fix.recv(wait) {
                Ok(Some(m)) => {
                    if let Some(a) = awaiting {
                        answered |= answers(&m, a);
                    }
                    self.print(&m);
                    if m.msg_type() == b"5" {
                        return Err("the exchange logged us out".to_string());
                    }
                }
                Ok(None) if answered => return Ok(()),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn scripted(&mut self, lines: Vec<String>) -> Result<(), String> {
        self.settle(None)?;
        for line in lines {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            self.line(&format!("> {trimmed}"));
            match self.command(trimmed) {
                Ok((_, Step::Quit)) => break,
                Ok((awaiting, Step::Continue)) => {
                    if awaiting.is_some() {
                        self.settle(awaiting.as_ref())?;
                    }
                }
                Err(e) if e.starts_with("send failed") => return Err(e),
                Err(e) => self.line(&format!("error: {e}")),
            }
        }
        self.quit()
    }

    fn interactive(&mut self) -> Result<(), String> {
        eprintln!("logged on; type `help` for the commands, `quit` to log out");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        loop {
            match self.fix.recv(Duration::from_millis(20)) {
                Ok(Some(m)) => {
                    self.print(&m);
                    if m.msg_type() == b"5" {
                        return Err("the exchange logged us out".to_string());
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            loop {
                match rx.try_recv() {
                    Ok(line) => match self.command(&line) {
                        Ok((_, Step::Quit)) => return self.quit(),
                        Ok(_) => {}
                        Err(e) if e.starts_with("send failed") => return Err(e),
                        Err(e) => self.line(&format!("error: {e}")),
                    },
                    Err(mpsc::TryRecvError::Empty) => break,
                    // End of input: log out like `quit`.
                    Err(mpsc::TryRecvError::Disconnected) => return self.quit(),
                }
            }
        }
    }

    fn quit(&mut self) -> Result<(), String> {
        if !self.fix.is_open() {
            return Ok(());
        }
        match self.fix.logout(None, Duration::from_secs(5)) {
            Ok(Some(text)) if !text.is_empty() => self.line(&format!("LOGOUT: {text}")),
            Ok(Some(_)) => self.line("LOGOUT"),
            Ok(None) => self.line("logged out (no Logout reply within 5 s)"),
            Err(e) => return Err(format!("logout: {e}")),
        }
        Ok(())
    }
}

/// Whether `m` is a reply to the request `a`.
fn answers(m: &OwnedMessage, a: &Awaiting) -> bool {
    let id_matches = |tag: u32| match (&a.cl_ord_id, m.get_str(tag)) {
        (Some(want), Some(got)) => want == got,
        _ => false,
    };
    match m.msg_type() {
        b"8" | b"9" | b"r" => id_matches(tags::CL_ORD_ID),
        b"j" => {
            id_matches(tags::BUSINESS_REJECT_REF_ID) || m.get_u64(tags::REF_SEQ_NUM) == Some(a.seq)
        }
        b"3" => m.get_u64(tags::REF_SEQ_NUM) == Some(a.seq),
        b"5" => true,
        _ => false,
    }
}

fn ord_status(v: Option<&[u8]>) -> String {
    match v {
        Some(b"0") => "NEW".into(),
        Some(b"1") => "PARTIAL".into(),
        Some(b"2") => "FILLED".into(),
        Some(b"4") => "CANCELED".into(),
        Some(b"5") => "REPLACED".into(),
        Some(b"6") => "PENDING-CANCEL".into(),
        Some(b"8") => "REJECTED".into(),
        Some(b"A") => "PENDING-NEW".into(),
        Some(b"C") => "EXPIRED".into(),
        Some(b"E") => "PENDING-REPLACE".into(),
        Some(other) => format!("OrdStatus {}", String::from_utf8_lossy(other)),
        None => "?".into(),
    }
}

/// A plain decimal number: digits with at most one '.', no sign or exponent.
fn check_decimal(s: &str, what: &str) -> Result<(), String> {
    let mut dots = 0;
    let mut digits = 0;
    for c in s.chars() {
        match c {
            '0'..='9' => digits += 1,
            '.' => dots += 1,
            _ => return Err(format!("bad {what} {s:?}: expected a decimal number")),
        }
    }
    if digits == 0 || dots > 1 {
        return Err(format!("bad {what} {s:?}: expected a decimal number"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_checked() {
        assert!(check_decimal("187.25", "price").is_ok());
        assert!(check_decimal("100", "qty").is_ok());
        assert!(check_decimal(".5", "qty").is_ok());
        assert!(check_decimal("1.2.3", "price").is_err());
        assert!(check_decimal("-1", "price").is_err());
        assert!(check_decimal("1e3", "price").is_err());
        assert!(check_decimal(".", "price").is_err());
    }

    #[test]
    fn run_tags_increase() {
        let a = run_tag();
        std::thread::sleep(Duration::from_millis(2));
        let b = run_tag();
        assert_eq!(a.len(), b.len());
        assert!(b > a, "{a} {b}");
    }
}
