//! One conformance suite that every [`LogStore`] must pass, so the
//! in-memory store and the durable store agree with raft-rs's `MemStorage`
//! semantics (`first_index` is the snapshot index + 1, and the term of the
//! entry before it is retained).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage as _, StorageError};

use super::{LogStore, MemStore};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8; 4].into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::Range<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    let mut s = Snapshot {
        data: b"table".to_vec().into(),
        ..Default::default()
    };
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn is_store_err(r: raft::Error, want: StorageError) -> bool {
    matches!(r, raft::Error::Store(e) if e == want)
}

/// Runs every case against fresh stores from `make`.
pub fn run_all<S: LogStore, F: Fn() -> S>(make: F) {
    empty_store(make());
    append_then_read(make());
    append_replaces_conflicting_suffix(make());
    append_with_gap_is_refused(make());
    compact_keeps_term_of_snapshot_index(make());
    apply_snapshot_replaces_log(make());
    hard_state_round_trips(make());
}

fn empty_store<S: LogStore>(s: S) {
    assert_eq!(s.first_index().unwrap(), 1);
    assert_eq!(s.last_index().unwrap(), 0);
    assert_eq!(s.term(0).unwrap(), 0);
    assert!(is_store_err(
        s.term(1).unwrap_err(),
        StorageError::Unavailable
    ));
    assert!(s.snapshot(0, 2).is_err(), "no snapshot to give yet");
}

fn append_then_read<S: LogStore>(mut s: S) {
    s.append(&entries(1..6, 1)).unwrap();
    assert_eq!(s.first_index().unwrap(), 1);
    assert_eq!(s.last_index().unwrap(), 5);
    assert_eq!(s.term(3).unwrap(), 1);
    let got = s.entries(2, 5, None, ctx()).unwrap();
    assert_eq!(
        got.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    // A size limit still returns at least one entry.
    assert_eq!(s.entries(2, 5, Some(0), ctx()).unwrap().len(), 1);
    assert!(is_store_err(
        s.entries(2, 9, None, ctx()).unwrap_err(),
        StorageError::Unavailable
    ));
}

fn append_replaces_conflicting_suffix<S: LogStore>(mut s: S) {
    s.append(&entries(1..6, 1)).unwrap();
    s.append(&entries(3..5, 2)).unwrap();
    assert_eq!(s.last_index().unwrap(), 4);
    assert_eq!(s.term(2).unwrap(), 1);
    assert_eq!(s.term(3).unwrap(), 2);
    assert_eq!(s.term(4).unwrap(), 2);
}

fn append_with_gap_is_refused<S: LogStore>(mut s: S) {
    s.append(&entries(1..3, 1)).unwrap();
    assert!(s.append(&entries(5..6, 1)).is_err());
    assert_eq!(s.last_index().unwrap(), 2);
}

fn compact_keeps_term_of_snapshot_index<S: LogStore>(mut s: S) {
    s.append(&entries(1..11, 3)).unwrap();
    s.compact(snapshot(6, 3)).unwrap();
    assert_eq!(s.first_index().unwrap(), 7);
    assert_eq!(s.last_index().unwrap(), 10);
    assert_eq!(s.term(6).unwrap(), 3);
    assert!(is_store_err(
        s.term(5).unwrap_err(),
        StorageError::Compacted
    ));
    assert!(is_store_err(
        s.entries(5, 8, None, ctx()).unwrap_err(),
        StorageError::Compacted
    ));
    let snap = s.snapshot(6, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 6);
    assert_eq!(&snap.data[..], b"table");
    // Appending below the compaction point is refused, not a panic.
    assert!(s.append(&entries(3..4, 3)).is_err());
    // Compacting to an older point changes nothing.
    s.compact(snapshot(4, 3)).unwrap();
    assert_eq!(s.first_index().unwrap(), 7);
}

fn apply_snapshot_replaces_log<S: LogStore>(mut s: S) {
    s.append(&entries(1..4, 1)).unwrap();
    s.apply_snapshot(snapshot(20, 4)).unwrap();
    assert_eq!(s.first_index().unwrap(), 21);
    assert_eq!(s.last_index().unwrap(), 20);
    assert_eq!(s.term(20).unwrap(), 4);
    let rs = s.initial_state().unwrap();
    assert_eq!(rs.hard_state.commit, 20);
    assert!(rs.hard_state.term >= 4);
    s.append(&entries(21..23, 4)).unwrap();
    assert_eq!(s.last_index().unwrap(), 22);
    assert!(
        s.apply_snapshot(snapshot(10, 4)).is_err(),
        "older snapshot refused"
    );
}

fn hard_state_round_trips<S: LogStore>(mut s: S) {
    let hs = HardState {
        term: 7,
        vote: 3,
        commit: 0,
        ..Default::default()
    };
    s.set_hard_state(&hs).unwrap();
    s.append(&entries(1..3, 7)).unwrap();
    s.set_commit(2).unwrap();
    let rs = s.initial_state().unwrap();
    assert_eq!(
        (rs.hard_state.term, rs.hard_state.vote, rs.hard_state.commit),
        (7, 3, 2)
    );
}

/// For durable stores: runs a history of writes (appends, a conflicting
/// append, hard state, commit, membership, compaction, an installed
/// snapshot), dropping the store and reopening it with `open` after each
/// step, and checks that the reopened store matches an in-memory model in
/// everything Raft reads: first and last index, every term, every entry,
/// hard state, membership and snapshot. `open` must reopen the same
/// (initially empty) location each time. Compactions stay at or below the
/// commit index, as the driver's do (a store may take a snapshot's index
/// as committed when it reopens).
pub fn run_reopen<S: LogStore, O: FnMut() -> S>(mut open: O) {
    let mut model = MemStore::new(ConfState::default());
    let mut step = |what: &str, f: &dyn Fn(&mut dyn Writes)| {
        let mut s = open();
        f(&mut s);
        f(&mut model);
        assert_same(&s, &model, &format!("{what}, before reopening"));
        drop(s);
        assert_same(&open(), &model, &format!("{what}, after reopening"));
    };
    step("nothing written", &|_| {});
    step("membership, entries, hard state", &|s| {
        s.set_conf_state(&voters(&[1, 2, 3])).unwrap();
        s.append(&entries(1..31, 1)).unwrap();
        s.set_hard_state(&hard(2, 1, 10)).unwrap();
    });
    step("a conflicting append and a commit", &|s| {
        s.append(&entries(25..41, 2)).unwrap();
        s.set_commit(30).unwrap();
    });
    step("compaction", &|s| {
        s.compact(snapshot_with(15, 1, &[1, 2, 3])).unwrap();
    });
    step("entries and hard state together", &|s| {
        s.persist(&entries(41..46, 3), Some(&hard(3, 2, 40)))
            .unwrap();
    });
    step("an installed snapshot", &|s| {
        s.apply_snapshot(snapshot_with(60, 4, &[1, 2, 3, 4]))
            .unwrap();
    });
    step("entries after the snapshot, new membership", &|s| {
        s.append(&entries(61..64, 4)).unwrap();
        s.set_hard_state(&hard(4, 4, 63)).unwrap();
        s.set_conf_state(&voters(&[1, 2])).unwrap();
    });
    step("compaction of every entry", &|s| {
        s.compact(snapshot_with(63, 4, &[1, 2])).unwrap();
    });
    step("appends after it", &|s| {
        s.append(&entries(64..66, 5)).unwrap();
    });
}

/// The write side, object-safe, for [`run_reopen`]'s steps.
trait Writes {
    fn append(&mut self, e: &[Entry]) -> raft::Result<()>;
    fn persist(&mut self, e: &[Entry], hs: Option<&HardState>) -> raft::Result<()>;
    fn set_hard_state(&mut self, hs: &HardState) -> raft::Result<()>;
    fn set_commit(&mut self, c: u64) -> raft::Result<()>;
    fn set_conf_state(&mut self, cs: &ConfState) -> raft::Result<()>;
    fn compact(&mut self, s: Snapshot) -> raft::Result<()>;
    fn apply_snapshot(&mut self, s: Snapshot) -> raft::Result<()>;
}

impl<S: LogStore> Writes for S {
    fn append(&mut self, e: &[Entry]) -> raft::Result<()> {
        LogStore::append(self, e)
    }
    fn persist(&mut self, e: &[Entry], hs: Option<&HardState>) -> raft::Result<()> {
        LogStore::persist(self, e, hs)
    }
    fn set_hard_state(&mut self, hs: &HardState) -> raft::Result<()> {
        LogStore::set_hard_state(self, hs)
    }
    fn set_commit(&mut self, c: u64) -> raft::Result<()> {
        LogStore::set_commit(self, c)
    }
    fn set_conf_state(&mut self, cs: &ConfState) -> raft::Result<()> {
        LogStore::set_conf_state(self, cs)
    }
    fn compact(&mut self, s: Snapshot) -> raft::Result<()> {
        LogStore::compact(self, s)
    }
    fn apply_snapshot(&mut self, s: Snapshot) -> raft::Result<()> {
        LogStore::apply_snapshot(self, s)
    }
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..Default::default()
    }
}

fn hard(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn snapshot_with(index: u64, term: u64, ids: &[u64]) -> Snapshot {
    let mut s = snapshot(index, term);
    s.mut_metadata().set_conf_state(voters(ids));
    s
}

/// Asserts that `s` reads exactly like `model`.
fn assert_same<S: LogStore>(s: &S, model: &MemStore, when: &str) {
    let first = model.first_index().unwrap();
    let last = model.last_index().unwrap();
    assert_eq!(s.first_index().unwrap(), first, "first index, {when}");
    assert_eq!(s.last_index().unwrap(), last, "last index, {when}");
    for i in first - 1..=last {
        assert_eq!(
            s.term(i).unwrap(),
            model.term(i).unwrap(),
            "term({i}), {when}"
        );
    }
    assert_eq!(
        s.entries(first, last + 1, None, ctx()).unwrap(),
        model.entries(first, last + 1, None, ctx()).unwrap(),
        "entries, {when}"
    );
    let (got, want) = (s.initial_state().unwrap(), model.initial_state().unwrap());
    assert_eq!(got.hard_state, want.hard_state, "hard state, {when}");
    assert_eq!(got.conf_state, want.conf_state, "membership, {when}");
    match (s.snapshot(0, 2), model.snapshot(0, 2)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "snapshot, {when}"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("snapshot, {when}: store {a:?}, model {b:?}"),
    }
}
