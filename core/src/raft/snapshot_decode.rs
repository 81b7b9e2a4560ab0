//! Decoding a large received snapshot off the driver's task (issue 8,
//! item 5).
//!
//! Restoring the lock table from a snapshot of a million locks takes about
//! a second; on the driver's task that second would stall heartbeats,
//! keepalive acknowledgements and every caller of this node. So a snapshot
//! message whose data is at least [`DECODE_OFF_DRIVER_BYTES`] is held back
//! when it arrives, decoded on a blocking thread, and stepped into Raft only
//! once its table is ready; `install_snapshot` then takes that table
//! instead of decoding again. Meanwhile the leader's appends to this node
//! are refused (they follow a log this node does not have yet), which Raft
//! handles; a second snapshot while one is decoding is dropped (Raft sends
//! again). Smaller snapshots are decoded in place as before; the
//! simulator's tables (a few thousand short names at most) stay far below
//! the threshold, so its runs stay deterministic.

use super::input::deliver;
use raft::eraftpb::{Message, MessageType};

use super::{Driver, Input};
use crate::machine::LockTable;
use crate::storage::LogStore;

/// Snapshot data of at least this many bytes is decoded off the driver.
pub(crate) const DECODE_OFF_DRIVER_BYTES: usize = 1 << 20;

/// The snapshot decode in flight, and the table of the last one decoded.
#[derive(Debug, Default)]
pub(crate) struct SnapshotDecoder {
    /// (index, term) of the snapshot being decoded.
    in_flight: Option<(u64, u64)>,
    /// A decoded table waiting for its snapshot to be installed.
    ready: Option<((u64, u64), LockTable)>,
    /// How many snapshots were decoded off the driver (tests).
    pub(crate) off_driver: u64,
}

fn key_of(msg: &Message) -> (u64, u64) {
    let meta = msg.get_snapshot().get_metadata();
    (meta.index, meta.term)
}

impl<S: LogStore + Send + 'static> Driver<S> {
    /// Returns `msg` to step now, or holds a large snapshot back while its
    /// table is decoded on a blocking thread.
    pub(super) fn hold_large_snapshot(&mut self, msg: Message) -> Option<Message> {
        if msg.get_msg_type() != MessageType::MsgSnapshot
            || msg.get_snapshot().data.len() < DECODE_OFF_DRIVER_BYTES
        {
            return Some(msg);
        }
        let key = key_of(&msg);
        if self.decoder.ready.as_ref().is_some_and(|(k, _)| *k == key) {
            return Some(msg);
        }
        if self.decoder.in_flight.is_some() {
            // One decode at a time; Raft sends the snapshot again.
            return None;
        }
        self.decoder.in_flight = Some(key);
        let inbox = self.inbox_tx.clone();
        tokio::task::spawn_blocking(move || {
            let table = LockTable::restore(&msg.get_snapshot().data).ok();
            let _ = deliver(
                &inbox,
                Input::SnapshotDecoded {
                    msg: Box::new(msg),
                    table: table.map(Box::new),
                },
            );
        });
        None
    }

    /// A held-back snapshot's table is ready: keep it and step the message.
    /// A snapshot that did not decode is stepped too: `install_snapshot`
    /// decodes it again and stops the node, as for a small one.
    pub(super) fn on_snapshot_decoded(&mut self, msg: Message, table: Option<LockTable>) {
        let key = key_of(&msg);
        self.decoder.in_flight = None;
        if let Some(table) = table {
            self.decoder.ready = Some((key, table));
            self.decoder.off_driver += 1;
        }
        if let Err(e) = self.raw.step(msg) {
            tracing::debug!(node = %self.name, error = %e, "raft refused a snapshot");
        }
    }

    /// The table decoded for snapshot (`index`, `term`), if it was.
    pub(super) fn take_decoded(&mut self, index: u64, term: u64) -> Option<LockTable> {
        match self.decoder.ready.take() {
            Some((key, table)) if key == (index, term) => Some(table),
            _ => None,
        }
    }
}
