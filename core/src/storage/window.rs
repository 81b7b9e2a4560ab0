//! The read side both stores share: the last snapshot and the entries after
//! it, held in memory. One copy of the index arithmetic, with raft-rs's
//! `MemStorage` semantics (`first` is the snapshot index + 1, the term of
//! the snapshot index is retained) and errors instead of panics.

use raft::eraftpb::{Entry, Snapshot};
use raft::StorageError;

fn err(e: StorageError) -> raft::Error {
    raft::Error::Store(e)
}

/// A view of a store's snapshot and the entries after it.
pub(crate) struct Window<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) entries: &'a [Entry],
}

impl Window<'_> {
    pub(crate) fn snap_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    pub(crate) fn first(&self) -> u64 {
        self.snap_index() + 1
    }

    pub(crate) fn last(&self) -> u64 {
        self.entries.last().map_or(self.snap_index(), |e| e.index)
    }

    fn pos(&self, idx: u64) -> raft::Result<usize> {
        usize::try_from(idx - self.first()).map_err(|_| err(StorageError::Unavailable))
    }

    pub(crate) fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(err(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(err(StorageError::Unavailable));
        }
        let mut out = self
            .entries
            .get(self.pos(low)?..self.pos(high)?)
            .ok_or(err(StorageError::Unavailable))?
            .to_vec();
        raft::util::limit_size(&mut out, max_size);
        Ok(out)
    }

    pub(crate) fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snap_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(err(StorageError::Compacted));
        }
        self.entries
            .get(self.pos(idx)?)
            .map(|e| e.term)
            .ok_or(err(StorageError::Unavailable))
    }

    pub(crate) fn snapshot(&self, request_index: u64) -> raft::Result<Snapshot> {
        if self.snap_index() < request_index || self.snap_index() == 0 {
            return Err(err(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }

    /// Checks that `new` may be appended: not below the snapshot, no gap.
    /// Returns how many held entries to keep before appending.
    pub(crate) fn keep_before(&self, new: &[Entry]) -> raft::Result<Option<usize>> {
        let Some(first_new) = new.first() else {
            return Ok(None);
        };
        if first_new.index < self.first() {
            return Err(err(StorageError::Compacted));
        }
        if first_new.index > self.last() + 1 {
            return Err(err(StorageError::Unavailable));
        }
        self.pos(first_new.index).map(Some)
    }
}
