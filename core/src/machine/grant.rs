//! The grant rule, and granting waiters when capacity frees up.
//!
//! A request is granted, in one entry and on all its names at once, iff on
//! each of its names (a) no request queued before it still waits there,
//! and (b) its claim fits beside the holders, counting a grant whose
//! session ended as held until the name's `Handoff` ([`Lock::admits`],
//! `ending.rs`). Queues are FIFO by the entry that queued each
//! request, and every queue is pushed in log order, so any two requests
//! that wait on two names are in the same order on both: the earliest
//! waiting request is at the head of every queue it is in, waits only on
//! holders, and waiters can never deadlock among themselves (the reason
//! Curator's and Redisson's one-by-one `MultiLock` can, issue 11).
//!
//! When a name's capacity grows (a release, a cancelled head waiter, a
//! handoff), its queue is examined from the front, granting while the rule
//! allows: consecutive readers or small permit requests are granted
//! together, a large permit request at the head holds back smaller ones
//! behind it (no starvation), and a reader behind a waiting writer waits
//! (no writer starvation). A grant of several names can make the next
//! heads of its other names grantable (readers behind a multi-read), so
//! those names are examined too. Each examination stops at the first head
//! that cannot go, so a hand-off costs O(log n) per name and grant, never a
//! scan of a queue or of the table (issue 8 item 10); the mutex head is
//! granted by a short path that costs what `grant_next` did.

use std::collections::BTreeMap;

use super::claim::ClaimKind;
use super::lock::{Awaiting, Lock, Waiter};
use super::session::{Ask, Held};
use super::{Effect, LockTable, Outcome};
use crate::teeth::{planted, Bug};
use crate::types::{FencingToken, LockName};

/// Whether `w`, asking `ask`, may be granted now. `queued`: it waits in
/// its names' queues (and must be next in each); else it is new (and each
/// queue must be empty). `at`: the name being examined, whose candidate
/// the caller chose.
pub(super) fn grantable(
    locks: &BTreeMap<LockName, Lock>,
    w: Waiter,
    ask: &Ask,
    queued: bool,
    at: Option<&LockName>,
) -> bool {
    let partial = planted(Bug::PartialMultiLock) && ask.len() > 1;
    for (name, kind) in ask.claims() {
        let ok = match locks.get(name) {
            None => !queued,
            Some(l) => {
                let next = if queued {
                    at == Some(name) || l.waiters.front() == Some(w)
                } else {
                    l.waiters.is_empty()
                };
                next && l.admits(kind)
            }
        };
        if partial {
            // The planted bug: one free name is enough.
            if ok && (at.is_none() || at == Some(name)) {
                return true;
            }
            continue;
        }
        if !ok {
            return false;
        }
    }
    !partial
}

impl LockTable {
    /// Grants `ask` to `w` on all its names, as the entry at `index`:
    /// takes it out of its queues if `queued`, records the grant on each
    /// name and in the session, and returns the token. Names other than
    /// `at` where the grant is shared go to `more`: their next head may fit.
    pub(super) fn install(
        &mut self,
        index: u64,
        w: Waiter,
        ask: Ask,
        queued: bool,
        at: Option<&LockName>,
        more: &mut Vec<LockName>,
    ) -> FencingToken {
        let token = self.token_at(index);
        let partial = planted(Bug::PartialMultiLock);
        for (name, kind) in ask.claims() {
            if !self.locks.contains_key(name) {
                self.locks.insert(name.clone(), Lock::of(kind.name_kind()));
            }
            let Some(l) = self.locks.get_mut(name) else {
                continue; // inserted just above
            };
            if queued {
                l.waiters.remove(w);
            }
            if partial && !l.admits(kind) {
                continue;
            }
            l.add_grant(w, token, kind);
            if queued && kind != ClaimKind::Exclusive && at != Some(name) {
                more.push(name.clone());
            }
        }
        if !queued {
            self.entries += ask.len();
        }
        if let Some(s) = self.sessions.get_mut(&w.0) {
            s.held.insert(w.1, Held { ask, token });
        }
        token
    }

    /// Grants what the rule allows on `name` and on every name those grants
    /// make grantable, in this entry.
    pub(super) fn settle(&mut self, index: u64, name: &LockName, fx: &mut Vec<Effect>) {
        let mut more = Vec::new();
        self.examine(index, name, &mut more, fx);
        while let Some(next) = more.pop() {
            self.examine(index, &next, &mut more, fx);
        }
    }

    /// [`LockTable::settle`] for several names.
    pub(super) fn settle_all(
        &mut self,
        index: u64,
        mut names: Vec<LockName>,
        fx: &mut Vec<Effect>,
    ) {
        while let Some(next) = names.pop() {
            self.examine(index, &next, &mut names, fx);
        }
    }

    /// Grants `name`'s queue from the front while the rule allows; removes
    /// the name once nothing is left of it.
    fn examine(
        &mut self,
        index: u64,
        name: &LockName,
        more: &mut Vec<LockName>,
        fx: &mut Vec<Effect>,
    ) {
        let token = self.token_at(index);
        loop {
            let Some(lock) = self.locks.get_mut(name) else {
                return;
            };
            if lock.holder.is_some() || lock.handoff.as_ref().is_some_and(Awaiting::blocks_all) {
                return; // nothing fits beside an exclusive holder
            }
            let out_of_order = planted(Bug::GrantOutOfFifoOrder);
            let next = if out_of_order {
                lock.waiters.back()
            } else {
                lock.waiters.front()
            };
            let Some(w) = next else {
                if lock.is_free() {
                    self.locks.remove(name);
                }
                return;
            };
            let Some(s) = self.sessions.get_mut(&w.0) else {
                lock.waiters.remove(w);
                if planted(Bug::GrantWithoutSessionCheck) {
                    lock.add_grant(w, token, ClaimKind::Exclusive);
                    fx.push(granted(w, token));
                    return;
                }
                continue; // a waiter of an ended session (cannot happen)
            };
            match s.waiting.get(&w.1) {
                None => {
                    lock.waiters.remove(w); // not a request (cannot happen)
                    continue;
                }
                Some(Ask::Lock(_)) => {
                    // The mutex head: the short path.
                    if !lock.admits(ClaimKind::Exclusive) {
                        return;
                    }
                    // `w` is at this end: take it from there.
                    let _ = if out_of_order {
                        lock.waiters.pop_back()
                    } else {
                        lock.waiters.pop_front()
                    };
                    lock.add_grant(w, token, ClaimKind::Exclusive);
                    if let Some(ask) = s.waiting.remove(&w.1) {
                        s.held.insert(w.1, Held { ask, token });
                    }
                    s.record(w.1, Outcome::Granted(token));
                    fx.push(granted(w, token));
                    return;
                }
                Some(Ask::Claims(_)) => {}
            }
            let fits = self.sessions.get(&w.0).and_then(|s| s.waiting.get(&w.1));
            if !fits.is_some_and(|ask| grantable(&self.locks, w, ask, true, Some(name))) {
                return;
            }
            let Some(ask) = self
                .sessions
                .get_mut(&w.0)
                .and_then(|s| s.waiting.remove(&w.1))
            else {
                return; // looked up just above
            };
            let here = ask.claim_on(name);
            self.install(index, w, ask, true, Some(name), more);
            if let Some(s) = self.sessions.get_mut(&w.0) {
                s.record(w.1, Outcome::Granted(token));
            }
            fx.push(granted(w, token));
            if here == Some(ClaimKind::Exclusive) {
                return;
            }
        }
    }
}

fn granted(w: Waiter, token: FencingToken) -> Effect {
    Effect::Reply {
        session: w.0,
        request: w.1,
        outcome: Outcome::Granted(token),
    }
}
