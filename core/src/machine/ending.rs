//! A session's end (close or expiry) and the `Handoff` that follows it.
//!
//! Every grant of the ended session is freed, on every kind of name. A
//! name it held awaits a `Handoff` (proposed by the leader, after the
//! lock-delay on expiry) before anyone else is granted on it, when lock
//! delay applies or someone waits: the old holder may still act on its
//! grant until its lease runs out, whatever kind the grant was. A name
//! already awaiting a handoff takes the new freeing entry (so a stale
//! `Handoff` of the earlier one does nothing) and keeps a lock-delay it
//! owed: the leader then waits the full delay again from the later entry,
//! never less than either session was owed.
//!
//! The session's waiters leave their queues. A waiter that was at the head
//! of a queue may have held back a multi-name request behind it, so those
//! names are examined and may be granted in this entry (never a name the
//! session held: that one awaits its handoff). With mutexes alone nothing
//! is ever granted here, as before issue 11: a mutex queue's head waits
//! only on the lock's holder or handoff.

use std::collections::BTreeSet;

use super::lock::PendingHandoffState;
use super::{Effect, LockTable, Outcome};
use crate::teeth::{planted, Bug};
use crate::types::{LockName, SessionId};

impl LockTable {
    /// Ends `session` (closed, or expired by the leader): its waiters are
    /// answered `NoSession`, and each name it held is freed, awaiting a
    /// `Handoff` when it has waiters or lock-delay applies.
    pub(super) fn end_session(
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
        let mut heads = Vec::new();
        for (request, ask) in &s.waiting {
            if !planted(Bug::GrantWithoutSessionCheck) {
                heads.extend(self.drop_waiter((session, *request), ask));
            }
            fx.push(Effect::Reply {
                session,
                request: *request,
                outcome: Outcome::NoSession,
            });
        }
        let delayed = expired && lock_delay;
        // Each name once, in name order: a session may hold several grants
        // on one name (two read locks).
        let mut freed: BTreeSet<&LockName> = BTreeSet::new();
        for (request, held) in &s.held {
            self.entries = self.entries.saturating_sub(held.ask.len());
            for (name, _) in held.ask.claims() {
                let w = (session, *request);
                if self.locks.get_mut(name).is_some_and(|l| l.remove_grant(w)) {
                    freed.insert(name);
                }
            }
        }
        for name in freed {
            let Some(l) = self.locks.get_mut(name) else {
                continue;
            };
            if delayed || !l.waiters.is_empty() {
                let delayed = delayed || l.handoff.is_some_and(|h| h.delayed);
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
        self.settle_all(index, heads, fx);
        fx.push(Effect::SessionEnded { session, expired });
    }

    /// The leader's `Handoff` of `lock`: acts only if the name still
    /// awaits the handoff of the entry at `freed_at`, so a stale duplicate
    /// can never cut a later lock-delay short.
    pub(super) fn handoff(
        &mut self,
        index: u64,
        lock: &LockName,
        freed_at: u64,
        fx: &mut Vec<Effect>,
    ) {
        let Some(l) = self.locks.get_mut(lock) else {
            return;
        };
        if l.handoff.is_none_or(|h| h.freed_at != freed_at) {
            return;
        }
        l.handoff = None;
        self.awaiting.remove(lock);
        self.settle(index, lock, fx);
    }
}
