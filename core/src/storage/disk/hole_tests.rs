//! Holes in the tail (issue 8 item 9): writes that were never fsynced can
//! reach the disk out of order at a power cut, leaving a hole with valid
//! records after it. Past the last fsync known (`Rec::Synced`) that is a
//! torn tail; before it, corruption. See "Holes in the tail" in the module
//! docs.

use std::path::Path;
use std::sync::Arc;

use raft::eraftpb::Entry;
use raft::{GetEntriesContext, Storage as _};

use super::record::{self, End};
use super::*;
use crate::storage::fs::FaultyFs;

fn batch(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    range
        .map(|index| Entry {
            index,
            term: 1,
            data: vec![index as u8; 24].into(),
            ..Default::default()
        })
        .collect()
}

fn indexes(s: &DiskStore) -> Vec<u64> {
    let (first, last) = (s.first_index().unwrap(), s.last_index().unwrap());
    s.entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap()
        .iter()
        .map(|e| e.index)
        .collect()
}

/// The driver's way: entries 1 to 3 fsynced, then 4 to 6 and 7 to 9
/// written and not (yet) fsynced. Returns the unsynced byte count.
fn driver_writes(dir: &Path, fs: Arc<FaultyFs>) -> u64 {
    let mut s = DiskStore::open_with(dir, fs).unwrap();
    s.persist(&batch(1..=3), None).unwrap();
    let synced = s.disk_usage();
    s.write_unsynced(&batch(4..=6), None).unwrap();
    s.write_unsynced(&batch(7..=9), None).unwrap();
    s.disk_usage() - synced
}

/// Every hole the disk could leave in the unsynced tail (any start, a byte
/// to a page long), with what followed it written back: the store opens
/// with what was fsynced and a prefix of the rest, never refuses. The old
/// rule refused every such hole that valid records followed.
#[test]
fn issue_8_a_hole_past_the_last_fsync_is_a_torn_tail() {
    let base = tempfile::tempdir().unwrap();
    let unsynced = driver_writes(&base.path().join("probe"), Arc::new(FaultyFs::new()));
    let mut refused_before = 0;
    for start in (0..unsynced).step_by(8) {
        for len in [1, 4096] {
            let dir = base.path().join(format!("h{start}-{len}"));
            let fs = Arc::new(FaultyFs::new());
            driver_writes(&dir, fs.clone());
            fs.power_cut_with_hole(start..start + len);
            let seg = super::segment::segment_name(1);
            let bytes = std::fs::read(dir.join(&seg)).unwrap();
            if matches!(record::scan(&bytes, |_, _| {}), End::Corrupt { .. }) {
                refused_before += 1;
            }
            let s = DiskStore::open(&dir)
                .unwrap_or_else(|e| panic!("hole at {start}+{len}: refused: {e}"));
            let got = indexes(&s);
            assert!(
                got.len() >= 3,
                "hole at {start}+{len}: fsynced entries lost"
            );
            assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
            drop(s);
            // Cut off for good: a second open finds a clean segment.
            let again = DiskStore::open(&dir).unwrap();
            assert_eq!(indexes(&again), got);
        }
    }
    assert!(
        refused_before > 0,
        "some holes had valid records after them"
    );
}

/// The driver's fsync (through the sync handle) is recorded by the next
/// batch: a hole after it is torn, a hole before it is corruption.
#[test]
fn issue_8_a_hole_before_bytes_known_fsynced_stays_corruption() {
    let d = tempfile::tempdir().unwrap();
    let mut s = DiskStore::open(d.path()).unwrap();
    s.persist(&batch(1..=3), None).unwrap();
    s.write_unsynced(&batch(4..=6), None).unwrap();
    s.sync_handle().unwrap().sync().unwrap();
    s.write_unsynced(&batch(7..=9), None).unwrap();
    s.write_unsynced(&batch(10..=12), None).unwrap();
    let seg = s.segment_path().to_owned();
    drop(s);
    let full = std::fs::read(&seg).unwrap();
    let mut starts = Vec::new();
    let mut first_index = Vec::new();
    assert_eq!(
        record::scan(&full, |at, p| {
            starts.push(at);
            first_index.push(match record::decode(p).unwrap() {
                record::Rec::Entries(list) => {
                    let mut e = Entry::default();
                    protobuf::Message::merge_from_bytes(&mut e, &list[0]).unwrap();
                    Some(e.index)
                }
                _ => None,
            });
        }),
        End::Clean
    );
    let record_of =
        |index: u64| starts[first_index.iter().position(|i| *i == Some(index)).unwrap()];
    let zero = |at: usize| {
        let mut b = full.clone();
        b[at..at + 20].fill(0);
        std::fs::write(&seg, b).unwrap();
    };
    // 7 to 9 were written after the last fsync known: torn.
    zero(record_of(7));
    assert_eq!(
        indexes(&DiskStore::open(d.path()).unwrap()),
        (1..=6).collect::<Vec<_>>()
    );
    // 4 to 6 were fsynced (the batch of 7 to 9 says so): corruption.
    zero(record_of(4));
    match DiskStore::open(d.path()) {
        Err(StorageError::Corrupt { offset, .. }) => assert_eq!(offset, record_of(4) as u64),
        other => panic!("a hole in fsynced bytes must be refused, got {other:?}"),
    }
    // So are the entries the store itself fsynced.
    zero(record_of(1));
    assert!(matches!(
        DiskStore::open(d.path()),
        Err(StorageError::Corrupt { .. })
    ));
}
