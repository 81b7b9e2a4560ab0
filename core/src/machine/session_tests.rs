//! The state machine's rules for sessions: expiry, close, lock-delay and
//! the leader's `Handoff` entries (see `tests.rs` for the helpers).

use super::tests::*;
use super::*;

/// Rules "A session ends by an `ExpireSession` entry"; "a waiter whose
/// session ended is never granted"; freed locks wait for a `Handoff`.
#[test]
fn expiry_drops_waiters_and_frees_locks_for_a_handoff() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    acq(&mut t, 12, C, 1, "x", true);
    acq(&mut t, 13, B, 2, "y", true);
    // B's waiter is dropped; y had no waiters and no delay: simply free.
    let fx = expire(&mut t, 14, B, false);
    assert_eq!(fx, vec![reply(B, 1, Outcome::NoSession), ended(B, true)]);
    assert!(t.holder(&name("y")).is_none());
    assert_eq!(waiters(&t, "x"), vec![(C, RequestId(1))]);
    // x has a waiter: nothing is granted in the expiring entry.
    let fx = expire(&mut t, 15, A, false);
    assert_eq!(fx, vec![awaiting("x", 15, false), ended(A, true)]);
    assert!(t.holder(&name("x")).is_none());
    assert_eq!(
        acq(&mut t, 16, B, 9, "x", true),
        vec![reply(B, 9, Outcome::NoSession)]
    );
    // The handoff grants C, at the handoff's own index.
    assert_eq!(handoff(&mut t, 17, "x", 15), vec![granted(C, 1, 17)]);
    assert!(t.pending_handoffs().is_empty());
    assert_eq!(t.sessions().len(), 1);
}

/// Rule "Lock-delay: after a lock is freed by session expiry (not by a
/// clean release), it is not granted again" until the leader's `Handoff`.
#[test]
fn lock_delay_keeps_an_expired_lock_ungranted_until_the_handoff() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    assert_eq!(
        expire(&mut t, 11, A, true),
        vec![awaiting("x", 11, true), ended(A, true)]
    );
    let pending = PendingHandoff {
        lock: name("x"),
        freed_at: 11,
        delayed: true,
    };
    assert_eq!(t.pending_handoffs(), vec![pending]);
    assert_eq!(
        acq(&mut t, 12, B, 1, "x", false),
        vec![reply(B, 1, Outcome::Busy)]
    );
    assert_eq!(
        acq(&mut t, 13, C, 1, "x", true),
        vec![reply(C, 1, Outcome::Queued)]
    );
    assert!(t.holder(&name("x")).is_none());
    assert_eq!(handoff(&mut t, 14, "x", 11), vec![granted(C, 1, 14)]);
    assert!(t.pending_handoffs().is_empty());
}

/// Rule for `Handoff`: it acts only on the freeing it names, so a stale or
/// duplicated handoff never cuts a later lock-delay short.
#[test]
fn stale_handoff_does_nothing() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    expire(&mut t, 11, A, true);
    acq(&mut t, 12, B, 1, "x", true);
    let before = t.clone();
    assert!(handoff(&mut t, 13, "x", 3).is_empty());
    assert!(handoff(&mut t, 14, "y", 11).is_empty());
    assert_eq!(
        (t.locks.clone(), t.sessions.clone()),
        (before.locks, before.sessions)
    );
    assert_eq!(handoff(&mut t, 15, "x", 11), vec![granted(B, 1, 15)]);
    assert!(
        handoff(&mut t, 16, "x", 11).is_empty(),
        "a duplicate is stale too"
    );
    assert_eq!(t.holder(&name("x")).unwrap().token, FencingToken(15));
}

/// Graceful close: a lock with no waiters and no delay is free at once,
/// and the closed session's later requests are answered `NoSession`.
#[test]
fn close_without_waiters_frees_at_once() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    assert_eq!(
        t.apply(11, &Command::CloseSession { session: A }),
        vec![ended(A, false)]
    );
    assert_eq!(acq(&mut t, 12, B, 1, "x", false), vec![granted(B, 1, 12)]);
    assert_eq!(
        acq(&mut t, 13, A, 2, "z", true),
        vec![reply(A, 2, Outcome::NoSession)]
    );
    assert!(t
        .apply(14, &Command::CloseSession { session: A })
        .is_empty());
}

/// Graceful close with waiters: the lock awaits an undelayed handoff (one
/// grant per entry), and a handoff that finds no waiter left drops it.
#[test]
fn close_with_waiters_awaits_an_undelayed_handoff() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    let fx = t.apply(12, &Command::CloseSession { session: A });
    assert_eq!(fx, vec![awaiting("x", 12, false), ended(A, false)]);
    cancel(&mut t, 13, B, 2, 1);
    assert_eq!(t.lock_count(), 1, "still awaiting its handoff");
    assert!(handoff(&mut t, 14, "x", 12).is_empty());
    assert_eq!(t.lock_count(), 0);
}

/// Sessions are opened by a log entry; opening an open session again is a
/// no-op answered `Opened`.
#[test]
fn open_session_is_idempotent() {
    let mut t = LockTable::new();
    let opened = reply(A, 0, Outcome::Opened);
    let fx = open(&mut t, 1, A);
    assert_eq!(
        fx,
        vec![Effect::SessionOpened { session: A }, opened.clone()]
    );
    acq(&mut t, 2, A, 1, "x", true);
    assert_eq!(open(&mut t, 3, A), vec![opened]);
    assert_eq!(t.locks_of(A).len(), 1, "the open session kept its lock");
    let info = SessionInfo {
        session: A,
        node: NodeId(1),
        name: NodeName("n1".into()),
        ttl_ms: 1000,
    };
    assert_eq!(t.sessions(), vec![info]);
}
