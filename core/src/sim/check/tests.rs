//! Tests of the client-side properties (S4, S5, convergence) on small
//! hand-built histories, and the builders the log tests share.

use std::time::Duration;

use super::{check, Property, Report};
use crate::sim::history::{Call, EventKind, FinalState, History, OpId, Outcome};
use crate::types::NodeId;

pub(super) fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

/// The details of `p`'s violations.
pub(super) fn found(r: &Report, p: Property) -> Vec<String> {
    r.violations
        .iter()
        .filter(|v| v.property == p)
        .map(|v| v.to_string())
        .collect()
}

/// Builds a history of client events; times in milliseconds.
pub(super) struct Events {
    h: History,
    next: OpId,
}

impl Events {
    pub(super) fn new() -> Self {
        let mut h = History::default();
        h.params.expect_s4 = true;
        Self { h, next: 0 }
    }

    /// An operation invoked at `inv`, completed at `done` (or never).
    pub(super) fn op(
        &mut self,
        p: u32,
        lock: &str,
        call: Call,
        inv: u64,
        done: Option<(u64, Outcome)>,
    ) -> &mut Self {
        self.next += 1;
        let op = self.next;
        self.h
            .push(ms(inv), p, lock, EventKind::Invoke { op, call });
        if let Some((at, outcome)) = done {
            self.h
                .push(ms(at), p, lock, EventKind::Complete { op, outcome });
        }
        self
    }

    pub(super) fn acquire(
        &mut self,
        p: u32,
        lock: &str,
        inv: u64,
        done: u64,
        token: u64,
    ) -> &mut Self {
        self.op(
            p,
            lock,
            Call::Acquire,
            inv,
            Some((done, Outcome::Granted { token })),
        )
    }

    pub(super) fn busy(&mut self, p: u32, lock: &str, inv: u64, done: u64) -> &mut Self {
        self.op(p, lock, Call::TryAcquire, inv, Some((done, Outcome::Busy)))
    }

    pub(super) fn release(
        &mut self,
        p: u32,
        lock: &str,
        token: u64,
        inv: u64,
        done: u64,
    ) -> &mut Self {
        self.op(
            p,
            lock,
            Call::Release { token },
            inv,
            Some((done, Outcome::Released)),
        )
    }

    pub(super) fn holder(
        &mut self,
        p: u32,
        lock: &str,
        inv: u64,
        done: u64,
        token: Option<u64>,
    ) -> &mut Self {
        self.op(
            p,
            lock,
            Call::Holder,
            inv,
            Some((done, Outcome::Holder { token })),
        )
    }

    pub(super) fn failed(
        &mut self,
        p: u32,
        lock: &str,
        call: Call,
        inv: u64,
        done: u64,
    ) -> &mut Self {
        let error = "timed out".to_owned();
        self.op(p, lock, call, inv, Some((done, Outcome::Failed { error })))
    }

    pub(super) fn held(
        &mut self,
        p: u32,
        lock: &str,
        token: u64,
        at: u64,
        held: bool,
    ) -> &mut Self {
        self.h
            .push(ms(at), p, lock, EventKind::Held { token, held });
        self
    }

    /// The history, events in time order.
    pub(super) fn build(&mut self) -> History {
        let mut h = self.h.clone();
        h.events.sort_by_key(|e| e.at);
        h
    }
}

// ---- S4 ----

#[test]
fn s4_sequential_holders_pass() {
    let h = Events::new()
        .acquire(1, "a", 0, 5, 5)
        .held(1, "a", 5, 10, true)
        .held(1, "a", 5, 20, true)
        .held(1, "a", 5, 25, false)
        .acquire(2, "a", 3, 28, 9)
        .held(2, "a", 9, 30, true)
        .held(2, "a", 9, 40, true)
        .held(3, "b", 11, 15, true)
        .build();
    let r = check(&h);
    assert!(found(&r, Property::S4SingleHolder).is_empty(), "{r}");
}

#[test]
fn s4_overlapping_holders_are_caught() {
    let h = Events::new()
        .held(1, "a", 5, 10, true)
        .held(2, "a", 9, 20, true)
        .held(1, "a", 5, 30, true)
        .build();
    let r = check(&h);
    let v = found(&r, Property::S4SingleHolder);
    assert_eq!(v.len(), 1, "{r}");
    assert!(v[0].contains("token 9 held from"), "{v:?}");
}

#[test]
fn s4_held_after_a_higher_grant_was_acknowledged_is_caught() {
    let h = Events::new()
        .acquire(2, "a", 0, 25, 9)
        .held(1, "a", 5, 30, true)
        .held(1, "a", 5, 31, true)
        .build();
    let r = check(&h);
    let v = found(&r, Property::S4SingleHolder);
    assert_eq!(v.len(), 1, "one report per token: {r}");
    assert!(v[0].contains("after token 9 was acknowledged"), "{v:?}");
}

#[test]
fn s4_without_the_clock_bound_is_skipped_with_the_count() {
    let mut e = Events::new();
    e.held(1, "a", 5, 10, true)
        .held(2, "a", 9, 20, true)
        .held(1, "a", 5, 30, true);
    let mut h = e.build();
    h.params.expect_s4 = false;
    let r = check(&h);
    assert!(!r.violates(Property::S4SingleHolder));
    let (_, why) = r
        .skipped
        .iter()
        .find(|(p, _)| *p == Property::S4SingleHolder)
        .expect("skipped");
    assert!(why.contains("1 overlaps seen"), "{why}");
}

// ---- S5 ----

/// Grants, a queue, a holder lost unseen (token 9's session expired),
/// timeouts and a crash: linearizable, and nothing else is broken either.
#[test]
fn s5_clean_history_with_crashes_and_timeouts_passes() {
    let h = Events::new()
        .acquire(1, "a", 0, 10, 5)
        .held(1, "a", 5, 12, true)
        .busy(2, "a", 15, 20)
        .holder(3, "a", 20, 25, Some(5))
        // Timed out, but was granted token 9 after 5's release.
        .failed(2, "a", Call::Acquire, 22, 30)
        .failed(3, "a", Call::Holder, 26, 40)
        .held(1, "a", 5, 40, true)
        .release(1, "a", 5, 45, 50)
        .holder(3, "a", 60, 65, Some(9))
        // Queued behind 9; granted once 9's session expired.
        .acquire(4, "a", 55, 80, 12)
        .busy(2, "a", 62, 70)
        // A crash: never completes.
        .op(1, "a", Call::Acquire, 70, None)
        .holder(3, "a", 85, 90, Some(12))
        .held(4, "a", 12, 95, true)
        .holder(3, "a", 92, 94, Some(12))
        .op(
            2,
            "a",
            Call::Release { token: 9 },
            96,
            Some((97, Outcome::NotHeld)),
        )
        .release(4, "a", 12, 100, 105)
        .op(
            2,
            "a",
            Call::TryAcquire,
            110,
            Some((115, Outcome::Granted { token: 20 })),
        )
        .holder(3, "a", 120, 125, None)
        .build();
    let r = check(&h);
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.stats.indeterminate, 3);
}

#[test]
fn s5_grant_acknowledged_before_the_previous_release_began_is_caught() {
    let h = Events::new()
        .acquire(1, "a", 0, 10, 5)
        .release(1, "a", 5, 50, 55)
        .acquire(2, "a", 5, 30, 9)
        .build();
    let v = found(&check(&h), Property::S5Linearizable);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("must follow the release of token 5"), "{v:?}");
}

#[test]
fn s5_busy_while_provably_free_is_caught() {
    let h = Events::new()
        .acquire(1, "a", 0, 10, 5)
        .release(1, "a", 5, 20, 25)
        .busy(2, "a", 30, 35)
        .acquire(3, "a", 40, 50, 9)
        .busy(2, "a", 45, 55)
        .build();
    let v = found(&check(&h), Property::S5Linearizable);
    assert_eq!(v.len(), 1, "the second Busy may follow grant 9: {v:?}");
    assert!(v[0].contains("answered Busy"), "{v:?}");
}

#[test]
fn s5_busy_is_not_judged_once_an_acquire_is_indeterminate() {
    let h = Events::new()
        .acquire(1, "a", 0, 10, 5)
        .release(1, "a", 5, 20, 25)
        .op(3, "a", Call::Acquire, 28, None)
        .busy(2, "a", 30, 35)
        .build();
    assert!(check(&h).is_ok());
}

#[test]
fn s5_holder_of_a_superseded_token_is_caught() {
    let h = Events::new()
        .acquire(1, "a", 0, 10, 5)
        .acquire(2, "a", 5, 40, 9)
        .holder(3, "a", 45, 50, Some(5))
        // Not acknowledged to anyone, but 9 was: 7 cannot be read after.
        .holder(3, "a", 46, 52, Some(7))
        .build();
    let v = found(&check(&h), Property::S5Linearizable);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v
        .iter()
        .all(|d| d.contains("a higher token was acknowledged")));
}

#[test]
fn s5_holder_of_a_released_or_not_yet_granted_token_is_caught() {
    let h = Events::new()
        .holder(3, "a", 10, 15, Some(9))
        .acquire(2, "a", 30, 40, 9)
        .release(2, "a", 9, 50, 55)
        .holder(3, "a", 60, 65, Some(9))
        .build();
    let v = found(&check(&h), Property::S5Linearizable);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].contains("cannot have been granted before"), "{v:?}");
    assert!(v[1].contains("whose release was acknowledged"), "{v:?}");
}

#[test]
fn s5_holder_with_another_locks_token_is_caught() {
    let h = Events::new()
        .acquire(1, "b", 0, 10, 5)
        .holder(3, "a", 20, 25, Some(5))
        .build();
    let v = found(&check(&h), Property::S5Linearizable);
    assert_eq!(v.len(), 1, "{v:?}");
}

#[test]
fn s5_free_read_while_a_token_was_held_throughout_is_caught() {
    let mut e = Events::new();
    e.acquire(1, "a", 0, 10, 5)
        .holder(3, "a", 15, 20, None)
        .held(1, "a", 5, 30, true)
        // A release invoked before the read completed excuses it.
        .acquire(2, "b", 0, 10, 6)
        .op(2, "b", Call::Release { token: 6 }, 18, None)
        .holder(3, "b", 15, 20, None)
        .held(2, "b", 6, 30, true);
    let h = e.build();
    let v = found(&check(&h), Property::S5Linearizable);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("saw the lock free"), "{v:?}");

    let mut h = e.build();
    h.params.expect_s4 = false;
    assert!(!check(&h).violates(Property::S5Linearizable));
}

#[test]
fn s5_double_release_is_caught() {
    let h = Events::new()
        .acquire(1, "a", 0, 10, 5)
        .release(1, "a", 5, 20, 25)
        .release(1, "a", 5, 30, 35)
        .build();
    let v = found(&check(&h), Property::S5Linearizable);
    assert_eq!(v.len(), 1, "{v:?}");
}

// ---- convergence ----

#[test]
fn convergence_needs_equal_finals() {
    let node = |n: u64, applied: u64, hash: u64| FinalState {
        node: NodeId(n),
        applied,
        hash,
    };
    let mut h = History {
        finals: vec![node(1, 10, 7)],
        ..History::default()
    };
    let r = check(&h);
    assert!(r.skipped.iter().any(|(p, _)| *p == Property::Convergence));

    h.finals = vec![node(1, 10, 7), node(2, 10, 7), node(3, 10, 7)];
    assert!(check(&h).is_ok());

    h.finals = vec![node(1, 10, 7), node(2, 10, 8), node(3, 9, 7)];
    let v = found(&check(&h), Property::Convergence);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("hash 0000000000000008"), "{v:?}");
}

#[test]
fn log_properties_are_skipped_without_a_log() {
    let r = check(&Events::new().acquire(1, "a", 0, 10, 5).build());
    for p in [
        Property::S2LogOrder,
        Property::S6Durability,
        Property::S7Fifo,
    ] {
        assert!(
            r.skipped
                .iter()
                .any(|(q, why)| *q == p && why == "no committed log"),
            "{p:?}: {:?}",
            r.skipped
        );
    }
}
