//! The file-system seam under the durable store: every read, write, fsync,
//! rename and removal [`DiskStore`](super::DiskStore) performs goes through
//! [`Fs`], so tests can make any of them fail (`FaultyFs`, built for tests
//! and the `sim` feature) and check that the store stops rather than
//! acknowledge anything.
//!
//! That includes the fsyncs of the driver's fsync thread, through
//! [`LogStore::sync_handle`](super::LogStore::sync_handle).

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

/// Creates `dir` and any missing parents, and fsyncs the parent of each
/// one created, so that a power cut cannot keep what is later written
/// inside `dir` (and fsynced there) while losing `dir` itself.
///
/// # Errors
///
/// The first failing creation or fsync.
pub fn create_dir_durably(fs: &dyn Fs, dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .collect();
    fs.create_dir_all(dir)?;
    for created in missing.iter().rev() {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs.sync_dir(parent)?;
    }
    Ok(())
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
        let started = std::time::Instant::now();
        let synced = file.sync_data();
        crate::metrics::seconds(crate::metrics::FSYNC_SECONDS, started.elapsed());
        synced
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
mod faulty;
