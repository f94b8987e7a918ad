//! The messages the FIX codec benchmark and `examples/codec_cost.rs` measure, in one place so
//! that the nanoseconds and the instruction counts in BENCHMARKS.md describe the same bytes.

use ferrox_gateway::fix::{tags, Encoder};

/// 2026-11-22 21:59:26.123 UTC.
pub const NOW_NS: u64 = 1_795_384_766_123_000_000;

/// A NewOrderSingle as a typical client sends it: standard header, ClOrdID, account, symbol,
/// side, transact time, quantity, limit price, time in force.
pub fn new_order_single() -> Vec<u8> {
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
pub fn encode_execution_report(e: &mut Encoder, seq: u64) -> usize {
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
