//! The naive reference model for `proptests.rs`: DESIGN's rules written
//! out as plainly as possible, with vectors and linear scans, and with each
//! session's locks and waiters derived from the locks instead of stored, so
//! that it shares no bookkeeping with the real table.

use super::*;

#[derive(Clone, Debug)]
struct RefSession {
    id: SessionId,
    node: NodeId,
    name: NodeName,
    ttl_ms: u64,
    floor: u64,
    results: Vec<(u64, Outcome)>,
}

#[derive(Clone, Debug)]
struct RefLock {
    name: LockName,
    holder: Option<(SessionId, u64, u64)>,
    handoff: Option<(u64, bool)>,
    queue: Vec<(SessionId, u64)>,
}

/// The reference model: the rules written out as plainly as possible.
#[derive(Default)]
pub(super) struct Model {
    applied: u64,
    sessions: Vec<RefSession>,
    locks: Vec<RefLock>,
}

fn reply(session: SessionId, request: u64, outcome: Outcome) -> Effect {
    let request = RequestId(request);
    Effect::Reply {
        session,
        request,
        outcome,
    }
}

impl Model {
    fn session(&mut self, id: SessionId) -> Option<&mut RefSession> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }

    fn lock(&mut self, name: &LockName) -> &mut RefLock {
        if !self.locks.iter().any(|l| l.name == *name) {
            let (holder, handoff, queue) = (None, None, Vec::new());
            self.locks.push(RefLock {
                name: name.clone(),
                holder,
                handoff,
                queue,
            });
        }
        self.locks.iter_mut().find(|l| l.name == *name).unwrap()
    }

    fn record(&mut self, id: SessionId, r: u64, o: Outcome) {
        let s = self.session(id).unwrap();
        if r >= s.floor {
            s.results.retain(|(q, _)| *q != r);
            s.results.push((r, o));
        }
    }

    pub(super) fn apply(&mut self, index: u64, cmd: &Command) -> Vec<Effect> {
        if index <= self.applied {
            return vec![];
        }
        self.applied = index;
        let mut fx = vec![];
        match cmd {
            Command::OpenSession {
                session,
                node,
                name,
                ttl_ms,
            } => {
                if self.session(*session).is_none() {
                    let (node, name, ttl_ms) = (*node, name.clone(), *ttl_ms);
                    let s = RefSession {
                        id: *session,
                        node,
                        name,
                        ttl_ms,
                        floor: 1,
                        results: vec![],
                    };
                    self.sessions.push(s);
                    fx.push(Effect::SessionOpened { session: *session });
                }
                fx.push(reply(*session, 0, Outcome::Opened));
            }
            Command::CloseSession { session } => self.end(index, *session, false, &mut fx),
            Command::ExpireSession {
                session,
                lock_delay,
            } => {
                self.end(index, *session, *lock_delay, &mut fx);
                if let Some(Effect::SessionEnded { expired, .. }) = fx.last_mut() {
                    *expired = true;
                }
            }
            Command::Handoff { lock, freed_at } => {
                let l = self.lock(lock);
                if l.handoff.is_some_and(|(at, _)| at == *freed_at) {
                    l.handoff = None;
                    self.grant_next(index, lock, &mut fx);
                }
            }
            Command::Acquire { key, .. }
            | Command::Release { key, .. }
            | Command::Cancel { key, .. } => {
                let (id, r) = (key.session, key.request.0);
                let Some(s) = self.session(id) else {
                    return vec![reply(id, r, Outcome::NoSession)];
                };
                if r < s.floor {
                    return vec![];
                }
                s.floor = s.floor.max(key.floor.0.min(r));
                let floor = s.floor;
                s.results.retain(|(q, _)| *q >= floor);
                if let Some((_, o)) = s.results.iter().find(|(q, _)| *q == r) {
                    return vec![reply(id, r, *o)];
                }
                let o = self.execute(index, id, r, cmd, &mut fx);
                self.record(id, r, o);
                fx.push(reply(id, r, o));
            }
            // Membership is not the lock model's business: the histories
            // here never contain it (see `members_proptests.rs`).
            Command::Join { .. }
            | Command::SetAddr { .. }
            | Command::Leave { .. }
            | Command::Found { .. }
            | Command::SetZone { .. } => {}
            Command::AcquireClaims { .. } | Command::ReleaseGrant { .. } => {}
        }
        fx
    }

    fn execute(
        &mut self,
        index: u64,
        id: SessionId,
        r: u64,
        cmd: &Command,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        match cmd {
            Command::Acquire { lock, wait, .. } => {
                let l = self.lock(lock);
                if l.holder.is_none() && l.handoff.is_none() && l.queue.is_empty() {
                    l.holder = Some((id, r, index));
                    Outcome::Granted(FencingToken(index))
                } else if *wait {
                    l.queue.push((id, r));
                    Outcome::Queued
                } else {
                    Outcome::Busy
                }
            }
            Command::Release { lock, token, .. } => {
                let l = self.lock(lock);
                if !l.holder.is_some_and(|(s, _, t)| s == id && t == token.0) {
                    return Outcome::NotHolder;
                }
                l.holder = None;
                self.grant_next(index, lock, fx);
                Outcome::Released
            }
            Command::Cancel { target, .. } => {
                let t = target.0;
                if let Some(l) = self.locks.iter_mut().find(|l| l.queue.contains(&(id, t))) {
                    l.queue.retain(|w| *w != (id, t));
                    self.record(id, t, Outcome::Cancelled);
                    fx.push(reply(id, t, Outcome::Cancelled));
                    return Outcome::Cancelled;
                }
                let held = self
                    .locks
                    .iter()
                    .find(|l| l.holder.is_some_and(|(s, q, _)| (s, q) == (id, t)));
                if let Some(name) = held.map(|l| l.name.clone()) {
                    self.record(id, t, Outcome::Cancelled);
                    fx.push(reply(id, t, Outcome::Cancelled));
                    self.lock(&name).holder = None;
                    self.grant_next(index, &name, fx);
                    return Outcome::Released;
                }
                if !self
                    .session(id)
                    .unwrap()
                    .results
                    .iter()
                    .any(|(q, _)| *q == t)
                {
                    self.record(id, t, Outcome::Cancelled);
                }
                Outcome::Cancelled
            }
            _ => unreachable!("not a request"),
        }
    }

    fn grant_next(&mut self, index: u64, name: &LockName, fx: &mut Vec<Effect>) {
        let l = self.lock(name);
        if l.holder.is_some() || l.handoff.is_some() || l.queue.is_empty() {
            return;
        }
        let (id, r) = l.queue.remove(0);
        l.holder = Some((id, r, index));
        self.record(id, r, Outcome::Granted(FencingToken(index)));
        fx.push(reply(id, r, Outcome::Granted(FencingToken(index))));
    }

    fn end(&mut self, index: u64, id: SessionId, delayed: bool, fx: &mut Vec<Effect>) {
        if self.session(id).is_none() {
            return;
        }
        let mut waiting: Vec<u64> = vec![];
        for l in &mut self.locks {
            waiting.extend(l.queue.iter().filter(|(s, _)| *s == id).map(|(_, r)| *r));
            l.queue.retain(|(s, _)| *s != id);
        }
        waiting.sort_unstable();
        fx.extend(
            waiting
                .into_iter()
                .map(|r| reply(id, r, Outcome::NoSession)),
        );
        self.locks.sort_by(|a, b| a.name.cmp(&b.name));
        for l in &mut self.locks {
            if l.holder.is_some_and(|(s, _, _)| s == id) {
                l.holder = None;
                if delayed || !l.queue.is_empty() {
                    l.handoff = Some((index, delayed));
                    fx.push(Effect::AwaitingHandoff {
                        lock: l.name.clone(),
                        freed_at: index,
                        delayed,
                    });
                }
            }
        }
        self.sessions.retain(|s| s.id != id);
        fx.push(Effect::SessionEnded {
            session: id,
            expired: false,
        });
    }

    /// Compares every query (and the queues) with the real table.
    pub(super) fn check(&mut self, t: &LockTable) {
        assert_eq!(t.applied_index(), self.applied);
        self.locks
            .retain(|l| l.holder.is_some() || l.handoff.is_some() || !l.queue.is_empty());
        assert_eq!(
            t.lock_count(),
            self.locks.len(),
            "free locks leave the table"
        );
        for l in &self.locks {
            let real = t.locks.get(&l.name).unwrap();
            let queue: Vec<_> = real.waiters.iter().map(|(s, r)| (*s, r.0)).collect();
            assert_eq!(queue, l.queue, "queue of {}", l.name);
            let holder = t.holder(&l.name).map(|i| (i.session, i.token.0, i.waiters));
            assert_eq!(holder, l.holder.map(|(s, _, tok)| (s, tok, l.queue.len())));
            assert_eq!(
                real.holder.map(|h| h.request.0),
                l.holder.map(|(_, r, _)| r)
            );
        }
        let mut handoffs: Vec<_> = self
            .locks
            .iter()
            .filter_map(|l| l.handoff.map(|(f, d)| (l.name.clone(), f, d)))
            .collect();
        handoffs.sort();
        let real: Vec<_> = t
            .pending_handoffs()
            .into_iter()
            .map(|h| (h.lock, h.freed_at, h.delayed))
            .collect();
        assert_eq!(real, handoffs);
        let mut sessions: Vec<_> = self
            .sessions
            .iter()
            .map(|s| (s.id, s.node, s.name.clone(), s.ttl_ms))
            .collect();
        sessions.sort();
        let real: Vec<_> = t
            .sessions()
            .into_iter()
            .map(|s| (s.session, s.node, s.name, s.ttl_ms))
            .collect();
        assert_eq!(real, sessions);
        for s in &self.sessions {
            for r in 0..20 {
                let want = s.results.iter().find(|(q, _)| *q == r).map(|(_, o)| *o);
                assert_eq!(
                    t.outcome(s.id, RequestId(r)),
                    want,
                    "outcome of {:?} {r}",
                    s.id
                );
            }
            let mut held: Vec<_> = self
                .locks
                .iter()
                .filter_map(|l| match l.holder {
                    Some((h, _, tok)) if h == s.id => Some((l.name.clone(), FencingToken(tok))),
                    _ => None,
                })
                .collect();
            held.sort();
            assert_eq!(t.locks_of(s.id), held);
        }
    }
}
