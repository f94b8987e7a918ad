//! Feeds arbitrary bytes through the FIX receive path: framing, parsing and session validation.
//! Framing must never panic and must always make progress; whatever frames and parses must
//! re-encode, through the encoder, into a message that frames and parses to the same fields and
//! validates the same way, so that copying fields of a stored message (resends) is lossless.

#![no_main]

use ferrox_gateway::fix::dict::validate;
use ferrox_gateway::fix::{frame, Encoder, Framing, Parser};
use libfuzzer_sys::fuzz_target;

/// Small enough that inputs of a few KiB (run with -max_len=4096 or more) also reach the
/// too-large path.
const MSG_BYTES_MAX: usize = 2048;
const FIELDS_MAX: usize = 128;

fuzz_target!(|data: &[u8]| {
    let mut parser = Parser::new(FIELDS_MAX);
    let mut again = Parser::new(FIELDS_MAX);
    let mut encoder = Encoder::new(MSG_BYTES_MAX);
    let mut buf = data;
    loop {
        match frame(buf, MSG_BYTES_MAX) {
            Framing::Incomplete => break,
            Framing::Garbled { skip, .. } => {
                assert!(skip >= 1 && skip <= buf.len(), "skip {skip} of {}", buf.len());
                buf = &buf[skip..];
            }
            Framing::Message { len } => {
                assert!(len >= 1 && len <= buf.len() && len <= MSG_BYTES_MAX);
                let (raw, rest) = buf.split_at(len);
                buf = rest;
                let Ok(msg) = parser.parse(raw) else {
                    continue;
                };
                let verdict = validate(&msg);
                let n = msg.fields().len();

                encoder.begin(msg.msg_type());
                encoder.raw_fields(msg.raw_fields(3, n - 1));
                let copy = encoder.finish();
                assert_eq!(frame(copy, usize::MAX), Framing::Message { len: copy.len() });
                let copied = again.parse(copy).expect("a re-encoded message parses");
                assert_eq!(copied.fields().len(), n);
                // Fields from MsgType on are identical; 8, 9 and 10 are rewritten.
                for (a, b) in msg.fields()[2..n - 1].iter().zip(&copied.fields()[2..n - 1]) {
                    assert_eq!(a.tag, b.tag);
                    assert_eq!(msg.value(a), copied.value(b));
                }
                // An empty BeginString is the one header difference validation can see.
                if !msg.begin_string().is_empty() {
                    assert_eq!(validate(&copied), verdict);
                }
            }
        }
    }
});
