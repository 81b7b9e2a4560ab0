//! Requests from `NodeHandle`s and guards to the driver, and how the
//! driver turns them into proposals and reads.

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::proposals::{AcquireReply, Ask, Pending, Waiter};
use super::reads::Purpose;
use super::Driver;
use crate::client::grant::Grant;
use crate::error::Error;
use crate::machine::{Claim, Command, RequestKey};
use crate::storage::LogStore;
use crate::types::{FencingToken, LockInfo, LockName, RequestId, SessionId};

/// Hands `input` to the driver through `inbox`; `Err` once the driver
/// stopped (the input is dropped then).
///
/// Every sender goes through this one function, never inlined: tokio's
/// send, and the drop of an input that could not be sent, are then
/// compiled once, not at each of the places that send one (83 KiB of
/// every application's binary, measured; issue 12, item 9).
#[inline(never)]
pub(crate) fn deliver(inbox: &mpsc::UnboundedSender<Input>, input: Input) -> Result<(), ()> {
    inbox.send(input).map_err(|_| ())
}

/// One request to the driver.
#[derive(Debug)]
pub(crate) enum Input {
    /// Acquire `lock`: wait in the queue (`lock`) or not (`try_lock`).
    Acquire {
        ticket: u64,
        lock: LockName,
        wait: bool,
        reply: oneshot::Sender<Result<AcquireReply, Error>>,
        /// The caller's place in the inbox, given back when taken in.
        place: tokio::sync::OwnedSemaphorePermit,
    },
    /// Take every claim at once (issue 11): wait in the queues or not.
    /// The claims were checked by `validate_claims` in the caller.
    AcquireClaims {
        ticket: u64,
        claims: Vec<Claim>,
        wait: bool,
        reply: oneshot::Sender<Result<AcquireReply<Grant>, Error>>,
        /// The caller's place in the inbox, given back when taken in.
        place: tokio::sync::OwnedSemaphorePermit,
    },
    /// Release the grant that answered request `grant` (a `Grant`'s
    /// `unlock`, or its drop with no reply).
    ReleaseGrant {
        session: SessionId,
        grant: RequestId,
        reply: Option<oneshot::Sender<Result<bool, Error>>>,
    },
    /// A linearizable read of every holder of `lock` (issue 11).
    Holders {
        lock: LockName,
        reply: oneshot::Sender<Result<Option<crate::client::HoldersInfo>, Error>>,
        /// The caller's place in the inbox, given back when taken in.
        place: tokio::sync::OwnedSemaphorePermit,
    },
    /// The caller of acquire `ticket` gave up (timeout or dropped future).
    Abandon { ticket: u64 },
    /// Release a grant (from `unlock`, or from a guard's drop with no reply).
    Release {
        session: SessionId,
        lock: LockName,
        token: FencingToken,
        reply: Option<oneshot::Sender<Result<bool, Error>>>,
    },
    /// A linearizable read of `lock`'s holder.
    Holder {
        lock: LockName,
        reply: oneshot::Sender<Result<Option<LockInfo>, Error>>,
        /// The caller's place in the inbox, given back when taken in.
        place: tokio::sync::OwnedSemaphorePermit,
    },
    /// A watch on who holds `lock`, fed from the applied table (issue 11).
    WatchHolder {
        lock: LockName,
        reply: oneshot::Sender<watch::Receiver<super::HolderView>>,
    },
    /// A linearizable page of the names in use (issue 12, item 6).
    Locks {
        after: Option<LockName>,
        limit: usize,
        reply: super::locks_query::LocksReply,
        /// The caller's place in the inbox, given back when taken in.
        place: tokio::sync::OwnedSemaphorePermit,
    },
    /// A linearizable read of the members (issue 9).
    Members {
        reply: oneshot::Sender<Result<Vec<crate::client::MemberInfo>, Error>>,
        /// The caller's place in the inbox, given back when taken in.
        place: tokio::sync::OwnedSemaphorePermit,
    },
    /// Graceful shutdown: revoke guards, close the session, hand off
    /// leadership, stop. The reply says whether the session was closed.
    Shutdown {
        reply: Option<oneshot::Sender<Result<(), Error>>>,
    },
    /// Stop at once, as a crash would (for tests and examples).
    Kill,
    /// A large snapshot's table, decoded on a blocking thread (see
    /// `snapshot_decode.rs`); `None` when it did not decode.
    SnapshotDecoded {
        msg: Box<raft::eraftpb::Message>,
        table: Option<Box<crate::machine::LockTable>>,
    },
    /// A snapshot for the next compaction whose file was written on a
    /// blocking thread (see `compaction.rs`).
    SnapshotStaged {
        snap: Box<raft::eraftpb::Snapshot>,
        /// Its file, written ahead by the store's stager, if it was.
        staged: Option<crate::storage::StagedSnapshot>,
    },
    /// Hand leadership to `to` if this node leads (the simulator's fault).
    #[cfg(any(test, feature = "sim"))]
    TransferLeader { to: crate::types::NodeId },
    /// The applied index and the lock table's state hash (the simulator's
    /// convergence check).
    #[cfg(any(test, feature = "sim"))]
    StateHash { reply: oneshot::Sender<(u64, u64)> },
    /// Counts of the node's bookkeeping (tests of what must stay bounded).
    #[cfg(any(test, feature = "sim"))]
    Inspect { reply: oneshot::Sender<Inspection> },
}

/// What a node keeps, counted (tests only).
#[cfg(any(test, feature = "sim"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// Request outcomes the replicated table remembers, over all sessions.
    pub remembered_outcomes: usize,
    /// This node's outstanding requests.
    pub pending: usize,
    /// Open sessions.
    pub sessions: usize,
    /// Keepalives heard as leader.
    pub keepalives_heard: u64,
    /// Quorum rounds run for them.
    pub keepalive_rounds: u64,
    /// The most inputs seen waiting in the inbox at once.
    pub inbox_peak: usize,
    /// Received snapshots whose table was decoded off the driver's task.
    pub snapshots_decoded_off_driver: u64,
    /// Snapshot files of this node's compactions written off the driver's
    /// task.
    pub snapshots_staged_off_driver: u64,
    /// The first index still in the log: the last compaction's index + 1.
    pub log_first_index: u64,
}

impl<S: LogStore + Send + 'static> Driver<S> {
    pub(super) fn on_input(&mut self, input: Input, now: Instant) {
        match input {
            Input::Acquire {
                ticket,
                lock,
                wait,
                reply,
                place,
            } => {
                drop(place);
                if self.shutdown.is_some() {
                    let _ = reply.send(Err(Error::Shutdown));
                    return;
                }
                let request = self.own.next_id();
                let cmd = Command::Acquire {
                    key: self.key(request),
                    lock: lock.clone(),
                    wait,
                };
                self.track(
                    request,
                    cmd,
                    Waiter::Acquire {
                        ticket,
                        ask: Ask::Lock { lock, reply },
                    },
                    now,
                );
            }
            Input::AcquireClaims {
                ticket,
                claims,
                wait,
                reply,
                place,
            } => {
                drop(place);
                if self.shutdown.is_some() {
                    let _ = reply.send(Err(Error::Shutdown));
                    return;
                }
                let request = self.own.next_id();
                let cmd = Command::AcquireClaims {
                    key: self.key(request),
                    claims: claims.clone(),
                    wait,
                };
                let ask = Ask::Claims { claims, reply };
                self.track(request, cmd, Waiter::Acquire { ticket, ask }, now);
            }
            Input::ReleaseGrant {
                session,
                grant,
                reply,
            } => self.propose_release(session, reply, now, |key| Command::ReleaseGrant {
                key,
                grant,
            }),
            Input::Holders { lock, reply, place } => {
                drop(place);
                let purpose = Purpose::Holders {
                    lock,
                    reply,
                    deadline: now + self.cfg.session_ttl,
                };
                let ctx = self.reads.issue(purpose, now);
                self.raw.read_index(ctx);
            }
            Input::Abandon { ticket } => {
                if let Some(request) = self.pending.by_ticket(ticket) {
                    self.abandon(request, now);
                }
            }
            Input::Release {
                session,
                lock,
                token,
                reply,
            } => self.propose_release(session, reply, now, |key| Command::Release {
                key,
                lock,
                token,
            }),
            Input::Holder { lock, reply, place } => {
                drop(place);
                let purpose = Purpose::Holder {
                    lock,
                    reply,
                    // Answered within one TTL, or NoQuorum (issue 8, item 1).
                    deadline: now + self.cfg.session_ttl,
                };
                let ctx = self.reads.issue(purpose, now);
                self.raw.read_index(ctx);
            }
            Input::WatchHolder { lock, reply } => {
                let _ = reply.send(self.watches.subscribe(lock, &self.table));
            }
            Input::Locks {
                after,
                limit,
                reply,
                place,
            } => {
                drop(place);
                self.begin_locks(after, limit, reply, now);
            }
            Input::Members { reply, place } => {
                drop(place);
                let purpose = Purpose::Members {
                    reply,
                    deadline: now + self.cfg.session_ttl,
                };
                let ctx = self.reads.issue(purpose, now);
                self.raw.read_index(ctx);
            }
            Input::Shutdown { reply } => self.begin_shutdown(reply, now),
            Input::SnapshotDecoded { msg, table } => {
                self.on_snapshot_decoded(*msg, table.map(|t| *t));
            }
            Input::SnapshotStaged { snap, staged } => self.on_snapshot_staged(*snap, staged),
            Input::Kill => {
                tracing::info!(node = %self.name, "killed");
                self.stopped = true;
            }
            #[cfg(any(test, feature = "sim"))]
            Input::TransferLeader { to } => {
                if self.is_leader() && to != self.me && self.raw.raft.prs().get(to.0).is_some() {
                    self.raw.transfer_leader(to.0);
                }
            }
            #[cfg(any(test, feature = "sim"))]
            Input::Inspect { reply } => {
                let _ = reply.send(Inspection {
                    remembered_outcomes: self.table.remembered_outcomes(),
                    pending: self.pending.ids().len(),
                    sessions: self.table.sessions().len(),
                    keepalives_heard: self.keepalive_counts.0,
                    keepalive_rounds: self.keepalive_counts.1,
                    inbox_peak: self.inbox_peak,
                    snapshots_decoded_off_driver: self.decoder.off_driver,
                    snapshots_staged_off_driver: self.compaction.off_driver,
                    log_first_index: self.raw.store().first_index().unwrap_or(1),
                });
            }
            #[cfg(any(test, feature = "sim"))]
            Input::StateHash { reply } => {
                let _ = reply.send((self.table.applied_index(), self.table.state_hash()));
            }
        }
    }

    /// Proposes a release by `session` (a mutex's or a claims grant's;
    /// `make` builds the command from its request key). A session that
    /// ended has nothing left to release: `Ok(false)` at once.
    fn propose_release(
        &mut self,
        session: SessionId,
        reply: Option<oneshot::Sender<Result<bool, Error>>>,
        now: Instant,
        make: impl FnOnce(RequestKey) -> Command,
    ) {
        if session != self.own.id || !self.own.opened {
            if let Some(r) = reply {
                let _ = r.send(Ok(false));
            }
            return;
        }
        let request = self.own.next_id();
        let cmd = make(self.key(request));
        self.track(request, cmd, Waiter::Release { reply }, now);
    }

    fn key(&self, request: RequestId) -> RequestKey {
        RequestKey {
            session: self.own.id,
            request,
            floor: request,
        }
    }

    /// Records a new request and proposes it at once if it may be.
    fn track(&mut self, request: RequestId, cmd: Command, waiter: Waiter, now: Instant) {
        self.pending.insert(request, Pending::new(cmd, waiter, now));
        self.propose_request(request, now);
    }

    /// The caller of `request` (an acquire) is gone. If it was never
    /// proposed it is simply dropped; otherwise it stays tracked (so the
    /// acknowledgement floor cannot pass it) until a `Cancel` commits, which
    /// removes the waiter or releases the grant.
    pub(super) fn abandon(&mut self, request: RequestId, now: Instant) {
        let Some(p) = self.pending.get_mut(request) else {
            return;
        };
        if !p.ever_proposed {
            self.pending.remove(request);
            return;
        }
        p.waiter = Waiter::Abandoned;
        let cancel_sent = std::mem::replace(&mut p.cancel_sent, true);
        self.pending.mark_queued(request);
        if cancel_sent {
            return;
        }
        let cancel = self.own.next_id();
        let cmd = Command::Cancel {
            key: self.key(cancel),
            target: request,
        };
        self.track(cancel, cmd, Waiter::Cancel { target: request }, now);
    }

    /// Proposes (again) one tracked request, with the current floor.
    pub(super) fn propose_request(&mut self, request: RequestId, now: Instant) {
        if !self.own.opened {
            return;
        }
        let floor = self.pending.floor(self.own.next_request);
        let lease_valid = self.own.lease_valid(now);
        let term = self.raw.raft.term;
        let Some(p) = self.pending.get_mut(request) else {
            return;
        };
        // Acquires wait for a valid lease, so a fresh grant is never
        // already lost when it arrives.
        if matches!(p.waiter, Waiter::Acquire { .. }) && !lease_valid {
            return;
        }
        match &mut p.cmd {
            Command::Acquire { key, .. }
            | Command::Release { key, .. }
            | Command::Cancel { key, .. }
            | Command::AcquireClaims { key, .. }
            | Command::ReleaseGrant { key, .. } => {
                key.floor = floor;
            }
            _ => {}
        }
        let data = p.cmd.encode();
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {
                tracing::trace!(target: super::TIMELINE, node = %self.name, request = request.0, "propose");
                p.proposed = Some((now, term));
                p.ever_proposed = true;
            }
            Err(_) => {
                p.proposed = None;
                crate::metrics::count(crate::metrics::PROPOSALS_FAILED);
            }
        }
    }
}
