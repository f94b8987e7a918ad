//! The file operations the journal needs, as a trait, so that the same writer and recovery
//! code runs on real files ([`FsStorage`]) and on a simulated disk that can lose power
//! ([`super::sim::SimStorage`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A directory of files, as the journal uses it.
///
/// Paths are full paths (the journal directory joined with a file name). Errors are plain
/// `io::Error`s; the journal adds the path and decides which are fatal.
pub trait Storage {
    /// A file open for writing.
    type File: StorageFile;
    /// A read-only view of a whole file's bytes.
    type Map: Deref<Target = [u8]>;
    /// Held for as long as the directory is locked; dropping it unlocks.
    type Lock;

    /// Creates the directory and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes the directory's exclusive lock without waiting; returns an error of kind
    /// [`io::ErrorKind::WouldBlock`] if someone else holds it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Self::Lock>;
    /// The names (not paths) of the files in the directory, in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file, failing if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for writing.
    fn open_rw(&self, path: &Path) -> io::Result<Self::File>;
    /// Maps (or reads) the whole file.
    fn map(&self, path: &Path) -> io::Result<Self::Map>;
    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for writing.
pub trait StorageFile {
    /// Sets the length to `len_bytes` and reserves the blocks, so that writes inside it
    /// neither change the file's size nor fail for lack of space.
    fn allocate(&mut self, len_bytes: u64) -> io::Result<()>;
    /// Writes all of `bytes` at `offset` (pwrite, no shared file position).
    fn write_all_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data (and the metadata needed to read it) durable: `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes the file's data and all its metadata durable: `fsync`.
    fn sync_all(&mut self) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsStorage;

/// Name of the lock file inside a journal directory.
pub const LOCK_FILE_NAME: &str = "journal.lock";

/// A held `flock` on the directory's lock file; the kernel releases it when the file is
/// closed, including when the process dies, so a crash never leaves a stale lock.
#[derive(Debug)]
pub struct FsLock {
    _file: File,
}

/// A segment open for writing.
#[derive(Debug)]
pub struct FsFile {
    file: File,
}

/// A read-only memory map of a whole file.
#[derive(Debug)]
pub struct FsMap {
    map: Option<memmap2::Mmap>,
}

impl Deref for FsMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &[],
        }
    }
}

impl Storage for FsStorage {
    type File = FsFile;
    type Map = FsMap;
    type Lock = FsLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<FsLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE_NAME))?;
        // flock rather than fcntl record locks: an flock belongs to the open file description,
        // so a second open in the *same* process conflicts too, and closing an unrelated
        // descriptor of the same file does not silently drop it (a classic fcntl pitfall).
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
        Ok(FsLock { _file: file })
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<FsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(FsFile { file })
    }

    fn open_rw(&self, path: &Path) -> io::Result<FsFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(FsFile { file })
    }

    fn map(&self, path: &Path) -> io::Result<FsMap> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(FsMap { map: None });
        }
        // SAFETY: memmap2 requires that the file is not truncated while mapped (which would
        // turn reads into SIGBUS) and warns that concurrent writes change the mapped bytes.
        // The journal never shrinks a segment (recovery zeroes a torn tail instead of calling
        // set_len) and never rewrites bytes below the end of intact records, so the bytes a
        // caller has been handed as a record never change while mapped. Only the area past
        // the last record can change underneath a reader, and every read of it goes through
        // the CRC check before any of it is handed out.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(FsMap { map: Some(map) })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl StorageFile for FsFile {
    fn allocate(&mut self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)?;
        // fallocate(2) with mode 0, through rustix (no raw libc call to get wrong), rather than
        // posix_fallocate(3): glibc's posix_fallocate silently falls back to writing a byte per
        // block when the file system lacks fallocate, which turns a fast reservation into a
        // full write of the segment; the raw call reports EOPNOTSUPP instead, and we then keep
        // the sparse file that set_len made. Reserving the blocks up front means a write inside
        // the segment cannot fail with ENOSPC, the extents are laid out once and contiguously,
        // and the size never changes while appending, so fdatasync has no size update to
        // flush. (ext4 and XFS still mark fallocated extents "unwritten" and convert them on
        // the first write to each, a small metadata commit; pre-writing zeros would avoid that
        // at the cost of writing every segment twice.)
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            0,
            len_bytes,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn write_all_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.file, bytes, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}
