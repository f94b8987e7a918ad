//! The FIX codec end to end: golden encodings, encode/frame/parse round trips, incremental
//! framing of split streams, resynchronisation after garbage, session-level validation and
//! UTCTimestamps.
//!
//! Randomised properties derive every case from one u64 seed through a small xorshift
//! generator: quickcheck draws the seeds and reports a failing one, and
//! `FERROX_SEED=<seed> cargo test -p ferrox-gateway --test codec` reruns exactly that case.
//! `FERROX_PROPTEST_CASES=<n>` changes the number of random cases per property.

use ferrox_gateway::fix::dict::{validate, RejectReason, SessionReject};
use ferrox_gateway::fix::frame::HEADER_FIELD_MAX;
use ferrox_gateway::fix::time::{format_utc_timestamp_ms, parse_utc_timestamp};
use ferrox_gateway::fix::{frame, tags, Encoder, Framing, Garble, Parser, SOH};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

// ----- seeded randomness ------------------------------------------------------------------------

/// xorshift64*, seeded through SplitMix64 so that small or zero seeds still give good streams.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` must be positive).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A value in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// A case's seed. It does not shrink: a smaller seed is an unrelated case.
#[derive(Clone, Debug)]
struct Seed(u64);

impl Arbitrary for Seed {
    fn arbitrary(g: &mut Gen) -> Seed {
        Seed(u64::arbitrary(g))
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs `check` on one seed, turning a failure or a panic into a quickcheck error that names the
/// seed.
fn run_seed(check: fn(u64) -> Result<(), String>, seed: u64) -> TestResult {
    match std::panic::catch_unwind(|| check(seed)) {
        Ok(Ok(())) => TestResult::passed(),
        Ok(Err(msg)) => TestResult::error(format!("seed {seed} (FERROX_SEED={seed}): {msg}")),
        Err(_) => TestResult::error(format!("seed {seed} (FERROX_SEED={seed}): panicked")),
    }
}

/// Defines a test that runs `check` for the seed in `FERROX_SEED`, or for
/// `FERROX_PROPTEST_CASES` (default 300) seeds drawn by quickcheck, which reports the failing
/// one. quickcheck wants a plain `fn(Seed) -> TestResult` per property, hence the macro.
macro_rules! seeded_property {
    ($test:ident, $check:ident) => {
        #[test]
        fn $test() {
            if let Some(seed) = env_u64("FERROX_SEED") {
                if let Err(msg) = $check(seed) {
                    panic!("seed {seed}: {msg}");
                }
                return;
            }
            fn prop(seed: Seed) -> TestResult {
                run_seed($check, seed.0)
            }
            let cases = env_u64("FERROX_PROPTEST_CASES").unwrap_or(300);
            QuickCheck::new()
                .tests(cases)
                .max_tests(cases * 10)
                .quickcheck(prop as fn(Seed) -> TestResult);
        }
    };
}

// ----- helpers ----------------------------------------------------------------------------------

/// `|` stands for SOH in readable test messages.
fn soh(s: &str) -> Vec<u8> {
    s.replace('|', "\x01").into_bytes()
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\x01', "|")
}

/// 2026-11-22 21:59:26 UTC (`date -u -d @1795384766`).
const T0_NS: u64 = 1_795_384_766_000_000_000;

/// A message with correct BodyLength and CheckSum around `body` (`|` for SOH), built by hand
/// rather than by the encoder so that framing tests do not depend on it.
fn wrap(body: &str) -> Vec<u8> {
    let body = soh(body);
    let mut m = format!("8=FIX.4.4\x019={}\x01", body.len()).into_bytes();
    m.extend_from_slice(&body);
    let sum: u32 = m.iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    m
}

/// Checks BodyLength and CheckSum of `m` by counting and summing its bytes.
fn check_envelope(m: &[u8]) {
    let text = show(m);
    let body_start = text.find("|9=").expect("BodyLength") + 3;
    let body_start = body_start + text[body_start..].find('|').expect("SOH") + 1;
    let trailer = text.rfind("10=").expect("CheckSum");
    let declared: usize = text[text.find("|9=").unwrap() + 3..body_start - 1]
        .parse()
        .unwrap();
    assert_eq!(declared, trailer - body_start, "BodyLength of {text}");
    let sum: u32 = m[..trailer].iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    assert_eq!(
        text[trailer + 3..trailer + 6].parse::<u32>().unwrap(),
        sum,
        "CheckSum of {text}"
    );
}

/// Feeds chunks into a receive buffer the way a session does, collecting framed messages and
/// the reasons for dropped bytes. Asserts the framing contract on every call.
struct Feeder {
    buf: Vec<u8>,
    max: usize,
    messages: Vec<Vec<u8>>,
    garbled: Vec<Garble>,
    high_water: usize,
}

impl Feeder {
    fn new(max: usize) -> Feeder {
        Feeder {
            buf: Vec::new(),
            max,
            messages: Vec::new(),
            garbled: Vec::new(),
            high_water: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        self.high_water = self.high_water.max(self.buf.len());
        loop {
            match frame(&self.buf, self.max) {
                Framing::Message { len } => {
                    assert!(len > 0 && len <= self.buf.len() && len <= self.max);
                    self.messages.push(self.buf.drain(..len).collect());
                }
                Framing::Garbled { skip, reason } => {
                    assert!(skip >= 1 && skip <= self.buf.len(), "skip {skip}");
                    self.garbled.push(reason);
                    self.buf.drain(..skip);
                }
                Framing::Incomplete => {
                    assert!(
                        incomplete_is_justified(&self.buf, self.max),
                        "Incomplete on {:?}",
                        show(&self.buf)
                    );
                    return;
                }
            }
        }
    }
}

/// An independent statement of when waiting is right: the buffer is a proper prefix of a frame
/// header (8 field, then 9 field, each within HEADER_FIELD_MAX bytes), or the header is complete
/// and within the size limit but the declared message is longer than the buffer.
fn incomplete_is_justified(buf: &[u8], max: usize) -> bool {
    if buf.is_empty() || buf == b"8" {
        return true;
    }
    if !buf.starts_with(b"8=") {
        return false;
    }
    let Some(soh8) = buf.iter().position(|&b| b == SOH) else {
        return buf.len() < HEADER_FIELD_MAX;
    };
    if soh8 >= HEADER_FIELD_MAX {
        return false;
    }
    let rest = &buf[soh8 + 1..];
    if rest.len() < 2 {
        return b"9=".starts_with(rest);
    }
    if !rest.starts_with(b"9=") {
        return false;
    }
    let digits = &rest[2..];
    match digits.iter().position(|&b| b == SOH) {
        None => digits.iter().all(u8::is_ascii_digit) && rest.len() < HEADER_FIELD_MAX,
        Some(end) => {
            let Ok(body_len) = std::str::from_utf8(&digits[..end])
                .unwrap()
                .parse::<usize>()
            else {
                return false;
            };
            let total = soh8 + 1 + 2 + end + 1 + body_len + 7;
            total <= max && buf.len() < total
        }
    }
}

/// Writes the standard header after `35=`.
fn header(e: &mut Encoder, msg_type: &[u8], seq: u64) {
    e.begin(msg_type);
    e.u64(tags::MSG_SEQ_NUM, seq)
        .str(tags::SENDER_COMP_ID, b"CLIENT1")
        .timestamp(tags::SENDING_TIME, T0_NS)
        .str(tags::TARGET_COMP_ID, b"FERROX");
}

/// Parses and validates a finished message.
fn validate_bytes(raw: &[u8]) -> Result<(), SessionReject> {
    assert_eq!(frame(raw, 1 << 16), Framing::Message { len: raw.len() });
    let mut parser = Parser::new(256);
    let msg = parser.parse(raw).expect("parses");
    validate(&msg)
}

fn reject(reason: RejectReason, tag: i64) -> Result<(), SessionReject> {
    Err(SessionReject {
        reason,
        ref_tag: Some(tag),
    })
}

// ----- golden vectors ---------------------------------------------------------------------------

#[test]
fn golden_logon() {
    let mut e = Encoder::new(256);
    e.begin(b"A");
    e.u64(tags::MSG_SEQ_NUM, 1)
        .str(tags::SENDER_COMP_ID, b"FERROX")
        .timestamp(tags::SENDING_TIME, T0_NS)
        .str(tags::TARGET_COMP_ID, b"CLIENT1")
        .u64(tags::ENCRYPT_METHOD, 0)
        .u64(tags::HEART_BT_INT, 30)
        .bool(tags::RESET_SEQ_NUM_FLAG, true);
    // BodyLength 74: the 74 bytes from "35=A|" through "141=Y|". CheckSum 237: the sum of all
    // bytes before "10=" modulo 256 (computed with Python, and re-checked below by counting).
    let expected = "8=FIX.4.4|9=74|35=A|34=1|49=FERROX|52=20261122-21:59:26.000|56=CLIENT1|\
                    98=0|108=30|141=Y|10=237|";
    let out = e.finish();
    assert_eq!(show(out), expected);
    check_envelope(out);
}

#[test]
fn golden_execution_report() {
    let mut e = Encoder::new(512);
    let t = T0_NS + 123_456_789;
    e.begin(b"8");
    e.u64(tags::MSG_SEQ_NUM, 2)
        .str(tags::SENDER_COMP_ID, b"FERROX")
        .timestamp(tags::SENDING_TIME, t)
        .str(tags::TARGET_COMP_ID, b"CLIENT1")
        .u64(tags::ACCOUNT, 7)
        .decimal(tags::AVG_PX, 19010, 2)
        .str(tags::CL_ORD_ID, b"ORD-0001")
        .decimal(tags::CUM_QTY, 40, 0)
        .str(tags::EXEC_ID, b"E-12")
        .decimal(tags::LAST_PX, 1_901_000, 4)
        .decimal(tags::LAST_QTY, 40, 0)
        .u64(tags::ORDER_ID, 1001)
        .decimal(tags::ORDER_QTY, 100, 0)
        .char(tags::ORD_STATUS, b'1')
        .char(tags::ORD_TYPE, b'2')
        .decimal(tags::PRICE, 19010, 2)
        .char(tags::SIDE, b'1')
        .str(tags::SYMBOL, b"AAPL")
        .char(tags::TIME_IN_FORCE, b'1')
        .timestamp(tags::TRANSACT_TIME, t)
        .char(tags::EXEC_TYPE, b'F')
        .decimal(tags::LEAVES_QTY, 60, 0);
    // BodyLength 199 and CheckSum 027, computed independently (Python) and re-checked below.
    let expected = "8=FIX.4.4|9=199|35=8|34=2|49=FERROX|52=20261122-21:59:26.123|56=CLIENT1|\
                    1=7|6=190.1|11=ORD-0001|14=40|17=E-12|31=190.1|32=40|37=1001|38=100|39=1|\
                    40=2|44=190.1|54=1|55=AAPL|59=1|60=20261122-21:59:26.123|150=F|151=60|\
                    10=027|";
    let out = e.finish().to_vec();
    assert_eq!(show(&out), expected);
    check_envelope(&out);
    // What we send passes our own validation.
    assert_eq!(validate_bytes(&out), Ok(()));
}

#[test]
fn encoder_reuse_gives_identical_bytes() {
    let mut e = Encoder::new(64);
    header(&mut e, b"0", 1);
    let first = e.finish().to_vec();
    header(&mut e, b"1", 2);
    e.str(
        tags::TEST_REQ_ID,
        b"a much longer value than the first message had room for",
    );
    e.finish();
    header(&mut e, b"0", 1);
    assert_eq!(e.finish(), &first[..]);
    check_envelope(&first);
}

// ----- round trips ------------------------------------------------------------------------------

/// FIX `data` fields, whose value length comes from the preceding Length field; random field
/// lists leave them out because a random Length value would not describe them.
const DATA_TAGS: [u32; 16] = [
    89, 91, 96, 213, 349, 351, 353, 355, 357, 359, 361, 363, 365, 446, 619, 622,
];

/// A random body: 0 to 30 fields with tags 1..=956 and printable ASCII values (SOH excluded by
/// construction), some empty.
fn random_fields(rng: &mut Rng) -> Vec<(u32, Vec<u8>)> {
    let n = rng.below(31);
    let mut fields = Vec::new();
    while (fields.len() as u64) < n {
        let tag = rng.range(1, 956) as u32;
        if DATA_TAGS.contains(&tag) {
            continue;
        }
        let len = rng.below(21) as usize;
        let value = (0..len).map(|_| rng.range(0x20, 0x7e) as u8).collect();
        fields.push((tag, value));
    }
    fields
}

fn random_msg_type(rng: &mut Rng) -> Vec<u8> {
    const TYPES: [&[u8]; 8] = [b"0", b"A", b"D", b"8", b"F", b"AE", b"z", b"V"];
    TYPES[rng.below(TYPES.len() as u64) as usize].to_vec()
}

fn encode(e: &mut Encoder, msg_type: &[u8], fields: &[(u32, Vec<u8>)]) -> Vec<u8> {
    e.begin(msg_type);
    for (tag, value) in fields {
        e.str(*tag, value);
    }
    e.finish().to_vec()
}

fn check_round_trip(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut e = Encoder::new(64);
    let mut parser = Parser::new(64);
    for _ in 0..20 {
        let msg_type = random_msg_type(&mut rng);
        let fields = random_fields(&mut rng);
        let raw = encode(&mut e, &msg_type, &fields);
        if frame(&raw, raw.len()) != (Framing::Message { len: raw.len() }) {
            return Err(format!("does not frame: {}", show(&raw)));
        }
        let msg = parser
            .parse(&raw)
            .map_err(|err| format!("{err}: {}", show(&raw)))?;
        let got: Vec<(i64, Vec<u8>)> = msg
            .fields()
            .iter()
            .map(|f| (f.tag, msg.value(f).to_vec()))
            .collect();
        let body_len = raw.len() - "8=FIX.4.4|9=|".len() - 7 - msg.get(9).unwrap().len();
        let mut want = vec![
            (8, b"FIX.4.4".to_vec()),
            (9, body_len.to_string().into_bytes()),
            (35, msg_type.clone()),
        ];
        want.extend(fields.iter().map(|(t, v)| (i64::from(*t), v.clone())));
        want.push((10, got.last().map(|f| f.1.clone()).unwrap_or_default()));
        if got != want {
            return Err(format!("parsed {got:?}, wanted {want:?}"));
        }
        // Copying the body fields verbatim into a new message reproduces it exactly.
        let copied = {
            e.begin(&msg_type);
            e.raw_fields(msg.raw_fields(3, msg.fields().len() - 1));
            e.finish().to_vec()
        };
        if copied != raw {
            return Err(format!("copy {} != {}", show(&copied), show(&raw)));
        }
    }
    Ok(())
}

seeded_property!(encode_frame_parse_round_trip, check_round_trip);

/// Several messages concatenated, delivered in two chunks split at every byte, byte by byte,
/// and in random chunks: the same messages come out, nothing is dropped.
fn check_split_stream(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut e = Encoder::new(64);
    let msgs: Vec<Vec<u8>> = (0..rng.range(1, 4))
        .map(|_| {
            let t = random_msg_type(&mut rng);
            let f = random_fields(&mut rng);
            encode(&mut e, &t, &f)
        })
        .collect();
    let stream = msgs.concat();
    let mut plans: Vec<Vec<usize>> = (0..=stream.len()).map(|k| vec![k]).collect();
    plans.push((1..stream.len()).collect());
    let mut random_cuts = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        at += rng.range(1, 40) as usize;
        random_cuts.push(at.min(stream.len()));
    }
    plans.push(random_cuts);
    for cuts in plans {
        let mut feeder = Feeder::new(1 << 16);
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
            feeder.feed(&stream[from..cut]);
            from = cut;
        }
        if feeder.messages != msgs || !feeder.garbled.is_empty() || !feeder.buf.is_empty() {
            return Err(format!(
                "cuts {cuts:?}: got {} messages, garbled {:?}",
                feeder.messages.len(),
                feeder.garbled
            ));
        }
    }
    Ok(())
}

seeded_property!(split_streams_frame_identically, check_split_stream);

// ----- garbled input ----------------------------------------------------------------------------

#[test]
fn resynchronises_after_junk_and_a_short_body_length() {
    let good = wrap("35=1|34=3|49=A|52=20260101-00:00:00|56=B|112=T|");
    // A heartbeat that claims a 29-byte body but has more: the bytes where its CheckSum should
    // be are not "10=".
    let mut short = soh("8=FIX.4.4|9=29|35=0|34=2|49=A|52=20260101-00:00:00|56=B|");
    let sum: u32 = short.iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    short.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    let mut stream = soh("35=0|");
    stream.extend_from_slice(&short);
    stream.extend_from_slice(&good);

    assert_eq!(
        frame(&stream, 4096),
        Framing::Garbled {
            skip: 5,
            reason: Garble::NoBeginString
        }
    );
    assert_eq!(
        frame(&stream[5..], 4096),
        Framing::Garbled {
            skip: short.len(),
            reason: Garble::NoCheckSum
        }
    );
    let rest = &stream[5 + short.len()..];
    assert_eq!(frame(rest, 4096), Framing::Message { len: good.len() });

    let mut feeder = Feeder::new(4096);
    feeder.feed(&stream);
    assert_eq!(feeder.messages, vec![good]);
    assert_eq!(feeder.garbled, [Garble::NoBeginString, Garble::NoCheckSum]);
}

#[test]
fn too_large_body_length_swallows_then_resynchronises() {
    let first = soh("8=FIX.4.4|9=80|35=0|34=2|49=A|52=20260101-00:00:00|56=B|10=000|");
    let second = wrap("35=0|34=3|49=A|52=20260101-00:00:00|56=B|");
    let third = wrap("35=0|34=4|49=A|52=20260101-00:00:00|56=B|");
    let mut feeder = Feeder::new(4096);
    feeder.feed(&first);
    assert!(
        feeder.garbled.is_empty(),
        "waits while the claim can be true"
    );
    feeder.feed(&second);
    feeder.feed(&third);
    assert_eq!(feeder.garbled, [Garble::NoCheckSum]);
    assert_eq!(feeder.messages, vec![second, third]);
}

#[test]
fn wrong_checksum_drops_exactly_the_message() {
    let good = wrap("35=0|34=2|49=A|52=20260101-00:00:00|56=B|");
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 2] = if bad[n - 2] == b'9' {
        b'0'
    } else {
        bad[n - 2] + 1
    };
    assert_eq!(
        frame(&bad, 4096),
        Framing::Garbled {
            skip: bad.len(),
            reason: Garble::BadCheckSum
        }
    );
    let mut feeder = Feeder::new(4096);
    feeder.feed(&[bad, good.clone()].concat());
    assert_eq!(feeder.messages, vec![good]);
    assert_eq!(feeder.garbled, [Garble::BadCheckSum]);
}

#[test]
fn malformed_headers() {
    let cases: [(&str, Garble); 6] = [
        ("8=FIX.4.4|9=1x|35=0|", Garble::BadBodyLength),
        ("8=FIX.4.4|9=|35=0|", Garble::BadBodyLength),
        ("8=FIX.4.4|35=0|9=5|", Garble::NoBodyLength),
        ("8=FIX.4.4|9=-5|35=0|", Garble::BadBodyLength),
        ("8=FIX.4.4|9=99999999999999999999999|", Garble::BodyTooLarge),
        ("X8=FIX.4.4|", Garble::NoBeginString),
    ];
    for (text, reason) in cases {
        match frame(&soh(text), 4096) {
            Framing::Garbled { reason: r, skip } => {
                assert_eq!(r, reason, "{text}");
                assert!(skip >= 1);
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    // BodyLength digits without end: garbage once the field passes HEADER_FIELD_MAX bytes.
    let long = soh(&format!("8=FIX.4.4|9={}", "1".repeat(HEADER_FIELD_MAX)));
    assert!(matches!(
        frame(&long, usize::MAX),
        Framing::Garbled {
            reason: Garble::BadBodyLength,
            ..
        }
    ));
    // An empty body frames (the parser then finds no MsgType).
    let empty = wrap("");
    assert_eq!(frame(&empty, 4096), Framing::Message { len: empty.len() });
}

#[test]
fn body_too_large_is_dropped_without_buffering_it() {
    let max = 64 * 1024;
    let value = vec![b'x'; 1 << 20];
    let body = [soh("35=B|148="), value, soh("|")].concat();
    let mut huge = format!("8=FIX.4.4\x019={}\x01", body.len()).into_bytes();
    huge.extend_from_slice(&body);
    huge.extend_from_slice(b"10=000\x01");
    // Decided from the header and a few bytes of body.
    assert_eq!(
        frame(&huge[..40], max),
        Framing::Garbled {
            skip: 40,
            reason: Garble::BodyTooLarge
        }
    );
    let good = wrap("35=0|34=2|49=A|52=20260101-00:00:00|56=B|");
    let stream = [huge, good.clone()].concat();
    let mut feeder = Feeder::new(max);
    for chunk in stream.chunks(4096) {
        feeder.feed(chunk);
    }
    assert_eq!(feeder.messages, vec![good]);
    assert!(feeder.garbled.contains(&Garble::BodyTooLarge));
    assert!(
        feeder.high_water <= 2 * 4096,
        "buffered {} bytes",
        feeder.high_water
    );
}

/// Bytes drawn from an alphabet rich in FIX structure, so that random input reaches the deeper
/// branches of framing and parsing rather than failing at the first byte.
fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    const PIECES: [&[u8]; 14] = [
        b"8=",
        b"9=",
        b"\x01",
        b"10=",
        b"35=",
        b"FIX.4.4",
        b"0",
        b"1",
        b"5",
        b"9",
        b"=",
        b"-",
        b"x",
        b"\x018=FIX.4.4\x019=",
    ];
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        if rng.below(8) == 0 {
            out.push(rng.below(256) as u8);
        } else {
            out.extend_from_slice(PIECES[rng.below(PIECES.len() as u64) as usize]);
        }
    }
    out
}

/// Random bytes in random chunks: framing never panics and always makes progress (the Feeder
/// asserts skip >= 1 and that every Incomplete is justified); whatever frames is parsed and
/// validated without panicking.
fn check_random_bytes(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let n = rng.range(0, 600) as usize;
    let bytes = random_bytes(&mut rng, n);
    let max = rng.range(16, 400) as usize;
    let mut feeder = Feeder::new(max);
    let mut at = 0;
    while at < bytes.len() {
        let to = (at + rng.range(1, 64) as usize).min(bytes.len());
        feeder.feed(&bytes[at..to]);
        at = to;
    }
    let mut parser = Parser::new(32);
    for m in &feeder.messages {
        if let Ok(msg) = parser.parse(m) {
            let _ = validate(&msg);
            for f in msg.fields() {
                if f.start > f.end || f.end as usize > m.len() {
                    return Err(format!("field {f:?} outside {}", show(m)));
                }
            }
        }
    }
    Ok(())
}

seeded_property!(
    random_bytes_never_panic_and_always_progress,
    check_random_bytes
);

/// Valid messages separated by junk that contains no "8=" and ends with SOH: every message is
/// recovered, and each junk run is reported.
fn check_junk_between_messages(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut e = Encoder::new(64);
    let mut stream = Vec::new();
    let mut msgs = Vec::new();
    let mut junk_runs = 0;
    for _ in 0..rng.range(1, 5) {
        if rng.below(2) == 0 {
            let len = rng.range(1, 50) as usize;
            let mut junk = random_bytes(&mut rng, len);
            junk.push(SOH);
            // Break every "8=" so that the junk cannot start a frame.
            for i in 1..junk.len() {
                if junk[i - 1] == b'8' && junk[i] == b'=' {
                    junk[i] = b'x';
                }
            }
            stream.extend_from_slice(&junk);
            junk_runs += 1;
        }
        let t = random_msg_type(&mut rng);
        let f = random_fields(&mut rng);
        let m = encode(&mut e, &t, &f);
        stream.extend_from_slice(&m);
        msgs.push(m);
    }
    // Random chunks, so that a chunk often ends inside the junk, right after its final SOH, or
    // between the "8" and "=" of the next message.
    let mut feeder = Feeder::new(1 << 16);
    let mut at = 0;
    while at < stream.len() {
        let to = (at + rng.range(1, 24) as usize).min(stream.len());
        feeder.feed(&stream[at..to]);
        at = to;
    }
    if feeder.messages != msgs {
        return Err(format!(
            "recovered {} of {} messages from {}",
            feeder.messages.len(),
            msgs.len(),
            show(&stream)
        ));
    }
    if feeder.garbled.len() < junk_runs {
        return Err(format!("{junk_runs} junk runs, {:?}", feeder.garbled));
    }
    Ok(())
}

seeded_property!(
    junk_between_messages_is_skipped,
    check_junk_between_messages
);

// ----- session-level validation -----------------------------------------------------------------

/// A heartbeat with `extra` (already encoded, `|` for SOH) appended to its body.
fn heartbeat_with(extra: &str) -> Vec<u8> {
    let mut e = Encoder::new(256);
    header(&mut e, b"0", 2);
    e.raw_fields(&soh(extra));
    e.finish().to_vec()
}

fn new_order_single(extra: &str) -> Vec<u8> {
    let mut e = Encoder::new(512);
    header(&mut e, b"D", 3);
    e.str(tags::CL_ORD_ID, b"ORD-1")
        .str(tags::SYMBOL, b"AAPL")
        .char(tags::SIDE, b'1')
        .timestamp(tags::TRANSACT_TIME, T0_NS)
        .decimal(tags::ORDER_QTY, 100, 0)
        .char(tags::ORD_TYPE, b'2')
        .decimal(tags::PRICE, 19010, 2)
        .char(tags::TIME_IN_FORCE, b'0')
        .raw_fields(&soh(extra));
    e.finish().to_vec()
}

#[test]
fn valid_messages_pass() {
    assert_eq!(validate_bytes(&heartbeat_with("")), Ok(()));
    assert_eq!(validate_bytes(&heartbeat_with("112=TEST|")), Ok(()));
    assert_eq!(validate_bytes(&new_order_single("")), Ok(()));
    // Parties may repeat; ExecInst takes space-separated values.
    assert_eq!(
        validate_bytes(&new_order_single(
            "453=2|448=A|447=D|452=1|448=B|447=D|452=3|18=6 G|43=Y|122=20260101-00:00:00|"
        )),
        Ok(())
    );
    let mut e = Encoder::new(256);
    header(&mut e, b"A", 1);
    e.u64(98, 0).u64(108, 30).bool(141, true);
    assert_eq!(validate_bytes(e.finish()), Ok(()));
    // A type outside DEFINED: its body is not checked, repeats included.
    assert_eq!(
        validate_bytes(&{
            let mut e = Encoder::new(256);
            header(&mut e, b"B", 4);
            e.str(148, b"headline").str(58, b"a").str(58, b"b");
            e.finish().to_vec()
        }),
        Ok(())
    );
}

#[test]
fn invalid_tag_number() {
    use RejectReason::InvalidTagNumber;
    assert_eq!(
        validate_bytes(&heartbeat_with("999=HI|")),
        reject(InvalidTagNumber, 999)
    );
    assert_eq!(
        validate_bytes(&heartbeat_with("0=HI|")),
        reject(InvalidTagNumber, 0)
    );
    assert_eq!(
        validate_bytes(&heartbeat_with("-1=HI|")),
        reject(InvalidTagNumber, -1)
    );
    assert_eq!(
        validate_bytes(&heartbeat_with("5000=HI|")),
        reject(InvalidTagNumber, 5000)
    );
    assert_eq!(
        validate_bytes(&heartbeat_with("101=HI|")),
        reject(InvalidTagNumber, 101)
    );
    // It comes first: an unknown tag is reported before an earlier empty value.
    assert_eq!(
        validate_bytes(&heartbeat_with("58=|999=HI|")),
        reject(InvalidTagNumber, 999)
    );
}

#[test]
fn tag_not_defined_for_message_type() {
    assert_eq!(
        validate_bytes(&heartbeat_with("55=MSFT|")),
        reject(RejectReason::TagNotDefinedForMessageType, 55)
    );
    assert_eq!(
        validate_bytes(&new_order_single("112=X|")),
        reject(RejectReason::TagNotDefinedForMessageType, 112)
    );
}

#[test]
fn tag_specified_without_value() {
    let mut e = Encoder::new(256);
    e.begin(b"0");
    e.u64(34, 2)
        .str(49, b"CLIENT1")
        .timestamp(52, T0_NS)
        .str(56, b"");
    assert_eq!(
        validate_bytes(e.finish()),
        reject(RejectReason::TagSpecifiedWithoutValue, 56)
    );
}

#[test]
fn tag_appears_more_than_once() {
    assert_eq!(
        validate_bytes(&heartbeat_with("49=OTHER|")),
        reject(RejectReason::TagAppearsMoreThanOnce, 49)
    );
    assert_eq!(
        validate_bytes(&new_order_single("44=190.2|")),
        reject(RejectReason::TagAppearsMoreThanOnce, 44)
    );
    // Header fields are checked in every message type, defined or not.
    let mut e = Encoder::new(256);
    header(&mut e, b"B", 4);
    e.str(148, b"headline").str(52, b"20260101-00:00:00");
    assert_eq!(
        validate_bytes(e.finish()),
        reject(RejectReason::TagAppearsMoreThanOnce, 52)
    );
}

#[test]
fn required_tag_missing() {
    let mut e = Encoder::new(256);
    header(&mut e, b"A", 1);
    e.u64(98, 0);
    assert_eq!(
        validate_bytes(e.finish()),
        reject(RejectReason::RequiredTagMissing, 108)
    );
    // The header's required fields come first, in every message type.
    let mut e = Encoder::new(256);
    e.begin(b"B");
    e.u64(34, 2)
        .str(49, b"CLIENT1")
        .str(56, b"FERROX")
        .str(148, b"h");
    assert_eq!(
        validate_bytes(e.finish()),
        reject(RejectReason::RequiredTagMissing, 52)
    );
    let mut e = Encoder::new(256);
    header(&mut e, b"D", 3);
    e.str(11, b"ORD-1").char(54, b'1');
    assert_eq!(
        validate_bytes(e.finish()),
        reject(RejectReason::RequiredTagMissing, 55)
    );
}

#[test]
fn incorrect_data_format() {
    use RejectReason::IncorrectDataFormat;
    let mut e = Encoder::new(256);
    e.begin(b"0");
    e.str(34, b"abc")
        .str(49, b"CLIENT1")
        .timestamp(52, T0_NS)
        .str(56, b"FERROX");
    assert_eq!(validate_bytes(e.finish()), reject(IncorrectDataFormat, 34));
    assert_eq!(
        validate_bytes(&new_order_single("43=X|")),
        reject(IncorrectDataFormat, 43)
    );
    assert_eq!(
        validate_bytes(&heartbeat_with("122=20260230-00:00:00|")),
        reject(IncorrectDataFormat, 122)
    );
    let mut e = Encoder::new(256);
    header(&mut e, b"D", 3);
    e.str(11, b"O")
        .str(55, b"AAPL")
        .char(54, b'1')
        .str(60, b"now");
    e.char(40, b'2');
    assert_eq!(validate_bytes(e.finish()), reject(IncorrectDataFormat, 60));
    let mut e = Encoder::new(256);
    header(&mut e, b"D", 3);
    e.str(11, b"O")
        .str(55, b"AAPL")
        .char(54, b'1')
        .timestamp(60, T0_NS);
    e.char(40, b'2').str(38, b"1e3");
    assert_eq!(validate_bytes(e.finish()), reject(IncorrectDataFormat, 38));
}

#[test]
fn value_incorrect() {
    use RejectReason::ValueIncorrect;
    let mut e = Encoder::new(256);
    header(&mut e, b"D", 3);
    e.str(11, b"O")
        .str(55, b"AAPL")
        .char(54, b'Z')
        .timestamp(60, T0_NS)
        .char(40, b'2');
    assert_eq!(validate_bytes(e.finish()), reject(ValueIncorrect, 54));
    assert_eq!(
        validate_bytes(&new_order_single("18=1 f|")),
        reject(ValueIncorrect, 18)
    );
    let mut e = Encoder::new(256);
    header(&mut e, b"A", 1);
    e.u64(98, 7).u64(108, 30);
    assert_eq!(validate_bytes(e.finish()), reject(ValueIncorrect, 98));
}

#[test]
fn reject_reason_codes_and_texts() {
    use RejectReason::*;
    let all = [
        (InvalidTagNumber, 0, "Invalid tag number"),
        (RequiredTagMissing, 1, "Required tag missing"),
        (
            TagNotDefinedForMessageType,
            2,
            "Tag not defined for this message type",
        ),
        (UndefinedTag, 3, "Undefined Tag"),
        (TagSpecifiedWithoutValue, 4, "Tag specified without a value"),
        (
            ValueIncorrect,
            5,
            "Value is incorrect (out of range) for this tag",
        ),
        (IncorrectDataFormat, 6, "Incorrect data format for value"),
        (CompIdProblem, 9, "CompID problem"),
        (SendingTimeAccuracy, 10, "SendingTime accuracy problem"),
        (InvalidMsgType, 11, "Invalid MsgType"),
        (TagAppearsMoreThanOnce, 13, "Tag appears more than once"),
        (Other, 99, "Other"),
    ];
    for (reason, code, text) in all {
        assert_eq!(reason.code(), code);
        assert_eq!(reason.text(), text);
    }
}

// ----- UTCTimestamp -----------------------------------------------------------------------------

fn fmt_ts(ns: u64) -> String {
    let mut out = [0u8; 21];
    format_utc_timestamp_ms(ns, &mut out);
    String::from_utf8(out.to_vec()).unwrap()
}

#[test]
fn timestamps_known_values() {
    assert_eq!(fmt_ts(0), "19700101-00:00:00.000");
    assert_eq!(fmt_ts(T0_NS + 999_999_999), "20261122-21:59:26.999");
    assert_eq!(parse_utc_timestamp(b"20261122-21:59:26"), Some(T0_NS));
    assert_eq!(
        parse_utc_timestamp(b"20261122-21:59:26.123456789"),
        Some(T0_NS + 123_456_789)
    );
    assert_eq!(
        parse_utc_timestamp(b"20261122-21:59:26.123456"),
        Some(T0_NS + 123_456_000)
    );
    assert_eq!(
        parse_utc_timestamp(b"20000229-12:34:56.000"),
        Some(951_827_696_000_000_000)
    );
    // A leap second reads as the first second of the next minute.
    assert_eq!(
        parse_utc_timestamp(b"20261122-21:59:60"),
        parse_utc_timestamp(b"20261122-22:00:00")
    );
}

#[test]
fn invalid_timestamps_are_rejected() {
    for bad in [
        &b"20010230-00:00:00"[..], // 30 February
        b"20010229-00:00:00",      // not a leap year
        b"21000229-00:00:00",      // nor is 2100
        b"20011301-00:00:00",      // month 13
        b"20010001-00:00:00",      // month 0
        b"20010100-00:00:00",      // day 0
        b"20010431-00:00:00",      // 31 April
        b"20010101-24:00:00",
        b"20010101-23:60:00",
        b"20010101-23:59:61",
        b"19691231-23:59:59", // before the epoch
        b"99991231-23:59:59", // beyond u64 nanoseconds
        b"20010101-00:00:00.1",
        b"20010101-00:00:00.12",
        b"20010101-00:00:00.1234",
        b"20010101-00:00:00,123",
        b"20010101 00:00:00",
        b"2001010-00:00:00",
        b"20010101-00:00:0a",
        b"20010101-00:00:00.12a",
        b"",
    ] {
        assert_eq!(parse_utc_timestamp(bad), None, "{}", show(bad));
    }
}

fn check_timestamp_round_trip(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    for _ in 0..200 {
        let ns = rng.next_u64();
        let text = fmt_ts(ns);
        let back = parse_utc_timestamp(text.as_bytes());
        if back != Some(ns - ns % 1_000_000) {
            return Err(format!("{ns} -> {text} -> {back:?}"));
        }
    }
    Ok(())
}

seeded_property!(timestamp_round_trips, check_timestamp_round_trip);
