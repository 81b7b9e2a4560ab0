//! Tests of the log properties (S2, S6, S7) on logs made by applying
//! commands with the real `LockTable`, as the simulator will record them,
//! and on tampered copies of those logs.

use super::tests::{found, ms, Events};
use super::{check, Property, Report};
use crate::machine::{Command, Effect, LockTable, Outcome, RequestKey};
use crate::sim::history::{Committed, History};
use crate::types::{FencingToken, LockName, NodeId, NodeName, RequestId, SessionId};

const LOG_PROPERTIES: [Property; 3] = [
    Property::S2LogOrder,
    Property::S6Durability,
    Property::S7Fifo,
];

/// Applies commands to a real table and records the log; entry `i` is
/// applied at `at(i)` ms.
struct Log {
    table: LockTable,
    entries: Vec<Committed>,
    index: u64,
}

fn at(i: u64) -> u64 {
    // Entry 15 is the handoff after entry 14's expiry: 100 ms of lock-delay.
    if i < 15 {
        i * 10
    } else {
        i * 10 + 100
    }
}

fn key(s: u64, r: u64) -> RequestKey {
    RequestKey {
        session: SessionId(s),
        request: RequestId(r),
        floor: RequestId(1),
    }
}

fn lock(name: &str) -> LockName {
    LockName::new(name).unwrap()
}

fn open(s: u64) -> Command {
    Command::OpenSession {
        session: SessionId(s),
        node: NodeId(s),
        name: NodeName(format!("n{s}")),
        ttl_ms: 1000,
    }
}

fn acquire(s: u64, r: u64, name: &str, wait: bool) -> Command {
    Command::Acquire {
        key: key(s, r),
        lock: lock(name),
        wait,
    }
}

fn release(s: u64, r: u64, name: &str, token: u64) -> Command {
    Command::Release {
        key: key(s, r),
        lock: lock(name),
        token: FencingToken(token),
    }
}

fn cancel(s: u64, r: u64, target: u64) -> Command {
    Command::Cancel {
        key: key(s, r),
        target: RequestId(target),
    }
}

impl Log {
    fn new() -> Self {
        Self {
            table: LockTable::new(),
            entries: Vec::new(),
            index: 0,
        }
    }

    /// Applies the next entry; `recorded: false` leaves it out of the log
    /// (a gap, as a snapshot makes).
    fn apply(&mut self, cmd: Command, recorded: bool) -> Vec<Effect> {
        self.index += 1;
        let effects = self.table.apply(self.index, &cmd);
        if recorded {
            self.entries.push(Committed {
                index: self.index,
                at: ms(at(self.index)),
                command: Some(cmd),
                effects: effects.clone(),
            });
        }
        effects
    }

    fn expect(&mut self, cmd: Command, outcome: Outcome) {
        let fx = self.apply(cmd, true);
        assert!(
            fx.iter()
                .any(|f| matches!(f, Effect::Reply { outcome: o, .. } if *o == outcome)),
            "entry {}: {fx:?} lacks {outcome:?}",
            self.index
        );
    }
}

fn granted(t: u64) -> Outcome {
    Outcome::Granted(FencingToken(t))
}

/// Four sessions contend for "a" with queued waiters, a retried acquire,
/// a cancel of a waiter, an expiry with lock-delay and its handoff, a cancel
/// that releases a grant, a close, and a gap (entry 19); clients saw the
/// grants and releases at times that fit.
fn machine_history() -> History {
    let mut l = Log::new();
    for s in 1..=4 {
        l.apply(open(s), true);
    }
    l.expect(acquire(1, 1, "a", true), granted(5));
    l.expect(acquire(2, 1, "a", true), Outcome::Queued); // 6
    l.expect(acquire(3, 1, "a", true), Outcome::Queued); // 7
    l.expect(acquire(4, 1, "a", true), Outcome::Queued); // 8
    l.expect(acquire(2, 1, "a", true), Outcome::Queued); // 9: a retry
    l.expect(release(1, 2, "a", 5), granted(10)); // to s2
    l.expect(cancel(3, 2, 1), Outcome::Cancelled); // 11: s3 leaves the queue
    l.expect(acquire(1, 3, "b", false), granted(12));
    l.expect(acquire(3, 3, "a", true), Outcome::Queued); // 13
    let fx = l.apply(
        Command::ExpireSession {
            session: SessionId(2),
            lock_delay: true,
        },
        true,
    ); // 14
    assert!(fx.contains(&Effect::AwaitingHandoff {
        lock: lock("a"),
        freed_at: 14,
        delayed: true
    }));
    l.expect(
        Command::Handoff {
            lock: lock("a"),
            freed_at: 14,
        },
        granted(15),
    ); // to s4
    l.expect(acquire(1, 4, "a", false), Outcome::Busy); // 16
    l.expect(cancel(4, 2, 1), granted(17)); // s4 gives up its grant: to s3
    l.apply(
        Command::CloseSession {
            session: SessionId(1),
        },
        true,
    ); // 18
    l.apply(open(5), false); // 19: a gap
    l.expect(acquire(5, 1, "a", true), Outcome::Queued); // 20
    l.expect(release(3, 4, "a", 17), granted(21)); // to s5
    l.expect(release(5, 2, "a", 21), Outcome::Released); // 22
    l.expect(acquire(5, 3, "a", true), granted(23));

    let mut e = Events::new();
    e.acquire(1, "a", 45, 55, 5)
        .acquire(2, "a", 55, 105, 10)
        .acquire(4, "a", 75, 255, 15)
        .release(1, "a", 5, 95, 105)
        .acquire(1, "b", 115, 125, 12)
        .acquire(3, "a", 125, 275, 17)
        .acquire(5, "a", 295, 315, 21)
        .release(3, "a", 17, 305, 315)
        .release(5, "a", 21, 315, 325)
        .acquire(5, "a", 325, 335, 23);
    let mut h = e.build();
    h.log = l.entries;
    h.params.lock_delay = ms(100);
    h
}

fn log_found(r: &Report) -> Vec<String> {
    LOG_PROPERTIES.iter().flat_map(|p| found(r, *p)).collect()
}

fn entry(h: &mut History, index: u64) -> &mut Committed {
    h.log.iter_mut().find(|c| c.index == index).unwrap()
}

/// Replaces the session and request of entry `index`'s grant.
fn regrant(h: &mut History, index: u64, s: u64, r: u64) {
    for fx in &mut entry(h, index).effects {
        if let Effect::Reply {
            session,
            request,
            outcome: Outcome::Granted(t),
        } = fx
        {
            if t.0 == index {
                *session = SessionId(s);
                *request = RequestId(r);
            }
        }
    }
}

#[test]
fn machine_log_passes() {
    let r = check(&machine_history());
    assert!(r.is_ok(), "{r}");
    assert!(r.skipped.iter().all(|(p, _)| !LOG_PROPERTIES.contains(p)));
}

/// Every window of up to four missing entries before the last is a gap
/// the checker must tolerate without a false alarm. (The tail is never
/// missing: the node that answered a client had applied it.)
#[test]
fn machine_log_with_any_gap_passes() {
    let full = machine_history();
    for from in 1..=22 {
        for len in (1..=4).filter(|len| from + len <= 23) {
            let mut h = full.clone();
            h.log.retain(|c| c.index < from || c.index >= from + len);
            let r = check(&h);
            assert!(log_found(&r).is_empty(), "gap {from}+{len}: {r}");
        }
    }
}

#[test]
fn swapped_grants_are_caught() {
    let mut h = machine_history();
    // Entry 10 hands "a" to s4 over the head s2, and entry 15 to s2.
    regrant(&mut h, 10, 4, 1);
    regrant(&mut h, 15, 2, 1);
    let v = found(&check(&h), Property::S7Fifo);
    assert!(
        v.iter().any(|d| d.contains("queued earlier, still waited")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|d| d.contains("which ended at entry 14")),
        "{v:?}"
    );
}

#[test]
fn grant_to_an_expired_session_is_caught() {
    let mut h = machine_history();
    regrant(&mut h, 17, 2, 1);
    let v = found(&check(&h), Property::S7Fifo);
    assert!(
        v.iter().any(|d| d.contains("which ended at entry 14")),
        "{v:?}"
    );
}

#[test]
fn handoff_before_the_lock_delay_is_caught() {
    let mut h = machine_history();
    entry(&mut h, 15).at = ms(200); // expiry at 140, lock-delay 100 ms
    let v = found(&check(&h), Property::S2LogOrder);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("lock-delay is 100ms"), "{v:?}");

    // Within the drift tolerance: 100 ms at 10 % fast is 10 ms early.
    h.params.max_clock_drift_ppm = 100_000;
    entry(&mut h, 15).at = ms(231);
    assert!(found(&check(&h), Property::S2LogOrder).is_empty());
}

#[test]
fn grant_while_held_is_caught() {
    let mut h = machine_history();
    // The try at entry 16 found "a" held by token 15; pretend it won.
    for fx in &mut entry(&mut h, 16).effects {
        if let Effect::Reply { outcome, .. } = fx {
            *outcome = granted(16);
        }
    }
    let r = check(&h);
    let v = found(&r, Property::S2LogOrder);
    assert!(
        v.iter()
            .any(|d| d.contains("while token 15 was neither released")),
        "{r}"
    );
    let v = found(&r, Property::S7Fifo);
    assert!(
        v.iter()
            .any(|d| d.contains("granted an acquire at once while")),
        "{r}"
    );
}

#[test]
fn release_that_grants_nobody_is_caught() {
    let mut h = machine_history();
    // Entry 10 frees token 5 but drops the hand-over to s2.
    entry(&mut h, 10).effects.retain(|f| {
        !matches!(
            f,
            Effect::Reply {
                outcome: Outcome::Granted(_),
                ..
            }
        )
    });
    let r = check(&h);
    let v = found(&r, Property::S7Fifo);
    assert!(
        v.iter()
            .any(|d| d.contains("granted none of its 3 waiters")),
        "{r}"
    );
    // s2 was told it had token 10: the log lost it.
    let v = found(&r, Property::S6Durability);
    assert!(
        v.iter()
            .any(|d| d.contains("committed entry 10 granted nothing")),
        "{r}"
    );
}

#[test]
fn lost_acknowledgements_are_caught() {
    let mut h = machine_history();
    // Entry 22's release is gone: the table answered NotHolder.
    for fx in &mut entry(&mut h, 22).effects {
        if let Effect::Reply { outcome, .. } = fx {
            *outcome = Outcome::NotHolder;
        }
    }
    let mut e = Events::new();
    e.acquire(6, "c", 400, 410, 30) // beyond the log
        .acquire(6, "c", 0, 5, 6) // entry 6 queued, granted nothing
        .acquire(6, "d", 185, 195, 19) // in the gap: unverifiable
        .acquire(6, "b", 110, 115, 12); // before entry 12 was applied
    h.events.extend(e.build().events);
    h.events.sort_by_key(|e| e.at);
    let r = check(&h);
    let v = found(&r, Property::S6Durability);
    assert_eq!(v.len(), 4, "{r}");
    for expected in [
        "release of token 21 acknowledged at 325ms, but no committed entry released it",
        "token 30 acknowledged at 410ms beyond the last committed entry 23",
        "token 6 acknowledged at 5ms but committed entry 6 granted nothing",
        "token 12 acknowledged at 115ms before any node applied entry 12",
    ] {
        assert!(v.iter().any(|d| d.contains(expected)), "{expected}: {v:?}");
    }
    assert_eq!(r.stats.unverifiable, 1);
}

#[test]
fn grant_acknowledged_on_the_wrong_lock_is_caught() {
    let mut h = machine_history();
    let mut e = Events::new();
    e.acquire(6, "c", 115, 125, 12);
    h.events.extend(e.build().events);
    h.events.sort_by_key(|e| e.at);
    let v = found(&check(&h), Property::S6Durability);
    assert!(
        v.iter().any(|d| d.contains("but entry 12 granted \"b\"")),
        "{v:?}"
    );
}

/// An acquire refused for want of a session and proposed again once the
/// session is open is queued then: the replay must not take its `Queued`
/// for a retry's.
#[test]
fn acquire_refused_before_its_session_opened_queues_later() {
    let mut l = Log::new();
    l.expect(acquire(9, 1, "z", true), Outcome::NoSession); // 1
    l.apply(open(9), true);
    l.apply(open(8), true);
    l.expect(acquire(8, 1, "z", true), granted(4));
    l.expect(acquire(9, 1, "z", true), Outcome::Queued); // 5
    l.expect(release(8, 2, "z", 4), granted(6));
    let h = History {
        log: l.entries,
        ..History::default()
    };
    let r = check(&h);
    assert!(log_found(&r).is_empty(), "{r}");
}
