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

use raft::eraftpb::{Entry, HardState, Snapshot};
use raft::{GetEntriesContext, StorageError};

use super::LogStore;

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
