//! The event-sourced journal of sequenced commands: the exchange's source of truth.
//!
//! Every command the sequencer stamps is appended here as a record `(seq, ts_ns, payload)`
//! before anything downstream may act on it; replaying the journal through the engine
//! rebuilds the exact state. The journal treats the payload as opaque bytes (the 64-byte
//! command codec lives in `ferrox_protocol::wire`, which this module does not depend on).
//!
//! # Files
//!
//! A journal is a directory of append-only *segment* files named after the seq of their first
//! record, zero-padded to 20 digits so that the names sort in seq order:
//!
//! ```text
//! data/journal/
//!   journal.lock                          flock(2)ed by the writer for its lifetime
//!   journal-00000000000000000001.fxj      seqs 1 ..= 2_900_000   (full, synced)
//!   journal-00000000000002900001.fxj      seqs 2_900_001 ..       (active, preallocated)
//!   journal-00000000000005800001.fxj.tmp  a segment being created (deleted at start-up)
//! ```
//!
//! A segment is created as `.tmp`, preallocated to `segment_bytes` (`set_len` plus
//! `fallocate(2)`, see [`FsStorage`]), given its header, fsynced, renamed to its final name and
//! the directory fsynced, so a segment with a final name always has an intact header. When the
//! next record does not fit, the writer syncs the full segment and starts the next one.
//!
//! ## Segment file
//!
//! ```text
//!  +---------------+----------+----------+-----+----------+--------------------------------+
//!  | header (64 B) | record 1 | record 2 | ... | record n | 00 00 00 ... 00 (preallocated) |
//!  +---------------+----------+----------+-----+----------+--------------------------------+
//!  0               64                                     end of data          segment_bytes
//! ```
//!
//! ## Segment header (64 bytes, little-endian)
//!
//! ```text
//!  offset  bytes  field            value
//!  ------  -----  ---------------  -------------------------------------------------------
//!       0      8  magic            "FRXJRNL\0"
//!       8      2  format_version   1
//!      10      2  header_bytes     64
//!      12      4  reserved         0
//!      16      8  first_seq        seq of the segment's first record; equals the file name
//!      24      8  segment_bytes    size preallocated at creation
//!      32      8  created_unix_ns  wall clock when the segment was created
//!      40      4  creator_pid      id of the process that created it
//!      44     16  reserved         0
//!      60      4  header_crc32c    CRC32C of bytes 0..60
//! ```
//!
//! The CRC is always the header's last 4 bytes (`header_bytes - 4`), so a reader checks the
//! CRC before trusting the version: a flipped bit in `version` reads as corruption, while a
//! genuine future version reads as "unsupported version".
//!
//! ## Record (starts at a multiple of 8; little-endian)
//!
//! ```text
//!  0        4              8                   16                  24
//!  +--------+--------------+-------------------+-------------------+------------------------+---------+
//!  | crc32c | record_bytes |        seq        |       ts_ns       |        payload         | padding |
//!  |  u32   |     u32      |        u64        |        u64        | record_bytes - 24 bytes| 0-7 x 00|
//!  +--------+--------------+-------------------+-------------------+------------------------+---------+
//!           |<------------------------------- covered by crc32c -------------------------------------->|
//! ```
//!
//! `record_bytes` is the unpadded length *including* the 24-byte frame header, so it is at
//! least 24 even for an empty payload: a zero length never occurs in a written record, and an
//! all-zero frame header unambiguously marks the end of written data in a preallocated
//! segment. The next record starts at the next multiple of 8, which keeps `seq` and `ts_ns`
//! naturally aligned for zero-copy reads. The CRC (CRC32C, hardware-accelerated) covers the
//! length, seq, timestamp, payload and padding, so every written byte is checked.
//!
//! # Recovery
//!
//! [`Journal::open`] scans every segment in order and verifies every record: CRCs, lengths,
//! headers, and seqs strictly consecutive within and across segments. Then:
//!
//! - **Torn tail, truncated.** In the last segment, a record that is incomplete or fails its
//!   CRC, followed by nothing but zeros or garbage that contains no intact record, is what a
//!   crash during a write leaves. Recovery zeroes it (segments are never shrunk, so readers'
//!   maps stay valid), syncs, and reports [`Recovery::truncated_bytes`].
//! - **Corruption, refused.** A bad record followed by an intact later record, a bad record or
//!   stray bytes in any segment but the last, an intact record with the wrong seq, or a gap
//!   between segments make `open` fail with [`JournalError::Corrupt`], naming the file, the
//!   byte offset and the expected seq. Nothing is modified; an operator decides.
//!
//! The writer syncs a segment before creating the next, so only the last segment can have a
//! torn tail. One case is deliberately on the refusing side: a power cut while a group of
//! unsynced records is being written back may persist a later page before an earlier one,
//! leaving zeros followed by intact (never acknowledged) records. From the bytes alone this
//! cannot be told apart from lost or corrupted acknowledged data, so the journal refuses to
//! guess rather than silently drop records that might have been acknowledged.
//!
//! After recovery the last segment is fsynced, so every recovered record is durable before the
//! sequencer republishes anything (a previous process may have died with records still only in
//! the page cache).
//!
//! # Writing and durability
//!
//! [`Journal::append`] encodes a record into a user-space buffer (no system call);
//! [`Journal::flush`] hands the buffer to the OS with one `pwrite`; [`Journal::sync`] flushes
//! and calls `fdatasync`, and returns the highest seq now durable. Group commit is the caller's
//! loop: append a batch, sync once, then acknowledge up to the returned seq.
//!
//! A failed write or fsync poisons the journal ([`JournalError::SyncFailed`],
//! [`JournalError::WriteFailed`], then [`JournalError::Poisoned`]): the process must stop and
//! must not retry the sync, because after a failed fsync Linux may report a later one as
//! successful without the data having reached the disk ("fsyncgate").
//!
//! Dropping a `Journal` writes nothing: records appended since the last `sync` were never
//! acknowledged and may be lost, exactly as in a crash.

mod error;
mod format;
mod reader;
pub mod sim;
mod storage;

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use error::{Corruption, JournalError};
pub use format::{
    framed_bytes, FORMAT_VERSION, RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
pub use reader::{JournalReader, Record, Records};
pub use storage::{FsFile, FsLock, FsMap, FsStorage, Storage, StorageFile, LOCK_FILE_NAME};

use format::{encode_record, ScanItem, SegmentHeader, SegmentScan};

/// Prefix of segment file names.
pub const SEGMENT_PREFIX: &str = "journal-";
/// Extension of segment file names.
pub const SEGMENT_SUFFIX: &str = ".fxj";
/// Extension of a segment still being created.
const TEMP_SUFFIX: &str = ".fxj.tmp";

/// The smallest `segment_bytes` accepted; real journals use hundreds of MiB.
pub const MIN_SEGMENT_BYTES: u64 = 1024;

/// The file name of the segment whose first record is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}{SEGMENT_SUFFIX}")
}

/// How a journal is written. Reading needs no options: each segment describes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// Size every new segment is preallocated to; a multiple of 8, at least
    /// [`MIN_SEGMENT_BYTES`]. Existing segments keep the size they were created with.
    pub segment_bytes: u64,
    /// Appended records are gathered in a buffer of about this size and written with one
    /// `pwrite` when it fills or at `flush`/`sync`.
    pub write_buffer_bytes: usize,
    /// The seq the first record must carry when the directory holds no journal yet (at least
    /// 1); ignored otherwise.
    pub first_seq: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            // 256 MiB: about 3 million 64-byte commands (88 bytes framed), so a rollover (one
            // extra fsync and a file creation) happens every few seconds at full load.
            segment_bytes: 256 << 20,
            write_buffer_bytes: 1 << 20,
            first_seq: 1,
        }
    }
}

impl JournalOptions {
    fn validate(&self) -> Result<(), JournalError> {
        let reason = if self.segment_bytes < MIN_SEGMENT_BYTES {
            "segment_bytes is below MIN_SEGMENT_BYTES"
        } else if self.segment_bytes % RECORD_ALIGN_BYTES as u64 != 0 {
            "segment_bytes is not a multiple of 8"
        } else if self.first_seq == 0 {
            "first_seq must be at least 1 (0 means 'no record')"
        } else {
            return Ok(());
        };
        Err(JournalError::InvalidOptions { reason })
    }

    /// The largest payload a record can carry with these options.
    pub fn max_payload_bytes(&self) -> usize {
        let usable = self
            .segment_bytes
            .saturating_sub(SEGMENT_HEADER_BYTES as u64)
            & !(RECORD_ALIGN_BYTES as u64 - 1);
        let by_segment = usable.saturating_sub(RECORD_HEADER_BYTES as u64);
        let by_frame = u64::from(u32::MAX) - (RECORD_HEADER_BYTES + RECORD_ALIGN_BYTES) as u64;
        usize::try_from(by_segment.min(by_frame)).unwrap_or(usize::MAX)
    }
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The first seq the journal holds (its first segment's first seq).
    pub first_seq: u64,
    /// The last intact record's seq; `first_seq - 1` if there is none. The next append must
    /// carry `last_seq + 1`.
    pub last_seq: u64,
    /// Intact records found, over all segments.
    pub records: u64,
    /// Segment files, including one created for an empty journal.
    pub segments: usize,
    /// Bytes from the end of the last intact record to the last non-zero byte of a torn tail,
    /// zeroed by recovery; 0 if the tail was clean.
    pub truncated_bytes: u64,
    /// The segment and byte offset where the torn tail started, if there was one.
    pub truncated_at: Option<(PathBuf, u64)>,
    /// Half-created `.tmp` segments deleted.
    pub removed_temp_files: usize,
}

/// The result of a successful [`Journal::sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncedUpTo {
    /// Every record with a seq at or below this is on stable storage.
    pub durable_seq: u64,
}

struct ActiveSegment<F> {
    path: PathBuf,
    file: F,
    /// The file's size: records must end at or before it.
    capacity_bytes: u64,
    /// Where the write buffer's first byte goes.
    flushed_bytes: u64,
}

/// The journal's writer. One per directory, enforced by a lock.
pub struct Journal<S: Storage = FsStorage> {
    storage: S,
    dir: PathBuf,
    options: JournalOptions,
    active: ActiveSegment<S::File>,
    /// Encoded records not yet handed to the OS; they belong at `active.flushed_bytes`.
    buffer: Vec<u8>,
    written_seq: u64,
    flushed_seq: u64,
    durable_seq: u64,
    poisoned: bool,
    // Declared last so that it is dropped last: the lock outlives every file handle.
    _lock: S::Lock,
}

impl Journal<FsStorage> {
    /// Opens (creating if needed) the journal in `dir` on the real file system, takes the
    /// directory lock and recovers; see the module docs for what recovery accepts.
    pub fn open(
        dir: impl AsRef<Path>,
        options: JournalOptions,
    ) -> Result<(Self, Recovery), JournalError> {
        Self::open_with(FsStorage, dir, options)
    }
}

impl<S: Storage> Journal<S> {
    /// [`Journal::open`] on any [`Storage`], such as the power-loss simulator.
    pub fn open_with(
        storage: S,
        dir: impl AsRef<Path>,
        options: JournalOptions,
    ) -> Result<(Self, Recovery), JournalError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        storage
            .create_dir_all(&dir)
            .map_err(|e| JournalError::io("creating directory", &dir, e))?;
        // The directory itself may be new: its entry in the parent must be durable too, or a
        // power cut could take the whole journal, synced records and all, with it.
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        storage
            .sync_dir(parent)
            .map_err(|source| JournalError::SyncFailed {
                path: parent.to_path_buf(),
                source,
            })?;
        let lock = storage.lock_dir(&dir).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                JournalError::Locked { dir: dir.clone() }
            } else {
                JournalError::io("locking", &dir, e)
            }
        })?;
        let listing = list_segments(&storage, &dir)?;
        for temp in &listing.temp_files {
            storage
                .remove_file(temp)
                .map_err(|e| JournalError::io("removing", temp, e))?;
        }
        if !listing.temp_files.is_empty() {
            storage
                .sync_dir(&dir)
                .map_err(|source| JournalError::SyncFailed {
                    path: dir.clone(),
                    source,
                })?;
        }

        let (active, recovery) = if let Some((last, earlier)) = listing.segments.split_last() {
            let found = recover(&storage, earlier, last)?;
            let path = found.tail_path;
            let mut file = storage
                .open_rw(&path)
                .map_err(|e| JournalError::io("opening", &path, e))?;
            let mut truncated_at = None;
            let mut truncated_bytes = 0;
            if let Some(garbage) = found.garbage {
                zero_range(&mut file, found.end_bytes as usize..garbage.end).map_err(|source| {
                    JournalError::WriteFailed {
                        path: path.clone(),
                        source,
                    }
                })?;
                truncated_bytes = garbage.end as u64 - found.end_bytes;
                truncated_at = Some((path.clone(), found.end_bytes));
            }
            // Recovered records may so far exist only in the page cache of a process that
            // died; make them durable before anyone acts on them.
            file.sync_data()
                .map_err(|source| JournalError::SyncFailed {
                    path: path.clone(),
                    source,
                })?;
            let recovery = Recovery {
                first_seq: found.first_seq,
                last_seq: found.next_seq - 1,
                records: found.records,
                segments: listing.segments.len(),
                truncated_bytes,
                truncated_at,
                removed_temp_files: listing.temp_files.len(),
            };
            let active = ActiveSegment {
                path,
                file,
                capacity_bytes: found.capacity_bytes,
                flushed_bytes: found.end_bytes,
            };
            (active, recovery)
        } else {
            let active = create_segment(&storage, &dir, options.first_seq, options.segment_bytes)?;
            let recovery = Recovery {
                first_seq: options.first_seq,
                last_seq: options.first_seq - 1,
                records: 0,
                segments: 1,
                truncated_bytes: 0,
                truncated_at: None,
                removed_temp_files: listing.temp_files.len(),
            };
            (active, recovery)
        };

        let last = recovery.last_seq;
        let journal = Journal {
            storage,
            dir,
            buffer: Vec::with_capacity(options.write_buffer_bytes),
            options,
            active,
            written_seq: last,
            flushed_seq: last,
            durable_seq: last,
            poisoned: false,
            _lock: lock,
        };
        Ok((journal, recovery))
    }

    /// Appends one record. `seq` must be `written_seq() + 1`; otherwise, or if the payload is
    /// too large, an error is returned and nothing changes. The record is only buffered: it
    /// is durable once a later [`Journal::sync`] returns.
    pub fn append(&mut self, seq: u64, ts_ns: u64, payload: &[u8]) -> Result<(), JournalError> {
        self.usable()?;
        // `written_seq` is below u64::MAX (which is never accepted), so `+ 1` cannot overflow;
        // at a billion records a second the seqs last 584 years anyway.
        let expected = self.written_seq + 1;
        if seq != expected || seq == u64::MAX {
            return Err(JournalError::OutOfOrder { expected, got: seq });
        }
        let max_payload_bytes = self.options.max_payload_bytes();
        if payload.len() > max_payload_bytes {
            return Err(JournalError::RecordTooLarge {
                payload_bytes: payload.len(),
                max_payload_bytes,
            });
        }
        let framed = framed_bytes(payload.len());
        let end = self.active.flushed_bytes + (self.buffer.len() + framed) as u64;
        if end > self.active.capacity_bytes {
            self.roll_over(seq)?;
        }
        if !self.buffer.is_empty() && self.buffer.len() + framed > self.options.write_buffer_bytes {
            self.flush()?;
        }
        encode_record(&mut self.buffer, seq, ts_ns, payload);
        self.written_seq = seq;
        Ok(())
    }

    /// Hands the buffered records to the OS (one `pwrite`), without waiting for the disk:
    /// readers in other processes can then see them, but they are not yet durable.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        self.usable()?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        if let Err(source) = self
            .active
            .file
            .write_all_at(&self.buffer, self.active.flushed_bytes)
        {
            self.poisoned = true;
            return Err(JournalError::WriteFailed {
                path: self.active.path.clone(),
                source,
            });
        }
        self.active.flushed_bytes += self.buffer.len() as u64;
        self.buffer.clear();
        self.flushed_seq = self.written_seq;
        Ok(())
    }

    /// Flushes and `fdatasync`s: on success every record appended so far is durable, and the
    /// result says up to which seq. Costs nothing when nothing was appended since the last
    /// sync. An error is fatal ([`JournalError::SyncFailed`]): stop the process.
    pub fn sync(&mut self) -> Result<SyncedUpTo, JournalError> {
        self.flush()?;
        if self.durable_seq < self.flushed_seq {
            if let Err(source) = self.active.file.sync_data() {
                self.poisoned = true;
                return Err(JournalError::SyncFailed {
                    path: self.active.path.clone(),
                    source,
                });
            }
            self.durable_seq = self.flushed_seq;
        }
        Ok(SyncedUpTo {
            durable_seq: self.durable_seq,
        })
    }

    /// The seq of the last record appended (buffered or written), or the seq before the
    /// journal's first if there is none.
    pub fn written_seq(&self) -> u64 {
        self.written_seq
    }

    /// The seq of the last record known to be on stable storage.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Whether a fatal error has made the journal unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment records are currently appended to.
    pub fn active_segment_path(&self) -> &Path {
        &self.active.path
    }

    /// The options the journal was opened with.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    fn usable(&self) -> Result<(), JournalError> {
        if self.poisoned {
            Err(JournalError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Closes the full segment and starts the next one at `first_seq`.
    fn roll_over(&mut self, first_seq: u64) -> Result<(), JournalError> {
        // The full segment must be durable before its successor exists: otherwise a crash
        // could keep the new segment but lose the old one's unsynced tail, and recovery would
        // find a seq gap between them, which it must treat as corruption.
        self.sync()?;
        match create_segment(
            &self.storage,
            &self.dir,
            first_seq,
            self.options.segment_bytes,
        ) {
            Ok(active) => {
                self.active = active;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}

/// The journal's files, by kind.
pub(crate) struct Listing {
    /// `(first seq from the name, path)`, sorted by seq.
    pub segments: Vec<(u64, PathBuf)>,
    pub temp_files: Vec<PathBuf>,
}

pub(crate) fn list_segments<S: Storage>(storage: &S, dir: &Path) -> Result<Listing, JournalError> {
    let names = storage
        .list_dir(dir)
        .map_err(|e| JournalError::io("listing", dir, e))?;
    let mut listing = Listing {
        segments: Vec::new(),
        temp_files: Vec::new(),
    };
    for name in names {
        if !name.starts_with(SEGMENT_PREFIX) {
            continue;
        }
        let path = dir.join(&name);
        if name.ends_with(TEMP_SUFFIX) {
            listing.temp_files.push(path);
        } else if let Some(digits) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
        {
            // Exactly the name we would write, so that "1" and "01" cannot both exist.
            match digits.parse::<u64>() {
                // Seq 0 means "no record" and is never written.
                Ok(seq) if seq > 0 && name == segment_file_name(seq) => {
                    listing.segments.push((seq, path))
                }
                _ => return Err(corrupt(&path, 0, 0, Corruption::BadFileName)),
            }
        }
    }
    listing.segments.sort();
    Ok(listing)
}

pub(crate) fn corrupt(path: &Path, offset: u64, seq: u64, kind: Corruption) -> JournalError {
    JournalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        seq,
        kind,
    }
}

/// What the recovery scan found.
struct Found {
    first_seq: u64,
    next_seq: u64,
    records: u64,
    tail_path: PathBuf,
    capacity_bytes: u64,
    /// End of the last intact record in the last segment.
    end_bytes: u64,
    /// Non-zero bytes after it (a torn tail).
    garbage: Option<Range<usize>>,
}

fn recover<S: Storage>(
    storage: &S,
    earlier: &[(u64, PathBuf)],
    last: &(u64, PathBuf),
) -> Result<Found, JournalError> {
    let mut next_seq: Option<u64> = None;
    let mut records = 0u64;
    for (name_seq, path) in earlier {
        let map = map_segment(storage, *name_seq, path, next_seq)?;
        let mut scan = SegmentScan::new(&map.bytes, map.first_seq, false);
        loop {
            match scan.next_item() {
                Ok(ScanItem::Record(_)) => records += 1,
                Ok(ScanItem::End { .. }) => break,
                Err(f) => return Err(corrupt(path, f.offset, f.seq, f.kind)),
            }
        }
        next_seq = Some(scan.next_seq());
    }
    let (name_seq, path) = last;
    let map = map_segment(storage, *name_seq, path, next_seq)?;
    let first_seq = earlier.first().map_or(*name_seq, |(seq, _)| *seq);
    let mut scan = SegmentScan::new(&map.bytes, map.first_seq, true);
    loop {
        match scan.next_item() {
            Ok(ScanItem::Record(_)) => records += 1,
            Ok(ScanItem::End { offset, garbage }) => {
                return Ok(Found {
                    first_seq,
                    next_seq: scan.next_seq(),
                    records,
                    tail_path: path.clone(),
                    capacity_bytes: map.bytes.len() as u64,
                    end_bytes: offset as u64,
                    garbage,
                })
            }
            Err(f) => return Err(corrupt(path, f.offset, f.seq, f.kind)),
        }
    }
}

struct MappedSegment<M> {
    bytes: M,
    first_seq: u64,
}

/// Maps a segment and checks its header, its name, and that it starts where the previous
/// segment ended (`expected_first_seq`, if there was a previous one).
fn map_segment<S: Storage>(
    storage: &S,
    name_seq: u64,
    path: &Path,
    expected_first_seq: Option<u64>,
) -> Result<MappedSegment<S::Map>, JournalError> {
    let expected = expected_first_seq.unwrap_or(name_seq);
    let bytes = storage
        .map(path)
        .map_err(|e| JournalError::io("mapping", path, e))?;
    let header = SegmentHeader::decode(&bytes).map_err(|kind| corrupt(path, 0, expected, kind))?;
    if header.first_seq != name_seq {
        let kind = Corruption::NameMismatch {
            name_seq,
            header_seq: header.first_seq,
        };
        return Err(corrupt(path, 0, expected, kind));
    }
    if header.first_seq != expected {
        let kind = Corruption::SeqGap {
            expected,
            found: header.first_seq,
        };
        return Err(corrupt(path, 0, expected, kind));
    }
    Ok(MappedSegment {
        bytes,
        first_seq: header.first_seq,
    })
}

/// Creates a segment the crash-safe way: as a temporary file, preallocated, header written
/// and synced, then renamed into place and the directory synced.
fn create_segment<S: Storage>(
    storage: &S,
    dir: &Path,
    first_seq: u64,
    segment_bytes: u64,
) -> Result<ActiveSegment<S::File>, JournalError> {
    let path = dir.join(segment_file_name(first_seq));
    let temp = dir.join(format!("{SEGMENT_PREFIX}{first_seq:020}{TEMP_SUFFIX}"));
    let write_failed = |source| JournalError::WriteFailed {
        path: temp.clone(),
        source,
    };
    let mut file = storage.create_new(&temp).map_err(write_failed)?;
    file.allocate(segment_bytes).map_err(write_failed)?;
    let header = SegmentHeader {
        first_seq,
        segment_bytes,
        created_unix_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        creator_pid: std::process::id(),
    };
    file.write_all_at(&header.encode(), 0)
        .map_err(write_failed)?;
    file.sync_all().map_err(|source| JournalError::SyncFailed {
        path: temp.clone(),
        source,
    })?;
    storage.rename(&temp, &path).map_err(write_failed)?;
    storage
        .sync_dir(dir)
        .map_err(|source| JournalError::SyncFailed {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(ActiveSegment {
        path,
        file,
        capacity_bytes: segment_bytes,
        flushed_bytes: SEGMENT_HEADER_BYTES as u64,
    })
}

fn zero_range<F: StorageFile>(file: &mut F, range: Range<usize>) -> io::Result<()> {
    let zeros = vec![0u8; range.len().min(1 << 16)];
    let mut at = range.start;
    while at < range.end {
        let n = zeros.len().min(range.end - at);
        file.write_all_at(&zeros[..n], at as u64)?;
        at += n;
    }
    Ok(())
}
