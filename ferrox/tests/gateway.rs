//! The FIX gateway end to end: a real `ferrox run` (sequencer, journal, engine, gateway) and
//! FIX clients over loopback. Each test starts its own exchange in a temporary directory.

mod common;

use common::{gateway_config, Exchange};
use ferrox_gateway::client::{FixClient, OwnedMessage};
use ferrox_gateway::fix::dict::validate;
use ferrox_gateway::fix::{tags, Parser};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn logon(ex: &Exchange, sender: &str, password: &str) -> FixClient {
    FixClient::connect(ex.addr, sender, "FERROX", Some(password), 30, false)
        .unwrap_or_else(|e| panic!("{sender} logs on: {e}\n{}", ex.log_text()))
}

fn send_order(
    c: &mut FixClient,
    cl: &str,
    symbol: &str,
    side: u8,
    qty: &str,
    price: Option<&str>,
    tif: u8,
) {
    c.send(b"D", |e| {
        e.str(tags::CL_ORD_ID, cl.as_bytes())
            .str(tags::SYMBOL, symbol.as_bytes())
            .char(tags::SIDE, side)
            .timestamp(tags::TRANSACT_TIME, ferrox_gateway::client::unix_ns())
            .str(tags::ORDER_QTY, qty.as_bytes())
            .char(tags::ORD_TYPE, if price.is_some() { b'2' } else { b'1' })
            .char(tags::TIME_IN_FORCE, tif);
        if let Some(p) = price {
            e.str(tags::PRICE, p.as_bytes());
        }
    })
    .expect("sent");
}

fn send_cancel(c: &mut FixClient, orig: &str, cl: &str, symbol: &str, side: u8) {
    c.send(b"F", |e| {
        e.str(tags::ORIG_CL_ORD_ID, orig.as_bytes())
            .str(tags::CL_ORD_ID, cl.as_bytes())
            .str(tags::SYMBOL, symbol.as_bytes())
            .char(tags::SIDE, side)
            .timestamp(tags::TRANSACT_TIME, ferrox_gateway::client::unix_ns());
    })
    .expect("sent");
}

/// Every message the gateway sends must be valid under the FIX 4.4 dictionary, so that a
/// counterparty with data-dictionary validation on accepts it.
fn assert_valid_fix44(m: &OwnedMessage) {
    let mut parser = Parser::new(256);
    let parsed = parser
        .parse(m.raw())
        .unwrap_or_else(|e| panic!("{e:?}: {}", m.to_pipe_string()));
    if let Err(reject) = validate(&parsed) {
        panic!("not valid FIX 4.4 ({reject:?}): {}", m.to_pipe_string());
    }
}

/// The next application message about `cl` (any of 8, 9, r), skipping others.
fn next_for(c: &mut FixClient, cl: &str) -> OwnedMessage {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(m) = c.recv(Duration::from_millis(200)).expect("connection open") {
            assert_valid_fix44(&m);
            if m.get_str(tags::CL_ORD_ID) == Some(cl) {
                return m;
            }
        }
    }
    panic!("no report for {cl} within {WAIT:?}");
}

fn field(m: &OwnedMessage, tag: u32) -> &str {
    m.get_str(tag)
        .unwrap_or_else(|| panic!("tag {tag} missing in {}", m.to_pipe_string()))
}

fn assert_fields(m: &OwnedMessage, expected: &[(u32, &str)]) {
    for (tag, value) in expected {
        assert_eq!(
            m.get_str(*tag),
            Some(*value),
            "tag {tag} in {}",
            m.to_pipe_string()
        );
    }
}

#[test]
fn orders_fill_replace_cancel_and_reject_with_correct_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ex = Exchange::start(&gateway_config(dir.path(), "orders", "", ""));
    let mut a = logon(&ex, "CLIENT1", "client1");
    let mut b = logon(&ex, "CLIENT2", "client2");
    let mut exec_ids = HashSet::new();
    let mut note = |m: &OwnedMessage| {
        if m.msg_type() == b"8" {
            assert!(
                exec_ids.insert(field(m, tags::EXEC_ID).to_string()),
                "ExecID repeated: {}",
                m.to_pipe_string()
            );
        }
    };

    send_order(&mut a, "A1", "AAPL", b'1', "100", Some("190.00"), b'1');
    let m = next_for(&mut a, "A1");
    note(&m);
    assert_fields(
        &m,
        &[
            (150, "0"),
            (39, "0"),
            (151, "100"),
            (14, "0"),
            (1, "1"),
            (55, "AAPL"),
            (44, "190"),
        ],
    );
    let order_id = field(&m, tags::ORDER_ID).to_string();

    // A seller takes 40: both sides see the fill.
    send_order(&mut b, "B1", "AAPL", b'2', "40", Some("190.00"), b'3');
    let new_b = next_for(&mut b, "B1");
    note(&new_b);
    assert_fields(&new_b, &[(150, "0")]);
    let fill_b = next_for(&mut b, "B1");
    note(&fill_b);
    assert_fields(
        &fill_b,
        &[
            (150, "F"),
            (39, "2"),
            (31, "190"),
            (32, "40"),
            (14, "40"),
            (151, "0"),
            (6, "190"),
        ],
    );
    let fill_a = next_for(&mut a, "A1");
    note(&fill_a);
    assert_fields(
        &fill_a,
        &[
            (150, "F"),
            (39, "1"),
            (31, "190"),
            (32, "40"),
            (14, "40"),
            (151, "60"),
            (6, "190"),
        ],
    );

    // Replace to a total of 80 at a new price: 40 are filled, so 40 stay open.
    a.send(b"G", |e| {
        e.str(tags::ORIG_CL_ORD_ID, b"A1")
            .str(tags::CL_ORD_ID, b"A2")
            .str(tags::SYMBOL, b"AAPL")
            .char(tags::SIDE, b'1')
            .timestamp(tags::TRANSACT_TIME, ferrox_gateway::client::unix_ns())
            .char(tags::ORD_TYPE, b'2')
            .str(tags::ORDER_QTY, b"80")
            .str(tags::PRICE, b"189.50");
    })
    .expect("sent");
    let m = next_for(&mut a, "A2");
    note(&m);
    assert_fields(
        &m,
        &[
            (150, "5"),
            (41, "A1"),
            (39, "1"),
            (151, "40"),
            (14, "40"),
            (38, "80"),
            (44, "189.5"),
        ],
    );
    assert_eq!(
        field(&m, tags::ORDER_ID),
        order_id,
        "the order keeps its id"
    );

    // Status of the replaced order.
    a.send(b"H", |e| {
        e.str(tags::CL_ORD_ID, b"A2")
            .str(tags::SYMBOL, b"AAPL")
            .char(tags::SIDE, b'1');
    })
    .expect("sent");
    let m = next_for(&mut a, "A2");
    note(&m);
    assert_fields(&m, &[(150, "I"), (39, "1"), (151, "40"), (14, "40")]);

    // Cancel it.
    send_cancel(&mut a, "A2", "A3", "AAPL", b'1');
    let m = next_for(&mut a, "A3");
    note(&m);
    assert_fields(
        &m,
        &[(150, "4"), (39, "4"), (41, "A2"), (151, "0"), (14, "40")],
    );

    // Cancel of an order that does not exist: OrderCancelReject, unknown order.
    send_cancel(&mut a, "NOPE", "A4", "AAPL", b'1');
    let m = next_for(&mut a, "A4");
    assert_eq!(m.msg_type(), b"9");
    assert_fields(&m, &[(434, "1"), (102, "1"), (41, "NOPE")]);

    // Prices and quantities the instrument cannot represent are refused with a reason.
    send_order(&mut a, "A5", "AAPL", b'1', "1", Some("190.001"), b'1');
    let m = next_for(&mut a, "A5");
    assert_fields(&m, &[(150, "8"), (39, "8")]);
    assert!(
        field(&m, tags::TEXT).contains("decimal places"),
        "{}",
        m.to_pipe_string()
    );
    send_order(&mut a, "A6", "ESZ6", b'1', "1", Some("6000.10"), b'1');
    let m = next_for(&mut a, "A6");
    assert_fields(&m, &[(150, "8")]);
    assert!(
        field(&m, tags::TEXT).contains("tick size"),
        "{}",
        m.to_pipe_string()
    );
    send_order(
        &mut a,
        "A7",
        "BTC-USD",
        b'1',
        "0.0015",
        Some("90000.00"),
        b'1',
    );
    let m = next_for(&mut a, "A7");
    assert_fields(&m, &[(150, "8")]);
    assert!(
        field(&m, tags::TEXT).contains("lot size"),
        "{}",
        m.to_pipe_string()
    );
    send_order(&mut a, "A8", "NOSUCH", b'1', "1", Some("1"), b'1');
    let m = next_for(&mut a, "A8");
    assert_fields(&m, &[(150, "8"), (103, "1")]);

    // A ClOrdID is good for one order per day.
    send_order(&mut a, "A1", "AAPL", b'1', "1", Some("180.00"), b'1');
    let m = next_for(&mut a, "A1");
    assert_fields(&m, &[(150, "8"), (103, "6")]);

    // Account 2's limits: order quantity above 1,000.
    send_order(&mut b, "B2", "AAPL", b'2', "1001", Some("200.00"), b'1');
    let m = next_for(&mut b, "B2");
    assert_fields(&m, &[(150, "8"), (39, "8")]);
    assert!(
        field(&m, tags::TEXT).contains("1000"),
        "{}",
        m.to_pipe_string()
    );

    // Mass cancel of all of B's orders.
    send_order(&mut b, "B3", "MSFT", b'2', "10", Some("430.00"), b'1');
    send_order(&mut b, "B4", "MSFT", b'2', "10", Some("431.00"), b'0');
    assert_fields(&next_for(&mut b, "B3"), &[(150, "0")]);
    assert_fields(&next_for(&mut b, "B4"), &[(150, "0")]);
    b.send(b"q", |e| {
        e.str(tags::CL_ORD_ID, b"B5")
            .char(tags::MASS_CANCEL_REQUEST_TYPE, b'7')
            .timestamp(tags::TRANSACT_TIME, ferrox_gateway::client::unix_ns());
    })
    .expect("sent");
    assert_fields(&next_for(&mut b, "B3"), &[(150, "4"), (39, "4")]);
    assert_fields(&next_for(&mut b, "B4"), &[(150, "4"), (39, "4")]);
    let m = next_for(&mut b, "B5");
    assert_eq!(m.msg_type(), b"r");
    assert_fields(&m, &[(530, "7"), (531, "7"), (533, "2")]);

    let _ = a.logout(None, WAIT);
    let _ = b.logout(None, WAIT);
    ex.stop();
}

#[test]
fn sequence_numbers_sent_messages_and_clordids_survive_a_restart_and_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = gateway_config(dir.path(), "restart", "", "");
    let ex = Exchange::start(&config);
    let mut a = logon(&ex, "CLIENT1", "client1");
    send_order(&mut a, "R1", "AAPL", b'1', "5", Some("180.00"), b'1');
    let er = next_for(&mut a, "R1");
    assert_fields(&er, &[(150, "0")]);
    let er_seq = er.get_u64(tags::MSG_SEQ_NUM).expect("seq");
    let _ = a.logout(None, WAIT);
    let (out_next, in_next) = (a.next_out_seq(), a.next_in_seq());
    ex.stop();

    // A clean restart: the session continues where it was.
    let ex = Exchange::start(&config);
    let mut a = FixClient::start_at(
        ex.addr,
        "CLIENT1",
        "FERROX",
        Some("client1"),
        30,
        false,
        out_next,
    )
    .expect("connects");
    a.wait_logon(WAIT)
        .expect("logon accepted with the continued number");
    assert_eq!(
        a.next_in_seq(),
        in_next + 1,
        "the gateway's numbers continued"
    );

    // The execution report is still there for a resend, as a possible duplicate.
    a.send(b"2", |e| {
        e.u64(tags::BEGIN_SEQ_NO, er_seq)
            .u64(tags::END_SEQ_NO, er_seq);
    })
    .expect("sent");
    let m = next_for(&mut a, "R1");
    assert_fields(&m, &[(150, "0"), (43, "Y")]);
    assert_eq!(m.get_u64(tags::MSG_SEQ_NUM), Some(er_seq));
    assert!(m.get(tags::ORIG_SENDING_TIME).is_some());

    // And R1 is still used today.
    send_order(&mut a, "R1", "AAPL", b'1', "5", Some("180.00"), b'1');
    assert_fields(&next_for(&mut a, "R1"), &[(150, "8"), (103, "6")]);
    send_order(&mut a, "R2", "AAPL", b'1', "5", Some("180.00"), b'1');
    assert_fields(&next_for(&mut a, "R2"), &[(150, "0")]);
    let (out_next, _) = (a.next_out_seq(), a.next_in_seq());
    drop(a);

    // A crash (SIGKILL) loses nothing the gateway had written either.
    ex.kill();
    let ex = Exchange::start(&config);
    let mut a = FixClient::start_at(
        ex.addr,
        "CLIENT1",
        "FERROX",
        Some("client1"),
        30,
        false,
        out_next,
    )
    .expect("connects");
    a.wait_logon(WAIT).expect("logon after a crash");
    send_order(&mut a, "R2", "AAPL", b'1', "5", Some("180.00"), b'1');
    assert_fields(&next_for(&mut a, "R2"), &[(150, "8"), (103, "6")]);

    // The orders resting from before the restarts are known again by their ClOrdIDs.
    for (orig, cl) in [("R1", "R1-cancel"), ("R2", "R2-cancel")] {
        send_cancel(&mut a, orig, cl, "AAPL", b'1');
        let m = next_for(&mut a, cl);
        assert_fields(&m, &[(150, "4"), (39, "4")]);
        assert_eq!(m.get_str(tags::ORIG_CL_ORD_ID), Some(orig));
    }
    assert!(
        ex.log_text().contains("2 live orders restored"),
        "{}",
        ex.log_text()
    );
    let _ = a.logout(None, WAIT);
    ex.stop();
}

#[test]
fn cancel_on_disconnect_cancels_day_orders_only_and_reports_on_the_next_logon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ex = Exchange::start(&gateway_config(dir.path(), "cod", "", ""));
    let mut a = logon(&ex, "CLIENT1", "client1");
    send_order(&mut a, "DAY1", "MSFT", b'1', "3", Some("400.00"), b'0');
    send_order(&mut a, "GTC1", "MSFT", b'1', "3", Some("401.00"), b'1');
    assert_fields(&next_for(&mut a, "DAY1"), &[(150, "0")]);
    assert_fields(&next_for(&mut a, "GTC1"), &[(150, "0")]);
    let (out_next, in_next) = (a.next_out_seq(), a.next_in_seq());
    // An involuntary disconnect: the socket just goes away.
    drop(a);
    std::thread::sleep(Duration::from_millis(500));

    let mut a = FixClient::start_at(
        ex.addr,
        "CLIENT1",
        "FERROX",
        Some("client1"),
        30,
        false,
        out_next,
    )
    .expect("connects");
    a.wait_logon(WAIT).expect("logs on again");
    a.send(b"2", |e| {
        e.u64(tags::BEGIN_SEQ_NO, in_next).u64(tags::END_SEQ_NO, 0);
    })
    .expect("sent");
    let m = next_for(&mut a, "DAY1");
    assert_fields(&m, &[(150, "4"), (39, "4")]);
    assert!(
        field(&m, tags::TEXT).contains("disconnect"),
        "{}",
        m.to_pipe_string()
    );
    a.send(b"H", |e| {
        e.str(tags::CL_ORD_ID, b"GTC1")
            .str(tags::SYMBOL, b"MSFT")
            .char(tags::SIDE, b'1');
    })
    .expect("sent");
    assert_fields(&next_for(&mut a, "GTC1"), &[(150, "I"), (39, "0")]);
    let _ = a.logout(None, WAIT);
    ex.stop();
}

#[test]
fn kill_switch_cancels_blocks_and_releases_an_account() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ex = Exchange::start(&gateway_config(dir.path(), "kill", "", ""));
    let mut a = logon(&ex, "CLIENT1", "client1");
    send_order(&mut a, "K1", "AAPL", b'1', "1", Some("185.00"), b'1');
    assert_fields(&next_for(&mut a, "K1"), &[(150, "0")]);

    let console = ex.child.stdin.as_mut().expect("console stdin");
    writeln!(console, "kill 1").expect("console takes the command");
    console.flush().expect("flushed");
    let m = next_for(&mut a, "K1");
    assert_fields(&m, &[(150, "4"), (39, "4")]);
    assert!(
        field(&m, tags::TEXT).contains("operator"),
        "{}",
        m.to_pipe_string()
    );
    send_order(&mut a, "K2", "AAPL", b'1', "1", Some("185.00"), b'1');
    let m = next_for(&mut a, "K2");
    assert_fields(&m, &[(150, "8"), (39, "8")]);

    let console = ex.child.stdin.as_mut().expect("console stdin");
    writeln!(console, "unkill 1").expect("console takes the command");
    console.flush().expect("flushed");
    std::thread::sleep(Duration::from_millis(300));
    send_order(&mut a, "K3", "AAPL", b'1', "1", Some("185.00"), b'1');
    assert_fields(&next_for(&mut a, "K3"), &[(150, "0")]);
    let _ = a.logout(None, WAIT);
    ex.stop();
}

#[test]
fn throttle_rejects_over_the_rate_and_logs_out_far_over_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // One message a second after a burst of five; twenty rejects within a second log out.
    let tail = "[[gateway.sessions]]\nsender = \"SLOW\"\npassword = \"slow\"\naccount = 9\n\
                throttle_per_s = 1\nthrottle_burst = 5\nthrottle_logout_factor = 20\n";
    let ex = Exchange::start(&gateway_config(dir.path(), "throttle", "", tail));
    let mut c = logon(&ex, "SLOW", "slow");
    for i in 0..5 {
        send_order(
            &mut c,
            &format!("T{i}"),
            "AAPL",
            b'1',
            "1",
            Some("185.00"),
            b'1',
        );
    }
    for i in 0..5 {
        assert_fields(&next_for(&mut c, &format!("T{i}")), &[(150, "0")]);
    }
    for i in 5..40 {
        send_order(
            &mut c,
            &format!("T{i}"),
            "AAPL",
            b'1',
            "1",
            Some("185.00"),
            b'1',
        );
    }
    let mut accepted = 0;
    let mut throttled = 0;
    let mut logout = None;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && logout.is_none() {
        match c.recv(Duration::from_millis(200)) {
            Ok(Some(m)) if m.msg_type() == b"8" => match field(&m, tags::EXEC_TYPE) {
                "0" => accepted += 1,
                "8" if field(&m, tags::TEXT).contains("throttle") => throttled += 1,
                other => panic!("unexpected ExecType {other}: {}", m.to_pipe_string()),
            },
            Ok(Some(m)) if m.msg_type() == b"5" => {
                logout = Some(m.get_str(tags::TEXT).unwrap_or("").to_string())
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(
        accepted <= 1,
        "at most one token refilled meanwhile: {accepted}"
    );
    assert_eq!(throttled, 20, "rate × factor rejects, then logout");
    let text = logout.expect("logged out far over the rate");
    assert!(text.contains("throttle"), "{text}");
    ex.stop();
}

#[test]
fn hostile_connections_do_not_disturb_a_trading_session() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = gateway_config(dir.path(), "hostile", "", "");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("logon_timeout_ms = 5000", "logon_timeout_ms = 1000"),
    )
    .expect("config");
    let ex = Exchange::start(&config);
    let mut a = logon(&ex, "CLIENT1", "client1");
    let addr = ex.addr;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };

    // Idle connections that never log on, a partial frame held open, a 1 MiB tag, garbage,
    // a flood of connect/disconnect.
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(addr).expect("connects"))
        .collect();
    let mut partial = TcpStream::connect(addr).expect("connects");
    partial
        .write_all(b"8=FIX.4.4\x019=100\x0135=A\x0134=1\x0149=CLI")
        .expect("written");
    let mut big = TcpStream::connect(addr).expect("connects");
    let mut huge = b"8=FIX.4.4\x019=1048600\x0135=A\x0134=1\x0158=".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1 << 20));
    let _ = big.write_all(&huge);
    for _ in 0..200 {
        let mut g = TcpStream::connect(addr).expect("connects");
        let junk: Vec<u8> = (0..256).map(|_| next() as u8).collect();
        let _ = g.write_all(&junk);
    }

    // Meanwhile the real session trades normally.
    for i in 0..20 {
        let cl = format!("H{i}");
        send_order(&mut a, &cl, "AAPL", b'1', "1", Some("185.00"), b'1');
        assert_fields(&next_for(&mut a, &cl), &[(150, "0")]);
    }

    // Every hostile connection is closed by the gateway: before logon, garbage closes at
    // once and silence after the logon deadline.
    std::thread::sleep(Duration::from_millis(2500));
    let mut buf = [0u8; 64];
    for s in idle.iter_mut().take(50) {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout set");
        assert!(
            matches!(s.read(&mut buf), Ok(0) | Err(_)),
            "idle connection closed"
        );
    }
    partial
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout set");
    assert!(
        matches!(partial.read(&mut buf), Ok(0) | Err(_)),
        "partial frame closed"
    );
    drop(idle);

    // The session still works, and the gateway is still answering new logons.
    send_order(&mut a, "H-after", "AAPL", b'1', "1", Some("185.00"), b'1');
    assert_fields(&next_for(&mut a, "H-after"), &[(150, "0")]);
    let mut b = logon(&ex, "CLIENT2", "client2");
    let _ = b.logout(None, WAIT);
    let _ = a.logout(None, WAIT);
    let log = ex.stop();
    assert!(
        log.contains("no Logon within the deadline"),
        "silent connections are closed and logged"
    );
}

#[test]
fn wrong_password_unknown_compid_and_second_logon_are_refused_without_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ex = Exchange::start(&gateway_config(dir.path(), "auth", "", ""));
    let bad = FixClient::connect(ex.addr, "CLIENT1", "FERROX", Some("wrong"), 30, false);
    assert!(bad.is_err(), "wrong password refused");
    let bad = FixClient::connect(ex.addr, "MALLORY", "FERROX", Some("x"), 30, false);
    assert!(bad.is_err(), "unknown CompID refused");
    // The refusals did not consume the real session's numbers.
    let mut a = logon(&ex, "CLIENT1", "client1");
    assert_eq!(a.next_in_seq(), 2, "the first Logon reply is number 1");
    let second = FixClient::connect(ex.addr, "CLIENT1", "FERROX", Some("client1"), 30, false);
    assert!(
        second.is_err(),
        "a second logon for a live session is refused"
    );
    send_order(&mut a, "P1", "AAPL", b'1', "1", Some("185.00"), b'1');
    assert_fields(&next_for(&mut a, "P1"), &[(150, "0")]);
    let _ = a.logout(None, WAIT);
    ex.stop();
}
