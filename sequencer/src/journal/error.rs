//! The journal's error type and the kinds of corruption it can name.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong opening, writing or reading a journal.
///
/// Three variants are *fatal* ([`JournalError::is_fatal`]): [`JournalError::SyncFailed`],
/// [`JournalError::WriteFailed`] and [`JournalError::Poisoned`]. After one of them the
/// journal refuses every further call, and the caller must stop the process; see
/// [`JournalError::SyncFailed`] for why retrying is never safe.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another process (or another `Journal` in this process) holds the directory lock.
    #[error("data directory locked by another process: {}", dir.display())]
    Locked {
        /// The journal directory.
        dir: PathBuf,
    },

    /// The options cannot describe a usable journal.
    #[error("invalid journal options: {reason}")]
    InvalidOptions {
        /// Which rule the options broke.
        reason: &'static str,
    },

    /// An I/O error that changed nothing the journal relies on (while opening, listing,
    /// mapping or recovering). Opening again later is safe.
    #[error("I/O error {op} {}: {source}", path.display())]
    Io {
        /// What the journal was doing, as a phrase ("listing", "mapping", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// Writing appended records (or creating the next segment) failed. Fatal: the bytes on
    /// disk are now unknown, so the journal is poisoned.
    #[error("fatal: writing journal file {} failed: {source}; stop the process", path.display())]
    WriteFailed {
        /// The segment (or directory) being written.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// `fdatasync`/`fsync` failed. Fatal.
    ///
    /// After a failed sync Linux may already have marked the dirty pages clean and dropped
    /// the write-back error, so a second sync can "succeed" without the data ever reaching the
    /// disk (the 2018 "fsyncgate" discussion, PostgreSQL's move to PANIC on fsync failure).
    /// Retrying would therefore acknowledge records that are not durable. The journal is
    /// poisoned; the process must stop, and the records after the last successful sync must
    /// be treated as lost. Because the page cache may still *show* those records, restart
    /// only after the storage fault is understood (remount or reboot drops the cache).
    #[error("fatal: fsync of journal file {} failed: {source}; records after the last successful sync are not durable; stop the process and do not reuse this journal handle", path.display())]
    SyncFailed {
        /// The file whose sync failed.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// A fatal error happened earlier; the journal accepts no more calls.
    #[error(
        "journal unusable after an earlier fatal error (failed write or fsync); stop the process"
    )]
    Poisoned,

    /// The data on disk is not what the journal wrote, somewhere other than a torn tail.
    #[error("corrupt journal file {} at byte offset {offset} (expected seq {seq}): {kind}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset in that file of the bad record, header or byte.
        offset: u64,
        /// The sequence number expected at that point.
        seq: u64,
        /// What is wrong.
        kind: Corruption,
    },

    /// `append` was given a sequence number other than the next one.
    #[error("append out of order: expected seq {expected}, got {got}")]
    OutOfOrder {
        /// `written_seq() + 1`.
        expected: u64,
        /// What the caller passed.
        got: u64,
    },

    /// The record cannot fit in an empty segment, or its length does not fit the frame.
    #[error("record payload of {payload_bytes} bytes exceeds the maximum of {max_payload_bytes}")]
    RecordTooLarge {
        /// The payload's length.
        payload_bytes: usize,
        /// The largest payload this journal's segments can hold.
        max_payload_bytes: usize,
    },

    /// A reader was asked to start before the first record the journal still holds.
    #[error("seq {seq} is not in the journal, whose first record is seq {first_seq}")]
    SeqNotInJournal {
        /// The requested starting seq.
        seq: u64,
        /// The journal's first seq.
        first_seq: u64,
    },
}

impl JournalError {
    /// Whether the journal handle is now unusable and the process must stop.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            JournalError::SyncFailed { .. }
                | JournalError::WriteFailed { .. }
                | JournalError::Poisoned
        )
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        JournalError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What exactly is wrong at a corrupt position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The file is shorter than a segment header.
    #[error("file of {file_bytes} bytes is too short for a segment header")]
    FileTooShort {
        /// The file's length.
        file_bytes: u64,
    },
    /// The first 8 bytes are not the journal's magic.
    #[error("bad magic: not a Ferrox journal segment")]
    BadMagic,
    /// The header's size field is not one this version can read.
    #[error("bad segment header size {header_bytes}")]
    BadHeaderSize {
        /// The stored header size.
        header_bytes: u16,
    },
    /// The segment header's CRC does not match its bytes.
    #[error("segment header CRC mismatch")]
    HeaderCrcMismatch,
    /// A well-formed header of a format version this code does not know.
    #[error("unsupported format version {version}")]
    UnsupportedVersion {
        /// The stored version.
        version: u16,
    },
    /// A file named like a segment whose name does not parse.
    #[error("segment file name does not parse")]
    BadFileName,
    /// The header's first seq differs from the one in the file name.
    #[error("header says first seq {header_seq} but the file name says {name_seq}")]
    NameMismatch {
        /// From the file name.
        name_seq: u64,
        /// From the header.
        header_seq: u64,
    },
    /// A record's length field is below the frame header size (zero is never valid).
    #[error("record length field {record_bytes} is invalid")]
    BadRecordLength {
        /// The stored length.
        record_bytes: u32,
    },
    /// The record runs past the end of the file.
    #[error("record of {record_bytes} bytes runs past the end of the file ({available_bytes} bytes left)")]
    TruncatedRecord {
        /// The stored length, if the length field itself was readable.
        record_bytes: u32,
        /// Bytes left in the file from the record's start.
        available_bytes: u64,
    },
    /// The record's CRC does not match its bytes.
    #[error("record CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        /// The CRC in the frame.
        stored: u32,
        /// The CRC of the bytes now on disk.
        computed: u32,
    },
    /// The record header area is all zeros where a record was expected.
    #[error("zero bytes where a record was expected")]
    ZeroHeader,
    /// A record (or segment) is intact but its seq is not the next one.
    #[error("sequence gap: expected seq {expected}, found seq {found}")]
    SeqGap {
        /// The seq that should have come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// Non-zero bytes after the last record of a segment that is not the last one: segments
    /// are synced before the next is created, so they cannot have a torn tail.
    #[error("non-zero bytes after the end of records in a segment that is not the last")]
    DataAfterEnd,
    /// A bad record that is not a torn tail, because an intact later record follows it.
    #[error("{cause}, and an intact record (seq {valid_seq}) follows at offset {valid_offset}, so this is not a torn tail")]
    BeforeValidRecord {
        /// What is wrong with the bad record.
        cause: Box<Corruption>,
        /// Where the intact later record starts.
        valid_offset: u64,
        /// Its seq.
        valid_seq: u64,
    },
}
