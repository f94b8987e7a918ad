//! A simulated disk for power-loss tests: every file keeps the bytes a sync made durable
//! apart from the writes still only in the "page cache", and [`SimStorage::crash`] throws the
//! latter away the way a power cut would.
//!
//! The crash model: since its last sync, each file has a list of pending operations (writes
//! and length changes) in issue order. A crash keeps a random *prefix* of that list, may tear
//! the first operation it drops (a random-length prefix of its bytes, or random garbage of
//! that length), and loses the rest. Directory entries work the same way with `sync_dir`.
//! This is a device that persists writes in order; it deliberately does not reorder
//! write-back within a file, because that produces a hole followed by intact records, which
//! recovery treats as corruption (see the `journal` module docs).
//!
//! [`SimStorage::cut_power_after`] makes every operation fail after a given number of
//! operations, which lets a test stop the writer at any point, including between the steps
//! of a segment rollover or in the middle of recovery.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::storage::{Storage, StorageFile};

/// A small deterministic generator (SplitMix64), so that a crash is reproducible from a seed
/// without a dependency on `rand`.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant for tests.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }
}

#[derive(Debug, Clone)]
enum FileOp {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

fn apply(data: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { offset, bytes } => {
            let start = *offset as usize;
            if data.len() < start + bytes.len() {
                data.resize(start + bytes.len(), 0);
            }
            data[start..start + bytes.len()].copy_from_slice(bytes);
        }
        FileOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct Inode {
    /// What a process reads now (the page cache).
    current: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

fn apply_dir(names: &mut BTreeMap<PathBuf, usize>, op: &DirOp) {
    match op {
        DirOp::Link(path, ino) => {
            names.insert(path.clone(), *ino);
        }
        DirOp::Unlink(path) => {
            names.remove(path);
        }
        DirOp::Rename(from, to) => {
            if let Some(ino) = names.remove(from) {
                names.insert(to.clone(), ino);
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    pending_dir: Vec<DirOp>,
    locked: BTreeSet<PathBuf>,
    /// Operations left before the power goes out; `None` means it never does.
    ops_left: Option<u64>,
    fail_next_sync: bool,
    syncs: u64,
}

impl State {
    /// Counts one operation against the power budget.
    fn power(&mut self) -> io::Result<()> {
        match &mut self.ops_left {
            None => Ok(()),
            Some(0) => Err(io::Error::other("simulated power loss")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
        }
    }

    fn ino(&self, path: &Path) -> io::Result<usize> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }
}

/// An in-memory disk with power-loss semantics; clones share the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test thread that panicked while holding the lock leaves the state as consistent
        // as any crash would, so poisoning is not an error here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loses power after `ops` more operations: from then on every operation fails until
    /// [`SimStorage::crash`].
    pub fn cut_power_after(&self, ops: u64) {
        self.lock().ops_left = Some(ops);
    }

    /// Whether a [`SimStorage::cut_power_after`] budget has run out.
    pub fn power_is_out(&self) -> bool {
        self.lock().ops_left == Some(0)
    }

    /// Makes the next file sync fail the way Linux reports a write-back error: the call
    /// returns an error, the pending writes are *not* made durable, yet they stay visible in
    /// the page cache and are no longer pending, so a later sync would "succeed".
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// Number of successful file syncs so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Simulates a power cut and reboot: keeps a random prefix of each file's (and the
    /// directory's) unsynced operations, possibly tearing the next one, drops the rest, clears
    /// all locks and restores power.
    pub fn crash(&self, seed: u64) {
        let mut rng = SplitMix64::new(seed);
        let mut s = self.lock();
        for inode in &mut s.inodes {
            let pending = std::mem::take(&mut inode.pending);
            let kept = rng.below(pending.len() as u64 + 1) as usize;
            for op in &pending[..kept] {
                apply(&mut inode.durable, op);
            }
            if let Some(FileOp::Write { offset, bytes }) = pending.get(kept) {
                if !bytes.is_empty() && rng.chance(1, 2) {
                    let torn = rng.below(bytes.len() as u64) as usize;
                    let mut partial = bytes[..torn].to_vec();
                    if rng.chance(1, 4) {
                        for b in &mut partial {
                            *b = rng.next_u64() as u8;
                        }
                    }
                    apply(
                        &mut inode.durable,
                        &FileOp::Write {
                            offset: *offset,
                            bytes: partial,
                        },
                    );
                }
            }
            inode.current = inode.durable.clone();
        }
        let pending_dir = std::mem::take(&mut s.pending_dir);
        let kept = rng.below(pending_dir.len() as u64 + 1) as usize;
        let mut names = std::mem::take(&mut s.durable_names);
        for op in &pending_dir[..kept] {
            apply_dir(&mut names, op);
        }
        s.names = names.clone();
        s.durable_names = names;
        s.locked.clear();
        s.ops_left = None;
        s.fail_next_sync = false;
    }

    /// The current bytes of a file (what a process would read), for tests that corrupt or
    /// inspect files.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.lock();
        let ino = s.ino(path)?;
        Ok(s.inodes[ino].current.clone())
    }
}

/// The directory lock of a [`SimStorage`]; released on drop.
#[derive(Debug)]
pub struct SimLock {
    storage: SimStorage,
    dir: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.storage.lock().locked.remove(&self.dir);
    }
}

/// A file of a [`SimStorage`], open for writing.
#[derive(Debug)]
pub struct SimFile {
    storage: SimStorage,
    ino: usize,
}

impl SimFile {
    fn op(&mut self, op: FileOp) -> io::Result<()> {
        let mut s = self.storage.lock();
        s.power()?;
        let inode = &mut s.inodes[self.ino];
        apply(&mut inode.current, &op);
        inode.pending.push(op);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.storage.lock();
        s.power()?;
        if std::mem::take(&mut s.fail_next_sync) {
            s.inodes[self.ino].pending.clear();
            return Err(io::Error::other("simulated write-back error (EIO)"));
        }
        let inode = &mut s.inodes[self.ino];
        for op in std::mem::take(&mut inode.pending) {
            apply(&mut inode.durable, &op);
        }
        s.syncs += 1;
        Ok(())
    }
}

impl StorageFile for SimFile {
    fn allocate(&mut self, len_bytes: u64) -> io::Result<()> {
        self.op(FileOp::SetLen(len_bytes))
    }

    fn write_all_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.op(FileOp::Write {
            offset,
            bytes: bytes.to_vec(),
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }
}

impl Storage for SimStorage {
    type File = SimFile;
    type Map = Vec<u8>;
    type Lock = SimLock;

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implicit in the simulated disk: a path's parent is its directory.
        self.lock().power()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<SimLock> {
        let mut s = self.lock();
        if !s.locked.insert(dir.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "simulated lock held",
            ));
        }
        Ok(SimLock {
            storage: self.clone(),
            dir: dir.to_path_buf(),
        })
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.lock();
        s.power()?;
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.lock();
        s.power()?;
        if s.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                path.display().to_string(),
            ));
        }
        let ino = s.inodes.len();
        s.inodes.push(Inode::default());
        let op = DirOp::Link(path.to_path_buf(), ino);
        apply_dir(&mut s.names, &op);
        s.pending_dir.push(op);
        Ok(SimFile {
            storage: self.clone(),
            ino,
        })
    }

    fn open_rw(&self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.lock();
        s.power()?;
        let ino = s.ino(path)?;
        Ok(SimFile {
            storage: self.clone(),
            ino,
        })
    }

    fn map(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.lock();
        s.power()?;
        let ino = s.ino(path)?;
        Ok(s.inodes[ino].current.clone())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.power()?;
        s.ino(from)?;
        let op = DirOp::Rename(from.to_path_buf(), to.to_path_buf());
        apply_dir(&mut s.names, &op);
        s.pending_dir.push(op);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.power()?;
        s.ino(path)?;
        let op = DirOp::Unlink(path.to_path_buf());
        apply_dir(&mut s.names, &op);
        s.pending_dir.push(op);
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        // One directory per simulated disk in practice, so syncing makes every pending entry
        // durable.
        let mut s = self.lock();
        s.power()?;
        let pending = std::mem::take(&mut s.pending_dir);
        for op in &pending {
            apply_dir(&mut s.durable_names, op);
        }
        Ok(())
    }
}
