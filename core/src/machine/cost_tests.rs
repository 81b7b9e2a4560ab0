//! Issue 8 item 10, "costs that grow with the wrong thing", for the table:
//! each test counts the elements an operation visits (`cost.rs`), never
//! time, and asserts that the count follows the right thing.

use super::tests::*;
use super::*;

/// 10 000 waiters on one lock give up together: half cancel their acquire
/// (a `lock_timeout` ran out), half lose their session (expiry). Every node
/// applies all of it, so removing one waiter must not scan the queue: the
/// whole mass timeout costs O(waiters) steps, not O(waiters²) (the queue was
/// a `VecDeque` searched with `retain`: 50 million steps here).
#[test]
fn issue_8_ten_thousand_waiters_timing_out_together_cost_linear_steps() {
    const N: u64 = 10_000;
    let mut t = LockTable::new();
    let mut i = 0;
    let mut next = || {
        i += 1;
        i
    };
    for s in 1..=N + 1 {
        open(&mut t, next(), SessionId(s));
    }
    acq(&mut t, next(), SessionId(1), 1, "x", true);
    for s in 2..=N + 1 {
        acq(&mut t, next(), SessionId(s), 1, "x", true);
    }
    assert_eq!(waiters(&t, "x").len(), N as usize);
    cost::take();
    for s in 2..=N + 1 {
        if s % 2 == 0 {
            cancel(&mut t, next(), SessionId(s), 2, 1);
        } else {
            expire(&mut t, next(), SessionId(s), true);
        }
    }
    let steps = cost::take();
    assert!(waiters(&t, "x").is_empty());
    assert!(
        steps <= 2 * N,
        "{steps} steps to remove {N} waiters: removal scans the queue"
    );
}

/// 10 000 held locks and one awaiting a handoff: finding the pending
/// handoffs visits the one, not all 10 001 locks (the leader asks on every
/// tick while a handoff is pending). The index is derived state: a restored
/// table rebuilds it, and the snapshot bytes do not carry it.
#[test]
fn issue_8_pending_handoffs_cost_follows_pending_not_locks() {
    const N: u64 = 10_000;
    let mut t = table();
    for r in 1..=N {
        acq(&mut t, 10 + r, A, r, &format!("held/{r}"), true);
    }
    let i = 20 + N;
    acq(&mut t, i, B, 1, "x", true);
    acq(&mut t, i + 1, C, 1, "x", true);
    expire(&mut t, i + 2, B, true);
    cost::take();
    let pending = t.pending_handoffs();
    let steps = cost::take();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].lock.as_str(), pending[0].freed_at),
        ("x", i + 2)
    );
    assert!(
        steps <= 1,
        "{steps} locks visited to find 1 pending handoff"
    );
    assert_eq!(t.handoff_of(&name("x")), Some(i + 2));
    let restored = LockTable::restore(&t.encode_snapshot()).unwrap();
    assert_eq!(restored, t, "the index is rebuilt on restore");
    assert_eq!(restored.pending_handoffs(), pending);
    handoff(&mut t, i + 3, "x", i + 2);
    assert!(t.pending_handoffs().is_empty());
    assert_eq!(t.handoff_of(&name("x")), None);
}

/// One session's TTL is one lookup, whatever the number of sessions (the
/// driver asked for a clone of every session on each session open).
#[test]
fn issue_8_session_ttl_is_one_lookup() {
    let mut t = LockTable::new();
    for s in 1..=1_000 {
        open(&mut t, s, SessionId(s));
    }
    cost::take();
    assert_eq!(t.session_ttl_ms(SessionId(500)), Some(1000));
    assert_eq!(t.session_ttl_ms(SessionId(5_000)), None);
    assert!(cost::take() <= 2);
}

/// Issue 12 item 6: a page of `locks()` from a cursor visits the page, not
/// the names before the cursor nor the rest of the table (a range of the
/// ordered map; a scan and filter would visit all 10 000 names).
#[test]
fn issue_12_a_page_of_names_costs_the_page_not_the_table() {
    const N: u64 = 10_000;
    let mut t = table();
    for r in 1..=N {
        acq(&mut t, 10 + r, A, r, &format!("held/{r:05}"), true);
    }
    let cursor = LockName::new("held/05000").unwrap();
    cost::take();
    let page = t.names_after(Some(&cursor), 100);
    let steps = cost::take();
    let names: Vec<&str> = page.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"held/05001"));
    assert_eq!(names.len(), 100);
    assert!(steps <= 100, "{steps} steps for a page of 100");
    let last = t.names_after(Some(&LockName::new("held/09999").unwrap()), 100);
    assert_eq!(
        last.len(),
        1,
        "the page after the last but one holds one name"
    );
}
