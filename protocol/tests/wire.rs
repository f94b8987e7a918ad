//! Tests of the wire encoding: golden bytes, round trips, random values, hostile buffers, and
//! the layout tables in the module docs checked against the encoder.
//!
//! Random tests use a fixed seed so that CI is reproducible; set `FERROX_WIRE_SEED` to a
//! number to run them from another seed. Every failure message names the seed.

use ferrox_protocol::codes::{CancelReason, ExpireReason, RejectCode, RequestKind};
use ferrox_protocol::command::{
    Cancel, Checkpoint, Command, MassCancel, NewOrder, Replace, SetStatus,
};
use ferrox_protocol::event::{
    Accepted, BookChecked, BookDelta, Cancelled, Event, Expired, MassCancelled, Rejected, Replaced,
    Restated, Rested, StatusChanged, Trade,
};
use ferrox_protocol::types::{
    AccountId, ClientOrderId, InstrumentId, InstrumentStatus, OrderId, OrderType, PriceTicks,
    QtyLots, Side, StpGroup, StpMode, TimeInForce, TradeId,
};
use ferrox_protocol::wire::{
    decode_command, decode_event, encode_command, encode_event, DecodeError, COMMAND_BYTES,
    EVENT_BYTES, WIRE_VERSION,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn command_bytes(cmd: &Command) -> [u8; COMMAND_BYTES] {
    // Start from non-zero bytes, as a reused ring slot would, so that a byte the encoder forgot
    // to clear shows up.
    let mut buf = [0x5A; COMMAND_BYTES];
    encode_command(cmd, &mut buf);
    buf
}

fn event_bytes(event: &Event) -> [u8; EVENT_BYTES] {
    let mut buf = [0x5A; EVENT_BYTES];
    encode_event(event, &mut buf);
    buf
}

/// Parses whitespace-separated hex bytes; `#` starts a comment that runs to the end of the line.
fn hex<const N: usize>(text: &str) -> [u8; N] {
    let bytes: Vec<u8> = text
        .lines()
        .flat_map(|line| line.split('#').next().unwrap_or("").split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex byte {b:?}")))
        .collect();
    bytes
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("expected {N} bytes, got {}", b.len()))
}

/// The checks every buffer must pass, valid or not: decoding does not panic (the test would
/// fail), and whatever decodes re-encodes to exactly the same bytes and decodes again to the
/// same value.
fn check_command_buffer(buf: &[u8; COMMAND_BYTES], context: &dyn Fn() -> String) {
    if let Ok(cmd) = decode_command(buf) {
        let again = command_bytes(&cmd);
        assert_eq!(
            &again,
            buf,
            "re-encoding {cmd:?} changed the bytes; {}",
            context()
        );
        assert_eq!(decode_command(&again), Ok(cmd), "{}", context());
    }
}

fn check_event_buffer(buf: &[u8; EVENT_BYTES], context: &dyn Fn() -> String) {
    if let Ok(event) = decode_event(buf) {
        let again = event_bytes(&event);
        assert_eq!(
            &again,
            buf,
            "re-encoding {event:?} changed the bytes; {}",
            context()
        );
        assert_eq!(decode_event(&again), Ok(event), "{}", context());
    }
}

// ---------------------------------------------------------------------------------------------
// Samples and golden bytes: one value of each kind, with field values whose bytes differ from
// one another so that a swapped, shifted or wrongly ordered field changes the expected bytes.

const INSTRUMENT: InstrumentId = InstrumentId(263); // 07 01 00 00
const ACCOUNT: AccountId = AccountId(123_456); // 40 e2 01 00
const ORDER: OrderId = OrderId(1_000_001); // 41 42 0f 00 00 00 00 00
const CLIENT: ClientOrderId = ClientOrderId(0x1122_3344_5566_7788);
const PRICE: PriceTicks = PriceTicks(1_005_000); // c8 55 0f 00 00 00 00 00

fn golden_commands() -> Vec<(Command, &'static str)> {
    vec![
        (
            Command::NewOrder(NewOrder {
                instrument: INSTRUMENT,
                account: ACCOUNT,
                client_order_id: CLIENT,
                side: Side::Sell,
                order_type: OrderType::Limit,
                price: PRICE,
                qty: QtyLots(250),
                tif: TimeInForce::Gtd,
                expire_ts_ns: 1_700_000_000_000_000_000,
                post_only: true,
                stp_mode: StpMode::CancelBoth,
                stp_group: StpGroup(77),
            }),
            "
            01 02 01 03 01 02 00 00  # kind side order_type tif post_only stp_mode reserved
            07 01 00 00 40 e2 01 00  # instrument account
            00 00 00 00 00 00 00 00  # reserved
            88 77 66 55 44 33 22 11  # client_order_id
            c8 55 0f 00 00 00 00 00  # price
            fa 00 00 00 00 00 00 00  # qty
            00 00 2a 36 fe 9c 97 17  # expire_ts_ns
            4d 00 00 00 00 00 00 00  # stp_group reserved
            ",
        ),
        (
            Command::Cancel(Cancel {
                order_id: ORDER,
                account: ACCOUNT,
                client_order_id: ClientOrderId(u64::MAX),
            }),
            "
            02 00 00 00 00 00 00 00  # kind reserved
            00 00 00 00 40 e2 01 00  # reserved account
            41 42 0f 00 00 00 00 00  # order_id
            ff ff ff ff ff ff ff ff  # client_order_id
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Command::Replace(Replace {
                order_id: OrderId(42),
                account: AccountId(7),
                client_order_id: ClientOrderId(0x0102_0304_0506_0708),
                price: PriceTicks(-5),
                qty: QtyLots(1_000_000),
            }),
            "
            03 00 00 00 00 00 00 00  # kind reserved
            00 00 00 00 07 00 00 00  # reserved account
            2a 00 00 00 00 00 00 00  # order_id
            08 07 06 05 04 03 02 01  # client_order_id
            fb ff ff ff ff ff ff ff  # price (-5)
            40 42 0f 00 00 00 00 00  # qty
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Command::MassCancel(MassCancel {
                // Instrument 0 is a real instrument: the flag, not the value, says "present".
                instrument: Some(InstrumentId(0)),
                account: None,
                client_order_id: ClientOrderId(99),
            }),
            "
            04 01 00 00 00 00 00 00  # kind has_instrument has_account reserved
            00 00 00 00 00 00 00 00  # instrument account
            00 00 00 00 00 00 00 00  # reserved
            63 00 00 00 00 00 00 00  # client_order_id
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Command::SetStatus(SetStatus {
                instrument: INSTRUMENT,
                status: InstrumentStatus::Halted,
            }),
            "
            05 02 00 00 00 00 00 00  # kind status reserved
            07 01 00 00 00 00 00 00  # instrument reserved
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Command::EndOfDay,
            "
            06 00 00 00 00 00 00 00  # kind reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Command::Tick,
            "
            07 00 00 00 00 00 00 00  # kind reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Command::Checkpoint(Checkpoint {
                instrument: INSTRUMENT,
            }),
            "
            08 00 00 00 00 00 00 00  # kind reserved
            07 01 00 00 00 00 00 00  # instrument reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
    ]
}

fn golden_events() -> Vec<(Event, &'static str)> {
    vec![
        (
            Event::Accepted(Accepted {
                order_id: ORDER,
                instrument: INSTRUMENT,
                account: ACCOUNT,
                client_order_id: CLIENT,
                side: Side::Sell,
                order_type: OrderType::Market,
                tif: TimeInForce::Ioc,
                price: PRICE,
                qty: QtyLots(250),
                expire_ts_ns: 0,
                post_only: false,
            }),
            "
            01 02 02 04 00 00 00 00  # kind side order_type tif post_only reserved
            07 01 00 00 40 e2 01 00  # instrument account
            41 42 0f 00 00 00 00 00  # order_id
            88 77 66 55 44 33 22 11  # client_order_id
            c8 55 0f 00 00 00 00 00  # price
            fa 00 00 00 00 00 00 00  # qty
            00 00 00 00 00 00 00 00  # expire_ts_ns
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::Rejected(Rejected {
                request: RequestKind::Replace,
                code: RejectCode::PriceOutsideBand,
                instrument: INSTRUMENT,
                account: ACCOUNT,
                client_order_id: CLIENT,
                order_id: ORDER,
            }),
            "
            02 03 6e 00 00 00 00 00  # kind request code reserved
            07 01 00 00 40 e2 01 00  # instrument account
            41 42 0f 00 00 00 00 00  # order_id
            88 77 66 55 44 33 22 11  # client_order_id
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::Trade(Trade {
                trade_id: TradeId(0x0A0B_0C0D_0E0F),
                instrument: INSTRUMENT,
                price: PRICE,
                qty: QtyLots(100),
                aggressor_side: Side::Buy,
                maker_order_id: ORDER,
                maker_account: ACCOUNT,
                maker_client_order_id: CLIENT,
                maker_qty_open: QtyLots(150),
                taker_order_id: OrderId(1_000_007),
                taker_account: AccountId(654_321),
                taker_client_order_id: ClientOrderId(0x8877_6655_4433_2211),
                taker_qty_open: QtyLots(0),
            }),
            "
            03 01 00 00 00 00 00 00  # kind aggressor_side reserved
            07 01 00 00 40 e2 01 00  # instrument maker_account
            41 42 0f 00 00 00 00 00  # maker_order_id
            88 77 66 55 44 33 22 11  # maker_client_order_id
            c8 55 0f 00 00 00 00 00  # price
            64 00 00 00 00 00 00 00  # qty
            96 00 00 00 00 00 00 00  # maker_qty_open
            47 42 0f 00 00 00 00 00  # taker_order_id
            11 22 33 44 55 66 77 88  # taker_client_order_id
            00 00 00 00 00 00 00 00  # taker_qty_open
            0f 0e 0d 0c 0b 0a 00 00  # trade_id
            f1 fb 09 00 00 00 00 00  # taker_account reserved
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::Rested(Rested {
                order_id: ORDER,
                instrument: INSTRUMENT,
                account: ACCOUNT,
                side: Side::Buy,
                price: PriceTicks(-1),
                qty_open: QtyLots(150),
            }),
            "
            04 01 00 00 00 00 00 00  # kind side reserved
            07 01 00 00 40 e2 01 00  # instrument account
            41 42 0f 00 00 00 00 00  # order_id
            00 00 00 00 00 00 00 00  # reserved
            ff ff ff ff ff ff ff ff  # price (-1)
            96 00 00 00 00 00 00 00  # qty_open
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::Cancelled(Cancelled {
                order_id: ORDER,
                instrument: INSTRUMENT,
                account: ACCOUNT,
                client_order_id: CLIENT,
                side: Side::Sell,
                price: PRICE,
                qty_cancelled: QtyLots(u64::MAX),
                reason: CancelReason::SelfTradeDecrement,
            }),
            "
            05 02 08 00 00 00 00 00  # kind side reason reserved
            07 01 00 00 40 e2 01 00  # instrument account
            41 42 0f 00 00 00 00 00  # order_id
            88 77 66 55 44 33 22 11  # client_order_id
            c8 55 0f 00 00 00 00 00  # price
            ff ff ff ff ff ff ff ff  # qty_cancelled
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::Restated(Restated {
                order_id: ORDER,
                instrument: INSTRUMENT,
                account: ACCOUNT,
                client_order_id: CLIENT,
                side: Side::Buy,
                price: PRICE,
                qty_reduced: QtyLots(50),
                qty_open: QtyLots(100),
            }),
            "
            06 01 00 00 00 00 00 00  # kind side reserved
            07 01 00 00 40 e2 01 00  # instrument account
            41 42 0f 00 00 00 00 00  # order_id
            88 77 66 55 44 33 22 11  # client_order_id
            c8 55 0f 00 00 00 00 00  # price
            32 00 00 00 00 00 00 00  # qty_reduced
            64 00 00 00 00 00 00 00  # qty_open
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::Replaced(Replaced {
                order_id: ORDER,
                instrument: INSTRUMENT,
                account: ACCOUNT,
                client_order_id: CLIENT,
                orig_client_order_id: ClientOrderId(0x0102_0304_0506_0708),
                side: Side::Sell,
                price_old: PriceTicks(1_004_999),
                price: PRICE,
                qty_open_old: QtyLots(300),
                qty_open: QtyLots(200),
                qty_filled: QtyLots(25),
                priority_kept: true,
            }),
            "
            07 02 01 00 00 00 00 00  # kind side priority_kept reserved
            07 01 00 00 40 e2 01 00  # instrument account
            41 42 0f 00 00 00 00 00  # order_id
            88 77 66 55 44 33 22 11  # client_order_id
            c8 55 0f 00 00 00 00 00  # price
            c8 00 00 00 00 00 00 00  # qty_open
            08 07 06 05 04 03 02 01  # orig_client_order_id
            c7 55 0f 00 00 00 00 00  # price_old
            2c 01 00 00 00 00 00 00  # qty_open_old
            19 00 00 00 00 00 00 00  # qty_filled
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::Expired(Expired {
                order_id: ORDER,
                instrument: INSTRUMENT,
                account: ACCOUNT,
                client_order_id: CLIENT,
                side: Side::Buy,
                price: PRICE,
                qty_expired: QtyLots(7),
                reason: ExpireReason::GoodTillDate,
            }),
            "
            08 01 02 00 00 00 00 00  # kind side reason reserved
            07 01 00 00 40 e2 01 00  # instrument account
            41 42 0f 00 00 00 00 00  # order_id
            88 77 66 55 44 33 22 11  # client_order_id
            c8 55 0f 00 00 00 00 00  # price
            07 00 00 00 00 00 00 00  # qty_expired
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::BookDelta(BookDelta {
                instrument: INSTRUMENT,
                side: Side::Sell,
                price: PRICE,
                qty_total: QtyLots(0x0102_0304),
                order_count: 0x0A0B_0C0D,
            }),
            "
            09 02 00 00 00 00 00 00  # kind side reserved
            07 01 00 00 00 00 00 00  # instrument reserved
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            c8 55 0f 00 00 00 00 00  # price
            04 03 02 01 00 00 00 00  # qty_total
            0d 0c 0b 0a 00 00 00 00  # order_count reserved
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::StatusChanged(StatusChanged {
                instrument: INSTRUMENT,
                status: InstrumentStatus::Open,
            }),
            "
            0a 01 00 00 00 00 00 00  # kind status reserved
            07 01 00 00 00 00 00 00  # instrument reserved
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::MassCancelled(MassCancelled {
                instrument: Some(INSTRUMENT),
                account: Some(ACCOUNT),
                client_order_id: CLIENT,
                count: 12,
            }),
            "
            0b 01 01 00 00 00 00 00  # kind has_instrument has_account reserved
            07 01 00 00 40 e2 01 00  # instrument account
            00 00 00 00 00 00 00 00  # reserved
            88 77 66 55 44 33 22 11  # client_order_id
            0c 00 00 00 00 00 00 00  # count reserved
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
        (
            Event::BookChecked(BookChecked {
                instrument: INSTRUMENT,
                book_hash: 0x1122_3344_5566_7788,
                orders: 5,
                bid_levels: 2,
                ask_levels: 3,
            }),
            "
            0c 00 00 00 00 00 00 00  # kind reserved
            07 01 00 00 05 00 00 00  # instrument orders
            88 77 66 55 44 33 22 11  # book_hash
            02 00 00 00 03 00 00 00  # bid_levels ask_levels
            00 00 00 00 00 00 00 00  # reserved
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00
            ",
        ),
    ]
}

fn command_samples() -> Vec<Command> {
    golden_commands().into_iter().map(|(c, _)| c).collect()
}

fn event_samples() -> Vec<Event> {
    golden_events().into_iter().map(|(e, _)| e).collect()
}

#[test]
fn constants_are_as_documented() {
    assert_eq!(WIRE_VERSION, 1);
    assert_eq!(COMMAND_BYTES, 64);
    assert_eq!(EVENT_BYTES, 112);
}

#[test]
fn golden_command_bytes() {
    let golden = golden_commands();
    assert_eq!(golden.len(), 8, "one golden vector per command kind");
    for (cmd, text) in golden {
        let expected: [u8; COMMAND_BYTES] = hex(text);
        assert_eq!(command_bytes(&cmd), expected, "encoding of {cmd:?}");
        assert_eq!(decode_command(&expected), Ok(cmd), "decoding of {cmd:?}");
    }
}

#[test]
fn golden_event_bytes() {
    let golden = golden_events();
    assert_eq!(golden.len(), 12, "one golden vector per event kind");
    for (event, text) in golden {
        let expected: [u8; EVENT_BYTES] = hex(text);
        assert_eq!(event_bytes(&event), expected, "encoding of {event:?}");
        assert_eq!(decode_event(&expected), Ok(event), "decoding of {event:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// Every command variant, and within it every value of every enum field and both option states.
fn every_command_variant() -> Vec<Command> {
    let mut all = command_samples();
    let Command::NewOrder(base) = all[0] else {
        unreachable!("the first sample is a new order")
    };
    for &side in Side::ALL {
        for &order_type in OrderType::ALL {
            for &tif in TimeInForce::ALL {
                for &stp_mode in StpMode::ALL {
                    for post_only in [false, true] {
                        all.push(Command::NewOrder(NewOrder {
                            side,
                            order_type,
                            tif,
                            stp_mode,
                            post_only,
                            ..base
                        }));
                    }
                }
            }
        }
    }
    for &status in InstrumentStatus::ALL {
        all.push(Command::SetStatus(SetStatus {
            instrument: InstrumentId(u32::MAX),
            status,
        }));
    }
    for instrument in [None, Some(InstrumentId(0)), Some(InstrumentId(u32::MAX))] {
        for account in [None, Some(AccountId(0)), Some(AccountId(u32::MAX))] {
            all.push(Command::MassCancel(MassCancel {
                instrument,
                account,
                client_order_id: ClientOrderId(0),
            }));
        }
    }
    all
}

/// Every event variant, and within it every value of every enum field and both bool values.
fn every_event_variant() -> Vec<Event> {
    let mut all = event_samples();
    for &side in Side::ALL {
        for &order_type in OrderType::ALL {
            for &tif in TimeInForce::ALL {
                for post_only in [false, true] {
                    all.push(Event::Accepted(Accepted {
                        order_id: OrderId(u64::MAX),
                        instrument: InstrumentId(0),
                        account: AccountId(u32::MAX),
                        client_order_id: ClientOrderId(0),
                        side,
                        order_type,
                        tif,
                        price: PriceTicks(i64::MIN),
                        qty: QtyLots(u64::MAX),
                        expire_ts_ns: u64::MAX,
                        post_only,
                    }));
                }
            }
        }
        for &reason in CancelReason::ALL {
            all.push(Event::Cancelled(Cancelled {
                order_id: OrderId(1),
                instrument: InstrumentId(2),
                account: AccountId(3),
                client_order_id: ClientOrderId(4),
                side,
                price: PriceTicks(i64::MAX),
                qty_cancelled: QtyLots(6),
                reason,
            }));
        }
        for &reason in ExpireReason::ALL {
            all.push(Event::Expired(Expired {
                order_id: OrderId(1),
                instrument: InstrumentId(2),
                account: AccountId(3),
                client_order_id: ClientOrderId(4),
                side,
                price: PriceTicks(i64::MIN),
                qty_expired: QtyLots(6),
                reason,
            }));
        }
        for priority_kept in [false, true] {
            all.push(Event::Replaced(Replaced {
                order_id: OrderId(0),
                instrument: InstrumentId(0),
                account: AccountId(0),
                client_order_id: ClientOrderId(0),
                orig_client_order_id: ClientOrderId(0),
                side,
                price_old: PriceTicks(0),
                price: PriceTicks(0),
                qty_open_old: QtyLots(0),
                qty_open: QtyLots(0),
                qty_filled: QtyLots(0),
                priority_kept,
            }));
        }
    }
    for &request in RequestKind::ALL {
        for &code in RejectCode::ALL {
            all.push(Event::Rejected(Rejected {
                request,
                code,
                instrument: InstrumentId(1),
                account: AccountId(2),
                client_order_id: ClientOrderId(3),
                order_id: OrderId(0),
            }));
        }
    }
    for &status in InstrumentStatus::ALL {
        all.push(Event::StatusChanged(StatusChanged {
            instrument: InstrumentId(9),
            status,
        }));
    }
    for instrument in [None, Some(InstrumentId(0)), Some(InstrumentId(u32::MAX))] {
        for account in [None, Some(AccountId(0)), Some(AccountId(u32::MAX))] {
            all.push(Event::MassCancelled(MassCancelled {
                instrument,
                account,
                client_order_id: ClientOrderId(u64::MAX),
                count: u32::MAX,
            }));
        }
    }
    all
}

#[test]
fn every_command_variant_round_trips() {
    let all = every_command_variant();
    for cmd in &all {
        let buf = command_bytes(cmd);
        assert_eq!(decode_command(&buf), Ok(*cmd));
    }
    // Equal encodings exactly for equal values: the encoding loses nothing and adds nothing.
    for a in &all {
        for b in &all {
            assert_eq!(
                command_bytes(a) == command_bytes(b),
                a == b,
                "{a:?} and {b:?}"
            );
        }
    }
}

#[test]
fn every_event_variant_round_trips() {
    let all = every_event_variant();
    for event in &all {
        let buf = event_bytes(event);
        assert_eq!(decode_event(&buf), Ok(*event));
    }
    for a in &all {
        for b in &all {
            assert_eq!(event_bytes(a) == event_bytes(b), a == b, "{a:?} and {b:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random values

/// xorshift64*: small, fast and good enough to spread test values; not for anything secret.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Zero is the one state xorshift cannot leave.
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A u64 biased towards the edges (0, 1, MAX, small numbers) where encodings go wrong.
    fn u64(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => self.next() % 1000,
            3 => 1 << self.below(64),
            _ => self.next(),
        }
    }

    fn u32(&mut self) -> u32 {
        (self.u64() >> (32 * u32::from(self.bool()))) as u32
    }

    fn i64(&mut self) -> i64 {
        match self.below(8) {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => -((self.next() % 1000) as i64),
            _ => self.u64() as i64,
        }
    }

    fn instrument(&mut self) -> InstrumentId {
        InstrumentId(self.u32())
    }
    fn account(&mut self) -> AccountId {
        AccountId(self.u32())
    }
    fn order(&mut self) -> OrderId {
        OrderId(self.u64())
    }
    fn client(&mut self) -> ClientOrderId {
        ClientOrderId(self.u64())
    }
    fn price(&mut self) -> PriceTicks {
        PriceTicks(self.i64())
    }
    fn qty(&mut self) -> QtyLots {
        QtyLots(self.u64())
    }
    fn side(&mut self) -> Side {
        self.pick(Side::ALL)
    }
    fn option<T>(&mut self, value: T) -> Option<T> {
        self.bool().then_some(value)
    }
}

fn random_command(rng: &mut Rng) -> Command {
    match rng.below(8) {
        0 => Command::NewOrder(NewOrder {
            instrument: rng.instrument(),
            account: rng.account(),
            client_order_id: rng.client(),
            side: rng.side(),
            order_type: rng.pick(OrderType::ALL),
            price: rng.price(),
            qty: rng.qty(),
            tif: rng.pick(TimeInForce::ALL),
            expire_ts_ns: rng.u64(),
            post_only: rng.bool(),
            stp_mode: rng.pick(StpMode::ALL),
            stp_group: StpGroup(rng.u32()),
        }),
        1 => Command::Cancel(Cancel {
            order_id: rng.order(),
            account: rng.account(),
            client_order_id: rng.client(),
        }),
        2 => Command::Replace(Replace {
            order_id: rng.order(),
            account: rng.account(),
            client_order_id: rng.client(),
            price: rng.price(),
            qty: rng.qty(),
        }),
        3 => Command::MassCancel(MassCancel {
            instrument: {
                let i = rng.instrument();
                rng.option(i)
            },
            account: {
                let a = rng.account();
                rng.option(a)
            },
            client_order_id: rng.client(),
        }),
        4 => Command::SetStatus(SetStatus {
            instrument: rng.instrument(),
            status: rng.pick(InstrumentStatus::ALL),
        }),
        5 => Command::EndOfDay,
        6 => Command::Checkpoint(Checkpoint {
            instrument: rng.instrument(),
        }),
        _ => Command::Tick,
    }
}

fn random_event(rng: &mut Rng) -> Event {
    match rng.below(12) {
        0 => Event::Accepted(Accepted {
            order_id: rng.order(),
            instrument: rng.instrument(),
            account: rng.account(),
            client_order_id: rng.client(),
            side: rng.side(),
            order_type: rng.pick(OrderType::ALL),
            tif: rng.pick(TimeInForce::ALL),
            price: rng.price(),
            qty: rng.qty(),
            expire_ts_ns: rng.u64(),
            post_only: rng.bool(),
        }),
        1 => Event::Rejected(Rejected {
            request: rng.pick(RequestKind::ALL),
            code: rng.pick(RejectCode::ALL),
            instrument: rng.instrument(),
            account: rng.account(),
            client_order_id: rng.client(),
            order_id: rng.order(),
        }),
        2 => Event::Trade(Trade {
            trade_id: TradeId(rng.u64()),
            instrument: rng.instrument(),
            price: rng.price(),
            qty: rng.qty(),
            aggressor_side: rng.side(),
            maker_order_id: rng.order(),
            maker_account: rng.account(),
            maker_client_order_id: rng.client(),
            maker_qty_open: rng.qty(),
            taker_order_id: rng.order(),
            taker_account: rng.account(),
            taker_client_order_id: rng.client(),
            taker_qty_open: rng.qty(),
        }),
        3 => Event::Rested(Rested {
            order_id: rng.order(),
            instrument: rng.instrument(),
            account: rng.account(),
            side: rng.side(),
            price: rng.price(),
            qty_open: rng.qty(),
        }),
        4 => Event::Cancelled(Cancelled {
            order_id: rng.order(),
            instrument: rng.instrument(),
            account: rng.account(),
            client_order_id: rng.client(),
            side: rng.side(),
            price: rng.price(),
            qty_cancelled: rng.qty(),
            reason: rng.pick(CancelReason::ALL),
        }),
        5 => Event::Restated(Restated {
            order_id: rng.order(),
            instrument: rng.instrument(),
            account: rng.account(),
            client_order_id: rng.client(),
            side: rng.side(),
            price: rng.price(),
            qty_reduced: rng.qty(),
            qty_open: rng.qty(),
        }),
        6 => Event::Replaced(Replaced {
            order_id: rng.order(),
            instrument: rng.instrument(),
            account: rng.account(),
            client_order_id: rng.client(),
            orig_client_order_id: rng.client(),
            side: rng.side(),
            price_old: rng.price(),
            price: rng.price(),
            qty_open_old: rng.qty(),
            qty_open: rng.qty(),
            qty_filled: rng.qty(),
            priority_kept: rng.bool(),
        }),
        7 => Event::Expired(Expired {
            order_id: rng.order(),
            instrument: rng.instrument(),
            account: rng.account(),
            client_order_id: rng.client(),
            side: rng.side(),
            price: rng.price(),
            qty_expired: rng.qty(),
            reason: rng.pick(ExpireReason::ALL),
        }),
        8 => Event::BookDelta(BookDelta {
            instrument: rng.instrument(),
            side: rng.side(),
            price: rng.price(),
            qty_total: rng.qty(),
            order_count: rng.u32(),
        }),
        9 => Event::StatusChanged(StatusChanged {
            instrument: rng.instrument(),
            status: rng.pick(InstrumentStatus::ALL),
        }),
        10 => Event::BookChecked(BookChecked {
            instrument: rng.instrument(),
            book_hash: rng.u64(),
            orders: rng.u32(),
            bid_levels: rng.u32(),
            ask_levels: rng.u32(),
        }),
        _ => Event::MassCancelled(MassCancelled {
            instrument: {
                let i = rng.instrument();
                rng.option(i)
            },
            account: {
                let a = rng.account();
                rng.option(a)
            },
            client_order_id: rng.client(),
            count: rng.u32(),
        }),
    }
}

/// The seed for the random tests: fixed so CI is reproducible, or taken from `FERROX_WIRE_SEED`
/// to replay a failure or explore further.
fn seed() -> u64 {
    match std::env::var("FERROX_WIRE_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FERROX_WIRE_SEED={text:?} is not a u64")),
        Err(_) => 0x00F3_770C_5EED_2024,
    }
}

#[test]
fn random_commands_round_trip() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    for i in 0..50_000 {
        let cmd = random_command(&mut rng);
        let buf = command_bytes(&cmd);
        assert_eq!(
            decode_command(&buf),
            Ok(cmd),
            "seed {seed}, value {i}: {buf:02x?}"
        );
    }
}

#[test]
fn random_events_round_trip() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    for i in 0..50_000 {
        let event = random_event(&mut rng);
        let buf = event_bytes(&event);
        assert_eq!(
            decode_event(&buf),
            Ok(event),
            "seed {seed}, value {i}: {buf:02x?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile buffers

#[test]
fn random_and_mutated_command_buffers_never_panic_and_re_encode_exactly() {
    let seed = seed();
    let mut rng = Rng::new(seed ^ 0xC0);
    let mut decoded = 0usize;
    for i in 0..100_000 {
        let mut buf = [0u8; COMMAND_BYTES];
        match rng.below(4) {
            // Random bytes: nearly always an unknown kind.
            0 => buf.iter_mut().for_each(|b| *b = rng.next() as u8),
            // A valid kind over random or sparse bytes, to reach the field checks.
            1 | 2 => {
                let sparse = rng.bool();
                for b in buf.iter_mut() {
                    *b = if !sparse || rng.below(16) == 0 {
                        rng.next() as u8
                    } else {
                        0
                    };
                }
                buf[0] = 1 + rng.below(7) as u8;
            }
            // A valid encoding with a few random bytes overwritten.
            _ => {
                buf = command_bytes(&random_command(&mut rng));
                for _ in 0..1 + rng.below(3) {
                    buf[rng.below(COMMAND_BYTES)] = rng.next() as u8;
                }
            }
        }
        decoded += usize::from(decode_command(&buf).is_ok());
        check_command_buffer(&buf, &|| format!("seed {seed}, buffer {i}: {buf:02x?}"));
    }
    // Guards the generator: the check above means little if nothing ever decodes.
    assert!(decoded > 1_000, "only {decoded} buffers decoded");
}

#[test]
fn random_and_mutated_event_buffers_never_panic_and_re_encode_exactly() {
    let seed = seed();
    let mut rng = Rng::new(seed ^ 0xE0);
    let mut decoded = 0usize;
    for i in 0..100_000 {
        let mut buf = [0u8; EVENT_BYTES];
        match rng.below(4) {
            0 => buf.iter_mut().for_each(|b| *b = rng.next() as u8),
            1 | 2 => {
                let sparse = rng.bool();
                for b in buf.iter_mut() {
                    *b = if !sparse || rng.below(32) == 0 {
                        rng.next() as u8
                    } else {
                        0
                    };
                }
                buf[0] = 1 + rng.below(11) as u8;
            }
            _ => {
                buf = event_bytes(&random_event(&mut rng));
                for _ in 0..1 + rng.below(3) {
                    buf[rng.below(EVENT_BYTES)] = rng.next() as u8;
                }
            }
        }
        decoded += usize::from(decode_event(&buf).is_ok());
        check_event_buffer(&buf, &|| format!("seed {seed}, buffer {i}: {buf:02x?}"));
    }
    assert!(decoded > 1_000, "only {decoded} buffers decoded");
}

/// Every value of every single byte of each golden encoding: exhaustive where bit flips and
/// random bytes only sample.
#[test]
fn every_single_byte_substitution_is_refused_or_re_encodes_exactly() {
    for cmd in every_command_variant() {
        let good = command_bytes(&cmd);
        for at in 0..COMMAND_BYTES {
            for value in 0..=u8::MAX {
                let mut buf = good;
                buf[at] = value;
                check_command_buffer(&buf, &|| format!("{cmd:?}, byte {at} = {value}"));
            }
        }
    }
    for event in event_samples() {
        let good = event_bytes(&event);
        for at in 0..EVENT_BYTES {
            for value in 0..=u8::MAX {
                let mut buf = good;
                buf[at] = value;
                check_event_buffer(&buf, &|| format!("{event:?}, byte {at} = {value}"));
            }
        }
    }
}

/// A single flipped bit in a valid record must never decode to the same value: it either fails
/// or yields a different value (which the journal's checksum, not this layer, must catch).
#[test]
fn no_single_bit_flip_aliases_to_the_same_value() {
    let seed = seed();
    let mut rng = Rng::new(seed ^ 0xB1);
    let mut commands = every_command_variant();
    commands.extend((0..2_000).map(|_| random_command(&mut rng)));
    for (n, cmd) in commands.iter().enumerate() {
        let good = command_bytes(cmd);
        for bit in 0..COMMAND_BYTES * 8 {
            let mut buf = good;
            buf[bit / 8] ^= 1 << (bit % 8);
            let context = || format!("seed {seed}, command {n} {cmd:?}, bit {bit}");
            assert_ne!(decode_command(&buf), Ok(*cmd), "{}", context());
            check_command_buffer(&buf, &context);
        }
    }
    let mut events = every_event_variant();
    events.extend((0..2_000).map(|_| random_event(&mut rng)));
    for (n, event) in events.iter().enumerate() {
        let good = event_bytes(event);
        for bit in 0..EVENT_BYTES * 8 {
            let mut buf = good;
            buf[bit / 8] ^= 1 << (bit % 8);
            let context = || format!("seed {seed}, event {n} {event:?}, bit {bit}");
            assert_ne!(decode_event(&buf), Ok(*event), "{}", context());
            check_event_buffer(&buf, &context);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The layout tables in the module docs

/// One row of a layout table: offset, size and field name.
#[derive(Clone, Debug)]
struct Row {
    offset: usize,
    size: usize,
    field: String,
}

/// One kind's table: its kind byte, its name and its rows.
#[derive(Clone, Debug)]
struct Layout {
    kind: u8,
    name: String,
    rows: Vec<Row>,
}

/// Parses the tables of one `# Command records` or `# Event records` section of the module
/// docs. Tables sit side by side in columns separated by `|`; a column header reads
/// `off sz  <kind> <Name>` and a row reads `<offset> <size>  <field>`.
fn parse_layouts(section: &str) -> Vec<Layout> {
    let source = include_str!("../src/wire.rs");
    let docs: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = docs
        .iter()
        .position(|l| l.starts_with(section))
        .unwrap_or_else(|| panic!("no {section:?} in the module docs"));
    let mut layouts: Vec<Layout> = Vec::new();
    // Which layout each column of the current block of tables belongs to.
    let mut columns: Vec<Option<usize>> = Vec::new();
    for line in docs[start + 1..]
        .iter()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
    {
        for (col, cell) in line.split('|').map(str::trim).enumerate() {
            if columns.len() <= col {
                columns.resize(col + 1, None);
            }
            let words: Vec<&str> = cell.split_whitespace().collect();
            match words.as_slice() {
                ["off", "sz", kind, name] => {
                    layouts.push(Layout {
                        kind: kind.parse().expect("kind number"),
                        name: (*name).to_string(),
                        rows: Vec::new(),
                    });
                    columns[col] = Some(layouts.len() - 1);
                }
                [offset, size, field] if offset.parse::<usize>().is_ok() => {
                    let layout = columns[col].expect("a row under a header");
                    layouts[layout].rows.push(Row {
                        offset: offset.parse().expect("offset"),
                        size: size.parse().expect("size"),
                        field: (*field).to_string(),
                    });
                }
                _ => {}
            }
        }
    }
    layouts
}

/// The number that `Debug` prints for a field, if it prints one (`None` for enum variants).
fn debug_number(debug: &str, field: &str) -> Option<i128> {
    let at = debug.find(&format!(" {field}: "))? + field.len() + 3;
    let text = &debug[at..];
    let text = &text[..text.find([',', '}']).unwrap_or(text.len())];
    match text.trim() {
        "true" => return Some(1),
        "false" => return Some(0),
        _ => {}
    }
    let digits = text.rsplit('(').next().unwrap_or(text);
    let end = digits
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(digits.len(), |(i, _)| i);
    digits[..end].parse().ok()
}

/// Names of the struct fields that `Debug` prints for a value.
fn debug_fields(debug: &str) -> Vec<String> {
    let mut fields: Vec<String> = debug
        .split([' ', '{', '(', ','])
        .filter_map(|w| w.strip_suffix(':'))
        .map(str::to_string)
        .collect();
    fields.sort();
    fields
}

/// Checks one kind's table against a sample encoding of that kind: the rows tile the record,
/// each named field exists and holds the sample's value at the stated offset, reserved rows are
/// zero and refused when not, and an invalid enum or bool is reported under the row's name.
fn check_layout<const N: usize>(
    layout: &Layout,
    debug: &str,
    good: &[u8; N],
    decode: &dyn Fn(&[u8; N]) -> Result<String, DecodeError>,
) {
    let ctx = format!("layout table of {} (kind {})", layout.name, layout.kind);
    assert!(debug.starts_with(&layout.name), "{ctx}: sample is {debug}");
    assert_eq!(good[0], layout.kind, "{ctx}: kind byte");

    let mut next = 0;
    for row in &layout.rows {
        assert_eq!(
            row.offset, next,
            "{ctx}: row {row:?} leaves a gap or overlaps"
        );
        next += row.size;
    }
    assert_eq!(next, N, "{ctx}: rows do not cover the record");

    let mut named: Vec<String> = layout
        .rows
        .iter()
        .map(|r| r.field.clone())
        .filter(|f| f != "kind" && f != "reserved" && !f.starts_with("has_"))
        .collect();
    named.sort();
    assert_eq!(
        named,
        debug_fields(debug),
        "{ctx}: fields differ from the type's"
    );

    for row in &layout.rows {
        let bytes = &good[row.offset..row.offset + row.size];
        let mut le = [0u8; 16];
        le[..row.size.min(16)].copy_from_slice(&bytes[..row.size.min(16)]);
        let stored = u128::from_le_bytes(le);
        match row.field.as_str() {
            "kind" => assert_eq!(row.size, 1, "{ctx}"),
            "reserved" => assert!(bytes.iter().all(|&b| b == 0), "{ctx}: {row:?}"),
            field => {
                let field = field.strip_prefix("has_").unwrap_or(field);
                let option = row.field.starts_with("has_");
                let expected = if option {
                    Some(i128::from(!debug.contains(&format!(" {field}: None"))))
                } else {
                    debug_number(debug, field)
                };
                if let Some(expected) = expected {
                    // Sign-extended values are compared in the row's width.
                    let mask = u128::MAX >> (128 - 8 * row.size);
                    assert_eq!(
                        stored,
                        (expected as u128) & mask,
                        "{ctx}: {row:?} does not hold the sample's value {expected}"
                    );
                }
            }
        }
        for byte in row.offset..row.offset + row.size {
            for bit in 0..8 {
                let mut buf = *good;
                buf[byte] ^= 1 << bit;
                match (row.field.as_str(), decode(&buf)) {
                    ("kind", _) => {}
                    ("reserved", result) => assert_eq!(
                        result.map(|_| ()),
                        Err(DecodeError::ReservedNotZero {
                            offset: byte,
                            field: "reserved",
                            value: buf[byte],
                        }),
                        "{ctx}: byte {byte}"
                    ),
                    (_, Ok(value)) => assert_ne!(value, debug, "{ctx}: byte {byte} bit {bit}"),
                    (field, Err(e)) => {
                        // Clearing a `has_*` flag of a present value is reported at the value.
                        let expected = match (e, field.strip_prefix("has_")) {
                            (DecodeError::AbsentValueNotZero { .. }, Some(value_field)) => {
                                value_field
                            }
                            _ => field,
                        };
                        assert_eq!(e.field(), expected, "{ctx}: byte {byte} bit {bit}: {e}");
                        if expected == field {
                            assert_eq!(e.offset(), row.offset, "{ctx}: {e}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn command_layout_tables_match_the_encoder() {
    let layouts = parse_layouts("# Command records");
    let samples = command_samples();
    assert_eq!(layouts.len(), samples.len(), "{layouts:#?}");
    for (layout, cmd) in layouts.iter().zip(&samples) {
        let decode = |b: &[u8; COMMAND_BYTES]| decode_command(b).map(|c| format!("{c:?}"));
        check_layout(layout, &format!("{cmd:?}"), &command_bytes(cmd), &decode);
    }
}

#[test]
fn event_layout_tables_match_the_encoder() {
    let layouts = parse_layouts("# Event records");
    let samples = event_samples();
    assert_eq!(layouts.len(), samples.len(), "{layouts:#?}");
    for (layout, event) in layouts.iter().zip(&samples) {
        let decode = |b: &[u8; EVENT_BYTES]| decode_event(b).map(|e| format!("{e:?}"));
        check_layout(layout, &format!("{event:?}"), &event_bytes(event), &decode);
    }
}
