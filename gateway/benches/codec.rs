//! FIX codec micro-benchmarks: the per-message cost of the inbound path (frame + parse, then
//! session validation) and of encoding the two most frequent outbound messages.
//!
//! Run: `cargo bench -p ferrox-gateway --bench codec -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ferrox_gateway::fix::dict::validate;
use ferrox_gateway::fix::{frame, tags, Encoder, Framing, Parser};

#[path = "common/messages.rs"]
mod messages;
use messages::{encode_execution_report, new_order_single, NOW_NS};

const MSG_BYTES_MAX: usize = 4096;

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
