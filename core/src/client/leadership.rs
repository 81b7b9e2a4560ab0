//! Leader election (issue 11, item 1): a campaign is an acquire of the
//! election's name, the leader is its holder, and the leadership is the
//! grant, so it has the mutex's three promises: agreed through the log, a
//! fencing token with every term of office, and a leader that learns of its
//! loss (`lost()`) before the cluster can grant the name to a candidate
//! (the lease and lock-delay rules of the mutex, DESIGN "Leases").
//!
//! Candidates wait in the name's FIFO queue, so a standby that waits for
//! hours is one parked waiter: it costs nothing that grows with time.
//!
//! Why a `Leadership` is `Clone` while a `LockGuard` is not: the leader's
//! work usually runs in a task of its own (`run_as_leader` hands it a
//! clone), and every clone must see the loss. The grant is released once,
//! by [`Leadership::resign`] or when the last clone is dropped.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::guard::{LeaseWatch, LockGuard};
use super::handle::NodeHandle;
use crate::error::Error;
use crate::raft::HolderView;
use crate::types::{FencingToken, LockInfo, LockName, NodeId, NodeName};

/// Who leads an election, as [`NodeHandle::leader`] and the leader watch
/// report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The leader's fencing token: it rises with every new term of office
    /// (and with every grant of the name: a token is the log index of the
    /// grant plus the cluster's token base).
    pub token: FencingToken,
    /// The leader's node name.
    pub holder: NodeName,
    /// The leader's node id.
    pub holder_id: NodeId,
    /// How many candidates wait behind the leader.
    pub candidates: usize,
}

impl From<LockInfo> for LeaderInfo {
    fn from(i: LockInfo) -> Self {
        Self {
            token: i.token,
            holder: i.holder,
            holder_id: i.holder_id,
            candidates: i.waiters,
        }
    }
}

/// This node's term of office in an election. See the module docs.
///
/// `is_leader()` turns false, and `lost()` completes, once the lease may
/// be gone, before any other candidate can be granted the name. Pass
/// `token()` with every write the leader makes, so that a resource can
/// refuse a deposed leader that did not notice in time (a paused process).
#[derive(Clone)]
pub struct Leadership {
    name: LockName,
    token: FencingToken,
    watch: LeaseWatch,
    /// The grant; taken by `resign`, dropped with the last clone.
    guard: Arc<Mutex<Option<LockGuard>>>,
}

impl Leadership {
    pub(crate) fn new(guard: LockGuard) -> Self {
        Self {
            name: guard.name.clone(),
            token: guard.token,
            watch: guard.watch.clone(),
            guard: Arc::new(Mutex::new(Some(guard))),
        }
    }

    /// The election's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The fencing token of this term of office.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// This node's conservative view: true while this term of office
    /// certainly holds. Once false (lease gone, or resigned) it stays false.
    pub fn is_leader(&self) -> bool {
        // Planted bug (feature `teeth`, sim helper): the loss is not told.
        let skip = crate::teeth::planted(crate::teeth::Bug::SkipLeaderLossNotice);
        self.guard.lock().is_some() && (skip || self.watch.is_held())
    }

    /// Completes once this term of office may be over: the lease may have
    /// run out, the session ended, the node stopped, or it resigned.
    pub async fn lost(&self) {
        if crate::teeth::planted(crate::teeth::Bug::SkipLeaderLossNotice) {
            std::future::pending::<()>().await; // planted bug (sim helper)
        }
        self.watch.lost().await;
    }

    /// Runs `fut` in the calling task as a holder of this term of office:
    /// a `lock`, `campaign` or other waiting acquire of the election's name
    /// made inside it through this node is refused with
    /// `Error::AlreadyHeld` instead of waiting behind this leadership for
    /// ever (issue 11, item 5). `run_as_leader` runs its job this way; use
    /// it for work a leader hands to a task of its own.
    pub async fn scoped<F: std::future::Future>(&self, fut: F) -> F::Output {
        let hold = {
            let guard = self.guard.lock();
            guard
                .as_ref()
                .and_then(|g| g.task_hold.as_ref())
                .map(|h| h.also_in_current_task(&self.watch))
        };
        let out = fut.await;
        drop(hold);
        out
    }

    /// Steps down: releases the name, so the next candidate in line is
    /// granted it, and waits until the release commits. Every clone then
    /// reports `is_leader() == false`. Resigning twice is `Ok`.
    ///
    /// # Errors
    ///
    /// As [`LockGuard::unlock`]: `NoQuorum` when the release did not
    /// commit within one session TTL (the name is then freed when the
    /// release, which the node keeps retrying, commits, or when the
    /// session ends); `Shutdown` when the node stopped.
    #[tracing::instrument(level = "debug", skip_all, fields(election = self.name.as_str(), token = self.token.0))]
    pub async fn resign(&self) -> Result<(), Error> {
        let guard = self.guard.lock().take();
        // Every clone shares `gone`: they all report the loss now.
        self.watch
            .gone
            .store(true, std::sync::atomic::Ordering::Release);
        match guard {
            Some(g) => g.unlock().await,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("name", &self.name)
            .field("token", &self.token)
            .finish()
    }
}

impl NodeHandle {
    /// Campaigns for `name`: waits (FIFO among candidates) until this node
    /// is the leader, and returns its term of office.
    ///
    /// Cancel safety: dropping the future withdraws the candidacy.
    ///
    /// # Errors
    ///
    /// As [`NodeHandle::lock`]: `InvalidName`, `NoQuorum`, `Shutdown`,
    /// `Removed`, `TableFull`.
    #[tracing::instrument(level = "debug", skip_all, fields(election = name))]
    pub async fn campaign(&self, name: &str) -> Result<Leadership, Error> {
        self.lock(name).await.map(Leadership::new)
    }

    /// Like [`NodeHandle::campaign`], but gives up after `timeout` with
    /// `Error::Timeout` (and withdraws).
    #[tracing::instrument(level = "debug", skip_all, fields(election = name))]
    pub async fn campaign_timeout(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<Leadership, Error> {
        self.lock_timeout(name, timeout).await.map(Leadership::new)
    }

    /// Who leads `name` now, read linearizably (a quorum round), or `None`
    /// when nobody does (no candidate, or the last leader's session ended
    /// and its lock-delay still runs). Only an exclusive holder leads:
    /// readers of a name hold it shared and are no leader (a user-style
    /// test found `leader()` naming the oldest reader, issue 11).
    ///
    /// # Errors
    ///
    /// `NoQuorum` when no quorum answered within one session TTL;
    /// `WrongKind` when `name` is in use as a semaphore;
    /// `InvalidName`; `Shutdown`.
    #[tracing::instrument(level = "debug", skip_all, fields(election = name))]
    pub async fn leader(&self, name: &str) -> Result<Option<LeaderInfo>, Error> {
        let Some(info) = self.holders(name).await? else {
            return Ok(None);
        };
        if let crate::machine::NameKind::Semaphore { count } = info.kind {
            return Err(Error::WrongKind {
                name: name.to_owned(),
                actual: format!("a semaphore of {count} permits"),
            });
        }
        Ok(info
            .holders
            .into_iter()
            .find(|h| h.kind == crate::machine::ClaimKind::Exclusive)
            .map(|h| LeaderInfo {
                token: h.token,
                holder: h.holder,
                holder_id: h.holder_id,
                candidates: info.waiters,
            }))
    }

    /// A watch of who holds `name`, as this node applies the log: each new
    /// holder (or none) once this node applied it, never an older one after
    /// a newer one. The values are as fresh as this node's log; use
    /// [`NodeHandle::leader`] for a linearizable answer.
    ///
    /// The receiver ends (`changed()` fails) when this node stops.
    ///
    /// # Errors
    ///
    /// `InvalidName`; `Shutdown` or `Removed` when the node stopped.
    pub async fn watch_holder(&self, name: &str) -> Result<watch::Receiver<HolderView>, Error> {
        let lock = LockName::new(name)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_input(crate::raft::Input::WatchHolder { lock, reply: tx })?;
        rx.await.map_err(|_| self.gone())
    }
}
