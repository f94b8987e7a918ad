//! Decodes arbitrary bytes as a command record. Whatever decodes must re-encode to exactly the
//! input and decode again to the same value: the encoding is a bijection, so no two buffers
//! mean the same command and nothing a decoder accepts is lost on the way back.

#![no_main]

use ferrox_protocol::wire::{decode_command, encode_command, COMMAND_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Records are fixed-size; shorter inputs are zero-padded and longer ones cut, so that every
    // input the fuzzer makes exercises the decoder rather than being thrown away.
    let mut record = [0u8; COMMAND_BYTES];
    let len = data.len().min(COMMAND_BYTES);
    record[..len].copy_from_slice(&data[..len]);

    if let Ok(cmd) = decode_command(&record) {
        let mut again = [0u8; COMMAND_BYTES];
        encode_command(&cmd, &mut again);
        assert_eq!(again, record, "re-encoding {cmd:?} changed the bytes");
        assert_eq!(decode_command(&again), Ok(cmd));
    }
});
