//! Splitting one framed message into fields without copying or allocating.
//!
//! A [`Parser`] owns a field vector sized once for the largest message the session accepts;
//! [`Parser::parse`] fills it with `(tag, value range)` entries that borrow the message bytes,
//! and the returned [`Message`] answers typed queries on them. A message that is not a sequence
//! of `tag=value\x01` fields beginning with 8, 9, 35 is garbled ([`ParseError`]): the session
//! drops it without a Reject, as FIX prescribes for garbled messages. Semantic problems with
//! well-formed fields (unknown tags, empty values, bad formats) are left to
//! [`super::dict::validate`], which answers them with a session Reject.

use super::time::parse_utc_timestamp;
use super::SOH;
use std::fmt;

/// One field of a parsed message: its tag and the byte range of its value in the raw message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub tag: i64,
    pub start: u32,
    pub end: u32,
}

/// Why a message could not be split into fields. Each of these makes the message garbled: the
/// session must drop it (and may count it), never reject it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A field is not `tag=value\x01` with a tag of an optional '-' and 1 to 9 digits, or the
    /// last field is not terminated, or a data field's declared length overruns the message.
    FieldSyntax,
    /// The first three fields are not BeginString (8), BodyLength (9) and MsgType (35).
    MsgTypeNotThird,
    /// The message has more fields than the parser was built for.
    TooManyFields,
    /// The last field is not CheckSum (10).
    CheckSumNotLast,
    /// The message is longer than the u32 offsets of [`Field`] can address.
    TooLong,
}

impl ParseError {
    /// A short fixed description, for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::FieldSyntax => "malformed field",
            ParseError::MsgTypeNotThird => "first fields are not 8, 9, 35",
            ParseError::TooManyFields => "too many fields",
            ParseError::CheckSumNotLast => "CheckSum is not the last field",
            ParseError::TooLong => "message too long",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ParseError {}

/// A field is present but its value does not have the format its type requires ("Incorrect
/// data format for value", SessionRejectReason 6, or a business-level reject, as the caller
/// decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub tag: i64,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "incorrect data format for tag {}", self.tag)
    }
}

impl std::error::Error for FieldError {}

/// A parsed message: the raw bytes and its fields in wire order. Cheap to copy; it borrows both
/// the receive buffer and the [`Parser`].
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    raw: &'a [u8],
    fields: &'a [Field],
}

impl<'a> Message<'a> {
    /// The whole message as received, trailer included.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// All fields in wire order: 8, 9, 35 first and 10 last.
    pub fn fields(&self) -> &'a [Field] {
        self.fields
    }

    /// The value bytes of `f` (empty for a field that does not belong to this message).
    pub fn value(&self, f: &Field) -> &'a [u8] {
        self.raw
            .get(f.start as usize..f.end as usize)
            .unwrap_or(&[])
    }

    /// BeginString (8), always the first field.
    pub fn begin_string(&self) -> &'a [u8] {
        self.fields.first().map_or(&[], |f| self.value(f))
    }

    /// MsgType (35), always the third field.
    pub fn msg_type(&self) -> &'a [u8] {
        self.fields.get(2).map_or(&[], |f| self.value(f))
    }

    /// The value of the first occurrence of `tag`.
    pub fn get(&self, tag: i64) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| self.value(f))
    }

    /// `tag` as an unsigned decimal (digits only, no sign, no overflow); `None` if absent.
    pub fn get_u64(&self, tag: i64) -> Result<Option<u64>, FieldError> {
        match self.get(tag) {
            None => Ok(None),
            Some(v) => parse_u64(v).map(Some).ok_or(FieldError { tag }),
        }
    }

    /// `tag` as a signed decimal (an optional '-' then digits); `None` if absent.
    pub fn get_i64(&self, tag: i64) -> Result<Option<i64>, FieldError> {
        match self.get(tag) {
            None => Ok(None),
            Some(v) => parse_i64(v).map(Some).ok_or(FieldError { tag }),
        }
    }

    /// `tag` as a FIX Boolean, `Y` or `N`; `None` if absent.
    pub fn get_bool(&self, tag: i64) -> Result<Option<bool>, FieldError> {
        match self.get(tag) {
            None => Ok(None),
            Some(b"Y") => Ok(Some(true)),
            Some(b"N") => Ok(Some(false)),
            Some(_) => Err(FieldError { tag }),
        }
    }

    /// `tag` as a FIX char: exactly one byte; `None` if absent.
    pub fn get_char(&self, tag: i64) -> Result<Option<u8>, FieldError> {
        match self.get(tag) {
            None => Ok(None),
            Some(&[c]) => Ok(Some(c)),
            Some(_) => Err(FieldError { tag }),
        }
    }

    /// `tag` as a UTCTimestamp, converted to Unix nanoseconds; `None` if absent.
    pub fn get_timestamp_ns(&self, tag: i64) -> Result<Option<u64>, FieldError> {
        match self.get(tag) {
            None => Ok(None),
            Some(v) => parse_utc_timestamp(v).map(Some).ok_or(FieldError { tag }),
        }
    }

    /// `tag` as a FIX decimal (price, quantity, amount) converted exactly to a fixed-point
    /// integer with `decimals` decimal places; `None` if absent. A value with more significant
    /// decimal places than `decimals`, or out of range, is an error rather than being rounded.
    pub fn get_fixed(&self, tag: i64, decimals: u32) -> Result<Option<i128>, FieldError> {
        match self.get(tag) {
            None => Ok(None),
            Some(v) => parse_fixed(v, decimals).map(Some).ok_or(FieldError { tag }),
        }
    }

    /// The raw bytes of `fields()[first..end]`, tags and SOHs included: exactly what
    /// [`super::Encoder::raw_fields`] takes to copy these fields into another message. Empty if
    /// the range is empty or out of bounds.
    pub fn raw_fields(&self, first: usize, end: usize) -> &'a [u8] {
        if first >= end || end > self.fields.len() {
            return &[];
        }
        // A field's tag starts right after the previous field's SOH.
        let from = match first {
            0 => 0,
            _ => self.fields[first - 1].end as usize + 1,
        };
        let to = self.fields[end - 1].end as usize + 1;
        self.raw.get(from..to).unwrap_or(&[])
    }
}

/// Digits only, at least one, no overflow.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// An optional '-' then digits, within i64.
pub fn parse_i64(v: &[u8]) -> Option<i64> {
    match v {
        [b'-', rest @ ..] => {
            let m = parse_u64(rest)?;
            // -(2^63) is the one value whose magnitude does not fit in i64.
            0i64.checked_sub_unsigned(m)
        }
        _ => i64::try_from(parse_u64(v)?).ok(),
    }
}

/// Whether `v` is a FIX float (price, qty, amount, percentage): an optional '-', digits with at
/// most one '.', and at least one digit. FIX allows neither exponents nor a '+' sign.
pub fn is_decimal(v: &[u8]) -> bool {
    let v = v.strip_prefix(b"-").unwrap_or(v);
    let mut digits = 0;
    let mut dots = 0;
    for &b in v {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    digits > 0 && dots <= 1
}

/// Converts a FIX decimal exactly into an integer count of `10^-decimals` units, e.g.
/// `("123.45", 2) -> 12345`, `("1.5000", 2) -> 150`. Trailing zeros beyond `decimals` are
/// accepted; any other digit there, a malformed value or an overflow gives `None`.
pub fn parse_fixed(v: &[u8], decimals: u32) -> Option<i128> {
    if !is_decimal(v) {
        return None;
    }
    let (negative, v) = match v {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, v),
    };
    let (int_part, frac_part) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &[][..]),
    };
    let mut units: i128 = 0;
    for &b in int_part {
        units = units.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    for i in 0..decimals as usize {
        let d = frac_part.get(i).map_or(0, |&b| b - b'0');
        units = units.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    if frac_part.iter().skip(decimals as usize).any(|&b| b != b'0') {
        return None;
    }
    Some(if negative { -units } else { units })
}

/// For a FIX `data` field (whose value may contain SOH), the tag of the `Length` field that must
/// precede it and gives the value's exact size.
fn length_tag_of_data(tag: i64) -> Option<i64> {
    Some(match tag {
        89 => 93,   // Signature / SignatureLength
        91 => 90,   // SecureData / SecureDataLen
        96 => 95,   // RawData / RawDataLength
        213 => 212, // XmlData / XmlDataLen
        349 => 348, // EncodedIssuer
        351 => 350, // EncodedSecurityDesc
        353 => 352, // EncodedListExecInst
        355 => 354, // EncodedText
        357 => 356, // EncodedSubject
        359 => 358, // EncodedHeadline
        361 => 360, // EncodedAllocText
        363 => 362, // EncodedUnderlyingIssuer
        365 => 364, // EncodedUnderlyingSecurityDesc
        446 => 445, // EncodedListStatusText
        619 => 618, // EncodedLegIssuer
        622 => 621, // EncodedLegSecurityDesc
        _ => return None,
    })
}

/// Splits framed messages into fields, reusing one preallocated field vector.
#[derive(Debug)]
pub struct Parser {
    fields: Vec<Field>,
    fields_max: usize,
}

impl Parser {
    /// A parser for messages of at most `fields_max` fields (at least 4 are needed for any
    /// valid message: 8, 9, 35 and 10).
    pub fn new(fields_max: usize) -> Parser {
        Parser {
            fields: Vec::with_capacity(fields_max),
            fields_max,
        }
    }

    /// The most fields a message may have.
    pub fn fields_max(&self) -> usize {
        self.fields_max
    }

    /// `raw` is one framed message (as returned by frame()). The first three fields must be 8,
    /// 9, 35 in that order, else MsgTypeNotThird (garbled).
    pub fn parse<'a>(&'a mut self, raw: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if u32::try_from(raw.len()).is_err() {
            return Err(ParseError::TooLong);
        }
        self.fields.clear();
        let mut pos = 0;
        while pos < raw.len() {
            let (tag, value_at) = parse_tag(raw, pos)?;
            let data_len = data_length(&self.fields, raw, tag);
            let value_end = match data_len {
                // A data field's value is exactly as long as its Length field says, and may
                // contain SOH; it must still be followed by one.
                Some(len) => {
                    let end = value_at.checked_add(len).ok_or(ParseError::FieldSyntax)?;
                    if raw.get(end) != Some(&SOH) {
                        return Err(ParseError::FieldSyntax);
                    }
                    end
                }
                None => raw[value_at..]
                    .iter()
                    .position(|&b| b == SOH)
                    .map(|p| value_at + p)
                    .ok_or(ParseError::FieldSyntax)?,
            };
            if self.fields.len() == self.fields_max {
                return Err(ParseError::TooManyFields);
            }
            // Both offsets fit in u32 because raw.len() does.
            self.fields.push(Field {
                tag,
                start: value_at as u32,
                end: value_end as u32,
            });
            pos = value_end + 1;
        }
        let tags = |i: usize| self.fields.get(i).map(|f| f.tag);
        if tags(0) != Some(8) || tags(1) != Some(9) || tags(2) != Some(35) {
            return Err(ParseError::MsgTypeNotThird);
        }
        if self.fields.last().map(|f| f.tag) != Some(10) {
            return Err(ParseError::CheckSumNotLast);
        }
        Ok(Message {
            raw,
            fields: &self.fields,
        })
    }
}

/// Reads `tag=` at `pos`: an optional '-' and 1 to 9 digits, then '='. Returns the tag and the
/// position of its value. Nine digits keep every tag within i64 and reject absurd input early.
fn parse_tag(raw: &[u8], pos: usize) -> Result<(i64, usize), ParseError> {
    let mut i = pos;
    let negative = raw.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let digits_at = i;
    let mut tag: i64 = 0;
    while let Some(&b) = raw.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        if i - digits_at == 9 {
            return Err(ParseError::FieldSyntax);
        }
        tag = tag * 10 + i64::from(b - b'0');
        i += 1;
    }
    if i == digits_at || raw.get(i) != Some(&b'=') {
        return Err(ParseError::FieldSyntax);
    }
    Ok((if negative { -tag } else { tag }, i + 1))
}

/// If `tag` is a data field directly preceded by its Length field with a valid value, that
/// length; otherwise the value is delimited by SOH like any other field.
fn data_length(fields: &[Field], raw: &[u8], tag: i64) -> Option<usize> {
    let length_tag = length_tag_of_data(tag)?;
    let prev = fields.last()?;
    if prev.tag != length_tag {
        return None;
    }
    let len = parse_u64(raw.get(prev.start as usize..prev.end as usize)?)?;
    usize::try_from(len).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soh(s: &str) -> Vec<u8> {
        s.replace('|', "\x01").into_bytes()
    }

    #[test]
    fn splits_fields() {
        let raw = soh("8=FIX.4.4|9=5|35=0|-1=HI|0=|10=000|");
        let mut p = Parser::new(16);
        let m = p.parse(&raw).unwrap();
        let tags: Vec<i64> = m.fields().iter().map(|f| f.tag).collect();
        assert_eq!(tags, [8, 9, 35, -1, 0, 10]);
        assert_eq!(m.get(-1), Some(&b"HI"[..]));
        assert_eq!(m.get(0), Some(&b""[..]));
        assert_eq!(m.msg_type(), b"0");
        assert_eq!(m.begin_string(), b"FIX.4.4");
        assert_eq!(m.raw_fields(3, 5), &soh("-1=HI|0=|")[..]);
        assert_eq!(m.raw_fields(0, 1), &soh("8=FIX.4.4|")[..]);
    }

    #[test]
    fn rejects_bad_syntax() {
        let mut p = Parser::new(16);
        for bad in [
            "8=FIX.4.4|9=5|35=0|abc|10=000|",
            "8=FIX.4.4|9=5|35=0|x=1|10=000|",
            "8=FIX.4.4|9=5|35=0|=1|10=000|",
            "8=FIX.4.4|9=5|35=0|1234567890=1|10=000|",
            "8=FIX.4.4|9=5|35=0|--1=1|10=000|",
            "8=FIX.4.4|9=5|35=0|10=000",
        ] {
            assert_eq!(
                p.parse(&soh(bad)).err(),
                Some(ParseError::FieldSyntax),
                "{bad}"
            );
        }
        assert_eq!(
            p.parse(&soh("8=FIX.4.4|35=0|9=5|10=000|")).err(),
            Some(ParseError::MsgTypeNotThird)
        );
        assert_eq!(
            p.parse(&soh("8=FIX.4.4|9=5|35=0|10=000|58=x|")).err(),
            Some(ParseError::CheckSumNotLast)
        );
        let mut small = Parser::new(4);
        assert_eq!(
            small.parse(&soh("8=FIX.4.4|9=5|35=0|58=x|10=000|")).err(),
            Some(ParseError::TooManyFields)
        );
    }

    #[test]
    fn data_fields_may_contain_soh() {
        let raw = soh("8=FIX.4.4|9=5|35=A|95=3|96=a|b|58=x|10=000|");
        let mut p = Parser::new(16);
        let m = p.parse(&raw).unwrap();
        assert_eq!(m.get(96), Some(&soh("a|b")[..]));
        assert_eq!(m.get(58), Some(&b"x"[..]));
        let overrun = soh("8=FIX.4.4|9=5|35=A|95=30|96=a|b|10=000|");
        assert_eq!(p.parse(&overrun).err(), Some(ParseError::FieldSyntax));
    }

    #[test]
    fn typed_getters() {
        let raw = soh(
            "8=FIX.4.4|9=5|35=D|34=12|43=Y|97=X|54=1|55=AB|44=-12.50|38=1.|52=20260101-00:00:01.5|\
             52=20260101-00:00:01.500|34=|10=000|",
        );
        let mut p = Parser::new(32);
        let m = p.parse(&raw).unwrap();
        assert_eq!(m.get_u64(34), Ok(Some(12)));
        assert_eq!(m.get_u64(999), Ok(None));
        assert_eq!(m.get_u64(55), Err(FieldError { tag: 55 }));
        assert_eq!(m.get_bool(43), Ok(Some(true)));
        assert_eq!(m.get_bool(97), Err(FieldError { tag: 97 }));
        assert_eq!(m.get_char(54), Ok(Some(b'1')));
        assert_eq!(m.get_char(55), Err(FieldError { tag: 55 }));
        assert_eq!(m.get_fixed(44, 2), Ok(Some(-1250)));
        assert_eq!(m.get_fixed(44, 1), Ok(Some(-125)));
        assert_eq!(m.get_fixed(44, 0), Err(FieldError { tag: 44 }));
        assert_eq!(m.get_fixed(38, 3), Ok(Some(1000)));
        // Only the first occurrence counts, and its fraction has the wrong length.
        assert_eq!(m.get_timestamp_ns(52), Err(FieldError { tag: 52 }));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-"), None);
        assert!(is_decimal(b"0.5") && is_decimal(b".5") && is_decimal(b"-1") && is_decimal(b"1."));
        assert!(
            !is_decimal(b".") && !is_decimal(b"-") && !is_decimal(b"1e5") && !is_decimal(b"1.2.3")
        );
        assert_eq!(parse_fixed(b"0.005", 3), Some(5));
        assert_eq!(parse_fixed(b"0.0051", 3), None);
        assert_eq!(parse_fixed(b"-0.50", 1), Some(-5));
    }
}
