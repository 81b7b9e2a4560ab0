//! Graceful shutdown: revoke this node's guards, close the session (which
//! frees this node's locks for their next waiters), let a leader propose
//! those handoffs, hand leadership to the most up-to-date voter, then stop.
//! Each phase is bounded in time, so a node without quorum still stops.
//!
//! The guards are revoked (their `lost()` completes, `is_held()` turns
//! false) *before* the close is proposed, and the session is no longer
//! renewed from then on: once the close commits another node may be
//! granted the lock, and by then no guard here may still report it held
//! (issue 8, item 7).

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::proposals::Waiter;
use super::Driver;
use crate::error::Error;
use crate::machine::Command;
use crate::storage::LogStore;

const CLOSE_FOR: Duration = Duration::from_secs(3);
const HANDOFF_FOR: Duration = Duration::from_millis(1500);
const TRANSFER_FOR: Duration = Duration::from_secs(1);
/// How long a leaving node waits to be replaced or demoted (issue 9, item
/// 7; Kubernetes gives a pod 30 s between SIGTERM and SIGKILL).
const LEAVE_FOR: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closing,
    HandingOff,
    Leaving,
    Transferring,
}

/// Shutdown progress.
#[derive(Debug)]
pub(crate) struct Shutdown {
    phase: Phase,
    since: Instant,
    last_proposal: Option<Instant>,
    replies: Vec<oneshot::Sender<Result<(), Error>>>,
    /// Whether the session is known closed (or expired, or never opened).
    closed: bool,
}

impl<S: LogStore + Send + 'static> Driver<S> {
    pub(super) fn begin_shutdown(
        &mut self,
        reply: Option<oneshot::Sender<Result<(), Error>>>,
        now: Instant,
    ) {
        if let Some(s) = self.shutdown.as_mut() {
            s.replies.extend(reply);
            return;
        }
        tracing::info!(node = %self.name, "shutting down");
        // Acquires still waiting end now; the session close drops their
        // places in the queues. One never proposed is forgotten; one that
        // was is no longer proposed again (it could otherwise be granted,
        // with no guard, after the lease gate no longer applies to it).
        for request in self.pending.ids() {
            let Some(p) = self.pending.get_mut(request) else {
                continue;
            };
            if let Waiter::Acquire { .. } = p.waiter {
                if let Waiter::Acquire { ask, .. } =
                    std::mem::replace(&mut p.waiter, Waiter::Abandoned)
                {
                    ask.fail(Error::Shutdown);
                }
                if p.ever_proposed {
                    self.pending.mark_queued(request);
                } else {
                    self.pending.remove(request);
                }
            }
        }
        // Revoke every guard first: after the close commits, another node
        // may be granted these locks at once.
        self.own.end();
        self.shutdown = Some(Shutdown {
            phase: Phase::Closing,
            since: now,
            last_proposal: None,
            replies: reply.into_iter().collect(),
            closed: false,
        });
        self.shutdown_progress(now);
    }

    pub(super) fn shutdown_progress(&mut self, now: Instant) {
        let Some(s) = self.shutdown.as_ref() else {
            return;
        };
        let (phase, since, last) = (s.phase, s.since, s.last_proposal);
        let elapsed = now.saturating_duration_since(since);
        match phase {
            Phase::Closing => {
                let open = self.own.opened && self.table.session_exists(self.own.id);
                if !open {
                    if let Some(s) = self.shutdown.as_mut() {
                        s.closed = true;
                    }
                }
                if !open || elapsed >= CLOSE_FOR {
                    if open {
                        tracing::warn!(node = %self.name, "could not close the session in time; it will expire");
                    }
                    self.set_phase(Phase::HandingOff, now);
                    return;
                }
                if last.is_none_or(|at| {
                    now.saturating_duration_since(at) >= Duration::from_millis(500)
                }) {
                    let cmd = Command::CloseSession {
                        session: self.own.id,
                    };
                    let _ = self.raw.propose(Vec::new(), cmd.encode());
                    if let Some(s) = self.shutdown.as_mut() {
                        s.last_proposal = Some(now);
                    }
                }
            }
            Phase::HandingOff => {
                let done = !self.is_leader() || self.table.pending_handoffs().is_empty();
                if done || elapsed >= HANDOFF_FOR {
                    if self.should_leave() {
                        tracing::info!(node = %self.name, "leaving the membership");
                        self.set_phase(Phase::Leaving, now);
                        return;
                    }
                    self.transfer_leadership();
                    self.set_phase(Phase::Transferring, now);
                }
            }
            Phase::Leaving => self.leave_progress(now, elapsed, last),
            Phase::Transferring => {
                if !self.is_leader() || elapsed >= TRANSFER_FOR {
                    self.stopped = true;
                }
            }
        }
    }

    /// Whether shutdown should leave the membership: asked for, the
    /// session close committed (without a quorum a `Leave` cannot commit
    /// either, and the wait would only make shutdown slower), and there is
    /// another member to take over (a lone member has no one to hand the
    /// cluster to, and keeps its state).
    fn should_leave(&self) -> bool {
        self.cfg.leave_on_shutdown
            && self.shutdown.as_ref().is_some_and(|s| s.closed)
            && self.table.members().get(self.me).is_some()
            && self.table.members().iter().any(|m| m.id != self.me)
    }

    /// Leaving (issue 9, item 7): propose `Leave` until it applies; while
    /// this node leads, hand leadership to another voter (the next
    /// leader's planner replaces or demotes this one); done once the
    /// applied configuration no longer counts this node as a voter.
    /// Bounded by [`LEAVE_FOR`]: a node that could not leave stops anyway,
    /// stays a member marked leaving, and the planner replaces it like a
    /// dead one.
    fn leave_progress(&mut self, now: Instant, elapsed: Duration, last: Option<Instant>) {
        let me = self.me;
        let leaving = self.table.members().get(me).is_none_or(|m| m.leaving);
        let voter = self.raw.raft.prs().conf().voters().contains(me.0);
        if leaving && !voter {
            tracing::info!(node = %self.name, "left the voters");
            if let Some(on_left) = self.on_left.take() {
                if let Err(e) = on_left() {
                    tracing::warn!(node = %self.name, error = %e, "could not mark the data directory as left");
                }
            }
            self.set_phase(Phase::Transferring, now);
            return;
        }
        if elapsed >= LEAVE_FOR {
            tracing::warn!(node = %self.name, "not replaced in time; the leader replaces it like a dead member");
            self.transfer_leadership();
            self.set_phase(Phase::Transferring, now);
            return;
        }
        if last.is_some_and(|at| now.saturating_duration_since(at) < RETRY_EVERY) {
            return;
        }
        if !leaving {
            let _ = self
                .raw
                .propose(Vec::new(), Command::Leave { id: me }.encode());
        } else if self.is_leader() {
            self.transfer_leadership();
        }
        if let Some(s) = self.shutdown.as_mut() {
            s.last_proposal = Some(now);
        }
    }

    fn transfer_leadership(&mut self) {
        if self.is_leader() {
            if let Some(to) = self.transfer_target() {
                tracing::info!(node = %self.name, to, "handing leadership over");
                self.raw.transfer_leader(to);
            }
        }
    }

    fn set_phase(&mut self, phase: Phase, now: Instant) {
        if let Some(s) = self.shutdown.as_mut() {
            s.phase = phase;
            s.since = now;
            s.last_proposal = None;
        }
    }

    /// The voter (other than this node) with the most of the log.
    fn transfer_target(&self) -> Option<u64> {
        let voters: Vec<u64> = self.raw.raft.prs().conf().voters().ids().iter().collect();
        self.raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != self.me.0 && voters.contains(id))
            .max_by_key(|(_, pr)| pr.matched)
            .map(|(id, _)| *id)
    }

    /// Stops for good: every guard is lost, every caller is answered.
    pub(super) fn finish(&mut self) {
        self.stopped = true;
        let err = self.stop_error.unwrap_or(|| Error::Shutdown);
        self.own.end();
        for (_, p) in self.pending.drain() {
            match p.waiter {
                Waiter::Acquire { ask, .. } => ask.fail(err()),
                Waiter::Release { reply: Some(r) } => {
                    let _ = r.send(Err(err()));
                }
                _ => {}
            }
        }
        self.reads.fail_all(err);
        self.fail_live_asks(err);
        self.inbox.close();
        while let Ok(input) = self.inbox.try_recv() {
            match input {
                super::Input::Acquire { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
                super::Input::AcquireClaims { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
                super::Input::Release { reply: Some(r), .. }
                | super::Input::ReleaseGrant { reply: Some(r), .. } => {
                    let _ = r.send(Err(err()));
                }
                super::Input::Holders { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
                super::Input::Holder { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
                super::Input::Members { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
                super::Input::Locks { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
                super::Input::Shutdown { reply: Some(r) } => {
                    let _ = r.send(Ok(()));
                }
                _ => {}
            }
        }
        self.publish_status(self.clock.now());
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
        }
        if let Some(s) = self.shutdown.take() {
            for r in s.replies {
                let _ = r.send(if s.closed {
                    Ok(())
                } else {
                    Err(Error::NoQuorum)
                });
            }
        }
        tracing::info!(node = %self.name, "stopped");
    }
}
