//! `NodeHandle`: a cheap, cloneable handle on a running node.
//!
//! # Clone and drop
//!
//! Clones share one node. When the last clone is dropped the node shuts
//! down gracefully in the background (its locks are released).
//!
//! # Cancel safety
//!
//! Dropping a `lock` future (or letting `lock_timeout` time out) gives up
//! its place in the queue: the node proposes a cancel, which removes the
//! waiter, or releases the lock if it was granted meanwhile.

use crate::raft::deliver;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use super::guard::LockGuard;
use super::status::NodeStatus;
use crate::error::Error;
use crate::metrics::Kind;
use crate::raft::{AcquireReply, Input};
use crate::types::{LockInfo, LockName};

/// How many `lock`/`try_lock`/`holder` calls of one node may wait in the
/// driver's inbox at once; further callers wait for a place before they
/// enter it, and a place is given back as soon as the driver takes the
/// call in (a parked waiter holds none). The inbox is so bounded by this
/// plus one release per held guard (issue 8, item 10).
pub const MAX_CALLS_IN_FLIGHT: usize = 4096;

struct Inner {
    inbox: mpsc::UnboundedSender<Input>,
    /// Places for calls in flight (see [`MAX_CALLS_IN_FLIGHT`]).
    calls: Arc<Semaphore>,
    /// How long `ready` waits before it reports `NoQuorum` (issue 8, item 1).
    ready_bound: Duration,
    status: watch::Receiver<NodeStatus>,
    ready: watch::Receiver<bool>,
    tickets: AtomicU64,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Which task holds which lock (issue 11, item 5).
    holds: Arc<super::task_holds::TaskHolds>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = deliver(&self.inbox, Input::Shutdown { reply: None });
    }
}

/// A handle on a running node. See the module docs for clone, drop and
/// cancel semantics.
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<Inner>,
}

impl NodeHandle {
    /// What a call to a stopped node fails with: `Removed` when the
    /// cluster removed it (issue 9), else `Shutdown`.
    pub(crate) fn gone(&self) -> Error {
        if self.inner.status.borrow().role == super::status::Role::Removed {
            Error::Removed
        } else {
            Error::Shutdown
        }
    }
}

/// Sends `Abandon` for an acquire whose future is dropped before its answer.
pub(super) struct AbandonOnDrop<'a> {
    pub(super) inbox: &'a mpsc::UnboundedSender<Input>,
    pub(super) ticket: u64,
    pub(super) armed: bool,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = deliver(
                self.inbox,
                Input::Abandon {
                    ticket: self.ticket,
                },
            );
        }
    }
}

impl NodeHandle {
    /// The inbox, for an acquire's `AbandonOnDrop`.
    pub(super) fn inbox(&self) -> &mpsc::UnboundedSender<Input> {
        &self.inner.inbox
    }

    /// A fresh acquire ticket.
    pub(super) fn ticket(&self) -> u64 {
        self.inner.tickets.fetch_add(1, Ordering::Relaxed)
    }

    /// Which task holds which name through this node.
    pub(super) fn holds(&self) -> &Arc<super::task_holds::TaskHolds> {
        &self.inner.holds
    }

    /// Hands `input` to the driver; `Shutdown` or `Removed` once it stopped.
    pub(crate) fn send_input(&self, input: Input) -> Result<(), Error> {
        deliver(&self.inner.inbox, input).map_err(|_| self.gone())
    }

    pub(crate) fn new(
        inbox: mpsc::UnboundedSender<Input>,
        status: watch::Receiver<NodeStatus>,
        ready: watch::Receiver<bool>,
        task: JoinHandle<()>,
        ready_bound: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                inbox,
                calls: Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)),
                ready_bound,
                status,
                ready,
                tickets: AtomicU64::new(1),
                task: Mutex::new(Some(task)),
                holds: Arc::default(),
            }),
        }
    }

    /// Waits until a leader is known and this node's session is open with a
    /// valid lease.
    ///
    /// # Errors
    ///
    /// `NoQuorum` when the node is not ready within twice the session TTL
    /// (it cannot reach a majority); `Shutdown` when the node stopped.
    pub async fn ready(&self) -> Result<(), Error> {
        let mut rx = self.inner.ready.clone();
        let wait = async {
            loop {
                if *rx.borrow_and_update() {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err(self.gone());
                }
            }
        };
        tokio::time::timeout(self.inner.ready_bound, wait)
            .await
            .unwrap_or(Err(Error::NoQuorum))
    }

    /// Acquires `name`, waiting in its FIFO queue for as long as it takes.
    ///
    /// # Errors
    ///
    /// `AlreadyHeld` when the calling task holds `name` through this node
    /// already (it would wait behind itself for ever; issue 11, item 5);
    /// `InvalidName`, `TableFull`, `Shutdown`, `Removed`.
    pub async fn lock(&self, name: &str) -> Result<LockGuard, Error> {
        super::observe::acquire(Kind::Mutex, name, async {
            let lock = LockName::new(name)?;
            self.inner.holds.check(&lock)?;
            loop {
                match self.acquire(&lock, true).await? {
                    AcquireReply::Granted(guard) => return Ok(self.held_by_task(guard)),
                    // Our session ended while we waited: queue again under the next one.
                    AcquireReply::SessionEnded | AcquireReply::Busy => continue,
                }
            }
        })
        .await
    }

    /// Records the calling task as the guard's holder.
    fn held_by_task(&self, mut guard: LockGuard) -> LockGuard {
        guard.task_hold = Some(self.inner.holds.hold(&guard.name, &guard.watch, None));
        guard
    }

    /// Like [`NodeHandle::lock`], but gives up after `timeout` with
    /// `Error::Timeout` (and leaves the queue).
    ///
    /// A zero `timeout` means one attempt that never queues, exactly like
    /// [`NodeHandle::try_lock`] (on every node, and with nothing left behind
    /// in the log but that one acquire); a `timeout` too large to add to
    /// the clock waits for ever, like [`NodeHandle::lock`] (issue 8, item 6).
    pub async fn lock_timeout(&self, name: &str, timeout: Duration) -> Result<LockGuard, Error> {
        if timeout.is_zero() {
            return self.try_lock(name).await?.ok_or(Error::Timeout);
        }
        super::observe::with_timeout(Kind::Mutex, timeout, self.lock(name)).await
    }

    /// Acquires `name` only if it is free right now; never waits in the queue.
    pub async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>, Error> {
        super::observe::acquire(Kind::Mutex, name, async {
            let lock = LockName::new(name)?;
            loop {
                match self.acquire(&lock, false).await? {
                    AcquireReply::Granted(guard) => return Ok(Some(self.held_by_task(guard))),
                    AcquireReply::Busy => return Ok(None),
                    AcquireReply::SessionEnded => continue,
                }
            }
        })
        .await
    }

    async fn acquire(&self, lock: &LockName, wait: bool) -> Result<AcquireReply, Error> {
        let place = self.place().await?;
        let ticket = self.inner.tickets.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        deliver(
            &self.inner.inbox,
            Input::Acquire {
                ticket,
                lock: lock.clone(),
                wait,
                reply: tx,
                place,
            },
        )
        .map_err(|_| self.gone())?;
        let mut abandon = AbandonOnDrop {
            inbox: &self.inner.inbox,
            ticket,
            armed: true,
        };
        let answer = rx.await;
        abandon.armed = false;
        answer.map_err(|_| self.gone())?
    }

    /// The current holder of `name`, read linearizably (a quorum round).
    #[tracing::instrument(level = "debug", skip_all, fields(lock = name))]
    pub async fn holder(&self, name: &str) -> Result<Option<LockInfo>, Error> {
        let lock = LockName::new(name)?;
        let place = self.place().await?;
        let (tx, rx) = oneshot::channel();
        deliver(
            &self.inner.inbox,
            Input::Holder {
                lock,
                reply: tx,
                place,
            },
        )
        .map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }

    /// The members, linearizable: confirmed by a quorum round, read from
    /// the applied member table and configuration, with each member's
    /// liveness as the leader judges it (issue 9).
    ///
    /// # Errors
    ///
    /// `NoQuorum` when no quorum round or leader answer came within one
    /// session TTL; `Shutdown` when the node stopped.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn members(&self) -> Result<Vec<crate::client::MemberInfo>, Error> {
        let place = self.place().await?;
        let (tx, rx) = oneshot::channel();
        deliver(&self.inner.inbox, Input::Members { reply: tx, place }).map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }

    /// This node's local view of itself and the cluster.
    pub fn status(&self) -> NodeStatus {
        self.inner.status.borrow().clone()
    }

    /// A receiver that sees every status change (for waiting on a condition).
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.inner.status.clone()
    }

    /// Revokes this node's guards (their `lost()` completes), releases its
    /// locks by closing its session, hands leadership over, and stops.
    ///
    /// Each phase is bounded, so this returns within about 6 s even without
    /// a quorum (issue 8, item 1).
    ///
    /// # Errors
    ///
    /// `NoQuorum` when the session could not be closed in time: its locks
    /// are then freed when the session expires, one TTL later. Calling it
    /// again on a stopped node returns `Ok`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn shutdown(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let mut result = Ok(());
        if deliver(&self.inner.inbox, Input::Shutdown { reply: Some(tx) }).is_ok() {
            result = rx.await.unwrap_or(Ok(()));
        }
        self.join().await;
        result
    }

    /// Stops the node at once, as a crash would: nothing is released and no
    /// one is told. Its sessions expire on the other nodes after their TTL.
    /// Meant for tests and demonstrations.
    pub async fn kill(&self) {
        let _ = deliver(&self.inner.inbox, Input::Kill);
        self.join().await;
    }

    /// Stops the node's task where it stands, mid-step if need be (the
    /// simulator's crash: not even a kill message is processed).
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn abort(&self) {
        if let Some(task) = self.inner.task.lock().take() {
            task.abort();
        }
    }

    /// Whether the node's task has ended (stopped, failed, or panicked).
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn has_stopped(&self) -> bool {
        self.inner
            .task
            .lock()
            .as_ref()
            .is_none_or(|t| t.is_finished())
    }

    /// Asks this node, if it leads, to hand leadership to `to`.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn transfer_leader(&self, to: crate::types::NodeId) {
        let _ = deliver(&self.inner.inbox, Input::TransferLeader { to });
    }

    /// The applied index and state hash of the node's lock table.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) async fn state_hash(&self) -> Result<(u64, u64), Error> {
        let (tx, rx) = oneshot::channel();
        deliver(&self.inner.inbox, Input::StateHash { reply: tx }).map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())
    }

    /// Counts of the node's bookkeeping (tests of what must stay bounded).
    #[cfg(any(test, feature = "sim"))]
    pub async fn inspect(&self) -> Result<crate::raft::Inspection, Error> {
        let (tx, rx) = oneshot::channel();
        deliver(&self.inner.inbox, Input::Inspect { reply: tx }).map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())
    }

    /// A place in the inbox (see [`MAX_CALLS_IN_FLIGHT`]).
    pub(super) async fn place(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        Arc::clone(&self.inner.calls)
            .acquire_owned()
            .await
            .map_err(|_| self.gone())
    }

    async fn join(&self) {
        let task = self.inner.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
