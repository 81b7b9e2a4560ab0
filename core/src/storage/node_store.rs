//! The one store type the node starts on: in memory or on disk.
//!
//! Why an enum and not the two types: the Raft driver (`Driver<S>`) and
//! raft-rs's `RawNode<S>` are generic over their store, so starting nodes
//! on both [`MemStore`] and [`DiskStore`] compiled the whole driver and
//! raft-rs twice into every application, about 0.3 MiB of machine code
//! (issue 12, item 9). One type, chosen at start, compiles them once. The
//! cost is a `match` on two variants per storage call, which the branch
//! predictor always gets right (a node never changes store), beside the
//! `Vec` copies and fsyncs each call makes.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState};

#[cfg(feature = "disk")]
use super::DiskStore;
use super::{LogStore, MemStore, StagedSnapshot, Stager, SyncHandle};

/// A Raft log store that is either in memory or on disk; every call goes
/// to the store it holds.
pub enum NodeStore {
    /// The log in memory (`.in_memory()` nodes and tests).
    Memory(MemStore),
    /// The durable log in a data directory (feature `disk`).
    #[cfg(feature = "disk")]
    Disk(DiskStore),
}

/// Calls `$call` on the store `$s` holds.
macro_rules! each {
    ($s:expr, $st:ident => $call:expr) => {
        match $s {
            NodeStore::Memory($st) => $call,
            #[cfg(feature = "disk")]
            NodeStore::Disk($st) => $call,
        }
    };
}

impl raft::Storage for NodeStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        each!(self, s => s.initial_state())
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into();
        each!(self, s => s.entries(low, high, max_size, context))
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        each!(self, s => s.term(idx))
    }

    fn first_index(&self) -> raft::Result<u64> {
        each!(self, s => s.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        each!(self, s => s.last_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        each!(self, s => s.snapshot(request_index, to))
    }
}

impl LogStore for NodeStore {
    fn append(&mut self, entries: &[Entry]) -> raft::Result<()> {
        each!(self, s => s.append(entries))
    }

    fn set_hard_state(&mut self, hs: &HardState) -> raft::Result<()> {
        each!(self, s => s.set_hard_state(hs))
    }

    fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        each!(self, s => s.persist(entries, hs))
    }

    fn blocks(&self) -> bool {
        each!(self, s => s.blocks())
    }

    fn write_unsynced(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        each!(self, s => s.write_unsynced(entries, hs))
    }

    fn sync_handle(&self) -> Option<Box<dyn SyncHandle>> {
        each!(self, s => s.sync_handle())
    }

    fn set_commit(&mut self, commit: u64) -> raft::Result<()> {
        each!(self, s => s.set_commit(commit))
    }

    fn set_conf_state(&mut self, cs: &ConfState) -> raft::Result<()> {
        each!(self, s => s.set_conf_state(cs))
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        each!(self, s => s.apply_snapshot(snapshot))
    }

    fn compact(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        each!(self, s => s.compact(snapshot))
    }

    fn stager(&self) -> Option<Stager> {
        each!(self, s => s.stager())
    }

    fn compact_staged(&mut self, snapshot: Snapshot, staged: StagedSnapshot) -> raft::Result<()> {
        each!(self, s => s.compact_staged(snapshot, staged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_variant_passes_the_conformance_suite() {
        super::super::conformance::run_all(|| {
            NodeStore::Memory(MemStore::new(ConfState::default()))
        });
    }

    #[cfg(feature = "disk")]
    #[test]
    fn disk_variant_passes_the_conformance_suite() {
        let dirs = std::cell::RefCell::new(Vec::new());
        super::super::conformance::run_all(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = DiskStore::open(dir.path()).expect("open store");
            dirs.borrow_mut().push(dir);
            NodeStore::Disk(store)
        });
    }

    #[test]
    fn blocks_and_sync_handle_follow_the_store_held() {
        let mem = NodeStore::Memory(MemStore::new(ConfState::default()));
        assert!(!mem.blocks());
        assert!(mem.sync_handle().is_none());
        assert!(mem.stager().is_none());
        #[cfg(feature = "disk")]
        {
            let dir = tempfile::tempdir().expect("temp dir");
            let disk = NodeStore::Disk(DiskStore::open(dir.path()).expect("open store"));
            assert!(disk.blocks());
            assert!(disk.sync_handle().is_some());
            assert!(disk.stager().is_some());
        }
    }
}
