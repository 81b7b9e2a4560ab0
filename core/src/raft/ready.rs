//! Ready handling, in the one order raft-rs documents ("Processing the `Ready`
//! State" in its crate docs), and applying committed entries to the table.

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Snapshot};
use tokio::time::Instant;

use super::leader::LeaderDuty;
use super::own::OwnSession;
use super::proposals::Waiter;
use super::reads::Purpose;
use super::Driver;
use crate::machine::{Command, Effect, LockTable, Outcome};
use crate::storage::LogStore;
use crate::transport::PeerMessage;
use crate::types::RequestId;

impl<S: LogStore + Send + 'static> Driver<S> {
    pub(super) fn handle_ready(&mut self) {
        if !self.raw.has_ready() {
            return;
        }
        let _round = tracing::trace_span!("ready", node = %self.name).entered();
        let mut ready = self.raw.ready();

        // 1. Send messages that do not depend on this Ready being persisted
        //    (a leader's appends may go out before its own write).
        self.send_raft(ready.take_messages());

        // 2. Apply the snapshot, if any.
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            self.install_snapshot(snap);
            if self.stopped {
                return;
            }
        }

        // 3. Apply committed entries (their commit index was persisted with
        //    an earlier Ready, as raft-rs requires).
        self.apply_entries(ready.take_committed_entries());
        for rs in ready.take_read_states() {
            self.reads.confirmed(&rs.request_ctx, rs.index);
        }

        // 4. Append new entries and persist the hard state: one write and
        //    one fsync for the whole Ready (group commit). On a durable
        //    store the fsync runs on the syncer thread (see `syncer.rs`),
        //    and steps 5 and 6 happen when it reports back.
        // A Ready that writes nothing, with nothing else waiting for the
        // disk, needs no fsync: its messages (a follower's forwarded
        // proposals, say) go out at once.
        // (A change of the commit index alone needs no fsync either.)
        let vote = (self.raw.raft.term, self.raw.raft.vote);
        let writes =
            !ready.entries().is_empty() || (ready.hs().is_some() && vote != self.written_vote);
        self.written_vote = vote;
        if self.syncer.is_some() && (writes || self.unsynced_upto.is_some()) {
            self.submit_to_syncer(ready, writes);
            return;
        }
        if let Err(e) = self.raw.mut_store().persist(ready.entries(), ready.hs()) {
            self.fatal("persist the raft log", &e);
            return;
        }

        // 5. Only now send the messages that depend on what was persisted
        //    (votes, append acknowledgements).
        self.send_raft(ready.take_persisted_messages());

        // 6. Advance, then handle the light ready: commit index, messages,
        //    and entries committed meanwhile; then advance the apply index.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            if let Err(e) = self.raw.mut_store().set_commit(commit) {
                self.fatal("persist the commit index", &e);
                return;
            }
        }
        self.send_raft(light.take_messages());
        self.apply_entries(light.take_committed_entries());
        self.raw.advance_apply();
    }

    /// The asynchronous end of step 4: write without waiting, hand the
    /// Ready's number and its dependent messages to the fsync thread, and
    /// record the Ready (raft-rs's `advance_append_async`).
    ///
    /// A Ready that `writes` nothing durable (a commit index at most,
    /// unsynced by design) carries no file: its messages wait only for the
    /// Readies before it. With one, a follower's commit-only Ready cost an
    /// fsync in front of the next append's (see `syncer.rs`).
    fn submit_to_syncer(&mut self, mut ready: raft::Ready, writes: bool) {
        if let Err(e) = self
            .raw
            .mut_store()
            .write_unsynced(ready.entries(), ready.hs())
        {
            self.fatal("write the raft log", &e);
            return;
        }
        tracing::trace!(target: super::TIMELINE, node = %self.name, ready = ready.number(), entries = ready.entries().len(), "written");
        self.unsynced_upto = Some(ready.number());
        let mut msgs = ready.take_persisted_messages();
        if crate::teeth::planted(crate::teeth::Bug::AckBeforeFsync) {
            // The planted bug: votes and append acknowledgements go out
            // before the fsync.
            self.send_raft(std::mem::take(&mut msgs));
        }
        let job = super::syncer::Job {
            number: ready.number(),
            file: writes.then(|| self.raw.store().sync_handle()).flatten(),
            msgs,
        };
        self.raw.advance_append_async(ready);
        self.advance_applied();
        let submitted = self.syncer.as_ref().is_some_and(|s| s.submit(job));
        if !submitted {
            tracing::error!(node = %self.name, "the fsync thread is gone; stopping the node");
            self.stopped = true;
        }
    }

    /// Tells raft-rs how far this node has applied, on the asynchronous
    /// path. raft-rs requires applied ≤ persisted: a snapshot installed in
    /// a Ready whose write is still on its way to the disk counts only once
    /// the fsync reports back (found by the simulator: raft-rs panicked
    /// when `advance_apply` named the snapshot's index too early).
    pub(super) fn advance_applied(&mut self) {
        let log = &self.raw.raft.raft_log;
        let target = self.applied_entry.min(log.persisted).min(log.committed);
        if target > log.applied {
            self.raw.advance_apply_to(target);
        }
    }

    fn fatal(&mut self, what: &str, e: &raft::Error) {
        tracing::error!(node = %self.name, error = %e, "failed to {what}; stopping the node");
        self.stopped = true;
    }

    fn install_snapshot(&mut self, snap: Snapshot) {
        let snap_index = snap.get_metadata().index;
        let snap_term = snap.get_metadata().term;
        let decoded = match self.take_decoded(snap_index, snap_term) {
            Some(t) => Ok(t),
            None => LockTable::restore(&snap.data),
        };
        let table = match decoded {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(node = %self.name, error = %e, "received a snapshot that does not decode; stopping");
                self.stopped = true;
                return;
            }
        };
        let conf = snap.get_metadata().get_conf_state().clone();
        let bytes = snap.get_data().len();
        self.compaction.snapshot_taken(bytes as u64);
        if let Err(e) = self.raw.mut_store().apply_snapshot(snap) {
            self.fatal("install a snapshot", &e);
            return;
        }
        self.hooks.conf_applied(self.me, snap_index, &conf, true);
        self.table = table;
        self.refresh_member_status();
        self.teach_transport();
        self.applied_entry = self.applied_entry.max(snap_index);
        crate::metrics::snapshot_installed(bytes);
        tracing::info!(node = %self.name, applied = self.table.applied_index(), "caught up from a snapshot");
        self.watches.refresh(&self.table);
        let now = self.clock.now();
        if self.own.opened && !self.table.session_exists(self.own.id) {
            self.own_session_ended(now);
            return;
        }
        // Answer requests whose outcome the snapshot already holds. A
        // parked waiter's outcome may be forgotten (the floor passed it):
        // its grant is found by its request, and a waiter that is neither
        // queued nor granted any more is told its place is gone, so the
        // caller queues again.
        for request in self.pending.ids() {
            match self.table.request_state(self.own.id, request) {
                Some(outcome) => self.on_reply(request, outcome),
                None if self.pending.is_queued(request) => {
                    self.on_reply(request, Outcome::NoSession)
                }
                None => {}
            }
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let (now, n) = (self.clock.now(), entries.len());
        tracing::trace!(target: super::TIMELINE, node = %self.name, first = entries.first().map_or(0, |e| e.index), n, "apply");
        for entry in entries {
            self.applied_entry = self.applied_entry.max(entry.index);
            self.compaction.applied(&entry);
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if entry.data.is_empty() {
                        // A new leader's empty entry.
                        self.observe(entry.index, None, &[]);
                        continue;
                    }
                    match Command::decode(&entry.data) {
                        Ok(cmd) => {
                            let effects = self.table.apply(entry.index, &cmd);
                            self.observe(entry.index, Some(&cmd), &effects);
                            self.reads
                                .ages
                                .note(entry.index, &effects, &self.table, now);
                            for effect in effects {
                                self.on_effect(effect, now);
                            }
                        }
                        Err(e) => {
                            self.observe(entry.index, None, &[]);
                            tracing::warn!(node = %self.name, index = entry.index, error = %e, "skipping a log entry that does not decode");
                        }
                    }
                }
                EntryType::EntryConfChange => {
                    let mut cc = ConfChange::default();
                    if cc.merge_from_bytes(&entry.data).is_ok() {
                        let result = self.raw.apply_conf_change(&cc);
                        self.after_conf_change(entry.index, result);
                    }
                }
                EntryType::EntryConfChangeV2 => {
                    let mut cc = ConfChangeV2::default();
                    if cc.merge_from_bytes(&entry.data).is_ok() {
                        let result = self.raw.apply_conf_change(&cc);
                        self.after_conf_change(entry.index, result);
                    }
                }
            }
        }
        crate::metrics::applied(n, self.applied_entry);
        self.watches.refresh(&self.table);
    }

    /// Tells the simulator's observer, if any, of an applied entry.
    fn observe(&self, index: u64, cmd: Option<&Command>, effects: &[Effect]) {
        if let Some(o) = &self.hooks.observer {
            o(self.me, index, cmd, effects);
        }
    }

    fn after_conf_change(&mut self, index: u64, result: raft::Result<raft::eraftpb::ConfState>) {
        match result {
            Ok(cs) => {
                self.hooks.conf_applied(self.me, index, &cs, false);
                if let Err(e) = self.raw.mut_store().set_conf_state(&cs) {
                    self.fatal("persist the membership", &e);
                }
                // The member table follows the configuration: every id in
                // it (either half of a joint config, learners_next too)
                // counts as added, and an added member absent from all of
                // them was removed.
                let voters: Vec<u64> = cs
                    .voters
                    .iter()
                    .chain(&cs.voters_outgoing)
                    .copied()
                    .collect();
                let learners: Vec<u64> = cs
                    .learners
                    .iter()
                    .chain(&cs.learners_next)
                    .copied()
                    .collect();
                let removed = self.table.apply_conf(index, &voters, &learners);
                self.member_status_changed(self.clock.now());
                self.plan_at_next_tick();
                if !removed.is_empty() {
                    tracing::debug!(node = %self.name, ?removed, "members removed from the configuration");
                }
            }
            Err(e) => tracing::warn!(node = %self.name, error = %e, "membership change refused"),
        }
    }

    fn on_effect(&mut self, effect: Effect, now: Instant) {
        match effect {
            Effect::Reply {
                session,
                request,
                outcome,
            } => {
                if session != self.own.id {
                    return;
                }
                if outcome == Outcome::Opened {
                    if !self.own.opened {
                        self.own.opened = true;
                        tracing::debug!(node = %self.name, %session, "session open");
                        self.send_keepalive(now);
                    }
                    return;
                }
                self.on_reply(request, outcome);
            }
            Effect::SessionOpened { session } => {
                if let Some(duty) = self.leader.as_mut() {
                    let ttl = self.table.session_ttl_ms(session);
                    let ttl = ttl.map_or(self.cfg.session_ttl, std::time::Duration::from_millis);
                    duty.liveness.opened(session, ttl, now);
                }
            }
            Effect::SessionEnded { session, expired } => {
                if let Some(duty) = self.leader.as_mut() {
                    duty.liveness.ended(session);
                }
                if session == self.own.id && self.own.opened {
                    if expired {
                        tracing::warn!(node = %self.name, %session, "this node's session expired; its locks are lost");
                    }
                    self.own_session_ended(now);
                }
            }
            Effect::AwaitingHandoff {
                lock,
                freed_at,
                delayed,
            } => {
                if let Some(duty) = self.leader.as_mut() {
                    if delayed {
                        crate::metrics::count(crate::metrics::LOCK_DELAY_HANDOFFS);
                    }
                    duty.schedule(lock, freed_at, delayed, now);
                }
            }
            Effect::MemberJoined { token, id } => self.on_member_joined(token, id),
            Effect::MemberJoinRefused { token, reason } => {
                self.on_member_join_refused(token, reason.to_string())
            }
            Effect::MemberAddrChanged { .. } => self.teach_transport(),
            Effect::MemberLeaving { id } => {
                tracing::info!(node = %self.name, %id, "a member is leaving");
            }
        }
    }

    /// A request of this node's session reached `outcome`.
    fn on_reply(&mut self, request: RequestId, outcome: Outcome) {
        let queued = self.pending.is_queued(request);
        let Some(p) = self.pending.get_mut(request) else {
            return;
        };
        // Proposal to apply, once per request (a queued one's grant later
        // is a wait, not a commit).
        if let Some((at, _)) = p.proposed.filter(|_| !queued) {
            let took = self.clock.now().saturating_duration_since(at);
            crate::metrics::seconds(crate::metrics::COMMIT_SECONDS, took);
        }
        if outcome == Outcome::Queued {
            self.pending.mark_queued(request);
            return;
        }
        if matches!(p.waiter, Waiter::Abandoned) && matches!(outcome, Outcome::Granted(_)) {
            // The cancel that follows releases this grant; keep the request
            // tracked (so the floor cannot pass it) until then.
            return;
        }
        let Some(p) = self.pending.remove(request) else {
            return;
        };
        tracing::trace!(target: super::TIMELINE, node = %self.name, request = request.0, "answer");
        match p.waiter {
            Waiter::Acquire { ask, .. } => self.answer_acquire(request, ask, outcome),
            Waiter::Release { reply } => {
                if let Some(r) = reply {
                    let _ = r.send(Ok(outcome == Outcome::Released));
                }
            }
            Waiter::Cancel { target } => {
                self.pending.remove(target);
            }
            Waiter::Abandoned => {}
        }
    }

    /// This node's session is gone: every guard of it is lost, every
    /// request of it ends, and (unless shutting down) a new session opens.
    pub(super) fn own_session_ended(&mut self, now: Instant) {
        self.own.end();
        for (_, p) in self.pending.drain() {
            match p.waiter {
                Waiter::Acquire { ask, .. } => ask.session_ended(),
                Waiter::Release { reply: Some(r) } => {
                    let _ = r.send(Ok(false));
                }
                _ => {}
            }
        }
        let no_lease_since = self.own.no_lease_since;
        self.own = OwnSession::new(
            self.cfg.session_ttl,
            self.cfg.lease_margin(),
            now,
            no_lease_since,
        );
        if self.shutdown.is_some() {
            self.own.end();
        }
    }

    /// After a Ready: notice leadership changes and answer reads whose index
    /// is now applied.
    pub(super) fn after_ready(&mut self, now: Instant) {
        let (leading, term) = (self.is_leader(), self.raw.raft.term);
        let (table, delay) = (&self.table, self.cfg.lock_delay);
        if LeaderDuty::refresh(&mut self.leader, leading, term, now, table, delay) {
            tracing::info!(node = %self.name, term, "became leader");
            self.hooks
                .raft_event(self.me, super::RaftEvent::Leader { term });
        }
        if !leading {
            // Deposed: the senders renew with the new leader.
            self.keepalive_batch.clear();
        }
        let seen = (self.raw.raft.leader_id, self.raw.raft.term);
        if seen != self.seen_leader {
            self.seen_leader = seen;
            if seen.0 != 0 {
                crate::metrics::count(crate::metrics::LEADER_CHANGES);
            }
            if self.own.opened && seen.0 != 0 {
                // A new leader: renew the lease with it right away.
                self.send_keepalive(now);
            }
            self.propose_due(now);
        }
        let applied = self.raw.raft.raft_log.applied;
        for purpose in self.reads.take_applied(applied) {
            self.answer_read(purpose);
        }
    }

    fn answer_read(&mut self, purpose: Purpose) {
        match purpose {
            Purpose::Holder { lock, reply, .. } => {
                let _ = reply.send(Ok(self.table.holder(&lock)));
            }
            Purpose::Holders { lock, reply, .. } => {
                let now = self.clock.now();
                let info = self.table.holders(&lock).map(|i| self.with_ages(i, now));
                let _ = reply.send(Ok(info));
            }
            Purpose::Locks {
                after,
                limit,
                reply,
                ..
            } => self.answer_locks(after, limit, reply),
            Purpose::Members { reply, deadline } => self.answer_members(reply, deadline),
            Purpose::KeepAlives(batch) => {
                // Only a leader that still leads answers; a deposed one stays
                // silent and the node renews with the new leader.
                let Some(duty) = self.leader.as_ref() else {
                    return;
                };
                let mut local = Vec::new();
                let mut by_peer: std::collections::BTreeMap<_, Vec<PeerMessage>> =
                    Default::default();
                for k in batch {
                    let alive = self.table.session_exists(k.session)
                        && !duty.liveness.is_expiring(k.session);
                    if k.from == self.key {
                        local.push((k.session, k.seq, alive));
                    } else {
                        by_peer
                            .entry(k.from)
                            .or_default()
                            .push(PeerMessage::KeepAliveAck {
                                session: k.session,
                                seq: k.seq,
                                alive,
                            });
                    }
                }
                for (to, msgs) in by_peer {
                    self.transport.send(to, msgs);
                }
                for (session, seq, alive) in local {
                    self.on_keepalive_ack(session, seq, alive, self.clock.now());
                }
            }
        }
    }
}
