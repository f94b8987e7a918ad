//! Reading a data directory: the journal's sequenced commands and the snapshot files.
//!
//! Everything here is read-only. The journal is memory-mapped through
//! [`JournalReader`], which takes no lock and writes nothing, so a replay can run against the
//! data directory of a running exchange or of a crashed one without disturbing it. Records are
//! read in place from the mapping and the 64-byte command is decoded straight from it.
//!
//! Unlike the exchange's recovery, which truncates a torn tail, a replay reports one as an
//! error ([`ReplayError::TornTail`]): a tool that says "verified" must have seen every byte the
//! journal holds. On a live exchange's journal the record being written at that instant can
//! look torn; running again then sees it complete.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ferrox_engine::{Command, Engine, EngineConfig};
use ferrox_sequencer::frame::{self, Origin, JOURNAL_PAYLOAD_BYTES};
use ferrox_sequencer::journal::{
    framed_bytes, FsMap, JournalError, JournalReader, Records, SEGMENT_HEADER_BYTES,
};
use ferrox_sequencer::recovery;

/// Everything that can stop a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The journal reader refused a segment or a record; corruption names file, offset and seq.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A record passed its CRC but its payload is not an input slot the engine accepts.
    #[error("journal file {} at byte offset {offset} (seq {seq}): payload does not decode: {reason}", path.display())]
    Payload {
        path: PathBuf,
        offset: u64,
        seq: u64,
        reason: String,
    },
    /// Non-zero bytes after the last intact record of the last segment: a truncated or torn
    /// record. The exchange's recovery would cut them off, but a replay must not pretend the
    /// journal is complete.
    #[error("journal file {} at byte offset {offset} (expected seq {seq}): truncated or torn record ({bytes} bytes after the last intact record form no record)", path.display())]
    TornTail {
        path: PathBuf,
        offset: u64,
        seq: u64,
        bytes: u64,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {}: {reason}", path.display())]
    Snapshot { path: PathBuf, reason: String },
    /// The journal starts after seq 1 and no snapshot covers what came before.
    #[error("the journal starts at seq {first} and no snapshot at or after seq {needed} exists to start from")]
    NoBase { first: u64, needed: u64 },
    #[error("{0}")]
    Invalid(String),
}

/// One sequenced command, as journalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequenced {
    pub seq: u64,
    pub ts_ns: u64,
    pub origin: Origin,
    pub command: Command,
}

impl Sequenced {
    /// The engine's view of the command.
    pub fn sequenced(&self) -> ferrox_engine::SequencedCommand {
        ferrox_engine::SequencedCommand {
            seq: self.seq,
            ts_ns: self.ts_ns,
            command: self.command,
        }
    }
}

/// A data directory opened for reading: `<dir>/journal` and `<dir>/snapshots`.
pub struct DataDir {
    root: PathBuf,
    reader: JournalReader,
    /// `(first_seq, path)` of each segment, in seq order, to name files in errors.
    segments: Vec<(u64, PathBuf)>,
}

impl DataDir {
    /// Opens `root` read-only; segment headers are verified now, records as they are read.
    pub fn open(root: impl AsRef<Path>) -> Result<DataDir, ReplayError> {
        let root = root.as_ref().to_path_buf();
        let journal = root.join("journal");
        if !journal.is_dir() {
            return Err(ReplayError::Invalid(format!(
                "{} has no journal directory",
                root.display()
            )));
        }
        let reader = JournalReader::open(&journal)?;
        let segments = segment_list(&reader);
        Ok(DataDir {
            root,
            reader,
            segments,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// The first seq the journal holds, if any.
    pub fn first_seq(&self) -> Option<u64> {
        self.reader.first_seq()
    }

    /// All commands from the journal's first record.
    pub fn commands(&self) -> Commands<'_> {
        self.commands_from(self.first_seq().unwrap_or(1))
    }

    /// The commands with seq `>= seq`.
    pub fn commands_from(&self, seq: u64) -> Commands<'_> {
        Commands {
            dir: self,
            records: self.reader.iter_from(seq),
            last: None,
            done: false,
        }
    }

    /// Snapshot files, oldest first, as `(seq, path)`.
    pub fn snapshots(&self) -> Result<Vec<(u64, PathBuf)>, ReplayError> {
        let mut list = recovery::list_snapshots(&self.snapshot_dir())
            .map_err(|e| ReplayError::Invalid(e.to_string()))?;
        list.reverse();
        Ok(list)
    }

    /// Restores the engine recorded in one snapshot file.
    pub fn load_snapshot(
        &self,
        path: &Path,
        config: &EngineConfig,
    ) -> Result<(u64, Engine), ReplayError> {
        recovery::load_snapshot_file(path, config.clone()).map_err(|e| ReplayError::Snapshot {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The engine state just after `seq` (0: before anything), starting from the newest
    /// snapshot at or before it rather than from the beginning. Returns the engine, the next
    /// seq to apply, and the snapshot used.
    pub fn engine_before(
        &self,
        config: &EngineConfig,
        seq: u64,
    ) -> Result<(Engine, u64, Option<u64>), ReplayError> {
        let base = self.snapshots()?.into_iter().rev().find(|(s, _)| *s <= seq);
        let (mut engine, next, snap) = match base {
            Some((s, path)) => {
                let (s2, engine) = self.load_snapshot(&path, config)?;
                debug_assert_eq!(s, s2);
                (engine, s2 + 1, Some(s2))
            }
            None => {
                let first = self.first_seq().unwrap_or(1);
                if first > 1 {
                    return Err(ReplayError::NoBase {
                        first,
                        needed: first - 1,
                    });
                }
                (new_engine(config)?, 1, None)
            }
        };
        let mut applied = next;
        if next <= seq {
            for c in self.commands_from(next) {
                let c = c?;
                if c.seq > seq {
                    break;
                }
                engine.apply(&c.sequenced(), &mut ferrox_engine::NullSink);
                applied = c.seq + 1;
            }
        }
        Ok((engine, applied, snap))
    }

    /// The seq of the journal's last record, found without reading the journal: records
    /// have a fixed size, so a binary search over the last segment's record slots for the
    /// last non-zero frame header finds it. It is a hint (no CRC is checked); the records
    /// themselves are verified when they are read.
    pub fn last_seq_hint(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let (first, path) = self.segments.last()?;
        let file = File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let slots = len.saturating_sub(SEGMENT_HEADER_BYTES as u64) / RECORD_BYTES;
        let written = |k: u64| {
            let mut h = [0u8; 24];
            file.read_exact_at(&mut h, SEGMENT_HEADER_BYTES as u64 + k * RECORD_BYTES)
                .is_ok_and(|()| h != [0; 24])
        };
        // The first slot that is not written, by bisection over [0, slots].
        let (mut lo, mut hi) = (0, slots);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if written(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo > 0 {
            Some(first + lo - 1)
        } else {
            // An empty last segment: the previous segment ended just before it.
            first.checked_sub(1)
        }
    }

    fn segment_of(&self, seq: u64) -> (u64, &Path) {
        let i = self.segments.partition_point(|(s, _)| *s <= seq).max(1) - 1;
        let (first, path) = &self.segments[i];
        (*first, path.as_path())
    }
}

/// A fresh engine for `config`, with the configuration error as a replay error.
pub fn new_engine(config: &EngineConfig) -> Result<Engine, ReplayError> {
    Engine::new(config.clone())
        .map_err(|e| ReplayError::Invalid(format!("engine configuration: {e}")))
}

fn segment_list(reader: &JournalReader) -> Vec<(u64, PathBuf)> {
    reader
        .segment_paths()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let seq = name
                .strip_prefix("journal-")?
                .strip_suffix(".fxj")?
                .parse()
                .ok()?;
            Some((seq, p.to_path_buf()))
        })
        .collect()
}

/// Bytes one journalled command occupies in a segment: every payload is an 80-byte input slot,
/// so record offsets follow from seqs.
const RECORD_BYTES: u64 = framed_bytes(JOURNAL_PAYLOAD_BYTES) as u64;

/// Iterator of [`Sequenced`] commands; after the first error it ends.
pub struct Commands<'a> {
    dir: &'a DataDir,
    records: Records<'a, FsMap>,
    last: Option<u64>,
    done: bool,
}

impl Commands<'_> {
    /// After the reader's clean end, checks that the last segment holds nothing but zeros
    /// after its last record: the reader treats a torn tail as the end, as recovery does,
    /// while a replay reports it.
    fn check_tail(&self) -> Result<(), ReplayError> {
        let Some(&(first, ref path)) = self.dir.segments.last() else {
            return Ok(());
        };
        let next = self.last.map_or(first, |s| s + 1).max(first);
        // The iteration may have started past the end; then nothing was read from the tail.
        let end = SEGMENT_HEADER_BYTES as u64 + (next - first) * RECORD_BYTES;
        let io = |source| ReplayError::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if end >= len {
            return Ok(());
        }
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(end)).map_err(io)?;
        let mut buf = vec![0u8; 4 << 20];
        let mut at = end;
        let mut first_nonzero = None;
        let mut last_nonzero = 0;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            // The zero tail of a preallocated segment can be hundreds of MiB, so the common
            // all-zero chunk is tested a word at a time before any byte-wise search.
            if !all_zero(&buf[..n]) {
                let i = buf[..n].iter().position(|&b| b != 0).unwrap_or(0);
                first_nonzero.get_or_insert(at + i as u64);
                let j = buf[..n].iter().rposition(|&b| b != 0).unwrap_or(i);
                last_nonzero = at + j as u64 + 1;
            }
            at += n as u64;
        }
        match first_nonzero {
            None => Ok(()),
            Some(o) => Err(ReplayError::TornTail {
                path: path.clone(),
                offset: end.min(o),
                seq: next,
                bytes: last_nonzero - end.min(o),
            }),
        }
    }
}

/// Decodes a journal payload in place: the command is decoded straight from the mapping,
/// without the intermediate copy `frame::decode_input` makes. The checks are the same.
#[inline]
fn decode_payload(payload: &[u8]) -> Result<(Origin, Command), frame::FrameError> {
    let Some((head, cmd)) = payload
        .split_first_chunk::<16>()
        .and_then(|(h, rest)| Some((h, <&[u8; 64]>::try_from(rest).ok()?)))
    else {
        return Err(frame::FrameError::Size {
            expected: JOURNAL_PAYLOAD_BYTES,
            found: payload.len(),
        });
    };
    let (r, rest) = head.split_at(8);
    let (p, reserved) = rest.split_at(4);
    if reserved != [0; 4] {
        return Err(frame::FrameError::Reserved);
    }
    let command = ferrox_engine::wire::decode_command(cmd).map_err(frame::FrameError::Command)?;
    let origin = Origin {
        producer_ref: u64::from_le_bytes(r.try_into().unwrap_or_default()),
        producer: u32::from_le_bytes(p.try_into().unwrap_or_default()),
    };
    Ok((origin, command))
}

fn all_zero(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let zero_words = words.by_ref().fold(0u64, |acc, w| {
        acc | u64::from_ne_bytes(w.try_into().unwrap_or([1; 8]))
    });
    zero_words == 0 && words.remainder().iter().all(|&b| b == 0)
}

impl Iterator for Commands<'_> {
    type Item = Result<Sequenced, ReplayError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.records.next() {
            Some(Ok(r)) => match decode_payload(r.payload) {
                Ok((origin, command)) => {
                    self.last = Some(r.seq);
                    Some(Ok(Sequenced {
                        seq: r.seq,
                        ts_ns: r.ts_ns,
                        origin,
                        command,
                    }))
                }
                Err(e) => {
                    self.done = true;
                    let reason = e.to_string();
                    let (first, path) = self.dir.segment_of(r.seq);
                    Some(Err(ReplayError::Payload {
                        path: path.to_path_buf(),
                        offset: SEGMENT_HEADER_BYTES as u64 + (r.seq - first) * RECORD_BYTES,
                        seq: r.seq,
                        reason,
                    }))
                }
            },
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e.into()))
            }
            None => {
                self.done = true;
                // Only a read that reached the last segment can see its tail.
                let in_last = match (self.last, self.dir.segments.last()) {
                    (Some(s), Some((first, _))) => s >= *first,
                    // Nothing read: either an empty journal or a start past its end; the
                    // tail is then checked by a read that covers it.
                    _ => false,
                };
                if in_last {
                    self.check_tail().err().map(Err)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrox_engine::{
        AccountId, ClientOrderId, InstrumentId, NewOrder, PriceTicks, QtyLots, Side,
    };
    use ferrox_sequencer::frame::encode_input;

    #[test]
    fn in_place_decode_agrees_with_the_frame_decoder() {
        let command = Command::NewOrder(NewOrder::limit(
            InstrumentId(2),
            AccountId(9),
            ClientOrderId(77),
            Side::Buy,
            PriceTicks(12_345),
            QtyLots(6),
        ));
        let origin = Origin {
            producer: 3,
            producer_ref: 1 << 40,
        };
        let mut slot = [0u8; JOURNAL_PAYLOAD_BYTES];
        encode_input(origin, &command, &mut slot);
        assert_eq!(decode_payload(&slot), frame::decode_input(&slot));
        assert_eq!(decode_payload(&slot), Ok((origin, command)));
        let mut bad = slot;
        bad[14] = 1;
        assert_eq!(decode_payload(&bad), Err(frame::FrameError::Reserved));
        bad = slot;
        bad[16] = 0xEE;
        assert_eq!(decode_payload(&bad), frame::decode_input(&bad));
        assert!(matches!(
            decode_payload(&slot[..79]),
            Err(frame::FrameError::Size { found: 79, .. })
        ));
    }
}
