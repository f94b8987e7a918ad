//! Building outgoing messages into reused buffers.
//!
//! The body (everything from MsgType to the SOH before CheckSum) is written first because
//! BodyLength, which precedes it on the wire, depends on its size; [`Encoder::finish`] then
//! writes the header, copies the body after it and appends the CheckSum. Both buffers keep their
//! capacity across messages, so a session that sized its encoder for its largest message never
//! allocates while encoding.

use super::frame::checksum;
use super::time::{format_date, format_time_of_day_ms, NS_PER_DAY};
use super::{BEGIN_STRING, SOH};

/// Room for the header and trailer around a body: `8=FIX.4.4\x01` (10), `9=` + up to 20 digits
/// + SOH (23), `10=ddd\x01` (7).
const ENVELOPE_BYTES: usize = 10 + 23 + 7;

/// Encodes one message at a time; see the module documentation.
#[derive(Debug)]
pub struct Encoder {
    body: Vec<u8>,
    out: Vec<u8>,
    /// The day (since 1970-01-01) whose `YYYYMMDD` is in `date_text`: consecutive timestamps
    /// almost always fall on the same day, so the calendar conversion runs once a day.
    date_day: u64,
    date_text: [u8; 8],
}

impl Encoder {
    /// An encoder whose buffers hold a message of `capacity_bytes` without reallocating.
    pub fn new(capacity_bytes: usize) -> Encoder {
        Encoder {
            body: Vec::with_capacity(capacity_bytes),
            out: Vec::with_capacity(capacity_bytes + ENVELOPE_BYTES),
            date_day: u64::MAX,
            date_text: [0; 8],
        }
    }

    /// Starts a new message: clears the body and writes `35=<msg_type>`.
    pub fn begin(&mut self, msg_type: &[u8]) {
        self.body.clear();
        self.str(35, msg_type);
    }

    /// The body written so far (from `35=` on).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    fn tag(&mut self, tag: u32) {
        push_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
    }

    /// `tag=value\x01`, the value copied verbatim.
    pub fn str(&mut self, tag: u32, value: &[u8]) -> &mut Self {
        self.tag(tag);
        self.body.extend_from_slice(value);
        self.body.push(SOH);
        self
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, tag: u32, value: u64) -> &mut Self {
        self.tag(tag);
        push_u64(&mut self.body, value);
        self.body.push(SOH);
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, tag: u32, value: i64) -> &mut Self {
        self.tag(tag);
        if value < 0 {
            self.body.push(b'-');
        }
        push_u64(&mut self.body, value.unsigned_abs());
        self.body.push(SOH);
        self
    }

    /// A one-character field.
    pub fn char(&mut self, tag: u32, value: u8) -> &mut Self {
        self.tag(tag);
        self.body.push(value);
        self.body.push(SOH);
        self
    }

    /// A Boolean field: `Y` or `N`.
    pub fn bool(&mut self, tag: u32, value: bool) -> &mut Self {
        self.char(tag, if value { b'Y' } else { b'N' })
    }

    /// Fixed-point integer `units` with `decimals` decimal places, printed without trailing
    /// zeros beyond what is needed, e.g. (12345, 2) -> "123.45", (12300, 2) -> "123",
    /// (5, 3) -> "0.005", (-5, 1) -> "-0.5", (0, 4) -> "0". Exact, no floats.
    pub fn decimal(&mut self, tag: u32, units: i128, decimals: u32) -> &mut Self {
        self.tag(tag);
        push_decimal(&mut self.body, units, decimals);
        self.body.push(SOH);
        self
    }

    /// A UTCTimestamp with milliseconds, `YYYYMMDD-HH:MM:SS.sss`.
    pub fn timestamp(&mut self, tag: u32, unix_ns: u64) -> &mut Self {
        let day = unix_ns / NS_PER_DAY;
        if day != self.date_day {
            format_date(day, &mut self.date_text);
            self.date_day = day;
        }
        let mut time = [0u8; 13];
        format_time_of_day_ms(unix_ns % NS_PER_DAY, &mut time);
        self.tag(tag);
        self.body.extend_from_slice(&self.date_text);
        self.body.extend_from_slice(&time);
        self.body.push(SOH);
        self
    }

    /// Appends already-encoded `tag=value\x01` bytes verbatim (used to copy fields of a stored
    /// message).
    pub fn raw_fields(&mut self, bytes: &[u8]) -> &mut Self {
        self.body.extend_from_slice(bytes);
        self
    }

    /// Prepends 8=FIX.4.4 and 9=<len>, appends 10=<checksum>; returns the whole message. The
    /// body and out buffers are reused; must not allocate once capacity suffices.
    pub fn finish(&mut self) -> &[u8] {
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(b"8=");
        out.extend_from_slice(BEGIN_STRING);
        out.extend_from_slice(b"\x019=");
        push_u64(out, self.body.len() as u64);
        out.push(SOH);
        out.extend_from_slice(&self.body);
        let sum = checksum(out);
        out.extend_from_slice(b"10=");
        out.push(b'0' + (sum / 100) as u8);
        out.push(b'0' + (sum / 10 % 10) as u8);
        out.push(b'0' + (sum % 10) as u8);
        out.push(SOH);
        out
    }
}

/// Appends the decimal digits of `v`, formatted right to left in a stack buffer.
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends the decimal digits of `v`. Every tag and almost every value fits in u64, whose
/// division is one instruction; u128 division is a library call, so it is kept for the digits
/// above 2^64 only.
fn push_u128(out: &mut Vec<u8>, v: u128) {
    match u64::try_from(v) {
        Ok(small) => push_u64(out, small),
        Err(_) => {
            const TEN_19: u128 = 10_000_000_000_000_000_000;
            // The low 19 digits, zero-padded, after the high part.
            push_u128(out, v / TEN_19);
            let low = (v % TEN_19) as u64;
            let mut buf = [b'0'; 19];
            let mut x = low;
            let mut i = buf.len();
            while x > 0 {
                i -= 1;
                buf[i] = b'0' + (x % 10) as u8;
                x /= 10;
            }
            out.extend_from_slice(&buf);
        }
    }
}

/// Appends `units / 10^decimals` in shortest exact decimal form (see [`Encoder::decimal`]).
pub fn push_decimal(out: &mut Vec<u8>, units: i128, decimals: u32) {
    if units < 0 {
        out.push(b'-');
    }
    let magnitude = units.unsigned_abs();
    // Prices and quantities fit in u64, where division by a constant is a multiplication; the
    // u128 path (library-call division) is for the rest.
    match u64::try_from(magnitude) {
        Ok(m) if decimals <= 19 => push_fixed_u64(out, m, decimals),
        _ => push_fixed_u128(out, magnitude, decimals),
    }
}

/// [`push_decimal`] of a magnitude below 2^64 with at most 19 decimal places (10^19 < 2^64).
fn push_fixed_u64(out: &mut Vec<u8>, mut magnitude: u64, mut decimals: u32) {
    // Trailing zeros of the fraction are not printed, so drop them from the magnitude first:
    // what is left is an exact integer with fewer decimal places.
    while decimals > 0 && magnitude % 10 == 0 {
        magnitude /= 10;
        decimals -= 1;
    }
    if decimals == 0 {
        push_u64(out, magnitude);
        return;
    }
    let scale = 10u64.pow(decimals);
    push_u64(out, magnitude / scale);
    out.push(b'.');
    let frac = magnitude % scale;
    // The fraction is zero-padded to `decimals` digits. It is not zero (its last digit is not,
    // after the stripping above), so its width is the number of powers of ten not above it.
    let mut width = 1;
    let mut power: u64 = 10;
    while width < 20 && power <= frac {
        power = power.saturating_mul(10);
        width += 1;
    }
    for _ in width..decimals {
        out.push(b'0');
    }
    push_u64(out, frac);
}

/// [`push_decimal`] for any magnitude and scale.
fn push_fixed_u128(out: &mut Vec<u8>, mut magnitude: u128, mut decimals: u32) {
    while decimals > 0 && magnitude % 10 == 0 {
        magnitude /= 10;
        decimals -= 1;
    }
    if decimals == 0 {
        push_u128(out, magnitude);
        return;
    }
    // 10^decimals overflows u128 beyond 38 places; such a scale leaves an integer part of 0
    // and a fraction zero-padded to `decimals` digits.
    let (int_part, frac) = match 10u128.checked_pow(decimals) {
        Some(scale) => (magnitude / scale, magnitude % scale),
        None => (0, magnitude),
    };
    push_u128(out, int_part);
    out.push(b'.');
    let mut width = 1;
    let mut power: u128 = 10;
    while width < 39 && power <= frac {
        power = power.saturating_mul(10);
        width += 1;
    }
    for _ in width..decimals {
        out.push(b'0');
    }
    push_u128(out, frac);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(units: i128, decimals: u32) -> String {
        let mut v = Vec::new();
        push_decimal(&mut v, units, decimals);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn decimals() {
        assert_eq!(dec(12345, 2), "123.45");
        assert_eq!(dec(12300, 2), "123");
        assert_eq!(dec(12340, 2), "123.4");
        assert_eq!(dec(5, 3), "0.005");
        assert_eq!(dec(-5, 1), "-0.5");
        assert_eq!(dec(0, 4), "0");
        assert_eq!(dec(-120, 0), "-120");
        assert_eq!(dec(1, 0), "1");
        assert_eq!(dec(100_000_001, 8), "1.00000001");
        assert_eq!(
            dec(i128::MIN, 0),
            "-170141183460469231731687303715884105728"
        );
        assert_eq!(
            dec(i128::MAX, 38),
            "1.70141183460469231731687303715884105727"
        );
        assert_eq!(dec(7, 40), format!("0.{}7", "0".repeat(39)));
        assert_eq!(dec(7, 19), format!("0.{}7", "0".repeat(18)));
        assert_eq!(dec(7, 20), format!("0.{}7", "0".repeat(19)));
        assert_eq!(dec(u64::MAX as i128, 19), "1.8446744073709551615");
        assert_eq!(dec(u64::MAX as i128 + 1, 19), "1.8446744073709551616");
        assert_eq!(
            dec(-(10i128.pow(30)) - 5, 2),
            "-10000000000000000000000000000.05"
        );
    }

    /// Both paths agree with a plain string construction over many values and scales.
    #[test]
    fn decimals_match_reference() {
        let reference = |units: i128, decimals: u32| {
            let digits = units.unsigned_abs().to_string();
            let d = decimals as usize;
            let padded = format!("{digits:0>width$}", width = d + 1);
            let (int, frac) = padded.split_at(padded.len() - d);
            let frac = frac.trim_end_matches('0');
            let sign = if units < 0 { "-" } else { "" };
            if frac.is_empty() {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            }
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let magnitude = match i % 4 {
                0 => i128::from(x % 1000),
                1 => i128::from(x),
                2 => i128::from(x) * i128::from(x >> 20),
                _ => i128::from(x % 100_000) * 10i128.pow(i % 7),
            };
            let units = if x & 1 == 0 { magnitude } else { -magnitude };
            let decimals = i % 25;
            assert_eq!(
                dec(units, decimals),
                reference(units, decimals),
                "{units} {decimals}"
            );
        }
    }

    /// The cached date follows the timestamps across midnight and back.
    #[test]
    fn timestamps_across_days() {
        let mut e = Encoder::new(128);
        let midnight = 1_795_392_000_000_000_000; // 2026-11-23 00:00:00
        e.begin(b"0");
        e.timestamp(52, midnight - 1)
            .timestamp(52, midnight)
            .timestamp(52, midnight - 1_000_000)
            .timestamp(52, 0);
        assert_eq!(
            e.body(),
            &b"35=0\x0152=20261122-23:59:59.999\x0152=20261123-00:00:00.000\x01\
               52=20261122-23:59:59.999\x0152=19700101-00:00:00.000\x01"[..]
        );
    }

    #[test]
    fn integers() {
        let mut e = Encoder::new(64);
        e.begin(b"0");
        e.u64(34, u64::MAX)
            .i64(1, i64::MIN)
            .i64(2, 0)
            .bool(3, false);
        assert_eq!(
            e.body(),
            b"35=0\x0134=18446744073709551615\x011=-9223372036854775808\x012=0\x013=N\x01"
        );
    }
}
