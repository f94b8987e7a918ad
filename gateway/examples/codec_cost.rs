//! Runs one FIX codec operation N times, for counting instructions under valgrind, which
//! works where hardware counters do not (this project's CI and benchmark machines are VMs):
//!
//! ```text
//! cargo build --release -p ferrox-gateway --example codec_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/codec_cost parse 0
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/codec_cost parse 100000
//! ```
//!
//! (instructions of the second run − the first) / 100000 is the cost of one operation;
//! `benches/gateway-codec-instructions.sh` does exactly that for every operation.

use ferrox_gateway::fix::dict::validate;
use ferrox_gateway::fix::{frame, tags, Encoder, Framing, Parser};
use std::hint::black_box;

/// 2026-11-22 21:59:26.123 UTC.
const NOW_NS: u64 = 1_795_384_766_123_000_000;

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

fn execution_report(e: &mut Encoder, seq: u64) -> usize {
    e.begin(b"8");
    e.u64(tags::MSG_SEQ_NUM, seq)
        .str(tags::SENDER_COMP_ID, b"FERROX")
        .timestamp(tags::SENDING_TIME, NOW_NS)
        .str(tags::TARGET_COMP_ID, b"CLIENT1")
        .u64(tags::ORDER_ID, 1_000_042)
        .str(tags::CL_ORD_ID, b"ORD-20261122-000042")
        .str(tags::EXEC_ID, b"1000042-3")
        .char(tags::EXEC_TYPE, b'F')
        .char(tags::ORD_STATUS, b'1')
        .str(tags::ACCOUNT, b"7")
        .str(tags::SYMBOL, b"AAPL")
        .char(tags::SIDE, b'1')
        .decimal(tags::ORDER_QTY, 100, 0)
        .char(tags::ORD_TYPE, b'2')
        .decimal(tags::PRICE, 19010, 2)
        .char(tags::TIME_IN_FORCE, b'0')
        .decimal(tags::LAST_PX, 19010, 2)
        .decimal(tags::LAST_QTY, 40, 0)
        .decimal(tags::LEAVES_QTY, 60, 0)
        .decimal(tags::CUM_QTY, 40, 0)
        .decimal(tags::AVG_PX, 1_901_000_000, 6)
        .timestamp(tags::TRANSACT_TIME, NOW_NS);
    e.finish().len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let nos = new_order_single();
    let mut parser = Parser::new(64);
    let mut enc = Encoder::new(1024);
    let mut sink = 0usize;
    for i in 0..n {
        sink += match op.as_str() {
            "parse" => {
                let buf = black_box(&nos[..]);
                let Framing::Message { len } = frame(buf, 8192) else {
                    panic!("frames")
                };
                parser.parse(&buf[..len]).map_or(0, |m| m.fields().len())
            }
            "validate" => {
                let buf = black_box(&nos[..]);
                let m = parser.parse(buf).expect("parses");
                usize::from(validate(&m).is_ok())
            }
            "encode-er" => execution_report(&mut enc, black_box(i)),
            "encode-heartbeat" => {
                enc.begin(b"0");
                enc.u64(tags::MSG_SEQ_NUM, black_box(i))
                    .str(tags::SENDER_COMP_ID, b"FERROX")
                    .timestamp(tags::SENDING_TIME, NOW_NS)
                    .str(tags::TARGET_COMP_ID, b"CLIENT1");
                enc.finish().len()
            }
            other => {
                eprintln!(
                    "unknown operation {other:?}: parse, validate, encode-er, encode-heartbeat"
                );
                std::process::exit(2);
            }
        };
    }
    println!("{op} x{n}: {sink}");
}
