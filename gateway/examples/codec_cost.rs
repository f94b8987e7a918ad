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

#[path = "../benches/common/messages.rs"]
mod messages;
use messages::{encode_execution_report, new_order_single, NOW_NS};
use std::hint::black_box;

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
            "encode-er" => encode_execution_report(&mut enc, black_box(i)),
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
