//! A session's end (close or expiry) and the `Handoff` that follows it.
//!
//! Every grant of the ended session leaves the session. On a name where
//! lock-delay applies or someone waits, the grant is not given away: the
//! name awaits a `Handoff` (proposed by the leader, after the lock-delay on
//! expiry), and until that entry the ended grant keeps counting as held,
//! exactly as it held: its permits stay in use, an ended reader still
//! excludes writers (not other readers), an ended exclusive grant (a
//! mutex, a write lock) still excludes everyone. The old holder may still
//! act on what it held until its lease runs out (Chubby's lock-delay,
//! Burrows, OSDI 2006, §2.4; etcd's and Consul's session lock-delay), but
//! it never had the rest of a semaphore or the right to exclude other
//! readers, so requests that fit beside the ended grant and the live ones,
//! in FIFO order, are granted as usual (issue 11: one dead permit held a
//! semaphore of 10 for the whole lock-delay). FIFO stays strict: a head
//! that does not fit because of an ended grant holds back everyone behind
//! it on that name.
//!
//! A name already awaiting a handoff keeps the grants it already kept,
//! takes the new ones, and takes the new freeing entry (so a stale
//! `Handoff` of the earlier one does nothing) and keeps a lock-delay it
//! owed: the leader then waits the full delay again from the later entry,
//! never less than either session was owed. The `Handoff` releases every
//! grant the name kept.
//!
//! The session's waiters leave their queues. A waiter that was at the head
//! of a queue may have held back a request behind it, so those names are
//! examined and may be granted in this entry (beside any grant kept for a
//! handoff, as above). With mutexes alone nothing is ever granted here, as
//! before issue 11: a mutex queue's head waits only on the lock's holder
//! or handoff.

use std::collections::BTreeMap;

use super::lock::{Awaiting, Expired, Waiter};
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
        // By name, in name order: a session may hold several grants on one
        // name (two read locks).
        let mut freed: BTreeMap<&LockName, Vec<(Waiter, Expired)>> = BTreeMap::new();
        for (request, held) in &s.held {
            self.entries = self.entries.saturating_sub(held.ask.len());
            for (name, kind) in held.ask.claims() {
                let w = (session, *request);
                if self.locks.get_mut(name).is_some_and(|l| l.remove_grant(w)) {
                    let e = Expired {
                        token: held.token,
                        kind,
                        node: s.node,
                        name: s.name.clone(),
                    };
                    freed.entry(name).or_default().push((w, e));
                }
            }
        }
        for (name, grants) in freed {
            let Some(l) = self.locks.get_mut(name) else {
                continue;
            };
            if delayed || !l.waiters.is_empty() {
                let h = l.handoff.get_or_insert_with(|| Awaiting {
                    freed_at: index,
                    delayed,
                    whole: false,
                    grants: BTreeMap::new(),
                    permits: 0,
                    exclusive: false,
                });
                h.freed_at = index;
                h.delayed |= delayed;
                for (w, e) in grants {
                    h.keep(w, e);
                }
                let delayed = h.delayed;
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
        if l.handoff.as_ref().is_none_or(|h| h.freed_at != freed_at) {
            return;
        }
        // Every ended grant the name kept is released here.
        l.handoff = None;
        self.awaiting.remove(lock);
        self.settle(index, lock, fx);
    }
}
