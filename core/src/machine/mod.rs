//! The lock state machine: what every node applies, in log order.
//!
//! `LockTable::apply(index, &command) -> Vec<Effect>` is pure: no clock, no
//! randomness, no IO, and only ordered collections, so every node that
//! applies the same log holds the same table, byte for byte.
//!
//! Invariants (checked by `tests.rs` and `proptests.rs`):
//!
//! - a lock has at most one holder;
//! - a grant's token is the index of the entry that granted it plus the
//!   cluster's token base (fixed once, at founding), and an entry grants
//!   at most one lock, so tokens are unique across locks and strictly
//!   increase per lock;
//! - waiters are granted in the order they were queued, and a waiter whose
//!   session ended is never granted;
//! - a request retried with the same `(session, request)` gets its first
//!   outcome again and never a second grant;
//! - a release with a stale token changes nothing;
//! - a lock freed by session expiry or close is granted only by a later
//!   `Handoff` entry, which the leader proposes after the lock-delay.
//!
//! Beside the locks the table carries the member table (`members.rs`):
//! Raft ids allocated by `Join` entries, never reused, and following every
//! applied configuration through [`LockTable::apply_conf`].
//!
//! Choices where the rules leave room:
//!
//! - A request's `floor` is clamped to the request itself: a floor above it
//!   would forget the request's own outcome, and its retry would execute a
//!   second time.
//! - Outcomes are kept only at or above the floor (a request below it is
//!   ignored, so its outcome could never be read).
//! - `Cancel` finds a queued target in the session's `waiting`, and a
//!   granted one by the holder's request, rather than only through the
//!   recorded outcome: the same answer while the outcome is remembered, and
//!   a waiter is still removable if a client raised its floor too early.

mod command;
pub(crate) mod cost;
mod effect;
mod lock;
mod members;
mod query;
mod session;
mod snapshot;

#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod members_proptests;
#[cfg(test)]
mod members_tests;
#[cfg(test)]
mod proptest_model;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod snapshot_compat_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use command::{Command, DecodeError, RequestKey, COMMAND_VERSION, MAX_COMMAND_BYTES};
pub use effect::{Effect, Outcome};
pub use members::{
    validate_member, validate_zone, FoundingError, JoinRefusal, MemberRecord, MemberTable,
    MAX_MEMBERS, MAX_MEMBER_NAME, MAX_ZONE,
};
pub use snapshot::{MAX_SNAPSHOT_BYTES, SNAPSHOT_VERSION};

use lock::{Holder, Lock, PendingHandoffState};
use session::Session;

use crate::types::{FencingToken, LockName, NodeId, NodeName, RequestId, SessionId};

/// The most lock entries the table holds at once: each held lock and each
/// queued waiter counts one. An acquire that would pass it (a grant or a
/// queued wait; a `try_lock` that finds the lock held changes nothing)
/// gets [`Outcome::TableFull`] instead, decided in the log like every
/// outcome, so every node agrees. Why a limit: the whole table travels as
/// one snapshot to a follower that fell behind, and at this count, even
/// with 256-byte names, that snapshot stays below [`MAX_SNAPSHOT_BYTES`].
pub const MAX_LOCK_ENTRIES: usize = 1_000_000;

/// What the table knows of one open session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session.
    pub session: SessionId,
    /// Its node.
    pub node: NodeId,
    /// Its node's name.
    pub name: NodeName,
    /// Its TTL in milliseconds.
    pub ttl_ms: u64,
}

/// A lock freed by session expiry or close that waits for a `Handoff`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingHandoff {
    /// The lock.
    pub lock: LockName,
    /// The index of the entry that freed it.
    pub freed_at: u64,
    /// Whether lock-delay applies (freed by expiry).
    pub delayed: bool,
}

/// The replicated lock table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockTable {
    sessions: BTreeMap<SessionId, Session>,
    locks: BTreeMap<LockName, Lock>,
    applied_index: u64,
    /// The locks whose `handoff` is set: derived state (rebuilt on
    /// restore, never encoded), so finding them costs O(pending), not a
    /// scan of every lock.
    awaiting: BTreeSet<LockName>,
    /// Who is a member, beside the locks (see `members.rs`).
    members: MemberTable,
}

impl LockTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the command of log entry `index`. Entries at or below the
    /// last applied index are ignored (already applied).
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Vec<Effect> {
        if index <= self.applied_index {
            return Vec::new();
        }
        self.applied_index = index;
        let mut fx = Vec::new();
        match cmd {
            Command::OpenSession {
                session,
                node,
                name,
                ttl_ms,
            } => {
                if !self.sessions.contains_key(session) {
                    self.sessions
                        .insert(*session, Session::new(*node, name.clone(), *ttl_ms));
                    fx.push(Effect::SessionOpened { session: *session });
                }
                fx.push(Effect::Reply {
                    session: *session,
                    request: RequestId(0),
                    outcome: Outcome::Opened,
                });
            }
            Command::CloseSession { session } => {
                self.end_session(index, *session, false, false, &mut fx)
            }
            Command::ExpireSession {
                session,
                lock_delay,
            } => self.end_session(index, *session, true, *lock_delay, &mut fx),
            Command::Acquire { key, lock, wait } => {
                if self.begin_request(key, &mut fx) {
                    let out = self.acquire(index, key, lock, *wait);
                    self.finish_request(key, out, &mut fx);
                }
            }
            Command::Release { key, lock, token } => {
                if self.begin_request(key, &mut fx) {
                    let out = self.release(index, key.session, lock, *token, &mut fx);
                    self.finish_request(key, out, &mut fx);
                }
            }
            Command::Cancel { key, target } => {
                if self.begin_request(key, &mut fx) {
                    let out = self.cancel(index, key.session, *target, &mut fx);
                    self.finish_request(key, out, &mut fx);
                }
            }
            Command::Handoff { lock, freed_at } => {
                let awaited = self
                    .locks
                    .get(lock)
                    .and_then(|l| l.handoff)
                    .is_some_and(|h| h.freed_at == *freed_at);
                if awaited {
                    if let Some(l) = self.locks.get_mut(lock) {
                        l.handoff = None;
                    }
                    self.awaiting.remove(lock);
                    self.grant_next(index, lock, &mut fx);
                }
            }
            Command::Join { .. }
            | Command::SetAddr { .. }
            | Command::Leave { .. }
            | Command::Found { .. }
            | Command::SetZone { .. } => self.members.apply(index, cmd, &mut fx),
        }
        fx
    }

    /// Held locks plus queued waiters, counted through the sessions (few)
    /// rather than the locks (many): each grant and each waiter is recorded
    /// in its session.
    pub fn lock_entries(&self) -> usize {
        self.sessions
            .values()
            .map(|s| s.held.len() + s.waiting.len())
            .sum()
    }

    /// The common front of a request: false when it must not execute
    /// (unknown session, stale duplicate, or a retry answered from the
    /// recorded outcome).
    fn begin_request(&mut self, key: &RequestKey, fx: &mut Vec<Effect>) -> bool {
        let Some(s) = self.sessions.get_mut(&key.session) else {
            fx.push(Effect::Reply {
                session: key.session,
                request: key.request,
                outcome: Outcome::NoSession,
            });
            return false;
        };
        if key.request < s.floor {
            return false;
        }
        // A floor above the request itself would forget this request's own
        // outcome and let a retry execute twice: clamp it to the request.
        s.raise_floor(key.floor.min(key.request));
        if let Some(outcome) = s.results.get(&key.request) {
            fx.push(Effect::Reply {
                session: key.session,
                request: key.request,
                outcome: *outcome,
            });
            return false;
        }
        true
    }

    fn finish_request(&mut self, key: &RequestKey, outcome: Outcome, fx: &mut Vec<Effect>) {
        if let Some(s) = self.sessions.get_mut(&key.session) {
            s.record(key.request, outcome);
        }
        fx.push(Effect::Reply {
            session: key.session,
            request: key.request,
            outcome,
        });
    }

    /// The fencing token of a grant made by the entry at `index`: the
    /// index plus the cluster's token base. The base is fixed once, by the
    /// `Found` entry, so tokens still rise with the log; and because it is
    /// the founder's wall clock in microseconds, a cluster founded again
    /// after every disk was lost hands out tokens above the old one's
    /// (issue 9, item 10).
    fn token_at(&self, index: u64) -> FencingToken {
        FencingToken(self.members.token_base().saturating_add(index))
    }

    fn acquire(&mut self, index: u64, key: &RequestKey, name: &LockName, wait: bool) -> Outcome {
        let adds = wait || self.locks.get(name).is_none_or(Lock::is_free);
        if adds && self.lock_entries() >= MAX_LOCK_ENTRIES {
            return Outcome::TableFull;
        }
        let token = self.token_at(index);
        let lock = self.locks.entry(name.clone()).or_default();
        if lock.is_free() {
            lock.holder = Some(Holder {
                session: key.session,
                request: key.request,
                token,
            });
            if let Some(s) = self.sessions.get_mut(&key.session) {
                s.held.insert(name.clone(), token);
            }
            return Outcome::Granted(token);
        }
        if !wait {
            return Outcome::Busy;
        }
        lock.waiters.push_back((key.session, key.request));
        if let Some(s) = self.sessions.get_mut(&key.session) {
            s.waiting.insert(key.request, name.clone());
        }
        Outcome::Queued
    }

    fn release(
        &mut self,
        index: u64,
        session: SessionId,
        name: &LockName,
        token: FencingToken,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        let held = self
            .locks
            .get(name)
            .and_then(|l| l.holder)
            .is_some_and(|h| h.session == session && h.token == token);
        if !held {
            return Outcome::NotHolder;
        }
        self.free(index, session, name, fx);
        Outcome::Released
    }

    /// Frees a held lock and grants it to the next waiter in this entry.
    fn free(&mut self, index: u64, session: SessionId, name: &LockName, fx: &mut Vec<Effect>) {
        if let Some(l) = self.locks.get_mut(name) {
            l.holder = None;
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.held.remove(name);
        }
        self.grant_next(index, name, fx);
    }

    /// Abandons the acquire `target` of `session`. The queue and the grant
    /// are looked up directly (in `waiting`, and by the holder's request),
    /// which agrees with the recorded outcome while it is remembered and
    /// still works if the floor already dropped it.
    fn cancel(
        &mut self,
        index: u64,
        session: SessionId,
        target: RequestId,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Outcome::NoSession;
        };
        let cancelled = Effect::Reply {
            session,
            request: target,
            outcome: Outcome::Cancelled,
        };
        if let Some(name) = s.waiting.remove(&target) {
            s.record(target, Outcome::Cancelled);
            self.drop_waiter(&name, session, target);
            fx.push(cancelled);
            return Outcome::Cancelled;
        }
        let granted = s.held.keys().find(|name| {
            self.locks
                .get(*name)
                .and_then(|l| l.holder)
                .is_some_and(|h| h.session == session && h.request == target)
        });
        if let Some(name) = granted.cloned() {
            s.record(target, Outcome::Cancelled);
            fx.push(cancelled);
            self.free(index, session, &name, fx);
            return Outcome::Released;
        }
        if !s.results.contains_key(&target) {
            // Not arrived yet: the acquire, when it comes, is a duplicate.
            s.record(target, Outcome::Cancelled);
        }
        Outcome::Cancelled
    }

    /// Removes one waiter from `name`'s queue, and the lock if nothing is
    /// left of it.
    fn drop_waiter(&mut self, name: &LockName, session: SessionId, request: RequestId) {
        let Some(l) = self.locks.get_mut(name) else {
            return;
        };
        l.remove_waiter(session, request);
        if l.is_free() {
            self.locks.remove(name);
        }
    }

    /// Grants `name` to its first waiter whose session still exists.
    fn grant_next(&mut self, index: u64, name: &LockName, fx: &mut Vec<Effect>) {
        let token = self.token_at(index);
        let Some(lock) = self.locks.get_mut(name) else {
            return;
        };
        if lock.holder.is_some() || lock.handoff.is_some() {
            return;
        }
        loop {
            let next = if crate::teeth::planted(crate::teeth::Bug::GrantOutOfFifoOrder) {
                lock.waiters.pop_back()
            } else {
                lock.waiters.pop_front()
            };
            let Some((session, request)) = next else {
                break;
            };
            let Some(s) = self.sessions.get_mut(&session) else {
                if crate::teeth::planted(crate::teeth::Bug::GrantWithoutSessionCheck) {
                    lock.holder = Some(Holder {
                        session,
                        request,
                        token,
                    });
                    fx.push(Effect::Reply {
                        session,
                        request,
                        outcome: Outcome::Granted(token),
                    });
                    return;
                }
                continue;
            };
            lock.holder = Some(Holder {
                session,
                request,
                token,
            });
            s.waiting.remove(&request);
            s.held.insert(name.clone(), token);
            s.record(request, Outcome::Granted(token));
            fx.push(Effect::Reply {
                session,
                request,
                outcome: Outcome::Granted(token),
            });
            return;
        }
        if lock.is_free() {
            self.locks.remove(name);
        }
    }

    /// Ends `session` (closed, or expired by the leader): its waiters are
    /// answered `NoSession`, and each lock it held is freed, awaiting a
    /// `Handoff` when it has waiters or lock-delay applies. Nothing is
    /// granted in this entry, so it grants at most one lock (none).
    fn end_session(
        &mut self,
        index: u64,
        session: SessionId,
        expired: bool,
        lock_delay: bool,
        fx: &mut Vec<Effect>,
    ) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        for (request, name) in &s.waiting {
            if !crate::teeth::planted(crate::teeth::Bug::GrantWithoutSessionCheck) {
                self.drop_waiter(name, session, *request);
            }
            fx.push(Effect::Reply {
                session,
                request: *request,
                outcome: Outcome::NoSession,
            });
        }
        let delayed = expired && lock_delay;
        for name in s.held.keys() {
            let Some(l) = self.locks.get_mut(name) else {
                continue;
            };
            if l.holder.is_none_or(|h| h.session != session) {
                continue; // not this session's grant (defensive)
            }
            l.holder = None;
            if delayed || !l.waiters.is_empty() {
                l.handoff = Some(PendingHandoffState {
                    freed_at: index,
                    delayed,
                });
                self.awaiting.insert(name.clone());
                fx.push(Effect::AwaitingHandoff {
                    lock: name.clone(),
                    freed_at: index,
                    delayed,
                });
            } else if l.is_free() {
                self.locks.remove(name);
            }
        }
        fx.push(Effect::SessionEnded { session, expired });
    }
}
