//! The durable store: conformance, reopen, crash points, injected faults,
//! crashes in the middle of a compaction, bounded disk use.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage as _};

use super::record::{self, End};
use super::*;
use crate::storage::conformance;
use crate::storage::fs::FaultyFs;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![7u8; 32].into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..Default::default()
    }
}

fn snap(index: u64, term: u64, cs: &ConfState) -> Snapshot {
    let mut s = Snapshot {
        data: b"table".to_vec().into(),
        ..Default::default()
    };
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().set_conf_state(cs.clone());
    s
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn all_entries(s: &DiskStore) -> Vec<Entry> {
    let (first, last) = (s.first_index().unwrap(), s.last_index().unwrap());
    s.entries(first, last + 1, None, ctx()).unwrap()
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(ext))
        .collect();
    v.sort();
    v
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    files(dir, ".wal")
}

fn faulty(dir: &Path) -> (DiskStore, Arc<FaultyFs>) {
    let fs = Arc::new(FaultyFs::new());
    let s = DiskStore::open_with(dir, fs.clone()).unwrap();
    (s, fs)
}

/// Where each record of a segment file starts.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    assert_eq!(record::scan(bytes, |at, _| v.push(at)), End::Clean);
    v
}

#[test]
fn disk_store_passes_the_conformance_suite() {
    let dirs: std::cell::RefCell<Vec<tempfile::TempDir>> = Default::default();
    conformance::run_all(|| {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path()).unwrap();
        dirs.borrow_mut().push(d);
        s
    });
}

#[test]
fn disk_store_passes_the_reopen_suite() {
    let d = tempfile::tempdir().unwrap();
    conformance::run_reopen(|| DiskStore::open(d.path()).unwrap());
    assert_eq!(segments(d.path()).len(), 1);
}

#[test]
fn everything_survives_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    let hs = HardState {
        term: 2,
        vote: 3,
        commit: 40,
        ..Default::default()
    };
    let written = {
        let mut s = DiskStore::open(d.path()).unwrap();
        assert!(s.snapshot_data().is_none());
        s.set_conf_state(&voters(&[1, 2, 3])).unwrap();
        s.persist(&entries(1..=50, 2), Some(&hs)).unwrap();
        s.compact(snap(20, 2, &voters(&[1, 2, 3]))).unwrap();
        s.persist(&[entry(51, 3), entry(52, 3)], None).unwrap();
        s.set_commit(52).unwrap();
        all_entries(&s)
    };
    let s = DiskStore::open(d.path()).unwrap();
    assert_eq!(s.first_index().unwrap(), 21);
    assert_eq!(s.last_index().unwrap(), 52);
    assert_eq!(s.term(20).unwrap(), 2);
    assert_eq!(s.term(52).unwrap(), 3);
    assert_eq!(*s.hard_state(), HardState { commit: 52, ..hs });
    let rs = s.initial_state().unwrap();
    assert_eq!(rs.hard_state, *s.hard_state());
    assert_eq!(rs.conf_state.voters, vec![1, 2, 3]);
    let stored = s.snapshot_data().unwrap();
    assert_eq!(
        (stored.get_metadata().index, &stored.data[..]),
        (20, &b"table"[..])
    );
    assert_eq!(all_entries(&s), written);
}

/// Writes three batches; returns the segment and where the last batch
/// starts (with a `Synced` record, then the entries).
fn three_batches(dir: &Path) -> (PathBuf, u64, Vec<Entry>) {
    let mut s = DiskStore::open(dir).unwrap();
    s.persist(&[entry(1, 1), entry(2, 1)], None).unwrap();
    s.persist(&[entry(3, 1)], None).unwrap();
    let kept = all_entries(&s);
    let seg = s.segment_path().to_owned();
    let before = fs::metadata(&seg).unwrap().len();
    s.persist(&[entry(4, 1), entry(5, 1)], None).unwrap();
    (seg, before, kept)
}

#[test]
fn a_cut_at_every_offset_of_the_last_record_loses_only_that_record() {
    let d = tempfile::tempdir().unwrap();
    let (seg, last, kept) = three_batches(d.path());
    let full = fs::read(&seg).unwrap();
    for cut in last..full.len() as u64 {
        fs::write(&seg, &full[..cut as usize]).unwrap();
        let s = DiskStore::open(d.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(all_entries(&s), kept, "cut at {cut}");
        drop(s);
        // Cut off at the last whole record: the batch's `Synced` may stay.
        let len = fs::metadata(&seg).unwrap().len();
        let starts = record_starts(&full);
        let want = starts
            .iter()
            .rev()
            .find(|s| **s as u64 <= cut)
            .copied()
            .unwrap() as u64;
        assert!(len >= last, "cut at {cut}");
        assert_eq!(len, want, "torn tail cut off");
    }
    // The whole file opens with every record, and the store goes on
    // appending after a cut.
    fs::write(&seg, &full).unwrap();
    assert_eq!(DiskStore::open(d.path()).unwrap().last_index().unwrap(), 5);
    fs::write(&seg, &full[..last as usize]).unwrap();
    let mut s = DiskStore::open(d.path()).unwrap();
    s.persist(&[entry(4, 2)], None).unwrap();
    drop(s);
    assert_eq!(DiskStore::open(d.path()).unwrap().term(4).unwrap(), 2);
}

#[test]
fn a_flipped_byte_in_the_last_record_drops_it_and_earlier_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (seg, last, kept) = three_batches(d.path());
    let full = fs::read(&seg).unwrap();
    for i in last as usize..full.len() {
        let mut b = full.clone();
        b[i] ^= 0x10;
        fs::write(&seg, &b).unwrap();
        let s = DiskStore::open(d.path()).unwrap_or_else(|e| panic!("flip at {i}: {e}"));
        assert_eq!(all_entries(&s), kept, "flip at {i}");
    }
    // Every byte of every earlier record: refused, naming the file and
    // where the damaged record starts.
    let starts = record_starts(&full);
    for i in 0..last as usize {
        let mut b = full.clone();
        b[i] ^= 0x10;
        fs::write(&seg, &b).unwrap();
        let start = starts.iter().rev().find(|s| **s <= i).copied().unwrap() as u64;
        match DiskStore::open(d.path()) {
            Err(StorageError::Corrupt { path, offset, .. }) => {
                assert_eq!((path, offset), (seg.clone(), start), "flip at {i}");
            }
            other => panic!("flip at {i} must be refused, got {other:?}"),
        }
    }
}

#[test]
fn a_bad_tail_in_a_segment_before_the_last_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (seg, last, _) = three_batches(d.path());
    let full = fs::read(&seg).unwrap();
    // A newer segment (here an empty one) makes this one not the last.
    fs::write(d.path().join("0000000000000099.wal"), b"").unwrap();
    fs::write(&seg, &full[..full.len() - 1]).unwrap();
    let last_record = *record_starts(&full).last().unwrap() as u64;
    assert!(last_record >= last);
    match DiskStore::open(d.path()) {
        Err(StorageError::Corrupt { path, offset, .. }) => {
            assert_eq!((path, offset), (seg, last_record))
        }
        other => panic!("must be refused, got {other:?}"),
    }
}

#[test]
fn a_segment_newer_than_the_snapshot_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut s = DiskStore::open(d.path()).unwrap();
    s.persist(&entries(1..=5, 1), None).unwrap();
    s.compact(snap(3, 1, &voters(&[1]))).unwrap();
    let seg = s.segment_path().to_owned();
    drop(s);
    fs::remove_file(d.path().join("snapshot")).unwrap();
    match DiskStore::open(d.path()) {
        Err(StorageError::Corrupt { path, .. }) => assert_eq!(path, seg),
        other => panic!("must be refused, got {other:?}"),
    }
}

#[test]
fn an_fsync_failure_fails_the_store_for_good() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, fs) = faulty(d.path());
    s.persist(&[entry(1, 1)], None).unwrap();
    fs.fail_next_sync();
    assert!(s.persist(&[entry(2, 1)], None).is_err());
    fs.heal();
    assert!(
        s.persist(&[entry(2, 1)], None).is_err(),
        "no retry after a failed fsync"
    );
    assert!(s.set_commit(1).is_err());
    assert!(s.set_conf_state(&voters(&[1])).is_err());
    assert!(s.compact(snap(1, 1, &voters(&[1]))).is_err());
    assert!(s.last_index().is_err());
    assert!(s.term(1).is_err());
    assert!(s.initial_state().is_err());
    assert!(s.entries(1, 2, None, ctx()).is_err());
    let Err(raft::Error::Store(raft::StorageError::Other(e))) = s.first_index() else {
        panic!("a failed store says so");
    };
    assert!(matches!(
        e.downcast_ref::<StorageError>(),
        Some(StorageError::Failed)
    ));
    drop(s);
    // What reached the file before the failed fsync may or may not be there.
    let s = DiskStore::open(d.path()).unwrap();
    assert!((1..=2).contains(&s.last_index().unwrap()));
}

#[test]
fn a_torn_write_fails_the_store_and_recovery_drops_it() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, fs) = faulty(d.path());
    s.persist(&entries(1..=3, 1), None).unwrap();
    fs.fail_after_writes(0);
    assert!(s.persist(&entries(4..=6, 1), None).is_err());
    fs.heal();
    assert!(s.set_hard_state(&HardState::default()).is_err());
    drop(s);
    let s = DiskStore::open(d.path()).unwrap();
    assert_eq!(s.last_index().unwrap(), 3);
}

/// The new segment is written first, then the snapshot file: a write torn
/// in the snapshot file leaves the old state (the new segment's `Base` is
/// newer than the snapshot file, so recovery removes it). Every crash
/// point is in `crash_tests`.
#[test]
fn a_crash_between_segment_and_snapshot_leaves_the_old_state() {
    for install in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let cs = voters(&[1, 2]);
        let (mut s, fs) = faulty(d.path());
        s.set_conf_state(&cs).unwrap();
        s.persist(&entries(1..=10, 2), None).unwrap();
        let want = all_entries(&s);
        // The segment is written; writing the snapshot file tears.
        fs.fail_after_writes(1);
        let r = if install {
            s.apply_snapshot(snap(8, 3, &voters(&[1, 2, 3])))
        } else {
            s.compact(snap(6, 2, &cs))
        };
        assert!(r.is_err());
        assert!(s.last_index().is_err());
        drop(s);
        assert_eq!(segments(d.path()).len(), 2, "the new segment is in place");
        let s = DiskStore::open(d.path()).unwrap();
        assert_eq!(all_entries(&s), want);
        assert!(s.snapshot_data().is_none());
        assert_eq!(s.initial_state().unwrap().conf_state, cs);
        assert!(files(d.path(), ".tmp").is_empty());
        assert_eq!(segments(d.path()).len(), 1, "the unfinished one is gone");
    }
}

#[test]
fn a_failed_snapshot_rename_leaves_the_old_state() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, fs) = faulty(d.path());
    s.persist(&entries(1..=5, 1), None).unwrap();
    fs.fail_next_rename();
    assert!(s.compact(snap(3, 1, &voters(&[1]))).is_err());
    assert!(s.append(&entries(6..=6, 1)).is_err());
    drop(s);
    let s = DiskStore::open(d.path()).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 5));
    assert!(s.snapshot_data().is_none());
    assert!(files(d.path(), ".tmp").is_empty());
}

#[test]
fn a_full_segment_rotates_and_the_old_one_goes() {
    let d = tempfile::tempdir().unwrap();
    let mut s = DiskStore::open(d.path()).unwrap();
    s.set_segment_limit(4096);
    let first = s.segment_path().to_owned();
    for i in 1..=200 {
        s.persist(&[entry(i, 1)], None).unwrap();
    }
    assert_ne!(s.segment_path(), first);
    assert_eq!(segments(d.path()), vec![s.segment_path().to_owned()]);
    let written = all_entries(&s);
    drop(s);
    assert_eq!(all_entries(&DiskStore::open(d.path()).unwrap()), written);
}

fn bytes_on_disk(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn compaction_keeps_disk_use_bounded() {
    // Each entry (32 bytes of data) takes under 64 bytes on disk. Between
    // compactions: 1 000 new entries on top of the 10 kept after the last
    // one, the snapshot, and the records opening the segment.
    const BOUND: u64 = (1_000 + 10) * 64 + 4096;
    let d = tempfile::tempdir().unwrap();
    let mut s = DiskStore::open(d.path()).unwrap();
    let mut index = 0;
    let mut peak = 0;
    for round in 0..10u64 {
        for _ in 0..10 {
            let batch = entries(index + 1..=index + 100, 1);
            index += 100;
            s.persist(&batch, None).unwrap();
            peak = peak.max(s.disk_usage());
            assert_eq!(s.disk_usage(), bytes_on_disk(d.path()), "round {round}");
        }
        s.compact(snap(index - 10, 1, &voters(&[1]))).unwrap();
        assert_eq!(segments(d.path()).len(), 1, "round {round}");
        assert_eq!(s.disk_usage(), bytes_on_disk(d.path()), "round {round}");
    }
    assert!(peak < BOUND, "peak disk use {peak} bytes, bound {BOUND}");
}

#[test]
fn a_segment_without_a_base_record_is_replayed_whole_and_rewritten() {
    // As the first version of the format wrote them: no `Base` record.
    let d = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    let cs = protobuf::Message::write_to_bytes(&voters(&[1, 2, 3])).unwrap();
    record::encode(&record::Rec::Conf(cs), &mut bytes).unwrap();
    super::encode_entries(&entries(1..=4, 2), &mut bytes).unwrap();
    let hard = record::Rec::Hard {
        term: 2,
        vote: 1,
        commit: 3,
    };
    record::encode(&hard, &mut bytes).unwrap();
    let old = d.path().join("0000000000000001.wal");
    fs::write(&old, &bytes).unwrap();
    let s = DiskStore::open(d.path()).unwrap();
    assert_eq!(all_entries(&s), entries(1..=4, 2));
    let rs = s.initial_state().unwrap();
    assert_eq!(rs.conf_state, voters(&[1, 2, 3]));
    assert_eq!(
        (rs.hard_state.term, rs.hard_state.vote, rs.hard_state.commit),
        (2, 1, 3)
    );
    assert_eq!(segments(d.path()).len(), 1);
    assert_ne!(s.segment_path(), old);
}

/// Writes a data directory by hand: a snapshot file framing `snapshot` and
/// one segment of `recs`.
fn hand_written(dir: &Path, snapshot: &Snapshot, recs: &[record::Rec]) {
    let snap = protobuf::Message::write_to_bytes(snapshot).unwrap();
    let mut framed = Vec::new();
    record::frame(&snap, &mut framed).unwrap();
    fs::write(dir.join("snapshot"), framed).unwrap();
    let mut bytes = Vec::new();
    for r in recs {
        record::encode(r, &mut bytes).unwrap();
    }
    fs::write(dir.join("0000000000000001.wal"), bytes).unwrap();
}

/// Found while writing the `wal` fuzz target (and reproduced through it):
/// a snapshot file claiming index u64::MAX opened, and `first_index`
/// (index + 1) then overflowed.
#[test]
fn a_snapshot_file_at_index_u64_max_is_refused_as_corrupt() {
    let d = tempfile::tempdir().unwrap();
    let s = snap(u64::MAX, 1, &voters(&[1]));
    hand_written(d.path(), &s, &[]);
    match DiskStore::open(d.path()) {
        Err(StorageError::Corrupt { path, .. }) => assert!(path.ends_with("snapshot")),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The same for an entry: after a snapshot at u64::MAX - 1, an entry at
/// u64::MAX opened, and reading up to `last_index + 1` overflowed.
#[test]
fn an_entry_at_index_u64_max_is_refused_as_corrupt() {
    let d = tempfile::tempdir().unwrap();
    let s = snap(u64::MAX - 1, 1, &voters(&[1]));
    let e = protobuf::Message::write_to_bytes(&entry(u64::MAX, 1)).unwrap();
    let recs = [
        record::Rec::Base {
            index: u64::MAX - 1,
            term: 1,
        },
        record::Rec::Entries(vec![e]),
    ];
    hand_written(d.path(), &s, &recs);
    match DiskStore::open(d.path()) {
        Err(StorageError::Corrupt { path, .. }) => {
            assert!(path.ends_with("0000000000000001.wal"))
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // One below is still a valid log.
    let d = tempfile::tempdir().unwrap();
    hand_written(d.path(), &s, &recs[..1]);
    let store = DiskStore::open(d.path()).unwrap();
    assert_eq!(store.first_index().unwrap(), u64::MAX);
    assert!(all_entries(&store).is_empty());
}
