//! What only the leader does: judge session liveness and hand freed locks on.
//!
//! Both are in memory and start afresh at each election: every session gets
//! a full TTL from the new leader's election, and every lock awaiting a
//! handoff gets its full lock-delay again (never less than it was owed).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::lease::liveness::Liveness;
use crate::machine::LockTable;
use crate::types::LockName;

/// How long before the same handoff is proposed again.
const REPROPOSE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Handoff {
    freed_at: u64,
    due: Instant,
    proposed: Option<Instant>,
}

/// The leader's duties for one term.
#[derive(Debug)]
pub(crate) struct LeaderDuty {
    pub(crate) liveness: Liveness,
    handoffs: BTreeMap<LockName, Handoff>,
    lock_delay: Duration,
    /// Since when each peer has waited for a snapshot (see
    /// `Driver::retry_lost_snapshots`).
    pub(crate) snapshot_since: BTreeMap<u64, Instant>,
}

impl LeaderDuty {
    /// Starts a term: fresh TTLs for all sessions, lock-delays restarted.
    pub(crate) fn elected(now: Instant, table: &LockTable, lock_delay: Duration) -> Self {
        let liveness = Liveness::new_term(
            now,
            table
                .sessions()
                .into_iter()
                .map(|s| (s.session, Duration::from_millis(s.ttl_ms))),
        );
        let mut duty = Self {
            liveness,
            handoffs: BTreeMap::new(),
            lock_delay,
            snapshot_since: BTreeMap::new(),
        };
        for h in table.pending_handoffs() {
            duty.schedule(h.lock, h.freed_at, h.delayed, now);
        }
        duty
    }

    /// A lock was freed and waits for a handoff.
    pub(crate) fn schedule(&mut self, lock: LockName, freed_at: u64, delayed: bool, now: Instant) {
        let due = if delayed { now + self.lock_delay } else { now };
        self.handoffs.insert(
            lock,
            Handoff {
                freed_at,
                due,
                proposed: None,
            },
        );
    }

    /// Handoffs to propose now. Entries the table no longer awaits are dropped.
    pub(crate) fn due_handoffs(&mut self, now: Instant, table: &LockTable) -> Vec<(LockName, u64)> {
        if self.handoffs.is_empty() {
            return Vec::new();
        }
        let awaited: BTreeMap<LockName, u64> = table
            .pending_handoffs()
            .into_iter()
            .map(|h| (h.lock, h.freed_at))
            .collect();
        self.handoffs
            .retain(|lock, h| awaited.get(lock) == Some(&h.freed_at));
        let mut out = Vec::new();
        for (lock, h) in &mut self.handoffs {
            let ready = now >= h.due
                && h.proposed
                    .is_none_or(|at| now.saturating_duration_since(at) >= REPROPOSE_AFTER);
            if ready {
                h.proposed = Some(now);
                out.push((lock.clone(), h.freed_at));
            }
        }
        out
    }
}
