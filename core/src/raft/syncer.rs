//! The fsync thread of a durable node: raft-rs's asynchronous Ready.
//!
//! The driver writes each Ready's entries and hard state to the log without
//! waiting for the disk, hands the Ready's number and the messages that
//! depend on it (votes, append acknowledgements) to this thread, and goes
//! on. The thread fsyncs (one fsync covers every Ready queued since the
//! last) and only then returns them: the driver tells raft-rs the Ready is
//! persisted (`on_persist_ready`) and sends those messages. So nothing that
//! depends on a write is ever sent before the write is durable, and the
//! leader counts its own entries toward a commit only once they are; but
//! the driver keeps taking proposals and acknowledgements while the disk
//! works.
//!
//! A Ready that wrote nothing durable (no entries, no new term or vote: a
//! commit index at most, which the store writes unsynced by design) comes
//! with no file. Its messages still wait for every Ready queued before it,
//! and a batch syncs only if one of its Readies wrote: a batch of such
//! Readies alone costs no fsync. (Each used to carry the file, so a
//! follower's commit-only Ready ran an fsync of its own in front of the
//! next append's, in series on the acknowledgement path; issue 10's
//! timeline of one lock pair showed it.)

use std::time::Duration;

use raft::eraftpb::Message;
use tokio::sync::mpsc;

use crate::storage::SyncHandle;

/// One Ready waiting for the disk.
pub(crate) struct Job {
    pub(crate) number: u64,
    /// The log file written (a handle on it); `None` if nothing was.
    pub(crate) file: Option<Box<dyn SyncHandle>>,
    pub(crate) msgs: Vec<Message>,
}

/// Readies up to `number` are durable (or the fsync failed).
pub(crate) struct Done {
    pub(crate) number: u64,
    pub(crate) msgs: Vec<Message>,
    pub(crate) error: Option<std::io::Error>,
}

/// The driver's end of the fsync thread (or task).
///
/// Jobs go to the thread on a tokio channel, received with
/// `blocking_recv`: the same channel type as the simulator's task, where
/// a `std::sync::mpsc` channel compiled its three flavours for one type:
/// 42 KiB of every durable application's binary, measured (issue 12,
/// item 9).
pub(crate) struct Syncer {
    jobs: mpsc::UnboundedSender<Job>,
    pub(crate) done: mpsc::UnboundedReceiver<Done>,
}

impl Syncer {
    /// Starts the thread. It ends when the `Syncer` is dropped.
    pub(crate) fn spawn(node: &str) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::unbounded_channel::<Job>();
        let (tx, done) = mpsc::unbounded_channel();
        // A thread of its own, outside the runtime: `blocking_recv` may
        // block there.
        std::thread::Builder::new()
            .name(format!("peerlock-fsync-{node}"))
            .spawn(move || run(rx, tx))?;
        Ok(Self { jobs, done })
    }

    /// The simulator's fsync: a task on the runtime, each fsync taking
    /// `latency` of the runtime's (simulated) time. Same batching.
    pub(crate) fn spawn_task(latency: Duration) -> Self {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let (tx, done) = mpsc::unbounded_channel();
        crate::task::spawn(async move {
            while let Some(first) = rx.recv().await {
                tokio::time::sleep(latency).await;
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                if !finish(batch, &tx) {
                    return;
                }
            }
        });
        Self { jobs, done }
    }

    /// Queues a Ready; false if the thread is gone.
    pub(crate) fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

fn run(mut rx: mpsc::UnboundedReceiver<Job>, tx: mpsc::UnboundedSender<Done>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        if !finish(batch, &tx) {
            return;
        }
    }
}

/// Syncs one batch and reports it; false once the driver is gone.
fn finish(batch: Vec<Job>, tx: &mpsc::UnboundedSender<Done>) -> bool {
    // Every job wrote to the same log file, or to one that a rotation
    // replaced after syncing everything into it: syncing the newest handle
    // covers them all.
    tracing::trace!(target: super::TIMELINE, readies = batch.len(), "fsync start");
    let error = batch
        .iter()
        .rev()
        .find_map(|j| j.file.as_ref())
        .and_then(|f| f.sync().err());
    tracing::trace!(target: super::TIMELINE, "fsync end");
    let number = batch.last().map_or(0, |j| j.number);
    let msgs = batch.into_iter().flat_map(|j| j.msgs).collect();
    tx.send(Done {
        number,
        msgs,
        error,
    })
    .is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::storage::SyncHandle;

    /// Counts its fsyncs; the first waits at `gate` if there is one.
    struct Disk {
        syncs: Arc<AtomicUsize>,
        gate: Option<Arc<Barrier>>,
    }

    impl SyncHandle for Disk {
        fn sync(&self) -> std::io::Result<()> {
            if let Some(g) = &self.gate {
                g.wait();
            }
            self.syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn ack(index: u64) -> Message {
        Message {
            index,
            ..Message::default()
        }
    }

    fn job(number: u64, disk: Option<Disk>, index: u64) -> Job {
        Job {
            number,
            file: disk.map(|d| Box::new(d) as Box<dyn SyncHandle>),
            msgs: vec![ack(index)],
        }
    }

    /// Issue 10: an acknowledgement of a write never leaves before the
    /// fsync that makes the write durable (the follower must not ack an
    /// append it could lose), and a Ready queued after it (one that wrote
    /// nothing) waits for that same fsync.
    #[test]
    fn issue_10_messages_of_a_write_wait_for_its_fsync() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime builds");
        let syncs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Barrier::new(2));
        let mut s = Syncer::spawn("t").expect("the thread starts");
        let disk = Disk {
            syncs: syncs.clone(),
            gate: Some(gate.clone()),
        };
        assert!(s.submit(job(1, Some(disk), 7)));
        assert!(s.submit(job(2, None, 8)));
        std::thread::sleep(Duration::from_millis(50));
        assert!(s.done.try_recv().is_err(), "acked before the fsync");
        gate.wait();
        let mut acked = Vec::new();
        while acked.len() < 2 {
            let done = rt.block_on(s.done.recv()).expect("a report");
            assert!(done.error.is_none());
            assert_eq!(syncs.load(Ordering::SeqCst), 1, "reported before its fsync");
            acked.extend(done.msgs.iter().map(|m| m.index));
        }
        assert_eq!(acked, [7, 8], "in order, after the write's fsync");
    }

    /// Issue 10: a Ready that wrote nothing durable costs no fsync of its
    /// own; one that wrote always gets one.
    #[test]
    fn issue_10_a_ready_that_wrote_nothing_costs_no_fsync() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime builds");
        let syncs = Arc::new(AtomicUsize::new(0));
        let disk = || Disk {
            syncs: syncs.clone(),
            gate: None,
        };
        let mut s = Syncer::spawn("t").expect("the thread starts");
        for (n, wrote) in [(1, true), (2, false), (3, false), (4, true), (5, false)] {
            assert!(s.submit(job(n, wrote.then(disk), n)));
            let mut upto = 0;
            while upto < n {
                let done = rt.block_on(s.done.recv()).expect("a report");
                upto = done.number;
            }
        }
        assert_eq!(
            syncs.load(Ordering::SeqCst),
            2,
            "one fsync per write, none otherwise"
        );
    }
}
