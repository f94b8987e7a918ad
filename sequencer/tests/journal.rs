//! Journal tests: round trips across rollovers, reopening, torn tails at every byte offset,
//! bit flips anywhere, seq gaps, the directory lock, fatal sync errors, and a simulated power
//! loss loop.
//!
//! Randomised tests print their seed (shown by `cargo test` on failure) and take
//! `FERROX_SEED=<n>` to replay one.

use std::path::{Path, PathBuf};

use ferrox_sequencer::journal::sim::{SimStorage, SplitMix64};
use ferrox_sequencer::journal::{
    segment_file_name, Corruption, Journal, JournalError, JournalOptions, JournalReader, Recovery,
    SEGMENT_HEADER_BYTES,
};

type Model = Vec<(u64, Vec<u8>)>;

fn seed(test: &str) -> u64 {
    let seed = std::env::var("FERROX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64
        });
    eprintln!("{test}: seed {seed} (replay with FERROX_SEED={seed})");
    seed
}

fn options(segment_bytes: u64) -> JournalOptions {
    JournalOptions {
        segment_bytes,
        write_buffer_bytes: 4096,
        first_seq: 1,
    }
}

/// Mostly 64-byte payloads (the command size), sometimes empty or longer.
fn payload(rng: &mut SplitMix64, max_bytes: u64) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.below(max_bytes + 1),
        1 => 0,
        _ => 64.min(max_bytes),
    };
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Appends records `model.len() + 1 ..` and syncs at random points and at the end.
fn append_records(journal: &mut Journal, model: &mut Model, count: usize, rng: &mut SplitMix64) {
    for _ in 0..count {
        let seq = model.len() as u64 + 1;
        let ts_ns = 1_000_000 + seq * 10 + rng.below(10);
        let p = payload(rng, 200);
        journal.append(seq, ts_ns, &p).expect("append");
        model.push((ts_ns, p));
        if rng.chance(1, 10) {
            let synced = journal.sync().expect("sync");
            assert_eq!(synced.durable_seq, seq);
        }
    }
    let synced = journal.sync().expect("sync");
    assert_eq!(synced.durable_seq, model.len() as u64);
    assert_eq!(journal.durable_seq(), journal.written_seq());
}

/// Checks that the reader yields exactly `model[from - 1..]`, intact and in order.
fn assert_reads<S: ferrox_sequencer::journal::Storage>(
    reader: &JournalReader<S>,
    model: &[(u64, Vec<u8>)],
    from: u64,
    context: &str,
) {
    let mut expected_seq = from;
    for record in reader.iter_from(from) {
        let record = record.unwrap_or_else(|e| panic!("{context}: read error {e}"));
        assert_eq!(record.seq, expected_seq, "{context}");
        let (ts_ns, payload) = model
            .get(record.seq as usize - 1)
            .unwrap_or_else(|| panic!("{context}: extra record seq {}", record.seq));
        assert_eq!(record.ts_ns, *ts_ns, "{context}: seq {}", record.seq);
        assert_eq!(
            record.payload,
            &payload[..],
            "{context}: seq {}",
            record.seq
        );
        expected_seq += 1;
    }
    assert_eq!(
        expected_seq,
        model.len() as u64 + 1,
        "{context}: records missing"
    );
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "fxj"))
        .collect();
    files.sort();
    files
}

/// `(start, end)` of each record in a segment, parsed from the documented layout (a second,
/// independent reading of the format).
fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    while at + 24 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            break;
        }
        let end = at + ((len + 7) & !7);
        spans.push((at, end));
        at = end;
    }
    spans
}

fn corrupt_parts(err: &JournalError) -> (&Path, u64, u64, &Corruption) {
    match err {
        JournalError::Corrupt {
            path,
            offset,
            seq,
            kind,
        } => (path, *offset, *seq, kind),
        other => panic!("expected a corruption error, got {other}"),
    }
}

#[test]
fn round_trip_across_many_rollovers() {
    let seed = seed("round_trip_across_many_rollovers");
    let mut rng = SplitMix64::new(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("journal");
    let (mut journal, recovery) = Journal::open(&dir, options(4096)).expect("open");
    assert_eq!((recovery.last_seq, recovery.records), (0, 0));
    let mut model = Model::new();
    append_records(&mut journal, &mut model, 2000, &mut rng);
    drop(journal);

    let files = segment_files(&dir);
    assert!(
        files.len() >= 10,
        "seed {seed}: only {} segments",
        files.len()
    );
    for (i, file) in files.iter().enumerate() {
        let len = std::fs::metadata(file).expect("metadata").len();
        assert_eq!(len, 4096, "segment {i} is preallocated to segment_bytes");
    }
    assert_eq!(
        files[0].file_name().and_then(|n| n.to_str()),
        Some("journal-00000000000000000001.fxj")
    );

    let reader = JournalReader::open(&dir).expect("reader");
    assert_eq!(reader.first_seq(), Some(1));
    assert_reads(&reader, &model, 1, &format!("seed {seed}"));
    for _ in 0..50 {
        let from = 1 + rng.below(model.len() as u64 + 1);
        assert_reads(&reader, &model, from, &format!("seed {seed} from {from}"));
    }
    // The first record of every segment, where iter_from switches segments.
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let first: u64 = name[8..28].parse().expect("digits");
        assert_reads(&reader, &model, first, &format!("seed {seed} from {first}"));
    }

    let (_journal, recovery) = Journal::open(&dir, options(4096)).expect("reopen");
    assert_eq!(recovery.last_seq, 2000);
    assert_eq!(recovery.records, 2000);
    assert_eq!(recovery.segments, files.len());
    assert_eq!(recovery.truncated_bytes, 0);
}

#[test]
fn reopen_and_continue_appending() {
    let seed = seed("reopen_and_continue_appending");
    let mut rng = SplitMix64::new(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut model = Model::new();
    for session in 0..4 {
        let (mut journal, recovery) = Journal::open(dir, options(8192)).expect("open");
        assert_eq!(recovery.last_seq, model.len() as u64, "session {session}");
        assert_eq!(journal.written_seq(), recovery.last_seq);
        assert_eq!(journal.durable_seq(), recovery.last_seq);
        append_records(&mut journal, &mut model, 150, &mut rng);
    }
    assert_reads(
        &JournalReader::open(dir).expect("reader"),
        &model,
        1,
        "4 sessions",
    );

    // Appended but never flushed: still in the writer's buffer when it is dropped, so gone,
    // like any unacknowledged record after a crash.
    let (mut journal, _) = Journal::open(dir, options(8192)).expect("open");
    let next = model.len() as u64 + 1;
    journal.append(next, 1, b"lost").expect("append");
    drop(journal);
    let (mut journal, recovery) = Journal::open(dir, options(8192)).expect("open");
    assert_eq!(recovery.last_seq, next - 1);

    // Flushed but not synced: in the page cache, so a process restart sees it (and recovery
    // then makes it durable).
    journal.append(next, 7, b"flushed").expect("append");
    journal.flush().expect("flush");
    assert_eq!(journal.durable_seq(), next - 1);
    drop(journal);
    let (journal, recovery) = Journal::open(dir, options(8192)).expect("open");
    assert_eq!(recovery.last_seq, next);
    assert_eq!(journal.durable_seq(), next);
    model.push((7, b"flushed".to_vec()));
    drop(journal);
    assert_reads(
        &JournalReader::open(dir).expect("reader"),
        &model,
        1,
        "flushed",
    );
}

#[test]
fn append_rejects_wrong_seq_and_oversized_payloads_without_harm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = JournalOptions {
        first_seq: 1000,
        ..options(2048)
    };
    let (mut journal, recovery) = Journal::open(tmp.path(), opts.clone()).expect("open");
    assert_eq!((recovery.first_seq, recovery.last_seq), (1000, 999));
    assert!(matches!(
        journal.append(1, 0, b"x"),
        Err(JournalError::OutOfOrder {
            expected: 1000,
            got: 1
        })
    ));
    journal
        .append(1000, 5, b"")
        .expect("an empty payload is a valid record");
    assert!(matches!(
        journal.append(1000, 6, b"dup"),
        Err(JournalError::OutOfOrder { .. })
    ));
    let max = opts.max_payload_bytes();
    let err = journal
        .append(1001, 6, &vec![1; max + 1])
        .expect_err("too large");
    assert!(matches!(err, JournalError::RecordTooLarge { .. }), "{err}");
    assert!(!err.is_fatal() && !journal.is_poisoned());
    // The largest payload fills a fresh segment exactly, forcing a rollover.
    journal.append(1001, 7, &vec![2; max]).expect("max payload");
    journal.append(1002, 8, b"after").expect("append");
    assert_eq!(journal.sync().expect("sync").durable_seq, 1002);
    drop(journal);

    let reader = JournalReader::open(tmp.path()).expect("reader");
    let records: Vec<_> = reader.iter().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), 3);
    assert_eq!((records[0].seq, records[0].payload), (1000, &b""[..]));
    assert_eq!(records[1].payload.len(), max);
    assert_eq!(records[2].payload, b"after");
    assert!(matches!(
        reader.iter_from(999).next(),
        Some(Err(JournalError::SeqNotInJournal {
            seq: 999,
            first_seq: 1000
        }))
    ));
    assert!(reader.iter_from(1003).next().is_none());
    assert_eq!(segment_files(tmp.path()).len(), 3);
}

#[test]
fn invalid_options_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for bad in [
        options(100),
        options(4100),
        JournalOptions {
            first_seq: 0,
            ..options(4096)
        },
    ] {
        assert!(matches!(
            Journal::open(tmp.path(), bad),
            Err(JournalError::InvalidOptions { .. })
        ));
    }
}

#[test]
fn second_open_is_refused_by_the_directory_lock() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut journal, _) = Journal::open(tmp.path(), options(4096)).expect("open");
    journal.append(1, 1, b"a").expect("append");
    journal.sync().expect("sync");
    let err = Journal::open(tmp.path(), options(4096))
        .err()
        .expect("locked");
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("data directory locked by another process"));
    // A reader takes no lock.
    assert_eq!(
        JournalReader::open(tmp.path())
            .expect("reader")
            .iter()
            .count(),
        1
    );
    drop(journal);
    let (_journal, recovery) = Journal::open(tmp.path(), options(4096)).expect("unlocked");
    assert_eq!(recovery.last_seq, 1);
}

#[test]
fn leftover_temp_segments_are_removed_and_strange_names_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut journal, _) = Journal::open(tmp.path(), options(4096)).expect("open");
    journal.append(1, 1, b"a").expect("append");
    journal.sync().expect("sync");
    drop(journal);
    let temp = tmp.path().join(format!("{}.tmp", segment_file_name(2)));
    std::fs::write(&temp, b"half made").expect("write");
    std::fs::write(tmp.path().join("README"), b"not a segment").expect("write");
    let (journal, recovery) = Journal::open(tmp.path(), options(4096)).expect("open");
    assert_eq!(recovery.removed_temp_files, 1);
    assert!(!temp.exists());
    drop(journal);

    std::fs::write(tmp.path().join("journal-12.fxj"), b"").expect("write");
    let err = Journal::open(tmp.path(), options(4096))
        .err()
        .expect("bad name");
    let (path, _, _, kind) = corrupt_parts(&err);
    assert!(path.ends_with("journal-12.fxj"));
    assert_eq!(kind, &Corruption::BadFileName);
}

/// Writes a single-segment journal and returns its segment path, pristine bytes and model.
fn single_segment_journal(
    dir: &Path,
    rng: &mut SplitMix64,
    records: usize,
) -> (PathBuf, Vec<u8>, Model) {
    let (mut journal, _) = Journal::open(dir, options(64 * 1024)).expect("open");
    let mut model = Model::new();
    append_records(&mut journal, &mut model, records, rng);
    drop(journal);
    let files = segment_files(dir);
    assert_eq!(files.len(), 1);
    let bytes = std::fs::read(&files[0]).expect("read");
    (files[0].clone(), bytes, model)
}

#[test]
fn torn_tail_at_every_offset_of_the_last_two_records_is_truncated() {
    let seed = seed("torn_tail_at_every_offset_of_the_last_two_records_is_truncated");
    let mut rng = SplitMix64::new(seed);
    let base = tempfile::tempdir().expect("tempdir");
    let (segment, pristine, model) = single_segment_journal(base.path(), &mut rng, 40);
    let name = segment.file_name().expect("name");
    let spans = record_spans(&pristine);
    assert_eq!(spans.len(), model.len());
    let (start_a, _) = spans[spans.len() - 2];
    let (_, end_b) = spans[spans.len() - 1];

    for cut in start_a..=end_b {
        for zero_fill in [false, true] {
            let context = format!("seed {seed}, cut at {cut}, zero_fill {zero_fill}");
            let tmp = tempfile::tempdir().expect("tempdir");
            let mut bytes = pristine.clone();
            if zero_fill {
                bytes[cut..].fill(0);
            } else {
                bytes.truncate(cut);
            }
            std::fs::write(tmp.path().join(name), &bytes).expect("write");

            // A record is complete if the cut left its bytes alone: it ends before the cut,
            // or (zero fill only) everything the fill overwrote was zero already, such as
            // padding or trailing zero payload bytes. A truncated file is shorter than the
            // record's padded length, which is a torn record even if only padding is missing.
            let complete = spans
                .iter()
                .filter(|&&(start, end)| {
                    end <= cut
                        || (zero_fill && start < cut && pristine[cut..end].iter().all(|&b| b == 0))
                })
                .count();
            // Recovery zeroes from the end of the last complete record to the last non-zero
            // byte the cut left.
            let torn_start = complete
                .checked_sub(1)
                .map_or(SEGMENT_HEADER_BYTES, |i| spans[i].1);
            let nonzero_end = bytes
                .get(torn_start..cut.min(bytes.len()))
                .and_then(|tail| tail.iter().rposition(|&b| b != 0))
                .map_or(torn_start, |i| torn_start + i + 1);
            let expected = &model[..complete];

            // The reader, before recovery, already stops at the complete records.
            let reader = JournalReader::open(tmp.path()).expect("reader");
            assert_reads(&reader, expected, 1, &context);
            drop(reader);

            let (mut journal, recovery) =
                Journal::open(tmp.path(), options(64 * 1024)).expect(&context);
            assert_eq!(recovery.last_seq, complete as u64, "{context}");
            assert_eq!(
                recovery.truncated_bytes,
                (nonzero_end - torn_start) as u64,
                "{context}"
            );
            if recovery.truncated_bytes > 0 {
                let at = recovery.truncated_at.as_ref().expect("truncated_at");
                assert_eq!(at.1, torn_start as u64, "{context}");
            }
            // Appending continues right after the last complete record.
            let mut expected = expected.to_vec();
            let seq = complete as u64 + 1;
            journal.append(seq, 42, b"after recovery").expect(&context);
            journal.sync().expect(&context);
            expected.push((42, b"after recovery".to_vec()));
            drop(journal);
            let reader = JournalReader::open(tmp.path()).expect("reader");
            assert_reads(&reader, &expected, 1, &context);
        }
    }
}

/// Where a flipped bit landed, and so what recovery must say.
#[derive(Debug)]
enum Expect {
    /// An error naming this file and an offset in this range.
    Error { file: usize, offsets: (u64, u64) },
    /// The last record is dropped as a torn tail.
    TruncateLast,
    /// Stray bytes after the last record of the last segment: zeroed, nothing lost.
    TruncateGarbage,
}

#[test]
fn a_flipped_bit_anywhere_is_detected() {
    let seed = seed("a_flipped_bit_anywhere_is_detected");
    let mut rng = SplitMix64::new(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut journal, _) = Journal::open(dir, options(2048)).expect("open");
    let mut model = Model::new();
    append_records(&mut journal, &mut model, 90, &mut rng);
    drop(journal);
    let files = segment_files(dir);
    assert!(files.len() >= 3, "seed {seed}: {} segments", files.len());
    let pristine: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    let last_file = files.len() - 1;
    let total = model.len() as u64;

    let mut trials = 0;
    for (file, bytes) in pristine.iter().enumerate() {
        let spans = record_spans(bytes);
        let written_end = spans.last().map_or(SEGMENT_HEADER_BYTES, |s| s.1);
        let mut positions: Vec<usize> = (0..SEGMENT_HEADER_BYTES).collect();
        positions.extend((SEGMENT_HEADER_BYTES..written_end).filter(|_| rng.chance(1, 3)));
        // Every byte of each segment's last record, where tail handling matters most.
        if let Some(&(start, end)) = spans.last() {
            positions.extend(start..end);
        }
        // A few positions in the zero area after the records.
        let zero_area_bytes = (bytes.len() - written_end) as u64;
        if zero_area_bytes > 0 {
            positions.extend((0..8).map(|_| written_end + rng.below(zero_area_bytes) as usize));
        }

        for pos in positions {
            let bit = rng.below(8);
            let expect = if pos < SEGMENT_HEADER_BYTES {
                Expect::Error {
                    file,
                    offsets: (0, 0),
                }
            } else if pos >= written_end {
                if file == last_file {
                    Expect::TruncateGarbage
                } else {
                    Expect::Error {
                        file,
                        offsets: (written_end as u64, pos as u64),
                    }
                }
            } else {
                let &(start, _) = spans
                    .iter()
                    .find(|&&(s, e)| s <= pos && pos < e)
                    .expect("pos in a record");
                if file == last_file && Some(&(start, written_end)) == spans.last() {
                    Expect::TruncateLast
                } else {
                    Expect::Error {
                        file,
                        offsets: (start as u64, start as u64),
                    }
                }
            };
            let context = format!("seed {seed}, file {file}, byte {pos}, bit {bit}, {expect:?}");
            let mut flipped = bytes.clone();
            flipped[pos] ^= 1 << bit;
            std::fs::write(&files[file], &flipped).expect("write");

            // The reader never yields the full, unchanged journal.
            let read: Result<Vec<u64>, JournalError> = JournalReader::open(dir)
                .and_then(|r| r.iter().map(|rec| rec.map(|rec| rec.seq)).collect());
            match (&expect, &read) {
                (Expect::Error { .. }, Err(_)) => {}
                (Expect::TruncateLast, Ok(seqs)) => {
                    assert_eq!(seqs.len() as u64, total - 1, "{context}")
                }
                (Expect::TruncateGarbage, Ok(seqs)) => {
                    assert_eq!(seqs.len() as u64, total, "{context}")
                }
                _ => panic!("{context}: reader gave {read:?}"),
            }

            let opened = Journal::open(dir, options(2048));
            match (&expect, opened) {
                (Expect::Error { file, offsets }, Err(err)) => {
                    let (path, offset, _, _) = corrupt_parts(&err);
                    assert_eq!(path, files[*file], "{context}: {err}");
                    assert!(
                        offsets.0 <= offset && offset <= offsets.1,
                        "{context}: {err}"
                    );
                }
                (Expect::TruncateLast, Ok((_, recovery))) => {
                    assert_eq!(recovery.last_seq, total - 1, "{context}");
                    assert!(recovery.truncated_bytes > 0, "{context}");
                }
                (Expect::TruncateGarbage, Ok((_, recovery))) => {
                    assert_eq!(recovery.last_seq, total, "{context}");
                    assert_eq!(
                        recovery.truncated_bytes,
                        (pos + 1 - written_end) as u64,
                        "{context}"
                    );
                }
                (_, Ok((_, recovery))) => panic!("{context}: accepted, {recovery:?}"),
                (_, Err(err)) => panic!("{context}: {err}"),
            }
            std::fs::write(&files[file], bytes).expect("restore");
            trials += 1;
        }
    }
    assert!(trials > 1000, "{trials} trials");
}

fn recompute_crc(bytes: &mut [u8], start: usize, end: usize) {
    let crc = crc32c::crc32c(&bytes[start + 4..end]);
    bytes[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn seq_gaps_are_detected() {
    let seed = seed("seq_gaps_are_detected");
    let mut rng = SplitMix64::new(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut journal, _) = Journal::open(dir, options(2048)).expect("open");
    let mut model = Model::new();
    append_records(&mut journal, &mut model, 60, &mut rng);
    drop(journal);
    let files = segment_files(dir);
    assert!(files.len() >= 3);

    // An intact record with a wrong seq (its CRC recomputed): in the middle of a segment, and
    // as the very last record, where a torn tail would be truncated but this must not be.
    for (file, which) in [(1, 1), (files.len() - 1, usize::MAX)] {
        let pristine = std::fs::read(&files[file]).expect("read");
        let spans = record_spans(&pristine);
        let (start, end) = spans[which.min(spans.len() - 1)];
        let mut bytes = pristine.clone();
        let seq = u64::from_le_bytes(bytes[start + 8..start + 16].try_into().expect("8"));
        bytes[start + 8..start + 16].copy_from_slice(&(seq + 1).to_le_bytes());
        recompute_crc(&mut bytes, start, end);
        std::fs::write(&files[file], &bytes).expect("write");
        let err = Journal::open(dir, options(2048)).err().expect("gap");
        let (path, offset, expected, kind) = corrupt_parts(&err);
        assert_eq!(
            (path, offset, expected),
            (files[file].as_path(), start as u64, seq)
        );
        assert_eq!(
            kind,
            &Corruption::SeqGap {
                expected: seq,
                found: seq + 1
            }
        );
        assert!(JournalReader::open(dir)
            .expect("reader")
            .iter()
            .any(|r| r.is_err()));
        std::fs::write(&files[file], &pristine).expect("restore");
    }

    // A missing middle segment.
    let missing = std::fs::read(&files[1]).expect("read");
    std::fs::remove_file(&files[1]).expect("remove");
    let err = Journal::open(dir, options(2048)).err().expect("gap");
    let (path, offset, _, kind) = corrupt_parts(&err);
    assert_eq!((path, offset), (files[2].as_path(), 0));
    assert!(matches!(kind, Corruption::SeqGap { .. }), "{err}");
    assert!(err.to_string().contains("sequence gap"), "{err}");
    let first_error = JournalReader::open(dir)
        .expect("reader")
        .iter()
        .find_map(|r| r.err())
        .expect("reader sees the gap");
    assert!(matches!(
        first_error,
        JournalError::Corrupt {
            kind: Corruption::SeqGap { .. },
            ..
        }
    ));
    std::fs::write(&files[1], &missing).expect("restore");

    // A segment renamed to claim other seqs.
    let renamed = dir.join(segment_file_name(1_000_000));
    std::fs::rename(&files[2], &renamed).expect("rename");
    let err = Journal::open(dir, options(2048)).err().expect("mismatch");
    assert!(
        matches!(corrupt_parts(&err).3, Corruption::NameMismatch { .. }),
        "{err}"
    );
    std::fs::rename(&renamed, &files[2]).expect("restore");
    let (_, recovery) = Journal::open(dir, options(2048)).expect("restored");
    assert_eq!(recovery.last_seq, 60);
}

#[test]
fn a_failed_sync_is_fatal_and_poisons_the_journal() {
    let storage = SimStorage::new();
    let dir = Path::new("/sim/journal");
    let (mut journal, _) = Journal::open_with(storage.clone(), dir, options(4096)).expect("open");
    journal.append(1, 1, b"one").expect("append");
    assert_eq!(journal.sync().expect("sync").durable_seq, 1);
    journal.append(2, 2, b"two").expect("append");
    storage.fail_next_sync();
    let err = journal.sync().expect_err("injected failure");
    assert!(matches!(err, JournalError::SyncFailed { .. }), "{err}");
    assert!(err.is_fatal() && journal.is_poisoned());
    assert!(err.to_string().contains("fsync"), "{err}");
    // No retry may "succeed": the kernel may already have dropped the failed pages.
    assert!(matches!(journal.sync(), Err(JournalError::Poisoned)));
    assert!(matches!(
        journal.append(3, 3, b"three"),
        Err(JournalError::Poisoned)
    ));
    assert_eq!(journal.durable_seq(), 1);
    drop(journal);
    storage.crash(7);
    let (_journal, recovery) =
        Journal::open_with(storage.clone(), dir, options(4096)).expect("open");
    assert_eq!(recovery.last_seq, 1);
}

/// The crash loop: random appends, flushes and syncs on a simulated disk, the power cut at a
/// random operation (sometimes during recovery or a rollover), random fsync failures, then a
/// crash that drops whatever no sync covered (possibly tearing a write). Every acknowledged
/// record must survive intact, nothing after it may be corrupt or duplicated, and recovery
/// must always succeed.
#[test]
fn power_loss_never_loses_acknowledged_records() {
    let seed = seed("power_loss_never_loses_acknowledged_records");
    let mut rng = SplitMix64::new(seed);
    let storage = SimStorage::new();
    let dir = Path::new("/sim/journal");
    let opts = JournalOptions {
        segment_bytes: 1024 + 512 * rng.below(4),
        write_buffer_bytes: 64 + rng.below(2048) as usize,
        first_seq: 1,
    };
    let mut model = Model::new();
    let mut acked = 0u64;
    let mut crashes_during_recovery = 0;
    let mut max_segments = 0;
    for round in 0..300 {
        let context = format!("seed {seed}, round {round}, options {opts:?}");
        let cut_during_open = rng.chance(1, 8);
        if cut_during_open {
            storage.cut_power_after(rng.below(6));
        }
        let (mut journal, recovery): (Journal<SimStorage>, Recovery) =
            match Journal::open_with(storage.clone(), dir, opts.clone()) {
                Ok(opened) => opened,
                Err(err) => {
                    assert!(
                        cut_during_open && storage.power_is_out(),
                        "{context}: recovery failed: {err}"
                    );
                    crashes_during_recovery += 1;
                    storage.crash(rng.next_u64());
                    continue;
                }
            };
        assert!(
            recovery.last_seq >= acked,
            "{context}: acknowledged seq {acked} lost, recovered up to {}",
            recovery.last_seq
        );
        assert!(
            recovery.last_seq <= model.len() as u64,
            "{context}: recovered seq {} was never appended",
            recovery.last_seq
        );
        model.truncate(recovery.last_seq as usize);
        max_segments = max_segments.max(recovery.segments);
        if !storage.power_is_out() {
            let reader = JournalReader::open_with(&storage, dir).expect(&context);
            assert_reads(&reader, &model, 1, &context);
        }
        // Recovery syncs what it found, so all of it is now acknowledged.
        acked = recovery.last_seq;

        if !cut_during_open && rng.chance(1, 2) {
            storage.cut_power_after(rng.below(40));
        }
        let mut sync_will_fail = false;
        for _ in 0..rng.below(80) {
            let result = match rng.below(20) {
                0..=15 => {
                    let seq = model.len() as u64 + 1;
                    let ts_ns = seq * 1000;
                    let p = payload(&mut rng, 300);
                    let r = journal.append(seq, ts_ns, &p);
                    if r.is_ok() {
                        model.push((ts_ns, p));
                    }
                    r
                }
                16 => journal.flush(),
                17 if rng.chance(1, 4) => {
                    storage.fail_next_sync();
                    sync_will_fail = true;
                    Ok(())
                }
                _ => journal.sync().map(|synced| {
                    assert_eq!(synced.durable_seq, journal.written_seq(), "{context}");
                    acked = synced.durable_seq;
                }),
            };
            if let Err(err) = result {
                assert!(
                    err.is_fatal() && (storage.power_is_out() || sync_will_fail),
                    "{context}: unexpected {err}"
                );
                break;
            }
        }
        drop(journal);
        storage.crash(rng.next_u64());
    }
    eprintln!(
        "{} records at the end, {crashes_during_recovery} crashes during recovery, up to {max_segments} segments",
        model.len()
    );
    assert!(
        max_segments >= 3,
        "seed {seed}: the loop should roll over segments"
    );
}

/// Random damage (bytes overwritten anywhere, lengths included) must never panic the reader
/// or recovery, and whenever recovery accepts a journal the reader must read it back fully.
#[test]
fn hostile_bytes_never_panic_and_recovery_agrees_with_the_reader() {
    use ferrox_sequencer::journal::{Storage, StorageFile};

    let seed = seed("hostile_bytes_never_panic_and_recovery_agrees_with_the_reader");
    let mut rng = SplitMix64::new(seed);
    let dir = Path::new("/sim/journal");
    let mut accepted = 0;
    let rounds = 2000;
    for round in 0..rounds {
        let context = format!("seed {seed}, round {round}");
        let storage = SimStorage::new();
        let (mut journal, _) =
            Journal::open_with(storage.clone(), dir, options(1024)).expect(&context);
        let mut model = Model::new();
        for seq in 1..=rng.below(40) {
            let p = payload(&mut rng, 120);
            journal.append(seq, seq, &p).expect(&context);
            model.push((seq, p));
        }
        journal.sync().expect(&context);
        drop(journal);

        let mut names = storage.list_dir(dir).expect("list");
        names.retain(|n| n.ends_with(".fxj"));
        names.sort();
        for _ in 0..1 + rng.below(4) {
            let name = &names[rng.below(names.len() as u64) as usize];
            let path = dir.join(name);
            let len = storage.read(&path).expect("read").len() as u64;
            let at = rng.below(len);
            let garbage: Vec<u8> = match rng.below(3) {
                // A plausible length field, to exercise the length checks.
                0 => (rng.below(1 << 12) as u32).to_le_bytes().to_vec(),
                1 => u32::MAX.to_le_bytes().to_vec(),
                _ => (0..1 + rng.below(16))
                    .map(|_| rng.next_u64() as u8)
                    .collect(),
            };
            let mut file = storage.open_rw(&path).expect("open");
            file.write_all_at(&garbage, at).expect("write");
        }

        if let Ok(reader) = JournalReader::open_with(&storage, dir) {
            for from in [0, 1, rng.below(50)] {
                for record in reader.iter_from(from) {
                    if record.is_err() {
                        break;
                    }
                }
            }
        }
        if let Ok((journal, recovery)) = Journal::open_with(storage.clone(), dir, options(1024)) {
            accepted += 1;
            drop(journal);
            let reader = JournalReader::open_with(&storage, dir).expect(&context);
            // What was accepted is exactly a prefix of what was written.
            let kept = &model[..recovery.last_seq as usize];
            assert_reads(&reader, kept, 1, &context);
            let seqs: Vec<u64> = reader
                .iter()
                .map(|r| r.map(|r| r.seq))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{context}: recovery accepted, reader says {e}"));
            assert_eq!(seqs.len() as u64, recovery.records, "{context}");
            assert_eq!(
                seqs.last().copied().unwrap_or(recovery.first_seq - 1),
                recovery.last_seq,
                "{context}"
            );
        }
    }
    eprintln!("recovery accepted {accepted} of {rounds} damaged journals");
}
