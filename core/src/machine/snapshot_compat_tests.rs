//! Snapshots written by earlier versions still restore: a data directory
//! keeps its snapshot across an upgrade, and a follower may be sent an old
//! leader's snapshot during a rolling one.

use super::tests::*;
use super::*;

/// The table the version 2 fixture was written from: a founded cluster,
/// a held lock with two waiters, a lock awaiting a delayed handoff with a
/// waiter, remembered outcomes, and a second lock held by the same session.
pub(super) fn v2_source() -> LockTable {
    let mut t = LockTable::new();
    t.apply(
        1,
        &Command::Found {
            cluster_id: 7,
            token_base: 1_000,
        },
    );
    for (i, s) in [(2, A), (3, B), (4, C)] {
        open(&mut t, i, s);
    }
    acq(&mut t, 10, A, 1, "x", true);
    acq(&mut t, 11, B, 1, "x", true);
    acq(&mut t, 12, C, 1, "x", true);
    acq(&mut t, 13, A, 2, "y", true);
    acq(&mut t, 14, B, 2, "z", true);
    acq(&mut t, 15, C, 2, "z", true);
    expire(&mut t, 16, B, true);
    acq(&mut t, 17, A, 3, "w", false);
    t
}

/// `v2_source()` encoded by the version 2 code (before issue 11's
/// primitives), byte for byte.
const V2_FIXTURE: &[u8] = &[
    0x02, 0x02, 0x01, 0x01, 0x02, 0x6e, 0x31, 0xfb, 0xe8, 0x03, 0x01, 0x03, 0x01, 0x01, 0xfb, 0xf2,
    0x03, 0x02, 0x01, 0xfb, 0xf5, 0x03, 0x03, 0x01, 0xfb, 0xf9, 0x03, 0x03, 0x01, 0x77, 0xfb, 0xf9,
    0x03, 0x01, 0x78, 0xfb, 0xf2, 0x03, 0x01, 0x79, 0xfb, 0xf5, 0x03, 0x00, 0x03, 0x03, 0x02, 0x6e,
    0x33, 0xfb, 0xe8, 0x03, 0x01, 0x02, 0x01, 0x02, 0x02, 0x02, 0x00, 0x02, 0x01, 0x01, 0x78, 0x02,
    0x01, 0x7a, 0x04, 0x01, 0x77, 0x01, 0x01, 0x03, 0xfb, 0xf9, 0x03, 0x00, 0x00, 0x01, 0x78, 0x01,
    0x01, 0x01, 0xfb, 0xf2, 0x03, 0x00, 0x01, 0x03, 0x01, 0x01, 0x79, 0x01, 0x01, 0x02, 0xfb, 0xf5,
    0x03, 0x00, 0x00, 0x01, 0x7a, 0x00, 0x01, 0x10, 0x01, 0x01, 0x03, 0x02, 0x11, 0x07, 0xfb, 0xe8,
    0x03, 0x01, 0x00,
];

/// A version 2 snapshot restores to the table the same commands build
/// today, and that table goes on behaving the same.
#[test]
fn a_version_2_snapshot_restores_to_the_same_table() {
    let mut old = LockTable::restore(V2_FIXTURE).unwrap();
    let mut new = v2_source();
    // The one difference: a version 2 image does not say what the expired
    // grant on "z" held, so its whole name awaits the handoff (the rule it
    // was written under); the table built now keeps B's exclusive grant,
    // which blocks the name just the same.
    let z = name("z");
    let kept = new.locks[&z].handoff.clone().unwrap();
    assert_eq!(kept.grants.len(), 1);
    assert!(kept.exclusive && !kept.whole);
    let mut like_old = new.clone();
    if let Some(l) = like_old.locks.get_mut(&z) {
        l.handoff = Some(lock::Awaiting::whole(kept.state()));
    }
    assert_eq!(old, like_old);
    assert_eq!(old.state_hash(), like_old.state_hash());
    assert_eq!(old.lock_entries(), 5, "rebuilt on restore");
    // The old layout the tests encode with is the one the old code wrote.
    assert_eq!(super::snapshot_v2::encode_v2(&new), V2_FIXTURE);
    for t in [&mut old, &mut new] {
        rel(t, 20, A, 4, "x", 1_010);
        handoff(t, 21, "z", 16);
        acq(t, 22, A, 5, "z", true);
    }
    assert_eq!(old, new);
    assert_eq!(
        old.holder(&name("x")).map(|i| (i.session, i.token.0)),
        Some((C, 1_020))
    );
    assert_eq!(
        old.holder(&name("z")).map(|i| (i.session, i.token.0)),
        Some((C, 1_021))
    );
}

/// Restore checks issue 11's invariants too: permits within the count, an
/// exclusive holder alone, grants of the name's kind, and every claim of
/// a session present on its name.
#[test]
fn restore_rejects_an_impossible_table_of_claims() {
    use super::claims_tests::claims;
    let mut t = table();
    let p2 = ClaimKind::Permits { n: 1, count: 2 };
    claims(
        &mut t,
        10,
        A,
        1,
        &[("s", p2), ("r", ClaimKind::Shared)],
        true,
    );
    claims(&mut t, 11, B, 1, &[("s", p2)], true);
    claims(&mut t, 12, C, 1, &[("r", ClaimKind::Exclusive)], true);
    let r = LockTable::restore(&t.encode_snapshot()).unwrap();
    assert_eq!(r, t);
    assert_eq!(r.holders(&name("s")).unwrap().permits_used, 2);
    let broken: [fn(&mut LockTable); 5] = [
        // A third permit of two.
        |t| {
            let s = t.locks.get_mut(&name("s")).unwrap();
            let share = lock::Share {
                token: FencingToken(11),
                permits: 1,
            };
            s.shared.insert((C, RequestId(1)), share);
        },
        // A writer beside a reader.
        |t| {
            let r = t.locks.get_mut(&name("r")).unwrap();
            r.holder = Some(lock::Holder {
                session: C,
                request: RequestId(1),
                token: FencingToken(12),
            });
        },
        // A semaphore's grant without permits (a reader's on a semaphore).
        |t| {
            let s = t.locks.get_mut(&name("s")).unwrap();
            s.shared.get_mut(&(B, RequestId(1))).unwrap().permits = 0;
        },
        // A claim its name does not have.
        |t| {
            t.locks
                .get_mut(&name("s"))
                .unwrap()
                .shared
                .remove(&(B, RequestId(1)));
        },
        // A count out of range.
        |t| {
            t.locks.get_mut(&name("s")).unwrap().kind = NameKind::Semaphore { count: 0 };
        },
    ];
    for (n, f) in broken.iter().enumerate() {
        let mut bad = t.clone();
        f(&mut bad);
        let err = LockTable::restore(&bad.encode_snapshot());
        assert!(
            matches!(err, Err(DecodeError::Malformed(_))),
            "case {n}: {err:?}"
        );
    }
}

/// Old images are read as lists of pairs (`snapshot_v2.rs`); a list the
/// old code's B-tree maps could not have written is refused.
#[test]
fn an_old_image_whose_names_are_out_of_order_or_twice_is_refused() {
    let a = (LockName::new("a").unwrap(), 1u8);
    let b = (LockName::new("b").unwrap(), 2u8);
    let sorted = super::snapshot_v2::sorted::<u8>;
    assert!(sorted(&[a.clone(), b.clone()], "locks").is_ok());
    assert!(sorted(&[], "locks").is_ok());
    let err = sorted(&[b.clone(), a.clone()], "locks").unwrap_err();
    assert!(err.contains("locks out of order at a"), "{err}");
    assert!(sorted(&[a.clone(), a], "locks").is_err());
}
