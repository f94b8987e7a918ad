//! Tests of the market-data feed codec (`marketdata/src/feed.rs`, specified by
//! `marketdata/FEED.md`): golden bytes written out by hand from FEED.md's tables, seeded
//! round trips, one rejection test per error, hostile and mutated input, the packet builder and
//! the frame splitter.
//!
//! Randomised tests take their seed from `FERROX_SEED` (a fixed default otherwise) and print it,
//! so a failure shown by `cargo test` can be replayed with `FERROX_SEED=<n>`.

use ferrox_marketdata::feed::*;
use ferrox_protocol::types::{
    InstrumentId, InstrumentStatus, OrderId, PriceTicks, QtyLots, Side, TradeId,
};
use quickcheck::{Arbitrary, Gen, QuickCheck};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The seed of the randomised tests: `FERROX_SEED` or a fixed default, printed so that a failing
/// run names it.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("FERROX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00FE_ED5E_ED00_0001);
    eprintln!("{test}: seed {seed} (replay with FERROX_SEED={seed})");
    seed
}

/// A seeded quickcheck runner with `tests` cases.
fn quickcheck(test: &str, tests: u64) -> QuickCheck {
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(64, seed(test)))
        .tests(tests)
        .max_tests(tests * 10)
}

/// Parses whitespace-separated hex bytes; `#` starts a comment that runs to the end of the line.
fn hex(text: &str) -> Vec<u8> {
    text.lines()
        .flat_map(|line| line.split('#').next().unwrap_or("").split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex byte {b:?}")))
        .collect()
}

/// xorshift64* seeded through SplitMix64, for the tests that need many cheap random bytes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

fn session() -> SessionId {
    SessionId::new("DAY1").expect("valid session")
}

fn encode(msg: &Message) -> Vec<u8> {
    // Start from non-zero bytes, as a reused buffer would, so that a byte the encoder forgot to
    // clear shows up; the byte after the message must stay untouched.
    let mut buf = [0x5A; MESSAGE_BYTES_MAX + 1];
    let n = msg.encode(&mut buf);
    assert_eq!(n, msg.len(), "encode returns the message's length");
    assert_eq!(buf[n], 0x5A, "encode wrote past the message");
    buf[..n].to_vec()
}

/// Rebuilds a parsed packet from its decoded values alone, which must give back the bytes it
/// was parsed from (the encoding is canonical).
fn reencode_packet(p: &Packet<'_>) -> Vec<u8> {
    match p.kind {
        PacketKind::Heartbeat => {
            let mut out = [0; PACKET_HEADER_BYTES];
            encode_heartbeat(p.session, p.seq, &mut out);
            out.to_vec()
        }
        PacketKind::EndOfSession => {
            let mut out = [0; PACKET_HEADER_BYTES];
            encode_end_of_session(p.session, p.seq, &mut out);
            out.to_vec()
        }
        PacketKind::Messages => {
            let mut b = PacketBuilder::new(p.session, PACKET_BYTES_MAX);
            b.start(p.seq);
            for (_, m) in p.messages() {
                assert!(
                    b.push(&m),
                    "a parsed packet's messages fit a maximal packet"
                );
            }
            assert_eq!(b.count(), p.count);
            b.bytes().to_vec()
        }
    }
}

fn reencode_reply(reply: &Reply<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match reply {
        Reply::Packet(p) => encode_reply_packet(&reencode_packet(p), &mut out),
        Reply::End => encode_reply_end(&mut out),
        Reply::Reject { reason, text } => encode_reply_reject(*reason, text, &mut out),
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Golden vectors, written out by hand from FEED.md

const INSTRUMENT: InstrumentId = InstrumentId(263); // 07 01 00 00
const TS: u64 = 0x1817_1615_1413_1211; // 11 12 13 14 15 16 17 18
const ORDER: OrderId = OrderId(1_000_001); // 41 42 0f 00 00 00 00 00
const PRICE: PriceTicks = PriceTicks(1_005_000); // c8 55 0f 00 00 00 00 00
const HASH: u64 = 0xDEAD_BEEF_CAFE_F00D; // 0d f0 fe ca ef be ad de

fn golden_messages() -> Vec<(Message, &'static str)> {
    vec![
        (
            Message::Directory(Directory {
                instrument: INSTRUMENT,
                ts_ns: TS,
                symbol: *b"ESZ6            ",
                price_decimals: 2,
                qty_decimals: 3,
                tick_size: PriceTicks(25),
                lot_size: QtyLots(1000),
            }),
            "
            52 00 00 00 07 01 00 00  # 'R', side 0, reserved, instrument 263
            11 12 13 14 15 16 17 18  # ts_ns
            45 53 5a 36 20 20 20 20  # symbol \"ESZ6\", space padded
            20 20 20 20 20 20 20 20
            02 03 00 00 00 00 00 00  # price_decimals 2, qty_decimals 3, reserved
            19 00 00 00 00 00 00 00  # tick_size 25
            e8 03 00 00 00 00 00 00  # lot_size 1000
            ",
        ),
        (
            Message::Status(Status {
                instrument: INSTRUMENT,
                ts_ns: TS,
                status: InstrumentStatus::Halted,
            }),
            "
            48 00 00 00 07 01 00 00  # 'H', side 0, reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            02 00 00 00 00 00 00 00  # status 2 (halted), reserved
            ",
        ),
        (
            Message::Add(AddOrder {
                instrument: INSTRUMENT,
                ts_ns: TS,
                side: Side::Sell,
                order_id: ORDER,
                price: PRICE,
                qty: QtyLots(250),
            }),
            "
            41 53 00 00 07 01 00 00  # 'A', side 'S', reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            41 42 0f 00 00 00 00 00  # order_id 1000001
            c8 55 0f 00 00 00 00 00  # price 1005000
            fa 00 00 00 00 00 00 00  # qty 250
            ",
        ),
        (
            Message::Delete(DeleteOrder {
                instrument: INSTRUMENT,
                ts_ns: TS,
                side: Side::Buy,
                order_id: ORDER,
                qty: QtyLots(0x0102),
            }),
            "
            44 42 00 00 07 01 00 00  # 'D', side 'B', reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            41 42 0f 00 00 00 00 00  # order_id
            02 01 00 00 00 00 00 00  # qty 258
            ",
        ),
        (
            Message::Reduce(ReduceOrder {
                instrument: INSTRUMENT,
                ts_ns: TS,
                side: Side::Buy,
                order_id: OrderId(5),
                qty_reduced: QtyLots(10),
                qty_open: QtyLots(30),
            }),
            "
            58 42 00 00 07 01 00 00  # 'X', side 'B', reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            05 00 00 00 00 00 00 00  # order_id 5
            0a 00 00 00 00 00 00 00  # qty_reduced 10
            1e 00 00 00 00 00 00 00  # qty_open 30
            ",
        ),
        (
            Message::Modify(ModifyOrder {
                instrument: INSTRUMENT,
                ts_ns: TS,
                side: Side::Sell,
                order_id: OrderId(6),
                price: PriceTicks(-2),
                qty_open: QtyLots(7),
            }),
            "
            55 53 00 00 07 01 00 00  # 'U', side 'S', reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            06 00 00 00 00 00 00 00  # order_id 6
            fe ff ff ff ff ff ff ff  # price -2
            07 00 00 00 00 00 00 00  # qty_open 7
            ",
        ),
        (
            Message::Executed(OrderExecuted {
                instrument: INSTRUMENT,
                ts_ns: TS,
                aggressor_side: Side::Buy,
                trade_id: TradeId(9),
                maker_order_id: ORDER,
                price: PRICE,
                qty: QtyLots(250),
                maker_qty_open: QtyLots(0),
            }),
            "
            45 42 00 00 07 01 00 00  # 'E', aggressor side 'B', reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            09 00 00 00 00 00 00 00  # trade_id 9
            41 42 0f 00 00 00 00 00  # maker order_id
            c8 55 0f 00 00 00 00 00  # price
            fa 00 00 00 00 00 00 00  # qty 250
            00 00 00 00 00 00 00 00  # maker qty_open 0
            00 00 00 00 00 00 00 00  # reserved
            ",
        ),
        (
            Message::Level(PriceLevel {
                instrument: INSTRUMENT,
                ts_ns: TS,
                side: Side::Sell,
                price: PRICE,
                qty_total: QtyLots(0x1234),
                order_count: 3,
                position: 1,
            }),
            "
            4c 53 00 00 07 01 00 00  # 'L', side 'S', reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            c8 55 0f 00 00 00 00 00  # price
            34 12 00 00 00 00 00 00  # qty_total 0x1234
            03 00 00 00 01 00 00 00  # order_count 3, position 1, reserved
            ",
        ),
        (
            Message::Bbo(BestBidOffer {
                instrument: INSTRUMENT,
                ts_ns: TS,
                bid_price: Some(PRICE),
                bid_qty: QtyLots(250),
                ask_price: None,
                ask_qty: QtyLots(0),
                bid_orders: 2,
                ask_orders: 0,
            }),
            "
            51 00 00 00 07 01 00 00  # 'Q', side 0, reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            c8 55 0f 00 00 00 00 00  # bid price
            fa 00 00 00 00 00 00 00  # bid qty 250
            00 00 00 00 00 00 00 80  # ask price: none (i64::MIN)
            00 00 00 00 00 00 00 00  # ask qty 0
            02 00 00 00 00 00 00 00  # bid orders 2, ask orders 0
            ",
        ),
        (
            Message::Stats(Statistics {
                instrument: INSTRUMENT,
                ts_ns: TS,
                open: Some(PriceTicks(100)),
                high: Some(PriceTicks(110)),
                low: Some(PriceTicks(-5)),
                last: None,
                volume: QtyLots(0x0102_0304_0506_0708),
                trade_count: 3,
                turnover: (1u128 << 64) + 42,
            }),
            "
            53 00 00 00 07 01 00 00  # 'S', side 0, reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            64 00 00 00 00 00 00 00  # open 100
            6e 00 00 00 00 00 00 00  # high 110
            fb ff ff ff ff ff ff ff  # low -5
            00 00 00 00 00 00 00 80  # last: none (i64::MIN)
            08 07 06 05 04 03 02 01  # volume
            03 00 00 00 00 00 00 00  # trade_count 3
            2a 00 00 00 00 00 00 00  # turnover 2^64 + 42 (u128), low half
            01 00 00 00 00 00 00 00  #   high half
            ",
        ),
        (
            Message::Checkpoint(Checkpoint {
                instrument: INSTRUMENT,
                ts_ns: TS,
                engine_seq: 100,
                book_hash: HASH,
                orders: 5,
                bid_levels: 2,
                ask_levels: 3,
            }),
            "
            43 00 00 00 07 01 00 00  # 'C', side 0, reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            64 00 00 00 00 00 00 00  # engine seq 100
            0d f0 fe ca ef be ad de  # book_hash
            05 00 00 00 02 00 00 00  # orders 5, bid levels 2
            03 00 00 00 00 00 00 00  # ask levels 3, reserved
            ",
        ),
        (
            Message::SnapshotBegin(SnapshotBegin {
                instrument: INSTRUMENT,
                ts_ns: TS,
                as_of_seq: 1000,
                orders: 5,
            }),
            "
            47 00 00 00 07 01 00 00  # 'G', side 0, reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            e8 03 00 00 00 00 00 00  # as_of_seq 1000
            05 00 00 00 00 00 00 00  # orders 5, reserved
            ",
        ),
        (
            Message::SnapshotEnd(SnapshotEnd {
                instrument: INSTRUMENT,
                ts_ns: TS,
                as_of_seq: 1000,
                book_hash: HASH,
            }),
            "
            5a 00 00 00 07 01 00 00  # 'Z', side 0, reserved, instrument
            11 12 13 14 15 16 17 18  # ts_ns
            e8 03 00 00 00 00 00 00  # as_of_seq 1000
            0d f0 fe ca ef be ad de  # book_hash
            ",
        ),
    ]
}

fn golden_message(msg_type: u8) -> (Message, Vec<u8>) {
    golden_messages()
        .into_iter()
        .find(|(m, _)| m.type_code() == msg_type)
        .map(|(m, text)| (m, hex(text)))
        .expect("a golden vector for every type")
}

const GOLDEN_HEARTBEAT: &str = "
    46 4d 01 00                    # magic \"FM\", version 1, flags 0
    44 41 59 31 20 20 20 20 20 20  # session \"DAY1\", space padded
    2a 00 00 00 00 00 00 00        # seq 42: the next message's number
    00 00                          # count 0: heartbeat
";

const GOLDEN_END_OF_SESSION: &str = "
    46 4d 01 00                    # magic, version, flags
    44 41 59 31 20 20 20 20 20 20  # session \"DAY1\"
    2a 00 00 00 00 00 00 00        # seq 42
    ff ff                          # count 0xFFFF: end of session
";

/// A status (seq 7) and a delete (seq 8).
const GOLDEN_TWO_MESSAGES: &str = "
    46 4d 01 00                    # magic, version, flags
    44 41 59 31 20 20 20 20 20 20  # session \"DAY1\"
    07 00 00 00 00 00 00 00        # seq 7 (first message)
    02 00                          # count 2
    18 00                          # length 24
    48 00 00 00 07 01 00 00        #   'H', side 0, reserved, instrument 263
    11 12 13 14 15 16 17 18        #   ts_ns
    02 00 00 00 00 00 00 00        #   status halted, reserved
    20 00                          # length 32
    44 42 00 00 07 01 00 00        #   'D', side 'B', reserved, instrument 263
    11 12 13 14 15 16 17 18        #   ts_ns
    41 42 0f 00 00 00 00 00        #   order_id 1000001
    02 01 00 00 00 00 00 00        #   qty 258
";

#[test]
fn constants_are_as_documented() {
    assert_eq!(VERSION, 1);
    assert_eq!(MAGIC, [0x46, 0x4d]);
    assert_eq!(PACKET_HEADER_BYTES, 24);
    assert_eq!(MESSAGE_BYTES_MAX, 80);
    assert_eq!(COUNT_END_OF_SESSION, 0xFFFF);
    for (code, len) in [
        (b'R', 56),
        (b'H', 24),
        (b'A', 40),
        (b'D', 32),
        (b'X', 40),
        (b'U', 40),
        (b'E', 64),
        (b'L', 40),
        (b'Q', 56),
        (b'S', 80),
        (b'C', 48),
        (b'G', 32),
        (b'Z', 32),
    ] {
        assert_eq!(message_len(code), Some(len), "size of {}", code as char);
    }
    assert_eq!(message_len(b'W'), None);
    assert_eq!(message_len(0), None);
    assert_eq!(AddOrder::TYPE, b'A');
    assert_eq!(Statistics::BYTES, 80);
}

#[test]
fn golden_message_bytes() {
    let golden = golden_messages();
    let mut types: Vec<u8> = golden.iter().map(|(m, _)| m.type_code()).collect();
    types.sort_unstable();
    let mut all = MESSAGE_TYPES.to_vec();
    all.sort_unstable();
    assert_eq!(types, all, "one golden vector per message type");
    for (msg, text) in golden {
        let expected = hex(text);
        assert_eq!(expected.len(), msg.len(), "golden size of {msg:?}");
        assert_eq!(message_len(msg.type_code()), Some(msg.len()));
        assert_eq!(encode(&msg), expected, "encoding of {msg:?}");
        assert_eq!(decode_message(&expected), Ok(msg), "decoding of {msg:?}");
        assert_eq!(msg.instrument(), INSTRUMENT);
        assert_eq!(msg.ts_ns(), TS);
    }
}

#[test]
fn golden_heartbeat_and_end_of_session() {
    let mut out = [0xEE; PACKET_HEADER_BYTES];
    encode_heartbeat(session(), 42, &mut out);
    assert_eq!(out.to_vec(), hex(GOLDEN_HEARTBEAT));
    let p = parse_packet(&out).expect("heartbeat parses");
    assert_eq!(
        (p.session, p.seq, p.kind, p.count),
        (session(), 42, PacketKind::Heartbeat, 0)
    );
    assert_eq!(p.messages().count(), 0);

    encode_end_of_session(session(), 42, &mut out);
    assert_eq!(out.to_vec(), hex(GOLDEN_END_OF_SESSION));
    let p = parse_packet(&out).expect("end of session parses");
    assert_eq!(
        (p.seq, p.kind, p.count),
        (42, PacketKind::EndOfSession, COUNT_END_OF_SESSION)
    );
    assert_eq!(p.messages().count(), 0);
}

#[test]
fn golden_two_message_packet() {
    let expected = hex(GOLDEN_TWO_MESSAGES);
    let (status, _) = golden_message(b'H');
    let (delete, _) = golden_message(b'D');
    let mut b = PacketBuilder::new(session(), 1400);
    b.start(7);
    assert!(b.push(&status));
    assert!(b.push(&delete));
    assert_eq!(b.bytes(), &expected[..]);
    assert_eq!((b.first_seq(), b.next_seq(), b.count()), (7, 9, 2));

    let p = parse_packet(&expected).expect("golden packet parses");
    assert_eq!(
        (p.session, p.seq, p.kind, p.count),
        (session(), 7, PacketKind::Messages, 2)
    );
    assert_eq!(p.body(), &expected[PACKET_HEADER_BYTES..]);
    let messages: Vec<_> = p.messages().collect();
    assert_eq!(messages, vec![(7, status), (8, delete)]);
}

#[test]
fn golden_request_frames() {
    let cases = [
        (
            Request::Retransmit {
                session: session(),
                from_seq: 42,
                count: 100,
            },
            "
            17 00                          # frame length 23
            72                             # 'r'
            44 41 59 31 20 20 20 20 20 20  # session \"DAY1\"
            2a 00 00 00 00 00 00 00        # from_seq 42
            64 00 00 00                    # count 100
            ",
        ),
        (
            Request::Snapshot {
                session: session(),
                instrument: None,
            },
            "
            0f 00                          # frame length 15
            73                             # 's'
            44 41 59 31 20 20 20 20 20 20  # session
            ff ff ff ff                    # instrument: all
            ",
        ),
        (
            Request::Snapshot {
                session: session(),
                instrument: Some(INSTRUMENT),
            },
            "
            0f 00                          # frame length 15
            73                             # 's'
            44 41 59 31 20 20 20 20 20 20  # session
            07 01 00 00                    # instrument 263
            ",
        ),
    ];
    for (req, text) in cases {
        let expected = hex(text);
        let mut out = vec![0xAB]; // encode_request appends
        encode_request(&req, &mut out);
        assert_eq!(out[1..], expected[..], "encoding of {req:?}");
        assert_eq!(
            decode_request(&expected[2..]),
            Ok(req),
            "decoding of {req:?}"
        );
    }
}

#[test]
fn golden_reply_frames() {
    let mut out = Vec::new();
    encode_reply_end(&mut out);
    assert_eq!(out, hex("01 00  65  # length 1, 'e'"));
    assert_eq!(decode_reply(&out[2..]), Ok(Reply::End));

    let mut out = Vec::new();
    encode_reply_reject(RejectReason::RangeNotAvailable, "too old", &mut out);
    let expected = hex("
        09 00                 # length 9
        6a 02                 # 'j', code 2 (range not available)
        74 6f 6f 20 6f 6c 64  # \"too old\"
    ");
    assert_eq!(out, expected);
    assert_eq!(
        decode_reply(&out[2..]),
        Ok(Reply::Reject {
            reason: RejectReason::RangeNotAvailable,
            text: "too old"
        })
    );

    let mut out = Vec::new();
    let heartbeat = hex(GOLDEN_HEARTBEAT);
    encode_reply_packet(&heartbeat, &mut out);
    let mut expected = hex("18 00  # length 24");
    expected.extend_from_slice(&heartbeat);
    assert_eq!(out, expected);
    assert_eq!(
        decode_reply(&out[2..]),
        Ok(Reply::Packet(parse_packet(&heartbeat).expect("parses")))
    );
}

#[test]
fn reject_text_is_made_printable_ascii_and_cut_to_fit() {
    let mut out = Vec::new();
    encode_reply_reject(RejectReason::Malformed, "größe\n\u{1F600}ok", &mut out);
    assert_eq!(&out[..4], &[11, 0, b'j', 4]); // 9 characters after 'j' and the code
    assert_eq!(
        decode_reply(&out[2..]),
        Ok(Reply::Reject {
            reason: RejectReason::Malformed,
            text: "gr??e??ok"
        })
    );

    let long = "x".repeat(70_000);
    let mut out = Vec::new();
    encode_reply_reject(RejectReason::SlowConsumer, &long, &mut out);
    assert_eq!(out.len(), 2 + FRAME_PAYLOAD_MAX);
    let Ok(Reply::Reject { text, .. }) = decode_reply(&out[2..]) else {
        panic!("a cut reject decodes");
    };
    assert_eq!(text.len(), REJECT_TEXT_MAX);
}

#[test]
fn session_ids() {
    let s = SessionId::new("20260513A").expect("valid");
    assert_eq!(s.0, *b"20260513A ");
    assert_eq!(s.as_str(), "20260513A");
    assert_eq!(s.to_string(), "20260513A");
    assert_eq!(
        "ABCDEFGHIJ".parse::<SessionId>().map(|s| s.0),
        Ok(*b"ABCDEFGHIJ")
    );
    assert_eq!(SessionId::new(""), Err(FeedError::Session { offset: 0 }));
    assert_eq!(
        SessionId::new("ABCDEFGHIJK"),
        Err(FeedError::Session { offset: 10 })
    );
    assert_eq!(SessionId::new("A B"), Err(FeedError::Session { offset: 1 }));
    assert_eq!(SessionId::new("é"), Err(FeedError::Session { offset: 0 }));
    assert_eq!(SessionId([0xFF; 10]).as_str(), "");
}

#[test]
fn symbols() {
    assert_eq!(Directory::symbol_bytes("ESZ6"), Ok(*b"ESZ6            "));
    assert_eq!(Directory::symbol_bytes("BRK B"), Ok(*b"BRK B           "));
    assert_eq!(
        Directory::symbol_bytes("ABCDEFGHIJKLMNOPQ"),
        Err(FeedError::Symbol { offset: 16 })
    );
    assert_eq!(
        Directory::symbol_bytes(""),
        Err(FeedError::Symbol { offset: 0 })
    );
    assert_eq!(
        Directory::symbol_bytes(" X"),
        Err(FeedError::Symbol { offset: 0 })
    );
    assert_eq!(
        Directory::symbol_bytes("Xé"),
        Err(FeedError::Symbol { offset: 1 })
    );
    let (Message::Directory(d), _) = golden_message(b'R') else {
        panic!("golden R is a directory");
    };
    assert_eq!(d.symbol_str(), "ESZ6");
}

#[test]
fn reject_reasons_round_trip() {
    for v in 0..=u8::MAX {
        if let Some(r) = RejectReason::from_u8(v) {
            assert_eq!(r.as_u8(), v);
        }
    }
    assert_eq!(RejectReason::ALL.len(), 6);
    for (i, r) in RejectReason::ALL.iter().enumerate() {
        assert_eq!(usize::from(r.as_u8()), i + 1);
    }
    assert_eq!(RejectReason::from_u8(0), None);
    assert_eq!(RejectReason::from_u8(7), None);
}

// ---------------------------------------------------------------------------------------------
// Seeded round trips

fn gen_below(g: &mut Gen, n: u64) -> u64 {
    u64::arbitrary(g) % n
}

fn gen_side(g: &mut Gen) -> Side {
    *g.choose(&[Side::Buy, Side::Sell]).expect("non-empty")
}

fn gen_price(g: &mut Gen) -> PriceTicks {
    PriceTicks(i64::arbitrary(g))
}

/// `None` often, and never `Some(i64::MIN)`, which the wire cannot tell from `None`.
fn gen_price_opt(g: &mut Gen) -> Option<PriceTicks> {
    match i64::arbitrary(g) {
        i64::MIN => None,
        _ if bool::arbitrary(g) => None,
        p => Some(PriceTicks(p)),
    }
}

fn gen_qty(g: &mut Gen) -> QtyLots {
    QtyLots(u64::arbitrary(g))
}

fn gen_session(g: &mut Gen) -> SessionId {
    let len = 1 + gen_below(g, 10) as usize;
    let name: String = (0..len)
        .map(|_| char::from(b'!' + gen_below(g, 94) as u8))
        .collect();
    SessionId::new(&name).expect("graphic ASCII of 1..=10")
}

fn gen_symbol(g: &mut Gen) -> [u8; 16] {
    let len = 1 + gen_below(g, 16) as usize;
    let mut symbol = [b' '; 16];
    symbol[0] = b'!' + gen_below(g, 94) as u8;
    for b in &mut symbol[1..len] {
        *b = b' ' + gen_below(g, 95) as u8;
    }
    symbol
}

fn gen_message(g: &mut Gen) -> Message {
    let instrument = InstrumentId(u32::arbitrary(g));
    let ts_ns = u64::arbitrary(g);
    match *g.choose(&MESSAGE_TYPES).expect("non-empty") {
        b'R' => Message::Directory(Directory {
            instrument,
            ts_ns,
            symbol: gen_symbol(g),
            price_decimals: u8::arbitrary(g),
            qty_decimals: u8::arbitrary(g),
            tick_size: gen_price(g),
            lot_size: gen_qty(g),
        }),
        b'H' => Message::Status(Status {
            instrument,
            ts_ns,
            status: *g
                .choose(&[InstrumentStatus::Open, InstrumentStatus::Halted])
                .expect("non-empty"),
        }),
        b'A' => Message::Add(AddOrder {
            instrument,
            ts_ns,
            side: gen_side(g),
            order_id: OrderId(u64::arbitrary(g)),
            price: gen_price(g),
            qty: gen_qty(g),
        }),
        b'D' => Message::Delete(DeleteOrder {
            instrument,
            ts_ns,
            side: gen_side(g),
            order_id: OrderId(u64::arbitrary(g)),
            qty: gen_qty(g),
        }),
        b'X' => Message::Reduce(ReduceOrder {
            instrument,
            ts_ns,
            side: gen_side(g),
            order_id: OrderId(u64::arbitrary(g)),
            qty_reduced: gen_qty(g),
            qty_open: gen_qty(g),
        }),
        b'U' => Message::Modify(ModifyOrder {
            instrument,
            ts_ns,
            side: gen_side(g),
            order_id: OrderId(u64::arbitrary(g)),
            price: gen_price(g),
            qty_open: gen_qty(g),
        }),
        b'E' => Message::Executed(OrderExecuted {
            instrument,
            ts_ns,
            aggressor_side: gen_side(g),
            trade_id: TradeId(u64::arbitrary(g)),
            maker_order_id: OrderId(u64::arbitrary(g)),
            price: gen_price(g),
            qty: gen_qty(g),
            maker_qty_open: gen_qty(g),
        }),
        b'L' => Message::Level(PriceLevel {
            instrument,
            ts_ns,
            side: gen_side(g),
            price: gen_price(g),
            qty_total: gen_qty(g),
            order_count: u32::arbitrary(g),
            position: u8::arbitrary(g),
        }),
        b'Q' => Message::Bbo(BestBidOffer {
            instrument,
            ts_ns,
            bid_price: gen_price_opt(g),
            bid_qty: gen_qty(g),
            ask_price: gen_price_opt(g),
            ask_qty: gen_qty(g),
            bid_orders: u32::arbitrary(g),
            ask_orders: u32::arbitrary(g),
        }),
        b'S' => Message::Stats(Statistics {
            instrument,
            ts_ns,
            open: gen_price_opt(g),
            high: gen_price_opt(g),
            low: gen_price_opt(g),
            last: gen_price_opt(g),
            volume: gen_qty(g),
            trade_count: u64::arbitrary(g),
            turnover: u128::arbitrary(g),
        }),
        b'C' => Message::Checkpoint(Checkpoint {
            instrument,
            ts_ns,
            engine_seq: u64::arbitrary(g),
            book_hash: u64::arbitrary(g),
            orders: u32::arbitrary(g),
            bid_levels: u32::arbitrary(g),
            ask_levels: u32::arbitrary(g),
        }),
        b'G' => Message::SnapshotBegin(SnapshotBegin {
            instrument,
            ts_ns,
            as_of_seq: u64::arbitrary(g),
            orders: u32::arbitrary(g),
        }),
        b'Z' => Message::SnapshotEnd(SnapshotEnd {
            instrument,
            ts_ns,
            as_of_seq: u64::arbitrary(g),
            book_hash: u64::arbitrary(g),
        }),
        other => unreachable!("type {other} is not in MESSAGE_TYPES"),
    }
}

#[derive(Clone, Debug)]
struct Msg(Message);

impl Arbitrary for Msg {
    fn arbitrary(g: &mut Gen) -> Msg {
        Msg(gen_message(g))
    }
}

/// Everything needed to build a stream of packets.
#[derive(Clone, Debug)]
struct Stream {
    session: SessionId,
    first_seq: u64,
    snapshot: bool,
    max_bytes: usize,
    messages: Vec<Message>,
}

impl Arbitrary for Stream {
    fn arbitrary(g: &mut Gen) -> Stream {
        let snapshot = gen_below(g, 4) == 0;
        Stream {
            session: gen_session(g),
            first_seq: if snapshot {
                0
            } else {
                1 + gen_below(g, 1 << 40)
            },
            snapshot,
            // Mostly small packets, so that a stream spans several; sometimes below the
            // minimum, to exercise the clamp.
            max_bytes: gen_below(g, 600) as usize,
            messages: Vec::<Msg>::arbitrary(g).into_iter().map(|m| m.0).collect(),
        }
    }
}

#[derive(Clone, Debug)]
struct Req(Request);

impl Arbitrary for Req {
    fn arbitrary(g: &mut Gen) -> Req {
        let session = gen_session(g);
        Req(if bool::arbitrary(g) {
            Request::Retransmit {
                session,
                from_seq: u64::arbitrary(g),
                count: u32::arbitrary(g),
            }
        } else {
            Request::Snapshot {
                session,
                instrument: match u32::arbitrary(g) {
                    u32::MAX => None,
                    _ if bool::arbitrary(g) => None,
                    id => Some(InstrumentId(id)),
                },
            }
        })
    }
}

/// A reply to encode; packets are built from generated messages.
#[derive(Clone, Debug)]
enum ReplyCase {
    Packet(SessionId, u64, Vec<Message>),
    End,
    Reject(RejectReason, String),
}

impl Arbitrary for ReplyCase {
    fn arbitrary(g: &mut Gen) -> ReplyCase {
        match gen_below(g, 3) {
            0 => ReplyCase::Packet(
                gen_session(g),
                gen_below(g, 1 << 40),
                (0..gen_below(g, 20)).map(|_| gen_message(g)).collect(),
            ),
            1 => ReplyCase::End,
            _ => ReplyCase::Reject(
                *g.choose(&RejectReason::ALL).expect("non-empty"),
                String::arbitrary(g),
            ),
        }
    }
}

#[test]
fn messages_round_trip() {
    fn prop(msg: Msg) -> bool {
        let bytes = encode(&msg.0);
        decode_message(&bytes) == Ok(msg.0)
    }
    quickcheck("messages_round_trip", 20_000).quickcheck(prop as fn(Msg) -> bool);
}

/// Builds `stream` into packets the way a publisher does: fill a packet until the next message
/// does not fit, send it, start the next at `next_seq`.
fn build_packets(stream: &Stream) -> Vec<Vec<u8>> {
    let mut b = PacketBuilder::new(stream.session, stream.max_bytes);
    let next = |b: &PacketBuilder| if stream.snapshot { 0 } else { b.next_seq() };
    b.start(stream.first_seq);
    let mut packets = Vec::new();
    for m in &stream.messages {
        if !b.push(m) {
            assert!(!b.is_empty(), "every message fits an empty packet");
            assert!(
                b.bytes().len() + 2 + m.len() > b.max_bytes(),
                "push refused a message that fits"
            );
            packets.push(b.bytes().to_vec());
            let seq = next(&b);
            b.start(seq);
            assert!(b.push(m), "every message fits an empty packet");
        }
    }
    if !b.is_empty() {
        packets.push(b.bytes().to_vec());
    }
    packets
}

#[test]
fn packets_round_trip() {
    fn prop(stream: Stream) -> bool {
        let max = stream.max_bytes.clamp(106, 65_535);
        let mut seq = stream.first_seq;
        let mut decoded = Vec::new();
        for bytes in build_packets(&stream) {
            assert!(bytes.len() <= max, "{} > {max}", bytes.len());
            let p = parse_packet(&bytes).expect("a built packet parses");
            assert_eq!(p.session, stream.session);
            assert_eq!(p.kind, PacketKind::Messages);
            assert_eq!(p.seq, seq);
            assert_eq!(reencode_packet(&p), bytes);
            for (s, m) in p.messages() {
                assert_eq!(s, seq, "message sequence numbers");
                if !stream.snapshot {
                    seq += 1;
                }
                decoded.push(m);
            }
        }
        decoded == stream.messages
    }
    quickcheck("packets_round_trip", 2_000).quickcheck(prop as fn(Stream) -> bool);
}

#[test]
fn requests_round_trip() {
    fn prop(req: Req) -> bool {
        let mut out = Vec::new();
        encode_request(&req.0, &mut out);
        usize::from(u16::from_le_bytes([out[0], out[1]])) == out.len() - 2
            && decode_request(&out[2..]) == Ok(req.0)
    }
    quickcheck("requests_round_trip", 5_000).quickcheck(prop as fn(Req) -> bool);
}

#[test]
fn replies_round_trip() {
    fn prop(case: ReplyCase) -> bool {
        let mut out = Vec::new();
        match &case {
            ReplyCase::Packet(session, seq, messages) => {
                let mut b = PacketBuilder::new(*session, PACKET_BYTES_MAX);
                b.start(*seq);
                for m in messages {
                    assert!(b.push(m));
                }
                encode_reply_packet(b.bytes(), &mut out);
            }
            ReplyCase::End => encode_reply_end(&mut out),
            ReplyCase::Reject(reason, text) => encode_reply_reject(*reason, text, &mut out),
        }
        assert_eq!(
            usize::from(u16::from_le_bytes([out[0], out[1]])),
            out.len() - 2
        );
        let reply = decode_reply(&out[2..]).expect("an encoded reply decodes");
        assert_eq!(reencode_reply(&reply), out, "canonical");
        match (&case, reply) {
            (ReplyCase::Packet(session, seq, messages), Reply::Packet(p)) => {
                let got: Vec<Message> = p.messages().map(|(_, m)| m).collect();
                p.session == *session
                    && p.seq == *seq
                    && got == *messages
                    && p.kind
                        == if messages.is_empty() {
                            PacketKind::Heartbeat
                        } else {
                            PacketKind::Messages
                        }
            }
            (ReplyCase::End, Reply::End) => true,
            (ReplyCase::Reject(reason, text), Reply::Reject { reason: r, text: t }) => {
                let expected: String = text
                    .chars()
                    .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
                    .collect();
                r == *reason && t == expected
            }
            _ => false,
        }
    }
    quickcheck("replies_round_trip", 3_000).quickcheck(prop as fn(ReplyCase) -> bool);
}

// ---------------------------------------------------------------------------------------------
// Rejections: one test per error variant, with the exact error

fn golden_two() -> Vec<u8> {
    hex(GOLDEN_TWO_MESSAGES)
}

/// Offset of the first message (the status) in the golden two-message packet.
const FIRST: usize = PACKET_HEADER_BYTES + 2;
/// Offset of the second message (the delete).
const SECOND: usize = FIRST + 24 + 2;

#[test]
fn rejects_truncated() {
    let heartbeat = hex(GOLDEN_HEARTBEAT);
    assert_eq!(
        parse_packet(&heartbeat[..23]),
        Err(FeedError::Truncated { need: 24, have: 23 })
    );
    assert_eq!(
        parse_packet(&[]),
        Err(FeedError::Truncated { need: 24, have: 0 })
    );
    let two = golden_two();
    // One byte of the first block's length prefix.
    assert_eq!(
        parse_packet(&two[..25]),
        Err(FeedError::Truncated { need: 26, have: 25 })
    );
    // The length prefix but no type byte.
    assert_eq!(
        parse_packet(&two[..26]),
        Err(FeedError::Truncated { need: 27, have: 26 })
    );
    // Part of the second message.
    assert_eq!(
        parse_packet(&two[..SECOND + 10]),
        Err(FeedError::Truncated {
            need: SECOND + 32,
            have: SECOND + 10
        })
    );
    assert_eq!(
        decode_message(&[]),
        Err(FeedError::Truncated { need: 1, have: 0 })
    );
    assert_eq!(
        decode_request(&[]),
        Err(FeedError::Truncated { need: 1, have: 0 })
    );
    assert_eq!(
        decode_request(b"rDAY1"),
        Err(FeedError::Truncated { need: 23, have: 5 })
    );
    assert_eq!(
        decode_request(b"sDAY1      "),
        Err(FeedError::Truncated { need: 15, have: 11 })
    );
    assert_eq!(
        decode_reply(&[]),
        Err(FeedError::Truncated { need: 1, have: 0 })
    );
    assert_eq!(
        decode_reply(b"j"),
        Err(FeedError::Truncated { need: 2, have: 1 })
    );
    assert_eq!(
        decode_reply(b"FM"),
        Err(FeedError::Truncated { need: 24, have: 2 })
    );
}

#[test]
fn rejects_too_long() {
    let big = vec![0u8; 65_536];
    assert_eq!(
        parse_packet(&big),
        Err(FeedError::TooLong {
            len: 65_536,
            max: 65_535
        })
    );
    assert_eq!(
        decode_reply(&big),
        Err(FeedError::TooLong {
            len: 65_536,
            max: 65_535
        })
    );
}

#[test]
fn rejects_magic() {
    let mut p = golden_two();
    p[1] = b'X';
    assert_eq!(parse_packet(&p), Err(FeedError::Magic([b'F', b'X'])));
    p[0] = 0;
    assert_eq!(parse_packet(&p), Err(FeedError::Magic([0, b'X'])));
}

#[test]
fn rejects_version() {
    let mut p = golden_two();
    p[2] = 2;
    assert_eq!(parse_packet(&p), Err(FeedError::Version(2)));
    p[2] = 0;
    assert_eq!(parse_packet(&p), Err(FeedError::Version(0)));
}

#[test]
fn rejects_flags() {
    let mut p = golden_two();
    p[3] = 0x80;
    assert_eq!(parse_packet(&p), Err(FeedError::Flags(0x80)));
}

#[test]
fn rejects_session() {
    let cases: [(&[u8; 10], usize); 5] = [
        (b"          ", 4),    // empty
        (b" DAY1     ", 4),    // leading space
        (b"DA Y1     ", 7),    // the 'Y' after the first space    // space inside
        (b"DAY1     \0", 13),  // padding with a NUL
        (b"DAY\xff      ", 7), // not ASCII
    ];
    for (bad, offset) in cases {
        let mut p = golden_two();
        p[4..14].copy_from_slice(bad);
        assert_eq!(
            parse_packet(&p),
            Err(FeedError::Session { offset }),
            "{bad:?}"
        );

        let mut req = b"r".to_vec();
        req.extend_from_slice(bad);
        req.extend_from_slice(&[0; 12]);
        assert_eq!(
            decode_request(&req),
            Err(FeedError::Session { offset: offset - 3 }),
            "{bad:?}"
        );
    }
}

#[test]
fn rejects_seq_overflow() {
    let mut p = golden_two();
    p[14..22].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::SeqOverflow {
            seq: u64::MAX - 1,
            count: 2
        })
    );
    // Exactly reaching u64::MAX as the next sequence number is fine.
    p[14..22].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
    assert!(parse_packet(&p).is_ok());
}

#[test]
fn rejects_count() {
    let mut p = golden_two();
    p[22] = 3;
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::Count {
            declared: 3,
            found: 2
        })
    );
    let p = golden_two();
    assert_eq!(
        parse_packet(&p[..SECOND - 2]),
        Err(FeedError::Count {
            declared: 2,
            found: 1
        })
    );
}

#[test]
fn rejects_trailing_bytes() {
    let mut p = golden_two();
    p.push(0);
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::TrailingBytes {
            offset: SECOND + 32
        })
    );
    let mut p = golden_two();
    p[22] = 1;
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::TrailingBytes { offset: SECOND - 2 })
    );
    let mut p = hex(GOLDEN_HEARTBEAT);
    p.push(0);
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::TrailingBytes { offset: 24 })
    );
    let mut p = hex(GOLDEN_END_OF_SESSION);
    p.extend_from_slice(&[0x18, 0]);
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::TrailingBytes { offset: 24 })
    );
    assert_eq!(
        decode_reply(b"ee"),
        Err(FeedError::TrailingBytes { offset: 1 })
    );
    let mut req = Vec::new();
    encode_request(
        &Request::Snapshot {
            session: session(),
            instrument: None,
        },
        &mut req,
    );
    req.push(0);
    assert_eq!(
        decode_request(&req[2..]),
        Err(FeedError::TrailingBytes { offset: 15 })
    );
}

#[test]
fn rejects_unknown_type() {
    let (_, mut bytes) = golden_message(b'A');
    bytes[0] = b'W';
    assert_eq!(decode_message(&bytes), Err(FeedError::UnknownType(b'W')));
    let mut p = golden_two();
    p[SECOND] = 0;
    assert_eq!(parse_packet(&p), Err(FeedError::UnknownType(0)));
}

#[test]
fn rejects_length() {
    let (_, bytes) = golden_message(b'A');
    assert_eq!(
        decode_message(&bytes[..39]),
        Err(FeedError::Length {
            msg_type: b'A',
            expected: 40,
            found: 39
        })
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        decode_message(&longer),
        Err(FeedError::Length {
            msg_type: b'A',
            expected: 40,
            found: 41
        })
    );
    // A block whose length prefix does not match its type, even where the bytes would be
    // there: the first block says 32 for a 24-byte status.
    let mut p = golden_two();
    p[FIRST - 2] = 32;
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::Length {
            msg_type: b'H',
            expected: 24,
            found: 32
        })
    );
    // A type byte flipped into another known type of another size.
    let mut p = golden_two();
    p[FIRST] = b'A';
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::Length {
            msg_type: b'A',
            expected: 40,
            found: 24
        })
    );
}

#[test]
fn rejects_side() {
    for (msg, text) in golden_messages() {
        let mut bytes = hex(text);
        let sided = bytes[1] != 0;
        let t = msg.type_code();
        let bad: &[u8] = if sided {
            // 0, and the protocol's own codes for Buy and Sell, and lower-case letters.
            &[0, 1, 2, b'b', b's', 0xFF]
        } else {
            &[b'B', b'S', 1]
        };
        for &value in bad {
            bytes[1] = value;
            assert_eq!(
                decode_message(&bytes),
                Err(FeedError::Side { msg_type: t, value }),
                "{msg:?}"
            );
        }
    }
    // Inside a packet.
    let mut p = golden_two();
    p[SECOND + 1] = 0;
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::Side {
            msg_type: b'D',
            value: 0
        })
    );
}

/// Every reserved byte of every message type, from FEED.md.
fn reserved_offsets(msg_type: u8) -> Vec<usize> {
    let body: Vec<usize> = match msg_type {
        b'R' => (34..40).collect(),
        b'H' => (17..24).collect(),
        b'E' => (56..64).collect(),
        b'L' => (37..40).collect(),
        b'C' => (44..48).collect(),
        b'G' => (28..32).collect(),
        _ => Vec::new(),
    };
    [2, 3].into_iter().chain(body).collect()
}

#[test]
fn rejects_reserved() {
    for (msg, text) in golden_messages() {
        let good = hex(text);
        for offset in reserved_offsets(msg.type_code()) {
            for value in [1, 0x80, 0xFF] {
                let mut bytes = good.clone();
                bytes[offset] = value;
                assert_eq!(
                    decode_message(&bytes),
                    Err(FeedError::Reserved { offset }),
                    "{msg:?} byte {offset}"
                );
            }
        }
    }
    // Inside a packet, the offset counts from the start of the packet.
    let mut p = golden_two();
    p[FIRST + 20] = 1;
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::Reserved { offset: FIRST + 20 })
    );
    let mut p = golden_two();
    p[SECOND + 3] = 1;
    assert_eq!(
        parse_packet(&p),
        Err(FeedError::Reserved { offset: SECOND + 3 })
    );
}

#[test]
fn rejects_status() {
    let (_, mut bytes) = golden_message(b'H');
    for value in [0, 3, 0xFF] {
        bytes[16] = value;
        assert_eq!(decode_message(&bytes), Err(FeedError::Status(value)));
    }
}

#[test]
fn rejects_symbol() {
    let (_, good) = golden_message(b'R');
    let cases: [(usize, u8, usize); 5] = [
        (16, b' ', 16),  // leading space (and so also an empty symbol)
        (20, 0, 20),     // NUL padding instead of spaces
        (21, 0x7F, 21),  // DEL
        (31, 0xC3, 31),  // not ASCII
        (17, b'\t', 17), // control character
    ];
    for (at, value, offset) in cases {
        let mut bytes = good.clone();
        bytes[at] = value;
        assert_eq!(decode_message(&bytes), Err(FeedError::Symbol { offset }));
    }
    let mut bytes = good.clone();
    bytes[16..32].copy_from_slice(&[b' '; 16]);
    assert_eq!(
        decode_message(&bytes),
        Err(FeedError::Symbol { offset: 16 })
    );
}

#[test]
fn rejects_request_type() {
    assert_eq!(decode_request(b"x"), Err(FeedError::RequestType(b'x')));
    assert_eq!(decode_request(b"R"), Err(FeedError::RequestType(b'R')));
}

#[test]
fn rejects_reply_type() {
    assert_eq!(decode_reply(b"E"), Err(FeedError::ReplyType(b'E')));
    assert_eq!(decode_reply(&[0]), Err(FeedError::ReplyType(0)));
}

#[test]
fn rejects_reject_reason() {
    assert_eq!(decode_reply(b"j\x00"), Err(FeedError::RejectReason(0)));
    assert_eq!(decode_reply(b"j\x07why"), Err(FeedError::RejectReason(7)));
}

#[test]
fn rejects_text() {
    assert_eq!(
        decode_reply(b"j\x02ab\ncd"),
        Err(FeedError::Text { offset: 4 })
    );
    assert_eq!(
        decode_reply(b"j\x02\xc3\xa9"),
        Err(FeedError::Text { offset: 2 })
    );
    assert_eq!(
        decode_reply(b"j\x02\x7f"),
        Err(FeedError::Text { offset: 2 })
    );
    assert_eq!(
        decode_reply(b"j\x02"),
        Ok(Reply::Reject {
            reason: RejectReason::RangeNotAvailable,
            text: ""
        })
    );
}

#[test]
fn errors_display_their_details() {
    assert_eq!(
        FeedError::Length {
            msg_type: b'A',
            expected: 40,
            found: 39
        }
        .to_string(),
        "message type 'A' is 40 bytes long, found 39"
    );
    assert_eq!(
        FeedError::Reserved { offset: 28 }.to_string(),
        "byte 28: reserved, must be zero"
    );
    assert_eq!(
        FeedError::Magic([0, 1]).to_string(),
        "magic is [00, 01], expected \"FM\" [46, 4d]"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input: never a panic, every error precise, every success canonical

/// Checks that `err`, returned for `input`, describes `input` truthfully.
fn check_error(err: FeedError, input: &[u8]) {
    let ok = match err {
        FeedError::Truncated { need, have } => have == input.len() && need > have,
        FeedError::TooLong { len, max } => len == input.len() && len > max,
        FeedError::Magic(m) => input[..2] == m && m != MAGIC,
        FeedError::Version(v) => input[2] == v && v != VERSION,
        FeedError::Flags(f) => input[3] == f && f != 0,
        FeedError::Session { offset } => offset < input.len(),
        FeedError::SeqOverflow { seq, count } => seq.checked_add(u64::from(count)).is_none(),
        FeedError::Count { declared, found } => found < usize::from(declared),
        FeedError::TrailingBytes { offset } => offset < input.len(),
        FeedError::UnknownType(t) => message_len(t).is_none() && input.contains(&t),
        FeedError::Length {
            msg_type,
            expected,
            found,
        } => message_len(msg_type) == Some(expected) && expected != found,
        FeedError::Side { msg_type, value } => {
            message_len(msg_type).is_some() && input.contains(&value)
        }
        FeedError::Reserved { offset } => input.get(offset).is_some_and(|&b| b != 0),
        FeedError::Status(v) => InstrumentStatus::from_u8(v).is_none(),
        FeedError::Symbol { offset } => input
            .get(offset)
            .is_some_and(|&b| !(b'!'..=b'~').contains(&b)),
        FeedError::RequestType(t) => input[0] == t,
        FeedError::ReplyType(t) => input[0] == t,
        FeedError::RejectReason(c) => input[1] == c && RejectReason::from_u8(c).is_none(),
        FeedError::Text { offset } => input
            .get(offset)
            .is_some_and(|&b| !(b' '..=b'~').contains(&b)),
    };
    assert!(ok, "{err:?} does not describe {input:02x?}");
}

/// Runs every decoder on `input`: errors must be truthful and successes must re-encode to
/// exactly `input`.
fn check_input(input: &[u8]) {
    match decode_message(input) {
        Ok(m) => assert_eq!(encode(&m), input, "message {m:?}"),
        Err(e) => check_error(e, input),
    }
    match parse_packet(input) {
        Ok(p) => {
            assert_eq!(reencode_packet(&p), input, "packet {p:?}");
            let n = p.messages().count();
            if p.kind == PacketKind::Messages {
                assert_eq!(n, usize::from(p.count));
            }
        }
        Err(e) => check_error(e, input),
    }
    match decode_request(input) {
        Ok(r) => {
            let mut out = Vec::new();
            encode_request(&r, &mut out);
            assert_eq!(&out[2..], input, "request {r:?}");
        }
        Err(e) => check_error(e, input),
    }
    match decode_reply(input) {
        Ok(r) => assert_eq!(&reencode_reply(&r)[2..], input, "reply {r:?}"),
        Err(e) => check_error(e, input),
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(seed("random_bytes_never_panic"));
    let heartbeat = hex(GOLDEN_HEARTBEAT);
    let golden: Vec<Vec<u8>> = golden_messages().iter().map(|(_, t)| hex(t)).collect();
    for _ in 0..200_000 {
        let len = rng.below(160) as usize;
        let mut input: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Random bytes almost never get past the first check; giving some inputs a valid
        // packet header, message header or frame type reaches the deeper checks too.
        match rng.below(6) {
            0 if len >= 24 => {
                input[..24].copy_from_slice(&heartbeat);
                input[22] = rng.below(4) as u8;
                input[23] = 0;
            }
            1 if len >= 1 => {
                let g = &golden[rng.below(golden.len() as u64) as usize];
                let n = g.len().min(len);
                input[..n].copy_from_slice(&g[..n]);
                input[rng.below(len as u64) as usize] = rng.byte();
            }
            2 if len >= 1 => input[0] = *b"rsjeFA".get(rng.below(6) as usize).unwrap_or(&0),
            _ => {}
        }
        check_input(&input);
    }
}

/// A packet holding one golden message of every type.
fn all_types_packet() -> Vec<u8> {
    let mut b = PacketBuilder::new(session(), PACKET_BYTES_MAX);
    b.start(1_000);
    for (m, _) in golden_messages() {
        assert!(b.push(&m));
    }
    b.bytes().to_vec()
}

#[test]
fn mutated_packets_never_panic() {
    let mut rng = Rng::new(seed("mutated_packets_never_panic"));
    for valid in [
        golden_two(),
        all_types_packet(),
        hex(GOLDEN_HEARTBEAT),
        hex(GOLDEN_END_OF_SESSION),
    ] {
        assert!(parse_packet(&valid).is_ok());
        for i in 0..valid.len() {
            let mut values: Vec<u8> = (0..8).map(|bit| valid[i] ^ (1 << bit)).collect();
            values.extend([0, 0xFF, b' ', b'B', b'S', rng.byte(), rng.byte()]);
            for v in values {
                let mut p = valid.clone();
                p[i] = v;
                check_input(&p);
            }
        }
        // Every truncation and every extension by one byte.
        for n in 0..valid.len() {
            check_input(&valid[..n]);
        }
        for v in [0, 1, 0xFF] {
            let mut p = valid.clone();
            p.push(v);
            check_input(&p);
        }
    }
}

/// Byte roles in the golden two-message packet, so that a flip of a byte with a known role can
/// be checked for exactly the right outcome.
#[test]
fn flips_in_the_golden_packet_give_exact_errors() {
    let decoded = |p: &Packet<'_>| (p.session, p.messages().collect::<Vec<_>>());
    let valid = golden_two();
    let original = decoded(&parse_packet(&valid).expect("valid"));
    for i in 0..valid.len() {
        for bit in 0..8 {
            let mut p = valid.clone();
            p[i] ^= 1 << bit;
            let got = parse_packet(&p);
            let expected = match i {
                0 | 1 => Some(Err(FeedError::Magic([p[0], p[1]]))),
                2 => Some(Err(FeedError::Version(p[2]))),
                3 => Some(Err(FeedError::Flags(p[3]))),
                _ if (FIRST + 2..FIRST + 4).contains(&i)
                    || (FIRST + 17..FIRST + 24).contains(&i)
                    || (SECOND + 2..SECOND + 4).contains(&i) =>
                {
                    Some(Err(FeedError::Reserved { offset: i }))
                }
                _ => None,
            };
            match expected {
                Some(e) => assert_eq!(got.map(|_| ()), e, "byte {i} bit {bit}"),
                None => {
                    // Data bytes (seq, instrument, timestamp, order id, quantity) decode to a
                    // different value; a session byte may or may not still make a valid
                    // session; every other byte is structural and fails with a truthful error.
                    let data = (14..22).contains(&i)
                        || (FIRST + 4..FIRST + 16).contains(&i)
                        || (SECOND + 4..SECOND + 32).contains(&i);
                    match got {
                        Ok(packet) => {
                            assert!(
                                data || (4..14).contains(&i),
                                "byte {i} bit {bit} was accepted"
                            );
                            assert_eq!(reencode_packet(&packet), p);
                            assert_ne!(
                                decoded(&packet),
                                original,
                                "byte {i} bit {bit} changed nothing"
                            );
                        }
                        Err(e) => {
                            assert!(!data, "byte {i} bit {bit}: data byte refused with {e:?}");
                            check_error(e, &p);
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PacketBuilder

#[test]
fn builder_fills_up_and_refuses_without_corrupting() {
    let (add, _) = golden_message(b'A');
    let mut b = PacketBuilder::new(session(), 200);
    assert_eq!(b.max_bytes(), 200);
    b.start(10);
    // 24 + 4 × 42 = 192; a fifth block would make 234.
    for _ in 0..4 {
        assert!(b.push(&add));
    }
    let full = b.bytes().to_vec();
    assert_eq!(full.len(), 192);
    for (m, _) in golden_messages() {
        assert!(!b.push(&m), "{m:?} should not fit");
    }
    assert_eq!(b.bytes(), &full[..]);
    assert_eq!((b.count(), b.next_seq()), (4, 14));
    let p = parse_packet(b.bytes()).expect("parses");
    let seqs: Vec<u64> = p.messages().map(|(s, _)| s).collect();
    assert_eq!(seqs, [10, 11, 12, 13]);

    b.start(14);
    assert!(b.is_empty());
    assert_eq!(b.bytes().len(), PACKET_HEADER_BYTES);
    let mut heartbeat = [0; PACKET_HEADER_BYTES];
    encode_heartbeat(session(), 14, &mut heartbeat);
    assert_eq!(b.bytes(), &heartbeat[..], "an empty packet is a heartbeat");
}

#[test]
fn builder_clamps_max_bytes() {
    let min = PACKET_HEADER_BYTES + 2 + MESSAGE_BYTES_MAX;
    assert_eq!(PacketBuilder::new(session(), 0).max_bytes(), min);
    assert_eq!(
        PacketBuilder::new(session(), usize::MAX).max_bytes(),
        65_535
    );

    // The smallest builder takes any one message, and no second one of the largest size.
    let mut b = PacketBuilder::new(session(), 0);
    for (m, _) in golden_messages() {
        b.start(1);
        assert!(b.push(&m));
        if m.len() == MESSAGE_BYTES_MAX {
            assert!(!b.push(&m));
        }
    }

    // The largest fills up to its limit with the smallest message (24 bytes + 2).
    let (status, _) = golden_message(b'H');
    let mut b = PacketBuilder::new(session(), 1 << 20);
    b.start(1);
    while b.push(&status) {}
    assert_eq!(usize::from(b.count()), (65_535 - 24) / 26);
    assert!(b.bytes().len() <= 65_535);
    let p = parse_packet(b.bytes()).expect("parses");
    assert_eq!(p.messages().count(), usize::from(b.count()));
}

#[test]
fn builder_defaults_and_session() {
    let b = PacketBuilder::new(session(), 1400);
    assert_eq!(b.session(), session());
    assert_eq!((b.first_seq(), b.count(), b.next_seq()), (1, 0, 1));
    assert!(b.is_empty());
    let p = parse_packet(b.bytes()).expect("an empty builder holds a heartbeat");
    assert_eq!((p.kind, p.seq), (PacketKind::Heartbeat, 1));
}

#[test]
fn builder_refuses_a_sequence_overflow() {
    let (status, _) = golden_message(b'H');
    let mut b = PacketBuilder::new(session(), 1400);
    b.start(u64::MAX - 2);
    assert!(b.push(&status));
    assert!(b.push(&status));
    assert!(!b.push(&status), "the next sequence number would overflow");
    assert_eq!(b.next_seq(), u64::MAX);
    let p = parse_packet(b.bytes()).expect("parses");
    let seqs: Vec<u64> = p.messages().map(|(s, _)| s).collect();
    assert_eq!(seqs, [u64::MAX - 2, u64::MAX - 1]);
}

#[test]
fn snapshot_packets_carry_no_sequence_numbers() {
    let mut b = PacketBuilder::new(session(), 1400);
    b.start(0);
    for t in [b'G', b'R', b'H', b'S', b'A', b'Z'] {
        assert!(b.push(&golden_message(t).0));
    }
    let p = parse_packet(b.bytes()).expect("parses");
    assert_eq!(p.seq, 0);
    let seqs: Vec<u64> = p.messages().map(|(s, _)| s).collect();
    assert_eq!(seqs, [0; 6]);
}

#[test]
#[should_panic(expected = "too short")]
fn encode_into_a_short_buffer_panics() {
    let (msg, _) = golden_message(b'S');
    let mut out = [0; 79];
    msg.encode(&mut out);
}

// ---------------------------------------------------------------------------------------------
// FrameSplitter

/// A stream of frames of every kind, and their payloads.
fn frame_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut stream = Vec::new();
    encode_request(
        &Request::Retransmit {
            session: session(),
            from_seq: 42,
            count: 100,
        },
        &mut stream,
    );
    encode_request(
        &Request::Snapshot {
            session: session(),
            instrument: None,
        },
        &mut stream,
    );
    encode_reply_packet(&golden_two(), &mut stream);
    encode_reply_packet(&hex(GOLDEN_HEARTBEAT), &mut stream);
    stream.extend_from_slice(&[0, 0]); // an empty frame
    encode_reply_reject(RejectReason::WrongSession, "wrong session", &mut stream);
    encode_reply_end(&mut stream);

    let mut payloads = Vec::new();
    let mut rest = &stream[..];
    while let [a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*a, *b]));
        payloads.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    assert_eq!(payloads.len(), 7);
    (stream, payloads)
}

fn drain(splitter: &mut FrameSplitter, into: &mut Vec<Vec<u8>>) {
    while let Some(frame) = splitter.next_frame() {
        into.push(frame.to_vec());
    }
}

#[test]
fn frame_splitter_handles_every_split_point() {
    let (stream, payloads) = frame_stream();
    for k in 0..=stream.len() {
        let mut s = FrameSplitter::new();
        let mut got = Vec::new();
        s.push(&stream[..k]);
        drain(&mut s, &mut got);
        s.push(&stream[k..]);
        drain(&mut s, &mut got);
        assert_eq!(got, payloads, "split at {k}");
        assert_eq!(s.buffered(), 0);
    }
    // One byte at a time.
    let mut s = FrameSplitter::default();
    let mut got = Vec::new();
    for b in &stream {
        s.push(std::slice::from_ref(b));
        drain(&mut s, &mut got);
    }
    assert_eq!(got, payloads);
    assert_eq!(s.buffered(), 0);
}

#[test]
fn frame_splitter_handles_random_chunks_and_maximal_frames() {
    let mut rng = Rng::new(seed(
        "frame_splitter_handles_random_chunks_and_maximal_frames",
    ));
    let (small, mut payloads) = frame_stream();
    let mut stream = small.clone();
    let (status, _) = golden_message(b'H');
    let mut b = PacketBuilder::new(session(), 65_535);
    while b.push(&status) {}
    let big = b.bytes().to_vec();
    encode_reply_packet(&big, &mut stream);
    payloads.push(big);
    let mut reject = Vec::new();
    encode_reply_reject(RejectReason::Malformed, &"z".repeat(65_533), &mut reject);
    assert_eq!(reject.len(), 2 + 65_535);
    payloads.push(reject[2..].to_vec());
    stream.extend_from_slice(&reject);
    stream.extend_from_slice(&small);
    payloads.extend(frame_stream().1);

    for _ in 0..50 {
        let mut s = FrameSplitter::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(70_000) as usize).min(rest.len());
            s.push(&rest[..n]);
            rest = &rest[n..];
            drain(&mut s, &mut got);
            // Only an incomplete frame stays behind.
            assert!(s.buffered() < 2 + 65_535);
        }
        assert_eq!(got, payloads);
        assert_eq!(s.buffered(), 0);
    }
    for p in &payloads {
        if !p.is_empty() && p[0] != b'r' && p[0] != b's' {
            assert!(decode_reply(p).is_ok(), "{:?}", &p[..p.len().min(8)]);
        }
    }
}

#[test]
fn frame_splitter_waits_for_a_whole_frame() {
    let mut s = FrameSplitter::new();
    s.push(&[5]);
    assert_eq!(s.next_frame(), None);
    s.push(&[0, b'a', b'b']);
    assert_eq!(s.next_frame(), None);
    assert_eq!(s.buffered(), 4);
    s.push(b"cde");
    assert_eq!(s.next_frame(), Some(&b"abcde"[..]));
    assert_eq!(s.next_frame(), None);
    assert_eq!(s.buffered(), 0);
}

// ---------------------------------------------------------------------------------------------
// Fuzz seed corpus

/// The seed corpus of the `md_decode` fuzz target (`fuzz/corpus/md_decode/`) is meant to start
/// the fuzzer from valid input; this keeps it valid when the format changes. The packet holding
/// every type is also checked against the builder, so the corpus and the golden vectors agree.
#[test]
fn fuzz_seed_corpus_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/md_decode");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no seed corpus at {}; skipped", dir.display());
        return;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("readable directory").path();
        let bytes = std::fs::read(&path).expect("readable file");
        let valid = decode_message(&bytes).is_ok()
            || parse_packet(&bytes).is_ok()
            || decode_request(&bytes).is_ok()
            || decode_reply(&bytes).is_ok();
        assert!(valid, "{} decodes as nothing", path.display());
        check_input(&bytes);
        if path.ends_with("packet_all_types.bin") {
            assert_eq!(bytes, all_types_packet());
        }
        n += 1;
    }
    assert!(n >= 8, "only {n} seeds in {}", dir.display());
}
