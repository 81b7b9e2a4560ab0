//! One test per rule of DESIGN.md's "The state machine" (and of the
//! choices listed in the module doc), each asserting the whole effect list
//! of the entry it applies, in the style of openraft's engine tests.
//!
//! This file holds the shared helpers and the rules of requests (acquire,
//! release, retry, cancel, tokens); `session_tests.rs` the rules of
//! sessions and handoffs; `snapshot_tests.rs` snapshots and replays.

use super::*;

pub(super) const A: SessionId = SessionId(1);
pub(super) const B: SessionId = SessionId(2);
pub(super) const C: SessionId = SessionId(3);

pub(super) fn name(s: &str) -> LockName {
    LockName::new(s).unwrap()
}

pub(super) fn key(session: SessionId, request: u64) -> RequestKey {
    RequestKey {
        session,
        request: RequestId(request),
        floor: RequestId(1),
    }
}

pub(super) fn reply(session: SessionId, request: u64, outcome: Outcome) -> Effect {
    Effect::Reply {
        session,
        request: RequestId(request),
        outcome,
    }
}

pub(super) fn granted(session: SessionId, request: u64, token: u64) -> Effect {
    reply(session, request, Outcome::Granted(FencingToken(token)))
}

pub(super) fn ended(session: SessionId, expired: bool) -> Effect {
    Effect::SessionEnded { session, expired }
}

pub(super) fn awaiting(lock: &str, freed_at: u64, delayed: bool) -> Effect {
    Effect::AwaitingHandoff {
        lock: name(lock),
        freed_at,
        delayed,
    }
}

pub(super) fn open(t: &mut LockTable, i: u64, s: SessionId) -> Vec<Effect> {
    let name = NodeName(format!("n{}", s.0));
    let cmd = Command::OpenSession {
        session: s,
        node: NodeId(s.0),
        name,
        ttl_ms: 1000,
    };
    t.apply(i, &cmd)
}

/// A table with sessions A, B and C opened at indexes 1..=3.
pub(super) fn table() -> LockTable {
    let mut t = LockTable::new();
    for (i, s) in [(1, A), (2, B), (3, C)] {
        open(&mut t, i, s);
    }
    t
}

pub(super) fn acq(
    t: &mut LockTable,
    i: u64,
    s: SessionId,
    r: u64,
    lock: &str,
    wait: bool,
) -> Vec<Effect> {
    let (key, lock) = (key(s, r), name(lock));
    t.apply(i, &Command::Acquire { key, lock, wait })
}

pub(super) fn rel(
    t: &mut LockTable,
    i: u64,
    s: SessionId,
    r: u64,
    lock: &str,
    tok: u64,
) -> Vec<Effect> {
    let (key, lock, token) = (key(s, r), name(lock), FencingToken(tok));
    t.apply(i, &Command::Release { key, lock, token })
}

pub(super) fn cancel(t: &mut LockTable, i: u64, s: SessionId, r: u64, target: u64) -> Vec<Effect> {
    let (key, target) = (key(s, r), RequestId(target));
    t.apply(i, &Command::Cancel { key, target })
}

pub(super) fn expire(
    t: &mut LockTable,
    i: u64,
    session: SessionId,
    lock_delay: bool,
) -> Vec<Effect> {
    t.apply(
        i,
        &Command::ExpireSession {
            session,
            lock_delay,
        },
    )
}

pub(super) fn handoff(t: &mut LockTable, i: u64, lock: &str, freed_at: u64) -> Vec<Effect> {
    let lock = name(lock);
    t.apply(i, &Command::Handoff { lock, freed_at })
}

pub(super) fn waiters(t: &LockTable, lock: &str) -> Vec<(SessionId, RequestId)> {
    t.locks
        .get(&name(lock))
        .map(|l| l.waiters.iter().copied().collect())
        .unwrap_or_default()
}

/// Rule "Acquire. Free: granted at this entry"; "Fencing token = the Raft
/// log index of the entry that granted the lock".
#[test]
fn free_lock_is_granted_with_the_entry_index_as_token() {
    let mut t = table();
    assert_eq!(acq(&mut t, 10, A, 1, "x", true), vec![granted(A, 1, 10)]);
    let info = t.holder(&name("x")).unwrap();
    assert_eq!((info.token, info.session), (FencingToken(10), A));
    assert_eq!(
        (info.holder.as_str(), info.holder_id, info.waiters),
        ("n1", NodeId(1), 0)
    );
    assert_eq!(t.locks_of(A), vec![(name("x"), FencingToken(10))]);
}

/// Rule "Held: the request joins the lock's FIFO queue"; "Granting to the
/// next waiter happens when applying the entry that frees the lock"; "No
/// herd: only the granted waiter is woken".
#[test]
fn release_grants_only_the_head_waiter_in_the_same_entry() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    assert_eq!(
        acq(&mut t, 11, B, 1, "x", true),
        vec![reply(B, 1, Outcome::Queued)]
    );
    assert_eq!(
        acq(&mut t, 12, C, 1, "x", true),
        vec![reply(C, 1, Outcome::Queued)]
    );
    let fx = rel(&mut t, 13, A, 2, "x", 10);
    assert_eq!(fx, vec![granted(B, 1, 13), reply(A, 2, Outcome::Released)]);
    assert_eq!(waiters(&t, "x"), vec![(C, RequestId(1))], "C still waits");
    let fx = rel(&mut t, 14, B, 2, "x", 13);
    assert_eq!(fx, vec![granted(C, 1, 14), reply(B, 2, Outcome::Released)]);
    assert_eq!(
        rel(&mut t, 15, C, 2, "x", 14),
        vec![reply(C, 2, Outcome::Released)]
    );
    assert_eq!(t.lock_count(), 0, "a free lock leaves the table");
}

/// Rule "or fails at once for try_lock".
#[test]
fn try_lock_on_a_held_lock_is_busy_and_does_not_queue() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    assert_eq!(
        acq(&mut t, 11, B, 1, "x", false),
        vec![reply(B, 1, Outcome::Busy)]
    );
    assert!(waiters(&t, "x").is_empty());
}

/// No reentrancy: a session is shared by the tasks of one node, which must
/// exclude each other, so a holder asking again queues behind itself.
#[test]
fn a_holder_asking_again_queues_behind_itself() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    assert_eq!(
        acq(&mut t, 11, A, 2, "x", false),
        vec![reply(A, 2, Outcome::Busy)]
    );
    assert_eq!(
        acq(&mut t, 12, A, 3, "x", true),
        vec![reply(A, 3, Outcome::Queued)]
    );
    let fx = rel(&mut t, 13, A, 4, "x", 10);
    assert_eq!(fx, vec![granted(A, 3, 13), reply(A, 4, Outcome::Released)]);
}

/// Rule "Release names the token it releases; a stale guard can never
/// release a later holder's lock".
#[test]
fn stale_token_cannot_release() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    rel(&mut t, 11, A, 2, "x", 10);
    acq(&mut t, 12, B, 1, "x", true);
    let before = t.clone();
    assert_eq!(
        rel(&mut t, 13, A, 3, "x", 10),
        vec![reply(A, 3, Outcome::NotHolder)]
    );
    assert_eq!(
        rel(&mut t, 14, B, 2, "x", 10),
        vec![reply(B, 2, Outcome::NotHolder)]
    );
    assert_eq!(
        rel(&mut t, 15, A, 4, "x", 12),
        vec![reply(A, 4, Outcome::NotHolder)]
    );
    assert_eq!(t.holder(&name("x")).unwrap().token, FencingToken(12));
    assert_eq!(t.locks, before.locks);
}

/// Rule "Idempotence: a retried request returns the first result, never a
/// second grant"; requests below the acknowledgement floor are ignored.
#[test]
fn retry_returns_the_first_result() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    rel(&mut t, 11, A, 2, "x", 10);
    acq(&mut t, 12, B, 1, "x", true);
    // A's first acquire is retried after B took the lock: same answer, no grant.
    assert_eq!(acq(&mut t, 13, A, 1, "x", true), vec![granted(A, 1, 10)]);
    assert_eq!(acq(&mut t, 14, B, 1, "x", true), vec![granted(B, 1, 12)]);
    assert_eq!(t.holder(&name("x")).unwrap().session, B);
    assert!(waiters(&t, "x").is_empty(), "no second request queued");
    // A request carrying floor 5 lets the table forget requests 1..=4 ...
    let key = RequestKey {
        session: A,
        request: RequestId(5),
        floor: RequestId(5),
    };
    let fx = t.apply(
        15,
        &Command::Acquire {
            key,
            lock: name("y"),
            wait: true,
        },
    );
    assert_eq!(fx, vec![granted(A, 5, 15)]);
    assert_eq!(
        t.outcome(A, RequestId(1)),
        None,
        "forgotten below the floor"
    );
    // ... and a retry from below the floor is a stale duplicate: no effects.
    assert!(acq(&mut t, 16, A, 1, "x", true).is_empty());
    assert!(rel(&mut t, 17, A, 2, "x", 10).is_empty());
}

/// Choice "a request's floor is clamped to the request itself": a floor
/// above the request must not make its own retry execute a second time.
#[test]
fn a_floor_above_the_request_never_lets_its_retry_run_twice() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 3, "x", true);
    let key = RequestKey {
        session: B,
        request: RequestId(3),
        floor: RequestId(9),
    };
    let fx = t.apply(
        12,
        &Command::Acquire {
            key,
            lock: name("x"),
            wait: true,
        },
    );
    assert_eq!(fx, vec![reply(B, 3, Outcome::Queued)]);
    assert_eq!(waiters(&t, "x"), vec![(B, RequestId(3))], "queued once");
}

/// Cancel rule: a queued waiter leaves the queue, and both the acquire and
/// the cancel are answered `Cancelled`.
#[test]
fn cancel_removes_a_queued_waiter() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    let fx = cancel(&mut t, 12, B, 2, 1);
    assert_eq!(
        fx,
        vec![
            reply(B, 1, Outcome::Cancelled),
            reply(B, 2, Outcome::Cancelled)
        ]
    );
    assert!(waiters(&t, "x").is_empty());
    assert_eq!(t.outcome(B, RequestId(1)), Some(Outcome::Cancelled));
    // The release now frees the lock for good.
    assert_eq!(
        rel(&mut t, 13, A, 2, "x", 10),
        vec![reply(A, 2, Outcome::Released)]
    );
    assert_eq!(t.lock_count(), 0);
}

/// Cancel rule: the cancel of an acquire granted meanwhile releases the
/// grant, which goes to the next waiter in the same entry.
#[test]
fn cancel_of_a_granted_request_releases_and_grants_the_next() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    let fx = cancel(&mut t, 12, A, 2, 1);
    let want = vec![
        reply(A, 1, Outcome::Cancelled),
        granted(B, 1, 12),
        reply(A, 2, Outcome::Released),
    ];
    assert_eq!(fx, want);
    assert_eq!(t.outcome(A, RequestId(1)), Some(Outcome::Cancelled));
    assert!(t.locks_of(A).is_empty());
}

/// Cancel rule: a cancel that overtakes its acquire makes the acquire a
/// duplicate answered `Cancelled`, which never takes effect.
#[test]
fn cancel_before_the_acquire_arrives_makes_it_a_no_op() {
    let mut t = table();
    assert_eq!(
        cancel(&mut t, 10, A, 2, 1),
        vec![reply(A, 2, Outcome::Cancelled)]
    );
    assert_eq!(
        acq(&mut t, 11, A, 1, "x", true),
        vec![reply(A, 1, Outcome::Cancelled)]
    );
    assert!(t.holder(&name("x")).is_none());
    assert_eq!(t.lock_count(), 0);
}

/// Cancel rule: a request that already reached a final outcome (busy,
/// released, cancelled) is not changed by a cancel.
#[test]
fn cancel_of_an_answered_request_changes_nothing() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", false);
    let before = t.clone();
    assert_eq!(
        cancel(&mut t, 12, B, 2, 1),
        vec![reply(B, 2, Outcome::Cancelled)]
    );
    assert_eq!(t.outcome(B, RequestId(1)), Some(Outcome::Busy));
    assert_eq!(t.locks, before.locks);
    // A grant released by its guard is not released again by a cancel.
    rel(&mut t, 13, A, 2, "x", 10);
    acq(&mut t, 14, C, 1, "x", true);
    assert_eq!(
        cancel(&mut t, 15, A, 3, 1),
        vec![reply(A, 3, Outcome::Cancelled)]
    );
    assert_eq!(t.holder(&name("x")).unwrap().session, C);
}

/// Choice "Cancel finds a queued target in `waiting`": a waiter stays
/// removable even if its client raised the floor past it too early.
#[test]
fn cancel_finds_a_queued_waiter_below_a_raised_floor() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    let key = RequestKey {
        session: B,
        request: RequestId(2),
        floor: RequestId(2),
    };
    let fx = t.apply(
        12,
        &Command::Cancel {
            key,
            target: RequestId(1),
        },
    );
    assert_eq!(
        fx,
        vec![
            reply(B, 1, Outcome::Cancelled),
            reply(B, 2, Outcome::Cancelled)
        ]
    );
    assert!(waiters(&t, "x").is_empty());
}

/// Rule "[The token] increases strictly for each lock and across all
/// locks": each entry grants at most one lock, at its own index.
#[test]
fn tokens_are_unique_across_locks_and_rise_per_lock() {
    let mut t = table();
    let mut tokens: Vec<(LockName, u64)> = Vec::new();
    let mut i = 10;
    let mut r = 0;
    for round in 0..4 {
        for (s, lock) in [(A, "x"), (B, "y"), (C, "x"), (A, "y")] {
            r += 1;
            i += 1;
            for e in acq(&mut t, i, s, r, lock, true) {
                if let Effect::Reply {
                    outcome: Outcome::Granted(tok),
                    ..
                } = e
                {
                    tokens.push((name(lock), tok.get()));
                }
            }
        }
        for lock in ["x", "y"] {
            // Release whoever holds it; each release grants the next waiter.
            while let Some(h) = t.holder(&name(lock)) {
                r += 1;
                i += 1;
                let fx = rel(&mut t, i, h.session, r, lock, h.token.get());
                let grants: Vec<_> = fx
                    .iter()
                    .filter(|e| {
                        matches!(
                            e,
                            Effect::Reply {
                                outcome: Outcome::Granted(_),
                                ..
                            }
                        )
                    })
                    .collect();
                assert!(grants.len() <= 1, "round {round}: one grant per entry");
                if let Some(next) = t.holder(&name(lock)) {
                    tokens.push((name(lock), next.token.get()));
                }
            }
        }
    }
    assert_eq!(tokens.len(), 16);
    let all: std::collections::BTreeSet<u64> = tokens.iter().map(|(_, t)| *t).collect();
    assert_eq!(all.len(), tokens.len(), "unique across locks");
    for lock in ["x", "y"] {
        let per: Vec<u64> = tokens
            .iter()
            .filter(|(l, _)| *l == name(lock))
            .map(|(_, t)| *t)
            .collect();
        assert!(per.windows(2).all(|w| w[0] < w[1]), "{lock}: {per:?}");
    }
}
