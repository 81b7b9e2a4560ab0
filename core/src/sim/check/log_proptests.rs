//! The checker against the real state machine on random runs: commands
//! as the driver sends them (fresh request ids, retries that repeat the
//! same command, handoffs after the lock-delay) are applied with
//! `LockTable::apply`, some entries are left out of the log (gaps), and
//! the clients' events are derived from the effects. A correct machine
//! must pass every property: this is the checker's soundness test.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::tests::ms;
use super::{check, Property};
use crate::machine::{Command, Effect, LockTable, Outcome, RequestKey};
use crate::sim::history::{Call, Committed, EventKind, History, Outcome as Seen};
use crate::types::{LockName, NodeId, NodeName, RequestId, SessionId};

const LOCK_DELAY_MS: u64 = 50;

#[derive(Clone, Debug)]
enum Op {
    Open(u8),
    Close(u8),
    Expire(u8, bool),
    Acquire(u8, u8, bool),
    /// The holder of a lock releases it.
    Release(u8),
    /// A session cancels its `n`-th most recent acquire.
    Cancel(u8, usize),
    /// The leader hands a freed lock on (after its lock-delay).
    Handoff(u8),
    /// The command of `n` entries ago, again (a retry).
    Retry(usize),
    /// The next entry is missing from the log.
    Gap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..4u8).prop_map(Op::Open),
        1 => (0..4u8).prop_map(Op::Close),
        1 => (0..4u8, any::<bool>()).prop_map(|(s, d)| Op::Expire(s, d)),
        8 => (0..4u8, 0..2u8, any::<bool>()).prop_map(|(s, l, w)| Op::Acquire(s, l, w)),
        5 => (0..2u8).prop_map(Op::Release),
        2 => (0..4u8, 0..3usize).prop_map(|(s, n)| Op::Cancel(s, n)),
        3 => (0..2u8).prop_map(Op::Handoff),
        2 => (0..6usize).prop_map(Op::Retry),
        1 => Just(Op::Gap),
    ]
}

fn lock(l: u8) -> LockName {
    LockName::new(if l == 0 { "a" } else { "b" }).unwrap()
}

#[derive(Default)]
struct Run {
    table: LockTable,
    log: Vec<Committed>,
    cmds: Vec<Command>,
    index: u64,
    now: u64,
    at: BTreeMap<u64, u64>,
    next_request: BTreeMap<u64, u64>,
    acquires: BTreeMap<u64, Vec<RequestId>>,
    skip_next: bool,
    h: History,
    /// Each request's first command time, its call, and its lock.
    first: BTreeMap<(SessionId, RequestId), (u64, Call, LockName)>,
    answered: BTreeSet<(SessionId, RequestId)>,
    op_ids: u64,
}

impl Run {
    fn key(&mut self, s: u8) -> RequestKey {
        let session = SessionId(u64::from(s) + 1);
        let n = self.next_request.entry(session.0).or_insert(1);
        *n += 1;
        RequestKey {
            session,
            request: RequestId(*n),
            floor: RequestId(1),
        }
    }

    fn step(&mut self, op: Op) {
        let cmd = match op {
            Op::Open(s) => Command::OpenSession {
                session: SessionId(u64::from(s) + 1),
                node: NodeId(u64::from(s)),
                name: NodeName(format!("n{s}")),
                ttl_ms: 300,
            },
            Op::Close(s) => Command::CloseSession {
                session: SessionId(u64::from(s) + 1),
            },
            Op::Expire(s, lock_delay) => Command::ExpireSession {
                session: SessionId(u64::from(s) + 1),
                lock_delay,
            },
            Op::Acquire(s, l, wait) => {
                let key = self.key(s);
                self.acquires
                    .entry(key.session.0)
                    .or_default()
                    .push(key.request);
                Command::Acquire {
                    key,
                    lock: lock(l),
                    wait,
                }
            }
            Op::Release(l) => {
                let Some(info) = self.table.holder(&lock(l)) else {
                    return;
                };
                let s = u8::try_from(info.session.0 - 1).unwrap();
                Command::Release {
                    key: self.key(s),
                    lock: lock(l),
                    token: info.token,
                }
            }
            Op::Cancel(s, n) => {
                let session = u64::from(s) + 1;
                let recent = self
                    .acquires
                    .get(&session)
                    .and_then(|a| a.iter().rev().nth(n).copied());
                let Some(target) = recent else { return };
                Command::Cancel {
                    key: self.key(s),
                    target,
                }
            }
            Op::Handoff(l) => {
                let pending = self
                    .table
                    .pending_handoffs()
                    .into_iter()
                    .find(|h| h.lock == lock(l));
                let Some(p) = pending else { return };
                if p.delayed {
                    let freed = self.at.get(&p.freed_at).copied().unwrap_or(0);
                    self.now = self.now.max(freed + LOCK_DELAY_MS);
                }
                Command::Handoff {
                    lock: lock(l),
                    freed_at: p.freed_at,
                }
            }
            Op::Retry(back) => match self.cmds.iter().rev().nth(back) {
                Some(cmd) => cmd.clone(),
                None => return,
            },
            Op::Gap => {
                self.skip_next = true;
                return;
            }
        };
        self.apply(cmd);
    }

    fn apply(&mut self, cmd: Command) {
        self.index += 1;
        self.now += 10;
        let (index, now) = (self.index, self.now);
        self.at.insert(index, now);
        let fx = self.table.apply(index, &cmd);
        self.observe(&cmd, &fx);
        self.cmds.push(cmd.clone());
        if !std::mem::take(&mut self.skip_next) {
            self.log.push(Committed {
                index,
                at: ms(now),
                command: Some(cmd),
                effects: fx,
            });
        }
        // A holder read between this entry and the next.
        let name = lock(u8::from(index % 2 == 0));
        let token = self.table.holder(&name).map(|i| i.token.0);
        self.op(
            0,
            &name,
            Call::Holder,
            now + 2,
            Some((now + 3, Seen::Holder { token })),
        );
    }

    fn op(&mut self, p: u32, name: &LockName, call: Call, inv: u64, done: Option<(u64, Seen)>) {
        self.op_ids += 1;
        let op = self.op_ids;
        self.h
            .push(ms(inv), p, name.as_str(), EventKind::Invoke { op, call });
        if let Some((at, outcome)) = done {
            self.h.push(
                ms(at),
                p,
                name.as_str(),
                EventKind::Complete { op, outcome },
            );
        }
    }

    /// What the clients saw: each request's first answer that ends it.
    fn observe(&mut self, cmd: &Command, fx: &[Effect]) {
        let now = self.now;
        match cmd {
            Command::Acquire { key, lock, wait } => {
                let call = if *wait {
                    Call::Acquire
                } else {
                    Call::TryAcquire
                };
                self.first
                    .entry((key.session, key.request))
                    .or_insert((now, call, lock.clone()));
            }
            Command::Release { key, lock, token } => {
                let call = Call::Release { token: token.0 };
                self.first
                    .entry((key.session, key.request))
                    .or_insert((now, call, lock.clone()));
            }
            Command::OpenSession { session, .. }
                if fx
                    .iter()
                    .any(|f| matches!(f, Effect::SessionOpened { session: s } if s == session)) =>
            {
                // This run re-opens an ended session under its old id,
                // which the driver never does (each open gets a fresh
                // id): the new incarnation's requests, retries of old
                // commands included, are new requests. The old one's
                // unanswered requests ended with it (their clients
                // crashed), as `finish` records them.
                self.end_incarnation(*session);
            }
            _ => {}
        }
        for f in fx {
            let Effect::Reply {
                session,
                request,
                outcome,
            } = f
            else {
                continue;
            };
            let req = (*session, *request);
            let seen = match outcome {
                Outcome::Granted(t) => Seen::Granted { token: t.0 },
                Outcome::Busy => Seen::Busy,
                Outcome::Released => Seen::Released,
                Outcome::NotHolder => Seen::NotHeld,
                Outcome::Queued => continue,
                _ => Seen::Failed {
                    error: format!("{outcome:?}"),
                },
            };
            let Some((inv, call, name)) = self.first.get(&req).cloned() else {
                continue;
            };
            if self.answered.insert(req) {
                let p = u32::try_from(session.0).unwrap();
                self.op(p, &name, call, inv - 1, Some((now + 1, seen)));
            }
        }
    }

    /// Records the unanswered requests of `session` as crashed calls and
    /// forgets its requests, so a re-opened session starts afresh.
    fn end_incarnation(&mut self, session: SessionId) {
        let open: Vec<_> = self
            .first
            .iter()
            .filter(|(r, _)| r.0 == session && !self.answered.contains(r))
            .map(|(r, v)| (*r, v.clone()))
            .collect();
        for ((s, _), (inv, call, name)) in open {
            self.op(u32::try_from(s.0).unwrap(), &name, call, inv - 1, None);
        }
        self.first.retain(|r, _| r.0 != session);
        self.answered.retain(|r| r.0 != session);
    }

    fn finish(mut self) -> History {
        // Requests never answered: their clients crashed.
        let open: Vec<_> = self
            .first
            .iter()
            .filter(|(r, _)| !self.answered.contains(r))
            .map(|(r, v)| (*r, v.clone()))
            .collect();
        for ((s, _), (inv, call, name)) in open {
            self.op(u32::try_from(s.0).unwrap(), &name, call, inv - 1, None);
        }
        // The tail is never missing: end on a recorded no-op entry.
        self.skip_next = false;
        self.apply(Command::CloseSession {
            session: SessionId(99),
        });
        let mut h = self.h;
        h.events.sort_by_key(|e| e.at);
        h.log = self.log;
        h.params.lock_delay = ms(LOCK_DELAY_MS);
        h.params.expect_s4 = true;
        h
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A correct machine's runs pass every property, gaps included.
    #[test]
    fn random_machine_runs_pass_every_property(ops in proptest::collection::vec(op(), 1..150)) {
        let mut run = Run::default();
        for s in 0..4 {
            run.step(Op::Open(s));
        }
        for op in ops {
            run.step(op);
        }
        let h = run.finish();
        let r = check(&h);
        prop_assert!(r.is_ok(), "{r}\n{:#?}", h.log);
        prop_assert!(!r.skipped.iter().any(|(p, _)| *p == Property::S2LogOrder));
    }
}
