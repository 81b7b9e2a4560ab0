//! Opening a store: loading the snapshot, choosing the segments to replay,
//! replaying them, and deciding what ends each (see
//! [`record::scan`](super::record::scan)): a torn tail in the last segment
//! is cut off and logged; anything else bad refuses to open, naming the
//! file and the byte offset.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

use super::record::{self, End, Rec};
use super::segment::{
    create_segment, io_err, segment_seq, Wal, WalStart, SNAPSHOT_FILE, TMP_SUFFIX,
};
use super::{base_content, DiskStore, StorageError};
use crate::storage::fs::{create_dir_durably, Fs};

/// Why an index of `u64::MAX` is refused: the log's first and next
/// indexes (`index + 1`) must exist, and no real log gets anywhere near.
const MAX_INDEX: &str = "an index of u64::MAX, past the last one a log can address";

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        path: path.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// One segment read from disk.
struct Seg {
    seq: u64,
    path: PathBuf,
    bytes: Vec<u8>,
    /// The snapshot index its opening `Base` record names, if it has one.
    base: Option<u64>,
}

impl DiskStore {
    /// Like [`DiskStore::open`], with every file operation going through
    /// `fs` (so tests can inject faults).
    ///
    /// # Errors
    ///
    /// As [`DiskStore::open`].
    pub fn open_with(dir: impl AsRef<Path>, fs: Arc<dyn Fs>) -> Result<Self, StorageError> {
        Self::open_in(dir.as_ref(), fs)
    }

    /// [`DiskStore::open_with`] for one path type: the recovery is compiled
    /// once, not once per type of `dir` the callers pass (issue 12, item 9).
    fn open_in(dir: &Path, fs: Arc<dyn Fs>) -> Result<Self, StorageError> {
        let dir = dir.to_owned();
        // Durably: a segment fsynced inside a directory whose own entry a
        // power cut could lose would be lost with it.
        create_dir_durably(fs.as_ref(), &dir).map_err(|e| io_err(&dir, e))?;
        let mut seqs = Vec::new();
        for path in fs.list(&dir).map_err(|e| io_err(&dir, e))? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(TMP_SUFFIX) {
                // A segment or snapshot whose writing a crash interrupted.
                if let Err(e) = fs.remove(&path) {
                    tracing::warn!(file = %path.display(), error = %e, "could not remove an unfinished file");
                }
            } else if let Some(seq) = segment_seq(&path) {
                seqs.push((seq, path));
            }
        }
        seqs.sort();
        // New segments take numbers past every existing one, even those
        // about to be removed.
        let next_seq = seqs.last().map_or(1, |(seq, _)| seq + 1);
        let (snapshot, snapshot_len) = load_snapshot(fs.as_ref(), &dir)?;
        let snap_index = snapshot.get_metadata().index;

        // Read segments newest first, back to the newest whose `Base` is the
        // snapshot: it holds the whole state, and older ones are leftovers.
        let mut segs = Vec::new();
        let mut stale = Vec::new();
        let mut unfinished: Option<PathBuf> = None;
        let mut found = false;
        while let Some((seq, path)) = seqs.pop() {
            if found {
                stale.push(path);
                continue;
            }
            let bytes = fs.read(&path).map_err(|e| io_err(&path, e))?;
            let base = record::first(&bytes)
                .and_then(|p| record::decode(p).ok())
                .and_then(|r| match r {
                    Rec::Base { index, .. } => Some(index),
                    _ => None,
                });
            if base.is_some_and(|b| b > snap_index) {
                // An install cut short before its snapshot file was in place
                // (the segment is written first): the old state is older.
                tracing::warn!(file = %path.display(), "removing the segment of an unfinished snapshot install");
                unfinished.get_or_insert_with(|| path.clone());
                stale.push(path);
                continue;
            }
            found = base == Some(snap_index);
            segs.push(Seg {
                seq,
                path,
                bytes,
                base,
            });
        }
        if let (Some(path), false) = (&unfinished, found) {
            return Err(corrupt(
                path,
                0,
                format!("the segment starts from a newer snapshot than the snapshot file's (index {snap_index}), and no older segment holds that snapshot's state"),
            ));
        }
        segs.reverse();

        let mut st = Replay::new(&snapshot);
        let mut last_len = 0;
        let count = segs.len();
        for (i, seg) in segs.iter().enumerate() {
            // A segment begun before the snapshot holds no newer membership.
            st.stale_conf = seg.base.is_some_and(|b| b < snap_index);
            last_len = st.replay(fs.as_ref(), seg, i + 1 == count)?;
        }
        // No segment holds the snapshot's state: a directory written before
        // segments were made first (see the module docs of `disk`).
        let legacy = !found && snap_index > 0;
        let (hard_state, conf_state, entries) = st.finish(&snapshot, legacy);
        let last = entries.last().map_or(snap_index, |e| e.index);
        if hard_state.commit > last {
            let path = segs.last().map_or_else(|| dir.clone(), |s| s.path.clone());
            return Err(corrupt(
                &path,
                last_len,
                format!(
                    "the commit index {} is past the last entry {last}",
                    hard_state.commit
                ),
            ));
        }

        // Go on appending to the last segment if it holds the whole state;
        // otherwise (new directory, a crash mid-compaction, leftovers)
        // start a fresh one that does, and drop the rest.
        let fresh = segs.last().is_none_or(|s| s.base != Some(snap_index));
        let (file, path, seq, len) = match segs.pop() {
            Some(s) if !fresh => {
                let file = fs.open_append(&s.path).map_err(|e| io_err(&s.path, e))?;
                // What was read may have come from the page cache of a
                // process that crashed before its fsync: make it durable
                // before Raft acts on it (acknowledges those entries).
                fs.sync(&file).map_err(|e| io_err(&s.path, e))?;
                (file, s.path, s.seq, last_len)
            }
            last => {
                let seq = last.as_ref().map_or(1, |s| s.seq + 1).max(next_seq);
                stale.extend(last.map(|s| s.path));
                stale.extend(segs.drain(..).map(|s| s.path));
                let content = base_content(&snapshot, &hard_state, &conf_state, &entries)
                    .map_err(|e| corrupt(&dir, 0, e.to_string()))?;
                let (file, path) = create_segment(fs.as_ref(), &dir, seq, &content)?;
                (file, path, seq, content.len() as u64)
            }
        };
        let mut wal = Wal::new(WalStart {
            fs,
            dir,
            file,
            path,
            seq,
            len,
            snapshot_len,
        });
        wal.add_old(stale);
        wal.remove_old();
        Ok(Self {
            wal,
            hard_state,
            conf_state,
            snapshot,
            entries,
        })
    }
}

/// The snapshot file's snapshot and size; an empty snapshot if none.
fn load_snapshot(fs: &dyn Fs, dir: &Path) -> Result<(Snapshot, u64), StorageError> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Snapshot::default(), 0)),
        Err(e) => return Err(io_err(&path, e)),
    };
    // Written whole and renamed into place: any damage is corruption.
    let mut payload = None;
    let mut count = 0;
    match record::scan(&bytes, |_, p| {
        payload = Some(p);
        count += 1;
    }) {
        End::Clean => {}
        End::Torn { offset } | End::Corrupt { offset, .. } => {
            return Err(corrupt(
                &path,
                offset as u64,
                "the snapshot file is damaged",
            ))
        }
    }
    let (Some(p), 1) = (payload, count) else {
        return Err(corrupt(&path, 0, "the snapshot file must hold one record"));
    };
    let mut snapshot = Snapshot::default();
    snapshot
        .merge_from_bytes(p)
        .map_err(|e| corrupt(&path, record::HEADER as u64, e.to_string()))?;
    if snapshot.get_metadata().index == u64::MAX {
        return Err(corrupt(&path, record::HEADER as u64, MAX_INDEX));
    }
    Ok((snapshot, bytes.len() as u64))
}

/// State rebuilt while replaying records.
struct Replay {
    hard_state: HardState,
    conf_state: ConfState,
    snap_index: u64,
    entries: Vec<Entry>,
    /// Ignore membership records (they predate the snapshot's).
    stale_conf: bool,
    /// The term of the entry at the snapshot's index, if the replayed log
    /// holds one.
    at_snap: Option<u64>,
}

impl Replay {
    fn new(snapshot: &Snapshot) -> Self {
        let meta = snapshot.get_metadata();
        Self {
            hard_state: HardState::default(),
            conf_state: meta.get_conf_state().clone(),
            snap_index: meta.index,
            entries: Vec::new(),
            stale_conf: false,
            at_snap: None,
        }
    }

    /// Replays one segment; returns its length after any torn tail is cut.
    fn replay(&mut self, fs: &dyn Fs, seg: &Seg, is_last: bool) -> Result<u64, StorageError> {
        let mut bad = None;
        let end = record::scan(&seg.bytes, |off, p| {
            if bad.is_none() {
                if let Err(reason) = self.apply(p) {
                    bad = Some((off, reason));
                }
            }
        });
        if let Some((off, reason)) = bad {
            return Err(corrupt(&seg.path, off as u64, reason));
        }
        match end {
            End::Clean => Ok(seg.bytes.len() as u64),
            End::Torn { offset } if is_last => {
                tracing::warn!(
                    file = %seg.path.display(),
                    offset,
                    dropped = seg.bytes.len() - offset,
                    "dropping a torn tail left by a crash"
                );
                fs.truncate(&seg.path, offset as u64)
                    .map_err(|e| io_err(&seg.path, e))?;
                Ok(offset as u64)
            }
            End::Torn { offset } => Err(corrupt(
                &seg.path,
                offset as u64,
                "a bad record at the end of a segment that is not the last",
            )),
            End::Corrupt { offset, reason } if is_last => {
                // A hole followed by valid records: torn only if it lies past
                // every byte known fsynced (see "Holes in the tail").
                match record::synced_upto(&seg.bytes) {
                    Some(synced) if offset as u64 >= synced => {
                        tracing::warn!(
                            file = %seg.path.display(),
                            offset,
                            synced,
                            dropped = seg.bytes.len() - offset,
                            "dropping a tail with a hole, all past the last fsync (writes reordered by a power cut; none was acknowledged)"
                        );
                        fs.truncate(&seg.path, offset as u64)
                            .map_err(|e| io_err(&seg.path, e))?;
                        Ok(offset as u64)
                    }
                    _ => Err(corrupt(&seg.path, offset as u64, reason)),
                }
            }
            End::Corrupt { offset, reason } => Err(corrupt(&seg.path, offset as u64, reason)),
        }
    }

    fn apply(&mut self, payload: &[u8]) -> Result<(), String> {
        match record::decode(payload).map_err(|e| e.to_string())? {
            Rec::Entries(list) => {
                for bytes in list {
                    let mut e = Entry::default();
                    e.merge_from_bytes(&bytes).map_err(|e| e.to_string())?;
                    if e.index == u64::MAX {
                        return Err(MAX_INDEX.into());
                    }
                    if e.index <= self.snap_index {
                        // It replaces the log from its index on.
                        self.entries.clear();
                        self.at_snap = (e.index == self.snap_index).then_some(e.term);
                        continue;
                    }
                    let keep = usize::try_from(e.index - self.snap_index - 1)
                        .map_err(|e| e.to_string())?;
                    if keep > self.entries.len() {
                        return Err(format!("gap in the log before index {}", e.index));
                    }
                    self.entries.truncate(keep);
                    self.entries.push(e);
                }
            }
            Rec::Hard { term, vote, commit } => {
                self.hard_state.term = term;
                self.hard_state.vote = vote;
                self.hard_state.commit = commit;
            }
            Rec::Conf(bytes) => {
                let mut cs = ConfState::default();
                cs.merge_from_bytes(&bytes).map_err(|e| e.to_string())?;
                if !self.stale_conf {
                    self.conf_state = cs;
                }
            }
            Rec::Commit(c) => self.hard_state.commit = c,
            Rec::Base { .. } | Rec::Synced(_) => {}
        }
        Ok(())
    }

    /// The recovered hard state, membership and entries. `legacy`: no
    /// segment began from the snapshot (see the module docs of `disk`).
    fn finish(mut self, snapshot: &Snapshot, legacy: bool) -> (HardState, ConfState, Vec<Entry>) {
        let meta = snapshot.get_metadata();
        // Records older than the snapshot may say less; the snapshot is committed.
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        // Entries after the snapshot continue it only if the log holds the
        // snapshot's own entry (log matching); else the snapshot replaced
        // that log (an install) and they must go.
        if legacy && self.at_snap != Some(meta.term) && !self.entries.is_empty() {
            tracing::warn!(
                from = meta.index + 1,
                count = self.entries.len(),
                "dropping entries of a log that the snapshot replaced"
            );
            self.entries.clear();
        }
        (self.hard_state, self.conf_state, self.entries)
    }
}
