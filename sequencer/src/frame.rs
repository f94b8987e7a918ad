//! Slot layouts of the pipeline's rings and the journal's record payload.
//!
//! Commands and events themselves are encoded by [`ferrox_protocol::wire`]; these frames add
//! what each hop needs: who sent a command (so that replies can be routed back), and the
//! sequence number and timestamp once the sequencer has given them. All fields little-endian.
//!
//! ```text
//! input ring slot (producer -> sequencer), 80 bytes
//!   0  8  producer_ref   the producer's own number for this request, echoed in the ack
//!   8  4  producer       the producer's index (its input ring's number)
//!  12  4  reserved (0)
//!  16 64  command        wire::encode_command
//!
//! journal payload, 80 bytes: the input slot as the sequencer accepted it
//! (the journal record header carries seq and ts_ns)
//!
//! engine ring slot (sequencer -> engine), 96 bytes
//!   0  8  seq
//!   8  8  ts_ns
//!  16 80  journal payload
//!
//! output ring slot (engine -> consumers), 144 bytes
//!   0  8  seq            of the command that produced the event
//!   8  8  producer_ref   of that command
//!  16  4  producer       of that command
//!  20  2  flags          bit 0: END (no event; the command is fully processed)
//!  22  2  event_index    position of the event among the command's events
//!  24  8  ts_ns          of that command (the sequencer's time), so that consumers stamp
//!                        reports and market data with exchange time, not their own clock
//!  32 112 event          wire::encode_event; zero in an END frame
//! ```
//!
//! Every command produces exactly one END frame after its events. It is the acknowledgement:
//! a producer that sees END for its `producer_ref` knows the command was journalled (and, in
//! `sync` mode, made durable) and fully applied.

use ferrox_protocol::wire::{self, DecodeError, COMMAND_BYTES, EVENT_BYTES};
use ferrox_protocol::{Command, Event};

pub const INPUT_SLOT_BYTES: usize = 80;
pub const JOURNAL_PAYLOAD_BYTES: usize = INPUT_SLOT_BYTES;
pub const ENGINE_SLOT_BYTES: usize = 96;
pub const OUTPUT_SLOT_BYTES: usize = 144;

pub const FLAG_END: u16 = 1;

/// The sender of a command: its ring and its own reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub producer: u32,
    pub producer_ref: u64,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is {found} bytes, expected {expected}")]
    Size { expected: usize, found: usize },
    #[error("reserved bytes of the frame are not zero")]
    Reserved,
    #[error("frame names producer {found} but arrived on ring {expected}")]
    Producer { expected: u32, found: u32 },
    #[error("command in the frame does not decode: {0}")]
    Command(DecodeError),
    #[error("event in the frame does not decode: {0}")]
    Event(DecodeError),
}

/// Writes an input slot.
pub fn encode_input(origin: Origin, command: &Command, out: &mut [u8; INPUT_SLOT_BYTES]) {
    out[0..8].copy_from_slice(&origin.producer_ref.to_le_bytes());
    out[8..12].copy_from_slice(&origin.producer.to_le_bytes());
    out[12..16].fill(0);
    let mut cmd = [0u8; COMMAND_BYTES];
    wire::encode_command(command, &mut cmd);
    out[16..80].copy_from_slice(&cmd);
}

/// Checks and decodes an input slot (or a journal payload, which has the same layout).
pub fn decode_input(slot: &[u8]) -> Result<(Origin, Command), FrameError> {
    if slot.len() != INPUT_SLOT_BYTES {
        return Err(FrameError::Size {
            expected: INPUT_SLOT_BYTES,
            found: slot.len(),
        });
    }
    if slot[12..16] != [0; 4] {
        return Err(FrameError::Reserved);
    }
    let mut cmd = [0u8; COMMAND_BYTES];
    cmd.copy_from_slice(&slot[16..80]);
    let command = wire::decode_command(&cmd).map_err(FrameError::Command)?;
    Ok((
        Origin {
            producer_ref: u64_at(slot, 0),
            producer: u32_at(slot, 8),
        },
        command,
    ))
}

/// Writes an engine-ring slot from a sequenced, journalled input slot.
pub fn encode_engine(seq: u64, ts_ns: u64, payload: &[u8], out: &mut [u8; ENGINE_SLOT_BYTES]) {
    out[0..8].copy_from_slice(&seq.to_le_bytes());
    out[8..16].copy_from_slice(&ts_ns.to_le_bytes());
    out[16..96].copy_from_slice(&payload[..JOURNAL_PAYLOAD_BYTES]);
}

/// Decodes an engine-ring slot into its sequence number, time, origin and command.
pub fn decode_engine(slot: &[u8]) -> Result<(u64, u64, Origin, Command), FrameError> {
    if slot.len() != ENGINE_SLOT_BYTES {
        return Err(FrameError::Size {
            expected: ENGINE_SLOT_BYTES,
            found: slot.len(),
        });
    }
    let (origin, command) = decode_input(&slot[16..96])?;
    Ok((u64_at(slot, 0), u64_at(slot, 8), origin, command))
}

/// One decoded output frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputFrame {
    pub seq: u64,
    /// The sequencer's timestamp of the command.
    pub ts_ns: u64,
    pub origin: Origin,
    pub event_index: u16,
    /// `None` for the END frame of a command.
    pub event: Option<Event>,
}

pub fn encode_output(
    seq: u64,
    ts_ns: u64,
    origin: Origin,
    event_index: u16,
    event: Option<&Event>,
    out: &mut [u8; OUTPUT_SLOT_BYTES],
) {
    out[0..8].copy_from_slice(&seq.to_le_bytes());
    out[8..16].copy_from_slice(&origin.producer_ref.to_le_bytes());
    out[16..20].copy_from_slice(&origin.producer.to_le_bytes());
    let flags = if event.is_none() { FLAG_END } else { 0 };
    out[20..22].copy_from_slice(&flags.to_le_bytes());
    out[22..24].copy_from_slice(&event_index.to_le_bytes());
    out[24..32].copy_from_slice(&ts_ns.to_le_bytes());
    match event {
        Some(e) => {
            let mut buf = [0u8; EVENT_BYTES];
            wire::encode_event(e, &mut buf);
            out[32..144].copy_from_slice(&buf);
        }
        None => out[32..144].fill(0),
    }
}

pub fn decode_output(slot: &[u8]) -> Result<OutputFrame, FrameError> {
    if slot.len() != OUTPUT_SLOT_BYTES {
        return Err(FrameError::Size {
            expected: OUTPUT_SLOT_BYTES,
            found: slot.len(),
        });
    }
    let flags = u16_at(slot, 20);
    if flags & !FLAG_END != 0 {
        return Err(FrameError::Reserved);
    }
    let event = if flags & FLAG_END != 0 {
        if slot[32..144].iter().any(|&b| b != 0) {
            return Err(FrameError::Reserved);
        }
        None
    } else {
        let mut buf = [0u8; EVENT_BYTES];
        buf.copy_from_slice(&slot[32..144]);
        Some(wire::decode_event(&buf).map_err(FrameError::Event)?)
    };
    Ok(OutputFrame {
        seq: u64_at(slot, 0),
        ts_ns: u64_at(slot, 24),
        origin: Origin {
            producer_ref: u64_at(slot, 8),
            producer: u32_at(slot, 16),
        },
        event_index: u16_at(slot, 22),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrox_protocol::{
        AccountId, ClientOrderId, InstrumentId, NewOrder, PriceTicks, QtyLots, Side,
    };

    fn order() -> Command {
        Command::NewOrder(NewOrder::limit(
            InstrumentId(1),
            AccountId(7),
            ClientOrderId(99),
            Side::Sell,
            PriceTicks(10_050),
            QtyLots(3),
        ))
    }

    #[test]
    fn frames_round_trip() {
        let origin = Origin {
            producer: 3,
            producer_ref: 41,
        };
        let mut input = [0u8; INPUT_SLOT_BYTES];
        encode_input(origin, &order(), &mut input);
        assert_eq!(decode_input(&input), Ok((origin, order())));
        let mut engine = [0u8; ENGINE_SLOT_BYTES];
        encode_engine(5, 1_000, &input, &mut engine);
        assert_eq!(decode_engine(&engine), Ok((5, 1_000, origin, order())));
        let mut out = [0u8; OUTPUT_SLOT_BYTES];
        encode_output(5, 1_000, origin, 0, None, &mut out);
        let frame = decode_output(&out).unwrap();
        assert_eq!(frame.event, None);
        assert_eq!(frame.ts_ns, 1_000);
        assert_eq!(frame.origin, origin);
    }

    #[test]
    fn damaged_frames_are_refused() {
        let mut input = [0u8; INPUT_SLOT_BYTES];
        encode_input(Origin::default(), &order(), &mut input);
        let mut bad = input;
        bad[13] = 1;
        assert_eq!(decode_input(&bad), Err(FrameError::Reserved));
        let mut bad = input;
        bad[16] = 0;
        assert!(matches!(decode_input(&bad), Err(FrameError::Command(_))));
        assert!(matches!(
            decode_input(&input[..79]),
            Err(FrameError::Size { .. })
        ));
        let mut out = [0u8; OUTPUT_SLOT_BYTES];
        encode_output(1, 0, Origin::default(), 0, None, &mut out);
        out[100] = 1;
        assert_eq!(decode_output(&out), Err(FrameError::Reserved));
    }
}
