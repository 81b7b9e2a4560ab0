//! Raft log storage behind raft-rs's `Storage` trait.
//!
//! The driver reads through `raft::Storage` (that is what `RawNode` needs)
//! and writes through [`LogStore`], in the order raft-rs documents: append
//! entries and persist the hard state before sending the messages that
//! depend on them.

pub mod disk;
pub mod fs;
pub mod memory;
mod node_store;
mod window;

#[cfg(any(test, feature = "sim"))]
pub mod conformance;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

pub use disk::{DiskStore, StagedSnapshot, StorageError};
pub use memory::MemStore;
pub use node_store::NodeStore;

/// A handle that makes the writes made before it durable when synced: the
/// log file's (an `fdatasync`), or the simulator's disk.
pub trait SyncHandle: Send {
    /// Makes every write made before this call durable.
    fn sync(&self) -> std::io::Result<()>;
}

impl SyncHandle for std::fs::File {
    fn sync(&self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// The write side of a Raft log store.
pub trait LogStore: raft::Storage {
    /// Appends `entries`, replacing any existing suffix they conflict with.
    fn append(&mut self, entries: &[Entry]) -> raft::Result<()>;
    /// Records the hard state (term, vote, commit).
    fn set_hard_state(&mut self, hs: &HardState) -> raft::Result<()>;
    /// Appends `entries` and records `hs` together; a durable store makes
    /// both durable with one fsync (the driver calls this once per Ready,
    /// so every proposal batched into that Ready shares it).
    fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        self.append(entries)?;
        match hs {
            Some(hs) => self.set_hard_state(hs),
            None => Ok(()),
        }
    }
    /// Whether writes block on the disk (fsync). The driver then writes
    /// with [`LogStore::write_unsynced`] and fsyncs on a thread of its own
    /// through [`LogStore::sync_handle`].
    fn blocks(&self) -> bool {
        false
    }
    /// Like [`LogStore::persist`] but without waiting for the disk: the
    /// caller makes the write durable by syncing [`LogStore::sync_handle`]
    /// before relying on it. Reads see the new entries at once.
    fn write_unsynced(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        self.persist(entries, hs)
    }
    /// A handle on the file that [`LogStore::write_unsynced`] wrote to, for
    /// an fsync elsewhere; `None` for a store with nothing to sync.
    fn sync_handle(&self) -> Option<Box<dyn SyncHandle>> {
        None
    }
    /// Records a new commit index only. A durable store may write it
    /// without an fsync of its own: Raft can learn the commit index again
    /// from the leader, so it rides along with the next fsync.
    fn set_commit(&mut self, commit: u64) -> raft::Result<()>;
    /// Records the membership.
    fn set_conf_state(&mut self, cs: &ConfState) -> raft::Result<()>;
    /// Replaces the log with a snapshot received from the leader.
    fn apply_snapshot(&mut self, snapshot: Snapshot) -> raft::Result<()>;
    /// Stores `snapshot` (taken locally at an applied index) and drops the
    /// log entries it covers.
    fn compact(&mut self, snapshot: Snapshot) -> raft::Result<()>;
    /// A job that writes a snapshot's file ahead of its compaction
    /// ([`LogStore::compact_staged`]), for a thread other than the driver's:
    /// the write and fsync of a large table's file would stall it (issue
    /// 10). `None` for a store without files: the driver then calls
    /// [`LogStore::compact`].
    fn stager(&self) -> Option<Stager> {
        None
    }
    /// [`LogStore::compact`] of a snapshot whose file a [`Stager`] job of
    /// this store already wrote.
    fn compact_staged(&mut self, snapshot: Snapshot, staged: StagedSnapshot) -> raft::Result<()> {
        drop(staged);
        self.compact(snapshot)
    }
}

/// Writes a snapshot's file, durably, under a temporary name (see
/// [`LogStore::stager`]).
pub type Stager = Box<dyn FnOnce(&Snapshot) -> raft::Result<StagedSnapshot> + Send>;
