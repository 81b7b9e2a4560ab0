//! The durable store: conformance, reopen, crash points, injected fsync
//! failure, bounded disk use.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::Storage as _;

use super::*;
use crate::storage::conformance;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![7u8; 32].into(),
        ..Default::default()
    }
}

fn snap(index: u64, term: u64) -> Snapshot {
    let mut s = Snapshot {
        data: b"table".to_vec().into(),
        ..Default::default()
    };
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
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
fn everything_survives_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut s = DiskStore::open(d.path()).unwrap();
        let cs = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        s.set_conf_state(&cs).unwrap();
        let entries: Vec<Entry> = (1..=50).map(|i| entry(i, 2)).collect();
        let hs = HardState {
            term: 2,
            vote: 3,
            commit: 40,
            ..Default::default()
        };
        s.persist(&entries, Some(&hs)).unwrap();
        s.compact(snap(20, 2)).unwrap();
        s.persist(&[entry(51, 3), entry(52, 3)], None).unwrap();
        s.set_commit(52).unwrap();
    }
    let s = DiskStore::open(d.path()).unwrap();
    assert_eq!(s.first_index().unwrap(), 21);
    assert_eq!(s.last_index().unwrap(), 52);
    assert_eq!(s.term(20).unwrap(), 2);
    assert_eq!(s.term(52).unwrap(), 3);
    let rs = s.initial_state().unwrap();
    assert_eq!(
        (rs.hard_state.term, rs.hard_state.vote, rs.hard_state.commit),
        (2, 3, 52)
    );
    assert_eq!(rs.conf_state.voters, vec![1, 2, 3]);
    assert_eq!(&s.snapshot(0, 1).unwrap().data[..], b"table");
    assert_eq!(
        s.entries(21, 53, None, GetEntriesContext::empty(false))
            .unwrap()
            .len(),
        32
    );
}

/// Writes three batches and returns the segment path and where the last record starts.
fn three_batches(dir: &Path) -> (PathBuf, u64) {
    let mut s = DiskStore::open(dir).unwrap();
    s.persist(&[entry(1, 1), entry(2, 1)], None).unwrap();
    s.persist(&[entry(3, 1)], None).unwrap();
    let seg = segments(dir).pop().unwrap();
    let before = fs::metadata(&seg).unwrap().len();
    s.persist(&[entry(4, 1), entry(5, 1)], None).unwrap();
    (seg, before)
}

#[test]
fn a_cut_at_every_offset_of_the_last_record_loses_only_that_record() {
    let d = tempfile::tempdir().unwrap();
    let (seg, last) = three_batches(d.path());
    let full = fs::read(&seg).unwrap();
    for cut in last..full.len() as u64 {
        fs::write(&seg, &full[..cut as usize]).unwrap();
        let s = DiskStore::open(d.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(s.last_index().unwrap(), 3, "cut at {cut}");
        drop(s);
        assert_eq!(fs::metadata(&seg).unwrap().len(), last, "torn tail cut off");
    }
    // And the store goes on appending after the cut.
    fs::write(&seg, &full[..last as usize]).unwrap();
    let mut s = DiskStore::open(d.path()).unwrap();
    s.persist(&[entry(4, 2)], None).unwrap();
    drop(s);
    assert_eq!(DiskStore::open(d.path()).unwrap().last_index().unwrap(), 4);
}

#[test]
fn a_flipped_byte_in_the_last_record_drops_it_and_earlier_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (seg, last) = three_batches(d.path());
    let full = fs::read(&seg).unwrap();
    for i in last as usize..full.len() {
        let mut b = full.clone();
        b[i] ^= 0x10;
        fs::write(&seg, &b).unwrap();
        let s = DiskStore::open(d.path()).unwrap_or_else(|e| panic!("flip at {i}: {e}"));
        assert_eq!(s.last_index().unwrap(), 3, "flip at {i}");
    }
    for i in [0usize, 5, 13, (last as usize) - 1] {
        let mut b = full.clone();
        b[i] ^= 0x10;
        fs::write(&seg, &b).unwrap();
        match DiskStore::open(d.path()) {
            Err(StorageError::Corrupt { path, .. }) => assert_eq!(path, seg),
            other => panic!("flip at {i} must be refused, got {other:?}"),
        }
    }
}

#[test]
fn an_fsync_failure_fails_the_store_for_good() {
    let d = tempfile::tempdir().unwrap();
    let mut s = DiskStore::open(d.path()).unwrap();
    s.persist(&[entry(1, 1)], None).unwrap();
    s.fail_next_fsync();
    assert!(s.persist(&[entry(2, 1)], None).is_err());
    assert!(
        s.persist(&[entry(2, 1)], None).is_err(),
        "no retry after a failed fsync"
    );
    assert!(s.set_commit(1).is_err());
    assert!(s.last_index().is_err());
}

#[test]
fn compaction_keeps_disk_use_bounded() {
    let d = tempfile::tempdir().unwrap();
    let mut s = DiskStore::open(d.path()).unwrap();
    let mut index = 0;
    let mut peak = 0;
    for round in 0..10u64 {
        let batch: Vec<Entry> = (0..1000)
            .map(|_| {
                index += 1;
                entry(index, 1)
            })
            .collect();
        for chunk in batch.chunks(100) {
            s.persist(chunk, None).unwrap();
        }
        s.compact(snap(index - 10, 1)).unwrap();
        peak = peak.max(s.disk_usage());
        assert!(segments(d.path()).len() <= 2, "round {round}");
    }
    // 1 000 entries of ~50 bytes between compactions, plus framing: well under 200 KiB.
    assert!(peak < 200 * 1024, "peak disk use {peak} bytes");
}
