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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closing,
    HandingOff,
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
                if let Waiter::Acquire { reply, .. } =
                    std::mem::replace(&mut p.waiter, Waiter::Abandoned)
                {
                    let _ = reply.send(Err(Error::Shutdown));
                }
                if p.ever_proposed {
                    p.queued = true;
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
                    if self.is_leader() {
                        if let Some(to) = self.transfer_target() {
                            tracing::info!(node = %self.name, to, "handing leadership over");
                            self.raw.transfer_leader(to);
                        }
                    }
                    self.set_phase(Phase::Transferring, now);
                }
            }
            Phase::Transferring => {
                if !self.is_leader() || elapsed >= TRANSFER_FOR {
                    self.stopped = true;
                }
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
        self.own.end();
        for (_, p) in self.pending.drain() {
            match p.waiter {
                Waiter::Acquire { reply, .. } => {
                    let _ = reply.send(Err(Error::Shutdown));
                }
                Waiter::Release { reply: Some(r) } => {
                    let _ = r.send(Err(Error::Shutdown));
                }
                _ => {}
            }
        }
        self.reads.fail_all(|| Error::Shutdown);
        self.fail_live_asks(|| Error::Shutdown);
        self.inbox.close();
        while let Ok(input) = self.inbox.try_recv() {
            match input {
                super::Input::Acquire { reply, .. } => {
                    let _ = reply.send(Err(Error::Shutdown));
                }
                super::Input::Release { reply: Some(r), .. } => {
                    let _ = r.send(Err(Error::Shutdown));
                }
                super::Input::Holder { reply, .. } => {
                    let _ = reply.send(Err(Error::Shutdown));
                }
                super::Input::Members { reply, .. } => {
                    let _ = reply.send(Err(Error::Shutdown));
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
