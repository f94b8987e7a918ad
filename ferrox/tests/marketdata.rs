//! The market-data feed end to end: a real `ferrox run`, FIX clients trading through the
//! gateway, and `ferrox md watch --check` subscribers that join the multicast feed on loopback,
//! recover over TCP, and compare their books with the engine's checkpoints. One subscriber is
//! there from the start, one joins late (snapshot), and after a restart a third follows the new
//! session, whose books are seeded from the journal.

mod common;

use common::{gateway_config, Exchange};
use ferrox_gateway::client::FixClient;
use ferrox_gateway::fix::tags;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn logon(ex: &Exchange, sender: &str, password: &str) -> FixClient {
    FixClient::connect(ex.addr, sender, "FERROX", Some(password), 30, false)
        .unwrap_or_else(|e| panic!("{sender} logs on: {e}\n{}", ex.log_text()))
}

fn send_order(c: &mut FixClient, cl: &str, side: u8, qty: &str, price: &str) {
    c.send(b"D", |e| {
        e.str(tags::CL_ORD_ID, cl.as_bytes())
            .str(tags::SYMBOL, b"AAPL")
            .char(tags::SIDE, side)
            .timestamp(tags::TRANSACT_TIME, ferrox_gateway::client::unix_ns())
            .str(tags::ORDER_QTY, qty.as_bytes())
            .char(tags::ORD_TYPE, b'2')
            .char(tags::TIME_IN_FORCE, b'1')
            .str(tags::PRICE, price.as_bytes());
    })
    .expect("sent");
}

/// Drains what the gateway sent, so that its outbox never fills during the test.
fn drain(c: &mut FixClient) {
    while let Ok(Some(_)) = c.recv(Duration::from_millis(1)) {}
}

fn watch(ex: &Exchange, seconds: u64) -> Child {
    Command::new(common::BIN)
        .args(["md", "watch", "AAPL", "--check", "--plain", "--seconds"])
        .arg(seconds.to_string())
        .arg("--feed")
        .arg(
            ex.md_feed
                .as_deref()
                .expect("the exchange publishes market data"),
        )
        .arg("--recovery")
        .arg(ex.md_recovery.as_deref().expect("a recovery address"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("md watch starts")
}

/// Waits for a watcher and returns its output; it must have passed its check.
fn passed(child: Child, ex: &Exchange) -> String {
    let out = child.wait_with_output().expect("md watch exits");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("check passed"),
        "md watch failed:\n{text}\nexchange log:\n{}",
        ex.log_text()
    );
    text
}

/// The number of AAPL orders the watcher's last summary line reports.
fn orders_seen(text: &str) -> u64 {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(" orders | "))
        .expect("a summary line");
    let before = line.split(" orders | ").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().expect("a count")
}

/// 150 resting buys and sells at distinct prices (no trades) and then 20 crossing sells.
fn trade(buyer: &mut FixClient, seller: &mut FixClient, tag: &str) -> u64 {
    for k in 0..75 {
        send_order(
            buyer,
            &format!("{tag}B{k}"),
            b'1',
            "10",
            &format!("189.{:02}", k),
        );
        send_order(
            seller,
            &format!("{tag}S{k}"),
            b'2',
            "10",
            &format!("191.{:02}", k),
        );
        drain(buyer);
        drain(seller);
    }
    // Each crossing sell takes one whole buy at the top (189.74, 189.73, ...).
    for k in 0..20 {
        send_order(seller, &format!("{tag}X{k}"), b'2', "10", "189.00");
        drain(seller);
    }
    std::thread::sleep(Duration::from_millis(300));
    drain(buyer);
    drain(seller);
    150 - 20
}

#[test]
fn md_watch_follows_a_trading_exchange_from_the_start_late_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints every 400 ms so that each watcher sees several.
    let config = gateway_config(dir.path(), "md1", "", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[exchange]\n", "[exchange]\ncheckpoint_interval_ms = 400\n");
    std::fs::write(&config, text).unwrap();

    let ex = Exchange::start(&config);
    let early = watch(&ex, 8);
    std::thread::sleep(Duration::from_millis(500));
    let mut buyer = logon(&ex, "CLIENT1", "client1");
    let mut seller = logon(&ex, "LOAD0001", "load");
    let resting = trade(&mut buyer, &mut seller, "a");
    let late = watch(&ex, 3);
    let early_out = passed(early, &ex);
    let late_out = passed(late, &ex);
    assert_eq!(orders_seen(&early_out), resting, "{early_out}");
    assert_eq!(orders_seen(&late_out), resting, "{late_out}");
    let last = late_out
        .lines()
        .rev()
        .find(|l| l.contains(" snapshots)"))
        .expect("a summary line");
    assert!(
        !last.contains(" 0 snapshots)"),
        "the late watcher joined by snapshot:\n{late_out}"
    );
    drop(buyer);
    drop(seller);
    let log = ex.stop();
    assert!(log.contains("md: seq "), "{log}");
    assert!(log.contains(", 0 self-check failures"), "{log}");

    // A restart is a new session; its books come from the journal.
    let ex = Exchange::start(&config);
    let after = watch(&ex, 3);
    let after_out = passed(after, &ex);
    assert_eq!(orders_seen(&after_out), resting, "{after_out}");
    ex.stop();
}
