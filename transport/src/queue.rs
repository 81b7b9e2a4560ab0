//! A peer's send queue, bounded by bytes as well as by batches.
//!
//! The queue held [`QUEUE_DEPTH`](crate::QUEUE_DEPTH) batches whatever their
//! size: 1 024 batches of 1 MiB Raft appends (raft-rs's `max_size_per_msg`
//! in peerlock) is 1 GiB per slow peer (issue 8 item 10). Now a batch is
//! also refused (dropped, as when the queue is full: Raft retries) once
//! [`QUEUE_BYTES`] are queued. A batch larger than the bound is accepted
//! into an empty queue, so one large message is never refused for ever:
//! the queue holds at most `QUEUE_BYTES` plus one batch.
//!
//! The two ends wrap tokio's channel and keep a shared count of queued
//! bytes: [`Sender::try_send`] adds, the writer's [`Receiver::recv_many`]
//! and [`Receiver::try_recv`] subtract. Both have the channel's signatures,
//! so the writer (`peer.rs`) only changed the receiver's type.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use peerlock_core::transport::PeerMessage;
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};

/// Bytes queued per peer before new batches are dropped.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// The bytes a batch holds (its Raft messages' encodings, 32 for others).
fn batch_bytes(batch: &[PeerMessage]) -> usize {
    batch
        .iter()
        .map(|m| match m {
            PeerMessage::Raft(bytes) => bytes.len() + 16,
            _ => 32,
        })
        .sum()
}

/// A queue of at most `depth` batches and about `bytes` bytes.
pub(crate) fn channel(depth: usize, bytes: usize) -> (Sender, Receiver) {
    let (tx, rx) = mpsc::channel(depth);
    let queued = Arc::new(AtomicUsize::new(0));
    let sender = Sender {
        tx,
        queued: Arc::clone(&queued),
        limit: bytes,
    };
    (sender, Receiver { rx, queued })
}

/// The sending end ([`Transport::send`](peerlock_core::transport::Transport::send)).
#[derive(Debug)]
pub(crate) struct Sender {
    tx: mpsc::Sender<Vec<PeerMessage>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl Sender {
    /// Queues `batch`, or hands it back: `Full` when the queue holds its
    /// depth in batches or its bound in bytes, `Closed` when the writer is gone.
    pub(crate) fn try_send(
        &self,
        batch: Vec<PeerMessage>,
    ) -> Result<(), TrySendError<Vec<PeerMessage>>> {
        let size = batch_bytes(&batch);
        let before = self.queued.fetch_add(size, Ordering::AcqRel);
        if before > 0 && before.saturating_add(size) > self.limit {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Err(TrySendError::Full(batch));
        }
        self.tx.try_send(batch).inspect_err(|_| {
            self.queued.fetch_sub(size, Ordering::AcqRel);
        })
    }

    /// The bytes queued now.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// The receiving end (the peer's writer).
#[derive(Debug)]
pub(crate) struct Receiver {
    rx: mpsc::Receiver<Vec<PeerMessage>>,
    queued: Arc<AtomicUsize>,
}

impl Receiver {
    /// As [`mpsc::Receiver::recv_many`] (and as cancel-safe: nothing is
    /// awaited after the channel's own call).
    pub(crate) async fn recv_many(
        &mut self,
        buf: &mut Vec<Vec<PeerMessage>>,
        limit: usize,
    ) -> usize {
        let start = buf.len();
        let n = self.rx.recv_many(buf, limit).await;
        let taken: usize = buf.iter().skip(start).map(|b| batch_bytes(b)).sum();
        self.queued.fetch_sub(taken, Ordering::AcqRel);
        n
    }

    /// As [`mpsc::Receiver::try_recv`].
    pub(crate) fn try_recv(&mut self) -> Result<Vec<PeerMessage>, TryRecvError> {
        let batch = self.rx.try_recv()?;
        self.queued.fetch_sub(batch_bytes(&batch), Ordering::AcqRel);
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QUEUE_DEPTH;

    fn appends(n: usize) -> Vec<PeerMessage> {
        vec![PeerMessage::Raft(vec![0; 1024 * 1024]); n]
    }

    /// Issue 8 item 10: a peer that does not read while the leader sends
    /// 1 MiB appends. The queue bounded by count alone (the old one) takes
    /// 1 024 of them, 1 GiB; this one stops at [`QUEUE_BYTES`], and takes
    /// again as the writer drains it. One batch over the bound still goes
    /// through an empty queue.
    #[tokio::test]
    async fn issue_8_peer_queue_is_bounded_by_bytes() {
        let (old, _old_rx) = mpsc::channel::<Vec<PeerMessage>>(QUEUE_DEPTH);
        let accepted_old = (0..QUEUE_DEPTH)
            .filter(|_| old.try_send(appends(1)).is_ok())
            .count();
        assert_eq!(accepted_old, QUEUE_DEPTH, "the old queue held 1 GiB");

        let (tx, mut rx) = channel(QUEUE_DEPTH, QUEUE_BYTES);
        let accepted = (0..QUEUE_DEPTH)
            .filter(|_| tx.try_send(appends(1)).is_ok())
            .count();
        assert!(
            accepted < QUEUE_BYTES / (1024 * 1024) + 1,
            "{accepted} MiB queued"
        );
        assert!(tx.queued_bytes() <= QUEUE_BYTES);
        assert!(matches!(
            tx.try_send(appends(1)),
            Err(TrySendError::Full(_))
        ));
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 8).await, 8);
        assert!(tx.try_send(appends(1)).is_ok(), "room again once drained");
        while rx.try_recv().is_ok() {}
        assert_eq!(tx.queued_bytes(), 0);
        assert!(
            tx.try_send(appends(100)).is_ok(),
            "one large batch into an empty queue"
        );
        assert!(tx.try_send(appends(1)).is_err());
        drop(rx);
        assert!(matches!(
            tx.try_send(vec![]),
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_))
        ));
    }
}
