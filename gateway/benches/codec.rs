//! FIX codec micro-benchmarks: the per-message cost of the inbound path (frame + parse, then
//! session validation) and of encoding the two most frequent outbound messages.
//!
//! Run: `cargo bench -p ferrox-gateway --bench codec -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ferrox_gateway::fix::dict::validate;
use ferrox_gateway::fix::{frame, tags, Encoder, Framing, Parser};

/// 2026-11-22 21:59:26.123 UTC.
const NOW_NS: u64 = 1_795_384_766_123_000_000;

const MSG_BYTES_MAX: usize = 4096;

/// A NewOrderSingle as a typical client sends it: standard header, ClOrdID, account, symbol,
/// side, transact time, quantity, limit price, time in force.
fn new_order_single() -> Vec<u8> {
    let mut e = Encoder::new(512);
    e.begin(b"D");
    e.u64(tags::MSG_SEQ_NUM, 4711)
        .str(tags::SENDER_COMP_ID, b"CLIENT1")
        .timestamp(tags::SENDING_TIME, NOW_NS)
        .str(tags::TARGET_COMP_ID, b"FERROX")
        .str(tags::CL_ORD_ID, b"ORD-20261122-000042")
        .str(tags::ACCOUNT, b"7")
        .char(tags::HANDL_INST, b'1')
        .str(tags::SYMBOL, b"AAPL")
        .char(tags::SIDE, b'1')
        .timestamp(tags::TRANSACT_TIME, NOW_NS)
        .decimal(tags::ORDER_QTY, 100, 0)
        .char(tags::ORD_TYPE, b'2')
        .decimal(tags::PRICE, 19010, 2)
        .char(tags::TIME_IN_FORCE, b'0');
    e.finish().to_vec()
}

/// A partial fill: about 200 bytes of body in 24 fields.
fn encode_execution_report(e: &mut Encoder, seq: u64) -> usize {
    e.begin(b"8");
    e.u64(tags::MSG_SEQ_NUM, seq)
        .str(tags::SENDER_COMP_ID, b"FERROX")
        .timestamp(tags::SENDING_TIME, NOW_NS)
        .str(tags::TARGET_COMP_ID, b"CLIENT1")
        .str(tags::ACCOUNT, b"7")
        .decimal(tags::AVG_PX, 19010, 2)
        .str(tags::CL_ORD_ID, b"ORD-20261122-000042")
        .decimal(tags::CUM_QTY, 40, 0)
        .u64(tags::EXEC_ID, 9_000_001)
        .decimal(tags::LAST_PX, 19010, 2)
        .decimal(tags::LAST_QTY, 40, 0)
        .u64(tags::ORDER_ID, 1_000_042)
        .decimal(tags::ORDER_QTY, 100, 0)
        .char(tags::ORD_STATUS, b'1')
        .char(tags::ORD_TYPE, b'2')
        .decimal(tags::PRICE, 19010, 2)
        .char(tags::SIDE, b'1')
        .str(tags::SYMBOL, b"AAPL")
        .char(tags::TIME_IN_FORCE, b'0')
        .timestamp(tags::TRANSACT_TIME, NOW_NS)
        .char(tags::EXEC_TYPE, b'F')
        .decimal(tags::LEAVES_QTY, 60, 0);
    e.finish().len()
}

fn frame_parse(c: &mut Criterion) {
    let nos = new_order_single();
    let mut parser = Parser::new(64);
    c.benchmark_group("fix_frame_parse")
        .bench_function("new_order_single", |b| {
            b.iter(|| {
                let buf = black_box(&nos[..]);
                let Framing::Message { len } = frame(buf, MSG_BYTES_MAX) else {
                    panic!("the benchmark message frames");
                };
                let msg = parser.parse(&buf[..len]).expect("parses");
                black_box(msg.fields().len())
            })
        });
}

fn validate_nos(c: &mut Criterion) {
    let nos = new_order_single();
    let mut parser = Parser::new(64);
    let msg = parser.parse(&nos).expect("parses");
    assert_eq!(validate(&msg), Ok(()));
    c.benchmark_group("fix_validate")
        .bench_function("new_order_single", |b| b.iter(|| validate(black_box(&msg))));
}

fn encode(c: &mut Criterion) {
    let mut e = Encoder::new(512);
    let er_len = encode_execution_report(&mut e, 1);
    assert!(
        (200..300).contains(&er_len),
        "execution report is {er_len} bytes"
    );
    let mut group = c.benchmark_group("fix_encode");
    let mut seq = 0;
    group.bench_function("execution_report", |b| {
        b.iter(|| {
            seq += 1;
            encode_execution_report(&mut e, black_box(seq))
        })
    });
    group.bench_function("heartbeat", |b| {
        b.iter(|| {
            seq += 1;
            e.begin(b"0");
            e.u64(tags::MSG_SEQ_NUM, black_box(seq))
                .str(tags::SENDER_COMP_ID, b"FERROX")
                .timestamp(tags::SENDING_TIME, NOW_NS)
                .str(tags::TARGET_COMP_ID, b"CLIENT1");
            e.finish().len()
        })
    });
    group.finish();
}

criterion_group!(benches, frame_parse, validate_nos, encode);
criterion_main!(benches);
