//! One reading of the committed log, shared by the log properties (S2, S6,
//! S7): each entry becomes a [`Step`] that says, in lock terms, what its
//! effects did (grants, frees, waiters queued and dropped, sessions ended).
//!
//! The replay reads the machine's *effects*, not a model of the machine: a
//! grant is a `Reply` with `Granted(token)` where the token is the entry's
//! own index (an answer from the retry cache carries an older token and is
//! not a grant). The command is used only to say which lock an effect is
//! about, because a `Reply` names a request, not a lock:
//!
//! - `Acquire`, `Release` and `Handoff` name their lock;
//! - a `Cancel` acts on the lock its target acquire asked for;
//! - a grant handed to a waiter is also attributed to the lock the waiter's
//!   own `Acquire` asked for ([`Grant::asked`]), so a property can compare.
//!
//! Grants of `AcquireClaims` requests (issue 11) are left out: a shared
//! grant is not a mutex's, and `claims_replay` judges them all.
//!
//! A session's end frees the grants of that session the replay saw begin
//! since the last gap. Entries can be missing (a snapshot covered them
//! before any node applied them one by one): a [`Step`] after such a gap
//! says so, and the replay forgets which grants were current, so nothing
//! it reports afterwards rests on what the gap may have changed. Which lock
//! a request asked for is a fact of its command, and is kept. Session ids
//! are never reused by the driver, but a session opened again (visibly or
//! inside a gap) is tolerated.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::machine::{Command, Effect, Outcome};
use crate::sim::history::Committed;
use crate::types::{LockName, RequestId, SessionId};

/// A request's identity.
pub(super) type Req = (SessionId, RequestId);

/// A lock granted by an entry (the token is the entry's index).
#[derive(Clone, Copy, Debug)]
pub(super) struct Grant<'a> {
    /// The request granted.
    pub(super) req: Req,
    /// The lock the entry acted on (the command's, or a `Cancel`'s target's).
    pub(super) lock: Option<&'a LockName>,
    /// The lock the granted request's `Acquire` asked for, if it is in the log.
    pub(super) asked: Option<&'a LockName>,
    /// Granted by its own `Acquire` (the lock was free), not handed to a waiter.
    pub(super) immediate: bool,
}

impl<'a> Grant<'a> {
    /// The lock granted, as best known.
    pub(super) fn lock(&self) -> Option<&'a LockName> {
        self.lock.or(self.asked)
    }
}

/// How a grant ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FreedBy {
    /// A `Release` answered `Released`.
    Release,
    /// A `Cancel` answered `Released` (its target had been granted).
    Cancel,
    /// The holding session ended.
    SessionEnd {
        /// By expiry (not a graceful close).
        expired: bool,
        /// By an expiry that asked for the lock-delay.
        delayed: bool,
    },
}

/// A grant that ended in an entry.
///
/// A `Release` or `Cancel` answered from the retry cache also yields a
/// `Free` (the replay cannot always tell a retry from a first execution);
/// such a free names a grant that already ended, so a property must match
/// `token`/`req` against the grant it believes current before acting on it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Free<'a> {
    /// The lock, if known.
    pub(super) lock: Option<&'a LockName>,
    /// The grant's request, if known.
    pub(super) req: Option<Req>,
    /// The grant's token, if known.
    pub(super) token: Option<u64>,
    /// How it ended.
    pub(super) by: FreedBy,
}

impl Free<'_> {
    /// Whether this free ends the grant `(req, token)`.
    pub(super) fn ends(&self, req: Req, token: u64) -> bool {
        match (self.token, self.req) {
            (Some(t), _) => t == token,
            (None, Some(r)) => r == req,
            (None, None) => false,
        }
    }
}

/// What one entry did. Within an entry the machine frees before it grants
/// and ends sessions without granting, so a property handles the fields in
/// this order: `opened`, `dropped`, `frees`, `ended`, `grants`, `queued`.
#[derive(Debug)]
pub(super) struct Step<'a> {
    /// The entry's index.
    pub(super) index: u64,
    /// When the first node applied it.
    pub(super) at: Duration,
    /// Entries are missing right before this one.
    pub(super) after_gap: bool,
    /// Sessions opened.
    pub(super) opened: Vec<SessionId>,
    /// Requests answered `Cancelled` or `NoSession`: if they waited, they
    /// wait no more.
    pub(super) dropped: Vec<Req>,
    /// Grants that ended.
    pub(super) frees: Vec<Free<'a>>,
    /// Sessions that ended, and whether by expiry.
    pub(super) ended: Vec<(SessionId, bool)>,
    /// Grants made (at most one in a correct log).
    pub(super) grants: Vec<Grant<'a>>,
    /// An `Acquire` seen for the first time that joined its lock's queue.
    pub(super) queued: Option<(Req, &'a LockName)>,
}

/// Iterates the [`Step`]s of a log sorted by index. An entry whose index
/// is not above the previous one (a duplicate from merged logs) is skipped.
pub(super) struct Replay<'a> {
    log: std::slice::Iter<'a, Committed>,
    prev: Option<u64>,
    /// The lock each `Acquire` seen asked for.
    asked: BTreeMap<Req, &'a LockName>,
    /// Acquires the table executed or answered from its cache (any reply
    /// but `NoSession`): a later `Queued` for one of them is a retry.
    answered: BTreeSet<Req>,
    /// Grants seen since the last gap and not seen ending: token and lock.
    current: BTreeMap<Req, (u64, Option<&'a LockName>)>,
    /// Requests that asked for claims (issue 11), and the names claimed:
    /// their grants are `claims_replay`'s, not a mutex's (a `Handoff` on
    /// such a name that grants a request of no known `Acquire` is too).
    claims: BTreeSet<Req>,
    claim_names: BTreeSet<&'a LockName>,
}

impl<'a> Replay<'a> {
    pub(super) fn new(log: &'a [Committed]) -> Self {
        Self {
            log: log.iter(),
            prev: None,
            asked: BTreeMap::new(),
            answered: BTreeSet::new(),
            current: BTreeMap::new(),
            claims: BTreeSet::new(),
            claim_names: BTreeSet::new(),
        }
    }

    fn session_range(
        &self,
        session: SessionId,
    ) -> impl Iterator<Item = (&Req, &(u64, Option<&'a LockName>))> {
        self.current
            .range((session, RequestId(0))..=(session, RequestId(u64::MAX)))
    }

    fn step(&mut self, c: &'a Committed) -> Step<'a> {
        let expected = self.prev.map_or(1, |p| p.saturating_add(1));
        let after_gap = c.index > expected;
        if after_gap {
            // Any `Queued` after the gap may be first: a lock's order is
            // only trusted again once it was seen empty (see S7).
            self.current.clear();
            self.answered.clear();
        }
        self.prev = Some(c.index);
        let mut s = Step {
            index: c.index,
            at: c.at,
            after_gap,
            opened: Vec::new(),
            dropped: Vec::new(),
            frees: Vec::new(),
            ended: Vec::new(),
            grants: Vec::new(),
            queued: None,
        };
        let cmd = c.command.as_ref();
        let mut first_sight = false;
        let entry_lock = match cmd {
            Some(Command::Acquire { key, lock, .. }) => {
                let req = (key.session, key.request);
                first_sight = !self.answered.contains(&req);
                // A retry names the same lock; a reused id, the latest.
                self.asked.insert(req, lock);
                Some(lock)
            }
            Some(Command::Release { lock, .. } | Command::Handoff { lock, .. }) => Some(lock),
            Some(Command::Cancel { key, target }) => {
                self.asked.get(&(key.session, *target)).copied()
            }
            Some(Command::AcquireClaims { key, claims, .. }) => {
                self.claims.insert((key.session, key.request));
                self.claim_names.extend(claims.iter().map(|c| &c.lock));
                None
            }
            _ => None,
        };
        let claims_handoff = matches!(cmd, Some(Command::Handoff { lock, .. })
            if self.claim_names.contains(lock));
        // The request the command itself made (its own reply is its answer).
        let own = match cmd {
            Some(
                Command::Acquire { key, .. }
                | Command::Release { key, .. }
                | Command::Cancel { key, .. },
            ) => Some((key.session, key.request)),
            _ => None,
        };
        for fx in &c.effects {
            match fx {
                Effect::Reply {
                    session,
                    request,
                    outcome,
                } => {
                    let req = (*session, *request);
                    let claims = self.claims.contains(&req)
                        || (claims_handoff && !self.asked.contains_key(&req));
                    if claims {
                        continue; // a claims grant: not a mutex's
                    }
                    self.reply(
                        c.index,
                        cmd,
                        own,
                        entry_lock,
                        first_sight,
                        req,
                        *outcome,
                        &mut s,
                    );
                }
                Effect::SessionEnded { session, expired } => {
                    let delayed = *expired
                        && matches!(
                            cmd,
                            Some(Command::ExpireSession {
                                lock_delay: true,
                                ..
                            })
                        );
                    let held: Vec<(Req, u64, Option<&'a LockName>)> = self
                        .session_range(*session)
                        .map(|(r, (t, l))| (*r, *t, *l))
                        .collect();
                    for (req, token, lock) in held {
                        self.current.remove(&req);
                        s.frees.push(Free {
                            lock,
                            req: Some(req),
                            token: Some(token),
                            by: FreedBy::SessionEnd {
                                expired: *expired,
                                delayed,
                            },
                        });
                    }
                    s.ended.push((*session, *expired));
                }
                Effect::SessionOpened { session } => {
                    // A session id opened again (the driver never reuses
                    // one) starts its requests afresh.
                    let range = (*session, RequestId(0))..=(*session, RequestId(u64::MAX));
                    let old: Vec<Req> = self.asked.range(range).map(|(r, _)| *r).collect();
                    for req in old {
                        self.asked.remove(&req);
                        self.answered.remove(&req);
                    }
                    s.opened.push(*session);
                }
                // Membership effects say nothing about locks.
                Effect::AwaitingHandoff { .. }
                | Effect::MemberJoined { .. }
                | Effect::MemberJoinRefused { .. }
                | Effect::MemberLeaving { .. }
                | Effect::MemberAddrChanged { .. } => {}
            }
        }
        for g in &s.grants {
            self.current.insert(g.req, (c.index, g.lock()));
        }
        if let (Some(Command::Acquire { .. }), Some(req)) = (cmd, own) {
            let refused = c.effects.iter().any(|fx| {
                matches!(fx, Effect::Reply { session, request, outcome: Outcome::NoSession }
                    if (*session, *request) == req)
            });
            if !refused && !c.effects.is_empty() {
                self.answered.insert(req);
            }
        }
        s
    }

    #[allow(clippy::too_many_arguments)] // one reply with its entry's context
    fn reply(
        &mut self,
        index: u64,
        cmd: Option<&'a Command>,
        own: Option<Req>,
        entry_lock: Option<&'a LockName>,
        first_sight: bool,
        req: Req,
        outcome: Outcome,
        s: &mut Step<'a>,
    ) {
        match outcome {
            Outcome::Granted(t) if crate::sim::token_index(t.0) == index => s.grants.push(Grant {
                req,
                lock: entry_lock,
                asked: self.asked.get(&req).copied(),
                immediate: matches!(cmd, Some(Command::Acquire { .. })) && own == Some(req),
            }),
            Outcome::Queued => {
                if let (true, Some(Command::Acquire { lock, .. })) = (own == Some(req), cmd) {
                    if first_sight {
                        s.queued = Some((req, lock));
                    }
                }
            }
            Outcome::Cancelled | Outcome::NoSession if own != Some(req) => s.dropped.push(req),
            Outcome::Released if own == Some(req) => match cmd {
                Some(Command::Release { lock, token, .. }) => {
                    let grant = self
                        .session_range(req.0)
                        .find(|(_, (t, _))| *t == crate::sim::token_index(token.0))
                        .map(|(r, _)| *r);
                    if let Some(g) = grant {
                        self.current.remove(&g);
                    }
                    s.frees.push(Free {
                        lock: Some(lock),
                        req: grant,
                        token: Some(crate::sim::token_index(token.0)),
                        by: FreedBy::Release,
                    });
                }
                Some(Command::Cancel { target, .. }) => {
                    let target = (req.0, *target);
                    let known = self.current.remove(&target);
                    s.frees.push(Free {
                        lock: known.and_then(|(_, l)| l).or(entry_lock),
                        req: Some(target),
                        token: known.map(|(t, _)| t),
                        by: FreedBy::Cancel,
                    });
                }
                _ => {}
            },
            _ => {}
        }
    }
}

impl<'a> Iterator for Replay<'a> {
    type Item = Step<'a>;

    fn next(&mut self) -> Option<Step<'a>> {
        loop {
            let c = self.log.next()?;
            if self.prev.is_some_and(|p| c.index <= p) {
                continue;
            }
            return Some(self.step(c));
        }
    }
}
