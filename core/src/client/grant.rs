//! `Grant`: proof that this node's session was granted a set of claims at
//! once (issue 11): permits of a semaphore, a read or write lock, the
//! names of a multi-lock, or any mix, in one log entry with one fencing
//! token.
//!
//! It is the claims counterpart of [`LockGuard`](super::LockGuard) and
//! watches the same lease watch, so `is_held` and `lost` mean the same
//! thing: the session's lease certainly holds, or may be gone (before the
//! cluster can grant any of these names to someone else: lock-delay, as for
//! the mutex). The public guards (`Permit`, `ReadGuard`, `WriteGuard`,
//! `MultiGuard`) wrap one. Dropping it releases the whole grant
//! (`ReleaseGrant`) in the background; `unlock` waits for the release.

use crate::raft::deliver;
use std::fmt;

use tokio::sync::{mpsc, oneshot};

use super::guard::LeaseWatch;
use crate::error::Error;
use crate::machine::Claim;
use crate::raft::Input;
use crate::types::{FencingToken, RequestId, SessionId};

/// Granted claims: every name at once, one fencing token. Release it with
/// [`Grant::unlock`], or drop it.
#[must_use = "dropping the grant releases it at once"]
pub struct Grant {
    pub(crate) claims: Vec<Claim>,
    pub(crate) token: FencingToken,
    pub(crate) session: SessionId,
    /// The request the grant answered: what `ReleaseGrant` names.
    pub(crate) request: RequestId,
    pub(crate) inbox: mpsc::UnboundedSender<Input>,
    pub(crate) released: bool,
    /// The task that acquired it, per name, for refusing a nested acquire.
    pub(crate) task_holds: Vec<super::task_holds::TaskHold>,
    /// The session's lease, as this grant sees it.
    pub(crate) watch: LeaseWatch,
}

impl Grant {
    /// The fencing token of this grant: one for all its names, strictly
    /// above every earlier exclusive grant's token on each of them. Pass
    /// it to the protected resource with every write.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// The claims granted, in the order asked.
    pub fn claims(&self) -> &[Claim] {
        &self.claims
    }

    /// This node's conservative view: true while the session's lease
    /// certainly holds. Once false it never turns true again for this grant.
    pub fn is_held(&self) -> bool {
        !self.released && self.watch.is_held()
    }

    /// Completes once the lease may be gone: its end passed without a newer
    /// acknowledgement, the session ended, or the node stopped (see
    /// [`LockGuard::lost`](super::LockGuard::lost)).
    pub async fn lost(&self) {
        self.watch.lost().await;
    }

    /// Releases every claim and waits until the release is committed.
    ///
    /// Bounded as [`LockGuard::unlock`](super::LockGuard::unlock): `Ok` at
    /// once when this node has no valid lease, else `NoQuorum` if the
    /// release has not committed within one session TTL.
    ///
    /// # Errors
    ///
    /// `NoQuorum` as above; `Shutdown` when the node stopped.
    #[tracing::instrument(level = "debug", skip_all, fields(token = self.token.0))]
    pub async fn unlock(self) -> Result<(), Error> {
        let watch = self.watch.clone();
        watch.unlock_answer(self.release().await)
    }

    /// Like [`Grant::unlock`], and tells whether this release ended the
    /// grant (false: it had already ended, e.g. its lease was lost).
    pub(crate) async fn release(mut self) -> Result<bool, Error> {
        self.released = true;
        let (tx, rx) = oneshot::channel();
        deliver(
            &self.inbox,
            Input::ReleaseGrant {
                session: self.session,
                grant: self.request,
                reply: Some(tx),
            },
        )
        .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// The names, joined for an error message.
    pub(crate) fn names_joined(&self) -> String {
        let names: Vec<&str> = self.claims.iter().map(|c| c.lock.as_str()).collect();
        names.join(", ")
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.watch.dropped();
        if !self.released {
            // The node may be gone; then the session's expiry frees it.
            let _ = deliver(
                &self.inbox,
                Input::ReleaseGrant {
                    session: self.session,
                    grant: self.request,
                    reply: None,
                },
            );
        }
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("claims", &self.claims)
            .field("token", &self.token)
            .field("session", &self.session)
            .field("request", &self.request)
            .finish()
    }
}
