//! A compaction's snapshot file written ahead, off the driver (issue 10).
//!
//! Compacting writes the snapshot file (the whole table: 39 MiB at a
//! million short names, 0.5 GB with 250-byte names) and fsyncs it. On the
//! driver's task that write stalls every caller of the node, so the driver
//! hands [`LogStore::stager`](crate::storage::LogStore::stager)'s job to a
//! blocking thread, with the snapshot it encoded there: the job frames the
//! snapshot and writes it, fsynced, to `snapshot.<index>.tmp`. The
//! compaction on the driver ([`DiskStore::compact_with`]) then does what
//! [`Wal::install`](super::segment::Wal::install) does, less that write:
//! the next segment (the log's tail, small) made durable first, then the
//! staged file renamed over `snapshot` and the directory fsynced, then the
//! older segments removed.
//!
//! Crash safety is the install's (see "Recovery" in the module docs of
//! `disk`): until the rename is durable, recovery removes the staged file
//! (every `*.tmp` is an unfinished write) and a segment whose `Base` is
//! newer than the snapshot file, and finds the old state; after it, the
//! new one. The staged file is written before the new segment rather than
//! after it, which changes no crash outcome: it is a temporary file either
//! way. A staged file that is never used (the compaction was superseded) is
//! removed when its [`StagedSnapshot`] is dropped, or at the next open.

use std::path::PathBuf;
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::Snapshot;

use super::record::{self, EncodeError};
use super::segment::{write_new, TMP_SUFFIX};
use super::{base_content, store_err, to_raft, DiskStore};
use crate::storage::fs::Fs;
use crate::storage::Stager;

/// A snapshot file written and fsynced under a temporary name, waiting for
/// its compaction. Dropped unused, it removes the file.
#[derive(Debug)]
pub struct StagedSnapshot {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    len: u64,
    index: u64,
    used: bool,
}

impl StagedSnapshot {
    /// The index of the snapshot whose file this is.
    pub fn index(&self) -> u64 {
        self.index
    }
}

impl Drop for StagedSnapshot {
    fn drop(&mut self) {
        if !self.used {
            // Best effort: a leftover is removed at the next open.
            let _ = self.fs.remove(&self.path);
        }
    }
}

/// Frames `snap` and writes it, fsynced, to a temporary file in `dir`.
fn stage(fs: Arc<dyn Fs>, dir: PathBuf, snap: &Snapshot) -> raft::Result<StagedSnapshot> {
    let index = snap.get_metadata().index;
    let bytes = snap.write_to_bytes().map_err(raft::Error::CodecError)?;
    let mut framed = Vec::new();
    record::frame(&bytes, &mut framed)
        .ok_or_else(|| to_raft(EncodeError::TooLarge(bytes.len()).into()))?;
    drop(bytes);
    let path = dir.join(format!("snapshot.{index}{TMP_SUFFIX}"));
    write_new(fs.as_ref(), &path, &framed).map_err(to_raft)?;
    Ok(StagedSnapshot {
        fs,
        path,
        len: framed.len() as u64,
        index,
        used: false,
    })
}

impl DiskStore {
    /// The job that writes a snapshot's file ahead of its compaction;
    /// `None` once the store has failed.
    pub(super) fn stager_job(&self) -> Option<Stager> {
        self.wal.check().ok()?;
        let (fs, dir) = self.wal.fs_and_dir();
        Some(Box::new(move |snap: &Snapshot| stage(fs, dir, snap)))
    }

    /// Compacts behind `snapshot`; its file is `staged` if one was written
    /// ahead for this very snapshot, else it is written here.
    pub(super) fn compact_with(
        &mut self,
        snapshot: Snapshot,
        staged: Option<StagedSnapshot>,
    ) -> raft::Result<()> {
        self.check()?;
        let index = snapshot.get_metadata().index;
        if index <= self.snap_index() {
            return Ok(());
        }
        if index > self.window().last() {
            return Err(store_err(raft::StorageError::Unavailable));
        }
        let drop = usize::try_from(index - self.snap_index())
            .map_err(|_| store_err(raft::StorageError::Unavailable))?;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = snapshot;
        match staged.filter(|s| s.index == index) {
            Some(mut staged) => {
                let content = base_content(
                    &self.snapshot,
                    &self.hard_state,
                    &self.conf_state,
                    &self.entries,
                )?;
                let r = self
                    .wal
                    .install_staged(&content, &staged.path, staged.len)
                    .map_err(to_raft);
                // Renamed into place (or the store failed: the next open
                // removes it either way).
                staged.used = r.is_ok();
                r
            }
            None => self.install(),
        }
    }
}
