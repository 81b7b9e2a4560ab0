//! Compacting the log behind a snapshot of the lock table: when, and on
//! which thread its file is written (issue 10, curve 1).
//!
//! # When: by the log's size against the snapshot's
//!
//! A snapshot costs in proportion to the table (encode, write, a lagging
//! follower's install); replaying the log at a cold restart costs in
//! proportion to the log since the snapshot. Compacting every fixed number
//! of entries alone made a big table pay its whole encode and write over
//! and over: at a million held locks each node re-encoded and wrote 39 MiB
//! every 20 000 entries, about once a second of workload M. So, once the
//! last snapshot is [`SIZE_RULE_FROM`] or more, the log is compacted only
//! when the bytes applied since that snapshot reach the snapshot's own size
//! ([`LOG_TO_SNAPSHOT`] times), or [`MAX_LOG_BYTES`], whichever is less;
//! always with at least `compact_after` entries past the snapshot (the
//! floor, and the whole rule for smaller tables, as before). That is the
//! Raft dissertation's rule (§5.1: snapshot once the log exceeds the
//! snapshot's size times an expansion factor), and what etcd
//! (`--snapshot-count`) and TiKV (`raft-log-gc-size-limit`,
//! `raft-log-gc-count-limit`) bound with a size and a count.
//!
//! What it costs and what bounds it:
//!
//! - Work: each snapshot of S bytes is paid for by at least min(S, the cap)
//!   bytes of applied log, so the snapshot work per applied entry stays
//!   constant as the table grows instead of growing with it.
//! - Memory and disk: the log after the snapshot is held in the store's
//!   memory (its read window) and in the current segment; both stay under
//!   [`MAX_LOG_BYTES`] of entries plus the tail kept after a compaction
//!   (see [`compact_tail`]). The cap is half a segment, so a rotation
//!   (which copies the log after the snapshot into the next segment) never
//!   leaves a segment that is already full.
//! - Cold restart: the replayed log is at most about the snapshot's size,
//!   so a restart replays no more than it restores.
//!
//! # Where: the file written off the driver
//!
//! The table is encoded on the driver, at the applied index the snapshot
//! claims. Encoding it elsewhere needs a copy of the table at that index,
//! and a clone of the lock maps costs more than the encode itself
//! (`benches/growth`, curve `locks`: at 999 000 locks clone 2.6 s against
//! encode 2.0 s on loaded cores), so it stays; the size rule above makes
//! it rare. What moves is the rest of the compaction's cost: framing the
//! snapshot and writing and fsyncing its file (39 MiB at a million short
//! names). When the last snapshot was at least [`SIZE_RULE_FROM`] (so the
//! simulator's small tables never leave the driver and its runs stay
//! deterministic) and the store writes files, the store's
//! [`LogStore::stager`] job runs on a blocking thread and writes the file,
//! fsynced, under a temporary name (the durable store's `disk::staged`);
//! the snapshot comes back through the inbox ([`Input::SnapshotStaged`])
//! and waits for its tail as any other, and the compaction on the driver
//! only writes the log's tail and renames the file into place. Nothing the
//! store recovers from changes before that rename, so a crash while the
//! file is staged leaves the old snapshot and the whole log, as before
//! (the crash-point test in `disk::crash_tests` covers the staged
//! compaction). A snapshot that comes back no newer than the store's (a
//! joiner's compaction or an installed snapshot went first) is dropped,
//! and its staged file with it.

use super::input::deliver;
use raft::eraftpb::{Entry, Snapshot, SnapshotMetadata};

use super::{Driver, Input};
use crate::storage::{LogStore, StagedSnapshot};

/// Below this snapshot size the entry count alone decides (an encode of
/// less than a mebibyte takes a few milliseconds); from it, the log's size
/// decides too, and the snapshot's file is written off the driver.
pub(crate) const SIZE_RULE_FROM: u64 = 1 << 20;
/// The log since the last snapshot may grow to this many times the
/// snapshot's size before the next one (the dissertation's expansion
/// factor).
pub(crate) const LOG_TO_SNAPSHOT: u64 = 1;
/// The most log bytes kept after a snapshot, whatever its size.
pub(crate) const MAX_LOG_BYTES: u64 = 32 << 20;
// At most half a segment (64 MiB, `storage::disk`), see the module docs.
const _: () = assert!(MAX_LOG_BYTES * 2 <= 64 << 20);
/// What an entry costs beyond its data in the estimate of the log's size:
/// its protobuf header (index, term, type, lengths) and its share of a
/// segment record.
const ENTRY_OVERHEAD: u64 = 16;

/// The compaction state of one node.
#[derive(Debug, Default)]
pub(crate) struct Compaction {
    /// A snapshot taken for the next compaction, applied once the log's
    /// tail behind it is long enough (see [`compact_tail`]), and its file
    /// if a blocking thread wrote it ahead.
    pub(super) next: Option<(Snapshot, Option<StagedSnapshot>)>,
    /// The size of the last snapshot's data (taken, stored or installed).
    pub(super) snapshot_bytes: u64,
    /// Estimated bytes of the entries applied since that snapshot's index.
    pub(super) log_bytes: u64,
    /// The index of the snapshot whose file is being written off the
    /// driver, if one is.
    pub(super) staging: Option<u64>,
    /// How many snapshot files were written off the driver (tests).
    pub(crate) off_driver: u64,
}

impl Compaction {
    /// Starts from the stored snapshot's size (0 when there is none).
    pub(super) fn new(snapshot_bytes: u64) -> Self {
        Self {
            snapshot_bytes,
            ..Self::default()
        }
    }

    /// Counts an applied entry into the log's size.
    pub(super) fn applied(&mut self, entry: &Entry) {
        let bytes = (entry.data.len() + entry.context.len()) as u64 + ENTRY_OVERHEAD;
        self.log_bytes = self.log_bytes.saturating_add(bytes);
    }

    /// A snapshot of `bytes` now stands at the applied index: the log
    /// since it is empty.
    pub(super) fn snapshot_taken(&mut self, bytes: u64) {
        self.snapshot_bytes = bytes;
        self.log_bytes = 0;
    }
}

/// Whether a compaction is due with `entries` applied entries in the log
/// after the snapshot, `log_bytes` of them applied since it, and a snapshot
/// of `snapshot_bytes` (see the module docs; `size_rule_from` is
/// [`SIZE_RULE_FROM`] but in tests).
pub(crate) fn due(
    entries: u64,
    log_bytes: u64,
    snapshot_bytes: u64,
    compact_after: u64,
    size_rule_from: u64,
) -> bool {
    if entries < compact_after {
        return false;
    }
    if snapshot_bytes < size_rule_from {
        return true;
    }
    let want = snapshot_bytes
        .saturating_mul(LOG_TO_SNAPSHOT)
        .min(MAX_LOG_BYTES);
    log_bytes >= want
}

/// Entries kept in the log after a compaction: a quarter of
/// `compact_after` (5 000 with the default), at least one.
pub(super) fn compact_tail(compact_after: u64) -> u64 {
    (compact_after / 4).max(1)
}

/// A snapshot of `data` with `meta`.
fn with_data(meta: SnapshotMetadata, data: Vec<u8>) -> Snapshot {
    let mut snap = Snapshot {
        data: data.into(),
        ..Default::default()
    };
    snap.set_metadata(meta);
    snap
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Compacts the log behind a snapshot, keeping a tail.
    ///
    /// Once a compaction is [`due`], the table is encoded at the applied
    /// index and kept aside; the log is compacted up to that snapshot only
    /// once [`compact_tail`] more entries have been applied. So after a
    /// compaction the log still holds at least the tail, and a follower
    /// that lags by less than that (a restart, a short partition) is caught
    /// up with entries, not a snapshot. Cost: one encoded snapshot in
    /// memory while the tail fills.
    pub(super) fn maybe_compact(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        if let Some((snap, staged)) = self.compaction.next.take() {
            let index = snap.get_metadata().index;
            if applied.saturating_sub(index) < compact_tail(self.cfg.compact_after) {
                self.compaction.next = Some((snap, staged));
                return;
            }
            let started = std::time::Instant::now();
            let done = match staged {
                Some(staged) => self.raw.mut_store().compact_staged(snap, staged),
                None => self.raw.mut_store().compact(snap),
            };
            match done {
                Ok(()) => {
                    tracing::debug!(node = %self.name, index, applied, ms = started.elapsed().as_millis() as u64, "log compacted behind a snapshot")
                }
                Err(e) => tracing::warn!(node = %self.name, error = %e, "compaction failed"),
            }
            return;
        }
        if self.compaction.staging.is_some() {
            return;
        }
        let first = self.raw.store().first_index().unwrap_or(1);
        if applied < first {
            return;
        }
        let c = &self.compaction;
        let from = self.hooks.size_rule_from.unwrap_or(SIZE_RULE_FROM);
        if !due(
            applied - first,
            c.log_bytes,
            c.snapshot_bytes,
            self.cfg.compact_after,
            from,
        ) {
            return;
        }
        let Some(meta) = self.snapshot_meta(applied) else {
            return;
        };
        let large = self.compaction.snapshot_bytes >= from;
        let started = std::time::Instant::now();
        let snap = with_data(meta, self.table.encode_snapshot());
        self.compaction.snapshot_taken(snap.data.len() as u64);
        let stager = if large {
            self.raw.store().stager()
        } else {
            None
        };
        let Some(stager) = stager else {
            self.compaction.next = Some((snap, None));
            return;
        };
        tracing::debug!(node = %self.name, index = applied, ms = started.elapsed().as_millis() as u64, bytes = snap.data.len(), "table encoded for a snapshot");
        self.compaction.staging = Some(applied);
        let inbox = self.inbox_tx.clone();
        // The data is shared (`Bytes`), not copied.
        let shared = snap.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            // A file that could not be staged is written by the compaction
            // itself, on the driver, as for a small table.
            let staged = match stager(&shared) {
                Ok(staged) => Some(staged),
                Err(e) => {
                    tracing::warn!(index = applied, error = %e, "could not write a snapshot file ahead; the compaction will");
                    None
                }
            };
            tracing::debug!(
                index = applied,
                ms = started.elapsed().as_millis() as u64,
                "snapshot file staged off the driver"
            );
            let _ = deliver(
                &inbox,
                Input::SnapshotStaged {
                    snap: Box::new(shared),
                    staged,
                },
            );
        });
    }

    /// A snapshot whose file was staged off the driver is back: it waits
    /// for its tail, unless the store already holds one as new (a joiner's
    /// compaction or an installed snapshot went first).
    pub(super) fn on_snapshot_staged(&mut self, snap: Snapshot, staged: Option<StagedSnapshot>) {
        self.compaction.staging = None;
        self.compaction.off_driver += u64::from(staged.is_some());
        let stored = self
            .raw
            .store()
            .first_index()
            .unwrap_or(1)
            .saturating_sub(1);
        if snap.get_metadata().index > stored {
            self.compaction.next = Some((snap, staged));
        }
    }

    /// A snapshot of the table labelled with log index `index` and the
    /// current configuration; `None` when the log no longer knows the
    /// index's term.
    pub(super) fn snapshot_at(&self, index: u64) -> Option<Snapshot> {
        let meta = self.snapshot_meta(index)?;
        Some(with_data(meta, self.table.encode_snapshot()))
    }

    /// The metadata of a snapshot at `index`: its term and the current
    /// configuration.
    fn snapshot_meta(&self, index: u64) -> Option<SnapshotMetadata> {
        let term = self.raw.store().term(index).ok()?;
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        Some(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_compact_by_the_entry_count_alone() {
        assert!(!due(19_999, u64::MAX, 0, 20_000, SIZE_RULE_FROM));
        assert!(due(20_000, 0, 0, 20_000, SIZE_RULE_FROM));
        assert!(due(20_000, 0, SIZE_RULE_FROM - 1, 20_000, SIZE_RULE_FROM));
    }

    #[test]
    fn large_tables_wait_for_a_log_as_large_as_the_snapshot() {
        let snap = 8 * SIZE_RULE_FROM;
        assert!(!due(500_000, snap - 1, snap, 20_000, SIZE_RULE_FROM));
        assert!(due(
            500_000,
            snap * LOG_TO_SNAPSHOT,
            snap,
            20_000,
            SIZE_RULE_FROM
        ));
        // The floor still holds.
        assert!(!due(19_999, snap, snap, 20_000, SIZE_RULE_FROM));
    }

    #[test]
    fn the_log_kept_is_capped_whatever_the_snapshot() {
        let huge = 1 << 40;
        assert!(!due(
            1_000_000,
            MAX_LOG_BYTES - 1,
            huge,
            20_000,
            SIZE_RULE_FROM
        ));
        assert!(due(1_000_000, MAX_LOG_BYTES, huge, 20_000, SIZE_RULE_FROM));
    }
}
