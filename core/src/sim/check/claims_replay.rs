//! The log properties of issue 11's claims (semaphores, read-write locks,
//! multi-locks): one replay of the committed log that keeps, per name, the
//! grants current and the requests waiting, and hands each grant to the
//! properties that judge it (S2's lock-delay, S7's FIFO, S8, S9, S10).
//!
//! Like [`super::replay`] it reads the machine's *effects*, not a model of
//! the machine: a grant is a `Reply` with `Granted(token)` whose token is
//! the entry's own index, to a request whose `AcquireClaims` is in the log
//! (its claims say which names and how); a retry answered from the cache
//! carries an older token and is not a grant. What the replay believes
//! current comes only from effects: a grant stays current until a
//! `ReleaseGrant` or `Cancel` answered `Released` frees it, or its session
//! ends (`SessionEnded`); a waiter waits from its first `Queued` until it
//! is granted, answered `Cancelled`/`NoSession`, or its session ends.
//!
//! Within an entry the machine frees before it grants, and readers or
//! permits granted together in one entry are judged one after the other
//! (each beside those granted before it in the entry), so two grants that
//! conflict are reported whatever their order.
//!
//! A session's end keeps its grants on every name the entry says awaits a
//! `Handoff` (`AwaitingHandoff`): until the `Handoff` of that freeing entry
//! they count as held, so a grant beside them is judged beside them too,
//! and with lock-delay S2 requires that `Handoff` at least the delay after
//! the freeing entry (issue 11: lock-delay keeps what the ended holder
//! held, not the whole name).
//!
//! Mutex commands (`Acquire`, `Release`) are S2 and S7's; they are not
//! replayed here, and the simulator keeps the claims' names apart from the
//! mutex's. After a gap in the log (entries a snapshot covered before any
//! node applied them one by one) every name's grants and queue are
//! forgotten: nothing reported afterwards rests on what the gap may have
//! changed, and a name's queue order is trusted again only once a grant at
//! once showed it empty.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{s10_multi, s6_claims, s7_claims_fifo, s8_permits, s9_rw, Property, Report};
use crate::machine::{Claim, ClaimKind, Command, Effect, Outcome};
use crate::sim::history::{Committed, History};
use crate::types::{LockName, RequestId, SessionId};

/// A request's identity.
pub(super) type Req = (SessionId, RequestId);

/// What the replay knows of one name.
#[derive(Debug, Default)]
pub(super) struct NameState {
    /// Grants current on it: token, claim, and whether the grant is a
    /// multi-claim one.
    pub(super) holders: BTreeMap<Req, (u64, ClaimKind, bool)>,
    /// Requests waiting on it, by arrival number.
    pub(super) waiters: BTreeMap<u64, Req>,
    /// Whether `waiters` is every waiter, in order (false after a gap
    /// until a grant at once showed the queue empty).
    pub(super) known: bool,
    /// Ended grants kept until the name's `Handoff` (same shape as
    /// `holders`).
    pub(super) kept: BTreeMap<Req, (u64, ClaimKind, bool)>,
    /// The handoff it awaits: the freeing entry's index and time, and
    /// whether lock-delay applies.
    pub(super) awaiting: Option<(u64, Duration, bool)>,
}

/// One grant an entry made.
pub(super) struct Granted<'a> {
    pub(super) req: Req,
    pub(super) claims: &'a [Claim],
    /// Granted by its own `AcquireClaims` (not handed to a waiter).
    pub(super) immediate: bool,
    /// Its arrival number, if the replay saw it queue.
    pub(super) arrival: Option<u64>,
}

/// The replay's state.
pub(super) struct Claims<'a> {
    /// The claims of every `AcquireClaims` seen.
    asked: BTreeMap<Req, &'a [Claim]>,
    /// Requests the table executed (a later `Queued` is a retry's).
    answered: BTreeSet<Req>,
    /// Mutex `Acquire` requests seen (their grants are not claims').
    mutex: BTreeSet<Req>,
    pub(super) names: BTreeMap<&'a LockName, NameState>,
    /// Waiters: arrival number.
    waiting: BTreeMap<Req, u64>,
    /// Current grants: token.
    current: BTreeMap<Req, u64>,
    /// Requests granted since the last gap.
    granted: BTreeSet<Req>,
    /// Sessions ended since the last gap, with the ending entry.
    ended: BTreeMap<SessionId, u64>,
    arrivals: u64,
    prev: Option<u64>,
    /// Names not seen yet have an empty queue (true until the first gap).
    fresh_known: bool,
    /// What S6 for claims compares the clients' grants with.
    pub(super) log: s6_claims::Granted<'a>,
}

pub(super) fn check(h: &History, r: &mut Report) {
    if h.log.is_empty() {
        for p in [
            Property::S8Permits,
            Property::S9ReadWrite,
            Property::S10MultiLock,
        ] {
            r.skipped.push((p, "no committed log".to_owned()));
        }
        return;
    }
    let mut c = Claims {
        asked: BTreeMap::new(),
        answered: BTreeSet::new(),
        mutex: BTreeSet::new(),
        names: BTreeMap::new(),
        waiting: BTreeMap::new(),
        current: BTreeMap::new(),
        granted: BTreeSet::new(),
        ended: BTreeMap::new(),
        arrivals: 0,
        prev: None,
        fresh_known: true,
        log: s6_claims::Granted {
            at: BTreeMap::new(),
            claims: BTreeMap::new(),
        },
    };
    for e in &h.log {
        if c.prev.is_some_and(|p| e.index <= p) {
            continue; // a duplicate from merged logs
        }
        c.log.at.insert(e.index, e.at);
        c.step(e, h, r);
    }
    s6_claims::check(h, &c.log, r);
}

fn range(session: SessionId) -> std::ops::RangeInclusive<Req> {
    (session, RequestId(0))..=(session, RequestId(u64::MAX))
}

impl<'a> Claims<'a> {
    fn name(&mut self, lock: &'a LockName) -> &mut NameState {
        let known = self.fresh_known;
        self.names.entry(lock).or_insert_with(|| NameState {
            known,
            ..NameState::default()
        })
    }

    fn unqueue(&mut self, req: Req) {
        let Some(n) = self.waiting.remove(&req) else {
            return;
        };
        for c in self.asked.get(&req).copied().unwrap_or_default() {
            if let Some(s) = self.names.get_mut(&c.lock) {
                s.waiters.remove(&n);
            }
        }
    }

    /// Ends the grant of `req`; with `keep_at`, a session's end at that
    /// entry, whose grant stays counted on the names awaiting its handoff.
    fn free(&mut self, req: Req, keep_at: Option<u64>) {
        if self.current.remove(&req).is_none() {
            return; // a retry's answer, or a grant the replay never saw
        }
        for c in self.asked.get(&req).copied().unwrap_or_default() {
            if let Some(s) = self.names.get_mut(&c.lock) {
                if let Some(held) = s.holders.remove(&req) {
                    let awaits = s.awaiting.is_some_and(|(at, _, _)| Some(at) == keep_at);
                    if awaits {
                        s.kept.insert(req, held);
                    }
                }
            }
        }
    }

    /// The leader's `Handoff` of `lock` for the entry `freed_at`: releases
    /// what the name kept, if it still awaits that entry's handoff (else the
    /// machine ignores it too); S2: not before the lock-delay.
    fn handoff(
        &mut self,
        e: &Committed,
        h: &History,
        lock: &'a LockName,
        freed_at: u64,
        r: &mut Report,
    ) {
        let Some(s) = self.names.get_mut(lock) else {
            return;
        };
        let Some((at_index, at, delayed)) = s.awaiting else {
            return;
        };
        if at_index != freed_at {
            return;
        }
        s.awaiting = None;
        s.kept.clear();
        let tolerance =
            super::s2_log_order::drift_tolerance(h.params.lock_delay, h.params.max_clock_drift_ppm);
        let earliest = at
            .saturating_add(h.params.lock_delay)
            .saturating_sub(tolerance);
        if delayed && !h.params.lock_delay.is_zero() && e.at < earliest {
            r.add(
                Property::S2LogOrder,
                Some(lock.as_str()),
                format!(
                    "entry {} handed {lock} on at {:?}, {:?} after the expiry at entry {at_index} ({at:?}); lock-delay is {:?}",
                    e.index,
                    e.at,
                    e.at.saturating_sub(at),
                    h.params.lock_delay
                ),
            );
        }
    }

    fn step(&mut self, e: &'a Committed, h: &History, r: &mut Report) {
        let expected = self.prev.map_or(1, |p| p.saturating_add(1));
        if e.index > expected {
            self.names.clear();
            self.waiting.clear();
            self.current.clear();
            self.granted.clear();
            self.ended.clear();
            self.answered.clear();
            self.fresh_known = false;
        }
        self.prev = Some(e.index);
        let cmd = e.command.as_ref();
        let (own, target, first_sight) = match cmd {
            Some(Command::AcquireClaims { key, claims, .. }) => {
                let req = (key.session, key.request);
                self.asked.insert(req, claims);
                (Some(req), None, !self.answered.contains(&req))
            }
            Some(Command::ReleaseGrant { key, grant }) => (
                Some((key.session, key.request)),
                Some((key.session, *grant)),
                false,
            ),
            Some(Command::Cancel { key, target }) => (
                Some((key.session, key.request)),
                Some((key.session, *target)),
                false,
            ),
            Some(Command::Acquire { key, .. }) => {
                self.mutex.insert((key.session, key.request));
                (None, None, false)
            }
            _ => (None, None, false),
        };
        if let Some(Command::Handoff { lock, freed_at }) = cmd {
            self.handoff(e, h, lock, *freed_at, r);
        }
        let mut grants: Vec<Req> = Vec::new();
        let mut queued = false;
        for fx in &e.effects {
            match fx {
                Effect::Reply {
                    session,
                    request,
                    outcome,
                } => {
                    let req = (*session, *request);
                    match outcome {
                        Outcome::Granted(t) if crate::sim::token_index(t.0) == e.index => {
                            let claims = self.asked.get(&req).copied();
                            if claims.is_some() || !self.mutex.contains(&req) {
                                self.log.claims.entry(e.index).or_default().push(claims);
                            }
                            if claims.is_some() {
                                grants.push(req);
                            }
                        }
                        Outcome::Queued if own == Some(req) && first_sight => queued = true,
                        Outcome::Cancelled | Outcome::NoSession if own != Some(req) => {
                            self.unqueue(req);
                        }
                        Outcome::Released if own == Some(req) => {
                            if let Some(t) = target {
                                self.free(t, None);
                            }
                        }
                        _ => {}
                    }
                }
                Effect::AwaitingHandoff {
                    lock,
                    freed_at,
                    delayed,
                } => {
                    // Before the `SessionEnded` it belongs to (the machine
                    // pushes it first), so that end keeps its grants here.
                    // Only names the claims use (a mutex's is S2's).
                    if let Some(s) = self.names.get_mut(lock) {
                        s.awaiting = Some((*freed_at, e.at, *delayed));
                    }
                }
                Effect::SessionEnded { session, .. } => {
                    let at = Some(e.index);
                    let held: Vec<Req> = self
                        .current
                        .range(range(*session))
                        .map(|(q, _)| *q)
                        .collect();
                    for req in held {
                        self.free(req, at);
                    }
                    let waits: Vec<Req> = self
                        .waiting
                        .range(range(*session))
                        .map(|(q, _)| *q)
                        .collect();
                    for req in waits {
                        self.unqueue(req);
                    }
                    self.ended.insert(*session, e.index);
                }
                Effect::SessionOpened { session } => {
                    // Tolerated (the driver never reuses a session id).
                    self.ended.remove(session);
                }
                _ => {}
            }
        }
        if let (Some(req), Some(Command::AcquireClaims { .. })) = (own, cmd) {
            let refused = e.effects.iter().any(|fx| {
                matches!(fx, Effect::Reply { session, request, outcome: Outcome::NoSession }
                    if (*session, *request) == req)
            });
            if !refused && !e.effects.is_empty() {
                self.answered.insert(req);
            }
        }
        let mut made = Vec::with_capacity(grants.len());
        for req in grants {
            let Some(claims) = self.asked.get(&req).copied() else {
                continue; // checked when collected
            };
            let g = Granted {
                req,
                claims,
                immediate: own == Some(req) && matches!(cmd, Some(Command::AcquireClaims { .. })),
                arrival: self.waiting.get(&req).copied(),
            };
            self.judge(e, &g, r);
            self.install(&g, e.index);
            made.push(g);
        }
        for g in &made {
            self.unqueue(g.req);
        }
        for g in &made {
            s7_claims_fifo::after_grant(self, e.index, g, r);
        }
        if let (true, Some(req)) = (queued, own) {
            if !self.waiting.contains_key(&req) && !self.current.contains_key(&req) {
                self.arrivals += 1;
                let n = self.arrivals;
                self.waiting.insert(req, n);
                for c in self.asked.get(&req).copied().unwrap_or_default() {
                    self.name(&c.lock).waiters.insert(n, req);
                }
            }
        }
    }

    /// Judges grant `g` against the names' current grants.
    fn judge(&mut self, e: &Committed, g: &Granted<'a>, r: &mut Report) {
        let (session, request) = g.req;
        if let Some(at) = self.ended.get(&session) {
            r.add(
                Property::S7Fifo,
                None,
                format!(
                    "entry {} granted {session} (request {request:?}), which ended at entry {at}",
                    e.index
                ),
            );
        }
        if !self.granted.insert(g.req) {
            s10_multi::granted_twice(e.index, g, r);
        }
        let multi = g.claims.len() > 1;
        for c in g.claims {
            let state = self.name(&c.lock);
            // Ended grants awaiting their handoff still count (lock-delay
            // keeps what they held).
            let holders: Vec<(u64, ClaimKind, bool)> = state
                .holders
                .values()
                .chain(state.kept.values())
                .copied()
                .collect();
            let found = beside(&holders, c.kind);
            if let Some((property, detail)) = found {
                let holder_multi = holders.iter().any(|(_, _, m)| *m);
                let property = if multi || holder_multi {
                    Property::S10MultiLock
                } else {
                    property
                };
                r.add(
                    property,
                    Some(c.lock.as_str()),
                    format!(
                        "entry {} granted {session} request {request:?} ({} claims) {:?}: {detail}",
                        e.index,
                        g.claims.len(),
                        c.kind
                    ),
                );
            }
        }
    }

    fn install(&mut self, g: &Granted<'a>, index: u64) {
        let multi = g.claims.len() > 1;
        self.current.insert(g.req, index);
        for c in g.claims {
            self.name(&c.lock)
                .holders
                .insert(g.req, (index, c.kind, multi));
        }
    }
}

/// Whether a claim of `kind` fits beside `holders` (token, claim, multi):
/// S8's rule for permits, S9's for lock claims.
pub(super) fn beside(
    holders: &[(u64, ClaimKind, bool)],
    kind: ClaimKind,
) -> Option<(Property, String)> {
    match kind {
        ClaimKind::Permits { n, count } => s8_permits::beside(holders, n, count),
        kind => s9_rw::beside(holders, kind),
    }
}
