//! Feeds arbitrary bytes to the market-data feed decoders (`marketdata/src/feed.rs`): as one
//! message, as a packet, and as the payload of a recovery request and of a recovery reply.
//! None may panic, and whatever decodes must re-encode, from the decoded values alone, to
//! exactly the input: the encoding is canonical, so no two inputs mean the same thing and
//! nothing a decoder accepts is lost on the way back.

#![no_main]

use ferrox_marketdata::feed::{
    decode_message, decode_reply, decode_request, encode_end_of_session, encode_heartbeat,
    encode_reply_end, encode_reply_packet, encode_reply_reject, encode_request, parse_packet,
    Packet, PacketBuilder, PacketKind, Reply, MESSAGE_BYTES_MAX, PACKET_BYTES_MAX,
    PACKET_HEADER_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// Rebuilds a packet from its session, sequence number, kind and messages.
fn reencode_packet(p: &Packet<'_>) -> Vec<u8> {
    match p.kind {
        PacketKind::Heartbeat => {
            let mut out = [0; PACKET_HEADER_BYTES];
            encode_heartbeat(p.session, p.seq, &mut out);
            out.to_vec()
        }
        PacketKind::EndOfSession => {
            let mut out = [0; PACKET_HEADER_BYTES];
            encode_end_of_session(p.session, p.seq, &mut out);
            out.to_vec()
        }
        PacketKind::Messages => {
            let mut builder = PacketBuilder::new(p.session, PACKET_BYTES_MAX);
            builder.start(p.seq);
            let mut n = 0;
            for (_, msg) in p.messages() {
                assert!(builder.push(&msg), "a parsed packet's message did not fit");
                n += 1;
            }
            assert_eq!(
                n,
                usize::from(p.count),
                "messages() lost some of the packet"
            );
            builder.bytes().to_vec()
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_message(data) {
        let mut out = [0u8; MESSAGE_BYTES_MAX];
        let n = msg.encode(&mut out);
        assert_eq!(&out[..n], data, "re-encoding {msg:?} changed the bytes");
    }

    if let Ok(packet) = parse_packet(data) {
        assert_eq!(
            reencode_packet(&packet),
            data,
            "re-encoding {packet:?} changed the bytes"
        );
    }

    if let Ok(req) = decode_request(data) {
        let mut out = Vec::new();
        encode_request(&req, &mut out);
        assert_eq!(&out[2..], data, "re-encoding {req:?} changed the bytes");
    }

    if let Ok(reply) = decode_reply(data) {
        let mut out = Vec::new();
        match reply {
            Reply::Packet(p) => encode_reply_packet(&reencode_packet(&p), &mut out),
            Reply::End => encode_reply_end(&mut out),
            Reply::Reject { reason, text } => encode_reply_reject(reason, text, &mut out),
        }
        assert_eq!(&out[2..], data, "re-encoding {reply:?} changed the bytes");
    }
});
