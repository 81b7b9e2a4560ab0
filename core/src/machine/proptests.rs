//! Random command sequences against a naive reference model.
//!
//! The model is written the obvious way (vectors, linear scans), without
//! floors or snapshots, and the properties are checked on every step:
//! never two holders, tokens unique and rising per lock, FIFO grants, no
//! grant to an ended session, retries answered with the first outcome, and
//! snapshot/restore at any point giving the same table.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Op {
    Open(u8),
    Close(u8),
    Expire(u8, bool),
    Acquire { s: u8, lock: u8, wait: bool },
    Retry { s: u8, back: u8 },
    Release { s: u8, lock: u8, right_token: bool },
    Cancel { s: u8, back: u8 },
    Handoff(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..3u8).prop_map(Op::Open),
        1 => (0..3u8).prop_map(Op::Close),
        1 => (0..3u8, any::<bool>()).prop_map(|(s, d)| Op::Expire(s, d)),
        6 => (0..3u8, 0..3u8, any::<bool>()).prop_map(|(s, lock, wait)| Op::Acquire { s, lock, wait }),
        2 => (0..3u8, 0..4u8).prop_map(|(s, back)| Op::Retry { s, back }),
        5 => (0..3u8, 0..3u8, any::<bool>()).prop_map(|(s, lock, right_token)| Op::Release { s, lock, right_token }),
        2 => (0..3u8, 0..4u8).prop_map(|(s, back)| Op::Cancel { s, back }),
        2 => (0..3u8).prop_map(Op::Handoff),
    ]
}

/// The naive model: who holds what, and who waits in what order.
#[derive(Default)]
struct Model {
    holder: BTreeMap<u8, SessionId>,
    queue: BTreeMap<u8, VecDeque<(SessionId, RequestId)>>,
    open: Vec<SessionId>,
}

struct Driver {
    table: LockTable,
    model: Model,
    index: u64,
    next_req: BTreeMap<SessionId, u64>,
    sent: BTreeMap<SessionId, Vec<Command>>,
    first_outcome: BTreeMap<(SessionId, RequestId), Outcome>,
    last_token: BTreeMap<u8, u64>,
    all_tokens: Vec<u64>,
    generation: BTreeMap<u8, u64>,
}

fn lock_name(l: u8) -> LockName {
    LockName::new(&format!("lock-{l}")).unwrap()
}

fn session(s: u8, generation: u64) -> SessionId {
    SessionId(u64::from(s) * 1000 + generation)
}

impl Driver {
    fn new() -> Self {
        Self {
            table: LockTable::new(),
            model: Model::default(),
            index: 0,
            next_req: BTreeMap::new(),
            sent: BTreeMap::new(),
            first_outcome: BTreeMap::new(),
            last_token: BTreeMap::new(),
            all_tokens: Vec::new(),
            generation: BTreeMap::new(),
        }
    }

    fn sid(&self, s: u8) -> SessionId {
        session(s, *self.generation.get(&s).unwrap_or(&0))
    }

    fn key(&mut self, s: SessionId) -> RequestKey {
        let r = self.next_req.entry(s).or_insert(1);
        let key = RequestKey {
            session: s,
            request: RequestId(*r),
            floor: RequestId(1),
        };
        *r += 1;
        key
    }

    fn apply(&mut self, cmd: Command) {
        self.index += 1;
        let fx = self.table.apply(self.index, &cmd);
        self.check_effects(&cmd, &fx);
    }

    fn check_effects(&mut self, cmd: &Command, fx: &[Effect]) {
        let mut grants = 0;
        for e in fx {
            match e {
                Effect::Reply {
                    session,
                    request,
                    outcome,
                } => {
                    if let Outcome::Granted(t) = outcome {
                        let first = self.first_outcome.get(&(*session, *request)).copied();
                        let fresh = !matches!(first, Some(Outcome::Granted(_)));
                        if fresh {
                            grants += 1;
                            assert_eq!(
                                t.get(),
                                self.index,
                                "a new grant's token is its entry's index"
                            );
                            assert!(
                                self.model.open.contains(session),
                                "granted to an ended session"
                            );
                            let lock = self.lock_of_grant(*session, *request, cmd);
                            if let Some(l) = lock {
                                if let Some(prev) = self.model.holder.get(&l) {
                                    // Only the previous holder's own release or cancel
                                    // may hand the lock on within one entry.
                                    let by_prev = match cmd {
                                        Command::Release { key, lock, .. } => {
                                            key.session == *prev && *lock == lock_name(l)
                                        }
                                        Command::Cancel { key, .. } => key.session == *prev,
                                        _ => false,
                                    };
                                    assert!(by_prev, "two holders of lock-{l}");
                                }
                                let q = self.model.queue.entry(l).or_default();
                                if let Some(pos) = q.iter().position(|w| *w == (*session, *request))
                                {
                                    assert_eq!(pos, 0, "granted out of FIFO order");
                                    q.pop_front();
                                }
                                self.model.holder.insert(l, *session);
                                let last = self.last_token.insert(l, t.get()).unwrap_or(0);
                                assert!(t.get() > last, "token did not rise");
                                assert!(!self.all_tokens.contains(&t.get()), "token reused");
                                self.all_tokens.push(t.get());
                            }
                        }
                    }
                    match self.first_outcome.get(&(*session, *request)) {
                        // Queued then later granted/cancelled is the normal path.
                        Some(Outcome::Queued) | None => {
                            self.first_outcome.insert((*session, *request), *outcome);
                        }
                        Some(first) => {
                            if !matches!(outcome, Outcome::Cancelled | Outcome::NoSession)
                                && !matches!(first, Outcome::Cancelled)
                            {
                                assert_eq!(first, outcome, "a retry changed its answer");
                            }
                        }
                    }
                }
                Effect::SessionEnded { session, .. } => {
                    self.model.open.retain(|s| s != session);
                    self.model.holder.retain(|_, h| h != session);
                    for q in self.model.queue.values_mut() {
                        q.retain(|(s, _)| s != session);
                    }
                }
                _ => {}
            }
        }
        assert!(grants <= 1, "an entry granted more than one lock");
        // Keep the model's holders in step with releases and cancels.
        for l in 0..3u8 {
            let real = self.table.holder(&lock_name(l)).map(|i| i.session);
            if real.is_none() {
                self.model.holder.remove(&l);
            }
            assert_eq!(
                real,
                self.model.holder.get(&l).copied(),
                "holder of lock-{l} differs from the model"
            );
        }
    }

    fn lock_of_grant(&self, session: SessionId, request: RequestId, cmd: &Command) -> Option<u8> {
        if let Command::Acquire { key, lock, .. } = cmd {
            if key.session == session && key.request == request {
                return lock.as_str().strip_prefix("lock-")?.parse().ok();
            }
        }
        if let Some(cmds) = self.sent.get(&session) {
            for c in cmds {
                if let Command::Acquire { key, lock, .. } = c {
                    if key.request == request {
                        return lock.as_str().strip_prefix("lock-")?.parse().ok();
                    }
                }
            }
        }
        None
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Open(s) => {
                let g = self.generation.entry(s).or_insert(0);
                *g += 1;
                let sid = session(s, *g);
                self.model.open.push(sid);
                self.apply(Command::OpenSession {
                    session: sid,
                    node: NodeId(u64::from(s) + 1),
                    name: NodeName(format!("n{s}")),
                    ttl_ms: 1000,
                });
            }
            Op::Close(s) => {
                let session = self.sid(s);
                self.apply(Command::CloseSession { session })
            }
            Op::Expire(s, lock_delay) => {
                let session = self.sid(s);
                self.apply(Command::ExpireSession {
                    session,
                    lock_delay,
                })
            }
            Op::Acquire { s, lock, wait } => {
                let sid = self.sid(s);
                let key = self.key(sid);
                let cmd = Command::Acquire {
                    key,
                    lock: lock_name(lock),
                    wait,
                };
                self.sent.entry(sid).or_default().push(cmd.clone());
                let held_before = self.table.holder(&lock_name(lock)).is_some()
                    || self
                        .table
                        .pending_handoffs()
                        .iter()
                        .any(|h| h.lock == lock_name(lock))
                    || self.model.queue.get(&lock).is_some_and(|q| !q.is_empty());
                self.apply(cmd);
                if wait
                    && held_before
                    && self.table.outcome(sid, key.request) == Some(Outcome::Queued)
                {
                    self.model
                        .queue
                        .entry(lock)
                        .or_default()
                        .push_back((sid, key.request));
                }
            }
            Op::Retry { s, back } => {
                let sid = self.sid(s);
                let cmds = self.sent.get(&sid).cloned().unwrap_or_default();
                if let Some(cmd) = cmds.iter().rev().nth(usize::from(back)) {
                    self.apply(cmd.clone());
                }
            }
            Op::Release {
                s,
                lock,
                right_token,
            } => {
                let sid = self.sid(s);
                let token = match self.table.holder(&lock_name(lock)) {
                    Some(i) if right_token => i.token,
                    Some(i) => FencingToken(i.token.get().saturating_sub(1)),
                    None => FencingToken(1),
                };
                let key = self.key(sid);
                let cmd = Command::Release {
                    key,
                    lock: lock_name(lock),
                    token,
                };
                self.sent.entry(sid).or_default().push(cmd.clone());
                self.apply(cmd);
            }
            Op::Cancel { s, back } => {
                let sid = self.sid(s);
                let target = self.sent.get(&sid).and_then(|c| {
                    c.iter()
                        .rev()
                        .filter_map(|c| match c {
                            Command::Acquire { key, .. } => Some(key.request),
                            _ => None,
                        })
                        .nth(usize::from(back))
                });
                if let Some(target) = target {
                    let key = self.key(sid);
                    self.apply(Command::Cancel { key, target });
                    for q in self.model.queue.values_mut() {
                        q.retain(|w| *w != (sid, target));
                    }
                }
            }
            Op::Handoff(lock) => {
                if let Some(h) = self
                    .table
                    .pending_handoffs()
                    .into_iter()
                    .find(|h| h.lock == lock_name(lock))
                {
                    self.apply(Command::Handoff {
                        lock: h.lock,
                        freed_at: h.freed_at,
                    });
                }
            }
        }
        let restored = LockTable::restore(&self.table.encode_snapshot()).unwrap();
        assert_eq!(restored.state_hash(), self.table.state_hash());
        assert_eq!(restored, self.table);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_every_invariant(ops in proptest::collection::vec(op(), 1..200)) {
        let mut d = Driver::new();
        for s in 0..3u8 {
            d.step(Op::Open(s));
        }
        for op in ops {
            d.step(op);
        }
    }
}
