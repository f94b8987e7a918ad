//! The persistent FIX session store: sequence numbers, sent messages and used ClOrdIDs of one
//! session, kept across gateway restarts (including `kill -9`).
//!
//! A FIX session has to remember, across a restart, the next MsgSeqNum it will send, the next
//! one it expects to receive, every message it sent (a ResendRequest is answered from them:
//! application messages are resent with PossDupFlag, admin messages are gap-filled) and the
//! ClOrdIDs used today, so that a duplicate is rejected also after a restart. Message bodies
//! live in the file, not in memory: the store's memory is bounded by its options (see
//! [Memory](#memory)), whatever the session sends.
//!
//! # File
//!
//! One file per session, `<dir>/<name>.fixstore` (format version [`FORMAT_VERSION`] = 1):
//!
//! ```text
//!  +-------------------------------+----------+----------+-----+----------+
//!  | header page (4096 B, mmapped) | record 1 | record 2 | ... | record n |
//!  +-------------------------------+----------+----------+-----+----------+
//!  0                               4096                                   end = bytes_used()
//! ```
//!
//! The file is not preallocated: it ends where the last record ends, and it never grows past
//! `capacity_bytes` (an append that would is refused with [`StoreError::Full`]).
//!
//! ## Header page (little-endian)
//!
//! ```text
//!  offset  bytes  field                 value
//!  ------  -----  --------------------  ---------------------------------------------------
//!       0      8  magic                 "FRXFIXS\0"
//!       8      2  format_version        1
//!      10      2  header_bytes          4096
//!      12      2  record_header_bytes   32
//!      14      2  name_len              length of the session name, 1..=128
//!      16      8  created_unix_ns       wall clock when the file was created (or last reset)
//!      24      4  creator_pid           id of the process that created it
//!      28      4  reserved              0
//!      32    128  name                  the session name, zero-padded
//!     160     28  reserved              0
//!     188      4  static_crc32c         CRC32C of bytes 0..188
//!     192     64  reserved              0
//!     256     64  slot 0                counters, written when the generation is even
//!     320     64  slot 1                counters, written when the generation is odd
//!     384   3712  reserved              0
//! ```
//!
//! The static part (bytes 0..192) is written once, when the file is created, and never
//! changes. The mutable counters live in two alternating *slots*:
//!
//! ```text
//!  offset  bytes  field            value
//!  ------  -----  ---------------  ----------------------------------------------------------
//!       0      8  generation       >= 1, one more than the previous slot write
//!       8      8  next_in_seq      the next expected inbound MsgSeqNum
//!      16      8  next_out_floor   the last value given to set_next_out_seq, 0 if none
//!      24      4  trading_day      e.g. 20250314; 0 until set
//!      28     32  reserved         0
//!      60      4  slot_crc32c      CRC32C of the slot's bytes 0..60
//! ```
//!
//! The header page is memory-mapped, and an update (such as [`SessionStore::set_next_in_seq`],
//! called for every inbound message) is a few plain stores: no system call. Each update writes
//! the *other* slot with the generation incremented, using volatile stores so that the
//! compiler neither reorders nor merges them across updates. A process killed in the middle of
//! an update leaves that slot with a bad CRC and the other slot intact; open takes the intact
//! slot with the higher generation. The cost is at most the one interrupted update, which the
//! caller never saw complete: a `next_in_seq` one behind makes the session request the
//! counterparty's last message again, which comes back as a possible duplicate (a repeated
//! order is then caught by the ClOrdID set).
//!
//! ## Record (starts at a multiple of 8; little-endian)
//!
//! ```text
//!  0        4              8      9       10         16           24           32
//!  +--------+--------------+------+-------+----------+------------+------------+-----------+---------+
//!  | crc32c | record_bytes | kind | flags | reserved |    seq     |   ts_ns    |  payload  | padding |
//!  |  u32   |     u32      |  u8  |  u8   |  6 x 00  |    u64     |    u64     |           | 0-7 x 00|
//!  +--------+--------------+------+-------+----------+------------+------------+-----------+---------+
//!           |<------------------------------ covered by crc32c ---------------------------------->|
//! ```
//!
//! - kind 1, *outbound message*: `seq` is its MsgSeqNum, `ts_ns` its sending time, flags bit 0
//!   marks an admin (session-level) message, the payload is the whole encoded message.
//! - kind 2, *ClOrdID*: the payload is the ClOrdID (1 to 64 bytes); seq, ts_ns and flags are 0.
//!
//! `record_bytes` is the unpadded length including the 32-byte frame header, so it is never
//! below 32; the next record starts at the next multiple of 8. The CRC (CRC32C) covers
//! everything after itself, padding included.
//!
//! # Sequence numbers
//!
//! `next_in_seq` is whatever the header says. `next_out_seq` is *derived* from the records, so
//! it can never disagree with the messages the store can resend:
//!
//! ```text
//!  next_out_seq = max(last stored outbound seq + 1, next_out_floor, 1)
//! ```
//!
//! [`SessionStore::set_next_out_seq`] (after a SequenceReset, say) only raises
//! `next_out_floor`; the numbers it skips have no record and are gap-filled on resend. If a
//! torn tail takes the last outbound record, `next_out_seq` falls back to that record's seq
//! (unless a later `set_next_out_seq` raised the floor above it), so the number is reused for
//! the next message rather than resent as a message the store no longer has.
//!
//! # Durability
//!
//! Nothing is fsynced per message. Records are written with one `pwrite` each (before the
//! message goes to the socket) and header updates are stores into a shared mapping; both are
//! in the kernel's page cache at once, so they survive the death of the process, `kill -9`
//! included. A power cut or kernel crash can lose what was not yet written back; that is out
//! of scope, but what it leaves is still checked rather than trusted. [`SessionStore::sync`]
//! (`msync` of the header, `fdatasync` of the file) is for a clean shutdown.
//!
//! # Recovery
//!
//! [`SessionStore::open`] verifies the static header and picks the newest intact slot, then
//! reads every record, checking CRCs, lengths, kinds and strictly increasing outbound seqs:
//!
//! - **Torn tail, truncated.** A damaged or incomplete record followed by nothing that parses
//!   as an intact record is what an interrupted write leaves. The file is truncated there (and
//!   fdatasynced), and [`SessionStore::recovered_dropped_bytes`] reports how many bytes went.
//! - **Corruption, refused.** A damaged record *followed by an intact one*, or an intact record
//!   with impossible contents (unknown kind, seq not increasing, a repeated ClOrdID), cannot
//!   come from an interrupted append: open fails with [`StoreError::Corrupt`] naming the byte
//!   offset, and nothing is modified.
//!
//! # Reset
//!
//! [`SessionStore::reset`] replaces the file rather than editing it: it writes a fresh header
//! page to `<name>.fixstore.tmp`, fsyncs it, renames it over `<name>.fixstore` and fsyncs the
//! directory. A crash before the rename leaves the old file (and a temporary file that the
//! next open deletes); a crash after it leaves the new one. Either is a consistent state.
//! A new store is created the same way, so a file with the final name always has a header.
//!
//! # Memory
//!
//! - *ClOrdID set*: an open-addressing table of `2 * cl_ord_ids_max` slots rounded up to a
//!   power of two, 8 bytes each (a 32-bit hash tag and the record's offset / 8), allocated at
//!   open and never grown. A tag match is confirmed by reading the record back from the file,
//!   so the ClOrdIDs themselves are not held in memory. The default 262 144 IDs take 4 MiB.
//! - *Sparse resend index*: one `(seq, offset)` entry per [`INDEX_STRIDE`] records, so a resend
//!   reads at most that many records before reaching its first message. Its capacity is
//!   reserved at open for a file full of the smallest records:
//!   `(capacity_bytes - 4096) / 32 / 256 + 1` entries of 16 bytes (512 KiB for 256 MiB).
//! - a write buffer as large as the largest message appended, and one 64 KiB read buffer per
//!   [`SessionStore::for_each_outbound`] call (larger only for a larger message).
//!
//! # Limits
//!
//! One process may have a store open at a time; the store takes no lock (the gateway owns its
//! sessions), and a second writer would corrupt the file.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::{Mmap, MmapMut, MmapOptions};

/// Extension of store files: `<name>.fixstore`.
pub const FILE_SUFFIX: &str = ".fixstore";
/// Extension of a store file being created by [`SessionStore::reset`] or a first open.
pub const TEMP_SUFFIX: &str = ".fixstore.tmp";
/// First 8 bytes of every store file.
pub const MAGIC: [u8; 8] = *b"FRXFIXS\0";
/// The on-disk format this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the memory-mapped header page; records start here.
pub const HEADER_BYTES: u64 = 4096;
/// Size of a record's frame header (crc, length, kind, flags, seq, ts_ns).
pub const RECORD_HEADER_BYTES: usize = 32;
/// Every record starts at a multiple of this.
pub const RECORD_ALIGN_BYTES: usize = 8;
/// The longest ClOrdID accepted.
pub const MAX_CL_ORD_ID_BYTES: usize = 64;
/// The longest session name accepted (it is stored in the header).
pub const MAX_NAME_BYTES: usize = 128;
/// The capacity [`StoreOptions::default`] uses.
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 << 20;
/// The ClOrdID limit [`StoreOptions::default`] and [`SessionStore::open`] use.
pub const DEFAULT_CL_ORD_IDS_MAX: usize = 1 << 18;
/// The smallest capacity accepted: the header page and one page of records.
pub const MIN_CAPACITY_BYTES: u64 = 2 * HEADER_BYTES;
/// The largest capacity accepted, because the ClOrdID table stores offsets / 8 in 32 bits.
pub const MAX_CAPACITY_BYTES: u64 = u32::MAX as u64 * RECORD_ALIGN_BYTES as u64;
/// The largest ClOrdID limit accepted, which keeps the table below 4 GiB.
pub const MAX_CL_ORD_IDS: usize = 1 << 28;
/// Records between two entries of the sparse resend index.
pub const INDEX_STRIDE: u64 = 256;

const HEADER_LEN: usize = HEADER_BYTES as usize;
const STATIC_CRC_OFFSET: usize = 188;
const NAME_OFFSET: usize = 32;
const SLOT_OFFSETS: [usize; 2] = [256, 320];
const SLOT_BYTES: usize = 64;
const SLOT_CRC_OFFSET: usize = SLOT_BYTES - 4;

const KIND_OUTBOUND: u8 = 1;
const KIND_CL_ORD_ID: u8 = 2;
const FLAG_ADMIN: u8 = 1;

/// The read buffer of one [`SessionStore::for_each_outbound`] call.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Everything that can go wrong opening or using a session store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operating system refused a read, write, rename, sync or mapping.
    #[error("I/O error on session store {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// The file is not what the store wrote, somewhere other than a torn tail.
    #[error("corrupt session store {} at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// Byte offset of the bad header field or record.
        offset: u64,
        /// What is wrong.
        reason: Corruption,
    },

    /// A limit was reached; the session must refuse new application messages until a reset
    /// (ResetSeqNumFlag logon, ResetOnLogon or a new trading day) empties the store.
    #[error("session store {} is full: {limit}; a sequence reset empties it", path.display())]
    Full {
        /// The store file.
        path: PathBuf,
        /// Which limit.
        limit: FullLimit,
    },

    /// The session name cannot name a store file.
    #[error("invalid session store name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// The options cannot describe a usable store.
    #[error("invalid session store options: {reason}")]
    InvalidOptions {
        /// Which rule the options broke.
        reason: &'static str,
    },

    /// `append_outbound` was given a seq other than `next_out_seq`.
    #[error("outbound message out of order: expected seq {expected}, got {got}")]
    OutOfOrder {
        /// `next_out_seq()`.
        expected: u64,
        /// What the caller passed.
        got: u64,
    },

    /// A ClOrdID was empty or longer than [`MAX_CL_ORD_ID_BYTES`].
    #[error("ClOrdID of {len} bytes; the store accepts 1 to {MAX_CL_ORD_ID_BYTES}")]
    ClOrdIdLength {
        /// Its length.
        len: usize,
    },

    /// A message too long for a record's 32-bit length.
    #[error("message of {len} bytes exceeds the record limit of {max} bytes")]
    MessageTooLarge {
        /// Its length.
        len: usize,
        /// The largest message a record can hold.
        max: usize,
    },
}

/// The limit behind a [`StoreError::Full`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullLimit {
    /// The file would grow past `capacity_bytes`.
    CapacityBytes {
        /// The store's capacity.
        capacity_bytes: u64,
    },
    /// The session already used `cl_ord_ids_max` ClOrdIDs.
    ClOrdIds {
        /// The store's limit.
        max: usize,
    },
}

impl fmt::Display for FullLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FullLimit::CapacityBytes { capacity_bytes } => {
                write!(f, "capacity of {capacity_bytes} bytes reached")
            }
            FullLimit::ClOrdIds { max } => write!(f, "limit of {max} ClOrdIDs reached"),
        }
    }
}

/// What is wrong with a store file ([`StoreError::Corrupt`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// Shorter than the header page.
    #[error("file of {file_bytes} bytes is shorter than the header page")]
    FileTooShort {
        /// The file's length.
        file_bytes: u64,
    },
    /// Longer than any capacity the store accepts.
    #[error("file of {file_bytes} bytes exceeds the largest capacity")]
    FileTooLarge {
        /// The file's length.
        file_bytes: u64,
    },
    /// Not a session store file.
    #[error("bad magic number")]
    BadMagic,
    /// The static header fails its CRC.
    #[error("header CRC mismatch")]
    HeaderCrcMismatch,
    /// A format version this code does not read.
    #[error("unsupported format version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// The header's size fields are not this version's.
    #[error("unexpected header layout")]
    BadHeaderLayout,
    /// Neither counter slot is intact.
    #[error("neither header slot is intact")]
    NoIntactSlot,
    /// The header belongs to another session (a renamed or copied file).
    #[error("file belongs to session {found:?}")]
    WrongSession {
        /// The name in the header.
        found: String,
    },
    /// A damaged record with an intact record after it: not a torn tail.
    #[error("{problem}, followed by an intact record at byte offset {intact_record_at}")]
    DamagedRecord {
        /// What is wrong with the record.
        problem: RecordProblem,
        /// Where the next intact record starts.
        intact_record_at: u64,
    },
    /// A record that was intact at open no longer is.
    #[error("{0}")]
    Record(RecordProblem),
    /// An intact record of a kind, flags or reserved bytes this version never writes.
    #[error("record of unknown kind {kind} with flags {flags:#04x}")]
    UnknownRecord {
        /// The kind byte.
        kind: u8,
        /// The flags byte.
        flags: u8,
    },
    /// Outbound seqs must increase strictly.
    #[error("outbound seq {seq} after seq {previous}")]
    SeqNotIncreasing {
        /// The record's seq.
        seq: u64,
        /// The previous outbound record's seq (0 for none).
        previous: u64,
    },
    /// A ClOrdID record whose fields are not what the store writes.
    #[error("malformed ClOrdID record with a {len}-byte payload")]
    BadClOrdIdRecord {
        /// The payload's length.
        len: usize,
    },
    /// The same ClOrdID recorded twice.
    #[error("ClOrdID recorded twice")]
    DuplicateClOrdId,
}

/// Why a record's frame does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    /// A length below the frame header (zero included).
    #[error("bad record length {record_bytes}")]
    BadLength {
        /// The length field.
        record_bytes: u32,
    },
    /// The record runs past the end of the file.
    #[error("record of {record_bytes} bytes with only {available_bytes} bytes left")]
    Truncated {
        /// The length field (0 if not even that is there).
        record_bytes: u32,
        /// Bytes from the record's start to the end of the file.
        available_bytes: u64,
    },
    /// The stored CRC does not match the record's bytes.
    #[error("record CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        /// The CRC in the record.
        stored: u32,
        /// The CRC of its bytes.
        computed: u32,
    },
}

/// How a store is opened; [`SessionStore::open`] uses the defaults but for the capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The file never grows past this many bytes (header page included).
    pub capacity_bytes: u64,
    /// How many ClOrdIDs the session may use between resets; the table is sized for it.
    pub cl_ord_ids_max: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            // About a million 200-byte messages (240 bytes framed) and their ClOrdIDs.
            capacity_bytes: DEFAULT_CAPACITY_BYTES,
            cl_ord_ids_max: DEFAULT_CL_ORD_IDS_MAX,
        }
    }
}

impl StoreOptions {
    fn validate(&self) -> Result<(), StoreError> {
        let reason = if self.capacity_bytes < MIN_CAPACITY_BYTES {
            "capacity_bytes is below MIN_CAPACITY_BYTES"
        } else if self.capacity_bytes > MAX_CAPACITY_BYTES {
            "capacity_bytes is above MAX_CAPACITY_BYTES"
        } else if self.cl_ord_ids_max > MAX_CL_ORD_IDS {
            "cl_ord_ids_max is above MAX_CL_ORD_IDS"
        } else {
            return Ok(());
        };
        Err(StoreError::InvalidOptions { reason })
    }
}

/// Rounds a record's length up to the next record start.
const fn padded_bytes(record_bytes: usize) -> usize {
    (record_bytes + RECORD_ALIGN_BYTES - 1) & !(RECORD_ALIGN_BYTES - 1)
}

/// Bytes a record with this payload occupies in the file, padding included.
pub const fn framed_bytes(payload_bytes: usize) -> usize {
    padded_bytes(RECORD_HEADER_BYTES + payload_bytes)
}

/// The longest message a record can hold (its length field is 32 bits).
pub const MAX_MESSAGE_BYTES: usize =
    u32::MAX as usize - RECORD_HEADER_BYTES - (RECORD_ALIGN_BYTES - 1);

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&bytes[offset..offset + 2]);
    u16::from_le_bytes(b)
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(b)
}

/// The counters of one header slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    generation: u64,
    next_in_seq: u64,
    next_out_floor: u64,
    trading_day: u32,
}

impl Slot {
    fn fresh(trading_day: u32) -> Slot {
        Slot {
            generation: 1,
            next_in_seq: 1,
            next_out_floor: 0,
            trading_day,
        }
    }

    fn offset(&self) -> usize {
        SLOT_OFFSETS[(self.generation & 1) as usize]
    }

    fn encode(&self) -> [u8; SLOT_BYTES] {
        let mut s = [0u8; SLOT_BYTES];
        s[0..8].copy_from_slice(&self.generation.to_le_bytes());
        s[8..16].copy_from_slice(&self.next_in_seq.to_le_bytes());
        s[16..24].copy_from_slice(&self.next_out_floor.to_le_bytes());
        s[24..28].copy_from_slice(&self.trading_day.to_le_bytes());
        let crc = crc32c::crc32c(&s[..SLOT_CRC_OFFSET]);
        s[SLOT_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        s
    }

    /// The slot in `bytes` (64 of them), if it is intact. An all-zero slot, as in a new
    /// file, fails the CRC and so reads as absent.
    fn decode(bytes: &[u8]) -> Option<Slot> {
        if crc32c::crc32c(&bytes[..SLOT_CRC_OFFSET]) != u32_at(bytes, SLOT_CRC_OFFSET) {
            return None;
        }
        let slot = Slot {
            generation: u64_at(bytes, 0),
            next_in_seq: u64_at(bytes, 8),
            next_out_floor: u64_at(bytes, 16),
            trading_day: u32_at(bytes, 24),
        };
        (slot.generation != 0).then_some(slot)
    }
}

/// Writes `slot` into its place in the mapped header page.
fn store_slot(header: &mut MmapMut, slot: &Slot) {
    let bytes = slot.encode();
    let at = slot.offset();
    let dst = header[at..at + SLOT_BYTES].as_mut_ptr().cast::<u64>();
    for (i, word) in bytes.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        // SAFETY: `dst` points at 64 bytes inside the mapping, which lives as long as
        // `header`; the map starts on a page boundary and `at` is a multiple of 8, so every
        // word is aligned. Volatile stores are used because plain stores into a slot could be
        // merged with, or reordered past, those of the next update, and a process killed in
        // between would then leave both slots damaged.
        unsafe { dst.add(i).write_volatile(u64::from_ne_bytes(w)) };
    }
}

/// A fresh header page: static part plus slot for generation 1.
fn fresh_header_page(name: &str, trading_day: u32) -> Vec<u8> {
    let mut page = vec![0u8; HEADER_LEN];
    page[0..8].copy_from_slice(&MAGIC);
    page[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    page[10..12].copy_from_slice(&(HEADER_BYTES as u16).to_le_bytes());
    page[12..14].copy_from_slice(&(RECORD_HEADER_BYTES as u16).to_le_bytes());
    // The name was validated to fit in MAX_NAME_BYTES, well within u16.
    page[14..16].copy_from_slice(&(name.len() as u16).to_le_bytes());
    let created_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    page[16..24].copy_from_slice(&created_unix_ns.to_le_bytes());
    page[24..28].copy_from_slice(&std::process::id().to_le_bytes());
    page[NAME_OFFSET..NAME_OFFSET + name.len()].copy_from_slice(name.as_bytes());
    let crc = crc32c::crc32c(&page[..STATIC_CRC_OFFSET]);
    page[STATIC_CRC_OFFSET..STATIC_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    let slot = Slot::fresh(trading_day);
    let at = slot.offset();
    page[at..at + SLOT_BYTES].copy_from_slice(&slot.encode());
    page
}

/// Verifies the header page and returns its newest intact slot, or the corruption and the
/// offset of the field at fault.
fn decode_header(page: &[u8], name: &str) -> Result<Slot, (u64, Corruption)> {
    if page[0..8] != MAGIC {
        return Err((0, Corruption::BadMagic));
    }
    // The CRC comes before the version, so that a flipped bit in the version field reads as
    // corruption rather than as a file from a newer gateway.
    let crc = crc32c::crc32c(&page[..STATIC_CRC_OFFSET]);
    if crc != u32_at(page, STATIC_CRC_OFFSET) {
        return Err((STATIC_CRC_OFFSET as u64, Corruption::HeaderCrcMismatch));
    }
    let version = u16_at(page, 8);
    if version != FORMAT_VERSION {
        return Err((8, Corruption::UnsupportedVersion { version }));
    }
    if u64::from(u16_at(page, 10)) != HEADER_BYTES
        || usize::from(u16_at(page, 12)) != RECORD_HEADER_BYTES
    {
        return Err((10, Corruption::BadHeaderLayout));
    }
    let name_len = usize::from(u16_at(page, 14)).min(MAX_NAME_BYTES);
    let found = &page[NAME_OFFSET..NAME_OFFSET + name_len];
    if found != name.as_bytes() {
        let found = String::from_utf8_lossy(found).into_owned();
        return Err((NAME_OFFSET as u64, Corruption::WrongSession { found }));
    }
    let slots = SLOT_OFFSETS.map(|at| Slot::decode(&page[at..at + SLOT_BYTES]));
    match slots {
        [Some(a), Some(b)] => Ok(if a.generation >= b.generation { a } else { b }),
        [Some(s), None] | [None, Some(s)] => Ok(s),
        [None, None] => Err((SLOT_OFFSETS[0] as u64, Corruption::NoIntactSlot)),
    }
}

/// Encodes one record into `out` (cleared first). The caller has checked the length.
fn encode_record(out: &mut Vec<u8>, kind: u8, flags: u8, seq: u64, ts_ns: u64, payload: &[u8]) {
    out.clear();
    let record_bytes = RECORD_HEADER_BYTES + payload.len();
    debug_assert!(u32::try_from(padded_bytes(record_bytes)).is_ok());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(record_bytes as u32).to_le_bytes());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&[0u8; 6]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts_ns.to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(padded_bytes(record_bytes), 0);
    // The CRC covers the padding too, so that every byte of the written area is checked.
    let crc = crc32c::crc32c(&out[4..]);
    out[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// A record whose frame verified; `payload` and `end` are relative to the slice decoded.
#[derive(Debug, Clone)]
struct Frame {
    kind: u8,
    flags: u8,
    reserved_zero: bool,
    seq: u64,
    ts_ns: u64,
    payload: Range<usize>,
    end: usize,
}

/// Decodes and CRC-checks the record starting at `pos` of `bytes`.
fn decode_frame(bytes: &[u8], pos: usize) -> Result<Frame, RecordProblem> {
    let available = bytes.len().saturating_sub(pos);
    if available < 8 {
        return Err(RecordProblem::Truncated {
            record_bytes: 0,
            available_bytes: available as u64,
        });
    }
    let record_bytes = u32_at(bytes, pos + 4);
    // Zero (and anything below the frame header) is never a valid length, so a zeroed area,
    // as a power cut can leave past the end of the data, never parses as a record.
    if (record_bytes as usize) < RECORD_HEADER_BYTES {
        return Err(RecordProblem::BadLength { record_bytes });
    }
    let padded = padded_bytes(record_bytes as usize);
    if padded > available {
        return Err(RecordProblem::Truncated {
            record_bytes,
            available_bytes: available as u64,
        });
    }
    let stored = u32_at(bytes, pos);
    let computed = crc32c::crc32c(&bytes[pos + 4..pos + padded]);
    if stored != computed {
        return Err(RecordProblem::CrcMismatch { stored, computed });
    }
    Ok(Frame {
        kind: bytes[pos + 8],
        flags: bytes[pos + 9],
        reserved_zero: bytes[pos + 10..pos + 16].iter().all(|&b| b == 0),
        seq: u64_at(bytes, pos + 16),
        ts_ns: u64_at(bytes, pos + 24),
        payload: pos + RECORD_HEADER_BYTES..pos + record_bytes as usize,
        end: pos + padded,
    })
}

/// Whether an intact frame has contents this version writes; `Err` names what is wrong.
fn check_frame(frame: &Frame) -> Result<(), Corruption> {
    let known = frame.reserved_zero
        && match frame.kind {
            KIND_OUTBOUND => frame.flags & !FLAG_ADMIN == 0,
            KIND_CL_ORD_ID => frame.flags == 0,
            _ => false,
        };
    if !known {
        return Err(Corruption::UnknownRecord {
            kind: frame.kind,
            flags: frame.flags,
        });
    }
    if frame.kind == KIND_CL_ORD_ID {
        let len = frame.payload.len();
        if !(1..=MAX_CL_ORD_ID_BYTES).contains(&len) || frame.seq != 0 || frame.ts_ns != 0 {
            return Err(Corruption::BadClOrdIdRecord { len });
        }
    }
    Ok(())
}

/// The first record-aligned offset after `bad` where an intact record of a known kind
/// starts. Payloads are FIX text, so a well-formed frame with a matching CRC inside one is
/// not a practical concern.
fn find_intact_record_after(bytes: &[u8], bad: usize) -> Option<usize> {
    let mut q = bad + RECORD_ALIGN_BYTES;
    while q + RECORD_HEADER_BYTES <= bytes.len() {
        // Cheap filters first: most positions fail the length or kind check without a CRC.
        let record_bytes = u32_at(bytes, q + 4) as usize;
        let kind = bytes[q + 8];
        if record_bytes >= RECORD_HEADER_BYTES
            && q + padded_bytes(record_bytes) <= bytes.len()
            && (kind == KIND_OUTBOUND || kind == KIND_CL_ORD_ID)
            && decode_frame(bytes, q).is_ok()
        {
            return Some(q);
        }
        q += RECORD_ALIGN_BYTES;
    }
    None
}

/// Where the answer to a lookup in the ClOrdID table is.
enum Probe {
    Found,
    /// Absent; this empty slot is where it would go.
    Vacant(usize),
}

/// A fixed-capacity open-addressing set of ClOrdIDs that stores only hash tags and the
/// offsets of their records; the IDs themselves stay in the file.
struct ClOrdIdTable {
    /// `tag << 32 | offset / 8`; 0 is an empty slot (no record starts at offset 0).
    slots: Box<[u64]>,
    mask: usize,
    len: usize,
    max: usize,
    /// Keyed per process, so that a client cannot choose IDs that collide.
    hasher: RandomState,
}

impl ClOrdIdTable {
    fn new(max: usize) -> ClOrdIdTable {
        // At most half full, so probe sequences stay short and always reach an empty slot.
        let n = max.saturating_mul(2).next_power_of_two().max(16);
        ClOrdIdTable {
            slots: vec![0u64; n].into_boxed_slice(),
            mask: n - 1,
            len: 0,
            max,
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Looks `hash` up; `same(offset)` says whether the record at `offset` holds the ID.
    fn probe<E>(
        &self,
        hash: u64,
        mut same: impl FnMut(u64) -> Result<bool, E>,
    ) -> Result<Probe, E> {
        let tag = hash >> 32;
        let mut i = hash as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Ok(Probe::Vacant(i));
            }
            if slot >> 32 == tag && same((slot & 0xffff_ffff) * RECORD_ALIGN_BYTES as u64)? {
                return Ok(Probe::Found);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn is_full(&self) -> bool {
        self.len >= self.max
    }

    /// Fills the vacant slot `i` (from `probe`) with the record at `offset`.
    fn insert_at(&mut self, i: usize, hash: u64, offset: u64) {
        debug_assert!(self.slots[i] == 0 && offset != 0);
        self.slots[i] = ((hash >> 32) << 32) | (offset / RECORD_ALIGN_BYTES as u64);
        self.len += 1;
    }

    fn clear(&mut self) {
        // An empty table is all zeros already; skipping the fill also keeps the pages of a
        // never-used session's table uncommitted (a gateway may hold thousands of sessions).
        if self.len > 0 {
            self.slots.fill(0);
            self.len = 0;
        }
    }
}

/// One entry of the sparse resend index.
#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    /// Every outbound record before `offset` has a seq below this.
    min_seq: u64,
    /// A record start.
    offset: u64,
}

/// Recovery's findings in the record area.
struct Scan {
    end: u64,
    records: u64,
    last_out_seq: u64,
}

/// Whether the record at `offset` in `bytes` is a ClOrdID record holding `id`.
fn mapped_cl_ord_id_is(bytes: &[u8], offset: u64, id: &[u8]) -> bool {
    let Ok(at) = usize::try_from(offset) else {
        return false;
    };
    let Some(header) = bytes.get(at..at + RECORD_HEADER_BYTES) else {
        return false;
    };
    let len = (u32_at(header, 4) as usize).saturating_sub(RECORD_HEADER_BYTES);
    bytes.get(at + RECORD_HEADER_BYTES..at + RECORD_HEADER_BYTES + len) == Some(id)
}

/// Reads every record of a mapped store file, filling the ClOrdID table and resend index.
fn scan_records(
    bytes: &[u8],
    path: &Path,
    table: &mut ClOrdIdTable,
    index: &mut Vec<IndexEntry>,
) -> Result<Scan, StoreError> {
    let corrupt = |offset: usize, reason: Corruption| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut pos = HEADER_LEN;
    let mut records = 0u64;
    let mut last_out_seq = 0u64;
    while pos < bytes.len() {
        let frame = match decode_frame(bytes, pos) {
            Ok(frame) => frame,
            Err(problem) => {
                if let Some(q) = find_intact_record_after(bytes, pos) {
                    let reason = Corruption::DamagedRecord {
                        problem,
                        intact_record_at: q as u64,
                    };
                    return Err(corrupt(pos, reason));
                }
                // Nothing intact follows: the tail of an interrupted write.
                break;
            }
        };
        check_frame(&frame).map_err(|reason| corrupt(pos, reason))?;
        if records % INDEX_STRIDE == 0 {
            index.push(IndexEntry {
                min_seq: last_out_seq + 1,
                offset: pos as u64,
            });
        }
        if frame.kind == KIND_OUTBOUND {
            if frame.seq <= last_out_seq {
                let reason = Corruption::SeqNotIncreasing {
                    seq: frame.seq,
                    previous: last_out_seq,
                };
                return Err(corrupt(pos, reason));
            }
            last_out_seq = frame.seq;
        } else {
            let id = &bytes[frame.payload.clone()];
            if table.is_full() {
                return Err(StoreError::Full {
                    path: path.to_path_buf(),
                    limit: FullLimit::ClOrdIds { max: table.max },
                });
            }
            let hash = table.hash(id);
            let probe = table.probe(hash, |offset| {
                Ok::<bool, std::convert::Infallible>(mapped_cl_ord_id_is(bytes, offset, id))
            });
            match probe {
                Ok(Probe::Vacant(i)) => table.insert_at(i, hash, pos as u64),
                Ok(Probe::Found) => return Err(corrupt(pos, Corruption::DuplicateClOrdId)),
                Err(never) => match never {},
            }
        }
        records += 1;
        pos = frame.end;
    }
    Ok(Scan {
        end: pos as u64,
        records,
        last_out_seq,
    })
}

/// Reads records through a reusable buffer with few `pread`s.
struct ChunkReader<'a> {
    file: &'a File,
    /// End of the record area: nothing past it is read.
    end: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
}

impl ChunkReader<'_> {
    /// `len` bytes at `pos`; the caller guarantees `pos + len <= end`.
    fn get(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let have = pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let want = (self.end - pos).min(len.max(READ_CHUNK_BYTES) as u64) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }
}

fn io_error(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

fn validate_name(name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_BYTES {
        "longer than 128 bytes"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.contains('\0') {
        "contains NUL"
    } else if name == "." || name == ".." {
        "is a directory name"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Writes a fresh header page to `temp`; the caller renames it into place. No fsync: like
/// every record, a reset must survive a crash of the process (the rename is atomic in the
/// page cache), while surviving a power cut is what [`SessionStore::sync`] at a clean stop
/// is for. Syncing here made every logon of a reset-on-logon session, and the start of a
/// gateway with a thousand sessions on a new day, wait for the disk.
fn write_fresh_file(temp: &Path, name: &str, trading_day: u32) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)
        .map_err(|e| io_error(temp, e))?;
    let page = fresh_header_page(name, trading_day);
    file.write_all_at(&page, 0).map_err(|e| io_error(temp, e))?;
    Ok(file)
}

fn map_header(file: &File, path: &Path) -> Result<MmapMut, StoreError> {
    // SAFETY: the store assumes one writer (module docs, "Limits"), and it never truncates
    // the file below the header page, so the mapped page stays backed by the file.
    unsafe { MmapOptions::new().len(HEADER_LEN).map_mut(file) }.map_err(|e| io_error(path, e))
}

fn remove_if_present(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path, e)),
    }
}

/// The persistent store of one FIX session; see the module docs.
pub struct SessionStore {
    dir: PathBuf,
    path: PathBuf,
    temp_path: PathBuf,
    name: String,
    options: StoreOptions,
    file: File,
    header: MmapMut,
    /// The counters as last written to the header.
    slot: Slot,
    /// End of the last record: where the next one goes.
    end: u64,
    /// Records (of any kind) in the file, for the index stride.
    records: u64,
    /// Seq of the last outbound record, 0 if none.
    last_out_seq: u64,
    next_out_seq: u64,
    cl_ord_ids: ClOrdIdTable,
    index: Vec<IndexEntry>,
    /// Encoded record being written; reused.
    scratch: Vec<u8>,
    dropped_bytes: u64,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("path", &self.path)
            .field("next_out_seq", &self.next_out_seq)
            .field("next_in_seq", &self.slot.next_in_seq)
            .field("trading_day", &self.slot.trading_day)
            .field("bytes_used", &self.end)
            .field("cl_ord_ids", &self.cl_ord_ids.len)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Opens or creates the store of session `name` in `dir` (created if missing), as
    /// `<dir>/<name>.fixstore`, with at most `capacity_bytes` bytes and the default ClOrdID
    /// limit ([`DEFAULT_CL_ORD_IDS_MAX`]). Names must be 1 to 128 bytes without '/' or NUL.
    /// Recovery (module docs) truncates a torn tail and refuses any other damage.
    pub fn open(dir: &Path, name: &str, capacity_bytes: u64) -> Result<SessionStore, StoreError> {
        let options = StoreOptions {
            capacity_bytes,
            ..StoreOptions::default()
        };
        Self::open_with_options(dir, name, &options)
    }

    /// [`SessionStore::open`] with every option given.
    pub fn open_with_options(
        dir: &Path,
        name: &str,
        options: &StoreOptions,
    ) -> Result<SessionStore, StoreError> {
        validate_name(name)?;
        options.validate()?;
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(format!("{name}{FILE_SUFFIX}"));
        let temp_path = dir.join(format!("{name}{TEMP_SUFFIX}"));
        // A temporary file is what a crash during reset or creation leaves before its rename:
        // the state it was meant to replace is still the one under the final name.
        if remove_if_present(&temp_path)? {
            sync_dir(dir)?;
        }
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let file = write_fresh_file(&temp_path, name, 0)?;
                fs::rename(&temp_path, &path).map_err(|e| io_error(&path, e))?;
                file
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        let corrupt = |offset: u64, reason: Corruption| StoreError::Corrupt {
            path: path.clone(),
            offset,
            reason,
        };
        let file_bytes = file.metadata().map_err(|e| io_error(&path, e))?.len();
        if file_bytes < HEADER_BYTES {
            return Err(corrupt(0, Corruption::FileTooShort { file_bytes }));
        }
        if file_bytes > MAX_CAPACITY_BYTES {
            return Err(corrupt(0, Corruption::FileTooLarge { file_bytes }));
        }

        let mut cl_ord_ids = ClOrdIdTable::new(options.cl_ord_ids_max);
        let index_bound =
            (options.capacity_bytes - HEADER_BYTES) / RECORD_HEADER_BYTES as u64 / INDEX_STRIDE + 1;
        let mut index = Vec::with_capacity(usize::try_from(index_bound).unwrap_or(usize::MAX));
        let (slot, scan) = {
            // SAFETY: the store assumes one writer (module docs, "Limits"); this read-only
            // map is dropped before anything writes or truncates the file.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| io_error(&path, e))?;
            let bytes: &[u8] = &map;
            let slot = decode_header(&bytes[..HEADER_LEN], name)
                .map_err(|(offset, reason)| corrupt(offset, reason))?;
            let scan = scan_records(bytes, &path, &mut cl_ord_ids, &mut index)?;
            (slot, scan)
        };

        let dropped_bytes = file_bytes - scan.end;
        if dropped_bytes > 0 {
            // Cut the torn tail so that new records follow the last intact one, and make the
            // cut durable before anything is appended after it.
            file.set_len(scan.end)
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(&path, e))?;
        }
        let header = map_header(&file, &path)?;
        let next_out_seq = (scan.last_out_seq + 1).max(slot.next_out_floor).max(1);
        Ok(SessionStore {
            dir: dir.to_path_buf(),
            path,
            temp_path,
            name: name.to_owned(),
            options: options.clone(),
            file,
            header,
            slot,
            end: scan.end,
            records: scan.records,
            last_out_seq: scan.last_out_seq,
            next_out_seq,
            cl_ord_ids,
            index,
            scratch: Vec::new(),
            dropped_bytes,
        })
    }

    /// The next MsgSeqNum to send; 1 for a fresh store.
    pub fn next_out_seq(&self) -> u64 {
        self.next_out_seq
    }

    /// The next MsgSeqNum expected from the counterparty; 1 for a fresh store.
    pub fn next_in_seq(&self) -> u64 {
        self.slot.next_in_seq
    }

    /// Records the next expected inbound MsgSeqNum: a few stores into the mapped header, no
    /// system call.
    pub fn set_next_in_seq(&mut self, seq: u64) {
        self.slot.next_in_seq = seq;
        self.write_slot();
    }

    /// Records an outbound message `msg` (the whole encoded message) sent with MsgSeqNum
    /// `seq` at `sending_time_ns`, and advances `next_out_seq` to `seq + 1`. `seq` must equal
    /// `next_out_seq()`. `is_admin` marks session-level messages, which are gap-filled rather
    /// than resent. One `pwrite`, no fsync; on any error nothing changes.
    pub fn append_outbound(
        &mut self,
        seq: u64,
        sending_time_ns: u64,
        is_admin: bool,
        msg: &[u8],
    ) -> Result<(), StoreError> {
        // u64::MAX is refused so that `seq + 1` below cannot overflow.
        if seq != self.next_out_seq || seq == u64::MAX {
            return Err(StoreError::OutOfOrder {
                expected: self.next_out_seq,
                got: seq,
            });
        }
        if msg.len() > MAX_MESSAGE_BYTES {
            return Err(StoreError::MessageTooLarge {
                len: msg.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let flags = if is_admin { FLAG_ADMIN } else { 0 };
        self.append_record(KIND_OUTBOUND, flags, seq, sending_time_ns, msg)?;
        self.last_out_seq = seq;
        self.next_out_seq = seq + 1;
        Ok(())
    }

    /// Advances `next_out_seq` to `seq` without storing messages; the numbers skipped are
    /// gap-filled on resend. Sequence numbers only go down by [`SessionStore::reset`], so a
    /// `seq` at or below `next_out_seq()` changes nothing. A header update, no system call.
    pub fn set_next_out_seq(&mut self, seq: u64) {
        if seq <= self.next_out_seq {
            return;
        }
        self.next_out_seq = seq;
        self.slot.next_out_floor = seq;
        self.write_slot();
    }

    /// Calls `f(seq, sending_time_ns, is_admin, bytes)` for each stored outbound message with
    /// `from <= seq <= to` (`to = u64::MAX` for "up to the last"), in seq order. Numbers
    /// without a message (skipped by `set_next_out_seq`) are simply not visited. Reads the
    /// file through one buffer per call and re-checks each record's CRC.
    pub fn for_each_outbound(
        &self,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, u64, bool, &[u8]),
    ) -> Result<(), StoreError> {
        if from > to || from > self.last_out_seq {
            return Ok(());
        }
        // The last entry whose records before it are all below `from`; its successor (if
        // any) has a message at or above `from` before it, so at most INDEX_STRIDE records
        // are read before the first one visited.
        let i = self.index.partition_point(|e| e.min_seq <= from);
        let mut pos = if i == 0 {
            HEADER_BYTES
        } else {
            self.index[i - 1].offset
        };
        let mut reader = ChunkReader {
            file: &self.file,
            end: self.end,
            buf: Vec::with_capacity(READ_CHUNK_BYTES),
            start: 0,
        };
        let io = |e| io_error(&self.path, e);
        while pos < self.end {
            let corrupt = |problem| StoreError::Corrupt {
                path: self.path.clone(),
                offset: pos,
                reason: Corruption::Record(problem),
            };
            let available = self.end - pos;
            if available < RECORD_HEADER_BYTES as u64 {
                return Err(corrupt(RecordProblem::Truncated {
                    record_bytes: 0,
                    available_bytes: available,
                }));
            }
            let head = reader.get(pos, RECORD_HEADER_BYTES).map_err(io)?;
            let record_bytes = u32_at(head, 4);
            let padded = padded_bytes(record_bytes as usize);
            if (record_bytes as usize) < RECORD_HEADER_BYTES {
                return Err(corrupt(RecordProblem::BadLength { record_bytes }));
            }
            if padded as u64 > available {
                return Err(corrupt(RecordProblem::Truncated {
                    record_bytes,
                    available_bytes: available,
                }));
            }
            let record = reader.get(pos, padded).map_err(io)?;
            let frame = decode_frame(record, 0).map_err(corrupt)?;
            if frame.kind == KIND_OUTBOUND {
                if frame.seq > to {
                    break;
                }
                if frame.seq >= from {
                    let admin = frame.flags & FLAG_ADMIN != 0;
                    f(frame.seq, frame.ts_ns, admin, &record[frame.payload]);
                }
                if frame.seq >= self.last_out_seq {
                    break;
                }
            }
            pos += padded as u64;
        }
        Ok(())
    }

    /// Records that the session used ClOrdID `id` (1 to 64 bytes); `Ok(false)` if it was
    /// already used since the last reset. A new ID costs one `pwrite`.
    pub fn insert_cl_ord_id(&mut self, id: &[u8]) -> Result<bool, StoreError> {
        if !(1..=MAX_CL_ORD_ID_BYTES).contains(&id.len()) {
            return Err(StoreError::ClOrdIdLength { len: id.len() });
        }
        let hash = self.cl_ord_ids.hash(id);
        let probe = self.cl_ord_ids.probe(hash, |offset| {
            stored_cl_ord_id_is(&self.file, self.end, offset, id)
        });
        let slot = match probe.map_err(|e| io_error(&self.path, e))? {
            Probe::Found => return Ok(false),
            Probe::Vacant(slot) => slot,
        };
        if self.cl_ord_ids.is_full() {
            return Err(StoreError::Full {
                path: self.path.clone(),
                limit: FullLimit::ClOrdIds {
                    max: self.cl_ord_ids.max,
                },
            });
        }
        let offset = self.end;
        self.append_record(KIND_CL_ORD_ID, 0, 0, 0, id)?;
        self.cl_ord_ids.insert_at(slot, hash, offset);
        Ok(true)
    }

    /// Whether the session used ClOrdID `id` since the last reset. A hash match is confirmed
    /// by reading the record back (one `pread`, only for duplicates and rare tag collisions);
    /// if that read fails the answer is `true`, because wrongly rejecting an order as a
    /// duplicate is safer than accepting a real duplicate.
    pub fn contains_cl_ord_id(&self, id: &[u8]) -> bool {
        if !(1..=MAX_CL_ORD_ID_BYTES).contains(&id.len()) {
            return false;
        }
        let hash = self.cl_ord_ids.hash(id);
        let probe = self.cl_ord_ids.probe(hash, |offset| {
            stored_cl_ord_id_is(&self.file, self.end, offset, id)
        });
        !matches!(probe, Ok(Probe::Vacant(_)))
    }

    /// How many ClOrdIDs the session used since the last reset.
    pub fn cl_ord_id_count(&self) -> usize {
        self.cl_ord_ids.len
    }

    /// Empties the store (sequence numbers back to 1 and 1, no messages, no ClOrdIDs), keeping
    /// the trading day; see the module docs for why a crash leaves the old or the new state.
    pub fn reset(&mut self) -> Result<(), StoreError> {
        self.reset_for_day(self.slot.trading_day)
    }

    /// [`SessionStore::reset`] that also sets the trading day, in the same atomic step: a
    /// crash cannot leave an emptied store still labelled with the old day.
    pub fn reset_for_day(&mut self, trading_day: u32) -> Result<(), StoreError> {
        // Everything that can fail before the rename leaves the old state in force.
        let staged = write_fresh_file(&self.temp_path, &self.name, trading_day).and_then(|file| {
            let header = map_header(&file, &self.temp_path)?;
            fs::rename(&self.temp_path, &self.path).map_err(|e| io_error(&self.path, e))?;
            Ok((file, header))
        });
        let (file, header) = match staged {
            Ok(staged) => staged,
            Err(e) => {
                // Best effort: the next open deletes a leftover temporary file anyway.
                let _ = fs::remove_file(&self.temp_path);
                return Err(e);
            }
        };
        // The rename happened: the new file is the store from here on, even if syncing the
        // directory below fails (then only a power cut could bring the old one back).
        self.file = file;
        self.header = header;
        self.slot = Slot::fresh(trading_day);
        self.end = HEADER_BYTES;
        self.records = 0;
        self.last_out_seq = 0;
        self.next_out_seq = 1;
        self.cl_ord_ids.clear();
        self.index.clear();
        Ok(())
    }

    /// The trading day (e.g. YYYYMMDD) the store belongs to; 0 until set.
    pub fn trading_day(&self) -> u32 {
        self.slot.trading_day
    }

    /// Records the trading day; a header update, no system call.
    pub fn set_trading_day(&mut self, day: u32) {
        self.slot.trading_day = day;
        self.write_slot();
    }

    /// Bytes used in the file, header page included.
    pub fn bytes_used(&self) -> u64 {
        self.end
    }

    /// Bytes of a torn tail that open truncated; 0 if the tail was clean.
    pub fn recovered_dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Makes everything recorded so far durable (`msync` of the header page, `fdatasync` of
    /// the file); for a clean shutdown, since nothing is synced per message.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.header
            .flush()
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_error(&self.path, e))?;
        // The directory too: creation and resets rename files without syncing it.
        sync_dir(&self.dir)
    }

    fn write_slot(&mut self) {
        self.slot.generation += 1;
        store_slot(&mut self.header, &self.slot);
    }

    /// Appends one record at `end`; on error nothing changes.
    fn append_record(
        &mut self,
        kind: u8,
        flags: u8,
        seq: u64,
        ts_ns: u64,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let framed = framed_bytes(payload.len()) as u64;
        if self.end + framed > self.options.capacity_bytes {
            return Err(StoreError::Full {
                path: self.path.clone(),
                limit: FullLimit::CapacityBytes {
                    capacity_bytes: self.options.capacity_bytes,
                },
            });
        }
        encode_record(&mut self.scratch, kind, flags, seq, ts_ns, payload);
        if let Err(e) = self.file.write_all_at(&self.scratch, self.end) {
            // A partial write may have left part of the record past `end`. Cutting it keeps
            // the tail clean; if even that fails, the next append overwrites it, and a crash
            // before then leaves a torn tail, which recovery truncates.
            let _ = self.file.set_len(self.end);
            return Err(io_error(&self.path, e));
        }
        if self.records % INDEX_STRIDE == 0 {
            // Within the reserved capacity: records never exceed capacity / 32.
            self.index.push(IndexEntry {
                min_seq: self.last_out_seq + 1,
                offset: self.end,
            });
        }
        self.records += 1;
        self.end += framed;
        Ok(())
    }
}

/// Whether the record at `offset` of `file` (whose records end at `end`) holds ClOrdID `id`.
fn stored_cl_ord_id_is(file: &File, end: u64, offset: u64, id: &[u8]) -> io::Result<bool> {
    let mut buf = [0u8; RECORD_HEADER_BYTES + MAX_CL_ORD_ID_BYTES];
    let want = RECORD_HEADER_BYTES + id.len();
    if offset + want as u64 > end {
        return Ok(false);
    }
    let buf = &mut buf[..want];
    file.read_exact_at(buf, offset)?;
    Ok(u32_at(buf, 4) as usize == want
        && buf[8] == KIND_CL_ORD_ID
        && &buf[RECORD_HEADER_BYTES..] == id)
}
