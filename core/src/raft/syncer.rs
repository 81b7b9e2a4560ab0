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

use std::sync::mpsc as std_mpsc;
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
pub(crate) struct Syncer {
    jobs: Jobs,
    pub(crate) done: mpsc::UnboundedReceiver<Done>,
}

enum Jobs {
    Thread(std_mpsc::Sender<Job>),
    Task(mpsc::UnboundedSender<Job>),
}

impl Syncer {
    /// Starts the thread. It ends when the `Syncer` is dropped.
    pub(crate) fn spawn(node: &str) -> std::io::Result<Self> {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let (tx, done) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(format!("peerlock-fsync-{node}"))
            .spawn(move || run(rx, tx))?;
        Ok(Self {
            jobs: Jobs::Thread(jobs),
            done,
        })
    }

    /// The simulator's fsync: a task on the runtime, each fsync taking
    /// `latency` of the runtime's (simulated) time. Same batching.
    pub(crate) fn spawn_task(latency: Duration) -> Self {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let (tx, done) = mpsc::unbounded_channel();
        tokio::spawn(async move {
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
        Self {
            jobs: Jobs::Task(jobs),
            done,
        }
    }

    /// Queues a Ready; false if the thread is gone.
    pub(crate) fn submit(&self, job: Job) -> bool {
        match &self.jobs {
            Jobs::Thread(j) => j.send(job).is_ok(),
            Jobs::Task(j) => j.send(job).is_ok(),
        }
    }
}

fn run(rx: std_mpsc::Receiver<Job>, tx: mpsc::UnboundedSender<Done>) {
    while let Ok(first) = rx.recv() {
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

