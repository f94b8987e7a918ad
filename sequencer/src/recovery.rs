//! Snapshot files and restart: newest valid snapshot + journal tail = the engine before the
//! crash.
//!
//! A snapshot file is written atomically: a temporary file, `fsync`, `rename` over nothing
//! (names carry the snapshot's seq), then `fsync` of the directory. A crash at any point leaves
//! either the new snapshot complete or no trace of it, and the previous snapshots untouched.
//!
//! ```text
//! snapshot-<seq:020>.fxs
//!   0  8  magic "FXSNAPF1"
//!   8  8  seq            the last command the snapshot includes
//!  16  8  length         of the engine snapshot bytes that follow the header
//!  24  4  crc32c         of those bytes
//!  28  4  reserved (0)
//!  32  .. engine snapshot (ferrox_engine::snapshot)
//! ```
//!
//! Restart opens the journal (which truncates a torn tail), picks the newest snapshot that is
//! intact, decodes, matches the configuration, and is not newer than the journal's last record
//! (in `async` mode a power cut can lose journal records a snapshot already covered; such a
//! snapshot cannot be continued from), then re-applies the journal records after it.

use crate::frame;
use crate::journal::{Journal, JournalError, JournalOptions, JournalReader};
use ferrox_engine::{Engine, EngineConfig, NullSink, SequencedCommand, SnapshotError};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const MAGIC: &[u8; 8] = b"FXSNAPF1";
const HEADER_BYTES: usize = 32;
/// How many snapshot files are kept; older ones are deleted after a new one is in place.
pub const SNAPSHOTS_KEPT: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal record {seq} does not decode: {reason}")]
    Record { seq: u64, reason: String },
    #[error("the journal starts at seq {journal_first} but no usable snapshot covers the seqs before it")]
    NoBase { journal_first: u64 },
    #[error("engine configuration: {0}")]
    Config(#[from] ferrox_engine::ConfigError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecoveryError + '_ {
    move |source| RecoveryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("snapshot-{seq:020}.fxs"))
}

/// Snapshot files in `dir`, newest first, as `(seq, path)`.
pub fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, RecoveryError> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(seq) = name
            .strip_prefix("snapshot-")
            .and_then(|s| s.strip_suffix(".fxs"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((seq, entry.path()));
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found)
}

/// Writes snapshot `bytes` (covering commands up to `seq`) atomically into `dir`, then deletes
/// all but the newest [`SNAPSHOTS_KEPT`] snapshots.
pub fn write_snapshot_file(dir: &Path, seq: u64, bytes: &[u8]) -> Result<PathBuf, RecoveryError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let path = snapshot_path(dir, seq);
    // Two writers may snapshot the same seq (the periodic one and the one at shutdown); their
    // bytes are identical, so each writes its own temporary file and the last rename wins.
    static WRITER: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "fxs.{}-{}.tmp",
        std::process::id(),
        WRITER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut header = [0u8; HEADER_BYTES];
    header[0..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&seq.to_le_bytes());
    header[16..24].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    header[24..28].copy_from_slice(&crc32c::crc32c(bytes).to_le_bytes());
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&header).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    for (_, old) in list_snapshots(dir)?.into_iter().skip(SNAPSHOTS_KEPT) {
        let _ = fs::remove_file(old);
    }
    Ok(path)
}

/// Why a snapshot file was passed over.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    #[error("not a snapshot file, or its header is damaged")]
    Header,
    #[error("length or checksum does not match: the file is damaged")]
    Checksum,
    #[error(transparent)]
    Engine(#[from] SnapshotError),
}

/// Reads and restores one snapshot file.
pub fn load_snapshot_file(
    path: &Path,
    config: EngineConfig,
) -> Result<(u64, Engine), SnapshotFileError> {
    let data = fs::read(path).map_err(SnapshotFileError::Io)?;
    if data.len() < HEADER_BYTES || &data[0..8] != MAGIC || data[28..32] != [0; 4] {
        return Err(SnapshotFileError::Header);
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&data[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let seq = word(8);
    let len = word(16);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&data[24..28]);
    let body = &data[HEADER_BYTES..];
    if len != body.len() as u64 || crc32c::crc32c(body) != u32::from_le_bytes(crc) {
        return Err(SnapshotFileError::Checksum);
    }
    let engine = Engine::from_snapshot(config, body)?;
    if engine.last_seq() != seq {
        return Err(SnapshotFileError::Header);
    }
    Ok((seq, engine))
}

/// What a restart found and did.
pub struct Recovered {
    pub engine: Engine,
    pub journal: Journal,
    pub journal_recovery: crate::journal::Recovery,
    /// The snapshot used, if any.
    pub snapshot_seq: Option<u64>,
    /// Snapshots passed over, with the reason.
    pub snapshots_skipped: Vec<(PathBuf, String)>,
    /// Journal records re-applied after the snapshot.
    pub replayed: u64,
    /// The last journalled timestamp (0 for an empty journal).
    pub last_ts_ns: u64,
    pub elapsed: std::time::Duration,
}

/// Opens the journal in `data_dir/journal` and rebuilds the engine from the newest usable
/// snapshot in `data_dir/snapshots` plus the journal records after it.
pub fn recover(
    config: &EngineConfig,
    data_dir: &Path,
    options: JournalOptions,
) -> Result<Recovered, RecoveryError> {
    let started = Instant::now();
    let journal_dir = data_dir.join("journal");
    let snapshot_dir = data_dir.join("snapshots");
    let (journal, journal_recovery) = Journal::open(&journal_dir, options)?;
    let last_seq = journal_recovery.last_seq;
    let mut skipped = Vec::new();
    let mut base = None;
    for (seq, path) in list_snapshots(&snapshot_dir)? {
        if seq > last_seq {
            skipped.push((
                path,
                format!("covers seq {seq}, past the journal's last {last_seq}"),
            ));
            continue;
        }
        match load_snapshot_file(&path, config.clone()) {
            Ok(found) => {
                base = Some(found);
                break;
            }
            Err(e) => skipped.push((path, e.to_string())),
        }
    }
    let (snapshot_seq, mut engine) = match base {
        Some((seq, engine)) => (Some(seq), engine),
        None => (None, Engine::new(config.clone())?),
    };
    let from = snapshot_seq.map_or(journal_recovery.first_seq, |s| s + 1);
    if from < journal_recovery.first_seq {
        return Err(RecoveryError::NoBase {
            journal_first: journal_recovery.first_seq,
        });
    }
    if snapshot_seq.is_none() && journal_recovery.first_seq > 1 {
        return Err(RecoveryError::NoBase {
            journal_first: journal_recovery.first_seq,
        });
    }
    let mut replayed = 0;
    let mut last_ts_ns = engine.last_ts_ns();
    if from <= last_seq {
        let reader = JournalReader::open(&journal_dir)?;
        for record in reader.iter_from(from) {
            let record = record?;
            if record.seq > last_seq {
                break;
            }
            let (_, command) =
                frame::decode_input(record.payload).map_err(|e| RecoveryError::Record {
                    seq: record.seq,
                    reason: e.to_string(),
                })?;
            engine.apply(
                &SequencedCommand {
                    seq: record.seq,
                    ts_ns: record.ts_ns,
                    command,
                },
                &mut NullSink,
            );
            last_ts_ns = record.ts_ns;
            replayed += 1;
        }
    }
    if engine.last_seq() != last_seq && last_seq >= journal_recovery.first_seq {
        return Err(RecoveryError::Record {
            seq: engine.last_seq() + 1,
            reason: format!("the journal ends at {last_seq} but replay stopped early"),
        });
    }
    Ok(Recovered {
        engine,
        journal,
        journal_recovery,
        snapshot_seq,
        snapshots_skipped: skipped,
        replayed,
        last_ts_ns,
        elapsed: started.elapsed(),
    })
}
