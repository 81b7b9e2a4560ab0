//! Random command sequences, checked two ways on every entry.
//!
//! 1. A naive reference model (`proptest_model.rs`) must produce the same
//!    effects, holders, queues, outcomes and handoffs.
//! 2. A history checker that sees only commands and effects asserts the
//!    DESIGN rules and issue 11's on its own: no exclusive holder beside any
//!    other holder, never more permits out than the count, a grant on all
//!    of a request's names at once (all or nothing), tokens never falling
//!    per name and an exclusive grant's strictly above every earlier one's,
//!    FIFO grants (a request granted from a queue is at its head on every
//!    name), no grant to an ended session, and retries answered with the
//!    request's current outcome, never a second grant.
//!
//! Histories mix mutex requests and claims of every kind on the same few
//! names, so names change kind between uses and refusals (`WrongKind`,
//! `Invalid`) come up too. With feature `teeth`, each of issue 11's planted
//! bugs must make this test fail (`planted_primitive_bugs_fail_the_proptest`).
//!
//! Snapshots are taken and restored at random points (and the test goes on
//! with the restored table), and old indexes are replayed as no-ops.

use proptest::prelude::*;

use super::proptest_history::History;
use super::proptest_model::Model;
use super::*;

const LOCKS: [&str; 4] = ["a", "b", "c", "d"];

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
    /// Claims on up to three names: (name, kind), kind 0 exclusive, 1
    /// shared, else permits (n 1..=3 of a count of 2 or 3).
    Claims(Req, Vec<(u8, u8, u32, u32)>, bool),
    /// A release of the session's grant `n` (any request number).
    ReleaseGrant(Req, u64),
    /// A current holder of a name releases its grant.
    ReleaseGrantHolder(Req, u8),
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
    let lock = 0..4u8;
    let claim = (0..4u8, 0..4u8, 1..=3u32, 2..=3u32);
    let claims = proptest::collection::vec(claim, 0..=3);
    let other = prop_oneof![3 => Just(None), 1 => (0..60u64).prop_map(Some)];
    prop_oneof![
        3 => (0..3u8).prop_map(Op::Open),
        1 => (0..3u8).prop_map(Op::Close),
        1 => (0..3u8, any::<bool>()).prop_map(|(s, d)| Op::Expire(s, d)),
        6 => (req.clone(), lock.clone(), any::<bool>()).prop_map(|(q, l, w)| Op::Acquire(q, l, w)),
        8 => (req.clone(), claims, any::<bool>()).prop_map(|(q, c, w)| Op::Claims(q, c, w)),
        1 => (req.clone(), 1..16u64).prop_map(|(q, g)| Op::ReleaseGrant(q, g)),
        4 => (req.clone(), lock.clone()).prop_map(|(q, l)| Op::ReleaseGrantHolder(q, l)),
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
        let want = self.model.apply(index, &cmd);
        if fx != want {
            // Grants of one entry may come in another order (the model
            // grants in queue order, the table name by name): compare the
            // effects as a multiset.
            let sorted = |f: &[Effect]| {
                let mut v: Vec<String> = f.iter().map(|e| format!("{e:?}")).collect();
                v.sort();
                v
            };
            assert_eq!(sorted(&fx), sorted(&want), "effects of {cmd:?} at {index}");
        }
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
            Op::Claims(q, want, wait) => Command::AcquireClaims {
                key: key(q),
                claims: want
                    .into_iter()
                    .map(|(l, kind, n, count)| Claim {
                        lock: lock_name(l),
                        kind: match kind {
                            0 => ClaimKind::Exclusive,
                            1 => ClaimKind::Shared,
                            _ => ClaimKind::Permits { n, count },
                        },
                    })
                    .collect(),
                wait,
            },
            Op::ReleaseGrant(q, grant) => Command::ReleaseGrant {
                key: key(q),
                grant: RequestId(grant),
            },
            Op::ReleaseGrantHolder(q, l) => {
                let Some(info) = self.table.holders(&lock_name(l)) else {
                    return;
                };
                let Some(g) = info.holders.first() else {
                    return;
                };
                Command::ReleaseGrant {
                    key: RequestKey {
                        session: g.session,
                        ..key(q)
                    },
                    grant: g.request,
                }
            }
            Op::Cancel(q, target) => Command::Cancel {
                key: key(q),
                target: RequestId(target),
            },
            Op::CancelRecent(q, n) => {
                let acquires = self.log.iter().rev().filter_map(|(_, c)| match c {
                    Command::Acquire { key, .. } | Command::AcquireClaims { key, .. }
                        if key.session == sid(q.s) =>
                    {
                        Some(key.request)
                    }
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

fn run_ops(ops: Vec<Op>) {
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

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..200)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every rule of the state machine, on random command sequences over
    /// three sessions, four names and a handful of request ids.
    #[test]
    fn random_sequences_match_the_model_and_keep_every_rule(ops in ops()) {
        run_ops(ops);
    }
}

/// The proptest has teeth: each planted bug of issue 11's primitives (a
/// permit too many, a writer beside a reader, a partial multi-lock) makes
/// it fail within 1 024 cases.
#[cfg(feature = "teeth")]
#[test]
fn planted_primitive_bugs_fail_the_proptest() {
    use proptest::test_runner::{Config, TestRunner};
    for bug in crate::teeth::Bug::PRIMITIVES {
        crate::teeth::plant(Some(bug));
        let config = Config {
            cases: 1024,
            failure_persistence: None,
            max_shrink_iters: 0,
            ..Config::default()
        };
        let result = TestRunner::new(config).run(&ops(), |ops| {
            run_ops(ops);
            Ok(())
        });
        crate::teeth::plant(None);
        match result {
            Err(e) => eprintln!("planted {bug:?}: caught: {e}"),
            Ok(()) => panic!("planted {bug:?} passed the proptest"),
        }
    }
}
