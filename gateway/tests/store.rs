//! Tests of the persistent FIX session store: counters, resend ranges, ClOrdIDs, limits, and
//! recovery from torn tails, corruption and crashes during reset.
//!
//! Randomness comes from a seeded generator; set `FERROX_TEST_SEED` to replay a failure with
//! the seed printed when it happened.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ferrox_gateway::store::{
    Corruption, FullLimit, SessionStore, StoreError, StoreOptions, FILE_SUFFIX, HEADER_BYTES,
    MAX_CL_ORD_ID_BYTES, MIN_CAPACITY_BYTES, TEMP_SUFFIX,
};

const NAME: &str = "FERROX-CLIENT1";
const CAPACITY: u64 = 64 << 20;

/// A directory under the system temp dir, unique per test and run, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let unique = format!(
            "ferrox-store-{test}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}{FILE_SUFFIX}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// SplitMix64: small, seedable and good enough to pick test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Prints the seed if the test panics, so that the failure can be replayed.
struct SeedReport(u64);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed with seed {} (rerun with FERROX_TEST_SEED={})",
                self.0, self.0
            );
        }
    }
}

fn seeded(default_seed: u64) -> (Rng, SeedReport) {
    let seed = std::env::var("FERROX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    (Rng(seed), SeedReport(seed))
}

/// A FIX-looking message carrying its seq, of random length.
fn make_msg(rng: &mut Rng, seq: u64, admin: bool) -> Vec<u8> {
    let msg_type = if admin { "0" } else { "8" };
    let mut m = format!("8=FIX.4.4\x019=000\x0135={msg_type}\x0134={seq}\x01").into_bytes();
    let body = rng.range(0, 300);
    for _ in 0..body {
        m.push(b'A' + (rng.next() % 26) as u8);
    }
    m.extend_from_slice(b"\x0110=000\x01");
    m
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    seq: u64,
    ts: u64,
    admin: bool,
    msg: Vec<u8>,
}

fn collect(store: &SessionStore, from: u64, to: u64) -> Vec<Stored> {
    let mut out = Vec::new();
    store
        .for_each_outbound(from, to, |seq, ts, admin, msg| {
            out.push(Stored {
                seq,
                ts,
                admin,
                msg: msg.to_vec(),
            })
        })
        .unwrap();
    out
}

fn expected_range(all: &[Stored], from: u64, to: u64) -> Vec<Stored> {
    all.iter()
        .filter(|s| from <= s.seq && s.seq <= to)
        .cloned()
        .collect()
}

fn append(store: &mut SessionStore, rng: &mut Rng, all: &mut Vec<Stored>, admin: bool) {
    let seq = store.next_out_seq();
    let ts = 1_700_000_000_000_000_000 + seq * 1_000;
    let msg = make_msg(rng, seq, admin);
    store.append_outbound(seq, ts, admin, &msg).unwrap();
    all.push(Stored {
        seq,
        ts,
        admin,
        msg,
    });
}

/// Start and end offsets of every record in a store file, walking the length fields.
fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut pos = HEADER_BYTES as usize;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let end = pos + len.div_ceil(8) * 8;
        spans.push((pos, end));
        pos = end;
    }
    assert_eq!(pos, bytes.len(), "records must tile the file");
    spans
}

fn open(dir: &TempDir) -> SessionStore {
    SessionStore::open(dir.path(), NAME, CAPACITY).unwrap()
}

fn open_err(dir: &TempDir) -> StoreError {
    match SessionStore::open(dir.path(), NAME, CAPACITY) {
        Ok(store) => panic!("open should fail, got {store:?}"),
        Err(e) => e,
    }
}

#[test]
fn fresh_store_appends_ranges_and_reopens() {
    let (mut rng, _seed) = seeded(0x5eed_0001);
    let dir = TempDir::new("fresh");
    let mut store = open(&dir);
    assert_eq!(store.next_out_seq(), 1);
    assert_eq!(store.next_in_seq(), 1);
    assert_eq!(store.trading_day(), 0);
    assert_eq!(store.bytes_used(), HEADER_BYTES);
    assert_eq!(store.recovered_dropped_bytes(), 0);
    assert_eq!(store.path(), dir.file(NAME));
    assert!(collect(&store, 1, u64::MAX).is_empty());

    let mut all = Vec::new();
    for i in 0..10_000u64 {
        let admin = rng.chance(20);
        append(&mut store, &mut rng, &mut all, admin);
        // Interleaved ClOrdID records must be skipped by resends and the index.
        if i % 3 == 0 {
            assert!(store
                .insert_cl_ord_id(format!("ORD{i}").as_bytes())
                .unwrap());
        }
    }
    assert_eq!(store.next_out_seq(), 10_001);

    let check_ranges = |store: &SessionStore, rng: &mut Rng| {
        let fixed = [
            (1, 1),
            (5_000, 5_000),
            (10_000, 10_000),
            (2_500, 7_500),
            (256, 513),
            (9_990, u64::MAX),
            (1, u64::MAX),
            (0, 3),
            (10_001, u64::MAX),
            (20_000, 30_000),
            (10, 5),
            (u64::MAX, u64::MAX),
        ];
        for (from, to) in fixed {
            assert_eq!(
                collect(store, from, to),
                expected_range(&all, from, to),
                "range {from}..={to}"
            );
        }
        for _ in 0..100 {
            let from = rng.range(0, 10_100);
            let to = if rng.chance(20) {
                u64::MAX
            } else {
                from + rng.range(0, 600)
            };
            assert_eq!(
                collect(store, from, to),
                expected_range(&all, from, to),
                "range {from}..={to}"
            );
        }
    };
    check_ranges(&store, &mut rng);

    let used = store.bytes_used();
    drop(store);
    let store = open(&dir);
    assert_eq!(store.next_out_seq(), 10_001);
    assert_eq!(store.next_in_seq(), 1);
    assert_eq!(store.bytes_used(), used);
    assert_eq!(store.recovered_dropped_bytes(), 0);
    assert_eq!(store.cl_ord_id_count(), 3_334);
    assert_eq!(fs::metadata(dir.file(NAME)).unwrap().len(), used);
    check_ranges(&store, &mut rng);
}

#[test]
fn next_in_and_trading_day_survive_reopen() {
    let dir = TempDir::new("next-in");
    let mut store = open(&dir);
    for seq in 2..=1_000 {
        store.set_next_in_seq(seq);
    }
    store.set_trading_day(20250314);
    assert_eq!(store.next_in_seq(), 1_000);
    drop(store);
    let mut store = open(&dir);
    assert_eq!(store.next_in_seq(), 1_000);
    assert_eq!(store.trading_day(), 20250314);
    assert_eq!(store.next_out_seq(), 1);
    store.set_next_in_seq(1_001);
    store.sync().unwrap();
    drop(store);
    assert_eq!(open(&dir).next_in_seq(), 1_001);
}

#[test]
fn skipped_out_seqs_are_gaps() {
    let (mut rng, _seed) = seeded(0x5eed_0002);
    let dir = TempDir::new("gaps");
    let mut store = open(&dir);
    let mut all = Vec::new();
    for _ in 1..=5 {
        append(&mut store, &mut rng, &mut all, false);
    }
    store.set_next_out_seq(10);
    assert_eq!(store.next_out_seq(), 10);
    for _ in 10..=12 {
        append(&mut store, &mut rng, &mut all, true);
    }
    // Sequence numbers never go down except by reset.
    store.set_next_out_seq(8);
    store.set_next_out_seq(13);
    assert_eq!(store.next_out_seq(), 13);

    let seqs = |store: &SessionStore, from, to| -> Vec<u64> {
        collect(store, from, to).iter().map(|s| s.seq).collect()
    };
    assert_eq!(seqs(&store, 1, u64::MAX), [1, 2, 3, 4, 5, 10, 11, 12]);
    assert!(seqs(&store, 6, 9).is_empty());
    assert_eq!(seqs(&store, 4, 10), [4, 5, 10]);
    assert_eq!(collect(&store, 1, u64::MAX), all);
    drop(store);

    let mut store = open(&dir);
    assert_eq!(store.next_out_seq(), 13);
    assert_eq!(seqs(&store, 6, 9), Vec::<u64>::new());
    assert_eq!(collect(&store, 1, u64::MAX), all);

    // A floor above the last stored message survives a reopen with no message after it.
    store.set_next_out_seq(40);
    drop(store);
    assert_eq!(open(&dir).next_out_seq(), 40);
}

#[test]
fn out_of_order_appends_are_refused() {
    let dir = TempDir::new("order");
    let mut store = open(&dir);
    store.append_outbound(1, 1, false, b"one").unwrap();
    for bad in [0, 1, 3, u64::MAX] {
        match store.append_outbound(bad, 1, false, b"x") {
            Err(StoreError::OutOfOrder { expected: 2, got }) => assert_eq!(got, bad),
            other => panic!("expected OutOfOrder, got {other:?}"),
        }
    }
    assert_eq!(store.next_out_seq(), 2);
    assert_eq!(collect(&store, 1, u64::MAX).len(), 1);
    store.set_next_out_seq(u64::MAX);
    assert!(matches!(
        store.append_outbound(u64::MAX, 1, false, b"x"),
        Err(StoreError::OutOfOrder { .. })
    ));
}

/// A small store whose last record is outbound message 20, plus its expected messages.
fn build_small_store(dir: &TempDir, rng: &mut Rng) -> Vec<Stored> {
    let mut store = open(dir);
    let mut all = Vec::new();
    for i in 0..20 {
        let admin = rng.chance(30);
        append(&mut store, rng, &mut all, admin);
        if i % 4 == 0 {
            store.insert_cl_ord_id(format!("C{i}").as_bytes()).unwrap();
        }
    }
    store.set_next_in_seq(33);
    all
}

#[test]
fn torn_tail_at_every_offset_drops_the_last_record() {
    let (mut rng, _seed) = seeded(0x5eed_0003);
    let dir = TempDir::new("torn");
    let all = build_small_store(&dir, &mut rng);
    let path = dir.file(NAME);
    let original = fs::read(&path).unwrap();
    let &(start, end) = record_spans(&original).last().unwrap();

    for cut in start..end {
        fs::write(&path, &original[..cut]).unwrap();
        let mut store = open(&dir);
        assert_eq!(
            store.recovered_dropped_bytes(),
            (cut - start) as u64,
            "cut {cut}"
        );
        assert_eq!(store.bytes_used(), start as u64, "cut {cut}");
        assert_eq!(fs::metadata(&path).unwrap().len(), start as u64);
        // The last surviving message is 19, so 20 is the next to send again.
        assert_eq!(store.next_out_seq(), 20, "cut {cut}");
        assert_eq!(store.next_in_seq(), 33);
        assert_eq!(collect(&store, 1, u64::MAX), all[..19], "cut {cut}");
        // The store keeps working after the truncation.
        let last = &all[19];
        store
            .append_outbound(last.seq, last.ts, last.admin, &last.msg)
            .unwrap();
        drop(store);
        let store = open(&dir);
        assert_eq!(store.recovered_dropped_bytes(), 0);
        assert_eq!(collect(&store, 1, u64::MAX), all);
        assert_eq!(fs::read(&path).unwrap(), original, "cut {cut}");
    }
}

#[test]
fn damaged_last_record_is_dropped() {
    let (mut rng, _seed) = seeded(0x5eed_0004);
    let dir = TempDir::new("flip-tail");
    let all = build_small_store(&dir, &mut rng);
    let path = dir.file(NAME);
    let original = fs::read(&path).unwrap();
    let &(start, end) = record_spans(&original).last().unwrap();

    for at in start..end {
        for mask in [0x01u8, 0x80, 0xff, rng.range(1, 256) as u8] {
            let mut bytes = original.clone();
            bytes[at] ^= mask;
            fs::write(&path, &bytes).unwrap();
            let store = open(&dir);
            assert_eq!(
                store.recovered_dropped_bytes(),
                (end - start) as u64,
                "byte {at} mask {mask:#x}"
            );
            assert_eq!(store.next_out_seq(), 20);
            assert_eq!(collect(&store, 1, u64::MAX), all[..19]);
        }
    }

    // Zeros where the last record was (a power cut can leave that) are a torn tail too.
    let mut bytes = original.clone();
    bytes[start..end].fill(0);
    fs::write(&path, &bytes).unwrap();
    let store = open(&dir);
    assert_eq!(store.recovered_dropped_bytes(), (end - start) as u64);
    assert_eq!(store.next_out_seq(), 20);
}

#[test]
fn torn_tail_respects_set_next_out_seq_and_cl_ord_ids() {
    let (mut rng, _seed) = seeded(0x5eed_0005);
    let dir = TempDir::new("torn-floor");
    let path = dir.file(NAME);
    let mut store = open(&dir);
    let mut all = Vec::new();
    for _ in 1..=5 {
        append(&mut store, &mut rng, &mut all, false);
    }
    store.set_next_out_seq(10);
    for _ in 10..=11 {
        append(&mut store, &mut rng, &mut all, false);
    }
    store.insert_cl_ord_id(b"LAST-ID").unwrap();
    drop(store);

    let original = fs::read(&path).unwrap();
    let spans = record_spans(&original);
    assert_eq!(spans.len(), 8);

    // The ClOrdID record is last: losing it loses the ID, and nothing else.
    let (id_start, _) = spans[7];
    fs::write(&path, &original[..id_start + 9]).unwrap();
    let store = open(&dir);
    assert!(!store.contains_cl_ord_id(b"LAST-ID"));
    assert_eq!(store.cl_ord_id_count(), 0);
    assert_eq!(store.next_out_seq(), 12);
    drop(store);

    // Losing message 11 makes 11 the next seq; losing 10 as well falls back to the floor.
    let (start_11, _) = spans[6];
    fs::write(&path, &original[..start_11 + 3]).unwrap();
    assert_eq!(open(&dir).next_out_seq(), 11);
    let (start_10, _) = spans[5];
    fs::write(&path, &original[..start_10 + 40]).unwrap();
    let store = open(&dir);
    assert_eq!(store.next_out_seq(), 10);
    assert_eq!(collect(&store, 1, u64::MAX), all[..5]);
}

#[test]
fn corruption_before_intact_records_is_refused() {
    let (mut rng, _seed) = seeded(0x5eed_0006);
    let dir = TempDir::new("corrupt");
    build_small_store(&dir, &mut rng);
    let path = dir.file(NAME);
    let original = fs::read(&path).unwrap();
    let spans = record_spans(&original);

    let mut victims = vec![0, 1, spans.len() - 2];
    for _ in 0..10 {
        victims.push(rng.range(0, spans.len() as u64 - 1) as usize);
    }
    for victim in victims {
        let (start, end) = spans[victim];
        let at = rng.range(start as u64, end as u64) as usize;
        let mut bytes = original.clone();
        bytes[at] ^= rng.range(1, 256) as u8;
        fs::write(&path, &bytes).unwrap();
        match open_err(&dir) {
            StoreError::Corrupt {
                path: p,
                offset,
                reason,
            } => {
                assert_eq!(p, path);
                assert_eq!(offset, start as u64, "record {victim} byte {at}");
                assert!(
                    matches!(
                        reason,
                        Corruption::DamagedRecord { intact_record_at, .. }
                            if intact_record_at == end as u64
                    ),
                    "record {victim} byte {at}: {reason:?}"
                );
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // A refused open modifies nothing.
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    // A zeroed record in the middle is refused as well.
    let (start, end) = spans[3];
    let mut bytes = original.clone();
    bytes[start..end].fill(0);
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        open_err(&dir),
        StoreError::Corrupt { offset, .. } if offset == start as u64
    ));

    // A damaged static header is refused with the field's offset.
    let mut bytes = original.clone();
    bytes[0] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        open_err(&dir),
        StoreError::Corrupt {
            offset: 0,
            reason: Corruption::BadMagic,
            ..
        }
    ));
    let mut bytes = original.clone();
    bytes[8] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        open_err(&dir),
        StoreError::Corrupt {
            reason: Corruption::HeaderCrcMismatch,
            ..
        }
    ));

    // Too short to hold a header.
    fs::write(&path, &original[..100]).unwrap();
    assert!(matches!(
        open_err(&dir),
        StoreError::Corrupt {
            reason: Corruption::FileTooShort { file_bytes: 100 },
            ..
        }
    ));
}

/// Generation of the slot at `at` in a header page.
fn generation(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn torn_header_slot_falls_back_to_the_previous_update() {
    let dir = TempDir::new("slot");
    let path = dir.file(NAME);
    let mut store = open(&dir);
    for seq in 2..=50 {
        store.set_next_in_seq(seq);
    }
    drop(store);
    let original = fs::read(&path).unwrap();
    let newest = if generation(&original, 256) > generation(&original, 320) {
        256
    } else {
        320
    };
    let older = 256 + 320 - newest;
    assert_eq!(
        generation(&original, newest),
        generation(&original, older) + 1
    );

    // An update interrupted half-way leaves the newest slot with a bad CRC.
    let mut bytes = original.clone();
    bytes[newest + 8] ^= 0x04;
    fs::write(&path, &bytes).unwrap();
    let mut store = open(&dir);
    assert_eq!(store.next_in_seq(), 49);
    // The next update goes into the damaged slot and becomes the newest.
    store.set_next_in_seq(51);
    drop(store);
    assert_eq!(open(&dir).next_in_seq(), 51);

    let mut bytes = original.clone();
    bytes[newest + 60] ^= 0x01;
    bytes[older + 3] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        open_err(&dir),
        StoreError::Corrupt {
            reason: Corruption::NoIntactSlot,
            ..
        }
    ));
}

#[test]
fn cl_ord_ids_insert_contains_and_survive_reopen() {
    let (mut rng, _seed) = seeded(0x5eed_0007);
    let dir = TempDir::new("clordid");
    let mut store = open(&dir);
    assert!(store.insert_cl_ord_id(b"A").unwrap());
    assert!(!store.insert_cl_ord_id(b"A").unwrap());
    assert!(store.contains_cl_ord_id(b"A"));
    assert!(!store.contains_cl_ord_id(b"B"));
    let longest = [b'x'; MAX_CL_ORD_ID_BYTES];
    assert!(store.insert_cl_ord_id(&longest).unwrap());
    assert!(store.contains_cl_ord_id(&longest));
    for bad in [&[][..], &[b'y'; MAX_CL_ORD_ID_BYTES + 1][..]] {
        assert!(matches!(
            store.insert_cl_ord_id(bad),
            Err(StoreError::ClOrdIdLength { len }) if len == bad.len()
        ));
        assert!(!store.contains_cl_ord_id(bad));
    }

    let mut model: HashSet<Vec<u8>> = [b"A".to_vec(), longest.to_vec()].into_iter().collect();
    for _ in 0..5_000 {
        let len = rng.range(1, MAX_CL_ORD_ID_BYTES as u64 + 1) as usize;
        // A small alphabet and short IDs make repeats common.
        let id: Vec<u8> = (0..len.min(4))
            .map(|_| b'a' + (rng.next() % 6) as u8)
            .collect();
        assert_eq!(
            store.insert_cl_ord_id(&id).unwrap(),
            model.insert(id.clone())
        );
    }
    assert_eq!(store.cl_ord_id_count(), model.len());
    drop(store);

    let mut store = open(&dir);
    assert_eq!(store.cl_ord_id_count(), model.len());
    for id in &model {
        assert!(store.contains_cl_ord_id(id));
        assert!(!store.insert_cl_ord_id(id).unwrap());
    }
    assert!(!store.contains_cl_ord_id(b"never-used"));
    assert!(store.insert_cl_ord_id(b"never-used").unwrap());
}

#[test]
fn cl_ord_ids_max_is_enforced() {
    let dir = TempDir::new("clordid-max");
    let options = StoreOptions {
        capacity_bytes: CAPACITY,
        cl_ord_ids_max: 100,
    };
    let mut store = SessionStore::open_with_options(dir.path(), NAME, &options).unwrap();
    for i in 0..100 {
        assert!(store
            .insert_cl_ord_id(format!("ID-{i}").as_bytes())
            .unwrap());
    }
    let used = store.bytes_used();
    match store.insert_cl_ord_id(b"ID-100") {
        Err(StoreError::Full {
            limit: FullLimit::ClOrdIds { max: 100 },
            ..
        }) => {}
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(store.bytes_used(), used);
    // A duplicate is still recognised when the set is full.
    assert!(!store.insert_cl_ord_id(b"ID-7").unwrap());
    drop(store);

    let smaller = StoreOptions {
        cl_ord_ids_max: 50,
        ..options.clone()
    };
    assert!(matches!(
        SessionStore::open_with_options(dir.path(), NAME, &smaller),
        Err(StoreError::Full {
            limit: FullLimit::ClOrdIds { max: 50 },
            ..
        })
    ));

    let mut store = SessionStore::open_with_options(dir.path(), NAME, &options).unwrap();
    assert_eq!(store.cl_ord_id_count(), 100);
    store.reset().unwrap();
    assert_eq!(store.cl_ord_id_count(), 0);
    assert!(!store.contains_cl_ord_id(b"ID-7"));
    for i in 0..100 {
        assert!(store
            .insert_cl_ord_id(format!("NEW-{i}").as_bytes())
            .unwrap());
    }
    let zero = StoreOptions {
        cl_ord_ids_max: 0,
        ..options
    };
    let other = TempDir::new("clordid-zero");
    let mut store = SessionStore::open_with_options(other.path(), NAME, &zero).unwrap();
    assert!(matches!(
        store.insert_cl_ord_id(b"x"),
        Err(StoreError::Full { .. })
    ));
}

#[test]
fn capacity_is_enforced() {
    let (mut rng, _seed) = seeded(0x5eed_0008);
    let dir = TempDir::new("capacity");
    let mut store = SessionStore::open(dir.path(), NAME, MIN_CAPACITY_BYTES).unwrap();
    let mut all = Vec::new();
    let full = loop {
        let seq = store.next_out_seq();
        let msg = make_msg(&mut rng, seq, false);
        match store.append_outbound(seq, seq, false, &msg) {
            Ok(()) => all.push(Stored {
                seq,
                ts: seq,
                admin: false,
                msg,
            }),
            Err(e) => break e,
        }
    };
    match full {
        StoreError::Full {
            path,
            limit: FullLimit::CapacityBytes { capacity_bytes },
        } => {
            assert_eq!(path, dir.file(NAME));
            assert_eq!(capacity_bytes, MIN_CAPACITY_BYTES);
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(!all.is_empty());
    assert!(store.bytes_used() <= MIN_CAPACITY_BYTES);
    assert_eq!(store.next_out_seq(), all.len() as u64 + 1);
    let used = store.bytes_used();
    assert_eq!(fs::metadata(dir.file(NAME)).unwrap().len(), used);
    // A two-byte ClOrdID takes a 40-byte record: it fits exactly when 40 bytes are left.
    let fits = MIN_CAPACITY_BYTES - used >= 40;
    match store.insert_cl_ord_id(b"ID") {
        Ok(true) => assert!(fits),
        Err(StoreError::Full { .. }) => assert!(!fits),
        other => panic!("unexpected {other:?}"),
    }
    let used = store.bytes_used();
    drop(store);

    let mut store = SessionStore::open(dir.path(), NAME, MIN_CAPACITY_BYTES).unwrap();
    assert_eq!(store.bytes_used(), used);
    assert_eq!(collect(&store, 1, u64::MAX), all);
    store.reset().unwrap();
    assert_eq!(store.bytes_used(), HEADER_BYTES);
    store.append_outbound(1, 1, false, b"after reset").unwrap();

    // Capacities outside the accepted range are refused before anything is created.
    let other = TempDir::new("capacity-bad");
    assert!(matches!(
        SessionStore::open(other.path(), NAME, MIN_CAPACITY_BYTES - 1),
        Err(StoreError::InvalidOptions { .. })
    ));
    assert!(!other.file(NAME).exists());
}

#[test]
fn reset_empties_everything() {
    let (mut rng, _seed) = seeded(0x5eed_0009);
    let dir = TempDir::new("reset");
    let mut store = open(&dir);
    let mut all = Vec::new();
    for _ in 0..300 {
        append(&mut store, &mut rng, &mut all, false);
    }
    store.insert_cl_ord_id(b"OLD").unwrap();
    store.set_next_in_seq(500);
    store.set_trading_day(20250313);

    store.reset().unwrap();
    assert_eq!(store.next_out_seq(), 1);
    assert_eq!(store.next_in_seq(), 1);
    assert_eq!(store.trading_day(), 20250313);
    assert_eq!(store.bytes_used(), HEADER_BYTES);
    assert!(collect(&store, 1, u64::MAX).is_empty());
    assert!(!store.contains_cl_ord_id(b"OLD"));

    let mut fresh = Vec::new();
    for _ in 0..300 {
        append(&mut store, &mut rng, &mut fresh, true);
    }
    store.reset_for_day(20250314).unwrap();
    assert_eq!(store.trading_day(), 20250314);
    append(&mut store, &mut rng, &mut Vec::new(), false);
    drop(store);

    let store = open(&dir);
    assert_eq!(store.trading_day(), 20250314);
    assert_eq!(store.next_out_seq(), 2);
    assert_eq!(collect(&store, 1, u64::MAX).len(), 1);
    assert!(!dir.path().join(format!("{NAME}{TEMP_SUFFIX}")).exists());
}

/// The old state written by `crash_during_reset_*`: messages 1..=30, next_in 77, one ID.
fn build_old_state(dir: &TempDir, rng: &mut Rng) -> Vec<Stored> {
    let mut store = open(dir);
    let mut all = Vec::new();
    for _ in 0..30 {
        let admin = rng.chance(25);
        append(&mut store, rng, &mut all, admin);
    }
    store.set_next_in_seq(77);
    store.set_trading_day(20250313);
    store.insert_cl_ord_id(b"OLD-ORDER").unwrap();
    all
}

fn assert_old_state(dir: &TempDir, all: &[Stored]) {
    let store = open(dir);
    assert_eq!(store.next_out_seq(), 31);
    assert_eq!(store.next_in_seq(), 77);
    assert_eq!(store.trading_day(), 20250313);
    assert!(store.contains_cl_ord_id(b"OLD-ORDER"));
    assert_eq!(collect(&store, 1, u64::MAX), all);
    assert!(!dir.path().join(format!("{NAME}{TEMP_SUFFIX}")).exists());
}

#[test]
fn crash_during_reset_leaves_old_or_new_state() {
    let (mut rng, _seed) = seeded(0x5eed_000a);
    let dir = TempDir::new("crash-reset");
    let all = build_old_state(&dir, &mut rng);
    let temp = dir.path().join(format!("{NAME}{TEMP_SUFFIX}"));

    // A complete new file, as reset writes it before the rename.
    let scratch = TempDir::new("crash-reset-new");
    let mut new_store = SessionStore::open(scratch.path(), NAME, CAPACITY).unwrap();
    new_store.reset_for_day(20250314).unwrap();
    drop(new_store);
    let new_file = fs::read(scratch.file(NAME)).unwrap();

    // Step 1 interrupted (temp file partly written) or done but not renamed: old state.
    for len in [0, 1, 100, 4095, new_file.len()] {
        fs::write(&temp, &new_file[..len]).unwrap();
        assert_old_state(&dir, &all);
    }
    let garbage: Vec<u8> = (0..5000).map(|_| rng.next() as u8).collect();
    fs::write(&temp, &garbage).unwrap();
    assert_old_state(&dir, &all);

    // Renamed: the new state.
    fs::write(&temp, &new_file).unwrap();
    fs::rename(&temp, dir.file(NAME)).unwrap();
    let store = open(&dir);
    assert_eq!(store.next_out_seq(), 1);
    assert_eq!(store.next_in_seq(), 1);
    assert_eq!(store.trading_day(), 20250314);
    assert_eq!(store.cl_ord_id_count(), 0);
    assert!(collect(&store, 1, u64::MAX).is_empty());
    drop(store);

    // A crash during the very first creation leaves only the temp file: a fresh store.
    let first = TempDir::new("crash-create");
    fs::write(
        first.path().join(format!("{NAME}{TEMP_SUFFIX}")),
        &new_file[..10],
    )
    .unwrap();
    let store = SessionStore::open(first.path(), NAME, CAPACITY).unwrap();
    assert_eq!(store.next_out_seq(), 1);
    assert_eq!(store.trading_day(), 0);
}

#[test]
fn names_and_files_are_checked() {
    let dir = TempDir::new("names");
    let long = "N".repeat(129);
    for bad in ["", "a/b", "a\0b", ".", "..", long.as_str()] {
        assert!(
            matches!(
                SessionStore::open(dir.path(), bad, CAPACITY),
                Err(StoreError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    let ok = "N".repeat(128);
    SessionStore::open(dir.path(), &ok, CAPACITY).unwrap();

    // A store file renamed to another session's name is refused.
    drop(open(&dir));
    fs::rename(dir.file(NAME), dir.file("OTHER")).unwrap();
    match SessionStore::open(dir.path(), "OTHER", CAPACITY) {
        Err(StoreError::Corrupt {
            reason: Corruption::WrongSession { found },
            ..
        }) => assert_eq!(found, NAME),
        other => panic!("expected WrongSession, got {other:?}"),
    }
}

/// Random operations against a simple model, with reopens in between.
#[test]
fn random_operations_match_a_model() {
    let (mut rng, _seed) = seeded(0x5eed_000b);
    let dir = TempDir::new("model");
    let mut store = open(&dir);
    let mut all: Vec<Stored> = Vec::new();
    let mut ids: HashSet<Vec<u8>> = HashSet::new();
    let mut next_in = 1;
    for step in 0..20_000 {
        match rng.next() % 100 {
            0..=59 => {
                let admin = rng.chance(30);
                append(&mut store, &mut rng, &mut all, admin);
            }
            60..=61 => {
                let target = store.next_out_seq() + rng.range(0, 50);
                store.set_next_out_seq(target);
            }
            62..=79 => {
                let id = format!("K{}", rng.range(0, 3_000)).into_bytes();
                assert_eq!(
                    store.insert_cl_ord_id(&id).unwrap(),
                    ids.insert(id),
                    "step {step}"
                );
            }
            80..=89 => {
                next_in += 1;
                store.set_next_in_seq(next_in);
            }
            90..=98 => {
                let last = all.last().map_or(1, |s| s.seq);
                let from = rng.range(0, last + 10);
                let to = if rng.chance(30) {
                    u64::MAX
                } else {
                    from + rng.range(0, 400)
                };
                assert_eq!(
                    collect(&store, from, to),
                    expected_range(&all, from, to),
                    "step {step} range {from}..={to}"
                );
            }
            _ => {
                let next_out = store.next_out_seq();
                drop(store);
                store = open(&dir);
                assert_eq!(store.next_out_seq(), next_out, "step {step}");
                assert_eq!(store.next_in_seq(), next_in, "step {step}");
                assert_eq!(store.cl_ord_id_count(), ids.len(), "step {step}");
            }
        }
    }
    assert_eq!(collect(&store, 0, u64::MAX), all);
    for id in &ids {
        assert!(store.contains_cl_ord_id(id));
    }
}
