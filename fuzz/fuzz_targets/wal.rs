//! The durable store's log on arbitrary bytes.
//!
//! Pure: every file goes through record framing (`scan`, `first`) and each
//! payload through record decoding; a payload that decodes re-encodes to a
//! record that scans clean and decodes to the same value.
//!
//! Whole store: the input unpacks (see `peerlock_fuzz::unpack`) into a data
//! directory of an optional snapshot file and one to three segments, and
//! `DiskStore` opens it. It must refuse with a typed error or open, never
//! panic; an opened store answers every `raft::Storage` read without
//! panicking, and opening the directory again (after the first open cut a
//! torn tail or rewrote the segment) yields the same state.
#![no_main]

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use peerlock_core::storage::disk::record::{self, End};
use peerlock_core::storage::fs::{Fs, RealFs};
use peerlock_core::storage::DiskStore;
use raft::{GetEntriesContext, Storage};

/// The real file system without fsyncs: durability is not under test here,
/// and an fsync per input would cut the execution rate a hundredfold.
#[derive(Debug)]
struct NoSync;

impl Fs for NoSync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir_all(dir)
    }
    fn open_append(&self, path: &Path) -> io::Result<File> {
        RealFs.open_append(path)
    }
    fn write(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        RealFs.write(file, bytes)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealFs.read(path)
    }
    fn sync(&self, _: &File) -> io::Result<()> {
        Ok(())
    }
    fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealFs.remove(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        RealFs.list(dir)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(len)
    }
}

/// Framing and record decoding of one file's bytes.
fn check_records(bytes: &[u8]) {
    let mut first_seen = None;
    let mut next = 0;
    let end = record::scan(bytes, |off, payload| {
        assert_eq!(off, next, "records are contiguous");
        next = off + record::HEADER + payload.len();
        assert!(next <= bytes.len());
        if first_seen.is_none() {
            first_seen = Some(payload);
        }
        if let Ok(rec) = record::decode(payload) {
            let mut out = Vec::new();
            record::encode(&rec, &mut out).expect("a decoded record encodes");
            let mut again = Vec::new();
            assert_eq!(record::scan(&out, |_, p| again.push(p)), End::Clean);
            assert_eq!(again.len(), 1);
            assert_eq!(record::decode(again[0]).expect("re-decodes"), rec);
        }
    });
    match end {
        End::Clean => assert_eq!(next, bytes.len()),
        End::Torn { offset } | End::Corrupt { offset, .. } => {
            assert_eq!(
                offset, next,
                "the bad record starts where the good ones end"
            );
            assert!(offset < bytes.len());
        }
    }
    // `first` agrees with the scan about the opening record.
    if let Some(p) = record::first(bytes) {
        assert_eq!(first_seen, Some(p));
    }
}

/// Everything an opened store says about its state, through `raft::Storage`.
fn state(store: &DiskStore) -> String {
    let rs = store
        .initial_state()
        .expect("initial state of an opened store");
    let first = store.first_index().expect("first index");
    let last = store.last_index().expect("last index");
    let entries = store.entries(
        first,
        last.saturating_add(1),
        None,
        GetEntriesContext::empty(false),
    );
    // Terms of the snapshot index, every entry and one past each end.
    let terms: Vec<_> = (first.saturating_sub(2)..=last.saturating_add(1))
        .take(4096)
        .map(|i| store.term(i).ok())
        .collect();
    let _ = store.entries(last, first, Some(1), GetEntriesContext::empty(false));
    let _ = store.snapshot(first.saturating_sub(1), 0);
    format!(
        "{:?} {:?} {first} {last} {:?} {terms:?} {:?}",
        rs.hard_state,
        rs.conf_state,
        entries,
        store.snapshot_data()
    )
}

fn temp_root() -> PathBuf {
    // tmpfs where there is one: this target creates and removes a directory
    // per input.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = peerlock_fuzz::unpack(data);
    for file in dir.snapshot.iter().chain(dir.segments.iter()) {
        check_records(file);
    }
    check_records(data);
    let _ = record::decode(data);

    let tmp = tempfile::Builder::new()
        .prefix("peerlock-fuzz-wal")
        .tempdir_in(temp_root())
        .expect("temp dir");
    if let Some(snap) = dir.snapshot {
        std::fs::write(tmp.path().join("snapshot"), snap).expect("write the snapshot file");
    }
    for (i, seg) in dir.segments.iter().enumerate() {
        let name = format!("{:016}.wal", i + 1);
        std::fs::write(tmp.path().join(name), seg).expect("write a segment");
    }
    let fs = Arc::new(NoSync);
    // A typed error (`StorageError`) is a fine answer to garbage.
    let Ok(store) = DiskStore::open_with(tmp.path(), fs.clone()) else {
        return;
    };
    let before = state(&store);
    drop(store);
    let again = DiskStore::open_with(tmp.path(), fs).expect("a directory that opened opens again");
    assert_eq!(state(&again), before, "reopening changes nothing");
});
