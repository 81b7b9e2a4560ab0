//! S7: per lock, queued acquires are granted in the order they were queued
//! (commit order), and a session that ended is never granted anything.
//!
//! Why: FIFO is a promise of the API (only the head waiter is woken), and
//! granting an ended session hands a lock to nobody (the session's node was
//! told its waiters are gone), which stalls the lock until someone notices.
//!
//! The check replays the log's effects and keeps each lock's queue: an
//! `Acquire` answered `Queued` joins the tail the first time it is seen (a
//! retry answered `Queued` from the cache does not join twice); a waiter
//! leaves when answered `Cancelled` or `NoSession`, when its session ends,
//! or when granted. Then:
//!
//! - a grant handed to a waiter must go to the head of the queue, and to a
//!   request that was queued on that lock;
//! - an `Acquire` granted at once must find the queue empty;
//! - a `Release` or `Cancel` that frees the current grant while waiters
//!   are queued must grant one of them in the same entry;
//! - a session is never granted after its `SessionEnded` (unless it was
//!   opened again), and no request is granted twice.
//!
//! Limits: after a gap in the log a lock's queue may hold waiters the
//! replay never saw, and a retried `Acquire` first seen after the gap joins
//! the tail though it queued earlier. So after a gap the order of a lock's
//! queue is only trusted again once the lock was seen with an empty queue
//! (granted at once, or freed without a grant); the checks that do not
//! depend on the order (an immediate grant or a release past queued
//! waiters) go on regardless. A session opened again is tolerated (the
//! driver never does: session ids are random), so after a gap, which may
//! hide a re-opening, the ended sessions and granted requests are
//! forgotten too.

use std::collections::{BTreeMap, BTreeSet};

use super::replay::{FreedBy, Grant, Replay, Req, Step};
use super::{Property, Report};
use crate::sim::history::History;
use crate::types::{LockName, RequestId, SessionId};

#[derive(Debug, Default)]
struct Queue {
    /// Whether every waiter of the lock is in `waiters`, in order.
    known: bool,
    /// The current grant seen: request and token.
    holder: Option<(Req, u64)>,
    /// Waiters by arrival number.
    waiters: BTreeMap<u64, Req>,
}

#[derive(Default)]
struct Fifo<'a> {
    locks: BTreeMap<&'a LockName, Queue>,
    /// Each waiter's lock and arrival number.
    waiting: BTreeMap<Req, (&'a LockName, u64)>,
    arrivals: u64,
    /// Whether locks not seen yet are known to have an empty queue (true
    /// until the first gap).
    fresh_known: bool,
    /// Sessions ended since the last gap, with the ending entry's index.
    ended: BTreeMap<SessionId, u64>,
    /// Requests granted since the last gap.
    granted: BTreeSet<Req>,
}

pub(super) fn check(h: &History, r: &mut Report) {
    if h.log.is_empty() {
        r.skipped
            .push((Property::S7Fifo, "no committed log".to_owned()));
        return;
    }
    let mut f = Fifo {
        fresh_known: true,
        ..Fifo::default()
    };
    for step in Replay::new(&h.log) {
        f.step(&step, r);
    }
}

impl<'a> Fifo<'a> {
    fn queue(&mut self, lock: &'a LockName) -> &mut Queue {
        let known = self.fresh_known;
        self.locks.entry(lock).or_insert_with(|| Queue {
            known,
            ..Queue::default()
        })
    }

    fn unqueue(&mut self, req: Req) {
        if let Some((lock, n)) = self.waiting.remove(&req) {
            if let Some(q) = self.locks.get_mut(lock) {
                q.waiters.remove(&n);
            }
        }
    }

    /// Empties a lock's queue (the log showed it empty).
    fn clear(&mut self, lock: &'a LockName) {
        let q = self.queue(lock);
        q.known = true;
        let gone: Vec<Req> = std::mem::take(&mut q.waiters).into_values().collect();
        for req in gone {
            self.waiting.remove(&req);
        }
    }

    fn step(&mut self, s: &Step<'a>, r: &mut Report) {
        if s.after_gap {
            // The gap may have re-opened an ended session, too.
            self.locks.clear();
            self.waiting.clear();
            self.ended.clear();
            self.granted.clear();
            self.fresh_known = false;
        }
        for session in &s.opened {
            self.ended.remove(session);
            let reused: Vec<Req> = self
                .granted
                .range((*session, RequestId(0))..=(*session, RequestId(u64::MAX)))
                .copied()
                .collect();
            for req in reused {
                self.granted.remove(&req);
            }
        }
        for req in &s.dropped {
            self.unqueue(*req);
        }
        for free in &s.frees {
            self.free(s, free.lock, |req, t| free.ends(req, t), free.by, r);
        }
        for (session, _) in &s.ended {
            self.ended.insert(*session, s.index);
            let reqs: Vec<Req> = self
                .waiting
                .range((*session, RequestId(0))..=(*session, RequestId(u64::MAX)))
                .map(|(req, _)| *req)
                .collect();
            for req in reqs {
                self.unqueue(req);
            }
        }
        for g in &s.grants {
            self.grant(s.index, g, r);
        }
        if let Some((req, lock)) = s.queued {
            if !self.waiting.contains_key(&req) {
                self.arrivals += 1;
                let n = self.arrivals;
                self.queue(lock).waiters.insert(n, req);
                self.waiting.insert(req, (lock, n));
            }
        }
    }

    fn free(
        &mut self,
        s: &Step<'a>,
        lock: Option<&'a LockName>,
        ends: impl Fn(Req, u64) -> bool,
        by: FreedBy,
        r: &mut Report,
    ) {
        let Some(lock) = lock else { return };
        let q = self.queue(lock);
        let Some((req, token)) = q.holder else { return };
        if !ends(req, token) {
            return; // a retry's answer about an older grant
        }
        q.holder = None;
        // A session's end leaves the lock awaiting a handoff: no grant yet.
        if matches!(by, FreedBy::SessionEnd { .. }) || !s.grants.is_empty() {
            return;
        }
        if let Some((_, head)) = q.waiters.first_key_value() {
            r.add(
                Property::S7Fifo,
                Some(lock.as_str()),
                format!(
                    "entry {} freed token {token} but granted none of its {} waiters (first {head:?})",
                    s.index,
                    q.waiters.len()
                ),
            );
        }
        self.clear(lock);
    }

    fn grant(&mut self, index: u64, g: &Grant<'a>, r: &mut Report) {
        let (session, request) = g.req;
        let lock_name = g.lock().map(LockName::as_str);
        if let Some(at) = self.ended.get(&session) {
            r.add(
                Property::S7Fifo,
                lock_name,
                format!("entry {index} granted {session} (request {request:?}), which ended at entry {at}"),
            );
        }
        if !self.granted.insert(g.req) {
            r.add(
                Property::S7Fifo,
                lock_name,
                format!("entry {index} granted {session} request {request:?} a second time"),
            );
        }
        if let (Some(acted), Some(asked)) = (g.lock, g.asked) {
            if acted != asked {
                r.add(
                    Property::S7Fifo,
                    Some(acted.as_str()),
                    format!("entry {index} granted {session} request {request:?}, which asked for {asked:?}"),
                );
            }
        }
        let Some(lock) = g.lock() else {
            self.unqueue(g.req);
            return;
        };
        if g.immediate {
            if let Some((_, head)) = self.queue(lock).waiters.first_key_value() {
                r.add(
                    Property::S7Fifo,
                    Some(lock.as_str()),
                    format!("entry {index} granted an acquire at once while {head:?} was queued"),
                );
            }
            self.clear(lock);
        } else {
            let queued_here = self.waiting.get(&g.req).is_some_and(|(l, _)| *l == lock);
            let q = self.queue(lock);
            let (known, head) = (q.known, q.waiters.first_key_value().map(|(_, w)| *w));
            if known && head != Some(g.req) {
                let detail = match head {
                    Some(h) if queued_here => {
                        format!("entry {index} granted {session} request {request:?} while {h:?}, queued earlier, still waited")
                    }
                    _ => format!("entry {index} granted {session} request {request:?}, which was not waiting for this lock"),
                };
                r.add(Property::S7Fifo, Some(lock.as_str()), detail);
            }
            self.unqueue(g.req);
        }
        self.queue(lock).holder = Some((g.req, index));
    }
}
