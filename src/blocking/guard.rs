//! The blocking node's lock guard: the async guard, and a share of the
//! node's runtime so that `unlock` can wait for its answer.

use std::fmt;
use std::sync::Arc;

use peerlock_core::{Error, FencingToken};

use super::Inner;

/// A held lock, from [`super::Node::lock`]. Dropping it releases the lock
/// in the background (the release is sent to the node's task; dropping
/// never blocks and is safe anywhere, inside an async runtime too).
///
/// It keeps the node's runtime alive: the node stops once its last clone
/// and its last guard are gone.
pub struct LockGuard {
    /// `Some` until `unlock` takes it.
    guard: Option<crate::LockGuard>,
    node: Arc<Inner>,
}

impl LockGuard {
    pub(super) fn new(guard: crate::LockGuard, node: &Arc<Inner>) -> Self {
        Self {
            guard: Some(guard),
            node: Arc::clone(node),
        }
    }

    fn inner(&self) -> Option<&crate::LockGuard> {
        self.guard.as_ref()
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        self.inner().map_or("", crate::LockGuard::name)
    }

    /// The fencing token of this grant. Pass it to the protected resource
    /// with every write; the resource must refuse tokens lower than the
    /// highest it has seen. It is the one defence that holds when this
    /// thread pauses (or runs on) past the lease.
    pub fn token(&self) -> FencingToken {
        self.inner()
            .map_or(FencingToken(0), crate::LockGuard::token)
    }

    /// This node's conservative view: true while the session's lease
    /// certainly holds. Once false it never turns true again for this
    /// guard. Check it between the steps of a long critical section: a
    /// blocking section cannot be cancelled when the lease is lost.
    pub fn is_held(&self) -> bool {
        self.inner().is_some_and(crate::LockGuard::is_held)
    }

    /// Releases the lock and waits until the release is committed, as
    /// [`crate::LockGuard::unlock`] (bounded by one session TTL).
    ///
    /// # Errors
    ///
    /// `NoQuorum` when the release did not commit in time while the lease
    /// still held; `Shutdown` when the node stopped; `InvalidRequest`
    /// inside a Tokio runtime (the guard is then dropped, which releases
    /// the lock in the background).
    pub fn unlock(mut self) -> Result<(), Error> {
        let Some(g) = self.guard.take() else {
            return Ok(());
        };
        let node = Arc::clone(&self.node);
        node.block_on(g.unlock())?
    }

    /// Runs `f` holding this guard, then releases it: the body of
    /// `with_lock` (see [`super::Node::with_lock`]).
    pub(super) fn run<T>(self, f: impl FnOnce(&Self) -> T) -> Result<T, Error> {
        let out = f(&self);
        let lost = Error::LockLost {
            name: self.name().to_owned(),
            token: self.token(),
        };
        // `is_held` is true only while the lease certainly holds, so a
        // grant it vouches for cannot have been taken by an expiry: the
        // result stands. Past it, the result is discarded as the async
        // `with_lock` discards one that arrives after the lease ended.
        if !self.is_held() {
            return Err(lost);
        }
        if let Err(e) = self.unlock() {
            tracing::debug!(error = %e, "release after with_lock failed; the lock is freed when the session ends");
        }
        Ok(out)
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::LockGuard")
            .field("name", &self.name())
            .field("token", &self.token())
            .finish()
    }
}
