//! One test per rule of DESIGN.md's "The state machine", asserting whole
//! effect lists where that is practical.

use super::*;

const A: SessionId = SessionId(1);
const B: SessionId = SessionId(2);
const C: SessionId = SessionId(3);

fn name(s: &str) -> LockName {
    LockName::new(s).unwrap()
}

fn key(session: SessionId, request: u64) -> RequestKey {
    RequestKey {
        session,
        request: RequestId(request),
        floor: RequestId(1),
    }
}

fn reply(session: SessionId, request: u64, outcome: Outcome) -> Effect {
    Effect::Reply {
        session,
        request: RequestId(request),
        outcome,
    }
}

/// A table with sessions A, B and C open at indexes 1..=3; next index is 10.
fn table() -> LockTable {
    let mut t = LockTable::new();
    for (i, s) in [A, B, C].into_iter().enumerate() {
        t.apply(
            i as u64 + 1,
            &Command::OpenSession {
                session: s,
                node: NodeId(s.0),
                name: NodeName(format!("n{}", s.0)),
                ttl_ms: 1000,
            },
        );
    }
    t
}

fn acquire(
    t: &mut LockTable,
    index: u64,
    s: SessionId,
    r: u64,
    lock: &str,
    wait: bool,
) -> Vec<Effect> {
    t.apply(
        index,
        &Command::Acquire {
            key: key(s, r),
            lock: name(lock),
            wait,
        },
    )
}

fn release(
    t: &mut LockTable,
    index: u64,
    s: SessionId,
    r: u64,
    lock: &str,
    token: u64,
) -> Vec<Effect> {
    t.apply(
        index,
        &Command::Release {
            key: key(s, r),
            lock: name(lock),
            token: FencingToken(token),
        },
    )
}

/// Rule "Acquire: free -> granted at this entry"; token = entry index.
#[test]
fn free_lock_is_granted_with_the_entry_index_as_token() {
    let mut t = table();
    assert_eq!(
        acquire(&mut t, 10, A, 1, "x", true),
        vec![reply(A, 1, Outcome::Granted(FencingToken(10)))]
    );
    let info = t.holder(&name("x")).unwrap();
    assert_eq!(
        (info.token, info.session, info.waiters),
        (FencingToken(10), A, 0)
    );
    assert_eq!(info.holder.as_str(), "n1");
}

/// Rule "Held: the request joins the FIFO queue"; "No herd: only the granted waiter is woken".
#[test]
fn release_grants_only_the_head_waiter_in_the_same_entry() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    assert_eq!(
        acquire(&mut t, 11, B, 1, "x", true),
        vec![reply(B, 1, Outcome::Queued)]
    );
    assert_eq!(
        acquire(&mut t, 12, C, 1, "x", true),
        vec![reply(C, 1, Outcome::Queued)]
    );
    assert_eq!(
        release(&mut t, 13, A, 2, "x", 10),
        vec![
            reply(B, 1, Outcome::Granted(FencingToken(13))),
            reply(A, 2, Outcome::Released)
        ]
    );
    assert_eq!(t.holder(&name("x")).unwrap().waiters, 1, "C still waits");
    assert_eq!(
        release(&mut t, 14, B, 2, "x", 13),
        vec![
            reply(C, 1, Outcome::Granted(FencingToken(14))),
            reply(B, 2, Outcome::Released)
        ]
    );
}

/// Rule "or fails at once for try_lock".
#[test]
fn try_lock_on_a_held_lock_is_busy_and_does_not_queue() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    assert_eq!(
        acquire(&mut t, 11, B, 1, "x", false),
        vec![reply(B, 1, Outcome::Busy)]
    );
    assert_eq!(t.holder(&name("x")).unwrap().waiters, 0);
}

/// Rule "a stale guard can never release a later holder's lock".
#[test]
fn stale_token_cannot_release() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    release(&mut t, 11, A, 2, "x", 10);
    acquire(&mut t, 12, B, 1, "x", true);
    // A's old token, and B's lock with a wrong token.
    assert_eq!(
        release(&mut t, 13, A, 3, "x", 10),
        vec![reply(A, 3, Outcome::NotHolder)]
    );
    assert_eq!(
        release(&mut t, 14, B, 2, "x", 10),
        vec![reply(B, 2, Outcome::NotHolder)]
    );
    assert_eq!(t.holder(&name("x")).unwrap().token, FencingToken(12));
}

/// Rule "Idempotence: a retried request returns the first result, never a second grant".
#[test]
fn retry_returns_the_first_result() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    release(&mut t, 11, A, 2, "x", 10);
    acquire(&mut t, 12, B, 1, "x", true);
    // A's first acquire is retried after B took the lock: same answer, no grant.
    assert_eq!(
        acquire(&mut t, 13, A, 1, "x", true),
        vec![reply(A, 1, Outcome::Granted(FencingToken(10)))]
    );
    assert_eq!(t.holder(&name("x")).unwrap().session, B);
    // Below the acknowledgement floor: ignored entirely.
    t.apply(
        14,
        &Command::Acquire {
            key: RequestKey {
                session: A,
                request: RequestId(5),
                floor: RequestId(5),
            },
            lock: name("y"),
            wait: true,
        },
    );
    assert!(
        acquire(&mut t, 15, A, 1, "x", true).is_empty(),
        "request 1 is below the floor"
    );
    assert_eq!(
        t.outcome(A, RequestId(1)),
        None,
        "forgotten below the floor"
    );
}

/// Cancel rule: a queued waiter leaves the queue.
#[test]
fn cancel_removes_a_queued_waiter() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    acquire(&mut t, 11, B, 1, "x", true);
    let fx = t.apply(
        12,
        &Command::Cancel {
            key: key(B, 2),
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
    assert_eq!(t.holder(&name("x")).unwrap().waiters, 0);
    // The release now frees the lock for good.
    assert_eq!(
        release(&mut t, 13, A, 2, "x", 10),
        vec![reply(A, 2, Outcome::Released)]
    );
    assert_eq!(t.lock_count(), 0);
}

/// Cancel rule: a cancel of a request that was granted meanwhile releases it.
#[test]
fn cancel_of_a_granted_request_releases_and_grants_the_next() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    acquire(&mut t, 11, B, 1, "x", true);
    let fx = t.apply(
        12,
        &Command::Cancel {
            key: key(A, 2),
            target: RequestId(1),
        },
    );
    assert_eq!(
        fx,
        vec![
            reply(A, 1, Outcome::Cancelled),
            reply(B, 1, Outcome::Granted(FencingToken(12))),
            reply(A, 2, Outcome::Released)
        ]
    );
}

/// Cancel rule: a cancel that overtakes its acquire makes the acquire a no-op.
#[test]
fn cancel_before_the_acquire_arrives_makes_it_a_no_op() {
    let mut t = table();
    t.apply(
        10,
        &Command::Cancel {
            key: key(A, 2),
            target: RequestId(1),
        },
    );
    assert_eq!(
        acquire(&mut t, 11, A, 1, "x", true),
        vec![reply(A, 1, Outcome::Cancelled)]
    );
    assert!(t.holder(&name("x")).is_none());
}

/// Rules "A session ends by ExpireSession", "a waiter whose session expired is never granted".
#[test]
fn expiry_drops_waiters_and_frees_locks_for_a_handoff() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    acquire(&mut t, 11, B, 1, "x", true);
    acquire(&mut t, 12, C, 1, "x", true);
    acquire(&mut t, 13, B, 2, "y", true);
    let fx = t.apply(
        14,
        &Command::ExpireSession {
            session: B,
            lock_delay: false,
        },
    );
    // B's waiter is dropped; y had no waiters and no delay, so it is simply free.
    assert_eq!(
        fx,
        vec![
            reply(B, 1, Outcome::NoSession),
            Effect::SessionEnded {
                session: B,
                expired: true
            },
        ]
    );
    assert!(t.holder(&name("y")).is_none());
    let fx = t.apply(
        15,
        &Command::ExpireSession {
            session: A,
            lock_delay: false,
        },
    );
    assert_eq!(
        fx,
        vec![
            Effect::AwaitingHandoff {
                lock: name("x"),
                freed_at: 15,
                delayed: false
            },
            Effect::SessionEnded {
                session: A,
                expired: true
            },
        ]
    );
    // The handoff grants C (B's place was dropped), at the handoff's own index.
    let fx = t.apply(
        16,
        &Command::Handoff {
            lock: name("x"),
            freed_at: 15,
        },
    );
    assert_eq!(fx, vec![reply(C, 1, Outcome::Granted(FencingToken(16)))]);
    assert!(!t.session_exists(B));
}

/// Rule "Lock-delay: after a lock is freed by session expiry, it is not granted again for a delay".
#[test]
fn lock_delay_keeps_an_expired_lock_ungranted_until_the_handoff() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    t.apply(
        11,
        &Command::ExpireSession {
            session: A,
            lock_delay: true,
        },
    );
    assert_eq!(
        t.pending_handoffs(),
        vec![PendingHandoff {
            lock: name("x"),
            freed_at: 11,
            delayed: true
        }]
    );
    assert_eq!(
        acquire(&mut t, 12, B, 1, "x", false),
        vec![reply(B, 1, Outcome::Busy)]
    );
    assert_eq!(
        acquire(&mut t, 13, C, 1, "x", true),
        vec![reply(C, 1, Outcome::Queued)]
    );
    // A stale handoff (another freeing) does nothing.
    assert!(t
        .apply(
            14,
            &Command::Handoff {
                lock: name("x"),
                freed_at: 3
            }
        )
        .is_empty());
    assert_eq!(
        t.apply(
            15,
            &Command::Handoff {
                lock: name("x"),
                freed_at: 11
            }
        ),
        vec![reply(C, 1, Outcome::Granted(FencingToken(15)))]
    );
    assert!(t.pending_handoffs().is_empty());
}

/// Rule "Graceful close": no waiters, no delay -> free at once.
#[test]
fn close_without_waiters_frees_at_once() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    let fx = t.apply(11, &Command::CloseSession { session: A });
    assert_eq!(
        fx,
        vec![Effect::SessionEnded {
            session: A,
            expired: false
        }]
    );
    assert_eq!(
        acquire(&mut t, 12, B, 1, "x", false),
        vec![reply(B, 1, Outcome::Granted(FencingToken(12)))]
    );
    // Requests of a closed session are answered NoSession.
    assert_eq!(
        acquire(&mut t, 13, A, 2, "z", true),
        vec![reply(A, 2, Outcome::NoSession)]
    );
}

/// Rule "Fencing token increases strictly for each lock and across all locks".
#[test]
fn tokens_are_unique_across_locks_and_rise_per_lock() {
    let mut t = table();
    let mut tokens = Vec::new();
    let mut index = 10;
    for round in 0..5u64 {
        for (s, lock) in [(A, "x"), (B, "y"), (C, "z")] {
            let fx = acquire(&mut t, index, s, round * 2 + 1, lock, true);
            if let [Effect::Reply {
                outcome: Outcome::Granted(tok),
                ..
            }] = fx.as_slice()
            {
                tokens.push(tok.get());
            }
            index += 1;
            release(&mut t, index, s, round * 2 + 2, lock, index - 1);
            index += 1;
        }
    }
    assert_eq!(tokens.len(), 15);
    assert!(tokens.windows(2).all(|w| w[0] < w[1]));
}

/// Snapshots: a restored table equals the original and behaves the same.
#[test]
fn snapshot_round_trip_preserves_state_and_behaviour() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    acquire(&mut t, 11, B, 1, "x", true);
    t.apply(
        12,
        &Command::ExpireSession {
            session: C,
            lock_delay: true,
        },
    );
    let bytes = t.encode_snapshot();
    let mut r = LockTable::restore(&bytes).unwrap();
    assert_eq!(r, t);
    assert_eq!(r.state_hash(), t.state_hash());
    assert_eq!(
        release(&mut r, 13, A, 2, "x", 10),
        release(&mut t, 13, A, 2, "x", 10)
    );
    assert_eq!(r.state_hash(), t.state_hash());
}

/// Snapshots from outside never panic the node: garbage is a typed error.
#[test]
fn restore_rejects_garbage_without_panicking() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    let bytes = t.encode_snapshot();
    assert!(matches!(LockTable::restore(&[]), Err(DecodeError::Empty)));
    let mut wrong = bytes.clone();
    wrong[0] = 99;
    assert!(matches!(
        LockTable::restore(&wrong),
        Err(DecodeError::Version(99))
    ));
    for cut in 1..bytes.len() {
        assert!(
            LockTable::restore(&bytes[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut x: u32 = 12345;
    for len in 0..300 {
        let mut junk = vec![SNAPSHOT_VERSION_FOR_TESTS];
        for _ in 0..len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            junk.push((x >> 16) as u8);
        }
        let _ = LockTable::restore(&junk);
    }
}

const SNAPSHOT_VERSION_FOR_TESTS: u8 = snapshot::SNAPSHOT_VERSION;

/// Apply is idempotent per index: re-applying an old entry is a no-op.
#[test]
fn reapplying_an_old_index_is_a_no_op() {
    let mut t = table();
    acquire(&mut t, 10, A, 1, "x", true);
    let before = t.clone();
    assert!(acquire(&mut t, 10, B, 1, "x", true).is_empty());
    assert!(acquire(&mut t, 5, B, 1, "x", true).is_empty());
    assert_eq!(t, before);
}

/// Commands decode only from well-formed, versioned bytes.
#[test]
fn command_decoding_refuses_bad_bytes() {
    let cmd = Command::Acquire {
        key: key(A, 1),
        lock: name("x"),
        wait: true,
    };
    let bytes = cmd.encode();
    assert_eq!(Command::decode(&bytes).unwrap(), cmd);
    assert!(matches!(Command::decode(&[]), Err(DecodeError::Empty)));
    assert!(matches!(
        Command::decode(&[7, 1, 2]),
        Err(DecodeError::Version(7))
    ));
    for cut in 1..bytes.len() {
        assert!(Command::decode(&bytes[..cut]).is_err());
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Command::decode(&trailing).is_err());
}
