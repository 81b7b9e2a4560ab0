//! The simulated disk: a log store whose writes are volatile until
//! fsynced, so a crash loses what the driver had not made durable.
//!
//! The store in use ([`SimStore`]) is a [`MemStore`] in front of a
//! [`SimDisk`] that keeps two things: the durable image (what survived
//! every fsync) and the writes since the last fsync, in order. A crash keeps
//! the durable image plus a random prefix of those writes: the disk may
//! have written some of them on its own, in order, and a write cut in the
//! middle is a torn record, which recovery drops (the real store's torn-tail
//! rule, tested in `storage::disk`). A restart opens the store from that.
//!
//! Writes the real store makes durable at once (membership, snapshots,
//! compaction) are durable at once here too; entries and hard state
//! written with [`LogStore::write_unsynced`] wait for the driver's fsync
//! (a [`SyncHandle`], run on the runtime by the simulator), and the commit
//! index rides along with the next fsync.

use std::sync::Arc;

use parking_lot::Mutex;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::rng::Rng;
use crate::storage::{LogStore, MemStore, SyncHandle};

#[derive(Clone, Debug)]
enum Op {
    Write(Vec<Entry>, Option<HardState>),
    Commit(u64),
    Conf(ConfState),
    InstallSnapshot(Snapshot),
    Compact(Snapshot),
}

#[derive(Debug, Default)]
struct DiskState {
    durable: Option<MemStore>,
    /// Writes not yet fsynced, numbered.
    pending: Vec<(u64, Op)>,
    /// The number of the last write.
    written: u64,
    /// Bumped by each crash: fsyncs begun before it do nothing.
    epoch: u64,
    /// While set, every write fails (a storage failure).
    failing: bool,
    fsyncs: u64,
    /// The data directory's `left` mark (durable at once, as the real one
    /// is fsynced): the node left the membership or was removed, and its
    /// next start wipes everything and joins under a new id.
    left: bool,
}

/// One node's disk; survives the node's crashes.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

fn apply(store: &mut MemStore, op: &Op) -> raft::Result<()> {
    match op {
        Op::Write(entries, hs) => store.persist(entries, hs.as_ref()),
        Op::Commit(c) => store.set_commit(*c),
        Op::Conf(cs) => store.set_conf_state(cs),
        Op::InstallSnapshot(s) => store.apply_snapshot(s.clone()),
        Op::Compact(s) => store.compact(s.clone()),
    }
}

impl DiskState {
    /// Makes the writes numbered up to `upto` durable.
    fn sync(&mut self, upto: u64) {
        let keep = self.pending.iter().take_while(|(n, _)| *n <= upto).count();
        let done: Vec<(u64, Op)> = self.pending.drain(..keep).collect();
        if let Some(durable) = self.durable.as_mut() {
            for (_, op) in &done {
                if let Err(e) = apply(durable, op) {
                    tracing::error!(error = %e, "simulated disk: a synced write does not apply");
                }
            }
        }
        self.fsyncs += 1;
    }
}

impl SimDisk {
    /// A blank disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process died: keep the durable image and a random prefix of the
    /// writes not yet fsynced; fsyncs still in flight do nothing.
    pub fn crash(&self, rng: &mut Rng) {
        let mut st = self.state.lock();
        st.epoch += 1;
        let keep = rng.below(st.pending.len() as u64 + 1) as usize;
        let pending = std::mem::take(&mut st.pending);
        if let Some(durable) = st.durable.as_mut() {
            for (_, op) in pending.iter().take(keep) {
                // A write that does not apply was torn: recovery drops it
                // and everything after it.
                if apply(durable, op).is_err() {
                    break;
                }
            }
        }
    }

    /// Makes every write fail (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().failing = failing;
    }

    /// Writes the `left` mark (a graceful leave finished, or the cluster
    /// answered `Removed`): the next start is blank (the facade's
    /// `data_dir.rs` wipes a directory so marked).
    pub fn mark_left(&self) {
        self.state.lock().left = true;
    }

    /// Whether the `left` mark is on this disk.
    pub fn is_left(&self) -> bool {
        self.state.lock().left
    }

    /// How many fsyncs completed.
    pub fn fsyncs(&self) -> u64 {
        self.state.lock().fsyncs
    }

    /// Opens the store from what is durable; a blank disk starts with the
    /// membership `cs` (made durable at once, as the real store does).
    pub fn open(&self, cs: ConfState) -> SimStore {
        let mut st = self.state.lock();
        let durable = st.durable.get_or_insert_with(|| MemStore::new(cs)).clone();
        SimStore {
            live: durable,
            disk: self.clone(),
            epoch: st.epoch,
        }
    }
}

/// A node's log store on a [`SimDisk`].
#[derive(Debug)]
pub struct SimStore {
    live: MemStore,
    disk: SimDisk,
    epoch: u64,
}

fn failed() -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(std::io::Error::other(
        "simulated storage failure",
    ))))
}

impl SimStore {
    /// Records `op` as written but not durable.
    fn write(&mut self, op: Op) -> raft::Result<()> {
        let mut st = self.disk.state.lock();
        if st.failing || st.epoch != self.epoch {
            return Err(failed());
        }
        apply(&mut self.live, &op)?;
        st.written += 1;
        let n = st.written;
        st.pending.push((n, op));
        Ok(())
    }

    /// Makes every write so far durable now.
    fn sync_now(&self) -> raft::Result<()> {
        let mut st = self.disk.state.lock();
        if st.failing || st.epoch != self.epoch {
            return Err(failed());
        }
        let upto = st.written;
        st.sync(upto);
        Ok(())
    }

    /// A write the real store makes durable at once.
    fn durable(&mut self, op: Op) -> raft::Result<()> {
        self.write(op)?;
        self.sync_now()
    }
}

impl raft::Storage for SimStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.live.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.live.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.live.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.live.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.live.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.live.snapshot(request_index, to)
    }
}

/// The fsync of one store's writes up to a point.
struct SimSync {
    disk: SimDisk,
    epoch: u64,
    /// The last write the fsync covers.
    upto: u64,
}

impl SyncHandle for SimSync {
    fn sync(&self) -> std::io::Result<()> {
        let mut st = self.disk.state.lock();
        if st.epoch != self.epoch {
            return Ok(()); // the process died; nothing is synced
        }
        if st.failing {
            return Err(std::io::Error::other("simulated fsync failure"));
        }
        st.sync(self.upto);
        Ok(())
    }
}

impl LogStore for SimStore {
    fn append(&mut self, entries: &[Entry]) -> raft::Result<()> {
        self.write(Op::Write(entries.to_vec(), None))?;
        self.sync_now()
    }

    fn set_hard_state(&mut self, hs: &HardState) -> raft::Result<()> {
        self.write(Op::Write(Vec::new(), Some(hs.clone())))?;
        self.sync_now()
    }

    fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        self.write(Op::Write(entries.to_vec(), hs.cloned()))?;
        self.sync_now()
    }

    fn blocks(&self) -> bool {
        true
    }

    fn write_unsynced(&mut self, entries: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        self.write(Op::Write(entries.to_vec(), hs.cloned()))
    }

    fn sync_handle(&self) -> Option<Box<dyn SyncHandle>> {
        Some(Box::new(SimSync {
            disk: self.disk.clone(),
            epoch: self.epoch,
            upto: self.disk.state.lock().written,
        }))
    }

    fn set_commit(&mut self, commit: u64) -> raft::Result<()> {
        self.write(Op::Commit(commit))
    }

    fn set_conf_state(&mut self, cs: &ConfState) -> raft::Result<()> {
        self.durable(Op::Conf(cs.clone()))
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        self.durable(Op::InstallSnapshot(snapshot))
    }

    fn compact(&mut self, snapshot: Snapshot) -> raft::Result<()> {
        self.durable(Op::Compact(snapshot))
    }
}
