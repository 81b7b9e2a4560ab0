//! What the table answers without changing: holders, sessions, pending
//! handoffs, outcomes. Lookups go straight to the entry they need (the
//! driver calls some of them per entry or per tick, and a scan there grows
//! with the table, not with the work: issue 8 item 10).

use super::{LockTable, Outcome, PendingHandoff, SessionInfo};
use crate::types::{FencingToken, LockInfo, LockName, NodeId, RequestId, SessionId};

impl LockTable {
    /// The current holder of `lock`.
    pub fn holder(&self, lock: &LockName) -> Option<LockInfo> {
        let l = self.locks.get(lock)?;
        let h = l.holder?;
        let s = self.sessions.get(&h.session)?;
        Some(LockInfo {
            token: h.token,
            holder: s.name.clone(),
            holder_id: s.node,
            session: h.session,
            waiters: l.waiters.len(),
        })
    }

    /// Whether `session` is open.
    pub fn session_exists(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// Every open session, in session order.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .map(|(id, s)| {
                super::cost::step(1);
                SessionInfo {
                    session: *id,
                    node: s.node,
                    name: s.name.clone(),
                    ttl_ms: s.ttl_ms,
                }
            })
            .collect()
    }

    /// The TTL of `session` in milliseconds, if it is open: one lookup
    /// (the driver asks on every session open; cloning every session there
    /// made opening n sessions cost O(n²)). Milliseconds, not a
    /// `Duration`: the table stays free of time types.
    pub fn session_ttl_ms(&self, session: SessionId) -> Option<u64> {
        super::cost::step(1);
        self.sessions.get(&session).map(|s| s.ttl_ms)
    }

    /// The locks awaiting a handoff, in lock-name order. Costs O(pending),
    /// whatever the number of locks.
    pub fn pending_handoffs(&self) -> Vec<PendingHandoff> {
        self.awaiting
            .iter()
            .filter_map(|name| {
                super::cost::step(1);
                let h = self.locks.get(name)?.handoff?;
                Some(PendingHandoff {
                    lock: name.clone(),
                    freed_at: h.freed_at,
                    delayed: h.delayed,
                })
            })
            .collect()
    }

    /// The entry index that freed `lock`, if it awaits a handoff.
    pub fn handoff_of(&self, lock: &LockName) -> Option<u64> {
        super::cost::step(1);
        self.locks.get(lock)?.handoff.map(|h| h.freed_at)
    }

    /// The recorded outcome of a request, if the table still remembers it.
    pub fn outcome(&self, session: SessionId, request: RequestId) -> Option<Outcome> {
        self.sessions.get(&session)?.results.get(&request).copied()
    }

    /// Where request `request` of `session` stands: its recorded outcome if
    /// the table still remembers it, else `Queued` while it waits in a
    /// queue, or `Granted` while it holds the lock it asked for. A parked
    /// waiter's outcome is forgotten once the session's floor passes it,
    /// so a node that catches up from a snapshot finds its grant here.
    pub fn request_state(&self, session: SessionId, request: RequestId) -> Option<Outcome> {
        let s = self.sessions.get(&session)?;
        if let Some(outcome) = s.results.get(&request) {
            return Some(*outcome);
        }
        if s.waiting.contains_key(&request) {
            return Some(Outcome::Queued);
        }
        s.held.iter().find_map(|(name, token)| {
            self.locks
                .get(name)
                .and_then(|l| l.holder)
                .filter(|h| h.request == request)
                .map(|_| Outcome::Granted(*token))
        })
    }

    /// The node that opened `session`, if it is open.
    pub fn session_node(&self, session: SessionId) -> Option<NodeId> {
        self.sessions.get(&session).map(|s| s.node)
    }

    /// How many request outcomes the table remembers, over all sessions
    /// (bounded by the requests in flight, not by the requests ever made).
    pub fn remembered_outcomes(&self) -> usize {
        self.sessions.values().map(|s| s.results.len()).sum()
    }

    /// The locks `session` holds, with their tokens, in lock-name order.
    pub fn locks_of(&self, session: SessionId) -> Vec<(LockName, FencingToken)> {
        self.sessions
            .get(&session)
            .map(|s| s.held.iter().map(|(n, t)| (n.clone(), *t)).collect())
            .unwrap_or_default()
    }

    /// The index of the last entry applied.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// How many locks the table remembers (held, awaited or awaiting handoff).
    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }

    /// A hash of the whole state, equal on nodes that applied the same log.
    pub fn state_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.encode_snapshot() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}
