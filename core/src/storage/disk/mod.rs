//! The durable log store: a write-ahead log of checksummed records in
//! segment files, plus the latest snapshot, in one directory.
//!
//! # Files
//!
//! - `{seq:016}.wal`: segments. Each is a run of records framed as
//!   `len u32 LE | crc32(len) u32 LE | crc32(payload) u32 LE | payload`
//!   (see [`record`]); a payload is a version byte and a bincode-encoded
//!   [`record::Rec`]: a batch of entries (protobuf bytes; a batch whose
//!   first index is at or below the last replaces the conflicting suffix,
//!   as [`LogStore::append`] does), a hard state, a membership, a commit
//!   index. Every segment opens with `Base` (the snapshot it starts from),
//!   the hard state, the membership and every entry after the snapshot, so
//!   the newest segment alone holds the whole state.
//! - `snapshot`: the latest snapshot, protobuf bytes in one framed record.
//! - `*.tmp`: a segment or snapshot being written; removed on open.
//!
//! # Durability
//!
//! - Every mutating call is durable (`fdatasync`) before it returns, with
//!   one exception: a change of the commit index alone is written but not
//!   synced (Raft can always learn it again from the leader), so it rides
//!   along with the next fsync. [`LogStore::persist`] writes a Ready's
//!   entries and hard state with one fsync. The driver instead writes each
//!   Ready with [`LogStore::write_unsynced`] and its fsync thread syncs
//!   [`LogStore::sync_handle`]: one fsync for every Ready queued since the
//!   last (group commit).
//! - After any write or fsync error the store is failed: every later call,
//!   reads included, returns an error, so the node stops rather than
//!   acknowledge anything.
//!
//! # Compaction and disk use
//!
//! The entries after the snapshot are also kept in memory and reads never
//! touch the disk; the driver compacts the log every 20 000 entries, or
//! for a large table once the log is as large as the snapshot (at most
//! 32 MiB of entries), so this is bounded. [`LogStore::compact`] and [`LogStore::apply_snapshot`] first
//! write the next segment (temp file, fsync, rename, fsync the directory)
//! opening with the new snapshot's `Base` and the state after it, then the
//! snapshot file the same way, and only then delete the older segments: a
//! crash at any step leaves the old state or the new one, never a mix (see
//! "Recovery"). A segment also rotates once it
//! passes 64 MiB. So, between calls, the directory holds one snapshot and
//! one segment, and
//!
//! ```text
//! disk use <= snapshot + state after the snapshot when the segment began
//!             + 64 MiB + one record
//! ```
//!
//! (during a rotation, briefly, the older segment too). With compaction
//! every N entries, that is about one snapshot plus two times N entries.
//!
//! # Recovery
//!
//! [`DiskStore::open`] loads the snapshot, then replays from the newest
//! segment whose `Base` is that snapshot (older ones are leftovers of a
//! rotation and are removed). A segment whose `Base` is newer than the
//! snapshot file belongs to an install that a crash cut short before its
//! snapshot file was in place: it is removed and the older segment, with
//! the old snapshot, gives the old state. (If no older segment holds the
//! snapshot's state, the store refuses to open: something is missing.)
//!
//! Directories written before that order (snapshot file first) can hold a
//! newer snapshot than any segment's `Base`: every segment is replayed,
//! entries up to the snapshot are skipped, the snapshot's membership wins
//! over the older records', and the entries after it are kept only if the
//! replayed log holds the snapshot's own entry (same index and term): by
//! Raft's log matching they then continue it (a compaction); otherwise
//! they belong to a log the snapshot replaced (an install) and are dropped.
//!
//! In the **last** segment only, a torn tail is dropped, logged and cut
//! off: a bad record (header cut short, length checksum failing, payload
//! cut short, payload checksum failing) after which no valid record
//! follows, or a hole past the last fsync (below). Any other bad record,
//! and any bad record in an earlier segment, is corruption: the store
//! refuses to open with [`StorageError::Corrupt`], naming the file and the
//! byte offset. Recovery never panics, and never drops a record that was
//! fsynced, as far as the segment can tell (below).
//!
//! # Holes in the tail
//!
//! Writes not yet fsynced can reach the disk in any order, so a power cut
//! can leave a hole (zeroes, stale bytes) with valid records after it.
//! Whatever was written after the last completed fsync was never
//! acknowledged (the driver sends nothing that depends on a write before
//! its fsync returns), so losing it all is safe; losing anything fsynced
//! is not. So the segment records how far it is known fsynced: a segment
//! ends its opening records with `Synced(n)` (it is fsynced before it is
//! renamed into place), and after every fsync that completes (the store's
//! own, or the driver's through [`LogStore::sync_handle`]) the next batch
//! written opens with `Synced(offset the fsync covered)`. At recovery, the
//! highest `Synced` found in any valid record of the last segment, before
//! or after the hole, is `S`:
//!
//! - a hole starting at or after `S` is a torn tail: it and every record
//!   after it are dropped (they all lie past the last fsync known);
//! - a hole before `S` is corruption (bytes known fsynced are damaged);
//! - a segment with no `Synced` (written before these records) treats
//!   every hole with valid records after it as corruption, as before.
//!
//! The limit: the fsync that completed last is only recorded by the next
//! batch, so if the bytes it covered (after the previous `S`) are later
//! damaged by the medium (not by a power cut, which cannot touch fsynced
//! bytes), and no batch was written after it, that damage is taken for a
//! torn tail.

pub mod record;
mod recover;
mod segment;
mod staged;

pub use staged::StagedSnapshot;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState};

use self::record::{EncodeError, Rec};
use self::segment::Wal;
use super::fs::RealFs;
use super::window::Window;
use super::LogStore;

/// A batch of entries larger than this many bytes is split over records.
const CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Why the durable store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file could not be read, written or synced.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (or directory).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record before the tail is damaged: refusing to guess.
    ///
    /// The message never advises restoring the directory from a copy (an
    /// older log under a trusted identity rolls back what the node
    /// acknowledged; peers refuse it) nor emptying it (a node without its
    /// state could vote twice; peers refuse it).
    #[error("{} is corrupt at byte {offset}: {reason}; refusing to start. Keep the directory as it is for diagnosis, and do not restore it from a copy: peers refuse it (an older log would roll back what this node acknowledged). The cluster goes on without this node while a majority of voters is up; to bring this node back, empty its data directory: it then joins as a new member under a new id and never votes under the old one (README, Membership)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record could not be encoded; nothing was written.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An earlier write or fsync failed; the store refuses everything since.
    #[error("the log store failed earlier and accepts nothing more; restart the node")]
    Failed,
}

fn to_raft(e: StorageError) -> raft::Error {
    raft::Error::Store(raft::StorageError::Other(Box::new(e)))
}

fn store_err(e: raft::StorageError) -> raft::Error {
    raft::Error::Store(e)
}

fn hard_rec(hs: &HardState) -> Rec {
    Rec::Hard {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    }
}

/// Encodes entries as records of at most about [`CHUNK_BYTES`] each.
fn encode_entries(entries: &[Entry], out: &mut Vec<u8>) -> raft::Result<()> {
    let mut batch = Vec::new();
    let mut size = 0;
    for e in entries {
        let bytes = e.write_to_bytes().map_err(raft::Error::CodecError)?;
        size += bytes.len();
        batch.push(bytes);
        if size >= CHUNK_BYTES {
            record::encode(&Rec::Entries(std::mem::take(&mut batch)), out)
                .map_err(|e| to_raft(e.into()))?;
            size = 0;
        }
    }
    if !batch.is_empty() {
        record::encode(&Rec::Entries(batch), out).map_err(|e| to_raft(e.into()))?;
    }
    Ok(())
}

/// The opening records of a segment: the whole state after `snapshot`.
fn base_content(
    snapshot: &Snapshot,
    hs: &HardState,
    cs: &ConfState,
    entries: &[Entry],
) -> raft::Result<Vec<u8>> {
    let meta = snapshot.get_metadata();
    let mut buf = Vec::new();
    let base = Rec::Base {
        index: meta.index,
        term: meta.term,
    };
    let cs = cs.write_to_bytes().map_err(raft::Error::CodecError)?;
    for rec in [base, hard_rec(hs), Rec::Conf(cs)] {
        record::encode(&rec, &mut buf).map_err(|e| to_raft(e.into()))?;
    }
    encode_entries(entries, &mut buf)?;
    // The segment is fsynced before it is renamed into place.
    let synced = Rec::Synced(buf.len() as u64);
    record::encode(&synced, &mut buf).map_err(|e| to_raft(e.into()))?;
    Ok(buf)
}

/// The durable Raft log store of one node, in one directory.
///
/// Open it with [`DiskStore::open`]; it implements [`raft::Storage`] (reads,
/// served from memory) and [`LogStore`] (writes, durable before they
/// return). See the [module docs](self) for the format and the guarantees.
#[derive(Debug)]
pub struct DiskStore {
    wal: Wal,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl DiskStore {
    /// Opens (creating if missing) the store in `dir`, recovering from a
    /// crash.
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] if a file cannot be read or written;
    /// [`StorageError::Corrupt`] if a record other than a torn tail is
    /// damaged.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(dir, Arc::new(RealFs))
    }

    /// The hard state last persisted.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The stored snapshot (to restore the lock table at start), or `None`
    /// if the log was never compacted nor given a snapshot.
    pub fn snapshot_data(&self) -> Option<Snapshot> {
        (self.snap_index() > 0).then(|| self.snapshot.clone())
    }

    /// Bytes used on disk by the snapshot file and the current segment.
    pub fn disk_usage(&self) -> u64 {
        self.wal.disk_usage()
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

    fn check(&self) -> raft::Result<()> {
        self.wal.check().map_err(to_raft)
    }

    /// Starts a new segment with the whole state after the snapshot, and
    /// removes the older ones.
    fn rotate(&mut self) -> raft::Result<()> {
        let content = base_content(
            &self.snapshot,
            &self.hard_state,
            &self.conf_state,
            &self.entries,
        )?;
        self.wal.rotate(&content).map_err(to_raft)
    }

    fn rotate_if_full(&mut self) -> raft::Result<()> {
        if self.wal.full() {
            self.rotate()?;
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
        let hs = hs.filter(|hs| **hs != self.hard_state);
        if entries.is_empty() && hs.is_none() {
            return Ok(());
        }
        let mut buf = Vec::new();
        encode_entries(entries, &mut buf)?;
        if let Some(hs) = hs {
            record::encode(&hard_rec(hs), &mut buf).map_err(|e| to_raft(e.into()))?;
        }
        self.wal.append(&buf, sync).map_err(to_raft)?;
        if let Some(keep) = keep {
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hs) = hs {
            self.hard_state = hs.clone();
        }
        self.rotate_if_full()
    }

    /// Makes `self.snapshot` and the state after it durable, atomically
    /// (see [`segment::Wal::install`]).
    fn install(&mut self) -> raft::Result<()> {
        let content = base_content(
            &self.snapshot,
            &self.hard_state,
            &self.conf_state,
            &self.entries,
        )?;
        let bytes = self
            .snapshot
            .write_to_bytes()
            .map_err(raft::Error::CodecError)?;
        let mut framed = Vec::new();
        record::frame(&bytes, &mut framed)
            .ok_or_else(|| to_raft(EncodeError::TooLarge(bytes.len()).into()))?;
        self.wal.install(&content, &framed).map_err(to_raft)
    }

    /// The path of the segment being appended to.
    #[cfg(test)]
    pub(crate) fn segment_path(&self) -> &Path {
        self.wal.path()
    }

    /// Rotates segments past `bytes` instead of 64 MiB.
    #[cfg(test)]
    pub(crate) fn set_segment_limit(&mut self, bytes: u64) {
        self.wal.set_limit(bytes);
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

    /// Writes the entries and the hard state, then fsyncs once; a change of
    /// the commit index alone is written without an fsync (Raft needs
    /// entries, term and vote durable before it answers; the commit index
    /// it can always learn again from the leader).
    fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        let sync = !entries.is_empty()
            || hs.is_some_and(|h| h.term != self.hard_state.term || h.vote != self.hard_state.vote);
        self.write_batch(entries, hs, sync)
    }

    fn write_unsynced(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        self.write_batch(entries, hs, false)
    }

    fn sync_handle(&self) -> Option<Box<dyn super::SyncHandle>> {
        self.wal
            .sync_handle()
            .map(|h| Box::new(h) as Box<dyn super::SyncHandle>)
    }

    /// Written without an fsync of its own (see the module docs, "Durability").
    fn set_commit(&mut self, commit: u64) -> raft::Result<()> {
        self.check()?;
        if commit == self.hard_state.commit {
            return Ok(());
        }
        let mut buf = Vec::new();
        record::encode(&Rec::Commit(commit), &mut buf).map_err(|e| to_raft(e.into()))?;
        self.wal.append(&buf, false).map_err(to_raft)?;
        self.hard_state.commit = commit;
        self.rotate_if_full()
    }

    fn set_conf_state(&mut self, cs: &ConfState) -> raft::Result<()> {
        self.check()?;
        let mut buf = Vec::new();
        let bytes = cs.write_to_bytes().map_err(raft::Error::CodecError)?;
        record::encode(&Rec::Conf(bytes), &mut buf).map_err(|e| to_raft(e.into()))?;
        self.wal.append(&buf, true).map_err(to_raft)?;
        self.conf_state = cs.clone();
        self.rotate_if_full()
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        self.check()?;
        let meta = snapshot.get_metadata();
        if meta.index < self.snap_index() {
            return Err(store_err(raft::StorageError::SnapshotOutOfDate));
        }
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot = snapshot;
        self.install()
    }

    fn stager(&self) -> Option<super::Stager> {
        self.stager_job()
    }

    fn compact_staged(&mut self, snapshot: Snapshot, staged: StagedSnapshot) -> raft::Result<()> {
        self.compact_with(snapshot, Some(staged))
    }

    fn compact(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        self.compact_with(snapshot, None)
    }
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod hole_tests;
#[cfg(test)]
mod tests;
