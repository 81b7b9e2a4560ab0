//! `LockGuard`: proof that this node's session was granted a lock.
//!
//! The guard carries the fencing token and watches its session's lease.
//! Dropping it releases the lock in the background; `unlock` releases it
//! and waits for the release to commit.

use crate::raft::deliver;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::Error;
use crate::raft::Input;
use crate::types::{FencingToken, LockName, SessionId};

/// How often [`LockGuard::lost`] looks at the lease's end again while it
/// waits (a suspend stops the timers but not the lease's clock).
pub(crate) const LOST_RECHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// The lease of one session as its node sees it; shared with guards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LeaseView {
    /// The lease holds until this instant (if ever acknowledged).
    pub(crate) valid_until: Option<Instant>,
    /// The session ended (expired, closed, or the node stopped).
    pub(crate) ended: bool,
}

impl LeaseView {
    pub(crate) fn holds(&self, now: Instant) -> bool {
        !self.ended && self.valid_until.is_some_and(|u| now < u)
    }
}

/// What a grant's holder watches to know whether its lease still holds:
/// the session's lease, the node's clock, and whether this grant already
/// reported the lease gone. Every kind of grant (a lock, a leadership, a
/// permit) carries one, so all of them answer `is_held` and `lost` alike.
#[derive(Clone)]
pub(crate) struct LeaseWatch {
    pub(crate) lease: watch::Receiver<LeaseView>,
    /// The node's clock, which the lease's end is read on.
    pub(crate) clock: Clock,
    /// Set once this grant has reported the lease gone (`is_held()` false
    /// or `lost()` complete): a late acknowledgement that renews the
    /// session's lease never makes this grant held again (issue 8, item 11).
    /// Shared by the clones of one grant.
    pub(crate) gone: Arc<AtomicBool>,
    /// When the grant was handed over (the hold time's start; the
    /// process's monotonic clock, as metrics are read on it).
    pub(crate) granted_at: std::time::Instant,
}

impl LeaseWatch {
    pub(crate) fn new(lease: watch::Receiver<LeaseView>, clock: Clock) -> Self {
        Self {
            lease,
            clock,
            gone: Arc::default(),
            granted_at: std::time::Instant::now(),
        }
    }

    /// True while the session's lease certainly holds; once false, false
    /// for ever.
    /// An unlock's answer from its release's: `Ok` also when the release
    /// did not commit but the lease is gone (the grant is no longer the
    /// caller's, and the node keeps retrying the release; issue 8, item 1).
    pub(crate) fn unlock_answer(&self, released: Result<bool, Error>) -> Result<(), Error> {
        match released {
            Ok(_) => Ok(()),
            Err(Error::NoQuorum) if !self.holds_now() => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn is_held(&self) -> bool {
        if self.gone.load(Ordering::Acquire) {
            return false;
        }
        let held = self.lease.has_changed().is_ok() && self.lease.borrow().holds(self.clock.now());
        if !held {
            self.mark_gone();
        }
        held
    }

    /// Whether the lease holds now, without marking the grant gone.
    pub(crate) fn holds_now(&self) -> bool {
        self.lease.borrow().holds(self.clock.now())
    }

    /// Completes once the lease may be gone (see [`LockGuard::lost`]).
    pub(crate) async fn lost(&self) {
        self.wait_lost().await;
        self.mark_gone();
    }

    /// Marks the grant gone; the first time, counts a `lost()` notice.
    fn mark_gone(&self) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            crate::metrics::count(crate::metrics::LOCKS_LOST);
        }
    }

    /// The grant's guard went away: its hold time and release are counted.
    pub(crate) fn dropped(&self) {
        crate::metrics::released(self.granted_at.elapsed());
    }

    async fn wait_lost(&self) {
        if self.gone.load(Ordering::Acquire) {
            return;
        }
        let mut rx = self.lease.clone();
        loop {
            let view = *rx.borrow_and_update();
            let Some(until) = view.valid_until else {
                return;
            };
            if view.ended || self.clock.now() >= until {
                return;
            }
            let wake = self
                .clock
                .true_instant(until)
                .min(Instant::now() + LOST_RECHECK);
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(wake) => {}
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A granted lock. Release it with [`LockGuard::unlock`], or drop it.
///
/// # Cancel safety and drop
///
/// Dropping the guard sends a release to the node without blocking; the
/// lock is free once that release commits. If the node is gone, the lock is
/// freed when the session expires.
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    pub(crate) name: LockName,
    pub(crate) token: FencingToken,
    pub(crate) session: SessionId,
    pub(crate) inbox: mpsc::UnboundedSender<Input>,
    pub(crate) released: bool,
    /// The task that acquired it, for refusing a nested acquire (issue 11).
    pub(crate) task_hold: Option<super::task_holds::TaskHold>,
    /// The session's lease, as this grant sees it.
    pub(crate) watch: LeaseWatch,
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The fencing token of this grant. Pass it to the protected resource
    /// with every write; the resource must refuse tokens lower than the
    /// highest it has seen.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// This node's conservative view: true while the session's lease
    /// certainly holds. Once false it never turns true again for this guard.
    pub fn is_held(&self) -> bool {
        !self.released && self.watch.is_held()
    }

    /// Completes once the lease may be gone: its end passed without a newer
    /// acknowledgement, the session ended, or the node stopped.
    ///
    /// Within 200 ms of a host's resume from suspend: timers run
    /// on the monotonic clock, which stood still while the host slept, so
    /// the lease's end is looked at again at that period rather than
    /// trusted to one timer.
    pub async fn lost(&self) {
        self.watch.lost().await;
    }

    /// Releases the lock and waits until the release is committed.
    ///
    /// Bounded (issue 8, item 1): when this node has no valid lease the
    /// call returns `Ok` at once (the grant ends with the session, or with
    /// the release, which the node keeps retrying); otherwise it fails with
    /// `NoQuorum` if the release has not committed within one session TTL.
    ///
    /// # Errors
    ///
    /// `NoQuorum` as above; `Shutdown` when the node stopped.
    #[tracing::instrument(level = "debug", skip_all, fields(lock = self.name.as_str(), token = self.token.0))]
    pub async fn unlock(self) -> Result<(), Error> {
        let watch = self.watch.clone();
        watch.unlock_answer(self.release().await)
    }

    /// Like [`LockGuard::unlock`], and tells whether this release freed the
    /// lock (false: the grant had already ended, e.g. its lease was lost).
    /// The history checker needs the difference; the public API does not.
    pub(crate) async fn release(mut self) -> Result<bool, Error> {
        self.released = true;
        let (tx, rx) = oneshot::channel();
        deliver(
            &self.inbox,
            Input::Release {
                session: self.session,
                lock: self.name.clone(),
                token: self.token,
                reply: Some(tx),
            },
        )
        .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.watch.dropped();
        if !self.released {
            // The node may be gone; then the session's expiry frees the lock.
            let _ = deliver(
                &self.inbox,
                Input::Release {
                    session: self.session,
                    lock: self.name.clone(),
                    token: self.token,
                    reply: None,
                },
            );
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("token", &self.token)
            .field("session", &self.session)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Issue 8, item 11: once `is_held()` has said false it never says true
    /// again, even when a late acknowledgement renews the session's lease.
    #[tokio::test(start_paused = true)]
    async fn is_held_never_turns_true_again_after_a_late_renewal() {
        let now = Instant::now();
        let (lease_tx, lease) = watch::channel(LeaseView {
            valid_until: Some(now + Duration::from_secs(1)),
            ended: false,
        });
        let (inbox, _rx) = mpsc::unbounded_channel();
        let g = LockGuard {
            name: LockName::new("x").unwrap(),
            token: FencingToken(7),
            session: SessionId(1),
            inbox,
            released: false,
            task_hold: None,
            watch: LeaseWatch::new(lease, Clock::real()),
        };
        assert!(g.is_held());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!g.is_held(), "the lease ran out");
        lease_tx.send_modify(|v| v.valid_until = Some(Instant::now() + Duration::from_secs(5)));
        assert!(
            !g.is_held(),
            "a renewal after the loss must not revive the guard"
        );
        // lost() completes at once, too.
        tokio::time::timeout(Duration::from_millis(1), g.lost())
            .await
            .unwrap();
    }
}
