//! Acquiring claims (issue 11): the one call under semaphores, read-write
//! locks and multi-locks. A request carries claims on names (exclusive,
//! shared, or permits of a semaphore) and is granted in one log entry on
//! all of them, or queued FIFO on all of them (never holding some while
//! waiting for others, so two requests cannot deadlock), with one fencing
//! token.
//!
//! The claims are checked here with [`validate_claims`] before anything is
//! proposed: a bad request is a typed error and spends no log entry (the
//! table would answer the same check with `Invalid`, after an entry).
//!
//! Cancel safety, timeouts, retries and the lease check are the mutex
//! acquire's (see [`NodeHandle::lock`]): the driver tracks a claims acquire
//! as it tracks a mutex acquire, with the same idempotent request key.

use std::time::Duration;

use tokio::sync::oneshot;

use super::grant::Grant;
use super::handle::{AbandonOnDrop, NodeHandle};
use super::observe::kind_of;
use crate::error::Error;
use crate::machine::{validate_claims, Claim, ClaimKind, GrantInfo, NameInfo, NameKind};
use crate::raft::{AcquireReply, Input};
use crate::types::{FencingToken, LockName, NodeId, NodeName};

/// Who holds a name and how, as [`NodeHandle::holders`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HoldersInfo {
    /// A lock (mutex, read-write lock, multi-lock name) or a semaphore and
    /// its permit count.
    pub kind: NameKind,
    /// Every grant on the name: the exclusive one, or the shared ones
    /// (readers, permit holders) in grant order.
    pub holders: Vec<HolderInfo>,
    /// Permits in use (0 for a lock).
    pub permits_used: u64,
    /// How many requests wait in the name's queue.
    pub waiters: usize,
    /// Whether the name awaits its handoff after a holder's session ended
    /// (expired or closed): the leader hands it on after the lock-delay.
    pub awaiting_handoff: bool,
    /// The grants of ended sessions the name keeps until that handoff, in
    /// grant order: they still count as held (their permits in use, a
    /// reader excluding writers, an exclusive grant excluding everyone),
    /// which is why a request that does not fit beside them waits; others
    /// are granted beside them. Not in `holders` nor in `permits_used`.
    pub expired: Vec<HolderInfo>,
}

/// One grant on a name, in [`HoldersInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HolderInfo {
    /// The grant's fencing token.
    pub token: FencingToken,
    /// The name of the holding node.
    pub holder: NodeName,
    /// The id of the holding node.
    pub holder_id: NodeId,
    /// How it holds the name (exclusive, shared, or `n` permits).
    pub kind: ClaimKind,
    /// How long the grant has been held (issue 12, item 6), measured by
    /// the node that answered on its clock (monotonic, counting host
    /// suspend): from when it applied the entry that made the grant, to
    /// the answer. The leader applies that entry as it commits it, a
    /// follower up to one replication round later, so a follower's age is
    /// short by that lag (milliseconds on a healthy network); entries are
    /// timed per batch of applied entries, so ages are good to about a
    /// millisecond. `None` when this node did not apply that entry in its
    /// current run (it restarted since, or the grant came in a snapshot),
    /// and for `expired` grants (their session is gone).
    pub age: Option<Duration>,
}

impl From<GrantInfo> for HolderInfo {
    fn from(g: GrantInfo) -> Self {
        Self {
            token: g.token,
            holder: g.holder,
            holder_id: g.holder_id,
            kind: g.kind,
            age: None,
        }
    }
}

impl From<NameInfo> for HoldersInfo {
    fn from(i: NameInfo) -> Self {
        Self {
            kind: i.kind,
            holders: i.holders.into_iter().map(HolderInfo::from).collect(),
            permits_used: i.permits_used,
            waiters: i.waiters,
            awaiting_handoff: i.awaiting_handoff,
            expired: i.expired.into_iter().map(HolderInfo::from).collect(),
        }
    }
}

/// `validate_claims` as the caller's typed error.
/// The first claim's name, for the acquire's span (a multi-lock's others
/// are in its claims).
fn first_name(claims: &[Claim]) -> &str {
    claims.first().map_or("", |c| c.lock.as_str())
}

fn check(claims: &[Claim]) -> Result<(), Error> {
    validate_claims(claims).map_err(|e| Error::InvalidRequest {
        reason: e.to_string(),
    })
}

impl NodeHandle {
    /// Acquires every claim at once, waiting FIFO on all names.
    ///
    /// # Errors
    ///
    /// `InvalidRequest` past the limits of [`validate_claims`];
    /// `AlreadyHeld` when the calling task holds one of the names through
    /// this node already (issue 11, item 5); `WrongKind` when a name is in
    /// use as another kind or count; `TableFull`, `NoQuorum`, `Shutdown`,
    /// `Removed`.
    pub async fn acquire_claims(&self, claims: Vec<Claim>) -> Result<Grant, Error> {
        let (kind, name) = (kind_of(&claims), first_name(&claims));
        super::observe::acquire(kind, name, async {
            check(&claims)?;
            for c in &claims {
                self.holds().check_claim(c)?;
            }
            loop {
                match self.send_claims(&claims, true).await? {
                    AcquireReply::Granted(grant) => return Ok(self.grant_held_by_task(grant)),
                    // The session ended while we waited: queue again.
                    AcquireReply::SessionEnded | AcquireReply::Busy => continue,
                }
            }
        })
        .await
    }

    /// Acquires every claim only if the FIFO rule grants them all right
    /// now; never waits in a queue. `Ok(None)` when not.
    ///
    /// # Errors
    ///
    /// As [`NodeHandle::acquire_claims`], but never `AlreadyHeld` (it
    /// cannot wait behind itself).
    pub async fn try_acquire_claims(&self, claims: Vec<Claim>) -> Result<Option<Grant>, Error> {
        let (kind, name) = (kind_of(&claims), first_name(&claims));
        super::observe::acquire(kind, name, async {
            check(&claims)?;
            loop {
                match self.send_claims(&claims, false).await? {
                    AcquireReply::Granted(grant) => {
                        return Ok(Some(self.grant_held_by_task(grant)))
                    }
                    AcquireReply::Busy => return Ok(None),
                    AcquireReply::SessionEnded => continue,
                }
            }
        })
        .await
    }

    /// Like [`NodeHandle::acquire_claims`], but gives up after `timeout`
    /// with `Error::Timeout` (and leaves the queues). A zero `timeout` is
    /// one attempt that never queues, as [`NodeHandle::lock_timeout`].
    pub async fn acquire_claims_timeout(
        &self,
        claims: Vec<Claim>,
        timeout: Duration,
    ) -> Result<Grant, Error> {
        if timeout.is_zero() {
            return self.try_acquire_claims(claims).await?.ok_or(Error::Timeout);
        }
        let kind = kind_of(&claims);
        super::observe::with_timeout(kind, timeout, self.acquire_claims(claims)).await
    }

    /// Who holds `name` and how (kind, holders with tokens, permits in
    /// use, waiters), read linearizably (a quorum round); `None` when the
    /// name is not in use.
    ///
    /// # Errors
    ///
    /// `NoQuorum` when no quorum answered within one session TTL;
    /// `InvalidName`; `Shutdown`.
    #[tracing::instrument(level = "debug", skip_all, fields(lock = name))]
    pub async fn holders(&self, name: &str) -> Result<Option<HoldersInfo>, Error> {
        let lock = LockName::new(name)?;
        let place = self.place().await?;
        let (tx, rx) = oneshot::channel();
        self.send_input(Input::Holders {
            lock,
            reply: tx,
            place,
        })?;
        rx.await.map_err(|_| self.gone())?
    }

    /// Records the calling task as the holder of each of the grant's names.
    fn grant_held_by_task(&self, mut grant: Grant) -> Grant {
        grant.task_holds = grant
            .claims
            .iter()
            .map(|c| {
                let permits = match c.kind {
                    crate::machine::ClaimKind::Permits { n, .. } => Some(n),
                    _ => None,
                };
                self.holds().hold(&c.lock, &grant.watch, permits)
            })
            .collect();
        grant
    }

    async fn send_claims(
        &self,
        claims: &[Claim],
        wait: bool,
    ) -> Result<AcquireReply<Grant>, Error> {
        let place = self.place().await?;
        let ticket = self.ticket();
        let (tx, rx) = oneshot::channel();
        self.send_input(Input::AcquireClaims {
            ticket,
            claims: claims.to_vec(),
            wait,
            reply: tx,
            place,
        })?;
        let mut abandon = AbandonOnDrop {
            inbox: self.inbox(),
            ticket,
            armed: true,
        };
        let answer = rx.await;
        abandon.armed = false;
        answer.map_err(|_| self.gone())?
    }
}
