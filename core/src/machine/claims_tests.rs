//! One test per rule of issue 11's primitives (read-write locks,
//! semaphores, multi-locks), each asserting the whole effect list of the
//! entry it applies, like `tests.rs` does for the mutex.

use super::tests::*;
use super::*;

const X: ClaimKind = ClaimKind::Exclusive;
const S: ClaimKind = ClaimKind::Shared;

fn p(n: u32, count: u32) -> ClaimKind {
    ClaimKind::Permits { n, count }
}

pub(super) fn claims(
    t: &mut LockTable,
    i: u64,
    s: SessionId,
    r: u64,
    want: &[(&str, ClaimKind)],
    wait: bool,
) -> Vec<Effect> {
    let claims = want
        .iter()
        .map(|(n, kind)| Claim {
            lock: name(n),
            kind: *kind,
        })
        .collect();
    let key = key(s, r);
    t.apply(i, &Command::AcquireClaims { key, claims, wait })
}

pub(super) fn release(t: &mut LockTable, i: u64, s: SessionId, r: u64, grant: u64) -> Vec<Effect> {
    let (key, grant) = (key(s, r), RequestId(grant));
    t.apply(i, &Command::ReleaseGrant { key, grant })
}

fn queued(s: SessionId, r: u64) -> Effect {
    reply(s, r, Outcome::Queued)
}

fn released(s: SessionId, r: u64) -> Effect {
    reply(s, r, Outcome::Released)
}

/// The `(session, token)` of every grant on `lock`.
fn grants(t: &LockTable, lock: &str) -> Vec<(SessionId, u64)> {
    t.holders(&name(lock))
        .map(|i| i.holders.iter().map(|g| (g.session, g.token.0)).collect())
        .unwrap_or_default()
}

/// Readers share; a writer waits for every reader; a reader that comes
/// after a waiting writer waits behind it (no writer starvation); the
/// writer's token is above every read grant's before it.
#[test]
fn readers_share_and_a_writer_queued_first_goes_first() {
    let mut t = table();
    assert_eq!(
        claims(&mut t, 10, A, 1, &[("x", S)], true),
        [granted(A, 1, 10)]
    );
    assert_eq!(
        claims(&mut t, 11, B, 1, &[("x", S)], true),
        [granted(B, 1, 11)]
    );
    assert_eq!(claims(&mut t, 12, C, 1, &[("x", X)], true), [queued(C, 1)]);
    assert_eq!(claims(&mut t, 13, A, 2, &[("x", S)], true), [queued(A, 2)]);
    assert_eq!(release(&mut t, 14, A, 3, 1), [released(A, 3)]);
    assert_eq!(grants(&t, "x"), [(B, 11)]);
    assert_eq!(
        release(&mut t, 15, B, 2, 1),
        [granted(C, 1, 15), released(B, 2)]
    );
    // The writer's token (15) is above every read grant's before it.
    assert_eq!(grants(&t, "x"), [(C, 15)]);
    assert_eq!(
        release(&mut t, 16, C, 2, 1),
        [granted(A, 2, 16), released(C, 2)]
    );
}

/// Readers queued together behind a writer are granted together, in one
/// entry, with one token; a mutex (`Acquire`) is a write lock.
#[test]
fn consecutive_readers_are_granted_together_and_a_mutex_excludes_them() {
    let mut t = table();
    assert_eq!(acq(&mut t, 10, A, 1, "x", true), [granted(A, 1, 10)]);
    assert_eq!(claims(&mut t, 11, B, 1, &[("x", S)], true), [queued(B, 1)]);
    assert_eq!(claims(&mut t, 12, C, 1, &[("x", S)], true), [queued(C, 1)]);
    assert_eq!(
        rel(&mut t, 13, A, 2, "x", 10),
        [granted(B, 1, 13), granted(C, 1, 13), released(A, 2)]
    );
    assert_eq!(
        acq(&mut t, 14, A, 3, "x", false),
        [reply(A, 3, Outcome::Busy)]
    );
    assert_eq!(acq(&mut t, 15, A, 4, "x", true), [queued(A, 4)]);
    release(&mut t, 16, B, 2, 1);
    assert_eq!(
        release(&mut t, 17, C, 2, 1),
        [granted(A, 4, 17), released(C, 2)]
    );
    // `Release` frees a mutex grant only; a read lock is released whole.
    claims(&mut t, 18, B, 3, &[("y", S)], true);
    assert_eq!(
        rel(&mut t, 19, B, 4, "y", 18),
        [reply(B, 4, Outcome::NotHolder)]
    );
}

/// A large permit request at the head is not starved by smaller ones
/// behind it, and small requests behind a release are granted together.
#[test]
fn a_big_permit_request_is_not_overtaken_by_small_ones() {
    let mut t = table();
    assert_eq!(
        claims(&mut t, 10, A, 1, &[("s", p(2, 3))], true),
        [granted(A, 1, 10)]
    );
    assert_eq!(
        claims(&mut t, 11, B, 1, &[("s", p(3, 3))], true),
        [queued(B, 1)]
    );
    // One permit is free, but B queued first.
    assert_eq!(
        claims(&mut t, 12, C, 1, &[("s", p(1, 3))], true),
        [queued(C, 1)]
    );
    assert_eq!(
        claims(&mut t, 13, C, 2, &[("s", p(1, 3))], false),
        [reply(C, 2, Outcome::Busy)]
    );
    assert_eq!(
        claims(&mut t, 14, A, 2, &[("s", p(1, 3))], true),
        [queued(A, 2)]
    );
    assert_eq!(
        release(&mut t, 15, A, 3, 1),
        [granted(B, 1, 15), released(A, 3)]
    );
    assert_eq!(
        release(&mut t, 16, B, 2, 1),
        [granted(C, 1, 16), granted(A, 2, 16), released(B, 2)]
    );
    let info = t.holders(&name("s")).unwrap();
    assert_eq!(
        (info.kind, info.permits_used, info.holders.len()),
        (NameKind::Semaphore { count: 3 }, 2, 2)
    );
}

/// While a name is in use its kind and count are fixed: a request that
/// disagrees is refused and changes nothing. Once free, the name leaves
/// the table and its kind is forgotten.
#[test]
fn a_name_in_use_refuses_another_kind_or_count() {
    let mut t = table();
    claims(&mut t, 10, A, 1, &[("s", p(1, 3))], true);
    acq(&mut t, 11, A, 2, "x", true);
    let sem = NameKind::Semaphore { count: 3 };
    let wrong = |claim, actual| Outcome::WrongKind { claim, actual };
    let hash = t.state_hash();
    let cases: [(&[(&str, ClaimKind)], Outcome); 4] = [
        (&[("s", p(1, 4))], wrong(0, sem)),
        (&[("y", X), ("s", S)], wrong(1, sem)),
        (&[("x", p(1, 1))], wrong(0, NameKind::Lock)),
        (&[("s", X)], wrong(0, sem)),
    ];
    for (n, (want, out)) in cases.iter().enumerate() {
        let r = 10 + n as u64;
        assert_eq!(
            claims(&mut t, 20 + r, B, r, want, true),
            [reply(B, r, *out)]
        );
    }
    assert_eq!(
        acq(&mut t, 40, B, 20, "s", true),
        [reply(B, 20, wrong(0, sem))]
    );
    assert_eq!(waiters(&t, "s"), []);
    assert_eq!(t.lock_entries(), 2);
    assert_ne!(t.state_hash(), hash, "only the outcomes are recorded");
    release(&mut t, 41, A, 3, 1);
    assert_eq!(t.holders(&name("s")), None, "forgotten once free");
    assert_eq!(
        claims(&mut t, 42, B, 21, &[("s", p(4, 4))], true),
        [granted(B, 21, 42)]
    );
}

/// Limits are answered `Invalid` and change nothing.
#[test]
fn claims_past_the_limits_are_invalid() {
    let mut t = table();
    let invalid = |e| Outcome::Invalid(e);
    let too_many: Vec<String> = (0..=MAX_CLAIMS).map(|i| format!("l{i}")).collect();
    let too_many: Vec<(&str, ClaimKind)> = too_many.iter().map(|n| (n.as_str(), X)).collect();
    let cases: [(&[(&str, ClaimKind)], ClaimError); 5] = [
        (&[], ClaimError::Empty),
        (&too_many, ClaimError::TooMany),
        (&[("a", S), ("a", X)], ClaimError::Duplicate(1)),
        (&[("s", p(0, 3))], ClaimError::NoPermits(0)),
        (&[("s", p(4, 3))], ClaimError::OverCount(0)),
    ];
    for (n, (want, e)) in cases.iter().enumerate() {
        let r = 1 + n as u64;
        assert_eq!(
            claims(&mut t, 10 + r, A, r, want, true),
            [reply(A, r, invalid(*e))]
        );
    }
    assert_eq!((t.lock_count(), t.lock_entries()), (0, 0));
}

/// A multi-lock is granted in one entry with one token on all its names,
/// or not at all: while one name is held it holds none, and a later
/// request never overtakes it on a name they share.
#[test]
fn a_multi_lock_is_all_or_nothing_and_never_overtaken() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "b", true);
    assert_eq!(
        claims(&mut t, 11, B, 1, &[("a", X), ("b", X)], false),
        [reply(B, 1, Outcome::Busy)]
    );
    assert_eq!(t.lock_count(), 1, "a try changes nothing");
    assert_eq!(
        claims(&mut t, 12, B, 2, &[("a", X), ("b", X)], true),
        [queued(B, 2)]
    );
    assert_eq!(grants(&t, "a"), [], "no partial grant");
    // `a` is free, but B queued there first.
    assert_eq!(acq(&mut t, 13, C, 1, "a", true), [queued(C, 1)]);
    assert_eq!(claims(&mut t, 14, C, 2, &[("a", S)], true), [queued(C, 2)]);
    // A name B does not want goes at once.
    assert_eq!(
        claims(&mut t, 15, C, 3, &[("c", X)], true),
        [granted(C, 3, 15)]
    );
    assert_eq!(
        rel(&mut t, 16, A, 2, "b", 10),
        [granted(B, 2, 16), released(A, 2)]
    );
    assert_eq!(
        (grants(&t, "a"), grants(&t, "b")),
        (vec![(B, 16)], vec![(B, 16)])
    );
    assert_eq!(
        t.locks_of(B),
        [(name("a"), FencingToken(16)), (name("b"), FencingToken(16))]
    );
    assert_eq!(
        release(&mut t, 17, B, 3, 2),
        [granted(C, 1, 17), released(B, 3)]
    );
    assert_eq!(t.lock_count(), 2, "b left the table");
}

/// Two multi-locks asking for the same names in opposite orders do not
/// deadlock: neither holds anything while it waits, and the one queued
/// first is granted first.
#[test]
fn multi_locks_in_opposite_orders_do_not_deadlock() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "a", true);
    assert_eq!(
        claims(&mut t, 11, B, 1, &[("a", X), ("b", X)], true),
        [queued(B, 1)]
    );
    assert_eq!(
        claims(&mut t, 12, C, 1, &[("b", X), ("a", X)], true),
        [queued(C, 1)]
    );
    assert_eq!(grants(&t, "b"), []);
    assert_eq!(
        rel(&mut t, 13, A, 2, "a", 10),
        [granted(B, 1, 13), released(A, 2)]
    );
    assert_eq!(
        release(&mut t, 14, B, 2, 1),
        [granted(C, 1, 14), released(B, 2)]
    );
}

/// A multi-lock's one token is above each of its locks' previous tokens;
/// tokens never fall per name.
#[test]
fn a_multi_lock_token_is_above_each_locks_previous_tokens() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "a", true);
    claims(&mut t, 11, B, 1, &[("b", S)], true);
    claims(&mut t, 12, C, 1, &[("a", X), ("b", X)], true);
    rel(&mut t, 13, A, 2, "a", 10);
    assert_eq!(
        release(&mut t, 14, B, 2, 1),
        [granted(C, 1, 14), released(B, 2)]
    );
    let (a, b) = (grants(&t, "a"), grants(&t, "b"));
    assert_eq!((a, b), (vec![(C, 14)], vec![(C, 14)]));
}

/// Cancelling a queued request that held others back lets them in, in
/// the cancel's entry; cancelling a granted one releases all its names.
#[test]
fn cancel_of_a_head_waiter_lets_the_next_in() {
    let mut t = table();
    claims(&mut t, 10, A, 1, &[("s", p(2, 3))], true);
    claims(&mut t, 11, B, 1, &[("s", p(3, 3))], true);
    claims(&mut t, 12, C, 1, &[("s", p(1, 3))], true);
    assert_eq!(
        cancel(&mut t, 13, B, 2, 1),
        [
            reply(B, 1, Outcome::Cancelled),
            granted(C, 1, 13),
            reply(B, 2, Outcome::Cancelled)
        ]
    );
    // A multi-lock holding back a single lock behind it.
    acq(&mut t, 14, A, 2, "b", true);
    claims(&mut t, 15, B, 3, &[("a", X), ("b", X)], true);
    acq(&mut t, 16, C, 2, "a", true);
    assert_eq!(
        cancel(&mut t, 17, B, 4, 3),
        [
            reply(B, 3, Outcome::Cancelled),
            granted(C, 2, 17),
            reply(B, 4, Outcome::Cancelled)
        ]
    );
    // Cancel of a granted multi-lock releases both names.
    claims(&mut t, 18, B, 5, &[("c", X), ("d", S)], true);
    assert_eq!(
        cancel(&mut t, 19, B, 6, 5),
        [
            reply(B, 5, Outcome::Cancelled),
            reply(B, 6, Outcome::Released)
        ]
    );
    assert_eq!((grants(&t, "c"), grants(&t, "d")), (vec![], vec![]));
}

/// A retried request gets its first outcome and never a second grant; a
/// release of a grant that ended is `NotHolder`.
#[test]
fn retries_are_idempotent_and_stale_releases_change_nothing() {
    let mut t = table();
    let want = [("a", S), ("s", p(1, 2))];
    assert_eq!(claims(&mut t, 10, A, 1, &want, true), [granted(A, 1, 10)]);
    assert_eq!(claims(&mut t, 11, A, 1, &want, true), [granted(A, 1, 10)]);
    assert_eq!(t.holders(&name("s")).unwrap().permits_used, 1);
    assert_eq!(t.lock_entries(), 2);
    assert_eq!(claims(&mut t, 12, B, 1, &[("a", X)], true), [queued(B, 1)]);
    assert_eq!(claims(&mut t, 13, B, 1, &[("a", X)], true), [queued(B, 1)]);
    assert_eq!(waiters(&t, "a").len(), 1);
    assert_eq!(
        release(&mut t, 14, A, 2, 1),
        [granted(B, 1, 14), released(A, 2)]
    );
    assert_eq!(release(&mut t, 15, A, 2, 1), [released(A, 2)], "retry");
    assert_eq!(
        release(&mut t, 16, A, 3, 1),
        [reply(A, 3, Outcome::NotHolder)]
    );
    assert_eq!(
        release(&mut t, 17, A, 4, 9),
        [reply(A, 4, Outcome::NotHolder)]
    );
    // `ReleaseGrant` also releases a mutex grant.
    acq(&mut t, 18, C, 1, "m", true);
    assert_eq!(release(&mut t, 19, C, 2, 1), [released(C, 2)]);
    assert_eq!(t.lock_count(), 1);
}

/// An expired session's grants of every kind go through the handoff and
/// its lock-delay before anyone else is granted what they held; two read
/// grants of one session on one name await one handoff.
#[test]
fn expiry_frees_every_kind_through_the_handoff() {
    let mut t = table();
    claims(&mut t, 10, A, 1, &[("r", S)], true);
    claims(&mut t, 11, A, 2, &[("r", S)], true);
    claims(&mut t, 12, B, 1, &[("r", S)], true);
    claims(&mut t, 13, A, 3, &[("s", p(2, 2))], true);
    claims(&mut t, 14, A, 4, &[("a", X), ("b", X)], true);
    claims(&mut t, 15, C, 1, &[("s", p(1, 2))], true);
    claims(&mut t, 16, C, 2, &[("a", X), ("b", X)], true);
    assert_eq!(
        expire(&mut t, 17, A, true),
        [
            awaiting("a", 17, true),
            awaiting("b", 17, true),
            awaiting("r", 17, true),
            awaiting("s", 17, true),
            ended(A, true)
        ]
    );
    assert_eq!(
        grants(&t, "r"),
        [(B, 12)],
        "the other reader keeps its grant"
    );
    // A reader fits beside the dead readers (issue 11: lock-delay keeps
    // only what they held); a writer would wait for the handoff.
    assert_eq!(
        claims(&mut t, 18, C, 3, &[("r", S)], true),
        [granted(C, 3, 18)]
    );
    assert_eq!(handoff(&mut t, 19, "r", 17), []);
    assert_eq!(handoff(&mut t, 20, "s", 17), [granted(C, 1, 20)]);
    assert_eq!(handoff(&mut t, 21, "a", 17), []);
    assert_eq!(grants(&t, "a"), [], "no partial grant");
    assert_eq!(handoff(&mut t, 22, "b", 17), [granted(C, 2, 22)]);
    assert!(t.pending_handoffs().is_empty());
    assert_eq!(t.lock_entries(), 5);
}

/// A session that ends while its request holds back a multi-lock behind
/// it lets that multi-lock in, in the same entry.
#[test]
fn a_session_end_lets_in_a_multi_lock_its_waiter_held_back() {
    let mut t = table();
    acq(&mut t, 10, A, 1, "c", true);
    claims(&mut t, 11, B, 1, &[("b", X), ("c", X)], true);
    assert_eq!(
        claims(&mut t, 12, C, 1, &[("a", X), ("b", X)], true),
        [queued(C, 1)]
    );
    assert_eq!(
        t.apply(13, &Command::CloseSession { session: B }),
        [
            reply(B, 1, Outcome::NoSession),
            granted(C, 1, 13),
            ended(B, false)
        ]
    );
}

/// The queries: `holders` lists every grant in grant order, `waiters`
/// the queue's head, and `holder` the oldest grant of a shared name.
#[test]
fn queries_report_every_grant_and_the_queue() {
    let mut t = table();
    claims(&mut t, 10, B, 1, &[("x", S)], true);
    claims(&mut t, 11, A, 1, &[("x", S)], true);
    claims(&mut t, 12, C, 1, &[("x", X)], true);
    acq(&mut t, 13, A, 2, "x", true);
    let info = t.holders(&name("x")).unwrap();
    let who: Vec<_> = info
        .holders
        .iter()
        .map(|g| (g.session, g.request.0, g.kind))
        .collect();
    assert_eq!(who, [(B, 1, S), (A, 1, S)]);
    assert_eq!(
        (info.kind, info.waiters, info.awaiting_handoff),
        (NameKind::Lock, 2, false)
    );
    let queue: Vec<_> = t
        .waiters(&name("x"), 1)
        .iter()
        .map(|w| (w.session, w.kind))
        .collect();
    assert_eq!(queue, [(C, X)]);
    let h = t.holder(&name("x")).unwrap();
    assert_eq!((h.session, h.token.0, h.waiters), (B, 10, 2));
    assert_eq!(
        t.request_state(A, RequestId(1)),
        Some(Outcome::Granted(FencingToken(11)))
    );
    assert_eq!(t.holders(&name("nope")), None);
}
