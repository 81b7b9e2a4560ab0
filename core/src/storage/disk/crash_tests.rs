//! Crash points (issue 8 item 9): an operation of the store is cut off
//! after each of its file-system steps (every write, fsync, rename and
//! removal), with and without a power cut that loses what no fsync
//! covered; the store must then reopen with the old state or the new one,
//! exactly, never a refusal and never a mix.

use std::path::Path;
use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage as _};

use super::*;
use crate::storage::fs::FaultyFs;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8; 16].into(),
        ..Default::default()
    }
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..Default::default()
    }
}

fn snap(index: u64, term: u64, cs: &ConfState, data: &[u8]) -> Snapshot {
    let mut s = Snapshot {
        data: data.to_vec().into(),
        ..Default::default()
    };
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().set_conf_state(cs.clone());
    s
}

/// Everything a reopened store says.
#[derive(Debug, PartialEq)]
struct State {
    snapshot: Option<(u64, u64, Vec<u8>)>,
    hard: HardState,
    conf: ConfState,
    first: u64,
    entries: Vec<Entry>,
}

fn state(s: &DiskStore) -> State {
    let (first, last) = (s.first_index().unwrap(), s.last_index().unwrap());
    let rs = s.initial_state().unwrap();
    State {
        snapshot: s.snapshot_data().map(|sn| {
            let m = sn.get_metadata();
            (m.index, m.term, sn.data.to_vec())
        }),
        hard: rs.hard_state,
        conf: rs.conf_state,
        first,
        entries: s
            .entries(first, last + 1, None, GetEntriesContext::empty(false))
            .unwrap(),
    }
}

/// A follower's log: a snapshot at 3, entries 4 and 5 of term 2, then 6 to
/// 10 of term 3 (from a leader that was deposed), all fsynced.
fn prepare(dir: &Path, fs: Arc<FaultyFs>) -> DiskStore {
    let mut s = DiskStore::open_with(dir, fs).unwrap();
    s.set_conf_state(&voters(&[1, 2])).unwrap();
    let mut log: Vec<Entry> = (1..=5).map(|i| entry(i, 2)).collect();
    log.extend((6..=10).map(|i| entry(i, 3)));
    let hs = HardState {
        term: 3,
        vote: 2,
        commit: 4,
        ..Default::default()
    };
    s.persist(&log, Some(&hs)).unwrap();
    s.compact(snap(3, 2, &voters(&[1, 2]), b"at 3")).unwrap();
    s
}

/// Runs `op` on a prepared store cut off after each of its steps, with and
/// without a power cut, and checks every reopen gives the old state or the
/// new one. Returns how many crash points were tried.
fn every_crash_point(op: impl Fn(&mut DiskStore) -> raft::Result<()>) -> u64 {
    let base = tempfile::tempdir().unwrap();
    let (old, new, steps) = {
        let fs = Arc::new(FaultyFs::new());
        let dir = base.path().join("clean");
        let mut s = prepare(&dir, fs.clone());
        let old = state(&s);
        let before = fs.steps();
        op(&mut s).unwrap();
        let steps = fs.steps() - before;
        drop(s);
        let new = state(&DiskStore::open(&dir).unwrap());
        (old, new, steps)
    };
    assert_ne!(old, new);
    let mut tried = 0;
    for k in 0..=steps {
        for power_cut in [false, true] {
            let dir = base.path().join(format!("k{k}-{power_cut}"));
            let fs = Arc::new(FaultyFs::new());
            let mut s = prepare(&dir, fs.clone());
            fs.crash_after(k);
            let r = op(&mut s);
            // The last steps remove old segments; a failure there is retried later.
            assert!(k < steps || r.is_ok(), "step {k}");
            drop(s);
            if power_cut {
                fs.power_cut();
            }
            let what = format!("crash after step {k} of {steps}, power cut {power_cut}");
            let got = match DiskStore::open(&dir) {
                Ok(s) => state(&s),
                Err(e) => panic!("{what}: refused: {e}"),
            };
            assert!(
                got == old || got == new,
                "{what}: a mix:\n{got:?}\nold {old:?}\nnew {new:?}"
            );
            // And it stays that way, and takes writes.
            let mut again = DiskStore::open(&dir).unwrap();
            assert_eq!(state(&again), got, "{what}: second reopen");
            let next = again.last_index().unwrap() + 1;
            again.persist(&[entry(next, 9)], None).unwrap();
            tried += 1;
        }
    }
    tried
}

/// Installing a leader's snapshot that replaces the follower's log: at
/// (8, term 2), while the follower's own entry 8 is of term 3. The old
/// order (snapshot file first) left, after a crash before the new segment,
/// the new snapshot with the old log's entries 9 and 10 after it: a log no
/// node ever had.
#[test]
fn issue_8_a_crash_at_any_step_of_a_snapshot_install_leaves_the_old_or_the_new_state() {
    let newer = voters(&[1, 2, 3]);
    let tried = every_crash_point(|s| s.apply_snapshot(snap(8, 2, &newer, b"at 8")));
    assert!(tried >= 10, "{tried}");
}

/// The same for a compaction, whose entries after the snapshot stay.
#[test]
fn issue_8_a_crash_at_any_step_of_a_compaction_leaves_the_old_or_the_new_state() {
    let tried = every_crash_point(|s| s.compact(snap(7, 3, &voters(&[1, 2]), b"at 7")));
    assert!(tried >= 10, "{tried}");
}

/// A directory written by the old order, cut between its snapshot file and
/// its segment: no segment holds the snapshot's state. The entries after
/// the snapshot are kept only if the log holds the snapshot's own entry.
#[test]
fn a_snapshot_newer_than_every_segment_keeps_only_entries_that_continue_it() {
    for (snap_term, kept) in [(3, true), (2, false)] {
        let d = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultyFs::new());
        drop(prepare(d.path(), fs));
        // Replace the snapshot file by hand, as the old order did first.
        let sn = snap(8, snap_term, &voters(&[1, 2]), b"at 8");
        let bytes = protobuf::Message::write_to_bytes(&sn).unwrap();
        let mut framed = Vec::new();
        record::frame(&bytes, &mut framed).unwrap();
        std::fs::write(d.path().join("snapshot"), framed).unwrap();
        let s = DiskStore::open(d.path()).unwrap();
        let st = state(&s);
        assert_eq!(st.first, 9);
        let want: Vec<Entry> = if kept {
            (9..=10).map(|i| entry(i, 3)).collect()
        } else {
            Vec::new()
        };
        assert_eq!(st.entries, want, "snapshot term {snap_term}");
    }
}

/// Issue 10: the fsync thread's handles share one duplicate descriptor per
/// segment instead of a `dup` per Ready. What a handle's fsync covers is
/// unchanged: every write made before it, on the segment current when the
/// handle was taken, survives a power cut; a write after it does not. After
/// a rotation (snapshot install) a new handle syncs the new segment, and a
/// handle of the old one still syncs harmlessly.
#[test]
fn issue_10_a_shared_sync_handle_makes_exactly_the_earlier_writes_durable() {
    let d = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let mut s = prepare(d.path(), fs.clone());
    s.write_unsynced(&[entry(11, 3), entry(12, 3)], None)
        .unwrap();
    let first = s.sync_handle().unwrap();
    s.write_unsynced(&[entry(13, 3)], None).unwrap();
    let second = s.sync_handle().unwrap();
    second.sync().unwrap();
    s.write_unsynced(&[entry(14, 3)], None).unwrap();
    first.sync().unwrap(); // an older handle of the same segment: covers 14 too
    s.write_unsynced(&[entry(15, 3)], None).unwrap();
    drop(s);
    fs.power_cut();
    let s = DiskStore::open(d.path()).unwrap();
    assert_eq!(s.last_index().unwrap(), 14, "15 was never fsynced");

    // Across a rotation.
    let fs = Arc::new(FaultyFs::new());
    let d = tempfile::tempdir().unwrap();
    let mut s = prepare(d.path(), fs.clone());
    let old = s.sync_handle().unwrap();
    s.apply_snapshot(snap(20, 4, &voters(&[1, 2]), b"at 20"))
        .unwrap();
    s.write_unsynced(&[entry(21, 4), entry(22, 4)], None)
        .unwrap();
    old.sync().unwrap(); // the old segment: nothing of 21, 22
    drop(old);
    s.write_unsynced(&[entry(23, 4)], None).unwrap();
    s.sync_handle().unwrap().sync().unwrap();
    s.write_unsynced(&[entry(24, 4)], None).unwrap();
    drop(s);
    fs.power_cut();
    let s = DiskStore::open(d.path()).unwrap();
    assert_eq!(s.first_index().unwrap(), 21);
    assert_eq!(s.last_index().unwrap(), 23, "24 was never fsynced");
}

/// Issue 10: a compaction whose snapshot file a blocking thread wrote
/// ahead (`staged.rs`): a crash at any step of the staging or of the
/// compaction leaves the old state or the new one.
#[test]
fn issue_10_a_crash_at_any_step_of_a_staged_compaction_leaves_the_old_or_the_new_state() {
    let tried = every_crash_point(|s| {
        let sn = snap(7, 3, &voters(&[1, 2]), b"at 7");
        let staged = s.stager().expect("a disk store stages")(&sn)?;
        s.compact_staged(sn, staged)
    });
    assert!(tried >= 14, "{tried}");
}

/// A staged file is renamed into place by its compaction (entries written
/// between the staging and the compaction stay, as while the driver waits
/// for the encode), and removed when the compaction no longer wants it (a
/// newer snapshot was installed meanwhile).
#[test]
fn issue_10_a_staged_snapshot_file_is_used_or_removed() {
    let tmp_files = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".tmp")
            })
            .count()
    };
    let d = tempfile::tempdir().unwrap();
    let mut s = prepare(d.path(), Arc::new(FaultyFs::new()));
    let sn = snap(7, 3, &voters(&[1, 2]), b"at 7");
    let staged = s.stager().unwrap()(&sn).unwrap();
    assert_eq!(tmp_files(d.path()), 1);
    s.persist(&[entry(11, 3)], None).unwrap();
    s.compact_staged(sn, staged).unwrap();
    assert_eq!(tmp_files(d.path()), 0);
    assert_eq!(s.snapshot_data().unwrap().data.as_ref(), b"at 7");
    drop(s);
    let s = DiskStore::open(d.path()).unwrap();
    assert_eq!((state(&s).first, s.last_index().unwrap()), (8, 11));
    assert_eq!(s.snapshot_data().unwrap().data.as_ref(), b"at 7");
    drop(s);

    let d = tempfile::tempdir().unwrap();
    let mut s = prepare(d.path(), Arc::new(FaultyFs::new()));
    let old = snap(7, 3, &voters(&[1, 2]), b"at 7");
    let staged = s.stager().unwrap()(&old).unwrap();
    s.apply_snapshot(snap(9, 3, &voters(&[1, 2]), b"at 9"))
        .unwrap();
    s.compact_staged(old, staged).unwrap();
    assert_eq!(tmp_files(d.path()), 0);
    assert_eq!(s.snapshot_data().unwrap().data.as_ref(), b"at 9");
}
