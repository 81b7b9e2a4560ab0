//! The history checker of `proptests.rs`: the rules asserted from the
//! commands and effects alone (no access to the table or the model). A
//! grant whose session ended on a name awaiting a handoff still counts as
//! held there until that handoff (lock-delay).

use std::collections::{BTreeMap, BTreeSet};

use super::*;

type W = (SessionId, RequestId);

/// Checks the rules from commands and effects alone.
#[derive(Default)]
pub(super) struct History {
    open: BTreeSet<SessionId>,
    /// Grants on each name: (request, token, claim).
    holding: BTreeMap<LockName, Vec<(W, u64, ClaimKind)>>,
    queued: BTreeMap<LockName, Vec<W>>,
    /// What each acquire asked for (from its command).
    asks: BTreeMap<W, Vec<(LockName, ClaimKind)>>,
    answer: BTreeMap<W, Outcome>,
    last_token: BTreeMap<LockName, u64>,
    /// Names awaiting a handoff: the entry that freed them last.
    pending: BTreeMap<LockName, u64>,
    /// Grants of ended sessions on names awaiting a handoff: still counted
    /// as held until the `Handoff` of that name's latest freeing entry
    /// (lock-delay: what the dead holder held is given to no one before).
    kept: BTreeMap<LockName, Vec<(W, u64, ClaimKind)>>,
}

fn asked(cmd: &Command) -> Option<Vec<(LockName, ClaimKind)>> {
    match cmd {
        Command::Acquire { lock, .. } => Some(vec![(lock.clone(), ClaimKind::Exclusive)]),
        Command::AcquireClaims { claims, .. } => {
            Some(claims.iter().map(|c| (c.lock.clone(), c.kind)).collect())
        }
        _ => None,
    }
}

impl History {
    /// Forgets session `s`; its grants on the names in `awaiting` (their
    /// `AwaitingHandoff` is in this entry) are kept until the handoff.
    fn forget(&mut self, s: SessionId, awaiting: &BTreeSet<LockName>) {
        for (name, h) in &mut self.holding {
            if awaiting.contains(name) {
                let kept = self.kept.entry(name.clone()).or_default();
                kept.extend(h.iter().filter(|g| g.0 .0 == s));
            }
            h.retain(|g| g.0 .0 != s);
        }
        self.queued
            .values_mut()
            .for_each(|q| q.retain(|w| w.0 != s));
        self.answer.retain(|k, _| k.0 != s);
    }

    fn release(&mut self, w: W) {
        self.holding
            .values_mut()
            .for_each(|h| h.retain(|g| g.0 != w));
    }

    fn unqueue(&mut self, w: W) {
        self.queued.values_mut().for_each(|q| q.retain(|x| *x != w));
    }

    pub(super) fn entry(&mut self, index: u64, cmd: &Command, fx: &[Effect]) {
        let own = match cmd {
            Command::Acquire { key, .. }
            | Command::Release { key, .. }
            | Command::Cancel { key, .. }
            | Command::AcquireClaims { key, .. }
            | Command::ReleaseGrant { key, .. } => Some((key.session, key.request)),
            _ => None,
        };
        // A repeated request is answered from the record, or ignored.
        let known = own.and_then(|k| self.answer.get(&k));
        if let (Some((s, r)), Some(known)) = (own, known) {
            assert!(
                fx.is_empty()
                    || fx
                        == [Effect::Reply {
                            session: s,
                            request: r,
                            outcome: *known
                        }],
                "retry of {s:?} {r:?} got {fx:?}"
            );
        }
        let fresh = known.is_none();
        if let (true, Some(w), Some(ask)) = (fresh, own, asked(cmd)) {
            self.asks.insert(w, ask);
        }
        // Frees first: within an entry they happen before any grant.
        if let Command::Handoff { lock, freed_at } = cmd {
            if self.pending.get(lock) == Some(freed_at) {
                self.pending.remove(lock);
                self.kept.remove(lock);
            }
        }
        let mut awaiting = BTreeSet::new();
        for e in fx {
            if let Effect::AwaitingHandoff { lock, freed_at, .. } = e {
                self.pending.insert(lock.clone(), *freed_at);
                awaiting.insert(lock.clone());
            }
        }
        for e in fx {
            match (e, cmd) {
                (
                    Effect::Reply {
                        session,
                        request,
                        outcome: Outcome::Released,
                    },
                    _,
                ) if fresh && Some((*session, *request)) == own => match cmd {
                    Command::Release { key, lock, token } => {
                        let h = self.holding.entry(lock.clone()).or_default();
                        let g = h.iter().find(|g| g.0 .0 == key.session && g.1 == token.0);
                        let g = g.expect("released another grant").0;
                        self.release(g);
                    }
                    Command::ReleaseGrant { key, grant } => {
                        let w = (key.session, *grant);
                        let held = self.holding.values().any(|h| h.iter().any(|g| g.0 == w));
                        assert!(held, "released a grant that is not held");
                        self.release(w);
                    }
                    _ => {}
                },
                (
                    Effect::Reply {
                        session,
                        request,
                        outcome: Outcome::Cancelled,
                    },
                    _,
                ) => {
                    self.release((*session, *request));
                    self.unqueue((*session, *request));
                }
                (
                    Effect::Reply {
                        session,
                        request,
                        outcome: Outcome::NoSession,
                    },
                    _,
                ) => self.unqueue((*session, *request)),
                (Effect::SessionEnded { session, .. }, _) => {
                    self.forget(*session, &awaiting);
                    self.open.remove(session);
                }
                (Effect::SessionOpened { session }, _) => {
                    self.forget(*session, &BTreeSet::new());
                    self.open.insert(*session);
                }
                _ => {}
            }
        }
        for e in fx {
            let Effect::Reply {
                session,
                request,
                outcome,
            } = e
            else {
                continue;
            };
            let w = (*session, *request);
            match outcome {
                Outcome::Granted(t) if t.0 == index => {
                    assert!(self.open.contains(session), "granted to an ended session");
                    let ask = self
                        .asks
                        .get(&w)
                        .expect("grant of an unknown request")
                        .clone();
                    let from_queue = own != Some(w);
                    for (name, kind) in &ask {
                        if from_queue {
                            let q = self.queued.entry(name.clone()).or_default();
                            assert_eq!(q.first(), Some(&w), "granted out of FIFO order on {name}");
                            q.remove(0);
                        }
                        let kept = self.kept.get(name).cloned().unwrap_or_default();
                        let h = self.holding.entry(name.clone()).or_default();
                        let all = || h.iter().chain(&kept);
                        let excl = all().any(|g| g.2 == ClaimKind::Exclusive);
                        match kind {
                            ClaimKind::Exclusive => {
                                assert!(
                                    all().next().is_none(),
                                    "an exclusive grant beside another on {name}"
                                )
                            }
                            ClaimKind::Shared => {
                                assert!(!excl, "a reader beside a writer on {name}")
                            }
                            ClaimKind::Permits { n, count } => {
                                let used: u32 = all().map(|g| g.2.permits()).sum();
                                assert!(
                                    !excl && used + n <= *count,
                                    "more permits than {count} on {name}"
                                );
                            }
                        }
                        h.push((w, t.0, *kind));
                        let last = self.last_token.insert(name.clone(), t.0).unwrap_or(0);
                        assert!(t.0 >= last, "token {t:?} fell on {name}");
                        if *kind == ClaimKind::Exclusive {
                            assert!(
                                t.0 > last,
                                "exclusive token {t:?} not above {last} on {name}"
                            );
                        }
                    }
                }
                Outcome::Granted(t) => assert_eq!(
                    self.answer.get(&w),
                    Some(&Outcome::Granted(*t)),
                    "old token {t:?} is not {w:?}'s"
                ),
                Outcome::Queued if !self.answer.contains_key(&w) && own == Some(w) => {
                    for (name, _) in self.asks.get(&w).cloned().unwrap_or_default() {
                        self.queued.entry(name).or_default().push(w);
                    }
                }
                _ => {}
            }
            if self.open.contains(session) {
                self.answer.insert(w, *outcome);
            }
        }
    }
}
