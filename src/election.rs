//! Leader election on a `Node` (issue 11, item 1): `campaign`, `leader`,
//! `watch_leader`, and `run_as_leader`, which keeps one instance of a job
//! running on exactly one node.
//!
//! `run_as_leader` has the shape of client-go's `leaderelection.RunOrDie`
//! without its hazard: with `ReleaseOnCancel`, RunOrDie releases the lease
//! when its context ends while the leader's callback may still be running
//! (the warning on `ReleaseOnCancel` since kubernetes/kubernetes#71490;
//! fixes proposed in kubernetes/kubernetes#139504 and #139991). Here the job's
//! future is dropped first, and only then is the leadership released, so a
//! new leader never starts while the old job still runs in this task. (Work
//! the job spawned elsewhere is not stopped by that: the fencing token is
//! what refuses its writes.)
//!
//! Why the job is `FnMut(Leadership) -> impl Future + Send` rather than an
//! `async |l: &Leadership|` closure: the job runs in a task of its own,
//! whose future must be `Send`, and stable Rust cannot yet require `Send`
//! of an async closure's future (return type notation,
//! rust-lang/rust#109417). `Leadership` is a cheap clone instead.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};

use peerlock_core::{Error, LeaderInfo, Leadership, LockName};

use crate::node::{Node, Shared, NO_MORE_RUNS};

/// The first pause after a failed campaign in `run_as_leader`; it doubles
/// up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between failed campaigns.
const RETRY_MAX: Duration = Duration::from_secs(2);

impl Node {
    /// Campaigns for the election `name`: waits, first come first served
    /// among candidates, until this node leads, and returns the term of
    /// office (its fencing token, `is_leader()`, `lost()`, `resign()`).
    ///
    /// A waiting candidate is one parked waiter: waiting for hours costs
    /// nothing that grows. Dropping the future withdraws the candidacy.
    ///
    /// # Errors
    ///
    /// As [`Node::lock`]: `InvalidName`, `NoQuorum`, `Shutdown`, `Removed`,
    /// `TableFull`.
    pub async fn campaign(&self, name: &str) -> Result<Leadership, Error> {
        self.handle().campaign(name).await
    }

    /// [`Node::campaign`] that gives up after `timeout` with `Error::Timeout`.
    ///
    /// # Errors
    ///
    /// `Timeout` when `timeout` passes first (nothing is held or queued
    /// then); otherwise as [`Node::campaign`].
    pub async fn campaign_timeout(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Leadership, Error> {
        self.handle().campaign_timeout(name, timeout).await
    }

    /// Who leads `name` now, read linearizably (a quorum round); `None`
    /// when nobody does (no candidate yet, or the last leader's session
    /// ended and its lock-delay still runs).
    ///
    /// # Errors
    ///
    /// `NoQuorum` when no quorum answered within one session TTL;
    /// `InvalidName`; `Shutdown`.
    pub async fn leader(&self, name: &str) -> Result<Option<LeaderInfo>, Error> {
        self.handle().leader(name).await
    }

    /// A stream of who leads `name`: its current value first, then each
    /// change as this node applies the log. It never goes back in log
    /// order, across leader changes, partitions (a cut-off node's stream
    /// stands still), snapshots and this node's rejoin under a new id. It
    /// shows the latest value, so a quick succession may be seen as its
    /// last step only. For a linearizable answer use [`Node::leader`].
    ///
    /// The stream ends when the node stops, or at once for an invalid name
    /// (logged at ERROR; check names with `LockName::new` first) or when
    /// called outside a Tokio runtime.
    pub fn watch_leader(
        &self,
        name: &str,
    ) -> impl Stream<Item = Option<LeaderInfo>> + Send + Unpin + 'static {
        let (tx, rx) = watch::channel(None::<Option<LeaderInfo>>);
        match (LockName::new(name), tokio::runtime::Handle::try_current()) {
            (Ok(_), Ok(rt)) => {
                rt.spawn(forward_leader(
                    Arc::downgrade(&self.shared),
                    name.to_owned(),
                    tx,
                ));
            }
            (Err(e), _) => {
                tracing::error!(name, error = %e, "watch_leader: the stream ends at once")
            }
            (_, Err(_)) => tracing::error!(
                name,
                "watch_leader called outside a Tokio runtime: the stream ends at once"
            ),
        }
        // `None` is the placeholder before the first value is read.
        WatchStream::new(rx).filter_map(|v| v)
    }

    /// Runs `job` on exactly one node at a time: campaigns for `name`, runs
    /// `job` while this node leads, and campaigns again after each term,
    /// until the returned task is stopped (or dropped).
    ///
    /// - The job's future is dropped as soon as the term may be over
    ///   (`Leadership::lost`), before the cluster can grant the election to
    ///   another candidate; then the leadership is resigned.
    /// - When the job returns by itself, or panics (logged at ERROR), the
    ///   leadership is resigned and the node campaigns again (at the back
    ///   of the queue). The job runs in a task of its own.
    /// - [`LeaderTask::stop`] drops the job's future, then resigns, then
    ///   returns: a new leader cannot start before the old job was dropped.
    /// - A campaign that fails (`NoQuorum`, this node being removed and
    ///   joining again) is retried, with a pause from 100 ms doubling to 2 s.
    ///   The task ends on `Shutdown`, a final `Removed`, or an invalid name;
    ///   `stop()` then returns that error.
    ///
    /// The job receives a clone of the term of office: pass
    /// `l.token()` with every write it makes.
    pub fn run_as_leader<F, Fut>(&self, name: &str, job: F) -> LeaderTask
    where
        F: FnMut(Leadership) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop_tx, stop_rx) = watch::channel(false);
        let node = self.clone();
        let name = name.to_owned();
        let task = tokio::spawn(async move { lead(node, name, job, stop_rx).await });
        LeaderTask {
            stop: stop_tx,
            task: Some(task),
        }
    }
}

/// Feeds a `watch_leader` stream from the current run's holder watch, and
/// from the next run's after a rejoin, keeping log order by applied index.
async fn forward_leader(
    shared: Weak<Shared>,
    name: String,
    tx: watch::Sender<Option<Option<LeaderInfo>>>,
) {
    let mut last_index = 0;
    loop {
        let (handle, mut runs) = {
            let Some(s) = shared.upgrade() else { return };
            let (h, r) = (s.handle.read().clone(), s.runs.subscribe());
            (h, r)
        };
        let seen = *runs.borrow_and_update();
        if let Ok(mut rx) = handle.watch_holder(&name).await {
            drop(handle);
            loop {
                let v = rx.borrow_and_update().clone();
                // A later run (a rejoin) starts from an older applied
                // index than the last value shown: skip until it passes it.
                if v.index >= last_index {
                    last_index = v.index;
                    let now = v.holder.map(LeaderInfo::from);
                    tx.send_if_modified(|shown| {
                        let same = shown.as_ref().is_some_and(|s| {
                            s.as_ref().map(|l| (l.token, l.holder_id))
                                == now.as_ref().map(|l| (l.token, l.holder_id))
                        });
                        if !same {
                            *shown = Some(now);
                        }
                        !same
                    });
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    changed = rx.changed() => if changed.is_err() { break },
                }
            }
        }
        // This run stopped: follow a rejoin's next run, if one comes.
        if seen == NO_MORE_RUNS {
            return;
        }
        tokio::select! {
            _ = tx.closed() => return,
            next = runs.wait_for(|r| *r != seen) => match next {
                Ok(r) if *r != NO_MORE_RUNS => {}
                _ => return,
            },
        }
    }
}

/// Why a term of office ended.
enum TermEnd {
    Stopped,
    Lost,
    Returned,
    Panicked,
}

/// The loop of `run_as_leader`.
async fn lead<F, Fut>(
    node: Node,
    name: String,
    mut job: F,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error>
where
    F: FnMut(Leadership) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    LockName::new(&name)?;
    let mut pause = RETRY_FIRST;
    loop {
        let campaign = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(()),
            c = node.campaign(&name) => c,
        };
        let l = match campaign {
            Ok(l) => l,
            // A name in use as a semaphore stays one while anyone uses
            // it: retrying would hide the error for ever.
            Err(e @ (Error::Shutdown | Error::InvalidName { .. } | Error::WrongKind { .. })) => {
                return Err(e)
            }
            Err(e) => {
                if matches!(e, Error::Removed) && matches!(node.ready().await, Err(Error::Removed))
                {
                    return Err(e);
                }
                tracing::warn!(election = %name, error = %e, "campaign failed; trying again");
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(RETRY_MAX);
                continue;
            }
        };
        pause = RETRY_FIRST;
        tracing::info!(election = %name, token = %l.token(), "leading");
        // The job runs in a task of its own, so that a panic in it ends
        // this term (logged), not the loop.
        // Scoped: the job's task holds the election too, so a job that
        // locks the election's name is told `AlreadyHeld`, not left to
        // wait behind its own leadership.
        let mut work = tokio::spawn({
            let l = l.clone();
            let fut = job(l.clone());
            async move { l.scoped(fut).await }
        });
        let end = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => TermEnd::Stopped,
            _ = l.lost() => TermEnd::Lost,
            done = &mut work => match done {
                Err(e) if e.is_panic() => TermEnd::Panicked,
                _ => TermEnd::Returned,
            },
        };
        if !work.is_finished() {
            // Dropped before the resign below: awaiting an aborted task
            // returns once its future is gone.
            work.abort();
            let _ = work.await;
        }
        match end {
            TermEnd::Lost => {
                tracing::warn!(election = %name, token = %l.token(), "leadership lost; the job was stopped")
            }
            TermEnd::Panicked => {
                tracing::error!(election = %name, token = %l.token(), "the job panicked; resigning and campaigning again")
            }
            _ => {}
        }
        if let Err(e) = l.resign().await {
            tracing::debug!(election = %name, error = %e, "resign failed; the session's end frees the election");
        }
        if matches!(end, TermEnd::Stopped) {
            return Ok(());
        }
    }
}

/// The handle of a [`Node::run_as_leader`] loop. Dropping it stops the
/// loop in the background (the job is dropped, the leadership resigned).
#[must_use = "dropping the task stops it at once"]
pub struct LeaderTask {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl LeaderTask {
    /// Stops the loop: drops the running job (if this node leads), resigns
    /// and waits for the resign to commit (bounded by one session TTL), or
    /// withdraws the candidacy.
    ///
    /// # Errors
    ///
    /// The error that ended the loop before it was stopped: `Shutdown`
    /// (the node stopped), `Removed`, `InvalidName`, or `WrongKind` (the name is in use as a semaphore).
    pub async fn stop(mut self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(t) => t.await.unwrap_or(Err(Error::Shutdown)),
            None => Ok(()),
        }
    }

    /// Whether the loop has ended (stopped, or by an error `stop` returns).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for LeaderTask {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
