//! The durable log store: a write-ahead log of checksummed records in
//! segment files, plus the latest snapshot, in one directory.
//!
//! - Every mutating call is durable (`fsync`) before it returns, except a
//!   change of the commit index alone: Raft can always learn that again
//!   from the leader, so it rides along with the next fsync. The driver
//!   writes each Raft Ready with [`LogStore::write_unsynced`] and its fsync
//!   thread syncs [`LogStore::sync_handle`]: one fsync for every Ready queued
//!   since the last (group commit).
//! - The entries after the snapshot are also kept in memory; reads never
//!   touch the disk. The log is compacted every ~20 000 entries, so this is
//!   bounded.
//! - Compaction writes the snapshot (atomically: temp file, fsync, rename,
//!   fsync the directory), starts a new segment holding the hard state, the
//!   membership and the entries after the snapshot, and only then deletes
//!   the older segments. Disk use is therefore bounded by one snapshot, the
//!   entries since it, and one segment's growth (rotation at 64 MiB).
//! - Recovery replays the snapshot and the segments in order. A torn tail
//!   of the last segment (see [`record::scan`]) is dropped, logged and cut
//!   off; any other bad record refuses to open, naming file and offset.
//! - After any write or fsync error the store is failed: every later call
//!   returns an error, so the node stops rather than acknowledge anything.

pub mod record;
mod recover;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState};
use serde::{Deserialize, Serialize};

use super::window::Window;
use super::LogStore;

/// Rotate to a new segment past this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const SNAPSHOT_FILE: &str = "snapshot";
const REC_VERSION: u8 = 1;

/// Why the durable store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file could not be read, written or synced.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record before the tail is damaged: refusing to guess.
    #[error("{} is corrupt at byte {offset}: {reason}; refusing to start (restore this node's data directory, or empty it and let the node rejoin)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or fsync failed; the store refuses everything since.
    #[error("the log store failed earlier and accepts nothing more; restart the node")]
    Failed,
}

#[derive(Serialize, Deserialize)]
enum Rec {
    Entries(Vec<Vec<u8>>),
    Hard { term: u64, vote: u64, commit: u64 },
    Conf(Vec<u8>),
    Commit(u64),
}

fn encode(rec: &Rec, out: &mut Vec<u8>) {
    let mut payload = vec![REC_VERSION];
    if let Ok(b) = bincode::serde::encode_to_vec(rec, bincode::config::standard()) {
        payload.extend_from_slice(&b);
    }
    record::frame(&payload, out);
}

fn hard_rec(hs: &HardState) -> Rec {
    Rec::Hard {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    }
}

/// Entries as a record; an entry that does not encode is an error, never
/// silently left out.
fn entries_rec(entries: &[Entry]) -> Result<Rec, protobuf::ProtobufError> {
    entries
        .iter()
        .map(|e| e.write_to_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map(Rec::Entries)
}

fn to_raft(e: StorageError) -> raft::Error {
    raft::Error::Store(raft::StorageError::Other(Box::new(e)))
}

fn store_err(e: raft::StorageError) -> raft::Error {
    raft::Error::Store(e)
}

/// The durable Raft log store of one node.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
    segment: File,
    segment_path: PathBuf,
    segment_seq: u64,
    segment_len: u64,
    failed: bool,
    /// Test hook: make the next fsync fail.
    #[cfg(test)]
    fail_next_sync: bool,
}

fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

fn segment_name(seq: u64) -> String {
    format!("{seq:016}.wal")
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

impl DiskStore {
    /// The hard state last persisted.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Bytes used on disk by the snapshot and the segments.
    pub fn disk_usage(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    fn window(&self) -> Window<'_> {
        Window {
            snapshot: &self.snapshot,
            entries: &self.entries,
        }
    }

    fn snap_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// Appends framed records to the segment and fsyncs once (unless
    /// `sync` is false: then they ride along with the next fsync).
    fn write(&mut self, bytes: &[u8], sync: bool) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        let result =
            self.segment
                .write_all(bytes)
                .and_then(|()| if sync { self.sync_segment() } else { Ok(()) });
        if let Err(e) = result {
            self.failed = true;
            tracing::error!(file = %self.segment_path.display(), error = %e, "log write failed; the store refuses everything from now on");
            return Err(io_err(&self.segment_path, e));
        }
        self.segment_len += bytes.len() as u64;
        if self.segment_len > SEGMENT_BYTES {
            self.rotate()?;
        }
        Ok(())
    }

    fn sync_segment(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_sync) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        self.segment.sync_data()
    }

    /// Starts a new segment holding the whole current state after the
    /// snapshot, then deletes the older segments.
    fn rotate(&mut self) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        encode(&hard_rec(&self.hard_state), &mut buf);
        let encoded = self.conf_state.write_to_bytes().and_then(|cs| {
            let entries = (!self.entries.is_empty())
                .then(|| entries_rec(&self.entries))
                .transpose()?;
            Ok((cs, entries))
        });
        let (cs, entries) = encoded.map_err(|e| {
            self.failed = true;
            io_err(&self.segment_path, std::io::Error::other(e))
        })?;
        encode(&Rec::Conf(cs), &mut buf);
        if let Some(rec) = entries {
            encode(&rec, &mut buf);
        }
        let seq = self.segment_seq + 1;
        let path = self.dir.join(segment_name(seq));
        let result = (|| {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            Ok::<File, std::io::Error>(f)
        })();
        let f = match result {
            Ok(f) => f,
            Err(e) => {
                self.failed = true;
                return Err(io_err(&path, e));
            }
        };
        if let Err(e) = sync_dir(&self.dir) {
            self.failed = true;
            return Err(e);
        }
        let old = std::mem::replace(&mut self.segment_path, path);
        self.segment = OpenOptions::new()
            .append(true)
            .open(&self.segment_path)
            .unwrap_or(f);
        self.segment_seq = seq;
        self.segment_len = buf.len() as u64;
        // Older segments are now redundant.
        if let Ok(dir) = fs::read_dir(&self.dir) {
            for e in dir.filter_map(|e| e.ok()) {
                let p = e.path();
                let older = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".wal"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|s| s < seq);
                if older {
                    let _ = fs::remove_file(&p);
                }
            }
        }
        let _ = old;
        Ok(())
    }

    /// Writes the snapshot file atomically and durably.
    fn write_snapshot(&mut self, snap: &Snapshot) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        let tmp = self.dir.join("snapshot.tmp");
        let dst = self.dir.join(SNAPSHOT_FILE);
        let bytes = snap.write_to_bytes().map_err(|e| StorageError::Corrupt {
            path: dst.clone(),
            offset: 0,
            reason: e.to_string(),
        })?;
        let mut framed = Vec::with_capacity(bytes.len() + record::HEADER);
        record::frame(&bytes, &mut framed);
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&framed)?;
            f.sync_all()?;
            fs::rename(&tmp, &dst)
        })();
        if let Err(e) = result {
            self.failed = true;
            return Err(io_err(&dst, e));
        }
        if let Err(e) = sync_dir(&self.dir) {
            self.failed = true;
            return Err(e);
        }
        Ok(())
    }

    /// Writes entries and hard state as one batch of records, with an
    /// fsync if `sync`.
    fn write_batch(
        &mut self,
        entries: &[Entry],
        hs: Option<&HardState>,
        sync: bool,
    ) -> raft::Result<()> {
        self.check()?;
        let keep = self.window().keep_before(entries)?;
        if entries.is_empty() && hs.is_none() {
            return Ok(());
        }
        let mut buf = Vec::new();
        if !entries.is_empty() {
            encode(
                &entries_rec(entries).map_err(raft::Error::CodecError)?,
                &mut buf,
            );
        }
        if let Some(hs) = hs {
            encode(&hard_rec(hs), &mut buf);
        }
        self.write(&buf, sync).map_err(to_raft)?;
        if let Some(keep) = keep {
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hs) = hs {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn fail_next_fsync(&mut self) {
        self.fail_next_sync = true;
    }

    fn check(&self) -> raft::Result<()> {
        if self.failed {
            Err(to_raft(StorageError::Failed))
        } else {
            Ok(())
        }
    }
}

impl raft::Storage for DiskStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.check()?;
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.check()?;
        self.window().entries(low, high, max_size.into())
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.check()?;
        self.window().term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.check()?;
        Ok(self.window().first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.check()?;
        Ok(self.window().last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        self.check()?;
        self.window().snapshot(request_index)
    }
}

impl LogStore for DiskStore {
    fn blocks(&self) -> bool {
        true
    }

    fn append(&mut self, entries: &[Entry]) -> raft::Result<()> {
        self.persist(entries, None)
    }

    fn set_hard_state(&mut self, hs: &HardState) -> raft::Result<()> {
        self.persist(&[], Some(hs))
    }

    fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        // Raft needs entries, term and vote durable before it answers; the
        // commit index alone it can always learn again from the leader, so
        // a commit-only change is written without an fsync of its own.
        let sync = !entries.is_empty()
            || hs.is_some_and(|h| h.term != self.hard_state.term || h.vote != self.hard_state.vote);
        self.write_batch(entries, hs, sync)
    }

    fn write_unsynced(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        self.write_batch(entries, hs, false)
    }

    fn sync_handle(&self) -> Option<File> {
        self.segment.try_clone().ok()
    }

    fn set_commit(&mut self, commit: u64) -> raft::Result<()> {
        self.check()?;
        let mut buf = Vec::new();
        encode(&Rec::Commit(commit), &mut buf);
        // See `persist`: the commit index needs no fsync of its own.
        self.write(&buf, false).map_err(to_raft)?;
        self.hard_state.commit = commit;
        Ok(())
    }

    fn set_conf_state(&mut self, cs: &ConfState) -> raft::Result<()> {
        self.check()?;
        let mut buf = Vec::new();
        let bytes = cs.write_to_bytes().map_err(raft::Error::CodecError)?;
        encode(&Rec::Conf(bytes), &mut buf);
        self.write(&buf, true).map_err(to_raft)?;
        self.conf_state = cs.clone();
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        self.check()?;
        let meta = snapshot.get_metadata();
        if meta.index < self.snap_index() {
            return Err(store_err(raft::StorageError::SnapshotOutOfDate));
        }
        self.write_snapshot(&snapshot).map_err(to_raft)?;
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot = snapshot;
        self.rotate().map_err(to_raft)
    }

    fn compact(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        self.check()?;
        let index = snapshot.get_metadata().index;
        if index <= self.snap_index() {
            return Ok(());
        }
        if index > self.window().last() {
            return Err(store_err(raft::StorageError::Unavailable));
        }
        self.write_snapshot(&snapshot).map_err(to_raft)?;
        let drop = usize::try_from(index - self.snap_index()).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = snapshot;
        self.rotate().map_err(to_raft)
    }
}

#[cfg(test)]
mod tests;
