//! The parts of the FIX 4.4 dictionary that session-level validation needs, and the validation
//! itself.
//!
//! Source of every number and list here: the FIX 4.4 specification (FIX Protocol Ltd., 2003,
//! with errata), as published in machine-readable form in the FIX 4.4 data dictionary that
//! QuickFIX and most engines use. Field numbers 1 to 956 are defined in FIX 4.4 except 101, 261
//! and 809, which the specification leaves unassigned; those three, everything above 956
//! (including the user-defined range 5000-9999) and every number below 1 are "not known".
//!
//! [`validate`] runs the checks FIX assigns to the session layer, in a fixed order so that the
//! Reject a client gets for a message with several problems is predictable (first failure
//! wins):
//!
//! 1. a tag that is not a FIX 4.4 field: InvalidTagNumber;
//! 2. an empty value: TagSpecifiedWithoutValue;
//! 3. for the message types in [`DEFINED`], a body field not in that type's FIX 4.4 layout:
//!    TagNotDefinedForMessageType;
//! 4. a tag repeated outside a repeating group: TagAppearsMoreThanOnce;
//! 5. a required field missing (header first): RequiredTagMissing;
//! 6. a typed field whose value does not parse: IncorrectDataFormat;
//! 7. an enumerated field with a value FIX 4.4 does not define: ValueIncorrect.
//!
//! Message types outside [`DEFINED`] get checks 1 and 2 on all fields and checks 4 to 7 on the
//! standard header and trailer only; their bodies are the application layer's business (it
//! answers unsupported types with a BusinessMessageReject).

use super::parse::{is_decimal, parse_i64, parse_u64, Message};
use super::time::parse_utc_timestamp;
use std::fmt;

/// Tags FIX 4.4 leaves unassigned within 1..=956.
const UNASSIGNED: [i64; 3] = [101, 261, 809];

/// The highest field number FIX 4.4 defines.
pub const MAX_KNOWN_TAG: i64 = 956;

/// A field number defined in FIX 4.4 (see the module documentation for the exact set).
pub fn is_known_tag(tag: i64) -> bool {
    (1..=MAX_KNOWN_TAG).contains(&tag) && !UNASSIGNED.contains(&tag)
}

/// Every MsgType value FIX 4.4 defines: 0-9, the letters A-Z except I, O and U, all of a-z,
/// AA-AZ and BA-BH.
pub fn is_known_msg_type(msg_type: &[u8]) -> bool {
    match *msg_type {
        [c] => {
            c.is_ascii_digit()
                || c.is_ascii_lowercase()
                || (c.is_ascii_uppercase() && !matches!(c, b'I' | b'O' | b'U'))
        }
        [b'A', c] => c.is_ascii_uppercase(),
        [b'B', c] => (b'A'..=b'H').contains(&c),
        _ => false,
    }
}

/// The FIX 4.4 standard header fields, sorted.
const HEADER_TAGS: &[u16] = &[
    8, 9, 34, 35, 43, 49, 50, 52, 56, 57, 90, 91, 97, 115, 116, 122, 128, 129, 142, 143, 144, 145,
    212, 213, 347, 369, 627, 628, 629, 630,
];

/// The FIX 4.4 standard trailer fields.
const TRAILER_TAGS: &[u16] = &[10, 89, 93];

/// Header fields inside the NoHops repeating group, which may repeat.
const HEADER_GROUPED: &[u16] = &[628, 629, 630];

/// Header fields every message must carry, in the order they are reported missing. 8, 9 and 35
/// are guaranteed by the parser.
const HEADER_REQUIRED: &[u16] = &[8, 9, 35, 49, 56, 34, 52];

/// A FIX 4.4 standard header or trailer field.
pub fn is_header_or_trailer_tag(tag: i64) -> bool {
    HEADER_TRAILER_BITS.contains(tag)
}

/// Words of a bit set over tags 0..=MAX_KNOWN_TAG.
const TAG_WORDS: usize = (MAX_KNOWN_TAG as usize + 64) / 64;

/// A set of tags as bits, built at compile time from the sorted lists, so that validation tests
/// membership with one load instead of a binary search per field and per check.
#[derive(Clone, Copy, Debug)]
struct TagBits([u64; TAG_WORDS]);

impl TagBits {
    const EMPTY: TagBits = TagBits([0; TAG_WORDS]);

    const fn with(mut self, tags: &[u16]) -> TagBits {
        let mut i = 0;
        while i < tags.len() {
            let t = tags[i] as usize;
            self.0[t / 64] |= 1 << (t % 64);
            i += 1;
        }
        self
    }

    fn contains(&self, tag: i64) -> bool {
        match usize::try_from(tag) {
            Ok(t) if t < TAG_WORDS * 64 => self.0[t / 64] >> (t % 64) & 1 != 0,
            _ => false,
        }
    }

    /// Adds `tag` (0..=MAX_KNOWN_TAG) and says whether it was already present.
    fn insert(&mut self, tag: i64) -> bool {
        let t = tag as usize;
        let (word, bit) = (t / 64, 1u64 << (t % 64));
        let seen = self.0[word] & bit != 0;
        self.0[word] |= bit;
        seen
    }
}

const HEADER_TRAILER_BITS: TagBits = TagBits::EMPTY.with(HEADER_TAGS).with(TRAILER_TAGS);
const HEADER_GROUPED_BITS: TagBits = TagBits::EMPTY.with(HEADER_GROUPED);

/// Session-level reject reasons, SessionRejectReason (373) values of FIX 4.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    InvalidTagNumber = 0,
    RequiredTagMissing = 1,
    TagNotDefinedForMessageType = 2,
    UndefinedTag = 3,
    TagSpecifiedWithoutValue = 4,
    ValueIncorrect = 5,
    IncorrectDataFormat = 6,
    DecryptionProblem = 7,
    SignatureProblem = 8,
    CompIdProblem = 9,
    SendingTimeAccuracy = 10,
    InvalidMsgType = 11,
    XmlValidation = 12,
    TagAppearsMoreThanOnce = 13,
    TagOutOfOrder = 14,
    RepeatingGroupOutOfOrder = 15,
    IncorrectNumInGroup = 16,
    NonDataValueIncludesDelimiter = 17,
    Other = 99,
}

impl RejectReason {
    /// The SessionRejectReason (373) value.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The Text (58) for a Reject, worded as QuickFIX words it so that counterparties' log
    /// scrapers and conformance scripts recognise it.
    pub fn text(self) -> &'static str {
        match self {
            RejectReason::InvalidTagNumber => "Invalid tag number",
            RejectReason::RequiredTagMissing => "Required tag missing",
            RejectReason::TagNotDefinedForMessageType => "Tag not defined for this message type",
            RejectReason::UndefinedTag => "Undefined Tag",
            RejectReason::TagSpecifiedWithoutValue => "Tag specified without a value",
            RejectReason::ValueIncorrect => "Value is incorrect (out of range) for this tag",
            RejectReason::IncorrectDataFormat => "Incorrect data format for value",
            RejectReason::DecryptionProblem => "Decryption problem",
            RejectReason::SignatureProblem => "Signature problem",
            RejectReason::CompIdProblem => "CompID problem",
            RejectReason::SendingTimeAccuracy => "SendingTime accuracy problem",
            RejectReason::InvalidMsgType => "Invalid MsgType",
            RejectReason::XmlValidation => "XML Validation error",
            RejectReason::TagAppearsMoreThanOnce => "Tag appears more than once",
            RejectReason::TagOutOfOrder => "Tag specified out of required order",
            RejectReason::RepeatingGroupOutOfOrder => "Repeating group fields out of order",
            RejectReason::IncorrectNumInGroup => "Incorrect NumInGroup count for repeating group",
            RejectReason::NonDataValueIncludesDelimiter => {
                "Non Data Value includes Field Delimiter (SOH character)"
            }
            RejectReason::Other => "Other",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Why a message fails session-level validation: the SessionRejectReason and the RefTagID (371)
/// to put in the Reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionReject {
    pub reason: RejectReason,
    pub ref_tag: Option<i64>,
}

impl SessionReject {
    fn new(reason: RejectReason, tag: i64) -> SessionReject {
        SessionReject {
            reason,
            ref_tag: Some(tag),
        }
    }
}

impl fmt::Display for SessionReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ref_tag {
            Some(tag) => write!(f, "{} (tag {tag})", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// The FIX 4.4 layout of one message type, flattened: every body field it may carry (components
/// and repeating groups expanded, nested groups included), the ones among them that sit inside a
/// repeating group and may therefore repeat, and the required ones.
#[derive(Debug)]
pub struct MsgDef {
    pub msg_type: &'static [u8],
    /// Sorted.
    pub fields: &'static [u16],
    /// Sorted; a subset of `fields`.
    pub grouped: &'static [u16],
    /// In the order they are reported missing.
    pub required: &'static [u16],
}

/// The message types whose bodies [`validate`] checks field by field: the session messages and
/// the application messages the gateway accepts or sends.
///
/// Required fields are those of FIX 4.4, plus Symbol (55) wherever FIX 4.4 requires the
/// Instrument component: Ferrox identifies instruments by Symbol only, so a message that names
/// its instrument another way could not be served. On OrderStatusRequest (H), ClOrdID (11) is
/// required as FIX 4.4 says.
pub const DEFINED: &[MsgDef] = &[
    MsgDef {
        msg_type: b"0",
        fields: HEARTBEAT_FIELDS,
        grouped: HEARTBEAT_GROUPED,
        required: &[],
    },
    MsgDef {
        msg_type: b"1",
        fields: TEST_REQUEST_FIELDS,
        grouped: TEST_REQUEST_GROUPED,
        required: &[112],
    },
    MsgDef {
        msg_type: b"2",
        fields: RESEND_REQUEST_FIELDS,
        grouped: RESEND_REQUEST_GROUPED,
        required: &[7, 16],
    },
    MsgDef {
        msg_type: b"3",
        fields: REJECT_FIELDS,
        grouped: REJECT_GROUPED,
        required: &[45],
    },
    MsgDef {
        msg_type: b"4",
        fields: SEQUENCE_RESET_FIELDS,
        grouped: SEQUENCE_RESET_GROUPED,
        required: &[36],
    },
    MsgDef {
        msg_type: b"5",
        fields: LOGOUT_FIELDS,
        grouped: LOGOUT_GROUPED,
        required: &[],
    },
    MsgDef {
        msg_type: b"A",
        fields: LOGON_FIELDS,
        grouped: LOGON_GROUPED,
        required: &[98, 108],
    },
    MsgDef {
        msg_type: b"D",
        fields: NEW_ORDER_SINGLE_FIELDS,
        grouped: NEW_ORDER_SINGLE_GROUPED,
        required: &[11, 55, 54, 60, 40],
    },
    MsgDef {
        msg_type: b"F",
        fields: ORDER_CANCEL_REQUEST_FIELDS,
        grouped: ORDER_CANCEL_REQUEST_GROUPED,
        required: &[41, 11, 55, 54, 60],
    },
    MsgDef {
        msg_type: b"G",
        fields: ORDER_CANCEL_REPLACE_REQUEST_FIELDS,
        grouped: ORDER_CANCEL_REPLACE_REQUEST_GROUPED,
        required: &[41, 11, 55, 54, 60, 40],
    },
    MsgDef {
        msg_type: b"H",
        fields: ORDER_STATUS_REQUEST_FIELDS,
        grouped: ORDER_STATUS_REQUEST_GROUPED,
        required: &[11, 55, 54],
    },
    MsgDef {
        msg_type: b"q",
        fields: ORDER_MASS_CANCEL_REQUEST_FIELDS,
        grouped: ORDER_MASS_CANCEL_REQUEST_GROUPED,
        required: &[11, 530, 60],
    },
    MsgDef {
        msg_type: b"V",
        fields: MARKET_DATA_REQUEST_FIELDS,
        grouped: MARKET_DATA_REQUEST_GROUPED,
        required: &[262, 263, 264, 267, 269, 146, 55],
    },
    MsgDef {
        msg_type: b"8",
        fields: EXECUTION_REPORT_FIELDS,
        grouped: EXECUTION_REPORT_GROUPED,
        required: &[37, 17, 150, 39, 55, 54, 151, 14, 6],
    },
    MsgDef {
        msg_type: b"9",
        fields: ORDER_CANCEL_REJECT_FIELDS,
        grouped: ORDER_CANCEL_REJECT_GROUPED,
        required: &[37, 11, 41, 39, 434],
    },
    MsgDef {
        msg_type: b"j",
        fields: BUSINESS_MESSAGE_REJECT_FIELDS,
        grouped: BUSINESS_MESSAGE_REJECT_GROUPED,
        required: &[372, 380],
    },
    MsgDef {
        msg_type: b"r",
        fields: ORDER_MASS_CANCEL_REPORT_FIELDS,
        grouped: ORDER_MASS_CANCEL_REPORT_GROUPED,
        required: &[37, 530, 531],
    },
    MsgDef {
        msg_type: b"W",
        fields: MARKET_DATA_SNAPSHOT_FIELDS,
        grouped: MARKET_DATA_SNAPSHOT_GROUPED,
        required: &[55, 268],
    },
    MsgDef {
        msg_type: b"X",
        fields: MARKET_DATA_INCREMENTAL_FIELDS,
        grouped: MARKET_DATA_INCREMENTAL_GROUPED,
        required: &[268],
    },
    MsgDef {
        msg_type: b"Y",
        fields: MARKET_DATA_REQUEST_REJECT_FIELDS,
        grouped: MARKET_DATA_REQUEST_REJECT_GROUPED,
        required: &[262],
    },
];

/// The layout of `msg_type` if it is one of [`DEFINED`].
pub fn definition(msg_type: &[u8]) -> Option<&'static MsgDef> {
    DEFINED.iter().find(|d| d.msg_type == msg_type)
}

/// `fields` and `grouped` of each [`DEFINED`] entry as bit sets, in the same order.
static DEFINED_BITS: [(TagBits, TagBits); DEFINED.len()] = {
    let mut out = [(TagBits::EMPTY, TagBits::EMPTY); DEFINED.len()];
    let mut i = 0;
    while i < DEFINED.len() {
        out[i] = (
            TagBits::EMPTY.with(DEFINED[i].fields),
            TagBits::EMPTY.with(DEFINED[i].grouped),
        );
        i += 1;
    }
    out
};

/// The value formats checked in step 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// SeqNum, Length, NumInGroup: decimal digits, no sign.
    Unsigned,
    /// int: an optional '-' and decimal digits.
    Int,
    /// Boolean: Y or N.
    Bool,
    /// UTCTimestamp.
    Timestamp,
    /// Price, Qty, Amt, float, Percentage: see [`is_decimal`].
    Decimal,
    /// char: exactly one character.
    Char,
}

/// Typed fields whose format is checked, sorted by tag: the header's, those the gateway reads
/// from the messages it accepts, and the group counters of those messages. Types are FIX 4.4's.
const FORMATS: &[(u16, Format)] = &[
    (6, Format::Decimal),
    (7, Format::Unsigned),
    (12, Format::Decimal),
    (14, Format::Decimal),
    (16, Format::Unsigned),
    (21, Format::Char),
    (31, Format::Decimal),
    (32, Format::Decimal),
    (34, Format::Unsigned),
    (36, Format::Unsigned),
    (38, Format::Decimal),
    (39, Format::Char),
    (40, Format::Char),
    (43, Format::Bool),
    (44, Format::Decimal),
    (45, Format::Unsigned),
    (52, Format::Timestamp),
    (54, Format::Char),
    (59, Format::Char),
    (60, Format::Timestamp),
    (62, Format::Timestamp),
    (78, Format::Unsigned),
    (80, Format::Decimal),
    (90, Format::Unsigned),
    (93, Format::Unsigned),
    (95, Format::Unsigned),
    (97, Format::Bool),
    (98, Format::Int),
    (99, Format::Decimal),
    (102, Format::Int),
    (103, Format::Int),
    (108, Format::Int),
    (110, Format::Decimal),
    (111, Format::Decimal),
    (113, Format::Bool),
    (114, Format::Bool),
    (121, Format::Bool),
    (122, Format::Timestamp),
    (123, Format::Bool),
    (126, Format::Timestamp),
    (136, Format::Unsigned),
    (140, Format::Decimal),
    (141, Format::Bool),
    (146, Format::Unsigned),
    (150, Format::Char),
    (151, Format::Decimal),
    (152, Format::Decimal),
    (168, Format::Timestamp),
    (192, Format::Decimal),
    (210, Format::Decimal),
    (212, Format::Unsigned),
    (232, Format::Unsigned),
    (263, Format::Char),
    (264, Format::Int),
    (265, Format::Int),
    (266, Format::Bool),
    (267, Format::Unsigned),
    (268, Format::Unsigned),
    (269, Format::Char),
    (270, Format::Decimal),
    (271, Format::Decimal),
    (279, Format::Char),
    (281, Format::Char),
    (290, Format::Int),
    (346, Format::Int),
    (354, Format::Unsigned),
    (369, Format::Unsigned),
    (371, Format::Int),
    (373, Format::Int),
    (377, Format::Bool),
    (378, Format::Int),
    (380, Format::Int),
    (382, Format::Unsigned),
    (383, Format::Unsigned),
    (384, Format::Unsigned),
    (386, Format::Unsigned),
    (424, Format::Decimal),
    (425, Format::Decimal),
    (426, Format::Decimal),
    (434, Format::Char),
    (438, Format::Timestamp),
    (453, Format::Unsigned),
    (454, Format::Unsigned),
    (457, Format::Unsigned),
    (464, Format::Bool),
    (483, Format::Timestamp),
    (516, Format::Decimal),
    (518, Format::Unsigned),
    (530, Format::Char),
    (531, Format::Char),
    (533, Format::Int),
    (534, Format::Unsigned),
    (539, Format::Unsigned),
    (547, Format::Bool),
    (555, Format::Unsigned),
    (586, Format::Timestamp),
    (604, Format::Unsigned),
    (627, Format::Unsigned),
    (629, Format::Timestamp),
    (630, Format::Unsigned),
    (636, Format::Bool),
    (640, Format::Decimal),
    (683, Format::Unsigned),
    (711, Format::Unsigned),
    (789, Format::Unsigned),
    (797, Format::Bool),
    (802, Format::Unsigned),
    (804, Format::Unsigned),
    (816, Format::Unsigned),
    (849, Format::Decimal),
    (864, Format::Unsigned),
    (887, Format::Unsigned),
    (912, Format::Bool),
];

/// For each tag, 1 + its index in [`FORMATS`], or 0: one load per field instead of a search.
static FORMAT_INDEX: [u8; TAG_WORDS * 64] = index_by_tag(&FORMAT_TAGS);

const FORMAT_TAGS: [u16; FORMATS.len()] = {
    let mut tags = [0; FORMATS.len()];
    let mut i = 0;
    while i < FORMATS.len() {
        tags[i] = FORMATS[i].0;
        i += 1;
    }
    tags
};

/// A table from tag to 1 + the tag's position in `tags` (at most 255 entries), 0 for absent.
const fn index_by_tag(tags: &[u16]) -> [u8; TAG_WORDS * 64] {
    assert!(tags.len() < 256);
    let mut table = [0u8; TAG_WORDS * 64];
    let mut i = 0;
    while i < tags.len() {
        table[tags[i] as usize] = i as u8 + 1;
        i += 1;
    }
    table
}

/// Looks `tag` up in a table built by [`index_by_tag`].
fn lookup(table: &[u8; TAG_WORDS * 64], tag: i64) -> Option<usize> {
    let slot = *table.get(usize::try_from(tag).ok()?)?;
    (slot > 0).then(|| usize::from(slot) - 1)
}

fn format_of(tag: i64) -> Option<Format> {
    lookup(&FORMAT_INDEX, tag).map(|i| FORMATS[i].1)
}

fn has_format(v: &[u8], format: Format) -> bool {
    match format {
        Format::Unsigned => parse_u64(v).is_some(),
        Format::Int => parse_i64(v).is_some(),
        Format::Bool => v == b"Y" || v == b"N",
        Format::Timestamp => parse_utc_timestamp(v).is_some(),
        Format::Decimal => is_decimal(v),
        Format::Char => v.len() == 1,
    }
}

/// The values FIX 4.4 allows for an enumerated field.
#[derive(Clone, Copy, Debug)]
enum Allowed {
    /// A single character from the list.
    Char(&'static [u8]),
    /// An integer in the inclusive range.
    IntRange(i64, i64),
    /// MultipleValueString: space-separated single characters from the list.
    CharList(&'static [u8]),
}

/// Enumerated fields whose values are checked in step 7, sorted by tag, with their FIX 4.4
/// enumerations.
const ENUMS: &[(u16, Allowed)] = &[
    // ExecInst: FIX 4.4's values, plus T (fixed peg to local best bid or offer), which the
    // 4.4 errata added.
    (
        18,
        Allowed::CharList(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcde"),
    ),
    (21, Allowed::Char(b"123")),                     // HandlInst
    (40, Allowed::Char(b"123456789ABCDEFGHIJKLMP")), // OrdType
    (43, Allowed::Char(b"YN")),                      // PossDupFlag
    (54, Allowed::Char(b"123456789ABCDEFG")),        // Side
    (59, Allowed::Char(b"01234567")),                // TimeInForce
    (97, Allowed::Char(b"YN")),                      // PossResend
    (98, Allowed::IntRange(0, 6)),                   // EncryptMethod
    (123, Allowed::Char(b"YN")),                     // GapFillFlag
    (141, Allowed::Char(b"YN")),                     // ResetSeqNumFlag
    (263, Allowed::Char(b"012")),                    // SubscriptionRequestType
    (265, Allowed::IntRange(0, 1)),                  // MDUpdateType
    (269, Allowed::Char(b"0123456789ABC")),          // MDEntryType
    (279, Allowed::Char(b"012")),                    // MDUpdateAction
    (281, Allowed::Char(b"0123456789ABC")),          // MDReqRejReason
    (530, Allowed::Char(b"1234567")),                // MassCancelRequestType
];

static ENUM_INDEX: [u8; TAG_WORDS * 64] = index_by_tag(&ENUM_TAGS);

const ENUM_TAGS: [u16; ENUMS.len()] = {
    let mut tags = [0; ENUMS.len()];
    let mut i = 0;
    while i < ENUMS.len() {
        tags[i] = ENUMS[i].0;
        i += 1;
    }
    tags
};

fn allowed_of(tag: i64) -> Option<Allowed> {
    lookup(&ENUM_INDEX, tag).map(|i| ENUMS[i].1)
}

fn is_allowed(v: &[u8], allowed: Allowed) -> bool {
    match allowed {
        Allowed::Char(set) => matches!(v, [c] if set.contains(c)),
        Allowed::IntRange(lo, hi) => parse_i64(v).is_some_and(|n| (lo..=hi).contains(&n)),
        Allowed::CharList(set) => v
            .split(|&b| b == b' ')
            .all(|item| matches!(item, [c] if set.contains(c))),
    }
}

/// Session-level validation of a parsed message; see the module documentation for the checks
/// and their order. Does not allocate.
pub fn validate(msg: &Message) -> Result<(), SessionReject> {
    use RejectReason::*;
    let fields = msg.fields();
    let def = DEFINED
        .iter()
        .position(|d| d.msg_type == msg.msg_type())
        .map(|i| (&DEFINED[i], &DEFINED_BITS[i]));

    // 1. Unknown tags.
    if let Some(f) = fields.iter().find(|f| !is_known_tag(f.tag)) {
        return Err(SessionReject::new(InvalidTagNumber, f.tag));
    }
    // 2. Empty values.
    if let Some(f) = fields.iter().find(|f| f.start == f.end) {
        return Err(SessionReject::new(TagSpecifiedWithoutValue, f.tag));
    }
    // 3. Body fields that do not belong to the message type.
    if let Some((_, (allowed, _))) = def {
        if let Some(f) = fields
            .iter()
            .find(|f| !HEADER_TRAILER_BITS.contains(f.tag) && !allowed.contains(f.tag))
        {
            return Err(SessionReject::new(TagNotDefinedForMessageType, f.tag));
        }
    }
    // 4. Repeated tags. Members of a repeating group legitimately repeat; without tracking
    // group structure, any tag that belongs to one of the type's groups is exempt. Fields of
    // types outside DEFINED may repeat unless they are header or trailer fields.
    let mut present = TagBits::EMPTY;
    for f in fields {
        let may_repeat = if HEADER_TRAILER_BITS.contains(f.tag) {
            HEADER_GROUPED_BITS.contains(f.tag)
        } else {
            def.is_none_or(|(_, (_, grouped))| grouped.contains(f.tag))
        };
        // Every tag is known here (step 1), so within the set's range.
        if present.insert(f.tag) && !may_repeat {
            return Err(SessionReject::new(TagAppearsMoreThanOnce, f.tag));
        }
    }
    // 5. Required fields, header first.
    let body_required = def.map_or(&[][..], |(d, _)| d.required);
    for &tag in HEADER_REQUIRED.iter().chain(body_required) {
        if !present.contains(i64::from(tag)) {
            return Err(SessionReject::new(RequiredTagMissing, i64::from(tag)));
        }
    }
    // Only header and trailer fields are checked further in messages of other types.
    let checked = |tag: i64| def.is_some() || HEADER_TRAILER_BITS.contains(tag);
    // 6. Formats.
    for f in fields.iter().filter(|f| checked(f.tag)) {
        if let Some(format) = format_of(f.tag) {
            if !has_format(msg.value(f), format) {
                return Err(SessionReject::new(IncorrectDataFormat, f.tag));
            }
        }
    }
    // 7. Enumerations.
    for f in fields.iter().filter(|f| checked(f.tag)) {
        if let Some(allowed) = allowed_of(f.tag) {
            if !is_allowed(msg.value(f), allowed) {
                return Err(SessionReject::new(ValueIncorrect, f.tag));
            }
        }
    }
    Ok(())
}

// ----- FIX 4.4 message layouts ------------------------------------------------------------------
//
// Generated by flattening the message and component definitions of the FIX 4.4 specification
// (Volume 3 and 4 message layouts, components expanded, repeating groups and nested groups
// included): `*_FIELDS` lists every body tag a message type may carry, `*_GROUPED` those that
// occur inside a repeating group. Header and trailer fields are not listed. Sorted for binary
// search.

// MsgType 0: 1 fields, 0 of them in repeating groups.
const HEARTBEAT_FIELDS: &[u16] = &[112];
const HEARTBEAT_GROUPED: &[u16] = &[];
// MsgType 1: 1 fields, 0 of them in repeating groups.
const TEST_REQUEST_FIELDS: &[u16] = &[112];
const TEST_REQUEST_GROUPED: &[u16] = &[];
// MsgType 2: 2 fields, 0 of them in repeating groups.
const RESEND_REQUEST_FIELDS: &[u16] = &[7, 16];
const RESEND_REQUEST_GROUPED: &[u16] = &[];
// MsgType 3: 7 fields, 0 of them in repeating groups.
const REJECT_FIELDS: &[u16] = &[45, 58, 354, 355, 371, 372, 373];
const REJECT_GROUPED: &[u16] = &[];
// MsgType 4: 2 fields, 0 of them in repeating groups.
const SEQUENCE_RESET_FIELDS: &[u16] = &[36, 123];
const SEQUENCE_RESET_GROUPED: &[u16] = &[];
// MsgType 5: 3 fields, 0 of them in repeating groups.
const LOGOUT_FIELDS: &[u16] = &[58, 354, 355];
const LOGOUT_GROUPED: &[u16] = &[];
// MsgType A: 13 fields, 2 of them in repeating groups.
const LOGON_FIELDS: &[u16] = &[95, 96, 98, 108, 141, 372, 383, 384, 385, 464, 553, 554, 789];
const LOGON_GROUPED: &[u16] = &[372, 385];
// MsgType D: 233 fields, 78 of them in repeating groups.
const NEW_ORDER_SINGLE_FIELDS: &[u16] = &[
    1, 11, 12, 13, 15, 18, 21, 22, 23, 38, 40, 44, 48, 54, 55, 58, 59, 60, 63, 64, 65, 70, 75, 77,
    78, 79, 80, 81, 99, 100, 106, 107, 110, 111, 114, 117, 120, 121, 126, 140, 152, 167, 168, 192,
    193, 200, 202, 203, 206, 207, 210, 211, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229,
    231, 232, 233, 234, 235, 236, 239, 240, 241, 242, 243, 244, 245, 246, 247, 255, 256, 305, 306,
    307, 308, 309, 310, 311, 312, 313, 316, 317, 318, 336, 348, 349, 350, 351, 354, 355, 362, 363,
    364, 365, 376, 377, 386, 388, 389, 423, 427, 432, 435, 436, 447, 448, 452, 453, 454, 455, 456,
    457, 458, 459, 460, 461, 462, 463, 467, 468, 469, 470, 471, 472, 479, 480, 481, 494, 497, 513,
    516, 523, 524, 525, 526, 528, 529, 538, 539, 541, 542, 543, 544, 545, 581, 582, 583, 589, 590,
    591, 592, 593, 594, 595, 625, 635, 640, 660, 661, 662, 663, 667, 691, 696, 697, 698, 699, 701,
    711, 736, 761, 762, 763, 775, 788, 802, 803, 804, 805, 810, 835, 836, 837, 838, 840, 841, 842,
    843, 844, 846, 847, 848, 849, 854, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877, 878, 879,
    882, 883, 884, 885, 886, 887, 888, 889, 898, 913, 914, 915, 916, 917, 918, 919, 941, 947,
];
const NEW_ORDER_SINGLE_GROUPED: &[u16] = &[
    79, 80, 233, 234, 241, 242, 243, 244, 245, 246, 247, 256, 305, 306, 307, 308, 309, 310, 311,
    312, 313, 316, 317, 318, 336, 362, 363, 364, 365, 435, 436, 447, 448, 452, 455, 456, 457, 458,
    459, 462, 463, 467, 523, 524, 525, 538, 539, 542, 545, 592, 593, 594, 595, 625, 661, 736, 763,
    802, 803, 804, 805, 810, 865, 866, 867, 868, 877, 878, 879, 882, 883, 884, 885, 886, 887, 888,
    889, 941,
];
// MsgType F: 136 fields, 62 of them in repeating groups.
const ORDER_CANCEL_REQUEST_FIELDS: &[u16] = &[
    1, 11, 22, 37, 38, 41, 48, 54, 55, 58, 60, 65, 66, 106, 107, 152, 167, 200, 202, 206, 207, 223,
    224, 225, 226, 227, 228, 231, 239, 240, 241, 242, 243, 244, 245, 246, 247, 255, 256, 305, 306,
    307, 308, 309, 310, 311, 312, 313, 316, 317, 318, 348, 349, 350, 351, 354, 355, 362, 363, 364,
    365, 376, 435, 436, 447, 448, 452, 453, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 468,
    469, 470, 471, 472, 516, 523, 526, 541, 542, 543, 581, 583, 586, 592, 593, 594, 595, 660, 667,
    691, 711, 762, 763, 788, 802, 803, 810, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877, 878,
    879, 882, 883, 884, 885, 886, 887, 888, 889, 898, 913, 914, 915, 916, 917, 918, 919, 941, 947,
];
const ORDER_CANCEL_REQUEST_GROUPED: &[u16] = &[
    241, 242, 243, 244, 245, 246, 247, 256, 305, 306, 307, 308, 309, 310, 311, 312, 313, 316, 317,
    318, 362, 363, 364, 365, 435, 436, 447, 448, 452, 455, 456, 457, 458, 459, 462, 463, 523, 542,
    592, 593, 594, 595, 763, 802, 803, 810, 865, 866, 867, 868, 877, 878, 879, 882, 883, 884, 885,
    886, 887, 888, 889, 941,
];
// MsgType G: 230 fields, 76 of them in repeating groups.
const ORDER_CANCEL_REPLACE_REQUEST_FIELDS: &[u16] = &[
    1, 11, 12, 13, 15, 18, 21, 22, 37, 38, 40, 41, 44, 48, 54, 55, 58, 59, 60, 63, 64, 65, 66, 70,
    75, 77, 78, 79, 80, 99, 100, 106, 107, 110, 111, 114, 120, 121, 126, 152, 167, 168, 192, 193,
    200, 202, 203, 206, 207, 210, 211, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 231,
    235, 236, 239, 240, 241, 242, 243, 244, 245, 246, 247, 255, 256, 305, 306, 307, 308, 309, 310,
    311, 312, 313, 316, 317, 318, 336, 348, 349, 350, 351, 354, 355, 362, 363, 364, 365, 376, 377,
    386, 388, 389, 423, 427, 432, 435, 436, 447, 448, 452, 453, 454, 455, 456, 457, 458, 459, 460,
    461, 462, 463, 467, 468, 469, 470, 471, 472, 479, 480, 481, 494, 497, 513, 516, 523, 524, 525,
    526, 528, 529, 538, 539, 541, 542, 543, 544, 545, 581, 582, 583, 586, 589, 590, 591, 592, 593,
    594, 595, 625, 635, 640, 660, 661, 662, 663, 667, 691, 696, 697, 698, 699, 701, 711, 736, 761,
    762, 763, 775, 788, 802, 803, 804, 805, 810, 835, 836, 837, 838, 840, 841, 842, 843, 844, 846,
    847, 848, 849, 854, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877, 878, 879, 882, 883, 884,
    885, 886, 887, 888, 889, 898, 913, 914, 915, 916, 917, 918, 919, 941, 947,
];
const ORDER_CANCEL_REPLACE_REQUEST_GROUPED: &[u16] = &[
    79, 80, 241, 242, 243, 244, 245, 246, 247, 256, 305, 306, 307, 308, 309, 310, 311, 312, 313,
    316, 317, 318, 336, 362, 363, 364, 365, 435, 436, 447, 448, 452, 455, 456, 457, 458, 459, 462,
    463, 467, 523, 524, 525, 538, 539, 542, 545, 592, 593, 594, 595, 625, 661, 736, 763, 802, 803,
    804, 805, 810, 865, 866, 867, 868, 877, 878, 879, 882, 883, 884, 885, 886, 887, 888, 889, 941,
];
// MsgType H: 123 fields, 62 of them in repeating groups.
const ORDER_STATUS_REQUEST_FIELDS: &[u16] = &[
    1, 11, 22, 37, 48, 54, 55, 65, 106, 107, 167, 200, 202, 206, 207, 223, 224, 225, 226, 227, 228,
    231, 239, 240, 241, 242, 243, 244, 245, 246, 247, 255, 256, 305, 306, 307, 308, 309, 310, 311,
    312, 313, 316, 317, 318, 348, 349, 350, 351, 362, 363, 364, 365, 435, 436, 447, 448, 452, 453,
    454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 470, 471, 472, 523, 526, 541, 542, 543, 583,
    592, 593, 594, 595, 660, 667, 691, 711, 762, 763, 788, 790, 802, 803, 810, 864, 865, 866, 867,
    868, 873, 874, 875, 876, 877, 878, 879, 882, 883, 884, 885, 886, 887, 888, 889, 898, 913, 914,
    915, 916, 917, 918, 919, 941, 947,
];
const ORDER_STATUS_REQUEST_GROUPED: &[u16] = &[
    241, 242, 243, 244, 245, 246, 247, 256, 305, 306, 307, 308, 309, 310, 311, 312, 313, 316, 317,
    318, 362, 363, 364, 365, 435, 436, 447, 448, 452, 455, 456, 457, 458, 459, 462, 463, 523, 542,
    592, 593, 594, 595, 763, 802, 803, 810, 865, 866, 867, 868, 877, 878, 879, 882, 883, 884, 885,
    886, 887, 888, 889, 941,
];
// MsgType q: 108 fields, 10 of them in repeating groups.
const ORDER_MASS_CANCEL_REQUEST_FIELDS: &[u16] = &[
    11, 22, 48, 54, 55, 58, 60, 65, 106, 107, 167, 200, 202, 206, 207, 223, 224, 225, 226, 227,
    228, 231, 239, 240, 241, 242, 243, 244, 245, 246, 247, 255, 256, 305, 306, 307, 308, 309, 310,
    311, 312, 313, 316, 317, 318, 336, 348, 349, 350, 351, 354, 355, 362, 363, 364, 365, 435, 436,
    454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 470, 471, 472, 526, 530, 541, 542, 543, 592,
    593, 594, 595, 625, 667, 691, 762, 763, 810, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877,
    878, 879, 882, 883, 884, 885, 886, 887, 888, 889, 941, 947,
];
const ORDER_MASS_CANCEL_REQUEST_GROUPED: &[u16] =
    &[455, 456, 458, 459, 865, 866, 867, 868, 888, 889];
// MsgType V: 160 fields, 150 of them in repeating groups.
const MARKET_DATA_REQUEST_FIELDS: &[u16] = &[
    22, 48, 55, 65, 106, 107, 146, 167, 200, 202, 206, 207, 223, 224, 225, 226, 227, 228, 231, 239,
    240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 262,
    263, 264, 265, 266, 267, 269, 286, 305, 306, 307, 308, 309, 310, 311, 312, 313, 316, 317, 318,
    336, 348, 349, 350, 351, 362, 363, 364, 365, 386, 435, 436, 454, 455, 456, 457, 458, 459, 460,
    461, 462, 463, 470, 471, 472, 541, 542, 543, 546, 547, 555, 556, 592, 593, 594, 595, 596, 597,
    598, 599, 600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613, 614, 615, 616,
    617, 618, 619, 620, 621, 622, 623, 624, 625, 667, 691, 711, 739, 740, 762, 763, 764, 810, 812,
    815, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877, 878, 879, 882, 883, 884, 885, 886, 887,
    888, 889, 941, 942, 947, 955, 956,
];
const MARKET_DATA_REQUEST_GROUPED: &[u16] = &[
    22, 48, 55, 65, 106, 107, 167, 200, 202, 206, 207, 223, 224, 225, 226, 227, 228, 231, 239, 240,
    241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 269, 305,
    306, 307, 308, 309, 310, 311, 312, 313, 316, 317, 318, 336, 348, 349, 350, 351, 362, 363, 364,
    365, 386, 435, 436, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 470, 471, 472, 541, 542,
    543, 555, 556, 592, 593, 594, 595, 596, 597, 598, 599, 600, 601, 602, 603, 604, 605, 606, 607,
    608, 609, 610, 611, 612, 613, 614, 615, 616, 617, 618, 619, 620, 621, 622, 623, 624, 625, 667,
    691, 711, 739, 740, 762, 763, 764, 810, 812, 815, 864, 865, 866, 867, 868, 873, 874, 875, 876,
    877, 878, 879, 882, 883, 884, 885, 886, 887, 888, 889, 941, 942, 947, 955, 956,
];
// MsgType 8: 356 fields, 139 of them in repeating groups.
const EXECUTION_REPORT_FIELDS: &[u16] = &[
    1, 6, 11, 12, 13, 14, 15, 17, 18, 19, 21, 22, 29, 30, 31, 32, 37, 38, 39, 40, 41, 44, 48, 54,
    55, 58, 59, 60, 63, 64, 65, 66, 75, 77, 99, 103, 106, 107, 110, 111, 113, 118, 119, 120, 126,
    136, 137, 138, 139, 150, 151, 152, 155, 156, 157, 158, 159, 167, 168, 192, 193, 194, 195, 198,
    200, 202, 206, 207, 210, 211, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231,
    232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250,
    251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 305, 306, 307, 308, 309, 310, 311, 312, 313,
    316, 317, 318, 336, 337, 348, 349, 350, 351, 354, 355, 362, 363, 364, 365, 375, 376, 377, 378,
    381, 382, 388, 389, 423, 424, 425, 426, 427, 432, 435, 436, 437, 438, 442, 447, 448, 452, 453,
    454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 468, 469, 470, 471, 472, 479, 480, 481, 483,
    484, 485, 494, 497, 513, 515, 516, 518, 519, 520, 521, 523, 524, 525, 526, 527, 528, 529, 538,
    539, 541, 542, 543, 544, 545, 548, 549, 551, 555, 556, 564, 565, 566, 581, 582, 583, 584, 587,
    588, 589, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 600, 601, 602, 603, 604, 605, 606,
    607, 608, 609, 610, 611, 612, 613, 614, 615, 616, 617, 618, 619, 620, 621, 622, 623, 624, 625,
    635, 636, 637, 638, 639, 641, 651, 652, 654, 655, 660, 662, 663, 667, 669, 683, 687, 688, 689,
    690, 691, 693, 696, 697, 698, 699, 701, 711, 738, 739, 740, 761, 762, 763, 764, 775, 788, 790,
    797, 802, 803, 804, 805, 810, 835, 836, 837, 838, 839, 840, 841, 842, 843, 844, 845, 846, 847,
    848, 849, 850, 851, 854, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877, 878, 879, 882, 883,
    884, 885, 886, 887, 888, 889, 891, 898, 911, 912, 913, 914, 915, 916, 917, 918, 919, 920, 921,
    922, 941, 942, 943, 947, 955, 956,
];
const EXECUTION_REPORT_GROUPED: &[u16] = &[
    137, 138, 139, 233, 234, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254,
    256, 257, 305, 306, 307, 308, 309, 310, 311, 312, 313, 316, 317, 318, 337, 362, 363, 364, 365,
    375, 435, 436, 437, 438, 447, 448, 452, 455, 456, 457, 458, 459, 462, 463, 519, 520, 521, 523,
    524, 525, 538, 539, 542, 545, 556, 564, 565, 566, 587, 588, 592, 593, 594, 595, 596, 597, 598,
    599, 600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613, 614, 615, 616, 617,
    618, 619, 620, 621, 622, 623, 624, 637, 654, 655, 683, 687, 688, 689, 690, 739, 740, 763, 764,
    802, 803, 804, 805, 810, 865, 866, 867, 868, 877, 878, 879, 882, 883, 884, 885, 886, 887, 888,
    889, 891, 941, 942, 955, 956,
];
// MsgType 9: 21 fields, 0 of them in repeating groups.
const ORDER_CANCEL_REJECT_FIELDS: &[u16] = &[
    1, 11, 37, 39, 41, 58, 60, 66, 75, 102, 198, 229, 354, 355, 434, 526, 581, 583, 586, 636, 660,
];
const ORDER_CANCEL_REJECT_GROUPED: &[u16] = &[];
// MsgType j: 7 fields, 0 of them in repeating groups.
const BUSINESS_MESSAGE_REJECT_FIELDS: &[u16] = &[45, 58, 354, 355, 372, 379, 380];
const BUSINESS_MESSAGE_REJECT_GROUPED: &[u16] = &[];
// MsgType r: 117 fields, 13 of them in repeating groups.
const ORDER_MASS_CANCEL_REPORT_FIELDS: &[u16] = &[
    11, 22, 37, 41, 48, 54, 55, 58, 60, 65, 106, 107, 167, 198, 200, 202, 206, 207, 223, 224, 225,
    226, 227, 228, 231, 239, 240, 241, 242, 243, 244, 245, 246, 247, 255, 256, 305, 306, 307, 308,
    309, 310, 311, 312, 313, 316, 317, 318, 336, 348, 349, 350, 351, 354, 355, 362, 363, 364, 365,
    435, 436, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 470, 471, 472, 526, 530, 531, 532,
    533, 534, 535, 536, 541, 542, 543, 592, 593, 594, 595, 625, 667, 691, 762, 763, 810, 864, 865,
    866, 867, 868, 873, 874, 875, 876, 877, 878, 879, 882, 883, 884, 885, 886, 887, 888, 889, 941,
    947,
];
const ORDER_MASS_CANCEL_REPORT_GROUPED: &[u16] = &[
    41, 455, 456, 458, 459, 535, 536, 865, 866, 867, 868, 888, 889,
];
// MsgType W: 184 fields, 133 of them in repeating groups.
const MARKET_DATA_SNAPSHOT_FIELDS: &[u16] = &[
    15, 18, 22, 37, 48, 55, 58, 59, 65, 106, 107, 110, 126, 167, 200, 202, 206, 207, 223, 224, 225,
    226, 227, 228, 231, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 262, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277, 282, 283, 284, 286,
    287, 288, 289, 290, 291, 292, 299, 305, 306, 307, 308, 309, 310, 311, 312, 313, 316, 317, 318,
    336, 346, 348, 349, 350, 351, 354, 355, 362, 363, 364, 365, 432, 435, 436, 451, 454, 455, 456,
    457, 458, 459, 460, 461, 462, 463, 470, 471, 472, 541, 542, 543, 546, 555, 556, 592, 593, 594,
    595, 596, 597, 598, 599, 600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613,
    614, 615, 616, 617, 618, 619, 620, 621, 622, 623, 624, 625, 667, 691, 711, 739, 740, 762, 763,
    764, 810, 811, 813, 814, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877, 878, 879, 882, 883,
    884, 885, 886, 887, 888, 889, 941, 942, 947, 955, 956,
];
const MARKET_DATA_SNAPSHOT_GROUPED: &[u16] = &[
    15, 18, 37, 58, 59, 110, 126, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 256, 257, 269, 270, 271, 272, 273, 274, 275, 276, 277, 282, 283, 284, 286, 287, 288, 289,
    290, 299, 305, 306, 307, 308, 309, 310, 311, 312, 313, 316, 317, 318, 336, 346, 354, 355, 362,
    363, 364, 365, 432, 435, 436, 455, 456, 457, 458, 459, 462, 463, 542, 546, 556, 592, 593, 594,
    595, 596, 597, 598, 599, 600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613,
    614, 615, 616, 617, 618, 619, 620, 621, 622, 623, 624, 625, 739, 740, 763, 764, 810, 811, 865,
    866, 867, 868, 877, 878, 879, 882, 883, 884, 885, 886, 887, 888, 889, 941, 942, 955, 956,
];
// MsgType X: 188 fields, 184 of them in repeating groups.
const MARKET_DATA_INCREMENTAL_FIELDS: &[u16] = &[
    15, 18, 22, 37, 48, 55, 58, 59, 65, 106, 107, 110, 126, 167, 200, 202, 206, 207, 223, 224, 225,
    226, 227, 228, 231, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 262, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277, 278, 279, 280, 282,
    283, 284, 285, 286, 287, 288, 289, 290, 291, 292, 299, 305, 306, 307, 308, 309, 310, 311, 312,
    313, 316, 317, 318, 336, 346, 348, 349, 350, 351, 354, 355, 362, 363, 364, 365, 432, 435, 436,
    451, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 470, 471, 472, 541, 542, 543, 546, 555,
    556, 592, 593, 594, 595, 596, 597, 598, 599, 600, 601, 602, 603, 604, 605, 606, 607, 608, 609,
    610, 611, 612, 613, 614, 615, 616, 617, 618, 619, 620, 621, 622, 623, 624, 625, 667, 691, 711,
    739, 740, 762, 763, 764, 810, 811, 813, 814, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877,
    878, 879, 882, 883, 884, 885, 886, 887, 888, 889, 941, 942, 947, 955, 956,
];
const MARKET_DATA_INCREMENTAL_GROUPED: &[u16] = &[
    15, 18, 22, 37, 48, 55, 58, 59, 65, 106, 107, 110, 126, 167, 200, 202, 206, 207, 223, 224, 225,
    226, 227, 228, 231, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 269, 270, 271, 272, 273, 274, 275, 276, 277, 278, 279, 280, 282, 283, 284,
    285, 286, 287, 288, 289, 290, 291, 292, 299, 305, 306, 307, 308, 309, 310, 311, 312, 313, 316,
    317, 318, 336, 346, 348, 349, 350, 351, 354, 355, 362, 363, 364, 365, 432, 435, 436, 451, 454,
    455, 456, 457, 458, 459, 460, 461, 462, 463, 470, 471, 472, 541, 542, 543, 546, 555, 556, 592,
    593, 594, 595, 596, 597, 598, 599, 600, 601, 602, 603, 604, 605, 606, 607, 608, 609, 610, 611,
    612, 613, 614, 615, 616, 617, 618, 619, 620, 621, 622, 623, 624, 625, 667, 691, 711, 739, 740,
    762, 763, 764, 810, 811, 864, 865, 866, 867, 868, 873, 874, 875, 876, 877, 878, 879, 882, 883,
    884, 885, 886, 887, 888, 889, 941, 942, 947, 955, 956,
];
// MsgType Y: 7 fields, 1 of them in repeating groups.
const MARKET_DATA_REQUEST_REJECT_FIELDS: &[u16] = &[58, 262, 281, 354, 355, 816, 817];
const MARKET_DATA_REQUEST_REJECT_GROUPED: &[u16] = &[817];

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(sorted: &[u16], tag: i64) -> bool {
        u16::try_from(tag).is_ok_and(|t| sorted.binary_search(&t).is_ok())
    }

    #[test]
    fn tables_are_sorted_and_consistent() {
        let sorted = |s: &[u16]| s.windows(2).all(|w| w[0] < w[1]);
        assert!(sorted(HEADER_TAGS) && sorted(TRAILER_TAGS) && sorted(HEADER_GROUPED));
        assert!(FORMATS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ENUMS.windows(2).all(|w| w[0].0 < w[1].0));
        for d in DEFINED {
            let name = String::from_utf8_lossy(d.msg_type);
            assert!(sorted(d.fields) && sorted(d.grouped), "{name}");
            assert!(is_known_msg_type(d.msg_type), "{name}");
            for &t in d.fields {
                assert!(is_known_tag(i64::from(t)), "{name}: {t}");
                assert!(!is_header_or_trailer_tag(i64::from(t)), "{name}: {t}");
            }
            for &t in d.grouped.iter().chain(d.required) {
                assert!(contains(d.fields, i64::from(t)), "{name}: {t}");
            }
        }
        for &(t, _) in FORMATS.iter() {
            assert!(is_known_tag(i64::from(t)));
        }
    }

    /// The compile-time bit sets and index tables say exactly what the lists say.
    #[test]
    fn lookup_tables_match_lists() {
        for tag in -2..=MAX_KNOWN_TAG + 70 {
            assert_eq!(
                is_header_or_trailer_tag(tag),
                contains(HEADER_TAGS, tag) || contains(TRAILER_TAGS, tag),
                "{tag}"
            );
            assert_eq!(
                HEADER_GROUPED_BITS.contains(tag),
                contains(HEADER_GROUPED, tag)
            );
            for (d, (fields, grouped)) in DEFINED.iter().zip(&DEFINED_BITS) {
                assert_eq!(fields.contains(tag), contains(d.fields, tag), "{tag}");
                assert_eq!(grouped.contains(tag), contains(d.grouped, tag), "{tag}");
            }
            let format = FORMATS
                .iter()
                .find(|(t, _)| i64::from(*t) == tag)
                .map(|e| e.1);
            assert_eq!(format_of(tag), format, "{tag}");
            let allowed = ENUMS
                .iter()
                .find(|(t, _)| i64::from(*t) == tag)
                .map(|e| e.1);
            assert_eq!(allowed_of(tag).is_some(), allowed.is_some(), "{tag}");
        }
    }

    #[test]
    fn known_tags_and_types() {
        assert!(is_known_tag(1) && is_known_tag(956) && is_known_tag(100) && is_known_tag(102));
        for t in [0, -1, 101, 261, 809, 957, 999, 5000, 9999, i64::MAX] {
            assert!(!is_known_tag(t), "{t}");
        }
        for t in [
            &b"0"[..],
            b"9",
            b"A",
            b"Z",
            b"a",
            b"z",
            b"AA",
            b"AZ",
            b"BA",
            b"BH",
        ] {
            assert!(is_known_msg_type(t));
        }
        for t in [
            &b""[..],
            b"I",
            b"O",
            b"U",
            b"BI",
            b"CA",
            b"AAA",
            b"a1",
            b"-",
        ] {
            assert!(!is_known_msg_type(t));
        }
    }

    #[test]
    fn exec_inst_lists() {
        let a = Allowed::CharList(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcde");
        assert!(is_allowed(b"1", a) && is_allowed(b"G 6 T", a));
        assert!(!is_allowed(b"1  2", a) && !is_allowed(b" 1", a) && !is_allowed(b"f", a));
        assert!(!is_allowed(b"12", a));
    }
}
