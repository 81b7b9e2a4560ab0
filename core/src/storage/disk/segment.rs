//! The files of the durable store and the order in which they become
//! durable: the segment being appended to, new segments (written whole
//! under a temporary name, synced, then renamed into place, so a segment
//! either exists complete or not at all), and the snapshot file (the same
//! way). After any write or fsync error the [`Wal`] is failed for good.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::record::{self, Rec};
use super::StorageError;
use crate::storage::fs::Fs;
use crate::storage::SyncHandle;

/// How far the segments are known fsynced: `(segment seq, offset)`.
#[derive(Debug, Default)]
pub(super) struct Synced(Mutex<(u64, u64)>);

impl Synced {
    fn get(&self) -> (u64, u64) {
        // Plain data: a panic elsewhere cannot leave it half-written.
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that segment `seq` is fsynced up to `len` (never backwards).
    fn advance(&self, seq: u64, len: u64) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if (seq, len) > *g {
            *g = (seq, len);
        }
    }
}

/// A handle on the current segment for the driver's fsync thread: it
/// fsyncs through the [`Fs`] seam and then records how far the segment is
/// known fsynced (so the next batch can say so: `Rec::Synced`).
pub(super) struct SegmentSync {
    fs: Arc<dyn Fs>,
    file: Arc<File>,
    seq: u64,
    len: u64,
    synced: Arc<Synced>,
}

impl SyncHandle for SegmentSync {
    fn sync(&self) -> io::Result<()> {
        self.fs.sync(&self.file)?;
        self.synced.advance(self.seq, self.len);
        Ok(())
    }
}

/// Rotate to a new segment once the current one passes this size.
pub(super) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The snapshot file's name.
pub(super) const SNAPSHOT_FILE: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";
/// Files with this suffix are unfinished and removed on open.
pub(super) const TMP_SUFFIX: &str = ".tmp";

/// The name of segment `seq`.
pub(super) fn segment_name(seq: u64) -> String {
    format!("{seq:016}.wal")
}

/// The sequence number of a segment file, if `path` names one.
pub(super) fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn io_err(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `content` as segment `seq` of `dir`, atomically and durably:
/// temporary file, write, fsync, rename, fsync the directory.
pub(super) fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    seq: u64,
    content: &[u8],
) -> Result<(File, PathBuf), StorageError> {
    let path = dir.join(segment_name(seq));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", segment_name(seq)));
    let file = write_new(fs, &tmp, content)?;
    fs.rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    fs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
    Ok((file, path))
}

/// Writes `content` to a new file at `path` (replacing a leftover one)
/// and fsyncs it.
pub(super) fn write_new(fs: &dyn Fs, path: &Path, content: &[u8]) -> Result<File, StorageError> {
    match fs.remove(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(path, e)),
        _ => {}
    }
    let mut file = fs.open_append(path).map_err(|e| io_err(path, e))?;
    fs.write(&mut file, content)
        .and_then(|()| fs.sync(&file))
        .map_err(|e| io_err(path, e))?;
    Ok(file)
}

/// The segment being appended to, and the other files' sizes.
#[derive(Debug)]
pub(super) struct Wal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    file: File,
    /// One duplicate of `file`'s descriptor, shared with every
    /// [`SegmentSync`] of this segment: made once per segment instead of a
    /// `dup` + `close` per Ready (issue 10). Both descriptors name the same
    /// open file, so an `fdatasync` through either makes the same writes
    /// durable. `None` if the duplicate could not be made (each handle
    /// then tries its own, as before).
    sync_file: Option<Arc<File>>,
    path: PathBuf,
    seq: u64,
    len: u64,
    /// Older segments whose removal failed, retried at each rotation.
    old: Vec<PathBuf>,
    snapshot_len: u64,
    failed: bool,
    /// Rotate past this many bytes ([`SEGMENT_BYTES`]; smaller in tests).
    limit: u64,
    /// How far the segments are known fsynced.
    synced: Arc<Synced>,
    /// The offset the last `Synced` record of this segment states.
    marked: u64,
}

/// Where a [`Wal`] starts.
pub(super) struct WalStart {
    pub(super) fs: Arc<dyn Fs>,
    pub(super) dir: PathBuf,
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) seq: u64,
    pub(super) len: u64,
    pub(super) snapshot_len: u64,
}

impl Wal {
    pub(super) fn new(s: WalStart) -> Self {
        Self {
            fs: s.fs,
            dir: s.dir,
            sync_file: s.file.try_clone().ok().map(Arc::new),
            file: s.file,
            path: s.path,
            seq: s.seq,
            len: s.len,
            old: Vec::new(),
            snapshot_len: s.snapshot_len,
            failed: false,
            limit: SEGMENT_BYTES,
            synced: Arc::new(Synced(Mutex::new((s.seq, s.len)))),
            marked: s.len,
        }
    }

    /// `Err(Failed)` once any write or fsync has failed.
    pub(super) fn check(&self) -> Result<(), StorageError> {
        if self.failed {
            Err(StorageError::Failed)
        } else {
            Ok(())
        }
    }

    /// Marks the store failed if `r` is an error.
    fn guard<T>(&mut self, r: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &r {
            self.failed = true;
            tracing::error!(error = %e, "log store write failed; the store refuses everything from now on");
        }
        r
    }

    /// Appends framed records to the current segment, and fsyncs them if
    /// `sync` (otherwise they ride along with the next fsync). If an fsync
    /// completed since the last batch, the batch opens with a `Synced`
    /// record saying how far (see "Holes in the tail" in the `disk` docs).
    pub(super) fn append(&mut self, bytes: &[u8], sync: bool) -> Result<(), StorageError> {
        self.check()?;
        let mut marked = None;
        let mut with_mark;
        let mut out = bytes;
        let (seq, upto) = self.synced.get();
        if seq == self.seq && upto > self.marked {
            with_mark = Vec::with_capacity(bytes.len() + 32);
            record::encode(&Rec::Synced(upto), &mut with_mark)?;
            with_mark.extend_from_slice(bytes);
            out = &with_mark;
            marked = Some(upto);
        }
        let r = self
            .fs
            .write(&mut self.file, out)
            .and_then(|()| {
                if sync {
                    self.fs.sync(&self.file)
                } else {
                    Ok(())
                }
            })
            .map_err(|e| io_err(&self.path, e));
        self.guard(r)?;
        self.len += out.len() as u64;
        if let Some(m) = marked {
            self.marked = m;
        }
        if sync {
            self.synced.advance(self.seq, self.len);
        }
        Ok(())
    }

    /// Whether the current segment has passed [`SEGMENT_BYTES`].
    pub(super) fn full(&self) -> bool {
        self.len > self.limit
    }

    /// Starts the next segment with `content` (the whole state after the
    /// snapshot), durably, then removes every older segment.
    pub(super) fn rotate(&mut self, content: &[u8]) -> Result<(), StorageError> {
        self.start_segment(content)?;
        self.remove_old();
        Ok(())
    }

    /// Installs a new snapshot, atomically across a crash at any step: the
    /// next segment, opening with `Base` = the new snapshot and `content`,
    /// is made durable first; then the snapshot file is replaced (`framed`,
    /// temporary file, fsync, rename, fsync the directory); only then are
    /// the older segments removed. Until the rename is durable, recovery
    /// finds the old snapshot, skips the new segment (its `Base` is newer
    /// than the snapshot file) and replays the old one: the old state. From
    /// then on it finds the new snapshot and the new segment: the new state.
    pub(super) fn install(&mut self, content: &[u8], framed: &[u8]) -> Result<(), StorageError> {
        self.start_segment(content)?;
        self.write_snapshot(framed)?;
        self.remove_old();
        Ok(())
    }

    /// Writes the next segment durably and appends to it from now on; the
    /// current one goes to the list of old segments (not yet removed).
    fn start_segment(&mut self, content: &[u8]) -> Result<(), StorageError> {
        self.check()?;
        let seq = self.seq + 1;
        let r = create_segment(self.fs.as_ref(), &self.dir, seq, content);
        let (file, path) = self.guard(r)?;
        // A leftover of that name (an unfinished install whose removal
        // failed) was just replaced: it must not be removed as old.
        self.old.retain(|p| *p != path);
        let old = std::mem::replace(&mut self.path, path);
        self.sync_file = file.try_clone().ok().map(Arc::new);
        self.file = file;
        self.seq = seq;
        self.len = content.len() as u64;
        self.marked = self.len;
        self.synced.advance(seq, self.len);
        self.old.push(old);
        Ok(())
    }

    /// Removes older segments; one that will not go is retried later.
    pub(super) fn remove_old(&mut self) {
        let fs = Arc::clone(&self.fs);
        self.old.retain(|p| match fs.remove(p) {
            Ok(()) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e, "could not remove an old log segment; will retry");
                true
            }
        });
    }

    /// Older segments to remove with the next [`Wal::remove_old`].
    pub(super) fn add_old(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        self.old.extend(paths);
    }

    /// Replaces the snapshot file with `framed`, atomically and durably.
    fn write_snapshot(&mut self, framed: &[u8]) -> Result<(), StorageError> {
        self.check()?;
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let r = write_new(self.fs.as_ref(), &tmp, framed);
        self.guard(r)?;
        self.put_snapshot(&tmp, framed.len() as u64)
    }

    /// Makes the fsynced file `tmp` (of `len` bytes) the snapshot file:
    /// rename, then fsync the directory.
    fn put_snapshot(&mut self, tmp: &Path, len: u64) -> Result<(), StorageError> {
        self.check()?;
        let fs = Arc::clone(&self.fs);
        let dst = self.dir.join(SNAPSHOT_FILE);
        let r = fs
            .rename(tmp, &dst)
            .map_err(|e| io_err(&dst, e))
            .and_then(|()| fs.sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e)));
        self.guard(r)?;
        self.snapshot_len = len;
        Ok(())
    }

    /// [`Wal::install`] with the snapshot file already written and fsynced
    /// at `staged` (by [`super::staged`], off the driver): the same order
    /// of durable steps, only the snapshot file's bytes went first.
    pub(super) fn install_staged(
        &mut self,
        content: &[u8],
        staged: &Path,
        len: u64,
    ) -> Result<(), StorageError> {
        self.start_segment(content)?;
        self.put_snapshot(staged, len)?;
        self.remove_old();
        Ok(())
    }

    /// The file-system seam and the directory, for a staging job.
    pub(super) fn fs_and_dir(&self) -> (Arc<dyn Fs>, PathBuf) {
        (Arc::clone(&self.fs), self.dir.clone())
    }

    /// A handle on the current segment, for an fsync on another thread.
    pub(super) fn sync_handle(&self) -> Option<SegmentSync> {
        let file = match &self.sync_file {
            Some(f) => Arc::clone(f),
            None => Arc::new(self.file.try_clone().ok()?),
        };
        Some(SegmentSync {
            fs: Arc::clone(&self.fs),
            file,
            seq: self.seq,
            len: self.len,
            synced: Arc::clone(&self.synced),
        })
    }

    /// Bytes in the snapshot file and the current segment (older segments
    /// exist only for the length of a rotation, unless their removal failed).
    pub(super) fn disk_usage(&self) -> u64 {
        self.snapshot_len + self.len
    }

    /// The current segment's path.
    #[cfg(test)]
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Rotates past `limit` bytes instead of [`SEGMENT_BYTES`].
    #[cfg(test)]
    pub(super) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }
}
