//! The file-system seam under the durable store: every read, write, fsync,
//! rename and removal [`DiskStore`](super::DiskStore) performs goes through
//! [`Fs`], so tests can make any of them fail (`FaultyFs`, built for tests
//! and the `sim` feature) and check that the store stops rather than
//! acknowledge anything.
//!
//! The one exception is [`LogStore::sync_handle`](super::LogStore::sync_handle):
//! the driver's fsync thread syncs a clone of the segment's [`File`]
//! directly, and reports its own errors.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file operations the durable store needs.
pub trait Fs: Send + Sync + Debug {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens `path` for appending, creating it (empty) if missing.
    fn open_append(&self, path: &Path) -> io::Result<File>;
    /// Appends all of `bytes` to `file`.
    fn write(&self, file: &mut File, bytes: &[u8]) -> io::Result<()>;
    /// Reads the whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Makes what was written to `file` durable (`fdatasync`).
    fn sync(&self, file: &File) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The paths of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Cuts `path` to `len` bytes and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn open_append(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    fn write(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn sync(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }
}

#[cfg(any(test, feature = "sim"))]
pub use faulty::FaultyFs;

#[cfg(any(test, feature = "sim"))]
mod faulty {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::{io, Debug, File, Fs, Path, PathBuf, RealFs};

    /// The real file system, with faults on demand: fail the next fsync, or
    /// let `n` more writes through and tear the one after (half of it
    /// reaches the file, then it fails), as a crash or a full disk would.
    /// Faults stay armed until they fire or [`FaultyFs::heal`] is called.
    #[derive(Debug)]
    pub struct FaultyFs {
        fail_sync: AtomicBool,
        writes_left: AtomicU64,
        fail_rename: AtomicBool,
    }

    impl Default for FaultyFs {
        fn default() -> Self {
            Self::new()
        }
    }

    fn injected(what: &str) -> io::Error {
        io::Error::other(format!("injected {what} failure"))
    }

    impl FaultyFs {
        /// No faults armed yet.
        pub fn new() -> Self {
            Self {
                fail_sync: AtomicBool::new(false),
                writes_left: AtomicU64::new(u64::MAX),
                fail_rename: AtomicBool::new(false),
            }
        }

        /// The next fsync (of a file or a directory) fails.
        pub fn fail_next_sync(&self) {
            self.fail_sync.store(true, Ordering::SeqCst);
        }

        /// `n` more writes succeed; the one after writes half its bytes and
        /// fails, and so does every write after it.
        pub fn fail_after_writes(&self, n: u64) {
            self.writes_left.store(n, Ordering::SeqCst);
        }

        /// The next rename fails.
        pub fn fail_next_rename(&self) {
            self.fail_rename.store(true, Ordering::SeqCst);
        }

        /// Disarms every fault.
        pub fn heal(&self) {
            self.fail_sync.store(false, Ordering::SeqCst);
            self.writes_left.store(u64::MAX, Ordering::SeqCst);
            self.fail_rename.store(false, Ordering::SeqCst);
        }
    }

    impl Fs for FaultyFs {
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            RealFs.create_dir_all(dir)
        }

        fn open_append(&self, path: &Path) -> io::Result<File> {
            RealFs.open_append(path)
        }

        fn write(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
            let left = self.writes_left.load(Ordering::SeqCst);
            if left == 0 {
                let half = bytes.get(..bytes.len() / 2).unwrap_or_default();
                RealFs.write(file, half)?;
                return Err(injected("write"));
            }
            if left != u64::MAX {
                self.writes_left.store(left - 1, Ordering::SeqCst);
            }
            RealFs.write(file, bytes)
        }

        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            RealFs.read(path)
        }

        fn sync(&self, file: &File) -> io::Result<()> {
            if self.fail_sync.swap(false, Ordering::SeqCst) {
                return Err(injected("fsync"));
            }
            RealFs.sync(file)
        }

        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            if self.fail_sync.swap(false, Ordering::SeqCst) {
                return Err(injected("directory fsync"));
            }
            RealFs.sync_dir(dir)
        }

        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            if self.fail_rename.swap(false, Ordering::SeqCst) {
                return Err(injected("rename"));
            }
            RealFs.rename(from, to)
        }

        fn remove(&self, path: &Path) -> io::Result<()> {
            RealFs.remove(path)
        }

        fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
            RealFs.list(dir)
        }

        fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
            RealFs.truncate(path, len)
        }
    }
}
