//! What only the leader does: judge session liveness and hand freed locks on.
//!
//! Both are in memory and start afresh at each election: every session gets
//! a full TTL from the new leader's election, and every lock awaiting a
//! handoff gets its full lock-delay again (never less than it was owed).
//!
//! The duties belong to one term. A node that loses leadership and wins it
//! back in a later term between two Readies would otherwise keep the old
//! term's clocks and schedules (issue 8 item 11): [`LeaderDuty::refresh`]
//! replaces them whenever the term differs.
//!
//! Each expiry and handoff is proposed once per term (issue 8 item 10): a
//! proposal the leader's Raft accepted sits in the leader's own log and
//! commits in this term unless the term ends, and then these duties are
//! replaced and start again from the table. Only a proposal Raft refused
//! (a leadership transfer in progress) is handed back and goes again at the
//! next tick. At most [`MAX_DUTY_PROPOSALS_PER_TICK`] entries are proposed
//! per tick, so thousands of sessions or locks falling due together do not
//! land in one Ready.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use tokio::time::Instant;

use crate::lease::liveness::Liveness;
use crate::machine::LockTable;
use crate::types::{LockName, SessionId};

/// The most expiries and handoffs one tick proposes. Either kind gets at
/// least half when both are due; the rest waits for the next tick (at the
/// default 100 ms tick, 10 000 silent sessions are proposed within 4 s).
pub(crate) const MAX_DUTY_PROPOSALS_PER_TICK: usize = 256;

/// A lock freed and waiting for its handoff: due at `due`, the `seq`th
/// scheduled (so equal times keep arrival order; `seq` is unique, so the
/// order never reaches `lock`), answering the freeing entry `freed_at`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Handoff {
    due: Instant,
    seq: u64,
    lock: LockName,
    freed_at: u64,
}

/// A peer's wait for a snapshot. One map of both figures, not two maps:
/// each map type costs every application's binary its own B-tree code
/// (issue 12, item 9).
#[derive(Debug, Default)]
pub(crate) struct SnapshotWait {
    /// Since when the peer has waited for the snapshot last sent; `None`
    /// after it was sent again, until the peer waits anew.
    pub(crate) since: Option<Instant>,
    /// How many times in a row its snapshot was sent again without an
    /// answer (the wait before the next doubles).
    pub(crate) retries: u32,
}

/// The leader's duties for one term.
#[derive(Debug)]
pub(crate) struct LeaderDuty {
    term: u64,
    pub(crate) liveness: Liveness,
    /// Handoffs not yet proposed, earliest due first (then arrival order).
    /// A heap, not an ordered map: only the earliest is ever taken, and a
    /// map's code for this key and value type was 10 KiB of every
    /// application's binary (issue 12, item 9).
    handoffs: BinaryHeap<Reverse<Handoff>>,
    seq: u64,
    lock_delay: Duration,
    /// Each peer's wait for a snapshot, by Raft id (see
    /// `Driver::retry_lost_snapshots`).
    pub(crate) snapshot_waits: BTreeMap<u64, SnapshotWait>,
    /// What this leader saw of its peers, for the membership planner.
    pub(crate) watch: super::reconcile::Watch,
    /// When this leader last began a ReadIndex round for keepalives (see
    /// `Driver::flush_keepalives`).
    pub(crate) keepalive_round_at: Option<Instant>,
    /// Which heartbeats to learners go out (`outbox.rs`, issue 10).
    pub(crate) learner_beats: super::outbox::LearnerBeats,
}

impl LeaderDuty {
    /// Starts term `term`: fresh TTLs for all sessions, lock-delays restarted.
    pub(crate) fn elected(
        term: u64,
        now: Instant,
        table: &LockTable,
        lock_delay: Duration,
    ) -> Self {
        let liveness = Liveness::new_term(
            now,
            table
                .sessions()
                .into_iter()
                .map(|s| (s.session, Duration::from_millis(s.ttl_ms))),
        );
        let mut duty = Self {
            term,
            liveness,
            handoffs: BinaryHeap::new(),
            seq: 0,
            lock_delay,
            snapshot_waits: BTreeMap::new(),
            watch: super::reconcile::Watch::new(now),
            keepalive_round_at: None,
            learner_beats: Default::default(),
        };
        for h in table.pending_handoffs() {
            duty.schedule(h.lock, h.freed_at, h.delayed, now);
        }
        duty
    }

    /// Keeps `slot` in step with leadership after a Ready: duties for the
    /// current term while leading (new ones when there were none, or when
    /// they belong to another term), none otherwise. True when new duties
    /// started.
    pub(crate) fn refresh(
        slot: &mut Option<Self>,
        leading: bool,
        term: u64,
        now: Instant,
        table: &LockTable,
        lock_delay: Duration,
    ) -> bool {
        if !leading {
            *slot = None;
            return false;
        }
        if slot.as_ref().is_some_and(|d| d.term == term) {
            return false;
        }
        *slot = Some(Self::elected(term, now, table, lock_delay));
        true
    }

    /// Whether these duties belong to `term` (a tick that comes before the
    /// next Ready's `refresh` must not act on another term's duties).
    pub(crate) fn is_for(&self, term: u64) -> bool {
        self.term == term
    }

    /// A lock was freed and waits for a handoff.
    pub(crate) fn schedule(&mut self, lock: LockName, freed_at: u64, delayed: bool, now: Instant) {
        let due = if delayed { now + self.lock_delay } else { now };
        self.seq += 1;
        self.handoffs.push(Reverse(Handoff {
            due,
            seq: self.seq,
            lock,
            freed_at,
        }));
    }

    /// Raft refused the handoff proposal for `lock`: propose it again next tick.
    pub(crate) fn handoff_not_proposed(&mut self, lock: LockName, freed_at: u64, now: Instant) {
        self.schedule(lock, freed_at, false, now);
    }

    /// What to propose this tick, within [`MAX_DUTY_PROPOSALS_PER_TICK`]:
    /// sessions to expire and handoffs `(lock, freed_at)`.
    pub(crate) fn due(
        &mut self,
        now: Instant,
        table: &LockTable,
    ) -> (Vec<SessionId>, Vec<(LockName, u64)>) {
        let budget = MAX_DUTY_PROPOSALS_PER_TICK;
        let mut handoffs = self.due_handoffs(now, table, budget / 2);
        let expire = self.liveness.due(now, budget - handoffs.len());
        let left = budget - handoffs.len() - expire.len();
        handoffs.extend(self.due_handoffs(now, table, left));
        (expire, handoffs)
    }

    /// Up to `budget` handoffs due by `now` that the table still awaits,
    /// taken out of the schedule. Costs O(taken × log locks): neither the
    /// schedule's later entries nor the table's other locks are visited.
    fn due_handoffs(
        &mut self,
        now: Instant,
        table: &LockTable,
        budget: usize,
    ) -> Vec<(LockName, u64)> {
        let mut out = Vec::new();
        while out.len() < budget {
            match self.handoffs.peek() {
                Some(Reverse(first)) if first.due <= now => {}
                _ => break,
            }
            let Some(Reverse(Handoff { lock, freed_at, .. })) = self.handoffs.pop() else {
                break;
            };
            // A stale entry (already handed on) is dropped here.
            if table.handoff_of(&lock) == Some(freed_at) {
                out.push((lock, freed_at));
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
