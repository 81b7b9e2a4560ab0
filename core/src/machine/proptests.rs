//! Random command sequences, checked two ways on every entry.
//!
//! 1. A naive reference model (`proptest_model.rs`) must produce the same
//!    effects, holders, queues, outcomes and handoffs.
//! 2. A history checker that sees only commands and effects asserts the
//!    DESIGN rules on its own: one holder per lock, tokens unique and rising
//!    per lock, FIFO grants, no grant to an ended session, and retries
//!    answered with the request's current outcome, never a second grant.
//!
//! Snapshots are taken and restored at random points (and the test goes on
//! with the restored table), and old indexes are replayed as no-ops.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::proptest_model::Model;
use super::*;

const LOCKS: [&str; 3] = ["a", "b", "c"];

fn lock_name(l: u8) -> LockName {
    LockName::new(LOCKS.get(usize::from(l)).copied().unwrap_or("a")).unwrap()
}

/// One step of a random history. Requests name their session (0..3), a
/// request id (often reused, so retries and duplicates are common) and a
/// floor choice (mostly 1; sometimes `r - 2` or `r`).
#[derive(Clone, Debug)]
enum Op {
    Open(u8),
    Close(u8),
    Expire(u8, bool),
    Acquire(Req, u8, bool),
    /// A release by any session, naming the lock's current token or any.
    Release(Req, u8, Option<u64>),
    /// The current holder releases with its own token.
    ReleaseHolder(Req, u8),
    Cancel(Req, u64),
    /// A cancel of the session's `n`-th most recent acquire.
    CancelRecent(Req, usize),
    /// The awaited handoff, or one naming another `freed_at`.
    Handoff(u8, Option<u64>),
    /// The same command as `n` entries ago, at a new index.
    Replay(usize),
    /// The entry of `n` entries ago applied again at its own index.
    OldIndex(usize),
    Snapshot,
}

#[derive(Clone, Copy, Debug)]
struct Req {
    s: u8,
    r: u64,
    floor: u8,
}

fn op() -> impl Strategy<Value = Op> {
    let floor = prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)];
    let req = (0..3u8, 1..16u64, floor).prop_map(|(s, r, floor)| Req { s, r, floor });
    let lock = 0..3u8;
    let other = prop_oneof![3 => Just(None), 1 => (0..60u64).prop_map(Some)];
    prop_oneof![
        3 => (0..3u8).prop_map(Op::Open),
        1 => (0..3u8).prop_map(Op::Close),
        1 => (0..3u8, any::<bool>()).prop_map(|(s, d)| Op::Expire(s, d)),
        8 => (req.clone(), lock.clone(), any::<bool>()).prop_map(|(q, l, w)| Op::Acquire(q, l, w)),
        2 => (req.clone(), lock.clone(), other.clone()).prop_map(|(q, l, t)| Op::Release(q, l, t)),
        4 => (req.clone(), lock.clone()).prop_map(|(q, l)| Op::ReleaseHolder(q, l)),
        2 => (req.clone(), 1..16u64).prop_map(|(q, t)| Op::Cancel(q, t)),
        2 => (req, 0..3usize).prop_map(|(q, n)| Op::CancelRecent(q, n)),
        2 => (lock, other).prop_map(|(l, o)| Op::Handoff(l, o)),
        2 => (0..8usize).prop_map(Op::Replay),
        1 => (0..8usize).prop_map(Op::OldIndex),
        1 => Just(Op::Snapshot),
    ]
}

/// Checks the DESIGN rules from commands and effects alone.
#[derive(Default)]
struct History {
    open: BTreeSet<SessionId>,
    holding: BTreeMap<LockName, (SessionId, RequestId, u64)>,
    queued: BTreeMap<LockName, Vec<(SessionId, RequestId)>>,
    answer: BTreeMap<(SessionId, RequestId), Outcome>,
    last_token: BTreeMap<LockName, u64>,
    tokens: BTreeSet<u64>,
}

impl History {
    fn forget(&mut self, s: SessionId) {
        self.holding.retain(|_, h| h.0 != s);
        self.queued
            .values_mut()
            .for_each(|q| q.retain(|w| w.0 != s));
        self.answer.retain(|k, _| k.0 != s);
    }

    fn entry(&mut self, index: u64, cmd: &Command, fx: &[Effect]) {
        let own = match cmd {
            Command::Acquire { key, .. }
            | Command::Release { key, .. }
            | Command::Cancel { key, .. } => Some((key.session, key.request)),
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
        // Frees first: within an entry they happen before any grant.
        for e in fx {
            match (e, cmd) {
                (
                    Effect::Reply {
                        session,
                        request,
                        outcome: Outcome::Released,
                    },
                    Command::Release { key, lock, token },
                ) if fresh && (*session, *request) == (key.session, key.request) => {
                    let freed = self.holding.remove(lock).map(|h| (h.0, h.2));
                    assert_eq!(
                        freed,
                        Some((key.session, token.0)),
                        "released another grant"
                    );
                }
                (
                    Effect::Reply {
                        session,
                        request,
                        outcome: Outcome::Cancelled,
                    },
                    _,
                ) => {
                    self.holding
                        .retain(|_, h| (h.0, h.1) != (*session, *request));
                    self.queued
                        .values_mut()
                        .for_each(|q| q.retain(|w| *w != (*session, *request)));
                }
                (
                    Effect::Reply {
                        session,
                        request,
                        outcome: Outcome::NoSession,
                    },
                    _,
                ) => {
                    self.queued
                        .values_mut()
                        .for_each(|q| q.retain(|w| *w != (*session, *request)));
                }
                (Effect::SessionEnded { session, .. }, _) => {
                    self.forget(*session);
                    self.open.remove(session);
                }
                (Effect::SessionOpened { session }, _) => {
                    self.forget(*session);
                    self.open.insert(*session);
                }
                _ => {}
            }
        }
        let mut grants = 0;
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
            match (outcome, cmd) {
                (Outcome::Granted(t), _) if t.0 == index => {
                    grants += 1;
                    assert!(self.open.contains(session), "granted to an ended session");
                    let lock = match cmd {
                        Command::Acquire { key, lock, .. } if (key.session, key.request) == w => {
                            lock.clone()
                        }
                        _ => {
                            let (lock, q) = self
                                .queued
                                .iter_mut()
                                .find(|(_, q)| q.contains(&w))
                                .expect("grant of an unknown waiter");
                            assert_eq!(q.first(), Some(&w), "granted out of FIFO order");
                            q.remove(0);
                            lock.clone()
                        }
                    };
                    let before = self.holding.insert(lock.clone(), (w.0, w.1, t.0));
                    assert!(before.is_none(), "two holders of {lock}");
                    let last = self.last_token.insert(lock, t.0).unwrap_or(0);
                    assert!(
                        t.0 > last && self.tokens.insert(t.0),
                        "token {t:?} reused or fell"
                    );
                }
                (Outcome::Granted(t), _) => assert_eq!(
                    self.answer.get(&w),
                    Some(&Outcome::Granted(*t)),
                    "old token {t:?} is not {w:?}'s"
                ),
                (Outcome::Queued, Command::Acquire { lock, .. })
                    if !self.answer.contains_key(&w) =>
                {
                    self.queued.entry(lock.clone()).or_default().push(w);
                }
                _ => {}
            }
            if self.open.contains(session) {
                self.answer.insert(w, *outcome);
            }
        }
        assert!(grants <= 1, "an entry granted {grants} locks");
    }
}

struct Run {
    table: LockTable,
    model: Model,
    history: History,
    index: u64,
    log: Vec<(u64, Command)>,
}

impl Run {
    fn apply(&mut self, index: u64, cmd: Command) {
        let fx = self.table.apply(index, &cmd);
        assert_eq!(
            fx,
            self.model.apply(index, &cmd),
            "effects of {cmd:?} at {index}"
        );
        if index > self.index {
            self.history.entry(index, &cmd, &fx);
            self.index = index;
            self.log.push((index, cmd));
        } else {
            assert!(fx.is_empty(), "old index {index} applied again");
        }
        self.model.check(&self.table);
    }

    fn step(&mut self, op: Op) {
        let sid = |s: u8| SessionId(u64::from(s) + 1);
        let key = |q: Req| RequestKey {
            session: sid(q.s),
            request: RequestId(q.r),
            floor: RequestId(match q.floor {
                0 => 1,
                1 => q.r.saturating_sub(2).max(1),
                _ => q.r,
            }),
        };
        let next = self.index + 1;
        let cmd = match op {
            Op::Open(s) => Command::OpenSession {
                session: sid(s),
                node: NodeId(u64::from(s)),
                name: NodeName(format!("n{s}")),
                ttl_ms: 300,
            },
            Op::Close(s) => Command::CloseSession { session: sid(s) },
            Op::Expire(s, lock_delay) => Command::ExpireSession {
                session: sid(s),
                lock_delay,
            },
            Op::Acquire(q, l, wait) => Command::Acquire {
                key: key(q),
                lock: lock_name(l),
                wait,
            },
            Op::Release(q, l, token) => {
                let current = self.table.holder(&lock_name(l)).map(|i| i.token.0);
                Command::Release {
                    key: key(q),
                    lock: lock_name(l),
                    token: FencingToken(token.or(current).unwrap_or(next)),
                }
            }
            Op::ReleaseHolder(q, l) => {
                let Some(info) = self.table.holder(&lock_name(l)) else {
                    return;
                };
                Command::Release {
                    key: RequestKey {
                        session: info.session,
                        ..key(q)
                    },
                    lock: lock_name(l),
                    token: info.token,
                }
            }
            Op::Cancel(q, target) => Command::Cancel {
                key: key(q),
                target: RequestId(target),
            },
            Op::CancelRecent(q, n) => {
                let acquires = self.log.iter().rev().filter_map(|(_, c)| match c {
                    Command::Acquire { key, .. } if key.session == sid(q.s) => Some(key.request),
                    _ => None,
                });
                let Some(target) = acquires.clone().nth(n) else {
                    return;
                };
                Command::Cancel {
                    key: key(q),
                    target,
                }
            }
            Op::Handoff(l, other) => {
                let pending = self.table.pending_handoffs().into_iter();
                let mut awaited = pending
                    .filter(|h| h.lock == lock_name(l))
                    .map(|h| h.freed_at);
                Command::Handoff {
                    lock: lock_name(l),
                    freed_at: other.or(awaited.next()).unwrap_or(next),
                }
            }
            Op::Replay(back) => match self.log.iter().rev().nth(back) {
                Some((_, cmd)) => cmd.clone(),
                None => return,
            },
            Op::OldIndex(back) => {
                if let Some((i, cmd)) = self.log.iter().rev().nth(back).cloned() {
                    self.apply(i, cmd);
                }
                return;
            }
            Op::Snapshot => {
                let restored = LockTable::restore(&self.table.encode_snapshot()).unwrap();
                assert_eq!(restored.state_hash(), self.table.state_hash());
                assert_eq!(restored, self.table);
                self.table = restored;
                return;
            }
        };
        self.apply(next, cmd);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every DESIGN rule of the state machine, on random command sequences
    /// over three sessions, three locks and a handful of request ids.
    #[test]
    fn random_sequences_match_the_model_and_keep_every_rule(ops in proptest::collection::vec(op(), 1..200)) {
        let mut run = Run {
            table: LockTable::new(),
            model: Model::default(),
            history: History::default(),
            index: 0,
            log: vec![],
        };
        for s in 0..3 {
            run.step(Op::Open(s));
        }
        for op in ops {
            run.step(op);
        }
    }
}
