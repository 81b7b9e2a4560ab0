//! What the table answers without changing: holders, sessions, pending
//! handoffs, outcomes. Lookups go straight to the entry they need (the
//! driver calls some of them per entry or per tick, and a scan there grows
//! with the table, not with the work: issue 8 item 10).

use std::ops::Bound;

use super::claim::{ClaimKind, NameKind};
use super::lock::Lock;
use super::{LockTable, Outcome, PendingHandoff, SessionInfo};
use crate::types::{FencingToken, LockInfo, LockName, NodeId, NodeName, RequestId, SessionId};

/// One grant on a name, as [`LockTable::holders`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrantInfo {
    /// The holding session.
    pub session: SessionId,
    /// The request the grant answered (what `ReleaseGrant` names).
    pub request: RequestId,
    /// The name of the node whose session holds it.
    pub holder: NodeName,
    /// The id of that node.
    pub holder_id: NodeId,
    /// The grant's fencing token.
    pub token: FencingToken,
    /// How it holds the name.
    pub kind: ClaimKind,
}

/// A name's holders and queue, as [`LockTable::holders`] reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameInfo {
    /// A lock, or a semaphore and its count.
    pub kind: NameKind,
    /// Every grant on the name: the exclusive one, or the shared ones in
    /// grant order (token, then session and request).
    pub holders: Vec<GrantInfo>,
    /// Permits in use (0 for a lock).
    pub permits_used: u64,
    /// How many requests wait in its queue.
    pub waiters: usize,
    /// Whether it awaits a `Handoff` (freed by a session's end).
    pub awaiting_handoff: bool,
    /// The grants of ended sessions the name keeps until its `Handoff`
    /// (lock-delay), in grant order: they still count as held (their
    /// permits in use, a reader excluding writers, an exclusive grant
    /// excluding everyone), which is why a request that does not fit
    /// beside them waits. Not in `holders` nor in `permits_used`. Empty
    /// when the name does not await a handoff, or when it was restored
    /// from an old snapshot that did not record them (then every request
    /// on it waits for the handoff).
    pub expired: Vec<GrantInfo>,
}

/// One queued request on a name, as [`LockTable::waiters`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaiterInfo {
    /// The waiting session.
    pub session: SessionId,
    /// Its request.
    pub request: RequestId,
    /// What it claims on this name.
    pub kind: ClaimKind,
}

impl LockTable {
    /// The holder of `lock`: its exclusive holder, or, for a name held
    /// shared (read locks, permits), the oldest of its grants (lowest
    /// token, then session and request order), so a caller learns that it
    /// is held; [`LockTable::holders`] lists them all. `None` only when
    /// nobody holds it.
    pub fn holder(&self, lock: &LockName) -> Option<LockInfo> {
        let l = self.locks.get(lock)?;
        let (session, token) = match l.holder {
            Some(h) => (h.session, h.token),
            None => {
                let (w, share) = l.shared.iter().min_by_key(|(w, s)| (s.token, **w))?;
                (w.0, share.token)
            }
        };
        let s = self.sessions.get(&session)?;
        Some(LockInfo {
            token,
            holder: s.name.clone(),
            holder_id: s.node,
            session,
            waiters: l.waiters.len(),
        })
    }

    /// Every grant on `lock`, its kind and its queue's length; `None` when
    /// the name is not in use (then it has no kind either). Costs
    /// O(holders), never O(waiters).
    pub fn holders(&self, lock: &LockName) -> Option<NameInfo> {
        Some(self.name_info(self.locks.get(lock)?))
    }

    /// The names in use after `after` (from the first when `None`), in
    /// name order, at most `limit` of them, each as [`LockTable::holders`]
    /// reports it. A range of the ordered map: O(log n + limit + their
    /// grants), never a scan of the table (issue 12, item 6: an operator's
    /// paged listing must not stall the driver on a large table).
    pub fn names_after(&self, after: Option<&LockName>, limit: usize) -> Vec<(LockName, NameInfo)> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.locks
            .range::<LockName, _>((from, Bound::Unbounded))
            .take(limit)
            .map(|(name, l)| {
                super::cost::step(1);
                (name.clone(), self.name_info(l))
            })
            .collect()
    }

    /// How many grants `session` holds now (0 when it is not open): one
    /// lookup.
    pub fn grant_count(&self, session: SessionId) -> usize {
        self.sessions.get(&session).map_or(0, |s| s.held.len())
    }

    fn name_info(&self, l: &Lock) -> NameInfo {
        let mut holders: Vec<GrantInfo> = Vec::new();
        if let Some(h) = l.holder {
            holders.extend(self.grant_info((h.session, h.request), h.token, ClaimKind::Exclusive));
        }
        let mut shared: Vec<_> = l.shared.iter().collect();
        shared.sort_by_key(|(w, s)| (s.token, **w));
        for (w, share) in shared {
            let kind = share_kind(l, share.permits);
            holders.extend(self.grant_info(*w, share.token, kind));
        }
        let mut expired: Vec<GrantInfo> = l
            .handoff
            .iter()
            .flat_map(|h| &h.grants)
            .map(|((session, request), e)| GrantInfo {
                session: *session,
                request: *request,
                holder: e.name.clone(),
                holder_id: e.node,
                token: e.token,
                kind: e.kind,
            })
            .collect();
        expired.sort_by_key(|g| (g.token, g.session, g.request));
        NameInfo {
            kind: l.kind,
            holders,
            permits_used: l.used,
            waiters: l.waiters.len(),
            awaiting_handoff: l.handoff.is_some(),
            expired,
        }
    }

    /// The first `limit` requests queued on `lock`, in queue order (the
    /// order they will be granted in). Costs O(limit).
    pub fn waiters(&self, lock: &LockName, limit: usize) -> Vec<WaiterInfo> {
        let Some(l) = self.locks.get(lock) else {
            return Vec::new();
        };
        l.waiters
            .iter()
            .take(limit)
            .filter_map(|(session, request)| {
                let ask = self.sessions.get(session)?.waiting.get(request)?;
                Some(WaiterInfo {
                    session: *session,
                    request: *request,
                    kind: ask.claim_on(lock)?,
                })
            })
            .collect()
    }

    fn grant_info(
        &self,
        (session, request): (SessionId, RequestId),
        token: FencingToken,
        kind: ClaimKind,
    ) -> Option<GrantInfo> {
        let s = self.sessions.get(&session)?;
        Some(GrantInfo {
            session,
            request,
            holder: s.name.clone(),
            holder_id: s.node,
            token,
            kind,
        })
    }

    /// Whether `session` is open.
    pub fn session_exists(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
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
                let h = self.locks.get(name)?.handoff.as_ref()?;
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
        self.locks.get(lock)?.handoff.as_ref().map(|h| h.freed_at)
    }

    /// The recorded outcome of a request, if the table still remembers it.
    pub fn outcome(&self, session: SessionId, request: RequestId) -> Option<Outcome> {
        self.sessions.get(&session)?.results.get(&request).copied()
    }

    /// Where request `request` of `session` stands: its recorded outcome if
    /// the table still remembers it, else `Queued` while it waits in a
    /// queue, or `Granted` while it holds what it asked for. A parked
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
        s.held.get(&request).map(|h| Outcome::Granted(h.token))
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

    /// The names `session` holds, with their tokens, in name order (then
    /// token order: a session may hold a name twice, as two read locks).
    pub fn locks_of(&self, session: SessionId) -> Vec<(LockName, FencingToken)> {
        let Some(s) = self.sessions.get(&session) else {
            return Vec::new();
        };
        let mut out: Vec<(LockName, FencingToken)> = s
            .held
            .values()
            .flat_map(|h| h.ask.claims().map(|(n, _)| (n.clone(), h.token)))
            .collect();
        out.sort();
        out
    }

    /// The index of the last entry applied.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// How many names the table remembers (held, awaited or awaiting handoff).
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

/// The claim a shared grant of `permits` makes on `l`.
fn share_kind(l: &Lock, permits: u32) -> ClaimKind {
    match l.kind {
        NameKind::Lock => ClaimKind::Shared,
        NameKind::Semaphore { count } => ClaimKind::Permits { n: permits, count },
    }
}
