//! The in-memory log store, for tests and for `.in_memory()` nodes.
//!
//! Unlike raft-rs's `MemStorage`, it keeps the lock table's snapshot bytes,
//! so a follower that fell behind a compaction is caught up by snapshot.
//! Semantics match raft-rs's `MemStorage`: `first_index` is the snapshot
//! index + 1 and `term(first_index - 1)` is the snapshot's term. Bad
//! requests return raft errors instead of panicking.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::window::Window;
use super::LogStore;

/// Raft hard state, membership, log and last snapshot, in memory.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl MemStore {
    /// A store whose log is empty and whose initial membership is `conf_state`.
    pub fn new(conf_state: ConfState) -> Self {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().set_conf_state(conf_state.clone());
        Self {
            hard_state: HardState::default(),
            conf_state,
            snapshot,
            entries: Vec::new(),
        }
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

    /// The hard state last recorded.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The number of entries held (not yet compacted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn store_err(e: StorageError) -> raft::Error {
    raft::Error::Store(e)
}

impl raft::Storage for MemStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
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
        self.window().entries(low, high, max_size.into())
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.window().term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.window().first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.window().last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        self.window().snapshot(request_index)
    }
}

impl LogStore for MemStore {
    fn append(&mut self, entries: &[Entry]) -> raft::Result<()> {
        if let Some(keep) = self.window().keep_before(entries)? {
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
        Ok(())
    }

    fn set_hard_state(&mut self, hs: &HardState) -> raft::Result<()> {
        self.hard_state = hs.clone();
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> raft::Result<()> {
        self.hard_state.commit = commit;
        Ok(())
    }

    fn set_conf_state(&mut self, cs: &ConfState) -> raft::Result<()> {
        self.conf_state = cs.clone();
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        let meta = snapshot.get_metadata();
        if meta.index < self.snap_index() {
            return Err(store_err(StorageError::SnapshotOutOfDate));
        }
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot = snapshot;
        Ok(())
    }

    fn compact(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        let index = snapshot.get_metadata().index;
        if index <= self.snap_index() {
            return Ok(());
        }
        if index > self.window().last() {
            return Err(store_err(StorageError::Unavailable));
        }
        let drop = usize::try_from(index - self.snap_index())
            .map_err(|_| store_err(StorageError::Unavailable))?;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = snapshot;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(|| MemStore::new(ConfState::default()));
    }
}
