//! Requests beyond the mutex (issue 11): `AcquireClaims`, `ReleaseGrant`,
//! and `Cancel` of any acquire.

use super::claim::{validate_claims, Claim};
use super::grant::grantable;
use super::lock::{Lock, Waiter};
use super::session::Ask;
use super::{Effect, LockTable, Outcome, RequestKey, MAX_LOCK_ENTRIES};
use crate::types::{LockName, RequestId, SessionId};

impl LockTable {
    /// Checks the limits and the names' kinds, then grants all claims at
    /// once, queues on every name, or answers `Busy`.
    pub(super) fn acquire_claims(
        &mut self,
        index: u64,
        key: &RequestKey,
        claims: &[Claim],
        wait: bool,
    ) -> Outcome {
        if let Err(e) = validate_claims(claims) {
            return Outcome::Invalid(e);
        }
        for (i, c) in claims.iter().enumerate() {
            let want = c.kind.name_kind();
            if let Some(l) = self.locks.get(&c.lock).filter(|l| l.kind != want) {
                // At most 64 claims (validated): the position fits a u8.
                let claim = i as u8;
                return Outcome::WrongKind {
                    claim,
                    actual: l.kind,
                };
            }
        }
        let w = (key.session, key.request);
        let ask = Ask::Claims(claims.to_vec());
        let now = grantable(&self.locks, w, &ask, false, None);
        if !now && !wait {
            return Outcome::Busy;
        }
        if self.entries.saturating_add(ask.len()) > MAX_LOCK_ENTRIES {
            return Outcome::TableFull;
        }
        if now {
            let token = self.install(index, w, ask, false, None, &mut Vec::new());
            return Outcome::Granted(token);
        }
        for c in claims {
            self.locks
                .entry(c.lock.clone())
                .or_insert_with(|| Lock::of(c.kind.name_kind()))
                .waiters
                .push_back(w);
        }
        self.entries += ask.len();
        if let Some(s) = self.sessions.get_mut(&key.session) {
            s.waiting.insert(key.request, ask);
        }
        Outcome::Queued
    }

    /// Releases every claim of the grant that answered `grant`.
    pub(super) fn release_grant(
        &mut self,
        index: u64,
        session: SessionId,
        grant: RequestId,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        let held = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.held.remove(&grant));
        let Some(held) = held else {
            return Outcome::NotHolder;
        };
        self.free_grant(index, (session, grant), &held.ask, fx);
        Outcome::Released
    }

    /// Takes a grant (already out of its session) off its names and grants
    /// what that lets in.
    fn free_grant(&mut self, index: u64, w: Waiter, ask: &Ask, fx: &mut Vec<Effect>) {
        self.entries = self.entries.saturating_sub(ask.len());
        let mut names = Vec::new();
        for (name, _) in ask.claims() {
            if self.locks.get_mut(name).is_some_and(|l| l.remove_grant(w)) {
                names.push(name.clone());
            }
        }
        self.settle_all(index, names, fx);
    }

    /// Takes a waiter (already out of its session) out of its queues;
    /// returns the names where it was at the head (their next waiter may
    /// now go), and removes names left empty.
    pub(super) fn drop_waiter(&mut self, w: Waiter, ask: &Ask) -> Vec<LockName> {
        self.entries = self.entries.saturating_sub(ask.len());
        let mut heads = Vec::new();
        for (name, _) in ask.claims() {
            let Some(l) = self.locks.get_mut(name) else {
                continue;
            };
            let head = l.waiters.front() == Some(w);
            l.remove_waiter(w.0, w.1);
            if l.is_free() {
                self.locks.remove(name);
            } else if head {
                heads.push(name.clone());
            }
        }
        heads
    }

    /// Abandons the acquire `target` of `session`. The queue and the grant
    /// are looked up directly (in `waiting` and `held`), which agrees with
    /// the recorded outcome while it is remembered and still works if the
    /// floor already dropped it.
    pub(super) fn cancel(
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
        if let Some(ask) = s.waiting.remove(&target) {
            s.record(target, Outcome::Cancelled);
            let heads = self.drop_waiter((session, target), &ask);
            fx.push(cancelled);
            self.settle_all(index, heads, fx);
            return Outcome::Cancelled;
        }
        if let Some(held) = s.held.remove(&target) {
            s.record(target, Outcome::Cancelled);
            fx.push(cancelled);
            self.free_grant(index, (session, target), &held.ask, fx);
            return Outcome::Released;
        }
        if !s.results.contains_key(&target) {
            // Not arrived yet: the acquire, when it comes, is a duplicate.
            s.record(target, Outcome::Cancelled);
        }
        Outcome::Cancelled
    }
}
