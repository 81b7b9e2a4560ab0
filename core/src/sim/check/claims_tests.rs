//! Tests of issue 11's properties: the claims' log properties (S2's delay,
//! S7, S8, S9, S10) on logs made by the real `LockTable` (clean, and with
//! each primitive's planted bug when the feature `teeth` is on), the
//! clients' side (`claims_history`) and L1 on hand-built histories. Every
//! property is shown to fail on the history made to break it.

use super::tests::{found, ms};
use super::{check, Property, Report};
use crate::machine::{Claim, Command, Effect, LockTable, Outcome, RequestKey};
use crate::sim::history::{Call, Committed, EventKind, History, Outcome as Out};
use crate::types::{LockName, NodeId, NodeName, RequestId, SessionId};

const CLAIMS: [Property; 6] = [
    Property::S2LogOrder,
    Property::S7Fifo,
    Property::S8Permits,
    Property::S9ReadWrite,
    Property::S10MultiLock,
    Property::S1Tokens,
];

fn all_found(r: &Report) -> Vec<String> {
    CLAIMS.iter().flat_map(|p| found(r, *p)).collect()
}

fn name(n: &str) -> LockName {
    LockName::new(n).unwrap()
}

fn key(s: u64, r: u64) -> RequestKey {
    RequestKey {
        session: SessionId(s),
        request: RequestId(r),
        floor: RequestId(1),
    }
}

fn sem(n: u32) -> Claim {
    Claim::permits(name("s"), n, 3)
}

fn read() -> Claim {
    Claim::shared(name("rw"))
}

fn write() -> Claim {
    Claim::exclusive(name("rw"))
}

fn ex(n: &str) -> Claim {
    Claim::exclusive(name(n))
}

/// A log the real table writes; entry `i` at `10 * i` ms.
struct Log {
    table: LockTable,
    entries: Vec<Committed>,
}

impl Log {
    fn new(sessions: u64) -> Self {
        let mut l = Self {
            table: LockTable::new(),
            entries: Vec::new(),
        };
        for s in 1..=sessions {
            l.apply(Command::OpenSession {
                session: SessionId(s),
                node: NodeId(s),
                name: NodeName(format!("n{s}")),
                ttl_ms: 1000,
            });
        }
        l
    }

    fn apply(&mut self, cmd: Command) -> Vec<Effect> {
        let index = self.entries.len() as u64 + 1;
        let effects = self.table.apply(index, &cmd);
        self.entries.push(Committed {
            index,
            at: ms(index * 10),
            command: Some(cmd),
            effects: effects.clone(),
        });
        effects
    }

    fn claims(&mut self, s: u64, r: u64, claims: Vec<Claim>, wait: bool) -> Vec<Effect> {
        self.apply(Command::AcquireClaims {
            key: key(s, r),
            claims,
            wait,
        })
    }

    fn release(&mut self, s: u64, r: u64, grant: u64) -> Vec<Effect> {
        self.apply(Command::ReleaseGrant {
            key: key(s, r),
            grant: RequestId(grant),
        })
    }

    fn history(self) -> History {
        let mut h = History {
            log: self.entries,
            ..History::default()
        };
        h.params.expect_s4 = true;
        h.params.lock_delay = ms(100);
        h
    }
}

fn granted(fx: &[Effect]) -> usize {
    fx.iter()
        .filter(|f| {
            matches!(
                f,
                Effect::Reply {
                    outcome: Outcome::Granted(_),
                    ..
                }
            )
        })
        .count()
}

/// Every primitive, contended: a large permit request at the head holds
/// back a small one; a writer waits for two readers and a reader behind it
/// waits for it; a multi-lock waits for its busy name and a later one
/// behind it on a shared name waits; an expiry with lock-delay frees a
/// semaphore's permits only at the handoff.
fn contended() -> Log {
    let mut l = Log::new(5);
    assert_eq!(granted(&l.claims(1, 1, vec![sem(2)], true)), 1);
    l.claims(2, 1, vec![sem(2)], true); // queued: 2 + 2 > 3
    l.claims(3, 1, vec![sem(1)], true); // queued behind the large one
    assert_eq!(granted(&l.release(1, 2, 1)), 2, "both fit now");
    l.claims(1, 3, vec![read()], true);
    l.claims(4, 1, vec![read()], true);
    l.claims(5, 1, vec![write()], true); // queued
    l.claims(1, 4, vec![read()], true); // queued behind the writer
    l.release(1, 5, 3);
    assert_eq!(granted(&l.release(4, 2, 1)), 1, "the writer");
    assert_eq!(granted(&l.release(5, 2, 1)), 1, "the reader");
    l.claims(4, 3, vec![ex("m2")], true);
    l.claims(1, 6, vec![ex("m1"), ex("m2")], true); // queued on m2
    l.claims(5, 3, vec![ex("m1")], true); // queued behind it on m1
    assert_eq!(granted(&l.release(4, 4, 3)), 1, "the multi-lock");
    assert_eq!(granted(&l.release(1, 7, 6)), 1, "then the later one");
    // Session 2 holds 2 permits; it expires with lock-delay.
    l.claims(4, 5, vec![sem(2)], true); // queued: s2 and s3 hold 3
    l.release(3, 2, 1); // s3 gives back 1: 2 + 2 > 3 still
    let fx = l.apply(Command::ExpireSession {
        session: SessionId(2),
        lock_delay: true,
    });
    assert_eq!(granted(&fx), 0);
    let fx = l.apply(Command::Handoff {
        lock: name("s"),
        freed_at: l.entries.len() as u64,
    });
    assert_eq!(granted(&fx), 1, "after the handoff");
    l
}

#[test]
fn contended_primitives_pass() {
    let mut l = contended();
    // The handoff 110 ms after the expiry: past the 100 ms delay.
    if let Some(last) = l.entries.last_mut() {
        last.at += ms(100);
    }
    let r = check(&l.history());
    assert!(all_found(&r).is_empty(), "{r}");
}

#[test]
fn a_grant_inside_the_lock_delay_is_caught() {
    let r = check(&contended().history()); // the handoff 10 ms after
    let v = found(&r, Property::S2LogOrder);
    assert_eq!(v.len(), 1, "{r}");
    assert!(v[0].contains("lock-delay is 100ms"), "{v:?}");
}

/// Rewrites the effects of entry `index` (a table that answered otherwise).
fn tamper(h: &mut History, index: u64, f: impl Fn(&mut Vec<Effect>)) {
    let e = h.log.iter_mut().find(|c| c.index == index).unwrap();
    f(&mut e.effects);
}

#[test]
fn a_reader_beside_a_writer_is_caught_in_the_log() {
    let mut l = Log::new(2);
    l.claims(1, 1, vec![read()], true);
    l.claims(2, 1, vec![write()], true); // queued
    let mut h = l.history();
    // The table says the writer was granted at once.
    tamper(&mut h, 4, |fx| {
        for f in fx.iter_mut() {
            if let Effect::Reply { outcome, .. } = f {
                *outcome = Outcome::Granted(crate::types::FencingToken(crate::sim::TOKEN_BASE + 4));
            }
        }
    });
    let r = check(&h);
    assert_eq!(found(&r, Property::S9ReadWrite).len(), 1, "{r}");
}

#[test]
fn a_later_waiter_granted_first_is_caught() {
    let mut l = Log::new(3);
    l.claims(1, 1, vec![write()], true);
    l.claims(2, 1, vec![write()], true); // queued first
    l.claims(3, 1, vec![read()], true); // queued second
    l.release(1, 2, 1); // grants s2
    let mut h = l.history();
    // The release granted the reader instead (FIFO broken).
    tamper(&mut h, 7, |fx| {
        for f in fx.iter_mut() {
            if let Effect::Reply { session, .. } = f {
                if *session == SessionId(2) {
                    *session = SessionId(3);
                }
            }
        }
    });
    let r = check(&h);
    let v = found(&r, Property::S7Fifo);
    assert_eq!(v.len(), 1, "{r}");
    assert!(v[0].contains("queued earlier"), "{v:?}");
}

#[test]
fn a_request_granted_twice_is_caught() {
    let mut l = Log::new(2);
    l.claims(1, 1, vec![ex("m1"), ex("m2")], true);
    let again = l.entries[2].clone();
    let mut h = l.history();
    h.log.push(Committed {
        index: 4,
        at: ms(40),
        command: again.command,
        effects: vec![Effect::Reply {
            session: SessionId(1),
            request: RequestId(1),
            outcome: Outcome::Granted(crate::types::FencingToken(crate::sim::TOKEN_BASE + 4)),
        }],
    });
    let r = check(&h);
    assert!(!found(&r, Property::S10MultiLock).is_empty(), "{r}");
}

/// Each primitive's planted bug in the real table breaks its property.
#[cfg(feature = "teeth")]
#[test]
fn planted_primitive_bugs_break_their_log_property() {
    use crate::teeth::{plant, Bug};
    type Case = (Bug, Property, fn(&mut Log));
    let cases: [Case; 4] = [
        (Bug::PermitOverCount, Property::S8Permits, |l| {
            l.claims(1, 1, vec![sem(3)], true);
            l.claims(2, 1, vec![sem(1)], false);
        }),
        (Bug::WriterBesideReader, Property::S9ReadWrite, |l| {
            l.claims(1, 1, vec![read()], true);
            l.claims(2, 1, vec![write()], false);
        }),
        (Bug::PartialMultiLock, Property::S10MultiLock, |l| {
            l.claims(1, 1, vec![ex("m2")], true);
            l.claims(2, 1, vec![ex("m1"), ex("m2")], true);
        }),
        (Bug::GrantOutOfFifoOrder, Property::S7Fifo, |l| {
            l.claims(1, 1, vec![write()], true);
            l.claims(2, 1, vec![write()], true);
            l.claims(1, 2, vec![read()], true);
            l.release(1, 3, 1);
        }),
    ];
    for (bug, property, run) in cases {
        let mut clean = Log::new(2);
        run(&mut clean);
        let r = check(&clean.history());
        assert!(all_found(&r).is_empty(), "{bug:?} unplanted: {r}");
        plant(Some(bug));
        let mut l = Log::new(2);
        run(&mut l);
        plant(None);
        let r = check(&l.history());
        assert!(
            !found(&r, property).is_empty(),
            "{bug:?} not caught by {property:?}: {r}"
        );
    }
}

// ---- the clients' side ----

fn grant(h: &mut History, op: u64, p: u32, claims: Vec<Claim>, inv: u64, done: u64, token: u64) {
    let label = claims
        .first()
        .map(|c| c.lock.as_str().to_owned())
        .unwrap_or_default();
    let call = Call::Claims { claims, wait: true };
    h.push(ms(inv), p, &label, EventKind::Invoke { op, call });
    let outcome = Out::Granted { token };
    h.push(ms(done), p, &label, EventKind::Complete { op, outcome });
}

fn probe(h: &mut History, p: u32, token: u64, at: u64, held: bool) {
    h.push(ms(at), p, "x", EventKind::ClaimsHeld { token, held });
}

fn judged(mut h: History) -> Report {
    h.params.expect_s4 = true;
    h.events.sort_by_key(|e| e.at);
    check(&h)
}

#[test]
fn clients_holding_what_fits_pass() {
    let mut h = History::default();
    grant(&mut h, 1, 1, vec![sem(2)], 0, 5, 5);
    grant(&mut h, 2, 2, vec![sem(1)], 0, 6, 6);
    grant(&mut h, 3, 3, vec![read()], 0, 7, 7);
    grant(&mut h, 4, 4, vec![read()], 0, 7, 7); // granted together
    grant(&mut h, 5, 5, vec![write(), ex("m1")], 8, 30, 20);
    for (p, t) in [(1, 5), (2, 6), (3, 7), (4, 7)] {
        probe(&mut h, p, t, 10, true);
        probe(&mut h, p, t, 15, true);
    }
    probe(&mut h, 5, 20, 31, true);
    let r = judged(h);
    assert!(all_found(&r).is_empty(), "{r}");
}

#[test]
fn clients_holding_too_much_at_once_are_caught() {
    // Permits: 2 + 2 of 3 at once.
    let mut h = History::default();
    grant(&mut h, 1, 1, vec![sem(2)], 0, 5, 5);
    grant(&mut h, 2, 2, vec![sem(2)], 0, 6, 6);
    probe(&mut h, 1, 5, 10, true);
    probe(&mut h, 2, 6, 11, true);
    probe(&mut h, 1, 5, 12, true);
    assert!(!found(&judged(h), Property::S8Permits).is_empty());
    // A reader beside a writer.
    let mut h = History::default();
    grant(&mut h, 1, 1, vec![read()], 0, 5, 5);
    grant(&mut h, 2, 2, vec![write()], 0, 6, 6);
    probe(&mut h, 1, 5, 10, true);
    probe(&mut h, 2, 6, 11, true);
    probe(&mut h, 1, 5, 12, true);
    assert!(!found(&judged(h), Property::S9ReadWrite).is_empty());
    // A reader that says held after a writer was acknowledged (stale).
    let mut h = History::default();
    grant(&mut h, 1, 1, vec![read()], 0, 5, 5);
    grant(&mut h, 2, 2, vec![write()], 6, 8, 8);
    probe(&mut h, 1, 5, 10, true);
    let r = judged(h);
    let v = found(&r, Property::S9ReadWrite);
    assert!(v.iter().any(|d| d.contains("after token 8")), "{r}");
    // A multi-lock beside a holder of one of its names.
    let mut h = History::default();
    grant(&mut h, 1, 1, vec![ex("m2")], 0, 5, 5);
    grant(&mut h, 2, 2, vec![ex("m1"), ex("m2")], 0, 6, 6);
    probe(&mut h, 1, 5, 10, true);
    probe(&mut h, 2, 6, 11, true);
    probe(&mut h, 1, 5, 12, true);
    assert!(!found(&judged(h), Property::S10MultiLock).is_empty());
}

#[test]
fn claims_tokens_falling_or_shared_by_writers_are_caught() {
    let mut h = History::default();
    grant(&mut h, 1, 1, vec![read()], 0, 5, 9);
    grant(&mut h, 2, 2, vec![read()], 6, 8, 7); // invoked after 9 was acked
    let r = judged(h);
    assert_eq!(found(&r, Property::S1Tokens).len(), 1, "{r}");
    let mut h = History::default();
    grant(&mut h, 1, 1, vec![read()], 0, 5, 9);
    grant(&mut h, 2, 2, vec![write()], 0, 6, 9);
    let r = judged(h);
    assert!(!found(&r, Property::S10MultiLock).is_empty(), "{r}");
}

// ---- L1 ----

fn campaign(h: &mut History, op: u64, p: u32, inv: u64, done: u64, token: u64) {
    h.push(
        ms(inv),
        p,
        "lead",
        EventKind::Invoke {
            op,
            call: Call::Acquire,
        },
    );
    let outcome = Out::Granted { token };
    h.push(ms(done), p, "lead", EventKind::Complete { op, outcome });
}

fn leader(h: &mut History, p: u32, token: u64, at: u64, leader: bool) {
    h.push(ms(at), p, "lead", EventKind::Leader { token, leader });
}

#[test]
fn one_leader_at_a_time_passes() {
    let mut h = History::default();
    campaign(&mut h, 1, 1, 0, 5, 5);
    leader(&mut h, 1, 5, 6, true);
    leader(&mut h, 1, 5, 20, true);
    leader(&mut h, 1, 5, 25, false);
    campaign(&mut h, 2, 2, 1, 30, 9);
    leader(&mut h, 2, 9, 31, true);
    let r = judged(h);
    assert!(found(&r, Property::L1OneLeader).is_empty(), "{r}");
}

#[test]
fn two_leaders_or_a_revived_one_are_caught() {
    // Overlapping terms.
    let mut h = History::default();
    leader(&mut h, 1, 5, 6, true);
    leader(&mut h, 2, 9, 10, true);
    leader(&mut h, 1, 5, 20, true);
    let r = judged(h);
    assert_eq!(found(&r, Property::L1OneLeader).len(), 1, "{r}");
    // A deposed leader after its successor was acknowledged.
    let mut h = History::default();
    campaign(&mut h, 1, 1, 0, 5, 5);
    leader(&mut h, 1, 5, 6, true);
    campaign(&mut h, 2, 2, 1, 30, 9);
    leader(&mut h, 1, 5, 35, true);
    let r = judged(h);
    let v = found(&r, Property::L1OneLeader);
    assert!(v.iter().any(|d| d.contains("after token 9")), "{r}");
    // True after false.
    let mut h = History::default();
    leader(&mut h, 1, 5, 6, false);
    leader(&mut h, 1, 5, 7, true);
    let r = judged(h);
    assert!(
        found(&r, Property::L1OneLeader)[0].contains("after it said"),
        "{r}"
    );
    // Beyond the clock bound the overlap is only counted.
    let mut h = History::default();
    leader(&mut h, 1, 5, 6, true);
    leader(&mut h, 2, 9, 10, true);
    leader(&mut h, 1, 5, 20, true);
    h.params.expect_s4 = false;
    let r = check(&h);
    assert!(found(&r, Property::L1OneLeader).is_empty(), "{r}");
}

#[test]
fn a_claims_grant_the_log_does_not_show_is_caught() {
    let mut l = Log::new(2);
    l.claims(1, 1, vec![sem(2)], true); // entry 3
    l.claims(2, 1, vec![read()], true); // entry 4
    let mut h = l.history();
    grant(&mut h, 1, 1, vec![sem(2)], 25, 35, 3);
    grant(&mut h, 2, 2, vec![read()], 36, 45, 4);
    let r = judged(h.clone());
    assert!(found(&r, Property::S6Durability).is_empty(), "{r}");
    // Told of token 4 for permits (entry 4 granted a read lock), of a
    // token beyond the log, and of token 3 before any node applied it.
    grant(&mut h, 3, 1, vec![sem(1)], 50, 55, 4);
    grant(&mut h, 4, 2, vec![sem(1)], 50, 56, 9);
    grant(&mut h, 5, 1, vec![sem(2)], 20, 25, 3);
    let r = judged(h);
    assert_eq!(found(&r, Property::S6Durability).len(), 3, "{r}");
}
