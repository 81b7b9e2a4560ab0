//! What the driver does on every tick: open its session, send keepalives,
//! re-propose what may have been dropped, and (as leader) expire silent
//! sessions and hand freed locks on.

use tokio::time::Instant;

use super::proposals::Waiter;
use super::reads::Purpose;
use super::Driver;
use crate::error::Error;
use crate::machine::Command;
use crate::storage::LogStore;
use crate::transport::PeerMessage;
use crate::types::{NodeId, SessionId};

/// The most times the wait before a snapshot is sent again doubles: two
/// election timeouts, then up to 16 times that (16 s at the defaults).
const SNAPSHOT_RETRY_MAX_DOUBLINGS: u32 = 4;

/// One keepalive waiting for the leader's batched quorum round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeepAliveReq {
    pub(crate) from: NodeId,
    pub(crate) session: SessionId,
    pub(crate) seq: u64,
}

/// Keepalive rounds begin at most once per this fraction of the session
/// TTL (see `flush_keepalives`): 20, so at most 2 rounds a second at the
/// default 10 s TTL, whatever the number of sessions.
pub(crate) const KEEPALIVE_ROUND_EVERY: u32 = 20;

impl<S: LogStore + Send + 'static> Driver<S> {
    pub(super) fn on_tick(&mut self, now: Instant) {
        self.open_session_if_needed(now);
        self.sync_zone(now);
        if self.own.opened && (now >= self.own.next_keepalive || self.keepalive_unanswered(now)) {
            self.send_keepalive(now);
        }
        if self.own.lease_valid(now) {
            self.own.no_lease_since = None;
        } else if self.own.no_lease_since.is_none() {
            self.own.no_lease_since = Some(now);
        }
        self.propose_due(now);
        self.leader_duties(now);
        self.retry_reads(now);
        self.expire_live_asks(now);
        self.answer_without_quorum(now);
        self.probe_if_orphaned(now);
        self.maybe_compact();
        self.shutdown_progress(now);
        self.tick_gauges(now);
        self.member_status_catch_up(now);
    }

    /// The gauges that move continuously (issue 12, item 1): set once a
    /// tick rather than on every change.
    fn tick_gauges(&self, now: Instant) {
        let lease = match self.own.lease.valid_until() {
            Some(until) if self.own.opened => until.saturating_duration_since(now),
            _ => std::time::Duration::ZERO,
        };
        let (pending, queued) = (self.pending.len(), self.pending.queued_len());
        crate::metrics::tick(pending, queued, self.table.session_count(), lease);
    }

    fn open_session_if_needed(&mut self, now: Instant) {
        if self.own.opened || self.shutdown.is_some() {
            return;
        }
        let term = self.raw.raft.term;
        let due = self.own.open_proposed.is_none_or(|(at, t)| {
            t != term || now.saturating_duration_since(at) >= self.retry_after()
        });
        // Not before the cluster is founded: the `Found` entry fixes the
        // token base, and a grant before it would get a bare log index as
        // its token, below the tokens of a cluster that was lost (issue 9,
        // item 10). The first leader proposes `Found` as soon as it has
        // committed in its term, so this waits a commit or two.
        if !due || self.leader_id().is_none() || self.table.members().cluster_id() == 0 {
            return;
        }
        let cmd = Command::OpenSession {
            session: self.own.id,
            node: self.me,
            name: self.name.clone(),
            ttl_ms: u64::try_from(self.cfg.session_ttl.as_millis()).unwrap_or(u64::MAX),
        };
        if self.raw.propose(Vec::new(), cmd.encode()).is_ok() {
            self.own.open_proposed = Some((now, term));
        }
    }

    /// How long an unanswered proposal waits before it is proposed again.
    pub(super) fn retry_after(&self) -> std::time::Duration {
        (self.cfg.election_timeout() * 3).max(std::time::Duration::from_millis(300))
    }

    pub(super) fn propose_due(&mut self, now: Instant) {
        if !self.own.opened {
            return;
        }
        for request in self
            .pending
            .due(now, self.raw.raft.term, self.retry_after())
        {
            self.propose_request(request, now);
        }
    }

    /// Whether the newest keepalive has gone unanswered for long enough to
    /// send another (issue 8, item 3): a keepalive lost with a leader, or
    /// dropped by a new leader, is not left to wait a third of the TTL.
    fn keepalive_unanswered(&self, now: Instant) -> bool {
        self.own
            .lease
            .newest_unacknowledged()
            .is_some_and(|at| now.saturating_duration_since(at) >= self.cfg.keepalive_resend())
    }

    /// Stamps and sends a keepalive for this node's session to the leader.
    /// A node that is shutting down no longer renews (issue 8, item 7).
    pub(super) fn send_keepalive(&mut self, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        self.own.next_keepalive = now + self.cfg.keepalive_interval();
        if crate::teeth::planted(crate::teeth::Bug::AckKeepaliveWithoutQuorum)
            && (self.is_leader() || self.leader_id().is_none())
        {
            // The planted bug: a node that leads, or led and lost its
            // quorum, renews its own lease with no quorum round.
            let seq = self.own.lease.stamp(now);
            if self.own.opened {
                if let Some(until) = self.own.lease.acknowledged(seq) {
                    self.own
                        .lease_tx
                        .send_modify(|v| v.valid_until = Some(until));
                }
            }
            return;
        }
        let Some(leader) = self.leader_id() else {
            // Try again soon: a leader is being elected.
            self.own.next_keepalive = now + self.cfg.election_timeout();
            return;
        };
        let session = self.own.id;
        let seq = self.own.lease.stamp(now);
        if leader == self.me {
            self.on_keepalive(self.key, session, seq, now);
        } else if let Some(key) = self.key_of(leader) {
            self.transport
                .send(key, vec![PeerMessage::KeepAlive { session, seq }]);
        }
    }

    /// Leader side: note the keepalive's arrival, then queue it for the
    /// next batched quorum round. It is acknowledged only after a round
    /// begun after it arrived confirms this node still leads.
    ///
    /// - The arrival is read from the clock here, not from a time taken
    ///   before the message was received (issue 8, item 3): the leader must
    ///   never date a keepalive earlier than it arrived.
    /// - Only the node that opened a session may renew it (issue 8, item 11).
    /// - All keepalives queued meanwhile share one ReadIndex round, and the
    ///   round waits until this leader has committed in its term (raft-rs
    ///   drops a ReadIndex before that; issue 8, items 3 and 10).
    pub(super) fn on_keepalive(
        &mut self,
        from: NodeId,
        session: SessionId,
        seq: u64,
        _now: Instant,
    ) {
        if self.leader.is_none() {
            return;
        }
        let owner = self.table.session_node(session);
        if owner.is_some_and(|n| self.key_of(n) != Some(from)) {
            tracing::warn!(node = %self.name, peer = %from, %session, "keepalive for another node's session; dropped");
            return;
        }
        let now = self.clock.now();
        let Some(duty) = self.leader.as_mut() else {
            return;
        };
        duty.liveness.heard(session, now);
        self.keepalive_batch
            .push(KeepAliveReq { from, session, seq });
        self.keepalive_counts.0 += 1;
    }

    /// Starts one ReadIndex round for every keepalive queued, if this node
    /// leads and has committed in its term. Returns whether it did.
    ///
    /// Rounds are paced: at most one per [`KEEPALIVE_ROUND_EVERY`] of the
    /// session TTL (issue 10). A round is a heartbeat to every member and
    /// its answers, 2 (n - 1) messages, and idle nodes' keepalives arrive
    /// spread out, so one round each made the leader's keepalive traffic
    /// grow as nodes squared; paced, it grows with the nodes. The delay
    /// (at most TTL / 20, then the next tick) costs the holder that much of
    /// its lease's remaining time, never its safety: the holder dates its
    /// lease from when it sent the keepalive, and the round still begins
    /// after the keepalive arrived.
    pub(super) fn flush_keepalives(&mut self, now: Instant) -> bool {
        if self.keepalive_batch.is_empty() {
            return false;
        }
        if !self.is_leader() {
            // Deposed: the senders renew with the new leader.
            self.keepalive_batch.clear();
            return false;
        }
        if !self.raw.raft.commit_to_current_term() {
            return false;
        }
        let pace = self.cfg.session_ttl / KEEPALIVE_ROUND_EVERY;
        if let Some(duty) = self.leader.as_mut() {
            if duty.keepalive_round_at.is_some_and(|at| now < at + pace) {
                return false;
            }
            duty.keepalive_round_at = Some(now);
        }
        let batch = std::mem::take(&mut self.keepalive_batch);
        let ctx = self.reads.issue(Purpose::KeepAlives(batch), now);
        self.raw.read_index(ctx);
        self.keepalive_counts.1 += 1;
        true
    }

    /// Holder side: the leader acknowledged keepalive `seq`.
    pub(super) fn on_keepalive_ack(
        &mut self,
        session: SessionId,
        seq: u64,
        alive: bool,
        now: Instant,
    ) {
        if session != self.own.id || !self.own.opened {
            return;
        }
        if !alive {
            tracing::warn!(node = %self.name, %session, "the leader says this node's session expired");
            self.own_session_ended(now);
            return;
        }
        if let Some(sent) = self.own.lease.sent_at(seq) {
            let rtt = now.saturating_duration_since(sent);
            crate::metrics::seconds(crate::metrics::KEEPALIVE_RTT_SECONDS, rtt);
        }
        if let Some(until) = self.own.lease.acknowledged(seq) {
            self.own
                .lease_tx
                .send_modify(|v| v.valid_until = Some(until));
            if self.own.no_lease_since.take().is_some() {
                // Acquires held back for want of a lease may go now.
                self.propose_due(now);
            }
        }
    }

    /// A snapshot message the network lost leaves raft-rs waiting for it
    /// forever (the peer's progress stays paused until `report_snapshot`),
    /// and the peer never catches up (found by the simulator). The
    /// transport cannot tell us of a loss, so a peer still waiting after
    /// two election timeouts is reported failed, and raft-rs sends again.
    ///
    /// The wait doubles with each retry to the same peer without an answer
    /// in between (up to [`SNAPSHOT_RETRY_MAX_DOUBLINGS`] times): a peer
    /// that is slow to install (hundreds of joiners on 2 cores, issue 10
    /// curve 5) is not sent a new copy every second, each one queued behind
    /// the last and installed again, which gave 659 joiners of one run 2 to
    /// 9 copies. A lost snapshot is still sent again after two
    /// election timeouts the first time.
    fn retry_lost_snapshots(&mut self, now: Instant) {
        // Only a leader sends snapshots. A follower's raft-rs keeps a
        // progress entry for every member too, and walking it on every
        // tick cost every node O(members): 9 % of the CPU of 300 joining
        // learners in one process (issue 10, the sessions curve's profile).
        let Some(duty) = self.leader.as_mut() else {
            return;
        };
        let prs = self.raw.raft.prs();
        let waiting: std::collections::BTreeSet<u64> = crate::collect::btree_set(
            prs.iter()
                .filter(|(_, pr)| pr.state == raft::ProgressState::Snapshot)
                .map(|(id, _)| *id),
        );
        duty.snapshot_waits.retain(|id, w| {
            if !waiting.contains(id) {
                w.since = None;
            }
            // A peer that answered (it replicates now) or left starts over.
            if !prs
                .get(*id)
                .is_some_and(|pr| pr.state != raft::ProgressState::Replicate)
            {
                w.retries = 0;
            }
            w.since.is_some() || w.retries > 0
        });
        let base = self.cfg.election_timeout() * 2;
        let mut lost = Vec::new();
        for id in waiting {
            let w = duty.snapshot_waits.entry(id).or_default();
            let since = *w.since.get_or_insert(now);
            let wait = base * (1 << w.retries.min(SNAPSHOT_RETRY_MAX_DOUBLINGS));
            if now.saturating_duration_since(since) >= wait {
                w.since = None;
                w.retries += 1;
                lost.push(id);
            }
        }
        for id in lost {
            tracing::debug!(node = %self.name, peer = id, "no answer to a snapshot; sending it again");
            self.raw.report_snapshot(id, raft::SnapshotStatus::Failure);
        }
    }

    fn leader_duties(&mut self, now: Instant) {
        self.retry_lost_snapshots(now);
        self.reconcile(now);
        let term = self.raw.raft.term;
        let Some(duty) = self.leader.as_mut().filter(|d| d.is_for(term)) else {
            return;
        };
        // Each is proposed once per term; one Raft refuses goes back.
        let (expire, handoffs) = duty.due(now, &self.table);
        let lock_delay = !self.cfg.lock_delay.is_zero();
        for session in expire {
            tracing::info!(node = %self.name, %session, "session silent for longer than its TTL; proposing expiry");
            metrics::counter!(crate::metrics::SESSIONS_EXPIRED).increment(1);
            let cmd = Command::ExpireSession {
                session,
                lock_delay,
            };
            if self.raw.propose(Vec::new(), cmd.encode()).is_err() {
                duty.liveness.not_proposed(session);
            }
        }
        for (lock, freed_at) in handoffs {
            let cmd = Command::Handoff {
                lock: lock.clone(),
                freed_at,
            };
            if self.raw.propose(Vec::new(), cmd.encode()).is_err() {
                duty.handoff_not_proposed(lock, freed_at, now);
            }
        }
    }

    fn retry_reads(&mut self, now: Instant) {
        for purpose in self.reads.expire(now, self.retry_after()) {
            let ctx = self.reads.issue(purpose, now);
            self.raw.read_index(ctx);
        }
    }

    /// Every caller gets an answer within about one TTL when the cluster
    /// cannot answer (issue 8, item 1).
    ///
    /// - An `unlock` whose release has not committed is answered as soon
    ///   as this node has no valid lease (the grant is no longer this
    ///   caller's, and it ends with the session or with the release, which
    ///   stays queued and is retried), and otherwise after one TTL; either
    ///   way with `NoQuorum`, which `LockGuard::unlock` reports as `Ok`
    ///   when the lease is gone.
    /// - Without a lease for longer than the TTL this node cannot reach a
    ///   quorum: acquires fail with `NoQuorum` rather than hang.
    fn answer_without_quorum(&mut self, now: Instant) {
        let lease_gone = !self.own.lease_valid(now);
        let age = if lease_gone {
            std::time::Duration::ZERO
        } else {
            self.cfg.session_ttl
        };
        for request in self.pending.releases_older_than(now, age) {
            if let Some(p) = self.pending.get_mut(request) {
                if let Waiter::Release { reply } = &mut p.waiter {
                    if let Some(r) = reply.take() {
                        // Not applied yet: the caller hears NoQuorum, and
                        // `unlock` turns that into Ok when the lease is
                        // gone. Never Ok(false), which means the release
                        // was applied and found the grant gone.
                        let _ = r.send(Err(Error::NoQuorum));
                    }
                }
            }
        }
        let Some(since) = self.own.no_lease_since else {
            return;
        };
        if now.saturating_duration_since(since) <= self.cfg.session_ttl {
            return;
        }
        for request in self.pending.acquires_older_than(now, self.cfg.session_ttl) {
            if let Some(p) = self.pending.get_mut(request) {
                if let Waiter::Acquire { ask, .. } =
                    std::mem::replace(&mut p.waiter, Waiter::Abandoned)
                {
                    ask.fail(Error::NoQuorum);
                }
            }
            self.abandon(request, now);
        }
    }
}
