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
