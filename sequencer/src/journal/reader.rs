//! Reading a journal: memory-mapped segments and an iterator of zero-copy records.

use std::iter::FusedIterator;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use super::error::{Corruption, JournalError};
use super::format::{ScanItem, SegmentHeader, SegmentScan};
use super::storage::{FsStorage, Storage};
use super::{corrupt, list_segments};

/// One journaled record; `payload` borrows the reader's mapping of the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The sequence number.
    pub seq: u64,
    /// The sequencer's timestamp, in nanoseconds.
    pub ts_ns: u64,
    /// The payload bytes, exactly as appended.
    pub payload: &'a [u8],
}

struct MappedSegment<M> {
    path: PathBuf,
    first_seq: u64,
    map: M,
}

/// A read-only view of a journal directory.
///
/// `open` maps every segment present at that moment and verifies their headers; records are
/// verified (CRC, consecutive seqs within and across segments) as the iterator reaches them,
/// and the first problem is yielded as an `Err` naming the file, byte offset and expected seq,
/// after which the iterator ends. It never panics on corrupt data.
///
/// The reader takes no lock and changes nothing, so it can read a journal that a writer holds
/// open; it then sees the records written to the OS at the time it reaches them, within the
/// segments that existed when it was opened. A torn tail (from a crash the writer has not yet
/// recovered) simply ends the iteration, as recovery would truncate it. A reader racing the
/// writer at the very tail may see a half-copied record and end early; following a live
/// journal needs the writer's published position and is left to the ring work.
pub struct JournalReader<S: Storage = FsStorage> {
    dir: PathBuf,
    segments: Vec<MappedSegment<S::Map>>,
}

impl JournalReader<FsStorage> {
    /// Opens the journal in `dir` on the real file system, memory-mapping its segments.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, JournalError> {
        Self::open_with(&FsStorage, dir)
    }
}

impl<S: Storage> JournalReader<S> {
    /// Opens the journal in `dir` on `storage`.
    pub fn open_with(storage: &S, dir: impl AsRef<Path>) -> Result<Self, JournalError> {
        let dir = dir.as_ref().to_path_buf();
        let listing = list_segments(storage, &dir)?;
        let mut segments = Vec::with_capacity(listing.segments.len());
        for (name_seq, path) in listing.segments {
            let map = storage
                .map(&path)
                .map_err(|e| JournalError::io("mapping", &path, e))?;
            let header =
                SegmentHeader::decode(&map).map_err(|kind| corrupt(&path, 0, name_seq, kind))?;
            if header.first_seq != name_seq {
                let kind = Corruption::NameMismatch {
                    name_seq,
                    header_seq: header.first_seq,
                };
                return Err(corrupt(&path, 0, name_seq, kind));
            }
            segments.push(MappedSegment {
                path,
                first_seq: header.first_seq,
                map,
            });
        }
        Ok(JournalReader { dir, segments })
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The seq of the first record the journal holds (its first segment's first seq), or
    /// `None` if it has no segment.
    pub fn first_seq(&self) -> Option<u64> {
        self.segments.first().map(|s| s.first_seq)
    }

    /// The segment files, in seq order.
    pub fn segment_paths(&self) -> impl Iterator<Item = &Path> {
        self.segments.iter().map(|s| s.path.as_path())
    }

    /// All records from the first.
    pub fn iter(&self) -> Records<'_, S::Map> {
        self.iter_from(self.first_seq().unwrap_or(0))
    }

    /// The records with seq `>= seq`. Asking for a seq before the journal's first record
    /// yields [`JournalError::SeqNotInJournal`]; one past the end yields nothing.
    pub fn iter_from(&self, seq: u64) -> Records<'_, S::Map> {
        let mut records = Records {
            segments: &self.segments,
            index: 0,
            scan: None,
            from_seq: seq,
            pending: None,
            done: self.segments.is_empty(),
        };
        if let Some(first_seq) = self.first_seq() {
            if seq < first_seq {
                records.pending = Some(JournalError::SeqNotInJournal { seq, first_seq });
            } else {
                // The last segment whose first seq is at or before `seq`: nothing earlier can
                // hold it. The count is at least one because the first segment qualifies.
                records.index = self.segments.partition_point(|s| s.first_seq <= seq) - 1;
            }
        }
        records
    }
}

/// Iterator over a [`JournalReader`]'s records; see [`JournalReader::iter_from`].
pub struct Records<'a, M> {
    segments: &'a [MappedSegment<M>],
    index: usize,
    scan: Option<SegmentScan<'a>>,
    from_seq: u64,
    pending: Option<JournalError>,
    done: bool,
}

impl<'a, M: Deref<Target = [u8]>> Iterator for Records<'a, M> {
    type Item = Result<Record<'a>, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Some(Err(e));
        }
        loop {
            if self.done {
                return None;
            }
            let segments = self.segments;
            let seg = &segments[self.index];
            let is_last = self.index + 1 == segments.len();
            let scan = self
                .scan
                .get_or_insert_with(|| SegmentScan::new(&seg.map, seg.first_seq, is_last));
            match scan.next_item() {
                Ok(ScanItem::Record(r)) => {
                    if r.seq < self.from_seq {
                        continue;
                    }
                    return Some(Ok(Record {
                        seq: r.seq,
                        ts_ns: r.ts_ns,
                        payload: &seg.map[r.payload],
                    }));
                }
                Ok(ScanItem::End { .. }) => {
                    let next_seq = scan.next_seq();
                    self.scan = None;
                    self.index += 1;
                    let Some(next) = segments.get(self.index) else {
                        self.done = true;
                        return None;
                    };
                    if next.first_seq != next_seq {
                        self.done = true;
                        let kind = Corruption::SeqGap {
                            expected: next_seq,
                            found: next.first_seq,
                        };
                        return Some(Err(corrupt(&next.path, 0, next_seq, kind)));
                    }
                }
                Err(found) => {
                    self.done = true;
                    return Some(Err(corrupt(&seg.path, found.offset, found.seq, found.kind)));
                }
            }
        }
    }
}

// After the end or an error, `done` stays set, so `next` keeps returning `None`.
impl<M: Deref<Target = [u8]>> FusedIterator for Records<'_, M> {}
