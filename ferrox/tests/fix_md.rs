//! Market data over FIX end to end: a real `ferrox run` and FIX clients over loopback. One
//! client subscribes (MarketDataRequest), another trades; the subscriber's snapshot and
//! incremental refreshes, applied in order, must give the ladder and the trade the orders
//! made; unsubscribing stops the updates; an unknown symbol is refused with a
//! MarketDataRequestReject.

mod common;

use common::{gateway_config, Exchange};
use ferrox_gateway::client::{FixClient, OwnedMessage};
use ferrox_gateway::fix::dict::validate;
use ferrox_gateway::fix::parse::parse_fixed;
use ferrox_gateway::fix::{tags, Parser};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn logon(ex: &Exchange, sender: &str, password: &str) -> FixClient {
    FixClient::connect(ex.addr, sender, "FERROX", Some(password), 30, false)
        .unwrap_or_else(|e| panic!("{sender} logs on: {e}\n{}", ex.log_text()))
}

fn send_order(c: &mut FixClient, cl: &str, side: u8, qty: &str, price: &str, tif: u8) {
    c.send(b"D", |e| {
        e.str(tags::CL_ORD_ID, cl.as_bytes())
            .str(tags::SYMBOL, b"AAPL")
            .char(tags::SIDE, side)
            .timestamp(tags::TRANSACT_TIME, ferrox_gateway::client::unix_ns())
            .str(tags::ORDER_QTY, qty.as_bytes())
            .char(tags::ORD_TYPE, b'2')
            .char(tags::TIME_IN_FORCE, tif)
            .str(tags::PRICE, price.as_bytes());
    })
    .expect("sent");
}

/// MarketDataRequest: `sub_type` 0 snapshot, 1 subscribe, 2 unsubscribe; bids, offers and
/// trades at depth 5.
fn send_md_request(c: &mut FixClient, id: &str, sub_type: u8, symbol: &str) {
    c.send(b"V", |e| {
        e.str(tags::MD_REQ_ID, id.as_bytes())
            .char(tags::SUBSCRIPTION_REQUEST_TYPE, sub_type)
            .u64(tags::MARKET_DEPTH, 5)
            .u64(tags::MD_UPDATE_TYPE, 1)
            .u64(tags::NO_MD_ENTRY_TYPES, 3)
            .char(tags::MD_ENTRY_TYPE, b'0')
            .char(tags::MD_ENTRY_TYPE, b'1')
            .char(tags::MD_ENTRY_TYPE, b'2')
            .u64(tags::NO_RELATED_SYM, 1)
            .str(tags::SYMBOL, symbol.as_bytes());
    })
    .expect("sent");
}

/// Every message the gateway sends must be valid under its own FIX 4.4 dictionary.
fn assert_valid_fix44(m: &OwnedMessage) {
    let mut parser = Parser::new(4096);
    let parsed = parser
        .parse(m.raw())
        .unwrap_or_else(|e| panic!("{e:?}: {}", m.to_pipe_string()));
    if let Err(reject) = validate(&parsed) {
        panic!("not valid FIX 4.4 ({reject:?}): {}", m.to_pipe_string());
    }
}

/// The next application message of one of `types`, skipping others.
fn next_of(c: &mut FixClient, types: &[&[u8]]) -> OwnedMessage {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(m) = c.recv(Duration::from_millis(200)).expect("connection open") {
            assert_valid_fix44(&m);
            if types.contains(&m.msg_type()) {
                return m;
            }
        }
    }
    panic!("no {types:?} within {WAIT:?}");
}

/// The execution report for `cl` with ExecType `exec_type`.
fn wait_report(c: &mut FixClient, cl: &str, exec_type: &str) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let m = next_of(c, &[b"8"]);
        if m.get_str(tags::CL_ORD_ID) == Some(cl) && m.get_str(tags::EXEC_TYPE) == Some(exec_type) {
            return;
        }
    }
    panic!("no report {exec_type} for {cl}");
}

/// A level as the client holds it: (price, size, orders), in cents and shares.
type Level = (i64, u64, u32);

/// What a FIX client builds from W and X for AAPL (2 price decimals, whole shares).
#[derive(Debug, Default)]
struct Ladder {
    sides: [Vec<Level>; 2],
    trades: Vec<(i64, u64)>,
}

fn cents(v: &[u8]) -> i64 {
    parse_fixed(v, 2).expect("a price") as i64
}

fn shares(v: &[u8]) -> u64 {
    parse_fixed(v, 0).expect("a whole size") as u64
}

fn number<T: std::str::FromStr>(v: &[u8]) -> T {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("a number")
}

impl Ladder {
    /// Applies a W or an X, positions as FIX MDEntryPositionNo (1 = best).
    fn apply(&mut self, m: &OwnedMessage) {
        let first = match m.msg_type() {
            b"W" => {
                self.sides = [Vec::new(), Vec::new()];
                tags::MD_ENTRY_TYPE
            }
            b"X" => tags::MD_UPDATE_ACTION,
            other => panic!("not market data: {}", String::from_utf8_lossy(other)),
        };
        // Split the entries at their first field.
        let mut entries: Vec<Vec<(i64, Vec<u8>)>> = Vec::new();
        let mut in_group = false;
        for (tag, v) in m.fields() {
            if tag == i64::from(tags::NO_MD_ENTRIES) {
                in_group = true;
                continue;
            }
            if !in_group || tag == i64::from(tags::CHECKSUM) {
                continue;
            }
            if tag == i64::from(first) {
                entries.push(Vec::new());
            }
            if let Some(e) = entries.last_mut() {
                e.push((tag, v.to_vec()));
            }
        }
        assert_eq!(
            entries.len() as u64,
            m.get_u64(tags::NO_MD_ENTRIES).expect("NoMDEntries"),
            "{}",
            m.to_pipe_string()
        );
        for e in entries {
            let get = |tag: u32| {
                e.iter()
                    .find(|f| f.0 == i64::from(tag))
                    .map(|f| f.1.as_slice())
            };
            let action = get(tags::MD_UPDATE_ACTION).unwrap_or(b"0");
            let kind = get(tags::MD_ENTRY_TYPE).expect("MDEntryType");
            let price = cents(get(tags::MD_ENTRY_PX).expect("MDEntryPx"));
            if kind == b"2" {
                if m.msg_type() == b"X" {
                    self.trades
                        .push((price, shares(get(tags::MD_ENTRY_SIZE).expect("size"))));
                }
                continue;
            }
            let side = &mut self.sides[usize::from(kind == b"1")];
            let p: usize = number::<usize>(get(tags::MD_ENTRY_POSITION_NO).expect("position")) - 1;
            match action {
                b"0" => side.insert(
                    p,
                    (
                        price,
                        shares(get(tags::MD_ENTRY_SIZE).expect("size")),
                        number(get(tags::NUMBER_OF_ORDERS).expect("orders")),
                    ),
                ),
                b"1" => {
                    assert_eq!(side[p].0, price, "Change names the price at its position");
                    side[p] = (
                        price,
                        shares(get(tags::MD_ENTRY_SIZE).expect("size")),
                        number(get(tags::NUMBER_OF_ORDERS).expect("orders")),
                    );
                }
                b"2" => {
                    assert_eq!(side[p].0, price, "Delete names the price at its position");
                    side.remove(p);
                }
                other => panic!("MDUpdateAction {}", String::from_utf8_lossy(other)),
            }
            assert!(side.len() <= 5, "never more than the depth");
        }
    }
}

#[test]
fn a_subscriber_follows_the_book_and_trades_until_it_unsubscribes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ex = Exchange::start(&gateway_config(dir.path(), "fixmd", "", ""));
    let mut a = logon(&ex, "CLIENT1", "client1");
    let mut b = logon(&ex, "CLIENT2", "client2");

    send_md_request(&mut a, "A-1", b'1', "AAPL");
    let w = next_of(&mut a, &[b"W", b"X", b"Y"]);
    assert_eq!(w.msg_type(), b"W", "{}", w.to_pipe_string());
    assert_eq!(w.get_str(tags::MD_REQ_ID), Some("A-1"));
    assert_eq!(w.get_str(tags::SYMBOL), Some("AAPL"));
    assert_eq!(w.get_str(tags::NO_MD_ENTRIES), Some("0"), "an empty book");
    let mut ladder = Ladder::default();
    ladder.apply(&w);

    // B builds a book, then a third session (another account, so that self-trade prevention
    // stays out of it) takes 40 of the best offer.
    let orders: [(&str, u8, &str, &str); 5] = [
        ("B1", b'1', "100", "189.00"),
        ("B2", b'1', "50", "189.50"),
        ("B3", b'1', "25", "189.50"),
        ("B4", b'2', "70", "190.50"),
        ("B5", b'2', "30", "191.00"),
    ];
    for (cl, side, qty, price) in orders {
        send_order(&mut b, cl, side, qty, price, b'1');
        wait_report(&mut b, cl, "0");
    }
    let mut c = logon(&ex, "LOAD0001", "load");
    send_order(&mut c, "C1", b'1', "40", "190.50", b'3');
    wait_report(&mut c, "C1", "F");
    let expected = Ladder {
        sides: [
            vec![(18_950, 75, 2), (18_900, 100, 1)],
            vec![(19_050, 30, 1), (19_100, 30, 1)],
        ],
        trades: vec![(19_050, 40)],
    };
    let deadline = Instant::now() + WAIT;
    while ladder.sides != expected.sides || ladder.trades != expected.trades {
        assert!(
            Instant::now() < deadline,
            "the subscriber's ladder {ladder:?} did not reach {expected:?}"
        );
        let m = next_of(&mut a, &[b"W", b"X", b"Y"]);
        assert_eq!(m.get_str(tags::MD_REQ_ID), Some("A-1"));
        ladder.apply(&m);
    }

    // Unsubscribe. The gateway handles a session's messages in order, so once the answer to
    // a snapshot request sent after it arrives, the unsubscribe has taken effect.
    send_md_request(&mut a, "A-1", b'2', "AAPL");
    send_md_request(&mut a, "FENCE", b'0', "AAPL");
    loop {
        let m = next_of(&mut a, &[b"W", b"X", b"Y"]);
        if m.get_str(tags::MD_REQ_ID) == Some("FENCE") {
            assert_eq!(m.msg_type(), b"W", "{}", m.to_pipe_string());
            break;
        }
    }
    // A new order: no update for A-1 any more. A snapshot request after B's order is
    // acknowledged shows the order, and nothing else arrives.
    send_order(&mut b, "B7", b'1', "10", "188.00", b'1');
    wait_report(&mut b, "B7", "0");
    send_md_request(&mut a, "A-2", b'0', "AAPL");
    let snapshot = next_of(&mut a, &[b"W", b"X", b"Y"]);
    assert_eq!(snapshot.msg_type(), b"W", "{}", snapshot.to_pipe_string());
    assert_eq!(snapshot.get_str(tags::MD_REQ_ID), Some("A-2"));
    let mut fresh = Ladder::default();
    fresh.apply(&snapshot);
    assert_eq!(
        fresh.sides,
        [
            vec![(18_950, 75, 2), (18_900, 100, 1), (18_800, 10, 1)],
            vec![(19_050, 30, 1), (19_100, 30, 1)],
        ]
    );
    send_order(&mut b, "B8", b'1', "10", "187.00", b'1');
    wait_report(&mut b, "B8", "0");
    let quiet = Instant::now() + Duration::from_millis(500);
    while Instant::now() < quiet {
        if let Some(m) = a.recv(Duration::from_millis(100)).expect("open") {
            assert!(
                !matches!(m.msg_type(), b"W" | b"X"),
                "market data after unsubscribing and a snapshot: {}",
                m.to_pipe_string()
            );
        }
    }

    // An unknown symbol is refused with MDReqRejReason 0 and a Text naming it.
    send_md_request(&mut a, "A-3", b'1', "NOPE");
    let y = next_of(&mut a, &[b"W", b"X", b"Y"]);
    assert_eq!(y.msg_type(), b"Y", "{}", y.to_pipe_string());
    assert_eq!(y.get_str(tags::MD_REQ_ID), Some("A-3"));
    assert_eq!(y.get_str(tags::MD_REQ_REJ_REASON), Some("0"));
    assert_eq!(y.get_str(tags::TEXT), Some("unknown symbol NOPE"));

    a.logout(None, WAIT).expect("A logs out");
    b.logout(None, WAIT).expect("B logs out");
    c.logout(None, WAIT).expect("C logs out");
    ex.stop();
}
