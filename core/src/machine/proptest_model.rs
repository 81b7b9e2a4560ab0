//! The naive reference model for `proptests.rs`: DESIGN's rules and issue
//! 11's written out as plainly as possible, with vectors and linear scans.
//! Each name keeps its holders and queue; requests (granted or waiting)
//! are kept in one list in the order they were made; and after every
//! command the model grants, again and again, the first waiting request
//! (in queue order) that the rule allows, until none is left: the rule as
//! a fixpoint, sharing no bookkeeping and no worklist with the real table.
//! A grant whose session ended stays in its name's `ended` list, counted
//! as held, until the name's handoff (issue 11).

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
    kind: NameKind,
    /// (session, request, token, claim)
    holders: Vec<(SessionId, u64, u64, ClaimKind)>,
    handoff: Option<(u64, bool)>,
    /// Grants of ended sessions kept until the handoff: (session, request,
    /// token, claim), counted as held.
    ended: Vec<(SessionId, u64, u64, ClaimKind)>,
    queue: Vec<(SessionId, u64)>,
}

#[derive(Clone, Debug)]
struct RefReq {
    id: SessionId,
    r: u64,
    claims: Vec<(LockName, ClaimKind)>,
    /// An `Acquire` (released by `Release` too).
    mutex: bool,
    /// The grant's token; `None` while it waits.
    token: Option<u64>,
}

/// The reference model: the rules written out as plainly as possible.
#[derive(Default)]
pub(super) struct Model {
    applied: u64,
    sessions: Vec<RefSession>,
    locks: Vec<RefLock>,
    reqs: Vec<RefReq>,
}

fn reply(session: SessionId, request: u64, outcome: Outcome) -> Effect {
    let request = RequestId(request);
    Effect::Reply {
        session,
        request,
        outcome,
    }
}

/// Whether `kind` fits beside the holders and the ended grants awaiting
/// the handoff, all counted as held.
fn fits(l: &RefLock, kind: ClaimKind) -> bool {
    let all = || l.holders.iter().chain(&l.ended);
    let excl = all().any(|h| h.3 == ClaimKind::Exclusive);
    match kind {
        ClaimKind::Exclusive => all().next().is_none(),
        ClaimKind::Shared => !excl,
        ClaimKind::Permits { n, count } => {
            let used: u64 = all().map(|h| u64::from(h.3.permits())).sum();
            !excl && used + u64::from(n) <= u64::from(count)
        }
    }
}

impl Model {
    fn session(&mut self, id: SessionId) -> Option<&mut RefSession> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }

    fn find(&self, name: &LockName) -> Option<&RefLock> {
        self.locks.iter().find(|l| l.name == *name)
    }

    fn lock(&mut self, name: &LockName, kind: NameKind) -> &mut RefLock {
        if self.find(name).is_none() {
            self.locks.push(RefLock {
                name: name.clone(),
                kind,
                holders: vec![],
                handoff: None,
                ended: vec![],
                queue: vec![],
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

    fn tidy(&mut self) {
        self.locks
            .retain(|l| !l.holders.is_empty() || l.handoff.is_some() || !l.queue.is_empty());
    }

    pub(super) fn apply(&mut self, index: u64, cmd: &Command) -> Vec<Effect> {
        if index <= self.applied {
            return vec![];
        }
        self.applied = index;
        self.tidy();
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
            Command::CloseSession { session } => self.end(index, *session, false, false, &mut fx),
            Command::ExpireSession {
                session,
                lock_delay,
            } => self.end(index, *session, true, *lock_delay, &mut fx),
            Command::Handoff { lock, freed_at } => {
                let l = self.locks.iter_mut().find(|l| l.name == *lock);
                if let Some(l) = l.filter(|l| l.handoff.is_some_and(|(at, _)| at == *freed_at)) {
                    l.handoff = None;
                    l.ended.clear();
                    self.fixpoint(index, &mut fx);
                }
            }
            Command::Acquire { key, .. }
            | Command::Release { key, .. }
            | Command::Cancel { key, .. }
            | Command::AcquireClaims { key, .. }
            | Command::ReleaseGrant { key, .. } => {
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
                let claims = vec![(lock.clone(), ClaimKind::Exclusive)];
                self.request(index, id, r, claims, true, *wait)
            }
            Command::AcquireClaims { claims, wait, .. } => {
                if let Err(e) = validate_claims(claims) {
                    return Outcome::Invalid(e);
                }
                let claims = claims.iter().map(|c| (c.lock.clone(), c.kind)).collect();
                self.request(index, id, r, claims, false, *wait)
            }
            Command::Release { lock, token, .. } => {
                let found = self.reqs.iter().position(|q| {
                    q.id == id && q.mutex && q.token == Some(token.0) && q.claims[0].0 == *lock
                });
                let Some(at) = found else {
                    return Outcome::NotHolder;
                };
                self.free(index, at, fx);
                Outcome::Released
            }
            Command::ReleaseGrant { grant, .. } => {
                let found = self
                    .reqs
                    .iter()
                    .position(|q| q.id == id && q.r == grant.0 && q.token.is_some());
                let Some(at) = found else {
                    return Outcome::NotHolder;
                };
                self.free(index, at, fx);
                Outcome::Released
            }
            Command::Cancel { target, .. } => {
                let t = target.0;
                let Some(at) = self.reqs.iter().position(|q| (q.id, q.r) == (id, t)) else {
                    if !self
                        .session(id)
                        .unwrap()
                        .results
                        .iter()
                        .any(|(q, _)| *q == t)
                    {
                        self.record(id, t, Outcome::Cancelled);
                    }
                    return Outcome::Cancelled;
                };
                self.record(id, t, Outcome::Cancelled);
                fx.push(reply(id, t, Outcome::Cancelled));
                if self.reqs[at].token.is_some() {
                    self.free(index, at, fx);
                    return Outcome::Released;
                }
                self.reqs.remove(at);
                for l in &mut self.locks {
                    l.queue.retain(|w| *w != (id, t));
                }
                self.fixpoint(index, fx);
                Outcome::Cancelled
            }
            _ => unreachable!("not a request"),
        }
    }

    fn request(
        &mut self,
        index: u64,
        id: SessionId,
        r: u64,
        claims: Vec<(LockName, ClaimKind)>,
        mutex: bool,
        wait: bool,
    ) -> Outcome {
        for (i, (name, kind)) in claims.iter().enumerate() {
            if let Some(l) = self.find(name).filter(|l| l.kind != kind.name_kind()) {
                let (claim, actual) = (i as u8, l.kind);
                return Outcome::WrongKind { claim, actual };
            }
        }
        let now = claims.iter().all(|(name, kind)| match self.find(name) {
            None => true,
            Some(l) => l.queue.is_empty() && fits(l, *kind),
        });
        if !now && !wait {
            return Outcome::Busy;
        }
        for (name, kind) in &claims {
            let l = self.lock(name, kind.name_kind());
            if now {
                l.holders.push((id, r, index, *kind));
            } else {
                l.queue.push((id, r));
            }
        }
        let token = now.then_some(index);
        self.reqs.push(RefReq {
            id,
            r,
            claims,
            mutex,
            token,
        });
        match token {
            Some(t) => Outcome::Granted(FencingToken(t)),
            None => Outcome::Queued,
        }
    }

    /// Releases the granted request at `at` and grants what follows.
    fn free(&mut self, index: u64, at: usize, fx: &mut Vec<Effect>) {
        let q = self.reqs.remove(at);
        for l in &mut self.locks {
            l.holders.retain(|h| (h.0, h.1) != (q.id, q.r));
        }
        self.fixpoint(index, fx);
    }

    /// Grants the first waiting request the rule allows, until none.
    fn fixpoint(&mut self, index: u64, fx: &mut Vec<Effect>) {
        loop {
            let next = self.reqs.iter().position(|q| {
                q.token.is_none()
                    && q.claims.iter().all(|(name, kind)| {
                        let l = self.find(name).unwrap();
                        l.queue.first() == Some(&(q.id, q.r)) && fits(l, *kind)
                    })
            });
            let Some(at) = next else {
                return;
            };
            let q = self.reqs[at].clone();
            for (name, kind) in &q.claims {
                let l = self.lock(name, kind.name_kind());
                l.queue.remove(0);
                l.holders.push((q.id, q.r, index, *kind));
            }
            self.reqs[at].token = Some(index);
            self.record(q.id, q.r, Outcome::Granted(FencingToken(index)));
            fx.push(reply(q.id, q.r, Outcome::Granted(FencingToken(index))));
        }
    }

    fn end(&mut self, index: u64, id: SessionId, expired: bool, delay: bool, fx: &mut Vec<Effect>) {
        if self.session(id).is_none() {
            return;
        }
        let mut waiting: Vec<u64> = self
            .reqs
            .iter()
            .filter(|q| q.id == id && q.token.is_none())
            .map(|q| q.r)
            .collect();
        waiting.sort_unstable();
        fx.extend(waiting.iter().map(|r| reply(id, *r, Outcome::NoSession)));
        self.reqs.retain(|q| q.id != id);
        let delayed = expired && delay;
        self.locks.sort_by(|a, b| a.name.cmp(&b.name));
        for l in &mut self.locks {
            l.queue.retain(|(s, _)| *s != id);
            if l.holders.iter().any(|h| h.0 == id) {
                let (gone, kept) = l.holders.iter().partition(|h| h.0 == id);
                l.holders = kept;
                if delayed || !l.queue.is_empty() {
                    l.ended.extend::<Vec<_>>(gone);
                    let delayed = delayed || l.handoff.is_some_and(|(_, d)| d);
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
        self.fixpoint(index, fx);
        fx.push(Effect::SessionEnded {
            session: id,
            expired,
        });
    }

    /// Compares every query (and the queues) with the real table.
    pub(super) fn check(&mut self, t: &LockTable) {
        assert_eq!(t.applied_index(), self.applied);
        self.tidy();
        assert_eq!(
            t.lock_count(),
            self.locks.len(),
            "free names leave the table"
        );
        let entries: usize = self.reqs.iter().map(|q| q.claims.len()).sum();
        assert_eq!(t.lock_entries(), entries, "lock entries");
        for l in &self.locks {
            let real = t.locks.get(&l.name).unwrap();
            let queue: Vec<_> = real.waiters.iter().map(|(s, r)| (*s, r.0)).collect();
            assert_eq!(queue, l.queue, "queue of {}", l.name);
            let info = t.holders(&l.name).unwrap();
            assert_eq!(info.kind, l.kind, "kind of {}", l.name);
            let mut real: Vec<_> = info
                .holders
                .iter()
                .map(|g| (g.session, g.request.0, g.token.0, g.kind))
                .collect();
            real.sort();
            let mut want = l.holders.clone();
            want.sort();
            assert_eq!(real, want, "holders of {}", l.name);
            let mut real: Vec<_> = info
                .expired
                .iter()
                .map(|g| (g.session, g.request.0, g.token.0, g.kind))
                .collect();
            real.sort();
            let mut want = l.ended.clone();
            want.sort();
            assert_eq!(real, want, "ended grants kept by {}", l.name);
            assert_eq!(info.awaiting_handoff, l.handoff.is_some());
            let oldest = l.holders.iter().min_by_key(|h| (h.2, h.0, h.1));
            let holder = t.holder(&l.name).map(|i| (i.session, i.token.0, i.waiters));
            assert_eq!(holder, oldest.map(|h| (h.0, h.2, l.queue.len())));
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
                .reqs
                .iter()
                .filter(|q| q.id == s.id)
                .filter_map(|q| q.token.map(|t| (q, t)))
                .flat_map(|(q, t)| {
                    q.claims
                        .iter()
                        .map(move |(n, _)| (n.clone(), FencingToken(t)))
                })
                .collect();
            held.sort();
            assert_eq!(t.locks_of(s.id), held);
        }
    }
}
