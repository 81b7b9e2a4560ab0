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

use std::fs::File;
use std::sync::mpsc as std_mpsc;

use raft::eraftpb::Message;
use tokio::sync::mpsc;

/// One Ready waiting for the disk.
pub(crate) struct Job {
    pub(crate) number: u64,
    /// The log file written (a handle on it); `None` if nothing was.
    pub(crate) file: Option<File>,
    pub(crate) msgs: Vec<Message>,
}

/// Readies up to `number` are durable (or the fsync failed).
pub(crate) struct Done {
    pub(crate) number: u64,
    pub(crate) msgs: Vec<Message>,
    pub(crate) error: Option<std::io::Error>,
}

/// The driver's end of the fsync thread.
pub(crate) struct Syncer {
    jobs: std_mpsc::Sender<Job>,
    pub(crate) done: mpsc::UnboundedReceiver<Done>,
}

impl Syncer {
    /// Starts the thread. It ends when the `Syncer` is dropped.
    pub(crate) fn spawn(node: &str) -> std::io::Result<Self> {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let (tx, done) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(format!("peerlock-fsync-{node}"))
            .spawn(move || run(rx, tx))?;
        Ok(Self { jobs, done })
    }

    /// Queues a Ready; false if the thread is gone.
    pub(crate) fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

fn run(rx: std_mpsc::Receiver<Job>, tx: mpsc::UnboundedSender<Done>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        // Every job wrote to the same log file, or to one that a rotation
        // replaced after syncing everything into it: syncing the newest
        // handle covers them all.
        let error = batch
            .iter()
            .rev()
            .find_map(|j| j.file.as_ref())
            .and_then(|f| f.sync_data().err());
        let number = batch.last().map_or(0, |j| j.number);
        let msgs = batch.into_iter().flat_map(|j| j.msgs).collect();
        if tx
            .send(Done {
                number,
                msgs,
                error,
            })
            .is_err()
        {
            return;
        }
    }
}
