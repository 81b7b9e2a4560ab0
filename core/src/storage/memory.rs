//! The in-memory log store, for tests and for `.in_memory()` nodes.
//!
//! Unlike raft-rs's `MemStorage`, it keeps the lock table's snapshot bytes,
//! so a follower that fell behind a compaction is caught up by snapshot.
//! Semantics match raft-rs's `MemStorage`: `first_index` is the snapshot
//! index + 1 and `term(first_index - 1)` is the snapshot's term. Bad
//! requests return raft errors instead of panicking.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

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

    fn snap_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.snap_index() + 1
    }

    fn last(&self) -> u64 {
        self.entries.last().map_or(self.snap_index(), |e| e.index)
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
        if low < self.first() {
            return Err(store_err(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(store_err(StorageError::Unavailable));
        }
        let offset = self.first();
        let lo = usize::try_from(low - offset).map_err(|_| store_err(StorageError::Unavailable))?;
        let hi =
            usize::try_from(high - offset).map_err(|_| store_err(StorageError::Unavailable))?;
        let mut out = self
            .entries
            .get(lo..hi)
            .ok_or(store_err(StorageError::Unavailable))?
            .to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snap_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(store_err(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(store_err(StorageError::Unavailable));
        }
        let pos = usize::try_from(idx - self.first())
            .map_err(|_| store_err(StorageError::Unavailable))?;
        self.entries
            .get(pos)
            .map(|e| e.term)
            .ok_or(store_err(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snap_index() < request_index || self.snap_index() == 0 {
            return Err(store_err(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

impl LogStore for MemStore {
    fn append(&mut self, entries: &[Entry]) -> raft::Result<()> {
        let Some(first_new) = entries.first() else {
            return Ok(());
        };
        if first_new.index < self.first() {
            return Err(store_err(StorageError::Compacted));
        }
        if first_new.index > self.last() + 1 {
            return Err(store_err(StorageError::Unavailable));
        }
        let keep = usize::try_from(first_new.index - self.first())
            .map_err(|_| store_err(StorageError::Unavailable))?;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
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
        if index > self.last() {
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
