//! The table's size limit (issue 8, item 5): an acquire that would pass
//! [`MAX_LOCK_ENTRIES`] is refused in the log, and a snapshot of a table at
//! the limit stays below what a follower accepts.

use super::tests::*;
use super::*;

/// A request that also acknowledges everything before it, as clients do
/// (so the table keeps no outcome history to speak of).
fn acquire(t: &mut LockTable, i: u64, s: SessionId, r: u64, lock: &str, wait: bool) -> Outcome {
    let key = RequestKey {
        session: s,
        request: RequestId(r),
        floor: RequestId(r),
    };
    let fx = t.apply(
        i,
        &Command::Acquire {
            key,
            lock: name(lock),
            wait,
        },
    );
    fx.iter()
        .find_map(|e| match e {
            Effect::Reply {
                request, outcome, ..
            } if *request == RequestId(r) => Some(*outcome),
            _ => None,
        })
        .unwrap_or(Outcome::Queued)
}

#[test]
fn issue_8_an_acquire_past_the_limit_is_refused_and_changes_nothing() {
    let mut t = table();
    let mut i = 10;
    let mut r = 1;
    // Fill up: held locks, and one waiter.
    for n in 0..MAX_LOCK_ENTRIES - 1 {
        i += 1;
        r += 1;
        let out = acquire(&mut t, i, A, r, &format!("l{n}"), false);
        assert!(matches!(out, Outcome::Granted(_)), "{n}: {out:?}");
    }
    i += 1;
    assert_eq!(acquire(&mut t, i, B, 1, "l0", true), Outcome::Queued);
    assert_eq!(t.lock_entries(), MAX_LOCK_ENTRIES);
    let hash = t.state_hash();
    // A new lock, and a wait on a held one: refused, nothing changes.
    i += 1;
    assert_eq!(acquire(&mut t, i, B, 2, "new", false), Outcome::TableFull);
    i += 1;
    assert_eq!(acquire(&mut t, i, C, 1, "l1", true), Outcome::TableFull);
    assert_eq!(t.lock_entries(), MAX_LOCK_ENTRIES);
    // A retry gets the recorded outcome again.
    i += 1;
    assert_eq!(acquire(&mut t, i, C, 1, "l1", true), Outcome::TableFull);
    // A try on a held lock adds nothing: still just busy.
    i += 1;
    assert_eq!(acquire(&mut t, i, C, 2, "l1", false), Outcome::Busy);
    assert_ne!(t.state_hash(), hash, "the outcomes are recorded");
    // Room again after a release.
    i += 1;
    let token = t
        .locks
        .get(&name("l5"))
        .and_then(|l| l.holder)
        .unwrap()
        .token;
    rel(&mut t, i, A, r + 1, "l5", token.0);
    i += 1;
    assert!(matches!(
        acquire(&mut t, i, B, 3, "new", false),
        Outcome::Granted(_)
    ));
}

#[test]
fn issue_8_a_snapshot_at_the_limit_fits_what_a_follower_accepts() {
    // The longest names (256 bytes), half held, half waited on by another
    // session: the most bytes per entry. bincode's decode limit counts
    // every integer at 8 bytes, so the budget is checked at twice the
    // encoded size (long names are mostly bytes, counted once).
    const N: usize = 2_000;
    let mut t = table();
    let mut i = 10;
    for n in 0..N / 2 {
        let lock = format!("{n:0>256}");
        i += 1;
        acquire(&mut t, i, A, n as u64 + 1, &lock, false);
        i += 1;
        acquire(&mut t, i, B, n as u64 + 1, &lock, true);
    }
    assert_eq!(t.lock_entries(), N);
    let per_entry = t.encode_snapshot().len() / N;
    let at_limit = per_entry * MAX_LOCK_ENTRIES;
    assert!(
        2 * at_limit < MAX_SNAPSHOT_BYTES,
        "{per_entry} bytes per entry: {at_limit} bytes at the limit"
    );
}
