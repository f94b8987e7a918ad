//! Decodes arbitrary bytes as an event record. Whatever decodes must re-encode to exactly the
//! input and decode again to the same value: the encoding is a bijection, so no two buffers
//! mean the same event and nothing a decoder accepts is lost on the way back.

#![no_main]

use ferrox_protocol::wire::{decode_event, encode_event, EVENT_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Records are fixed-size; shorter inputs are zero-padded and longer ones cut, so that every
    // input the fuzzer makes exercises the decoder rather than being thrown away.
    let mut record = [0u8; EVENT_BYTES];
    let len = data.len().min(EVENT_BYTES);
    record[..len].copy_from_slice(&data[..len]);

    if let Ok(event) = decode_event(&record) {
        let mut again = [0u8; EVENT_BYTES];
        encode_event(&event, &mut again);
        assert_eq!(again, record, "re-encoding {event:?} changed the bytes");
        assert_eq!(decode_event(&again), Ok(event));
    }
});
