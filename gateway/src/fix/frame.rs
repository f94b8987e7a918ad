//! Finding one message at the front of a receive buffer.
//!
//! A FIX message announces its own length: `8=<BeginString>\x01 9=<BodyLength>\x01`, then
//! exactly BodyLength bytes (from the byte after the SOH of field 9 up to and including the SOH
//! before `10=`), then `10=ddd\x01` where ddd is the sum of all preceding bytes modulo 256.
//! [`frame`] checks that structure and nothing more; field syntax is the parser's job and the
//! BeginString value is the session's.
//!
//! When the bytes at the front are not a well-formed message, [`frame`] says how many to drop so
//! that the next call starts at the next `8=` that begins a field: a stream resynchronises on its
//! own after garbage, a lying BodyLength or a torn message, and no input makes it wait for bytes
//! that could never complete a frame at the front.

use super::SOH;
use std::fmt;

/// The outcome of looking for a message at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A complete message of `len` bytes starts at buf[0]; BodyLength and CheckSum are verified.
    Message { len: usize },
    /// Need more bytes; consume nothing.
    Incomplete,
    /// The first `skip` (>= 1) bytes are not a well-framed message: the caller drops them and
    /// calls again.
    Garbled { skip: usize, reason: Garble },
}

/// Why bytes were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garble {
    /// The buffer does not start with `8=`, or the BeginString field is not terminated within
    /// [`HEADER_FIELD_MAX`] bytes.
    NoBeginString,
    /// The second field is not `9=`.
    NoBodyLength,
    /// BodyLength is empty, has a non-digit, or is not terminated within [`HEADER_FIELD_MAX`]
    /// bytes.
    BadBodyLength,
    /// The whole message would exceed the configured maximum size.
    BodyTooLarge,
    /// The bytes where BodyLength says the trailer is are not `\x0110=ddd\x01`: BodyLength is
    /// wrong or the message was torn.
    NoCheckSum,
    /// The trailer is well-formed but its value is not the sum of the bytes.
    BadCheckSum,
}

impl Garble {
    /// A short fixed description, for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Garble::NoBeginString => "no BeginString at start of message",
            Garble::NoBodyLength => "BodyLength is not the second field",
            Garble::BadBodyLength => "malformed BodyLength",
            Garble::BodyTooLarge => "message larger than the maximum size",
            Garble::NoCheckSum => "no CheckSum where BodyLength ends",
            Garble::BadCheckSum => "wrong CheckSum",
        }
    }
}

impl fmt::Display for Garble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest `8=...\x01` or `9=...\x01` field accepted, SOH included. Real values are 7 and at
/// most 10 bytes long; a header field that has no SOH within this many bytes is garbage, and
/// declaring it so early keeps a stream of junk from being buffered while we wait for a SOH.
pub const HEADER_FIELD_MAX: usize = 40;

/// Length of the trailer `10=ddd\x01`.
const TRAILER_LEN: usize = 7;

/// Looks for one message at the front of `buf`, allowing at most `msg_bytes_max` bytes for the
/// whole message. Never panics and never reads outside `buf`; the work is linear in the bytes
/// examined.
pub fn frame(buf: &[u8], msg_bytes_max: usize) -> Framing {
    if buf.is_empty() || buf == b"8" {
        return Framing::Incomplete;
    }
    if !buf.starts_with(b"8=") {
        return garbled(buf, Garble::NoBeginString);
    }

    // BeginString: any value, terminated by SOH.
    let Some(begin_soh) = find_soh(buf, 2, HEADER_FIELD_MAX) else {
        return if buf.len() < HEADER_FIELD_MAX {
            Framing::Incomplete
        } else {
            garbled(buf, Garble::NoBeginString)
        };
    };

    // BodyLength: `9=` and decimal digits, terminated by SOH.
    let tag9 = begin_soh + 1;
    let rest = &buf[tag9..];
    if rest.len() < 2 {
        // A prefix of "9=" (or nothing) so far.
        return if b"9=".starts_with(rest) {
            Framing::Incomplete
        } else {
            garbled(buf, Garble::NoBodyLength)
        };
    }
    if !rest.starts_with(b"9=") {
        return garbled(buf, Garble::NoBodyLength);
    }
    let digits_at = tag9 + 2;
    let mut body_len: usize = 0;
    let mut i = digits_at;
    loop {
        if i - tag9 >= HEADER_FIELD_MAX {
            return garbled(buf, Garble::BadBodyLength);
        }
        let Some(&b) = buf.get(i) else {
            return Framing::Incomplete;
        };
        if b == SOH {
            break;
        }
        if !b.is_ascii_digit() {
            return garbled(buf, Garble::BadBodyLength);
        }
        // Saturating: an absurd BodyLength is caught as too large just below.
        body_len = body_len
            .saturating_mul(10)
            .saturating_add(usize::from(b - b'0'));
        i += 1;
    }
    if i == digits_at {
        return garbled(buf, Garble::BadBodyLength);
    }
    let header_len = i + 1;

    // Decided from the header alone, so that an oversized message is dropped as soon as its
    // header arrives instead of after buffering the whole body.
    let trailer_at = header_len.saturating_add(body_len);
    let total = trailer_at.saturating_add(TRAILER_LEN);
    if total > msg_bytes_max {
        return garbled(buf, Garble::BodyTooLarge);
    }
    if buf.len() < total {
        return Framing::Incomplete;
    }

    // The body ends with a SOH (the one of field 9 when the body is empty) and the trailer
    // follows at exactly the place BodyLength says.
    let trailer = &buf[trailer_at..total];
    if buf[trailer_at - 1] != SOH
        || !trailer.starts_with(b"10=")
        || !trailer[3..6].iter().all(u8::is_ascii_digit)
        || trailer[6] != SOH
    {
        return garbled(buf, Garble::NoCheckSum);
    }
    let declared = u32::from(trailer[3] - b'0') * 100
        + u32::from(trailer[4] - b'0') * 10
        + u32::from(trailer[5] - b'0');
    if declared != checksum(&buf[..trailer_at]) {
        // The frame itself is intact, so drop exactly it and keep the stream aligned.
        return Framing::Garbled {
            skip: total,
            reason: Garble::BadCheckSum,
        };
    }
    Framing::Message { len: total }
}

/// The FIX CheckSum of `bytes`: their sum modulo 256.
pub fn checksum(bytes: &[u8]) -> u32 {
    // Summing into u32 lanes lets the compiler vectorise; a message is far below 2^24 bytes, so
    // the sum cannot overflow before the final modulo.
    bytes
        .iter()
        .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)))
        % 256
}

/// Index of the first SOH in `buf[from..limit]` (limit clamped to the buffer).
fn find_soh(buf: &[u8], from: usize, limit: usize) -> Option<usize> {
    let end = limit.min(buf.len());
    buf.get(from..end)?
        .iter()
        .position(|&b| b == SOH)
        .map(|p| from + p)
}

/// Drops everything before the next `8=` that starts a field (right after a SOH), looking from
/// position 1 so that at least one byte goes.
fn garbled(buf: &[u8], reason: Garble) -> Framing {
    Framing::Garbled {
        skip: resync(buf),
        reason,
    }
}

/// How many bytes to drop so that the buffer starts at the next field-starting `8=`. If there is
/// none, everything is dropped except a final `\x018`, whose `8` may be the start of the next
/// message's `8=`. The search starts at position 1, so the result is at least 1 for any
/// non-empty buffer, and never more than its length.
fn resync(buf: &[u8]) -> usize {
    let mut i = 1;
    while i < buf.len() {
        // A SOH at i-1 makes i a field start.
        if buf[i - 1] == SOH && buf[i] == b'8' {
            match buf.get(i + 1) {
                Some(&b'=') => return i,
                None => return i, // "\x018" at the very end: keep the partial "8".
                Some(_) => {}
            }
        }
        i += 1;
    }
    buf.len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Vec<u8> {
        let body = body.replace('|', "\x01");
        let mut m = format!("8=FIX.4.4\x019={}\x01{}", body.len(), body).into_bytes();
        let sum = checksum(&m);
        m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        m
    }

    #[test]
    fn frames_a_message() {
        let m = msg("35=0|49=A|56=B|34=1|52=20260101-00:00:00|");
        assert_eq!(frame(&m, 4096), Framing::Message { len: m.len() });
        for cut in 0..m.len() {
            assert_eq!(frame(&m[..cut], 4096), Framing::Incomplete, "cut at {cut}");
        }
    }

    /// A BodyLength that ends inside a value which happens to read `10=ddd` with the right sum
    /// is still not a frame: the body must end with a SOH.
    #[test]
    fn trailer_must_follow_a_soh() {
        let mut m = b"8=FIX.4.4\x019=9\x0135=0\x0158=a".to_vec();
        let sum = checksum(&m);
        m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        assert_eq!(
            frame(&m, 4096),
            Framing::Garbled {
                skip: m.len(),
                reason: Garble::NoCheckSum
            }
        );
    }

    #[test]
    fn resync_keeps_partial_begin_string() {
        assert_eq!(resync(b"xx\x018"), 3);
        assert_eq!(resync(b"xx\x018="), 3);
        assert_eq!(resync(b"xx8=1"), 5);
        assert_eq!(resync(b"x"), 1);
    }

    #[test]
    fn garbage_without_soh_is_dropped_early() {
        let junk = [b'8', b'=', b'x'].repeat(20);
        assert!(matches!(
            frame(&junk, 4096),
            Framing::Garbled {
                reason: Garble::NoBeginString,
                ..
            }
        ));
    }
}
