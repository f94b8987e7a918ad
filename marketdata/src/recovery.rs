//! The recovery service's logic: the retransmission buffer and the answer to each request.
//!
//! Answers are computed here, without sockets, so that the lossy-network tests can recover
//! through exactly the code the TCP server runs. The server ([`crate::server`]) only moves the
//! bytes and enforces its per-connection bounds.

use crate::feed::{
    encode_reply_end, encode_reply_packet, encode_reply_reject, Message, PacketBuilder,
    RejectReason, Request, SessionId,
};
use crate::publisher::{MessageSink, Publisher};
use ferrox_protocol::InstrumentId;

/// The most messages one retransmit request may ask for; a subscriber further behind asks
/// again or takes a snapshot. It bounds the work and the reply of a single request.
pub const RETRANSMIT_COUNT_MAX: u32 = 65_536;

/// The last `capacity` messages, by sequence number, in a ring allocated once.
pub struct RetransmitStore {
    ring: Vec<Message>,
    capacity: u64,
    /// Sequence number of the next message to be stored; the store holds
    /// `max(1, next_seq - capacity) .. next_seq`.
    next_seq: u64,
}

impl RetransmitStore {
    pub fn new(capacity: usize) -> RetransmitStore {
        let capacity = capacity.max(1);
        RetransmitStore {
            ring: Vec::with_capacity(capacity),
            capacity: capacity as u64,
            next_seq: 1,
        }
    }

    /// Stores message `seq`, which must be the next one (messages arrive in order).
    pub fn push(&mut self, seq: u64, msg: &Message) {
        debug_assert_eq!(seq, self.next_seq, "messages are stored in sequence");
        let at = ((seq - 1) % self.capacity) as usize;
        if at < self.ring.len() {
            self.ring[at] = *msg;
        } else {
            self.ring.push(*msg);
        }
        self.next_seq = seq + 1;
    }

    /// The oldest sequence number still held (equal to `next_seq` when empty).
    pub fn first_seq(&self) -> u64 {
        self.next_seq.saturating_sub(self.capacity).max(1)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn get(&self, seq: u64) -> Option<&Message> {
        if seq < self.first_seq() || seq >= self.next_seq {
            return None;
        }
        self.ring.get(((seq - 1) % self.capacity) as usize)
    }
}

impl MessageSink for RetransmitStore {
    fn message(&mut self, seq: u64, msg: &Message) {
        self.push(seq, msg);
    }
}

/// Appends the reply frames for `request` to `out`: packets and an end frame, or one reject
/// frame. Returns the reason if the request was refused. Call it between commands (the
/// publisher's mirror then matches the last message published).
pub fn answer(
    request: &Request,
    session: SessionId,
    store: &RetransmitStore,
    publisher: &Publisher,
    packet_bytes_max: usize,
    out: &mut Vec<u8>,
) -> Result<(), RejectReason> {
    let refuse = |reason: RejectReason, text: &str, out: &mut Vec<u8>| {
        encode_reply_reject(reason, text, out);
        Err(reason)
    };
    match *request {
        Request::Retransmit {
            session: s,
            from_seq,
            count,
        } => {
            if s != session {
                return refuse(
                    RejectReason::WrongSession,
                    &format!("the current session is {session}"),
                    out,
                );
            }
            let end = from_seq.saturating_add(u64::from(count));
            if count == 0 || count > RETRANSMIT_COUNT_MAX || from_seq == 0 {
                return refuse(
                    RejectReason::Malformed,
                    &format!("ask for 1 to {RETRANSMIT_COUNT_MAX} messages from 1 on"),
                    out,
                );
            }
            if from_seq < store.first_seq() || end > store.next_seq() {
                return refuse(
                    RejectReason::RangeNotAvailable,
                    &format!(
                        "messages {} to {} are available; take a snapshot",
                        store.first_seq(),
                        store.next_seq() - 1
                    ),
                    out,
                );
            }
            let mut packet = PacketBuilder::new(session, packet_bytes_max);
            packet.start(from_seq);
            for seq in from_seq..end {
                let Some(msg) = store.get(seq) else {
                    unreachable!("Invariant: the range was checked against the store");
                };
                if !packet.push(msg) {
                    encode_reply_packet(packet.bytes(), out);
                    packet.start(seq);
                    let pushed = packet.push(msg);
                    debug_assert!(pushed, "an empty packet holds any one message");
                }
            }
            if !packet.is_empty() {
                encode_reply_packet(packet.bytes(), out);
            }
            encode_reply_end(out);
            Ok(())
        }
        Request::Snapshot {
            session: s,
            instrument,
        } => {
            if s != session {
                return refuse(
                    RejectReason::WrongSession,
                    &format!("the current session is {session}"),
                    out,
                );
            }
            let instruments = publisher.instruments() as u32;
            let range = match instrument {
                None => 0..instruments,
                Some(i) if i.0 < instruments => i.0..i.0 + 1,
                Some(i) => {
                    return refuse(
                        RejectReason::UnknownInstrument,
                        &format!("no instrument {i}; there are {instruments}"),
                        out,
                    )
                }
            };
            let mut packet = PacketBuilder::new(session, packet_bytes_max);
            packet.start(0);
            for i in range {
                publisher.snapshot(InstrumentId(i), |msg| {
                    if !packet.push(msg) {
                        encode_reply_packet(packet.bytes(), out);
                        packet.start(0);
                        let pushed = packet.push(msg);
                        debug_assert!(pushed, "an empty packet holds any one message");
                    }
                });
            }
            if !packet.is_empty() {
                encode_reply_packet(packet.bytes(), out);
            }
            encode_reply_end(out);
            Ok(())
        }
    }
}
