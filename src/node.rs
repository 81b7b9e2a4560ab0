//! `Node`: the handle applications hold. A thin, non-generic face over the
//! core's `NodeHandle`; clones share one node.

use std::net::SocketAddr;
use std::time::Duration;

use peerlock_core::client::{MemberInfo, NodeStatus};
use peerlock_core::{Error, LockGuard, LockInfo, NodeHandle};

use crate::builder::NodeBuilder;

/// A running peerlock node. `Clone + Send + Sync`; clones share one node.
///
/// # Shutting down
///
/// [`Node::shutdown`] releases this node's locks, hands leadership over and
/// stops. Dropping the last clone does the same in the background.
#[derive(Clone)]
pub struct Node {
    pub(crate) handle: NodeHandle,
    pub(crate) local_addr: SocketAddr,
}

impl Node {
    /// Starts configuring a node.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// Waits until a leader is known and this node's session is open.
    ///
    /// # Errors
    ///
    /// `NoQuorum` when the node is not ready within twice the session TTL
    /// (it cannot reach a majority); `Shutdown` once the node stopped.
    pub async fn ready(&self) -> Result<(), Error> {
        self.handle.ready().await
    }

    /// Acquires `name`, waiting in its FIFO queue.
    ///
    /// Cancel safety: dropping the future gives up the place in the queue
    /// (and releases the lock if it was granted meanwhile).
    pub async fn lock(&self, name: &str) -> Result<LockGuard, Error> {
        self.handle.lock(name).await
    }

    /// Acquires `name`, or fails with `Error::Timeout` after `timeout`.
    ///
    /// `Duration::ZERO` is one attempt that never queues (like
    /// [`Node::try_lock`], but `Err(Timeout)` when the lock is held); a
    /// timeout too large for the clock waits like [`Node::lock`]. Without a
    /// quorum the call fails with `NoQuorum` after about one TTL.
    pub async fn lock_timeout(&self, name: &str, timeout: Duration) -> Result<LockGuard, Error> {
        self.handle.lock_timeout(name, timeout).await
    }

    /// Acquires `name` if it is free now; `Ok(None)` if it is held.
    pub async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>, Error> {
        self.handle.try_lock(name).await
    }

    /// Runs `f` holding `name` and releases it afterwards, whatever happens.
    ///
    /// # Errors
    ///
    /// `LockLost` if the lease may have ended before `f`'s result was
    /// taken: `f` is dropped when the lease is lost while it waits, and a
    /// result that `f` returns after the lease ended (it blocked its
    /// runtime, say) is discarded, as is one whose release finds the grant
    /// already gone. Work that `f` spawned keeps running with the old token;
    /// the fencing token is what stops its writes. Acquire errors as for
    /// [`Node::lock`].
    pub async fn with_lock<T, F>(&self, name: &str, f: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        self.handle.with_lock(name, f).await
    }

    /// [`Node::with_lock`] with a bound on the wait for the lock.
    pub async fn with_lock_timeout<T, F>(
        &self,
        name: &str,
        timeout: Duration,
        f: F,
    ) -> Result<T, Error>
    where
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        self.handle.with_lock_timeout(name, timeout, f).await
    }

    /// The current holder of `name`, read linearizably (a quorum round).
    /// Fails with `NoQuorum` when no quorum answers within one session TTL.
    pub async fn holder(&self, name: &str) -> Result<Option<LockInfo>, Error> {
        self.handle.holder(name).await
    }

    /// The members, read linearizably (a quorum round): id, name, address,
    /// voter or learner, and whether the leader hears from it (issue 9).
    /// Fails with `NoQuorum` when no quorum or leader answers within one
    /// session TTL.
    pub async fn members(&self) -> Result<Vec<MemberInfo>, Error> {
        self.handle.members().await
    }

    /// This node's local view: id, role, leader, term, indexes, members.
    pub fn status(&self) -> NodeStatus {
        self.handle.status()
    }

    /// A receiver of every status change, to wait for a condition.
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<NodeStatus> {
        self.handle.watch_status()
    }

    /// The UDP address the node is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Revokes this node's guards (their `lost()` completes first), releases
    /// its locks by closing its session, hands leadership over, and stops.
    /// Then, unless `leave_on_shutdown(false)`, it leaves the membership and
    /// waits to be replaced (issue 9). Bounded: about 11 s at most, even
    /// without a quorum.
    ///
    /// # Errors
    ///
    /// `NoQuorum` when the session could not be closed: its locks are then
    /// freed one TTL later, when the session expires.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.handle.shutdown().await
    }

    /// Stops at once as a crash would: nothing is released, no one is told.
    /// For tests and demonstrations of failover.
    pub async fn kill(&self) {
        self.handle.kill().await
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.status();
        f.debug_struct("Node")
            .field("name", &s.name)
            .field("addr", &self.local_addr)
            .field("role", &s.role)
            .finish()
    }
}
