//! `Node`: the handle applications hold. A thin, non-generic face over the
//! core's `NodeHandle`; clones share one node.
//!
//! The core handle sits behind a lock because a node the cluster removed
//! starts again under a new id (`rejoin_when_removed`, see `rejoin.rs`):
//! the same `Node` then speaks to the new core node.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use peerlock_core::client::{MemberInfo, NodeStatus};
use peerlock_core::{Error, LockGuard, LockInfo, NodeHandle};

use crate::builder::NodeBuilder;
use crate::TlsConfig;

/// A running peerlock node. `Clone + Send + Sync`; clones share one node.
///
/// # Shutting down
///
/// [`Node::shutdown`] releases this node's locks, hands leadership over and
/// stops. Dropping the last clone does the same in the background.
#[derive(Clone)]
pub struct Node {
    pub(crate) shared: Arc<Shared>,
}

/// What the clones of one `Node` share.
pub(crate) struct Shared {
    /// The core node this `Node` speaks to now (replaced by a rejoin).
    pub(crate) handle: RwLock<NodeHandle>,
    pub(crate) local_addr: SocketAddr,
    /// Set by `shutdown`/`kill`: a rejoin under way stops instead.
    pub(crate) stopping: AtomicBool,
    /// Counts the runs started by a rejoin; [`NO_MORE_RUNS`] once the
    /// rejoin watch ended (or with `rejoin_when_removed(false)`).
    pub(crate) runs: tokio::sync::watch::Sender<u64>,
    /// How long `ready` waits for a rejoin (the start-up timeout).
    pub(crate) rejoin_wait: Duration,
    /// The TLS configuration of this node's runs (`reload_tls`).
    pub(crate) tls: Arc<crate::tls_reload::TlsSlot>,
}

/// The value of `Shared::runs` once no rejoin will come.
pub(crate) const NO_MORE_RUNS: u64 = u64::MAX;

impl Node {
    /// `rejoin_wait`: `Some(bound)` when a removed node starts again by
    /// itself (`ready` waits that long for it).
    pub(crate) fn new(
        handle: NodeHandle,
        local_addr: SocketAddr,
        rejoin_wait: Option<Duration>,
        tls: Arc<crate::tls_reload::TlsSlot>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                handle: RwLock::new(handle),
                local_addr,
                stopping: AtomicBool::new(false),
                runs: tokio::sync::watch::Sender::new(if rejoin_wait.is_some() {
                    0
                } else {
                    NO_MORE_RUNS
                }),
                rejoin_wait: rejoin_wait.unwrap_or_default(),
                tls,
            }),
        }
    }

    /// The core node now: a clone, so no lock is held across an await.
    pub(crate) fn handle(&self) -> NodeHandle {
        self.shared.handle.read().clone()
    }

    /// Starts configuring a node.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// Waits until a leader is known and this node's session is open.
    ///
    /// A node the cluster removed is not ready until it has joined again
    /// under a new id (`rejoin_when_removed`, on by default): this waits
    /// for that too, up to the start-up timeout.
    ///
    /// # Errors
    ///
    /// `NoQuorum` when the node is not ready within twice the session TTL
    /// (it cannot reach a majority); `Shutdown` once the node stopped;
    /// `Removed` when the cluster removed it and it did not join again in
    /// time (or does not rejoin by itself).
    pub async fn ready(&self) -> Result<(), Error> {
        let mut runs = self.shared.runs.subscribe();
        loop {
            let seen = *runs.borrow_and_update();
            match self.handle().ready().await {
                Err(Error::Removed) if seen != NO_MORE_RUNS => {
                    let next = runs.wait_for(|r| *r != seen);
                    match tokio::time::timeout(self.shared.rejoin_wait, next).await {
                        Ok(Ok(r)) if *r != NO_MORE_RUNS => {}
                        _ => return Err(Error::Removed),
                    }
                }
                other => return other,
            }
        }
    }

    /// Acquires `name`, waiting in its FIFO queue.
    ///
    /// Cancel safety: dropping the future gives up the place in the queue
    /// (and releases the lock if it was granted meanwhile).
    ///
    /// # Errors
    ///
    /// `InvalidName` (not 1 to 256 bytes of UTF-8); `WrongKind` when `name`
    /// is in use as a semaphore; `AlreadyHeld` when this task holds `name`
    /// through this node; `NoQuorum` after about one session TTL without a
    /// quorum; `TableFull`; `Shutdown`; `Removed`.
    pub async fn lock(&self, name: &str) -> Result<LockGuard, Error> {
        self.handle().lock(name).await
    }

    /// Acquires `name`, or fails with `Error::Timeout` after `timeout`.
    ///
    /// `Duration::ZERO` is one attempt that never queues (like
    /// [`Node::try_lock`], but `Err(Timeout)` when the lock is held); a
    /// timeout too large for the clock waits like [`Node::lock`]. Without a
    /// quorum the call fails with `NoQuorum` after about one TTL.
    ///
    /// # Errors
    ///
    /// `Timeout` when `timeout` passes first (nothing is held or queued
    /// then); otherwise as [`Node::lock`].
    pub async fn lock_timeout(&self, name: &str, timeout: Duration) -> Result<LockGuard, Error> {
        self.handle().lock_timeout(name, timeout).await
    }

    /// Acquires `name` if it is free now; `Ok(None)` if it is held.
    ///
    /// # Errors
    ///
    /// As [`Node::lock`], but never `AlreadyHeld` (it never waits).
    pub async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>, Error> {
        self.handle().try_lock(name).await
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
        self.handle().with_lock(name, f).await
    }

    /// [`Node::with_lock`] with a bound on the wait for the lock.
    ///
    /// # Errors
    ///
    /// `Timeout` when `timeout` passes first (nothing is held or queued
    /// then); otherwise as [`Node::with_lock`].
    /// The closure itself is not timed.
    pub async fn with_lock_timeout<T, F>(
        &self,
        name: &str,
        timeout: Duration,
        f: F,
    ) -> Result<T, Error>
    where
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        self.handle().with_lock_timeout(name, timeout, f).await
    }

    /// The current holder of `name`, read linearizably (a quorum round).
    /// Fails with `NoQuorum` when no quorum answers within one session TTL.
    ///
    /// # Errors
    ///
    /// `NoQuorum` when no quorum answers within one session TTL;
    /// `InvalidName`; `Shutdown`; `Removed`.
    pub async fn holder(&self, name: &str) -> Result<Option<LockInfo>, Error> {
        self.handle().holder(name).await
    }

    /// The members, read linearizably (a quorum round): id, name, address,
    /// voter or learner, and whether the leader hears from it (issue 9).
    /// Fails with `NoQuorum` when no quorum or leader answers within one
    /// session TTL.
    ///
    /// # Errors
    ///
    /// `NoQuorum` as above; `Shutdown`; `Removed`.
    pub async fn members(&self) -> Result<Vec<MemberInfo>, Error> {
        self.handle().members().await
    }

    /// This node's local view: id, role, leader, term, indexes, members.
    pub fn status(&self) -> NodeStatus {
        self.handle().status()
    }

    /// A receiver of every status change, to wait for a condition.
    ///
    /// It follows one run of the node: after the cluster removed this
    /// node and it joined again under a new id (`rejoin_when_removed`),
    /// the receiver's sender is gone (`changed()` fails); call this again.
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<NodeStatus> {
        self.handle().watch_status()
    }

    /// The UDP address the node is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
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
    /// freed one TTL later, when the session expires. Stopping every node
    /// of a cluster in turn, the last one or two usually get `NoQuorum`
    /// (after about 3 s): their peers have gone, so there is no quorum to
    /// close the session with, and nobody left to want its locks.
    pub async fn shutdown(&self) -> Result<(), Error> {
        // Before reading the handle: a rejoin that swaps it in later sees
        // the flag and shuts the new node down itself (see `rejoin.rs`).
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.handle().shutdown().await
    }

    /// Rotates this node's certificate, key or trusted CAs without a
    /// restart (issue 12): every connection made from now on, accepted or
    /// dialed, uses `tls`.
    ///
    /// Connections already up stay up: they were authenticated when they
    /// were made, and the node does not close them after some time (etcd
    /// and Consul keep theirs on a reload too). They are re-made with the
    /// new configuration when they end: an idle pair's connection closes
    /// after a few seconds without messages and is dialed again on demand,
    /// a peer restarts, the network drops it. So a peer whose CA was dropped
    /// keeps a connection it already had until that connection ends; to
    /// cut a peer off at once, stop it.
    ///
    /// The node's name is its identity: `tls` must name the same member
    /// (the certificate's common name, and the member name given to
    /// [`NodeBuilder::name`], which is applied to `tls` as at start). A
    /// durable node records its data directory under the first CA of the
    /// new bundle, as a start with it would, so it still starts on its
    /// directory after the old CA left the bundle. A node that the cluster
    /// removed and that joins again (`rejoin_when_removed`) starts with the
    /// last configuration reloaded.
    ///
    /// # Rotating the CA
    ///
    /// Three reloads on every node, each step finished on every node before
    /// the next; no lock is lost and no peer refused at any step, since
    /// every pair of nodes trusts each other's certificates throughout:
    ///
    /// 1. Trust both CAs: reload every node with the bundle `new CA, old
    ///    CA` (PEM certificates concatenated, the new one first;
    ///    [`crate::certs::ClusterCa::bundle_pem`]) and its current
    ///    certificate ([`TlsConfig::with_ca_bundle`]).
    /// 2. Issue every node a certificate from the new CA for its own name,
    ///    and reload it with that certificate, its key and the same bundle
    ///    ([`crate::certs::ClusterCa::issue_node_trusting`]).
    /// 3. Drop the old CA: reload every node with the new CA alone.
    ///
    /// A node's own certificate alone (same CA) is rotated in one reload.
    /// Certificates that expire soon are logged and counted (see
    /// [`NodeBuilder::cert_expiry_warning`]).
    ///
    /// ```no_run
    /// use peerlock::certs::ClusterCa;
    /// use peerlock::{Node, TlsConfig};
    ///
    /// // One node's part; each step runs on every node before the next.
    /// // (Where the CA key lives, issue the certificates there and ship
    /// // the PEM files; then each node calls `TlsConfig::from_pem_files`.)
    /// fn rotate(node: &Node, name: &str, old: &ClusterCa, new: &ClusterCa) -> Result<(), peerlock::Error> {
    ///     let both = ClusterCa::bundle_pem(&[new, old]);
    ///     // 1. Its current certificate, both CAs trusted.
    ///     let current = TlsConfig::from_pem_files("ca.pem", "node.pem", "node.key")?;
    ///     node.reload_tls(current.with_ca_bundle(&both)?)?;
    ///     // 2. A certificate from the new CA, both CAs trusted.
    ///     let moved = new.issue_node_trusting(name, &[], &both)?;
    ///     node.reload_tls(moved.clone())?;
    ///     // 3. The new CA alone.
    ///     node.reload_tls(moved.with_ca_bundle(&new.ca_pem())?)
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// `TlsIdentityChanged` when `tls` names another member than this
    /// node: a rotation cannot rename a member. `Tls` when the material is
    /// unusable, or when the new bundle shares no CA with the running one
    /// and trusts none of the connected peers (it would cut this node off);
    /// `Config` or `Io` when the data directory cannot be
    /// recorded; `Shutdown` once the node stopped (or while a rejoin is
    /// starting its next run). Nothing is changed on an error.
    pub fn reload_tls(&self, tls: TlsConfig) -> Result<(), Error> {
        self.shared.tls.reload(tls)
    }

    /// Stops at once as a crash would (see [`crate::testing::crash`]).
    pub(crate) async fn crash(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.handle().kill().await
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.status();
        f.debug_struct("Node")
            .field("name", &s.name)
            .field("addr", &self.shared.local_addr)
            .field("role", &s.role)
            .finish()
    }
}
