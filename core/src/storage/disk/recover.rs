//! Opening a store: replaying the snapshot and the segments, and deciding
//! what ends each segment (see [`record::scan`](super::record::scan)): a
//! torn tail in the last segment is cut off and logged; anything else bad
//! refuses to open, naming the file and the byte offset.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

use super::record::{self, End};
use super::{
    io_err, segment_name, sync_dir, DiskStore, Rec, StorageError, REC_VERSION, SNAPSHOT_FILE,
};

impl DiskStore {
    /// Opens (creating if missing) the store in `dir`, recovering from a crash.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut snapshot = Snapshot::default();
        let snap_path = dir.join(SNAPSHOT_FILE);
        match fs::read(&snap_path) {
            Ok(bytes) => {
                let mut payload = None;
                let end = record::scan(&bytes, |_, p| payload = Some(p));
                let corrupt = |reason: String| StorageError::Corrupt {
                    path: snap_path.clone(),
                    offset: 0,
                    reason,
                };
                if end != End::Clean {
                    return Err(corrupt(format!("{end:?}")));
                }
                let p = payload.ok_or_else(|| corrupt("empty snapshot file".into()))?;
                snapshot
                    .merge_from_bytes(p)
                    .map_err(|e| corrupt(e.to_string()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&snap_path, e)),
        }
        let mut segs: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let seq = name.strip_suffix(".wal")?.parse::<u64>().ok()?;
                Some((seq, e.path()))
            })
            .collect();
        segs.sort();
        let mut st = Replay {
            hard_state: HardState::default(),
            conf_state: snapshot.get_metadata().get_conf_state().clone(),
            snap_index: snapshot.get_metadata().index,
            entries: Vec::new(),
        };
        st.hard_state.commit = snapshot.get_metadata().index;
        st.hard_state.term = snapshot.get_metadata().term;
        let last_seq = segs.last().map(|(s, _)| *s);
        let mut last_len = 0u64;
        for (seq, path) in &segs {
            let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
            let mut bad = None;
            let end = record::scan(&bytes, |off, p| {
                if bad.is_none() {
                    if let Err(reason) = st.apply(p) {
                        bad = Some((off, reason));
                    }
                }
            });
            if let Some((off, reason)) = bad {
                return Err(StorageError::Corrupt {
                    path: path.clone(),
                    offset: off as u64,
                    reason,
                });
            }
            let is_last = Some(*seq) == last_seq;
            match end {
                End::Clean => last_len = bytes.len() as u64,
                End::Torn { offset } if is_last => {
                    tracing::warn!(file = %path.display(), offset, dropped = bytes.len() - offset, "dropping a torn tail left by a crash");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| io_err(path, e))?;
                    f.set_len(offset as u64).map_err(|e| io_err(path, e))?;
                    f.sync_all().map_err(|e| io_err(path, e))?;
                    last_len = offset as u64;
                }
                End::Torn { offset } | End::Corrupt { offset, .. } => {
                    return Err(StorageError::Corrupt {
                        path: path.clone(),
                        offset: offset as u64,
                        reason: match end {
                            End::Corrupt { reason, .. } => reason,
                            _ => "cut short before the last segment".into(),
                        },
                    });
                }
            }
        }
        // Records older than the snapshot may say less; the snapshot is committed.
        st.hard_state.commit = st.hard_state.commit.max(st.snap_index);
        st.hard_state.term = st.hard_state.term.max(snapshot.get_metadata().term);
        let seq = last_seq.unwrap_or(1);
        let segment_path = dir.join(segment_name(seq));
        let segment = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&segment_path)
            .map_err(|e| io_err(&segment_path, e))?;
        if last_seq.is_none() {
            sync_dir(dir)?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            hard_state: st.hard_state,
            conf_state: st.conf_state,
            snapshot,
            entries: st.entries,
            segment,
            segment_path,
            segment_seq: seq,
            segment_len: last_len,
            failed: false,
            #[cfg(test)]
            fail_next_sync: false,
        })
    }
}

/// State rebuilt while replaying records.
struct Replay {
    hard_state: HardState,
    conf_state: ConfState,
    snap_index: u64,
    entries: Vec<Entry>,
}

impl Replay {
    fn apply(&mut self, payload: &[u8]) -> Result<(), String> {
        let (v, body) = payload.split_first().ok_or("empty record")?;
        if *v != REC_VERSION {
            return Err(format!("unknown record version {v}"));
        }
        let (rec, _): (Rec, usize) = bincode::serde::decode_from_slice(
            body,
            bincode::config::standard().with_limit::<{ record::MAX_RECORD }>(),
        )
        .map_err(|e| e.to_string())?;
        match rec {
            Rec::Entries(list) => {
                for bytes in list {
                    let mut e = Entry::default();
                    e.merge_from_bytes(&bytes).map_err(|e| e.to_string())?;
                    if e.index <= self.snap_index {
                        continue;
                    }
                    let first = self.snap_index + 1;
                    let keep = usize::try_from(e.index - first).map_err(|e| e.to_string())?;
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
                self.conf_state = cs;
            }
            Rec::Commit(c) => self.hard_state.commit = c,
        }
        Ok(())
    }
}
