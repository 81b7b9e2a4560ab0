//! The mutex path: `Acquire` and `Release` of one lock, exactly as before
//! issue 11, and no dearer (the table's benchmarks measure it). A mutex
//! grant is an exclusive grant like a write lock's, so mutexes, write and
//! read locks on one name exclude each other as they should; only the
//! bookkeeping is lighter (`Ask::Lock` carries the name, not a list).

use std::collections::btree_map::Entry;

use super::claim::{ClaimKind, NameKind};
use super::lock::Lock;
use super::session::{Ask, Held};
use super::{Effect, LockTable, Outcome, RequestKey, MAX_LOCK_ENTRIES};
use crate::types::{FencingToken, LockName, SessionId};

impl LockTable {
    pub(super) fn acquire(
        &mut self,
        index: u64,
        key: &RequestKey,
        name: &LockName,
        wait: bool,
    ) -> Outcome {
        let token = self.token_at(index);
        let w = (key.session, key.request);
        let Some(lock) = self.locks.get_mut(name) else {
            if self.entries >= MAX_LOCK_ENTRIES {
                return Outcome::TableFull;
            }
            let mut lock = Lock::default();
            lock.add_grant(w, token, ClaimKind::Exclusive);
            self.locks.insert(name.clone(), lock);
            self.hold(key, Ask::Lock(name.clone()), token);
            return Outcome::Granted(token);
        };
        if lock.kind != NameKind::Lock {
            let actual = lock.kind;
            return Outcome::WrongKind { claim: 0, actual };
        }
        let free =
            lock.waiters.is_empty() && lock.handoff.is_none() && lock.admits(ClaimKind::Exclusive);
        if !free && !wait {
            return Outcome::Busy;
        }
        if self.entries >= MAX_LOCK_ENTRIES {
            return Outcome::TableFull;
        }
        if free {
            lock.add_grant(w, token, ClaimKind::Exclusive);
            self.hold(key, Ask::Lock(name.clone()), token);
            return Outcome::Granted(token);
        }
        self.entries += 1;
        lock.waiters.push_back(w);
        if let Some(s) = self.sessions.get_mut(&key.session) {
            s.waiting.insert(key.request, Ask::Lock(name.clone()));
        }
        Outcome::Queued
    }

    /// Records a grant made at once in the requester's session.
    fn hold(&mut self, key: &RequestKey, ask: Ask, token: FencingToken) {
        self.entries += ask.len();
        if let Some(s) = self.sessions.get_mut(&key.session) {
            s.held.insert(key.request, Held { ask, token });
        }
    }

    /// Releases the mutex grant of `name` whose token is `token`. Only an
    /// `Acquire`'s grant: a write lock or multi-lock is released whole, by
    /// `ReleaseGrant`, so `Release` names it `NotHolder`.
    pub(super) fn release(
        &mut self,
        index: u64,
        session: SessionId,
        name: &LockName,
        token: FencingToken,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        let Some(lock) = self.locks.get_mut(name) else {
            return Outcome::NotHolder;
        };
        let Some(h) = lock
            .holder
            .filter(|h| h.session == session && h.token == token)
        else {
            return Outcome::NotHolder;
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return Outcome::NotHolder;
        };
        match s.held.entry(h.request) {
            Entry::Occupied(e) if matches!(e.get().ask, Ask::Lock(_)) => {
                e.remove();
            }
            _ => return Outcome::NotHolder,
        }
        lock.holder = None;
        self.entries = self.entries.saturating_sub(1);
        if lock.is_free() {
            self.locks.remove(name);
        } else {
            self.settle(index, name, fx);
        }
        Outcome::Released
    }
}
